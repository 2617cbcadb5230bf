//! The chat-modification builders, re-exported as `crate::builders`.

use wa_proto::sync_action::{
    ArchiveChatAction, ClearChatAction, ContactAction, DeleteChatAction, DeleteMessageForMeAction,
    LabelAssociationAction, LabelEditAction, MarkChatAsReadAction, MuteAction, NctSaltSyncAction,
    PinAction, PrivacySettingDisableLinkPreviewsAction, PushNameSetting, QuickReplyAction,
    StarAction, StatusPrivacyAction, SyncActionMessageRange, SyncActionValue,
    status_privacy_action::StatusDistributionMode,
};

use crate::{Collection, Operation, OutgoingMutation};

fn set(
    collection: Collection,
    index: Vec<String>,
    version: i32,
    timestamp_ms: i64,
    fill: impl FnOnce(&mut SyncActionValue),
) -> OutgoingMutation {
    let mut value = SyncActionValue {
        timestamp: Some(timestamp_ms),
        ..Default::default()
    };
    fill(&mut value);
    OutgoingMutation {
        collection,
        operation: Operation::Set,
        index,
        value,
        version,
    }
}

fn idx<const N: usize>(parts: [&str; N]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// How long a chat is muted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MuteUntil {
    /// Not muted.
    Unmuted,
    /// Muted until this Unix time in milliseconds.
    Until(i64),
    /// Muted with no end (written as -1).
    Forever,
}

/// Mute or unmute a chat: `regular_high`, `["mute", jid]`, version 2.
pub fn mute(jid: &str, until: MuteUntil, timestamp_ms: i64) -> OutgoingMutation {
    let (muted, end) = match until {
        MuteUntil::Unmuted => (false, None),
        MuteUntil::Until(t) => (true, Some(t)),
        MuteUntil::Forever => (true, Some(-1)),
    };
    set(
        Collection::RegularHigh,
        idx(["mute", jid]),
        2,
        timestamp_ms,
        |v| {
            v.mute_action = Some(MuteAction {
                muted: Some(muted),
                mute_end_timestamp: end,
                ..Default::default()
            })
        },
    )
}

/// Pin or unpin a chat: `regular_low`, `["pin_v1", jid]`, version 5.
pub fn pin(jid: &str, pinned: bool, timestamp_ms: i64) -> OutgoingMutation {
    set(
        Collection::RegularLow,
        idx(["pin_v1", jid]),
        5,
        timestamp_ms,
        |v| {
            v.pin_action = Some(PinAction {
                pinned: Some(pinned),
                ..Default::default()
            })
        },
    )
}

/// Archive or unarchive a chat: `regular_low`, `["archive", jid]`, version 3. The
/// message range names the chat's last messages, so other devices can tell whether a
/// newer message arrived since.
pub fn archive(
    jid: &str,
    archived: bool,
    range: Option<SyncActionMessageRange>,
    timestamp_ms: i64,
) -> OutgoingMutation {
    set(
        Collection::RegularLow,
        idx(["archive", jid]),
        3,
        timestamp_ms,
        |v| {
            v.archive_chat_action = Some(ArchiveChatAction {
                archived: Some(archived),
                message_range: range,
                ..Default::default()
            })
        },
    )
}

/// Mark a chat read (`read = true`) or unread: `regular_low`, `["markChatAsRead", jid]`,
/// version 3.
pub fn mark_read(
    jid: &str,
    read: bool,
    range: Option<SyncActionMessageRange>,
    timestamp_ms: i64,
) -> OutgoingMutation {
    set(
        Collection::RegularLow,
        idx(["markChatAsRead", jid]),
        3,
        timestamp_ms,
        |v| {
            v.mark_chat_as_read_action = Some(MarkChatAsReadAction {
                read: Some(read),
                message_range: range,
                ..Default::default()
            })
        },
    )
}

