//! The simulated phone (device 0 of each account) as a Signal party: its keys, what it
//! decrypts (recorded in its inbox and acknowledged with a receipt) and what it sends.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use prost::Message as _;
use rand_core::{OsRng, RngCore};
use tokio::sync::mpsc;
use wa_binary::{Jid, Node, Server};
use wa_crypto::{KeyPair, PublicKey};
use wa_proto::e2e::{DeviceSentMessage, Message, SenderKeyDistributionMessage};
use wa_signal::{
    CiphertextType, InMemoryStore, PreKeyBundle, SignalRepository, SignedPreKeyRecord,
    generate_pre_keys, generate_registration_id, generate_signed_pre_key, pad_message,
    unpad_message,
};

use crate::Error;
use crate::route;
use crate::sim::{Shared, unix_now};

/// Below this many one-time pre-keys the phone generates a new batch.
const PREKEY_LOW: usize = 10;
/// How many one-time pre-keys the phone generates at a time.
const PREKEY_BATCH: u32 = 50;
/// The phone's one-time pre-key ids cycle through `1..=PREKEY_ID_WINDOW`, so at most this
/// many private pre-keys are ever held (a key handed out and never used is overwritten
/// when its id comes round again).
const PREKEY_ID_WINDOW: u32 = 4096;
/// Most messages kept in a phone's inbox unless [`SimConfig::phone_inbox`](crate::SimConfig)
/// says otherwise (the oldest is dropped beyond).
pub(crate) const MAX_INBOX: usize = 1000;
/// Most stanzas waiting for one phone worker (beyond, they are dropped).
pub(crate) const PHONE_QUEUE: usize = 4096;
/// Most `<enc>` children the phone looks at in one stanza.
const MAX_ENCS: usize = 8;
/// How many sent messages the phone keeps for answering retry receipts.
const MAX_SENT: usize = 256;
/// Most times the phone re-sends one message to one device.
const MAX_RETRIES: u32 = 5;

/// A message the simulated phone received and decrypted, as
/// [`Sim::phone_inbox`](crate::Sim::phone_inbox) reports it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PhoneMessage {
    /// The device that sent it (`phone:N@s.whatsapp.net`; the author in a group).
    pub from: Jid,
    /// The chat: the sender's user JID, the group, or for a message one of the account's
    /// own companions sent elsewhere (`DeviceSentMessage`), its destination.
    pub chat: Jid,
    /// The message id.
    pub id: String,
    /// The decoded content (a `DeviceSentMessage` is unwrapped), shared with the phone's
    /// own processing rather than copied.
    pub message: Arc<Message>,
}

/// The public half of the phone's pre-keys, as the server hands them out.
struct PublicKeys {
    one_time: VecDeque<(u32, PublicKey)>,
    next_id: u32,
}

/// One phone's Signal state (in memory only: it is regenerated on restart).
pub(crate) struct PhoneSignal {
    pub(crate) repo: SignalRepository<InMemoryStore, OsRng>,
    pub(crate) registration_id: u32,
    identity: PublicKey,
    signed: SignedPreKeyRecord,
    keys: Mutex<PublicKeys>,
    inbox: Mutex<VecDeque<Kept>>,
    /// Recently sent messages: (id, chat, content), for retry receipts.
    sent: Mutex<VecDeque<(String, Jid, Message)>>,
    /// Serializes the phone's Signal operations (decrypts and sends).
    pub(crate) busy: tokio::sync::Mutex<()>,
}

impl PhoneSignal {
    pub(crate) fn new(identity: &KeyPair) -> Self {
        let registration_id = generate_registration_id(&mut OsRng);
        let signed = generate_signed_pre_key(identity, 1, unix_now(), &mut OsRng);
        let store = InMemoryStore::new(identity.clone(), registration_id);
        store.add_signed_pre_key(signed.clone());
        let me = Self {
            repo: SignalRepository::new(store, OsRng),
            registration_id,
            identity: identity.public,
            signed,
            keys: Mutex::new(PublicKeys {
                one_time: VecDeque::new(),
                next_id: 1,
            }),
            inbox: Mutex::new(VecDeque::new()),
            sent: Mutex::new(VecDeque::new()),
            busy: tokio::sync::Mutex::new(()),
        };
        me.replenish(&mut me.keys());
        me
    }

