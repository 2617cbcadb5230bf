//! Message routing, receipts, offline delivery, the phone as a Signal party and the
//! delivery faults, seen from raw clients (MSG_SPEC).

mod common;

use common::party::*;
use common::*;
use wa_binary::{Jid, Node, Server};
use wa_proto::e2e::{DeviceSentMessage, Message};
use wa_sim::{Fault, Sim, SimConfig};

const ALICE: &str = "15550000001";
const BOB: &str = "15550000002";

async fn sim() -> Sim {
    sim_with(SimConfig::default()).await
}

/// A simulator started with `config`, Alice and Bob registered.
async fn sim_with(config: SimConfig) -> Sim {
    let sim = Sim::start(config).await.expect("start");
    sim.add_account(ALICE).await;
    sim.add_account(BOB).await;
    sim
}

#[tokio::test]
async fn phone_bundle_is_served_consumed_and_replenished() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let (mut c, _) = a1.login(&sim).await;
    let bob0 = pn(BOB, 0);
    let before = sim.prekey_count(&bob0).expect("the phone has pre-keys");
    let first = a1.start_session(&mut c, &bob0).await;
    assert!(first.verify_signature());
    assert_eq!(first.identity_key, sim.account(BOB).unwrap().identity);
    assert_eq!(first.device_id, 0);
    let second = a1.start_session(&mut c, &bob0).await;
    let (k1, k2) = (first.pre_key.unwrap().0, second.pre_key.unwrap().0);
    assert_ne!(k1, k2, "a one-time pre-key is handed out once");
    assert_eq!(sim.prekey_count(&bob0), Some(before - 2));
    // Drain the phone's keys: it generates more instead of running out.
    for _ in 0..before {
        let b = a1.start_session(&mut c, &bob0).await;
        assert!(b.pre_key.is_some());
    }
    assert!(sim.prekey_count(&bob0).unwrap() >= 10);
}

#[tokio::test]
async fn one_to_one_fan_out_ack_receipts_and_offline_delivery() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let a2 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let b2 = Dev::link(&sim, BOB).await;
    let (mut ca1, _) = a1.login(&sim).await;
    let (mut ca2, _) = a2.login(&sim).await;
    let (mut cb1, _) = b1.login(&sim).await;
    let bob = Jid::pn(BOB);
    let id = "3EB0AAAA0000000001";
    ca1.send(&message(
        id,
        &bob,
        vec![
            (b1.jid.clone(), blob(1)),
            (b2.jid.clone(), blob(2)),
            (a2.jid.clone(), blob(3)),
            (pn(BOB, 40), blob(4)), // no such device: skipped
        ],
    ))
    .await;
    let server_ack = next_tag(&mut ca1, "ack").await;
    assert_eq!(attr(&server_ack, "class").as_deref(), Some("message"));
    assert_eq!(attr(&server_ack, "id").as_deref(), Some(id));
    assert_eq!(server_ack.attr::<Jid>("from").unwrap(), bob);
    assert!(attr(&server_ack, "t").is_some());
    assert!(attr(&server_ack, "error").is_none());

    let got = next_tag(&mut cb1, "message").await;
    assert_eq!(got.attr::<Jid>("from").unwrap(), a1.jid);
    assert_eq!(attr(&got, "id").as_deref(), Some(id));
    assert_eq!(attr(&got, "type").as_deref(), Some("text"));
    assert!(attr(&got, "offline").is_none());
    assert!(attr(&got, "recipient").is_none());
    assert_eq!(
        got.child("enc").unwrap().content_bytes(),
        Some(&[1u8; 16][..])
    );
    let own = next_tag(&mut ca2, "message").await;
    assert_eq!(own.attr::<Jid>("recipient").unwrap(), bob);
    assert_eq!(
        own.child("enc").unwrap().content_bytes(),
        Some(&[3u8; 16][..])
    );
    assert_eq!(sim.queued(&b2.jid), 1);
    assert_eq!(sim.queued(&b1.jid), 1);

    // b1's delivery receipt settles its queue and reaches every device of Alice.
    cb1.send(&receipt(id, &a1.jid, None)).await;
    let rack = next_tag(&mut cb1, "ack").await;
    assert_eq!(attr(&rack, "class").as_deref(), Some("receipt"));
    assert_eq!(attr(&rack, "id").as_deref(), Some(id));
    for c in [&mut ca1, &mut ca2] {
        let r = next_tag(c, "receipt").await;
        assert_eq!(r.attr::<Jid>("from").unwrap(), b1.jid);
        assert_eq!(attr(&r, "id").as_deref(), Some(id));
        assert!(attr(&r, "type").is_none());
        c.send(&ack("receipt", id, &b1.jid)).await;
    }
    eventually(|| sim.queued(&b1.jid) == 0 && sim.queued(&a1.jid) == 0).await;
    eventually(|| sim.queued(&a2.jid) <= 1).await; // a2 still holds the own-device copy
    ca2.send(&ack("message", id, &a1.jid)).await;
    eventually(|| sim.queued(&a2.jid) == 0).await;

    // b2 was offline: the message waits for it, with a preview and a count.
    let (mut cb2, seen) = b2.login(&sim).await;
    let preview = seen
        .iter()
        .find_map(|n| n.child("offline_preview"))
        .expect("offline_preview");
    assert_eq!(attr(preview, "count").as_deref(), Some("1"));
    assert_eq!(attr(preview, "message").as_deref(), Some("1"));
    let delivered: Vec<&Node> = seen.iter().filter(|n| n.tag() == "message").collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(attr(delivered[0], "offline").as_deref(), Some("1"));
    assert_eq!(
        delivered[0].child("enc").unwrap().content_bytes(),
        Some(&[2u8; 16][..])
    );
    let last = seen
        .last()
        .unwrap()
        .child("offline")
        .expect("offline marker");
    assert_eq!(attr(last, "count").as_deref(), Some("1"));
    // A read receipt from b2 goes to Alice's devices with its type.
    cb2.send(&receipt(id, &a1.jid, Some("read"))).await;
    let r = next_tag(&mut ca1, "receipt").await;
    assert_eq!(r.attr::<Jid>("from").unwrap(), b2.jid);
    assert_eq!(attr(&r, "type").as_deref(), Some("read"));
    eventually(|| sim.queued(&b2.jid) == 0).await;
}

