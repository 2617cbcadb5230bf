//! The simulator handle and its API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand_core::{OsRng, RngCore};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use wa_binary::{Jid, Node, Server};
use wa_crypto::{KeyPair, PublicKey};
use wa_noise::{ChainParams, ResponderConfig, issue_cert_chain};
use zeroize::Zeroizing;

use crate::e2e::{self, PhoneMessage};
use crate::fault::{Fault, FaultState, StreamErrorKind, Target};
use crate::media::MediaHost;
use crate::net::{self, Handler, WsConn};
use crate::route::Queues;
use crate::state::{AccountInfo, LinkedDevice, SimState, valid_phone};
use crate::{Error, SimConfig, conn, phone};

/// A running simulator. Dropping it stops the listener; [`shutdown`](Self::shutdown)
/// also closes every connection.
pub struct Sim {
    pub(crate) shared: Arc<Shared>,
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = self.shared.shutdown.send(true);
    }
}

/// What the connection tasks share.
pub(crate) struct Shared {
    /// The media host (uploads, downloads, the media_conn auth).
    pub(crate) media: MediaHost,
    pub(crate) state: SimState,
    pub(crate) config: SimConfig,
    pub(crate) responder: ResponderConfig,
    pub(crate) conns: Mutex<HashMap<u64, ConnEntry>>,
    pub(crate) faults: Mutex<FaultState>,
    /// usync queries answered.
    pub(crate) usync_queries: AtomicU64,
    /// `<ack class="notification">` stanzas received from clients.
    pub(crate) notification_acks: AtomicU64,
    pub(crate) shutdown: watch::Sender<bool>,
    /// Stanzas for the phones (device 0): one queue per phone worker
    /// ([`SimConfig::phone_workers`]); [`crate::route::deliver`] picks a phone's by its
    /// number.
    pub(crate) phone_tx: Box<[mpsc::Sender<(String, Node)>]>,
    /// Calls placed through the simulator, call links, and call stanzas phones got.
    pub(crate) calls: Mutex<crate::call::CallState>,
    /// Stanzas handed to the phone workers and not yet processed.
    pub(crate) phone_pending: AtomicU64,
    /// Reporting tokens of the messages clients sent (see [`crate::reporting`]).
    pub(crate) reporting: Mutex<crate::reporting::ReportingTokens>,
    /// The AB props answered to `<iq xmlns="abt"><props/>` (config code to value).
    pub(crate) props: Mutex<std::collections::BTreeMap<String, String>>,
    /// `<ib><unified_session id>` ids clients sent, by device (the last 64 in all).
    pub(crate) unified_sessions: Recent<String>,
    /// The last WAM (analytics) buffers devices sent, with the device.
    pub(crate) wam_buffers: Recent<Vec<u8>>,
    /// The hash each props query named (if any), with the device.
    pub(crate) props_hashes: Recent<Option<String>>,
    /// The latest passkey link of each account, as far as it got (kept after the
    /// registration connection closed).
    pub(crate) passkeys: Mutex<HashMap<String, crate::passkey::PasskeySeen>>,
    /// A copy of what the server sends to one device, while a test records it.
    pub(crate) recording: Recording,
}

/// What [`Sim::record_stanzas`] keeps: the account and the stanzas its companions got,
/// oldest first.
#[derive(Default)]
pub(crate) struct Recording {
    /// Whether anything is recorded (read on every send, so it is checked first).
    on: std::sync::atomic::AtomicBool,
    kept: Mutex<Option<(String, std::collections::VecDeque<Node>)>>,
}

impl Recording {
    /// The most stanzas kept; older ones are dropped.
    const KEPT: usize = 4096;

    /// Keeps `node` if it goes to a logged-in companion of the recorded account.
    pub(crate) fn sent(&self, to: Option<&Jid>, node: &Node) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if let (Some((phone, nodes)), Some(to)) = (kept.as_mut(), to)
            && to.user.as_str() == phone
        {
            if nodes.len() >= Self::KEPT {
                nodes.pop_front();
            }
            nodes.push_back(node.clone());
        }
    }
}

/// The hash of a props set the server hands out with it: the first 8 bytes of SHA-256
/// over the sorted `code=value` lines, in hex.
pub(crate) fn props_hash(props: &std::collections::BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (k, v) in props {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    hex::encode(&h.finalize()[..8])
}

/// The last 64 things devices sent of one kind, with the device, for tests to read.
#[derive(Default)]
pub(crate) struct Recent<T>(Mutex<std::collections::VecDeque<(Jid, T)>>);

impl<T: Clone> Recent<T> {
    const KEPT: usize = 64;

    /// Keeps `item` from `device`, dropping the oldest beyond the last 64.
    pub(crate) fn push(&self, device: &Jid, item: T) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= Self::KEPT {
            kept.pop_front();
        }
        kept.push_back((device.clone(), item));
    }

    /// What the devices of `phone` sent, oldest first.
    fn of(&self, phone: &str) -> Vec<T> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(d, _)| d.user.as_str() == phone)
            .map(|(_, t)| t.clone())
            .collect()
    }
}

/// One live connection as the API sees it.
pub(crate) struct ConnEntry {
    pub(crate) tx: mpsc::Sender<Cmd>,
    /// Set once the connection logged in.
    pub(crate) device: Option<Jid>,
    /// Registration connections: the client's Noise and identity keys.
    pub(crate) noise: Option<PublicKey>,
    pub(crate) identity: Option<PublicKey>,
    /// Registration connections: refs and the instant each stops being accepted.
    pub(crate) refs: Vec<(String, Instant)>,
    /// A pending pairing-code request: phone number and wrapped companion ephemeral.
    pub(crate) code: Option<(String, Vec<u8>)>,
    /// The client said `<active/>` (true) or `<passive/>` (false) last; false at login.
    pub(crate) active: bool,
    /// Woken when stanzas were queued for this connection's device.
    pub(crate) flush: Arc<Notify>,
    /// Frames queued for this connection's writer and not yet written.
    pub(crate) outbox: Arc<std::sync::atomic::AtomicUsize>,
}

/// Commands from the API to one connection task.
pub(crate) enum Cmd {
    StreamError(StreamErrorKind),
    Drop,
    /// The phone scanned this connection's QR.
    Pair {
        phone: String,
        adv_secret: Zeroizing<Vec<u8>>,
        platform: String,
        reply: oneshot::Sender<Result<Jid, Error>>,
    },
    /// The phone accepted the pairing code: send the primary hello.
    PairCode {
        phone: String,
        primary_ephemeral: KeyPair,
        companion_ephemeral: PublicKey,
        wrapped_primary: Vec<u8>,
        reply: oneshot::Sender<Result<Jid, Error>>,
    },
    /// The phone scanned this connection's QR and the account links by passkey: send
    /// the passkey request.
    Passkey {
        phone: String,
        adv_secret: Zeroizing<Vec<u8>>,
        scan: crate::PasskeyScan,
        reply: oneshot::Sender<Result<Jid, Error>>,
    },
    /// Send this stanza to the client.
    Send(Node),
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Shared {
    pub(crate) fn conns(&self) -> MutexGuard<'_, HashMap<u64, ConnEntry>> {
        self.conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn passkeys(&self) -> MutexGuard<'_, HashMap<String, crate::passkey::PasskeySeen>> {
        self.passkeys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn reporting(&self) -> MutexGuard<'_, crate::reporting::ReportingTokens> {
        self.reporting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn queues(&self) -> MutexGuard<'_, Queues> {
        self.state.held.queues_lock()
    }

