//! Interleaved throughput comparison of the transport against raw AES-256-GCM, robust to
//! a machine whose load changes while measuring: the two are timed in alternating short
//! batches and the median of the per-round ratios is reported.
//!
//! `cargo run --release -p wa-noise --example transport_ratio`
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use bytes::BytesMut;
#[path = "../benches/common/mod.rs"]
mod common;
use common::transports;

fn main() {
    for size in [1024usize, 64 * 1024] {
        let iters = (4 << 20) / size; // 4 MiB of plaintext per batch
        let pt = vec![0x5Au8; size];
        let (mut client, mut server) = transports();
        let mut out = BytesMut::with_capacity(size + 64);
        let enc = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&[1u8; 32]));
        let dec = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&[1u8; 32]));
        let mut buf = pt.clone();
        let mut counter = 0u32;
        let mut ratios = Vec::new();
        let (mut ours_best, mut raw_best) = (f64::MAX, f64::MAX);
        for _ in 0..41 {
            let t = Instant::now();
            for _ in 0..iters {
                out.clear();
                client.encrypt_into(black_box(&pt), &mut out).unwrap();
                black_box(server.decrypt_slice_in_place(&mut out[3..]).unwrap());
            }
            let ours = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for _ in 0..iters {
                buf.copy_from_slice(black_box(&pt));
                let mut iv = [0u8; 12];
                iv[8..].copy_from_slice(&counter.to_be_bytes());
                counter = counter.wrapping_add(1);
                let nonce = Nonce::from_slice(&iv);
                let tag = enc.encrypt_in_place_detached(nonce, &[], &mut buf).unwrap();
                dec.decrypt_in_place_detached(nonce, &[], &mut buf, &tag)
                    .unwrap();
                black_box(&buf);
            }
            let raw = t.elapsed().as_secs_f64();
            ratios.push(raw / ours);
            ours_best = ours_best.min(ours);
            raw_best = raw_best.min(raw);
        }
        ratios.sort_by(f64::total_cmp);
        let mib = (iters * size) as f64 / (1024.0 * 1024.0);
        println!(
            "{size:>6} B frames: wa-noise / raw = {:.1} % (median of {} rounds); best batch: \
             wa-noise {:.0} MiB/s, raw {:.0} MiB/s (encrypt+decrypt, plaintext counted once)",
            ratios[ratios.len() / 2] * 100.0,
            ratios.len(),
            mib / ours_best,
            mib / raw_best,
        );
    }
}
