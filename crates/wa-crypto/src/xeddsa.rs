//! XEdDSA over Curve25519 keys, in the form Signal and WhatsApp use.
//!
//! Signing (for the clamped Montgomery private scalar `k`):
//! 1. `A = k·B` on the Edwards curve, encoded as 32 bytes whose top bit is the sign of x.
//! 2. `r = SHA-512(0xFE || 0xFF×31 || k || M || Z) mod ℓ`, with 64 random bytes `Z`.
//! 3. `R = r·B`, `h = SHA-512(R || A || M) mod ℓ`, `s = r + h·k mod ℓ`.
//! 4. The signature is `R || s`, with A's sign bit stored in the top bit of the last byte
//!    (always zero in a reduced `s`).
//!
//! Verifying (for the Montgomery public key `u`): map `u` to the Edwards point whose
//! y = (u − 1)/(u + 1) and whose sign is the signature's top bit, clear that bit, require a
//! canonical `s`, and check `s·B − h·A == R`.

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

use crate::keys::{PrivateKey, PublicKey, Signature};

pub(crate) fn sign(private: &PrivateKey, message: &[u8], random: &[u8; 64]) -> Signature {
    let mut k = Scalar::from_bytes_mod_order(*private.as_bytes());
    let a_point = &k * ED25519_BASEPOINT_TABLE;
    let a = a_point.compress().to_bytes();
    let sign_bit = a[31] & 0x80;

    let mut prefix = [0xFFu8; 32];
    prefix[0] = 0xFE;
    let mut r = Scalar::from_hash(
        Sha512::new()
            .chain_update(prefix)
            .chain_update(private.as_bytes())
            .chain_update(message)
            .chain_update(random),
    );
    let big_r = (&r * ED25519_BASEPOINT_TABLE).compress().to_bytes();
    let h = Scalar::from_hash(
        Sha512::new()
            .chain_update(big_r)
            .chain_update(a)
            .chain_update(message),
    );
    let s = r + h * k;
    r.zeroize();
    k.zeroize();

    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig[63] |= sign_bit;
    Signature(sig)
}

pub(crate) fn verify(public: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    let sig = signature.as_bytes();
    let sign_bit = sig[63] >> 7;
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&sig[32..]);
    s_bytes[31] &= 0x7F;
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
        return false;
    };
    let Some(key) = edwards_key(public.as_bytes(), sign_bit) else {
        return false;
    };
    let h = Scalar::from_hash(
        Sha512::new()
            .chain_update(&sig[..32])
            .chain_update(key.encoded)
            .chain_update(message),
    );
    let check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&h, &key.negated, &s);
    check.compress().as_bytes() == &sig[..32]
}

/// A verifying key in the form the check needs: `−A` and A's encoding.
#[derive(Clone, Copy)]
struct EdwardsKey {
    public: [u8; 32],
    sign_bit: u8,
    negated: EdwardsPoint,
    encoded: [u8; 32],
}

/// Keys kept per thread. Mapping a Montgomery key to its Edwards point and encoding it
/// takes three field exponentiations, more than half of a verification; a sender's
/// signing key checks every group message it sends, and an identity key every pre-key
/// bundle, so the same few keys come back again and again.
const KEY_SLOTS: usize = 64;

