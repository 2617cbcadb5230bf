//! Several accounts in one process over one SQLite file: each account is a separate
//! `WaSocket` with its own account id in the shared store; every account logs what it
//! receives. Link new ones by scanning the printed QR strings.
//!
//! `cargo run -p wa --example multi_account -- accounts.db alice bob carol`

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;

use wa::prelude::*;
use wa::{AccountId, AccountStore, SqliteBackend};

#[tokio::main]
async fn main() -> Result<(), wa::Error> {
    let mut args = std::env::args().skip(1);
    let db = args.next().unwrap_or_else(|| "accounts.db".into());
    let names: Vec<String> = args.collect();
    let backend = Arc::new(SqliteBackend::open(&db).await?);
    let mut tasks = Vec::new();
    for name in names {
        let store = AccountStore::new(backend.clone(), AccountId::new(name.as_str())?);
        let sock = make_wa_socket(WaConfig::new(store))?;
        let mut events = sock.events();
        tasks.push(tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Event::Connection(u) => match u.qr {
                        Some(qr) => println!("[{name}] link: {qr}"),
                        None => println!("[{name}] {:?}", u.state),
                    },
                    Event::MessagesUpsert(up) => {
                        for m in up.messages.iter().filter(|m| !m.key.from_me) {
                            let text = message_text(&m.message).unwrap_or("(non-text)");
                            println!("[{name}] {} says {text}", m.key.remote_jid);
                        }
                    }
                    _ => {}
                }
            }
            drop(sock);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
