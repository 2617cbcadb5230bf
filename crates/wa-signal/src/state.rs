//! Session state (one ratchet) and the session record (current state plus a bounded list of
//! previous ones), with their versioned protobuf serialization.

use std::collections::VecDeque;

use wa_crypto::{KeyPair, PrivateKey, PublicKey};

use crate::Error;
use crate::codec::{Reader, put_bytes, put_message, put_u32, put_u32_present};
use crate::kdf::{ChainKey, RootKey, Seed};
use crate::proto::SkippedKeyProto;
#[cfg(test)]
use crate::proto::{
    PendingPreKeyProto, ReceiverChainProto, SenderChainProto, SessionRecordProto, SessionStateProto,
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
    /// Seeds of message keys skipped over, oldest first. Shared until changed
    /// (`Arc::make_mut`): a decryption is tried on a copy of each session state, and
    /// copying a state must not copy up to `MAX_SKIPPED_KEYS` seeds per chain.
    pub(crate) skipped: std::sync::Arc<VecDeque<(u32, Seed)>>,
    /// A chain whose key was dropped when the peer moved to a new ratchet key (as
    /// libsignal-node records it): only its skipped keys can still be used. Only imported
    /// records hold such chains; this crate keeps the keys of its old chains.
    pub(crate) closed: bool,
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

#[cfg(test)]
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

#[cfg(test)]
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
                    closed: r.closed,
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
                    skipped: std::sync::Arc::new(skipped_from_proto(&r.skipped)?),
                    closed: r.closed,
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

impl SessionState {
    /// An upper bound of the encoded size (keys 32 bytes, tags and lengths generous).
    fn encoded_len_bound(&self) -> usize {
        let chains: usize = self
            .receivers
            .iter()
            .map(|r| 96 + 48 * r.skipped.len())
            .sum();
        16 + 400 + chains
    }

    fn write(&self, b: &mut Vec<u8>) {
        put_bytes(b, 1, self.local_identity.as_bytes());
        put_bytes(b, 2, self.remote_identity.as_bytes());
        put_bytes(b, 3, &self.root_key.0);
        put_u32(b, 4, self.previous_counter);
        if let Some(s) = &self.sender {
            put_message(b, 5, |b| {
                put_bytes(b, 1, s.ratchet.public.as_bytes());
                put_bytes(b, 2, s.ratchet.private.as_bytes());
                put_bytes(b, 3, &s.chain.key);
                put_u32(b, 4, s.chain.index);
            });
        }
        for r in &self.receivers {
            put_message(b, 6, |b| {
                put_bytes(b, 1, r.ratchet_key.as_bytes());
                put_bytes(b, 2, &r.chain.key);
                put_u32(b, 3, r.chain.index);
                for (index, seed) in r.skipped.iter() {
                    put_message(b, 4, |b| {
                        put_u32(b, 1, *index);
                        put_bytes(b, 2, &seed.0);
                    });
                }
                if r.closed {
                    put_u32(b, 5, 1);
                }
            });
        }
        if let Some(p) = &self.pending {
            put_message(b, 7, |b| {
                if let Some(id) = p.pre_key_id {
                    put_u32_present(b, 1, id);
                }
                put_u32(b, 2, p.signed_pre_key_id);
                put_bytes(b, 3, p.base_key.as_bytes());
            });
        }
        put_u32(b, 8, self.remote_registration_id);
        put_u32(b, 9, self.local_registration_id);
        put_bytes(b, 10, self.base_key.as_bytes());
    }

    fn read(bytes: &[u8]) -> Result<Self, Error> {
        let (mut local, mut remote, mut root, mut base): (&[u8], &[u8], &[u8], &[u8]) =
            (&[], &[], &[], &[]);
        let mut state_previous_counter = 0;
        let (mut remote_reg, mut local_reg) = (0, 0);
        let mut sender = None;
        let mut receivers = Vec::new();
        let mut pending = None;
        let mut r = Reader::new(bytes, "session state");
        while let Some((tag, v)) = r.next_field()? {
            match tag {
                1 => local = v.bytes("local identity")?,
                2 => remote = v.bytes("remote identity")?,
                3 => root = v.bytes("root key")?,
                4 => state_previous_counter = v.u32("previous counter")?,
                5 => sender = Some(read_sender(v.bytes("sender chain")?)?),
                6 => {
                    if receivers.len() == MAX_RECEIVER_CHAINS {
                        return Err(Error::InvalidRecord("too many receiver chains"));
                    }
                    receivers.push(read_receiver(v.bytes("receiver chain")?)?);
                }
                7 => pending = Some(read_pending(v.bytes("pending pre-key")?)?),
                8 => remote_reg = v.u32("remote registration id")?,
                9 => local_reg = v.u32("local registration id")?,
                10 => base = v.bytes("base key")?,
                _ => {}
            }
        }
        Ok(Self {
            local_identity: pk(local, "local identity")?,
            remote_identity: pk(remote, "remote identity")?,
            root_key: RootKey(key32(root, "root key")?),
            previous_counter: state_previous_counter,
            sender,
            receivers,
            pending,
            remote_registration_id: remote_reg,
            local_registration_id: local_reg,
            base_key: pk(base, "base key")?,
        })
    }
}

fn read_sender(bytes: &[u8]) -> Result<SenderChain, Error> {
    let (mut public, mut private, mut key): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    let mut index = 0;
    let mut r = Reader::new(bytes, "sender chain");
    while let Some((tag, v)) = r.next_field()? {
        match tag {
            1 => public = v.bytes("sender ratchet key")?,
            2 => private = v.bytes("ratchet private")?,
            3 => key = v.bytes("sender chain key")?,
            4 => index = v.u32("sender chain index")?,
            _ => {}
        }
    }
    Ok(SenderChain {
        ratchet: KeyPair {
            public: pk(public, "sender ratchet key")?,
            private: PrivateKey::from_bytes(key32(private, "ratchet private")?),
        },
        chain: ChainKey::new(key32(key, "sender chain key")?, index),
    })
}

fn read_receiver(bytes: &[u8]) -> Result<ReceiverChain, Error> {
    let (mut ratchet, mut key): (&[u8], &[u8]) = (&[], &[]);
    let mut index = 0;
    let mut closed = false;
    let mut skipped = VecDeque::new();
    let mut r = Reader::new(bytes, "receiver chain");
    while let Some((tag, v)) = r.next_field()? {
        match tag {
            1 => ratchet = v.bytes("receiver ratchet key")?,
            2 => key = v.bytes("receiver chain key")?,
            3 => index = v.u32("receiver chain index")?,
            4 => {
                if skipped.len() == MAX_SKIPPED_KEYS {
                    return Err(Error::InvalidRecord("too many skipped keys"));
                }
                skipped.push_back(read_skipped(v.bytes("skipped key")?)?);
            }
            5 => closed = v.u32("receiver chain closed")? != 0,
            _ => {}
        }
    }
    Ok(ReceiverChain {
        ratchet_key: pk(ratchet, "receiver ratchet key")?,
        chain: ChainKey::new(key32(key, "receiver chain key")?, index),
        skipped: std::sync::Arc::new(skipped),
        closed,
    })
}

fn read_skipped(bytes: &[u8]) -> Result<(u32, Seed), Error> {
    let (mut index, mut seed): (u32, &[u8]) = (0, &[]);
    let mut r = Reader::new(bytes, "skipped key");
    while let Some((tag, v)) = r.next_field()? {
        match tag {
            1 => index = v.u32("skipped index")?,
            2 => seed = v.bytes("skipped seed")?,
            _ => {}
        }
    }
    Ok((index, Seed(key32(seed, "skipped key")?)))
}

fn read_pending(bytes: &[u8]) -> Result<PendingPreKey, Error> {
    let (mut pre_key_id, mut signed_pre_key_id, mut base): (Option<u32>, u32, &[u8]) =
        (None, 0, &[]);
    let mut r = Reader::new(bytes, "pending pre-key");
    while let Some((tag, v)) = r.next_field()? {
        match tag {
            1 => pre_key_id = Some(v.u32("pending pre-key id")?),
            2 => signed_pre_key_id = v.u32("pending signed pre-key id")?,
            3 => base = v.bytes("pending base key")?,
            _ => {}
        }
    }
    Ok(PendingPreKey {
        pre_key_id,
        signed_pre_key_id,
        base_key: pk(base, "pending base key")?,
    })
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

    /// Serializes to this crate's versioned protobuf record (schema: `SessionRecordProto`).
    pub fn serialize(&self) -> Vec<u8> {
        // Sized up front so the buffer (which holds keys) is not reallocated while written.
        let states = self.current.iter().chain(self.previous.iter());
        let capacity = 16 + states.map(SessionState::encoded_len_bound).sum::<usize>();
        let mut buf = Vec::with_capacity(capacity);
        put_u32(&mut buf, 1, SESSION_RECORD_FORMAT);
        if let Some(state) = &self.current {
            put_message(&mut buf, 2, |b| state.write(b));
        }
        for state in &self.previous {
            put_message(&mut buf, 3, |b| state.write(b));
        }
        buf
    }

    /// Parses a record made by [`SessionRecord::serialize`].
    ///
    /// # Errors
    /// [`Error::InvalidRecord`] on anything malformed or of an unknown format version.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        let mut record = Self::default();
        let mut version = 0;
        let mut r = Reader::new(bytes, "session record");
        while let Some((tag, v)) = r.next_field()? {
            match tag {
                1 => version = v.u32("session record version")?,
                2 => record.current = Some(SessionState::read(v.bytes("current state")?)?),
                3 => {
                    if record.previous.len() == MAX_PREVIOUS_STATES {
                        return Err(Error::InvalidRecord("too many previous states"));
                    }
                    record
                        .previous
                        .push_back(SessionState::read(v.bytes("previous state")?)?);
                }
                _ => {}
            }
        }
        if version != SESSION_RECORD_FORMAT {
            return Err(Error::InvalidRecord(
                "unknown session record format version",
            ));
        }
        Ok(record)
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

    /// The index of the current session's next sending message key: how many messages
    /// its sending chain has encrypted. `None` without a sending chain.
    pub fn sender_chain_index(&self) -> Option<u32> {
        self.current
            .as_ref()
            .and_then(|s| s.sender.as_ref())
            .map(|s| s.chain.index)
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

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    /// Records with every field populated: pending pre-keys with and without a one-time
    /// key, several receiving chains with skipped keys, previous states.
    fn sample_records() -> Vec<SessionRecord> {
        let mut rng = StdRng::seed_from_u64(3);
        let mut out = Vec::new();
        let mut record = SessionRecord::new();
        out.push(record.clone());
        for i in 0..4u32 {
            let their = KeyPair::generate(&mut rng);
            let mut state = SessionState {
                local_identity: KeyPair::generate(&mut rng).public,
                remote_identity: their.public,
                root_key: RootKey([i as u8; 32]),
                previous_counter: i * 300,
                sender: Some(SenderChain {
                    ratchet: KeyPair::generate(&mut rng),
                    chain: ChainKey::new([7; 32], i * 1000),
                }),
                receivers: Vec::new(),
                pending: (i % 2 == 0).then(|| PendingPreKey {
                    pre_key_id: (i == 0).then_some(0),
                    signed_pre_key_id: i,
                    base_key: their.public,
                }),
                remote_registration_id: 16380 - i,
                local_registration_id: i,
                base_key: KeyPair::generate(&mut rng).public,
            };
            for c in 0..i {
                state.receivers.push(ReceiverChain {
                    ratchet_key: KeyPair::generate(&mut rng).public,
                    chain: ChainKey::new([c as u8; 32], c * 200),
                    skipped: std::sync::Arc::new(
                        (0..c * 50).map(|k| (k, Seed([k as u8; 32]))).collect(),
                    ),
                    closed: c == 1,
                });
            }
            record.promote_state(state);
            out.push(record.clone());
        }
        out
    }

    fn oracle(record: &SessionRecord) -> Vec<u8> {
        SessionRecordProto {
            format_version: SESSION_RECORD_FORMAT,
            current: record.current.as_ref().map(SessionState::to_proto),
            previous: record.previous.iter().map(SessionState::to_proto).collect(),
        }
        .encode_to_vec()
    }

    #[test]
    fn codec_matches_the_protobuf_schema_both_ways() {
        for record in sample_records() {
            let ours = record.serialize();
            assert_eq!(ours, oracle(&record));
            let p = SessionRecordProto::decode(ours.as_slice()).unwrap();
            let via_prost = SessionRecord {
                current: p
                    .current
                    .as_ref()
                    .map(|s| SessionState::from_proto(s).unwrap()),
                previous: p
                    .previous
                    .iter()
                    .map(|s| SessionState::from_proto(s).unwrap())
                    .collect(),
            };
            assert_eq!(via_prost.serialize(), ours);
            assert_eq!(SessionRecord::deserialize(&ours).unwrap().serialize(), ours);
        }
    }

    #[test]
    fn reader_rejects_malformed_input_and_skips_unknown_fields() {
        let record = sample_records().pop().unwrap();
        let bytes = record.serialize();
        // Cutting inside the current state (field 2, right after the version) always fails;
        // cutting between top-level fields leaves a shorter valid record.
        assert_eq!(bytes[2], 0x12);
        let (mut len, mut at) = (0usize, 3);
        for shift in (0..).step_by(7) {
            len |= usize::from(bytes[at] & 0x7f) << shift;
            at += 1;
            if bytes[at - 1] < 0x80 {
                break;
            }
        }
        for cut in 3..at + len {
            assert!(
                SessionRecord::deserialize(&bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        assert!(SessionRecord::deserialize(&bytes[..at + len]).is_ok());
        assert!(SessionRecord::deserialize(&bytes[..1]).is_err());
        // Unknown fields (varint, fixed32, fixed64, bytes) are skipped.
        let mut extended = bytes.clone();
        extended.extend_from_slice(&[0x78, 0x05, 0x85, 0x01, 1, 2, 3, 4, 0x81, 0x01]);
        extended.extend_from_slice(&[0; 8]);
        extended.extend_from_slice(&[0x8a, 0x01, 0x02, 0xaa, 0xbb]);
        assert_eq!(
            SessionRecord::deserialize(&extended).unwrap().serialize(),
            bytes
        );
        // Group wire types, tag 0 and overlong varints are errors.
        for bad in [
            &[0x0b][..],
            &[0x00, 0x01],
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ] {
            let mut b = bytes.clone();
            b.extend_from_slice(bad);
            assert!(SessionRecord::deserialize(&b).is_err());
        }
    }
}
