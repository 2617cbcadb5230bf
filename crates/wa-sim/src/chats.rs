//! Presence, chat state, privacy, status text, profile pictures and blocklists
//! (`<presence>`, `<chatstate>`, `xmlns` `privacy`, `disappearing_mode`, `status`,
//! `w:profile:picture`, `blocklist`), sans IO over the locked state except for the
//! hand-off of stanzas to live connections.
//!
//! Requests follow Baileys' `chats.ts` and whatsmeow's `presence.go`, `privacy.go` and
//! `user.go`. Presence and chat states are ephemeral: they go to the live connections
//! only, never to delivery queues. An account is available while any of its
//! connections last said `<presence type="available">`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use wa_binary::{Jid, Node};

use crate::route::{self, resolve_user};
use crate::sim::{Cmd, Shared, fresh_id, unix_now};
use crate::state::Inner;

/// Longest status text kept, in bytes.
const MAX_STATUS: usize = 1024;
/// Largest profile picture kept, in bytes.
const MAX_PICTURE: usize = 5 * 1024 * 1024;
/// Most users on one blocklist.
const MAX_BLOCKED: usize = 10_000;
/// Most presence subscriptions one connection holds.
const MAX_SUBSCRIPTIONS: usize = 4096;

/// What an account set about itself.
#[derive(Default, Clone, Debug)]
pub(crate) struct Profile {
    /// Privacy settings changed from the default (`all`), by category name.
    pub(crate) privacy: BTreeMap<String, String>,
    /// Blocked users (phone numbers).
    pub(crate) blocked: BTreeSet<String>,
    /// Status ("about") text and when it was set.
    pub(crate) status: Option<(String, u64)>,
    /// The emoji shown with the about text, when set through `w:mex`.
    pub(crate) about_emoji: Option<String>,
    /// When the about text goes away (unix seconds), when set with a duration.
    pub(crate) about_expires: Option<u64>,
    /// Profile picture: id and JPEG bytes.
    pub(crate) picture: Option<(String, Bytes)>,
    /// Default disappearing-messages timer of new chats, seconds.
    pub(crate) disappearing: u32,
    /// When the timer was last set (unix seconds; 0 = never).
    pub(crate) disappearing_at: u64,
    /// Who sees status updates (`xmlns="status"` `<privacy>`).
    pub(crate) status_privacy: StatusPrivacyLists,
    /// The account's username, when it chose one.
    pub(crate) username: Option<String>,
}

impl Profile {
    fn privacy(&self, category: &str) -> &str {
        self.privacy.get(category).map_or("all", String::as_str)
    }

    /// Sets the default disappearing-messages timer at `now`.
    pub(crate) fn set_disappearing(&mut self, duration: u32, now: u64) {
        self.disappearing = duration;
        self.disappearing_at = now;
    }
}

/// Which status-privacy list of an account is in force (set with
/// [`Sim::set_status_privacy`](crate::Sim::set_status_privacy)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StatusPrivacyMode {
    /// Every saved contact (the default).
    #[default]
    Contacts,
    /// Every saved contact except the users of the blacklist.
    Blacklist,
    /// Only the users of the whitelist.
    Whitelist,
}

