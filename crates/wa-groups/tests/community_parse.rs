//! The community parsers: sub-group lists, linked participants, link/unlink
//! notifications and the community flags of metadata, valid and malformed.

use wa_binary::{Jid, Node};
use wa_groups::{
    Error, GroupChange, GroupLinkType, apply_update, parse_group_reply, parse_linked_group,
    parse_linked_participants_reply, parse_notification, parse_sub_groups_reply,
};
use wa_types::GroupMetadata;

fn result(children: Vec<Node>) -> Node {
    Node::builder("iq")
        .attr("type", "result")
        .children(children)
        .build()
}

#[test]
fn metadata_carries_the_community_flags() {
    let parent = result(vec![
        Node::builder("group")
            .attr("id", "120363-1")
            .attr("subject", "Neighbours")
            .children([Node::builder("parent")
                .attr("default_membership_approval_mode", "request_required")
                .build()])
            .build(),
    ]);
    let m = parse_group_reply(&parent).unwrap();
    assert!(m.is_community);
    assert!(!m.is_default_sub_group);
    assert_eq!(m.linked_parent, None);

    let announce = result(vec![
        Node::builder("group")
            .attr("id", "120363-2")
            .children([
                Node::builder("linked_parent")
                    .attr("jid", Jid::group("120363-1"))
                    .build(),
                Node::new("default_sub_group"),
                Node::new("announcement"),
            ])
            .build(),
    ]);
    let m = parse_group_reply(&announce).unwrap();
    assert!(!m.is_community);
    assert!(m.is_default_sub_group && m.is_community_announcement());
    assert_eq!(m.linked_parent, Some(Jid::group("120363-1")));

    // A sub-group that is not the default one is no announcement group, even when
    // only admins may send.
    let sub = result(vec![
        Node::builder("group")
            .attr("id", "120363-3")
            .children([
                Node::builder("linked_parent")
                    .attr("jid", Jid::group("120363-1"))
                    .build(),
                Node::new("announcement"),
            ])
            .build(),
    ]);
    let m = parse_group_reply(&sub).unwrap();
    assert!(m.announce && !m.is_community_announcement());
}

#[test]
fn sub_groups_reply_lists_groups_by_id_or_jid() {
    let reply = result(vec![
        Node::builder("sub_groups")
            .children([
                Node::builder("group")
                    .attr("id", "120363-2")
                    .attr("subject", "Announcements")
                    .attr("s_t", "1700000005")
                    .attr("creation", "1700000004")
                    .attr("creator", Jid::pn("15550000001"))
                    .attr("size", "3")
                    .children([Node::new("default_sub_group")])
                    .build(),
                Node::builder("group")
                    .attr("jid", Jid::group("120363-3"))
                    .attr("subject", "Gardening")
                    .build(),
                Node::new("something_else"),
            ])
            .build(),
    ]);
    let groups = parse_sub_groups_reply(&reply).unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].jid, Jid::group("120363-2"));
    assert!(groups[0].is_default_sub_group);
    assert_eq!(groups[0].subject, "Announcements");
    assert_eq!(
        (groups[0].subject_time, groups[0].creation),
        (1_700_000_005, 1_700_000_004)
    );
    assert_eq!(groups[0].owner, Some(Jid::pn("15550000001")));
    assert_eq!(groups[0].size, Some(3));
    assert_eq!(groups[1].jid, Jid::group("120363-3"));
    assert!(!groups[1].is_default_sub_group);
    assert_eq!(groups[1].size, None);
}

#[test]
fn malformed_sub_group_replies_are_typed_errors() {
    assert!(matches!(
        parse_sub_groups_reply(&result(vec![])),
        Err(Error::Malformed(_))
    ));
    let no_id = result(vec![
        Node::builder("sub_groups")
            .children([Node::builder("group").attr("subject", "x").build()])
            .build(),
    ]);
    assert!(matches!(
        parse_sub_groups_reply(&no_id),
        Err(Error::Malformed(_))
    ));
    let empty_id = result(vec![
        Node::builder("sub_groups")
            .children([Node::builder("group").attr("id", "").build()])
            .build(),
    ]);
    assert!(matches!(
        parse_sub_groups_reply(&empty_id),
        Err(Error::Malformed(_))
    ));
    // A user JID where a group belongs.
    let user = Node::builder("group")
        .attr("jid", Jid::pn("15550000001"))
        .build();
    assert!(matches!(
        parse_linked_group(&user),
        Err(Error::Malformed(_))
    ));
    // Too many groups is refused instead of growing without bound.
    let many = result(vec![
        Node::builder("sub_groups")
            .children(
                (0..=wa_groups::MAX_SUB_GROUPS)
                    .map(|i| Node::builder("group").attr("id", format!("1-{i}")).build()),
            )
            .build(),
    ]);
    assert!(matches!(
        parse_sub_groups_reply(&many),
        Err(Error::Malformed("too many sub-groups"))
    ));
    // Unparsable numbers are left out, not a failure.
    let odd = Node::builder("group")
        .attr("id", "1-2")
        .attr("size", "lots")
        .attr("s_t", "-4")
        .build();
    let g = parse_linked_group(&odd).unwrap();
    assert_eq!((g.size, g.subject_time), (None, 0));
}