#[tokio::test]
async fn unacked_stanza_is_redelivered_at_next_login() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let (mut ca1, _) = a1.login(&sim).await;
    let (mut cb1, _) = b1.login(&sim).await;
    ca1.send(&message(
        "M1",
        &Jid::pn(BOB),
        vec![(b1.jid.clone(), blob(9))],
    ))
    .await;
    let live = next_tag(&mut cb1, "message").await;
    assert!(attr(&live, "offline").is_none());
    drop(cb1); // gone before acking
    eventually(|| !sim.is_online(&b1.jid)).await;
    let (mut cb1, seen) = b1.login(&sim).await;
    let again: Vec<&Node> = seen.iter().filter(|n| n.tag() == "message").collect();
    assert_eq!(again.len(), 1);
    assert_eq!(attr(again[0], "id").as_deref(), Some("M1"));
    assert_eq!(attr(again[0], "offline").as_deref(), Some("1"));
    cb1.send(&ack("message", "M1", &a1.jid)).await;
    eventually(|| sim.queued(&b1.jid) == 0).await;
    drop(cb1);
    eventually(|| !sim.is_online(&b1.jid)).await;
    let (_cb1, seen) = b1.login(&sim).await;
    assert!(seen.iter().all(|n| n.tag() != "message"));
    let marker = seen.last().unwrap().child("offline").unwrap();
    assert_eq!(attr(marker, "count").as_deref(), Some("0"));
}

#[tokio::test]
async fn retry_receipt_goes_to_the_named_device_only_with_its_children() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let a2 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let (mut ca1, _) = a1.login(&sim).await;
    let (mut ca2, _) = a2.login(&sim).await;
    let (mut cb1, _) = b1.login(&sim).await;
    let retry = Node::builder("receipt")
        .attr("id", "R1")
        .attr("to", a1.jid.clone())
        .attr("type", "retry")
        .children([
            Node::builder("retry")
                .attr("count", "1")
                .attr("id", "R1")
                .attr("v", "1")
                .build(),
            Node::builder("registration")
                .bytes(vec![0, 0, 1, 2])
                .build(),
        ])
        .build();
    cb1.send(&retry).await;
    let r = next_tag(&mut ca1, "receipt").await;
    assert_eq!(attr(&r, "type").as_deref(), Some("retry"));
    assert_eq!(
        r.child("retry").and_then(|n| attr(n, "count")).as_deref(),
        Some("1")
    );
    assert_eq!(
        r.child("registration").unwrap().content_bytes(),
        Some(&[0u8, 0, 1, 2][..])
    );
    assert_quiet(&mut ca2, "receipt").await;
}

#[tokio::test]
async fn malformed_stanzas_get_error_acks_or_are_ignored() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let (mut c, _) = a1.login(&sim).await;
    // No id.
    c.send(&Node::builder("message").attr("to", Jid::pn(BOB)).build())
        .await;
    let a = next_tag(&mut c, "ack").await;
    assert_eq!(attr(&a, "error").as_deref(), Some("400"));
    // Unknown user.
    c.send(&message("X1", &Jid::pn("15559999999"), vec![]))
        .await;
    let a = next_tag(&mut c, "ack").await;
    assert_eq!(attr(&a, "error").as_deref(), Some("404"));
    // Junk: receipts without ids, acks of nothing, odd children.
    c.send(&Node::builder("receipt").build()).await;
    c.send(&Node::builder("ack").attr("class", "message").build())
        .await;
    c.send(
        &Node::builder("message")
            .attr("id", "X2")
            .attr("to", Jid::pn(BOB))
            .children([Node::builder("participants")
                .children([Node::builder("to").attr("jid", "nonsense").build()])
                .build()])
            .build(),
    )
    .await;
    let a = next_tag(&mut c, "ack").await;
    assert_eq!(attr(&a, "id").as_deref(), Some("X2"));
    // Still serving.
    let pong = c.query(iq("p1", "get", "w:p", vec![])).await;
    assert_eq!(attr(&pong, "type").as_deref(), Some("result"));
}

