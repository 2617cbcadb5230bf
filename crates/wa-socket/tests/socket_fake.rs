//! The socket's state machine against a scripted server on 127.0.0.1: QR linking,
//! tampered pair-success, login after 515, reconnects after faults, terminal disconnects,
//! keep-alive, pre-key uploads.

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use support::{FakeServer, ServerConn};
use tokio::sync::broadcast;
use wa_binary::Node;
use wa_crypto::{KeyPair, PrivateKey};
use wa_socket::{
    Backoff, ConnectionState, ConnectionUpdate, DisconnectReason, Event, Socket, SocketConfig,
};
use wa_store::{
    AccountId, AccountStore, AuthCreds, CredsStore, MemoryBackend, PreKeyStore, SignedPreKey,
};

fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("vectors/pairing.json")).unwrap()
}

fn memory_store() -> AccountStore {
    AccountStore::new(
        Arc::new(MemoryBackend::new()),
        AccountId::new("test").unwrap(),
    )
}

fn config(server: &FakeServer, store: AccountStore) -> SocketConfig {
    let mut c = SocketConfig::new(store);
    c.ws_url = server.url.clone();
    c.noise_root = server.root.public;
    c.backoff = Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_millis(200),
        factor: 2.0,
    };
    c.connect_timeout = Duration::from_secs(5);
    c.query_timeout = Duration::from_secs(5);
    c
}

