//! Routing of messages, receipts and notifications to devices, with a delivery queue
//! per companion device (MSG_SPEC: 1:1 send, receipts, offline delivery).
//!
//! A stanza for a companion is queued first and then handed to its live connection (if
//! any); it stays queued until that device acks it (or sends a receipt for a message).
//! A stanza for a phone (device 0) goes to that phone's worker (`e2e.rs`) instead.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use wa_binary::{Jid, Node, Server, Str};

use crate::sim::{Shared, unix_now};
use crate::state::Inner;

/// The hasher of the routing maps (looked up several times per stanza): foldhash,
/// seeded per process, a few times faster than SipHash on short keys.
pub(crate) type FastHash = foldhash::fast::RandomState;

/// Most stanzas queued for one device unless [`SimConfig::queue_limit`](crate::SimConfig)
/// says otherwise; at the bound the oldest is dropped (and counted in
/// [`Sim::dropped_stanzas`](crate::Sim::dropped_stanzas)).
pub(crate) const MAX_QUEUE: usize = 10_000;
/// Most payload bytes queued per device; the oldest stanzas go first beyond it.
pub(crate) const MAX_QUEUE_BYTES: usize = 64 << 20;
/// Deepest node tree walked when a stanza is queued (stanzas are a few levels deep).
const MAX_QUEUED_DEPTH: usize = 16;
/// Most `<to>` children looked at in one message.
pub(crate) const MAX_TARGETS: usize = 2048;
/// How many recent message ids the server remembers the sending device of.
const MAX_SENDERS: usize = 10_000;
/// Longest message id accepted.
const MAX_ID_LEN: usize = 128;
/// Most ids taken from a receipt's `<list>`.
const MAX_LIST_IDS: usize = 256;
/// Longest push name kept (from `<presence name>`), in bytes.
pub(crate) const MAX_PUSH_NAME: usize = 128;
/// Longest `type` / `edit` attribute copied into a delivered stanza.
const MAX_ATTR_LEN: usize = 32;

/// What kind of stanza a queue entry is (which ack removes it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Class {
    Message,
    Receipt,
    Notification,
    /// A `<call>` stanza (offer, terminate, ...).
    Call,
}

impl Class {
    fn from_tag(tag: &str) -> Option<Class> {
        match tag {
            "message" => Some(Class::Message),
            "receipt" => Some(Class::Receipt),
            "notification" => Some(Class::Notification),
            "call" => Some(Class::Call),
            _ => None,
        }
    }

    pub(crate) fn of(node: &Node) -> Option<Class> {
        Self::from_tag(node.tag())
    }
}

/// One stanza waiting for a device's ack.
pub(crate) struct Queued {
    class: Class,
    id: Str,
    from: Option<Jid>,
    participant: Option<Jid>,
    /// The receipt type (`None`: delivered, and for other classes).
    kind: Option<Str>,
    /// Shared with the connection writing it, so handing it out copies nothing.
    node: Arc<Node>,
    /// The payload bytes it holds (see [`compact`]).
    bytes: usize,
    /// The connection that was last given this stanza.
    sent_on: Option<u64>,
}

/// `node` with its byte contents copied out of the frame they were decoded from (a
/// decoded node shares its frame's buffer, so a small queued stanza would keep a whole
/// large frame alive), and how many payload bytes it holds. Trees deeper than
/// [`MAX_QUEUED_DEPTH`] lose what lies below. The tag and attributes are moved, not
/// copied.
fn compact(node: Node, depth: usize) -> (Node, usize) {
    let Node {
        tag,
        attrs,
        content,
    } = node;
    let mut size = tag.len() + 16 * attrs.len();
    let content = match content {
        wa_binary::Content::Bytes(b) => {
            size += b.len();
            wa_binary::Content::Bytes(bytes::Bytes::copy_from_slice(&b))
        }
        wa_binary::Content::Nodes(children) if depth < MAX_QUEUED_DEPTH => {
            let mut kids = Vec::with_capacity(children.len());
            for c in children {
                let (k, n) = compact(c, depth + 1);
                size += n;
                kids.push(k);
            }
            wa_binary::Content::Nodes(kids)
        }
        wa_binary::Content::Nodes(_) => wa_binary::Content::Nodes(Vec::new()),
        other => other,
    };
    (
        Node {
            tag,
            attrs,
            content,
        },
        size,
    )
}

/// A device as a queue key: (user, device id) of its PN JID. A user id is short enough
/// to be kept inline in its `Str`, so making a key allocates nothing.
type DeviceKey = (Str, u16);

fn key(device: &Jid) -> DeviceKey {
    (device.user.clone(), device.device)
}

/// The arrival numbers of a device's queued entries with one id: almost always one.
#[derive(Debug)]
enum Seqs {
    One(u64),
    Many(Vec<u64>),
}

impl Seqs {
    fn as_slice(&self) -> &[u64] {
        match self {
            Seqs::One(s) => std::slice::from_ref(s),
            Seqs::Many(v) => v,
        }
    }

    fn push(&mut self, seq: u64) {
        match self {
            Seqs::One(first) => *self = Seqs::Many(vec![*first, seq]),
            Seqs::Many(v) => v.push(seq),
        }
    }

