//! Sender keys: the group half of the protocol. Each sender has a chain per group; members
//! learn it from a distribution message and follow it forward.

use std::collections::VecDeque;

use prost::Message as _;
use rand_core::CryptoRngCore;
use wa_crypto::{KeyPair, PrivateKey, PublicKey};

use crate::Error;
use crate::kdf::{ChainKey, GroupMessageKeys, Seed, cbc_decrypt, cbc_encrypt};
use crate::keys::generate_sender_key_id;
use crate::message::{SenderKeyDistributionMessage, SenderKeyMessage};
use crate::proto::{SenderKeyRecordProto, SenderKeyStateProto};
use crate::state::{MAX_SKIPPED_KEYS, skipped_from_proto};

const SENDER_KEY_RECORD_FORMAT: u32 = 1;
/// Sender-key states kept per (group, sender): the newest ones win.
pub const MAX_SENDER_KEY_STATES: usize = 5;

#[derive(Clone)]
struct SenderKeyState {
    key_id: u32,
    chain: ChainKey,
    signing_public: PublicKey,
    signing_private: Option<PrivateKey>,
    /// Seeds skipped over, oldest first.
    skipped: VecDeque<(u32, Seed)>,
    /// The lowest iteration a distribution message gave this state, when known: the
    /// iterations below it were never this state's to decrypt.
    first: Option<u32>,
}

impl SenderKeyState {
    fn to_proto(&self) -> SenderKeyStateProto {
        SenderKeyStateProto {
            key_id: self.key_id,
            iteration: self.chain.index,
            chain_key: self.chain.key.to_vec(),
            signing_public: self.signing_public.as_bytes().to_vec(),
            signing_private: self.signing_private.as_ref().map(|k| k.as_bytes().to_vec()),
            skipped: self
                .skipped
                .iter()
                .map(|(index, seed)| crate::proto::SkippedKeyProto {
                    index: *index,
                    seed: seed.0.to_vec(),
                })
                .collect(),
            first_iteration: self.first,
        }
    }

    fn from_proto(p: &SenderKeyStateProto) -> Result<Self, Error> {
        let chain_key: [u8; 32] = p
            .chain_key
            .as_slice()
            .try_into()
            .map_err(|_| Error::InvalidRecord("sender chain key"))?;
        Ok(Self {
            key_id: p.key_id,
            chain: ChainKey::new(chain_key, p.iteration),
            signing_public: PublicKey::from_slice(&p.signing_public)
                .map_err(|_| Error::InvalidRecord("sender signing key"))?,
            signing_private: p
                .signing_private
                .as_deref()
                .map(PrivateKey::from_slice)
                .transpose()
                .map_err(|_| Error::InvalidRecord("sender signing private key"))?,
            skipped: skipped_from_proto(&p.skipped)?,
            first: match p.first_iteration {
                Some(first) if first > p.iteration => {
                    return Err(Error::InvalidRecord("sender key starts after its chain"));
                }
                first => first,
            },
        })
    }

    /// See [`SenderKeyRecord::process`]: the seeds from `message`'s iteration up to the
    /// state's first, when `message`'s chain reaches the state's current chain key.
    fn take_earlier(&mut self, message: &SenderKeyDistributionMessage) {
        let Some(first) = self.first else { return };
        let from = message.iteration();
        if from >= first
            || self.signing_private.is_some()
            || self.chain.index.saturating_sub(from) > MAX_SKIPPED_KEYS as u32
        {
            return;
        }
        let mut chain = ChainKey::new(*message.chain_key(), from);
        // At most MAX_SKIPPED_KEYS (checked above): `first` is at most the chain's index.
        let mut earlier =
            Vec::with_capacity(first.min(self.chain.index).saturating_sub(from) as usize);
        while chain.index < self.chain.index {
            if chain.index < first {
                earlier.push((chain.index, chain.message_seed()));
            }
            chain.advance();
        }
        if chain.key != self.chain.key {
            // Not the chain this state follows.
            return;
        }
        for entry in earlier.into_iter().rev() {
            self.skipped.push_front(entry);
        }
        // Oldest first, bounded: the earliest go first.
        while self.skipped.len() > MAX_SKIPPED_KEYS {
            self.skipped.pop_front();
        }
        self.first = Some(from);
    }

