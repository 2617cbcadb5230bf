//! wa-signal running on the store: a session set up from a pre-key message is written in
//! one batch with the pre-key's consumption, and a pre-key cannot be consumed twice.

use std::sync::Arc;

use rand_core::OsRng;
use wa_crypto::KeyPair;
use wa_signal::{
    CiphertextType, InMemoryStore, PreKeyBundle, ProtocolAddress, SignalRepository,
    generate_identity_key_pair, generate_pre_keys,
};
use wa_store::testing::{Read, Tap, Tapped, done};
use wa_store::{
    AccountId, AccountStore, AuthCreds, Backend, Batch, BoxFuture, CredsStore, Error,
    IdentityStore, MemoryBackend, Op, PreKeyStore, Role, SentMessageStore, SessionStore,
    SignalStoreAdapter,
};

struct Bob {
    store: AccountStore,
    creds: AuthCreds,
}

async fn bob() -> Bob {
    bob_on(Arc::new(MemoryBackend::new())).await
}

/// Bob with credentials and five pre-keys, on `backend`.
async fn bob_on(backend: Arc<dyn Backend>) -> Bob {
    let store = AccountStore::new(backend, AccountId::new("bob").unwrap());
    let creds = AuthCreds::generate(&mut OsRng);
    store.save_creds(&creds).await.unwrap();
    let pre_keys = generate_pre_keys(1, 5, &mut OsRng);
    let bytes: Vec<(u32, Vec<u8>)> = pre_keys.iter().map(|p| (p.id, p.serialize())).collect();
    let refs: Vec<(u32, &[u8])> = bytes.iter().map(|(i, b)| (*i, b.as_slice())).collect();
    store.put_pre_keys(&refs).await.unwrap();
    Bob { store, creds }
}

async fn bundle(bob: &Bob, pre_key: u32) -> PreKeyBundle {
    let adapter = SignalStoreAdapter::load(bob.store.clone()).await.unwrap();
    let repo = SignalRepository::new(adapter, OsRng);
    let pk = wa_signal::PreKeyStore::load_pre_key(repo.store(), pre_key)
        .await
        .unwrap()
        .unwrap();
    PreKeyBundle {
        registration_id: bob.creds.registration_id,
        device_id: 0,
        pre_key: Some((pk.id, pk.key_pair.public)),
        signed_pre_key_id: bob.creds.signed_pre_key.id,
        signed_pre_key: bob.creds.signed_pre_key.key_pair.public,
        signed_pre_key_signature: bob.creds.signed_pre_key.signature,
        identity_key: bob.creds.identity_key.public,
    }
}

#[tokio::test]
async fn pre_key_message_lands_in_one_batch_and_round_trips() {
    let bob = bob().await;
    let alice_addr = ProtocolAddress::new("alice", 0);
    let bob_addr = ProtocolAddress::new("bob", 0);
    let alice = SignalRepository::new(
        InMemoryStore::new(generate_identity_key_pair(&mut OsRng), 77),
        OsRng,
    );
    alice
        .inject_e2e_session(&bob_addr, &bundle(&bob, 3).await)
        .await
        .unwrap();
    let first = alice
        .encrypt_message(&bob_addr, b"hello bob")
        .await
        .unwrap();
    assert_eq!(first.kind, CiphertextType::Pkmsg);

    let adapter = SignalStoreAdapter::load(bob.store.clone()).await.unwrap();
    let staged = SignalRepository::new(adapter.staged(), OsRng);
    let plain = staged
        .decrypt_message(&alice_addr, first.kind, &first.ciphertext)
        .await
        .unwrap();
    assert_eq!(plain, b"hello bob");
    // Nothing is stored until the staged writes are committed...
    assert!(bob.store.get_session("alice", 0).await.unwrap().is_none());
    assert!(bob.store.get_pre_key(3).await.unwrap().is_some());
    // ...and then everything is, together with the caller's own write.
    let mut ack = Batch::new();
    ack.put_sent_message("alice", "ACK-1", b"receipt", 1);
    staged.store().commit(ack).await.unwrap();
    assert!(bob.store.get_session("alice", 0).await.unwrap().is_some());
    assert!(bob.store.get_pre_key(3).await.unwrap().is_none());
    assert!(bob.store.get_identity("alice", 0).await.unwrap().is_some());
    assert!(
        bob.store
            .get_sent_message("alice", "ACK-1")
            .await
            .unwrap()
            .is_some()
    );

    // Bob answers through a fresh direct adapter (state comes from the store).
    let bob_repo = SignalRepository::new(
        SignalStoreAdapter::load(bob.store.clone()).await.unwrap(),
        OsRng,
    );
    let reply = bob_repo
        .encrypt_message(&alice_addr, b"hi alice")
        .await
        .unwrap();
    assert_eq!(reply.kind, CiphertextType::Msg);
    let got = alice
        .decrypt_message(&bob_addr, reply.kind, &reply.ciphertext)
        .await
        .unwrap();
    assert_eq!(got, b"hi alice");
    let next = alice.encrypt_message(&bob_addr, b"again").await.unwrap();
    assert_eq!(
        bob_repo
            .decrypt_message(&alice_addr, next.kind, &next.ciphertext)
            .await
            .unwrap(),
        b"again"
    );
}

