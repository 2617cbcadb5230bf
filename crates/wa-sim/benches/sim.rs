//! Server-side costs seen from a client on 127.0.0.1: a full login (TCP, websocket
//! upgrade, Noise handshake, `<success>` and offline markers) and a ping round trip.

#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Creds, iq, login, register};
use criterion::{Criterion, criterion_group, criterion_main};
use wa_binary::Node;
use wa_sim::{Sim, SimConfig};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let phone = "15551234567";
    let (sim, creds, device) = rt.block_on(async {
        let sim = Sim::start(SimConfig::default()).await.unwrap();
        sim.add_account(phone).await;
        let creds = Creds::new();
        let device = register(&sim, phone, &creds).await;
        (sim, creds, device)
    });

    c.bench_function("login (connect, handshake, success, offline)", |b| {
        b.iter(|| rt.block_on(login(&sim, &creds, &device)));
    });

    let (mut client, _) = rt.block_on(login(&sim, &creds, &device));
    let mut n = 0u64;
    c.bench_function("ping round trip", |b| {
        b.iter(|| {
            n += 1;
            let id = format!("p{n}");
            rt.block_on(client.query(iq(&id, "get", "w:p", vec![Node::new("ping")])))
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
