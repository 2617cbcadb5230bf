//! Groups (`xmlns="w:g2"`): the group iqs, `w:gp2` notifications to the members'
//! devices, and group message fan-out (MSG_SPEC: group send).
//!
//! Requests follow Baileys' `groups.ts`; replies and notifications have the shape
//! whatsmeow's `group.go` parses (`<group id creator creation subject s_t s_o size
//! addressing_mode><participant jid type/>..</group>`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use bytes::Bytes;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use wa_binary::{Jid, Node, Server};

use crate::route::{self, Delivery, resolve_user, server_ack, user_devices};
use crate::sim::{Shared, fresh_id, unix_now};
use crate::state::Inner;

/// Most groups the simulator holds.
pub(crate) const MAX_GROUPS: usize = 10_000;
/// Most participants per group.
pub(crate) const MAX_PARTICIPANTS: usize = 1024;
/// Longest subject, in bytes.
const MAX_SUBJECT: usize = 512;
/// Longest description, in bytes.
const MAX_DESCRIPTION: usize = 4096;

/// A participant's rank.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    Member,
    Admin,
    SuperAdmin,
}

impl Role {
    fn attr(self) -> Option<&'static str> {
        match self {
            Role::Member => None,
            Role::Admin => Some("admin"),
            Role::SuperAdmin => Some("superadmin"),
        }
    }

    pub(crate) fn is_admin(self) -> bool {
        self != Role::Member
    }
}

/// A group's description.
#[derive(Clone, Debug)]
pub(crate) struct Description {
    pub(crate) id: String,
    pub(crate) body: String,
    pub(crate) by: String,
    pub(crate) t: u64,
}

/// Invite-link codes remembered after a reset (answered 410 gone rather than 406).
const MAX_REVOKED_CODES: usize = 16;
/// How long a personal (v4) invite stays valid, in seconds (three days).
const V4_INVITE_TTL: u64 = 3 * 24 * 60 * 60;

/// A request to join a group that needs an admin's approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JoinRequest {
    /// Who asks, by phone number.
    pub(crate) phone: String,
    /// When (unix seconds).
    pub(crate) t: u64,
    /// How (`invite_link`).
    pub(crate) method: &'static str,
}

/// A personal invite (the code of a `GroupInviteMessage`), issued to a user an admin
/// could not add because of the user's privacy settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct V4Invite {
    /// The invited user, by phone number.
    pub(crate) phone: String,
    /// The admin whose add was refused.
    pub(crate) admin: String,
    /// The code.
    pub(crate) code: String,
    /// Valid until (unix seconds).
    pub(crate) expiration: u64,
}

/// Who may bring members into a group, and who is waiting. Not written by `persist`: a
/// reloaded simulator starts every group with the defaults.
#[derive(Clone, Debug, Default)]
pub(crate) struct Admission {
    /// Every member may add members (`all_member_add`); when false only admins may
    /// (`admin_add`, the default here).
    pub(crate) member_add_all: bool,
    /// Joining by link needs an admin's approval.
    pub(crate) join_approval: bool,
    /// Pending join requests, oldest first.
    pub(crate) requests: Vec<JoinRequest>,
    /// Invite-link codes replaced by a reset, newest last.
    pub(crate) revoked_codes: Vec<String>,
    /// Outstanding personal invites.
    pub(crate) v4_invites: Vec<V4Invite>,
}

/// One group.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) creator: String,
    pub(crate) creation: u64,
    pub(crate) subject: String,
    pub(crate) subject_owner: String,
    pub(crate) subject_time: u64,
    pub(crate) description: Option<Description>,
    pub(crate) announce: bool,
    pub(crate) locked: bool,
    pub(crate) ephemeral: u32,
    pub(crate) invite: String,
    /// Phone numbers with their role, in join order.
    pub(crate) participants: Vec<(String, Role)>,
    /// Add mode, join approval, requests and invites.
    pub(crate) admission: Admission,
}

impl Group {
    pub(crate) fn jid(&self) -> Jid {
        Jid::group(self.id.clone())
    }

    pub(crate) fn role(&self, phone: &str) -> Option<Role> {
        self.participants
            .iter()
            .find(|(p, _)| p == phone)
            .map(|(_, r)| *r)
    }

    fn set_role(&mut self, phone: &str, role: Role) {
        if let Some(e) = self.participants.iter_mut().find(|(p, _)| p == phone) {
            e.1 = role;
        }
    }

    /// `<group ...>` as a metadata answer carries it.
    pub(crate) fn node(&self) -> Node {
        let mut children: Vec<Node> = self
            .participants
            .iter()
            .map(|(p, r)| {
                Node::builder("participant")
                    .attr("jid", Jid::pn(p.clone()))
                    .attr_opt("type", r.attr())
                    .build()
            })
            .collect();
        if let Some(d) = &self.description {
            children.push(
                Node::builder("description")
                    .attr("id", d.id.clone())
                    .attr("participant", Jid::pn(d.by.clone()))
                    .attr("t", d.t.to_string())
                    .children([Node::builder("body")
                        .bytes(Bytes::from(d.body.clone().into_bytes()))
                        .build()])
                    .build(),
            );
        }
        if self.announce {
            children.push(Node::new("announcement"));
        }
        if self.locked {
            children.push(Node::new("locked"));
        }
        if self.ephemeral > 0 {
            children.push(
                Node::builder("ephemeral")
                    .attr("expiration", self.ephemeral.to_string())
                    .build(),
            );
        }
        children.push(member_add_mode_node(self.admission.member_add_all));
        if self.admission.join_approval {
            children.push(approval_mode_node(true));
        }
        Node::builder("group")
            .attr("id", self.id.clone())
            .attr("creator", Jid::pn(self.creator.clone()))
            .attr("creation", self.creation.to_string())
            .attr("subject", self.subject.clone())
            .attr("s_t", self.subject_time.to_string())
            .attr("s_o", Jid::pn(self.subject_owner.clone()))
            .attr("size", self.participants.len().to_string())
            .attr("addressing_mode", "pn")
            .children(children)
            .build()
    }

