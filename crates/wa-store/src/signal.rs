use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use wa_crypto::{KeyPair, PublicKey};
use wa_signal::{
    Direction, IdentityKeyStore, PreKeyRecord, ProtocolAddress, SenderKeyName, SignedPreKeyRecord,
};

use crate::batch::{NO_SCOPE, device_key, id_key};
use crate::{AccountStore, AuthCreds, Batch, CredsStore, FastHash, Result, Role, SignedPreKey};

/// Items (or their absence, `None`) by role, scope and key, nested so that a lookup
/// borrows its scope and key instead of building owned strings: a send reads each
/// recipient's session and identity through here. The maps live for one group of
/// operations.
#[derive(Default)]
struct ItemMap(HashMap<Role, HashMap<String, Keys, FastHash>, FastHash>);

type Keys = HashMap<String, Option<Bytes>, FastHash>;

impl ItemMap {
    fn get(&self, role: Role, scope: &str, key: &str) -> Option<&Option<Bytes>> {
        self.0.get(&role)?.get(scope)?.get(key)
    }

    fn contains(&self, role: Role, scope: &str, key: &str) -> bool {
        self.get(role, scope, key).is_some()
    }

    fn insert(&mut self, role: Role, scope: &str, key: &str, value: Option<Bytes>) {
        let scopes = self.0.entry(role).or_default();
        match scopes.get_mut(scope) {
            Some(keys) => {
                keys.insert(key.to_owned(), value);
            }
            None => {
                scopes.insert(scope.to_owned(), Keys::from_iter([(key.to_owned(), value)]));
            }
        }
    }

    /// Inserts unless an entry is there.
    fn insert_absent(&mut self, role: Role, scope: &str, key: &str, value: Option<Bytes>) {
        if !self.contains(role, scope, key) {
            self.insert(role, scope, key, value);
        }
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Writes buffered by a staged adapter, and what they make reads see.
#[derive(Default)]
struct Staged {
    batch: Batch,
    overlay: ItemMap,
    /// Sessions and identity keys as stored when first read (ahead by
    /// [`SignalStoreAdapter::prefetch`], or by a single read), so that each is read once.
    prefetched: ItemMap,
    /// Addresses whose identity key a staged write replaced with a different one.
    replaced: Vec<ProtocolAddress>,
}

/// `wa-signal`'s store traits implemented over an account's roles.
///
/// Two modes:
/// - **direct** ([`SignalStoreAdapter::new`]): every write is committed at once;
/// - **staged** ([`SignalStoreAdapter::staged`]): writes are buffered (later reads see
///   them) and committed together by [`SignalStoreAdapter::commit`], with any extra writes
///   of the caller, in one atomic batch. Decrypting a `pkmsg` this way writes "session
///   updated + identity saved + pre-key consumed (+ message acknowledged)" whole or not at
///   all, and a removed pre-key must still exist at commit, so two concurrent decryptions
///   can never both consume it. A staged adapter also keeps each session and identity
///   key it reads (see [`SignalStoreAdapter::prefetch`]) until it commits, so it reads
///   each once: use it where nothing else writes the account's Signal state meanwhile.
///
/// Our identity key pair, registration id and current signed pre-key come from
/// [`AuthCreds`]; older signed pre-keys from [`Role::SignedPreKey`]. Remote identities are
/// trusted on first use; a different key is untrusted until the caller deletes or replaces
/// the stored one.
pub struct SignalStoreAdapter {
    store: AccountStore,
    identity: KeyPair,
    registration_id: u32,
    signed_pre_key: SignedPreKey,
    staged: Option<Mutex<Staged>>,
}

impl std::fmt::Debug for SignalStoreAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalStoreAdapter")
            .field("account", self.store.account())
            .field("identity", &self.identity.public)
            .field("staged", &self.staged.is_some())
            .finish_non_exhaustive()
    }
}

fn err(e: crate::Error) -> wa_signal::Error {
    wa_signal::Error::store(e)
}

fn sender_key(name: &SenderKeyName) -> (String, String) {
    (
        name.group_id.clone(),
        format!("{}::{}", name.sender.name, name.sender.device_id),
    )
}

impl SignalStoreAdapter {
    /// A direct-mode adapter for `store`, whose device is described by `creds`.
    pub fn new(store: AccountStore, creds: &AuthCreds) -> Self {
        Self {
            store,
            identity: creds.identity_key.clone(),
            registration_id: creds.registration_id,
            signed_pre_key: creds.signed_pre_key.clone(),
            staged: None,
        }
    }