    /// The seed for `iteration`: stored, or the chain advanced to it (bounded).
    fn seed_for(&mut self, iteration: u32) -> Result<Seed, Error> {
        let current = self.chain.index;
        if iteration < current {
            let pos = self
                .skipped
                .iter()
                .position(|(i, _)| *i == iteration)
                .ok_or_else(|| Error::DuplicateMessage { counter: iteration })?;
            // `pos` was just found (invariant), so removal yields the entry.
            return self
                .skipped
                .remove(pos)
                .map(|(_, s)| s)
                .ok_or_else(|| Error::DuplicateMessage { counter: iteration });
        }
        if iteration - current > MAX_SKIPPED_KEYS as u32 {
            return Err(Error::TooFarInFuture {
                current,
                counter: iteration,
            });
        }
        while self.chain.index < iteration {
            if self.skipped.len() == MAX_SKIPPED_KEYS {
                self.skipped.pop_front();
            }
            self.skipped.push_back(self.chain.take_seed());
        }
        Ok(self.chain.take_seed().1)
    }
}

/// All sender-key state for one (group, sender) pair: up to [`MAX_SENDER_KEY_STATES`]
/// states, newest first. Stores keep it as opaque bytes ([`SenderKeyRecord::serialize`]).
#[derive(Clone, Default)]
pub struct SenderKeyRecord {
    states: VecDeque<SenderKeyState>,
}

impl std::fmt::Debug for SenderKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderKeyRecord")
            .field("states", &self.states.len())
            .finish()
    }
}

impl SenderKeyRecord {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the record holds no state.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Number of states held.
    pub fn state_count(&self) -> usize {
        self.states.len()
    }

    /// Serializes to this crate's versioned protobuf record.
    pub fn serialize(&self) -> Vec<u8> {
        SenderKeyRecordProto {
            format_version: SENDER_KEY_RECORD_FORMAT,
            states: self.states.iter().map(SenderKeyState::to_proto).collect(),
        }
        .encode_to_vec()
    }

