//! Sans-IO parsers for the replies and incoming stanzas of this layer. Every function
//! takes a decoded [`Node`] and returns a typed value or [`Error::Malformed`]; none
//! panics, and every list read is bounded.

use wa_binary::{Jid, Node, Server};
use wa_types::{
    BlocklistChange, BlocklistUpdate, ChatState, ChatStateUpdate, PictureUpdate, PresenceUpdate,
    PrivacySetting, PrivacySettings, PrivacyValue, StatusPrivacy, StatusPrivacyKind, UserAbout,
};

use crate::Error;

/// Most entries read from a blocklist reply or notification.
pub const MAX_BLOCKLIST: usize = 10_000;
/// Most privacy categories read from a reply.
pub const MAX_PRIVACY_CATEGORIES: usize = 64;
/// Most `<list>`s read from a status-privacy reply.
pub const MAX_STATUS_PRIVACY_LISTS: usize = 16;
/// Most users read from one status-privacy `<list>`.
pub const MAX_STATUS_PRIVACY_USERS: usize = 10_000;
/// Longest status text accepted from a reply, in bytes.
pub const MAX_STATUS_LEN: usize = 4096;
/// Most changes read from one picture notification.
pub const MAX_PICTURE_CHANGES: usize = 64;
/// Longest profile-picture id accepted, in bytes.
pub const MAX_PICTURE_ID_LEN: usize = 128;
/// Longest profile-picture URL or direct path accepted from a reply, in bytes.
pub const MAX_URL_LEN: usize = 4096;
/// Longest profile-picture `hash` attribute accepted (base64), in bytes.
pub const MAX_PICTURE_HASH_LEN: usize = 256;

/// A user's status text ("about").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserStatus {
    /// The text; empty when the user hides it from us.
    pub text: String,
    /// When it was set (unix seconds), when the server said.
    pub set_at: Option<u64>,
}

/// One of the AI bots the server offers (Baileys' `getBotListV2`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BotInfo {
    /// The bot's JID.
    pub jid: Jid,
    /// Its persona id, when the server gave one.
    pub persona_id: Option<String>,
}

impl BotInfo {
    /// A bot by its JID and persona id (as [`Chats::bots`](crate::Chats::bots) lists them).
    pub fn new(jid: Jid, persona_id: Option<String>) -> Self {
        Self { jid, persona_id }
    }
}

/// A bot's profile (usync's `bot` protocol; Baileys' `USyncBotProfileProtocol`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BotProfile {
    /// The bot's JID.
    pub jid: Jid,
    /// Its persona id.
    pub persona_id: Option<String>,
    /// Its name.
    pub name: Option<String>,
    /// Its attributes line (e.g. "Powered by Llama").
    pub attributes: Option<String>,
    /// What it does.
    pub description: Option<String>,
    /// Its category.
    pub category: Option<String>,
    /// Whether it is the default bot.
    pub is_default: bool,
    /// The heading of its command list.
    pub commands_description: Option<String>,
    /// Its commands: name and description.
    pub commands: Vec<(String, Option<String>)>,
    /// Suggested prompts, each its emoji and text joined by a space.
    pub prompts: Vec<String>,
}

/// Most commands or prompts read for one bot.
pub const MAX_BOT_ITEMS: usize = 256;
/// The longest text field read from a bot profile, in bytes.
const MAX_BOT_TEXT: usize = 4096;

