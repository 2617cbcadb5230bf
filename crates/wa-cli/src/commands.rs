//! `wa listen`, `wa send`, `wa groups`: the facade over a linked device's stored
//! credentials (SQLite file or a PostgreSQL URL).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wa::prelude::*;
use wa::{AccountId, AccountStore, ReceiptType};

use crate::{Log, default_store_path, describe, parse_key};

/// Options every account command takes.
pub(crate) struct Common {
    store: String,
    url: Option<String>,
    root: Option<String>,
    insecure_media: bool,
}

impl Common {
    /// Takes the common options out of `args`, leaving the rest in order.
    pub(crate) fn parse(args: &[String]) -> Result<(Common, Vec<String>), String> {
        let mut c = Common {
            store: default_store_path().display().to_string(),
            url: None,
            root: None,
            insecure_media: false,
        };
        let mut rest = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{arg} needs a value"))
            };
            match arg.as_str() {
                "--store" => c.store = value()?,
                "--url" => c.url = Some(value()?),
                "--root" => c.root = Some(value()?),
                "--plain-media" => c.insecure_media = true,
                _ => rest.push(arg.clone()),
            }
        }
        Ok((c, rest))
    }

    /// Opens the store named by `--store`: a PostgreSQL URL or a SQLite file.
    pub(crate) async fn open_store(&self) -> Result<AccountStore, String> {
        let account = AccountId::new("default").map_err(|e| e.to_string())?;
        if self.store.starts_with("postgres://") || self.store.starts_with("postgresql://") {
            let backend = wa_store_postgres::PostgresBackend::connect(&self.store)
                .await
                .map_err(|e| format!("{}: {e}", self.store))?;
            return Ok(AccountStore::new(Arc::new(backend), account));
        }
        crate::open_store(std::path::Path::new(&self.store)).await
    }

    /// Connects with the stored credentials and waits until logged in.
    pub(crate) async fn connect(&self, log: &Log) -> Result<(WaSocket, wa::Events), String> {
        let store = self.open_store().await?;
        if wa_store::CredsStore::load_creds(&store)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|c| c.jid)
            .is_none()
        {
            return Err(format!(
                "no linked device in {}; run `wa login` first",
                self.store
            ));
        }
        let mut config = WaConfig::new(store);
        if let Some(url) = &self.url {
            config.socket.ws_url.clone_from(url);
        }
        if let Some(hex) = &self.root {
            config.socket.noise_root = parse_key(hex)?;
        }
        config.media.https = !self.insecure_media;
        let sock = make_wa_socket(config).map_err(|e| e.to_string())?;
        let mut events = sock.events();
        let open = async {
            loop {
                match events.next().await {
                    Some(Event::Connection(u)) => {
                        log.line("device", describe(&u));
                        if u.state == ConnectionState::Open {
                            return Ok(());
                        }
                        if u.qr.is_some() {
                            return Err("the stored credentials were not accepted".to_string());
                        }
                        if u.last_disconnect.is_some_and(|r| r.is_terminal()) {
                            return Err(format!("connection ended: {}", describe(&u)));
                        }
                    }
                    Some(_) => {}
                    None => return Err("socket gone".to_string()),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), open)
            .await
            .map_err(|_| "not connected within 60 s".to_string())??;
        Ok((sock, events))
    }
}

