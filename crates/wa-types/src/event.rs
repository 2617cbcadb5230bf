use crate::NewsletterUpdate;
use crate::{
    BlocklistUpdate, CallEvent, ChatStateUpdate, ConnectionUpdate, GroupUpdate, HistorySync,
    HistorySyncFailure, MessageUpdate, MessagesUpsert, PresenceUpdate, PrivacySettings,
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
    /// Messages were received (decrypted and committed) or sent (accepted by the server).
    MessagesUpsert(MessagesUpsert),
    /// Receipts (delivered, read, played, retry) for messages, one entry per message id per
    /// device.
    MessagesUpdate(Vec<MessageUpdate>),
    /// A group changed (`w:gp2` notification): members, name, settings, ...
    GroupUpdate(GroupUpdate),
    /// A contact we subscribed to came online or went offline.
    PresenceUpdate(PresenceUpdate),
    /// Someone started or stopped typing or recording in a chat.
    ChatStateUpdate(ChatStateUpdate),
    /// The account's blocklist changed (from another device of the account).
    BlocklistUpdate(BlocklistUpdate),
    /// The account's privacy settings changed on another device; only the settings that
    /// changed are `Some`.
    PrivacyUpdate(PrivacySettings),
    /// A call stanza arrived: an offer, its end, a reject by another device, ... (the
    /// shape of Baileys' `call` event).
    Call(CallEvent),
    /// A history-sync chunk from the account's phone (chats, contacts, messages, LID/PN
    /// mappings), processed before the notification's message was acknowledged.
    HistorySync(Box<HistorySync>),
    /// A history-sync notification could not be processed (download, verification, size
    /// or decoding failed); the message was still acknowledged.
    HistorySyncFailed(HistorySyncFailure),
    /// A channel changed: a new post, reactions, views, settings, or this account's
    /// follow and mute state (`newsletter` and `mex` notifications).
    NewsletterUpdate(NewsletterUpdate),
}