/// A child's text content, bounded.
fn child_text(node: &Node, tag: &str) -> Result<Option<String>, Error> {
    let Some(bytes) = node.child(tag).and_then(Node::content_bytes) else {
        return Ok(None);
    };
    if bytes.len() > MAX_BOT_TEXT {
        return Err(Error::Malformed("bot profile text too long"));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// Reads `jid`'s bot profile from a usync reply with the `bot` protocol (`<user
/// jid><bot><profile persona_id>` with `name`, `attributes`, `description`, `category`,
/// `default`, `commands` and `prompts`). `Ok(None)` when the user or its profile is
/// absent.
///
/// # Errors
/// [`Error::Malformed`] without `<usync><list>`, for more than [`MAX_BOT_ITEMS`]
/// commands or prompts, or over-long texts.
pub fn parse_bot_profile(reply: &Node, jid: &Jid) -> Result<Option<BotProfile>, Error> {
    let Some(user) = usync_user(reply, jid)? else {
        return Ok(None);
    };
    let Some(profile) = user.child_by_path(&["bot", "profile"]) else {
        return Ok(None);
    };
    let mut out = BotProfile {
        jid: jid.to_non_ad(),
        persona_id: short_str(profile, "persona_id", 256)?,
        name: child_text(profile, "name")?,
        attributes: child_text(profile, "attributes")?,
        description: child_text(profile, "description")?,
        category: child_text(profile, "category")?,
        is_default: profile.child("default").is_some(),
        commands_description: None,
        commands: Vec::new(),
        prompts: Vec::new(),
    };
    if let Some(commands) = profile.child("commands") {
        out.commands_description = child_text(commands, "description")?;
        for c in commands.children_by_tag("command") {
            if out.commands.len() >= MAX_BOT_ITEMS {
                return Err(Error::Malformed("too many bot commands"));
            }
            let name = child_text(c, "name")?.unwrap_or_default();
            out.commands.push((name, child_text(c, "description")?));
        }
    }
    if let Some(prompts) = profile.child("prompts") {
        for p in prompts.children_by_tag("prompt") {
            if out.prompts.len() >= MAX_BOT_ITEMS {
                return Err(Error::Malformed("too many bot prompts"));
            }
            let emoji = child_text(p, "emoji")?.unwrap_or_default();
            let text = child_text(p, "text")?.unwrap_or_default();
            out.prompts.push(format!("{emoji} {text}"));
        }
    }
    Ok(Some(out))
}

/// Most bots read from one reply.
pub const MAX_BOTS: usize = 1_000;

/// Reads the reply to `<iq xmlns="bot" type="get"><bot v="2"/>`: the bots of the
/// `<section type="all">` sections of `<bot>`.
///
/// # Errors
/// [`Error::Malformed`] for more than [`MAX_BOTS`] bots, a bot without a JID or an
/// over-long persona id.
pub fn parse_bot_list(reply: &Node) -> Result<Vec<BotInfo>, Error> {
    let Some(bot) = reply.child("bot") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for section in bot.children_by_tag("section") {
        if section.attr_opt::<&str>("type").ok().flatten() != Some("all") {
            continue;
        }
        for b in section.children_by_tag("bot") {
            if out.len() >= MAX_BOTS {
                return Err(Error::Malformed("too many bots"));
            }
            let jid = b
                .attr::<Jid>("jid")
                .map_err(|_| Error::Malformed("bot without jid"))?;
            let persona_id = short_str(b, "persona_id", 256)?;
            out.push(BotInfo { jid, persona_id });
        }
    }
    Ok(out)
}

/// Where to download a profile picture.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfilePicture {
    /// The picture's id (changes with every new picture).
    pub id: String,
    /// The download URL.
    pub url: String,
    /// The media direct path, when given.
    pub direct_path: Option<String>,
    /// `image` (full size) or `preview` (thumbnail), as the server answered.
    pub kind: Option<String>,
}

fn short_str(node: &Node, key: &str, max: usize) -> Result<Option<String>, Error> {
    match node.attr_opt::<&str>(key) {
        Ok(Some(s)) if s.len() <= max => Ok(Some(s.to_owned())),
        Ok(Some(_)) => Err(Error::Malformed("attribute too long")),
        Ok(None) => Ok(None),
        Err(_) => Err(Error::Malformed("attribute is not a string")),
    }
}

fn unix_attr(node: &Node, key: &str) -> Result<Option<u64>, Error> {
    match node.attr_opt::<&str>(key) {
        Ok(None) => Ok(None),
        Ok(Some(s)) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Error::Malformed("timestamp is not a number")),
        Err(_) => Err(Error::Malformed("timestamp is not a string")),
    }
}

