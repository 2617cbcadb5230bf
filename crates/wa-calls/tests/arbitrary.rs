//! Arbitrary stanzas built from the tags and attributes the call parsers look at, with
//! random values, and arbitrary bytes through the binary decoder: the parsers return a
//! value or an error, never panic, and what they return respects its bounds.

use proptest::prelude::*;
use wa_binary::Node;
use wa_calls::{MAX_CALL_ID, MAX_LINK_TOKEN, parse_call, parse_link_create_reply};

const TAGS: &[&str] = &[
    "call",
    "offer",
    "offer_notice",
    "accept",
    "preaccept",
    "reject",
    "terminate",
    "relaylatency",
    "transport",
    "audio",
    "video",
    "link_create",
    "error",
    "group",
];
const KEYS: &[&str] = &[
    "from",
    "id",
    "t",
    "offline",
    "call-id",
    "call-creator",
    "caller_pn",
    "group-jid",
    "type",
    "media",
    "reason",
    "latency",
    "token",
    "code",
    "text",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1555@s.whatsapp.net".to_owned()),
        Just("123-456@g.us".to_owned()),
        Just("99@lid".to_owned()),
        Just("group".to_owned()),
        Just("video".to_owned()),
        Just("timeout".to_owned()),
        Just("403".to_owned()),
        "[0-9A-F]{0,40}",
        ".{0,12}",
        "x{120,300}",
    ]
}

fn node() -> impl Strategy<Value = Node> {
    wa_testkit::arbitrary_node(TAGS, KEYS, value())
}

fn check(n: &Node) -> Result<(), TestCaseError> {
    if let Ok(ev) = parse_call(n) {
        prop_assert!(!ev.id.is_empty() && ev.id.len() <= MAX_CALL_ID);
        prop_assert_eq!(n.tag(), "call");
        if let Some(g) = &ev.group_jid {
            prop_assert!(g.is_group());
        }
    }
    if let Ok(token) = parse_link_create_reply(n) {
        prop_assert!(!token.is_empty() && token.len() <= MAX_LINK_TOKEN);
    }
    Ok(())
}

proptest! {
    #[test]
    fn parsers_never_panic(n in node()) {
        check(&n)?;
    }

    #[test]
    fn decoded_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(n) = wa_binary::decode(bytes::Bytes::from(bytes)) {
            check(&n)?;
        }
    }
}
