//! Arbitrary usync replies: the parser never panics, and what it accepts respects the
//! bounds and the attributes it was given.

use proptest::prelude::*;
use wa_binary::Node;
use wa_usync::{
    MAX_DEVICES_PER_USER, MAX_PICTURE_ID_LEN, MAX_STATUS_LEN, MAX_USERNAME_LEN, parse_reply,
};

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("0".to_owned()),
        Just("true".to_owned()),
        Just("in".to_owned()),
        Just("out".to_owned()),
        Just("70000".to_owned()),
        Just("1@s.whatsapp.net".to_owned()),
        Just("5@lid".to_owned()),
        Just("7@c.us".to_owned()),
        Just("@s.whatsapp.net".to_owned()),
        Just("1-2@g.us".to_owned()),
        "[0-9]{1,6}",
        "[a-z@.:+-]{0,12}",
    ]
}

type Head = (&'static str, Vec<(&'static str, String)>, Option<String>);

fn head() -> impl Strategy<Value = Head> {
    let tag = prop_oneof![
        Just("device"),
        Just("device-list"),
        Just("key-index-list"),
        Just("devices"),
        Just("contact"),
        Just("lid"),
        Just("error"),
        Just("user"),
        Just("business"),
        Just("verified_name"),
        Just("status"),
        Just("picture"),
        Just("disappearing_mode"),
        Just("username"),
    ];
    let key = prop_oneof![
        Just("id"),
        Just("key-index"),
        Just("is_hosted"),
        Just("ts"),
        Just("type"),
        Just("val"),
        Just("jid"),
        Just("code"),
        Just("text"),
        Just("t"),
        Just("duration"),
        Just("verified_level"),
        Just("serial"),
        Just("pn_jid"),
    ];
    (
        tag,
        proptest::collection::vec((key, value()), 0..4),
        proptest::option::of("[+0-9a-z]{0,80}"),
    )
}

fn build((tag, attrs, text): Head, children: Vec<Node>) -> Node {
    let mut b = Node::builder(tag);
    for (k, v) in attrs {
        b = b.attr(k, v);
    }
    if children.is_empty() {
        if let Some(t) = text {
            b = b.text(t);
        }
        b.build()
    } else {
        b.children(children).build()
    }
}

fn tree() -> impl Strategy<Value = Node> {
    head()
        .prop_map(|h| build(h, Vec::new()))
        .prop_recursive(4, 64, 6, |inner| {
            (head(), proptest::collection::vec(inner, 0..6)).prop_map(|(h, c)| build(h, c))
        })
}

proptest! {
    #[test]
    fn arbitrary_replies_never_panic(users in proptest::collection::vec(tree(), 0..8)) {
        let reply = Node::builder("iq")
            .attr("type", "result")
            .children([Node::builder("usync")
                .children([Node::builder("list").children(users).build()])
                .build()])
            .build();
        if let Ok(parsed) = parse_reply(&reply) {
            for u in parsed {
                if let Some(d) = &u.devices {
                    prop_assert!(d.devices.len() <= MAX_DEVICES_PER_USER);
                    let mut ids: Vec<u16> = d.devices.iter().map(|x| x.id).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    prop_assert_eq!(ids.len(), d.devices.len());
                }
                if let Some(l) = &u.lid {
                    prop_assert!(l.is_lid());
                }
                if let Some(pn) = &u.pn {
                    prop_assert!(pn.is_pn_user() && !pn.user.is_empty());
                }
                if let Some((pn, lid)) = u.lid_mapping() {
                    prop_assert!(pn.is_pn_user() && lid.is_lid());
                }
                if let Some(name) = &u.username {
                    prop_assert!(!name.is_empty() && name.len() <= MAX_USERNAME_LEN);
                }
                if let Some(s) = &u.status {
                    prop_assert!(s.text.len() <= MAX_STATUS_LEN);
                }
                if let Some(p) = &u.picture_id {
                    prop_assert!(!p.is_empty() && p.len() <= MAX_PICTURE_ID_LEN);
                }
            }
        }
    }
}
