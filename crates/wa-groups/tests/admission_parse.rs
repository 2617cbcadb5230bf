//! The admission parsers (invite info, join requests, request actions, add requests)
//! and the admission notifications, against stanzas shaped as the server sends them;
//! malformed input gives a typed error.

use wa_binary::{Jid, Node};
use wa_groups::{
    Error, GroupChange, GroupMetadata, InviteJoin, apply_update, parse_group_reply,
    parse_invite_join_reply, parse_join_requests_reply, parse_notification,
    parse_participants_reply, parse_requests_action_reply,
};

const GROUP: &str = "120363-77";

fn reply(children: Vec<Node>) -> Node {
    Node::builder("iq")
        .attr("type", "result")
        .attr("from", Jid::group(GROUP))
        .children(children)
        .build()
}

fn participant(jid: Jid) -> Node {
    Node::builder("participant").attr("jid", jid).build()
}

fn notification(actor: &'static str, child: Node) -> Node {
    Node::builder("notification")
        .attr("from", Jid::group(GROUP))
        .attr("type", "w:gp2")
        .attr("participant", Jid::pn(actor))
        .attr("t", "1700000100")
        .children([child])
        .build()
}

#[test]
fn invite_info_reply_is_group_metadata_with_admission_settings() {
    let group = Node::builder("group")
        .attr("id", GROUP)
        .attr("subject", "Club")
        .attr("size", "40")
        .children([
            participant(Jid::pn("15550000001")),
            Node::builder("member_add_mode")
                .bytes(b"admin_add".to_vec())
                .build(),
            Node::builder("membership_approval_mode")
                .children([Node::builder("group_join").attr("state", "on").build()])
                .build(),
        ])
        .build();
    let m = parse_group_reply(&reply(vec![group])).unwrap();
    assert_eq!(m.id, Jid::group(GROUP));
    assert_eq!(m.subject, "Club");
    assert_eq!(m.size, 40);
    assert!(m.join_approval);
    assert!(!m.member_add_all);

    let off = Node::builder("group")
        .attr("id", GROUP)
        .children([Node::builder("membership_approval_mode")
            .children([Node::builder("group_join").attr("state", "off").build()])
            .build()])
        .build();
    assert!(!parse_group_reply(&reply(vec![off])).unwrap().join_approval);
}

#[test]
fn invite_join_reply_tells_joined_from_requested() {
    let joined = reply(vec![
        Node::builder("group")
            .attr("jid", Jid::group(GROUP))
            .build(),
    ]);
    assert_eq!(
        parse_invite_join_reply(&joined).unwrap(),
        InviteJoin::Joined(Jid::group(GROUP))
    );
    let requested = reply(vec![
        Node::builder("membership_approval_request")
            .attr("jid", Jid::group(GROUP))
            .build(),
    ]);
    let r = parse_invite_join_reply(&requested).unwrap();
    assert_eq!(r, InviteJoin::Requested(Jid::group(GROUP)));
    assert_eq!(r.group(), &Jid::group(GROUP));

    for bad in [
        reply(vec![]),
        reply(vec![Node::new("group")]),
        reply(vec![
            Node::builder("group").attr("jid", Jid::pn("1555")).build(),
        ]),
        reply(vec![Node::new("membership_approval_request")]),
    ] {
        assert!(matches!(
            parse_invite_join_reply(&bad),
            Err(Error::Malformed(_))
        ));
    }
}

