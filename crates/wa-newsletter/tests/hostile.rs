//! Random stanza trees and random bytes, built from the channel vocabulary, through every
//! parser: each call returns (an error or a value) instead of panicking, and lists stay
//! within their bounds.

use proptest::prelude::*;
use wa_binary::{Jid, Node};
use wa_newsletter::{
    MAX_MESSAGES, MAX_UPDATES, ops, parse_message, parse_messages_reply, parse_metadata,
    parse_mex_request, parse_mex_result, parse_notification,
};

const TAGS: &[&str] = &[
    "notification",
    "message",
    "messages",
    "message_updates",
    "live_updates",
    "reaction",
    "reactions",
    "view",
    "views_count",
    "participant",
    "update",
    "settings",
    "name",
    "description",
    "plaintext",
    "result",
    "mex",
    "query",
];
const KEYS: &[&str] = &[
    "type",
    "from",
    "server_id",
    "message_id",
    "id",
    "t",
    "count",
    "code",
    "jid",
    "action",
    "role",
    "op_name",
    "query_id",
    "participant",
];
const VALUES: &[&str] = &[
    "newsletter",
    "mex",
    "120363000000000042@newsletter",
    "15550000001@s.whatsapp.net",
    "7",
    "-1",
    "abc",
    "",
    "99999999999999999999",
    "ON",
    "ADMIN",
    "promote",
    "NotificationNewsletterUpdate",
];
const BODIES: &[&str] = &[
    r#"{"data":{"xwa2_newsletter":{"id":"1@newsletter","thread_metadata":{"name":"n"}}}}"#,
    r#"{"errors":[{"message":"x","extensions":{"error_code":"403"}}]}"#,
    r#"{"data":{"xwa2_notify_newsletter_on_join":{"id":"1@newsletter"},"xwa2_notify_newsletter_on_mute_change":{"id":"1@newsletter","mute":"ON"}}}"#,
    r#"{"operation":"NotificationNewsletterAdminPromote","updates":[{"jid":"1@newsletter","user":7}]}"#,
    r#"{"variables":{"newsletter_id":5}}"#,
    "null",
    "[",
];

fn arb_attrs() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    prop::collection::vec(
        (prop::sample::select(KEYS), prop::sample::select(VALUES)),
        0..5,
    )
}

fn arb_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        prop::sample::select(BODIES).prop_map(|b| Some(b.as_bytes().to_vec())),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
    ]
}

fn build(tag: &'static str, attrs: Vec<(&'static str, &'static str)>) -> wa_binary::NodeBuilder {
    let mut b = Node::builder(tag);
    for (k, v) in attrs {
        b = b.attr(k, v);
    }
    b
}

fn arb_node() -> impl Strategy<Value = Node> {
    let leaf = (prop::sample::select(TAGS), arb_attrs(), arb_bytes()).prop_map(|(t, a, b)| {
        let n = build(t, a);
        match b {
            Some(b) => n.bytes(b).build(),
            None => n.build(),
        }
    });
    leaf.prop_recursive(4, 96, 8, |inner| {
        (
            prop::sample::select(TAGS),
            arb_attrs(),
            prop::collection::vec(inner, 0..8),
        )
            .prop_map(|(t, a, c)| build(t, a).children(c).build())
    })
}

proptest! {
    #[test]
    fn parsers_never_panic_on_random_trees(node in arb_node()) {
        if let Ok(updates) = parse_notification(&node) {
            prop_assert!(updates.len() <= MAX_UPDATES);
        }
        if let Ok(msgs) = parse_messages_reply(&node) {
            prop_assert!(msgs.len() <= MAX_MESSAGES);
        }
        let _ = parse_message(&node);
        if let Ok(u) = wa_newsletter::parse_post(&node) {
            prop_assert!(u.id.is_newsletter());
        }
        let _ = parse_mex_request(&node);
        for op in ops::ALL {
            if let Ok(v) = parse_mex_result(&node, op) {
                let _ = parse_metadata(&v);
            }
        }
        // The same tree as a notification from a channel.
        let wrapped = Node::builder("notification")
            .attr("type", "newsletter")
            .attr("from", "120363000000000042@newsletter".parse::<Jid>().unwrap())
            .children([node])
            .build();
        let _ = parse_notification(&wrapped);
    }

    #[test]
    fn mex_results_never_panic_on_random_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let reply = Node::builder("iq")
            .children([Node::builder("result").bytes(body).build()])
            .build();
        for op in ops::ALL {
            let _ = parse_mex_result(&reply, op);
        }
    }
}
