//! Media encryption and decryption throughput next to the raw primitives they are made of.
//!
//! `raw/*` is AES-256-CBC plus HMAC-SHA256 over the same bytes with no hashing of the
//! plaintext or the encrypted file; `wa/*` is the full media format (which also needs
//! SHA-256 of the plaintext and of the encrypted file). `wa_decrypt_verified` is the
//! one-pass streaming `Decryptor`; `wa_verify` and `wa_open_verified` are the two passes of
//! a download, and `wa_decrypt_parallel` runs them on two threads.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wa_media::{
    Decryptor, Encryptor, Expected, MediaKeys, MediaType, Opener, Verifier, decrypt_parallel,
    encrypt,
};

#[path = "support/raw.rs"]
mod raw;
use raw::{CHUNK, raw_decrypt, raw_encrypt};

const SIZE: usize = 4 << 20;

fn bench(c: &mut Criterion) {
    let keys = MediaKeys::expand(&[9u8; 32], MediaType::Video);
    let plain: Vec<u8> = (0..SIZE).map(|i| (i * 31 + 7) as u8).collect();
    let (blob, info) = encrypt(&keys, &plain);
    let expected = Expected::hashes(Some(info.file_enc_sha256), Some(info.file_sha256));

    let mut g = c.benchmark_group("media_4MiB");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(30);
    g.bench_function("raw_sha256", |b| {
        b.iter(|| <sha2::Sha256 as sha2::Digest>::digest(&plain))
    });
    // The least work the media format needs: the raw passes plus SHA-256 of the plaintext
    // and of the encrypted file, one after the other.
    let mut scratch = plain.clone();
    g.bench_function("raw_format_work_encrypt", |b| {
        b.iter(|| {
            let p = <sha2::Sha256 as sha2::Digest>::digest(&scratch);
            let m = raw_encrypt(&keys, &mut scratch);
            (p, m, <sha2::Sha256 as sha2::Digest>::digest(&scratch))
        })
    });
    let mut scratch = plain.clone();
    g.bench_function("raw_aes_cbc_hmac_encrypt", |b| {
        b.iter(|| raw_encrypt(&keys, &mut scratch))
    });
    let mut out = Vec::with_capacity(SIZE + 64);
    g.bench_function("wa_encrypt", |b| {
        b.iter(|| {
            out.clear();
            let mut e = Encryptor::new(&keys);
            for chunk in plain.chunks(CHUNK) {
                e.update(chunk, &mut out);
            }
            e.finish(&mut out)
        })
    });
    let mut scratch = blob[..SIZE].to_vec();
    g.bench_function("raw_aes_cbc_hmac_decrypt", |b| {
        b.iter(|| raw_decrypt(&keys, &mut scratch))
    });
    g.bench_function("wa_decrypt_verified", |b| {
        b.iter(|| {
            out.clear();
            let mut d = Decryptor::new(&keys);
            for chunk in blob.chunks(CHUNK) {
                d.update(chunk, &mut out);
            }
            d.finish(&expected, &mut out).unwrap()
        })
    });
    // The two passes of a verify-then-decrypt download, each on its own.
    g.bench_function("wa_verify", |b| {
        b.iter(|| {
            let mut v = Verifier::new(&keys);
            for chunk in blob.chunks(CHUNK) {
                v.update(chunk);
            }
            v.finish(&expected).unwrap()
        })
    });
    g.bench_function("wa_open_verified", |b| {
        b.iter(|| {
            out.clear();
            let mut o = Opener::new(&keys);
            for chunk in blob.chunks(CHUNK) {
                o.update(chunk, &mut out);
            }
            o.finish(&expected, &mut out).unwrap()
        })
    });
    // The whole blob in memory: both passes at once, on two threads.
    g.bench_function("wa_decrypt_parallel", |b| {
        b.iter(|| decrypt_parallel(&keys, &blob, &expected).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
