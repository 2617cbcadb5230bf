//! `wa demo`: the whole stack against an in-process simulator, no network. Alice links a
//! device (credentials in SQLite), Bob links one too; they talk one to one (text, reply,
//! reaction, receipts), in a group with Carol (who has only her phone), vote in a poll,
//! exchange a picture; Alice's device restarts from its SQLite file and keeps the conversation going.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wa::prelude::*;
use wa::{ReceiptType, SqliteBackend};
use wa_sim::{Sim, SimConfig};

use crate::{Log, RemoveOnDrop, describe, render_qr};

const ALICE: &str = "15550000001";
const BOB: &str = "15550000002";
const CAROL: &str = "15550000003";
/// How long any one step may take.
const STEP: Duration = Duration::from_secs(30);

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn config(sim: &Sim, store: wa::AccountStore) -> WaConfig {
    let mut c = WaConfig::new(store);
    c.socket.ws_url = sim.ws_url();
    c.socket.noise_root = sim.root_public_key();
    c.media.https = false;
    c
}

/// Connects a device for `phone` and links it by QR (printed for the first device) unless
/// its store already holds credentials; returns once it is logged in.
async fn connect(
    log: &Log,
    who: &str,
    sim: &Sim,
    phone: &str,
    store: wa::AccountStore,
    print_qr: bool,
) -> Result<(WaSocket, wa::Events), String> {
    let sock = make_wa_socket(config(sim, store)).map_err(err)?;
    let mut events = sock.events();
    let step = async {
        loop {
            match events.next().await {
                Some(Event::Connection(u)) => {
                    log.line(who, describe(&u));
                    if let Some(qr) = &u.qr {
                        if print_qr {
                            println!("{}", render_qr(qr));
                        }
                        let device = sim.scan_qr(phone, qr).await.map_err(err)?;
                        log.line("phone", format!("+{phone} scanned the QR code: {device}"));
                    }
                    if u.state == ConnectionState::Open {
                        return Ok(());
                    }
                    if u.last_disconnect.is_some_and(|r| r.is_terminal()) {
                        return Err(format!("{who}: connection ended: {}", describe(&u)));
                    }
                }
                Some(_) => {}
                None => return Err(format!("{who}: socket gone")),
            }
        }
    };
    tokio::time::timeout(STEP, step)
        .await
        .map_err(|_| format!("{who}: no login within {STEP:?}"))??;
    Ok((sock, events))
}

/// Waits for a received (not own) message matching `pred`.
async fn receive(
    events: &mut wa::Events,
    mut pred: impl FnMut(&WaMessage) -> bool,
) -> Result<WaMessage, String> {
    let step = async {
        loop {
            match events.next().await {
                Some(Event::MessagesUpsert(u)) => {
                    if let Some(m) = u.messages.into_iter().find(|m| !m.key.from_me && pred(m)) {
                        return Ok(m);
                    }
                }
                Some(_) => {}
                None => return Err("socket gone".to_string()),
            }
        }
    };
    tokio::time::timeout(STEP, step)
        .await
        .map_err(|_| "no message in time".to_string())?
}

/// Waits for a receipt of `kind` for message `id`.
async fn receipt(events: &mut wa::Events, id: &str, kind: ReceiptType) -> Result<Jid, String> {
    let step = async {
        loop {
            match events.next().await {
                Some(Event::MessagesUpdate(updates)) => {
                    if let Some(u) = updates.iter().find(|u| u.key.id == id && u.receipt == kind) {
                        return Ok(u.device.clone());
                    }
                }
                Some(_) => {}
                None => return Err("socket gone".to_string()),
            }
        }
    };
    tokio::time::timeout(STEP, step)
        .await
        .map_err(|_| format!("no {kind:?} receipt in time"))?
}

/// Waits for the decrypted vote or event response carried by message `id`.
async fn addon(events: &mut wa::Events, id: &str) -> Result<wa::AddOnUpdate, String> {
    let step = async {
        loop {
            match events.next().await {
                Some(Event::AddOn(a)) if a.key.id == id => return Ok(*a),
                Some(_) => {}
                None => return Err("socket gone".to_string()),
            }
        }
    };
    tokio::time::timeout(STEP, step)
        .await
        .map_err(|_| "no decrypted vote in time".to_string())?
}

fn text_of(m: &WaMessage) -> String {
    message_text(&m.message).unwrap_or("").to_owned()
}