    /// Drops `seq`; whether none is left.
    fn remove(&mut self, seq: u64) -> bool {
        match self {
            Seqs::One(s) => *s == seq,
            Seqs::Many(v) => {
                v.retain(|&s| s != seq);
                v.is_empty()
            }
        }
    }
}

/// One device's queue: entries by arrival number, indexed by stanza id, so an ack
/// settles in O(log n) and a flush starts where the last one stopped.
#[derive(Default)]
struct DeviceQueue {
    entries: BTreeMap<u64, Queued>,
    /// Payload bytes of the entries.
    bytes: usize,
    /// Arrival numbers of the entries with each id (usually one).
    by_id: HashMap<Str, Seqs, FastHash>,
    /// The next arrival number.
    next: u64,
    /// `(conn, seq)`: every entry numbered below `seq` has been given to `conn`.
    given: Option<(u64, u64)>,
}

impl DeviceQueue {
    fn insert(&mut self, q: Queued) {
        let seq = self.next;
        self.next += 1;
        match self.by_id.entry(q.id.clone()) {
            Entry::Occupied(mut e) => e.get_mut().push(seq),
            Entry::Vacant(e) => {
                e.insert(Seqs::One(seq));
            }
        }
        self.bytes += q.bytes;
        self.entries.insert(seq, q);
    }

    fn remove(&mut self, seq: u64) -> Option<Queued> {
        let q = self.entries.remove(&seq)?;
        self.bytes -= q.bytes;
        if let Some(seqs) = self.by_id.get_mut(&q.id)
            && seqs.remove(seq)
        {
            self.by_id.remove(&q.id);
        }
        Some(q)
    }

    fn pop_oldest(&mut self) -> Option<Queued> {
        let seq = *self.entries.keys().next()?;
        self.remove(seq)
    }
}

/// Every device's queue.
pub(crate) struct Queues {
    map: HashMap<DeviceKey, DeviceQueue, FastHash>,
    /// Most stanzas per device.
    pub(crate) limit: usize,
    /// Stanzas dropped because a queue (or the phones' queue) was full.
    pub(crate) dropped: u64,
    /// Which device sent each recent message id (for routing retry receipts), oldest
    /// first, at most `MAX_SENDERS`.
    senders: HashMap<Str, Jid, FastHash>,
    sender_order: VecDeque<Str>,
}

/// The stanzas a login delivers, and the preview counts.
pub(crate) struct Offline {
    pub(crate) nodes: Vec<Node>,
    pub(crate) messages: usize,
    pub(crate) receipts: usize,
    pub(crate) notifications: usize,
    pub(crate) calls: usize,
}

fn same_chat(a: &Jid, b: &Jid) -> bool {
    a.user == b.user && a.server.normalized() == b.server.normalized()
}

/// Whether the address an ack names (`acked`, copied from the stanza's `from` or
/// `participant`) is the one a queued stanza carries: the same user, and the same device
/// when the ack names one (device 0 is written without a device part, so it matches the
/// user).
fn same_address(queued: &Jid, acked: &Jid) -> bool {
    same_chat(queued, acked) && (acked.device == 0 || queued.device == acked.device)
}

impl Default for Queues {
    fn default() -> Self {
        Self {
            map: HashMap::default(),
            limit: MAX_QUEUE,
            dropped: 0,
            senders: HashMap::default(),
            sender_order: VecDeque::new(),
        }
    }
}

impl Queues {
    fn push(&mut self, device: &Jid, node: Node) {
        let Some(class) = Class::of(&node) else {
            return;
        };
        let q = Queued {
            class,
            id: node
                .attr_opt::<Str>("id")
                .ok()
                .flatten()
                .unwrap_or_default(),
            from: node.attr_opt::<Jid>("from").ok().flatten(),
            participant: node.attr_opt::<Jid>("participant").ok().flatten(),
            kind: (class == Class::Receipt)
                .then(|| node.attr_opt::<Str>("type").ok().flatten())
                .flatten(),
            node: Arc::default(),
            bytes: 0,
            sent_on: None,
        };
        let (node, bytes) = compact(node, 0);
        let q = Queued {
            node: Arc::new(node),
            bytes,
            ..q
        };
        let v = self.map.entry(key(device)).or_default();
        while !v.entries.is_empty()
            && (v.entries.len() >= self.limit.max(1) || v.bytes + bytes > MAX_QUEUE_BYTES)
        {
            v.pop_oldest();
            self.dropped += 1;
        }
        v.insert(q);
    }

    /// Up to `max` stanzas not yet given to connection `conn`, oldest first, marked as
    /// given.
    pub(crate) fn unsent(&mut self, device: &Jid, conn: u64, max: usize) -> Vec<Arc<Node>> {
        let Some(v) = self.map.get_mut(&key(device)) else {
            return Vec::new();
        };
        let start = match v.given {
            Some((c, seq)) if c == conn => seq,
            _ => 0,
        };
        let mut out = Vec::new();
        // Every entry up to `upto` has been given to `conn` once this loop is done.
        let mut upto = start;
        for (&seq, q) in v.entries.range_mut(start..) {
            if q.sent_on != Some(conn) {
                if out.len() == max {
                    break;
                }
                q.sent_on = Some(conn);
                out.push(Arc::clone(&q.node));
            }
            upto = seq + 1;
        }
        if out.len() < max {
            upto = upto.max(v.next);
        }
        v.given = Some((conn, upto));
        out
    }

