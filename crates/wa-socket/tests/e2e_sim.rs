//! End-to-end tests against wa-sim on 127.0.0.1: QR, pairing-code and passkey linking, login after
//! a restart from SQLite, reconnects after injected faults, terminal disconnects, pre-keys,
//! and 100 linked clients logging in at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_sim::{Fault, QrTiming, Sim, SimConfig, StreamErrorKind, Target};
use wa_socket::{
    Backoff, ConnectionState, ConnectionUpdate, DisconnectReason, Event, Socket, SocketConfig,
};
use wa_store::{AccountId, AccountStore, Backend, CredsStore, MemoryBackend};
use wa_store_sqlite::SqliteBackend;

fn store_on(backend: Arc<dyn Backend>) -> AccountStore {
    AccountStore::new(backend, AccountId::new("e2e").unwrap())
}

fn memory_store() -> AccountStore {
    store_on(Arc::new(MemoryBackend::new()))
}

fn config(sim: &Sim, store: AccountStore) -> SocketConfig {
    let mut c = SocketConfig::new(store);
    c.ws_url = sim.ws_url();
    c.noise_root = sim.root_public_key();
    c.backoff = Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_millis(300),
        factor: 2.0,
    };
    c.connect_timeout = Duration::from_secs(10);
    c.query_timeout = Duration::from_secs(10);
    c
}

async fn sim() -> Sim {
    Sim::start(SimConfig::default()).await.expect("sim starts")
}

/// The next event `pick` takes.
async fn next_event<T>(
    rx: &mut broadcast::Receiver<Event>,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Some(t) = pick(e) {
                        return t;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("event in time")
}

async fn next_update(
    rx: &mut broadcast::Receiver<Event>,
    mut pred: impl FnMut(&ConnectionUpdate) -> bool,
) -> ConnectionUpdate {
    next_event(rx, |e| match e {
        Event::Connection(u) if pred(&u) => Some(u),
        _ => None,
    })
    .await
}

async fn closed_with(rx: &mut broadcast::Receiver<Event>) -> DisconnectReason {
    next_update(rx, |u| u.state == ConnectionState::Closed)
        .await
        .last_disconnect
        .expect("a reason")
}

async fn open(rx: &mut broadcast::Receiver<Event>) -> ConnectionUpdate {
    next_update(rx, |u| u.state == ConnectionState::Open).await
}

async fn first_qr(rx: &mut broadcast::Receiver<Event>) -> String {
    next_update(rx, |u| u.qr.is_some()).await.qr.expect("qr")
}

/// Links a new device to `phone` by QR; returns once it logged in after the 515.
async fn link(
    sim: &Sim,
    phone: &str,
    store: AccountStore,
) -> (Socket, broadcast::Receiver<Event>, Jid) {
    sim.add_account(phone).await;
    let socket = Socket::connect(config(sim, store));
    let mut events = socket.events();
    let qr = first_qr(&mut events).await;
    let jid = sim.scan_qr(phone, &qr).await.expect("scan succeeds");
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::RestartRequired
    );
    let up = open(&mut events).await;
    assert!(up.is_new_login);
    (socket, events, jid)
}

