//! A client that stops reading (conn.rs `Outbox`): the server keeps reading its frames
//! and serving everyone else, queued stanzas reach its writer one delivery window at a
//! time, and a client that never reads is disconnected at the outbox bound.

mod common;

use std::time::Duration;

use common::party::*;
use common::*;
use wa_binary::{Jid, Node};
use wa_sim::{Sim, SimConfig};

const ALICE: &str = "15550000001";
const BOB: &str = "15550000002";
const CAROL: &str = "15550000003";

/// Most queued stanzas handed to a connection's writer at a time (conn.rs
/// `DELIVERY_WINDOW`).
const DELIVERY_WINDOW: usize = 256;
/// Most frames waiting for a connection's writer before the client is disconnected
/// (conn.rs `MAX_OUTBOX`).
const MAX_OUTBOX: usize = 65_536;

/// A simulator with one linked device each for Alice (the sender), X (Bob) and Y
/// (Carol); Alice is logged in.
async fn setup() -> (Sim, Dev, Dev, Dev, Client) {
    let sim = Sim::start(SimConfig::default()).await.expect("start");
    for phone in [ALICE, BOB, CAROL] {
        sim.add_account(phone).await;
    }
    let a1 = Dev::link(&sim, ALICE).await;
    let x = Dev::link(&sim, BOB).await;
    let y = Dev::link(&sim, CAROL).await;
    let (ca, _) = a1.login(&sim).await;
    (sim, a1, x, y, ca)
}

/// An `<enc>` of `len` bytes (routing does not look inside).
fn enc(tag: u8, len: usize) -> Node {
    Node::builder("enc")
        .attr("v", "2")
        .attr("type", "msg")
        .bytes(vec![tag; len])
        .build()
}

/// Sends one message per id from `c` to `to`, then waits for the server ack of the last.
async fn send_all(c: &mut Client, to: &Jid, ids: &[String], body: impl Fn(usize) -> Node) {
    for (i, id) in ids.iter().enumerate() {
        c.send(&message(id, &to.to_non_ad(), vec![(to.clone(), body(i))]))
            .await;
    }
    let last = ids.last().expect("some ids");
    loop {
        let a = next_tag(c, "ack").await;
        if attr(&a, "id").as_deref() == Some(last.as_str()) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_up_neither_the_server_nor_other_clients() {
    let (sim, a1, x, y, mut ca) = setup().await;
    // From here on X reads nothing until the end of the test.
    let (mut cx, _) = x.login(&sim).await;
    let (mut cy, _) = y.login(&sim).await;

    // 200 messages of 64 KiB (13 MiB, more than the socket buffers between the server and
    // X can hold), then 1,000 small ones.
    let (big, small) = (200, 1000);
    let ids: Vec<String> = (0..big + small).map(|i| format!("X{i:05}")).collect();
    send_all(&mut ca, &x.jid, &ids, |i| {
        if i < big { enc(1, 64 * 1024) } else { blob(2) }
    })
    .await;
    // Every message was routed (the server kept reading Alice) and waits for X's ack;
    // X's writer is stuck with part of one window, the rest waits in the device queue.
    assert_eq!(sim.queued(&x.jid), big + small);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pending = sim.outbox_len(&x.jid).expect("X is still online");
    assert!(pending > 0, "the socket buffers took everything: no stall");
    assert!(
        pending <= DELIVERY_WINDOW,
        "{pending} frames wait for X's writer"
    );

    // Another client is served at once, by Alice and by X (whose frames are still read).
    ca.send(&message(
        "Y-FROM-A",
        &Jid::pn(CAROL),
        vec![(y.jid.clone(), blob(3))],
    ))
    .await;
    let got = next_tag(&mut cy, "message").await;
    assert_eq!(attr(&got, "id").as_deref(), Some("Y-FROM-A"));
    assert_eq!(got.attr::<Jid>("from").unwrap(), a1.jid);
    cx.send(&message(
        "Y-FROM-X",
        &Jid::pn(CAROL),
        vec![(y.jid.clone(), blob(4))],
    ))
    .await;
    let got = next_tag(&mut cy, "message").await;
    assert_eq!(attr(&got, "id").as_deref(), Some("Y-FROM-X"));
    assert_eq!(got.attr::<Jid>("from").unwrap(), x.jid);

    // More for X: the device queue grows, X's outbox does not (beyond the window, it
    // holds only the server's ack of X's own message).
    let more: Vec<String> = (0..500).map(|i| format!("Z{i:05}")).collect();
    send_all(&mut ca, &x.jid, &more, |_| blob(5)).await;
    assert_eq!(sim.queued(&x.jid), big + small + more.len());
    let pending = sim.outbox_len(&x.jid).expect("X is still online");
    assert!(
        pending <= DELIVERY_WINDOW + 1,
        "{pending} frames wait for X's writer"
    );

    // Once X reads again it gets everything, in order, each once.
    let want: Vec<&String> = ids.iter().chain(&more).collect();
    let mut seen = Vec::with_capacity(want.len());
    while seen.len() < want.len() {
        let m = next_tag(&mut cx, "message").await;
        seen.push(attr(&m, "id").expect("message id"));
    }
    assert!(
        seen.iter().eq(want.iter().copied()),
        "out of order or repeated"
    );
    eventually(|| sim.outbox_len(&x.jid) == Some(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_at_the_outbox_bound() {
    let (sim, _a1, x, y, mut ca) = setup().await;
    let (mut cx, _) = x.login(&sim).await;
    let (mut cy, _) = y.login(&sim).await;

    // X sends pings and reads none of the answers. Answers are not windowed like queued
    // stanzas: they pile up in X's outbox until the bound, where X is disconnected.
    let ping = |n: u64| {
        iq(
            &format!("P{n}"),
            "get",
            "w:p",
            vec![Node::builder("ping").build()],
        )
    };
    let mut sent = 0u64;
    let mut most = 0;
    let flood = async {
        while sim.is_online(&x.jid) {
            for _ in 0..1000 {
                if cx.try_send(&ping(sent)).await.is_err() {
                    break;
                }
                sent += 1;
            }
            most = most.max(sim.outbox_len(&x.jid).unwrap_or(0));
            // The bound is a frame count; the socket buffers hold the rest.
            assert!(sent < 2_000_000, "X was never disconnected");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), flood)
        .await
        .expect("X is disconnected in time");
    assert!(most <= MAX_OUTBOX, "the outbox grew past its bound: {most}");
    assert!(
        most > MAX_OUTBOX / 2,
        "the outbox never came near its bound ({most}): disconnected for another reason"
    );

    // The server's side of X's socket is closed although X never read (the writer stuck
    // in a write is aborted): X's writes start failing.
    let closed = async {
        while cx.try_send(&ping(sent)).await.is_ok() {
            sent += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), closed)
        .await
        .expect("X's socket is closed");

    // Everyone else is still served.
    ca.send(&message(
        "AFTER",
        &Jid::pn(CAROL),
        vec![(y.jid.clone(), blob(3))],
    ))
    .await;
    let got = next_tag(&mut cy, "message").await;
    assert_eq!(attr(&got, "id").as_deref(), Some("AFTER"));
}
