//! The decoder: bounds-checked, allocation-bounded, zero-copy for payloads.

use std::io::Read;

use bytes::Bytes;

use std::sync::Arc;

use crate::attrs::{AFTER_TEXT, Arena, Attrs, Entry, KEY_TEXT};
use crate::error::Error;
use crate::jid::{Jid, Server};
use crate::node::{Content, Node, Value};
use crate::str::{INLINE_CAP, Str};
use crate::token::{self, tag};

/// Limits applied while decoding untrusted input.
///
/// Whatever the limits, decoding never reads outside the input and never
/// allocates more than a constant factor of the input length (list and
/// attribute counts are checked against the bytes that remain before any
/// vector is sized); these limits bound the work further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeLimits {
    /// Maximum nesting depth of nodes (the root is depth 1). Default 64.
    pub max_depth: usize,
    /// Maximum number of nodes in one frame. Default 262 144.
    pub max_nodes: usize,
    /// Maximum size of a decompressed (zlib) frame body. Default 16 MiB, the
    /// largest frame the transport can carry.
    pub max_decompressed_len: usize,
}

impl DecodeLimits {
    /// The default limits.
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        max_depth: 64,
        max_nodes: 1 << 18,
        max_decompressed_len: 16 << 20,
    };

    /// Sets [`DecodeLimits::max_depth`].
    pub const fn with_max_depth(mut self, v: usize) -> Self {
        self.max_depth = v;
        self
    }

    /// Sets [`DecodeLimits::max_nodes`].
    pub const fn with_max_nodes(mut self, v: usize) -> Self {
        self.max_nodes = v;
        self
    }

    /// Sets [`DecodeLimits::max_decompressed_len`].
    pub const fn with_max_decompressed_len(mut self, v: usize) -> Self {
        self.max_decompressed_len = v;
        self
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Decodes a frame (flags byte, then the node, zlib-compressed when flags
/// bit `0x02` is set) with the default limits.
///
/// Payload bytes ([`Content::Bytes`]) and long strings of the result share
/// `frame`'s buffer (or the decompressed buffer) instead of being copied.
pub fn decode(frame: Bytes) -> Result<Node, Error> {
    decode_with_limits(frame, &DecodeLimits::DEFAULT)
}

/// Decodes a frame with explicit limits. Flag bits other than `0x02` are
/// ignored, as the reference clients do.
pub fn decode_with_limits(frame: Bytes, limits: &DecodeLimits) -> Result<Node, Error> {
    let flags = *frame.first().ok_or(Error::EmptyFrame)?;
    let body = if flags & 0x02 != 0 {
        Bytes::from(inflate(&frame[1..], limits.max_decompressed_len)?)
    } else {
        frame.slice(1..)
    };
    decode_node(body, limits)
}

/// Decodes one node with no flags byte in front; the node must span all of
/// `data`.
pub fn decode_node(data: Bytes, limits: &DecodeLimits) -> Result<Node, Error> {
    let mut d = Decoder {
        src: &data,
        buf: &data,
        pos: 0,
        limits,
        nodes: 0,
        arena: None,
        slots: Vec::new(),
        chunk: 0,
    };
    let node = d.node_with(1, |n| n).map_err(|e| *e)?;
    d.seal(true);
    if d.pos != d.buf.len() {
        return Err(Error::TrailingBytes {
            count: d.buf.len() - d.pos,
        });
    }
    Ok(node)
}

fn inflate(input: &[u8], max: usize) -> Result<Vec<u8>, Error> {
    let zerr = |e: std::io::Error| Error::Zlib {
        message: e.to_string(),
    };
    let mut z = flate2::bufread::ZlibDecoder::new(input);
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).min(max).min(1 << 20));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    (&mut z).take(limit).read_to_end(&mut out).map_err(zerr)?;
    if out.len() > max {
        return Err(Error::TooLarge {
            what: "decompressed frame",
            limit: max,
        });
    }
    if z.total_in() != input.len() as u64 {
        return Err(Error::Zlib {
            message: "data after the end of the zlib stream".into(),
        });
    }
    Ok(out)
}

