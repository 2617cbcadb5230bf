//! The XX handshake as two sans-IO state machines, one type per state.
//!
//! Each transition consumes the state it starts from, so a failed step leaves nothing to
//! call: after an error no further handshake bytes can be produced.
//!
//! ```text
//! initiator (client)                                      responder (server)
//! Initiator::client_hello ---- intro || [e] ------------> Responder::read_client_hello
//! InitiatorAwaitingServerHello <--- [e, enc(s), enc(cert chain)] ---'
//!   ::read_server_hello(frame, now)   (ee, es, verifies the chain)
//! InitiatorVerified::client_finish -- [enc(s), enc(payload)] --> ResponderAwaitingFinish
//!   -> Transport                                                ::read_client_finish (se)
//!                                                               -> ClientFinished{Transport}
//! ```
//!
//! Byte-level steps, both sides (`h`, `ck` as in the symmetric state):
//! 1. MixHash(`WA 06 03`) (the prologue), then MixHash(e_client). Unlike standard Noise,
//!    no MixHash of the empty first payload follows.
//! 2. MixHash(e_server); MixKey(DH(e, e)); EncryptAndHash(s_server);
//!    MixKey(DH(s_server, e_client)); EncryptAndHash(cert chain).
//! 3. EncryptAndHash(s_client); MixKey(DH(s_client, e_server)); EncryptAndHash(payload).
//! 4. Split: the client sends with the first key, the server with the second.

use bytes::BytesMut;
use prost::Message;
use wa_crypto::{KeyPair, PublicKey, SharedSecret};
use zeroize::Zeroizing;

use crate::cert::{CertDetails, WA_ROOT_PUBLIC_KEY, verify_cert_chain};
use crate::error::{Error, HandshakeStep};
use crate::frame::{WA_HEADER, encode_frame, encode_intro};
use crate::symmetric::SymmetricState;
use crate::transport::Transport;
use wa_proto::handshake::handshake_message::{ClientFinish, ClientHello, ServerHello};
use wa_proto::handshake::{ClientPayload, HandshakeMessage};

/// Client-side handshake settings.
#[derive(Debug, Clone)]
pub struct InitiatorConfig {
    /// The root key the server's intermediate certificate must be signed by. Default:
    /// [`WA_ROOT_PUBLIC_KEY`]; a local server's own root otherwise.
    pub trusted_root: PublicKey,
    /// Routing info (from `<edge_routing>`) to send in the `ED` prefix before the header.
    pub routing_info: Option<Vec<u8>>,
}

impl Default for InitiatorConfig {
    fn default() -> Self {
        Self {
            trusted_root: WA_ROOT_PUBLIC_KEY,
            routing_info: None,
        }
    }
}

/// The client side before anything was sent.
pub struct Initiator {
    config: InitiatorConfig,
    noise_static: KeyPair,
    ephemeral: KeyPair,
}

/// The client after sending ClientHello, waiting for ServerHello.
///
/// Reading the ServerHello consumes this state whether it succeeds or not, so a client
/// whose handshake failed has nothing left to send with:
///
/// ```compile_fail
/// # use wa_noise::InitiatorAwaitingServerHello;
/// fn retry(hs: InitiatorAwaitingServerHello, hello: &[u8]) {
///     if hs.read_server_hello(hello, 0).is_err() {
///         let _ = hs.read_server_hello(hello, 0); // error: use of moved value
///     }
/// }
/// ```
pub struct InitiatorAwaitingServerHello {
    ss: SymmetricState,
    trusted_root: PublicKey,
    noise_static: KeyPair,
    ephemeral: KeyPair,
}

/// The client after a ServerHello that decrypted and whose certificate chain verified.
pub struct InitiatorVerified {
    ss: SymmetricState,
    noise_static: KeyPair,
    server_ephemeral: PublicKey,
    server_static: PublicKey,
    leaf: CertDetails,
}

impl Initiator {
    /// Prepares a handshake with the client's long-term Noise key pair and a fresh
    /// ephemeral key pair (injectable, so that tests can be deterministic).
    pub fn new(config: InitiatorConfig, noise_static: KeyPair, ephemeral: KeyPair) -> Self {
        Self {
            config,
            noise_static,
            ephemeral,
        }
    }

