//! JIDs as Signal addresses, and key-fetch entries as pre-key bundles.

use wa_binary::{Jid, Node};
use wa_signal::{Error, KeyPair, PreKeyBundle, ProtocolAddress, SignalAddress};

fn addr(jid: &str) -> ProtocolAddress {
    // `Jid` also has an inherent `signal_address` returning (name, device): name the trait.
    SignalAddress::signal_address(&jid.parse::<Jid>().unwrap())
}

#[test]
fn address_name_is_user_plus_non_zero_domain() {
    assert_eq!(
        addr("15550000001@s.whatsapp.net"),
        ProtocolAddress::new("15550000001", 0)
    );
    assert_eq!(
        addr("15550000001:3@s.whatsapp.net"),
        ProtocolAddress::new("15550000001", 3)
    );
    assert_eq!(
        addr("123456789:2@lid"),
        ProtocolAddress::new("123456789_1", 2)
    );
    assert_eq!(
        addr("123456789:99@hosted"),
        ProtocolAddress::new("123456789_128", 99)
    );
    assert_eq!(
        addr("123456789:99@hosted.lid"),
        ProtocolAddress::new("123456789_129", 99)
    );
    assert_eq!(addr("123456789:2@lid").to_string(), "123456789_1.2");
}

fn leaf(tag: &'static str, bytes: &[u8]) -> Node {
    Node::builder(tag).bytes(bytes.to_vec()).build()
}

fn user_node(with_key: bool, key_type: u8, skip: Option<&str>) -> Node {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    let identity = KeyPair::generate(&mut rng);
    let spk = KeyPair::generate(&mut rng);
    let otk = KeyPair::generate(&mut rng);
    let sig = identity.sign(&spk.public.serialize(), &mut rng);
    let mut skey = vec![
        leaf("id", &[0, 0, 9]),
        leaf("value", spk.public.as_bytes()),
        leaf("signature", sig.as_bytes()),
    ];
    skey.retain(|n| Some(n.tag()) != skip);
    let mut children = vec![
        leaf("registration", &[0, 0, 1, 2]),
        leaf("type", &[key_type]),
        leaf("identity", identity.public.as_bytes()),
        Node::builder("skey").children(skey).build(),
    ];
    if with_key {
        children.push(
            Node::builder("key")
                .children([leaf("id", &[1, 0, 0]), leaf("value", otk.public.as_bytes())])
                .build(),
        );
    }
    children.retain(|n| Some(n.tag()) != skip);
    Node::builder("user")
        .attr(
            "jid",
            "15550000009:4@s.whatsapp.net".parse::<Jid>().unwrap(),
        )
        .children(children)
        .build()
}

#[test]
fn user_node_becomes_a_bundle() {
    let (jid, bundle) = PreKeyBundle::from_user_node(&user_node(true, 5, None)).unwrap();
    assert_eq!(jid.to_string(), "15550000009:4@s.whatsapp.net");
    assert_eq!(bundle.device_id, 4);
    assert_eq!(bundle.registration_id, 258);
    assert_eq!(bundle.signed_pre_key_id, 9);
    assert_eq!(bundle.pre_key.unwrap().0, 0x01_0000);
    assert!(bundle.verify_signature());

    let (_, no_key) = PreKeyBundle::from_user_node(&user_node(false, 5, None)).unwrap();
    assert!(no_key.pre_key.is_none());
}

#[test]
fn malformed_user_nodes_are_typed_errors() {
    for skip in [
        "registration",
        "identity",
        "skey",
        "signature",
        "value",
        "id",
    ] {
        let r = PreKeyBundle::from_user_node(&user_node(true, 5, Some(skip)));
        assert!(
            matches!(r, Err(Error::InvalidMessage(_))),
            "without <{skip}>"
        );
    }
    assert!(matches!(
        PreKeyBundle::from_user_node(&user_node(true, 6, None)),
        Err(Error::InvalidMessage(_))
    ));
    let error = Node::builder("user")
        .attr("jid", "1@s.whatsapp.net".parse::<Jid>().unwrap())
        .children([Node::builder("error").attr("code", "404").build()])
        .build();
    assert!(PreKeyBundle::from_user_node(&error).is_err());
}
