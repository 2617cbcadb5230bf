//! The storage roles this crate needs, and an in-memory implementation of all of them.
//!
//! Every method returns a `Send` future (`impl Future<Output = ..> + Send`), so the traits
//! can be implemented with plain `async fn` and used from multi-threaded runtimes, with
//! generic code (`S: SignalStore`) rather than trait objects. Sessions and sender keys are
//! handed over as opaque, versioned bytes ([`SessionRecord`](crate::SessionRecord) and
//! [`SenderKeyRecord`](crate::SenderKeyRecord) serialize and parse them); pre-keys as typed
//! records (each with `serialize`/`deserialize` for stores that keep bytes).
//!
//! Atomicity: an operation loads what it needs, computes, then writes. A backend that
//! wants the writes of one operation to be atomic (the session together with the removal
//! of a used pre-key) wraps the repository call in its own transaction; callers hold a
//! per-address lock so that two operations on one session do not interleave.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use wa_crypto::{KeyPair, PublicKey};
use zeroize::Zeroizing;

use crate::Error;
use crate::address::{ProtocolAddress, SenderKeyName};
use crate::keys::{PreKeyRecord, SignedPreKeyRecord};

/// Which way a message with a peer's identity key is going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We are about to send to the peer.
    Sending,
    /// We received from the peer.
    Receiving,
}

