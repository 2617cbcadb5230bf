#![doc = include_str!("../README.md")]

mod appstate;
mod chats;
mod connection;
mod event;
mod group;
mod message;
mod message_key;

pub use appstate::{
    AppStateFailure, AppStateRecoveryStep, AppStateSyncError, ChatUpdate, ContactUpdate, Label,
    LabelAssociation, StarUpdate,
};
pub use chats::{
    BlocklistChange, BlocklistUpdate, ChatState, ChatStateUpdate, PresenceUpdate, PrivacySetting,
    PrivacySettings, PrivacyValue,
};
pub use connection::{ConnectionState, ConnectionUpdate, DisconnectReason};
pub use event::Event;
pub use group::{
    AddressingMode, GroupChange, GroupMetadata, GroupParticipant, GroupUpdate, ParticipantRole,
};
pub use message::{MessageUpdate, MessagesUpsert, ReceiptType, WaMessage};
pub use message_key::MessageKey;
pub use wa_binary::Jid;