/// Fresh credentials whose identity key and ADV secret are the vector's, so the recorded
/// pair-success verifies.
fn vector_creds() -> AuthCreds {
    let v = vectors();
    let mut c = AuthCreds::generate(&mut rand::rngs::OsRng);
    let id: [u8; 32] = hex::decode(v["creds"]["identityPriv"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    c.identity_key = KeyPair::from_private(PrivateKey::from_bytes(id));
    c.signed_pre_key = SignedPreKey::generate(1, &c.identity_key, 0, &mut rand::rngs::OsRng);
    let adv: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(v["creds"]["advSecretKey"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    *c.adv_secret = adv;
    c
}

fn paired_creds() -> AuthCreds {
    let mut c = AuthCreds::generate(&mut rand::rngs::OsRng);
    c.jid = Some("15551234567:7@s.whatsapp.net".into());
    c.registered = true;
    c
}

async fn next_update(
    rx: &mut broadcast::Receiver<Event>,
    mut pred: impl FnMut(&ConnectionUpdate) -> bool,
) -> ConnectionUpdate {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(Event::Connection(u)) if pred(&u) => return u,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("event in time")
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

fn pair_device(id: &str, refs: &[&str]) -> Node {
    Node::builder("iq")
        .attr("from", wa_binary::Jid::server_jid())
        .attr("type", "set")
        .attr("id", id.to_owned())
        .children([Node::builder("pair-device")
            .children(
                refs.iter()
                    .map(|r| Node::builder("ref").bytes(r.as_bytes().to_vec()).build()),
            )
            .build()])
        .build()
}

fn pair_success_stanza() -> Node {
    let v = vectors();
    let bytes = hex::decode(v["pairSuccess"]["stanzaHex"].as_str().unwrap()).unwrap();
    wa_binary::decode(bytes.into()).unwrap()
}

async fn logged_in(server: &mut FakeServer) -> ServerConn {
    let mut conn = server.accept().await;
    assert!(!conn.is_registration());
    conn.success().await;
    conn
}

/// A paired socket on a memory store, logged in to a fresh server and reported open.
async fn open_paired() -> (
    FakeServer,
    AccountStore,
    Socket,
    broadcast::Receiver<Event>,
    ServerConn,
) {
    let mut server = FakeServer::start().await;
    let store = memory_store();
    store.save_creds(&paired_creds()).await.unwrap();
    let socket = Socket::connect(config(&server, store.clone()));
    let mut events = socket.events();
    let conn = logged_in(&mut server).await;
    open(&mut events).await;
    (server, store, socket, events, conn)
}

#[tokio::test]
async fn qr_linking_then_login_after_515() {
    let mut server = FakeServer::start().await;
    let store = memory_store();
    store.save_creds(&vector_creds()).await.unwrap();
    let socket = Socket::connect(config(&server, store.clone()));
    let mut events = socket.events();

    let mut conn = server.accept().await;
    assert!(conn.is_registration(), "unpaired creds register");
    conn.send(&pair_device("pd-1", &["ref-one", "ref-two"]))
        .await;
    let ack = conn.recv_until(|n| n.tag() == "iq").await;
    assert_eq!(ack.attr::<&str>("id").unwrap(), "pd-1");
    assert_eq!(ack.attr::<&str>("type").unwrap(), "result");
    let qr = next_update(&mut events, |u| u.qr.is_some())
        .await
        .qr
        .unwrap();
    assert!(
        qr.starts_with(&format!("{}ref-one,", wa_socket::QR_PREFIX)),
        "{qr}"
    );

    conn.send(&pair_success_stanza()).await;
    let reply = conn
        .recv_until(|n| n.child("pair-device-sign").is_some() || n.child("error").is_some())
        .await;
    assert_eq!(reply.attr::<&str>("type").unwrap(), "result", "{reply}");
    assert_eq!(reply.attr::<&str>("id").unwrap(), "pair-1");
    let saved = store.load_creds().await.unwrap().unwrap();
    assert!(saved.registered);
    assert_eq!(saved.jid.as_deref(), Some("15551234567:7@s.whatsapp.net"));
    assert!(saved.account.is_some());

    conn.stream_error("515").await;
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::RestartRequired
    );
    let mut conn = server.accept().await;
    assert!(!conn.is_registration(), "after pairing the client logs in");
    assert_eq!(conn.payload.username, Some(15_551_234_567));
    assert_eq!(conn.payload.device, Some(7));
    conn.success().await;
    let up = open(&mut events).await;
    assert!(up.is_new_login);
    assert_eq!(socket.state(), ConnectionState::Open);
    socket.close().await;
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::ClosedByUser
    );
}

#[tokio::test]
async fn tampered_pair_success_is_refused_and_nothing_saved() {
    for (tamper, text) in [(0usize, "hmac-mismatch"), (1, "signature-mismatch")] {
        let mut server = FakeServer::start().await;
        let store = memory_store();
        let mut creds = vector_creds();
        if tamper == 1 {
            // A different identity key: the account signature no longer covers it, but
            // the HMAC (under the same ADV secret) still matches.
            creds.identity_key = KeyPair::generate(&mut rand::rngs::OsRng);
            creds.signed_pre_key =
                SignedPreKey::generate(1, &creds.identity_key, 0, &mut rand::rngs::OsRng);
        } else {
            creds.adv_secret[0] ^= 1;
        }
        store.save_creds(&creds).await.unwrap();
        let socket = Socket::connect(config(&server, store.clone()));
        let mut conn = server.accept().await;
        conn.send(&pair_device("pd-1", &["ref-one"])).await;
        conn.send(&pair_success_stanza()).await;
        let reply = conn
            .recv_until(|n| n.attr::<&str>("id").ok() == Some("pair-1"))
            .await;
        assert_eq!(reply.attr::<&str>("type").unwrap(), "error");
        let e = reply.child("error").unwrap();
        assert_eq!(e.attr::<&str>("code").unwrap(), "401");
        assert_eq!(e.attr::<&str>("text").unwrap(), text);
        let saved = store.load_creds().await.unwrap().unwrap();
        assert!(!saved.registered);
        assert_eq!(saved.jid, None);
        assert!(saved.account.is_none());
        socket.close().await;
    }
}

#[tokio::test]
async fn reconnects_after_faults_with_state_transitions() {
    let mut server = FakeServer::start().await;
    let store = memory_store();
    store.save_creds(&paired_creds()).await.unwrap();
    let mut cfg = config(&server, store);
    cfg.keep_alive_interval = Duration::from_millis(200);
    cfg.keep_alive_timeout = Duration::from_millis(300);
    let socket = Socket::connect(cfg);
    let mut events = socket.events();

    // Dropped websocket.
    let conn = logged_in(&mut server).await;
    open(&mut events).await;
    conn.drop_connection().await;
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::ConnectionClosed
    );
    next_update(&mut events, |u| u.state == ConnectionState::Connecting).await;

    // Server errors that reconnect with backoff.
    for (code, want) in [
        ("503", DisconnectReason::ServiceUnavailable),
        ("500", DisconnectReason::BadSession),
        ("515", DisconnectReason::RestartRequired),
    ] {
        let mut conn = logged_in(&mut server).await;
        open(&mut events).await;
        conn.stream_error(code).await;
        assert_eq!(closed_with(&mut events).await, want);
    }

    // A dead peer: pings go unanswered, the keep-alive declares it timed out.
    let conn = logged_in(&mut server).await;
    open(&mut events).await;
    let silent = tokio::spawn(conn.go_silent(Duration::from_secs(5)));
    assert_eq!(closed_with(&mut events).await, DisconnectReason::TimedOut);
    let mut conn = logged_in(&mut server).await;
    open(&mut events).await;
    silent.abort();

    // Keep-alive pings that are answered keep the connection open.
    for _ in 0..3 {
        let ping = conn
            .recv_until(|n| n.get_attr("xmlns").and_then(|v| v.as_str()) == Some("w:p"))
            .await;
        conn.auto_answer(&ping).await;
    }
    assert_eq!(socket.state(), ConnectionState::Open);
    socket.close().await;
}

#[tokio::test]
async fn replaced_is_terminal_and_keeps_creds() {
    let (mut server, store, socket, mut events, mut conn) = open_paired().await;
    conn.conflict("replaced", None).await;
    assert_eq!(closed_with(&mut events).await, DisconnectReason::Replaced);
    server
        .expect_no_connection(Duration::from_millis(800))
        .await;
    tokio::time::timeout(Duration::from_secs(5), socket.closed())
        .await
        .unwrap();
    assert!(store.load_creds().await.unwrap().is_some());
}

/// Stanzas leave through the connection's write buffer, flushed by its own task: a burst
/// from concurrent senders reaches the server with no traffic after it, each sender's
/// stanzas in the order it sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_concurrent_senders_arrives_whole_and_in_order() {
    const SENDERS: usize = 8;
    const EACH: usize = 50;
    let (_server, _store, socket, _events, mut conn) = open_paired().await;

    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let socket = socket.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    let node = Node::builder("message")
                        .attr("id", format!("{s}-{i}"))
                        .build();
                    socket.send_node(&node).await.unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    let mut next = [0usize; SENDERS];
    for _ in 0..SENDERS * EACH {
        let node = conn.recv_until(|n| n.tag() == "message").await;
        let id = node.attr::<&str>("id").unwrap();
        let (s, i) = id.split_once('-').unwrap();
        let (s, i): (usize, usize) = (s.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[s], "sender {s}'s stanzas arrive in order");
        next[s] += 1;
    }
    assert_eq!(next, [EACH; SENDERS]);
    socket.close().await;
}

#[tokio::test]
async fn updated_creds_are_saved_and_earlier_snapshots_keep_their_values() {
    let (_server, store, socket, mut events, _conn) = open_paired().await;

    let before = socket.auth().await.expect("loaded");
    assert_eq!(before.push_name, None);
    // Events of the login so far are not the update's.
    while events.try_recv().is_ok() {}
    let saved = socket
        .update_creds(|c| {
            c.push_name = Some("Alice".into());
            true
        })
        .await
        .unwrap();
    assert!(saved);
    // A snapshot taken before the change keeps what it held; a new one sees the change,
    // and so does the store.
    assert_eq!(before.push_name, None);
    let after = socket.auth().await.expect("loaded");
    assert_eq!(after.push_name.as_deref(), Some("Alice"));
    let stored = store.load_creds().await.unwrap().expect("saved");
    assert_eq!(stored.push_name.as_deref(), Some("Alice"));
    let updated = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Event::CredsUpdated) = events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(updated.is_ok(), "no CredsUpdated event");

    // A change the closure declines is dropped: neither the socket nor the store sees it.
    let saved = socket
        .update_creds(|c| {
            c.push_name = Some("Bob".into());
            false
        })
        .await
        .unwrap();
    assert!(!saved);
    assert_eq!(
        socket.auth().await.unwrap().push_name.as_deref(),
        Some("Alice")
    );
    let stored = store.load_creds().await.unwrap().expect("saved");
    assert_eq!(stored.push_name.as_deref(), Some("Alice"));
    socket.close().await;
}

