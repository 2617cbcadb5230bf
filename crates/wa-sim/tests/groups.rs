//! Groups (`w:g2`): the iqs, `w:gp2` notifications, group message fan-out with the
//! participant hash, and the phone's group messages in both directions.

mod common;

use base64::Engine;
use common::party::*;
use common::*;
use prost::Message as _;
use sha2::{Digest, Sha256};
use wa_binary::{Jid, Node, Server};
use wa_proto::e2e::Message;
use wa_signal::{CiphertextType, unpad_message};
use wa_sim::{Sim, SimConfig};

const ALICE: &str = "15550000001";
const BOB: &str = "15550000002";
const DAVE: &str = "15550000004";

async fn sim() -> Sim {
    let sim = Sim::start(SimConfig::default()).await.expect("start");
    for p in [ALICE, BOB, DAVE] {
        sim.add_account(p).await;
    }
    sim
}

fn gq(id: &str, ty: &'static str, to: Jid, child: Node) -> Node {
    Node::builder("iq")
        .attr("id", id.to_owned())
        .attr("to", to)
        .attr("type", ty)
        .attr("xmlns", "w:g2")
        .children([child])
        .build()
}

fn with_participants(tag: &'static str, jids: &[Jid]) -> Node {
    Node::builder(tag)
        .children(
            jids.iter()
                .map(|j| Node::builder("participant").attr("jid", j.clone()).build()),
        )
        .build()
}

fn error_code(reply: &Node) -> Option<String> {
    reply.child("error").and_then(|e| attr(e, "code"))
}

fn participants(group: &Node) -> Vec<(Jid, Option<String>)> {
    group
        .children_by_tag("participant")
        .map(|p| (p.attr::<Jid>("jid").unwrap(), attr(p, "type")))
        .collect()
}

/// The next `w:gp2` notification and its one child.
async fn gp2(c: &mut Client) -> (Node, Node) {
    let n = next_tag(c, "notification").await;
    assert_eq!(attr(&n, "type").as_deref(), Some("w:gp2"));
    let child = n.children().first().cloned().expect("a child");
    (n, child)
}

/// The next `w:gp2` notification whose child has this tag (others are skipped).
async fn gp2_tag(c: &mut Client, tag: &str) -> (Node, Node) {
    loop {
        let (n, child) = gp2(c).await;
        if child.tag() == tag {
            return (n, child);
        }
    }
}

/// The expected participant hash, computed here from its definition.
fn phash(devices: &[Jid]) -> String {
    let mut names: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
    names.sort();
    let digest = Sha256::digest(names.join("").as_bytes());
    format!(
        "2:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&digest[..6])
    )
}

