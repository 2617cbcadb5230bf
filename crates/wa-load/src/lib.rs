#![doc = include_str!("../README.md")]

mod admin;
mod traffic;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;
use wa::{AccountId, ConnectionState, Event, Fleet, FleetEvent};

pub use admin::Admin;
pub use traffic::{Traffic, TrafficReport, load_text, parse_load_text};

/// Errors of the load tools.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The simulator's admin endpoint failed or answered with an error.
    #[error("admin {command}: {message}")]
    Admin {
        /// The admin command.
        command: String,
        /// What went wrong.
        message: String,
    },
    /// A library error.
    #[error(transparent)]
    Wa(#[from] wa::Error),
    /// Not every account reached `Open` in time.
    #[error("{open} of {total} accounts open after {waited:?}")]
    NotOpen {
        /// Accounts open.
        open: usize,
        /// Accounts started.
        total: usize,
        /// How long it waited.
        waited: Duration,
    },
    /// A bad argument.
    #[error("{0}")]
    Usage(String),
}

/// The resident set of this process, KiB: (current `VmRSS`, peak `VmHWM`). Zeros where
/// `/proc` is not available.
pub fn rss_kib() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The phone number of load account `i` (`1555` followed by seven digits).
pub fn phone_of(i: usize) -> String {
    format!("1555{i:07}")
}

/// The fleet account id of load account `i`.
///
/// # Panics
/// Never: the id is short ASCII.
pub fn account_of(i: usize) -> AccountId {
    // invariant: "acc" + digits is always a valid account id.
    AccountId::new(format!("acc{i}").as_str()).expect("a valid account id")
}

