//! Message routing, receipts, offline delivery, the phone as a Signal party and the
//! delivery faults, seen from raw clients (MSG_SPEC).

mod common;

use common::party::*;
use common::*;
use wa_binary::{Jid, Node};
use wa_proto::e2e::{DeviceSentMessage, Message};
use wa_sim::{Fault, Sim, SimConfig};

const ALICE: &str = "15550000001";
const BOB: &str = "15550000002";

async fn sim() -> Sim {
    let sim = Sim::start(SimConfig::default()).await.expect("start");
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
