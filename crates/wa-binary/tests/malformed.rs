//! Malformed input returns a typed error, never a panic. Offsets in errors
//! count from the first byte after the flags byte.

use bytes::Bytes;
use wa_binary::{DecodeLimits, Error, Jid, Node, decode, decode_with_limits, encode};

fn dec(hex: &str) -> Result<Node, Error> {
    decode(Bytes::from(hex::decode(hex).expect("hex")))
}

/// The message stanza vector from Baileys (a realistic, nested frame).
const STANZA: &str = "00f80a1308fb0a3eb0c5a7e0f1d2c3b4a511faff8615551234567f0304381aff051700000000f802f8026bf801f804110cf70001ff8615551234567ff801f8061d51450453fc28000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627f802e6fc14fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0efeeedec";

#[test]
fn valid_reference_frame_decodes() {
    let n = dec(STANZA).expect("valid");
    assert_eq!(n.tag(), "message");
}

#[test]
fn empty_frame() {
    assert_eq!(decode(Bytes::new()), Err(Error::EmptyFrame));
}

#[test]
fn truncated_input() {
    assert_eq!(
        dec("00"),
        Err(Error::Truncated {
            offset: 0,
            needed: 1
        })
    );
    assert_eq!(
        dec("00f8"),
        Err(Error::Truncated {
            offset: 1,
            needed: 1
        })
    );
    assert_eq!(
        dec("00f901"),
        Err(Error::Truncated {
            offset: 1,
            needed: 1
        })
    );
    // double-byte token without its index byte
    assert_eq!(
        dec("00f801ec"),
        Err(Error::Truncated {
            offset: 3,
            needed: 1
        })
    );
    // AD_JID without its device byte
    assert_eq!(
        dec("00f8031311f700"),
        Err(Error::Truncated {
            offset: 5,
            needed: 1
        })
    );
    // FB_JID with a one-byte device
    assert_eq!(
        dec("00f8031311f6030a"),
        Err(Error::Truncated {
            offset: 6,
            needed: 1
        })
    );
}

#[test]
fn every_prefix_of_a_valid_frame_is_an_error() {
    let full = hex::decode(STANZA).expect("hex");
    for cut in 0..full.len() {
        let r = decode(Bytes::copy_from_slice(&full[..cut]));
        assert!(
            matches!(
                r,
                Err(Error::EmptyFrame
                    | Error::Truncated { .. }
                    | Error::LengthExceedsInput { .. }
                    | Error::InvalidListSize { .. }
                    | Error::InvalidPacked { .. })
            ),
            "cut at {cut}: {r:?}"
        );
    }
}

#[test]
fn wrong_list_sizes() {
    // a node with a zero-sized list
    assert_eq!(
        dec("00f800"),
        Err(Error::InvalidListSize { size: 0, offset: 0 })
    );
    assert_eq!(
        dec("0000"),
        Err(Error::InvalidListSize { size: 0, offset: 0 })
    );
    // claims 2 attributes (size 5) with 1 byte left
    assert_eq!(
        dec("00f8051908"),
        Err(Error::InvalidListSize { size: 5, offset: 0 })
    );
    // children list of 200 with 2 bytes left
    assert_eq!(
        dec("00f8021df8c8f801"),
        Err(Error::InvalidListSize {
            size: 200,
            offset: 3
        })
    );
    // LIST_16 of 65535 children, nearly no input: rejected before allocating
    assert_eq!(
        dec("00f8021df9ffff"),
        Err(Error::InvalidListSize {
            size: 65535,
            offset: 3
        })
    );
    // the node header is not a list
    assert_eq!(
        dec("0019"),
        Err(Error::InvalidToken {
            tag: 0x19,
            offset: 0
        })
    );
    // a list where a string is required (tag position)
    assert_eq!(
        dec("00f801f801"),
        Err(Error::InvalidToken {
            tag: 0xf8,
            offset: 2
        })
    );
}

#[test]
fn bad_tokens() {
    for t in 240u8..=244 {
        let h = format!("00f801{t:02x}");
        assert_eq!(
            dec(&h),
            Err(Error::InvalidToken { tag: t, offset: 2 }),
            "{t}"
        );
    }
    // an unassigned byte as an attribute value
    assert_eq!(
        dec("00f8031908f2"),
        Err(Error::InvalidToken {
            tag: 0xf2,
            offset: 4
        })
    );
    // empty tag
    assert_eq!(
        dec("00f80100"),
        Err(Error::InvalidNode {
            reason: "empty tag",
            offset: 2
        })
    );
    assert_eq!(
        dec("00f801fc00"),
        Err(Error::InvalidNode {
            reason: "empty tag",
            offset: 2
        })
    );
    // a JID as a tag or an attribute key
    assert!(matches!(
        dec("00f801fa0003"),
        Err(Error::InvalidNode { offset: 2, .. })
    ));
    assert!(matches!(
        dec("00f80319fa0003fc00"),
        Err(Error::InvalidNode { offset: 3, .. })
    ));
}

