//! Throughput of the primitives every handshake and session setup uses.

use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::hint::black_box;
use wa_crypto::KeyPair;

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let a = KeyPair::generate(&mut rng);
    let b = KeyPair::generate(&mut rng);
    let msg = [7u8; 33];
    let sig = a.sign(&msg, &mut rng);
    c.bench_function("x25519 keygen", |x| x.iter(|| KeyPair::generate(&mut rng)));
    c.bench_function("x25519 dh", |x| {
        x.iter(|| black_box(a.dh(black_box(&b.public))))
    });
    let mut rng2 = StdRng::seed_from_u64(2);
    c.bench_function("xeddsa sign 33B", |x| {
        x.iter(|| a.sign(black_box(&msg), &mut rng2))
    });
    c.bench_function("xeddsa verify 33B", |x| {
        x.iter(|| a.public.verify(black_box(&msg), black_box(&sig)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
