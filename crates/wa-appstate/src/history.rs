use std::io::Read;

use prost::Message as _;
use wa_proto::history_sync::history_sync::HistorySyncType;
use wa_proto::history_sync::{Conversation, HistorySync, HistorySyncMsg};
use wa_proto::web::WebMessageInfo;

use crate::Error;

/// Default cap on an inflated history blob: 256 MiB. Full-history chunks of busy
/// accounts run to tens of megabytes; anything this large is refused.
pub const DEFAULT_MAX_INFLATED_LEN: usize = 256 << 20;

/// Stub types of the messages that carry a business's verified name as their first
/// parameter (`BIZ_PRIVACY_MODE_TO_FB`, `BIZ_PRIVACY_MODE_TO_BSP`).
const BIZ_PRIVACY_STUBS: [i32; 2] = [128, 129];

/// zlib-inflates `compressed`, refusing output longer than `max_len` bytes
/// ([`Error::TooLarge`]) without ever holding more than `max_len + 1` of it.
///
/// # Errors
/// [`Error::TooLarge`] past the cap, [`Error::Inflate`] for a corrupt stream.
pub fn inflate_bounded(compressed: &[u8], max_len: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(max_len));
    let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::ZlibDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| Error::Inflate(e.to_string()))?;
    if out.len() > max_len {
        return Err(Error::TooLarge { limit: max_len });
    }
    Ok(out)
}

/// Inflates (bounded) and decodes a downloaded or inline history-sync blob.
///
/// # Errors
/// As [`inflate_bounded`], and [`Error::Proto`] when the bytes are not a `HistorySync`.
pub fn decode_history_blob(compressed: &[u8], max_len: usize) -> Result<HistorySync, Error> {
    let raw = inflate_bounded(compressed, max_len)?;
    Ok(HistorySync::decode(&raw[..])?)
}

/// A chat from a history sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryChat {
    /// The chat JID.
    pub id: String,
    /// The chat's name (group subject or contact name).
    pub name: Option<String>,
    /// Display name, when it differs.
    pub display_name: Option<String>,
    /// Username, when the chat has one.
    pub username: Option<String>,
    /// Unread message count.
    pub unread_count: Option<u32>,
    /// Marked unread by hand.
    pub marked_as_unread: bool,
    /// Archived.
    pub archived: bool,
    /// Pin timestamp (0 / absent when not pinned).
    pub pinned: Option<u32>,
    /// Mute end, Unix milliseconds.
    pub mute_end_time: Option<u64>,
    /// Read-only (e.g. a group one left).
    pub read_only: bool,
    /// Conversation timestamp, Unix seconds.
    pub conversation_timestamp: Option<u64>,
    /// Disappearing-messages timer in seconds.
    pub ephemeral_expiration: Option<u32>,
    /// Timestamp of the newest message not sent by this account, Unix seconds.
    pub last_message_recv_timestamp: Option<u64>,
    /// The chat's phone-number JID, when it is a LID chat.
    pub pn_jid: Option<String>,
    /// The chat's LID, when it is a phone-number chat.
    pub lid_jid: Option<String>,
    /// The privacy token the contact issued to us (1:1 chats), with its timestamp.
    pub tc_token: Option<(Vec<u8>, u64)>,
    /// When we last issued our privacy token to the contact, Unix seconds.
    pub tc_token_sender_timestamp: Option<u64>,
}

/// A contact learnt from a history sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryContact {
    /// The contact's JID.
    pub id: String,
    /// Name from the conversation (display name, name or username).
    pub name: Option<String>,
    /// The contact's own push name (PUSH_NAME syncs).
    pub notify: Option<String>,
    /// A business's verified name (from privacy-mode stub messages).
    pub verified_name: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// LID, when known.
    pub lid: Option<String>,
    /// Phone-number JID, when known.
    pub phone_number: Option<String>,
}

/// A message from a history sync, with the chat it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryMessage {
    /// The chat JID (the conversation's id).
    pub chat: String,
    /// The message as stored on the primary device.
    pub info: WebMessageInfo,
    /// The message's order id in the chat, when given.
    pub order_id: Option<u64>,
}

