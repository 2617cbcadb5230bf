use wa_binary::Jid;

use crate::MessageKey;

/// One end-to-end message, received or sent by this account, as the messaging layer
/// reports it (the shape of Baileys' `WAMessage`).
#[derive(Debug, Clone, PartialEq)]
pub struct WaMessage {
    /// Which message this is.
    pub key: MessageKey,
    /// The device that sent it (`user:device@server`); our own device for messages we sent.
    pub sender: Jid,
    /// The sender's other address when known: its LID for a phone-number sender, its phone
    /// number for a LID sender.
    pub sender_alt: Option<Jid>,
    /// The sender's push name, when the server included it.
    pub push_name: Option<String>,
    /// Server timestamp, unix seconds.
    pub timestamp: u64,
    /// The decoded message, shared: every event subscriber gets the same allocation (the
    /// protobuf struct is several kilobytes), so delivering an event to many readers
    /// copies no message. `Arc::unwrap_or_clone` or `Arc::make_mut` give an owned one.
    pub message: std::sync::Arc<wa_proto::e2e::Message>,
    /// Whether it was delivered from the server's offline queue (the backlog kept while
    /// this device was disconnected).
    pub offline: bool,
    /// For a message our phone sent again because this device could not decrypt it: the
    /// id of the placeholder-resend request it answers (as returned by
    /// `Messenger::request_placeholder_resend`; Baileys' `requestId`), when the phone
    /// named it. `None` for every other message, and for one read back from the store.
    pub request_id: Option<String>,
    /// For a bot's reply streamed in parts: which part this is and the message it edits
    /// (whatsmeow's `MsgBotInfo`); `None` for every other message, the first part
    /// included.
    pub bot_edit: Option<BotEdit>,
}

/// A later part of a bot's reply streamed in several messages (`<bot edit
/// edit_target_id>`): it replaces the content of the message `target_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotEdit {
    /// Whether more parts follow.
    pub kind: BotEditKind,
    /// The id of the reply's first message, which this part edits.
    pub target_id: String,
}

/// Which part of a streamed bot reply a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BotEditKind {
    /// A part in the middle (`edit="inner"`): more follow.
    Inner,
    /// The final part (`edit="last"`).
    Last,
}

/// New messages: received ones after they were decrypted and committed, sent ones after the
/// server accepted them.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagesUpsert {
    /// The messages, in the order they were processed.
    pub messages: Vec<WaMessage>,
}

/// What a receipt says about a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReceiptType {
    /// Delivered to the device (a receipt without `type`).
    Delivered,
    /// Read by the user.
    Read,
    /// Read on another device of our own account.
    ReadSelf,
    /// Played (voice notes, view-once media).
    Played,
    /// Played on another device of our own account.
    PlayedSelf,
    /// Delivered to another device of our own account (`type="sender"`).
    Sender,
    /// Delivered to a device that is inactive.
    Inactive,
    /// The device could not decrypt the message and asks for it again.
    Retry,
    /// A type this library does not interpret.
    Other(String),
}

impl ReceiptType {
    /// From a receipt's `type` attribute (`None` when absent).
    pub fn from_attr(kind: Option<&str>) -> Self {
        match kind {
            None | Some("") | Some("delivery") => Self::Delivered,
            Some("read") => Self::Read,
            Some("read-self") => Self::ReadSelf,
            Some("played") => Self::Played,
            Some("played-self") => Self::PlayedSelf,
            Some("sender") => Self::Sender,
            Some("inactive") => Self::Inactive,
            Some("retry") => Self::Retry,
            Some(other) => Self::Other(other.to_owned()),
        }
    }

    /// The `type` attribute for this receipt (`None` for a plain delivery receipt).
    pub fn as_attr(&self) -> Option<&str> {
        match self {
            Self::Delivered => None,
            Self::Read => Some("read"),
            Self::ReadSelf => Some("read-self"),
            Self::Played => Some("played"),
            Self::PlayedSelf => Some("played-self"),
            Self::Sender => Some("sender"),
            Self::Inactive => Some("inactive"),
            Self::Retry => Some("retry"),
            Self::Other(s) => Some(s),
        }
    }
}

/// A receipt for one message from one device.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageUpdate {
    /// The message the receipt is about.
    pub key: MessageKey,
    /// The device that sent the receipt.
    pub device: Jid,
    /// What happened.
    pub receipt: ReceiptType,
    /// Server timestamp, unix seconds (0 when absent).
    pub timestamp: u64,
}

/// A contact's identity key changed (they reinstalled WhatsApp or moved to a new phone):
/// announced by the server with `<notification type="encrypt"><identity/>` (our sessions
/// with that user were then dropped, so the next message starts new ones), or noticed
/// when a message or key bundle came with a new identity (`implicit`), which was accepted
/// unless the messenger is set not to trust changed identities (`trusted` is then
/// `false`: nothing from or to that device goes through until the application trusts the
/// new identity). whatsmeow's `events.IdentityChange`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentityChange {
    /// The user, without a device.
    pub jid: Jid,
    /// When the server noticed it (unix seconds; 0 when the notification has no time).
    pub timestamp: u64,
    /// Whether the notification came from the offline backlog.
    pub offline: bool,
    /// Noticed from a message or key bundle rather than announced; `jid` then names the
    /// device whose identity was replaced.
    pub implicit: bool,
    /// Whether the new identity was accepted (always, unless it was implicit and the
    /// messenger does not trust changed identities).
    pub trusted: bool,
}

