//! The messaging handle: handler tasks registered with the socket's dispatcher for
//! `<message>`, `<receipt>` and `<ack>`, and the shared state of sends and receives.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand_core::OsRng;
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{Instrument as _, debug, warn};
use wa_binary::{Jid, Node};
use wa_signal::SignalRepository;
use wa_socket::{Filter, Socket};
use wa_store::{AuthCreds, SignalStoreAdapter};
use wa_types::{Event, MessageKey, MessageUpdate, MessagesUpsert, ReceiptType, WaMessage};
use wa_usync::Usync;

use crate::Error;
use crate::stanza;

/// Tuning of a [`Messenger`]. Every queue and table it sizes is bounded.
#[derive(Clone, Debug)]
pub struct MessengerConfig {
    /// How long a send waits for the server's `<ack>`.
    pub ack_timeout: Duration,
    /// Incoming messages are processed by this many workers; all stanzas of one chat go to
    /// the same worker, in arrival order.
    pub workers: usize,
    /// Capacity of each worker's queue and of the dispatcher subscriptions; when full, the
    /// socket's reader waits (back-pressure).
    pub queue_capacity: usize,
    /// Most messages a worker takes from its queue at once (64). Consecutive messages from
    /// other users among them are decrypted under one hold of the Signal lock and
    /// committed together, so a backlog or a busy chat costs one store commit (one fsync
    /// on SQLite) per group instead of per message; nothing is acknowledged before its
    /// group is committed. Their delivery receipts then leave together: one per chat and
    /// sender device, the ids after the first in a `<list>` (at most 64 per receipt), as
    /// a receipt for several messages is written. 1 handles every message alone.
    pub receive_batch: usize,
    /// The highest retry count for which a retry receipt is sent or answered (5).
    pub max_retries: u32,
    /// The least time between two retry receipts this device sends (Baileys'
    /// `retryRequestDelayMs`, which is 250 ms there): after a burst of undecryptable
    /// messages they go out one by one, and the chat of each failure waits for its turn,
    /// so a long backlog that fails (e.g. newest first, beyond the skipped-key window)
    /// heals that much slower. Zero (the default) sends each at once.
    pub retry_receipt_interval: Duration,
    /// Retry counters kept for messages that failed to decrypt (oldest forgotten first).
    pub retry_table_capacity: usize,
    /// The pauses before each new try at storing a received message whose commit failed
    /// (the store failed for a moment: a database failing over, a full disk): the message
    /// is decrypted and committed again from the stored state, and acknowledged only once
    /// stored. After the last try its sender is asked for it again (a retry receipt), as
    /// for a message that does not decrypt. Default 0.25 s, 1 s, 4 s and 16 s; empty asks
    /// the sender at once. At most [`MAX_WAITING_STORE_RETRIES`] messages wait at a time
    /// (beyond, the sender is asked at once); a socket that ends for good leaves those
    /// waiting to the server, which delivers them again at the next login.
    pub store_retries: Vec<Duration>,
    /// Concurrent answers to retry receipts (each may fetch a pre-key bundle); further
    /// retry receipts wait for a turn.
    pub max_concurrent_resends: usize,
    /// Retry receipts waiting for a turn; beyond this many, one is acknowledged and
    /// dropped, and the asking device does not get that message (peers nack the stanza
    /// they ask about, so the server does not deliver it again).
    pub max_queued_resends: usize,
    /// Whether messages this device sends are also reported as [`Event::MessagesUpsert`].
    pub emit_own_messages: bool,
    /// How long sent messages are kept for answering retry receipts.
    pub sent_message_ttl: Duration,
    /// How long processed-message markers are kept (redeliveries older than this are no
    /// longer recognised; the server keeps offline stanzas for far less).
    pub processed_marker_ttl: Duration,
    /// How long the secrets of sent and received messages are kept (polls and events
    /// collect votes and responses for as long as this; see
    /// [`Messenger::vote_poll`] and [`Messenger::decrypt_poll_vote`]).
    pub message_secret_ttl: Duration,
    /// How often expired sent messages, markers and secrets are pruned from the store.
    pub prune_interval: Duration,
    /// Messages and receipts from the offline backlog are held back until the backlog is
    /// processed, then reported in order, consecutive messages in one
    /// [`Event::MessagesUpsert`] and consecutive receipt updates in one
    /// [`Event::MessagesUpdate`]; at most this many are held (a full buffer is reported
    /// first; 0 reports each at once).
    pub offline_batch: usize,
    /// Which history-sync notifications from the account's phone are downloaded and
    /// processed (default: all); the others are only acknowledged.
    pub should_sync_history: crate::HistorySyncFilter,
    /// Largest history-sync chunk accepted, compressed and inflated alike (bytes).
    pub max_history_len: usize,
    /// Longest a history-sync download may take (it holds up the own chat's worker);
    /// beyond it the chunk is reported failed.
    pub history_timeout: Duration,
    /// How long after a recent-chats history chunk the sync is reported paused
    /// ([`HistorySyncStatus`](wa_types::HistorySyncStatus)) when no further chunk and no
    /// 100 % progress came (two minutes by default, as WhatsApp Web and Baileys wait).
    pub history_paused_after: Duration,
    /// How long after a message failed to decrypt our phone is asked to resend it
    /// (unless a retry receipt healed it by then); `None` (the default, as in whatsmeow)
    /// never asks on its own (see [`Messenger::request_placeholder_resend`]). A message
    /// the phone resent is recorded as processed, so a later resend by its sender is
    /// only acknowledged, not decrypted: the sender's next message starts the session
    /// again.
    pub placeholder_resend_delay: Option<Duration>,
    /// Attach a reporting token to every 1:1, group and status message that carries a
    /// message secret (default on, as WhatsApp Web and Baileys do; see
    /// [`reporting_token`](crate::reporting_token)).
    pub reporting_tokens: bool,
    /// Changes each message on its way out, per recipient device, just before it is
    /// encrypted (Baileys' `patchMessageBeforeSending`; see [`MessagePatch`](crate::MessagePatch)). `None`
    /// (the default) sends messages as they are built.
    pub patch: Option<crate::MessagePatch>,
    /// Asked before a retry receipt for one of our messages is answered (whatsmeow's
    /// `PreRetryCallback`; see [`PreRetry`]); `None` answers every retry up to
    /// [`MessengerConfig::max_retries`].
    pub pre_retry: Option<PreRetry>,
    /// Whether a device's changed identity key, seen in a message or a key bundle without
    /// the server announcing it, is accepted (the default, as in whatsmeow and Baileys;
    /// reported as an implicit [`IdentityChange`](wa_types::IdentityChange)). When
    /// `false`, it is refused: messages from that device fail to decrypt, sends skip it,
    /// and an [`IdentityChange`](wa_types::IdentityChange) with `trusted: false` is
    /// reported until [`Messenger::trust_identity`] accepts it (whatsmeow's
    /// `AutoTrustIdentity`). Changes the server announces are always accepted.
    pub trust_changed_identities: bool,
    /// Whether the blob of each downloaded history-sync chunk is deleted from the media
    /// servers once the chunk was processed (on by default, as whatsmeow does).
    pub delete_history_blobs: bool,
    /// Whether delivery receipts for other people's messages say `type="inactive"`
    /// while this connection has not announced us online ([`Socket::is_online`]:
    /// `Chats::send_presence(Available)` or `ChatsConfig::presence_on_connect`). The
    /// sender is told of the delivery, but WhatsApp's apps show no grey ticks for it,
    /// as for WhatsApp Web in the background. whatsmeow behaves so by default (its
    /// `SetForceActiveDeliveryReceipts` turns it off), as does Baileys until
    /// `markOnlineOnConnect` sends its presence; off here by default: every delivery
    /// receipt is an active one.
    pub inactive_receipts_when_offline: bool,
}

