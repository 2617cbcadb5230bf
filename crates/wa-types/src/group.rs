use wa_binary::Jid;

/// How a group addresses its members: by phone number or by LID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AddressingMode {
    /// Members are addressed by their phone-number JIDs.
    #[default]
    Pn,
    /// Members are addressed by their LIDs.
    Lid,
}

impl AddressingMode {
    /// The wire value of the `addressing_mode` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pn => "pn",
            Self::Lid => "lid",
        }
    }

    /// Parses the wire value (anything but `lid` is phone-number addressing).
    pub fn from_wire(s: &str) -> Self {
        if s == "lid" { Self::Lid } else { Self::Pn }
    }
}

/// A member's role in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ParticipantRole {
    /// An ordinary member.
    #[default]
    Member,
    /// An admin.
    Admin,
    /// The creator (an admin nobody can demote).
    SuperAdmin,
}

impl ParticipantRole {
    /// Whether the member may change the group's settings and members.
    pub fn is_admin(self) -> bool {
        !matches!(self, Self::Member)
    }
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupParticipant {
    /// The member, as the group addresses it (PN or LID, see [`AddressingMode`]).
    pub jid: Jid,
    /// The member's phone-number JID, when the server gave it beside a LID.
    pub phone_number: Option<Jid>,
    /// The member's LID, when the server gave it beside a phone number.
    pub lid: Option<Jid>,
    /// The member's role.
    pub role: ParticipantRole,
}

impl GroupParticipant {
    /// A member with no alternate id.
    pub fn new(jid: Jid, role: ParticipantRole) -> Self {
        Self {
            jid,
            phone_number: None,
            lid: None,
            role,
        }
    }
}

/// What the server knows about a group (the shape of Baileys' `GroupMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupMetadata {
    /// The group, `id@g.us`.
    pub id: Jid,
    /// The name.
    pub subject: String,
    /// Who set the name.
    pub subject_owner: Option<Jid>,
    /// When the name was set (unix seconds).
    pub subject_time: u64,
    /// When the group was created (unix seconds).
    pub creation: u64,
    /// Who created it.
    pub owner: Option<Jid>,
    /// The description.
    pub description: Option<String>,
    /// The description's id (needed to replace it).
    pub description_id: Option<String>,
    /// Only admins may change the group's settings.
    pub restrict: bool,
    /// Only admins may send messages.
    pub announce: bool,
    /// New members need an admin's approval.
    pub join_approval: bool,
    /// Every member (not only admins) may add members.
    pub member_add_all: bool,
    /// The disappearing-messages timer in seconds, when on.
    pub ephemeral: Option<u32>,
    /// The group is a community (a parent group).
    pub is_community: bool,
    /// The community this group belongs to.
    pub linked_parent: Option<Jid>,
    /// The group is its community's default sub-group (the announcement group created
    /// with the community; `<default_sub_group/>` in the metadata).
    pub is_default_sub_group: bool,
    /// How members are addressed.
    pub addressing_mode: AddressingMode,
    /// The number of members as the server counts them.
    pub size: usize,
    /// The members.
    pub participants: Vec<GroupParticipant>,
}

impl GroupMetadata {
    /// Empty metadata for `id` (no subject, no members, default settings).
    pub fn new(id: Jid) -> Self {
        Self {
            id,
            subject: String::new(),
            subject_owner: None,
            subject_time: 0,
            creation: 0,
            owner: None,
            description: None,
            description_id: None,
            restrict: false,
            announce: false,
            join_approval: false,
            member_add_all: false,
            ephemeral: None,
            is_community: false,
            linked_parent: None,
            is_default_sub_group: false,
            addressing_mode: AddressingMode::Pn,
            size: 0,
            participants: Vec::new(),
        }
    }

    /// Whether this is a community's announcement group: its default sub-group, where
    /// only admins may send.
    pub fn is_community_announcement(&self) -> bool {
        self.is_default_sub_group && self.announce
    }
}

/// How a group is linked to another (`link_type` / `unlink_type` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GroupLinkType {
    /// A group inside a community (`sub_group`).
    SubGroup,
    /// The community itself (`parent_group`).
    ParentGroup,
    /// Another group of the same community (`sibling_group`).
    SiblingGroup,
    /// A value this library does not know.
    Other(String),
}

impl GroupLinkType {
    /// Parses the wire value.
    pub fn from_wire(s: &str) -> Self {
        match s {
            "sub_group" => Self::SubGroup,
            "parent_group" => Self::ParentGroup,
            "sibling_group" => Self::SiblingGroup,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::SubGroup => "sub_group",
            Self::ParentGroup => "parent_group",
            Self::SiblingGroup => "sibling_group",
            Self::Other(s) => s,
        }
    }
}

