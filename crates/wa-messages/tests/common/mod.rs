//! Setup shared by the end-to-end tests through wa-sim: a companion linked by QR with
//! its socket, messenger, event subscription and store, restarted from its store, and
//! small waiting helpers. Connection updates, upserts and receipts are awaited with
//! `wa_testkit`'s `next_update`, `next_upsert` and `next_receipt`.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_messages::{Messenger, MessengerConfig};
use wa_proto::e2e::Message;
use wa_sim::Sim;
use wa_socket::{ConnectionState, Event, Socket, SocketConfig};
use wa_store::{AccountId, AccountStore, Backend, MemoryBackend};
use wa_testkit::next_update as next_conn;
use wa_usync::{Usync, UsyncConfig};

/// How long the helpers wait for something before failing the test.
pub const WAIT: Duration = Duration::from_secs(30);

/// One linked companion with its messenger and an event subscription (taken before the
/// socket started, so it sees every event).
pub struct Client {
    pub socket: Socket,
    pub messenger: Messenger,
    pub events: broadcast::Receiver<Event>,
    pub jid: Jid,
    pub store: AccountStore,
}

/// A fresh in-memory store for account `name`.
pub fn memory_store(name: &str) -> AccountStore {
    AccountStore::new(
        Arc::new(MemoryBackend::new()),
        AccountId::new(name).unwrap(),
    )
}

/// The store of account `name` in the SQLite file at `path` (created if missing).
pub async fn sqlite_store(path: &std::path::Path, name: &str) -> AccountStore {
    let backend: Arc<dyn Backend> =
        Arc::new(wa_store_sqlite::SqliteBackend::open(path).await.unwrap());
    AccountStore::new(backend, AccountId::new(name).unwrap())
}

/// `wa_testkit::config` with a small first pre-key upload.
pub fn config(sim: &Sim, store: AccountStore) -> SocketConfig {
    let mut c = wa_testkit::config(sim, store);
    c.initial_pre_keys = 30;
    c
}

/// Starts a socket on `store` and the messenger `messenger` builds on it (from the
/// socket and a usync client).
pub fn start_using(
    sim: &Sim,
    store: AccountStore,
    messenger: impl FnOnce(Socket, Usync) -> Messenger,
) -> (Socket, Messenger, broadcast::Receiver<Event>) {
    let socket = Socket::connect(config(sim, store));
    let events = socket.events_from_start();
    let usync = Usync::new(socket.clone(), &UsyncConfig::default());
    let messenger = messenger(socket.clone(), usync);
    (socket, messenger, events)
}

/// [`start_using`] a plain messenger configured with `mc`.
pub fn start_with(
    sim: &Sim,
    store: AccountStore,
    mc: MessengerConfig,
) -> (Socket, Messenger, broadcast::Receiver<Event>) {
    start_using(sim, store, |socket, usync| {
        Messenger::new(socket, usync, mc)
    })
}

/// [`start_with`] the default messenger configuration.
pub fn start(sim: &Sim, store: AccountStore) -> (Socket, Messenger, broadcast::Receiver<Event>) {
    start_with(sim, store, MessengerConfig::default())
}

/// Links a new companion to `phone` (the account must exist) by QR, with the messenger
/// `messenger` builds; returns once it logged in after the 515 restart.
pub async fn link_using(
    sim: &Sim,
    phone: &str,
    store: AccountStore,
    messenger: impl FnOnce(Socket, Usync) -> Messenger,
) -> Client {
    let (socket, messenger, mut events) = start_using(sim, store.clone(), messenger);
    let jid = wa_testkit::scan_and_login(sim, phone, &mut events).await;
    Client {
        socket,
        messenger,
        events,
        jid,
        store,
    }
}

/// [`link_using`] a plain messenger configured with `mc`.
pub async fn link_with(sim: &Sim, phone: &str, store: AccountStore, mc: MessengerConfig) -> Client {
    link_using(sim, phone, store, |socket, usync| {
        Messenger::new(socket, usync, mc)
    })
    .await
}

/// [`link_with`] the default messenger configuration.
pub async fn link(sim: &Sim, phone: &str, store: AccountStore) -> Client {
    link_with(sim, phone, store, MessengerConfig::default()).await
}

/// Starts a linked device again from its store and waits until it is open.
pub async fn restart(sim: &Sim, store: AccountStore, jid: Jid) -> Client {
    let (socket, messenger, mut events) = start(sim, store.clone());
    next_conn(&mut events, |u| u.state == ConnectionState::Open).await;
    Client {
        socket,
        messenger,
        events,
        jid,
        store,
    }
}

/// Counts the upserts of message `id` that arrive within `window`.
pub async fn count_upserts(
    rx: &mut broadcast::Receiver<Event>,
    id: &str,
    window: Duration,
) -> usize {
    let deadline = tokio::time::Instant::now() + window;
    let mut n = 0;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return n,
            Ok(Ok(Event::MessagesUpsert(u))) => {
                n += u.messages.iter().filter(|m| m.key.id == id).count();
            }
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("event stream ended: {e}"),
        }
    }
}

/// The text of a plain or extended text message.
pub fn text_of(m: &Message) -> Option<&str> {
    m.extended_text_message
        .as_deref()
        .and_then(|e| e.text.as_deref())
        .or(m.conversation.as_deref())
}

/// Polls `f` until it holds; fails the test after [`WAIT`].
pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `text` from `from` to `to_user` and returns the message as `to` reported it
/// (checking its text).
pub async fn exchange(
    from: &Client,
    to: &mut Client,
    to_user: &str,
    text: &str,
) -> wa_types::WaMessage {
    let key = from
        .messenger
        .send_message(
            &Jid::pn(to_user.to_owned()),
            wa_messages::MessageContent::text(text),
        )
        .await
        .unwrap();
    let got = wa_testkit::next_upsert(&mut to.events, |m| m.key.id == key.id).await;
    assert_eq!(text_of(&got.message), Some(text));
    got
}