/// Decides whether a retry receipt is answered with a resend: called with the asking
/// device, the message id, the retry count and the stored message (before any patch);
/// `false` leaves the retry unanswered (the receipt is still acknowledged).
#[derive(Clone)]
pub struct PreRetry(Arc<PreRetryFn>);

type PreRetryFn = dyn Fn(&wa_binary::Jid, &str, u32, &wa_proto::e2e::Message) -> bool + Send + Sync;

impl PreRetry {
    /// Wraps `f`.
    pub fn new(
        f: impl Fn(&wa_binary::Jid, &str, u32, &wa_proto::e2e::Message) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(f))
    }

    /// Whether the retry of message `id` by `device` (the `count`th) is answered.
    pub fn allows(
        &self,
        device: &wa_binary::Jid,
        id: &str,
        count: u32,
        message: &wa_proto::e2e::Message,
    ) -> bool {
        (self.0)(device, id, count, message)
    }
}

impl std::fmt::Debug for PreRetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreRetry(..)")
    }
}

impl Default for MessengerConfig {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(20),
            workers: 8,
            queue_capacity: 64,
            receive_batch: 64,
            max_retries: 5,
            retry_receipt_interval: Duration::ZERO,
            retry_table_capacity: 4096,
            store_retries: [250, 1_000, 4_000, 16_000]
                .map(Duration::from_millis)
                .to_vec(),
            max_concurrent_resends: 8,
            max_queued_resends: 4096,
            emit_own_messages: true,
            sent_message_ttl: Duration::from_secs(7 * 24 * 3600),
            processed_marker_ttl: Duration::from_secs(30 * 24 * 3600),
            message_secret_ttl: Duration::from_secs(365 * 24 * 3600),
            prune_interval: Duration::from_secs(3600),
            offline_batch: 256,
            should_sync_history: crate::HistorySyncFilter::default(),
            max_history_len: wa_appstate::DEFAULT_MAX_INFLATED_LEN,
            history_timeout: Duration::from_secs(300),
            history_paused_after: Duration::from_secs(120),
            placeholder_resend_delay: None,
            reporting_tokens: true,
            patch: None,
            pre_retry: None,
            trust_changed_identities: true,
            delete_history_blobs: true,
            inactive_receipts_when_offline: false,
        }
    }
}

/// The pauses before each new try at store work a caller waits for (a send, an orderly
/// stop's last inbox deletions) when the store failed: short, unlike
/// [`MessengerConfig::store_retries`], which no caller waits for.
pub(crate) const SHORT_STORE_RETRIES: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(400),
    Duration::from_millis(1_600),
];

/// Most received messages waiting at once for another try at being stored
/// ([`MessengerConfig::store_retries`]).
pub const MAX_WAITING_STORE_RETRIES: usize = 1024;

/// Sends and receives end-to-end encrypted messages over a [`Socket`].
///
/// Creating it registers handlers for `<message>`, `<receipt>`, `<ack>` and identity-change
/// notifications with the socket's dispatcher (create it right after [`Socket::connect`], before the first
/// login completes, so the offline backlog reaches it). Received messages are decrypted,
/// committed to the store together with a processed-message marker, acknowledged with a
/// delivery receipt and only then reported as [`Event::MessagesUpsert`]; receipts from
/// others become [`Event::MessagesUpdate`]. Cheap to clone; the handler tasks stop when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Messenger {
    pub(crate) inner: Arc<Inner>,
    /// The barrier channels of the message router and the receipt task, with how many
    /// parties pass each barrier sent there (for [`Messenger::settle`]).
    parties: Arc<Parties>,
    _tasks: Arc<Tasks>,
}

type Parties = [(mpsc::Sender<Barrier>, usize); 2];

impl std::fmt::Debug for Messenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messenger").finish_non_exhaustive()
    }
}

/// Aborts the handler tasks when the last [`Messenger`] clone goes away.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

pub(crate) type Repo = SignalRepository<SignalStoreAdapter, OsRng>;

/// The Signal lock held (see [`Inner::crypto_lock`]).
pub(crate) type CryptoGuard<'a> = tokio::sync::MutexGuard<'a, Option<OpenSends>>;

/// Sends (1:1, group and status) encrypted into one staged repository and waiting to be
/// committed together (see `send::encrypt_pairwise` and `send::committed`): while they
/// wait, the Signal state they wrote is only here, so whoever takes the Signal lock next
/// commits them first.
pub(crate) struct OpenSends {
    /// Which group this is (unique in the process), so a member coming back commits its
    /// own group and not a later one.
    pub(crate) id: u64,
    /// The staged Signal writes of every send in the group.
    pub(crate) repo: Repo,
    /// The sends' own writes (sent-message records, secrets).
    pub(crate) extra: wa_store::Batch,
    /// Each send's waiter, told how the commit went.
    pub(crate) members: Vec<oneshot::Sender<Result<(), String>>>,
}