/// Reads an incoming `<presence from type [last]>`.
///
/// # Errors
/// [`Error::Malformed`] for a missing or non-JID `from`, an unknown `type` or a `last`
/// that is neither a number nor `deny`.
pub fn parse_presence(node: &Node) -> Result<PresenceUpdate, Error> {
    if node.tag() != "presence" {
        return Err(Error::Malformed("not a presence stanza"));
    }
    let from = node
        .attr::<Jid>("from")
        .map_err(|_| Error::Malformed("presence without from"))?;
    let available = match node.attr_opt::<&str>("type") {
        Ok(None | Some("available")) => true,
        Ok(Some("unavailable")) => false,
        _ => return Err(Error::Malformed("unknown presence type")),
    };
    let last_seen = match node.attr_opt::<&str>("last") {
        Ok(None | Some("deny" | "")) => None,
        Ok(Some(s)) => Some(
            s.parse::<u64>()
                .map_err(|_| Error::Malformed("presence last is not a number"))?,
        ),
        Err(_) => return Err(Error::Malformed("presence last is not a string")),
    };
    Ok(PresenceUpdate::new(from.to_non_ad(), available, last_seen))
}

/// Reads an incoming `<chatstate from [participant]><composing [media=audio]/>|<paused/>`.
///
/// # Errors
/// [`Error::Malformed`] for a missing `from`, a non-JID `participant` or an unknown or
/// missing state child.
pub fn parse_chat_state(node: &Node) -> Result<ChatStateUpdate, Error> {
    if node.tag() != "chatstate" {
        return Err(Error::Malformed("not a chatstate stanza"));
    }
    let chat = node
        .attr::<Jid>("from")
        .map_err(|_| Error::Malformed("chatstate without from"))?
        .to_non_ad();
    let sender = match node.attr_opt::<Jid>("participant") {
        Ok(Some(p)) => p.to_non_ad(),
        Ok(None) => chat.clone(),
        Err(_) => return Err(Error::Malformed("chatstate participant is not a jid")),
    };
    let child = node
        .children()
        .first()
        .ok_or_else(|| Error::Malformed("chatstate without state"))?;
    let state = match child.tag() {
        "composing" => match child.attr_opt::<&str>("media") {
            Ok(Some("audio")) => ChatState::Recording,
            Ok(_) => ChatState::Composing,
            Err(_) => return Err(Error::Malformed("chatstate media is not a string")),
        },
        "paused" => ChatState::Paused,
        _ => return Err(Error::Malformed("unknown chat state")),
    };
    Ok(ChatStateUpdate::new(chat, sender, state))
}

/// Reads the reply to `<iq xmlns=privacy type=get><privacy/>`, or an `account_sync`
/// notification's change: `<privacy><category name value/>..`. Categories this crate
/// does not know are skipped.
///
/// # Errors
/// [`Error::Malformed`] without `<privacy>`, with more than
/// [`MAX_PRIVACY_CATEGORIES`] categories, a category without name or value, or an
/// unknown value for a known category.
pub fn parse_privacy(reply: &Node) -> Result<PrivacySettings, Error> {
    let privacy = reply
        .child("privacy")
        .ok_or_else(|| Error::Malformed("reply without privacy"))?;
    if privacy.children().len() > MAX_PRIVACY_CATEGORIES {
        return Err(Error::Malformed("too many privacy categories"));
    }
    let mut out = PrivacySettings::default();
    for cat in privacy.children_by_tag("category") {
        let name = cat
            .attr::<&str>("name")
            .map_err(|_| Error::Malformed("category without name"))?;
        let value = cat
            .attr::<&str>("value")
            .map_err(|_| Error::Malformed("category without value"))?;
        let Some(setting) = PrivacySetting::from_wire(name) else {
            continue;
        };
        let value = PrivacyValue::from_wire(value)
            .ok_or_else(|| Error::Malformed("unknown privacy value"))?;
        out.set(setting, value);
    }
    Ok(out)
}

