//! The simulated phone's history sync (PROTOCOL.md §10): after a companion links, a phone
//! whose history is switched on builds `HistorySync` chunks from what tests seeded and
//! the messages it exchanged, zlib-compresses them, encrypts and uploads the bootstrap
//! chunk to the media host and sends `HISTORY_SYNC_NOTIFICATION` protocol messages to
//! the new device (the push-name chunk rides inline). `hist_sync` receipts are counted.
//! The phone keeps the last uploaded chunks (bounded) and, when a companion asks with
//! `<receipt type="server-error" category="peer">` for one whose blob it could not use,
//! uploads it again under a new media key and sends a new notification for it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::sync::Arc;

use prost::Message as _;
use rand_core::{OsRng, RngCore};
use wa_binary::{Jid, Server};
use wa_proto::common::MessageKey;
use wa_proto::e2e::{HistorySyncNotification, Message, ProtocolMessage, protocol_message};
use wa_proto::history_sync::history_sync::HistorySyncType;
use wa_proto::history_sync::{
    Conversation, HistorySync, HistorySyncMsg, PhoneNumberToLidMapping, Pushname,
};
use wa_proto::web::WebMessageInfo;

use crate::sim::{Shared, unix_now};

/// HKDF info of history-sync media keys.
const HISTORY_KEYS_INFO: &[u8] = b"WhatsApp History Keys";
/// Most conversations seeded per phone.
const MAX_SEEDED_CONVERSATIONS: usize = 10_000;
/// Most push names seeded per phone.
const MAX_SEEDED_PUSH_NAMES: usize = 10_000;
/// Most uploaded chunks kept for re-upload requests (all phones).
const MAX_KEPT_CHUNKS: usize = 64;
/// Most compressed bytes of uploaded chunks kept (all phones).
const MAX_KEPT_BYTES: usize = 32 * 1024 * 1024;

/// An uploaded chunk, kept for a re-upload request.
struct KeptChunk {
    phone: String,
    /// The notification message's id.
    id: String,
    media_key: [u8; 32],
    /// The notification without its media fields.
    template: HistorySyncNotification,
    compressed: Vec<u8>,
}

/// Per-phone history settings, seeds and counters.
#[derive(Default)]
pub(crate) struct HistoryState {
    /// Phones that send history to new companions, with what tests seeded.
    seeds: HashMap<String, HistorySync>,
    /// Phones whose next uploaded history blob gets one bit flipped.
    corrupt_next: HashSet<String>,
    /// `hist_sync` receipts received, per phone: (message ids, in arrival order).
    receipts: HashMap<String, Vec<String>>,
    /// History notifications sent, per phone: (message id, sync type, inline).
    sent: HashMap<String, Vec<(String, i32, bool)>>,
    /// The last uploaded chunks, oldest first, with their total compressed size.
    kept: VecDeque<KeptChunk>,
    kept_bytes: usize,
    /// Chunks uploaded again on request, per phone.
    reuploads: HashMap<String, usize>,
}

impl HistoryState {
    pub(crate) fn enable(&mut self, phone: &str, on: bool) {
        if on {
            self.seeds.entry(phone.to_owned()).or_default();
        } else {
            self.seeds.remove(phone);
        }
    }

    pub(crate) fn seed(&mut self, phone: &str, seed: HistorySync) {
        let s = self.seeds.entry(phone.to_owned()).or_default();
        let room = MAX_SEEDED_CONVERSATIONS.saturating_sub(s.conversations.len());
        s.conversations
            .extend(seed.conversations.into_iter().take(room));
        let room = MAX_SEEDED_PUSH_NAMES.saturating_sub(s.pushnames.len());
        s.pushnames.extend(seed.pushnames.into_iter().take(room));
        let room = MAX_SEEDED_PUSH_NAMES.saturating_sub(s.phone_number_to_lid_mappings.len());
        s.phone_number_to_lid_mappings
            .extend(seed.phone_number_to_lid_mappings.into_iter().take(room));
        if let Some(salt) = seed.nct_salt.filter(|s| !s.is_empty() && s.len() <= 64) {
            s.nct_salt = Some(salt);
        }
    }

    pub(crate) fn corrupt_next(&mut self, phone: &str) {
        self.corrupt_next.insert(phone.to_owned());
    }

