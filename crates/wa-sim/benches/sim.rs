//! Server-side costs seen from a client on 127.0.0.1: a full login (TCP, websocket
//! upgrade, Noise handshake, `<success>` and offline markers), a ping round trip, a 1:1
//! message routed to an online device, a login that delivers 100 queued messages, and a
//! message the phone decrypts and acknowledges.

#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::party::{Dev, blob, message, next_tag, pn, text};
use common::{Creds, attr, iq, login, register};
use criterion::{Criterion, criterion_group, criterion_main};
use wa_binary::{Jid, Node};
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

fn ack(id: &str, to: &Jid) -> Node {
    Node::builder("ack")
        .attr("class", "message")
        .attr("id", id.to_owned())
        .attr("to", to.clone())
        .build()
}

fn bench_messaging(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (alice, bob) = ("15550000001", "15550000002");
    let (sim, a1, b1, b2) = rt.block_on(async {
        let sim = Sim::start(SimConfig::default()).await.unwrap();
        sim.add_account(alice).await;
        sim.add_account(bob).await;
        let a1 = Dev::link(&sim, alice).await;
        let b1 = Dev::link(&sim, bob).await;
        let b2 = Dev::link(&sim, bob).await;
        (sim, a1, b1, b2)
    });
    let (mut ca, mut cb) = rt.block_on(async {
        let (ca, _) = a1.login(&sim).await;
        let (cb, _) = b1.login(&sim).await;
        (ca, cb)
    });
    let to_bob = Jid::pn(bob);
    let mut n = 0u64;
    c.bench_function("1:1 message: send, server ack, delivery, device ack", |b| {
        b.iter(|| {
            n += 1;
            let id = format!("M{n}");
            rt.block_on(async {
                ca.send(&message(&id, &to_bob, vec![(b1.jid.clone(), blob(1))]))
                    .await;
                let got = next_tag(&mut cb, "message").await;
                cb.send(&ack(&id, &a1.jid)).await;
                next_tag(&mut ca, "ack").await;
                got
            })
        });
    });

    c.bench_function("login delivering 100 queued messages", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..100 {
                    n += 1;
                    let id = format!("Q{n}");
                    ca.send(&message(&id, &to_bob, vec![(b2.jid.clone(), blob(1))]))
                        .await;
                    if i == 99 {
                        while attr(&next_tag(&mut ca, "ack").await, "id").as_deref()
                            != Some(id.as_str())
                        {}
                    }
                }
                let (mut c2, seen) = b2.login(&sim).await;
                let ids: Vec<String> = seen
                    .iter()
                    .filter(|m| m.tag() == "message")
                    .filter_map(|m| attr(m, "id"))
                    .collect();
                assert_eq!(ids.len(), 100);
                for id in &ids {
                    c2.send(&ack(id, &a1.jid)).await;
                }
                // Settled before the next round logs in again.
                while sim.queued(&b2.jid) > 0 {
                    tokio::task::yield_now().await;
                }
            })
        });
    });

    let bob0 = pn(bob, 0);
    rt.block_on(a1.start_session(&mut ca, &bob0));
    c.bench_function(
        "message to the phone: encrypt, route, phone decrypts, receipt",
        |b| {
            b.iter(|| {
                n += 1;
                let id = format!("P{n}");
                rt.block_on(async {
                    let enc = a1.encrypt(&bob0, &text("bench")).await;
                    ca.send(&message(&id, &to_bob, vec![(bob0.clone(), enc)]))
                        .await;
                    loop {
                        let r = next_tag(&mut ca, "receipt").await;
                        if attr(&r, "id").as_deref() == Some(id.as_str()) {
                            break r;
                        }
                    }
                })
            });
        },
    );
}

criterion_group!(benches, bench, bench_messaging);
criterion_main!(benches);
