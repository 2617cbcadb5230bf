//! Sans-IO request builders and reply / notification parsers for channels.
//!
//! Channel management goes through `w:mex`: an `<iq xmlns="w:mex" type="get">` whose
//! `<query query_id>` child holds `{"variables": {..}}` as JSON, answered by a `<result>`
//! child holding `{"data": {"<path>": ..}}` or `{"errors": [..]}`. Message fetches,
//! live-update subscriptions and the posts themselves are plain nodes.

use prost::Message as _;
use serde_json::{Value, json};
use wa_binary::{Jid, Node};
use wa_types::{NewsletterChange, NewsletterMessage, NewsletterRole, NewsletterUpdate};

use crate::Error;

/// Most messages taken from one fetch reply or live update.
pub const MAX_MESSAGES: usize = 1000;
/// Most reaction codes taken for one message.
pub const MAX_REACTIONS: usize = 64;
/// Most updates taken from one notification.
pub const MAX_UPDATES: usize = 256;
/// Longest channel name accepted in a request, in bytes.
pub const MAX_NAME: usize = 100;
/// Longest description accepted in a request, in bytes.
pub const MAX_DESCRIPTION: usize = 2048;

pub use wa_socket::mex::MexOperation;

/// The channel operations and the ids the web client uses for them.
pub mod ops {
    use super::MexOperation;

    /// Create a channel.
    pub const CREATE: MexOperation = MexOperation {
        query_id: "8823471724422422",
        path: "xwa2_newsletter_create",
    };
    /// Change name, description or picture.
    pub const UPDATE: MexOperation = MexOperation {
        query_id: "24250201037901610",
        path: "xwa2_newsletter_update",
    };
    /// Metadata by JID or invite code.
    pub const METADATA: MexOperation = MexOperation {
        query_id: "6563316087068696",
        path: "xwa2_newsletter",
    };
    /// Follower count.
    pub const SUBSCRIBERS: MexOperation = MexOperation {
        query_id: "9783111038412085",
        path: "xwa2_newsletter_subscribers",
    };
    /// Follow.
    pub const FOLLOW: MexOperation = MexOperation {
        query_id: "24404358912487870",
        path: "xwa2_newsletter_join_v2",
    };
    /// Unfollow.
    pub const UNFOLLOW: MexOperation = MexOperation {
        query_id: "9767147403369991",
        path: "xwa2_newsletter_leave_v2",
    };
    /// Mute.
    pub const MUTE: MexOperation = MexOperation {
        query_id: "29766401636284406",
        path: "xwa2_newsletter_mute_v2",
    };
    /// Unmute.
    pub const UNMUTE: MexOperation = MexOperation {
        query_id: "9864994326891137",
        path: "xwa2_newsletter_unmute_v2",
    };
    /// Admin count.
    pub const ADMIN_COUNT: MexOperation = MexOperation {
        query_id: "7130823597031706",
        path: "xwa2_newsletter_admin",
    };
    /// Delete a channel (owner only).
    pub const DELETE: MexOperation = MexOperation {
        query_id: "30062808666639665",
        path: "xwa2_newsletter_delete_v2",
    };
    /// Every channel this account follows.
    pub const SUBSCRIBED: MexOperation = MexOperation {
        query_id: "6388546374527196",
        path: "xwa2_newsletter_subscribed",
    };
    /// Hand the channel to one of its admins (owner only).
    pub const CHANGE_OWNER: MexOperation = MexOperation {
        query_id: "7341777602580933",
        path: "xwa2_newsletter_change_owner",
    };
    /// Take an admin's role away (owner only).
    pub const DEMOTE: MexOperation = MexOperation {
        query_id: "6551828931592903",
        path: "xwa2_newsletter_demote",
    };

    /// Every operation above (the simulator and tests look them up here).
    pub const ALL: [MexOperation; 13] = [
        CREATE,
        UPDATE,
        METADATA,
        SUBSCRIBERS,
        FOLLOW,
        UNFOLLOW,
        MUTE,
        UNMUTE,
        ADMIN_COUNT,
        DELETE,
        SUBSCRIBED,
        CHANGE_OWNER,
        DEMOTE,
    ];
}

