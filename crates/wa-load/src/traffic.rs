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

/// One load message as sent.
struct Sent {
    /// The accounts it is for: the recipient, or a group's members but the sender.
    to: Vec<usize>,
    /// The group it went to (an index the caller chose), if any.
    group: Option<usize>,
    at: Instant,
    /// Whether the send reported an error.
    failed: bool,
}

#[derive(Default)]
struct State {
    /// (sender, seq) -> the message.
    sent: HashMap<(usize, u64), Sent>,
    /// (sender, seq, receiver) -> deliveries.
    received: HashMap<(usize, u64, usize), u32>,
    latencies: Vec<Duration>,
    unknown: u64,
    retries: u64,
    undecryptable: u64,
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

/// A message [`Traffic`] recorded, as [`Traffic::messages`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The sending account.
    pub from: usize,
    /// Its sequence number.
    pub seq: u64,
    /// The accounts it is for: the recipient, or a group's members but the sender.
    pub to: Vec<usize>,
    /// The group it went to (the index given to [`Traffic::sent_to_group`]), if any.
    pub group: Option<usize>,
    /// Whether the send returned an error.
    pub failed: bool,
}

/// The outcome of a load or soak run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficReport {
    /// Messages the server accepted.
    pub sent: u64,
    /// Sends that returned an error (not counted in `sent`; such a message may or may
    /// not arrive, both are correct).
    pub failed: u64,
    /// Distinct messages that reached every recipient.
    pub delivered: u64,
    /// Messages that never reached a recipient (or, to a group, one of its members).
    pub lost: u64,
    /// Deliveries beyond the first (the same message reported twice to one account).
    pub duplicated: u64,
    /// Load messages reported by an account that was not a recipient, or never sent.
    pub misrouted: u64,
    /// Median send-to-receive latency.
    pub p50: Duration,
    /// 99th-percentile send-to-receive latency.
    pub p99: Duration,
    /// Retry receipts the senders got (a recipient could not decrypt a message).
    pub retries: u64,
    /// Messages recipients reported they could not decrypt at first.
    pub undecryptable: u64,
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
        self.record(from, seq, vec![to], None);
    }

    /// Records that `from` sent message `seq` to group `group` (an index of the caller's
    /// choosing) whose other members are `to`, as [`Traffic::sent`] does.
    pub fn sent_to_group(&self, from: usize, group: usize, to: &[usize], seq: u64) {
        self.record(from, seq, to.to_vec(), Some(group));
    }

    fn record(&self, from: usize, seq: u64, to: Vec<usize>, group: Option<usize>) {
        let sent = Sent {
            to,
            group,
            at: Instant::now(),
            failed: false,
        };
        self.lock().sent.insert((from, seq), sent);
    }

    /// Marks message `seq` of `from` as failed: its send returned an error, so it may or
    /// may not arrive.
    pub fn failed(&self, from: usize, seq: u64) {
        if let Some(e) = self.lock().sent.get_mut(&(from, seq)) {
            e.failed = true;
        }
    }

    /// Records that account `receiver` reported a message with `text`; other texts are
    /// ignored.
    pub fn received(&self, receiver: usize, text: &str) {
        let Some((from, seq)) = parse_load_text(text) else {
            return;
        };
        let mut s = self.lock();
        let at = s.sent.get(&(from, seq)).map(|m| m.at);
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

    /// Records that a recipient could not decrypt a message (at first).
    pub fn undecryptable(&self) {
        self.lock().undecryptable += 1;
    }

    /// Every message sent.
    pub fn messages(&self) -> Vec<SentMessage> {
        self.lock()
            .sent
            .iter()
            .map(|((from, seq), m)| SentMessage {
                from: *from,
                seq: *seq,
                to: m.to.clone(),
                group: m.group,
                failed: m.failed,
            })
            .collect()
    }

    /// The messages sent without an error that some recipient has not reported yet,
    /// each with `to` narrowed to those recipients.
    pub fn undelivered(&self) -> Vec<SentMessage> {
        let s = self.lock();
        s.sent
            .iter()
            .filter(|(_, m)| !m.failed)
            .filter_map(|(&(from, seq), m)| {
                let to: Vec<usize> =
                    m.to.iter()
                        .copied()
                        .filter(|to| !s.received.contains_key(&(from, seq, *to)))
                        .collect();
                (!to.is_empty()).then_some(SentMessage {
                    from,
                    seq,
                    to,
                    group: m.group,
                    failed: false,
                })
            })
            .collect()
    }

    /// The messages some account reported more than once: (sender, seq, account, times).
    pub fn duplicates(&self) -> Vec<(usize, u64, usize, u32)> {
        self.lock()
            .received
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(&(from, seq, receiver), &n)| (from, seq, receiver, n))
            .collect()
    }

    /// Messages sent (without an error) but not yet received by every recipient.
    pub fn outstanding(&self) -> u64 {
        let s = self.lock();
        s.sent
            .iter()
            .filter(|&(&(from, seq), m)| !m.failed && !s.reached_all(from, seq, m))
            .count() as u64
    }

    /// The report so far.
    pub fn report(&self) -> TrafficReport {
        let mut s = self.lock();
        let mut delivered = 0;
        let mut lost = 0;
        let mut failed = 0;
        for (&(from, seq), m) in &s.sent {
            if m.failed {
                failed += 1;
            } else if s.reached_all(from, seq, m) {
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
                .is_some_and(|m| !m.to.contains(receiver))
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
            undecryptable: s.undecryptable,
        }
    }
}

impl State {
    /// Whether message `seq` of `from` reached every account it is for.
    fn reached_all(&self, from: usize, seq: u64, m: &Sent) -> bool {
        m.to.iter()
            .all(|to| self.received.contains_key(&(from, seq, *to)))
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

    #[test]
    fn a_group_message_is_delivered_once_every_member_has_it() {
        let t = Traffic::new();
        t.sent_to_group(0, 7, &[1, 2, 3], 1);
        t.received(1, &load_text(0, 1));
        t.received(2, &load_text(0, 1));
        let r = t.report();
        assert_eq!((r.sent, r.delivered, r.lost), (1, 0, 1));
        assert_eq!(t.outstanding(), 1);
        let missing = t.undelivered();
        assert_eq!(missing.len(), 1);
        assert_eq!((missing[0].from, missing[0].seq), (0, 1));
        assert_eq!(missing[0].to, [3]);
        t.received(3, &load_text(0, 1));
        t.received(3, &load_text(0, 1));
        t.received(0, &load_text(0, 1));
        let r = t.report();
        assert_eq!((r.sent, r.delivered, r.lost), (1, 1, 0));
        assert_eq!((r.duplicated, r.misrouted), (1, 1));
        assert_eq!(t.duplicates(), [(0, 1, 3, 2)]);
        assert_eq!(t.outstanding(), 0);
        assert!(t.undelivered().is_empty());
        let m = t.messages();
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].to.clone(), m[0].group), (vec![1, 2, 3], Some(7)));
    }
}
