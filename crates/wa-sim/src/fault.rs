//! Faults the tests switch on.

use std::time::Duration;

use wa_binary::Jid;

/// Which live connections a fault hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every connection (registration connections included).
    All,
    /// Every logged-in device of the account with this phone number.
    Account(String),
    /// The connection of this device (`phone:N@s.whatsapp.net`).
    Device(Jid),
}

/// The stream errors the server can send before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamErrorKind {
    /// `<stream:error code="515"/>`: restart (reconnect at once).
    Restart,
    /// `<stream:error><conflict type="replaced"/></stream:error>`: another client took
    /// over (terminal for the client).
    Replaced,
    /// `<stream:error code="401"><conflict type="device_removed"/></stream:error>`: the
    /// device was unlinked. The simulator also forgets the device.
    DeviceRemoved,
    /// `<stream:error code="503"/>`: service unavailable, try again later.
    ServiceUnavailable,
}

/// A fault to inject with [`Sim::fault`](crate::Sim::fault).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Close the TCP connection without a word (no close frame, no stream error).
    Drop(Target),
    /// Send a stream error, then close.
    StreamError(Target, StreamErrorKind),
    /// Stop (`true`) or resume (`false`) answering `w:p` pings.
    IgnorePings(bool),
    /// Answer every following login with `<failure reason="N"/>` (`Some(N)`), or
    /// accept logins again (`None`).
    RefuseLogins(Option<u16>),
    /// Delay every frame the server sends by this much (`None`: no delay).
    DelayFrames(Option<Duration>),
    /// Close this device's connection (without a word) right after the next `<message>`
    /// is delivered to it, before it can ack it; the message stays queued and comes
    /// again, with `offline="1"`, at the next login. One-shot.
    DropAfterDeliver(Jid),
    /// Send every queued stanza twice when delivering it (`true`), or once (`false`).
    DuplicateDelivery(bool),
    /// Deliver the offline queue at login newest first (`true`), or in order (`false`).
    ReorderOffline(bool),
    /// How 1:1 messages delivered to companions name their sender (sticky).
    SenderAddressing(SenderAddressing),
    /// Forward receipts from an account's own devices without their `recipient` (the
    /// chat a "sender" receipt is about), so clients must find the chat themselves
    /// (`true`), or with it (`false`, the default). Sticky.
    StripReceiptRecipient(bool),
    /// Deliver the offline queue at login without the end-of-offline marker
    /// (`<ib><offline>`), as while a long backlog is still streaming (`true`), or with it
    /// (`false`, the default). Sticky.
    WithholdOfflineMarker(bool),
}

/// How the simulated server names the sender of a 1:1 or group message delivered to a
/// companion (phones always get phone-number addressing). For group messages the names
/// go in `participant` and `participant_lid` / `participant_pn`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SenderAddressing {
    /// `from` is the sender's phone-number device, with no other address (the default).
    #[default]
    Pn,
    /// `from` is the phone-number device and `sender_lid` its LID device.
    PnWithLid,
    /// `from` is the sender's LID device and `sender_pn` its phone-number device, as for
    /// chats the server has moved to LIDs.
    Lid,
}

/// The sticky fault switches currently set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultState {
    /// Pings go unanswered.
    pub ignore_pings: bool,
    /// Logins are refused with this reason.
    pub refuse_logins: Option<u16>,
    /// Outgoing frames are delayed by this much.
    pub delay_frames: Option<Duration>,
    /// Devices whose connection is dropped after the next delivered message.
    pub drop_after_deliver: Vec<Jid>,
    /// Queued stanzas are delivered twice.
    pub duplicate_delivery: bool,
    /// The offline queue is delivered newest first.
    pub reorder_offline: bool,
    /// How 1:1 messages to companions name their sender.
    pub sender_addressing: SenderAddressing,
    /// Receipts from own devices are forwarded without `recipient`.
    pub strip_receipt_recipient: bool,
    /// The end-of-offline marker is not sent after the offline queue.
    pub withhold_offline_marker: bool,
}