    /// Message 1. Returns the bytes of the first websocket message: the intro (optional
    /// routing prefix, `WA 06 03`) and the framed `HandshakeMessage{clientHello}`.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] when the configured routing info does not fit a 3-byte
    /// length.
    pub fn client_hello(self) -> Result<(BytesMut, InitiatorAwaitingServerHello), Error> {
        let mut ss = SymmetricState::new(&WA_HEADER);
        ss.mix_hash(self.ephemeral.public.as_bytes());
        let msg = HandshakeMessage {
            client_hello: Some(Box::new(ClientHello {
                ephemeral: Some(self.ephemeral.public.as_bytes().to_vec()),
                ..Default::default()
            })),
            ..Default::default()
        }
        .encode_to_vec();
        let mut out = BytesMut::new();
        encode_intro(self.config.routing_info.as_deref(), &mut out)?;
        encode_frame(&msg, &mut out)?;
        Ok((
            out,
            InitiatorAwaitingServerHello {
                ss,
                trusted_root: self.config.trusted_root,
                noise_static: self.noise_static,
                ephemeral: self.ephemeral,
            },
        ))
    }
}

impl InitiatorAwaitingServerHello {
    /// Message 2. `frame` is one frame payload (without its length header). Performs ee,
    /// decrypts the server's static key, es, decrypts the certificate chain and verifies
    /// it against the trusted root with `now` (unix seconds) for the validity checks.
    ///
    /// # Errors
    /// [`Error::MalformedHandshake`], [`Error::MissingField`], [`Error::LowOrderKey`],
    /// [`Error::HandshakeDecrypt`], or any certificate error of
    /// [`verify_cert_chain`](crate::verify_cert_chain).
    pub fn read_server_hello(mut self, frame: &[u8], now: u64) -> Result<InitiatorVerified, Error> {
        const STEP: HandshakeStep = HandshakeStep::ServerHello;
        let msg = HandshakeMessage::decode(frame).map_err(|_| Error::MalformedHandshake(STEP))?;
        let hello = msg.server_hello.ok_or(missing(STEP, "serverHello"))?;
        let server_ephemeral = key_field(hello.ephemeral.as_deref(), STEP, "ephemeral")?;
        let static_ct = hello.r#static.ok_or(missing(STEP, "static"))?;
        let payload_ct = hello.payload.ok_or(missing(STEP, "payload"))?;

        let ss = &mut self.ss;
        ss.mix_hash(server_ephemeral.as_bytes());
        ss.mix_key(checked_dh(&self.ephemeral, &server_ephemeral, STEP)?.as_bytes());
        let server_static = ss
            .decrypt_and_hash(&static_ct)
            .ok_or(Error::HandshakeDecrypt {
                step: STEP,
                field: "static",
            })?;
        let server_static = key_field(Some(&server_static), STEP, "static")?;
        ss.mix_key(checked_dh(&self.ephemeral, &server_static, STEP)?.as_bytes());
        let chain = ss
            .decrypt_and_hash(&payload_ct)
            .ok_or(Error::HandshakeDecrypt {
                step: STEP,
                field: "payload",
            })?;
        let leaf = verify_cert_chain(&chain, &self.trusted_root, &server_static, now)?;
        Ok(InitiatorVerified {
            ss: self.ss,
            noise_static: self.noise_static,
            server_ephemeral,
            server_static,
            leaf,
        })
    }
}

impl InitiatorVerified {
    /// The server's static key, proven in the handshake and certified by the chain.
    pub fn server_static(&self) -> &PublicKey {
        &self.server_static
    }

    /// The verified leaf certificate.
    pub fn server_certificate(&self) -> &CertDetails {
        &self.leaf
    }

