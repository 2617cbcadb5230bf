//! App-state sync over a socket: fetching and verifying collections, pushing chat
//! modifications, the recovery ladder, and the events decoded actions become.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use rand_core::OsRng;
use tokio::task::AbortHandle;
use wa_appstate::{
    Action, Collection, DecodeOptions, DecodedPatch, HashState, KeyLookup, LabelTarget, Operation,
    OutgoingMutation, append_external_mutations, builders, decode_patch_list, encode_patch,
};
use wa_binary::{Jid, Node};
use wa_media::{Downloadable, Media, MediaType};
use wa_messages::Messenger;
use wa_proto::e2e::{
    AppStateSyncKeyData, AppStateSyncKeyId, AppStateSyncKeyRequest, Message, ProtocolMessage,
    protocol_message,
};
use wa_proto::server_sync::{ExternalBlobReference, SyncdPatch, SyncdSnapshot, SyncdVersion};
use wa_proto::sync_action::status_privacy_action::StatusDistributionMode;
use wa_proto::sync_action::{ContactAction, SyncActionMessage, SyncActionMessageRange};
use wa_socket::{Event, Filter, Socket};
use wa_store::{AppStateStore as _, Batch, ContactStore as _};
use wa_types::{
    AppStateFailure, AppStateRecoveryStep, AppStateSyncError, ChatUpdate, ContactUpdate, Label,
    LabelAssociation, LastMessage, MessageDeletion, MessageKey, MessageRange, StarUpdate,
};
use zeroize::Zeroizing;

use crate::Error;
use crate::status::contact_ops;

mod recovery;
pub use recovery::{fatal_exception_notification, recovery_request};

pub use wa_appstate::builders::MuteUntil;

/// Largest external blob (snapshot or mutations) downloaded, in bytes.
pub const MAX_EXTERNAL_BLOB: u64 = 64 * 1024 * 1024;
/// Most patches taken from one reply.
const MAX_PATCHES_PER_REPLY: usize = 1000;
/// Longest `<patch>` accepted, in bytes.
const MAX_PATCH_BYTES: usize = 4 * 1024 * 1024;
/// How often the store is checked for a requested key.
const KEY_POLL: Duration = Duration::from_millis(100);
/// Events of its kind a listener may fall behind by (key shares and recovery answers
/// come a few at a time).
const LISTENER_CAPACITY: usize = 64;

/// Settings of an [`AppState`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppStateConfig {
    /// Resync the collections a `<notification type="server_sync">` names (on by
    /// default; the notification is acknowledged either way).
    pub resync_on_notification: bool,
    /// When sync keys arrive from the primary device: resync the collections that
    /// waited for a key, and those never synced (on by default).
    pub sync_on_key_share: bool,
    /// How long a sync waits for a requested key before reporting
    /// [`AppStateFailure::MissingKey`].
    pub key_wait: Duration,
    /// Most fetch rounds of one collection in one sync (each round follows
    /// `has_more_patches`).
    pub max_rounds: usize,
    /// Also report this device's own pushed changes as events.
    pub emit_own_events: bool,
    /// Queue of incoming `server_sync` notifications.
    pub queue: usize,
    /// How long [`AppState::recover`] waits for the primary device's answer.
    pub recovery_wait: Duration,
    /// Largest recovery the primary device may send, decompressed (bytes).
    pub max_recovery_len: usize,
}

impl Default for AppStateConfig {
    fn default() -> Self {
        Self {
            resync_on_notification: true,
            sync_on_key_share: true,
            key_wait: Duration::from_secs(10),
            max_rounds: 64,
            emit_own_events: true,
            queue: 64,
            recovery_wait: Duration::from_secs(60),
            max_recovery_len: MAX_EXTERNAL_BLOB as usize,
        }
    }
}

/// A change to a chat (or to account-wide app state) pushed with
/// [`AppState::chat_modify`], as Baileys' `chatModify`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChatModification {
    /// Archive (`true`) or unarchive the chat.
    Archive(bool),
    /// Pin (`true`) or unpin the chat.
    Pin(bool),
    /// Mute the chat until a time, forever, or unmute it.
    Mute(MuteUntil),
    /// Mark the chat read (`true`) or unread.
    MarkRead(bool),
    /// Star or unstar a message of the chat.
    Star {
        /// The message id.
        message_id: String,
        /// Whether we sent it.
        from_me: bool,
        /// Its sender in a group.
        participant: Option<Jid>,
        /// Star (`true`) or unstar.
        starred: bool,
    },
    /// Delete the chat.
    Delete {
        /// Also delete its media.
        delete_media: bool,
    },
    /// Clear the chat's messages.
    Clear {
        /// Keep starred messages.
        keep_starred: bool,
    },
    /// Create, edit or delete a label (the chat JID is not used).
    LabelEdit {
        /// The label id.
        label_id: String,
        /// Its name.
        name: String,
        /// Its colour index.
        color: i32,
        /// Which of WhatsApp's predefined labels (new customer, paid, ...) it is, if one.
        predefined_id: Option<i32>,
        /// Delete it.
        deleted: bool,
    },
    /// Delete a message of the chat for this account only ("delete for me").
    DeleteForMe {
        /// The message id.
        message_id: String,
        /// Whether we sent it.
        from_me: bool,
        /// Its sender in a group, when not ours.
        participant: Option<Jid>,
        /// Delete its media too.
        delete_media: bool,
        /// The message's own timestamp (unix seconds), when known.
        message_timestamp: Option<i64>,
    },
    /// Add (`labeled`) or remove a label on the chat.
    ChatLabel {
        /// The label id.
        label_id: String,
        /// Add (`true`) or remove.
        labeled: bool,
    },
    /// Add or remove a label on a message of the chat.
    MessageLabel {
        /// The label id.
        label_id: String,
        /// The message id.
        message_id: String,
        /// Add (`true`) or remove.
        labeled: bool,
    },
    /// Save the chat's user as an address-book contact (`Some`), or remove it (`None`).
    Contact(Option<ContactName>),
    /// Set this account's push name (the chat JID is not used).
    PushName(String),
    /// Turn link previews off (`true`) or on for this account (the chat JID is not
    /// used).
    DisableLinkPreviews(bool),
    /// Who sees this account's status updates, synced to its other devices as
    /// WhatsApp Web syncs it (the chat JID is not used): every contact, all but
    /// `users`, or only `users`. What the server's status privacy answer says
    /// ([`Chats::status_privacy`](crate::Chats::status_privacy)) is the server's.
    StatusPrivacy {
        /// How the audience is chosen.
        mode: StatusDistributionMode,
        /// The users the mode's list names.
        users: Vec<Jid>,
    },
    /// Create, edit (same `id`) or delete a business quick reply (the chat JID is not
    /// used), as Baileys' `quickReply`.
    QuickReply {
        /// Names the reply; a new one gets the current unix time in seconds when empty.
        id: String,
        /// What is typed after `/` to pick it.
        shortcut: String,
        /// The text it inserts.
        message: String,
        /// Keywords it is found by.
        keywords: Vec<String>,
        /// Delete it.
        deleted: bool,
    },
}

/// An address-book contact as app-state sync stores it (`ContactAction`): its names and,
/// as the apps record them, its other address, username and whether the phone's own
/// address book keeps it too.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ContactName {
    /// Full name.
    pub full_name: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// The contact's LID (`lidJid`).
    pub lid: Option<Jid>,
    /// The contact's phone-number JID (`pnJid`).
    pub pn: Option<Jid>,
    /// The contact's username.
    pub username: Option<String>,
    /// Whether the primary phone saves it in its own address book too.
    pub save_on_primary_addressbook: Option<bool>,
}

impl ContactName {
    /// A contact with a full and a first name.
    pub fn new(full_name: impl Into<String>, first_name: Option<String>) -> Self {
        Self {
            full_name: Some(full_name.into()),
            first_name,
            ..Self::default()
        }
    }

    /// The same contact with its LID and phone-number JIDs.
    #[must_use]
    pub fn with_addresses(mut self, lid: Option<Jid>, pn: Option<Jid>) -> Self {
        self.lid = lid.map(|j| j.to_non_ad());
        self.pn = pn.map(|j| j.to_non_ad());
        self
    }