    /// Every device of every admin.
    pub(crate) fn admin_devices(&self, st: &Inner) -> Vec<Jid> {
        self.participants
            .iter()
            .filter(|(_, r)| r.is_admin())
            .flat_map(|(p, _)| user_devices(st, p))
            .collect()
    }

    /// Every device of every member, phones first per member.
    pub(crate) fn devices(&self, st: &Inner) -> Vec<Jid> {
        self.participants
            .iter()
            .flat_map(|(p, _)| user_devices(st, p))
            .collect()
    }
}

/// `<member_add_mode>all_member_add|admin_add</member_add_mode>`.
fn member_add_mode_node(all: bool) -> Node {
    let mode: &'static [u8] = if all { b"all_member_add" } else { b"admin_add" };
    Node::builder("member_add_mode")
        .bytes(Bytes::from_static(mode))
        .build()
}

/// `<membership_approval_mode><group_join state="on|off"/></membership_approval_mode>`.
fn approval_mode_node(on: bool) -> Node {
    Node::builder("membership_approval_mode")
        .children([Node::builder("group_join")
            .attr("state", if on { "on" } else { "off" })
            .build()])
        .build()
}

/// The admission settings a `<create>` asks for (whatsmeow's `ReqCreateGroup`):
/// `<member_add_mode>` and `<membership_approval_mode><group_join state>`; what it leaves
/// out keeps the default.
fn create_admission(op: &Node) -> Admission {
    let mut admission = Admission::default();
    if let Some(mode) = op.child("member_add_mode").and_then(Node::content_bytes) {
        match mode {
            b"all_member_add" => admission.member_add_all = true,
            b"admin_add" => admission.member_add_all = false,
            _ => {}
        }
    }
    admission.join_approval = op
        .child("membership_approval_mode")
        .and_then(|m| m.child("group_join"))
        .and_then(|j| j.attr_opt::<&str>("state").ok().flatten())
        == Some("on");
    admission
}

/// `"2:" + base64-no-pad(first 6 bytes of SHA-256(sorted device JIDs concatenated))`.
pub(crate) fn participant_hash(devices: &[Jid]) -> String {
    let mut names: Vec<String> = devices.iter().map(ToString::to_string).collect();
    names.sort();
    let digest = Sha256::digest(names.concat().as_bytes());
    format!("2:{}", STANDARD_NO_PAD.encode(&digest[..6]))
}

pub(crate) fn invite_code() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)[..22].to_owned()
}

fn text_of(node: &Node, max: usize) -> Option<String> {
    let raw = node.content_bytes()?;
    (raw.len() <= max)
        .then(|| std::str::from_utf8(raw).ok().map(str::to_owned))
        .flatten()
}

pub(crate) fn iq_result(id: &str, from: Jid, children: Vec<Node>) -> Node {
    Node::builder("iq")
        .attr("from", from)
        .attr("type", "result")
        .attr("id", id.to_owned())
        .children(children)
        .build()
}

