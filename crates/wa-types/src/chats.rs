use wa_binary::Jid;

/// A user's or a group's profile picture changed or was removed (`<notification
/// type="picture">`; Baileys reports it as a contacts or groups update, whatsmeow as
/// `events.Picture`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PictureUpdate {
    /// The user or group whose picture changed.
    pub jid: Jid,
    /// Who changed it, when the server says.
    pub author: Option<Jid>,
    /// When it changed (unix seconds; 0 when the notification has no time).
    pub timestamp: u64,
    /// Whether the picture was removed.
    pub removed: bool,
    /// The new picture's id, when one was set.
    pub picture_id: Option<String>,
}

impl PictureUpdate {
    /// A new picture `picture_id` for `jid`.
    pub fn set(jid: Jid, picture_id: impl Into<String>) -> Self {
        Self {
            jid,
            author: None,
            timestamp: 0,
            removed: false,
            picture_id: Some(picture_id.into()),
        }
    }

    /// `jid`'s picture was removed.
    pub fn removed(jid: Jid) -> Self {
        Self {
            jid,
            author: None,
            timestamp: 0,
            removed: true,
            picture_id: None,
        }
    }

    /// The same update, naming who made it and when.
    #[must_use]
    pub fn by(mut self, author: Option<Jid>, timestamp: u64) -> Self {
        self.author = author;
        self.timestamp = timestamp;
        self
    }
}

/// A user's about text ("status", shown in their profile) changed: `<notification
/// type="status" from t><set>text</set></notification>` (whatsmeow's `events.UserAbout`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserAbout {
    /// The user whose about text changed (without device).
    pub jid: Jid,
    /// The new text (empty when cleared).
    pub status: String,
    /// When it changed (unix seconds; 0 when the notification has no time).
    pub timestamp: u64,
}

impl UserAbout {
    /// `jid`'s about text is now `status`, since `timestamp`.
    pub fn new(jid: Jid, status: impl Into<String>, timestamp: u64) -> Self {
        Self {
            jid,
            status: status.into(),
            timestamp,
        }
    }
}

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

/// A privacy setting of the account (a `<category name>` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PrivacySetting {
    /// Who sees when we were last online (`last`).
    LastSeen,
    /// Who sees that we are online (`online`).
    Online,
    /// Who sees our profile picture (`profile`).
    ProfilePicture,
    /// Who sees our status text (`status`).
    Status,
    /// Whether we send read receipts (`readreceipts`).
    ReadReceipts,
    /// Who may add us to groups (`groupadd`).
    GroupsAdd,
    /// Who may call us (`calladd`).
    CallAdd,
    /// Who may message us (`messages`).
    Messages,
}

impl PrivacySetting {
    /// Every setting, in wire order.
    pub const ALL: [PrivacySetting; 8] = [
        Self::LastSeen,
        Self::Online,
        Self::ProfilePicture,
        Self::Status,
        Self::ReadReceipts,
        Self::GroupsAdd,
        Self::CallAdd,
        Self::Messages,
    ];

    /// The wire name (`<category name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LastSeen => "last",
            Self::Online => "online",
            Self::ProfilePicture => "profile",
            Self::Status => "status",
            Self::ReadReceipts => "readreceipts",
            Self::GroupsAdd => "groupadd",
            Self::CallAdd => "calladd",
            Self::Messages => "messages",
        }
    }

    /// Parses a wire name.
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether this setting takes `value` (as WhatsApp's clients offer them).
    pub fn accepts(self, value: PrivacyValue) -> bool {
        use PrivacyValue as V;
        match self {
            Self::LastSeen | Self::ProfilePicture | Self::Status => {
                matches!(value, V::All | V::Contacts | V::ContactBlacklist | V::None)
            }
            Self::Online => matches!(value, V::All | V::MatchLastSeen),
            Self::ReadReceipts => matches!(value, V::All | V::None),
            Self::GroupsAdd => matches!(value, V::All | V::Contacts | V::ContactBlacklist),
            Self::CallAdd => matches!(value, V::All | V::Known),
            Self::Messages => matches!(value, V::All | V::Contacts),
        }
    }
}

/// A value of a [`PrivacySetting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PrivacyValue {
    /// Everyone.
    All,
    /// Our contacts.
    Contacts,
    /// Our contacts except those excluded.
    ContactBlacklist,
    /// Nobody.
    None,
    /// The same as the last-seen setting (online only).
    MatchLastSeen,
    /// People we know (calls only).
    Known,
}

