//! Every message type in the schemas round-trips byte for byte through the generated
//! code, including fields the schema does not know, at every nesting level.
//!
//! Inputs are random but seeded: for each message type a wire encoding is built from the
//! descriptor (every field kind, nested messages, repeated and packed fields, oneofs,
//! enums) twice, once as is ("known") and once with unknown fields (random tag numbers of
//! every wire type, and known tag numbers with a wire type the schema does not allow)
//! appended to every message ("full"). prost-reflect checks that the known encoding is
//! canonical; the generated types must then reproduce both encodings exactly.

use std::collections::BTreeSet;

use prost::Message as _;
use prost_reflect::{Cardinality, DescriptorPool, DynamicMessage, Kind, MessageDescriptor};
use wa_proto::registry::{MESSAGE_NAMES, round_trip};

const SEEDS_PER_TYPE: u64 = 24;
const MAX_DEPTH: usize = 4;

fn pool() -> DescriptorPool {
    DescriptorPool::decode(wa_proto::FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

/// SplitMix64: small, seedable, good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// A value spread over small and large magnitudes.
    fn wide(&mut self) -> u64 {
        match self.below(4) {
            0 => self.below(128),
            1 => self.below(1 << 16),
            2 => self.below(1 << 35),
            _ => self.next(),
        }
    }
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(tag: u32, wire: u8, out: &mut Vec<u8>) {
    varint((u64::from(tag) << 3) | u64::from(wire), out);
}

fn len_delimited(tag: u32, body: &[u8], out: &mut Vec<u8>) {
    key(tag, 2, out);
    varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// Both encodings of one random message, built in parallel.
#[derive(Default)]
struct Encoded {
    known: Vec<u8>,
    full: Vec<u8>,
    /// The unknown fields appended at the top level of `full`.
    top_unknown: Vec<u8>,
}

struct Gen {
    rng: Rng,
    /// Nested messages still allowed in this instance (keeps wide types bounded).
    budget: usize,
}

impl Gen {
    fn wire_of(kind: &Kind) -> u8 {
        match kind {
            Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => 1,
            Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => 5,
            Kind::String | Kind::Bytes | Kind::Message(_) => 2,
            _ => 0,
        }
    }

    /// The payload of one scalar value (no key); `None` for messages.
    fn scalar(&mut self, kind: &Kind) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let r = &mut self.rng;
        match kind {
            Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => {
                out.extend_from_slice(&r.wide().to_le_bytes())
            }
            Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => {
                out.extend_from_slice(&(r.wide() as u32).to_le_bytes())
            }
            Kind::Int32 => varint(i64::from(r.wide() as i32) as u64, &mut out),
            Kind::Int64 | Kind::Uint64 => varint(r.wide(), &mut out),
            Kind::Uint32 => varint(u64::from(r.wide() as u32), &mut out),
            Kind::Sint32 => {
                let v = r.wide() as i32;
                varint(u64::from(((v << 1) ^ (v >> 31)) as u32), &mut out)
            }
            Kind::Sint64 => {
                let v = r.wide() as i64;
                varint(((v << 1) ^ (v >> 63)) as u64, &mut out)
            }
            Kind::Bool => varint(r.below(2), &mut out),
            Kind::Enum(e) => {
                let values: Vec<i32> = e.values().map(|v| v.number()).collect();
                let v = if values.is_empty() || r.chance(10) {
                    r.wide() as i32
                } else {
                    values[r.below(values.len() as u64) as usize]
                };
                varint(i64::from(v) as u64, &mut out);
            }
            Kind::String => {
                const PIECES: &[&str] = &["a", "Z", "0", " ", "é", "ß", "€", "😀", "\u{7f}", "\n"];
                let mut s = String::new();
                for _ in 0..r.below(12) {
                    s.push_str(PIECES[r.below(PIECES.len() as u64) as usize]);
                }
                varint(s.len() as u64, &mut out);
                out.extend_from_slice(s.as_bytes());
            }
            Kind::Bytes => {
                let n = r.below(20);
                varint(n, &mut out);
                for _ in 0..n {
                    out.push(r.next() as u8);
                }
            }
            Kind::Message(_) => return None,
        }
        Some(out)
    }

    /// Random unknown fields for `desc` (tags outside the schema, or known tags with a
    /// group wire type, which no field of these schemas has).
    fn unknown_fields(&mut self, desc: &MessageDescriptor, depth: usize) -> Vec<u8> {
        let known: BTreeSet<u32> = desc.fields().map(|f| f.number()).collect();
        let mut out = Vec::new();
        for _ in 0..self.rng.below(4) {
            if !known.is_empty() && self.rng.chance(20) {
                let k: Vec<u32> = known.iter().copied().collect();
                let tag = k[self.rng.below(k.len() as u64) as usize];
                self.group(tag, depth, &mut out);
                continue;
            }
            let tag = loop {
                let t = match self.rng.below(3) {
                    0 => 1 + self.rng.below(64) as u32,
                    1 => 1 + self.rng.below(1 << 14) as u32,
                    _ => 1 + self.rng.below((1 << 29) - 1) as u32,
                };
                if !known.contains(&t) {
                    break t;
                }
            };
            match self.rng.below(5) {
                0 => {
                    key(tag, 0, &mut out);
                    varint(self.rng.wide(), &mut out);
                }
                1 => {
                    key(tag, 1, &mut out);
                    out.extend_from_slice(&self.rng.next().to_le_bytes());
                }
                2 => {
                    key(tag, 5, &mut out);
                    out.extend_from_slice(&(self.rng.next() as u32).to_le_bytes());
                }
                3 => {
                    let body = self.scalar(&Kind::Bytes).unwrap_or_default();
                    key(tag, 2, &mut out);
                    out.extend_from_slice(&body);
                }
                _ => self.group(tag, depth, &mut out),
            }
        }
        out
    }

    /// A group field: start key, a few fields (nested groups included), end key.
    fn group(&mut self, tag: u32, depth: usize, out: &mut Vec<u8>) {
        key(tag, 3, out);
        if depth < MAX_DEPTH {
            for _ in 0..self.rng.below(3) {
                let t = 1 + self.rng.below(1000) as u32;
                if self.rng.chance(20) {
                    self.group(t, depth + 1, out);
                } else {
                    key(t, 0, out);
                    varint(self.rng.wide(), out);
                }
            }
        }
        key(tag, 4, out);
    }

    fn message(&mut self, desc: &MessageDescriptor, depth: usize) -> Encoded {
        let mut enc = Encoded::default();
        // At most one member of each oneof is set, or decoding would keep only the last.
        let mut chosen_oneof_members = BTreeSet::new();
        for oneof in desc.oneofs().filter(|o| !o.is_synthetic()) {
            let members: Vec<u32> = oneof.fields().map(|f| f.number()).collect();
            if self.rng.chance(60) {
                chosen_oneof_members.insert(members[self.rng.below(members.len() as u64) as usize]);
            }
        }
        let mut fields: Vec<_> = desc.fields().collect();
        fields.sort_by_key(|f| f.number());
        for field in fields {
            let in_oneof = field.containing_oneof().is_some_and(|o| !o.is_synthetic());
            let kind = field.kind();
            let is_message = matches!(kind, Kind::Message(_));
            if is_message && (depth >= MAX_DEPTH || self.budget == 0) {
                continue;
            }
            let count = if in_oneof {
                u64::from(chosen_oneof_members.contains(&field.number()))
            } else if field.cardinality() == Cardinality::Repeated {
                if self.rng.chance(50) {
                    1 + self.rng.below(3)
                } else {
                    0
                }
            } else {
                u64::from(self.rng.chance(if is_message { 35 } else { 55 }))
            };
            if count == 0 {
                continue;
            }
            let tag = field.number();
            if field.is_packed() {
                let mut body = Vec::new();
                for _ in 0..count {
                    body.extend(self.scalar(&kind).unwrap_or_default());
                }
                len_delimited(tag, &body, &mut enc.known);
                len_delimited(tag, &body, &mut enc.full);
                continue;
            }
            for _ in 0..count {
                if let Kind::Message(inner) = &kind {
                    if self.budget == 0 {
                        break;
                    }
                    self.budget -= 1;
                    let nested = self.message(inner, depth + 1);
                    len_delimited(tag, &nested.known, &mut enc.known);
                    len_delimited(tag, &nested.full, &mut enc.full);
                } else {
                    let value = self.scalar(&kind).unwrap_or_default();
                    for out in [&mut enc.known, &mut enc.full] {
                        key(tag, Self::wire_of(&kind), out);
                        out.extend_from_slice(&value);
                    }
                }
            }
        }
        let unknown = self.unknown_fields(desc, depth);
        enc.full.extend_from_slice(&unknown);
        enc.top_unknown = unknown;
        enc
    }
}

/// Number of non-empty `UnknownFields` in a `Debug` rendering of a generated message.
fn nonempty_unknown_fields(debug: &str) -> usize {
    debug.matches("UnknownFields(").count() - debug.matches("UnknownFields(0 bytes)").count()
}

#[test]
fn every_schema_message_type_is_generated() {
    let pool = pool();
    let in_schema: BTreeSet<String> = pool.all_messages().map(|m| m.full_name().into()).collect();
    let generated: BTreeSet<String> = MESSAGE_NAMES.iter().map(|s| s.to_string()).collect();
    assert_eq!(in_schema, generated);
    assert!(generated.contains("wa.e2e.Message"));
    assert!(
        generated.len() > 500,
        "only {} message types",
        generated.len()
    );
}

#[test]
fn every_message_type_round_trips_with_unknown_fields() {
    let pool = pool();
    let mut checked = 0usize;
    let mut with_nested_unknown = 0usize;
    for name in MESSAGE_NAMES {
        let desc = pool
            .get_message_by_name(name)
            .expect("descriptor for generated type");
        for seed in 0..SEEDS_PER_TYPE {
            let mut name_hash = 0xcbf2_9ce4_8422_2325u64;
            for b in name.bytes() {
                name_hash = (name_hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            let mut g = Gen {
                rng: Rng(name_hash ^ seed),
                budget: 40,
            };
            let enc = g.message(&desc, 0);
            let ctx = format!("{name} seed {seed}");

            // The known-only encoding is what a conforming encoder produces.
            let dynamic = DynamicMessage::decode(desc.clone(), enc.known.as_slice())
                .unwrap_or_else(|e| panic!("{ctx}: prost-reflect rejects input: {e}"));
            assert_eq!(
                dynamic.encode_to_vec(),
                enc.known,
                "{ctx}: input not canonical"
            );

            // Known fields only: identical bytes, nothing classified as unknown.
            let rt = round_trip(name, &enc.known)
                .expect("name is registered")
                .unwrap_or_else(|e| panic!("{ctx}: decode failed: {e}"));
            assert_eq!(rt.encoded, enc.known, "{ctx}: known fields changed");
            assert_eq!(
                nonempty_unknown_fields(&rt.debug),
                0,
                "{ctx}: known field kept as unknown"
            );

            // With unknown fields everywhere: identical bytes.
            let rt = round_trip(name, &enc.full)
                .expect("name is registered")
                .unwrap_or_else(|e| panic!("{ctx}: decode with unknown fields failed: {e}"));
            assert_eq!(rt.encoded, enc.full, "{ctx}: unknown fields not preserved");
            assert_eq!(
                rt.top_level_unknown, enc.top_unknown,
                "{ctx}: top-level unknown fields"
            );
            if nonempty_unknown_fields(&rt.debug) > 1 {
                with_nested_unknown += 1;
            }
            checked += 1;
        }
    }
    assert_eq!(checked, MESSAGE_NAMES.len() * SEEDS_PER_TYPE as usize);
    // The generator really did exercise unknown fields below the top level.
    assert!(
        with_nested_unknown > checked / 10,
        "{with_nested_unknown} of {checked}"
    );
}

#[test]
fn deeply_nested_message_is_preserved_through_boxed_recursion() {
    use wa_proto::e2e::{FutureProofMessage, Message};
    let mut inner = Message {
        conversation: Some("innermost".into()),
        ..Default::default()
    };
    inner.unknown_fields.push_raw(&[0xf8, 0x3f, 0x2a]); // field 1023, varint 42
    let mut msg = inner.clone();
    for _ in 0..20 {
        msg = Message {
            ephemeral_message: Some(Box::new(FutureProofMessage {
                message: Some(Box::new(msg)),
                ..Default::default()
            })),
            ..Default::default()
        };
    }
    let bytes = msg.encode_to_vec();
    let decoded = Message::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded, msg);
    assert_eq!(decoded.encode_to_vec(), bytes);
    let mut cur = &decoded;
    while let Some(next) = cur
        .ephemeral_message
        .as_ref()
        .and_then(|f| f.message.as_deref())
    {
        cur = next;
    }
    assert_eq!(cur.conversation(), "innermost");
    assert_eq!(cur.unknown_fields.as_bytes(), &[0xf8, 0x3f, 0x2a]);
}

#[test]
fn excessive_nesting_is_an_error_not_a_stack_overflow() {
    // 2000 levels of Message.ephemeralMessage(FutureProofMessage).message(Message).
    let mut bytes: Vec<u8> = Vec::new();
    for _ in 0..2000 {
        let mut fp = Vec::new();
        len_delimited(1, &bytes, &mut fp);
        let mut m = Vec::new();
        len_delimited(40, &fp, &mut m);
        bytes = m;
    }
    assert!(wa_proto::e2e::Message::decode(bytes.as_slice()).is_err());
}
