//! Pure parsing of `w:g2` replies and `w:gp2` notifications.

use std::collections::HashSet;

use wa_binary::{Jid, Node, Server};
use wa_types::{
    AddressingMode, GroupChange, GroupLinkType, GroupMetadata, GroupParticipant, GroupUpdate,
    JoinRequest, LinkedGroup, ParticipantRole,
};

use crate::Error;

/// Most participants taken from one stanza (WhatsApp caps groups at 1,024 members; the
/// slack covers communities' announcement groups).
pub const MAX_PARTICIPANTS: usize = 8_192;

fn text_of(node: &Node) -> String {
    node.content_bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// A JID attribute; `None` when absent or not a JID (one whose user part is over
/// [`wa_binary::MAX_JID_USER_LEN`] bytes included).
fn opt_jid(node: &Node, key: &str) -> Option<Jid> {
    node.attr_opt::<Jid>(key).ok().flatten()
}

fn opt_u64(node: &Node, key: &str) -> Option<u64> {
    node.attr_opt::<u64>(key).ok().flatten()
}

fn role(node: &Node) -> ParticipantRole {
    match node.attr_opt::<&str>("type").ok().flatten() {
        Some("superadmin") => ParticipantRole::SuperAdmin,
        Some("admin") => ParticipantRole::Admin,
        _ => ParticipantRole::Member,
    }
}

fn participant(node: &Node) -> Result<GroupParticipant, Error> {
    // A JID attribute over `MAX_JID_USER_LEN` is refused as no JID.
    let jid = node
        .attr::<Jid>("jid")
        .map_err(|_| Error::Malformed("participant without jid"))?;
    let mut p = GroupParticipant::new(jid, role(node));
    match p.jid.server {
        Server::Lid => p.phone_number = opt_jid(node, "phone_number"),
        Server::Pn => p.lid = opt_jid(node, "lid"),
        _ => {}
    }
    Ok(p)
}

/// The group id attribute: `id` (`123-456` or already `123-456@g.us`).
fn group_id(node: &Node) -> Result<Jid, Error> {
    let id = node
        .attr::<&str>("id")
        .map_err(|_| Error::Malformed("group without id"))?;
    if id.contains('@') {
        id.parse::<Jid>()
            .map_err(|_| Error::Malformed("group id is not a JID"))
    } else if id.is_empty() {
        Err(Error::Malformed("group without id"))
    } else {
        Ok(Jid::group(id.to_owned()))
    }
}

/// Parses a `<group>` element (from a metadata, create or participating reply, or a
/// create notification).
///
/// # Errors
/// [`Error::Malformed`] when the id or a participant's jid is missing (or has a user part
/// longer than [`wa_binary::MAX_JID_USER_LEN`]), or there are more than
/// [`MAX_PARTICIPANTS`] participants. Other over-long JIDs (owner, a participant's phone
/// number or LID) are left out.
pub fn parse_group(group: &Node) -> Result<GroupMetadata, Error> {
    let mut m = GroupMetadata::new(group_id(group)?);
    m.subject = group
        .attr_opt::<&str>("subject")
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_owned();
    m.subject_owner = opt_jid(group, "s_o");
    m.subject_time = opt_u64(group, "s_t").unwrap_or(0);
    m.creation = opt_u64(group, "creation").unwrap_or(0);
    m.owner = opt_jid(group, "creator");
    m.addressing_mode = AddressingMode::from_wire(
        group
            .attr_opt::<&str>("addressing_mode")
            .ok()
            .flatten()
            .unwrap_or(""),
    );
    for child in group.children() {
        match child.tag() {
            "participant" => {
                if m.participants.len() >= MAX_PARTICIPANTS {
                    return Err(Error::Malformed("too many participants"));
                }
                m.participants.push(participant(child)?);
            }
            "description" => {
                if let Some(body) = child.child("body") {
                    m.description = Some(text_of(body));
                    m.description_id = child
                        .attr_opt::<&str>("id")
                        .ok()
                        .flatten()
                        .map(str::to_owned);
                }
            }
            "announcement" => m.announce = true,
            "locked" => m.restrict = true,
            "membership_approval_mode" => {
                m.join_approval = child
                    .child("group_join")
                    .and_then(|j| j.attr_opt::<&str>("state").ok().flatten())
                    != Some("off");
            }
            "member_add_mode" => m.member_add_all = text_of(child) == "all_member_add",
            "ephemeral" => {
                m.ephemeral = opt_u64(child, "expiration").and_then(|e| u32::try_from(e).ok());
            }
            "parent" => m.is_community = true,
            "default_sub_group" | "default_sub_community" => m.is_default_sub_group = true,
            "linked_parent" => m.linked_parent = opt_jid(child, "jid"),
            _ => {}
        }
    }
    m.size = opt_u64(group, "size")
        .and_then(|s| usize::try_from(s).ok())
        .unwrap_or(m.participants.len());
    Ok(m)
}

/// Parses the metadata in an iq reply: its `<group>` child, or the `<community>` child
/// Baileys' community calls read (the same attributes and children).
///
/// # Errors
/// [`Error::Malformed`] when there is neither, or as [`parse_group`].
pub fn parse_group_reply(reply: &Node) -> Result<GroupMetadata, Error> {
    let group = reply
        .child("group")
        .or_else(|| reply.child("community"))
        .ok_or_else(|| Error::Malformed("reply without <group>"))?;
    parse_group(group)
}

/// The outcome of a participant change for one member.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParticipantResult {
    /// The member.
    pub jid: Jid,
    /// 200 when it worked, else the server's code (403 privacy, 409 already in, 404 not
    /// in the group, ...).
    pub status: u16,
    /// When privacy kept the user from being added: the personal invite the server
    /// issued instead, to send in a `GroupInviteMessage`.
    pub add_request: Option<AddRequest>,
}