    /// Everything queued for a device that logs in on `conn`, marked `offline="1"`.
    pub(crate) fn login(&mut self, device: &Jid, conn: u64) -> Offline {
        let mut out = Offline {
            nodes: Vec::new(),
            messages: 0,
            receipts: 0,
            notifications: 0,
            calls: 0,
        };
        let Some(v) = self.map.get_mut(&key(device)) else {
            return out;
        };
        v.given = Some((conn, v.next));
        for q in v.entries.values_mut() {
            q.sent_on = Some(conn);
            match q.class {
                Class::Message => out.messages += 1,
                Class::Receipt => out.receipts += 1,
                Class::Notification => out.notifications += 1,
                Class::Call => out.calls += 1,
            }
            let mut n = Node::clone(&q.node);
            n.attrs.insert("offline", "1");
            out.nodes.push(n);
        }
        out
    }

    /// Removes the entries an ack (or receipt) from `device` settles; returns how many.
    fn settle(
        &mut self,
        device: &Jid,
        classes: &[Class],
        ids: &[Str],
        chat: Option<&Jid>,
        participant: Option<&Jid>,
        receipt_type: Option<Option<&str>>,
    ) -> usize {
        let Some(v) = self.map.get_mut(&key(device)) else {
            return 0;
        };
        let mut hits = Vec::new();
        for id in ids {
            for &seq in v.by_id.get(id).map_or(&[][..], Seqs::as_slice) {
                let Some(q) = v.entries.get(&seq) else {
                    continue;
                };
                // Only what the device was given can be settled by it: a copy with the
                // same id that is still waiting to be written stays queued.
                let hit = q.sent_on.is_some()
                    && classes.contains(&q.class)
                    && chat.is_none_or(|c| q.from.as_ref().is_some_and(|f| same_address(f, c)))
                    && participant.is_none_or(|p| {
                        q.participant.as_ref().is_none_or(|qp| same_address(qp, p))
                    })
                    && (q.class != Class::Receipt
                        || receipt_type.is_none_or(|t| q.kind.as_deref() == t));
                if hit {
                    hits.push(seq);
                }
            }
        }
        hits.iter().filter(|&&seq| v.remove(seq).is_some()).count()
    }

    /// Remembers that `device` sent message `id`.
    pub(crate) fn sent(&mut self, id: &str, device: &Jid) {
        let id = Str::copy_from(id);
        if self.senders.insert(id.clone(), device.clone()).is_none() {
            self.sender_order.push_back(id);
            if self.sender_order.len() > MAX_SENDERS
                && let Some(old) = self.sender_order.pop_front()
            {
                self.senders.remove(&old);
            }
        }
    }

    /// The device that sent message `id`, if it is recent.
    pub(crate) fn sender_of(&self, id: &str) -> Option<Jid> {
        self.senders.get(id).cloned()
    }

    /// How many stanzas wait for a device.
    pub(crate) fn len(&self, device: &Jid) -> usize {
        self.map.get(&key(device)).map_or(0, |v| v.entries.len())
    }

    /// How many `<message>` stanzas wait for a device.
    pub(crate) fn messages(&self, device: &Jid) -> usize {
        self.map.get(&key(device)).map_or(0, |v| {
            v.entries
                .values()
                .filter(|q| matches!(q.class, Class::Message))
                .count()
        })
    }

    /// Forgets a removed device's queue.
    pub(crate) fn forget(&mut self, device: &Jid) {
        self.map.remove(&key(device));
    }
}

/// Which of `workers` phone workers serves `phone`: the same one every time (FNV-1a of
/// the number), so a phone's stanzas stay in order.
pub(crate) fn phone_worker(phone: &str, workers: usize) -> usize {
    let hash = phone.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    usize::try_from(hash % workers.max(1) as u64).unwrap_or(0)
}

/// Queues `node` for `device` and wakes its connection, or hands it to its phone's
/// worker for device 0.
pub(crate) fn deliver(shared: &Shared, device: &Jid, node: Node) {
    if device.device == 0 {
        shared.phone_pending.fetch_add(1, Ordering::AcqRel);
        let phone = device.user.as_str();
        let worker = &shared.phone_tx[phone_worker(phone, shared.phone_tx.len())];
        if worker.try_send((phone.to_owned(), node)).is_err() {
            shared.phone_pending.fetch_sub(1, Ordering::AcqRel);
            shared.queues().dropped += 1;
        }
        return;
    }
    shared.queues().push(device, node);
    let conns = shared.conns();
    for c in conns.values() {
        if c.device.as_ref() == Some(device) {
            c.flush.notify_one();
        }
    }
}

/// The user's PN JID (no device) for a PN, LID or bot (`<id>@bot`) JID of a known
/// account.
pub(crate) fn resolve_user(st: &Inner, jid: &Jid) -> Option<Jid> {
    match jid.server {
        Server::Bot => st
            .bot_ids
            .get(jid.user.as_str())
            .filter(|phone| st.accounts.contains_key(phone.as_str()))
            .map(|phone| Jid::pn(phone.clone())),
        Server::Pn => st
            .accounts
            .contains_key(jid.user.as_str())
            .then(|| Jid::pn(jid.user.clone())),
        Server::Lid => st
            .accounts
            .values()
            .find(|a| a.lid_user == jid.user.as_str())
            .map(|a| Jid::pn(a.phone.clone())),
        _ => None,
    }
}

