//! The encoder.

use std::io::Write;

use crate::Error;
use crate::attrs::Key;
use crate::jid::{Jid, Server};
use crate::node::{Content, Node, Value};
use crate::token::{self, Token, tag};

/// Encodes a node as a frame: the flags byte `0x00` followed by the node.
///
/// Encoding cannot fail. Values the format cannot represent are written in
/// their representable part, as the reference encoders do: only the first
/// 65 535 children (and 32 767 attributes) of a node, the first 4 GiB of a
/// payload, and the JID parts listed in the crate documentation. The frame
/// stays well-formed. Use [`try_encode`] to refuse such nodes instead.
pub fn encode(node: &Node) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + size_hint(node));
    out.push(0);
    encode_node_into(node, &mut out);
    out
}

/// Encodes a node as a frame like [`encode`], but refuses a node holding
/// something the format cannot represent instead of writing part of it.
///
/// # Errors
/// [`Error::Unencodable`] for a node with more than 65 535 children or more
/// attributes than its item list can count (32 767, one less with content),
/// a payload of 4 GiB or more, or a JID written as an AD JID (a user or LID
/// JID with a device or agent, any hosted JID) whose device is above 255.
pub fn try_encode(node: &Node) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(1 + size_hint(node));
    out.push(0);
    let mut e = Encoder {
        out: &mut out,
        unencodable: None,
    };
    e.node(node);
    match e.unencodable {
        Some(what) => Err(Error::Unencodable { what }),
        None => Ok(out),
    }
}

/// Appends the encoding of `node` (without a flags byte) to `out`, as
/// [`encode`] writes it.
pub fn encode_node_into(node: &Node, out: &mut Vec<u8>) {
    Encoder {
        out,
        unencodable: None,
    }
    .node(node);
}

/// Encodes a node as a compressed frame: flags byte `0x02` followed by the
/// zlib (RFC 1950) compression of the node.
pub fn encode_compressed(node: &Node) -> Vec<u8> {
    let mut plain = Vec::with_capacity(size_hint(node));
    encode_node_into(node, &mut plain);
    let mut z = flate2::write::ZlibEncoder::new(vec![2u8], flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = z.write_all(&plain);
    z.finish().unwrap_or_default()
}

/// A cheap upper estimate of the encoded size, used to size the output once.
fn size_hint(node: &Node) -> usize {
    let mut n = 3 + node.tag.len().min(8) + node.attrs.len() * 12;
    for (_, v) in node.attrs.iter() {
        if let Value::Str(s) = v
            && s.len() > 8
        {
            n += s.len();
        }
    }
    n + match &node.content {
        Content::None => 0,
        Content::Nodes(c) => 3 + c.iter().map(size_hint).sum::<usize>(),
        Content::Bytes(b) => 5 + b.len(),
        Content::Text(s) => 5 + s.len(),
        Content::Jid(j) => 8 + j.user.len(),
    }
}

/// Most items of a list (LIST_16).
const MAX_LIST: usize = u16::MAX as usize;
/// Longest payload (BINARY_32).
const MAX_PAYLOAD: usize = u32::MAX as usize;

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    /// The first thing met that the format cannot represent (its representable
    /// part was written).
    unencodable: Option<&'static str>,
}

