use wa_binary::Jid;

/// One message of a channel, as a fetch or a live update reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewsletterMessage {
    /// The server's number for the message in its channel (reactions name it).
    pub server_id: u64,
    /// The message id the sender chose, when the server reports it.
    pub id: Option<String>,
    /// The stanza type (`text`, `media`, `reaction`, ...), when reported.
    pub kind: Option<String>,
    /// Server timestamp, unix seconds (0 when absent).
    pub timestamp: u64,
    /// How many followers viewed it, when reported.
    pub views: Option<u64>,
    /// Reaction counts by emoji, when reported (empty otherwise).
    pub reactions: Vec<(String, u64)>,
    /// The decoded message; `None` for count-only updates or undecodable payloads.
    pub message: Option<Box<wa_proto::e2e::Message>>,
}

/// The viewer's standing in a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NewsletterRole {
    /// The creator.
    Owner,
    /// An admin who is not the owner.
    Admin,
    /// A follower.
    Subscriber,
    /// Neither (e.g. looked up by invite code).
    Guest,
}

impl NewsletterRole {
    /// From the GraphQL role name (`OWNER`, `ADMIN`, `SUBSCRIBER`, `GUEST`), any case.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "OWNER" => Some(Self::Owner),
            "ADMIN" => Some(Self::Admin),
            "SUBSCRIBER" => Some(Self::Subscriber),
            "GUEST" => Some(Self::Guest),
            _ => None,
        }
    }

    /// The GraphQL role name.
    pub fn as_name(self) -> &'static str {
        match self {
            Self::Owner => "OWNER",
            Self::Admin => "ADMIN",
            Self::Subscriber => "SUBSCRIBER",
            Self::Guest => "GUEST",
        }
    }
}

/// What changed in a channel, as a `newsletter` or `mex` notification reports it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum NewsletterChange {
    /// A new message was posted (or a message's counts changed, with `message: None`).
    Message(NewsletterMessage),
    /// A reaction to the message with this server id (a single reaction, or the new count).
    Reaction {
        /// The message reacted to.
        server_id: u64,
        /// The emoji (empty: a reaction was removed).
        code: String,
        /// The count, when the server reports it.
        count: Option<u64>,
    },
    /// The view count of a message.
    Views {
        /// The message.
        server_id: u64,
        /// How many viewed it.
        count: u64,
    },
    /// The name or description changed; only the fields that changed are `Some`.
    Settings {
        /// The new name.
        name: Option<String>,
        /// The new description.
        description: Option<String>,
    },
    /// A user's role changed (promote, demote, ...).
    Participant {
        /// The user.
        user: Jid,
        /// The action the server named (`promote`, `demote`, ...).
        action: String,
        /// The new role, when known.
        role: Option<NewsletterRole>,
    },
    /// This account followed the channel (on this or another device).
    Joined {
        /// The role the account now has.
        role: Option<NewsletterRole>,
    },
    /// This account unfollowed the channel.
    Left,
    /// This account muted (`true`) or unmuted the channel.
    Muted(bool),
}

/// A change to one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct NewsletterUpdate {
    /// The channel (`id@newsletter`).
    pub id: Jid,
    /// Who caused it, when the server names them.
    pub author: Option<Jid>,
    /// What changed.
    pub change: NewsletterChange,
}