pub(crate) fn iq_error(id: &str, from: Jid, code: u16, text: &'static str) -> Node {
    Node::builder("iq")
        .attr("from", from)
        .attr("type", "error")
        .attr("id", id.to_owned())
        .children([Node::builder("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

/// `@g.us`: the address of group operations that name no group.
pub(crate) fn groups_server() -> Jid {
    Jid::new("", Server::Group)
}

/// A `w:gp2` notification, to be delivered to `devices`.
pub(crate) struct Notice {
    pub(crate) group: Jid,
    pub(crate) actor: Jid,
    pub(crate) child: Node,
    pub(crate) devices: Vec<Jid>,
}

fn send_notices(shared: &Shared, notices: Vec<Notice>, except: &Jid) {
    let t = wa_binary::Str::decimal(unix_now().into());
    for n in notices {
        let node = Node::builder("notification")
            .attr("from", n.group)
            .attr("type", "w:gp2")
            .attr("id", fresh_id())
            .attr("participant", n.actor)
            .attr("t", t.clone())
            .children([n.child])
            .build();
        for d in n.devices.iter().filter(|d| *d != except) {
            route::deliver(shared, d, node.clone());
        }
    }
}

/// The privacy token a `<participant>` of a create or add request carries.
fn privacy_of(p: &Node) -> Option<Vec<u8>> {
    p.child("privacy").and_then(Node::bytes).map(|b| b.to_vec())
}

pub(crate) fn participants_node(tag: &'static str, phones: &[String]) -> Node {
    Node::builder(tag)
        .children(phones.iter().map(|p| {
            Node::builder("participant")
                .attr("jid", Jid::pn(p.clone()))
                .build()
        }))
        .build()
}

/// Answers an `<iq xmlns="w:g2">` from the logged-in device `me`.
pub(crate) fn iq(shared: &Shared, me: &Jid, id: &str, ty: &str, node: &Node) -> Node {
    let to = node
        .attr_opt::<Jid>("to")
        .ok()
        .flatten()
        .unwrap_or_else(groups_server);
    let Some(op) = node.children().first() else {
        return iq_error(id, to, 400, "bad-request");
    };
    if ty == "get" && op.tag() == "pictures" {
        return crate::chats::community_pictures(shared, me, id, op);
    }
    let mut notices = Vec::new();
    let reply = {
        let mut st = shared.state.lock();
        // Community requests first (links, sub-groups, leaving a community); then the
        // community flags are added to whatever group metadata the answer carries.
        let mut reply = crate::community::iq(&mut st, me, id, ty, &to, op, &mut notices)
            .unwrap_or_else(|| {
                if to.user.as_str().is_empty() {
                    on_server(&mut st, me, id, ty, op, &mut notices)
                } else {
                    on_group(&mut st, me, id, ty, &to, op, &mut notices)
                }
            });
        crate::community::after(&mut st, me, op, &mut reply, &mut notices);
        reply
    };
    send_notices(shared, notices, me);
    reply
}

/// Operations addressed to `@g.us`: create, leave, list participating groups.
fn on_server(
    st: &mut Inner,
    me: &Jid,
    id: &str,
    ty: &str,
    op: &Node,
    notices: &mut Vec<Notice>,
) -> Node {
    let me_user = me.user.as_str().to_owned();
    let server = groups_server();
    match (ty, op.tag()) {
        ("set", "create") => {
            let Some(subject) = op
                .attr_opt::<String>("subject")
                .ok()
                .flatten()
                .filter(|s| !s.is_empty() && s.len() <= MAX_SUBJECT)
            else {
                return iq_error(id, server, 400, "bad-request");
            };
            if st.groups.len() >= MAX_GROUPS {
                return iq_error(id, server, 503, "service-unavailable");
            }
            let mut participants = vec![(me_user.clone(), Role::SuperAdmin)];
            for p in op.children_by_tag("participant").take(MAX_PARTICIPANTS) {
                let Some(user) = p
                    .attr_opt::<Jid>("jid")
                    .ok()
                    .flatten()
                    .and_then(|j| resolve_user(st, &j))
                else {
                    continue;
                };
                let phone = user.user.as_str().to_owned();
                // A restricted account adds only users whose privacy token it holds.
                if !st
                    .chats
                    .tokens
                    .admits(me, &user, privacy_of(p).as_deref(), unix_now())
                {
                    continue;
                }
                if participants.len() < MAX_PARTICIPANTS
                    && !participants.iter().any(|(q, _)| *q == phone)
                {
                    participants.push((phone, Role::Member));
                }
            }
            let now = unix_now();
            st.next_group += 1;
            let group = Group {
                id: format!("120363{:012}", st.next_group),
                creator: me_user.clone(),
                creation: now,
                subject: subject.clone(),
                subject_owner: me_user,
                subject_time: now,
                description: None,
                announce: op.child("announcement").is_some(),
                locked: op.child("locked").is_some(),
                ephemeral: op
                    .child("ephemeral")
                    .and_then(|e| e.attr_opt::<u32>("expiration").ok().flatten())
                    .unwrap_or(0),
                invite: invite_code(),
                participants,
                admission: create_admission(op),
            };
            let node = group.node();
            let key = op.attr_opt::<String>("key").ok().flatten();
            notices.push(Notice {
                group: group.jid(),
                actor: me.clone(),
                child: Node::builder("create")
                    .attr("reason", "create")
                    .attr_opt("key", key)
                    .children([node.clone()])
                    .build(),
                devices: group.devices(st),
            });
            st.groups.insert(group.id.clone(), group);
            iq_result(id, server, vec![node])
        }
        ("set", "leave") => {
            let mut left = Vec::new();
            for g in op.children_by_tag("group").take(64) {
                let Some(gid) = g.attr_opt::<Jid>("id").ok().flatten() else {
                    continue;
                };
                let Some(group) = st.groups.get(gid.user.as_str()) else {
                    continue;
                };
                if group.role(me.user.as_str()).is_none() {
                    continue;
                }
                let devices = group.devices(st);
                let gid = gid.user.as_str().to_owned();
                if let Some(group) = st.groups.get_mut(&gid) {
                    group.participants.retain(|(p, _)| p != me.user.as_str());
                    notices.push(Notice {
                        group: group.jid(),
                        actor: me.clone(),
                        child: participants_node("remove", &[me.user.as_str().to_owned()]),
                        devices,
                    });
                    left.push(Node::builder("group").attr("id", group.jid()).build());
                    if group.participants.is_empty() {
                        st.groups.remove(&gid);
                    }
                }
            }
            iq_result(
                id,
                server,
                vec![Node::builder("leave").children(left).build()],
            )
        }
        (get_or_set, "invite") => {
            let code = op
                .attr_opt::<String>("code")
                .ok()
                .flatten()
                .unwrap_or_default();
            let Some(gid) = st
                .groups
                .values()
                .find(|g| !code.is_empty() && g.invite == code)
                .map(|g| g.id.clone())
            else {
                // A reset code is gone; anything else was never valid.
                let reset = !code.is_empty()
                    && st
                        .groups
                        .values()
                        .any(|g| g.admission.revoked_codes.contains(&code));
                return if reset {
                    iq_error(id, server, 410, "gone")
                } else {
                    iq_error(id, server, 406, "not-acceptable")
                };
            };
            if get_or_set == "get" {
                // The group behind an invite code (metadata, membership not needed).
                let node = st.groups.get(&gid).map(Group::node);
                return iq_result(id, server, node.into_iter().collect());
            }
            let (devices, admins) = st
                .groups
                .get(&gid)
                .map(|g| (g.devices(st), g.admin_devices(st)))
                .unwrap_or_default();
            let Some(group) = st.groups.get_mut(&gid) else {
                return iq_error(id, server, 404, "item-not-found");
            };
            let jid = group.jid();
            if group.role(&me_user).is_none() && group.admission.join_approval {
                // Not joined: a request for the admins to approve.
                let known = group.admission.requests.iter().any(|r| r.phone == me_user);
                if !known {
                    if group.admission.requests.len() >= MAX_PARTICIPANTS {
                        return iq_error(id, server, 500, "internal-server-error");
                    }
                    group.admission.requests.push(JoinRequest {
                        phone: me_user.clone(),
                        t: unix_now(),
                        method: "invite_link",
                    });
                    notices.push(Notice {
                        group: jid.clone(),
                        actor: me.clone(),
                        child: Node::builder("created_membership_requests")
                            .attr("request_method", "invite_link")
                            .children([Node::builder("participant")
                                .attr("jid", Jid::pn(me_user.clone()))
                                .build()])
                            .build(),
                        devices: admins,
                    });
                }
                return iq_result(
                    id,
                    server,
                    vec![
                        Node::builder("membership_approval_request")
                            .attr("jid", jid)
                            .build(),
                    ],
                );
            }
            if group.role(&me_user).is_none() {
                if group.participants.len() >= MAX_PARTICIPANTS {
                    return iq_error(id, server, 500, "internal-server-error");
                }
                group.participants.push((me_user.clone(), Role::Member));
                let mut targets = devices;
                targets.extend(user_devices(st, &me_user));
                notices.push(Notice {
                    group: jid.clone(),
                    actor: me.clone(),
                    child: Node::builder("add")
                        .attr("reason", "invite")
                        .children([Node::builder("participant")
                            .attr("jid", Jid::pn(me_user.clone()))
                            .build()])
                        .build(),
                    devices: targets,
                });
            }
            iq_result(
                id,
                server,
                vec![Node::builder("group").attr("jid", jid).build()],
            )
        }
        ("get", "participating") => {
            let groups: Vec<Node> = st
                .groups
                .values()
                .filter(|g| g.role(me.user.as_str()).is_some())
                .map(Group::node)
                .collect();
            iq_result(
                id,
                server,
                vec![Node::builder("groups").children(groups).build()],
            )
        }
        _ => iq_error(id, server, 501, "feature-not-implemented"),
    }
}

/// Operations on one group.
fn on_group(
    st: &mut Inner,
    me: &Jid,
    id: &str,
    ty: &str,
    to: &Jid,
    op: &Node,
    notices: &mut Vec<Notice>,
) -> Node {
    let gid = to.user.as_str().to_owned();
    let Some(group) = st.groups.get(&gid) else {
        return iq_error(id, to.clone(), 404, "item-not-found");
    };
    if (ty, op.tag()) == ("set", "accept") {
        // A personal invite is accepted by someone not yet in the group.
        return accept_v4(st, me, id, to, op, notices);
    }
    if (ty, op.tag()) == ("get", "query")
        && let Some(request) = op.child("add_request")
    {
        // ... and looked at by them first.
        return preview_v4(st, me, id, to, request);
    }
    let Some(my_role) = group.role(me.user.as_str()) else {
        return iq_error(id, to.clone(), 403, "forbidden");
    };
    let devices = group.devices(st);
    let notice = |child: Node, devices: Vec<Jid>| Notice {
        group: to.clone(),
        actor: me.clone(),
        child,
        devices,
    };
    // Anyone may read the metadata, and change subject and description while the
    // group is unlocked; everything else takes an admin.
    // Members may add members too when the add mode is `all_member_add`.
    let open_to_members = matches!((ty, op.tag()), ("get", "query"))
        || (matches!(op.tag(), "subject" | "description") && !group.locked)
        || ((ty, op.tag()) == ("set", "add") && group.admission.member_add_all);
    let needs_admin = !open_to_members;
    if needs_admin && !my_role.is_admin() {
        return iq_error(id, to.clone(), 401, "not-authorized");
    }
    let now = unix_now();
    match (ty, op.tag()) {
        ("get", "query") => iq_result(id, to.clone(), vec![group.node()]),
        ("set", action @ ("add" | "remove" | "promote" | "demote")) => {
            let asked: Vec<(Option<Jid>, Option<Vec<u8>>)> = op
                .children_by_tag("participant")
                .take(MAX_PARTICIPANTS)
                .map(|p| (p.attr_opt::<Jid>("jid").ok().flatten(), privacy_of(p)))
                .collect();
            let resolved: Vec<(Option<Jid>, Option<String>, bool)> = asked
                .into_iter()
                .map(|(j, token)| {
                    let user = j.as_ref().and_then(|j| resolve_user(st, j));
                    // A restricted account adds only users whose privacy token it holds.
                    let admitted = user
                        .as_ref()
                        .is_none_or(|u| st.chats.tokens.admits(me, u, token.as_deref(), now));
                    (j, user.map(|u| u.user.as_str().to_owned()), admitted)
                })
                .collect();
            let Some(group) = st.groups.get_mut(&gid) else {
                return iq_error(id, to.clone(), 404, "item-not-found");
            };
            let tag: &'static str = match action {
                "add" => "add",
                "remove" => "remove",
                "promote" => "promote",
                _ => "demote",
            };
            let mut out = Vec::new();
            let mut done = Vec::new();
            for (jid, phone, admitted) in resolved {
                let Some(jid) = jid else { continue };
                let code = match (&phone, action) {
                    (None, _) => Some(404),
                    (Some(p), "add") => {
                        if !admitted {
                            Some(403)
                        } else if group.role(p).is_some() {
                            Some(409)
                        } else if group.participants.len() >= MAX_PARTICIPANTS {
                            Some(500)
                        } else {
                            group.participants.push((p.clone(), Role::Member));
                            group.admission.requests.retain(|r| &r.phone != p);
                            None
                        }
                    }
                    (Some(p), _) if group.role(p).is_none() => Some(404),
                    (Some(p), _)
                        if group.role(p) == Some(Role::SuperAdmin) && p != me.user.as_str() =>
                    {
                        Some(403)
                    }
                    (Some(p), "remove") => {
                        group.participants.retain(|(q, _)| q != p);
                        None
                    }
                    (Some(p), "promote") => {
                        if group.role(p) == Some(Role::Member) {
                            group.set_role(p, Role::Admin);
                        }
                        None
                    }
                    (Some(p), _) => {
                        group.set_role(p, Role::Member);
                        None
                    }
                };
                // Privacy kept the user out: the admin gets a personal invite to send.
                let add_request = phone
                    .as_ref()
                    .filter(|_| action == "add" && code == Some(403))
                    .map(|p| issue_v4(group, p, me.user.as_str(), now));
                out.push(
                    Node::builder("participant")
                        .attr("jid", phone.clone().map_or(jid, Jid::pn))
                        .attr_opt("error", code.map(|c| c.to_string()))
                        .children(add_request)
                        .build(),
                );
                if code.is_none()
                    && let Some(p) = phone
                {
                    done.push(p);
                }
            }
            if !done.is_empty() {
                // Removed members hear about it too; added ones are in the new list.
                let mut targets = devices;
                if action == "add" {
                    for p in &done {
                        targets.extend(user_devices(st, p));
                    }
                }
                notices.push(notice(participants_node(tag, &done), targets));
            }
            // Removed from a community with `linked_groups="true"`: from its groups too.
            if action == "remove"
                && !done.is_empty()
                && op.attr_opt::<&str>("linked_groups").ok().flatten() == Some("true")
            {
                let subs: Vec<String> = st.communities.sub_groups(&gid).cloned().collect();
                for sub in subs {
                    let Some(g) = st.groups.get(&sub) else {
                        continue;
                    };
                    let gone: Vec<String> = done
                        .iter()
                        .filter(|p| g.role(p).is_some())
                        .cloned()
                        .collect();
                    if gone.is_empty() {
                        continue;
                    }
                    let targets = g.devices(st);
                    if let Some(g) = st.groups.get_mut(&sub) {
                        g.participants.retain(|(q, _)| !gone.contains(q));
                    }
                    notices.push(Notice {
                        group: Jid::group(sub.clone()),
                        actor: me.clone(),
                        child: participants_node("remove", &gone),
                        devices: targets,
                    });
                }
            }
            iq_result(
                id,
                to.clone(),
                vec![Node::builder(tag).children(out).build()],
            )
        }
        ("set", "subject") => {
            let Some(subject) = text_of(op, MAX_SUBJECT).filter(|s| !s.is_empty()) else {
                return iq_error(id, to.clone(), 400, "bad-request");
            };
            if let Some(g) = st.groups.get_mut(&gid) {
                g.subject = subject.clone();
                g.subject_owner = me.user.as_str().to_owned();
                g.subject_time = now;
            }
            notices.push(notice(
                Node::builder("subject")
                    .attr("subject", subject)
                    .attr("s_t", now.to_string())
                    .attr("s_o", Jid::pn(me.user.clone()))
                    .build(),
                devices,
            ));
            iq_result(id, to.clone(), Vec::new())
        }
        ("set", "description") => {
            let delete = op.attr_opt::<&str>("delete").ok().flatten() == Some("true");
            let body = op.child("body").and_then(|b| text_of(b, MAX_DESCRIPTION));
            let desc_id = op
                .attr_opt::<String>("id")
                .ok()
                .flatten()
                .filter(|i| i.len() <= 64)
                .unwrap_or_else(fresh_id);
            let child = match (delete, body) {
                (true, _) => {
                    if let Some(g) = st.groups.get_mut(&gid) {
                        g.description = None;
                    }
                    Node::builder("description")
                        .attr("id", desc_id)
                        .children([Node::new("delete")])
                        .build()
                }
                (false, Some(body)) => {
                    if let Some(g) = st.groups.get_mut(&gid) {
                        g.description = Some(Description {
                            id: desc_id.clone(),
                            body: body.clone(),
                            by: me.user.as_str().to_owned(),
                            t: now,
                        });
                    }
                    Node::builder("description")
                        .attr("id", desc_id)
                        .children([Node::builder("body")
                            .bytes(Bytes::from(body.into_bytes()))
                            .build()])
                        .build()
                }
                (false, None) => return iq_error(id, to.clone(), 400, "bad-request"),
            };
            notices.push(notice(child, devices));
            iq_result(id, to.clone(), Vec::new())
        }
        ("set", setting @ ("announcement" | "not_announcement" | "locked" | "unlocked")) => {
            if let Some(g) = st.groups.get_mut(&gid) {
                match setting {
                    "announcement" => g.announce = true,
                    "not_announcement" => g.announce = false,
                    "locked" => g.locked = true,
                    _ => g.locked = false,
                }
            }
            let tag: &'static str = match setting {
                "announcement" => "announcement",
                "not_announcement" => "not_announcement",
                "locked" => "locked",
                _ => "unlocked",
            };
            notices.push(notice(
                Node::builder(tag).attr("v_id", now.to_string()).build(),
                devices,
            ));
            iq_result(id, to.clone(), Vec::new())
        }
        ("set", "ephemeral" | "not_ephemeral") => {
            let expiration = if op.tag() == "ephemeral" {
                op.attr_opt::<u32>("expiration").ok().flatten().unwrap_or(0)
            } else {
                0
            };
            if let Some(g) = st.groups.get_mut(&gid) {
                g.ephemeral = expiration;
            }
            let child = if expiration > 0 {
                Node::builder("ephemeral")
                    .attr("expiration", expiration.to_string())
                    .build()
            } else {
                Node::new("not_ephemeral")
            };
            notices.push(notice(child, devices));
            iq_result(id, to.clone(), Vec::new())
        }
        (get_or_set, "invite") => {
            let Some(g) = st.groups.get_mut(&gid) else {
                return iq_error(id, to.clone(), 404, "item-not-found");
            };
            if get_or_set == "set" {
                if g.admission.revoked_codes.len() >= MAX_REVOKED_CODES {
                    g.admission.revoked_codes.remove(0);
                }
                let old = std::mem::replace(&mut g.invite, invite_code());
                g.admission.revoked_codes.push(old);
                notices.push(notice(
                    Node::builder("invite")
                        .attr("code", g.invite.clone())
                        .build(),
                    devices,
                ));
            }
            iq_result(
                id,
                to.clone(),
                vec![
                    Node::builder("invite")
                        .attr("code", g.invite.clone())
                        .build(),
                ],
            )
        }
        ("set", "member_add_mode") => {
            let all = match op.content_bytes() {
                Some(b"all_member_add") => true,
                Some(b"admin_add") => false,
                _ => return iq_error(id, to.clone(), 400, "bad-request"),
            };
            if let Some(g) = st.groups.get_mut(&gid) {
                g.admission.member_add_all = all;
            }
            notices.push(notice(member_add_mode_node(all), devices));
            iq_result(id, to.clone(), Vec::new())
        }
        ("set", "membership_approval_mode") => {
            let state = op
                .child("group_join")
                .and_then(|j| j.attr_opt::<&str>("state").ok().flatten());
            let on = match state {
                Some("on") => true,
                Some("off") => false,
                _ => return iq_error(id, to.clone(), 400, "bad-request"),
            };
            if let Some(g) = st.groups.get_mut(&gid) {
                g.admission.join_approval = on;
            }
            notices.push(notice(approval_mode_node(on), devices));
            iq_result(id, to.clone(), Vec::new())
        }
        ("get", "membership_approval_requests") => {
            let list = group
                .admission
                .requests
                .iter()
                .map(|r| {
                    Node::builder("membership_approval_request")
                        .attr("jid", Jid::pn(r.phone.clone()))
                        .attr("request_time", r.t.to_string())
                        .attr("request_method", r.method)
                        .build()
                })
                .collect::<Vec<_>>();
            iq_result(
                id,
                to.clone(),
                vec![
                    Node::builder("membership_approval_requests")
                        .children(list)
                        .build(),
                ],
            )
        }
        ("set", "membership_requests_action") => {
            requests_action(st, me, id, to, op, devices, notices)
        }
        ("set", "revoke") => {
            // Personal invites of the named users stop working.
            let revoked: Vec<String> = op
                .children_by_tag("participant")
                .take(MAX_PARTICIPANTS)
                .filter_map(|p| p.attr_opt::<Jid>("jid").ok().flatten())
                .filter_map(|j| resolve_user(st, &j))
                .map(|u| u.user.as_str().to_owned())
                .collect();
            if let Some(g) = st.groups.get_mut(&gid) {
                g.admission
                    .v4_invites
                    .retain(|i| !revoked.contains(&i.phone));
            }
            iq_result(id, to.clone(), Vec::new())
        }
        _ => iq_error(id, to.clone(), 501, "feature-not-implemented"),
    }
}

/// Records a personal invite for `phone` from `admin` (replacing an older one) and
/// returns the `<add_request code expiration/>` the add answer carries.
fn issue_v4(group: &mut Group, phone: &str, admin: &str, now: u64) -> Node {
    let invites = &mut group.admission.v4_invites;
    invites.retain(|i| i.phone != phone);
    if invites.len() >= MAX_PARTICIPANTS {
        invites.remove(0);
    }
    let invite = V4Invite {
        phone: phone.to_owned(),
        admin: admin.to_owned(),
        code: invite_code(),
        expiration: now + V4_INVITE_TTL,
    };
    let node = Node::builder("add_request")
        .attr("code", invite.code.clone())
        .attr("expiration", invite.expiration.to_string())
        .build();
    invites.push(invite);
    node
}

/// Why a personal invite named in a request does not hold.
enum V4Refusal {
    /// The request lacks its code or admin: 400.
    BadRequest,
    /// No such group: 404.
    NoGroup,
    /// Not an invite issued to this user by that admin with that code, or revoked or
    /// used up: 406.
    NotOurs,
    /// Expired (an issued invite past its time is dropped), or the request's own
    /// expiration has passed: 410.
    Expired,
}

impl V4Refusal {
    fn reply(self, id: &str, to: &Jid) -> Node {
        match self {
            V4Refusal::BadRequest => iq_error(id, to.clone(), 400, "bad-request"),
            V4Refusal::NoGroup => iq_error(id, to.clone(), 404, "item-not-found"),
            V4Refusal::NotOurs => iq_error(id, to.clone(), 406, "not-acceptable"),
            V4Refusal::Expired => iq_error(id, to.clone(), 410, "gone"),
        }
    }
}

/// Finds the personal invite a request (`<accept>` or `<add_request>`, with `code`,
/// `admin` and `expiration`) from `me` names for the group `to`; its index in the
/// group's invites. An expired invite is dropped.
fn find_v4(st: &mut Inner, me: &Jid, to: &Jid, request: &Node) -> Result<usize, V4Refusal> {
    let me_user = me.user.as_str();
    let code = request
        .attr_opt::<&str>("code")
        .ok()
        .flatten()
        .unwrap_or("");
    let admin = request
        .attr_opt::<Jid>("admin")
        .ok()
        .flatten()
        .and_then(|a| resolve_user(st, &a))
        .map(|u| u.user.as_str().to_owned());
    let (Some(admin), false) = (admin, code.is_empty()) else {
        return Err(V4Refusal::BadRequest);
    };
    // The expiration the invite message carried, when the request repeats it (0: none).
    let claimed = request
        .attr_opt::<u64>("expiration")
        .ok()
        .flatten()
        .filter(|e| *e != 0);
    let group = st
        .groups
        .get_mut(to.user.as_str())
        .ok_or(V4Refusal::NoGroup)?;
    let invites = &mut group.admission.v4_invites;
    let pos = invites
        .iter()
        .position(|i| i.phone == me_user && i.code == code && i.admin == admin)
        .ok_or(V4Refusal::NotOurs)?;
    let now = unix_now();
    if invites[pos].expiration <= now {
        invites.remove(pos);
        return Err(V4Refusal::Expired);
    }
    if claimed.is_some_and(|e| e <= now) {
        // The invite message itself says it expired.
        return Err(V4Refusal::Expired);
    }
    Ok(pos)
}

/// `<query><add_request code expiration admin/></query>` sent to a group: the metadata
/// of the group a personal invite leads to, for the invitee before joining (whatsmeow's
/// `GetGroupInfoFromInvite`). Checked as an accept is; nothing is used up.
fn preview_v4(st: &mut Inner, me: &Jid, id: &str, to: &Jid, request: &Node) -> Node {
    match find_v4(st, me, to, request) {
        Ok(_) => {
            let node = st.groups.get(to.user.as_str()).map(Group::node);
            iq_result(id, to.clone(), node.into_iter().collect())
        }
        Err(refusal) => refusal.reply(id, to),
    }
}

/// `<accept code expiration admin/>` sent to a group: joins with a personal invite.
/// Valid when the code is the one issued to this user, unexpired, and `admin` names the
/// admin it was issued for; used up by joining.
fn accept_v4(
    st: &mut Inner,
    me: &Jid,
    id: &str,
    to: &Jid,
    op: &Node,
    notices: &mut Vec<Notice>,
) -> Node {
    let me_user = me.user.as_str().to_owned();
    let pos = match find_v4(st, me, to, op) {
        Ok(pos) => pos,
        Err(refusal) => return refusal.reply(id, to),
    };
    let Some(group) = st.groups.get(to.user.as_str()) else {
        return iq_error(id, to.clone(), 404, "item-not-found");
    };
    let devices = group.devices(st);
    let Some(group) = st.groups.get_mut(to.user.as_str()) else {
        return iq_error(id, to.clone(), 404, "item-not-found");
    };
    if group.role(&me_user).is_none() {
        if group.participants.len() >= MAX_PARTICIPANTS {
            return iq_error(id, to.clone(), 500, "internal-server-error");
        }
        group.admission.v4_invites.remove(pos);
        group.admission.requests.retain(|r| r.phone != me_user);
        group.participants.push((me_user.clone(), Role::Member));
        let mut targets = devices;
        targets.extend(user_devices(st, &me_user));
        notices.push(Notice {
            group: to.clone(),
            actor: me.clone(),
            child: Node::builder("add")
                .attr("reason", "invite")
                .children([Node::builder("participant")
                    .attr("jid", Jid::pn(me_user))
                    .build()])
                .build(),
            devices: targets,
        });
    }
    iq_result(id, to.clone(), Vec::new())
}

/// `<membership_requests_action><approve|reject><participant jid/>..`: approving adds
/// the requester (announced like an add), rejecting drops the request (the admins hear
/// `revoked_membership_requests`). A user with no pending request gets error 404.
fn requests_action(
    st: &mut Inner,
    me: &Jid,
    id: &str,
    to: &Jid,
    op: &Node,
    devices: Vec<Jid>,
    notices: &mut Vec<Notice>,
) -> Node {
    let Some(list) = op
        .children()
        .iter()
        .find(|c| matches!(c.tag(), "approve" | "reject"))
    else {
        return iq_error(id, to.clone(), 400, "bad-request");
    };
    let approve = list.tag() == "approve";
    let asked: Vec<(Jid, Option<String>)> = list
        .children_by_tag("participant")
        .take(MAX_PARTICIPANTS)
        .filter_map(|p| p.attr_opt::<Jid>("jid").ok().flatten())
        .map(|j| {
            let user = resolve_user(st, &j).map(|u| u.user.as_str().to_owned());
            (j, user)
        })
        .collect();
    let admins = st
        .groups
        .get(to.user.as_str())
        .map(|g| g.admin_devices(st))
        .unwrap_or_default();
    let Some(group) = st.groups.get_mut(to.user.as_str()) else {
        return iq_error(id, to.clone(), 404, "item-not-found");
    };
    let mut out = Vec::new();
    let mut done = Vec::new();
    for (jid, phone) in asked {
        let pending = phone
            .as_ref()
            .and_then(|p| group.admission.requests.iter().position(|r| &r.phone == p));
        let code = match (pending, &phone) {
            (Some(pos), Some(p)) => {
                if !approve {
                    group.admission.requests.remove(pos);
                    None
                } else if group.role(p).is_some() {
                    // Joined some other way meanwhile.
                    group.admission.requests.remove(pos);
                    Some(409)
                } else if group.participants.len() >= MAX_PARTICIPANTS {
                    Some(500)
                } else {
                    group.admission.requests.remove(pos);
                    group.participants.push((p.clone(), Role::Member));
                    None
                }
            }
            _ => Some(404),
        };
        if code.is_none()
            && let Some(p) = &phone
        {
            done.push(p.clone());
        }
        out.push(
            Node::builder("participant")
                .attr("jid", phone.map_or(jid, Jid::pn))
                .attr_opt("error", code.map(|c| c.to_string()))
                .build(),
        );
    }
    if !done.is_empty() {
        let (child, targets) = if approve {
            let mut targets = devices;
            for p in &done {
                targets.extend(user_devices(st, p));
            }
            (participants_node("add", &done), targets)
        } else {
            (
                participants_node("revoked_membership_requests", &done),
                admins,
            )
        };
        notices.push(Notice {
            group: to.clone(),
            actor: me.clone(),
            child,
            devices: targets,
        });
    }
    let tag: &'static str = if approve { "approve" } else { "reject" };
    iq_result(
        id,
        to.clone(),
        vec![
            Node::builder("membership_requests_action")
                .children([Node::builder(tag).children(out).build()])
                .build(),
        ],
    )
}

/// Routes a group `<message>` from the device `sender`; returns the sender's ack.
pub(crate) fn route_group_message(
    shared: &Shared,
    sender: &Jid,
    node: &Node,
    id: &str,
    to: &Jid,
) -> Node {
    let (devices, allowed, notify) = {
        let st = shared.state.lock();
        let Some(group) = st.groups.get(to.user.as_str()) else {
            return server_ack("message", id, Some(to.clone()), Some(404));
        };
        let role = group.role(sender.user.as_str());
        let allowed = match role {
            None => false,
            Some(r) => !group.announce || r.is_admin(),
        };
        (group.devices(&st), allowed, route::push_name(&st, sender))
    };
    // The sender's LID device, for naming it to companions as the addressing switch says.
    let addressing = shared.faults().sender_addressing;
    let sender_lid = (addressing != crate::fault::SenderAddressing::Pn)
        .then(|| {
            let st = shared.state.lock();
            st.accounts
                .get(sender.user.as_str())
                .map(|a| Jid::with_device(a.lid_user.clone(), Server::Lid, sender.device))
        })
        .flatten();
    if !allowed {
        return server_ack("message", id, Some(to.clone()), Some(403));
    }
    let recipients: Vec<Jid> = devices.into_iter().filter(|d| d != sender).collect();
    shared.queues().sent(id, sender);
    let server_hash = participant_hash(&recipients);
    // A resend for one member device (answering its retry receipt) names it in
    // `participant`: only that device gets it.
    let only = node
        .attr_opt::<Jid>("participant")
        .ok()
        .flatten()
        .and_then(|p| route::resolve_device(&shared.state.lock(), &p));
    let recipients: Vec<Jid> = match only {
        Some(one) => recipients.into_iter().filter(|d| *d == one).collect(),
        None => recipients,
    };
    let t = wa_binary::Str::decimal(unix_now().into());
    let ty = route::short_attr(node, "type").unwrap_or(wa_binary::Str::from_static("text"));
    let edit = node
        .attr_opt::<String>("edit")
        .ok()
        .flatten()
        .filter(|v| v.len() <= 8);
    let mode = node
        .attr_opt::<String>("addressing_mode")
        .ok()
        .flatten()
        .filter(|m| m == "pn" || m == "lid")
        .unwrap_or_else(|| "pn".to_owned());
    let shared_encs: Vec<Node> = node.children_by_tag("enc").take(4).cloned().collect();
    let identity = node.child("device-identity").cloned();
    // Per-device `<to>` children, by device.
    let per_device: Vec<(Jid, Vec<Node>)> = {
        let st = shared.state.lock();
        node.child("participants")
            .map(|p| {
                p.children_by_tag("to")
                    .take(route::MAX_TARGETS)
                    .filter_map(|t| {
                        let dev = t
                            .attr_opt::<Jid>("jid")
                            .ok()
                            .flatten()
                            .and_then(|j| route::resolve_device(&st, &j))?;
                        Some((dev, t.children().to_vec()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    for dev in &recipients {
        let mut children: Vec<Node> = per_device
            .iter()
            .find(|(d, _)| d == dev)
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        children.extend(shared_encs.iter().cloned());
        children.extend(identity.clone());
        if children.is_empty() {
            continue;
        }
        // Phones (device 0) keep phone-number addressing.
        let lid = sender_lid.as_ref().filter(|_| dev.device != 0);
        let by_lid = lid.filter(|_| addressing == crate::fault::SenderAddressing::Lid);
        let mut stanza = Delivery {
            from: to,
            participant: Some(by_lid.unwrap_or(sender)),
            id,
            t: &t,
            ty: &ty,
            edit: edit.as_deref(),
            recipient: None,
            addressing_mode: Some(&mode),
            notify: notify.as_deref(),
        }
        .build(children);
        match (lid, by_lid) {
            (_, Some(_)) => stanza.attrs.insert("participant_pn", sender.clone()),
            (Some(l), None) => stanza.attrs.insert("participant_lid", l.clone()),
            (None, None) => {}
        }
        route::deliver(shared, dev, stanza);
    }
    crate::bot::route_bot_copies(shared, sender, node, id);
    let client_hash = node.attr_opt::<String>("phash").ok().flatten();
    Node::builder("ack")
        .attr("class", "message")
        .attr("id", id.to_owned())
        .attr("from", to.clone())
        .attr("t", t)
        .attr_opt(
            "phash",
            (client_hash.as_deref() != Some(server_hash.as_str())).then_some(server_hash),
        )
        .build()
}

/// Makes every outstanding personal invite of `group` expired (valid until a second
/// ago), keeping its code; how many there were.
pub(crate) fn expire_v4_invites(st: &mut Inner, group: &Jid) -> usize {
    let Some(g) = st.groups.get_mut(group.user.as_str()) else {
        return 0;
    };
    let past = unix_now().saturating_sub(1);
    for i in &mut g.admission.v4_invites {
        i.expiration = i.expiration.min(past);
    }
    g.admission.v4_invites.len()
}

/// The members of a group, as phone numbers (`None`: no such group).
pub(crate) fn members(st: &Inner, group: &Jid) -> Option<Vec<String>> {
    st.groups
        .get(group.user.as_str())
        .map(|g| g.participants.iter().map(|(p, _)| p.clone()).collect())
}