    fn keys(&self) -> MutexGuard<'_, PublicKeys> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn inbox_lock(&self) -> MutexGuard<'_, VecDeque<Kept>> {
        self.inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn replenish(&self, keys: &mut PublicKeys) {
        if keys.one_time.len() >= PREKEY_LOW {
            return;
        }
        for _ in 0..PREKEY_BATCH {
            let Some(k) = generate_pre_keys(keys.next_id, 1, &mut OsRng).pop() else {
                break;
            };
            keys.next_id = k.id % PREKEY_ID_WINDOW + 1;
            keys.one_time.push_back((k.id, k.key_pair.public));
            self.repo.store().add_pre_key(k);
        }
    }

    /// How many one-time pre-keys the server still holds for the phone.
    pub(crate) fn prekey_count(&self) -> usize {
        self.keys().one_time.len()
    }

    /// The children of a key-fetch `<user>` entry; consumes one one-time pre-key (a new
    /// batch is generated when few are left).
    pub(crate) fn bundle_nodes(&self) -> Vec<Node> {
        let mut out = vec![
            Node::builder("registration")
                .bytes(self.registration_id.to_be_bytes().to_vec())
                .build(),
            Node::builder("type").bytes(vec![5]).build(),
            Node::builder("identity")
                .bytes(self.identity.as_bytes().to_vec())
                .build(),
            Node::builder("skey")
                .children([
                    Node::builder("id")
                        .bytes(self.signed.id.to_be_bytes()[1..].to_vec())
                        .build(),
                    Node::builder("value")
                        .bytes(self.signed.key_pair.public.as_bytes().to_vec())
                        .build(),
                    Node::builder("signature")
                        .bytes(self.signed.signature.as_bytes().to_vec())
                        .build(),
                ])
                .build(),
        ];
        let mut keys = self.keys();
        if let Some((id, key)) = keys.one_time.pop_front() {
            out.push(
                Node::builder("key")
                    .children([
                        Node::builder("id")
                            .bytes(id.to_be_bytes()[1..].to_vec())
                            .build(),
                        Node::builder("value")
                            .bytes(key.as_bytes().to_vec())
                            .build(),
                    ])
                    .build(),
            );
        }
        self.replenish(&mut keys);
        out
    }

    pub(crate) fn inbox(&self) -> Vec<PhoneMessage> {
        self.inbox_lock().iter().filter_map(Kept::open).collect()
    }

    fn remember_sent(&self, id: &str, chat: &Jid, message: &Message) {
        let mut sent = self
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sent.len() >= MAX_SENT {
            sent.pop_front();
        }
        sent.push_back((id.to_owned(), chat.clone(), message.clone()));
    }

    /// The messages the phone sent recently: (id, chat, content), oldest first.
    pub(crate) fn sent_messages(&self) -> Vec<(String, Jid, Message)> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    fn sent_message(&self, id: &str) -> Option<(Jid, Message)> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(i, _, _)| i == id)
            .map(|(_, c, m)| (c.clone(), m.clone()))
    }

    /// Keeps `m` in the inbox, which holds at most `limit` messages.
    fn record(&self, m: Kept, limit: usize) {
        let mut inbox = self.inbox_lock();
        while inbox.len() >= limit.max(1) {
            inbox.pop_front();
        }
        inbox.push_back(m);
    }
}

/// A message in a phone's inbox, kept as its padded plaintext: a few hundred bytes
/// instead of a decoded `Message` of several KB, which also made dropping the oldest
/// entry, long out of the cache, a visible cost per message. It is decoded again when
/// the inbox is read.
struct Kept {
    from: Jid,
    chat: Jid,
    id: wa_binary::Str,
    padded: Vec<u8>,
    /// The message is the `DeviceSentMessage` inside.
    device_sent: bool,
}

impl Kept {
    /// The message as it was received (the plaintext decoded when it was kept).
    fn open(&self) -> Option<PhoneMessage> {
        let mut m = decode_plain(&self.padded)?;
        // Receiving took any `DeviceSentMessage` out of the message (one without a
        // usable destination is kept as the rest of the message).
        let dsm = m.device_sent_message.take();
        let message = if self.device_sent { *dsm?.message? } else { m };
        Some(PhoneMessage {
            from: self.from.clone(),
            chat: self.chat.clone(),
            id: self.id.to_string(),
            message: Arc::new(message),
        })
    }
}

pub(crate) fn phone_signal(shared: &Shared, phone: &str) -> Option<Arc<PhoneSignal>> {
    shared
        .state
        .lock()
        .accounts
        .get(phone)
        .map(|a| a.signal.clone())
}

/// Most stanzas a phone worker takes from its queue at once.
const PHONE_BATCH: usize = 32;

/// Most message ids one merged phone receipt names.
const MERGED_RECEIPT_IDS: usize = 64;

