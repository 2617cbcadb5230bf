//! The pure core of 1:1 sessions: X3DH for both sides, the double ratchet, encrypt and
//! decrypt over a [`SessionRecord`]. No IO; the repository loads and stores around it.

use rand_core::CryptoRngCore;
use wa_crypto::{KeyPair, PublicKey, hkdf_sha256_into};
use zeroize::Zeroize;

use crate::Error;
use crate::address::ProtocolAddress;
use crate::kdf::{MessageKeys, RootKey, Seed, cbc_decrypt, cbc_encrypt, split_64};
use crate::keys::PreKeyBundle;
use crate::message::{PreKeySignalMessage, SignalMessage};
use crate::state::{
    MAX_RECEIVER_CHAINS, MAX_SKIPPED_KEYS, PendingPreKey, ReceiverChain, SenderChain,
    SessionRecord, SessionState,
};

/// The kind of a 1:1 ciphertext, as in the `type` attribute of an `<enc>` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CiphertextType {
    /// `msg`: a `SignalMessage` on an established session.
    Msg,
    /// `pkmsg`: a `PreKeySignalMessage`, sent until the peer has answered.
    Pkmsg,
    /// `skmsg`: a group `SenderKeyMessage`.
    Skmsg,
}

impl CiphertextType {
    /// The `enc` node's `type` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Msg => "msg",
            Self::Pkmsg => "pkmsg",
            Self::Skmsg => "skmsg",
        }
    }

    /// Parses an `enc` node's `type` attribute value.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "msg" => Some(Self::Msg),
            "pkmsg" => Some(Self::Pkmsg),
            "skmsg" => Some(Self::Skmsg),
            _ => None,
        }
    }
}

/// X3DH master secret -> (root key, chain key): HKDF(0xFF×32 || DH1 || DH2 || DH3 [|| DH4],
/// zero salt, "WhisperText", 64).
fn derive_initial(dhs: &[&[u8; 32]]) -> (RootKey, crate::kdf::ChainKey) {
    let mut master = [0u8; 32 * 5];
    master[..32].fill(0xFF);
    for (i, dh) in dhs.iter().enumerate() {
        master[32 * (i + 1)..32 * (i + 2)].copy_from_slice(*dh);
    }
    let len = 32 * (dhs.len() + 1);
    let mut okm = [0u8; 64];
    // 64 bytes is below HKDF's limit: cannot fail.
    let _ = hkdf_sha256_into(&master[..len], None, b"WhisperText", &mut okm);
    let out = split_64(&okm);
    master.zeroize();
    okm.zeroize();
    out
}

/// The initiator's side of X3DH: a new session state from a peer's pre-key bundle. Draws
/// the base key, then the first sending ratchet key, from `rng`.
pub(crate) fn initiate(
    local_identity: &KeyPair,
    local_registration_id: u32,
    bundle: &PreKeyBundle,
    rng: &mut impl CryptoRngCore,
) -> Result<SessionState, Error> {
    if !bundle.verify_signature() {
        return Err(Error::InvalidSignature);
    }
    let base = KeyPair::generate(rng);
    let dh1 = local_identity.dh(&bundle.signed_pre_key);
    let dh2 = base.dh(&bundle.identity_key);
    let dh3 = base.dh(&bundle.signed_pre_key);
    let (root, chain) = match &bundle.pre_key {
        Some((_, one_time)) => {
            let dh4 = base.dh(one_time);
            derive_initial(&[
                dh1.as_bytes(),
                dh2.as_bytes(),
                dh3.as_bytes(),
                dh4.as_bytes(),
            ])
        }
        None => derive_initial(&[dh1.as_bytes(), dh2.as_bytes(), dh3.as_bytes()]),
    };
    let sending_ratchet = KeyPair::generate(rng);
    let (root, sending_chain) = root.step(&sending_ratchet.dh(&bundle.signed_pre_key));
    Ok(SessionState {
        local_identity: local_identity.public,
        remote_identity: bundle.identity_key,
        root_key: root,
        previous_counter: 0,
        sender: Some(SenderChain {
            ratchet: sending_ratchet,
            chain: sending_chain,
        }),
        receivers: vec![ReceiverChain {
            ratchet_key: bundle.signed_pre_key,
            chain,
            skipped: Default::default(),
            closed: false,
        }],
        pending: Some(PendingPreKey {
            pre_key_id: bundle.pre_key.map(|(id, _)| id),
            signed_pre_key_id: bundle.signed_pre_key_id,
            base_key: base.public,
        }),
        remote_registration_id: bundle.registration_id,
        local_registration_id,
        base_key: base.public,
    })
}

