//! Building and reading the `<message>`, `<receipt>` and `<ack>` stanzas, sans IO.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use wa_binary::{Content, Jid, Node};
use wa_proto::e2e::Message;
use wa_proto::e2e::protocol_message::Type as ProtocolType;
use wa_signal::CiphertextType;

/// Most `<enc>` children a message stanza may carry before the rest are ignored.
pub(crate) const MAX_ENC_NODES: usize = 4;
/// Most ids one receipt (`id` plus `<list><item>`) is read for.
pub(crate) const MAX_RECEIPT_IDS: usize = 256;
/// Longest message id accepted from the network.
pub(crate) const MAX_ID_LEN: usize = 128;

/// The stanza `type` for a message, as Baileys and whatsmeow set it: `reaction`, `poll`,
/// `event`, `media` (anything [`media_type`] names) or `text`.
pub(crate) fn message_type(message: &Message) -> &'static str {
    let m = unwrap_future_proof(message);
    if m.reaction_message.is_some() || m.enc_reaction_message.is_some() {
        "reaction"
    } else if m.poll_creation_message.is_some()
        || m.poll_creation_message_v2.is_some()
        || m.poll_creation_message_v3.is_some()
        || m.poll_update_message.is_some()
    {
        "poll"
    } else if m.event_message.is_some() {
        "event"
    } else if media_type(m).is_some() {
        "media"
    } else {
        "text"
    }
}

/// The `<enc mediatype>` of a message (Baileys' `getMediaType`), for media and the other
/// kinds the server counts with them.
pub(crate) fn media_type(message: &Message) -> Option<&'static str> {
    let m = unwrap_future_proof(message);
    Some(if m.image_message.is_some() {
        "image"
    } else if let Some(v) = m.video_message.as_deref() {
        if v.gif_playback == Some(true) {
            "gif"
        } else {
            "video"
        }
    } else if let Some(a) = m.audio_message.as_deref() {
        if a.ptt == Some(true) { "ptt" } else { "audio" }
    } else if m.contact_message.is_some() {
        "vcard"
    } else if m.document_message.is_some() {
        "document"
    } else if m.contacts_array_message.is_some() {
        "contact_array"
    } else if m.live_location_message.is_some() {
        "livelocation"
    } else if m.sticker_message.is_some() {
        "sticker"
    } else if m.list_message.is_some() {
        "list"
    } else if m.list_response_message.is_some() {
        "list_response"
    } else if m.buttons_response_message.is_some() {
        "buttons_response"
    } else if m.order_message.is_some() {
        "order"
    } else if m.product_message.is_some() {
        "product"
    } else if m.interactive_response_message.is_some() {
        "native_flow_response"
    } else if m.group_invite_message.is_some() {
        "url"
    } else {
        return None;
    })
}

/// The stanza `edit` attribute, as Baileys and whatsmeow set it: `1` for an edit, `2` for
/// a pin or unpin, `7` for deleting one's own message, `8` for a group admin deleting
/// another member's message.
pub(crate) fn edit_attr(message: &Message) -> Option<&'static str> {
    if message.pin_in_chat_message.is_some() {
        return Some("2");
    }
    let p = message.protocol_message.as_deref()?;
    match p.r#type() {
        ProtocolType::MessageEdit => Some("1"),
        ProtocolType::Revoke => {
            let key = p.key.as_ref();
            let in_group = key
                .and_then(|k| k.remote_jid.as_deref())
                .and_then(|j| j.parse::<Jid>().ok())
                .is_some_and(|j| j.is_group());
            let others = key.and_then(|k| k.from_me) != Some(true);
            Some(if in_group && others { "8" } else { "7" })
        }
        _ => None,
    }
}