/// Reads the reply to `<iq xmlns="status" type="get"><privacy/></iq>`: `<privacy><list
/// type="contacts|blacklist|whitelist" [default="true"]><user jid/>..</list>..</privacy>`.
///
/// The list marked default (the one in force; the first such when several claim it) comes
/// first (later lists claiming it too are reported as not default), the others follow in
/// reply order. A `<privacy>` without lists means the account
/// never chose: one default [`StatusPrivacyKind::Contacts`] list. Children other than
/// `<list>` (and, inside a list, other than `<user>`) are skipped, and so is a non-default
/// list of a type this crate does not know; users are read without their device part.
///
/// # Errors
/// [`Error::Malformed`] without `<privacy>`, with more than [`MAX_STATUS_PRIVACY_LISTS`]
/// children, a list without `type`, a list with more than [`MAX_STATUS_PRIVACY_USERS`]
/// children, a `<user>` without a JID, or a default list of an unknown type (the audience
/// in force would be unknown, so nothing is guessed).
pub fn parse_status_privacy(reply: &Node) -> Result<Vec<StatusPrivacy>, Error> {
    let privacy = reply
        .child("privacy")
        .ok_or_else(|| Error::Malformed("reply without privacy"))?;
    if privacy.children().len() > MAX_STATUS_PRIVACY_LISTS {
        return Err(Error::Malformed("too many status privacy lists"));
    }
    let mut out: Vec<StatusPrivacy> = Vec::new();
    let mut have_default = false;
    for list in privacy.children_by_tag("list") {
        let kind = list
            .attr::<&str>("type")
            .map_err(|_| Error::Malformed("status privacy list without type"))?;
        let is_default = matches!(list.attr_opt::<&str>("default"), Ok(Some("true")));
        let Some(kind) = StatusPrivacyKind::from_wire(kind) else {
            if is_default {
                return Err(Error::Malformed("unknown default status privacy type"));
            }
            tracing::debug!("skipped status privacy list of unknown type {kind:?}");
            continue;
        };
        if list.children().len() > MAX_STATUS_PRIVACY_USERS {
            return Err(Error::Malformed("status privacy list too long"));
        }
        let users = list
            .children_by_tag("user")
            .map(|u| {
                u.attr::<Jid>("jid")
                    .map(|j| j.to_non_ad())
                    .map_err(|_| Error::Malformed("status privacy user without jid"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let entry = StatusPrivacy::new(kind, users, is_default && !have_default);
        if entry.is_default {
            have_default = true;
            out.insert(0, entry);
        } else {
            out.push(entry);
        }
    }
    if out.is_empty() {
        out.push(StatusPrivacy::default_contacts());
    }
    Ok(out)
}

/// Reads the reply to `<iq xmlns=blocklist type=get/>`: `<list><item jid/>..</list>`
/// (no `<list>` means an empty blocklist).
///
/// # Errors
/// [`Error::Malformed`] for an item without a JID or more than [`MAX_BLOCKLIST`] items.
pub fn parse_blocklist(reply: &Node) -> Result<Vec<Jid>, Error> {
    let Some(list) = reply.child("list") else {
        return Ok(Vec::new());
    };
    if list.children().len() > MAX_BLOCKLIST {
        return Err(Error::Malformed("blocklist too long"));
    }
    list.children_by_tag("item")
        .map(|i| {
            i.attr::<Jid>("jid")
                .map(|j| j.to_non_ad())
                .map_err(|_| Error::Malformed("blocklist item without jid"))
        })
        .collect()
}

/// Reads the `<blocklist dhash [action]><item jid action=block|unblock/>..` child of an
/// `account_sync` notification; `Ok(None)` when the notification carries no blocklist.
///
/// # Errors
/// [`Error::Malformed`] for an item without JID, an unknown item action or more than
/// [`MAX_BLOCKLIST`] items.
pub fn parse_blocklist_notification(node: &Node) -> Result<Option<BlocklistUpdate>, Error> {
    let Some(bl) = node.child("blocklist") else {
        return Ok(None);
    };
    if bl.children().len() > MAX_BLOCKLIST {
        return Err(Error::Malformed("blocklist notification too long"));
    }
    let dhash = short_str(bl, "dhash", 256)?;
    let default_action = bl.attr_opt::<&str>("action").ok().flatten();
    let mut changes = Vec::new();
    for item in bl.children_by_tag("item") {
        let jid = item
            .attr::<Jid>("jid")
            .map_err(|_| Error::Malformed("blocklist item without jid"))?;
        let action = item
            .attr_opt::<&str>("action")
            .ok()
            .flatten()
            .or(default_action);
        let blocked = match action {
            Some("block") => true,
            Some("unblock") => false,
            _ => return Err(Error::Malformed("unknown blocklist action")),
        };
        changes.push(BlocklistChange::new(jid.to_non_ad(), blocked));
    }
    Ok(Some(BlocklistUpdate::new(changes, dhash)))
}

/// Reads a `<notification type="picture" [t]>`: one [`PictureUpdate`] per `<set jid id
/// [author]>` or `<add ..>` (a new picture) and `<delete jid [author]>` (removed). Other
/// children are skipped, as whatsmeow skips them.
///
/// # Errors
/// [`Error::Malformed`] for a change without a JID, a new picture without an id,
/// over-long ids, a time that is not a number, or more than [`MAX_PICTURE_CHANGES`]
/// children.
pub fn parse_picture_notification(node: &Node) -> Result<Vec<PictureUpdate>, Error> {
    if node.children().len() > MAX_PICTURE_CHANGES {
        return Err(Error::Malformed("picture notification too long"));
    }
    let t = unix_attr(node, "t")?.unwrap_or(0);
    let mut out = Vec::new();
    for child in node.children() {
        let removed = match child.tag() {
            "set" | "add" => false,
            "delete" => true,
            _ => continue,
        };
        let jid = child
            .attr::<Jid>("jid")
            .map_err(|_| Error::Malformed("picture change without jid"))?;
        let author = child.attr_opt::<Jid>("author").ok().flatten();
        let update = if removed {
            PictureUpdate::removed(jid)
        } else {
            let id = short_str(child, "id", MAX_PICTURE_ID_LEN)?
                .ok_or_else(|| Error::Malformed("new picture without id"))?;
            PictureUpdate::set(jid, id)
        };
        out.push(update.by(author, t));
    }
    Ok(out)
}

/// Reads the reply to a profile-picture URL query: `<picture id url [direct_path]
/// [type]/>`; `Ok(None)` when the reply has no `<picture>` or one without a URL.
///
/// # Errors
/// [`Error::Malformed`] for a picture without id or with over-long attributes.
pub fn parse_picture(reply: &Node) -> Result<Option<ProfilePicture>, Error> {
    let Some(pic) = reply.child("picture") else {
        return Ok(None);
    };
    let Some(url) = short_str(pic, "url", MAX_URL_LEN)? else {
        return Ok(None);
    };
    let id = short_str(pic, "id", 128)?.ok_or_else(|| Error::Malformed("picture without id"))?;
    Ok(Some(ProfilePicture {
        id,
        url,
        direct_path: short_str(pic, "direct_path", MAX_URL_LEN)?,
        kind: short_str(pic, "type", 32)?,
    }))
}

/// Everything a profile-picture lookup tells about a picture (whatsmeow's
/// `types.ProfilePictureInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfilePictureInfo {
    /// The picture's id (changes with every new picture; pass it back as
    /// `ProfilePictureParams::existing_id` to be told when it did not change).
    pub id: String,
    /// The download URL.
    pub url: String,
    /// `image` (full size) or `preview` (thumbnail), as the server answered.
    pub kind: Option<String>,
    /// The media direct path, when given.
    pub direct_path: Option<String>,
    /// The server's `hash` of the picture, base64-decoded, when given (and valid
    /// base64).
    pub hash: Option<Vec<u8>>,
}

impl From<ProfilePictureInfo> for ProfilePicture {
    fn from(p: ProfilePictureInfo) -> Self {
        Self {
            id: p.id,
            url: p.url,
            direct_path: p.direct_path,
            kind: p.kind,
        }
    }
}

/// The answer to a profile-picture lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PictureLookup {
    /// The picture, where to download it.
    Found(ProfilePictureInfo),
    /// The picture is still the one whose id was given as `existing_id` (no
    /// `<picture>` in the reply, or `<picture status="304">`).
    Unchanged,
    /// There is no picture (404, `<picture status="204">`, or a picture without URL).
    NotSet,
}

/// Reads the reply to a profile-picture URL query, as whatsmeow's
/// `GetProfilePictureInfo` does: `<picture id url [type] [direct_path] [hash]>`, inside
/// `<pictures>` when `community` (the `w:g2` shape). Without `<picture>` the picture is
/// [`PictureLookup::Unchanged`] when `existing_id` was asked, else
/// [`PictureLookup::NotSet`]; `status="304"` is unchanged and `status="204"` not set.
///
/// # Errors
/// [`Error::Malformed`] for a community reply without `<pictures>`, a picture without
/// id, a non-numeric `status` or over-long attributes.
pub fn parse_picture_info(
    reply: &Node,
    existing_id: bool,
    community: bool,
) -> Result<PictureLookup, Error> {
    let holder = if community {
        reply
            .child("pictures")
            .ok_or_else(|| Error::Malformed("community picture reply without pictures"))?
    } else {
        reply
    };
    let Some(pic) = holder.child("picture") else {
        return Ok(if existing_id {
            PictureLookup::Unchanged
        } else {
            PictureLookup::NotSet
        });
    };
    match pic.attr_opt::<&str>("status") {
        Ok(None) => {}
        Ok(Some("304")) => return Ok(PictureLookup::Unchanged),
        Ok(Some("204")) => return Ok(PictureLookup::NotSet),
        Ok(Some(s)) if s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit()) => {}
        _ => return Err(Error::Malformed("picture status is not a number")),
    }
    let Some(url) = short_str(pic, "url", MAX_URL_LEN)? else {
        return Ok(PictureLookup::NotSet);
    };
    let id = short_str(pic, "id", MAX_PICTURE_ID_LEN)?
        .ok_or_else(|| Error::Malformed("picture without id"))?;
    let hash = short_str(pic, "hash", MAX_PICTURE_HASH_LEN)?.and_then(|h| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(h).ok()
    });
    Ok(PictureLookup::Found(ProfilePictureInfo {
        id,
        url,
        kind: short_str(pic, "type", 32)?,
        direct_path: short_str(pic, "direct_path", MAX_URL_LEN)?,
        hash,
    }))
}