/// Processes the stanzas routed to phones, in order, until the server is gone. The
/// receipts for the messages it finds queued together leave after them, merged as a
/// phone answering a backlog writes them (see [`Receipts`]).
pub(crate) async fn worker(shared: Weak<Shared>, mut rx: mpsc::Receiver<(String, Node)>) {
    let mut batch = Vec::with_capacity(PHONE_BATCH);
    while rx.recv_many(&mut batch, PHONE_BATCH).await > 0 {
        let Some(shared) = shared.upgrade() else {
            break;
        };
        let taken = batch.len() as u64;
        let mut receipts = Receipts::default();
        for (phone, node) in batch.drain(..) {
            match node.tag() {
                "message" => {
                    if let Some(receipt) = receive_message(&shared, &phone, &node).await {
                        receipts.add(phone, receipt);
                    }
                }
                "receipt" if node.attr_opt::<&str>("type").ok().flatten() == Some("retry") => {
                    // The answer to a retry follows the receipts of what came before it.
                    receipts.route(&shared);
                    resend(&shared, &phone, &node).await;
                }
                // Other receipts and notifications need nothing from the phone: they are
                // not queued for it, so there is nothing to acknowledge.
                _ => {}
            }
        }
        receipts.route(&shared);
        shared.phone_pending.fetch_sub(taken, Ordering::AcqRel);
    }
}

/// The receipts of the messages a phone worker took at once: a phone's receipts that
/// differ only in their id (the same chat, sender and type, no content) become one, the
/// first id in `id` and the others as `<list><item id/></list>`, each id once, at most
/// [`MERGED_RECEIPT_IDS`] ids each. Retry receipts carry content and stay alone.
#[derive(Default)]
struct Receipts(Vec<(String, Node, Vec<Node>)>);

impl Receipts {
    fn add(&mut self, phone: String, receipt: Node) {
        let id = receipt.get_attr("id").cloned();
        let joins = |(p, first, items): &&mut (String, Node, Vec<Node>)| {
            *p == phone
                && items.len() + 1 < MERGED_RECEIPT_IDS
                && matches!(first.content, wa_binary::Content::None)
                && matches!(receipt.content, wa_binary::Content::None)
                && first.get_attr("id").is_some()
                && first
                    .attrs
                    .iter()
                    .filter(|(k, _)| k.as_str() != "id")
                    .eq(receipt.attrs.iter().filter(|(k, _)| k.as_str() != "id"))
        };
        match (id, self.0.iter_mut().find(joins)) {
            // A message delivered twice is named once.
            (Some(id), Some((_, first, items)))
                if first.get_attr("id") == Some(&id)
                    || items.iter().any(|i| i.get_attr("id") == Some(&id)) => {}
            (Some(id), Some((_, _, items))) => {
                items.push(Node::builder("item").attr("id", id).build());
            }
            _ => self.0.push((phone, receipt, Vec::new())),
        }
    }

    /// The merged receipts, each with its phone, in the order each was first added.
    fn take(&mut self) -> Vec<(String, Node)> {
        self.0
            .drain(..)
            .map(|(phone, mut receipt, items)| {
                if !items.is_empty() {
                    receipt.content = wa_binary::Content::Nodes(vec![
                        Node::builder("list").children(items).build(),
                    ]);
                }
                (phone, receipt)
            })
            .collect()
    }

    /// Routes what was added, in the order each receipt was first added.
    fn route(&mut self, shared: &Arc<Shared>) {
        for (phone, receipt) in self.take() {
            let me = Jid::with_device(wa_binary::Str::copy_from(&phone), Server::Pn, 0);
            route::route_receipt(shared, &me, &receipt);
        }
    }
}

/// Whether a decrypted message carries nothing but key material (a sender-key
/// distribution, possibly with the message secret).
fn only_key_material(m: &mut Message) -> bool {
    // The two fields are set aside rather than the message cloned (it is several KB).
    let skdm = m.sender_key_distribution_message.take();
    let context = m.message_context_info.take();
    let only = *m == Message::default();
    m.sender_key_distribution_message = skdm;
    m.message_context_info = context;
    only
}

fn decode_plain(padded: &[u8]) -> Option<Message> {
    let plain = unpad_message(padded).ok()?;
    Message::decode(plain).ok()
}

