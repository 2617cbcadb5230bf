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
use wa_binary::{Node, decode, encode};

mod common;
use common::{fanout, payload, usync};

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
