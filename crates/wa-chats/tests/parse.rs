//! The parsers on well-formed and malformed stanzas: typed values or `Error::Malformed`,
//! never a panic.

use wa_binary::{Jid, Node};
use wa_chats::StatusPrivacyKind;
use wa_chats::{
    ChatState, Error, MAX_BLOCKLIST, PrivacySetting, PrivacyValue, parse_blocklist,
    parse_blocklist_notification, parse_chat_state, parse_disappearing_mode, parse_picture,
    parse_picture_notification, parse_presence, parse_privacy, parse_status, parse_status_privacy,
};
use wa_chats::{
    MAX_LINK_CODE_LEN, MAX_LINK_MESSAGE_LEN, MAX_LINK_NAME_LEN, parse_business_message_link,
    parse_contact_qr_code, parse_contact_qr_target,
};

fn malformed<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(
        matches!(r, Err(Error::Malformed(_))),
        "expected Malformed, got {r:?}"
    );
}

#[test]
fn presence_available_unavailable_and_last_seen() {
    let p = parse_presence(
        &Node::builder("presence")
            .attr("from", Jid::with_device("1555", wa_binary::Server::Pn, 3))
            .build(),
    )
    .unwrap();
    assert_eq!(p.jid, Jid::pn("1555"));
    assert!(p.available);
    assert_eq!(p.last_seen, None);
    let p = parse_presence(
        &Node::builder("presence")
            .attr("from", Jid::pn("1555"))
            .attr("type", "unavailable")
            .attr("last", "1700000000")
            .build(),
    )
    .unwrap();
    assert!(!p.available);
    assert_eq!(p.last_seen, Some(1_700_000_000));
    let p = parse_presence(
        &Node::builder("presence")
            .attr("from", Jid::pn("1555"))
            .attr("type", "unavailable")
            .attr("last", "deny")
            .build(),
    )
    .unwrap();
    assert_eq!(p.last_seen, None);
}

#[test]
fn presence_malformed() {
    malformed(parse_presence(&Node::builder("presence").build()));
    malformed(parse_presence(
        &Node::builder("presence").attr("from", "not a jid").build(),
    ));
    malformed(parse_presence(
        &Node::builder("presence")
            .attr("from", Jid::pn("1"))
            .attr("type", "bogus")
            .build(),
    ));
    malformed(parse_presence(
        &Node::builder("presence")
            .attr("from", Jid::pn("1"))
            .attr("last", "-5")
            .build(),
    ));
    malformed(parse_presence(
        &Node::builder("chatstate")
            .attr("from", Jid::pn("1"))
            .build(),
    ));
}

#[test]
fn chat_states() {
    let cs = |child: Node, participant: Option<Jid>| {
        Node::builder("chatstate")
            .attr("from", Jid::group("123-456"))
            .attr_opt("participant", participant)
            .children([child])
            .build()
    };
    let u = parse_chat_state(&cs(Node::new("composing"), Some(Jid::pn("77")))).unwrap();
    assert_eq!(u.chat, Jid::group("123-456"));
    assert_eq!(u.sender, Jid::pn("77"));
    assert_eq!(u.state, ChatState::Composing);
    let u = parse_chat_state(&cs(
        Node::builder("composing").attr("media", "audio").build(),
        None,
    ))
    .unwrap();
    assert_eq!(u.state, ChatState::Recording);
    assert_eq!(u.sender, u.chat);
    let u = parse_chat_state(&cs(Node::new("paused"), None)).unwrap();
    assert_eq!(u.state, ChatState::Paused);
    malformed(parse_chat_state(&cs(Node::new("dancing"), None)));
    malformed(parse_chat_state(
        &Node::builder("chatstate")
            .attr("from", Jid::pn("1"))
            .build(),
    ));
    malformed(parse_chat_state(
        &Node::builder("chatstate")
            .children([Node::new("paused")])
            .build(),
    ));
    malformed(parse_chat_state(
        &Node::builder("chatstate")
            .attr("from", Jid::pn("1"))
            .attr("participant", "nope")
            .children([Node::new("paused")])
            .build(),
    ));
}

