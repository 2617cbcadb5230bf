//! The soak: N accounts over one store send messages in both directions for a while,
//! one in five to a group of four, with faults injected at random (dropped connections,
//! 515 restarts, a server outage, the server restarted, delayed and duplicated frames,
//! clients killed and started again from the store). At the end every message the server
//! accepted arrived exactly once at its recipient's linked device and its phone (at every
//! other member's, for a group), its sender's phone got its copy, and no recipient
//! needed a retry. `SOAK_GROUP_EVERY` sets how often a message goes to a group (default
//! every fifth; 0 for 1:1 messages only). With `SOAK_STORE_FAULTS=1` the store also
//! refuses one in four commits for two seconds at a time (one more kind of fault, so a
//! seed then picks other faults); a message whose commit fails is stored on a later
//! try, so that needs no retry receipt either.
//!
//! `SOAK_TRACE=<file>` writes the run's log there: which message id each load message
//! was sent as and where it arrived, and `wa-messages`' debug log (`SOAK_TRACE_FILTER`
//! overrides the filter).
//!
//! Opt-in: `cargo test -p wa-load --test soak -- --ignored --nocapture`, sized with
//! `SOAK_ACCOUNTS` (default 10), `SOAK_SECS` (default 60) and `SOAK_RATE` (messages per
//! second, default 2 per account). The store is a SQLite file in a temporary directory;
//! with `SOAK_POSTGRES_URL` set, it is a PostgreSQL database of its own on that server,
//! created for the run and dropped after it (`cargo xtask soak --postgres` starts a
//! throwaway server).

#![allow(clippy::print_stderr, reason = "the soak reports its figures")]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::RwLock;
use wa::postgres::{PostgresBackend, PostgresConfig};
use wa::{Fleet, FleetConfig, Jid, SqliteBackend};
use wa_load::{
    Drive, Traffic, account_of, drive, load_text, make_groups, phone_of, settle, spawn_receiver,
    start_and_link,
};
use wa_sim::{Fault, Sim, SimConfig, StreamErrorKind, Target};
use wa_store::testing::{Tap, Tapped, done};
use wa_store::{BoxFuture, Op};

/// A number from the environment, decimal or `0x` hexadecimal (as the seed is printed).
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        })
        .unwrap_or(default)
}

/// A small xorshift: the soak's choices, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

/// Fails one in four of the store's commits while on, before they reach the store.
#[derive(Debug, Default)]
struct StoreFaults {
    on: AtomicBool,
    commits: AtomicU64,
    failed: AtomicU64,
}

impl Tap for StoreFaults {
    fn before_commit<'a>(&'a self, _ops: &'a [Op]) -> BoxFuture<'a, ()> {
        if !self.on.load(Ordering::SeqCst)
            || !self
                .commits
                .fetch_add(1, Ordering::SeqCst)
                .is_multiple_of(4)
        {
            return done();
        }
        self.failed.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            Err(wa_store::Error::backend(std::io::Error::other(
                "injected store fault",
            )))
        })
    }
}

