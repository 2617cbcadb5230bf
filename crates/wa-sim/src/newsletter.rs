//! Channels (newsletters): the `w:mex` GraphQL operations on them, the `newsletter`
//! iqs (message fetches, live updates), posts and reactions sent as `<message
//! to="..@newsletter">`, view receipts, and the notifications that tell followers and
//! admins about them.
//!
//! Requests follow Baileys' `newsletter.ts` and whatsmeow's `newsletter.go`; answers are
//! the GraphQL objects both parse (`{id, state, thread_metadata, viewer_metadata}`).
//! Posts are not end-to-end encrypted: the server keeps the `<plaintext>` protobuf and
//! hands it to every follower's companion devices in a `<notification
//! type="newsletter">`. Channels are saved in the state file.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wa_binary::{Jid, Node};

use crate::route::{self, server_ack};
use crate::sim::{Shared, fresh_id, unix_now};
use crate::state::Inner;

/// Most channels the simulator holds.
const MAX_CHANNELS: usize = 10_000;
/// Most posts kept per channel (oldest dropped first).
const MAX_POSTS: usize = 1000;
/// Most followers per channel.
const MAX_FOLLOWERS: usize = 100_000;
/// Longest name, in bytes.
const MAX_NAME: usize = 100;
/// Longest description, in bytes.
const MAX_DESCRIPTION: usize = 2048;
/// Largest post or picture kept, in bytes.
const MAX_PAYLOAD: usize = 1024 * 1024;
/// Most messages one fetch answers with.
const MAX_FETCH: usize = 100;
/// Longest reaction code, in bytes.
const MAX_REACTION: usize = 32;
/// Most server ids taken from one view receipt.
const MAX_VIEW_IDS: usize = 100;

/// The channels part of the simulator's state (saved in the state file).
#[derive(Default, Clone, Serialize, Deserialize)]
pub(crate) struct NewsletterState {
    /// By the user part of `id@newsletter`.
    channels: BTreeMap<String, Channel>,
    /// The last channel number handed out.
    next: u64,
    /// Live-update subscriptions: (channel, device JID) -> until when (unix seconds). In
    /// memory only.
    #[serde(skip)]
    live: BTreeMap<(String, String), u64>,
}

/// How long a live-update subscription lasts, in seconds (the `duration` answered).
const LIVE_SECONDS: u64 = 300;
/// Most live-update subscriptions held at once.
const MAX_LIVE: usize = 10_000;

impl NewsletterState {
    /// Subscribes `device` to `channel`'s live updates for [`LIVE_SECONDS`].
    fn subscribe_live(&mut self, channel: &str, device: &Jid) {
        let now = unix_now();
        self.live.retain(|_, until| *until > now);
        let key = (channel.to_owned(), device.to_string());
        if self.live.len() < MAX_LIVE || self.live.contains_key(&key) {
            self.live.insert(key, now + LIVE_SECONDS);
        }
    }

