//! The pure builders and parsers: well-formed answers and notifications, and hostile or
//! malformed ones (typed errors, bounded output, no panics).

use prost::Message as _;
use serde_json::{Value, json};
use wa_binary::{Jid, Node};
use wa_newsletter::{
    Error, MAX_MESSAGES, MAX_REACTIONS, MAX_UPDATES, NewsletterChange, NewsletterRole,
    build_mex_error, build_mex_query, build_mex_reply, build_post, build_reaction,
    build_view_receipt, metadata_json, ops, parse_count, parse_message, parse_messages_reply,
    parse_metadata, parse_mex_request, parse_mex_result, parse_notification,
};

fn channel() -> Jid {
    "120363000000000042@newsletter".parse().unwrap()
}

fn result_with(body: &[u8]) -> Node {
    Node::builder("iq")
        .attr("type", "result")
        .children([Node::builder("result").bytes(body.to_vec()).build()])
        .build()
}

#[test]
fn mex_query_round_trips_through_the_server_parser() {
    let q = build_mex_query(
        "q1",
        ops::FOLLOW,
        json!({ "newsletter_id": "1@newsletter" }),
    );
    assert_eq!(q.attr::<&str>("xmlns").unwrap(), "w:mex");
    assert_eq!(q.attr::<&str>("type").unwrap(), "get");
    assert_eq!(q.attr::<Jid>("to").unwrap(), Jid::server_jid());
    let (id, vars) = parse_mex_request(&q).unwrap();
    assert_eq!(id, ops::FOLLOW.query_id);
    assert_eq!(vars["newsletter_id"], "1@newsletter");
}

#[test]
fn every_operation_has_a_distinct_query_id_and_path() {
    let mut ids: Vec<_> = ops::ALL.iter().map(|o| o.query_id).collect();
    let mut paths: Vec<_> = ops::ALL.iter().map(|o| o.path).collect();
    ids.sort_unstable();
    ids.dedup();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(ids.len(), ops::ALL.len());
    assert_eq!(paths.len(), ops::ALL.len());
    assert!(ids.iter().all(|i| i.bytes().all(|b| b.is_ascii_digit())));
}

