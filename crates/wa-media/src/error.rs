/// Errors of media encryption, transfer and verification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The encrypted blob is shorter than one block plus the MAC, or not block-aligned.
    #[error("encrypted media truncated or misaligned")]
    Truncated,
    /// The 10-byte MAC does not match: the blob was altered or the key is wrong.
    #[error("media MAC mismatch")]
    MacMismatch,
    /// The SHA-256 of the encrypted blob differs from `fileEncSha256`.
    #[error("encrypted media hash mismatch")]
    EncHashMismatch,
    /// The SHA-256 of the plaintext differs from `fileSha256`.
    #[error("media plaintext hash mismatch")]
    HashMismatch,
    /// The decrypted padding is invalid.
    #[error("bad media padding")]
    BadPadding,
    /// The media key is not 32 bytes, or a required message field is missing.
    #[error("invalid media message: {0}")]
    InvalidMessage(&'static str),
    /// Reading or writing a local file or stream failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// An HTTP transfer failed (connection, status, body).
    #[error("http: {0}")]
    Http(String),
    /// The server refused a request (media_conn or media retry).
    #[error("socket: {0}")]
    Socket(#[from] wa_socket::Error),
    /// Every upload host failed.
    #[error("upload failed on every host: {0}")]
    UploadFailed(String),
    /// A blob exceeds the configured size limit.
    #[error("media larger than the limit of {0} bytes")]
    TooLarge(u64),
}
