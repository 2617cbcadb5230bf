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
    /// The media key is not 32 bytes, or a required message field is missing or
    /// malformed (e.g. a direct path that does not start with `/`).
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
    /// The media host no longer has the blob (HTTP 404 or 410): ask the phone to upload
    /// it again with [`Media::request_reupload`](crate::Media::request_reupload).
    #[error("media no longer on the server (HTTP {0})")]
    Gone(u16),
    /// The phone could not upload the media again: its `MediaRetryNotification` result
    /// (0 general error, 2 not found, 3 decryption error) or the `<error code>` it sent.
    #[error("media re-upload failed with result {0}")]
    RetryFailed(i32),
    /// A media-retry payload did not decrypt (wrong media key or tampered).
    #[error("media retry payload does not decrypt")]
    RetryDecrypt,
    /// The phone did not answer a re-upload request in time.
    #[error("no answer to the media re-upload request in time")]
    RetryTimeout,
    /// The sticker service answered with no pack (an empty array).
    #[error("no sticker pack found")]
    StickerPackNotFound,
    /// The sticker service's answer is not a well-formed pack: not JSON, not an array
    /// of packs, a field of the wrong type, base64 that does not decode, a key or hash
    /// that is not 32 bytes. Says which field.
    #[error("malformed sticker pack: {0}")]
    InvalidStickerPack(String),
    /// The pack id given to [`Media::fetch_sticker_pack`](crate::Media::fetch_sticker_pack)
    /// is empty, longer than 128 bytes, or holds a character that is not printable ASCII
    /// (spaces and control characters included).
    #[error("invalid sticker pack id")]
    InvalidPackId,
    /// A blob exceeds the configured size limit.
    #[error("media larger than the limit of {0} bytes")]
    TooLarge(u64),
}
