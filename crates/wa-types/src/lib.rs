#![doc = include_str!("../README.md")]

mod appstate;
mod call;
mod chats;
mod connection;
mod event;
mod group;
mod history;
mod message;
mod message_key;
mod newsletter;
mod passkey;
mod restriction;

pub use appstate::{
    AppStateFailure, AppStateRecoveryAnswer, AppStateRecoveryStep, AppStateSyncError, ChatUpdate,
    ContactUpdate, Label, LabelAssociation, LastMessage, MessageDeletion, MessageRange, StarUpdate,
};
pub use call::{CallEvent, CallStatus};
pub use chats::{
    BlocklistChange, BlocklistUpdate, ChatState, ChatStateUpdate, LidMapping, PictureUpdate,
    PresenceUpdate, PrivacySetting, PrivacySettings, PrivacyValue, StatusPrivacy,
    StatusPrivacyKind, UserAbout,
};
pub use connection::{ConnectionState, ConnectionUpdate, DirtyBits, DisconnectReason};
pub use event::Event;
pub use group::{
    AddressingMode, GroupChange, GroupLinkType, GroupMetadata, GroupParticipant, GroupUpdate,
    JoinRequest, LinkedGroup, ParticipantRole,
};
pub use history::{
    GroupPastParticipants, HistoryChat, HistoryContact, HistoryData, HistoryMessage, HistorySync,
    HistorySyncErrorKind, HistorySyncFailure, HistorySyncPhase, HistorySyncSkipped,
    HistorySyncStatus, HistorySyncType, LidPnMapping, PastParticipant,
};
pub use message::{
    AddOnKind, AddOnUpdate, BotEdit, BotEditKind, IdentityChange, MemberLabelUpdate, MessageChange,
    MessageChangeKind, MessageUpdate, MessagesUpsert, PushNameUpdate, ReceiptType,
    UndecryptableMessage, WaMessage,
};
pub use message_key::MessageKey;
pub use newsletter::{NewsletterChange, NewsletterMessage, NewsletterRole, NewsletterUpdate};
pub use passkey::{
    PasskeyConfirmation, PasskeyCredential, PasskeyErrorKind, PasskeyFailure, PasskeyRequestOptions,
};
pub use restriction::{NewChatMessageCap, ReachoutTimelock};
pub use wa_appstate::AccountSetting;
pub use wa_binary::Jid;
