//! End-to-end messaging through wa-sim on 127.0.0.1: real sockets, Noise, Signal and
//! stores; two accounts, linked companions and the simulated phones.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rand_core::OsRng;
use tokio::sync::broadcast;
use wa_binary::{Jid, Server};
use wa_messages::{
    MessageContent, MessengerConfig, Poll, Quote, ReceiptType, SecretContext, decrypt_poll_vote,
    poll_option_hash, poll_vote_message,
};
use wa_sim::{Fault, Sim, SimConfig};
use wa_socket::{ConnectionState, Event};
use wa_store::{InboxStore, LidMappingStore, PrivacyTokenStore, SentMessageStore, SessionStore};
use wa_testkit::{next_receipt, next_update as next_conn, next_upsert};
use wa_types::{MessageChange, MessageChangeKind, MessageKey};

const A: &str = "15550000001";
const B: &str = "15550000002";

/// The next edit or delete for everyone `events` reports.
async fn changed(events: &mut broadcast::Receiver<Event>) -> MessageChange {
    wa_testkit::next_event(events, |e| match e {
        Event::MessageChanged(c) => Some(*c),
        _ => None,
    })
    .await
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_between_two_accounts_reaches_every_device() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mut a2 = link(&sim, A, memory_store("a2")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let (a, b) = (Jid::pn(A), Jid::pn(B));

    // b1 knows A's LID (as if learned from an earlier stanza or usync).
    b1.store.put_lid_mapping(A, "987654321").await.unwrap();

    // Text from a1 to B: B's companion and phone decrypt it, and so do A's other
    // companion (as a copy of a sent message) and A's phone.
    let key = a1
        .messenger
        .send_message(&b, MessageContent::text("hello bob"))
        .await
        .unwrap();
    assert_eq!(key.remote_jid, b);
    assert!(key.from_me);
    let got = next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
    assert_eq!(text_of(&got.message), Some("hello bob"));
    assert_eq!(got.key.remote_jid, a);
    assert!(!got.key.from_me);
    assert_eq!(got.sender, a1.jid);
    assert_eq!(
        got.sender_alt,
        Some(Jid::with_device("987654321", Server::Lid, a1.jid.device))
    );
    assert!(!got.offline);
    let copy = next_upsert(&mut a2.events, |m| m.key.id == key.id).await;
    assert!(copy.key.from_me);
    assert_eq!(
        copy.key.remote_jid, b,
        "the copy names the chat it was sent to"
    );
    assert_eq!(text_of(&copy.message), Some("hello bob"));
    wait_until("both phones decrypt", || {
        sim.phone_inbox(B).iter().any(|m| m.id == key.id)
            && sim.phone_inbox(A).iter().any(|m| m.id == key.id)
    })
    .await;

    // Delivery receipts come back to the sender as updates for that id, from B's devices
    // (b1 or B's phone: wa-sim settles queued receipts by user, so an ack of the phone's
    // receipt can drop b1's receipt of the same id before it reaches a1) and, as "sender"
    // receipts, from A's other devices; both name the chat with B.
    let (delivered, sender) = tokio::time::timeout(WAIT, async {
        let (mut delivered, mut sender) = (None, None);
        while delivered.is_none() || sender.is_none() {
            if let Ok(Event::MessagesUpdate(us)) = a1.events.recv().await {
                for u in us.into_iter().filter(|u| u.key.id == key.id) {
                    if u.receipt == ReceiptType::Delivered && u.device.same_user(&b) {
                        delivered = Some(u);
                    } else if u.receipt == ReceiptType::Sender && u.device.same_user(&a) {
                        sender = Some(u);
                    }
                }
            }
        }
        (delivered.unwrap(), sender.unwrap())
    })
    .await
    .expect("receipts in time");
    assert_eq!(delivered.key.remote_jid, b);
    assert!(delivered.key.from_me);
    assert_eq!(sender.key.remote_jid, b);

    // A reply quoting it, from b1.
    let reply = b1
        .messenger
        .send_message(&a, MessageContent::text("hi alice"))
        .await
        .unwrap();
    let r1 = next_upsert(&mut a1.events, |m| m.key.id == reply.id).await;
    assert_eq!(text_of(&r1.message), Some("hi alice"));
    // a1 learned B's LID through usync when it first wrote to B.
    let b_lid = sim.account(B).unwrap().lid;
    assert_eq!(
        a1.store.lid_for_pn(B).await.unwrap().as_deref(),
        Some(b_lid.user.as_str())
    );
    assert_eq!(
        r1.sender_alt,
        Some(Jid::with_device(
            b_lid.user.clone(),
            Server::Lid,
            b1.jid.device
        ))
    );
    assert_eq!(r1.key.remote_jid, b);
    let r2 = next_upsert(&mut a2.events, |m| m.key.id == reply.id).await;
    assert_eq!(r2.sender, b1.jid);
    let quoted = wa_messages::MessageBuilder::new(a.clone(), MessageContent::text("quoting you"))
        .quote(Quote::new(
            MessageKey::new(a.clone(), false, key.id.clone()),
            (*got.message).clone(),
            &b1.jid,
        ))
        .build(&mut OsRng)
        .unwrap();
    let qid = "3EB0AAAAAAAAAAAAAAAAA1";
    b1.messenger.relay_message(&a, quoted, qid).await.unwrap();
    let q = next_upsert(&mut a1.events, |m| m.key.id == qid).await;
    let ctx = q
        .message
        .extended_text_message
        .as_deref()
        .and_then(|e| e.context_info.as_deref())
        .expect("reply context");
    assert_eq!(ctx.stanza_id.as_deref(), Some(key.id.as_str()));

    // Reaction, edit and revoke of a1's message.
    let reaction = b1
        .messenger
        .send_message(
            &a,
            MessageContent::Reaction {
                key: MessageKey::new(a.clone(), false, key.id.clone()),
                emoji: "👍".into(),
                sender_timestamp_ms: now_ms(),
            },
        )
        .await
        .unwrap();
    let r = next_upsert(&mut a1.events, |m| m.key.id == reaction.id).await;
    let rm = r.message.reaction_message.as_ref().expect("reaction");
    assert_eq!(rm.text.as_deref(), Some("👍"));
    assert_eq!(
        rm.key.as_ref().and_then(|k| k.id.as_deref()),
        Some(key.id.as_str())
    );

    let edit = a1
        .messenger
        .send_message(
            &b,
            MessageContent::Edit {
                key: key.clone(),
                new_content: Box::new(MessageContent::text("hello bob (edited)")),
                timestamp_ms: now_ms(),
            },
        )
        .await
        .unwrap();
    let e = next_upsert(&mut b1.events, |m| m.key.id == edit.id).await;
    let pm = e.message.protocol_message.as_deref().expect("edit");
    assert_eq!(
        pm.key.as_ref().and_then(|k| k.id.as_deref()),
        Some(key.id.as_str())
    );
    let edited = pm.edited_message.as_deref().expect("edited message");
    assert_eq!(text_of(edited), Some("hello bob (edited)"));
    // Reported on the message it changes, as B's device names it.
    let original = MessageKey::new(a.clone(), false, key.id.clone());
    let change = changed(&mut b1.events).await;
    assert_eq!(change.key, original);
    assert_eq!(change.by.user, a1.jid.user);
    match &change.kind {
        MessageChangeKind::Edited(m) => assert_eq!(text_of(m), Some("hello bob (edited)")),
        other => panic!("{other:?}"),
    }
    next_upsert(&mut a2.events, |m| m.key.id == edit.id).await;
    // A's other device sees its own message edited.
    let change = changed(&mut a2.events).await;
    assert_eq!(change.key, MessageKey::new(b.clone(), true, key.id.clone()));

    let revoke = a1
        .messenger
        .send_message(&b, MessageContent::Revoke { key: key.clone() })
        .await
        .unwrap();
    let rv = next_upsert(&mut b1.events, |m| m.key.id == revoke.id).await;
    let pm = rv.message.protocol_message.as_deref().expect("revoke");
    assert_eq!(pm.r#type(), wa_proto::e2e::protocol_message::Type::Revoke);
    assert_eq!(
        pm.key.as_ref().and_then(|k| k.id.as_deref()),
        Some(key.id.as_str())
    );
    let change = changed(&mut b1.events).await;
    assert_eq!(
        (change.key, change.kind),
        (original, MessageChangeKind::Revoked)
    );

    // A poll from b1, a vote from a2, decrypted by b1 with the poll's secret.
    let poll = b1
        .messenger
        .send_message(
            &a,
            MessageContent::Poll(Poll {
                name: "lunch?".into(),
                options: vec!["pizza".into(), "sushi".into()],
                selectable_count: 1,
                to_announcement_group: false,
            }),
        )
        .await
        .unwrap();
    let p = next_upsert(&mut a2.events, |m| m.key.id == poll.id).await;
    let secret = p
        .message
        .message_context_info
        .as_ref()
        .and_then(|c| c.message_secret.clone())
        .expect("poll secret");
    assert!(
        p.message.poll_creation_message.is_some() || p.message.poll_creation_message_v3.is_some()
    );
    let poll_key = MessageKey::new(b.clone(), false, poll.id.clone());
    let ctx = SecretContext {
        message_id: &poll.id,
        creator: &b,
        modifier: &a,
        message_secret: &secret,
    };
    let vote = poll_vote_message(&poll_key, &ctx, &["sushi"], now_ms(), &mut OsRng).unwrap();
    let vid = "3EB0AAAAAAAAAAAAAAAAA2";
    a2.messenger.relay_message(&b, vote, vid).await.unwrap();
    let v = next_upsert(&mut b1.events, |m| m.key.id == vid).await;
    let upd = v.message.poll_update_message.as_ref().expect("vote");
    let opened = decrypt_poll_vote(&ctx, upd.vote.as_ref().unwrap()).unwrap();
    assert_eq!(
        opened.selected_options,
        vec![poll_option_hash("sushi").to_vec()]
    );
    next_upsert(&mut a1.events, |m| m.key.id == vid).await;

    // And the other way: a poll from a1, a vote from b1 that a1 and a2 open.
    let poll2 = a1
        .messenger
        .send_message(
            &b,
            MessageContent::Poll(Poll {
                name: "dinner?".into(),
                options: vec!["early".into(), "late".into(), "never".into()],
                selectable_count: 2,
                to_announcement_group: false,
            }),
        )
        .await
        .unwrap();
    let p2 = next_upsert(&mut b1.events, |m| m.key.id == poll2.id).await;
    let secret2 = p2
        .message
        .message_context_info
        .as_ref()
        .and_then(|c| c.message_secret.clone())
        .expect("poll secret");
    let ctx2 = SecretContext {
        message_id: &poll2.id,
        creator: &a,
        modifier: &b,
        message_secret: &secret2,
    };
    let vote2 = poll_vote_message(
        &MessageKey::new(a.clone(), false, poll2.id.clone()),
        &ctx2,
        &["early", "late"],
        now_ms(),
        &mut OsRng,
    )
    .unwrap();
    let vid2 = "3EB0AAAAAAAAAAAAAAAAA3";
    b1.messenger.relay_message(&a, vote2, vid2).await.unwrap();
    for c in [&mut a1, &mut a2] {
        let v = next_upsert(&mut c.events, |m| m.key.id == vid2).await;
        let upd = v.message.poll_update_message.as_ref().expect("vote");
        let opened = decrypt_poll_vote(&ctx2, upd.vote.as_ref().unwrap()).unwrap();
        assert_eq!(
            opened.selected_options,
            vec![
                poll_option_hash("early").to_vec(),
                poll_option_hash("late").to_vec()
            ]
        );
    }

    // Read receipts: b1 reads a1's first message; a1 sees it read by b1.
    b1.messenger
        .read_messages(std::slice::from_ref(&got.key))
        .await
        .unwrap();
    let read = next_receipt(&mut a1.events, |u| {
        u.key.id == key.id && u.receipt == ReceiptType::Read
    })
    .await;
    assert_eq!(read.device, b1.jid);

    // Nothing stays queued for the companions once everything was processed.
    for c in [&a1, &a2, &b1] {
        wait_until("queues drain", || sim.queued(&c.jid) == 0).await;
    }
    drop((a1.socket, a2.socket, b1.socket));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_receipts_name_the_chat_with_or_without_recipient() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let (a, b) = (Jid::pn(A), Jid::pn(B));
    // With `recipient` the receipt names the chat; without it (as a server may send it)
    // the sent message says which chat it was.
    for strip in [false, true] {
        sim.fault(wa_sim::Fault::StripReceiptRecipient(strip));
        let key = a1
            .messenger
            .send_message(&b, MessageContent::text("to B"))
            .await
            .unwrap();
        let u = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(Event::MessagesUpdate(us)) = a1.events.recv().await
                    && let Some(u) = us.into_iter().find(|u| {
                        u.key.id == key.id
                            && u.receipt == ReceiptType::Sender
                            && u.device.same_user(&a)
                    })
                {
                    return u;
                }
            }
        })
        .await
        .expect("the phone's sender receipt");
        assert_eq!(u.key.remote_jid, b, "recipient stripped: {strip}");
        assert!(u.key.from_me);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_device_gets_the_message_at_next_login() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let a1 = link(&sim, A, memory_store("a1")).await;
    let b1 = link(&sim, B, memory_store("b1")).await;
    let (b_store, b_jid) = (b1.store.clone(), b1.jid.clone());
    b1.socket.close().await;
    drop(b1);
    wait_until("b1 offline", || !sim.is_online(&b_jid)).await;

    let mut ids = Vec::new();
    for i in 0..3 {
        let key = a1
            .messenger
            .send_message(
                &Jid::pn(B),
                MessageContent::text(format!("while you were away {i}")),
            )
            .await
            .unwrap();
        ids.push(key.id);
    }
    assert_eq!(sim.queued_messages(&b_jid), 3);

    // The backlog is reported as one batch, in order, once the server says it is complete.
    let mut b1 = restart(&sim, b_store, b_jid.clone()).await;
    let batch = tokio::time::timeout(WAIT, async {
        loop {
            match b1.events.recv().await {
                Ok(Event::MessagesUpsert(u)) => return u.messages,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("backlog in time");
    let got: Vec<&str> = batch.iter().map(|m| m.key.id.as_str()).collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        batch.iter().all(|m| m.offline),
        "delivered from the offline queue"
    );
    assert_eq!(text_of(&batch[2].message), Some("while you were away 2"));
    wait_until("queue drains", || sim.queued(&b_jid) == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_from_the_offline_backlog_are_reported_together() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let mut keys = Vec::new();
    for i in 0..3 {
        let key = a1
            .messenger
            .send_message(&Jid::pn(B), MessageContent::text(format!("read me {i}")))
            .await
            .unwrap();
        keys.push(
            next_upsert(&mut b1.events, |m| m.key.id == key.id)
                .await
                .key,
        );
    }
    let (a_store, a_jid) = (a1.store.clone(), a1.jid.clone());
    a1.socket.close().await;
    drop(a1);
    wait_until("a1 offline", || !sim.is_online(&a_jid)).await;

    // Three read receipts, one stanza each, wait for a1 in the server's queue.
    for k in &keys {
        b1.messenger
            .read_messages(std::slice::from_ref(k))
            .await
            .unwrap();
    }
    wait_until("receipts queued", || sim.queued(&a_jid) >= 3).await;

    // Back online, a1 reports them in one update once the backlog is processed.
    let mut a1 = restart(&sim, a_store, a_jid.clone()).await;
    let mut events: Vec<Vec<wa_types::MessageUpdate>> = Vec::new();
    fn read(u: &wa_types::MessageUpdate) -> bool {
        u.receipt == ReceiptType::Read
    }
    tokio::time::timeout(WAIT, async {
        while events.iter().flatten().filter(|u| read(u)).count() < keys.len() {
            match a1.events.recv().await {
                Ok(Event::MessagesUpdate(u)) if u.iter().any(read) => events.push(u),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("read receipts in time");
    assert_eq!(events.len(), 1, "one event for the backlog: {events:?}");
    let got: Vec<&str> = events[0]
        .iter()
        .filter(|u| read(u))
        .map(|u| u.key.id.as_str())
        .collect();
    let want: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(got, want, "in the order they arrived");
    assert!(
        events[0]
            .iter()
            .filter(|u| read(u))
            .all(|u| u.device == b1.jid),
        "{:?}",
        events[0]
    );
    wait_until("queue drains", || sim.queued(&a_jid) == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_or_duplicate_delivery_gives_no_duplicate_event() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;

    // The server drops b1's connection right after handing it the message; b1 reconnects
    // by itself and the message comes again from the offline queue.
    let mut conn_events = b1.socket.events();
    sim.fault(Fault::DropAfterDeliver(b1.jid.clone()));
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("once"))
        .await
        .unwrap();
    next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
    next_conn(&mut conn_events, |u| u.state == ConnectionState::Closed).await;
    next_conn(&mut conn_events, |u| u.state == ConnectionState::Open).await;
    wait_until("redelivered and settled", || sim.queued(&b1.jid) == 0).await;
    assert_eq!(
        count_upserts(&mut b1.events, &key.id, Duration::from_secs(2)).await,
        0
    );

    // Every stanza delivered twice: still one event.
    sim.fault(Fault::DuplicateDelivery(true));
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("twice on the wire"))
        .await
        .unwrap();
    assert_eq!(
        count_upserts(&mut b1.events, &key.id, Duration::from_secs(3)).await,
        1
    );
    sim.fault(Fault::DuplicateDelivery(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_sqlite_keeps_decrypting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b1.db");
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let store = sqlite_store(&path, "b1").await;
    let mut b1 = link(&sim, B, store).await;
    let (a, b) = (Jid::pn(A), Jid::pn(B));

    for i in 0..3 {
        let k = a1
            .messenger
            .send_message(&b, MessageContent::text(format!("a{i}")))
            .await
            .unwrap();
        next_upsert(&mut b1.events, |m| m.key.id == k.id).await;
        let k = b1
            .messenger
            .send_message(&a, MessageContent::text(format!("b{i}")))
            .await
            .unwrap();
        next_upsert(&mut a1.events, |m| m.key.id == k.id).await;
    }
    let b_jid = b1.jid.clone();
    b1.socket.close().await;
    drop(b1);
    wait_until("b1 offline", || !sim.is_online(&b_jid)).await;

    // One message while b1 is down, then b1 comes back from the database file alone.
    let k = a1
        .messenger
        .send_message(&b, MessageContent::text("during restart"))
        .await
        .unwrap();
    let store = sqlite_store(&path, "b1").await;
    let mut b1 = restart(&sim, store, b_jid).await;
    let got = next_upsert(&mut b1.events, |m| m.key.id == k.id).await;
    assert_eq!(text_of(&got.message), Some("during restart"));
    for i in 0..2 {
        let k = b1
            .messenger
            .send_message(&a, MessageContent::text(format!("after {i}")))
            .await
            .unwrap();
        let m = next_upsert(&mut a1.events, |m| m.key.id == k.id).await;
        assert_eq!(
            text_of(&m.message).map(str::to_owned),
            Some(format!("after {i}"))
        );
        let k = a1
            .messenger
            .send_message(&b, MessageContent::text(format!("reply {i}")))
            .await
            .unwrap();
        next_upsert(&mut b1.events, |m| m.key.id == k.id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_session_is_healed_by_retry_receipts() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let b = Jid::pn(B);

    let first = a1
        .messenger
        .send_message(&b, MessageContent::text("first"))
        .await
        .unwrap();
    next_upsert(&mut b1.events, |m| m.key.id == first.id).await;
    // b1 answers, so a1's next message is a plain `msg` on the established session.
    let back = b1
        .messenger
        .send_message(&Jid::pn(A), MessageContent::text("ack"))
        .await
        .unwrap();
    next_upsert(&mut a1.events, |m| m.key.id == back.id).await;

    // b1 learned A's LID when it answered, so its session with a1 lives under a1's LID
    // address (and none under the phone-number one). b1 loses that session.
    let a_lid = b1
        .store
        .lid_for_pn(A)
        .await
        .unwrap()
        .expect("A's LID is known");
    let dev = u32::from(a1.jid.device);
    assert!(b1.store.get_session(A, dev).await.unwrap().is_none());
    let name = format!("{a_lid}_1");
    b1.store.delete_session(&name, dev).await.unwrap();
    assert!(b1.store.get_session(&name, dev).await.unwrap().is_none());

    let key = a1
        .messenger
        .send_message(&b, MessageContent::text("after the loss"))
        .await
        .unwrap();
    // b1 cannot decrypt, asks again (with its keys from the second attempt); a1 rebuilds
    // the session and resends with the same id.
    let retry = next_receipt(&mut a1.events, |u| {
        u.key.id == key.id && u.receipt == ReceiptType::Retry
    })
    .await;
    assert_eq!(retry.device, b1.jid);
    let got = next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
    assert_eq!(text_of(&got.message), Some("after the loss"));
    assert_eq!(got.sender, a1.jid);
    assert!(b1.store.get_session(&name, dev).await.unwrap().is_some());

    // The healed session keeps working both ways.
    let k = a1
        .messenger
        .send_message(&b, MessageContent::text("healed"))
        .await
        .unwrap();
    next_upsert(&mut b1.events, |m| m.key.id == k.id).await;
    let k = b1
        .messenger
        .send_message(&Jid::pn(A), MessageContent::text("yes"))
        .await
        .unwrap();
    next_upsert(&mut a1.events, |m| m.key.id == k.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_messages_reach_the_companions() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let msg = wa_messages::MessageBuilder::new(Jid::pn(A), MessageContent::text("from a phone"))
        .build(&mut OsRng)
        .unwrap();
    let id = sim.phone_send(B, &Jid::pn(A), msg).await.unwrap();
    let got = next_upsert(&mut a1.events, |m| m.key.id == id).await;
    assert_eq!(got.sender, Jid::with_device(B, Server::Pn, 0));
    assert_eq!(text_of(&got.message), Some("from a phone"));
    let copy = next_upsert(&mut b1.events, |m| m.key.id == id).await;
    assert!(copy.key.from_me);
    assert_eq!(copy.key.remote_jid, Jid::pn(A));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_messages_are_kept_for_retries_then_pruned() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let short = MessengerConfig {
        sent_message_ttl: Duration::ZERO,
        prune_interval: Duration::from_secs(1),
        ..MessengerConfig::default()
    };
    let a1 = link_with(&sim, A, memory_store("a1"), short).await;
    let _b1 = link(&sim, B, memory_store("b1")).await;
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("kept, briefly"))
        .await
        .unwrap();
    let stored = a1.store.get_sent_message("", &key.id).await.unwrap();
    let info = <wa_proto::web::WebMessageInfo as prost::Message>::decode(stored.unwrap()).unwrap();
    assert_eq!(
        text_of(info.message.as_ref().unwrap()),
        Some("kept, briefly")
    );
    let deadline = Instant::now() + WAIT;
    while a1
        .store
        .get_sent_message("", &key.id)
        .await
        .unwrap()
        .is_some()
    {
        assert!(Instant::now() < deadline, "sent message never pruned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_messages_with_sender_keys() {
    use wa_groups::{Groups, GroupsConfig, ParticipantAction};
    use wa_store::SenderKeyMemoryStore;

    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mut a2 = link(&sim, A, memory_store("a2")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let groups = Groups::new(a1.socket.clone(), &GroupsConfig::default());
    a1.messenger = a1.messenger.with_groups(groups.clone());
    let g = sim
        .phone_create_group(A, "team", &[Jid::pn(B)])
        .expect("group created");

    // a1 (with wa-groups' metadata) sends: sender-key message plus the distribution
    // message pairwise to every other device of every member.
    let k1 = a1
        .messenger
        .send_message(&g, MessageContent::text("hello team"))
        .await
        .unwrap();
    assert_eq!(k1.remote_jid, g);
    let got = next_upsert(&mut b1.events, |m| m.key.id == k1.id).await;
    assert_eq!(text_of(&got.message), Some("hello team"));
    assert_eq!(got.key.remote_jid, g);
    assert_eq!(got.key.participant, Some(Jid::pn(A)));
    assert_eq!(got.sender, a1.jid);
    let copy = next_upsert(&mut a2.events, |m| m.key.id == k1.id).await;
    assert!(copy.key.from_me);
    wait_until("both phones decrypt the group message", || {
        sim.phone_inbox(A).iter().any(|m| m.id == k1.id)
            && sim.phone_inbox(B).iter().any(|m| m.id == k1.id)
    })
    .await;
    let mut have = a1.store.sender_key_devices(&g.to_string()).await.unwrap();
    have.sort();
    let mut expected: Vec<String> = [
        Jid::with_device(A, Server::Pn, 0),
        a2.jid.clone(),
        Jid::with_device(B, Server::Pn, 0),
        b1.jid.clone(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    expected.sort();
    assert_eq!(
        have, expected,
        "every other member device got our sender key"
    );

    // A second message reuses the distributed key (skmsg only) and still decrypts.
    let k2 = a1
        .messenger
        .send_message(&g, MessageContent::text("second"))
        .await
        .unwrap();
    let got = next_upsert(&mut b1.events, |m| m.key.id == k2.id).await;
    assert_eq!(text_of(&got.message), Some("second"));
    // Delivery receipts from a group member name the group and the member.
    let delivered = next_receipt(&mut a1.events, |u| {
        u.key.id == k2.id && u.device.same_user(&Jid::pn(B))
    })
    .await;
    assert_eq!(delivered.key.remote_jid, g);

    // b1 (no wa-groups handle: a plain metadata query) answers in the group.
    let k3 = b1
        .messenger
        .send_message(&g, MessageContent::text("from bob"))
        .await
        .unwrap();
    for c in [&mut a1, &mut a2] {
        let m = next_upsert(&mut c.events, |m| m.key.id == k3.id).await;
        assert_eq!(text_of(&m.message), Some("from bob"));
        assert_eq!(m.key.participant, Some(Jid::pn(B)));
    }

    // a1, an admin, deletes Bob's message for everyone: the change names Bob's message
    // (Bob as participant), on Bob's device as its own.
    let bobs = MessageKey::new(g.clone(), false, k3.id.clone()).with_participant(Jid::pn(B));
    a1.messenger
        .send_message(&g, MessageContent::Revoke { key: bobs.clone() })
        .await
        .unwrap();
    let change = changed(&mut a2.events).await;
    assert_eq!(
        (change.key, change.kind),
        (bobs, MessageChangeKind::Revoked)
    );
    assert_eq!(change.by.user, a1.jid.user);
    let change = changed(&mut b1.events).await;
    assert_eq!(
        change.key,
        MessageKey::new(g.clone(), true, k3.id.clone()).with_participant(Jid::pn(B))
    );

    // B's phone sends to the group with its own sender key.
    let msg = wa_messages::MessageBuilder::new(g.clone(), MessageContent::text("phone to group"))
        .build(&mut OsRng)
        .unwrap();
    let pid = sim.phone_send(B, &g, msg).await.unwrap();
    let m = next_upsert(&mut a1.events, |m| m.key.id == pid).await;
    assert_eq!(m.sender, Jid::with_device(B, Server::Pn, 0));

    // B is removed: a1's next message uses a new sender key that only A's devices get.
    groups
        .participants_update(&g, &[Jid::pn(B)], ParticipantAction::Remove)
        .await
        .unwrap();
    let k4 = a1
        .messenger
        .send_message(&g, MessageContent::text("after bob left"))
        .await
        .unwrap();
    let m = next_upsert(&mut a2.events, |m| m.key.id == k4.id).await;
    assert_eq!(text_of(&m.message), Some("after bob left"));
    let have = a1.store.sender_key_devices(&g.to_string()).await.unwrap();
    assert!(
        !have.iter().any(|d| d.starts_with(B)),
        "the removed member's devices are forgotten: {have:?}"
    );
    assert_eq!(
        count_upserts(&mut b1.events, &k4.id, Duration::from_secs(1)).await,
        0
    );
}

/// A raw `<message>` from a1's socket to b1 carrying `enc` (or nothing).
fn raw_message(id: &str, to_device: &Jid, enc: Option<(&str, Vec<u8>)>) -> wa_binary::Node {
    use wa_binary::Node;
    let mut to = Node::builder("to").attr("jid", to_device.clone());
    if let Some((kind, bytes)) = enc {
        to = to.children([Node::builder("enc")
            .attr("v", "2")
            .attr("type", kind.to_owned())
            .bytes(bytes)
            .build()]);
    } else {
        to = to.children([Node::builder("unavailable").build()]);
    }
    Node::builder("message")
        .attr("id", id.to_owned())
        .attr("to", Jid::pn(to_device.user.clone()))
        .attr("type", "text")
        .children([Node::builder("participants").children([to.build()]).build()])
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ciphertexts_are_answered_and_never_reported() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let b = Jid::pn(B);
    // An established session first, so `msg` garbage meets a real one.
    let k = a1
        .messenger
        .send_message(&b, MessageContent::text("real"))
        .await
        .unwrap();
    next_upsert(&mut b1.events, |m| m.key.id == k.id).await;
    wait_until("queue drains", || sim.queued(&b1.jid) == 0).await;

    // Nothing to decrypt: acknowledged (the server drops it from b1's queue).
    a1.socket
        .send_node(&raw_message("3EB0BAD0000000000000001", &b1.jid, None))
        .await
        .unwrap();
    wait_until("empty message acked", || sim.queued(&b1.jid) == 0).await;

    // Garbage of every kind: a retry receipt each, no event.
    let garbage: [(&str, Vec<u8>); 4] = [
        ("msg", vec![0x33; 40]),
        ("pkmsg", vec![0x33, 0x08, 0xff, 0xff]),
        ("skmsg", vec![]),
        ("msg", k.id.as_bytes().to_vec()),
    ];
    for (i, (kind, bytes)) in garbage.into_iter().enumerate() {
        let id = format!("3EB0BAD000000000000001{i}");
        a1.socket
            .send_node(&raw_message(&id, &b1.jid, Some((kind, bytes))))
            .await
            .unwrap();
        let r = next_receipt(&mut a1.events, |u| u.key.id == id).await;
        assert_eq!(r.receipt, ReceiptType::Retry, "{kind}");
        assert_eq!(r.device, b1.jid);
    }
    // Each is nacked after its retry receipt, so the server holds none of them.
    wait_until("garbage nacked", || sim.queued(&b1.jid) == 0).await;

    // The same undecryptable id again and again: retry receipts up to 5, then an ack, so
    // the server stops delivering it.
    let id = "3EB0BAD0000000000000099";
    let mut retries = 0;
    for _ in 0..6 {
        a1.socket
            .send_node(&raw_message(id, &b1.jid, Some(("msg", vec![0x33; 50]))))
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(ev) = tokio::time::timeout_at(deadline, a1.events.recv()).await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(e) => panic!("event stream ended: {e}"),
        };
        if let Event::MessagesUpdate(u) = ev {
            retries += u
                .iter()
                .filter(|u| u.key.id == id && u.receipt == ReceiptType::Retry)
                .count();
        }
        if retries >= 5 {
            break;
        }
    }
    assert_eq!(retries, 5, "retry receipts stop at 5");
    // Every copy was nacked after its retry receipt, the sixth acked.
    wait_until("given up and acked", || sim.queued(&b1.jid) == 0).await;
    assert_eq!(
        count_upserts(&mut b1.events, id, Duration::from_millis(500)).await,
        0
    );

    // b1 still works.
    let k = a1
        .messenger
        .send_message(&b, MessageContent::text("still fine"))
        .await
        .unwrap();
    let got = next_upsert(&mut b1.events, |m| m.key.id == k.id).await;
    assert_eq!(text_of(&got.message), Some("still fine"));
}

/// A status update (`from="status@broadcast"`) by `author` to b1, sent by the server as
/// is, with an undecryptable sender-key payload and the timestamp `t`.
fn raw_status(id: &str, author: &Jid, t: u64) -> wa_binary::Node {
    use wa_binary::Node;
    Node::builder("message")
        .attr("id", id.to_owned())
        .attr("from", Jid::new("status", Server::Broadcast))
        .attr("participant", author.clone())
        .attr("t", t.to_string())
        .attr("type", "text")
        .children([Node::builder("enc")
            .attr("v", "2")
            .attr("type", "skmsg")
            .bytes(vec![0x33; 40])
            .build()])
        .build()
}

/// Retry receipts go out `retry_receipt_interval` apart (Baileys' `retryRequestDelayMs`),
/// and a status older than a day that cannot be decrypted is not asked for again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_receipts_are_spaced_and_expired_statuses_are_not_retried() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let config = MessengerConfig {
        retry_receipt_interval: Duration::from_millis(400),
        ..MessengerConfig::default()
    };
    let b1 = link_with(&sim, B, memory_store("b1"), config).await;

    let ids: Vec<String> = (0..4).map(|i| format!("3EB0SPACED00000000{i}")).collect();
    for id in &ids {
        a1.socket
            .send_node(&raw_message(id, &b1.jid, Some(("msg", vec![0x33; 40]))))
            .await
            .unwrap();
    }
    let mut at = Vec::new();
    for id in &ids {
        next_receipt(&mut a1.events, |u| {
            &u.key.id == id && u.receipt == ReceiptType::Retry
        })
        .await;
        at.push(Instant::now());
    }
    // Three intervals of 400 ms between the first and the last (less a margin for the
    // way back to a1).
    let spread = at[3] - at[0];
    assert!(spread >= Duration::from_millis(1000), "{spread:?}");

    // Statuses: a fresh one gets its retry receipt, one older than a day does not.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old = "3EB0OLDSTATUS00000000";
    assert_eq!(
        sim.send_raw(&b1.jid, raw_status(old, &a1.jid, now - 2 * 24 * 3600))
            .await,
        1
    );
    let fresh = "3EB0FRESHSTATUS000000";
    sim.send_raw(&b1.jid, raw_status(fresh, &a1.jid, now)).await;
    let r = next_receipt(&mut a1.events, |u| {
        u.receipt == ReceiptType::Retry && (u.key.id == old || u.key.id == fresh)
    })
    .await;
    assert_eq!(r.key.id, fresh, "the expired status is not asked for again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processed_marker_survives_a_restart_between_commit_and_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b1.db");
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let a1 = link(&sim, A, memory_store("a1")).await;
    let open = || sqlite_store(&path, "b1");
    let mut b1 = link(&sim, B, open().await).await;
    let b_jid = b1.jid.clone();

    // b1 processes the message, then loses its connection before the receipt reaches the
    // server, cannot log in again, and is shut down.
    sim.fault(Fault::RefuseLogins(Some(503)));
    sim.fault(Fault::DropAfterDeliver(b_jid.clone()));
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("exactly once"))
        .await
        .unwrap();
    next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
    wait_until("b1 offline", || !sim.is_online(&b_jid)).await;
    assert_eq!(
        sim.queued_messages(&b_jid),
        1,
        "the server still holds the message"
    );
    // An orderly stop: the messenger settles after its socket closed.
    b1.socket.close().await;
    b1.messenger.settle().await;
    drop(b1);

    // A new process from the same database gets it again and only answers it.
    sim.fault(Fault::RefuseLogins(None));
    let mut b1 = restart(&sim, open().await, b_jid.clone()).await;
    wait_until("redelivery settled", || sim.queued(&b_jid) == 0).await;
    assert_eq!(
        count_upserts(&mut b1.events, &key.id, Duration::from_secs(1)).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_and_polls_reach_the_peer() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("pin me"))
        .await
        .unwrap();
    let got = next_upsert(&mut b1.events, |m| m.key.id == key.id).await;

    // b1 pins a1's message in their chat; a1 gets the pin of its own message.
    let mut a_events = a1.socket.events();
    let pin = b1
        .messenger
        .send_message(
            &Jid::pn(A),
            MessageContent::Pin {
                key: got.key.clone(),
                pin: true,
                duration_secs: wa_messages::DEFAULT_PIN_SECS,
                sender_timestamp_ms: now_ms(),
            },
        )
        .await
        .unwrap();
    let seen = next_upsert(&mut a_events, |m| m.key.id == pin.id).await;
    let p = seen.message.pin_in_chat_message.as_ref().expect("a pin");
    assert_eq!(
        p.r#type(),
        wa_proto::e2e::pin_in_chat_message::Type::PinForAll
    );
    assert_eq!(p.key.as_ref().and_then(|k| k.id.as_deref()), Some(&*key.id));
    assert_eq!(
        seen.message
            .message_context_info
            .as_ref()
            .and_then(|c| c.message_add_on_duration_in_secs),
        Some(wa_messages::DEFAULT_PIN_SECS)
    );

    // A poll goes out with its creation meta node and arrives whole.
    let poll = a1
        .messenger
        .send_message(
            &Jid::pn(B),
            MessageContent::Poll(wa_messages::Poll {
                name: "lunch?".into(),
                options: vec!["yes".into(), "no".into()],
                selectable_count: 1,
                to_announcement_group: false,
            }),
        )
        .await
        .unwrap();
    let seen = next_upsert(&mut b1.events, |m| m.key.id == poll.id).await;
    let creation = seen
        .message
        .poll_creation_message_v3
        .as_ref()
        .expect("a single-choice poll");
    assert_eq!(creation.name.as_deref(), Some("lunch?"));
}

/// Every upsert already on `rx`, by message id.
fn drain_upserts(rx: &mut broadcast::Receiver<Event>, into: &mut Vec<wa_types::WaMessage>) {
    loop {
        match rx.try_recv() {
            Ok(Event::MessagesUpsert(u)) => into.extend(u.messages),
            Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_a_crash_left_unreported_are_reported_after_the_restart() {
    const N: usize = 20;
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let a1 = link(&sim, A, memory_store("a1")).await;
    let b_store = memory_store("b1");
    let b1 = link(&sim, B, b_store.clone()).await;
    let b_jid = b1.jid.clone();
    b1.socket.close().await;
    drop(b1);
    wait_until("b1 offline", || !sim.is_online(&b_jid)).await;
    let mut sent = Vec::new();
    for i in 0..N {
        let k = a1
            .messenger
            .send_message(&Jid::pn(B), MessageContent::text(format!("backlog {i}")))
            .await
            .unwrap();
        sent.push(k.id);
    }

    // b1 comes back; the server streams the backlog but not its end, so b1 decrypts,
    // commits and answers every message and holds their reports for the end of the
    // backlog. Then the process dies: no close, no settle.
    sim.fault(Fault::WithholdOfflineMarker(true));
    let mut b1 = restart(&sim, b_store.clone(), b_jid.clone()).await;
    wait_until("backlog answered", || sim.queued(&b_jid) == 0).await;
    let mut before = Vec::new();
    drain_upserts(&mut b1.events, &mut before);
    let Client {
        socket, messenger, ..
    } = b1;
    drop(messenger);
    socket.close().await;
    drop(socket);
    wait_until("b1 offline", || !sim.is_online(&b_jid)).await;
    assert_eq!(sim.queued(&b_jid), 0, "the server holds nothing for b1");

    // The next process reports what the first one committed and never reported.
    sim.fault(Fault::WithholdOfflineMarker(false));
    let mut b1 = restart(&sim, b_store.clone(), b_jid.clone()).await;
    let mut after = Vec::new();
    let deadline = Instant::now() + WAIT;
    let seen = |before: &[wa_types::WaMessage], after: &[wa_types::WaMessage]| {
        before
            .iter()
            .chain(after)
            .map(|m| m.key.id.clone())
            .collect::<std::collections::HashSet<_>>()
    };
    while seen(&before, &after).len() < N {
        assert!(
            Instant::now() < deadline,
            "{} of {N} messages reported ({} before the crash)",
            seen(&before, &after).len(),
            before.len()
        );
        drain_upserts(&mut b1.events, &mut after);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = seen(&before, &after);
    assert!(sent.iter().all(|id| all.contains(id)));
    for m in &after {
        assert!(m.offline, "a recovered message counts as offline");
        assert_eq!(m.key.remote_jid, Jid::pn(A));
        assert!(!m.key.from_me);
        assert!(text_of(&m.message).is_some_and(|t| t.starts_with("backlog ")));
    }
    // In the order they were processed, each once.
    let order: Vec<&String> = after.iter().map(|m| &m.key.id).collect();
    let expected: Vec<&String> = sent.iter().filter(|id| order.contains(id)).collect();
    assert_eq!(order, expected);

    // Once reported, the store keeps nothing more for them.
    let deadline = Instant::now() + WAIT;
    while !b_store.inbox().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the inbox was never emptied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        count_upserts(&mut b1.events, &sent[0], Duration::from_millis(300)).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_change_drops_the_sessions_before_the_next_send() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let b = Jid::pn(B);
    let sessions_with_b = |store: wa_store::AccountStore| async move {
        let lid = store.lid_for_pn(B).await.unwrap();
        let mut n = store.session_devices(B).await.unwrap().len();
        if let Some(lid) = lid {
            n += store
                .session_devices(&Jid::lid(lid).signal_address_name())
                .await
                .unwrap()
                .len();
        }
        n
    };
    let k = a1
        .messenger
        .send_message(&b, MessageContent::text("before"))
        .await
        .unwrap();
    wait_until("B's phone decrypts", || {
        sim.phone_inbox(B).iter().any(|m| m.id == k.id)
    })
    .await;
    assert!(sessions_with_b(a1.store.clone()).await > 0);
    // The send issued our privacy token to B; wait until a1 recorded it.
    let key = wa_socket::privacy_token::storage_jid(&a1.store, &b).await;
    let deadline = Instant::now() + WAIT;
    while a1
        .store
        .get_privacy_token(&key)
        .await
        .unwrap()
        .is_none_or(|r| r.sender_timestamp == 0)
    {
        assert!(Instant::now() < deadline, "issuance not recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sim.privacy_tokens_issued(), 1);

    // B reinstalls: a1 is told, drops its sessions with B and reports the change.
    sim.reset_identity(B, true).unwrap();
    let change = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(Event::IdentityChange(c)) = a1.events.recv().await {
                return c;
            }
        }
    })
    .await
    .expect("an identity change event");
    assert_eq!(change.jid, b);
    assert!(change.timestamp > 0);
    assert_eq!(sessions_with_b(a1.store.clone()).await, 0);
    // And issues its privacy token to B again.
    wait_until("the token issued again", || {
        sim.privacy_tokens_issued() == 2
    })
    .await;

    // The next message starts a new session from B's new keys and decrypts at once.
    let k = a1
        .messenger
        .send_message(&b, MessageContent::text("after"))
        .await
        .unwrap();
    wait_until("B's new phone decrypts", || {
        sim.phone_inbox(B).iter().any(|m| m.id == k.id)
    })
    .await;
    let got = sim
        .phone_inbox(B)
        .into_iter()
        .find(|m| m.id == k.id)
        .unwrap();
    assert_eq!(text_of(&got.message), Some("after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_identity_in_a_message_is_accepted_and_reported() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let b = Jid::pn(B);
    let k = a1
        .messenger
        .send_message(&b, MessageContent::text("before"))
        .await
        .unwrap();
    wait_until("B's phone decrypts", || {
        sim.phone_inbox(B).iter().any(|m| m.id == k.id)
    })
    .await;

    // B reinstalls without the server saying so; its phone writes with its new identity.
    sim.reset_identity(B, false).unwrap();
    let id = sim
        .phone_send(
            B,
            &Jid::pn(A),
            wa_proto::e2e::Message {
                conversation: Some("new phone, who dis".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut change = None;
    let mut got = None;
    tokio::time::timeout(WAIT, async {
        while change.is_none() || got.is_none() {
            match a1.events.recv().await {
                Ok(Event::IdentityChange(c)) => change = Some(c),
                Ok(Event::MessagesUpsert(u)) => {
                    if let Some(m) = u.messages.into_iter().find(|m| m.key.id == id) {
                        got = Some(m);
                    }
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the message and an identity change");
    let change = change.unwrap();
    assert!(change.implicit);
    assert!(change.trusted, "accepted by default");
    let b_lid = sim.account(B).unwrap().lid;
    assert!(
        change.jid.same_user(&b) || change.jid.same_user(&b_lid),
        "{}",
        change.jid
    );
    assert_eq!(change.jid.device, 0);
    assert_eq!(text_of(&got.unwrap().message), Some("new phone, who dis"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_phone_resends_what_this_device_could_not_decrypt() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mc = MessengerConfig {
        placeholder_resend_delay: Some(Duration::from_millis(200)),
        ..MessengerConfig::default()
    };
    let mut b1 = link_with(&sim, B, memory_store("b1"), mc.clone()).await;
    let b = Jid::pn(B);
    exchange(&a1, &mut b1, B, "first").await;
    // b1 answers, so a1's next message is a plain `msg` on the established session.
    exchange(&b1, &mut a1, A, "ack").await;

    // While b1 is away it loses its session with a1; a1 sends and goes away for good,
    // so nobody answers b1's retry receipt: only B's phone, which decrypted its own copy,
    // can help.
    let (b_store, b_jid) = (b1.store.clone(), b1.jid.clone());
    b1.socket.close().await;
    drop(b1);
    wait_until("b1 offline", || !sim.is_online(&b_jid)).await;
    let dev = u32::from(a1.jid.device);
    let lid = b_store.lid_for_pn(A).await.unwrap();
    let names = [Some(A.to_owned()), lid.map(|l| format!("{l}_1"))];
    for name in names.iter().flatten() {
        b_store.delete_session(name, dev).await.unwrap();
    }
    let key = a1
        .messenger
        .send_message(&b, MessageContent::text("lost in transit"))
        .await
        .unwrap();
    let a_jid = a1.jid.clone();
    a1.socket.close().await;
    drop(a1);
    wait_until("a1 offline", || !sim.is_online(&a_jid)).await;
    let (_socket, messenger, mut events) = start_with(&sim, b_store, mc);
    // First reported as undecryptable, then delivered.
    let failed = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(Event::UndecryptableMessage(u)) => return *u,
                Ok(Event::MessagesUpsert(u)) => {
                    assert!(
                        u.messages.iter().all(|m| m.key.id != key.id),
                        "upsert first"
                    );
                }
                _ => {}
            }
        }
    })
    .await
    .expect("an undecryptable-message event");
    assert_eq!(failed.key.id, key.id);
    assert_eq!(failed.sender, a_jid);
    assert!(failed.offline);
    let got = next_upsert(&mut events, |m| m.key.id == key.id).await;
    assert_eq!(text_of(&got.message), Some("lost in transit"));
    assert_eq!(got.sender, a_jid);
    let request = got
        .request_id
        .clone()
        .expect("the answer names its request");
    assert_ne!(request, key.id, "the request is a message of its own");
    assert!(
        sim.phone_inbox(B).iter().any(|m| m.id == key.id),
        "the phone had it"
    );
    // Reported once, even if asked again.
    messenger
        .request_placeholder_resend(std::slice::from_ref(&got.key))
        .await
        .unwrap();
    assert_eq!(
        count_upserts(&mut events, &key.id, Duration::from_millis(700)).await,
        0
    );
    assert!(matches!(
        messenger.request_placeholder_resend(&[]).await,
        Err(wa_messages::Error::NoMessageKeys)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_stanza_attributes_and_nodes_ride_along() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let message = wa_messages::MessageBuilder::new(Jid::pn(B), MessageContent::text("with biz"))
        .build(&mut OsRng)
        .unwrap();
    let options = wa_messages::RelayOptions::default()
        .attr("x-test", "1")
        .node(wa_binary::Node::builder("biz").build());
    let id = "3EB0B12B12B12B12B12B12";
    let key = a1
        .messenger
        .relay_message_with(&Jid::pn(B), message, id, &options)
        .await
        .unwrap();
    assert_eq!(key.id, id);
    let got = next_upsert(&mut b1.events, |m| m.key.id == id).await;
    assert_eq!(text_of(&got.message), Some("with biz"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_asserted_ahead_of_sending() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let b_phone = Jid::with_device(B, Server::Pn, 0);
    let devices = [b1.jid.clone(), b_phone];
    let keys = || sim.prekey_count(&b1.jid).unwrap_or(0);
    // b1 uploads its pre-keys after logging in.
    wait_until("b1's pre-keys", || keys() >= 30).await;
    let before = keys();

    // Two devices without a session: both started, each taking one of b1's pre-keys.
    assert_eq!(
        a1.messenger.assert_sessions(&devices, false).await.unwrap(),
        2
    );
    assert_eq!(keys(), before - 1);
    // Already there: nothing fetched.
    assert_eq!(
        a1.messenger.assert_sessions(&devices, false).await.unwrap(),
        0
    );
    assert_eq!(keys(), before - 1);
    // Forced: fresh sessions in place of the stored ones.
    assert_eq!(
        a1.messenger.assert_sessions(&devices, true).await.unwrap(),
        2
    );
    assert_eq!(keys(), before - 2);
    // A device the server has no keys for is left out.
    let unknown = Jid::with_device(B, Server::Pn, 77);
    assert_eq!(
        a1.messenger
            .assert_sessions(&[unknown], false)
            .await
            .unwrap(),
        0
    );

    // The asserted session carries the next message, with no further key fetch.
    let key = a1
        .messenger
        .send_message(&Jid::pn(B), MessageContent::text("warm"))
        .await
        .unwrap();
    let got = next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
    assert_eq!(text_of(&got.message), Some("warm"));
    assert_eq!(keys(), before - 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_senders_push_name_is_reported_when_it_changes() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let b1 = link(&sim, B, memory_store("b1")).await;
    let a = Jid::pn(A);
    let set_name = |name: &str| {
        wa_binary::Node::builder("presence")
            .attr("type", "unavailable")
            .attr("name", name.to_owned())
            .build()
    };
    let send = |text: &'static str| {
        let (m, a) = (b1.messenger.clone(), a.clone());
        async move {
            m.send_message(&a, MessageContent::text(text))
                .await
                .unwrap()
        }
    };
    // The name B's messages carry, as the next push-name event (None when none comes).
    async fn name_after(
        events: &mut broadcast::Receiver<Event>,
        id: &str,
    ) -> Option<wa_types::PushNameUpdate> {
        next_upsert(events, |m| m.key.id == id).await;
        tokio::time::timeout(Duration::from_millis(700), async {
            loop {
                match events.recv().await {
                    Ok(Event::ContactPushName(u)) => return u,
                    Ok(_) => {}
                    Err(e) => panic!("event stream ended: {e}"),
                }
            }
        })
        .await
        .ok()
    }

    b1.socket.send_node(&set_name("Bob")).await.unwrap();
    wait_until("the server knows B's name", || {
        sim.push_name(B).as_deref() == Some("Bob")
    })
    .await;
    let first = send("one").await;
    let u = name_after(&mut a1.events, &first.id)
        .await
        .expect("first seen");
    assert_eq!(u.jid, Jid::pn(B));
    assert_eq!(u.push_name, "Bob");
    // Unchanged: nothing more.
    let second = send("two").await;
    assert_eq!(name_after(&mut a1.events, &second.id).await, None);
    // Changed: reported again.
    b1.socket.send_node(&set_name("Bobby")).await.unwrap();
    wait_until("the server knows B's new name", || {
        sim.push_name(B).as_deref() == Some("Bobby")
    })
    .await;
    let third = send("three").await;
    let u = name_after(&mut a1.events, &third.id)
        .await
        .expect("changed");
    assert_eq!(u.push_name, "Bobby");
}
