//! Arbitrary `privacy_token` notifications: the parser returns tokens or nothing, never
//! panics, and what it returns respects its bounds.

use proptest::prelude::*;
use wa_binary::{Node, Value};
use wa_socket::privacy_token::{applies_to, parse_notification};
use wa_store::MAX_PRIVACY_TOKEN_LEN;

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1555@s.whatsapp.net".to_owned()),
        Just("1555:3@s.whatsapp.net".to_owned()),
        Just("987@lid".to_owned()),
        Just("123-456@g.us".to_owned()),
        Just("0@s.whatsapp.net".to_owned()),
        Just("trusted_contact".to_owned()),
        "[0-9]{0,21}",
        "-[0-9]{1,5}",
        ".{0,12}",
    ]
}

fn token() -> impl Strategy<Value = Node> {
    (
        prop::sample::select(&["token", "other"][..]),
        prop::collection::vec(
            (prop::sample::select(&["jid", "t", "type"][..]), value()),
            0..4,
        ),
        prop::option::of(prop_oneof![
            prop::collection::vec(any::<u8>(), 0..48),
            prop::collection::vec(
                any::<u8>(),
                MAX_PRIVACY_TOKEN_LEN..MAX_PRIVACY_TOKEN_LEN + 3
            ),
        ]),
    )
        .prop_map(|(tag, attrs, bytes)| {
            let mut b = Node::builder(tag);
            for (k, v) in attrs {
                b = b.attr(k, Value::sniff(v));
            }
            if let Some(bytes) = bytes {
                b = b.bytes(bytes);
            }
            b.build()
        })
}

fn notification() -> impl Strategy<Value = Node> {
    (
        prop::collection::vec(
            (
                prop::sample::select(&["from", "sender_lid", "t", "type"][..]),
                value(),
            ),
            0..4,
        ),
        prop::option::of(prop::collection::vec(token(), 0..80)),
    )
        .prop_map(|(attrs, tokens)| {
            let mut b = Node::builder("notification");
            for (k, v) in attrs {
                b = b.attr(k, Value::sniff(v));
            }
            if let Some(tokens) = tokens {
                b = b.children([Node::builder("tokens").children(tokens).build()]);
            }
            b.build()
        })
}

proptest! {
    #[test]
    fn parsing_never_panics_and_stays_bounded(n in notification()) {
        let got = parse_notification(&n);
        prop_assert!(got.len() <= 64);
        for t in &got {
            prop_assert!(!t.token.is_empty() && t.token.len() <= MAX_PRIVACY_TOKEN_LEN);
            prop_assert!(t.timestamp > 0);
            prop_assert!(applies_to(&t.from));
            prop_assert_eq!(t.from.device, 0);
            if let Some(pn) = &t.pn {
                prop_assert!(pn.is_pn_user() && t.from.is_lid());
            }
        }
    }
}
