//! The four wire messages: `msg`, `pkmsg`, `skmsg` and the sender-key distribution message.
//! Each starts with the version byte 0x33; `msg` ends with an 8-byte MAC and `skmsg` with a
//! 64-byte XEdDSA signature.

use prost::Message as _;
use rand_core::CryptoRngCore;
use wa_crypto::{KeyPair, PublicKey, Signature, ct_eq, hmac_sha256_parts};
use zeroize::Zeroize;

use crate::Error;
use crate::codec::Reader;
use crate::proto::{
    PreKeySignalMessageProto, SenderKeyDistributionMessageProto, SenderKeyMessageProto,
    SignalMessageProto,
};

/// The message format version: 3 in both nibbles.
pub const CIPHERTEXT_VERSION: u8 = 0x33;
/// Length of the truncated MAC that ends a `SignalMessage`.
pub const MAC_LENGTH: usize = 8;
const SIGNATURE_LENGTH: usize = 64;

fn check_version(bytes: &[u8]) -> Result<(), Error> {
    let &v = bytes
        .first()
        .ok_or_else(|| Error::InvalidMessage("empty message"))?;
    if v >> 4 != 3 {
        return Err(Error::UnsupportedVersion(v));
    }
    Ok(())
}

fn key(bytes: Option<&[u8]>, what: &'static str) -> Result<PublicKey, Error> {
    let b = bytes.ok_or_else(|| Error::InvalidMessage(what))?;
    // Inside Signal structures keys carry the 0x05 prefix; tolerate the raw form too.
    PublicKey::from_slice(b).map_err(|_| Error::InvalidMessage(what))
}

/// A `SignalMessage` (`enc type="msg"`): one double-ratchet message.
#[derive(Clone, Debug)]
pub struct SignalMessage {
    ratchet_key: PublicKey,
    counter: u32,
    previous_counter: u32,
    ciphertext: Vec<u8>,
    serialized: Vec<u8>,
}

impl SignalMessage {
    /// Parses a `msg` payload. The MAC is checked later, against the session's keys.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] or [`Error::UnsupportedVersion`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        check_version(bytes)?;
        if bytes.len() < 1 + MAC_LENGTH {
            return Err(Error::InvalidMessage("message too short"));
        }
        let body = &bytes[1..bytes.len() - MAC_LENGTH];
        let bad = |_| Error::InvalidMessage("bad SignalMessage protobuf");
        // Read in place (fields as prost reads them: the last occurrence wins, unknown
        // fields are skipped), so only the ciphertext and the wire bytes are copied.
        let (mut ratchet_key, mut counter, mut previous_counter, mut ciphertext) =
            (None, None, None, None);
        let mut r = Reader::new(body, "SignalMessage");
        while let Some((tag, v)) = r.next_field().map_err(bad)? {
            match tag {
                1 => ratchet_key = Some(v.bytes("ratchet key").map_err(bad)?),
                2 => counter = Some(v.u32("counter").map_err(bad)?),
                3 => previous_counter = Some(v.u32("previous counter").map_err(bad)?),
                4 => ciphertext = Some(v.bytes("ciphertext").map_err(bad)?),
                _ => {}
            }
        }
        Ok(Self {
            ratchet_key: key(ratchet_key, "bad ratchet key")?,
            counter: counter.ok_or_else(|| Error::InvalidMessage("missing counter"))?,
            previous_counter: previous_counter.unwrap_or(0),
            ciphertext: ciphertext
                .ok_or_else(|| Error::InvalidMessage("missing ciphertext"))?
                .to_vec(),
            serialized: bytes.to_vec(),
        })
    }

    pub(crate) fn encode(
        mac_key: &[u8; 32],
        ratchet_key: PublicKey,
        counter: u32,
        previous_counter: u32,
        ciphertext: Vec<u8>,
        sender_identity: &PublicKey,
        receiver_identity: &PublicKey,
    ) -> Self {
        let proto = SignalMessageProto {
            ratchet_key: Some(ratchet_key.serialize().to_vec()),
            counter: Some(counter),
            previous_counter: Some(previous_counter),
            ciphertext: Some(ciphertext),
        };
        let mut serialized = Vec::with_capacity(1 + proto.encoded_len() + MAC_LENGTH);
        serialized.push(CIPHERTEXT_VERSION);
        // Encoding into a Vec cannot run out of space.
        let _ = proto.encode(&mut serialized);
        let mac = compute_mac(mac_key, sender_identity, receiver_identity, &serialized);
        serialized.extend_from_slice(&mac);
        Self {
            ratchet_key,
            counter,
            previous_counter,
            ciphertext: proto.ciphertext.unwrap_or_default(),
            serialized,
        }
    }

    /// Whether the trailing MAC verifies (constant-time comparison).
    pub(crate) fn verify_mac(
        &self,
        mac_key: &[u8; 32],
        sender_identity: &PublicKey,
        receiver_identity: &PublicKey,
    ) -> bool {
        let (body, mac) = self.serialized.split_at(self.serialized.len() - MAC_LENGTH);
        let expected = compute_mac(mac_key, sender_identity, receiver_identity, body);
        ct_eq(&expected, mac)
    }

    /// The sender's ratchet public key.
    pub fn ratchet_key(&self) -> &PublicKey {
        &self.ratchet_key
    }

    /// The message's index in its chain.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// The sender's previous chain length, as the sender reports it.
    pub fn previous_counter(&self) -> u32 {
        self.previous_counter
    }

    /// The AES-CBC ciphertext.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// The wire bytes (version byte, protobuf, MAC).
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }
}