/// Our own addresses, from the credentials.
#[derive(Clone, Debug)]
pub(crate) struct Me {
    /// Our device JID (phone number).
    pub(crate) pn: Jid,
    /// Our LID device JID, when known.
    pub(crate) lid: Option<Jid>,
}

impl Me {
    pub(crate) fn is_me_user(&self, jid: &Jid) -> bool {
        jid.same_user(&self.pn) || self.lid.as_ref().is_some_and(|l| jid.same_user(l))
    }
}

pub(crate) struct Inner {
    pub(crate) socket: Socket,
    pub(crate) usync: Usync,
    pub(crate) groups: std::sync::OnceLock<wa_groups::Groups>,
    /// The media client for history-sync downloads (created on first use when not set).
    pub(crate) media: std::sync::OnceLock<wa_media::Media>,
    /// Ids of history notifications being processed (so a resumed one is not processed
    /// twice).
    history_busy: StdMutex<std::collections::HashSet<String>>,
    /// Which history-sync phases were reported ended on this connection.
    pub(crate) history_phases: Arc<StdMutex<crate::history::Phases>>,
    pub(crate) config: MessengerConfig,
    /// Serialises every read-modify-commit of Signal state (sessions, sender keys), so two
    /// operations never write over each other's ratchet. It holds the sends staged
    /// together and not yet committed; take it with [`Inner::crypto_lock`], which
    /// commits them first.
    pub(crate) crypto: Mutex<Option<OpenSends>>,
    acks: StdMutex<HashMap<String, oneshot::Sender<Node>>>,
    retries: StdMutex<RetryTable>,
    /// When the last retry receipt went out (see
    /// [`MessengerConfig::retry_receipt_interval`]); held while the next one waits.
    pub(crate) last_retry_receipt: Mutex<Option<tokio::time::Instant>>,
    offline: StdMutex<OfflineBuffer>,
    /// Users whose LID was already asked for (bounded; cleared when full).
    lid_asked: StdMutex<std::collections::HashSet<String>>,
    /// The push name last seen per sender (bounded; cleared when full).
    pub(crate) push_names: StdMutex<HashMap<Jid, String>>,
    /// Cached LID mappings and users whose sessions moved to LID addresses.
    pub(crate) lid: crate::lid::LidState,
    pub(crate) resend_slots: Arc<Semaphore>,
    /// Places for retry receipts waiting for a resend slot.
    pub(crate) resend_queue: Arc<Semaphore>,
    /// Places for received messages waiting to be stored again
    /// ([`MessengerConfig::store_retries`]).
    pub(crate) store_retry_queue: Arc<Semaphore>,
    /// Held (shared) by work that writes to the store outside the workers (a message
    /// handled again, the answer to a retry receipt) while it runs, so
    /// [`Messenger::settle`] can wait for it; such work checks first that the socket has
    /// not ended for good.
    pub(crate) late_work: tokio::sync::RwLock<()>,
    /// Contacts (record keys) our privacy token is being issued to.
    pub(crate) privacy_issuing: StdMutex<std::collections::HashSet<String>>,
    /// Contacts' privacy-token records as sends last read them.
    pub(crate) privacy_records: crate::privacy::RecordCache,
    /// Messages asked of our phone, waiting for its answer.
    pending_resends: StdMutex<crate::placeholder::Pending>,
    /// Notified whenever a barrier has been passed by all its parties.
    barrier_passed: tokio::sync::Notify,
    /// Received messages stored until reported.
    pub(crate) inbox: crate::inbox::Inbox,
}

/// Messages and receipt updates from the offline backlog, reported together once the
/// backlog is processed (Baileys' event buffering), bounded by
/// [`MessengerConfig::offline_batch`] items.
#[derive(Default)]
struct OfflineBuffer {
    held: Vec<Held>,
    /// Messages plus updates in `held`.
    items: usize,
    since: Option<std::time::Instant>,
}

/// One held report, in the order it was processed.
#[derive(Debug, Clone, PartialEq)]
enum Held {
    /// With its inbox key. Boxed: the two variants differ a lot in size.
    Message(Box<WaMessage>, Option<String>),
    Updates(Vec<MessageUpdate>),
    /// Another event that follows a message (a decrypted vote, a label change).
    Event(Box<Event>),
}

impl Held {
    fn items(&self) -> usize {
        match self {
            Held::Message(..) | Held::Event(_) => 1,
            Held::Updates(u) => u.len(),
        }
    }
}

/// The events reporting `held` in order: each run of messages becomes one
/// [`Event::MessagesUpsert`], each run of receipt updates one [`Event::MessagesUpdate`].
fn coalesce(held: Vec<Held>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for h in held {
        match (h, out.last_mut()) {
            (Held::Message(m, _), Some(Event::MessagesUpsert(u))) => u.messages.push(*m),
            (Held::Message(m, _), _) => {
                out.push(Event::MessagesUpsert(MessagesUpsert { messages: vec![*m] }));
            }
            (Held::Updates(mut v), Some(Event::MessagesUpdate(u))) => u.append(&mut v),
            (Held::Updates(v), _) => out.push(Event::MessagesUpdate(v)),
            (Held::Event(e), _) => out.push(*e),
        }
    }
    out
}

/// Retry counters per failed message, bounded (insertion order eviction).
#[derive(Default)]
struct RetryTable {
    counts: HashMap<String, u32>,
    order: std::collections::VecDeque<String>,
}

