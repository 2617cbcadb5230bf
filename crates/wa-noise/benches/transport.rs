//! Transport throughput: one frame encrypted by the client and decrypted by the server,
//! next to raw AES-256-GCM (one key schedule per direction, in place) on the same buffers.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::hint::black_box;
use wa_crypto::KeyPair;
use wa_noise::{
    ChainParams, FrameDecoder, Initiator, InitiatorConfig, Responder, ResponderConfig, Transport,
    issue_cert_chain,
};

/// Runs a full in-memory handshake and returns (client, server) transports.
fn transports() -> (Transport, Transport) {
    let mut rng = StdRng::seed_from_u64(7);
    let root = KeyPair::generate(&mut rng);
    let inter = KeyPair::generate(&mut rng);
    let server_static = KeyPair::generate(&mut rng);
    let chain = issue_cert_chain(
        &root,
        &inter,
        &server_static.public,
        &ChainParams::default(),
        &mut rng,
    );
    let server = Responder::new(
        ResponderConfig {
            static_key: server_static,
            cert_chain: chain,
        },
        KeyPair::generate(&mut rng),
    );
    let client = Initiator::new(
        InitiatorConfig {
            trusted_root: root.public,
            routing_info: None,
        },
        KeyPair::generate(&mut rng),
        KeyPair::generate(&mut rng),
    );
    let mut sd = FrameDecoder::server();
    let mut cd = FrameDecoder::client();
    let (b, client) = client.client_hello().unwrap();
    sd.push(&b).unwrap();
    let (b, server) = server
        .read_client_hello(&sd.next_frame().unwrap().unwrap())
        .unwrap();
    cd.push(&b).unwrap();
    let client = client
        .read_server_hello(&cd.next_frame().unwrap().unwrap(), 1_700_000_000)
        .unwrap();
    let (b, ct) = client.client_finish(b"payload").unwrap();
    sd.push(&b).unwrap();
    let done = server
        .read_client_finish(&sd.next_frame().unwrap().unwrap())
        .unwrap();
    (ct, done.transport)
}

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

criterion_group!(benches, bench);
criterion_main!(benches);
