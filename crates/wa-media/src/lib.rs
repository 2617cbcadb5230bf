#![doc = include_str!("../README.md")]

mod cipher;
mod error;
mod keys;
mod message;
mod transfer;

pub use cipher::{
    BLOCK, Decryptor, EncryptedInfo, Encryptor, Expected, MAC_LEN, RangePlan, Verifier, decrypt,
    encrypt,
};
pub use error::Error;
pub use keys::{MediaKeys, MediaType};
pub use message::{
    MediaKind, MediaOptions, THUMBNAIL_WIDTH, downloadable, jpeg_thumbnail, media_message,
};
pub use transfer::{
    DEFAULT_MEDIA_HOST, Downloadable, Media, MediaConfig, MediaConn, MediaHost, Progress, Uploaded,
};
