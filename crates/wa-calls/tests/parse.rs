//! The call stanza parsers against stanzas shaped as the server sends them, and against
//! malformed ones (typed errors, never a panic).

use wa_binary::{Jid, Node};
use wa_calls::{CallStatus, Error, parse_call, parse_link_create_reply};

fn call(from: Jid, child: Node) -> Node {
    Node::builder("call")
        .attr("from", from)
        .attr("id", "S1")
        .attr("t", "1700000000")
        .children([child])
        .build()
}

fn element(tag: &str) -> wa_binary::NodeBuilder {
    Node::builder(tag.to_owned())
        .attr("call-id", "C0FFEE")
        .attr("call-creator", Jid::pn("15550000002"))
}

#[test]
fn offer_reports_caller_media_and_time() {
    let n = call(
        Jid::pn("15550000002"),
        element("offer")
            .attr("caller_pn", Jid::pn("15550000002"))
            .children([
                Node::builder("audio").attr("enc", "opus").build(),
                Node::new("video"),
            ])
            .build(),
    );
    let ev = parse_call(&n).unwrap();
    assert_eq!(ev.id, "C0FFEE");
    assert_eq!(ev.from, Jid::pn("15550000002"));
    assert_eq!(ev.chat, Jid::pn("15550000002"));
    assert_eq!(ev.status, CallStatus::Offer);
    assert!(ev.is_video && !ev.is_group && !ev.offline);
    assert_eq!(ev.timestamp, 1_700_000_000);
    assert_eq!(ev.caller_pn, Some(Jid::pn("15550000002")));

    // Audio only, delivered from the offline queue.
    let mut n = call(
        Jid::lid("77"),
        element("offer").children([Node::new("audio")]).build(),
    );
    n.attrs.insert("offline", "1");
    let ev = parse_call(&n).unwrap();
    assert!(!ev.is_video && ev.offline);
    assert_eq!(ev.chat, Jid::lid("77"));
}

#[test]
fn offer_notice_and_group_calls() {
    let n = call(
        Jid::group("120363-1"),
        element("offer_notice")
            .attr("media", "video")
            .attr("type", "group")
            .attr("group-jid", Jid::group("120363-1"))
            .build(),
    );
    let ev = parse_call(&n).unwrap();
    assert_eq!(ev.status, CallStatus::Offer);
    assert!(ev.is_video && ev.is_group);
    assert_eq!(ev.group_jid, Some(Jid::group("120363-1")));
    // A group-jid that is no group is ignored rather than trusted.
    let n = call(
        Jid::pn("1"),
        element("offer").attr("group-jid", Jid::pn("2")).build(),
    );
    let ev = parse_call(&n).unwrap();
    assert_eq!(ev.group_jid, None);
    assert!(!ev.is_group);
}

#[test]
fn every_status() {
    let cases = [
        ("accept", None, CallStatus::Accept),
        ("preaccept", None, CallStatus::PreAccept),
        ("reject", None, CallStatus::Reject),
        ("transport", None, CallStatus::Transport),
        ("relaylatency", None, CallStatus::RelayLatency),
        ("terminate", None, CallStatus::Terminate),
        ("terminate", Some("timeout"), CallStatus::Timeout),
        ("terminate", Some("busy"), CallStatus::Terminate),
        ("mute_v2", None, CallStatus::Other("mute_v2".to_owned())),
    ];
    for (tag, reason, want) in cases {
        let n = call(
            Jid::pn("15550000002"),
            element(tag)
                .attr_opt("reason", reason.map(str::to_owned))
                .build(),
        );
        let ev = parse_call(&n).unwrap();
        assert_eq!(ev.status, want, "{tag} {reason:?}");
        assert_eq!(ev.reason.as_deref(), reason, "{tag}");
        assert!(!ev.is_video, "only an offer says video");
    }
}

#[test]
fn relay_latency_value() {
    let n = call(
        Jid::pn("1"),
        element("relaylatency").attr("latency", "33").build(),
    );
    assert_eq!(parse_call(&n).unwrap().latency_ms, Some(33));
    let n = call(
        Jid::pn("1"),
        element("relaylatency").attr("latency", "fast").build(),
    );
    assert_eq!(parse_call(&n).unwrap().latency_ms, None);
}

#[test]
fn the_element_from_wins_over_the_creator() {
    let n = call(
        Jid::group("120363-1"),
        element("terminate")
            .attr("from", Jid::pn("15550000009"))
            .build(),
    );
    assert_eq!(parse_call(&n).unwrap().from, Jid::pn("15550000009"));
    // Neither: the stanza's sender.
    let n = call(
        Jid::pn("15550000003"),
        Node::builder("accept").attr("call-id", "X").build(),
    );
    assert_eq!(parse_call(&n).unwrap().from, Jid::pn("15550000003"));
}

#[test]
fn malformed_calls_are_typed_errors() {
    let bad = [
        // Not a call.
        Node::builder("message").attr("from", Jid::pn("1")).build(),
        // No sender.
        Node::builder("call")
            .children([element("offer").build()])
            .build(),
        // No call element.
        Node::builder("call").attr("from", Jid::pn("1")).build(),
        // Bytes instead of a call element.
        Node::builder("call")
            .attr("from", Jid::pn("1"))
            .bytes(b"junk".to_vec())
            .build(),
        // No call id, an empty one, an absurdly long one.
        call(Jid::pn("1"), Node::new("offer")),
        call(
            Jid::pn("1"),
            Node::builder("offer").attr("call-id", "").build(),
        ),
        call(
            Jid::pn("1"),
            Node::builder("offer")
                .attr("call-id", "x".repeat(wa_calls::MAX_CALL_ID + 1))
                .build(),
        ),
    ];
    for n in bad {
        assert!(
            matches!(parse_call(&n), Err(Error::Malformed(_))),
            "accepted {n:?}"
        );
    }
    // Junk in optional attributes is ignored.
    let n = Node::builder("call")
        .attr("from", Jid::pn("1"))
        .attr("t", "yesterday")
        .children([Node::builder("offer")
            .attr("call-id", "A")
            .attr("call-creator", "not a jid@@")
            .build()])
        .build();
    let ev = parse_call(&n).unwrap();
    assert_eq!(ev.timestamp, 0);
}

#[test]
fn link_create_replies() {
    let ok = Node::builder("call")
        .attr("from", Jid::new("", wa_binary::Server::Call))
        .children([Node::builder("link_create")
            .attr("token", "AbCdEf123")
            .build()])
        .build();
    assert_eq!(parse_link_create_reply(&ok).unwrap(), "AbCdEf123");
    let refused = Node::builder("call")
        .children([Node::builder("error")
            .attr("code", "403")
            .attr("text", "forbidden")
            .build()])
        .build();
    assert!(matches!(
        parse_link_create_reply(&refused),
        Err(Error::Refused { code: 403, .. })
    ));
    for bad in [
        Node::new("call"),
        Node::builder("call")
            .children([Node::new("link_create")])
            .build(),
        Node::builder("call")
            .children([Node::builder("link_create").attr("token", "").build()])
            .build(),
        Node::builder("call")
            .children([Node::builder("link_create")
                .attr("token", "t".repeat(wa_calls::MAX_LINK_TOKEN + 1))
                .build()])
            .build(),
    ] {
        assert!(matches!(
            parse_link_create_reply(&bad),
            Err(Error::Malformed(_))
        ));
    }
}