thread_local! {
    static KEYS: std::cell::RefCell<Vec<Option<EdwardsKey>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The Edwards form of `public` with `sign_bit`, from this thread's slots or computed
/// (and kept in its slot, replacing what was there). `None` for a key with no Edwards
/// point.
fn edwards_key(public: &[u8; 32], sign_bit: u8) -> Option<EdwardsKey> {
    let slot = (usize::from(public[0]) | usize::from(public[1]) << 8) % KEY_SLOTS;
    let cached = KEYS
        .try_with(|keys| {
            keys.borrow()
                .get(slot)
                .copied()
                .flatten()
                .filter(|k| k.public == *public && k.sign_bit == sign_bit)
        })
        .ok()
        .flatten();
    if cached.is_some() {
        return cached;
    }
    let a_point = MontgomeryPoint(*public).to_edwards(sign_bit)?;
    let key = EdwardsKey {
        public: *public,
        sign_bit,
        negated: -a_point,
        encoded: a_point.compress().to_bytes(),
    };
    let _ = KEYS.try_with(|keys| {
        let mut keys = keys.borrow_mut();
        if keys.is_empty() {
            keys.resize(KEY_SLOTS, None);
        }
        keys[slot] = Some(key);
    });
    Some(key)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use crate::KeyPair;

    #[test]
    fn sign_then_verify_many_keys() {
        let mut rng = StdRng::seed_from_u64(7);
        for i in 0..64u32 {
            let pair = KeyPair::generate(&mut rng);
            let msg = i.to_be_bytes();
            let sig = pair.sign(&msg, &mut rng);
            assert!(pair.public.verify(&msg, &sig), "key {i}");
            assert!(!pair.public.verify(b"other message", &sig));
        }
    }

    #[test]
    fn keys_kept_replaced_and_seen_again_verify_alike() {
        // More keys than slots, so slots are shared and keys replaced; every key is
        // checked again after, by which time many were replaced.
        let mut rng = StdRng::seed_from_u64(13);
        let pairs: Vec<_> = (0..super::KEY_SLOTS + 16)
            .map(|_| KeyPair::generate(&mut rng))
            .collect();
        let sigs: Vec<_> = pairs.iter().map(|p| p.sign(b"m", &mut rng)).collect();
        for _ in 0..2 {
            for (i, (pair, sig)) in pairs.iter().zip(&sigs).enumerate() {
                assert!(pair.public.verify(b"m", sig), "key {i}");
                // A kept key is not used for another key, nor for the other sign.
                let other = &pairs[(i + 1) % pairs.len()];
                assert!(!other.public.verify(b"m", sig), "key {i}");
                let mut flipped = *sig;
                flipped.0[63] ^= 0x80;
                assert!(!pair.public.verify(b"m", &flipped), "key {i}");
            }
        }
    }

    #[test]
    fn both_edwards_signs_occur_and_verify() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut seen = [false; 2];
        for _ in 0..64 {
            let pair = KeyPair::generate(&mut rng);
            let sig = pair.sign(b"m", &mut rng);
            seen[usize::from(sig.0[63] >> 7)] = true;
            assert!(pair.public.verify(b"m", &sig));
        }
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn tampering_fails() {
        let mut rng = StdRng::seed_from_u64(3);
        let pair = KeyPair::generate(&mut rng);
        let other = KeyPair::generate(&mut rng);
        let sig = pair.sign(b"payload", &mut rng);
        assert!(!other.public.verify(b"payload", &sig));
        for byte in 0..64 {
            for bit in [0x01u8, 0x80] {
                let mut bad = sig;
                bad.0[byte] ^= bit;
                assert!(
                    !pair.public.verify(b"payload", &bad),
                    "byte {byte} bit {bit:#x}"
                );
            }
        }
    }

    #[test]
    fn non_canonical_s_is_rejected() {
        let mut rng = StdRng::seed_from_u64(5);
        let pair = KeyPair::generate(&mut rng);
        let mut sig = pair.sign(b"x", &mut rng);
        // Add the group order to s: same value mod l, but not canonical.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let sign = sig.0[63] & 0x80;
        sig.0[63] &= 0x7f;
        let mut carry = 0u16;
        for (i, l) in L.iter().enumerate() {
            let v = u16::from(sig.0[32 + i]) + u16::from(*l) + carry;
            sig.0[32 + i] = v as u8;
            carry = v >> 8;
        }
        sig.0[63] |= sign;
        assert!(!pair.public.verify(b"x", &sig));
    }
}