    pub(crate) fn history(&self) -> MutexGuard<'_, crate::history::HistoryState> {
        self.state
            .held
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn phone_media(&self) -> MutexGuard<'_, crate::phone_media::PhoneMedia> {
        self.state
            .held
            .phone_media
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn appstate(&self) -> MutexGuard<'_, crate::appstate::AppStateServer> {
        self.state
            .held
            .appstate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A connection number never handed out before for this state.
    pub(crate) fn next_conn(&self) -> u64 {
        self.state.held.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn faults(&self) -> FaultState {
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Handler for Shared {
    async fn websocket(self: Arc<Self>, conn: WsConn) {
        conn::run(self, conn).await;
    }

    async fn admin(self: Arc<Self>, path: String, body: Bytes) -> (u16, String) {
        crate::admin::handle(&self, &path, &body).await
    }

    fn media_host(&self) -> &MediaHost {
        &self.media
    }

    fn picture(&self, rest: &str) -> Option<Bytes> {
        crate::chats::served_picture(&self.state.lock(), rest)
    }
}

impl Sim {
    /// Binds `config.addr` and starts serving `/ws/chat`, `/admin/` and the media host.
    ///
    /// # Errors
    /// [`Error::Io`] when the address cannot be bound.
    pub async fn start(config: SimConfig) -> Result<Sim, Error> {
        let listener = TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let responder = {
            let st = config.state.lock();
            let now = unix_now();
            let params = ChainParams {
                intermediate_serial: 1,
                leaf_serial: 2,
                not_before: now.saturating_sub(86_400),
                not_after: now + 10 * 365 * 86_400,
            };
            let chain = issue_cert_chain(
                &st.keys.root,
                &st.keys.intermediate,
                &st.keys.noise_static.public,
                &params,
                &mut OsRng,
            );
            ResponderConfig {
                static_key: st.keys.noise_static.clone(),
                cert_chain: chain,
            }
        };
        let tls = config.tls.clone().map(TlsAcceptor::from);
        let (shutdown, _) = watch::channel(false);
        let media_dir = config.media_dir.clone().unwrap_or_else(std::env::temp_dir);
        let media = MediaHost::new(addr.to_string(), media_dir)?;
        let (phone_tx, phone_rx): (Vec<_>, Vec<_>) = (0..config.phone_workers.max(1))
            .map(|_| mpsc::channel(e2e::PHONE_QUEUE))
            .unzip();
        config.state.held.queues_lock().limit = config.queue_limit;
        let shared = Arc::new(Shared {
            media,
            state: config.state.clone(),
            config,
            responder,
            conns: Mutex::new(HashMap::new()),
            faults: Mutex::new(FaultState::default()),
            usync_queries: AtomicU64::new(0),
            notification_acks: AtomicU64::new(0),
            shutdown,
            phone_tx: phone_tx.into_boxed_slice(),
            calls: Mutex::default(),
            phone_pending: AtomicU64::new(0),
            reporting: Mutex::default(),
            props: Mutex::default(),
            unified_sessions: Recent::default(),
            wam_buffers: Recent::default(),
            props_hashes: Recent::default(),
            passkeys: Mutex::default(),
            recording: Recording::default(),
        });
        for rx in phone_rx {
            tokio::spawn(e2e::worker(Arc::downgrade(&shared), rx));
        }
        let accept = net::serve(listener, tls, shared.clone());
        tracing::info!(%addr, "wa-sim listening");
        Ok(Sim {
            shared,
            addr,
            accept,
        })
    }

    /// How many media blobs the media host holds.
    pub fn media_count(&self) -> usize {
        self.shared.media.count()
    }

    /// Deletes the media blob at `direct_path` (as if it expired). Returns whether it
    /// existed.
    pub fn delete_media(&self, direct_path: &str) -> bool {
        self.shared.media.delete(direct_path)
    }

    /// How many media blobs clients deleted (`DELETE /mms/...`, as a companion does
    /// after processing a history-sync chunk).
    pub fn media_deleted(&self) -> usize {
        self.shared.media.deleted()
    }

    /// Flips one bit of the stored media blob at `direct_path`, at byte `offset` (to test
    /// that clients refuse tampered media). Returns whether it did.
    pub fn corrupt_media(&self, direct_path: &str, offset: u64) -> bool {
        self.shared.media.corrupt(direct_path, offset)
    }

    /// Switches history sync on or off for `phone`'s simulated phone (off by default).
    /// When on, every companion that links afterwards gets an `INITIAL_BOOTSTRAP` chunk
    /// (the seeded conversations and the messages the phone exchanged, plus LID/PN
    /// mappings), encrypted and uploaded to the media host, and a `PUSH_NAME` chunk sent
    /// inline, each as a `HISTORY_SYNC_NOTIFICATION` to the new device alone. On-demand
    /// requests from a companion (`HISTORY_SYNC_ON_DEMAND` peer messages) are answered
    /// either way, with an `ON_DEMAND` chunk of the messages before the one named.
    pub fn set_history_sync(&self, phone: &str, on: bool) {
        self.shared.history().enable(phone, on);
    }

    /// Adds to what `phone`'s simulated phone sends new companions as history (and
    /// switches its history sync on): the conversations, push names and LID/PN mappings of
    /// `seed` (at most 10,000 of each are kept) and its new-chat-thread salt (`nctSalt`,
    /// sent in the initial bootstrap chunk); its other fields are ignored.
    pub fn seed_history(&self, phone: &str, seed: wa_proto::history_sync::HistorySync) {
        self.shared.history().seed(phone, seed);
    }

    /// `phone`'s simulated phone sends its companion `device` one more history chunk, as
    /// phones do after the bootstrap (recent chats, the full history): the notification
    /// carries the chunk's sync type, order and progress; the chunk goes `inline` or is
    /// encrypted and uploaded.
    pub async fn phone_send_history(
        &self,
        phone: &str,
        device: &Jid,
        chunk: wa_proto::history_sync::HistorySync,
        inline: bool,
    ) {
        let chunk = crate::history::Chunk::new(&chunk, inline);
        crate::history::send_chunk(&self.shared, phone, device, chunk).await;
    }

    /// The next history blob `phone`'s phone uploads gets one bit flipped after upload,
    /// so the companion's download fails verification.
    pub fn corrupt_next_history(&self, phone: &str) {
        self.shared.history().corrupt_next(phone);
    }

    /// The message ids of the `<receipt type="hist_sync">` receipts `phone`'s companions
    /// sent, in arrival order.
    pub fn hist_sync_receipts(&self, phone: &str) -> Vec<String> {
        self.shared.history().receipts(phone)
    }

    /// The history notifications `phone`'s phone sent: (message id, `HistorySyncType`
    /// number, whether the payload was inline).
    pub fn history_notifications(&self, phone: &str) -> Vec<(String, i32, bool)> {
        self.shared.history().sent(phone)
    }

    /// How many history chunks `phone`'s phone uploaded again because a companion asked
    /// (`<receipt type="server-error" category="peer">` naming the notification).
    pub fn history_reuploads(&self, phone: &str) -> usize {
        self.shared.history().reuploads(phone)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR/ws/chat` (`wss://` with TLS): the URL clients connect to.
    pub fn ws_url(&self) -> String {
        let scheme = if self.shared.config.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}/ws/chat", self.addr)
    }

    /// `http://ADDR` (`https://` with TLS): the base of the `/admin/` endpoints.
    pub fn admin_url(&self) -> String {
        let scheme = if self.shared.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The root public key the server's certificate chains are signed with: clients
    /// must trust it instead of WhatsApp's.
    pub fn root_public_key(&self) -> PublicKey {
        self.shared.state.root_public_key()
    }

    /// The server's Noise static public key (the key the leaf certificate names).
    pub fn server_static_key(&self) -> PublicKey {
        self.shared.responder.static_key.public
    }

    /// The durable state; pass it in a new [`SimConfig`] to restart with it.
    pub fn state(&self) -> SimState {
        self.shared.state.clone()
    }

    /// Adds an account with a simulated phone (or returns the existing one).
    ///
    /// # Panics
    /// When `phone` is not 7 to 15 digits without a leading zero (a test's mistake);
    /// [`try_add_account`](Self::try_add_account) returns an error instead.
    pub async fn add_account(&self, phone: &str) -> AccountInfo {
        match add_account(&self.shared, phone) {
            Ok(info) => info,
            Err(e) => panic!("add_account: {e}"),
        }
    }

    /// Adds an account, checking the phone number (7 to 15 digits, no leading zero).
    ///
    /// # Errors
    /// [`Error::InvalidPhone`].
    pub async fn try_add_account(&self, phone: &str) -> Result<AccountInfo, Error> {
        add_account(&self.shared, phone)
    }

    /// The account with this phone number.
    pub fn account(&self, phone: &str) -> Option<AccountInfo> {
        self.shared
            .state
            .lock()
            .accounts
            .get(phone)
            .map(|a| a.info())
    }

    /// The linked companion devices of an account (`phone:N@s.whatsapp.net`), in id order.
    pub fn devices(&self, phone: &str) -> Vec<Jid> {
        devices(&self.shared, phone)
    }

    /// The linked companion devices of an account with their keys.
    pub fn linked_devices(&self, phone: &str) -> Vec<LinkedDevice> {
        let st = self.shared.state.lock();
        st.accounts.get(phone).map_or_else(Vec::new, |a| a.linked())
    }

    /// Whether this device currently has a logged-in connection.
    pub fn is_online(&self, device: &Jid) -> bool {
        self.shared
            .conns()
            .values()
            .any(|c| c.device.as_ref() == Some(device))
    }

    /// Whether this device is logged in and has declared itself active
    /// (`<iq xmlns="passive" type="set"><active/></iq>`), as clients do after `<success>`.
    pub fn is_active(&self, device: &Jid) -> bool {
        self.shared
            .conns()
            .values()
            .any(|c| c.device.as_ref() == Some(device) && c.active)
    }

    /// How many one-time pre-keys the server holds for a device (`None`: no such device).
    /// For the phone (device 0) these are the phone's own keys, replenished when low.
    pub fn prekey_count(&self, device: &Jid) -> Option<usize> {
        let st = self.shared.state.lock();
        let acct = st.accounts.get(device.user.as_str())?;
        if device.device == 0 {
            return Some(acct.signal.prekey_count());
        }
        acct.devices
            .get(&device.device)
            .map(|d| d.prekeys.one_time.len())
    }

    /// Unlinks a device without telling it (its next login fails with 401).
    /// The account's other online devices get `<notification type="devices">`.
    pub fn remove_device(&self, device: &Jid) -> bool {
        let removed = {
            let mut st = self.shared.state.lock();
            st.accounts
                .get_mut(device.user.as_str())
                .and_then(|a| a.devices.remove(&device.device))
        };
        match removed {
            Some(d) => {
                notify_devices(
                    &self.shared,
                    device.user.as_str(),
                    false,
                    device.device,
                    d.key_index,
                );
                true
            }
            None => false,
        }
    }

    /// The messages the account's simulated phone received and decrypted, oldest first
    /// (at most 1000 are kept). Each was acknowledged with a delivery receipt; one that
    /// failed to decrypt got a retry receipt instead and is not listed.
    pub fn phone_inbox(&self, phone: &str) -> Vec<PhoneMessage> {
        e2e::inbox(&self.shared, phone)
    }

    /// The account's simulated phone sends `message` to `to` (a user): it encrypts it to
    /// every device of the peer and, wrapped in a `DeviceSentMessage`, to its own
    /// companions (creating sessions from the server's pre-key bundles as needed), and
    /// the server delivers it as sent by device 0. To a group (`id@g.us`) it sends one
    /// `skmsg` with its sender key, and the sender-key distribution message pairwise to
    /// every member device. Returns the message id.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`] (the phone or the peer), [`Error::Rejected`].
    pub async fn phone_send(
        &self,
        phone: &str,
        to: &Jid,
        message: wa_proto::e2e::Message,
    ) -> Result<String, Error> {
        e2e::phone_send(&self.shared, phone, to, message).await
    }

    /// Makes the bot account `phone` (a bot's number, `1313555xxxx` or `131655500xx`)
    /// reachable as `<id>@bot` too, as WhatsApp's bots are (`867051314767696@bot` is Meta
    /// AI): key fetches and messages for the id go to the bot's phone, and
    /// [`bot_reply`](Self::bot_reply) in a chat with the id answers from it. Kept in
    /// memory only.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`] when `phone` has no account; [`Error::Rejected`] when it
    /// is not a bot's number or `id` is not all digits.
    pub fn add_bot_id(&self, phone: &str, id: &str) -> Result<Jid, Error> {
        if !Jid::pn(phone.to_owned()).is_bot() {
            return Err(Error::Rejected(format!("{phone} is not a bot's number")));
        }
        if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::Rejected(format!("bad bot id {id:?}")));
        }
        let mut st = self.shared.state.lock();
        if !st.accounts.contains_key(phone) {
            return Err(Error::UnknownAccount(phone.to_owned()));
        }
        st.bot_ids.insert(id.to_owned(), phone.to_owned());
        Ok(Jid::new(id.to_owned(), Server::Bot))
    }

    /// The bot `bot_phone` (an account whose number is a bot's, `1313555xxxx` or
    /// `131655500xx`) answers `invocation` (a message in its
    /// [`phone_inbox`](Self::phone_inbox): one sent to the bot, or the bot's copy of an
    /// inline invocation) with `reply`, sealed under the invocation's bot message secret
    /// as `<enc type="msmsg">` (AES-256-GCM keyed by HKDF-SHA256 over it with the reply
    /// id, the invoker and the bot; bound to the reply id and the bot). `chat` is the
    /// chat as the invoker names it (the bot itself, by phone number or by its
    /// [bot id](Self::add_bot_id), a user or a group): every companion of the chat's
    /// members gets the reply with `<meta target_id target_sender_jid target_chat_jid>`,
    /// the chat named as that member sees it. In a chat with the bot id the reply comes
    /// from that id. Returns the reply's id.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`], [`Error::Rejected`] (not a bot, a bot id of another
    /// bot, or an invocation without a message secret).
    pub fn bot_reply(
        &self,
        bot_phone: &str,
        invocation: &PhoneMessage,
        chat: &Jid,
        reply: &wa_proto::e2e::Message,
    ) -> Result<String, Error> {
        crate::bot::bot_reply(&self.shared, bot_phone, invocation, chat, reply, None)
    }

    /// A later part of a reply [`bot_reply`](Self::bot_reply) started (bots stream long
    /// answers): sealed under the first part's id `first`, marked `<bot edit="inner"
    /// edit_target_id=first>`, or `edit="last"` when `last`. Returns the part's own id.
    ///
    /// # Errors
    /// As [`bot_reply`](Self::bot_reply).
    pub fn bot_reply_part(
        &self,
        bot_phone: &str,
        invocation: &PhoneMessage,
        chat: &Jid,
        reply: &wa_proto::e2e::Message,
        first: &str,
        last: bool,
    ) -> Result<String, Error> {
        let kind = if last { "last" } else { "inner" };
        crate::bot::bot_reply(
            &self.shared,
            bot_phone,
            invocation,
            chat,
            reply,
            Some((kind, first)),
        )
    }

    /// The account's simulated phone sends an image (`jpeg`, at most 16 MiB) like
    /// [`phone_send`](Self::phone_send): it encrypts it under a fresh media key, stores it
    /// on the media host and keeps the plaintext, so that when the blob is gone
    /// ([`delete_media`](Self::delete_media)) a companion of the account can ask for it
    /// again (`<receipt type="server-error">`) and gets a `mediaretry` notification with a
    /// new direct path. Returns the message id and the message sent.
    ///
    /// # Errors
    /// As [`phone_send`](Self::phone_send); [`Error::Rejected`] for an empty or too large
    /// image, [`Error::Io`] when the media host cannot store it.
    pub async fn phone_send_image(
        &self,
        phone: &str,
        to: &Jid,
        jpeg: &[u8],
        caption: Option<&str>,
    ) -> Result<(String, wa_proto::e2e::Message), Error> {
        crate::phone_media::phone_send_image(&self.shared, phone, to, jpeg, caption).await
    }

    /// Publishes sticker pack `id` on the sticker service (`GET /sticker?...&id=<id>` on
    /// [`local_addr`](Self::local_addr), which clients reach through their sticker
    /// service setting): each sticker is encrypted under a fresh media key (image keys)
    /// and stored on the media host, and the service answers with the pack's JSON array,
    /// keys and hashes in standard base64. Publishing an id again replaces the pack.
    /// Returns the stickers' direct paths, in order (for
    /// [`corrupt_media`](Self::corrupt_media) and [`delete_media`](Self::delete_media)).
    ///
    /// # Errors
    /// [`Error::Rejected`] for an id that is empty or over 128 bytes, more than 64
    /// stickers, an empty sticker or one over 16 MiB, or a full service (1024 packs);
    /// [`Error::Io`] when the media host cannot store a sticker.
    pub fn publish_sticker_pack(
        &self,
        id: &str,
        name: &str,
        publisher: &str,
        stickers: &[crate::SimSticker],
    ) -> Result<Vec<String>, Error> {
        crate::sticker::publish(&self.shared, id, name, publisher, stickers)
    }

    /// Makes the sticker service answer pack `id` with `body` as it is (malformed or
    /// oversized answers, for tests of clients).
    ///
    /// # Errors
    /// [`Error::Rejected`] for an id that is empty or over 128 bytes, a body over 16 MiB,
    /// or a full service.
    pub fn set_sticker_service_answer(&self, id: &str, body: Vec<u8>) -> Result<(), Error> {
        crate::sticker::set_answer(&self.shared, id, body)
    }

    /// The account's simulated phone sends a sticker pack to `to`, like
    /// [`phone_send_image`](Self::phone_send_image): `blob` (the pack's contents, at most
    /// 16 MiB) is encrypted under a fresh media key with the sticker-pack label
    /// ("WhatsApp Sticker Pack Keys"), stored on the media host, sent in a
    /// `stickerPackMessage` (pack id, name, length, both hashes, key, direct path) and
    /// kept for re-upload requests. Returns the message id and the message sent.
    ///
    /// # Errors
    /// As [`phone_send`](Self::phone_send); [`Error::Rejected`] for an empty or too large
    /// blob, [`Error::Io`] when the media host cannot store it.
    pub async fn phone_send_sticker_pack(
        &self,
        phone: &str,
        to: &Jid,
        pack_id: &str,
        name: &str,
        blob: &[u8],
    ) -> Result<(String, wa_proto::e2e::Message), Error> {
        crate::sticker::phone_send_sticker_pack(&self.shared, phone, to, pack_id, name, blob).await
    }

    /// How many media re-upload requests (`server-error` receipts) the phones answered.
    pub fn media_retries_answered(&self) -> u64 {
        self.shared.phone_media().answered
    }

    /// The account's simulated phone reads a message it received (one of
    /// [`phone_inbox`](Self::phone_inbox)): the sender's devices get
    /// `<receipt type="read">` from the phone.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`], [`Error::Rejected`].
    pub fn phone_mark_read(&self, phone: &str, message: &PhoneMessage) -> Result<(), Error> {
        e2e::phone_mark_read(&self.shared, phone, message)
    }

    /// The account's simulated phone creates a group (it becomes its super admin) with
    /// these participants (PN or LID user JIDs of known accounts; others are left out).
    /// Every member's devices get the `w:gp2` `<create>` notification.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`], [`Error::Rejected`] (empty or too long subject, too many
    /// groups).
    pub fn phone_create_group(
        &self,
        phone: &str,
        subject: &str,
        participants: &[Jid],
    ) -> Result<Jid, Error> {
        e2e::phone_create_group(&self.shared, phone, subject, participants)
    }

    /// Whether the simulated phone shares its app-state sync key
    /// (`APP_STATE_SYNC_KEY_SHARE`) with each companion right after it links, as real
    /// phones do. Off by default, so that a new companion's queue holds only what a test
    /// sends it; off, a companion asks for the key (`APP_STATE_SYNC_KEY_REQUEST`) when a
    /// sync needs it, and the phone answers.
    pub fn set_app_state_key_share(&self, on: bool) {
        self.appstate().share_on_link = on;
    }

    /// Whether the simulated phone answers `APP_STATE_SYNC_KEY_REQUEST`s from its
    /// companions (on by default).
    pub fn set_app_state_key_requests(&self, answer: bool) {
        self.appstate().answer_requests = answer;
    }

    /// The account's simulated phone sends its app-state sync key
    /// (`APP_STATE_SYNC_KEY_SHARE`) to every linked companion now; returns how many.
    pub async fn phone_share_app_state_key(&self, phone: &str) -> usize {
        crate::appstate::share_with_companions(&self.shared, phone).await
    }

    /// The id of `phone`'s app-state sync key (the phone makes the key when first
    /// needed).
    pub fn app_state_key_id(&self, phone: &str) -> Vec<u8> {
        self.appstate().key_id(phone)
    }

    /// The version the server holds for `phone`'s app-state `collection` (0 when none).
    pub fn app_state_version(&self, phone: &str, collection: &str) -> u64 {
        self.appstate().version(phone, collection)
    }

    /// Corrupts stored app state of `phone`'s `collection` (see [`AppStateTamper`]).
    /// Returns whether there was something to corrupt.
    ///
    /// [`AppStateTamper`]: crate::AppStateTamper
    pub fn tamper_app_state(
        &self,
        phone: &str,
        collection: &str,
        how: crate::AppStateTamper,
    ) -> bool {
        self.appstate().tamper(phone, collection, how)
    }

    /// How the simulated phones answer fatal app-state recovery requests
    /// (`COMPANION_SYNCD_SNAPSHOT_FATAL_RECOVERY`; honestly by default).
    pub fn set_app_state_recovery_answer(&self, how: crate::RecoveryAnswer) {
        self.appstate().recovery_answer = how;
    }

    /// The collections named by each `APP_STATE_FATAL_EXCEPTION_NOTIFICATION` `phone`'s
    /// simulated phone received from its companions, oldest first.
    pub fn app_state_fatal_exceptions(&self, phone: &str) -> Vec<Vec<String>> {
        self.appstate()
            .fatal_exceptions
            .iter()
            .filter(|(p, _)| p == phone)
            .map(|(_, names)| names.clone())
            .collect()
    }

    fn appstate(&self) -> MutexGuard<'_, crate::appstate::AppStateServer> {
        self.shared.appstate()
    }

    /// The push name `phone`'s devices last announced (`<presence name>`).
    pub fn push_name(&self, phone: &str) -> Option<String> {
        let st = self.shared.state.lock();
        st.accounts.get(phone).and_then(|a| a.push_name.clone())
    }

    /// The JPEG bytes of `phone`'s profile picture, as its device uploaded them.
    pub fn profile_picture(&self, phone: &str) -> Option<Vec<u8>> {
        let st = self.shared.state.lock();
        crate::chats::picture_bytes(&st, phone).map(|b| b.to_vec())
    }

    /// `phone`'s about text as its devices last set it (`xmlns="status"` or the `w:mex`
    /// `UpdateTextStatus` mutation): the text, its emoji and when it expires (unix
    /// seconds); `None` when it set none.
    pub fn about(&self, phone: &str) -> Option<(String, Option<String>, Option<u64>)> {
        let st = self.shared.state.lock();
        crate::chats::about(&st, phone)
    }

    /// Sets who sees `phone`'s status updates, as its phone's settings would: the server
    /// answers `<iq xmlns="status" type="get"><privacy/>` with the contacts, blacklist
    /// and whitelist lists, `mode`'s marked default. For [`StatusPrivacyMode::Blacklist`]
    /// and [`StatusPrivacyMode::Whitelist`] that list becomes `users`; for
    /// [`StatusPrivacyMode::Contacts`] (the default of every account) `users` is ignored
    /// and the other lists stay as they were.
    ///
    /// The simulator does not enforce the setting: a status goes to the devices its sender
    /// lists, as on WhatsApp's server.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`]; [`Error::Rejected`] for more than 10 000 users.
    ///
    /// [`StatusPrivacyMode::Blacklist`]: crate::StatusPrivacyMode::Blacklist
    /// [`StatusPrivacyMode::Whitelist`]: crate::StatusPrivacyMode::Whitelist
    /// [`StatusPrivacyMode::Contacts`]: crate::StatusPrivacyMode::Contacts
    pub fn set_status_privacy(
        &self,
        phone: &str,
        mode: crate::StatusPrivacyMode,
        users: &[Jid],
    ) -> Result<(), Error> {
        crate::chats::set_status_privacy(&self.shared, phone, mode, users)
    }

    /// Registers a business message link (`https://wa.me/message/<code>`) for the account
    /// `phone`, as a business makes one in its app: `<iq xmlns="w:qr" type="get"><qr
    /// code/>` then answers `<qr jid notify>` with `<message>text</message>` (left out
    /// when `text` is empty) and `<business is_signed verified_name
    /// verified_level="unknown"/>` (`is_signed="true"` with a verified name). Registering
    /// a code again replaces its link.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`]; [`Error::Rejected`] for a code that is not 1 to 64 ASCII
    /// letters, digits, `-` or `_`, that is an account's contact QR code, a text or name
    /// over 4096 bytes, or beyond 10 000 links.
    pub fn add_business_message_link(
        &self,
        phone: &str,
        code: &str,
        text: &str,
        verified_name: Option<&str>,
    ) -> Result<(), Error> {
        let mut st = self.shared.state.lock();
        crate::links::add_business_link(&mut st, phone, code, text, verified_name)
    }

    /// The account's current contact QR code (`https://wa.me/qr/<code>`), once one of its
    /// devices asked for it (`<iq xmlns="w:qr" type="set"><qr type="contact"
    /// action="get|revoke"/>`; a revoke replaces it with a new random code).
    pub fn contact_qr_code(&self, phone: &str) -> Option<String> {
        crate::links::contact_code(&self.shared.state.lock(), phone)
    }

    /// The terms-of-service notices `(id, stage)` the devices of `phone` accepted
    /// (`<iq xmlns="tos" type="set"><notice id stage/>`), oldest first, each once (the
    /// last 64 per account).
    pub fn tos_notices(&self, phone: &str) -> Vec<(String, String)> {
        crate::links::tos_notices(&self.shared.state.lock(), phone)
    }

    /// The attributes of the push `<config>` `device` registered last (`<iq
    /// xmlns="urn:xmpp:whatsapp:push" type="set">`), in the order sent; its `<iq
    /// type="get"><settings/>` is answered with them as `<settings><config .../>`.
    pub fn push_config(&self, device: &Jid) -> Option<Vec<(String, String)>> {
        crate::links::push_config(&self.shared.state.lock(), device)
    }

    /// The users `phone` blocked, in number order.
    pub fn blocklist(&self, phone: &str) -> Vec<Jid> {
        let st = self.shared.state.lock();
        st.chats
            .profiles
            .get(phone)
            .map(|p| p.blocked.iter().cloned().map(Jid::pn).collect())
            .unwrap_or_default()
    }

    /// The members of a group (user JIDs, in join order); `None` when there is no such
    /// group.
    pub fn group_members(&self, group: &Jid) -> Option<Vec<Jid>> {
        let st = self.shared.state.lock();
        crate::group::members(&st, group).map(|m| m.into_iter().map(Jid::pn).collect())
    }

    /// The current invite code of `group` (what `chat.whatsapp.com/<code>` links name);
    /// `None` for no such group.
    pub fn group_invite_code(&self, group: &Jid) -> Option<String> {
        let st = self.shared.state.lock();
        st.groups.get(group.user.as_str()).map(|g| g.invite.clone())
    }

    /// Lets every outstanding personal (v4) invite of `group` expire now, as if its three
    /// days had passed: previewing or accepting it then gets error 410. Returns how many
    /// invites there were (0 also for no such group).
    pub fn expire_personal_invites(&self, group: &Jid) -> usize {
        let mut st = self.shared.state.lock();
        crate::group::expire_v4_invites(&mut st, group)
    }

    /// How many stanzas wait in a device's delivery queue (delivered or not, not yet
    /// acknowledged).
    pub fn queued(&self, device: &Jid) -> usize {
        self.shared.queues().len(device)
    }

    /// How many of the stanzas [`Sim::queued`] counts are `<message>`s (not receipts,
    /// notifications or calls).
    pub fn queued_messages(&self, device: &Jid) -> usize {
        self.shared.queues().messages(device)
    }

    /// How many frames wait for the writer of this device's logged-in connection (`None`:
    /// not online). Bounded by the delivery window for queued stanzas; for tests.
    #[doc(hidden)]
    pub fn outbox_len(&self, device: &Jid) -> Option<usize> {
        self.shared
            .conns()
            .values()
            .find(|c| c.device.as_ref() == Some(device))
            .map(|c| c.outbox.load(Ordering::Acquire))
    }

    /// How many stanzas were dropped because a delivery queue was full.
    pub fn dropped_stanzas(&self) -> u64 {
        self.shared.queues().dropped
    }

    /// How many usync queries the server answered.
    pub fn usync_queries(&self) -> u64 {
        self.shared.usync_queries.load(Ordering::Relaxed)
    }

    /// How many `<ack class="notification">` stanzas clients sent.
    pub fn notification_acks(&self) -> u64 {
        self.shared.notification_acks.load(Ordering::Relaxed)
    }

    /// The account's simulated phone scans a QR string a client shows. Resolves with the
    /// new device's JID once the companion's signed reply has been verified and the
    /// device registered (the server then sends stream error 515).
    ///
    /// # Errors
    /// [`Error::UnknownAccount`], [`Error::BadQr`], [`Error::UnknownRef`],
    /// [`Error::QrKeyMismatch`], [`Error::PairingRejected`], [`Error::ConnectionGone`],
    /// [`Error::Timeout`].
    pub async fn scan_qr(&self, phone: &str, qr: &str) -> Result<Jid, Error> {
        scan_qr(&self.shared, phone, qr).await
    }

    /// The account's simulated phone scans a QR string a client shows, and the server
    /// asks that client to link with the account's passkey instead
    /// (`<notification type="passkey_prologue_request">`), playing the primary device
    /// through the rest: it checks the prologue (credential, assertion over its
    /// challenge, handoff proof under the QR's ADV secret, the companion ref it handed
    /// out), answers with the primary's ephemeral identity, checks the revealed nonce
    /// against the commitment, derives the key and the code the primary shows
    /// ([`Sim::passkey_code`]), opens the encrypted pairing request and finishes with
    /// pair-success under the ADV secret it carried. `scan` injects misbehaviour. Resolves
    /// with the new device's JID once the companion's signed reply has been verified.
    ///
    /// # Errors
    /// As [`Sim::scan_qr`]; [`Error::PairingRejected`] when a check fails (the step's iq
    /// is answered with error 401).
    pub async fn scan_qr_passkey(
        &self,
        phone: &str,
        qr: &str,
        scan: crate::PasskeyScan,
    ) -> Result<Jid, Error> {
        let (tx, qr) = qr_connection(&self.shared, phone, qr)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Cmd::Passkey {
            phone: phone.to_owned(),
            adv_secret: qr.adv_secret,
            scan,
            reply,
        })
        .await
        .map_err(|_| Error::ConnectionGone)?;
        await_reply(&self.shared, rx).await
    }

