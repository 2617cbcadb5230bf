//! End-to-end messaging through wa-sim on 127.0.0.1: one text from a companion of A to B,
//! timed from `send_message` until B's companion reports it (usync cached; encryption for
//! B's companion, B's phone and A's phone; store commit; server routing; decryption, commit
//! and receipt on the other side). Memory stores, and B on SQLite (`synchronous=FULL`),
//! bare and behind `CachedBackend`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_messages::{MessageContent, Messenger, MessengerConfig};
use wa_sim::{Sim, SimConfig};
use wa_socket::{ConnectionState, Event, Socket, SocketConfig};
use wa_store::{AccountId, AccountStore, CacheConfig, CachedBackend, MemoryBackend};
use wa_usync::{Usync, UsyncConfig};

struct Client {
    _socket: Socket,
    messenger: Messenger,
    events: broadcast::Receiver<Event>,
}

async fn link(sim: &Sim, phone: &str, store: AccountStore) -> Client {
    let mut c = SocketConfig::new(store);
    c.ws_url = sim.ws_url();
    c.noise_root = sim.root_public_key();
    c.initial_pre_keys = 30;
    let socket = Socket::connect(c);
    let mut events = socket.events();
    let usync = Usync::new(socket.clone(), &UsyncConfig::default());
    let messenger = Messenger::new(socket.clone(), usync, MessengerConfig::default());
    let mut qr = None;
    let mut restarted = false;
    loop {
        match events.recv().await {
            Ok(Event::Connection(u)) => {
                if let Some(q) = u.qr.filter(|_| qr.is_none()) {
                    sim.scan_qr(phone, &q).await.expect("scan"); // invariant: bench setup
                    qr = Some(());
                }
                if u.state == ConnectionState::Closed {
                    restarted = true;
                }
                if restarted && u.state == ConnectionState::Open {
                    break;
                }
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => panic!("events ended: {e}"),
        }
    }
    Client {
        _socket: socket,
        messenger,
        events,
    }
}

async fn round_trip(a: &Client, b: &mut Client, to: &Jid) {
    let key = a
        .messenger
        .send_message(to, MessageContent::text("benchmark text"))
        .await
        .expect("send");
    loop {
        match b.events.recv().await {
            Ok(Event::MessagesUpsert(u)) if u.messages.iter().any(|m| m.key.id == key.id) => {
                return;
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => panic!("events ended: {e}"),
        }
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (a1, mut b_mem, mut b_sql, mut b_cached, _sim) = rt.block_on(async {
        let sim = Sim::start(SimConfig::default()).await.expect("sim");
        for p in ["15550000001", "15550000002", "15550000003", "15550000004"] {
            sim.add_account(p).await;
        }
        let mem = |n: &str| {
            AccountStore::new(
                Arc::new(MemoryBackend::new()),
                AccountId::new(n).expect("id"),
            )
        };
        let a1 = link(&sim, "15550000001", mem("a1")).await;
        let b_mem = link(&sim, "15550000002", mem("b1")).await;
        let backend = wa_store_sqlite::SqliteBackend::open(dir.path().join("b.db"))
            .await
            .expect("sqlite");
        let sql = AccountStore::new(Arc::new(backend), AccountId::new("c1").expect("id"));
        let b_sql = link(&sim, "15550000003", sql).await;
        let backend = wa_store_sqlite::SqliteBackend::open(dir.path().join("c.db"))
            .await
            .expect("sqlite");
        let cached = CachedBackend::new(backend, CacheConfig::default());
        let cached = AccountStore::new(Arc::new(cached), AccountId::new("d1").expect("id"));
        let b_cached = link(&sim, "15550000004", cached).await;
        (a1, b_mem, b_sql, b_cached, sim)
    });
    let mut g = c.benchmark_group("e2e");
    g.measurement_time(Duration::from_secs(5));
    let to_mem = Jid::pn("15550000002");
    g.bench_function("text_round_trip_memory_store", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    round_trip(&a1, &mut b_mem, &to_mem).await;
                }
                start.elapsed()
            })
        })
    });
    let to_sql = Jid::pn("15550000003");
    g.bench_function("text_round_trip_receiver_on_sqlite", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    round_trip(&a1, &mut b_sql, &to_sql).await;
                }
                start.elapsed()
            })
        })
    });
    let to_cached = Jid::pn("15550000004");
    g.bench_function("text_round_trip_receiver_on_cached_sqlite", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    round_trip(&a1, &mut b_cached, &to_cached).await;
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
