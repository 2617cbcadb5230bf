//! Socket configuration.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls::ClientConfig;
use wa_crypto::PublicKey;
use wa_store::{
    AccountId, AccountStore, Backend, BoxFuture as StoreFuture, Bytes, CacheConfig, CachedBackend,
    Op, Role,
};

use crate::{Backoff, DisconnectReason, Proxy};

/// Default websocket endpoint.
pub const DEFAULT_WS_URL: &str = "wss://web.whatsapp.com/ws/chat";

/// Default web client version: the WhatsApp Web release the schemas under `proto/`
/// describe. The server refuses clients it considers outdated, so this moves with them
/// (`wa_media::fetch_latest_web_version` reads the current release).
pub const DEFAULT_VERSION: [u32; 3] = [2, 3000, 1_045_649_367];

/// How the device describes itself: `(os, browser, os version)`, e.g.
/// `("Mac OS", "Chrome", "14.4.1")`. The browser decides the platform shown on the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Browser {
    /// Operating system name.
    pub os: String,
    /// Browser name (`Chrome`, `Firefox`, `Safari`, `Edge`, `Opera`, `IE`, `Desktop`).
    pub browser: String,
    /// Operating system version.
    pub version: String,
}

impl Browser {
    /// A browser description.
    pub fn new(
        os: impl Into<String>,
        browser: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        Self {
            os: os.into(),
            browser: browser.into(),
            version: version.into(),
        }
    }
}

impl Browser {
    /// `browser` on Ubuntu (Baileys' `Browsers.ubuntu`).
    pub fn ubuntu(browser: impl Into<String>) -> Self {
        Self::new("Ubuntu", browser, "22.04.4")
    }

    /// `browser` on macOS (Baileys' `Browsers.macOS`).
    pub fn mac_os(browser: impl Into<String>) -> Self {
        Self::new("Mac OS", browser, "14.4.1")
    }

    /// `browser` on Windows (Baileys' `Browsers.windows`).
    pub fn windows(browser: impl Into<String>) -> Self {
        Self::new("Windows", browser, "10.0.22631")
    }
}

impl Default for Browser {
    /// Chrome on Ubuntu.
    fn default() -> Self {
        Self::ubuntu("Chrome")
    }
}

/// History-sync preferences announced when the device registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySyncOptions {
    /// Ask the phone for the full history rather than recent chats only.
    pub full_sync: bool,
    /// Storage quota announced to the phone, MiB.
    pub storage_quota_mb: u32,
}

impl Default for HistorySyncOptions {
    fn default() -> Self {
        Self {
            full_sync: false,
            storage_quota_mb: 10_240,
        }
    }
}

/// A boxed future returned by callbacks.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Looks up a message this device sent, by chat JID and message id, as encoded
/// `wa_proto::e2e::Message` bytes (used by upper layers to answer retry receipts).
pub type GetMessage = Arc<dyn Fn(String, String) -> BoxFuture<Option<Vec<u8>>> + Send + Sync>;

/// Decides, by chat, which incoming stanzas are dropped unread (Baileys'
/// `shouldIgnoreJid`): messages, receipts, notifications, calls, presences and chat
/// states whose chat it returns `true` for are acknowledged (a message with the
/// protocol's 500 nack, so it is not delivered again) and never reach a layer or an event.
/// The chat is the stanza's `from`; for a receipt from one of our own devices about a
/// one-to-one chat, its `recipient`. Stanzas from the server itself are never dropped.
pub type IgnoreJid = Arc<dyn Fn(&wa_binary::Jid) -> bool + Send + Sync>;

/// Decides whether a verified pairing is completed (whatsmeow's `PrePairCallback`): called
/// with the server's `<pair-success>` (our new JID and LID, the primary's platform and
/// business name) after its device identity verified and before anything is saved.
/// Returning `false` answers the server with the protocol's pairing error, so the phone
/// shows the link as failed, and keeps this socket unpaired (QR codes keep coming).
pub type PrePair = Arc<dyn Fn(&crate::PairSuccess) -> bool + Send + Sync>;