#[tokio::test]
async fn phone_decrypts_records_and_acknowledges() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let (mut c, _) = a1.login(&sim).await;
    let bob0 = pn(BOB, 0);
    let alice0 = pn(ALICE, 0);
    a1.start_session(&mut c, &bob0).await;
    a1.start_session(&mut c, &alice0).await;
    // To Bob, with the DeviceSentMessage copy to Alice's own phone.
    let dsm = Message {
        device_sent_message: Some(Box::new(DeviceSentMessage {
            destination_jid: Some(Jid::pn(BOB).to_string()),
            message: Some(Box::new(text("hello bob"))),
            ..Default::default()
        })),
        ..Default::default()
    };
    let to_bob = a1.encrypt(&bob0, &text("hello bob")).await;
    let to_own = a1.encrypt(&alice0, &dsm).await;
    assert_eq!(attr(&to_bob, "type").as_deref(), Some("pkmsg"));
    c.send(&message(
        "P1",
        &Jid::pn(BOB),
        vec![(bob0.clone(), to_bob), (alice0.clone(), to_own)],
    ))
    .await;
    // Bob's phone and Alice's phone both acknowledge.
    let mut from = Vec::new();
    for _ in 0..2 {
        let r = next_tag(&mut c, "receipt").await;
        assert_eq!(attr(&r, "id").as_deref(), Some("P1"));
        assert_ne!(attr(&r, "type").as_deref(), Some("retry"));
        from.push(r.attr::<Jid>("from").unwrap());
    }
    from.sort();
    assert_eq!(from, vec![Jid::pn(ALICE), Jid::pn(BOB)]);
    let inbox = sim.phone_inbox(BOB);
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].from, a1.jid);
    assert_eq!(inbox[0].chat, Jid::pn(ALICE));
    assert_eq!(inbox[0].id, "P1");
    assert_eq!(inbox[0].message.conversation.as_deref(), Some("hello bob"));
    // Bob's phone reads it: a1 gets the read receipt from the phone.
    sim.phone_mark_read(BOB, &inbox[0]).unwrap();
    let r = loop {
        let r = next_tag(&mut c, "receipt").await;
        if attr(&r, "type").as_deref() == Some("read") {
            break r;
        }
    };
    assert_eq!(r.attr::<Jid>("from").unwrap(), Jid::pn(BOB));
    assert_eq!(attr(&r, "id").as_deref(), Some("P1"));
    let own = sim.phone_inbox(ALICE);
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].chat, Jid::pn(BOB));
    assert_eq!(own[0].message.conversation.as_deref(), Some("hello bob"));

    // A second message on the same session is a `msg`.
    let m2 = a1.encrypt(&bob0, &text("again")).await;
    assert_eq!(attr(&m2, "type").as_deref(), Some("pkmsg")); // no reply from Bob yet
    c.send(&message("P2", &Jid::pn(BOB), vec![(bob0.clone(), m2)]))
        .await;
    next_tag(&mut c, "receipt").await;
    eventually(|| sim.phone_inbox(BOB).len() == 2).await;

    // Garbage to the phone gets a retry receipt to the sending device.
    c.send(&message("P3", &Jid::pn(BOB), vec![(bob0.clone(), blob(7))]))
        .await;
    let r = loop {
        let r = next_tag(&mut c, "receipt").await;
        if attr(&r, "id").as_deref() == Some("P3") {
            break r;
        }
    };
    assert_eq!(attr(&r, "type").as_deref(), Some("retry"));
    assert!(r.child("retry").is_some() && r.child("registration").is_some());
    assert_eq!(sim.phone_inbox(BOB).len(), 2);
}

/// With several phone workers, phones decrypt in parallel but each phone still gets its
/// stanzas in the order they were sent: every message below is sent without waiting for
/// the one before, to four phones spread over three workers (`route::tests` checks
/// that these numbers do not share one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_on_several_workers_keep_each_phones_order() {
    const EACH: usize = 30;
    let sim = Sim::start(SimConfig {
        phone_workers: 3,
        ..SimConfig::default()
    })
    .await
    .expect("start");
    sim.add_account(ALICE).await;
    let phones = ["15550000011", "15550000012", "15550000013", "15550000014"];
    for p in phones {
        sim.add_account(p).await;
    }
    let a1 = Dev::link(&sim, ALICE).await;
    let (mut c, _) = a1.login(&sim).await;
    for p in phones {
        a1.start_session(&mut c, &pn(p, 0)).await;
    }
    for i in 0..EACH {
        for p in phones {
            let to = pn(p, 0);
            let enc = a1.encrypt(&to, &text(&format!("{i}"))).await;
            c.send(&message(&format!("{p}-{i}"), &Jid::pn(p), vec![(to, enc)]))
                .await;
        }
    }
    for p in phones {
        eventually(|| sim.phone_inbox(p).len() == EACH).await;
        let texts: Vec<String> = sim
            .phone_inbox(p)
            .iter()
            .map(|m| m.message.conversation.clone().unwrap_or_default())
            .collect();
        let want: Vec<String> = (0..EACH).map(|i| i.to_string()).collect();
        assert_eq!(texts, want, "phone {p}");
    }
}

/// A phone keeps the last `phone_inbox` messages it decrypted, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_keeps_the_configured_number_of_messages() {
    const KEPT: usize = 4;
    let sim = sim_with(SimConfig {
        phone_inbox: KEPT,
        ..SimConfig::default()
    })
    .await;
    let a1 = Dev::link(&sim, ALICE).await;
    let (mut c, _) = a1.login(&sim).await;
    let to = pn(BOB, 0);
    a1.start_session(&mut c, &to).await;
    for i in 0..10 {
        let enc = a1.encrypt(&to, &text(&format!("{i}"))).await;
        c.send(&message(
            &format!("kept-{i}"),
            &Jid::pn(BOB),
            vec![(to.clone(), enc)],
        ))
        .await;
    }
    let last = || {
        sim.phone_inbox(BOB)
            .last()
            .is_some_and(|m| m.message.conversation.as_deref() == Some("9"))
    };
    eventually(last).await;
    let texts: Vec<String> = sim
        .phone_inbox(BOB)
        .iter()
        .map(|m| m.message.conversation.clone().unwrap_or_default())
        .collect();
    assert_eq!(texts, ["6", "7", "8", "9"]);
}

