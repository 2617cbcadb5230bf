use std::fmt;

/// An error from any layer, behind one opaque type; ask it what happened with the
/// accessors, or walk [`std::error::Error::source`] for the layer's own error.
pub struct Error {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Socket(wa_socket::Error),
    Messages(wa_messages::Error),
    Groups(wa_groups::Error),
    Media(wa_media::Error),
    Usync(wa_usync::Error),
    Store(wa_store::Error),
    Chats(wa_chats::Error),
    Calls(wa_calls::Error),
    Newsletter(wa_newsletter::Error),
    Business(wa_business::Error),
}

impl Error {
    /// The connection is not open (yet, or any more); retry once it is.
    pub fn is_not_connected(&self) -> bool {
        matches!(
            &self.kind,
            Kind::Socket(wa_socket::Error::NotConnected)
                | Kind::Messages(wa_messages::Error::Socket(wa_socket::Error::NotConnected))
                | Kind::Groups(wa_groups::Error::Socket(wa_socket::Error::NotConnected))
                | Kind::Media(wa_media::Error::Socket(wa_socket::Error::NotConnected))
        )
    }

    /// Media failed verification (MAC or hash mismatch, bad padding): the blob was altered.
    pub fn is_tampered_media(&self) -> bool {
        matches!(
            &self.kind,
            Kind::Media(
                wa_media::Error::MacMismatch
                    | wa_media::Error::EncHashMismatch
                    | wa_media::Error::HashMismatch
                    | wa_media::Error::BadPadding
                    | wa_media::Error::Truncated
            )
        )
    }

    /// The server refused a group request; its code (401 not admin, 404 no group, ...).
    pub fn server_code(&self) -> Option<u16> {
        match &self.kind {
            Kind::Groups(wa_groups::Error::Refused { code, .. }) => Some(*code),
            Kind::Socket(wa_socket::Error::Iq { code, .. }) => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.kind, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Socket(e) => write!(f, "socket: {e}"),
            Kind::Messages(e) => write!(f, "messages: {e}"),
            Kind::Groups(e) => write!(f, "groups: {e}"),
            Kind::Media(e) => write!(f, "media: {e}"),
            Kind::Usync(e) => write!(f, "usync: {e}"),
            Kind::Store(e) => write!(f, "store: {e}"),
            Kind::Chats(e) => write!(f, "chats: {e}"),
            Kind::Calls(e) => write!(f, "calls: {e}"),
            Kind::Newsletter(e) => write!(f, "newsletter: {e}"),
            Kind::Business(e) => write!(f, "business: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(match &self.kind {
            Kind::Socket(e) => e,
            Kind::Messages(e) => e,
            Kind::Groups(e) => e,
            Kind::Media(e) => e,
            Kind::Usync(e) => e,
            Kind::Store(e) => e,
            Kind::Chats(e) => e,
            Kind::Calls(e) => e,
            Kind::Newsletter(e) => e,
            Kind::Business(e) => e,
        })
    }
}

macro_rules! from_layer {
    ($($ty:ty => $variant:ident),* $(,)?) => {
        $(impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error { kind: Kind::$variant(e) }
            }
        })*
    };
}

from_layer!(
    wa_socket::Error => Socket,
    wa_messages::Error => Messages,
    wa_groups::Error => Groups,
    wa_media::Error => Media,
    wa_usync::Error => Usync,
    wa_store::Error => Store,
    wa_chats::Error => Chats,
    wa_calls::Error => Calls,
    wa_newsletter::Error => Newsletter,
    wa_business::Error => Business,
);