/// The PN device JID of an existing device (the phone, or a linked companion).
pub(crate) fn resolve_device(st: &Inner, jid: &Jid) -> Option<Jid> {
    let user = resolve_user(st, jid)?;
    let acct = st.accounts.get(user.user.as_str())?;
    (jid.device == 0 || acct.devices.contains_key(&jid.device))
        .then(|| Jid::with_device(user.user.clone(), Server::Pn, jid.device))
}

/// The push name the sender's account announced.
pub(crate) fn push_name(st: &Inner, sender: &Jid) -> Option<String> {
    st.accounts
        .get(sender.user.as_str())
        .and_then(|a| a.push_name.clone())
}

/// Every device of an account: the phone, then the companions in id order.
pub(crate) fn user_devices(st: &Inner, phone: &str) -> Vec<Jid> {
    let Some(a) = st.accounts.get(phone) else {
        return Vec::new();
    };
    std::iter::once(0)
        .chain(a.devices.keys().copied())
        .map(|d| Jid::with_device(Str::copy_from(&a.phone), Server::Pn, d))
        .collect()
}

/// One `<user jid>` entry of a key-fetch answer: the device's bundle (consuming one
/// one-time pre-key), or a per-user 404 error.
pub(crate) fn bundle_node(st: &mut Inner, jid: &Jid) -> Node {
    let error = || {
        Node::builder("user")
            .attr("jid", jid.clone())
            .children([Node::builder("error")
                .attr("code", "404")
                .attr("text", "item-not-found")
                .build()])
            .build()
    };
    let Some(user) = resolve_user(st, jid) else {
        return error();
    };
    let Some(acct) = st.accounts.get_mut(user.user.as_str()) else {
        return error();
    };
    if jid.device == 0 {
        return Node::builder("user")
            .attr("jid", jid.clone())
            .children(acct.signal.bundle_nodes())
            .build();
    }
    let Some(d) = acct.devices.get_mut(&jid.device) else {
        return error();
    };
    let Some((sid, sval, ssig)) = d.prekeys.signed.clone() else {
        return error();
    };
    let identity = d
        .prekeys
        .identity
        .clone()
        .unwrap_or_else(|| d.identity.as_bytes().to_vec());
    let mut children = vec![
        Node::builder("registration")
            .bytes(
                d.prekeys
                    .registration_id
                    .unwrap_or_default()
                    .to_be_bytes()
                    .to_vec(),
            )
            .build(),
        Node::builder("type").bytes(vec![5]).build(),
        Node::builder("identity").bytes(identity).build(),
        Node::builder("skey")
            .children([
                Node::builder("id")
                    .bytes(sid.to_be_bytes()[1..].to_vec())
                    .build(),
                Node::builder("value").bytes(sval).build(),
                Node::builder("signature").bytes(ssig).build(),
            ])
            .build(),
    ];
    if let Some((id, value)) = d.prekeys.one_time.pop_front() {
        children.push(
            Node::builder("key")
                .children([
                    Node::builder("id")
                        .bytes(id.to_be_bytes()[1..].to_vec())
                        .build(),
                    Node::builder("value").bytes(value).build(),
                ])
                .build(),
        );
    }
    Node::builder("user")
        .attr("jid", jid.clone())
        .children(children)
        .build()
}

/// The attribute `key` when it is present, not empty and short.
pub(crate) fn short_attr(node: &Node, key: &str) -> Option<Str> {
    node.attr_opt::<Str>(key)
        .ok()
        .flatten()
        .filter(|v| !v.is_empty() && v.len() <= MAX_ATTR_LEN)
}

fn stanza_id(node: &Node) -> Option<Str> {
    node.attr_opt::<Str>("id")
        .ok()
        .flatten()
        .filter(|i| !i.is_empty() && i.len() <= MAX_ID_LEN)
}

/// `<ack class id from t [error]>` answering a client's stanza.
pub(crate) fn server_ack(
    class: &'static str,
    id: &str,
    from: Option<Jid>,
    error: Option<u16>,
) -> Node {
    Node::builder("ack")
        .attr("class", class)
        .attr("id", Str::copy_from(id))
        .attr_opt("from", from)
        .attr("t", unix_now())
        .attr_opt("error", error)
        .build()
}

/// A message stanza as delivered to one device.
pub(crate) struct Delivery<'a> {
    pub(crate) from: &'a Jid,
    pub(crate) participant: Option<&'a Jid>,
    pub(crate) id: &'a str,
    pub(crate) t: &'a str,
    pub(crate) ty: &'a str,
    pub(crate) edit: Option<&'a str>,
    pub(crate) recipient: Option<&'a Jid>,
    pub(crate) addressing_mode: Option<&'a str>,
    pub(crate) notify: Option<&'a str>,
}