fn privacy_reply(cats: &[(&str, &str)]) -> Node {
    Node::builder("iq")
        .children([Node::builder("privacy")
            .children(cats.iter().map(|(n, v)| {
                Node::builder("category")
                    .attr("name", n.to_string())
                    .attr("value", v.to_string())
                    .build()
            }))
            .build()])
        .build()
}

#[test]
fn privacy_settings_parse_and_validate() {
    let s = parse_privacy(&privacy_reply(&[
        ("last", "contacts"),
        ("online", "match_last_seen"),
        ("readreceipts", "none"),
        ("calladd", "known"),
        ("future_thing", "whatever"),
    ]))
    .unwrap();
    assert_eq!(s.last_seen, Some(PrivacyValue::Contacts));
    assert_eq!(s.online, Some(PrivacyValue::MatchLastSeen));
    assert_eq!(s.read_receipts, Some(PrivacyValue::None));
    assert_eq!(s.get(PrivacySetting::CallAdd), Some(PrivacyValue::Known));
    assert_eq!(s.profile_picture, None);
    malformed(parse_privacy(&Node::new("iq")));
    malformed(parse_privacy(&privacy_reply(&[("last", "everyone")])));
    let no_value = Node::builder("iq")
        .children([Node::builder("privacy")
            .children([Node::builder("category").attr("name", "last").build()])
            .build()])
        .build();
    malformed(parse_privacy(&no_value));
    let many: Vec<(&str, &str)> = (0..100).map(|_| ("last", "all")).collect();
    malformed(parse_privacy(&privacy_reply(&many)));
    for s in PrivacySetting::ALL {
        assert_eq!(PrivacySetting::from_wire(s.as_str()), Some(s));
        assert!(s.accepts(PrivacyValue::All));
    }
    assert!(!PrivacySetting::Online.accepts(PrivacyValue::Contacts));
    assert!(!PrivacySetting::ReadReceipts.accepts(PrivacyValue::Contacts));
    assert!(PrivacySetting::CallAdd.accepts(PrivacyValue::Known));
    assert!(!PrivacySetting::LastSeen.accepts(PrivacyValue::Known));
}

#[test]
fn blocklist_reply_and_notification() {
    let reply = Node::builder("iq")
        .children([Node::builder("list")
            .children([
                Node::builder("item").attr("jid", Jid::pn("1")).build(),
                Node::builder("item").attr("jid", Jid::pn("2")).build(),
            ])
            .build()])
        .build();
    assert_eq!(
        parse_blocklist(&reply).unwrap(),
        [Jid::pn("1"), Jid::pn("2")]
    );
    assert!(parse_blocklist(&Node::new("iq")).unwrap().is_empty());
    let bad = Node::builder("iq")
        .children([Node::builder("list").children([Node::new("item")]).build()])
        .build();
    malformed(parse_blocklist(&bad));
    let huge = Node::builder("iq")
        .children([Node::builder("list")
            .children((0..=MAX_BLOCKLIST).map(|_| Node::new("item")))
            .build()])
        .build();
    malformed(parse_blocklist(&huge));

    let n = Node::builder("notification")
        .attr("type", "account_sync")
        .children([Node::builder("blocklist")
            .attr("dhash", "abc")
            .children([
                Node::builder("item")
                    .attr("jid", Jid::pn("1"))
                    .attr("action", "block")
                    .build(),
                Node::builder("item")
                    .attr("jid", Jid::pn("2"))
                    .attr("action", "unblock")
                    .build(),
            ])
            .build()])
        .build();
    let u = parse_blocklist_notification(&n).unwrap().unwrap();
    assert_eq!(u.dhash.as_deref(), Some("abc"));
    assert_eq!(
        u.changes
            .iter()
            .map(|c| (c.jid.clone(), c.blocked))
            .collect::<Vec<_>>(),
        [(Jid::pn("1"), true), (Jid::pn("2"), false)]
    );
    assert!(
        parse_blocklist_notification(&Node::new("notification"))
            .unwrap()
            .is_none()
    );
    let bad_action = Node::builder("notification")
        .children([Node::builder("blocklist")
            .children([Node::builder("item")
                .attr("jid", Jid::pn("1"))
                .attr("action", "maybe")
                .build()])
            .build()])
        .build();
    malformed(parse_blocklist_notification(&bad_action));
}

