//! Parsing the stanzas this layer reads most: presence, chat state, a privacy reply and a
//! blocklist, each also from encoded bytes.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wa_binary::{Jid, Node};
use wa_chats::{parse_blocklist, parse_chat_state, parse_presence, parse_privacy};

fn bench(c: &mut Criterion) {
    let presence = Node::builder("presence")
        .attr("from", Jid::pn("15550000001"))
        .attr("type", "unavailable")
        .attr("last", "1700000000")
        .build();
    let chatstate = Node::builder("chatstate")
        .attr("from", Jid::group("120363000000000001"))
        .attr("participant", Jid::pn("15550000001"))
        .children([Node::builder("composing").attr("media", "audio").build()])
        .build();
    let privacy = Node::builder("iq")
        .children([Node::builder("privacy")
            .children(
                [
                    "last",
                    "online",
                    "profile",
                    "status",
                    "readreceipts",
                    "groupadd",
                    "calladd",
                    "messages",
                ]
                .map(|n| {
                    Node::builder("category")
                        .attr("name", n)
                        .attr("value", "all")
                        .build()
                }),
            )
            .build()])
        .build();
    let blocklist = Node::builder("iq")
        .children([Node::builder("list")
            .children((0..1000).map(|i| {
                Node::builder("item")
                    .attr("jid", Jid::pn(format!("1555{i:07}")))
                    .build()
            }))
            .build()])
        .build();

    c.bench_function("parse_presence", |b| {
        b.iter(|| parse_presence(black_box(&presence)).unwrap())
    });
    c.bench_function("parse_chat_state", |b| {
        b.iter(|| parse_chat_state(black_box(&chatstate)).unwrap())
    });
    c.bench_function("parse_privacy_8_categories", |b| {
        b.iter(|| parse_privacy(black_box(&privacy)).unwrap())
    });
    c.bench_function("parse_blocklist_1000", |b| {
        b.iter(|| parse_blocklist(black_box(&blocklist)).unwrap())
    });
    let encoded = bytes_of(&presence);
    c.bench_function("decode_and_parse_presence", |b| {
        b.iter(|| {
            let n = wa_binary::decode(black_box(encoded.clone())).unwrap();
            parse_presence(&n).unwrap()
        })
    });
    let encoded = bytes_of(&blocklist);
    c.bench_function("decode_and_parse_blocklist_1000", |b| {
        b.iter(|| {
            let n = wa_binary::decode(black_box(encoded.clone())).unwrap();
            parse_blocklist(&n).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

/// The encoded frame of `node`, as the socket hands it to the decoder.
fn bytes_of(node: &Node) -> bytes::Bytes {
    bytes::Bytes::from(wa_binary::encode(node))
}