    /// The code `phone`'s primary device shows in its latest passkey link, once the
    /// companion revealed its nonce.
    pub fn passkey_code(&self, phone: &str) -> Option<String> {
        self.passkey_seen(phone).and_then(|s| s.code)
    }

    /// What the server received in the latest passkey prologue for `phone`.
    pub fn passkey_prologue(&self, phone: &str) -> Option<crate::PasskeyPrologue> {
        self.passkey_seen(phone).and_then(|s| s.prologue)
    }

    fn passkey_seen(&self, phone: &str) -> Option<crate::passkey::PasskeySeen> {
        self.shared.passkeys().get(phone).cloned()
    }

    /// The account's simulated phone accepts a pairing code (`ABCD-EFGH`) a client
    /// asked for with `companion_hello`. Resolves with the new device's JID once pairing
    /// finished.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`], [`Error::BadPairingCode`], [`Error::NoPendingCode`],
    /// [`Error::PairingRejected`] (for example a wrong code: the key bundle does not
    /// decrypt), [`Error::ConnectionGone`], [`Error::Timeout`].
    pub async fn enter_pairing_code(&self, phone: &str, code: &str) -> Result<Jid, Error> {
        enter_pairing_code(&self.shared, phone, code).await
    }

    /// The account's phone reinstalls WhatsApp: it gets a new identity key and new Signal
    /// state (its sessions, pre-keys and inbox are gone). With `announce`, every linked
    /// companion of the other accounts is told with `<notification
    /// type="encrypt"><identity/>` (queued for those offline); without, they only notice
    /// from the phone's next message. The account's own companions are left as they are.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`].
    pub fn reset_identity(&self, phone: &str, announce: bool) -> Result<(), Error> {
        let told: Vec<Jid> = {
            let mut st = self.shared.state.lock();
            let acct = st
                .accounts
                .get_mut(phone)
                .ok_or_else(|| Error::UnknownAccount(phone.to_owned()))?;
            let identity = KeyPair::generate(&mut OsRng);
            acct.signal = Arc::new(e2e::PhoneSignal::new(&identity));
            acct.identity = identity;
            st.accounts
                .values()
                .filter(|a| a.phone != phone)
                .flat_map(|a| {
                    a.devices
                        .keys()
                        .map(|d| Jid::with_device(a.phone.clone(), Server::Pn, *d))
                })
                .collect()
        };
        let notification = Node::builder("notification")
            .attr("from", Jid::pn(phone.to_owned()))
            .attr("type", "encrypt")
            .attr("id", fresh_id())
            .attr("t", unix_now())
            .children([Node::builder("identity").build()])
            .build();
        for d in told.iter().filter(|_| announce) {
            crate::route::deliver(&self.shared, d, notification.clone());
        }
        Ok(())
    }

