use wa_binary::Str;

use crate::backend::{check_key, seal};
use crate::{AuthCreds, Op, Result, Role};

/// Scope of the items of roles that have no scope.
pub(crate) const NO_SCOPE: &str = "";
/// Scope of LID mappings keyed by phone number.
pub(crate) const PN_SCOPE: &str = "pn";
/// Scope of LID mappings keyed by LID.
pub(crate) const LID_SCOPE: &str = "lid";

pub(crate) fn id_key(id: u32) -> String {
    // Zero-padded so that byte order is numeric order.
    format!("{id:010}")
}

pub(crate) fn processed_key(id: &str, sender: &str) -> String {
    let mut key = String::with_capacity(id.len() + 1 + sender.len());
    key.push_str(id);
    key.push(' ');
    key.push_str(sender);
    key
}

/// A device number as its key text (decimal), formatted on the stack into an inline
/// `Str`: sessions and identities are looked up by it on every message.
pub(crate) fn device_key(device: u32) -> Str {
    Str::decimal(device.into())
}

/// A set of writes across roles that lands whole or not at all.
///
/// Build it with the role-specific methods, then hand it to
/// [`AccountStore::commit`](crate::AccountStore::commit). Ops apply in the order they were
/// added; a failed precondition ([`Batch::require_present`], [`Batch::consume_pre_key`])
/// aborts the whole batch with [`Error::Conflict`](crate::Error::Conflict).
///
/// ```
/// # use wa_store::Batch;
/// let mut batch = Batch::new();
/// batch
///     .put_session("123@s.whatsapp.net", 0, b"session state")
///     .consume_pre_key(17)
///     .put_sent_message("123@s.whatsapp.net", "MSGID", b"message", 1_700_000_000);
/// assert_eq!(batch.len(), 4);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Batch {
    ops: Vec<Op>,
    invalid: Option<String>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of ops (preconditions included).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no ops.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Appends every op of `other` after those of `self` (for example the writes staged by
    /// a [`SignalStoreAdapter`](crate::SignalStoreAdapter) plus a message acknowledgement).
    pub fn append(&mut self, other: Batch) -> &mut Self {
        if self.invalid.is_none() {
            self.invalid = other.invalid;
        }
        self.ops.extend(other.ops);
        self
    }

    /// The ops in backend form, after checking every key's length.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) when a scope or key was too long.
    pub fn into_ops(self) -> Result<Vec<Op>> {
        match self.invalid {
            Some(why) => Err(crate::Error::InvalidInput(why)),
            None => Ok(self.ops),
        }
    }

    fn check(&mut self, scope: &str, key: &str) {
        if self.invalid.is_none()
            && let Err(e) = check_key("scope", scope).and_then(|()| check_key("key", key))
        {
            self.invalid = Some(e.to_string());
        }
    }

    fn put(&mut self, role: Role, scope: &str, key: &str, value: &[u8], at: i64) -> &mut Self {
        self.check(scope, key);
        self.ops.push(Op::Put {
            role,
            scope: scope.to_owned(),
            key: key.to_owned(),
            value: seal(value),
            at,
        });
        self
    }

    fn delete(&mut self, role: Role, scope: &str, key: &str) -> &mut Self {
        self.check(scope, key);
        self.ops.push(Op::Delete {
            role,
            scope: scope.to_owned(),
            key: key.to_owned(),
        });
        self
    }

    fn delete_scope(&mut self, role: Role, scope: &str) -> &mut Self {
        self.check(scope, "");
        self.ops.push(Op::DeleteScope {
            role,
            scope: scope.to_owned(),
        });
        self
    }

    /// Aborts the batch unless the item exists when this op runs.
    pub fn require_present(&mut self, role: Role, scope: &str, key: &str) -> &mut Self {
        self.check(scope, key);
        self.ops.push(Op::RequirePresent {
            role,
            scope: scope.to_owned(),
            key: key.to_owned(),
        });
        self
    }

    /// Aborts the batch if the item exists when this op runs.
    pub fn require_absent(&mut self, role: Role, scope: &str, key: &str) -> &mut Self {
        self.check(scope, key);
        self.ops.push(Op::RequireAbsent {
            role,
            scope: scope.to_owned(),
            key: key.to_owned(),
        });
        self
    }

    /// Saves the account's credentials.
    pub fn save_creds(&mut self, creds: &AuthCreds) -> &mut Self {
        let bytes = creds.encode();
        self.put(Role::Creds, NO_SCOPE, NO_SCOPE, &bytes, 0)
    }

    /// Stores the Signal session with `user`'s `device`.
    pub fn put_session(&mut self, user: &str, device: u32, session: &[u8]) -> &mut Self {
        self.put(Role::Session, user, &device_key(device), session, 0)
    }

    /// Deletes the session with `user`'s `device`.
    pub fn delete_session(&mut self, user: &str, device: u32) -> &mut Self {
        self.delete(Role::Session, user, &device_key(device))
    }

    /// Deletes every session with any device of `user`.
    pub fn delete_all_sessions(&mut self, user: &str) -> &mut Self {
        self.delete_scope(Role::Session, user)
    }

    /// Stores the identity key of `user`'s `device`.
    pub fn put_identity(&mut self, user: &str, device: u32, identity: &[u8]) -> &mut Self {
        self.put(Role::Identity, user, &device_key(device), identity, 0)
    }

    /// Deletes the identity key of `user`'s `device`.
    pub fn delete_identity(&mut self, user: &str, device: u32) -> &mut Self {
        self.delete(Role::Identity, user, &device_key(device))
    }

    /// Deletes the identity keys of every device of `user`.
    pub fn delete_all_identities(&mut self, user: &str) -> &mut Self {
        self.delete_scope(Role::Identity, user)
    }

    /// Stores a one-time pre-key.
    pub fn put_pre_key(&mut self, id: u32, pre_key: &[u8]) -> &mut Self {
        self.put(Role::PreKey, NO_SCOPE, &id_key(id), pre_key, 0)
    }

    /// Deletes a one-time pre-key (no error when absent).
    pub fn remove_pre_key(&mut self, id: u32) -> &mut Self {
        self.delete(Role::PreKey, NO_SCOPE, &id_key(id))
    }

    /// Deletes a one-time pre-key that must still exist: if another batch consumed it
    /// first, this batch fails with [`Error::Conflict`](crate::Error::Conflict) and writes
    /// nothing, so a pre-key is never used twice.
    pub fn consume_pre_key(&mut self, id: u32) -> &mut Self {
        let key = id_key(id);
        self.require_present(Role::PreKey, NO_SCOPE, &key);
        self.delete(Role::PreKey, NO_SCOPE, &key)
    }

    /// Stores a signed pre-key.
    pub fn put_signed_pre_key(&mut self, id: u32, signed_pre_key: &[u8]) -> &mut Self {
        self.put(Role::SignedPreKey, NO_SCOPE, &id_key(id), signed_pre_key, 0)
    }

    /// Deletes a signed pre-key.
    pub fn remove_signed_pre_key(&mut self, id: u32) -> &mut Self {
        self.delete(Role::SignedPreKey, NO_SCOPE, &id_key(id))
    }

    /// Stores the sender key of `sender` in `group`.
    pub fn put_sender_key(&mut self, group: &str, sender: &str, sender_key: &[u8]) -> &mut Self {
        self.put(Role::SenderKey, group, sender, sender_key, 0)
    }

    /// Deletes the sender key of `sender` in `group`.
    pub fn delete_sender_key(&mut self, group: &str, sender: &str) -> &mut Self {
        self.delete(Role::SenderKey, group, sender)
    }

    /// Records that `devices` received our sender key for `group`.
    pub fn mark_sender_key_sent<S: AsRef<str>>(&mut self, group: &str, devices: &[S]) -> &mut Self {
        for d in devices {
            self.put(Role::SenderKeyMemory, group, d.as_ref(), &[], 0);
        }
        self
    }

    /// Forgets that `devices` received our sender key for `group` (the message that was
    /// to carry it did not reach the server), so the next message distributes it to them.
    pub fn unmark_sender_key_sent<S: AsRef<str>>(
        &mut self,
        group: &str,
        devices: &[S],
    ) -> &mut Self {
        for d in devices {
            self.delete(Role::SenderKeyMemory, group, d.as_ref());
        }
        self
    }

    /// Forgets which devices have our sender key for `group` (after a membership change
    /// or a sender-key rotation), so the next message redistributes it.
    pub fn forget_sender_key_memory(&mut self, group: &str) -> &mut Self {
        self.delete_scope(Role::SenderKeyMemory, group)
    }

    /// Stores an app-state sync key.
    pub fn put_app_state_sync_key(&mut self, key_id: &str, key: &[u8]) -> &mut Self {
        self.put(Role::AppStateSyncKey, NO_SCOPE, key_id, key, 0)
    }

    /// Stores the state (version, LTHash, value MACs) of an app-state collection.
    pub fn put_app_state_version(&mut self, collection: &str, state: &[u8]) -> &mut Self {
        self.put(Role::AppStateVersion, NO_SCOPE, collection, state, 0)
    }

    /// Deletes the state of an app-state collection (forcing a full resync).
    pub fn delete_app_state_version(&mut self, collection: &str) -> &mut Self {
        self.delete(Role::AppStateVersion, NO_SCOPE, collection)
    }

    /// Records that phone-number user `pn` is LID user `lid`, in both directions.
    pub fn put_lid_mapping(&mut self, pn: &str, lid: &str) -> &mut Self {
        self.put(Role::LidMapping, PN_SCOPE, pn, lid.as_bytes(), 0);
        self.put(Role::LidMapping, LID_SCOPE, lid, pn.as_bytes(), 0)
    }

    /// Keeps a sent message for answering retry receipts; `at` is its send time in unix
    /// seconds, used by [`Batch::prune_sent_messages`].
    pub fn put_sent_message(&mut self, chat: &str, id: &str, message: &[u8], at: i64) -> &mut Self {
        self.put(Role::SentMessage, chat, id, message, at)
    }

    /// Forgets a sent message.
    pub fn delete_sent_message(&mut self, chat: &str, id: &str) -> &mut Self {
        self.delete(Role::SentMessage, chat, id)
    }

    /// Forgets every sent message sent before `before` (unix seconds).
    pub fn prune_sent_messages(&mut self, before: i64) -> &mut Self {
        self.ops.push(Op::DeleteBefore {
            role: Role::SentMessage,
            before,
        });
        self
    }

    /// Records that the incoming message `id` from `sender` in `chat` was processed; `at`
    /// is the time in unix seconds, used by [`Batch::prune_processed_messages`]. Commit it
    /// in the same batch as the session state the message advanced.
    pub fn mark_message_processed(
        &mut self,
        chat: &str,
        id: &str,
        sender: &str,
        at: i64,
    ) -> &mut Self {
        let key = processed_key(id, sender);
        self.put(Role::ProcessedMessage, chat, &key, b"", at)
    }

    /// Forgets every processed-message marker recorded before `before` (unix seconds).
    pub fn prune_processed_messages(&mut self, before: i64) -> &mut Self {
        self.ops.push(Op::DeleteBefore {
            role: Role::ProcessedMessage,
            before,
        });
        self
    }

    /// Stores a contact (name, push name, ...), encoded by its owner.
    pub fn put_contact(&mut self, jid: &str, contact: &[u8]) -> &mut Self {
        self.put(Role::Contact, NO_SCOPE, jid, contact, 0)
    }

    /// Deletes a contact.
    pub fn delete_contact(&mut self, jid: &str) -> &mut Self {
        self.delete(Role::Contact, NO_SCOPE, jid)
    }

    /// Stores the value of one of a chat's settings (`setting`: archived, pinned,
    /// muted, ... as their owner names them), encoded by their owner.
    pub fn put_chat_setting(&mut self, setting: &str, jid: &str, value: &[u8]) -> &mut Self {
        self.put(Role::ChatSetting, setting, jid, value, 0)
    }

    /// Deletes one of a chat's settings.
    pub fn delete_chat_setting(&mut self, setting: &str, jid: &str) -> &mut Self {
        self.delete(Role::ChatSetting, setting, jid)
    }

    /// Stores the privacy-token record of the contact `jid` (replacing any).
    pub fn put_privacy_token(&mut self, jid: &str, token: &crate::PrivacyToken) -> &mut Self {
        self.put(
            Role::PrivacyToken,
            NO_SCOPE,
            jid,
            &token.encode(),
            token.last_used(),
        )
    }

    /// Forgets every privacy-token record whose timestamps are both before `before`.
    pub fn prune_privacy_tokens(&mut self, before: i64) -> &mut Self {
        self.ops.push(Op::DeleteBefore {
            role: Role::PrivacyToken,
            before,
        });
        self
    }

    /// Keeps a received message until it was reported: `key` orders the entries (the
    /// processing order), `record` is its owner's encoding, `at` the time in unix seconds,
    /// used by [`Batch::prune_inbox`]. Commit it with the message's processed marker.
    pub fn put_inbox(&mut self, key: &str, record: &[u8], at: i64) -> &mut Self {
        self.put(Role::Inbox, NO_SCOPE, key, record, at)
    }

    /// Forgets a received message once it was reported.
    pub fn delete_inbox(&mut self, key: &str) -> &mut Self {
        self.delete(Role::Inbox, NO_SCOPE, key)
    }

    /// Stores the message secret of the message `id` that `creator` (a user JID, no
    /// device) sent in `chat`; `at` is the time in unix seconds, used by
    /// [`Batch::prune_message_secrets`].
    pub fn put_message_secret(
        &mut self,
        chat: &str,
        id: &str,
        creator: &str,
        secret: &[u8; 32],
        at: i64,
    ) -> &mut Self {
        let key = processed_key(id, creator);
        self.put(Role::MessageSecret, chat, &key, secret, at)
    }

    /// Forgets every message secret stored before `before` (unix seconds).
    pub fn prune_message_secrets(&mut self, before: i64) -> &mut Self {
        self.ops.push(Op::DeleteBefore {
            role: Role::MessageSecret,
            before,
        });
        self
    }

    /// Forgets every inbox entry stored before `before` (unix seconds).
    pub fn prune_inbox(&mut self, before: i64) -> &mut Self {
        self.ops.push(Op::DeleteBefore {
            role: Role::Inbox,
            before,
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_keys_sort_numerically() {
        let mut ids = [1u32, 10, 2, 100, u32::MAX, 0];
        let mut keys: Vec<String> = ids.iter().map(|&i| id_key(i)).collect();
        keys.sort();
        ids.sort_unstable();
        let back: Vec<u32> = keys.iter().map(|k| k.parse().unwrap()).collect();
        assert_eq!(back, ids);
    }

    #[test]
    fn over_long_keys_are_refused() {
        let mut b = Batch::new();
        b.put_contact(&"x".repeat(crate::MAX_KEY_LEN + 1), b"c");
        assert!(matches!(b.into_ops(), Err(crate::Error::InvalidInput(_))));
    }

    #[test]
    fn lid_mapping_writes_both_directions() {
        let mut b = Batch::new();
        b.put_lid_mapping("1555", "999");
        let ops = b.into_ops().unwrap();
        assert_eq!(ops.len(), 2);
        assert!(matches!(&ops[0], Op::Put { scope, key, .. } if scope == "pn" && key == "1555"));
        assert!(matches!(&ops[1], Op::Put { scope, key, .. } if scope == "lid" && key == "999"));
    }

    #[test]
    fn device_keys_are_the_decimal_text() {
        for device in [0, 1, 9, 10, 99, 100, 65_535, 1_000_000_000, u32::MAX] {
            assert_eq!(&*device_key(device), device.to_string());
        }
    }
}