impl RetryTable {
    fn bump(&mut self, key: &str, capacity: usize) -> u32 {
        if let Some(c) = self.counts.get_mut(key) {
            *c = c.saturating_add(1);
            return *c;
        }
        while self.order.len() >= capacity.max(1) {
            if let Some(old) = self.order.pop_front() {
                self.counts.remove(&old);
            }
        }
        self.order.push_back(key.to_owned());
        self.counts.insert(key.to_owned(), 1);
        1
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Messenger {
    /// Registers the messaging handlers with `socket`'s dispatcher and starts them.
    /// `usync` provides (cached) device lists.
    pub fn new(socket: Socket, usync: Usync, config: MessengerConfig) -> Self {
        let cap = config.queue_capacity.max(1);
        let messages = socket.subscribe(Filter::tag("message"), cap);
        let receipts = socket.subscribe(Filter::tag("receipt"), cap);
        let acks = socket.subscribe(Filter::tag("ack"), cap);
        let identities = socket.subscribe(Filter::tag("notification").kind("encrypt"), cap);
        // Only connection updates: the watcher is not woken for every message event, and
        // a burst of them cannot make it miss the end of the backlog.
        let connection_events = socket.events_matching(
            |e| matches!(e, Event::Connection(_)),
            CONNECTION_EVENTS_CAPACITY,
        );
        let inner = Arc::new(Inner {
            resend_slots: Arc::new(Semaphore::new(config.max_concurrent_resends.max(1))),
            resend_queue: Arc::new(Semaphore::new(config.max_queued_resends.max(1))),
            store_retry_queue: Arc::new(Semaphore::new(MAX_WAITING_STORE_RETRIES)),
            late_work: tokio::sync::RwLock::new(()),
            socket,
            usync,
            groups: std::sync::OnceLock::new(),
            media: std::sync::OnceLock::new(),
            history_busy: StdMutex::new(std::collections::HashSet::new()),
            history_phases: Arc::default(),
            config,
            crypto: Mutex::new(None),
            acks: StdMutex::new(HashMap::new()),
            retries: StdMutex::new(RetryTable::default()),
            last_retry_receipt: Mutex::new(None),
            offline: StdMutex::new(OfflineBuffer::default()),
            lid_asked: StdMutex::new(std::collections::HashSet::new()),
            push_names: StdMutex::new(HashMap::new()),
            lid: crate::lid::LidState::default(),
            privacy_issuing: StdMutex::new(std::collections::HashSet::new()),
            privacy_records: crate::privacy::RecordCache::default(),
            pending_resends: StdMutex::new(crate::placeholder::Pending::default()),
            barrier_passed: tokio::sync::Notify::new(),
            inbox: crate::inbox::Inbox::default(),
        });
        let mut tasks = Vec::new();
        let mut workers = Vec::new();
        for _ in 0..inner.config.workers.max(1) {
            let (tx, mut rx) = mpsc::channel::<Work>(cap);
            workers.push(tx);
            let inner = inner.clone();
            tasks.push(tokio::spawn(async move {
                let most = inner.config.receive_batch.max(1);
                let mut next: Option<Work> = None;
                loop {
                    let work = match next.take() {
                        Some(w) => w,
                        None => match rx.recv().await {
                            Some(w) => w,
                            None => return,
                        },
                    };
                    match work {
                        Work::Message(node) => {
                            // What else is queued already goes along, up to the next
                            // barrier (it must follow the messages before it).
                            let mut nodes = vec![*node];
                            while nodes.len() < most {
                                match rx.try_recv() {
                                    Ok(Work::Message(n)) => nodes.push(*n),
                                    Ok(barrier) => {
                                        next = Some(barrier);
                                        break;
                                    }
                                    Err(_) => break,
                                }
                            }
                            let span = tracing::debug_span!(
                                "messages",
                                first = stanza::str_attr(&nodes[0], "id").unwrap_or(""),
                                from = %nodes[0].get_attr("from").map(ToString::to_string).unwrap_or_default(),
                                count = nodes.len(),
                            );
                            // Boxed: the handler's state machine is large, and an idle
                            // worker should not hold its space.
                            Box::pin(crate::recv::handle_messages(&inner, nodes).instrument(span))
                                .await;
                        }
                        Work::Barrier(b) => inner.pass_barrier(&b),
                    }
                }
            }));
        }
        let (ctl_tx, ctl_rx) = mpsc::channel::<Barrier>(4);
        let (rctl_tx, rctl_rx) = mpsc::channel::<Barrier>(4);
        // The message router passes a barrier on to every worker; each of them and the
        // receipt task pass it once.
        let parties = [(ctl_tx, workers.len()), (rctl_tx, 1)];
        let settle_parties = Arc::new(parties.clone());
        tasks.push(tokio::spawn(route_messages(
            inner.clone(),
            messages,
            ctl_rx,
            workers,
        )));
        let i = inner.clone();
        tasks.push(tokio::spawn(watch_backlog(i, connection_events, parties)));
        let i = inner.clone();
        tasks.push(tokio::spawn(handle_receipts(i, receipts, rctl_rx)));
        let i = inner.clone();
        tasks.push(tokio::spawn(async move {
            let mut identities = identities;
            while let Some(node) = identities.recv().await {
                crate::identity::handle(&i, node).await;
            }
        }));
        let i = inner.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = acks;
            while let Some(node) = acks.recv().await {
                i.resolve_ack(node);
            }
        }));
        let i = inner.clone();
        tasks.push(tokio::spawn(async move {
            // Once, after the first login: messages and history notifications a previous
            // run stored but did not report or finish. A socket closed for good gives
            // them up (they stay stored): what it reported would reach no one, and a
            // socket started next on the same store takes them.
            let mut state = i.socket.state_watch();
            if state
                .wait_for(|s| *s == wa_types::ConnectionState::Open)
                .await
                .is_ok()
            {
                tokio::select! {
                    biased;
                    () = i.socket.stopped() => {}
                    () = async {
                        i.resume_inbox().await;
                        i.resume_history().await;
                    } => {}
                }
            }
        }));
        let i = inner.clone();
        tasks.push(tokio::spawn(async move { i.inbox_flusher().await }));
        let i = inner.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(i.config.prune_interval.max(Duration::from_secs(1)));
            loop {
                tick.tick().await;
                if let Err(e) = Box::pin(i.prune()).await {
                    debug!("pruning sent messages and markers failed: {e}");
                }
            }
        }));
        Messenger {
            inner,
            parties: settle_parties,
            _tasks: Arc::new(Tasks(tasks)),
        }
    }

    /// Waits until every `<message>` and `<receipt>` handed to this messenger before the
    /// call has been processed (and a message being handled again or a retry receipt
    /// being answered at that moment, see [`MessengerConfig::store_retries`]), then
    /// reports whatever the offline backlog still held (see
    /// [`MessengerConfig::offline_batch`]). After the socket closed, this
    /// is how an orderly stop makes sure that no message already decrypted and committed
    /// stays unreported: once it returns, its events are on the socket's event bus, and
    /// the store no longer keeps them for a report after a restart.
    ///
    /// Messages still arriving keep it waiting only for those handed over before the
    /// call; bound it with a timeout where the connection may still be open.
    pub async fn settle(&self) {
        let total = self.parties.iter().map(|(_, n)| n).sum();
        let barrier: Barrier = Arc::new(AtomicUsize::new(total));
        for (c, n) in self.parties.iter() {
            if c.send(barrier.clone()).await.is_err() {
                // That task has ended and will never pass it.
                self.inner.pass_barrier_for(&barrier, *n);
            }
        }
        loop {
            let notified = self.inner.barrier_passed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if barrier.load(Ordering::Acquire) == 0 {
                break;
            }
            notified.await;
        }
        // Messages being handled again and answers to retry receipts finish too (those
        // still waiting for their try are left to the server once the socket has ended).
        drop(self.inner.late_work.write().await);
        self.inner.flush_inbox_settling().await;
    }

    /// Uses `groups` (its cached, notification-maintained metadata) for the member lists of
    /// group sends. Without it, each group send asks the server for the group's metadata.
    #[must_use]
    pub fn with_groups(self, groups: wa_groups::Groups) -> Self {
        let _ = self.inner.groups.set(groups);
        self
    }

    /// Uses `media` for history-sync downloads (its HTTP settings, temporary directory and
    /// size limit). Without it, a [`wa_media::Media`] with the default configuration is
    /// created on first use.
    #[must_use]
    pub fn with_media(self, media: wa_media::Media) -> Self {
        let _ = self.inner.media.set(media);
        self
    }

    /// The socket this messenger runs on.
    pub fn socket(&self) -> &Socket {
        &self.inner.socket
    }

    /// Sends read receipts for these received messages (grouped per chat and sender into
    /// one `<receipt type="read">` each). This always tells the senders; an account whose
    /// read-receipts privacy setting is off should send [`ReceiptType::ReadSelf`] with
    /// [`Messenger::send_receipts`] instead, as `wa-chats`' `Chats::read_receipt_type`
    /// decides and the `wa` facade's `read_messages` does.
    ///
    /// # Errors
    /// [`Error::Socket`] when a receipt cannot be sent.
    pub async fn read_messages(&self, keys: &[MessageKey]) -> Result<(), Error> {
        self.send_receipts(keys, ReceiptType::Read).await
    }

    /// Sends receipts of `kind` (read, played, ...) for these received messages.
    ///
    /// # Errors
    /// [`Error::Socket`] when a receipt cannot be sent.
    pub async fn send_receipts(&self, keys: &[MessageKey], kind: ReceiptType) -> Result<(), Error> {
        type ChatSender = (Jid, Option<Jid>);
        let mut groups: Vec<(ChatSender, Vec<String>)> = Vec::new();
        for k in keys.iter().filter(|k| !k.from_me) {
            let g = (k.remote_jid.clone(), k.participant.clone());
            match groups.iter_mut().find(|(key, _)| *key == g) {
                Some((_, ids)) => ids.push(k.id.clone()),
                None => groups.push((g, vec![k.id.clone()])),
            }
        }
        let t = unix_now();
        for ((chat, participant), ids) in groups {
            for chunk in ids.chunks(stanza::MAX_RECEIPT_IDS) {
                if let Some(node) =
                    stanza::receipt_for_ids(&chat, participant.as_ref(), chunk, kind.as_attr(), t)
                {
                    self.inner.socket.send_node(&node).await?;
                }
            }
        }
        Ok(())
    }
}