#[tokio::test]
async fn a_pre_key_is_consumed_once_even_by_racing_decryptions() {
    let bob = bob().await;
    let alice_addr = ProtocolAddress::new("alice", 0);
    let bob_addr = ProtocolAddress::new("bob", 0);
    let alice = SignalRepository::new(
        InMemoryStore::new(generate_identity_key_pair(&mut OsRng), 78),
        OsRng,
    );
    alice
        .inject_e2e_session(&bob_addr, &bundle(&bob, 2).await)
        .await
        .unwrap();
    let msg = alice.encrypt_message(&bob_addr, b"once").await.unwrap();

    let adapter = SignalStoreAdapter::load(bob.store.clone()).await.unwrap();
    let a = SignalRepository::new(adapter.staged(), OsRng);
    let b = SignalRepository::new(adapter.staged(), OsRng);
    // Both see pre-key 2 and decrypt (a replayed pkmsg delivered twice).
    a.decrypt_message(&alice_addr, msg.kind, &msg.ciphertext)
        .await
        .unwrap();
    b.decrypt_message(&alice_addr, msg.kind, &msg.ciphertext)
        .await
        .unwrap();
    a.store().commit(Batch::new()).await.unwrap();
    let mut ack = Batch::new();
    ack.put_sent_message("alice", "SECOND", b"x", 1);
    assert!(matches!(
        b.store().commit(ack).await,
        Err(Error::Conflict { .. })
    ));
    // The loser wrote nothing, not even its acknowledgement.
    assert!(
        bob.store
            .get_sent_message("alice", "SECOND")
            .await
            .unwrap()
            .is_none()
    );
    assert!(bob.store.get_pre_key(2).await.unwrap().is_none());
    assert_eq!(bob.store.pre_key_ids().await.unwrap(), vec![1, 3, 4, 5]);
}

