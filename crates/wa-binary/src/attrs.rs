//! [`Attrs`]: the attributes of a node, stored densely.
//!
//! A decoded node's attributes are a run of slots in an [`Arena`], a vector
//! shared (through an `Arc`) by many nodes. The decoder fills one arena chunk
//! with the attributes of many consecutive nodes, so a decoded tree needs one
//! allocation per chunk instead of one per node. A node built in code owns its
//! slots in a vector of its own (one allocation). An `Attrs` is 24 bytes.
//!
//! A slot is a 2-byte key code and a [`Value`]. A key that is a token is
//! stored as the token's code (see `token::CODES`) and lent out from a static
//! table of token strings. Any other key takes two slots: one with the code
//! [`KEY_TEXT`] holding the key text as `Value::Str`, then one with the code
//! [`AFTER_TEXT`] holding the value.
//!
//! Changing the attributes of a node whose arena is shared (a decoded node,
//! or its clone) first copies its slots into a vector of its own.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use crate::node::Value;
use crate::str::Str;
use crate::token;

/// Key code of a slot that holds the text of a non-token key (as
/// `Value::Str`); the attribute's value is in the next slot.
pub(crate) const KEY_TEXT: u16 = u16::MAX;
/// Key code of a slot holding the value of the non-token key in the slot
/// before it.
pub(crate) const AFTER_TEXT: u16 = u16::MAX - 1;

/// One slot: a key code and a value.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) code: u16,
    pub(crate) value: Value,
}

/// Slots shared by the attributes of one or more nodes. Filled once: the
/// decoder hands out handles while it is still appending, and sets the
/// vector when the chunk is full or the frame is decoded.
pub(crate) type Arena = OnceLock<Vec<Entry>>;

static EMPTY: Str = Str::EMPTY;

/// The attributes of a node, in order. Keys are unique when built through
/// [`Attrs::insert`]; a decoded node keeps duplicate keys as received and
/// lookups return the first.
///
/// A decoded node's attributes are slots of the decoder's shared arena, and its
/// clones share them; changing a shared set copies it first. A node built in
/// code owns its slots (one allocation), and a clone copies them.
#[derive(Clone, Default)]
pub struct Attrs {
    repr: Repr,
}

#[derive(Clone, Default)]
enum Repr {
    #[default]
    Empty,
    /// Slots of a node built in code.
    Own(Vec<Entry>),
    /// The slots `start..start + slots` of a decoder's arena.
    Shared {
        arena: Arc<Arena>,
        start: u32,
        slots: u32,
    },
}

/// Slots given to attributes built from none: `message`, `receipt` and `iq` stanzas
/// carry four to six, an unknown key takes two.
const FIRST_SLOTS: usize = 6;

