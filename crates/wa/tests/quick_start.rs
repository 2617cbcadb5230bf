//! The README's echo bot, run against wa-sim: it is linked by scanning the QR code it
//! reports, and echoes a text the simulated phone of another account sends it, quoting it.

use std::sync::Arc;
use std::time::Duration;

use wa::prelude::*;
use wa_sim::{Sim, SimConfig};

const BOT: &str = "15550000001";
const FRIEND: &str = "15550000002";

/// The README's loop, with the QR code handed to the simulator instead of printed.
async fn echo_bot(sim: Arc<Sim>, sock: WaSocket) -> Result<(), wa::Error> {
    let mut events = sock.events();
    while let Some(event) = events.next().await {
        match event {
            Event::Connection(update) => {
                if let Some(qr) = update.qr {
                    sim.scan_qr(BOT, &qr)
                        .await
                        .expect("the phone scans the QR code");
                }
            }
            Event::MessagesUpsert(upsert) => {
                for m in upsert.messages.iter().filter(|m| !m.key.from_me) {
                    if let Some(text) = message_text(&m.message) {
                        sock.reply(m, MessageContent::text(text)).await?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_bot_answers_a_friend() {
    let sim = Arc::new(Sim::start(SimConfig::default()).await.unwrap());
    sim.add_account(BOT).await;
    sim.add_account(FRIEND).await;
    let mut config = WaConfig::new(wa::memory_store("bot").unwrap());
    config.socket.ws_url = sim.ws_url();
    config.socket.noise_root = sim.root_public_key();
    config.media.https = false;
    let sock = make_wa_socket(config).unwrap();
    let bot = tokio::spawn(echo_bot(sim.clone(), sock.clone()));
    // Wait until the bot is linked and logged in.
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

    let hello = wa::proto::e2e::Message {
        conversation: Some("hello bot".into()),
        ..Default::default()
    };
    let id = sim.phone_send(FRIEND, &Jid::pn(BOT), hello).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(m) = sim
                .phone_inbox(FRIEND)
                .into_iter()
                .find(|m| message_text(&m.message) == Some("hello bot"))
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the echo arrives");
    assert_eq!(echo.chat, Jid::pn(BOT));
    let quoted = echo
        .message
        .extended_text_message
        .as_ref()
        .and_then(|e| e.context_info.as_ref())
        .and_then(|c| c.stanza_id.clone());
    assert_eq!(
        quoted.as_deref(),
        Some(id.as_str()),
        "the echo quotes the message"
    );
    sock.close().await;
    bot.abort();
}