#[tokio::test]
async fn phone_send_reaches_peer_and_own_companions() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let (mut ca1, _) = a1.login(&sim).await;
    let (mut cb1, _) = b1.login(&sim).await;
    let id = sim
        .phone_send(BOB, &Jid::pn(ALICE), text("from the phone"))
        .await
        .expect("sent");
    let got = next_tag(&mut ca1, "message").await;
    assert_eq!(attr(&got, "id"), Some(id.clone()));
    assert_eq!(got.attr::<Jid>("from").unwrap(), Jid::pn(BOB));
    assert_eq!(
        attr(&got.child("enc").unwrap().clone(), "type").as_deref(),
        Some("pkmsg")
    );
    let m = a1.decrypt(&got).await;
    assert_eq!(m.conversation.as_deref(), Some("from the phone"));
    // Bob's companion gets the DeviceSentMessage copy.
    let own = next_tag(&mut cb1, "message").await;
    assert_eq!(own.attr::<Jid>("recipient").unwrap(), Jid::pn(ALICE));
    let m = b1.decrypt(&own).await;
    let dsm = m.device_sent_message.expect("a DeviceSentMessage");
    assert_eq!(
        dsm.destination_jid.as_deref(),
        Some(Jid::pn(ALICE).to_string().as_str())
    );
    assert_eq!(
        dsm.message.unwrap().conversation.as_deref(),
        Some("from the phone")
    );
    // A retry receipt goes to the phone only (it sent the message), which sends the
    // message again on a fresh session, same id.
    ca1.send(
        &Node::builder("receipt")
            .attr("id", id.clone())
            .attr("to", Jid::pn(BOB))
            .attr("type", "retry")
            .children([
                Node::builder("retry")
                    .attr("count", "1")
                    .attr("id", id.clone())
                    .attr("v", "1")
                    .build(),
                Node::builder("registration")
                    .bytes(a1.creds.registration_id.to_be_bytes().to_vec())
                    .build(),
            ])
            .build(),
    )
    .await;
    let again = next_tag(&mut ca1, "message").await;
    assert_eq!(attr(&again, "id"), Some(id.clone()));
    let enc = again.child("enc").unwrap();
    assert_eq!(attr(enc, "type").as_deref(), Some("pkmsg"));
    assert_eq!(attr(enc, "count").as_deref(), Some("1"));
    let m = a1.decrypt(&again).await;
    assert_eq!(m.conversation.as_deref(), Some("from the phone"));
    // Bob's companion saw the delivery receipts (Alice's phone acknowledged too), never
    // the retry.
    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(300);
    while let Ok(Some(n)) = tokio::time::timeout_at(until, cb1.recv()).await {
        assert!(n.tag() != "receipt" || attr(&n, "type").as_deref() != Some("retry"));
    }
    // Alice answers on the session the phone started: the phone decrypts a `msg`.
    let reply = a1.encrypt(&pn(BOB, 0), &text("hi phone")).await;
    assert_eq!(attr(&reply, "type").as_deref(), Some("msg"));
    ca1.send(&message("R1", &Jid::pn(BOB), vec![(pn(BOB, 0), reply)]))
        .await;
    let r = loop {
        let r = next_tag(&mut ca1, "receipt").await;
        if attr(&r, "id").as_deref() == Some("R1") {
            break r;
        }
    };
    assert!(attr(&r, "type").is_none());
    assert_eq!(
        sim.phone_inbox(BOB)[0].message.conversation.as_deref(),
        Some("hi phone")
    );
    assert!(
        sim.phone_send(BOB, &Jid::pn("15559999999"), text("x"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn fault_drop_after_deliver_then_offline_redelivery() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let (mut ca1, _) = a1.login(&sim).await;
    let (mut cb1, _) = b1.login(&sim).await;
    sim.fault(Fault::DropAfterDeliver(b1.jid.clone()));
    assert_eq!(sim.faults().drop_after_deliver, vec![b1.jid.clone()]);
    ca1.send(&message(
        "D1",
        &Jid::pn(BOB),
        vec![(b1.jid.clone(), blob(1))],
    ))
    .await;
    let got = next_tag(&mut cb1, "message").await;
    assert_eq!(attr(&got, "id").as_deref(), Some("D1"));
    // The connection is gone before the client could ack.
    let rest = cb1.drain().await;
    assert!(rest.iter().all(|n| n.tag() != "message"));
    assert!(sim.faults().drop_after_deliver.is_empty(), "one-shot");
    eventually(|| !sim.is_online(&b1.jid)).await;
    let (_cb1, seen) = b1.login(&sim).await;
    let again: Vec<&Node> = seen.iter().filter(|n| n.tag() == "message").collect();
    assert_eq!(again.len(), 1);
    assert_eq!(attr(again[0], "offline").as_deref(), Some("1"));
}

#[tokio::test]
async fn faults_duplicate_and_reorder_delivery() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let (mut ca1, _) = a1.login(&sim).await;
    for id in ["O1", "O2", "O3"] {
        ca1.send(&message(id, &Jid::pn(BOB), vec![(b1.jid.clone(), blob(1))]))
            .await;
        next_tag(&mut ca1, "ack").await;
    }
    sim.fault(Fault::ReorderOffline(true));
    let (cb1, seen) = b1.login(&sim).await;
    let ids: Vec<String> = seen
        .iter()
        .filter(|n| n.tag() == "message")
        .filter_map(|n| attr(n, "id"))
        .collect();
    assert_eq!(ids, ["O3", "O2", "O1"]);
    drop(cb1);
    eventually(|| !sim.is_online(&b1.jid)).await;
    sim.fault(Fault::ReorderOffline(false));
    sim.fault(Fault::DuplicateDelivery(true));
    let (mut cb1, seen) = b1.login(&sim).await;
    let ids: Vec<String> = seen
        .iter()
        .filter(|n| n.tag() == "message")
        .filter_map(|n| attr(n, "id"))
        .collect();
    assert_eq!(ids, ["O1", "O1", "O2", "O2", "O3", "O3"]);
    ca1.send(&message(
        "L1",
        &Jid::pn(BOB),
        vec![(b1.jid.clone(), blob(1))],
    ))
    .await;
    for _ in 0..2 {
        let n = next_tag(&mut cb1, "message").await;
        assert_eq!(attr(&n, "id").as_deref(), Some("L1"));
    }
}

#[tokio::test]
async fn status_broadcast_and_push_name() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let (mut ca1, _) = a1.login(&sim).await;
    let (mut cb1, _) = b1.login(&sim).await;
    ca1.send(
        &Node::builder("presence")
            .attr("type", "available")
            .attr("name", "Alice A.")
            .build(),
    )
    .await;
    // 1:1 messages now carry the sender's push name.
    ca1.send(&message(
        "N1",
        &Jid::pn(BOB),
        vec![(b1.jid.clone(), blob(1))],
    ))
    .await;
    let got = next_tag(&mut cb1, "message").await;
    assert_eq!(attr(&got, "notify").as_deref(), Some("Alice A."));
    // A status update reaches the devices named in it, as from status@broadcast.
    let status = Jid::status_broadcast();
    let skmsg = Node::builder("enc")
        .attr("v", "2")
        .attr("type", "skmsg")
        .bytes(vec![6; 10])
        .build();
    let stanza = Node::builder("message")
        .attr("id", "S1")
        .attr("to", status.clone())
        .attr("type", "text")
        .children([
            Node::builder("participants")
                .children([Node::builder("to")
                    .attr("jid", b1.jid.clone())
                    .children([blob(2)])
                    .build()])
                .build(),
            skmsg.clone(),
        ])
        .build();
    ca1.send(&stanza).await;
    let ack = loop {
        let a = next_tag(&mut ca1, "ack").await;
        if attr(&a, "id").as_deref() == Some("S1") {
            break a;
        }
    };
    assert_eq!(ack.attr::<Jid>("from").unwrap(), status);
    let got = loop {
        let n = next_tag(&mut cb1, "message").await;
        if attr(&n, "id").as_deref() == Some("S1") {
            break n;
        }
    };
    assert_eq!(got.attr::<Jid>("from").unwrap(), status);
    assert_eq!(got.attr::<Jid>("participant").unwrap(), a1.jid);
    assert_eq!(got.children().to_vec(), vec![blob(2), skmsg]);
    // Its receipt goes back to the author.
    cb1.send(
        &Node::builder("receipt")
            .attr("id", "S1")
            .attr("to", status.clone())
            .attr("participant", a1.jid.clone())
            .attr("type", "read")
            .build(),
    )
    .await;
    let r = next_tag(&mut ca1, "receipt").await;
    assert_eq!(r.attr::<Jid>("from").unwrap(), status);
    assert_eq!(r.attr::<Jid>("participant").unwrap(), b1.jid);
    assert_eq!(attr(&r, "type").as_deref(), Some("read"));
    eventually(|| sim.queued(&b1.jid) == 1).await; // N1 is still unacked
}