/// The `<meta>` child Baileys adds to a first send of a poll (`polltype="creation"`), an
/// event (`event_type="creation"`) or a member-label change (`tag_reason="user_update"
/// appdata="member_tag"`).
pub(crate) fn meta_node(message: &Message) -> Option<Node> {
    let label_change = message
        .protocol_message
        .as_deref()
        .is_some_and(|p| p.r#type() == ProtocolType::GroupMemberLabelChange);
    if label_change {
        Some(
            Node::builder("meta")
                .attr("tag_reason", "user_update")
                .attr("appdata", "member_tag")
                .build(),
        )
    } else if message.poll_creation_message.is_some()
        || message.poll_creation_message_v2.is_some()
        || message.poll_creation_message_v3.is_some()
    {
        Some(Node::builder("meta").attr("polltype", "creation").build())
    } else if message.event_message.is_some() {
        Some(Node::builder("meta").attr("event_type", "creation").build())
    } else {
        None
    }
}

fn unwrap_future_proof(message: &Message) -> &Message {
    let wrapped = message
        .ephemeral_message
        .as_deref()
        .or(message.view_once_message.as_deref())
        .or(message.view_once_message_v2.as_deref())
        .and_then(|f| f.message.as_deref());
    wrapped.unwrap_or(message)
}

/// `<enc v="2" type=..>ciphertext</enc>`, with `count` on retry resends.
/// `message` names the plaintext, for the attributes Baileys gives the node: the
/// `mediatype` of a media message, and `decrypt-fail="hide"` for reactions and pins (a
/// device that cannot decrypt them shows nothing).
pub(crate) fn enc_node_for(
    kind: CiphertextType,
    ciphertext: Vec<u8>,
    count: Option<u32>,
    message: Option<&Message>,
) -> Node {
    let kind = match kind {
        CiphertextType::Pkmsg => "pkmsg",
        CiphertextType::Msg => "msg",
        CiphertextType::Skmsg => "skmsg",
    };
    let m = message.map(unwrap_future_proof);
    let hide = m.is_some_and(|m| m.reaction_message.is_some() || m.pin_in_chat_message.is_some());
    Node::builder("enc")
        .attr("v", "2")
        .attr("type", kind)
        .attr_opt("count", count)
        .attr_opt("mediatype", m.and_then(media_type))
        .attr_opt("decrypt-fail", hide.then_some("hide"))
        .bytes(ciphertext)
        .build()
}

/// The `<enc>` children of a received message, in order, with their kind.
pub(crate) fn enc_children(node: &Node) -> Vec<(CiphertextType, &[u8])> {
    node.children_by_tag("enc")
        .filter_map(|e| {
            let kind = match e.attr_opt::<&str>("type").ok().flatten()? {
                "pkmsg" => CiphertextType::Pkmsg,
                "msg" => CiphertextType::Msg,
                "skmsg" => CiphertextType::Skmsg,
                _ => return None,
            };
            Some((kind, e.content_bytes()?))
        })
        .take(MAX_ENC_NODES)
        .collect()
}

/// `2:` + base64 (no padding) of the first 6 bytes of SHA-256 over the sorted device JIDs:
/// the participant hash of a group send.
pub(crate) fn participant_hash(devices: &[Jid]) -> String {
    let mut names: Vec<String> = devices.iter().map(ToString::to_string).collect();
    names.sort();
    let mut h = Sha256::new();
    for n in &names {
        h.update(n.as_bytes());
    }
    let digest = h.finalize();
    format!(
        "2:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&digest[..6])
    )
}

/// A string attribute, if present and a string.
pub(crate) fn str_attr<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.get_attr(key).and_then(|v| v.as_str())
}

/// The longest JID user part a stanza's addressing may carry. A longer one would make
/// store keys past [`wa_store::MAX_KEY_LEN`], and one such message would fail the commit
/// of every message received with it.
pub(crate) use wa_binary::MAX_JID_USER_LEN;

/// A JID attribute (a JID value, or a string that parses as one) whose user part is at
/// most [`MAX_JID_USER_LEN`] bytes ([`wa_binary::Value::to_jid`] refuses longer ones).
pub(crate) fn jid_attr(node: &Node, key: &str) -> Option<Jid> {
    node.get_attr(key).and_then(wa_binary::Value::to_jid)
}

/// Checks what a send names before anything is encrypted: a message id and a recipient
/// that received would be accepted ([`id_attr`], [`jid_attr`]). A send sharing its commit
/// with others must not be one whose records cannot be stored: that would fail them all.
pub(crate) fn check_send(to: &Jid, id: &str) -> Result<(), crate::Error> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(crate::Error::InvalidSend(
            "message id empty or over 128 bytes",
        ));
    }
    if to.user.len() > MAX_JID_USER_LEN {
        return Err(crate::Error::InvalidSend("recipient over 128 bytes"));
    }
    Ok(())
}

/// A valid message id attribute (non-empty, bounded).
pub(crate) fn id_attr(node: &Node) -> Option<&str> {
    id_attr_named(node, "id")
}

/// A valid message id in attribute `key` of `node` (non-empty, bounded).
pub(crate) fn id_attr_named<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    str_attr(node, key).filter(|id| !id.is_empty() && id.len() <= MAX_ID_LEN)
}

/// The ids a receipt names: its `id`, then every `<list><item id>` (bounded).
pub(crate) fn receipt_ids(node: &Node) -> Vec<String> {
    let mut ids: Vec<String> = id_attr(node).map(str::to_owned).into_iter().collect();
    if let Some(list) = node.child("list") {
        for item in list.children_by_tag("item") {
            if ids.len() >= MAX_RECEIPT_IDS {
                break;
            }
            if let Some(id) = id_attr(item)
                && !ids.iter().any(|i| i == id)
            {
                ids.push(id.to_owned());
            }
        }
    }
    ids
}

/// `<device-identity>` carrying our signed device identity (`account`), as a stanza
/// with a `pkmsg` (or a retry receipt's keys) must.
pub(crate) fn device_identity(account: &[u8]) -> Node {
    Node::builder("device-identity")
        .bytes(account.to_vec())
        .build()
}

/// `<ack class=.. id to=from [participant] [type] [error]/>` answering `node`.
pub(crate) fn ack_for(node: &Node, class: &'static str, error: Option<u16>) -> Node {
    let mut b = Node::builder("ack").attr("class", class);
    if let Some(id) = node.get_attr("id") {
        b = b.attr("id", id.clone());
    }
    if let Some(from) = node.get_attr("from") {
        b = b.attr("to", from.clone());
    }
    for key in ["participant", "recipient", "type"] {
        if let Some(v) = node.get_attr(key) {
            b = b.attr(key, v.clone());
        }
    }
    b.attr_opt("error", error).build()
}