/// Internal result: the error is boxed so that the hot path moves small values.
type DResult<T> = Result<T, Box<Error>>;

#[cold]
fn fail<T>(e: Error) -> DResult<T> {
    Err(Box::new(e))
}

/// Unpacks a packed string too long for the inline form (kept out of line:
/// its buffer would otherwise enlarge every recursive decoder frame).
#[inline(never)]
fn packed_long(input: &[u8], table: &[u8; 16], len: usize, at: usize) -> DResult<Str> {
    let mut text = [0u8; 2 * 127];
    for (pair, &b) in text.chunks_exact_mut(2).zip(input) {
        let hi = table[(b >> 4) as usize];
        let lo = table[(b & 0x0f) as usize];
        if hi == 0xff || lo == 0xff {
            return fail(Error::InvalidPacked { offset: at });
        }
        pair[0] = hi;
        pair[1] = lo;
    }
    Ok(Str::from_ascii(text.get(..len).unwrap_or(&[])))
}

/// Whether the encoder writes `s` as a token or a packed string (not raw).
fn canonical_text(s: &str) -> bool {
    !s.is_empty() && s.len() <= tag::PACKED_MAX && !s.as_bytes().contains(&0)
}

const NIBBLE_CHARS: [u8; 16] = *b"0123456789-.\xff\xff\xff\0";
const HEX_CHARS: [u8; 16] = *b"0123456789ABCDEF";

/// Largest arena chunk, in bytes. Chunks stay well below the sizes at which
/// allocators switch to separate mappings.
const MAX_CHUNK_BYTES: usize = 32 << 10;
const MAX_CHUNK_SLOTS: usize = MAX_CHUNK_BYTES / std::mem::size_of::<Entry>();
const MIN_CHUNK_SLOTS: usize = 16;

struct Decoder<'a> {
    src: &'a Bytes,
    buf: &'a [u8],
    pos: usize,
    limits: &'a DecodeLimits,
    nodes: usize,
    /// The arena chunk being filled, and its slots (set into it when full).
    arena: Option<Arc<Arena>>,
    slots: Vec<Entry>,
    /// Capacity of the last chunk, in slots.
    chunk: usize,
}

