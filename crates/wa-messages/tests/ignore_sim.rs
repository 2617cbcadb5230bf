//! Ignored chats through wa-sim: the socket's `ignore_jid` drops a chat's stanzas before
//! any layer sees them, while every other chat goes on as usual.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_messages::{MessageContent, Messenger, MessengerConfig};
use wa_proto::e2e::Message;
use wa_sim::{Sim, SimConfig};
use wa_socket::{Event, Socket};
use wa_usync::{Usync, UsyncConfig};

const A: &str = "15550000001";
const B: &str = "15550000002";
const C: &str = "15550000003";

fn text(t: &str) -> Message {
    Message {
        conversation: Some(t.to_owned()),
        ..Default::default()
    }
}

/// Message ids of the upserts (our own sends' included) and receipts `events` reports
/// within `window`; each receipt's id is followed by its type.
async fn reported(events: &mut broadcast::Receiver<Event>, window: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + window;
    let mut ids = Vec::new();
    while let Ok(e) = tokio::time::timeout_at(deadline, events.recv()).await {
        match e {
            Ok(Event::MessagesUpsert(u)) => ids.extend(u.messages.iter().map(|m| m.key.id.clone())),
            Ok(Event::MessagesUpdate(u)) => {
                ids.extend(u.iter().map(|m| format!("{} {:?}", m.key.id, m.receipt)))
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => panic!("event stream ended: {e}"),
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ignored_chat_is_acknowledged_and_never_reported() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    for p in [A, B, C] {
        sim.add_account(p).await;
    }
    let (b, c) = (Jid::pn(B), Jid::pn(C));
    let b_lid = sim.account(B).unwrap().lid;
    let mut cfg = config(&sim, memory_store("a1"));
    cfg.ignore_jid = Some(Arc::new(move |j: &Jid| {
        j.user == b_lid.user || j.user.as_str() == B
    }));
    let socket = Socket::connect(cfg);
    let mut events = socket.events_from_start();
    let usync = Usync::new(socket.clone(), &UsyncConfig::default());
    let messenger = Messenger::new(socket.clone(), usync, MessengerConfig::default());
    let me = wa_testkit::scan_and_login(&sim, A, &mut events).await;

    // Incoming: B's message is nacked unread, C's arrives. Outgoing still works, but
    // the receipts about the ignored chat (B's phone's, and our own phone's "sender"
    // receipt, which names B as its recipient) are dropped.
    let from_b = sim
        .phone_send(B, &Jid::pn(A), text("from b"))
        .await
        .unwrap();
    let from_c = sim
        .phone_send(C, &Jid::pn(A), text("from c"))
        .await
        .unwrap();
    let to_b = messenger
        .send_message(&b, MessageContent::text("to b"))
        .await
        .unwrap();
    let to_c = messenger
        .send_message(&c, MessageContent::text("to c"))
        .await
        .unwrap();
    let seen = reported(&mut events, Duration::from_secs(2)).await;
    let count = |id: &str| seen.iter().filter(|s| s.starts_with(id)).count();
    assert_eq!(count(&from_c), 1, "C's message is reported");
    let sender = format!("{} Sender", to_c.id);
    assert!(
        seen.contains(&sender),
        "our phone's receipt of C's chat: {seen:?}"
    );
    let delivered = format!("{} Delivered", to_c.id);
    assert!(seen.contains(&delivered), "C's phone's receipt: {seen:?}");
    assert_eq!(count(&from_b), 0, "B's message was reported");
    assert_eq!(
        count(&to_b.id),
        1,
        "only our send to B, no receipt: {seen:?}"
    );

    // Everything was acknowledged: nothing waits for redelivery.
    wait_until("the queue drains", || sim.queued(&me) == 0).await;
    socket.close().await;
}
