use prost::Message as _;
use rand_core::CryptoRngCore;
use wa_crypto::{KeyPair, PrivateKey, PublicKey, Signature};

use crate::Error;
use crate::proto::{PreKeyRecordProto, SignedPreKeyRecordProto};

const RECORD_FORMAT: u32 = 1;

/// Pre-key ids travel as 3 bytes, so they live in `1..=MAX_PRE_KEY_ID`.
pub const MAX_PRE_KEY_ID: u32 = 0x00FF_FFFF;

/// Generates a Curve25519 identity key pair.
pub fn generate_identity_key_pair(rng: &mut impl CryptoRngCore) -> KeyPair {
    KeyPair::generate(rng)
}

/// Generates a registration id in `1..=16380`, as libsignal does (14 random bits, never 0).
pub fn generate_registration_id(rng: &mut impl CryptoRngCore) -> u32 {
    loop {
        let id = rng.next_u32() & 0x3FFF;
        if (1..=16380).contains(&id) {
            return id;
        }
    }
}

/// Generates a sender-key id: 31 random bits.
pub fn generate_sender_key_id(rng: &mut impl CryptoRngCore) -> u32 {
    rng.next_u32() & 0x7FFF_FFFF
}

/// A one-time pre-key we issued.
#[derive(Clone, Debug)]
pub struct PreKeyRecord {
    /// Its id (`1..=MAX_PRE_KEY_ID`).
    pub id: u32,
    /// The key pair.
    pub key_pair: KeyPair,
}

impl PreKeyRecord {
    /// Serializes to this crate's versioned protobuf record.
    pub fn serialize(&self) -> Vec<u8> {
        PreKeyRecordProto {
            format_version: RECORD_FORMAT,
            id: self.id,
            public: self.key_pair.public.as_bytes().to_vec(),
            private: self.key_pair.private.as_bytes().to_vec(),
        }
        .encode_to_vec()
    }

    /// Parses a record made by [`PreKeyRecord::serialize`].
    ///
    /// # Errors
    /// [`Error::InvalidRecord`] on anything malformed.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        let p = PreKeyRecordProto::decode(bytes).map_err(|_| Error::InvalidRecord("pre-key"))?;
        check_format(p.format_version)?;
        Ok(Self {
            id: p.id,
            key_pair: record_key_pair(&p.public, &p.private)?,
        })
    }
}

/// A signed pre-key we issued.
#[derive(Clone, Debug)]
pub struct SignedPreKeyRecord {
    /// Its id.
    pub id: u32,
    /// The key pair.
    pub key_pair: KeyPair,
    /// XEdDSA signature by our identity key over the 33-byte (`0x05`-prefixed) public key.
    pub signature: Signature,
    /// Creation time (seconds since the Unix epoch; informational).
    pub timestamp: u64,
}

impl SignedPreKeyRecord {
    /// Serializes to this crate's versioned protobuf record.
    pub fn serialize(&self) -> Vec<u8> {
        SignedPreKeyRecordProto {
            format_version: RECORD_FORMAT,
            id: self.id,
            public: self.key_pair.public.as_bytes().to_vec(),
            private: self.key_pair.private.as_bytes().to_vec(),
            signature: self.signature.as_bytes().to_vec(),
            timestamp: self.timestamp,
        }
        .encode_to_vec()
    }

    /// Parses a record made by [`SignedPreKeyRecord::serialize`].
    ///
    /// # Errors
    /// [`Error::InvalidRecord`] on anything malformed.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        let p = SignedPreKeyRecordProto::decode(bytes)
            .map_err(|_| Error::InvalidRecord("signed pre-key"))?;
        check_format(p.format_version)?;
        Ok(Self {
            id: p.id,
            key_pair: record_key_pair(&p.public, &p.private)?,
            signature: Signature::from_slice(&p.signature)
                .map_err(|_| Error::InvalidRecord("signed pre-key signature"))?,
            timestamp: p.timestamp,
        })
    }
}

fn check_format(version: u32) -> Result<(), Error> {
    if version == RECORD_FORMAT {
        Ok(())
    } else {
        Err(Error::InvalidRecord("unknown record format version"))
    }
}

fn record_key_pair(public: &[u8], private: &[u8]) -> Result<KeyPair, Error> {
    let private =
        PrivateKey::from_slice(private).map_err(|_| Error::InvalidRecord("private key"))?;
    let public = PublicKey::from_slice(public).map_err(|_| Error::InvalidRecord("public key"))?;
    Ok(KeyPair { public, private })
}

/// Generates `count` one-time pre-keys with consecutive ids from `start`, wrapping within
/// `1..=MAX_PRE_KEY_ID`.
pub fn generate_pre_keys(
    start: u32,
    count: u32,
    rng: &mut impl CryptoRngCore,
) -> Vec<PreKeyRecord> {
    let start = if (1..=MAX_PRE_KEY_ID).contains(&start) {
        start
    } else {
        1
    };
    (0..count)
        .map(|i| PreKeyRecord {
            id: (start - 1 + i) % MAX_PRE_KEY_ID + 1,
            key_pair: KeyPair::generate(rng),
        })
        .collect()
}

/// Generates a signed pre-key: a fresh key pair whose `0x05`-prefixed public key is signed
/// by `identity`.
pub fn generate_signed_pre_key(
    identity: &KeyPair,
    id: u32,
    timestamp: u64,
    rng: &mut impl CryptoRngCore,
) -> SignedPreKeyRecord {
    let key_pair = KeyPair::generate(rng);
    let signature = identity.sign(&key_pair.public.serialize(), rng);
    SignedPreKeyRecord {
        id,
        key_pair,
        signature,
        timestamp,
    }
}

/// What a peer published for one device: what the initiator needs to start a session
/// (WhatsApp's `<user>` entry of a key-fetch result).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeyBundle {
    /// The peer's registration id.
    pub registration_id: u32,
    /// The peer's device id.
    pub device_id: u32,
    /// A one-time pre-key (id, public key), when the server had one left.
    pub pre_key: Option<(u32, PublicKey)>,
    /// The signed pre-key id.
    pub signed_pre_key_id: u32,
    /// The signed pre-key.
    pub signed_pre_key: PublicKey,
    /// The identity key's signature over the `0x05`-prefixed signed pre-key.
    pub signed_pre_key_signature: Signature,
    /// The peer's identity key.
    pub identity_key: PublicKey,
}

impl PreKeyBundle {
    /// Whether the signed pre-key's signature verifies under the identity key.
    pub fn verify_signature(&self) -> bool {
        self.identity_key.verify(
            &self.signed_pre_key.serialize(),
            &self.signed_pre_key_signature,
        )
    }
}
