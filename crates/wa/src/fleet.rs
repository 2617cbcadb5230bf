//! [`Fleet`]: many accounts in one process over one store.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, broadcast, oneshot};
use tokio::task::JoinHandle;
use wa_store::{AccountId, AccountStore, Backend};
use wa_types::{ConnectionState, DisconnectReason, Event};

use crate::{Error, WaConfig, WaSocket, make_wa_socket};

/// Adjusts each account's [`WaConfig`] before its socket starts (server URL, browser,
/// timeouts, ...). The fleet has already set the shared handshake bound and the event
/// capacity; the hook may change anything.
pub type Configure = Arc<dyn Fn(&AccountId, &mut WaConfig) + Send + Sync>;

/// Settings of a [`Fleet`].
#[derive(Clone)]
#[non_exhaustive]
pub struct FleetConfig {
    /// How many accounts may connect and run the Noise handshake at the same time; the
    /// rest wait their turn (a fleet starting or reconnecting after an outage does not
    /// open thousands of handshakes at once).
    pub max_handshakes: usize,
    /// Each socket's event-bus capacity. An idle account's bus is allocated up front, so
    /// fleets keep it small; a slow reader loses the oldest events beyond it.
    pub event_capacity: usize,
    /// Capacity of the fleet-wide event stream ([`Fleet::events`]).
    pub fleet_event_capacity: usize,
    /// Each account's message workers (see `MessengerConfig::workers`): a fleet's
    /// accounts each see a small share of the traffic, so two are enough.
    pub message_workers: usize,
    /// Per-account configuration hook.
    pub configure: Option<Configure>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            max_handshakes: 32,
            event_capacity: 64,
            fleet_event_capacity: 4096,
            message_workers: 2,
            configure: None,
        }
    }
}

impl FleetConfig {
    /// The defaults, with `configure` applied to every account's configuration.
    pub fn with_configure(
        configure: impl Fn(&AccountId, &mut WaConfig) + Send + Sync + 'static,
    ) -> Self {
        Self {
            configure: Some(Arc::new(configure)),
            ..Self::default()
        }
    }
}

impl fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetConfig")
            .field("max_handshakes", &self.max_handshakes)
            .field("event_capacity", &self.event_capacity)
            .field("fleet_event_capacity", &self.fleet_event_capacity)
            .field("message_workers", &self.message_workers)
            .finish_non_exhaustive()
    }
}

/// One account's event, as the fleet-wide stream carries it.
#[derive(Debug, Clone)]
pub struct FleetEvent {
    /// The account the event belongs to.
    pub account: AccountId,
    /// The event.
    pub event: Event,
}

struct Running {
    socket: WaSocket,
    forward: JoinHandle<()>,
    /// Told by [`Fleet::stop`] once the closed account has reported everything, so the
    /// forwarder can pass on the last events and end.
    settled: oneshot::Sender<()>,
    /// Which start of the account this is, so a finished socket's forwarder never
    /// removes a later start of the same account.
    generation: u64,
}

struct FleetInner {
    backend: Arc<dyn Backend>,
    config: FleetConfig,
    handshakes: Arc<Semaphore>,
    accounts: Mutex<HashMap<AccountId, Running>>,
    events: broadcast::Sender<FleetEvent>,
    starts: std::sync::atomic::AtomicU64,
}