    /// Restricts (or frees) an account as WhatsApp restricts accounts that start too many
    /// chats: its companions may then only send 1:1 messages to users who issued them a
    /// privacy token, carrying it as `<tctoken>`; other 1:1 messages are refused with
    /// error 463. Presence subscriptions and profile-picture queries to another user
    /// need the token too (else ignored, or refused with 401). Messages within the
    /// account and from its phone pass. Saved in the state file.
    pub fn restrict_account(&self, phone: &str, restricted: bool) {
        self.shared
            .state
            .lock()
            .chats
            .tokens
            .set_restricted(phone, restricted);
    }

    /// Sets the reach-out timelock on the account `phone`, as WhatsApp does to accounts
    /// that start too many chats: until `ends_at` (Unix seconds, or open-ended when
    /// `None`), for the reason `enforcement` (`DEFAULT`, `BIZ_QUALITY`, ...). The account
    /// is restricted meanwhile (see [`Sim::restrict_account`]), its companions get the
    /// `mex` notification (queued for those offline), and the `w:mex` fetch answers it.
    /// The simulator does not lift it by itself at `ends_at`: call
    /// [`Sim::lift_reachout_timelock`]. An `enforcement` beyond 64 bytes is cut.
    pub fn set_reachout_timelock(&self, phone: &str, ends_at: Option<u64>, enforcement: &str) {
        crate::restriction::set_timelock(
            &self.shared,
            phone,
            Some((ends_at, enforcement.to_owned())),
        );
    }

