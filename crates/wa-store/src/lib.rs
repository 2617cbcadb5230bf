#![doc = include_str!("../README.md")]

mod account;
mod backend;
#[cfg(feature = "baileys")]
pub mod baileys;
mod batch;
mod cache;
mod creds;
mod error;
mod memory;
mod privacy;
mod signal;

/// The hasher of the in-process maps looked up on every message (the memory backend's
/// items, a staged Signal adapter's reads and writes): foldhash, seeded per process, a
/// few times faster than SipHash on short keys, with weaker (foldhash's "minimal")
/// resistance to keys chosen to collide.
type FastHash = foldhash::fast::RandomState;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use account::{
    AccountStore, AppStateStore, ChatSettingStore, ContactStore, CredsStore, IdentityStore,
    InboxStore, LidMappingStore, MessageSecretStore, PreKeyStore, PrivacyTokenStore,
    ProcessedMessageStore, SenderKeyMemoryStore, SenderKeyStore, SentMessageStore, SessionStore,
    SignedPreKeyStore,
};
pub use backend::{AccountId, Backend, BoxFuture, MAX_KEY_LEN, Op, Role, open, seal};
pub use batch::Batch;
pub use bytes::Bytes;
pub use cache::{CacheConfig, CachedBackend};
pub use creds::{AuthCreds, SignedPreKey};
pub use error::{Error, Result};
pub use memory::MemoryBackend;
pub use privacy::{MAX_PRIVACY_TOKEN_LEN, PrivacyToken};
pub use signal::SignalStoreAdapter;