/// Starts, stops and supervises many accounts in one process over one store backend
/// (SQLite or PostgreSQL), sharing what can be shared: the backend, the TLS and HTTP
/// clients, the codec's token tables, and a bound on concurrent handshakes. Each account
/// is a full [`WaSocket`] that reconnects by itself; the fleet forgets an account whose
/// socket ended for good (logged out, replaced, ...), and its events reach
/// [`Fleet::events`] tagged with the account.
///
/// Cheap to clone. Dropping every handle does not stop the accounts; call
/// [`Fleet::shutdown`].
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<FleetInner>,
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("accounts", &self.len())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// A fleet over `backend`; no account runs yet.
    pub fn new(backend: Arc<dyn Backend>, config: FleetConfig) -> Self {
        let (events, _) = broadcast::channel(config.fleet_event_capacity.max(16));
        Self {
            inner: Arc::new(FleetInner {
                backend,
                handshakes: Arc::new(Semaphore::new(config.max_handshakes.max(1))),
                config,
                accounts: Mutex::new(HashMap::new()),
                events,
                starts: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// Every account of the backend that has saved credentials (linked or mid-link).
    ///
    /// # Errors
    /// The store's error.
    pub async fn stored_accounts(&self) -> Result<Vec<AccountId>, Error> {
        Ok(self.inner.backend.accounts().await?)
    }

    /// Starts every stored account that is not running yet; returns how many started.
    ///
    /// # Errors
    /// The store's or a socket's setup error (accounts started before it keep running).
    pub async fn start_stored(&self) -> Result<usize, Error> {
        let mut started = 0;
        for id in self.stored_accounts().await? {
            if self.get(&id).is_none() {
                self.start(id)?;
                started += 1;
            }
        }
        Ok(started)
    }

    /// Starts the account `id` (a new one shows QR codes on its events; see
    /// [`Fleet::events`], subscribed before this call) and returns its socket; an account already running is
    /// returned as it is.
    ///
    /// # Errors
    /// [`Error`] when the media HTTP client cannot be built.
    pub fn start(&self, id: AccountId) -> Result<WaSocket, Error> {
        let mut accounts = self.lock();
        if let Some(r) = accounts.get(&id) {
            return Ok(r.socket.clone());
        }
        let store = AccountStore::new(self.inner.backend.clone(), id.clone());
        let mut config = WaConfig::new(store);
        // No cache per account (its fixed cost would weigh on thousands of idle ones);
        // a fleet that wants one wraps its backend in a shared `CachedBackend`.
        config.socket.cache = None;
        config.socket.handshake_limit = Some(self.inner.handshakes.clone());
        config.socket.event_capacity = self.inner.config.event_capacity;
        config.messages.workers = self.inner.config.message_workers;
        if let Some(f) = &self.inner.config.configure {
            f(&id, &mut config);
        }
        let socket = make_wa_socket(config)?;
        let generation = self
            .inner
            .starts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (settled, settled_rx) = oneshot::channel();
        let forward = tokio::spawn(forward(
            Arc::downgrade(&self.inner),
            id.clone(),
            generation,
            socket.events(),
            settled_rx,
        ));
        accounts.insert(
            id,
            Running {
                socket: socket.clone(),
                forward,
                settled,
                generation,
            },
        );
        Ok(socket)
    }

    /// The running socket of `id`.
    pub fn get(&self, id: &AccountId) -> Option<WaSocket> {
        self.lock().get(id).map(|r| r.socket.clone())
    }

    /// The accounts running now.
    pub fn accounts(&self) -> Vec<AccountId> {
        self.lock().keys().cloned().collect()
    }

    /// How many accounts are running.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no account is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many running accounts are connected and logged in.
    pub fn open_count(&self) -> usize {
        self.lock()
            .values()
            .filter(|r| r.socket.socket().state() == ConnectionState::Open)
            .count()
    }

    /// How many accounts are connecting or running the Noise handshake right now (never
    /// more than [`FleetConfig::max_handshakes`]).
    pub fn handshakes_in_progress(&self) -> usize {
        self.inner
            .config
            .max_handshakes
            .max(1)
            .saturating_sub(self.inner.handshakes.available_permits())
    }

    /// Events of every account from now on, tagged with the account. The stream is
    /// bounded; a reader that falls behind loses the oldest events (and sees `Lagged`).
    pub fn events(&self) -> broadcast::Receiver<FleetEvent> {
        self.inner.events.subscribe()
    }

    /// Closes the account `id`'s socket (its credentials stay); `false` when it was not
    /// running. An orderly stop ([`WaSocket::close`]): when it returns, every message
    /// the account had received is processed and its events are on
    /// [`Fleet::events`].
    pub async fn stop(&self, id: &AccountId) -> bool {
        let running = self.lock().remove(id);
        match running {
            Some(r) => {
                Self::finish(r).await;
                true
            }
            None => false,
        }
    }

    /// Closes every account's socket, each in an orderly way as [`Fleet::stop`] does,
    /// all at once.
    pub async fn shutdown(&self) {
        let all: Vec<Running> = self.lock().drain().map(|(_, r)| r).collect();
        let stopping: Vec<JoinHandle<()>> = all
            .into_iter()
            .map(|r| tokio::spawn(Self::finish(r)))
            .collect();
        for s in stopping {
            let _ = s.await;
        }
    }

    /// Closes a socket in order, then waits for its forwarder to pass on the last events.
    async fn finish(r: Running) {
        r.socket.close().await;
        let _ = r.settled.send(());
        let mut forward = r.forward;
        if tokio::time::timeout(crate::CLOSE_GRACE, &mut forward)
            .await
            .is_err()
        {
            forward.abort();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, Running>> {
        self.inner
            .accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Copies one account's events to the fleet stream and forgets the account once its
/// socket ended for good. At that terminal event, what the account was still processing
/// is reported too: when the account ended on its own (logged out, banned, ...), this
/// settles its messenger; when [`Fleet::stop`] closed it, this waits for `settled`. Then
/// it passes on the events still queued and ends. It holds no handle to the socket, so a
/// dropped fleet still closes its accounts.
async fn forward(
    fleet: std::sync::Weak<FleetInner>,
    account: AccountId,
    generation: u64,
    mut events: crate::Events,
    settled: oneshot::Receiver<()>,
) {
    let pass_on = |inner: &FleetInner, event: Event| {
        let _ = inner.events.send(FleetEvent {
            account: account.clone(),
            event,
        });
    };
    while let Some(event) = events.next().await {
        let Some(inner) = fleet.upgrade() else { return };
        let terminal = matches!(
            &event,
            Event::Connection(u)
                if u.state == ConnectionState::Closed
                    && u.last_disconnect.is_some_and(DisconnectReason::is_terminal)
        );
        pass_on(&inner, event);
        if !terminal {
            continue;
        }
        let ended_alone = {
            let mut accounts = inner
                .accounts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if accounts
                .get(&account)
                .is_some_and(|r| r.generation == generation)
            {
                accounts.remove(&account)
            } else {
                None
            }
        };
        // Keep passing events on while the account finishes: its bus is bounded, and
        // what it reports meanwhile must not push out what came before.
        let finishing = tokio::time::timeout(crate::CLOSE_GRACE, async {
            match &ended_alone {
                Some(r) => r.socket.messages().settle().await,
                None => {
                    let _ = settled.await;
                }
            }
        });
        tokio::pin!(finishing);
        loop {
            tokio::select! {
                biased;
                event = events.next() => match event {
                    Some(event) => pass_on(&inner, event),
                    None => return,
                },
                done = &mut finishing => {
                    if done.is_err() {
                        tracing::warn!(%account, "ended account did not finish processing in time");
                    }
                    break;
                }
            }
        }
        while let Some(event) = events.try_next() {
            pass_on(&inner, event);
        }
        return;
    }
}