#[test]
fn linked_participants_reply() {
    let reply = result(vec![
        Node::builder("linked_groups_participants")
            .children([
                Node::builder("participant")
                    .attr("jid", Jid::pn("1"))
                    .build(),
                Node::builder("participant")
                    .attr("jid", Jid::lid("2"))
                    .build(),
            ])
            .build(),
    ]);
    assert_eq!(
        parse_linked_participants_reply(&reply).unwrap(),
        [Jid::pn("1"), Jid::lid("2")]
    );
    assert!(matches!(
        parse_linked_participants_reply(&result(vec![])),
        Err(Error::Malformed(_))
    ));
    let bad = result(vec![
        Node::builder("linked_groups_participants")
            .children([Node::new("participant")])
            .build(),
    ]);
    assert!(matches!(
        parse_linked_participants_reply(&bad),
        Err(Error::Malformed(_))
    ));
}

fn notification(child: Node) -> Node {
    Node::builder("notification")
        .attr("type", "w:gp2")
        .attr("from", Jid::group("120363-1"))
        .attr("participant", Jid::pn("15550000001"))
        .attr("t", "1700000009")
        .children([child])
        .build()
}

#[test]
fn link_and_unlink_notifications() {
    let link = notification(
        Node::builder("link")
            .attr("link_type", "sub_group")
            .children([Node::builder("group")
                .attr("jid", Jid::group("120363-3"))
                .attr("subject", "Gardening")
                .build()])
            .build(),
    );
    let u = parse_notification(&link).unwrap();
    assert_eq!(u.group, Jid::group("120363-1"));
    let [GroupChange::Linked { link_type, group }] = u.changes.as_slice() else {
        panic!("one link change, got {:?}", u.changes);
    };
    assert_eq!(*link_type, GroupLinkType::SubGroup);
    assert_eq!(group.jid, Jid::group("120363-3"));
    assert_eq!(group.subject, "Gardening");

    let unlink = notification(
        Node::builder("unlink")
            .attr("unlink_type", "parent_group")
            .attr("unlink_reason", "delete_parent")
            .children([Node::builder("group").attr("id", "120363-9").build()])
            .build(),
    );
    let u = parse_notification(&unlink).unwrap();
    let [
        GroupChange::Unlinked {
            link_type,
            group,
            reason,
        },
    ] = u.changes.as_slice()
    else {
        panic!("one unlink change, got {:?}", u.changes);
    };
    assert_eq!(*link_type, GroupLinkType::ParentGroup);
    assert_eq!(group.jid, Jid::group("120363-9"));
    assert_eq!(reason.as_deref(), Some("delete_parent"));

    // An unknown link type is kept, not refused.
    let odd = notification(
        Node::builder("link")
            .attr("link_type", "cousin_group")
            .children([Node::builder("group").attr("id", "1-1").build()])
            .build(),
    );
    let u = parse_notification(&odd).unwrap();
    assert!(matches!(
        &u.changes[0],
        GroupChange::Linked { link_type: GroupLinkType::Other(t), .. } if t == "cousin_group"
    ));

    // Cached metadata cannot follow a link locally: the entry is dropped.
    let mut meta = GroupMetadata::new(Jid::group("120363-1"));
    assert!(!apply_update(
        &mut meta,
        &parse_notification(&link).unwrap()
    ));
}

#[test]
fn malformed_link_notifications_are_typed_errors() {
    for tag in ["link", "unlink"] {
        // No <group>.
        let n = notification(Node::builder(tag).attr("link_type", "sub_group").build());
        assert!(matches!(parse_notification(&n), Err(Error::Malformed(_))));
        // A <group> with no id.
        let n = notification(Node::builder(tag).children([Node::new("group")]).build());
        assert!(matches!(parse_notification(&n), Err(Error::Malformed(_))));
        // Bytes where children belong.
        let n = notification(Node::builder(tag).bytes(b"junk".to_vec()).build());
        assert!(matches!(parse_notification(&n), Err(Error::Malformed(_))));
    }
}

#[test]
fn community_elements_parse_like_groups() {
    // Baileys' community calls read `<community>` where whatsmeow reads `<group>`; both
    // are accepted.
    let reply = result(vec![
        Node::builder("community")
            .attr("id", "120363-9")
            .attr("subject", "Street")
            .children([Node::new("parent")])
            .build(),
    ]);
    let m = parse_group_reply(&reply).unwrap();
    assert_eq!(m.id, Jid::group("120363-9"));
    assert_eq!(m.subject, "Street");
    assert!(m.is_community);
    let joined = result(vec![
        Node::builder("community")
            .attr("jid", Jid::group("120363-9"))
            .build(),
    ]);
    assert_eq!(
        wa_groups::parse_invite_join_reply(&joined).unwrap().group(),
        &Jid::group("120363-9")
    );
    assert!(matches!(
        parse_group_reply(&result(vec![Node::new("other")])),
        Err(Error::Malformed(_))
    ));
}
