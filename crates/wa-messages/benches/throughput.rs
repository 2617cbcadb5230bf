//! Throughput of 1:1 text messages through wa-sim on 127.0.0.1, end to end: 1 000
//! messages per iteration from 64 concurrent senders sharing one companion's `Messenger`,
//! counted until the receiving companion has emitted `MessagesUpsert` for each (memory
//! stores). `examples/throughput.rs` prints the same figure for longer runs and adds a
//! 256-device group fan-out.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_messages::{MessageContent, Messenger, MessengerConfig};
use wa_sim::{Sim, SimConfig};
use wa_socket::{Event, Socket};
use wa_store::{AccountId, AccountStore, MemoryBackend};
use wa_usync::{Usync, UsyncConfig};

struct Client {
    _socket: Socket,
    messenger: Messenger,
    events: broadcast::Receiver<Event>,
}

/// Links a companion of `phone` with a memory store and a large event bus (so counting
/// events never lags).
async fn link(sim: &Sim, phone: &str, name: &str) -> Client {
    let store = AccountStore::new(
        Arc::new(MemoryBackend::new()),
        AccountId::new(name).expect("account id"),
    );
    let mut c = wa_testkit::config(sim, store);
    c.event_capacity = 1 << 14;
    c.initial_pre_keys = 30;
    let (socket, _) = wa_testkit::link_configured(sim, phone, c).await;
    let events = socket.events();
    let usync = Usync::new(socket.clone(), &UsyncConfig::default());
    let messenger = Messenger::new(socket.clone(), usync, MessengerConfig::default());
    Client {
        _socket: socket,
        messenger,
        events,
    }
}

/// Sends `n` texts to `to` from `senders` concurrent tasks; returns the ids.
async fn send_all(m: &Messenger, to: &Jid, n: usize, senders: usize) -> Vec<String> {
    let senders = senders.clamp(1, n.max(1));
    let mut tasks = Vec::new();
    for s in 0..senders {
        let m = m.clone();
        let to = to.clone();
        let count = n / senders + usize::from(s < n % senders);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(count);
            for i in 0..count {
                let text = format!("throughput {s}/{i}");
                let key = m
                    .send_message(&to, MessageContent::text(text))
                    .await
                    .expect("send");
                ids.push(key.id);
            }
            ids
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for t in tasks {
        ids.extend(t.await.expect("sender task"));
    }
    ids
}

/// Counts upserts of messages from other devices until `n` distinct ids were seen.
async fn wait_upserts(events: &mut broadcast::Receiver<Event>, n: usize) {
    let mut seen = HashSet::with_capacity(n);
    while seen.len() < n {
        match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
            Ok(Ok(Event::MessagesUpsert(u))) => {
                for m in u.messages {
                    if !m.key.from_me {
                        seen.insert(m.key.id);
                    }
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(broadcast::error::RecvError::Lagged(k))) => panic!("event bus lagged by {k}"),
            Ok(Err(e)) => panic!("events ended: {e}"),
            Err(_) => panic!("timed out with {} of {n} messages", seen.len()),
        }
    }
}

const PER_ITER: usize = 1000;
const SENDERS: usize = 64;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (a, mut b, _sim) = rt.block_on(async {
        let sim = Sim::start(SimConfig::default()).await.expect("sim");
        let a = link(&sim, "15550000001", "a1").await;
        let mut b = link(&sim, "15550000002", "b1").await;
        let to = Jid::pn("15550000002");
        send_all(&a.messenger, &to, 50, 4).await;
        wait_upserts(&mut b.events, 50).await;
        (a, b, sim)
    });
    let to = Jid::pn("15550000002");
    let mut g = c.benchmark_group("throughput");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(PER_ITER as u64));
    g.bench_function("one_to_one_text_64_senders_memory_store", |bch| {
        bch.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let waiter = wait_upserts(&mut b.events, PER_ITER);
                    tokio::join!(send_all(&a.messenger, &to, PER_ITER, SENDERS), waiter);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