impl PrivacyValue {
    /// The wire value (`<category value>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Contacts => "contacts",
            Self::ContactBlacklist => "contact_blacklist",
            Self::None => "none",
            Self::MatchLastSeen => "match_last_seen",
            Self::Known => "known",
        }
    }

    /// Parses a wire value.
    pub fn from_wire(s: &str) -> Option<Self> {
        [
            Self::All,
            Self::Contacts,
            Self::ContactBlacklist,
            Self::None,
            Self::MatchLastSeen,
            Self::Known,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// The account's privacy settings; a setting the server did not report is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrivacySettings {
    /// `last`.
    pub last_seen: Option<PrivacyValue>,
    /// `online`.
    pub online: Option<PrivacyValue>,
    /// `profile`.
    pub profile_picture: Option<PrivacyValue>,
    /// `status`.
    pub status: Option<PrivacyValue>,
    /// `readreceipts`.
    pub read_receipts: Option<PrivacyValue>,
    /// `groupadd`.
    pub groups_add: Option<PrivacyValue>,
    /// `calladd`.
    pub call_add: Option<PrivacyValue>,
    /// `messages`.
    pub messages: Option<PrivacyValue>,
}

impl PrivacySettings {
    /// The value of one setting.
    pub fn get(&self, setting: PrivacySetting) -> Option<PrivacyValue> {
        match setting {
            PrivacySetting::LastSeen => self.last_seen,
            PrivacySetting::Online => self.online,
            PrivacySetting::ProfilePicture => self.profile_picture,
            PrivacySetting::Status => self.status,
            PrivacySetting::ReadReceipts => self.read_receipts,
            PrivacySetting::GroupsAdd => self.groups_add,
            PrivacySetting::CallAdd => self.call_add,
            PrivacySetting::Messages => self.messages,
        }
    }

    /// Sets one setting.
    pub fn set(&mut self, setting: PrivacySetting, value: PrivacyValue) {
        let slot = match setting {
            PrivacySetting::LastSeen => &mut self.last_seen,
            PrivacySetting::Online => &mut self.online,
            PrivacySetting::ProfilePicture => &mut self.profile_picture,
            PrivacySetting::Status => &mut self.status,
            PrivacySetting::ReadReceipts => &mut self.read_receipts,
            PrivacySetting::GroupsAdd => &mut self.groups_add,
            PrivacySetting::CallAdd => &mut self.call_add,
            PrivacySetting::Messages => &mut self.messages,
        };
        *slot = Some(value);
    }
}

/// The kind of a status-privacy list: who sees the account's status updates (stories).
///
/// On the wire this is the `type` of a `<list>` in the reply to `<iq xmlns="status"
/// type="get"><privacy/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusPrivacyKind {
    /// Every saved contact (`contacts`); the list is empty.
    Contacts,
    /// Every saved contact except the listed users (`blacklist`).
    Denylist,
    /// Exactly the listed users, contacts or not (`whitelist`).
    Allowlist,
}

impl StatusPrivacyKind {
    /// The wire name (`<list type>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Denylist => "blacklist",
            Self::Allowlist => "whitelist",
        }
    }

    /// Parses a wire name; `None` for a type this library does not know.
    pub fn from_wire(s: &str) -> Option<Self> {
        [Self::Contacts, Self::Denylist, Self::Allowlist]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One status-privacy list of the account. The server may keep several; the one marked
/// default is in force.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusPrivacy {
    /// What the list means.
    pub kind: StatusPrivacyKind,
    /// The listed users (empty for [`StatusPrivacyKind::Contacts`]).
    pub list: Vec<Jid>,
    /// Whether this list is the one in force.
    pub is_default: bool,
}

impl StatusPrivacy {
    /// A status-privacy list.
    pub fn new(kind: StatusPrivacyKind, list: Vec<Jid>, is_default: bool) -> Self {
        Self {
            kind,
            list,
            is_default,
        }
    }

    /// What applies when the account never chose: every contact, in force.
    pub fn default_contacts() -> Self {
        Self::new(StatusPrivacyKind::Contacts, Vec::new(), true)
    }
}

/// A LID and the phone number it stands for, as learned and stored (Baileys'
/// `lid-mapping.update`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LidMapping {
    /// The LID user (`..@lid`), without a device.
    pub lid: Jid,
    /// The phone-number user (`..@s.whatsapp.net`), without a device.
    pub pn: Jid,
}

impl LidMapping {
    /// The mapping of the LID user `lid` to the phone-number user `pn` (user parts,
    /// e.g. `"100000001"` and `"15550000001"`).
    pub fn of_users(lid: &str, pn: &str) -> Self {
        Self {
            lid: Jid::lid(lid.to_owned()),
            pn: Jid::pn(pn.to_owned()),
        }
    }
}
