//! Communities (`xmlns="w:g2"`): a parent group, the announcement group the server
//! creates with it, and groups linked into it as sub-groups.
//!
//! Requests follow Baileys' `communities.ts` and whatsmeow's `group.go` (`<create>` with
//! `<parent>` or `<linked_parent>`, `<links>`, `<unlink>`, `<sub_groups>`,
//! `<linked_groups_participants>`, `<leave><community>`). Metadata answers carry
//! `<parent>`, `<linked_parent jid>` and `<default_sub_group/>`; link changes are `w:gp2`
//! `<link>` / `<unlink>` notifications to both groups' members.

use std::collections::{BTreeMap, BTreeSet};

use wa_binary::{Content, Jid, Node};

use crate::group::{
    Description, Group, MAX_GROUPS, MAX_PARTICIPANTS, Notice, Role, groups_server, invite_code,
    iq_error, iq_result, participants_node,
};
use crate::sim::unix_now;
use crate::state::Inner;

/// Most groups one link or unlink request may name.
const MAX_LINKS_PER_REQUEST: usize = 16;

/// Which groups are communities and which groups belong to them (saved in the state
/// file).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Communities {
    /// Community (parent group) ids.
    parents: BTreeSet<String>,
    /// Sub-group id to its community's id.
    parent_of: BTreeMap<String, String>,
    /// Community id to its announcement (default) sub-group's id.
    announce_of: BTreeMap<String, String>,
}

impl Communities {
    /// Checks a loaded state: bounded, and every sub-group and announcement group names a
    /// known community.
    pub(crate) fn check(&self) -> Result<(), crate::Error> {
        let ok = self.parents.len() <= MAX_GROUPS
            && self.parent_of.len() <= MAX_GROUPS
            && self.announce_of.len() <= MAX_GROUPS
            && self.parent_of.values().all(|p| self.parents.contains(p))
            && self.announce_of.keys().all(|p| self.parents.contains(p));
        if ok {
            Ok(())
        } else {
            Err(crate::Error::BadState(
                "communities beyond the server's bounds",
            ))
        }
    }

    /// Whether `gid` is a community (a parent group).
    pub(crate) fn is_community(&self, gid: &str) -> bool {
        self.parents.contains(gid)
    }

    pub(crate) fn sub_groups<'a>(
        &'a self,
        parent: &'a str,
    ) -> impl Iterator<Item = &'a String> + 'a {
        self.parent_of
            .iter()
            .filter(move |(_, p)| p.as_str() == parent)
            .map(|(c, _)| c)
    }

    fn is_default(&self, group: &str) -> bool {
        self.parent_of
            .get(group)
            .and_then(|p| self.announce_of.get(p))
            .is_some_and(|a| a == group)
    }
}

fn group_jid(id: &str) -> Jid {
    Jid::group(id.to_owned())
}

/// The short form of a group in sub-group lists and link notifications.
fn summary(st: &Inner, id: &str) -> Node {
    let g = st.groups.get(id);
    let mut b = Node::builder("group").attr("jid", group_jid(id));
    if let Some(g) = g {
        b = b
            .attr("subject", g.subject.clone())
            .attr("s_t", g.subject_time.to_string())
            .attr("creation", g.creation.to_string())
            .attr("creator", Jid::pn(g.creator.clone()))
            .attr("size", g.participants.len().to_string());
    }
    if st.communities.is_default(id) {
        b = b.children([Node::new("default_sub_group")]);
    }
    b.build()
}

fn admin_of(st: &Inner, group: &str, phone: &str) -> Option<bool> {
    st.groups
        .get(group)
        .map(|g| g.role(phone).is_some_and(Role::is_admin))
}

fn member_of(st: &Inner, group: &str, phone: &str) -> bool {
    st.groups
        .get(group)
        .is_some_and(|g| g.role(phone).is_some())
}

