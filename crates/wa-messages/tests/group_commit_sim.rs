//! Group commit. Messages a worker finds queued together (an offline backlog, a busy
//! chat) are decrypted under one hold of the Signal lock and committed together: nothing
//! is lost, repeated or reordered, and the messages of a group whose commit fails are
//! handled again one by one, so only one that cannot be stored fails. Sends that queue for
//! the Signal lock are committed together: when their commit fails none of them leaves,
//! and each is encrypted again from the stored state and tried again; a send that cannot
//! be stored then fails, and the sessions go on from the last commit.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{WAIT, link, link_with, start_with, text_of, wait_until};
use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_messages::{MessageContent, MessengerConfig};
use wa_sim::{Fault, Sim, SimConfig, Target};
use wa_socket::{ConnectionState, Event};
use wa_store::testing::{Read, Tap, Tapped, done};
use wa_store::{AccountId, AccountStore, BoxFuture, Op, Role};
use wa_types::{ReceiptType, WaMessage};

const A: &str = "15550002001";
const B: &str = "15550002002";

/// Records how many processed markers (received messages) and sent-message records
/// (sends) each commit holds, and can fail the first commit holding more than one of
/// either.
#[derive(Debug, Default)]
struct Recording {
    markers_per_commit: Mutex<Vec<usize>>,
    sends_per_commit: Mutex<Vec<usize>>,
    fail_next_group: AtomicBool,
    fail_next_send_group: AtomicBool,
    failed: AtomicUsize,
    /// Makes each commit of sends take a few milliseconds, as a database's does.
    slow_sends: AtomicBool,
    /// Single and bulk reads of sessions.
    session_reads: AtomicUsize,
    bulk_session_reads: AtomicUsize,
    /// Refuses every commit with a key holding this text (writes that cannot be stored).
    poison: Mutex<Option<String>>,
    /// Refuses this many of the next commits of received messages (one or more each).
    fail_received: AtomicUsize,
    /// Refuses the next commit of session state alone (no received message, no sent
    /// one): the answer to a retry receipt, or a peer message.
    fail_next_resend: AtomicBool,
    /// Refuses every such commit while set.
    refuse_resends: AtomicBool,
    /// Refuses every commit of sends while set.
    refuse_sends: AtomicBool,
    /// Refuses this many of the next commits holding a send (one or more each).
    fail_next_sends: AtomicUsize,
    /// Refuses every commit of nothing but inbox deletions while set.
    refuse_inbox_deletes: AtomicBool,
    /// Run (once) when a commit records devices as holding our sender key.
    on_sender_key_sent: Mutex<Option<Hook>>,
}

/// Something a test runs from inside a commit.
struct Hook(Box<dyn FnOnce() + Send>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

/// The memory backend behind a [`Recording`].
type Recorded = Tapped<Recording>;

impl Tap for Recording {
    fn before_read(&self, role: Role, read: Read) -> BoxFuture<'_, ()> {
        let counter = match (role, read) {
            (Role::Session, Read::One) => &self.session_reads,
            (Role::Session, Read::Many(_)) => &self.bulk_session_reads,
            _ => return done(),
        };
        counter.fetch_add(1, Ordering::SeqCst);
        done()
    }
    fn before_commit<'a>(&'a self, ops: &'a [Op]) -> BoxFuture<'a, ()> {
        let count = |role: Role| {
            ops.iter()
                .filter(|op| matches!(op, Op::Put { role: r, .. } if *r == role))
                .count()
        };
        let (markers, sends) = (count(Role::ProcessedMessage), count(Role::SentMessage));
        let refuse = |n: usize| -> BoxFuture<'a, ()> {
            self.failed.fetch_add(n, Ordering::SeqCst);
            Box::pin(async {
                Err(wa_store::Error::backend(std::io::Error::other(
                    "injected commit failure",
                )))
            })
        };
        if let Some(poison) = self.poison.lock().unwrap().as_deref() {
            let poisoned = |op: &Op| match op {
                Op::Put { key, .. } | Op::Delete { key, .. } => key.contains(poison),
                _ => false,
            };
            if ops.iter().any(poisoned) {
                return refuse(markers);
            }
        }
        if ops.iter().any(|op| {
            matches!(
                op,
                Op::Put {
                    role: Role::SenderKeyMemory,
                    ..
                }
            )
        }) && let Some(hook) = self.on_sender_key_sent.lock().unwrap().take()
        {
            (hook.0)();
        }
        let only_inbox_deletes = !ops.is_empty()
            && ops.iter().all(|op| {
                matches!(
                    op,
                    Op::Delete {
                        role: Role::Inbox,
                        ..
                    }
                )
            });
        if only_inbox_deletes && self.refuse_inbox_deletes.load(Ordering::SeqCst) {
            return refuse(1);
        }
        if markers > 0
            && self
                .fail_received
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return refuse(markers);
        }
        if markers == 0
            && sends == 0
            && count(Role::Session) > 0
            && (self.refuse_resends.load(Ordering::SeqCst)
                || self.fail_next_resend.swap(false, Ordering::SeqCst))
        {
            return refuse(1);
        }
        if sends > 1 && self.fail_next_send_group.swap(false, Ordering::SeqCst)
            || sends > 0 && self.refuse_sends.load(Ordering::SeqCst)
            || sends > 0
                && self
                    .fail_next_sends
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
        {
            return refuse(sends);
        }
        if sends > 0 {
            self.sends_per_commit.lock().unwrap().push(sends);
            if self.slow_sends.load(Ordering::SeqCst) {
                return Box::pin(async {
                    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
                    Ok(())
                });
            }
        }
        if markers > 1 && self.fail_next_group.swap(false, Ordering::SeqCst) {
            return refuse(markers);
        }
        if markers > 0 {
            self.markers_per_commit.lock().unwrap().push(markers);
        }
        done()
    }
}