/// `<ack class="message">` for `node`, naming our device as `from`, as WhatsApp Web
/// does for every message-class ack ([`wa_socket::message_ack`]).
pub(crate) fn message_ack(node: &Node, me: &Jid, error: Option<u16>) -> Node {
    wa_socket::message_ack(node, Some(me), error)
}

/// The delivery receipt for a processed message: `to` and `participant` copied from the
/// stanza; `type="peer_msg"` for a peer message (`category="peer"`, from our own
/// phone), `type="sender"` (with the chat as `recipient`) for other messages from our
/// own devices, and `type="inactive"` for other people's messages unless `active`.
pub(crate) fn delivery_receipt(node: &Node, from_own_device: bool, active: bool) -> Node {
    let mut b = Node::builder("receipt");
    if let Some(id) = node.get_attr("id") {
        b = b.attr("id", id.clone());
    }
    if let Some(from) = node.get_attr("from") {
        b = b.attr("to", from.clone());
    }
    if let Some(p) = node.get_attr("participant") {
        b = b.attr("participant", p.clone());
    }
    let peer = node.attr_opt::<&str>("category").ok().flatten() == Some("peer");
    if from_own_device && peer {
        b = b.attr("type", "peer_msg");
    } else if from_own_device {
        b = b.attr("type", "sender");
        if let Some(r) = node.get_attr("recipient") {
            b = b.attr("recipient", r.clone());
        }
    } else if !active {
        b = b.attr("type", "inactive");
    }
    b.build()
}

/// What a retry receipt carries besides the stanza attributes.
pub(crate) struct RetryRequest<'a> {
    /// The retry count (1 for the first request).
    pub(crate) count: u32,
    /// Our registration id.
    pub(crate) registration_id: u32,
    /// From count 2: our identity, a fresh one-time pre-key, the signed pre-key and our
    /// signed device identity, so the sender can start a new session.
    pub(crate) keys: Option<RetryKeys<'a>>,
    /// Server timestamp of the failed message.
    pub(crate) t: u64,
}

/// The `<keys>` of a retry receipt.
pub(crate) struct RetryKeys<'a> {
    pub(crate) identity: &'a [u8; 32],
    pub(crate) pre_key: (u32, &'a [u8; 32]),
    pub(crate) signed_pre_key: (u32, &'a [u8; 32], &'a [u8; 64]),
    pub(crate) device_identity: Option<&'a [u8]>,
}

fn id3(id: u32) -> Vec<u8> {
    id.to_be_bytes()[1..].to_vec()
}

/// `<receipt type=retry id to [participant] [recipient]><retry count id t v=1/>
/// <registration/>[<keys>..</keys>]</receipt>` for a message we could not decrypt.
pub(crate) fn retry_receipt(node: &Node, req: &RetryRequest<'_>) -> Node {
    let id = id_attr(node).unwrap_or("").to_owned();
    let mut b = Node::builder("receipt")
        .attr("id", id.clone())
        .attr("type", "retry");
    if let Some(from) = node.get_attr("from") {
        b = b.attr("to", from.clone());
    }
    for key in ["participant", "recipient"] {
        if let Some(v) = node.get_attr(key) {
            b = b.attr(key, v.clone());
        }
    }
    let mut children = vec![
        Node::builder("retry")
            .attr("count", req.count)
            .attr("id", id)
            .attr("t", req.t)
            .attr("v", "1")
            .build(),
        Node::builder("registration")
            .bytes(req.registration_id.to_be_bytes().to_vec())
            .build(),
    ];
    if let Some(k) = &req.keys {
        let mut keys = vec![
            Node::builder("type")
                .bytes(vec![wa_crypto::KEY_TYPE_DJB])
                .build(),
            Node::builder("identity").bytes(k.identity.to_vec()).build(),
            Node::builder("key")
                .children([
                    Node::builder("id").bytes(id3(k.pre_key.0)).build(),
                    Node::builder("value").bytes(k.pre_key.1.to_vec()).build(),
                ])
                .build(),
            Node::builder("skey")
                .children([
                    Node::builder("id").bytes(id3(k.signed_pre_key.0)).build(),
                    Node::builder("value")
                        .bytes(k.signed_pre_key.1.to_vec())
                        .build(),
                    Node::builder("signature")
                        .bytes(k.signed_pre_key.2.to_vec())
                        .build(),
                ])
                .build(),
        ];
        if let Some(d) = k.device_identity {
            keys.push(device_identity(d));
        }
        children.push(Node::builder("keys").children(keys).build());
    }
    b.children(children).build()
}

/// The retry count of a retry receipt (`<retry count>`), at least 1.
pub(crate) fn retry_count(node: &Node) -> u32 {
    node.child("retry")
        .and_then(|r| r.attr_opt::<u64>("count").ok().flatten())
        .map_or(1, |c| u32::try_from(c).unwrap_or(u32::MAX).max(1))
}

