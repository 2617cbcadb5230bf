//! Parsing call stanzas: an offer (the largest), a terminate, and an offer from encoded
//! bytes as the socket hands it over.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wa_binary::{Jid, Node};
use wa_calls::parse_call;

fn bench(c: &mut Criterion) {
    let offer = Node::builder("call")
        .attr("from", Jid::pn("15550000002"))
        .attr("id", "5F1A6C2B9E0D4A11")
        .attr("t", "1700000000")
        .attr("platform", "android")
        .attr("version", "2.24.1")
        .children([Node::builder("offer")
            .attr("call-id", "A1B2C3D4E5F60718293A4B5C6D7E8F90")
            .attr("call-creator", Jid::pn("15550000002"))
            .attr("caller_pn", Jid::pn("15550000002"))
            .children([
                Node::builder("audio")
                    .attr("enc", "opus")
                    .attr("rate", "16000")
                    .build(),
                Node::builder("audio")
                    .attr("enc", "opus")
                    .attr("rate", "8000")
                    .build(),
                Node::builder("video")
                    .attr("enc", "vp8")
                    .attr("dec", "vp8")
                    .build(),
                Node::builder("net").attr("medium", "3").build(),
                Node::builder("enc")
                    .attr("v", "2")
                    .attr("type", "pkmsg")
                    .bytes(vec![7u8; 200])
                    .build(),
            ])
            .build()])
        .build();
    let terminate = Node::builder("call")
        .attr("from", Jid::pn("15550000002"))
        .attr("id", "5F1A6C2B9E0D4A12")
        .attr("t", "1700000030")
        .children([Node::builder("terminate")
            .attr("call-id", "A1B2C3D4E5F60718293A4B5C6D7E8F90")
            .attr("call-creator", Jid::pn("15550000002"))
            .attr("reason", "timeout")
            .build()])
        .build();
    c.bench_function("parse_call_offer", |b| {
        b.iter(|| parse_call(black_box(&offer)).unwrap())
    });
    c.bench_function("parse_call_terminate", |b| {
        b.iter(|| parse_call(black_box(&terminate)).unwrap())
    });
    let encoded = bytes::Bytes::from(wa_binary::encode(&offer));
    c.bench_function("decode_and_parse_call_offer", |b| {
        b.iter(|| {
            let n = wa_binary::decode(black_box(encoded.clone())).unwrap();
            parse_call(&n).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
