//! A damaged store: after a conversation (1:1 and in a group), every stored row except
//! the credentials is overwritten, half with bytes that fail the store's checksum and
//! half with well-sealed garbage. The client started again from that store must not
//! panic, must log in, and must get back to sending and receiving both ways: damaged
//! sessions and sender keys heal through retry receipts and fresh key bundles.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wa::prelude::*;
use wa_sim::{Sim, SimConfig};

const ME: &str = "15550000001";
const FRIEND: &str = "15550000002";
const OTHER: &str = "15550000003";

/// Waits until `phone`'s simulated phone has decrypted a message with text `want`.
async fn phone_got(sim: &Sim, phone: &str, want: &str) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while !sim
            .phone_inbox(phone)
            .iter()
            .any(|m| message_text(&m.message) == Some(want))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{phone}'s phone never got {want:?}"));
}

/// Opens the store at `path` for `ME` and connects with the credentials in it.
async fn reconnect(sim: &Sim, path: &std::path::Path) -> WaSocket {
    let mut config = WaConfig::new(wa::sqlite_store(path, "me").await.unwrap());
    config.socket.ws_url = sim.ws_url();
    config.socket.noise_root = sim.root_public_key();
    config.media.https = false;
    let sock = make_wa_socket(config).unwrap();
    common::until_open(
        &sock,
        Duration::from_secs(30),
        "logged in with the stored credentials",
    )
    .await;
    sock
}

/// Overwrites every row of `account` but its credentials (role 1): every other row gets
/// bytes that fail the checksum, the rest a well-sealed payload of garbage. Returns how
/// many rows were changed.
fn rot(path: &std::path::Path, account: &str) -> usize {
    let db = rusqlite::Connection::open(path).unwrap();
    let rows: Vec<(i64, String, String)> = {
        let mut q = db
            .prepare("SELECT role, scope, key FROM items WHERE account = ?1 AND role <> 1")
            .unwrap();
        q.query_map([account], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    for (i, (role, scope, key)) in rows.iter().enumerate() {
        let garbage: Vec<u8> = (0..40u8).map(|b| b.wrapping_mul(37) ^ i as u8).collect();
        let value = if i % 2 == 0 {
            let mut v = wa_store::seal(&garbage).to_vec();
            v[1] ^= 0xff; // the checksum no longer matches
            v
        } else {
            wa_store::seal(&garbage).to_vec()
        };
        db.execute(
            "UPDATE items SET value = ?1 WHERE account = ?2 AND role = ?3 AND scope = ?4 \
             AND key = ?5",
            rusqlite::params![value, account, role, scope, key],
        )
        .unwrap();
    }
    rows.len()
}

#[test]
fn a_client_recovers_from_a_damaged_store() {
    let panics = common::count_panics();
    common::run_with_big_stacks(move || damaged_store(panics));
}

async fn damaged_store(panics: &'static AtomicUsize) {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    for p in [ME, FRIEND, OTHER] {
        sim.add_account(p).await;
    }
    let db = common::TempDb::new("rot");
    let path = db.0.clone();
    let store = wa::sqlite_store(&path, "me").await.unwrap();
    let sock = common::linked_with(&sim, ME, |c| c.socket.store = store).await;
    let me = sock.me().await.unwrap();
    let (me_user, friend) = (Jid::pn(ME), Jid::pn(FRIEND));

    // A conversation: both ways 1:1, and both ways in a group.
    let mut events = sock.events();
    let id = sim
        .phone_send(FRIEND, &me_user, common::text("before 1"))
        .await
        .unwrap();
    common::received(&mut events, &id).await;
    sock.send_message(&friend, MessageContent::text("before 2"))
        .await
        .unwrap();
    phone_got(&sim, FRIEND, "before 2").await;
    let group = sim
        .phone_create_group(FRIEND, "rot", &[me_user.clone(), Jid::pn(OTHER)])
        .unwrap();
    let id = sim
        .phone_send(FRIEND, &group, common::text("before 3"))
        .await
        .unwrap();
    common::received(&mut events, &id).await;
    sock.send_message(&group, MessageContent::text("before 4"))
        .await
        .unwrap();
    phone_got(&sim, FRIEND, "before 4").await;
    sock.close().await;
    drop((sock, events));

    let rotted = rot(&path, "me");
    assert!(rotted >= 10, "only {rotted} rows to damage");

    // Started again: it logs in with the intact credentials.
    let sock = reconnect(&sim, &path).await;
    assert_eq!(sock.me().await.as_ref(), Some(&me));
    let mut events = sock.events();

    // Receiving heals: the damaged session and sender key give way to new ones.
    let id = sim
        .phone_send(FRIEND, &me_user, common::text("after 1"))
        .await
        .unwrap();
    let got = common::received(&mut events, &id).await;
    assert_eq!(message_text(&got.message), Some("after 1"));
    let id = sim
        .phone_send(FRIEND, &group, common::text("after 2"))
        .await
        .unwrap();
    let got = common::received(&mut events, &id).await;
    assert_eq!(message_text(&got.message), Some("after 2"));

    // Sending works, 1:1 and to the group.
    sock.send_message(&friend, MessageContent::text("after 3"))
        .await
        .unwrap();
    phone_got(&sim, FRIEND, "after 3").await;
    sock.send_message(&group, MessageContent::text("after 4"))
        .await
        .unwrap();
    phone_got(&sim, FRIEND, "after 4").await;
    phone_got(&sim, OTHER, "after 4").await;

    assert_eq!(panics.load(Ordering::SeqCst), 0, "no panic anywhere");
    sock.close().await;
}
