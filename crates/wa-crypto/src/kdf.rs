use std::sync::LazyLock;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::Error;

type HmacSha256 = Hmac<Sha256>;

/// RFC 5869 HKDF-SHA256. `salt: None` means the all-zero salt. Returns `len` bytes,
/// zeroized when dropped.
///
/// # Errors
/// [`Error::HkdfLength`] when `len` exceeds 255 * 32.
pub fn hkdf_sha256(
    ikm: &[u8],
    salt: Option<&[u8]>,
    info: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    hkdf_sha256_into(ikm, salt, info, &mut out)?;
    Ok(out)
}

/// HKDF-SHA256 writing into a caller-provided buffer (no allocation).
///
/// # Errors
/// [`Error::HkdfLength`] when `out` is longer than 255 * 32 bytes.
pub fn hkdf_sha256_into(
    ikm: &[u8],
    salt: Option<&[u8]>,
    info: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    let hkdf = match salt {
        // The all-zero salt's padded key blocks are hashed once per process, so the
        // extract step costs two compressions instead of four.
        None => {
            let prk = HmacSha256Key::zero_salt().mac(&[ikm]);
            Hkdf::<Sha256>::from_prk(&prk).map_err(|_| Error::HkdfLength(out.len()))?
        }
        Some(salt) => Hkdf::<Sha256>::new(Some(salt), ikm),
    };
    hkdf.expand(info, out)
        .map_err(|_| Error::HkdfLength(out.len()))
}

/// An HMAC-SHA256 key whose two padded key blocks are already hashed, for several
/// MACs under one key: each then costs the message's blocks plus two compressions,
/// instead of four more (the double ratchet derives a message seed and the next chain
/// key from one chain key).
#[derive(Clone)]
pub struct HmacSha256Key(HmacSha256);

impl HmacSha256Key {
    /// Prepares `key` (any length, as HMAC allows).
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so construction cannot fail.
        Self(<HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!()))
    }

    /// The HMAC key of HKDF's default salt: 32 zero bytes, prepared once.
    fn zero_salt() -> &'static Self {
        static ZERO: LazyLock<HmacSha256Key> = LazyLock::new(|| HmacSha256Key::new(&[0; 32]));
        &ZERO
    }

    /// HMAC-SHA256 over the concatenation of `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

/// HMAC-SHA256 of one message.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    hmac_sha256_parts(key, &[data])
}

/// HMAC-SHA256 over the concatenation of `parts`, without building it.
pub fn hmac_sha256_parts(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    HmacSha256Key::new(key).mac(parts)
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_rfc5869_case_1() {
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let okm = hkdf_sha256(&ikm, Some(&salt), &info, 42).unwrap();
        assert_eq!(
            hex::encode(&*okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn hkdf_rejects_overlong_output() {
        assert_eq!(
            hkdf_sha256(b"k", None, b"", 255 * 32 + 1).unwrap_err(),
            Error::HkdfLength(255 * 32 + 1)
        );
    }

    #[test]
    fn hmac_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            mac,
            hmac_sha256_parts(b"Jefe", &[b"what do ya ", b"want for nothing?"])
        );
    }

    #[test]
    fn hkdf_rfc5869_case_3_zero_salt() {
        // RFC 5869 A.3: no salt (HashLen zeros), no info.
        let okm = hkdf_sha256(&[0x0b; 22], None, b"", 42).unwrap();
        assert_eq!(
            hex::encode(&*okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
        // The prepared zero salt gives what an explicit zero salt gives, for other inputs.
        for len in [1usize, 32, 48, 80, 255] {
            let ikm: Vec<u8> = (0..len as u8).collect();
            assert_eq!(
                *hkdf_sha256(&ikm, None, b"WhisperMessageKeys", 80).unwrap(),
                *hkdf_sha256(&ikm, Some(&[0; 32]), b"WhisperMessageKeys", 80).unwrap()
            );
        }
    }

    #[test]
    fn a_prepared_key_macs_like_a_fresh_one() {
        let key = HmacSha256Key::new(b"Jefe");
        // Twice under one prepared key: the first MAC leaves no state behind.
        for _ in 0..2 {
            assert_eq!(
                hex::encode(key.mac(&[b"what do ya want ", b"for nothing?"])),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
            );
        }
        // RFC 4231 case 6: a key longer than a block is hashed first.
        let long_key = HmacSha256Key::new(&[0xaa; 131]);
        assert_eq!(
            hex::encode(long_key.mac(&[b"Test Using Larger Than Block-Size Key - Hash Key First"])),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