impl Delivery<'_> {
    pub(crate) fn build(&self, children: Vec<Node>) -> Node {
        Node::builder("message")
            .attr("from", self.from.clone())
            .attr_opt("participant", self.participant.cloned())
            .attr("id", Str::copy_from(self.id))
            .attr("t", Str::copy_from(self.t))
            .attr("type", Str::copy_from(self.ty))
            .attr_opt("edit", self.edit.map(Str::copy_from))
            .attr_opt("recipient", self.recipient.cloned())
            .attr_opt("addressing_mode", self.addressing_mode.map(Str::copy_from))
            .attr_opt("notify", self.notify.map(Str::copy_from))
            .children(children)
            .build()
    }
}

/// Routes a client's (or a phone's) `<message>` from the device `sender`; returns the
/// server's ack for the sender. The reporting token of a message the server accepted is
/// kept.
pub(crate) fn route_message(shared: &Shared, sender: &Jid, node: &Node) -> Node {
    let ack = route_message_inner(shared, sender, node);
    if ack.get_attr("error").is_none()
        && let (Some(id), Some(token)) = (stanza_id(node), crate::reporting::token_of(node))
    {
        shared.reporting().record(&sender.user, &id, token);
    }
    ack
}

fn route_message_inner(shared: &Shared, sender: &Jid, node: &Node) -> Node {
    let Some(id) = stanza_id(node) else {
        return server_ack("message", "", None, Some(400));
    };
    let Some(to) = node.attr_opt::<Jid>("to").ok().flatten() else {
        return server_ack("message", &id, None, Some(400));
    };
    if to.is_group() {
        return crate::group::route_group_message(shared, sender, node, &id, &to);
    }
    if to.is_status_broadcast() {
        return route_status(shared, sender, node, &id, &to);
    }
    if to.is_newsletter() {
        return crate::newsletter::route_message(shared, sender, node, &id, &to);
    }
    let t = wa_binary::Str::decimal(unix_now().into());
    let ty = short_attr(node, "type").unwrap_or(Str::from_static("text"));
    let edit = short_attr(node, "edit");
    let identity = node.child("device-identity").cloned();
    // (target device, children) pairs, resolved under the state lock.
    let addressing = shared.faults().sender_addressing;
    let (to_user, targets, notify, sender_lid) = {
        let mut st = shared.state.lock();
        let notify = push_name(&st, sender);
        let sender_lid = st
            .accounts
            .get(sender.user.as_str())
            .filter(|_| addressing != crate::fault::SenderAddressing::Pn)
            .map(|a| Jid::with_device(a.lid_user.clone(), Server::Lid, sender.device));
        let Some(to_user) = resolve_user(&st, &to) else {
            return server_ack("message", &id, Some(to), Some(404));
        };
        let tctoken = node.child("tctoken").and_then(Node::bytes).map(|b| &b[..]);
        // Peer messages (to the own phone) are not held to privacy tokens.
        if !st
            .chats
            .tokens
            .admits(sender, &to_user, tctoken, unix_now())
        {
            return server_ack("message", &id, Some(to_user), Some(463));
        }
        let cstoken = node.child("cstoken").and_then(Node::bytes).map(|b| &b[..]);
        st.chats
            .tokens
            .record_cstoken(&sender.user, &to_user.user, cstoken);
        let mut targets: Vec<(Jid, Vec<Node>)> = Vec::new();
        match node.child("participants") {
            Some(p) => {
                for t in p.children_by_tag("to").take(MAX_TARGETS) {
                    let Some(dev) = t
                        .attr_opt::<Jid>("jid")
                        .ok()
                        .flatten()
                        .and_then(|j| resolve_device(&st, &j))
                    else {
                        continue;
                    };
                    let ours = dev.user == to_user.user || dev.user == sender.user;
                    if !ours || dev == *sender || targets.iter().any(|(d, _)| *d == dev) {
                        continue;
                    }
                    targets.push((dev, t.children().to_vec()));
                }
            }
            // A stanza to one device (e.g. category="peer" to the own phone).
            None => {
                let encs: Vec<Node> = node.children_by_tag("enc").cloned().collect();
                if let Some(dev) = resolve_device(&st, &to)
                    && dev != *sender
                    && !encs.is_empty()
                {
                    targets.push((dev, encs));
                }
            }
        }
        (to_user, targets, notify, sender_lid)
    };
    shared.queues().sent(&id, sender);
    // The sender's other devices learn the chat as it was addressed when that was a bot
    // id, which has no phone number of its own to them.
    let chat = if to.server == Server::Bot {
        to.to_non_ad()
    } else {
        to_user.clone()
    };
    for (dev, mut children) in targets {
        let own = dev.user == sender.user && to_user.user != sender.user;
        children.extend(identity.clone());
        // Phones (device 0) keep phone-number addressing.
        let lid = sender_lid.as_ref().filter(|_| dev.device != 0);
        let by_lid = lid.filter(|_| addressing == crate::fault::SenderAddressing::Lid);
        let mut stanza = Delivery {
            from: by_lid.unwrap_or(sender),
            participant: None,
            id: &id,
            t: &t,
            ty: &ty,
            edit: edit.as_deref(),
            recipient: own.then_some(&chat),
            addressing_mode: None,
            notify: notify.as_deref(),
        }
        .build(children);
        match (lid, by_lid) {
            (_, Some(_)) => stanza.attrs.insert("sender_pn", sender.clone()),
            (Some(l), None) => stanza.attrs.insert("sender_lid", l.clone()),
            (None, None) => {}
        }
        deliver(shared, &dev, stanza);
    }
    crate::bot::route_bot_copies(shared, sender, node, &id);
    server_ack("message", &id, Some(to_user), None)
}

