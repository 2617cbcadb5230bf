//! Trusted-contact privacy tokens end to end through wa-sim: a send issues our token to
//! the contact once per bucket, the contact's client stores the token from the server's
//! notification and attaches it to its own 1:1 messages, and a restricted account can
//! only reach contacts whose token it holds (error 463 otherwise), also after a restart
//! from SQLite.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wa_binary::Jid;
use wa_messages::{Error, MessageContent};
use wa_sim::{Sim, SimConfig};
use wa_socket::Socket;
use wa_store::PrivacyTokenStore;
use wa_testkit::{next_event, next_upsert};

const A: &str = "15550000001";
const B: &str = "15550000002";

/// Waits until `socket` holds a usable privacy token from `from` equal to `want`.
async fn token_arrives(socket: &Socket, from: &Jid, want: &[u8]) {
    let deadline = Instant::now() + WAIT;
    loop {
        if socket.privacy_token(from).await.as_deref() == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "no privacy token from {from}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `c` recorded having issued its token to `to`.
async fn issuance_recorded(c: &Client, to: &Jid) {
    let key = wa_socket::privacy_token::storage_jid(&c.store, to).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let r = c.store.get_privacy_token(&key).await.unwrap();
        if r.is_some_and(|r| r.sender_timestamp > 0) {
            return;
        }
        assert!(Instant::now() < deadline, "issuance to {to} not recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_account_reaches_only_contacts_whose_token_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a1.db");
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let a1 = link(&sim, A, sqlite_store(&path, "a1").await).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let (a, b) = (Jid::pn(A), Jid::pn(B));
    sim.restrict_account(A, true);

    // No token from B yet: refused. The message is not sent again, but A issues its
    // own token to B in repair, as WhatsApp Web does after a 463.
    let err = a1
        .messenger
        .send_message(&b, MessageContent::text("hello?"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Nack(463)), "{err:?}");
    wait_until("A issued its token to B after the refusal", || {
        sim.privacy_token(A, B).is_some()
    })
    .await;
    assert_eq!(sim.privacy_tokens_issued(), 1);

    // B writes first: B's client issues its token to A, which A's client stores.
    let k = b1
        .messenger
        .send_message(&a, MessageContent::text("hi A"))
        .await
        .unwrap();
    let mut a1 = a1;
    next_upsert(&mut a1.events, |m| m.key.id == k.id).await;
    wait_until("B issued its token to A", || {
        sim.privacy_token(B, A).is_some()
    })
    .await;
    let (b_token, _) = sim.privacy_token(B, A).unwrap();
    token_arrives(&a1.socket, &b, &b_token).await;
    issuance_recorded(&b1, &a).await;

    // Now A's message carries B's token and passes; B holds A's token too.
    let k = a1
        .messenger
        .send_message(&b, MessageContent::text("hello B"))
        .await
        .unwrap();
    let got = next_upsert(&mut b1.events, |m| m.key.id == k.id).await;
    assert_eq!(text_of(&got.message), Some("hello B"));
    let a_token = {
        wait_until("A issued its token to B", || {
            sim.privacy_token(A, B).is_some()
        })
        .await;
        sim.privacy_token(A, B).unwrap().0
    };
    token_arrives(&b1.socket, &a, &a_token).await;
    issuance_recorded(&a1, &b).await;

    // Within the bucket neither side issues again.
    for i in 0..2 {
        exchange(&b1, &mut a1, A, &format!("b{i}")).await;
        exchange(&a1, &mut b1, B, &format!("a{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.privacy_tokens_issued(), 2);

    // The token survives a restart from the database file.
    let a_jid = a1.jid.clone();
    a1.socket.close().await;
    drop(a1);
    wait_until("a1 offline", || !sim.is_online(&a_jid)).await;
    let a1 = restart(&sim, sqlite_store(&path, "a1").await, a_jid).await;
    let k = a1
        .messenger
        .send_message(&b, MessageContent::text("after restart"))
        .await
        .unwrap();
    let got = next_upsert(&mut b1.events, |m| m.key.id == k.id).await;
    assert_eq!(text_of(&got.message), Some("after restart"));
    assert_eq!(sim.privacy_tokens_issued(), 2);

    // The server's AB props were fetched after the login (WhatsApp Web's defaults: tokens
    // ride on 1:1 messages). When prop 10518 turns that off, the restricted account's
    // message goes without B's token and is refused; turned on again, it passes.
    wait_until("props fetched", || a1.socket.server_props().hash.is_some()).await;
    assert!(a1.socket.server_props().privacy_token_on_1to1);
    sim.set_server_prop(wa_socket::PROP_PRIVACY_TOKEN_ON_1TO1, Some("false"));
    let props = a1.socket.fetch_server_props().await.unwrap();
    assert!(!props.privacy_token_on_1to1);
    assert_eq!(props.get("10518"), Some("false"));
    let err = a1
        .messenger
        .send_message(&b, MessageContent::text("without the token"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Nack(463)), "{err:?}");
    sim.set_server_prop(wa_socket::PROP_PRIVACY_TOKEN_ON_1TO1, None);
    assert!(
        a1.socket
            .fetch_server_props()
            .await
            .unwrap()
            .privacy_token_on_1to1
    );
    a1.messenger
        .send_message(&b, MessageContent::text("with it again"))
        .await
        .unwrap();
}

/// The next reach-out timelock `events` reports.
async fn next_timelock(
    events: &mut tokio::sync::broadcast::Receiver<wa_types::Event>,
) -> wa_types::ReachoutTimelock {
    next_event(events, |e| match e {
        wa_types::Event::ReachoutTimelock(t) => Some(t),
        _ => None,
    })
    .await
}

/// A reach-out timelock restricts the account while it holds: a message starting a
/// chat is refused with 463 (the caller gets the error, the message is not retried),
/// and once it is lifted the same send passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reachout_timelock_refuses_new_chats_until_lifted() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;

    sim.set_reachout_timelock(A, None, "DEFAULT");
    assert!(next_timelock(&mut a1.events).await.active);
    let err = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("hello?"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Nack(463)), "{err:?}");

    sim.lift_reachout_timelock(A);
    assert!(!next_timelock(&mut a1.events).await.active);
    let got = exchange(&a1, &mut b1, B, "hello B").await;
    assert_eq!(text_of(&got.message), Some("hello B"));
}
