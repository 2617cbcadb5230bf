//! Token lookup in both directions, over the generated tables in `tokens.rs`.

use crate::str::Str;
use crate::tokens::{BUCKETS, DISPLACEMENT, DOUBLE_BYTE, SINGLE_BYTE, SLOT_BITS, SLOTS};

/// Type tags of the binary format (bytes that are not single-byte tokens).
pub(crate) mod tag {
    pub(crate) const LIST_EMPTY: u8 = 0;
    pub(crate) const DICTIONARY_0: u8 = 236;
    pub(crate) const DICTIONARY_3: u8 = 239;
    pub(crate) const INTEROP_JID: u8 = 245;
    pub(crate) const FB_JID: u8 = 246;
    pub(crate) const AD_JID: u8 = 247;
    pub(crate) const LIST_8: u8 = 248;
    pub(crate) const LIST_16: u8 = 249;
    pub(crate) const JID_PAIR: u8 = 250;
    pub(crate) const HEX_8: u8 = 251;
    pub(crate) const BINARY_8: u8 = 252;
    pub(crate) const BINARY_20: u8 = 253;
    pub(crate) const BINARY_32: u8 = 254;
    pub(crate) const NIBBLE_8: u8 = 255;
    /// Longest string that may be nibble- or hex-packed.
    pub(crate) const PACKED_MAX: usize = 127;
}

/// A string's token form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// One byte (1..=235).
    Single(u8),
    /// A dictionary tag (236..=239) and an index byte.
    Double(u8, u8),
}

/// Length of the longest token; longer strings skip the lookup.
pub(crate) const MAX_TOKEN_LEN: usize = max_token_len();

const fn max_token_len() -> usize {
    let mut max = 0;
    let mut i = 0;
    while i < SLOTS.len() {
        if SLOTS[i].0.len() > max {
            max = SLOTS[i].0.len();
        }
        i += 1;
    }
    max
}

#[inline(always)]
fn load8(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn load4(s: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_le_bytes(w)
}

#[inline(always)]
fn mix(h: u64, w: u64) -> u64 {
    const MUL: u64 = 0xFF51_AFD7_ED55_8CCD;
    let h = (h ^ w).wrapping_mul(MUL);
    h ^ (h >> 32)
}

/// The hash the perfect-hash table was built with (see `tools/gen_tokens.py`):
/// word-at-a-time with overlapping tail loads.
#[inline]
fn token_hash(s: &[u8]) -> u64 {
    const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
    let n = s.len();
    let mut h = (n as u64).wrapping_mul(SEED);
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            h = mix(h, load8(s, i));
            i += 8;
        }
        if i < n {
            h = mix(h, load8(s, n - 8));
        }
    } else if n >= 4 {
        h = mix(
            h,
            u64::from(load4(s, 0)) | (u64::from(load4(s, n - 4)) << 32),
        );
    } else if n > 0 {
        h = mix(
            h,
            u64::from(s[0]) | (u64::from(s[n / 2]) << 8) | (u64::from(s[n - 1]) << 16),
        );
    }
    h
}

/// Byte equality without a library call for the short strings tokens are.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8..=16 => load8(a, 0) == load8(b, 0) && load8(a, n - 8) == load8(b, n - 8),
        4..=7 => load4(a, 0) == load4(b, 0) && load4(a, n - 4) == load4(b, n - 4),
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        _ => a == b,
    }
}

#[inline]
fn slot_of(h: u64, d: u16) -> usize {
    let mut x = (h as u32) ^ (d as u32).wrapping_mul(0x9E37_79B9);
    x = x.wrapping_mul(0x85EB_CA6B);
    x ^= x >> 15;
    x = x.wrapping_mul(0xC2B2_AE35);
    (x >> (32 - SLOT_BITS)) as usize
}

/// The token for `s`, if it is one.
#[inline]
pub(crate) fn lookup(s: &[u8]) -> Option<Token> {
    if s.is_empty() || s.len() > MAX_TOKEN_LEN {
        return None;
    }
    let h = token_hash(s);
    let bucket = (((h >> 32) * BUCKETS) >> 32) as usize;
    let (text, code) = SLOTS[slot_of(h, DISPLACEMENT[bucket])];
    if code == 0 || !same(text.as_bytes(), s) {
        return None;
    }
    Some(if code < 256 {
        Token::Single(code as u8)
    } else {
        Token::Double((code >> 8) as u8, code as u8)
    })
}

/// The single-byte token `b`, if `b` is in 1..=235.
#[inline]
pub(crate) fn single(b: u8) -> Option<&'static str> {
    match b {
        0 => None,
        _ => SINGLE_BYTE.get(b as usize).copied(),
    }
}

