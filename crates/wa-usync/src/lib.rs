#![doc = include_str!("../README.md")]

mod client;
mod error;
mod query;
mod vname;

pub use client::{OnWhatsApp, UserInfo, Usync, UsyncConfig};
pub use error::Error;
pub use query::{
    Contact, DeviceInfo, DeviceList, DisappearingMode, MAX_DEVICES_PER_USER, MAX_PICTURE_ID_LEN,
    MAX_STATUS_LEN, MAX_USERNAME_LEN, MAX_USERS, Protocol, UserError, UserQuery, UserStatus,
    UsyncQuery, UsyncUser, device_jids, parse_reply,
};
pub use vname::{MAX_CERTIFICATE_LEN, MAX_VERIFIED_NAME_LEN, VerifiedName};
