//! Known-answer vectors from Baileys 7.0.0-rc14 (see tests/vectors/NOTE.md): its encoded
//! `Message` and `WebMessageInfo` protobufs decode with the generated types, with every
//! field known to our schema, re-encode byte for byte, and mean what Baileys' JSON says.

use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, ReflectMessage as _, Value as Pv};
use serde_json::Value as Json;
use wa_proto::e2e::Message;
use wa_proto::web::WebMessageInfo;

fn vectors() -> Json {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/messages.json"
    ))
    .expect("vector file");
    serde_json::from_str(&text).expect("vector JSON")
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn no_unknown_fields(debug: &str) -> bool {
    debug.matches("UnknownFields(").count() == debug.matches("UnknownFields(0 bytes)").count()
}

/// Decodes with the generated type `M`, requires no unknown field anywhere and an
/// identical re-encoding, and returns the decoded value.
fn check_round_trip<M: prost::Message + Default + std::fmt::Debug>(bytes: &[u8], what: &str) -> M {
    let m = M::decode(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        no_unknown_fields(&format!("{m:?}")),
        "{what}: a field is unknown to our schema"
    );
    assert_eq!(m.encode_to_vec(), bytes, "{what}: re-encoding differs");
    m
}

/// Checks that every field of Baileys' JSON rendering is present in `msg` with the same
/// value. JSON names match our field names up to letter case (`remoteJid`/`remoteJID`).
fn assert_matches_json(json: &Json, msg: &DynamicMessage, path: &str, leaves: &mut usize) {
    let Json::Object(map) = json else {
        panic!("{path}: expected an object")
    };
    for (name, want) in map {
        let field = msg
            .descriptor()
            .fields()
            .find(|f| f.name().eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("{path}.{name}: no such field in our schema"));
        let path = format!("{path}.{name}");
        assert!(msg.has_field(&field), "{path}: missing after decoding");
        let have = msg.get_field(&field);
        match (want, have.as_ref()) {
            (Json::Array(items), Pv::List(values)) => {
                assert_eq!(items.len(), values.len(), "{path}: length");
                for (i, (w, h)) in items.iter().zip(values).enumerate() {
                    assert_value(w, h, &field.kind(), &format!("{path}[{i}]"), leaves);
                }
            }
            (w, h) => assert_value(w, h, &field.kind(), &path, leaves),
        }
    }
}

fn assert_value(want: &Json, have: &Pv, kind: &Kind, path: &str, leaves: &mut usize) {
    if !want.is_object() {
        *leaves += 1;
    }
    match (want, have) {
        (Json::Object(_), Pv::Message(m)) => assert_matches_json(want, m, path, leaves),
        (Json::String(s), Pv::String(h)) => assert_eq!(s, h, "{path}"),
        (Json::String(s), Pv::Bytes(h)) => {
            let b = base64::engine::general_purpose::STANDARD
                .decode(s)
                .expect("base64");
            assert_eq!(b, h.as_ref(), "{path}");
        }
        (Json::String(s), Pv::EnumNumber(n)) => {
            let Kind::Enum(e) = kind else {
                panic!("{path}: not an enum")
            };
            let v = e
                .get_value(*n)
                .unwrap_or_else(|| panic!("{path}: value {n} not in enum"));
            assert_eq!(v.name(), s, "{path}");
        }
        (Json::String(s), Pv::I64(h)) => assert_eq!(s.parse::<i64>().unwrap(), *h, "{path}"),
        (Json::String(s), Pv::U64(h)) => assert_eq!(s.parse::<u64>().unwrap(), *h, "{path}"),
        (Json::Number(n), Pv::U32(h)) => assert_eq!(n.as_u64(), Some(u64::from(*h)), "{path}"),
        (Json::Number(n), Pv::I32(h)) => assert_eq!(n.as_i64(), Some(i64::from(*h)), "{path}"),
        (Json::Number(n), Pv::U64(h)) => assert_eq!(n.as_u64(), Some(*h), "{path}"),
        (Json::Number(n), Pv::I64(h)) => assert_eq!(n.as_i64(), Some(*h), "{path}"),
        (Json::Number(n), Pv::F64(h)) => assert_eq!(n.as_f64(), Some(*h), "{path}"),
        (Json::Number(n), Pv::F32(h)) => assert_eq!(n.as_f64(), Some(f64::from(*h)), "{path}"),
        (Json::Number(n), Pv::EnumNumber(h)) => assert_eq!(n.as_i64(), Some(i64::from(*h))),
        (Json::Bool(b), Pv::Bool(h)) => assert_eq!(b, h, "{path}"),
        (w, h) => panic!("{path}: JSON {w} vs decoded {h:?}"),
    }
}