/// Answers the community requests; `None` leaves the request to the group code.
pub(crate) fn iq(
    st: &mut Inner,
    me: &Jid,
    id: &str,
    ty: &str,
    to: &Jid,
    op: &Node,
    notices: &mut Vec<Notice>,
) -> Option<Node> {
    let me_user = me.user.as_str().to_owned();
    if to.user.as_str().is_empty() {
        return match (ty, op.tag()) {
            ("set", "create") => {
                let parent = op.child("linked_parent")?;
                let Some(parent) = parent.attr_opt::<Jid>("jid").ok().flatten() else {
                    return Some(iq_error(id, groups_server(), 400, "bad-request"));
                };
                let pid = parent.user.as_str();
                if !st.communities.parents.contains(pid) {
                    return Some(iq_error(id, groups_server(), 404, "item-not-found"));
                }
                if admin_of(st, pid, &me_user) != Some(true) {
                    return Some(iq_error(id, groups_server(), 401, "not-authorized"));
                }
                // Valid: the group code creates it, `after` links it.
                None
            }
            ("set", "leave") if op.child("community").is_some() => {
                Some(leave(st, me, id, op, notices))
            }
            _ => None,
        };
    }
    let gid = to.user.as_str().to_owned();
    let community_op = matches!(
        (ty, op.tag()),
        ("set", "links" | "unlink") | ("get", "sub_groups" | "linked_groups_participants")
    );
    if !community_op {
        return None;
    }
    if !st.groups.contains_key(&gid) {
        return Some(iq_error(id, to.clone(), 404, "item-not-found"));
    }
    if !st.communities.parents.contains(&gid) {
        return Some(iq_error(id, to.clone(), 400, "bad-request"));
    }
    Some(match op.tag() {
        "links" => link(st, me, id, to, op, notices),
        "unlink" => unlink(st, me, id, to, op, notices),
        "sub_groups" => {
            if !member_of(st, &gid, &me_user) {
                return Some(iq_error(id, to.clone(), 403, "forbidden"));
            }
            let mut subs: Vec<String> = st.communities.sub_groups(&gid).cloned().collect();
            subs.sort_by_key(|s| !st.communities.is_default(s));
            let list: Vec<Node> = subs.iter().map(|s| summary(st, s)).collect();
            iq_result(
                id,
                to.clone(),
                vec![Node::builder("sub_groups").children(list).build()],
            )
        }
        _ => {
            if !member_of(st, &gid, &me_user) {
                return Some(iq_error(id, to.clone(), 403, "forbidden"));
            }
            let mut seen = BTreeSet::new();
            let groups =
                std::iter::once(gid.clone()).chain(st.communities.sub_groups(&gid).cloned());
            for g in groups.collect::<Vec<_>>() {
                if let Some(g) = st.groups.get(&g) {
                    for (p, _) in &g.participants {
                        seen.insert(p.clone());
                    }
                }
            }
            let list = seen
                .into_iter()
                .map(|p| Node::builder("participant").attr("jid", Jid::pn(p)).build());
            iq_result(
                id,
                to.clone(),
                vec![
                    Node::builder("linked_groups_participants")
                        .children(list)
                        .build(),
                ],
            )
        }
    })
}

/// The groups a link or unlink request names (`<group jid>` anywhere one level below
/// `op` or below its `<link>` children).
fn named_groups(op: &Node) -> Vec<Option<Jid>> {
    let direct = op.children_by_tag("group");
    let nested = op
        .children_by_tag("link")
        .flat_map(|l| l.children_by_tag("group"));
    direct
        .chain(nested)
        .take(MAX_LINKS_PER_REQUEST + 1)
        .map(|g| g.attr_opt::<Jid>("jid").ok().flatten())
        .collect()
}

/// Adds `phones` to a group as members (when not in it yet).
fn add_members(st: &mut Inner, group: &str, phones: &[String]) {
    if let Some(g) = st.groups.get_mut(group) {
        for p in phones {
            if g.participants.len() < MAX_PARTICIPANTS && g.role(p).is_none() {
                g.participants.push((p.clone(), Role::Member));
            }
        }
    }
}

/// Links `child` into community `parent`: its members join the community and its
/// announcement group; both groups' members hear about it.
fn do_link(st: &mut Inner, me: &Jid, parent: &str, child: &str, notices: &mut Vec<Notice>) {
    st.communities
        .parent_of
        .insert(child.to_owned(), parent.to_owned());
    let members: Vec<String> = st
        .groups
        .get(child)
        .map(|g| g.participants.iter().map(|(p, _)| p.clone()).collect())
        .unwrap_or_default();
    add_members(st, parent, &members);
    if let Some(a) = st.communities.announce_of.get(parent).cloned() {
        add_members(st, &a, &members);
    }
    let devices = |st: &Inner, g: &str| st.groups.get(g).map(|g| g.devices(st)).unwrap_or_default();
    notices.push(Notice {
        group: group_jid(parent),
        actor: me.clone(),
        child: Node::builder("link")
            .attr("link_type", "sub_group")
            .children([summary(st, child)])
            .build(),
        devices: devices(st, parent),
    });
    notices.push(Notice {
        group: group_jid(child),
        actor: me.clone(),
        child: Node::builder("link")
            .attr("link_type", "parent_group")
            .children([summary(st, parent)])
            .build(),
        devices: devices(st, child),
    });
}