#[test]
fn picture_replies() {
    let reply = Node::builder("iq")
        .children([Node::builder("picture")
            .attr("id", "42")
            .attr("url", "https://example/pp")
            .attr("type", "image")
            .build()])
        .build();
    let p = parse_picture(&reply).unwrap().unwrap();
    assert_eq!(
        (p.id.as_str(), p.url.as_str()),
        ("42", "https://example/pp")
    );
    assert_eq!(p.kind.as_deref(), Some("image"));
    assert!(parse_picture(&Node::new("iq")).unwrap().is_none());
    let no_id = Node::builder("iq")
        .children([Node::builder("picture").attr("url", "u").build()])
        .build();
    malformed(parse_picture(&no_id));
    let long = Node::builder("iq")
        .children([Node::builder("picture")
            .attr("id", "1")
            .attr("url", "x".repeat(10_000))
            .build()])
        .build();
    malformed(parse_picture(&long));
}

fn usync_reply(jid: Jid, child: Node) -> Node {
    Node::builder("iq")
        .children([Node::builder("usync")
            .children([Node::builder("list")
                .children([Node::builder("user")
                    .attr("jid", jid)
                    .children([child])
                    .build()])
                .build()])
            .build()])
        .build()
}

#[test]
fn status_and_disappearing_from_usync() {
    let me = Jid::pn("1555");
    let r = usync_reply(
        me.clone(),
        Node::builder("status")
            .attr("t", "1700")
            .bytes(b"hello".to_vec())
            .build(),
    );
    let s = parse_status(&r, &me).unwrap().unwrap();
    assert_eq!((s.text.as_str(), s.set_at), ("hello", Some(1700)));
    assert!(parse_status(&r, &Jid::pn("9")).unwrap().is_none());
    let hidden = usync_reply(
        me.clone(),
        Node::builder("status").attr("code", "401").build(),
    );
    assert_eq!(parse_status(&hidden, &me).unwrap().unwrap().text, "");
    let none = usync_reply(me.clone(), Node::new("status"));
    assert!(parse_status(&none, &me).unwrap().is_none());
    malformed(parse_status(
        &usync_reply(
            me.clone(),
            Node::builder("status").bytes(vec![0xFF, 0xFE]).build(),
        ),
        &me,
    ));
    malformed(parse_status(
        &usync_reply(
            me.clone(),
            Node::builder("status")
                .attr("t", "soon")
                .bytes(b"x".to_vec())
                .build(),
        ),
        &me,
    ));
    malformed(parse_status(&Node::new("iq"), &me));
    let err = usync_reply(
        me.clone(),
        Node::builder("status")
            .children([Node::builder("error").attr("code", "403").build()])
            .build(),
    );
    assert!(matches!(
        parse_status(&err, &me),
        Err(Error::Refused { code: 403, .. })
    ));

    let dm = usync_reply(
        me.clone(),
        Node::builder("disappearing_mode")
            .attr("duration", "86400")
            .build(),
    );
    assert_eq!(parse_disappearing_mode(&dm, &me).unwrap(), Some(86400));
    let bad = usync_reply(
        me.clone(),
        Node::builder("disappearing_mode")
            .attr("duration", "1d")
            .build(),
    );
    malformed(parse_disappearing_mode(&bad, &me));
}