/// Starts `accounts` (id, phone) in `fleet` and links each one that shows a QR code with
/// `scan(phone, qr)` (at most `parallel_scans` at a time); returns how many were linked
/// by QR once every account is open, or [`Error::NotOpen`] after `timeout`. Progress is
/// reported to `progress(open, total)` every few seconds.
///
/// # Errors
/// [`Error::Wa`] when a socket cannot start, [`Error::NotOpen`] on timeout.
pub async fn start_and_link<S, F>(
    fleet: &Fleet,
    accounts: &[(AccountId, String)],
    scan: S,
    parallel_scans: usize,
    timeout: Duration,
    mut progress: impl FnMut(usize, usize),
) -> Result<usize, Error>
where
    S: Fn(String, String) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), Error>> + Send + 'static,
{
    let phones: Arc<HashMap<AccountId, String>> = Arc::new(accounts.iter().cloned().collect());
    let mut events = fleet.events();
    let scan = Arc::new(scan);
    let limit = Arc::new(Semaphore::new(parallel_scans.max(1)));
    let scanned = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Accounts with a scan in flight or done for the current connection; a failed scan
    // (an expired QR ref, a busy simulator) is forgotten, so the next QR code is scanned.
    let busy: Arc<std::sync::Mutex<std::collections::HashSet<AccountId>>> = Arc::default();
    let watcher = {
        let phones = phones.clone();
        let scanned = scanned.clone();
        tokio::spawn(async move {
            loop {
                let FleetEvent { account, event } = match events.recv().await {
                    Ok(e) => e,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                let Event::Connection(u) = event else {
                    continue;
                };
                if u.state == ConnectionState::Closed {
                    busy.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&account);
                    continue;
                }
                let Some(qr) = u.qr else { continue };
                let Some(phone) = phones.get(&account).cloned() else {
                    continue;
                };
                if !busy
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(account.clone())
                {
                    continue;
                }
                let (scan, limit, scanned, busy) =
                    (scan.clone(), limit.clone(), scanned.clone(), busy.clone());
                tokio::spawn(async move {
                    let Ok(_permit) = limit.acquire().await else {
                        return;
                    };
                    match scan(phone.clone(), qr).await {
                        Ok(()) => {
                            scanned.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(e) => {
                            tracing::warn!("scan for {phone} failed: {e}");
                            busy.lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .remove(&account);
                        }
                    }
                });
            }
        })
    };
    for (id, _) in accounts {
        fleet.start(id.clone())?;
    }
    let started = Instant::now();
    let total = accounts.len();
    let result = loop {
        let open = fleet.open_count();
        progress(open, total);
        if open >= total {
            break Ok(scanned.load(std::sync::atomic::Ordering::Relaxed));
        }
        if started.elapsed() > timeout {
            break Err(Error::NotOpen {
                open,
                total,
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    watcher.abort();
    result
}

/// The load index of a fleet account id made by [`account_of`].
pub fn index_of(account: &AccountId) -> Option<usize> {
    account.as_str().strip_prefix("acc")?.parse().ok()
}

/// Reports every load message any fleet account receives to `traffic`; the task ends
/// with the fleet's event stream and returns how many events it missed by lagging.
pub fn spawn_receiver(fleet: &Fleet, traffic: Arc<Traffic>) -> tokio::task::JoinHandle<u64> {
    let mut events = fleet.events();
    tokio::spawn(async move {
        let mut lagged = 0;
        loop {
            let FleetEvent { account, event } = match events.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    lagged += n;
                    tracing::warn!("the receiver lagged: {n} events missed");
                    continue;
                }
                Err(RecvError::Closed) => return lagged,
            };
            let up = match event {
                Event::MessagesUpsert(up) => up,
                Event::MessagesUpdate(updates) => {
                    for u in &updates {
                        if u.receipt == wa::ReceiptType::Retry {
                            traffic.retry();
                        }
                    }
                    continue;
                }
                Event::UndecryptableMessage(_) => {
                    traffic.undecryptable();
                    continue;
                }
                _ => continue,
            };
            let Some(receiver) = index_of(&account) else {
                continue;
            };
            for m in up.messages.iter().filter(|m| !m.key.from_me) {
                if let Some(text) = wa::message_text(&m.message) {
                    tracing::debug!("account {receiver} got {text:?} ({})", m.key.id);
                    traffic.received(receiver, text);
                }
            }
        }
    })
}

/// Makes `n / 4` groups among accounts `0..n` of `fleet` (none below four accounts),
/// each by its first member, for [`Drive::groups`]: group `g` holds accounts `g`, `g + 1`,
/// `g + n/4` and `g + n/2` (modulo `n`), so neighbouring groups share a member and the
/// first quarter of the accounts are in two groups each (the last quarter in none).
/// Returns each group's JID and members.
///
/// # Errors
/// A member that is not running, or the server refusing a group.
pub async fn make_groups(fleet: &Fleet, n: usize) -> Result<Vec<(wa::Jid, Vec<usize>)>, Error> {
    let count = n / 4;
    let mut groups = Vec::with_capacity(count);
    for g in 0..count {
        let mut members = Vec::new();
        for m in [g, g + 1, g + count, g + 2 * count] {
            if !members.contains(&(m % n)) {
                members.push(m % n);
            }
        }
        let creator = fleet
            .get(&account_of(members[0]))
            .ok_or_else(|| Error::Usage(format!("account {} is not running", members[0])))?;
        let others: Vec<wa::Jid> = members[1..]
            .iter()
            .map(|&m| wa::Jid::pn(phone_of(m)))
            .collect();
        let meta = creator
            .groups()
            .create(&format!("load {g}"), &others)
            .await
            .map_err(wa::Error::from)?;
        groups.push((meta.id.clone(), members));
    }
    Ok(groups)
}

/// How [`drive`] sends.
#[derive(Debug, Clone)]
pub struct Drive {
    /// Messages per second over all accounts.
    pub rate: f64,
    /// How long to send.
    pub duration: Duration,
    /// Sends in flight at most.
    pub in_flight: usize,
    /// Groups to send to as well: each group's JID and its members (account indexes).
    pub groups: Vec<(wa::Jid, Vec<usize>)>,
    /// With groups, one message in this many goes to a group (0: none does).
    pub group_every: u64,
}

/// Where one load message goes.
enum To {
    /// Another account.
    Account(usize),
    /// Group `.0` of [`Drive::groups`], for its members `.1` (the sender left out).
    Group(usize, Vec<usize>),
}

/// Sends load messages between `n` accounts of `fleet` (account `i` is [`account_of`]`(i)`
/// with phone [`phone_of`]`(i)`) at `drive.rate`, to a pseudo-random other account each,
/// or (one in `drive.group_every`) from a pseudo-random member of one of `drive.groups` to
/// that group; every send is recorded in `traffic` (failed ones as such). Returns the
/// number of sends that returned an error.
pub async fn drive(fleet: &Fleet, n: usize, drive: &Drive, traffic: &Arc<Traffic>) -> u64 {
    if n < 2 || drive.rate <= 0.0 {
        return 0;
    }
    let limit = Arc::new(Semaphore::new(drive.in_flight.max(1)));
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tick = Duration::from_millis(10);
    let per_tick = drive.rate * tick.as_secs_f64();
    let mut credit = 0.0;
    let mut seq: u64 = 0;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let started = Instant::now();
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = tokio::task::JoinSet::new();
    while started.elapsed() < drive.duration {
        ticker.tick().await;
        credit += per_tick;
        while credit >= 1.0 {
            credit -= 1.0;
            seq += 1;
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let group = (drive.group_every > 0
                && !drive.groups.is_empty()
                && seq.is_multiple_of(drive.group_every))
            .then(|| (rng as usize) % drive.groups.len());
            let (from, to) = match group {
                Some(g) => {
                    let members = &drive.groups[g].1;
                    let Some(&from) = members.get(((rng >> 32) as usize) % members.len().max(1))
                    else {
                        continue;
                    };
                    let others = members.iter().copied().filter(|&m| m != from).collect();
                    (from, To::Group(g, others))
                }
                None => {
                    let from = (seq as usize) % n;
                    (from, To::Account((from + 1 + (rng as usize) % (n - 1)) % n))
                }
            };
            let Some(sock) = fleet.get(&account_of(from)) else {
                continue;
            };
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            let to_jid = match to {
                To::Account(to) => {
                    traffic.sent(from, to, seq);
                    wa::Jid::pn(phone_of(to))
                }
                To::Group(g, others) => {
                    traffic.sent_to_group(from, g, &others, seq);
                    drive.groups[g].0.clone()
                }
            };
            let traffic = traffic.clone();
            let failures = failures.clone();
            tasks.spawn(async move {
                let body = wa::MessageContent::text(load_text(from, seq));
                let sent = sock.send_message(&to_jid, body).await;
                match &sent {
                    Ok(key) => tracing::debug!("{:?} sent as {}", load_text(from, seq), key.id),
                    Err(e) => tracing::debug!("{:?} not sent: {e}", load_text(from, seq)),
                }
                if sent.is_err() {
                    traffic.failed(from, seq);
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
    }
    while tasks.join_next().await.is_some() {}
    failures.load(std::sync::atomic::Ordering::Relaxed)
}

/// Waits until every message recorded in `traffic` arrived or `timeout` passed; returns
/// how many are still outstanding.
pub async fn settle(traffic: &Traffic, timeout: Duration) -> u64 {
    let started = Instant::now();
    loop {
        let left = traffic.outstanding();
        if left == 0 || started.elapsed() > timeout {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
