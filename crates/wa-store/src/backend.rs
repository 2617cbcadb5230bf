use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::{Error, Result};

/// A boxed, `Send` future returning a store [`Result`]; what [`Backend`] methods return so
/// that `Arc<dyn Backend>` works.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Longest scope or key a backend must accept, in bytes.
pub const MAX_KEY_LEN: usize = 512;

/// Which account a piece of state belongs to. Every backend keeps many accounts apart in
/// one database; the id is chosen by the application (for example a name or the account's
/// phone number) and must be stable across restarts.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    /// Makes an account id.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `id` is empty or longer than [`MAX_KEY_LEN`] bytes.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() || id.len() > MAX_KEY_LEN {
            return Err(Error::InvalidInput(format!(
                "account id must be 1..={MAX_KEY_LEN} bytes, got {}",
                id.len()
            )));
        }
        Ok(Self(id))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({:?})", self.0)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of state a linked device keeps. Each role is a separate key space inside an
/// account; the numeric codes are stored in databases and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Role {
    /// The account's [`AuthCreds`](crate::AuthCreds) (one item).
    Creds,
    /// Signal sessions; scope = user, key = device.
    Session,
    /// Remote identity keys; scope = user, key = device.
    Identity,
    /// One-time pre-keys; key = id.
    PreKey,
    /// Signed pre-keys; key = id.
    SignedPreKey,
    /// Sender keys; scope = group, key = sender address.
    SenderKey,
    /// Which devices have our sender key; scope = group, key = device JID.
    SenderKeyMemory,
    /// App-state sync keys; key = key id.
    AppStateSyncKey,
    /// App-state collection versions (LTHash state); key = collection name.
    AppStateVersion,
    /// LID <-> phone-number mappings; scope = `"pn"` or `"lid"`, key = the user.
    LidMapping,
    /// Recently sent messages kept for retry receipts; scope = chat, key = message id.
    SentMessage,
    /// Contacts and push names; key = JID.
    Contact,
    /// Markers of incoming messages already processed (decrypted, committed and answered),
    /// so a redelivered stanza is recognised after a restart; scope = chat, key = message
    /// id and sender.
    ProcessedMessage,
    /// Trusted-contact privacy tokens (see [`PrivacyToken`](crate::PrivacyToken)); key =
    /// the contact's user JID (its LID when known).
    PrivacyToken,
    /// Received messages committed with their processed markers but not yet reported as
    /// events, so a process that stops in between reports them on its next start; key =
    /// a sequence in processing order.
    Inbox,
    /// The 32-byte secrets of messages that carry one (`messageContextInfo.messageSecret`),
    /// which poll votes, event responses and encrypted reactions and comments on them are
    /// encrypted with; scope = chat, key = message id and the creator's user JID.
    MessageSecret,
    /// Chat settings kept from app state (archived, pinned, muted), encoded by their
    /// owner; scope = the setting, key = the chat's JID.
    ChatSetting,
}

impl Role {
    /// Every role, in code order.
    pub const ALL: [Role; 17] = [
        Role::Creds,
        Role::Session,
        Role::Identity,
        Role::PreKey,
        Role::SignedPreKey,
        Role::SenderKey,
        Role::SenderKeyMemory,
        Role::AppStateSyncKey,
        Role::AppStateVersion,
        Role::LidMapping,
        Role::SentMessage,
        Role::Contact,
        Role::ProcessedMessage,
        Role::PrivacyToken,
        Role::Inbox,
        Role::MessageSecret,
        Role::ChatSetting,
    ];

    /// The stable numeric code stored in databases.
    pub const fn code(self) -> i16 {
        match self {
            Role::Creds => 1,
            Role::Session => 2,
            Role::Identity => 3,
            Role::PreKey => 4,
            Role::SignedPreKey => 5,
            Role::SenderKey => 6,
            Role::SenderKeyMemory => 7,
            Role::AppStateSyncKey => 8,
            Role::AppStateVersion => 9,
            Role::LidMapping => 10,
            Role::SentMessage => 11,
            Role::Contact => 12,
            Role::ProcessedMessage => 13,
            Role::PrivacyToken => 14,
            Role::Inbox => 15,
            Role::MessageSecret => 16,
            Role::ChatSetting => 17,
        }
    }

