#![doc = include_str!("../README.md")]

mod address;
mod codec;
mod error;
mod group;
mod import;
mod jid;
mod kdf;
mod keys;
mod message;
mod padding;
mod proto;
mod repository;
mod session;
mod state;
mod store;

pub use address::{ProtocolAddress, SenderKeyName, SignalAddress};
pub use error::Error;
pub use group::{MAX_SENDER_KEY_STATES, SenderKeyRecord};
pub use import::{
    ImportedChain, ImportedPendingPreKey, ImportedSenderKey, ImportedSession, SkippedKeys,
};
pub use keys::{
    MAX_PRE_KEY_ID, PreKeyBundle, PreKeyRecord, SignedPreKeyRecord, generate_identity_key_pair,
    generate_pre_keys, generate_registration_id, generate_sender_key_id, generate_signed_pre_key,
};
pub use message::{
    CIPHERTEXT_VERSION, MAC_LENGTH, PreKeySignalMessage, SenderKeyDistributionMessage,
    SenderKeyMessage, SignalMessage,
};
pub use padding::{pad_message, pad_message_with, unpad_message};
pub use repository::{EncryptedMessage, GroupEncryptedMessage, SessionInfo, SignalRepository};
pub use session::CiphertextType;
pub use state::{MAX_PREVIOUS_STATES, MAX_RECEIVER_CHAINS, MAX_SKIPPED_KEYS, SessionRecord};
pub use store::{
    Direction, IdentityKeyStore, InMemoryStore, PreKeyStore, SenderKeyStore, SessionStore,
    SignalStore, SignedPreKeyStore,
};
/// Key types this crate's API uses, from `wa-crypto`.
pub use wa_crypto::{KeyPair, PrivateKey, PublicKey, Signature};
