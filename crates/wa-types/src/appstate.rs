//! What app-state sync (archive, pin, mute, labels, contacts, ...) reports.

use wa_binary::Jid;

use crate::MessageKey;

/// A chat changed on another device of the account (or on this one), through app-state
/// sync. Only the fields the change concerns are set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatUpdate {
    /// The chat.
    pub jid: Jid,
    /// Archived (`true`) or unarchived.
    pub archived: Option<bool>,
    /// Pinned (`true`) or unpinned.
    pub pinned: Option<bool>,
    /// Muted until this Unix time in milliseconds (`Some(Some(-1))`: forever), or unmuted
    /// (`Some(None)`).
    pub mute_end: Option<Option<i64>>,
    /// Marked read (`true`) or unread.
    pub read: Option<bool>,
    /// The chat was deleted.
    pub deleted: bool,
    /// The chat's messages were cleared.
    pub cleared: bool,
    /// Locked (`true`, behind the device's chat lock) or unlocked.
    pub locked: Option<bool>,
    /// When the change was made (Unix milliseconds), as the device that made it says.
    pub timestamp: Option<i64>,
    /// The messages an archive, mark-read, delete or clear covers, when the device that
    /// made it named them: apply the change only if the chat has nothing newer (as
    /// Baileys' `conditional` does).
    pub message_range: Option<MessageRange>,
}

impl ChatUpdate {
    /// An update of `jid` that changes nothing yet.
    pub fn new(jid: Jid) -> Self {
        Self {
            jid,
            archived: None,
            pinned: None,
            mute_end: None,
            read: None,
            deleted: false,
            cleared: false,
            locked: None,
            timestamp: None,
            message_range: None,
        }
    }
}

/// One of a chat's last messages, named in the message range of an archive, mark read,
/// delete or clear (Baileys' `lastMessages`): devices apply the change only up to it, so
/// a message that arrived meanwhile is not swept along.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastMessage {
    /// The message.
    pub key: MessageKey,
    /// Its timestamp, unix seconds (0 when the range did not say).
    pub timestamp: i64,
}

impl LastMessage {
    /// The message `key`, sent or received at `timestamp` (unix seconds).
    pub fn new(key: MessageKey, timestamp: i64) -> Self {
        Self { key, timestamp }
    }
}

/// The messages a chat change covers (`SyncActionMessageRange`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MessageRange {
    /// The newest message's timestamp, unix seconds.
    pub last_message_timestamp: Option<i64>,
    /// The newest system message's timestamp, unix seconds.
    pub last_system_message_timestamp: Option<i64>,
    /// The chat's last messages, as the device named them.
    pub messages: Vec<LastMessage>,
}

/// A message was starred or unstarred.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StarUpdate {
    /// The message.
    pub key: MessageKey,
    /// Starred (`true`) or unstarred.
    pub starred: bool,
}

impl StarUpdate {
    /// A star change.
    pub fn new(key: MessageKey, starred: bool) -> Self {
        Self { key, starred }
    }
}

/// A message was deleted for this account only ("delete for me") on another device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageDeletion {
    /// The message (its participant is the sender in a group, when not ours).
    pub key: MessageKey,
    /// Whether its media was deleted too.
    pub delete_media: bool,
    /// The message's own timestamp (unix seconds), when given.
    pub message_timestamp: Option<i64>,
}

impl MessageDeletion {
    /// A deletion of `key`.
    pub fn new(key: MessageKey, delete_media: bool, message_timestamp: Option<i64>) -> Self {
        Self {
            key,
            delete_media,
            message_timestamp,
        }
    }
}

/// An address-book contact was saved, changed or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContactUpdate {
    /// The contact.
    pub jid: Jid,
    /// Full name from the address book.
    pub full_name: Option<String>,
    /// First name from the address book.
    pub first_name: Option<String>,
    /// The contact's LID, when given.
    pub lid: Option<Jid>,
    /// The contact's phone-number JID, when given.
    pub pn: Option<Jid>,
    /// The contact's username, when given.
    pub username: Option<String>,
    /// The contact was removed from the address book.
    pub removed: bool,
}