    /// The role for a stored code, if known.
    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// One write (or precondition) of a batch, as a backend sees it. Values are already in
/// their stored form (see [`seal`]); backends never interpret them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Insert or replace an item.
    Put {
        /// Role of the item.
        role: Role,
        /// Scope within the role.
        scope: String,
        /// Key within the scope.
        key: String,
        /// Stored bytes.
        value: Bytes,
        /// A caller-chosen timestamp (unix seconds) used by [`Op::DeleteBefore`]; 0 when
        /// the role does not expire.
        at: i64,
    },
    /// Remove an item (no error when absent).
    Delete {
        /// Role of the item.
        role: Role,
        /// Scope within the role.
        scope: String,
        /// Key within the scope.
        key: String,
    },
    /// Remove every item of a scope.
    DeleteScope {
        /// Role of the items.
        role: Role,
        /// The scope to clear.
        scope: String,
    },
    /// Remove every item of a role whose `at` is below `before`.
    DeleteBefore {
        /// Role of the items.
        role: Role,
        /// Exclusive upper bound on `at`.
        before: i64,
    },
    /// Abort the whole batch with [`Error::Conflict`] unless the item exists at this
    /// point of the batch.
    RequirePresent {
        /// Role of the item.
        role: Role,
        /// Scope within the role.
        scope: String,
        /// Key within the scope.
        key: String,
    },
    /// Abort the whole batch with [`Error::Conflict`] if the item exists at this point of
    /// the batch.
    RequireAbsent {
        /// Role of the item.
        role: Role,
        /// Scope within the role.
        scope: String,
        /// Key within the scope.
        key: String,
    },
}

impl Op {
    /// The role the op touches (or, for a precondition, looks at).
    pub fn role(&self) -> Role {
        match self {
            Op::Put { role, .. }
            | Op::Delete { role, .. }
            | Op::DeleteScope { role, .. }
            | Op::DeleteBefore { role, .. }
            | Op::RequirePresent { role, .. }
            | Op::RequireAbsent { role, .. } => *role,
        }
    }

    /// Whether the op writes (a precondition does not).
    pub fn writes(&self) -> bool {
        !matches!(self, Op::RequirePresent { .. } | Op::RequireAbsent { .. })
    }

    /// The conflict error for a failed precondition op; `None` for other ops.
    pub fn conflict(&self) -> Option<Error> {
        match self {
            Op::RequirePresent { role, scope, key } => Some(Error::Conflict {
                role: *role,
                scope: scope.clone(),
                key: key.clone(),
                expected: "present",
            }),
            Op::RequireAbsent { role, scope, key } => Some(Error::Conflict {
                role: *role,
                scope: scope.clone(),
                key: key.clone(),
                expected: "absent",
            }),
            _ => None,
        }
    }
}

/// The storage engine under every role: items addressed by (account, role, scope, key)
/// holding opaque bytes, and atomic batches.
///
/// Implementations must guarantee:
/// - **Atomicity**: [`Backend::commit`] applies every op of the batch or none; readers
///   never observe part of a batch.
/// - **Serialisation per account**: two concurrent commits to one account behave as if run
///   one after the other, including their `Require*` preconditions.
/// - **Durability**: when `commit` returns `Ok`, the batch survives a crash of the process.
/// - **Isolation between accounts**: nothing of one account is visible through another.
///
/// `wa_store::testing` (feature `testing`) checks all of this; every backend runs it.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Reads one item.
    fn get<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Option<Bytes>>;

    /// Reads many items of one role at once: one value per requested `(scope, key)`, in
    /// the order asked, `None` where absent (a key asked twice is answered twice).
    ///
    /// The default reads them one by one. Backends with a round trip per read answer in one
    /// (PostgreSQL: one query; SQLite: one read transaction), and the values then come
    /// from one consistent state of the account.
    fn get_many<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        keys: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Vec<Option<Bytes>>> {
        get_one_by_one(self, account, role, keys)
    }

    /// Reads every item of a scope, ordered by key (byte order).
    fn list<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
    ) -> BoxFuture<'a, Vec<(String, Bytes)>>;

    /// Applies a batch atomically.
    fn commit<'a>(&'a self, account: &'a AccountId, ops: Vec<Op>) -> BoxFuture<'a, ()>;

    /// Removes everything of an account.
    fn delete_account<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, ()>;

    /// Every account that has saved credentials.
    fn accounts(&self) -> BoxFuture<'_, Vec<AccountId>>;
}