/// One LID <-> phone-number mapping.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LidPnMapping {
    /// The LID JID.
    pub lid: String,
    /// The phone-number JID.
    pub pn: String,
}

/// A member who left a group, or was removed from it, before the history was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastParticipant {
    /// The member's JID.
    pub user: String,
    /// Removed by an admin (`true`) or left (`false`).
    pub removed: bool,
    /// When, in Unix seconds, when given.
    pub left_at: Option<u64>,
}

/// The past members of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPastParticipants {
    /// The group's JID.
    pub group: String,
    /// Its past members, as the chunk lists them.
    pub participants: Vec<PastParticipant>,
}

/// A history-sync chunk as plain data for the layers above.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryData {
    /// The sync type (`None` when the number is unknown to this schema).
    pub sync_type: Option<HistorySyncType>,
    /// Position of this chunk.
    pub chunk_order: Option<u32>,
    /// Progress in percent.
    pub progress: Option<u32>,
    /// Chats (conversations without their messages).
    pub chats: Vec<HistoryChat>,
    /// Contacts: one per conversation, push names, verified business names.
    pub contacts: Vec<HistoryContact>,
    /// Every message, in chunk order.
    pub messages: Vec<HistoryMessage>,
    /// LID/PN mappings from the mapping list and from conversations.
    pub lid_pn_mappings: Vec<LidPnMapping>,
    /// Past members of groups (Baileys' `pastParticipants`).
    pub past_participants: Vec<GroupPastParticipants>,
}

fn is_lid(jid: &str) -> bool {
    jid.ends_with("@lid") || jid.ends_with("@hosted.lid")
}

fn is_pn(jid: &str) -> bool {
    jid.ends_with("@s.whatsapp.net") || jid.ends_with("@hosted")
}

fn non_empty(s: Option<&String>) -> Option<String> {
    s.filter(|s| !s.is_empty()).cloned()
}

/// The recipient of a 1:1 message sent by this account, from its first user receipt,
/// when that is a phone-number JID.
fn pn_from_receipts(messages: &[HistorySyncMsg]) -> Option<String> {
    messages.iter().find_map(|m| {
        let info = m.message.as_ref()?;
        if !info.key.as_ref()?.from_me? {
            return None;
        }
        let jid = info.user_receipt.first()?.user_jid.as_ref()?;
        is_pn(jid).then(|| jid.clone())
    })
}

