use crate::address::ProtocolAddress;

/// Everything that can go wrong in this crate.
///
/// Variants fall in three groups: the peer sent something we cannot accept (malformed,
/// forged, replayed or out of bounds), local state is missing or was judged untrusted
/// (the caller decides what to do), and the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- peer input ----
    /// A message could not be parsed (truncated, bad protobuf, missing field, bad key).
    #[error("malformed message: {0}")]
    InvalidMessage(&'static str),
    /// The version byte names a protocol version other than 3.
    #[error("unsupported message version 0x{0:02x}")]
    UnsupportedVersion(u8),
    /// The MAC of a `SignalMessage` did not verify under any session state.
    #[error("message authentication failed")]
    BadMac,
    /// A signature (signed pre-key, sender-key message) did not verify.
    #[error("signature verification failed")]
    InvalidSignature,
    /// The message key for this counter was already used (a replay or duplicate).
    #[error("duplicate message: counter {counter} already received")]
    DuplicateMessage {
        /// The message's counter (or sender-key iteration).
        counter: u32,
    },
    /// The counter jumps further ahead than the bound on skipped message keys allows.
    #[error("message counter {counter} is too far ahead of {current}")]
    TooFarInFuture {
        /// The next counter the chain expected.
        current: u32,
        /// The counter the message carried.
        counter: u32,
    },
    /// Plaintext padding was missing or malformed.
    #[error("bad plaintext padding")]
    BadPadding,

    // ---- local state ----
    /// There is no session for this address (or none that can encrypt).
    #[error("no session for {0}")]
    NoSession(ProtocolAddress),
    /// The peer's identity key differs from the trusted one. The caller decides whether to
    /// accept it (save the new identity and retry) or to refuse.
    #[error("untrusted identity for {0}")]
    UntrustedIdentity(ProtocolAddress),
    /// A `pkmsg` names a one-time pre-key we do not have (already used or never issued).
    #[error("unknown pre-key id {0}")]
    InvalidPreKeyId(u32),
    /// A `pkmsg` names a signed pre-key we do not have.
    #[error("unknown signed pre-key id {0}")]
    InvalidSignedPreKeyId(u32),
    /// No sender-key state for this group sender (or none with this key id).
    #[error("no sender key state for key id {0:?}")]
    NoSenderKey(Option<u32>),
    /// A stored record could not be decoded.
    #[error("corrupt stored record: {0}")]
    InvalidRecord(&'static str),
    /// Key material was malformed.
    #[error(transparent)]
    Key(#[from] wa_crypto::Error),

    // ---- store ----
    /// The store backing this crate failed.
    #[error("store error: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wraps a store backend's error.
    pub fn store(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Store(err.into())
    }
}