/// The pre-key bundle a retry receipt carries (`<registration>` + `<keys>`), as the
/// `<user>` node of a key fetch so [`wa_signal::PreKeyBundle::from_user_node`] reads it.
pub(crate) fn retry_bundle_node(receipt: &Node, device: &Jid) -> Option<Node> {
    let keys = receipt.child("keys")?;
    let registration = receipt.child("registration")?.clone();
    let mut children = vec![registration];
    children.extend(
        keys.children()
            .iter()
            .filter(|c| matches!(c.tag(), "type" | "identity" | "key" | "skey"))
            .cloned(),
    );
    Some(
        Node::builder("user")
            .attr("jid", device.clone())
            .children(children)
            .build(),
    )
}

/// The answer to a retry receipt: the message re-encrypted for the one device that asked,
/// with the same id and `<enc count>`. Addressed as Baileys does: `to=group
/// participant=device` in a group (and, as whatsmeow does, `to=status@broadcast
/// participant=device` for a status update), `to=device recipient=chat` for one of our own devices,
/// else `to=device`; `<device-identity>` when the ciphertext is a `pkmsg`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn resend_stanza(
    id: &str,
    chat: &Jid,
    device: &Jid,
    own: bool,
    message: &Message,
    enc: wa_signal::EncryptedMessage,
    count: u32,
    device_identity: Option<&[u8]>,
) -> Node {
    let pkmsg = enc.kind == CiphertextType::Pkmsg;
    let mut children = vec![enc_node_for(
        enc.kind,
        enc.ciphertext,
        Some(count),
        Some(message),
    )];
    if pkmsg && let Some(account) = device_identity {
        children.push(crate::stanza::device_identity(account));
    }
    let mut b = Node::builder("message")
        .attr("id", id.to_owned())
        .attr("type", message_type(message))
        .attr_opt("edit", edit_attr(message));
    if chat.is_group() || chat.is_status_broadcast() {
        b = b
            .attr("to", chat.clone())
            .attr("participant", device.clone());
    } else if own {
        b = b.attr("to", device.clone()).attr("recipient", chat.clone());
    } else {
        b = b.attr("to", device.clone());
    }
    b.children(children).build()
}

/// `<iq type=get xmlns=encrypt><key><user jid/>..</key></iq>`: fetch pre-key bundles.
pub(crate) fn key_fetch(devices: &[Jid]) -> Node {
    Node::builder("iq")
        .attr("to", Jid::server_jid())
        .attr("type", "get")
        .attr("xmlns", "encrypt")
        .children([Node::builder("key")
            .children(
                devices
                    .iter()
                    .map(|d| Node::builder("user").attr("jid", d.clone()).build()),
            )
            .build()])
        .build()
}

/// Most message ids one merged receipt carries (see [`merge_receipts`]): well under what
/// a receiver reads from one receipt ([`MAX_RECEIPT_IDS`]).
pub(crate) const MAX_MERGED_RECEIPT_IDS: usize = 64;

/// Merges consecutive receipts that differ only in their `id` (same tag, the same other
/// attributes in the same order, no content) into one receipt each: the first id in `id`,
/// the others as `<list><item id/></list>`, as a receipt for several messages is written,
/// each id once. At most [`MAX_MERGED_RECEIPT_IDS`] ids go in one. Receipts that cannot
/// merge pass unchanged, in order.
pub(crate) fn merge_receipts(receipts: Vec<Node>) -> Vec<Node> {
    fn same_but_id(a: &Node, b: &Node) -> bool {
        fn others(n: &Node) -> impl Iterator<Item = (&wa_binary::Str, &wa_binary::Value)> {
            n.attrs.iter().filter(|(k, _)| k.as_str() != "id")
        }
        a.tag == b.tag
            && matches!(a.content, Content::None)
            && matches!(b.content, Content::None)
            && a.attrs.get("id").is_some()
            && b.attrs.get("id").is_some()
            && others(a).eq(others(b))
    }
    fn close(out: &mut [Node], items: &mut Vec<Node>) {
        if let Some(last) = out.last_mut()
            && !items.is_empty()
        {
            last.content = Content::Nodes(vec![
                Node::builder("list")
                    .children(std::mem::take(items))
                    .build(),
            ]);
        }
    }
    let mut out: Vec<Node> = Vec::with_capacity(receipts.len());
    let mut items: Vec<Node> = Vec::new();
    for receipt in receipts {
        let joins = items.len() + 1 < MAX_MERGED_RECEIPT_IDS
            && out.last().is_some_and(|last| same_but_id(last, &receipt));
        match receipt.attrs.get("id").filter(|_| joins) {
            // A copy delivered twice in one run is named once.
            Some(id)
                if out.last().and_then(|l| l.attrs.get("id")) == Some(id)
                    || items.iter().any(|i| i.attrs.get("id") == Some(id)) => {}
            Some(id) => items.push(Node::builder("item").attr("id", id.clone()).build()),
            None => {
                close(&mut out, &mut items);
                out.push(receipt);
            }
        }
    }
    close(&mut out, &mut items);
    out
}