/// What a message worker is handed.
enum Work {
    /// A `<message>` stanza (boxed: each worker's queue allocates its first block of
    /// slots up front).
    Message(Box<Node>),
    /// Every stanza routed before this one has been processed by the worker; the last
    /// party to pass it flushes the offline buffer.
    Barrier(Barrier),
}

/// The end of the offline backlog, passed by every message worker and the receipt task
/// once they processed what arrived before it; counts the parties still to pass.
type Barrier = Arc<AtomicUsize>;

/// Handles receipts one at a time, in arrival order; passes a barrier once every receipt
/// that arrived before it was handled.
async fn handle_receipts(
    inner: Arc<Inner>,
    mut receipts: wa_socket::Subscription,
    mut ctl: mpsc::Receiver<Barrier>,
) {
    loop {
        tokio::select! {
            biased;
            node = receipts.recv() => match node {
                Some(node) => Box::pin(crate::receipt::handle_receipt(&inner, node)).await,
                None => return,
            },
            Some(b) = ctl.recv() => inner.pass_barrier(&b),
        }
    }
}

/// The worker of a stanza's chat: the group, the peer for copies of our own messages
/// (`recipient`), else the sender's user.
fn worker_index(node: &Node, workers: usize) -> usize {
    let chat = node
        .get_attr("recipient")
        .or_else(|| node.get_attr("from"))
        .map(ToString::to_string)
        .unwrap_or_default();
    let user = chat.split(['@', ':']).next().unwrap_or("");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    user.hash(&mut h);
    usize::try_from(h.finish() % workers.max(1) as u64).unwrap_or(0)
}

