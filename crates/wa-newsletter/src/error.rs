/// Errors of channel operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed (not connected, timeout, ...).
    #[error("socket: {0}")]
    Socket(wa_socket::Error),
    /// The server refused the request at the `<iq>` level (e.g. 404 no such channel).
    #[error("server refused: {code} {text}")]
    Refused {
        /// The error code.
        code: u16,
        /// The error text.
        text: String,
    },
    /// The GraphQL (`w:mex`) answer carried an error (e.g. 403 not an admin).
    #[error("graphql error {code}: {message}")]
    GraphQl {
        /// `extensions.error_code` of the first error (400 when absent).
        code: u16,
        /// The first error's message.
        message: String,
    },
    /// The reply or notification lacks a required element, attribute or JSON field, or
    /// is not what the protocol allows.
    #[error("malformed channel stanza: {0}")]
    Malformed(&'static str),
    /// The request is invalid before it is sent (e.g. an empty name).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// Uploading a post's media failed.
    #[error("media: {0}")]
    Media(wa_media::Error),
}

impl From<wa_media::Error> for Error {
    fn from(e: wa_media::Error) -> Self {
        Error::Media(e)
    }
}

impl From<wa_socket::Error> for Error {
    fn from(e: wa_socket::Error) -> Self {
        match e {
            wa_socket::Error::Iq { code, text } => Error::Refused { code, text },
            e => Error::Socket(e),
        }
    }
}
