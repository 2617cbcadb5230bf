//! Messaging throughput through wa-sim on 127.0.0.1, end to end.
//!
//! `cargo run --release -p wa-messages --example throughput -- one-to-one [messages] [senders]`
//! links one companion of account A and one of account B (memory stores), then lets
//! `senders` tasks share A's `Messenger`, each looping `send_message` (so up to `senders`
//! messages are in flight), and stops the clock when B's companion has emitted
//! `MessagesUpsert` for every message. Each message is encrypted for B's companion,
//! B's phone and A's phone, which all decrypt it.
//!
//! With `STORE=sqlite` the two clients of the 1:1 mode (and the sender of the group
//! mode) keep their state in one SQLite file each (WAL, `synchronous=FULL`, in a temporary directory) instead of memory;
//! `STORE=sqlite-normal` uses `synchronous=NORMAL`; `STORE=postgres` keeps both in the
//! PostgreSQL database at `WA_TEST_POSTGRES_URL` (accounts `a1` and `b1`, cleared first);
//! a `-cached` suffix (e.g. `STORE=sqlite-cached`) puts `wa_store::CachedBackend` in
//! front. With `STORE_CALLS=1` each client's backend is counted (through
//! `wa_store::testing::Tapped`), and the 1:1 mode prints the store calls each client made
//! per message during the timed part.
//!
//! Both modes print each busy thread's CPU time at the end. The runtime has
//! `WORKERS` worker threads (default 2); with `SIM_WORKERS=n`, wa-sim (server and
//! simulated phones) runs on a runtime of its own with `n` threads named `simw`, so the
//! clients' and the server's CPU show apart (e.g. `WORKERS=1 SIM_WORKERS=1`: one
//! thread each).
//!
//! `cargo run --release -p wa-messages --example throughput -- group [messages] [senders] [linked] [phones]`
//! builds one group whose recipient devices are A's phone, B's phone, `linked` linked
//! companions of B and the phones of `phones` more accounts (defaults: 15 and 239, 256
//! devices), sends one warm-up message (sender-key distribution to every device), then
//! times `messages` sends in windows of `senders` concurrent sends, each window waiting
//! for a delivery receipt from every recipient device for each of its messages (a device
//! answers only after it decrypted); the clock stops when every linked companion has also
//! emitted `MessagesUpsert` for every message. It prints sends per
//! second and device deliveries per second.

// An example whose output is its figures.
#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_messages::{MessageContent, Messenger, MessengerConfig};
use wa_sim::{Sim, SimConfig};
use wa_socket::{Event, Socket};
use wa_store::testing::{Read, Tap, Tapped, done};
use wa_store::{
    AccountId, AccountStore, Backend, BoxFuture, CachedBackend, MemoryBackend, Op, Role,
};
use wa_types::ReceiptType;
use wa_usync::{Usync, UsyncConfig};

/// The allocator: glibc's arenas contend when one thread frees what another allocated,
/// which a multi-threaded runtime does all the time (see docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Client {
    socket: Socket,
    messenger: Messenger,
    events: broadcast::Receiver<Event>,
}

/// How a client's events are read: counted (a large bus, so counting never lags) or not
/// at all (the library's default bus, which then holds only the last events).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bus {
    Counted,
    Unread,
}

/// Links a companion of `phone` with a memory store.
async fn link(sim: &Sim, phone: &str, name: &str, bus: Bus) -> Client {
    link_on(sim, phone, name, Arc::new(MemoryBackend::new()), bus).await
}

/// As [`link`], on `backend`.
async fn link_on(
    sim: &Sim,
    phone: &str,
    name: &str,
    backend: Arc<dyn Backend>,
    bus: Bus,
) -> Client {
    let store = AccountStore::new(backend, AccountId::new(name).expect("account id"));
    let mut c = wa_testkit::config(sim, store);
    if bus == Bus::Counted {
        c.event_capacity = 1 << 14;
    }
    c.initial_pre_keys = 30;
    let (socket, _) = wa_testkit::link_configured(sim, phone, c).await;
    let events = socket.events();
    let usync = Usync::new(socket.clone(), &UsyncConfig::default());
    let messenger = Messenger::new(socket.clone(), usync, MessengerConfig::default());
    Client {
        socket,
        messenger,
        events,
    }
}

fn arg(args: &[String], i: usize, default: usize) -> usize {
    args.get(i)
        .map_or(default, |s| s.parse().expect("a number"))
}

/// Store calls of one client, counted with `STORE_CALLS=1`.
#[derive(Debug, Default)]
struct Calls {
    reads: AtomicU64,
    bulk_reads: AtomicU64,
    lists: AtomicU64,
    commits: AtomicU64,
    ops: AtomicU64,
}

