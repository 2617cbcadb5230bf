//! The pure parsers against stanzas shaped as the server sends them.

use wa_binary::{Jid, Node, Server};
use wa_groups::{
    AddressingMode, Error, GroupChange, GroupMetadata, ParticipantRole, apply_update,
    parse_group_reply, parse_notification, parse_participants_reply,
};

fn participant(jid: Jid, ty: Option<&str>) -> Node {
    Node::builder("participant")
        .attr("jid", jid)
        .attr_opt("type", ty.map(str::to_owned))
        .build()
}

fn metadata_reply() -> Node {
    Node::builder("iq")
        .attr("type", "result")
        .attr("from", Jid::group("120363-77"))
        .children([Node::builder("group")
            .attr("id", "120363-77")
            .attr("subject", "Team")
            .attr("s_t", "1700000001")
            .attr("s_o", Jid::pn("15550000001"))
            .attr("creation", "1700000000")
            .attr("creator", Jid::pn("15550000001"))
            .attr("addressing_mode", "lid")
            .children([
                Node::builder("description")
                    .attr("id", "D1")
                    .attr("t", "1700000002")
                    .children([Node::builder("body").bytes(b"About us".to_vec()).build()])
                    .build(),
                Node::builder("announcement").build(),
                Node::builder("ephemeral")
                    .attr("expiration", "86400")
                    .build(),
                Node::builder("member_add_mode")
                    .bytes(b"all_member_add".to_vec())
                    .build(),
                participant(Jid::pn("15550000001"), Some("superadmin")),
                Node::builder("participant")
                    .attr("jid", Jid::lid("99001"))
                    .attr("phone_number", Jid::pn("15550000002"))
                    .attr("type", "admin")
                    .build(),
                participant(Jid::pn("15550000003"), None),
            ])
            .build()])
        .build()
}

#[test]
fn metadata_reply_parses_every_field() {
    let m = parse_group_reply(&metadata_reply()).unwrap();
    assert_eq!(m.id, Jid::group("120363-77"));
    assert_eq!(m.subject, "Team");
    assert_eq!(m.subject_time, 1_700_000_001);
    assert_eq!(m.subject_owner, Some(Jid::pn("15550000001")));
    assert_eq!(m.creation, 1_700_000_000);
    assert_eq!(m.owner, Some(Jid::pn("15550000001")));
    assert_eq!(m.description.as_deref(), Some("About us"));
    assert_eq!(m.description_id.as_deref(), Some("D1"));
    assert!(m.announce);
    assert!(!m.restrict);
    assert!(m.member_add_all);
    assert_eq!(m.ephemeral, Some(86_400));
    assert_eq!(m.addressing_mode, AddressingMode::Lid);
    assert_eq!(m.size, 3);
    let roles: Vec<_> = m.participants.iter().map(|p| p.role).collect();
    assert_eq!(
        roles,
        [
            ParticipantRole::SuperAdmin,
            ParticipantRole::Admin,
            ParticipantRole::Member
        ]
    );
    assert_eq!(m.participants[1].jid.server, Server::Lid);
    assert_eq!(m.participants[1].phone_number, Some(Jid::pn("15550000002")));
}