/// A status update (`to="status@broadcast"`): delivered to every existing device named
/// in `<participants>` (or, for a resend answering a retry receipt, to the one device in
/// `participant`), with its `<to>` children and then the message's own `<enc>`s,
/// as `<message from="status@broadcast" participant=S:s>`.
fn route_status(shared: &Shared, sender: &Jid, node: &Node, id: &str, to: &Jid) -> Node {
    let t = wa_binary::Str::decimal(unix_now().into());
    let ty = short_attr(node, "type").unwrap_or(Str::from_static("text"));
    let shared_encs: Vec<Node> = node.children_by_tag("enc").take(4).cloned().collect();
    let identity = node.child("device-identity").cloned();
    let (targets, notify) = {
        let st = shared.state.lock();
        let notify = push_name(&st, sender);
        let mut targets: Vec<(Jid, Vec<Node>)> = Vec::new();
        if let Some(p) = node.child("participants") {
            for t in p.children_by_tag("to").take(MAX_TARGETS) {
                let Some(dev) = t
                    .attr_opt::<Jid>("jid")
                    .ok()
                    .flatten()
                    .and_then(|j| resolve_device(&st, &j))
                else {
                    continue;
                };
                if dev != *sender && !targets.iter().any(|(d, _)| *d == dev) {
                    targets.push((dev, t.children().to_vec()));
                }
            }
        } else if let Some(dev) = node
            .attr_opt::<Jid>("participant")
            .ok()
            .flatten()
            .and_then(|p| resolve_device(&st, &p))
            .filter(|d| d != sender)
        {
            // A resend answering one device's retry receipt names it in `participant`.
            targets.push((dev, Vec::new()));
        }
        (targets, notify)
    };
    shared.queues().sent(id, sender);
    for (dev, mut children) in targets {
        children.extend(shared_encs.iter().cloned());
        children.extend(identity.clone());
        let stanza = Delivery {
            from: to,
            participant: Some(sender),
            id,
            t: &t,
            ty: &ty,
            edit: None,
            recipient: None,
            addressing_mode: None,
            notify: notify.as_deref(),
        }
        .build(children);
        deliver(shared, &dev, stanza);
    }
    server_ack("message", id, Some(to.clone()), None)
}

/// The ids a receipt names: its `id` and the `<list><item id/>` entries.
fn receipt_ids(id: &Str, node: &Node) -> Vec<Str> {
    let mut ids = vec![id.clone()];
    if let Some(list) = node.child("list") {
        ids.extend(
            list.children_by_tag("item")
                .take(MAX_LIST_IDS)
                .filter_map(stanza_id),
        );
    }
    ids
}

/// Whether `node` is a companion's request to its own phone to upload a history-sync
/// chunk again: `<receipt type="server-error" category="peer">` to its own user, without
/// the `<rmr>` of a media re-upload request.
pub(crate) fn is_history_reupload(sender: &Jid, node: &Node) -> bool {
    node.tag() == "receipt"
        && short_attr(node, "type").as_deref() == Some("server-error")
        && short_attr(node, "category").as_deref() == Some("peer")
        && node.child("rmr").is_none()
        && node
            .attr_opt::<Jid>("to")
            .ok()
            .flatten()
            .is_some_and(|to| to.user == sender.user)
}