/// A channel's picture reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewsletterPicture {
    /// The picture id.
    pub id: String,
    /// The media path to download it from, when given.
    pub direct_path: Option<String>,
}

/// What is known about a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewsletterMetadata {
    /// `id@newsletter`.
    pub id: Jid,
    /// The name.
    pub name: String,
    /// The description (empty when none).
    pub description: String,
    /// The invite code (`https://whatsapp.com/channel/<code>`), when given.
    pub invite: Option<String>,
    /// Creation time, unix seconds (0 when absent).
    pub creation_time: u64,
    /// Follower count, when given.
    pub subscribers: Option<u64>,
    /// Whether the channel is verified.
    pub verified: bool,
    /// The picture, when it has one.
    pub picture: Option<NewsletterPicture>,
    /// The channel state (`ACTIVE`, `SUSPENDED`, ...), when given.
    pub state: Option<String>,
    /// Whether this account muted it (only with viewer metadata).
    pub muted: Option<bool>,
    /// This account's role (only with viewer metadata).
    pub role: Option<NewsletterRole>,
}

/// The `<iq xmlns="w:mex">` for `op` with `variables`.
pub fn build_mex_query(id: &str, op: MexOperation, variables: Value) -> Node {
    wa_socket::mex::build_query(id, op, variables)
}

/// The variables of a `w:mex` request (`<query>`'s JSON `variables`), and its operation,
/// for the server side.
///
/// # Errors
/// [`Error::Malformed`] when the query, its id or its JSON is missing or invalid.
pub fn parse_mex_request(iq: &Node) -> Result<(String, Value), Error> {
    let q = iq
        .child("query")
        .ok_or_else(|| Error::Malformed("mex request without query"))?;
    let id: String = q
        .attr("query_id")
        .map_err(|_| Error::Malformed("mex query without query_id"))?;
    let body = q
        .content_bytes()
        .ok_or_else(|| Error::Malformed("mex query without body"))?;
    let mut v: Value =
        serde_json::from_slice(body).map_err(|_| Error::Malformed("mex query is not JSON"))?;
    let vars = v
        .get_mut("variables")
        .map(Value::take)
        .filter(Value::is_object)
        .ok_or_else(|| Error::Malformed("mex query without variables object"))?;
    Ok((id, vars))
}

/// The `data.<path>` value of a `w:mex` reply.
///
/// # Errors
/// [`Error::GraphQl`] for an answer with errors, [`Error::Malformed`] when the result,
/// its JSON or the path is missing.
pub fn parse_mex_result(reply: &Node, op: MexOperation) -> Result<Value, Error> {
    wa_socket::mex::parse_result(reply, op).map_err(|e| match e {
        wa_socket::Error::GraphQl { code, message } => Error::GraphQl { code, message },
        wa_socket::Error::UnexpectedResponse(what) => Error::Malformed(what),
        e => Error::Socket(e),
    })
}

/// The `<iq type="result">` answering a `w:mex` request with `data.<path> = value`.
pub fn build_mex_reply(id: &str, op: MexOperation, value: Value) -> Node {
    let body = json!({ "data": { op.path: value } }).to_string();
    Node::builder("iq")
        .attr("id", id.to_owned())
        .attr("type", "result")
        .attr("from", Jid::server_jid())
        .children([Node::builder("result").bytes(body.into_bytes()).build()])
        .build()
}

/// The `<iq type="result">` answering a `w:mex` request with a GraphQL error.
pub fn build_mex_error(id: &str, op: MexOperation, code: u16, message: &str) -> Node {
    let body = json!({
        "data": { op.path: Value::Null },
        "errors": [{ "message": message, "extensions": { "error_code": code }, "path": [op.path] }],
    })
    .to_string();
    Node::builder("iq")
        .attr("id", id.to_owned())
        .attr("type", "result")
        .attr("from", Jid::server_jid())
        .children([Node::builder("result").bytes(body.into_bytes()).build()])
        .build()
}

use wa_socket::mex::number as as_u64;

