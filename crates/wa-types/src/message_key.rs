use wa_binary::Jid;

/// Identifies one message: the chat it is in, whether we sent it, its id, and in groups and
/// broadcasts the member who sent it (the shape of `wa.common.MessageKey`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageKey {
    /// The chat (user, group or broadcast) the message belongs to.
    pub remote_jid: Jid,
    /// Whether this account sent the message.
    pub from_me: bool,
    /// The message id, e.g. `3EB0` followed by 18 uppercase hex digits for web clients.
    pub id: String,
    /// The sender inside a group or broadcast chat; `None` in one-to-one chats.
    pub participant: Option<Jid>,
}

impl MessageKey {
    /// A key for a message in `remote_jid` with the given id and no participant.
    pub fn new(remote_jid: Jid, from_me: bool, id: impl Into<String>) -> Self {
        Self {
            remote_jid,
            from_me,
            id: id.into(),
            participant: None,
        }
    }

    /// The same key with `participant` set (a group member's message).
    #[must_use]
    pub fn with_participant(mut self, participant: Jid) -> Self {
        self.participant = Some(participant);
        self
    }
}
