//! Voice and video calls as the socket reports them.

use wa_binary::Jid;

/// What a `<call>` stanza says happened (its child element, as Baileys names it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallStatus {
    /// Someone is calling (`<offer>` or `<offer_notice>`).
    Offer,
    /// The callee's device is about to accept (`<preaccept>`).
    PreAccept,
    /// A device of the callee accepted (`<accept>`).
    Accept,
    /// A device rejected the call (`<reject>`).
    Reject,
    /// The call ended: hung up, rejected or answered elsewhere (`<terminate>`).
    Terminate,
    /// Nobody answered (`<terminate reason="timeout">`).
    Timeout,
    /// Transport negotiation (`<transport>`).
    Transport,
    /// A relay latency report (`<relaylatency>`).
    RelayLatency,
    /// A call element this library does not model: its tag.
    Other(String),
}

/// One call stanza, decoded (Baileys' `WACallEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallEvent {
    /// The call id (`call-id`), the same in every stanza of one call.
    pub id: String,
    /// Who placed the call (`call-creator`, or the element's `from`).
    pub from: Jid,
    /// The chat the call belongs to: the stanza's `from` (the caller, or a group).
    pub chat: Jid,
    /// The caller's phone-number JID when the caller is addressed by LID.
    pub caller_pn: Option<Jid>,
    /// The group of a group call.
    pub group_jid: Option<Jid>,
    /// What happened.
    pub status: CallStatus,
    /// A video call (known from the offer; later stanzas of the call inherit it).
    pub is_video: bool,
    /// A group call.
    pub is_group: bool,
    /// Delivered from the offline queue (the call may be long over).
    pub offline: bool,
    /// When (unix seconds, 0 when not given).
    pub timestamp: u64,
    /// Why the call ended, for terminate stanzas that say.
    pub reason: Option<String>,
    /// The relay latency in milliseconds, for relay latency reports that give it.
    pub latency_ms: Option<u32>,
}

impl CallEvent {
    /// A call event with only the required fields; flags off, no optional data.
    pub fn new(id: String, from: Jid, chat: Jid, status: CallStatus) -> Self {
        Self {
            id,
            from,
            chat,
            caller_pn: None,
            group_jid: None,
            status,
            is_video: false,
            is_group: false,
            offline: false,
            timestamp: 0,
            reason: None,
            latency_ms: None,
        }
    }
}
