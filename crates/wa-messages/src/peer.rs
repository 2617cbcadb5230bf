//! Peer messages: protocol messages to our own primary phone alone (`category="peer"`),
//! such as on-demand history requests.

use rand_core::OsRng;
use tracing::Instrument as _;
use wa_binary::{Jid, Node, Server};
use wa_proto::e2e::peer_data_operation_request_message::HistorySyncOnDemandRequest;
use wa_proto::e2e::{
    Message, PeerDataOperationRequestMessage, PeerDataOperationRequestType, ProtocolMessage,
    protocol_message,
};
use wa_types::MessageKey;

use crate::messenger::{Inner, Messenger, unix_now};
use crate::send::{Target, encrypt_pairwise, send_and_wait};
use crate::{Error, generate_message_id};

/// Most messages one on-demand history request asks for (WhatsApp's clients ask for 50).
pub const MAX_HISTORY_REQUEST: u32 = 500;

/// The `PEER_DATA_OPERATION_REQUEST_MESSAGE` asking our phone for `count` messages of
/// `oldest`'s chat sent before `oldest` (whose server timestamp is `oldest_timestamp`,
/// unix seconds, in the field WhatsApp names `oldestMsgTimestampMs`, as its clients fill
/// it).
pub fn history_request(count: u32, oldest: &MessageKey, oldest_timestamp: u64) -> Message {
    Message {
        protocol_message: Some(Box::new(ProtocolMessage {
            r#type: Some(protocol_message::Type::PeerDataOperationRequestMessage as i32),
            peer_data_operation_request_message: Some(Box::new(PeerDataOperationRequestMessage {
                peer_data_operation_request_type: Some(
                    PeerDataOperationRequestType::HistorySyncOnDemand as i32,
                ),
                history_sync_on_demand_request: Some(HistorySyncOnDemandRequest {
                    chat_jid: Some(oldest.remote_jid.to_string()),
                    oldest_msg_id: Some(oldest.id.clone()),
                    oldest_msg_from_me: Some(oldest.from_me),
                    on_demand_msg_count: Some(i32::try_from(count).unwrap_or(i32::MAX)),
                    oldest_msg_timestamp_ms: Some(i64::try_from(oldest_timestamp).unwrap_or(0)),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Our phone's answer to a fatal app-state recovery request, when `message` is one: a
/// `PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE` of type
/// `COMPANION_SYNCD_SNAPSHOT_FATAL_RECOVERY`. Only the first result is read, as
/// whatsmeow does; an answer without one carries no snapshot.
pub(crate) fn recovery_answer(message: &Message) -> Option<wa_types::AppStateRecoveryAnswer> {
    let pm = message.protocol_message.as_deref()?;
    if pm.r#type != Some(protocol_message::Type::PeerDataOperationRequestResponseMessage as i32) {
        return None;
    }
    let resp = pm.peer_data_operation_request_response_message.as_ref()?;
    if resp.peer_data_operation_request_type
        != Some(PeerDataOperationRequestType::CompanionSyncdSnapshotFatalRecovery as i32)
    {
        return None;
    }
    let result = resp
        .peer_data_operation_result
        .first()
        .and_then(|r| r.syncd_snapshot_fatal_recovery_response.as_ref());
    Some(wa_types::AppStateRecoveryAnswer::new(
        resp.stanza_id.clone(),
        result.and_then(|r| r.collection_snapshot.clone()),
        result.and_then(|r| r.is_compressed).unwrap_or(false),
    ))
}

/// The attributes a peer message carries beyond `id`, `to`, `type` and `category`, as
/// WhatsApp's clients set them: `push_priority` (and `privacy_sensitive` for history
/// requests).
fn priority_attrs(message: &Message) -> Vec<(&'static str, &'static str)> {
    let Some(pm) = message.protocol_message.as_deref() else {
        return Vec::new();
    };
    let history = pm
        .peer_data_operation_request_message
        .as_ref()
        .and_then(|r| r.peer_data_operation_request_type)
        == Some(PeerDataOperationRequestType::HistorySyncOnDemand as i32);
    if history {
        vec![("push_priority", "high_force"), ("privacy_sensitive", "1")]
    } else if pm.r#type == Some(protocol_message::Type::AppStateSyncKeyRequest as i32) {
        vec![("push_priority", "high")]
    } else {
        Vec::new()
    }
}

impl Messenger {
    /// Asks our phone for up to `count` (at most [`MAX_HISTORY_REQUEST`]) messages of
    /// `oldest`'s chat older than `oldest`, a message this device has, whose server
    /// timestamp is `oldest_timestamp` (unix seconds), as Baileys' `fetchMessageHistory`
    /// does. The phone answers with a history-sync notification of type `ON_DEMAND`,
    /// processed and reported like every history chunk
    /// ([`Event::HistorySync`](wa_types::Event::HistorySync)). Returns the request's
    /// message id once the server accepted it.
    ///
    /// # Errors
    /// [`Error::InvalidHistoryRequest`] for a count of 0 or above
    /// [`MAX_HISTORY_REQUEST`]; as [`Messenger::send_peer_message`].
    pub async fn fetch_message_history(
        &self,
        count: u32,
        oldest: &MessageKey,
        oldest_timestamp: u64,
    ) -> Result<String, Error> {
        if count == 0 || count > MAX_HISTORY_REQUEST {
            return Err(Error::InvalidHistoryRequest(count));
        }
        self.send_peer_message(history_request(count, oldest, oldest_timestamp))
            .await
    }

    /// Asks our phone to upload again the blob of a history-sync chunk that could not be
    /// downloaded or verified (whatsmeow's `SendHistorySyncServerErrorReceipt`): a
    /// `<receipt type="server-error" category="peer">` for the notification, encrypted
    /// with the chunk's media key. The phone answers with a new notification for the same
    /// chunk, processed and reported like any other
    /// ([`Event::HistorySync`](wa_types::Event::HistorySync)).
    ///
    /// # Errors
    /// [`Error::NotAnAddOn`] for a failure without a media key (a chunk carried inline),
    /// [`Error::NotLoggedIn`], [`Error::Socket`].
    pub async fn request_history_reupload(
        &self,
        failure: &wa_types::HistorySyncFailure,
    ) -> Result<(), Error> {
        let key = failure
            .media_key
            .as_deref()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .map(zeroize::Zeroizing::new)
            .ok_or_else(|| Error::NotAnAddOn("a downloaded history chunk"))?;
        let creds = self.inner.creds().await?;
        let me = Inner::me(&creds)?;
        let receipt = wa_media::history_reupload_request(&failure.message_id, &key, &me.pn);
        self.inner.socket.send_node(&receipt).await?;
        Ok(())
    }

    /// Sends `message` (a protocol message) to our primary phone alone, as a peer message:
    /// `<message to=OWN category="peer" type="text">` with `<meta appdata="default"/>`
    /// and one `<enc>` for the phone (and our device identity when it is a `pkmsg`).
    /// Returns its id once the server acknowledged it. Peer messages are not kept for
    /// retry receipts. A commit that fails because the store failed is tried again as in
    /// [`Messenger::relay_message`].
    ///
    /// # Errors
    /// [`Error::NotLoggedIn`], [`Error::NoDevices`] when no session with the phone can be
    /// started, [`Error::Signal`], [`Error::Store`], [`Error::Socket`],
    /// [`Error::AckTimeout`], [`Error::Nack`].
    pub async fn send_peer_message(&self, message: Message) -> Result<String, Error> {
        peer_message(&self.inner, &message).await
    }
}

/// Sends `message` to our phone alone with a fresh id; returns the id once acked.
pub(crate) async fn peer_message(inner: &Inner, message: &Message) -> Result<String, Error> {
    let creds = inner.creds().await?;
    let me = Inner::me(&creds)?;
    let id = generate_message_id(unix_now(), Some(&me.pn), &mut OsRng);
    let span = tracing::debug_span!("send_peer", id);
    crate::send::with_store_retries(&span, || {
        send_peer(inner, &creds, &me, &id, message).instrument(span.clone())
    })
    .await?;
    Ok(id)
}

async fn send_peer(
    inner: &Inner,
    creds: &wa_store::AuthCreds,
    me: &crate::messenger::Me,
    id: &str,
    message: &Message,
) -> Result<(), Error> {
    let own = me.pn.to_non_ad();
    let server = if me.pn.server == Server::Hosted {
        Server::Hosted
    } else {
        Server::Pn
    };
    let phone = Jid::with_device(own.user.clone(), server, 0);
    let mut targets = [Target::new(phone, false)];
    let (nodes, pkmsg) = encrypt_pairwise(
        inner,
        creds,
        me,
        &mut targets,
        &own,
        &crate::framing::Encoded::new(message),
        None,
        wa_store::Batch::new(),
    )
    .await?;
    let Some(enc) = nodes.first().and_then(|to| to.child("enc")).cloned() else {
        return Err(Error::NoDevices(own));
    };
    let mut children = vec![
        Node::builder("meta").attr("appdata", "default").build(),
        enc,
    ];
    if pkmsg && let Some(account) = creds.account.as_ref() {
        children.push(crate::stanza::device_identity(account));
    }
    let mut stanza = Node::builder("message")
        .attr("id", id.to_owned())
        .attr("to", own)
        .attr("type", "text")
        .attr("category", "peer");
    for (k, v) in priority_attrs(message) {
        stanza = stanza.attr(k, v);
    }
    send_and_wait(inner, &stanza.children(children).build(), id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_request_names_the_oldest_message_and_the_count() {
        let oldest = MessageKey::new(Jid::pn("15550001"), true, "3EB0AA");
        let m = history_request(50, &oldest, 1_700_000_000);
        let pm = m.protocol_message.as_deref().unwrap();
        assert_eq!(
            pm.r#type,
            Some(protocol_message::Type::PeerDataOperationRequestMessage as i32)
        );
        let pdo = pm.peer_data_operation_request_message.as_ref().unwrap();
        assert_eq!(
            pdo.peer_data_operation_request_type,
            Some(PeerDataOperationRequestType::HistorySyncOnDemand as i32)
        );
        let r = pdo.history_sync_on_demand_request.as_ref().unwrap();
        assert_eq!(r.chat_jid.as_deref(), Some("15550001@s.whatsapp.net"));
        assert_eq!(r.oldest_msg_id.as_deref(), Some("3EB0AA"));
        assert_eq!(r.oldest_msg_from_me, Some(true));
        assert_eq!(r.on_demand_msg_count, Some(50));
        assert_eq!(r.oldest_msg_timestamp_ms, Some(1_700_000_000));
        assert_eq!(
            priority_attrs(&m),
            [("push_priority", "high_force"), ("privacy_sensitive", "1")]
        );
        assert!(priority_attrs(&Message::default()).is_empty());
    }
}
