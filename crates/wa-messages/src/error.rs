/// Everything that can go wrong while composing or opening messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A poll needs at least one option and a selectable count no larger than the option count.
    #[error("invalid poll: {0}")]
    InvalidPoll(&'static str),
    /// A contacts message needs at least one contact.
    #[error("a contacts message needs at least one contact")]
    NoContacts,
    /// The plaintext's WhatsApp padding was missing or malformed.
    #[error("bad plaintext padding")]
    BadPadding,
    /// The bytes were not a valid protobuf of the expected message.
    #[error("protobuf decode failed: {0}")]
    Decode(#[from] prost::DecodeError),
    /// An encrypted poll vote lacked its payload or iv, or the iv was not 12 bytes.
    #[error("malformed encrypted poll vote: {0}")]
    MalformedPollVote(&'static str),
    /// The poll vote did not authenticate (wrong secret, wrong ids, or tampered bytes).
    #[error("poll vote failed to authenticate")]
    PollVoteAuth,
}
