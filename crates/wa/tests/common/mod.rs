//! Setup shared by the facade's tests against wa-sim.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wa::prelude::*;
use wa_sim::Sim;

/// A fully wired socket for `phone` (an account the sim already has), linked by QR and
/// logged in.
pub async fn linked(sim: &Sim, phone: &str) -> WaSocket {
    linked_with(sim, phone, |_| ()).await
}

/// [`linked`], with `adjust` changing the configuration first.
pub async fn linked_with(sim: &Sim, phone: &str, adjust: impl FnOnce(&mut WaConfig)) -> WaSocket {
    let mut config = WaConfig::new(wa::memory_store(phone).unwrap());
    config.socket.ws_url = sim.ws_url();
    config.socket.noise_root = sim.root_public_key();
    config.media.https = false;
    adjust(&mut config);
    let sock = make_wa_socket(config).unwrap();
    let mut events = sock.events();
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut scanned = false;
        while let Some(event) = events.next().await {
            if let Event::Connection(u) = event {
                if let Some(qr) = u.qr.filter(|_| !scanned) {
                    sim.scan_qr(phone, &qr).await.expect("the scan succeeds");
                    scanned = true;
                }
                if scanned && u.state == ConnectionState::Open {
                    return;
                }
            }
        }
        panic!("event stream ended");
    })
    .await
    .expect("linked in time");
    sock
}

/// The message `id` once `events` reports it (within 20 s).
pub async fn received(events: &mut wa::Events, id: &str) -> WaMessage {
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(e) = events.next().await {
            if let Event::MessagesUpsert(u) = e
                && let Some(m) = u.messages.into_iter().find(|m| m.key.id == id)
            {
                return m;
            }
        }
        panic!("event stream ended")
    })
    .await
    .expect("received in time")
}

/// Runs `test` on a two-worker runtime whose threads have room for the debug build's
/// deep futures (the facade's calls nest many layers' futures), on a thread with a
/// large stack of its own.
pub fn run_with_big_stacks<F>(test: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    std::thread::Builder::new()
        .stack_size(32 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(8 << 20)
                .enable_all()
                .build()
                .unwrap()
                .block_on(test())
        })
        .unwrap()
        .join()
        .expect("the test ran to the end");
}

/// Waits (at most `within`) for an event `f` picks something out of.
pub async fn wait_for<T>(
    events: &mut wa::Events,
    within: Duration,
    mut f: impl FnMut(Event) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(within, async {
        while let Some(e) = events.next().await {
            if let Some(t) = f(e) {
                return Some(t);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// A text message.
pub fn text(s: &str) -> wa::proto::e2e::Message {
    wa::proto::e2e::Message {
        conversation: Some(s.into()),
        ..Default::default()
    }
}

/// Waits (at most `within`) until `sock` is open, panicking with `what` otherwise.
pub async fn until_open(sock: &WaSocket, within: Duration, what: &str) {
    let mut state = sock.socket().state_watch();
    tokio::time::timeout(within, async {
        while *state.borrow_and_update() != ConnectionState::Open {
            let _ = state.changed().await;
        }
    })
    .await
    .expect(what);
}

/// Panics seen anywhere in the process from now on (tokio catches a task's panic; the
/// hook still sees it).
pub fn count_panics() -> &'static AtomicUsize {
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
    &PANICS
}

/// A SQLite database file in the temporary directory, removed with its journal files
/// when dropped.
pub struct TempDb(pub std::path::PathBuf);

impl TempDb {
    /// A fresh path named after `name` and this process.
    pub fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!("wa-{name}-{}.db", std::process::id())))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}