/// A group as a community lists it (sub-group queries, link notifications): less than
/// the full [`GroupMetadata`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkedGroup {
    /// The group, `id@g.us`.
    pub jid: Jid,
    /// Its name (empty when not given).
    pub subject: String,
    /// When the name was set (unix seconds, 0 when not given).
    pub subject_time: u64,
    /// When the group was created (unix seconds, 0 when not given).
    pub creation: u64,
    /// Who created it, when given.
    pub owner: Option<Jid>,
    /// Its member count, when given.
    pub size: Option<usize>,
    /// It is the community's default (announcement) sub-group.
    pub is_default_sub_group: bool,
}

impl LinkedGroup {
    /// A linked group known only by its JID.
    pub fn new(jid: Jid) -> Self {
        Self {
            jid,
            subject: String::new(),
            subject_time: 0,
            creation: 0,
            owner: None,
            size: None,
            is_default_sub_group: false,
        }
    }
}

/// One change a `w:gp2` notification reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupChange {
    /// We were added to a new group (or it was created with us in it).
    Created(Box<GroupMetadata>),
    /// Members joined.
    Added(Vec<Jid>),
    /// Members left or were removed.
    Removed(Vec<Jid>),
    /// Members became admins.
    Promoted(Vec<Jid>),
    /// Admins became members.
    Demoted(Vec<Jid>),
    /// The name changed.
    Subject(String),
    /// The description changed (`None`: deleted).
    Description(Option<String>),
    /// Only admins may (`true`) or everyone may (`false`) send messages.
    Announce(bool),
    /// Only admins may (`true`) or everyone may (`false`) edit the group info.
    Locked(bool),
    /// The disappearing-messages timer (`None`: off).
    Ephemeral(Option<u32>),
    /// The invite link was reset; the new code.
    InviteReset(String),
    /// The group was deleted.
    Deleted,
    /// A group was linked to this one (a sub-group joined this community, or this group
    /// joined a community).
    Linked {
        /// How the groups are linked.
        link_type: GroupLinkType,
        /// The other group.
        group: LinkedGroup,
    },
    /// A link to another group was removed.
    Unlinked {
        /// How the groups were linked.
        link_type: GroupLinkType,
        /// The other group.
        group: LinkedGroup,
        /// Why, when given (`unlink_group`, `delete_parent`, ...).
        reason: Option<String>,
    },
    /// Who may add members changed: every member (`true`, `all_member_add`) or only
    /// admins (`false`, `admin_add`).
    MemberAddMode(bool),
    /// Joining by link now needs an admin's approval (`true`) or not (`false`).
    JoinApproval(bool),
    /// Users asked to join (`created_membership_requests`); the admins are told.
    JoinRequested {
        /// Who asked.
        participants: Vec<Jid>,
        /// How they asked (`invite_link`, ...), when given.
        method: Option<String>,
    },
    /// Join requests ended without a join (`revoked_membership_requests`): cancelled by
    /// the requester when the update's actor is the requester, else rejected by an
    /// admin.
    JoinRequestsRevoked(Vec<Jid>),
    /// A change this library does not model yet: its element name.
    Other(String),
}

/// A pending request to join a group (a user followed an invite link to a group whose
/// admins approve new members).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JoinRequest {
    /// Who asks.
    pub jid: Jid,
    /// When they asked (unix seconds, 0 when not given).
    pub requested_at: u64,
    /// How they asked (`invite_link`, ...), when given.
    pub method: Option<String>,
}

impl JoinRequest {
    /// A request by `jid` at `requested_at`, method unknown.
    pub fn new(jid: Jid, requested_at: u64) -> Self {
        Self {
            jid,
            requested_at,
            method: None,
        }
    }
}

/// A group notification: who changed what in which group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupUpdate {
    /// The group.
    pub group: Jid,
    /// The member who made the change, when given.
    pub actor: Option<Jid>,
    /// When (unix seconds).
    pub timestamp: u64,
    /// The changes, in the notification's order.
    pub changes: Vec<GroupChange>,
}

impl GroupUpdate {
    /// An update of `group` by `actor` at `timestamp`, with no changes yet.
    pub fn new(group: Jid, actor: Option<Jid>, timestamp: u64) -> Self {
        Self {
            group,
            actor,
            timestamp,
            changes: Vec::new(),
        }
    }
}
