//! Bots through wa-sim: a message to a bot carries a message secret and the default
//! persona, an inline invocation reaches the chat wrapped and the bot as a second copy
//! keyed with the bot message secret, and the bot's replies (plain, or sealed with that
//! secret as `msmsg`) are received in the right chat.

mod common;

use common::*;
use wa_binary::Jid;
use wa_messages::{
    DEFAULT_BOT_PERSONA_ID, META_AI_BOT_USER, MessageContent, RelayOptions, bot_message_secret,
    meta_ai_jid,
};
use wa_proto::e2e::{Message, MessageContextInfo};
use wa_sim::{PhoneMessage, Sim, SimConfig};
use wa_testkit::next_upsert;

const A: &str = "15550000001";
const B: &str = "15550000002";
/// A phone number WhatsApp reserves for bots.
const BOT: &str = "13135550002";

fn context(m: &Message) -> &MessageContextInfo {
    m.message_context_info.as_ref().expect("messageContextInfo")
}

fn persona(m: &Message) -> Option<&str> {
    context(m)
        .bot_metadata
        .as_ref()
        .and_then(|b| b.persona_id.as_deref())
}

/// The text inside a `botInvokeMessage`.
fn invoked_text(m: &Message) -> Option<&str> {
    m.bot_invoke_message
        .as_ref()
        .and_then(|f| f.message.as_deref())
        .and_then(text_of)
}

async fn bot_got(sim: &Sim, id: &str) -> PhoneMessage {
    wait_until("the bot's phone decrypts it", || {
        sim.phone_inbox(BOT).iter().any(|m| m.id == id)
    })
    .await;
    sim.phone_inbox(BOT)
        .into_iter()
        .find(|m| m.id == id)
        .unwrap()
}