impl Calls {
    fn snapshot(&self) -> [u64; 5] {
        [
            &self.reads,
            &self.bulk_reads,
            &self.lists,
            &self.commits,
            &self.ops,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

impl Tap for Calls {
    fn before_read(&self, _: Role, read: Read) -> BoxFuture<'_, ()> {
        let counter = match read {
            Read::One => &self.reads,
            Read::Many(_) => &self.bulk_reads,
            Read::List => &self.lists,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        done()
    }
    fn before_commit<'a>(&'a self, ops: &'a [Op]) -> BoxFuture<'a, ()> {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.ops.fetch_add(ops.len() as u64, Ordering::Relaxed);
        done()
    }
}

/// `b`, behind the cache when `cache`, counted into `calls` when given.
fn finish<B: Backend + 'static>(b: B, cache: bool, calls: Option<Arc<Calls>>) -> Arc<dyn Backend> {
    let config = wa_store::CacheConfig::default;
    match (cache, calls) {
        (true, Some(c)) => Arc::new(Tapped::new(CachedBackend::new(b, config()), c)),
        (true, None) => Arc::new(CachedBackend::new(b, config())),
        (false, Some(c)) => Arc::new(Tapped::new(b, c)),
        (false, None) => Arc::new(b),
    }
}

/// The backend `STORE` names for account `name` (files under `dir`), and its call
/// counts with `STORE_CALLS=1`.
async fn backend(dir: &std::path::Path, name: &str) -> (Arc<dyn Backend>, Option<Arc<Calls>>) {
    let store = std::env::var("STORE").unwrap_or_default();
    let calls = std::env::var("STORE_CALLS")
        .is_ok_and(|v| v == "1")
        .then(|| Arc::new(Calls::default()));
    let on = store.ends_with("cached");
    let backend = if store.starts_with("sqlite") {
        let mut config = wa_store_sqlite::SqliteConfig::new(dir.join(format!("{name}.db")));
        if store.contains("normal") {
            config.synchronous = wa_store_sqlite::Synchronous::Normal;
        }
        let db = wa_store_sqlite::SqliteBackend::open_blocking(&config).expect("sqlite");
        finish(db, on, calls.clone())
    } else if store.starts_with("postgres") {
        let url = std::env::var("WA_TEST_POSTGRES_URL").expect("WA_TEST_POSTGRES_URL");
        let db = wa_store_postgres::PostgresBackend::connect(&url)
            .await
            .expect("postgres");
        // A fresh account each run: the database outlives it.
        let id = AccountId::new(name).expect("account id");
        db.delete_account(&id).await.expect("clear the account");
        finish(db, on, calls.clone())
    } else {
        finish(MemoryBackend::new(), false, calls.clone())
    };
    (backend, calls)
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

async fn one_to_one(args: &[String]) {
    let n = arg(args, 2, 20_000);
    let senders = arg(args, 3, 64);
    let sim = start_sim().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (a_store, a_calls) = backend(dir.path(), "a1").await;
    let (b_store, b_calls) = backend(dir.path(), "b1").await;
    let a = link_on(&sim, "15550000001", "a1", a_store, Bus::Unread).await;
    let mut b = link_on(&sim, "15550000002", "b1", b_store, Bus::Counted).await;
    let to = Jid::pn("15550000002");
    // Warm-up: usync cache and sessions with every device.
    send_all(&a.messenger, &to, 50, 4).await;
    wait_upserts(&mut b.events, 50).await;
    let before = [&a_calls, &b_calls].map(|c| c.as_ref().map(|c| c.snapshot()));

    let start = Instant::now();
    let waiter = async { wait_upserts(&mut b.events, n).await };
    let (ids, ()) = tokio::join!(send_all(&a.messenger, &to, n, senders), waiter);
    let elapsed = start.elapsed();
    assert_eq!(ids.len(), n);
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "one-to-one: {n} messages, {senders} concurrent senders, {:.3} s, {rate:.0} messages/s end to end",
        elapsed.as_secs_f64()
    );
    println!("sim dropped stanzas: {}", sim.dropped_stanzas());
    for ((who, calls), before) in [("A", &a_calls), ("B", &b_calls)].into_iter().zip(before) {
        if let (Some(calls), Some(before)) = (calls, before) {
            let per = |i: usize| (calls.snapshot()[i] - before[i]) as f64 / n as f64;
            println!(
                "{who} store calls per message: {:.2} reads, {:.2} bulk reads, {:.2} lists, \
                 {:.3} commits ({:.1} ops each)",
                per(0),
                per(1),
                per(2),
                per(3),
                per(4) / per(3).max(f64::MIN_POSITIVE),
            );
        }
    }
    print_thread_cpu();
    drop((a.socket, b.socket));
}

async fn group(args: &[String]) {
    let n = arg(args, 2, 200);
    let senders = arg(args, 3, 8);
    let linked = arg(args, 4, 15);
    let phones = arg(args, 5, 239);
    let sim = start_sim().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (a_store, _) = backend(dir.path(), "a1").await;
    let mut a = link_on(&sim, "15550000001", "a1", a_store, Bus::Counted).await;
    let groups = wa_groups::Groups::new(a.socket.clone(), &wa_groups::GroupsConfig::default());
    a.messenger = a.messenger.clone().with_groups(groups);
    let mut companions = Vec::new();
    for i in 0..linked {
        companions.push(link(&sim, "15550000002", &format!("b{i}"), Bus::Counted).await);
    }
    let mut members = vec![Jid::pn("15550000002")];
    for i in 0..phones {
        let p = format!("1556{i:07}");
        sim.add_account(&p).await;
        members.push(Jid::pn(&p));
    }
    let g = sim
        .phone_create_group("15550000001", "throughput", &members)
        .expect("group");
    let devices = 2 + linked + phones;
    // Let every linked device settle the group notification.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let t0 = Instant::now();
    let first = send_all(&a.messenger, &g, 1, 1).await;
    wait_receipts(&mut a.events, &first, devices).await;
    for c in &mut companions {
        wait_upserts(&mut c.events, 1).await;
    }
    println!(
        "group of {devices} recipient devices ({linked} linked companions, {} phones): first send with sender-key distribution {:.3} s",
        phones + 2,
        t0.elapsed().as_secs_f64()
    );

    // A bounded window: `senders` sends in flight, then their deliveries; the sim's phone
    // worker queue (4096 stanzas) would drop a larger burst to 241 phones.
    let start = Instant::now();
    let mut sent = Duration::ZERO;
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let w = senders.min(n - ids.len());
        let t = Instant::now();
        let window = send_all(&a.messenger, &g, w, w).await;
        sent += t.elapsed();
        wait_receipts(&mut a.events, &window, devices).await;
        ids.extend(window);
    }
    for c in &mut companions {
        wait_upserts(&mut c.events, n).await;
    }
    let elapsed = start.elapsed();
    assert_eq!(ids.len(), n);
    println!(
        "group: {n} sends, windows of {senders}: {:.3} s spent sending = {:.0} sends/s (until the server acks)",
        sent.as_secs_f64(),
        n as f64 / sent.as_secs_f64()
    );
    println!(
        "group: {} deliveries (decrypted, receipted) in {:.3} s = {:.0} sends/s end to end, {:.0} device deliveries/s",
        n * devices,
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        (n * devices) as f64 / elapsed.as_secs_f64()
    );
    println!("sim dropped stanzas: {}", sim.dropped_stanzas());
    print_thread_cpu();
}

/// Waits for a delivery receipt (`sender` from our own phone) from `devices` distinct
/// devices for each message in `ids`.
async fn wait_receipts(events: &mut broadcast::Receiver<Event>, ids: &[String], devices: usize) {
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let n = ids.len() * devices;
    let mut seen = HashSet::with_capacity(n);
    while seen.len() < n {
        match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
            Ok(Ok(Event::MessagesUpdate(u))) => {
                for m in u {
                    if matches!(m.receipt, ReceiptType::Delivered | ReceiptType::Sender)
                        && want.contains(m.key.id.as_str())
                    {
                        seen.insert((m.key.id, m.device.to_string()));
                    }
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(broadcast::error::RecvError::Lagged(k))) => panic!("event bus lagged by {k}"),
            Ok(Err(e)) => panic!("events ended: {e}"),
            Err(_) => {
                panic!("timed out with {} of {n} receipts", seen.len());
            }
        }
    }
}

/// Starts wa-sim, on its own runtime when `SIM_WORKERS` is set.
async fn start_sim() -> Sim {
    match SIM_RT.get() {
        Some(rt) => rt
            .spawn(Sim::start(SimConfig::default()))
            .await
            .expect("sim task")
            .expect("sim"),
        None => Sim::start(SimConfig::default()).await.expect("sim"),
    }
}

/// The runtime wa-sim runs on when `SIM_WORKERS` is set (else the main one).
static SIM_RT: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

/// Prints the CPU time of each thread that used more than 0.1 s (Linux; clock ticks of
/// 1/100 s), so a run with `SIM_WORKERS` shows what the clients and the server cost.
fn print_thread_cpu() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        // After the name: state (0), ..., utime (11), stime (12).
        if let (Some(user), Some(sys)) = (ticks(11), ticks(12))
            && user + sys > 10.0
        {
            println!(
                "thread {}: {:.2} s user, {:.2} s sys",
                &stat[open + 1..close],
                user / 100.0,
                sys / 100.0
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workers: usize = std::env::var("WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let _sim_rt = std::env::var("SIM_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|w| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(w.max(1))
                .thread_name("simw")
                .enable_all()
                .build()
                .expect("sim runtime");
            let _ = SIM_RT.set(rt.handle().clone());
            rt
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .expect("runtime");
    // The whole run is a task on the runtime's workers, as an application's event loop
    // would be: under `block_on` the main thread would count B's events itself, a third
    // thread on two cores woken (a futex call each way) about every other message.
    let run = async move {
        match args.get(1).map(String::as_str) {
            Some("group") => group(&args).await,
            _ => one_to_one(&args).await,
        }
    };
    let run = rt.spawn(run);
    rt.block_on(run).expect("the run panicked");
}
