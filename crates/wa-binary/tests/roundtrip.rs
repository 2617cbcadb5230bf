//! Property tests: random nodes encode and decode to themselves.

use bytes::Bytes;
use proptest::prelude::*;
use wa_binary::{
    Attrs, Content, Error, Jid, Node, Server, Str, Value, decode, encode, encode_compressed,
    try_encode,
};

const TOKENS: &[&str] = &[
    "iq",
    "message",
    "s.whatsapp.net",
    "type",
    "id",
    "to",
    "from",
    "enc",
    "v",
    "2",
    "msg",
    "pkmsg",
    "device",
    "usync",
    "list",
    "user",
    "read-self",
    "reaction",
    "100",
    "false",
    "w:gp2",
    "America/Sao_Paulo",
    "screen_height",
    "1080",
    "g.us",
    "lid",
];

fn token() -> impl Strategy<Value = String> {
    prop::sample::select(TOKENS).prop_map(str::to_owned)
}

/// Strings in every encoding: tokens, nibble- and hex-packable (up to and
/// past the 127-character packing limit), arbitrary text, long text.
fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => token(),
        2 => "[0-9.\\-]{1,130}",
        2 => "[0-9A-F]{1,130}",
        3 => "\\PC{0,24}",
        1 => "[a-z]{30,300}",
    ]
}

fn packable_or_token() -> impl Strategy<Value = String> {
    prop_oneof![token(), "[0-9.\\-]{1,127}", "[0-9A-F]{1,127}"]
}

fn nonempty_string() -> impl Strategy<Value = String> {
    any_string().prop_filter("non-empty", |s| !s.is_empty())
}

fn user() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[0-9]{1,20}", 1 => Just(String::new()), 1 => "[a-z0-9\\-]{1,12}"]
}

/// Agents the wire can carry on s.whatsapp.net (1, 128 and 129 are the LID
/// and hosted domains).
fn agent() -> impl Strategy<Value = u8> {
    prop_oneof![3 => Just(0u8), 1 => any::<u8>().prop_filter("domain", |a| ![1, 128, 129].contains(a))]
}

fn jid() -> impl Strategy<Value = Jid> {
    let plain = prop::sample::select(vec![
        Server::Pn,
        Server::LegacyUser,
        Server::Group,
        Server::Broadcast,
        Server::Lid,
        Server::Newsletter,
        Server::Bot,
        Server::Call,
    ]);
    prop_oneof![
        // JID_PAIR of every plain server, and AD_JID for s.whatsapp.net / lid
        (user(), plain, 0u16..=255, agent()).prop_map(|(u, server, device, agent)| {
            let mut j = Jid::new(Str::from(u), server);
            if matches!(j.server, Server::Pn | Server::Lid) {
                j.device = device;
            }
            if j.server == Server::Pn {
                j.agent = agent;
            }
            j
        }),
        (
            user(),
            prop::sample::select(vec![Server::Hosted, Server::HostedLid]),
            0u16..=255
        )
            .prop_map(|(u, s, d)| Jid::with_device(Str::from(u), s, d)),
        (user(), any::<u16>()).prop_map(|(u, d)| Jid::with_device(Str::from(u), Server::Msgr, d)),
        (user(), any::<u16>(), any::<u16>()).prop_map(|(u, d, i)| {
            let mut j = Jid::with_device(Str::from(u), Server::Interop, d);
            j.integrator = i;
            j
        }),
        (user(), "[a-z]{1,10}\\.[a-z]{2,5}").prop_map(|(u, s)| {
            Jid::new(
                Str::from(u),
                Server::from_name(Str::from(s)).expect("non-empty"),
            )
        }),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any_string().prop_map(|s| Value::Str(Str::from(s))),
        jid().prop_map(Value::from)
    ]
}

fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from),
        1 => (0usize..=(1 << 20), any::<u8>()).prop_map(|(n, seed)| {
            Bytes::from((0..n).map(|i| seed.wrapping_add((i as u8).wrapping_mul(31))).collect::<Vec<u8>>())
        }),
    ]
}

fn leaf_content() -> impl Strategy<Value = Content> {
    prop_oneof![
        3 => Just(Content::None),
        3 => payload().prop_map(Content::Bytes),
        1 => packable_or_token().prop_map(|s| Content::Text(Str::from(s))),
        1 => jid().prop_map(|j| Content::Jid(Box::new(j))),
        1 => Just(Content::Nodes(Vec::new())),
    ]
}