/// Hands each `<message>` to the worker of its chat, so one chat is processed in order.
/// A flush request is turned into a barrier through every worker, but only once no
/// routed stanza is waiting (the channel is polled first), so the barrier follows every
/// stanza that arrived before the request.
async fn route_messages(
    inner: Arc<Inner>,
    mut rx: wa_socket::Subscription,
    mut ctl: mpsc::Receiver<Barrier>,
    workers: Vec<mpsc::Sender<Work>>,
) {
    let mut resumed = false;
    loop {
        let work = tokio::select! {
            biased;
            node = rx.recv() => match node {
                Some(node) => Ok(node),
                None => return,
            },
            Some(b) = ctl.recv() => Err(b),
        };
        match work {
            Ok(node) => {
                if !resumed {
                    // What a previous run left unreported comes before this run's messages.
                    inner.resume_inbox().await;
                    resumed = true;
                }
                let idx = worker_index(&node, workers.len());
                if let Some(w) = workers.get(idx)
                    && w.send(Work::Message(Box::new(node))).await.is_err()
                {
                    return;
                }
            }
            Err(barrier) => {
                for w in &workers {
                    if w.send(Work::Barrier(barrier.clone())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Follows the connection: when the server says the offline backlog is complete
/// (`<ib><offline>`), asks for a flush after the backlog's stanzas; flushes on disconnect
/// and, as a safety net, when buffered messages wait too long.
/// Connection updates the backlog watcher may fall behind by (they come a few per
/// connection).
const CONNECTION_EVENTS_CAPACITY: usize = 64;

async fn watch_backlog(
    inner: Arc<Inner>,
    mut events: mpsc::Receiver<Event>,
    parties: [(mpsc::Sender<Barrier>, usize); 2],
) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(Event::Connection(u)) => {
                    if u.received_pending_notifications {
                        let total = parties.iter().map(|(_, n)| n).sum();
                        let barrier = Arc::new(AtomicUsize::new(total));
                        for (c, n) in &parties {
                            if c.try_send(barrier.clone()).is_err() {
                                // Those parties will never see it: count them passed.
                                inner.pass_barrier_for(&barrier, *n);
                            }
                        }
                    } else if u.state == wa_types::ConnectionState::Closed {
                        inner.flush_offline();
                        inner.reset_history_phases();
                    }
                }
                Some(_) => {}
                None => return,
            },
            _ = tick.tick() => inner.flush_offline_if_stale(OFFLINE_BUFFER_MAX_AGE),
        }
    }
}

/// Most users remembered as already asked for their LID.
const MAX_LID_ASKED: usize = 4096;

/// How long buffered offline messages wait at most for the end of the backlog.
const OFFLINE_BUFFER_MAX_AGE: Duration = Duration::from_secs(3);

/// Removes its waiter when the send finishes, times out or is cancelled.
pub(crate) struct AckWaiter<'a> {
    inner: &'a Inner,
    id: String,
    rx: Option<oneshot::Receiver<Node>>,
}

impl AckWaiter<'_> {
    pub(crate) async fn wait(mut self, timeout: Duration) -> Result<Node, Error> {
        let rx = self.rx.take().ok_or_else(|| Error::AckTimeout)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(node)) => Ok(node),
            Ok(Err(_)) | Err(_) => Err(Error::AckTimeout),
        }
    }
}

