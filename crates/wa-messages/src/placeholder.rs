//! Placeholder resends: asking our phone for the content of messages this device could not
//! decrypt (a `PEER_DATA_OPERATION_REQUEST_MESSAGE` of type `PLACEHOLDER_MESSAGE_RESEND`),
//! and taking its answer (a `PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE` carrying each
//! message as `WebMessageInfo` bytes), as Baileys' `requestPlaceholderResend` and
//! whatsmeow's requests to the phone do. The phone decrypted its own copy, so this heals a
//! message even when the sender cannot answer a retry receipt.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message as _;
use tracing::{debug, warn};
use wa_binary::Jid;
use wa_proto::e2e::peer_data_operation_request_message::PlaceholderMessageResendRequest;
use wa_proto::e2e::{
    Message, PeerDataOperationRequestMessage, PeerDataOperationRequestType, ProtocolMessage,
    protocol_message,
};
use wa_proto::web::WebMessageInfo;
use wa_store::ProcessedMessageStore as _;
use wa_types::MessageKey;

use crate::messenger::{Inner, Messenger, unix_now};
use crate::recv::Incoming;
use crate::{Error, key_to_proto};

/// Most messages one placeholder-resend request names, and most taken from one answer.
pub const MAX_PLACEHOLDER_KEYS: usize = 32;
/// Most requests waiting for an answer; beyond it a failed message is not asked for.
const MAX_PENDING: usize = 512;
/// Longest `WebMessageInfo` taken from an answer (bytes).
const MAX_INFO_LEN: usize = 1 << 20;

/// Messages asked of the phone, by id, with what the failed stanza said of each.
#[derive(Default)]
pub(crate) struct Pending(HashMap<String, Incoming>);