#[tokio::test]
async fn adapter_needs_credentials_and_rebuilds_over_damaged_records() {
    let store = AccountStore::new(
        Arc::new(MemoryBackend::new()),
        AccountId::new("empty").unwrap(),
    );
    assert!(matches!(
        SignalStoreAdapter::load(store.clone()).await,
        Err(Error::InvalidInput(_))
    ));
    let creds = AuthCreds::generate(&mut OsRng);
    let adapter = SignalStoreAdapter::new(store.clone(), &creds);
    // A damaged identity, session or pre-key reads as absent (so it is learned or made
    // again, as a lost one is), and the next write replaces it.
    let x = ProtocolAddress::new("x", 1);
    store.put_identity("x", 1, b"not a key").await.unwrap();
    let r = wa_signal::IdentityKeyStore::get_identity(&adapter, &x).await;
    assert!(matches!(r, Ok(None)), "{r:?}");
    let key = KeyPair::generate(&mut OsRng).public;
    wa_signal::IdentityKeyStore::save_identity(&adapter, &x, &key)
        .await
        .unwrap();
    assert_eq!(
        wa_signal::IdentityKeyStore::get_identity(&adapter, &x)
            .await
            .unwrap(),
        Some(key)
    );
    store.put_pre_keys(&[(9, b"not a pre-key")]).await.unwrap();
    assert!(
        wa_signal::PreKeyStore::load_pre_key(&adapter, 9)
            .await
            .unwrap()
            .is_none()
    );
    // A row whose checksum fails reads as absent too.
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let damaged = AccountStore::new(backend.clone(), AccountId::new("d").unwrap());
    backend
        .commit(
            damaged.account(),
            vec![Op::Put {
                role: Role::Session,
                scope: "x".into(),
                key: "1".into(),
                value: bytes::Bytes::from_static(b"\x01garbage that fails the checksum"),
                at: 0,
            }],
        )
        .await
        .unwrap();
    assert!(damaged.get_session("x", 1).await.unwrap_err().is_corrupt());
    let adapter2 = SignalStoreAdapter::new(damaged.clone(), &creds);
    assert!(
        wa_signal::SessionStore::load_session(&adapter2, &x)
            .await
            .unwrap()
            .is_none()
    );
    // Our own identity and signed pre-key come from the credentials.
    let id = wa_signal::IdentityKeyStore::identity_key_pair(&adapter)
        .await
        .unwrap();
    assert_eq!(id.public, creds.identity_key.public);
    let spk = wa_signal::SignedPreKeyStore::load_signed_pre_key(&adapter, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spk.key_pair.public, creds.signed_pre_key.key_pair.public);
    assert!(
        wa_signal::SignedPreKeyStore::load_signed_pre_key(&adapter, 2)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_sender_key_moves_to_its_other_name_within_the_staged_batch() {
    use wa_store::SenderKeyStore;
    let bob = bob().await;
    let pn = ProtocolAddress::new("15550001", 3);
    let lid = ProtocolAddress::new("9001_1", 3);
    let other = ProtocolAddress::new("15550002", 3);
    let g = "123-456@g.us";
    let mut seed = Batch::new();
    seed.put_sender_key(g, "15550001::3", b"pn record")
        .put_sender_key(g, "15550002::3", b"stale")
        .put_sender_key(g, "9002_1::3", b"lid record");
    bob.store.commit(seed).await.unwrap();

    let adapter = SignalStoreAdapter::load(bob.store.clone())
        .await
        .unwrap()
        .staged();
    assert!(adapter.move_sender_key(g, &pn, &lid).await.unwrap());
    // Staged: reads through the adapter see the move, the store does not yet.
    let name = wa_signal::SenderKeyName::new(g, lid.clone());
    let staged = wa_signal::SenderKeyStore::load_sender_key(&adapter, &name)
        .await
        .unwrap();
    assert_eq!(staged.as_deref(), Some(&b"pn record"[..]));
    assert!(
        bob.store
            .get_sender_key(g, "9001_1::3")
            .await
            .unwrap()
            .is_none()
    );
    // Nothing to move the second time, nor from a name that holds nothing.
    assert!(!adapter.move_sender_key(g, &pn, &lid).await.unwrap());
    // The other name already has a record: it wins and the old one is dropped.
    let lid2 = ProtocolAddress::new("9002_1", 3);
    assert!(!adapter.move_sender_key(g, &other, &lid2).await.unwrap());
    adapter.commit(Batch::new()).await.unwrap();

    let get = |k: &'static str| {
        let store = bob.store.clone();
        async move {
            store
                .get_sender_key(g, k)
                .await
                .unwrap()
                .map(|b| b.to_vec())
        }
    };
    assert_eq!(get("9001_1::3").await.as_deref(), Some(&b"pn record"[..]));
    assert_eq!(get("15550001::3").await, None);
    assert_eq!(get("9002_1::3").await.as_deref(), Some(&b"lid record"[..]));
    assert_eq!(get("15550002::3").await, None);
}

#[tokio::test]
async fn a_staged_adapter_lists_the_identities_it_replaced() {
    use wa_signal::IdentityKeyStore as _;
    let bob = bob().await;
    let adapter = SignalStoreAdapter::load(bob.store.clone()).await.unwrap();
    let peer = ProtocolAddress::new("15550002", 0);
    let other = ProtocolAddress::new("15550003", 0);
    let first = generate_identity_key_pair(&mut OsRng).public;
    let second = generate_identity_key_pair(&mut OsRng).public;
    adapter.save_identity(&peer, &first).await.unwrap();

    let staged = adapter.staged();
    // A first identity and the same identity again replace nothing.
    assert!(!staged.save_identity(&other, &first).await.unwrap());
    assert!(!staged.save_identity(&peer, &first).await.unwrap());
    assert!(staged.replaced_identities().is_empty());
    assert!(staged.save_identity(&peer, &second).await.unwrap());
    staged.save_identity(&peer, &first).await.unwrap();
    staged.commit(Batch::new()).await.unwrap();
    assert_eq!(staged.replaced_identities(), vec![peer.clone()]);
    // A direct adapter keeps no list.
    assert!(adapter.save_identity(&peer, &second).await.unwrap());
    assert!(adapter.replaced_identities().is_empty());
}

/// Records the roles each commit writes and how many single reads each role gets.
#[derive(Debug, Default)]
struct Recording {
    commits: std::sync::Mutex<Vec<Vec<Role>>>,
    reads: std::sync::Mutex<Vec<Role>>,
}

impl Tap for Recording {
    fn before_read(&self, role: Role, read: Read) -> BoxFuture<'_, ()> {
        if read == Read::One {
            self.reads.lock().unwrap().push(role);
        }
        done()
    }
    fn before_commit<'a>(&'a self, ops: &'a [Op]) -> BoxFuture<'a, ()> {
        let roles = ops
            .iter()
            .filter_map(|op| match op {
                Op::Put { role, .. } => Some(*role),
                _ => None,
            })
            .collect();
        self.commits.lock().unwrap().push(roles);
        done()
    }
}