/// The groups' past members a chunk lists (groups or members without a JID skipped).
fn past_participants(sync: &HistorySync) -> Vec<GroupPastParticipants> {
    use wa_proto::history_sync::past_participant::LeaveReason;
    sync.past_participants
        .iter()
        .filter_map(|g| {
            Some(GroupPastParticipants {
                group: non_empty(g.group_jid.as_ref())?,
                participants: g
                    .past_participants
                    .iter()
                    .filter_map(|p| {
                        Some(PastParticipant {
                            user: non_empty(p.user_jid.as_ref())?,
                            removed: p.leave_reason == Some(LeaveReason::Removed as i32),
                            left_at: p.leave_ts,
                        })
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Turns a decoded `HistorySync` into chats, contacts, messages, LID/PN mappings and
/// groups' past members (what Baileys' `processHistoryMessage` extracts). Conversations
/// are read for the bootstrap, recent, full and on-demand types and push names for
/// PUSH_NAME; the mapping list and past members for every type. Status messages and the
/// other lists are not extracted.
pub fn process_history(sync: HistorySync) -> HistoryData {
    let sync_type = sync
        .sync_type
        .and_then(|t| HistorySyncType::try_from(t).ok());
    let mut out = HistoryData {
        sync_type,
        chunk_order: sync.chunk_order,
        progress: sync.progress,
        chats: Vec::new(),
        contacts: Vec::new(),
        messages: Vec::new(),
        lid_pn_mappings: Vec::new(),
        past_participants: past_participants(&sync),
    };
    for m in &sync.phone_number_to_lid_mappings {
        if let (Some(lid), Some(pn)) = (non_empty(m.lid_jid.as_ref()), non_empty(m.pn_jid.as_ref()))
        {
            out.lid_pn_mappings.push(LidPnMapping { lid, pn });
        }
    }
    match sync_type {
        Some(
            HistorySyncType::InitialBootstrap
            | HistorySyncType::Recent
            | HistorySyncType::Full
            | HistorySyncType::OnDemand,
        ) => {
            for conv in sync.conversations {
                process_conversation(conv, &mut out);
            }
        }
        Some(HistorySyncType::PushName) => {
            for p in sync.pushnames {
                if let Some(id) = non_empty(p.id.as_ref()) {
                    out.contacts.push(HistoryContact {
                        id,
                        notify: p.pushname,
                        ..Default::default()
                    });
                }
            }
        }
        _ => {}
    }
    out
}

fn process_conversation(conv: Conversation, out: &mut HistoryData) {
    let Some(id) = non_empty(conv.id.as_ref()) else {
        return;
    };
    let pn_jid = non_empty(conv.pn_jid.as_ref());
    let lid_jid = non_empty(conv.lid_jid.as_ref()).or_else(|| non_empty(conv.account_lid.as_ref()));
    out.contacts.push(HistoryContact {
        id: id.clone(),
        name: non_empty(conv.display_name.as_ref())
            .or_else(|| non_empty(conv.name.as_ref()))
            .or_else(|| non_empty(conv.username.as_ref())),
        username: non_empty(conv.username.as_ref()),
        lid: lid_jid.clone(),
        phone_number: pn_jid.clone(),
        ..Default::default()
    });
    if is_lid(&id) {
        let pn = pn_jid.clone().or_else(|| pn_from_receipts(&conv.messages));
        if let Some(pn) = pn {
            out.lid_pn_mappings.push(LidPnMapping {
                lid: id.clone(),
                pn,
            });
        }
    } else if is_pn(&id)
        && let Some(lid) = non_empty(conv.lid_jid.as_ref())
    {
        out.lid_pn_mappings.push(LidPnMapping {
            lid,
            pn: id.clone(),
        });
    }

    let mut last_recv = None;
    for item in conv.messages {
        let Some(info) = item.message else { continue };
        let from_me = info.key.as_ref().and_then(|k| k.from_me).unwrap_or(false);
        if !from_me && last_recv.is_none() {
            last_recv = info.message_timestamp;
        }
        if let Some(stub) = info.message_stub_type
            && BIZ_PRIVACY_STUBS.contains(&stub)
            && let Some(verified) = non_empty(info.message_stub_parameters.first())
        {
            let key = info.key.as_ref();
            let who = key
                .and_then(|k| non_empty(k.participant.as_ref()))
                .or_else(|| key.and_then(|k| non_empty(k.remote_jid.as_ref())));
            if let Some(who) = who {
                out.contacts.push(HistoryContact {
                    id: who,
                    verified_name: Some(verified),
                    ..Default::default()
                });
            }
        }
        out.messages.push(HistoryMessage {
            chat: id.clone(),
            info: *info,
            order_id: item.msg_order_id,
        });
    }

    out.chats.push(HistoryChat {
        id,
        name: conv.name,
        display_name: conv.display_name,
        username: conv.username,
        unread_count: conv.unread_count,
        marked_as_unread: conv.marked_as_unread.unwrap_or(false),
        archived: conv.archived.unwrap_or(false),
        pinned: conv.pinned,
        mute_end_time: conv.mute_end_time,
        read_only: conv.read_only.unwrap_or(false),
        conversation_timestamp: conv.conversation_timestamp,
        ephemeral_expiration: conv.ephemeral_expiration,
        last_message_recv_timestamp: last_recv,
        pn_jid,
        lid_jid,
        tc_token: conv
            .tc_token
            .filter(|t| !t.is_empty())
            .zip(conv.tc_token_timestamp.filter(|&t| t > 0)),
        tc_token_sender_timestamp: conv.tc_token_sender_timestamp.filter(|&t| t > 0),
    });
}