#[tokio::test]
async fn logged_out_is_terminal_and_clears_creds() {
    let (mut server, store, socket, mut events, mut conn) = open_paired().await;
    conn.conflict("device_removed", Some("401")).await;
    assert_eq!(closed_with(&mut events).await, DisconnectReason::LoggedOut);
    server
        .expect_no_connection(Duration::from_millis(800))
        .await;
    tokio::time::timeout(Duration::from_secs(5), socket.closed())
        .await
        .unwrap();
    assert!(store.load_creds().await.unwrap().is_none());
    assert!(socket.auth().await.is_none());
}

#[tokio::test]
async fn pre_keys_uploaded_when_low_without_reusing_ids() {
    let (_server, store, socket, _events, mut conn) = open_paired().await;

    let ids_of = |n: &Node| -> Vec<u32> {
        n.child("list")
            .unwrap()
            .children()
            .iter()
            .map(|k| {
                let b = k.child("id").unwrap().content_bytes().unwrap();
                u32::from_be_bytes([0, b[0], b[1], b[2]])
            })
            .collect()
    };
    let is_count = |n: &Node| n.child("count").is_some();
    let count = conn.recv_until(is_count).await;
    conn.send(
        &Node::builder("iq")
            .attr("type", "result")
            .attr("id", count.attr::<&str>("id").unwrap().to_owned())
            .children([Node::builder("count").attr("value", "0").build()])
            .build(),
    )
    .await;
    let upload = conn.recv_until(|n| n.child("list").is_some()).await;
    let first = ids_of(&upload);
    assert_eq!(first.len(), 812);
    assert_eq!(first[0], 1);
    assert!(first.windows(2).all(|w| w[1] == w[0] + 1));
    conn.auto_answer(&upload).await;

    // The server says it runs low.
    conn.send(
        &Node::builder("notification")
            .attr("type", "encrypt")
            .attr("id", "n-1")
            .attr("from", wa_binary::Jid::server_jid())
            .children([Node::builder("count").attr("value", "3").build()])
            .build(),
    )
    .await;
    let upload = conn.recv_until(|n| n.child("list").is_some()).await;
    let second = ids_of(&upload);
    assert_eq!(second.len(), 50);
    assert_eq!(second[0], 813);
    conn.auto_answer(&upload).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let creds = store.load_creds().await.unwrap().unwrap();
    assert_eq!(creds.next_pre_key_id, 863);
    assert_eq!(creds.first_unuploaded_pre_key_id, 863);
    let stored = store.pre_key_ids().await.unwrap();
    assert_eq!(stored.len(), 862);
    socket.close().await;
}

