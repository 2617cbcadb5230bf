//! Arbitrary stanzas built from the tags and attributes the group and community parsers
//! look at, with random values: every parser returns a value or an error, never panics,
//! and what it returns respects its bounds.

use proptest::prelude::*;
use wa_binary::Node;
use wa_groups::{
    MAX_PARTICIPANTS, MAX_SUB_GROUPS, parse_group_reply, parse_linked_participants_reply,
    parse_notification, parse_participants_reply, parse_sub_groups_reply,
};

const TAGS: &[&str] = &[
    "iq",
    "notification",
    "group",
    "participant",
    "sub_groups",
    "linked_groups_participants",
    "link",
    "unlink",
    "parent",
    "linked_parent",
    "default_sub_group",
    "create",
    "add",
    "description",
    "body",
    "ephemeral",
];
const KEYS: &[&str] = &[
    "from",
    "id",
    "jid",
    "subject",
    "s_t",
    "creation",
    "creator",
    "size",
    "link_type",
    "unlink_type",
    "unlink_reason",
    "participant",
    "t",
    "type",
    "expiration",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1555@s.whatsapp.net".to_owned()),
        Just("123-456@g.us".to_owned()),
        Just("123-456".to_owned()),
        Just("sub_group".to_owned()),
        Just("admin".to_owned()),
        "[0-9]{0,25}",
        ".{0,12}",
    ]
}

fn node() -> impl Strategy<Value = Node> {
    wa_testkit::arbitrary_node(TAGS, KEYS, value())
}

proptest! {
    #[test]
    fn parsers_never_panic(n in node()) {
        if let Ok(m) = parse_group_reply(&n) {
            prop_assert!(m.participants.len() <= MAX_PARTICIPANTS);
        }
        if let Ok(subs) = parse_sub_groups_reply(&n) {
            prop_assert!(subs.len() <= MAX_SUB_GROUPS);
            prop_assert!(subs.iter().all(|g| g.jid.is_group()));
        }
        if let Ok(members) = parse_linked_participants_reply(&n) {
            prop_assert!(members.len() <= MAX_PARTICIPANTS);
        }
        if let Ok(u) = parse_notification(&n) {
            prop_assert!(u.group.is_group());
        }
        let _ = parse_participants_reply(&n, "add");
    }
}