impl StatusPrivacyMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Blacklist => "blacklist",
            Self::Whitelist => "whitelist",
        }
    }

    pub(crate) fn from_wire(s: &str) -> Option<Self> {
        [Self::Contacts, Self::Blacklist, Self::Whitelist]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// An account's status privacy: the list in force, and the users of the blacklist and
/// whitelist (user JIDs as strings; both are kept while another one is in force, as the
/// server keeps them).
#[derive(Default, Clone, Debug)]
pub(crate) struct StatusPrivacyLists {
    pub(crate) mode: StatusPrivacyMode,
    pub(crate) blacklist: Vec<String>,
    pub(crate) whitelist: Vec<String>,
}

impl StatusPrivacyLists {
    /// `<privacy>` with all three lists, the one in force marked `default="true"`.
    fn node(&self) -> Node {
        let list = |mode: StatusPrivacyMode, users: &[String]| {
            let users = users
                .iter()
                .filter_map(|u| u.parse::<Jid>().ok())
                .map(|j| Node::builder("user").attr("jid", j).build())
                .collect::<Vec<_>>();
            Node::builder("list")
                .attr("type", mode.as_str())
                .attr_opt("default", (self.mode == mode).then_some("true"))
                .children(users)
                .build()
        };
        Node::builder("privacy")
            .children([
                list(StatusPrivacyMode::Contacts, &[]),
                list(StatusPrivacyMode::Blacklist, &self.blacklist),
                list(StatusPrivacyMode::Whitelist, &self.whitelist),
            ])
            .build()
    }
}

/// Makes `mode` the status privacy of `phone`; a blacklist or whitelist becomes `users`
/// (without devices), while contacts keeps the stored lists.
pub(crate) fn set_status_privacy(
    shared: &Shared,
    phone: &str,
    mode: StatusPrivacyMode,
    users: &[Jid],
) -> Result<(), crate::Error> {
    if users.len() > MAX_BLOCKED {
        return Err(crate::Error::Rejected(
            "status privacy list too long".into(),
        ));
    }
    let mut st = shared.state.lock();
    if !st.accounts.contains_key(phone) {
        return Err(crate::Error::UnknownAccount(phone.to_owned()));
    }
    let lists = &mut st
        .chats
        .profiles
        .entry(phone.to_owned())
        .or_default()
        .status_privacy;
    let users = users.iter().map(|u| u.to_non_ad().to_string()).collect();
    match mode {
        StatusPrivacyMode::Contacts => {}
        StatusPrivacyMode::Blacklist => lists.blacklist = users,
        StatusPrivacyMode::Whitelist => lists.whitelist = users,
    }
    lists.mode = mode;
    Ok(())
}

/// The chats part of the simulator's state.
#[derive(Default)]
pub(crate) struct ChatsState {
    /// Per account (phone number).
    pub(crate) profiles: BTreeMap<String, Profile>,
    /// Group pictures by group id.
    group_pictures: BTreeMap<String, (String, Bytes)>,
    /// Connections that said `available`, per account.
    online: BTreeMap<String, BTreeSet<u64>>,
    /// When each account was last available (unix seconds).
    last_seen: BTreeMap<String, u64>,
    /// Presence subscribers (connection ids) per watched account.
    subscribers: BTreeMap<String, BTreeSet<u64>>,
    /// How many subscriptions each connection holds.
    subscription_count: BTreeMap<u64, usize>,
    /// Trusted-contact privacy tokens and restricted accounts.
    pub(crate) tokens: crate::privacy_token::TokenState,
}

impl ChatsState {
    fn is_online(&self, phone: &str) -> bool {
        self.online.get(phone).is_some_and(|s| !s.is_empty())
    }

    fn blocks(&self, owner: &str, other: &str) -> bool {
        self.profiles
            .get(owner)
            .is_some_and(|p| p.blocked.contains(other))
    }

    /// `<presence from type [last]>` describing `phone` now.
    fn presence_of(&self, phone: &str) -> Node {
        let online = self.is_online(phone);
        let b = Node::builder("presence")
            .attr("from", Jid::pn(phone.to_owned()))
            .attr("type", if online { "available" } else { "unavailable" });
        if online {
            return b.build();
        }
        let hidden = self
            .profiles
            .get(phone)
            .is_some_and(|p| p.privacy("last") == "none");
        let last = match self.last_seen.get(phone) {
            Some(t) if !hidden => t.to_string(),
            _ => "deny".to_owned(),
        };
        b.attr("last", last).build()
    }
}

/// Hands `node` to the live connections `pick` selects.
pub(crate) fn send_live(shared: &Shared, node: &Node, mut pick: impl FnMut(u64, &Jid) -> bool) {
    let conns = shared.conns();
    for (id, entry) in conns.iter() {
        if let Some(d) = &entry.device
            && pick(*id, d)
        {
            let _ = entry.tx.try_send(Cmd::Send(node.clone()));
        }
    }
}

/// Tells the subscribers of `phone` (except those it blocked) its presence.
fn announce(shared: &Shared, phone: &str) {
    let (node, subs, blocked) = {
        let st = shared.state.lock();
        let c = &st.chats;
        let subs = c.subscribers.get(phone).cloned().unwrap_or_default();
        let blocked = c
            .profiles
            .get(phone)
            .map(|p| p.blocked.clone())
            .unwrap_or_default();
        (c.presence_of(phone), subs, blocked)
    };
    if subs.is_empty() {
        return;
    }
    send_live(shared, &node, |id, d| {
        subs.contains(&id) && !blocked.contains(d.user.as_str())
    });
}

/// A `<presence>` from the logged-in device `me` on connection `conn`.
pub(crate) fn presence(shared: &Shared, conn: u64, me: &Jid, node: &Node) {
    let phone = me.user.as_str().to_owned();
    let attr = |k: &str| node.attr_opt::<String>(k).ok().flatten();
    if let Some(name) = attr("name").filter(|n| !n.is_empty() && n.len() <= route::MAX_PUSH_NAME)
        && let Some(a) = shared.state.lock().accounts.get_mut(&phone)
    {
        a.push_name = Some(name);
    }
    match attr("type").as_deref() {
        Some("subscribe") => {
            let Some(to) = node.attr_opt::<Jid>("to").ok().flatten() else {
                return;
            };
            let reply = {
                let mut st = shared.state.lock();
                let Some(target) = resolve_user(&st, &to) else {
                    return;
                };
                let tctoken = node.child("tctoken").and_then(Node::bytes).map(|b| &b[..]);
                if !st.chats.tokens.admits(me, &target, tctoken, unix_now()) {
                    return;
                }
                let target = target.user.as_str().to_owned();
                let c = &mut st.chats;
                let count = c.subscription_count.entry(conn).or_default();
                let set = c.subscribers.entry(target.clone()).or_default();
                if *count >= MAX_SUBSCRIPTIONS && !set.contains(&conn) {
                    return;
                }
                if set.insert(conn) {
                    *count += 1;
                }
                (!c.blocks(&target, &phone)).then(|| c.presence_of(&target))
            };
            if let Some(reply) = reply {
                send_live(shared, &reply, |id, _| id == conn);
            }
        }
        Some(kind @ ("available" | "unavailable")) => {
            let changed = {
                let mut st = shared.state.lock();
                let c = &mut st.chats;
                let before = c.is_online(&phone);
                let set = c.online.entry(phone.clone()).or_default();
                if kind == "available" {
                    set.insert(conn);
                } else {
                    set.remove(&conn);
                }
                let after = c.is_online(&phone);
                if before && !after {
                    c.last_seen.insert(phone.clone(), unix_now());
                }
                before != after
            };
            if changed {
                announce(shared, &phone);
            }
        }
        _ => {}
    }
}

/// Connection `conn` (of `device`, if it logged in) ended: its subscriptions end and
/// its availability goes.
pub(crate) fn connection_gone(shared: &Shared, conn: u64, device: Option<&Jid>) {
    let changed = {
        let mut st = shared.state.lock();
        let c = &mut st.chats;
        if c.subscription_count.remove(&conn).is_some() {
            for s in c.subscribers.values_mut() {
                s.remove(&conn);
            }
            c.subscribers.retain(|_, s| !s.is_empty());
        }
        device.and_then(|d| {
            let phone = d.user.as_str();
            let set = c.online.get_mut(phone)?;
            if set.remove(&conn) && set.is_empty() {
                c.last_seen.insert(phone.to_owned(), unix_now());
                Some(phone.to_owned())
            } else {
                None
            }
        })
    };
    if let Some(phone) = changed {
        announce(shared, &phone);
    }
}

/// A `<chatstate to><composing [media=audio]/>|<paused/></chatstate>` from `me`: to the
/// live devices of the user (unless it blocked `me`), or of the group's other members.
pub(crate) fn chatstate(shared: &Shared, me: &Jid, node: &Node) {
    let Some(to) = node.attr_opt::<Jid>("to").ok().flatten() else {
        return;
    };
    let Some(child) = node.children().first() else {
        return;
    };
    let state = match child.tag() {
        "composing" => {
            let audio = child.attr_opt::<&str>("media").ok().flatten() == Some("audio");
            Node::builder("composing")
                .attr_opt("media", audio.then_some("audio"))
                .build()
        }
        "paused" => Node::new("paused"),
        _ => return,
    };
    let phone = me.user.as_str().to_owned();
    let (out, targets): (Node, BTreeSet<String>) = {
        let st = shared.state.lock();
        if to.is_group() {
            let Some(members) = crate::group::members(&st, &to) else {
                return;
            };
            if !members.contains(&phone) {
                return;
            }
            let out = Node::builder("chatstate")
                .attr("from", to.to_non_ad())
                .attr("participant", Jid::pn(phone.clone()))
                .children([state])
                .build();
            let targets = members
                .into_iter()
                .filter(|m| *m != phone && !st.chats.blocks(m, &phone))
                .collect();
            (out, targets)
        } else {
            let Some(target) = resolve_user(&st, &to) else {
                return;
            };
            let target = target.user.as_str().to_owned();
            if st.chats.blocks(&target, &phone) {
                return;
            }
            let out = Node::builder("chatstate")
                .attr("from", Jid::pn(phone.clone()))
                .children([state])
                .build();
            (out, BTreeSet::from([target]))
        }
    };
    send_live(shared, &out, |_, d| targets.contains(d.user.as_str()));
}

pub(crate) fn result(id: &str, children: Vec<Node>) -> Node {
    Node::builder("iq")
        .attr("from", Jid::server_jid())
        .attr("type", "result")
        .attr("id", id.to_owned())
        .children(children)
        .build()
}

pub(crate) fn error(id: &str, code: u16, text: &'static str) -> Node {
    Node::builder("iq")
        .attr("from", Jid::server_jid())
        .attr("type", "error")
        .attr("id", id.to_owned())
        .children([Node::builder("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

/// The privacy categories and the values each takes.
const PRIVACY: &[(&str, &[&str])] = &[
    ("last", &["all", "contacts", "contact_blacklist", "none"]),
    ("online", &["all", "match_last_seen"]),
    ("profile", &["all", "contacts", "contact_blacklist", "none"]),
    ("status", &["all", "contacts", "contact_blacklist", "none"]),
    ("readreceipts", &["all", "none"]),
    ("groupadd", &["all", "contacts", "contact_blacklist"]),
    ("calladd", &["all", "known"]),
    ("messages", &["all", "contacts"]),
];

fn category(name: &str, value: &str) -> Node {
    Node::builder("category")
        .attr("name", name.to_owned())
        .attr("value", value.to_owned())
        .build()
}

/// The picture URL a client is given: on the simulator's media host, which serves it
/// (`https` when the simulator runs with TLS).
fn picture_url(shared: &Shared, owner: &str, id: &str) -> String {
    let scheme = if shared.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}/pp/{owner}/{id}.jpg", shared.media.hostname())
}

/// The JPEG served at `/pp/<rest>`, where `rest` is `<owner>/<id>.jpg` and the owner an
/// account's phone number or a group's id; `None` unless that picture is the current one.
pub(crate) fn served_picture(st: &crate::state::Inner, rest: &str) -> Option<Bytes> {
    let (owner, file) = rest.split_once('/')?;
    let id = file.strip_suffix(".jpg")?;
    let (pid, jpeg) = st
        .chats
        .profiles
        .get(owner)
        .and_then(|p| p.picture.as_ref())
        .or_else(|| st.chats.group_pictures.get(owner))?;
    (pid == id).then(|| jpeg.clone())
}

/// Answers the chats iqs from the logged-in device `me`; `None` when `xmlns`/`ty` is not
/// one of them.
pub(crate) fn iq(
    shared: &Shared,
    me: &Jid,
    id: &str,
    xmlns: &str,
    ty: &str,
    node: &Node,
) -> Option<Node> {
    let phone = me.user.as_str().to_owned();
    let reply = match (xmlns, ty) {
        ("bot", "get") => {
            // One bot, as the server lists Meta AI.
            let bot = Node::builder("bot")
                .attr("jid", format!("{BOT_USER}@bot"))
                .attr("persona_id", BOT_PERSONA)
                .build();
            result(
                id,
                vec![
                    Node::builder("bot")
                        .attr("v", "2")
                        .children([Node::builder("section")
                            .attr("type", "all")
                            .children([bot])
                            .build()])
                        .build(),
                ],
            )
        }
        ("privacy", "get") => {
            let st = shared.state.lock();
            let p = st.chats.profiles.get(&phone).cloned().unwrap_or_default();
            let cats = PRIVACY
                .iter()
                .map(|(n, _)| category(n, p.privacy(n)))
                .collect::<Vec<_>>();
            result(id, vec![Node::builder("privacy").children(cats).build()])
        }
        ("privacy", "set") if node.child("tokens").is_some() => {
            let tokens = node.child("tokens")?;
            crate::privacy_token::issue(shared, me, id, tokens)
        }
        ("privacy", "set") => {
            let Some(cat) = node.child("privacy").and_then(|p| p.child("category")) else {
                return Some(error(id, 400, "bad-request"));
            };
            let name = cat.attr_opt::<&str>("name").ok().flatten().unwrap_or("");
            let value = cat.attr_opt::<&str>("value").ok().flatten().unwrap_or("");
            let ok = PRIVACY
                .iter()
                .any(|(n, vs)| *n == name && vs.contains(&value));
            if !ok {
                return Some(error(id, 400, "bad-request"));
            }
            shared
                .state
                .lock()
                .chats
                .profiles
                .entry(phone.clone())
                .or_default()
                .privacy
                .insert(name.to_owned(), value.to_owned());
            let change = Node::builder("privacy")
                .children([category(name, value)])
                .build();
            notify_own_devices(shared, me, change.clone());
            result(id, vec![change])
        }
        ("status", "get") if node.child("privacy").is_some() => {
            let st = shared.state.lock();
            let lists = st
                .chats
                .profiles
                .get(&phone)
                .map(|p| p.status_privacy.clone())
                .unwrap_or_default();
            result(id, vec![lists.node()])
        }
        ("disappearing_mode", "set") => {
            let duration = node
                .child("disappearing_mode")
                .and_then(|d| d.attr_opt::<&str>("duration").ok().flatten())
                .and_then(|d| d.parse::<u32>().ok());
            let Some(duration) = duration else {
                return Some(error(id, 400, "bad-request"));
            };
            let mut st = shared.state.lock();
            st.chats
                .profiles
                .entry(phone)
                .or_default()
                .set_disappearing(duration, unix_now());
            result(id, Vec::new())
        }
        ("status", "set") => {
            let text = node
                .child("status")
                .map(|s| s.content_bytes().unwrap_or_default())
                .filter(|b| b.len() <= MAX_STATUS)
                .and_then(|b| std::str::from_utf8(b).ok());
            let Some(text) = text else {
                return Some(error(id, 400, "bad-request"));
            };
            set_about(shared, me, text, None, None);
            result(id, Vec::new())
        }
        ("w:profile:picture", "get") => picture_get(shared, me, id, node),
        ("w:profile:picture", "set") => picture_set(shared, me, id, node),
        ("blocklist", "get") => {
            let st = shared.state.lock();
            let items = st
                .chats
                .profiles
                .get(&phone)
                .map(|p| {
                    p.blocked
                        .iter()
                        .map(|b| {
                            Node::builder("item")
                                .attr("jid", Jid::pn(b.clone()))
                                .build()
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            result(id, vec![Node::builder("list").children(items).build()])
        }
        ("blocklist", "set") => return Some(block_set(shared, me, id, node)),
        _ => return None,
    };
    Some(reply)
}

/// `<iq xmlns="w:profile:picture" type="get" target><picture query="url" type [id]
/// [invite]>`: a restricted account's companion needs the target user's privacy token
/// (`<picture><tctoken>`), else 401. A group's picture is for its members, or for
/// whoever names the group's current invite code (`invite=`); others get 401. A
/// community's picture is only given the community way ([`community_pictures`]): asked
/// here, 401. When `id=` names the current picture the answer holds no `<picture>`
/// (unchanged).
fn picture_get(shared: &Shared, me: &Jid, id: &str, node: &Node) -> Node {
    let phone = me.user.as_str();
    let Some(target) = node.attr_opt::<Jid>("target").ok().flatten() else {
        return error(id, 400, "bad-request");
    };
    let Some(pic) = node.child("picture") else {
        return error(id, 400, "bad-request");
    };
    let st = shared.state.lock();
    let found = if target.is_group() {
        if st.communities.is_community(target.user.as_str()) {
            return error(id, 401, "not-authorized");
        }
        match group_picture(&st, phone, target.user.as_str(), pic) {
            Ok(found) => found,
            Err(reply) => return reply(id),
        }
    } else {
        let Some(user) = resolve_user(&st, &target) else {
            return error(id, 404, "item-not-found");
        };
        let owner = user.user.as_str().to_owned();
        let Some(p) = st.chats.profiles.get(&owner) else {
            return error(id, 404, "item-not-found");
        };
        if owner != phone && (p.privacy("profile") == "none" || p.blocked.contains(phone)) {
            return error(id, 401, "not-authorized");
        }
        let tctoken = pic.child("tctoken").and_then(Node::bytes).map(|b| &b[..]);
        if !st.chats.tokens.admits(me, &user, tctoken, unix_now()) {
            return error(id, 401, "not-authorized");
        }
        p.picture.as_ref().map(|(pid, jpeg)| (owner, pid, jpeg))
    };
    match picture_answer(shared, pic, found) {
        Ok(children) => result(id, children),
        Err((code, text)) => error(id, code, text),
    }
}

/// The current picture of group `gid` for `phone`, who must be a member or name the
/// group's invite code in `pic`'s `invite`; `Err` builds the refusal.
#[allow(clippy::type_complexity)]
fn group_picture<'a>(
    st: &'a Inner,
    phone: &str,
    gid: &str,
    pic: &Node,
) -> Result<Option<(String, &'a String, &'a Bytes)>, fn(&str) -> Node> {
    let invite = pic.attr_opt::<&str>("invite").ok().flatten();
    let Some(group) = st.groups.get(gid) else {
        return Err(|id| error(id, 404, "item-not-found"));
    };
    let invited = invite.is_some_and(|c| !c.is_empty() && c == group.invite);
    if group.role(phone).is_none() && !invited {
        return Err(|id| error(id, 401, "not-authorized"));
    }
    Ok(st
        .chats
        .group_pictures
        .get(gid)
        .map(|(pid, jpeg)| (gid.to_owned(), pid, jpeg)))
}

/// The `<picture>` answering the lookup `pic` (whose `type` and `id` it reads) of
/// `found` (owner, picture id, JPEG): none when `id=` names the current picture; `Err`
/// (code, text) for a bad type or no picture.
#[allow(clippy::type_complexity)]
fn picture_answer(
    shared: &Shared,
    pic: &Node,
    found: Option<(String, &String, &Bytes)>,
) -> Result<Vec<Node>, (u16, &'static str)> {
    let kind = pic
        .attr_opt::<&str>("type")
        .ok()
        .flatten()
        .unwrap_or("image");
    if kind != "image" && kind != "preview" {
        return Err((400, "bad-request"));
    }
    let Some((owner, pid, jpeg)) = found else {
        return Err((404, "item-not-found"));
    };
    if pic.attr_opt::<&str>("id").ok().flatten() == Some(pid.as_str()) {
        return Ok(Vec::new());
    }
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(jpeg));
    Ok(vec![
        Node::builder("picture")
            .attr("id", pid.clone())
            .attr("type", kind.to_owned())
            .attr("url", picture_url(shared, &owner, pid))
            .attr("direct_path", format!("/pp/{owner}/{pid}.jpg"))
            .attr("hash", hash)
            .build(),
    ])
}

/// `<iq xmlns="w:g2" type="get" to=community><pictures><picture query="url" type
/// parent_group_jid [id] [invite]>` (whatsmeow's community picture lookup): the
/// community's picture inside `<pictures>`, on the terms of a group's.
pub(crate) fn community_pictures(shared: &Shared, me: &Jid, id: &str, op: &Node) -> Node {
    let Some(pic) = op.child("picture") else {
        return error(id, 400, "bad-request");
    };
    let Some(parent) = pic
        .attr_opt::<Jid>("parent_group_jid")
        .ok()
        .flatten()
        .filter(Jid::is_group)
    else {
        return error(id, 400, "bad-request");
    };
    let st = shared.state.lock();
    let found = match group_picture(&st, me.user.as_str(), parent.user.as_str(), pic) {
        Ok(found) => found,
        Err(reply) => return reply(id),
    };
    match picture_answer(shared, pic, found) {
        Ok(children) => result(
            id,
            vec![Node::builder("pictures").children(children).build()],
        ),
        Err((code, text)) => error(id, code, text),
    }
}

/// `<iq xmlns="w:profile:picture" type="set" [target]>` with a `<picture>` (set) or
/// without (remove), for our own picture or a group's (members only). The change is told
/// with `<notification type="picture">` to every other device of the group's members, or
/// to the account's other companions for its own picture (phones are not told; the sim keeps no contact
/// lists, so other accounts are not told of a user picture).
fn picture_set(shared: &Shared, me: &Jid, id: &str, node: &Node) -> Node {
    let phone = me.user.as_str();
    let target = node.attr_opt::<Jid>("target").ok().flatten();
    let bytes = match node.child("picture") {
        None => None,
        Some(p) => match p.bytes() {
            Some(b) if !b.is_empty() && b.len() <= MAX_PICTURE => Some(b.clone()),
            _ => return error(id, 400, "bad-request"),
        },
    };
    let pid = fresh_id();
    let set = bytes.is_some();
    let (subject, told, reply) = {
        let mut st = shared.state.lock();
        match &target {
            Some(t) if t.is_group() => {
                let Some(group) = st.groups.get(t.user.as_str()) else {
                    return error(id, 401, "not-authorized");
                };
                if group.role(phone).is_none() {
                    return error(id, 401, "not-authorized");
                }
                let members = group.devices(&st);
                let gid = t.user.as_str().to_owned();
                match bytes {
                    Some(b) => {
                        st.chats.group_pictures.insert(gid, (pid.clone(), b));
                    }
                    None => {
                        st.chats.group_pictures.remove(&gid);
                    }
                }
                let reply = result(
                    id,
                    vec![Node::builder("picture").attr("id", pid.clone()).build()],
                );
                (t.clone(), members, reply)
            }
            Some(t) if resolve_user(&st, t).is_none_or(|u| u.user.as_str() != phone) => {
                return error(id, 401, "not-authorized");
            }
            _ => {
                let own: Vec<Jid> = route::user_devices(&st, phone)
                    .into_iter()
                    .filter(|d| d.device != 0)
                    .collect();
                let slot = &mut st
                    .chats
                    .profiles
                    .entry(phone.to_owned())
                    .or_default()
                    .picture;
                let reply = match bytes {
                    Some(b) => {
                        *slot = Some((pid.clone(), b));
                        result(
                            id,
                            vec![Node::builder("picture").attr("id", pid.clone()).build()],
                        )
                    }
                    None => {
                        *slot = None;
                        result(id, Vec::new())
                    }
                };
                (Jid::pn(phone.to_owned()), own, reply)
            }
        }
    };
    let change = if set {
        Node::builder("set").attr("id", pid)
    } else {
        Node::builder("delete")
    }
    .attr("jid", subject.clone())
    .attr("author", me.to_non_ad())
    .build();
    let notification = Node::builder("notification")
        .attr("from", subject)
        .attr("type", "picture")
        .attr("id", fresh_id())
        .attr("t", unix_now())
        .children([change])
        .build();
    // Phones take nothing from picture notifications.
    for d in told.iter().filter(|d| *d != me && d.device != 0) {
        route::deliver(shared, d, notification.clone());
    }
    reply
}

/// `<item action=block|unblock jid>`: updates the blocklist and tells the account's other
/// live devices with `<notification type="account_sync"><blocklist>`.
fn block_set(shared: &Shared, me: &Jid, id: &str, node: &Node) -> Node {
    let phone = me.user.as_str().to_owned();
    let Some(item) = node.child("item") else {
        return error(id, 400, "bad-request");
    };
    let action = item.attr_opt::<&str>("action").ok().flatten();
    // Items name the user's LID; a block also names its phone number (`pn_jid`), which
    // must be the same account's.
    let Some(jid) = item
        .attr_opt::<Jid>("jid")
        .ok()
        .flatten()
        .filter(|j| j.is_lid())
    else {
        return error(id, 400, "bad-request");
    };
    let pn_jid = item.attr_opt::<Jid>("pn_jid").ok().flatten();
    let (blocked_user, dhash) = {
        let mut st = shared.state.lock();
        let Some(user) = resolve_user(&st, &jid) else {
            return error(id, 404, "item-not-found");
        };
        if action == Some("block")
            && pn_jid.as_ref().and_then(|p| resolve_user(&st, p)).as_ref() != Some(&user)
        {
            return error(id, 400, "bad-request");
        }
        let user = user.user.as_str().to_owned();
        let p = st.chats.profiles.entry(phone.clone()).or_default();
        match action {
            Some("block") => {
                if p.blocked.len() >= MAX_BLOCKED && !p.blocked.contains(&user) {
                    return error(id, 406, "not-acceptable");
                }
                p.blocked.insert(user.clone());
            }
            Some("unblock") => {
                p.blocked.remove(&user);
            }
            _ => return error(id, 400, "bad-request"),
        }
        (user, format!("{}", p.blocked.len()))
    };
    let action = action.unwrap_or_default().to_owned();
    let change = Node::builder("blocklist")
        .attr("dhash", dhash)
        .children([Node::builder("item")
            .attr("jid", Jid::pn(blocked_user))
            .attr("action", action)
            .build()])
        .build();
    notify_own_devices(shared, me, change);
    result(id, Vec::new())
}

/// Queues `<notification type="account_sync">` with `change` for `me`'s account's other
/// companions.
fn notify_own_devices(shared: &Shared, me: &Jid, change: Node) {
    let phone = me.user.as_str().to_owned();
    let notification = Node::builder("notification")
        .attr("from", Jid::pn(phone.clone()))
        .attr("type", "account_sync")
        .attr("id", fresh_id())
        .attr("t", unix_now())
        .children([change])
        .build();
    let devices: Vec<Jid> = {
        let st = shared.state.lock();
        route::user_devices(&st, &phone)
    };
    for d in devices.iter().filter(|d| *d != me && d.device != 0) {
        route::deliver(shared, d, notification.clone());
    }
}

/// Checks a profile loaded from a state file against the bounds requests are held to.
pub(crate) fn check_profile(p: &Profile) -> Result<(), crate::Error> {
    let bad = |why| Err(crate::Error::BadState(why));
    if p.status.as_ref().is_some_and(|(t, _)| t.len() > MAX_STATUS) {
        return bad("status text too long");
    }
    if p.picture
        .as_ref()
        .is_some_and(|(_, b)| b.len() > MAX_PICTURE)
    {
        return bad("profile picture too large");
    }
    if p.blocked.len() > MAX_BLOCKED {
        return bad("blocklist too long");
    }
    if p.username.as_ref().is_some_and(|u| u.len() > MAX_USERNAME) {
        return bad("username too long");
    }
    let sp = &p.status_privacy;
    if sp.blacklist.len() > MAX_BLOCKED || sp.whitelist.len() > MAX_BLOCKED {
        return bad("status privacy list too long");
    }
    let known = p.privacy.iter().all(|(n, v)| {
        PRIVACY
            .iter()
            .any(|(pn, vs)| pn == n && vs.contains(&v.as_str()))
    });
    if !known {
        return bad("unknown privacy setting");
    }
    Ok(())
}

/// The usync `<status>` of `phone`, for the usync answer.
pub(crate) fn usync_status(st: &Inner, phone: &str) -> Node {
    let p = st.chats.profiles.get(phone);
    match p {
        Some(p) if p.privacy("status") == "none" => {
            Node::builder("status").attr("code", "401").build()
        }
        Some(Profile {
            status: Some((text, t)),
            about_expires,
            ..
        }) if about_expires.is_none_or(|e| e > unix_now()) => Node::builder("status")
            .attr("t", t.to_string())
            .bytes(Bytes::from(text.clone().into_bytes()))
            .build(),
        _ => Node::new("status"),
    }
}

/// The user part of the one bot the server offers (as Meta AI's JID).
pub(crate) const BOT_USER: &str = "867051314767696";
/// Its persona id.
const BOT_PERSONA: &str = "1";

/// The usync `<bot>` answer for the bot: its profile, commands and prompts.
pub(crate) fn usync_bot_profile() -> Node {
    let text = |tag: &str, t: &str| {
        Node::builder(tag.to_owned())
            .bytes(Bytes::from(t.as_bytes().to_vec()))
            .build()
    };
    let command = |name: &str, description: &str| {
        Node::builder("command")
            .children([text("name", name), text("description", description)])
            .build()
    };
    let prompt = |emoji: &str, t: &str| {
        Node::builder("prompt")
            .children([text("emoji", emoji), text("text", t)])
            .build()
    };
    Node::builder("bot")
        .children([Node::builder("profile")
            .attr("persona_id", BOT_PERSONA)
            .children([
                text("name", "Sim AI"),
                text("attributes", "Simulated"),
                text("description", "Answers in wa-sim"),
                text("category", "assistant"),
                Node::new("default"),
                Node::builder("commands")
                    .children([
                        text("description", "What it can do"),
                        command("/imagine", "Draws a picture"),
                        command("/help", "Lists the commands"),
                    ])
                    .build(),
                Node::builder("prompts")
                    .children([
                        prompt("💡", "Give me an idea"),
                        prompt("📚", "Tell me a story"),
                    ])
                    .build(),
            ])
            .build()])
        .build()
}

/// The longest username kept, in bytes.
pub(crate) const MAX_USERNAME: usize = 64;

/// The usync `<username>` of `phone` (empty when it has none), for the usync answer.
pub(crate) fn usync_username(st: &Inner, phone: &str) -> Node {
    match st
        .chats
        .profiles
        .get(phone)
        .and_then(|p| p.username.as_ref())
    {
        Some(u) => Node::builder("username")
            .bytes(Bytes::from(u.clone().into_bytes()))
            .build(),
        None => Node::new("username"),
    }
}

/// The usync `<disappearing_mode>` of `phone`, for the usync answer.
pub(crate) fn usync_disappearing(st: &Inner, phone: &str) -> Node {
    let (d, t) = st
        .chats
        .profiles
        .get(phone)
        .map_or((0, 0), |p| (p.disappearing, p.disappearing_at));
    Node::builder("disappearing_mode")
        .attr("duration", d.to_string())
        .attr("t", t.to_string())
        .build()
}

/// The usync `<picture>` of `phone` as `asker` (a phone number) sees it: `<picture
/// id/>` for the current picture, `<picture/>` without one, and a 401 error when the
/// owner hides it from everyone (`profile` privacy `none`) or blocked the asker, as
/// `w:profile:picture` gets answer.
pub(crate) fn usync_picture(st: &Inner, phone: &str, asker: Option<&str>) -> Node {
    let Some(p) = st.chats.profiles.get(phone) else {
        return Node::new("picture");
    };
    let own = asker == Some(phone);
    if !own && (p.privacy("profile") == "none" || asker.is_some_and(|a| p.blocked.contains(a))) {
        return Node::builder("picture")
            .children([Node::builder("error")
                .attr("code", "401")
                .attr("text", "not-authorized")
                .build()])
            .build();
    }
    Node::builder("picture")
        .attr_opt("id", p.picture.as_ref().map(|(id, _)| id.clone()))
        .build()
}

/// The bytes of `phone`'s profile picture.
pub(crate) fn picture_bytes(st: &Inner, phone: &str) -> Option<Bytes> {
    st.chats
        .profiles
        .get(phone)
        .and_then(|p| p.picture.as_ref())
        .map(|(_, b)| b.clone())
}

/// Longest about emoji kept, in bytes.
const MAX_ABOUT_EMOJI: usize = 64;
/// The `UpdateTextStatus` mutation's query id (whatsmeow's `mutationUpdateTextStatus`).
const UPDATE_TEXT_STATUS: &str = "9152604461510864";
/// Where its answer goes under `data`.
const UPDATE_TEXT_STATUS_PATH: &str = "xwa2_update_text_status";

/// Makes `text` (with `emoji`, lasting `duration` seconds when given) the about text of
/// `me`'s account and tells who sees it with `<notification type="status" from t>
/// <set>text</set>`: the account's other companions and the companions of every other
/// account it has not blocked (the simulator keeps no address books, so every account
/// counts as a contact), nobody else when its `status` privacy is `none`. Phones take
/// nothing from these notifications.
pub(crate) fn set_about(
    shared: &Shared,
    me: &Jid,
    text: &str,
    emoji: Option<String>,
    duration: Option<u64>,
) {
    let phone = me.user.as_str();
    let now = unix_now();
    let told: Vec<Jid> = {
        let mut st = shared.state.lock();
        let p = st.chats.profiles.entry(phone.to_owned()).or_default();
        p.status = Some((text.to_owned(), now));
        p.about_emoji = emoji;
        p.about_expires = duration.filter(|d| *d > 0).map(|d| now.saturating_add(d));
        let hidden = p.privacy("status") == "none";
        let blocked = p.blocked.clone();
        st.accounts
            .keys()
            .filter(|a| a.as_str() == phone || (!hidden && !blocked.contains(a.as_str())))
            .flat_map(|a| route::user_devices(&st, a))
            .filter(|d| d.device != 0 && d != me)
            .collect()
    };
    let notification = Node::builder("notification")
        .attr("from", Jid::pn(phone.to_owned()))
        .attr("type", "status")
        .attr("id", fresh_id())
        .attr("t", now.to_string())
        .children([Node::builder("set")
            .bytes(Bytes::from(text.as_bytes().to_vec()))
            .build()])
        .build();
    for d in &told {
        route::deliver(shared, d, notification.clone());
    }
}

/// Answers the `UpdateTextStatus` `w:mex` mutation from `me` (`{"variables": {"input":
/// {"text", "emoji": {"content"}, "ephemeral_duration_sec"}}}`); `None` for other query
/// ids.
pub(crate) fn mex(shared: &Shared, me: &Jid, id: &str, node: &Node) -> Option<Node> {
    use serde_json::{Value, json};
    let q = node.child("query")?;
    if q.attr_opt::<&str>("query_id").ok().flatten()? != UPDATE_TEXT_STATUS {
        return None;
    }
    let input = q
        .content_bytes()
        .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        .and_then(|mut v| v.pointer_mut("/variables/input").map(Value::take));
    let bad =
        |message: &str| crate::newsletter::mex_error(id, UPDATE_TEXT_STATUS_PATH, 400, message);
    let Some(input) = input.filter(Value::is_object) else {
        return Some(bad("bad request: no input"));
    };
    let Some(text) = input
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| t.len() <= MAX_STATUS)
    else {
        return Some(bad("bad request: text"));
    };
    let emoji = match input.get("emoji") {
        None | Some(Value::Null) => None,
        Some(e) => match e.get("content").and_then(Value::as_str) {
            Some(c) if !c.is_empty() && c.len() <= MAX_ABOUT_EMOJI => Some(c.to_owned()),
            _ => return Some(bad("bad request: emoji")),
        },
    };
    let duration = match input.get("ephemeral_duration_sec") {
        None | Some(Value::Null) => None,
        Some(d) => match d.as_u64().filter(|d| *d <= u64::from(u32::MAX)) {
            Some(d) => Some(d),
            None => return Some(bad("bad request: ephemeral_duration_sec")),
        },
    };
    set_about(shared, me, text, emoji.clone(), duration);
    let answer = json!({
        "text": text,
        "emoji": emoji.map(|c| json!({ "content": c })),
        "ephemeral_duration_sec": duration.unwrap_or(0),
        "last_update_time": unix_now(),
    });
    Some(crate::newsletter::mex_ok(
        id,
        UPDATE_TEXT_STATUS_PATH,
        answer,
    ))
}

/// The about text of `phone` as the simulator keeps it: (text, emoji, expiry in unix
/// seconds); `None` when it set none.
pub(crate) fn about(st: &Inner, phone: &str) -> Option<(String, Option<String>, Option<u64>)> {
    let p = st.chats.profiles.get(phone)?;
    let (text, _) = p.status.as_ref()?;
    Some((text.clone(), p.about_emoji.clone(), p.about_expires))
}