    /// Lifts the reach-out timelock of `phone` (and its restriction) and tells its
    /// companions.
    pub fn lift_reachout_timelock(&self, phone: &str) {
        crate::restriction::set_timelock(&self.shared, phone, None);
    }

    /// Sets what the server reports as the new-chat message cap of `phone` (the JSON
    /// object of `xwa2_message_capping_info`: `total_quota`, `used_quota`,
    /// `capping_status`, ...), answers it to the `w:mex` fetch from now on and pushes it
    /// to the account's companions. The simulator does not enforce the cap. `false`
    /// (and nothing set) when `cap` is not a JSON object of at most 4 KiB.
    pub fn set_new_chat_message_cap(&self, phone: &str, cap: serde_json::Value) -> bool {
        crate::restriction::set_cap(&self.shared, phone, cap)
    }

    /// The privacy token the account `issuer` issued to the account `recipient` (both
    /// phone numbers), with its issue time, if any.
    pub fn privacy_token(&self, issuer: &str, recipient: &str) -> Option<(Vec<u8>, u64)> {
        self.shared
            .state
            .lock()
            .chats
            .tokens
            .token(issuer, recipient)
    }

    /// The reporting token (`<reporting><reporting_token v="2">`) the account `sender`
    /// (phone number) attached to its message `id`, if the server kept one. The newest
    /// 65,536 are kept, in memory only.
    pub fn reporting_token(&self, sender: &str, id: &str) -> Option<Vec<u8>> {
        self.shared.reporting().get(sender, id)
    }

