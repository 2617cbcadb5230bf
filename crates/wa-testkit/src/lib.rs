#![doc = include_str!("../README.md")]

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_sim::Sim;
use wa_socket::{
    Backoff, ConnectionState, ConnectionUpdate, DisconnectReason, Event, Socket, SocketConfig,
};
use wa_store::{AccountId, AccountStore, MemoryBackend};
use wa_types::{MessageUpdate, WaMessage};

/// How long the helpers wait for an event before failing the test.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh in-memory account store.
///
/// # Panics
/// Never for the fixed account id used.
pub fn memory_store() -> AccountStore {
    AccountStore::new(
        Arc::new(MemoryBackend::new()),
        AccountId::new("test").expect("a valid account id"),
    )
}

/// A socket configuration for `sim` over `store`, with short backoff and timeouts.
pub fn config(sim: &Sim, store: AccountStore) -> SocketConfig {
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

/// Waits for the next connection update matching `pred`.
///
/// # Panics
/// When none arrives within [`EVENT_TIMEOUT`] or the event stream ends.
pub async fn next_update(
    rx: &mut broadcast::Receiver<Event>,
    mut pred: impl FnMut(&ConnectionUpdate) -> bool,
) -> ConnectionUpdate {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(Event::Connection(u)) if pred(&u) => return u,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(EVENT_TIMEOUT, fut)
        .await
        .expect("connection update in time")
}

/// Waits for the next event `pick` maps to a value, and returns that value (lagged
/// events are skipped).
///
/// # Panics
/// When none arrives within [`EVENT_TIMEOUT`] or the event stream ends.
pub async fn next_event<T>(
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
    tokio::time::timeout(EVENT_TIMEOUT, fut)
        .await
        .expect("event in time")
}

/// Waits for the next `MessagesUpsert` message matching `pred` (lagged events are
/// skipped).
///
/// # Panics
/// When none arrives within [`EVENT_TIMEOUT`] or the event stream ends.
pub async fn next_upsert(
    rx: &mut broadcast::Receiver<Event>,
    mut pred: impl FnMut(&WaMessage) -> bool,
) -> WaMessage {
    next_event(rx, |e| match e {
        Event::MessagesUpsert(u) => u.messages.into_iter().find(|m| pred(m)),
        _ => None,
    })
    .await
}

/// Waits for the next `MessagesUpdate` entry (a receipt) matching `pred` (lagged events
/// are skipped).
///
/// # Panics
/// When none arrives within [`EVENT_TIMEOUT`] or the event stream ends.
pub async fn next_receipt(
    rx: &mut broadcast::Receiver<Event>,
    mut pred: impl FnMut(&MessageUpdate) -> bool,
) -> MessageUpdate {
    next_event(rx, |e| match e {
        Event::MessagesUpdate(u) => u.into_iter().find(|m| pred(m)),
        _ => None,
    })
    .await
}

/// Links a new device to `phone` (created in the simulator if new) by QR with `store`;
/// returns once it logged in after the 515 restart.
///
/// # Panics
/// When linking fails or takes longer than [`EVENT_TIMEOUT`] per step.
pub async fn link_with(sim: &Sim, phone: &str, store: AccountStore) -> (Socket, Jid) {
    link_configured(sim, phone, config(sim, store)).await
}

/// [`link_with`] a socket configuration of the caller's (start from [`config`]).
///
/// # Panics
/// As [`link_with`].
pub async fn link_configured(sim: &Sim, phone: &str, config: SocketConfig) -> (Socket, Jid) {
    if sim.account(phone).is_none() {
        sim.add_account(phone).await;
    }
    let socket = Socket::connect(config);
    let mut events = socket.events_from_start();
    let jid = scan_and_login(sim, phone, &mut events).await;
    (socket, jid)
}

/// Has `phone`'s simulated phone scan the first QR code `events` reports (a
/// subscription made before the socket started, e.g. `Socket::events_from_start`), then
/// waits for the 515 restart and the login after it; returns the new device's JID.
///
/// # Panics
/// When the scan fails, the restart is not the 515 one, or a step takes longer than
/// [`EVENT_TIMEOUT`].
pub async fn scan_and_login(
    sim: &Sim,
    phone: &str,
    events: &mut broadcast::Receiver<Event>,
) -> Jid {
    let qr = next_update(events, |u| u.qr.is_some())
        .await
        .qr
        .expect("a QR code");
    let jid = sim.scan_qr(phone, &qr).await.expect("the scan succeeds");
    let closed = next_update(events, |u| u.state == ConnectionState::Closed).await;
    assert_eq!(
        closed.last_disconnect,
        Some(DisconnectReason::RestartRequired)
    );
    next_update(events, |u| u.state == ConnectionState::Open).await;
    jid
}

/// [`link_with`] a fresh memory store.
///
/// # Panics
/// As [`link_with`].
pub async fn link(sim: &Sim, phone: &str) -> (Socket, Jid) {
    link_with(sim, phone, memory_store()).await
}

/// Waits until `store` holds at least one app-state sync key (the phone shares it after
/// linking).
///
/// # Panics
/// When none arrives within [`EVENT_TIMEOUT`].
pub async fn wait_for_app_state_key(store: &AccountStore) {
    use wa_store::AppStateStore as _;
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    while store
        .app_state_sync_keys()
        .await
        .expect("the store answers")
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no app-state sync key arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Random stanzas for property tests of parsers: trees (up to four levels, at most 64
/// nodes) whose tags come from `tags`, with up to five attributes whose keys come from
/// `keys` and values from `values` (typed by [`wa_binary::Value::sniff`], so JIDs become
/// JIDs), and some leaves holding random bytes. Built from the names a parser looks at,
/// they reach deep into it; a parser must return a value or an error for every one.
pub fn arbitrary_node<V>(
    tags: &'static [&'static str],
    keys: &'static [&'static str],
    values: V,
) -> impl proptest::strategy::Strategy<Value = wa_binary::Node>
where
    V: proptest::strategy::Strategy<Value = String> + 'static,
{
    use proptest::prelude::*;
    let values = values.boxed();
    let leaf = (
        prop::sample::select(tags),
        prop::collection::vec((prop::sample::select(keys), values), 0..6),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
    )
        .prop_map(|(tag, attrs, bytes)| {
            let mut b = wa_binary::Node::builder(tag);
            for (k, v) in attrs {
                b = b.attr(k, wa_binary::Value::sniff(v));
            }
            if let Some(bytes) = bytes {
                b = b.bytes(bytes);
            }
            b.build()
        })
        .boxed();
    leaf.clone().prop_recursive(4, 64, 6, move |inner| {
        (leaf.clone(), prop::collection::vec(inner, 0..6)).prop_map(|(mut n, children)| {
            n.content = wa_binary::Content::Nodes(children);
            n
        })
    })
}
