//! Building a usync query and parsing a reply.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wa_binary::{Jid, Node};
use wa_usync::{Protocol, UsyncQuery, parse_reply};

/// A reply for `users` users with a phone and 4 companions each, plus a LID.
fn reply(users: usize) -> Node {
    let user = |i: usize| {
        let devices = (0..5u16).map(|d| {
            Node::builder("device")
                .attr("id", d.to_string())
                .attr_opt("key-index", (d > 0).then(|| d.to_string()))
                .build()
        });
        Node::builder("user")
            .attr("jid", Jid::pn(format!("1555{i:07}")))
            .children([
                Node::builder("devices")
                    .children([
                        Node::builder("device-list").children(devices).build(),
                        Node::builder("key-index-list")
                            .attr("ts", "1700000000")
                            .build(),
                    ])
                    .build(),
                Node::builder("lid")
                    .attr("val", Jid::lid(format!("9{i:014}")))
                    .build(),
            ])
            .build()
    };
    Node::builder("iq")
        .attr("type", "result")
        .attr("id", "1")
        .children([Node::builder("usync")
            .children([Node::builder("list").children((0..users).map(user)).build()])
            .build()])
        .build()
}

fn bench(c: &mut Criterion) {
    let r = reply(100);
    let encoded = wa_binary::encode(&r);
    c.bench_function("parse_reply_100_users_5_devices", |b| {
        b.iter(|| parse_reply(black_box(&r)).unwrap())
    });
    c.bench_function("decode_and_parse_reply_100_users", |b| {
        b.iter(|| {
            let n = wa_binary::decode(black_box(encoded.clone()).into()).unwrap();
            parse_reply(&n).unwrap()
        })
    });
    let jids: Vec<Jid> = (0..100).map(|i| Jid::pn(format!("1555{i:07}"))).collect();
    c.bench_function("build_devices_query_100_users", |b| {
        b.iter(|| {
            jids.iter()
                .fold(
                    UsyncQuery::new("message").protocol(Protocol::Devices),
                    |q, j| q.user(j),
                )
                .build("sid")
                .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
