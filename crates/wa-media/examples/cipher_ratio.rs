//! Interleaved throughput comparison of [`Encryptor`] / [`Decryptor`] against raw
//! AES-256-CBC + HMAC-SHA256 (the same baseline as `benches/media.rs`), robust to a machine
//! whose load changes while measuring: each pair is timed in alternating 4 MiB batches and
//! the median of the per-round ratios is reported.
//!
//! `cargo run --release -p wa-media --example cipher_ratio`
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use wa_media::{
    Decryptor, Encryptor, Expected, MediaKeys, MediaType, Opener, Verifier, decrypt_parallel,
    encrypt,
};

#[path = "../benches/support/raw.rs"]
mod raw;
use raw::{CHUNK, raw_decrypt, raw_encrypt};

const SIZE: usize = 4 << 20;
const ROUNDS: usize = 41;

/// Times `ours` and `raw` alternately; prints the median ratio and the best batches.
fn compare(name: &str, mut ours: impl FnMut(), mut raw: impl FnMut()) {
    let mut ratios = Vec::new();
    let (mut ours_best, mut raw_best) = (f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        ours();
        let o = t.elapsed().as_secs_f64();
        let t = Instant::now();
        raw();
        let r = t.elapsed().as_secs_f64();
        ratios.push(r / o);
        ours_best = ours_best.min(o);
        raw_best = raw_best.min(r);
    }
    ratios.sort_by(f64::total_cmp);
    let mib = SIZE as f64 / (1024.0 * 1024.0);
    println!(
        "{name}: wa / raw = {:.1} % (median of {ROUNDS} rounds; quartiles {:.1} %, {:.1} %); \
         best batch: wa {:.0} MiB/s, raw {:.0} MiB/s",
        ratios[ROUNDS / 2] * 100.0,
        ratios[ROUNDS / 4] * 100.0,
        ratios[3 * ROUNDS / 4] * 100.0,
        mib / ours_best,
        mib / raw_best,
    );
}

fn main() {
    let keys = MediaKeys::expand(&[9u8; 32], MediaType::Video);
    let plain: Vec<u8> = (0..SIZE).map(|i| (i * 31 + 7) as u8).collect();
    let (blob, info) = encrypt(&keys, &plain);
    let expected = Expected::hashes(Some(info.file_enc_sha256), Some(info.file_sha256));

    let mut out = Vec::with_capacity(SIZE + 64);
    let mut scratch = plain.clone();
    compare(
        "encrypt",
        || {
            out.clear();
            let mut e = Encryptor::new(&keys);
            for chunk in black_box(&plain).chunks(CHUNK) {
                e.update(chunk, &mut out);
            }
            black_box(e.finish(&mut out));
        },
        || {
            black_box(raw_encrypt(&keys, &mut scratch));
        },
    );

    let mut out = Vec::with_capacity(SIZE + 64);
    let mut scratch = blob[..SIZE].to_vec();
    compare(
        "decrypt (Decryptor, one pass, one thread)",
        || {
            out.clear();
            let mut d = Decryptor::new(&keys);
            for chunk in black_box(&blob).chunks(CHUNK) {
                d.update(chunk, &mut out);
            }
            black_box(d.finish(&expected, &mut out).unwrap());
        },
        || {
            black_box(raw_decrypt(&keys, &mut scratch));
        },
    );
    compare(
        "verify (Verifier: MAC and encrypted-file hash)",
        || {
            let mut v = Verifier::new(&keys);
            for chunk in black_box(&blob).chunks(CHUNK) {
                v.update(chunk);
            }
            v.finish(&expected).unwrap();
        },
        || {
            black_box(raw_decrypt(&keys, &mut scratch));
        },
    );
    compare(
        "open (Opener: decryption and plaintext hash)",
        || {
            out.clear();
            let mut o = Opener::new(&keys);
            for chunk in black_box(&blob).chunks(CHUNK) {
                o.update(chunk, &mut out);
            }
            black_box(o.finish(&expected, &mut out).unwrap());
        },
        || {
            black_box(raw_decrypt(&keys, &mut scratch));
        },
    );
    compare(
        "decrypt_parallel (whole blob: verify and open on two threads)",
        || {
            black_box(decrypt_parallel(&keys, black_box(&blob), &expected).unwrap());
        },
        || {
            black_box(raw_decrypt(&keys, &mut scratch));
        },
    );
}
