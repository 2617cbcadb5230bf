//! A cheap, immutable UTF-8 string used for tags, attribute keys and values.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use std::sync::Arc;

/// Longest string stored inline (without a heap allocation).
pub(crate) const INLINE_CAP: usize = 22;

/// An immutable UTF-8 string that is cheap to create from the places node
/// strings come from:
///
/// - `&'static str` (tokens, literals in code): no allocation;
/// - short strings (up to 22 bytes: phone numbers, LIDs, message ids, device
///   numbers): stored inline, no allocation;
/// - longer strings: a shared `Arc<str>` (cloning is a reference-count
///   increment).
///
/// `Str` is 24 bytes, which keeps nodes small (a decoded list of thousands of
/// nodes is one contiguous allocation). `Str` dereferences to `str` and
/// compares, hashes and orders as its text. Payload bytes are not strings:
/// they are [`bytes::Bytes`] and are never copied by the decoder.
#[derive(Clone)]
pub struct Str(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Inline { len: u8, buf: [u8; INLINE_CAP] },
    Shared(Arc<str>),
}

impl Str {
    /// The empty string.
    pub const EMPTY: Str = Str(Repr::Static(""));

    /// A string from a `'static` literal, with no allocation.
    pub const fn from_static(s: &'static str) -> Self {
        Str(Repr::Static(s))
    }

    /// Copies `s` (inline when short).
    pub fn copy_from(s: &str) -> Self {
        Self::from_utf8_slice(s.as_bytes())
    }

    /// Copies a byte slice that is known to be UTF-8 (inline when short).
    fn from_utf8_slice(b: &[u8]) -> Self {
        if b.len() <= INLINE_CAP {
            let mut buf = [0u8; INLINE_CAP];
            buf[..b.len()].copy_from_slice(b);
            Str(Repr::Inline {
                len: b.len() as u8, // invariant: b.len() <= INLINE_CAP < 256
                buf,
            })
        } else {
            match std::str::from_utf8(b) {
                Ok(s) => Str(Repr::Shared(Arc::from(s))),
                // Invariant: callers pass UTF-8; the fallback only guards against misuse.
                Err(_) => Str(Repr::Shared(Arc::from(String::from_utf8_lossy(b).as_ref()))),
            }
        }
    }

    /// Builds a string from bytes that may or may not be UTF-8; invalid
    /// sequences are replaced with U+FFFD.
    pub fn from_utf8_lossy(bytes: &[u8]) -> Self {
        Self::from_slice_lossy(bytes)
    }

    /// Copies bytes that may not be UTF-8 (invalid sequences become U+FFFD).
    pub(crate) fn from_slice_lossy(b: &[u8]) -> Self {
        match std::str::from_utf8(b) {
            Ok(_) => Self::from_utf8_slice(b),
            Err(_) => Str::from(String::from_utf8_lossy(b).into_owned()),
        }
    }

    /// Copies ASCII bytes produced by the decoder's unpacking tables.
    /// Invariant: the callers only pass bytes from those tables (ASCII).
    pub(crate) fn from_ascii(b: &[u8]) -> Self {
        Self::from_utf8_slice(b)
    }

    /// The first `len` bytes of `text` as an inline string (decoder).
    /// Invariant: the callers pass ASCII from the unpacking tables and
    /// `len <= INLINE_CAP`; a longer `len` is clamped, never read past.
    #[inline]
    pub(crate) fn inline_ascii(text: &[u8; INLINE_CAP + 2], len: usize) -> Self {
        let mut buf = [0u8; INLINE_CAP];
        buf.copy_from_slice(&text[..INLINE_CAP]);
        Str(Repr::Inline {
            len: len.min(INLINE_CAP) as u8, // invariant: at most INLINE_CAP < 256
            buf,
        })
    }

    /// The decimal text of `v`, formatted on the stack: every 64-bit integer fits
    /// inline, so this allocates nothing.
    pub fn decimal(v: i128) -> Self {
        let mut buf = [0u8; 40];
        let mut at = buf.len();
        let mut rest = v.unsigned_abs();
        loop {
            at -= 1;
            // Invariant: `rest % 10` is a single digit.
            buf[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if v < 0 {
            at -= 1;
            buf[at] = b'-';
        }
        Self::from_ascii(&buf[at..])
    }

    /// The text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Static(s) => s.as_bytes(),
            Repr::Inline { len, buf } => &buf[..*len as usize],
            Repr::Shared(s) => s.as_bytes(),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            // Invariant: inline bytes were checked to be UTF-8 on construction,
            // so the fallback is never taken.
            Repr::Inline { len, buf } => std::str::from_utf8(&buf[..*len as usize]).unwrap_or(""),
            Repr::Shared(s) => s,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }
}

impl Default for Str {
    fn default() -> Self {
        Str::EMPTY
    }
}

impl Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Str {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for Str {
    fn from(s: &'static str) -> Self {
        Str::from_static(s)
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        if s.len() <= INLINE_CAP {
            Self::from_utf8_slice(s.as_bytes())
        } else {
            Str(Repr::Shared(Arc::from(s)))
        }
    }
}

impl From<&String> for Str {
    fn from(s: &String) -> Self {
        Str::copy_from(s)
    }
}

impl From<Box<str>> for Str {
    fn from(s: Box<str>) -> Self {
        Str::from(String::from(s))
    }
}

impl From<Str> for String {
    fn from(s: Str) -> Self {
        s.as_str().to_owned()
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Str {}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<Str> for str {
    fn eq(&self, other: &Str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<Str> for &str {
    fn eq(&self, other: &Str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for Str {
    fn eq(&self, other: &String) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for Str {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_matches_display_and_stays_inline() {
        for v in [
            0_i128,
            7,
            -7,
            10,
            1_764_000_000,
            i128::from(u64::MAX),
            i128::from(i64::MIN),
            i128::from(i64::MAX),
        ] {
            let s = Str::decimal(v);
            assert_eq!(s.as_str(), v.to_string());
            assert!(matches!(s.0, Repr::Inline { .. }), "{v} not inline");
        }
        // Beyond 64 bits the text still comes out right.
        assert_eq!(Str::decimal(i128::MIN).as_str(), i128::MIN.to_string());
    }

    #[test]
    fn representations_compare_by_text() {
        let a = Str::from_static("hello");
        let b = Str::from(String::from("hello"));
        let c = Str::from_utf8_lossy(b"hello");
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a, "hello");
        let long = "x".repeat(100);
        let d = Str::from(long.clone());
        let e = Str::from_utf8_lossy(long.as_bytes());
        assert_eq!(d, e);
        assert_eq!(d.as_str(), long);
        assert_eq!(d.len(), 100);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let s = Str::from_utf8_lossy(b"a\xffb");
        assert_eq!(s, "a\u{fffd}b");
        let s = Str::from_slice_lossy(b"\xc3");
        assert_eq!(s, "\u{fffd}");
    }

    #[test]
    fn inline_boundary() {
        let s38 = "y".repeat(INLINE_CAP);
        let s39 = "y".repeat(INLINE_CAP + 1);
        assert!(matches!(Str::copy_from(&s38).0, Repr::Inline { .. }));
        assert!(matches!(Str::copy_from(&s39).0, Repr::Shared(_)));
        assert_eq!(Str::copy_from(&s38).as_str(), s38);
        assert_eq!(Str::copy_from(&s39).as_str(), s39);
    }
}
