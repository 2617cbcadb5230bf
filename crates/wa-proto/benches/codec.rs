//! Decode and encode throughput of the generated types on Baileys' message vectors.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message as _;
use std::hint::black_box;
use wa_proto::e2e::Message;
use wa_proto::web::WebMessageInfo;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vector(name: &str, field: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/messages.json"
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let case = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap();
    hex(case[field].as_str().unwrap())
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("wa-proto");
    for name in ["text_mention_quote", "image"] {
        let msg = vector(name, "messageProtoHex");
        group.throughput(Throughput::Bytes(msg.len() as u64));
        group.bench_function(format!("decode Message ({name})"), |b| {
            b.iter(|| Message::decode(black_box(msg.as_slice())).unwrap())
        });
        let decoded = Message::decode(msg.as_slice()).unwrap();
        group.bench_function(format!("encode Message ({name})"), |b| {
            b.iter(|| black_box(&decoded).encode_to_vec())
        });
        let wmi = vector(name, "webMessageInfoHex");
        group.throughput(Throughput::Bytes(wmi.len() as u64));
        group.bench_function(format!("decode WebMessageInfo ({name})"), |b| {
            b.iter(|| WebMessageInfo::decode(black_box(wmi.as_slice())).unwrap())
        });
    }
    group.finish();
    // Constructing the large inline structs is part of every decode.
    c.bench_function("wa-proto/Message::default", |b| {
        b.iter(|| black_box(Message::default()))
    });
    c.bench_function("wa-proto/WebMessageInfo::default", |b| {
        b.iter(|| black_box(WebMessageInfo::default()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
