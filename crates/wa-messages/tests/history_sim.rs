//! History sync end to end through wa-sim: the simulated phone sends a newly linked
//! companion an uploaded `INITIAL_BOOTSTRAP` chunk and an inline `PUSH_NAME` chunk; the
//! messenger downloads, verifies, inflates and decodes them, reports them, stores the
//! LID mappings and the own push name, and answers with `hist_sync` receipts; the end of
//! each sync phase is reported.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_media::{Media, MediaConfig};
use wa_messages::{HistorySyncFilter, Messenger, MessengerConfig};
use wa_proto::common::MessageKey as ProtoKey;
use wa_proto::e2e::Message;
use wa_proto::history_sync::{
    Conversation, HistorySync as ProtoHistory, HistorySyncMsg, PhoneNumberToLidMapping, Pushname,
};
use wa_proto::web::WebMessageInfo;
use wa_sim::{Sim, SimConfig};
use wa_socket::Event;
use wa_store::testing::{Read, Tap, Tapped, done};
use wa_store::{AccountId, AccountStore, BoxFuture, LidMappingStore, Op, PrivacyTokenStore, Role};
use wa_types::{
    HistorySync, HistorySyncErrorKind, HistorySyncFailure, HistorySyncPhase, HistorySyncStatus,
    HistorySyncType,
};

const A: &str = "15550000001";
const B: &str = "15550000002";
const B_LID: &str = "88880000002";
/// The privacy token B issued to A, as the seeded history carries it.
const BOB_TOKEN: &[u8] = b"token-from-bob";
/// The account's new-chat-thread salt, as the phone sends it in the bootstrap chunk.
const NCT_SALT: &[u8] = &[0x5a; 32];

/// Links a companion to `phone` with a memory store and a messenger that downloads
/// media over plain HTTP from the simulator.
async fn link(sim: &Sim, phone: &str, mc: MessengerConfig) -> Client {
    link_on(sim, phone, memory_store("history"), mc).await
}

/// [`link`] on `store`.
async fn link_on(sim: &Sim, phone: &str, store: AccountStore, mc: MessengerConfig) -> Client {
    link_using(sim, phone, store, |socket, usync| {
        let mut media_cfg = MediaConfig::default();
        media_cfg.https = false;
        let media = Media::new(socket.clone(), media_cfg).unwrap();
        Messenger::new(socket, usync, mc).with_media(media)
    })
    .await
}

fn text_info(chat: &str, from_me: bool, id: &str, text: &str, t: u64) -> HistorySyncMsg {
    HistorySyncMsg {
        message: Some(Box::new(WebMessageInfo {
            key: Some(ProtoKey {
                remote_jid: Some(chat.to_owned()),
                from_me: Some(from_me),
                id: Some(id.to_owned()),
                ..Default::default()
            }),
            message: Some(Box::new(Message {
                conversation: Some(text.to_owned()),
                ..Default::default()
            })),
            message_timestamp: Some(t),
            ..Default::default()
        })),
        msg_order_id: Some(t),
        ..Default::default()
    }
}

