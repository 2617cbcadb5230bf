//! Simulator settings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::SimState;

/// How the pair-device refs of a registration connection are timed.
///
/// The server sends `refs` refs at once; the client shows the first for `first_ref`
/// and each later one for `later_ref`. A ref is accepted by a scan until its window
/// ends; when the last window ends, the server closes the connection (the client
/// reports it as a QR timeout, 408).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QrTiming {
    /// Lifetime of the first ref (real service: 60 s).
    pub first_ref: Duration,
    /// Lifetime of every later ref (real service: 20 s).
    pub later_ref: Duration,
    /// Number of refs (real service: 6).
    pub refs: usize,
}

impl Default for QrTiming {
    fn default() -> Self {
        Self {
            first_ref: Duration::from_secs(60),
            later_ref: Duration::from_secs(20),
            refs: 6,
        }
    }
}

impl QrTiming {
    /// The window end of ref `i`, measured from when the refs were sent.
    pub fn deadline(&self, i: usize) -> Duration {
        self.first_ref + self.later_ref * u32::try_from(i).unwrap_or(u32::MAX)
    }
}

/// Everything [`Sim::start`](crate::Sim::start) needs.
#[derive(Clone)]
pub struct SimConfig {
    /// Listen address (default `127.0.0.1:0`, an ephemeral port). The `/admin/`
    /// endpoints answer loopback peers only.
    pub addr: SocketAddr,
    /// TLS for `wss://` (and `https://` admin); `None` serves plain `ws://`.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// Accounts, devices and server keys (root key included). Pass the state of a
    /// previous run to restart with everything registered.
    pub state: SimState,
    /// QR ref timing.
    pub qr: QrTiming,
    /// Close a logged-in connection that sent nothing for this long (the real service
    /// drops silent clients); `None` never does.
    pub idle_timeout: Option<Duration>,
    /// Most time a client may take from TCP connect to the end of the Noise handshake.
    pub handshake_timeout: Duration,
    /// How long [`Sim::scan_qr`](crate::Sim::scan_qr) and
    /// [`Sim::enter_pairing_code`](crate::Sim::enter_pairing_code) wait for the companion,
    /// and how long a registration connection stays open waiting for its answer.
    pub pair_timeout: Duration,
    /// The `<platform name>` the simulated phones report in pair-success.
    pub phone_platform: String,
    /// Where the media host keeps uploaded blobs (a fresh directory is made inside and
    /// removed when the simulator stops); the system temp directory when `None`.
    pub media_dir: Option<std::path::PathBuf>,
    /// Most stanzas queued for one companion device (delivered but not acknowledged, or
    /// waiting for it to log in); at the bound the oldest is dropped and counted in
    /// [`Sim::dropped_stanzas`](crate::Sim::dropped_stanzas). Default 10,000.
    pub queue_limit: usize,
    /// Tasks that run the simulated phones' work (decrypting what is sent to them,
    /// receipts, retries). A phone is always served by the same task, so its stanzas
    /// keep their order; different phones proceed in parallel. Default: the number of
    /// CPUs the process may use; 0 is taken as 1.
    pub phone_workers: usize,
    /// Most messages a phone keeps in its inbox ([`Sim::phone_inbox`](crate::Sim::phone_inbox));
    /// beyond, the oldest is dropped. Default 1,000.
    pub phone_inbox: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            state: SimState::new(),
            qr: QrTiming::default(),
            idle_timeout: None,
            handshake_timeout: Duration::from_secs(20),
            pair_timeout: Duration::from_secs(20),
            phone_platform: "android".to_owned(),
            media_dir: None,
            queue_limit: crate::route::MAX_QUEUE,
            phone_workers: std::thread::available_parallelism().map_or(1, usize::from),
            phone_inbox: crate::e2e::MAX_INBOX,
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("state", &self.state)
            .field("qr", &self.qr)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl SimConfig {
    /// Default settings with the given listen address.
    pub fn with_addr(addr: SocketAddr) -> Self {
        Self {
            addr,
            ..Self::default()
        }
    }
}