fn status_list(kind: &str, default: bool, users: &[&str]) -> Node {
    Node::builder("list")
        .attr("type", kind.to_owned())
        .attr_opt("default", default.then_some("true"))
        .children(
            users
                .iter()
                .map(|u| {
                    Node::builder("user")
                        .attr("jid", Jid::pn((*u).to_owned()))
                        .build()
                })
                .collect::<Vec<_>>(),
        )
        .build()
}

fn status_reply(lists: Vec<Node>) -> Node {
    Node::builder("iq")
        .attr("type", "result")
        .children([Node::builder("privacy").children(lists).build()])
        .build()
}

#[test]
fn status_privacy_puts_the_default_list_first() {
    let reply = status_reply(vec![
        status_list("contacts", false, &[]),
        status_list("blacklist", false, &["2", "3"]),
        status_list("whitelist", true, &["4"]),
    ]);
    let lists = parse_status_privacy(&reply).unwrap();
    let kinds: Vec<_> = lists.iter().map(|l| (l.kind, l.is_default)).collect();
    assert_eq!(
        kinds,
        [
            (StatusPrivacyKind::Allowlist, true),
            (StatusPrivacyKind::Contacts, false),
            (StatusPrivacyKind::Denylist, false),
        ]
    );
    assert_eq!(lists[0].list, [Jid::pn("4")]);
    assert_eq!(lists[2].list, [Jid::pn("2"), Jid::pn("3")]);
    // A second list claiming to be default is not.
    let reply = status_reply(vec![
        status_list("blacklist", true, &["2"]),
        status_list("whitelist", true, &["4"]),
    ]);
    let lists = parse_status_privacy(&reply).unwrap();
    assert_eq!(lists[0].kind, StatusPrivacyKind::Denylist);
    assert!(lists[0].is_default && !lists[1].is_default);
}

#[test]
fn status_privacy_without_lists_is_contacts_and_devices_are_dropped() {
    let lists = parse_status_privacy(&status_reply(vec![])).unwrap();
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0].kind, StatusPrivacyKind::Contacts);
    assert!(lists[0].is_default && lists[0].list.is_empty());
    let with_device = Node::builder("list")
        .attr("type", "whitelist")
        .attr("default", "true")
        .children([
            Node::builder("user")
                .attr("jid", Jid::with_device("5", wa_binary::Server::Pn, 7))
                .build(),
            Node::builder("other").build(),
        ])
        .build();
    let lists = parse_status_privacy(&status_reply(vec![with_device])).unwrap();
    assert_eq!(lists[0].list, [Jid::pn("5")]);
}

#[test]
fn status_privacy_unknown_types_and_hostile_replies() {
    // An unknown list that is not in force is skipped...
    let reply = status_reply(vec![
        status_list("everyone_maybe", false, &["2"]),
        status_list("contacts", true, &[]),
    ]);
    let lists = parse_status_privacy(&reply).unwrap();
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0].kind, StatusPrivacyKind::Contacts);
    // ...but one in force is refused: the audience would be a guess.
    malformed(parse_status_privacy(&status_reply(vec![status_list(
        "everyone_maybe",
        true,
        &[],
    )])));
    malformed(parse_status_privacy(&Node::builder("iq").build()));
    malformed(parse_status_privacy(&status_reply(vec![
        Node::builder("list").build(),
    ])));
    let no_jid = Node::builder("list")
        .attr("type", "whitelist")
        .children([Node::builder("user").build()])
        .build();
    malformed(parse_status_privacy(&status_reply(vec![no_jid])));
    let many_lists = (0..=wa_chats::MAX_STATUS_PRIVACY_LISTS)
        .map(|_| status_list("contacts", false, &[]))
        .collect();
    malformed(parse_status_privacy(&status_reply(many_lists)));
    let users: Vec<String> = (0..=wa_chats::MAX_STATUS_PRIVACY_USERS)
        .map(|i| i.to_string())
        .collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    malformed(parse_status_privacy(&status_reply(vec![status_list(
        "whitelist",
        true,
        &users,
    )])));
}