#[tokio::test]
async fn group_iqs_and_notifications() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let b2 = Dev::link(&sim, BOB).await;
    let d1 = Dev::link(&sim, DAVE).await;
    let (mut ca1, _) = a1.login(&sim).await;
    let (mut cb1, _) = b1.login(&sim).await;
    let (mut cd1, _) = d1.login(&sim).await;
    let server = Jid::new("", Server::Group);

    // Create.
    let create = Node::builder("create")
        .attr("subject", "Team")
        .attr("key", "K1")
        .children([
            Node::builder("participant")
                .attr("jid", Jid::pn(BOB))
                .build(),
            Node::builder("participant")
                .attr("jid", Jid::pn("15559999999"))
                .build(),
        ])
        .build();
    let reply = ca1.query(gq("c1", "set", server.clone(), create)).await;
    assert_eq!(attr(&reply, "type").as_deref(), Some("result"));
    let g = reply.child("group").expect("<group>");
    let gid = attr(g, "id").expect("id");
    assert!(!gid.contains('@'), "the id is bare, as whatsmeow expects");
    let group = Jid::group(gid.clone());
    assert_eq!(attr(g, "subject").as_deref(), Some("Team"));
    assert_eq!(g.attr::<Jid>("creator").unwrap(), Jid::pn(ALICE));
    assert_eq!(attr(g, "size").as_deref(), Some("2"));
    assert_eq!(
        participants(g),
        vec![
            (Jid::pn(ALICE), Some("superadmin".to_owned())),
            (Jid::pn(BOB), None)
        ]
    );
    let (n, child) = gp2(&mut cb1).await;
    assert_eq!(n.attr::<Jid>("from").unwrap(), group);
    assert_eq!(n.attr::<Jid>("participant").unwrap(), a1.jid);
    assert_eq!(child.tag(), "create");
    assert_eq!(
        child.child("group").and_then(|g| attr(g, "id")),
        Some(gid.clone())
    );
    cb1.send(&ack_notification(&n)).await;

    // Metadata: members yes, others 403, unknown groups 404.
    let q = Node::builder("query")
        .attr("request", "interactive")
        .build();
    let r = cb1.query(gq("q1", "get", group.clone(), q.clone())).await;
    assert_eq!(
        r.child("group").and_then(|g| attr(g, "id")),
        Some(gid.clone())
    );
    let r = cd1.query(gq("q2", "get", group.clone(), q.clone())).await;
    assert_eq!(error_code(&r).as_deref(), Some("403"));
    let r = cd1
        .query(gq("q3", "get", Jid::group("999-1"), q.clone()))
        .await;
    assert_eq!(error_code(&r).as_deref(), Some("404"));

    // Participants: only admins; per-participant errors.
    let add_dave = with_participants("add", &[Jid::pn(DAVE)]);
    let r = cb1
        .query(gq("a0", "set", group.clone(), add_dave.clone()))
        .await;
    assert_eq!(error_code(&r).as_deref(), Some("401"));
    let r = ca1
        .query(gq(
            "a1",
            "set",
            group.clone(),
            with_participants(
                "add",
                &[Jid::pn(DAVE), Jid::pn(BOB), Jid::pn("15559999999")],
            ),
        ))
        .await;
    let results: Vec<(Jid, Option<String>)> = r
        .child("add")
        .expect("<add>")
        .children_by_tag("participant")
        .map(|p| (p.attr::<Jid>("jid").unwrap(), attr(p, "error")))
        .collect();
    assert_eq!(
        results,
        vec![
            (Jid::pn(DAVE), None),
            (Jid::pn(BOB), Some("409".to_owned())),
            (Jid::pn("15559999999"), Some("404".to_owned())),
        ]
    );
    for c in [&mut cb1, &mut cd1] {
        let (n, child) = gp2(c).await;
        assert_eq!(child.tag(), "add");
        assert_eq!(
            participants(&child),
            vec![(Jid::pn(DAVE), None)],
            "the add notification names only who was added"
        );
        c.send(&ack_notification(&n)).await;
    }
    let r = ca1
        .query(gq(
            "p1",
            "set",
            group.clone(),
            with_participants("promote", &[Jid::pn(BOB)]),
        ))
        .await;
    assert!(r.child("promote").is_some());
    let (_, child) = gp2_tag(&mut cd1, "promote").await;
    assert_eq!(participants(&child), vec![(Jid::pn(BOB), None)]);

    // Subject by a plain member while unlocked; settings only by admins.
    let subject = Node::builder("subject").bytes(b"New name".to_vec()).build();
    let r = cd1.query(gq("s1", "set", group.clone(), subject)).await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"));
    let (_, child) = gp2_tag(&mut cb1, "subject").await;
    assert_eq!(attr(&child, "subject").as_deref(), Some("New name"));
    let r = cd1
        .query(gq("l0", "set", group.clone(), Node::new("locked")))
        .await;
    assert_eq!(error_code(&r).as_deref(), Some("401"));
    let r = cb1
        .query(gq("l1", "set", group.clone(), Node::new("locked")))
        .await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"));
    let (n, _) = gp2_tag(&mut cd1, "locked").await;
    assert_eq!(n.attr::<Jid>("participant").unwrap(), b1.jid);
    let subject = Node::builder("subject").bytes(b"Nope".to_vec()).build();
    let r = cd1.query(gq("s2", "set", group.clone(), subject)).await;
    assert_eq!(error_code(&r).as_deref(), Some("401"));
    let desc = Node::builder("description")
        .attr("id", "D1")
        .children([Node::builder("body").bytes(b"About us".to_vec()).build()])
        .build();
    ca1.query(gq("d1", "set", group.clone(), desc)).await;
    ca1.query(gq("an", "set", group.clone(), Node::new("announcement")))
        .await;
    let r = cb1.query(gq("q4", "get", group.clone(), q.clone())).await;
    let g = r.child("group").unwrap();
    assert_eq!(attr(g, "subject").as_deref(), Some("New name"));
    assert!(g.child("locked").is_some() && g.child("announcement").is_some());
    let body = g.child_by_path(&["description", "body"]).unwrap();
    assert_eq!(body.content_bytes(), Some(&b"About us"[..]));
    assert_eq!(
        attr(g.child("description").unwrap(), "id").as_deref(),
        Some("D1")
    );

    // Invite codes: get is stable, set revokes.
    let get = |id: &str| gq(id, "get", group.clone(), Node::new("invite"));
    let c1 = attr(ca1.query(get("i1")).await.child("invite").unwrap(), "code").unwrap();
    let c2 = attr(ca1.query(get("i2")).await.child("invite").unwrap(), "code").unwrap();
    assert_eq!(c1, c2);
    let r = ca1
        .query(gq("i3", "set", group.clone(), Node::new("invite")))
        .await;
    let c3 = attr(r.child("invite").unwrap(), "code").unwrap();
    assert_ne!(c1, c3);

    // Leave.
    let leave = Node::builder("leave")
        .children([Node::builder("group").attr("id", group.clone()).build()])
        .build();
    let r = cd1.query(gq("lv", "set", server.clone(), leave)).await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"));
    assert_eq!(
        sim.group_members(&group),
        Some(vec![Jid::pn(ALICE), Jid::pn(BOB)])
    );
    let (n, child) = gp2_tag(&mut ca1, "remove").await;
    assert_eq!(n.attr::<Jid>("participant").unwrap(), d1.jid);
    assert_eq!(participants(&child), vec![(Jid::pn(DAVE), None)]);

    // b2 was offline the whole time: every notification waits for it, in order.
    let (_cb2, seen) = b2.login(&sim).await;
    let tags: Vec<&str> = seen
        .iter()
        .filter(|n| n.tag() == "notification")
        .inspect(|n| assert_eq!(attr(n, "offline").as_deref(), Some("1")))
        .filter_map(|n| n.children().first().map(Node::tag))
        .collect();
    assert_eq!(
        tags,
        [
            "create",
            "add",
            "promote",
            "subject",
            "locked",
            "description",
            "announcement",
            "invite",
            "remove"
        ]
    );
    // Listing the groups one is in.
    let r = cb1
        .query(gq(
            "pg",
            "get",
            server,
            Node::builder("participating")
                .children([Node::new("participants"), Node::new("description")])
                .build(),
        ))
        .await;
    let ids: Vec<String> = r
        .child("groups")
        .unwrap()
        .children_by_tag("group")
        .filter_map(|g| attr(g, "id"))
        .collect();
    assert_eq!(ids, vec![gid.clone()]);

    // Dave comes back with the current invite code; the revoked one is refused.
    let with_code = |code: &str| {
        Node::builder("invite")
            .attr("code", code.to_owned())
            .build()
    };
    let server = Jid::new("", Server::Group);
    let r = cd1
        .query(gq("j0", "set", server.clone(), with_code(&c1)))
        .await;
    // A reset code is gone (410), as whatsmeow's ErrInviteLinkRevoked expects.
    assert_eq!(error_code(&r).as_deref(), Some("410"));
    let r = cd1
        .query(gq("j1", "get", server.clone(), with_code(&c3)))
        .await;
    assert_eq!(
        r.child("group").and_then(|g| attr(g, "id")),
        Some(gid.clone())
    );
    let r = cd1
        .query(gq("j2", "set", server.clone(), with_code(&c3)))
        .await;
    assert_eq!(
        r.child("group").map(|g| g.attr::<Jid>("jid").unwrap()),
        Some(group.clone())
    );
    assert_eq!(
        sim.group_members(&group),
        Some(vec![Jid::pn(ALICE), Jid::pn(BOB), Jid::pn(DAVE)])
    );
    let (_, child) = gp2_tag(&mut ca1, "add").await;
    assert_eq!(attr(&child, "reason").as_deref(), Some("invite"));
    assert_eq!(participants(&child), vec![(Jid::pn(DAVE), None)]);
}

