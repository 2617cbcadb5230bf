//! Incoming receipts: status updates, and retry receipts answered by re-encrypting.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, warn};
use wa_binary::{Jid, Node};
use wa_proto::e2e::{Message, SenderKeyDistributionMessage};
use wa_proto::web::WebMessageInfo;
use wa_signal::PreKeyBundle;
use wa_store::SentMessageStore;
use wa_types::{MessageKey, MessageUpdate, ReceiptType};

use crate::Error;
use crate::messenger::{Inner, Me, OpenSends, inject_session};
use crate::send::{SENT_SCOPE, device_sent};
use crate::stanza;

/// Tries at answering one retry receipt.
const RESEND_TRIES: u32 = 4;
/// The pause after the first failed try; each later one is four times the one before.
const RESEND_PAUSE: Duration = Duration::from_millis(250);

/// Handles one `<receipt>`: reports it, answers retries, and acknowledges it.
pub(crate) async fn handle_receipt(inner: &Arc<Inner>, node: Node) {
    let kind = ReceiptType::from_attr(stanza::str_attr(&node, "type"));
    let me = inner.creds().await.ok().and_then(|c| Inner::me(&c).ok());
    let own = |j: &Jid| me.as_ref().is_some_and(|m| m.is_me_user(j));
    if let Some(mut updates) = updates_from(&node, &kind, own) {
        if let Some(me) = &me {
            own_device_chats(inner, me, &mut updates).await;
        }
        inner.emit_updates(updates, node.get_attr("offline").is_some());
    }
    if kind == ReceiptType::Retry {
        // A retry that is not answered leaves the peer without the message (it nacked
        // the stanza it could not decrypt): wait for a turn rather than drop it, up to a
        // bound on waiting retries. The receipt is acknowledged once answered: a socket
        // that ends for good before leaves it to the server, which delivers it again at
        // the next login.
        match inner.resend_queue.clone().try_acquire_owned() {
            Ok(place) => {
                let (i, n) = (inner.clone(), node);
                tokio::spawn(async move {
                    if answer_retry(&i, &n, place).await {
                        ack(&i, &n).await;
                    }
                });
                return;
            }
            Err(_) => warn!("too many retry receipts waiting; dropping one"),
        }
    }
    ack(inner, &node).await;
}

/// Acknowledges a receipt.
async fn ack(inner: &Inner, node: &Node) {
    if let Err(e) = inner
        .socket
        .send_node(&stanza::ack_for(node, "receipt", None))
        .await
    {
        debug!("could not ack a receipt: {e}");
    }
}

/// Answers a retry receipt, holding `place` among the waiting ones until a resend slot is
/// free. A store or connection that fails for a moment gets more tries: nothing else
/// would bring the message to the peer. The turn is given back while waiting. `false`
/// when the socket ended for good first (the receipt is then not acknowledged).
async fn answer_retry(inner: &Inner, node: &Node, place: OwnedSemaphorePermit) -> bool {
    let mut place = Some(place);
    let mut pause = RESEND_PAUSE;
    for attempt in 1..=RESEND_TRIES {
        let Ok(slot) = inner.resend_slots.clone().acquire_owned().await else {
            return true;
        };
        drop(place.take());
        let result = {
            let _running = inner.late_work.read().await;
            // After a stop, another messenger may run for the account: this one writes
            // no more session state.
            if inner.socket.is_stopped() {
                return false;
            }
            resend(inner, node).await
        };
        drop(slot);
        match result {
            Ok(()) => return true,
            Err(e) if attempt < RESEND_TRIES => {
                debug!("retry receipt not answered yet ({e}); again in {pause:?}");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = inner.socket.stopped() => return false,
                }
                pause *= 4;
            }
            Err(e) => warn!("cannot answer retry receipt: {e}"),
        }
    }
    true
}

/// A receipt from one of our own devices about a 1:1 message we sent names our own user
/// as the chat when the server leaves out `recipient`; the sent-message store knows the
/// real chat.
async fn own_device_chats(inner: &Inner, me: &Me, updates: &mut [MessageUpdate]) {
    let store = inner.socket.store();
    for u in updates.iter_mut() {
        if !u.key.from_me || u.key.remote_jid.is_group() || !me.is_me_user(&u.key.remote_jid) {
            continue;
        }
        if let Ok(Some(stored)) = store.get_sent_message(SENT_SCOPE, &u.key.id).await
            && let Ok(info) = WebMessageInfo::decode(stored.as_ref())
            && let Some(chat) = info
                .key
                .and_then(|k| k.remote_jid)
                .and_then(|j| j.parse::<Jid>().ok())
        {
            u.key.remote_jid = chat.to_non_ad();
        }
    }
}