/// Decides whether the socket reconnects after a connection ended for a reason that is
/// not terminal (whatsmeow's `EnableAutoReconnect` / `AutoReconnectHook`): called with
/// the reason and how many reconnects failed in a row since the last open connection.
/// Returning `false` closes the socket for good with that reason, as
/// [`Socket::close`](crate::Socket::close) would; a new socket from the same store
/// starts over. A function returning `false` always turns reconnecting off.
pub type ReconnectHook = Arc<dyn Fn(DisconnectReason, u32) -> bool + Send + Sync>;

/// Everything a [`Socket`](crate::Socket) needs.
#[derive(Clone)]
pub struct SocketConfig {
    /// The account's storage: credentials, pre-keys, identities (the auth state).
    pub store: AccountStore,
    /// Websocket URL (`ws://` or `wss://`).
    pub ws_url: String,
    /// TLS configuration with the trusted roots for `wss://` (webpki roots when `None`).
    pub tls: Option<Arc<ClientConfig>>,
    /// Root key the server's Noise certificate chain must verify under.
    pub noise_root: PublicKey,
    /// HTTP CONNECT or SOCKS5 proxy for the websocket.
    pub proxy: Option<Proxy>,
    /// Deadline of the websocket connect and of the Noise handshake, each.
    pub connect_timeout: Duration,
    /// Interval between keep-alive pings.
    pub keep_alive_interval: Duration,
    /// How long a ping may stay unanswered, or a frame wait to be written, before the
    /// peer is declared dead (the connection then closes with
    /// [`DisconnectReason::TimedOut`](crate::DisconnectReason::TimedOut) and reconnects).
    pub keep_alive_timeout: Duration,
    /// Default deadline of [`Socket::query`](crate::Socket::query).
    pub query_timeout: Duration,
    /// Browser description.
    pub browser: Browser,
    /// Web client version.
    pub version: [u32; 3],
    /// Country code of the user agent.
    pub country_code: String,
    /// Push name announced at login.
    pub push_name: Option<String>,
    /// History-sync preferences.
    pub history: HistorySyncOptions,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// How long the first QR ref is shown.
    pub qr_first_timeout: Duration,
    /// How long each later QR ref is shown.
    pub qr_timeout: Duration,
    /// Bound of each subscriber's event queue (lagging subscribers lose the oldest events).
    pub event_capacity: usize,
    /// Pre-keys uploaded the first time.
    pub initial_pre_keys: u32,
    /// Pre-keys uploaded when the server runs low.
    pub pre_key_batch: u32,
    /// The server count below which pre-keys are uploaded.
    pub min_pre_keys: u32,
    /// Callback that returns a sent message, for upper layers.
    pub get_message: Option<GetMessage>,
    /// Chats whose stanzas are dropped unread (see [`IgnoreJid`]); `None` keeps all.
    pub ignore_jid: Option<IgnoreJid>,
    /// Extra headers of the websocket upgrade request, e.g. `User-Agent` (whatsmeow's
    /// `WebSocketHeaders`; see [`WsConnector::header`](crate::WsConnector::header) for
    /// the names that cannot be set).
    pub ws_headers: Vec<(String, String)>,
    /// Asked before a verified pairing is completed (see [`PrePair`]); `None` completes
    /// every verified pairing.
    pub pre_pair: Option<PrePair>,
    /// Asked before each reconnect (see [`ReconnectHook`]); `None` always reconnects
    /// after non-terminal reasons.
    pub reconnect: Option<ReconnectHook>,
    /// Put an in-memory read cache (bounded, with a TTL) in front of the store's backend.
    /// The socket then works on a store view of its own ([`Socket::store`](crate::Socket::store));
    /// write through that one, not through [`store`](Self::store), so the cache and what
    /// the feature layers keep in memory (see [`AccountStore::generation`]) see the writes.
    pub cache: Option<CacheConfig>,
    /// Bounds how many sockets sharing this semaphore connect and run the Noise handshake
    /// at the same time (a fleet of accounts starting together); `None` for no bound. A
    /// permit is held from the TCP connect until the handshake's last message is sent.
    pub handshake_limit: Option<Arc<tokio::sync::Semaphore>>,
}