#[tokio::test]
async fn status_resend_reaches_only_the_named_participant() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let b2 = Dev::link(&sim, BOB).await;
    let (mut ca1, _) = a1.login(&sim).await;
    let (mut cb1, _) = b1.login(&sim).await;
    let (mut cb2, _) = b2.login(&sim).await;
    let status = Jid::status_broadcast();
    // An answer to b2's retry receipt: no <participants>, the device in `participant`.
    let resend = Node::builder("message")
        .attr("id", "S2")
        .attr("to", status.clone())
        .attr("participant", b2.jid.clone())
        .attr("type", "text")
        .children([blob(3)])
        .build();
    ca1.send(&resend).await;
    let got = loop {
        let n = next_tag(&mut cb2, "message").await;
        if attr(&n, "id").as_deref() == Some("S2") {
            break n;
        }
    };
    assert_eq!(got.attr::<Jid>("from").unwrap(), status);
    assert_eq!(got.attr::<Jid>("participant").unwrap(), a1.jid);
    assert_eq!(got.children().to_vec(), vec![blob(3)]);
    assert_quiet(&mut cb1, "message").await;
}

#[tokio::test]
async fn queues_are_bounded_oldest_dropped() {
    let sim = sim_with(SimConfig {
        queue_limit: 1000,
        ..SimConfig::default()
    })
    .await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let (mut ca1, _) = a1.login(&sim).await;
    let total = 1005;
    for i in 0..total {
        ca1.send(&message(
            &format!("Q{i}"),
            &Jid::pn(BOB),
            vec![(b1.jid.clone(), blob(1))],
        ))
        .await;
    }
    // The acks come in order: the last one means every message was routed.
    loop {
        let a = next_tag(&mut ca1, "ack").await;
        if attr(&a, "id").as_deref() == Some("Q1004") {
            break;
        }
    }
    assert_eq!(sim.queued(&b1.jid), 1000);
    assert_eq!(sim.dropped_stanzas(), 5);
    let (_cb1, seen) = b1.login(&sim).await;
    let ids: Vec<String> = seen
        .iter()
        .filter(|n| n.tag() == "message")
        .filter_map(|n| attr(n, "id"))
        .collect();
    assert_eq!(ids.len(), 1000);
    assert_eq!(ids.first().map(String::as_str), Some("Q5"));
    assert_eq!(ids.last().map(String::as_str), Some("Q1004"));
}

