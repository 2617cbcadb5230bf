pub use wa_appstate::{
    GroupPastParticipants, HistoryChat, HistoryContact, HistoryData, HistoryMessage, LidPnMapping,
    PastParticipant,
};
/// The sync type a history-sync notification announces.
pub use wa_proto::e2e::HistorySyncType;

/// One history-sync chunk the account's phone sent, downloaded (or taken inline),
/// inflated, decoded and split into chats, contacts, messages and LID/PN mappings.
#[derive(Debug, Clone, PartialEq)]
pub struct HistorySync {
    /// Id of the message that carried the notification.
    pub message_id: String,
    /// The sync type the notification announced.
    pub notification_type: HistorySyncType,
    /// Whether the payload came inline in the notification (no download).
    pub inline: bool,
    /// For an `ON_DEMAND` chunk, the id of the request it answers (the id
    /// `fetch_message_history` returned; the notification's `peerDataRequestSessionId`).
    pub request_id: Option<String>,
    /// What the chunk holds (sync type, chunk order and progress as the blob states them).
    pub data: HistoryData,
}

/// A phase of history sync ended (Baileys' `messaging-history.status`): the initial
/// bootstrap on its first chunk, the recent-chats sync on a chunk at 100 % progress
/// (`explicit`), or, paused, when no recent chunk came for a while (not `explicit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistorySyncStatus {
    /// The phase: `InitialBootstrap` or `Recent`.
    pub sync_type: HistorySyncType,
    /// Whether it completed or stalled.
    pub phase: HistorySyncPhase,
    /// The phone said so (progress 100, or the bootstrap chunk); `false` when inferred
    /// from silence.
    pub explicit: bool,
}

/// How a history-sync phase ended ([`HistorySyncStatus::phase`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistorySyncPhase {
    /// All of it arrived.
    Complete,
    /// No more chunks came within the wait; more may follow later.
    Paused,
}

/// Why a history-sync chunk could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HistorySyncErrorKind {
    /// The download failed (network, HTTP status, missing direct path).
    Download,
    /// The blob did not verify (MAC, encrypted or plaintext hash) or decrypt.
    Verify,
    /// The blob or its inflated form was larger than the configured bound.
    TooLarge,
    /// The inflated bytes were not a valid zlib stream or `HistorySync`.
    Decode,
}

/// A history-sync notification the application's filter skipped: acknowledged, not
/// downloaded. `Messenger::download_history` (in `wa-messages`) processes it later.
#[derive(Debug, Clone, PartialEq)]
pub struct HistorySyncSkipped {
    /// Id of the message that carried the notification.
    pub message_id: String,
    /// The sync type the notification announced.
    pub notification_type: HistorySyncType,
    /// The notification itself (where the chunk is, its keys and hashes, or the inline
    /// payload).
    pub notification: wa_proto::e2e::HistorySyncNotification,
}

/// A history-sync notification that was accepted for processing but failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySyncFailure {
    /// Id of the message that carried the notification.
    pub message_id: String,
    /// The sync type the notification announced.
    pub notification_type: HistorySyncType,
    /// The notification's chunk order.
    pub chunk_order: Option<u32>,
    /// What went wrong.
    pub kind: HistorySyncErrorKind,
    /// A description of the error.
    pub detail: String,
    /// The media key of the chunk's blob (`None` for a chunk carried inline), with which
    /// the phone can be asked to upload it again (`Messenger::request_history_reupload`
    /// in `wa-messages`).
    pub media_key: Option<Vec<u8>>,
}