#[test]
fn join_requests_reply_lists_requests() {
    let list = Node::builder("membership_approval_requests")
        .children([
            Node::builder("membership_approval_request")
                .attr("jid", Jid::pn("15550000003"))
                .attr("request_time", "1700000050")
                .attr("request_method", "invite_link")
                .build(),
            Node::builder("membership_approval_request")
                .attr("jid", Jid::pn("15550000004"))
                .build(),
        ])
        .build();
    let r = parse_join_requests_reply(&reply(vec![list])).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].jid, Jid::pn("15550000003"));
    assert_eq!(r[0].requested_at, 1_700_000_050);
    assert_eq!(r[0].method.as_deref(), Some("invite_link"));
    assert_eq!((r[1].requested_at, r[1].method.as_deref()), (0, None));

    let empty = reply(vec![Node::new("membership_approval_requests")]);
    assert!(parse_join_requests_reply(&empty).unwrap().is_empty());
    assert!(matches!(
        parse_join_requests_reply(&reply(vec![])),
        Err(Error::Malformed(_))
    ));
    let no_jid = reply(vec![
        Node::builder("membership_approval_requests")
            .children([Node::new("membership_approval_request")])
            .build(),
    ]);
    assert!(matches!(
        parse_join_requests_reply(&no_jid),
        Err(Error::Malformed(_))
    ));
    let too_many = reply(vec![
        Node::builder("membership_approval_requests")
            .children((0..=wa_groups::MAX_PARTICIPANTS).map(|i| {
                Node::builder("membership_approval_request")
                    .attr("jid", Jid::pn(format!("1555{i:07}")))
                    .build()
            }))
            .build(),
    ]);
    assert!(matches!(
        parse_join_requests_reply(&too_many),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn requests_action_reply_gives_a_result_per_user() {
    let action = |tag: &'static str| {
        reply(vec![
            Node::builder("membership_requests_action")
                .children([Node::builder(tag)
                    .children([
                        participant(Jid::pn("15550000003")),
                        Node::builder("participant")
                            .attr("jid", Jid::pn("15550000009"))
                            .attr("error", "404")
                            .build(),
                    ])
                    .build()])
                .build(),
        ])
    };
    let r = parse_requests_action_reply(&action("approve"), "approve").unwrap();
    let got: Vec<(Jid, u16)> = r.iter().map(|p| (p.jid.clone(), p.status)).collect();
    assert_eq!(
        got,
        [(Jid::pn("15550000003"), 200), (Jid::pn("15550000009"), 404)]
    );
    // The action element must be the one asked for.
    assert!(matches!(
        parse_requests_action_reply(&action("reject"), "approve"),
        Err(Error::Malformed(_))
    ));
    assert!(matches!(
        parse_requests_action_reply(&reply(vec![]), "approve"),
        Err(Error::Malformed(_))
    ));
    let bad_code = reply(vec![
        Node::builder("membership_requests_action")
            .children([Node::builder("reject")
                .children([Node::builder("participant")
                    .attr("jid", Jid::pn("15550000003"))
                    .attr("error", "nope")
                    .build()])
                .build()])
            .build(),
    ]);
    assert!(matches!(
        parse_requests_action_reply(&bad_code, "reject"),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn refused_add_carries_the_personal_invite() {
    let r = reply(vec![
        Node::builder("add")
            .children([Node::builder("participant")
                .attr("jid", Jid::pn("15550000003"))
                .attr("error", "403")
                .children([Node::builder("add_request")
                    .attr("code", "AbCd")
                    .attr("expiration", "1700259200")
                    .build()])
                .build()])
            .build(),
    ]);
    let r = parse_participants_reply(&r, "add").unwrap();
    assert_eq!(r[0].status, 403);
    let req = r[0].add_request.as_ref().expect("add_request");
    assert_eq!((req.code.as_str(), req.expiration), ("AbCd", 1_700_259_200));

    let no_code = reply(vec![
        Node::builder("add")
            .children([Node::builder("participant")
                .attr("jid", Jid::pn("15550000003"))
                .attr("error", "403")
                .children([Node::new("add_request")])
                .build()])
            .build(),
    ]);
    assert!(matches!(
        parse_participants_reply(&no_code, "add"),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn admission_notifications_become_changes_and_update_metadata() {
    let add_mode = |mode: &[u8]| {
        notification(
            "15550000001",
            Node::builder("member_add_mode")
                .bytes(mode.to_vec())
                .build(),
        )
    };
    let u = parse_notification(&add_mode(b"all_member_add")).unwrap();
    assert_eq!(u.changes, [GroupChange::MemberAddMode(true)]);
    let mut meta = GroupMetadata::new(Jid::group(GROUP));
    assert!(apply_update(&mut meta, &u));
    assert!(meta.member_add_all);
    let u = parse_notification(&add_mode(b"admin_add")).unwrap();
    assert_eq!(u.changes, [GroupChange::MemberAddMode(false)]);
    assert!(apply_update(&mut meta, &u));
    assert!(!meta.member_add_all);

    let approval = |state: &'static str| {
        notification(
            "15550000001",
            Node::builder("membership_approval_mode")
                .children([Node::builder("group_join").attr("state", state).build()])
                .build(),
        )
    };
    let u = parse_notification(&approval("on")).unwrap();
    assert_eq!(u.changes, [GroupChange::JoinApproval(true)]);
    assert!(apply_update(&mut meta, &u));
    assert!(meta.join_approval);
    let u = parse_notification(&approval("off")).unwrap();
    assert_eq!(u.changes, [GroupChange::JoinApproval(false)]);
    assert!(apply_update(&mut meta, &u));
    assert!(!meta.join_approval);

    // Requests name the requester in a list, or only as the notification's participant.
    let created = notification(
        "15550000003",
        Node::builder("created_membership_requests")
            .attr("request_method", "invite_link")
            .children([participant(Jid::pn("15550000003"))])
            .build(),
    );
    let u = parse_notification(&created).unwrap();
    assert_eq!(
        u.changes,
        [GroupChange::JoinRequested {
            participants: vec![Jid::pn("15550000003")],
            method: Some("invite_link".into()),
        }]
    );
    let before = meta.clone();
    assert!(apply_update(&mut meta, &u));
    assert_eq!(meta.participants, before.participants);
    let bare = notification("15550000004", Node::new("created_membership_requests"));
    assert_eq!(
        parse_notification(&bare).unwrap().changes,
        [GroupChange::JoinRequested {
            participants: vec![Jid::pn("15550000004")],
            method: None,
        }]
    );
    let revoked = notification(
        "15550000001",
        Node::builder("revoked_membership_requests")
            .children([participant(Jid::pn("15550000003"))])
            .build(),
    );
    assert_eq!(
        parse_notification(&revoked).unwrap().changes,
        [GroupChange::JoinRequestsRevoked(vec![Jid::pn(
            "15550000003"
        )])]
    );
}

#[test]
fn malformed_admission_notifications_are_typed_errors() {
    let bad = [
        notification(
            "15550000001",
            Node::builder("member_add_mode")
                .bytes(b"everyone".to_vec())
                .build(),
        ),
        notification("15550000001", Node::new("member_add_mode")),
        notification(
            "15550000001",
            Node::builder("membership_approval_mode")
                .children([Node::builder("group_join").attr("state", "maybe").build()])
                .build(),
        ),
        notification(
            "15550000001",
            Node::builder("membership_approval_mode")
                .children([Node::new("group_join")])
                .build(),
        ),
        notification(
            "15550000001",
            Node::builder("created_membership_requests")
                .children([Node::new("participant")])
                .build(),
        ),
        // No requester anywhere.
        Node::builder("notification")
            .attr("from", Jid::group(GROUP))
            .attr("type", "w:gp2")
            .children([Node::new("revoked_membership_requests")])
            .build(),
    ];
    for n in &bad {
        assert!(
            matches!(parse_notification(n), Err(Error::Malformed(_))),
            "{n:?}"
        );
    }
}
