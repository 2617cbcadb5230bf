#![doc = include_str!("../README.md")]

mod admin;
mod appstate;
mod bot;
mod business;
mod call;
mod chats;
mod community;
mod config;
mod conn;
mod dirty;
mod e2e;
mod error;
mod fault;
mod group;
mod history;
mod kdf;
mod links;
mod media;
mod net;
mod newsletter;
mod passkey;
mod persist;
mod phone;
mod phone_media;
mod privacy_token;
mod reporting;
mod restriction;
mod route;
mod sim;
mod state;
mod sticker;
mod usync;

pub use appstate::{AppStateTamper, RecoveryAnswer};
pub use call::CallNotice;
pub use chats::StatusPrivacyMode;
pub use config::{QrTiming, SimConfig};
pub use e2e::PhoneMessage;
pub use error::Error;
pub use fault::{Fault, FaultState, SenderAddressing, StreamErrorKind, Target};
pub use passkey::{PasskeyContinuation, PasskeyPrologue, PasskeyScan};
pub use sim::Sim;
pub use state::{AccountInfo, LinkedDevice, SimState};
pub use sticker::SimSticker;

/// Re-exported so that users can name JIDs and keys without extra dependencies.
pub use wa_binary::Jid;
/// The key type of [`Sim::root_public_key`].
pub use wa_crypto::PublicKey;
/// Re-exported: the message type of [`Sim::phone_send`] and [`PhoneMessage`].
pub use wa_proto::e2e::Message;