fn text(s: &str) -> Message {
    Message {
        conversation: Some(s.to_owned()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_a_bot_carries_a_secret_and_the_default_persona() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(BOT).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let bot = Jid::pn(BOT);
    assert!(bot.is_bot());

    // A message built elsewhere, without a secret: the send adds one, and the persona.
    let key = a1
        .messenger
        .relay_message(&bot, text("hello bot"), "3EB0B0740000000000")
        .await
        .unwrap();
    let got = bot_got(&sim, &key.id).await;
    assert_eq!(text_of(&got.message), Some("hello bot"));
    assert_eq!(persona(&got.message), Some(DEFAULT_BOT_PERSONA_ID));
    let secret = context(&got.message).message_secret.clone().unwrap();
    assert_eq!(secret.len(), 32);

    // A persona the caller chose is kept.
    let mut chosen = text("with my persona");
    chosen.message_context_info = Some(Box::new(MessageContextInfo {
        bot_metadata: Some(Box::new(wa_proto::ai_common::BotMetadata {
            persona_id: Some("42$1".into()),
            ..Default::default()
        })),
        ..Default::default()
    }));
    let key2 = a1
        .messenger
        .relay_message(&bot, chosen, "3EB0B0740000000001")
        .await
        .unwrap();
    assert_eq!(
        persona(&bot_got(&sim, &key2.id).await.message),
        Some("42$1")
    );

    // The bot answers with a plain message: an ordinary message in the chat with it.
    let plain = sim
        .phone_send(BOT, &Jid::pn(A), text("hi, I am a bot"))
        .await
        .unwrap();
    let r = next_upsert(&mut a1.events, |m| m.key.id == plain).await;
    assert_eq!(r.key.remote_jid, bot);
    assert!(!r.key.from_me);
    assert_eq!(text_of(&r.message), Some("hi, I am a bot"));

    // ... or sealed with the bot secret of the message it answers (`msmsg`).
    let sealed = sim
        .bot_reply(BOT, &got, &bot, &text("sealed answer"))
        .unwrap();
    let r = next_upsert(&mut a1.events, |m| m.key.id == sealed).await;
    assert_eq!(r.key.remote_jid, bot);
    assert_eq!(r.sender.to_non_ad(), bot);
    assert_eq!(text_of(&r.message), Some("sealed answer"));
    assert_eq!(r.bot_edit, None, "a first part edits nothing");

    // Streamed: later parts are sealed under the first part's id and say which part
    // they are.
    for (t, last) in [
        ("sealed answer, longer", false),
        ("sealed answer, done", true),
    ] {
        let part = sim
            .bot_reply_part(BOT, &got, &bot, &text(t), &sealed, last)
            .unwrap();
        let r = next_upsert(&mut a1.events, |m| m.key.id == part).await;
        assert_eq!(text_of(&r.message), Some(t));
        let kind = if last {
            wa_types::BotEditKind::Last
        } else {
            wa_types::BotEditKind::Inner
        };
        assert_eq!(
            r.bot_edit,
            Some(wa_types::BotEdit {
                kind,
                target_id: sealed.clone()
            })
        );
    }

    // A sealed reply to a message this device never saw cannot be opened: it is
    // reported as undecryptable (and nacked), never as a message.
    let mut unknown = got.clone();
    unknown.id = "3EB0UNKNOWN0000000".into();
    let lost = sim
        .bot_reply(BOT, &unknown, &bot, &text("for someone else"))
        .unwrap();
    let u = wa_testkit::next_event(&mut a1.events, |e| match e {
        wa_socket::Event::UndecryptableMessage(u) => Some(u),
        wa_socket::Event::MessagesUpsert(up) => {
            assert!(up.messages.iter().all(|m| m.key.id != lost), "opened?");
            None
        }
        _ => None,
    })
    .await;
    assert_eq!(u.key.id, lost);
    assert_eq!(u.key.remote_jid, bot);
}

/// Meta AI is addressed as `867051314767696@bot`: a bot id has no device list (the
/// server answers nothing for it), so the send goes to the id itself, and the sealed
/// reply comes from the id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_is_reached_by_its_bot_id() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(BOT).await;
    let meta_ai = sim.add_bot_id(BOT, META_AI_BOT_USER).unwrap();
    assert_eq!(meta_ai, meta_ai_jid());
    assert!(sim.add_bot_id(A, "12345").is_err(), "not a bot's number");
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mut a2 = link(&sim, A, memory_store("a2")).await;

    let key = a1
        .messenger
        .send_message(&meta_ai, MessageContent::text("hello Meta AI"))
        .await
        .unwrap();
    assert_eq!(key.remote_jid, meta_ai);
    let got = bot_got(&sim, &key.id).await;
    assert_eq!(text_of(&got.message), Some("hello Meta AI"));
    assert_eq!(persona(&got.message), Some(DEFAULT_BOT_PERSONA_ID));
    // Our other device files it under the bot id too.
    let mine = next_upsert(&mut a2.events, |m| m.key.id == key.id).await;
    assert!(mine.key.from_me);
    assert_eq!(mine.key.remote_jid, meta_ai);

    let sealed = sim
        .bot_reply(BOT, &got, &meta_ai, &text("I am Meta AI"))
        .unwrap();
    for events in [&mut a1.events, &mut a2.events] {
        let r = next_upsert(events, |m| m.key.id == sealed).await;
        assert_eq!(r.key.remote_jid, meta_ai);
        assert_eq!(r.sender.to_non_ad(), meta_ai);
        assert_eq!(text_of(&r.message), Some("I am Meta AI"));
    }
    // Another bot's id is not this bot's to answer from.
    let other = Jid::new("1061492271844689", wa_binary::Server::Bot);
    assert!(sim.bot_reply(BOT, &got, &other, &text("no")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_invocation_in_a_chat_reaches_the_bot_with_the_derived_secret() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    sim.add_account(BOT).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let (a, b, bot) = (Jid::pn(A), Jid::pn(B), Jid::pn(BOT));

    // Inline invocation of something that is not a bot is refused before anything is sent.
    let refused = a1
        .messenger
        .send_message_with(
            &b,
            MessageContent::text("@nobody"),
            &RelayOptions::default().inline_bot(b.clone()),
        )
        .await;
    assert!(matches!(refused, Err(wa_messages::Error::NotABot(_))));

    let key = a1
        .messenger
        .send_message_with(
            &b,
            MessageContent::text("@Meta AI what is a JID?"),
            &RelayOptions::default().inline_bot(bot.clone()),
        )
        .await
        .unwrap();
    assert_eq!(key.remote_jid, b);

    // B gets the text wrapped as botInvokeMessage, with the secret beside it.
    let seen = next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
    assert_eq!(invoked_text(&seen.message), Some("@Meta AI what is a JID?"));
    assert!(seen.message.extended_text_message.is_none());
    assert_eq!(persona(&seen.message), Some(DEFAULT_BOT_PERSONA_ID));
    let secret = context(&seen.message).message_secret.clone().unwrap();

    // The bot's phone gets the second copy: same wrapper, the derived bot secret and
    // the persona, but not the message secret itself.
    let copy = bot_got(&sim, &key.id).await;
    assert_eq!(copy.from.to_non_ad(), a);
    assert_eq!(invoked_text(&copy.message), Some("@Meta AI what is a JID?"));
    assert_eq!(persona(&copy.message), Some(DEFAULT_BOT_PERSONA_ID));
    assert!(context(&copy.message).message_secret.is_none());
    assert_eq!(
        context(&copy.message).bot_message_secret.as_deref(),
        Some(bot_message_secret(&secret).unwrap().as_slice())
    );

    // The bot answers in the chat, sealed with that secret: both sides open it and
    // file it under their chat with each other.
    let reply = sim
        .bot_reply(BOT, &copy, &b, &text("A JID names a user or a chat."))
        .unwrap();
    let at_a = next_upsert(&mut a1.events, |m| m.key.id == reply).await;
    assert_eq!(at_a.key.remote_jid, b);
    assert_eq!(at_a.sender.to_non_ad(), bot);
    assert_eq!(
        text_of(&at_a.message),
        Some("A JID names a user or a chat.")
    );
    let at_b = next_upsert(&mut b1.events, |m| m.key.id == reply).await;
    assert_eq!(at_b.key.remote_jid, a);
    assert_eq!(
        text_of(&at_b.message),
        Some("A JID names a user or a chat.")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_invocation_in_a_group_and_the_bots_answer_there() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    sim.add_account(BOT).await;
    let mut a1 = link(&sim, A, memory_store("ga1")).await;
    let mut b1 = link(&sim, B, memory_store("gb1")).await;
    let g = sim
        .phone_create_group(A, "team", &[Jid::pn(B)])
        .expect("group created");

    let key = a1
        .messenger
        .send_message_with(
            &g,
            MessageContent::text("@Meta AI plan lunch"),
            &RelayOptions::default().inline_bot(wa_binary::Jid::pn(BOT)),
        )
        .await
        .unwrap();
    let seen = next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
    assert_eq!(seen.key.remote_jid, g);
    assert_eq!(invoked_text(&seen.message), Some("@Meta AI plan lunch"));
    let secret = context(&seen.message).message_secret.clone().unwrap();
    let copy = bot_got(&sim, &key.id).await;
    assert_eq!(
        context(&copy.message).bot_message_secret.as_deref(),
        Some(bot_message_secret(&secret).unwrap().as_slice())
    );

    let reply = sim
        .bot_reply(BOT, &copy, &g, &text("Pizza at noon."))
        .unwrap();
    for events in [&mut a1.events, &mut b1.events] {
        let got = next_upsert(events, |m| m.key.id == reply).await;
        assert_eq!(got.key.remote_jid, g);
        assert_eq!(text_of(&got.message), Some("Pizza at noon."));
    }
}