/// Star or unstar a message: `regular_high`,
/// `["star", chat, message id, from me "1"/"0", participant or "0"]`, version 2.
pub fn star(
    jid: &str,
    message_id: &str,
    from_me: bool,
    participant: Option<&str>,
    starred: bool,
    timestamp_ms: i64,
) -> OutgoingMutation {
    let from_me = if from_me { "1" } else { "0" };
    set(
        Collection::RegularHigh,
        idx(["star", jid, message_id, from_me, participant.unwrap_or("0")]),
        2,
        timestamp_ms,
        |v| {
            v.star_action = Some(StarAction {
                starred: Some(starred),
                ..Default::default()
            })
        },
    )
}

/// Delete a chat: `regular_high`, `["deleteChat", jid, delete media "1"/"0"]`,
/// version 6.
pub fn delete_chat(
    jid: &str,
    delete_media: bool,
    range: Option<SyncActionMessageRange>,
    timestamp_ms: i64,
) -> OutgoingMutation {
    let media = if delete_media { "1" } else { "0" };
    set(
        Collection::RegularHigh,
        idx(["deleteChat", jid, media]),
        6,
        timestamp_ms,
        |v| {
            v.delete_chat_action = Some(DeleteChatAction {
                message_range: range,
                ..Default::default()
            })
        },
    )
}

/// Clear a chat's messages: `regular_high`, `["clearChat", jid, "1"/"0", "0"]` (the
/// third part is "0" when starred messages are kept), version 6.
pub fn clear_chat(
    jid: &str,
    keep_starred: bool,
    range: Option<SyncActionMessageRange>,
    timestamp_ms: i64,
) -> OutgoingMutation {
    let starred = if keep_starred { "0" } else { "1" };
    set(
        Collection::RegularHigh,
        idx(["clearChat", jid, starred, "0"]),
        6,
        timestamp_ms,
        |v| {
            v.clear_chat_action = Some(ClearChatAction {
                message_range: range,
                ..Default::default()
            })
        },
    )
}

/// Create, edit or delete a label: `regular`, `["label_edit", label id]`, version 3.
pub fn label_edit(
    label_id: &str,
    name: &str,
    color: i32,
    predefined_id: Option<i32>,
    deleted: bool,
    timestamp_ms: i64,
) -> OutgoingMutation {
    set(
        Collection::Regular,
        idx(["label_edit", label_id]),
        3,
        timestamp_ms,
        |v| {
            v.label_edit_action = Some(LabelEditAction {
                name: Some(name.to_owned()),
                color: Some(color),
                predefined_id,
                deleted: Some(deleted),
                ..Default::default()
            })
        },
    )
}

/// Add or remove a label on a chat: `regular`, `["label_jid", label id, jid]`, version 3.
pub fn label_chat(label_id: &str, jid: &str, labeled: bool, timestamp_ms: i64) -> OutgoingMutation {
    set(
        Collection::Regular,
        idx(["label_jid", label_id, jid]),
        3,
        timestamp_ms,
        |v| {
            v.label_association_action = Some(LabelAssociationAction {
                labeled: Some(labeled),
                ..Default::default()
            })
        },
    )
}

/// Add or remove a label on a message: `regular`,
/// `["label_message", label id, jid, message id, "0", "0"]`, version 3.
pub fn label_message(
    label_id: &str,
    jid: &str,
    message_id: &str,
    labeled: bool,
    timestamp_ms: i64,
) -> OutgoingMutation {
    set(
        Collection::Regular,
        idx(["label_message", label_id, jid, message_id, "0", "0"]),
        3,
        timestamp_ms,
        |v| {
            v.label_association_action = Some(LabelAssociationAction {
                labeled: Some(labeled),
                ..Default::default()
            })
        },
    )
}

/// Save (`Some`) or remove (`None`, a REMOVE mutation) an address-book contact:
/// `critical_unblock_low`, `["contact", jid]`, version 2.
pub fn contact(jid: &str, action: Option<ContactAction>, timestamp_ms: i64) -> OutgoingMutation {
    let remove = action.is_none();
    let mut m = set(
        Collection::CriticalUnblockLow,
        idx(["contact", jid]),
        2,
        timestamp_ms,
        |v| v.contact_action = Some(Box::new(action.unwrap_or_default())),
    );
    if remove {
        m.operation = Operation::Remove;
    }
    m
}

