//! LTHash and patch decode/encode throughput.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use wa_appstate::{
    DecodeOptions, HashState, MutationKeys, OutgoingMutation, builders, decode_patch,
    decode_snapshot, encode_patch, lt_hash_add, snapshot_mac,
};
use wa_proto::server_sync::{KeyId, SyncdSnapshot, SyncdVersion};

const KEY_ID: [u8; 6] = [0, 0, 0, 0, 0, 10];

fn mutations(n: usize) -> Vec<OutgoingMutation> {
    (0..n)
        .map(|i| {
            builders::mute(
                &format!("1555{i:07}@s.whatsapp.net"),
                builders::MuteUntil::Until(1_700_003_600_000),
                1_700_000_000_000,
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("lthash");
    let mac = [0x5au8; 32];
    g.throughput(Throughput::Elements(1));
    g.bench_function("add", |b| {
        let mut h = [0u8; 128];
        b.iter(|| lt_hash_add(black_box(&mut h), black_box(&mac)))
    });
    g.finish();

    let keys = HashMap::from([(KEY_ID.to_vec(), vec![0x7f; 32])]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut g = c.benchmark_group("patch");
    for n in [1usize, 100] {
        let muts = mutations(n);
        let enc =
            encode_patch(&muts, &KEY_ID, &[0x7f; 32], &HashState::new(), &mut rng).expect("encode");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("decode/{n}"), |b| {
            b.iter_batched(
                HashState::new,
                |mut st| {
                    decode_patch(
                        "regular_high",
                        black_box(&enc.patch),
                        &mut st,
                        &keys,
                        &DecodeOptions::default(),
                    )
                    .expect("decode")
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function(format!("encode/{n}"), |b| {
            b.iter(|| {
                encode_patch(
                    black_box(&muts),
                    &KEY_ID,
                    &[0x7f; 32],
                    &HashState::new(),
                    &mut rng,
                )
                .expect("encode")
            })
        });
    }
    g.finish();

    // A snapshot of 1000 records, MACed as the server does.
    let mut g = c.benchmark_group("snapshot");
    let enc = encode_patch(
        &mutations(1000),
        &KEY_ID,
        &[0x7f; 32],
        &HashState::new(),
        &mut rng,
    )
    .expect("encode");
    let mk = MutationKeys::expand(&[0x7f; 32]);
    let snap = SyncdSnapshot {
        version: Some(SyncdVersion {
            version: Some(1),
            ..Default::default()
        }),
        records: enc
            .patch
            .mutations
            .iter()
            .filter_map(|m| m.record.as_deref().cloned())
            .collect(),
        mac: Some(snapshot_mac(&mk.snapshot_mac, &enc.state.hash, 1, "regular_high").to_vec()),
        key_id: Some(KeyId {
            id: Some(KEY_ID.to_vec()),
            ..Default::default()
        }),
        ..Default::default()
    };
    g.throughput(Throughput::Elements(1000));
    g.bench_function("decode/1000", |b| {
        b.iter(|| decode_snapshot("regular_high", black_box(&snap), &keys).expect("snapshot"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