#[test]
fn malformed_replies_are_typed_errors() {
    let no_group = Node::builder("iq").attr("type", "result").build();
    assert!(matches!(
        parse_group_reply(&no_group),
        Err(Error::Malformed(_))
    ));
    let no_id = Node::builder("iq")
        .children([Node::builder("group").attr("subject", "x").build()])
        .build();
    assert!(matches!(
        parse_group_reply(&no_id),
        Err(Error::Malformed(_))
    ));
    let bad_participant = Node::builder("iq")
        .children([Node::builder("group")
            .attr("id", "1-2")
            .children([Node::builder("participant").build()])
            .build()])
        .build();
    assert!(matches!(
        parse_group_reply(&bad_participant),
        Err(Error::Malformed(_))
    ));
    let too_many = Node::builder("iq")
        .children([Node::builder("group")
            .attr("id", "1-2")
            .children(
                (0..=wa_groups::MAX_PARTICIPANTS)
                    .map(|i| participant(Jid::pn(format!("1555{i:07}")), None)),
            )
            .build()])
        .build();
    assert!(matches!(
        parse_group_reply(&too_many),
        Err(Error::Malformed(_))
    ));
    // A member too long to key a session or a sender-key record fails the metadata; an
    // over-long owner or LID of a member is left out.
    let long = |n: usize| "1".repeat(n);
    let group = |participant: Node, creator: Jid| {
        Node::builder("iq")
            .children([Node::builder("group")
                .attr("id", "1-2")
                .attr("creator", creator)
                .children([participant])
                .build()])
            .build()
    };
    let long_member = group(
        participant(Jid::pn(long(129)), None),
        Jid::pn("15550000001"),
    );
    assert!(matches!(
        parse_group_reply(&long_member),
        Err(Error::Malformed(_))
    ));
    let member = Node::builder("participant")
        .attr("jid", Jid::pn(long(128)))
        .attr("lid", Jid::lid(long(129)))
        .build();
    let meta = parse_group_reply(&group(member, Jid::pn(long(129)))).unwrap();
    assert_eq!(meta.participants[0].jid.user.len(), 128);
    assert_eq!(meta.participants[0].lid, None);
    assert_eq!(meta.owner, None);
}

#[test]
fn participant_replies_carry_per_member_status() {
    let reply = Node::builder("iq")
        .children([Node::builder("add")
            .children([
                participant(Jid::pn("15550000004"), None),
                Node::builder("participant")
                    .attr("jid", Jid::pn("15550000005"))
                    .attr("error", "403")
                    .build(),
            ])
            .build()])
        .build();
    let r = parse_participants_reply(&reply, "add").unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].jid.clone(), r[0].status),
        (Jid::pn("15550000004"), 200)
    );
    assert_eq!(
        (r[1].jid.clone(), r[1].status),
        (Jid::pn("15550000005"), 403)
    );
    assert!(parse_participants_reply(&reply, "remove").is_err());
}

/// The members of `m`, in order.
fn members(m: &GroupMetadata) -> Vec<Jid> {
    m.participants.iter().map(|p| p.jid.clone()).collect()
}

fn notification(children: Vec<Node>) -> Node {
    Node::builder("notification")
        .attr("from", Jid::group("120363-77"))
        .attr("type", "w:gp2")
        .attr("id", "N1")
        .attr("participant", Jid::pn("15550000001"))
        .attr("t", "1700000100")
        .children(children)
        .build()
}

#[test]
fn notifications_parse_each_change() {
    let n = notification(vec![
        Node::builder("add")
            .children([participant(Jid::pn("15550000004"), None)])
            .build(),
        Node::builder("remove")
            .children([participant(Jid::pn("15550000003"), None)])
            .build(),
        Node::builder("promote")
            .children([participant(Jid::pn("15550000004"), None)])
            .build(),
        Node::builder("subject").attr("subject", "Renamed").build(),
        Node::builder("description")
            .attr("id", "D2")
            .children([Node::builder("body").bytes(b"New".to_vec()).build()])
            .build(),
        Node::builder("locked").build(),
        Node::builder("not_announcement").build(),
        Node::builder("ephemeral")
            .attr("expiration", "604800")
            .build(),
        Node::builder("invite").attr("code", "AbC").build(),
        Node::builder("mystery").build(),
    ]);
    let u = parse_notification(&n).unwrap();
    assert_eq!(u.group, Jid::group("120363-77"));
    assert_eq!(u.actor, Some(Jid::pn("15550000001")));
    assert_eq!(u.timestamp, 1_700_000_100);
    assert_eq!(
        u.changes,
        vec![
            GroupChange::Added(vec![Jid::pn("15550000004")]),
            GroupChange::Removed(vec![Jid::pn("15550000003")]),
            GroupChange::Promoted(vec![Jid::pn("15550000004")]),
            GroupChange::Subject("Renamed".into()),
            GroupChange::Description(Some("New".into())),
            GroupChange::Locked(true),
            GroupChange::Announce(false),
            GroupChange::Ephemeral(Some(604_800)),
            GroupChange::InviteReset("AbC".into()),
            GroupChange::Other("mystery".into()),
        ]
    );
    let deleted = notification(vec![
        Node::builder("description")
            .children([Node::builder("delete").build()])
            .build(),
    ]);
    assert_eq!(
        parse_notification(&deleted).unwrap().changes,
        vec![GroupChange::Description(None)]
    );
}