/// First 8 bytes of HMAC-SHA256(macKey, sender identity(33) || receiver identity(33) || body).
fn compute_mac(
    mac_key: &[u8; 32],
    sender: &PublicKey,
    receiver: &PublicKey,
    body: &[u8],
) -> [u8; MAC_LENGTH] {
    let full = hmac_sha256_parts(mac_key, &[&sender.serialize(), &receiver.serialize(), body]);
    let mut mac = [0u8; MAC_LENGTH];
    mac.copy_from_slice(&full[..MAC_LENGTH]);
    mac
}

/// A `PreKeySignalMessage` (`enc type="pkmsg"`): a `SignalMessage` plus what the receiver
/// needs to build the session.
#[derive(Clone, Debug)]
pub struct PreKeySignalMessage {
    registration_id: u32,
    pre_key_id: Option<u32>,
    signed_pre_key_id: u32,
    base_key: PublicKey,
    identity_key: PublicKey,
    message: SignalMessage,
    serialized: Vec<u8>,
}

impl PreKeySignalMessage {
    /// Parses a `pkmsg` payload (and the `SignalMessage` inside it).
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] or [`Error::UnsupportedVersion`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        check_version(bytes)?;
        let bad = |_| Error::InvalidMessage("bad PreKeySignalMessage protobuf");
        let (mut pre_key_id, mut base_key, mut identity_key, mut message) =
            (None, None, None, None);
        let (mut registration_id, mut signed_pre_key_id) = (None, None);
        let mut r = Reader::new(&bytes[1..], "PreKeySignalMessage");
        while let Some((tag, v)) = r.next_field().map_err(bad)? {
            match tag {
                1 => pre_key_id = Some(v.u32("pre-key id").map_err(bad)?),
                2 => base_key = Some(v.bytes("base key").map_err(bad)?),
                3 => identity_key = Some(v.bytes("identity key").map_err(bad)?),
                4 => message = Some(v.bytes("message").map_err(bad)?),
                5 => registration_id = Some(v.u32("registration id").map_err(bad)?),
                6 => signed_pre_key_id = Some(v.u32("signed pre-key id").map_err(bad)?),
                _ => {}
            }
        }
        let inner = message.ok_or_else(|| Error::InvalidMessage("missing message"))?;
        Ok(Self {
            registration_id: registration_id.unwrap_or(0),
            pre_key_id,
            signed_pre_key_id: signed_pre_key_id
                .ok_or_else(|| Error::InvalidMessage("missing signed pre-key id"))?,
            base_key: key(base_key, "bad base key")?,
            identity_key: key(identity_key, "bad identity key")?,
            message: SignalMessage::decode(inner)?,
            serialized: bytes.to_vec(),
        })
    }

    pub(crate) fn encode(
        registration_id: u32,
        pre_key_id: Option<u32>,
        signed_pre_key_id: u32,
        base_key: PublicKey,
        identity_key: PublicKey,
        message: SignalMessage,
    ) -> Self {
        let proto = PreKeySignalMessageProto {
            pre_key_id,
            base_key: Some(base_key.serialize().to_vec()),
            identity_key: Some(identity_key.serialize().to_vec()),
            message: Some(message.serialized.clone()),
            registration_id: Some(registration_id),
            signed_pre_key_id: Some(signed_pre_key_id),
        };
        let mut serialized = Vec::with_capacity(1 + proto.encoded_len());
        serialized.push(CIPHERTEXT_VERSION);
        // Encoding into a Vec cannot run out of space.
        let _ = proto.encode(&mut serialized);
        Self {
            registration_id,
            pre_key_id,
            signed_pre_key_id,
            base_key,
            identity_key,
            message,
            serialized,
        }
    }

    /// The sender's registration id.
    pub fn registration_id(&self) -> u32 {
        self.registration_id
    }

    /// The one-time pre-key the sender used, if any.
    pub fn pre_key_id(&self) -> Option<u32> {
        self.pre_key_id
    }

    /// The signed pre-key the sender used.
    pub fn signed_pre_key_id(&self) -> u32 {
        self.signed_pre_key_id
    }

    /// The sender's base (ephemeral) key: identifies the session it starts.
    pub fn base_key(&self) -> &PublicKey {
        &self.base_key
    }

    /// The sender's identity key.
    pub fn identity_key(&self) -> &PublicKey {
        &self.identity_key
    }

    /// The enclosed `SignalMessage`.
    pub fn message(&self) -> &SignalMessage {
        &self.message
    }

    /// The wire bytes.
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }
}

