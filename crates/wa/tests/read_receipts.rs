//! Read receipts follow the account's read-receipts privacy setting, as in Baileys: with
//! `all` the sender sees its message read; with `none` only our own devices learn it
//! (`read-self`), also when the setting was changed on another device.

mod common;

use std::time::Duration;

use wa::prelude::*;
use wa::{Events, MessageUpdate, PrivacySetting, PrivacyValue, ReceiptType};
use wa_sim::{Sim, SimConfig};

const ME: &str = "15550000001";
const FRIEND: &str = "15550000002";

/// The receipt update of kind `kind` for message `id`, if one arrives within `within`.
async fn receipt(
    events: &mut Events,
    id: &str,
    kind: ReceiptType,
    within: Duration,
) -> Option<MessageUpdate> {
    common::wait_for(events, within, |e| match e {
        Event::MessagesUpdate(updates) => updates
            .into_iter()
            .find(|u| u.key.id == id && u.receipt == kind),
        _ => None,
    })
    .await
}

/// Sends `text` from `from` to `to` and returns its key as `reader` has it.
async fn deliver_to(from: &WaSocket, to: &Jid, reader: &mut Events, text: &str) -> MessageKey {
    let key = from
        .send_message(to, MessageContent::text(text))
        .await
        .unwrap();
    let got = common::wait_for(reader, Duration::from_secs(20), |e| match e {
        Event::MessagesUpsert(u) => u.messages.into_iter().find(|m| m.key.id == key.id),
        _ => None,
    })
    .await
    .expect("the message arrives");
    got.key
}

/// Sends `text` from `from` to `ME` and returns its key once `reader` has it.
async fn deliver(from: &WaSocket, reader: &mut Events, text: &str) -> MessageKey {
    deliver_to(from, &Jid::pn(ME), reader, text).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_follow_the_privacy_setting() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(ME).await;
    sim.add_account(FRIEND).await;
    let me = common::linked(&sim, ME).await;
    let other_device = common::linked(&sim, ME).await;
    let friend = common::linked(&sim, FRIEND).await;
    let mut me_events = me.events();
    let mut other_events = other_device.events();
    let mut friend_events = friend.events();

    // The default setting (`all`): the sender sees the message read.
    assert_eq!(
        me.chats().read_receipt_type().await.unwrap(),
        ReceiptType::Read
    );
    let first = deliver(&friend, &mut me_events, "first").await;
    me.read_messages(std::slice::from_ref(&first))
        .await
        .unwrap();
    let read = receipt(
        &mut friend_events,
        &first.id,
        ReceiptType::Read,
        Duration::from_secs(20),
    )
    .await
    .expect("the friend sees the first message read");
    assert_eq!(read.key.remote_jid, Jid::pn(ME));
    assert!(read.key.from_me);

    // Turned off on the other device: this one learns it from the server's notice.
    other_device
        .chats()
        .set_privacy(PrivacySetting::ReadReceipts, PrivacyValue::None)
        .await
        .unwrap();
    common::wait_for(&mut me_events, Duration::from_secs(20), |e| match e {
        Event::PrivacyUpdate(p) => (p.read_receipts == Some(PrivacyValue::None)).then_some(()),
        _ => None,
    })
    .await
    .expect("the change reaches this device");
    assert_eq!(
        me.chats().read_receipt_type().await.unwrap(),
        ReceiptType::ReadSelf
    );

    let second = deliver(&friend, &mut me_events, "second").await;
    me.read_messages(std::slice::from_ref(&second))
        .await
        .unwrap();
    // Our other device learns the message was read, in the friend's chat.
    let own = receipt(
        &mut other_events,
        &second.id,
        ReceiptType::ReadSelf,
        Duration::from_secs(20),
    )
    .await
    .expect("our other device gets the read-self receipt");
    assert_eq!(own.key.remote_jid, Jid::pn(FRIEND));
    assert!(!own.key.from_me);
    // The friend does not.
    assert!(
        receipt(
            &mut friend_events,
            &second.id,
            ReceiptType::Read,
            Duration::from_millis(1500),
        )
        .await
        .is_none(),
        "the friend saw a message read with read receipts off"
    );

    // In a group, our other device learns whose message was read: the key names the
    // friend who sent it (the receipt's `recipient`), not our own device that read it.
    let group = friend
        .groups()
        .create("Readers", &[Jid::pn(ME)])
        .await
        .unwrap()
        .id
        .clone();
    let key = deliver_to(&friend, &group, &mut me_events, "in the group").await;
    me.read_messages(std::slice::from_ref(&key)).await.unwrap();
    let own = receipt(
        &mut other_events,
        &key.id,
        ReceiptType::ReadSelf,
        Duration::from_secs(20),
    )
    .await
    .expect("our other device gets the group read-self receipt");
    assert_eq!(own.key.remote_jid, group);
    assert!(!own.key.from_me);
    assert_eq!(own.key.participant, Some(Jid::pn(FRIEND)));
}