impl Encoder<'_> {
    fn unencodable(&mut self, what: &'static str) {
        self.unencodable.get_or_insert(what);
    }

    fn node(&mut self, n: &Node) {
        let has_content = !matches!(n.content, Content::None);
        // The node's list holds the tag, a key and a value per attribute, and
        // the content: write only the attributes it can count.
        let max_attrs = (MAX_LIST - 1 - usize::from(has_content)) / 2;
        let attrs = n.attrs.len();
        if attrs > max_attrs {
            self.unencodable("more attributes than a node can count");
        }
        let attrs = attrs.min(max_attrs);
        self.list_start(1 + 2 * attrs + usize::from(has_content));
        self.string(n.tag.as_bytes());
        for (k, v) in n.attrs.raw_iter().take(attrs) {
            match k {
                Key::Code(c) => self.token_code(c),
                Key::Text(s) => self.string(s.as_bytes()),
            }
            self.value(v);
        }
        match &n.content {
            Content::None => {}
            Content::Nodes(children) => {
                if children.len() > MAX_LIST {
                    self.unencodable("more than 65535 children");
                }
                let children = &children[..children.len().min(MAX_LIST)];
                self.list_start(children.len());
                for c in children {
                    self.node(c);
                }
            }
            Content::Bytes(b) => self.raw(b),
            Content::Text(s) => self.string(s.as_bytes()),
            Content::Jid(j) => self.jid(j),
        }
    }

    /// Writes a key stored as a token code.
    #[inline]
    fn token_code(&mut self, code: u16) {
        match token::of_code(code) {
            Some(Token::Single(b)) => self.out.push(b),
            Some(Token::Double(d, i)) => self.out.extend_from_slice(&[d, i]),
            // Invariant: stored codes name tokens; an unknown code would be
            // written as the empty string's form.
            None => self.string(b""),
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Str(s) => self.string(s.as_bytes()),
            Value::Jid(j) => self.jid(j),
        }
    }

    fn list_start(&mut self, size: usize) {
        if size == 0 {
            self.out.push(tag::LIST_EMPTY);
        } else if size < 256 {
            self.out.extend_from_slice(&[tag::LIST_8, size as u8]);
        } else {
            // Callers write at most MAX_LIST items.
            let s = size.min(MAX_LIST) as u16;
            self.out.push(tag::LIST_16);
            self.out.extend_from_slice(&s.to_be_bytes());
        }
    }

    fn raw(&mut self, b: &[u8]) {
        if b.len() > MAX_PAYLOAD {
            self.unencodable("a payload of 4 GiB or more");
        }
        let b = &b[..b.len().min(MAX_PAYLOAD)];
        let len = b.len();
        if len < 256 {
            self.out.extend_from_slice(&[tag::BINARY_8, len as u8]);
        } else if len < 1 << 20 {
            self.out.extend_from_slice(&[
                tag::BINARY_20,
                (len >> 16) as u8 & 0x0f,
                (len >> 8) as u8,
                len as u8,
            ]);
        } else {
            // At most MAX_PAYLOAD (above).
            self.out.push(tag::BINARY_32);
            self.out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        self.out.extend_from_slice(b);
    }

    /// Writes a string in its shortest form: token, nibble-packed,
    /// hex-packed, or raw bytes (in that order of preference, as the
    /// reference encoders do). The empty string is written as raw bytes.
    fn string(&mut self, s: &[u8]) {
        match token::lookup(s) {
            Some(Token::Single(b)) => return self.out.push(b),
            Some(Token::Double(d, i)) => return self.out.extend_from_slice(&[d, i]),
            None => {}
        }
        if !s.is_empty() && s.len() <= tag::PACKED_MAX {
            let mut nibble = true;
            let mut hex = true;
            for &c in s {
                let digit = c.is_ascii_digit();
                nibble &= digit || c == b'-' || c == b'.';
                hex &= digit || (b'A'..=b'F').contains(&c);
                if !nibble && !hex {
                    break;
                }
            }
            if nibble {
                return self.packed(tag::NIBBLE_8, s, pack_nibble);
            }
            if hex {
                return self.packed(tag::HEX_8, s, pack_hex);
            }
        }
        self.raw(s);
    }

    fn packed(&mut self, kind: u8, s: &[u8], pack: fn(u8) -> u8) {
        let odd = s.len() % 2;
        let len = (s.len() / 2 + odd) as u8 | ((odd as u8) << 7);
        self.out.reserve(2 + s.len() / 2 + odd);
        self.out.push(kind);
        self.out.push(len);
        let mut pairs = s.chunks_exact(2);
        for p in &mut pairs {
            self.out.push((pack(p[0]) << 4) | pack(p[1]));
        }
        if let [last] = pairs.remainder() {
            self.out.push((pack(*last) << 4) | 0x0f);
        }
    }

    fn jid(&mut self, j: &Jid) {
        match j.server {
            Server::Msgr => {
                self.out.push(tag::FB_JID);
                self.string(j.user.as_bytes());
                self.out.extend_from_slice(&j.device.to_be_bytes());
                self.string(j.server.as_str().as_bytes());
            }
            Server::Interop => {
                self.out.push(tag::INTEROP_JID);
                self.string(j.user.as_bytes());
                self.out.extend_from_slice(&j.device.to_be_bytes());
                self.out.extend_from_slice(&j.integrator.to_be_bytes());
                self.string(j.server.as_str().as_bytes());
            }
            Server::Hosted | Server::HostedLid => self.ad_jid(j),
            Server::Pn | Server::Lid if j.device != 0 || j.agent != 0 => self.ad_jid(j),
            _ => {
                self.out.push(tag::JID_PAIR);
                if j.user.is_empty() {
                    self.out.push(tag::LIST_EMPTY);
                } else {
                    self.string(j.user.as_bytes());
                }
                self.string(j.server.as_str().as_bytes());
            }
        }
    }

    fn ad_jid(&mut self, j: &Jid) {
        // The AD encoding carries the device in one byte; device ids are
        // small (companions 1..n, hosted 99). Like the reference encoders,
        // `encode` keeps the low byte of a larger one.
        if j.device > u16::from(u8::MAX) {
            self.unencodable("a device above 255 in an AD JID");
        }
        self.out
            .extend_from_slice(&[tag::AD_JID, j.domain(), j.device as u8]);
        self.string(j.user.as_bytes());
    }
}

fn pack_nibble(c: u8) -> u8 {
    match c {
        b'-' => 10,
        b'.' => 11,
        _ => c.wrapping_sub(b'0') & 0x0f,
    }
}

fn pack_hex(c: u8) -> u8 {
    match c {
        b'A'..=b'F' => c - b'A' + 10,
        _ => c.wrapping_sub(b'0') & 0x0f,
    }
}