/// The double-byte token at (`dict` 0..=3, `index`).
#[inline]
pub(crate) fn double(dict: u8, index: u8) -> Option<&'static str> {
    DOUBLE_BYTE.get(dict as usize).map(|d| d[index as usize])
}

/// Number of token codes. A token's code is its byte for single-byte tokens
/// (1..=235) and `256 + 256 * dictionary + index` for double-byte tokens
/// (256..=1279); codes 0 and 236..=255 name no token.
pub(crate) const CODES: usize = 256 + 4 * 256;

/// Every token as a [`Str`], indexed by code (empty where no token), so that
/// an attribute key stored as a 2-byte code can be lent out as a `&Str`.
static CODE_STRS: [Str; CODES] = code_strs();

const fn code_strs() -> [Str; CODES] {
    let mut out = [const { Str::EMPTY }; CODES];
    let mut i = 1;
    while i < SINGLE_BYTE.len() {
        std::mem::forget(std::mem::replace(
            &mut out[i],
            Str::from_static(SINGLE_BYTE[i]),
        ));
        i += 1;
    }
    let mut d = 0;
    while d < DOUBLE_BYTE.len() {
        let mut j = 0;
        while j < 256 {
            std::mem::forget(std::mem::replace(
                &mut out[256 + 256 * d + j],
                Str::from_static(DOUBLE_BYTE[d][j]),
            ));
            j += 1;
        }
        d += 1;
    }
    out
}

/// The code of a token.
#[inline]
pub(crate) fn code(t: Token) -> u16 {
    match t {
        Token::Single(b) => u16::from(b),
        Token::Double(d, i) => 256 + 256 * u16::from(d - tag::DICTIONARY_0) + u16::from(i),
    }
}

/// The token with this code (see [`CODES`]), if any.
#[inline]
pub(crate) fn of_code(code: u16) -> Option<Token> {
    match code {
        1..=235 => Some(Token::Single(code as u8)),
        256..=1279 => Some(Token::Double(
            tag::DICTIONARY_0 + ((code - 256) >> 8) as u8,
            code as u8,
        )),
        _ => None,
    }
}

/// The text of the token with this code (the empty string for codes that
/// name no token).
#[inline]
pub(crate) fn code_str(code: u16) -> &'static Str {
    CODE_STRS.get(code as usize).unwrap_or(&CODE_STRS[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::DICT_VERSION;

    #[test]
    fn every_token_round_trips_through_the_perfect_hash() {
        assert_eq!(DICT_VERSION, 3);
        assert_eq!(SINGLE_BYTE.len(), 236);
        for (i, t) in SINGLE_BYTE.iter().enumerate().skip(1) {
            assert_eq!(lookup(t.as_bytes()), Some(Token::Single(i as u8)), "{t}");
            assert_eq!(single(i as u8), Some(*t));
        }
        for (d, dict) in DOUBLE_BYTE.iter().enumerate() {
            for (i, t) in dict.iter().enumerate() {
                let expect = Token::Double(tag::DICTIONARY_0 + d as u8, i as u8);
                assert_eq!(lookup(t.as_bytes()), Some(expect), "{t}");
                assert_eq!(double(d as u8, i as u8), Some(*t));
            }
        }
        let filled = SLOTS.iter().filter(|s| s.1 != 0).count();
        assert_eq!(filled, 235 + 4 * 256);
    }

    #[test]
    fn codes_name_every_token_once() {
        let mut seen = 0;
        for c in 0..=u16::MAX {
            match of_code(c) {
                Some(t) => {
                    seen += 1;
                    assert_eq!(code(t), c);
                    let text = code_str(c).as_str();
                    assert_eq!(lookup(text.as_bytes()), Some(t), "{c}: {text}");
                }
                None => assert_eq!(code_str(c).as_str(), "", "{c}"),
            }
        }
        assert_eq!(seen, 235 + 4 * 256);
        assert_eq!(code_str(3).as_str(), "s.whatsapp.net");
        assert_eq!(code_str(256).as_str(), "read-self");
    }

    #[test]
    fn known_positions_and_non_tokens() {
        assert_eq!(lookup(b"s.whatsapp.net"), Some(Token::Single(3)));
        assert_eq!(lookup(b"type"), Some(Token::Single(4)));
        assert_eq!(lookup(b"read-self"), Some(Token::Double(236, 0)));
        for s in [
            &b""[..],
            b"S.whatsapp.net",
            b"typ",
            b"types",
            b"zzz-not-a-token",
            b"\xff",
        ] {
            assert_eq!(lookup(s), None);
        }
        assert_eq!(single(0), None);
        assert_eq!(single(236), None);
        assert_eq!(double(4, 0), None);
    }
}
