//! The Noise symmetric state (h, ck, k, n) as WhatsApp uses it.
//!
//! Step by step, for `Noise_XX_25519_AESGCM_SHA256`:
//! - `h` and `ck` start as the 32-byte protocol name (28 ASCII bytes + 4 NUL), used as is.
//! - MixHash(data): `h = SHA-256(h || data)`.
//! - MixKey(ikm): `ck, k = HKDF-SHA256(salt = ck, ikm, info = "", 64)` split 32/32, `n = 0`.
//! - EncryptAndHash(p): `c = AES-256-GCM(k, nonce(n), aad = h, p)`, `n += 1`, MixHash(c).
//! - DecryptAndHash(c): the mirror image; h absorbs the ciphertext, not the plaintext.
//! - Split: `k1, k2 = HKDF-SHA256(salt = ck, ikm = "", info = "", 64)`; the initiator
//!   sends with k1 and receives with k2.
//!
//! The nonce is 8 zero bytes followed by the 4-byte big-endian counter, in the handshake
//! and in the transport alike.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// `Noise_XX_25519_AESGCM_SHA256` padded with four NUL bytes to exactly 32 bytes.
pub const NOISE_PROTOCOL_NAME: [u8; 32] = *b"Noise_XX_25519_AESGCM_SHA256\0\0\0\0";

/// The 12-byte AES-GCM nonce for a frame counter.
#[inline]
pub(crate) fn nonce(counter: u32) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut iv = [0u8; 12];
    iv[8..].copy_from_slice(&counter.to_be_bytes());
    Nonce::from(iv)
}

/// A fresh AES-256-GCM instance (one key schedule) for a 32-byte key.
pub(crate) fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

pub(crate) struct SymmetricState {
    h: [u8; 32],
    ck: Zeroizing<[u8; 32]>,
    /// Keyed with the protocol name until the first MixKey, as the reference clients do;
    /// the state machines never encrypt or decrypt before that.
    k: Aes256Gcm,
    n: u32,
}

impl SymmetricState {
    /// InitializeSymmetric with the 32-byte protocol name, then MixHash(prologue).
    pub(crate) fn new(prologue: &[u8]) -> Self {
        let mut s = Self {
            h: NOISE_PROTOCOL_NAME,
            ck: Zeroizing::new(NOISE_PROTOCOL_NAME),
            k: cipher(&NOISE_PROTOCOL_NAME),
            n: 0,
        };
        s.mix_hash(prologue);
        s
    }

    pub(crate) fn mix_hash(&mut self, data: &[u8]) {
        let mut d = Sha256::new();
        d.update(self.h);
        d.update(data);
        self.h = d.finalize().into();
    }

    pub(crate) fn mix_key(&mut self, ikm: &[u8]) {
        let mut out = Zeroizing::new([0u8; 64]);
        hkdf64(&self.ck, ikm, &mut out);
        self.ck.copy_from_slice(&out[..32]);
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&out[32..]);
        self.k = cipher(&k);
        self.n = 0;
    }

    /// `None` only when the plaintext is too long for AES-GCM, which the callers' inputs
    /// (keys, a certificate chain, a client payload below the frame limit) never are.
    pub(crate) fn encrypt_and_hash(&mut self, plaintext: &[u8]) -> Option<Vec<u8>> {
        let c = self
            .k
            .encrypt(
                &nonce(self.n),
                Payload {
                    msg: plaintext,
                    aad: &self.h,
                },
            )
            .ok()?;
        // At most two messages per key in XX, so the counter cannot wrap.
        self.n = self.n.wrapping_add(1);
        self.mix_hash(&c);
        Some(c)
    }

    /// `None` when authentication fails; the state must then be discarded.
    pub(crate) fn decrypt_and_hash(&mut self, ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let p = self
            .k
            .decrypt(
                &nonce(self.n),
                Payload {
                    msg: ciphertext,
                    aad: &self.h,
                },
            )
            .ok()?;
        self.n = self.n.wrapping_add(1);
        self.mix_hash(ciphertext);
        Some(Zeroizing::new(p))
    }

    /// The two transport keys: (initiator-to-responder, responder-to-initiator).
    pub(crate) fn split(&self) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
        let mut out = Zeroizing::new([0u8; 64]);
        hkdf64(&self.ck, &[], &mut out);
        let mut k1 = Zeroizing::new([0u8; 32]);
        let mut k2 = Zeroizing::new([0u8; 32]);
        k1.copy_from_slice(&out[..32]);
        k2.copy_from_slice(&out[32..]);
        (k1, k2)
    }

    #[cfg(test)]
    pub(crate) fn h(&self) -> &[u8; 32] {
        &self.h
    }

    #[cfg(test)]
    pub(crate) fn ck(&self) -> &[u8; 32] {
        &self.ck
    }
}

fn hkdf64(salt: &[u8; 32], ikm: &[u8], out: &mut [u8; 64]) {
    // 64 bytes is far below HKDF-SHA256's 255 * 32 limit, so this cannot fail; should it
    // ever, the output stays all-zero and every later decryption fails closed.
    let _ = wa_crypto::hkdf_sha256_into(ikm, Some(salt), &[], out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_eight_zero_bytes_then_big_endian_counter() {
        let n = nonce(0x0102_0304);
        assert_eq!(n.as_slice(), &[0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn mix_key_changes_ck_and_resets_counter() {
        let mut s = SymmetricState::new(b"prologue");
        let before = *s.ck();
        s.mix_key(&[7u8; 32]);
        assert_ne!(*s.ck(), before);
        let c1 = s.encrypt_and_hash(b"x").unwrap();
        s.mix_key(&[7u8; 32]);
        assert_eq!(s.n, 0);
        assert_ne!(c1.len(), 0);
    }

    #[test]
    fn decrypt_with_different_hash_fails() {
        let mut a = SymmetricState::new(b"p");
        let mut b = SymmetricState::new(b"p");
        a.mix_key(b"shared");
        b.mix_key(b"shared");
        let c = a.encrypt_and_hash(b"hello").unwrap();
        let mut b2 = SymmetricState::new(b"p");
        b2.mix_key(b"shared");
        b2.mix_hash(b"divergent");
        assert!(b2.decrypt_and_hash(&c).is_none());
        assert_eq!(&b.decrypt_and_hash(&c).unwrap()[..], b"hello");
        assert_eq!(a.h(), b.h());
    }
}