/// Set this account's push name: `critical_block`, `["setting_pushName"]`, version 1.
pub fn push_name(name: &str, timestamp_ms: i64) -> OutgoingMutation {
    set(
        Collection::CriticalBlock,
        idx(["setting_pushName"]),
        1,
        timestamp_ms,
        |v| {
            v.push_name_setting = Some(PushNameSetting {
                name: Some(name.to_owned()),
                ..Default::default()
            })
        },
    )
}

/// Set (`Some`) or remove (`None`, a REMOVE mutation) the account's new-chat-thread salt:
/// `regular_high`, `["nct_salt_sync"]`, version 1. The phone writes it; companions read it
/// to derive `<cstoken>`s.
pub fn nct_salt(salt: Option<&[u8]>, timestamp_ms: i64) -> OutgoingMutation {
    let remove = salt.is_none();
    let mut m = set(
        Collection::RegularHigh,
        idx(["nct_salt_sync"]),
        1,
        timestamp_ms,
        |v| {
            v.nct_salt_sync_action = Some(NctSaltSyncAction {
                salt: salt.map(<[u8]>::to_vec),
                ..Default::default()
            })
        },
    );
    if remove {
        m.operation = Operation::Remove;
    }
    m
}

/// Delete a message for this account only ("delete for me"): `regular_high`,
/// `["deleteMessageForMe", chat, message id, from me "1"/"0", participant or "0"]`,
/// version 3, with the message's own timestamp (unix seconds) when known.
pub fn delete_for_me(
    jid: &str,
    message_id: &str,
    from_me: bool,
    participant: Option<&str>,
    delete_media: bool,
    message_timestamp: Option<i64>,
    timestamp_ms: i64,
) -> OutgoingMutation {
    set(
        Collection::RegularHigh,
        idx([
            "deleteMessageForMe",
            jid,
            message_id,
            if from_me { "1" } else { "0" },
            participant.unwrap_or("0"),
        ]),
        3,
        timestamp_ms,
        |v| {
            v.delete_message_for_me_action = Some(DeleteMessageForMeAction {
                delete_media: Some(delete_media),
                message_timestamp,
                ..Default::default()
            })
        },
    )
}

/// Turn link previews off (`true`) or on for the messages this account sends:
/// `regular`, `["setting_disableLinkPreviews"]`, version 8.
pub fn disable_link_previews(disabled: bool, timestamp_ms: i64) -> OutgoingMutation {
    set(
        Collection::Regular,
        idx(["setting_disableLinkPreviews"]),
        8,
        timestamp_ms,
        |v| {
            v.privacy_setting_disable_link_previews_action =
                Some(PrivacySettingDisableLinkPreviewsAction {
                    is_previews_disabled: Some(disabled),
                    ..Default::default()
                })
        },
    )
}

/// Who sees this account's status updates: `regular_high`, `["status_privacy"]`,
/// version 7: every contact, all but `users` (`DenyList`), or only `users`
/// (`AllowList`), each a JID string.
pub fn status_privacy(
    mode: StatusDistributionMode,
    users: &[String],
    timestamp_ms: i64,
) -> OutgoingMutation {
    set(
        Collection::RegularHigh,
        idx(["status_privacy"]),
        7,
        timestamp_ms,
        |v| {
            let mut a = StatusPrivacyAction {
                user_jid: users.to_vec(),
                ..Default::default()
            };
            a.set_mode(mode);
            v.status_privacy = Some(a);
        },
    )
}

/// Create, edit or delete a business quick reply: `regular`, `["quick_reply", id]`,
/// version 2, where `id` names the reply (Baileys uses its creation time in unix
/// seconds); the same id edits or, with `deleted`, deletes it.
pub fn quick_reply(
    id: &str,
    shortcut: &str,
    message: &str,
    keywords: &[String],
    deleted: bool,
    timestamp_ms: i64,
) -> OutgoingMutation {
    set(
        Collection::Regular,
        idx(["quick_reply", id]),
        2,
        timestamp_ms,
        |v| {
            v.quick_reply_action = Some(Box::new(QuickReplyAction {
                shortcut: Some(shortcut.to_owned()),
                message: Some(message.to_owned()),
                keywords: keywords.to_vec(),
                count: Some(0),
                deleted: Some(deleted),
                ..Default::default()
            }))
        },
    )
}
