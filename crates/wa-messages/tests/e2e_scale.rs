//! Larger end-to-end runs through wa-sim: a five-member group where every member has two
//! devices (a linked client and the simulated phone), and thousands of messages delivered
//! through dropped connections, duplicated and reordered deliveries.

// The fault run reports its duration and redelivery count.
#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, broadcast};
use wa_binary::Jid;
use wa_groups::{Groups, GroupsConfig};
use wa_messages::{MessageContent, Messenger, MessengerConfig};
use wa_proto::e2e::Message;
use wa_sim::{Fault, Sim, SimConfig};
use wa_socket::{Event, Socket};
use wa_types::{ReceiptType, WaMessage};
use wa_usync::{Usync, UsyncConfig};

struct Member {
    phone: String,
    socket: Socket,
    messenger: Messenger,
    events: broadcast::Receiver<Event>,
}

async fn member(sim: &Sim, phone: &str) -> Member {
    // A bus large enough that a reader on a loaded machine never lags behind a burst.
    let mut config = wa_testkit::config(sim, wa_testkit::memory_store());
    config.event_capacity = 1 << 15;
    let (socket, _) = wa_testkit::link_configured(sim, phone, config).await;
    let events = socket.events();
    let usync = Usync::new(socket.clone(), &UsyncConfig::default());
    let groups = Groups::new(socket.clone(), &GroupsConfig::default());
    let messenger =
        Messenger::new(socket.clone(), usync, MessengerConfig::default()).with_groups(groups);
    Member {
        phone: phone.to_owned(),
        socket,
        messenger,
        events,
    }
}

fn text(m: &Message) -> Option<&str> {
    m.extended_text_message
        .as_deref()
        .and_then(|e| e.text.as_deref())
        .or(m.conversation.as_deref())
}

