//! One client connection: Noise responder, ClientPayload, then registration or login,
//! and the node exchange that follows (PROTOCOL.md §1, §4, §5, §11).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message;
use rand_core::{OsRng, RngCore};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use wa_binary::{Jid, Node, Server};
use wa_crypto::{KeyPair, PublicKey};
use wa_noise::{FrameDecoder, Responder, Transport};
use wa_proto::handshake::ClientPayload;
use zeroize::Zeroizing;

use crate::Error;
use crate::fault::StreamErrorKind;
use crate::net::{WsConn, WsWrite};
use crate::passkey::{self, PasskeyContinuation, PasskeyScan, PasskeySeen};
use crate::phone;
use crate::route::{self, Class};
use crate::sim::{Cmd, ConnEntry, Shared, fresh_id, notify_devices, unix_now};
use crate::state::{Device, MAX_PREKEYS_PER_DEVICE, PreKeys};

/// Most websocket messages buffered between the reader task and the connection task.
const INBOUND_QUEUE: usize = 64;
/// Most API commands queued for one connection.
const COMMAND_QUEUE: usize = 16;
/// The routing info sent in `<ib><edge_routing>` (clients echo it in their intro).
pub(crate) const EDGE_ROUTING_INFO: &[u8] = &[0x08, 0x08, 0x08, 0x02];
/// How long a registration connection waits for the phone to enter a pairing code.
const CODE_ENTRY_TIME: Duration = Duration::from_secs(180);
/// How long the server keeps a registration connection open after its last ref expired.
const QR_GRACE: Duration = Duration::from_secs(1);
/// Most queued stanzas handed to the writer at a time; the rest follow as it catches up.
const DELIVERY_WINDOW: usize = 256;
/// Most frames waiting for the writer: a client that reads nothing while this many pile up
/// is disconnected.
const MAX_OUTBOX: usize = 65_536;
/// Most frames the writer gathers into one write to the socket.
const WRITE_BATCH: usize = 64;
/// How long a closing connection waits for its writer to send what is pending.
const WRITER_DRAIN: Duration = Duration::from_secs(2);

/// What the connection task hands its writer.
enum Out {
    Frame(Bytes),
    /// A websocket close frame; nothing is written after it.
    Close,
}

/// The sending side of a connection. The connection task never waits for the socket: it
/// queues frames here and a writer task writes them in order, so the server keeps
/// reading (and settling acks) while a slow client catches up. Queued stanzas are handed
/// over in windows of [`DELIVERY_WINDOW`], so this queue stays short.
struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
    /// Frames queued and not yet written.
    pending: Arc<AtomicUsize>,
    /// Set when a delivery window was full: the writer wakes the connection to hand over
    /// more once it has written everything.
    backlog: Arc<AtomicBool>,
}

impl Outbox {
    /// Starts the writer task for `writer`.
    fn start(
        shared: Arc<Shared>,
        writer: WsWrite,
        flush: Arc<Notify>,
    ) -> (Outbox, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let backlog = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (pending, backlog) = (pending.clone(), backlog.clone());
            async move {
                let mut batch: Vec<Bytes> = Vec::new();
                let mut closing = false;
                while let Some(out) = rx.recv().await {
                    // Everything already queued goes out in one write (up to a bound).
                    let mut next = Some(out);
                    while let Some(out) = next.take() {
                        match out {
                            Out::Frame(frame) => batch.push(frame),
                            Out::Close => {
                                closing = true;
                                break;
                            }
                        }
                        if batch.len() < WRITE_BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                    let written = batch.len();
                    let sent = match shared.faults().delay_frames {
                        Some(d) => {
                            let mut ok = true;
                            for frame in batch.drain(..) {
                                tokio::time::sleep(d).await;
                                if writer.send_all(std::slice::from_ref(&frame)).await.is_err() {
                                    ok = false;
                                    break;
                                }
                            }
                            ok
                        }
                        None => writer.send_all(&batch).await.is_ok(),
                    };
                    batch.clear();
                    if !sent {
                        break;
                    }
                    // Half the window written: time for the next stanzas.
                    let left = pending.fetch_sub(written, Ordering::SeqCst) - written;
                    if written > 0
                        && left <= DELIVERY_WINDOW / 2
                        && backlog.swap(false, Ordering::SeqCst)
                    {
                        flush.notify_one();
                    }
                    if closing {
                        writer.close().await;
                        break;
                    }
                }
            }
        });
        (
            Outbox {
                tx,
                pending,
                backlog,
            },
            task,
        )
    }

    /// Queues a frame for the writer (which applies the delay fault).
    fn frame(&self, frame: Bytes) -> Result<(), End> {
        if self.pending.load(Ordering::Acquire) >= MAX_OUTBOX {
            return Err(End::Malformed("client stopped reading"));
        }
        self.pending.fetch_add(1, Ordering::AcqRel);
        self.tx.send(Out::Frame(frame)).map_err(|_| End::ClientGone)
    }

    fn close(&self) {
        let _ = self.tx.send(Out::Close);
    }

    /// How many more queued stanzas fit in the current delivery window.
    fn room(&self) -> usize {
        DELIVERY_WINDOW.saturating_sub(self.pending.load(Ordering::SeqCst))
    }
}

