use crate::NewsletterUpdate;
use crate::{
    AccountSetting, AddOnUpdate, AppStateRecoveryAnswer, AppStateRecoveryStep, AppStateSyncError,
    BlocklistUpdate, CallEvent, ChatStateUpdate, ChatUpdate, ConnectionUpdate, ContactUpdate,
    DirtyBits, GroupMetadata, GroupUpdate, HistorySync, HistorySyncFailure, HistorySyncSkipped,
    HistorySyncStatus, IdentityChange, Label, LabelAssociation, LidMapping, MemberLabelUpdate,
    MessageChange, MessageDeletion, MessageUpdate, MessagesUpsert, NewChatMessageCap,
    PasskeyConfirmation, PasskeyFailure, PasskeyRequestOptions, PictureUpdate, PresenceUpdate,
    PrivacySettings, PushNameUpdate, ReachoutTimelock, StarUpdate, UndecryptableMessage, UserAbout,
};

/// Everything a socket reports to its user, from every layer, on one bus.
///
/// New variants are added as layers land, so matches need a wildcard arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The connection changed state, or a QR code is ready to show.
    Connection(ConnectionUpdate),
    /// The stored credentials changed (pairing finished, pre-keys uploaded, ...) and have
    /// been saved.
    CredsUpdated,
    /// A pairing code was issued for phone-number linking; show it to the user.
    PairingCode(String),
    /// The server asks this unlinked companion to link with the account's passkey: run
    /// WebAuthn with these options and hand the answer to the socket. The ADV secret of
    /// the QR codes shown so far has been replaced (they no longer link).
    PasskeyRequest(Box<PasskeyRequestOptions>),
    /// The primary device answered the passkey link; compare the code, then confirm.
    PasskeyConfirmation(PasskeyConfirmation),
    /// A step of a passkey link failed while handling the server's notification.
    PasskeyError(PasskeyFailure),
    /// Messages were received (decrypted and committed) or sent (accepted by the server).
    MessagesUpsert(MessagesUpsert),
    /// Receipts (delivered, read, played, retry) for messages, one entry per message id per
    /// device.
    MessagesUpdate(Vec<MessageUpdate>),
    /// A poll vote, an event response or a reaction was received (and decrypted when
    /// encrypted), after the [`Event::MessagesUpsert`] of the message that carried it.
    AddOn(Box<AddOnUpdate>),
    /// A group member's label changed (after the [`Event::MessagesUpsert`] of the message
    /// that said so).
    MemberLabel(Box<MemberLabelUpdate>),
    /// A contact's push name changed, or was seen for the first time (after the
    /// [`Event::MessagesUpsert`] of the message that carried it).
    ContactPushName(PushNameUpdate),
    /// A group changed (`w:gp2` notification): members, name, settings, ...
    GroupUpdate(Box<GroupUpdate>),
    /// Every group we are in was fetched again (after the server flagged our groups
    /// dirty, or on request): the full metadata of each, as Baileys' `groups.update`
    /// after `groupFetchAllParticipating`. Shared with the groups cache.
    GroupsRefreshed(Vec<std::sync::Arc<GroupMetadata>>),
    /// A contact we subscribed to came online or went offline.
    PresenceUpdate(Box<PresenceUpdate>),
    /// A user's or a group's profile picture changed or was removed.
    PictureUpdate(Box<PictureUpdate>),
    /// A user's about text changed (`<notification type="status">`).
    UserAbout(Box<UserAbout>),
    /// A contact's identity key changed (a reinstall); our sessions with them were reset.
    IdentityChange(IdentityChange),
    /// A message arrived that this device could not decrypt (yet); see
    /// [`UndecryptableMessage`].
    UndecryptableMessage(Box<UndecryptableMessage>),
    /// Someone started or stopped typing or recording in a chat.
    ChatStateUpdate(Box<ChatStateUpdate>),
    /// The account's blocklist changed (from another device of the account).
    BlocklistUpdate(BlocklistUpdate),
    /// The account's privacy settings changed on another device; only the settings that
    /// changed are `Some`.
    PrivacyUpdate(PrivacySettings),
    /// A call stanza arrived: an offer, its end, a reject by another device, ... (the
    /// shape of Baileys' `call` event).
    Call(Box<CallEvent>),
    /// A history-sync chunk from the account's phone (chats, contacts, messages, LID/PN
    /// mappings), processed before the notification's message was acknowledged. Shared
    /// (`Arc`): every subscriber of the bus gets the same chunk, not a copy.
    HistorySync(std::sync::Arc<HistorySync>),
    /// A phase of history sync ended, complete or paused (see [`HistorySyncStatus`]).
    HistorySyncStatus(HistorySyncStatus),
    /// A history-sync notification could not be processed (download, verification, size
    /// or decoding failed); the message was still acknowledged.
    HistorySyncFailed(HistorySyncFailure),
    /// A history-sync notification was skipped by the application's filter
    /// (acknowledged, not downloaded); it can be processed later on request.
    HistorySyncSkipped(Box<HistorySyncSkipped>),
    /// A channel changed: a new post, reactions, views, settings, or this account's
    /// follow and mute state (`newsletter` and `mex` notifications).
    NewsletterUpdate(Box<NewsletterUpdate>),
    /// Chats were archived, pinned, muted, marked read or unread, deleted or cleared
    /// (app-state sync).
    ChatsUpdate(Vec<ChatUpdate>),
    /// Messages were starred or unstarred (app-state sync).
    MessagesStarred(Vec<StarUpdate>),
    /// Messages were deleted for this account only on another device (app-state sync).
    MessagesDeleted(Vec<MessageDeletion>),
    /// Address-book contacts were saved, changed or removed (app-state sync).
    ContactsUpsert(Vec<ContactUpdate>),
    /// Labels were created, edited or deleted (app-state sync).
    LabelsEdit(Vec<Label>),
    /// Labels were added to or removed from chats or messages (app-state sync).
    LabelsAssociation(Vec<LabelAssociation>),
    /// This account's push name was changed on another device (app-state sync).
    PushNameSetting(String),
    /// An account setting was changed on another device (app-state sync): unarchiving
    /// on new messages, the locale, the time format, link previews.
    SettingsUpdate(AccountSetting),
    /// App-state sync keys shared by our primary device were stored; collections waiting
    /// for them can be synced. Holds the key ids.
    AppStateSyncKeysReceived(Vec<Vec<u8>>),
    /// Our primary device answered a fatal app-state recovery request; the app-state layer
    /// applies it (then reports [`Event::AppStateSynced`] or [`Event::AppStateSyncError`]).
    AppStateRecoveryReceived(AppStateRecoveryAnswer),
    /// A collection was synced and its verified state stored.
    AppStateSynced {
        /// The collection.
        collection: String,
        /// Its version now.
        version: u64,
        /// Whether a snapshot was applied in this sync.
        snapshot: bool,
    },
    /// Syncing a collection hit a problem and a recovery step is being taken.
    AppStateRecovery {
        /// The collection.
        collection: String,
        /// The step.
        step: AppStateRecoveryStep,
    },
    /// Syncing a collection failed after the recovery ladder; nothing unverified was
    /// stored.
    AppStateSyncError(AppStateSyncError),
    /// The server flagged account data as changed (`<ib><dirty>`). The socket handles
    /// `account_sync` itself (it records the time and cleans the flag); the groups layer,
    /// when present, refreshes its groups on `groups`.
    DirtyBits(DirtyBits),
    /// The account's reach-out timelock was set, lifted or fetched (see
    /// [`ReachoutTimelock`]).
    ReachoutTimelock(ReachoutTimelock),
    /// The server reported the account's cap on messages to new chats.
    NewChatMessageCap(NewChatMessageCap),
    /// A received message was edited or deleted for everyone, or the group invite it
    /// carried was used (see [`MessageChange`]).
    MessageChanged(Box<MessageChange>),
    /// LID <-> phone-number mappings were stored, from wherever they were learned (a
    /// message's addressing, a usync answer, the phone's mapping sync, history sync, app
    /// state, a privacy token). A mapping may be reported again when a source names it
    /// again.
    LidMappings(Vec<LidMapping>),
}