/// Collects received (not own) messages until `n` distinct ids have arrived.
async fn collect(
    rx: &mut broadcast::Receiver<Event>,
    n: usize,
    within: Duration,
) -> Vec<WaMessage> {
    let mut got: Vec<WaMessage> = Vec::new();
    let fut = async {
        while got.len() < n {
            match rx.recv().await {
                Ok(Event::MessagesUpsert(u)) => {
                    got.extend(u.messages.into_iter().filter(|m| !m.key.from_me));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(k)) => panic!("lagged by {k}"),
                Err(e) => panic!("events ended: {e}"),
            }
        }
    };
    tokio::time::timeout(within, fut)
        .await
        .expect("messages in time");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_member_group_every_device_decrypts_every_message() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let phones: Vec<String> = (1..=5).map(|i| format!("1555000010{i}")).collect();
    let mut members = Vec::new();
    for p in &phones {
        members.push(member(&sim, p).await);
    }
    let others: Vec<Jid> = phones[1..].iter().map(|p| Jid::pn(p.clone())).collect();
    let groups = Groups::new(members[0].socket.clone(), &GroupsConfig::default());
    let group = groups.create("Five", &others).await.unwrap().id.clone();

    // A second subscription of the first member, read only for receipts at the end.
    let mut first_receipts = members[0].socket.events();
    // Every member's client writes once.
    let mut ids = Vec::new();
    for m in &members {
        let key = m
            .messenger
            .send_message(
                &group,
                MessageContent::text(format!("hello from {}", m.phone)),
            )
            .await
            .unwrap();
        ids.push(key.id);
    }
    // Every client decrypts the four others' messages, with the right sender.
    for (i, m) in members.iter_mut().enumerate() {
        let got = collect(&mut m.events, 4, Duration::from_secs(60)).await;
        let mut texts: Vec<String> = got
            .iter()
            .map(|w| {
                assert_eq!(w.key.remote_jid, group);
                let sender = w.key.participant.as_ref().unwrap();
                let t = text(&w.message).unwrap().to_owned();
                assert_eq!(t, format!("hello from {}", sender.user));
                t
            })
            .collect();
        texts.sort();
        let mut want: Vec<String> = phones
            .iter()
            .filter(|p| **p != phones[i])
            .map(|p| format!("hello from {p}"))
            .collect();
        want.sort();
        assert_eq!(texts, want, "client of {}", phones[i]);
    }
    // Every phone decrypts all five (the four others' and its own companion's).
    let deadline = Instant::now() + Duration::from_secs(30);
    for p in &phones {
        loop {
            let inbox = sim.phone_inbox(p);
            let n = ids
                .iter()
                .filter(|id| inbox.iter().any(|m| &m.id == *id))
                .count();
            if n == ids.len() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "phone {p} has {n} of {}",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The first sender hears delivery receipts from the other members' devices.
    let mut delivered_by = std::collections::HashSet::new();
    let fut = async {
        while delivered_by.len() < 4 {
            if let Ok(Event::MessagesUpdate(us)) = first_receipts.recv().await {
                for u in us {
                    if u.key.id == ids[0] && u.receipt == ReceiptType::Delivered {
                        delivered_by.insert(u.device.user.to_string());
                    }
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("receipts from the four other members");
    for m in &members {
        m.socket.close().await;
    }
}

/// How many messages the fault run sends (`WA_FAULT_MESSAGES`, 10,000 by default).
fn fault_messages() -> usize {
    std::env::var("WA_FAULT_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_messages_through_drops_duplicates_and_reorders() {
    let n = fault_messages();
    let sim = Arc::new(Sim::start(SimConfig::default()).await.unwrap());
    let a = member(&sim, "15550000201").await;
    let b = member(&sim, "15550000202").await;
    let b_device = sim.linked_devices("15550000202")[0].jid.clone();
    let to = Jid::pn(b.phone.clone());

    // B's receiver: counts every reported message id.
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let redelivered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let lagged = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut b_events = b.socket.events();
    let collector = tokio::spawn({
        let seen = seen.clone();
        let redelivered = redelivered.clone();
        let lagged = lagged.clone();
        async move {
            loop {
                match b_events.recv().await {
                    Ok(Event::MessagesUpsert(u)) => {
                        let mut s = seen.lock().await;
                        for m in u.messages.iter().filter(|m| !m.key.from_me) {
                            *s.entry(m.key.id.clone()).or_default() += 1;
                            if m.offline {
                                redelivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(k)) => {
                        lagged.fetch_add(k, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(_) => return,
                }
            }
        }
    });

    // Faults while sending: drops right after a delivery (before the ack), duplicated
    // deliveries, offline queues delivered newest first.
    let chaos = tokio::spawn({
        let sim = sim.clone();
        let b_dev = b_device.clone();
        async move {
            let mut round = 0u32;
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                round += 1;
                sim.fault(Fault::DropAfterDeliver(b_dev.clone()));
                sim.fault(Fault::DuplicateDelivery(round.is_multiple_of(3)));
                sim.fault(Fault::ReorderOffline(round.is_multiple_of(2)));
            }
        }
    });

    // Eight senders share the messages.
    let started = Instant::now();
    let mut senders = Vec::new();
    for s in 0..8 {
        let messenger = a.messenger.clone();
        let to = to.clone();
        senders.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (s..n).step_by(8) {
                let body = MessageContent::text(format!("message {i}"));
                // A send can fail when the server closes the connection before its ack;
                // the message was not reported sent, so send it again.
                loop {
                    match messenger.send_message(&to, body.clone()).await {
                        Ok(k) => {
                            ids.push(k.id);
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
            ids
        }));
    }
    let mut sent = Vec::new();
    for s in senders {
        sent.extend(s.await.unwrap());
    }
    chaos.abort();
    sim.fault(Fault::DuplicateDelivery(false));
    sim.fault(Fault::ReorderOffline(false));

    // Wait until B reported every sent id. A lost message shows as no progress; a slow
    // (loaded) machine only as slow progress, so the bound is on the time without any.
    let (mut last, mut progress_at) = (0, Instant::now());
    loop {
        let have = {
            let s = seen.lock().await;
            sent.iter().filter(|id| s.contains_key(*id)).count()
        };
        if have == sent.len() {
            break;
        }
        if have > last {
            (last, progress_at) = (have, Instant::now());
        }
        let lost_events = lagged.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            lost_events, 0,
            "B's event reader lagged: events were dropped"
        );
        assert!(
            progress_at.elapsed() < Duration::from_secs(60),
            "B has {have} of {} and got nothing new for 60 s (the server dropped {} stanzas \
             at its queue bound; {} queued for B, B online: {})",
            sent.len(),
            sim.dropped_stanzas(),
            sim.queued(&b_device),
            sim.is_online(&b_device),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give late duplicates a moment to show up, then check: each exactly once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = seen.lock().await;
    let dupes: Vec<_> = s.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        dupes.is_empty(),
        "reported twice: {:?}",
        &dupes[..dupes.len().min(5)]
    );
    assert_eq!(sent.len(), n);
    let unknown = s.keys().filter(|id| !sent.contains(id)).count();
    assert_eq!(unknown, 0, "ids nobody sent");
    assert_eq!(
        sim.dropped_stanzas(),
        0,
        "the server's queues never overflowed"
    );
    // The faults really hit: messages came again from the offline queue after drops.
    let again = redelivered.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n < 1_000 || again > 0, "no message was redelivered");
    eprintln!(
        "{n} messages through faults in {:.1} s ({again} delivered from the offline queue)",
        started.elapsed().as_secs_f64()
    );
    collector.abort();
    a.socket.close().await;
    b.socket.close().await;
}
