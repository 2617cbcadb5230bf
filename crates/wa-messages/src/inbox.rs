//! The inbox: every received message is stored, encoded as the event that reports it, in
//! the same store batch as its processed marker, and deleted once that event is on the
//! event bus. A process that stops in between (a crash, a kill) reports what it left
//! there after its next start, so a message acknowledged to the server is never lost to
//! the application: it is reported at least once.
//!
//! Deleting is cheap: the keys of reported messages wait in memory and ride along with
//! the next receive commit; a flusher commits what is left after a short pause
//! ([`FLUSH_DELAY`]), and [`crate::Messenger::settle`] commits the rest at once (trying
//! again for a moment if the store refuses). A crash within that pause reports those
//! messages a second time after the restart (their key ids tell them apart).

use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use tracing::{debug, info, warn};
use wa_binary::Jid;
use wa_proto::e2e::Message;
use wa_store::{Batch, InboxStore as _};
use wa_types::{MessageKey, WaMessage};

use crate::messenger::Inner;

/// How long the keys of reported messages wait for a receive commit to carry their
/// deletion before the flusher commits them by themselves.
pub(crate) const FLUSH_DELAY: Duration = Duration::from_millis(50);

/// Most keys waiting for deletion; beyond it they are committed at once.
const MAX_WAITING: usize = 4_096;

/// Format version of a stored record.
const VERSION: u8 = 1;

const FROM_ME: u8 = 1;
const OFFLINE: u8 = 2;
const PARTICIPANT: u8 = 4;
const SENDER_ALT: u8 = 8;
const PUSH_NAME: u8 = 16;

/// In-memory side of the inbox: the next key and the keys of reported messages not yet
/// deleted from the store.
#[derive(Default)]
pub(crate) struct Inbox {
    last: AtomicU64,
    reported: StdMutex<Vec<String>>,
    /// Held across a flush (take, commit, give back on failure), so a flush that finds
    /// nothing waiting knows no other flush still holds keys it may give back.
    flushing: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
    resumed: tokio::sync::OnceCell<()>,
}

impl Inbox {
    /// A new key, after every key this process handed out before and, across restarts,
    /// ordered by time (microseconds since the epoch, hexadecimal, fixed width).
    pub(crate) fn next_key(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let prev = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(now.max(last.saturating_add(1)))
            })
            .unwrap_or_else(|v| v);
        format!("{:016x}", now.max(prev.saturating_add(1)))
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes that the messages stored under `keys` are on the event bus.
    pub(crate) fn reported(&self, keys: impl IntoIterator<Item = String>) {
        let mut waiting = self.waiting();
        let was_empty = waiting.is_empty();
        waiting.extend(keys);
        if was_empty && !waiting.is_empty() || waiting.len() >= MAX_WAITING {
            self.wake.notify_one();
        }
    }

    /// Moves the deletions waiting into `batch`; the keys are returned so a failed commit
    /// can give them back with [`Inbox::reported`].
    pub(crate) fn take_into(&self, batch: &mut Batch) -> Vec<String> {
        let keys = std::mem::take(&mut *self.waiting());
        for k in &keys {
            batch.delete_inbox(k);
        }
        keys
    }
}

/// Stores `message` (the event as it will be reported) under a new inbox key in `batch`;
/// returns the key.
pub(crate) fn stage(inbox: &Inbox, batch: &mut Batch, message: &WaMessage, now: i64) -> String {
    let key = inbox.next_key();
    batch.put_inbox(&key, &encode(message), now);
    key
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

/// The stored form of a reported message: a version byte, flags, the timestamp (8 bytes,
/// big-endian), the key's chat and id, the sender, then the participant, the sender's
/// other address and the push name when present (each a 2-byte big-endian length and
/// UTF-8), then the encoded `Message`.
pub(crate) fn encode(m: &WaMessage) -> Vec<u8> {
    let mut flags = 0;
    if m.key.from_me {
        flags |= FROM_ME;
    }
    if m.offline {
        flags |= OFFLINE;
    }
    if m.key.participant.is_some() {
        flags |= PARTICIPANT;
    }
    if m.sender_alt.is_some() {
        flags |= SENDER_ALT;
    }
    if m.push_name.is_some() {
        flags |= PUSH_NAME;
    }
    let mut out = Vec::with_capacity(128 + m.message.encoded_len());
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&m.timestamp.to_be_bytes());
    put_str(&mut out, &m.key.remote_jid.to_string());
    put_str(&mut out, &m.key.id);
    put_str(&mut out, &m.sender.to_string());
    if let Some(p) = &m.key.participant {
        put_str(&mut out, &p.to_string());
    }
    if let Some(a) = &m.sender_alt {
        put_str(&mut out, &a.to_string());
    }
    if let Some(n) = &m.push_name {
        put_str(&mut out, n);
    }
    m.message.encode_raw(&mut out);
    out
}

