/// Errors of group operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed (not connected, timeout, ...).
    #[error("socket: {0}")]
    Socket(wa_socket::Error),
    /// The server refused the request (e.g. 401 not an admin, 404 no such group).
    #[error("server refused: {code} {text}")]
    Refused {
        /// The error code.
        code: u16,
        /// The error text.
        text: String,
    },
    /// The reply or notification lacks a required element or attribute.
    #[error("malformed group stanza: {0}")]
    Malformed(&'static str),
    /// The request is invalid before it is sent (e.g. an empty subject).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The invite link leads to a group whose admins approve new members: we are not in
    /// it yet, a join request waits for them (see `Groups::join_by_invite`).
    #[error("join request pending for {group}")]
    JoinRequestPending {
        /// The group asked to join.
        group: wa_binary::Jid,
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
