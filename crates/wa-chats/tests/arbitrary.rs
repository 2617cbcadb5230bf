//! Arbitrary stanzas built from the tags and attributes the parsers look at, with random
//! values: every parser returns a value or an error, never panics, and what it returns
//! respects its bounds.

use proptest::prelude::*;
use wa_binary::{Jid, Node};
use wa_chats::{
    MAX_BLOCKLIST, parse_blocklist, parse_blocklist_notification, parse_bot_profile,
    parse_chat_state, parse_disappearing_mode, parse_picture, parse_picture_notification,
    parse_presence, parse_privacy, parse_status, parse_status_privacy,
};
use wa_chats::{parse_business_message_link, parse_contact_qr_code, parse_contact_qr_target};

const TAGS: &[&str] = &[
    "presence",
    "chatstate",
    "composing",
    "paused",
    "privacy",
    "category",
    "list",
    "item",
    "blocklist",
    "picture",
    "usync",
    "user",
    "status",
    "disappearing_mode",
    "set",
    "delete",
    "error",
    "iq",
    "bot",
    "profile",
    "commands",
    "command",
    "prompts",
    "prompt",
    "description",
    "qr",
    "message",
    "business",
];
const KEYS: &[&str] = &[
    "from",
    "participant",
    "type",
    "last",
    "media",
    "name",
    "value",
    "jid",
    "action",
    "dhash",
    "id",
    "url",
    "direct_path",
    "t",
    "code",
    "duration",
    "default",
    "notify",
    "is_signed",
    "verified_name",
    "verified_level",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1555@s.whatsapp.net".to_owned()),
        Just("123-456@g.us".to_owned()),
        Just("deny".to_owned()),
        Just("audio".to_owned()),
        Just("unavailable".to_owned()),
        Just("block".to_owned()),
        Just("all".to_owned()),
        Just("last".to_owned()),
        Just("401".to_owned()),
        Just("whitelist".to_owned()),
        Just("blacklist".to_owned()),
        Just("contacts".to_owned()),
        Just("true".to_owned()),
        Just("ABCDEFGHIJKL1".to_owned()),
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
        let me = Jid::pn("1555");
        let _ = parse_presence(&n);
        let _ = parse_chat_state(&n);
        let _ = parse_privacy(&n);
        if let Ok(list) = parse_blocklist(&n) {
            prop_assert!(list.len() <= MAX_BLOCKLIST);
        }
        if let Ok(Some(u)) = parse_blocklist_notification(&n) {
            prop_assert!(u.changes.len() <= MAX_BLOCKLIST);
        }
        if let Ok(Some(p)) = parse_picture(&n) {
            prop_assert!(p.url.len() <= wa_chats::MAX_URL_LEN);
        }
        if let Ok(Some(s)) = parse_status(&n, &me) {
            prop_assert!(s.text.len() <= wa_chats::MAX_STATUS_LEN);
        }
        let _ = parse_disappearing_mode(&n, &me);
        if let Ok(Some(b)) = parse_bot_profile(&n, &me) {
            prop_assert!(b.commands.len() <= wa_chats::MAX_BOT_ITEMS);
            prop_assert!(b.prompts.len() <= wa_chats::MAX_BOT_ITEMS);
        }
        if let Ok(changes) = parse_picture_notification(&n) {
            prop_assert!(changes.len() <= wa_chats::MAX_PICTURE_CHANGES);
            for c in &changes {
                prop_assert_eq!(c.removed, c.picture_id.is_none());
                prop_assert!(
                    c.picture_id
                        .as_ref()
                        .is_none_or(|i| i.len() <= wa_chats::MAX_PICTURE_ID_LEN)
                );
            }
        }
        if let Ok(code) = parse_contact_qr_code(&n) {
            prop_assert!(!code.is_empty() && code.len() <= wa_chats::MAX_LINK_CODE_LEN);
        }
        if let Ok(t) = parse_contact_qr_target(&n) {
            prop_assert!(t.kind.len() <= wa_chats::MAX_LINK_NAME_LEN);
        }
        if let Ok(l) = parse_business_message_link(&n) {
            prop_assert!(l.message.is_none_or(|m| m.len() <= wa_chats::MAX_LINK_MESSAGE_LEN));
            prop_assert!(l.verified_name.is_none_or(|m| m.len() <= wa_chats::MAX_LINK_NAME_LEN));
        }
        if let Ok(lists) = parse_status_privacy(&n) {
            prop_assert!(!lists.is_empty());
            prop_assert!(lists.len() <= wa_chats::MAX_STATUS_PRIVACY_LISTS);
            prop_assert!(lists.iter().filter(|l| l.is_default).count() <= 1);
            prop_assert!(lists.iter().skip(1).all(|l| !l.is_default));
            for l in &lists {
                prop_assert!(l.list.len() <= wa_chats::MAX_STATUS_PRIVACY_USERS);
            }
        }
    }
}
