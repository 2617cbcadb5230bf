/// Errors of the base socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A URL (websocket or proxy) could not be parsed.
    #[error("invalid url: {0}")]
    InvalidUrl(String),
    /// A network read or write failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS handshake failed.
    #[error("tls: {0}")]
    Tls(std::io::Error),
    /// The proxy refused or broke the tunnel.
    #[error("proxy: {0}")]
    Proxy(String),
    /// The websocket upgrade or a websocket frame failed.
    #[error("websocket: {0}")]
    WebSocket(String),
    /// An operation did not finish in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The Noise handshake or transport failed.
    #[error("noise: {0}")]
    Noise(#[from] wa_noise::Error),
    /// A received frame did not decode as a node, or a stanza to send holds what the
    /// wire format cannot carry ([`wa_binary::try_encode`]).
    #[error("binary: {0}")]
    Binary(#[from] wa_binary::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] wa_store::Error),
    /// Pairing failed.
    #[error("pairing: {0}")]
    Pair(#[from] crate::PairError),
    /// No connection is open (or it closed while waiting).
    #[error("not connected")]
    NotConnected,
    /// The server answered an iq with an error.
    #[error("iq error {code}: {text}")]
    Iq {
        /// The error code.
        code: u16,
        /// The error text.
        text: String,
    },
    /// A GraphQL (`w:mex`) answer carried an error.
    #[error("graphql error {code}: {message}")]
    GraphQl {
        /// `extensions.error_code` of the first error (400 when absent).
        code: u16,
        /// The first error's message (at most 256 characters).
        message: String,
    },
    /// An argument was refused before anything was sent (or input handed to a parser
    /// was malformed).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// The server's answer lacked something expected.
    #[error("unexpected response: {0}")]
    UnexpectedResponse(&'static str),
}