    /// Message 3. Encrypts the client's static key, performs se, encrypts `payload` (an
    /// encoded `ClientPayload`) and splits. Returns the framed
    /// `HandshakeMessage{clientFinish}` and the transport ciphers.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] when `payload` does not fit in one frame;
    /// [`Error::LowOrderKey`].
    pub fn client_finish(mut self, payload: &[u8]) -> Result<(BytesMut, Transport), Error> {
        const STEP: HandshakeStep = HandshakeStep::ClientFinish;
        let ss = &mut self.ss;
        let static_ct = ss
            .encrypt_and_hash(self.noise_static.public.as_bytes())
            .ok_or(Error::PayloadTooLarge(32))?;
        ss.mix_key(checked_dh(&self.noise_static, &self.server_ephemeral, STEP)?.as_bytes());
        let payload_ct = ss
            .encrypt_and_hash(payload)
            .ok_or(Error::PayloadTooLarge(payload.len()))?;
        let msg = HandshakeMessage {
            client_finish: Some(ClientFinish {
                r#static: Some(static_ct),
                payload: Some(payload_ct),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec();
        let mut out = BytesMut::with_capacity(msg.len() + 3);
        encode_frame(&msg, &mut out)?;
        let (k1, k2) = ss.split();
        Ok((out, Transport::new(&k1, &k2)))
    }

    #[cfg(test)]
    pub(crate) fn symmetric(&self) -> &SymmetricState {
        &self.ss
    }
}

/// Server-side handshake settings, shared by every connection.
#[derive(Clone)]
pub struct ResponderConfig {
    /// The server's Noise static key pair (the key the leaf certificate names).
    pub static_key: KeyPair,
    /// The encoded `CertChain` sent, encrypted, in ServerHello
    /// (see [`issue_cert_chain`](crate::issue_cert_chain)).
    pub cert_chain: Vec<u8>,
}

impl std::fmt::Debug for ResponderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponderConfig")
            .field("static_key", &self.static_key.public)
            .field("cert_chain_len", &self.cert_chain.len())
            .finish()
    }
}

/// The server side before the ClientHello.
pub struct Responder {
    config: ResponderConfig,
    ephemeral: KeyPair,
}

/// The server after sending ServerHello, waiting for ClientFinish.
pub struct ResponderAwaitingFinish {
    ss: SymmetricState,
    ephemeral: KeyPair,
}

/// What the server learns from a completed handshake.
#[derive(Debug)]
#[non_exhaustive]
pub struct ClientFinished {
    /// The client's Noise static key (its long-term identity on this layer).
    pub client_static: PublicKey,
    /// The decrypted, still encoded, `ClientPayload`.
    pub payload: Vec<u8>,
    /// The transport ciphers, server side.
    pub transport: Transport,
}

impl ClientFinished {
    /// Decodes [`payload`](Self::payload) as a `ClientPayload`.
    ///
    /// # Errors
    /// [`Error::MalformedClientPayload`].
    pub fn client_payload(&self) -> Result<ClientPayload, Error> {
        ClientPayload::decode(self.payload.as_slice()).map_err(|_| Error::MalformedClientPayload)
    }
}

impl Responder {
    /// Prepares one connection's handshake with a fresh ephemeral key pair (injectable).
    pub fn new(config: ResponderConfig, ephemeral: KeyPair) -> Self {
        Self { config, ephemeral }
    }