/// Sends a `w:p` ping query and checks that the server answered it with a result.
async fn ping(socket: &Socket) -> Result<(), wa_socket::Error> {
    let reply = socket
        .query(
            wa_binary::Node::builder("iq")
                .attr("to", Jid::server_jid())
                .attr("type", "get")
                .attr("xmlns", "w:p")
                .children([wa_binary::Node::builder("ping").build()])
                .build(),
        )
        .await?;
    assert_eq!(reply.attr::<&str>("type").unwrap(), "result");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_linking_and_login_after_515() {
    let sim = sim().await;
    let store = memory_store();
    let (socket, _events, jid) = link(&sim, "15550000001", store.clone()).await;
    let creds = store.load_creds().await.unwrap().expect("creds saved");
    assert!(creds.registered);
    assert_eq!(creds.jid.as_deref(), Some(jid.to_string().as_str()));
    assert!(creds.account.is_some());
    assert!(sim.is_online(&jid));
    // Pre-keys: the first upload is 812 keys.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.prekey_count(&jid) != Some(812) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sim.prekey_count(&jid), Some(812));
    assert!(
        sim.is_active(&jid),
        "declared itself active after <success>"
    );
    // Queries round-trip with typed errors.
    ping(&socket).await.expect("ping answered");
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_refs_rotate_and_end_with_408() {
    let cfg = SimConfig {
        qr: QrTiming {
            first_ref: Duration::from_millis(300),
            later_ref: Duration::from_millis(100),
            refs: 3,
        },
        ..SimConfig::default()
    };
    let sim = Sim::start(cfg).await.unwrap();
    let mut c = config(&sim, memory_store());
    c.qr_first_timeout = Duration::from_millis(300);
    c.qr_timeout = Duration::from_millis(100);
    let socket = Socket::connect(c);
    let mut events = socket.events();
    let mut refs = Vec::new();
    for _ in 0..3 {
        let qr = first_qr(&mut events).await;
        let r = qr
            .trim_start_matches(wa_socket::QR_PREFIX)
            .split(',')
            .next()
            .unwrap()
            .to_owned();
        refs.push(r);
    }
    refs.dedup();
    assert_eq!(refs.len(), 3, "each QR event carries the next ref");
    assert_eq!(closed_with(&mut events).await, DisconnectReason::TimedOut);
    socket.close().await;
}

/// A fresh socket for the new account `phone`, past its first QR, and its events.
async fn unlinked(sim: &Sim, phone: &str) -> (Socket, broadcast::Receiver<Event>) {
    sim.add_account(phone).await;
    let socket = Socket::connect(config(sim, memory_store()));
    let mut events = socket.events();
    first_qr(&mut events).await;
    (socket, events)
}

/// `phone`'s phone takes `code`: the socket links, restarts and logs in as a new device.
async fn enter_code(
    sim: &Sim,
    phone: &str,
    code: &str,
    events: &mut broadcast::Receiver<Event>,
) -> Jid {
    let jid = sim
        .enter_pairing_code(phone, code)
        .await
        .expect("code accepted");
    assert_eq!(closed_with(events).await, DisconnectReason::RestartRequired);
    assert!(open(events).await.is_new_login);
    assert!(sim.is_online(&jid));
    jid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_code_linking() {
    let sim = sim().await;
    let phone = "15550000002";
    let (socket, mut events) = unlinked(&sim, phone).await;
    let code = socket
        .request_pairing_code(phone)
        .await
        .expect("code issued");
    assert_eq!(code.len(), 8);
    let jid = enter_code(&sim, phone, &code, &mut events).await;
    let creds = socket.auth().await.unwrap();
    assert_eq!(creds.jid.as_deref(), Some(jid.to_string().as_str()));
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_pairing_code_linking() {
    let sim = sim().await;
    let phone = "15550000012";
    let (socket, mut events) = unlinked(&sim, phone).await;
    for bad in [
        "ABCD123",
        "ABCD12345",
        "ABCD-123",
        "ÄBCD123",
        "RUST2026",
        "OPIUM123",
    ] {
        assert!(matches!(
            socket.request_custom_pairing_code(phone, bad).await,
            Err(wa_socket::Error::InvalidInput(_))
        ));
    }
    let code = socket
        .request_custom_pairing_code(phone, "wake2y26")
        .await
        .expect("code issued");
    assert_eq!(code, "WAKE2Y26");
    let pushed = next_event(&mut events, |e| match e {
        Event::PairingCode(c) => Some(c),
        _ => None,
    })
    .await;
    assert_eq!(pushed, code);
    // The phone takes the code as its user types it.
    enter_code(&sim, phone, "wake-2y26", &mut events).await;
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_after_restart_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    let sim = sim().await;
    let jid = {
        let backend = Arc::new(SqliteBackend::open(&path).await.unwrap());
        let (socket, mut events, jid) = link(&sim, "15550000003", store_on(backend)).await;
        socket.close().await;
        assert_eq!(
            closed_with(&mut events).await,
            DisconnectReason::ClosedByUser
        );
        jid
    };
    // A new process: the same database (behind a read cache this time), no QR.
    let backend = Arc::new(SqliteBackend::open(&path).await.unwrap());
    let mut c = config(&sim, store_on(backend));
    c.cache = Some(wa_store::CacheConfig::default());
    let socket = Socket::connect(c);
    let mut events = socket.events();
    let up = next_update(&mut events, |u| {
        u.state == ConnectionState::Open || u.qr.is_some()
    })
    .await;
    assert_eq!(up.state, ConnectionState::Open, "logs in without a QR");
    assert!(!up.is_new_login);
    assert!(sim.is_online(&jid));
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_each_fault() {
    let sim = sim().await;
    let (socket, mut events, jid) = link(&sim, "15550000004", memory_store()).await;
    let target = || Target::Device(jid.clone());

    assert_eq!(sim.fault(Fault::Drop(target())), 1);
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::ConnectionClosed
    );
    open(&mut events).await;

    sim.fault(Fault::StreamError(
        target(),
        StreamErrorKind::ServiceUnavailable,
    ));
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::ServiceUnavailable
    );
    open(&mut events).await;

    sim.fault(Fault::StreamError(target(), StreamErrorKind::Restart));
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::RestartRequired
    );
    open(&mut events).await;

    // Logins refused with 503 for a while: backoff retries until accepted again.
    sim.fault(Fault::RefuseLogins(Some(503)));
    sim.fault(Fault::Drop(target()));
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::ConnectionClosed
    );
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::ServiceUnavailable
    );
    sim.fault(Fault::RefuseLogins(None));
    open(&mut events).await;
    assert!(sim.is_online(&jid));
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_peer_detected_by_keep_alive() {
    let sim = sim().await;
    let phone = "15550000005";
    sim.add_account(phone).await;
    let mut c = config(&sim, memory_store());
    c.keep_alive_interval = Duration::from_millis(200);
    c.keep_alive_timeout = Duration::from_millis(400);
    let socket = Socket::connect(c);
    let mut events = socket.events();
    let qr = first_qr(&mut events).await;
    sim.scan_qr(phone, &qr).await.unwrap();
    open(&mut events).await;
    sim.fault(Fault::IgnorePings(true));
    assert_eq!(closed_with(&mut events).await, DisconnectReason::TimedOut);
    sim.fault(Fault::IgnorePings(false));
    open(&mut events).await;
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_is_terminal() {
    let sim = sim().await;
    let store = memory_store();
    let (socket, mut events, jid) = link(&sim, "15550000006", store.clone()).await;
    sim.fault(Fault::StreamError(
        Target::Device(jid.clone()),
        StreamErrorKind::Replaced,
    ));
    assert_eq!(closed_with(&mut events).await, DisconnectReason::Replaced);
    tokio::time::timeout(Duration::from_secs(5), socket.closed())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!sim.is_online(&jid), "no reconnect after replaced");
    assert!(store.load_creds().await.unwrap().is_some(), "creds kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_out_is_terminal_and_clears_creds() {
    let sim = sim().await;
    let store = memory_store();
    let (socket, mut events, jid) = link(&sim, "15550000007", store.clone()).await;
    sim.fault(Fault::StreamError(
        Target::Device(jid.clone()),
        StreamErrorKind::DeviceRemoved,
    ));
    assert_eq!(closed_with(&mut events).await, DisconnectReason::LoggedOut);
    tokio::time::timeout(Duration::from_secs(5), socket.closed())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!sim.is_online(&jid), "no reconnect after logged out");
    assert!(store.load_creds().await.unwrap().is_none(), "creds cleared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)]
async fn hundred_linked_clients_log_in_concurrently() {
    let sim = Arc::new(sim().await);
    let mut stores = Vec::new();
    // Link the 100 devices ten at a time.
    for batch in 0..10 {
        let mut linking = Vec::new();
        for i in 0..10 {
            let sim = sim.clone();
            linking.push(tokio::spawn(async move {
                let phone = format!("1555100{:04}", batch * 10 + i);
                let store = memory_store();
                let (socket, _events, _jid) = link(&sim, &phone, store.clone()).await;
                socket.close().await;
                store
            }));
        }
        for l in linking {
            stores.push(l.await.unwrap());
        }
    }
    let started = Instant::now();
    let mut sockets = Vec::new();
    let mut waits = Vec::new();
    for store in stores {
        let socket = Socket::connect(config(&sim, store));
        let mut events = socket.events();
        waits.push(tokio::spawn(async move {
            let up = next_update(&mut events, |u| {
                u.state == ConnectionState::Open || u.qr.is_some()
            })
            .await;
            up.state == ConnectionState::Open
        }));
        sockets.push(socket);
    }
    for w in waits {
        assert!(w.await.unwrap(), "logged in without a QR");
    }
    let took = started.elapsed();
    assert!(sockets.iter().all(|s| s.state() == ConnectionState::Open));
    println!("100 concurrent logins took {took:?}");
    for s in &sockets {
        s.close().await;
    }
}

/// An HTTP CONNECT proxy that counts the tunnels it opened.
async fn counting_http_proxy() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let count = c2.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let Ok(b) = client.read_u8().await else {
                        return;
                    };
                    head.push(b);
                }
                let head = String::from_utf8(head).unwrap();
                let target = head.split_whitespace().nth(1).unwrap().to_owned();
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_private_root_through_http_proxy() {
    use tokio_rustls::rustls;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.signing_key.serialize_der(),
    ));
    let server_tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let sim = Sim::start(SimConfig {
        tls: Some(Arc::new(server_tls)),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client_tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (proxy_port, tunnels) = counting_http_proxy().await;

    let phone = "15550000008";
    sim.add_account(phone).await;
    let mut c = config(&sim, memory_store());
    c.ws_url = format!("wss://localhost:{}/ws/chat", sim.local_addr().port());
    c.tls = Some(Arc::new(client_tls));
    c.proxy = Some(wa_socket::Proxy::parse(&format!("http://127.0.0.1:{proxy_port}")).unwrap());
    let socket = Socket::connect(c);
    let mut events = socket.events();
    let qr = first_qr(&mut events).await;
    let jid = sim.scan_qr(phone, &qr).await.unwrap();
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::RestartRequired
    );
    open(&mut events).await;
    assert!(sim.is_online(&jid));
    assert_eq!(
        tunnels.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "registration and login both went through the proxy"
    );
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_removed_while_offline_logs_out_on_next_login() {
    let sim = sim().await;
    let store = memory_store();
    let (socket, mut events, jid) = link(&sim, "15550000009", store.clone()).await;
    assert!(sim.remove_device(&jid));
    sim.fault(Fault::Drop(Target::Device(jid.clone())));
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::ConnectionClosed
    );
    // The next login is refused with <failure reason="401">: terminal, creds cleared.
    assert_eq!(closed_with(&mut events).await, DisconnectReason::LoggedOut);
    tokio::time::timeout(Duration::from_secs(5), socket.closed())
        .await
        .unwrap();
    assert!(store.load_creds().await.unwrap().is_none());
}

/// The next `DirtyBits` event of `kind`.
async fn next_dirty(rx: &mut broadcast::Receiver<Event>, kind: &str) -> wa_types::DirtyBits {
    next_event(rx, |e| match e {
        Event::DirtyBits(d) if d.kind == kind => Some(d),
        _ => None,
    })
    .await
}

/// `<ib><dirty type="account_sync">`, live or at login: the socket records the time in
/// the credentials and cleans the flag; other kinds are only reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_sync_dirty_bits_are_recorded_and_cleaned() {
    let sim = sim().await;
    let phone = "15550000031";
    let store = memory_store();
    let (socket, mut events, _) = link(&sim, phone, store.clone()).await;

    let t = sim.mark_dirty(phone, "account_sync").expect("flagged");
    let d = next_dirty(&mut events, "account_sync").await;
    assert_eq!(d.timestamp, Some(t));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sim.dirty_flags(phone).is_empty() {
        assert!(Instant::now() < deadline, "flag not cleaned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sim.dirty_cleaned(phone),
        [("account_sync".to_owned(), Some(t))]
    );
    let creds = store.load_creds().await.unwrap().unwrap();
    assert_eq!(creds.last_account_sync_timestamp, Some(t));

    // A kind the socket does not own is reported and left flagged; a login gets it again.
    sim.mark_dirty(phone, "groups").expect("flagged");
    next_dirty(&mut events, "groups").await;
    socket.close().await;
    let socket = Socket::connect(config(&sim, store));
    let mut events = socket.events_from_start();
    next_dirty(&mut events, "groups").await;
    assert_eq!(sim.dirty_flags(phone), ["groups"]);
    assert_eq!(sim.dirty_cleaned(phone).len(), 1);
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_bundle_is_checked_and_the_signed_pre_key_rotated() {
    use wa_store::SignedPreKeyStore;
    let sim = sim().await;
    let store = memory_store();
    let (socket, _events, jid) = link(&sim, "15550000001", store.clone()).await;
    // The login's own check found the uploaded bundle in order: one upload only.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.prekey_count(&jid) != Some(812) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(socket.verify_key_bundle().await.unwrap());
    assert_eq!(sim.prekey_count(&jid), Some(812));

    // Rotation: the new key is current once the server took it; the old one stays
    // stored for sessions started against it.
    assert_eq!(socket.rotate_signed_pre_key().await.unwrap(), 2);
    let creds = store.load_creds().await.unwrap().unwrap();
    assert_eq!(creds.signed_pre_key.id, 2);
    assert!(socket.verify_key_bundle().await.unwrap());
    assert!(store.get_signed_pre_key(1).await.unwrap().is_some());
    assert!(store.get_signed_pre_key(2).await.unwrap().is_some());
    assert_eq!(socket.rotate_signed_pre_key().await.unwrap(), 3);
    assert!(store.get_signed_pre_key(1).await.unwrap().is_none());
    assert!(store.get_signed_pre_key(2).await.unwrap().is_some());

    // The server's copy goes stale (another signed pre-key under our name): the check
    // says so and uploads ours again, after which it is in order.
    let other = wa_store::AuthCreds::generate(&mut rand::rngs::OsRng);
    let skey = &other.signed_pre_key;
    let stale = wa_binary::Node::builder("iq")
        .attr("to", Jid::server_jid())
        .attr("type", "set")
        .attr("xmlns", "encrypt")
        .children([wa_binary::Node::builder("rotate")
            .children([wa_binary::Node::builder("skey")
                .children([
                    wa_binary::Node::builder("id").bytes(vec![0, 0, 9]).build(),
                    wa_binary::Node::builder("value")
                        .bytes(skey.key_pair.public.as_bytes().to_vec())
                        .build(),
                    wa_binary::Node::builder("signature")
                        .bytes(skey.signature.as_bytes().to_vec())
                        .build(),
                ])
                .build()])
            .build()])
        .build();
    socket.query(stale).await.unwrap();
    assert!(!socket.verify_key_bundle().await.unwrap());
    assert!(socket.verify_key_bundle().await.unwrap());
    socket.close().await;
}

async fn next_timelock(rx: &mut broadcast::Receiver<Event>) -> wa_types::ReachoutTimelock {
    next_event(rx, |e| match e {
        Event::ReachoutTimelock(t) => Some(t),
        _ => None,
    })
    .await
}

/// The reach-out timelock and the new-chat cap: pushed by the server (live and to a
/// device that was offline), reported as events, and fetched over `w:mex`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_restrictions_are_reported_and_fetched() {
    use wa_types::{NewChatMessageCap, ReachoutTimelock};
    let sim = sim().await;
    let phone = "15550000032";
    let store = memory_store();
    let (socket, mut events, _) = link(&sim, phone, store.clone()).await;

    // Nothing set: not restricted (a fetch is reported too, as Baileys reports it).
    assert_eq!(
        socket.reachout_timelock().await.unwrap(),
        ReachoutTimelock::lifted()
    );
    assert_eq!(next_timelock(&mut events).await, ReachoutTimelock::lifted());

    sim.set_reachout_timelock(phone, Some(1_900_000_000), "BIZ_QUALITY");
    let set = ReachoutTimelock {
        active: true,
        ends_at: Some(1_900_000_000),
        enforcement: "BIZ_QUALITY".into(),
    };
    assert_eq!(next_timelock(&mut events).await, set);
    assert_eq!(socket.reachout_timelock().await.unwrap(), set);
    next_timelock(&mut events).await;

    // Open-ended: the notification names no end, which means a minute from its arrival;
    // the fetch says there is no end.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    sim.set_reachout_timelock(phone, None, "WEB_COMPANION_ONLY");
    let t = next_timelock(&mut events).await;
    assert!(t.active);
    assert_eq!(t.enforcement, "WEB_COMPANION_ONLY");
    let ends = t.ends_at.expect("an end");
    assert!(
        (before + 60..=before + 70).contains(&ends),
        "{ends} vs {before}"
    );
    let fetched = socket.reachout_timelock().await.unwrap();
    assert_eq!((fetched.active, fetched.ends_at), (true, None));
    next_timelock(&mut events).await;

    sim.lift_reachout_timelock(phone);
    assert_eq!(next_timelock(&mut events).await, ReachoutTimelock::lifted());

    // The cap: WhatsApp's defaults until the server sets one, then pushed and fetched.
    let cap = socket.new_chat_message_cap().await.unwrap();
    assert_eq!(cap.capping_status.as_deref(), Some("NONE"));
    assert_eq!(cap.total_quota, None);
    assert!(sim.set_new_chat_message_cap(
        phone,
        serde_json::json!({ "total_quota": 20, "used_quota": 19,
            "cycle_end_timestamp": "1900000000", "capping_status": "SECOND_WARNING" })
    ));
    let want = NewChatMessageCap {
        total_quota: Some(20),
        used_quota: Some(19),
        cycle_end: Some(1_900_000_000),
        capping_status: Some("SECOND_WARNING".into()),
        ..Default::default()
    };
    let pushed = next_event(&mut events, |e| match e {
        Event::NewChatMessageCap(c) => Some(c),
        _ => None,
    })
    .await;
    assert_eq!(pushed, want);
    assert_eq!(socket.new_chat_message_cap().await.unwrap(), want);
    assert!(!sim.set_new_chat_message_cap(phone, serde_json::json!([1])));

    // Set while the device is offline: delivered at the next login.
    socket.close().await;
    sim.set_reachout_timelock(phone, Some(1_800_000_000), "DEFAULT");
    let socket = Socket::connect(config(&sim, store));
    let mut events = socket.events_from_start();
    assert_eq!(
        next_timelock(&mut events).await.ends_at,
        Some(1_800_000_000)
    );
    socket.close().await;
}

/// A WAM buffer reaches the server whole; a buffer that is not one is refused locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wam_buffers_are_sent_to_the_stats_endpoint() {
    use wa_socket::wam::{self, WamEvent};
    let sim = sim().await;
    let phone = "15550000033";
    let (socket, _events, _) = link(&sim, phone, memory_store()).await;
    let event = WamEvent::named("WamDroppedEvent")
        .unwrap()
        .set("droppedEventCode", 7)
        .unwrap()
        .set_global("appBuild", 4)
        .unwrap();
    let buffer = wam::encode(1, &[event]);
    socket.send_wam_buffer(buffer.clone()).await.unwrap();
    assert_eq!(sim.wam_buffers(phone), [buffer]);
    assert!(matches!(
        socket.send_wam_buffer(b"not wam".to_vec()).await,
        Err(wa_socket::Error::InvalidInput(_))
    ));
    assert_eq!(sim.wam_buffers(phone).len(), 1);
    socket.close().await;
}