/// The responder's side of X3DH, from a received `pkmsg` and our pre-keys.
pub(crate) fn respond(
    local_identity: &KeyPair,
    local_registration_id: u32,
    message: &PreKeySignalMessage,
    signed_pre_key: &KeyPair,
    one_time_pre_key: Option<&KeyPair>,
) -> SessionState {
    let their_identity = message.identity_key();
    let their_base = message.base_key();
    let dh1 = signed_pre_key.dh(their_identity);
    let dh2 = local_identity.dh(their_base);
    let dh3 = signed_pre_key.dh(their_base);
    let (root, chain) = match one_time_pre_key {
        Some(otk) => {
            let dh4 = otk.dh(their_base);
            derive_initial(&[
                dh1.as_bytes(),
                dh2.as_bytes(),
                dh3.as_bytes(),
                dh4.as_bytes(),
            ])
        }
        None => derive_initial(&[dh1.as_bytes(), dh2.as_bytes(), dh3.as_bytes()]),
    };
    SessionState {
        local_identity: local_identity.public,
        remote_identity: *their_identity,
        root_key: root,
        previous_counter: 0,
        sender: Some(SenderChain {
            ratchet: signed_pre_key.clone(),
            chain,
        }),
        receivers: Vec::new(),
        pending: None,
        remote_registration_id: message.registration_id(),
        local_registration_id,
        base_key: *their_base,
    }
}

/// Encrypts `plaintext` (already padded) with the current session state.
pub(crate) fn encrypt(
    record: &mut SessionRecord,
    plaintext: &[u8],
    address: &ProtocolAddress,
) -> Result<(CiphertextType, Vec<u8>), Error> {
    let state = record
        .current
        .as_mut()
        .ok_or_else(|| Error::NoSession(address.clone()))?;
    let sender = state
        .sender
        .as_mut()
        .ok_or_else(|| Error::NoSession(address.clone()))?;
    let (counter, seed) = sender.chain.take_seed();
    let keys = MessageKeys::derive(&seed);
    let ciphertext = cbc_encrypt(&keys.cipher_key, &keys.iv, plaintext);
    let message = SignalMessage::encode(
        &keys.mac_key,
        sender.ratchet.public,
        counter,
        state.previous_counter,
        ciphertext,
        &state.local_identity,
        &state.remote_identity,
    );
    Ok(match &state.pending {
        Some(p) => {
            let pkmsg = PreKeySignalMessage::encode(
                state.local_registration_id,
                p.pre_key_id,
                p.signed_pre_key_id,
                p.base_key,
                state.local_identity,
                message,
            );
            (CiphertextType::Pkmsg, pkmsg.serialized().to_vec())
        }
        None => (CiphertextType::Msg, message.serialized().to_vec()),
    })
}