/// A `SenderKeyMessage` (`enc type="skmsg"`): one group message.
#[derive(Clone, Debug)]
pub struct SenderKeyMessage {
    key_id: u32,
    iteration: u32,
    ciphertext: Vec<u8>,
    serialized: Vec<u8>,
}

impl SenderKeyMessage {
    /// Parses an `skmsg` payload. The signature is checked later, against the sender's key.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] or [`Error::UnsupportedVersion`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        check_version(bytes)?;
        if bytes.len() < 1 + SIGNATURE_LENGTH {
            return Err(Error::InvalidMessage("sender key message too short"));
        }
        let p = SenderKeyMessageProto::decode(&bytes[1..bytes.len() - SIGNATURE_LENGTH])
            .map_err(|_| Error::InvalidMessage("bad SenderKeyMessage protobuf"))?;
        Ok(Self {
            key_id: p
                .id
                .ok_or_else(|| Error::InvalidMessage("missing key id"))?,
            iteration: p
                .iteration
                .ok_or_else(|| Error::InvalidMessage("missing iteration"))?,
            ciphertext: p
                .ciphertext
                .ok_or_else(|| Error::InvalidMessage("missing ciphertext"))?,
            serialized: bytes.to_vec(),
        })
    }

    pub(crate) fn encode(
        key_id: u32,
        iteration: u32,
        ciphertext: Vec<u8>,
        signing_key: &KeyPair,
        rng: &mut impl CryptoRngCore,
    ) -> Self {
        let proto = SenderKeyMessageProto {
            id: Some(key_id),
            iteration: Some(iteration),
            ciphertext: Some(ciphertext),
        };
        let mut serialized = Vec::with_capacity(1 + proto.encoded_len() + SIGNATURE_LENGTH);
        serialized.push(CIPHERTEXT_VERSION);
        // Encoding into a Vec cannot run out of space.
        let _ = proto.encode(&mut serialized);
        let signature = signing_key.sign(&serialized, rng);
        serialized.extend_from_slice(signature.as_bytes());
        Self {
            key_id,
            iteration,
            ciphertext: proto.ciphertext.unwrap_or_default(),
            serialized,
        }
    }

    /// Whether the trailing XEdDSA signature verifies under the sender's signing key.
    pub fn verify_signature(&self, signing_key: &PublicKey) -> bool {
        let (body, sig) = self
            .serialized
            .split_at(self.serialized.len() - SIGNATURE_LENGTH);
        Signature::from_slice(sig).is_ok_and(|s| signing_key.verify(body, &s))
    }

    /// The sender-key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The chain iteration this message was encrypted at.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The AES-CBC ciphertext.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// The wire bytes (version byte, protobuf, signature).
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }
}

