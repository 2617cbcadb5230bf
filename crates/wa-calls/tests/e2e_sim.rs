//! Calls through wa-sim: an offer from another account arrives as an event, a reject
//! reaches the caller and ends the call with a terminate; a missed call; call links.

use std::time::Duration;

use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_calls::{CallEvent, CallMedia, CallStatus, Calls, CallsConfig, Error};
use wa_sim::{Sim, SimConfig};
use wa_socket::Event;

const A: &str = "15550000021";
const B: &str = "15550000022";

async fn next_call(
    rx: &mut broadcast::Receiver<Event>,
    mut pred: impl FnMut(&CallEvent) -> bool,
) -> CallEvent {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(Event::Call(c)) if pred(&c) => return *c,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("call event in time")
}

/// Waits until `pred` holds, polling the simulator.
async fn eventually(what: &str, mut pred: impl FnMut() -> bool) {
    for _ in 0..200 {
        if pred() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_call_reject_missed_call_and_call_link() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, dev_a) = wa_testkit::link(&sim, A).await;
    let (sock_b, _) = wa_testkit::link(&sim, B).await;
    let calls_a = Calls::new(sock_a.clone(), &CallsConfig::default());
    let _calls_b = Calls::new(sock_b.clone(), &CallsConfig::default());
    let mut ev_a = sock_a.events();
    let mut ev_b = sock_b.events();

    // B's phone calls A (video): A's device gets the offer as an event.
    let call_id = sim.place_call(B, A, true).unwrap();
    let offer = next_call(&mut ev_a, |c| c.id == call_id).await;
    assert_eq!(offer.status, CallStatus::Offer);
    assert_eq!(offer.from, Jid::pn(B));
    assert_eq!(offer.chat, Jid::pn(B));
    assert!(offer.is_video && !offer.is_group && !offer.offline);
    assert!(offer.timestamp > 0);

    // A rejects: the caller's phone gets the reject, B's linked device too, and A's
    // device gets the terminate, still knowing it was a video call.
    calls_a.reject_call(&offer.id, &offer.from).await.unwrap();
    let end = next_call(&mut ev_a, |c| c.id == call_id).await;
    assert_eq!(end.status, CallStatus::Terminate);
    assert!(end.is_video, "the flag comes from the remembered offer");
    let seen_by_b = next_call(&mut ev_b, |c| c.id == call_id).await;
    assert_eq!(seen_by_b.status, CallStatus::Reject);
    assert_eq!(seen_by_b.chat, Jid::pn(A));
    eventually("the caller's phone saw the reject", || {
        sim.phone_calls(B)
            .iter()
            .any(|n| n.call_id == call_id && n.kind == "reject" && n.from == Jid::pn(A))
    })
    .await;
    // Every call stanza was acknowledged: nothing waits in A's delivery queue.
    eventually("call stanzas acked", || sim.queued(&dev_a) == 0).await;

    // A missed call: the offer, then the caller gives up.
    let missed = sim.place_call(B, A, false).unwrap();
    let offer = next_call(&mut ev_a, |c| c.id == missed).await;
    assert_eq!(offer.status, CallStatus::Offer);
    assert!(!offer.is_video);
    assert!(sim.end_call(&missed, Some("timeout")));
    assert!(!sim.end_call(&missed, None), "an ended call stays ended");
    let timeout = next_call(&mut ev_a, |c| c.id == missed).await;
    assert_eq!(timeout.status, CallStatus::Timeout);
    assert_eq!(timeout.reason.as_deref(), Some("timeout"));
    // Rejecting a call that is over changes nothing for the caller.
    calls_a.reject_call(&missed, &Jid::pn(B)).await.unwrap();

    // A call while A is offline arrives, marked offline, once A is back.
    sock_a.close().await;
    let offline_call = sim.place_call(B, A, false).unwrap();
    assert!(sim.end_call(&offline_call, None));
    let sock_a2 = wa_socket::Socket::connect(wa_testkit::config(&sim, sock_a.store().clone()));
    let calls_a2 = Calls::new(sock_a2.clone(), &CallsConfig::default());
    let mut ev_a2 = sock_a2.events_from_start();
    let late = next_call(&mut ev_a2, |c| c.id == offline_call).await;
    assert_eq!(late.status, CallStatus::Offer);
    assert!(late.offline);
    let late_end = next_call(&mut ev_a2, |c| c.id == offline_call).await;
    assert_eq!(late_end.status, CallStatus::Terminate);

    // Call links: a token the server issued to A.
    let link = calls_a2
        .create_call_link(CallMedia::Video, None)
        .await
        .unwrap();
    assert!(!link.token.is_empty());
    assert_eq!(sim.call_link_owner(&link.token), Some(Jid::pn(A)));
    assert!(link.url().starts_with("https://call.whatsapp.com/video/"));
    let scheduled = calls_a2
        .create_call_link(CallMedia::Audio, Some(1_900_000_000))
        .await
        .unwrap();
    assert_ne!(scheduled.token, link.token);

    // Misuse fails before anything is sent.
    assert!(matches!(
        calls_a2.reject_call("", &Jid::pn(B)).await,
        Err(Error::InvalidRequest(_))
    ));
    sock_a2.close().await;
    sock_b.close().await;
}