/// Why a connection loop ended (only for tracing).
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "the fields are read by the Debug print in tracing"
)]
enum End {
    ClientGone,
    Malformed(&'static str),
    Closed,
    Shutdown,
}

type PairReply = oneshot::Sender<Result<Jid, Error>>;

/// Registration-connection state.
struct Reg {
    identity: PublicKey,
    registration_id: Option<u32>,
    signed_prekey: Option<(u32, Vec<u8>, Vec<u8>)>,
    pair_device_id: String,
    refs_until: Instant,
    /// While a pairing is in progress: when the server gives up on it and closes.
    pairing_until: Option<Instant>,
    pending: Option<PendingPair>,
    code_ref: Option<String>,
    code_wait: Option<CodeWait>,
    passkey: Option<PasskeyWait>,
}

/// A passkey link in progress: what the server issued and the primary holds.
struct PasskeyWait {
    phone: String,
    scan: PasskeyScan,
    options: String,
    challenge: [u8; 32],
    credential: Vec<u8>,
    /// The ADV secret the scanned QR showed (the handoff key comes from it).
    qr_adv_secret: Zeroizing<Vec<u8>>,
    /// The companion ref handed out by `<ref/>`.
    companion_ref: Option<String>,
    prologue: Option<passkey::CompanionPrologue>,
    /// The primary's ephemeral key pair and nonce.
    primary: Option<(KeyPair, Zeroizing<[u8; 32]>)>,
    /// The key of the pairing request, once the nonce checked out.
    key: Option<Zeroizing<Vec<u8>>>,
    reply: PairReply,
}

/// A pair-success sent, waiting for the companion's pair-device-sign.
struct PendingPair {
    iq_id: String,
    phone: String,
    device: u16,
    details: Vec<u8>,
    account: PublicKey,
    platform: String,
    reply: PairReply,
}

/// The primary hello sent, waiting for companion_finish.
struct CodeWait {
    phone: String,
    primary_ephemeral: KeyPair,
    companion_ephemeral: PublicKey,
    reply: PairReply,
}

struct Conn {
    shared: Arc<Shared>,
    id: u64,
    writer: Outbox,
    frames: FrameDecoder,
    inbound: mpsc::Receiver<Bytes>,
    transport: Option<Transport>,
    client_static: Option<PublicKey>,
    reg: Option<Reg>,
    device: Option<Jid>,
    lid: Option<Jid>,
    last_rx: Instant,
    /// Woken when stanzas were queued for this device.
    flush: Arc<Notify>,
}

pub(crate) async fn run(shared: Arc<Shared>, ws: WsConn) {
    let WsConn {
        mut reader,
        writer,
        peer,
    } = ws;
    let (in_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
    let reader_task = tokio::spawn(async move {
        while let Some(b) = reader.recv().await {
            if in_tx.send(b).await.is_err() {
                break;
            }
        }
    });
    let id = shared.next_conn();
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let flush = Arc::new(Notify::new());
    let (writer, writer_task) = Outbox::start(shared.clone(), writer, flush.clone());
    shared.conns().insert(
        id,
        ConnEntry {
            tx: cmd_tx,
            device: None,
            noise: None,
            identity: None,
            refs: Vec::new(),
            code: None,
            active: false,
            flush: flush.clone(),
            outbox: writer.pending.clone(),
        },
    );
    let mut conn = Conn {
        shared: shared.clone(),
        id,
        writer,
        frames: FrameDecoder::server(),
        inbound,
        transport: None,
        client_static: None,
        reg: None,
        device: None,
        lid: None,
        last_rx: Instant::now(),
        flush,
    };
    let mut shutdown = shared.shutdown.subscribe();
    let end = tokio::select! {
        end = conn.serve(cmd_rx) => end,
        _ = shutdown.wait_for(|s| *s) => End::Shutdown,
    };
    tracing::debug!(%peer, id, ?end, "connection ended");
    // Fail a pairing still waiting, so that the API call returns at once.
    if let Some(reg) = conn.reg.take() {
        if let Some(p) = reg.pending {
            release(&shared, &p.phone, p.device);
            let _ = p.reply.send(Err(Error::ConnectionGone));
        }
        if let Some(w) = reg.code_wait {
            let _ = w.reply.send(Err(Error::ConnectionGone));
        }
        if let Some(w) = reg.passkey {
            let _ = w.reply.send(Err(Error::ConnectionGone));
        }
    }
    shared.conns().remove(&id);
    crate::chats::connection_gone(&shared, id, conn.device.as_ref());
    // What was queued before the end (a stream error, the message a fault delivers just
    // before closing) still goes out, then the socket closes.
    drop(conn);
    let abort = writer_task.abort_handle();
    if tokio::time::timeout(WRITER_DRAIN, writer_task)
        .await
        .is_err()
    {
        // A client that does not read: close the socket under the write.
        abort.abort();
    }
    reader_task.abort();
}

fn release(shared: &Shared, phone: &str, device: u16) {
    if let Some(a) = shared.state.lock().accounts.get_mut(phone) {
        a.release(device);
    }
}

fn server_jid() -> Jid {
    Jid::server_jid()
}

fn iq_result(id: &str) -> Node {
    Node::builder("iq")
        .attr("from", server_jid())
        .attr("type", "result")
        .attr("id", id.to_owned())
        .build()
}

fn iq_error(id: &str, code: u16, text: &'static str) -> Node {
    Node::builder("iq")
        .attr("from", server_jid())
        .attr("type", "error")
        .attr("id", id.to_owned())
        .children([Node::builder("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

/// `<notification type="crsc_continuation">` with the primary's ephemeral identity.
fn continuation(identity: Vec<u8>) -> Node {
    Node::builder("notification")
        .attr("from", server_jid())
        .attr("id", fresh_id())
        .attr("type", "crsc_continuation")
        .attr("t", unix_now())
        .children([Node::builder("primary_ephemeral_identity")
            .bytes(Bytes::from(identity))
            .build()])
        .build()
}

/// Whether an `md` set is a step of a passkey link.
fn passkey_step(node: &Node) -> bool {
    [
        "passkey_prologue",
        "companion_nonce",
        "encrypted_pairing_request",
    ]
    .iter()
    .any(|t| node.child(t).is_some())
}

fn stream_error(kind: StreamErrorKind) -> Node {
    let b = Node::builder("stream:error");
    match kind {
        StreamErrorKind::Restart => b.attr("code", "515").build(),
        StreamErrorKind::ServiceUnavailable => b.attr("code", "503").build(),
        StreamErrorKind::Replaced => b
            .children([Node::builder("conflict").attr("type", "replaced").build()])
            .build(),
        StreamErrorKind::DeviceRemoved => b
            .attr("code", "401")
            .children([Node::builder("conflict")
                .attr("type", "device_removed")
                .build()])
            .build(),
    }
}

/// `<skey><id/><value/><signature/></skey>`.
fn parse_skey(s: &Node) -> Option<(u32, Vec<u8>, Vec<u8>)> {
    let bytes = |tag: &str| s.child(tag).and_then(|n| n.content_bytes());
    let id = bytes("id").and_then(|b| be_uint(b, 3))?;
    let val = bytes("value").filter(|b| b.len() == 32)?;
    let sig = bytes("signature").filter(|b| b.len() == 64)?;
    Some((id, val.to_vec(), sig.to_vec()))
}

/// `<registration>`, `<type>`, `<identity>` and `<skey>` of a stored bundle.
fn key_bundle_nodes(pk: &PreKeys, identity: &[u8; 32]) -> Vec<Node> {
    let mut out = vec![
        Node::builder("registration")
            .bytes(
                pk.registration_id
                    .unwrap_or_default()
                    .to_be_bytes()
                    .to_vec(),
            )
            .build(),
        Node::builder("type").bytes(vec![5]).build(),
        Node::builder("identity")
            .bytes(pk.identity.clone().unwrap_or_else(|| identity.to_vec()))
            .build(),
    ];
    if let Some((id, value, sig)) = &pk.signed {
        out.push(
            Node::builder("skey")
                .children([
                    Node::builder("id")
                        .bytes(id.to_be_bytes()[1..].to_vec())
                        .build(),
                    Node::builder("value").bytes(value.clone()).build(),
                    Node::builder("signature").bytes(sig.clone()).build(),
                ])
                .build(),
        );
    }
    out
}

fn be_uint(b: &[u8], max_len: usize) -> Option<u32> {
    if b.is_empty() || b.len() > max_len {
        return None;
    }
    Some(b.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x)))
}

impl Conn {
    async fn serve(&mut self, mut cmds: mpsc::Receiver<Cmd>) -> End {
        let deadline = Instant::now() + self.shared.config.handshake_timeout;
        let payload = match tokio::time::timeout_at(deadline, self.handshake()).await {
            Err(_) => return End::Malformed("handshake timeout"),
            Ok(Err(e)) => return e,
            Ok(Ok(p)) => p,
        };
        let payload = match ClientPayload::decode(&payload[..]) {
            Ok(p) => p,
            Err(_) => return End::Malformed("ClientPayload"),
        };
        let started = if payload.device_pairing_data.is_some() {
            self.start_registration(&payload).await
        } else if payload.username.is_some() {
            self.start_login(&payload).await
        } else {
            Err(End::Malformed(
                "ClientPayload has neither username nor pairing data",
            ))
        };
        if let Err(end) = started {
            return end;
        }
        self.main_loop(&mut cmds).await
    }

    /// Reads the next raw frame (handshake phase).
    async fn raw_frame(&mut self) -> Result<BytesMut, End> {
        loop {
            match self.frames.next_frame() {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(_) => return Err(End::Malformed("framing")),
            }
            let data = self.inbound.recv().await.ok_or(End::ClientGone)?;
            self.frames
                .push(&data)
                .map_err(|_| End::Malformed("framing"))?;
        }
    }

    async fn handshake(&mut self) -> Result<Vec<u8>, End> {
        let responder =
            Responder::new(self.shared.responder.clone(), KeyPair::generate(&mut OsRng));
        let hello = self.raw_frame().await?;
        let (server_hello, awaiting) = responder
            .read_client_hello(&hello)
            .map_err(|_| End::Malformed("client hello"))?;
        self.writer.frame(server_hello.freeze())?;
        let finish = self.raw_frame().await?;
        let done = awaiting
            .read_client_finish(&finish)
            .map_err(|_| End::Malformed("client finish"))?;
        self.client_static = Some(done.client_static);
        self.transport = Some(done.transport);
        Ok(done.payload)
    }

    async fn send(&mut self, node: &Node) -> Result<(), End> {
        self.shared.recording.sent(self.device.as_ref(), node);
        let plain = wa_binary::encode(node);
        let transport = self.transport.as_mut().ok_or(End::Closed)?;
        let frame = transport
            .encrypt(&plain)
            .map_err(|_| End::Malformed("frame too large"))?;
        tracing::trace!(id = self.id, %node, "send");
        self.writer.frame(frame.freeze())
    }

    /// Sends a last node, then a websocket close.
    async fn close_with(&mut self, node: &Node) -> End {
        let _ = self.send(node).await;
        self.writer.close();
        End::Closed
    }

    async fn start_registration(&mut self, payload: &ClientPayload) -> Result<(), End> {
        let Some(data) = payload.device_pairing_data.as_ref() else {
            return Err(End::Malformed("no pairing data"));
        };
        let identity = PublicKey::from_slice(data.e_ident())
            .map_err(|_| End::Malformed("eIdent is not a key"))?;
        let registration_id = be_uint(data.e_regid(), 4);
        let signed_prekey = match (be_uint(data.e_skey_id(), 3), data.e_skey_val.as_ref()) {
            (Some(id), Some(val)) if val.len() == 32 => {
                Some((id, val.clone(), data.e_skey_sig().to_vec()))
            }
            _ => None,
        };
        let timing = self.shared.config.qr;
        let now = Instant::now();
        let refs: Vec<(String, std::time::Instant)> = (0..timing.refs.clamp(1, 64))
            .map(|i| {
                (
                    format!("2@{}", fresh_id()),
                    std::time::Instant::now() + timing.deadline(i),
                )
            })
            .collect();
        let refs_until = now + timing.deadline(refs.len() - 1) + QR_GRACE;
        let pair_device_id = fresh_id();
        let node = Node::builder("iq")
            .attr("from", server_jid())
            .attr("type", "set")
            .attr("id", pair_device_id.clone())
            .attr("xmlns", "md")
            .children([Node::builder("pair-device")
                .children(refs.iter().map(|(r, _)| {
                    Node::builder("ref")
                        .bytes(Bytes::from(r.clone().into_bytes()))
                        .build()
                }))
                .build()])
            .build();
        {
            let mut conns = self.shared.conns();
            if let Some(e) = conns.get_mut(&self.id) {
                e.noise = self.client_static;
                e.identity = Some(identity);
                e.refs = refs;
            }
        }
        self.reg = Some(Reg {
            identity,
            registration_id,
            signed_prekey,
            pair_device_id,
            refs_until,
            pairing_until: None,
            pending: None,
            code_ref: None,
            code_wait: None,
            passkey: None,
        });
        self.send(&node).await
    }

    async fn start_login(&mut self, payload: &ClientPayload) -> Result<(), End> {
        let phone = payload.username().to_string();
        let device = payload
            .device
            .and_then(|d| u16::try_from(d).ok())
            .unwrap_or(0);
        if let Some(reason) = self.shared.faults().refuse_logins {
            let node = Node::builder("failure")
                .attr("reason", reason.to_string())
                .build();
            return Err(self.close_with(&node).await);
        }
        let found = {
            let st = self.shared.state.lock();
            st.accounts.get(&phone).and_then(|a| {
                a.devices
                    .get(&device)
                    .filter(|d| Some(d.noise) == self.client_static)
                    .map(|_| (a.lid_user.clone(), a.created))
            })
        };
        let Some((lid_user, created)) = found else {
            let node = Node::builder("failure").attr("reason", "401").build();
            return Err(self.close_with(&node).await);
        };
        let jid = Jid::with_device(phone.clone(), Server::Pn, device);
        let lid = Jid::with_device(lid_user, Server::Lid, device);
        // Another connection of the same device is replaced.
        let others: Vec<mpsc::Sender<Cmd>> = {
            let mut conns = self.shared.conns();
            let others = conns
                .iter()
                .filter(|(id, c)| **id != self.id && c.device.as_ref() == Some(&jid))
                .map(|(_, c)| c.tx.clone())
                .collect();
            if let Some(e) = conns.get_mut(&self.id) {
                e.device = Some(jid.clone());
            }
            others
        };
        for tx in others {
            let _ = tx.try_send(Cmd::StreamError(StreamErrorKind::Replaced));
        }
        self.device = Some(jid.clone());
        self.lid = Some(lid.clone());
        let success = Node::builder("success")
            .attr("t", unix_now())
            .attr("props", "1")
            .attr("abprops", "1")
            .attr("location", "sim")
            .attr("creation", created.to_string())
            .attr("lid", lid)
            .build();
        self.send(&success).await?;
        let routing = Node::builder("ib")
            .children([Node::builder("edge_routing")
                .children([Node::builder("routing_info")
                    .bytes(EDGE_ROUTING_INFO.to_vec())
                    .build()])
                .build()])
            .build();
        self.send(&routing).await?;
        let dirty = self
            .shared
            .state
            .lock()
            .dirty
            .login_nodes(jid.user.as_str());
        for ib in dirty {
            self.send(&ib).await?;
        }
        // Everything queued while the device was away (or delivered to an earlier
        // connection and not acked), then the end-of-offline marker.
        let mut offline = self.shared.queues().login(&jid, self.id);
        let preview = Node::builder("ib")
            .children([Node::builder("offline_preview")
                .attr("count", offline.nodes.len().to_string())
                .attr("message", offline.messages.to_string())
                .attr("notification", offline.notifications.to_string())
                .attr("receipt", offline.receipts.to_string())
                .attr("call", offline.calls.to_string())
                .attr("appdata", "0")
                .build()])
            .build();
        self.send(&preview).await?;
        let count = offline.nodes.len();
        if self.shared.faults().reorder_offline {
            offline.nodes.reverse();
        }
        self.deliver_queued(offline.nodes).await?;
        if self.shared.faults().withhold_offline_marker {
            return Ok(());
        }
        let offline = Node::builder("ib")
            .children([Node::builder("offline")
                .attr("count", count.to_string())
                .build()])
            .build();
        self.send(&offline).await
    }

    /// Sends queued stanzas, applying the delivery faults.
    async fn deliver_queued<N: std::borrow::Borrow<Node>>(
        &mut self,
        nodes: Vec<N>,
    ) -> Result<(), End> {
        for node in nodes {
            let node = node.borrow();
            self.send(node).await?;
            let faults = self.shared.faults();
            if faults.duplicate_delivery {
                self.send(node).await?;
            }
            if Class::of(node) == Some(Class::Message)
                && let Some(me) = &self.device
                && faults.drop_after_deliver.contains(me)
            {
                self.shared
                    .faults
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .drop_after_deliver
                    .retain(|d| d != me);
                return Err(End::Closed);
            }
        }
        Ok(())
    }

    /// Sends what was queued for this device since it was last flushed.
    async fn flush_queue(&mut self) -> Result<(), End> {
        let Some(me) = self.device.clone() else {
            return Ok(());
        };
        // A connection being replaced by a newer login of the same device leaves the
        // queue to the newer one.
        let newest = self
            .shared
            .conns()
            .iter()
            .filter(|(_, c)| c.device.as_ref() == Some(&me))
            .map(|(id, _)| *id)
            .max();
        if newest != Some(self.id) {
            return Ok(());
        }
        let faults = self.shared.faults();
        let per_node = if faults.duplicate_delivery { 2 } else { 1 };
        let room = loop {
            let room = self.writer.room() / per_node;
            if room > 0 {
                break room;
            }
            self.writer.backlog.store(true, Ordering::SeqCst);
            // The writer may have written everything before it could see the flag: then
            // nobody would ask for the next window. Take the flag back and go on if so.
            if self.writer.room() / per_node == 0
                || !self.writer.backlog.swap(false, Ordering::SeqCst)
            {
                return Ok(());
            }
        };
        let nodes = self.shared.queues().unsent(&me, self.id, room);
        if nodes.len() == room {
            // Maybe more: the writer asks for the next window once this one is out.
            self.writer.backlog.store(true, Ordering::SeqCst);
        }
        self.deliver_queued(nodes).await
    }

    fn timer(&self) -> Option<Instant> {
        if let Some(reg) = &self.reg {
            // A pairing in progress keeps the connection open past the last ref, for a
            // bounded time.
            return Some(reg.pairing_until.unwrap_or(reg.refs_until));
        }
        self.shared.config.idle_timeout.map(|t| self.last_rx + t)
    }

    async fn main_loop(&mut self, cmds: &mut mpsc::Receiver<Cmd>) -> End {
        loop {
            let timer = self.timer();
            let sleep = async {
                match timer {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            // A command first: a fault applied before a frame arrived (`Sim::fault`) takes
            // effect before that frame is handled.
            tokio::select! {
                biased;
                cmd = cmds.recv() => {
                    let Some(cmd) = cmd else { return End::Shutdown };
                    if let Err(end) = self.command(cmd).await {
                        return end;
                    }
                }
                data = self.inbound.recv() => {
                    let Some(data) = data else { return End::ClientGone };
                    self.last_rx = Instant::now();
                    if self.frames.push(&data).is_err() {
                        return End::Malformed("framing");
                    }
                    loop {
                        let frame = match self.frames.next_frame() {
                            Ok(Some(f)) => f,
                            Ok(None) => break,
                            Err(_) => return End::Malformed("framing"),
                        };
                        let Some(t) = self.transport.as_mut() else { return End::Closed };
                        let Ok(plain) = t.decrypt(&frame) else {
                            return End::Malformed("frame does not decrypt");
                        };
                        let Ok(node) = wa_binary::decode(Bytes::from(plain)) else {
                            return End::Malformed("node does not decode");
                        };
                        tracing::trace!(id = self.id, %node, "recv");
                        if let Err(end) = self.handle(node).await {
                            return end;
                        }
                    }
                }
                () = self.flush.notified() => {
                    if let Err(end) = self.flush_queue().await {
                        return end;
                    }
                }
                () = sleep => {
                    self.writer.close();
                    return End::Closed;
                }
            }
        }
    }

    async fn command(&mut self, cmd: Cmd) -> Result<(), End> {
        match cmd {
            Cmd::Drop => Err(End::Closed),
            Cmd::Send(node) => self.send(&node).await,
            Cmd::StreamError(kind) => {
                if kind == StreamErrorKind::DeviceRemoved
                    && let Some(jid) = &self.device
                {
                    {
                        let mut st = self.shared.state.lock();
                        if let Some(a) = st.accounts.get_mut(jid.user.as_str()) {
                            a.devices.remove(&jid.device);
                        }
                    }
                    self.shared.queues().forget(jid);
                }
                Err(self.close_with(&stream_error(kind)).await)
            }
            Cmd::Pair {
                phone,
                adv_secret,
                platform,
                reply,
            } => self.pair_success(phone, &adv_secret, platform, reply).await,
            Cmd::Passkey {
                phone,
                adv_secret,
                scan,
                reply,
            } => self.passkey_start(phone, adv_secret, scan, reply).await,
            Cmd::PairCode {
                phone,
                primary_ephemeral,
                companion_ephemeral,
                wrapped_primary,
                reply,
            } => {
                let Some(reg) = self.reg.as_mut() else {
                    let _ = reply.send(Err(Error::ConnectionGone));
                    return Ok(());
                };
                let Some(code_ref) = reg.code_ref.clone() else {
                    let _ = reply.send(Err(Error::NoPendingCode(phone)));
                    return Ok(());
                };
                let primary_identity = {
                    let st = self.shared.state.lock();
                    st.accounts.get(&phone).map(|a| a.identity.public)
                };
                let Some(primary_identity) = primary_identity else {
                    let _ = reply.send(Err(Error::UnknownAccount(phone)));
                    return Ok(());
                };
                reg.pairing_until = Some(Instant::now() + self.shared.config.pair_timeout);
                reg.code_wait = Some(CodeWait {
                    phone,
                    primary_ephemeral,
                    companion_ephemeral,
                    reply,
                });
                let node = Node::builder("notification")
                    .attr("from", server_jid())
                    .attr("id", fresh_id())
                    .attr("type", "link_code_companion_reg")
                    .attr("t", unix_now())
                    .children([Node::builder("link_code_companion_reg")
                        .attr("stage", "primary_hello")
                        .children([
                            Node::builder("link_code_pairing_ref")
                                .bytes(Bytes::from(code_ref.into_bytes()))
                                .build(),
                            Node::builder("primary_identity_pub")
                                .bytes(Bytes::copy_from_slice(primary_identity.as_bytes()))
                                .build(),
                            Node::builder("link_code_pairing_wrapped_primary_ephemeral_pub")
                                .bytes(Bytes::from(wrapped_primary))
                                .build(),
                        ])
                        .build()])
                    .build();
                self.send(&node).await
            }
        }
    }

    async fn pair_success(
        &mut self,
        phone: String,
        adv_secret: &[u8],
        platform: String,
        reply: PairReply,
    ) -> Result<(), End> {
        let Some(reg) = self.reg.as_mut() else {
            let _ = reply.send(Err(Error::ConnectionGone));
            return Ok(());
        };
        if reg.pending.is_some() {
            let _ = reply.send(Err(Error::PairingRejected(
                "a pairing is already in progress".into(),
            )));
            return Ok(());
        }
        let companion = reg.identity;
        let prepared = {
            let mut st = self.shared.state.lock();
            st.accounts.get_mut(&phone).and_then(|a| {
                let device = a.reserve_device()?;
                let signed = phone::sign_device_identity(
                    &a.identity,
                    &companion,
                    adv_secret,
                    a.next_key_index,
                    unix_now(),
                    &mut OsRng,
                );
                Some((device, signed, a.identity.public, a.lid_user.clone()))
            })
        };
        let Some((device, signed, account, lid_user)) = prepared else {
            let _ = reply.send(Err(Error::PairingRejected(
                "unknown account or no free device id".into(),
            )));
            return Ok(());
        };
        let iq_id = fresh_id();
        let node = Node::builder("iq")
            .attr("from", server_jid())
            .attr("type", "set")
            .attr("id", iq_id.clone())
            .attr("xmlns", "md")
            .children([Node::builder("pair-success")
                .children([
                    Node::builder("device-identity")
                        .bytes(Bytes::from(signed.hmac_container))
                        .build(),
                    Node::builder("platform")
                        .attr("name", self.shared.config.phone_platform.clone())
                        .build(),
                    Node::builder("device")
                        .attr("jid", Jid::with_device(phone.clone(), Server::Pn, device))
                        .attr("lid", Jid::with_device(lid_user, Server::Lid, device))
                        .build(),
                ])
                .build()])
            .build();
        reg.pairing_until = Some(Instant::now() + self.shared.config.pair_timeout);
        reg.pending = Some(PendingPair {
            iq_id,
            phone,
            device,
            details: signed.details,
            account,
            platform,
            reply,
        });
        self.send(&node).await
    }

    async fn handle(&mut self, node: Node) -> Result<(), End> {
        if node.tag() == "ack"
            && node.attr_opt::<&str>("class").ok().flatten() == Some("notification")
        {
            self.shared
                .notification_acks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if node.tag() != "iq" {
            return self.stanza(&node).await;
        }
        let id: String = node
            .attr_opt::<String>("id")
            .ok()
            .flatten()
            .unwrap_or_default();
        let ty: String = node
            .attr_opt::<String>("type")
            .ok()
            .flatten()
            .unwrap_or_default();
        let xmlns: String = node
            .attr_opt::<String>("xmlns")
            .ok()
            .flatten()
            .unwrap_or_default();
        match ty.as_str() {
            "result" | "error" => self.iq_response(&id, &ty, &node).await,
            "get" | "set" if !id.is_empty() => self.iq_request(&id, &ty, &xmlns, &node).await,
            _ => Ok(()),
        }
    }

    /// Messages, receipts and acks from a logged-in device; anything else (`<ib>`,
    /// presence, chatstate) needs no answer.
    async fn stanza(&mut self, node: &Node) -> Result<(), End> {
        let Some(me) = self.device.clone() else {
            return Ok(());
        };
        match node.tag() {
            "message" => {
                let ack = route::route_message(&self.shared, &me, node);
                self.send(&ack).await
            }
            "receipt" => {
                // A companion asking its phone to upload a history chunk again: the
                // phone answers with a new notification (an encrypted peer message,
                // sent from a task of its own); the receipt is acked as any other.
                if route::is_history_reupload(&me, node) {
                    crate::history::reupload(&self.shared, &me, node);
                }
                match route::route_receipt(&self.shared, &me, node) {
                    Some(ack) => self.send(&ack).await,
                    None => Ok(()),
                }
            }
            "ack" => {
                route::client_ack(&self.shared, &me, node);
                Ok(())
            }
            "presence" => {
                crate::chats::presence(&self.shared, self.id, &me, node);
                Ok(())
            }
            "chatstate" => {
                crate::chats::chatstate(&self.shared, &me, node);
                Ok(())
            }
            "call" => match crate::call::stanza(&self.shared, &me, node) {
                Some(reply) => self.send(&reply).await,
                None => Ok(()),
            },
            "ib" => {
                let id = node
                    .child("unified_session")
                    .and_then(|u| u.attr_opt::<&str>("id").ok().flatten())
                    .filter(|id| id.len() <= 32);
                if let Some(id) = id {
                    self.shared.unified_sessions.push(&me, id.to_owned());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn iq_response(&mut self, id: &str, ty: &str, node: &Node) -> Result<(), End> {
        let Some(reg) = self.reg.as_mut() else {
            return Ok(());
        };
        if id == reg.pair_device_id {
            return Ok(());
        }
        if reg.pending.as_ref().is_none_or(|p| p.iq_id != id) {
            return Ok(());
        }
        let Some(p) = reg.pending.take() else {
            return Ok(());
        };
        let verdict = if ty == "error" {
            let text = node
                .child("error")
                .and_then(|e| e.attr_opt::<String>("text").ok().flatten())
                .unwrap_or_default();
            Err(format!("companion answered with an error: {text}"))
        } else {
            match node.child_by_path(&["pair-device-sign", "device-identity"]) {
                Some(di) => phone::verify_device_sign(
                    di.content_bytes().unwrap_or_default(),
                    &p.details,
                    &p.account,
                    &reg.identity,
                )
                .and_then(|key_index| {
                    let attr = di.attr_opt::<u32>("key-index").ok().flatten();
                    if attr.is_some_and(|k| k != key_index) {
                        Err("key-index attribute differs from the details".into())
                    } else {
                        Ok(key_index)
                    }
                }),
                None => Err("no pair-device-sign/device-identity in the reply".into()),
            }
        };
        match verdict {
            Ok(key_index) => {
                let Some(noise) = self.client_static else {
                    return Err(End::Closed);
                };
                let device = Device {
                    noise,
                    identity: reg.identity,
                    key_index,
                    platform: p.platform.clone(),
                    prekeys: PreKeys {
                        registration_id: reg.registration_id,
                        identity: Some(reg.identity.as_bytes().to_vec()),
                        one_time: Default::default(),
                        signed: reg.signed_prekey.clone(),
                    },
                };
                {
                    let mut st = self.shared.state.lock();
                    if let Some(a) = st.accounts.get_mut(&p.phone) {
                        a.release(p.device);
                        a.devices.insert(p.device, device);
                        a.next_key_index = a.next_key_index.max(key_index) + 1;
                    }
                }
                notify_devices(&self.shared, &p.phone, true, p.device, key_index);
                crate::appstate::after_link(&self.shared, &p.phone, p.device).await;
                let jid = Jid::with_device(p.phone.clone(), Server::Pn, p.device);
                tokio::spawn(crate::history::after_link(
                    self.shared.clone(),
                    p.phone.clone(),
                    jid.clone(),
                ));
                tracing::info!(%jid, "device linked");
                let end = self
                    .close_with(&stream_error(StreamErrorKind::Restart))
                    .await;
                let _ = p.reply.send(Ok(jid));
                Err(end)
            }
            Err(why) => {
                tracing::info!(reason = %why, "pairing rejected");
                release(&self.shared, &p.phone, p.device);
                let _ = p.reply.send(Err(Error::PairingRejected(why)));
                self.writer.close();
                Err(End::Closed)
            }
        }
    }

    async fn iq_request(
        &mut self,
        id: &str,
        ty: &str,
        xmlns: &str,
        node: &Node,
    ) -> Result<(), End> {
        let logged_in = self.device.is_some();
        match (xmlns, ty) {
            ("w:p", "get") => {
                if self.shared.faults().ignore_pings {
                    return Ok(());
                }
                self.send(&iq_result(id)).await
            }
            ("w:m", "set") if logged_in && node.child("media_conn").is_some() => {
                let media = &self.shared.media;
                let reply = Node::builder("iq")
                    .attr("id", id.to_owned())
                    .attr("type", "result")
                    .attr("from", server_jid())
                    .children([Node::builder("media_conn")
                        .attr("auth", media.auth().to_owned())
                        .attr("ttl", "300")
                        .attr("auth_ttl", "21600")
                        .attr("max_buckets", "12")
                        .children([Node::builder("host")
                            .attr("hostname", media.hostname().to_owned())
                            .build()])
                        .build()])
                    .build();
                self.send(&reply).await
            }
            ("passive", "set") if logged_in => {
                let active = match (node.child("active"), node.child("passive")) {
                    (Some(_), _) => Some(true),
                    (None, Some(_)) => Some(false),
                    (None, None) => None,
                };
                if let Some(active) = active
                    && let Some(e) = self.shared.conns().get_mut(&self.id)
                {
                    e.active = active;
                }
                self.send(&iq_result(id)).await
            }
            ("encrypt", "set") if logged_in && node.child("list").is_some() => {
                let ok = self.store_prekeys(node);
                if ok {
                    self.send(&iq_result(id)).await
                } else {
                    self.send(&iq_error(id, 400, "bad-request")).await
                }
            }
            ("encrypt", "get") if logged_in && node.child("count").is_some() => {
                let n = self.prekey_count();
                let reply = Node::builder("iq")
                    .attr("from", server_jid())
                    .attr("type", "result")
                    .attr("id", id.to_owned())
                    .children([Node::builder("count").attr("value", n.to_string()).build()])
                    .build();
                self.send(&reply).await
            }
            ("abt", "get") if logged_in => {
                // A client that names the hash of the set it holds gets no props back
                // while the set is unchanged.
                let asked = node
                    .child("props")
                    .and_then(|p| p.attr_opt::<&str>("hash").ok().flatten())
                    .filter(|h| h.len() <= 64)
                    .map(str::to_owned);
                if let Some(me) = &self.device {
                    self.shared.props_hashes.push(me, asked.clone());
                }
                let (hash, props): (String, Vec<Node>) = {
                    let all = self
                        .shared
                        .props
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let hash = crate::sim::props_hash(&all);
                    let props = if asked.as_deref() == Some(hash.as_str()) {
                        Vec::new()
                    } else {
                        all.iter()
                            .map(|(k, v)| {
                                Node::builder("prop")
                                    .attr("config_code", k.clone())
                                    .attr("config_value", v.clone())
                                    .build()
                            })
                            .collect()
                    };
                    (hash, props)
                };
                let reply = Node::builder("iq")
                    .attr("from", server_jid())
                    .attr("type", "result")
                    .attr("id", id.to_owned())
                    .children([Node::builder("props")
                        .attr("protocol", "1")
                        .attr("hash", hash)
                        .children(props)
                        .build()])
                    .build();
                self.send(&reply).await
            }
            ("encrypt", "get") if logged_in && node.child("digest").is_some() => {
                let reply = match self.digest() {
                    Some(d) => Node::builder("iq")
                        .attr("from", server_jid())
                        .attr("type", "result")
                        .attr("id", id.to_owned())
                        .children([d])
                        .build(),
                    None => iq_error(id, 404, "item-not-found"),
                };
                self.send(&reply).await
            }
            ("encrypt", "get") if logged_in && node.child("key").is_some() => {
                let users = self.fetch_bundles(node);
                let reply = Node::builder("iq")
                    .attr("from", server_jid())
                    .attr("type", "result")
                    .attr("id", id.to_owned())
                    .children([Node::builder("list").children(users).build()])
                    .build();
                self.send(&reply).await
            }
            ("encrypt", "set") if logged_in && node.child("rotate").is_some() => {
                let ok = node
                    .child("rotate")
                    .and_then(|r| r.child("skey"))
                    .and_then(parse_skey)
                    .is_some_and(|skey| self.with_prekeys(|pk| pk.signed = Some(skey)));
                if ok {
                    self.send(&iq_result(id)).await
                } else {
                    self.send(&iq_error(id, 400, "bad-request")).await
                }
            }
            ("w:g2", "get" | "set") => {
                let Some(me) = self.device.clone() else {
                    return self.send(&iq_error(id, 401, "not-authorized")).await;
                };
                let reply = crate::group::iq(&self.shared, &me, id, ty, node);
                self.send(&reply).await
            }
            ("urn:xmpp:whatsapp:dirty", "set") if logged_in => {
                let reply = match (node.child("clean"), &self.device) {
                    (Some(clean), Some(me)) => {
                        let kind = clean.attr_opt::<&str>("type").ok().flatten().unwrap_or("");
                        let ts = clean.attr_opt::<u64>("timestamp").ok().flatten();
                        self.shared
                            .state
                            .lock()
                            .dirty
                            .clean(me.user.as_str(), kind, ts);
                        iq_result(id)
                    }
                    _ => iq_error(id, 400, "bad-request"),
                };
                self.send(&reply).await
            }
            ("w:stats", "set") if logged_in => {
                let buffer = node
                    .child("add")
                    .and_then(Node::content_bytes)
                    .filter(|b| b.starts_with(b"WAM") && b.len() <= 64 * 1024);
                let reply = match (buffer, &self.device) {
                    (Some(b), Some(me)) => {
                        self.shared.wam_buffers.push(me, b.to_vec());
                        iq_result(id)
                    }
                    _ => iq_error(id, 400, "bad-request"),
                };
                self.send(&reply).await
            }
            ("w:mex", "get") if logged_in => {
                let reply = self
                    .device
                    .as_ref()
                    .and_then(|me| {
                        crate::restriction::mex(&self.shared, me, id, node)
                            .or_else(|| crate::chats::mex(&self.shared, me, id, node))
                            .or_else(|| crate::newsletter::mex(&self.shared, me, id, node))
                    })
                    .unwrap_or_else(|| iq_error(id, 501, "feature-not-implemented"));
                self.send(&reply).await
            }
            ("newsletter", "get" | "set") if logged_in => {
                let Some(me) = self.device.clone() else {
                    return self.send(&iq_error(id, 401, "not-authorized")).await;
                };
                let reply = crate::newsletter::iq(&self.shared, &me, id, node);
                self.send(&reply).await
            }
            ("w:biz" | "w:biz:catalog" | "fb:thrift_iq", "get" | "set") if logged_in => {
                let reply = self
                    .device
                    .as_ref()
                    .and_then(|me| crate::business::iq(&self.shared, me, id, xmlns, ty, node))
                    .unwrap_or_else(|| iq_error(id, 501, "feature-not-implemented"));
                self.send(&reply).await
            }
            ("usync", "get") if logged_in => {
                self.shared
                    .usync_queries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let reply = {
                    let mut st = self.shared.state.lock();
                    let asker = self.device.as_ref().map(|d| d.user.as_str());
                    if let Some(asker) = asker {
                        crate::usync::record_tokens(&mut st, asker, node);
                    }
                    crate::usync::answer(&st, asker, id, node)
                };
                match reply {
                    Some(r) => self.send(&r).await,
                    None => self.send(&iq_error(id, 400, "bad-request")).await,
                }
            }
            ("md", "set") if logged_in && node.child("remove-companion-device").is_some() => {
                self.remove_companion(id, node).await
            }
            ("md", "get") if self.reg.is_some() => self.passkey_get(id, node).await,
            ("md", "set") if self.reg.is_some() && passkey_step(node) => {
                self.passkey_step(id, node).await
            }
            ("md", "set") if self.reg.is_some() => match node.child("link_code_companion_reg") {
                Some(reg_node) => self.link_code(id, reg_node).await,
                None => {
                    self.send(&iq_error(id, 501, "feature-not-implemented"))
                        .await
                }
            },
            ("w:sync:app:state", "set") if logged_in => {
                let reply = match self.device.as_ref() {
                    Some(me) => crate::appstate::iq(&self.shared, me, id, node),
                    None => iq_error(id, 401, "not-authorized"),
                };
                self.send(&reply).await
            }
            (
                "privacy" | "disappearing_mode" | "status" | "w:profile:picture" | "blocklist"
                | "bot",
                _,
            ) if logged_in => {
                let reply = self
                    .device
                    .as_ref()
                    .and_then(|me| crate::chats::iq(&self.shared, me, id, xmlns, ty, node))
                    .unwrap_or_else(|| iq_error(id, 501, "feature-not-implemented"));
                self.send(&reply).await
            }
            ("w:qr" | "tos" | "urn:xmpp:whatsapp:push", _) if logged_in => {
                let reply = self
                    .device
                    .as_ref()
                    .and_then(|me| crate::links::iq(&self.shared, me, id, xmlns, ty, node))
                    .unwrap_or_else(|| iq_error(id, 501, "feature-not-implemented"));
                self.send(&reply).await
            }
            _ => {
                self.send(&iq_error(id, 501, "feature-not-implemented"))
                    .await
            }
        }
    }

    /// `<remove-companion-device jid reason/>`: a companion unlinks itself (logout), or
    /// another device of the same account. The server answers, forgets the device and,
    /// when it is this connection's, closes it with `device_removed`.
    async fn remove_companion(&mut self, id: &str, node: &Node) -> Result<(), End> {
        let Some(me) = self.device.clone() else {
            return self.send(&iq_error(id, 401, "not-authorized")).await;
        };
        let target = node
            .child("remove-companion-device")
            .and_then(|n| n.attr_opt::<Jid>("jid").ok().flatten());
        // The device may be named by its PN or its LID.
        let own_lid = self.lid.as_ref().map(|l| l.user.clone());
        let Some(target) = target
            .filter(|t| t.device != 0)
            .filter(|t| t.user == me.user || (t.is_lid() && Some(&t.user) == own_lid.as_ref()))
            .map(|t| Jid::with_device(me.user.clone(), Server::Pn, t.device))
        else {
            return self.send(&iq_error(id, 400, "bad-request")).await;
        };
        let removed = {
            let mut st = self.shared.state.lock();
            st.accounts
                .get_mut(me.user.as_str())
                .and_then(|a| a.devices.remove(&target.device))
        };
        let Some(removed) = removed else {
            return self.send(&iq_error(id, 404, "item-not-found")).await;
        };
        notify_devices(
            &self.shared,
            me.user.as_str(),
            false,
            target.device,
            removed.key_index,
        );
        tracing::info!(device = %target, by = %me, "device unlinked");
        self.send(&iq_result(id)).await?;
        let target_is_me = target.device == me.device;
        let others: Vec<mpsc::Sender<Cmd>> = self
            .shared
            .conns()
            .iter()
            .filter(|(cid, c)| **cid != self.id && c.device.as_ref() == Some(&target))
            .map(|(_, c)| c.tx.clone())
            .collect();
        for tx in others {
            let _ = tx.try_send(Cmd::StreamError(StreamErrorKind::DeviceRemoved));
        }
        if target_is_me {
            return Err(self
                .close_with(&stream_error(StreamErrorKind::DeviceRemoved))
                .await);
        }
        Ok(())
    }

    fn prekey_count(&self) -> usize {
        let Some(jid) = &self.device else { return 0 };
        let st = self.shared.state.lock();
        st.accounts
            .get(jid.user.as_str())
            .and_then(|a| a.devices.get(&jid.device))
            .map_or(0, |d| d.prekeys.one_time.len())
    }

    /// Runs `f` on this device's stored keys; false when the device is gone.
    fn with_prekeys(&self, f: impl FnOnce(&mut PreKeys)) -> bool {
        let Some(jid) = &self.device else {
            return false;
        };
        let mut st = self.shared.state.lock();
        match st
            .accounts
            .get_mut(jid.user.as_str())
            .and_then(|a| a.devices.get_mut(&jid.device))
        {
            Some(d) => {
                f(&mut d.prekeys);
                true
            }
            None => false,
        }
    }

    /// `<digest>` of this device's key bundle as the server holds it.
    fn digest(&self) -> Option<Node> {
        let jid = self.device.as_ref()?;
        let st = self.shared.state.lock();
        let d = st
            .accounts
            .get(jid.user.as_str())?
            .devices
            .get(&jid.device)?;
        let pk = &d.prekeys;
        let mut children = key_bundle_nodes(pk, d.identity.as_bytes());
        children.push(
            Node::builder("list")
                .children(pk.one_time.iter().map(|(id, _)| {
                    Node::builder("id")
                        .bytes(id.to_be_bytes()[1..].to_vec())
                        .build()
                }))
                .build(),
        );
        Some(Node::builder("digest").children(children).build())
    }

    /// Pre-key bundles for `<key><user jid/>..</key>`; each one-time key is handed out once.
    fn fetch_bundles(&self, node: &Node) -> Vec<Node> {
        let Some(key) = node.child("key") else {
            return Vec::new();
        };
        let mut st = self.shared.state.lock();
        key.children_by_tag("user")
            .take(256)
            .filter_map(|user| user.attr::<Jid>("jid").ok())
            .map(|jid| route::bundle_node(&mut st, &jid))
            .collect()
    }

    /// Stores an upload; false when it is malformed (nothing is stored then).
    fn store_prekeys(&self, node: &Node) -> bool {
        let Some(jid) = &self.device else {
            return false;
        };
        let bytes = |path: &[&str]| node.child_by_path(path).and_then(|n| n.content_bytes());
        let registration = bytes(&["registration"]).and_then(|b| be_uint(b, 4));
        let identity = bytes(&["identity"]).filter(|b| b.len() == 32);
        let mut keys = Vec::new();
        if let Some(list) = node.child("list") {
            for k in list.children_by_tag("key") {
                let id = k
                    .child("id")
                    .and_then(|n| n.content_bytes())
                    .and_then(|b| be_uint(b, 3));
                let val = k
                    .child("value")
                    .and_then(|n| n.content_bytes())
                    .filter(|b| b.len() == 32);
                match (id, val) {
                    (Some(id), Some(v)) => keys.push((id, v.to_vec())),
                    _ => return false,
                }
            }
        }
        let skey = node.child("skey").and_then(parse_skey);
        let (Some(registration), Some(identity)) = (registration, identity) else {
            return false;
        };
        let mut st = self.shared.state.lock();
        let Some(dev) = st
            .accounts
            .get_mut(jid.user.as_str())
            .and_then(|a| a.devices.get_mut(&jid.device))
        else {
            return false;
        };
        let pk = &mut dev.prekeys;
        pk.registration_id = Some(registration);
        pk.identity = Some(identity.to_vec());
        if skey.is_some() {
            pk.signed = skey;
        }
        for (id, v) in keys {
            pk.one_time.retain(|(i, _)| *i != id);
            pk.one_time.push_back((id, v));
            if pk.one_time.len() > MAX_PREKEYS_PER_DEVICE {
                pk.one_time.pop_front();
            }
        }
        true
    }

    async fn link_code(&mut self, id: &str, node: &Node) -> Result<(), End> {
        let stage = node
            .attr_opt::<String>("stage")
            .ok()
            .flatten()
            .unwrap_or_default();
        match stage.as_str() {
            "companion_hello" => {
                let phone = node
                    .attr_opt::<Jid>("jid")
                    .ok()
                    .flatten()
                    .map(|j| j.user.as_str().to_owned());
                let wrapped = node
                    .child("link_code_pairing_wrapped_companion_ephemeral_pub")
                    .and_then(|n| n.content_bytes())
                    .filter(|b| b.len() == phone::WRAPPED_EPHEMERAL_LEN)
                    .map(<[u8]>::to_vec);
                let noise_ok = node
                    .child("companion_server_auth_key_pub")
                    .and_then(|n| n.content_bytes())
                    .is_some_and(|b| self.client_static.is_some_and(|k| k.as_bytes()[..] == *b));
                let (Some(phone), Some(wrapped), true) = (phone, wrapped, noise_ok) else {
                    return self.send(&iq_error(id, 400, "bad-request")).await;
                };
                if !self.shared.state.lock().accounts.contains_key(&phone) {
                    return self.send(&iq_error(id, 404, "item-not-found")).await;
                }
                let code_ref = format!("2@{}", fresh_id());
                if let Some(reg) = self.reg.as_mut() {
                    reg.code_ref = Some(code_ref.clone());
                    reg.pairing_until = Some(Instant::now() + CODE_ENTRY_TIME);
                }
                if let Some(e) = self.shared.conns().get_mut(&self.id) {
                    e.code = Some((phone, wrapped));
                }
                let reply = Node::builder("iq")
                    .attr("from", server_jid())
                    .attr("type", "result")
                    .attr("id", id.to_owned())
                    .children([Node::builder("link_code_companion_reg")
                        .children([Node::builder("link_code_pairing_ref")
                            .bytes(Bytes::from(code_ref.into_bytes()))
                            .build()])
                        .build()])
                    .build();
                self.send(&reply).await
            }
            "companion_finish" => {
                let Some(wait) = self.reg.as_mut().and_then(|r| r.code_wait.take()) else {
                    return self.send(&iq_error(id, 400, "bad-request")).await;
                };
                self.send(&iq_result(id)).await?;
                match self.finish_code(node, &wait) {
                    Ok(adv) => {
                        self.pair_success(wait.phone, &adv, "code".to_owned(), wait.reply)
                            .await
                    }
                    Err(why) => {
                        let _ = wait.reply.send(Err(Error::PairingRejected(why)));
                        Ok(())
                    }
                }
            }
            _ => self.send(&iq_error(id, 400, "bad-request")).await,
        }
    }

    /// The phone scanned the QR and the account links by passkey: the request.
    async fn passkey_start(
        &mut self,
        phone: String,
        qr_adv_secret: Zeroizing<Vec<u8>>,
        scan: PasskeyScan,
        reply: PairReply,
    ) -> Result<(), End> {
        let Some(reg) = self.reg.as_mut() else {
            let _ = reply.send(Err(Error::ConnectionGone));
            return Ok(());
        };
        if reg.pending.is_some() || reg.passkey.is_some() {
            let _ = reply.send(Err(Error::PairingRejected(
                "a pairing is already in progress".into(),
            )));
            return Ok(());
        }
        let mut challenge = [0u8; 32];
        OsRng.fill_bytes(&mut challenge);
        let credential = passkey::credential_id(&phone);
        let options = passkey::request_options(&challenge, &credential);
        let sent_options = if scan.options_by_query {
            b"{\"challenge\":".to_vec()
        } else {
            options.clone().into_bytes()
        };
        reg.pairing_until = Some(Instant::now() + self.shared.config.pair_timeout);
        reg.passkey = Some(PasskeyWait {
            phone: phone.clone(),
            scan,
            options,
            challenge,
            credential,
            qr_adv_secret,
            companion_ref: None,
            prologue: None,
            primary: None,
            key: None,
            reply,
        });
        self.shared.passkeys().insert(
            phone,
            PasskeySeen {
                prologue: None,
                code: None,
            },
        );
        let request = Node::builder("notification")
            .attr("from", server_jid())
            .attr("id", fresh_id())
            .attr("type", "passkey_prologue_request")
            .attr("t", unix_now())
            .children([Node::builder("passkey_request_options")
                .bytes(Bytes::from(sent_options))
                .build()])
            .build();
        self.send(&request).await?;
        if scan.continuation == PasskeyContinuation::EarlyExtra {
            let stray = KeyPair::generate(&mut OsRng);
            let identity = passkey::primary_identity(stray.public.as_bytes(), &[1; 32]);
            self.send(&continuation(identity)).await?;
        }
        Ok(())
    }

    /// `<iq xmlns=md type=get>` on a registration connection: the passkey options again,
    /// or a companion ref for the prologue.
    async fn passkey_get(&mut self, id: &str, node: &Node) -> Result<(), End> {
        let Some(wait) = self.reg.as_mut().and_then(|r| r.passkey.as_mut()) else {
            return self.send(&iq_error(id, 404, "item-not-found")).await;
        };
        let child = if node.child("passkey_request_options").is_some() {
            Node::builder("passkey_request_options")
                .bytes(Bytes::from(wait.options.clone().into_bytes()))
                .build()
        } else if node.child("ref").is_some() {
            let reference = format!("2@{}", fresh_id());
            wait.companion_ref = Some(reference.clone());
            Node::builder("ref")
                .bytes(Bytes::from(reference.into_bytes()))
                .build()
        } else {
            return self
                .send(&iq_error(id, 501, "feature-not-implemented"))
                .await;
        };
        let reply = Node::builder("iq")
            .attr("from", server_jid())
            .attr("type", "result")
            .attr("id", id.to_owned())
            .children([child])
            .build();
        self.send(&reply).await
    }

    /// `<passkey_prologue>`, `<companion_nonce>` or `<encrypted_pairing_request>`. A step
    /// that fails its checks is answered with error 401 and ends the passkey link.
    async fn passkey_step(&mut self, id: &str, node: &Node) -> Result<(), End> {
        let Some(mut wait) = self.reg.as_mut().and_then(|r| r.passkey.take()) else {
            return self.send(&iq_error(id, 400, "bad-request")).await;
        };
        let step = if let Some(p) = node.child("passkey_prologue") {
            self.passkey_prologue(&mut wait, p)
        } else if let Some(n) = node.child("companion_nonce") {
            self.passkey_nonce(&mut wait, n)
        } else if let Some(r) = node.child("encrypted_pairing_request") {
            match self.passkey_request(&wait, r) {
                Ok(adv) => {
                    self.send(&iq_result(id)).await?;
                    return self
                        .pair_success(wait.phone, &adv, "passkey".to_owned(), wait.reply)
                        .await;
                }
                Err(why) => Err(why),
            }
        } else {
            Err("unknown passkey step".to_owned())
        };
        match step {
            Ok(follow) => {
                self.send(&iq_result(id)).await?;
                if let Some(reg) = self.reg.as_mut() {
                    reg.passkey = Some(wait);
                }
                for n in follow {
                    self.send(&n).await?;
                }
                Ok(())
            }
            Err(why) => {
                tracing::info!(reason = %why, "passkey link rejected");
                if let Some(reg) = self.reg.as_mut() {
                    reg.pairing_until = None;
                }
                let _ = wait.reply.send(Err(Error::PairingRejected(why)));
                self.send(&iq_error(id, 401, "not-authorized")).await
            }
        }
    }

    /// Checks the prologue and returns the primary's continuation(s) to send.
    fn passkey_prologue(&self, wait: &mut PasskeyWait, node: &Node) -> Result<Vec<Node>, String> {
        if wait.prologue.is_some() {
            return Err("a prologue was already accepted".into());
        }
        let get = |tag: &str| node.child(tag).and_then(|n| n.content_bytes());
        let credential_id = get("credential_id").ok_or("no credential_id")?;
        let assertion = get("webauthn_assertion").ok_or("no webauthn_assertion")?;
        let payload = get("prologue_payload").ok_or("no prologue_payload")?;
        passkey::check_assertion(assertion, credential_id, &wait.credential, &wait.challenge)?;
        let prologue = passkey::parse_prologue(payload)?;
        if wait.companion_ref.as_deref() != Some(prologue.reference.as_str()) {
            return Err("prologue names a ref the server did not hand out".into());
        }
        let handoff_proof = match get("pairing_handoff_proof") {
            None => false,
            Some(proof) if passkey::handoff_proof_ok(&wait.qr_adv_secret, payload, proof) => true,
            Some(_) => return Err("handoff proof does not verify".into()),
        };
        if let Some(seen) = self.shared.passkeys().get_mut(&wait.phone) {
            seen.prologue = Some(passkey::PasskeyPrologue {
                credential_id: credential_id.to_vec(),
                assertion: String::from_utf8_lossy(assertion).into_owned(),
                handoff_proof,
                device_type: prologue.device_type,
            });
        }
        let primary = KeyPair::generate(&mut OsRng);
        let mut nonce = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(nonce.as_mut());
        let mut follow = Vec::new();
        let shown = match wait.scan.continuation {
            PasskeyContinuation::MalformedFirst => {
                let cut = &primary.public.as_bytes()[..31];
                follow.push(continuation(passkey::primary_identity(cut, nonce.as_ref())));
                primary.public
            }
            PasskeyContinuation::SwapKey => KeyPair::generate(&mut OsRng).public,
            _ => primary.public,
        };
        follow.push(continuation(passkey::primary_identity(
            shown.as_bytes(),
            nonce.as_ref(),
        )));
        wait.prologue = Some(prologue);
        wait.primary = Some((primary, nonce));
        Ok(follow)
    }

    /// Checks the revealed nonce against the commitment; derives the key and the code.
    fn passkey_nonce(&self, wait: &mut PasskeyWait, node: &Node) -> Result<Vec<Node>, String> {
        let (Some(prologue), Some((primary, primary_nonce))) = (&wait.prologue, &wait.primary)
        else {
            return Err("companion nonce before the prologue".into());
        };
        if wait.key.is_some() {
            return Err("the companion nonce was already revealed".into());
        }
        let nonce = node.content_bytes().ok_or("empty companion nonce")?;
        if nonce.len() != 32 || !passkey::commitment_ok(prologue, nonce) {
            return Err("companion nonce does not match the commitment".into());
        }
        let key = passkey::request_key(primary, prologue)?;
        let code = passkey::code(primary_nonce.as_ref(), nonce, &primary.public);
        if let Some(seen) = self.shared.passkeys().get_mut(&wait.phone) {
            seen.code = Some(code);
        }
        wait.key = Some(key);
        Ok(Vec::new())
    }

    /// Opens the pairing request; returns the ADV secret it carries.
    fn passkey_request(
        &self,
        wait: &PasskeyWait,
        node: &Node,
    ) -> Result<Zeroizing<Vec<u8>>, String> {
        let key = wait
            .key
            .as_ref()
            .ok_or("pairing request before the companion nonce")?;
        let sealed = node.content_bytes().ok_or("empty pairing request")?;
        let opened = passkey::open_request(key, sealed)?;
        let reg = self.reg.as_ref().ok_or("not registering")?;
        if Some(opened.noise) != self.client_static {
            return Err("pairing request names another noise key".into());
        }
        if opened.identity != reg.identity {
            return Err("pairing request names another identity key".into());
        }
        Ok(opened.adv_secret)
    }

    /// Checks companion_finish and derives the new ADV secret.
    fn finish_code(&self, node: &Node, wait: &CodeWait) -> Result<Zeroizing<Vec<u8>>, String> {
        let get = |tag: &str| node.child(tag).and_then(|n| n.content_bytes());
        let reg = self.reg.as_ref().ok_or("not registering")?;
        if get("link_code_pairing_ref") != reg.code_ref.as_ref().map(|r| r.as_bytes()) {
            return Err("pairing ref mismatch".into());
        }
        let identity = get("companion_identity_public")
            .and_then(|b| PublicKey::from_slice(b).ok())
            .ok_or("companion_identity_public missing")?;
        if identity != reg.identity {
            return Err("companion identity differs from the registration payload".into());
        }
        let wrapped = get("link_code_pairing_wrapped_key_bundle").ok_or("key bundle missing")?;
        let shared = wait.primary_ephemeral.dh(&wait.companion_ephemeral);
        let bundle = phone::open_key_bundle(shared.as_bytes(), wrapped)?;
        let account = {
            let st = self.shared.state.lock();
            st.accounts.get(&wait.phone).map(|a| a.identity.clone())
        }
        .ok_or("account gone")?;
        if bundle.companion_identity != identity || bundle.primary_identity != account.public {
            return Err("key bundle names other identities".into());
        }
        let identity_shared = account.dh(&identity);
        Ok(phone::code_adv_secret(
            shared.as_bytes(),
            identity_shared.as_bytes(),
            &bundle.random,
        ))
    }
}
