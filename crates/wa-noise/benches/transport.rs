//! Transport throughput: one frame encrypted by the client and decrypted by the server,
//! next to raw AES-256-GCM (one key schedule per direction, in place) on the same buffers.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
#[path = "common/mod.rs"]
mod common;
use common::transports;
use wa_noise::FrameDecoder;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("transport encrypt+decrypt");
    for size in [1024usize, 64 * 1024] {
        let plaintext = vec![0x5Au8; size];
        g.throughput(Throughput::Bytes(size as u64));

        let (mut client, mut server) = transports();
        let mut out = BytesMut::with_capacity(size + 64);
        g.bench_with_input(BenchmarkId::new("wa-noise", size), &plaintext, |b, pt| {
            b.iter(|| {
                out.clear();
                client.encrypt_into(black_box(pt), &mut out).unwrap();
                let n = server.decrypt_slice_in_place(&mut out[3..]).unwrap();
                black_box(n);
            })
        });

        let (mut client, mut server) = transports();
        let mut decoder = FrameDecoder::client();
        g.bench_with_input(
            BenchmarkId::new("wa-noise with frame decoder", size),
            &plaintext,
            |b, pt| {
                b.iter(|| {
                    out.clear();
                    client.encrypt_into(black_box(pt), &mut out).unwrap();
                    decoder.push(&out).unwrap();
                    let mut frame = decoder.next_frame().unwrap().unwrap();
                    server.decrypt_in_place(&mut frame).unwrap();
                    black_box(frame);
                })
            },
        );

        let enc = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&[1u8; 32]));
        let dec = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&[1u8; 32]));
        let mut buf = plaintext.clone();
        let mut counter = 0u32;
        g.bench_with_input(
            BenchmarkId::new("raw aes-256-gcm", size),
            &plaintext,
            |b, pt| {
                b.iter(|| {
                    buf.copy_from_slice(black_box(pt));
                    let mut iv = [0u8; 12];
                    iv[8..].copy_from_slice(&counter.to_be_bytes());
                    counter = counter.wrapping_add(1);
                    let nonce = Nonce::from_slice(&iv);
                    let tag = enc.encrypt_in_place_detached(nonce, &[], &mut buf).unwrap();
                    dec.decrypt_in_place_detached(nonce, &[], &mut buf, &tag)
                        .unwrap();
                    black_box(&buf);
                })
            },
        );
    }
    g.finish();
}

/// One complete handshake, both sides in memory (keys generated outside the loop; the
/// certificate chain is verified every time).
fn handshake(c: &mut Criterion) {
    c.bench_function("handshake initiator+responder in memory", |b| {
        b.iter(|| black_box(transports()))
    });
}

criterion_group!(benches, bench, handshake);
criterion_main!(benches);