/// A `SenderKeyDistributionMessage`: a sender's chain key and signing key for one group,
/// sent to each member pairwise.
#[derive(Clone)]
pub struct SenderKeyDistributionMessage {
    key_id: u32,
    iteration: u32,
    chain_key: [u8; 32],
    signing_key: PublicKey,
    serialized: Vec<u8>,
}

impl Drop for SenderKeyDistributionMessage {
    fn drop(&mut self) {
        self.chain_key.zeroize();
        self.serialized.zeroize();
    }
}

impl std::fmt::Debug for SenderKeyDistributionMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderKeyDistributionMessage")
            .field("key_id", &self.key_id)
            .field("iteration", &self.iteration)
            .field("signing_key", &self.signing_key)
            .finish_non_exhaustive()
    }
}

impl SenderKeyDistributionMessage {
    /// Parses a distribution message (the `axolotlSenderKeyDistributionMessage` bytes).
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] or [`Error::UnsupportedVersion`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        check_version(bytes)?;
        let p = SenderKeyDistributionMessageProto::decode(&bytes[1..])
            .map_err(|_| Error::InvalidMessage("bad SenderKeyDistributionMessage protobuf"))?;
        let chain_key: [u8; 32] = p
            .chain_key
            .as_deref()
            .and_then(|c| c.try_into().ok())
            .ok_or_else(|| Error::InvalidMessage("bad chain key"))?;
        Ok(Self {
            key_id: p
                .id
                .ok_or_else(|| Error::InvalidMessage("missing key id"))?,
            iteration: p
                .iteration
                .ok_or_else(|| Error::InvalidMessage("missing iteration"))?,
            chain_key,
            signing_key: key(p.signing_key.as_deref(), "bad signing key")?,
            serialized: bytes.to_vec(),
        })
    }

    pub(crate) fn encode(
        key_id: u32,
        iteration: u32,
        chain_key: [u8; 32],
        signing_key: PublicKey,
    ) -> Self {
        let proto = SenderKeyDistributionMessageProto {
            id: Some(key_id),
            iteration: Some(iteration),
            chain_key: Some(chain_key.to_vec()),
            signing_key: Some(signing_key.serialize().to_vec()),
        };
        let mut serialized = Vec::with_capacity(1 + proto.encoded_len());
        serialized.push(CIPHERTEXT_VERSION);
        // Encoding into a Vec cannot run out of space.
        let _ = proto.encode(&mut serialized);
        Self {
            key_id,
            iteration,
            chain_key,
            signing_key,
            serialized,
        }
    }

    /// The sender-key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The chain iteration the chain key belongs to.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The chain key (secret).
    pub fn chain_key(&self) -> &[u8; 32] {
        &self.chain_key
    }

    /// The sender's signing public key.
    pub fn signing_key(&self) -> &PublicKey {
        &self.signing_key
    }

    /// The wire bytes.
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn keys(seed: u64) -> (KeyPair, KeyPair, KeyPair) {
        let mut rng = StdRng::seed_from_u64(seed);
        (
            KeyPair::generate(&mut rng),
            KeyPair::generate(&mut rng),
            KeyPair::generate(&mut rng),
        )
    }

    #[test]
    fn signal_message_round_trip_and_mac() {
        let (ratchet, a, b) = keys(1);
        let mac_key = [9u8; 32];
        let m = SignalMessage::encode(
            &mac_key,
            ratchet.public,
            7,
            3,
            vec![1; 32],
            &a.public,
            &b.public,
        );
        assert_eq!(m.serialized()[0], CIPHERTEXT_VERSION);
        let d = SignalMessage::decode(m.serialized()).unwrap();
        assert_eq!(
            (
                d.ratchet_key(),
                d.counter(),
                d.previous_counter(),
                d.ciphertext()
            ),
            (&ratchet.public, 7, 3, &[1u8; 32][..])
        );
        assert!(d.verify_mac(&mac_key, &a.public, &b.public));
        // The MAC binds both identities, in order, and the key.
        assert!(!d.verify_mac(&mac_key, &b.public, &a.public));
        assert!(!d.verify_mac(&[8; 32], &a.public, &b.public));
    }

    #[test]
    fn pre_key_message_round_trip_with_and_without_one_time_key() {
        let (ratchet, a, base) = keys(2);
        for pre_key_id in [Some(5), None] {
            let inner = SignalMessage::encode(
                &[1; 32],
                ratchet.public,
                0,
                0,
                vec![2; 16],
                &a.public,
                &base.public,
            );
            let m = PreKeySignalMessage::encode(42, pre_key_id, 3, base.public, a.public, inner);
            let d = PreKeySignalMessage::decode(m.serialized()).unwrap();
            assert_eq!(d.pre_key_id(), pre_key_id);
            assert_eq!(d.registration_id(), 42);
            assert_eq!(d.signed_pre_key_id(), 3);
            assert_eq!(d.base_key(), &base.public);
            assert_eq!(d.identity_key(), &a.public);
            assert_eq!(d.message().serialized(), m.message().serialized());
        }
    }

    #[test]
    fn sender_key_messages_round_trip_and_verify() {
        let (signing, other, _) = keys(3);
        let mut rng = StdRng::seed_from_u64(4);
        let m = SenderKeyMessage::encode(11, 12, vec![3; 16], &signing, &mut rng);
        let d = SenderKeyMessage::decode(m.serialized()).unwrap();
        assert_eq!(
            (d.key_id(), d.iteration(), d.ciphertext()),
            (11, 12, &[3u8; 16][..])
        );
        assert!(d.verify_signature(&signing.public));
        assert!(!d.verify_signature(&other.public));

        let skdm = SenderKeyDistributionMessage::encode(11, 12, [5; 32], signing.public);
        let d = SenderKeyDistributionMessage::decode(skdm.serialized()).unwrap();
        assert_eq!(
            (d.key_id(), d.iteration(), d.chain_key(), d.signing_key()),
            (11, 12, &[5u8; 32], &signing.public)
        );
    }

    #[test]
    fn version_and_length_checks() {
        assert!(matches!(
            SignalMessage::decode(&[]),
            Err(Error::InvalidMessage(_))
        ));
        assert!(matches!(
            SignalMessage::decode(&[0x23, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(Error::UnsupportedVersion(0x23))
        ));
        assert!(matches!(
            SignalMessage::decode(&[0x33; 5]),
            Err(Error::InvalidMessage(_))
        ));
        assert!(matches!(
            SenderKeyMessage::decode(&[0x33; 40]),
            Err(Error::InvalidMessage(_))
        ));
        assert!(matches!(
            PreKeySignalMessage::decode(&[0x43, 8, 1]),
            Err(Error::UnsupportedVersion(0x43))
        ));
        // Missing required fields.
        assert!(matches!(
            PreKeySignalMessage::decode(&[0x33, 8, 1]),
            Err(Error::InvalidMessage(_))
        ));
        assert!(matches!(
            SenderKeyDistributionMessage::decode(&[0x33, 8, 1, 16, 0]),
            Err(Error::InvalidMessage(_))
        ));
    }

    /// The in-place readers accept what prost accepts and read the same fields: last
    /// occurrence wins, unknown fields skipped; checked on a message with duplicated and
    /// unknown fields and on every truncation and many one-byte changes of it.
    #[test]
    fn readers_agree_with_prost() {
        let (a, b, c) = keys(9);
        let inner = SignalMessageProto {
            ratchet_key: Some(a.public.serialize().to_vec()),
            counter: Some(7),
            previous_counter: Some(3),
            ciphertext: Some(vec![0xab; 48]),
        };
        let mut body = inner.encode_to_vec();
        // An unknown varint field, a counter repeated (the last wins), an unknown bytes field.
        body.extend_from_slice(&[0x48, 0x05, 0x10, 0x09, 0x52, 0x02, 0xaa, 0xbb]);
        let mut msg = vec![CIPHERTEXT_VERSION];
        msg.extend_from_slice(&body);
        msg.extend_from_slice(&[0u8; MAC_LENGTH]);
        let outer = PreKeySignalMessageProto {
            pre_key_id: Some(4),
            base_key: Some(b.public.serialize().to_vec()),
            identity_key: Some(c.public.serialize().to_vec()),
            message: Some(msg.clone()),
            registration_id: Some(77),
            signed_pre_key_id: Some(2),
        };
        let mut pk = vec![CIPHERTEXT_VERSION];
        pk.extend_from_slice(&outer.encode_to_vec());
        pk.extend_from_slice(&[0x38, 0x01]);

        // Ratchet key, counter, previous counter, ciphertext.
        type Fields = (Vec<u8>, Option<u32>, Option<u32>, Vec<u8>);
        let by_prost_msg = |bytes: &[u8]| -> Option<Fields> {
            let body = bytes.get(1..bytes.len().checked_sub(MAC_LENGTH)?)?;
            let p = SignalMessageProto::decode(body).ok()?;
            Some((p.ratchet_key?, p.counter, p.previous_counter, p.ciphertext?))
        };
        let ours_msg = |bytes: &[u8]| {
            SignalMessage::decode(bytes).ok().map(|m| {
                (
                    m.ratchet_key().serialize().to_vec(),
                    Some(m.counter()),
                    m.previous_counter(),
                    m.ciphertext().to_vec(),
                )
            })
        };
        let decoded = ours_msg(&msg).expect("decodes");
        assert_eq!(decoded.1, Some(9), "the last counter wins");
        let p = by_prost_msg(&msg).unwrap();
        assert_eq!((decoded.0, decoded.1, decoded.3), (p.0, p.1, p.3));

        let check = |bytes: &[u8]| {
            // Where both accept, they read the same fields; ours never accepts what prost
            // refuses (prost skips unknown groups, which no client sends: ours refuses them).
            if let Some(o) = ours_msg(bytes) {
                let p = by_prost_msg(bytes).expect("prost accepts what ours accepts");
                assert_eq!((&o.0, o.1, o.2, &o.3), (&p.0, p.1, p.2.unwrap_or(0), &p.3));
            }
            if let Ok(o) = PreKeySignalMessage::decode(bytes) {
                let p = PreKeySignalMessageProto::decode(&bytes[1..]).expect("prost accepts");
                assert_eq!(o.pre_key_id(), p.pre_key_id);
                assert_eq!(
                    Some(o.registration_id()),
                    Some(p.registration_id.unwrap_or(0))
                );
                assert_eq!(Some(o.signed_pre_key_id()), p.signed_pre_key_id);
                assert_eq!(o.base_key().serialize().to_vec(), p.base_key.unwrap());
                assert_eq!(
                    o.identity_key().serialize().to_vec(),
                    p.identity_key.unwrap()
                );
                assert_eq!(o.message().serialized(), p.message.unwrap().as_slice());
            }
        };
        let full = PreKeySignalMessage::decode(&pk).expect("decodes");
        assert_eq!(full.pre_key_id(), Some(4));
        assert_eq!(full.registration_id(), 77);
        for bytes in [&msg, &pk] {
            for n in 0..=bytes.len() {
                check(&bytes[..n]);
            }
            for i in 1..bytes.len() {
                for x in [0x00, 0x01, 0x07, 0x0a, 0x80, 0xff] {
                    let mut m = bytes.clone();
                    m[i] = x;
                    check(&m);
                }
            }
        }
    }
}