#[tokio::test]
async fn dispatcher_acks_queries_and_logout() {
    let mut server = FakeServer::start().await;
    let store = memory_store();
    store.save_creds(&paired_creds()).await.unwrap();
    let socket = Socket::connect(config(&server, store.clone()));
    let mut events = socket.events();
    let mut messages = socket.subscribe(wa_socket::Filter::tag("message"), 8);
    let mut pictures = socket.subscribe(wa_socket::Filter::tag("notification").kind("picture"), 8);
    let mut conn = logged_in(&mut server).await;
    open(&mut events).await;

    // Registered handlers get their stanzas.
    conn.send(&Node::builder("message").attr("id", "m-1").build())
        .await;
    let m = tokio::time::timeout(Duration::from_secs(5), messages.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.attr::<&str>("id").unwrap(), "m-1");
    conn.send(
        &Node::builder("notification")
            .attr("type", "picture")
            .attr("id", "p-1")
            .build(),
    )
    .await;
    let p = tokio::time::timeout(Duration::from_secs(5), pictures.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.attr::<&str>("id").unwrap(), "p-1");

    // A notification nobody handles is acked.
    conn.send(
        &Node::builder("notification")
            .attr("type", "devices")
            .attr("id", "d-1")
            .attr("from", wa_binary::Jid::server_jid())
            .build(),
    )
    .await;
    let ack = conn.recv_until(|n| n.tag() == "ack").await;
    assert_eq!(ack.attr::<&str>("id").unwrap(), "d-1");
    assert_eq!(ack.attr::<&str>("class").unwrap(), "notification");
    assert_eq!(ack.attr::<&str>("type").unwrap(), "devices");

    // Typed iq errors and timeouts.
    let q = |x: &str| {
        Node::builder("iq")
            .attr("type", "get")
            .attr("xmlns", x.to_owned())
            .build()
    };
    let s2 = socket.clone();
    let pending = tokio::spawn(async move { s2.query(q("usync")).await });
    let asked = conn
        .recv_until(|n| n.get_attr("xmlns").and_then(|v| v.as_str()) == Some("usync"))
        .await;
    conn.send(
        &Node::builder("iq")
            .attr("type", "error")
            .attr("id", asked.attr::<&str>("id").unwrap().to_owned())
            .children([Node::builder("error")
                .attr("code", "404")
                .attr("text", "item-not-found")
                .build()])
            .build(),
    )
    .await;
    match pending.await.unwrap() {
        Err(wa_socket::Error::Iq { code, text }) => {
            assert_eq!(code, 404);
            assert_eq!(text, "item-not-found");
        }
        other => panic!("expected an iq error, got {other:?}"),
    }
    let started = std::time::Instant::now();
    let s2 = socket.clone();
    let slow = tokio::spawn(async move {
        s2.query_timeout(q("blocklist"), Duration::from_millis(200))
            .await
    });
    conn.recv_until(|n| n.get_attr("xmlns").and_then(|v| v.as_str()) == Some("blocklist"))
        .await;
    assert!(matches!(
        slow.await.unwrap(),
        Err(wa_socket::Error::Timeout(_))
    ));
    assert!(started.elapsed() >= Duration::from_millis(200));

    // Logout: the removal request, then terminal with the creds cleared.
    let s2 = socket.clone();
    let logout = tokio::spawn(async move { s2.logout().await });
    let remove = conn
        .recv_until(|n| n.child("remove-companion-device").is_some())
        .await;
    assert_eq!(
        remove
            .child("remove-companion-device")
            .unwrap()
            .get_attr("jid")
            .and_then(wa_binary::Value::to_jid)
            .unwrap()
            .to_string(),
        "15551234567:7@s.whatsapp.net"
    );
    conn.auto_answer(&remove).await;
    logout.await.unwrap().unwrap();
    assert_eq!(closed_with(&mut events).await, DisconnectReason::LoggedOut);
    server
        .expect_no_connection(Duration::from_millis(500))
        .await;
    assert!(store.load_creds().await.unwrap().is_none());
}