/// A read (or other) receipt for several messages of one sender in one chat.
pub(crate) fn receipt_for_ids(
    to: &Jid,
    participant: Option<&Jid>,
    ids: &[String],
    kind: Option<&str>,
    t: u64,
) -> Option<Node> {
    let (first, rest) = ids.split_first()?;
    let mut b = Node::builder("receipt")
        .attr("id", first.clone())
        .attr("to", to.clone())
        .attr("t", t);
    if let Some(p) = participant {
        b = b.attr("participant", p.clone());
    }
    if let Some(k) = kind {
        b = b.attr("type", k.to_owned());
    }
    if !rest.is_empty() {
        b = b.children([Node::builder("list")
            .children(
                rest.iter()
                    .map(|id| Node::builder("item").attr("id", id.clone()).build()),
            )
            .build()]);
    }
    Some(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_binary::Server;

    #[test]
    fn stanza_types_follow_content() {
        let mut m = Message::default();
        assert_eq!(message_type(&m), "text");
        m.reaction_message = Some(Default::default());
        assert_eq!(message_type(&m), "reaction");
        let p = Message {
            poll_update_message: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(message_type(&p), "poll");
        let mut e = Message::default();
        let mut pm = wa_proto::e2e::ProtocolMessage::default();
        pm.set_type(ProtocolType::MessageEdit);
        e.protocol_message = Some(Box::new(pm.clone()));
        assert_eq!(edit_attr(&e), Some("1"));
        pm.set_type(ProtocolType::Revoke);
        e.protocol_message = Some(Box::new(pm));
        assert_eq!(edit_attr(&e), Some("7"));
        assert_eq!(edit_attr(&Message::default()), None);
    }

    #[test]
    fn message_acks_name_our_device_and_mirror_the_stanza() {
        let from = Jid::group("120363000000000001");
        let sender = Jid::with_device("15550000002", Server::Pn, 3);
        let node = Node::builder("message")
            .attr("id", "3EB0ABC")
            .attr("from", &from)
            .attr("participant", &sender)
            .attr("type", "text")
            .build();
        let me = Jid::with_device("15550000001", Server::Pn, 7);
        let ack = message_ack(&node, &me, Some(487));
        assert_eq!(ack.tag(), "ack");
        assert_eq!(ack.attr::<&str>("class").unwrap(), "message");
        assert_eq!(ack.attr::<&str>("id").unwrap(), "3EB0ABC");
        assert_eq!(ack.attr::<Jid>("to").unwrap(), from);
        assert_eq!(ack.attr::<Jid>("participant").unwrap(), sender);
        assert_eq!(ack.attr::<Jid>("from").unwrap(), me);
        assert_eq!(ack.attr::<&str>("type").unwrap(), "text");
        assert_eq!(ack.attr::<&str>("error").unwrap(), "487");
        assert!(message_ack(&node, &me, None).get_attr("error").is_none());
        // Other classes do not name a sender.
        assert!(ack_for(&node, "receipt", None).get_attr("from").is_none());
    }

    #[test]
    fn media_events_and_reactions_get_their_types_and_enc_attributes() {
        use wa_proto::e2e::{AudioMessage, ImageMessage, VideoMessage};
        let image = Message {
            image_message: Some(Box::new(ImageMessage::default())),
            ..Default::default()
        };
        assert_eq!(message_type(&image), "media");
        assert_eq!(media_type(&image), Some("image"));
        let gif = Message {
            video_message: Some(Box::new(VideoMessage {
                gif_playback: Some(true),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(media_type(&gif), Some("gif"));
        let ptt = Message {
            audio_message: Some(Box::new(AudioMessage {
                ptt: Some(true),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(media_type(&ptt), Some("ptt"));
        // Inside a view-once wrapper too.
        let once = Message {
            view_once_message: Some(Box::new(wa_proto::e2e::FutureProofMessage {
                message: Some(Box::new(image.clone())),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(message_type(&once), "media");
        let event = Message {
            event_message: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(message_type(&event), "event");
        assert_eq!(media_type(&Message::default()), None);

        let enc = enc_node_for(CiphertextType::Msg, vec![1], None, Some(&once));
        assert_eq!(str_attr(&enc, "mediatype"), Some("image"));
        assert_eq!(str_attr(&enc, "decrypt-fail"), None);
        let reaction = Message {
            reaction_message: Some(Default::default()),
            ..Default::default()
        };
        let enc = enc_node_for(CiphertextType::Skmsg, vec![1], Some(2), Some(&reaction));
        assert_eq!(str_attr(&enc, "decrypt-fail"), Some("hide"));
        assert_eq!(str_attr(&enc, "count"), Some("2"));
        assert_eq!(str_attr(&enc, "mediatype"), None);
        let plain = enc_node_for(CiphertextType::Pkmsg, vec![1], None, None);
        assert_eq!(str_attr(&plain, "type"), Some("pkmsg"));
        assert_eq!(str_attr(&plain, "mediatype"), None);
    }

    #[test]
    fn edit_attribute_tells_admin_deletes_and_pins_apart() {
        let revoke = |chat: &str, from_me: bool| {
            let mut pm = wa_proto::e2e::ProtocolMessage {
                key: Some(wa_proto::common::MessageKey {
                    remote_jid: Some(chat.into()),
                    from_me: Some(from_me),
                    id: Some("X".into()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            pm.set_type(ProtocolType::Revoke);
            Message {
                protocol_message: Some(Box::new(pm)),
                ..Default::default()
            }
        };
        // Our own message, in a group or not: 7; someone else's in a group (as admin): 8.
        assert_eq!(
            edit_attr(&revoke("120363000000000001@g.us", true)),
            Some("7")
        );
        assert_eq!(
            edit_attr(&revoke("120363000000000001@g.us", false)),
            Some("8")
        );
        assert_eq!(
            edit_attr(&revoke("15550001@s.whatsapp.net", true)),
            Some("7")
        );
        let pin = Message {
            pin_in_chat_message: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(edit_attr(&pin), Some("2"));
    }

    #[test]
    fn polls_and_events_get_a_creation_meta_node() {
        assert!(meta_node(&Message::default()).is_none());
        for poll in [
            Message {
                poll_creation_message: Some(Default::default()),
                ..Default::default()
            },
            Message {
                poll_creation_message_v2: Some(Default::default()),
                ..Default::default()
            },
            Message {
                poll_creation_message_v3: Some(Default::default()),
                ..Default::default()
            },
        ] {
            let meta = meta_node(&poll).unwrap();
            assert_eq!(meta.tag(), "meta");
            assert_eq!(str_attr(&meta, "polltype"), Some("creation"));
        }
        let mut pm = wa_proto::e2e::ProtocolMessage::default();
        pm.set_type(ProtocolType::GroupMemberLabelChange);
        let label = Message {
            protocol_message: Some(Box::new(pm)),
            ..Default::default()
        };
        let meta = meta_node(&label).unwrap();
        assert_eq!(str_attr(&meta, "tag_reason"), Some("user_update"));
        assert_eq!(str_attr(&meta, "appdata"), Some("member_tag"));
        let event = Message {
            event_message: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(
            str_attr(&meta_node(&event).unwrap(), "event_type"),
            Some("creation")
        );
    }

    #[test]
    fn participant_hash_is_order_independent_and_prefixed() {
        let a = Jid::with_device("1555", Server::Pn, 0);
        let b = Jid::with_device("1555", Server::Pn, 3);
        let h1 = participant_hash(&[a.clone(), b.clone()]);
        let h2 = participant_hash(&[b, a.clone()]);
        assert_eq!(h1, h2);
        assert!(h1.starts_with("2:"));
        assert_eq!(h1.len(), 2 + 8, "6 bytes are 8 base64 characters");
        assert_ne!(h1, participant_hash(&[a]));
    }

    #[test]
    fn delivery_receipt_types() {
        let kind = |n: &Node| n.attr_opt::<&str>("type").ok().flatten().map(str::to_owned);
        let from_peer = Node::builder("message")
            .attr("id", "P1")
            .attr("from", Jid::pn("1555"))
            .attr("category", "peer")
            .attr("type", "text")
            .build();
        let r = delivery_receipt(&from_peer, true, false);
        assert_eq!(kind(&r).as_deref(), Some("peer_msg"));
        assert_eq!(
            r.get_attr("to").map(ToString::to_string).as_deref(),
            Some("1555@s.whatsapp.net")
        );
        assert_eq!(r.get_attr("recipient"), None);

        let own = Node::builder("message")
            .attr("id", "S1")
            .attr("from", Jid::with_device("1555", Server::Pn, 2))
            .attr("recipient", Jid::pn("1666"))
            .build();
        let r = delivery_receipt(&own, true, false);
        assert_eq!(
            kind(&r).as_deref(),
            Some("sender"),
            "never inactive for our own"
        );
        assert_eq!(
            r.get_attr("recipient").map(ToString::to_string).as_deref(),
            Some("1666@s.whatsapp.net")
        );

        let theirs = Node::builder("message")
            .attr("id", "T1")
            .attr("from", Jid::pn("1666"))
            .build();
        assert_eq!(kind(&delivery_receipt(&theirs, false, true)), None);
        assert_eq!(
            kind(&delivery_receipt(&theirs, false, false)).as_deref(),
            Some("inactive")
        );
        // A peer category on someone else's message changes nothing.
        let odd = Node::builder("message")
            .attr("id", "T2")
            .attr("from", Jid::pn("1666"))
            .attr("category", "peer")
            .build();
        assert_eq!(kind(&delivery_receipt(&odd, false, true)), None);
    }

    #[test]
    fn receipts_differing_only_in_id_merge_in_order() {
        let receipt = |id: &str, to: &str, kind: Option<&str>| {
            Node::builder("receipt")
                .attr("id", id.to_owned())
                .attr("to", to.parse::<Jid>().unwrap())
                .attr_opt("type", kind.map(str::to_owned))
                .build()
        };
        let a = "1555:2@s.whatsapp.net";
        let b = "1666@s.whatsapp.net";
        let with_content = Node::builder("receipt")
            .attr("id", "C1")
            .attr("to", a.parse::<Jid>().unwrap())
            .children([Node::new("keys")])
            .build();
        let merged = merge_receipts(vec![
            receipt("A1", a, None),
            receipt("A2", a, None),
            receipt("A1", a, None),
            receipt("A3", a, None),
            receipt("A2", a, None),
            receipt("B1", b, None),
            receipt("B2", b, Some("inactive")),
            with_content.clone(),
            receipt("A4", a, None),
        ]);
        let ids: Vec<Vec<String>> = merged.iter().map(receipt_ids).collect();
        assert_eq!(
            ids,
            [
                vec!["A1", "A2", "A3"],
                vec!["B1"],
                vec!["B2"],
                vec!["C1"],
                vec!["A4"],
            ]
        );
        // The merged one keeps the first's attributes; the others pass unchanged.
        assert_eq!(merged[0].attrs, receipt("A1", a, None).attrs);
        assert_eq!(merged[2], receipt("B2", b, Some("inactive")));
        assert_eq!(merged[3], with_content);

        // A long run is split into receipts of at most MAX_MERGED_RECEIPT_IDS ids.
        let many: Vec<Node> = (0..150)
            .map(|i| receipt(&format!("M{i}"), a, None))
            .collect();
        let sizes: Vec<usize> = merge_receipts(many)
            .iter()
            .map(|r| receipt_ids(r).len())
            .collect();
        assert_eq!(sizes, [MAX_MERGED_RECEIPT_IDS, MAX_MERGED_RECEIPT_IDS, 22]);
    }

    #[test]
    fn receipt_ids_are_bounded_and_deduplicated() {
        let items: Vec<Node> = (0..1000)
            .map(|i| {
                Node::builder("item")
                    .attr("id", format!("ID{}", i % 300))
                    .build()
            })
            .collect();
        let node = Node::builder("receipt")
            .attr("id", "ID0")
            .children([Node::builder("list").children(items).build()])
            .build();
        let ids = receipt_ids(&node);
        assert_eq!(ids.len(), MAX_RECEIPT_IDS);
        assert_eq!(ids[0], "ID0");
        assert_eq!(ids[1], "ID1");
        let too_long = Node::builder("receipt").attr("id", "x".repeat(200)).build();
        assert!(receipt_ids(&too_long).is_empty());
    }

    #[test]
    fn retry_receipt_round_trips_its_bundle() {
        let msg = Node::builder("message")
            .attr("id", "ABC")
            .attr("from", Jid::with_device("1555", Server::Pn, 2))
            .build();
        let (identity, pre, spk, sig) = ([1u8; 32], [2u8; 32], [3u8; 32], [4u8; 64]);
        let r = retry_receipt(
            &msg,
            &RetryRequest {
                count: 2,
                registration_id: 0x0102_0304,
                keys: Some(RetryKeys {
                    identity: &identity,
                    pre_key: (0x0A0B0C, &pre),
                    signed_pre_key: (7, &spk, &sig),
                    device_identity: Some(b"adv"),
                }),
                t: 99,
            },
        );
        assert_eq!(str_attr(&r, "type"), Some("retry"));
        assert_eq!(
            jid_attr(&r, "to"),
            Some(Jid::with_device("1555", Server::Pn, 2))
        );
        assert_eq!(retry_count(&r), 2);
        let dev = Jid::with_device("1666", Server::Pn, 1);
        let user = retry_bundle_node(&r, &dev).unwrap();
        let (jid, bundle) = wa_signal::PreKeyBundle::from_user_node(&user).unwrap();
        assert_eq!(jid, dev);
        assert_eq!(bundle.registration_id, 0x0102_0304);
        assert_eq!(bundle.pre_key.unwrap().0, 0x0A0B0C);
        assert_eq!(bundle.signed_pre_key_id, 7);
        assert_eq!(bundle.identity_key.as_bytes(), &identity);
        let first = retry_receipt(
            &msg,
            &RetryRequest {
                count: 1,
                registration_id: 1,
                keys: None,
                t: 1,
            },
        );
        assert!(first.child("keys").is_none());
        assert!(retry_bundle_node(&first, &dev).is_none());
    }

    #[test]
    fn resends_are_addressed_to_the_one_device() {
        let enc = |kind| wa_signal::EncryptedMessage {
            kind,
            ciphertext: vec![1, 2, 3],
        };
        let peer = Jid::pn("1666");
        let dev = Jid::with_device("1666", Server::Pn, 4);
        let own_dev = Jid::with_device("1555", Server::Pn, 2);
        let group = Jid::group("120363-1");
        let m = Message::default();

        let n = resend_stanza(
            "ID",
            &peer,
            &dev,
            false,
            &m,
            enc(CiphertextType::Msg),
            2,
            Some(b"adv"),
        );
        assert_eq!(jid_attr(&n, "to"), Some(dev.clone()));
        assert!(n.get_attr("recipient").is_none() && n.get_attr("participant").is_none());
        let e = n.child("enc").unwrap();
        assert_eq!(str_attr(e, "count"), Some("2"));
        assert_eq!(str_attr(e, "type"), Some("msg"));
        assert!(n.child("device-identity").is_none(), "only with a pkmsg");

        let n = resend_stanza(
            "ID",
            &peer,
            &own_dev,
            true,
            &m,
            enc(CiphertextType::Pkmsg),
            3,
            Some(b"adv"),
        );
        assert_eq!(jid_attr(&n, "to"), Some(own_dev.clone()));
        assert_eq!(jid_attr(&n, "recipient"), Some(peer.clone()));
        assert_eq!(
            n.child("device-identity").and_then(Node::content_bytes),
            Some(&b"adv"[..])
        );

        let n = resend_stanza(
            "ID",
            &group,
            &dev,
            false,
            &m,
            enc(CiphertextType::Msg),
            1,
            None,
        );
        assert_eq!(jid_attr(&n, "to"), Some(group));
        assert_eq!(jid_attr(&n, "participant"), Some(dev));
        assert_eq!(str_attr(&n, "id"), Some("ID"));
    }

    #[test]
    fn enc_children_skip_unknown_and_bound_count() {
        let encs: Vec<Node> = (0..10)
            .map(|i| {
                Node::builder("enc")
                    .attr("type", if i == 0 { "bogus" } else { "msg" })
                    .bytes(vec![i as u8])
                    .build()
            })
            .collect();
        let node = Node::builder("message").children(encs).build();
        let got = enc_children(&node);
        assert_eq!(got.len(), MAX_ENC_NODES);
        assert_eq!(got[0].1, &[1u8][..]);
    }

    mod hostile {
        use super::*;
        use proptest::prelude::*;

        fn attr_value() -> impl Strategy<Value = String> {
            prop_oneof![
                "[0-9]{1,20}",
                "[0-9a-z.:@_-]{0,40}",
                "[0-9]{1,15}(:[0-9]{1,5})?@(s\\.whatsapp\\.net|g\\.us|lid|broadcast)",
                ".{0,64}",
            ]
        }

        fn node() -> impl Strategy<Value = Node> {
            let keys = prop::sample::select(vec![
                "id",
                "from",
                "to",
                "participant",
                "recipient",
                "type",
                "t",
                "count",
                "offline",
                "notify",
                "v",
                "jid",
                "class",
                "error",
            ]);
            let leaf = (
                prop::sample::select(vec![
                    "enc",
                    "retry",
                    "registration",
                    "keys",
                    "key",
                    "skey",
                    "identity",
                    "type",
                    "id",
                    "value",
                    "signature",
                    "list",
                    "item",
                ]),
                prop::collection::vec((keys.clone(), attr_value()), 0..4),
                prop::collection::vec(any::<u8>(), 0..70),
            )
                .prop_map(|(tag, attrs, bytes)| {
                    let mut b = Node::builder(tag);
                    for (k, v) in attrs {
                        b = b.attr(k, v);
                    }
                    b.bytes(bytes).build()
                })
                .boxed();
            let mid = (
                prop::sample::select(vec!["keys", "list", "retry", "enc"]),
                prop::collection::vec(leaf.clone(), 0..6),
            )
                .prop_map(|(tag, kids)| Node::builder(tag).children(kids).build());
            (
                prop::sample::select(vec!["message", "receipt", "ack"]),
                prop::collection::vec((keys, attr_value()), 0..8),
                prop::collection::vec(prop_oneof![leaf, mid], 0..6),
            )
                .prop_map(|(tag, attrs, kids)| {
                    let mut b = Node::builder(tag);
                    for (k, v) in attrs {
                        b = b.attr(k, wa_binary::Value::sniff(v));
                    }
                    b.children(kids).build()
                })
        }

        proptest! {
            #[test]
            fn stanza_readers_never_panic(n in node()) {
                let ids = receipt_ids(&n);
                prop_assert!(ids.len() <= MAX_RECEIPT_IDS);
                prop_assert!(ids.iter().all(|i| !i.is_empty() && i.len() <= MAX_ID_LEN));
                prop_assert!(enc_children(&n).len() <= MAX_ENC_NODES);
                prop_assert!(retry_count(&n) >= 1);
                let dev = Jid::with_device("1", wa_binary::Server::Pn, 1);
                if let Some(user) = retry_bundle_node(&n, &dev) {
                    let _ = wa_signal::PreKeyBundle::from_user_node(&user);
                }
                let _ = ack_for(&n, "message", Some(487));
                let _ = message_ack(&n, &Jid::pn("1555"), None);
                let _ = delivery_receipt(&n, true, true);
                let _ = jid_attr(&n, "from");
                let me = crate::messenger::Me {
                    pn: Jid::with_device("1555", wa_binary::Server::Pn, 3),
                    lid: None,
                };
                if let Some(i) = crate::recv::parse_incoming(&n, &me) {
                    prop_assert!(!i.id.is_empty() && i.id.len() <= MAX_ID_LEN);
                    prop_assert!(i.push_name.is_none_or(|p| p.chars().count() <= 256));
                }
            }
        }
    }
}