fn link(
    st: &mut Inner,
    me: &Jid,
    id: &str,
    to: &Jid,
    op: &Node,
    notices: &mut Vec<Notice>,
) -> Node {
    let parent = to.user.as_str().to_owned();
    let me_user = me.user.as_str();
    if admin_of(st, &parent, me_user) != Some(true) {
        return iq_error(id, to.clone(), 401, "not-authorized");
    }
    if op
        .children_by_tag("link")
        .any(|l| l.attr_opt::<&str>("link_type").ok().flatten() != Some("sub_group"))
    {
        return iq_error(id, to.clone(), 400, "bad-request");
    }
    let named = named_groups(op);
    if named.is_empty() || named.len() > MAX_LINKS_PER_REQUEST {
        return iq_error(id, to.clone(), 400, "bad-request");
    }
    let mut children = Vec::new();
    for j in &named {
        let Some(j) = j else {
            return iq_error(id, to.clone(), 400, "bad-request");
        };
        let c = j.user.as_str();
        match admin_of(st, c, me_user) {
            None => return iq_error(id, to.clone(), 404, "item-not-found"),
            Some(false) => return iq_error(id, to.clone(), 401, "not-authorized"),
            Some(true) => {}
        }
        if st.communities.parents.contains(c) || c == parent {
            return iq_error(id, to.clone(), 400, "bad-request");
        }
        if st.communities.parent_of.contains_key(c) {
            return iq_error(id, to.clone(), 409, "conflict");
        }
        children.push(c.to_owned());
    }
    let mut linked = Vec::new();
    for c in children {
        do_link(st, me, &parent, &c, notices);
        linked.push(Node::builder("group").attr("jid", group_jid(&c)).build());
    }
    iq_result(
        id,
        to.clone(),
        vec![
            Node::builder("links")
                .children([Node::builder("link")
                    .attr("link_type", "sub_group")
                    .children(linked)
                    .build()])
                .build(),
        ],
    )
}

/// Unlinks `child` from `parent`, telling both groups' members (with `reason`).
fn do_unlink(
    st: &mut Inner,
    me: &Jid,
    parent: &str,
    child: &str,
    reason: &'static str,
    notices: &mut Vec<Notice>,
) {
    st.communities.parent_of.remove(child);
    let devices = |st: &Inner, g: &str| st.groups.get(g).map(|g| g.devices(st)).unwrap_or_default();
    notices.push(Notice {
        group: group_jid(parent),
        actor: me.clone(),
        child: Node::builder("unlink")
            .attr("unlink_type", "sub_group")
            .attr("unlink_reason", reason)
            .children([summary(st, child)])
            .build(),
        devices: devices(st, parent),
    });
    notices.push(Notice {
        group: group_jid(child),
        actor: me.clone(),
        child: Node::builder("unlink")
            .attr("unlink_type", "parent_group")
            .attr("unlink_reason", reason)
            .children([summary(st, parent)])
            .build(),
        devices: devices(st, child),
    });
}

fn unlink(
    st: &mut Inner,
    me: &Jid,
    id: &str,
    to: &Jid,
    op: &Node,
    notices: &mut Vec<Notice>,
) -> Node {
    let parent = to.user.as_str().to_owned();
    if admin_of(st, &parent, me.user.as_str()) != Some(true) {
        return iq_error(id, to.clone(), 401, "not-authorized");
    }
    if op.attr_opt::<&str>("unlink_type").ok().flatten() != Some("sub_group") {
        return iq_error(id, to.clone(), 400, "bad-request");
    }
    let named = named_groups(op);
    if named.is_empty() || named.len() > MAX_LINKS_PER_REQUEST {
        return iq_error(id, to.clone(), 400, "bad-request");
    }
    let mut children = Vec::new();
    for j in &named {
        let Some(j) = j else {
            return iq_error(id, to.clone(), 400, "bad-request");
        };
        let c = j.user.as_str();
        if st.communities.parent_of.get(c) != Some(&parent) {
            return iq_error(id, to.clone(), 404, "item-not-found");
        }
        if st.communities.is_default(c) {
            // The announcement group lives and dies with its community.
            return iq_error(id, to.clone(), 400, "bad-request");
        }
        children.push(c.to_owned());
    }
    let mut unlinked = Vec::new();
    for c in children {
        do_unlink(st, me, &parent, &c, "unlink_group", notices);
        unlinked.push(Node::builder("group").attr("jid", group_jid(&c)).build());
    }
    iq_result(
        id,
        to.clone(),
        vec![
            Node::builder("unlink")
                .attr("unlink_type", "sub_group")
                .children(unlinked)
                .build(),
        ],
    )
}