/// Two chats (B and a group), push names for B and the account itself, a LID mapping.
fn seed() -> ProtoHistory {
    let b = format!("{B}@s.whatsapp.net");
    let now = wa_socket::privacy_token::now() as u64;
    ProtoHistory {
        conversations: vec![
            Conversation {
                id: Some(b.clone()),
                name: Some("Bob".into()),
                unread_count: Some(1),
                tc_token: Some(BOB_TOKEN.to_vec()),
                tc_token_timestamp: Some(now - 60),
                tc_token_sender_timestamp: Some(now - 30),
                messages: vec![
                    text_info(&b, true, "SEEDED1", "hello bob", 1_700_000_000),
                    text_info(&b, false, "SEEDED2", "hi alice", 1_700_000_100),
                ],
                ..Default::default()
            },
            Conversation {
                id: Some("120363000000000001@g.us".into()),
                name: Some("Team".into()),
                archived: Some(true),
                ..Default::default()
            },
        ],
        pushnames: vec![
            Pushname {
                id: Some(b.clone()),
                pushname: Some("Bobby".into()),
                ..Default::default()
            },
            Pushname {
                id: Some(format!("{A}@s.whatsapp.net")),
                pushname: Some("Alice A.".into()),
                ..Default::default()
            },
        ],
        phone_number_to_lid_mappings: vec![
            // Too long to be a JID, and to store: skipped, without spoiling the others.
            PhoneNumberToLidMapping {
                pn_jid: Some(format!("{}@s.whatsapp.net", "1".repeat(600))),
                lid_jid: Some(format!("{}@lid", "2".repeat(600))),
                ..Default::default()
            },
            PhoneNumberToLidMapping {
                pn_jid: Some(b),
                lid_jid: Some(format!("{B_LID}@lid")),
                ..Default::default()
            },
        ],
        nct_salt: Some(NCT_SALT.to_vec()),
        ..Default::default()
    }
}

/// The (id, text) of every message in a history chunk, in order.
fn id_texts(h: &HistorySync) -> Vec<(&str, Option<&str>)> {
    h.data
        .messages
        .iter()
        .map(|m| {
            (
                m.info.key.as_ref().and_then(|k| k.id.as_deref()).unwrap(),
                m.info
                    .message
                    .as_ref()
                    .and_then(|m| m.conversation.as_deref()),
            )
        })
        .collect()
}

enum Got {
    Sync(std::sync::Arc<HistorySync>),
    Failed(HistorySyncFailure),
    /// LID mappings reported (stored before their chunk is reported; not counted).
    Mappings(Vec<wa_types::LidMapping>),
}