/// A user or group from the command line: `+15551234567`, `15551234567`, or a full JID.
pub(crate) fn parse_jid(s: &str) -> Result<Jid, String> {
    if s.contains('@') {
        return s.parse().map_err(|_| format!("not a JID: {s}"));
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 5 || digits.len() > 20 {
        return Err(format!("not a phone number: {s}"));
    }
    Ok(Jid::pn(digits))
}

/// One line describing a message's content.
pub(crate) fn summary(m: &WaMessage) -> String {
    if let Some(t) = message_text(&m.message) {
        return format!("\"{t}\"");
    }
    let msg = &m.message;
    let kind = if msg.image_message.is_some() {
        "image"
    } else if msg.video_message.is_some() {
        "video"
    } else if msg.audio_message.is_some() {
        "audio"
    } else if msg.document_message.is_some() {
        "document"
    } else if msg.sticker_message.is_some() {
        "sticker"
    } else if let Some(r) = &msg.reaction_message {
        return format!("reaction {}", r.text.as_deref().unwrap_or(""));
    } else if msg.protocol_message.is_some() {
        "protocol message (edit, revoke, keys, ...)"
    } else if msg.poll_creation_message.is_some() || msg.poll_creation_message_v3.is_some() {
        "poll"
    } else {
        "message"
    };
    format!("[{kind}]")
}

/// `wa listen`: prints every event until interrupted.
pub(crate) async fn listen(args: &[String]) -> Result<(), String> {
    let (common, rest) = Common::parse(args)?;
    if let Some(extra) = rest.first() {
        return Err(format!("unknown option {extra}"));
    }
    let log = Log(Instant::now());
    let (sock, mut events) = common.connect(&log).await?;
    log.line("device", "listening; Ctrl-C to stop");
    loop {
        let event = tokio::select! {
            e = events.next() => e,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(event) = event else { break };
        match event {
            Event::Connection(u) => log.line("device", describe(&u)),
            Event::MessagesUpsert(u) => {
                for m in &u.messages {
                    let dir = if m.key.from_me { "->" } else { "<-" };
                    let who = m
                        .key
                        .participant
                        .as_ref()
                        .map(|p| format!(" {p}"))
                        .unwrap_or_default();
                    log.line(
                        "message",
                        format!(
                            "{dir} {}{who} {} ({})",
                            m.key.remote_jid,
                            summary(m),
                            m.key.id
                        ),
                    );
                }
            }
            Event::MessagesUpdate(updates) => {
                for u in updates {
                    if u.receipt != ReceiptType::Retry {
                        log.line(
                            "receipt",
                            format!("{} {:?} by {}", u.key.id, u.receipt, u.device),
                        );
                    }
                }
            }
            Event::GroupUpdate(g) => {
                log.line("group", format!("{} {:?}", g.group, g.changes));
            }
            Event::ReachoutTimelock(t) if t.active => {
                let until = t
                    .ends_at
                    .map_or_else(|| "further notice".to_owned(), |e| format!("unix time {e}"));
                log.line(
                    "account",
                    format!("new chats restricted ({}) until {until}", t.enforcement),
                );
            }
            Event::ReachoutTimelock(_) => log.line("account", "new chats no longer restricted"),
            _ => {}
        }
    }
    sock.close().await;
    Ok(())
}

fn media_kind(flag: &str) -> Option<MediaKind> {
    Some(match flag {
        "--image" => MediaKind::Image,
        "--video" => MediaKind::Video,
        "--gif" => MediaKind::Gif,
        "--audio" => MediaKind::Audio,
        "--voice" => MediaKind::Voice,
        "--document" => MediaKind::Document,
        "--sticker" => MediaKind::Sticker,
        _ => return None,
    })
}

/// A progress line on stderr, redrawn in place.
fn progress_bar(label: &'static str) -> wa::MediaProgress {
    Arc::new(move |done, total| {
        let line = match total {
            Some(t) if t > 0 => {
                let pct = done.saturating_mul(100) / t;
                let filled = usize::try_from(pct / 5).unwrap_or(20).min(20);
                format!(
                    "\r{label} [{}{}] {pct:3}% {done}/{t} bytes",
                    "#".repeat(filled),
                    ".".repeat(20 - filled)
                )
            }
            _ => format!("\r{label} {done} bytes"),
        };
        eprint!("{line}");
    })
}

/// `wa send <jid> <text>` or `wa send <jid> --image FILE [--caption TEXT]`.
pub(crate) async fn send(args: &[String]) -> Result<(), String> {
    let (common, rest) = Common::parse(args)?;
    let mut it = rest.iter();
    let to = parse_jid(it.next().ok_or("wa send needs a recipient")?)?;
    let mut media: Option<(MediaKind, PathBuf)> = None;
    let mut caption = None;
    let mut text = Vec::new();
    while let Some(arg) = it.next() {
        if let Some(kind) = media_kind(arg) {
            let path = it.next().ok_or_else(|| format!("{arg} needs a file"))?;
            media = Some((kind, PathBuf::from(path)));
        } else if arg == "--caption" {
            caption = Some(it.next().ok_or("--caption needs a value")?.clone());
        } else {
            text.push(arg.clone());
        }
    }
    let log = Log(Instant::now());
    let (sock, _events) = common.connect(&log).await?;
    let key = match media {
        Some((kind, path)) => {
            let mut opts = MediaOptions::default();
            opts.caption = caption.or_else(|| (!text.is_empty()).then(|| text.join(" ")));
            opts.file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let message = if kind == MediaKind::Image || kind == MediaKind::Sticker {
                let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                sock.media()
                    .prepare_bytes(kind, &bytes, &opts, Some(progress_bar("upload")))
                    .await
            } else {
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                sock.media()
                    .prepare(kind, file, &opts, Some(progress_bar("upload")))
                    .await
            }
            .map_err(|e| e.to_string())?;
            eprintln!();
            sock.relay(&to, message).await.map_err(|e| e.to_string())?
        }
        None if text.is_empty() => return Err("nothing to send".into()),
        None => sock
            .send_message(&to, MessageContent::text(text.join(" ")))
            .await
            .map_err(|e| e.to_string())?,
    };
    log.line("message", format!("sent {} to {}", key.id, key.remote_jid));
    sock.close().await;
    Ok(())
}

/// `wa groups`: the groups this account is in.
pub(crate) async fn groups(args: &[String]) -> Result<(), String> {
    let (common, rest) = Common::parse(args)?;
    if let Some(extra) = rest.first() {
        return Err(format!("unknown option {extra}"));
    }
    let log = Log(Instant::now());
    let (sock, _events) = common.connect(&log).await?;
    let all = sock
        .groups()
        .fetch_all_participating()
        .await
        .map_err(|e| e.to_string())?;
    let mut list: Vec<_> = all.values().collect();
    list.sort_by(|a, b| a.subject.cmp(&b.subject));
    for g in list {
        println!(
            "{}  {}  ({} members)",
            g.id,
            g.subject,
            g.participants.len()
        );
    }
    sock.close().await;
    Ok(())
}