#[tokio::test]
async fn hostile_stanzas_do_not_hurt_the_server() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let (mut c, _) = a1.login(&sim).await;
    let long_id = "X".repeat(10_000);
    let many_to: Vec<(Jid, Node)> = (0..5000)
        .map(|i| (Jid::pn(format!("1555{i:07}")), blob(0)))
        .collect();
    let junk = vec![
        message(&long_id, &Jid::pn(BOB), vec![]),
        message("H1", &Jid::pn(BOB), many_to),
        message("H2", &Jid::group("1-2"), vec![]),
        message("H3", &Jid::status_broadcast(), vec![]),
        message("H4", &Jid::server_jid(), vec![]),
        Node::builder("message")
            .attr("id", "H5")
            .attr("to", Jid::pn(BOB))
            .children([Node::builder("participants").bytes(vec![1, 2, 3]).build()])
            .build(),
        Node::builder("receipt")
            .attr("id", "H6")
            .attr("to", Jid::group("1-2"))
            .build(),
        Node::builder("receipt")
            .attr("id", "H7")
            .attr("to", b1.jid.clone())
            .children([Node::builder("list")
                .children(
                    (0..5000).map(|i| Node::builder("item").attr("id", format!("I{i}")).build()),
                )
                .build()])
            .build(),
        Node::builder("ack")
            .attr("class", "receipt")
            .attr("id", "")
            .build(),
        Node::builder("presence")
            .attr("name", "N".repeat(100_000))
            .build(),
        iq("g1", "set", "w:g2", vec![]),
        iq("g2", "set", "w:g2", vec![Node::new("create")]),
        iq("g3", "get", "w:g2", vec![Node::new("participating")]),
        iq(
            "g4",
            "set",
            "w:g2",
            vec![
                Node::builder("leave")
                    .children([Node::new("group")])
                    .build(),
            ],
        ),
    ];
    for n in &junk {
        c.send(n).await;
    }
    let pong = c.query(iq("p1", "get", "w:p", vec![])).await;
    assert_eq!(attr(&pong, "type").as_deref(), Some("result"));
    // Of all that, b1 gets only the receipt addressed to it (H7).
    assert_eq!(sim.queued(&b1.jid), 1);
    let (_cb1, seen) = b1.login(&sim).await;
    let got: Vec<(&str, Option<String>)> = seen
        .iter()
        .filter(|n| attr(n, "offline").is_some())
        .map(|n| (n.tag(), attr(n, "id")))
        .collect();
    assert_eq!(got, vec![("receipt", Some("H7".to_owned()))]);
    assert!(sim.is_online(&a1.jid));
}

#[tokio::test]
async fn restart_keeps_groups_and_gives_the_phone_new_keys() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let group = sim
        .phone_create_group(BOB, "Kept", &[Jid::pn(ALICE)])
        .unwrap();
    let (mut c, _) = a1.login(&sim).await;
    let bob0 = pn(BOB, 0);
    let before = a1.start_session(&mut c, &bob0).await;
    drop(c);
    let json = sim.state().to_json();
    let addr = sim.local_addr();
    sim.shutdown().await;
    let state = wa_sim::SimState::from_json(&json).unwrap();
    let sim = Sim::start(SimConfig {
        addr,
        state,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(
        sim.group_members(&group),
        Some(vec![Jid::pn(BOB), Jid::pn(ALICE)])
    );
    // The phone lost its Signal state: a message on the old session gets a retry.
    let (mut c, _) = a1.login(&sim).await;
    let stale = a1.encrypt(&bob0, &text("old session")).await;
    c.send(&message("ST1", &Jid::pn(BOB), vec![(bob0.clone(), stale)]))
        .await;
    let r = next_tag(&mut c, "receipt").await;
    assert_eq!(attr(&r, "type").as_deref(), Some("retry"));
    let after = a1.start_session(&mut c, &bob0).await;
    assert_eq!(
        after.identity_key, before.identity_key,
        "same account identity"
    );
    assert_ne!(
        after.signed_pre_key, before.signed_pre_key,
        "new signed pre-key"
    );
    let fresh = a1.encrypt(&bob0, &text("new session")).await;
    c.send(&message("ST2", &Jid::pn(BOB), vec![(bob0, fresh)]))
        .await;
    let r = next_tag(&mut c, "receipt").await;
    assert_eq!(attr(&r, "id").as_deref(), Some("ST2"));
    assert!(attr(&r, "type").is_none());
}

#[tokio::test]
async fn a_replacing_login_takes_over_the_queue_without_duplicates() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let (mut ca1, _) = a1.login(&sim).await;
    let (mut old, _) = b1.login(&sim).await;
    ca1.send(&message(
        "T1",
        &Jid::pn(BOB),
        vec![(b1.jid.clone(), blob(1))],
    ))
    .await;
    next_tag(&mut old, "message").await;
    // A second login of b1 replaces the first and gets the unacked message again.
    let (mut new, seen) = b1.login(&sim).await;
    let ids: Vec<String> = seen
        .iter()
        .filter(|n| n.tag() == "message")
        .filter_map(|n| attr(n, "id"))
        .collect();
    assert_eq!(ids, ["T1"]);
    // While the old connection is still closing, a new message arrives: only the new
    // connection delivers it, and nothing comes twice.
    ca1.send(&message(
        "T2",
        &Jid::pn(BOB),
        vec![(b1.jid.clone(), blob(2))],
    ))
    .await;
    let got = next_tag(&mut new, "message").await;
    assert_eq!(attr(&got, "id").as_deref(), Some("T2"));
    assert_quiet(&mut new, "message").await;
    let end = old.drain().await;
    assert!(end.iter().any(|n| n.tag() == "stream:error"));
}