/// The next `n` history events (in arrival order), with the LID mappings reported
/// meanwhile.
async fn history_events(events: &mut broadcast::Receiver<Event>, n: usize) -> Vec<Got> {
    let fut = async {
        let mut out = Vec::new();
        let counted = |out: &Vec<Got>| {
            out.iter()
                .filter(|g| !matches!(g, Got::Mappings(_)))
                .count()
        };
        while counted(&out) < n {
            match events.recv().await {
                Ok(Event::HistorySync(h)) => out.push(Got::Sync(h)),
                Ok(Event::HistorySyncFailed(f)) => out.push(Got::Failed(f)),
                Ok(Event::LidMappings(m)) => out.push(Got::Mappings(m)),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
        out
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("history events in time")
}

fn split(got: Vec<Got>) -> (Vec<HistorySync>, Vec<HistorySyncFailure>) {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for g in got {
        match g {
            Got::Sync(s) => ok.push(std::sync::Arc::unwrap_or_clone(s)),
            Got::Failed(f) => failed.push(f),
            Got::Mappings(_) => {}
        }
    }
    (ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_receives_downloaded_and_inline_history() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    // A message the phone exchanged before the link: it joins the seeded chat with B.
    let earlier = sim
        .phone_send(
            A,
            &Jid::pn(B),
            Message {
                conversation: Some("sent from the phone".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    sim.seed_history(A, seed());
    let media_before = sim.media_count();

    let mut c = link(&sim, A, MessengerConfig::default()).await;
    let got = history_events(&mut c.events, 2).await;
    let learned = wa_types::LidMapping::of_users(B_LID, B);
    assert!(
        got.iter()
            .any(|g| matches!(g, Got::Mappings(m) if m.contains(&learned))),
        "the history's LID mapping is reported"
    );
    let (ok, failed) = split(got);
    assert!(failed.is_empty(), "{:?}", failed.first().map(|f| &f.detail));
    // One chunk was uploaded; processed, it is deleted from the media host in the
    // background. Once that delete is counted, nothing else is left on the host (the
    // two counters are read apart, so their sum is not checked while it runs).
    wait_until("the processed chunk deleted", || sim.media_deleted() == 1).await;
    assert_eq!(
        sim.media_count(),
        media_before,
        "one uploaded chunk, deleted"
    );

    let boot = ok
        .iter()
        .find(|h| h.notification_type == HistorySyncType::InitialBootstrap)
        .expect("the bootstrap chunk");
    assert!(!boot.inline, "the bootstrap chunk is downloaded");
    assert_eq!(boot.request_id, None, "unasked for");
    assert_eq!(boot.data.chunk_order, Some(1));
    let chats: Vec<&str> = boot.data.chats.iter().map(|c| c.id.as_str()).collect();
    assert!(chats.contains(&format!("{B}@s.whatsapp.net").as_str()));
    let group = boot
        .data
        .chats
        .iter()
        .find(|c| c.id == "120363000000000001@g.us")
        .expect("the seeded group chat");
    assert!(group.archived);
    assert_eq!(group.name.as_deref(), Some("Team"));
    let texts = id_texts(boot);
    assert!(texts.contains(&("SEEDED1", Some("hello bob"))));
    assert!(texts.contains(&("SEEDED2", Some("hi alice"))));
    assert!(texts.contains(&(earlier.as_str(), Some("sent from the phone"))));
    assert!(
        boot.data
            .contacts
            .iter()
            .any(|c| c.id == format!("{B}@s.whatsapp.net") && c.name.as_deref() == Some("Bob"))
    );

    let push = ok
        .iter()
        .find(|h| h.notification_type == HistorySyncType::PushName)
        .expect("the push-name chunk");
    assert!(push.inline, "the push-name chunk rides inline");
    assert!(
        push.data
            .contacts
            .iter()
            .any(|c| c.id == format!("{B}@s.whatsapp.net") && c.notify.as_deref() == Some("Bobby"))
    );

    // The mappings were stored, and the account's own push name saved in the creds.
    assert_eq!(c.store.lid_for_pn(B).await.unwrap().as_deref(), Some(B_LID));
    // B's privacy token was stored under B's LID, with when A last issued its own.
    assert_eq!(
        c.socket.privacy_token(&Jid::pn(B)).await.as_deref(),
        Some(BOB_TOKEN)
    );
    let record = c
        .store
        .get_privacy_token(&format!("{B_LID}@lid"))
        .await
        .unwrap()
        .expect("a record under the LID");
    assert_eq!(record.timestamp + 30, record.sender_timestamp);
    let creds = c.socket.auth().await.unwrap();
    assert_eq!(creds.push_name.as_deref(), Some("Alice A."));
    // So was the account's new-chat-thread salt.
    assert_eq!(creds.nct_salt.as_deref().map(Vec::as_slice), Some(NCT_SALT));

    // Both chunks were confirmed with hist_sync receipts naming their messages.
    wait_until("two hist_sync receipts", || {
        sim.hist_sync_receipts(A).len() == 2
    })
    .await;
    let mut sent: Vec<String> = sim
        .history_notifications(A)
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    let mut acked = sim.hist_sync_receipts(A);
    sent.sort();
    acked.sort();
    assert_eq!(sent, acked);
    let mut ids: Vec<&str> = ok.iter().map(|h| h.message_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, sent.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Holds the messenger's start-up listing of pending history notifications (the first
/// list of the sent-message role) until a notification is pending, holds the live path's
/// forgetting of a processed notification until that listing is read, and hands the
/// listing back only after the live path has forgotten both chunks: the listing names
/// notifications that are already done.
#[derive(Debug)]
struct LateListing {
    pending: tokio::sync::watch::Sender<usize>,
    listed: tokio::sync::watch::Sender<bool>,
    forgotten: tokio::sync::watch::Sender<usize>,
    listings: std::sync::atomic::AtomicUsize,
    /// What the held listing saw: notifications pending and forgotten when it was read,
    /// and forgotten when it was handed back.
    seen: std::sync::Mutex<Option<(usize, usize, usize)>>,
}

impl LateListing {
    fn new() -> Self {
        Self {
            pending: tokio::sync::watch::channel(0).0,
            forgotten: tokio::sync::watch::channel(0).0,
            listed: tokio::sync::watch::channel(false).0,
            listings: std::sync::atomic::AtomicUsize::new(0),
            seen: std::sync::Mutex::new(None),
        }
    }
}

const PENDING: &str = "history-sync@pending";

/// Whether a read is the first list of the sent-message role (a messenger's start-up
/// listing of pending history notifications), counting the lists in `listings`.
fn first_listing(listings: &std::sync::atomic::AtomicUsize, role: Role, read: Read) -> bool {
    (role, read) == (Role::SentMessage, Read::List)
        && listings.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
}

/// A hook that holds its store call until `rx`'s value passes `until` (at most
/// [`WAIT`]).
fn held_until<'a, T: Send + Sync + 'a>(
    mut rx: tokio::sync::watch::Receiver<T>,
    until: impl Fn(&T) -> bool + Send + 'a,
) -> BoxFuture<'a, ()> {
    Box::pin(async move {
        let _ = tokio::time::timeout(WAIT, rx.wait_for(until)).await;
        Ok(())
    })
}

impl Tap for LateListing {
    fn before_read(&self, role: Role, read: Read) -> BoxFuture<'_, ()> {
        if !first_listing(&self.listings, role, read) {
            return done();
        }
        held_until(self.pending.subscribe(), |n| *n > 0)
    }

    fn after_read(&self, role: Role, read: Read) -> BoxFuture<'_, ()> {
        if (role, read) != (Role::SentMessage, Read::List)
            || self.listings.load(std::sync::atomic::Ordering::SeqCst) != 1
        {
            return done();
        }
        let read_at = (*self.pending.borrow(), *self.forgotten.borrow());
        self.listed.send_replace(true);
        let mut forgotten = self.forgotten.subscribe();
        Box::pin(async move {
            let _ = tokio::time::timeout(WAIT, forgotten.wait_for(|n| *n >= 2)).await;
            let back = *forgotten.borrow();
            *self.seen.lock().unwrap() = Some((read_at.0, read_at.1, back));
            Ok(())
        })
    }

    fn before_commit<'a>(&'a self, ops: &'a [Op]) -> BoxFuture<'a, ()> {
        let forgets = ops.iter().any(
            |op| matches!(op, Op::Delete { role: Role::SentMessage, scope, .. } if scope == PENDING),
        );
        if !forgets {
            return done();
        }
        held_until(self.listed.subscribe(), |l| *l)
    }

    fn after_commit<'a>(&'a self, ops: &'a [Op]) -> BoxFuture<'a, ()> {
        for op in ops {
            match op {
                Op::Put {
                    role: Role::SentMessage,
                    scope,
                    ..
                } if scope == PENDING => {
                    self.pending.send_modify(|n| *n += 1);
                }
                Op::Delete {
                    role: Role::SentMessage,
                    scope,
                    ..
                } if scope == PENDING => {
                    self.forgotten.send_modify(|n| *n += 1);
                }
                _ => {}
            }
        }
        done()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_processed_live_is_not_resumed_again() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.seed_history(A, seed());
    let tap = std::sync::Arc::new(LateListing::new());
    let backend = std::sync::Arc::new(Tapped::new(wa_store::MemoryBackend::new(), tap.clone()));
    let store = AccountStore::new(backend, AccountId::new("history").unwrap());
    // Skipping keeps the live path short; each chunk is reported once either way.
    let mc = MessengerConfig {
        should_sync_history: HistorySyncFilter::none(),
        ..MessengerConfig::default()
    };
    let mut c = link_on(&sim, A, store, mc).await;
    wait_until("the held listing handed back", || {
        tap.seen.lock().unwrap().is_some()
    })
    .await;
    let (pending, forgotten_then, forgotten) = tap.seen.lock().unwrap().unwrap();
    assert!(
        pending > forgotten_then,
        "the listing was read while a notification was pending"
    );
    assert_eq!(
        forgotten, 2,
        "and handed back once the live path forgot both"
    );
    wait_until("two hist_sync receipts", || {
        sim.hist_sync_receipts(A).len() == 2
    })
    .await;
    // Whatever the start-up pass does with its listing, it does at once; a short quiet
    // wait catches a report it should not make.
    let mut skipped = Vec::new();
    let quiet = Duration::from_millis(500);
    while let Ok(got) = tokio::time::timeout(quiet, c.events.recv()).await {
        match got {
            Ok(Event::HistorySyncSkipped(s)) => skipped.push(s.message_id),
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => panic!("event stream ended: {e}"),
        }
    }
    skipped.sort();
    let mut acked = sim.hist_sync_receipts(A);
    acked.sort();
    assert_eq!(skipped, acked, "each chunk is reported once");
    assert!(
        c.store
            .list_items(Role::SentMessage, PENDING)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_that_refuses_skips_the_download_but_still_acknowledges() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.seed_history(A, seed());
    let mc = MessengerConfig {
        should_sync_history: HistorySyncFilter::none(),
        ..MessengerConfig::default()
    };
    let mut c = link(&sim, A, mc).await;
    wait_until("two hist_sync receipts", || {
        sim.hist_sync_receipts(A).len() == 2
    })
    .await;
    // Processing happens before the receipts, so any history event is already on the bus.
    let mut skipped = Vec::new();
    loop {
        match c.events.try_recv() {
            Ok(Event::HistorySync(_) | Event::HistorySyncFailed(_)) => {
                panic!("a refused chunk was processed")
            }
            Ok(Event::HistorySyncSkipped(s)) => skipped.push(*s),
            Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
    assert_eq!(c.store.lid_for_pn(B).await.unwrap(), None);
    assert_eq!(c.socket.auth().await.unwrap().push_name, None);

    // Each skipped chunk was reported, and is processed when the application asks.
    let mut ids: Vec<String> = skipped.iter().map(|s| s.message_id.clone()).collect();
    let mut acked = sim.hist_sync_receipts(A);
    ids.sort();
    acked.sort();
    assert_eq!(ids, acked, "every skipped chunk is reported");
    let boot = skipped
        .iter()
        .find(|s| s.notification_type == HistorySyncType::InitialBootstrap)
        .expect("the bootstrap chunk was skipped");
    let got = c
        .messenger
        .download_history(&boot.message_id, &boot.notification)
        .await
        .unwrap();
    assert!(!got.inline);
    assert_eq!(got.message_id, boot.message_id);
    assert!(id_texts(&got).contains(&("SEEDED1", Some("hello bob"))));
    // Processed as if synced on arrival: its facts are stored and it is reported.
    assert_eq!(c.store.lid_for_pn(B).await.unwrap().as_deref(), Some(B_LID));
    let events = history_events(&mut c.events, 1).await;
    assert!(
        events
            .iter()
            .any(|g| matches!(g, Got::Sync(h) if h.message_id == boot.message_id))
    );
    // Its blob is deleted once processed; asking again then fails, typed.
    wait_until("the processed blob deleted", || sim.media_deleted() == 1).await;
    match c
        .messenger
        .download_history(&boot.message_id, &boot.notification)
        .await
    {
        Err(wa_messages::Error::HistorySyncFailed(f)) => {
            assert_eq!(f.kind, HistorySyncErrorKind::Download, "{}", f.detail);
            assert_eq!(f.message_id, boot.message_id);
        }
        other => panic!("expected a failed download, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_history_blob_is_reported_and_the_rest_still_syncs() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.seed_history(A, seed());
    sim.corrupt_next_history(A);
    let mut c = link(&sim, A, MessengerConfig::default()).await;
    let (ok, failed) = split(history_events(&mut c.events, 2).await);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].kind, HistorySyncErrorKind::Verify);
    assert_eq!(
        failed[0].notification_type,
        HistorySyncType::InitialBootstrap
    );
    assert_eq!(failed[0].chunk_order, Some(1));
    // The inline push-name chunk is unaffected.
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].notification_type, HistorySyncType::PushName);
    // Nothing from the refused chunk was stored; both were still acknowledged.
    assert_eq!(c.store.lid_for_pn(B).await.unwrap(), None);
    wait_until("two hist_sync receipts", || {
        sim.hist_sync_receipts(A).len() == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_history_switched_on_nothing_is_sent() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    let _c = link(&sim, A, MessengerConfig::default()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sim.history_notifications(A).is_empty());
    assert!(sim.hist_sync_receipts(A).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_over_the_size_bound_are_refused() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.seed_history(A, seed());
    let mc = MessengerConfig {
        max_history_len: 16,
        ..MessengerConfig::default()
    };
    let mut c = link(&sim, A, mc).await;
    let (ok, failed) = split(history_events(&mut c.events, 2).await);
    assert!(ok.is_empty());
    assert_eq!(failed.len(), 2);
    assert!(
        failed
            .iter()
            .all(|f| f.kind == HistorySyncErrorKind::TooLarge)
    );
    wait_until("two hist_sync receipts", || {
        sim.hist_sync_receipts(A).len() == 2
    })
    .await;
}

/// A notification committed with its message but not processed (the process stopped in
/// between) waits in the store and is processed after the next login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisted_notification_is_processed_after_a_restart() {
    use prost::Message as _;
    use wa_store::SentMessageStore as _;

    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    // The first messenger's start-up listing is held until its socket is closed and the
    // notification below is stored: it then names that notification, which belongs to
    // the socket started next.
    let tap = std::sync::Arc::new(HeldListing::default());
    let backend = std::sync::Arc::new(Tapped::new(wa_store::MemoryBackend::new(), tap.clone()));
    let store = AccountStore::new(backend, AccountId::new("history").unwrap());
    let c = link_on(&sim, A, store.clone(), MessengerConfig::default()).await;
    wait_until("the start-up listing", || {
        tap.listings.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    c.socket.close().await;
    // What the receive path persists with the processed marker (the scope is the
    // messenger's pending-history scope).
    let chunk = ProtoHistory {
        sync_type: Some(wa_proto::history_sync::history_sync::HistorySyncType::PushName as i32),
        pushnames: vec![Pushname {
            id: Some(format!("{B}@s.whatsapp.net")),
            pushname: Some("Bobby".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut z, &chunk.encode_to_vec()).unwrap();
    let n = wa_proto::e2e::HistorySyncNotification {
        sync_type: Some(HistorySyncType::PushName as i32),
        initial_hist_bootstrap_inline_payload: Some(z.finish().unwrap()),
        ..Default::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    store
        .put_sent_message("history-sync@pending", "PENDING1", &n.encode_to_vec(), now)
        .await
        .unwrap();

    tap.release.send_replace(true);
    let mut old_events = c.events;

    let (_socket, _m, mut events) = start(&sim, store.clone());
    let (ok, failed) = split(history_events(&mut events, 1).await);
    assert!(failed.is_empty());
    assert_eq!(ok[0].message_id, "PENDING1");
    assert!(
        ok[0]
            .data
            .contacts
            .iter()
            .any(|c| c.notify.as_deref() == Some("Bobby"))
    );
    // Processed once: the pending entry is gone.
    wait_until_async(|| async {
        store
            .get_sent_message("history-sync@pending", "PENDING1")
            .await
            .unwrap()
            .is_none()
    })
    .await;
    // The closed socket's messenger reported nothing of it.
    loop {
        match old_events.try_recv() {
            Ok(Event::HistorySync(h)) => panic!("reported on the closed socket: {}", h.message_id),
            Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
}

/// Holds the first list of the sent-message role (a messenger's start-up listing of
/// pending history notifications) until released.
#[derive(Debug, Default)]
struct HeldListing {
    release: tokio::sync::watch::Sender<bool>,
    listings: std::sync::atomic::AtomicUsize,
}

impl Tap for HeldListing {
    fn before_read(&self, role: Role, read: Read) -> BoxFuture<'_, ()> {
        if !first_listing(&self.listings, role, read) {
            return done();
        }
        held_until(self.release.subscribe(), |r| *r)
    }
}

async fn wait_until_async<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_messages_are_fetched_from_the_phone_on_demand() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut c = link(&sim, A, MessengerConfig::default()).await;
    // B's phone writes five messages; A's phone and the companion both get them.
    let mut ids = Vec::new();
    for i in 0..5 {
        let text = Message {
            conversation: Some(format!("old {i}")),
            ..Default::default()
        };
        let id = sim.phone_send(B, &Jid::pn(A), text).await.unwrap();
        wa_testkit::next_upsert(&mut c.events, |m| m.key.id == id).await;
        ids.push(id);
    }
    let key = |id: &str| wa_types::MessageKey::new(Jid::pn(B), false, id);

    // Two messages before the fourth: the phone answers with an ON_DEMAND chunk.
    let request = c
        .messenger
        .fetch_message_history(2, &key(&ids[3]), 1_700_000_000)
        .await
        .unwrap();
    assert!(!request.is_empty());
    let (ok, failed) = split(history_events(&mut c.events, 1).await);
    assert!(failed.is_empty());
    assert_eq!(ok[0].notification_type, HistorySyncType::OnDemand);
    assert_eq!(
        ok[0].request_id.as_deref(),
        Some(request.as_str()),
        "the chunk names the request it answers"
    );
    assert!(
        !ok[0].inline,
        "downloaded and verified like the bootstrap chunk"
    );
    let got = id_texts(&ok[0]);
    assert_eq!(
        got,
        [
            (ids[1].as_str(), Some("old 1")),
            (ids[2].as_str(), Some("old 2"))
        ]
    );

    // Nothing is older than the first: an empty chunk.
    let second = c
        .messenger
        .fetch_message_history(10, &key(&ids[0]), 1_700_000_000)
        .await
        .unwrap();
    let (ok, _) = split(history_events(&mut c.events, 1).await);
    assert_eq!(ok[0].notification_type, HistorySyncType::OnDemand);
    assert_eq!(ok[0].request_id.as_deref(), Some(second.as_str()));
    assert!(ok[0].data.messages.is_empty());

    // Counts outside 1..=500 are refused before anything is sent.
    for n in [0, wa_messages::MAX_HISTORY_REQUEST + 1] {
        assert!(matches!(
            c.messenger.fetch_message_history(n, &key(&ids[4]), 0).await,
            Err(wa_messages::Error::InvalidHistoryRequest(_))
        ));
    }
}

/// The next history-sync status, or `None` when none comes within `wait`.
async fn next_status(
    events: &mut broadcast::Receiver<Event>,
    wait: Duration,
) -> Option<HistorySyncStatus> {
    let fut = async {
        loop {
            match events.recv().await {
                Ok(Event::HistorySyncStatus(s)) => return s,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(wait, fut).await.ok()
}

fn recent(order: u32, progress: u32) -> ProtoHistory {
    ProtoHistory {
        sync_type: Some(HistorySyncType::Recent as i32),
        chunk_order: Some(order),
        progress: Some(progress),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_each_history_phase_is_reported() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.seed_history(A, seed());
    let status = |sync_type, phase, explicit| HistorySyncStatus {
        sync_type,
        phase,
        explicit,
    };

    // The bootstrap chunk completes the bootstrap; recent chunks below 100 % and then
    // silence pause the recent sync, and a later chunk does not report it again.
    let mc = MessengerConfig {
        history_paused_after: Duration::from_millis(600),
        ..MessengerConfig::default()
    };
    let mut c = link(&sim, A, mc).await;
    assert_eq!(
        next_status(&mut c.events, WAIT).await,
        Some(status(
            HistorySyncType::InitialBootstrap,
            HistorySyncPhase::Complete,
            true
        ))
    );
    sim.phone_send_history(A, &c.jid, recent(3, 40), true).await;
    sim.phone_send_history(A, &c.jid, recent(4, 70), false)
        .await;
    let started = Instant::now();
    assert_eq!(
        next_status(&mut c.events, WAIT).await,
        Some(status(
            HistorySyncType::Recent,
            HistorySyncPhase::Paused,
            false
        ))
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
    sim.phone_send_history(A, &c.jid, recent(5, 100), true)
        .await;
    assert_eq!(
        next_status(&mut c.events, Duration::from_secs(1)).await,
        None
    );

    // Another companion, with the default wait: a recent chunk at 100 % completes the
    // recent sync at once, and no pause follows.
    let mut d = link(&sim, A, MessengerConfig::default()).await;
    assert_eq!(
        next_status(&mut d.events, WAIT).await.map(|s| s.sync_type),
        Some(HistorySyncType::InitialBootstrap)
    );
    sim.phone_send_history(A, &d.jid, recent(3, 60), true).await;
    sim.phone_send_history(A, &d.jid, recent(4, 100), true)
        .await;
    assert_eq!(
        next_status(&mut d.events, WAIT).await,
        Some(status(
            HistorySyncType::Recent,
            HistorySyncPhase::Complete,
            true
        ))
    );
    assert_eq!(
        next_status(&mut d.events, Duration::from_secs(1)).await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_chunk_is_uploaded_again_when_the_phone_is_asked() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.seed_history(A, seed());
    sim.corrupt_next_history(A);
    let mut c = link(&sim, A, MessengerConfig::default()).await;
    let (ok, failed) = split(history_events(&mut c.events, 2).await);
    assert_eq!((ok.len(), failed.len()), (1, 1));
    let failure = &failed[0];
    assert_eq!(failure.media_key.as_ref().map(Vec::len), Some(32));
    assert_eq!(c.store.lid_for_pn(B).await.unwrap(), None);
    assert_eq!(
        sim.media_deleted(),
        0,
        "a chunk that failed is left on the host"
    );

    // Asked, the phone uploads the chunk again and announces it in a new notification,
    // which is processed like the first should have been.
    c.messenger.request_history_reupload(failure).await.unwrap();
    let (ok, failed) = split(history_events(&mut c.events, 1).await);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(ok[0].notification_type, HistorySyncType::InitialBootstrap);
    assert_ne!(ok[0].message_id, failure.message_id);
    assert!(!ok[0].data.chats.is_empty());
    assert!(c.store.lid_for_pn(B).await.unwrap().is_some());
    assert_eq!(sim.history_reuploads(A), 1);
    // Processed, the new blob is deleted from the media host (as whatsmeow does).
    wait_until("the processed blob deleted", || sim.media_deleted() == 1).await;

    // A request the phone cannot place (a media key that is not the chunk's) gets no
    // answer; a failure without a media key cannot be asked about at all.
    let mut wrong = failure.clone();
    wrong.media_key = Some(vec![7; 32]);
    c.messenger.request_history_reupload(&wrong).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.history_reuploads(A), 1);
    wrong.media_key = None;
    assert!(matches!(
        c.messenger.request_history_reupload(&wrong).await,
        Err(wa_messages::Error::NotAnAddOn(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processed_blobs_are_kept_when_configured() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.seed_history(A, seed());
    let mc = MessengerConfig {
        delete_history_blobs: false,
        ..MessengerConfig::default()
    };
    let mut c = link(&sim, A, mc).await;
    let (ok, failed) = split(history_events(&mut c.events, 2).await);
    assert_eq!((ok.len(), failed.len()), (2, 0));
    let blobs = sim.media_count();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.media_deleted(), 0);
    assert_eq!(sim.media_count(), blobs);
}
