//! The facade the messaging layer uses, in the shape of Baileys' `SignalRepository`.

use std::sync::Mutex;

use rand_core::CryptoRngCore;

use crate::Error;
use crate::address::{ProtocolAddress, SenderKeyName, SignalAddress};
use crate::group::SenderKeyRecord;
use crate::keys::PreKeyBundle;
use crate::message::{
    PreKeySignalMessage, SenderKeyDistributionMessage, SenderKeyMessage, SignalMessage,
};
use crate::session::{self, CiphertextType};
use crate::state::SessionRecord;
use crate::store::{Direction, SignalStore};

/// A 1:1 ciphertext and its kind (the `<enc type>` attribute).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedMessage {
    /// `pkmsg` until the peer has answered, then `msg`.
    pub kind: CiphertextType,
    /// The wire bytes (the `<enc>` node's content).
    pub ciphertext: Vec<u8>,
}

/// A group ciphertext and the distribution message for members that lack our sender key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEncryptedMessage {
    /// The `SenderKeyDistributionMessage` bytes as of this message (send pairwise in
    /// `Message.senderKeyDistributionMessage` to members that do not have it yet).
    pub sender_key_distribution_message: Vec<u8>,
    /// The `skmsg` bytes.
    pub ciphertext: Vec<u8>,
}

/// The current session's identifying data, as Baileys' `getSessionInfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The base key that identifies the session.
    pub base_key: wa_crypto::PublicKey,
    /// The peer's registration id.
    pub registration_id: u32,
}

/// End-to-end encryption for one device: sessions with peers, group sender keys, over a
/// [`SignalStore`]. Plaintexts are handed in and out as they travel inside the ciphertext,
/// i.e. already padded ([`pad_message`](crate::pad_message) /
/// [`unpad_message`](crate::unpad_message)).
///
/// Every operation loads the records it needs, computes without IO, and writes back only on
/// success: a failed decrypt leaves the stored session untouched. Callers serialize
/// operations per peer address (and per group) themselves.
///
/// Randomness comes from `R`, injected so tests can be deterministic; it is locked only
/// during the pure computation, never across an `.await`.
pub struct SignalRepository<S, R> {
    store: S,
    rng: Mutex<R>,
}

impl<S, R> std::fmt::Debug for SignalRepository<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalRepository").finish_non_exhaustive()
    }
}