fn ack_notification(n: &Node) -> Node {
    Node::builder("ack")
        .attr("class", "notification")
        .attr("id", attr(n, "id").unwrap())
        .attr("to", n.attr::<Jid>("from").unwrap())
        .attr("type", "w:gp2")
        .build()
}

#[tokio::test]
async fn group_message_fan_out_and_phash() {
    let sim = sim().await;
    let a1 = Dev::link(&sim, ALICE).await;
    let a2 = Dev::link(&sim, ALICE).await;
    let b1 = Dev::link(&sim, BOB).await;
    let group = sim
        .phone_create_group(ALICE, "Fan-out", &[Jid::pn(BOB)])
        .expect("group");
    let (mut ca1, _) = a1.login(&sim).await;
    let (mut ca2, _) = a2.login(&sim).await;
    let (mut cb1, _) = b1.login(&sim).await;
    let skmsg = Node::builder("enc")
        .attr("v", "2")
        .attr("type", "skmsg")
        .bytes(vec![5; 20])
        .build();
    let mut stanza = Node::builder("message")
        .attr("id", "G1")
        .attr("to", group.clone())
        .attr("type", "text")
        .attr("phash", "2:wrong")
        .children([
            Node::builder("participants")
                .children([Node::builder("to")
                    .attr("jid", b1.jid.clone())
                    .children([blob(1)])
                    .build()])
                .build(),
            skmsg.clone(),
        ])
        .build();
    ca1.send(&stanza).await;
    let recipients = vec![pn(ALICE, 0), a2.jid.clone(), pn(BOB, 0), b1.jid.clone()];
    let expected = phash(&recipients);
    let ack = next_tag(&mut ca1, "ack").await;
    assert_eq!(ack.attr::<Jid>("from").unwrap(), group);
    assert_eq!(attr(&ack, "phash"), Some(expected.clone()));
    let got = next_tag(&mut cb1, "message").await;
    assert_eq!(got.attr::<Jid>("from").unwrap(), group);
    assert_eq!(got.attr::<Jid>("participant").unwrap(), a1.jid);
    assert_eq!(attr(&got, "addressing_mode").as_deref(), Some("pn"));
    let encs: Vec<Option<String>> = got.children().iter().map(|e| attr(e, "type")).collect();
    assert_eq!(encs, [Some("msg".to_owned()), Some("skmsg".to_owned())]);
    let own = next_tag(&mut ca2, "message").await;
    assert_eq!(own.children().len(), 1, "only the skmsg for a2");
    assert_eq!(own.children()[0], skmsg);
    // With the right hash the ack has none.
    stanza.attrs.insert("id", "G2");
    stanza.attrs.insert("phash", expected);
    ca1.send(&stanza).await;
    let ack = next_tag(&mut ca1, "ack").await;
    assert_eq!(attr(&ack, "id").as_deref(), Some("G2"));
    assert!(attr(&ack, "phash").is_none());
    assert_eq!(
        attr(&next_tag(&mut cb1, "message").await, "id").as_deref(),
        Some("G2")
    );
    assert_eq!(
        attr(&next_tag(&mut ca2, "message").await, "id").as_deref(),
        Some("G2")
    );
    // A resend naming one device in `participant` reaches only that device.
    let resend = Node::builder("message")
        .attr("id", "G1")
        .attr("to", group.clone())
        .attr("type", "text")
        .attr("participant", b1.jid.clone())
        .children([
            Node::builder("participants")
                .children([Node::builder("to")
                    .attr("jid", b1.jid.clone())
                    .children([blob(7)])
                    .build()])
                .build(),
            skmsg.clone(),
        ])
        .build();
    ca1.send(&resend).await;
    next_tag(&mut ca1, "ack").await;
    let again = next_tag(&mut cb1, "message").await;
    assert_eq!(attr(&again, "id").as_deref(), Some("G1"));
    assert_eq!(again.children()[0].content_bytes(), Some(&[7u8; 16][..]));
    assert_quiet(&mut ca2, "message").await;
    // Non-members are refused.
    let d1 = Dev::link(&sim, DAVE).await;
    let (mut cd1, _) = d1.login(&sim).await;
    stanza.attrs.insert("id", "G3");
    cd1.send(&stanza).await;
    let ack = next_tag(&mut cd1, "ack").await;
    assert_eq!(attr(&ack, "error").as_deref(), Some("403"));
}

