use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::backend::open;
use crate::batch::{LID_SCOPE, NO_SCOPE, PN_SCOPE, device_key, id_key};
use crate::{AccountId, AuthCreds, Backend, Batch, Error, PrivacyToken, Result, Role};

/// One account's view of a backend: the type every role trait is implemented for.
///
/// Cheap to clone (two `Arc`s and the id). Reads decode the item envelope, so a damaged
/// item surfaces as [`Error::Corrupt`] for that item only.
///
/// A view counts the commits made through it and its clones, per role
/// ([`generation`](Self::generation)), so a layer that keeps something derived from stored
/// items in memory (a LID mapping found absent, a contact's privacy-token record) can tell
/// whether it may still trust it without reading the store again.
#[derive(Clone, Debug)]
pub struct AccountStore {
    backend: Arc<dyn Backend>,
    account: AccountId,
    generations: Arc<Generations>,
}

/// Per role, how many commits that wrote it have ended.
#[derive(Debug, Default)]
struct Generations([AtomicU64; Role::ALL.len()]);

/// Counts a commit in the generations of the roles it writes when dropped.
struct Counted<'a> {
    generations: &'a Generations,
    /// The roles written, as bits of their place in [`Role::ALL`].
    written: u64,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        for (i, generation) in self.generations.0.iter().enumerate() {
            if self.written & (1 << i) != 0 {
                generation.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

impl AccountStore {
    /// The view of `account` in `backend`.
    pub fn new(backend: Arc<dyn Backend>, account: AccountId) -> Self {
        Self {
            backend,
            account,
            generations: Arc::default(),
        }
    }

    /// How many commits through this view or its clones that wrote `role` have ended,
    /// whether they succeeded or not. Read it before reading items of `role`: when it is
    /// still the same later, no write of `role` went through this view in between, so
    /// what was read then (present or absent) is still what is stored, unless something
    /// wrote to the backend around this view (another view of the same account, or the
    /// backend itself).
    pub fn generation(&self, role: Role) -> u64 {
        self.generations.0[role as usize].load(Ordering::Acquire)
    }

    /// The account this view is scoped to.
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The backend underneath.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Applies `batch` atomically: every write lands or none does.
    ///
    /// # Errors
    /// [`Error::Conflict`] when a precondition failed (nothing written),
    /// [`Error::InvalidInput`] for over-long keys, [`Error::Backend`] on storage failure.
    pub async fn commit(&self, batch: Batch) -> Result<()> {
        let ops = batch.into_ops()?;
        if ops.is_empty() {
            return Ok(());
        }
        // Counted when the backend answered, success or not (a failed commit may still
        // have landed), or when the commit is dropped unfinished: a reader that took the
        // generation before its read sees a new one after any write that may have raced
        // it.
        let _count = Counted {
            generations: &self.generations,
            written: ops
                .iter()
                .filter(|op| op.writes())
                .fold(0, |bits, op| bits | 1 << (op.role() as usize)),
        };
        self.backend.commit(&self.account, ops).await
    }

    async fn one(&self, f: impl FnOnce(&mut Batch) -> &mut Batch) -> Result<()> {
        let mut b = Batch::new();
        f(&mut b);
        self.commit(b).await
    }

    /// Reads and unseals one item.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the stored item is damaged.
    pub async fn get_item(&self, role: Role, scope: &str, key: &str) -> Result<Option<Bytes>> {
        match self.backend.get(&self.account, role, scope, key).await? {
            Some(v) => open(role, scope, key, v).map(Some),
            None => Ok(None),
        }
    }

    /// Reads and unseals many items of one role at once ([`Backend::get_many`]): one
    /// entry per requested `(scope, key)`, in order. A damaged item is an
    /// [`Error::Corrupt`] in its own entry and does not spoil the others.
    ///
    /// # Errors
    /// [`Error::Backend`] on storage failure.
    pub async fn get_items(
        &self,
        role: Role,
        keys: &[(&str, &str)],
    ) -> Result<Vec<Result<Option<Bytes>>>> {
        let values = self.backend.get_many(&self.account, role, keys).await?;
        if values.len() != keys.len() {
            return Err(Error::backend(std::io::Error::other(format!(
                "backend answered {} of {} items",
                values.len(),
                keys.len()
            ))));
        }
        Ok(values
            .into_iter()
            .zip(keys)
            .map(|(v, (scope, key))| v.map(|v| open(role, scope, key, v)).transpose())
            .collect())
    }

    /// Reads and unseals every item of a scope, ordered by key.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the first damaged item.
    pub async fn list_items(&self, role: Role, scope: &str) -> Result<Vec<(String, Bytes)>> {
        self.backend
            .list(&self.account, role, scope)
            .await?
            .into_iter()
            .map(|(k, v)| open(role, scope, &k, v).map(|v| (k, v)))
            .collect()
    }

    /// The keys of a scope, ordered; does not decode values, so it works past damaged
    /// items.
    async fn list_keys(&self, role: Role, scope: &str) -> Result<Vec<String>> {
        Ok(self
            .backend
            .list(&self.account, role, scope)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Removes everything stored for this account.
    ///
    /// # Errors
    /// [`Error::Backend`] on storage failure.
    pub async fn delete_account(&self) -> Result<()> {
        self.backend.delete_account(&self.account).await
    }
}

fn parse_id(role: Role, scope: &str, key: &str) -> Result<u32> {
    key.parse().map_err(|_| Error::Corrupt {
        role,
        scope: scope.to_owned(),
        key: key.to_owned(),
        reason: "key is not a number".to_owned(),
    })
}

/// The account's credentials.
pub trait CredsStore {
    /// Loads the credentials, `None` for an account that never saved any.
    fn load_creds(&self) -> impl Future<Output = Result<Option<AuthCreds>>> + Send;
    /// Saves the credentials.
    fn save_creds(&self, creds: &AuthCreds) -> impl Future<Output = Result<()>> + Send;
}

/// Signal sessions, one per remote (user, device).
pub trait SessionStore {
    /// The session with `user`'s `device`.
    fn get_session(
        &self,
        user: &str,
        device: u32,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// Stores a session.
    fn put_session(
        &self,
        user: &str,
        device: u32,
        session: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes a session.
    fn delete_session(&self, user: &str, device: u32) -> impl Future<Output = Result<()>> + Send;
    /// Devices of `user` we have a session with, ascending.
    fn session_devices(&self, user: &str) -> impl Future<Output = Result<Vec<u32>>> + Send;
    /// Deletes every session with `user`.
    fn delete_all_sessions(&self, user: &str) -> impl Future<Output = Result<()>> + Send;
}

/// Identity keys of remote devices.
pub trait IdentityStore {
    /// The identity key stored for `user`'s `device`.
    fn get_identity(
        &self,
        user: &str,
        device: u32,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// Stores an identity key.
    fn put_identity(
        &self,
        user: &str,
        device: u32,
        identity: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes an identity key.
    fn delete_identity(&self, user: &str, device: u32) -> impl Future<Output = Result<()>> + Send;
}

/// One-time pre-keys.
pub trait PreKeyStore {
    /// A pre-key by id.
    fn get_pre_key(&self, id: u32) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// Stores many pre-keys in one batch.
    fn put_pre_keys(&self, keys: &[(u32, &[u8])]) -> impl Future<Output = Result<()>> + Send;
    /// Deletes a pre-key.
    fn remove_pre_key(&self, id: u32) -> impl Future<Output = Result<()>> + Send;
    /// Ids of every stored pre-key, ascending.
    fn pre_key_ids(&self) -> impl Future<Output = Result<Vec<u32>>> + Send;
}

/// Signed pre-keys.
pub trait SignedPreKeyStore {
    /// A signed pre-key by id.
    fn get_signed_pre_key(&self, id: u32) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// Stores a signed pre-key.
    fn put_signed_pre_key(&self, id: u32, key: &[u8]) -> impl Future<Output = Result<()>> + Send;
    /// Every signed pre-key, by ascending id.
    fn signed_pre_keys(&self) -> impl Future<Output = Result<Vec<(u32, Bytes)>>> + Send;
    /// Deletes a signed pre-key.
    fn remove_signed_pre_key(&self, id: u32) -> impl Future<Output = Result<()>> + Send;
}

/// Group sender keys.
pub trait SenderKeyStore {
    /// The sender key of `sender` in `group`.
    fn get_sender_key(
        &self,
        group: &str,
        sender: &str,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// Stores a sender key.
    fn put_sender_key(
        &self,
        group: &str,
        sender: &str,
        key: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes a sender key.
    fn delete_sender_key(
        &self,
        group: &str,
        sender: &str,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Which devices already have our sender key, per group.
pub trait SenderKeyMemoryStore {
    /// Devices that have our sender key for `group`, sorted.
    fn sender_key_devices(&self, group: &str) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Records that `devices` received it.
    fn mark_sender_key_sent(
        &self,
        group: &str,
        devices: &[String],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Forgets the group's memory.
    fn forget_sender_key_memory(&self, group: &str) -> impl Future<Output = Result<()>> + Send;
}

/// App-state sync keys and collection versions.
pub trait AppStateStore {
    /// An app-state sync key by id.
    fn get_app_state_sync_key(
        &self,
        key_id: &str,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// Stores an app-state sync key.
    fn put_app_state_sync_key(
        &self,
        key_id: &str,
        key: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Every app-state sync key, by id.
    fn app_state_sync_keys(&self) -> impl Future<Output = Result<Vec<(String, Bytes)>>> + Send;
    /// The stored state of a collection.
    fn get_app_state_version(
        &self,
        collection: &str,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// Stores the state of a collection.
    fn put_app_state_version(
        &self,
        collection: &str,
        state: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the state of a collection.
    fn delete_app_state_version(&self, collection: &str)
    -> impl Future<Output = Result<()>> + Send;
}

/// LID <-> phone-number mappings.
pub trait LidMappingStore {
    /// The LID user of phone-number user `pn`.
    fn lid_for_pn(&self, pn: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    /// The phone-number user of LID user `lid`.
    fn pn_for_lid(&self, lid: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Records a mapping in both directions.
    fn put_lid_mapping(&self, pn: &str, lid: &str) -> impl Future<Output = Result<()>> + Send;
}

/// Recently sent messages, kept to answer retry receipts.
pub trait SentMessageStore {
    /// A sent message by chat and id.
    fn get_sent_message(
        &self,
        chat: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// Keeps a sent message; `at` is the send time in unix seconds.
    fn put_sent_message(
        &self,
        chat: &str,
        id: &str,
        message: &[u8],
        at: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Forgets a sent message.
    fn delete_sent_message(&self, chat: &str, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Forgets every message sent before `before`.
    fn prune_sent_messages(&self, before: i64) -> impl Future<Output = Result<()>> + Send;
}

/// Markers of incoming messages already processed (see
/// [`Batch::mark_message_processed`](crate::Batch::mark_message_processed), which writes them
/// together with the session state).
pub trait ProcessedMessageStore {
    /// Whether the message `id` from `sender` in `chat` was processed.
    fn is_message_processed(
        &self,
        chat: &str,
        id: &str,
        sender: &str,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// [`ProcessedMessageStore::is_message_processed`] for many messages at once, each
    /// `(chat, id, sender)`, answered in order from one bulk read; an entry whose marker
    /// cannot be read (damaged) is an error of its own.
    fn are_messages_processed(
        &self,
        messages: &[(&str, &str, &str)],
    ) -> impl Future<Output = Result<Vec<Result<bool>>>> + Send;
    /// Whether the message `id` in `chat` was processed from any sender (reads every
    /// marker of the chat: for rare lookups where the sending device is unknown).
    fn is_message_processed_by_anyone(
        &self,
        chat: &str,
        id: &str,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Forgets every marker recorded before `before` (unix seconds).
    fn prune_processed_messages(&self, before: i64) -> impl Future<Output = Result<()>> + Send;
}

/// Received messages committed but not yet reported (see [`Batch::put_inbox`]).
pub trait InboxStore {
    /// Every entry, ordered by key; a damaged entry is a [`Error::Corrupt`] of its own
    /// and does not hide the others.
    fn inbox(&self) -> impl Future<Output = Result<Vec<(String, Result<Bytes>)>>> + Send;
}

/// Message secrets (see [`Batch::put_message_secret`](crate::Batch::put_message_secret),
/// which writes them).
pub trait MessageSecretStore {
    /// The secret of the message `id` that `creator` (a user JID) sent in `chat`.
    ///
    /// # Errors
    /// [`Error::Corrupt`](crate::Error::Corrupt) when the stored secret is not 32 bytes.
    fn get_message_secret(
        &self,
        chat: &str,
        id: &str,
        creator: &str,
    ) -> impl Future<Output = Result<Option<zeroize::Zeroizing<[u8; 32]>>>> + Send;
    /// Forgets every secret stored before `before` (unix seconds).
    fn prune_message_secrets(&self, before: i64) -> impl Future<Output = Result<()>> + Send;
}

/// Contacts and push names.
pub trait ContactStore {
    /// A contact by JID.
    fn get_contact(&self, jid: &str) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// Stores a contact.
    fn put_contact(&self, jid: &str, contact: &[u8]) -> impl Future<Output = Result<()>> + Send;
    /// Every contact, by JID.
    fn contacts(&self) -> impl Future<Output = Result<Vec<(String, Bytes)>>> + Send;
}

/// Chat settings kept from app state (archived, pinned, muted), each setting stored on
/// its own (so settings synced by different collections never overwrite each other) and
/// encoded by their owner (`wa-chats`).
pub trait ChatSettingStore {
    /// The value of `setting` for the chat `jid`.
    fn get_chat_setting(
        &self,
        setting: &str,
        jid: &str,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// Every chat's value of `setting`, by JID.
    fn chat_settings(
        &self,
        setting: &str,
    ) -> impl Future<Output = Result<Vec<(String, Bytes)>>> + Send;
}

/// Trusted-contact privacy tokens, one record per contact.
pub trait PrivacyTokenStore {
    /// The record of the contact `jid`.
    ///
    /// # Errors
    /// [`Error::Corrupt`](crate::Error::Corrupt) when the stored record is damaged.
    fn get_privacy_token(
        &self,
        jid: &str,
    ) -> impl Future<Output = Result<Option<PrivacyToken>>> + Send;
    /// Stores the record of the contact `jid`.
    fn put_privacy_token(
        &self,
        jid: &str,
        token: &PrivacyToken,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Forgets every record whose timestamps are both before `before` (unix seconds).
    fn prune_privacy_tokens(&self, before: i64) -> impl Future<Output = Result<()>> + Send;
}

impl CredsStore for AccountStore {
    async fn load_creds(&self) -> Result<Option<AuthCreds>> {
        match self.get_item(Role::Creds, NO_SCOPE, NO_SCOPE).await? {
            Some(b) => AuthCreds::decode(&b).map(Some),
            None => Ok(None),
        }
    }
    async fn save_creds(&self, creds: &AuthCreds) -> Result<()> {
        self.one(|b| b.save_creds(creds)).await
    }
}

impl SessionStore for AccountStore {
    async fn get_session(&self, user: &str, device: u32) -> Result<Option<Bytes>> {
        self.get_item(Role::Session, user, &device_key(device))
            .await
    }
    async fn put_session(&self, user: &str, device: u32, session: &[u8]) -> Result<()> {
        self.one(|b| b.put_session(user, device, session)).await
    }
    async fn delete_session(&self, user: &str, device: u32) -> Result<()> {
        self.one(|b| b.delete_session(user, device)).await
    }
    async fn session_devices(&self, user: &str) -> Result<Vec<u32>> {
        let mut ids = self
            .list_keys(Role::Session, user)
            .await?
            .iter()
            .map(|k| parse_id(Role::Session, user, k))
            .collect::<Result<Vec<u32>>>()?;
        ids.sort_unstable();
        Ok(ids)
    }
    async fn delete_all_sessions(&self, user: &str) -> Result<()> {
        self.one(|b| b.delete_all_sessions(user)).await
    }
}

impl IdentityStore for AccountStore {
    async fn get_identity(&self, user: &str, device: u32) -> Result<Option<Bytes>> {
        self.get_item(Role::Identity, user, &device_key(device))
            .await
    }
    async fn put_identity(&self, user: &str, device: u32, identity: &[u8]) -> Result<()> {
        self.one(|b| b.put_identity(user, device, identity)).await
    }
    async fn delete_identity(&self, user: &str, device: u32) -> Result<()> {
        self.one(|b| b.delete_identity(user, device)).await
    }
}

impl PreKeyStore for AccountStore {
    async fn get_pre_key(&self, id: u32) -> Result<Option<Bytes>> {
        self.get_item(Role::PreKey, NO_SCOPE, &id_key(id)).await
    }
    async fn put_pre_keys(&self, keys: &[(u32, &[u8])]) -> Result<()> {
        let mut b = Batch::new();
        for (id, k) in keys {
            b.put_pre_key(*id, k);
        }
        self.commit(b).await
    }
    async fn remove_pre_key(&self, id: u32) -> Result<()> {
        self.one(|b| b.remove_pre_key(id)).await
    }
    async fn pre_key_ids(&self) -> Result<Vec<u32>> {
        self.list_keys(Role::PreKey, NO_SCOPE)
            .await?
            .iter()
            .map(|k| parse_id(Role::PreKey, NO_SCOPE, k))
            .collect()
    }
}

impl SignedPreKeyStore for AccountStore {
    async fn get_signed_pre_key(&self, id: u32) -> Result<Option<Bytes>> {
        self.get_item(Role::SignedPreKey, NO_SCOPE, &id_key(id))
            .await
    }
    async fn put_signed_pre_key(&self, id: u32, key: &[u8]) -> Result<()> {
        self.one(|b| b.put_signed_pre_key(id, key)).await
    }
    async fn signed_pre_keys(&self) -> Result<Vec<(u32, Bytes)>> {
        self.list_items(Role::SignedPreKey, NO_SCOPE)
            .await?
            .into_iter()
            .map(|(k, v)| parse_id(Role::SignedPreKey, NO_SCOPE, &k).map(|id| (id, v)))
            .collect()
    }
    async fn remove_signed_pre_key(&self, id: u32) -> Result<()> {
        self.one(|b| b.remove_signed_pre_key(id)).await
    }
}

impl SenderKeyStore for AccountStore {
    async fn get_sender_key(&self, group: &str, sender: &str) -> Result<Option<Bytes>> {
        self.get_item(Role::SenderKey, group, sender).await
    }
    async fn put_sender_key(&self, group: &str, sender: &str, key: &[u8]) -> Result<()> {
        self.one(|b| b.put_sender_key(group, sender, key)).await
    }
    async fn delete_sender_key(&self, group: &str, sender: &str) -> Result<()> {
        self.one(|b| b.delete_sender_key(group, sender)).await
    }
}

impl SenderKeyMemoryStore for AccountStore {
    async fn sender_key_devices(&self, group: &str) -> Result<Vec<String>> {
        self.list_keys(Role::SenderKeyMemory, group).await
    }
    async fn mark_sender_key_sent(&self, group: &str, devices: &[String]) -> Result<()> {
        self.one(|b| b.mark_sender_key_sent(group, devices)).await
    }
    async fn forget_sender_key_memory(&self, group: &str) -> Result<()> {
        self.one(|b| b.forget_sender_key_memory(group)).await
    }
}

impl AppStateStore for AccountStore {
    async fn get_app_state_sync_key(&self, key_id: &str) -> Result<Option<Bytes>> {
        self.get_item(Role::AppStateSyncKey, NO_SCOPE, key_id).await
    }
    async fn put_app_state_sync_key(&self, key_id: &str, key: &[u8]) -> Result<()> {
        self.one(|b| b.put_app_state_sync_key(key_id, key)).await
    }
    async fn app_state_sync_keys(&self) -> Result<Vec<(String, Bytes)>> {
        self.list_items(Role::AppStateSyncKey, NO_SCOPE).await
    }
    async fn get_app_state_version(&self, collection: &str) -> Result<Option<Bytes>> {
        self.get_item(Role::AppStateVersion, NO_SCOPE, collection)
            .await
    }
    async fn put_app_state_version(&self, collection: &str, state: &[u8]) -> Result<()> {
        self.one(|b| b.put_app_state_version(collection, state))
            .await
    }
    async fn delete_app_state_version(&self, collection: &str) -> Result<()> {
        self.one(|b| b.delete_app_state_version(collection)).await
    }
}

impl AccountStore {
    /// The other half of a LID/PN mapping. A damaged one (unsealable, or not something a
    /// JID's user part can be: empty, longer than 64 bytes, or holding anything but
    /// ASCII letters, digits, `.`, `_` and `-`) is treated as unknown, with a warning:
    /// mappings are learned again from the next stanza or lookup that states them, and
    /// the next write replaces the row.
    async fn mapping(&self, scope: &str, user: &str) -> Result<Option<String>> {
        let stored = match self.get_item(Role::LidMapping, scope, user).await {
            Ok(stored) => stored,
            Err(e) if e.is_corrupt() => {
                tracing::warn!("{e}; mapping treated as unknown");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        Ok(stored.and_then(|b| {
            let valid = !b.is_empty()
                && b.len() <= 64
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
            if !valid {
                tracing::warn!(
                    scope,
                    user,
                    "stored mapping is not a user; treated as unknown"
                );
            }
            valid.then(|| String::from_utf8_lossy(&b).into_owned())
        }))
    }
}

impl LidMappingStore for AccountStore {
    async fn lid_for_pn(&self, pn: &str) -> Result<Option<String>> {
        self.mapping(PN_SCOPE, pn).await
    }
    async fn pn_for_lid(&self, lid: &str) -> Result<Option<String>> {
        self.mapping(LID_SCOPE, lid).await
    }
    async fn put_lid_mapping(&self, pn: &str, lid: &str) -> Result<()> {
        self.one(|b| b.put_lid_mapping(pn, lid)).await
    }
}

impl SentMessageStore for AccountStore {
    async fn get_sent_message(&self, chat: &str, id: &str) -> Result<Option<Bytes>> {
        self.get_item(Role::SentMessage, chat, id).await
    }
    async fn put_sent_message(&self, chat: &str, id: &str, message: &[u8], at: i64) -> Result<()> {
        self.one(|b| b.put_sent_message(chat, id, message, at))
            .await
    }
    async fn delete_sent_message(&self, chat: &str, id: &str) -> Result<()> {
        self.one(|b| b.delete_sent_message(chat, id)).await
    }
    async fn prune_sent_messages(&self, before: i64) -> Result<()> {
        self.one(|b| b.prune_sent_messages(before)).await
    }
}

impl ProcessedMessageStore for AccountStore {
    async fn is_message_processed(&self, chat: &str, id: &str, sender: &str) -> Result<bool> {
        let key = crate::batch::processed_key(id, sender);
        Ok(self
            .get_item(Role::ProcessedMessage, chat, &key)
            .await?
            .is_some())
    }
    async fn are_messages_processed(
        &self,
        messages: &[(&str, &str, &str)],
    ) -> Result<Vec<Result<bool>>> {
        let keys: Vec<String> = messages
            .iter()
            .map(|(_, id, sender)| crate::batch::processed_key(id, sender))
            .collect();
        let asked: Vec<(&str, &str)> = messages
            .iter()
            .zip(&keys)
            .map(|((chat, _, _), key)| (*chat, key.as_str()))
            .collect();
        Ok(self
            .get_items(Role::ProcessedMessage, &asked)
            .await?
            .into_iter()
            .map(|v| v.map(|v| v.is_some()))
            .collect())
    }
    async fn is_message_processed_by_anyone(&self, chat: &str, id: &str) -> Result<bool> {
        let prefix = crate::batch::processed_key(id, "");
        Ok(self
            .list_items(Role::ProcessedMessage, chat)
            .await?
            .iter()
            .any(|(k, _)| k.starts_with(&prefix)))
    }
    async fn prune_processed_messages(&self, before: i64) -> Result<()> {
        self.one(|b| b.prune_processed_messages(before)).await
    }
}

impl InboxStore for AccountStore {
    async fn inbox(&self) -> Result<Vec<(String, Result<Bytes>)>> {
        Ok(self
            .backend
            .list(&self.account, Role::Inbox, NO_SCOPE)
            .await?
            .into_iter()
            .map(|(k, v)| {
                let v = open(Role::Inbox, NO_SCOPE, &k, v);
                (k, v)
            })
            .collect())
    }
}

impl MessageSecretStore for AccountStore {
    async fn get_message_secret(
        &self,
        chat: &str,
        id: &str,
        creator: &str,
    ) -> Result<Option<zeroize::Zeroizing<[u8; 32]>>> {
        let key = crate::batch::processed_key(id, creator);
        let Some(bytes) = self.get_item(Role::MessageSecret, chat, &key).await? else {
            return Ok(None);
        };
        let secret = <[u8; 32]>::try_from(bytes.as_ref()).map_err(|_| Error::Corrupt {
            role: Role::MessageSecret,
            scope: chat.to_owned(),
            key,
            reason: format!("a message secret of {} bytes, not 32", bytes.len()),
        })?;
        Ok(Some(zeroize::Zeroizing::new(secret)))
    }
    async fn prune_message_secrets(&self, before: i64) -> Result<()> {
        self.one(|b| b.prune_message_secrets(before)).await
    }
}

impl ContactStore for AccountStore {
    async fn get_contact(&self, jid: &str) -> Result<Option<Bytes>> {
        self.get_item(Role::Contact, NO_SCOPE, jid).await
    }
    async fn put_contact(&self, jid: &str, contact: &[u8]) -> Result<()> {
        self.one(|b| b.put_contact(jid, contact)).await
    }
    async fn contacts(&self) -> Result<Vec<(String, Bytes)>> {
        self.list_items(Role::Contact, NO_SCOPE).await
    }
}

impl ChatSettingStore for AccountStore {
    async fn get_chat_setting(&self, setting: &str, jid: &str) -> Result<Option<Bytes>> {
        self.get_item(Role::ChatSetting, setting, jid).await
    }
    async fn chat_settings(&self, setting: &str) -> Result<Vec<(String, Bytes)>> {
        self.list_items(Role::ChatSetting, setting).await
    }
}

impl PrivacyTokenStore for AccountStore {
    async fn get_privacy_token(&self, jid: &str) -> Result<Option<PrivacyToken>> {
        match self.get_item(Role::PrivacyToken, NO_SCOPE, jid).await? {
            Some(b) => PrivacyToken::decode(jid, &b).map(Some),
            None => Ok(None),
        }
    }
    async fn put_privacy_token(&self, jid: &str, token: &PrivacyToken) -> Result<()> {
        self.one(|b| b.put_privacy_token(jid, token)).await
    }
    async fn prune_privacy_tokens(&self, before: i64) -> Result<()> {
        self.one(|b| b.prune_privacy_tokens(before)).await
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    use super::*;
    use crate::testing::{Tap, Tapped};
    use crate::{BoxFuture, MemoryBackend, Op};

    fn store() -> AccountStore {
        AccountStore::new(Arc::new(MemoryBackend::new()), AccountId::new("g").unwrap())
    }

    #[test]
    fn a_role_counts_at_its_place_in_all() {
        for (i, role) in Role::ALL.into_iter().enumerate() {
            assert_eq!(role as usize, i, "{role:?}");
        }
    }

    #[tokio::test]
    async fn commits_count_in_the_roles_they_write() {
        let s = store();
        let clone = s.clone();
        assert_eq!(s.generation(Role::LidMapping), 0);
        s.put_lid_mapping("1555", "42").await.unwrap();
        assert_eq!(s.generation(Role::LidMapping), 1);
        // Clones share the count; other roles are not touched.
        assert_eq!(clone.generation(Role::LidMapping), 1);
        assert_eq!(s.generation(Role::Session), 0);

        let mut b = Batch::new();
        b.put_session("1555", 1, b"s").delete_identity("1555", 1);
        clone.commit(b).await.unwrap();
        assert_eq!(s.generation(Role::Session), 1);
        assert_eq!(s.generation(Role::Identity), 1);
        assert_eq!(s.generation(Role::LidMapping), 1);

        // A precondition alone reads; a refused batch still counts what it would write.
        let mut b = Batch::new();
        b.require_present(Role::Contact, "", "x");
        b.put_lid_mapping("1666", "43");
        assert!(matches!(s.commit(b).await, Err(Error::Conflict { .. })));
        assert_eq!(s.generation(Role::Contact), 0);
        assert_eq!(s.generation(Role::LidMapping), 2);
        // An empty batch reaches nothing.
        s.commit(Batch::new()).await.unwrap();
        assert_eq!(s.generation(Role::LidMapping), 2);
    }

    /// Holds every commit forever.
    #[derive(Debug)]
    struct Stall;

    impl Tap for Stall {
        fn before_commit<'a>(&'a self, _: &'a [Op]) -> BoxFuture<'a, ()> {
            Box::pin(std::future::pending())
        }
    }

    #[test]
    fn a_commit_dropped_unfinished_counts() {
        let s = AccountStore::new(
            Arc::new(Tapped::new(MemoryBackend::new(), Stall)),
            AccountId::new("g").unwrap(),
        );
        let mut b = Batch::new();
        b.put_lid_mapping("1555", "42");
        {
            let mut commit = pin!(s.commit(b));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(commit.as_mut().poll(&mut cx).is_pending());
            assert_eq!(s.generation(Role::LidMapping), 0, "not ended yet");
        }
        assert_eq!(s.generation(Role::LidMapping), 1);
    }
}
