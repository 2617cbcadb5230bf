//! The channel and business layers reached through the facade, with every other layer
//! wired beside them (the messaging layer takes every `<message>` and `<ack>`): a post
//! reaches a follower as an event, and a product is read from another account.

mod common;

use std::time::Duration;

use wa::prelude::*;
use wa::{NewsletterKey, ProductCreate};
use wa_sim::{Sim, SimConfig};

const ADMIN: &str = "15550000031";
const FOLLOWER: &str = "15550000032";

/// A fully wired socket for `phone`, a new account of the sim, linked and logged in.
async fn linked(sim: &Sim, phone: &str) -> WaSocket {
    sim.add_account(phone).await;
    common::linked(sim, phone).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_post_and_catalog_through_the_facade() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let admin = linked(&sim, ADMIN).await;
    let follower = linked(&sim, FOLLOWER).await;
    let mut follower_events = follower.events();

    let ch = admin
        .newsletter()
        .create("Facade news", None)
        .await
        .unwrap()
        .id;
    follower.newsletter().follow(&ch).await.unwrap();
    let posted = admin
        .newsletter()
        .send_text(&ch, "via facade")
        .await
        .unwrap();
    let sid = posted.server_id.expect("stored");

    let got = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = follower_events.next().await {
            if let Event::NewsletterUpdate(update) = event
                && let NewsletterUpdate {
                    id,
                    change: NewsletterChange::Message(m),
                    ..
                } = *update
                && id == ch
            {
                return m;
            }
        }
        panic!("event stream ended");
    })
    .await
    .expect("the post arrives");
    assert_eq!(got.server_id, sid);
    assert_eq!(
        got.message.and_then(|m| m.conversation),
        Some("via facade".to_owned())
    );
    // The facade's send_message posts to a channel through the channel layer (a
    // channel is not an end-to-end encrypted chat); the messenger refuses it outright.
    let key = admin
        .send_message(&ch, MessageContent::text("sent like any message"))
        .await
        .unwrap();
    assert_eq!(key.remote_jid, ch);
    assert!(key.from_me);
    let recent = follower.newsletter().messages(&ch, 5, None).await.unwrap();
    let text = recent
        .iter()
        .find(|m| m.id.as_deref() == Some(key.id.as_str()))
        .and_then(|m| m.message.as_ref())
        .and_then(|m| message_text(m).map(str::to_owned));
    assert_eq!(text.as_deref(), Some("sent like any message"));
    assert!(matches!(
        admin
            .messages()
            .send_message(&ch, MessageContent::text("encrypted?"))
            .await,
        Err(wa_messages::Error::ChannelRecipient(j)) if j == ch
    ));
    let meta = follower
        .newsletter()
        .metadata(NewsletterKey::Jid(&ch))
        .await
        .unwrap();
    assert_eq!(meta.subscribers, Some(1));

    let product = admin
        .business()
        .product_create(&ProductCreate::new("Mug", 12_000, "USD"))
        .await
        .unwrap();
    let catalog = follower
        .business()
        .catalog(Some(&Jid::pn(ADMIN)), 10, None)
        .await
        .unwrap();
    assert_eq!(catalog.products, [product]);

    admin.close().await;
    follower.close().await;
}