/// Slot counts and offsets are kept as `u32`. Decoded arenas are bounded by
/// the frame length (at most 16 MiB plus the decompression limit), and a
/// built set of 2^32 slots would take hundreds of GiB, so the saturation is
/// never reached.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Attrs {
    /// No attributes.
    pub const fn new() -> Self {
        Attrs { repr: Repr::Empty }
    }

    /// Room for `n` attributes.
    pub fn with_capacity(n: usize) -> Self {
        if n == 0 {
            return Attrs::new();
        }
        Attrs {
            repr: Repr::Own(Vec::with_capacity(n)),
        }
    }

    /// The slots `start..start + slots` of a shared arena (decoder).
    pub(crate) fn shared(arena: &Arc<Arena>, start: usize, slots: usize) -> Self {
        Attrs {
            repr: Repr::Shared {
                arena: Arc::clone(arena),
                start: to_u32(start),
                slots: to_u32(slots),
            },
        }
    }

    /// This node's slots.
    #[inline]
    pub(crate) fn entries(&self) -> &[Entry] {
        match &self.repr {
            Repr::Empty => &[],
            Repr::Own(v) => v,
            Repr::Shared {
                arena,
                start,
                slots,
            } => {
                let Some(v) = arena.get() else {
                    return &[];
                };
                let start = *start as usize;
                v.get(start..start + *slots as usize).unwrap_or(&[])
            }
        }
    }

    /// Runs `f` on a vector of this node's own slots, copying them out of a
    /// shared arena first.
    fn with_vec<R>(&mut self, f: impl FnOnce(&mut Vec<Entry>) -> R) -> R {
        if let Repr::Own(v) = &mut self.repr {
            return f(v);
        }
        let own = self.entries();
        // Room for the attributes of most stanzas, so a node built one attribute at a
        // time allocates its slots once.
        let mut v = Vec::with_capacity((own.len() + 2).max(FIRST_SLOTS));
        v.extend_from_slice(own);
        let r = f(&mut v);
        self.repr = Repr::Own(v);
        r
    }

    /// The slot index of the value of `key`.
    fn find(&self, key: &[u8]) -> Option<usize> {
        let code = token::lookup(key).map(token::code);
        let e = self.entries();
        let mut i = 0;
        while let Some(slot) = e.get(i) {
            if slot.code == KEY_TEXT {
                if key_text(&slot.value).as_bytes() == key {
                    return Some(i + 1).filter(|&j| j < e.len());
                }
                i += 2;
            } else {
                if Some(slot.code) == code {
                    return Some(i);
                }
                i += 1;
            }
        }
        None
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let i = self.find(key.as_bytes())?;
        self.entries().get(i).map(|e| &e.value)
    }

    /// Sets `key` (replacing an existing value in place).
    pub fn insert(&mut self, key: impl Into<Str>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.find(key.as_bytes()) {
            Some(i) => self.with_vec(|v| {
                if let Some(slot) = v.get_mut(i) {
                    slot.value = value;
                }
            }),
            None => self.push(key, value),
        }
    }

    /// Appends without checking for an existing key.
    pub(crate) fn push(&mut self, key: Str, value: Value) {
        self.with_vec(|v| push_entry(v, key, value));
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.find(key.as_bytes())?;
        self.with_vec(|v| {
            if i >= v.len() {
                return None;
            }
            let slot = v.remove(i);
            if slot.code == AFTER_TEXT && i > 0 {
                v.remove(i - 1);
            }
            Some(slot.value)
        })
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.entries().iter().filter(|e| e.code != KEY_TEXT).count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// The (key, value) pairs in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Str, &Value)> {
        Iter {
            slots: self.entries().iter(),
            left: self.len(),
        }
    }

    /// The attributes as (key, value) with token keys as codes, for the
    /// encoder.
    pub(crate) fn raw_iter(&self) -> impl Iterator<Item = (Key<'_>, &Value)> {
        let mut slots = self.entries().iter();
        std::iter::from_fn(move || {
            let e = slots.next()?;
            if e.code == KEY_TEXT {
                let v = slots.next()?;
                Some((Key::Text(key_text(&e.value)), &v.value))
            } else {
                Some((Key::Code(e.code), &e.value))
            }
        })
    }
}

/// A key as stored: a token code, or text.
pub(crate) enum Key<'a> {
    Code(u16),
    Text(&'a Str),
}

/// Appends an attribute to a slot vector.
pub(crate) fn push_entry(v: &mut Vec<Entry>, key: Str, value: Value) {
    match token::lookup(key.as_bytes()) {
        Some(t) => v.push(Entry {
            code: token::code(t),
            value,
        }),
        None => {
            v.push(Entry {
                code: KEY_TEXT,
                value: Value::Str(key),
            });
            v.push(Entry {
                code: AFTER_TEXT,
                value,
            });
        }
    }
}

/// The text of a [`KEY_TEXT`] slot.
fn key_text(v: &Value) -> &Str {
    match v {
        Value::Str(s) => s,
        // Invariant: KEY_TEXT slots are only written with `Value::Str`.
        Value::Jid(_) => &EMPTY,
    }
}

