//! The socket actor: a supervisor task running connection attempts, each with a reader
//! task, a keep-alive task and a writer that encrypts and sends under one lock.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use prost::Message;
use rand::RngCore;
use rand::rngs::OsRng;
use tokio::sync::{Mutex, Notify, broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use wa_binary::{Jid, Node, Server};
use wa_crypto::KeyPair;
use wa_noise::{FrameDecoder, Initiator, InitiatorConfig, Transport};
use wa_store::{AccountStore, AuthCreds, CredsStore, IdentityStore, PreKeyStore};
use wa_types::{
    ConnectionState, ConnectionUpdate, DisconnectReason, Event, PasskeyConfirmation,
    PasskeyErrorKind, PasskeyFailure,
};
use zeroize::Zeroizing;

use crate::config::SocketConfig;
use crate::dispatch::{Dispatched, Dispatcher, Filter};
use crate::pairing::{self, FinishRandom, PairError};
use crate::passkey::{self, WebAuthnAssertion};
use crate::payload::{PayloadOptions, login_payload, platform_type, registration_payload};
use crate::query::PendingQueries;
use crate::transport::{WsConnector, WsReader, WsUrl, WsWriter};
use crate::{Error, disconnect_reason};

/// Most one-time pre-keys [`Socket::upload_pre_keys`] uploads at once (WhatsApp Web's
/// first upload is 812).
pub const MAX_PRE_KEY_UPLOAD: u32 = 2_000;

/// A handle to one WhatsApp Web connection that reconnects by itself. Cheap to clone.
///
/// When the last handle is dropped the socket closes (as with [`Socket::close`]).
#[derive(Clone)]
pub struct Socket {
    inner: Arc<Inner>,
    _guard: Arc<CloseOnDrop>,
}

/// Closes the socket when the last [`Socket`] handle goes away.
struct CloseOnDrop(std::sync::Weak<Inner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner.shutdown(DisconnectReason::ClosedByUser);
        }
    }
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("state", &*self.inner.state.borrow())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: SocketConfig,
    store: AccountStore,
    creds: Mutex<Option<Arc<AuthCreds>>>,
    events: broadcast::Sender<Event>,
    /// A subscription made before the supervisor started, for the first
    /// [`Socket::events_from_start`] caller; dropped at the first login if nobody took it.
    startup_events: StdMutex<Option<broadcast::Receiver<Event>>>,
    /// Subscriptions to a few kinds of event ([`Socket::events_matching`]).
    taps: StdMutex<Vec<EventTap>>,
    dispatcher: Dispatcher,
    conn: StdMutex<Option<Arc<Conn>>>,
    state: watch::Sender<ConnectionState>,
    stop: watch::Sender<Option<DisconnectReason>>,
    new_login: AtomicBool,
    /// The server's clock minus ours, in milliseconds, from the last `<success t>`.
    server_time_offset_ms: AtomicI64,
    /// Serializes pre-key id allocation (batches and single retry keys); never held
    /// across network I/O.
    pre_key_lock: Mutex<()>,
    /// One pre-key count check and upload at a time.
    pre_key_upload: Mutex<()>,
    /// The server's AB props, as last fetched (WhatsApp Web's defaults before).
    props: StdMutex<crate::ServerProps>,
    supervisor: StdMutex<Option<JoinHandle<()>>>,
}

/// A subscription made with [`Socket::events_matching`].
struct EventTap {
    wanted: fn(&Event) -> bool,
    tx: mpsc::Sender<Event>,
}

/// One live connection (one websocket + Noise transport).
struct Conn {
    /// The websocket's sending half. [`Conn::send`] leaves frames in its buffer and
    /// [`flush_loop`] writes them out.
    writer: WsWriter,
    /// Held from encryption until the frame is in the writer's buffer, so frames go out
    /// in nonce order.
    send_lock: Mutex<()>,
    /// Wakes the connection's flusher (see [`flush_loop`]) after a frame was buffered.
    flush_wanted: Notify,
    /// Longest a frame may wait to be written (the send lock included) before the peer
    /// is declared dead and the connection closed.
    write_timeout: Duration,
    transport: StdMutex<Transport>,
    pending: PendingQueries,
    close: watch::Sender<Option<DisconnectReason>>,
    tasks: StdMutex<Vec<JoinHandle<()>>>,
    qr_task: StdMutex<Option<JoinHandle<()>>>,
    /// Whether this connection last announced `<presence type="available">` (and not
    /// `unavailable` since); see [`Socket::is_online`].
    online: AtomicBool,
    /// A passkey link in progress on this (registration) connection.
    passkey: StdMutex<PasskeyState>,
}

/// What a passkey link keeps between its steps; the secrets are zeroized on drop.
#[derive(Default)]
struct PasskeyState {
    /// The handoff key (from the ADV secret the QR showed) and when it was made.
    handoff: Option<(Zeroizing<[u8; 32]>, std::time::Instant)>,
    /// Set when the prologue was sent.
    link: Option<PasskeyLink>,
}

struct PasskeyLink {
    ephemeral: KeyPair,
    companion_nonce: Zeroizing<[u8; 32]>,
    reference: String,
    device_type: i32,
    /// The prologue carried the handoff proof.
    skip_handoff_ux: bool,
    /// Set by the primary's continuation: the pairing-request key and the code.
    agreed: Option<(Zeroizing<[u8; 32]>, String)>,
}