/// The `PEER_DATA_OPERATION_REQUEST_MESSAGE` asking our phone to resend `keys` (at most
/// [`MAX_PLACEHOLDER_KEYS`] are named).
pub fn placeholder_request(keys: &[MessageKey]) -> Message {
    let requests = keys
        .iter()
        .take(MAX_PLACEHOLDER_KEYS)
        .map(|k| PlaceholderMessageResendRequest {
            message_key: Some(key_to_proto(k)),
            ..Default::default()
        })
        .collect();
    Message {
        protocol_message: Some(Box::new(ProtocolMessage {
            r#type: Some(protocol_message::Type::PeerDataOperationRequestMessage as i32),
            peer_data_operation_request_message: Some(Box::new(PeerDataOperationRequestMessage {
                peer_data_operation_request_type: Some(
                    PeerDataOperationRequestType::PlaceholderMessageResend as i32,
                ),
                placeholder_message_resend_request: requests,
                ..Default::default()
            })),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The messages a placeholder-resend answer carries (at most [`MAX_PLACEHOLDER_KEYS`];
/// entries that are too long, do not decode, or lack a key id or content are skipped).
pub(crate) fn answered(message: &Message) -> Vec<WebMessageInfo> {
    let Some(pm) = message.protocol_message.as_deref() else {
        return Vec::new();
    };
    let Some(resp) = pm
        .peer_data_operation_request_response_message
        .as_ref()
        .filter(|_| {
            pm.r#type
                == Some(protocol_message::Type::PeerDataOperationRequestResponseMessage as i32)
        })
        .filter(|r| {
            r.peer_data_operation_request_type
                == Some(PeerDataOperationRequestType::PlaceholderMessageResend as i32)
        })
    else {
        return Vec::new();
    };
    resp.peer_data_operation_result
        .iter()
        .take(MAX_PLACEHOLDER_KEYS)
        .filter_map(|r| r.placeholder_message_resend_response.as_ref())
        .filter_map(|r| r.web_message_info_bytes.as_deref())
        .filter(|b| b.len() <= MAX_INFO_LEN)
        .filter_map(|b| WebMessageInfo::decode(b).ok())
        .filter(|i| i.message.is_some() && i.key.as_ref().is_some_and(|k| k.id.is_some()))
        .collect()
}

/// The id of the request a placeholder-resend answer names (`stanzaId`), when it names
/// a plausible one.
pub(crate) fn answered_request(message: &Message) -> Option<String> {
    let pm = message.protocol_message.as_deref()?;
    pm.peer_data_operation_request_response_message
        .as_ref()?
        .stanza_id
        .clone()
        .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN)
}

/// Longest request id taken from an answer.
const MAX_REQUEST_ID_LEN: usize = 128;

impl Messenger {
    /// Asks our phone to send again the content of messages this device could not
    /// decrypt (at most [`MAX_PLACEHOLDER_KEYS`]); the answers arrive as
    /// [`Event::MessagesUpsert`](wa_types::Event::MessagesUpsert), once per message.
    /// Failed messages are asked for automatically after
    /// [`MessengerConfig::placeholder_resend_delay`](crate::MessengerConfig::placeholder_resend_delay).
    /// Returns the request's message id.
    ///
    /// # Errors
    /// [`Error::NoMessageKeys`] for no keys; as [`Messenger::send_peer_message`].
    pub async fn request_placeholder_resend(&self, keys: &[MessageKey]) -> Result<String, Error> {
        if keys.is_empty() {
            return Err(Error::NoMessageKeys);
        }
        crate::peer::peer_message(&self.inner, &placeholder_request(keys)).await
    }
}

/// After a message failed to decrypt: unless it is decrypted by then (a retry receipt
/// answered), asks our phone for it once the configured delay has passed.
pub(crate) fn schedule(inner: &Arc<Inner>, info: &Incoming) {
    let Some(delay) = inner.config.placeholder_resend_delay else {
        return;
    };
    // Our phone cannot resend what it sent itself; status updates are not resent.
    if (info.from_me && info.sender.device == 0) || info.chat.is_status_broadcast() {
        return;
    }
    {
        let mut pending = inner.pending();
        if pending.0.len() >= MAX_PENDING || pending.0.contains_key(&info.id) {
            return;
        }
        pending.0.insert(info.id.clone(), info.clone());
    }
    let inner = inner.clone();
    let info = info.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let processed = inner
            .socket
            .store()
            .is_message_processed(&info.chat.to_string(), &info.id, &info.sender.to_string())
            .await
            .unwrap_or(false);
        if processed {
            inner.pending().0.remove(&info.id);
            return;
        }
        let mut key = MessageKey::new(info.chat.clone(), info.from_me, info.id.clone());
        if info.chat.is_group() {
            key = key.with_participant(info.sender.to_non_ad());
        }
        match crate::peer::peer_message(&inner, &placeholder_request(&[key])).await {
            Ok(id) => debug!("asked our phone for message {} ({id})", info.id),
            Err(e) => {
                debug!("could not ask our phone for message {}: {e}", info.id);
                inner.pending().0.remove(&info.id);
            }
        }
    });
}

/// Takes the messages our phone sent back: each one not processed yet is recorded as
/// processed and reported, with the addressing its failed stanza had when it was asked
/// for by this run, else with what its key says.
pub(crate) async fn take_answers(inner: &Inner, message: &Message) {
    let request_id = answered_request(message);
    for info in answered(message) {
        let Some(key) = info.key.as_ref() else {
            continue;
        };
        let Some(id) = key.id.clone() else { continue };
        let asked = inner.pending().0.remove(&id);
        let exact = asked.is_some();
        let incoming = match asked {
            Some(a) => a,
            None => {
                let Some(chat) = key
                    .remote_jid
                    .as_deref()
                    .and_then(|j| j.parse::<Jid>().ok())
                else {
                    continue;
                };
                let participant = key
                    .participant
                    .as_deref()
                    .and_then(|j| j.parse::<Jid>().ok());
                let sender = match (&participant, chat.is_group()) {
                    (Some(p), _) => p.clone(),
                    (None, false) => chat.clone(),
                    (None, true) => continue,
                };
                Incoming {
                    id: id.clone(),
                    chat: chat.to_non_ad(),
                    sender,
                    from_me: key.from_me.unwrap_or(false),
                    sender_alt: None,
                    push_name: info.push_name.clone(),
                    t: info.message_timestamp.unwrap_or(0),
                    offline: false,
                    bot_edit: None,
                }
            }
        };
        let (chat_s, sender_s) = (incoming.chat.to_string(), incoming.sender.to_string());
        let Some(content) = info.message else {
            continue;
        };
        let mut report = crate::recv::report_of(&incoming, Arc::new(*content));
        report.request_id.clone_from(&request_id);
        let fresh = {
            let _crypto = inner.crypto_lock().await;
            let store = inner.socket.store();
            // Without the failed stanza (an explicit request), the sending device is not
            // known: any marker of that id in the chat counts.
            let seen = if exact {
                store.is_message_processed(&chat_s, &id, &sender_s).await
            } else {
                store.is_message_processed_by_anyone(&chat_s, &id).await
            };
            match seen {
                Ok(false) => {
                    let mut batch = wa_store::Batch::new();
                    let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
                    batch.mark_message_processed(&chat_s, &id, &sender_s, now);
                    let key = crate::inbox::stage(&inner.inbox, &mut batch, &report, now);
                    match store.commit(batch).await {
                        Ok(()) => Some(key),
                        Err(e) => {
                            warn!("resent message {id} not recorded: {e}");
                            None
                        }
                    }
                }
                Ok(true) => None,
                Err(e) => {
                    warn!("resent message {id}: processed marker unreadable: {e}");
                    None
                }
            }
        };
        let Some(inbox_key) = fresh else {
            debug!("resent message {id} already processed");
            continue;
        };
        debug!("our phone resent message {id}");
        inner.report_received(report, Some(inbox_key)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_proto::e2e::PeerDataOperationRequestResponseMessage;
    use wa_proto::e2e::peer_data_operation_request_response_message::PeerDataOperationResult;
    use wa_proto::e2e::peer_data_operation_request_response_message::peer_data_operation_result::PlaceholderMessageResendResponse;

    fn answer(entries: Vec<Vec<u8>>, kind: PeerDataOperationRequestType) -> Message {
        let results = entries
            .into_iter()
            .map(|b| PeerDataOperationResult {
                placeholder_message_resend_response: Some(PlaceholderMessageResendResponse {
                    web_message_info_bytes: Some(b),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        Message {
            protocol_message: Some(Box::new(ProtocolMessage {
                r#type: Some(
                    protocol_message::Type::PeerDataOperationRequestResponseMessage as i32,
                ),
                peer_data_operation_request_response_message: Some(
                    PeerDataOperationRequestResponseMessage {
                        peer_data_operation_request_type: Some(kind as i32),
                        peer_data_operation_result: results,
                        ..Default::default()
                    },
                ),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn info(id: &str) -> Vec<u8> {
        WebMessageInfo {
            key: Some(key_to_proto(&MessageKey::new(Jid::pn("1555"), false, id))),
            message: Some(Box::new(Message {
                conversation: Some("hi".into()),
                ..Default::default()
            })),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn answers_are_bounded_and_malformed_entries_skipped() {
        let no_content = WebMessageInfo {
            key: Some(key_to_proto(&MessageKey::new(Jid::pn("1555"), false, "X"))),
            ..Default::default()
        }
        .encode_to_vec();
        let m = answer(
            vec![info("A"), vec![0xff, 0xff, 0xff], no_content, info("B")],
            PeerDataOperationRequestType::PlaceholderMessageResend,
        );
        let ids: Vec<_> = answered(&m)
            .into_iter()
            .map(|i| i.key.unwrap().id.unwrap())
            .collect();
        assert_eq!(ids, ["A", "B"]);
        let many = answer(
            (0..100).map(|i| info(&format!("M{i}"))).collect(),
            PeerDataOperationRequestType::PlaceholderMessageResend,
        );
        assert_eq!(answered(&many).len(), MAX_PLACEHOLDER_KEYS);
        let other = answer(
            vec![info("A")],
            PeerDataOperationRequestType::HistorySyncOnDemand,
        );
        assert!(answered(&other).is_empty());
        assert_eq!(answered_request(&m), None, "no request named");
        let named = |id: &str| {
            let mut m = m.clone();
            if let Some(r) = m
                .protocol_message
                .as_deref_mut()
                .and_then(|p| p.peer_data_operation_request_response_message.as_mut())
            {
                r.stanza_id = Some(id.to_owned());
            }
            answered_request(&m)
        };
        assert_eq!(named("3EB0REQ").as_deref(), Some("3EB0REQ"));
        assert_eq!(named(""), None);
        assert_eq!(named(&"x".repeat(500)), None);
        let req = placeholder_request(&vec![MessageKey::new(Jid::pn("1"), false, "Q"); 50]);
        let pdo = req
            .protocol_message
            .unwrap()
            .peer_data_operation_request_message
            .unwrap();
        assert_eq!(
            pdo.placeholder_message_resend_request.len(),
            MAX_PLACEHOLDER_KEYS
        );
    }
}