fn node_with(content: impl Strategy<Value = Content>) -> impl Strategy<Value = Node> {
    (
        nonempty_string(),
        prop::collection::vec((any_string(), value()), 0..6),
        content,
    )
        .prop_map(|(tag, attrs, content)| {
            let attrs: Attrs = attrs.into_iter().map(|(k, v)| (Str::from(k), v)).collect();
            Node {
                tag: Str::from(tag),
                attrs,
                content,
            }
        })
}

fn node() -> impl Strategy<Value = Node> {
    node_with(leaf_content()).prop_recursive(4, 64, 8, |inner| {
        node_with(prop::collection::vec(inner, 0..8).prop_map(Content::Nodes))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn nodes_round_trip(n in node()) {
        let frame = encode(&n);
        prop_assert_eq!(frame[0], 0);
        let back = decode(Bytes::from(frame)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &n);
        let z = decode(Bytes::from(encode_compressed(&n))).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(z, n);
    }

    #[test]
    fn jids_print_and_parse(j in jid()) {
        // Every JID but the ones whose user contains parse separators prints
        // to text that parses back to it.
        let separators = j.user.contains(['_', ':', '@'])
            || (j.server == Server::Interop && j.user.contains('-'));
        prop_assume!(!separators);
        let text = j.to_string();
        let back: Jid = text.parse().map_err(|e: wa_binary::Error| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, j);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(n) = decode(Bytes::from(data)) {
            let again = decode(Bytes::from(encode(&n))).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again, n);
        }
    }
}

#[test]
fn decoded_payload_shares_the_frame_buffer() {
    let payload: Vec<u8> = (0..65536u32).map(|i| i as u8).collect();
    let n = Node::builder("enc").bytes(payload.clone()).build();
    let frame = Bytes::from(encode(&n));
    let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
    let back = decode(frame.clone()).expect("decode");
    let b = back.bytes().expect("bytes");
    assert_eq!(&b[..], &payload[..]);
    assert!(range.contains(&(b.as_ptr() as usize)), "payload was copied");
}

/// A tree whose attributes fill several arena chunks, with token keys, a
/// non-token key (two slots) and JID values.
fn wide_tree(children: usize) -> Node {
    Node::builder("iq")
        .attr("id", "1")
        .attr("type", "result")
        .children((0..children).map(|i| {
            Node::builder("user")
                .attr(
                    "jid",
                    Jid::with_device(format!("1555{i:07}"), Server::Pn, (i % 5) as u16),
                )
                .attr("x-not-a-token", i.to_string())
                .attr("t", "1700000000")
                .bytes(vec![i as u8; 3])
                .build()
        }))
        .build()
}

#[test]
fn decoded_attributes_span_chunks_and_outlive_the_tree() {
    let n = wide_tree(3000);
    let back = decode(Bytes::from(encode(&n))).expect("decode");
    assert_eq!(back, n);
    let users = back.children();
    assert_eq!(users.len(), 3000);
    for (i, u) in users.iter().enumerate() {
        assert_eq!(u.attrs.len(), 3);
        assert_eq!(
            u.attr::<Jid>("jid").expect("jid").user,
            format!("1555{i:07}")
        );
        assert_eq!(u.attr::<usize>("x-not-a-token").expect("x"), i);
        let keys: Vec<&str> = u.attrs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["jid", "x-not-a-token", "t"]);
    }
    // One node kept after the rest of the tree is dropped still reads its
    // attributes (it holds its arena chunk).
    let kept = users[2999].clone();
    drop(back);
    assert_eq!(kept.attr::<usize>("x-not-a-token").expect("x"), 2999);
    assert_eq!(kept, n.children()[2999]);
}

#[test]
fn changing_a_decoded_node_leaves_its_siblings_alone() {
    let n = wide_tree(50);
    let mut back = decode(Bytes::from(encode(&n))).expect("decode");
    let Content::Nodes(users) = &mut back.content else {
        panic!("children expected");
    };
    users[7].attrs.insert("x-not-a-token", "changed");
    users[7].attrs.insert("new-key", "added");
    assert_eq!(
        users[7].attrs.remove("t").as_ref().and_then(Value::as_str),
        Some("1700000000")
    );
    users[8].attrs.remove("x-not-a-token");
    assert_eq!(users[7].attrs.len(), 3);
    assert_eq!(
        users[7].attr::<&str>("x-not-a-token").expect("x"),
        "changed"
    );
    assert_eq!(users[7].attr::<&str>("new-key").expect("new"), "added");
    assert_eq!(users[8].attrs.len(), 2);
    for (i, u) in users.iter().enumerate() {
        if i != 7 && i != 8 {
            assert_eq!(u, &n.children()[i], "{i}");
        }
    }
    back.attrs.insert("type", "error");
    assert_eq!(back.attr::<&str>("type").expect("type"), "error");
    assert_eq!(back.attr::<&str>("id").expect("id"), "1");
    let again = decode(Bytes::from(encode(&back))).expect("decode");
    assert_eq!(again, back);
}

