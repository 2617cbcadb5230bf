use crate::Role;

/// Everything that can go wrong in a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A stored item could not be decoded: its checksum, format version or content is
    /// wrong. Only that item is affected; the rest of the account still loads.
    #[error("corrupt {role:?} item {scope:?}/{key:?}: {reason}")]
    Corrupt {
        /// The role the item belongs to.
        role: Role,
        /// The item's scope (for example the user of a session).
        scope: String,
        /// The item's key within its scope.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// A precondition of a batch did not hold (an item that had to be present was
    /// absent, or the reverse). Nothing of the batch was written.
    #[error("batch precondition failed on {role:?} item {scope:?}/{key:?}: expected it {expected}")]
    Conflict {
        /// The role of the item the precondition named.
        role: Role,
        /// Its scope.
        scope: String,
        /// Its key.
        key: String,
        /// `"present"` or `"absent"`.
        expected: &'static str,
    },
    /// Another worker holds this account (PostgreSQL advisory lock).
    #[error("account {account:?} is held by another worker")]
    AccountLocked {
        /// The account that could not be leased.
        account: String,
    },
    /// The caller passed something the store cannot hold (for example an over-long key).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The database schema is newer than this code understands.
    #[error("database schema version {found} is newer than the supported {supported}")]
    SchemaTooNew {
        /// The version found in the database.
        found: i64,
        /// The newest version this code knows.
        supported: i64,
    },
    /// The underlying database or file system failed.
    #[error("storage backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    /// Wraps any backend error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(e))
    }

    /// Whether this is [`Error::Corrupt`].
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Corrupt { .. })
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