#[tokio::test]
async fn a_known_identity_is_not_written_again() {
    let tapped = Arc::new(Tapped::new(MemoryBackend::new(), Recording::default()));
    let bob = bob_on(tapped.clone()).await;
    let recording = tapped.tap();
    let (alice_addr, bob_addr) = (
        ProtocolAddress::new("alice", 0),
        ProtocolAddress::new("bob", 0),
    );
    let alice = SignalRepository::new(
        InMemoryStore::new(generate_identity_key_pair(&mut OsRng), 77),
        OsRng,
    );
    alice
        .inject_e2e_session(&bob_addr, &bundle(&bob, 2).await)
        .await
        .unwrap();
    // Until Bob answers, every message Alice sends is a pkmsg carrying her identity.
    for (n, text) in [b"one", b"two"].into_iter().enumerate() {
        let sent = alice.encrypt_message(&bob_addr, text).await.unwrap();
        assert_eq!(sent.kind, CiphertextType::Pkmsg);
        let adapter = SignalStoreAdapter::load(bob.store.clone()).await.unwrap();
        let staged = SignalRepository::new(adapter.staged(), OsRng);
        let plain = staged
            .decrypt_message(&alice_addr, sent.kind, &sent.ciphertext)
            .await
            .unwrap();
        assert_eq!(plain, text);
        recording.commits.lock().unwrap().clear();
        staged.store().commit(Batch::new()).await.unwrap();
        let commits = recording.commits.lock().unwrap().clone();
        let identities = commits
            .concat()
            .iter()
            .filter(|r| **r == Role::Identity)
            .count();
        assert_eq!(identities, usize::from(n == 0), "message {n}: {commits:?}");
    }
    assert!(bob.store.get_identity("alice", 0).await.unwrap().is_some());
}

#[tokio::test]
async fn a_staged_adapter_reads_each_session_and_identity_once() {
    use wa_signal::{IdentityKeyStore as _, SessionStore as _};
    let tapped = Arc::new(Tapped::new(MemoryBackend::new(), Recording::default()));
    let bob = bob_on(tapped.clone()).await;
    let peer = ProtocolAddress::new("15550002", 3);
    let key = generate_identity_key_pair(&mut OsRng).public;
    SignalStoreAdapter::load(bob.store.clone())
        .await
        .unwrap()
        .save_identity(&peer, &key)
        .await
        .unwrap();
    let reads = || tapped.tap().reads.lock().unwrap().clone();
    let count = |role: Role| reads().iter().filter(|r| **r == role).count();

    // Trusting a sender's identity and then saving it read it once, as does loading a
    // session twice (absent here).
    let staged = SignalStoreAdapter::load(bob.store.clone())
        .await
        .unwrap()
        .staged();
    tapped.tap().reads.lock().unwrap().clear();
    for _ in 0..2 {
        assert!(
            staged
                .is_trusted_identity(&peer, &key, wa_signal::Direction::Receiving)
                .await
                .unwrap()
        );
        assert!(!staged.save_identity(&peer, &key).await.unwrap());
        assert!(staged.load_session(&peer).await.unwrap().is_none());
    }
    assert_eq!(
        (count(Role::Identity), count(Role::Session)),
        (1, 1),
        "{:?}",
        reads()
    );
    // Whether a record is stored is answered from what it read, and sees its own write.
    assert!(!staged.has_session_record(&peer).await.unwrap());
    assert_eq!(count(Role::Session), 1);
    staged
        .store_session(&peer, b"record".to_vec())
        .await
        .unwrap();
    assert!(staged.has_session_record(&peer).await.unwrap());
    assert_eq!(count(Role::Session), 1);
    // A direct adapter reads the store each time.
    let direct = SignalStoreAdapter::load(bob.store.clone()).await.unwrap();
    tapped.tap().reads.lock().unwrap().clear();
    for _ in 0..2 {
        direct.get_identity(&peer).await.unwrap();
    }
    assert_eq!(count(Role::Identity), 2);
    // What a staged adapter writes is what it reads back afterwards.
    let other = generate_identity_key_pair(&mut OsRng).public;
    assert!(staged.save_identity(&peer, &other).await.unwrap());
    assert_eq!(staged.get_identity(&peer).await.unwrap(), Some(other));
}
