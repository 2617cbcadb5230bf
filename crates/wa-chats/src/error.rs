/// Errors of presence, privacy, profile and blocklist operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed (not connected, timeout, ...).
    #[error("socket: {0}")]
    Socket(wa_socket::Error),
    /// The server refused the request (e.g. 401 not authorized, 404 not found).
    #[error("server refused: {code} {text}")]
    Refused {
        /// The error code.
        code: u16,
        /// The error text.
        text: String,
    },
    /// A reply or incoming stanza lacks a required element or attribute, or holds an
    /// unknown or out-of-bounds value.
    #[error("malformed stanza: {0}")]
    Malformed(&'static str),
    /// The contact QR link does not exist or was revoked (the server answered 404).
    #[error("that contact QR link does not exist or was revoked")]
    ContactQrLinkNotFound,
    /// The business message link does not exist or was revoked (the server answered
    /// 404).
    #[error("that business message link does not exist or was revoked")]
    BusinessMessageLinkNotFound,
    /// The request is invalid before it is sent (e.g. a value a setting does not take).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// App state did not verify or could not be encoded (a MAC mismatch, a missing key,
    /// a malformed patch, ...).
    #[error("app state: {0}")]
    AppState(#[from] wa_appstate::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] wa_store::Error),
    /// Downloading an external app-state blob failed.
    #[error("media: {0}")]
    Media(#[from] wa_media::Error),
    /// No privacy token of this user is stored, and
    /// [`ChatsConfig::presence_requires_token`](crate::ChatsConfig::presence_requires_token)
    /// asks for one.
    #[error("no privacy token stored for {0}")]
    NoPrivacyToken(wa_binary::Jid),
    /// No app-state sync key has been shared by the primary device yet, so nothing can
    /// be pushed.
    #[error("no app-state sync key yet")]
    NoAppStateKey,
    /// Sending a message (a status update) failed.
    #[error("messages: {0}")]
    Messages(#[from] wa_messages::Error),
    /// The status audience the privacy setting names has more users than one update may
    /// go to ([`wa_messages::MAX_STATUS_RECIPIENTS`]); nothing was sent.
    #[error("status audience of {count} users exceeds {max}")]
    TooManyStatusRecipients {
        /// Users in the audience.
        count: usize,
        /// The most allowed.
        max: usize,
    },
    /// Our primary device answered a recovery request with a collection other than the
    /// one asked for; nothing was stored.
    #[error("recovery of {asked} answered with collection {got:?}")]
    RecoveryMismatch {
        /// The collection asked for.
        asked: wa_appstate::Collection,
        /// The collection the answer names.
        got: Option<String>,
    },
    /// The primary device's recovery answer carried no collection snapshot.
    #[error("recovery answer without a snapshot")]
    EmptyRecovery,
    /// No recovery answer arrived within [`AppStateConfig::recovery_wait`](crate::AppStateConfig).
    #[error("no recovery answer from the primary device in time")]
    RecoveryTimeout,
    /// Sending to the primary device needs a messenger, and this [`AppState`](crate::AppState)
    /// has none.
    #[error("no messenger to reach the primary device")]
    NoMessenger,
    /// Syncing a collection failed after the recovery ladder (also reported as
    /// `Event::AppStateSyncError`).
    #[error("app-state sync of {collection} failed ({kind:?}): {message}")]
    AppStateSync {
        /// The collection.
        collection: wa_appstate::Collection,
        /// The kind of failure.
        kind: wa_types::AppStateFailure,
        /// The last error.
        message: String,
    },
}

impl From<wa_socket::Error> for Error {
    fn from(e: wa_socket::Error) -> Self {
        match e {
            wa_socket::Error::Iq { code, text } => Error::Refused { code, text },
            e => Error::Socket(e),
        }
    }
}
