//! Reporting tokens end to end through wa-sim: 1:1, group and status sends carry a
//! `<reporting_token>` the server keeps, and the recipient recomputes the same token from
//! the content and message secret it decrypted; reactions carry none, and the
//! configuration can turn them off.

mod common;

use common::*;
use prost::Message as _;
use wa_binary::Jid;
use wa_messages::{
    MessageBuilder, MessageContent, MessageKey, MessengerConfig, WaMessage, reporting_token,
};
use wa_sim::{Sim, SimConfig};
use wa_testkit::next_upsert;

const A: &str = "15550000001";
const B: &str = "15550000002";

/// The token `received` carries by its content and secret, as `sender` sent it in `chat`.
fn recomputed(received: &WaMessage, sender: &Jid, chat: &Jid) -> Option<Vec<u8>> {
    let secret = received
        .message
        .message_context_info
        .as_ref()
        .and_then(|c| c.message_secret.as_deref())
        .expect("the message carries a secret");
    reporting_token(
        &received.message.encode_to_vec(),
        secret,
        &received.key.id,
        sender,
        chat,
    )
    .map(|t| t.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_carry_tokens_the_recipient_recomputes() {
    use wa_groups::{Groups, GroupsConfig};

    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    a1.messenger = a1
        .messenger
        .with_groups(Groups::new(a1.socket.clone(), &GroupsConfig::default()));
    let (a, b) = (Jid::pn(A), Jid::pn(B));

    // 1:1: the server kept the token, and B derives the same one from what it decrypted.
    let got = exchange(&a1, &mut b1, B, "report me if you must").await;
    let kept = sim
        .reporting_token(A, &got.key.id)
        .expect("a token was sent");
    assert_eq!(kept.len(), 16);
    assert_eq!(Some(kept.clone()), recomputed(&got, &a, &b));
    // It is bound to the chat: as if sent elsewhere, it would differ.
    assert_ne!(Some(kept), recomputed(&got, &a, &a));

    // A reaction is not reportable: no token.
    let reaction = a1
        .messenger
        .send_message(
            &b,
            MessageContent::Reaction {
                key: MessageKey::new(b.clone(), true, got.key.id.clone()),
                emoji: "👍".into(),
                sender_timestamp_ms: 1_700_000_000_000,
            },
        )
        .await
        .unwrap();
    next_upsert(&mut b1.events, |m| m.key.id == reaction.id).await;
    assert_eq!(sim.reporting_token(A, &reaction.id), None);

    // Group: the token names the group as the chat.
    let g = sim
        .phone_create_group(A, "team", std::slice::from_ref(&b))
        .expect("group created");
    let k = a1
        .messenger
        .send_message(&g, MessageContent::text("to the team"))
        .await
        .unwrap();
    let got = next_upsert(&mut b1.events, |m| m.key.id == k.id).await;
    let kept = sim
        .reporting_token(A, &k.id)
        .expect("a group token was sent");
    assert_eq!(Some(kept), recomputed(&got, &a, &g));

    // Status: the chat is status@broadcast.
    let k = a1
        .messenger
        .send_status(MessageContent::text("a story"), std::slice::from_ref(&b))
        .await
        .unwrap();
    let got = next_upsert(&mut b1.events, |m| m.key.id == k.id).await;
    let kept = sim
        .reporting_token(A, &k.id)
        .expect("a status token was sent");
    assert_eq!(Some(kept), recomputed(&got, &a, &Jid::status_broadcast()));

    // A message the server refuses (463: A is restricted and holds no token from B)
    // leaves no token behind.
    sim.restrict_account(A, true);
    let message = MessageBuilder::new(b.clone(), MessageContent::text("refused"))
        .build(&mut rand_core::OsRng)
        .unwrap();
    let err = a1
        .messenger
        .relay_message(&b, message, "3EB0REFUSED0001")
        .await
        .unwrap_err();
    assert!(matches!(err, wa_messages::Error::Nack(463)), "{err:?}");
    assert_eq!(sim.reporting_token(A, "3EB0REFUSED0001"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_can_be_turned_off() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let config = MessengerConfig {
        reporting_tokens: false,
        ..MessengerConfig::default()
    };
    let a1 = link_with(&sim, A, memory_store("a1"), config).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let got = exchange(&a1, &mut b1, B, "no token").await;
    assert!(recomputed(&got, &Jid::pn(A), &Jid::pn(B)).is_some());
    assert_eq!(sim.reporting_token(A, &got.key.id), None);
    // B's own sends still carry them.
    let back = exchange(&b1, &mut { a1 }, A, "with token").await;
    assert!(sim.reporting_token(B, &back.key.id).is_some());
}