fn picture() -> Vec<u8> {
    let img = image::RgbImage::from_fn(160, 120, |x, y| {
        image::Rgb([(x * 255 / 160) as u8, (y * 255 / 120) as u8, 180])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    // invariant: encoding an in-memory RGB image as PNG cannot fail.
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("invariant: PNG encoding of a valid image");
    out.into_inner()
}

async fn sqlite(path: &std::path::Path) -> Result<wa::AccountStore, String> {
    let backend = SqliteBackend::open(path).await.map_err(err)?;
    Ok(wa::AccountStore::new(
        Arc::new(backend),
        wa::AccountId::new("alice").map_err(err)?,
    ))
}

pub(crate) async fn run() -> Result<(), String> {
    let log = Log(Instant::now());
    let sim = Sim::start(SimConfig::default()).await.map_err(err)?;
    log.line("wa-sim", format!("listening on {}", sim.ws_url()));
    for (name, phone) in [("Alice", ALICE), ("Bob", BOB), ("Carol", CAROL)] {
        let a = sim.add_account(phone).await;
        log.line("phone", format!("{name}: account +{phone} (lid {})", a.lid));
    }
    let dir = std::env::temp_dir().join(format!("wa-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(err)?;
    let _cleanup = RemoveOnDrop(dir.clone());
    let db = dir.join("alice.db");

    log.line(
        "alice",
        format!("new device, credentials in {}", db.display()),
    );
    let (alice, mut alice_ev) =
        connect(&log, "alice", &sim, ALICE, sqlite(&db).await?, true).await?;
    let (bob, mut bob_ev) = connect(
        &log,
        "bob",
        &sim,
        BOB,
        wa::memory_store("bob").map_err(err)?,
        false,
    )
    .await?;
    let (alice_jid, bob_jid) = (Jid::pn(ALICE), Jid::pn(BOB));

    // One to one: text, reply, reaction, receipts.
    let hi = alice
        .send_message(&bob_jid, MessageContent::text("Hi Bob! Lunch today?"))
        .await
        .map_err(err)?;
    log.line(
        "alice",
        format!("-> bob: \"Hi Bob! Lunch today?\" ({})", hi.id),
    );
    let got = receive(&mut bob_ev, |m| m.key.id == hi.id).await?;
    log.line("bob", format!("<- {}: \"{}\"", got.sender, text_of(&got)));
    let device = receipt(&mut alice_ev, &hi.id, ReceiptType::Delivered).await?;
    log.line("alice", format!("delivered to {device}"));
    bob.read_messages(std::slice::from_ref(&got.key))
        .await
        .map_err(err)?;
    let device = receipt(&mut alice_ev, &hi.id, ReceiptType::Read).await?;
    log.line("alice", format!("read by {device}"));
    let reply = bob
        .reply(&got, MessageContent::text("Sure, 12:30 at the usual place"))
        .await
        .map_err(err)?;
    let got = receive(&mut alice_ev, |m| m.key.id == reply.id).await?;
    let quoted = got
        .message
        .extended_text_message
        .as_ref()
        .and_then(|e| e.context_info.as_ref())
        .and_then(|c| c.stanza_id.clone())
        .unwrap_or_default();
    log.line(
        "alice",
        format!("<- bob: \"{}\" (replying to {quoted})", text_of(&got)),
    );
    let reaction = alice
        .send_message(
            &bob_jid,
            MessageContent::Reaction {
                key: got.key.clone(),
                emoji: "\u{1F44D}".into(),
                sender_timestamp_ms: 0,
            },
        )
        .await
        .map_err(err)?;
    let r = receive(&mut bob_ev, |m| m.key.id == reaction.id).await?;
    let emoji = r
        .message
        .reaction_message
        .as_ref()
        .and_then(|x| x.text.clone())
        .unwrap_or_default();
    log.line("bob", format!("<- alice reacted {emoji} to {}", reply.id));
    let copies = sim
        .phone_inbox(ALICE)
        .iter()
        .filter(|m| m.id == hi.id || m.id == reply.id)
        .count();
    log.line(
        "phone",
        format!("Alice's phone decrypted {copies} of those messages too"),
    );

    // A group with Carol, who has only her phone.
    let group = alice
        .groups()
        .create("Lunch club", &[bob_jid.clone(), Jid::pn(CAROL)])
        .await
        .map_err(err)?;
    log.line(
        "alice",
        format!(
            "created group \"{}\" ({}) with {} members",
            group.subject,
            group.id,
            group.participants.len()
        ),
    );
    let g = alice
        .send_message(
            &group.id,
            MessageContent::text("Welcome to the lunch club!"),
        )
        .await
        .map_err(err)?;
    let got = receive(&mut bob_ev, |m| m.key.id == g.id).await?;
    log.line(
        "bob",
        format!(
            "<- {} in {}: \"{}\"",
            got.key
                .participant
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            got.key.remote_jid,
            text_of(&got)
        ),
    );
    let deadline = Instant::now() + STEP;
    while !sim.phone_inbox(CAROL).iter().any(|m| m.id == g.id) {
        if Instant::now() > deadline {
            return Err("Carol's phone did not get the group message".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    log.line("phone", "Carol's phone decrypted the group message");
    let hello = wa::proto::e2e::Message {
        conversation: Some("Count me in! (from Carol's phone)".into()),
        ..Default::default()
    };
    let carol_id = sim.phone_send(CAROL, &group.id, hello).await.map_err(err)?;
    let got = receive(&mut alice_ev, |m| m.key.id == carol_id).await?;
    log.line(
        "alice",
        format!("<- carol in the group: \"{}\"", text_of(&got)),
    );

    // A poll in the group; Bob's vote is encrypted with the poll's secret, which Alice's
    // device kept when it sent the poll.
    let times = ["12:00", "12:30", "13:00"];
    let poll = alice
        .send_message(
            &group.id,
            MessageContent::Poll(wa::Poll {
                name: "What time?".into(),
                options: times.iter().map(|t| (*t).to_owned()).collect(),
                selectable_count: 1,
                to_announcement_group: false,
            }),
        )
        .await
        .map_err(err)?;
    log.line(
        "alice",
        format!("-> group: poll \"What time?\" ({})", poll.id),
    );
    let got = receive(&mut bob_ev, |m| m.key.id == poll.id).await?;
    let vote = bob
        .messages()
        .vote_poll(&got.key, &["12:30"])
        .await
        .map_err(err)?;
    log.line("bob", "-> group: votes \"12:30\" (encrypted for the poll)");
    let opened = addon(&mut alice_ev, &vote.id).await?;
    let chosen: Vec<&str> = match &opened.kind {
        wa::AddOnKind::PollVote { selected_options } => times
            .iter()
            .copied()
            .filter(|t| {
                selected_options
                    .iter()
                    .any(|h| h.as_slice() == wa::poll_option_hash(t))
            })
            .collect(),
        _ => Vec::new(),
    };
    log.line(
        "alice",
        format!(
            "<- {} voted {chosen:?} on poll {}",
            opened.sender, opened.target.id
        ),
    );

    // A picture, end-to-end encrypted, uploaded to and downloaded from the media host.
    let png = picture();
    let mut opts = MediaOptions::default();
    opts.caption = Some("Today's menu".into());
    let sent = alice
        .send_media(&bob_jid, MediaKind::Image, &png, &opts)
        .await
        .map_err(err)?;
    log.line(
        "alice",
        format!(
            "-> bob: picture ({} bytes, encrypted and uploaded)",
            png.len()
        ),
    );
    let got = receive(&mut bob_ev, |m| m.key.id == sent.id).await?;
    let mut bytes = Vec::new();
    bob.download_media(&got, &mut bytes).await.map_err(err)?;
    if bytes != png {
        return Err("the downloaded picture differs".into());
    }
    log.line(
        "bob",
        format!(
            "<- picture \"{}\": downloaded {} bytes, MAC and hashes verified",
            text_of(&got),
            bytes.len()
        ),
    );

    // Restart: Alice's device comes back from its SQLite file, no QR, same sessions.
    log.line("alice", "closing to simulate a restart");
    alice.close().await;
    drop(alice_ev);
    drop(alice);
    log.line("alice", "starting again from the stored credentials");
    let (alice, mut alice_ev) =
        connect(&log, "alice", &sim, ALICE, sqlite(&db).await?, false).await?;
    let again = alice
        .send_message(
            &bob_jid,
            MessageContent::text("Back online, see you at 12:30"),
        )
        .await
        .map_err(err)?;
    let got = receive(&mut bob_ev, |m| m.key.id == again.id).await?;
    log.line("bob", format!("<- alice: \"{}\"", text_of(&got)));
    let answer = bob
        .send_message(&alice_jid, MessageContent::text("See you!"))
        .await
        .map_err(err)?;
    let got = receive(&mut alice_ev, |m| m.key.id == answer.id).await?;
    log.line("alice", format!("<- bob: \"{}\"", text_of(&got)));

    alice.close().await;
    bob.close().await;
    sim.shutdown().await;
    log.line("demo", "done");
    Ok(())
}
