//! Records built from state kept by another implementation of the protocol, so that a
//! device moved here keeps its sessions and sender keys (e.g. `wa_store::baileys` reads
//! libsignal-node's and Baileys' JSON records into these types).
//!
//! The types name the protocol's own quantities; indexes are those of the *next* message
//! key a chain yields (libsignal-node stores the index of the last one it derived, one
//! less). Records are bounded as this crate bounds its own: the newest
//! [`MAX_RECEIVER_CHAINS`] receiving chains, [`MAX_SKIPPED_KEYS`] skipped keys per chain,
//! [`MAX_PREVIOUS_STATES`] previous states and [`MAX_SENDER_KEY_STATES`] sender-key states
//! are kept; older ones are dropped.
//!
//! [`MAX_SENDER_KEY_STATES`]: crate::MAX_SENDER_KEY_STATES

use std::collections::VecDeque;
use std::sync::Arc;

use wa_crypto::{KeyPair, PrivateKey, PublicKey};
use zeroize::Zeroize;

use crate::Error;
use crate::kdf::{ChainKey, RootKey, Seed};
use crate::state::{
    MAX_PREVIOUS_STATES, MAX_RECEIVER_CHAINS, MAX_SKIPPED_KEYS, PendingPreKey, ReceiverChain,
    SenderChain, SessionRecord, SessionState,
};

/// Skipped message keys: (message index, 32-byte seed = HMAC(chain key, 0x01)).
pub type SkippedKeys = Vec<(u32, [u8; 32])>;

/// One receiving chain of an imported session state.
pub struct ImportedChain {
    /// The peer's ratchet public key this chain follows.
    pub ratchet_key: PublicKey,
    /// The chain key at `next_index`; `None` for a chain closed when the peer moved to a
    /// newer ratchet key, of which only the skipped keys are left.
    pub chain_key: Option<[u8; 32]>,
    /// The index of the next message key the chain yields.
    pub next_index: u32,
    /// Keys of messages skipped over on this chain, not yet received.
    pub skipped: SkippedKeys,
}

impl Drop for ImportedChain {
    fn drop(&mut self) {
        self.chain_key.zeroize();
        for (_, seed) in &mut self.skipped {
            seed.zeroize();
        }
    }
}

/// The pre-key half of a session we started and the peer has not answered yet: repeated
/// in every message until it does.
pub struct ImportedPendingPreKey {
    /// The one-time pre-key used, if the peer's bundle had one.
    pub pre_key_id: Option<u32>,
    /// The peer's signed pre-key used.
    pub signed_pre_key_id: u32,
    /// Our base key (the initiator's ephemeral key).
    pub base_key: PublicKey,
}

/// One imported session state (one double ratchet with one peer device).
pub struct ImportedSession {
    /// Our identity public key.
    pub local_identity: PublicKey,
    /// Our registration id.
    pub local_registration_id: u32,
    /// The peer's identity public key.
    pub remote_identity: PublicKey,
    /// The peer's registration id.
    pub remote_registration_id: u32,
    /// The initiator's base key, which names the session.
    pub base_key: PublicKey,
    /// The root key.
    pub root_key: [u8; 32],
    /// The index of the last message sent on the previous sending chain.
    pub previous_counter: u32,
    /// Our current ratchet key pair.
    pub sender_ratchet: KeyPair,
    /// The sending chain key at `sender_next_index`.
    pub sender_chain_key: [u8; 32],
    /// The index of the next message we send.
    pub sender_next_index: u32,
    /// Receiving chains, oldest first.
    pub receivers: Vec<ImportedChain>,
    /// Set while the peer has not answered a session we started.
    pub pending_pre_key: Option<ImportedPendingPreKey>,
}

impl Drop for ImportedSession {
    fn drop(&mut self) {
        self.root_key.zeroize();
        self.sender_chain_key.zeroize();
    }
}

fn skipped(keys: &SkippedKeys) -> VecDeque<(u32, Seed)> {
    let from = keys.len().saturating_sub(MAX_SKIPPED_KEYS);
    keys[from..]
        .iter()
        .map(|(index, seed)| (*index, Seed(*seed)))
        .collect()
}

