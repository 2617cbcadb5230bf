//! Linking a companion with a passkey (WebAuthn): what the socket reports while the
//! server, the user's authenticator and the primary device take it through the steps.

use std::fmt;

/// The WebAuthn `PublicKeyCredentialRequestOptions` the server sent with its passkey
/// request: hand them to the platform's WebAuthn API (`navigator.credentials.get`) and
/// pass its answer to the socket (`Socket::send_passkey_response` in `wa-socket`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRequestOptions {
    /// The challenge the authenticator signs (decoded from base64url).
    pub challenge: Vec<u8>,
    /// How long the server waits for the authenticator, in milliseconds, when given.
    pub timeout_ms: Option<u64>,
    /// The relying party id (`rpId`), when given.
    pub rp_id: Option<String>,
    /// The credentials the server accepts; empty lets the authenticator choose.
    pub allow_credentials: Vec<PasskeyCredential>,
    /// The user-verification requirement (`required`, `preferred`, `discouraged`),
    /// when given.
    pub user_verification: Option<String>,
    /// The options exactly as the server sent them (JSON), for WebAuthn APIs that take
    /// them whole and for fields not parsed here (`extensions`).
    pub json: String,
}

/// One entry of `allowCredentials`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyCredential {
    /// The credential id (decoded from base64url).
    pub id: Vec<u8>,
    /// The credential type, `public-key`.
    pub kind: String,
    /// How the authenticator may be reached (`internal`, `hybrid`, `usb`, ...).
    pub transports: Vec<String>,
}

/// The primary device accepted the passkey and both sides derived the confirmation code.
/// Unless `skip_handoff_ux` is set, show `code` and ask the user whether the primary device
/// shows the same; then confirm with the socket (`Socket::send_passkey_confirmation`, or
/// `Socket::confirm_passkey_code` with the code the user read on the primary device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyConfirmation {
    /// The code, `XXXX-XXXX` in the pairing-code alphabet.
    pub code: String,
    /// This companion proved that the user scanned its QR code with the primary device
    /// moments ago (the handoff proof), so showing the code may be skipped.
    pub skip_handoff_ux: bool,
}

/// What went wrong in a passkey link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PasskeyErrorKind {
    /// The request options were neither readable in the server's notification nor
    /// answered when asked for.
    RequestOptions,
    /// The primary's continuation arrived although no passkey answer had been sent.
    UnexpectedContinuation,
    /// The primary's ephemeral identity was malformed (protobuf, key or nonce length, a
    /// key that gives no shared secret).
    MalformedContinuation,
    /// A query of the exchange failed (refused, unanswered, or answered without what it
    /// should carry).
    Query,
    /// A step was asked for before the one it follows (a confirmation before the code).
    OutOfOrder,
    /// The code read on the primary device differs from this companion's: the link was
    /// abandoned.
    CodeMismatch,
}

impl fmt::Display for PasskeyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RequestOptions => "passkey request options unavailable",
            Self::UnexpectedContinuation => "passkey continuation without a passkey answer",
            Self::MalformedContinuation => "malformed primary ephemeral identity",
            Self::Query => "passkey query failed",
            Self::OutOfOrder => "passkey step out of order",
            Self::CodeMismatch => "passkey confirmation code mismatch",
        })
    }
}

/// A passkey link step that failed while handling a server notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyFailure {
    /// What went wrong.
    pub kind: PasskeyErrorKind,
    /// Whether it was the primary's continuation (`true`) or the server's request
    /// (`false`) that failed.
    pub continuation: bool,
    /// A description of the error.
    pub detail: String,
}