#[tokio::test]
async fn a_stanza_the_format_cannot_carry_is_refused_and_the_connection_stays() {
    let (_server, _store, socket, _events, mut conn) = open_paired().await;
    // An AD JID carries its device in one byte: device 300 would name device 44.
    let to = wa_binary::Jid::with_device("15550000002", wa_binary::Server::Pn, 300);
    let bad = Node::builder("receipt")
        .attr("id", "bad")
        .attr("to", to)
        .build();
    assert!(matches!(
        socket.send_node(&bad).await,
        Err(wa_socket::Error::Binary(
            wa_binary::Error::Unencodable { .. }
        ))
    ));
    socket
        .send_node(&Node::builder("receipt").attr("id", "good").build())
        .await
        .unwrap();
    let next = conn.recv_until(|n| n.tag() == "receipt").await;
    assert_eq!(next.attr::<&str>("id").unwrap(), "good");
    assert_eq!(socket.state(), ConnectionState::Open);
}

#[tokio::test]
async fn dropping_the_last_handle_closes() {
    let (mut server, _store, socket, mut events, mut conn) = open_paired().await;
    let clone = socket.clone();
    drop(socket);
    // One handle left: still open.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(clone.state(), ConnectionState::Open);
    drop(clone);
    assert_eq!(
        closed_with(&mut events).await,
        DisconnectReason::ClosedByUser
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while conn.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the websocket was closed");
    server
        .expect_no_connection(Duration::from_millis(300))
        .await;
}

/// A peer that completes the handshake and then stops reading: once the kernel buffers
/// are full, a frame cannot be written within `keep_alive_timeout`, the connection closes
/// as timed out, every sender returns, and the socket reconnects.
#[tokio::test]
async fn a_peer_that_stops_reading_is_closed_by_the_write_deadline() {
    let mut server = FakeServer::start().await;
    let store = memory_store();
    store.save_creds(&paired_creds()).await.unwrap();
    let mut cfg = config(&server, store);
    // No keep-alive ping in the test's lifetime: only the write deadline can time out.
    cfg.keep_alive_interval = Duration::from_secs(3600);
    cfg.keep_alive_timeout = Duration::from_secs(1);
    let socket = Socket::connect(cfg);
    let mut events = socket.events();
    let mut conn = logged_in(&mut server).await;
    open(&mut events).await;
    // Answer the login queries (passive/active, pre-key count), then stop reading while
    // keeping the connection open.
    let mut answered = 0;
    while answered < 2 {
        let q = conn.recv_until(|n| n.tag() == "iq").await;
        conn.auto_answer(&q).await;
        answered += 1;
    }

    // Several senders, each sending 64 KiB stanzas until the socket refuses one.
    let senders: Vec<_> = (0..4)
        .map(|i| {
            let socket = socket.clone();
            tokio::spawn(async move {
                let node = Node::builder("message")
                    .attr("id", format!("FILL{i}"))
                    .bytes(vec![0x5a; 64 * 1024])
                    .build();
                let mut sent = 0u64;
                loop {
                    match socket.send_node(&node).await {
                        Ok(()) => sent += 1,
                        Err(e) => return (sent, e),
                    }
                }
            })
        })
        .collect();
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        let mut out = Vec::new();
        for s in senders {
            out.push(s.await.unwrap());
        }
        out
    })
    .await
    .expect("no sender blocks once the write deadline has passed");
    let sent: u64 = outcome.iter().map(|(n, _)| n).sum();
    assert!(sent > 0, "frames were written before the buffers filled");
    let timed_out = outcome
        .iter()
        .filter(|(_, e)| matches!(e, wa_socket::Error::Timeout("write")))
        .count();
    assert!(timed_out >= 1, "a write timed out: {outcome:?}");
    for (_, e) in &outcome {
        assert!(
            matches!(
                e,
                wa_socket::Error::Timeout("write") | wa_socket::Error::NotConnected
            ),
            "a sender failed for another reason: {e}"
        );
    }
    assert_eq!(closed_with(&mut events).await, DisconnectReason::TimedOut);

    // The stalled connection is given up and a new one is made (the close frame to the
    // stalled peer does not hold the supervisor).
    let _fresh = logged_in(&mut server).await;
    open(&mut events).await;
    drop(conn);
    socket.close().await;
}