    /// The `<cstoken>` the last 1:1 message from the account `sender` to the account
    /// `recipient` (phone numbers) carried, if any did.
    pub fn cstoken(&self, sender: &str, recipient: &str) -> Option<Vec<u8>> {
        self.shared
            .state
            .lock()
            .chats
            .tokens
            .cstoken(sender, recipient)
    }

    /// Flags `kind` (`account_sync`, `groups`, ...) as changed for the account `phone`,
    /// as the server does when data changed that its companions may have missed: the
    /// account's connected companions get `<ib><dirty type timestamp>` now, and every
    /// login gets it until a companion cleans the flag. Returns the flag's timestamp;
    /// `None` for an unknown account or too many kinds flagged.
    pub fn mark_dirty(&self, phone: &str, kind: &str) -> Option<u64> {
        let now = unix_now();
        {
            let mut st = self.shared.state.lock();
            if !st.accounts.contains_key(phone) || !st.dirty.mark(phone, kind, now) {
                return None;
            }
        }
        let node = crate::dirty::ib(kind, now);
        crate::chats::send_live(&self.shared, &node, |_, d| {
            d.user.as_str() == phone && d.device != 0
        });
        Some(now)
    }

    /// Starts keeping a copy of every stanza the server sends to the logged-in
    /// companions of the account `phone` (the last 4,096), from their login on, for tests
    /// that replay or mutate real traffic. Replaces an earlier recording.
    pub fn record_stanzas(&self, phone: &str) {
        let r = &self.shared.recording;
        *r.kept.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((phone.to_owned(), Default::default()));
        r.on.store(true, Ordering::Relaxed);
    }

