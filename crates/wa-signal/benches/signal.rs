//! wa-signal benchmarks: session setup from a bundle, encrypt+decrypt on an established
//! session (records serialized and parsed on every store and load, as a real store does),
//! a ping-pong exchange (a DH ratchet step per message), group encrypt and decrypt.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use wa_signal::{
    IdentityKeyStore, InMemoryStore, PreKeyBundle, ProtocolAddress, SignalRepository,
    generate_identity_key_pair, generate_pre_keys, generate_registration_id,
    generate_signed_pre_key,
};

fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

type Repo = SignalRepository<InMemoryStore, StdRng>;

fn party(seed: u64) -> (Repo, PreKeyBundle) {
    let mut rng = StdRng::seed_from_u64(seed);
    let identity = generate_identity_key_pair(&mut rng);
    let store = InMemoryStore::new(identity.clone(), generate_registration_id(&mut rng));
    let signed = generate_signed_pre_key(&identity, 1, 0, &mut rng);
    let pre_key = generate_pre_keys(1, 1, &mut rng).remove(0);
    let bundle = PreKeyBundle {
        registration_id: block_on(store.local_registration_id()).unwrap(),
        device_id: 0,
        pre_key: Some((pre_key.id, pre_key.key_pair.public)),
        signed_pre_key_id: signed.id,
        signed_pre_key: signed.key_pair.public,
        signed_pre_key_signature: signed.signature,
        identity_key: identity.public,
    };
    store.add_signed_pre_key(signed);
    store.add_pre_key(pre_key);
    (SignalRepository::new(store, rng), bundle)
}

/// Alice and Bob with an established session (pkmsg answered, so both send `msg`).
fn established() -> (Repo, Repo, ProtocolAddress, ProtocolAddress) {
    let (alice, _) = party(1);
    let (bob, bundle) = party(2);
    let (a, b) = (
        ProtocolAddress::new("alice", 0),
        ProtocolAddress::new("bob", 0),
    );
    block_on(async {
        alice.inject_e2e_session(&b, &bundle).await.unwrap();
        let m = alice.encrypt_message(&b, b"hello").await.unwrap();
        bob.decrypt_message(&a, m.kind, &m.ciphertext)
            .await
            .unwrap();
        let r = bob.encrypt_message(&a, b"hi").await.unwrap();
        alice
            .decrypt_message(&b, r.kind, &r.ciphertext)
            .await
            .unwrap();
    });
    (alice, bob, a, b)
}

fn session_setup(c: &mut Criterion) {
    let (alice, _) = party(1);
    let (_, bundle) = party(2);
    let mut g = c.benchmark_group("signal");
    g.throughput(Throughput::Elements(1));
    // A new peer each time (no existing record), as when sending to a device for the
    // first time: verify the signed pre-key, X3DH, first ratchet step, serialize, store.
    let mut n = 0u32;
    g.bench_function("session_setup_from_bundle", |bench| {
        bench.iter_custom(|iters| {
            let peers: Vec<ProtocolAddress> = (0..iters)
                .map(|_| {
                    n += 1;
                    ProtocolAddress::new(format!("peer{n}"), 0)
                })
                .collect();
            let start = Instant::now();
            for peer in &peers {
                block_on(alice.inject_e2e_session(peer, black_box(&bundle))).unwrap();
            }
            start.elapsed()
        });
    });
    g.finish();
}

fn encrypt_decrypt(c: &mut Criterion) {
    let (alice, bob, a, b) = established();
    let payload = [0x42u8; 100];
    let mut g = c.benchmark_group("signal");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encrypt_decrypt_100B_pair", |bench| {
        bench.iter(|| {
            block_on(async {
                let m = alice
                    .encrypt_message(&b, black_box(&payload))
                    .await
                    .unwrap();
                bob.decrypt_message(&a, m.kind, &m.ciphertext)
                    .await
                    .unwrap()
            })
        });
    });
    g.bench_function("ping_pong_100B_message", |bench| {
        // Each message changes direction, so each decrypt performs a DH ratchet step (and
        // each first send after it uses the new chain).
        let mut alice_turn = true;
        bench.iter(|| {
            block_on(async {
                let (s, r, to, from) = if alice_turn {
                    (&alice, &bob, &b, &a)
                } else {
                    (&bob, &alice, &a, &b)
                };
                alice_turn = !alice_turn;
                let m = s.encrypt_message(to, black_box(&payload)).await.unwrap();
                r.decrypt_message(from, m.kind, &m.ciphertext)
                    .await
                    .unwrap()
            })
        });
    });
    g.finish();
}

fn group(c: &mut Criterion) {
    let (alice, _) = party(1);
    let (bob, _) = party(2);
    let a = ProtocolAddress::new("alice", 0);
    let group = "120363000000000001@g.us";
    let payload = [0x42u8; 100];
    let mut g = c.benchmark_group("signal");
    g.throughput(Throughput::Elements(1));
    g.bench_function("group_encrypt_100B", |bench| {
        bench.iter(|| {
            block_on(alice.encrypt_group_message(group, &a, black_box(&payload))).unwrap()
        });
    });
    g.bench_function("group_decrypt_100B", |bench| {
        bench.iter_custom(|iters| {
            // A fresh sender key per batch keeps the receiver within the forward bound.
            block_on(alice.rotate_sender_key(group, &a)).unwrap();
            let skdm = block_on(alice.sender_key_distribution_message(group, &a)).unwrap();
            block_on(bob.process_sender_key_distribution(group, &a, &skdm)).unwrap();
            let msgs: Vec<Vec<u8>> = (0..iters)
                .map(|_| {
                    block_on(alice.encrypt_group_message(group, &a, &payload))
                        .unwrap()
                        .ciphertext
                })
                .collect();
            let start = Instant::now();
            for m in &msgs {
                black_box(block_on(bob.decrypt_group_message(group, &a, m)).unwrap());
            }
            start.elapsed()
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = session_setup, encrypt_decrypt, group
}
criterion_main!(benches);
