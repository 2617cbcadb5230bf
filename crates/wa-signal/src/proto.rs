//! Protobuf shapes: the wire messages (field numbers as libsignal and WhatsApp use them) and
//! this crate's own versioned record formats. Secret-bearing structs wipe their buffers on
//! drop.

#![allow(unreachable_pub)]

use zeroize::Zeroize;

// ---------------------------------------------------------------- wire messages

/// `SignalMessage` (`WhisperMessage` in libsignal-node).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SignalMessageProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub ratchet_key: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "2")]
    pub counter: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub previous_counter: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub ciphertext: Option<Vec<u8>>,
}

/// `PreKeySignalMessage` (`PreKeyWhisperMessage`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PreKeySignalMessageProto {
    #[prost(uint32, optional, tag = "1")]
    pub pre_key_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub base_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub identity_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub message: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "5")]
    pub registration_id: Option<u32>,
    #[prost(uint32, optional, tag = "6")]
    pub signed_pre_key_id: Option<u32>,
}

/// `SenderKeyMessage`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SenderKeyMessageProto {
    #[prost(uint32, optional, tag = "1")]
    pub id: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub iteration: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub ciphertext: Option<Vec<u8>>,
}

/// `SenderKeyDistributionMessage`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SenderKeyDistributionMessageProto {
    #[prost(uint32, optional, tag = "1")]
    pub id: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub iteration: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub chain_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub signing_key: Option<Vec<u8>>,
}

impl Drop for SenderKeyDistributionMessageProto {
    fn drop(&mut self) {
        self.chain_key.zeroize();
    }
}

// ---------------------------------------------------------------- records (format 1)
//
// The session record is written and read by the hand-rolled codec in `state.rs` /
// `codec.rs` (it is touched on every message); the prost shapes below are its schema and,
// in tests, the oracle the codec is checked against.

/// A skipped message key: the chain index and the 32-byte message-key seed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SkippedKeyProto {
    #[prost(uint32, tag = "1")]
    pub index: u32,
    #[prost(bytes = "vec", tag = "2")]
    pub seed: Vec<u8>,
}

impl Drop for SkippedKeyProto {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

/// Our sending chain.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct SenderChainProto {
    #[prost(bytes = "vec", tag = "1")]
    pub ratchet_public: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub ratchet_private: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub chain_key: Vec<u8>,
    #[prost(uint32, tag = "4")]
    pub index: u32,
}

#[cfg(test)]
impl Drop for SenderChainProto {
    fn drop(&mut self) {
        self.ratchet_private.zeroize();
        self.chain_key.zeroize();
    }
}

/// One receiving chain with its skipped keys.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReceiverChainProto {
    #[prost(bytes = "vec", tag = "1")]
    pub ratchet_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub chain_key: Vec<u8>,
    #[prost(uint32, tag = "3")]
    pub index: u32,
    #[prost(message, repeated, tag = "4")]
    pub skipped: Vec<SkippedKeyProto>,
    #[prost(bool, tag = "5")]
    pub closed: bool,
}

#[cfg(test)]
impl Drop for ReceiverChainProto {
    fn drop(&mut self) {
        self.chain_key.zeroize();
    }
}

/// The pre-key data an initiator repeats in every message until the peer answers.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct PendingPreKeyProto {
    #[prost(uint32, optional, tag = "1")]
    pub pre_key_id: Option<u32>,
    #[prost(uint32, tag = "2")]
    pub signed_pre_key_id: u32,
    #[prost(bytes = "vec", tag = "3")]
    pub base_key: Vec<u8>,
}

/// One session state (one ratchet).
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionStateProto {
    #[prost(bytes = "vec", tag = "1")]
    pub local_identity: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub remote_identity: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub root_key: Vec<u8>,
    #[prost(uint32, tag = "4")]
    pub previous_counter: u32,
    #[prost(message, optional, tag = "5")]
    pub sender_chain: Option<SenderChainProto>,
    #[prost(message, repeated, tag = "6")]
    pub receiver_chains: Vec<ReceiverChainProto>,
    #[prost(message, optional, tag = "7")]
    pub pending_pre_key: Option<PendingPreKeyProto>,
    #[prost(uint32, tag = "8")]
    pub remote_registration_id: u32,
    #[prost(uint32, tag = "9")]
    pub local_registration_id: u32,
    #[prost(bytes = "vec", tag = "10")]
    pub base_key: Vec<u8>,
}

#[cfg(test)]
impl Drop for SessionStateProto {
    fn drop(&mut self) {
        self.root_key.zeroize();
    }
}

/// A session record: the current state and the archived previous ones (newest first).
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionRecordProto {
    #[prost(uint32, tag = "1")]
    pub format_version: u32,
    #[prost(message, optional, tag = "2")]
    pub current: Option<SessionStateProto>,
    #[prost(message, repeated, tag = "3")]
    pub previous: Vec<SessionStateProto>,
}

/// One sender-key state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SenderKeyStateProto {
    #[prost(uint32, tag = "1")]
    pub key_id: u32,
    #[prost(uint32, tag = "2")]
    pub iteration: u32,
    #[prost(bytes = "vec", tag = "3")]
    pub chain_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub signing_public: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub signing_private: Option<Vec<u8>>,
    #[prost(message, repeated, tag = "6")]
    pub skipped: Vec<SkippedKeyProto>,
    /// The lowest iteration a distribution message gave the state (absent in records
    /// written before it was kept, and for own states).
    #[prost(uint32, optional, tag = "7")]
    pub first_iteration: Option<u32>,
}

impl Drop for SenderKeyStateProto {
    fn drop(&mut self) {
        self.chain_key.zeroize();
        self.signing_private.zeroize();
    }
}

/// A sender-key record: states, newest first.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SenderKeyRecordProto {
    #[prost(uint32, tag = "1")]
    pub format_version: u32,
    #[prost(message, repeated, tag = "2")]
    pub states: Vec<SenderKeyStateProto>,
}

/// A one-time pre-key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PreKeyRecordProto {
    #[prost(uint32, tag = "1")]
    pub format_version: u32,
    #[prost(uint32, tag = "2")]
    pub id: u32,
    #[prost(bytes = "vec", tag = "3")]
    pub public: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub private: Vec<u8>,
}

impl Drop for PreKeyRecordProto {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

/// A signed pre-key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SignedPreKeyRecordProto {
    #[prost(uint32, tag = "1")]
    pub format_version: u32,
    #[prost(uint32, tag = "2")]
    pub id: u32,
    #[prost(bytes = "vec", tag = "3")]
    pub public: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub private: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    pub signature: Vec<u8>,
    #[prost(uint64, tag = "6")]
    pub timestamp: u64,
}

impl Drop for SignedPreKeyRecordProto {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}