#[tokio::test]
async fn phone_note_to_self_reaches_own_companions_as_device_sent() {
    let sim = sim().await;
    let b1 = Dev::link(&sim, BOB).await;
    let (mut cb1, _) = b1.login(&sim).await;
    let id = sim
        .phone_send(BOB, &Jid::pn(BOB), text("note"))
        .await
        .unwrap();
    let got = next_tag(&mut cb1, "message").await;
    assert_eq!(attr(&got, "id"), Some(id));
    assert_eq!(got.children().len(), 1, "one copy, for this device");
    let dsm = b1
        .decrypt(&got)
        .await
        .device_sent_message
        .expect("a DeviceSentMessage");
    assert_eq!(
        dsm.destination_jid.as_deref(),
        Some("15550000002@s.whatsapp.net")
    );
    assert_eq!(dsm.message.unwrap().conversation.as_deref(), Some("note"));
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }

    fn node(&mut self, depth: u32, jids: &[Jid]) -> Node {
        const TAGS: &[&str] = &[
            "participants",
            "to",
            "enc",
            "list",
            "item",
            "create",
            "participant",
            "group",
            "invite",
            "subject",
            "description",
            "body",
            "add",
            "remove",
            "promote",
            "leave",
            "query",
            "locked",
            "announcement",
            "retry",
            "registration",
            "device-identity",
            "key",
            "user",
        ];
        const KEYS: &[&str] = &[
            "id",
            "to",
            "jid",
            "type",
            "participant",
            "class",
            "phash",
            "addressing_mode",
            "subject",
            "code",
            "edit",
            "count",
            "expiration",
            "delete",
            "request",
        ];
        const VALUES: &[&str] = &[
            "",
            "1",
            "x",
            "retry",
            "read",
            "skmsg",
            "pkmsg",
            "msg",
            "message",
            "receipt",
            "notification",
            "true",
            "-1",
            "99999999999",
            "interactive",
        ];
        let mut b = Node::builder(*self.pick(TAGS));
        for _ in 0..(self.next() % 5) {
            let key = *self.pick(KEYS);
            b = if self.next().is_multiple_of(2) {
                b.attr(key, self.pick(jids).clone())
            } else {
                b.attr(key, *self.pick(VALUES))
            };
        }
        if depth > 0 && !self.next().is_multiple_of(3) {
            let n = self.next() % 4;
            b.children(
                (0..n)
                    .map(|_| self.node(depth - 1, jids))
                    .collect::<Vec<_>>(),
            )
            .build()
        } else if self.next().is_multiple_of(2) {
            b.bytes(vec![
                (self.next() & 0xff) as u8;
                (self.next() % 40) as usize
            ])
            .build()
        } else {
            b.build()
        }
    }
}

#[tokio::test]
async fn random_stanzas_never_hurt_the_server() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let group = sim
        .phone_create_group(BOB, "Fuzz", &[Jid::pn(ALICE)])
        .unwrap();
    let (mut c, _) = a1.login(&sim).await;
    let jids = vec![
        Jid::pn(ALICE),
        Jid::pn(BOB),
        a1.jid.clone(),
        b1.jid.clone(),
        pn(BOB, 0),
        pn(BOB, 77),
        group,
        Jid::group("1-2"),
        Jid::status_broadcast(),
        Jid::server_jid(),
        Jid::new("", Server::Group),
        Jid::lid("100000000000001"),
    ];
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    for i in 0..2000u32 {
        let mut top = g.node(3, &jids);
        top.tag = (*g.pick(&[
            "message",
            "receipt",
            "ack",
            "iq",
            "presence",
            "notification",
        ]))
        .into();
        if top.tag() == "iq" {
            top.attrs
                .insert("xmlns", *g.pick(&["w:g2", "encrypt", "usync", "w:p"]));
            top.attrs.insert("type", *g.pick(&["get", "set"]));
            top.attrs.insert("id", format!("f{i}"));
        }
        c.send(&top).await;
    }
    let pong = c.query(iq("alive", "get", "w:p", vec![])).await;
    assert_eq!(attr(&pong, "type").as_deref(), Some("result"));
    // Others are still served too.
    let (_cb1, seen) = b1.login(&sim).await;
    assert!(seen.last().unwrap().child("offline").is_some());
}

fn typed_ack(id: &str, to: &Jid, ty: Option<&'static str>) -> Node {
    Node::builder("ack")
        .attr("class", "receipt")
        .attr("id", id.to_owned())
        .attr("to", to.clone())
        .attr_opt("type", ty)
        .build()
}