#[test]
fn picture_notifications() {
    let g: Jid = "120363000000000001@g.us".parse().unwrap();
    let n = Node::builder("notification")
        .attr("type", "picture")
        .attr("t", "1700000000")
        .children([
            Node::builder("set")
                .attr("jid", g.clone())
                .attr("id", "1700000001")
                .attr("author", Jid::pn("1555"))
                .build(),
            Node::builder("delete").attr("jid", Jid::pn("1666")).build(),
            Node::builder("request")
                .attr("jid", Jid::pn("1777"))
                .build(),
            Node::builder("add")
                .attr("jid", Jid::pn("1888"))
                .attr("id", "7")
                .build(),
        ])
        .build();
    let u = parse_picture_notification(&n).unwrap();
    assert_eq!(u.len(), 3, "the unknown child is skipped");
    assert_eq!(u[0].jid, g);
    assert_eq!(u[0].picture_id.as_deref(), Some("1700000001"));
    assert_eq!(u[0].author, Some(Jid::pn("1555")));
    assert_eq!(u[0].timestamp, 1_700_000_000);
    assert!(!u[0].removed);
    assert!(u[1].removed && u[1].picture_id.is_none() && u[1].author.is_none());
    assert_eq!(u[2].picture_id.as_deref(), Some("7"));

    let one = |child: Node| Node::builder("notification").children([child]).build();
    malformed(parse_picture_notification(&one(Node::builder("set")
        .attr("id", "1")
        .build())));
    malformed(parse_picture_notification(&one(Node::builder("set")
        .attr("jid", Jid::pn("1"))
        .build())));
    malformed(parse_picture_notification(&one(Node::builder("set")
        .attr("jid", Jid::pn("1"))
        .attr("id", "x".repeat(wa_chats::MAX_PICTURE_ID_LEN + 1))
        .build())));
    let many: Vec<Node> = (0..=wa_chats::MAX_PICTURE_CHANGES)
        .map(|_| Node::builder("delete").attr("jid", Jid::pn("1")).build())
        .collect();
    malformed(parse_picture_notification(
        &Node::builder("notification").children(many).build(),
    ));
    malformed(parse_picture_notification(
        &Node::builder("notification").attr("t", "soon").build(),
    ));
}

fn qr_reply(qr: Node) -> Node {
    Node::builder("iq")
        .attr("type", "result")
        .children([qr])
        .build()
}

#[test]
fn contact_qr_code_replies() {
    let ok = qr_reply(
        Node::builder("qr")
            .attr("type", "contact")
            .attr("code", "ABCDEFGHIJKL1")
            .build(),
    );
    assert_eq!(parse_contact_qr_code(&ok).unwrap(), "ABCDEFGHIJKL1");
    malformed(parse_contact_qr_code(&Node::new("iq")));
    malformed(parse_contact_qr_code(&qr_reply(Node::new("qr"))));
    for bad in ["", "A/B", "a b", "\u{e9}"] {
        malformed(parse_contact_qr_code(&qr_reply(
            Node::builder("qr").attr("code", bad).build(),
        )));
    }
    malformed(parse_contact_qr_code(&qr_reply(
        Node::builder("qr")
            .attr("code", "A".repeat(MAX_LINK_CODE_LEN + 1))
            .build(),
    )));
    // A JID where a string belongs is not a code.
    malformed(parse_contact_qr_code(&qr_reply(
        Node::builder("qr").attr("code", Jid::pn("1555")).build(),
    )));
}