#[test]
fn a_token_key_sent_as_raw_text_reads_like_the_token() {
    // <iq id="x"/> with the key "id" written as BINARY_8 text instead of its
    // token byte.
    let token_form = encode(&Node::builder("iq").attr("id", "x").build());
    let iq = encode(&Node::new("iq"))[3];
    let frame = vec![0, 0xf8, 3, iq, 0xfc, 2, b'i', b'd', 0xfc, 1, b'x'];
    let back = decode(Bytes::from(frame)).expect("decode");
    assert_eq!(back.attr::<&str>("id").expect("id"), "x");
    assert_eq!(back, Node::builder("iq").attr("id", "x").build());
    assert_eq!(encode(&back), token_form);
}

#[test]
fn more_children_than_a_list_counts_are_refused_or_cut() {
    let wide = |n: usize| {
        Node::builder("iq")
            .children((0..n).map(|_| Node::builder("a").build()))
            .build()
    };
    let fits = wide(65_535);
    assert_eq!(try_encode(&fits).expect("fits"), encode(&fits));
    let over = wide(65_536 + 10);
    assert!(matches!(try_encode(&over), Err(Error::Unencodable { .. })));
    // `encode` writes the children the list counts, and nothing after them.
    let back = decode(Bytes::from(encode(&over))).expect("a well-formed frame");
    assert_eq!(back, fits);
}

#[test]
fn more_attributes_than_a_list_counts_are_refused_or_cut() {
    // A node with the most attributes a list can count (no content): 32 767.
    const LIST_16: u8 = 249;
    const BINARY_8: u8 = 252;
    let mut frame = vec![0, LIST_16, 0xff, 0xff, BINARY_8, 1, b'x'];
    for i in 0..32_767 {
        let k = format!("k{i}");
        frame.extend_from_slice(&[BINARY_8, k.len() as u8]);
        frame.extend_from_slice(k.as_bytes());
        frame.extend_from_slice(&[BINARY_8, 1, b'v']);
    }
    let mut n = decode(Bytes::from(frame)).expect("decode");
    assert_eq!(n.attrs.len(), 32_767);
    assert_eq!(try_encode(&n).expect("fits"), encode(&n));
    // With content, one attribute fewer fits.
    n.content = Content::Bytes(Bytes::from_static(b"payload"));
    assert!(matches!(try_encode(&n), Err(Error::Unencodable { .. })));
    let back = decode(Bytes::from(encode(&n))).expect("a well-formed frame");
    assert_eq!(back.attrs.len(), 32_766);
    assert_eq!(back.bytes().map(|b| &b[..]), Some(&b"payload"[..]));
    assert_eq!(back.attr::<&str>("k32765").expect("kept"), "v");
}

#[test]
fn a_device_an_ad_jid_cannot_carry_is_refused() {
    for (jid, fits) in [
        (Jid::with_device("15551234567", Server::Pn, 255), true),
        (Jid::with_device("15551234567", Server::Pn, 256), false),
        (Jid::with_device("15551234567", Server::Lid, 300), false),
        (Jid::with_device("15551234567", Server::Hosted, 300), false),
        // FB JIDs carry the device in two bytes.
        (Jid::with_device("15551234567", Server::Msgr, 300), true),
    ] {
        for n in [
            Node::builder("to").attr("jid", jid.clone()).build(),
            Node::builder("to")
                .content(Content::Jid(Box::new(jid.clone())))
                .build(),
        ] {
            match try_encode(&n) {
                Ok(frame) => {
                    assert!(fits, "{jid:?}");
                    assert_eq!(decode(Bytes::from(frame)).expect("decode"), n);
                }
                Err(e) => {
                    assert!(!fits, "{jid:?}");
                    assert!(matches!(e, Error::Unencodable { .. }), "{e}");
                }
            }
        }
    }
}
