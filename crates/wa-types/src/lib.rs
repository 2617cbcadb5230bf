#![doc = include_str!("../README.md")]

mod connection;
mod event;
mod group;
mod message;
mod message_key;

pub use connection::{ConnectionState, ConnectionUpdate, DisconnectReason};
pub use event::Event;
pub use group::{
    AddressingMode, GroupChange, GroupMetadata, GroupParticipant, GroupUpdate, ParticipantRole,
};
pub use message::{MessageUpdate, MessagesUpsert, ReceiptType, WaMessage};
pub use message_key::MessageKey;
pub use wa_binary::Jid;