/// Opens a message for `phone`; returns the receipt that answers it (delivery, or retry
/// when it could not be opened).
async fn receive_message(shared: &Arc<Shared>, phone: &str, node: &Node) -> Option<Node> {
    let signal = phone_signal(shared, phone)?;
    let (Some(from), Some(id)) = (
        node.attr_opt::<Jid>("from").ok().flatten(),
        node.attr_opt::<wa_binary::Str>("id").ok().flatten(),
    ) else {
        return None;
    };
    let participant = node.attr_opt::<Jid>("participant").ok().flatten();
    // A status update is opened like a group message (sender key named
    // `status@broadcast`).
    let group = (from.is_group() || from.is_status_broadcast()).then(|| from.clone());
    let author = if group.is_some() {
        participant.clone()?
    } else {
        from.clone()
    };
    let _busy = signal.busy.lock().await;
    let mut content: Option<Arc<Message>> = None;
    let mut failed = false;
    for enc in node.children_by_tag("enc").take(MAX_ENCS) {
        let kind = enc
            .attr_opt::<&str>("type")
            .ok()
            .flatten()
            .and_then(CiphertextType::from_name);
        let bytes = enc.content_bytes().unwrap_or_default();
        let padded = match (kind, &group) {
            (Some(CiphertextType::Skmsg), Some(g)) => signal
                .repo
                .decrypt_group_message(&g.to_string(), &author, bytes)
                .await
                .ok(),
            (Some(k @ (CiphertextType::Pkmsg | CiphertextType::Msg)), _) => {
                signal.repo.decrypt_message(&author, k, bytes).await.ok()
            }
            _ => None,
        };
        let Some((padded, mut msg)) = padded.and_then(|p| decode_plain(&p).map(|m| (p, m))) else {
            failed = true;
            continue;
        };
        if let (Some(g), Some(skdm)) = (&group, &msg.sender_key_distribution_message)
            && let Some(dist) = &skdm.axolotl_sender_key_distribution_message
        {
            let _ = signal
                .repo
                .process_sender_key_distribution(&g.to_string(), &author, dist)
                .await;
        }
        if let Some(dsm) = msg.device_sent_message.take() {
            let dest = dsm
                .destination_jid
                .as_deref()
                .and_then(|d| d.parse::<Jid>().ok());
            if let (Some(inner), Some(dest)) = (dsm.message, dest) {
                signal.record(
                    Kept {
                        from: author.clone(),
                        chat: dest,
                        id: id.clone(),
                        padded,
                        device_sent: true,
                    },
                    shared.config.phone_inbox,
                );
                content = Some(Arc::from(inner));
                continue;
            }
        }
        if !only_key_material(&mut msg) {
            signal.record(
                Kept {
                    from: author.clone(),
                    chat: group.clone().unwrap_or_else(|| author.to_non_ad()),
                    id: id.clone(),
                    padded,
                    device_sent: false,
                },
                shared.config.phone_inbox,
            );
            content = Some(Arc::new(msg));
        } else if content.is_none() {
            content = Some(Arc::new(msg));
        }
    }
    drop(_busy);
    if let Some(m) = &content {
        crate::appstate::phone_received(shared, phone, &author, &id, m).await;
    }
    let me = Jid::with_device(wa_binary::Str::copy_from(phone), Server::Pn, 0);
    let chat = group.clone().unwrap_or_else(|| author.to_non_ad());
    let mut receipt = Node::builder("receipt")
        .attr("id", id.clone())
        .attr("to", chat);
    if group.is_some() {
        receipt = receipt.attr("participant", author.clone());
    }
    let receipt = if failed || content.is_none() {
        receipt
            .attr("type", "retry")
            .children([
                Node::builder("retry")
                    .attr("count", "1")
                    .attr("id", id)
                    .attr("t", unix_now())
                    .attr("v", "1")
                    .build(),
                Node::builder("registration")
                    .bytes(signal.registration_id.to_be_bytes().to_vec())
                    .build(),
            ])
            .build()
    } else {
        if author.user == me.user && group.is_none() {
            // Our own message to someone else: the chat is the stanza's `recipient`.
            receipt = receipt.attr("type", "sender").attr_opt(
                "recipient",
                node.attr_opt::<Jid>("recipient").ok().flatten(),
            );
        }
        receipt.build()
    };
    Some(receipt)
}