impl SocketConfig {
    /// A configuration with the defaults and the given store.
    pub fn new(store: AccountStore) -> Self {
        Self {
            store,
            ws_url: DEFAULT_WS_URL.to_owned(),
            tls: None,
            noise_root: wa_noise::WA_ROOT_PUBLIC_KEY,
            proxy: None,
            connect_timeout: Duration::from_secs(20),
            keep_alive_interval: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(20),
            query_timeout: Duration::from_secs(60),
            browser: Browser::default(),
            version: DEFAULT_VERSION,
            country_code: "US".to_owned(),
            push_name: None,
            history: HistorySyncOptions::default(),
            backoff: Backoff::default(),
            qr_first_timeout: Duration::from_secs(60),
            qr_timeout: Duration::from_secs(20),
            event_capacity: 1024,
            initial_pre_keys: 812,
            pre_key_batch: 50,
            min_pre_keys: 5,
            get_message: None,
            ignore_jid: None,
            ws_headers: Vec::new(),
            pre_pair: None,
            reconnect: None,
            cache: None,
            handshake_limit: None,
        }
    }
}

impl fmt::Debug for SocketConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketConfig")
            .field("account", self.store.account())
            .field("ws_url", &self.ws_url)
            .field("proxy", &self.proxy)
            .field("browser", &self.browser)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A shared backend handle, so a cache can wrap a backend that is already behind an `Arc`.
#[derive(Debug)]
struct Shared(Arc<dyn Backend>);

impl Backend for Shared {
    fn get<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
        key: &'a str,
    ) -> StoreFuture<'a, Option<Bytes>> {
        self.0.get(account, role, scope, key)
    }

    fn list<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
    ) -> StoreFuture<'a, Vec<(String, Bytes)>> {
        self.0.list(account, role, scope)
    }

    fn commit<'a>(&'a self, account: &'a AccountId, ops: Vec<Op>) -> StoreFuture<'a, ()> {
        self.0.commit(account, ops)
    }

    fn delete_account<'a>(&'a self, account: &'a AccountId) -> StoreFuture<'a, ()> {
        self.0.delete_account(account)
    }

    fn accounts(&self) -> StoreFuture<'_, Vec<AccountId>> {
        self.0.accounts()
    }
}

/// The store the socket uses: the configured one, behind a cache when asked for.
pub(crate) fn effective_store(config: &SocketConfig) -> AccountStore {
    match &config.cache {
        Some(cache) => AccountStore::new(
            Arc::new(CachedBackend::new(
                Shared(config.store.backend().clone()),
                *cache,
            )),
            config.store.account().clone(),
        ),
        None => config.store.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairing::companion_platform_id;

    #[test]
    fn browser_presets_name_the_os_and_its_version() {
        let mac = Browser::mac_os("Safari");
        assert_eq!(
            (mac.os.as_str(), mac.version.as_str()),
            ("Mac OS", "14.4.1")
        );
        assert_eq!(companion_platform_id(&mac.os, &mac.browser), 6);
        let win = Browser::windows("Desktop");
        assert_eq!(
            (win.os.as_str(), win.version.as_str()),
            ("Windows", "10.0.22631")
        );
        assert_eq!(companion_platform_id(&win.os, &win.browser), 8);
        assert_eq!(Browser::default(), Browser::ubuntu("Chrome"));
        assert_eq!(Browser::default().version, "22.04.4");
    }
}