impl Drop for AckWaiter<'_> {
    fn drop(&mut self) {
        self.inner
            .acks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Inner {
    pub(crate) fn emit(&self, event: Event) {
        self.socket.emit(event);
    }

    fn offline(&self) -> std::sync::MutexGuard<'_, OfflineBuffer> {
        self.offline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reports a processed message: offline ones wait in the buffer (a full buffer is
    /// flushed first); a live one flushes the buffer before it, keeping the order. A
    /// received message stored in the inbox under `inbox_key` is deleted from it once
    /// reported.
    pub(crate) fn emit_message(&self, message: WaMessage, inbox_key: Option<String>) {
        if self.holds(message.offline) {
            self.hold(Held::Message(Box::new(message), inbox_key));
        } else {
            self.emit_live(Event::MessagesUpsert(MessagesUpsert {
                messages: vec![message],
            }));
            self.inbox.reported(inbox_key);
        }
    }

    /// [`Inner::emit_message`] for a received message, followed by what it implies: its
    /// poll vote or event response decrypted, a member's label change (see
    /// [`crate::addon::follow_ups`]), in the same order.
    pub(crate) async fn report_received(&self, message: WaMessage, inbox_key: Option<String>) {
        let follow = crate::addon::follow_ups(self, &message).await;
        let offline = message.offline;
        self.emit_message(message, inbox_key);
        for event in follow {
            self.emit_after_message(event, offline);
        }
    }

    /// Reports the updates of one receipt like [`Inner::emit_message`] reports a message:
    /// those of a receipt from the offline backlog wait in the same buffer, in order.
    pub(crate) fn emit_updates(&self, updates: Vec<MessageUpdate>, offline: bool) {
        if updates.is_empty() {
            return;
        }
        if self.holds(offline) {
            self.hold(Held::Updates(updates));
        } else {
            self.emit_live(Event::MessagesUpdate(updates));
        }
    }

    /// Reports an event that follows a message (from the offline backlog when
    /// `offline`) in the message's order, as [`Inner::emit_updates`] does.
    pub(crate) fn emit_after_message(&self, event: Event, offline: bool) {
        if self.holds(offline) {
            self.hold(Held::Event(Box::new(event)));
        } else {
            self.emit_live(event);
        }
    }

    /// Whether a report from the offline backlog (`offline`) is held.
    fn holds(&self, offline: bool) -> bool {
        offline && self.config.offline_batch > 0
    }

    /// Holds an offline report (a full buffer is reported first).
    fn hold(&self, item: Held) {
        let mut buf = self.offline();
        if buf.items > 0 && buf.items + item.items() > self.config.offline_batch {
            self.flush_locked(&mut buf);
        }
        if buf.held.is_empty() {
            buf.since = Some(std::time::Instant::now());
        }
        buf.items += item.items();
        buf.held.push(item);
    }

    /// Emits a live report after whatever is held, keeping the order.
    fn emit_live(&self, event: Event) {
        let mut buf = self.offline();
        self.flush_locked(&mut buf);
        self.emit(event);
    }

    /// Reports everything held, in order (see [`coalesce`]). Emitting under the buffer's
    /// lock keeps two flushes from interleaving their events.
    fn flush_locked(&self, buf: &mut OfflineBuffer) {
        buf.since = None;
        buf.items = 0;
        let held = std::mem::take(&mut buf.held);
        let keys: Vec<String> = held
            .iter()
            .filter_map(|h| match h {
                Held::Message(_, key) => key.clone(),
                Held::Updates(_) | Held::Event(_) => None,
            })
            .collect();
        for event in coalesce(held) {
            self.emit(event);
        }
        self.inbox.reported(keys);
    }

    /// Passes `barrier` for one party; the last one flushes the offline buffer.
    fn pass_barrier(&self, barrier: &Barrier) {
        self.pass_barrier_for(barrier, 1);
    }

    /// Passes `barrier` for `n` parties at once.
    fn pass_barrier_for(&self, barrier: &Barrier, n: usize) {
        if n > 0 && barrier.fetch_sub(n, Ordering::AcqRel) == n {
            self.flush_offline();
            self.barrier_passed.notify_waiters();
        }
    }

    /// Reports every held offline message and receipt update.
    pub(crate) fn flush_offline(&self) {
        let mut buf = self.offline();
        self.flush_locked(&mut buf);
    }

    fn flush_offline_if_stale(&self, age: Duration) {
        let stale = self.offline().since.is_some_and(|s| s.elapsed() >= age);
        if stale {
            self.flush_offline();
        }
    }

    pub(crate) fn wait_ack(&self, id: &str) -> AckWaiter<'_> {
        let (tx, rx) = oneshot::channel();
        self.acks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned(), tx);
        AckWaiter {
            inner: self,
            id: id.to_owned(),
            rx: Some(rx),
        }
    }

    fn resolve_ack(&self, node: Node) {
        if stanza::str_attr(&node, "class") != Some("message") {
            debug!(
                "ignoring ack of class {:?}",
                stanza::str_attr(&node, "class")
            );
            return;
        }
        let Some(id) = stanza::id_attr(&node) else {
            return;
        };
        let tx = self
            .acks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
        if let Some(tx) = tx {
            let _ = tx.send(node);
        }
    }

    /// Forgets sent messages, processed markers and message secrets older than their
    /// TTLs.
    async fn prune(&self) -> Result<(), Error> {
        let now = unix_now();
        let age = |ttl: Duration| i64::try_from(now.saturating_sub(ttl.as_secs())).unwrap_or(0);
        let mut batch = wa_store::Batch::new();
        batch
            .prune_sent_messages(age(self.config.sent_message_ttl))
            .prune_processed_messages(age(self.config.processed_marker_ttl))
            .prune_inbox(age(self.config.processed_marker_ttl))
            .prune_message_secrets(age(self.config.message_secret_ttl));
        self.socket.store().commit(batch).await?;
        Ok(())
    }

    /// Learns a phone-number user's LID through usync the first time we write to them
    /// (when no mapping is stored yet) and stores the mapping. Failures are only logged.
    pub(crate) async fn learn_lid(&self, user: &Jid) {
        use wa_store::LidMappingStore as _;
        if !user.is_pn_user() {
            return;
        }
        let store = self.socket.store();
        if matches!(self.lid_for_pn(&user.user).await, Ok(Some(_))) {
            return;
        }
        {
            let mut asked = self
                .lid_asked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if asked.len() >= MAX_LID_ASKED {
                asked.clear();
            }
            if !asked.insert(user.user.to_string()) {
                return;
            }
        }
        match self.usync.lid_for(std::slice::from_ref(user)).await {
            Ok(map) => {
                if let Some(lid) = map.get(&user.to_non_ad()).filter(|l| l.is_lid()) {
                    match store.put_lid_mapping(&user.user, &lid.user).await {
                        Ok(()) => {
                            self.lid.remember(&user.user, &lid.user).await;
                            self.socket.emit(wa_socket::Event::LidMappings(vec![
                                wa_types::LidMapping::of_users(&lid.user, &user.user),
                            ]));
                        }
                        Err(e) => debug!("could not store the LID of {user}: {e}"),
                    }
                }
            }
            Err(e) => debug!("LID lookup for {user} failed: {e}"),
        }
    }

    /// Marks a history notification as being processed; false when it already is.
    pub(crate) fn claim_history(&self, id: &str) -> bool {
        self.history_busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned())
    }

    pub(crate) fn release_history(&self, id: &str) {
        self.history_busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    pub(crate) fn pending(&self) -> std::sync::MutexGuard<'_, crate::placeholder::Pending> {
        self.pending_resends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn bump_retry(&self, key: &str) -> u32 {
        self.retries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .bump(key, self.config.retry_table_capacity)
    }

    /// The credentials of a registered device.
    pub(crate) async fn creds(&self) -> Result<Arc<AuthCreds>, Error> {
        match self.socket.auth().await {
            Some(c) if c.registered => Ok(c),
            _ => Err(Error::NotLoggedIn),
        }
    }

    pub(crate) fn me(creds: &AuthCreds) -> Result<Me, Error> {
        let pn: Jid = creds
            .jid
            .as_deref()
            .and_then(|j| j.parse().ok())
            .ok_or_else(|| Error::NotLoggedIn)?;
        let lid = creds.lid.as_deref().and_then(|l| l.parse::<Jid>().ok());
        Ok(Me { pn, lid })
    }

    /// Takes the Signal lock. Sends staged together and not committed yet are committed
    /// first (their waiters told the outcome), so the holder reads a store that holds
    /// every change made under the lock before.
    pub(crate) async fn crypto_lock(&self) -> CryptoGuard<'_> {
        let mut guard = self.crypto.lock().await;
        self.commit_open_sends(&mut guard).await;
        guard
    }

    /// Commits the sends staged together under `guard`, if any, and tells their waiters.
    pub(crate) async fn commit_open_sends(&self, guard: &mut CryptoGuard<'_>) {
        let Some(open) = guard.take() else { return };
        let result = self
            .commit_staged(&open.repo, open.extra)
            .await
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            warn!("commit of {} sends failed: {e}", open.members.len());
        }
        for member in open.members {
            // A send that stopped waiting no longer needs the answer.
            let _ = member.send(result.clone());
        }
    }

    /// Commits `repo`'s staged Signal state with `extra`, then reports each identity it
    /// replaced (a peer device that reinstalled) as an implicit [`IdentityChange`].
    pub(crate) async fn commit_staged(
        &self,
        repo: &Repo,
        extra: wa_store::Batch,
    ) -> Result<(), Error> {
        repo.store().commit(extra).await?;
        for addr in repo.store().replaced_identities() {
            match jid_of_address(&addr.name, addr.device_id) {
                Some(jid) => {
                    tracing::info!("identity of {jid} changed; the new key was accepted");
                    self.emit(Event::IdentityChange(wa_types::IdentityChange::implicit(
                        jid,
                        unix_now(),
                    )));
                }
                None => debug!("replaced identity of unknown address {}", addr.name),
            }
        }
        Ok(())
    }

    /// Reports a changed identity of `addr` that was refused (see
    /// [`MessengerConfig::trust_changed_identities`]).
    pub(crate) fn refused_identity(&self, addr: &wa_signal::ProtocolAddress) {
        match jid_of_address(&addr.name, addr.device_id) {
            Some(jid) => {
                warn!("identity of {jid} changed; the new key is not trusted");
                self.emit(Event::IdentityChange(wa_types::IdentityChange::untrusted(
                    jid,
                    unix_now(),
                )));
            }
            None => debug!("refused identity of unknown address {}", addr.name),
        }
    }

    /// A repository whose writes are staged until [`SignalStoreAdapter::commit`].
    pub(crate) fn staged_repo(&self, creds: &AuthCreds) -> Repo {
        let adapter = SignalStoreAdapter::new(self.socket.store().clone(), creds).staged();
        SignalRepository::new(adapter, OsRng)
    }

    /// Fetches pre-key bundles for `devices` (one query); devices the server has no
    /// bundle for, or whose entry is malformed, are left out.
    pub(crate) async fn fetch_bundles(
        &self,
        devices: &[Jid],
    ) -> Result<Vec<(Jid, wa_signal::PreKeyBundle)>, Error> {
        let mut out = Vec::new();
        for chunk in devices.chunks(100) {
            let reply = self.socket.query(stanza::key_fetch(chunk)).await?;
            let Some(list) = reply.child("list") else {
                continue;
            };
            for user in list.children_by_tag("user").take(chunk.len()) {
                match wa_signal::PreKeyBundle::from_user_node(user) {
                    Ok((jid, bundle)) if chunk.contains(&jid) => out.push((jid, bundle)),
                    Ok((jid, _)) => warn!("key fetch answered for an unasked device {jid}"),
                    Err(e) => warn!("no usable pre-key bundle: {e}"),
                }
            }
        }
        Ok(out)
    }
}