#[test]
fn baileys_messages_round_trip_and_match_their_json() {
    let v = vectors();
    let pool = DescriptorPool::decode(wa_proto::FILE_DESCRIPTOR_SET).unwrap();
    let wmi_desc = pool.get_message_by_name("wa.web.WebMessageInfo").unwrap();
    let cases = v["messages"].as_array().expect("messages");
    assert!(cases.len() >= 10);
    let mut leaves = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let msg: Message = check_round_trip(&hex(case["messageProtoHex"].as_str().unwrap()), name);
        let wmi: WebMessageInfo =
            check_round_trip(&hex(case["webMessageInfoHex"].as_str().unwrap()), name);
        assert_eq!(
            wmi.message.as_deref(),
            Some(&msg),
            "{name}: Message inside WebMessageInfo"
        );

        let dynamic = DynamicMessage::decode(wmi_desc.clone(), wmi.encode_to_vec().as_slice())
            .expect("prost-reflect decodes our encoding");
        assert_matches_json(&case["webMessageInfo"], &dynamic, name, &mut leaves);

        // The content type Baileys reports is the field that is set.
        let content = case["contentType"].as_str().unwrap();
        let top = &case["webMessageInfo"]["message"];
        assert!(
            top.get(content).is_some() || top["ephemeralMessage"]["message"].get(content).is_some(),
            "{name}: {content} not set"
        );
    }
    // Every vector contributes its key, timestamp, status and content fields.
    assert!(leaves > 100, "only {leaves} values compared");
}

#[test]
fn generated_content_vectors_round_trip() {
    let v = vectors();
    let content = &v["generateWAMessageContent"];
    let m: Message = check_round_trip(&hex(content["hex"].as_str().unwrap()), "content");
    assert_eq!(
        m.extended_text_message.as_ref().map(|t| t.text()),
        Some("content only")
    );

    let full = &v["generateWAMessageFromContent"];
    let w: WebMessageInfo = check_round_trip(&hex(full["hex"].as_str().unwrap()), "from content");
    let key = w.key.as_ref().expect("key");
    assert_eq!(key.remote_jid(), "15550000002@s.whatsapp.net");
    assert!(key.from_me());
    assert_eq!(key.id(), "3EB0FFFFFFFFFFFFFFFF");
    assert_eq!(w.message_timestamp(), 1_700_000_000);
    let text = w
        .message
        .as_ref()
        .and_then(|m| m.extended_text_message.as_ref())
        .unwrap();
    assert_eq!(text.text(), "raw content");
    assert_eq!(
        text.context_info.as_ref().map(|c| c.expiration()),
        Some(604_800)
    );
}

#[test]
fn quoted_text_with_mention_reads_through_typed_fields() {
    let v = vectors();
    let case = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "text_mention_quote")
        .expect("vector");
    let m = Message::decode(hex(case["messageProtoHex"].as_str().unwrap()).as_slice()).unwrap();
    let ext = m
        .extended_text_message
        .as_ref()
        .expect("extendedTextMessage");
    assert_eq!(ext.text(), "hi @15550000002");
    let ctx = ext.context_info.as_ref().expect("contextInfo");
    assert_eq!(ctx.stanza_id(), "3EB0AAAAAAAAAAAAAAAA");
    assert_eq!(
        ctx.mentioned_jid,
        vec!["15550000002@s.whatsapp.net".to_string()]
    );
    let quoted = ctx.quoted_message.as_deref().expect("quotedMessage");
    assert_eq!(quoted.conversation(), "the quoted one");
    assert_eq!(
        m.message_context_info
            .as_ref()
            .map(|c| c.message_secret().len()),
        Some(32)
    );
}