#[test]
fn mex_result_yields_the_operation_data() {
    let reply = build_mex_reply("1", ops::SUBSCRIBERS, json!({ "subscribers": "12" }));
    let v = parse_mex_result(&reply, ops::SUBSCRIBERS).unwrap();
    assert_eq!(parse_count(&v, "subscribers").unwrap(), 12);
    // The wrong path is a typed error, not a default.
    assert!(matches!(
        parse_mex_result(&reply, ops::ADMIN_COUNT),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn mex_graphql_errors_are_typed() {
    let reply = build_mex_error("1", ops::UPDATE, 403, "not an admin");
    match parse_mex_result(&reply, ops::UPDATE) {
        Err(Error::GraphQl { code, message }) => {
            assert_eq!(code, 403);
            assert_eq!(message, "not an admin");
        }
        other => panic!("expected a GraphQL error, got {other:?}"),
    }
    // An error without a code defaults to 400; an absurd code too.
    let r = result_with(br#"{"errors":[{"message":"x"}]}"#);
    assert!(matches!(
        parse_mex_result(&r, ops::UPDATE),
        Err(Error::GraphQl { code: 400, .. })
    ));
    let r = result_with(br#"{"errors":[{"message":"x","extensions":{"error_code":99999999}}]}"#);
    assert!(matches!(
        parse_mex_result(&r, ops::UPDATE),
        Err(Error::GraphQl { code: 400, .. })
    ));
    // A huge message is cut.
    let long = "m".repeat(100_000);
    let body = json!({ "errors": [{ "message": long }] }).to_string();
    match parse_mex_result(&result_with(body.as_bytes()), ops::UPDATE) {
        Err(Error::GraphQl { message, .. }) => assert_eq!(message.len(), 256),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_mex_results_are_typed_errors() {
    let bad: [&[u8]; 7] = [
        b"",
        b"not json",
        b"{",
        b"[1,2,3]",
        b"{\"data\":null}",
        b"{\"data\":{\"other\":1}}",
        b"\xFF\xFE\x00",
    ];
    for body in bad {
        let r = parse_mex_result(&result_with(body), ops::METADATA);
        assert!(matches!(r, Err(Error::Malformed(_))), "{body:?}: {r:?}");
    }
    // No <result> at all, or a result with child nodes instead of bytes.
    let empty = Node::builder("iq").build();
    assert!(matches!(
        parse_mex_result(&empty, ops::METADATA),
        Err(Error::Malformed(_))
    ));
    let nested = Node::builder("iq")
        .children([Node::builder("result").children([Node::new("x")]).build()])
        .build();
    assert!(matches!(
        parse_mex_result(&nested, ops::METADATA),
        Err(Error::Malformed(_))
    ));
    // Deeply nested JSON is refused by the JSON parser's depth limit, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        parse_mex_result(&result_with(deep.as_bytes()), ops::METADATA),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn malformed_mex_requests_are_typed_errors() {
    let no_query = Node::builder("iq").build();
    assert!(parse_mex_request(&no_query).is_err());
    let no_vars = Node::builder("iq")
        .children([Node::builder("query")
            .attr("query_id", "1")
            .bytes(b"{\"variables\": 5}".to_vec())
            .build()])
        .build();
    assert!(matches!(
        parse_mex_request(&no_vars),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn metadata_parses_the_graphql_object() {
    let v = json!({
        "id": "120363000000000042@newsletter",
        "state": { "type": "ACTIVE" },
        "thread_metadata": {
            "creation_time": "1700000000",
            "name": { "text": "News", "id": "1", "update_time": "0" },
            "description": { "text": "daily", "id": "2", "update_time": "0" },
            "invite": "ABC",
            "subscribers_count": "7",
            "verification": "VERIFIED",
            "picture": { "id": "p1", "direct_path": "/v/p1", "type": "IMAGE" }
        },
        "viewer_metadata": { "mute": "ON", "role": "ADMIN" }
    });
    let m = parse_metadata(&v).unwrap();
    assert_eq!(m.id, channel());
    assert_eq!(m.name, "News");
    assert_eq!(m.description, "daily");
    assert_eq!(m.invite.as_deref(), Some("ABC"));
    assert_eq!(m.creation_time, 1_700_000_000);
    assert_eq!(m.subscribers, Some(7));
    assert!(m.verified);
    assert_eq!(m.picture.as_ref().map(|p| p.id.as_str()), Some("p1"));
    assert_eq!(m.state.as_deref(), Some("ACTIVE"));
    assert_eq!(m.muted, Some(true));
    assert_eq!(m.role, Some(NewsletterRole::Admin));
    // The server-side encoder produces what the parser reads back.
    assert_eq!(parse_metadata(&metadata_json(&m)).unwrap(), m);
    // A `result` wrapper is looked through.
    assert_eq!(parse_metadata(&json!({ "result": v })).unwrap(), m);
}

#[test]
fn metadata_without_id_or_name_or_with_a_foreign_id_is_refused() {
    let cases = [
        json!({}),
        json!(null),
        json!("x"),
        json!({ "id": 5, "thread_metadata": { "name": "n" } }),
        json!({ "id": "1@newsletter" }),
        json!({ "id": "15550000001@s.whatsapp.net", "thread_metadata": { "name": "n" } }),
        json!({ "id": "not a jid@@", "thread_metadata": { "name": "n" } }),
    ];
    for c in cases {
        assert!(
            matches!(parse_metadata(&c), Err(Error::Malformed(_))),
            "{c}"
        );
    }
    // Odd types for optional fields are ignored, not fatal.
    let odd = json!({
        "id": "1@newsletter",
        "thread_metadata": { "name": "n", "subscribers_count": "many", "creation_time": [],
                             "picture": "nope", "verification": 3 },
        "viewer_metadata": { "mute": 1, "role": "KING" }
    });
    let m = parse_metadata(&odd).unwrap();
    assert_eq!(
        (
            m.subscribers,
            m.creation_time,
            m.picture,
            m.verified,
            m.muted,
            m.role
        ),
        (None, 0, None, false, None, None)
    );
}

#[test]
fn counts_accept_numbers_strings_and_objects() {
    assert_eq!(parse_count(&json!(3), "x").unwrap(), 3);
    assert_eq!(parse_count(&json!("4"), "x").unwrap(), 4);
    assert_eq!(
        parse_count(&json!({ "admin_count": 2 }), "admin_count").unwrap(),
        2
    );
    assert!(parse_count(&json!({ "admin_count": -1 }), "admin_count").is_err());
    assert!(parse_count(&json!({}), "admin_count").is_err());
}

fn text_message(s: &str) -> wa_proto::e2e::Message {
    wa_proto::e2e::Message {
        conversation: Some(s.to_owned()),
        ..Default::default()
    }
}

#[test]
fn posts_are_plaintext_message_stanzas() {
    let post = build_post(&channel(), "ID1", &text_message("hi"));
    assert_eq!(post.tag(), "message");
    assert_eq!(post.attr::<Jid>("to").unwrap(), channel());
    assert_eq!(post.attr::<&str>("type").unwrap(), "text");
    let body = post.child("plaintext").unwrap().content_bytes().unwrap();
    assert_eq!(
        wa_proto::e2e::Message::decode(body)
            .unwrap()
            .conversation
            .as_deref(),
        Some("hi")
    );
    let image = wa_proto::e2e::Message {
        image_message: Some(Box::default()),
        ..Default::default()
    };
    let media = build_post(&channel(), "ID2", &image);
    assert_eq!(media.attr::<&str>("type").unwrap(), "media");
    assert_eq!(
        media
            .child("plaintext")
            .unwrap()
            .attr::<&str>("mediatype")
            .unwrap(),
        "image"
    );
}

#[test]
fn reactions_and_view_receipts_name_server_ids() {
    let r = build_reaction(&channel(), "R1", 105, Some("❤"));
    assert_eq!(r.attr::<u64>("server_id").unwrap(), 105);
    assert_eq!(r.attr::<&str>("type").unwrap(), "reaction");
    assert!(r.get_attr("edit").is_none());
    assert_eq!(
        r.child("reaction").unwrap().attr::<&str>("code").unwrap(),
        "❤"
    );
    let undo = build_reaction(&channel(), "R2", 105, None);
    assert_eq!(undo.attr::<&str>("edit").unwrap(), "7");
    assert!(undo.child("reaction").unwrap().get_attr("code").is_none());
    let v = build_view_receipt(&channel(), "V1", &[1, 2]);
    assert_eq!(v.attr::<&str>("type").unwrap(), "view");
    let ids: Vec<u64> = v
        .child("list")
        .unwrap()
        .children_by_tag("item")
        .map(|i| i.attr::<u64>("server_id").unwrap())
        .collect();
    assert_eq!(ids, [1, 2]);
}

fn message_node(server_id: &str) -> Node {
    Node::builder("message")
        .attr("server_id", server_id.to_owned())
        .attr("id", "X")
        .attr("t", "1700000000")
        .attr("type", "text")
        .children([
            Node::builder("plaintext")
                .bytes(text_message("hello").encode_to_vec())
                .build(),
            Node::builder("views_count").attr("count", "9").build(),
            Node::builder("reactions")
                .children([Node::builder("reaction")
                    .attr("code", "👍")
                    .attr("count", "3")
                    .build()])
                .build(),
        ])
        .build()
}

#[test]
fn fetched_messages_carry_content_and_counts() {
    let reply = Node::builder("iq")
        .children([Node::builder("messages")
            .children([message_node("100"), message_node("101")])
            .build()])
        .build();
    let msgs = parse_messages_reply(&reply).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].server_id, 101);
    assert_eq!(msgs[0].views, Some(9));
    assert_eq!(msgs[0].reactions, [("👍".to_owned(), 3)]);
    assert_eq!(msgs[0].timestamp, 1_700_000_000);
    assert_eq!(
        msgs[0].message.as_ref().unwrap().conversation.as_deref(),
        Some("hello")
    );
    // The updates shape: <message_updates><messages>.
    let updates = Node::builder("iq")
        .children([Node::builder("message_updates")
            .children([Node::builder("messages")
                .children([message_node("7")])
                .build()])
            .build()])
        .build();
    assert_eq!(parse_messages_reply(&updates).unwrap()[0].server_id, 7);
    assert!(matches!(
        parse_messages_reply(&Node::builder("iq").build()),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn hostile_messages_are_skipped_or_bounded() {
    // Bad server ids are typed errors for one message and skipped in a list.
    assert!(parse_message(&Node::builder("message").build()).is_err());
    assert!(parse_message(&message_node("-1")).is_err());
    assert!(parse_message(&message_node("99999999999999999999999")).is_err());
    // A plaintext that is not a protobuf leaves the message empty but keeps the entry.
    let junk = Node::builder("message")
        .attr("server_id", "5")
        .children([Node::builder("plaintext").bytes(vec![0xFF; 64]).build()])
        .build();
    let m = parse_message(&junk).unwrap();
    assert_eq!((m.server_id, m.message.is_none()), (5, true));
    // Too many messages and reactions are cut at the bounds.
    let many_reactions = Node::builder("message")
        .attr("server_id", "1")
        .children([Node::builder("reactions")
            .children((0..10_000).map(|i| {
                Node::builder("reaction")
                    .attr("code", format!("r{i}"))
                    .attr("count", "1")
                    .build()
            }))
            .build()])
        .build();
    assert_eq!(
        parse_message(&many_reactions).unwrap().reactions.len(),
        MAX_REACTIONS
    );
    let reply = Node::builder("iq")
        .children([Node::builder("messages")
            .children(
                (0..MAX_MESSAGES + 50)
                    .map(|i| message_node(&i.to_string()))
                    .chain([message_node("bad")]),
            )
            .build()])
        .build();
    assert_eq!(parse_messages_reply(&reply).unwrap().len(), MAX_MESSAGES);
}

fn newsletter_notification(children: Vec<Node>) -> Node {
    Node::builder("notification")
        .attr("from", channel())
        .attr("type", "newsletter")
        .attr("t", "1700000001")
        .children(children)
        .build()
}

#[test]
fn newsletter_notifications_become_updates() {
    let n = newsletter_notification(vec![
        message_node("100"),
        Node::builder("reaction")
            .attr("message_id", "100")
            .attr("count", "2")
            .children([Node::builder("reaction")
                .bytes("🔥".as_bytes().to_vec())
                .build()])
            .build(),
        Node::builder("view")
            .attr("message_id", "100")
            .bytes(b"12".to_vec())
            .build(),
        Node::builder("participant")
            .attr("jid", Jid::pn("15550000001"))
            .attr("action", "promote")
            .attr("role", "ADMIN")
            .build(),
        Node::builder("update")
            .children([Node::builder("settings")
                .children([Node::builder("name").bytes(b"Renamed".to_vec()).build()])
                .build()])
            .build(),
        Node::builder("live_updates")
            .children([Node::builder("messages")
                .children([message_node("101")])
                .build()])
            .build(),
        Node::new("something_new"),
    ]);
    let u = parse_notification(&n).unwrap();
    assert!(u.iter().all(|x| x.id == channel()));
    let changes: Vec<_> = u.into_iter().map(|x| x.change).collect();
    assert_eq!(changes.len(), 6);
    assert!(matches!(&changes[0], NewsletterChange::Message(m) if m.server_id == 100));
    assert_eq!(
        changes[1],
        NewsletterChange::Reaction {
            server_id: 100,
            code: "🔥".to_owned(),
            count: Some(2)
        }
    );
    assert_eq!(
        changes[2],
        NewsletterChange::Views {
            server_id: 100,
            count: 12
        }
    );
    assert_eq!(
        changes[3],
        NewsletterChange::Participant {
            user: Jid::pn("15550000001"),
            action: "promote".to_owned(),
            role: Some(NewsletterRole::Admin)
        }
    );
    assert_eq!(
        changes[4],
        NewsletterChange::Settings {
            name: Some("Renamed".to_owned()),
            description: None
        }
    );
    assert!(matches!(&changes[5], NewsletterChange::Message(m) if m.server_id == 101));
}

#[test]
fn hostile_newsletter_notifications_are_refused_or_bounded() {
    // Not from a channel, or no from at all.
    let foreign = Node::builder("notification")
        .attr("from", Jid::pn("15550000001"))
        .attr("type", "newsletter")
        .build();
    assert!(matches!(
        parse_notification(&foreign),
        Err(Error::Malformed(_))
    ));
    let anonymous = Node::builder("notification")
        .attr("type", "newsletter")
        .build();
    assert!(matches!(
        parse_notification(&anonymous),
        Err(Error::Malformed(_))
    ));
    let other_type = Node::builder("notification").attr("type", "w:gp2").build();
    assert!(parse_notification(&other_type).is_err());
    // Children without their ids are skipped.
    let n = newsletter_notification(vec![
        Node::new("reaction"),
        Node::builder("view").attr("message_id", "x").build(),
        Node::builder("participant").attr("jid", "???").build(),
        Node::builder("update").build(),
    ]);
    assert!(parse_notification(&n).unwrap().is_empty());
    // A flood is cut at the bound.
    let flood = newsletter_notification(
        (0..MAX_UPDATES * 4)
            .map(|i| {
                Node::builder("view")
                    .attr("message_id", i.to_string())
                    .bytes(b"1".to_vec())
                    .build()
            })
            .collect(),
    );
    assert_eq!(parse_notification(&flood).unwrap().len(), MAX_UPDATES);
}

fn mex_notification(op: &str, body: &Value) -> Node {
    Node::builder("notification")
        .attr("from", Jid::server_jid())
        .attr("type", "mex")
        .children([Node::builder("update")
            .attr("op_name", op.to_owned())
            .bytes(body.to_string().into_bytes())
            .build()])
        .build()
}

#[test]
fn mex_notifications_become_updates() {
    let join = mex_notification(
        "NotificationNewsletterJoin",
        &json!({ "data": { "xwa2_notify_newsletter_on_join": {
            "id": channel().to_string(), "viewer_metadata": { "role": "SUBSCRIBER" } } } }),
    );
    let u = parse_notification(&join).unwrap();
    assert_eq!(
        u[0].change,
        NewsletterChange::Joined {
            role: Some(NewsletterRole::Subscriber)
        }
    );
    let leave = mex_notification(
        "NotificationNewsletterLeave",
        &json!({ "data": { "xwa2_notify_newsletter_on_leave": { "id": channel().to_string() } } }),
    );
    assert_eq!(
        parse_notification(&leave).unwrap()[0].change,
        NewsletterChange::Left
    );
    let mute = mex_notification(
        "x",
        &json!({ "data": { "xwa2_notify_newsletter_on_mute_change": {
            "id": channel().to_string(), "mute": "ON" } } }),
    );
    assert_eq!(
        parse_notification(&mute).unwrap()[0].change,
        NewsletterChange::Muted(true)
    );
    // The older {operation, updates} payload.
    let legacy = mex_notification(
        "NotificationNewsletterUpdate",
        &json!({ "operation": "NotificationNewsletterUpdate", "updates": [
            { "jid": channel().to_string(), "settings": { "description": "new" } } ] }),
    );
    assert_eq!(
        parse_notification(&legacy).unwrap()[0].change,
        NewsletterChange::Settings {
            name: None,
            description: Some("new".to_owned())
        }
    );
    let promote = mex_notification(
        "NotificationNewsletterAdminPromote",
        &json!({ "operation": "NotificationNewsletterAdminPromote", "updates": [
            { "jid": channel().to_string(), "user": "15550000002@s.whatsapp.net" } ] }),
    );
    assert!(matches!(
        &parse_notification(&promote).unwrap()[0].change,
        NewsletterChange::Participant { action, role: Some(NewsletterRole::Admin), .. } if action == "promote"
    ));
    // Something that is not about channels gives nothing.
    let other = mex_notification(
        "NotificationUserReachoutTimelockUpdate",
        &json!({ "data": { "xwa2_notify_account_reachout_timelock": { "is_active": true } } }),
    );
    assert!(parse_notification(&other).unwrap().is_empty());
}

#[test]
fn hostile_mex_notifications_are_typed_errors_or_ignored() {
    let no_update = Node::builder("notification").attr("type", "mex").build();
    assert!(matches!(
        parse_notification(&no_update),
        Err(Error::Malformed(_))
    ));
    let not_json = Node::builder("notification")
        .attr("type", "mex")
        .children([Node::builder("update").bytes(b"{{{".to_vec()).build()])
        .build();
    assert!(matches!(
        parse_notification(&not_json),
        Err(Error::Malformed(_))
    ));
    // Ids that are not channels, or wrong types, are skipped.
    let foreign = mex_notification(
        "x",
        &json!({ "data": {
            "xwa2_notify_newsletter_on_leave": { "id": "15550000001@s.whatsapp.net" },
            "xwa2_notify_newsletter_on_join": { "id": 42 },
            "xwa2_notify_newsletter_on_mute_change": { "id": channel().to_string(), "mute": 1 } },
          "operation": "NotificationNewsletterUpdate", "updates": "nope" }),
    );
    assert!(parse_notification(&foreign).unwrap().is_empty());
}

#[test]
fn a_channel_message_stanza_is_a_post_of_its_channel() {
    let body = wa_proto::e2e::Message {
        conversation: Some("hello".into()),
        ..Default::default()
    }
    .encode_to_vec();
    let stanza = |from: &str, server_id: Option<&str>| {
        Node::builder("message")
            .attr("from", from.to_owned())
            .attr("id", "3EB0AA")
            .attr("t", "1700000000")
            .attr("type", "text")
            .attr_opt("server_id", server_id.map(str::to_owned))
            .children([Node::builder("plaintext").bytes(body.clone()).build()])
            .build()
    };
    let u =
        wa_newsletter::parse_post(&stanza("120363000000000042@newsletter", Some("105"))).unwrap();
    assert_eq!(u.id, channel());
    let NewsletterChange::Message(m) = u.change else {
        panic!("not a message: {:?}", u.change)
    };
    assert_eq!(
        (m.server_id, m.id.as_deref(), m.timestamp),
        (105, Some("3EB0AA"), 1_700_000_000)
    );
    assert_eq!(m.message.unwrap().conversation.as_deref(), Some("hello"));
    // Not from a channel, or no server id: refused.
    assert!(wa_newsletter::parse_post(&stanza("15550000001@s.whatsapp.net", Some("1"))).is_err());
    assert!(wa_newsletter::parse_post(&stanza("120363000000000042@newsletter", None)).is_err());
    assert!(
        wa_newsletter::parse_post(&stanza("120363000000000042@newsletter", Some("x"))).is_err()
    );
}
