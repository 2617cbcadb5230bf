//! Delivery receipts through wa-sim. With `MessengerConfig::inactive_receipts_when_offline`
//! a companion that has not announced itself online answers with `type="inactive"`; once
//! it sent `<presence type="available">` its receipts are plain deliveries, and a new
//! connection starts offline again.

mod common;

use common::*;
use wa_binary::{Jid, Node};
use wa_messages::{MessageContent, MessengerConfig, ReceiptType};
use wa_sim::{Sim, SimConfig};
use wa_testkit::{next_receipt, next_upsert};
use wa_types::ConnectionState;

const A: &str = "15550000011";
const B: &str = "15550000012";

fn presence(kind: &'static str) -> Node {
    Node::builder("presence")
        .attr("type", kind)
        .attr("name", "Bob")
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_are_inactive_until_the_companion_is_online() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mc = MessengerConfig {
        inactive_receipts_when_offline: true,
        ..MessengerConfig::default()
    };
    let mut b1 = link_with(&sim, B, memory_store("b1"), mc).await;
    let b1_jid = b1.jid.clone();
    let from_b1 = move |u: &wa_types::MessageUpdate| {
        u.device.user == b1_jid.user && u.device.device == b1_jid.device
    };

    // Offline: B's companion confirms delivery, as inactive.
    assert!(!b1.socket.is_online());
    let send = |text: &'static str| {
        let m = a1.messenger.clone();
        async move {
            m.send_message(&Jid::pn(B), MessageContent::text(text))
                .await
                .unwrap()
        }
    };
    let k1 = send("one").await;
    next_upsert(&mut b1.events, |m| m.key.id == k1.id).await;
    let r = next_receipt(&mut a1.events, |u| u.key.id == k1.id && from_b1(u)).await;
    assert_eq!(r.receipt, ReceiptType::Inactive);

    // Online: plain delivery receipts.
    b1.socket.send_node(&presence("available")).await.unwrap();
    assert!(b1.socket.is_online());
    let k2 = send("two").await;
    next_upsert(&mut b1.events, |m| m.key.id == k2.id).await;
    let r = next_receipt(&mut a1.events, |u| u.key.id == k2.id && from_b1(u)).await;
    assert_eq!(r.receipt, ReceiptType::Delivered);

    // Unavailable again: inactive again.
    b1.socket.send_node(&presence("unavailable")).await.unwrap();
    assert!(!b1.socket.is_online());
    let k3 = send("three").await;
    next_upsert(&mut b1.events, |m| m.key.id == k3.id).await;
    let r = next_receipt(&mut a1.events, |u| u.key.id == k3.id && from_b1(u)).await;
    assert_eq!(r.receipt, ReceiptType::Inactive);

    // A new connection starts offline, whatever the last one announced.
    b1.socket.send_node(&presence("available")).await.unwrap();
    assert!(b1.socket.is_online());
    let mut state = b1.socket.state_watch();
    b1.socket.reset_connection();
    state
        .wait_for(|s| *s != ConnectionState::Open)
        .await
        .unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        state.wait_for(|s| *s == ConnectionState::Open),
    )
    .await
    .expect("reconnected in time")
    .unwrap();
    assert!(!b1.socket.is_online());
    let k4 = send("four").await;
    next_upsert(&mut b1.events, |m| m.key.id == k4.id).await;
    let r = next_receipt(&mut a1.events, |u| u.key.id == k4.id && from_b1(u)).await;
    assert_eq!(r.receipt, ReceiptType::Inactive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_receipts_are_active_while_offline() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    assert!(!b1.socket.is_online());
    let k = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("hi"))
        .await
        .unwrap();
    next_upsert(&mut b1.events, |m| m.key.id == k.id).await;
    let dev = b1.jid.clone();
    let r = next_receipt(&mut a1.events, |u| {
        u.key.id == k.id && u.device.user == dev.user && u.device.device == dev.device
    })
    .await;
    assert_eq!(r.receipt, ReceiptType::Delivered);
}
