#![doc = include_str!("../README.md")]

mod cipher;
mod error;
mod keys;

pub use cipher::{
    BLOCK, Decryptor, EncryptedInfo, Encryptor, Expected, MAC_LEN, RangePlan, Verifier, decrypt,
    encrypt,
};
pub use error::Error;
pub use keys::{MediaKeys, MediaType};
