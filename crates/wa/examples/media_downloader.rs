//! Media downloader: saves every received image, video, audio, document and sticker into a
//! directory, verified (MAC and hashes) before anything is written, with constant memory.
//!
//! `cargo run -p wa --example media_downloader -- [auth.db] [out-dir]`

#![allow(clippy::print_stdout, clippy::print_stderr)]

use wa::prelude::*;

fn extension(m: &WaMessage) -> &'static str {
    let msg = &m.message;
    if msg.image_message.is_some() {
        "jpg"
    } else if msg.video_message.is_some() {
        "mp4"
    } else if msg.audio_message.is_some() {
        "ogg"
    } else if msg.sticker_message.is_some() {
        "webp"
    } else {
        "bin"
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = args.next().unwrap_or_else(|| "downloader.db".into());
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "media".into()));
    std::fs::create_dir_all(&dir)?;
    let sock = make_wa_socket(WaConfig::new(wa::sqlite_store(&db, "default").await?))?;
    let mut events = sock.events();
    while let Some(event) = events.next().await {
        match event {
            Event::Connection(u) if u.qr.is_some() => {
                println!("link this device: {}", u.qr.unwrap_or_default());
            }
            Event::MessagesUpsert(up) => {
                for m in &up.messages {
                    if wa_media_of(m).is_none() {
                        continue;
                    }
                    let path = dir.join(format!("{}.{}", m.key.id, extension(m)));
                    let file = tokio::fs::File::create(&path).await?;
                    match sock.download_media(m, file).await {
                        Ok(n) => println!("saved {} ({n} bytes)", path.display()),
                        Err(e) => {
                            let _ = std::fs::remove_file(&path);
                            eprintln!("{}: {e}", m.key.id);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn wa_media_of(m: &WaMessage) -> Option<wa::Downloadable> {
    wa::downloadable(&m.message)
}
