//! A small protobuf reader and writer over byte slices, for the session record (read and
//! written on every message, so it avoids the intermediate allocations of generated code)
//! and for reading `msg` and `pkmsg` in place. The schemas are `SessionRecordProto`,
//! `SignalMessageProto` and `PreKeySignalMessageProto` in `proto.rs`; tests check the
//! record in both directions and the messages' reading against prost.

use crate::Error;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// `v` as a varint: the bytes (at most 10) and how many are used.
fn varint(mut v: u64) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    let mut n = 0;
    while v >= 0x80 {
        out[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    (out, n + 1)
}

pub(crate) fn put_varint(buf: &mut Vec<u8>, v: u64) {
    let (bytes, n) = varint(v);
    buf.extend_from_slice(&bytes[..n]);
}

fn put_key(buf: &mut Vec<u8>, tag: u32, wire: u8) {
    put_varint(buf, (u64::from(tag) << 3) | u64::from(wire));
}

/// A `uint32` field, omitted when zero (proto3 rules).
pub(crate) fn put_u32(buf: &mut Vec<u8>, tag: u32, v: u32) {
    if v != 0 {
        put_key(buf, tag, VARINT);
        put_varint(buf, u64::from(v));
    }
}

/// An explicitly present `uint32` field (`optional`), written even when zero.
pub(crate) fn put_u32_present(buf: &mut Vec<u8>, tag: u32, v: u32) {
    put_key(buf, tag, VARINT);
    put_varint(buf, u64::from(v));
}

/// A `bytes` field, omitted when empty (proto3 rules).
pub(crate) fn put_bytes(buf: &mut Vec<u8>, tag: u32, v: &[u8]) {
    if !v.is_empty() {
        put_key(buf, tag, LEN);
        put_varint(buf, v.len() as u64);
        buf.extend_from_slice(v);
    }
}

/// A nested message field: `body` writes the message, its length is patched in after.
pub(crate) fn put_message(buf: &mut Vec<u8>, tag: u32, body: impl FnOnce(&mut Vec<u8>)) {
    put_key(buf, tag, LEN);
    let at = buf.len();
    buf.push(0);
    body(buf);
    let len = buf.len() - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
    } else {
        // The length prefix, written on the stack.
        let (prefix, n) = varint(len as u64);
        buf.splice(at..at + 1, prefix[..n].iter().copied());
    }
}

/// One field's value.
pub(crate) enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed32/fixed64 value (skipped: none of our fields use them).
    Fixed,
}

impl<'a> Value<'a> {
    pub(crate) fn u32(&self, what: &'static str) -> Result<u32, Error> {
        match self {
            // uint32 fields truncate like generated code does.
            Value::Varint(v) => Ok(*v as u32),
            _ => Err(Error::InvalidRecord(what)),
        }
    }

    pub(crate) fn bytes(&self, what: &'static str) -> Result<&'a [u8], Error> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(Error::InvalidRecord(what)),
        }
    }
}

/// Iterates over the fields of one message.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    fn varint(&mut self) -> Result<u64, Error> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| Error::InvalidRecord(self.what))?;
            self.buf = rest;
            v |= u64::from(b & 0x7F) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Error::InvalidRecord(self.what))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], Error> {
        let n = usize::try_from(n).map_err(|_| Error::InvalidRecord(self.what))?;
        if n > self.buf.len() {
            return Err(Error::InvalidRecord(self.what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next field, or `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, Error> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| Error::InvalidRecord(self.what))?;
        if tag == 0 {
            return Err(Error::InvalidRecord(self.what));
        }
        let value = match (key & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            LEN => {
                let n = self.varint()?;
                Value::Bytes(self.take(n)?)
            }
            FIXED64 => {
                self.take(8)?;
                Value::Fixed
            }
            FIXED32 => {
                self.take(4)?;
                Value::Fixed
            }
            _ => return Err(Error::InvalidRecord(self.what)),
        };
        Ok(Some((tag, value)))
    }
}