    /// Messages 1 and 2. `frame` is the first frame payload after the intro (as
    /// [`FrameDecoder::server`](crate::FrameDecoder::server) yields it). Returns the framed
    /// ServerHello to send.
    ///
    /// # Errors
    /// [`Error::MalformedHandshake`], [`Error::MissingField`], [`Error::LowOrderKey`].
    pub fn read_client_hello(
        self,
        frame: &[u8],
    ) -> Result<(BytesMut, ResponderAwaitingFinish), Error> {
        const STEP: HandshakeStep = HandshakeStep::ClientHello;
        let msg = HandshakeMessage::decode(frame).map_err(|_| Error::MalformedHandshake(STEP))?;
        let hello = msg.client_hello.ok_or(missing(STEP, "clientHello"))?;
        let client_ephemeral = key_field(hello.ephemeral.as_deref(), STEP, "ephemeral")?;

        let mut ss = SymmetricState::new(&WA_HEADER);
        ss.mix_hash(client_ephemeral.as_bytes());
        ss.mix_hash(self.ephemeral.public.as_bytes());
        ss.mix_key(checked_dh(&self.ephemeral, &client_ephemeral, STEP)?.as_bytes());
        let static_ct = ss
            .encrypt_and_hash(self.config.static_key.public.as_bytes())
            .ok_or(Error::PayloadTooLarge(32))?;
        ss.mix_key(checked_dh(&self.config.static_key, &client_ephemeral, STEP)?.as_bytes());
        let payload_ct = ss
            .encrypt_and_hash(&self.config.cert_chain)
            .ok_or(Error::PayloadTooLarge(self.config.cert_chain.len()))?;
        let msg = HandshakeMessage {
            server_hello: Some(Box::new(ServerHello {
                ephemeral: Some(self.ephemeral.public.as_bytes().to_vec()),
                r#static: Some(static_ct),
                payload: Some(payload_ct),
                ..Default::default()
            })),
            ..Default::default()
        }
        .encode_to_vec();
        let mut out = BytesMut::with_capacity(msg.len() + 3);
        encode_frame(&msg, &mut out)?;
        Ok((
            out,
            ResponderAwaitingFinish {
                ss,
                ephemeral: self.ephemeral,
            },
        ))
    }
}

impl ResponderAwaitingFinish {
    /// Message 3. Decrypts the client's static key, performs se, decrypts the
    /// `ClientPayload` and splits.
    ///
    /// # Errors
    /// [`Error::MalformedHandshake`], [`Error::MissingField`], [`Error::LowOrderKey`],
    /// [`Error::HandshakeDecrypt`].
    pub fn read_client_finish(mut self, frame: &[u8]) -> Result<ClientFinished, Error> {
        const STEP: HandshakeStep = HandshakeStep::ClientFinish;
        let msg = HandshakeMessage::decode(frame).map_err(|_| Error::MalformedHandshake(STEP))?;
        let finish = msg.client_finish.ok_or(missing(STEP, "clientFinish"))?;
        let static_ct = finish.r#static.ok_or(missing(STEP, "static"))?;
        let payload_ct = finish.payload.ok_or(missing(STEP, "payload"))?;

        let ss = &mut self.ss;
        let client_static = ss
            .decrypt_and_hash(&static_ct)
            .ok_or(Error::HandshakeDecrypt {
                step: STEP,
                field: "static",
            })?;
        let client_static = key_field(Some(&client_static), STEP, "static")?;
        ss.mix_key(checked_dh(&self.ephemeral, &client_static, STEP)?.as_bytes());
        let payload = ss
            .decrypt_and_hash(&payload_ct)
            .ok_or(Error::HandshakeDecrypt {
                step: STEP,
                field: "payload",
            })?;
        let (k1, k2) = ss.split();
        Ok(ClientFinished {
            client_static,
            payload: payload.to_vec(),
            transport: Transport::new(&k2, &k1),
        })
    }
}

fn missing(step: HandshakeStep, field: &'static str) -> Error {
    Error::MissingField { step, field }
}

/// A 32-byte public key field.
fn key_field(
    bytes: Option<&[u8]>,
    step: HandshakeStep,
    field: &'static str,
) -> Result<PublicKey, Error> {
    bytes
        .filter(|b| b.len() == 32)
        .and_then(|b| PublicKey::from_slice(b).ok())
        .ok_or(missing(step, field))
}

/// DH that refuses an all-zero result (a low-order peer key), as the reference client does.
fn checked_dh(
    ours: &KeyPair,
    theirs: &PublicKey,
    step: HandshakeStep,
) -> Result<SharedSecret, Error> {
    let shared = ours.dh(theirs);
    let zero = Zeroizing::new([0u8; 32]);
    if wa_crypto::ct_eq(shared.as_bytes(), &*zero) {
        return Err(Error::LowOrderKey(step));
    }
    Ok(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> serde_json::Value {
        serde_json::from_str(include_str!("../tests/vectors/noise_handshake.json")).unwrap()
    }

    fn hx(v: &serde_json::Value) -> Vec<u8> {
        hex::decode(v.as_str().unwrap()).unwrap()
    }

    fn kp(v: &serde_json::Value, name: &str) -> KeyPair {
        let k = KeyPair::from_private_slice(&hx(&v["keys"][name]["priv"])).unwrap();
        assert_eq!(k.public.as_bytes()[..], hx(&v["keys"][name]["pub"])[..]);
        k
    }

    /// The intermediate h/ck values of the vector's responder trace, reproduced by our
    /// initiator (the split keys are covered by the transport known-answer test).
    #[test]
    fn initiator_matches_responder_trace() {
        let v = vector();
        let trace = v["responderTrace"].as_array().unwrap();
        let step = |name: &str| trace.iter().find(|t| t["step"] == name).unwrap().clone();
        let config = InitiatorConfig {
            trusted_root: kp(&v, "root").public,
            routing_info: None,
        };
        let (_, hs) = Initiator::new(config, kp(&v, "clientNoise"), kp(&v, "clientEphemeral"))
            .client_hello()
            .unwrap();
        let t = step("after_prologue_and_e_client");
        assert_eq!(hs.ss.h()[..], hx(&t["h"])[..]);
        assert_eq!(hs.ss.ck()[..], hx(&t["ck"])[..]);

        let wire_hello = hx(&v["wire"]["serverHello"]);
        let verified = hs
            .read_server_hello(&wire_hello[3..], 1_700_000_000)
            .unwrap();
        let t = step("after_server_payload");
        assert_eq!(verified.symmetric().h()[..], hx(&t["h"])[..]);
        assert_eq!(verified.symmetric().ck()[..], hx(&t["ck"])[..]);
    }

    #[test]
    fn low_order_ephemeral_is_refused() {
        let mut rng = rand::thread_rng();
        let server_static = KeyPair::generate(&mut rng);
        let config = ResponderConfig {
            static_key: server_static,
            cert_chain: vec![],
        };
        let msg = HandshakeMessage {
            client_hello: Some(Box::new(ClientHello {
                ephemeral: Some(vec![0u8; 32]),
                ..Default::default()
            })),
            ..Default::default()
        }
        .encode_to_vec();
        let r = Responder::new(config, KeyPair::generate(&mut rng)).read_client_hello(&msg);
        assert!(matches!(
            r,
            Err(Error::LowOrderKey(HandshakeStep::ClientHello))
        ));
    }
}