/// Answers a retry receipt for a message the phone sent: a fresh session with the
/// device that asked (from the keys the receipt carries, as phones do, else from the
/// server's bundle for it), and the message again, to that device only, with the same
/// id.
async fn resend(shared: &Arc<Shared>, phone: &str, receipt: &Node) {
    let Some(signal) = phone_signal(shared, phone) else {
        return;
    };
    let Some(id) = receipt.attr_opt::<String>("id").ok().flatten() else {
        return;
    };
    let from = receipt.attr_opt::<Jid>("from").ok().flatten();
    let participant = receipt.attr_opt::<Jid>("participant").ok().flatten();
    let Some(device) = (if from.as_ref().is_some_and(Jid::is_group) {
        participant
    } else {
        from
    }) else {
        return;
    };
    let count = receipt
        .child("retry")
        .and_then(|r| r.attr_opt::<u32>("count").ok().flatten())
        .unwrap_or(1);
    if count > MAX_RETRIES {
        return;
    }
    let Some((chat, message)) = signal.sent_message(&id) else {
        return;
    };
    let me = Jid::with_device(phone.to_owned(), Server::Pn, 0);
    let plain = if chat.is_group() {
        // The content goes pairwise, with our sender key for later messages.
        let skdm = signal
            .repo
            .sender_key_distribution_message(&chat.to_string(), &me)
            .await
            .ok();
        let mut m = message;
        m.sender_key_distribution_message = skdm.map(|d| SenderKeyDistributionMessage {
            group_id: Some(chat.to_string()),
            axolotl_sender_key_distribution_message: Some(d),
            ..Default::default()
        });
        m
    } else if device.user.as_str() == phone {
        Message {
            device_sent_message: Some(Box::new(DeviceSentMessage {
                destination_jid: Some(chat.to_string()),
                message: Some(Box::new(message)),
                ..Default::default()
            })),
            ..Default::default()
        }
    } else {
        message
    };
    let ty = stanza_type(&plain);
    let enc = {
        let _busy = signal.busy.lock().await;
        let _ = signal
            .repo
            .delete_session(std::slice::from_ref(&device))
            .await;
        let from_receipt = match receipt_bundle(receipt, &device) {
            Some(bundle) => signal
                .repo
                .inject_e2e_session(&device, &bundle)
                .await
                .is_ok(),
            None => false,
        };
        if !from_receipt && !ensure_session(shared, &signal, &device).await {
            return;
        }
        match signal
            .repo
            .encrypt_message(&device, &pad_message(&plain.encode_to_vec(), &mut OsRng))
            .await
        {
            Ok(e) => e,
            Err(_) => return,
        }
    };
    let stanza = Node::builder("message")
        .attr("id", id)
        .attr("to", chat)
        .attr("type", ty)
        .children([Node::builder("participants")
            .children([Node::builder("to")
                .attr("jid", device)
                .children([Node::builder("enc")
                    .attr("v", "2")
                    .attr("type", enc.kind.as_str())
                    .attr("count", count.to_string())
                    .bytes(Bytes::from(enc.ciphertext))
                    .build()])
                .build()])
            .build()])
        .build();
    route::route_message(shared, &me, &stanza);
}

/// The `type` attribute of a message stanza for this content.
fn stanza_type(m: &Message) -> &'static str {
    if m.reaction_message.is_some() {
        "reaction"
    } else if m.poll_creation_message.is_some() {
        "poll"
    } else if m.image_message.is_some()
        || m.video_message.is_some()
        || m.audio_message.is_some()
        || m.document_message.is_some()
        || m.sticker_message.is_some()
    {
        "media"
    } else {
        "text"
    }
}

/// A fresh message id in the shape clients use (`3EB0` + 18 hex digits).
pub(crate) fn message_id() -> String {
    let mut b = [0u8; 9];
    OsRng.fill_bytes(&mut b);
    format!("3EB0{}", hex::encode_upper(b))
}

/// Makes sure the phone has a session with `device`, building one from the server's
/// bundle for it when needed. False when the device has no usable bundle.
/// The pre-key bundle a retry receipt carries (`<registration>` and `<keys>`), if any.
fn receipt_bundle(receipt: &Node, device: &Jid) -> Option<PreKeyBundle> {
    let keys = receipt.child("keys")?;
    let mut children = vec![receipt.child("registration")?.clone()];
    children.extend(
        keys.children()
            .iter()
            .filter(|c| matches!(c.tag(), "type" | "identity" | "key" | "skey"))
            .cloned(),
    );
    let user = Node::builder("user")
        .attr("jid", device.clone())
        .children(children)
        .build();
    PreKeyBundle::from_user_node(&user).ok().map(|(_, b)| b)
}

pub(crate) async fn ensure_session(shared: &Shared, signal: &PhoneSignal, device: &Jid) -> bool {
    if signal.repo.has_session(device).await.unwrap_or(false) {
        return true;
    }
    let node = {
        let mut st = shared.state.lock();
        route::bundle_node(&mut st, device)
    };
    let Ok((_, bundle)) = PreKeyBundle::from_user_node(&node) else {
        return false;
    };
    signal
        .repo
        .inject_e2e_session(device, &bundle)
        .await
        .is_ok()
}