    /// Stops recording (see [`Sim::record_stanzas`]) and returns what was recorded,
    /// oldest first.
    pub fn take_recorded_stanzas(&self) -> Vec<Node> {
        let r = &self.shared.recording;
        r.on.store(false, Ordering::Relaxed);
        r.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|(_, nodes)| nodes.into())
            .unwrap_or_default()
    }

    /// Sends `node`, exactly as given, to every logged-in connection of `device`,
    /// waiting for room in each connection's queue. Nothing checks it: this is how tests
    /// play a hostile or broken server. Returns how many connections it went to.
    pub async fn send_raw(&self, device: &Jid, node: Node) -> usize {
        let txs: Vec<mpsc::Sender<Cmd>> = self
            .shared
            .conns()
            .values()
            .filter(|c| c.device.as_ref() == Some(device))
            .map(|c| c.tx.clone())
            .collect();
        let mut sent = 0;
        for tx in txs {
            if tx.send(Cmd::Send(node.clone())).await.is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// The kinds flagged for the account `phone` and not cleaned yet.
    pub fn dirty_flags(&self, phone: &str) -> Vec<String> {
        self.shared.state.lock().dirty.flagged(phone)
    }

    /// The clean requests (kind, timestamp) the companions of `phone` sent, oldest first.
    pub fn dirty_cleaned(&self, phone: &str) -> Vec<(String, Option<u64>)> {
        self.shared.state.lock().dirty.cleaned(phone)
    }

    /// The bytes of the business cover photo the account `phone` has set, if any.
    pub fn business_cover_photo(&self, phone: &str) -> Option<Vec<u8>> {
        let fbid = self.shared.state.lock().business.cover_photo(phone)?;
        self.shared.media.cover_bytes(&fbid)
    }

    /// The bytes of the blob `url_or_direct_path` names on the media host, as uploaded
    /// (encrypted media stays encrypted), if the host holds it.
    pub fn media_blob(&self, url_or_direct_path: &str) -> Option<Vec<u8>> {
        self.shared.media.blob_bytes(url_or_direct_path)
    }

    /// Makes the account `phone` an admin of `channel` (a `..@newsletter` JID). Admin
    /// invites are not simulated; this stands in for one being sent and accepted.
    /// Returns `false` when there is no such channel or `phone` owns it.
    pub fn newsletter_add_admin(&self, channel: &Jid, phone: &str) -> bool {
        channel.is_newsletter()
            && crate::state::valid_phone(phone)
            && self
                .shared
                .state
                .lock()
                .newsletters
                .add_admin(channel.user.as_str(), phone)
    }

    /// How many privacy tokens were issued since the server started.
    pub fn privacy_tokens_issued(&self) -> u64 {
        self.shared.state.lock().chats.tokens.issued()
    }

    /// Injects a fault. Returns how many connections it hit (0 for the sticky switches).
    pub fn fault(&self, fault: Fault) -> usize {
        apply_fault(&self.shared, fault)
    }

    /// The sticky fault switches currently set.
    pub fn faults(&self) -> FaultState {
        self.shared.faults()
    }

    /// Gives the account `phone` a username (`None` removes it), as usync's `<username>`
    /// answers it; at most 64 bytes (longer is refused, returning `false`).
    pub fn set_username(&self, phone: &str, username: Option<&str>) -> bool {
        if username.is_some_and(|u| u.len() > crate::chats::MAX_USERNAME) {
            return false;
        }
        let mut st = self.shared.state.lock();
        st.chats
            .profiles
            .entry(phone.to_owned())
            .or_default()
            .username = username.map(str::to_owned);
        true
    }

    /// Sets the default disappearing-messages timer of new chats of the account `phone`
    /// (`duration` seconds, 0 = off), as its own device would with `<iq
    /// xmlns="disappearing_mode" type="set">`; usync's `<disappearing_mode>` answers it
    /// with the time it was set. `false` (and nothing set) for an unknown account.
    pub fn set_disappearing_mode(&self, phone: &str, duration: u32) -> bool {
        let mut st = self.shared.state.lock();
        if !st.accounts.contains_key(phone) {
            return false;
        }
        st.chats
            .profiles
            .entry(phone.to_owned())
            .or_default()
            .set_disappearing(duration, unix_now());
        true
    }

    /// The `<tctoken>` (privacy token) the last usync query from a device of the
    /// account `asker` carried for the account `about` (phone numbers; the account named
    /// by its phone number or LID), or `None` when that query carried none or no query
    /// named it. In memory only.
    pub fn usync_tctoken(&self, asker: &str, about: &str) -> Option<Vec<u8>> {
        self.shared
            .state
            .lock()
            .chats
            .tokens
            .usync_token(asker, about)
    }

    /// The WAM (analytics) buffers the devices of `phone` sent with `<iq xmlns="w:stats"
    /// type="set"><add>`, oldest first (the simulator keeps the last 64 of all devices,
    /// each at most 64 KiB and starting with the `WAM` header; others are refused with
    /// 400).
    pub fn wam_buffers(&self, phone: &str) -> Vec<Vec<u8>> {
        self.shared.wam_buffers.of(phone)
    }

    /// The hash each props query of the devices of `phone` named (`None` for a query
    /// without one), oldest first (the last 64 of all devices are kept).
    pub fn props_query_hashes(&self, phone: &str) -> Vec<Option<String>> {
        self.shared.props_hashes.of(phone)
    }

    /// The `<ib><unified_session id>` ids the devices of `phone` sent, oldest first (the
    /// simulator keeps the last 64 of all devices).
    pub fn unified_sessions(&self, phone: &str) -> Vec<String> {
        self.shared.unified_sessions.of(phone)
    }

    /// Sets an AB prop the server answers to `<iq xmlns="abt" type="get"><props/>` (e.g.
    /// `"10518"`, `"false"`), for every client's next fetch; `None` removes it. None are
    /// set at first.
    pub fn set_server_prop(&self, code: &str, value: Option<&str>) {
        let mut props = self
            .shared
            .props
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match value {
            Some(v) => {
                props.insert(code.to_owned(), v.to_owned());
            }
            None => {
                props.remove(code);
            }
        }
    }

    /// Stops listening and closes every connection (without a stream error). The state
    /// stays usable for a restart.
    pub async fn shutdown(self) {
        self.stop().await;
    }

    /// Restarts the server as a crash and a new process would: stops listening, closes
    /// every connection without a word, stays away for `downtime` (connections are
    /// refused), then listens again on the same address with the same keys, accounts and
    /// queues (see [`SimState`]). Faults switched on are forgotten; media blobs do not
    /// survive.
    ///
    /// # Errors
    /// [`Error::Io`] when the address cannot be bound again; this handle is then stopped.
    pub async fn restart(&mut self, downtime: Duration) -> Result<(), Error> {
        self.stop().await;
        tokio::time::sleep(downtime).await;
        let config = SimConfig {
            addr: self.addr,
            ..self.shared.config.clone()
        };
        let next = Sim::start(config).await?;
        // The old handle's Drop only aborts its (finished) listener.
        *self = next;
        Ok(())
    }

    async fn stop(&self) {
        self.accept.abort();
        let _ = self.shared.shutdown.send(true);
        // Wait (briefly) until the connection tasks have gone and the phones have
        // processed what they were handed.
        for _ in 0..400 {
            if self.shared.conns().is_empty()
                && self.shared.phone_pending.load(Ordering::Acquire) == 0
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

pub(crate) fn add_account(shared: &Shared, phone: &str) -> Result<AccountInfo, Error> {
    if !valid_phone(phone) {
        return Err(Error::InvalidPhone(phone.to_owned()));
    }
    Ok(shared.state.lock().add_account(phone, unix_now()))
}

pub(crate) fn devices(shared: &Shared, phone: &str) -> Vec<Jid> {
    let st = shared.state.lock();
    st.accounts.get(phone).map_or_else(Vec::new, |a| {
        a.devices
            .keys()
            .map(|d| Jid::with_device(a.phone.clone(), Server::Pn, *d))
            .collect()
    })
}

async fn await_reply(
    shared: &Shared,
    rx: oneshot::Receiver<Result<Jid, Error>>,
) -> Result<Jid, Error> {
    match tokio::time::timeout(shared.config.pair_timeout, rx).await {
        Err(_) => Err(Error::Timeout),
        Ok(Err(_)) => Err(Error::ConnectionGone),
        Ok(Ok(r)) => r,
    }
}

pub(crate) async fn scan_qr(shared: &Shared, phone: &str, qr: &str) -> Result<Jid, Error> {
    let (tx, qr) = qr_connection(shared, phone, qr)?;
    let (reply, rx) = oneshot::channel();
    tx.send(Cmd::Pair {
        phone: phone.to_owned(),
        adv_secret: qr.adv_secret,
        platform: qr.platform,
        reply,
    })
    .await
    .map_err(|_| Error::ConnectionGone)?;
    await_reply(shared, rx).await
}

/// The registration connection showing `qr` (a live ref, the same keys), for `phone`.
fn qr_connection(
    shared: &Shared,
    phone: &str,
    qr: &str,
) -> Result<(mpsc::Sender<Cmd>, phone::Qr), Error> {
    if !shared.state.lock().accounts.contains_key(phone) {
        return Err(Error::UnknownAccount(phone.to_owned()));
    }
    let qr = phone::parse_qr(qr)?;
    let now = Instant::now();
    let tx = {
        let conns = shared.conns();
        let entry = conns
            .values()
            .find(|c| {
                c.refs
                    .iter()
                    .any(|(r, until)| *r == qr.reference && *until > now)
            })
            .ok_or(Error::UnknownRef)?;
        if entry.noise != Some(qr.noise) || entry.identity != Some(qr.identity) {
            return Err(Error::QrKeyMismatch);
        }
        entry.tx.clone()
    };
    Ok((tx, qr))
}

pub(crate) async fn enter_pairing_code(
    shared: &Shared,
    phone: &str,
    code: &str,
) -> Result<Jid, Error> {
    let code = phone::normalize_code(code)?;
    if !shared.state.lock().accounts.contains_key(phone) {
        return Err(Error::UnknownAccount(phone.to_owned()));
    }
    let (tx, wrapped) = {
        let mut conns = shared.conns();
        // One attempt per companion_hello: the request is consumed here.
        let (_, entry) = conns
            .iter_mut()
            .filter(|(_, c)| c.code.as_ref().is_some_and(|(p, _)| p == phone))
            .max_by_key(|(id, _)| **id)
            .ok_or_else(|| Error::NoPendingCode(phone.to_owned()))?;
        let wrapped = entry.code.take().map(|(_, w)| w).unwrap_or_default();
        (entry.tx.clone(), wrapped)
    };
    // Two PBKDF2 runs of 131072 rounds: keep them off the async workers.
    let (companion_ephemeral, primary_ephemeral, wrapped_primary) =
        tokio::task::spawn_blocking(move || {
            let companion = phone::unwrap_ephemeral(&code, &wrapped)?;
            let primary = KeyPair::generate(&mut OsRng);
            let mut salt = [0u8; 32];
            let mut iv = [0u8; 16];
            OsRng.fill_bytes(&mut salt);
            OsRng.fill_bytes(&mut iv);
            let wrapped = phone::wrap_ephemeral(&code, &primary.public, &salt, &iv);
            Ok::<_, Error>((companion, primary, wrapped))
        })
        .await
        .map_err(|_| Error::ConnectionGone)??;
    let (reply, rx) = oneshot::channel();
    tx.send(Cmd::PairCode {
        phone: phone.to_owned(),
        primary_ephemeral,
        companion_ephemeral,
        wrapped_primary,
        reply,
    })
    .await
    .map_err(|_| Error::ConnectionGone)?;
    await_reply(shared, rx).await
}

fn hits(entry: &ConnEntry, target: &Target) -> bool {
    match target {
        Target::All => true,
        Target::Account(phone) => entry
            .device
            .as_ref()
            .is_some_and(|d| d.user.as_str() == phone),
        Target::Device(jid) => entry.device.as_ref() == Some(jid),
    }
}

pub(crate) fn apply_fault(shared: &Shared, fault: Fault) -> usize {
    let sticky = |f: &dyn Fn(&mut FaultState)| {
        f(&mut shared
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
        0
    };
    let (target, cmd): (Target, fn() -> Cmd) = match fault {
        Fault::IgnorePings(on) => return sticky(&|s| s.ignore_pings = on),
        Fault::RefuseLogins(r) => return sticky(&|s| s.refuse_logins = r),
        Fault::DelayFrames(d) => return sticky(&|s| s.delay_frames = d),
        Fault::DuplicateDelivery(on) => return sticky(&|s| s.duplicate_delivery = on),
        Fault::ReorderOffline(on) => return sticky(&|s| s.reorder_offline = on),
        Fault::SenderAddressing(a) => return sticky(&|s| s.sender_addressing = a),
        Fault::StripReceiptRecipient(on) => return sticky(&|s| s.strip_receipt_recipient = on),
        Fault::WithholdOfflineMarker(on) => return sticky(&|s| s.withhold_offline_marker = on),
        Fault::DropAfterDeliver(jid) => {
            return sticky(&|s| {
                if !s.drop_after_deliver.contains(&jid) && s.drop_after_deliver.len() < 64 {
                    s.drop_after_deliver.push(jid.clone());
                }
            });
        }
        Fault::Drop(t) => (t, || Cmd::Drop),
        Fault::StreamError(t, StreamErrorKind::Restart) => {
            (t, || Cmd::StreamError(StreamErrorKind::Restart))
        }
        Fault::StreamError(t, StreamErrorKind::Replaced) => {
            (t, || Cmd::StreamError(StreamErrorKind::Replaced))
        }
        Fault::StreamError(t, StreamErrorKind::DeviceRemoved) => {
            (t, || Cmd::StreamError(StreamErrorKind::DeviceRemoved))
        }
        Fault::StreamError(t, StreamErrorKind::ServiceUnavailable) => {
            (t, || Cmd::StreamError(StreamErrorKind::ServiceUnavailable))
        }
    };
    let conns = shared.conns();
    let mut n = 0;
    for entry in conns.values().filter(|e| hits(e, &target)) {
        if entry.tx.try_send(cmd()).is_ok() {
            n += 1;
        }
    }
    n
}

/// Sends `<notification type="devices">` about `phone`'s device `device` (added or
/// removed) to the account's logged-in devices other than that one.
pub(crate) fn notify_devices(
    shared: &Shared,
    phone: &str,
    added: bool,
    device: u16,
    key_index: u32,
) {
    if !added {
        shared
            .queues()
            .forget(&Jid::with_device(phone.to_owned(), Server::Pn, device));
    }
    let node = crate::usync::devices_notification(phone, added, device, key_index);
    let conns = shared.conns();
    for entry in conns.values() {
        if let Some(d) = &entry.device
            && d.user.as_str() == phone
            && d.device != device
        {
            let _ = entry.tx.try_send(Cmd::Send(node.clone()));
        }
    }
}

/// A fresh id for a server-initiated iq or notification.
pub(crate) fn fresh_id() -> String {
    let mut b = [0u8; 8];
    OsRng.fill_bytes(&mut b);
    hex::encode_upper(b)
}
