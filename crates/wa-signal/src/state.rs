//! Session state (one ratchet) and the session record (current state plus a bounded list of
//! previous ones), with their versioned protobuf serialization.

use std::collections::VecDeque;

use prost::Message as _;
use wa_crypto::{KeyPair, PrivateKey, PublicKey};

use crate::Error;
use crate::kdf::{ChainKey, RootKey, Seed};
use crate::proto::{
    PendingPreKeyProto, ReceiverChainProto, SenderChainProto, SessionRecordProto,
    SessionStateProto, SkippedKeyProto,
};

/// The record format this crate writes (and the only one it reads).
pub(crate) const SESSION_RECORD_FORMAT: u32 = 1;
/// Receiving chains kept per session state (older ones are dropped).
pub const MAX_RECEIVER_CHAINS: usize = 5;
/// Previous session states kept per record (older ones are dropped).
pub const MAX_PREVIOUS_STATES: usize = 40;
/// Skipped message keys kept per chain (the oldest are evicted beyond this), and the largest
/// forward jump of a counter that is accepted.
pub const MAX_SKIPPED_KEYS: usize = 2000;

#[derive(Clone)]
pub(crate) struct SenderChain {
    pub(crate) ratchet: KeyPair,
    pub(crate) chain: ChainKey,
}

#[derive(Clone)]
pub(crate) struct ReceiverChain {
    pub(crate) ratchet_key: PublicKey,
    pub(crate) chain: ChainKey,
    /// Seeds of message keys skipped over, oldest first.
    pub(crate) skipped: VecDeque<(u32, Seed)>,
}

#[derive(Clone, Debug)]
pub(crate) struct PendingPreKey {
    pub(crate) pre_key_id: Option<u32>,
    pub(crate) signed_pre_key_id: u32,
    pub(crate) base_key: PublicKey,
}

#[derive(Clone)]
pub(crate) struct SessionState {
    pub(crate) local_identity: PublicKey,
    pub(crate) remote_identity: PublicKey,
    pub(crate) root_key: RootKey,
    pub(crate) previous_counter: u32,
    pub(crate) sender: Option<SenderChain>,
    /// Receiving chains, oldest first.
    pub(crate) receivers: Vec<ReceiverChain>,
    pub(crate) pending: Option<PendingPreKey>,
    pub(crate) remote_registration_id: u32,
    pub(crate) local_registration_id: u32,
    /// The initiator's base key: identifies the session a `pkmsg` belongs to.
    pub(crate) base_key: PublicKey,
}

fn pk(bytes: &[u8], what: &'static str) -> Result<PublicKey, Error> {
    PublicKey::from_slice(bytes).map_err(|_| Error::InvalidRecord(what))
}

fn key32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], Error> {
    bytes.try_into().map_err(|_| Error::InvalidRecord(what))
}

fn skipped_to_proto(skipped: &VecDeque<(u32, Seed)>) -> Vec<SkippedKeyProto> {
    skipped
        .iter()
        .map(|(index, seed)| SkippedKeyProto {
            index: *index,
            seed: seed.0.to_vec(),
        })
        .collect()
}

pub(crate) fn skipped_from_proto(
    skipped: &[SkippedKeyProto],
) -> Result<VecDeque<(u32, Seed)>, Error> {
    if skipped.len() > MAX_SKIPPED_KEYS {
        return Err(Error::InvalidRecord("too many skipped keys"));
    }
    skipped
        .iter()
        .map(|s| Ok((s.index, Seed(key32(&s.seed, "skipped key")?))))
        .collect()
}

impl SessionState {
    fn to_proto(&self) -> SessionStateProto {
        SessionStateProto {
            local_identity: self.local_identity.as_bytes().to_vec(),
            remote_identity: self.remote_identity.as_bytes().to_vec(),
            root_key: self.root_key.0.to_vec(),
            previous_counter: self.previous_counter,
            sender_chain: self.sender.as_ref().map(|s| SenderChainProto {
                ratchet_public: s.ratchet.public.as_bytes().to_vec(),
                ratchet_private: s.ratchet.private.as_bytes().to_vec(),
                chain_key: s.chain.key.to_vec(),
                index: s.chain.index,
            }),
            receiver_chains: self
                .receivers
                .iter()
                .map(|r| ReceiverChainProto {
                    ratchet_key: r.ratchet_key.as_bytes().to_vec(),
                    chain_key: r.chain.key.to_vec(),
                    index: r.chain.index,
                    skipped: skipped_to_proto(&r.skipped),
                })
                .collect(),
            pending_pre_key: self.pending.as_ref().map(|p| PendingPreKeyProto {
                pre_key_id: p.pre_key_id,
                signed_pre_key_id: p.signed_pre_key_id,
                base_key: p.base_key.as_bytes().to_vec(),
            }),
            remote_registration_id: self.remote_registration_id,
            local_registration_id: self.local_registration_id,
            base_key: self.base_key.as_bytes().to_vec(),
        }
    }

