//! A fleet of accounts over one store: linked with a bound on concurrent handshakes,
//! started again from the store without QR codes, and an unlinked account forgotten.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;
use wa::{AccountId, Event, Fleet, FleetConfig, MemoryBackend};
use wa_sim::{Fault, Sim, SimConfig, StreamErrorKind, Target};

const PHONES: [&str; 4] = ["15550001001", "15550001002", "15550001003", "15550001004"];

fn fleet(sim: &Sim, backend: Arc<MemoryBackend>) -> Fleet {
    let (url, root) = (sim.ws_url(), sim.root_public_key());
    let mut config = FleetConfig::with_configure(move |_, c| {
        c.socket.ws_url = url.clone();
        c.socket.noise_root = root;
        c.socket.initial_pre_keys = 10;
    });
    config.max_handshakes = 1;
    Fleet::new(backend, config)
}

fn id(i: usize) -> AccountId {
    AccountId::new(format!("a{i}").as_str()).unwrap()
}

async fn wait_open(fleet: &Fleet, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut peak = 0;
    while fleet.open_count() < n {
        let now = fleet.handshakes_in_progress();
        assert!(now <= 1, "{now} handshakes at once with a bound of 1");
        peak = peak.max(now);
        assert!(
            Instant::now() < deadline,
            "{} of {n} open",
            fleet.open_count()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_links_restarts_from_the_store_and_forgets_unlinked_accounts() {
    let sim = Arc::new(Sim::start(SimConfig::default()).await.unwrap());
    let backend = Arc::new(MemoryBackend::new());
    let first = fleet(&sim, backend.clone());
    let mut events = first.events();
    for (i, phone) in PHONES.iter().enumerate() {
        sim.add_account(phone).await;
        first.start(id(i)).unwrap();
    }
    // Scan each account's first QR code with its phone.
    let scanner = {
        let sim = sim.clone();
        tokio::spawn(async move {
            let mut scanned = 0;
            while scanned < PHONES.len() {
                match events.recv().await {
                    Ok(e) => {
                        if let Event::Connection(u) = e.event
                            && let Some(qr) = u.qr
                        {
                            let i: usize = e.account.as_str()[1..].parse().unwrap();
                            sim.scan_qr(PHONES[i], &qr).await.unwrap();
                            scanned += 1;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        })
    };
    let peak = wait_open(&first, PHONES.len()).await;
    assert_eq!(peak, 1, "the handshake bound was in use");
    scanner.await.unwrap();
    assert_eq!(first.len(), 4);
    first.shutdown().await;
    assert!(first.is_empty());

    // A second fleet over the same store starts every stored account and logs in.
    let second = fleet(&sim, backend);
    let mut events = second.events();
    assert_eq!(second.stored_accounts().await.unwrap().len(), 4);
    assert_eq!(second.start_stored().await.unwrap(), 4);
    assert_eq!(second.start_stored().await.unwrap(), 0, "already running");
    wait_open(&second, PHONES.len()).await;

    // Unlinking one device from its phone ends that socket for good: the fleet forgets it.
    let me = second.get(&id(2)).unwrap().me().await.unwrap();
    let hit = sim.fault(Fault::StreamError(
        Target::Device(me),
        StreamErrorKind::DeviceRemoved,
    ));
    assert_eq!(hit, 1, "one connection told");
    let deadline = Instant::now() + Duration::from_secs(30);
    while second.get(&id(2)).is_some() {
        assert!(
            Instant::now() < deadline,
            "the unlinked account is still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(second.len(), 3);
    let mut saw_qr = false;
    while let Ok(e) = events.try_recv() {
        if let Event::Connection(u) = e.event {
            saw_qr |= u.qr.is_some();
        }
    }
    assert!(!saw_qr, "stored accounts log in without a QR code");
    second.shutdown().await;
}

/// Messages whose processing had begun when their account was stopped (decrypted and
/// committed, or held with the offline backlog) still reach the fleet's event stream:
/// after a stop in the middle of the backlog and a start, every message arrives exactly
/// once. And a fleet dropped without a shutdown closes its accounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_an_account_in_the_middle_of_its_backlog_loses_no_message() {
    const N: usize = 120;
    let sim = Arc::new(Sim::start(SimConfig::default()).await.unwrap());
    let backend = Arc::new(MemoryBackend::new());
    let fleet = fleet(&sim, backend);
    let mut events = fleet.events();
    for (i, phone) in PHONES[..2].iter().enumerate() {
        sim.add_account(phone).await;
        fleet.start(id(i)).unwrap();
    }
    let mut scanned = 0;
    while scanned < 2 {
        if let Ok(e) = events.recv().await
            && let Event::Connection(u) = e.event
            && let Some(qr) = u.qr
        {
            let i: usize = e.account.as_str()[1..].parse().unwrap();
            sim.scan_qr(PHONES[i], &qr).await.unwrap();
            scanned += 1;
        }
    }
    wait_open(&fleet, 2).await;

    // B's companion is away while A sends; the server queues the messages for it.
    assert!(fleet.stop(&id(1)).await);
    let a = fleet.get(&id(0)).unwrap();
    let to = wa::Jid::pn(PHONES[1]);
    let mut sent = std::collections::HashSet::new();
    for i in 0..N {
        let key = a
            .send_message(&to, wa::MessageContent::text(format!("queued {i}")))
            .await
            .unwrap();
        sent.insert(key.id);
    }

    // B starts and is stopped again soon after it is open, a few times, while the
    // backlog streams in; then it starts for good.
    let mut got: Vec<String> = Vec::new();
    let collect = |e: wa::FleetEvent, got: &mut Vec<String>| -> bool {
        if e.account != id(1) {
            return false;
        }
        match e.event {
            Event::MessagesUpsert(u) => {
                got.extend(u.messages.into_iter().map(|m| m.key.id));
                false
            }
            Event::Connection(u) => u.state == wa::ConnectionState::Open,
            _ => false,
        }
    };
    for delay_ms in [0u64, 5, 10, 20, 40] {
        let mut events = fleet.events();
        fleet.start(id(1)).unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
                Ok(Ok(e)) => {
                    if collect(e, &mut got) {
                        break;
                    }
                }
                Ok(Err(RecvError::Lagged(n))) => panic!("fleet events lagged by {n}"),
                Ok(Err(RecvError::Closed)) | Err(_) => panic!("B never opened"),
            }
        }
        let until = tokio::time::Instant::now() + Duration::from_millis(delay_ms);
        while let Ok(Ok(e)) = tokio::time::timeout_at(until, events.recv()).await {
            collect(e, &mut got);
        }
        // Keep reading while the stop runs: what B reports meanwhile counts.
        let b = id(1);
        let stop = fleet.stop(&b);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                done = &mut stop => { assert!(done); break; }
                e = events.recv() => if let Ok(e) = e { collect(e, &mut got); },
            }
        }
        while let Ok(e) = events.try_recv() {
            collect(e, &mut got);
        }
    }
    let mut events = fleet.events();
    fleet.start(id(1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.iter().collect::<std::collections::HashSet<_>>().len() < N {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(e)) => {
                collect(e, &mut got);
            }
            Ok(Err(RecvError::Lagged(n))) => panic!("fleet events lagged by {n}"),
            Ok(Err(RecvError::Closed)) | Err(_) => break,
        }
    }
    let unique: std::collections::HashSet<&String> = got.iter().collect();
    let missing = sent.iter().filter(|id| !unique.contains(id)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {N} messages never reported ({} reports)",
        got.len()
    );
    assert_eq!(unique.len(), got.len(), "a message was reported twice");

    // A fleet dropped without a shutdown still closes its accounts' connections.
    let me = a.me().await.unwrap();
    assert!(sim.is_online(&me));
    drop(a);
    drop(fleet);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.is_online(&me) {
        assert!(Instant::now() < deadline, "the account stayed connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