    /// The same contact with a username.
    #[must_use]
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The same contact, saved (or not) in the primary phone's address book too.
    #[must_use]
    pub fn save_on_primary_addressbook(mut self, save: bool) -> Self {
        self.save_on_primary_addressbook = Some(save);
        self
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Most messages of one message range carried into an event.
const MAX_RANGE_MESSAGES: usize = 256;

/// A received message range as the event reports it: keys that do not parse are left
/// out.
fn range_of(r: &SyncActionMessageRange) -> MessageRange {
    let mut out = MessageRange::default();
    out.last_message_timestamp = r.last_message_timestamp;
    out.last_system_message_timestamp = r.last_system_message_timestamp;
    out.messages = r
        .messages
        .iter()
        .take(MAX_RANGE_MESSAGES)
        .filter_map(|m| {
            let k = m.key.as_ref()?;
            let chat: Jid = k.remote_jid.as_deref()?.parse().ok()?;
            let mut key = MessageKey::new(chat, k.from_me.unwrap_or(false), k.id.clone()?);
            if let Some(p) = k.participant.as_deref().and_then(|p| p.parse().ok()) {
                key = key.with_participant(p);
            }
            Some(LastMessage::new(key, m.timestamp.unwrap_or(0)))
        })
        .collect();
    out
}

/// The message range of `last` (oldest first): the last one's timestamp and every key,
/// checked as Baileys checks them.
fn message_range(last: &[LastMessage]) -> Result<Option<SyncActionMessageRange>, Error> {
    let Some(newest) = last.last() else {
        return Ok(None);
    };
    let mut messages = Vec::with_capacity(last.len());
    for m in last {
        if m.key.id.is_empty() {
            return Err(Error::InvalidRequest("a last message without an id"));
        }
        if m.key.remote_jid.is_group() && !m.key.from_me && m.key.participant.is_none() {
            return Err(Error::InvalidRequest(
                "a group's last message from someone else without its participant",
            ));
        }
        if m.timestamp <= 0 {
            return Err(Error::InvalidRequest("a last message without a timestamp"));
        }
        let mut key = m.key.clone();
        key.participant = key.participant.map(|p| p.to_non_ad());
        messages.push(SyncActionMessage {
            key: Some(wa_messages::key_to_proto(&key)),
            timestamp: Some(m.timestamp),
            ..Default::default()
        });
    }
    Ok(Some(SyncActionMessageRange {
        last_message_timestamp: Some(newest.timestamp),
        messages,
        ..Default::default()
    }))
}

/// The mutation a modification becomes.
///
/// # Errors
/// [`Error::InvalidRequest`] for an empty label id, message id or push name.
pub fn modification_mutation(
    jid: &Jid,
    modification: &ChatModification,
    timestamp_ms: i64,
) -> Result<OutgoingMutation, Error> {
    modification_mutation_after(jid, modification, &[], timestamp_ms)
}

/// The mutation a modification becomes, with the chat's `last_messages` (oldest first)
/// as the message range of an archive, mark read, delete or clear.
///
/// # Errors
/// As [`modification_mutation`]; [`Error::InvalidRequest`] for last messages on another
/// modification, or one without an id or timestamp, or a group message from someone
/// else without its participant.
pub fn modification_mutation_after(
    jid: &Jid,
    modification: &ChatModification,
    last_messages: &[LastMessage],
    timestamp_ms: i64,
) -> Result<OutgoingMutation, Error> {
    let chat = jid.to_non_ad().to_string();
    let t = timestamp_ms;
    let range = message_range(last_messages)?;
    let takes_range = matches!(
        modification,
        ChatModification::Archive(_)
            | ChatModification::MarkRead(_)
            | ChatModification::Delete { .. }
            | ChatModification::Clear { .. }
    );
    if range.is_some() && !takes_range {
        return Err(Error::InvalidRequest(
            "only archive, mark read, delete and clear take last messages",
        ));
    }
    Ok(match modification {
        ChatModification::Archive(a) => builders::archive(&chat, *a, range, t),
        ChatModification::Pin(p) => builders::pin(&chat, *p, t),
        ChatModification::Mute(u) => builders::mute(&chat, *u, t),
        ChatModification::MarkRead(r) => builders::mark_read(&chat, *r, range, t),
        ChatModification::Star {
            message_id,
            from_me,
            participant,
            starred,
        } => {
            let p = participant.as_ref().map(|p| p.to_non_ad().to_string());
            builders::star(&chat, message_id, *from_me, p.as_deref(), *starred, t)
        }
        ChatModification::DeleteForMe {
            message_id,
            from_me,
            participant,
            delete_media,
            message_timestamp,
        } => {
            if message_id.is_empty() {
                return Err(Error::InvalidRequest("empty message id"));
            }
            let p = participant.as_ref().map(|p| p.to_non_ad().to_string());
            builders::delete_for_me(
                &chat,
                message_id,
                *from_me,
                p.as_deref(),
                *delete_media,
                *message_timestamp,
                t,
            )
        }
        ChatModification::Delete { delete_media } => {
            builders::delete_chat(&chat, *delete_media, range, t)
        }
        ChatModification::Clear { keep_starred } => {
            builders::clear_chat(&chat, *keep_starred, range, t)
        }
        ChatModification::LabelEdit {
            label_id,
            name,
            color,
            predefined_id,
            deleted,
        } => {
            if label_id.is_empty() {
                return Err(Error::InvalidRequest("empty label id"));
            }
            builders::label_edit(label_id, name, *color, *predefined_id, *deleted, t)
        }
        ChatModification::ChatLabel { label_id, labeled } => {
            if label_id.is_empty() {
                return Err(Error::InvalidRequest("empty label id"));
            }
            builders::label_chat(label_id, &chat, *labeled, t)
        }
        ChatModification::MessageLabel {
            label_id,
            message_id,
            labeled,
        } => {
            if label_id.is_empty() {
                return Err(Error::InvalidRequest("empty label id"));
            }
            builders::label_message(label_id, &chat, message_id, *labeled, t)
        }
        ChatModification::Contact(name) => {
            let action = name.as_ref().map(|n| ContactAction {
                full_name: n.full_name.clone(),
                first_name: n.first_name.clone(),
                lid_jid: n.lid.as_ref().map(Jid::to_string),
                pn_jid: n.pn.as_ref().map(Jid::to_string),
                username: n.username.clone(),
                save_on_primary_addressbook: n.save_on_primary_addressbook,
                ..Default::default()
            });
            builders::contact(&chat, action, t)
        }
        ChatModification::PushName(name) => {
            let name = name.trim();
            if name.is_empty() || name.len() > crate::MAX_PUSH_NAME {
                return Err(Error::InvalidRequest("push name empty or too long"));
            }
            builders::push_name(name, t)
        }
        ChatModification::DisableLinkPreviews(d) => builders::disable_link_previews(*d, t),
        ChatModification::StatusPrivacy { mode, users } => {
            let users: Vec<String> = users.iter().map(|u| u.to_non_ad().to_string()).collect();
            builders::status_privacy(*mode, &users, t)
        }
        ChatModification::QuickReply {
            id,
            shortcut,
            message,
            keywords,
            deleted,
        } => {
            if shortcut.is_empty() && !*deleted {
                return Err(Error::InvalidRequest("quick reply without a shortcut"));
            }
            let id = if id.is_empty() {
                (t / 1000).to_string()
            } else {
                id.clone()
            };
            builders::quick_reply(&id, shortcut, message, keywords, *deleted, t)
        }
    })
}

/// App-state sync keys loaded from the store (key data zeroized on drop).
struct Keys(HashMap<Vec<u8>, Zeroizing<Vec<u8>>>);

impl KeyLookup for Keys {
    fn key_data(&self, key_id: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.0.get(key_id).cloned()
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What one `<collection>` of a sync reply holds.
#[derive(Debug, Default)]
struct CollectionReply {
    error: Option<(u16, String)>,
    version: u64,
    has_more: bool,
    snapshot: Option<ExternalBlobReference>,
    patches: Vec<SyncdPatch>,
}

/// Parses the `<sync><collection name=...>` of a reply (sans IO; never panics).
fn parse_collection_reply(reply: &Node, name: &str) -> Result<CollectionReply, Error> {
    let c = reply
        .child("sync")
        .into_iter()
        .flat_map(|s| s.children_by_tag("collection"))
        .find(|c| c.attr_opt::<&str>("name").ok().flatten() == Some(name))
        .ok_or_else(|| Error::Malformed("sync reply without the collection"))?;
    let mut out = CollectionReply {
        version: c.attr_opt::<u64>("version").ok().flatten().unwrap_or(0),
        has_more: c.attr_opt::<&str>("has_more_patches").ok().flatten() == Some("true"),
        ..Default::default()
    };
    if c.attr_opt::<&str>("type").ok().flatten() == Some("error") {
        let e = c.child("error");
        let code = e
            .and_then(|e| e.attr_opt::<u16>("code").ok().flatten())
            .unwrap_or(500);
        let text = e
            .and_then(|e| e.attr_opt::<String>("text").ok().flatten())
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        out.error = Some((code, text));
    }
    if let Some(s) = c.child("snapshot")
        && let Some(bytes) = s.content_bytes().filter(|b| !b.is_empty())
    {
        out.snapshot = Some(
            ExternalBlobReference::decode(bytes)
                .map_err(|_| Error::Malformed("snapshot is not an external blob reference"))?,
        );
    }
    let holder = c.child("patches").unwrap_or(c);
    for (i, p) in holder
        .children_by_tag("patch")
        .take(MAX_PATCHES_PER_REPLY)
        .enumerate()
    {
        let Some(bytes) = p.content_bytes().filter(|b| !b.is_empty()) else {
            continue;
        };
        if bytes.len() > MAX_PATCH_BYTES {
            return Err(Error::Malformed("patch too large"));
        }
        let mut patch =
            SyncdPatch::decode(bytes).map_err(|_| Error::Malformed("patch is not a SyncdPatch"))?;
        if patch.version.as_ref().and_then(|v| v.version).is_none() {
            // The collection's version + 1 + position: past u64 for a hostile version.
            let version = out
                .version
                .checked_add(1 + i as u64)
                .ok_or_else(|| Error::Malformed("patch version overflows"))?;
            patch.version = Some(SyncdVersion {
                version: Some(version),
                ..Default::default()
            });
        }
        out.patches.push(patch);
    }
    Ok(out)
}

/// Turns verified mutations into events, grouped by kind, as Baileys'
/// `processSyncAction` does.
pub fn mutation_events(mutations: &[(Operation, Action, Option<i64>)]) -> Vec<Event> {
    let mut chats: Vec<ChatUpdate> = Vec::new();
    let mut stars = Vec::new();
    let mut deletions = Vec::new();
    let mut contacts = Vec::new();
    let mut labels = Vec::new();
    let mut associations = Vec::new();
    let mut out = Vec::new();
    let parse = |s: &str| s.parse::<Jid>().ok();
    for (op, action, ts) in mutations {
        let mut chat = |jid: &str, f: &dyn Fn(&mut ChatUpdate)| {
            if let Some(j) = parse(jid) {
                let mut u = ChatUpdate::new(j);
                u.timestamp = *ts;
                f(&mut u);
                chats.push(u);
            }
        };
        match action {
            Action::Archive {
                jid,
                archived,
                range,
            } => chat(jid, &|u| {
                u.archived = Some(*archived);
                u.message_range = range.as_ref().map(range_of);
            }),
            Action::Pin { jid, pinned } => chat(jid, &|u| u.pinned = Some(*pinned)),
            Action::Mute { jid, muted, until } => chat(jid, &|u| {
                u.mute_end = Some(if *muted {
                    Some(until.unwrap_or(-1))
                } else {
                    None
                })
            }),
            Action::MarkRead { jid, read, range } => chat(jid, &|u| {
                u.read = Some(*read);
                u.message_range = range.as_ref().map(range_of);
            }),
            Action::DeleteChat { jid, range } => chat(jid, &|u| {
                u.deleted = true;
                u.message_range = range.as_ref().map(range_of);
            }),
            Action::ClearChat { jid, range } => chat(jid, &|u| {
                u.cleared = true;
                u.message_range = range.as_ref().map(range_of);
            }),
            Action::Star {
                jid,
                message_id,
                from_me,
                participant,
                starred,
            } => {
                if let Some(j) = parse(jid) {
                    let mut key = MessageKey::new(j, *from_me, message_id.clone());
                    if let Some(p) = participant.as_deref().and_then(parse) {
                        key = key.with_participant(p);
                    }
                    stars.push(StarUpdate::new(key, *starred));
                }
            }
            Action::DeleteForMe {
                jid,
                message_id,
                from_me,
                participant,
                delete_media,
                message_timestamp,
            } if *op == Operation::Set => {
                if let Some(j) = parse(jid) {
                    let mut key = MessageKey::new(j, *from_me, message_id.clone());
                    if let Some(p) = participant.as_deref().and_then(parse) {
                        key = key.with_participant(p);
                    }
                    deletions.push(MessageDeletion::new(key, *delete_media, *message_timestamp));
                }
            }
            Action::LabelEdit {
                label_id,
                name,
                color,
                predefined_id,
                deleted,
            } => {
                let mut l = Label::new(label_id.clone());
                l.name = name.clone();
                l.color = *color;
                l.predefined_id = *predefined_id;
                l.deleted = *deleted;
                labels.push(l);
            }
            Action::LabelAssociation {
                label_id,
                target,
                labeled,
            } => {
                let (jid, msg) = match target {
                    LabelTarget::Chat { jid } => (jid, None),
                    LabelTarget::Message { jid, message_id } => (jid, Some(message_id.clone())),
                };
                if let Some(j) = parse(jid) {
                    associations.push(LabelAssociation::new(label_id.clone(), j, msg, *labeled));
                }
            }
            Action::Contact {
                jid,
                full_name,
                first_name,
                lid,
                pn,
            } => {
                if let Some(j) = parse(jid) {
                    let mut c = ContactUpdate::new(j);
                    c.full_name = full_name.clone();
                    c.first_name = first_name.clone();
                    c.lid = lid.as_deref().and_then(parse);
                    c.pn = pn.as_deref().and_then(parse);
                    c.removed = *op == Operation::Remove;
                    contacts.push(c);
                }
            }
            Action::PushName { name } => out.push(Event::PushNameSetting(name.clone())),
            Action::Setting(setting) if *op == Operation::Set => {
                out.push(Event::SettingsUpdate(setting.clone()));
            }
            Action::Lock { jid, locked } => chat(jid, &|u| u.locked = Some(*locked)),
            Action::PnForLidChat { lid, pn } => {
                if let (Some(l), Some(p)) = (parse(lid), parse(pn)) {
                    let mut c = ContactUpdate::new(l.clone());
                    c.lid = Some(l);
                    c.pn = Some(p);
                    contacts.push(c);
                }
            }
            Action::LidContact {
                lid,
                full_name,
                first_name,
                username,
            } => {
                if let Some(l) = parse(lid) {
                    let mut c = ContactUpdate::new(l.clone());
                    c.lid = Some(l);
                    c.full_name = full_name.clone();
                    c.first_name = first_name.clone();
                    c.username = username.clone();
                    c.removed = *op == Operation::Remove;
                    contacts.push(c);
                }
            }
            other => tracing::trace!("app-state action not reported: {other:?}"),
        }
    }
    let mut events = Vec::new();
    if !chats.is_empty() {
        events.push(Event::ChatsUpdate(chats));
    }
    if !stars.is_empty() {
        events.push(Event::MessagesStarred(stars));
    }
    if !deletions.is_empty() {
        events.push(Event::MessagesDeleted(deletions));
    }
    if !contacts.is_empty() {
        events.push(Event::ContactsUpsert(contacts));
    }
    if !labels.is_empty() {
        events.push(Event::LabelsEdit(labels));
    }
    if !associations.is_empty() {
        events.push(Event::LabelsAssociation(associations));
    }
    events.extend(out);
    events
}

/// Stores the LID/phone-number pairs that app state names: a LID chat's phone number
/// (`pnForLidChat`) and a contact's LID (`contact` with `lidJid`), and returns them.
/// Pairs that do not parse as a LID and a phone-number user are skipped.
fn lid_mapping_ops<'a>(
    batch: &mut Batch,
    mutations: impl IntoIterator<Item = (Operation, &'a Action)>,
) -> Vec<wa_types::LidMapping> {
    let mut out = Vec::new();
    for (op, action) in mutations {
        if op != Operation::Set {
            continue;
        }
        let (lid, pn) = match action {
            Action::PnForLidChat { lid, pn } => (Some(lid.as_str()), Some(pn.as_str())),
            Action::Contact { jid, lid, pn, .. } => {
                (lid.as_deref(), pn.as_deref().or(Some(jid.as_str())))
            }
            _ => continue,
        };
        let lid = lid.and_then(|l| l.parse::<Jid>().ok()).filter(Jid::is_lid);
        let pn = pn
            .and_then(|p| p.parse::<Jid>().ok())
            .filter(Jid::is_pn_user);
        if let (Some(lid), Some(pn)) = (lid, pn) {
            batch.put_lid_mapping(&pn.user, &lid.user);
            out.push(wa_types::LidMapping::of_users(&lid.user, &pn.user));
        }
    }
    out
}

/// The last change of the new-chat-thread salt among `mutations` (in order):
/// `Some(Some(salt))` to store, `Some(None)` to clear, `None` when none names it (a SET
/// without a salt changes nothing).
fn nct_salt_change(
    mutations: impl Iterator<Item = (Operation, Action)>,
) -> Option<Option<Vec<u8>>> {
    let mut change = None;
    for (op, action) in mutations {
        match (op, action) {
            (Operation::Remove, Action::NctSalt { .. }) => change = Some(None),
            (_, Action::NctSalt { salt: Some(salt) }) => change = Some(Some(salt)),
            _ => {}
        }
    }
    change
}

fn decoded_events(decoded: &[DecodedPatch]) -> Vec<Event> {
    let list: Vec<_> = decoded
        .iter()
        .flat_map(|d| d.mutations.iter())
        .map(|m| {
            let ts = m.value.as_ref().and_then(|v| v.timestamp);
            (m.operation, m.action(), ts)
        })
        .collect();
    mutation_events(&list)
}

/// App-state sync over a [`Socket`]: [`AppState::resync`], [`AppState::chat_modify`],
/// `server_sync` notifications and key shares. Cheap to clone; the listener tasks stop
/// when the last clone is dropped.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

struct Inner {
    socket: Socket,
    media: Option<Media>,
    messenger: Option<Messenger>,
    config: AppStateConfig,
    /// Serializes syncs and pushes (one writer of the stored states).
    busy: tokio::sync::Mutex<()>,
    /// Collections whose last sync stopped on a missing key.
    blocked: Mutex<BTreeSet<Collection>>,
    /// When each key id was last requested.
    requested: Mutex<HashMap<Vec<u8>, Instant>>,
    /// Recovery requests to our primary device waiting for an answer, oldest first.
    recoveries: Mutex<Vec<recovery::Pending>>,
    recovery_serial: std::sync::atomic::AtomicU64,
    listeners: Mutex<Vec<AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for l in lock(&self.listeners).iter() {
            l.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why one collection's sync stopped.
enum Stop {
    Failed(AppStateFailure, Error),
}

impl AppState {
    /// The settings of `chat` (archived, pinned, muted) as the account's app state last
    /// set them, from the account store (whatsmeow's `ChatSettings` store); the defaults
    /// when none was set. Kept current by every app-state sync and every
    /// [`AppState::chat_modify`] of this device.
    ///
    /// # Errors
    /// Store errors.
    pub async fn chat_settings(&self, chat: &Jid) -> Result<crate::ChatSettings, Error> {
        use wa_store::ChatSettingStore as _;
        let store = self.inner.socket.store();
        let key = chat.to_non_ad().to_string();
        let mut out = crate::ChatSettings::default();
        for setting in [
            crate::settings::ARCHIVE,
            crate::settings::PIN,
            crate::settings::MUTE,
        ] {
            if let Some(v) = store.get_chat_setting(setting, &key).await?
                && !out.apply_stored(setting, &v)
            {
                tracing::warn!(%chat, setting, "stored chat setting skipped");
            }
        }
        Ok(out)
    }

    /// Every chat with a setting kept from app state ([`AppState::chat_settings`]), by JID.
    /// Rows that do not decode are skipped with a warning.
    ///
    /// # Errors
    /// Store errors.
    pub async fn stored_chat_settings(&self) -> Result<Vec<(Jid, crate::ChatSettings)>, Error> {
        use wa_store::ChatSettingStore as _;
        let store = self.inner.socket.store();
        let mut by_chat: std::collections::BTreeMap<String, crate::ChatSettings> =
            Default::default();
        for setting in [
            crate::settings::ARCHIVE,
            crate::settings::PIN,
            crate::settings::MUTE,
        ] {
            for (key, v) in store.chat_settings(setting).await? {
                if !by_chat.entry(key).or_default().apply_stored(setting, &v) {
                    tracing::warn!(setting, "stored chat setting skipped");
                }
            }
        }
        Ok(by_chat
            .into_iter()
            .filter_map(|(k, s)| Some((k.parse::<Jid>().ok()?, s)))
            .collect())
    }

    /// Wraps `socket` and listens for `<notification type="server_sync">` (acknowledged,
    /// then the named collections resynced) and for sync keys our primary device shares
    /// ([`Event::AppStateSyncKeysReceived`], emitted by `wa-messages` once the keys are
    /// stored). `media` downloads external snapshots and mutations (without it, a reply
    /// that holds one fails the sync); `messenger` sends key requests to our own devices
    /// (without it, a missing key is only waited for). Must be called inside a Tokio
    /// runtime.
    pub fn new(
        socket: Socket,
        media: Option<Media>,
        messenger: Option<Messenger>,
        config: AppStateConfig,
    ) -> Self {
        let mut sync_rx = socket.subscribe(
            Filter::tag("notification").kind("server_sync"),
            config.queue,
        );
        // Each listener is woken only for its kind of event, and message traffic cannot
        // make it miss one.
        let mut events = socket.events_matching(
            |e| matches!(e, Event::AppStateSyncKeysReceived(_)),
            LISTENER_CAPACITY,
        );
        let mut answers = socket.events_matching(
            |e| matches!(e, Event::AppStateRecoveryReceived(_)),
            LISTENER_CAPACITY,
        );
        let inner = Arc::new(Inner {
            socket,
            media,
            messenger,
            config,
            busy: tokio::sync::Mutex::new(()),
            blocked: Mutex::new(BTreeSet::new()),
            requested: Mutex::new(HashMap::new()),
            recoveries: Mutex::new(Vec::new()),
            recovery_serial: std::sync::atomic::AtomicU64::new(0),
            listeners: Mutex::new(Vec::new()),
        });
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let notifications = tokio::spawn(async move {
            while let Some(node) = sync_rx.recv().await {
                let Some(inner) = weak.upgrade() else { break };
                let ack = wa_socket::ack_for(&node);
                if let Err(e) = Box::pin(inner.socket.send_node(&ack)).await {
                    tracing::debug!("server_sync ack not sent: {e}");
                }
                let names: BTreeSet<Collection> = node
                    .children_by_tag("collection")
                    .take(16)
                    .filter_map(|c| c.attr_opt::<&str>("name").ok().flatten())
                    .filter_map(Collection::from_name)
                    .collect();
                if inner.config.resync_on_notification && !names.is_empty() {
                    let list: Vec<Collection> = names.into_iter().collect();
                    let me = AppState { inner };
                    // Boxed: a resync's state machine is large; the idle listener
                    // should not hold its space.
                    if let Err(e) = Box::pin(me.resync(&list, false)).await {
                        tracing::debug!("resync after server_sync failed: {e}");
                    }
                }
            }
        })
        .abort_handle();
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let keys = tokio::spawn(async move {
            loop {
                if events.recv().await.is_none() {
                    break;
                }
                let Some(inner) = weak.upgrade() else { break };
                if !inner.config.sync_on_key_share {
                    continue;
                }
                let me = AppState { inner };
                let mut list: BTreeSet<Collection> = lock(&me.inner.blocked).clone();
                for c in Collection::ALL {
                    let stored =
                        Box::pin(me.inner.socket.store().get_app_state_version(c.as_str())).await;
                    if matches!(stored, Ok(None)) {
                        list.insert(c);
                    }
                }
                if list.is_empty() {
                    continue;
                }
                let list: Vec<Collection> = Collection::ALL
                    .into_iter()
                    .filter(|c| list.contains(c))
                    .collect();
                if let Err(e) = Box::pin(me.resync(&list, true)).await {
                    tracing::debug!("resync after key share failed: {e}");
                }
            }
        })
        .abort_handle();
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let recoveries = tokio::spawn(async move {
            loop {
                let answer = match answers.recv().await {
                    Some(Event::AppStateRecoveryReceived(a)) => a,
                    Some(_) => continue,
                    None => break,
                };
                let Some(inner) = weak.upgrade() else { break };
                let me = AppState { inner };
                Box::pin(me.take_recovery(answer)).await;
            }
        })
        .abort_handle();
        lock(&inner.listeners).extend([notifications, keys, recoveries]);
        Self { inner }
    }

    /// Fetches `collections` from the server and applies what changed: patches since
    /// the stored version (a snapshot when nothing is stored), each verified (value,
    /// index, snapshot and patch MACs, LTHash) before the new state is stored; repeats
    /// while the server says `has_more_patches`. Decoded actions are emitted as events
    /// ([`Event::ChatsUpdate`], [`Event::LabelsEdit`], ...), then
    /// [`Event::AppStateSynced`].
    ///
    /// On a verification failure the collection is fetched again from a snapshot
    /// ([`AppStateRecoveryStep::SnapshotResync`]; the stored state stays until the
    /// snapshot verified); on a missing key the key is requested from our own devices
    /// and waited for ([`AppStateRecoveryStep::KeyRequest`]); if that does not help,
    /// [`Event::AppStateSyncError`] is emitted. Nothing that did not verify is stored.
    /// `is_initial` is recorded in logs only (the first sync after linking).
    ///
    /// # Errors
    /// The first collection's failure ([`Error::AppStateSync`], or socket errors); the
    /// other collections are still synced.
    pub async fn resync(&self, collections: &[Collection], is_initial: bool) -> Result<(), Error> {
        let _busy = self.inner.busy.lock().await;
        tracing::debug!(?collections, is_initial, "app-state resync");
        let mut first = Ok(());
        let mut seen = BTreeSet::new();
        for c in collections {
            if !seen.insert(*c) {
                continue;
            }
            if let Err(e) = self.sync_locked(*c).await
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }

    fn emit(&self, event: Event) {
        self.inner.socket.emit(event);
    }

    /// Stores (`Some(Some(salt))`) or clears (`Some(None)`) the account's new-chat-thread
    /// salt in the credentials; `None` changes nothing.
    async fn save_nct_salt(&self, change: Option<Option<Vec<u8>>>) -> Result<(), Error> {
        let Some(salt) = change else {
            return Ok(());
        };
        self.inner
            .socket
            .update_creds(|c| {
                if c.nct_salt.as_deref() == salt.as_ref() {
                    return false;
                }
                c.nct_salt = salt.map(zeroize::Zeroizing::new);
                true
            })
            .await?;
        Ok(())
    }

    /// Emits `event`, first saving what it changes about this account in the stored
    /// credentials (a push name set on another device becomes ours, as Baileys'
    /// `pushNameSetting` handling does; `CredsUpdated` follows).
    async fn apply_and_emit(&self, event: Event) {
        if let Event::PushNameSetting(name) = &event {
            let saved = self
                .inner
                .socket
                .update_creds(|c| {
                    if c.push_name.as_deref() == Some(name.as_str()) {
                        return false;
                    }
                    c.push_name = Some(name.clone());
                    true
                })
                .await;
            if let Err(e) = saved {
                tracing::warn!("push name from app state not saved: {e}");
            }
        }
        self.emit(event);
    }

    fn fail(&self, c: Collection, kind: AppStateFailure, e: Error) -> Stop {
        self.emit(Event::AppStateSyncError(AppStateSyncError::new(
            c.as_str(),
            kind,
            e.to_string(),
        )));
        Stop::Failed(kind, e)
    }

    async fn load_state(&self, c: Collection) -> Result<HashState, Error> {
        match self
            .inner
            .socket
            .store()
            .get_app_state_version(c.as_str())
            .await?
        {
            Some(b) => Ok(HashState::from_bytes(&b)?),
            None => Ok(HashState::new()),
        }
    }

    async fn load_keys(&self) -> Result<Keys, Error> {
        let mut map = HashMap::new();
        for (id, data) in self.inner.socket.store().app_state_sync_keys().await? {
            let (Some(id), Ok(d)) = (unhex(&id), AppStateSyncKeyData::decode(&data[..])) else {
                continue;
            };
            if let Some(k) = d.key_data {
                map.insert(id, Zeroizing::new(k));
            }
        }
        Ok(Keys(map))
    }

    /// The newest stored sync key (by its timestamp, then id): the one pushes use.
    async fn latest_key(&self) -> Result<Option<(Vec<u8>, Zeroizing<Vec<u8>>)>, Error> {
        let mut best: Option<(i64, Vec<u8>, Zeroizing<Vec<u8>>)> = None;
        for (id, data) in self.inner.socket.store().app_state_sync_keys().await? {
            let (Some(id), Ok(d)) = (unhex(&id), AppStateSyncKeyData::decode(&data[..])) else {
                continue;
            };
            let Some(k) = d.key_data.clone() else {
                continue;
            };
            let ts = d.timestamp();
            if best
                .as_ref()
                .is_none_or(|(bt, bid, _)| (ts, &id) > (*bt, bid))
            {
                best = Some((ts, id, Zeroizing::new(k)));
            }
        }
        Ok(best.map(|(_, id, k)| (id, k)))
    }

    async fn download(&self, r: &ExternalBlobReference) -> Result<Vec<u8>, Error> {
        let media = self
            .inner
            .media
            .as_ref()
            .ok_or_else(|| Error::InvalidRequest("an external blob needs a media client"))?;
        let key: [u8; 32] = r
            .media_key
            .as_deref()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| Error::Malformed("external blob without a 32-byte media key"))?;
        let path = r
            .direct_path
            .clone()
            .ok_or_else(|| Error::Malformed("external blob without a direct path"))?;
        if r.file_size_bytes.is_some_and(|s| s > MAX_EXTERNAL_BLOB) {
            return Err(Error::Malformed("external blob too large"));
        }
        // Like whatsmeow, fetch from the media hosts `media_conn` names (the default
        // host when it names none).
        // The download itself stops at the limit: a host cannot make us hold more.
        let mut d = Downloadable::new(MediaType::AppState, key, path.clone())
            .with_max_size(MAX_EXTERNAL_BLOB + wa_media::ENCRYPTION_OVERHEAD);
        if let Some(host) = media
            .media_conn(false)
            .await
            .ok()
            .and_then(|c| c.hosts.first().map(|h| h.hostname.clone()))
        {
            d = d.with_url(format!("https://{host}{path}"));
        }
        if let (Some(enc), Some(plain)) = (
            r.file_enc_sha256.as_deref().and_then(|h| h.try_into().ok()),
            r.file_sha256.as_deref().and_then(|h| h.try_into().ok()),
        ) {
            d = d.with_hashes(enc, plain);
        }
        let mut out = Vec::new();
        match media.download(&d, &mut out, None).await {
            Ok(_) => {}
            Err(wa_media::Error::TooLarge(_)) => {
                return Err(Error::Malformed("external blob too large"));
            }
            Err(e) => return Err(e.into()),
        }
        if out.len() as u64 > MAX_EXTERNAL_BLOB {
            return Err(Error::Malformed("external blob too large"));
        }
        Ok(out)
    }

    async fn fetch(&self, c: Collection, version: u64, snapshot: bool) -> Result<Node, Error> {
        let collection = Node::builder("collection")
            .attr("name", c.as_str())
            .attr("version", version.to_string())
            .attr("return_snapshot", snapshot.to_string())
            .build();
        let node = Node::builder("iq")
            .attr("xmlns", "w:sync:app:state")
            .attr("type", "set")
            .attr("to", Jid::server_jid())
            .children([Node::builder("sync").children([collection]).build()])
            .build();
        Ok(self.inner.socket.query(node).await?)
    }

    /// Downloads what a reply references and decodes it against `state`.
    async fn decode_reply(
        &self,
        c: Collection,
        reply: &mut CollectionReply,
        state: &mut HashState,
        keys: &Keys,
    ) -> Result<(Vec<DecodedPatch>, bool), Error> {
        let snapshot = match &reply.snapshot {
            Some(r) => {
                let bytes = self.download(r).await?;
                Some(
                    SyncdSnapshot::decode(&bytes[..])
                        .map_err(|_| Error::Malformed("snapshot blob is not a SyncdSnapshot"))?,
                )
            }
            None => None,
        };
        for p in &mut reply.patches {
            if let Some(r) = p.external_mutations.clone()
                && p.mutations.is_empty()
            {
                let bytes = self.download(&r).await?;
                append_external_mutations(p, &bytes)?;
            }
        }
        let decoded = decode_patch_list(
            c.as_str(),
            snapshot.as_ref(),
            &reply.patches,
            state,
            keys,
            &DecodeOptions::default(),
        )?;
        Ok((decoded, snapshot.is_some()))
    }

    /// One collection, with the recovery ladder. Called with `busy` held.
    async fn sync_locked(&self, c: Collection) -> Result<(), Error> {
        match self.sync_ladder(c).await {
            Ok(()) => Ok(()),
            Err(Stop::Failed(kind, e)) => {
                tracing::warn!(collection = %c, ?kind, "app-state sync failed: {e}");
                Err(Error::AppStateSync {
                    collection: c,
                    kind,
                    message: e.to_string(),
                })
            }
        }
    }

    async fn sync_ladder(&self, c: Collection) -> Result<(), Stop> {
        let mut snapshot_tried = false;
        let mut key_requested = false;
        let mut force_snapshot = false;
        let mut used_snapshot = false;
        for _ in 0..self.inner.config.max_rounds.max(1) {
            let state = if force_snapshot {
                HashState::new()
            } else {
                match self.load_state(c).await {
                    Ok(s) => s,
                    Err(Error::AppState(e)) => {
                        // A stored state that does not parse is dropped like a bad one.
                        tracing::warn!(collection = %c, "stored app state unreadable: {e}");
                        HashState::new()
                    }
                    Err(e) => return Err(self.fail(c, AppStateFailure::Store, e)),
                }
            };
            let snapshot_wanted = force_snapshot || state.version == 0;
            let reply = match self.fetch(c, state.version, snapshot_wanted).await {
                Ok(r) => r,
                Err(e) => return Err(self.fail(c, AppStateFailure::Server, e)),
            };
            let mut parsed = match parse_collection_reply(&reply, c.as_str()) {
                Ok(p) => p,
                Err(e) => return Err(self.fail(c, AppStateFailure::Server, e)),
            };
            if let Some((code, text)) = parsed.error.take() {
                return Err(self.fail(c, AppStateFailure::Server, Error::Refused { code, text }));
            }
            let keys = match self.load_keys().await {
                Ok(k) => k,
                Err(e) => return Err(self.fail(c, AppStateFailure::Store, e)),
            };
            let mut work = state.clone();
            let result = self.decode_reply(c, &mut parsed, &mut work, &keys).await;
            match result {
                Ok((decoded, had_snapshot)) => {
                    // Saved before the new state: a crash in between applies it again.
                    let salt = nct_salt_change(
                        decoded
                            .iter()
                            .flat_map(|d| d.mutations.iter())
                            .map(|m| (m.operation, m.action())),
                    );
                    if let Err(e) = self.save_nct_salt(salt).await {
                        return Err(self.fail(c, AppStateFailure::Store, e));
                    }
                    if let Err(e) = self.store_synced(c, &work, &decoded, had_snapshot).await {
                        return Err(self.fail(c, AppStateFailure::Store, e));
                    }
                    lock(&self.inner.blocked).remove(&c);
                    used_snapshot |= had_snapshot;
                    force_snapshot = false;
                    for e in decoded_events(&decoded) {
                        self.apply_and_emit(e).await;
                    }
                    if !parsed.has_more {
                        self.emit(Event::AppStateSynced {
                            collection: c.as_str().to_owned(),
                            version: work.version,
                            snapshot: used_snapshot,
                        });
                        return Ok(());
                    }
                }
                Err(Error::AppState(wa_appstate::Error::MissingKey(id))) => {
                    if key_requested {
                        lock(&self.inner.blocked).insert(c);
                        return Err(self.fail(
                            c,
                            AppStateFailure::MissingKey,
                            Error::AppState(wa_appstate::Error::MissingKey(id)),
                        ));
                    }
                    key_requested = true;
                    self.emit(Event::AppStateRecovery {
                        collection: c.as_str().to_owned(),
                        step: AppStateRecoveryStep::KeyRequest {
                            key_ids: vec![id.clone()],
                        },
                    });
                    self.request_keys(std::slice::from_ref(&id)).await;
                    if !self.wait_for_key(&id).await {
                        lock(&self.inner.blocked).insert(c);
                        return Err(self.fail(
                            c,
                            AppStateFailure::MissingKey,
                            Error::AppState(wa_appstate::Error::MissingKey(id)),
                        ));
                    }
                }
                Err(e @ (Error::AppState(_) | Error::Malformed(_))) => {
                    if snapshot_tried {
                        return Err(self.fail(c, AppStateFailure::Verification, e));
                    }
                    tracing::warn!(collection = %c, "app state did not verify ({e}); refetching a snapshot");
                    snapshot_tried = true;
                    force_snapshot = true;
                    // The stored state is not used any more, but stays until a
                    // snapshot verified and replaces it.
                    self.emit(Event::AppStateRecovery {
                        collection: c.as_str().to_owned(),
                        step: AppStateRecoveryStep::SnapshotResync,
                    });
                }
                Err(e) => return Err(self.fail(c, AppStateFailure::Server, e)),
            }
        }
        Err(self.fail(
            c,
            AppStateFailure::Server,
            Error::Malformed("too many sync rounds"),
        ))
    }

    /// Stores the verified new state of `c` and, in the same commit, the contacts its
    /// mutations set or removed. A snapshot of the contacts' collection is the whole
    /// address book, so stored contacts it does not mention are deleted first.
    async fn store_synced(
        &self,
        c: Collection,
        state: &HashState,
        decoded: &[DecodedPatch],
        had_snapshot: bool,
    ) -> Result<(), Error> {
        let store = self.inner.socket.store();
        let actions: Vec<(Operation, Action)> = decoded
            .iter()
            .flat_map(|d| d.mutations.iter())
            .map(|m| (m.operation, m.action()))
            .collect();
        let mut contacts = Batch::new();
        let written = contact_ops(&mut contacts, actions.iter().map(|(o, a)| (*o, a)));
        crate::chat_setting_ops(&mut contacts, actions.iter().map(|(o, a)| (*o, a)));
        let mappings = lid_mapping_ops(&mut contacts, actions.iter().map(|(o, a)| (*o, a)));
        let mut batch = Batch::new();
        if had_snapshot && c == Collection::CriticalUnblockLow {
            let mentioned: HashSet<&str> = written.iter().map(String::as_str).collect();
            for (jid, _) in store.contacts().await? {
                if !mentioned.contains(jid.as_str()) {
                    batch.delete_contact(&jid);
                }
            }
        }
        batch.append(contacts);
        batch.put_app_state_version(c.as_str(), &state.to_bytes());
        store.commit(batch).await?;
        self.report_mappings(mappings);
        Ok(())
    }

    fn report_mappings(&self, mappings: Vec<wa_types::LidMapping>) {
        if !mappings.is_empty() {
            self.inner.socket.emit(Event::LidMappings(mappings));
        }
    }

    /// Sends `APP_STATE_SYNC_KEY_REQUEST` for `ids` to our own devices (each id at most
    /// once per minute).
    async fn request_keys(&self, ids: &[Vec<u8>]) {
        let Some(messenger) = &self.inner.messenger else {
            tracing::debug!("no messenger: missing app-state keys are only waited for");
            return;
        };
        let ids: Vec<Vec<u8>> = {
            let mut req = lock(&self.inner.requested);
            let now = Instant::now();
            req.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
            let mut fresh = Vec::new();
            for id in ids {
                if !req.contains_key(id) {
                    req.insert(id.clone(), now);
                    fresh.push(id.clone());
                }
            }
            fresh
        };
        if ids.is_empty() {
            return;
        }
        let Some(me) = self.inner.socket.me().await else {
            return;
        };
        let message = Message {
            protocol_message: Some(Box::new(ProtocolMessage {
                r#type: Some(protocol_message::Type::AppStateSyncKeyRequest as i32),
                app_state_sync_key_request: Some(AppStateSyncKeyRequest {
                    key_i_ds: ids
                        .iter()
                        .map(|id| AppStateSyncKeyId {
                            key_id: Some(id.clone()),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        };
        let id = wa_messages::generate_message_id((now_ms() / 1000) as u64, Some(&me), &mut OsRng);
        if let Err(e) = messenger.relay_message(&me.to_non_ad(), message, &id).await {
            tracing::warn!("app-state key request not sent: {e}");
        }
    }

    /// Whether the key `id` is in the store within [`AppStateConfig::key_wait`] (checked
    /// at least once).
    async fn wait_for_key(&self, id: &[u8]) -> bool {
        let name = hex(id);
        let deadline = Instant::now() + self.inner.config.key_wait;
        loop {
            if let Ok(Some(_)) = self
                .inner
                .socket
                .store()
                .get_app_state_sync_key(&name)
                .await
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(KEY_POLL).await;
        }
    }

    /// Changes a chat (or account-wide app state) for every device of the account, as
    /// Baileys' `chatModify`: encodes the mutation against the stored state with the
    /// newest sync key, pushes the patch
    /// (`<iq xmlns="w:sync:app:state"><sync><collection><patch>`), and stores the new
    /// state once the server accepted it. A push the server refuses as stale (409: another
    /// device pushed first) is redone once after a resync, which also reports the other
    /// device's changes. With [`AppStateConfig::emit_own_events`], the change
    /// is also reported here as an event.
    ///
    /// # Errors
    /// [`Error::NoAppStateKey`] before the primary device shared a key;
    /// [`Error::InvalidRequest`]; [`Error::AppStateSync`] when the collection cannot be
    /// synced; [`Error::Refused`]; socket and store errors.
    pub async fn chat_modify(
        &self,
        jid: &Jid,
        modification: ChatModification,
    ) -> Result<(), Error> {
        self.chat_modify_after(jid, modification, &[]).await
    }

    /// [`AppState::chat_modify`] with the chat's last messages (oldest first) as the
    /// message range of an archive, mark read, delete or clear (Baileys' `lastMessages`),
    /// so other devices do not apply it to messages that arrived since.
    ///
    /// # Errors
    /// As [`AppState::chat_modify`] and [`modification_mutation_after`].
    pub async fn chat_modify_after(
        &self,
        jid: &Jid,
        modification: ChatModification,
        last_messages: &[LastMessage],
    ) -> Result<(), Error> {
        let m = modification_mutation_after(jid, &modification, last_messages, now_ms())?;
        self.push(m).await
    }

    /// Pushes one mutation (see [`AppState::chat_modify`]).
    ///
    /// # Errors
    /// As [`AppState::chat_modify`].
    pub async fn push(&self, m: OutgoingMutation) -> Result<(), Error> {
        let c = m.collection;
        let _busy = self.inner.busy.lock().await;
        let (key_id, key_data) = self
            .latest_key()
            .await?
            .ok_or_else(|| Error::NoAppStateKey)?;
        // Pushed on top of the stored state, as whatsmeow does; when another device got
        // there first the server answers 409 and the push is redone after a sync.
        for attempt in 0..2 {
            let state = self.load_state(c).await?;
            let enc = encode_patch(
                std::slice::from_ref(&m),
                &key_id,
                &key_data,
                &state,
                &mut OsRng,
            )?;
            let collection = Node::builder("collection")
                .attr("name", c.as_str())
                .attr("version", state.version.to_string())
                .attr("return_snapshot", "false")
                .children([Node::builder("patch").bytes(enc.bytes.clone()).build()])
                .build();
            let node = Node::builder("iq")
                .attr("xmlns", "w:sync:app:state")
                .attr("type", "set")
                .attr("to", Jid::server_jid())
                .children([Node::builder("sync").children([collection]).build()])
                .build();
            let reply = self.inner.socket.query(node).await?;
            let parsed = parse_collection_reply(&reply, c.as_str())?;
            match parsed.error {
                Some((409, _)) if attempt == 0 => {
                    tracing::debug!(collection = %c, "push conflicts; resyncing and retrying");
                    self.sync_locked(c).await?;
                    continue;
                }
                Some((code, text)) => return Err(Error::Refused { code, text }),
                None => {}
            }
            if parsed.version != enc.state.version {
                // The server is somewhere else: fetch what it has instead of guessing.
                self.sync_locked(c).await?;
            } else {
                // Our own contact changes are kept like those of other devices, in the
                // same commit as the new state.
                let action = Action::from_parts(&m.index, Some(&m.value));
                self.save_nct_salt(nct_salt_change(std::iter::once((
                    m.operation,
                    action.clone(),
                ))))
                .await?;
                let mut batch = Batch::new();
                contact_ops(&mut batch, [(m.operation, &action)]);
                crate::chat_setting_ops(&mut batch, [(m.operation, &action)]);
                let mappings = lid_mapping_ops(&mut batch, [(m.operation, &action)]);
                batch.put_app_state_version(c.as_str(), &enc.state.to_bytes());
                self.inner.socket.store().commit(batch).await?;
                self.report_mappings(mappings);
            }
            if self.inner.config.emit_own_events {
                let action = Action::from_parts(&m.index, Some(&m.value));
                for e in mutation_events(&[(m.operation, action, m.value.timestamp)]) {
                    self.apply_and_emit(e).await;
                }
            }
            return Ok(());
        }
        Err(Error::Refused {
            code: 409,
            text: "conflict".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_received_range_keeps_the_keys_that_parse() {
        let key = |chat: &str, participant: Option<&str>| SyncActionMessage {
            key: Some(wa_proto::common::MessageKey {
                remote_jid: Some(chat.into()),
                from_me: Some(false),
                id: Some("ID".into()),
                participant: participant.map(Into::into),
                ..Default::default()
            }),
            timestamp: Some(7),
            ..Default::default()
        };
        let r = SyncActionMessageRange {
            last_message_timestamp: Some(9),
            messages: vec![
                key(
                    "120363000000000001@g.us",
                    Some("15550000001@s.whatsapp.net"),
                ),
                key("not a jid", None),
                SyncActionMessage::default(),
            ],
            ..Default::default()
        };
        let got = range_of(&r);
        assert_eq!(got.last_message_timestamp, Some(9));
        assert_eq!(got.messages.len(), 1);
        assert_eq!(
            got.messages[0].key.participant,
            Some(Jid::pn("15550000001"))
        );
        assert_eq!(got.messages[0].timestamp, 7);
        let many = SyncActionMessageRange {
            messages: vec![key("1@s.whatsapp.net", None); MAX_RANGE_MESSAGES + 5],
            ..Default::default()
        };
        assert_eq!(range_of(&many).messages.len(), MAX_RANGE_MESSAGES);
    }

    #[test]
    fn last_messages_become_the_message_range() {
        let chat: Jid = "120363000000000001@g.us".parse().unwrap();
        let member: Jid = "15550000002:3@s.whatsapp.net".parse().unwrap();
        let older = LastMessage::new(
            MessageKey::new(chat.clone(), false, "OLD").with_participant(member.clone()),
            1_700_000_000,
        );
        let newer = LastMessage::new(MessageKey::new(chat.clone(), true, "NEW"), 1_700_000_100);
        let m = modification_mutation_after(
            &chat,
            &ChatModification::Archive(true),
            &[older, newer],
            5,
        )
        .unwrap();
        let range = m
            .value
            .archive_chat_action
            .and_then(|a| a.message_range)
            .expect("a range");
        assert_eq!(range.last_message_timestamp, Some(1_700_000_100));
        assert_eq!(range.messages.len(), 2);
        let first = range.messages[0].key.as_ref().unwrap();
        assert_eq!(first.id.as_deref(), Some("OLD"));
        // The participant is named without its device.
        assert_eq!(
            first.participant.as_deref(),
            Some("15550000002@s.whatsapp.net")
        );
        assert_eq!(range.messages[1].timestamp, Some(1_700_000_100));
        for modification in [
            ChatModification::MarkRead(true),
            ChatModification::Delete {
                delete_media: false,
            },
            ChatModification::Clear { keep_starred: true },
        ] {
            let last = [LastMessage::new(
                MessageKey::new(chat.clone(), true, "X"),
                9,
            )];
            let m = modification_mutation_after(&chat, &modification, &last, 5).unwrap();
            let v = &m.value;
            let range = v
                .mark_chat_as_read_action
                .as_ref()
                .and_then(|a| a.message_range.as_ref())
                .or(v
                    .delete_chat_action
                    .as_ref()
                    .and_then(|a| a.message_range.as_ref()))
                .or(v
                    .clear_chat_action
                    .as_ref()
                    .and_then(|a| a.message_range.as_ref()));
            assert_eq!(
                range.and_then(|r| r.last_message_timestamp),
                Some(9),
                "{modification:?}"
            );
        }
        // Without last messages there is no range.
        let m = modification_mutation(&chat, &ChatModification::Archive(true), 5).unwrap();
        assert!(m.value.archive_chat_action.unwrap().message_range.is_none());
    }

    #[test]
    fn bad_last_messages_are_refused() {
        let chat: Jid = "120363000000000001@g.us".parse().unwrap();
        let archive = ChatModification::Archive(true);
        let refused = |last: LastMessage, m: &ChatModification| {
            matches!(
                modification_mutation_after(&chat, m, &[last], 5),
                Err(Error::InvalidRequest(_))
            )
        };
        // Someone else's group message without its participant.
        assert!(refused(
            LastMessage::new(MessageKey::new(chat.clone(), false, "A"), 9),
            &archive
        ));
        // No timestamp, no id.
        assert!(refused(
            LastMessage::new(MessageKey::new(chat.clone(), true, "A"), 0),
            &archive
        ));
        assert!(refused(
            LastMessage::new(MessageKey::new(chat.clone(), true, ""), 9),
            &archive
        ));
        // A modification that takes no range.
        assert!(refused(
            LastMessage::new(MessageKey::new(chat.clone(), true, "A"), 9),
            &ChatModification::Pin(true)
        ));
    }

    #[test]
    fn delete_for_me_round_trips_as_an_event() {
        let chat: Jid = "120363000000000001@g.us".parse().unwrap();
        let member: Jid = "15550000002:3@s.whatsapp.net".parse().unwrap();
        let m = modification_mutation(
            &chat,
            &ChatModification::DeleteForMe {
                message_id: "M1".into(),
                from_me: false,
                participant: Some(member),
                delete_media: true,
                message_timestamp: Some(1_700_000_000),
            },
            7,
        )
        .unwrap();
        assert_eq!(
            m.index,
            [
                "deleteMessageForMe",
                "120363000000000001@g.us",
                "M1",
                "0",
                "15550000002@s.whatsapp.net"
            ]
        );
        let action = Action::from_parts(&m.index, Some(&m.value));
        let events = mutation_events(&[(Operation::Set, action.clone(), Some(7))]);
        let [Event::MessagesDeleted(d)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].key.id, "M1");
        assert!(!d[0].key.from_me);
        assert_eq!(
            d[0].key.participant,
            Some("15550000002@s.whatsapp.net".parse().unwrap())
        );
        assert!(d[0].delete_media);
        assert_eq!(d[0].message_timestamp, Some(1_700_000_000));
        // A REMOVE of the deletion is not a deletion.
        assert!(mutation_events(&[(Operation::Remove, action, None)]).is_empty());
        let empty = ChatModification::DeleteForMe {
            message_id: String::new(),
            from_me: true,
            participant: None,
            delete_media: false,
            message_timestamp: None,
        };
        assert!(modification_mutation(&chat, &empty, 7).is_err());
    }

    #[test]
    fn quick_replies_are_named_by_their_id_or_creation_time() {
        let chat = Jid::pn("15550000002");
        let reply = |id: &str, shortcut: &str, deleted| ChatModification::QuickReply {
            id: id.into(),
            shortcut: shortcut.into(),
            message: "Thanks, we will be in touch.".into(),
            keywords: vec!["thanks".into()],
            deleted,
        };
        let m = modification_mutation(&chat, &reply("", "thx", false), 1_700_000_000_123).unwrap();
        assert_eq!(m.index, ["quick_reply", "1700000000"]);
        assert_eq!((m.collection, m.version), (Collection::Regular, 2));
        let q = m.value.quick_reply_action.unwrap();
        assert_eq!(q.shortcut.as_deref(), Some("thx"));
        assert_eq!(q.message.as_deref(), Some("Thanks, we will be in touch."));
        assert_eq!(q.keywords, ["thanks"]);
        assert_eq!(q.deleted, Some(false));
        let m = modification_mutation(&chat, &reply("1699999999", "", true), 5).unwrap();
        assert_eq!(m.index, ["quick_reply", "1699999999"]);
        assert_eq!(m.value.quick_reply_action.unwrap().deleted, Some(true));
        assert!(modification_mutation(&chat, &reply("", "", false), 5).is_err());
    }

    #[test]
    fn the_last_salt_change_wins() {
        let salt = |s: Option<&[u8]>| Action::NctSalt {
            salt: s.map(<[u8]>::to_vec),
        };
        let other = Action::PushName { name: "x".into() };
        assert_eq!(nct_salt_change(std::iter::empty()), None);
        assert_eq!(
            nct_salt_change([(Operation::Set, other.clone())].into_iter()),
            None
        );
        assert_eq!(
            nct_salt_change(
                [
                    (Operation::Set, salt(Some(&[1]))),
                    (Operation::Set, salt(Some(&[2]))),
                    (Operation::Set, other),
                ]
                .into_iter()
            ),
            Some(Some(vec![2]))
        );
        assert_eq!(
            nct_salt_change(
                [
                    (Operation::Set, salt(Some(&[1]))),
                    (Operation::Remove, salt(None)),
                ]
                .into_iter()
            ),
            Some(None)
        );
        // A SET without a salt changes nothing.
        assert_eq!(
            nct_salt_change([(Operation::Set, salt(None))].into_iter()),
            None
        );
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        assert_eq!(unhex(&hex(&[0, 1, 0xfe])), Some(vec![0, 1, 0xfe]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é0"), None);
    }

    fn reply(children: Vec<Node>, attrs: &[(&'static str, &'static str)]) -> Node {
        let mut c = Node::builder("collection").attr("name", "regular");
        for (k, v) in attrs {
            c = c.attr(*k, *v);
        }
        Node::builder("iq")
            .children([Node::builder("sync")
                .children([c.children(children).build()])
                .build()])
            .build()
    }

    #[test]
    fn replies_parse_and_fill_missing_versions() {
        let p = SyncdPatch {
            patch_mac: Some(vec![1; 32]),
            ..Default::default()
        }
        .encode_to_vec();
        let r = reply(
            vec![
                Node::builder("patches")
                    .children([
                        Node::builder("patch").bytes(p.clone()).build(),
                        Node::builder("patch").bytes(p).build(),
                    ])
                    .build(),
            ],
            &[("version", "4"), ("has_more_patches", "true")],
        );
        let parsed = parse_collection_reply(&r, "regular").unwrap();
        assert!(parsed.has_more && parsed.error.is_none());
        let versions: Vec<_> = parsed
            .patches
            .iter()
            .map(|p| p.version.as_ref().and_then(|v| v.version))
            .collect();
        assert_eq!(versions, vec![Some(5), Some(6)]);
        assert!(parse_collection_reply(&r, "regular_high").is_err());
        let err = reply(
            vec![
                Node::builder("error")
                    .attr("code", "409")
                    .attr("text", "conflict")
                    .build(),
            ],
            &[("type", "error")],
        );
        assert_eq!(
            parse_collection_reply(&err, "regular").unwrap().error,
            Some((409, "conflict".into()))
        );
        let junk = reply(
            vec![
                Node::builder("snapshot")
                    .bytes(vec![0xff, 0xff, 0xff])
                    .build(),
            ],
            &[],
        );
        assert!(parse_collection_reply(&junk, "regular").is_err());
    }

    #[test]
    fn a_version_with_no_successor_is_malformed() {
        let p = SyncdPatch {
            patch_mac: Some(vec![1; 32]),
            ..Default::default()
        }
        .encode_to_vec();
        let patches = |n: usize| {
            vec![
                Node::builder("patches")
                    .children((0..n).map(|_| Node::builder("patch").bytes(p.clone()).build()))
                    .build(),
            ]
        };
        let max = u64::MAX.to_string();
        let before_max = (u64::MAX - 1).to_string();
        let at = |v: &str, n| {
            let c = Node::builder("collection")
                .attr("name", "regular")
                .attr("version", v.to_owned())
                .children(patches(n))
                .build();
            let r = Node::builder("iq")
                .children([Node::builder("sync").children([c]).build()])
                .build();
            parse_collection_reply(&r, "regular")
        };
        assert!(matches!(at(&max, 1), Err(Error::Malformed(_))));
        assert!(matches!(at(&before_max, 2), Err(Error::Malformed(_))));
        // The last representable version is still taken, and a version with no patch
        // to number is fine.
        let last = at(&before_max, 1).unwrap();
        assert_eq!(
            last.patches[0].version.as_ref().unwrap().version,
            Some(u64::MAX)
        );
        assert_eq!(at(&max, 0).unwrap().version, u64::MAX);
    }

    proptest::proptest! {
        #[test]
        fn hostile_replies_never_panic(
            snapshot in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            patches in proptest::collection::vec(
                proptest::collection::vec(proptest::num::u8::ANY, 0..200), 0..5),
            version in "[0-9a-z-]{0,25}",
            more in "[a-z]{0,6}",
        ) {
            let mut children = vec![Node::builder("snapshot").bytes(snapshot).build()];
            children.push(
                Node::builder("patches")
                    .children(patches.into_iter().map(|p| Node::builder("patch").bytes(p).build()))
                    .build(),
            );
            let c = Node::builder("collection")
                .attr("name", "regular")
                .attr("version", version)
                .attr("has_more_patches", more)
                .children(children)
                .build();
            let r = Node::builder("iq")
                .children([Node::builder("sync").children([c]).build()])
                .build();
            if let Ok(parsed) = parse_collection_reply(&r, "regular") {
                // Every patch has a version once parsed.
                proptest::prop_assert!(parsed.patches.iter().all(|p| p.version.is_some()));
            }
        }
    }

    #[test]
    fn actions_become_grouped_events() {
        let jid = "15551234567@s.whatsapp.net";
        let list = vec![
            (
                Operation::Set,
                Action::Mute {
                    jid: jid.into(),
                    muted: true,
                    until: Some(99),
                },
                Some(5),
            ),
            (
                Operation::Set,
                Action::Archive {
                    jid: jid.into(),
                    archived: true,
                    range: None,
                },
                None,
            ),
            (
                Operation::Set,
                Action::LabelAssociation {
                    label_id: "3".into(),
                    target: LabelTarget::Chat { jid: jid.into() },
                    labeled: true,
                },
                None,
            ),
            (
                Operation::Remove,
                Action::Contact {
                    jid: jid.into(),
                    full_name: None,
                    first_name: None,
                    lid: None,
                    pn: None,
                },
                None,
            ),
            (
                Operation::Set,
                Action::Archive {
                    jid: "not a jid".into(),
                    archived: true,
                    range: None,
                },
                None,
            ),
        ];
        let events = mutation_events(&list);
        assert_eq!(events.len(), 3);
        let Event::ChatsUpdate(chats) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(chats.len(), 2);
        assert_eq!(chats[0].mute_end, Some(Some(99)));
        assert_eq!(chats[0].timestamp, Some(5));
        assert_eq!(chats[1].archived, Some(true));
        let Event::ContactsUpsert(c) = &events[1] else {
            panic!("{events:?}")
        };
        assert!(c[0].removed);
        assert!(
            matches!(&events[2], Event::LabelsAssociation(a) if a[0].labeled && a[0].label_id == "3")
        );
    }

    #[test]
    fn contacts_and_labels_carry_every_field() {
        let jid = Jid::pn("15550001");
        let name = ContactName::new("Ada Lovelace", Some("Ada".into()))
            .with_addresses(
                Some("100000001:2@lid".parse().unwrap()),
                Some("15550001@s.whatsapp.net".parse().unwrap()),
            )
            .with_username("ada")
            .save_on_primary_addressbook(true);
        let m = modification_mutation(&jid, &ChatModification::Contact(Some(name)), 1).unwrap();
        let c = m.value.contact_action.expect("contact action");
        assert_eq!(c.full_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(c.first_name.as_deref(), Some("Ada"));
        assert_eq!(c.lid_jid.as_deref(), Some("100000001@lid"));
        assert_eq!(c.pn_jid.as_deref(), Some("15550001@s.whatsapp.net"));
        assert_eq!(c.username.as_deref(), Some("ada"));
        assert_eq!(c.save_on_primary_addressbook, Some(true));

        let m = modification_mutation(
            &jid,
            &ChatModification::LabelEdit {
                label_id: "4".into(),
                name: "Paid".into(),
                color: 3,
                predefined_id: Some(4),
                deleted: false,
            },
            1,
        )
        .unwrap();
        let l = m.value.label_edit_action.expect("label edit");
        assert_eq!(l.predefined_id, Some(4));
        assert_eq!(l.name.as_deref(), Some("Paid"));
    }

    #[test]
    fn modifications_pick_their_collection() {
        let jid = Jid::pn("15550001");
        let m = modification_mutation(&jid, &ChatModification::Pin(true), 1).unwrap();
        assert_eq!(m.collection, Collection::RegularLow);
        let m =
            modification_mutation(&jid, &ChatModification::Mute(MuteUntil::Forever), 1).unwrap();
        assert_eq!(m.collection, Collection::RegularHigh);
        let m = modification_mutation(&jid, &ChatModification::Contact(None), 1).unwrap();
        assert_eq!(
            (m.collection, m.operation),
            (Collection::CriticalUnblockLow, Operation::Remove)
        );
        assert!(modification_mutation(&jid, &ChatModification::PushName(" ".into()), 1).is_err());
        assert!(
            modification_mutation(
                &jid,
                &ChatModification::ChatLabel {
                    label_id: String::new(),
                    labeled: true
                },
                1
            )
            .is_err()
        );
    }
}