/// The server's props are saved with their hash in the credentials: they hold from the
/// start of the next connection, whose query names the hash and gets no props back
/// while the set is unchanged; a changed set replaces them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_props_are_kept_across_connections_by_hash() {
    let sim = sim().await;
    let phone = "15550000034";
    let store = memory_store();
    sim.set_server_prop(wa_socket::PROP_PRIVACY_TOKEN_ON_1TO1, Some("false"));
    let (socket, _events, _) = link(&sim, phone, store.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.server_props().hash.is_none() {
        assert!(Instant::now() < deadline, "props never fetched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = socket.server_props();
    assert!(!first.privacy_token_on_1to1);
    let saved = store.load_creds().await.unwrap().unwrap();
    assert_eq!(saved.last_prop_hash, first.hash);
    assert_eq!(saved.server_props, first.props);
    socket.close().await;

    // The next connection starts with them and asks by hash.
    let before = sim.props_query_hashes(phone).len();
    let socket = Socket::connect(config(&sim, store.clone()));
    let mut events = socket.events_from_start();
    open(&mut events).await;
    assert!(!socket.server_props().privacy_token_on_1to1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.props_query_hashes(phone).len() <= before {
        assert!(
            Instant::now() < deadline,
            "no props query on the new connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sim.props_query_hashes(phone)[before],
        first.hash,
        "{before} {:?}",
        sim.props_query_hashes(phone)
    );
    assert_eq!(socket.server_props(), first, "an unchanged set is kept");

    // A changed set comes whole and replaces them, in memory and in the credentials.
    sim.set_server_prop(wa_socket::PROP_PRIVACY_TOKEN_ON_1TO1, None);
    sim.set_server_prop("123", Some("x"));
    let now = socket.fetch_server_props().await.unwrap();
    assert!(now.privacy_token_on_1to1);
    assert_eq!(now.get("123"), Some("x"));
    assert_ne!(now.hash, first.hash);
    let saved = store.load_creds().await.unwrap().unwrap();
    assert_eq!(saved.server_props, now.props);
    assert_eq!(saved.last_prop_hash, now.hash);
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_keys_are_uploaded_on_request() {
    let sim = sim().await;
    let (socket, _events, jid) = link(&sim, "15550000013", memory_store()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.prekey_count(&jid) != Some(812) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sim.prekey_count(&jid), Some(812));
    let next = socket.auth().await.unwrap().next_pre_key_id;

    // Enough on the server: the check uploads nothing.
    socket.upload_pre_keys_if_required().await.unwrap();
    assert_eq!(sim.prekey_count(&jid), Some(812));
    // An explicit upload adds fresh keys with new ids, counted in the credentials.
    socket.upload_pre_keys(25).await.unwrap();
    assert_eq!(sim.prekey_count(&jid), Some(837));
    let creds = socket.auth().await.unwrap();
    assert_eq!(creds.next_pre_key_id, next + 25);
    assert_eq!(creds.first_unuploaded_pre_key_id, next + 25);
    for bad in [0, wa_socket::MAX_PRE_KEY_UPLOAD + 1] {
        assert!(matches!(
            socket.upload_pre_keys(bad).await,
            Err(wa_socket::Error::InvalidInput(_))
        ));
    }
    assert_eq!(sim.prekey_count(&jid), Some(837));
    socket.close().await;
}

/// [`link`] with the configuration changed by `tune` first.
async fn link_tuned(
    sim: &Sim,
    phone: &str,
    tune: impl FnOnce(&mut SocketConfig),
) -> (Socket, broadcast::Receiver<Event>, Jid) {
    sim.add_account(phone).await;
    let mut cfg = config(sim, memory_store());
    tune(&mut cfg);
    let socket = Socket::connect(cfg);
    let mut events = socket.events_from_start();
    let qr = first_qr(&mut events).await;
    let jid = sim.scan_qr(phone, &qr).await.expect("scan succeeds");
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::RestartRequired
    );
    open(&mut events).await;
    (socket, events, jid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairing_the_pre_pair_check_refuses_fails_and_saves_nothing() {
    let sim = sim().await;
    let phone = "15550000031";
    sim.add_account(phone).await;
    let store = memory_store();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut cfg = config(&sim, store.clone());
    let record = seen.clone();
    cfg.pre_pair = Some(Arc::new(move |ps: &wa_socket::PairSuccess| {
        record.lock().unwrap().push(ps.jid.clone());
        false
    }));
    let socket = Socket::connect(cfg);
    let mut events = socket.events_from_start();
    let qr = first_qr(&mut events).await;
    let err = sim
        .scan_qr(phone, &qr)
        .await
        .expect_err("the companion refuses");
    assert!(err.to_string().contains("error"), "{err}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].user, phone, "the check saw the JID being linked");
    let creds = store.load_creds().await.unwrap().expect("creds exist");
    assert!(!creds.registered, "nothing of the pairing was saved");
    assert!(creds.jid.is_none());
    assert!(socket.me().await.is_none());
    // Still unpaired: further QR codes come.
    first_qr(&mut events).await;
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_hook_can_turn_reconnecting_off_but_a_reset_still_reconnects() {
    let sim = sim().await;
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = asked.clone();
    // Declines everything except the 515 after pairing.
    let (socket, mut events, jid) = link_tuned(&sim, "15550000032", move |c| {
        c.reconnect = Some(Arc::new(move |reason, attempt| {
            record.lock().unwrap().push((reason, attempt));
            reason == DisconnectReason::RestartRequired
        }));
    })
    .await;
    assert_eq!(
        asked.lock().unwrap().as_slice(),
        [(DisconnectReason::RestartRequired, 0)]
    );

    // A reset drops the connection and connects again at once, without asking.
    socket.reset_connection();
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::ResetByUser
    );
    open(&mut events).await;
    assert_eq!(asked.lock().unwrap().len(), 1);

    // A dropped connection: the hook is asked and declines; the socket stays closed.
    sim.fault(Fault::Drop(Target::Device(jid.clone())));
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::ConnectionClosed
    );
    tokio::time::timeout(Duration::from_secs(10), socket.closed())
        .await
        .expect("the socket stops");
    assert_eq!(socket.state(), ConnectionState::Closed);
    // One `Closed` for the ending, not a second when the socket stops.
    let mut more = 0;
    while let Ok(e) = events.try_recv() {
        if matches!(e, Event::Connection(u) if u.state == ConnectionState::Closed) {
            more += 1;
        }
    }
    assert_eq!(more, 0, "closed reported once");
    assert_eq!(
        asked.lock().unwrap().last(),
        Some(&(DisconnectReason::ConnectionClosed, 0))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!sim.is_online(&jid), "no reconnect happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_can_make_itself_passive_and_active_again() {
    let sim = sim().await;
    let (socket, _events, jid) = link(&sim, "15550000033", memory_store()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sim.is_active(&jid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sim.is_active(&jid));
    socket.set_passive(true).await.unwrap();
    assert!(!sim.is_active(&jid));
    socket.set_passive(false).await.unwrap();
    assert!(sim.is_active(&jid));
    socket.close().await;
}

/// A fresh socket for the new account `phone`, its events, and its first QR string.
async fn unlinked_qr(sim: &Sim, phone: &str) -> (Socket, broadcast::Receiver<Event>, String) {
    sim.add_account(phone).await;
    let socket = Socket::connect(config(sim, memory_store()));
    let mut events = socket.events();
    let qr = first_qr(&mut events).await;
    (socket, events, qr)
}

/// What a platform authenticator answers for passkey request options: the first allowed
/// credential, client data naming the challenge (the sim does not check signatures).
fn authenticator(options: &wa_types::PasskeyRequestOptions) -> wa_socket::WebAuthnAssertion {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let credential = options
        .allow_credentials
        .first()
        .expect("an allowed credential")
        .id
        .clone();
    let client_data = format!(
        r#"{{"type":"webauthn.get","challenge":"{}","origin":"https://web.whatsapp.com"}}"#,
        URL_SAFE_NO_PAD.encode(&options.challenge)
    );
    wa_socket::WebAuthnAssertion {
        id: URL_SAFE_NO_PAD.encode(&credential),
        raw_id: credential,
        kind: "public-key".into(),
        client_data_json: client_data.into_bytes(),
        authenticator_data: vec![0x49; 37],
        signature: vec![0x30; 70],
        user_handle: Some(b"user".to_vec()),
    }
}

/// A passkey event: the request options, the confirmation, or a failure.
#[derive(Debug)]
enum PasskeyEvent {
    Request(Box<wa_types::PasskeyRequestOptions>),
    Confirmation(wa_types::PasskeyConfirmation),
    Error(wa_types::PasskeyFailure),
}

async fn next_passkey(rx: &mut broadcast::Receiver<Event>) -> PasskeyEvent {
    next_event(rx, |e| match e {
        Event::PasskeyRequest(o) => Some(PasskeyEvent::Request(o)),
        Event::PasskeyConfirmation(c) => Some(PasskeyEvent::Confirmation(c)),
        Event::PasskeyError(f) => Some(PasskeyEvent::Error(f)),
        _ => None,
    })
    .await
}

/// Waits for a passkey step's event and for one failure of `kind`, in either order.
async fn passkey_step_with_error(
    rx: &mut broadcast::Receiver<Event>,
    kind: wa_types::PasskeyErrorKind,
) -> PasskeyEvent {
    let (mut step, mut failed) = (None, false);
    while step.is_none() || !failed {
        match next_passkey(rx).await {
            PasskeyEvent::Error(f) => {
                assert_eq!(f.kind, kind, "{f:?}");
                assert_eq!(
                    f.continuation,
                    kind != wa_types::PasskeyErrorKind::RequestOptions
                );
                assert!(!failed, "one failure only");
                failed = true;
            }
            other => step = Some(other),
        }
    }
    step.expect("a step")
}

/// Answers the passkey request with the test authenticator and waits for the
/// primary's continuation.
async fn respond_until_confirmation(
    socket: &Socket,
    events: &mut broadcast::Receiver<Event>,
) -> wa_types::PasskeyConfirmation {
    let PasskeyEvent::Request(options) = next_passkey(events).await else {
        panic!("expected the request");
    };
    socket
        .send_passkey_response(&authenticator(&options))
        .await
        .expect("prologue accepted");
    let PasskeyEvent::Confirmation(c) = next_passkey(events).await else {
        panic!("expected the confirmation");
    };
    c
}

fn passkey_error_kind(r: Result<(), wa_socket::Error>) -> wa_types::PasskeyErrorKind {
    match r {
        Err(wa_socket::Error::Pair(wa_socket::PairError::Passkey { kind, .. })) => kind,
        other => panic!("not a passkey error: {other:?}"),
    }
}

/// The ADV secret a QR string shows.
fn qr_adv_secret(qr: &str) -> Vec<u8> {
    use base64::Engine;
    let field = qr.split(',').nth(3).expect("adv secret field");
    base64::engine::general_purpose::STANDARD
        .decode(field)
        .expect("base64")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_linking_and_login_after_515() {
    let sim = sim().await;
    let phone = "15550000031";
    sim.add_account(phone).await;
    let store = memory_store();
    let socket = Socket::connect(config(&sim, store.clone()));
    let mut events = socket.events();
    let qr = first_qr(&mut events).await;
    let driver = async {
        let PasskeyEvent::Request(options) = next_passkey(&mut events).await else {
            panic!("the request comes first");
        };
        assert_eq!(options.challenge.len(), 32);
        // Nothing to confirm yet.
        assert_eq!(
            passkey_error_kind(socket.send_passkey_confirmation().await),
            wa_types::PasskeyErrorKind::OutOfOrder
        );
        socket
            .send_passkey_response(&authenticator(&options))
            .await
            .expect("prologue accepted");
        let PasskeyEvent::Confirmation(c) = next_passkey(&mut events).await else {
            panic!("the primary's continuation is confirmed");
        };
        // The prologue carried the handoff proof (the QR was scanned moments ago).
        assert!(c.skip_handoff_ux);
        assert_eq!(c.code.len(), 9);
        assert_eq!(sim.passkey_code(phone).as_ref(), Some(&c.code));
        // As a user types what the phone shows.
        socket
            .confirm_passkey_code(&c.code.to_lowercase().replace('-', ""))
            .await
            .expect("pairing request accepted");
        options
    };
    let (linked, options) = tokio::join!(
        sim.scan_qr_passkey(phone, &qr, wa_sim::PasskeyScan::default()),
        driver
    );
    let jid = linked.expect("linked by passkey");
    let seen = sim.passkey_prologue(phone).expect("prologue recorded");
    assert_eq!(seen.credential_id, options.allow_credentials[0].id);
    assert!(seen.handoff_proof);
    assert_eq!(seen.device_type, 1, "Chrome's platform type");
    let assertion: serde_json::Value = serde_json::from_str(&seen.assertion).expect("JSON");
    assert_eq!(assertion["type"], "public-key");
    assert_eq!(assertion["response"]["userHandle"], "dXNlcg");

    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::RestartRequired
    );
    assert!(open(&mut events).await.is_new_login);
    assert!(sim.is_online(&jid));
    let creds = store.load_creds().await.unwrap().expect("creds saved");
    assert!(creds.registered);
    assert_eq!(creds.jid.as_deref(), Some(jid.to_string().as_str()));
    // Pair-success was signed under the secret the pairing request carried, not the
    // one the QR showed.
    assert_ne!(creds.adv_secret.to_vec(), qr_adv_secret(&qr));
    ping(&socket).await.expect("ping answered after login");
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_options_are_fetched_and_an_early_continuation_is_reported() {
    let sim = sim().await;
    let phone = "15550000032";
    let (socket, mut events, qr) = unlinked_qr(&sim, phone).await;
    let scan = wa_sim::PasskeyScan {
        options_by_query: true,
        continuation: wa_sim::PasskeyContinuation::EarlyExtra,
    };
    let driver = async {
        // The notification's options do not parse, so the socket asked for them; the
        // continuation that came before any prologue is reported, not acted on.
        let step = passkey_step_with_error(
            &mut events,
            wa_types::PasskeyErrorKind::UnexpectedContinuation,
        )
        .await;
        let PasskeyEvent::Request(options) = step else {
            panic!("expected the request, got {step:?}");
        };
        socket
            .send_passkey_response(&authenticator(&options))
            .await
            .expect("prologue accepted");
        let PasskeyEvent::Confirmation(c) = next_passkey(&mut events).await else {
            panic!("expected the confirmation");
        };
        assert_eq!(sim.passkey_code(phone), Some(c.code));
        socket
            .send_passkey_confirmation()
            .await
            .expect("pairing request accepted");
    };
    let (linked, ()) = tokio::join!(sim.scan_qr_passkey(phone, &qr, scan), driver);
    let jid = linked.expect("linked by passkey");
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::RestartRequired
    );
    assert!(open(&mut events).await.is_new_login);
    assert!(sim.is_online(&jid));
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_passkey_continuation_is_reported_and_the_next_one_links() {
    let sim = sim().await;
    let phone = "15550000033";
    let (socket, mut events, qr) = unlinked_qr(&sim, phone).await;
    let scan = wa_sim::PasskeyScan {
        continuation: wa_sim::PasskeyContinuation::MalformedFirst,
        ..Default::default()
    };
    let driver = async {
        let PasskeyEvent::Request(options) = next_passkey(&mut events).await else {
            panic!("expected the request");
        };
        socket
            .send_passkey_response(&authenticator(&options))
            .await
            .expect("prologue accepted");
        let step = passkey_step_with_error(
            &mut events,
            wa_types::PasskeyErrorKind::MalformedContinuation,
        )
        .await;
        let PasskeyEvent::Confirmation(c) = step else {
            panic!("expected the confirmation, got {step:?}");
        };
        socket
            .confirm_passkey_code(&c.code)
            .await
            .expect("pairing request accepted");
    };
    let (linked, ()) = tokio::join!(sim.scan_qr_passkey(phone, &qr, scan), driver);
    linked.expect("linked by passkey");
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::RestartRequired
    );
    assert!(open(&mut events).await.is_new_login);
    socket.close().await;
}

/// A server in the middle swaps the primary's ephemeral key: the code the phone shows
/// differs from ours, and `confirm_passkey_code` refuses it without sending anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_code_that_differs_from_the_primarys_is_refused() {
    let sim = sim().await;
    let phone = "15550000034";
    let (socket, mut events, qr) = unlinked_qr(&sim, phone).await;
    let scan = wa_sim::PasskeyScan {
        continuation: wa_sim::PasskeyContinuation::SwapKey,
        ..Default::default()
    };
    let driver = async {
        let c = respond_until_confirmation(&socket, &mut events).await;
        let on_phone = sim.passkey_code(phone).expect("the phone shows a code");
        assert_ne!(on_phone, c.code);
        assert_eq!(
            passkey_error_kind(socket.confirm_passkey_code(&on_phone).await),
            wa_types::PasskeyErrorKind::CodeMismatch
        );
        // The link was abandoned.
        assert_eq!(
            passkey_error_kind(socket.send_passkey_confirmation().await),
            wa_types::PasskeyErrorKind::OutOfOrder
        );
    };
    let scan = sim.scan_qr_passkey(phone, &qr, scan);
    tokio::pin!(scan);
    tokio::select! {
        r = &mut scan => panic!("the phone finished first: {r:?}"),
        () = driver => {}
    }
    assert!(!socket.auth().await.unwrap().registered);
    socket.close().await;
}

/// The same swap, with a user who confirms without comparing: the primary cannot open
/// the pairing request, refuses it, and nothing is linked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairing_request_the_primary_cannot_open_is_refused() {
    let sim = sim().await;
    let phone = "15550000035";
    let (socket, mut events, qr) = unlinked_qr(&sim, phone).await;
    let scan = wa_sim::PasskeyScan {
        continuation: wa_sim::PasskeyContinuation::SwapKey,
        ..Default::default()
    };
    let driver = async {
        respond_until_confirmation(&socket, &mut events).await;
        socket.send_passkey_confirmation().await
    };
    let (linked, confirmed) = tokio::join!(sim.scan_qr_passkey(phone, &qr, scan), driver);
    assert!(
        matches!(confirmed, Err(wa_socket::Error::Iq { code: 401, .. })),
        "{confirmed:?}"
    );
    assert!(
        matches!(linked, Err(wa_sim::Error::PairingRejected(_))),
        "{linked:?}"
    );
    assert!(sim.devices(phone).iter().all(|d| d.device == 0));
    assert!(!socket.auth().await.unwrap().registered);
    socket.close().await;
}