/// Reads a `<notification type="status" from [t]><set>text</set></notification>` (a
/// user's new about text), as whatsmeow's `handleStatusNotification` does; `Ok(None)`
/// when it has no `<set>` (whatsmeow ignores those).
///
/// # Errors
/// [`Error::Malformed`] for a missing or non-user `from`, a time that is not a number,
/// or a text that is not UTF-8 or longer than [`MAX_STATUS_LEN`].
pub fn parse_about_notification(node: &Node) -> Result<Option<UserAbout>, Error> {
    let jid = node
        .attr::<Jid>("from")
        .map_err(|_| Error::Malformed("status notification without from"))?;
    if jid.is_group() || jid.is_newsletter() {
        return Err(Error::Malformed("status notification not from a user"));
    }
    let Some(set) = node.child("set") else {
        return Ok(None);
    };
    let t = unix_attr(node, "t")?.unwrap_or(0);
    if !set.children().is_empty() {
        return Err(Error::Malformed("status set holds elements, not text"));
    }
    let raw = set.content_bytes().unwrap_or_default();
    if raw.len() > MAX_STATUS_LEN {
        return Err(Error::Malformed("status text too long"));
    }
    let text = std::str::from_utf8(raw).map_err(|_| Error::Malformed("status is not UTF-8"))?;
    Ok(Some(UserAbout::new(jid.to_non_ad(), text, t)))
}