/// Why a stored record could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unreadable(&'static str);

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Unreadable> {
        if self.0.len() < n {
            return Err(Unreadable("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn str(&mut self) -> Result<&'a str, Unreadable> {
        let len = self.take(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        std::str::from_utf8(self.take(len)?).map_err(|_| Unreadable("text is not UTF-8"))
    }

    fn jid(&mut self) -> Result<Jid, Unreadable> {
        self.str()?.parse().map_err(|_| Unreadable("malformed JID"))
    }
}

/// Reads a record written by [`encode`].
pub(crate) fn decode(bytes: &[u8]) -> Result<WaMessage, Unreadable> {
    let mut r = Reader(bytes);
    let head = r.take(2)?;
    if head[0] != VERSION {
        return Err(Unreadable("unknown record version"));
    }
    let flags = head[1];
    let t = r.take(8)?;
    let timestamp = u64::from_be_bytes(t.try_into().map_err(|_| Unreadable("truncated"))?);
    let chat = r.jid()?;
    let id = r.str()?.to_owned();
    let sender = r.jid()?;
    let participant = if flags & PARTICIPANT != 0 {
        Some(r.jid()?)
    } else {
        None
    };
    let sender_alt = if flags & SENDER_ALT != 0 {
        Some(r.jid()?)
    } else {
        None
    };
    let push_name = if flags & PUSH_NAME != 0 {
        Some(r.str()?.to_owned())
    } else {
        None
    };
    let message = Message::decode(r.0).map_err(|_| Unreadable("malformed message"))?;
    let mut key = MessageKey::new(chat, flags & FROM_ME != 0, id);
    key.participant = participant;
    Ok(WaMessage {
        key,
        sender,
        sender_alt,
        push_name,
        timestamp,
        message: Arc::new(message),
        offline: flags & OFFLINE != 0,
        request_id: None,
        bot_edit: None,
    })
}

impl Inner {
    /// Commits the deletions waiting; a failure gives them back for the next try and
    /// returns `false`.
    pub(crate) async fn flush_inbox(&self) -> bool {
        let _flushing = self.inbox.flushing.lock().await;
        let mut batch = Batch::new();
        let keys = self.inbox.take_into(&mut batch);
        if keys.is_empty() {
            return true;
        }
        match self.socket.store().commit(batch).await {
            Ok(()) => true,
            Err(e) => {
                debug!("could not forget {} reported messages: {e}", keys.len());
                self.inbox.reported(keys);
                false
            }
        }
    }

    /// [`Inner::flush_inbox`] until it succeeds, a few times
    /// [`SHORT_STORE_RETRIES`](crate::messenger::SHORT_STORE_RETRIES) apart (an orderly
    /// stop: a store failing for a moment then causes no report twice); what is left is
    /// reported again after the next start.
    pub(crate) async fn flush_inbox_settling(&self) {
        for pause in crate::messenger::SHORT_STORE_RETRIES {
            if self.flush_inbox().await {
                return;
            }
            tokio::time::sleep(pause).await;
        }
        if !self.flush_inbox().await {
            warn!("reported messages left in the store; they are reported again after a restart");
        }
    }

    /// Runs forever: commits the deletions waiting [`FLUSH_DELAY`] after the first of them
    /// (unless a receive commit took them first).
    pub(crate) async fn inbox_flusher(&self) {
        loop {
            self.inbox.wake.notified().await;
            tokio::time::sleep(FLUSH_DELAY).await;
            // A failure gives the keys back, which wakes this loop again.
            let _ = self.flush_inbox().await;
        }
    }

    /// Reports what a previous process stored and did not report, once per messenger
    /// (concurrent callers wait for the first).
    pub(crate) async fn resume_inbox(&self) {
        self.inbox
            .resumed
            .get_or_init(|| async {
                let entries = match self.socket.store().inbox().await {
                    Ok(e) => e,
                    Err(e) => {
                        warn!("could not read the messages left unreported: {e}");
                        return;
                    }
                };
                if !entries.is_empty() {
                    info!("reporting {} messages left unreported", entries.len());
                }
                for (key, value) in entries {
                    // Closed for good: left stored for the next start.
                    if self.socket.is_stopped() {
                        return;
                    }
                    let record = match value {
                        Ok(v) => v,
                        Err(e) => {
                            warn!("unreported message {key} is unreadable: {e}");
                            continue;
                        }
                    };
                    match decode(&record) {
                        Ok(mut m) => {
                            m.offline = true;
                            if m.sender_alt.is_none() {
                                m.sender_alt =
                                    crate::recv::alternate_from_store(self, &m.sender).await;
                            }
                            self.report_received(m, Some(key)).await;
                        }
                        Err(e) => warn!("unreported message {key} is unreadable: {e}"),
                    }
                }
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_proto::e2e::ExtendedTextMessage;

    fn sample() -> WaMessage {
        WaMessage {
            key: MessageKey::new("120363000000000001@g.us".parse().unwrap(), false, "3EB0AB")
                .with_participant("15550001@s.whatsapp.net".parse().unwrap()),
            sender: "15550001:3@s.whatsapp.net".parse().unwrap(),
            sender_alt: Some("100000001:3@lid".parse().unwrap()),
            push_name: Some("Álice 🙂".into()),
            timestamp: 1_700_000_000,
            message: Arc::new(Message {
                extended_text_message: Some(Box::new(ExtendedTextMessage {
                    text: Some("hello".into()),
                    ..Default::default()
                })),
                ..Default::default()
            }),
            offline: true,
            request_id: None,
            bot_edit: None,
        }
    }

    #[test]
    fn records_round_trip() {
        let m = sample();
        assert_eq!(decode(&encode(&m)).unwrap(), m);
        let bare = WaMessage {
            key: MessageKey::new("15550002@s.whatsapp.net".parse().unwrap(), true, "X"),
            sender: "15550001@s.whatsapp.net".parse().unwrap(),
            sender_alt: None,
            push_name: None,
            timestamp: 0,
            message: Arc::new(Message::default()),
            offline: false,
            request_id: None,
            bot_edit: None,
        };
        assert_eq!(decode(&encode(&bare)).unwrap(), bare);
    }

    #[test]
    fn damaged_records_are_refused() {
        let bytes = encode(&sample());
        // Every truncation inside the header and strings is refused, never a panic.
        let header = bytes.len() - sample().message.encoded_len();
        for n in 0..header {
            assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes accepted");
        }
        let mut v = bytes.clone();
        v[0] = 9;
        assert_eq!(decode(&v), Err(Unreadable("unknown record version")));
        let mut v = bytes.clone();
        // The chat's first byte turned into an invalid UTF-8 byte.
        v[12] = 0xff;
        assert_eq!(decode(&v), Err(Unreadable("text is not UTF-8")));
        let mut v = bytes;
        v.push(0xff);
        assert_eq!(decode(&v), Err(Unreadable("malformed message")));
    }

    #[test]
    fn keys_increase_and_sort_in_order() {
        let inbox = Inbox::default();
        let keys: Vec<String> = (0..1000).map(|_| inbox.next_key()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, keys);
    }

    #[test]
    fn reported_keys_ride_along_with_a_batch() {
        let inbox = Inbox::default();
        inbox.reported(["a".to_owned(), "b".to_owned()]);
        let mut batch = Batch::new();
        assert_eq!(inbox.take_into(&mut batch), vec!["a", "b"]);
        assert_eq!(batch.len(), 2);
        let mut empty = Batch::new();
        assert!(inbox.take_into(&mut empty).is_empty());
        assert!(empty.is_empty());
    }
}
