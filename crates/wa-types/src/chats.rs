use wa_binary::Jid;

/// A contact came online or went offline (`<presence from type [last]>`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresenceUpdate {
    /// Whose presence changed (a user JID, without device).
    pub jid: Jid,
    /// Whether the user is online now.
    pub available: bool,
    /// When the user was last seen (unix seconds), if they share it.
    pub last_seen: Option<u64>,
}

impl PresenceUpdate {
    /// A presence update.
    pub fn new(jid: Jid, available: bool, last_seen: Option<u64>) -> Self {
        Self {
            jid,
            available,
            last_seen,
        }
    }
}

/// What a user is doing in a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatState {
    /// Typing text.
    Composing,
    /// Recording a voice message (`<composing media="audio"/>` on the wire).
    Recording,
    /// Stopped typing or recording.
    Paused,
}

/// Typing indicators from a chat (`<chatstate from [participant]>`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatStateUpdate {
    /// The chat: the user for one-to-one chats, the group for groups.
    pub chat: Jid,
    /// Who is typing (equals `chat` in one-to-one chats).
    pub sender: Jid,
    /// The new state.
    pub state: ChatState,
}

impl ChatStateUpdate {
    /// A chat-state update.
    pub fn new(chat: Jid, sender: Jid, state: ChatState) -> Self {
        Self {
            chat,
            sender,
            state,
        }
    }
}

/// One entry of a [`BlocklistUpdate`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlocklistChange {
    /// The user blocked or unblocked.
    pub jid: Jid,
    /// `true` when the user is now blocked, `false` when unblocked.
    pub blocked: bool,
}

impl BlocklistChange {
    /// A blocklist change.
    pub fn new(jid: Jid, blocked: bool) -> Self {
        Self { jid, blocked }
    }
}

/// The account's blocklist changed on another device (`<notification
/// type="account_sync"><blocklist>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BlocklistUpdate {
    /// The changes, in notification order.
    pub changes: Vec<BlocklistChange>,
    /// The blocklist's new digest hash, when the server sent one.
    pub dhash: Option<String>,
}

impl BlocklistUpdate {
    /// A blocklist update.
    pub fn new(changes: Vec<BlocklistChange>, dhash: Option<String>) -> Self {
        Self { changes, dhash }
    }
}
