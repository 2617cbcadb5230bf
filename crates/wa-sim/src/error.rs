//! The crate's error type.

/// Everything that can go wrong in the simulator's API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding or accepting on the listen address failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// No account with this phone number exists.
    #[error("unknown account {0}")]
    UnknownAccount(String),
    /// A phone number that is not 7 to 15 digits (no leading zero).
    #[error("invalid phone number {0:?}")]
    InvalidPhone(String),
    /// The QR string is not `ref,noise,identity,adv-secret,platform`.
    #[error("malformed QR string: {0}")]
    BadQr(&'static str),
    /// The QR's ref belongs to no live registration connection (expired, never issued,
    /// or the connection is gone).
    #[error("QR ref is unknown or expired")]
    UnknownRef,
    /// The QR's keys do not match the connection that was given its ref.
    #[error("QR keys do not match the registering connection")]
    QrKeyMismatch,
    /// No connection has asked for a pairing code for this phone number.
    #[error("no pending pairing-code registration for {0}")]
    NoPendingCode(String),
    /// The pairing code is not 8 characters of the pairing alphabet.
    #[error("malformed pairing code")]
    BadPairingCode,
    /// The registering connection closed before pairing finished.
    #[error("the registering connection went away")]
    ConnectionGone,
    /// The companion's answer to pair-success (or its key bundle) was wrong; nothing was
    /// registered.
    #[error("pairing rejected: {0}")]
    PairingRejected(String),
    /// The companion did not answer in time.
    #[error("timed out waiting for the companion")]
    Timeout,
    /// A saved state file could not be read.
    #[error("bad state file: {0}")]
    BadState(&'static str),
    /// The server (or the phone) refused a request: a malformed stanza, a message the
    /// server would not route, a group operation that is not allowed.
    #[error("rejected: {0}")]
    Rejected(String),
}