/// Encrypts `message` from `phone`'s phone to every device of `to` and to the phone's own
/// companions (wrapped in a `DeviceSentMessage`) and routes it as sent by device 0.
pub(crate) async fn phone_send(
    shared: &Shared,
    phone: &str,
    to: &Jid,
    message: Message,
) -> Result<String, Error> {
    let signal =
        phone_signal(shared, phone).ok_or_else(|| Error::UnknownAccount(phone.to_owned()))?;
    if to.is_group() {
        return phone_send_group(shared, phone, &signal, to, message).await;
    }
    let (to_user, peer_devices, own_devices) = {
        let st = shared.state.lock();
        let to_user = route::resolve_user(&st, to)
            .ok_or_else(|| Error::UnknownAccount(to.user.as_str().to_owned()))?;
        // A note to self goes to the own companions only (as DeviceSentMessage).
        let peers = if to_user.user.as_str() == phone {
            Vec::new()
        } else {
            route::user_devices(&st, to_user.user.as_str())
        };
        let own: Vec<Jid> = route::user_devices(&st, phone)
            .into_iter()
            .filter(|d| d.device != 0)
            .collect();
        (to_user, peers, own)
    };
    let me = Jid::with_device(phone.to_owned(), Server::Pn, 0);
    let ty = stanza_type(&message);
    let plain = pad_message(&message.encode_to_vec(), &mut OsRng);
    let id = message_id();
    signal.remember_sent(&id, &to_user, &message);
    let dsm = Message {
        device_sent_message: Some(Box::new(DeviceSentMessage {
            destination_jid: Some(to_user.to_string()),
            message: Some(Box::new(message)),
            ..Default::default()
        })),
        ..Default::default()
    };
    let dsm_plain = pad_message(&dsm.encode_to_vec(), &mut OsRng);
    let mut tos = Vec::new();
    {
        let _busy = signal.busy.lock().await;
        let targets = peer_devices
            .iter()
            .map(|d| (d, &plain))
            .chain(own_devices.iter().map(|d| (d, &dsm_plain)));
        for (device, pt) in targets {
            if *device == me || !ensure_session(shared, &signal, device).await {
                continue;
            }
            let Ok(enc) = signal.repo.encrypt_message(device, pt).await else {
                continue;
            };
            tos.push(
                Node::builder("to")
                    .attr("jid", device.clone())
                    .children([Node::builder("enc")
                        .attr("v", "2")
                        .attr("type", enc.kind.as_str())
                        .bytes(Bytes::from(enc.ciphertext))
                        .build()])
                    .build(),
            );
        }
    }
    let stanza = Node::builder("message")
        .attr("id", id.clone())
        .attr("to", to_user)
        .attr("type", ty)
        .children([Node::builder("participants").children(tos).build()])
        .build();
    let ack = route::route_message(shared, &me, &stanza);
    match ack.attr_opt::<String>("error").ok().flatten() {
        Some(code) => Err(Error::Rejected(format!(
            "server refused the message: {code}"
        ))),
        None => Ok(id),
    }
}

/// Sends `message` from `phone`'s phone to one of its own companion devices only
/// (`category="peer"`, not wrapped in a `DeviceSentMessage`), as the phone sends protocol
/// messages such as history-sync notifications. Returns the message id.
pub(crate) async fn phone_send_peer(
    shared: &Shared,
    phone: &str,
    device: &Jid,
    message: Message,
) -> Result<String, Error> {
    let signal =
        phone_signal(shared, phone).ok_or_else(|| Error::UnknownAccount(phone.to_owned()))?;
    if device.user.as_str() != phone || device.device == 0 {
        return Err(Error::Rejected(format!(
            "{device} is not a companion of {phone}"
        )));
    }
    let me = Jid::with_device(phone.to_owned(), Server::Pn, 0);
    let plain = pad_message(&message.encode_to_vec(), &mut OsRng);
    let enc = {
        let _busy = signal.busy.lock().await;
        if !ensure_session(shared, &signal, device).await {
            return Err(Error::Rejected(format!(
                "no session possible with {device}"
            )));
        }
        signal
            .repo
            .encrypt_message(device, &plain)
            .await
            .map_err(|e| Error::Rejected(format!("encryption: {e}")))?
    };
    let id = message_id();
    let stanza = Node::builder("message")
        .attr("id", id.clone())
        .attr("to", device.clone())
        .attr("type", "text")
        .attr("category", "peer")
        .children([Node::builder("enc")
            .attr("v", "2")
            .attr("type", enc.kind.as_str())
            .bytes(Bytes::from(enc.ciphertext))
            .build()])
        .build();
    let ack = route::route_message(shared, &me, &stanza);
    match ack.attr_opt::<String>("error").ok().flatten() {
        Some(code) => Err(Error::Rejected(format!(
            "server refused the message: {code}"
        ))),
        None => Ok(id),
    }
}

