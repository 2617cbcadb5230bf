//! Record serialization: round trips, versioning, corruption.

mod common;

use common::block_on;
use rand::SeedableRng;
use rand::rngs::StdRng;
use wa_signal::{
    Error, InMemoryStore, PreKeyBundle, PreKeyRecord, ProtocolAddress, SenderKeyName,
    SenderKeyRecord, SenderKeyStore, SessionRecord, SessionStore, SignalRepository,
    SignedPreKeyRecord, generate_identity_key_pair, generate_pre_keys, generate_signed_pre_key,
};

#[test]
fn pre_key_records_round_trip() {
    let mut rng = StdRng::seed_from_u64(1);
    let identity = generate_identity_key_pair(&mut rng);
    let spk = generate_signed_pre_key(&identity, 7, 1_700_000_000, &mut rng);
    let back = SignedPreKeyRecord::deserialize(&spk.serialize()).unwrap();
    assert_eq!(back.id, 7);
    assert_eq!(back.timestamp, 1_700_000_000);
    assert_eq!(back.key_pair.public, spk.key_pair.public);
    assert_eq!(
        back.key_pair.private.as_bytes(),
        spk.key_pair.private.as_bytes()
    );
    assert!(
        identity
            .public
            .verify(&back.key_pair.public.serialize(), &back.signature)
    );

    let pks = generate_pre_keys(wa_signal::MAX_PRE_KEY_ID - 1, 4, &mut rng);
    let ids: Vec<u32> = pks.iter().map(|p| p.id).collect();
    assert_eq!(
        ids,
        [
            wa_signal::MAX_PRE_KEY_ID - 1,
            wa_signal::MAX_PRE_KEY_ID,
            1,
            2
        ]
    );
    for pk in &pks {
        let back = PreKeyRecord::deserialize(&pk.serialize()).unwrap();
        assert_eq!((back.id, back.key_pair.public), (pk.id, pk.key_pair.public));
    }
    assert!(matches!(
        PreKeyRecord::deserialize(&[0xff, 0x01]),
        Err(Error::InvalidRecord(_))
    ));
}

#[test]
fn session_and_sender_key_records_round_trip_and_reject_other_versions() {
    let mut rng = StdRng::seed_from_u64(2);
    let alice_id = generate_identity_key_pair(&mut rng);
    let bob_id = generate_identity_key_pair(&mut rng);
    let spk = generate_signed_pre_key(&bob_id, 1, 0, &mut rng);
    let bundle = PreKeyBundle {
        registration_id: 2,
        device_id: 0,
        pre_key: None,
        signed_pre_key_id: 1,
        signed_pre_key: spk.key_pair.public,
        signed_pre_key_signature: spk.signature,
        identity_key: bob_id.public,
    };
    let alice = SignalRepository::new(InMemoryStore::new(alice_id, 1), rng.clone());
    let bob_addr = ProtocolAddress::new("bob", 3);
    block_on(async {
        alice.inject_e2e_session(&bob_addr, &bundle).await.unwrap();
        alice.encrypt_message(&bob_addr, b"x").await.unwrap();
        alice
            .encrypt_group_message("g@g.us", &bob_addr, b"y")
            .await
            .unwrap();
    });
    let bytes = block_on(alice.store().load_session(&bob_addr))
        .unwrap()
        .unwrap();
    let record = SessionRecord::deserialize(&bytes).unwrap();
    assert_eq!(record.serialize(), bytes);
    assert!(record.has_current_session());
    assert_eq!(record.remote_registration_id(), Some(2));
    assert_eq!(record.remote_identity(), Some(bob_id.public));
    // One message encrypted: the sending chain's next key is the second.
    assert_eq!(record.sender_chain_index(), Some(1));
    assert_eq!(SessionRecord::new().sender_chain_index(), None);

    // Format version is field 1 = 1; any other version is refused.
    assert_eq!(&bytes[..2], &[0x08, 0x01]);
    let mut other = bytes.clone();
    other[1] = 2;
    assert!(matches!(
        SessionRecord::deserialize(&other),
        Err(Error::InvalidRecord(_))
    ));
    for cut in [1, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            SessionRecord::deserialize(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }

    let name = SenderKeyName::new("g@g.us", bob_addr.clone());
    assert_eq!(name.to_string(), "g@g.us::bob::3");
    let sk = block_on(alice.store().load_sender_key(&name))
        .unwrap()
        .unwrap();
    let record = SenderKeyRecord::deserialize(&sk).unwrap();
    assert_eq!(record.serialize(), sk);
    assert_eq!(record.state_count(), 1);
    let mut other = sk.clone();
    other[1] = 9;
    assert!(matches!(
        SenderKeyRecord::deserialize(&other),
        Err(Error::InvalidRecord(_))
    ));
}