/// Reads the reply to setting a profile picture: the new picture's id, when given.
///
/// # Errors
/// [`Error::Malformed`] for an over-long id.
pub fn parse_picture_id(reply: &Node) -> Result<Option<String>, Error> {
    match reply.child("picture") {
        Some(p) => short_str(p, "id", 128),
        None => Ok(None),
    }
}

fn usync_user<'a>(reply: &'a Node, jid: &Jid) -> Result<Option<&'a Node>, Error> {
    let list = reply
        .child_by_path(&["usync", "list"])
        .ok_or_else(|| Error::Malformed("usync reply without list"))?;
    let want = jid.to_non_ad();
    Ok(list
        .children_by_tag("user")
        .take(MAX_BLOCKLIST)
        .find(|u| u.attr::<Jid>("jid").is_ok_and(|j| j.to_non_ad() == want)))
}

/// Reads `jid`'s LID from a usync reply with the `lid` protocol: `<user jid><lid
/// val="N@lid"/>`. `Ok(None)` when the user is absent or has none.
///
/// # Errors
/// [`Error::Malformed`] without `<usync><list>`, or for a `val` that is not a LID.
pub fn parse_lid(reply: &Node, jid: &Jid) -> Result<Option<Jid>, Error> {
    let Some(user) = usync_user(reply, jid)? else {
        return Ok(None);
    };
    let Some(val) = user
        .child("lid")
        .and_then(|l| l.attr_opt::<Jid>("val").ok().flatten())
    else {
        return Ok(None);
    };
    if !matches!(val.server, Server::Lid | Server::HostedLid) {
        return Err(Error::Malformed("lid val is not a LID"));
    }
    Ok(Some(val.to_non_ad()))
}

