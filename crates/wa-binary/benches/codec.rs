//! Encode/decode throughput on three typical frames, next to a memcpy of the
//! same number of bytes:
//!
//! - `fanout256`: a `<message>` to 256 devices, each
//!   `<to jid="N:D@s.whatsapp.net"><enc v="2" type="msg">` + 200 bytes;
//! - `usync1000x3`: a usync reply with 1000 users of 3 devices each;
//! - `payload64k`: one `<enc>` node holding 64 KiB.
//!
//! Run: `cargo bench -p wa-binary --bench codec`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wa_binary::{Jid, Node, Server, decode, encode};

fn fanout(devices: usize) -> Node {
    let participants = (0..devices).map(|i| {
        let user = format!("1555{:07}", i / 8);
        let jid = Jid::with_device(user, Server::Pn, (i % 8) as u16 + 1);
        let payload: Vec<u8> = (0..200u32).map(|b| (b as usize * 7 + i) as u8).collect();
        Node::builder("to")
            .attr("jid", jid)
            .children([Node::builder("enc")
                .attr("v", "2")
                .attr("type", "msg")
                .bytes(payload)
                .build()])
            .build()
    });
    Node::builder("message")
        .attr("id", "3EB0C5A7E0F1D2C3B4A5")
        .attr("to", Jid::group("120363012345678901"))
        .attr("type", "text")
        .attr("t", "1700000000")
        .children([
            Node::builder("participants").children(participants).build(),
            Node::builder("device-identity")
                .bytes(vec![0xab; 150])
                .build(),
        ])
        .build()
}

fn usync(users: usize, devices: usize) -> Node {
    let list = (0..users).map(|u| {
        let device_list = (0..devices).map(|d| {
            let b = Node::builder("device").attr("id", d.to_string());
            if d == 0 {
                b.build()
            } else {
                b.attr("key-index", d.to_string()).build()
            }
        });
        Node::builder("user")
            .attr("jid", Jid::pn(format!("1555{u:07}")))
            .children([Node::builder("devices")
                .children([
                    Node::builder("device-list").children(device_list).build(),
                    Node::builder("key-index-list")
                        .attr("ts", "1700000000")
                        .bytes(vec![u as u8; 24])
                        .build(),
                ])
                .build()])
            .build()
    });
    Node::builder("iq")
        .attr("from", Jid::server_jid())
        .attr("id", "28376.12938-3")
        .attr("type", "result")
        .children([Node::builder("usync")
            .attr("sid", "28376.12938-2")
            .attr("index", "0")
            .attr("last", "true")
            .attr("mode", "query")
            .attr("context", "message")
            .children([Node::builder("list").children(list).build()])
            .build()])
        .build()
}

fn payload(len: usize) -> Node {
    let data: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
    Node::builder("enc")
        .attr("v", "2")
        .attr("type", "msg")
        .bytes(data)
        .build()
}

fn bench_case(c: &mut Criterion, name: &str, node: &Node) {
    let frame = Bytes::from(encode(node));
    assert_eq!(
        decode(frame.clone()).as_ref(),
        Ok(node),
        "bench input must round-trip"
    );
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("encode", |b| b.iter(|| encode(black_box(node))));
    g.bench_function("decode", |b| b.iter(|| decode(black_box(frame.clone()))));
    let mut dst = vec![0u8; frame.len()];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&frame));
            black_box(&dst);
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_case(c, "fanout256", &fanout(256));
    bench_case(c, "usync1000x3", &usync(1000, 3));
    bench_case(c, "payload64k", &payload(64 << 10));
}

criterion_group!(codec, benches);
criterion_main!(codec);
