//! PBKDF2 for pairing codes. Kept free of crate imports so that the tests' client can
//! include the same file.

use zeroize::Zeroizing;

/// PBKDF2-HMAC-SHA256 with a 32-byte output (one block), computing each round as two
/// SHA-256 compressions from the precomputed HMAC pad states. Same result as the
/// `pbkdf2` crate, but fast even in unoptimized test builds (the rounds run inside the
/// optimized `sha2` crate instead of generic code instantiated here).
#[allow(unreachable_pub, reason = "also compiled into the tests' client")]
pub fn pbkdf2_sha256_32(password: &[u8], salt: &[u8], rounds: u32) -> Zeroizing<[u8; 32]> {
    use hmac::{Hmac, Mac};
    use sha2::digest::generic_array::GenericArray;
    use sha2::{Digest, Sha256};

    const IV: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    let mut key = Zeroizing::new([0u8; 64]);
    if password.len() > 64 {
        key[..32].copy_from_slice(&Sha256::digest(password));
    } else {
        key[..password.len()].copy_from_slice(password);
    }
    let pad_state = |pad: u8| {
        let mut block = Zeroizing::new([0u8; 64]);
        for (b, k) in block.iter_mut().zip(key.iter()) {
            *b = k ^ pad;
        }
        let mut state = IV;
        sha2::compress256(&mut state, &[*GenericArray::from_slice(&block[..])]);
        state
    };
    let (inner, outer) = (pad_state(0x36), pad_state(0x5c));

    // U1 = HMAC(P, salt || INT(1)).
    // invariant: HMAC takes keys of any length, so construction cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(password) else {
        return Zeroizing::new([0u8; 32]);
    };
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let u1: [u8; 32] = mac.finalize().into_bytes().into();

    // One padded block holding a 32-byte message that follows a 64-byte pad block:
    // 0x80 after the message, bit length 768 at the end.
    let mut block = Zeroizing::new([0u8; 64]);
    block[32] = 0x80;
    block[62] = 0x03;
    let mut u = Zeroizing::new([0u32; 8]);
    let mut acc = Zeroizing::new([0u32; 8]);
    for (i, w) in u.iter_mut().enumerate() {
        *w = u32::from_be_bytes([u1[4 * i], u1[4 * i + 1], u1[4 * i + 2], u1[4 * i + 3]]);
    }
    *acc = *u;
    for _ in 1..rounds {
        for half in [inner, outer] {
            for (i, w) in u.iter().enumerate() {
                block[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
            }
            let mut state = half;
            sha2::compress256(&mut state, &[*GenericArray::from_slice(&block[..])]);
            *u = state;
        }
        for (a, w) in acc.iter_mut().zip(u.iter()) {
            *a ^= w;
        }
    }
    let mut out = Zeroizing::new([0u8; 32]);
    for (i, w) in acc.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
    }
    out
}
