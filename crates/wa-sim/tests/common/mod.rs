//! A tiny client for the simulator's tests, built from the sans-IO cores only.

#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod party;

use std::future::Future;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use prost::Message;
use rand_core::{OsRng, RngCore};
use wa_binary::{Jid, Node};
use wa_crypto::{KeyPair, PublicKey, hmac_sha256};
use wa_noise::{FrameDecoder, Initiator, InitiatorConfig, Transport};
use wa_proto::adv::{AdvDeviceIdentity, AdvSignedDeviceIdentity, AdvSignedDeviceIdentityHmac};
use wa_proto::handshake::ClientPayload;
use wa_proto::handshake::client_payload::DevicePairingRegistrationData;

pub const WAIT: Duration = Duration::from_secs(10);

struct SpawnExecutor;

impl<Fut> hyper::rt::Executor<Fut> for SpawnExecutor
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        tokio::spawn(fut);
    }
}

/// A companion's keys.
#[derive(Clone)]
pub struct Creds {
    pub noise: KeyPair,
    pub identity: KeyPair,
    pub adv_secret: [u8; 32],
    pub registration_id: u32,
    pub signed_prekey: KeyPair,
}

impl Creds {
    pub fn new() -> Self {
        let mut adv_secret = [0u8; 32];
        OsRng.fill_bytes(&mut adv_secret);
        Self {
            noise: KeyPair::generate(&mut OsRng),
            identity: KeyPair::generate(&mut OsRng),
            adv_secret,
            registration_id: OsRng.next_u32() & 0x3fff,
            signed_prekey: KeyPair::generate(&mut OsRng),
        }
    }

