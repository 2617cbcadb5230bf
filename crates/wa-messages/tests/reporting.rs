//! Reporting tokens against tokens computed by Baileys 7.0.0-rc14
//! (tests/vectors/reporting_tokens.json, see tests/vectors/NOTE.md).

use prost::Message as _;
use serde_json::Value;
use wa_binary::Jid;
use wa_messages::{reporting_content, reporting_token, should_include_reporting_token};
use wa_proto::e2e::Message;

fn cases() -> Vec<Value> {
    let v: Value = serde_json::from_str(include_str!("vectors/reporting_tokens.json"))
        .expect("vector file parses");
    v["cases"].as_array().expect("cases").clone()
}

fn hex_of(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(v[key].as_str().expect("hex field")).expect("hex decodes")
}

fn jid(v: &Value, key: &str) -> Jid {
    v[key]
        .as_str()
        .expect("jid field")
        .parse()
        .expect("jid parses")
}

#[test]
fn tokens_match_baileys() {
    let mut checked = 0;
    for case in cases() {
        let name = case["name"].as_str().expect("name");
        let plaintext = hex_of(&case, "messageHex");
        let message = Message::decode(plaintext.as_slice()).expect("vector message decodes");
        assert_eq!(
            should_include_reporting_token(&message),
            case["include"].as_bool().expect("include"),
            "{name}: include rule"
        );
        if case.get("secretHex").is_none() {
            continue;
        }
        let token = reporting_token(
            &plaintext,
            &hex_of(&case, "secretHex"),
            case["id"].as_str().expect("id"),
            &jid(&case, "sender"),
            &jid(&case, "chat"),
        );
        let expected = case["tokenHex"]
            .as_str()
            .map(|h| hex::decode(h).expect("hex"));
        assert_eq!(token.map(|t| t.to_vec()), expected, "{name}: token");
        checked += usize::from(expected.is_some());
    }
    assert!(checked >= 14, "only {checked} tokens compared");
}

#[test]
fn device_parts_do_not_change_the_token() {
    let case = &cases()[0];
    let plaintext = hex_of(case, "messageHex");
    let secret = hex_of(case, "secretHex");
    let id = case["id"].as_str().expect("id");
    let sender = jid(case, "sender");
    let chat = jid(case, "chat");
    let with_device: Jid = format!("{}:7@s.whatsapp.net", sender.user)
        .parse()
        .expect("jid");
    let plain = reporting_token(&plaintext, &secret, id, &sender, &chat);
    assert!(plain.is_some());
    assert_eq!(
        reporting_token(&plaintext, &secret, id, &with_device, &chat),
        plain
    );
    // Every input counts: another id, sender order or secret gives another token.
    assert_ne!(
        reporting_token(&plaintext, &secret, "OTHER", &sender, &chat),
        plain
    );
    assert_ne!(
        reporting_token(&plaintext, &secret, id, &chat, &sender),
        plain
    );
    assert_ne!(
        reporting_token(&plaintext, &[1u8; 32], id, &sender, &chat),
        plain
    );
    assert_eq!(reporting_token(&plaintext, &[], id, &sender, &chat), None);
}

#[test]
fn fields_outside_the_table_do_not_change_the_token() {
    // The message secret lives in messageContextInfo (field 35, not in the table): the
    // extract of the vector message is the extract of its conversation alone.
    let case = &cases()[0];
    let message = Message::decode(hex_of(case, "messageHex").as_slice()).expect("decodes");
    let bare = Message {
        conversation: message.conversation.clone(),
        ..Default::default()
    };
    assert_eq!(
        reporting_content(&hex_of(case, "messageHex")),
        Some(bare.encode_to_vec())
    );
}

proptest::proptest! {
    /// Any bytes: a result or a refusal, never a panic, and never longer than the input.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        if let Some(out) = reporting_content(&data) {
            proptest::prop_assert!(out.len() <= data.len());
        }
    }

    /// A message with random text and a random unlisted field: the extract ignores the
    /// unlisted field, whatever its value.
    #[test]
    fn unlisted_fields_never_count(text in ".{0,64}", caption in ".{0,64}") {
        let bare = Message { conversation: Some(text.clone()), ..Default::default() };
        let mut noisy = bare.clone();
        noisy.message_context_info = Some(Box::new(wa_proto::e2e::MessageContextInfo {
            message_secret: Some(caption.into_bytes()),
            ..Default::default()
        }));
        proptest::prop_assert_eq!(
            reporting_content(&noisy.encode_to_vec()),
            reporting_content(&bare.encode_to_vec())
        );
    }
}