    /// A direct-mode adapter for `store`, reading its credentials.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) when the account has no
    /// credentials; store errors otherwise.
    pub async fn load(store: AccountStore) -> Result<Self> {
        let creds = store
            .load_creds()
            .await?
            .ok_or_else(|| crate::Error::InvalidInput("account has no credentials".into()))?;
        Ok(Self::new(store, &creds))
    }

    /// A staged copy of this adapter: its writes wait for [`SignalStoreAdapter::commit`].
    pub fn staged(&self) -> Self {
        Self {
            store: self.store.clone(),
            identity: self.identity.clone(),
            registration_id: self.registration_id,
            signed_pre_key: self.signed_pre_key.clone(),
            staged: Some(Mutex::new(Staged::default())),
        }
    }

    /// The addresses whose stored identity key a write of this staged adapter replaced
    /// with a different key (a peer that reinstalled), in order, each once; empty for a
    /// direct adapter. Not cleared by [`SignalStoreAdapter::commit`], so it can be read
    /// once the commit succeeded.
    pub fn replaced_identities(&self) -> Vec<ProtocolAddress> {
        self.stage()
            .map(|st| st.replaced.clone())
            .unwrap_or_default()
    }

    /// The account store underneath.
    pub fn store(&self) -> &AccountStore {
        &self.store
    }

    /// Commits the staged writes followed by `extra`, atomically. A direct-mode adapter
    /// commits just `extra`.
    ///
    /// # Errors
    /// [`Error::Conflict`](crate::Error::Conflict) when a pre-key this operation consumed
    /// was consumed by another batch first (nothing is written); store errors otherwise.
    ///
    /// The staging area is emptied either way, so the adapter can be reused; after a
    /// failed commit, reads again see only what is stored.
    pub async fn commit(&self, extra: Batch) -> Result<()> {
        let mut batch = match self.stage() {
            Some(mut st) => {
                st.overlay.clear();
                st.prefetched.clear();
                std::mem::take(&mut st.batch)
            }
            None => Batch::new(),
        };
        batch.append(extra);
        self.store.commit(batch).await
    }

    /// Moves the sender key that `from` holds in `group` to `to` (the same device under its
    /// other address, e.g. its LID once known), unless `to` already holds one, in which case
    /// the `from` record is dropped. Writes go through this adapter, so a staged adapter
    /// commits the move with the operation that needed it. Returns whether a record moved.
    ///
    /// # Errors
    /// Store errors.
    pub async fn move_sender_key(
        &self,
        group: &str,
        from: &ProtocolAddress,
        to: &ProtocolAddress,
    ) -> Result<bool> {
        let (scope, from_key) = sender_key(&SenderKeyName::new(group, from.clone()));
        let (_, to_key) = sender_key(&SenderKeyName::new(group, to.clone()));
        if from_key == to_key {
            return Ok(false);
        }
        let Some(record) = self.read(Role::SenderKey, &scope, &from_key).await? else {
            return Ok(false);
        };
        let moved = self.read(Role::SenderKey, &scope, &to_key).await?.is_none();
        if moved {
            self.write(Role::SenderKey, &scope, &to_key, Some(&record), |b| {
                b.put_sender_key(&scope, &to_key, &record);
            })
            .await?;
        }
        self.write(Role::SenderKey, &scope, &from_key, None, |b| {
            b.delete_sender_key(&scope, &from_key);
        })
        .await?;
        Ok(moved)
    }