/// Collects upserts of messages from others until `n` distinct ids arrived; returns them
/// in the order reported, duplicates included.
async fn collect(events: &mut broadcast::Receiver<Event>, n: usize) -> Vec<WaMessage> {
    let mut got = Vec::new();
    let mut ids = HashSet::new();
    tokio::time::timeout(WAIT, async {
        while ids.len() < n {
            match events.recv().await {
                Ok(Event::MessagesUpsert(u)) => {
                    for m in u.messages.into_iter().filter(|m| !m.key.from_me) {
                        ids.insert(m.key.id.clone());
                        got.push(m);
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} of {n} messages arrived", ids.len()));
    got
}

/// Links a1 and b1 (b1 on `backend`) and takes b1 offline; returns the simulator, a1,
/// b1's store and b1's device JID.
async fn b1_offline(backend: Arc<Recorded>) -> (Sim, common::Client, AccountStore, Jid) {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let store = AccountStore::new(backend, AccountId::new("b1").unwrap());
    let a1 = link(&sim, A, common::memory_store("a1")).await;
    let b1 = link(&sim, B, store.clone()).await;
    let b_jid = b1.jid.clone();
    b1.socket.close().await;
    drop(b1);
    wait_until("b1 offline", || !sim.is_online(&b_jid)).await;
    (sim, a1, store, b_jid)
}

/// Sends `backlog 0` .. `backlog n-1` from a1 to B, one after another; returns their ids.
async fn send_backlog(a1: &common::Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let key = a1
            .messenger
            .send_message(&Jid::pn(B), MessageContent::text(format!("backlog {i}")))
            .await
            .unwrap();
        ids.push(key.id);
    }
    ids
}

/// Links a1 and b1 (b1 on `backend`), takes b1 offline, lets a1 send `n` texts, then
/// starts b1 again from its store with `mc`; returns what b1 reported and the ids sent.
async fn backlog(
    backend: Arc<Recorded>,
    n: usize,
    mc: MessengerConfig,
) -> (Vec<WaMessage>, Vec<String>, Sim) {
    let (sim, a1, store, b_jid) = b1_offline(backend).await;
    let ids = send_backlog(&a1, n).await;
    let (socket, _messenger, mut events) = start_with(&sim, store, mc);
    wa_testkit::next_update(&mut events, |u| u.state == ConnectionState::Open).await;
    let got = collect(&mut events, n).await;
    wait_until("queue drains", || sim.queued(&b_jid) == 0).await;
    drop(socket);
    drop(a1);
    (got, ids, sim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_committed_in_groups_and_reported_in_order() {
    let backend = Arc::new(Recorded::default());
    let (got, ids, _sim) = backlog(backend.clone(), 40, MessengerConfig::default()).await;
    let got_ids: Vec<&str> = got.iter().map(|m| m.key.id.as_str()).collect();
    assert_eq!(got_ids, ids.iter().map(String::as_str).collect::<Vec<_>>());
    for (i, m) in got.iter().enumerate() {
        assert_eq!(text_of(&m.message), Some(format!("backlog {i}").as_str()));
    }
    let commits = backend.tap().markers_per_commit.lock().unwrap().clone();
    assert_eq!(commits.iter().sum::<usize>(), 40, "{commits:?}");
    assert!(
        commits.len() < 40 && commits.iter().any(|&m| m > 1),
        "no two messages shared a commit: {commits:?}"
    );

    // One at a time when asked.
    let backend = Arc::new(Recorded::default());
    let mc = MessengerConfig {
        receive_batch: 1,
        ..MessengerConfig::default()
    };
    let (got, ids, _sim) = backlog(backend.clone(), 10, mc).await;
    assert_eq!(got.len(), ids.len());
    let commits = backend.tap().markers_per_commit.lock().unwrap().clone();
    assert_eq!(commits, vec![1; 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_confirmed_with_merged_delivery_receipts() {
    let (sim, mut a1, store, b_jid) = b1_offline(Arc::new(Recorded::default())).await;
    let ids: HashSet<String> = send_backlog(&a1, 40).await.into_iter().collect();
    let (_socket, _messenger, mut events) = start_with(&sim, store, MessengerConfig::default());
    wa_testkit::next_update(&mut events, |u| u.state == ConnectionState::Open).await;
    assert_eq!(collect(&mut events, 40).await.len(), 40);
    // Every message is confirmed to the sender by b1, in fewer receipts than messages.
    let mut delivered = HashSet::new();
    let mut receipts = 0;
    tokio::time::timeout(WAIT, async {
        while delivered.len() < ids.len() {
            match a1.events.recv().await {
                Ok(Event::MessagesUpdate(updates)) => {
                    let from_b1: Vec<_> = updates
                        .iter()
                        .filter(|u| u.device == b_jid && u.receipt == ReceiptType::Delivered)
                        .collect();
                    receipts += usize::from(!from_b1.is_empty());
                    delivered.extend(from_b1.into_iter().map(|u| u.key.id.clone()));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} of 40 confirmed by b1", delivered.len()));
    assert_eq!(delivered, ids);
    assert!(receipts < 40, "{receipts} receipts for 40 messages");
    // The server settled every message the merged receipts name.
    wait_until("queue drains", || sim.queued(&b_jid) == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_commit_fails_arrives_again_once() {
    let backend = Arc::new(Recorded::default());
    backend.tap().fail_next_group.store(true, Ordering::SeqCst);
    let (got, ids, _sim) = backlog(backend.clone(), 40, MessengerConfig::default()).await;
    let failed = backend.tap().failed.load(Ordering::SeqCst);
    assert!(failed > 1, "no group commit failed");
    // Every message reported exactly once: the failed group's were handled again one by
    // one (the fault has passed), each in a commit of its own.
    let mut seen = HashSet::new();
    for m in &got {
        assert!(seen.insert(m.key.id.clone()), "{} reported twice", m.key.id);
    }
    assert_eq!(seen, ids.into_iter().collect::<HashSet<_>>());
    let commits = backend.tap().markers_per_commit.lock().unwrap().clone();
    assert_eq!(commits.iter().sum::<usize>(), 40, "{commits:?}");
    assert!(
        commits.iter().filter(|&&m| m == 1).count() >= failed,
        "{failed} failed, then {commits:?}"
    );
}

/// A message whose writes cannot be stored (here a store refuses them: a fault no check
/// of the input foresaw) fails alone. The messages that shared its receive run, whose
/// commit failed with it, are handled again one by one: they arrive, and only the failed
/// one is answered with a retry receipt. (Before, the whole run got retry receipts and
/// depended on the sender to send it again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_writes_cannot_be_stored_fails_alone_in_its_run() {
    const POISON: &str = "3EB0BADBADBADBAD0000";
    const N: usize = 24;
    let backend = Arc::new(Recorded::default());
    *backend.tap().poison.lock().unwrap() = Some(POISON.to_owned());
    let (sim, mut a1, store, _) = b1_offline(backend.clone()).await;
    // A backlog with the message that cannot be stored in its middle.
    let mut ids = HashSet::new();
    for i in 0..N {
        if i == N / 2 {
            let poison = wa_proto::e2e::Message {
                conversation: Some("cannot be stored".into()),
                ..Default::default()
            };
            a1.messenger
                .relay_message(&Jid::pn(B), poison, POISON)
                .await
                .unwrap();
            continue;
        }
        let key = a1
            .messenger
            .send_message(&Jid::pn(B), MessageContent::text(format!("good {i}")))
            .await
            .unwrap();
        ids.insert(key.id);
    }
    // Short pauses between the tries at storing it: they are used up before its sender
    // is asked again.
    let mc = MessengerConfig {
        store_retries: vec![Duration::from_millis(20); 2],
        ..MessengerConfig::default()
    };
    let (_socket, _messenger, mut events) = start_with(&sim, store, mc);
    wa_testkit::next_update(&mut events, |u| u.state == ConnectionState::Open).await;
    let got = collect(&mut events, N - 1).await;
    let got_ids: HashSet<String> = got.iter().map(|m| m.key.id.clone()).collect();
    assert_eq!(got_ids, ids, "every other message arrives");
    assert_eq!(got.len(), N - 1, "and once");
    assert!(
        backend.tap().failed.load(Ordering::SeqCst) > 1,
        "the message failed a commit it shared with others"
    );
    // The retry receipts the sender got: the failed message's, and no other. They leave
    // in the run's order, so once the failed one's is in, the others' would be too.
    let mut retried = HashSet::new();
    tokio::time::timeout(WAIT, async {
        while !retried.contains(POISON) {
            if let Ok(Event::MessagesUpdate(updates)) = a1.events.recv().await {
                for u in updates {
                    if u.receipt == wa_types::ReceiptType::Retry {
                        retried.insert(u.key.id);
                    }
                }
            }
        }
    })
    .await
    .expect("the failed message is answered with a retry receipt");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    while let Ok(event) = a1.events.try_recv() {
        if let Event::MessagesUpdate(updates) = event {
            for u in updates {
                if u.receipt == wa_types::ReceiptType::Retry {
                    retried.insert(u.key.id);
                }
            }
        }
    }
    assert_eq!(retried, HashSet::from([POISON.to_owned()]));
    let commits = backend.tap().markers_per_commit.lock().unwrap().clone();
    assert_eq!(commits.iter().sum::<usize>(), N - 1, "{commits:?}");
}

/// The next `n` messages from others `events` reports (duplicates included); fails if
/// any message is reported undecryptable meanwhile.
async fn arrivals(events: &mut broadcast::Receiver<Event>, n: usize) -> Vec<WaMessage> {
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, async {
        while got.len() < n {
            match events.recv().await {
                Ok(Event::MessagesUpsert(u)) => {
                    got.extend(u.messages.into_iter().filter(|m| !m.key.from_me));
                }
                Ok(Event::UndecryptableMessage(m)) => panic!("undecryptable: {m:?}"),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} of {n} arrived", got.len()));
    got
}

/// Sends `n` texts from `a1` to `to` from `n` tasks at once; returns each send's result
/// with its text.
async fn burst(
    a1: &common::Client,
    to: &Jid,
    n: usize,
    tag: &str,
) -> Vec<(String, Result<wa_types::MessageKey, wa_messages::Error>)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (m, to) = (a1.messenger.clone(), to.clone());
            let text = format!("{tag} {i}");
            tokio::spawn(async move {
                let r = m
                    .send_message(&to, MessageContent::text(text.clone()))
                    .await;
                (text, r)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// A retry receipt whose answer cannot be committed at first is answered again a moment
/// later. The receiver nacked the message it could not store, so nothing else would bring
/// it: before, the message was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_whose_commit_fails_is_tried_again() {
    let sim = sim_ab().await;
    let ((a_backend, a_store), (b_backend, b_store)) = (recorded("a1"), recorded("b1"));
    let a1 = link(&sim, A, a_store).await;
    // b1 asks for a message it cannot store at once, without trying to store it again.
    let mc = MessengerConfig {
        store_retries: Vec::new(),
        ..MessengerConfig::default()
    };
    let mut b1 = link_with(&sim, B, b_store, mc).await;
    // b1 cannot store the message the first time, so it asks for it again; a1 cannot
    // store its first answer.
    b_backend.tap().fail_received.store(1, Ordering::SeqCst);
    a_backend
        .tap()
        .fail_next_resend
        .store(true, Ordering::SeqCst);
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("once more"))
        .await
        .unwrap();
    let got = collect(&mut b1.events, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key.id, key.id);
    assert_eq!(text_of(&got[0].message), Some("once more"));
    assert_eq!(b_backend.tap().failed.load(Ordering::SeqCst), 1);
    assert_eq!(a_backend.tap().failed.load(Ordering::SeqCst), 1);
}

/// A simulator with accounts A and B.
async fn sim_ab() -> Sim {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    sim
}

/// A recorded backend and the store of account `name` on it.
fn recorded(name: &str) -> (Arc<Recorded>, AccountStore) {
    let backend = Arc::new(Recorded::default());
    let store = AccountStore::new(backend.clone(), AccountId::new(name).unwrap());
    (backend, store)
}

/// Fails if `events` reports a retry receipt within half a second.
async fn assert_no_retries(events: &mut broadcast::Receiver<Event>) {
    let mut ids = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(event) = tokio::time::timeout_at(deadline, events.recv()).await {
        match event {
            Ok(Event::MessagesUpdate(updates)) => ids.extend(
                updates
                    .into_iter()
                    .filter(|u| u.receipt == wa_types::ReceiptType::Retry)
                    .map(|u| u.key.id),
            ),
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => panic!("event stream ended: {e}"),
        }
    }
    assert!(ids.is_empty(), "messages asked for again: {ids:?}");
}

/// A message the store refuses for a moment (a database failing over) is decrypted and
/// committed again a little later, and acknowledged then: its sender is not asked for it
/// again. Before, each failure sent a retry receipt at once, and a store that failed for
/// longer than six round trips lost the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_store_refuses_for_a_moment_is_stored_on_a_later_try() {
    let sim = sim_ab().await;
    let mut a1 = link(&sim, A, common::memory_store("a1")).await;
    let (backend, store) = recorded("b1");
    let mc = MessengerConfig {
        store_retries: vec![Duration::from_millis(50); 3],
        ..MessengerConfig::default()
    };
    let mut b1 = link_with(&sim, B, store, mc).await;
    // The first try and two more fail; the last try stores it.
    backend.tap().fail_received.store(3, Ordering::SeqCst);
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("stored at last"))
        .await
        .unwrap();
    let got = collect(&mut b1.events, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key.id, key.id);
    assert_eq!(text_of(&got[0].message), Some("stored at last"));
    assert_eq!(backend.tap().failed.load(Ordering::SeqCst), 3);
    assert_no_retries(&mut a1.events).await;
    let again = common::count_upserts(&mut b1.events, &key.id, Duration::from_millis(300)).await;
    assert_eq!(again, 0, "reported more than once");
    wait_until("the message is acknowledged", || {
        sim.queued_messages(&b1.jid) == 0
    })
    .await;
}

/// A message waiting for another try at being stored when its socket is closed is left
/// to the server, which delivers it again to the next start from the store: it arrives
/// once, and its sender is not asked for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_waiting_for_the_store_at_a_stop_arrives_after_the_restart() {
    let sim = sim_ab().await;
    let mut a1 = link(&sim, A, common::memory_store("a1")).await;
    let (backend, store) = recorded("b1");
    let mc = MessengerConfig {
        store_retries: vec![Duration::from_secs(60)],
        ..MessengerConfig::default()
    };
    let b1 = link_with(&sim, B, store.clone(), mc).await;
    backend.tap().fail_received.store(1, Ordering::SeqCst);
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("after the restart"))
        .await
        .unwrap();
    wait_until("the first try fails", || {
        backend.tap().failed.load(Ordering::SeqCst) == 1
    })
    .await;
    let b_jid = b1.jid.clone();
    b1.socket.close().await;
    b1.messenger.settle().await;
    drop(b1);
    wait_until("b1 offline", || !sim.is_online(&b_jid)).await;
    assert_eq!(
        sim.queued_messages(&b_jid),
        1,
        "the message is still the server's"
    );
    let mut b1 = common::restart(&sim, store, b_jid).await;
    let got = collect(&mut b1.events, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key.id, key.id);
    let again = common::count_upserts(&mut b1.events, &key.id, Duration::from_millis(300)).await;
    assert_eq!(again, 0, "reported more than once");
    assert_no_retries(&mut a1.events).await;
}

/// A group message that carried our sender key to a member who could not store it at
/// once: the next message, sent meanwhile, cannot be opened there without the key. It
/// waits for the first to be stored instead of asking its sender, and both arrive with no
/// retry receipt. (Before, the second was asked for, its resend carried the key further
/// along the chain, and then the first failed as a duplicate and was asked for too.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_without_its_key_waits_for_the_one_that_carried_it() {
    let sim = sim_ab().await;
    let mut a1 = link(&sim, A, common::memory_store("a1")).await;
    let (backend, store) = recorded("b1");
    let mc = MessengerConfig {
        store_retries: vec![Duration::from_millis(300); 3],
        ..MessengerConfig::default()
    };
    let mut b1 = link_with(&sim, B, store, mc).await;
    let group = sim
        .phone_create_group(A, "late", &[Jid::pn(B)])
        .expect("group created");
    backend.tap().fail_received.store(1, Ordering::SeqCst);
    let first = a1
        .messenger
        .send_message(&group, MessageContent::text("carries the key"))
        .await
        .unwrap();
    wait_until("b1 fails to store the first", || {
        backend.tap().failed.load(Ordering::SeqCst) == 1
    })
    .await;
    let second = a1
        .messenger
        .send_message(&group, MessageContent::text("needs the key"))
        .await
        .unwrap();
    let got = collect(&mut b1.events, 2).await;
    let ids: Vec<&str> = got.iter().map(|m| m.key.id.as_str()).collect();
    assert_eq!(got.len(), 2, "{ids:?}");
    assert!(ids.contains(&first.id.as_str()) && ids.contains(&second.id.as_str()));
    assert_no_retries(&mut a1.events).await;
}

/// An orderly stop while the store refuses, for a moment, to forget the messages already
/// reported: the stop tries again, so they are not reported a second time after the
/// restart. Before, one failed try left them to be reported again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_the_store_fails_for_a_moment_reports_nothing_twice() {
    let sim = sim_ab().await;
    let a1 = link(&sim, A, common::memory_store("a1")).await;
    let (backend, store) = recorded("b1");
    let mut b1 = link(&sim, B, store.clone()).await;
    backend
        .tap()
        .refuse_inbox_deletes
        .store(true, Ordering::SeqCst);
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("reported once"))
        .await
        .unwrap();
    assert_eq!(collect(&mut b1.events, 1).await.len(), 1);
    wait_until("a deletion is refused", || {
        backend.tap().failed.load(Ordering::SeqCst) > 0
    })
    .await;
    let tap = backend.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        tap.tap()
            .refuse_inbox_deletes
            .store(false, Ordering::SeqCst);
    });
    let b_jid = b1.jid.clone();
    b1.socket.close().await;
    b1.messenger.settle().await;
    // Nothing of the old messenger runs on (its flusher included).
    drop(b1);
    wait_until("b1 offline", || !sim.is_online(&b_jid)).await;
    let mut b1 = common::restart(&sim, store, b_jid).await;
    let again = common::count_upserts(&mut b1.events, &key.id, Duration::from_millis(500)).await;
    assert_eq!(again, 0, "reported again after the restart");
}

/// A group send whose stanza never reaches the server after its commit recorded our
/// sender key as delivered: the record is taken back, so the next send distributes the
/// key again and the member opens it without asking. Before, every member needed a retry
/// receipt for the next message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_send_that_never_left_distributes_its_key_again() {
    let sim = Arc::new(sim_ab().await);
    let (backend, store) = recorded("a1");
    let mut a1 = link(&sim, A, store).await;
    let mut b1 = link(&sim, B, common::memory_store("b1")).await;
    let group = sim
        .phone_create_group(A, "lost", &[Jid::pn(B)])
        .expect("group created");
    // The connection goes as the first send's commit is made, before its stanza leaves.
    let (dropper, a_jid) = (sim.clone(), a1.jid.clone());
    *backend.tap().on_sender_key_sent.lock().unwrap() = Some(Hook(Box::new(move || {
        dropper.fault(Fault::Drop(Target::Device(a_jid)));
    })));
    let lost = a1
        .messenger
        .send_message(&group, MessageContent::text("never left"))
        .await;
    assert!(lost.is_err(), "{lost:?}");
    wait_until("a1 is back", || {
        a1.socket.state() == ConnectionState::Open && sim.is_online(&a1.jid)
    })
    .await;
    let key = a1
        .messenger
        .send_message(&group, MessageContent::text("opened at once"))
        .await
        .unwrap();
    let got = collect(&mut b1.events, 1).await;
    assert_eq!(got[0].key.id, key.id);
    assert_no_retries(&mut a1.events).await;
}

/// A retry receipt not answered yet when its socket is closed is not acknowledged, so
/// the server delivers it again to the next start, which answers it. Before, it was
/// acknowledged at once and the message was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_receipt_unanswered_at_a_stop_is_answered_after_the_restart() {
    let sim = sim_ab().await;
    let ((a_backend, a_store), (b_backend, b_store)) = (recorded("a1"), recorded("b1"));
    let a1 = link(&sim, A, a_store.clone()).await;
    let mc = MessengerConfig {
        store_retries: Vec::new(),
        ..MessengerConfig::default()
    };
    let mut b1 = link_with(&sim, B, b_store, mc).await;
    // b1 asks for the message again; a1 cannot store an answer until it has stopped.
    b_backend.tap().fail_received.store(1, Ordering::SeqCst);
    a_backend.tap().refuse_resends.store(true, Ordering::SeqCst);
    let key = a1
        .messenger
        .send_message(
            &Jid::pn(B),
            MessageContent::text("answered after a restart"),
        )
        .await
        .unwrap();
    wait_until("a1 fails to answer", || {
        a_backend.tap().failed.load(Ordering::SeqCst) >= 1
    })
    .await;
    let a_jid = a1.jid.clone();
    a1.socket.close().await;
    a1.messenger.settle().await;
    drop(a1);
    wait_until("a1 offline", || !sim.is_online(&a_jid)).await;
    a_backend
        .tap()
        .refuse_resends
        .store(false, Ordering::SeqCst);
    let _a1 = common::restart(&sim, a_store, a_jid).await;
    let got = collect(&mut b1.events, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key.id, key.id);
    assert_eq!(text_of(&got[0].message), Some("answered after a restart"));
}

/// A's companion on a recorded backend and B's, with sessions between them: a first
/// message sent and received, so later sends are plain ratchet steps. Returns it with
/// the sim, the backend (its record cleared) and the two clients.
async fn sessions_started() -> (
    Sim,
    Arc<Recorded>,
    common::Client,
    common::Client,
    wa_types::MessageKey,
) {
    let sim = sim_ab().await;
    let backend = Arc::new(Recorded::default());
    let a1 = link(
        &sim,
        A,
        AccountStore::new(backend.clone(), AccountId::new("a1").unwrap()),
    )
    .await;
    let mut b1 = link(&sim, B, common::memory_store("b1")).await;
    let first = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("hello"))
        .await
        .unwrap();
    collect(&mut b1.events, 1).await;
    backend.tap().sends_per_commit.lock().unwrap().clear();
    (sim, backend, a1, b1, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_commits_and_a_failed_group_leaves_no_trace() {
    let (_sim, backend, a1, mut b1, first) = sessions_started().await;

    let sent = burst(&a1, &Jid::pn(B), 32, "together").await;
    for (text, r) in &sent {
        assert!(r.is_ok(), "{text}: {r:?}");
    }
    let got = collect(&mut b1.events, 32).await;
    assert_eq!(got.len(), 32, "each message reported once");
    let commits = backend.tap().sends_per_commit.lock().unwrap().clone();
    assert_eq!(commits.iter().sum::<usize>(), 32, "{commits:?}");
    assert!(
        commits.len() < 32 && commits.iter().any(|&m| m > 1),
        "no two sends shared a commit: {commits:?}"
    );

    // A group whose commit fails: its sends are encrypted again from the stored state and
    // tried again, each arrives once.
    backend
        .tap()
        .fail_next_send_group
        .store(true, Ordering::SeqCst);
    let sent = burst(&a1, &Jid::pn(B), 32, "tried again").await;
    for (text, r) in &sent {
        assert!(r.is_ok(), "{text}: {r:?}");
    }
    assert!(
        backend.tap().failed.load(Ordering::SeqCst) > 1,
        "no group of sends failed"
    );
    let got = arrivals(&mut b1.events, 32).await;
    let ids: HashSet<String> = got.iter().map(|m| m.key.id.clone()).collect();
    assert_eq!(ids.len(), 32, "a message reported twice");
    let sent_ids: HashSet<String> = sent
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().map(|k| k.id.clone()))
        .collect();
    assert_eq!(ids, sent_ids);

    // A store that refuses sends for longer than their tries: they fail, none of them
    // reaches B, and the sends after it decrypt (the ratchet goes on from the last
    // commit).
    backend.tap().failed.store(0, Ordering::SeqCst);
    backend.tap().refuse_sends.store(true, Ordering::SeqCst);
    let sent = burst(&a1, &Jid::pn(B), 8, "failing").await;
    backend.tap().refuse_sends.store(false, Ordering::SeqCst);
    assert!(sent.iter().all(|(_, r)| r.is_err()), "{sent:?}");
    assert!(backend.tap().failed.load(Ordering::SeqCst) >= 8);
    let mut after = HashSet::new();
    for i in 0..3 {
        let k = a1
            .messenger
            .send_message(&Jid::pn(B), MessageContent::text(format!("after {i}")))
            .await
            .unwrap();
        assert_ne!(k.id, first.id);
        after.insert(k.id);
    }
    let got = arrivals(&mut b1.events, 3).await;
    let ids: HashSet<String> = got.iter().map(|m| m.key.id.clone()).collect();
    assert_eq!(ids, after);
    // Nothing more comes (no failed send was delivered late).
    let late = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        loop {
            match b1.events.recv().await {
                Ok(Event::MessagesUpsert(u)) if u.messages.iter().any(|m| !m.key.from_me) => {
                    return u.messages;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await;
    assert!(late.is_err(), "late message: {late:?}");
}

/// A status update and a peer message whose commit the store refuses once are encrypted
/// again from the stored state and sent on the next try, as other sends are. Before, the
/// caller got the store's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_update_and_a_peer_message_whose_commit_fails_are_tried_again() {
    let (_sim, backend, a1, mut b1, first) = sessions_started().await;
    backend.tap().fail_next_sends.store(1, Ordering::SeqCst);
    let key = a1
        .messenger
        .send_status(MessageContent::text("a story"), &[Jid::pn(B)])
        .await
        .expect("the status update is sent on the next try");
    assert_eq!(backend.tap().failed.load(Ordering::SeqCst), 1);
    let got = collect(&mut b1.events, 1).await;
    assert_eq!(got.len(), 1, "reported once");
    assert_eq!(got[0].key.id, key.id);
    assert!(got[0].key.remote_jid.is_status_broadcast());
    assert_eq!(text_of(&got[0].message), Some("a story"));

    // A peer message (to our phone, not kept for retries) commits session state alone.
    backend.tap().fail_next_resend.store(true, Ordering::SeqCst);
    a1.messenger
        .fetch_message_history(5, &first, 1_700_000_000)
        .await
        .expect("the peer message is sent on the next try");
    assert_eq!(backend.tap().failed.load(Ordering::SeqCst), 2);
}

/// The name under which `store` keeps its sessions with `user`'s devices: the LID
/// address once the user's LID is known, else the phone number.
async fn session_name(store: &AccountStore, user: &str) -> String {
    use wa_store::LidMappingStore as _;
    match store.lid_for_pn(user).await.unwrap() {
        Some(lid) => format!("{lid}_1"),
        None => user.to_owned(),
    }
}

/// The next sending index of `store`'s session with device `device` of `name`.
async fn sending_index(store: &AccountStore, name: &str, device: u32) -> u32 {
    use wa_store::SessionStore as _;
    let bytes = store
        .get_session(name, device)
        .await
        .unwrap()
        .expect("a session");
    wa_signal::SessionRecord::deserialize(&bytes)
        .unwrap()
        .sender_chain_index()
        .expect("a sending chain")
}

/// A send that finds a recipient device without a session fetches its bundle before it
/// encrypts anything, even while other sends' group is open: the sessions it has move on
/// by the one message key the message uses. Before, the first try encrypted for the
/// present sessions into the open group, then dropped those copies to fetch the bundle
/// and encrypted again; the group committed the dropped ratchet steps, so each present
/// session skipped a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_must_fetch_a_bundle_moves_present_sessions_on_once() {
    use wa_store::SessionStore as _;
    let (_sim, backend, a1, mut b1, _first) = sessions_started().await;
    // Groups of sends stay open a few milliseconds, as on a database.
    backend.tap().slow_sends.store(true, Ordering::SeqCst);
    let name = session_name(&a1.store, B).await;
    assert!(a1.store.get_session(&name, 0).await.unwrap().is_some());
    a1.store.delete_session(&name, 0).await.unwrap();
    let b1_device = u32::from(b1.jid.device);
    let before = sending_index(&a1.store, &name, b1_device).await;

    // Notes to self keep groups of sends open while the message to B goes.
    let stop = Arc::new(AtomicBool::new(false));
    let mut notes = Vec::new();
    for n in 0..3 {
        let (m, stop) = (a1.messenger.clone(), stop.clone());
        notes.push(tokio::spawn(async move {
            for i in 0.. {
                m.send_message(&Jid::pn(A), MessageContent::text(format!("note {n}/{i}")))
                    .await
                    .unwrap();
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("to B"))
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    for t in notes {
        t.await.unwrap();
    }
    let got = collect(&mut b1.events, 1).await;
    assert_eq!(got[0].key.id, key.id);
    assert!(
        a1.store.get_session(&name, 0).await.unwrap().is_some(),
        "a session with B's phone was started"
    );
    assert_eq!(
        sending_index(&a1.store, &name, b1_device).await,
        before + 1,
        "one message key used, none skipped"
    );
}

/// A send whose records could not be stored (an id or recipient too long to key them) is
/// refused before it joins a group of sends, so the sends it would have shared a commit
/// with go out. (Before, the 600-byte id failed the whole group: all 16 other sends, in
/// most runs.) An id over 128 bytes is refused too, as a receiver refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_cannot_be_stored_fails_alone() {
    let (_sim, backend, a1, mut b1, _first) = sessions_started().await;
    backend.tap().slow_sends.store(true, Ordering::SeqCst);
    let long_id = "3EB0".repeat(150);
    let long_user = Jid::pn("1".repeat(200));
    let bad: Vec<_> = [(Jid::pn(B), long_id.as_str()), (long_user, "3EB0CAFE")]
        .into_iter()
        .map(|(to, id)| {
            let (m, id) = (a1.messenger.clone(), id.to_owned());
            tokio::spawn(async move {
                m.relay_message(
                    &to,
                    wa_proto::e2e::Message {
                        conversation: Some("bad".into()),
                        ..Default::default()
                    },
                    &id,
                )
                .await
            })
        })
        .collect();
    let sent = burst(&a1, &Jid::pn(B), 16, "good").await;
    for t in bad {
        let r = t.await.unwrap();
        assert!(
            matches!(r, Err(wa_messages::Error::InvalidSend(_))),
            "{r:?}"
        );
    }
    for (text, r) in &sent {
        assert!(r.is_ok(), "{text}: {r:?}");
    }
    assert_eq!(backend.tap().failed.load(Ordering::SeqCst), 0);
    let got = collect(&mut b1.events, 16).await;
    assert_eq!(got.len(), 16);
}

/// Senders that each send one message after another keep sharing commits: a send
/// coming back to commit its group leaves the group opened after it to the sends that
/// joined that one, instead of committing it with one or two of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_senders_keep_sharing_commits() {
    const SENDERS: usize = 16;
    const EACH: usize = 8;
    let (_sim, backend, a1, mut b1, _) = sessions_started().await;
    backend.tap().slow_sends.store(true, Ordering::SeqCst);

    let tasks: Vec<_> = (0..SENDERS)
        .map(|s| {
            let m = a1.messenger.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    m.send_message(&Jid::pn(B), MessageContent::text(format!("{s} {i}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let got = collect(&mut b1.events, SENDERS * EACH).await;
    assert_eq!(got.len(), SENDERS * EACH, "each message reported once");
    let commits = backend.tap().sends_per_commit.lock().unwrap().clone();
    assert_eq!(commits.iter().sum::<usize>(), SENDERS * EACH, "{commits:?}");
    // One commit per about as many sends as there are senders (17 or 18 commits here);
    // committing later groups with the first sends that joined them took 30 to 46.
    assert!(
        commits.len() <= SENDERS * EACH / 5,
        "{} commits for {} sends: {commits:?}",
        commits.len(),
        SENDERS * EACH
    );
}

/// Sends to a group join the group commit too: sends to one group from many tasks at
/// once share commits, and each message arrives once and decrypts. A group whose commit
/// fails fails its sends, none of them leaves, and the sends after it decrypt (our
/// sender key goes on from the last commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_sends_share_commits() {
    const SENDS: usize = 16;
    let (sim, backend, a1, mut b1, _) = sessions_started().await;
    let group = sim
        .phone_create_group(A, "team", &[Jid::pn(B)])
        .expect("group created");
    // The first send distributes our sender key; the others only carry the `skmsg`.
    a1.messenger
        .send_message(&group, MessageContent::text("warm-up"))
        .await
        .unwrap();
    collect(&mut b1.events, 1).await;
    backend.tap().sends_per_commit.lock().unwrap().clear();
    backend.tap().slow_sends.store(true, Ordering::SeqCst);

    for (text, r) in burst(&a1, &group, SENDS, "team").await {
        assert!(r.is_ok(), "{text}: {r:?}");
    }
    let got = collect(&mut b1.events, SENDS).await;
    assert_eq!(got.len(), SENDS, "each message reported once");
    assert!(got.iter().all(|m| m.key.remote_jid == group));
    let texts: HashSet<String> = got
        .iter()
        .filter_map(|m| text_of(&m.message).map(str::to_owned))
        .collect();
    assert_eq!(texts.len(), SENDS, "{texts:?}");
    let commits = backend.tap().sends_per_commit.lock().unwrap().clone();
    assert_eq!(commits.iter().sum::<usize>(), SENDS, "{commits:?}");
    assert!(
        commits.len() < SENDS && commits.iter().any(|&m| m > 1),
        "no two group sends shared a commit: {commits:?}"
    );

    // A group of sends whose commit fails: each is tried again and arrives once.
    backend
        .tap()
        .fail_next_send_group
        .store(true, Ordering::SeqCst);
    let mut delivered = HashSet::new();
    for (text, r) in burst(&a1, &group, SENDS, "tried again").await {
        delivered.insert(r.unwrap_or_else(|e| panic!("{text}: {e}")).id);
    }
    assert!(
        backend.tap().failed.load(Ordering::SeqCst) > 1,
        "no group of sends failed"
    );
    // Sends the store refuses for longer than their tries fail and never arrive.
    backend.tap().refuse_sends.store(true, Ordering::SeqCst);
    let failing = burst(&a1, &group, 4, "failing").await;
    backend.tap().refuse_sends.store(false, Ordering::SeqCst);
    assert!(failing.iter().all(|(_, r)| r.is_err()), "{failing:?}");
    for i in 0..3 {
        let k = a1
            .messenger
            .send_message(&group, MessageContent::text(format!("after {i}")))
            .await
            .unwrap();
        delivered.insert(k.id);
    }
    let got = arrivals(&mut b1.events, delivered.len()).await;
    let ids: HashSet<String> = got.iter().map(|m| m.key.id.clone()).collect();
    assert_eq!(ids, delivered, "the committed sends arrive, each once");
    assert_eq!(got.len(), delivered.len(), "each once");
}

/// A backlog from several senders reaches a worker as one run: their sessions and
/// identities come in bulk reads, not one read per sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_from_several_senders_reads_their_sessions_in_bulk() {
    const SENDERS: [&str; 3] = [A, "15550002003", "15550002004"];
    const EACH: usize = 4;
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    for phone in SENDERS.iter().chain([&B]) {
        sim.add_account(phone).await;
    }
    let (backend, store) = recorded("b1");
    let mut senders = Vec::new();
    for (i, phone) in SENDERS.iter().enumerate() {
        senders.push(link(&sim, phone, common::memory_store(&format!("s{i}"))).await);
    }
    let b1 = link(&sim, B, store.clone()).await;
    let b_jid = b1.jid.clone();
    b1.socket.close().await;
    drop(b1);
    wait_until("b1 offline", || !sim.is_online(&b_jid)).await;
    for i in 0..EACH {
        for s in &senders {
            s.messenger
                .send_message(&Jid::pn(B), MessageContent::text(format!("backlog {i}")))
                .await
                .unwrap();
        }
    }
    backend.tap().session_reads.store(0, Ordering::SeqCst);
    backend.tap().bulk_session_reads.store(0, Ordering::SeqCst);
    let mc = MessengerConfig {
        workers: 1,
        ..MessengerConfig::default()
    };
    let (socket, _messenger, mut events) = start_with(&sim, store, mc);
    wa_testkit::next_update(&mut events, |u| u.state == ConnectionState::Open).await;
    let got = collect(&mut events, SENDERS.len() * EACH).await;
    assert_eq!(got.len(), SENDERS.len() * EACH);
    let single = backend.tap().session_reads.load(Ordering::SeqCst);
    let bulk = backend.tap().bulk_session_reads.load(Ordering::SeqCst);
    // A bulk read here; read one sender at a time, each sender's session costs a read
    // (three per run). Messages handled before the rest of the backlog arrived (a first
    // one, or more on a loaded machine) read alone.
    assert!(
        bulk >= 1 && single < SENDERS.len() * EACH,
        "{single} single and {bulk} bulk session reads"
    );
    drop(socket);
}
