#![doc = include_str!("../README.md")]

mod client;
mod error;
mod query;

pub use client::{OnWhatsApp, Usync, UsyncConfig};
pub use error::Error;
pub use query::{
    Contact, DeviceInfo, DeviceList, MAX_DEVICES_PER_USER, MAX_USERNAME_LEN, MAX_USERS, Protocol,
    UserError, UserQuery, UsyncQuery, UsyncUser, device_jids, parse_reply,
};