    /// Parses a record made by [`SenderKeyRecord::serialize`].
    ///
    /// # Errors
    /// [`Error::InvalidRecord`] on anything malformed or of an unknown format version.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        let p = SenderKeyRecordProto::decode(bytes)
            .map_err(|_| Error::InvalidRecord("sender key record"))?;
        if p.format_version != SENDER_KEY_RECORD_FORMAT {
            return Err(Error::InvalidRecord(
                "unknown sender key record format version",
            ));
        }
        if p.states.len() > MAX_SENDER_KEY_STATES {
            return Err(Error::InvalidRecord("too many sender key states"));
        }
        Ok(Self {
            states: p
                .states
                .iter()
                .map(SenderKeyState::from_proto)
                .collect::<Result<_, _>>()?,
        })
    }

    fn push_front(&mut self, state: SenderKeyState) {
        self.states.push_front(state);
        self.states.truncate(MAX_SENDER_KEY_STATES);
    }

    /// Adds a state read from another implementation's record as the newest one.
    pub(crate) fn push_imported(
        &mut self,
        key_id: u32,
        chain: ChainKey,
        signing_public: PublicKey,
        signing_private: Option<PrivateKey>,
        skipped: VecDeque<(u32, Seed)>,
    ) {
        self.push_front(SenderKeyState {
            key_id,
            chain,
            signing_public,
            signing_private,
            skipped,
            first: None,
        });
    }

    /// Starts a fresh own sending state (new key id, chain key and signing key), keeping
    /// older states (bounded). Used on first send and to rotate the key.
    pub(crate) fn rotate(&mut self, rng: &mut impl CryptoRngCore) {
        let mut chain_key = [0u8; 32];
        rng.fill_bytes(&mut chain_key);
        let key_id = generate_sender_key_id(rng);
        let signing = KeyPair::generate(rng);
        self.push_front(SenderKeyState {
            key_id,
            chain: ChainKey::new(chain_key, 0),
            signing_public: signing.public,
            signing_private: Some(signing.private),
            skipped: VecDeque::new(),
            first: None,
        });
        zeroize::Zeroize::zeroize(&mut chain_key);
    }

    /// Adds an own sending state with the given parameters as the newest state: for
    /// importing a sender key kept by another implementation (or reproducing recorded
    /// traffic). New keys should come from sending instead, which creates them.
    pub fn add_own_state(
        &mut self,
        key_id: u32,
        iteration: u32,
        chain_key: [u8; 32],
        signing: KeyPair,
    ) {
        self.push_front(SenderKeyState {
            key_id,
            chain: ChainKey::new(chain_key, iteration),
            signing_public: signing.public,
            signing_private: Some(signing.private),
            skipped: VecDeque::new(),
            first: None,
        });
    }

    /// The distribution message for our newest sending state, creating one if needed.
    pub(crate) fn distribution_message(
        &mut self,
        rng: &mut impl CryptoRngCore,
    ) -> SenderKeyDistributionMessage {
        if !self.can_send() {
            self.rotate(rng);
        }
        let s = &self.states[0];
        SenderKeyDistributionMessage::encode(s.key_id, s.chain.index, s.chain.key, s.signing_public)
    }

    /// Whether we have an own sending state.
    pub(crate) fn can_send(&self) -> bool {
        self.states
            .front()
            .is_some_and(|s| s.signing_private.is_some())
    }

    /// Takes in a member's distribution message. A state with the same key id and signing
    /// key is kept (it may already be further along the chain); when the message starts
    /// earlier in that chain than any distribution message before it (an original message
    /// arriving after a resend that carried the key further along), the message keys
    /// between the two become skipped keys of the state, so the messages there still
    /// decrypt, once each. That takes the message's chain leading to the state's own
    /// (checked) within [`MAX_SKIPPED_KEYS`] steps; otherwise the message is ignored.
    pub(crate) fn process(&mut self, message: &SenderKeyDistributionMessage) {
        if let Some(state) = self
            .states
            .iter_mut()
            .find(|s| s.key_id == message.key_id() && s.signing_public == *message.signing_key())
        {
            state.take_earlier(message);
            return;
        }
        self.push_front(SenderKeyState {
            key_id: message.key_id(),
            chain: ChainKey::new(*message.chain_key(), message.iteration()),
            signing_public: *message.signing_key(),
            signing_private: None,
            skipped: VecDeque::new(),
            first: Some(message.iteration()),
        });
    }

    /// Encrypts with our newest sending state and signs the message.
    pub(crate) fn encrypt(
        &mut self,
        plaintext: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, Error> {
        let state = self
            .states
            .front_mut()
            .filter(|s| s.signing_private.is_some())
            .ok_or_else(|| Error::NoSenderKey(None))?;
        let signing = KeyPair {
            public: state.signing_public,
            private: state
                .signing_private
                .clone()
                .ok_or_else(|| Error::NoSenderKey(None))?,
        };
        let (iteration, seed) = state.chain.take_seed();
        let keys = GroupMessageKeys::derive(&seed);
        let ciphertext = cbc_encrypt(&keys.cipher_key, &keys.iv, plaintext);
        let message = SenderKeyMessage::encode(state.key_id, iteration, ciphertext, &signing, rng);
        Ok(message.serialized().to_vec())
    }

    /// Verifies and decrypts a group message. On error the record is unchanged.
    pub(crate) fn decrypt(&mut self, message: &SenderKeyMessage) -> Result<Vec<u8>, Error> {
        let mut found = false;
        for i in 0..self.states.len() {
            if self.states[i].key_id != message.key_id() {
                continue;
            }
            found = true;
            if !message.verify_signature(&self.states[i].signing_public) {
                continue;
            }
            let mut state = self.states[i].clone();
            let seed = state.seed_for(message.iteration())?;
            let keys = GroupMessageKeys::derive(&seed);
            let plaintext = cbc_decrypt(&keys.cipher_key, &keys.iv, message.ciphertext())?;
            self.states[i] = state;
            return Ok(plaintext);
        }
        Err(if found {
            Error::InvalidSignature
        } else {
            Error::NoSenderKey(Some(message.key_id()))
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    /// A stored sender-key record whose state says it started after its chain's current
    /// iteration is refused as corrupt (it would also size the keys a late distribution
    /// message adds).
    #[test]
    fn a_state_that_starts_after_its_chain_is_refused() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut record = SenderKeyRecord::new();
        record.add_own_state(1, 5, [7; 32], KeyPair::generate(&mut rng));
        let with_first = |first| {
            let mut p = SenderKeyRecordProto::decode(record.serialize().as_slice()).unwrap();
            p.states[0].first_iteration = Some(first);
            p.encode_to_vec()
        };
        assert!(SenderKeyRecord::deserialize(&with_first(5)).is_ok());
        assert!(matches!(
            SenderKeyRecord::deserialize(&with_first(6)),
            Err(Error::InvalidRecord(_))
        ));
    }
}