    pub fn registration_payload(&self) -> ClientPayload {
        let spk_sig = self
            .identity
            .sign(&self.signed_prekey.public.serialize(), &mut OsRng);
        ClientPayload {
            passive: Some(false),
            pull: Some(false),
            connect_type: Some(1),
            connect_reason: Some(1),
            device_pairing_data: Some(Box::new(DevicePairingRegistrationData {
                e_regid: Some(self.registration_id.to_be_bytes().to_vec()),
                e_keytype: Some(vec![5]),
                e_ident: Some(self.identity.public.as_bytes().to_vec()),
                e_skey_id: Some(vec![0, 0, 1]),
                e_skey_val: Some(self.signed_prekey.public.as_bytes().to_vec()),
                e_skey_sig: Some(spk_sig.as_bytes().to_vec()),
                build_hash: Some(vec![0; 16]),
                device_props: Some(vec![]),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    /// The QR string for `reference`.
    pub fn qr(&self, reference: &str) -> String {
        format!(
            "https://wa.me/settings/linked_devices#{},{},{},{},1",
            reference,
            STANDARD.encode(self.noise.public.as_bytes()),
            STANDARD.encode(self.identity.public.as_bytes()),
            STANDARD.encode(self.adv_secret),
        )
    }

    /// The companion's checks on pair-success, then its signed reply (PROTOCOL.md §4).
    /// Returns the reply node and the `<device jid>`.
    pub fn answer_pair_success(&self, iq: &Node) -> Result<(Node, Jid), String> {
        let ps = iq.child("pair-success").ok_or("no pair-success")?;
        let raw = ps
            .child("device-identity")
            .and_then(|n| n.content_bytes())
            .ok_or("no device-identity")?;
        let container = AdvSignedDeviceIdentityHmac::decode(raw).map_err(|e| e.to_string())?;
        let inner = container.details.ok_or("no details")?;
        if hmac_sha256(&self.adv_secret, &inner)[..]
            != *container.hmac.as_deref().unwrap_or_default()
        {
            return Err("hmac-mismatch".into());
        }
        let mut signed = AdvSignedDeviceIdentity::decode(&inner[..]).map_err(|e| e.to_string())?;
        let details = signed.details.clone().ok_or("no inner details")?;
        let account =
            PublicKey::from_slice(signed.account_signature_key.as_deref().unwrap_or_default())
                .map_err(|e| e.to_string())?;
        let mut msg = vec![6, 0];
        msg.extend_from_slice(&details);
        msg.extend_from_slice(self.identity.public.as_bytes());
        if !account.verify_slice(
            &msg,
            signed.account_signature.as_deref().unwrap_or_default(),
        ) {
            return Err("signature-mismatch".into());
        }
        let mut msg = vec![6, 1];
        msg.extend_from_slice(&details);
        msg.extend_from_slice(self.identity.public.as_bytes());
        msg.extend_from_slice(account.as_bytes());
        signed.device_signature = Some(self.identity.sign(&msg, &mut OsRng).as_bytes().to_vec());
        signed.account_signature_key = None;
        let key_index = AdvDeviceIdentity::decode(&details[..])
            .map_err(|e| e.to_string())?
            .key_index
            .unwrap_or_default();
        let jid: Jid = ps
            .child("device")
            .ok_or("no device")?
            .attr("jid")
            .map_err(|e| e.to_string())?;
        let reply = Node::builder("iq")
            .attr("to", Jid::server_jid())
            .attr("type", "result")
            .attr("id", iq.attr::<String>("id").map_err(|e| e.to_string())?)
            .children([Node::builder("pair-device-sign")
                .children([Node::builder("device-identity")
                    .attr("key-index", key_index.to_string())
                    .bytes(signed.encode_to_vec())
                    .build()])
                .build()])
            .build();
        Ok((reply, jid))
    }
}

pub fn login_payload(phone: &str, device: u16) -> ClientPayload {
    ClientPayload {
        username: Some(phone.parse().expect("phone digits")),
        device: Some(u32::from(device)),
        passive: Some(true),
        pull: Some(true),
        connect_type: Some(1),
        connect_reason: Some(1),
        ..Default::default()
    }
}

/// One client connection after the Noise handshake.
pub struct Client {
    ws: WebSocket<TokioIo<Upgraded>>,
    frames: FrameDecoder,
    transport: Transport,
    closed: bool,
}

async fn open_ws(
    url: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> WebSocket<TokioIo<Upgraded>> {
    let authority = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .and_then(|r| r.strip_suffix("/ws/chat"))
        .expect("ws://HOST:PORT/ws/chat");
    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    let req = hyper::Request::get("/ws/chat")
        .header("host", authority)
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("origin", "https://web.whatsapp.com")
        .header(
            "sec-websocket-key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("sec-websocket-version", "13")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let (mut ws, _) = match tls {
        Some(connector) => {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let stream = connector.connect(name, tcp).await.expect("TLS handshake");
            fastwebsockets::handshake::client(&SpawnExecutor, req, stream)
                .await
                .expect("websocket handshake")
        }
        None => fastwebsockets::handshake::client(&SpawnExecutor, req, tcp)
            .await
            .expect("websocket handshake"),
    };
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    ws
}
/// A websocket to the server with nothing sent yet.
pub async fn raw_ws(url: &str) -> WebSocket<TokioIo<Upgraded>> {
    open_ws(url, None).await
}

/// Reads the next binary message; `None` when the connection closed.
async fn read_binary(ws: &mut WebSocket<TokioIo<Upgraded>>) -> Option<Vec<u8>> {
    loop {
        let frame = ws.read_frame().await.ok()?;
        match frame.opcode {
            OpCode::Binary | OpCode::Continuation => return Some(frame.payload.to_vec()),
            OpCode::Close => return None,
            _ => {}
        }
    }
}

impl Client {
    /// Connects and completes the handshake with `payload`.
    pub async fn connect(
        url: &str,
        root: PublicKey,
        noise: &KeyPair,
        payload: &ClientPayload,
        routing_info: Option<Vec<u8>>,
    ) -> Result<Client, String> {
        Self::connect_with(url, root, noise, payload, routing_info, None).await
    }

    /// [`connect`](Self::connect), over TLS when `tls` is given.
    pub async fn connect_with(
        url: &str,
        root: PublicKey,
        noise: &KeyPair,
        payload: &ClientPayload,
        routing_info: Option<Vec<u8>>,
        tls: Option<&tokio_rustls::TlsConnector>,
    ) -> Result<Client, String> {
        let mut ws = open_ws(url, tls).await;
        let init = Initiator::new(
            InitiatorConfig {
                trusted_root: root,
                routing_info,
            },
            noise.clone(),
            KeyPair::generate(&mut OsRng),
        );
        let (hello, awaiting) = init.client_hello().map_err(|e| e.to_string())?;
        ws.write_frame(Frame::binary(Payload::Owned(hello.to_vec())))
            .await
            .map_err(|e| e.to_string())?;
        let mut frames = FrameDecoder::client();
        let server_hello = loop {
            if let Some(f) = frames.next_frame().map_err(|e| e.to_string())? {
                break f;
            }
            let data = read_binary(&mut ws)
                .await
                .ok_or("closed during handshake")?;
            frames.push(&data).map_err(|e| e.to_string())?;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let verified = awaiting
            .read_server_hello(&server_hello, now)
            .map_err(|e| e.to_string())?;
        let (finish, transport) = verified
            .client_finish(&payload.encode_to_vec())
            .map_err(|e| e.to_string())?;
        ws.write_frame(Frame::binary(Payload::Owned(finish.to_vec())))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Client {
            ws,
            frames,
            transport,
            closed: false,
        })
    }

    pub async fn send(&mut self, node: &Node) {
        let frame = self
            .transport
            .encrypt(&wa_binary::encode(node))
            .expect("encrypt");
        self.ws
            .write_frame(Frame::binary(Payload::Owned(frame.to_vec())))
            .await
            .expect("send");
    }

    /// Sends a node; `Err` once the connection is gone (where [`send`](Self::send)
    /// panics).
    pub async fn try_send(&mut self, node: &Node) -> Result<(), String> {
        let frame = self
            .transport
            .encrypt(&wa_binary::encode(node))
            .map_err(|e| e.to_string())?;
        self.ws
            .write_frame(Frame::binary(Payload::Owned(frame.to_vec())))
            .await
            .map_err(|e| e.to_string())
    }

    /// Sends raw bytes as one websocket message.
    pub async fn send_raw(&mut self, data: &[u8]) {
        self.ws
            .write_frame(Frame::binary(Payload::Owned(data.to_vec())))
            .await
            .expect("send");
    }

    /// The next node; `None` once the server closed the connection.
    pub async fn recv(&mut self) -> Option<Node> {
        loop {
            if self.closed {
                return None;
            }
            match self.frames.next_frame() {
                Ok(Some(mut f)) => {
                    self.transport.decrypt_in_place(&mut f).expect("decrypt");
                    let bytes: BytesMut = f;
                    return Some(wa_binary::decode(bytes.freeze()).expect("decode"));
                }
                Ok(None) => {}
                Err(e) => panic!("framing: {e}"),
            }
            match read_binary(&mut self.ws).await {
                Some(d) => self.frames.push(&d).expect("push"),
                None => self.closed = true,
            }
        }
    }

    /// The next node within [`WAIT`]; panics on timeout.
    pub async fn next(&mut self) -> Option<Node> {
        tokio::time::timeout(WAIT, self.recv())
            .await
            .expect("timed out waiting for a node")
    }

    /// The next node within `d`; `Err` on timeout.
    pub async fn next_within(
        &mut self,
        d: Duration,
    ) -> Result<Option<Node>, tokio::time::error::Elapsed> {
        tokio::time::timeout(d, self.recv()).await
    }

    /// Reads until the connection closes; returns the nodes seen.
    pub async fn drain(&mut self) -> Vec<Node> {
        let mut out = Vec::new();
        while let Some(n) = self.next().await {
            out.push(n);
        }
        out
    }

    /// Sends an iq and waits for the node answering it (other nodes are skipped).
    pub async fn query(&mut self, node: Node) -> Node {
        let id: String = node.attr("id").expect("iq id");
        self.send(&node).await;
        loop {
            let n = self
                .next()
                .await
                .expect("closed while waiting for an iq answer");
            if n.tag() == "iq" && n.attr::<String>("id").ok().as_deref() == Some(id.as_str()) {
                return n;
            }
        }
    }
}

pub fn iq(id: &str, ty: &'static str, xmlns: &'static str, children: Vec<Node>) -> Node {
    Node::builder("iq")
        .attr("id", id.to_owned())
        .attr("to", Jid::server_jid())
        .attr("type", ty)
        .attr("xmlns", xmlns)
        .children(children)
        .build()
}

pub fn attr(n: &Node, key: &str) -> Option<String> {
    n.attr_opt::<String>(key).ok().flatten()
}

/// Connects `creds` unregistered, acknowledges the server's `pair-device` and returns
/// the connection with the QR string of its first ref.
pub async fn awaiting_scan(sim: &wa_sim::Sim, creds: &Creds) -> (Client, String) {
    let mut c = Client::connect(
        &sim.ws_url(),
        sim.root_public_key(),
        &creds.noise,
        &creds.registration_payload(),
        None,
    )
    .await
    .expect("connect");
    let pd = c.next().await.expect("pair-device");
    let qr = creds.qr(&first_ref(&pd));
    c.send(&result_for(&pd)).await;
    (c, qr)
}

/// Registers `creds` on `sim` for `phone` by QR, start to finish. Returns the device JID.
pub async fn register(sim: &wa_sim::Sim, phone: &str, creds: &Creds) -> Jid {
    let (mut c, qr) = awaiting_scan(sim, creds).await;
    let scan = sim.scan_qr(phone, &qr);
    // Drive the scan and the client together.
    let client =
        async {
            let ps = c.next().await.expect("pair-success");
            let (reply, jid) = creds.answer_pair_success(&ps).expect("valid pair-success");
            c.send(&reply).await;
            let end = c.drain().await;
            assert!(end.iter().any(|n| {
                n.tag() == "stream:error" && attr(n, "code").as_deref() == Some("515")
            }));
            jid
        };
    let (r, jid) = tokio::join!(scan, client);
    assert_eq!(r.as_ref().ok(), Some(&jid));
    jid
}

pub fn first_ref(pair_device: &Node) -> String {
    let pd = pair_device.child("pair-device").expect("pair-device");
    let r = pd.children_by_tag("ref").next().expect("a ref");
    String::from_utf8(r.content_bytes().expect("ref bytes").to_vec()).expect("utf8 ref")
}

pub fn refs(pair_device: &Node) -> Vec<String> {
    pair_device
        .child("pair-device")
        .expect("pair-device")
        .children_by_tag("ref")
        .map(|r| String::from_utf8(r.content_bytes().unwrap_or_default().to_vec()).unwrap())
        .collect()
}

pub fn result_for(iq: &Node) -> Node {
    Node::builder("iq")
        .attr("to", Jid::server_jid())
        .attr("type", "result")
        .attr("id", attr(iq, "id").expect("iq id"))
        .build()
}

/// Logs in; returns the client and the nodes up to `<ib><offline>`.
pub async fn login(sim: &wa_sim::Sim, creds: &Creds, device: &Jid) -> (Client, Vec<Node>) {
    let mut c = Client::connect(
        &sim.ws_url(),
        sim.root_public_key(),
        &creds.noise,
        &login_payload(device.user.as_str(), device.device),
        None,
    )
    .await
    .expect("connect");
    let mut seen = Vec::new();
    loop {
        let n = c.next().await.expect("closed during login");
        let done = n.tag() == "ib" && n.child("offline").is_some();
        let failed = n.tag() == "failure";
        seen.push(n);
        if done || failed {
            return (c, seen);
        }
    }
}