/// `{"text": ..}` or a bare string.
fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("text").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// A channel's metadata from the GraphQL object (`{id, state, thread_metadata,
/// viewer_metadata}`), as create, metadata, join and subscribed answers carry it.
///
/// # Errors
/// [`Error::Malformed`] when the id is missing or not a channel JID, or the name is
/// missing.
pub fn parse_metadata(v: &Value) -> Result<NewsletterMetadata, Error> {
    // Some answers wrap the object once more in `result`.
    let v = match v.get("result") {
        Some(inner) if inner.get("id").is_some() => inner,
        _ => v,
    };
    let id: Jid = v
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Malformed("channel without id"))?
        .parse()
        .map_err(|_| Error::Malformed("channel id is not a JID"))?;
    if !id.is_newsletter() {
        return Err(Error::Malformed("channel id is not a newsletter JID"));
    }
    let t = v.get("thread_metadata");
    let field = |k: &str| t.and_then(|t| t.get(k));
    let name = text_of(field("name")).ok_or_else(|| Error::Malformed("channel without name"))?;
    let picture = field("picture")
        .filter(|p| p.is_object())
        .and_then(|p| {
            let id = p.get("id").and_then(Value::as_str)?;
            Some(NewsletterPicture {
                id: id.to_owned(),
                direct_path: p
                    .get("direct_path")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .filter(|p| !p.id.is_empty());
    let viewer = v.get("viewer_metadata").filter(|x| x.is_object());
    Ok(NewsletterMetadata {
        id,
        name,
        description: text_of(field("description")).unwrap_or_default(),
        invite: field("invite")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        creation_time: field("creation_time").and_then(as_u64).unwrap_or(0),
        subscribers: field("subscribers_count").and_then(as_u64),
        verified: field("verification")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("verified")),
        picture,
        state: v
            .pointer("/state/type")
            .and_then(Value::as_str)
            .map(str::to_owned),
        muted: viewer
            .and_then(|x| x.get("mute"))
            .and_then(Value::as_str)
            .map(|m| m.eq_ignore_ascii_case("on")),
        role: viewer
            .and_then(|x| x.get("role"))
            .and_then(Value::as_str)
            .and_then(NewsletterRole::from_name),
    })
}

/// The GraphQL object for `meta` (the inverse of [`parse_metadata`], for the server).
pub fn metadata_json(meta: &NewsletterMetadata) -> Value {
    let mut thread = json!({
        "name": { "text": meta.name, "id": "", "update_time": "0" },
        "description": { "text": meta.description, "id": "", "update_time": "0" },
        "invite": meta.invite.clone().unwrap_or_default(),
        "creation_time": meta.creation_time.to_string(),
        "verification": if meta.verified { "VERIFIED" } else { "UNVERIFIED" },
    });
    if let Some(n) = meta.subscribers {
        thread["subscribers_count"] = json!(n.to_string());
    }
    if let Some(p) = &meta.picture {
        thread["picture"] = json!({ "id": p.id, "direct_path": p.direct_path, "type": "IMAGE" });
    }
    let mut out = json!({
        "id": meta.id.to_string(),
        "state": { "type": meta.state.clone().unwrap_or_else(|| "ACTIVE".to_owned()) },
        "thread_metadata": thread,
    });
    if meta.muted.is_some() || meta.role.is_some() {
        out["viewer_metadata"] = json!({
            "mute": if meta.muted == Some(true) { "ON" } else { "OFF" },
            "role": meta.role.unwrap_or(NewsletterRole::Guest).as_name(),
        });
    }
    out
}

/// A count from an answer that is either the number itself or an object holding it
/// under `key` (e.g. `{"subscribers": 3}` or `{"admin_count": 1}`).
///
/// # Errors
/// [`Error::Malformed`] when no count is found.
pub fn parse_count(v: &Value, key: &str) -> Result<u64, Error> {
    as_u64(v)
        .or_else(|| v.get(key).and_then(as_u64))
        .or_else(|| {
            v.pointer("/thread_metadata/subscribers_count")
                .and_then(as_u64)
        })
        .ok_or_else(|| Error::Malformed("answer without the expected count"))
}

/// The `<message to="..@newsletter">` posting `message` (not end-to-end encrypted: the
/// protobuf goes in a `<plaintext>` child).
pub fn build_post(to: &Jid, id: &str, message: &wa_proto::e2e::Message) -> Node {
    let media = media_type(message);
    Node::builder("message")
        .attr("to", to.clone())
        .attr("id", id.to_owned())
        .attr("type", if media.is_some() { "media" } else { "text" })
        .children([Node::builder("plaintext")
            .attr_opt("mediatype", media)
            .bytes(message.encode_to_vec())
            .build()])
        .build()
}

/// The `mediatype` attribute for a media message.
fn media_type(m: &wa_proto::e2e::Message) -> Option<&'static str> {
    if m.image_message.is_some() {
        Some("image")
    } else if m.video_message.is_some() {
        Some("video")
    } else if m.audio_message.is_some() {
        Some("audio")
    } else if m.document_message.is_some() {
        Some("document")
    } else if m.sticker_message.is_some() {
        Some("sticker")
    } else {
        None
    }
}

/// The `<message type="reaction" server_id>` reacting to a channel message; `None`
/// removes our reaction (`edit="7"`).
pub fn build_reaction(to: &Jid, id: &str, server_id: u64, code: Option<&str>) -> Node {
    Node::builder("message")
        .attr("to", to.clone())
        .attr("id", id.to_owned())
        .attr("server_id", server_id.to_string())
        .attr("type", "reaction")
        .attr_opt("edit", code.is_none().then_some("7"))
        .children([Node::builder("reaction")
            .attr_opt("code", code.map(str::to_owned))
            .build()])
        .build()
}

/// The `<receipt type="view">` marking channel messages as viewed.
pub fn build_view_receipt(to: &Jid, id: &str, server_ids: &[u64]) -> Node {
    Node::builder("receipt")
        .attr("to", to.clone())
        .attr("type", "view")
        .attr("id", id.to_owned())
        .children([Node::builder("list")
            .children(server_ids.iter().map(|s| {
                Node::builder("item")
                    .attr("server_id", s.to_string())
                    .build()
            }))
            .build()])
        .build()
}

/// One `<message server_id ..>` of a fetch reply or live update.
///
/// # Errors
/// [`Error::Malformed`] when `server_id` is missing or not a number.
pub fn parse_message(node: &Node) -> Result<NewsletterMessage, Error> {
    let server_id: u64 = node
        .attr_opt::<u64>("server_id")
        .map_err(|_| Error::Malformed("channel message server_id is not a number"))?
        .or_else(|| node.attr_opt::<u64>("message_id").ok().flatten())
        .ok_or_else(|| Error::Malformed("channel message without server_id"))?;
    let mut out = NewsletterMessage {
        server_id,
        id: node.attr_opt::<String>("id").ok().flatten(),
        kind: node.attr_opt::<String>("type").ok().flatten(),
        timestamp: node.attr_opt::<u64>("t").ok().flatten().unwrap_or(0),
        views: None,
        reactions: Vec::new(),
        message: None,
    };
    for c in node.children() {
        match c.tag() {
            "plaintext" => {
                out.message = c
                    .content_bytes()
                    .and_then(|b| wa_proto::e2e::Message::decode(b).ok())
                    .map(Box::new);
            }
            "views_count" => out.views = c.attr_opt::<u64>("count").ok().flatten(),
            "reactions" => {
                for r in c.children_by_tag("reaction").take(MAX_REACTIONS) {
                    if let (Ok(code), Ok(count)) =
                        (r.attr::<String>("code"), r.attr::<u64>("count"))
                    {
                        out.reactions.push((code, count));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The `<message>` children of a `<messages>` (or `<message_updates>`) node, at most
/// [`MAX_MESSAGES`]; entries without a valid server id are skipped.
pub fn parse_messages(node: &Node) -> Vec<NewsletterMessage> {
    node.children_by_tag("message")
        .take(MAX_MESSAGES)
        .filter_map(|m| parse_message(m).ok())
        .collect()
}

/// A post delivered as `<message from="..@newsletter" server_id id t type><plaintext>`
/// (to devices subscribed to the channel's live updates).
///
/// # Errors
/// [`Error::Malformed`] when `from` is not a channel or the message has no valid
/// `server_id`.
pub fn parse_post(node: &Node) -> Result<NewsletterUpdate, Error> {
    let channel = node
        .attr_opt::<Jid>("from")
        .ok()
        .flatten()
        .filter(Jid::is_newsletter)
        .ok_or_else(|| Error::Malformed("channel message not from a channel"))?;
    Ok(NewsletterUpdate {
        id: channel,
        author: None,
        change: NewsletterChange::Message(parse_message(node)?),
    })
}

/// The messages of a fetch reply: `<iq><messages>..` or
/// `<iq><message_updates><messages>..`.
///
/// # Errors
/// [`Error::Malformed`] when there is no `<messages>` element.
pub fn parse_messages_reply(reply: &Node) -> Result<Vec<NewsletterMessage>, Error> {
    let list = reply
        .child("messages")
        .or_else(|| reply.child_by_path(&["message_updates", "messages"]))
        .or_else(|| reply.child("message_updates"))
        .ok_or_else(|| Error::Malformed("reply without messages"))?;
    Ok(parse_messages(list))
}

/// Mute state names `ON` / `OFF` (any case).
fn mute_of(v: &Value) -> Option<bool> {
    v.as_str().map(|m| m.eq_ignore_ascii_case("on"))
}

/// A `<notification type="newsletter">` (posts, reactions, views, participants,
/// settings, live updates) or `<notification type="mex">` (follow, unfollow, mute,
/// settings changes) as channel updates. A mex notification about something other
/// than channels gives an empty list.
///
/// # Errors
/// [`Error::Malformed`] when a newsletter notification has no channel `from`, or a mex
/// notification has no update or no JSON.
pub fn parse_notification(node: &Node) -> Result<Vec<NewsletterUpdate>, Error> {
    match node.attr_opt::<&str>("type").ok().flatten() {
        Some("newsletter") => parse_newsletter_notification(node),
        Some("mex") => parse_mex_notification(node),
        _ => Err(Error::Malformed("not a channel notification")),
    }
}

fn parse_newsletter_notification(node: &Node) -> Result<Vec<NewsletterUpdate>, Error> {
    let from: Jid = node
        .attr("from")
        .map_err(|_| Error::Malformed("channel notification without from"))?;
    if !from.is_newsletter() {
        return Err(Error::Malformed("channel notification not from a channel"));
    }
    let author = node.attr_opt::<Jid>("participant").ok().flatten();
    let t = node.attr_opt::<u64>("t").ok().flatten().unwrap_or(0);
    let mut out = Vec::new();
    let mut push = |change| {
        if out.len() < MAX_UPDATES {
            out.push(NewsletterUpdate {
                id: from.clone(),
                author: author.clone(),
                change,
            });
        }
    };
    for c in node.children() {
        match c.tag() {
            "live_updates" => {
                let list = c.child("messages").unwrap_or(c);
                for mut m in parse_messages(list) {
                    if m.timestamp == 0 {
                        m.timestamp = t;
                    }
                    push(NewsletterChange::Message(m));
                }
            }
            "message" => {
                if let Ok(mut m) = parse_message(c) {
                    if m.timestamp == 0 {
                        m.timestamp = t;
                    }
                    push(NewsletterChange::Message(m));
                }
            }
            "reaction" => {
                let Some(server_id) = c.attr_opt::<u64>("message_id").ok().flatten() else {
                    continue;
                };
                let code = c
                    .attr_opt::<String>("code")
                    .ok()
                    .flatten()
                    .or_else(|| {
                        c.child("reaction")
                            .and_then(Node::content_bytes)
                            .map(|b| String::from_utf8_lossy(b).into_owned())
                    })
                    .unwrap_or_default();
                push(NewsletterChange::Reaction {
                    server_id,
                    code,
                    count: c.attr_opt::<u64>("count").ok().flatten(),
                });
            }
            "view" => {
                let Some(server_id) = c.attr_opt::<u64>("message_id").ok().flatten() else {
                    continue;
                };
                let count = c
                    .content_bytes()
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(|s| s.trim().parse().ok())
                    .or_else(|| c.attr_opt::<u64>("count").ok().flatten())
                    .unwrap_or(0);
                push(NewsletterChange::Views { server_id, count });
            }
            "participant" => {
                let (Ok(user), Ok(action)) = (c.attr::<Jid>("jid"), c.attr::<String>("action"))
                else {
                    continue;
                };
                let role = c
                    .attr_opt::<&str>("role")
                    .ok()
                    .flatten()
                    .and_then(NewsletterRole::from_name);
                push(NewsletterChange::Participant { user, action, role });
            }
            "update" => {
                if let Some(s) = c.child("settings") {
                    let text = |k: &str| {
                        s.child(k)
                            .and_then(Node::content_bytes)
                            .map(|b| String::from_utf8_lossy(b).into_owned())
                    };
                    let (name, description) = (text("name"), text("description"));
                    if name.is_some() || description.is_some() {
                        push(NewsletterChange::Settings { name, description });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn parse_mex_notification(node: &Node) -> Result<Vec<NewsletterUpdate>, Error> {
    let update = node
        .child("update")
        .or_else(|| node.child("mex"))
        .ok_or_else(|| Error::Malformed("mex notification without update"))?;
    let body = update
        .content_bytes()
        .ok_or_else(|| Error::Malformed("mex notification without body"))?;
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| Error::Malformed("mex notification is not JSON"))?;
    let author = node.attr_opt::<Jid>("participant").ok().flatten();
    let mut out = Vec::new();
    let jid_of = |x: &Value, key: &str| -> Option<Jid> {
        x.get(key)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Jid>().ok())
            .filter(Jid::is_newsletter)
    };
    let mut push = |id: Jid, change| {
        if out.len() < MAX_UPDATES {
            out.push(NewsletterUpdate {
                id,
                author: author.clone(),
                change,
            });
        }
    };
    // The GraphQL-style payload: `{"data": {"xwa2_notify_newsletter_on_..": {..}}}`.
    if let Some(data) = v.get("data").and_then(Value::as_object) {
        for (key, x) in data.iter().take(MAX_UPDATES) {
            let Some(id) = jid_of(x, "id") else {
                continue;
            };
            match key.as_str() {
                "xwa2_notify_newsletter_on_join" => {
                    let role = x
                        .pointer("/viewer_metadata/role")
                        .and_then(Value::as_str)
                        .and_then(NewsletterRole::from_name);
                    push(id, NewsletterChange::Joined { role });
                }
                "xwa2_notify_newsletter_on_leave" => push(id, NewsletterChange::Left),
                "xwa2_notify_newsletter_on_mute_change" => {
                    if let Some(m) = x.get("mute").and_then(mute_of) {
                        push(id, NewsletterChange::Muted(m));
                    }
                }
                "xwa2_notify_newsletter_on_metadata_update"
                | "xwa2_notify_newsletter_on_admin_metadata_update" => {
                    let t = x.get("thread_metadata");
                    let name = text_of(t.and_then(|t| t.get("name")));
                    let description = text_of(t.and_then(|t| t.get("description")));
                    if name.is_some() || description.is_some() {
                        push(id, NewsletterChange::Settings { name, description });
                    }
                }
                _ => {}
            }
        }
    }
    // The older payload: `{"operation": .., "updates": [{"jid", "settings"}]}`.
    let operation = v
        .get("operation")
        .and_then(Value::as_str)
        .or_else(|| update.attr_opt::<&str>("op_name").ok().flatten());
    if let (Some(op), Some(updates)) = (operation, v.get("updates").and_then(Value::as_array)) {
        for u in updates.iter().take(MAX_UPDATES) {
            let Some(id) = jid_of(u, "jid") else {
                continue;
            };
            match op {
                "NotificationNewsletterUpdate" => {
                    let s = u.get("settings");
                    let name = text_of(s.and_then(|s| s.get("name")));
                    let description = text_of(s.and_then(|s| s.get("description")));
                    if name.is_some() || description.is_some() {
                        push(id, NewsletterChange::Settings { name, description });
                    }
                }
                "NotificationNewsletterAdminPromote" | "NotificationNewsletterAdminDemote" => {
                    let Some(user) = u
                        .get("user")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse::<Jid>().ok())
                    else {
                        continue;
                    };
                    let promote = op.ends_with("Promote");
                    push(
                        id,
                        NewsletterChange::Participant {
                            user,
                            action: if promote { "promote" } else { "demote" }.to_owned(),
                            role: Some(if promote {
                                NewsletterRole::Admin
                            } else {
                                NewsletterRole::Subscriber
                            }),
                        },
                    );
                }
                _ => {}
            }
        }
    }
    Ok(out)
}
