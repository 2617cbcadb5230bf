//! The facade's calls layer against wa-sim: a bot that rejects every incoming call.

use std::sync::Arc;
use std::time::Duration;

use wa::prelude::*;
use wa_sim::{Sim, SimConfig};

const BOT: &str = "15550000031";
const FRIEND: &str = "15550000032";

/// Rejects each call offer; returns the ids it rejected once `stop` calls were seen
/// ending.
async fn call_rejecter(
    sim: Arc<Sim>,
    sock: WaSocket,
    stop: usize,
) -> Result<Vec<String>, wa::Error> {
    let mut events = sock.events();
    let (mut rejected, mut ended) = (Vec::new(), 0);
    while let Some(event) = events.next().await {
        match event {
            Event::Connection(update) => {
                if let Some(qr) = update.qr {
                    sim.scan_qr(BOT, &qr).await.expect("the phone scans");
                }
            }
            Event::Call(call) if call.status == CallStatus::Offer => {
                sock.calls().reject_call(&call.id, &call.from).await?;
                rejected.push(call.id);
            }
            Event::Call(call) if call.status == CallStatus::Terminate => {
                ended += 1;
                if ended == stop {
                    break;
                }
            }
            _ => {}
        }
    }
    Ok(rejected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_rejects_calls_through_the_facade() {
    let sim = Arc::new(Sim::start(SimConfig::default()).await.unwrap());
    sim.add_account(BOT).await;
    sim.add_account(FRIEND).await;
    let mut config = WaConfig::new(wa::memory_store("bot").unwrap());
    config.socket.ws_url = sim.ws_url();
    config.socket.noise_root = sim.root_public_key();
    config.media.https = false;
    let sock = make_wa_socket(config).unwrap();
    let bot = tokio::spawn(call_rejecter(sim.clone(), sock.clone(), 1));
    let mut state = sock.socket().state_watch();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if sim.linked_devices(BOT).len() == 1 && *state.borrow() == ConnectionState::Open {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), state.changed()).await;
        }
    })
    .await
    .expect("linked in time");

    let call_id = sim.place_call(FRIEND, BOT, false).unwrap();
    let rejected = tokio::time::timeout(Duration::from_secs(20), bot)
        .await
        .expect("the bot sees the call end")
        .unwrap()
        .unwrap();
    assert_eq!(rejected, std::slice::from_ref(&call_id));
    assert!(
        sim.phone_calls(FRIEND)
            .iter()
            .any(|n| n.call_id == call_id && n.kind == "reject")
    );
    let link = sock
        .calls()
        .create_call_link(wa::CallMedia::Audio, None)
        .await
        .unwrap();
    assert_eq!(sim.call_link_owner(&link.token), Some(Jid::pn(BOT)));
    sock.close().await;
}
