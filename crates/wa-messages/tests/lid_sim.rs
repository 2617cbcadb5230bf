//! LID/PN addressing of 1:1 sessions, end to end through wa-sim: the simulated server
//! names the sender by phone number, by phone number with `sender_lid`, or by LID with
//! `sender_pn` (`Fault::SenderAddressing`), and the receiving companion keeps one session
//! per peer device, under the LID address once the LID is known.

mod common;

use std::time::Duration;

use common::*;
use tokio::sync::broadcast;
use wa_binary::{Jid, Server};
use wa_messages::{MessageContent, ReceiptType};
use wa_sim::{Fault, SenderAddressing, Sim, SimConfig};
use wa_socket::Event;
use wa_store::{
    AccountStore, IdentityStore, LidMappingStore, Op, Role, SenderKeyStore, SessionStore,
};
use wa_testkit::next_upsert;
use wa_types::{LidMapping, WaMessage};

const A: &str = "15550000011";
const B: &str = "15550000012";

/// Accounts A and B in a fresh sim, a linked companion of each (b1 on `b_store`), and
/// A's LID user, the Signal address name of its LID devices and a1's device number.
struct Setup {
    sim: Sim,
    a1: Client,
    b1: Client,
    a_lid: String,
    a_lid_name: String,
    dev: u16,
}

async fn setup(b_store: AccountStore) -> Setup {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let a1 = link(&sim, A, memory_store("a1")).await;
    let b1 = link(&sim, B, b_store).await;
    let a_lid = sim.account(A).unwrap().lid.user.to_string();
    let a_lid_name = format!("{a_lid}_1");
    let dev = a1.jid.device;
    Setup {
        sim,
        a1,
        b1,
        a_lid,
        a_lid_name,
        dev,
    }
}

/// Retry receipts the sender (`events`) has reported so far (drained for a moment).
async fn retries(events: &mut broadcast::Receiver<Event>) -> usize {
    drain(events).await.0
}

