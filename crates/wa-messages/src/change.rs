//! Edits and deletes for everyone, reported on the message they change (Baileys'
//! `messages.update` for `MESSAGE_EDIT` and `REVOKE` protocol messages).

use std::sync::Arc;

use wa_binary::Jid;
use wa_proto::e2e::{Message, ProtocolMessage, protocol_message};
use wa_types::{MessageChange, MessageChangeKind, MessageKey, WaMessage};

use crate::messenger::Inner;

/// Most wrappers (ephemeral, edited) looked through for the protocol message.
const MAX_WRAPPERS: usize = 3;

/// Longest message id taken from a protocol message's key.
const MAX_ID: usize = 128;

/// The protocol message `m` carries, under at most [`MAX_WRAPPERS`] ephemeral or edited
/// wrappers.
fn protocol_of(m: &Message) -> Option<&ProtocolMessage> {
    let mut m = m;
    for _ in 0..=MAX_WRAPPERS {
        if let Some(p) = m.protocol_message.as_deref() {
            return Some(p);
        }
        m = m
            .ephemeral_message
            .as_deref()
            .or(m.edited_message.as_deref())?
            .message
            .as_deref()?;
    }
    None
}

/// The change `report` makes to an earlier message, when it is an edit or a delete for
/// everyone naming that message's id.
pub(crate) async fn message_change(inner: &Inner, report: &WaMessage) -> Option<MessageChange> {
    let pm = protocol_of(&report.message)?;
    let kind = match pm.r#type() {
        protocol_message::Type::MessageEdit => {
            MessageChangeKind::Edited(Arc::new(pm.edited_message.as_deref()?.clone()))
        }
        protocol_message::Type::Revoke => MessageChangeKind::Revoked,
        _ => return None,
    };
    let target = pm.key.as_ref()?;
    let id = target
        .id
        .clone()
        .filter(|i| !i.is_empty() && i.len() <= MAX_ID)?;
    let chat = report.key.remote_jid.clone();
    // The sender changes its own message, so the key is as for the protocol message...
    let mut key = MessageKey::new(chat.clone(), report.key.from_me, id);
    if chat.is_group() || chat.is_broadcast() {
        let sender = report.sender.to_non_ad();
        let is_sender = |j: &Jid| {
            j.same_user(&sender) || report.sender_alt.as_ref().is_some_and(|a| j.same_user(a))
        };
        // ...unless a group admin deletes another member's message, which its key names.
        let other = target
            .participant
            .as_deref()
            .and_then(|p| p.parse::<Jid>().ok())
            .map(|j| j.to_non_ad())
            .filter(|j| !is_sender(j));
        key = match other {
            Some(member) => {
                let mine = match inner.creds().await {
                    Ok(c) => Inner::me(&c).is_ok_and(|me| me.is_me_user(&member)),
                    Err(_) => false,
                };
                MessageKey::new(chat, mine, key.id).with_participant(member)
            }
            None => key.with_participant(sender),
        };
    }
    let timestamp = pm
        .timestamp_ms
        .and_then(|ms| u64::try_from(ms / 1000).ok())
        .filter(|&t| t > 0)
        .unwrap_or(report.timestamp);
    Some(MessageChange {
        key,
        by: report.sender.clone(),
        kind,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_proto::e2e::FutureProofMessage;

    #[test]
    fn the_protocol_message_is_found_under_a_few_wrappers_only() {
        let pm = Message {
            protocol_message: Some(Box::new(ProtocolMessage {
                r#type: Some(protocol_message::Type::Revoke as i32),
                ..Default::default()
            })),
            ..Default::default()
        };
        let wrap = |m: Message| Message {
            edited_message: Some(Box::new(FutureProofMessage {
                message: Some(Box::new(m)),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert!(protocol_of(&pm).is_some());
        assert!(protocol_of(&wrap(pm.clone())).is_some());
        let mut deep = pm;
        for _ in 0..=MAX_WRAPPERS {
            deep = wrap(deep);
        }
        assert!(protocol_of(&deep).is_none());
        assert!(protocol_of(&Message::default()).is_none());
    }
}