#[tokio::test]
async fn phone_group_messages_both_ways() {
    let sim = sim().await;
    let b1 = Dev::link(&sim, BOB).await;
    let group = sim
        .phone_create_group(ALICE, "Phones", &[Jid::pn(BOB)])
        .expect("group");
    let (mut cb1, _) = b1.login(&sim).await;
    // Alice's phone sends: b1 gets the distribution pairwise and the skmsg.
    let id = sim
        .phone_send(ALICE, &group, text("to the group"))
        .await
        .expect("sent");
    let got = loop {
        let n = next_tag(&mut cb1, "message").await;
        if attr(&n, "id") == Some(id.clone()) {
            break n;
        }
    };
    assert_eq!(got.attr::<Jid>("participant").unwrap(), Jid::pn(ALICE));
    let pairwise = got.children().first().unwrap();
    let kind = CiphertextType::from_name(&attr(pairwise, "type").unwrap()).unwrap();
    let padded = b1
        .repo
        .decrypt_message(&Jid::pn(ALICE), kind, pairwise.content_bytes().unwrap())
        .await
        .unwrap();
    let skdm = Message::decode(unpad_message(&padded).unwrap())
        .unwrap()
        .sender_key_distribution_message
        .expect("a distribution message");
    assert_eq!(skdm.group_id.as_deref(), Some(group.to_string().as_str()));
    b1.repo
        .process_sender_key_distribution(
            &group.to_string(),
            &Jid::pn(ALICE),
            skdm.axolotl_sender_key_distribution_message
                .as_deref()
                .unwrap(),
        )
        .await
        .unwrap();
    let sk = got
        .children()
        .iter()
        .find(|e| attr(e, "type").as_deref() == Some("skmsg"))
        .unwrap();
    let padded = b1
        .repo
        .decrypt_group_message(
            &group.to_string(),
            &Jid::pn(ALICE),
            sk.content_bytes().unwrap(),
        )
        .await
        .unwrap();
    let m = Message::decode(unpad_message(&padded).unwrap()).unwrap();
    assert_eq!(m.conversation.as_deref(), Some("to the group"));

    // b1 sends to the group: Alice's phone takes the distribution and decrypts.
    let alice0 = pn(ALICE, 0);
    b1.start_session(&mut cb1, &alice0).await;
    let own_name = b1.jid.clone();
    let enc = b1
        .repo
        .encrypt_group_message(
            &group.to_string(),
            &own_name,
            &wa_signal::pad_message(&text("hello phones").encode_to_vec(), &mut rand_core::OsRng),
        )
        .await
        .unwrap();
    let skdm = Message {
        sender_key_distribution_message: Some(wa_proto::e2e::SenderKeyDistributionMessage {
            group_id: Some(group.to_string()),
            axolotl_sender_key_distribution_message: Some(enc.sender_key_distribution_message),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pairwise = b1.encrypt(&alice0, &skdm).await;
    let stanza = Node::builder("message")
        .attr("id", "PG1")
        .attr("to", group.clone())
        .attr("type", "text")
        .children([
            Node::builder("participants")
                .children([Node::builder("to")
                    .attr("jid", alice0.clone())
                    .children([pairwise])
                    .build()])
                .build(),
            Node::builder("enc")
                .attr("v", "2")
                .attr("type", "skmsg")
                .bytes(enc.ciphertext)
                .build(),
        ])
        .build();
    cb1.send(&stanza).await;
    let r = loop {
        let r = next_tag(&mut cb1, "receipt").await;
        if attr(&r, "id").as_deref() == Some("PG1") {
            break r;
        }
    };
    assert_eq!(r.attr::<Jid>("from").unwrap(), group);
    assert_eq!(r.attr::<Jid>("participant").unwrap(), alice0);
    assert!(attr(&r, "type").is_none());
    let inbox = sim.phone_inbox(ALICE);
    let m = inbox.iter().find(|m| m.id == "PG1").expect("recorded");
    assert_eq!(m.chat, group);
    assert_eq!(m.from, b1.jid);
    assert_eq!(m.message.conversation.as_deref(), Some("hello phones"));
}
