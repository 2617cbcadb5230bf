//! Rebuilds the Message protobufs Baileys 7.0.0-rc14 produced (tests/vectors/messages.json)
//! with this crate's builder and requires identical bytes.

use base64::Engine as _;
use prost::Message as _;
use serde_json::Value;
use wa_binary::Jid;
use wa_messages::{
    Contact, Location, MessageBuilder, MessageContent, MessageKey, Poll, Quote, decode_plaintext,
};
use wa_proto::e2e::Message;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/messages.json")).expect("vector file parses")
}

fn vector(name: &str) -> Value {
    vectors()["messages"]
        .as_array()
        .expect("messages array")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("vector {name} present"))
        .clone()
}

fn jid(s: &str) -> Jid {
    s.parse().expect("vector jid parses")
}

fn secret_of(message_json: &Value) -> [u8; 32] {
    let b64 = message_json["messageContextInfo"]["messageSecret"]
        .as_str()
        .expect("vector has a message secret");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
        .try_into()
        .expect("32-byte secret")
}

/// An rng that must not be used: every field that would be random is set explicitly.
struct NoRng;
impl rand_core::RngCore for NoRng {
    fn next_u32(&mut self) -> u32 {
        panic!("randomness used although every random field was given")
    }
    fn next_u64(&mut self) -> u64 {
        panic!("randomness used although every random field was given")
    }
    fn fill_bytes(&mut self, _: &mut [u8]) {
        panic!("randomness used although every random field was given")
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), rand_core::Error> {
        panic!("randomness used although every random field was given")
    }
}
impl rand_core::CryptoRng for NoRng {}

/// Builds `content` for the vector's chat with the vector's secret (if any) and compares bytes.
fn check(
    name: &str,
    content: MessageContent,
    extra: impl FnOnce(MessageBuilder) -> MessageBuilder,
) {
    let v = vector(name);
    let message_json = &v["webMessageInfo"]["message"];
    let mut builder = extra(MessageBuilder::new(
        jid(v["jid"].as_str().expect("jid")),
        content,
    ));
    if message_json.get("messageContextInfo").is_some() {
        builder = builder.message_secret(secret_of(message_json));
    }
    let built = builder.build(&mut NoRng).expect("content builds");
    let expected = hex::decode(v["messageProtoHex"].as_str().expect("hex")).expect("hex decodes");
    assert_eq!(
        hex::encode(built.encode_to_vec()),
        hex::encode(&expected),
        "vector {name}"
    );
    assert_eq!(
        Message::decode(expected.as_slice()).expect("decodes"),
        built
    );
}

fn key(remote: &str, from_me: bool, id: &str) -> MessageKey {
    MessageKey::new(jid(remote), from_me, id)
}

#[test]
fn text_matches_baileys() {
    check("text", MessageContent::text("hello world"), |b| b);
}

#[test]
fn text_with_quote_and_mention_matches_baileys() {
    let quoted_key = key("120363000000000001@g.us", false, "3EB0AAAAAAAAAAAAAAAA")
        .with_participant(jid("15550000002@s.whatsapp.net"));
    let quoted = Message {
        conversation: Some("the quoted one".into()),
        ..Default::default()
    };
    let own = jid("15550000001:3@s.whatsapp.net");
    check(
        "text_mention_quote",
        MessageContent::text("hi @15550000002"),
        |b| {
            b.mentions([jid("15550000002@s.whatsapp.net")])
                .quote(Quote::new(quoted_key, quoted, &own))
        },
    );
}

#[test]
fn reaction_matches_baileys() {
    check(
        "reaction",
        MessageContent::Reaction {
            key: key("15550000002@s.whatsapp.net", false, "3EB0AAAAAAAAAAAAAAAA"),
            emoji: "\u{1F44D}".into(),
            sender_timestamp_ms: 1_700_000_000_000,
        },
        |b| b,
    );
}

#[test]
fn location_matches_baileys() {
    check(
        "location",
        MessageContent::Location(Location {
            latitude: 48.8584,
            longitude: 2.2945,
            name: Some("Eiffel".into()),
            address: None,
        }),
        |b| b,
    );
}

