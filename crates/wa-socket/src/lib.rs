#![doc = include_str!("../README.md")]

pub mod account;
mod ack;
mod backoff;
mod config;
mod dispatch;
mod error;
mod lazy_cache;
pub mod mex;
mod pairing;
pub mod passkey;
mod payload;
pub mod privacy_token;
mod props;
mod query;
mod socket;
mod stream_error;
mod transport;
pub mod wam;
#[rustfmt::skip]
mod wam_table;

pub use ack::{ack_for, message_ack};
pub use backoff::Backoff;
pub use config::{
    BoxFuture, Browser, DEFAULT_VERSION, DEFAULT_WS_URL, GetMessage, HistorySyncOptions, IgnoreJid,
    PrePair, ReconnectHook, SocketConfig,
};
pub use dispatch::{Dispatched, Dispatcher, Filter, Subscription};
pub use error::Error;
pub use lazy_cache::LazyCache;
pub use pairing::{
    CompanionFinish, FinishRandom, PAIRING_CODE_ALPHABET, PAIRING_CODE_PBKDF2_ROUNDS, PairError,
    PairSuccess, QR_PREFIX, VerifiedIdentity, account_signature_message, companion_finish,
    companion_platform_id, device_signature_message, pair_device_sign_reply, pair_error_reply,
    pairing_code_from_bytes, pairing_code_key, parse_pair_success, qr_string, random_pairing_code,
    unwrap_ephemeral, verify_device_identity, wrap_ephemeral,
};
pub use passkey::WebAuthnAssertion;
pub use payload::{PayloadOptions, login_payload, registration_payload};
pub use props::{
    MAX_PROPS, PROP_LID_TRUSTED_TOKEN_ISSUE_TO_LID, PROP_PRIVACY_TOKEN_ON_1TO1,
    PROP_PROFILE_PIC_PRIVACY_TOKEN, ServerProps, parse_props,
};
pub use socket::{MAX_PRE_KEY_UPLOAD, Socket};
pub use stream_error::disconnect_reason;
pub use transport::{Proxy, WsConnector, WsReader, WsUrl, WsWriter};
pub use wa_types::{ConnectionState, ConnectionUpdate, DisconnectReason, Event};