    pub(crate) fn receipt(&mut self, phone: &str, id: &str) {
        let r = self.receipts.entry(phone.to_owned()).or_default();
        if r.len() < 10_000 {
            r.push(id.to_owned());
        }
    }

    pub(crate) fn receipts(&self, phone: &str) -> Vec<String> {
        self.receipts.get(phone).cloned().unwrap_or_default()
    }

    pub(crate) fn sent(&self, phone: &str) -> Vec<(String, i32, bool)> {
        self.sent.get(phone).cloned().unwrap_or_default()
    }

    pub(crate) fn reuploads(&self, phone: &str) -> usize {
        self.reuploads.get(phone).copied().unwrap_or(0)
    }

    fn keep(&mut self, chunk: KeptChunk) {
        if chunk.compressed.len() > MAX_KEPT_BYTES {
            return;
        }
        self.kept_bytes += chunk.compressed.len();
        self.kept.push_back(chunk);
        while self.kept.len() > MAX_KEPT_CHUNKS || self.kept_bytes > MAX_KEPT_BYTES {
            match self.kept.pop_front() {
                Some(old) => self.kept_bytes -= old.compressed.len(),
                None => break,
            }
        }
    }
}

/// Encrypts `plain` as WhatsApp media of the history type: returns the blob
/// (`AES-256-CBC(plain) || HMAC[..10]`), `fileSha256` and `fileEncSha256`.
fn encrypt_history(media_key: &[u8; 32], plain: &[u8]) -> (Vec<u8>, [u8; 32], [u8; 32]) {
    crate::phone_media::encrypt_media(media_key, HISTORY_KEYS_INFO, plain)
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// One conversation per chat the phone exchanged messages in (its inbox and what it
/// sent), newest last.
fn exchanged(shared: &Shared, phone: &str) -> Vec<Conversation> {
    let Some(signal) = shared
        .state
        .lock()
        .accounts
        .get(phone)
        .map(|a| a.signal.clone())
    else {
        return Vec::new();
    };
    let now = unix_now();
    let mut chats: BTreeMap<String, Vec<WebMessageInfo>> = BTreeMap::new();
    for m in signal.inbox() {
        let from_me = m.from.user.as_str() == phone;
        let info = WebMessageInfo {
            key: Some(MessageKey {
                remote_jid: Some(m.chat.to_string()),
                from_me: Some(from_me),
                id: Some(m.id.clone()),
                participant: m.chat.is_group().then(|| m.from.to_non_ad().to_string()),
                ..Default::default()
            }),
            message: Some(Box::new(Arc::unwrap_or_clone(m.message))),
            message_timestamp: Some(now),
            ..Default::default()
        };
        chats.entry(m.chat.to_string()).or_default().push(info);
    }
    for (id, chat, message) in signal.sent_messages() {
        let info = WebMessageInfo {
            key: Some(MessageKey {
                remote_jid: Some(chat.to_string()),
                from_me: Some(true),
                id: Some(id),
                ..Default::default()
            }),
            message: Some(Box::new(message)),
            message_timestamp: Some(now),
            ..Default::default()
        };
        chats.entry(chat.to_string()).or_default().push(info);
    }
    chats
        .into_iter()
        .map(|(id, infos)| Conversation {
            id: Some(id),
            conversation_timestamp: Some(now),
            messages: infos
                .into_iter()
                .enumerate()
                .map(|(i, info)| HistorySyncMsg {
                    message: Some(Box::new(info)),
                    msg_order_id: Some(i as u64 + 1),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect()
}

/// Sends the history to a newly linked device, when the phone's history is switched on.
pub(crate) async fn after_link(shared: Arc<Shared>, phone: String, device: Jid) {
    let seed = {
        let h = shared.history();
        match h.seeds.get(&phone) {
            Some(s) => s.clone(),
            None => return,
        }
    };
    let (own_lid, own_name) = {
        let st = shared.state.lock();
        match st.accounts.get(&phone) {
            Some(a) => (a.lid_user.clone(), a.push_name.clone()),
            None => return,
        }
    };
    let own_pn = Jid::pn(phone.clone()).to_string();
    let mut conversations = seed.conversations;
    let seeded: HashSet<String> = conversations.iter().filter_map(|c| c.id.clone()).collect();
    for c in exchanged(&shared, &phone) {
        match conversations
            .iter_mut()
            .find(|s| s.id.is_some() && s.id == c.id)
        {
            Some(s) if seeded.contains(c.id.as_deref().unwrap_or_default()) => {
                s.messages.extend(c.messages);
            }
            _ => conversations.push(c),
        }
    }
    let mut mappings = seed.phone_number_to_lid_mappings;
    mappings.push(PhoneNumberToLidMapping {
        pn_jid: Some(own_pn.clone()),
        lid_jid: Some(Jid::new(own_lid, Server::Lid).to_string()),
        ..Default::default()
    });
    let bootstrap = HistorySync {
        sync_type: Some(HistorySyncType::InitialBootstrap as i32),
        conversations,
        chunk_order: Some(1),
        progress: Some(50),
        phone_number_to_lid_mappings: mappings,
        nct_salt: seed.nct_salt,
        ..Default::default()
    };
    let mut pushnames = seed.pushnames;
    if let Some(name) = own_name {
        pushnames.push(Pushname {
            id: Some(own_pn),
            pushname: Some(name),
            ..Default::default()
        });
    }
    let push = HistorySync {
        sync_type: Some(HistorySyncType::PushName as i32),
        chunk_order: Some(2),
        progress: Some(100),
        pushnames,
        ..Default::default()
    };
    send_chunk(&shared, &phone, &device, Chunk::new(&bootstrap, false)).await;
    send_chunk(&shared, &phone, &device, Chunk::new(&push, true)).await;
}

/// Most messages one on-demand request is answered with.
const MAX_ON_DEMAND: usize = 500;

/// The messages of `chat` a request for `count` messages older than `oldest_id` gets:
/// those right before it in `messages` (oldest first), at most `count` and
/// [`MAX_ON_DEMAND`]; none when the phone does not have `oldest_id`.
fn older_than(messages: &[HistorySyncMsg], oldest_id: &str, count: usize) -> Vec<HistorySyncMsg> {
    let id_of = |m: &HistorySyncMsg| {
        m.message
            .as_ref()
            .and_then(|i| i.key.as_ref())
            .and_then(|k| k.id.clone())
    };
    let Some(at) = messages
        .iter()
        .position(|m| id_of(m).as_deref() == Some(oldest_id))
    else {
        return Vec::new();
    };
    let n = count.min(MAX_ON_DEMAND).min(at);
    messages[at - n..at].to_vec()
}

/// Answers a companion's `HISTORY_SYNC_ON_DEMAND` request (the message `request_id`):
/// an `ON_DEMAND` chunk with the messages of the requested chat older than the one it
/// names (from what tests seeded and what the phone exchanged), uploaded like the
/// bootstrap chunk, its notification naming the request; empty when the phone has none.
pub(crate) async fn on_demand(
    shared: &Shared,
    phone: &str,
    device: &Jid,
    request_id: &str,
    request: &wa_proto::e2e::peer_data_operation_request_message::HistorySyncOnDemandRequest,
) {
    let Some(chat) = request.chat_jid.as_deref() else {
        return;
    };
    let oldest = request.oldest_msg_id.as_deref().unwrap_or_default();
    let count = usize::try_from(request.on_demand_msg_count.unwrap_or(0)).unwrap_or(0);
    let seeded: Vec<HistorySyncMsg> = shared
        .history()
        .seeds
        .get(phone)
        .and_then(|s| {
            s.conversations
                .iter()
                .find(|c| c.id.as_deref() == Some(chat))
        })
        .map(|c| c.messages.clone())
        .unwrap_or_default();
    let mut messages = seeded;
    for c in exchanged(shared, phone) {
        if c.id.as_deref() == Some(chat) {
            messages.extend(c.messages);
        }
    }
    let picked = older_than(&messages, oldest, count);
    let conversations = if picked.is_empty() {
        Vec::new()
    } else {
        vec![Conversation {
            id: Some(chat.to_owned()),
            messages: picked,
            ..Default::default()
        }]
    };
    let sync = HistorySync {
        sync_type: Some(HistorySyncType::OnDemand as i32),
        conversations,
        chunk_order: Some(1),
        progress: Some(100),
        ..Default::default()
    };
    let chunk = Chunk {
        sync: &sync,
        inline: false,
        request_id: Some(request_id),
    };
    send_chunk(shared, phone, device, chunk).await;
}

/// One history chunk to send and how.
pub(crate) struct Chunk<'a> {
    pub(crate) sync: &'a HistorySync,
    /// In the notification itself rather than uploaded.
    pub(crate) inline: bool,
    /// The on-demand request it answers (its notification's `peerDataRequestSessionId`).
    pub(crate) request_id: Option<&'a str>,
}

impl<'a> Chunk<'a> {
    pub(crate) fn new(sync: &'a HistorySync, inline: bool) -> Self {
        Self {
            sync,
            inline,
            request_id: None,
        }
    }
}

/// Compresses a chunk and sends its notification: inline, or encrypted and uploaded.
pub(crate) async fn send_chunk(shared: &Shared, phone: &str, device: &Jid, chunk: Chunk<'_>) {
    let Chunk {
        sync,
        inline,
        request_id,
    } = chunk;
    let compressed = zlib(&sync.encode_to_vec());
    let sync_type = sync.sync_type.unwrap_or_default();
    let mut n = HistorySyncNotification {
        sync_type: Some(sync_type),
        chunk_order: sync.chunk_order,
        progress: sync.progress,
        peer_data_request_session_id: request_id.map(str::to_owned),
        ..Default::default()
    };
    if inline {
        n.initial_hist_bootstrap_inline_payload = Some(compressed);
        notify(shared, phone, device, n, None).await;
    } else {
        let template = n.clone();
        let Some(media_key) = upload(shared, phone, &compressed, &mut n) else {
            return;
        };
        notify(
            shared,
            phone,
            device,
            n,
            Some((media_key, template, compressed)),
        )
        .await;
    }
}

/// Encrypts and stores `compressed` under a new media key, filling in the media fields of
/// `n`; returns the key (`None` when the media host refused the blob).
fn upload(
    shared: &Shared,
    phone: &str,
    compressed: &[u8],
    n: &mut HistorySyncNotification,
) -> Option<[u8; 32]> {
    let mut media_key = [0u8; 32];
    OsRng.fill_bytes(&mut media_key);
    let (blob, file_sha, enc_sha) = encrypt_history(&media_key, compressed);
    let direct_path = match shared.media.store(&blob) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("could not store a history blob: {e}");
            return None;
        }
    };
    if shared.history().corrupt_next.remove(phone) {
        shared.media.corrupt(&direct_path, (blob.len() / 2) as u64);
    }
    n.media_key = Some(media_key.to_vec());
    n.file_sha256 = Some(file_sha.to_vec());
    n.file_enc_sha256 = Some(enc_sha.to_vec());
    n.file_length = Some(compressed.len() as u64);
    n.direct_path = Some(direct_path);
    Some(media_key)
}

/// Sends the notification `n` to `device` as the phone; records it, and keeps an uploaded
/// chunk (`upload`: its key, the notification without media fields, the compressed
/// bytes) for a re-upload request.
async fn notify(
    shared: &Shared,
    phone: &str,
    device: &Jid,
    n: HistorySyncNotification,
    upload: Option<([u8; 32], HistorySyncNotification, Vec<u8>)>,
) {
    let sync_type = n.sync_type.unwrap_or_default();
    let inline = upload.is_none();
    let message = Message {
        protocol_message: Some(Box::new(ProtocolMessage {
            r#type: Some(protocol_message::Type::HistorySyncNotification as i32),
            history_sync_notification: Some(Box::new(n)),
            ..Default::default()
        })),
        ..Default::default()
    };
    match crate::e2e::phone_send_peer(shared, phone, device, message).await {
        Ok(id) => {
            let mut h = shared.history();
            let sent = h.sent.entry(phone.to_owned()).or_default();
            if sent.len() < 10_000 {
                sent.push((id.clone(), sync_type, inline));
            }
            if let Some((media_key, template, compressed)) = upload {
                h.keep(KeptChunk {
                    phone: phone.to_owned(),
                    id,
                    media_key,
                    template,
                    compressed,
                });
            }
        }
        Err(e) => tracing::warn!("history notification to {device} not sent: {e}"),
    }
}

/// Answers a companion's `<receipt type="server-error" category="peer">` for a history
/// notification (see the module docs): when the phone still has the chunk and the
/// encrypted request names that notification under its media key, the chunk is uploaded
/// again and announced to the asking device in a new notification. Anything else is
/// ignored, as the phone cannot help.
pub(crate) fn reupload(shared: &Arc<Shared>, sender: &Jid, node: &wa_binary::Node) -> bool {
    let phone = sender.user.as_str();
    let Some(id) = node.attr_opt::<String>("id").ok().flatten() else {
        return false;
    };
    let found = {
        let h = shared.history();
        h.kept
            .iter()
            .find(|k| k.phone == phone && k.id == id)
            .map(|k| (k.media_key, k.template.clone(), k.compressed.clone()))
    };
    let Some((media_key, template, compressed)) = found else {
        return false;
    };
    if !crate::phone_media::names_stanza(&media_key, &id, node) {
        return false;
    }
    *shared
        .history()
        .reuploads
        .entry(phone.to_owned())
        .or_default() += 1;
    let (shared, phone, device) = (shared.clone(), phone.to_owned(), sender.clone());
    tokio::spawn(async move {
        let mut n = template.clone();
        if let Some(media_key) = upload(&shared, &phone, &compressed, &mut n) {
            notify(
                &shared,
                &phone,
                &device,
                n,
                Some((media_key, template, compressed)),
            )
            .await;
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use wa_crypto::{hkdf_sha256, hmac_sha256};

    fn msg(id: &str) -> HistorySyncMsg {
        HistorySyncMsg {
            message: Some(Box::new(WebMessageInfo {
                key: Some(MessageKey {
                    id: Some(id.to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn on_demand_takes_the_messages_right_before_the_oldest() {
        let all: Vec<HistorySyncMsg> = ["a", "b", "c", "d", "e"].into_iter().map(msg).collect();
        let ids = |v: Vec<HistorySyncMsg>| -> Vec<String> {
            v.into_iter().filter_map(|m| m.message?.key?.id).collect()
        };
        assert_eq!(ids(older_than(&all, "d", 2)), ["b", "c"]);
        assert_eq!(ids(older_than(&all, "d", 10)), ["a", "b", "c"]);
        assert!(older_than(&all, "a", 5).is_empty());
        assert!(older_than(&all, "zz", 5).is_empty(), "unknown anchor");
        assert!(older_than(&all, "e", 0).is_empty());
    }

    #[test]
    fn history_blobs_have_the_media_layout() {
        let key = [7u8; 32];
        let plain = b"history chunk bytes";
        let (blob, file_sha, enc_sha) = encrypt_history(&key, plain);
        // One CBC block of ciphertext for 19 bytes (padded to 32), plus the 10-byte MAC.
        assert_eq!(blob.len(), 32 + 10);
        assert_eq!(file_sha, <[u8; 32]>::from(Sha256::digest(plain)));
        assert_eq!(enc_sha, <[u8; 32]>::from(Sha256::digest(&blob)));
        let expanded = hkdf_sha256(&key, None, HISTORY_KEYS_INFO, 112).unwrap();
        let mut mac_input = expanded[..16].to_vec();
        mac_input.extend_from_slice(&blob[..32]);
        assert_eq!(
            &hmac_sha256(&expanded[48..80], &mac_input)[..10],
            &blob[32..]
        );
    }

    #[test]
    fn seeds_are_bounded_and_accumulate() {
        let mut h = HistoryState::default();
        assert!(h.seeds.is_empty());
        h.enable("1555", true);
        assert!(h.seeds.contains_key("1555"));
        let conv = |id: &str| Conversation {
            id: Some(id.to_owned()),
            ..Default::default()
        };
        h.seed(
            "1555",
            HistorySync {
                conversations: vec![conv("a@s.whatsapp.net")],
                ..Default::default()
            },
        );
        h.seed(
            "1555",
            HistorySync {
                conversations: vec![conv("b@s.whatsapp.net")],
                ..Default::default()
            },
        );
        assert_eq!(h.seeds["1555"].conversations.len(), 2);
        h.enable("1555", false);
        assert!(h.seeds.is_empty());
    }
}