/// Decrypts with one state, mutating it (callers pass a copy and keep it only on success).
pub(crate) fn decrypt_with_state(
    state: &mut SessionState,
    message: &SignalMessage,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, Error> {
    let their_ratchet = *message.ratchet_key();
    let index = match state
        .receivers
        .iter()
        .position(|c| c.ratchet_key == their_ratchet)
    {
        Some(i) => i,
        None => ratchet_step(state, &their_ratchet, rng)?,
    };
    let seed = message_seed(&mut state.receivers[index], message.counter())?;
    let keys = MessageKeys::derive(&seed);
    if !message.verify_mac(&keys.mac_key, &state.remote_identity, &state.local_identity) {
        return Err(Error::BadMac);
    }
    let plaintext = cbc_decrypt(&keys.cipher_key, &keys.iv, message.ciphertext())?;
    // The peer has a session with us: stop sending pre-key messages.
    state.pending = None;
    Ok(plaintext)
}

/// A DH ratchet step for a new peer ratchet key: a receiving chain for it, then a fresh
/// sending ratchet key and chain. Returns the new receiving chain's index.
fn ratchet_step(
    state: &mut SessionState,
    their_ratchet: &PublicKey,
    rng: &mut impl CryptoRngCore,
) -> Result<usize, Error> {
    let sender = state
        .sender
        .as_ref()
        .ok_or_else(|| Error::InvalidRecord("session state without a sending chain"))?;
    let (root, receiving) = state.root_key.step(&sender.ratchet.dh(their_ratchet));
    let new_ratchet = KeyPair::generate(rng);
    let (root, sending) = root.step(&new_ratchet.dh(their_ratchet));
    // As libsignal-node (the WhatsApp Web stack) does: the index of the last message sent
    // on the chain being replaced.
    state.previous_counter = sender.chain.index.saturating_sub(1);
    state.root_key = root;
    state.sender = Some(SenderChain {
        ratchet: new_ratchet,
        chain: sending,
    });
    state.receivers.push(ReceiverChain {
        ratchet_key: *their_ratchet,
        chain: receiving,
        skipped: Default::default(),
        closed: false,
    });
    if state.receivers.len() > MAX_RECEIVER_CHAINS {
        state.receivers.remove(0);
    }
    Ok(state.receivers.len() - 1)
}

/// The message-key seed for `counter` on a receiving chain: a stored skipped key, or the
/// chain advanced to it (storing the keys skipped over, bounded).
pub(crate) fn message_seed(chain: &mut ReceiverChain, counter: u32) -> Result<Seed, Error> {
    let current = chain.chain.index;
    if counter < current {
        let pos = chain
            .skipped
            .iter()
            .position(|(i, _)| *i == counter)
            .ok_or_else(|| Error::DuplicateMessage { counter })?;
        // `pos` was just found in the deque (invariant), so removal yields the entry.
        return std::sync::Arc::make_mut(&mut chain.skipped)
            .remove(pos)
            .map(|(_, seed)| seed)
            .ok_or_else(|| Error::DuplicateMessage { counter });
    }
    if chain.closed {
        return Err(Error::InvalidMessage(
            "message past the end of a closed receiving chain",
        ));
    }
    if counter - current > MAX_SKIPPED_KEYS as u32 {
        return Err(Error::TooFarInFuture { current, counter });
    }
    if chain.chain.index < counter {
        let skipped = std::sync::Arc::make_mut(&mut chain.skipped);
        while chain.chain.index < counter {
            if skipped.len() == MAX_SKIPPED_KEYS {
                skipped.pop_front();
            }
            skipped.push_back(chain.chain.take_seed());
        }
    }
    Ok(chain.chain.take_seed().1)
}

fn error_rank(e: &Error) -> u8 {
    match e {
        Error::DuplicateMessage { .. } => 4,
        Error::TooFarInFuture { .. } => 3,
        Error::InvalidMessage(_) => 2,
        Error::BadMac => 1,
        _ => 0,
    }
}

/// Decrypts a `SignalMessage` with the record: the current state first, then the previous
/// ones (newest first). A previous state that decrypts becomes current. On error the
/// record is unchanged.
pub(crate) fn decrypt(
    record: &mut SessionRecord,
    message: &SignalMessage,
    address: &ProtocolAddress,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, Error> {
    let mut best: Option<Error> = None;
    let mut keep = |e: Error| {
        if best.as_ref().is_none_or(|b| error_rank(&e) > error_rank(b)) {
            best = Some(e);
        }
    };
    if let Some(current) = &record.current {
        let mut state = current.clone();
        match decrypt_with_state(&mut state, message, rng) {
            Ok(pt) => {
                record.current = Some(state);
                return Ok(pt);
            }
            Err(e) => keep(e),
        }
    }
    for i in 0..record.previous.len() {
        let mut state = record.previous[i].clone();
        match decrypt_with_state(&mut state, message, rng) {
            Ok(pt) => {
                record.previous.remove(i);
                record.promote_state(state);
                return Ok(pt);
            }
            Err(e) => keep(e),
        }
    }
    Err(best.unwrap_or_else(|| Error::NoSession(address.clone())))
}