impl Conn {
    fn close(&self, reason: DisconnectReason) {
        self.close.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    fn is_closed(&self) -> bool {
        self.close.borrow().is_some()
    }

    async fn send(&self, node: &Node) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::NotConnected);
        }
        // A stanza the format cannot carry (a device above 255 in an AD JID, a list
        // too long to count) is refused rather than sent altered or malformed.
        let plain = wa_binary::try_encode(node)?;
        let write = async {
            let _turn = self.send_lock.lock().await;
            let mut out = BytesMut::with_capacity(plain.len() + 19);
            {
                let mut t = self
                    .transport
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                t.encrypt_into(&plain, &mut out)?;
            }
            // Encryption and writing happen under `send_lock`, so the send order equals
            // the nonce order.
            self.writer.write(&out).await?;
            self.flush_wanted.notify_one();
            Ok(())
        };
        // A peer that stops reading (or a connection that died without a reset) would
        // otherwise hold every sender, the keep-alive included, forever.
        match tokio::time::timeout(self.write_timeout, write).await {
            Ok(r) => {
                if r.is_ok() {
                    self.note_presence(node);
                }
                r
            }
            Err(_) => {
                warn!("a frame could not be written in time: peer is dead");
                self.close(DisconnectReason::TimedOut);
                Err(Error::Timeout("write"))
            }
        }
    }

    /// Remembers our own availability as announced by a sent `<presence type>` without
    /// `to` (one with `to` is a subscription, not an announcement).
    fn note_presence(&self, node: &Node) {
        if node.tag() != "presence" || node.get_attr("to").is_some() {
            return;
        }
        match node.attr_opt::<&str>("type").ok().flatten() {
            Some("available") => self.online.store(true, Ordering::Relaxed),
            Some("unavailable") => self.online.store(false, Ordering::Relaxed),
            _ => {}
        }
    }

    fn spawn(&self, task: JoinHandle<()>) {
        let mut t = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.retain(|h| !h.is_finished());
        t.push(task);
    }

    fn passkey(&self) -> std::sync::MutexGuard<'_, PasskeyState> {
        self.passkey
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stop_qr(&self) {
        let t = self
            .qr_task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(t) = t {
            t.abort();
        }
    }

    /// Aborts the connection's tasks (reader, keep-alive, handlers it spawned) and waits
    /// until they have stopped (at most `limit`): an abort only takes effect at a task's
    /// next await, and a reader still running on another thread could otherwise hand
    /// out stanzas after the connection was reported closed.
    async fn stop_tasks(&self, limit: Duration) {
        self.stop_qr();
        let t = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for h in &t {
            h.abort();
        }
        let joined = tokio::time::timeout(limit, async {
            for h in t {
                let _ = h.await;
            }
        })
        .await;
        if joined.is_err() {
            debug!("connection tasks did not stop in time");
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn iq_error(node: &Node) -> Option<Error> {
    if node.attr_opt::<&str>("type").ok().flatten() != Some("error") {
        return None;
    }
    let e = node.child("error");
    let code = e
        .and_then(|e| e.attr_opt::<u64>("code").ok().flatten())
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(0);
    let text = e
        .and_then(|e| e.attr_opt::<&str>("text").ok().flatten())
        .unwrap_or("")
        .to_owned();
    Some(Error::Iq { code, text })
}

impl Socket {
    /// Starts the socket: a supervisor task connects, logs in (or registers), and
    /// reconnects after failures until a terminal disconnect or [`Socket::close`].
    /// Subscribe with [`Socket::events`] right away to see every event.
    pub fn connect(config: SocketConfig) -> Socket {
        let (events, startup_events) = broadcast::channel(config.event_capacity.max(16));
        let (state, _) = watch::channel(ConnectionState::Connecting);
        let (stop, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            store: crate::config::effective_store(&config),
            config,
            creds: Mutex::new(None),
            events,
            startup_events: StdMutex::new(Some(startup_events)),
            taps: StdMutex::new(Vec::new()),
            dispatcher: Dispatcher::default(),
            conn: StdMutex::new(None),
            state,
            stop,
            new_login: AtomicBool::new(false),
            server_time_offset_ms: AtomicI64::new(0),
            pre_key_lock: Mutex::new(()),
            pre_key_upload: Mutex::new(()),
            props: StdMutex::new(crate::ServerProps::default()),
            supervisor: StdMutex::new(None),
        });
        let handle = tokio::spawn(supervise(Arc::downgrade(&inner)));
        *inner
            .supervisor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handle);
        let guard = Arc::new(CloseOnDrop(Arc::downgrade(&inner)));
        Socket {
            inner,
            _guard: guard,
        }
    }

    /// A new subscription to the socket's events (bounded; a subscriber that lags loses
    /// the oldest events and sees `RecvError::Lagged`).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// A subscription to the events `wanted` picks, for a task that waits for a few
    /// kinds among many: it is woken only for those, and the busy kinds (messages,
    /// receipts) cannot crowd them out, as they can on a lagging [`Socket::events`]
    /// subscription. Holds up to `capacity` events (1 to 65,536); when the subscriber
    /// is that far behind, a new one is dropped for it (logged).
    pub fn events_matching(
        &self,
        wanted: fn(&Event) -> bool,
        capacity: usize,
    ) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(capacity.clamp(1, 1 << 16));
        self.inner
            .taps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(EventTap { wanted, tx });
        rx
    }

    /// Emits `event` on the socket's event bus, for the layers above the socket (messages,
    /// groups, ...): every layer reports through this one bus. Without subscribers the
    /// event is dropped.
    pub fn emit(&self, event: Event) {
        self.inner.emit(event);
    }

    /// Generates one new one-time pre-key outside the uploaded batches (for a retry
    /// receipt's `<keys>`, which hands it to one peer directly): the key is stored and the
    /// id counter advanced and saved before it is returned, so the id is never issued
    /// again and the key is never uploaded.
    ///
    /// # Errors
    /// [`Error::NotConnected`] before the credentials are loaded; store errors.
    pub async fn generate_pre_key(&self) -> Result<wa_signal::PreKeyRecord, Error> {
        let _guard = self.inner.pre_key_lock.lock().await;
        let mut guard = self.inner.creds.lock().await;
        let creds = guard
            .as_mut()
            .map(Arc::make_mut)
            .ok_or_else(|| Error::NotConnected)?;
        let id = creds
            .next_pre_key_id
            .max(creds.first_unuploaded_pre_key_id)
            .max(1);
        if id >= wa_signal::MAX_PRE_KEY_ID {
            return Err(Error::UnexpectedResponse("pre-key ids exhausted"));
        }
        let record = wa_signal::PreKeyRecord {
            id,
            key_pair: KeyPair::generate(&mut OsRng),
        };
        self.inner
            .store
            .put_pre_keys(&[(id, record.serialize().as_slice())])
            .await?;
        creds.next_pre_key_id = id + 1;
        self.inner.store.save_creds(creds).await?;
        Ok(record)
    }

    /// The server's AB props as last fetched (after each login; WhatsApp Web's defaults
    /// before the first answer): among them whether privacy tokens ride on 1:1 messages
    /// and picture queries and where ours are issued.
    pub fn server_props(&self) -> crate::ServerProps {
        self.inner
            .props
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Fetches the server's AB props now (`<iq xmlns=abt type=get><props protocol=1/>`)
    /// and keeps them for [`Socket::server_props`].
    ///
    /// # Errors
    /// [`Error::NotConnected`], timeouts, the server's errors, a malformed reply.
    pub async fn fetch_server_props(&self) -> Result<crate::ServerProps, Error> {
        let conn = self.inner.current().ok_or_else(|| Error::NotConnected)?;
        fetch_props(&self.inner, &conn).await
    }

    /// Checks the key bundle the server holds for this device against our credentials
    /// (Baileys' `digestKeyBundle`; the socket does it after every login): when the server
    /// has none, or another registration id, identity or signed pre-key, a batch of
    /// pre-keys is uploaded with the current ones. Returns whether it was in order.
    ///
    /// # Errors
    /// [`Error::NotConnected`], timeouts, the server's errors and store errors.
    pub async fn verify_key_bundle(&self) -> Result<bool, Error> {
        let conn = self.inner.current().ok_or_else(|| Error::NotConnected)?;
        check_key_bundle(&self.inner, &conn).await
    }

    /// Replaces our signed pre-key (Baileys' `rotateSignedPreKey`): a new key with the
    /// next id, signed by our identity, sent with `<iq xmlns=encrypt type=set><rotate>`.
    /// Both the new and the previous key are stored before the request leaves, so
    /// messages started against either decrypt whatever happens to the request; only
    /// once the server accepted it does the new key become the current one in the
    /// credentials. The key from two rotations back is deleted. Returns the new id.
    ///
    /// # Errors
    /// [`Error::NotConnected`], timeouts, the server's errors and store errors.
    pub async fn rotate_signed_pre_key(&self) -> Result<u32, Error> {
        use wa_store::SignedPreKeyStore as _;
        let conn = self.inner.current().ok_or_else(|| Error::NotConnected)?;
        // No pre-key upload (which sends the current signed pre-key) runs meanwhile.
        let _uploads = self.inner.pre_key_upload.lock().await;
        let (old, new) = {
            let guard = self.inner.creds.lock().await;
            let creds = guard.as_ref().ok_or_else(|| Error::NotConnected)?;
            let old = creds.signed_pre_key.clone();
            let id = if old.id >= wa_signal::MAX_PRE_KEY_ID {
                1
            } else {
                old.id + 1
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let new = wa_store::SignedPreKey::generate(id, &creds.identity_key, now, &mut OsRng);
            (old, new)
        };
        let record = |k: &wa_store::SignedPreKey| {
            wa_signal::SignedPreKeyRecord {
                id: k.id,
                key_pair: k.key_pair.clone(),
                signature: k.signature,
                timestamp: k.timestamp,
            }
            .serialize()
        };
        let mut batch = wa_store::Batch::new();
        batch
            .put_signed_pre_key(old.id, &record(&old))
            .put_signed_pre_key(new.id, &record(&new));
        self.inner.store.commit(batch).await?;
        let rotate = server_iq(
            "encrypt",
            "set",
            Node::builder("rotate").children([skey_node(&new)]).build(),
        );
        query_on(&conn, rotate, self.inner.config.query_timeout).await?;
        {
            let mut guard = self.inner.creds.lock().await;
            let creds = guard
                .as_mut()
                .map(Arc::make_mut)
                .ok_or_else(|| Error::NotConnected)?;
            creds.signed_pre_key = new.clone();
            self.inner.store.save_creds(creds).await?;
        }
        let stale = old.id.checked_sub(1).filter(|&i| i > 0 && i != new.id);
        if let Some(stale) = stale
            && let Err(e) = self.inner.store.remove_signed_pre_key(stale).await
        {
            debug!("could not delete signed pre-key {stale}: {e}");
        }
        self.inner.emit(Event::CredsUpdated);
        Ok(new.id)
    }

    /// Like [`Socket::events`], but the first call gets a subscription made before the
    /// socket started, so it sees every event from the start (the first QR code included)
    /// however late it is called, up to the bus capacity and until the first login. Later
    /// calls, and calls after the first login, subscribe from now on.
    pub fn events_from_start(&self) -> broadcast::Receiver<Event> {
        let startup = self
            .inner
            .startup_events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        startup.unwrap_or_else(|| self.inner.events.subscribe())
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        *self.inner.state.borrow()
    }

    /// Whether the current connection has announced us online (`<presence
    /// type="available">`, e.g. through `Chats::send_presence`, and no `unavailable`
    /// since). Each new connection starts offline, as the server sees it. Used to
    /// choose between active and inactive delivery receipts.
    pub fn is_online(&self) -> bool {
        self.inner
            .current()
            .is_some_and(|c| !c.is_closed() && c.online.load(Ordering::Relaxed))
    }

    /// A watch of the connection state.
    pub fn state_watch(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state.subscribe()
    }

    /// The account store (auth state) this socket uses.
    pub fn store(&self) -> &AccountStore {
        &self.inner.store
    }

    /// Our own account's JID with this device (the phone-number form the credentials
    /// name), once linked.
    pub async fn me(&self) -> Option<Jid> {
        self.inner
            .creds
            .lock()
            .await
            .as_ref()?
            .jid
            .as_deref()?
            .parse()
            .ok()
    }

    /// The current credentials, once loaded: a shared snapshot, cheap to take. A change
    /// made after it was taken (through [`Socket::update_creds`] or the socket itself)
    /// does not show in it; take it again to see one.
    pub async fn auth(&self) -> Option<Arc<AuthCreds>> {
        self.inner.creds.lock().await.clone()
    }

    /// Changes the credentials with `f` (for the fields the layers above learn, such as
    /// the push name); when `f` returns true the change is saved and
    /// [`Event::CredsUpdated`] emitted, otherwise the change is dropped. Returns whether
    /// it was saved.
    ///
    /// # Errors
    /// [`Error::NotConnected`] before the credentials are loaded; store errors (then
    /// nothing changed).
    pub async fn update_creds(
        &self,
        f: impl FnOnce(&mut AuthCreds) -> bool,
    ) -> Result<bool, Error> {
        {
            let mut guard = self.inner.creds.lock().await;
            let creds = guard.as_mut().ok_or_else(|| Error::NotConnected)?;
            let mut updated = AuthCreds::clone(creds);
            if !f(&mut updated) {
                return Ok(false);
            }
            self.inner.store.save_creds(&updated).await?;
            *creds = Arc::new(updated);
        }
        self.emit(Event::CredsUpdated);
        Ok(true)
    }

    /// The privacy token `jid` issued to us, if one is stored and still valid (see
    /// [`privacy_token`](crate::privacy_token)); requests to a user attach it as
    /// `<tctoken>`.
    pub async fn privacy_token(&self, jid: &Jid) -> Option<Vec<u8>> {
        crate::privacy_token::usable_token(&self.inner.store, jid, crate::privacy_token::now())
            .await
    }

    /// Issues our privacy token to each of `jids` (user JIDs) at time `t` (unix seconds);
    /// the server hands it to them. Does not record the issuance (see
    /// [`PrivacyToken::sender_timestamp`](wa_store::PrivacyToken::sender_timestamp)).
    ///
    /// # Errors
    /// As [`Socket::query`].
    pub async fn issue_privacy_tokens(&self, jids: &[Jid], t: i64) -> Result<(), Error> {
        self.query(crate::privacy_token::issue_iq(jids, t)).await?;
        Ok(())
    }

    /// The configuration the socket runs with.
    pub fn config(&self) -> &SocketConfig {
        &self.inner.config
    }

    /// Registers a handler queue for stanzas that `filter` matches.
    pub fn subscribe(&self, filter: Filter, capacity: usize) -> crate::Subscription {
        self.inner.dispatcher.subscribe(filter, capacity)
    }

    /// Sends `<ib><unified_session id/></ib>`, the session marker WhatsApp Web (and
    /// Baileys) sends after login and when going online: `id` is the server's time in
    /// milliseconds, shifted by three days, modulo a week. The socket sends it after each
    /// login; `wa-chats` when presence becomes available.
    ///
    /// # Errors
    /// [`Error::NotConnected`].
    pub async fn send_unified_session(&self) -> Result<(), Error> {
        self.send_node(&unified_session_node(&self.inner)).await
    }

    /// Sends a stanza on the current connection. It returns once the encrypted frame is
    /// queued on the connection, in order with every other; the connection's task writes
    /// it to the socket right after (see the crate documentation).
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::Binary`] for a stanza the wire format cannot
    /// carry (nothing is sent; the connection stays open), [`Error::Timeout`] when the
    /// frame could not be queued within `keep_alive_timeout` (the connection is closed),
    /// or a transport error.
    pub async fn send_node(&self, node: &Node) -> Result<(), Error> {
        let conn = self.inner.current().ok_or_else(|| Error::NotConnected)?;
        conn.send(node).await
    }

    /// A fresh stanza id.
    pub fn generate_id(&self) -> String {
        let mut b = [0u8; 8];
        OsRng.fill_bytes(&mut b);
        format!("{:016X}", u64::from_be_bytes(b))
    }

    /// Sends an `<iq>` (an `id` is added when missing) and waits for its reply, with the
    /// configured query timeout.
    ///
    /// # Errors
    /// [`Error::Iq`] for `type=error` replies, [`Error::Timeout`], [`Error::NotConnected`].
    pub async fn query(&self, node: Node) -> Result<Node, Error> {
        self.query_timeout(node, self.inner.config.query_timeout)
            .await
    }

    /// [`Socket::query`] with an explicit timeout.
    ///
    /// # Errors
    /// As [`Socket::query`].
    pub async fn query_timeout(&self, node: Node, timeout: Duration) -> Result<Node, Error> {
        let conn = self.inner.current().ok_or_else(|| Error::NotConnected)?;
        query_on(&conn, node, timeout).await
    }

    /// Tells the server that the client has synced the data of `kind` flagged by an
    /// [`Event::DirtyBits`] (`<iq xmlns="urn:xmpp:whatsapp:dirty"><clean type
    /// [timestamp]>`). The socket does this itself for `account_sync`; the groups layer
    /// for `groups`.
    ///
    /// # Errors
    /// [`Error::NotConnected`], timeouts or the server's error.
    pub async fn clean_dirty_bits(&self, kind: &str, timestamp: Option<u64>) -> Result<(), Error> {
        self.query(clean_dirty_bits_iq(kind, timestamp))
            .await
            .map(drop)
    }

    /// Generates and uploads `count` fresh one-time pre-keys now (Baileys'
    /// `uploadPreKeys`), whatever the server holds. The socket keeps the server stocked
    /// by itself ([`SocketConfig::min_pre_keys`]); this is for topping up ahead of many
    /// new contacts.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a count of 0 or over [`MAX_PRE_KEY_UPLOAD`];
    /// [`Error::NotConnected`], store errors, the server's error.
    pub async fn upload_pre_keys(&self, count: u32) -> Result<(), Error> {
        if count == 0 || count > MAX_PRE_KEY_UPLOAD {
            return Err(Error::InvalidInput("pre-key upload count out of range"));
        }
        let conn = self.inner.current().ok_or_else(|| Error::NotConnected)?;
        let _running = self.inner.pre_key_upload.lock().await;
        upload_pre_keys(&self.inner, &conn, Some(count)).await
    }

    /// Asks the server how many of our one-time pre-keys it holds and uploads a batch
    /// when fewer than [`SocketConfig::min_pre_keys`] are left (Baileys'
    /// `uploadPreKeysToServerIfRequired`; the socket does this after each login and when
    /// the server says it runs low).
    ///
    /// # Errors
    /// [`Error::NotConnected`], store errors, the server's error.
    pub async fn upload_pre_keys_if_required(&self) -> Result<(), Error> {
        let conn = self.inner.current().ok_or_else(|| Error::NotConnected)?;
        pre_key_check(&self.inner, &conn, None).await
    }

    /// Asks for a pairing code for `phone` (digits only, international format) instead of
    /// a QR scan; the code is also emitted as [`Event::PairingCode`]. Call it once the
    /// socket is connecting with fresh credentials (after the first QR event).
    ///
    /// # Errors
    /// [`Error::NotConnected`] or the server's error.
    pub async fn request_pairing_code(&self, phone: &str) -> Result<String, Error> {
        let code = pairing::random_pairing_code(&mut OsRng);
        self.pairing_code_request(phone, code).await
    }

    /// [`Socket::request_pairing_code`] with a code of the caller's choosing (Baileys'
    /// `customPairingCode`): exactly 8 characters of the alphabet generated codes use
    /// (digits 1-9 and the letters but I, O and U; lower case is taken as upper case),
    /// so that the code can be typed on the phone as it reads. Returns the code as sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for any other code; as [`Socket::request_pairing_code`].
    pub async fn request_custom_pairing_code(
        &self,
        phone: &str,
        code: &str,
    ) -> Result<String, Error> {
        let code = code.to_ascii_uppercase();
        if code.len() != 8
            || !code
                .bytes()
                .all(|b| pairing::PAIRING_CODE_ALPHABET.contains(&b))
        {
            return Err(Error::InvalidInput(
                "a pairing code is 8 characters of the pairing-code alphabet",
            ));
        }
        self.pairing_code_request(phone, code).await
    }

    async fn pairing_code_request(&self, phone: &str, code: String) -> Result<String, Error> {
        let phone: String = phone.chars().filter(char::is_ascii_digit).collect();
        let (wrapped, noise_pub) = {
            let mut guard = self.inner.creds.lock().await;
            let creds = guard
                .as_mut()
                .map(Arc::make_mut)
                .ok_or_else(|| Error::NotConnected)?;
            creds.pairing_code = Some(code.clone());
            creds.jid = Some(format!("{phone}@s.whatsapp.net"));
            let mut salt = [0u8; 32];
            let mut iv = [0u8; 16];
            OsRng.fill_bytes(&mut salt);
            OsRng.fill_bytes(&mut iv);
            let wrapped =
                pairing::wrap_ephemeral(&code, &salt, &iv, &creds.pairing_ephemeral_key.public);
            self.inner.store.save_creds(creds).await?;
            (wrapped, creds.noise_key.public)
        };
        let b = &self.inner.config.browser;
        let platform_id = pairing::companion_platform_id(&b.os, &b.browser);
        let node = Node::builder("iq")
            .attr("to", Jid::server_jid())
            .attr("type", "set")
            .attr("xmlns", "md")
            .children([Node::builder("link_code_companion_reg")
                .attr("jid", Jid::pn(phone.clone()))
                .attr("stage", "companion_hello")
                .attr("should_show_push_notification", "true")
                .children([
                    Node::builder("link_code_pairing_wrapped_companion_ephemeral_pub")
                        .bytes(wrapped)
                        .build(),
                    Node::builder("companion_server_auth_key_pub")
                        .bytes(noise_pub.as_bytes().to_vec())
                        .build(),
                    Node::builder("companion_platform_id")
                        .text(platform_id.to_string())
                        .build(),
                    Node::builder("companion_platform_display")
                        .text(format!("{} ({})", b.browser, b.os))
                        .build(),
                    Node::builder("link_code_pairing_nonce").text("0").build(),
                ])
                .build()])
            .build();
        self.query(node).await?;
        self.inner.emit(Event::CredsUpdated);
        self.inner.emit(Event::PairingCode(code.clone()));
        Ok(code)
    }

    /// Answers the server's passkey request ([`Event::PasskeyRequest`]) with what the
    /// authenticator returned: asks the server for this companion's ref, then sends the
    /// credential id, the assertion JSON and a prologue committing to a fresh ephemeral
    /// key and nonce (with the handoff proof while the request is less than five minutes
    /// old). The primary device answers with [`Event::PasskeyConfirmation`] (or the
    /// socket reports [`Event::PasskeyError`]).
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::UnexpectedResponse`] when the ref is missing or
    /// not text, timeouts or the server's error (for a refused assertion).
    pub async fn send_passkey_response(&self, assertion: &WebAuthnAssertion) -> Result<(), Error> {
        let conn = self.inner.current().ok_or_else(|| Error::NotConnected)?;
        let timeout = self.inner.config.query_timeout;
        let json = assertion.to_json();
        let reply = query_on(
            &conn,
            server_iq("md", "get", Node::builder("ref").build()),
            timeout,
        )
        .await?;
        let reference = reply
            .child("ref")
            .and_then(Node::content_bytes)
            .ok_or_else(|| Error::UnexpectedResponse("no companion ref"))?;
        let reference = std::str::from_utf8(reference)
            .map_err(|_| Error::UnexpectedResponse("companion ref is not text"))?
            .to_owned();
        let ephemeral = KeyPair::generate(&mut OsRng);
        let mut companion_nonce = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(companion_nonce.as_mut());
        let device_type = platform_type(&self.inner.payload_options());
        let prologue =
            passkey::prologue(&ephemeral.public, device_type, &reference, &companion_nonce);
        let proof = {
            let mut st = conn.passkey();
            let proof = st
                .handoff
                .as_ref()
                .filter(|(_, made)| made.elapsed() < passkey::HANDOFF_KEY_LIFETIME)
                .map(|(key, _)| passkey::handoff_proof(key, &prologue.payload));
            // Kept before the prologue leaves: the continuation may overtake its answer.
            st.link = Some(PasskeyLink {
                ephemeral,
                companion_nonce,
                reference,
                device_type,
                skip_handoff_ux: proof.is_some(),
                agreed: None,
            });
            proof
        };
        let mut children = vec![
            Node::builder("credential_id")
                .bytes(assertion.raw_id.clone())
                .build(),
            Node::builder("webauthn_assertion")
                .bytes(json.into_bytes())
                .build(),
            Node::builder("prologue_payload")
                .bytes(prologue.payload)
                .build(),
        ];
        if let Some(proof) = proof {
            children.push(
                Node::builder("pairing_handoff_proof")
                    .bytes(proof.to_vec())
                    .build(),
            );
        }
        let node = server_iq(
            "md",
            "set",
            Node::builder("passkey_prologue").children(children).build(),
        );
        query_on(&conn, node, timeout).await?;
        conn.passkey().handoff = None;
        Ok(())
    }

    /// Finishes a passkey link once the user confirmed that the primary device shows the
    /// code of [`Event::PasskeyConfirmation`] (or without asking, when its
    /// `skip_handoff_ux` is set): sends our Noise and identity keys and the ADV secret
    /// encrypted under the key agreed with the primary. The usual pair-success follows,
    /// then the restart and the first login.
    ///
    /// # Errors
    /// [`PairError::Passkey`] with [`PasskeyErrorKind::OutOfOrder`] before the primary's
    /// continuation was handled; [`Error::NotConnected`], timeouts or the server's error
    /// (a primary that cannot decrypt the request refuses it).
    pub async fn send_passkey_confirmation(&self) -> Result<(), Error> {
        let conn = self.inner.current().ok_or_else(|| Error::NotConnected)?;
        let key = conn
            .passkey()
            .link
            .as_ref()
            .and_then(|l| l.agreed.as_ref())
            .map(|(key, _)| key.clone())
            .ok_or(PairError::Passkey {
                kind: PasskeyErrorKind::OutOfOrder,
                detail: "no confirmation code agreed yet",
            })?;
        let sealed = {
            let guard = self.inner.creds.lock().await;
            let creds = guard.as_ref().ok_or_else(|| Error::NotConnected)?;
            let mut iv = [0u8; 12];
            OsRng.fill_bytes(&mut iv);
            passkey::encrypt_pairing_request(
                &key,
                &iv,
                &creds.noise_key.public,
                &creds.identity_key.public,
                &creds.adv_secret,
            )?
        };
        let node = server_iq(
            "md",
            "set",
            Node::builder("encrypted_pairing_request")
                .bytes(sealed)
                .build(),
        );
        query_on(&conn, node, self.inner.config.query_timeout).await?;
        conn.passkey().link = None;
        Ok(())
    }

    /// [`Socket::send_passkey_confirmation`] after checking `code_on_primary`, the code
    /// the user read on the primary device (any case, the dash optional), against ours.
    /// A different code means the two devices did not agree on the same keys: the link is
    /// abandoned and nothing is sent.
    ///
    /// # Errors
    /// [`PairError::Passkey`] with [`PasskeyErrorKind::CodeMismatch`] when the codes
    /// differ; as [`Socket::send_passkey_confirmation`].
    pub async fn confirm_passkey_code(&self, code_on_primary: &str) -> Result<(), Error> {
        let conn = self.inner.current().ok_or_else(|| Error::NotConnected)?;
        {
            let mut st = conn.passkey();
            let same = st
                .link
                .as_ref()
                .and_then(|l| l.agreed.as_ref())
                .map(|(_, code)| passkey::same_code(code_on_primary, code))
                .ok_or(PairError::Passkey {
                    kind: PasskeyErrorKind::OutOfOrder,
                    detail: "no confirmation code agreed yet",
                })?;
            if !same {
                st.link = None;
                return Err(PairError::Passkey {
                    kind: PasskeyErrorKind::CodeMismatch,
                    detail: "the primary device shows another code",
                }
                .into());
            }
        }
        self.send_passkey_confirmation().await
    }

    /// Drops the current connection and connects again at once (whatsmeow's
    /// `ResetConnection`), e.g. after the network changed; the connection ends with
    /// [`DisconnectReason::ResetByUser`]. Does nothing while no connection is up.
    pub fn reset_connection(&self) {
        if let Some(c) = self.inner.current() {
            c.close(DisconnectReason::ResetByUser);
        }
    }

    /// Tells the server whether this device is passive (`true`: it receives no offline
    /// messages until it is made active again) or active. The socket makes itself active
    /// after each login; this is for pausing delivery on purpose.
    ///
    /// # Errors
    /// The server's error, or [`Error::NotConnected`].
    pub async fn set_passive(&self, passive: bool) -> Result<(), Error> {
        let child = if passive { "passive" } else { "active" };
        self.query(server_iq("passive", "set", Node::builder(child).build()))
            .await
            .map(|_| ())
    }

    /// Closes the connection for good (no reconnect); credentials stay.
    pub async fn close(&self) {
        self.inner.shutdown(DisconnectReason::ClosedByUser);
    }

    /// Unlinks this device from the account, then closes and clears the credentials.
    ///
    /// # Errors
    /// The server's error to the removal request (the socket is closed anyway).
    pub async fn logout(&self) -> Result<(), Error> {
        let jid = self
            .inner
            .creds
            .lock()
            .await
            .as_ref()
            .and_then(|c| c.jid.clone());
        let mut result = Ok(());
        if let Some(jid) = jid {
            let node = Node::builder("iq")
                .attr("to", Jid::server_jid())
                .attr("type", "set")
                .attr("xmlns", "md")
                .children([Node::builder("remove-companion-device")
                    .attr(
                        "jid",
                        jid.parse::<Jid>()
                            .map_or(wa_binary::Value::from(jid), Into::into),
                    )
                    .attr("reason", "user_initiated")
                    .build()])
                .build();
            result = self.query(node).await.map(|_| ());
        }
        self.inner.shutdown(DisconnectReason::LoggedOut);
        result
    }

    /// Whether the socket has ended for good ([`Socket::close`], [`Socket::logout`], or
    /// a terminal disconnect): it does not connect again.
    pub fn is_stopped(&self) -> bool {
        self.inner.stop.borrow().is_some()
    }

    /// Waits until the socket has ended for good (at once if it has); unlike
    /// [`Socket::closed`], it does not wait for the supervisor task.
    pub async fn stopped(&self) {
        let mut rx = self.inner.stop.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Waits until the supervisor task has ended (after a terminal disconnect).
    pub async fn closed(&self) {
        let mut rx = self.inner.stop.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
        let h = self
            .inner
            .supervisor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = h {
            let _ = h.await;
        }
    }
}

async fn query_on(conn: &Arc<Conn>, mut node: Node, timeout: Duration) -> Result<Node, Error> {
    let id = match node.attr_opt::<&str>("id").ok().flatten() {
        Some(id) => id.to_owned(),
        None => {
            let id = conn.pending.next_id();
            node.attrs.insert("id", id.clone());
            id
        }
    };
    let mut waiter = conn.pending.wait(id);
    conn.send(&node).await?;
    let reply = tokio::time::timeout(timeout, waiter.reply())
        .await
        .map_err(|_| Error::Timeout("query"))?
        .ok_or_else(|| Error::NotConnected)?;
    match iq_error(&reply) {
        Some(e) => Err(e),
        None => Ok(reply),
    }
}

impl Inner {
    fn current(&self) -> Option<Arc<Conn>> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn emit(&self, event: Event) {
        {
            let mut taps = self
                .taps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            taps.retain(|tap| {
                if !(tap.wanted)(&event) {
                    return !tap.tx.is_closed();
                }
                match tap.tx.try_send(event.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        warn!("an event subscriber is full; an event was dropped for it");
                        true
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
        }
        let _ = self.events.send(event);
    }

    fn set_state(&self, update: ConnectionUpdate) {
        let open = update.state == ConnectionState::Open;
        self.state.send_replace(update.state);
        self.emit(Event::Connection(update));
        if open {
            // Nobody asked for the events from the start: stop keeping them.
            drop(
                self.startup_events
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take(),
            );
        }
    }

    fn shutdown(&self, reason: DisconnectReason) {
        self.stop.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
        if let Some(c) = self.current() {
            c.close(reason);
        }
    }

    fn payload_options(&self) -> PayloadOptions {
        let c = &self.config;
        PayloadOptions {
            version: c.version,
            browser: c.browser.clone(),
            country_code: c.country_code.clone(),
            history: c.history.clone(),
            push_name: c.push_name.clone(),
        }
    }

    async fn load_creds(&self) -> Result<Arc<AuthCreds>, Error> {
        let mut guard = self.creds.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(Arc::clone(c));
        }
        let creds = match self.store.load_creds().await? {
            Some(c) => c,
            None => {
                let c = AuthCreds::generate(&mut OsRng);
                self.store.save_creds(&c).await?;
                c
            }
        };
        // The props saved with the credentials hold until the server says otherwise.
        if !creds.server_props.is_empty() {
            *self
                .props
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                crate::ServerProps::from_props(
                    creds.last_prop_hash.clone(),
                    creds.server_props.clone(),
                );
        }
        let creds = Arc::new(creds);
        *guard = Some(Arc::clone(&creds));
        Ok(creds)
    }

    async fn clear_creds(&self) {
        *self.creds.lock().await = None;
        if let Err(e) = self.store.delete_account().await {
            warn!("failed to clear the credentials: {e}");
        }
        self.emit(Event::CredsUpdated);
    }
}

async fn supervise(weak: std::sync::Weak<Inner>) {
    let mut attempt: u32 = 0;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let stopped = *inner.stop.borrow();
        if let Some(reason) = stopped {
            finish(&inner, reason).await;
            return;
        }
        inner.set_state(ConnectionUpdate::state(ConnectionState::Connecting));
        let (reason, opened) = run_connection(&inner).await;
        let stopped = *inner.stop.borrow();
        let reason = stopped.unwrap_or(reason);
        info!("connection closed: {reason}");
        if reason.is_terminal() {
            finish(&inner, reason).await;
            return;
        }
        if opened {
            attempt = 0;
        }
        // A reset was asked for by the user: never declined. A declined reconnect ends
        // the socket with one `Closed`, as a terminal reason does.
        if let Some(hook) = &inner.config.reconnect
            && reason != DisconnectReason::ResetByUser
            && !hook(reason, attempt)
        {
            info!("reconnect declined after: {reason}");
            finish(&inner, reason).await;
            return;
        }
        inner.set_state(ConnectionUpdate::closed(reason));
        if reason.reconnect_immediately() {
            continue;
        }
        let delay = inner.config.backoff.delay(attempt, OsRng.next_u64());
        attempt = attempt.saturating_add(1);
        let mut stop = inner.stop.subscribe();
        drop(inner);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(Option::is_some) => {}
        }
    }
}

async fn finish(inner: &Inner, reason: DisconnectReason) {
    if reason.clears_credentials() {
        inner.clear_creds().await;
    }
    inner.stop.send_if_modified(|r| {
        if r.is_none() {
            *r = Some(reason);
            true
        } else {
            false
        }
    });
    inner.set_state(ConnectionUpdate::closed(reason));
}

/// Runs one connection to its end; returns why it ended and whether it reached `Open`.
async fn run_connection(inner: &Arc<Inner>) -> (DisconnectReason, bool) {
    // Boxed: the handshake's state machine is large and only needed until it is done.
    let conn = match Box::pin(establish(inner)).await {
        Ok(c) => c,
        Err(e) => {
            warn!("connect failed: {e}");
            let reason = match e {
                Error::Store(_) => DisconnectReason::BadSession,
                Error::Timeout(_) => DisconnectReason::TimedOut,
                _ => DisconnectReason::ConnectionClosed,
            };
            return (reason, false);
        }
    };
    let mut close = conn.close.subscribe();
    let mut stop = inner.stop.subscribe();
    let mut state = inner.state.subscribe();
    let mut opened = false;
    let reason = loop {
        tokio::select! {
            r = close.wait_for(Option::is_some) => {
                break r.ok().and_then(|r| *r).unwrap_or(DisconnectReason::ConnectionClosed);
            }
            r = stop.wait_for(Option::is_some) => {
                let reason = r.ok().and_then(|r| *r).unwrap_or(DisconnectReason::ClosedByUser);
                conn.close(reason);
                break reason;
            }
            r = state.changed() => {
                if r.is_ok() && *state.borrow() == ConnectionState::Open {
                    opened = true;
                }
            }
        }
    };
    let now_open = *inner.state.borrow() == ConnectionState::Open;
    opened |= now_open;
    *inner
        .conn
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    conn.stop_tasks(conn.write_timeout).await;
    conn.pending.fail_all();
    // Bounded like every write: a peer that stopped reading would otherwise keep the
    // close frame (and so the supervisor) waiting forever.
    let close_frame = async {
        let _turn = conn.send_lock.lock().await;
        conn.writer.close().await;
    };
    if tokio::time::timeout(conn.write_timeout, close_frame)
        .await
        .is_err()
    {
        debug!("the close frame could not be written in time");
    }
    (reason, opened)
}

async fn read_frame(
    reader: &mut WsReader,
    decoder: &mut FrameDecoder,
) -> Result<Option<BytesMut>, Error> {
    loop {
        if let Some(f) = decoder.next_frame()? {
            return Ok(Some(f));
        }
        match reader.recv().await? {
            Some(chunk) => decoder.push(&chunk)?,
            None => return Ok(None),
        }
    }
}

/// Connects, runs the handshake, and starts the reader and keep-alive tasks.
async fn establish(inner: &Arc<Inner>) -> Result<Arc<Conn>, Error> {
    let creds = inner.load_creds().await?;
    let cfg = &inner.config;
    let url = WsUrl::parse(&cfg.ws_url)?;
    // Held until the handshake is done (dropped at the end of this function's setup).
    let permit = match &cfg.handshake_limit {
        Some(limit) => Some(
            limit
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::NotConnected)?,
        ),
        None => None,
    };
    let connector = match &cfg.tls {
        Some(tls) => WsConnector::with_tls_config(tls.clone()),
        None => WsConnector::new(),
    }
    .proxy(cfg.proxy.clone())
    .connect_timeout(cfg.connect_timeout);
    let connector = cfg
        .ws_headers
        .iter()
        .fold(connector, |c, (k, v)| c.header(k.clone(), v.clone()));
    let (mut reader, writer) = connector.connect(&url).await?;

    let handshake = async {
        let initiator = Initiator::new(
            InitiatorConfig {
                trusted_root: cfg.noise_root,
                routing_info: creds.routing_info.clone(),
            },
            creds.noise_key.clone(),
            KeyPair::generate(&mut OsRng),
        );
        let (hello, awaiting) = initiator.client_hello()?;
        writer.send(&hello).await?;
        let mut decoder = FrameDecoder::client();
        let frame = read_frame(&mut reader, &mut decoder)
            .await?
            .ok_or_else(|| Error::NotConnected)?;
        let verified = awaiting.read_server_hello(&frame, unix_now())?;
        let opts = inner.payload_options();
        let login = creds
            .jid
            .as_deref()
            .filter(|_| creds.registered)
            .and_then(|j| j.parse::<Jid>().ok())
            .and_then(|j| login_payload(&j, &opts));
        let payload = match login {
            Some(p) => p,
            None => registration_payload(&creds, &opts),
        };
        let (finish, transport) = verified.client_finish(&payload.encode_to_vec())?;
        writer.send(&finish).await?;
        Ok::<_, Error>((decoder, transport))
    };
    let (decoder, transport) = tokio::time::timeout(cfg.connect_timeout, handshake)
        .await
        .map_err(|_| Error::Timeout("noise handshake"))??;
    drop(permit);

    let (close, _) = watch::channel(None);
    let conn = Arc::new(Conn {
        writer,
        send_lock: Mutex::new(()),
        flush_wanted: Notify::new(),
        write_timeout: cfg.keep_alive_timeout,
        transport: StdMutex::new(transport),
        pending: PendingQueries::new(OsRng.next_u64()),
        close,
        tasks: StdMutex::new(Vec::new()),
        qr_task: StdMutex::new(None),
        online: AtomicBool::new(false),
        passkey: StdMutex::new(PasskeyState::default()),
    });
    // Published before the reader starts, so a handler reacting to the first events
    // (a QR, `Open`) can already query on this connection.
    *inner
        .conn
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(conn.clone());
    let reader_task = tokio::spawn(read_loop(
        Arc::downgrade(inner),
        conn.clone(),
        reader,
        decoder,
    ));
    conn.spawn(reader_task);
    conn.spawn(tokio::spawn(flush_loop(conn.clone())));
    Ok(conn)
}

/// Writes the frames [`Conn::send`] left in the writer's buffer to the socket.
///
/// It first lets every task that is ready run, so the frames of a burst (the acks and
/// receipts for a batch of stanzas read at once, concurrent sends) leave in one write.
/// A write that takes longer than the write timeout closes the connection; after one
/// that fails, the task stops and the reader reports the end of the connection.
async fn flush_loop(conn: Arc<Conn>) {
    loop {
        conn.flush_wanted.notified().await;
        tokio::task::yield_now().await;
        match tokio::time::timeout(conn.write_timeout, conn.writer.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // The socket is gone. The reader sees that too and closes the connection
                // with the reason it read last (a stream error the server sent before
                // closing, for one), which a close from here would mask.
                debug!("write failed: {e}");
                return;
            }
            Err(_) => {
                warn!("buffered frames could not be written in time: peer is dead");
                conn.close(DisconnectReason::TimedOut);
                return;
            }
        }
    }
}

async fn read_loop(
    weak: std::sync::Weak<Inner>,
    conn: Arc<Conn>,
    mut reader: WsReader,
    mut decoder: FrameDecoder,
) {
    loop {
        let frame = match read_frame(&mut reader, &mut decoder).await {
            Ok(Some(f)) => f,
            Ok(None) => {
                conn.close(DisconnectReason::ConnectionClosed);
                return;
            }
            Err(e) => {
                debug!("read failed: {e}");
                conn.close(DisconnectReason::ConnectionClosed);
                return;
            }
        };
        let mut frame = frame;
        let decrypted = {
            let mut t = conn
                .transport
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            t.decrypt_in_place(&mut frame)
        };
        if let Err(e) = decrypted {
            warn!("frame failed to decrypt: {e}");
            conn.close(DisconnectReason::BadSession);
            return;
        }
        let node = match wa_binary::decode(frame.freeze()) {
            Ok(n) => n,
            Err(e) => {
                warn!("undecodable node: {e}");
                continue;
            }
        };
        let Some(inner) = weak.upgrade() else { return };
        // Boxed, so the long-lived reader task stays small between frames.
        Box::pin(handle_node(&inner, &conn, node)).await;
    }
}

async fn handle_node(inner: &Arc<Inner>, conn: &Arc<Conn>, node: Node) {
    let Some(node) = conn.pending.resolve(node) else {
        return;
    };
    if let Some(reason) = disconnect_reason(&node) {
        info!("server ended the stream: {reason}");
        conn.close(reason);
        return;
    }
    if let Some(ignore) = &inner.config.ignore_jid
        && let Some(chat) = chat_of(inner, &node).await
        && ignore(&chat)
    {
        debug!("<{}> of ignored chat {chat} dropped", node.tag());
        match node.tag() {
            // Nacked, as a message no layer handled, so the server does not deliver it
            // again.
            "message" => {
                let me: Option<Jid> = inner
                    .creds
                    .lock()
                    .await
                    .as_ref()
                    .and_then(|c| c.jid.as_deref()?.parse().ok());
                let _ = conn
                    .send(&crate::ack::message_ack(&node, me.as_ref(), Some(500)))
                    .await;
            }
            "receipt" | "notification" | "call" => send_ack(conn, &node).await,
            _ => {}
        }
        return;
    }
    let kind = node.attr_opt::<&str>("type").ok().flatten().unwrap_or("");
    match (node.tag(), kind) {
        ("success", _) => on_success(inner, conn, &node).await,
        ("iq", "set") if node.child("pair-device").is_some() => {
            on_pair_device(inner, conn, &node).await
        }
        ("iq", _) if node.child("pair-success").is_some() => {
            on_pair_success(inner, conn, &node).await
        }
        ("iq", "get") if node.child("ping").is_some() => {
            let id = node
                .attr_opt::<&str>("id")
                .ok()
                .flatten()
                .unwrap_or("")
                .to_owned();
            let pong = Node::builder("iq")
                .attr("to", Jid::server_jid())
                .attr("type", "result")
                .attr("id", id)
                .build();
            let _ = conn.send(&pong).await;
        }
        ("notification", "link_code_companion_reg") => {
            send_ack(conn, &node).await;
            let (inner2, conn2) = (inner.clone(), conn.clone());
            let task = tokio::spawn(async move {
                if let Err(e) = on_link_code(&inner2, &conn2, &node).await {
                    warn!("pairing-code finish failed: {e}");
                }
            });
            conn.spawn(task);
        }
        ("notification", "passkey_prologue_request") => {
            send_ack(conn, &node).await;
            let (inner2, conn2) = (inner.clone(), conn.clone());
            conn.spawn(tokio::spawn(async move {
                on_passkey_request(&inner2, &conn2, &node).await;
            }));
        }
        ("notification", "crsc_continuation") => {
            send_ack(conn, &node).await;
            let (inner2, conn2) = (inner.clone(), conn.clone());
            conn.spawn(tokio::spawn(async move {
                on_passkey_continuation(&inner2, &conn2, &node).await;
            }));
        }
        // An identity change concerns sessions, which the messaging layer owns: it
        // handles (and acknowledges) it when subscribed.
        ("notification", "encrypt") if node.child("identity").is_some() => {
            if let Dispatched::Unhandled(node) = inner.dispatcher.dispatch(node).await {
                send_ack(conn, &node).await;
            }
        }
        ("notification", "encrypt") => {
            send_ack(conn, &node).await;
            let count = node
                .child("count")
                .and_then(|c| c.attr_opt::<u64>("value").ok().flatten());
            if let Some(count) = count {
                spawn_pre_key_check(inner, conn, Some(count));
            }
        }
        ("notification", "privacy_token") => {
            // Stored before the ack, so an unacknowledged token is delivered again. Done
            // in line: the notification is rare and the write short.
            let mut mappings = Vec::new();
            for t in crate::privacy_token::parse_notification(&node) {
                match crate::privacy_token::store_received(&inner.store, &t).await {
                    Ok(mapped) => mappings.extend(mapped),
                    Err(e) => {
                        warn!("privacy token from {} not stored: {e}", t.from);
                        return;
                    }
                }
                debug!("privacy token from {} stored", t.from);
            }
            if !mappings.is_empty() {
                inner.emit(Event::LidMappings(mappings));
            }
            send_ack(conn, &node).await;
        }
        // Account restrictions are the socket's; other mex notifications (channels) go
        // to whoever subscribed.
        ("notification", "mex") if crate::account::is_account_notification(&node) => {
            send_ack(conn, &node).await;
            let now = u64::try_from(unix_ms() / 1000).unwrap_or(0);
            match crate::account::parse_notification(&node, now) {
                Some(event) => inner.emit(event),
                None => warn!("unparsable account restriction notification"),
            }
        }
        ("ib", _) => on_ib(inner, conn, &node).await,
        _ => {
            if let Dispatched::Unhandled(node) = inner.dispatcher.dispatch(node).await {
                if node.tag() == "notification" {
                    send_ack(conn, &node).await;
                } else {
                    debug!("unhandled stanza <{}>", node.tag());
                }
            }
        }
    }
}

/// The chat an incoming stanza belongs to, as [`crate::IgnoreJid`] is asked about it:
/// its `from`, or for a receipt from one of our own devices about a one-to-one chat, its
/// `recipient`. `None` for other stanzas and for those from the server itself.
async fn chat_of(inner: &Inner, node: &Node) -> Option<Jid> {
    if !matches!(
        node.tag(),
        "message" | "receipt" | "notification" | "call" | "presence" | "chatstate"
    ) {
        return None;
    }
    let from = node.attr_opt::<Jid>("from").ok().flatten()?;
    if from.user.is_empty() && from.server == wa_binary::Server::Pn {
        return None;
    }
    if node.tag() == "receipt" && from.server != wa_binary::Server::Group {
        let sender = node
            .attr_opt::<Jid>("participant")
            .ok()
            .flatten()
            .unwrap_or_else(|| from.clone());
        let ours = {
            let guard = inner.creds.lock().await;
            guard.as_ref().is_some_and(|c| {
                [c.jid.as_deref(), c.lid.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter_map(|j| j.parse::<Jid>().ok())
                    .any(|me| me.user == sender.user && me.server == sender.server)
            })
        };
        if ours {
            return node.attr_opt::<Jid>("recipient").ok().flatten();
        }
    }
    Some(from)
}

async fn send_ack(conn: &Conn, node: &Node) {
    let _ = conn.send(&crate::ack_for(node)).await;
}

/// `<ib><unified_session id/></ib>` with the id for now (see
/// [`Socket::send_unified_session`]).
fn unified_session_node(inner: &Inner) -> Node {
    const DAY_MS: i64 = 86_400_000;
    let now = unix_ms().saturating_add(inner.server_time_offset_ms.load(Ordering::Relaxed));
    let id = now.saturating_add(3 * DAY_MS).rem_euclid(7 * DAY_MS);
    Node::builder("ib")
        .children([Node::builder("unified_session")
            .attr("id", id.to_string())
            .build()])
        .build()
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn on_success(inner: &Arc<Inner>, conn: &Arc<Conn>, node: &Node) {
    if let Some(t) = node
        .attr_opt::<u64>("t")
        .ok()
        .flatten()
        .filter(|&t| t > 0)
        .and_then(|t| i64::try_from(t).ok())
    {
        let offset = t.saturating_mul(1000).saturating_sub(unix_ms());
        inner.server_time_offset_ms.store(offset, Ordering::Relaxed);
    }
    let lid = node
        .attr_opt::<&str>("lid")
        .ok()
        .flatten()
        .map(str::to_owned);
    if let Some(lid) = lid {
        let mut guard = inner.creds.lock().await;
        if let Some(c) = guard.as_mut().map(Arc::make_mut)
            && c.lid.as_deref() != Some(&lid)
        {
            c.lid = Some(lid);
            if inner.store.save_creds(c).await.is_ok() {
                inner.emit(Event::CredsUpdated);
            }
        }
    }
    let is_new_login = inner.new_login.swap(false, Ordering::SeqCst);
    let mut update = ConnectionUpdate::state(ConnectionState::Open);
    update.is_new_login = is_new_login;
    inner.set_state(update);
    let passive = server_iq("passive", "set", Node::builder("active").build());
    let c = conn.clone();
    let timeout = inner.config.query_timeout;
    conn.spawn(tokio::spawn(async move {
        if let Err(e) = query_on(&c, passive, timeout).await {
            debug!("passive/active failed: {e}");
        }
    }));
    spawn_key_maintenance(inner, conn);
    spawn_keep_alive(inner, conn);
    if let Err(e) = conn.send(&unified_session_node(inner)).await {
        debug!("unified_session not sent: {e}");
    }
}

fn spawn_keep_alive(inner: &Arc<Inner>, conn: &Arc<Conn>) {
    let interval = inner.config.keep_alive_interval;
    let deadline = inner.config.keep_alive_timeout;
    let c = conn.clone();
    conn.spawn(tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let ping = Node::builder("iq")
                .attr("to", Jid::server_jid())
                .attr("type", "get")
                .attr("xmlns", "w:p")
                .children([Node::builder("ping").build()])
                .build();
            match query_on(&c, ping, deadline).await {
                Ok(_) | Err(Error::Iq { .. }) => {}
                Err(Error::Timeout(_)) => {
                    warn!("keep-alive ping unanswered: peer is dead");
                    c.close(DisconnectReason::TimedOut);
                    return;
                }
                Err(_) => {
                    c.close(DisconnectReason::ConnectionClosed);
                    return;
                }
            }
        }
    }));
}

/// `<iq xmlns="urn:xmpp:whatsapp:dirty" type="set"><clean type [timestamp]/>`.
/// `<iq to=s.whatsapp.net type xmlns>` with one child.
pub(crate) fn server_iq(xmlns: &'static str, ty: &'static str, child: Node) -> Node {
    Node::builder("iq")
        .attr("to", Jid::server_jid())
        .attr("type", ty)
        .attr("xmlns", xmlns)
        .children([child])
        .build()
}

fn clean_dirty_bits_iq(kind: &str, timestamp: Option<u64>) -> Node {
    Node::builder("iq")
        .attr("to", Jid::server_jid())
        .attr("type", "set")
        .attr("xmlns", "urn:xmpp:whatsapp:dirty")
        .children([Node::builder("clean")
            .attr("type", kind.to_owned())
            .attr_opt("timestamp", timestamp.map(|t| t.to_string()))
            .build()])
        .build()
}

/// Longest dirty-bit kind taken from the server.
const MAX_DIRTY_KIND: usize = 64;

/// `<ib><dirty type timestamp>`: reported as [`Event::DirtyBits`]; `account_sync` is
/// handled here: the time is recorded in the credentials (`last_account_sync_timestamp`)
/// and the flag cleaned with it.
async fn on_dirty(inner: &Arc<Inner>, conn: &Arc<Conn>, dirty: &Node) {
    let Some(kind) = dirty
        .attr_opt::<&str>("type")
        .ok()
        .flatten()
        .filter(|k| !k.is_empty() && k.len() <= MAX_DIRTY_KIND)
    else {
        debug!("dirty bits without a usable type");
        return;
    };
    let timestamp = dirty.attr_opt::<u64>("timestamp").ok().flatten();
    if kind == "account_sync" {
        if let Some(t) = timestamp {
            let mut guard = inner.creds.lock().await;
            if let Some(c) = guard.as_mut().map(Arc::make_mut)
                && c.last_account_sync_timestamp != Some(t)
            {
                c.last_account_sync_timestamp = Some(t);
                if inner.store.save_creds(c).await.is_ok() {
                    inner.emit(Event::CredsUpdated);
                }
            }
        }
        // Asked from a task: this runs on the reader, which delivers the answer.
        let (c, iq, timeout) = (
            conn.clone(),
            clean_dirty_bits_iq(kind, timestamp),
            inner.config.query_timeout,
        );
        conn.spawn(tokio::spawn(async move {
            if let Err(e) = query_on(&c, iq, timeout).await {
                warn!("account_sync dirty bits not cleaned: {e}");
            }
        }));
    } else {
        // Another layer may own this kind (wa-groups takes `groups`): it gets the flag
        // as `<ib><dirty>` through the dispatcher; without a taker the flag stays.
        let single = Node::builder("ib").children([dirty.clone()]).build();
        let _ = inner.dispatcher.dispatch(single).await;
    }
    inner.emit(Event::DirtyBits(wa_types::DirtyBits::new(kind, timestamp)));
}

async fn on_ib(inner: &Arc<Inner>, conn: &Arc<Conn>, node: &Node) {
    for dirty in node.children_by_tag("dirty").take(8) {
        on_dirty(inner, conn, dirty).await;
    }
    if let Some(routing) = node
        .child("edge_routing")
        .and_then(|e| e.child("routing_info"))
        .and_then(Node::content_bytes)
    {
        let mut guard = inner.creds.lock().await;
        if let Some(c) = guard.as_mut().map(Arc::make_mut) {
            c.routing_info = Some(routing.to_vec());
            if inner.store.save_creds(c).await.is_ok() {
                inner.emit(Event::CredsUpdated);
            }
        }
    }
    if node.child("offline_preview").is_some() {
        let batch = Node::builder("ib")
            .children([Node::builder("offline_batch").attr("count", "100").build()])
            .build();
        let _ = conn.send(&batch).await;
    }
    if node.child("offline").is_some() {
        let mut update = ConnectionUpdate::state(ConnectionState::Open);
        update.received_pending_notifications = true;
        inner.emit(Event::Connection(update));
    }
}

async fn on_pair_device(inner: &Arc<Inner>, conn: &Arc<Conn>, node: &Node) {
    let id = node
        .attr_opt::<&str>("id")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_owned();
    let ack = Node::builder("iq")
        .attr("to", Jid::server_jid())
        .attr("type", "result")
        .attr("id", id)
        .build();
    let _ = conn.send(&ack).await;
    let refs: Vec<String> = node
        .child("pair-device")
        .map(|p| {
            p.children_by_tag("ref")
                .filter_map(|r| r.content_bytes())
                .filter_map(|b| std::str::from_utf8(b).ok())
                .map(str::to_owned)
                .take(64)
                .collect()
        })
        .unwrap_or_default();
    let Some(creds) = inner.creds.lock().await.clone() else {
        return;
    };
    let b = &inner.config.browser;
    let platform = pairing::companion_platform_id(&b.os, &b.browser);
    let (first, later) = (inner.config.qr_first_timeout, inner.config.qr_timeout);
    let weak = Arc::downgrade(inner);
    let c = conn.clone();
    let task = tokio::spawn(async move {
        for (i, r) in refs.iter().enumerate() {
            let qr = pairing::qr_string(
                r,
                &creds.noise_key.public,
                &creds.identity_key.public,
                &creds.adv_secret,
                platform,
            );
            match weak.upgrade() {
                Some(inner) => inner.emit(Event::Connection(ConnectionUpdate::qr(qr))),
                None => return,
            }
            tokio::time::sleep(if i == 0 { first } else { later }).await;
        }
        info!("pairing refs ran out");
        c.close(DisconnectReason::TimedOut);
    });
    if let Some(old) = conn
        .qr_task
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .replace(task)
    {
        old.abort();
    }
}

async fn on_pair_success(inner: &Arc<Inner>, conn: &Arc<Conn>, node: &Node) {
    let id = node
        .attr_opt::<&str>("id")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_owned();
    match pair(inner, node).await {
        Ok(reply) => {
            // Stop rotating QR refs: the device is linked.
            conn.stop_qr();
            if let Err(e) = conn.send(&reply).await {
                warn!("failed to send pair-device-sign: {e}");
            }
            inner.new_login.store(true, Ordering::SeqCst);
            inner.emit(Event::CredsUpdated);
        }
        Err(e) => {
            warn!("pair-success refused: {e}");
            let pe = match e {
                Error::Pair(pe) => pe,
                _ => PairError::Malformed("internal"),
            };
            let _ = conn.send(&pairing::pair_error_reply(&id, &pe)).await;
        }
    }
}

/// Verifies a pair-success, saves the new identity, and returns the reply to send.
/// Nothing is saved unless verification passed; the reply is only built after saving.
async fn pair(inner: &Arc<Inner>, node: &Node) -> Result<Node, Error> {
    let ps = pairing::parse_pair_success(node)?;
    let mut guard = inner.creds.lock().await;
    let creds = guard
        .as_mut()
        .map(Arc::make_mut)
        .ok_or_else(|| Error::NotConnected)?;
    let verified = pairing::verify_device_identity(
        &ps.device_identity,
        &creds.adv_secret,
        &creds.identity_key,
        &mut OsRng,
    )?;
    if let Some(check) = &inner.config.pre_pair
        && !check(&ps)
    {
        return Err(PairError::Refused.into());
    }
    let mut updated = creds.clone();
    updated.jid = Some(ps.jid.to_string());
    updated.lid = ps.lid.as_ref().map(ToString::to_string);
    updated.platform = ps.platform.clone();
    updated.account = Some(verified.account.clone());
    updated.registered = true;
    updated.pairing_code = None;
    // Invariant: the credentials are persisted before the pair-device-sign reply leaves.
    inner.store.save_creds(&updated).await?;
    let primary = ps.lid.as_ref().unwrap_or(&ps.jid);
    inner
        .store
        .put_identity(
            &primary.user,
            0,
            &verified.account_signature_key.serialize(),
        )
        .await?;
    *creds = updated;
    Ok(pairing::pair_device_sign_reply(&ps.id, &verified))
}

async fn on_link_code(inner: &Arc<Inner>, conn: &Arc<Conn>, node: &Node) -> Result<(), Error> {
    let reg = node
        .child("link_code_companion_reg")
        .ok_or_else(|| Error::UnexpectedResponse("no link_code_companion_reg"))?;
    let get = |tag: &'static str| {
        reg.child(tag)
            .and_then(Node::content_bytes)
            .ok_or_else(|| Error::UnexpectedResponse(tag))
    };
    let reference = get("link_code_pairing_ref")?.to_vec();
    let primary_identity = get("primary_identity_pub")?;
    let primary_identity = wa_crypto::PublicKey::from_slice(primary_identity)
        .map_err(|_| Error::UnexpectedResponse("primary_identity_pub"))?;
    let wrapped = get("link_code_pairing_wrapped_primary_ephemeral_pub")?;
    let (bundle, identity_pub, jid) = {
        let mut guard = inner.creds.lock().await;
        let creds = guard
            .as_mut()
            .map(Arc::make_mut)
            .ok_or_else(|| Error::NotConnected)?;
        let code = creds
            .pairing_code
            .clone()
            .ok_or_else(|| Error::UnexpectedResponse("no pairing code requested"))?;
        let finish = pairing::companion_finish(
            &code,
            &creds.pairing_ephemeral_key,
            &creds.identity_key,
            &primary_identity,
            wrapped,
            &FinishRandom::generate(&mut OsRng),
        )?;
        creds.adv_secret = finish.adv_secret;
        inner.store.save_creds(creds).await?;
        (
            finish.wrapped_key_bundle,
            creds.identity_key.public,
            creds.jid.clone().unwrap_or_default(),
        )
    };
    inner.emit(Event::CredsUpdated);
    let jid: Jid = jid
        .parse()
        .map_err(|_| Error::UnexpectedResponse("own jid"))?;
    let finish = Node::builder("iq")
        .attr("to", Jid::server_jid())
        .attr("type", "set")
        .attr("xmlns", "md")
        .children([Node::builder("link_code_companion_reg")
            .attr("jid", jid)
            .attr("stage", "companion_finish")
            .children([
                Node::builder("link_code_pairing_wrapped_key_bundle")
                    .bytes(bundle)
                    .build(),
                Node::builder("companion_identity_public")
                    .bytes(identity_pub.as_bytes().to_vec())
                    .build(),
                Node::builder("link_code_pairing_ref")
                    .bytes(reference)
                    .build(),
            ])
            .build()])
        .build();
    query_on(conn, finish, inner.config.query_timeout).await?;
    Ok(())
}

/// How long a registration connection waits for a passkey link to finish once the
/// server asked for one (the QR codes stop: they carry the replaced ADV secret).
const PASSKEY_LINK_TIMEOUT: Duration = Duration::from_secs(5 * 60);

fn from_server(node: &Node) -> bool {
    node.attr_opt::<Jid>("from").ok().flatten().as_ref() == Some(&Jid::server_jid())
}

fn passkey_kind(e: &Error) -> PasskeyErrorKind {
    match e {
        Error::Pair(PairError::Passkey { kind, .. }) => *kind,
        _ => PasskeyErrorKind::Query,
    }
}

/// `<notification type="passkey_prologue_request">`: read (or fetch) the WebAuthn
/// options, keep the handoff key of the current ADV secret, replace the secret, and ask
/// the user for the passkey.
async fn on_passkey_request(inner: &Arc<Inner>, conn: &Arc<Conn>, node: &Node) {
    if !from_server(node) {
        warn!("passkey request not from the server ignored");
        return;
    }
    let read = node
        .child("passkey_request_options")
        .and_then(Node::content_bytes)
        .ok_or(PairError::Passkey {
            kind: PasskeyErrorKind::RequestOptions,
            detail: "no passkey_request_options",
        })
        .and_then(passkey::parse_request_options);
    let options = match read {
        Ok(o) => o,
        Err(first) => {
            debug!("passkey options not in the notification ({first}); asking for them");
            match fetch_passkey_options(inner, conn).await {
                Ok(o) => o,
                Err(second) => {
                    inner.emit(Event::PasskeyError(PasskeyFailure {
                        kind: PasskeyErrorKind::RequestOptions,
                        continuation: false,
                        detail: format!("{first}; asking for them failed too: {second}"),
                    }));
                    return;
                }
            }
        }
    };
    {
        let mut guard = inner.creds.lock().await;
        let Some(creds) = guard.as_mut().map(Arc::make_mut) else {
            return;
        };
        if creds.registered {
            warn!("passkey request on a linked device ignored");
            return;
        }
        let key = passkey::handoff_key(&creds.adv_secret);
        conn.passkey().handoff = Some((key, std::time::Instant::now()));
        // The QR codes showed the old secret; the pairing request will carry this one.
        OsRng.fill_bytes(creds.adv_secret.as_mut());
        // Pair-success saves the credentials in any case; this keeps the store current.
        if let Err(e) = inner.store.save_creds(creds).await {
            warn!("credentials with the new ADV secret not saved: {e}");
        }
    }
    inner.emit(Event::CredsUpdated);
    let c = conn.clone();
    let deadline = tokio::spawn(async move {
        tokio::time::sleep(PASSKEY_LINK_TIMEOUT).await;
        info!("passkey link did not finish in time");
        c.close(DisconnectReason::TimedOut);
    });
    if let Some(old) = conn
        .qr_task
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .replace(deadline)
    {
        old.abort();
    }
    inner.emit(Event::PasskeyRequest(Box::new(options)));
}

/// `<iq xmlns=md type=get><passkey_request_options/>`.
async fn fetch_passkey_options(
    inner: &Arc<Inner>,
    conn: &Arc<Conn>,
) -> Result<wa_types::PasskeyRequestOptions, Error> {
    let reply = query_on(
        conn,
        server_iq(
            "md",
            "get",
            Node::builder("passkey_request_options").build(),
        ),
        inner.config.query_timeout,
    )
    .await?;
    let json = reply
        .child("passkey_request_options")
        .and_then(Node::content_bytes)
        .ok_or_else(|| Error::UnexpectedResponse("no passkey_request_options"))?;
    Ok(passkey::parse_request_options(json)?)
}

/// `<notification type="crsc_continuation">`: the primary's ephemeral identity.
async fn on_passkey_continuation(inner: &Arc<Inner>, conn: &Arc<Conn>, node: &Node) {
    if !from_server(node) {
        warn!("passkey continuation not from the server ignored");
        return;
    }
    match passkey_continuation(inner, conn, node).await {
        Ok(c) => inner.emit(Event::PasskeyConfirmation(c)),
        Err(e) => {
            warn!("passkey continuation failed: {e}");
            inner.emit(Event::PasskeyError(PasskeyFailure {
                kind: passkey_kind(&e),
                continuation: true,
                detail: e.to_string(),
            }));
        }
    }
}

/// Derives the pairing-request key from the primary's ephemeral key, reveals our nonce,
/// and computes the code.
async fn passkey_continuation(
    inner: &Arc<Inner>,
    conn: &Arc<Conn>,
    node: &Node,
) -> Result<PasskeyConfirmation, Error> {
    let unexpected = |detail| PairError::Passkey {
        kind: PasskeyErrorKind::UnexpectedContinuation,
        detail,
    };
    if conn.passkey().link.is_none() {
        return Err(unexpected("no passkey answer was sent").into());
    }
    let identity = node
        .child("primary_ephemeral_identity")
        .and_then(Node::content_bytes)
        .ok_or(PairError::Passkey {
            kind: PasskeyErrorKind::MalformedContinuation,
            detail: "no primary_ephemeral_identity",
        })?;
    let (primary, primary_nonce) = passkey::parse_primary_ephemeral_identity(identity)?;
    let (key, companion_nonce, skip_handoff_ux) = {
        let st = conn.passkey();
        let link = st
            .link
            .as_ref()
            .ok_or(unexpected("no passkey answer was sent"))?;
        if link.agreed.is_some() {
            return Err(unexpected("the primary already answered").into());
        }
        let key = passkey::pairing_request_key(
            &link.ephemeral,
            &primary,
            link.device_type,
            &link.reference,
        )?;
        (key, link.companion_nonce.clone(), link.skip_handoff_ux)
    };
    let reveal = server_iq(
        "md",
        "set",
        Node::builder("companion_nonce")
            .bytes(companion_nonce.to_vec())
            .build(),
    );
    query_on(conn, reveal, inner.config.query_timeout).await?;
    let code = passkey::confirmation_code(&primary_nonce, &companion_nonce, &primary);
    match conn.passkey().link.as_mut() {
        Some(link) => link.agreed = Some((key, code.clone())),
        None => return Err(unexpected("the passkey link was abandoned").into()),
    }
    Ok(PasskeyConfirmation {
        code,
        skip_handoff_ux,
    })
}

fn spawn_pre_key_check(inner: &Arc<Inner>, conn: &Arc<Conn>, count: Option<u64>) {
    let (inner2, c) = (inner.clone(), conn.clone());
    conn.spawn(tokio::spawn(async move {
        if let Err(e) = pre_key_check(&inner2, &c, count).await {
            warn!("pre-key upload failed: {e}");
        }
    }));
}

/// After a login, as Baileys does: uploads pre-keys when the server runs low, then checks
/// the key bundle the server holds for us against our credentials (re-uploading it when
/// it differs).
fn spawn_key_maintenance(inner: &Arc<Inner>, conn: &Arc<Conn>) {
    let (inner2, c) = (inner.clone(), conn.clone());
    conn.spawn(tokio::spawn(async move {
        if let Err(e) = pre_key_check(&inner2, &c, None).await {
            warn!("pre-key upload failed: {e}");
        }
        match check_key_bundle(&inner2, &c).await {
            Ok(true) => {}
            Ok(false) => info!("the server's copy of our key bundle was out of date; uploaded"),
            Err(e) => warn!("key bundle check failed: {e}"),
        }
    }));
    let (inner2, c) = (inner.clone(), conn.clone());
    conn.spawn(tokio::spawn(async move {
        if let Err(e) = fetch_props(&inner2, &c).await {
            debug!("server props not fetched: {e}");
        }
    }));
}

/// Fetches the server's AB props (sending the hash of those we hold, so an unchanged
/// set need not be sent again), keeps them, and saves them with their hash in the
/// credentials when they changed.
async fn fetch_props(inner: &Arc<Inner>, conn: &Arc<Conn>) -> Result<crate::ServerProps, Error> {
    let current = inner
        .props
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let sent_hash = current.hash.clone().filter(|_| !current.props.is_empty());
    let reply = query_on(
        conn,
        crate::props::props_query(sent_hash.as_deref()),
        inner.config.query_timeout,
    )
    .await?;
    let props = crate::props::apply_props_reply(&current, sent_hash.as_deref(), &reply)?;
    // Saved before they take effect, so the props in force are always the saved ones.
    let saved = {
        let mut guard = inner.creds.lock().await;
        match guard.as_mut() {
            Some(creds)
                if creds.last_prop_hash != props.hash || creds.server_props != props.props =>
            {
                let mut updated = AuthCreds::clone(creds);
                updated.last_prop_hash.clone_from(&props.hash);
                updated.server_props.clone_from(&props.props);
                inner.store.save_creds(&updated).await?;
                *creds = Arc::new(updated);
                true
            }
            _ => false,
        }
    };
    *inner
        .props
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = props.clone();
    if saved {
        inner.emit(Event::CredsUpdated);
    }
    Ok(props)
}

/// Compares the server's digest of our key bundle (`<iq xmlns=encrypt type=get><digest/>`)
/// with our credentials: registration id, identity key and current signed pre-key. When
/// the server has none or a different one, uploads a batch of pre-keys with the current
/// identity and signed pre-key. Returns whether it was in order.
async fn check_key_bundle(inner: &Arc<Inner>, conn: &Arc<Conn>) -> Result<bool, Error> {
    let q = server_iq("encrypt", "get", Node::builder("digest").build());
    let digest = match query_on(conn, q, inner.config.query_timeout).await {
        Ok(reply) => reply.child("digest").cloned(),
        Err(Error::Iq { code: 404, .. }) => None,
        Err(e) => return Err(e),
    };
    let in_order = {
        let guard = inner.creds.lock().await;
        let creds = guard.as_ref().ok_or_else(|| Error::NotConnected)?;
        digest.as_ref().is_some_and(|d| digest_matches(d, creds))
    };
    if !in_order {
        pre_key_check(inner, conn, Some(0)).await?;
    }
    Ok(in_order)
}

/// Whether a `<digest>` names our registration id, identity key and signed pre-key.
fn digest_matches(digest: &Node, creds: &AuthCreds) -> bool {
    fn bytes(n: Option<&Node>) -> Option<&[u8]> {
        n.and_then(Node::content_bytes)
    }
    let spk = &creds.signed_pre_key;
    let skey = digest.child("skey");
    bytes(digest.child("registration")) == Some(&creds.registration_id.to_be_bytes()[..])
        && bytes(digest.child("identity")) == Some(&creds.identity_key.public.as_bytes()[..])
        && bytes(skey.and_then(|k| k.child("id"))) == Some(&spk.id.to_be_bytes()[1..])
        && bytes(skey.and_then(|k| k.child("value"))) == Some(&spk.key_pair.public.as_bytes()[..])
}

/// The `<skey><id/><value/><signature/></skey>` of a signed pre-key.
fn skey_node(spk: &wa_store::SignedPreKey) -> Node {
    Node::builder("skey")
        .children([
            Node::builder("id")
                .bytes(spk.id.to_be_bytes()[1..].to_vec())
                .build(),
            Node::builder("value")
                .bytes(spk.key_pair.public.as_bytes().to_vec())
                .build(),
            Node::builder("signature")
                .bytes(spk.signature.as_bytes().to_vec())
                .build(),
        ])
        .build()
}

/// Queries the server's pre-key count (unless given) and uploads a batch when it is low.
async fn pre_key_check(
    inner: &Arc<Inner>,
    conn: &Arc<Conn>,
    count: Option<u64>,
) -> Result<(), Error> {
    // The network round trips happen under `pre_key_upload` only: a retry receipt's
    // single key (`generate_pre_key`) never waits for an upload.
    let _running = inner.pre_key_upload.lock().await;
    let timeout = inner.config.query_timeout;
    let count = match count {
        Some(c) => c,
        None => {
            let q = server_iq("encrypt", "get", Node::builder("count").build());
            let reply = query_on(conn, q, timeout).await?;
            reply
                .child("count")
                .and_then(|c| c.attr_opt::<u64>("value").ok().flatten())
                .ok_or_else(|| Error::UnexpectedResponse("count"))?
        }
    };
    if count >= u64::from(inner.config.min_pre_keys) {
        return Ok(());
    }
    upload_pre_keys(inner, conn, None).await
}

/// Generates, stores and uploads `n` fresh pre-keys (`None`: the first upload's count,
/// or a batch later). The caller holds `pre_key_upload`.
async fn upload_pre_keys(
    inner: &Arc<Inner>,
    conn: &Arc<Conn>,
    n: Option<u32>,
) -> Result<(), Error> {
    let timeout = inner.config.query_timeout;
    let (node, upto) = {
        let _alloc = inner.pre_key_lock.lock().await;
        let mut guard = inner.creds.lock().await;
        let creds = guard
            .as_mut()
            .map(Arc::make_mut)
            .ok_or_else(|| Error::NotConnected)?;
        let first = creds.next_pre_key_id <= 1 && creds.first_unuploaded_pre_key_id <= 1;
        let n = n.unwrap_or(if first {
            inner.config.initial_pre_keys
        } else {
            inner.config.pre_key_batch
        });
        let start = creds
            .next_pre_key_id
            .max(creds.first_unuploaded_pre_key_id)
            .max(1);
        let end = start.saturating_add(n);
        if end > wa_signal::MAX_PRE_KEY_ID {
            return Err(Error::UnexpectedResponse("pre-key ids exhausted"));
        }
        let records: Vec<wa_signal::PreKeyRecord> = (start..end)
            .map(|id| wa_signal::PreKeyRecord {
                id,
                key_pair: KeyPair::generate(&mut OsRng),
            })
            .collect();
        let serialized: Vec<(u32, Vec<u8>)> =
            records.iter().map(|r| (r.id, r.serialize())).collect();
        let refs: Vec<(u32, &[u8])> = serialized.iter().map(|(i, b)| (*i, b.as_slice())).collect();
        // Keys are stored and the counter advanced and saved before anything is uploaded,
        // so an id is never handed out twice even if the upload fails.
        inner.store.put_pre_keys(&refs).await?;
        creds.next_pre_key_id = end;
        inner.store.save_creds(creds).await?;
        (pre_key_upload_node(creds, &records), end)
    };
    query_on(conn, node, timeout).await?;
    {
        let mut guard = inner.creds.lock().await;
        if let Some(creds) = guard.as_mut().map(Arc::make_mut) {
            creds.first_unuploaded_pre_key_id = creds.first_unuploaded_pre_key_id.max(upto);
            inner.store.save_creds(creds).await?;
        }
    }
    inner.emit(Event::CredsUpdated);
    Ok(())
}

/// The `<iq xmlns=encrypt type=set>` that uploads pre-keys with the signed pre-key.
pub(crate) fn pre_key_upload_node(creds: &AuthCreds, keys: &[wa_signal::PreKeyRecord]) -> Node {
    let id3 = |id: u32| id.to_be_bytes()[1..].to_vec();
    let spk = &creds.signed_pre_key;
    Node::builder("iq")
        .attr("to", Jid::new("", Server::Pn))
        .attr("type", "set")
        .attr("xmlns", "encrypt")
        .children([
            Node::builder("registration")
                .bytes(creds.registration_id.to_be_bytes().to_vec())
                .build(),
            Node::builder("type")
                .bytes(vec![wa_crypto::KEY_TYPE_DJB])
                .build(),
            Node::builder("identity")
                .bytes(creds.identity_key.public.as_bytes().to_vec())
                .build(),
            Node::builder("list")
                .children(keys.iter().map(|k| {
                    Node::builder("key")
                        .children([
                            Node::builder("id").bytes(id3(k.id)).build(),
                            Node::builder("value")
                                .bytes(k.key_pair.public.as_bytes().to_vec())
                                .build(),
                        ])
                        .build()
                }))
                .build(),
            skey_node(spk),
        ])
        .build()
}
