#![doc = include_str!("../README.md")]

mod chats;
mod connection;
mod event;
mod group;
mod message;
mod message_key;
mod newsletter;

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
pub use newsletter::{NewsletterChange, NewsletterMessage, NewsletterRole, NewsletterUpdate};
pub use wa_binary::Jid;