/// [`Backend::get_many`]'s default: one [`Backend::get`] per key.
pub(crate) fn get_one_by_one<'a, B: Backend + ?Sized>(
    backend: &'a B,
    account: &'a AccountId,
    role: Role,
    keys: &'a [(&'a str, &'a str)],
) -> BoxFuture<'a, Vec<Option<Bytes>>> {
    Box::pin(async move {
        let mut out = Vec::with_capacity(keys.len());
        for (scope, key) in keys {
            out.push(backend.get(account, role, scope, key).await?);
        }
        Ok(out)
    })
}

/// Format byte of the stored item envelope.
const ENVELOPE_V1: u8 = 1;

/// Wraps a value in the stored envelope: one format byte, a CRC-32 of the payload
/// (little-endian), then the payload. The checksum turns a damaged row into a typed
/// [`Error::Corrupt`] instead of garbage handed to a decoder.
pub fn seal(payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(ENVELOPE_V1);
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// Checks and strips the envelope made by [`seal`].
///
/// # Errors
/// [`Error::Corrupt`] naming the item when the envelope is short, of an unknown format or
/// fails its checksum.
pub fn open(role: Role, scope: &str, key: &str, stored: Bytes) -> Result<Bytes> {
    let corrupt = |reason: &str| Error::Corrupt {
        role,
        scope: scope.to_owned(),
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    if stored.len() < 5 {
        return Err(corrupt("shorter than the item envelope"));
    }
    if stored[0] != ENVELOPE_V1 {
        return Err(corrupt("unknown envelope format"));
    }
    let want = u32::from_le_bytes([stored[1], stored[2], stored[3], stored[4]]);
    let payload = stored.slice(5..);
    if crc32fast::hash(&payload) != want {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(payload)
}

pub(crate) fn check_key(what: &str, s: &str) -> Result<()> {
    if s.len() > MAX_KEY_LEN {
        return Err(Error::InvalidInput(format!(
            "{what} longer than {MAX_KEY_LEN} bytes ({})",
            s.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_damage() {
        let sealed = seal(b"hello");
        assert_eq!(
            open(Role::Session, "u", "1", sealed.clone()).unwrap(),
            &b"hello"[..]
        );
        let mut bad = sealed.to_vec();
        bad[7] ^= 1;
        assert!(
            open(Role::Session, "u", "1", bad.into())
                .unwrap_err()
                .is_corrupt()
        );
        assert!(
            open(Role::Session, "u", "1", Bytes::from_static(b"abc"))
                .unwrap_err()
                .is_corrupt()
        );
        let mut v2 = sealed.to_vec();
        v2[0] = 2;
        assert!(
            open(Role::Session, "u", "1", v2.into())
                .unwrap_err()
                .is_corrupt()
        );
    }

    #[test]
    fn role_codes_unique_and_reversible() {
        for r in Role::ALL {
            assert_eq!(Role::from_code(r.code()), Some(r));
        }
        let mut codes: Vec<i16> = Role::ALL.iter().map(|r| r.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), Role::ALL.len());
        assert_eq!(Role::from_code(0), None);
    }

    #[test]
    fn account_id_bounds() {
        assert!(AccountId::new("").is_err());
        assert!(AccountId::new("x".repeat(MAX_KEY_LEN + 1)).is_err());
        assert_eq!(AccountId::new("acct").unwrap().as_str(), "acct");
    }
}