    fn stage(&self) -> Option<MutexGuard<'_, Staged>> {
        // Staging only appends to a batch and a map; a panic cannot leave them torn.
        self.staged
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Reads the sessions and identity keys of `addresses` ahead, in one bulk read per
    /// role ([`AccountStore::get_items`]), so that encrypting for many devices costs two
    /// store round trips instead of a few per device. Only a staged adapter keeps them
    /// (until [`SignalStoreAdapter::commit`]); a direct adapter ignores the call. Items
    /// it holds already (read or written before) are not read again. Items that cannot
    /// be read are left out, so their own read reports the error.
    ///
    /// The values are those stored at the time of the call: use it where nothing else
    /// writes this account's Signal state meanwhile (the staged adapter's own writes are
    /// seen as usual).
    ///
    /// # Errors
    /// Store errors of the bulk reads.
    pub async fn prefetch(&self, addresses: &[ProtocolAddress]) -> Result<()> {
        if self.staged.is_none() || addresses.is_empty() {
            return Ok(());
        }
        let keys: Vec<(&str, wa_binary::Str)> = addresses
            .iter()
            .map(|a| (a.name.as_str(), device_key(a.device_id)))
            .collect();
        for role in [Role::Session, Role::Identity] {
            // What this adapter holds already (read before, or written) is not read again.
            let wanted: Vec<(&str, &str)> = match self.stage() {
                Some(st) => keys
                    .iter()
                    .map(|(scope, key)| (*scope, &**key))
                    .filter(|&(scope, key)| {
                        !st.overlay.contains(role, scope, key)
                            && !st.prefetched.contains(role, scope, key)
                    })
                    .collect(),
                None => return Ok(()),
            };
            if wanted.is_empty() {
                continue;
            }
            let values = self.store.get_items(role, &wanted).await?;
            if let Some(mut st) = self.stage() {
                for ((scope, key), v) in wanted.into_iter().zip(values) {
                    if let Ok(v) = v {
                        st.prefetched.insert(role, scope, key, v);
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether a session record is stored for `address`, not whether it can encrypt: a
    /// record Signal cannot decode, or one without a current session, counts as stored
    /// (a row the store reports corrupt counts as absent, as every read here treats it).
    /// Answered from what the adapter holds when it read the address before (see
    /// [`SignalStoreAdapter::prefetch`]), without decoding the record.
    ///
    /// # Errors
    /// Store errors of the read.
    pub async fn has_session_record(&self, address: &ProtocolAddress) -> Result<bool> {
        Ok(self
            .read(Role::Session, &address.name, &device_key(address.device_id))
            .await?
            .is_some())
    }

    async fn read(&self, role: Role, scope: &str, key: &str) -> Result<Option<Bytes>> {
        if let Some(st) = self.stage()
            && let Some(v) = st
                .overlay
                .get(role, scope, key)
                .or_else(|| st.prefetched.get(role, scope, key))
        {
            return Ok(v.clone());
        }
        let value = match self.store.get_item(role, scope, key).await {
            // Sessions, identities, pre-keys and sender keys can all be rebuilt (retry
            // receipts, new bundles, key distribution): a damaged one is treated as
            // absent, and its row is replaced by the next write.
            Err(e)
                if e.is_corrupt()
                    && matches!(
                        role,
                        Role::Session
                            | Role::Identity
                            | Role::PreKey
                            | Role::SignedPreKey
                            | Role::SenderKey
                    ) =>
            {
                tracing::warn!("{e}; treated as absent");
                None
            }
            other => other?,
        };
        // A staged adapter keeps the sessions and identities it read, as it keeps those
        // read ahead (a decryption reads the sender's identity twice: to trust it and
        // to save it). Not pre-keys: consuming one checks the store at commit.
        if matches!(role, Role::Session | Role::Identity)
            && let Some(mut st) = self.stage()
            && !st.overlay.contains(role, scope, key)
        {
            st.prefetched.insert_absent(role, scope, key, value.clone());
        }
        Ok(value)
    }

    /// Applies a write now (direct) or stages it, recording what reads should see.
    async fn write(
        &self,
        role: Role,
        scope: &str,
        key: &str,
        value: Option<&[u8]>,
        f: impl FnOnce(&mut Batch),
    ) -> Result<()> {
        if let Some(mut st) = self.stage() {
            f(&mut st.batch);
            st.overlay
                .insert(role, scope, key, value.map(Bytes::copy_from_slice));
            return Ok(());
        }
        let mut b = Batch::new();
        f(&mut b);
        self.store.commit(b).await
    }
}

impl IdentityKeyStore for SignalStoreAdapter {
    async fn identity_key_pair(&self) -> Result<KeyPair, wa_signal::Error> {
        Ok(self.identity.clone())
    }

    async fn local_registration_id(&self) -> Result<u32, wa_signal::Error> {
        Ok(self.registration_id)
    }

    async fn is_trusted_identity(
        &self,
        address: &ProtocolAddress,
        identity: &PublicKey,
        _direction: Direction,
    ) -> Result<bool, wa_signal::Error> {
        Ok(self
            .get_identity(address)
            .await?
            .is_none_or(|known| known == *identity))
    }

    async fn save_identity(
        &self,
        address: &ProtocolAddress,
        identity: &PublicKey,
    ) -> Result<bool, wa_signal::Error> {
        let old = self.get_identity(address).await?;
        if old == Some(*identity) {
            // Already stored: every pkmsg carries the sender's identity again.
            return Ok(false);
        }
        let key = device_key(address.device_id);
        self.write(
            Role::Identity,
            &address.name,
            &key,
            Some(identity.as_bytes()),
            |b| {
                b.put_identity(&address.name, address.device_id, identity.as_bytes());
            },
        )
        .await
        .map_err(err)?;
        let replaced = old.is_some_and(|o| o != *identity);
        if replaced
            && let Some(mut st) = self.stage()
            && !st.replaced.contains(address)
        {
            st.replaced.push(address.clone());
        }
        Ok(replaced)
    }

    async fn get_identity(
        &self,
        address: &ProtocolAddress,
    ) -> Result<Option<PublicKey>, wa_signal::Error> {
        match self
            .read(
                Role::Identity,
                &address.name,
                &device_key(address.device_id),
            )
            .await
            .map_err(err)?
        {
            Some(b) => match PublicKey::from_slice(&b) {
                Ok(key) => Ok(Some(key)),
                Err(_) => {
                    tracing::warn!(%address, "unreadable identity key, treated as unknown");
                    Ok(None)
                }
            },
            None => Ok(None),
        }
    }
}

impl wa_signal::PreKeyStore for SignalStoreAdapter {
    async fn load_pre_key(&self, id: u32) -> Result<Option<PreKeyRecord>, wa_signal::Error> {
        match self
            .read(Role::PreKey, NO_SCOPE, &id_key(id))
            .await
            .map_err(err)?
        {
            Some(b) => match PreKeyRecord::deserialize(&b) {
                Ok(record) => Ok(Some(record)),
                Err(e) => {
                    tracing::warn!("unreadable pre-key {id}, treated as absent: {e}");
                    Ok(None)
                }
            },
            None => Ok(None),
        }
    }

    async fn remove_pre_key(&self, id: u32) -> Result<(), wa_signal::Error> {
        let staged = self.staged.is_some();
        self.write(Role::PreKey, NO_SCOPE, &id_key(id), None, |b| {
            if staged {
                b.consume_pre_key(id);
            } else {
                b.remove_pre_key(id);
            }
        })
        .await
        .map_err(err)
    }
}

impl wa_signal::SignedPreKeyStore for SignalStoreAdapter {
    async fn load_signed_pre_key(
        &self,
        id: u32,
    ) -> Result<Option<SignedPreKeyRecord>, wa_signal::Error> {
        if let Some(b) = self
            .read(Role::SignedPreKey, NO_SCOPE, &id_key(id))
            .await
            .map_err(err)?
        {
            match SignedPreKeyRecord::deserialize(&b) {
                Ok(record) => return Ok(Some(record)),
                // The current one is also in the credentials.
                Err(e) => tracing::warn!("unreadable signed pre-key {id}: {e}"),
            }
        }
        let spk = &self.signed_pre_key;
        Ok((spk.id == id).then(|| SignedPreKeyRecord {
            id: spk.id,
            key_pair: spk.key_pair.clone(),
            signature: spk.signature,
            timestamp: spk.timestamp,
        }))
    }
}

impl wa_signal::SessionStore for SignalStoreAdapter {
    async fn load_session(
        &self,
        address: &ProtocolAddress,
    ) -> Result<Option<Vec<u8>>, wa_signal::Error> {
        Ok(self
            .read(Role::Session, &address.name, &device_key(address.device_id))
            .await
            .map_err(err)?
            .map(|b| b.to_vec()))
    }

    async fn store_session(
        &self,
        address: &ProtocolAddress,
        record: Vec<u8>,
    ) -> Result<(), wa_signal::Error> {
        let key = device_key(address.device_id);
        self.write(Role::Session, &address.name, &key, Some(&record), |b| {
            b.put_session(&address.name, address.device_id, &record);
        })
        .await
        .map_err(err)
    }

    async fn delete_session(&self, address: &ProtocolAddress) -> Result<(), wa_signal::Error> {
        let key = device_key(address.device_id);
        self.write(Role::Session, &address.name, &key, None, |b| {
            b.delete_session(&address.name, address.device_id);
        })
        .await
        .map_err(err)
    }
}

impl wa_signal::SenderKeyStore for SignalStoreAdapter {
    async fn load_sender_key(
        &self,
        name: &SenderKeyName,
    ) -> Result<Option<Vec<u8>>, wa_signal::Error> {
        let (scope, key) = sender_key(name);
        Ok(self
            .read(Role::SenderKey, &scope, &key)
            .await
            .map_err(err)?
            .map(|b| b.to_vec()))
    }

    async fn store_sender_key(
        &self,
        name: &SenderKeyName,
        record: Vec<u8>,
    ) -> Result<(), wa_signal::Error> {
        let (scope, key) = sender_key(name);
        self.write(Role::SenderKey, &scope, &key, Some(&record), |b| {
            b.put_sender_key(&scope, &key, &record);
        })
        .await
        .map_err(err)
    }
}