impl ImportedSession {
    fn state(&self) -> Result<SessionState, Error> {
        if self.sender_ratchet.private.public_key() != self.sender_ratchet.public {
            return Err(Error::InvalidRecord(
                "imported ratchet key pair does not match",
            ));
        }
        let from = self.receivers.len().saturating_sub(MAX_RECEIVER_CHAINS);
        let receivers = self.receivers[from..]
            .iter()
            .map(|c| ReceiverChain {
                ratchet_key: c.ratchet_key,
                chain: ChainKey::new(c.chain_key.unwrap_or([0; 32]), c.next_index),
                skipped: Arc::new(skipped(&c.skipped)),
                closed: c.chain_key.is_none(),
            })
            .collect();
        Ok(SessionState {
            local_identity: self.local_identity,
            remote_identity: self.remote_identity,
            root_key: RootKey(self.root_key),
            previous_counter: self.previous_counter,
            sender: Some(SenderChain {
                ratchet: self.sender_ratchet.clone(),
                chain: ChainKey::new(self.sender_chain_key, self.sender_next_index),
            }),
            receivers,
            pending: self.pending_pre_key.as_ref().map(|p| PendingPreKey {
                pre_key_id: p.pre_key_id,
                signed_pre_key_id: p.signed_pre_key_id,
                base_key: p.base_key,
            }),
            remote_registration_id: self.remote_registration_id,
            local_registration_id: self.local_registration_id,
            base_key: self.base_key,
        })
    }
}

