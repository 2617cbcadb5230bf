/// Errors from parsing key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key had the wrong length (32 bytes, or 33 with the `0x05` prefix, are accepted).
    #[error("bad key length {0}")]
    BadKeyLength(usize),
    /// A 33-byte key did not start with the `0x05` (DJB) type byte.
    #[error("unknown key type 0x{0:02x}")]
    BadKeyType(u8),
    /// A signature was not 64 bytes.
    #[error("bad signature length {0}")]
    BadSignatureLength(usize),
    /// An HKDF output length above 255 * 32 bytes was requested.
    #[error("hkdf output too long: {0}")]
    HkdfLength(usize),
}
