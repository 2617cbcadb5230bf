//! wa-signal benchmarks: session setup from a bundle, encrypt+decrypt on an established
//! session (records serialized and parsed on every store and load, as a real store does),
//! a ping-pong exchange (a DH ratchet step per message), group encrypt and decrypt.
//!
//! Every benchmark runs twice: group `signal` measures wall-clock time, group
//! `signal_cpu` the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which stays
//! meaningful on a machine shared with other work.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use wa_signal::{
    IdentityKeyStore, InMemoryStore, PreKeyBundle, ProtocolAddress, SessionRecord, SessionStore,
    SignalRepository, generate_identity_key_pair, generate_pre_keys, generate_registration_id,
    generate_signed_pre_key,
};

/// CPU time consumed by the calling thread.
struct ThreadTime {
    wall: WallTime,
}

fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid, exclusive pointer.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

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

fn all<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let mut g = c.benchmark_group(group_name);
    g.throughput(Throughput::Elements(1));
    let payload = [0x42u8; 100];

    // A new peer each time (no existing record), as when sending to a device for the
    // first time: verify the signed pre-key, X3DH, first ratchet step, serialize, store.
    let (alice, _) = party(1);
    let (_, bundle) = party(2);
    let mut n = 0u32;
    g.bench_function("session_setup_from_bundle", |bench| {
        bench.iter_batched(
            || {
                n += 1;
                ProtocolAddress::new(format!("peer{n}"), 0)
            },
            |peer| block_on(alice.inject_e2e_session(&peer, black_box(&bundle))).unwrap(),
            BatchSize::SmallInput,
        );
    });

    let (alice, bob, a, b) = established();
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
    let record = block_on(alice.store().load_session(&b)).unwrap().unwrap();
    g.bench_function("session_record_parse_and_serialize", |bench| {
        bench.iter(|| {
            SessionRecord::deserialize(black_box(&record))
                .unwrap()
                .serialize()
        });
    });
    g.bench_function("ping_pong_100B_message", |bench| {
        // Each message changes direction, so each decrypt performs a DH ratchet step.
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

    let (alice, _) = party(3);
    let (bob, _) = party(4);
    let a = ProtocolAddress::new("alice", 0);
    let group = "120363000000000001@g.us";
    let skdm = block_on(alice.sender_key_distribution_message(group, &a)).unwrap();
    block_on(bob.process_sender_key_distribution(group, &a, &skdm)).unwrap();
    g.bench_function("group_encrypt_100B", |bench| {
        bench.iter(|| {
            block_on(alice.encrypt_group_message(group, &a, black_box(&payload))).unwrap()
        });
    });
    // The receiver follows a second sender that only produces messages for this benchmark,
    // each decrypted in order (so every decrypt is the chain's next message).
    let (carol, _) = party(5);
    let c_addr = ProtocolAddress::new("carol", 0);
    let skdm = block_on(carol.sender_key_distribution_message(group, &c_addr)).unwrap();
    block_on(bob.process_sender_key_distribution(group, &c_addr, &skdm)).unwrap();
    g.bench_function("group_decrypt_100B", |bench| {
        bench.iter_batched(
            || {
                block_on(carol.encrypt_group_message(group, &c_addr, &payload))
                    .unwrap()
                    .ciphertext
            },
            |m| block_on(bob.decrypt_group_message(group, &c_addr, &m)).unwrap(),
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn wall(c: &mut Criterion) {
    all(c, "signal");
}

fn cpu(c: &mut Criterion<ThreadTime>) {
    all(c, "signal_cpu");
}

criterion_group! {
    name = wall_clock;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    targets = wall
}
criterion_group! {
    name = thread_cpu;
    config = Criterion::default()
        .with_measurement(ThreadTime { wall: WallTime })
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    targets = cpu
}
criterion_main!(wall_clock, thread_cpu);