/// One [`MessageUpdate`] per id the receipt names (per member and id for a grouped
/// receipt). `recipient` names the chat only on a receipt from one of our own devices
/// (`own`), as whatsmeow reads it; from anyone else the chat is the sender. In a group,
/// a `read-self` / `played-self` (one of our devices read someone's message) names in
/// `recipient` the member who sent the message, which the key then names (whatsmeow's
/// `MessageSender`).
fn updates_from(
    node: &Node,
    kind: &ReceiptType,
    own: impl Fn(&Jid) -> bool,
) -> Option<Vec<MessageUpdate>> {
    let from = stanza::jid_attr(node, "from")?;
    let participant = stanza::jid_attr(node, "participant");
    let from_me = !matches!(kind, ReceiptType::ReadSelf | ReceiptType::PlayedSelf);
    let (chat, device) = if from.is_group() || from.is_broadcast() {
        let Some(device) = participant else {
            return grouped_updates(node, &from, kind, from_me);
        };
        (from.clone(), device)
    } else {
        let chat = stanza::jid_attr(node, "recipient")
            .filter(|_| own(&from))
            .unwrap_or_else(|| from.clone());
        (chat.to_non_ad(), from.clone())
    };
    let t = node.attr_opt::<u64>("t").ok().flatten().unwrap_or(0);
    let ids = stanza::receipt_ids(node);
    if ids.is_empty() {
        return None;
    }
    let message_sender = stanza::jid_attr(node, "recipient")
        .filter(|_| !from_me && (chat.is_group() || chat.is_broadcast()))
        .map(|j| j.to_non_ad());
    Some(
        ids.into_iter()
            .map(|id| {
                let mut u = update(&chat, from_me, id, &device, kind, t);
                if let Some(s) = &message_sender {
                    u.key = u.key.with_participant(s.clone());
                }
                u
            })
            .collect(),
    )
}

/// The update for message `id` in `chat` from `device`.
fn update(
    chat: &Jid,
    from_me: bool,
    id: String,
    device: &Jid,
    kind: &ReceiptType,
    timestamp: u64,
) -> MessageUpdate {
    let mut key = MessageKey::new(chat.clone(), from_me, id);
    if chat.is_group() || chat.is_broadcast() {
        key = key.with_participant(device.to_non_ad());
    }
    MessageUpdate {
        key,
        device: device.clone(),
        receipt: kind.clone(),
        timestamp,
    }
}

