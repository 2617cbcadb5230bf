/// Everything that can go wrong while composing or opening messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A poll needs at least one option and a selectable count no larger than the option count.
    #[error("invalid poll: {0}")]
    InvalidPoll(&'static str),
    /// An event needs a name and cannot end before it starts.
    #[error("invalid event: {0}")]
    InvalidEvent(&'static str),
    /// A contacts message needs at least one contact.
    #[error("a contacts message needs at least one contact")]
    NoContacts,
    /// A placeholder-resend request named no message.
    #[error("no message keys given")]
    NoMessageKeys,
    /// The plaintext's WhatsApp padding was missing or malformed.
    #[error("bad plaintext padding")]
    BadPadding,
    /// The bytes were not a valid protobuf of the expected message.
    #[error("protobuf decode failed: {0}")]
    Decode(#[from] prost::DecodeError),
    /// An add-on encrypted with a message secret (a poll vote, an event response, ...)
    /// lacked its payload or iv, or the iv was not 12 bytes.
    #[error("malformed encrypted add-on: {0}")]
    MalformedSecretPayload(&'static str),
    /// An add-on encrypted with a message secret did not authenticate (wrong secret,
    /// wrong ids, or tampered bytes).
    #[error("encrypted add-on failed to authenticate")]
    SecretPayloadAuth,
    /// The message an add-on belongs to (a poll, an event, ...) is unknown here: no
    /// secret is stored for it (it was never received by this device, or it was pruned).
    #[error("no message secret stored for message {0}")]
    NoMessageSecret(String),
    /// The message is not the kind of add-on asked for (e.g. a poll vote was expected).
    #[error("not {0}")]
    NotAnAddOn(&'static str),
    /// The socket has no registered credentials yet (not linked, or not loaded).
    #[error("not logged in")]
    NotLoggedIn,
    /// The recipient has no device we could encrypt for.
    #[error("no devices to send to for {0}")]
    NoDevices(wa_binary::Jid),
    /// An on-demand history request must ask for 1 to
    /// [`MAX_HISTORY_REQUEST`](crate::MAX_HISTORY_REQUEST) messages.
    #[error("a history request for {0} messages")]
    InvalidHistoryRequest(u32),
    /// A history-sync chunk downloaded on request could not be processed (see
    /// [`Messenger::download_history`](crate::Messenger::download_history)).
    #[error("history sync {} failed: {}", .0.message_id, .0.detail)]
    HistorySyncFailed(Box<wa_types::HistorySyncFailure>),
    /// The history-sync notification is being processed already.
    #[error("history sync {0} is being processed already")]
    HistoryBusy(String),
    /// A status update needs at least one recipient other than ourselves.
    #[error("a status update needs at least one recipient")]
    NoStatusRecipients,
    /// A status update named more recipients than allowed.
    #[error("{count} status recipients, at most {max} allowed")]
    TooManyStatusRecipients {
        /// How many recipients were given.
        count: usize,
        /// The limit, [`crate::MAX_STATUS_RECIPIENTS`].
        max: usize,
    },
    /// A status recipient was not a user (phone-number or LID JID).
    #[error("not a user, cannot receive a status update: {0}")]
    InvalidStatusRecipient(wa_binary::Jid),
    /// Channels (newsletters) are not end-to-end encrypted chats; posts to them go
    /// through `wa-newsletter` (the `wa` facade routes them there).
    #[error("{0} is a channel: post to it with wa-newsletter")]
    ChannelRecipient(wa_binary::Jid),
    /// An inline bot invocation ([`RelayOptions::inline_bot`](crate::RelayOptions::inline_bot))
    /// named a JID that is not a bot ([`Jid::is_bot`](wa_binary::Jid::is_bot)).
    #[error("{0} is not a bot")]
    NotABot(wa_binary::Jid),
    /// An inline bot invocation carries text (`extendedTextMessage` or `conversation`)
    /// and nothing else can be wrapped for the bot.
    #[error("an inline bot invocation needs a text message")]
    InlineBotText,
    /// The server did not acknowledge the message in time.
    #[error("the server did not acknowledge the message in time")]
    AckTimeout,
    /// The server refused the message (`<ack error=..>`).
    #[error("the server refused the message with error {0}")]
    Nack(u16),
    /// A stanza or stored record lacked something required.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// A send named a message id that is empty or longer than 128 bytes, or a recipient
    /// whose user part is longer than 128 bytes; neither could key the records a send
    /// keeps. Nothing was encrypted or sent.
    #[error("invalid send: {0}")]
    InvalidSend(&'static str),
    /// The socket failed (not connected, query timeout or error).
    #[error("socket: {0}")]
    Socket(#[from] wa_socket::Error),
    /// A group metadata query failed.
    #[error("groups: {0}")]
    Groups(#[from] wa_groups::Error),
    /// A device-list query failed.
    #[error("usync: {0}")]
    Usync(#[from] wa_usync::Error),
    /// Signal encryption or decryption failed.
    #[error("signal: {0}")]
    Signal(#[from] wa_signal::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] wa_store::Error),
}

impl Error {
    /// Whether the store failed to read or write (its backend: the database or the file
    /// system), so the same work may succeed later; not a corrupt item or bad input.
    pub(crate) fn is_store_failure(&self) -> bool {
        let backend = |e: &wa_store::Error| matches!(e, wa_store::Error::Backend(_));
        match self {
            Error::Store(e) => backend(e),
            Error::Signal(wa_signal::Error::Store(e)) => {
                e.downcast_ref::<wa_store::Error>().is_some_and(backend)
            }
            _ => false,
        }
    }

    /// A store failure known only by its description (a commit shared with other
    /// messages or sends, whose error went to the first of them).
    pub(crate) fn store_failure(why: impl Into<String>) -> Self {
        Error::Store(wa_store::Error::backend(std::io::Error::other(why.into())))
    }
}
