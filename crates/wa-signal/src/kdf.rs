//! The key-derivation steps of the double ratchet and of sender keys, and AES-256-CBC.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use wa_crypto::{HmacSha256Key, SharedSecret, hkdf_sha256_into, hmac_sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;

const MESSAGE_KEY_SEED: u8 = 0x01;
const CHAIN_KEY_SEED: u8 = 0x02;

/// A symmetric chain key and the index of the next message key it yields.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ChainKey {
    pub(crate) key: [u8; 32],
    pub(crate) index: u32,
}

impl ChainKey {
    pub(crate) fn new(key: [u8; 32], index: u32) -> Self {
        Self { key, index }
    }

    /// The message-key seed for `self.index`: HMAC(ck, 0x01).
    pub(crate) fn message_seed(&self) -> Seed {
        Seed(hmac_sha256(&self.key, &[MESSAGE_KEY_SEED]))
    }

    /// Steps the chain: ck = HMAC(ck, 0x02), index + 1.
    pub(crate) fn advance(&mut self) {
        self.key = hmac_sha256(&self.key, &[CHAIN_KEY_SEED]);
        self.index = self.index.wrapping_add(1);
    }

    /// The message-key seed for `self.index` with that index, then the chain stepped:
    /// [`Self::message_seed`] and [`Self::advance`] under one prepared HMAC key.
    pub(crate) fn take_seed(&mut self) -> (u32, Seed) {
        let mac = HmacSha256Key::new(&self.key);
        let seed = Seed(mac.mac(&[&[MESSAGE_KEY_SEED]]));
        let index = self.index;
        self.key = mac.mac(&[&[CHAIN_KEY_SEED]]);
        self.index = self.index.wrapping_add(1);
        (index, seed)
    }
}

/// A 32-byte message-key seed (stored for skipped messages instead of the expanded keys).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Seed(pub(crate) [u8; 32]);

/// The keys of one 1:1 message: HKDF(seed, zero salt, "WhisperMessageKeys", 80).
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct MessageKeys {
    pub(crate) cipher_key: [u8; 32],
    pub(crate) mac_key: [u8; 32],
    pub(crate) iv: [u8; 16],
}

impl MessageKeys {
    pub(crate) fn derive(seed: &Seed) -> Self {
        let mut okm = [0u8; 80];
        // 80 bytes is far below HKDF's 255 * 32 limit, so this cannot fail; the zeroed
        // buffer would only make the MAC check fail if it somehow did.
        let _ = hkdf_sha256_into(&seed.0, None, b"WhisperMessageKeys", &mut okm);
        let mut keys = Self {
            cipher_key: [0; 32],
            mac_key: [0; 32],
            iv: [0; 16],
        };
        keys.cipher_key.copy_from_slice(&okm[..32]);
        keys.mac_key.copy_from_slice(&okm[32..64]);
        keys.iv.copy_from_slice(&okm[64..]);
        okm.zeroize();
        keys
    }
}

/// The keys of one sender-key message: HKDF(seed, zero salt, "WhisperGroup", 48) = iv || key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct GroupMessageKeys {
    pub(crate) iv: [u8; 16],
    pub(crate) cipher_key: [u8; 32],
}

impl GroupMessageKeys {
    pub(crate) fn derive(seed: &Seed) -> Self {
        let mut okm = [0u8; 48];
        // 48 bytes is below HKDF's limit: cannot fail.
        let _ = hkdf_sha256_into(&seed.0, None, b"WhisperGroup", &mut okm);
        let mut keys = Self {
            iv: [0; 16],
            cipher_key: [0; 32],
        };
        keys.iv.copy_from_slice(&okm[..16]);
        keys.cipher_key.copy_from_slice(&okm[16..]);
        okm.zeroize();
        keys
    }
}

/// A root key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct RootKey(pub(crate) [u8; 32]);

impl RootKey {
    /// KDF_RK: HKDF(salt = root key, ikm = DH output, "WhisperRatchet", 64) -> (root, chain).
    pub(crate) fn step(&self, dh: &SharedSecret) -> (RootKey, ChainKey) {
        let mut okm = [0u8; 64];
        // 64 bytes is below HKDF's limit: cannot fail.
        let _ = hkdf_sha256_into(dh.as_bytes(), Some(&self.0), b"WhisperRatchet", &mut okm);
        let out = split_64(&okm);
        okm.zeroize();
        out
    }
}

/// Splits 64 bytes of KDF output into a root key and a chain key at index 0.
pub(crate) fn split_64(okm: &[u8; 64]) -> (RootKey, ChainKey) {
    let mut root = [0u8; 32];
    let mut chain = [0u8; 32];
    root.copy_from_slice(&okm[..32]);
    chain.copy_from_slice(&okm[32..]);
    (RootKey(root), ChainKey::new(chain, 0))
}

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// AES-256-CBC with PKCS#7 padding.
pub(crate) fn cbc_encrypt(key: &[u8; 32], iv: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
    Aes256CbcEnc::new(key.into(), iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext)
}

/// AES-256-CBC decryption; a ciphertext that is empty, not block-aligned or badly padded
/// is an invalid message.
pub(crate) fn cbc_decrypt(
    key: &[u8; 32],
    iv: &[u8; 16],
    ciphertext: &[u8],
) -> Result<Vec<u8>, Error> {
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
        return Err(Error::InvalidMessage(
            "ciphertext is not a whole number of blocks",
        ));
    }
    Aes256CbcDec::new(key.into(), iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| Error::InvalidMessage("bad cipher padding"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_seed_is_the_seed_then_the_step() {
        let mut one = ChainKey::new([7; 32], 41);
        let mut other = ChainKey::new([7; 32], 41);
        for _ in 0..3 {
            let expected = (other.index, other.message_seed());
            other.advance();
            let (index, seed) = one.take_seed();
            assert_eq!((index, seed.0), (expected.0, expected.1.0));
            assert_eq!((one.key, one.index), (other.key, other.index));
        }
        assert_eq!(one.index, 44);
        // HMAC(ck, 0x01) and HMAC(ck, 0x02) of the all-zero chain key, computed apart.
        let (_, seed) = ChainKey::new([0; 32], 0).take_seed();
        assert_eq!(seed.0, hmac_sha256(&[0; 32], &[MESSAGE_KEY_SEED]));
        assert_ne!(seed.0, hmac_sha256(&[0; 32], &[CHAIN_KEY_SEED]));
    }
}