/// Group send from the phone: one `skmsg` for everyone, and the sender-key distribution
/// message pairwise to every member device.
async fn phone_send_group(
    shared: &Shared,
    phone: &str,
    signal: &PhoneSignal,
    group: &Jid,
    message: Message,
) -> Result<String, Error> {
    let me = Jid::with_device(phone.to_owned(), Server::Pn, 0);
    let devices: Vec<Jid> = {
        let st = shared.state.lock();
        let members = crate::group::members(&st, group)
            .ok_or_else(|| Error::Rejected(format!("no group {group}")))?;
        if !members.iter().any(|m| m == phone) {
            return Err(Error::Rejected(format!("{phone} is not in {group}")));
        }
        members
            .iter()
            .flat_map(|m| route::user_devices(&st, m))
            .filter(|d| *d != me)
            .collect()
    };
    let ty = stanza_type(&message);
    let group_id = group.to_string();
    let id = message_id();
    signal.remember_sent(&id, group, &message);
    let mut tos = Vec::new();
    let skmsg = {
        let _busy = signal.busy.lock().await;
        let plain = pad_message(&message.encode_to_vec(), &mut OsRng);
        let enc = signal
            .repo
            .encrypt_group_message(&group_id, &me, &plain)
            .await
            .map_err(|e| Error::Rejected(format!("group encryption: {e}")))?;
        let skdm = Message {
            sender_key_distribution_message: Some(SenderKeyDistributionMessage {
                group_id: Some(group_id.clone()),
                axolotl_sender_key_distribution_message: Some(enc.sender_key_distribution_message),
                ..Default::default()
            }),
            ..Default::default()
        };
        let skdm_plain = pad_message(&skdm.encode_to_vec(), &mut OsRng);
        for device in &devices {
            if !ensure_session(shared, signal, device).await {
                continue;
            }
            let Ok(e) = signal.repo.encrypt_message(device, &skdm_plain).await else {
                continue;
            };
            tos.push(
                Node::builder("to")
                    .attr("jid", device.clone())
                    .children([Node::builder("enc")
                        .attr("v", "2")
                        .attr("type", e.kind.as_str())
                        .bytes(Bytes::from(e.ciphertext))
                        .build()])
                    .build(),
            );
        }
        enc.ciphertext
    };
    let stanza = Node::builder("message")
        .attr("id", id.clone())
        .attr("to", group.clone())
        .attr("type", ty)
        .attr("addressing_mode", "pn")
        .attr("phash", crate::group::participant_hash(&devices))
        .children([
            Node::builder("participants").children(tos).build(),
            Node::builder("enc")
                .attr("v", "2")
                .attr("type", "skmsg")
                .bytes(Bytes::from(skmsg))
                .build(),
        ])
        .build();
    let ack = route::route_message(shared, &me, &stanza);
    match ack.attr_opt::<String>("error").ok().flatten() {
        Some(code) => Err(Error::Rejected(format!(
            "server refused the message: {code}"
        ))),
        None => Ok(id),
    }
}

/// The phone creates a group with these participants; returns its JID.
pub(crate) fn phone_create_group(
    shared: &Shared,
    phone: &str,
    subject: &str,
    participants: &[Jid],
) -> Result<Jid, Error> {
    if phone_signal(shared, phone).is_none() {
        return Err(Error::UnknownAccount(phone.to_owned()));
    }
    let me = Jid::with_device(phone.to_owned(), Server::Pn, 0);
    let req = Node::builder("iq")
        .attr("to", Jid::new("", Server::Group))
        .children([Node::builder("create")
            .attr("subject", subject.to_owned())
            .children(
                participants
                    .iter()
                    .map(|p| Node::builder("participant").attr("jid", p.clone()).build()),
            )
            .build()])
        .build();
    let reply = crate::group::iq(shared, &me, "phone", "set", &req);
    reply
        .child("group")
        .and_then(|g| g.attr_opt::<String>("id").ok().flatten())
        .map(Jid::group)
        .ok_or_else(|| Error::Rejected("group creation refused".into()))
}

/// The phone sends a read receipt for a message it received.
pub(crate) fn phone_mark_read(shared: &Shared, phone: &str, m: &PhoneMessage) -> Result<(), Error> {
    if phone_signal(shared, phone).is_none() {
        return Err(Error::UnknownAccount(phone.to_owned()));
    }
    let me = Jid::with_device(phone.to_owned(), Server::Pn, 0);
    let group = m.chat.is_group();
    let receipt = Node::builder("receipt")
        .attr("id", m.id.clone())
        .attr(
            "to",
            if group {
                m.chat.clone()
            } else {
                m.from.clone()
            },
        )
        .attr_opt("participant", group.then(|| m.from.clone()))
        .attr("type", "read")
        .build();
    route::route_receipt(shared, &me, &receipt)
        .map(|_| ())
        .ok_or_else(|| Error::Rejected("the receipt names no known user".into()))
}