impl SessionRecord {
    /// A record holding imported states: `current` (the open session, if any) and
    /// `previous` (closed sessions, newest first, still tried on decrypt).
    ///
    /// # Errors
    /// [`Error::InvalidRecord`] when a state's ratchet private key does not match its
    /// public key.
    pub fn from_imported(
        current: Option<&ImportedSession>,
        previous: &[ImportedSession],
    ) -> Result<Self, Error> {
        Ok(Self {
            current: current.map(ImportedSession::state).transpose()?,
            previous: previous
                .iter()
                .take(MAX_PREVIOUS_STATES)
                .map(ImportedSession::state)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// One imported sender-key state: a sender's chain in one group.
pub struct ImportedSenderKey {
    /// The sender key id.
    pub key_id: u32,
    /// The iteration of the next message key the chain yields.
    pub iteration: u32,
    /// The chain key at `iteration`.
    pub chain_key: [u8; 32],
    /// The sender's signing public key.
    pub signing_public: PublicKey,
    /// The signing private key: present only in our own sending states.
    pub signing_private: Option<PrivateKey>,
    /// Keys of messages skipped over, not yet received.
    pub skipped: SkippedKeys,
}

impl Drop for ImportedSenderKey {
    fn drop(&mut self) {
        self.chain_key.zeroize();
        for (_, seed) in &mut self.skipped {
            seed.zeroize();
        }
    }
}

impl crate::SenderKeyRecord {
    /// A record holding imported states, given oldest first (the newest is the one we
    /// send with when it is our own).
    ///
    /// # Errors
    /// [`Error::InvalidRecord`] when an own state's signing private key does not match
    /// its public key.
    pub fn from_imported(states: &[ImportedSenderKey]) -> Result<Self, Error> {
        let mut record = Self::new();
        for s in states {
            if let Some(private) = &s.signing_private
                && private.public_key() != s.signing_public
            {
                return Err(Error::InvalidRecord(
                    "imported signing key pair does not match",
                ));
            }
            record.push_imported(
                s.key_id,
                ChainKey::new(s.chain_key, s.iteration),
                s.signing_public,
                s.signing_private.clone(),
                skipped(&s.skipped),
            );
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::ProtocolAddress;
    use crate::kdf::{MessageKeys, cbc_encrypt};
    use crate::message::SignalMessage;
    use crate::session;

    /// Bob's messages on one chain (from chain key `[5; 32]` at index 0) and Ann's view of
    /// a session with him whose receiving chain is at index 2 with key 0 skipped.
    struct Fixture {
        ann: KeyPair,
        bob: KeyPair,
        bob_ratchet: KeyPair,
        seeds: Vec<Seed>,
        chain_key_2: [u8; 32],
        rng: StdRng,
    }

    fn fixture() -> Fixture {
        let mut rng = StdRng::seed_from_u64(9);
        let (ann, bob, bob_ratchet) = (
            KeyPair::generate(&mut rng),
            KeyPair::generate(&mut rng),
            KeyPair::generate(&mut rng),
        );
        let mut chain = ChainKey::new([5; 32], 0);
        let mut seeds = Vec::new();
        for _ in 0..3 {
            seeds.push(chain.message_seed());
            chain.advance();
        }
        let mut chain_2 = ChainKey::new([5; 32], 0);
        chain_2.advance();
        chain_2.advance();
        Fixture {
            ann,
            bob,
            bob_ratchet,
            seeds,
            chain_key_2: chain_2.key,
            rng,
        }
    }

    impl Fixture {
        fn message(&self, counter: u32) -> SignalMessage {
            let keys = MessageKeys::derive(&self.seeds[counter as usize]);
            let ciphertext = cbc_encrypt(&keys.cipher_key, &keys.iv, b"hi");
            SignalMessage::encode(
                &keys.mac_key,
                self.bob_ratchet.public,
                counter,
                0,
                ciphertext,
                &self.bob.public,
                &self.ann.public,
            )
        }

        fn record(&mut self, chain_key: Option<[u8; 32]>) -> SessionRecord {
            let session = ImportedSession {
                local_identity: self.ann.public,
                local_registration_id: 1,
                remote_identity: self.bob.public,
                remote_registration_id: 2,
                base_key: self.bob_ratchet.public,
                root_key: [1; 32],
                previous_counter: 0,
                sender_ratchet: KeyPair::generate(&mut self.rng),
                sender_chain_key: [2; 32],
                sender_next_index: 0,
                receivers: vec![ImportedChain {
                    ratchet_key: self.bob_ratchet.public,
                    chain_key,
                    next_index: 2,
                    skipped: vec![(0, self.seeds[0].0)],
                }],
                pending_pre_key: None,
            };
            let record = SessionRecord::from_imported(Some(&session), &[]).unwrap();
            // What a store keeps.
            SessionRecord::deserialize(&record.serialize()).unwrap()
        }
    }

    #[test]
    fn a_closed_chain_yields_its_skipped_keys_and_nothing_past_its_end() {
        let mut f = fixture();
        let addr = ProtocolAddress::new("bob", 0);
        let mut closed = f.record(None);
        let m0 = f.message(0);
        assert_eq!(
            session::decrypt(&mut closed, &m0, &addr, &mut f.rng).unwrap(),
            b"hi"
        );
        let m2 = f.message(2);
        assert!(matches!(
            session::decrypt(&mut closed, &m2, &addr, &mut f.rng),
            Err(Error::InvalidMessage(m)) if m.contains("closed")
        ));
        // The same chain still open goes on from its key.
        let mut open = f.record(Some(f.chain_key_2));
        assert_eq!(
            session::decrypt(&mut open, &m2, &addr, &mut f.rng).unwrap(),
            b"hi"
        );
        assert!(matches!(
            session::decrypt(&mut open, &f.message(1), &addr, &mut f.rng),
            Err(Error::DuplicateMessage { counter: 1 })
        ));
    }

    #[test]
    fn key_pairs_that_do_not_match_are_refused() {
        let mut f = fixture();
        let other = KeyPair::generate(&mut f.rng);
        let session = |ratchet: KeyPair| ImportedSession {
            local_identity: f.ann.public,
            local_registration_id: 1,
            remote_identity: f.bob.public,
            remote_registration_id: 2,
            base_key: f.bob_ratchet.public,
            root_key: [1; 32],
            previous_counter: 0,
            sender_ratchet: ratchet,
            sender_chain_key: [2; 32],
            sender_next_index: 0,
            receivers: Vec::new(),
            pending_pre_key: None,
        };
        let mismatched = KeyPair {
            public: f.ann.public,
            private: other.private.clone(),
        };
        assert!(SessionRecord::from_imported(Some(&session(mismatched)), &[]).is_err());
        assert!(
            SessionRecord::from_imported(None, &[session(other.clone())])
                .unwrap()
                .previous_state_count()
                == 1
        );
        let sender_key = |public: PublicKey| ImportedSenderKey {
            key_id: 1,
            iteration: 0,
            chain_key: [3; 32],
            signing_public: public,
            signing_private: Some(other.private.clone()),
            skipped: Vec::new(),
        };
        assert!(crate::SenderKeyRecord::from_imported(&[sender_key(f.ann.public)]).is_err());
        let record = crate::SenderKeyRecord::from_imported(&[sender_key(other.public)]).unwrap();
        assert!(record.can_send());
    }
}
