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
}