/// A personal invite the server issues when an add is refused for privacy (the
/// `<add_request code expiration/>` of a 403 participant).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddRequest {
    /// The invite code.
    pub code: String,
    /// Valid until (unix seconds).
    pub expiration: u64,
}

fn participant_results(list: &Node) -> Result<Vec<ParticipantResult>, Error> {
    let mut out = Vec::new();
    for p in list.children_by_tag("participant") {
        if out.len() >= MAX_PARTICIPANTS {
            return Err(Error::Malformed("too many participants"));
        }
        let jid = p
            .attr::<Jid>("jid")
            .map_err(|_| Error::Malformed("participant without jid"))?;
        let status = match p.attr_opt::<&str>("error").ok().flatten() {
            None => 200,
            Some(code) => code
                .parse::<u16>()
                .map_err(|_| Error::Malformed("participant error is not a status code"))?,
        };
        let add_request = match p.child("add_request").filter(|_| status != 200) {
            None => None,
            Some(r) => Some(AddRequest {
                code: r
                    .attr::<&str>("code")
                    .map_err(|_| Error::Malformed("add_request without code"))?
                    .to_owned(),
                expiration: opt_u64(r, "expiration").unwrap_or(0),
            }),
        };
        out.push(ParticipantResult {
            jid,
            status,
            add_request,
        });
    }
    Ok(out)
}

/// Parses the reply to an add/remove/promote/demote request.
///
/// # Errors
/// [`Error::Malformed`] when the action element or a participant jid is missing.
pub fn parse_participants_reply(
    reply: &Node,
    action: &str,
) -> Result<Vec<ParticipantResult>, Error> {
    let list = reply
        .child(action)
        .ok_or_else(|| Error::Malformed("reply without the action element"))?;
    participant_results(list)
}

/// What following an invite link did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InviteJoin {
    /// We are in the group.
    Joined(Jid),
    /// The group's admins approve new members: a join request is pending.
    Requested(Jid),
}

impl InviteJoin {
    /// The group, joined or asked to join.
    pub fn group(&self) -> &Jid {
        match self {
            Self::Joined(g) | Self::Requested(g) => g,
        }
    }
}

