use rand_core::CryptoRngCore;

use crate::Error;

/// Appends WhatsApp's random padding: `n` bytes each equal to `n`, with `n` in `1..=16`.
pub fn pad_message(plaintext: &[u8], rng: &mut impl CryptoRngCore) -> Vec<u8> {
    let mut b = [0u8; 1];
    rng.fill_bytes(&mut b);
    pad_message_with(plaintext, (b[0] & 0x0F) + 1)
}

/// Appends `n` bytes of value `n` (`n` is clamped to `1..=16`).
pub fn pad_message_with(plaintext: &[u8], n: u8) -> Vec<u8> {
    let n = n.clamp(1, 16);
    let mut out = Vec::with_capacity(plaintext.len() + usize::from(n));
    out.extend_from_slice(plaintext);
    out.resize(plaintext.len() + usize::from(n), n);
    out
}

/// Strips the padding: the last byte `n` must be non-zero, no longer than the input, and
/// the last `n` bytes must all equal `n`.
///
/// # Errors
/// [`Error::BadPadding`].
pub fn unpad_message(padded: &[u8]) -> Result<&[u8], Error> {
    let &n = padded.last().ok_or_else(|| Error::BadPadding)?;
    let n = usize::from(n);
    if n == 0 || n > padded.len() {
        return Err(Error::BadPadding);
    }
    let (body, pad) = padded.split_at(padded.len() - n);
    if pad.iter().any(|&b| usize::from(b) != n) {
        return Err(Error::BadPadding);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn round_trip_and_lengths() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = [false; 17];
        for i in 0..400usize {
            let msg = vec![0xAB; i % 40];
            let padded = pad_message(&msg, &mut rng);
            let n = padded.len() - msg.len();
            assert!((1..=16).contains(&n));
            seen[n] = true;
            assert_eq!(unpad_message(&padded).unwrap(), &msg[..]);
        }
        assert!(seen[1..].iter().all(|&s| s), "every pad length occurs");
    }

    #[test]
    fn rejects_bad_padding() {
        assert!(matches!(unpad_message(&[]), Err(Error::BadPadding)));
        assert!(matches!(unpad_message(&[1, 2, 0]), Err(Error::BadPadding)));
        assert!(matches!(unpad_message(&[4, 4, 4]), Err(Error::BadPadding)));
        assert!(matches!(
            unpad_message(&[9, 3, 2, 3]),
            Err(Error::BadPadding)
        ));
        assert_eq!(unpad_message(&[9, 2, 2]).unwrap(), &[9]);
        assert_eq!(unpad_message(&[3, 3, 3]).unwrap(), &[] as &[u8]);
    }
}
