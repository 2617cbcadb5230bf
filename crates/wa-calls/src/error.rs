/// Errors of call operations and call stanza parsing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed (not connected, timeout, ...).
    #[error("socket: {0}")]
    Socket(wa_socket::Error),
    /// The server refused the request.
    #[error("server refused: {code} {text}")]
    Refused {
        /// The error code.
        code: u16,
        /// The error text.
        text: String,
    },
    /// A call stanza or reply lacks a required element or attribute.
    #[error("malformed call stanza: {0}")]
    Malformed(&'static str),
    /// The request cannot be made (e.g. the socket has not logged in yet).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// No reply came in time.
    #[error("no reply in time")]
    Timeout,
}

impl From<wa_socket::Error> for Error {
    fn from(e: wa_socket::Error) -> Self {
        match e {
            wa_socket::Error::Iq { code, text } => Error::Refused { code, text },
            e => Error::Socket(e),
        }
    }
}