struct Iter<'a> {
    slots: std::slice::Iter<'a, Entry>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        let e = self.slots.next()?;
        self.left = self.left.saturating_sub(1);
        if e.code == KEY_TEXT {
            let v = self.slots.next()?;
            Some((key_text(&e.value), &v.value))
        } else {
            Some((token::code_str(e.code), &e.value))
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl PartialEq for Attrs {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Attrs {}

impl Hash for Attrs {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for (k, v) in self.iter() {
            k.hash(state);
            v.hash(state);
        }
    }
}

impl fmt::Debug for Attrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<Str>, V: Into<Value>> FromIterator<(K, V)> for Attrs {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut a = Attrs::new();
        for (k, v) in iter {
            a.insert(k, v);
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jid::Jid;

    fn pairs(a: &Attrs) -> Vec<(String, String)> {
        a.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn token_and_text_keys_keep_their_order() {
        let mut a = Attrs::new();
        a.insert("id", "1");
        a.insert("not-a-token-key", "x");
        a.insert("to", Jid::pn("123"));
        a.insert("", "empty key");
        assert_eq!(a.len(), 4);
        assert_eq!(a.iter().len(), 4);
        assert_eq!(
            pairs(&a),
            [
                ("id", "1"),
                ("not-a-token-key", "x"),
                ("to", "123@s.whatsapp.net"),
                ("", "empty key"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(a.get("not-a-token-key").and_then(Value::as_str), Some("x"));
        assert_eq!(a.get("").and_then(Value::as_str), Some("empty key"));
        assert_eq!(a.get("to").and_then(Value::as_jid), Some(&Jid::pn("123")));
        assert_eq!(a.get("type"), None);
        assert_eq!(a.get("not-a-token"), None);
    }

    #[test]
    fn insert_replaces_and_remove_takes_both_slots() {
        let mut a: Attrs = [("id", "1"), ("k-x", "2"), ("type", "3")]
            .into_iter()
            .collect();
        a.insert("k-x", "20");
        a.insert("id", "10");
        assert_eq!(a.len(), 3);
        assert_eq!(a.remove("k-x").as_ref().and_then(Value::as_str), Some("20"));
        assert_eq!(a.remove("k-x"), None);
        assert_eq!(
            pairs(&a),
            [("id", "10"), ("type", "3")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(a.remove("id").as_ref().and_then(Value::as_str), Some("10"));
        assert_eq!(a.remove("type").as_ref().and_then(Value::as_str), Some("3"));
        assert!(a.is_empty());
        assert_eq!(a, Attrs::new());
    }

    #[test]
    fn shared_slots_are_copied_before_a_change() {
        let arena: Arc<Arena> = Arc::new(OnceLock::new());
        let mut v = Vec::new();
        push_entry(&mut v, Str::from("id"), Value::from("a"));
        push_entry(&mut v, Str::from("xx-1"), Value::from("b"));
        push_entry(&mut v, Str::from("id"), Value::from("c"));
        let first = Attrs::shared(&arena, 0, 3);
        let mut second = Attrs::shared(&arena, 3, 1);
        // Nothing is visible before the decoder sets the arena.
        assert!(first.is_empty());
        let _ = arena.set(v);
        assert_eq!(first.len(), 2);
        assert_eq!(second.get("id").and_then(Value::as_str), Some("c"));
        second.insert("id", "d");
        second.insert("type", "t");
        assert_eq!(second.len(), 2);
        assert_eq!(second.get("id").and_then(Value::as_str), Some("d"));
        assert_eq!(first.get("id").and_then(Value::as_str), Some("a"));
        assert_eq!(first.get("xx-1").and_then(Value::as_str), Some("b"));
        let mut third = first.clone();
        assert_eq!(third, first);
        third.remove("id");
        assert_ne!(third, first);
        assert_eq!(first.len(), 2);
        assert_eq!(third.len(), 1);
    }

    #[test]
    fn equality_is_by_text_whatever_the_storage() {
        // A token key that arrived as raw text equals the same key stored as
        // a code.
        let arena: Arc<Arena> = Arc::new(OnceLock::new());
        let v = vec![
            Entry {
                code: KEY_TEXT,
                value: Value::from("type"),
            },
            Entry {
                code: AFTER_TEXT,
                value: Value::from("x"),
            },
        ];
        let _ = arena.set(v);
        let raw = Attrs::shared(&arena, 0, 2);
        let built: Attrs = [("type", "x")].into_iter().collect();
        assert_eq!(raw, built);
        assert_eq!(raw.get("type").and_then(Value::as_str), Some("x"));
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        assert_eq!(state.hash_one(&raw), state.hash_one(&built));
        assert_eq!(format!("{raw:?}"), format!("{built:?}"));
    }

    #[test]
    fn sizes_stay_small() {
        use std::mem::size_of;
        assert_eq!(size_of::<Attrs>(), 24);
        assert_eq!(size_of::<Value>(), 56);
        assert_eq!(size_of::<Entry>(), 64);
        assert_eq!(size_of::<crate::node::Node>(), 88);
    }
}
