//! Bookkeeping of load messages: what was sent, what arrived where, and how late.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The body of load message `seq` from account `from`.
pub fn load_text(from: usize, seq: u64) -> String {
    format!("load {from} {seq}")
}

/// Parses a body made by the load tools back into (sender, sequence number).
pub fn parse_load_text(text: &str) -> Option<(usize, u64)> {
    let mut parts = text.strip_prefix("load ")?.split(' ');
    let from = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((from, seq))
}

#[derive(Default)]
struct State {
    /// (sender, seq) -> (recipient, when sent, whether the send reported an error).
    sent: HashMap<(usize, u64), (usize, Instant, bool)>,
    /// (sender, seq, receiver) -> deliveries.
    received: HashMap<(usize, u64, usize), u32>,
    latencies: Vec<Duration>,
    unknown: u64,
    retries: u64,
}

/// Counts load messages sent and received, shared by the sending and receiving tasks.
#[derive(Default)]
pub struct Traffic {
    state: Mutex<State>,
}

impl std::fmt::Debug for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traffic").finish_non_exhaustive()
    }
}

/// The outcome of a load or soak run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficReport {
    /// Messages the server accepted.
    pub sent: u64,
    /// Sends that returned an error (not counted in `sent`; such a message may or may
    /// not arrive, both are correct).
    pub failed: u64,
    /// Distinct messages that reached their recipient.
    pub delivered: u64,
    /// Messages that never reached their recipient.
    pub lost: u64,
    /// Deliveries beyond the first (the same message reported twice).
    pub duplicated: u64,
    /// Load messages reported by an account that was not their recipient, or never sent.
    pub misrouted: u64,
    /// Median send-to-receive latency.
    pub p50: Duration,
    /// 99th-percentile send-to-receive latency.
    pub p99: Duration,
    /// Retry receipts the senders got (a recipient could not decrypt a message).
    pub retries: u64,
}

impl Traffic {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `from` sent message `seq` to `to` (call before sending, so a fast
    /// delivery finds it).
    pub fn sent(&self, from: usize, to: usize, seq: u64) {
        self.lock()
            .sent
            .insert((from, seq), (to, Instant::now(), false));
    }

    /// Marks message `seq` of `from` as failed: its send returned an error, so it may or
    /// may not arrive.
    pub fn failed(&self, from: usize, seq: u64) {
        if let Some(e) = self.lock().sent.get_mut(&(from, seq)) {
            e.2 = true;
        }
    }

    /// Records that account `receiver` reported a message with `text`; other texts are
    /// ignored.
    pub fn received(&self, receiver: usize, text: &str) {
        let Some((from, seq)) = parse_load_text(text) else {
            return;
        };
        let mut s = self.lock();
        let at = s.sent.get(&(from, seq)).map(|(_, at, _)| *at);
        let n = s.received.entry((from, seq, receiver)).or_insert(0);
        *n += 1;
        if *n == 1
            && let Some(at) = at
        {
            s.latencies.push(at.elapsed());
        }
        if at.is_none() {
            s.unknown += 1;
        }
    }

    /// Records a retry receipt a sender got.
    pub fn retry(&self) {
        self.lock().retries += 1;
    }

    /// Every message sent: (sender, seq, recipient, whether the send returned an error).
    pub fn messages(&self) -> Vec<(usize, u64, usize, bool)> {
        self.lock()
            .sent
            .iter()
            .map(|((from, seq), (to, _, failed))| (*from, *seq, *to, *failed))
            .collect()
    }

    /// Messages sent but not yet received by their recipient.
    pub fn outstanding(&self) -> u64 {
        let s = self.lock();
        s.sent
            .iter()
            .filter(|((from, seq), (to, _, failed))| {
                !failed && !s.received.contains_key(&(*from, *seq, *to))
            })
            .count() as u64
    }

    /// The report so far.
    pub fn report(&self) -> TrafficReport {
        let mut s = self.lock();
        let mut delivered = 0;
        let mut lost = 0;
        let mut failed = 0;
        for ((from, seq), (to, _, send_failed)) in &s.sent {
            if *send_failed {
                failed += 1;
            } else if s.received.contains_key(&(*from, *seq, *to)) {
                delivered += 1;
            } else {
                lost += 1;
            }
        }
        let mut duplicated = 0;
        let mut misrouted = s.unknown;
        for ((from, seq, receiver), n) in &s.received {
            duplicated += u64::from(n.saturating_sub(1));
            if s.sent
                .get(&(*from, *seq))
                .is_some_and(|(to, _, _)| to != receiver)
            {
                misrouted += 1;
            }
        }
        s.latencies.sort_unstable();
        let pick = |q: f64| {
            if s.latencies.is_empty() {
                return Duration::ZERO;
            }
            let i = ((s.latencies.len() - 1) as f64 * q).round() as usize;
            s.latencies[i.min(s.latencies.len() - 1)]
        };
        TrafficReport {
            sent: s.sent.len() as u64 - failed,
            failed,
            delivered,
            lost,
            duplicated,
            misrouted,
            p50: pick(0.5),
            p99: pick(0.99),
            retries: s.retries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip_and_others_are_ignored() {
        assert_eq!(parse_load_text(&load_text(12, 345)), Some((12, 345)));
        assert_eq!(parse_load_text("hello"), None);
        assert_eq!(parse_load_text("load 1 2 3"), None);
        assert_eq!(parse_load_text("load x 2"), None);
    }

    #[test]
    fn report_counts_lost_duplicated_and_misrouted() {
        let t = Traffic::new();
        t.sent(0, 1, 1);
        t.sent(0, 1, 2);
        t.sent(1, 0, 1);
        t.sent(1, 0, 2);
        t.failed(1, 2);
        t.received(1, &load_text(0, 1));
        t.received(1, &load_text(0, 1));
        t.received(2, &load_text(1, 1));
        t.received(2, "not a load message");
        let r = t.report();
        assert_eq!(r.sent, 3);
        assert_eq!(r.failed, 1);
        assert_eq!(r.delivered, 1);
        assert_eq!(r.lost, 2);
        assert_eq!(r.duplicated, 1);
        assert_eq!(r.misrouted, 1);
        assert_eq!(t.outstanding(), 2);
    }
}