#[test]
fn contact_qr_target_replies() {
    let t = parse_contact_qr_target(&qr_reply(
        Node::builder("qr")
            .attr("jid", Jid::pn("1555"))
            .attr("notify", "Ann")
            .attr("type", "contact")
            .build(),
    ))
    .unwrap();
    assert_eq!(t.jid, Jid::pn("1555"));
    assert_eq!(t.push_name.as_deref(), Some("Ann"));
    assert_eq!(t.kind, "contact");
    let t = parse_contact_qr_target(&qr_reply(
        Node::builder("qr")
            .attr("jid", "1555@s.whatsapp.net")
            .attr("type", "contact")
            .build(),
    ))
    .unwrap();
    assert_eq!(t.push_name, None);

    malformed(parse_contact_qr_target(&Node::new("iq")));
    // No JID, a JID that does not parse, no type.
    malformed(parse_contact_qr_target(&qr_reply(
        Node::builder("qr").attr("type", "contact").build(),
    )));
    malformed(parse_contact_qr_target(&qr_reply(
        Node::builder("qr")
            .attr("jid", "@@@")
            .attr("type", "contact")
            .build(),
    )));
    malformed(parse_contact_qr_target(&qr_reply(
        Node::builder("qr")
            .attr("jid", "123-456@g.us")
            .attr("type", "contact")
            .build(),
    )));
    malformed(parse_contact_qr_target(&qr_reply(
        Node::builder("qr").attr("jid", Jid::pn("1555")).build(),
    )));
    malformed(parse_contact_qr_target(&qr_reply(
        Node::builder("qr")
            .attr("jid", Jid::pn("1555"))
            .attr("type", "contact")
            .attr("notify", "n".repeat(MAX_LINK_NAME_LEN + 1))
            .build(),
    )));
}

#[test]
fn business_message_link_replies() {
    let full = qr_reply(
        Node::builder("qr")
            .attr("jid", Jid::pn("1555"))
            .attr("notify", "Shop")
            .children([
                Node::builder("message")
                    .bytes(b"Hi, I'd like".to_vec())
                    .build(),
                Node::builder("business")
                    .attr("is_signed", "true")
                    .attr("verified_name", "Shop Ltd")
                    .attr("verified_level", "high")
                    .build(),
            ])
            .build(),
    );
    let l = parse_business_message_link(&full).unwrap();
    assert_eq!(l.jid, Jid::pn("1555"));
    assert_eq!(l.push_name.as_deref(), Some("Shop"));
    assert_eq!(l.message.as_deref(), Some("Hi, I'd like"));
    assert!(l.is_signed);
    assert_eq!(l.verified_name.as_deref(), Some("Shop Ltd"));
    assert_eq!(l.verified_level.as_deref(), Some("high"));

    // Only the JID is required.
    let bare = parse_business_message_link(&qr_reply(
        Node::builder("qr").attr("jid", Jid::pn("1555")).build(),
    ))
    .unwrap();
    assert_eq!(bare.message, None);
    assert!(!bare.is_signed);
    assert_eq!(bare.verified_name, None);

    malformed(parse_business_message_link(&Node::new("iq")));
    malformed(parse_business_message_link(&qr_reply(Node::new("qr"))));
    let with = |children: Vec<Node>| {
        qr_reply(
            Node::builder("qr")
                .attr("jid", Jid::pn("1555"))
                .children(children)
                .build(),
        )
    };
    // A business element without is_signed is not signed.
    let unsigned = parse_business_message_link(&with(vec![
        Node::builder("business")
            .attr("verified_name", "Shop Ltd")
            .build(),
    ]))
    .unwrap();
    assert!(!unsigned.is_signed);
    assert_eq!(unsigned.verified_name.as_deref(), Some("Shop Ltd"));
    assert_eq!(unsigned.verified_level, None);
    malformed(parse_business_message_link(&with(vec![
        Node::builder("message").bytes(vec![0xFF, 0xFE]).build(),
    ])));
    malformed(parse_business_message_link(&with(vec![
        Node::builder("message")
            .bytes(vec![b'a'; MAX_LINK_MESSAGE_LEN + 1])
            .build(),
    ])));
    malformed(parse_business_message_link(&with(vec![
        Node::builder("business").attr("is_signed", "maybe").build(),
    ])));
    malformed(parse_business_message_link(&with(vec![
        Node::builder("business")
            .attr("verified_name", "v".repeat(MAX_LINK_NAME_LEN + 1))
            .build(),
    ])));
}