    /// The devices subscribed to `channel`'s live updates now.
    fn live_devices(&self, channel: &str) -> Vec<Jid> {
        let now = unix_now();
        self.live
            .range((channel.to_owned(), String::new())..)
            .take_while(|((c, _), _)| c == channel)
            .filter(|(_, until)| **until > now)
            .filter_map(|((_, d), _)| d.parse().ok())
            .collect()
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Channel {
    name: String,
    description: String,
    invite: String,
    created: u64,
    picture: Option<(String, Vec<u8>)>,
    owner: String,
    admins: BTreeSet<String>,
    followers: BTreeSet<String>,
    muted: BTreeSet<String>,
    posts: VecDeque<Post>,
    next_server_id: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Post {
    server_id: u64,
    id: String,
    t: u64,
    kind: String,
    mediatype: Option<String>,
    plaintext: Vec<u8>,
    /// Reaction code per reacting account.
    reactions: BTreeMap<String, String>,
    viewers: BTreeSet<String>,
}

impl NewsletterState {
    /// Checks a loaded state against the bounds the server keeps.
    pub(crate) fn check(&self) -> Result<(), crate::Error> {
        let ok = self.channels.len() <= MAX_CHANNELS
            && self.channels.values().all(|c| {
                c.posts.len() <= MAX_POSTS
                    && c.followers.len() <= MAX_FOLLOWERS
                    && c.name.len() <= MAX_NAME
                    && c.description.len() <= MAX_DESCRIPTION
                    && c.picture
                        .as_ref()
                        .is_none_or(|(_, b)| b.len() <= MAX_PAYLOAD)
                    && c.posts.iter().all(|p| p.plaintext.len() <= MAX_PAYLOAD)
            });
        if ok {
            Ok(())
        } else {
            Err(crate::Error::BadState(
                "channels beyond the server's bounds",
            ))
        }
    }
}

impl Post {
    fn reaction_counts(&self) -> BTreeMap<&str, u64> {
        let mut counts = BTreeMap::new();
        for code in self.reactions.values() {
            *counts.entry(code.as_str()).or_insert(0) += 1;
        }
        counts
    }

    /// `<message server_id id t type>` with the content (when `content`), view count
    /// and reaction counts.
    fn node(&self, content: bool) -> Node {
        let mut children = Vec::new();
        if content {
            children.push(
                Node::builder("plaintext")
                    .attr_opt("mediatype", self.mediatype.clone())
                    .bytes(self.plaintext.clone())
                    .build(),
            );
        }
        children.push(
            Node::builder("views_count")
                .attr("count", self.viewers.len().to_string())
                .build(),
        );
        let counts = self.reaction_counts();
        if !counts.is_empty() {
            children.push(
                Node::builder("reactions")
                    .children(counts.into_iter().map(|(code, n)| {
                        Node::builder("reaction")
                            .attr("code", code.to_owned())
                            .attr("count", n.to_string())
                            .build()
                    }))
                    .build(),
            );
        }
        Node::builder("message")
            .attr("server_id", self.server_id.to_string())
            .attr("id", self.id.clone())
            .attr("t", self.t.to_string())
            .attr("type", self.kind.clone())
            .children(children)
            .build()
    }
}

impl Channel {
    fn role(&self, phone: &str) -> &'static str {
        if self.owner == phone {
            "OWNER"
        } else if self.admins.contains(phone) {
            "ADMIN"
        } else if self.followers.contains(phone) {
            "SUBSCRIBER"
        } else {
            "GUEST"
        }
    }

    fn is_admin(&self, phone: &str) -> bool {
        self.owner == phone || self.admins.contains(phone)
    }

    fn json(&self, id: &str, viewer: Option<&str>) -> Value {
        let mut thread = json!({
            "creation_time": self.created.to_string(),
            "name": { "text": self.name, "id": "", "update_time": "0" },
            "description": { "text": self.description, "id": "", "update_time": "0" },
            "invite": self.invite,
            "handle": Value::Null,
            "subscribers_count": self.followers.len().to_string(),
            "verification": "UNVERIFIED",
            "preview": { "id": "", "type": "PREVIEW", "direct_path": "" },
        });
        if let Some((pid, _)) = &self.picture {
            thread["picture"] = json!({
                "id": pid,
                "type": "IMAGE",
                "direct_path": format!("/newsletter/{id}/{pid}"),
            });
        }
        let mut out = json!({
            "id": format!("{id}@newsletter"),
            "state": { "type": "ACTIVE" },
            "thread_metadata": thread,
        });
        if let Some(p) = viewer {
            out["viewer_metadata"] = json!({
                "mute": if self.muted.contains(p) { "ON" } else { "OFF" },
                "role": self.role(p),
            });
        }
        out
    }

    /// Every account told about posts and settings: followers and admins.
    fn audience(&self) -> BTreeSet<String> {
        let mut all = self.followers.clone();
        all.insert(self.owner.clone());
        all.extend(self.admins.iter().cloned());
        all
    }

    fn admins_and_owner(&self) -> BTreeSet<String> {
        let mut all = self.admins.clone();
        all.insert(self.owner.clone());
        all
    }
}

/// A stanza for every companion device of some accounts (the phones do not take part
/// in channels here), except `skip`.
struct Notice {
    /// Accounts whose companions get it.
    to: BTreeSet<String>,
    /// Devices left out.
    skip: Vec<Jid>,
    /// Devices that get it besides those of `to`.
    devices: Vec<Jid>,
    node: Node,
}

fn send_notices(shared: &Shared, notices: Vec<Notice>) {
    for n in notices {
        let devices: Vec<Jid> = {
            let st = shared.state.lock();
            n.to.iter()
                .flat_map(|p| route::user_devices(&st, p))
                .filter(|d| d.device != 0 && !n.skip.contains(d))
                .chain(n.devices.iter().cloned())
                .collect()
        };
        for d in devices {
            route::deliver(shared, &d, n.node.clone());
        }
    }
}

fn channel_jid(id: &str) -> Jid {
    Jid::new(id.to_owned(), wa_binary::Server::Newsletter)
}

fn notification(from: Jid, ty: &'static str, children: Vec<Node>) -> Node {
    Node::builder("notification")
        .attr("from", from)
        .attr("type", ty)
        .attr("id", fresh_id())
        .attr("t", unix_now())
        .children(children)
        .build()
}

/// `<notification type="mex">` with `{"data": {key: value}}`.
pub(crate) fn mex_notification(op_name: &'static str, key: &str, value: Value) -> Node {
    let body = json!({ "data": { key: value } }).to_string();
    notification(
        Jid::server_jid(),
        "mex",
        vec![
            Node::builder("update")
                .attr("op_name", op_name)
                .bytes(body.into_bytes())
                .build(),
        ],
    )
}

fn result_node(id: &str, body: Value) -> Node {
    Node::builder("iq")
        .attr("id", id.to_owned())
        .attr("type", "result")
        .attr("from", Jid::server_jid())
        .children([Node::builder("result")
            .bytes(body.to_string().into_bytes())
            .build()])
        .build()
}

pub(crate) fn mex_ok(id: &str, path: &str, value: Value) -> Node {
    result_node(id, json!({ "data": { path: value } }))
}

pub(crate) fn mex_error(id: &str, path: &str, code: u16, message: &str) -> Node {
    mex_err(id, path, code, message)
}

fn mex_err(id: &str, path: &str, code: u16, message: &str) -> Node {
    result_node(
        id,
        json!({
            "data": { path: Value::Null },
            "errors": [{ "message": message, "extensions": { "error_code": code, "severity": "CRITICAL" }, "path": [path] }],
        }),
    )
}

fn iq_error(id: &str, code: u16, text: &'static str) -> Node {
    Node::builder("iq")
        .attr("id", id.to_owned())
        .attr("type", "error")
        .attr("from", Jid::server_jid())
        .children([Node::builder("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

/// The channel id (user part) named by `newsletter_id` in `vars`.
fn channel_id(vars: &Value) -> Option<String> {
    let s = vars.get("newsletter_id").and_then(Value::as_str)?;
    let j: Jid = s.parse().ok()?;
    j.is_newsletter().then(|| j.user.as_str().to_owned())
}

impl NewsletterState {
    /// Makes the account `phone` an admin of the channel `channel` (the user part of its
    /// JID), as accepting an admin invite would; `false` when there is no such channel or
    /// `phone` owns it.
    pub(crate) fn add_admin(&mut self, channel: &str, phone: &str) -> bool {
        match self.channels.get_mut(channel) {
            Some(c) if c.owner != phone => {
                c.followers.remove(phone);
                c.admins.insert(phone.to_owned());
                true
            }
            _ => false,
        }
    }
}

/// The operation a query id names: the data path the answer goes under.
fn operation(query_id: &str) -> Option<&'static str> {
    Some(match query_id {
        "8823471724422422" | "6234210096708695" | "27527996220149684" => "xwa2_newsletter_create",
        "24250201037901610" | "7150902998257522" | "7839742399440946" => "xwa2_newsletter_update",
        "6563316087068696" | "9779843322044422" => "xwa2_newsletter",
        "9783111038412085" => "xwa2_newsletter_subscribers",
        "24404358912487870" | "9926858900719341" => "xwa2_newsletter_join_v2",
        "9767147403369991" | "6392786840836363" | "8782612271820087" => "xwa2_newsletter_leave_v2",
        "29766401636284406" | "6274038279359549" | "5971669009605755" => "xwa2_newsletter_mute_v2",
        "9864994326891137" | "6068417879924485" | "6104029483058502" => "xwa2_newsletter_unmute_v2",
        "7130823597031706" => "xwa2_newsletter_admin",
        "30062808666639665" => "xwa2_newsletter_delete_v2",
        "6388546374527196" | "8621797084555037" => "xwa2_newsletter_subscribed",
        "7341777602580933" => "xwa2_newsletter_change_owner",
        "6551828931592903" => "xwa2_newsletter_demote",
        _ => return None,
    })
}

/// Answers an `<iq xmlns="w:mex">` from device `me`, or `None` when the query id is not
/// a channel operation.
pub(crate) fn mex(shared: &Shared, me: &Jid, id: &str, node: &Node) -> Option<Node> {
    let q = node.child("query")?;
    let path = operation(q.attr_opt::<&str>("query_id").ok().flatten()?)?;
    let vars = match q
        .content_bytes()
        .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        .and_then(|mut v| v.get_mut("variables").map(Value::take))
        .filter(Value::is_object)
    {
        Some(v) => v,
        None => return Some(mex_err(id, path, 400, "bad request: no variables")),
    };
    let phone = me.user.as_str();
    let mut notices = Vec::new();
    let reply = {
        let mut st = shared.state.lock();
        operate(&mut st, phone, me, id, path, &vars, &mut notices)
    };
    send_notices(shared, notices);
    Some(reply)
}

fn operate(
    st: &mut Inner,
    phone: &str,
    me: &Jid,
    id: &str,
    path: &'static str,
    vars: &Value,
    notices: &mut Vec<Notice>,
) -> Node {
    let ns = &mut st.newsletters;
    match path {
        "xwa2_newsletter_create" => {
            let input = vars.get("input").or_else(|| vars.get("newsletter_input"));
            let name = input
                .and_then(|i| i.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let description = input
                .and_then(|i| i.get("description"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if name.trim().is_empty() || name.len() > MAX_NAME {
                return mex_err(id, path, 400, "invalid name");
            }
            if description.len() > MAX_DESCRIPTION {
                return mex_err(id, path, 400, "invalid description");
            }
            if ns.channels.len() >= MAX_CHANNELS {
                return mex_err(id, path, 429, "too many channels");
            }
            ns.next += 1;
            let cid = format!("120363{:012}", ns.next);
            let ch = Channel {
                name: name.to_owned(),
                description: description.to_owned(),
                invite: fresh_id(),
                created: unix_now(),
                picture: None,
                owner: phone.to_owned(),
                admins: BTreeSet::new(),
                followers: BTreeSet::new(),
                muted: BTreeSet::new(),
                posts: VecDeque::new(),
                next_server_id: 100,
            };
            let v = ch.json(&cid, Some(phone));
            ns.channels.insert(cid, ch);
            mex_ok(id, path, v)
        }
        "xwa2_newsletter" => {
            let input = vars.get("input");
            let key = input
                .and_then(|i| i.get("key"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let kind = input
                .and_then(|i| i.get("type"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let viewer = vars
                .get("fetch_viewer_metadata")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let found = match kind {
                "JID" => key
                    .parse::<Jid>()
                    .ok()
                    .filter(Jid::is_newsletter)
                    .and_then(|j| ns.channels.get_key_value(j.user.as_str())),
                "INVITE" => ns.channels.iter().find(|(_, c)| c.invite == key),
                _ => return mex_err(id, path, 400, "bad key type"),
            };
            match found {
                Some((cid, c)) => mex_ok(id, path, c.json(cid, viewer.then_some(phone))),
                None => mex_err(id, path, 404, "channel not found"),
            }
        }
        "xwa2_newsletter_subscribed" => {
            let list: Vec<Value> = ns
                .channels
                .iter()
                .filter(|(_, c)| c.followers.contains(phone) || c.is_admin(phone))
                .map(|(cid, c)| c.json(cid, Some(phone)))
                .collect();
            mex_ok(id, path, Value::Array(list))
        }
        _ => {
            let Some(cid) = channel_id(vars) else {
                return mex_err(id, path, 400, "bad newsletter_id");
            };
            // `user_id` (owner changes and demotions) names an account by number or LID.
            let user = vars
                .get("user_id")
                .and_then(Value::as_str)
                .and_then(|u| u.parse::<Jid>().ok())
                .and_then(|j| {
                    if j.is_lid() {
                        st.accounts
                            .values()
                            .find(|a| a.lid_user == j.user.as_str())
                            .map(|a| a.phone.clone())
                    } else {
                        j.is_pn_user().then(|| j.user.as_str().to_owned())
                    }
                });
            let ns = &mut st.newsletters;
            let Some(c) = ns.channels.get_mut(&cid) else {
                return mex_err(id, path, 404, "channel not found");
            };
            match on_channel(c, &cid, phone, user.as_deref(), me, id, path, vars, notices) {
                Some(reply) => reply,
                None => {
                    // Deletion: drop the channel after the owner check passed.
                    ns.channels.remove(&cid);
                    mex_ok(id, path, json!({ "id": format!("{cid}@newsletter") }))
                }
            }
        }
    }
}

/// An operation on one existing channel; `None` means "delete it".
#[allow(clippy::too_many_arguments, reason = "one request's context")]
fn on_channel(
    c: &mut Channel,
    cid: &str,
    phone: &str,
    user: Option<&str>,
    me: &Jid,
    id: &str,
    path: &'static str,
    vars: &Value,
    notices: &mut Vec<Notice>,
) -> Option<Node> {
    let jid_str = format!("{cid}@newsletter");
    let own = |node: Node| Notice {
        to: BTreeSet::from([phone.to_owned()]),
        skip: Vec::new(),
        devices: Vec::new(),
        node,
    };
    Some(match path {
        "xwa2_newsletter_join_v2" => {
            if c.is_admin(phone) {
                return Some(mex_err(id, path, 409, "admins follow already"));
            }
            if !c.followers.contains(phone) && c.followers.len() >= MAX_FOLLOWERS {
                return Some(mex_err(id, path, 429, "too many followers"));
            }
            c.followers.insert(phone.to_owned());
            let meta = c.json(cid, Some(phone));
            notices.push(own(mex_notification(
                "NotificationNewsletterJoin",
                "xwa2_notify_newsletter_on_join",
                meta.clone(),
            )));
            mex_ok(id, path, meta)
        }
        "xwa2_newsletter_leave_v2" => {
            if !c.followers.remove(phone) {
                return Some(mex_err(id, path, 404, "not a follower"));
            }
            c.muted.remove(phone);
            notices.push(own(mex_notification(
                "NotificationNewsletterLeave",
                "xwa2_notify_newsletter_on_leave",
                json!({ "id": jid_str, "role": "GUEST" }),
            )));
            mex_ok(id, path, json!({ "id": jid_str }))
        }
        "xwa2_newsletter_mute_v2" | "xwa2_newsletter_unmute_v2" => {
            if !c.followers.contains(phone) && !c.is_admin(phone) {
                return Some(mex_err(id, path, 403, "not a follower"));
            }
            let mute = path == "xwa2_newsletter_mute_v2";
            if mute {
                c.muted.insert(phone.to_owned());
            } else {
                c.muted.remove(phone);
            }
            let state = if mute { "ON" } else { "OFF" };
            notices.push(own(mex_notification(
                "NotificationNewsletterMuteChange",
                "xwa2_notify_newsletter_on_mute_change",
                json!({ "id": jid_str, "mute": state }),
            )));
            mex_ok(id, path, json!({ "id": jid_str, "mute": state }))
        }
        "xwa2_newsletter_subscribers" => mex_ok(
            id,
            path,
            json!({ "id": jid_str, "subscribers": c.followers.len() }),
        ),
        "xwa2_newsletter_admin" => mex_ok(
            id,
            path,
            json!({ "id": jid_str, "admin_count": c.admins.len() + 1 }),
        ),
        "xwa2_newsletter_change_owner" | "xwa2_newsletter_demote" => {
            if c.owner != phone {
                return Some(mex_err(id, path, 403, "only the owner may do this"));
            }
            let Some(user) = user.filter(|u| c.admins.contains(*u)) else {
                return Some(mex_err(id, path, 400, "not an admin of this channel"));
            };
            c.admins.remove(user);
            if path == "xwa2_newsletter_change_owner" {
                // The previous owner stays on as an admin.
                c.admins
                    .insert(std::mem::replace(&mut c.owner, user.to_owned()));
            } else {
                c.followers.insert(user.to_owned());
                let mut to = c.admins_and_owner();
                to.insert(user.to_owned());
                let body = json!({
                    "operation": "NotificationNewsletterAdminDemote",
                    "updates": [{ "jid": jid_str, "user": format!("{user}@s.whatsapp.net") }],
                });
                notices.push(Notice {
                    to,
                    skip: vec![me.clone()],
                    devices: Vec::new(),
                    node: notification(
                        channel_jid(cid),
                        "mex",
                        vec![
                            Node::builder("mex")
                                .attr("op_name", "NotificationNewsletterAdminDemote")
                                .bytes(body.to_string().into_bytes())
                                .build(),
                        ],
                    ),
                });
            }
            mex_ok(id, path, json!({ "id": jid_str }))
        }
        "xwa2_newsletter_delete_v2" => {
            if c.owner != phone {
                return Some(mex_err(id, path, 403, "only the owner may delete"));
            }
            return None;
        }
        "xwa2_newsletter_update" => {
            if !c.is_admin(phone) {
                return Some(mex_err(id, path, 403, "not an admin"));
            }
            let Some(u) = vars.get("updates").filter(|u| u.is_object()) else {
                return Some(mex_err(id, path, 400, "no updates"));
            };
            let name = u.get("name").and_then(Value::as_str);
            let description = u.get("description").and_then(Value::as_str);
            let picture = u.get("picture").and_then(Value::as_str);
            if name.is_some_and(|n| n.trim().is_empty() || n.len() > MAX_NAME)
                || description.is_some_and(|d| d.len() > MAX_DESCRIPTION)
            {
                return Some(mex_err(id, path, 400, "invalid update"));
            }
            if let Some(p) = picture {
                if p.is_empty() {
                    c.picture = None;
                } else {
                    match base64::engine::general_purpose::STANDARD.decode(p) {
                        Ok(b) if b.len() <= MAX_PAYLOAD => {
                            c.picture = Some((fresh_id(), b));
                        }
                        _ => return Some(mex_err(id, path, 400, "invalid picture")),
                    }
                }
            }
            if let Some(n) = name {
                c.name = n.to_owned();
            }
            if let Some(d) = description {
                c.description = d.to_owned();
            }
            if name.is_some() || description.is_some() {
                let mut settings = Vec::new();
                if let Some(n) = name {
                    settings.push(Node::builder("name").bytes(n.as_bytes().to_vec()).build());
                }
                if let Some(d) = description {
                    settings.push(
                        Node::builder("description")
                            .bytes(d.as_bytes().to_vec())
                            .build(),
                    );
                }
                notices.push(Notice {
                    to: c.audience(),
                    skip: vec![me.clone()],
                    devices: Vec::new(),
                    node: notification(
                        channel_jid(cid),
                        "newsletter",
                        vec![
                            Node::builder("update")
                                .children([Node::builder("settings").children(settings).build()])
                                .build(),
                        ],
                    ),
                });
            }
            mex_ok(id, path, c.json(cid, Some(phone)))
        }
        _ => mex_err(id, path, 501, "not implemented"),
    })
}

/// Answers an `<iq xmlns="newsletter">`: `<messages>` and `<message_updates>` fetches,
/// `<live_updates>` subscriptions.
pub(crate) fn iq(shared: &Shared, me: &Jid, id: &str, node: &Node) -> Node {
    let Some(op) = node.children().first() else {
        return iq_error(id, 400, "bad-request");
    };
    let to = node.attr_opt::<Jid>("to").ok().flatten();
    let mut st = shared.state.lock();
    let ns = &mut st.newsletters;
    let target = match op.tag() {
        "messages" => op.attr_opt::<Jid>("jid").ok().flatten(),
        _ => to.clone(),
    };
    let Some(target) = target.filter(Jid::is_newsletter) else {
        return iq_error(id, 400, "bad-request");
    };
    if !ns.channels.contains_key(target.user.as_str()) {
        return iq_error(id, 404, "item-not-found");
    }
    if op.tag() == "live_updates" {
        ns.subscribe_live(target.user.as_str(), me);
    }
    let Some(c) = ns.channels.get(target.user.as_str()) else {
        return iq_error(id, 404, "item-not-found");
    };
    let count = op
        .attr_opt::<usize>("count")
        .ok()
        .flatten()
        .unwrap_or(MAX_FETCH)
        .clamp(1, MAX_FETCH);
    let reply = |child: Node| {
        Node::builder("iq")
            .attr("id", id.to_owned())
            .attr("type", "result")
            .attr("from", to.clone().unwrap_or_else(Jid::server_jid))
            .children([child])
            .build()
    };
    match op.tag() {
        "messages" => {
            let before = op.attr_opt::<u64>("before").ok().flatten();
            let picked: Vec<&Post> = c
                .posts
                .iter()
                .rev()
                .filter(|p| before.is_none_or(|b| p.server_id < b))
                .take(count)
                .collect();
            reply(
                Node::builder("messages")
                    .attr("jid", target.clone())
                    .attr("t", unix_now())
                    .children(picked.into_iter().rev().map(|p| p.node(true)))
                    .build(),
            )
        }
        "message_updates" => {
            let after = op.attr_opt::<u64>("after").ok().flatten();
            let since = op.attr_opt::<u64>("since").ok().flatten();
            let picked: Vec<&Post> = c
                .posts
                .iter()
                .rev()
                .filter(|p| after.is_none_or(|a| p.server_id > a))
                .filter(|p| since.is_none_or(|s| p.t >= s))
                .take(count)
                .collect();
            reply(
                Node::builder("message_updates")
                    .children([Node::builder("messages")
                        .children(picked.into_iter().rev().map(|p| p.node(false)))
                        .build()])
                    .build(),
            )
        }
        "live_updates" => reply(
            Node::builder("live_updates")
                .attr("duration", LIVE_SECONDS.to_string())
                .build(),
        ),
        _ => iq_error(id, 501, "feature-not-implemented"),
    }
}

/// A `<message to="..@newsletter">` from device `sender`: a post (admins only) stored
/// with the next server id and handed to the audience, or a reaction (`type="reaction"`
/// with `server_id`). Returns the server's ack (with `server_id` for posts).
pub(crate) fn route_message(
    shared: &Shared,
    sender: &Jid,
    node: &Node,
    id: &str,
    to: &Jid,
) -> Node {
    let phone = sender.user.as_str();
    let ty = node
        .attr_opt::<&str>("type")
        .ok()
        .flatten()
        .unwrap_or("text")
        .to_owned();
    let mut notices = Vec::new();
    let ack = {
        let mut st = shared.state.lock();
        let ns = &mut st.newsletters;
        let live = if ty == "reaction" {
            Vec::new()
        } else {
            ns.live_devices(to.user.as_str())
        };
        let Some(c) = ns.channels.get_mut(to.user.as_str()) else {
            return server_ack("message", id, Some(to.clone()), Some(404));
        };
        if ty == "reaction" {
            react(c, to, phone, node, id, &mut notices)
        } else {
            post(c, to, sender, node, id, &ty, &live, &mut notices)
        }
    };
    send_notices(shared, notices);
    ack
}

fn react(
    c: &mut Channel,
    to: &Jid,
    phone: &str,
    node: &Node,
    id: &str,
    notices: &mut Vec<Notice>,
) -> Node {
    let Some(sid) = node.attr_opt::<u64>("server_id").ok().flatten() else {
        return server_ack("message", id, Some(to.clone()), Some(400));
    };
    let code = node
        .child("reaction")
        .and_then(|r| r.attr_opt::<String>("code").ok().flatten())
        .filter(|c| !c.is_empty() && c.len() <= MAX_REACTION);
    let revoke = node.attr_opt::<&str>("edit").ok().flatten() == Some("7");
    if code.is_none() && !revoke {
        return server_ack("message", id, Some(to.clone()), Some(400));
    }
    let admins = c.admins_and_owner();
    let Some(p) = c.posts.iter_mut().find(|p| p.server_id == sid) else {
        return server_ack("message", id, Some(to.clone()), Some(404));
    };
    let shown = match code {
        Some(code) => {
            p.reactions.insert(phone.to_owned(), code.clone());
            code
        }
        None => p.reactions.remove(phone).unwrap_or_default(),
    };
    let count = p.reactions.values().filter(|c| **c == shown).count();
    notices.push(Notice {
        to: admins,
        skip: Vec::new(),
        devices: Vec::new(),
        node: notification(
            to.clone(),
            "newsletter",
            vec![
                Node::builder("reaction")
                    .attr("message_id", sid.to_string())
                    .attr("count", count.to_string())
                    .children([Node::builder("reaction").bytes(shown.into_bytes()).build()])
                    .build(),
            ],
        ),
    });
    server_ack("message", id, Some(to.clone()), None)
}

/// A post by an admin: stored with the next server id; devices subscribed to live
/// updates get it as `<message from=channel server_id ..><plaintext>`, the rest of the
/// audience as a `<notification type=newsletter>`.
#[allow(clippy::too_many_arguments, reason = "one request's context")]
fn post(
    c: &mut Channel,
    to: &Jid,
    sender: &Jid,
    node: &Node,
    id: &str,
    ty: &str,
    live: &[Jid],
    notices: &mut Vec<Notice>,
) -> Node {
    if !c.is_admin(sender.user.as_str()) {
        return server_ack("message", id, Some(to.clone()), Some(403));
    }
    let Some(pt) = node.child("plaintext") else {
        return server_ack("message", id, Some(to.clone()), Some(400));
    };
    let body = pt.content_bytes().unwrap_or_default();
    if body.is_empty() || body.len() > MAX_PAYLOAD || id.len() > 128 {
        return server_ack("message", id, Some(to.clone()), Some(400));
    }
    let server_id = c.next_server_id;
    c.next_server_id += 1;
    let p = Post {
        server_id,
        id: id.to_owned(),
        t: unix_now(),
        kind: if ty.len() <= 16 { ty } else { "text" }.to_owned(),
        mediatype: pt
            .attr_opt::<String>("mediatype")
            .ok()
            .flatten()
            .filter(|m| m.len() <= 16),
        plaintext: body.to_vec(),
        reactions: BTreeMap::new(),
        viewers: BTreeSet::new(),
    };
    // Live subscribers of the audience get the message itself, the others a notification.
    let audience = c.audience();
    let live: Vec<Jid> = live
        .iter()
        .filter(|d| d != &sender && audience.contains(d.user.as_str()))
        .cloned()
        .collect();
    let mut direct = p.node(true);
    direct.attrs.insert("from", to.to_string());
    notices.push(Notice {
        to: BTreeSet::new(),
        skip: Vec::new(),
        devices: live.clone(),
        node: direct,
    });
    let mut skip = live;
    skip.push(sender.clone());
    notices.push(Notice {
        to: audience,
        skip,
        devices: Vec::new(),
        node: notification(to.clone(), "newsletter", vec![p.node(true)]),
    });
    if c.posts.len() >= MAX_POSTS {
        c.posts.pop_front();
    }
    c.posts.push_back(p);
    let mut ack = server_ack("message", id, Some(to.clone()), None);
    ack.attrs.insert("server_id", server_id.to_string());
    ack
}

/// A `<receipt type="view" to="..@newsletter"><list><item server_id/>..`: counts the
/// views and tells the admins the new counts. Returns the server's ack.
pub(crate) fn view_receipt(shared: &Shared, sender: &Jid, node: &Node, id: &str, to: &Jid) -> Node {
    let phone = sender.user.as_str();
    let ids: Vec<u64> = node
        .child("list")
        .map(|l| {
            l.children_by_tag("item")
                .take(MAX_VIEW_IDS)
                .filter_map(|i| i.attr_opt::<u64>("server_id").ok().flatten())
                .collect()
        })
        .unwrap_or_default();
    let mut notices = Vec::new();
    {
        let mut st = shared.state.lock();
        if let Some(c) = st.newsletters.channels.get_mut(to.user.as_str()) {
            let admins = c.admins_and_owner();
            let mut views = Vec::new();
            for p in c.posts.iter_mut().filter(|p| ids.contains(&p.server_id)) {
                if p.viewers.insert(phone.to_owned()) {
                    views.push(
                        Node::builder("view")
                            .attr("message_id", p.server_id.to_string())
                            .bytes(p.viewers.len().to_string().into_bytes())
                            .build(),
                    );
                }
            }
            if !views.is_empty() {
                notices.push(Notice {
                    to: admins,
                    skip: Vec::new(),
                    devices: Vec::new(),
                    node: notification(to.clone(), "newsletter", views),
                });
            }
        }
    }
    send_notices(shared, notices);
    Node::builder("ack")
        .attr("class", "receipt")
        .attr("id", id.to_owned())
        .attr("from", to.clone())
        .attr("type", "view")
        .build()
}