/// `<leave><community id/></leave>`: leaves each community and every group of it. A
/// community its last member left is deleted: its announcement group goes, its other
/// groups are unlinked (`unlink_reason="delete_parent"`) and live on.
fn leave(st: &mut Inner, me: &Jid, id: &str, op: &Node, notices: &mut Vec<Notice>) -> Node {
    let me_user = me.user.as_str().to_owned();
    let mut left = Vec::new();
    for c in op.children_by_tag("community").take(MAX_LINKS_PER_REQUEST) {
        let Some(cid) = c.attr_opt::<Jid>("id").ok().flatten() else {
            continue;
        };
        let parent = cid.user.as_str().to_owned();
        if !st.communities.parents.contains(&parent) || !member_of(st, &parent, &me_user) {
            continue;
        }
        let groups: Vec<String> = std::iter::once(parent.clone())
            .chain(st.communities.sub_groups(&parent).cloned())
            .collect();
        for g in &groups {
            let Some(group) = st.groups.get(g) else {
                continue;
            };
            if group.role(&me_user).is_none() {
                continue;
            }
            let devices = group.devices(st);
            if let Some(group) = st.groups.get_mut(g) {
                group.participants.retain(|(p, _)| *p != me_user);
            }
            notices.push(Notice {
                group: group_jid(g),
                actor: me.clone(),
                child: participants_node("remove", std::slice::from_ref(&me_user)),
                devices,
            });
        }
        if st
            .groups
            .get(&parent)
            .is_some_and(|g| g.participants.is_empty())
        {
            delete_community(st, me, &parent, notices);
        }
        left.push(Node::builder("community").attr("id", cid).build());
    }
    iq_result(
        id,
        groups_server(),
        vec![Node::builder("leave").children(left).build()],
    )
}

fn delete_community(st: &mut Inner, me: &Jid, parent: &str, notices: &mut Vec<Notice>) {
    let announce = st.communities.announce_of.remove(parent);
    let subs: Vec<String> = st.communities.sub_groups(parent).cloned().collect();
    for s in subs {
        if Some(&s) == announce.as_ref() {
            st.communities.parent_of.remove(&s);
            st.groups.remove(&s);
        } else {
            do_unlink(st, me, parent, &s, "delete_parent", notices);
        }
    }
    st.communities.parents.remove(parent);
    st.groups.remove(parent);
}

/// After a request: a created community gets its announcement group, a group created
/// inside a community is linked, and every `<group>` in the answer and the
/// notifications gets its community flags.
pub(crate) fn after(
    st: &mut Inner,
    me: &Jid,
    op: &Node,
    reply: &mut Node,
    notices: &mut Vec<Notice>,
) {
    let ok = reply.attr_opt::<&str>("type").ok().flatten() == Some("result");
    if ok && op.tag() == "create" {
        let created = reply
            .child("group")
            .and_then(|g| g.attr_opt::<String>("id").ok().flatten());
        if let Some(gid) = created {
            if let Some(body) = op
                .child("description")
                .and_then(|d| d.child("body"))
                .and_then(|b| b.content_bytes())
                .filter(|b| !b.is_empty() && b.len() <= MAX_DESCRIPTION)
                .and_then(|b| std::str::from_utf8(b).ok())
            {
                set_description(st, me, &gid, op, body, reply, notices);
            }
            if op.child("parent").is_some() {
                make_community(st, me, &gid, notices);
            } else if let Some(parent) = op
                .child("linked_parent")
                .and_then(|l| l.attr_opt::<Jid>("jid").ok().flatten())
            {
                do_link(st, me, parent.user.as_str(), &gid, notices);
            }
        }
    }
    decorate_all(&st.communities, reply);
    for n in notices.iter_mut() {
        decorate_all(&st.communities, &mut n.child);
    }
}

