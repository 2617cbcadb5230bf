//! Status updates (`status@broadcast`) end to end through wa-sim: real sockets, Noise,
//! Signal and stores; the update reaches exactly the listed accounts' devices (companions
//! and simulated phones) and our own other devices, and receipts come back.

mod common;

use std::time::Duration;

use common::*;
use tokio::sync::broadcast;
use wa_binary::{Jid, Server};
use wa_messages::{Error, MAX_STATUS_RECIPIENTS, MessageContent, ReceiptType};
use wa_sim::{Sim, SimConfig};
use wa_socket::Event;
use wa_store::{LidMappingStore, SenderKeyMemoryStore, SenderKeyStore, SessionStore};
use wa_testkit::{next_receipt, next_upsert};
use wa_types::WaMessage;

const A: &str = "15550000001";
const B: &str = "15550000002";
const C: &str = "15550000003";
const D: &str = "15550000004";
const STATUS: &str = "status@broadcast";

/// The upserts of every message in `ids` (in any arrival order), in the order of `ids`.
async fn upserts_of(rx: &mut broadcast::Receiver<Event>, ids: &[&str]) -> Vec<WaMessage> {
    let mut found: Vec<Option<WaMessage>> = vec![None; ids.len()];
    let fut = async {
        while found.iter().any(Option::is_none) {
            match rx.recv().await {
                Ok(Event::MessagesUpsert(u)) => {
                    for m in u.messages {
                        if let Some(i) = ids.iter().position(|id| *id == m.key.id) {
                            found[i] = Some(m);
                        }
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("messages in time");
    found.into_iter().flatten().collect()
}

/// The name `receiver` keeps `author`'s sender keys under: the author's LID device once
/// the receiver knows the LID, else its phone-number device.
async fn sender_key_name(receiver: &Client, author: &Jid) -> String {
    let user = match receiver.store.lid_for_pn(&author.user).await.unwrap() {
        Some(lid) => format!("{lid}_1"),
        None => author.user.to_string(),
    };
    format!("{user}::{}", author.device)
}

/// How many sender-key states `receiver` holds for `author`'s status updates (one per
/// distinct sender key it was given).
async fn status_key_states(receiver: &Client, author: &Jid) -> usize {
    let name = sender_key_name(receiver, author).await;
    match receiver.store.get_sender_key(STATUS, &name).await.unwrap() {
        Some(bytes) => wa_signal::SenderKeyRecord::deserialize(&bytes)
            .unwrap()
            .state_count(),
        None => 0,
    }
}

/// The devices `sender` has given its status sender key, sorted.
async fn key_holders(sender: &Client) -> Vec<String> {
    let mut v = sender.store.sender_key_devices(STATUS).await.unwrap();
    v.sort();
    v
}

fn phone(user: &'static str) -> Jid {
    Jid::with_device(user, Server::Pn, 0)
}

fn sorted(jids: &[&Jid]) -> Vec<String> {
    let mut v: Vec<String> = jids.iter().map(ToString::to_string).collect();
    v.sort();
    v
}

/// Checks that every client in `clients` got status `id` from `author` with `text`.
async fn all_receive(clients: &mut [&mut Client], id: &str, author: &Client, text: &str) {
    let status = Jid::status_broadcast();
    for c in clients.iter_mut() {
        let m = next_upsert(&mut c.events, |m| m.key.id == id).await;
        assert_eq!(m.key.remote_jid, status, "{} sees a status", c.jid);
        assert_eq!(m.key.participant, Some(Jid::pn(A)));
        assert_eq!(m.key.from_me, c.jid.same_user(&author.jid));
        assert_eq!(m.sender, author.jid);
        assert_eq!(text_of(&m.message), Some(text), "{} decrypts it", c.jid);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_updates_reach_exactly_the_listed_accounts() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    for p in [A, B, C, D] {
        sim.add_account(p).await;
    }
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mut a2 = link(&sim, A, memory_store("a2")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let mut b2 = link(&sim, B, memory_store("b2")).await;
    let mut c1 = link(&sim, C, memory_store("c1")).await;
    let mut c2 = link(&sim, C, memory_store("c2")).await;
    let mut d1 = link(&sim, D, memory_store("d1")).await;
    let status = Jid::status_broadcast();
    // Receipts are read from their own subscription, so waiting for upserts skips none.
    let mut receipts = a1.socket.events();

    // First update to B and C: every device of B and C gets it, and so does A's other
    // companion (as our own update); D gets nothing.
    let k1 = a1
        .messenger
        .send_status(
            MessageContent::text("first story"),
            &[Jid::pn(B), Jid::pn(C)],
        )
        .await
        .unwrap();
    assert_eq!(k1.remote_jid, status);
    assert!(k1.from_me);
    assert_eq!(k1.participant, Some(Jid::pn(A)));
    let own = next_upsert(&mut a1.events, |m| m.key.id == k1.id).await;
    assert_eq!(text_of(&own.message), Some("first story"));
    all_receive(
        &mut [&mut b1, &mut b2, &mut c1, &mut c2, &mut a2],
        &k1.id,
        &a1,
        "first story",
    )
    .await;
    wait_until("the phones of B, C and A open the update", || {
        [B, C, A].iter().all(|p| {
            sim.phone_inbox(p).iter().any(|m| {
                m.id == k1.id
                    && m.chat == status
                    && m.from == a1.jid
                    && text_of(&m.message) == Some("first story")
            })
        })
    })
    .await;
    assert_eq!(
        count_upserts(&mut d1.events, &k1.id, Duration::from_secs(1)).await,
        0
    );
    assert!(!sim.phone_inbox(D).iter().any(|m| m.id == k1.id));
    let first_audience = sorted(&[
        &phone(A),
        &a2.jid,
        &phone(B),
        &b1.jid,
        &b2.jid,
        &phone(C),
        &c1.jid,
        &c2.jid,
    ]);
    assert_eq!(key_holders(&a1).await, first_audience);
    assert_eq!(status_key_states(&b1, &a1.jid).await, 1);

    // Receipts: deliveries and a read receipt come back naming the status and the reader.
    let delivered = next_receipt(&mut receipts, |u| {
        u.key.id == k1.id && u.device == b1.jid && u.receipt == ReceiptType::Delivered
    })
    .await;
    assert_eq!(delivered.key.remote_jid, status);
    assert_eq!(delivered.key.participant, Some(Jid::pn(B)));
    c1.messenger
        .read_messages(std::slice::from_ref(&seen_by_recipient(&k1)))
        .await
        .unwrap();
    let read = next_receipt(&mut receipts, |u| {
        u.key.id == k1.id && u.device == c1.jid && u.receipt == ReceiptType::Read
    })
    .await;
    assert_eq!(read.key.remote_jid, status);
    assert!(read.key.from_me);

    // A second update to the same list keeps the same sender key: the receivers still hold
    // one state for A, and the holders are unchanged.
    let k2 = a1
        .messenger
        .send_status(
            MessageContent::text("second story"),
            &[Jid::pn(C), Jid::pn(B)],
        )
        .await
        .unwrap();
    all_receive(
        &mut [&mut b1, &mut b2, &mut c1, &mut c2, &mut a2],
        &k2.id,
        &a1,
        "second story",
    )
    .await;
    assert_eq!(status_key_states(&b1, &a1.jid).await, 1);
    assert_eq!(status_key_states(&c2, &a1.jid).await, 1);
    assert_eq!(key_holders(&a1).await, first_audience);
    assert_eq!(
        count_upserts(&mut d1.events, &k2.id, Duration::from_secs(1)).await,
        0
    );

    // D is added: its devices get the same key (one state) and the update.
    let k3 = a1
        .messenger
        .send_status(
            MessageContent::text("third story"),
            &[Jid::pn(B), Jid::pn(C), Jid::pn(D)],
        )
        .await
        .unwrap();
    all_receive(
        &mut [&mut b1, &mut b2, &mut c1, &mut c2, &mut a2, &mut d1],
        &k3.id,
        &a1,
        "third story",
    )
    .await;
    wait_until("D's phone opens the third update", || {
        sim.phone_inbox(D)
            .iter()
            .any(|m| m.id == k3.id && text_of(&m.message) == Some("third story"))
    })
    .await;
    assert_eq!(status_key_states(&d1, &a1.jid).await, 1);
    assert_eq!(status_key_states(&b1, &a1.jid).await, 1);
    let mut with_d = first_audience.clone();
    with_d.extend([phone(D).to_string(), d1.jid.to_string()]);
    with_d.sort();
    assert_eq!(key_holders(&a1).await, with_d);

    // Only B: C and D had the key, so it is replaced; B's devices get the new one (two
    // states now), C and D get nothing.
    let k4 = a1
        .messenger
        .send_status(MessageContent::text("just for B"), &[Jid::pn(B)])
        .await
        .unwrap();
    all_receive(&mut [&mut b1, &mut b2, &mut a2], &k4.id, &a1, "just for B").await;
    assert_eq!(status_key_states(&b1, &a1.jid).await, 2);
    assert_eq!(
        key_holders(&a1).await,
        sorted(&[&phone(A), &a2.jid, &phone(B), &b1.jid, &b2.jid])
    );
    for c in [&mut c1, &mut c2, &mut d1] {
        assert_eq!(
            count_upserts(&mut c.events, &k4.id, Duration::from_millis(500)).await,
            0
        );
    }
    wait_until("B's phone opens the update with the new key", || {
        sim.phone_inbox(B).iter().any(|m| m.id == k4.id)
    })
    .await;
    assert!(!sim.phone_inbox(C).iter().any(|m| m.id == k4.id));
    assert!(!sim.phone_inbox(D).iter().any(|m| m.id == k4.id));
}

/// The key a recipient holds for a status A sent (not from it, A as participant).
fn seen_by_recipient(k: &wa_types::MessageKey) -> wa_types::MessageKey {
    wa_types::MessageKey::new(k.remote_jid.clone(), false, k.id.clone())
        .with_participant(Jid::pn(A))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_is_healed_by_a_status_retry() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let k1 = a1
        .messenger
        .send_status(MessageContent::text("one"), &[Jid::pn(B)])
        .await
        .unwrap();
    next_upsert(&mut b1.events, |m| m.key.id == k1.id).await;
    // b1 answers a1 directly, so a1's next pairwise message to b1 is a plain `msg`.
    let back = b1
        .messenger
        .send_message(&Jid::pn(A), MessageContent::text("nice"))
        .await
        .unwrap();
    next_upsert(&mut a1.events, |m| m.key.id == back.id).await;

    // b1 loses its session with a1 and A's sender key: the next update fails to open,
    // b1 asks again, and a1 resends it to b1 alone (with its sender key) under the same id.
    // The pairwise session lives under a1's LID address (b1 learned A's LID when it
    // answered); A's sender key is still under the phone-number name it was stored under
    // (it would move to the LID name on its next use).
    let (name, dev) = (a1.jid.user.to_string(), u32::from(a1.jid.device));
    let a_lid = b1
        .store
        .lid_for_pn(A)
        .await
        .unwrap()
        .expect("A's LID is known");
    let session = format!("{a_lid}_1");
    assert!(b1.store.get_session(&session, dev).await.unwrap().is_some());
    b1.store.delete_session(&session, dev).await.unwrap();
    let pn_name = format!("{name}::{dev}");
    assert!(
        b1.store
            .get_sender_key(STATUS, &pn_name)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        b1.store
            .get_sender_key(STATUS, &format!("{session}::{dev}"))
            .await
            .unwrap()
            .is_none()
    );
    b1.store.delete_sender_key(STATUS, &pn_name).await.unwrap();
    let k2 = a1
        .messenger
        .send_status(MessageContent::text("two"), &[Jid::pn(B)])
        .await
        .unwrap();
    let retry = next_receipt(&mut a1.events, |u| {
        u.key.id == k2.id && u.receipt == ReceiptType::Retry
    })
    .await;
    assert_eq!(retry.device, b1.jid);
    assert_eq!(retry.key.remote_jid, Jid::status_broadcast());
    let got = next_upsert(&mut b1.events, |m| m.key.id == k2.id).await;
    assert_eq!(got.key.remote_jid, Jid::status_broadcast());
    assert_eq!(got.key.participant, Some(Jid::pn(A)));
    assert_eq!(text_of(&got.message), Some("two"));
    assert_eq!(status_key_states(&b1, &a1.jid).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_recipient_lists_are_refused() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    let a1 = link(&sim, A, memory_store("a1")).await;
    let m = &a1.messenger;
    let text = || MessageContent::text("x");
    assert!(matches!(
        m.send_status(text(), &[]).await,
        Err(Error::NoStatusRecipients)
    ));
    // Only ourselves: nobody to show it to.
    assert!(matches!(
        m.send_status(text(), &[Jid::pn(A)]).await,
        Err(Error::NoStatusRecipients)
    ));
    let many: Vec<Jid> = (0..=MAX_STATUS_RECIPIENTS)
        .map(|i| Jid::pn(format!("1666{i:07}")))
        .collect();
    assert!(matches!(
        m.send_status(text(), &many).await,
        Err(Error::TooManyStatusRecipients { count, .. }) if count == many.len()
    ));
    let group: Jid = "120363000000000001@g.us".parse().unwrap();
    assert!(matches!(
        m.send_status(text(), &[group]).await,
        Err(Error::InvalidStatusRecipient(_))
    ));
    // The plain send has no recipient list for a status.
    assert!(matches!(
        m.send_message(&Jid::status_broadcast(), text()).await,
        Err(Error::NoStatusRecipients)
    ));
    // A user without devices: nothing to send to.
    assert!(matches!(
        m.send_status(text(), &[Jid::pn("15559999999")]).await,
        Err(Error::NoDevices(_))
    ));
    assert!(key_holders(&a1).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_with_different_audiences_all_open() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    for p in [A, B, C] {
        sim.add_account(p).await;
    }
    let a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let mut c1 = link(&sim, C, memory_store("c1")).await;
    let (m1, m2, m3) = (
        a1.messenger.clone(),
        a1.messenger.clone(),
        a1.messenger.clone(),
    );
    let both = [Jid::pn(B), Jid::pn(C)];
    let only_b = [Jid::pn(B)];
    let (r1, r2, r3) = tokio::join!(
        m1.send_status(MessageContent::text("to both"), &both),
        m2.send_status(MessageContent::text("to B"), &only_b),
        m3.send_status(MessageContent::text("to both again"), &both),
    );
    let (k1, k2, k3) = (r1.unwrap(), r2.unwrap(), r3.unwrap());
    // The three may arrive in any order.
    let got = upserts_of(&mut b1.events, &[&k1.id, &k2.id, &k3.id]).await;
    assert_eq!(text_of(&got[0].message), Some("to both"));
    assert_eq!(text_of(&got[1].message), Some("to B"));
    assert_eq!(text_of(&got[2].message), Some("to both again"));
    let got = upserts_of(&mut c1.events, &[&k1.id, &k3.id]).await;
    assert_eq!(text_of(&got[0].message), Some("to both"));
    assert_eq!(text_of(&got[1].message), Some("to both again"));
    assert_eq!(
        count_upserts(&mut c1.events, &k2.id, Duration::from_millis(500)).await,
        0
    );
}