/// Parses the reply to `<invite code/>` (set): `<group jid/>` when joined,
/// `<membership_approval_request jid/>` when the join waits for an admin.
///
/// # Errors
/// [`Error::Malformed`] when neither element names a group.
pub fn parse_invite_join_reply(reply: &Node) -> Result<InviteJoin, Error> {
    let group_jid = |n: &Node| {
        n.attr::<Jid>("jid")
            .ok()
            .filter(|j| j.server == Server::Group)
    };
    if let Some(req) = reply.child("membership_approval_request") {
        return group_jid(req)
            .map(InviteJoin::Requested)
            .ok_or_else(|| Error::Malformed("join request reply without group jid"));
    }
    reply
        .child("group")
        .or_else(|| reply.child("community"))
        .and_then(group_jid)
        .map(InviteJoin::Joined)
        .ok_or_else(|| Error::Malformed("invite reply without group jid"))
}

/// Parses the reply to `<membership_approval_requests/>`: the pending join requests
/// (`<membership_approval_request jid request_time request_method/>`).
///
/// # Errors
/// [`Error::Malformed`] when the list is missing, a request has no jid, or there are
/// more than [`MAX_PARTICIPANTS`].
pub fn parse_join_requests_reply(reply: &Node) -> Result<Vec<JoinRequest>, Error> {
    let list = reply
        .child("membership_approval_requests")
        .ok_or_else(|| Error::Malformed("reply without <membership_approval_requests>"))?;
    let mut out = Vec::new();
    for r in list.children_by_tag("membership_approval_request") {
        if out.len() >= MAX_PARTICIPANTS {
            return Err(Error::Malformed("too many join requests"));
        }
        let jid = r
            .attr::<Jid>("jid")
            .map_err(|_| Error::Malformed("join request without jid"))?;
        let mut req = JoinRequest::new(jid, opt_u64(r, "request_time").unwrap_or(0));
        req.method = r
            .attr_opt::<&str>("request_method")
            .ok()
            .flatten()
            .map(str::to_owned);
        out.push(req);
    }
    Ok(out)
}

/// Parses the reply to `<membership_requests_action>`: one result per user, under
/// `<approve>` or `<reject>` (`action`).
///
/// # Errors
/// [`Error::Malformed`] when an element or a participant's jid is missing.
pub fn parse_requests_action_reply(
    reply: &Node,
    action: &str,
) -> Result<Vec<ParticipantResult>, Error> {
    let list = reply
        .child("membership_requests_action")
        .ok_or_else(|| Error::Malformed("reply without <membership_requests_action>"))?
        .child(action)
        .ok_or_else(|| Error::Malformed("reply without the action element"))?;
    participant_results(list)
}

fn jid_list(node: &Node) -> Result<Vec<Jid>, Error> {
    let mut out = Vec::new();
    for p in node.children_by_tag("participant") {
        if out.len() >= MAX_PARTICIPANTS {
            return Err(Error::Malformed("too many participants"));
        }
        out.push(
            p.attr::<Jid>("jid")
                .map_err(|_| Error::Malformed("participant without jid"))?,
        );
    }
    Ok(out)
}