impl<S: SignalStore, R: CryptoRngCore + Send> SignalRepository<S, R> {
    /// A repository over `store`, drawing randomness from `rng`.
    pub fn new(store: S, rng: R) -> Self {
        Self {
            store,
            rng: Mutex::new(rng),
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn with_rng<T>(&self, f: impl FnOnce(&mut R) -> T) -> T {
        // The RNG holds no invariant a panic could break, so a poisoned lock is usable.
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut rng)
    }

    /// The session record with `address`. One that cannot be read is treated as absent
    /// (logged): the session is rebuilt the way a lost one is, by a retry receipt or a
    /// new pre-key message, and its row is replaced when the new one is stored.
    async fn load_session(
        &self,
        address: &ProtocolAddress,
    ) -> Result<Option<SessionRecord>, Error> {
        match self.store.load_session(address).await? {
            Some(bytes) => match SessionRecord::deserialize(&bytes) {
                Ok(record) => Ok(Some(record)),
                Err(e) => {
                    tracing::warn!(%address, "unreadable session record, treated as none: {e}");
                    Ok(None)
                }
            },
            None => Ok(None),
        }
    }

    async fn check_trust(
        &self,
        address: &ProtocolAddress,
        identity: &wa_crypto::PublicKey,
        direction: Direction,
    ) -> Result<(), Error> {
        if self
            .store
            .is_trusted_identity(address, identity, direction)
            .await?
        {
            Ok(())
        } else {
            Err(Error::UntrustedIdentity(address.clone()))
        }
    }

    /// Starts a session with a peer device from its pre-key bundle (a key-fetch result),
    /// after verifying the signed pre-key's signature and trusting its identity. Any
    /// existing session is archived.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`], [`Error::UntrustedIdentity`], store errors.
    pub async fn inject_e2e_session(
        &self,
        peer: &impl SignalAddress,
        bundle: &PreKeyBundle,
    ) -> Result<(), Error> {
        let address = peer.signal_address();
        self.check_trust(&address, &bundle.identity_key, Direction::Sending)
            .await?;
        let identity = self.store.identity_key_pair().await?;
        let registration_id = self.store.local_registration_id().await?;
        let mut record = self.load_session(&address).await?.unwrap_or_default();
        let state =
            self.with_rng(|rng| session::initiate(&identity, registration_id, bundle, rng))?;
        record.promote_state(state);
        self.store
            .save_identity(&address, &bundle.identity_key)
            .await?;
        self.store.store_session(&address, record.serialize()).await
    }

    /// Encrypts a (padded) plaintext for a peer device with the current session.
    ///
    /// # Errors
    /// [`Error::NoSession`], [`Error::UntrustedIdentity`], store errors.
    pub async fn encrypt_message(
        &self,
        peer: &impl SignalAddress,
        plaintext: &[u8],
    ) -> Result<EncryptedMessage, Error> {
        let address = peer.signal_address();
        let mut record = self
            .load_session(&address)
            .await?
            .ok_or_else(|| Error::NoSession(address.clone()))?;
        let remote = record
            .remote_identity()
            .ok_or_else(|| Error::NoSession(address.clone()))?;
        self.check_trust(&address, &remote, Direction::Sending)
            .await?;
        let (kind, ciphertext) = session::encrypt(&mut record, plaintext, &address)?;
        self.store
            .store_session(&address, record.serialize())
            .await?;
        Ok(EncryptedMessage { kind, ciphertext })
    }

    /// Decrypts a `pkmsg` or `msg` from a peer device and returns the (padded) plaintext.
    ///
    /// # Errors
    /// Peer errors ([`Error::InvalidMessage`], [`Error::BadMac`],
    /// [`Error::DuplicateMessage`], [`Error::TooFarInFuture`], ...), [`Error::NoSession`],
    /// [`Error::UntrustedIdentity`], [`Error::InvalidPreKeyId`], store errors.
    pub async fn decrypt_message(
        &self,
        peer: &impl SignalAddress,
        kind: CiphertextType,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let address = peer.signal_address();
        match kind {
            CiphertextType::Pkmsg => self.decrypt_pre_key_message(&address, ciphertext).await,
            CiphertextType::Msg => self.decrypt_signal_message(&address, ciphertext).await,
            CiphertextType::Skmsg => Err(Error::InvalidMessage(
                "skmsg is a group message: use decrypt_group_message",
            )),
        }
    }

    async fn decrypt_signal_message(
        &self,
        address: &ProtocolAddress,
        bytes: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let message = SignalMessage::decode(bytes)?;
        let mut record = self
            .load_session(address)
            .await?
            .ok_or_else(|| Error::NoSession(address.clone()))?;
        let plaintext =
            self.with_rng(|rng| session::decrypt(&mut record, &message, address, rng))?;
        let remote = record
            .remote_identity()
            .ok_or_else(|| Error::NoSession(address.clone()))?;
        self.check_trust(address, &remote, Direction::Receiving)
            .await?;
        self.store
            .store_session(address, record.serialize())
            .await?;
        Ok(plaintext)
    }

    async fn decrypt_pre_key_message(
        &self,
        address: &ProtocolAddress,
        bytes: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let message = PreKeySignalMessage::decode(bytes)?;
        self.check_trust(address, message.identity_key(), Direction::Receiving)
            .await?;
        let mut record = self.load_session(address).await?.unwrap_or_default();
        let mut used_pre_key = None;
        if !record.has_base_key(message.base_key()) {
            let signed = self
                .store
                .load_signed_pre_key(message.signed_pre_key_id())
                .await?
                .ok_or_else(|| Error::InvalidSignedPreKeyId(message.signed_pre_key_id()))?;
            let one_time = match message.pre_key_id() {
                Some(id) => Some(
                    self.store
                        .load_pre_key(id)
                        .await?
                        .ok_or_else(|| Error::InvalidPreKeyId(id))?,
                ),
                None => None,
            };
            let identity = self.store.identity_key_pair().await?;
            let registration_id = self.store.local_registration_id().await?;
            let state = session::respond(
                &identity,
                registration_id,
                &message,
                &signed.key_pair,
                one_time.as_ref().map(|k| &k.key_pair),
            );
            record.promote_state(state);
            used_pre_key = message.pre_key_id();
        }
        let plaintext =
            self.with_rng(|rng| session::decrypt(&mut record, message.message(), address, rng))?;
        self.store
            .store_session(address, record.serialize())
            .await?;
        self.store
            .save_identity(address, message.identity_key())
            .await?;
        if let Some(id) = used_pre_key {
            self.store.remove_pre_key(id).await?;
        }
        Ok(plaintext)
    }

    /// Whether there is a session that can encrypt to this peer device.
    ///
    /// # Errors
    /// Store errors, [`Error::InvalidRecord`].
    pub async fn has_session(&self, peer: &impl SignalAddress) -> Result<bool, Error> {
        Ok(self
            .load_session(&peer.signal_address())
            .await?
            .is_some_and(|r| r.has_current_session()))
    }

    /// The current session's base key and the peer's registration id.
    ///
    /// # Errors
    /// Store errors, [`Error::InvalidRecord`].
    pub async fn session_info(
        &self,
        peer: &impl SignalAddress,
    ) -> Result<Option<SessionInfo>, Error> {
        let record = self.load_session(&peer.signal_address()).await?;
        Ok(record.and_then(|r| {
            Some(SessionInfo {
                base_key: r.base_key()?,
                registration_id: r.remote_registration_id()?,
            })
        }))
    }

    /// Deletes the sessions with these peer devices.
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete_session(&self, peers: &[impl SignalAddress]) -> Result<(), Error> {
        for peer in peers {
            self.store.delete_session(&peer.signal_address()).await?;
        }
        Ok(())
    }

    /// Moves the session with one device to another address (e.g. from a phone-number
    /// address to the LID address of the same device once the mapping is known). Returns
    /// false when there was nothing to move or `to` already has a session (which is kept).
    ///
    /// # Errors
    /// Store errors.
    pub async fn migrate_session(
        &self,
        from: &impl SignalAddress,
        to: &impl SignalAddress,
    ) -> Result<bool, Error> {
        let (from, to) = (from.signal_address(), to.signal_address());
        if from == to || self.store.load_session(&to).await?.is_some() {
            return Ok(false);
        }
        let Some(bytes) = self.store.load_session(&from).await? else {
            return Ok(false);
        };
        if let Some(identity) = self.store.get_identity(&from).await? {
            self.store.save_identity(&to, &identity).await?;
        }
        self.store.store_session(&to, bytes).await?;
        self.store.delete_session(&from).await?;
        Ok(true)
    }

    /// The sender key record `name`. One that cannot be read is treated as absent
    /// (logged): the sender distributes its key again after a retry receipt, and ours
    /// is made anew.
    async fn load_sender_key(
        &self,
        name: &SenderKeyName,
    ) -> Result<Option<SenderKeyRecord>, Error> {
        match self.store.load_sender_key(name).await? {
            Some(bytes) => match SenderKeyRecord::deserialize(&bytes) {
                Ok(record) => Ok(Some(record)),
                Err(e) => {
                    tracing::warn!(
                        group = %name.group_id,
                        sender = %name.sender,
                        "unreadable sender key record, treated as none: {e}"
                    );
                    Ok(None)
                }
            },
            None => Ok(None),
        }
    }

    /// Encrypts a (padded) plaintext for a group with our sender key (created on first
    /// use), and returns it with the distribution message as of this message.
    ///
    /// # Errors
    /// Store errors, [`Error::InvalidRecord`].
    pub async fn encrypt_group_message(
        &self,
        group_id: &str,
        me: &impl SignalAddress,
        plaintext: &[u8],
    ) -> Result<GroupEncryptedMessage, Error> {
        let name = SenderKeyName::new(group_id, me.signal_address());
        let mut record = self.load_sender_key(&name).await?.unwrap_or_default();
        let (skdm, ciphertext) = self.with_rng(|rng| {
            let skdm = record.distribution_message(rng);
            let ciphertext = record.encrypt(plaintext, rng)?;
            Ok::<_, Error>((skdm.serialized().to_vec(), ciphertext))
        })?;
        self.store
            .store_sender_key(&name, record.serialize())
            .await?;
        Ok(GroupEncryptedMessage {
            sender_key_distribution_message: skdm,
            ciphertext,
        })
    }

    /// Our current distribution message for a group (creating the sender key if needed).
    ///
    /// # Errors
    /// Store errors, [`Error::InvalidRecord`].
    pub async fn sender_key_distribution_message(
        &self,
        group_id: &str,
        me: &impl SignalAddress,
    ) -> Result<Vec<u8>, Error> {
        let name = SenderKeyName::new(group_id, me.signal_address());
        let mut record = self.load_sender_key(&name).await?.unwrap_or_default();
        let skdm = self.with_rng(|rng| record.distribution_message(rng));
        self.store
            .store_sender_key(&name, record.serialize())
            .await?;
        Ok(skdm.serialized().to_vec())
    }

    /// Whether we have a sending sender key for this group.
    ///
    /// # Errors
    /// Store errors, [`Error::InvalidRecord`].
    pub async fn has_sender_key(
        &self,
        group_id: &str,
        me: &impl SignalAddress,
    ) -> Result<bool, Error> {
        let name = SenderKeyName::new(group_id, me.signal_address());
        Ok(self
            .load_sender_key(&name)
            .await?
            .is_some_and(|r| r.can_send()))
    }

    /// Replaces our sender key for a group with a fresh one (new key id, chain and signing
    /// key), e.g. after a member left; members need the new distribution message.
    ///
    /// # Errors
    /// Store errors, [`Error::InvalidRecord`].
    pub async fn rotate_sender_key(
        &self,
        group_id: &str,
        me: &impl SignalAddress,
    ) -> Result<(), Error> {
        let name = SenderKeyName::new(group_id, me.signal_address());
        let mut record = self.load_sender_key(&name).await?.unwrap_or_default();
        self.with_rng(|rng| record.rotate(rng));
        self.store.store_sender_key(&name, record.serialize()).await
    }

    /// Takes in a group member's distribution message.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`], store errors.
    pub async fn process_sender_key_distribution(
        &self,
        group_id: &str,
        author: &impl SignalAddress,
        distribution_message: &[u8],
    ) -> Result<(), Error> {
        let message = SenderKeyDistributionMessage::decode(distribution_message)?;
        let name = SenderKeyName::new(group_id, author.signal_address());
        let mut record = self.load_sender_key(&name).await?.unwrap_or_default();
        record.process(&message);
        self.store.store_sender_key(&name, record.serialize()).await
    }

    /// Verifies and decrypts a group member's `skmsg`, returning the (padded) plaintext.
    ///
    /// # Errors
    /// [`Error::NoSenderKey`], [`Error::InvalidSignature`], [`Error::DuplicateMessage`],
    /// [`Error::TooFarInFuture`], [`Error::InvalidMessage`], store errors.
    pub async fn decrypt_group_message(
        &self,
        group_id: &str,
        author: &impl SignalAddress,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let message = SenderKeyMessage::decode(ciphertext)?;
        let name = SenderKeyName::new(group_id, author.signal_address());
        let mut record = self
            .load_sender_key(&name)
            .await?
            .ok_or_else(|| Error::NoSenderKey(Some(message.key_id())))?;
        let plaintext = record.decrypt(&message)?;
        self.store
            .store_sender_key(&name, record.serialize())
            .await?;
        Ok(plaintext)
    }
}