/// Our identity and the identities we know of peers.
pub trait IdentityKeyStore: Send + Sync {
    /// Our identity key pair.
    fn identity_key_pair(&self) -> impl Future<Output = Result<KeyPair, Error>> + Send;
    /// Our registration id.
    fn local_registration_id(&self) -> impl Future<Output = Result<u32, Error>> + Send;
    /// Whether `identity` may be used for `address`. Trust-on-first-use stores answer true
    /// when nothing is stored or the stored key is equal. A `false` makes the operation fail
    /// with [`Error::UntrustedIdentity`].
    fn is_trusted_identity(
        &self,
        address: &ProtocolAddress,
        identity: &PublicKey,
        direction: Direction,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
    /// Records `identity` for `address`; returns true when it replaced a different key.
    fn save_identity(
        &self,
        address: &ProtocolAddress,
        identity: &PublicKey,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
    /// The identity stored for `address`.
    fn get_identity(
        &self,
        address: &ProtocolAddress,
    ) -> impl Future<Output = Result<Option<PublicKey>, Error>> + Send;
}

/// Our one-time pre-keys.
pub trait PreKeyStore: Send + Sync {
    /// Loads a pre-key by id.
    fn load_pre_key(
        &self,
        id: u32,
    ) -> impl Future<Output = Result<Option<PreKeyRecord>, Error>> + Send;
    /// Removes a pre-key once a session built on it decrypted a message.
    fn remove_pre_key(&self, id: u32) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Our signed pre-keys.
pub trait SignedPreKeyStore: Send + Sync {
    /// Loads a signed pre-key by id.
    fn load_signed_pre_key(
        &self,
        id: u32,
    ) -> impl Future<Output = Result<Option<SignedPreKeyRecord>, Error>> + Send;
}

/// Session records, as opaque bytes, keyed by peer address.
pub trait SessionStore: Send + Sync {
    /// Loads the serialized session record for `address`.
    fn load_session(
        &self,
        address: &ProtocolAddress,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Error>> + Send;
    /// Stores the serialized session record for `address`.
    fn store_session(
        &self,
        address: &ProtocolAddress,
        record: Vec<u8>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Deletes the session record for `address` (no error if there is none).
    fn delete_session(
        &self,
        address: &ProtocolAddress,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Sender-key records, as opaque bytes, keyed by (group, sender).
pub trait SenderKeyStore: Send + Sync {
    /// Loads the serialized sender-key record.
    fn load_sender_key(
        &self,
        name: &SenderKeyName,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Error>> + Send;
    /// Stores the serialized sender-key record.
    fn store_sender_key(
        &self,
        name: &SenderKeyName,
        record: Vec<u8>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Every role at once: what [`SignalRepository`](crate::SignalRepository) needs.
pub trait SignalStore:
    IdentityKeyStore + PreKeyStore + SignedPreKeyStore + SessionStore + SenderKeyStore
{
}

impl<T> SignalStore for T where
    T: IdentityKeyStore + PreKeyStore + SignedPreKeyStore + SessionStore + SenderKeyStore
{
}

#[derive(Default)]
struct Maps {
    identities: HashMap<ProtocolAddress, PublicKey>,
    pre_keys: HashMap<u32, PreKeyRecord>,
    signed_pre_keys: HashMap<u32, SignedPreKeyRecord>,
    // Serialized records hold chain and message keys: wiped when replaced or dropped.
    sessions: HashMap<ProtocolAddress, Zeroizing<Vec<u8>>>,
    sender_keys: HashMap<SenderKeyName, Zeroizing<Vec<u8>>>,
}

/// An in-memory store for every role (tests, benchmarks, short-lived tools). Identities
/// are trusted on first use.
pub struct InMemoryStore {
    identity: KeyPair,
    registration_id: u32,
    maps: Mutex<Maps>,
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("identity", &self.identity.public)
            .field("registration_id", &self.registration_id)
            .finish_non_exhaustive()
    }
}

impl InMemoryStore {
    /// A store for the device with this identity and registration id.
    pub fn new(identity: KeyPair, registration_id: u32) -> Self {
        Self {
            identity,
            registration_id,
            maps: Mutex::new(Maps::default()),
        }
    }

    fn maps(&self) -> MutexGuard<'_, Maps> {
        // A panic while holding the lock cannot leave the maps half-updated (each access
        // is one map operation), so a poisoned lock is still usable.
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a one-time pre-key.
    pub fn add_pre_key(&self, record: PreKeyRecord) {
        self.maps().pre_keys.insert(record.id, record);
    }

    /// Adds a signed pre-key.
    pub fn add_signed_pre_key(&self, record: SignedPreKeyRecord) {
        self.maps().signed_pre_keys.insert(record.id, record);
    }

    /// Whether a pre-key is still held.
    pub fn has_pre_key(&self, id: u32) -> bool {
        self.maps().pre_keys.contains_key(&id)
    }
}

impl IdentityKeyStore for InMemoryStore {
    async fn identity_key_pair(&self) -> Result<KeyPair, Error> {
        Ok(self.identity.clone())
    }

    async fn local_registration_id(&self) -> Result<u32, Error> {
        Ok(self.registration_id)
    }

    async fn is_trusted_identity(
        &self,
        address: &ProtocolAddress,
        identity: &PublicKey,
        _direction: Direction,
    ) -> Result<bool, Error> {
        Ok(self
            .maps()
            .identities
            .get(address)
            .is_none_or(|known| known == identity))
    }

    async fn save_identity(
        &self,
        address: &ProtocolAddress,
        identity: &PublicKey,
    ) -> Result<bool, Error> {
        let mut maps = self.maps();
        let old = match maps.identities.get_mut(address) {
            Some(known) => Some(std::mem::replace(known, *identity)),
            None => maps.identities.insert(address.clone(), *identity),
        };
        Ok(old.is_some_and(|o| o != *identity))
    }

    async fn get_identity(&self, address: &ProtocolAddress) -> Result<Option<PublicKey>, Error> {
        Ok(self.maps().identities.get(address).copied())
    }
}

impl PreKeyStore for InMemoryStore {
    async fn load_pre_key(&self, id: u32) -> Result<Option<PreKeyRecord>, Error> {
        Ok(self.maps().pre_keys.get(&id).cloned())
    }

    async fn remove_pre_key(&self, id: u32) -> Result<(), Error> {
        self.maps().pre_keys.remove(&id);
        Ok(())
    }
}

impl SignedPreKeyStore for InMemoryStore {
    async fn load_signed_pre_key(&self, id: u32) -> Result<Option<SignedPreKeyRecord>, Error> {
        Ok(self.maps().signed_pre_keys.get(&id).cloned())
    }
}

impl SessionStore for InMemoryStore {
    async fn load_session(&self, address: &ProtocolAddress) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.maps().sessions.get(address).map(|r| r.to_vec()))
    }

    async fn store_session(&self, address: &ProtocolAddress, record: Vec<u8>) -> Result<(), Error> {
        // Replaced in place when present: no copy of the address per message.
        let mut maps = self.maps();
        match maps.sessions.get_mut(address) {
            Some(kept) => *kept = Zeroizing::new(record),
            None => {
                maps.sessions
                    .insert(address.clone(), Zeroizing::new(record));
            }
        }
        Ok(())
    }

    async fn delete_session(&self, address: &ProtocolAddress) -> Result<(), Error> {
        self.maps().sessions.remove(address);
        Ok(())
    }
}

impl SenderKeyStore for InMemoryStore {
    async fn load_sender_key(&self, name: &SenderKeyName) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.maps().sender_keys.get(name).map(|r| r.to_vec()))
    }

    async fn store_sender_key(&self, name: &SenderKeyName, record: Vec<u8>) -> Result<(), Error> {
        self.maps()
            .sender_keys
            .insert(name.clone(), Zeroizing::new(record));
        Ok(())
    }
}
