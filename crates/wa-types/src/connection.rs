use std::fmt;

/// Where a socket's connection is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Opening the websocket, running the handshake, or waiting for `<success>`.
    Connecting,
    /// Logged in: stanzas flow.
    Open,
    /// Closed; see the update's `last_disconnect` for why.
    Closed,
}

/// A change in the connection, emitted as [`crate::Event::Connection`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionUpdate {
    /// The new state.
    pub state: ConnectionState,
    /// Why the previous connection ended, when it did.
    pub last_disconnect: Option<DisconnectReason>,
    /// A QR string to show while linking a new device (each pairing ref in turn).
    pub qr: Option<String>,
    /// `true` on the first login after this device was linked.
    pub is_new_login: bool,
    /// `true` once the offline backlog has been delivered after a login.
    pub received_pending_notifications: bool,
}

impl ConnectionUpdate {
    /// An update with only the state set.
    pub fn state(state: ConnectionState) -> Self {
        Self {
            state,
            last_disconnect: None,
            qr: None,
            is_new_login: false,
            received_pending_notifications: false,
        }
    }

    /// A `Closed` update carrying the reason.
    pub fn closed(reason: DisconnectReason) -> Self {
        Self {
            last_disconnect: Some(reason),
            ..Self::state(ConnectionState::Closed)
        }
    }

    /// A `Connecting` update carrying a QR string.
    pub fn qr(qr: String) -> Self {
        Self {
            qr: Some(qr),
            ..Self::state(ConnectionState::Connecting)
        }
    }
}

/// Why a connection ended, typed from the server's `<failure reason>` and
/// `<stream:error code>` values and from local causes. The variant decides what the
/// socket does next: reconnect at once, reconnect with backoff, or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// 401: the device was logged out (or removed from the phone). Terminal; the
    /// credentials are no longer valid and are cleared.
    LoggedOut,
    /// 402: the account is temporarily banned. Terminal.
    TempBanned,
    /// 403: the account is locked (the primary device is gone). Terminal, credentials cleared.
    Locked,
    /// 405: this client version is no longer accepted. Terminal until the version changes.
    ClientOutdated,
    /// 406: the account is banned. Terminal, credentials cleared.
    Banned,
    /// 408: the connection was lost or a deadline passed (keep-alive, pairing refs ran out).
    TimedOut,
    /// 409: the user agent was refused. Terminal.
    BadUserAgent,
    /// 411: multi-device mismatch.
    MultideviceMismatch,
    /// 428: the connection was closed (locally or by the peer without a reason).
    ConnectionClosed,
    /// 440: another client logged in with these credentials. Terminal.
    Replaced,
    /// 500: the server could not use this session.
    BadSession,
    /// 503: the service is unavailable for now.
    ServiceUnavailable,
    /// 515: the server asks for a reconnect (after pairing, for instance).
    RestartRequired,
    /// The user closed the socket. Terminal.
    ClosedByUser,
    /// The user asked for a new connection (`Socket::reset_connection`); the socket
    /// reconnects at once.
    ResetByUser,
    /// Any other numeric code.
    Other(u16),
}

impl DisconnectReason {
    /// Maps a numeric code from `<failure reason>` or `<stream:error code>`.
    pub fn from_code(code: u16) -> Self {
        match code {
            401 => Self::LoggedOut,
            402 => Self::TempBanned,
            403 => Self::Locked,
            405 => Self::ClientOutdated,
            406 => Self::Banned,
            408 => Self::TimedOut,
            409 => Self::BadUserAgent,
            411 => Self::MultideviceMismatch,
            428 => Self::ConnectionClosed,
            440 => Self::Replaced,
            500 => Self::BadSession,
            503 => Self::ServiceUnavailable,
            515 => Self::RestartRequired,
            other => Self::Other(other),
        }
    }