/// Routes a `<receipt>` from the device `sender`; returns the server's ack for it
/// (`None` for a malformed receipt, which is ignored).
pub(crate) fn route_receipt(shared: &Shared, sender: &Jid, node: &Node) -> Option<Node> {
    let id = stanza_id(node)?;
    let to = node.attr_opt::<Jid>("to").ok().flatten()?;
    let participant = node.attr_opt::<Jid>("participant").ok().flatten();
    let ty = short_attr(node, "type");
    // A companion confirming a history-sync chunk: counted for the account's phone.
    if ty.as_deref() == Some("hist_sync") {
        shared.history().receipt(sender.user.as_str(), &id);
        return Some(
            Node::builder("ack")
                .attr("class", "receipt")
                .attr("id", id)
                .attr("from", to)
                .attr("type", "hist_sync")
                .build(),
        );
    }
    // A companion asking its phone to upload a medium again (a history chunk: answered
    // by the connection, see `is_history_reupload`).
    if ty.as_deref() == Some("server-error") && to.user == sender.user {
        if node.child("rmr").is_some() {
            crate::phone_media::server_error(shared, sender, node);
        }
        return Some(
            Node::builder("ack")
                .attr("class", "receipt")
                .attr("id", id)
                .attr("from", to)
                .attr("type", "server-error")
                .build(),
        );
    }
    if to.is_newsletter() {
        return Some(crate::newsletter::view_receipt(
            shared, sender, node, &id, &to,
        ));
    }
    let ids = receipt_ids(&id, node);
    // A receipt for a message settles that message in the sender's queue.
    if !matches!(ty.as_deref(), Some("retry")) {
        shared.queues().settle(
            sender,
            &[Class::Message],
            &ids,
            Some(&to),
            participant.as_ref(),
            None,
        );
    }
    // Groups and status updates: the receipt is about the participant's message.
    let group = (to.is_group() || to.is_broadcast()).then(|| to.clone());
    let owner = if group.is_some() {
        participant.clone()?
    } else {
        to.clone()
    };
    // `read-self` / `played-self`: the reader's own other devices learn of it, the
    // message's sender does not.
    let own_only = matches!(ty.as_deref(), Some("read-self" | "played-self"));
    let targets: Vec<Jid> = {
        let st = shared.state.lock();
        if own_only {
            let me = resolve_user(&st, sender)?;
            user_devices(&st, me.user.as_str())
        } else {
            let user = resolve_user(&st, &owner)?;
            let original = shared
                .queues()
                .sender_of(&id)
                .filter(|d| d.user == user.user);
            if ty.as_deref() == Some("retry")
                && let Some(device) = original
            {
                // A retry goes to the device that sent the message.
                vec![device]
            } else if ty.as_deref() == Some("retry") && owner.device != 0 {
                resolve_device(&st, &owner).into_iter().collect()
            } else {
                user_devices(&st, user.user.as_str())
            }
        }
    };
    let t = wa_binary::Str::decimal(unix_now().into());
    let (from, part) = match &group {
        Some(g) => (g.clone(), Some(sender.clone())),
        None => (sender.clone(), None),
    };
    // A receipt from one of the owner's own devices names the chat it is about; a
    // `read-self` in a group names the member whose message was read.
    let recipient = node
        .attr_opt::<Jid>("recipient")
        .ok()
        .flatten()
        .filter(|_| {
            group.is_none() && sender.user == owner.user && !shared.faults().strip_receipt_recipient
        })
        .or_else(|| {
            own_only.then(|| match &group {
                Some(_) => owner.to_non_ad(),
                None => to.clone(),
            })
        });
    let stanza = Node::builder("receipt")
        .attr("from", from)
        .attr_opt("participant", part)
        .attr_opt("recipient", recipient)
        .attr("id", id.clone())
        .attr("t", t)
        .attr_opt("type", ty.clone())
        .children(node.children().iter().take(8).cloned())
        .build();
    let targets: Vec<&Jid> = targets.iter().filter(|d| *d != sender).collect();
    if let Some((last, rest)) = targets.split_last() {
        for dev in rest {
            deliver(shared, dev, stanza.clone());
        }
        deliver(shared, last, stanza);
    }
    Some(
        Node::builder("ack")
            .attr("class", "receipt")
            .attr("id", id)
            .attr("from", to)
            .attr_opt("participant", participant)
            .attr_opt("type", ty)
            .build(),
    )
}

