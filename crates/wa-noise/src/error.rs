/// Which certificate of the server's chain a validity error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    /// The intermediate certificate, signed by the trusted root.
    Intermediate,
    /// The leaf certificate, signed by the intermediate and naming the server's static key.
    Leaf,
}

/// Which handshake message an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeStep {
    /// Message 1, client to server: the client's ephemeral key.
    ClientHello,
    /// Message 2, server to client: ephemeral, encrypted static, encrypted certificate chain.
    ServerHello,
    /// Message 3, client to server: encrypted static, encrypted client payload.
    ClientFinish,
}

/// Everything that can go wrong in this crate.
///
/// Variants fall in three groups: the peer sent something invalid (framing, handshake and
/// certificate errors, transport decryption failures), the caller misused the API (a
/// payload too large for one frame), and exhaustion (the nonce counter ran out). There is
/// no IO error: this crate does no IO.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame declared a length above the decoder's limit; nothing of it was buffered.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The declared (or requested) frame length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The connection did not start with `WA 06 03` (optionally after an `ED 00 01` prefix).
    #[error("bad connection intro header")]
    BadIntro,
    /// The routing-info prefix declared more bytes than the decoder accepts.
    #[error("routing info of {0} bytes is too long")]
    RoutingInfoTooLarge(usize),
    /// The frame decoder already failed; it yields nothing more.
    #[error("frame decoder failed earlier")]
    DecoderFailed,

    /// A handshake message was not a valid `HandshakeMessage` protobuf.
    #[error("{0:?}: malformed handshake message")]
    MalformedHandshake(HandshakeStep),
    /// A handshake message lacked a part, or a part had the wrong length.
    #[error("{step:?}: missing or bad field {field}")]
    MissingField {
        /// The message.
        step: HandshakeStep,
        /// The protobuf field that was missing or malformed.
        field: &'static str,
    },
    /// A Diffie-Hellman result was all zeros: the peer sent a low-order public key.
    #[error("{0:?}: low-order public key")]
    LowOrderKey(HandshakeStep),
    /// AES-GCM authentication of a handshake ciphertext failed (tampering, or keys that do
    /// not match).
    #[error("{step:?}: could not decrypt {field}")]
    HandshakeDecrypt {
        /// The message.
        step: HandshakeStep,
        /// The encrypted field.
        field: &'static str,
    },

    /// The decrypted certificate chain was not a valid `CertChain`, or lacked a part, or a
    /// signature or key had the wrong length.
    #[error("malformed certificate chain: {0}")]
    CertChainMalformed(&'static str),
    /// The intermediate certificate's signature does not verify under the trusted root key.
    #[error("intermediate certificate signature invalid")]
    IntermediateSignatureInvalid,
    /// The leaf certificate's signature does not verify under the intermediate's key.
    #[error("leaf certificate signature invalid")]
    LeafSignatureInvalid,
    /// The intermediate certificate names an issuer other than the root (serial 0).
    #[error("intermediate issuer serial {0}, expected 0")]
    IntermediateIssuerSerial(u32),
    /// The leaf certificate's issuer serial is not the intermediate's serial.
    #[error("leaf issuer serial {found}, expected {expected}")]
    LeafIssuerSerial {
        /// The intermediate's serial.
        expected: u32,
        /// The leaf's issuer serial.
        found: u32,
    },
    /// The leaf certificate's key is not the static key the server proved it holds.
    #[error("leaf certificate key differs from the server static key")]
    LeafKeyMismatch,
    /// A certificate's validity starts after `now`.
    #[error("{role:?} certificate not valid before {not_before} (now {now})")]
    CertNotYetValid {
        /// Which certificate.
        role: CertRole,
        /// Its `notBefore` (unix seconds).
        not_before: u64,
        /// The time the check used.
        now: u64,
    },
    /// A certificate's validity ended before `now`.
    #[error("{role:?} certificate expired at {not_after} (now {now})")]
    CertExpired {
        /// Which certificate.
        role: CertRole,
        /// Its `notAfter` (unix seconds).
        not_after: u64,
        /// The time the check used.
        now: u64,
    },

    /// A transport frame failed AES-GCM authentication; the receiving direction is closed.
    #[error("transport frame failed to decrypt")]
    TransportDecrypt,
    /// A transport frame was shorter than the 16-byte tag.
    #[error("transport frame of {0} bytes is shorter than the tag")]
    TransportFrameTooShort(usize),
    /// The receiving direction failed earlier and accepts nothing more.
    #[error("transport receive direction closed after an earlier failure")]
    TransportClosed,
    /// 2^32 frames were sent or received in one direction; the nonce would repeat.
    #[error("nonce counter exhausted")]
    CounterExhausted,
    /// A payload is too large to fit in one frame (3-byte length).
    #[error("payload of {0} bytes does not fit in one frame")]
    PayloadTooLarge(usize),
}
