#![doc = include_str!("../README.md")]

mod cert;
mod error;
mod frame;
mod handshake;
mod symmetric;
mod transport;
mod wire;

pub use cert::{
    CertDetails, ChainParams, ROOT_SERIAL, WA_ROOT_PUBLIC_KEY, issue_cert_chain, sign_cert_chain,
    verify_cert_chain,
};
pub use error::{CertRole, Error, HandshakeStep};
pub use frame::{
    FrameDecoder, Intro, MAX_FRAME_LEN, MAX_ROUTING_INFO_LEN, ROUTING_MAGIC, WA_HEADER,
    encode_frame, encode_intro,
};
pub use handshake::{
    ClientFinished, Initiator, InitiatorAwaitingServerHello, InitiatorConfig, InitiatorVerified,
    Responder, ResponderAwaitingFinish, ResponderConfig,
};
pub use symmetric::NOISE_PROTOCOL_NAME;
pub use transport::{MAX_PLAINTEXT_LEN, TAG_LEN, Transport};
