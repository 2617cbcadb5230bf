//! Two (or more) in-memory parties exchanging messages: reordering, drops, duplicates,
//! replays, identity changes, simultaneous initiation, bounds.

mod common;

use common::block_on;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wa_signal::{
    CiphertextType, EncryptedMessage, Error, IdentityKeyStore, InMemoryStore, KeyPair,
    MAX_PREVIOUS_STATES, MAX_SKIPPED_KEYS, PreKeyBundle, ProtocolAddress, SessionStore,
    SignalRepository, generate_identity_key_pair, generate_pre_keys, generate_registration_id,
    generate_signed_pre_key,
};

type Repo = SignalRepository<InMemoryStore, StdRng>;

struct Party {
    repo: Repo,
    addr: ProtocolAddress,
    next_pre_key: u32,
}

impl Party {
    fn new(name: &str, seed: u64) -> Self {
        Self::with_identity(name, seed, None)
    }

    fn with_identity(name: &str, seed: u64, identity: Option<KeyPair>) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let identity = identity.unwrap_or_else(|| generate_identity_key_pair(&mut rng));
        let store = InMemoryStore::new(identity.clone(), generate_registration_id(&mut rng));
        store.add_signed_pre_key(generate_signed_pre_key(&identity, 1, 0, &mut rng));
        for pk in generate_pre_keys(1, 20, &mut rng) {
            store.add_pre_key(pk);
        }
        Self {
            repo: SignalRepository::new(store, rng),
            addr: ProtocolAddress::new(name, 0),
            next_pre_key: 1,
        }
    }

    /// What a key fetch for this party would return (consuming one pre-key id).
    fn bundle(&mut self, with_one_time: bool) -> PreKeyBundle {
        block_on(async {
            let store = self.repo.store();
            let identity = store.identity_key_pair().await.unwrap();
            let signed = wa_signal::SignedPreKeyStore::load_signed_pre_key(store, 1)
                .await
                .unwrap()
                .unwrap();
            let pre_key = if with_one_time {
                let id = self.next_pre_key;
                self.next_pre_key += 1;
                let pk = wa_signal::PreKeyStore::load_pre_key(store, id)
                    .await
                    .unwrap()
                    .unwrap();
                Some((id, pk.key_pair.public))
            } else {
                None
            };
            PreKeyBundle {
                registration_id: store.local_registration_id().await.unwrap(),
                device_id: 0,
                pre_key,
                signed_pre_key_id: 1,
                signed_pre_key: signed.key_pair.public,
                signed_pre_key_signature: signed.signature,
                identity_key: identity.public,
            }
        })
    }

    fn encrypt(&self, to: &Party, msg: &[u8]) -> EncryptedMessage {
        block_on(self.repo.encrypt_message(&to.addr, msg)).unwrap()
    }

    fn decrypt(&self, from: &Party, m: &EncryptedMessage) -> Result<Vec<u8>, Error> {
        block_on(self.repo.decrypt_message(&from.addr, m.kind, &m.ciphertext))
    }

    fn stored_session(&self, peer: &Party) -> Option<Vec<u8>> {
        block_on(self.repo.store().load_session(&peer.addr)).unwrap()
    }
}

fn connect(alice: &mut Party, bob: &mut Party) {
    let bundle = bob.bundle(true);
    block_on(alice.repo.inject_e2e_session(&bob.addr, &bundle)).unwrap();
}

