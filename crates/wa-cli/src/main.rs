//! The `wa` command: `wa demo` (the whole stack against an in-process simulator) and
//! `wa login` (link to the real service).

// A command-line tool: its output is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::broadcast;
use wa_socket::{ConnectionState, ConnectionUpdate, Event, Socket, SocketConfig};
use wa_store::{AccountId, AccountStore};
use wa_store_sqlite::SqliteBackend;

mod commands;
mod demo;

const USAGE: &str = "\
usage:
  wa demo                 two accounts on a local simulator: 1:1, group and media messages,
                          a restart from SQLite (no network)
  wa login [options]      link this machine to a WhatsApp account (QR code in the terminal)
      --pairing-code PHONE    link by a code typed on the phone instead of a QR code
      --store PATH            SQLite file for the credentials
      --url URL               websocket URL (default wss://web.whatsapp.com/ws/chat)
      --root HEX              trusted Noise root public key (default: WhatsApp's)
  wa listen [options]     print every event (messages, receipts, groups) as it comes
  wa send [options] JID TEXT...
  wa send [options] JID --image|--video|--gif|--audio|--voice|--document|--sticker FILE
          [--caption TEXT]   send a text or a media file (with an upload progress bar)
  wa groups [options]     list the groups this account is in
  wa import-baileys FOLDER [--store PATH]
                          take over a device linked with Baileys (its useMultiFileAuthState
                          folder) without linking again
      --store PATH|postgres://...   credentials: SQLite file (default) or PostgreSQL
      --url URL, --root HEX         as for login; --plain-media: media over http (wa-sim)
  JID is a phone number (+15551234567) or a full JID (120363...@g.us)";

/// The allocator: glibc's arenas contend when one thread frees what another allocated,
/// which a multi-threaded runtime does all the time (see docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo::run().await,
        Some("login") => login(&args[1..]).await,
        Some("listen") => commands::listen(&args[1..]).await,
        Some("send") => commands::send(&args[1..]).await,
        Some("groups") => commands::groups(&args[1..]).await,
        Some("import-baileys") => import_baileys(&args[1..]).await,
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wa: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints lines prefixed with the time since the command started.
struct Log(Instant);

impl Log {
    fn line(&self, who: &str, what: impl std::fmt::Display) {
        let t = self.0.elapsed().as_secs_f64();
        println!("[{t:7.3}s] {who:<7} {what}");
    }
}

fn describe(u: &ConnectionUpdate) -> String {
    match u.state {
        ConnectionState::Connecting if u.qr.is_some() => "QR code ready".into(),
        ConnectionState::Connecting => "connecting".into(),
        ConnectionState::Open if u.received_pending_notifications => {
            "open: offline backlog received".into()
        }
        ConnectionState::Open if u.is_new_login => "open: logged in for the first time".into(),
        ConnectionState::Open => "open: logged in".into(),
        ConnectionState::Closed => match u.last_disconnect {
            Some(r) if r.is_terminal() => format!("closed: {r}"),
            Some(r) => format!("closed: {r}, reconnecting"),
            None => "closed".into(),
        },
    }
}

fn render_qr(data: &str) -> String {
    match qrcode::QrCode::new(data.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        Err(e) => format!("(cannot draw the QR code: {e}; its text is {data})"),
    }
}

async fn open_store(path: &std::path::Path) -> Result<AccountStore, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let backend = SqliteBackend::open(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let account = AccountId::new("default").map_err(|e| e.to_string())?;
    Ok(AccountStore::new(Arc::new(backend), account))
}

/// `wa import-baileys FOLDER [--store PATH]`.
async fn import_baileys(args: &[String]) -> Result<(), String> {
    let mut store_path = default_store_path();
    let mut folder = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--store" => {
                store_path = it
                    .next()
                    .map(PathBuf::from)
                    .ok_or("--store needs a value")?;
            }
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            other if folder.is_none() => folder = Some(PathBuf::from(other)),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    let folder = folder.ok_or("which folder? (wa import-baileys FOLDER)")?;
    let store = open_store(&store_path).await?;
    let report = wa_store::baileys::import_baileys_auth(&folder, &store)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "imported {} into {}: {} pre-keys, {} app-state keys, {} LID mappings, {} sessions, \
         {} identity keys, {} sender keys, {} sender-key memories, {} app-state versions",
        report.creds.jid.as_deref().unwrap_or("an unlinked device"),
        store_path.display(),
        report.pre_keys,
        report.app_state_keys,
        report.lid_mappings,
        report.sessions,
        report.identities,
        report.sender_keys,
        report.sender_key_memories,
        report.app_state_versions
    );
    if !report.skipped.is_empty() {
        println!(
            "not carried over ({} files; sessions heal through retries, collections sync \
             again): {}",
            report.skipped.len(),
            report.skipped.join(", ")
        );
    }
    Ok(())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn default_store_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("wa-rs").join("wa.db")
}