#[test]
fn create_notification_carries_metadata() {
    let group = metadata_reply().children()[0].clone();
    let n = notification(vec![Node::builder("create").children([group]).build()]);
    let u = parse_notification(&n).unwrap();
    match &u.changes[..] {
        [GroupChange::Created(m)] => assert_eq!(m.subject, "Team"),
        other => panic!("unexpected {other:?}"),
    }
    let broken = notification(vec![Node::builder("create").build()]);
    assert!(parse_notification(&broken).is_err());
}

#[test]
fn notifications_from_non_groups_are_refused() {
    let n = Node::builder("notification")
        .attr("from", Jid::pn("15550000001"))
        .attr("type", "w:gp2")
        .build();
    assert!(matches!(parse_notification(&n), Err(Error::Malformed(_))));
}

#[test]
fn updates_apply_to_cached_metadata() {
    let mut m = parse_group_reply(&metadata_reply()).unwrap();
    let u = parse_notification(&notification(vec![
        Node::builder("add")
            .children([participant(Jid::pn("15550000004"), None)])
            .build(),
        Node::builder("remove")
            .children([participant(Jid::pn("15550000003"), None)])
            .build(),
        Node::builder("promote")
            .children([participant(Jid::pn("15550000004"), None)])
            .build(),
        Node::builder("demote")
            .children([participant(Jid::pn("15550000001"), None)])
            .build(),
        Node::builder("subject").attr("subject", "Renamed").build(),
        Node::builder("locked").build(),
    ]))
    .unwrap();
    assert!(apply_update(&mut m, &u));
    assert_eq!(
        members(&m),
        [
            Jid::pn("15550000001"),
            Jid::lid("99001"),
            Jid::pn("15550000004")
        ]
    );
    // The creator stays super admin; the new member became admin.
    assert_eq!(m.participants[0].role, ParticipantRole::SuperAdmin);
    assert_eq!(m.participants[2].role, ParticipantRole::Admin);
    assert_eq!(m.subject, "Renamed");
    assert_eq!(m.subject_time, 1_700_000_100);
    assert!(m.restrict);
    assert_eq!(m.size, 3);
    // A member added again, or twice in one notification, is there once.
    let again = parse_notification(&notification(vec![
        Node::builder("add")
            .children([
                participant(Jid::pn("15550000001"), None),
                participant(Jid::pn("15550000005"), None),
                participant(Jid::pn("15550000005"), None),
            ])
            .build(),
    ]))
    .unwrap();
    assert!(apply_update(&mut m, &again));
    assert_eq!(
        members(&m),
        [
            Jid::pn("15550000001"),
            Jid::lid("99001"),
            Jid::pn("15550000004"),
            Jid::pn("15550000005")
        ]
    );
    assert_eq!(m.participants[0].role, ParticipantRole::SuperAdmin);
    // A description change cannot be applied locally: the caller refetches.
    let d = parse_notification(&notification(vec![
        Node::builder("description")
            .attr("id", "D3")
            .children([Node::builder("body").bytes(b"x".to_vec()).build()])
            .build(),
    ]))
    .unwrap();
    assert!(!apply_update(&mut m, &d));
}