    fn from_proto(p: &SessionStateProto) -> Result<Self, Error> {
        if p.receiver_chains.len() > MAX_RECEIVER_CHAINS {
            return Err(Error::InvalidRecord("too many receiver chains"));
        }
        let sender = match &p.sender_chain {
            Some(s) => Some(SenderChain {
                ratchet: KeyPair {
                    public: pk(&s.ratchet_public, "sender ratchet key")?,
                    private: PrivateKey::from_bytes(key32(&s.ratchet_private, "ratchet private")?),
                },
                chain: ChainKey::new(key32(&s.chain_key, "sender chain key")?, s.index),
            }),
            None => None,
        };
        let receivers = p
            .receiver_chains
            .iter()
            .map(|r| {
                Ok(ReceiverChain {
                    ratchet_key: pk(&r.ratchet_key, "receiver ratchet key")?,
                    chain: ChainKey::new(key32(&r.chain_key, "receiver chain key")?, r.index),
                    skipped: skipped_from_proto(&r.skipped)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let pending = match &p.pending_pre_key {
            Some(pp) => Some(PendingPreKey {
                pre_key_id: pp.pre_key_id,
                signed_pre_key_id: pp.signed_pre_key_id,
                base_key: pk(&pp.base_key, "pending base key")?,
            }),
            None => None,
        };
        Ok(Self {
            local_identity: pk(&p.local_identity, "local identity")?,
            remote_identity: pk(&p.remote_identity, "remote identity")?,
            root_key: RootKey(key32(&p.root_key, "root key")?),
            previous_counter: p.previous_counter,
            sender,
            receivers,
            pending,
            remote_registration_id: p.remote_registration_id,
            local_registration_id: p.local_registration_id,
            base_key: pk(&p.base_key, "base key")?,
        })
    }
}

/// All session state with one peer device: the current ratchet and up to
/// [`MAX_PREVIOUS_STATES`] previous ones, which are still tried on decrypt (a peer may
/// keep using an older session for a while, e.g. after simultaneous initiation).
///
/// Stores keep it as opaque bytes ([`SessionRecord::serialize`], a versioned protobuf).
#[derive(Clone, Default)]
pub struct SessionRecord {
    pub(crate) current: Option<SessionState>,
    /// Previous states, newest first.
    pub(crate) previous: VecDeque<SessionState>,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("has_current", &self.current.is_some())
            .field("previous", &self.previous.len())
            .finish_non_exhaustive()
    }
}

impl SessionRecord {
    /// An empty record (no session).
    pub fn new() -> Self {
        Self::default()
    }

    /// Serializes to this crate's versioned protobuf record.
    pub fn serialize(&self) -> Vec<u8> {
        SessionRecordProto {
            format_version: SESSION_RECORD_FORMAT,
            current: self.current.as_ref().map(SessionState::to_proto),
            previous: self.previous.iter().map(SessionState::to_proto).collect(),
        }
        .encode_to_vec()
    }

    /// Parses a record made by [`SessionRecord::serialize`].
    ///
    /// # Errors
    /// [`Error::InvalidRecord`] on anything malformed or of an unknown format version.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        let p = SessionRecordProto::decode(bytes).map_err(|_| Error::InvalidRecord("session"))?;
        if p.format_version != SESSION_RECORD_FORMAT {
            return Err(Error::InvalidRecord(
                "unknown session record format version",
            ));
        }
        if p.previous.len() > MAX_PREVIOUS_STATES {
            return Err(Error::InvalidRecord("too many previous states"));
        }
        Ok(Self {
            current: p
                .current
                .as_ref()
                .map(SessionState::from_proto)
                .transpose()?,
            previous: p
                .previous
                .iter()
                .map(SessionState::from_proto)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether there is a current session that can encrypt.
    pub fn has_current_session(&self) -> bool {
        self.current.as_ref().is_some_and(|s| s.sender.is_some())
    }

    /// The peer's registration id in the current session.
    pub fn remote_registration_id(&self) -> Option<u32> {
        self.current.as_ref().map(|s| s.remote_registration_id)
    }

    /// The peer's identity key in the current session.
    pub fn remote_identity(&self) -> Option<PublicKey> {
        self.current.as_ref().map(|s| s.remote_identity)
    }

    /// The base key that identifies the current session.
    pub fn base_key(&self) -> Option<PublicKey> {
        self.current.as_ref().map(|s| s.base_key)
    }

    /// How many previous states are kept.
    pub fn previous_state_count(&self) -> usize {
        self.previous.len()
    }

    /// Moves the current state (if any) to the front of the previous states, so the next
    /// send needs a fresh session.
    pub fn archive_current_state(&mut self) {
        if let Some(state) = self.current.take() {
            self.previous.push_front(state);
            self.previous.truncate(MAX_PREVIOUS_STATES);
        }
    }

    /// Makes `state` current, archiving the old current state.
    pub(crate) fn promote_state(&mut self, state: SessionState) {
        self.archive_current_state();
        self.current = Some(state);
    }

    /// Whether any state (current or previous) was started with this base key.
    pub(crate) fn has_base_key(&self, base_key: &PublicKey) -> bool {
        self.current
            .iter()
            .chain(self.previous.iter())
            .any(|s| &s.base_key == base_key)
    }
}