impl ContactUpdate {
    /// A contact update with no names.
    pub fn new(jid: Jid) -> Self {
        Self {
            jid,
            full_name: None,
            first_name: None,
            lid: None,
            pn: None,
            username: None,
            removed: false,
        }
    }
}

/// A label was created, edited or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Label {
    /// The label id.
    pub id: String,
    /// Its name.
    pub name: Option<String>,
    /// Its colour index.
    pub color: Option<i32>,
    /// The predefined label it derives from.
    pub predefined_id: Option<i32>,
    /// The label was deleted.
    pub deleted: bool,
}

impl Label {
    /// A label with only an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
            color: None,
            predefined_id: None,
            deleted: false,
        }
    }
}

/// A label was added to or removed from a chat or a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LabelAssociation {
    /// The label id.
    pub label_id: String,
    /// The chat (of the message, for a message label).
    pub chat: Jid,
    /// The message, for a message label.
    pub message_id: Option<String>,
    /// Added (`true`) or removed.
    pub labeled: bool,
}

impl LabelAssociation {
    /// A label association.
    pub fn new(
        label_id: impl Into<String>,
        chat: Jid,
        message_id: Option<String>,
        labeled: bool,
    ) -> Self {
        Self {
            label_id: label_id.into(),
            chat,
            message_id,
            labeled,
        }
    }
}

/// A step of the app-state recovery ladder, reported before it is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppStateRecoveryStep {
    /// The stored state or a patch did not verify: the state is dropped and the
    /// collection fetched again from a snapshot.
    SnapshotResync,
    /// A sync key is missing: it was requested from the account's other devices
    /// (`APP_STATE_SYNC_KEY_REQUEST`), and the sync waits for it.
    KeyRequest {
        /// The ids of the missing keys.
        key_ids: Vec<Vec<u8>>,
    },
    /// The collection was asked of the primary device in plaintext (a
    /// `COMPANION_SYNCD_SNAPSHOT_FATAL_RECOVERY` peer request); its answer replaces the
    /// stored state.
    PhoneRecovery,
}

/// Why syncing a collection failed for good (after the recovery ladder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AppStateFailure {
    /// A sync key is missing and did not arrive; the collection is synced again when it
    /// does.
    MissingKey,
    /// A MAC or the LTHash did not verify, even from a fresh snapshot.
    Verification,
    /// The server refused the request or sent something malformed.
    Server,
    /// The store failed.
    Store,
    /// The primary device's recovery answer was unusable (corrupt, oversized, of another
    /// collection or not adding up); the stored state was left as it was.
    Recovery,
}

/// The primary device's answer to a fatal-recovery request
/// (`PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE` of type
/// `COMPANION_SYNCD_SNAPSHOT_FATAL_RECOVERY`), as received; the app-state layer decodes
/// and applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppStateRecoveryAnswer {
    /// The id of the request it answers (`stanzaId`), when it names one.
    pub request_id: Option<String>,
    /// The `collectionSnapshot` bytes (an encoded `SyncdSnapshotRecovery`), absent when the
    /// answer carried none.
    pub snapshot: Option<Vec<u8>>,
    /// Whether `snapshot` is compressed (`isCompressed`).
    pub compressed: bool,
}

impl AppStateRecoveryAnswer {
    /// An answer.
    pub fn new(request_id: Option<String>, snapshot: Option<Vec<u8>>, compressed: bool) -> Self {
        Self {
            request_id,
            snapshot,
            compressed,
        }
    }
}

/// How syncing one collection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppStateSyncError {
    /// The collection (`regular_high`, ...).
    pub collection: String,
    /// The kind of failure.
    pub kind: AppStateFailure,
    /// A description of the last error.
    pub message: String,
}

impl AppStateSyncError {
    /// A sync failure.
    pub fn new(collection: impl Into<String>, kind: AppStateFailure, message: String) -> Self {
        Self {
            collection: collection.into(),
            kind,
            message,
        }
    }
}