impl IdentityChange {
    /// A change of `jid`'s identity the server reported at `timestamp`.
    pub fn new(jid: Jid, timestamp: u64, offline: bool) -> Self {
        Self {
            jid,
            timestamp,
            offline,
            implicit: false,
            trusted: true,
        }
    }

    /// A new identity of the device `jid`, accepted from a message or key bundle at
    /// `timestamp`.
    pub fn implicit(jid: Jid, timestamp: u64) -> Self {
        Self {
            jid,
            timestamp,
            offline: false,
            implicit: true,
            trusted: true,
        }
    }

    /// A new identity of the device `jid`, seen in a message or key bundle at `timestamp`
    /// and refused (the messenger does not trust changed identities).
    pub fn untrusted(jid: Jid, timestamp: u64) -> Self {
        Self {
            trusted: false,
            ..Self::implicit(jid, timestamp)
        }
    }
}

/// A message this device received but could not decrypt (whatsmeow's
/// `events.UndecryptableMessage`; Baileys stores a `CIPHERTEXT` stub): reported once, when
/// the first attempt fails, so an app can show that a message is on its way. A retry
/// receipt has asked the sender to send it again; when that (or our phone) delivers it,
/// it arrives as an ordinary `MessagesUpsert` with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UndecryptableMessage {
    /// The message's key.
    pub key: MessageKey,
    /// The sending device.
    pub sender: Jid,
    /// The sender's other address (LID or phone number), when known.
    pub sender_alt: Option<Jid>,
    /// The sender's push name, when the stanza carried one.
    pub push_name: Option<String>,
    /// Server timestamp (unix seconds).
    pub timestamp: u64,
    /// Whether it came from the offline backlog.
    pub offline: bool,
}

impl UndecryptableMessage {
    /// The message `key` from the device `sender`, received at `timestamp`.
    pub fn new(key: MessageKey, sender: Jid, timestamp: u64) -> Self {
        Self {
            key,
            sender,
            sender_alt: None,
            push_name: None,
            timestamp,
            offline: false,
        }
    }
}

/// What a decrypted add-on says ([`AddOnUpdate::kind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddOnKind {
    /// A vote on a poll: the SHA-256 of each selected option's name (none withdraws the
    /// voter's earlier vote).
    PollVote {
        /// The selected options' hashes.
        selected_options: Vec<Vec<u8>>,
    },
    /// A response to an event.
    EventResponse {
        /// Going, not going or maybe.
        response: wa_proto::e2e::event_response_message::EventResponseType,
        /// How many others come along.
        extra_guests: Option<u32>,
    },
    /// A reaction (Baileys' `messages.reaction`), plain or encrypted: the emoji, empty
    /// when the sender took its reaction back.
    Reaction {
        /// The emoji.
        text: String,
    },
}

/// What happened to a message after it was sent.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageChangeKind {
    /// It was edited; the new content.
    Edited(std::sync::Arc<wa_proto::e2e::Message>),
    /// It was deleted for everyone (by its sender, or in a group by an admin).
    Revoked,
    /// It carried a personal group invite that this account has now used to join; the
    /// invite as it stands now, used up (no code, expiration 0), as Baileys marks it.
    InviteUsed(std::sync::Arc<wa_proto::e2e::Message>),
}

/// A message changed after it was sent: edited, deleted for everyone, or its group invite
/// used (Baileys reports these as `messages.update` with the new content or a revoke).
/// When a protocol message carried the change, that is reported as well, just before.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageChange {
    /// The message that changed, as its own key names it on this device.
    pub key: MessageKey,
    /// The device that changed it (for a used invite, ours).
    pub by: Jid,
    /// What happened.
    pub kind: MessageChangeKind,
    /// When, Unix seconds (the edit's own time when it gives one, else the protocol
    /// message's; for a used invite, when it was accepted).
    pub timestamp: u64,
}

/// A vote on a poll, a response to an event or a reaction to a message, received (and
/// when encrypted, decrypted with the stored secret of the message it belongs to;
/// Baileys reports these as `messages.update` with `pollUpdates` / `eventResponses`, and
/// as `messages.reaction`). The message that carried it is reported as well, just
/// before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOnUpdate {
    /// The poll, event or message reacted to, as this device knows its key (`from_me`
    /// when we sent it).
    pub target: MessageKey,
    /// The message that carried the vote, response or reaction.
    pub key: MessageKey,
    /// Who voted, responded or reacted (no device part).
    pub sender: Jid,
    /// When the sender made it, in milliseconds since the Unix epoch (0 when not said).
    pub sender_timestamp_ms: i64,
    /// What it says.
    pub kind: AddOnKind,
}

/// A contact's push name (the name they gave themselves) as a message from them carried
/// it, when it differs from the last one this messenger saw for them (Baileys'
/// `contacts.update` with `notify`). The message itself is reported as well, just before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushNameUpdate {
    /// The contact (no device part), as the message named its sender.
    pub jid: Jid,
    /// The contact's other address (LID or phone number) when the message gave it.
    pub jid_alt: Option<Jid>,
    /// The name.
    pub push_name: String,
}

/// A member's label in a group changed (a `GROUP_MEMBER_LABEL_CHANGE` message; Baileys'
/// `group.member-tag.update`). The message itself is reported as well, just before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberLabelUpdate {
    /// The group.
    pub group: Jid,
    /// The member (no device part).
    pub participant: Jid,
    /// The member's other address (LID or phone number) when known.
    pub participant_alt: Option<Jid>,
    /// The new label; empty when it was removed.
    pub label: String,
    /// When it was set, in seconds since the Unix epoch.
    pub timestamp: i64,
}
