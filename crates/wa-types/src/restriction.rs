//! Account restrictions the server reports: the reach-out timelock and the cap on
//! messages to new chats.

/// The account's reach-out timelock. While it is active WhatsApp refuses messages (and
/// calls) that start new chats; chats that already exist go on. Reported when the
/// server notifies a change and when it is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachoutTimelock {
    /// Whether the restriction is in force.
    pub active: bool,
    /// When it ends, in Unix seconds, when known. A notification of an active
    /// restriction without an end means one minute from its arrival, as WhatsApp Web
    /// takes it.
    pub ends_at: Option<u64>,
    /// Why: `DEFAULT` (no particular reason, also the value when none is restricted),
    /// `BIZ_QUALITY`, `WEB_COMPANION_ONLY` or one of the `BIZ_COMMERCE_VIOLATION_*`
    /// policy names.
    pub enforcement: String,
}

impl ReachoutTimelock {
    /// The enforcement type meaning "no particular reason".
    pub const DEFAULT_ENFORCEMENT: &'static str = "DEFAULT";

    /// No restriction.
    pub fn lifted() -> Self {
        Self {
            active: false,
            ends_at: None,
            enforcement: Self::DEFAULT_ENFORCEMENT.to_owned(),
        }
    }
}

/// How many messages to new chats the account may send in the current cycle, and where
/// it stands against that cap. Every field is as the server gave it (absent ones are
/// `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewChatMessageCap {
    /// Messages to new chats allowed per cycle.
    pub total_quota: Option<u64>,
    /// Of those, how many were used.
    pub used_quota: Option<u64>,
    /// The cycle's start, Unix seconds.
    pub cycle_start: Option<u64>,
    /// The cycle's end, Unix seconds.
    pub cycle_end: Option<u64>,
    /// When the server produced this, Unix seconds.
    pub server_sent: Option<u64>,
    /// `NONE`, `FIRST_WARNING`, `SECOND_WARNING` or `CAPPED`.
    pub capping_status: Option<String>,
    /// The one-time-extension status: `NOT_ELIGIBLE`, `ELIGIBLE`,
    /// `ACTIVE_IN_CURRENT_CYCLE` or `EXHAUSTED`.
    pub ote_status: Option<String>,
    /// The verified-account (Meta Verified) status: `NOT_ELIGIBLE`, `NOT_ACTIVE`,
    /// `ACTIVE` or `ACTIVE_UPGRADE_AVAILABLE`.
    pub mv_status: Option<String>,
}