#[test]
fn bad_packed_strings() {
    // nibble 0xc is not a nibble digit
    assert_eq!(
        dec("00f8031908ff01c1"),
        Err(Error::InvalidPacked { offset: 4 })
    );
    // odd flag with zero bytes
    assert_eq!(
        dec("00f8031908ff80"),
        Err(Error::InvalidPacked { offset: 4 })
    );
    // packed length beyond the input
    assert_eq!(
        dec("00f8031908ff0512"),
        Err(Error::LengthExceedsInput {
            offset: 4,
            declared: 5,
            remaining: 1
        })
    );
}

#[test]
fn bad_jid_encodings() {
    // JID_PAIR with an empty server
    assert!(matches!(
        dec("00f8031311fa0300"),
        Err(Error::InvalidJidEncoding { offset: 4, .. })
    ));
    // FB_JID whose server is not msgr
    assert!(matches!(
        dec("00f8031311f603000103"),
        Err(Error::InvalidJidEncoding { offset: 4, .. })
    ));
    // INTEROP_JID whose server is not interop
    assert!(matches!(
        dec("00f8031311f5030001000203"),
        Err(Error::InvalidJidEncoding { offset: 4, .. })
    ));
}

#[test]
fn oversized_lengths() {
    assert_eq!(
        dec("00f8021dfeffffffff00"),
        Err(Error::LengthExceedsInput {
            offset: 3,
            declared: 0xffff_ffff,
            remaining: 1
        })
    );
    assert_eq!(
        dec("00f8021dfd0fffff"),
        Err(Error::LengthExceedsInput {
            offset: 3,
            declared: 0xfffff,
            remaining: 0
        })
    );
    assert_eq!(
        dec("00f8021dfc05aabb"),
        Err(Error::LengthExceedsInput {
            offset: 3,
            declared: 5,
            remaining: 2
        })
    );
}

fn nested(depth: usize) -> Node {
    let mut n = Node::new("item");
    for _ in 1..depth {
        n = Node::builder("item").children([n]).build();
    }
    n
}

#[test]
fn deep_nesting() {
    let ok = Bytes::from(encode(&nested(64)));
    assert!(decode(ok.clone()).is_ok());
    assert_eq!(
        decode(Bytes::from(encode(&nested(65)))),
        Err(Error::TooDeep { max: 64 })
    );
    let strict = DecodeLimits::DEFAULT.with_max_depth(3);
    assert_eq!(
        decode_with_limits(ok, &strict),
        Err(Error::TooDeep { max: 3 })
    );
    // Far deeper than any stack could take: still a typed error.
    let mut deep = vec![0u8];
    for _ in 0..100_000 {
        deep.extend_from_slice(&[0xf8, 0x02, 0x19, 0xf8, 0x01]);
    }
    deep.extend_from_slice(&[0xf8, 0x01, 0x19]);
    assert_eq!(decode(Bytes::from(deep)), Err(Error::TooDeep { max: 64 }));
}

#[test]
fn too_many_nodes() {
    let wide = Node::builder("list")
        .children((0..100).map(|_| Node::new("item")))
        .build();
    let frame = Bytes::from(encode(&wide));
    assert!(decode(frame.clone()).is_ok());
    let strict = DecodeLimits::DEFAULT.with_max_nodes(100);
    assert_eq!(
        decode_with_limits(frame, &strict),
        Err(Error::TooLarge {
            what: "node count",
            limit: 100
        })
    );
}

#[test]
fn garbage_after_the_node() {
    assert_eq!(dec("00f8011900"), Err(Error::TrailingBytes { count: 1 }));
    assert_eq!(
        dec(&format!("{STANZA}ffff")),
        Err(Error::TrailingBytes { count: 2 })
    );
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(vec![2u8], flate2::Compression::default());
    z.write_all(data).expect("vec write");
    z.finish().expect("vec write")
}