#[test]
fn contact_matches_baileys() {
    let vcard = vector("contact")["webMessageInfo"]["message"]["contactMessage"]["vcard"]
        .as_str()
        .expect("vcard")
        .to_owned();
    check(
        "contact",
        MessageContent::Contacts {
            display_name: None,
            contacts: vec![Contact {
                display_name: None,
                vcard,
            }],
        },
        |b| b,
    );
}

#[test]
fn single_choice_poll_matches_baileys() {
    check(
        "poll",
        MessageContent::Poll(Poll {
            name: "lunch?".into(),
            options: vec!["pizza".into(), "sushi".into()],
            selectable_count: 1,
            to_announcement_group: false,
        }),
        |b| b,
    );
}

#[test]
fn revoke_matches_baileys() {
    check(
        "delete",
        MessageContent::Revoke {
            key: key("15550000002@s.whatsapp.net", true, "3EB0BBBBBBBBBBBBBBBB"),
        },
        |b| b,
    );
}

#[test]
fn edit_matches_baileys() {
    check(
        "edit",
        MessageContent::Edit {
            key: key("15550000002@s.whatsapp.net", true, "3EB0BBBBBBBBBBBBBBBB"),
            new_content: Box::new(MessageContent::text("edited text")),
            timestamp_ms: 1_700_000_000_000,
        },
        |b| b,
    );
}

#[test]
fn disappearing_timer_matches_baileys() {
    check(
        "disappearing_toggle",
        MessageContent::DisappearingTimer {
            expiration_secs: 86_400,
        },
        |b| b,
    );
}

#[test]
fn content_only_text_matches_baileys() {
    let v = &vectors()["generateWAMessageContent"];
    let secret = secret_of(&v["output"]);
    let built = MessageBuilder::new(
        jid("15550000002@s.whatsapp.net"),
        MessageContent::text("content only"),
    )
    .message_secret(secret)
    .build(&mut NoRng)
    .expect("builds");
    assert_eq!(
        hex::encode(built.encode_to_vec()),
        v["hex"].as_str().expect("hex")
    );
}

#[test]
fn ephemeral_expiration_matches_baileys_after_removing_the_secret() {
    // generateWAMessageFromContent adds no message secret; ours is random, so drop it.
    let v = &vectors()["generateWAMessageFromContent"];
    let info_bytes = hex::decode(v["hex"].as_str().expect("hex")).expect("hex decodes");
    let info = wa_proto::web::WebMessageInfo::decode(info_bytes.as_slice()).expect("decodes");
    let expected = info.message.expect("has a message");
    let mut built = MessageBuilder::new(
        jid("15550000002@s.whatsapp.net"),
        MessageContent::text("raw content"),
    )
    .ephemeral_expiration(wa_messages::DEFAULT_EPHEMERAL_SECS)
    .build(&mut rand_core::OsRng)
    .expect("builds");
    let secret = built
        .message_context_info
        .take()
        .and_then(|c| c.message_secret)
        .expect("a secret was attached");
    assert_eq!(secret.len(), 32);
    assert_eq!(
        hex::encode(built.encode_to_vec()),
        hex::encode(expected.encode_to_vec())
    );
}

#[test]
fn padded_plaintexts_match_baileys() {
    let all = vectors();
    let messages = all["messages"].as_array().expect("messages");
    assert!(messages.len() >= 10);
    for v in messages {
        let name = v["name"].as_str().expect("name");
        let body = hex::decode(v["messageProtoHex"].as_str().expect("hex")).expect("hex");
        let padded = hex::decode(v["paddedHex"].as_str().expect("hex")).expect("hex");
        let n = *padded.last().expect("non-empty");
        assert_eq!(wa_signal::pad_message_with(&body, n), padded, "{name}");
        let decoded = decode_plaintext(&padded).expect("unpads and decodes");
        assert_eq!(decoded.encode_to_vec(), body, "{name}");
    }
}

#[test]
fn corrupt_padding_is_rejected() {
    let v = vector("text");
    let mut padded = hex::decode(v["paddedHex"].as_str().expect("hex")).expect("hex");
    let len = padded.len();
    padded[len - 2] ^= 0xFF;
    assert!(matches!(
        decode_plaintext(&padded),
        Err(wa_messages::Error::BadPadding)
    ));
    assert!(matches!(
        decode_plaintext(&[]),
        Err(wa_messages::Error::BadPadding)
    ));
}
