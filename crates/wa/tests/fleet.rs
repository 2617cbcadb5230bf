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
