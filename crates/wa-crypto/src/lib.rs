#![doc = include_str!("../README.md")]

mod error;
mod kdf;
mod keys;
mod xeddsa;

pub use error::Error;
pub use kdf::{
    HmacSha256Key, ct_eq, hkdf_sha256, hkdf_sha256_into, hmac_sha256, hmac_sha256_parts,
};
pub use keys::{KEY_TYPE_DJB, KeyPair, PrivateKey, PublicKey, SharedSecret, Signature};