/// The device JID a Signal address names (`user` for a phone number, `user_1` for a LID,
/// `_128` / `_129` for hosted ones); `None` for other suffixes or a bad device.
pub(crate) fn jid_of_address(name: &str, device: u32) -> Option<Jid> {
    let device = u16::try_from(device).ok()?;
    let (user, server) = match name.rsplit_once('_') {
        None => (name, wa_binary::Server::Pn),
        Some((u, "1")) => (u, wa_binary::Server::Lid),
        Some((u, "128")) => (u, wa_binary::Server::Hosted),
        Some((u, "129")) => (u, wa_binary::Server::HostedLid),
        Some(_) => return None,
    };
    (!user.is_empty()).then(|| Jid::with_device(user.to_owned(), server, device))
}

/// Starts a session from a bundle; a changed identity (the peer reinstalled) is accepted
/// and replaces the stored one, as WhatsApp clients do.
pub(crate) async fn inject_session(
    inner: &Inner,
    repo: &Repo,
    device: &Jid,
    bundle: &wa_signal::PreKeyBundle,
) -> Result<(), wa_signal::Error> {
    use wa_signal::IdentityKeyStore as _;
    match repo.inject_e2e_session(device, bundle).await {
        Err(wa_signal::Error::UntrustedIdentity(addr))
            if !inner.config.trust_changed_identities =>
        {
            inner.refused_identity(&addr);
            Err(wa_signal::Error::UntrustedIdentity(addr))
        }
        Err(wa_signal::Error::UntrustedIdentity(addr)) => {
            warn!("identity of {addr} changed; accepting the new key");
            repo.store()
                .save_identity(&addr, &bundle.identity_key)
                .await?;
            repo.inject_e2e_session(device, bundle).await
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_addresses_map_back_to_devices() {
        let j = |s: &str| s.parse::<Jid>().unwrap();
        assert_eq!(jid_of_address("1555", 0), Some(j("1555@s.whatsapp.net")));
        assert_eq!(jid_of_address("987_1", 3), Some(j("987:3@lid")));
        assert_eq!(jid_of_address("987_128", 0), Some(j("987@hosted")));
        assert_eq!(jid_of_address("987_129", 2), Some(j("987:2@hosted.lid")));
        assert_eq!(jid_of_address("987_7", 0), None);
        assert_eq!(jid_of_address("_1", 0), None);
        assert_eq!(jid_of_address("1555", 70_000), None);
        for jid in [
            "1555:4@s.whatsapp.net",
            "987:3@lid",
            "987@hosted",
            "987:2@hosted.lid",
        ] {
            let (name, device) = j(jid).signal_address();
            assert_eq!(jid_of_address(&name, device), Some(j(jid)), "{jid}");
        }
    }

    fn message(id: &str) -> Held {
        Held::Message(
            Box::new(WaMessage {
                key: MessageKey::new(Jid::pn("1"), false, id),
                sender: Jid::pn("1"),
                sender_alt: None,
                push_name: None,
                timestamp: 0,
                message: Arc::default(),
                offline: true,
                request_id: None,
                bot_edit: None,
            }),
            None,
        )
    }

    fn updates(ids: &[&str]) -> Held {
        Held::Updates(
            ids.iter()
                .map(|id| MessageUpdate {
                    key: MessageKey::new(Jid::pn("2"), true, *id),
                    device: Jid::pn("2"),
                    receipt: ReceiptType::Read,
                    timestamp: 0,
                })
                .collect(),
        )
    }

    fn ids(e: &Event) -> (&'static str, Vec<String>) {
        match e {
            Event::MessagesUpsert(u) => (
                "upsert",
                u.messages.iter().map(|m| m.key.id.clone()).collect(),
            ),
            Event::MessagesUpdate(u) => ("update", u.iter().map(|m| m.key.id.clone()).collect()),
            Event::CredsUpdated => ("other", Vec::new()),
            other => panic!("unexpected event {other:?}"),
        }
    }

    #[test]
    fn held_reports_coalesce_in_order_by_runs() {
        let events = coalesce(vec![
            message("m1"),
            message("m2"),
            updates(&["r1"]),
            updates(&["r2", "r3"]),
            message("m3"),
            updates(&["r4"]),
        ]);
        let got: Vec<_> = events.iter().map(ids).collect();
        let want = |k: &'static str, v: &[&str]| (k, v.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            got,
            vec![
                want("upsert", &["m1", "m2"]),
                want("update", &["r1", "r2", "r3"]),
                want("upsert", &["m3"]),
                want("update", &["r4"]),
            ]
        );
        assert!(coalesce(Vec::new()).is_empty());
        // Another event keeps its place and splits the runs around it.
        let events = coalesce(vec![
            message("m1"),
            Held::Event(Box::new(Event::CredsUpdated)),
            message("m2"),
        ]);
        let got: Vec<_> = events.iter().map(ids).collect();
        assert_eq!(
            got,
            vec![
                want("upsert", &["m1"]),
                want("other", &[]),
                want("upsert", &["m2"]),
            ]
        );
    }

    #[test]
    fn items_count_messages_and_updates() {
        assert_eq!(message("m").items(), 1);
        assert_eq!(updates(&["a", "b", "c"]).items(), 3);
    }
}
