//! Status updates through the facade, against wa-sim: the linked account posts a story
//! that the listed friend's phone opens, and a stranger's phone never sees.

mod common;

use std::time::Duration;

use wa::prelude::*;
use wa_sim::{PhoneMessage, Sim, SimConfig};

const ME: &str = "15550000001";
const FRIEND: &str = "15550000002";
const STRANGER: &str = "15550000003";

/// Message `id` once `phone`'s simulated phone has opened it (`what` names it when it
/// does not within 20 s).
async fn opened(sim: &Sim, phone: &str, id: &str, what: &str) -> PhoneMessage {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(m) = sim.phone_inbox(phone).into_iter().find(|m| m.id == id) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the phone of {phone} opens {what} in time"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_reaches_the_listed_friend_only() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    for p in [ME, FRIEND, STRANGER] {
        sim.add_account(p).await;
    }
    let sock = common::linked(&sim, ME).await;

    let key = sock
        .send_status(MessageContent::text("off to the sea"), &[Jid::pn(FRIEND)])
        .await
        .unwrap();
    assert_eq!(key.remote_jid, Jid::status_broadcast());
    assert!(key.from_me);
    let got = opened(&sim, FRIEND, &key.id, "the status").await;
    assert_eq!(got.chat, Jid::status_broadcast());
    assert_eq!(message_text(&got.message), Some("off to the sea"));
    assert!(sim.phone_inbox(STRANGER).iter().all(|m| m.id != key.id));

    // A prepared medium (here a video) goes out the same way through `relay_status`.
    let video = sock
        .media()
        .prepare_bytes(
            MediaKind::Video,
            b"not really a video, but bytes to upload",
            &MediaOptions::default(),
            None,
        )
        .await
        .unwrap();
    let key = sock.relay_status(video, &[Jid::pn(FRIEND)]).await.unwrap();
    let got = opened(&sim, FRIEND, &key.id, "the video status").await;
    assert_eq!(got.chat, Jid::status_broadcast());
    assert!(got.message.video_message.is_some());

    // An empty audience is refused before anything is sent.
    let err = sock
        .send_status(MessageContent::text("nobody"), &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("recipient"), "{err}");
    sock.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_follows_the_status_privacy_setting() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    for p in [ME, FRIEND, STRANGER] {
        sim.add_account(p).await;
    }
    let sock = common::linked(&sim, ME).await;

    // Contacts (the default) with no contact synced: nobody to send to.
    let err = sock
        .send_status_to_audience(MessageContent::text("nobody"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("recipient"), "{err}");

    // Only the friend, who is not even a contact.
    sim.set_status_privacy(ME, wa_sim::StatusPrivacyMode::Whitelist, &[Jid::pn(FRIEND)])
        .unwrap();
    let key = sock
        .send_status_to_audience(MessageContent::text("just you"))
        .await
        .unwrap();
    assert_eq!(key.remote_jid, Jid::status_broadcast());
    let got = opened(&sim, FRIEND, &key.id, "the status").await;
    assert_eq!(message_text(&got.message), Some("just you"));

    let video = sock
        .media()
        .prepare_bytes(
            MediaKind::Video,
            b"bytes standing in for a video",
            &MediaOptions::default(),
            None,
        )
        .await
        .unwrap();
    let key2 = sock.relay_status_to_audience(video).await.unwrap();
    let got = opened(&sim, FRIEND, &key2.id, "the video status").await;
    assert!(got.message.video_message.is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        sim.phone_inbox(STRANGER)
            .iter()
            .all(|m| m.id != key.id && m.id != key2.id)
    );
    sock.close().await;
}