/// The retry receipts and the LID mappings `events` reports within 300 ms.
async fn drain(events: &mut broadcast::Receiver<Event>) -> (usize, Vec<LidMapping>) {
    let (mut n, mut mappings) = (0, Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(ev) = tokio::time::timeout_at(deadline, events.recv()).await {
        match ev {
            Ok(Event::MessagesUpdate(us)) => {
                n += us
                    .iter()
                    .filter(|u| u.receipt == ReceiptType::Retry)
                    .count();
            }
            Ok(Event::LidMappings(m)) => mappings.extend(m),
            _ => {}
        }
    }
    (n, mappings)
}

/// The base key of the current session stored under `name.device`.
async fn base_key(store: &AccountStore, name: &str, device: u16) -> Option<Vec<u8>> {
    let bytes = store.get_session(name, u32::from(device)).await.unwrap()?;
    let record = wa_signal::SessionRecord::deserialize(&bytes).unwrap();
    Some(record.base_key()?.as_bytes().to_vec())
}

/// Puts the session and identity of `from.device` under `to.device` (and removes the
/// originals), as a store written before LID addressing would hold them.
async fn move_records(store: &AccountStore, from: &str, to: &str, device: u16) {
    let d = u32::from(device);
    let session = store.get_session(from, d).await.unwrap().unwrap();
    let identity = store.get_identity(from, d).await.unwrap().unwrap();
    let mut b = wa_store::Batch::new();
    b.put_session(to, d, &session)
        .put_identity(to, d, &identity)
        .delete_session(from, d)
        .delete_identity(from, d);
    store.commit(b).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pn_session_moves_to_the_lid_address_when_the_lid_is_learned() {
    let Setup {
        sim,
        mut a1,
        mut b1,
        a_lid,
        a_lid_name,
        dev,
    } = setup(memory_store("b1")).await;

    // Phone-number addressing, no LID known: b1 keeps the session under a1's PN address.
    let got = exchange(&a1, &mut b1, B, "one").await;
    assert_eq!(got.sender, a1.jid);
    assert_eq!(got.sender_alt, None);
    assert_eq!(b1.store.lid_for_pn(A).await.unwrap(), None);
    let base = base_key(&b1.store, A, dev).await.expect("PN session");
    assert_eq!(base_key(&b1.store, &a_lid_name, dev).await, None);

    // b1 answers: it learns A's LID through usync and moves the session before
    // encrypting, so the answer rides the same ratchet (a new session would have a new
    // base key, and a1 would not need to ask again either way).
    exchange(&b1, &mut a1, A, "ack").await;
    assert_eq!(
        b1.store.lid_for_pn(A).await.unwrap().as_deref(),
        Some(a_lid.as_str())
    );
    assert_eq!(base_key(&b1.store, A, dev).await, None, "PN record gone");
    assert_eq!(
        base_key(&b1.store, &a_lid_name, dev).await,
        Some(base.clone())
    );
    let (asked, learned) = drain(&mut b1.events).await;
    assert_eq!(asked, 0);
    assert_eq!(learned, [LidMapping::of_users(&a_lid, A)], "reported once");
    exchange(&a1, &mut b1, B, "two").await;
    assert_eq!(retries(&mut a1.events).await, 0);

    // A store from before LID addressing: the session (answered in both directions, so
    // a1 now sends plain `msg`s) under the PN address and no mapping. b1 restarts on it.
    let (b_jid, store) = (b1.jid.clone(), b1.store.clone());
    b1.socket.close().await;
    drop(b1);
    move_records(&store, &a_lid_name, A, dev).await;
    store
        .backend()
        .commit(
            store.account(),
            vec![
                Op::Delete {
                    role: Role::LidMapping,
                    scope: "pn".into(),
                    key: A.into(),
                },
                Op::Delete {
                    role: Role::LidMapping,
                    scope: "lid".into(),
                    key: a_lid.clone(),
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(store.lid_for_pn(A).await.unwrap(), None);
    let mut b1 = restart(&sim, store, b_jid).await;
    let got = exchange(&a1, &mut b1, B, "three").await;
    assert_eq!(got.sender_alt, None);
    assert_eq!(base_key(&b1.store, A, dev).await, Some(base.clone()));

    // The server now names a1 by its LID (with sender_pn): b1 learns the mapping from the
    // stanza, moves the session and decrypts a1's `msg` with it. Without the move the
    // `msg` would find no session under the LID address and b1 would ask again.
    sim.fault(Fault::SenderAddressing(SenderAddressing::Lid));
    let mut watch = b1.socket.events();
    let got = exchange(&a1, &mut b1, B, "four").await;
    assert_eq!(
        got.sender,
        Jid::with_device(a_lid.clone(), Server::Lid, dev)
    );
    assert_eq!(got.sender_alt, Some(a1.jid.clone()));
    assert_eq!(retries(&mut a1.events).await, 0, "b1 never asked again");
    // Learned from the stanza this time (the mapping had been deleted), and reported.
    let (_, learned) = drain(&mut watch).await;
    assert_eq!(learned, [LidMapping::of_users(&a_lid, A)]);
    assert_eq!(
        b1.store.lid_for_pn(A).await.unwrap().as_deref(),
        Some(a_lid.as_str())
    );
    assert_eq!(base_key(&b1.store, A, dev).await, None, "PN record gone");
    assert!(
        b1.store
            .get_identity(A, u32::from(dev))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        b1.store
            .get_identity(&a_lid_name, u32::from(dev))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        base_key(&b1.store, &a_lid_name, dev).await,
        Some(base.clone())
    );

    // The other direction uses the moved session too.
    let back = exchange(&b1, &mut a1, A, "five").await;
    let b_lid = sim.account(B).unwrap().lid.user.to_string();
    assert_eq!(
        back.sender,
        Jid::with_device(b_lid, Server::Lid, b1.jid.device)
    );
    assert_eq!(back.sender_alt, Some(b1.jid.clone()));
    assert_eq!(retries(&mut b1.events).await, 0, "a1 never asked again");

    // And on, with phone-number addressing again (the stored mapping finds the LID
    // session).
    sim.fault(Fault::SenderAddressing(SenderAddressing::Pn));
    let got = exchange(&a1, &mut b1, B, "six").await;
    assert_eq!(got.sender, a1.jid);
    assert_eq!(
        got.sender_alt,
        Some(Jid::with_device(a_lid.clone(), Server::Lid, dev)),
        "the other address comes from the stored mapping"
    );
    exchange(&b1, &mut a1, A, "seven").await;
    assert_eq!(retries(&mut a1.events).await, 0);
    assert_eq!(retries(&mut b1.events).await, 0);
    assert_eq!(base_key(&b1.store, &a_lid_name, dev).await, Some(base));
    assert_eq!(base_key(&b1.store, A, dev).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_writing_as_pn_then_as_lid_has_one_session() {
    let Setup {
        sim,
        mut a1,
        mut b1,
        a_lid,
        a_lid_name,
        dev,
    } = setup(memory_store("b1")).await;
    let a1_lid = Jid::with_device(a_lid.clone(), Server::Lid, dev);

    // First as PN with sender_lid: the session starts under the LID address.
    sim.fault(Fault::SenderAddressing(SenderAddressing::PnWithLid));
    let got = exchange(&a1, &mut b1, B, "as pn").await;
    assert_eq!(got.sender, a1.jid);
    assert_eq!(got.sender_alt, Some(a1_lid.clone()));
    let base = base_key(&b1.store, &a_lid_name, dev)
        .await
        .expect("LID session");
    assert_eq!(base_key(&b1.store, A, dev).await, None);

    // Then as LID: the same session decrypts it.
    sim.fault(Fault::SenderAddressing(SenderAddressing::Lid));
    let got = exchange(&a1, &mut b1, B, "as lid").await;
    assert_eq!(got.sender, a1_lid);
    assert_eq!(got.sender_alt, Some(a1.jid.clone()));
    assert_eq!(retries(&mut a1.events).await, 0);
    assert_eq!(
        b1.store.session_devices(&a_lid_name).await.unwrap(),
        vec![u32::from(dev)]
    );
    assert!(b1.store.session_devices(A).await.unwrap().is_empty());
    assert_eq!(
        base_key(&b1.store, &a_lid_name, dev).await,
        Some(base.clone())
    );

    // A reply on it, and another message each way.
    exchange(&b1, &mut a1, A, "reply").await;
    exchange(&a1, &mut b1, B, "again").await;
    exchange(&b1, &mut a1, A, "and again").await;
    assert_eq!(retries(&mut a1.events).await, 0);
    assert_eq!(retries(&mut b1.events).await, 0);
    assert_eq!(base_key(&b1.store, &a_lid_name, dev).await, Some(base));
    assert!(b1.store.session_devices(A).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrated_sessions_keep_decrypting_after_a_restart_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b1.db");
    let Setup {
        sim,
        mut a1,
        mut b1,
        a_lid_name,
        dev,
        ..
    } = setup(sqlite_store(&path, "b1").await).await;

    exchange(&a1, &mut b1, B, "pn").await;
    let base = base_key(&b1.store, A, dev).await.expect("PN session");
    sim.fault(Fault::SenderAddressing(SenderAddressing::Lid));
    exchange(&a1, &mut b1, B, "lid").await;
    assert_eq!(
        base_key(&b1.store, &a_lid_name, dev).await,
        Some(base.clone())
    );
    assert_eq!(base_key(&b1.store, A, dev).await, None);

    let b_jid = b1.jid.clone();
    b1.socket.close().await;
    drop(b1);
    // A message while b1 is down (LID-addressed, from the offline queue), then b1 comes
    // back from the database file alone; the migration runs again there and finds
    // nothing to move.
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("while down"))
        .await
        .unwrap();
    let mut b1 = restart(&sim, sqlite_store(&path, "b1").await, b_jid).await;
    let got = next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
    assert_eq!(text_of(&got.message), Some("while down"));
    for i in 0..2 {
        exchange(&b1, &mut a1, A, &format!("after {i}")).await;
        exchange(&a1, &mut b1, B, &format!("reply {i}")).await;
    }
    // Phone-number addressing again: the stored mapping still routes it to the LID
    // session.
    sim.fault(Fault::SenderAddressing(SenderAddressing::Pn));
    exchange(&a1, &mut b1, B, "pn again").await;
    assert_eq!(retries(&mut a1.events).await, 0);
    assert_eq!(base_key(&b1.store, &a_lid_name, dev).await, Some(base));
    assert!(b1.store.session_devices(A).await.unwrap().is_empty());
}

/// The sender key `store` holds for `sender` (`name::device`) in `group`.
async fn sender_key(store: &AccountStore, group: &Jid, name: &str, device: u16) -> Option<Vec<u8>> {
    store
        .get_sender_key(&group.to_string(), &format!("{name}::{device}"))
        .await
        .unwrap()
        .map(|b| b.to_vec())
}

/// Sends `text` from `from` to `group` and waits until `to` reported it.
async fn group_exchange(from: &Client, to: &mut Client, group: &Jid, text: &str) -> WaMessage {
    let key = from
        .messenger
        .send_message(group, MessageContent::text(text))
        .await
        .unwrap();
    let got = next_upsert(&mut to.events, |m| m.key.id == key.id).await;
    assert_eq!(text_of(&got.message), Some(text));
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_sender_key_moves_to_the_lid_name_when_the_lid_is_learned() {
    let Setup {
        sim,
        mut a1,
        mut b1,
        a_lid,
        a_lid_name,
        dev,
    } = setup(memory_store("b1")).await;
    let g = sim
        .phone_create_group(A, "team", &[Jid::pn(B)])
        .expect("group created");

    // Phone-number addressing and no mapping: b1 keeps a1's sender key under its PN name.
    let got = group_exchange(&a1, &mut b1, &g, "one").await;
    assert_eq!(got.sender, a1.jid);
    let key = sender_key(&b1.store, &g, A, dev)
        .await
        .expect("PN-named key");
    assert_eq!(sender_key(&b1.store, &g, &a_lid_name, dev).await, None);

    // The server starts naming a1 by its LID (`participant_pn` beside it): b1 learns the
    // mapping from the stanza, finds no key under the LID name and moves the PN one over
    // before decrypting the `skmsg` (which carries no new distribution).
    sim.fault(Fault::SenderAddressing(SenderAddressing::Lid));
    let got = group_exchange(&a1, &mut b1, &g, "two").await;
    assert_eq!(
        got.sender,
        Jid::with_device(a_lid.clone(), Server::Lid, dev)
    );
    assert_eq!(got.sender_alt, Some(a1.jid.clone()));
    assert_eq!(retries(&mut a1.events).await, 0, "b1 never asked again");
    assert_eq!(
        sender_key(&b1.store, &g, A, dev).await,
        None,
        "PN name gone"
    );
    let moved = sender_key(&b1.store, &g, &a_lid_name, dev)
        .await
        .expect("LID-named key");
    assert_ne!(moved, key, "the moved record advanced its chain");

    // Back to phone-number addressing: the stored mapping finds the LID-named key.
    sim.fault(Fault::SenderAddressing(SenderAddressing::Pn));
    let got = group_exchange(&a1, &mut b1, &g, "three").await;
    assert_eq!(got.sender, a1.jid);
    assert_eq!(retries(&mut a1.events).await, 0);
    assert_eq!(sender_key(&b1.store, &g, A, dev).await, None);

    // A device whose distribution arrives after the mapping is known: its key is stored
    // under the LID name from the start.
    let mut a2 = link(&sim, A, memory_store("a2")).await;
    let dev2 = a2.jid.device;
    group_exchange(&a2, &mut b1, &g, "from a2").await;
    assert!(sender_key(&b1.store, &g, &a_lid_name, dev2).await.is_some());
    assert_eq!(sender_key(&b1.store, &g, A, dev2).await, None);
    assert_eq!(retries(&mut a2.events).await, 0);

    // b1 answers in the group, and a1 keeps sending: nothing asks for a retry.
    group_exchange(&b1, &mut a1, &g, "reply").await;
    group_exchange(&a1, &mut b1, &g, "four").await;
    assert_eq!(retries(&mut a1.events).await, 0);
    assert_eq!(retries(&mut b1.events).await, 0);
}

/// Counts single reads of LID mappings.
#[derive(Debug, Default)]
struct MappingReads(std::sync::atomic::AtomicUsize);

impl wa_store::testing::Tap for MappingReads {
    fn before_read(&self, role: Role, _: wa_store::testing::Read) -> wa_store::BoxFuture<'_, ()> {
        if role == Role::LidMapping {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        wa_store::testing::done()
    }
}

/// A sender whose LID is not known is looked up in the store once, not at every message
/// from it; a mapping written afterwards by any part of the library (here straight
/// through the socket's store, as the app-state and history layers write theirs) is
/// used from the next message on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_lid_is_asked_for_again_only_after_a_mapping_is_written() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    let tapped = Arc::new(wa_store::testing::Tapped::new(
        wa_store::MemoryBackend::new(),
        MappingReads::default(),
    ));
    let reads = || tapped.tap().0.load(Ordering::SeqCst);
    let b_store = AccountStore::new(tapped.clone(), wa_store::AccountId::new("b1").unwrap());
    let Setup {
        sim: _sim,
        a1,
        mut b1,
        a_lid,
        a_lid_name,
        dev,
    } = setup(b_store).await;

    let got = exchange(&a1, &mut b1, B, "one").await;
    assert_eq!(got.sender_alt, None);
    // a1's first send also issued A's privacy token to B; b1 stores it (looking up A's
    // LID for the record's key) when the server's notification comes. Not counted.
    let deadline = std::time::Instant::now() + WAIT;
    while b1.socket.privacy_token(&Jid::pn(A)).await.is_none() {
        assert!(std::time::Instant::now() < deadline, "no token from A");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = reads();
    for text in ["two", "three"] {
        let got = exchange(&a1, &mut b1, B, text).await;
        assert_eq!(got.sender_alt, None);
    }
    assert_eq!(reads() - before, 0, "A's LID was looked up again");

    b1.socket.store().put_lid_mapping(A, &a_lid).await.unwrap();
    let got = exchange(&a1, &mut b1, B, "four").await;
    assert_eq!(
        got.sender_alt,
        Some(Jid::with_device(a_lid.clone(), Server::Lid, dev))
    );
    // The session moved to the LID address with the mapping's first use.
    assert!(base_key(&b1.store, &a_lid_name, dev).await.is_some());
    assert_eq!(base_key(&b1.store, A, dev).await, None);
    let before = reads();
    exchange(&a1, &mut b1, B, "five").await;
    assert_eq!(reads() - before, 0, "a found mapping is kept too");
}
