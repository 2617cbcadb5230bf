/// Everything that can go wrong while verifying, decoding or encoding app state, or while
/// inflating a history-sync blob.
///
/// Verification failures are peer misbehaviour (or a corrupted store) and each has its
/// own variant, so the sync layer can decide between a retry, a snapshot re-fetch and
/// waiting for a key share. `mutation` fields are zero-based positions in the patch or
/// snapshot.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No app-state sync key with this id is known; ask the primary device for it
    /// (APP_STATE_SYNC_KEY_REQUEST) and retry when it arrives.
    #[error("missing app-state sync key {}", hex_str(.0))]
    MissingKey(Vec<u8>),
    /// A record's index MAC is not HMAC-SHA256(index key, index JSON) of its decrypted value.
    #[error("index MAC mismatch in mutation {mutation}")]
    IndexMac {
        /// Position of the mutation.
        mutation: usize,
    },
    /// A record's value MAC does not authenticate its operation, key id, IV and ciphertext.
    #[error("value MAC mismatch in mutation {mutation}")]
    ValueMac {
        /// Position of the mutation.
        mutation: usize,
    },
    /// The LTHash after applying the mutations, the version and the collection name do not
    /// give the snapshot MAC the server sent.
    #[error("snapshot MAC mismatch at version {version}")]
    SnapshotMac {
        /// The version whose snapshot MAC failed.
        version: u64,
    },
    /// The patch MAC (over the snapshot MAC, every value MAC, version and name) failed.
    #[error("patch MAC mismatch at version {version}")]
    PatchMac {
        /// The version of the patch.
        version: u64,
    },
    /// A REMOVE named an index that the state does not hold; only raised when
    /// [`DecodeOptions::reject_unknown_removes`](crate::DecodeOptions) is set.
    #[error("REMOVE of unknown index in mutation {mutation}")]
    UnknownRemove {
        /// Position of the mutation.
        mutation: usize,
    },
    /// An authenticated value failed to decrypt (bad length or padding).
    #[error("value of mutation {mutation} does not decrypt")]
    Decrypt {
        /// Position of the mutation.
        mutation: usize,
    },
    /// A required field is missing or has an impossible size.
    #[error("malformed app state: {0}")]
    Malformed(&'static str),
    /// Bytes that should hold a protobuf message do not.
    #[error("protobuf decode failed: {0}")]
    Proto(#[from] prost::DecodeError),
    /// A decompressed history blob or recovery would exceed the configured cap.
    #[error("inflated data exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The cap that was hit.
        limit: usize,
    },
    /// The compressed data is not a valid zlib (or, for a recovery, gzip) stream.
    #[error("inflate failed: {0}")]
    Inflate(String),
    /// A collection recovered from the primary device does not add up: the LTHash of its
    /// records' value MACs is not the one it states.
    #[error("recovered collection at version {version} does not match its LTHash")]
    RecoveryHash {
        /// The version the recovery states.
        version: u64,
    },
    /// The caller asked for something impossible (no mutations, an index that is not
    /// representable, ...).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
}

fn hex_str(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