/// The phone's inbox.
pub(crate) fn inbox(shared: &Shared, phone: &str) -> Vec<PhoneMessage> {
    phone_signal(shared, phone).map_or_else(Vec::new, |s| s.inbox())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phones_receipts_for_one_chat_and_type_merge() {
        let receipt = |id: &str, to: &str, kind: Option<&str>| {
            Node::builder("receipt")
                .attr("id", id.to_owned())
                .attr("to", to.parse::<Jid>().unwrap())
                .attr_opt("type", kind.map(str::to_owned))
                .build()
        };
        let (a, b) = ("15550000001@s.whatsapp.net", "15550000003@s.whatsapp.net");
        let retry = Node::builder("receipt")
            .attr("id", "R1")
            .attr("to", a.parse::<Jid>().unwrap())
            .attr("type", "retry")
            .children([Node::new("retry")])
            .build();
        let mut receipts = Receipts::default();
        for (phone, r) in [
            ("1", receipt("A1", a, None)),
            ("1", receipt("B1", b, None)),
            ("1", receipt("A2", a, None)),
            ("1", receipt("A1", a, None)),
            ("2", receipt("A3", a, None)),
            ("1", receipt("S1", a, Some("sender"))),
            ("1", retry.clone()),
            ("1", receipt("A4", a, None)),
        ] {
            receipts.add(phone.to_owned(), r);
        }
        let ids = |n: &Node| {
            let mut ids = vec![n.get_attr("id").unwrap().to_string()];
            if let Some(list) = n.child("list") {
                ids.extend(
                    list.children_by_tag("item")
                        .map(|i| i.get_attr("id").unwrap().to_string()),
                );
            }
            ids
        };
        let out = receipts.take();
        let got: Vec<(&str, Vec<String>)> = out.iter().map(|(p, n)| (p.as_str(), ids(n))).collect();
        assert_eq!(
            got,
            [
                ("1", vec!["A1".to_owned(), "A2".into(), "A4".into()]),
                ("1", vec!["B1".into()]),
                ("2", vec!["A3".into()]),
                ("1", vec!["S1".into()]),
                ("1", vec!["R1".into()]),
            ]
        );
        assert_eq!(out[4].1, retry);
        assert!(receipts.take().is_empty());

        // At most MERGED_RECEIPT_IDS ids in one receipt.
        for i in 0..100 {
            receipts.add("1".into(), receipt(&format!("M{i}"), a, None));
        }
        let sizes: Vec<usize> = receipts.take().iter().map(|(_, n)| ids(n).len()).collect();
        assert_eq!(sizes, [MERGED_RECEIPT_IDS, 100 - MERGED_RECEIPT_IDS]);
    }

    #[test]
    fn an_inbox_entry_opens_to_the_message_the_phone_received() {
        let text = |t: &str| Message {
            conversation: Some(t.to_owned()),
            ..Default::default()
        };
        let kept = |m: &Message, device_sent: bool| Kept {
            from: Jid::with_device("15550000001", Server::Pn, 2),
            chat: Jid::pn("15550000002"),
            id: wa_binary::Str::from_static("3EB0AA"),
            padded: pad_message(&m.encode_to_vec(), &mut OsRng),
            device_sent,
        };
        let plain = kept(&text("hi"), false).open().expect("opens");
        assert_eq!(*plain.message, text("hi"));
        assert_eq!(plain.id, "3EB0AA");
        assert_eq!(plain.from, Jid::with_device("15550000001", Server::Pn, 2));

        // One of the account's own companions sent it elsewhere: the inner message.
        let wrapped = Message {
            device_sent_message: Some(Box::new(DeviceSentMessage {
                destination_jid: Some("15550000003@s.whatsapp.net".to_owned()),
                message: Some(Box::new(text("to three"))),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(
            *kept(&wrapped, true).open().unwrap().message,
            text("to three")
        );

        // A wrapper without a usable destination was kept as the rest of the message,
        // without the wrapper, as receiving left it.
        let mut stray = text("rest");
        stray.device_sent_message = Some(Box::new(DeviceSentMessage {
            message: Some(Box::new(text("inner"))),
            ..Default::default()
        }));
        assert_eq!(*kept(&stray, false).open().unwrap().message, text("rest"));
    }

    fn key_id(nodes: &[Node]) -> Option<u32> {
        let id = nodes
            .iter()
            .find(|n| n.tag() == "key")?
            .child("id")?
            .content_bytes()?;
        Some(id.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)))
    }

    #[test]
    fn phone_pre_keys_are_replenished_within_a_bounded_id_window() {
        let identity = KeyPair::generate(&mut OsRng);
        let phone = PhoneSignal::new(&identity);
        let mut seen = std::collections::HashSet::new();
        for i in 0..5000u32 {
            let nodes = phone.bundle_nodes();
            let id = key_id(&nodes).expect("a one-time key every time");
            assert!((1..=PREKEY_ID_WINDOW).contains(&id), "{id}");
            if i < PREKEY_ID_WINDOW {
                assert!(
                    seen.insert(id),
                    "id {id} handed out twice within one window"
                );
            }
            assert!(phone.prekey_count() >= PREKEY_LOW);
        }
        // Every private key behind an id in the window is held, nothing beyond it.
        assert!(phone.repo.store().has_pre_key(1));
        assert!(!phone.repo.store().has_pre_key(PREKEY_ID_WINDOW + 1));
    }
}