#[test]
fn bad_zlib() {
    // not zlib at all
    assert!(matches!(dec("02000102"), Err(Error::Zlib { .. })));
    let good = zlib(&hex::decode(&STANZA[2..]).expect("hex"));
    assert!(decode(Bytes::from(good.clone())).is_ok());
    // truncated stream
    let cut = Bytes::copy_from_slice(&good[..good.len() - 6]);
    assert!(matches!(decode(cut), Err(Error::Zlib { .. })));
    // data after the end of the stream
    let mut extra = good.clone();
    extra.push(0);
    assert!(matches!(
        decode(Bytes::from(extra)),
        Err(Error::Zlib { .. })
    ));
    // corrupted checksum
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(decode(Bytes::from(bad)), Err(Error::Zlib { .. })));
    // a valid stream whose content is not a node
    assert!(matches!(
        decode(Bytes::from(zlib(b"\xf0"))),
        Err(Error::InvalidToken { .. })
    ));
}

#[test]
fn decompression_is_capped() {
    // 1 MiB of zeros compresses to about 1 KiB.
    let bomb = zlib(&vec![0u8; 1 << 20]);
    assert!(bomb.len() < 4096);
    let strict = DecodeLimits::DEFAULT.with_max_decompressed_len(64 << 10);
    assert_eq!(
        decode_with_limits(Bytes::from(bomb), &strict),
        Err(Error::TooLarge {
            what: "decompressed frame",
            limit: 64 << 10
        })
    );
}

#[test]
fn random_corruption_never_panics() {
    // Deterministic xorshift; flips bytes of a valid frame.
    let full = hex::decode(STANZA).expect("hex");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..20_000 {
        let mut f = full.clone();
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = 1 + (x as usize) % (f.len() - 1);
            f[i] = (x >> 32) as u8;
        }
        if let Ok(n) = decode(Bytes::from(f)) {
            assert_eq!(decode(Bytes::from(encode(&n))).expect("re-decode"), n);
        }
    }
}

#[test]
fn attribute_and_child_errors() {
    let n = Node::builder("iq")
        .attr("id", "abc")
        .attr("from", Jid::pn("1"))
        .attr("t", "-5")
        .children([Node::new("ping")])
        .build();
    assert_eq!(
        n.attr::<&str>("missing"),
        Err(Error::MissingAttr {
            tag: "iq".into(),
            key: "missing".into()
        })
    );
    assert_eq!(
        n.attr::<u64>("id"),
        Err(Error::InvalidAttr {
            tag: "iq".into(),
            key: "id".into(),
            value: "abc".into(),
            expected: "u64"
        })
    );
    assert_eq!(n.attr::<i64>("t"), Ok(-5));
    assert!(matches!(n.attr::<u32>("t"), Err(Error::InvalidAttr { .. })));
    assert!(matches!(
        n.attr::<Jid>("id"),
        Err(Error::InvalidAttr {
            expected: "JID",
            ..
        })
    ));
    assert_eq!(n.attr::<String>("from"), Ok("1@s.whatsapp.net".to_owned()));
    assert_eq!(n.attr_opt::<u64>("missing"), Ok(None));
    assert!(n.attr_opt::<u64>("id").is_err());
    assert_eq!(
        n.require_child("pong").map(|c| c.tag().to_owned()),
        Err(Error::MissingChild {
            tag: "iq".into(),
            child: "pong".into()
        })
    );
    let mut p = n.attr_parser();
    let _: Option<u64> = p.req("id");
    let _: Option<Jid> = p.req("nope");
    let _: Option<&str> = p.req("id");
    assert_eq!(p.errors().len(), 2);
    assert!(matches!(p.finish(), Err(Error::Attrs(v)) if v.len() == 2));
}

#[test]
fn an_overlong_jid_attribute_is_refused_as_a_jid() {
    let at_limit = "1".repeat(wa_binary::MAX_JID_USER_LEN);
    let over = "1".repeat(wa_binary::MAX_JID_USER_LEN + 1);
    let built = Node::builder("message")
        .attr("from", Jid::pn(over.clone()))
        .attr("participant", Jid::lid(at_limit.clone()))
        .attr("recipient", format!("{over}@s.whatsapp.net"))
        .build();
    // Through the wire: the JID pair decodes as received, and reading it as a JID refuses it.
    let n = decode(Bytes::from(encode(&built))).expect("decodes");
    let from = n
        .get_attr("from")
        .and_then(|v| v.as_jid())
        .expect("a JID value");
    assert_eq!(from.user.len(), over.len());
    assert!(!from.is_bounded());
    assert!(matches!(
        n.attr::<Jid>("from"),
        Err(Error::InvalidAttr {
            expected: "JID",
            ..
        })
    ));
    assert_eq!(n.attr::<Jid>("participant"), Ok(Jid::lid(at_limit)));
    assert!(n.attr::<Jid>("recipient").is_err());
    assert_eq!(
        n.attr::<String>("recipient"),
        Ok(format!("{over}@s.whatsapp.net"))
    );
}
