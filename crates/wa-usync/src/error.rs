/// Errors of usync queries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed (not connected, timeout, iq error, ...).
    #[error("socket: {0}")]
    Socket(#[from] wa_socket::Error),
    /// The reply lacks a required element or attribute, or holds an invalid one.
    #[error("malformed usync reply: {0}")]
    Malformed(&'static str),
    /// The reply holds more entries than the bound allows.
    #[error("usync reply too large: {0}")]
    TooLarge(&'static str),
    /// The query names no user, or more than [`MAX_USERS`](crate::MAX_USERS).
    #[error("invalid usync query: {0}")]
    InvalidQuery(&'static str),
}