/// Injects one random fault every 1-4 s until `until`; returns what it injected. With
/// `store`, failing store commits for a while is one of the faults.
async fn inject_faults(
    sim: Arc<RwLock<Sim>>,
    fleet: Fleet,
    n: usize,
    seed: u64,
    until: Instant,
    store: Option<Arc<StoreFaults>>,
) -> HashMap<&'static str, u32> {
    let mut rng = Rng(seed);
    let mut done: HashMap<&'static str, u32> = HashMap::new();
    let kinds = if store.is_some() { 8 } else { 7 };
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(1000 + rng.next(3000))).await;
        let i = rng.next(n as u64) as usize;
        let phone = phone_of(i);
        let kind = match rng.next(kinds) {
            0 => {
                sim.read().await.fault(Fault::Drop(Target::Account(phone)));
                "connection dropped"
            }
            1 => {
                sim.read().await.fault(Fault::StreamError(
                    Target::Account(phone),
                    StreamErrorKind::Restart,
                ));
                "515 restart"
            }
            2 => {
                let s = sim.read().await;
                s.fault(Fault::DelayFrames(Some(Duration::from_millis(150))));
                tokio::time::sleep(Duration::from_secs(2)).await;
                s.fault(Fault::DelayFrames(None));
                "frames delayed"
            }
            3 => {
                let s = sim.read().await;
                s.fault(Fault::DuplicateDelivery(true));
                tokio::time::sleep(Duration::from_secs(2)).await;
                s.fault(Fault::DuplicateDelivery(false));
                "frames duplicated"
            }
            4 => {
                // The server goes away for a moment: every connection drops and logins
                // are refused with 503 until it is back; queues survive, as on the
                // real server.
                let s = sim.read().await;
                s.fault(Fault::RefuseLogins(Some(503)));
                s.fault(Fault::Drop(Target::All));
                tokio::time::sleep(Duration::from_millis(1500)).await;
                s.fault(Fault::RefuseLogins(None));
                "server outage"
            }
            5 => {
                // The server process goes down (connections closed, the port refuses
                // connections for a moment) and comes back with its accounts and queues.
                let downtime = Duration::from_millis(200 + rng.next(1300));
                sim.write()
                    .await
                    .restart(downtime)
                    .await
                    .expect("the server listens again on its address");
                "server restarted"
            }
            7 => {
                // The store fails some commits for a moment (a database failing over).
                if let Some(store) = &store {
                    store.on.store(true, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    store.on.store(false, Ordering::SeqCst);
                }
                "store commits failing"
            }
            _ => {
                let id = account_of(i);
                fleet.stop(&id).await;
                tokio::time::sleep(Duration::from_millis(500 + rng.next(1500))).await;
                fleet
                    .start(id)
                    .expect("the account restarts from the store");
                "client killed and restarted"
            }
        };
        *done.entry(kind).or_default() += 1;
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak: minutes long; run with --ignored"]
async fn soak_with_faults_loses_and_duplicates_nothing() {
    if let Ok(path) = std::env::var("SOAK_TRACE") {
        let filter = std::env::var("SOAK_TRACE_FILTER")
            .unwrap_or_else(|_| "wa_load=debug,wa_messages=debug,warn".to_owned());
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::sync::Mutex::new(
                std::fs::File::create(path).expect("the trace file"),
            ))
            .with_ansi(false)
            .init();
    }
    let n = env_or("SOAK_ACCOUNTS", 10) as usize;
    let secs = env_or("SOAK_SECS", 60);
    let rate = env_or("SOAK_RATE", 2 * n as u64) as f64;
    let seed = env_or("SOAK_SEED", 0x5eed_1234_abcd_0001);
    let on = if postgres_url().is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    eprintln!("soak: {n} accounts on {on}, {secs}s, {rate} msg/s, seed {seed:#x}");

    // The phones keep every message of the run, for the count at the end.
    let sim = Sim::start(SimConfig {
        phone_inbox: usize::MAX,
        ..SimConfig::default()
    })
    .await
    .expect("sim starts");
    for i in 0..n {
        sim.add_account(&phone_of(i)).await;
    }
    let store = Store::open().await;
    let backend = store.backend.clone();
    let (ws_url, root) = (sim.ws_url(), sim.root_public_key());
    let mut config = FleetConfig::with_configure(move |_, c| {
        c.socket.ws_url = ws_url.clone();
        c.socket.noise_root = root;
        c.socket.initial_pre_keys = 30;
        c.socket.backoff = wa::Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            factor: 2.0,
        };
        c.socket.query_timeout = Duration::from_secs(15);
    });
    config.fleet_event_capacity = 1 << 16;
    config.event_capacity = 1024;
    let fleet = Fleet::new(backend, config);
    let accounts: Vec<_> = (0..n).map(|i| (account_of(i), phone_of(i))).collect();
    let sim = Arc::new(RwLock::new(sim));
    let scan_sim = sim.clone();
    start_and_link(
        &fleet,
        &accounts,
        move |phone, qr| {
            let sim = scan_sim.clone();
            async move {
                sim.read()
                    .await
                    .scan_qr(&phone, &qr)
                    .await
                    .map(drop)
                    .map_err(|e| wa_load::Error::Usage(format!("scan for {phone}: {e}")))
            }
        },
        8,
        Duration::from_secs(300),
        |_, _| {},
    )
    .await
    .expect("every account links");

    // One message in this many goes to a group (`SOAK_GROUP_EVERY`, 0 for none).
    let group_every = env_or("SOAK_GROUP_EVERY", 5);
    let groups = if group_every > 0 {
        make_groups(&fleet, n).await.expect("the groups are made")
    } else {
        Vec::new()
    };
    let traffic = Arc::new(Traffic::new());
    let receiver = spawn_receiver(&fleet, traffic.clone());
    let started = Instant::now();
    let store_faults = (env_or("SOAK_STORE_FAULTS", 0) != 0).then(|| store.faults.clone());
    let faults = tokio::spawn(inject_faults(
        sim.clone(),
        fleet.clone(),
        n,
        seed,
        started + Duration::from_secs(secs),
        store_faults.clone(),
    ));
    let failures = drive(
        &fleet,
        n,
        &Drive {
            rate,
            duration: Duration::from_secs(secs),
            in_flight: 64,
            groups: groups.clone(),
            group_every,
        },
        &traffic,
    )
    .await;
    let faults = faults.await.expect("the fault injector ends");
    // Accounts stopped at the very end come back before the final count.
    for (id, _) in &accounts {
        fleet.start(id.clone()).expect("the account restarts");
    }
    let left = settle(&traffic, Duration::from_secs(120)).await;
    let report = traffic.report();
    eprintln!("faults injected: {faults:?}");
    let to_groups = traffic
        .messages()
        .iter()
        .filter(|m| m.group.is_some() && !m.failed)
        .count();
    eprintln!(
        "{} groups; {to_groups} of the messages accepted went to one",
        groups.len()
    );
    eprintln!(
        "sent {} ({failures} sends returned an error), delivered {}, lost {}, duplicated {}, \
         misrouted {}, retries {}, undecryptable at first {}, outstanding {left}, latency p50 \
         {:?} p99 {:?}, took {:.1}s",
        report.sent,
        report.delivered,
        report.lost,
        report.duplicated,
        report.misrouted,
        report.retries,
        report.undecryptable,
        report.p50,
        report.p99,
        started.elapsed().as_secs_f64()
    );
    assert!(report.sent > 0, "messages were sent");
    let undelivered = traffic.undelivered();
    assert_eq!(
        report.lost,
        0,
        "no message lost; missing (from, seq, group, at): {:?}",
        undelivered
            .iter()
            .take(10)
            .map(|m| (m.from, m.seq, m.group, &m.to))
            .collect::<Vec<_>>()
    );
    let twice = traffic.duplicates();
    assert_eq!(
        report.duplicated,
        0,
        "no message reported twice; (from, seq, account, times), group: {:?}",
        twice
            .iter()
            .take(10)
            .map(|d| (
                d,
                traffic
                    .messages()
                    .into_iter()
                    .find(|m| (m.from, m.seq) == (d.0, d.1))
                    .and_then(|m| m.group)
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(report.misrouted, 0, "no message at the wrong account");
    if let Some(store) = &store_faults {
        eprintln!(
            "store commits refused: {}",
            store.failed.load(Ordering::SeqCst)
        );
    }
    // A message whose commit failed was stored on a later try, not asked for again.
    assert_eq!(report.retries, 0, "no session needed a retry");

    // The phones: the recipient's phone decrypted each message once, and the sender's
    // phone got its own copy (DeviceSentMessage) once; a group message, every member's
    // phone once, the sender's included.
    let phone_deadline = Instant::now() + Duration::from_secs(60);
    let expected: Vec<_> = traffic
        .messages()
        .into_iter()
        .filter(|m| !m.failed)
        .collect();
    let count = |inbox: &[wa_sim::PhoneMessage], text: &str, chat: &Jid| {
        inbox
            .iter()
            .filter(|m| wa::message_text(&m.message) == Some(text) && m.chat.user == chat.user)
            .count()
    };
    loop {
        let inboxes: Vec<_> = {
            let s = sim.read().await;
            (0..n).map(|i| s.phone_inbox(&phone_of(i))).collect()
        };
        let mut wrong = Vec::new();
        for m in &expected {
            let text = load_text(m.from, m.seq);
            // (phone, chat it should show the message in)
            let places: Vec<(usize, Jid)> = match m.group {
                Some(g) => std::iter::once(m.from)
                    .chain(m.to.iter().copied())
                    .map(|p| (p, groups[g].0.clone()))
                    .collect(),
                None => vec![
                    (m.to[0], Jid::pn(phone_of(m.from))),
                    (m.from, Jid::pn(phone_of(m.to[0]))),
                ],
            };
            let counts: Vec<usize> = places
                .iter()
                .map(|(p, chat)| count(&inboxes[*p], &text, chat))
                .collect();
            if counts.iter().any(|&c| c != 1) {
                wrong.push((text, counts));
            }
        }
        if wrong.is_empty() {
            break;
        }
        assert!(
            Instant::now() < phone_deadline,
            "{} messages not exactly once on the phones, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    fleet.shutdown().await;
    receiver.abort();
    store.close().await;
}

/// The PostgreSQL server to soak on instead of SQLite (`SOAK_POSTGRES_URL`), if any.
fn postgres_url() -> Option<String> {
    std::env::var("SOAK_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// The fleet's store: a SQLite file in a temporary directory, or a PostgreSQL database
/// made for the run.
struct Store {
    backend: Arc<dyn wa::Backend>,
    /// The store's commit faults (never on unless `SOAK_STORE_FAULTS` is set).
    faults: Arc<StoreFaults>,
    /// Keeps the SQLite file's directory until the end.
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database to drop at the end, and a connection to its server.
    postgres: Option<(tokio_postgres::Client, String)>,
}

impl Store {
    async fn open() -> Self {
        let faults = Arc::new(StoreFaults::default());
        let Some(url) = postgres_url() else {
            let dir = tempfile::tempdir().expect("a temp dir");
            let backend = SqliteBackend::open(dir.path().join("soak.db"))
                .await
                .expect("the store opens");
            return Self {
                backend: Arc::new(Tapped::new(backend, faults.clone())),
                faults,
                _dir: Some(dir),
                postgres: None,
            };
        };
        let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("the PostgreSQL server answers");
        tokio::spawn(conn);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("wa_soak_{}_{stamp}", std::process::id());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("a database for the soak");
        let mut config = PostgresConfig::new(url).with_database(&name);
        // One pool for every account of the fleet.
        config.pool_size = 16;
        let backend = PostgresBackend::connect_with(&config)
            .await
            .expect("the store opens");
        Self {
            backend: Arc::new(Tapped::new(backend, faults.clone())),
            faults,
            _dir: None,
            postgres: Some((admin, name)),
        }
    }

    /// Drops the PostgreSQL database (a failed soak leaves it for a look).
    async fn close(self) {
        let Self {
            backend, postgres, ..
        } = self;
        drop(backend);
        if let Some((admin, name)) = postgres {
            admin
                .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .await
                .expect("the soak's database drops");
        }
    }
}