fn check_error(node: &Node) -> Result<(), Error> {
    if let Some(e) = node.child("error") {
        let code = e.attr_opt::<u16>("code").ok().flatten().unwrap_or(0);
        let text = short_str(e, "text", 256)?.unwrap_or_default();
        return Err(Error::Refused { code, text });
    }
    Ok(())
}

/// Reads `jid`'s status from a usync reply with the `status` protocol: `<user jid><status
/// t>text</status>`. `Ok(None)` when the user is absent or has no status; a status hidden
/// from us (`code=401`) is an empty text.
///
/// # Errors
/// [`Error::Malformed`] without `<usync><list>`, for non-UTF-8 or over-long text or a bad
/// timestamp; [`Error::Refused`] for a per-user `<error>`.
pub fn parse_status(reply: &Node, jid: &Jid) -> Result<Option<UserStatus>, Error> {
    let Some(user) = usync_user(reply, jid)? else {
        return Ok(None);
    };
    let Some(status) = user.child("status") else {
        return Ok(None);
    };
    check_error(status)?;
    let set_at = unix_attr(status, "t")?.filter(|t| *t > 0);
    let raw = status.content_bytes().unwrap_or_default();
    if raw.len() > MAX_STATUS_LEN {
        return Err(Error::Malformed("status text too long"));
    }
    let text = std::str::from_utf8(raw).map_err(|_| Error::Malformed("status is not UTF-8"))?;
    if text.is_empty() {
        let hidden = status.attr_opt::<u16>("code").ok().flatten() == Some(401);
        return Ok(hidden.then(|| UserStatus {
            text: String::new(),
            set_at,
        }));
    }
    Ok(Some(UserStatus {
        text: text.to_owned(),
        set_at,
    }))
}

/// Reads `jid`'s default disappearing-messages duration (seconds, 0 = off) from a usync
/// reply with the `disappearing_mode` protocol: `<user jid><disappearing_mode duration
/// t/>`. `Ok(None)` when the user or the element is absent.
///
/// # Errors
/// [`Error::Malformed`] without `<usync><list>` or for a non-numeric duration;
/// [`Error::Refused`] for a per-user `<error>`.
pub fn parse_disappearing_mode(reply: &Node, jid: &Jid) -> Result<Option<u32>, Error> {
    let Some(user) = usync_user(reply, jid)? else {
        return Ok(None);
    };
    let Some(dm) = user.child("disappearing_mode") else {
        return Ok(None);
    };
    check_error(dm)?;
    match dm.attr_opt::<&str>("duration") {
        Ok(None) => Ok(Some(0)),
        Ok(Some(s)) => s
            .parse::<u32>()
            .map(Some)
            .map_err(|_| Error::Malformed("duration is not a number")),
        Err(_) => Err(Error::Malformed("duration is not a string")),
    }
}

#[cfg(test)]
mod bot_tests {
    use super::*;

    #[test]
    fn bots_come_from_the_all_sections() {
        let bot = |jid: &str, persona: Option<&str>| {
            Node::builder("bot")
                .attr("jid", jid.to_owned())
                .attr_opt("persona_id", persona.map(str::to_owned))
                .build()
        };
        let reply = Node::builder("iq")
            .children([Node::builder("bot")
                .attr("v", "2")
                .children([
                    Node::builder("section")
                        .attr("type", "all")
                        .children([bot("867051314767696@bot", Some("1")), bot("111@bot", None)])
                        .build(),
                    Node::builder("section")
                        .attr("type", "featured")
                        .children([bot("222@bot", None)])
                        .build(),
                ])
                .build()])
            .build();
        let bots = parse_bot_list(&reply).unwrap();
        assert_eq!(bots.len(), 2);
        assert_eq!(bots[0].jid.to_string(), "867051314767696@bot");
        assert_eq!(bots[0].persona_id.as_deref(), Some("1"));
        assert_eq!(bots[1].persona_id, None);
        assert!(
            parse_bot_list(&Node::builder("iq").build())
                .unwrap()
                .is_empty()
        );
        let bad = Node::builder("iq")
            .children([Node::builder("bot")
                .children([Node::builder("section")
                    .attr("type", "all")
                    .children([Node::new("bot")])
                    .build()])
                .build()])
            .build();
        assert!(matches!(parse_bot_list(&bad), Err(Error::Malformed(_))));
    }
}