/// Longest description taken from a create request, in bytes.
const MAX_DESCRIPTION: usize = 4096;

/// A description given with `<create>` (Baileys' community create sends one): stored,
/// and the answer and the create notifications show it.
fn set_description(
    st: &mut Inner,
    me: &Jid,
    gid: &str,
    op: &Node,
    body: &str,
    reply: &mut Node,
    notices: &mut [Notice],
) {
    let Some(g) = st.groups.get_mut(gid) else {
        return;
    };
    let id = op
        .child("description")
        .and_then(|d| d.attr_opt::<String>("id").ok().flatten())
        .filter(|i| !i.is_empty() && i.len() <= 64)
        .unwrap_or_else(crate::sim::fresh_id);
    g.description = Some(Description {
        id,
        body: body.to_owned(),
        by: me.user.as_str().to_owned(),
        t: unix_now(),
    });
    let node = g.node();
    reply.content = Content::Nodes(vec![node.clone()]);
    let jid = group_jid(gid);
    for n in notices.iter_mut().filter(|n| n.group == jid) {
        if n.child.tag() == "create" {
            n.child.content = Content::Nodes(vec![node.clone()]);
        }
    }
}

/// Marks `gid` a community and creates its announcement group (same name and members,
/// only admins send).
fn make_community(st: &mut Inner, me: &Jid, gid: &str, notices: &mut Vec<Notice>) {
    st.communities.parents.insert(gid.to_owned());
    if st.groups.len() >= MAX_GROUPS {
        return;
    }
    let Some(parent) = st.groups.get(gid) else {
        return;
    };
    let now = unix_now();
    st.next_group += 1;
    let announce = Group {
        id: format!("120363{:012}", st.next_group),
        creator: parent.creator.clone(),
        creation: now,
        subject: parent.subject.clone(),
        subject_owner: parent.creator.clone(),
        subject_time: now,
        description: None,
        announce: true,
        locked: true,
        ephemeral: 0,
        invite: invite_code(),
        participants: parent.participants.clone(),
        admission: Default::default(),
    };
    let aid = announce.id.clone();
    st.communities.parent_of.insert(aid.clone(), gid.to_owned());
    st.communities
        .announce_of
        .insert(gid.to_owned(), aid.clone());
    let devices = announce.devices(st);
    let node = announce.node();
    st.groups.insert(aid.clone(), announce);
    notices.push(Notice {
        group: group_jid(&aid),
        actor: me.clone(),
        child: Node::builder("create")
            .attr("reason", "create")
            .children([node])
            .build(),
        devices,
    });
}

/// Adds the community flags to `node` when it is a `<group>`, and to its `<group>`
/// children and grandchildren (metadata, create and participating answers).
fn decorate_all(c: &Communities, node: &mut Node) {
    if node.tag() == "group" {
        decorate(c, node);
    }
    if let Content::Nodes(children) = &mut node.content {
        for child in children {
            if child.tag() == "group" {
                decorate(c, child);
            } else if let Content::Nodes(grand) = &mut child.content {
                for g in grand.iter_mut().filter(|g| g.tag() == "group") {
                    decorate(c, g);
                }
            }
        }
    }
}

fn decorate(c: &Communities, group: &mut Node) {
    let Some(id) = group.attr_opt::<String>("id").ok().flatten() else {
        return;
    };
    let mut extra = Vec::new();
    if c.parents.contains(&id) {
        extra.push(
            Node::builder("parent")
                .attr("default_membership_approval_mode", "request_required")
                .build(),
        );
    }
    if let Some(p) = c.parent_of.get(&id) {
        extra.push(
            Node::builder("linked_parent")
                .attr("jid", group_jid(p))
                .build(),
        );
        if c.is_default(&id) {
            extra.push(Node::new("default_sub_group"));
        }
    }
    if extra.is_empty() {
        return;
    }
    match &mut group.content {
        Content::Nodes(children) => {
            children
                .retain(|n| !matches!(n.tag(), "parent" | "linked_parent" | "default_sub_group"));
            children.extend(extra);
        }
        other => *other = Content::Nodes(extra),
    }
}