impl Decoder<'_> {
    #[inline]
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    fn u8(&mut self) -> DResult<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => fail(Error::Truncated {
                offset: self.pos,
                needed: 1,
            }),
        }
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> DResult<[u8; N]> {
        match self.buf.get(self.pos..self.pos + N) {
            Some(s) => {
                let mut a = [0u8; N];
                a.copy_from_slice(s);
                self.pos += N;
                Ok(a)
            }
            None => fail(Error::Truncated {
                offset: self.pos,
                needed: N - self.remaining(),
            }),
        }
    }

    #[inline]
    fn u16(&mut self) -> DResult<u16> {
        self.array::<2>().map(u16::from_be_bytes)
    }

    /// A length-prefixed byte run; returns its start. `len_at` is where the
    /// length prefix began (for the error).
    #[inline]
    fn take(&mut self, len: usize, len_at: usize) -> DResult<usize> {
        if len > self.remaining() {
            return fail(Error::LengthExceedsInput {
                offset: len_at,
                declared: len,
                remaining: self.remaining(),
            });
        }
        let start = self.pos;
        self.pos += len;
        Ok(start)
    }

    /// Reads the length after a BINARY_8/20/32 tag.
    #[inline]
    fn binary_len(&mut self, t: u8) -> DResult<usize> {
        Ok(match t {
            tag::BINARY_8 => self.u8()? as usize,
            tag::BINARY_20 => {
                let [a, b, c] = self.array::<3>()?;
                ((a as usize & 0x0f) << 16) | ((b as usize) << 8) | c as usize
            }
            _ => u32::from_be_bytes(self.array::<4>()?) as usize,
        })
    }

    /// Reads a list size for list tag `t`, or fails if `t` is not a list tag.
    fn list_size(&mut self, t: u8, at: usize) -> DResult<usize> {
        match t {
            tag::LIST_EMPTY => Ok(0),
            tag::LIST_8 => Ok(self.u8()? as usize),
            tag::LIST_16 => Ok(self.u16()? as usize),
            _ => fail(Error::InvalidToken { tag: t, offset: at }),
        }
    }

    /// Decodes a child node and appends it to `out` (the node is built in
    /// place instead of being returned through memory).
    #[inline(never)]
    fn child_into(&mut self, depth: usize, out: &mut Vec<Node>) -> DResult<()> {
        self.node_with(depth, |n| out.push(n))
    }

    /// Decodes a node and hands it to `finish`.
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn node_with<R>(&mut self, depth: usize, finish: impl FnOnce(Node) -> R) -> DResult<R> {
        if depth > self.limits.max_depth {
            return fail(Error::TooDeep {
                max: self.limits.max_depth,
            });
        }
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return fail(Error::TooLarge {
                what: "node count",
                limit: self.limits.max_nodes,
            });
        }
        let start = self.pos;
        let t = self.u8()?;
        let size = self.list_size(t, start)?;
        if size == 0 {
            return fail(Error::InvalidListSize {
                size,
                offset: start,
            });
        }
        let tag_at = self.pos;
        let t = self.u8()?;
        let tag = self.string(t, tag_at)?;
        if tag.is_empty() {
            return fail(Error::InvalidNode {
                reason: "empty tag",
                offset: tag_at,
            });
        }
        let n_attrs = (size - 1) / 2;
        // Each attribute takes at least two bytes.
        if n_attrs > self.remaining() / 2 {
            return fail(Error::InvalidListSize {
                size,
                offset: start,
            });
        }
        let attrs = if n_attrs == 0 {
            Attrs::new()
        } else {
            self.attrs(n_attrs)?
        };
        let content = if size % 2 == 0 {
            self.content(depth)?
        } else {
            Content::None
        };
        Ok(finish(Node {
            tag,
            attrs,
            content,
        }))
    }

    /// Sets the current chunk's slots into its arena; with `last`, first
    /// returns a large unused capacity.
    fn seal(&mut self, last: bool) {
        if let Some(arena) = self.arena.take() {
            let mut slots = std::mem::take(&mut self.slots);
            // Give back a large unused tail; a small one is not worth a
            // reallocation.
            if last && slots.capacity() - slots.len() > MIN_CHUNK_SLOTS {
                slots.shrink_to_fit();
            }
            // Invariant: each arena is set once, here, after it is taken.
            let _ = arena.set(slots);
        }
    }

    /// Reads `n` attributes (the caller checked that `n` fits the input)
    /// into the current arena chunk.
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn attrs(&mut self, n: usize) -> DResult<Attrs> {
        // A non-token key takes two slots.
        let need = 2 * n;
        if self.arena.is_none() || self.slots.capacity() - self.slots.len() < need {
            self.seal(false);
            // Chunks grow geometrically: a small stanza gets one small
            // chunk (trimmed to size at the end), a large list a few big ones.
            self.chunk = (self.chunk * 2).clamp(MIN_CHUNK_SLOTS, MAX_CHUNK_SLOTS);
            self.slots = Vec::with_capacity(need.max(self.chunk));
            self.arena = Some(Arc::new(Arena::new()));
        }
        let start = self.slots.len();
        for _ in 0..n {
            let at = self.pos;
            let t = self.u8()?;
            let key = match t {
                1..=235 => Ok(u16::from(t)),
                tag::DICTIONARY_0..=tag::DICTIONARY_3 => {
                    let i = self.u8()?;
                    Ok(256 + 256 * u16::from(t - tag::DICTIONARY_0) + u16::from(i))
                }
                _ => Err(self.string(t, at)?),
            };
            let at = self.pos;
            let t = self.u8()?;
            let value = self.value(t, at)?;
            match key {
                Ok(code) => self.slots.push(Entry { code, value }),
                Err(text) => {
                    self.slots.push(Entry {
                        code: KEY_TEXT,
                        value: Value::Str(text),
                    });
                    self.slots.push(Entry {
                        code: AFTER_TEXT,
                        value,
                    });
                }
            }
        }
        match &self.arena {
            Some(arena) => Ok(Attrs::shared(arena, start, self.slots.len() - start)),
            // Invariant: a chunk was started above.
            None => Ok(Attrs::new()),
        }
    }

    #[cfg_attr(not(debug_assertions), inline(always))]
    fn content(&mut self, depth: usize) -> DResult<Content> {
        let at = self.pos;
        let t = self.u8()?;
        match t {
            tag::LIST_EMPTY | tag::LIST_8 | tag::LIST_16 => {
                let n = self.list_size(t, at)?;
                // A node takes at least three bytes (list header, size, tag).
                if n > self.remaining() / 3 {
                    return fail(Error::InvalidListSize {
                        size: n,
                        offset: at,
                    });
                }
                let mut children = Vec::with_capacity(n);
                for _ in 0..n {
                    self.child_into(depth + 1, &mut children)?;
                }
                Ok(Content::Nodes(children))
            }
            tag::BINARY_8 | tag::BINARY_20 | tag::BINARY_32 => {
                let len = self.binary_len(t)?;
                let start = self.take(len, at)?;
                Ok(Content::Bytes(self.src.slice(start..start + len)))
            }
            _ => Ok(match self.value(t, at)? {
                // Text content is kept as text only when writing it again
                // gives a token or packed form; anything else (an empty or
                // over-long packed string, or one holding the pad nibble as
                // a NUL character) would come back as raw bytes, so it is
                // bytes already. This keeps decode -> encode -> decode stable.
                Value::Str(s) if !canonical_text(&s) => {
                    Content::Bytes(Bytes::copy_from_slice(s.as_bytes()))
                }
                Value::Str(s) => Content::Text(s),
                Value::Jid(j) => Content::Jid(Box::new(j)),
            }),
        }
    }

    /// An attribute value or non-binary content: a JID for the JID
    /// encodings, else a string.
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn value(&mut self, t: u8, at: usize) -> DResult<Value> {
        match t {
            tag::JID_PAIR => {
                let ut = self.u8()?;
                let user = self.string(ut, at + 1)?;
                let server = self.server(at)?;
                Ok(Value::Jid(Jid {
                    user,
                    server,
                    agent: 0,
                    device: 0,
                    integrator: 0,
                }))
            }
            tag::AD_JID => {
                let [domain, device] = self.array::<2>()?;
                let ut_at = self.pos;
                let ut = self.u8()?;
                let user = self.string(ut, ut_at)?;
                let (server, agent) = match domain {
                    0 => (Server::Pn, 0),
                    1 => (Server::Lid, 0),
                    128 => (Server::Hosted, 0),
                    129 => (Server::HostedLid, 0),
                    other => (Server::Pn, other),
                };
                Ok(Value::Jid(Jid {
                    user,
                    server,
                    agent,
                    device: device.into(),
                    integrator: 0,
                }))
            }
            tag::FB_JID => {
                let ut_at = self.pos;
                let ut = self.u8()?;
                let user = self.string(ut, ut_at)?;
                let device = self.u16()?;
                let server = self.server(at)?;
                if server != Server::Msgr {
                    return fail(Error::InvalidJidEncoding {
                        reason: "FB_JID server is not msgr",
                        offset: at,
                    });
                }
                Ok(Value::Jid(Jid {
                    user,
                    server,
                    agent: 0,
                    device,
                    integrator: 0,
                }))
            }
            tag::INTEROP_JID => {
                let ut_at = self.pos;
                let ut = self.u8()?;
                let user = self.string(ut, ut_at)?;
                let device = self.u16()?;
                let integrator = self.u16()?;
                let server = self.server(at)?;
                if server != Server::Interop {
                    return fail(Error::InvalidJidEncoding {
                        reason: "INTEROP_JID server is not interop",
                        offset: at,
                    });
                }
                Ok(Value::Jid(Jid {
                    user,
                    server,
                    agent: 0,
                    device,
                    integrator,
                }))
            }
            _ => self.string_as(t, at, Value::Str),
        }
    }

    fn server(&mut self, jid_at: usize) -> DResult<Server> {
        let at = self.pos;
        let t = self.u8()?;
        if let Some(server) = Server::from_single_token(t) {
            return Ok(server);
        }
        let s = self.string(t, at)?;
        match Server::from_name(s) {
            Some(server) => Ok(server),
            None => fail(Error::InvalidJidEncoding {
                reason: "empty server",
                offset: jid_at,
            }),
        }
    }

    /// A string in any non-JID form; `t` is its tag byte, read at `at`.
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn string(&mut self, t: u8, at: usize) -> DResult<Str> {
        self.string_as(t, at, |s| s)
    }

    /// [`Self::string`], wrapped by `wrap` where each form is built, so that
    /// the caller's value is written once instead of being moved between
    /// enum layouts.
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn string_as<T>(&mut self, t: u8, at: usize, wrap: impl FnOnce(Str) -> T) -> DResult<T> {
        match t {
            tag::LIST_EMPTY => Ok(wrap(Str::EMPTY)),
            tag::DICTIONARY_0..=tag::DICTIONARY_3 => {
                let i = self.u8()?;
                match token::double(t - tag::DICTIONARY_0, i) {
                    Some(s) => Ok(wrap(Str::from_static(s))),
                    None => fail(Error::InvalidToken { tag: t, offset: at }),
                }
            }
            tag::BINARY_8 | tag::BINARY_20 | tag::BINARY_32 => {
                let len = self.binary_len(t)?;
                let start = self.take(len, at)?;
                Ok(wrap(Str::from_slice_lossy(&self.buf[start..start + len])))
            }
            tag::NIBBLE_8 => self.packed(&NIBBLE_CHARS, at, wrap),
            tag::HEX_8 => self.packed(&HEX_CHARS, at, wrap),
            tag::JID_PAIR | tag::AD_JID | tag::FB_JID | tag::INTEROP_JID => {
                fail(Error::InvalidNode {
                    reason: "JID where a string is required",
                    offset: at,
                })
            }
            _ => match token::single(t) {
                Some(s) => Ok(wrap(Str::from_static(s))),
                None => fail(Error::InvalidToken { tag: t, offset: at }),
            },
        }
    }

    #[cfg_attr(not(debug_assertions), inline(always))]
    fn packed<T>(
        &mut self,
        table: &[u8; 16],
        at: usize,
        wrap: impl FnOnce(Str) -> T,
    ) -> DResult<T> {
        let head = self.u8()?;
        let n = (head & 0x7f) as usize;
        let odd = (head >> 7) as usize;
        if n == 0 && odd == 1 {
            return fail(Error::InvalidPacked { offset: at });
        }
        let start = self.take(n, at)?;
        let input = &self.buf[start..start + n];
        let len = 2 * n - odd;
        if len <= INLINE_CAP {
            // Short (phone numbers, ids, counters): unpack straight into the
            // inline form, with room for the pad nibble of an odd length.
            let mut text = [0u8; INLINE_CAP + 2];
            for (pair, &b) in text.chunks_exact_mut(2).zip(input) {
                let hi = table[(b >> 4) as usize];
                let lo = table[(b & 0x0f) as usize];
                if hi == 0xff || lo == 0xff {
                    return fail(Error::InvalidPacked { offset: at });
                }
                pair[0] = hi;
                pair[1] = lo;
            }
            return Ok(wrap(Str::inline_ascii(&text, len)));
        }
        packed_long(input, table, len, at).map(wrap)
    }
}
