//! Parsing what this layer reads most: a fetch of 100 posts, a post notification, a
//! reaction notification and a `w:mex` metadata answer, plus a post notification from
//! encoded bytes.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use prost::Message as _;
use serde_json::json;
use wa_binary::{Jid, Node};
use wa_newsletter::{
    build_mex_reply, ops, parse_messages_reply, parse_metadata, parse_mex_result,
    parse_notification,
};

fn post(i: u64) -> Node {
    let m = wa_proto::e2e::Message {
        conversation: Some(format!(
            "post number {i} with a sentence of ordinary length"
        )),
        ..Default::default()
    };
    Node::builder("message")
        .attr("server_id", (100 + i).to_string())
        .attr("id", format!("3EB0{i:016X}"))
        .attr("t", "1700000000")
        .attr("type", "text")
        .children([
            Node::builder("plaintext").bytes(m.encode_to_vec()).build(),
            Node::builder("views_count").attr("count", "1234").build(),
            Node::builder("reactions")
                .children([
                    Node::builder("reaction")
                        .attr("code", "👍")
                        .attr("count", "12")
                        .build(),
                    Node::builder("reaction")
                        .attr("code", "❤")
                        .attr("count", "3")
                        .build(),
                ])
                .build(),
        ])
        .build()
}

fn bench(c: &mut Criterion) {
    let ch: Jid = "120363000000000042@newsletter".parse().unwrap();
    let fetch = Node::builder("iq")
        .children([Node::builder("messages")
            .children((0..100).map(post))
            .build()])
        .build();
    let notification = Node::builder("notification")
        .attr("from", ch.clone())
        .attr("type", "newsletter")
        .attr("id", "N1")
        .attr("t", "1700000000")
        .children([post(1)])
        .build();
    let reaction = Node::builder("notification")
        .attr("from", ch.clone())
        .attr("type", "newsletter")
        .children([Node::builder("reaction")
            .attr("message_id", "101")
            .attr("count", "4")
            .children([Node::builder("reaction")
                .bytes("👍".as_bytes().to_vec())
                .build()])
            .build()])
        .build();
    let meta = build_mex_reply(
        "1",
        ops::METADATA,
        json!({
            "id": ch.to_string(),
            "state": { "type": "ACTIVE" },
            "thread_metadata": {
                "creation_time": "1700000000",
                "name": { "text": "Daily News", "id": "1", "update_time": "0" },
                "description": { "text": "every day", "id": "2", "update_time": "0" },
                "invite": "0029VaAbCdEfGhIjKlMnOp", "subscribers_count": "123456",
                "verification": "VERIFIED",
                "picture": { "id": "p1", "direct_path": "/v/t61/p1", "type": "IMAGE" }
            },
            "viewer_metadata": { "mute": "OFF", "role": "SUBSCRIBER" }
        }),
    );
    let encoded = prost::bytes::Bytes::from(wa_binary::encode(&notification));

    c.bench_function("parse_messages_reply (100 posts)", |b| {
        b.iter(|| parse_messages_reply(black_box(&fetch)).unwrap())
    });
    c.bench_function("parse_notification (post)", |b| {
        b.iter(|| parse_notification(black_box(&notification)).unwrap())
    });
    c.bench_function("parse_notification (reaction)", |b| {
        b.iter(|| parse_notification(black_box(&reaction)).unwrap())
    });
    c.bench_function("parse_mex_result + parse_metadata", |b| {
        b.iter(|| {
            parse_metadata(&parse_mex_result(black_box(&meta), ops::METADATA).unwrap()).unwrap()
        })
    });
    c.bench_function("decode + parse_notification (post)", |b| {
        b.iter(|| {
            let n = wa_binary::decode(black_box(encoded.clone())).unwrap();
            parse_notification(&n).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