fn passkey_notification(from: wa_binary::Jid, ty: &'static str, child: Node) -> Node {
    Node::builder("notification")
        .attr("from", from)
        .attr("id", format!("{ty}-{}", rand::random::<u32>()))
        .attr("type", ty)
        .children([child])
        .build()
}

fn options_node(json: &[u8]) -> Node {
    Node::builder("passkey_request_options")
        .bytes(json.to_vec())
        .build()
}

/// The next `PasskeyError` of `kind`; no passkey request or confirmation may come first.
async fn passkey_failure(
    events: &mut broadcast::Receiver<Event>,
    kind: wa_types::PasskeyErrorKind,
) -> wa_types::PasskeyFailure {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("event in time")
            .expect("event");
        match e {
            Event::PasskeyError(f) if f.kind == kind => return f,
            Event::PasskeyRequest(_) | Event::PasskeyConfirmation(_) => {
                panic!("acted on an unusable notification: {e:?}")
            }
            _ => {}
        }
    }
}

/// Passkey notifications the socket cannot act on: one from someone other than the
/// server is ignored, unreadable options that cannot be fetched either and a
/// continuation with no prologue sent are reported as `PasskeyError`; none of them
/// touches the credentials. A good request afterwards still works.
#[tokio::test]
async fn unusable_passkey_notifications_are_reported_and_change_nothing() {
    let mut server = FakeServer::start().await;
    let store = memory_store();
    store.save_creds(&vector_creds()).await.unwrap();
    let socket = Socket::connect(config(&server, store.clone()));
    let mut events = socket.events();
    let mut conn = server.accept().await;
    conn.send(&pair_device("pd-1", &["ref-one"])).await;
    next_update(&mut events, |u| u.qr.is_some()).await;
    let secret = socket.auth().await.unwrap().adv_secret.to_vec();
    let good =
        br#"{"challenge":"AAECAw","allowCredentials":[{"id":"qrvM3Q","type":"public-key"}]}"#;
    let server_jid = wa_binary::Jid::server_jid();

    let not_server: wa_binary::Jid = "15550009999@s.whatsapp.net".parse().unwrap();
    conn.send(&passkey_notification(
        not_server,
        "passkey_prologue_request",
        options_node(good),
    ))
    .await;
    conn.recv_until(|n| n.tag() == "ack").await;

    conn.send(&passkey_notification(
        server_jid.clone(),
        "passkey_prologue_request",
        options_node(b"{\"challenge\":"),
    ))
    .await;
    let fetch = conn
        .recv_until(|n| n.child("passkey_request_options").is_some())
        .await;
    assert_eq!(fetch.attr::<&str>("type").unwrap(), "get");
    assert_eq!(fetch.attr::<&str>("xmlns").unwrap(), "md");
    conn.send(
        &Node::builder("iq")
            .attr("from", server_jid.clone())
            .attr("type", "error")
            .attr("id", fetch.attr::<String>("id").unwrap())
            .children([Node::builder("error")
                .attr("code", "404")
                .attr("text", "item-not-found")
                .build()])
            .build(),
    )
    .await;
    let f = passkey_failure(&mut events, wa_types::PasskeyErrorKind::RequestOptions).await;
    assert!(!f.continuation);
    assert!(f.detail.contains("404"), "{}", f.detail);

    conn.send(&passkey_notification(
        server_jid.clone(),
        "crsc_continuation",
        Node::builder("primary_ephemeral_identity")
            .bytes(vec![0x0a, 0x03, 1, 2, 3])
            .build(),
    ))
    .await;
    let f = passkey_failure(
        &mut events,
        wa_types::PasskeyErrorKind::UnexpectedContinuation,
    )
    .await;
    assert!(f.continuation);
    assert_eq!(socket.auth().await.unwrap().adv_secret.to_vec(), secret);

    // A usable request: the options reach the user and the ADV secret is replaced.
    conn.send(&passkey_notification(
        server_jid,
        "passkey_prologue_request",
        options_node(good),
    ))
    .await;
    let options = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("event in time")
            .expect("event")
        {
            Event::PasskeyRequest(o) => break o,
            Event::PasskeyError(f) => panic!("{f:?}"),
            _ => {}
        }
    };
    assert_eq!(options.challenge, [0, 1, 2, 3]);
    assert_ne!(socket.auth().await.unwrap().adv_secret.to_vec(), secret);
    socket.close().await;
}

