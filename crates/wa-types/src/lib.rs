#![doc = include_str!("../README.md")]

mod connection;
mod event;

pub use connection::{ConnectionState, ConnectionUpdate, DisconnectReason};
pub use event::Event;
pub use wa_binary::Jid;