/// A grouped receipt: a group's receipt without `participant`, naming its members in
/// `<participants key="message id"><user jid t/>...</participants>` children instead (one
/// per message). One update per member and message, [`stanza::MAX_RECEIPT_IDS`] at most.
fn grouped_updates(
    node: &Node,
    chat: &Jid,
    kind: &ReceiptType,
    from_me: bool,
) -> Option<Vec<MessageUpdate>> {
    let mut out = Vec::new();
    'groups: for group in node.children_by_tag("participants") {
        let Some(id) = stanza::id_attr_named(group, "key") else {
            continue;
        };
        for user in group.children_by_tag("user") {
            if out.len() >= stanza::MAX_RECEIPT_IDS {
                break 'groups;
            }
            let Some(device) = stanza::jid_attr(user, "jid") else {
                continue;
            };
            let t = user.attr_opt::<u64>("t").ok().flatten().unwrap_or(0);
            out.push(update(chat, from_me, id.to_owned(), &device, kind, t));
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Answers a retry receipt: re-encrypts the stored message for the asking device (after
/// rebuilding the session from the keys it sent, or from a fresh bundle) and sends it
/// again with the same id.
async fn resend(inner: &Inner, node: &Node) -> Result<(), Error> {
    let id = stanza::id_attr(node).ok_or_else(|| Error::Malformed("retry without id"))?;
    let from =
        stanza::jid_attr(node, "from").ok_or_else(|| Error::Malformed("retry without from"))?;
    let device = if from.is_group() || from.is_broadcast() {
        stanza::jid_attr(node, "participant").ok_or_else(|| Error::Malformed("group retry"))?
    } else {
        from.clone()
    };
    let count = stanza::retry_count(node);
    if count > inner.config.max_retries {
        return Ok(());
    }
    let store = inner.socket.store();
    let Some(stored) = store.get_sent_message(SENT_SCOPE, id).await? else {
        debug!("retry for unknown message {id}");
        return Ok(());
    };
    let info = WebMessageInfo::decode(stored.as_ref()).map_err(crate::Error::Decode)?;
    let chat: Jid = info
        .key
        .as_ref()
        .and_then(|k| k.remote_jid.as_deref())
        .and_then(|j| j.parse().ok())
        .ok_or_else(|| Error::Malformed("stored message without chat"))?;
    let mut message = info.message.map(|m| *m).unwrap_or_default();
    if let Some(check) = &inner.config.pre_retry
        && !check.allows(&device, id, count, &message)
    {
        debug!("resend of {id} to {device} declined (retry {count})");
        return Ok(());
    }
    let creds = inner.creds().await?;
    let me = Inner::me(&creds)?;
    let own = me.is_me_user(&device);
    let session = {
        let guard = inner.crypto_lock().await;
        inner.session_jid(&guard, &me, &device).await?
    };

    let bundle: Option<PreKeyBundle> = match stanza::retry_bundle_node(node, &device) {
        Some(user) => Some(PreKeyBundle::from_user_node(&user)?.1),
        None => {
            let has = inner.staged_repo(&creds).has_session(&session).await?;
            if has && count < 2 {
                None
            } else {
                inner
                    .fetch_bundles(std::slice::from_ref(&device))
                    .await?
                    .into_iter()
                    .next()
                    .map(|(_, b)| b)
            }
        }
    };
    let (enc, joined) = {
        // Commits an open group of sends first: moving a session (below) needs none open.
        let mut guard = inner.crypto_lock().await;
        // Again under this lock: a mapping learned since moved the session.
        let session = inner.session_jid(&guard, &me, &device).await?;
        // A new group of sends, which sends taking the lock after this one join.
        let open = guard.get_or_insert_with(|| OpenSends::open(inner, &creds));
        let repo = &open.repo;
        if let Some(b) = &bundle {
            inject_session(inner, repo, &session, b).await?;
        }
        // Status updates are sent like group messages: the retry carries our sender key
        // and goes to own devices unwrapped.
        let group_like = chat.is_group() || chat.is_status_broadcast();
        if let Some(patched) = inner
            .config
            .patch
            .as_ref()
            .and_then(|p| p.apply(&message, Some(&device)))
        {
            message = patched;
        }
        if group_like {
            let skdm = repo
                .sender_key_distribution_message(&chat.to_string(), &me.pn)
                .await?;
            message.sender_key_distribution_message = Some(SenderKeyDistributionMessage {
                group_id: Some(chat.to_string()),
                axolotl_sender_key_distribution_message: Some(skdm),
                ..Default::default()
            });
        }
        let plain: Message = if own && !group_like {
            device_sent(&chat, &message)
        } else {
            message.clone()
        };
        let padded = crate::encode_plaintext(&plain, &mut rand_core::OsRng);
        let enc = repo.encrypt_message(&session, &padded).await?;
        (enc, open.join(wa_store::Batch::new()))
    };
    crate::send::committed(inner, joined).await?;
    let node = stanza::resend_stanza(
        id,
        &chat,
        &device,
        own,
        &message,
        enc,
        count,
        creds.account.as_deref(),
    );
    inner.socket.send_node(&node).await?;
    debug!("resent {id} to {device} (retry {count})");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_binary::Server;

    fn group() -> Jid {
        Jid::new("120363000000000001", Server::Group)
    }

    fn user(n: &str, t: u64) -> Node {
        Node::builder("user")
            .attr("jid", Jid::pn(n.to_owned()))
            .attr("t", t.to_string())
            .build()
    }

    #[test]
    fn a_grouped_receipt_gives_one_update_per_member_and_message() {
        let node = Node::builder("receipt")
            .attr("from", group())
            .attr("type", "read")
            .attr("id", "IGNORED")
            .children([
                Node::builder("participants")
                    .attr("key", "MSG1")
                    .children([user("15550000002", 10), user("15550000003", 11)])
                    .build(),
                Node::builder("participants")
                    .attr("key", "MSG2")
                    .children([user("15550000004", 12), Node::builder("other").build()])
                    .build(),
                // No key: skipped.
                Node::builder("participants")
                    .children([user("15550000005", 13)])
                    .build(),
            ])
            .build();
        let updates = updates_from(&node, &ReceiptType::Read, |_| false).unwrap();
        let got: Vec<(String, String, u64)> = updates
            .iter()
            .map(|u| {
                assert_eq!(u.key.remote_jid, group());
                assert!(u.key.from_me);
                assert_eq!(u.receipt, ReceiptType::Read);
                assert_eq!(u.key.participant.as_ref(), Some(&u.device));
                (u.key.id.clone(), u.device.user.to_string(), u.timestamp)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("MSG1".to_owned(), "15550000002".to_owned(), 10),
                ("MSG1".to_owned(), "15550000003".to_owned(), 11),
                ("MSG2".to_owned(), "15550000004".to_owned(), 12),
            ]
        );
    }

    #[test]
    fn recipient_names_the_chat_only_on_receipts_from_our_own_devices() {
        let me = Jid::pn("15550000001");
        let peer = Jid::pn("15550000002");
        let receipt = |from: Jid| {
            Node::builder("receipt")
                .attr("from", from)
                .attr("recipient", Jid::pn("15550000009"))
                .attr("id", "MSG")
                .build()
        };
        let own = |j: &Jid| j.same_user(&me);
        let ours = receipt(Jid::with_device("15550000001", Server::Pn, 0));
        let updates = updates_from(&ours, &ReceiptType::Sender, own).unwrap();
        assert_eq!(updates[0].key.remote_jid, Jid::pn("15550000009"));
        // From someone else, a `recipient` does not move the receipt to another chat.
        let theirs = receipt(Jid::with_device("15550000002", Server::Pn, 3));
        let updates = updates_from(&theirs, &ReceiptType::Delivered, own).unwrap();
        assert_eq!(updates[0].key.remote_jid, peer);
    }

    #[test]
    fn a_grouped_receipt_is_bounded_and_an_empty_one_gives_nothing() {
        let users: Vec<Node> = (0..1000).map(|i| user(&format!("1555{i:07}"), 1)).collect();
        let node = Node::builder("receipt")
            .attr("from", group())
            .children([Node::builder("participants")
                .attr("key", "MSG")
                .children(users)
                .build()])
            .build();
        let updates = updates_from(&node, &ReceiptType::Delivered, |_| false).unwrap();
        assert_eq!(updates.len(), stanza::MAX_RECEIPT_IDS);
        let empty = Node::builder("receipt").attr("from", group()).build();
        assert!(updates_from(&empty, &ReceiptType::Delivered, |_| false).is_none());
    }

    #[test]
    fn a_receipt_with_a_participant_names_that_member() {
        let node = Node::builder("receipt")
            .attr("from", group())
            .attr(
                "participant",
                Jid::with_device("15550000002", Server::Pn, 3),
            )
            .attr("id", "MSG")
            .attr("type", "read-self")
            .build();
        let updates = updates_from(&node, &ReceiptType::ReadSelf, |_| true).unwrap();
        assert_eq!(updates.len(), 1);
        assert!(!updates[0].key.from_me);
        assert_eq!(
            updates[0]
                .key
                .participant
                .as_ref()
                .map(|j| j.user.to_string()),
            Some("15550000002".to_owned())
        );
        assert_eq!(updates[0].device.device, 3);
    }

    #[test]
    fn a_group_read_self_names_the_sender_of_the_message_read() {
        let receipt = |participant: Jid, ty: &str| {
            Node::builder("receipt")
                .attr("from", group())
                .attr("participant", participant)
                .attr("recipient", Jid::pn("15550000009"))
                .attr("id", "MSG")
                .attr("type", ty.to_owned())
                .build()
        };
        let node = receipt(Jid::with_device("15550000001", Server::Pn, 2), "read-self");
        let updates = updates_from(&node, &ReceiptType::ReadSelf, |_| true).unwrap();
        assert_eq!(updates[0].key.participant, Some(Jid::pn("15550000009")));
        assert_eq!(updates[0].device.device, 2, "the device that read it");
        // On a receipt from another member, `recipient` does not change the key.
        let node = receipt(Jid::with_device("15550000002", Server::Pn, 3), "read");
        let updates = updates_from(&node, &ReceiptType::Read, |_| false).unwrap();
        assert_eq!(updates[0].key.participant, Some(Jid::pn("15550000002")));
    }
}