/// `events_matching` hands over only the kinds it was asked for, in order, while the
/// event bus carries everything; a subscriber that falls behind loses the newest events
/// without holding up the socket or the others.
#[tokio::test]
async fn events_matching_picks_its_kinds() {
    let (_server, _store, socket, mut all, _conn) = open_paired().await;
    let mut creds = socket.events_matching(|e| matches!(e, Event::CredsUpdated), 2);
    let dropped = socket.events_matching(|e| matches!(e, Event::CredsUpdated), 2);
    drop(dropped);
    let mut connection = socket.events_matching(|e| matches!(e, Event::Connection(_)), 8);
    for _ in 0..3 {
        socket.emit(Event::CredsUpdated);
        socket.emit(Event::Connection(ConnectionUpdate::qr("ref".into())));
    }
    // Two fit; the third is dropped for this subscriber only.
    for _ in 0..2 {
        assert!(matches!(creds.try_recv(), Ok(Event::CredsUpdated)));
    }
    assert!(creds.try_recv().is_err());
    for _ in 0..3 {
        match connection.try_recv() {
            Ok(Event::Connection(u)) => assert_eq!(u.qr.as_deref(), Some("ref")),
            other => panic!("expected a connection update, got {other:?}"),
        }
    }
    assert!(connection.try_recv().is_err());
    // The bus still carried all six.
    let mut seen = 0;
    while let Ok(e) = all.try_recv() {
        if matches!(e, Event::CredsUpdated | Event::Connection(_)) {
            seen += 1;
        }
    }
    assert_eq!(seen, 6);
    // Room again after reading: the next one arrives.
    socket.emit(Event::CredsUpdated);
    assert!(matches!(creds.try_recv(), Ok(Event::CredsUpdated)));
}
