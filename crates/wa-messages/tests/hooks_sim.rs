//! The messenger's send hooks through wa-sim. `MessengerConfig::patch`: each recipient
//! device decrypts the copy the patch made for it, the group ciphertext carries the patch
//! made for everyone, and the sender reports (and keeps for retries) the original.
//! `MessengerConfig::pre_retry`: a declined retry receipt gets no resend.
//! `MessengerConfig::trust_changed_identities` off: a changed identity is refused until
//! the application trusts it.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use wa_binary::Jid;
use wa_messages::{MessageContent, MessagePatch, MessengerConfig, PreRetry, ReceiptType};
use wa_proto::e2e::Message;
use wa_sim::{Sim, SimConfig};
use wa_store::{LidMappingStore, SessionStore};
use wa_testkit::{next_receipt, next_upsert};

const A: &str = "15550000001";
const B: &str = "15550000002";
const C: &str = "15550000003";

fn text(t: &str) -> Message {
    Message {
        conversation: Some(t.to_owned()),
        ..Default::default()
    }
}

/// A patch that names, in the text, whom the copy was made for: "dev U:D" for a device,
/// "all" for the shared group ciphertext. Sender-key distribution messages (no text)
/// are left alone. Every call is recorded.
fn naming_patch(calls: Arc<Mutex<Vec<Option<Jid>>>>) -> MessagePatch {
    MessagePatch::new(move |m: &Message, to: Option<&Jid>| {
        calls.lock().unwrap().push(to.cloned());
        let original = text_of(m)?;
        let whom = match to {
            Some(d) => format!("dev {}:{}", d.user, d.device),
            None => "all".to_owned(),
        };
        Some(text(&format!("{original} / {whom}")))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_device_gets_the_copy_patched_for_it() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    for p in [A, B, C] {
        sim.add_account(p).await;
    }
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mc = MessengerConfig {
        patch: Some(naming_patch(calls.clone())),
        ..MessengerConfig::default()
    };
    let mut a1 = link_with(&sim, A, memory_store("a1"), mc).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;

    // 1:1: B's companion, B's phone and A's own phone each decrypt their own copy.
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("hi"))
        .await
        .unwrap();
    let got = next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
    let b1_copy = text_of(&got.message).unwrap().to_owned();
    assert_eq!(
        b1_copy,
        format!("hi / dev {}:{}", b1.jid.user, b1.jid.device),
        "the companion's copy names the companion"
    );
    let own = next_upsert(&mut a1.events, |m| m.key.id == key.id).await;
    assert_eq!(
        text_of(&own.message),
        Some("hi"),
        "the sender reports the original"
    );
    wait_until("both phones decrypt the message", || {
        sim.phone_inbox(A).iter().any(|m| m.id == key.id)
            && sim.phone_inbox(B).iter().any(|m| m.id == key.id)
    })
    .await;
    let inbox_text = |phone: &str| {
        sim.phone_inbox(phone)
            .into_iter()
            .find(|m| m.id == key.id)
            .and_then(|m| text_of(&m.message).map(str::to_owned))
            .unwrap()
    };
    let b_phone = inbox_text(B);
    let a_phone = inbox_text(A);
    assert!(
        b_phone.starts_with("hi / dev ") && b_phone.ends_with(":0"),
        "B's phone got its own copy: {b_phone}"
    );
    assert!(
        a_phone.starts_with("hi / dev ") && a_phone.ends_with(":0") && a_phone != b_phone,
        "our phone got the copy patched for it (as a DeviceSentMessage): {a_phone}"
    );
    let devices: Vec<Option<Jid>> = std::mem::take(&mut *calls.lock().unwrap());
    assert_eq!(devices.len(), 3, "one call per device: {devices:?}");
    assert!(devices.iter().all(Option::is_some));

    // Group: the sender-key ciphertext every member shares is patched once, for all.
    let g = sim
        .phone_create_group(A, "team", &[Jid::pn(B), Jid::pn(C)])
        .expect("group created");
    let key = a1
        .messenger
        .send_message(&g, MessageContent::text("team"))
        .await
        .unwrap();
    let got = next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
    assert_eq!(text_of(&got.message), Some("team / all"));
    wait_until("C's phone decrypts the group message", || {
        sim.phone_inbox(C).iter().any(|m| m.id == key.id)
    })
    .await;
    let c_copy = sim
        .phone_inbox(C)
        .into_iter()
        .find(|m| m.id == key.id)
        .unwrap();
    assert_eq!(text_of(&c_copy.message), Some("team / all"));
    let own = next_upsert(&mut a1.events, |m| m.key.id == key.id).await;
    assert_eq!(text_of(&own.message), Some("team"));
    let calls = calls.lock().unwrap();
    assert_eq!(
        calls.iter().filter(|c| c.is_none()).count(),
        1,
        "one call for the shared ciphertext"
    );
    assert!(
        calls.iter().filter(|c| c.is_some()).count() >= 4,
        "the sender-key distribution went to every other device: {calls:?}"
    );
}

/// Links a1 (with `mc`) and b1, lets them exchange a message each, then makes b1 lose
/// its session with a1, so a1's next message fails to decrypt on b1 and b1 asks again.
async fn with_lost_session(sim: &Sim, mc: MessengerConfig) -> (Client, Client) {
    sim.add_account(A).await;
    sim.add_account(B).await;
    let a1 = link_with(sim, A, memory_store("a1"), mc).await;
    let mut b1 = link(sim, B, memory_store("b1")).await;
    let first = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("first"))
        .await
        .unwrap();
    next_upsert(&mut b1.events, |m| m.key.id == first.id).await;
    // b1 answers (so it learns A's LID and keeps its session with a1 under a1's LID
    // address), then loses that session.
    let mut a1 = a1;
    let back = b1
        .messenger
        .send_message(&Jid::pn(A), MessageContent::text("ack"))
        .await
        .unwrap();
    next_upsert(&mut a1.events, |m| m.key.id == back.id).await;
    let a_lid = b1.store.lid_for_pn(A).await.unwrap().expect("A's LID");
    let dev = u32::from(a1.jid.device);
    let name = format!("{a_lid}_1");
    assert!(b1.store.get_session(&name, dev).await.unwrap().is_some());
    b1.store.delete_session(&name, dev).await.unwrap();
    (a1, b1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_for_a_retry_receipt_is_patched_for_the_asking_device() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mc = MessengerConfig {
        patch: Some(naming_patch(calls.clone())),
        ..MessengerConfig::default()
    };
    let (mut a1, mut b1) = with_lost_session(&sim, mc).await;
    calls.lock().unwrap().clear();
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("again"))
        .await
        .unwrap();
    next_receipt(&mut a1.events, |u| {
        u.key.id == key.id && u.receipt == ReceiptType::Retry
    })
    .await;
    let got = next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
    assert_eq!(
        text_of(&got.message).unwrap(),
        format!("again / dev {}:{}", b1.jid.user, b1.jid.device),
        "the resend was patched for b1"
    );
    let calls = calls.lock().unwrap();
    let for_b1 = calls.iter().filter(|c| c.as_ref() == Some(&b1.jid)).count();
    // Once for the send, once for each resend (a second retry may come before the
    // first resend arrives).
    assert!(
        for_b1 >= 2,
        "patched for the send and for the resend: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_the_pre_retry_check_declines_is_not_answered() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let record = asked.clone();
    let mc = MessengerConfig {
        pre_retry: Some(PreRetry::new(move |device, id, count, message| {
            let text = text_of(message).unwrap_or_default().to_owned();
            record
                .lock()
                .unwrap()
                .push((device.clone(), id.to_owned(), count, text.clone()));
            text != "keep this"
        })),
        ..MessengerConfig::default()
    };
    let (mut a1, mut b1) = with_lost_session(&sim, mc).await;
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("keep this"))
        .await
        .unwrap();
    next_receipt(&mut a1.events, |u| {
        u.key.id == key.id && u.receipt == ReceiptType::Retry
    })
    .await;
    assert_eq!(
        count_upserts(&mut b1.events, &key.id, Duration::from_secs(2)).await,
        0,
        "the declined retry got no resend"
    );
    let asked = asked.lock().unwrap().clone();
    assert!(!asked.is_empty());
    let (device, id, count, text) = &asked[0];
    assert_eq!(
        (device, id.as_str(), *count, text.as_str()),
        (&b1.jid, key.id.as_str(), 1, "keep this")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_identity_is_refused_until_trusted_when_configured() {
    use wa_socket::Event;
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mc = MessengerConfig {
        trust_changed_identities: false,
        ..MessengerConfig::default()
    };
    let mut a1 = link_with(&sim, A, memory_store("a1"), mc).await;
    let k = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("before"))
        .await
        .unwrap();
    wait_until("B's phone decrypts", || {
        sim.phone_inbox(B).iter().any(|m| m.id == k.id)
    })
    .await;

    // B reinstalls without the server saying so; what its phone writes now is refused.
    sim.reset_identity(B, false).unwrap();
    let first = sim
        .phone_send(B, &Jid::pn(A), text("new phone"))
        .await
        .unwrap();
    let change = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(Event::IdentityChange(c)) = a1.events.recv().await {
                return c;
            }
        }
    })
    .await
    .expect("an identity change");
    assert!(change.implicit);
    assert!(!change.trusted);
    assert_eq!(change.jid.device, 0);
    assert_eq!(
        count_upserts(&mut a1.events, &first, Duration::from_millis(500)).await,
        0,
        "nothing from the untrusted identity is reported"
    );

    // Trusted by the application: the phone's next message goes through.
    a1.messenger.trust_identity(&change.jid).await.unwrap();
    let second = sim
        .phone_send(B, &Jid::pn(A), text("it is me"))
        .await
        .unwrap();
    let got = next_upsert(&mut a1.events, |m| m.key.id == second).await;
    assert_eq!(text_of(&got.message), Some("it is me"));
}