    /// The numeric code (Baileys' `DisconnectReason` values); `ClosedByUser` and
    /// `ResetByUser` are 428.
    pub fn code(self) -> u16 {
        match self {
            Self::LoggedOut => 401,
            Self::TempBanned => 402,
            Self::Locked => 403,
            Self::ClientOutdated => 405,
            Self::Banned => 406,
            Self::TimedOut => 408,
            Self::BadUserAgent => 409,
            Self::MultideviceMismatch => 411,
            Self::ConnectionClosed | Self::ClosedByUser | Self::ResetByUser => 428,
            Self::Replaced => 440,
            Self::BadSession => 500,
            Self::ServiceUnavailable => 503,
            Self::RestartRequired => 515,
            Self::Other(c) => c,
        }
    }

    /// The socket must not reconnect after this.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::LoggedOut
                | Self::TempBanned
                | Self::Locked
                | Self::ClientOutdated
                | Self::Banned
                | Self::BadUserAgent
                | Self::Replaced
                | Self::ClosedByUser
        )
    }

    /// The stored credentials are dead and must be cleared.
    pub fn clears_credentials(self) -> bool {
        matches!(self, Self::LoggedOut | Self::Locked | Self::Banned)
    }

    /// Reconnect at once rather than after a backoff delay.
    pub fn reconnect_immediately(self) -> bool {
        matches!(self, Self::RestartRequired | Self::ResetByUser)
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::LoggedOut => "logged out",
            Self::TempBanned => "temporarily banned",
            Self::Locked => "account locked",
            Self::ClientOutdated => "client outdated",
            Self::Banned => "banned",
            Self::TimedOut => "timed out",
            Self::BadUserAgent => "bad user agent",
            Self::MultideviceMismatch => "multi-device mismatch",
            Self::ConnectionClosed => "connection closed",
            Self::Replaced => "replaced by another session",
            Self::BadSession => "bad session",
            Self::ServiceUnavailable => "service unavailable",
            Self::RestartRequired => "restart required",
            Self::ClosedByUser => "closed by user",
            Self::ResetByUser => "reset by user",
            Self::Other(_) => "other",
        };
        write!(f, "{name} ({})", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in [
            401, 402, 403, 405, 406, 408, 409, 411, 428, 440, 500, 503, 515, 599,
        ] {
            assert_eq!(DisconnectReason::from_code(code).code(), code);
        }
        assert_eq!(
            DisconnectReason::from_code(599),
            DisconnectReason::Other(599)
        );
    }

    #[test]
    fn reconnect_policy() {
        use DisconnectReason::*;
        for r in [
            LoggedOut,
            Replaced,
            Banned,
            Locked,
            ClosedByUser,
            ClientOutdated,
        ] {
            assert!(r.is_terminal(), "{r}");
            assert!(!r.reconnect_immediately());
        }
        for r in [
            RestartRequired,
            ServiceUnavailable,
            TimedOut,
            ConnectionClosed,
            BadSession,
        ] {
            assert!(!r.is_terminal(), "{r}");
        }
        assert!(RestartRequired.reconnect_immediately());
        assert!(!ServiceUnavailable.reconnect_immediately());
        assert!(LoggedOut.clears_credentials());
        assert!(!Replaced.clears_credentials());
    }
}

/// The server flags a kind of account data as changed since the client last synced it
/// (`<ib><dirty type timestamp>`): `account_sync` (profile, privacy, blocklist) or
/// `groups` (group memberships and metadata). The layer that owns the data refreshes it
/// and tells the server (`<clean>`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirtyBits {
    /// The kind of data (`account_sync`, `groups`, ...).
    pub kind: String,
    /// When the server flagged it (Unix seconds), when given.
    pub timestamp: Option<u64>,
}

impl DirtyBits {
    /// A flag of `kind` at `timestamp`.
    pub fn new(kind: impl Into<String>, timestamp: Option<u64>) -> Self {
        Self {
            kind: kind.into(),
            timestamp,
        }
    }
}
