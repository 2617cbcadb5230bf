use std::fmt;

use curve25519_dalek::montgomery::MontgomeryPoint;
use rand_core::CryptoRngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;

/// The type byte that prefixes a Curve25519 public key inside Signal structures.
pub const KEY_TYPE_DJB: u8 = 0x05;

/// A Curve25519 public key (the Montgomery u-coordinate, 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Wraps 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses a key given either as 32 raw bytes or as 33 bytes with the `0x05` prefix.
    ///
    /// # Errors
    /// [`Error::BadKeyLength`] or [`Error::BadKeyType`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        match bytes.len() {
            32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(bytes);
                Ok(Self(k))
            }
            33 if bytes[0] == KEY_TYPE_DJB => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&bytes[1..]);
                Ok(Self(k))
            }
            33 => Err(Error::BadKeyType(bytes[0])),
            n => Err(Error::BadKeyLength(n)),
        }
    }

    /// The 32 raw bytes, as sent on the wire outside Signal structures.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 33-byte form with the `0x05` type prefix, used inside Signal structures and
    /// wherever a key is signed.
    pub fn serialize(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[0] = KEY_TYPE_DJB;
        out[1..].copy_from_slice(&self.0);
        out
    }

    /// Verifies an XEdDSA signature over `message` made by this key's owner.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        crate::xeddsa::verify(self, message, signature)
    }

    /// Verifies an XEdDSA signature given as a byte slice; anything but 64 bytes fails.
    pub fn verify_slice(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature).is_ok_and(|s| self.verify(message, &s))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl From<[u8; 32]> for PublicKey {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl AsRef<[u8]> for PublicKey {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A Curve25519 private key: 32 bytes, clamped, zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey([u8; 32]);

impl PrivateKey {
    /// Takes 32 bytes and clamps them as X25519 does, so the stored scalar is the one every
    /// operation (DH and signing) uses.
    pub fn from_bytes(mut bytes: [u8; 32]) -> Self {
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        let key = Self(bytes);
        bytes.zeroize();
        key
    }

    /// Parses a 32-byte private key.
    ///
    /// # Errors
    /// [`Error::BadKeyLength`] when `bytes` is not 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::BadKeyLength(bytes.len()))?;
        Ok(Self::from_bytes(arr))
    }

    /// The clamped private scalar bytes. Handle with care: this is the secret.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(MontgomeryPoint::mul_base_clamped(self.0).to_bytes())
    }

    /// X25519 Diffie-Hellman with a peer's public key.
    pub fn dh(&self, peer: &PublicKey) -> SharedSecret {
        SharedSecret(MontgomeryPoint(peer.0).mul_clamped(self.0).to_bytes())
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

/// The output of a Diffie-Hellman exchange, zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret([u8; 32]);

impl SharedSecret {
    /// The 32 shared bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// A Curve25519 key pair.
#[derive(Clone)]
pub struct KeyPair {
    /// The public half.
    pub public: PublicKey,
    /// The private half.
    pub private: PrivateKey,
}

impl KeyPair {
    /// Generates a key pair from the given random source.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let pair = Self::from_private(PrivateKey::from_bytes(bytes));
        bytes.zeroize();
        pair
    }

    /// Builds the pair for a private key.
    pub fn from_private(private: PrivateKey) -> Self {
        Self {
            public: private.public_key(),
            private,
        }
    }

    /// Builds the pair from 32 private-key bytes (clamped on the way in).
    ///
    /// # Errors
    /// [`Error::BadKeyLength`] when `bytes` is not 32 bytes long.
    pub fn from_private_slice(bytes: &[u8]) -> Result<Self, Error> {
        Ok(Self::from_private(PrivateKey::from_slice(bytes)?))
    }

    /// X25519 Diffie-Hellman with a peer's public key.
    pub fn dh(&self, peer: &PublicKey) -> SharedSecret {
        self.private.dh(peer)
    }

    /// Signs `message` with XEdDSA; `rng` supplies the 64 random bytes mixed into the nonce.
    pub fn sign(&self, message: &[u8], rng: &mut impl CryptoRngCore) -> Signature {
        let mut random = [0u8; 64];
        rng.fill_bytes(&mut random);
        let sig = crate::xeddsa::sign(&self.private, message, &random);
        random.zeroize();
        sig
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A 64-byte XEdDSA signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// Parses a signature, which must be exactly 64 bytes.
    ///
    /// # Errors
    /// [`Error::BadSignatureLength`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; 64] = bytes
            .try_into()
            .map_err(|_| Error::BadSignatureLength(bytes.len()))?;
        Ok(Self(arr))
    }

    /// The 64 signature bytes.
    pub const fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

impl AsRef<[u8]> for Signature {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