#[test]
fn ten_thousand_messages_with_reordering_drops_and_duplicates() {
    let mut alice = Party::new("alice", 1);
    let mut bob = Party::new("bob", 2);
    connect(&mut alice, &mut bob);
    let mut rng = StdRng::seed_from_u64(42);

    // In flight: (sender is alice, sequence number, message, copies left, batch sent in).
    // A message is delivered at the latest when four more batches have been sent after it,
    // which keeps it within the receiver's kept chains (a side moves to a new sending chain
    // at most once per batch it sends).
    let mut in_flight: Vec<(bool, u32, EncryptedMessage, u8, u32)> = Vec::new();
    let mut sent = 0u32;
    let mut batch = 0u32;
    let mut delivered = std::collections::HashSet::new();
    let mut dropped = 0u32;
    let mut duplicates_refused = 0u32;
    let mut bob_has_heard = false;
    const TOTAL: u32 = 10_000;
    const MAX_BATCH_AGE: u32 = 4;

    let deliver = |i: usize,
                   in_flight: &mut Vec<(bool, u32, EncryptedMessage, u8, u32)>,
                   delivered: &mut std::collections::HashSet<u32>,
                   duplicates_refused: &mut u32,
                   bob_has_heard: &mut bool| {
        let (from_alice, seq, m, copies, _) = in_flight[i].clone();
        let (s, r) = if from_alice {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        let result = r.decrypt(s, &m);
        if delivered.insert(seq) {
            let plain = result.unwrap_or_else(|e| panic!("message {seq}: {e}"));
            assert_eq!(plain, format!("message {seq}").into_bytes());
            if from_alice {
                *bob_has_heard = true;
            }
        } else {
            assert!(
                matches!(result, Err(Error::DuplicateMessage { .. })),
                "duplicate of {seq} must be refused, got {result:?}"
            );
            *duplicates_refused += 1;
        }
        if copies > 1 {
            in_flight[i].3 -= 1;
        } else {
            in_flight.swap_remove(i);
        }
    };

    while sent < TOTAL || !in_flight.is_empty() {
        if sent < TOTAL && (in_flight.len() < 10 || rng.gen_bool(0.2)) {
            // Overdue messages first, in random order.
            loop {
                let due: Vec<usize> = (0..in_flight.len())
                    .filter(|&i| in_flight[i].4 + MAX_BATCH_AGE <= batch)
                    .collect();
                if due.is_empty() {
                    break;
                }
                let i = due[rng.gen_range(0..due.len())];
                deliver(
                    i,
                    &mut in_flight,
                    &mut delivered,
                    &mut duplicates_refused,
                    &mut bob_has_heard,
                );
            }
            // A batch from one side (bob only once he has a session).
            let from_alice = !bob_has_heard || rng.gen_bool(0.5);
            for _ in 0..rng.gen_range(1..15) {
                if sent == TOTAL {
                    break;
                }
                let body = format!("message {sent}");
                let (s, r) = if from_alice {
                    (&alice, &bob)
                } else {
                    (&bob, &alice)
                };
                let m = s.encrypt(r, body.as_bytes());
                let copies = if sent > 0 && rng.gen_bool(0.05) {
                    0
                } else if rng.gen_bool(0.1) {
                    2
                } else {
                    1
                };
                if copies == 0 {
                    dropped += 1;
                } else {
                    in_flight.push((from_alice, sent, m, copies, batch));
                }
                sent += 1;
            }
            batch += 1;
        }
        if in_flight.is_empty() {
            continue;
        }
        let i = rng.gen_range(0..in_flight.len());
        if !bob_has_heard && !in_flight[i].0 {
            continue;
        }
        deliver(
            i,
            &mut in_flight,
            &mut delivered,
            &mut duplicates_refused,
            &mut bob_has_heard,
        );
    }
    assert_eq!(delivered.len() as u32 + dropped, TOTAL);
    assert!(dropped > 100, "drops happened: {dropped}");
    assert!(
        duplicates_refused > 100,
        "duplicates happened: {duplicates_refused}"
    );
}

#[test]
fn replayed_message_is_rejected_and_state_unchanged() {
    let mut alice = Party::new("alice", 3);
    let mut bob = Party::new("bob", 4);
    connect(&mut alice, &mut bob);
    let first = alice.encrypt(&bob, b"one");
    assert_eq!(first.kind, CiphertextType::Pkmsg);
    assert_eq!(bob.decrypt(&alice, &first).unwrap(), b"one");
    let reply = bob.encrypt(&alice, b"two");
    assert_eq!(reply.kind, CiphertextType::Msg);
    assert_eq!(alice.decrypt(&bob, &reply).unwrap(), b"two");
    let third = alice.encrypt(&bob, b"three");
    assert_eq!(third.kind, CiphertextType::Msg, "alice stops sending pkmsg");
    assert_eq!(bob.decrypt(&alice, &third).unwrap(), b"three");

    for m in [&first, &third] {
        let before = bob.stored_session(&alice);
        assert!(matches!(
            bob.decrypt(&alice, m),
            Err(Error::DuplicateMessage { .. })
        ));
        assert_eq!(bob.stored_session(&alice), before);
    }
    let before = alice.stored_session(&bob);
    assert!(matches!(
        alice.decrypt(&bob, &reply),
        Err(Error::DuplicateMessage { counter: 0 })
    ));
    assert_eq!(alice.stored_session(&bob), before);
}

#[test]
fn tampered_message_fails_without_touching_the_session() {
    let mut alice = Party::new("alice", 5);
    let mut bob = Party::new("bob", 6);
    connect(&mut alice, &mut bob);
    assert_eq!(
        bob.decrypt(&alice, &alice.encrypt(&bob, b"hi")).unwrap(),
        b"hi"
    );
    // After bob's reply alice sends plain `msg`s (in a `pkmsg` only the inner message is
    // authenticated, not the wrapper's ids).
    assert_eq!(
        alice.decrypt(&bob, &bob.encrypt(&alice, b"re")).unwrap(),
        b"re"
    );
    let m = alice.encrypt(&bob, b"payload");
    assert_eq!(m.kind, CiphertextType::Msg);
    let before = bob.stored_session(&alice);
    for i in [m.ciphertext.len() - 1, m.ciphertext.len() - 20, 5] {
        let mut bad = m.clone();
        bad.ciphertext[i] ^= 0x01;
        let r = bob.decrypt(&alice, &bad);
        assert!(r.is_err(), "flipped byte {i} accepted");
        assert_eq!(bob.stored_session(&alice), before);
    }
    assert_eq!(bob.decrypt(&alice, &m).unwrap(), b"payload");
}

#[test]
fn session_without_one_time_pre_key() {
    let alice = Party::new("alice", 7);
    let mut bob = Party::new("bob", 8);
    let bundle = bob.bundle(false);
    block_on(alice.repo.inject_e2e_session(&bob.addr, &bundle)).unwrap();
    let m = alice.encrypt(&bob, b"no one-time key");
    assert_eq!(m.kind, CiphertextType::Pkmsg);
    assert_eq!(bob.decrypt(&alice, &m).unwrap(), b"no one-time key");
    let r = bob.encrypt(&alice, b"ok");
    assert_eq!(alice.decrypt(&bob, &r).unwrap(), b"ok");
}

#[test]
fn bundle_with_bad_signature_is_refused() {
    let alice = Party::new("alice", 9);
    let mut bob = Party::new("bob", 10);
    let mut bundle = bob.bundle(true);
    bundle.signed_pre_key_signature.0[3] ^= 1;
    assert!(matches!(
        block_on(alice.repo.inject_e2e_session(&bob.addr, &bundle)),
        Err(Error::InvalidSignature)
    ));
    assert!(!block_on(alice.repo.has_session(&bob.addr)).unwrap());
}

#[test]
fn unknown_pre_key_is_a_typed_error() {
    let alice = Party::new("alice", 11);
    let mut bob = Party::new("bob", 12);
    let mut bundle = bob.bundle(true);
    bundle.pre_key = Some((999, bundle.pre_key.unwrap().1));
    block_on(alice.repo.inject_e2e_session(&bob.addr, &bundle)).unwrap();
    let m = alice.encrypt(&bob, b"x");
    assert!(matches!(
        bob.decrypt(&alice, &m),
        Err(Error::InvalidPreKeyId(999))
    ));
    assert!(bob.stored_session(&alice).is_none());
}

#[test]
fn identity_change_is_a_typed_error_the_caller_resolves() {
    let mut alice = Party::new("alice", 13);
    let mut bob = Party::new("bob", 14);
    connect(&mut alice, &mut bob);
    assert_eq!(
        bob.decrypt(&alice, &alice.encrypt(&bob, b"a")).unwrap(),
        b"a"
    );

    // Alice reinstalls: same address, new identity key.
    let mut alice2 = Party::new("alice", 15);
    connect(&mut alice2, &mut bob);
    let m = alice2.encrypt(&bob, b"after reinstall");
    assert!(matches!(
        bob.decrypt(&alice2, &m),
        Err(Error::UntrustedIdentity(ref a)) if a == &alice2.addr
    ));
    // Bob's side refuses to send to the new key too.
    let bundle = alice2.bundle(true);
    assert!(matches!(
        block_on(bob.repo.inject_e2e_session(&alice2.addr, &bundle)),
        Err(Error::UntrustedIdentity(_))
    ));
    // Bob accepts the new identity; the same message now decrypts.
    let alice2_identity = block_on(alice2.repo.store().identity_key_pair()).unwrap();
    let replaced = block_on(
        bob.repo
            .store()
            .save_identity(&alice2.addr, &alice2_identity.public),
    )
    .unwrap();
    assert!(replaced);
    assert_eq!(bob.decrypt(&alice2, &m).unwrap(), b"after reinstall");
    assert_eq!(
        alice2
            .decrypt(&bob, &bob.encrypt(&alice2, b"welcome"))
            .unwrap(),
        b"welcome"
    );
}

#[test]
fn simultaneous_initiation_converges() {
    let mut alice = Party::new("alice", 16);
    let mut bob = Party::new("bob", 17);
    connect(&mut alice, &mut bob);
    connect(&mut bob, &mut alice);
    let a1 = alice.encrypt(&bob, b"a1");
    let b1 = bob.encrypt(&alice, b"b1");
    assert_eq!(
        (a1.kind, b1.kind),
        (CiphertextType::Pkmsg, CiphertextType::Pkmsg)
    );
    assert_eq!(bob.decrypt(&alice, &a1).unwrap(), b"a1");
    assert_eq!(alice.decrypt(&bob, &b1).unwrap(), b"b1");
    // Each now sends on the session the other started; the receiver finds it among its
    // previous states and makes it current.
    for round in 0..4 {
        let a = alice.encrypt(&bob, format!("a{round}").as_bytes());
        assert_eq!(
            bob.decrypt(&alice, &a).unwrap(),
            format!("a{round}").into_bytes()
        );
        let b = bob.encrypt(&alice, format!("b{round}").as_bytes());
        assert_eq!(
            alice.decrypt(&bob, &b).unwrap(),
            format!("b{round}").into_bytes()
        );
        assert_eq!(a.kind, CiphertextType::Msg);
        assert_eq!(b.kind, CiphertextType::Msg);
    }
    let ai = block_on(alice.repo.session_info(&bob.addr))
        .unwrap()
        .unwrap();
    let bi = block_on(bob.repo.session_info(&alice.addr))
        .unwrap()
        .unwrap();
    assert_eq!(ai.base_key, bi.base_key, "both ended on the same session");
}

#[test]
fn forward_jump_is_bounded() {
    let mut alice = Party::new("alice", 18);
    let mut bob = Party::new("bob", 19);
    connect(&mut alice, &mut bob);
    let first = alice.encrypt(&bob, b"first");
    bob.decrypt(&alice, &first).unwrap();
    let msgs: Vec<_> = (0..=MAX_SKIPPED_KEYS + 2)
        .map(|i| alice.encrypt(&bob, &(i as u32).to_be_bytes()))
        .collect();
    // Counters 1..: the last is MAX+2 ahead of the next expected counter (1).
    let last = msgs.last().unwrap();
    let before = bob.stored_session(&alice);
    assert!(matches!(
        bob.decrypt(&alice, last),
        Err(Error::TooFarInFuture { current: 1, .. })
    ));
    assert_eq!(bob.stored_session(&alice), before);
    // Exactly MAX ahead is fine, and the skipped ones still decrypt afterwards.
    let at_max = &msgs[MAX_SKIPPED_KEYS];
    assert_eq!(
        bob.decrypt(&alice, at_max).unwrap(),
        (MAX_SKIPPED_KEYS as u32).to_be_bytes()
    );
    for i in [0usize, 1, 1000, MAX_SKIPPED_KEYS - 1] {
        assert_eq!(
            bob.decrypt(&alice, &msgs[i]).unwrap(),
            (i as u32).to_be_bytes()
        );
    }
}

#[test]
fn previous_states_are_bounded_and_still_tried() {
    let mut alice = Party::new("alice", 20);
    let mut bob = Party::new("bob", 21);
    connect(&mut alice, &mut bob);
    let old = alice.encrypt(&bob, b"old");
    for _ in 0..MAX_PREVIOUS_STATES + 5 {
        let bundle = bob.bundle(false);
        block_on(alice.repo.inject_e2e_session(&bob.addr, &bundle)).unwrap();
    }
    let record =
        wa_signal::SessionRecord::deserialize(&alice.stored_session(&bob).unwrap()).unwrap();
    assert_eq!(record.previous_state_count(), MAX_PREVIOUS_STATES);

    // Bob answers on the oldest still-kept session? He only knows the first one: build it.
    assert_eq!(bob.decrypt(&alice, &old).unwrap(), b"old");
    let reply = bob.encrypt(&alice, b"reply");
    // Alice's first session was pushed out of the bounded list, so this fails cleanly.
    let before = alice.stored_session(&bob);
    assert!(alice.decrypt(&bob, &reply).is_err());
    assert_eq!(alice.stored_session(&bob), before);
}

#[test]
fn recent_previous_state_decrypts_and_becomes_current() {
    let mut alice = Party::new("alice", 22);
    let mut bob = Party::new("bob", 23);
    connect(&mut alice, &mut bob);
    let old = alice.encrypt(&bob, b"old");
    let first_base = block_on(alice.repo.session_info(&bob.addr))
        .unwrap()
        .unwrap()
        .base_key;
    connect(&mut alice, &mut bob); // a newer session, e.g. after a retry
    assert_eq!(bob.decrypt(&alice, &old).unwrap(), b"old");
    let reply = bob.encrypt(&alice, b"reply");
    assert_eq!(alice.decrypt(&bob, &reply).unwrap(), b"reply");
    let now = block_on(alice.repo.session_info(&bob.addr))
        .unwrap()
        .unwrap()
        .base_key;
    assert_eq!(now, first_base);
}

#[test]
fn random_bytes_never_panic_the_decoders() {
    let mut rng = StdRng::seed_from_u64(77);
    let mut alice = Party::new("alice", 24);
    let mut bob = Party::new("bob", 25);
    connect(&mut alice, &mut bob);
    let good = alice.encrypt(&bob, b"seed");
    for _ in 0..2000 {
        let mut m = good.ciphertext.clone();
        let n = rng.gen_range(0..m.len());
        m.truncate(n.max(1));
        for _ in 0..rng.gen_range(0..4) {
            let i = rng.gen_range(0..m.len());
            m[i] = rng.r#gen();
        }
        for kind in [CiphertextType::Pkmsg, CiphertextType::Msg] {
            let _ = block_on(bob.repo.decrypt_message(&alice.addr, kind, &m));
        }
        let _ = block_on(bob.repo.decrypt_group_message("g", &alice.addr, &m));
        let _ = block_on(
            bob.repo
                .process_sender_key_distribution("g", &alice.addr, &m),
        );
    }
}

/// A session record that cannot be read (a damaged store) is no session: a message on
/// the old session fails as one without a session would, and the peer's next pre-key
/// message starts a new one over it.
#[test]
fn an_unreadable_session_is_replaced_by_the_next_pre_key_message() {
    let mut alice = Party::new("alice", 21);
    let mut bob = Party::new("bob", 22);
    connect(&mut alice, &mut bob);
    let first = alice.encrypt(&bob, b"first");
    assert_eq!(bob.decrypt(&alice, &first).unwrap(), b"first");
    let reply = bob.encrypt(&alice, b"reply");
    assert_eq!(alice.decrypt(&bob, &reply).unwrap(), b"reply");

    block_on(
        bob.repo
            .store()
            .store_session(&alice.addr, b"\x0a\x03not a record".to_vec()),
    )
    .unwrap();
    assert!(!block_on(bob.repo.has_session(&alice.addr)).unwrap());
    let on_old = alice.encrypt(&bob, b"on the old session");
    assert_eq!(on_old.kind, CiphertextType::Msg);
    assert!(bob.decrypt(&alice, &on_old).is_err());

    // Alice starts over (as a retry receipt with keys makes her do).
    connect(&mut alice, &mut bob);
    let again = alice.encrypt(&bob, b"again");
    assert_eq!(again.kind, CiphertextType::Pkmsg);
    assert_eq!(bob.decrypt(&alice, &again).unwrap(), b"again");
    assert!(bob.stored_session(&alice).is_some());
    let reply = bob.encrypt(&alice, b"healed");
    assert_eq!(alice.decrypt(&bob, &reply).unwrap(), b"healed");
}
