//! Echo bot: links by QR code (printed as text to paste into any QR generator, or use
//! `wa login` for a terminal QR), then answers every text with the same text, quoting it.
//!
//! `cargo run -p wa --example echo_bot -- [auth.db]`

#![allow(clippy::print_stdout, clippy::print_stderr)]

use wa::prelude::*;

#[tokio::main]
async fn main() -> Result<(), wa::Error> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "echo-bot.db".into());
    let sock = make_wa_socket(WaConfig::new(wa::sqlite_store(&path, "default").await?))?;
    let mut events = sock.events();
    while let Some(event) = events.next().await {
        match event {
            Event::Connection(u) => {
                if let Some(qr) = u.qr {
                    println!("link this device: {qr}");
                } else {
                    println!("connection: {:?}", u.state);
                }
            }
            Event::MessagesUpsert(up) => {
                for m in up.messages.iter().filter(|m| !m.key.from_me) {
                    if let Some(text) = message_text(&m.message)
                        && let Err(e) = sock.reply(m, MessageContent::text(text)).await
                    {
                        eprintln!("reply failed: {e}");
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}