/// Parses a `<notification type="w:gp2">`.
///
/// # Errors
/// [`Error::Malformed`] when `from` is not a group or a change lacks what it needs.
pub fn parse_notification(node: &Node) -> Result<GroupUpdate, Error> {
    let group = node
        .attr::<Jid>("from")
        .map_err(|_| Error::Malformed("notification without from"))?;
    if group.server != Server::Group {
        return Err(Error::Malformed("notification not from a group"));
    }
    let mut update = GroupUpdate::new(
        group,
        opt_jid(node, "participant"),
        opt_u64(node, "t").unwrap_or(0),
    );
    for child in node.children() {
        let change = match child.tag() {
            "create" => {
                let g = child
                    .child("group")
                    .ok_or_else(|| Error::Malformed("create without <group>"))?;
                GroupChange::Created(Box::new(parse_group(g)?))
            }
            "add" => GroupChange::Added(jid_list(child)?),
            "remove" => GroupChange::Removed(jid_list(child)?),
            "promote" => GroupChange::Promoted(jid_list(child)?),
            "demote" => GroupChange::Demoted(jid_list(child)?),
            "subject" => GroupChange::Subject(
                child
                    .attr_opt::<&str>("subject")
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            "description" => GroupChange::Description(
                child
                    .child("body")
                    .filter(|_| child.child("delete").is_none())
                    .map(text_of),
            ),
            "announcement" => GroupChange::Announce(true),
            "not_announcement" => GroupChange::Announce(false),
            "locked" => GroupChange::Locked(true),
            "unlocked" => GroupChange::Locked(false),
            "ephemeral" => GroupChange::Ephemeral(
                opt_u64(child, "expiration").and_then(|e| u32::try_from(e).ok()),
            ),
            "not_ephemeral" => GroupChange::Ephemeral(None),
            "invite" => GroupChange::InviteReset(
                child
                    .attr_opt::<&str>("code")
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            "delete" => GroupChange::Deleted,
            "member_add_mode" => GroupChange::MemberAddMode(match child.content_bytes() {
                Some(b"all_member_add") => true,
                Some(b"admin_add") => false,
                _ => return Err(Error::Malformed("unknown member_add_mode")),
            }),
            // Its presence means approval is on (as in metadata); `group_join` says which.
            "membership_approval_mode" => GroupChange::JoinApproval(
                match child
                    .child("group_join")
                    .map(|j| j.attr_opt::<&str>("state").ok().flatten())
                {
                    None | Some(Some("on")) => true,
                    Some(Some("off")) => false,
                    Some(_) => return Err(Error::Malformed("unknown group_join state")),
                },
            ),
            "created_membership_requests" => {
                let mut participants = jid_list(child)?;
                // Without a list, the requester is the notification's participant.
                if participants.is_empty() {
                    participants.extend(update.actor.clone());
                }
                if participants.is_empty() {
                    return Err(Error::Malformed("membership request without requester"));
                }
                GroupChange::JoinRequested {
                    participants,
                    method: child
                        .attr_opt::<&str>("request_method")
                        .ok()
                        .flatten()
                        .map(str::to_owned),
                }
            }
            "revoked_membership_requests" => {
                let mut participants = jid_list(child)?;
                if participants.is_empty() {
                    participants.extend(update.actor.clone());
                }
                if participants.is_empty() {
                    return Err(Error::Malformed("revoked request without requester"));
                }
                GroupChange::JoinRequestsRevoked(participants)
            }
            "link" => {
                let g = child
                    .child("group")
                    .ok_or_else(|| Error::Malformed("link without <group>"))?;
                GroupChange::Linked {
                    link_type: link_type(child, "link_type"),
                    group: parse_linked_group(g)?,
                }
            }
            "unlink" => {
                let g = child
                    .child("group")
                    .ok_or_else(|| Error::Malformed("unlink without <group>"))?;
                GroupChange::Unlinked {
                    link_type: link_type(child, "unlink_type"),
                    group: parse_linked_group(g)?,
                    reason: child
                        .attr_opt::<&str>("unlink_reason")
                        .ok()
                        .flatten()
                        .map(str::to_owned),
                }
            }
            other => GroupChange::Other(other.to_owned()),
        };
        update.changes.push(change);
    }
    Ok(update)
}

fn link_type(node: &Node, key: &str) -> GroupLinkType {
    GroupLinkType::from_wire(node.attr_opt::<&str>(key).ok().flatten().unwrap_or(""))
}

/// Parses a `<group>` element of a sub-group list or a link notification: `jid`, or
/// `id` (`123-456` or `123-456@g.us`), with optional `subject`, `s_t`, `creation`,
/// `creator`, `size` and a `<default_sub_group/>` child.
///
/// # Errors
/// [`Error::Malformed`] when neither `jid` nor `id` names a group.
pub fn parse_linked_group(node: &Node) -> Result<LinkedGroup, Error> {
    let jid = match opt_jid(node, "jid") {
        Some(j) => j,
        None => group_id(node)?,
    };
    if jid.server != Server::Group {
        return Err(Error::Malformed("linked group is not a group JID"));
    }
    let mut g = LinkedGroup::new(jid);
    g.subject = node
        .attr_opt::<&str>("subject")
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_owned();
    g.subject_time = opt_u64(node, "s_t").unwrap_or(0);
    g.creation = opt_u64(node, "creation").unwrap_or(0);
    g.owner = opt_jid(node, "creator");
    g.size = opt_u64(node, "size").and_then(|s| usize::try_from(s).ok());
    g.is_default_sub_group = node.child("default_sub_group").is_some();
    Ok(g)
}

/// Most sub-groups taken from one reply (WhatsApp allows 100 groups per community; the
/// slack covers future limits).
pub const MAX_SUB_GROUPS: usize = 1_024;

/// Parses the reply to a `<sub_groups/>` query: the community's groups.
///
/// # Errors
/// [`Error::Malformed`] when there is no `<sub_groups>`, a group has no id, or there are
/// more than [`MAX_SUB_GROUPS`].
pub fn parse_sub_groups_reply(reply: &Node) -> Result<Vec<LinkedGroup>, Error> {
    let list = reply
        .child("sub_groups")
        .ok_or_else(|| Error::Malformed("reply without <sub_groups>"))?;
    let mut out = Vec::new();
    for g in list.children_by_tag("group") {
        if out.len() >= MAX_SUB_GROUPS {
            return Err(Error::Malformed("too many sub-groups"));
        }
        out.push(parse_linked_group(g)?);
    }
    Ok(out)
}

/// Parses the reply to a `<linked_groups_participants/>` query: every member of the
/// community's groups.
///
/// # Errors
/// [`Error::Malformed`] when there is no `<linked_groups_participants>`, a participant
/// has no jid, or there are more than [`MAX_PARTICIPANTS`].
pub fn parse_linked_participants_reply(reply: &Node) -> Result<Vec<Jid>, Error> {
    let list = reply
        .child("linked_groups_participants")
        .ok_or_else(|| Error::Malformed("reply without <linked_groups_participants>"))?;
    jid_list(list)
}

/// Applies a notification's changes to cached metadata. Returns `false` when the change
/// cannot be applied locally (the cache entry should be dropped and fetched again).
pub fn apply_update(meta: &mut GroupMetadata, update: &GroupUpdate) -> bool {
    for change in &update.changes {
        match change {
            // Sets, not searches: a notification may name thousands of members of a group
            // of thousands.
            GroupChange::Added(jids) => {
                let mut present: HashSet<Jid> =
                    meta.participants.iter().map(|p| p.jid.clone()).collect();
                for j in jids {
                    if present.insert(j.clone()) {
                        meta.participants
                            .push(GroupParticipant::new(j.clone(), ParticipantRole::Member));
                    }
                }
            }
            GroupChange::Removed(jids) => {
                let gone: HashSet<&Jid> = jids.iter().collect();
                meta.participants.retain(|p| !gone.contains(&p.jid));
            }
            GroupChange::Promoted(jids) | GroupChange::Demoted(jids) => {
                let to = if matches!(change, GroupChange::Promoted(_)) {
                    ParticipantRole::Admin
                } else {
                    ParticipantRole::Member
                };
                let named: HashSet<&Jid> = jids.iter().collect();
                for p in &mut meta.participants {
                    if named.contains(&p.jid) && p.role != ParticipantRole::SuperAdmin {
                        p.role = to;
                    }
                }
            }
            GroupChange::Subject(s) => {
                meta.subject.clone_from(s);
                meta.subject_owner.clone_from(&update.actor);
                meta.subject_time = update.timestamp;
            }
            GroupChange::Announce(a) => meta.announce = *a,
            GroupChange::Locked(l) => meta.restrict = *l,
            GroupChange::Ephemeral(e) => meta.ephemeral = *e,
            GroupChange::InviteReset(_)
            | GroupChange::JoinRequested { .. }
            | GroupChange::JoinRequestsRevoked(_) => {}
            GroupChange::MemberAddMode(all) => meta.member_add_all = *all,
            GroupChange::JoinApproval(on) => meta.join_approval = *on,
            // The description id is not in the notification the same way; refetch.
            GroupChange::Description(_)
            | GroupChange::Created(_)
            | GroupChange::Deleted
            | GroupChange::Other(_) => return false,
            _ => return false,
        }
    }
    meta.size = meta.participants.len();
    true
}