#[tokio::test]
async fn a_receipt_ack_settles_only_that_device_and_type() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let b2 = Dev::link(&sim, BOB).await;
    let (mut ca1, _) = a1.login(&sim).await;
    let (mut cb1, _) = b1.login(&sim).await;
    let (mut cb2, _) = b2.login(&sim).await;
    ca1.send(&message(
        "M7",
        &Jid::pn(BOB),
        vec![(b1.jid.clone(), blob(1)), (b2.jid.clone(), blob(2))],
    ))
    .await;
    next_tag(&mut cb1, "message").await;
    next_tag(&mut cb2, "message").await;
    drop(ca1);
    eventually(|| !sim.is_online(&a1.jid)).await;
    cb1.send(&receipt("M7", &a1.jid, None)).await;
    cb2.send(&receipt("M7", &a1.jid, None)).await;
    cb1.send(&receipt("M7", &a1.jid, Some("read"))).await;
    eventually(|| sim.queued(&a1.jid) == 3).await;

    let (mut ca1, seen) = a1.login(&sim).await;
    let receipts: Vec<&Node> = seen.iter().filter(|n| n.tag() == "receipt").collect();
    assert_eq!(receipts.len(), 3);
    // b1's delivery receipt: its read receipt and b2's receipt stay queued.
    ca1.send(&typed_ack("M7", &b1.jid, None)).await;
    eventually(|| sim.queued(&a1.jid) == 2).await;
    ca1.send(&typed_ack("M7", &b1.jid, Some("read"))).await;
    eventually(|| sim.queued(&a1.jid) == 1).await;
    ca1.send(&typed_ack("M7", &b2.jid, None)).await;
    eventually(|| sim.queued(&a1.jid) == 0).await;
}

#[tokio::test]
async fn restart_keeps_the_queues_and_delivers_them_at_login() {
    let mut sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let (mut ca1, _) = a1.login(&sim).await;
    let (mut cb1, _) = b1.login(&sim).await;
    // R1 reaches b1 but is not acked before the server goes down; R2 waits for b1 while
    // it is offline.
    ca1.send(&message(
        "R1",
        &Jid::pn(BOB),
        vec![(b1.jid.clone(), blob(1))],
    ))
    .await;
    next_tag(&mut cb1, "message").await;
    drop(cb1);
    eventually(|| !sim.is_online(&b1.jid)).await;
    ca1.send(&message(
        "R2",
        &Jid::pn(BOB),
        vec![(b1.jid.clone(), blob(2))],
    ))
    .await;
    eventually(|| sim.queued(&b1.jid) == 2).await;
    let addr = sim.local_addr();

    sim.restart(std::time::Duration::from_millis(50))
        .await
        .unwrap();
    // What the old instance wrote before going down (acks), then the end.
    let mut frames = 0;
    while ca1.next().await.is_some() {
        frames += 1;
        assert!(frames < 10, "the restart closes connections");
    }
    assert_eq!(sim.local_addr(), addr, "same address");
    assert_eq!(sim.queued(&b1.jid), 2, "the queue survived");

    let (mut cb1, seen) = b1.login(&sim).await;
    let ids: Vec<_> = seen
        .iter()
        .filter(|n| n.tag() == "message")
        .filter_map(|n| attr(n, "id"))
        .collect();
    assert_eq!(ids, ["R1", "R2"]);
    for id in ["R1", "R2"] {
        cb1.send(&ack("message", id, &a1.jid)).await;
    }
    eventually(|| sim.queued(&b1.jid) == 0).await;
    // The sender logs in to the new instance too.
    let (_ca1, _) = a1.login(&sim).await;
    assert!(sim.is_online(&a1.jid));
}

#[tokio::test]
async fn sender_addressing_names_one_to_one_senders_by_pn_or_lid() {
    use wa_sim::SenderAddressing;
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let (mut ca1, _) = a1.login(&sim).await;
    let (mut cb1, _) = b1.login(&sim).await;
    let lid = sim.account(ALICE).unwrap().lid;
    let a1_lid = Jid::with_device(lid.user.clone(), Server::Lid, a1.jid.device);
    let pn = Some(a1.jid.to_string());
    let by_lid = Some(a1_lid.to_string());
    let cases = [
        (SenderAddressing::Pn, "SA1", pn.clone(), None, None),
        (
            SenderAddressing::PnWithLid,
            "SA2",
            pn.clone(),
            by_lid.clone(),
            None,
        ),
        (
            SenderAddressing::Lid,
            "SA3",
            by_lid.clone(),
            None,
            pn.clone(),
        ),
    ];
    for (mode, id, from, sender_lid, sender_pn) in cases {
        sim.fault(Fault::SenderAddressing(mode));
        ca1.send(&message(id, &Jid::pn(BOB), vec![(b1.jid.clone(), blob(1))]))
            .await;
        next_tag(&mut ca1, "ack").await;
        let n = next_tag(&mut cb1, "message").await;
        assert_eq!(attr(&n, "id").as_deref(), Some(id));
        assert_eq!(attr(&n, "from"), from, "{mode:?}");
        assert_eq!(attr(&n, "sender_lid"), sender_lid, "{mode:?}");
        assert_eq!(attr(&n, "sender_pn"), sender_pn, "{mode:?}");
        // An ack naming the sender as the stanza did settles it.
        let to: Jid = attr(&n, "from").unwrap().parse().unwrap();
        cb1.send(&ack("message", id, &to)).await;
        eventually(|| sim.queued(&b1.jid) == 0).await;
    }
    // The switch is sticky and reported with the others.
    assert_eq!(sim.faults().sender_addressing, SenderAddressing::Lid);
}
