//! Facade properties: futures are Send for any store, session migration.

mod common;

use common::block_on;
use rand::SeedableRng;
use rand::rngs::StdRng;
use wa_signal::{
    InMemoryStore, PreKeyBundle, ProtocolAddress, SignalRepository, SignalStore,
    generate_identity_key_pair, generate_signed_pre_key,
};

fn assert_send<T: Send>(_: &T) {}

/// Compiles only if every repository future is `Send` for any store.
fn futures_are_send<S: SignalStore>(repo: &SignalRepository<S, StdRng>, bundle: &PreKeyBundle) {
    let a = ProtocolAddress::new("a", 1);
    assert_send(&repo.inject_e2e_session(&a, bundle));
    assert_send(&repo.encrypt_message(&a, b"x"));
    assert_send(&repo.decrypt_message(&a, wa_signal::CiphertextType::Msg, b"x"));
    assert_send(&repo.encrypt_group_message("g", &a, b"x"));
    assert_send(&repo.decrypt_group_message("g", &a, b"x"));
    assert_send(&repo.process_sender_key_distribution("g", &a, b"x"));
    assert_send(&repo.migrate_session(&a, &a));
}

#[test]
fn repository_futures_are_send_and_sessions_migrate() {
    let mut rng = StdRng::seed_from_u64(1);
    let alice_id = generate_identity_key_pair(&mut rng);
    let bob_id = generate_identity_key_pair(&mut rng);
    let spk = generate_signed_pre_key(&bob_id, 1, 0, &mut rng);
    let bundle = PreKeyBundle {
        registration_id: 9,
        device_id: 0,
        pre_key: None,
        signed_pre_key_id: 1,
        signed_pre_key: spk.key_pair.public,
        signed_pre_key_signature: spk.signature,
        identity_key: bob_id.public,
    };
    let repo = SignalRepository::new(InMemoryStore::new(alice_id, 1), rng);
    futures_are_send(&repo, &bundle);

    let pn = ProtocolAddress::new("15550000002", 3);
    let lid = ProtocolAddress::new("99887766_1", 3);
    block_on(async {
        repo.inject_e2e_session(&pn, &bundle).await.unwrap();
        assert!(repo.migrate_session(&pn, &lid).await.unwrap());
        assert!(!repo.has_session(&pn).await.unwrap());
        assert!(repo.has_session(&lid).await.unwrap());
        assert_eq!(
            repo.session_info(&lid)
                .await
                .unwrap()
                .unwrap()
                .registration_id,
            9
        );
        // Nothing left to move; an existing target is never overwritten.
        assert!(!repo.migrate_session(&pn, &lid).await.unwrap());
        repo.inject_e2e_session(&pn, &bundle).await.unwrap();
        let before = repo.session_info(&lid).await.unwrap();
        assert!(!repo.migrate_session(&pn, &lid).await.unwrap());
        assert_eq!(repo.session_info(&lid).await.unwrap(), before);
        let sent = repo
            .encrypt_message(&lid, b"on the lid address")
            .await
            .unwrap();
        assert_eq!(sent.kind, wa_signal::CiphertextType::Pkmsg);
    });
}
