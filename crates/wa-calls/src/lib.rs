#![doc = include_str!("../README.md")]

mod client;
mod error;
mod parse;

pub use client::{CallLink, CallMedia, Calls, CallsConfig};
pub use error::Error;
pub use parse::{MAX_CALL_ID, MAX_LINK_TOKEN, call_status, parse_call, parse_link_create_reply};
pub use wa_types::{CallEvent, CallStatus};