/// A client's `<ack class id to [participant]>`: drops what it settles from its queue.
pub(crate) fn client_ack(shared: &Shared, sender: &Jid, node: &Node) {
    let Some(id) = stanza_id(node) else {
        return;
    };
    let class = match node.attr_opt::<&str>("class").ok().flatten() {
        Some("message") => Class::Message,
        Some("receipt") => Class::Receipt,
        Some("notification") => Class::Notification,
        Some("call") => Class::Call,
        _ => return,
    };
    let to = node.attr_opt::<Jid>("to").ok().flatten();
    let participant = node.attr_opt::<Jid>("participant").ok().flatten();
    // An ack for a receipt names its type (none for a delivery receipt).
    let ty = node.attr_opt::<&str>("type").ok().flatten();
    shared.queues().settle(
        sender,
        &[class],
        &[id],
        to.as_ref(),
        participant.as_ref(),
        Some(ty),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_keeps_its_worker_and_phones_spread() {
        let phones = ["15550000011", "15550000012", "15550000013", "15550000014"];
        let first: Vec<usize> = phones.iter().map(|p| phone_worker(p, 3)).collect();
        assert!(first.iter().all(|&w| w < 3));
        let again: Vec<usize> = phones.iter().map(|p| phone_worker(p, 3)).collect();
        assert_eq!(first, again);
        // The numbers `phones_on_several_workers_keep_each_phones_order` uses.
        assert!(first.iter().any(|&w| w != first[0]), "{first:?}");
        assert_eq!(phone_worker("15550000011", 1), 0);
        assert_eq!(phone_worker("15550000011", 0), 0);
        // A thousand numbers fill every worker of four.
        let used: std::collections::HashSet<usize> = (0..1000)
            .map(|n| phone_worker(&format!("1555{n:07}"), 4))
            .collect();
        assert_eq!(used.len(), 4);
    }

    fn retry_receipt(from: &Jid, id: &str) -> Node {
        Node::builder("receipt")
            .attr("from", from.clone())
            .attr("id", id.to_owned())
            .attr("type", "retry")
            .build()
    }

    #[test]
    fn an_ack_settles_only_what_the_device_was_given() {
        let device: Jid = "1000@s.whatsapp.net".parse().unwrap();
        let device = Jid::with_device(device.user, device.server, 3);
        let from: Jid = "2000@s.whatsapp.net".parse().unwrap();
        let mut q = Queues::default();
        let ack = |q: &mut Queues| {
            q.settle(
                &device,
                &[Class::Receipt],
                &[Str::from_static("X")],
                Some(&from),
                None,
                Some(Some("retry")),
            )
        };
        q.push(&device, retry_receipt(&from, "X"));
        assert_eq!(q.unsent(&device, 1, usize::MAX).len(), 1);
        // A second receipt with the same id arrives before the first one is acked.
        q.push(&device, retry_receipt(&from, "X"));
        assert_eq!(ack(&mut q), 1);
        assert_eq!(q.len(&device), 1);
        // The waiting copy is still written, and its own ack settles it.
        assert_eq!(q.unsent(&device, 1, usize::MAX).len(), 1);
        assert_eq!(ack(&mut q), 1);
        assert_eq!(q.len(&device), 0);
    }
    fn ids<N: std::borrow::Borrow<Node>>(nodes: &[N]) -> Vec<String> {
        nodes
            .iter()
            .map(|n| n.borrow().attr_opt::<String>("id").unwrap().unwrap())
            .collect()
    }

    #[test]
    fn flushes_resume_where_the_last_stopped_and_a_new_connection_gets_everything() {
        let device: Jid = "1000@s.whatsapp.net".parse().unwrap();
        let device = Jid::with_device(device.user, device.server, 2);
        let from: Jid = "2000@s.whatsapp.net".parse().unwrap();
        let mut q = Queues::default();
        for id in ["A", "B", "C"] {
            q.push(&device, retry_receipt(&from, id));
        }
        assert_eq!(ids(&q.unsent(&device, 1, 2)), ["A", "B"]);
        q.push(&device, retry_receipt(&from, "D"));
        assert_eq!(ids(&q.unsent(&device, 1, 10)), ["C", "D"]);
        assert!(q.unsent(&device, 1, 10).is_empty());
        // B is acked; a new connection is given everything still queued, once.
        let acked = q.settle(
            &device,
            &[Class::Receipt],
            &[Str::from_static("B")],
            Some(&from),
            None,
            Some(Some("retry")),
        );
        assert_eq!(acked, 1);
        assert_eq!(ids(&q.unsent(&device, 2, 10)), ["A", "C", "D"]);
        assert!(q.unsent(&device, 2, 10).is_empty());
        q.push(&device, retry_receipt(&from, "E"));
        assert_eq!(ids(&q.login(&device, 3).nodes), ["A", "C", "D", "E"]);
        assert!(q.unsent(&device, 3, 10).is_empty());
        q.push(&device, retry_receipt(&from, "F"));
        assert_eq!(ids(&q.unsent(&device, 3, 10)), ["F"]);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_its_index_entry() {
        let device: Jid = "1000@s.whatsapp.net".parse().unwrap();
        let device = Jid::with_device(device.user, device.server, 2);
        let from: Jid = "2000@s.whatsapp.net".parse().unwrap();
        let mut q = Queues {
            limit: 2,
            ..Queues::default()
        };
        for id in ["A", "B", "C"] {
            q.push(&device, retry_receipt(&from, id));
        }
        assert_eq!(q.dropped, 1);
        assert_eq!(ids(&q.unsent(&device, 1, 10)), ["B", "C"]);
        let settle = |q: &mut Queues, id: &str| {
            q.settle(
                &device,
                &[Class::Receipt],
                &[Str::copy_from(id)],
                Some(&from),
                None,
                Some(Some("retry")),
            )
        };
        assert_eq!(settle(&mut q, "A"), 0);
        assert_eq!(settle(&mut q, "C"), 1);
        assert_eq!(settle(&mut q, "C"), 0);
        assert_eq!(q.len(&device), 1);
        let dq = q.map.values().next().unwrap();
        assert_eq!(dq.by_id.len(), 1);
        assert!(dq.by_id.contains_key("B"));
    }

    #[test]
    fn queued_stanzas_hold_their_own_bytes_within_a_budget() {
        let device: Jid = "1000@s.whatsapp.net".parse().unwrap();
        let from: Jid = "2000@s.whatsapp.net".parse().unwrap();
        // Three messages whose payloads are slices of one big frame buffer.
        let frame = bytes::Bytes::from(vec![7u8; 3 * (MAX_QUEUE_BYTES / 2)]);
        let message = |id: &str, payload: bytes::Bytes| {
            Node::builder("message")
                .attr("from", from.clone())
                .attr("id", id.to_owned())
                .children([Node::builder("enc").bytes(payload).build()])
                .build()
        };
        let half = MAX_QUEUE_BYTES / 2 - 1024;
        let mut q = Queues::default();
        q.push(&device, message("S", frame.slice(0..16)));
        let queued = q.unsent(&device, 1, 10);
        let enc = queued[0].child("enc").and_then(Node::bytes).unwrap();
        assert_eq!(enc.as_ref(), &[7u8; 16]);
        assert_ne!(enc.as_ptr(), frame.as_ptr(), "copied out of the frame");
        // Large payloads: the byte budget, not the count, drops the oldest.
        q.push(&device, message("A", frame.slice(0..half)));
        q.push(&device, message("B", frame.slice(half..2 * half)));
        assert_eq!(q.dropped, 0, "S, A and B fit");
        q.push(&device, message("C", frame.slice(2 * half..3 * half)));
        assert_eq!(q.dropped, 2, "S and A make room for C");
        assert_eq!(ids(&q.unsent(&device, 2, 10)), ["B", "C"]);
        assert!(q.map.values().next().unwrap().bytes <= MAX_QUEUE_BYTES);
    }
}