async fn login(args: &[String]) -> Result<(), String> {
    let mut store_path = default_store_path();
    let mut pairing_phone = None;
    let mut url = None;
    let mut root = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--store" => store_path = PathBuf::from(value()?),
            "--pairing-code" => pairing_phone = Some(value()?),
            "--url" => url = Some(value()?),
            "--root" => root = Some(value()?),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let log = Log(Instant::now());
    let mut config = SocketConfig::new(open_store(&store_path).await?);
    if let Some(url) = url {
        config.ws_url = url;
    }
    if let Some(hex) = root {
        config.noise_root = parse_key(&hex)?;
    }
    log.line("device", format!("credentials in {}", store_path.display()));
    let socket = Socket::connect(config);
    let mut events = socket.events();
    let mut code_requested = false;
    loop {
        let up = wait_for_forever(&log, &mut events).await?;
        if let Some(qr) = &up.qr {
            match &pairing_phone {
                Some(phone) if !code_requested => {
                    code_requested = true;
                    let code = socket
                        .request_pairing_code(phone)
                        .await
                        .map_err(|e| e.to_string())?;
                    log.line(
                        "device",
                        format!("on the phone, link a device with the code {code}"),
                    );
                }
                Some(_) => {}
                None => {
                    log.line(
                        "device",
                        "scan this with WhatsApp > Linked devices on the phone:",
                    );
                    println!("{}", render_qr(qr));
                }
            }
        }
        if up.state == ConnectionState::Open {
            if let Some(creds) = socket.auth().await {
                log.line(
                    "device",
                    format!("logged in as {}", creds.jid.as_deref().unwrap_or_default()),
                );
            }
            socket.close().await;
            return Ok(());
        }
    }
}

/// Like `wait_for` without the time limit: a person is scanning a code.
async fn wait_for_forever(
    log: &Log,
    events: &mut broadcast::Receiver<Event>,
) -> Result<ConnectionUpdate, String> {
    loop {
        match events.recv().await {
            Ok(Event::Connection(u)) => {
                log.line("device", describe(&u));
                if u.last_disconnect.is_some_and(|r| r.is_terminal()) {
                    return Err(format!("connection ended: {}", describe(&u)));
                }
                return Ok(u);
            }
            Ok(Event::CredsUpdated) => log.line("device", "credentials saved"),
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return Err("socket gone".into()),
        }
    }
}

fn parse_key(hex: &str) -> Result<wa_crypto::PublicKey, String> {
    let bytes: Result<Vec<u8>, _> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .map(|b| u8::from_str_radix(b, 16))
                .unwrap_or(Ok(0xff))
        })
        .collect();
    let bytes = bytes.map_err(|_| "--root must be hex".to_string())?;
    wa_crypto::PublicKey::from_slice(&bytes).map_err(|e| format!("--root: {e}"))
}
