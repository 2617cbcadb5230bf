//! `wa-sim`: run the local WhatsApp server, or drive a running one.
//!
//! ```text
//! wa-sim serve [--addr 127.0.0.1:5222] [--tls-cert cert.pem --tls-key key.pem]
//!              [--root-key HEX32] [--state FILE] [--account PHONE]...
//! wa-sim add-account <phone>        [--server http://127.0.0.1:5222]
//! wa-sim scan <phone> <qr>          [--server ...]
//! wa-sim pair-code <phone> <code>   [--server ...]
//! wa-sim devices <phone>            [--server ...]
//! wa-sim fault <kind> [--phone P] [--device N] [--reason N] [--ms N] [--server ...]
//! wa-sim send <phone> <to> <text>   [--server ...]
//! wa-sim inbox <phone>              [--server ...]
//! wa-sim create-group <phone> <subject> <participant>... [--server ...]
//! ```

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool"
)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use wa_sim::{Sim, SimConfig, SimState};

const USAGE: &str = "usage:
  wa-sim serve [--addr 127.0.0.1:5222] [--tls-cert PEM --tls-key PEM] [--root-key HEX]
               [--state FILE] [--account PHONE]...
  wa-sim add-account <phone>      [--server http://127.0.0.1:5222]
  wa-sim scan <phone> <qr>        [--server http://127.0.0.1:5222]
  wa-sim pair-code <phone> <code> [--server http://127.0.0.1:5222]
  wa-sim devices <phone>          [--server http://127.0.0.1:5222]
  wa-sim fault <kind> [--phone P] [--device N] [--reason N] [--ms N] [--server http://127.0.0.1:5222]
    kinds: drop restart replaced device_removed unavailable ignore_pings answer_pings
           refuse_logins accept_logins delay drop_after_deliver duplicate no_duplicate
           reorder_offline in_order
  wa-sim send <phone> <to> <text> [--server http://127.0.0.1:5222]
  wa-sim inbox <phone>            [--server http://127.0.0.1:5222]
  wa-sim create-group <phone> <subject> <participant>... [--server http://127.0.0.1:5222]";

const DEFAULT_ADDR: &str = "127.0.0.1:5222";

struct Args {
    positional: Vec<String>,
    opts: Vec<(String, String)>,
}

impl Args {
    fn parse(raw: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut positional = Vec::new();
        let mut opts = Vec::new();
        let mut it = raw.peekable();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                opts.push((name.to_owned(), v));
            } else {
                positional.push(a);
            }
        }
        Ok(Args { positional, opts })
    }

    fn opt(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.opts
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wa-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let cmd = args.positional.first().map(String::as_str);
    let p = |i: usize| {
        args.positional
            .get(i)
            .cloned()
            .ok_or_else(|| USAGE.to_owned())
    };
    match cmd {
        Some("serve") => serve(&args).await,
        Some("add-account") => admin(&args, "add-account", json!({ "phone": p(1)? })).await,
        Some("scan") => admin(&args, "scan", json!({ "phone": p(1)?, "qr": p(2)? })).await,
        Some("pair-code") => {
            admin(&args, "pair-code", json!({ "phone": p(1)?, "code": p(2)? })).await
        }
        Some("devices") => admin(&args, "devices", json!({ "phone": p(1)? })).await,
        Some("send") => {
            let body = json!({ "phone": p(1)?, "to": p(2)?, "text": p(3)? });
            admin(&args, "send", body).await
        }
        Some("inbox") => admin(&args, "inbox", json!({ "phone": p(1)? })).await,
        Some("create-group") => {
            let body = json!({
                "phone": p(1)?,
                "subject": p(2)?,
                "participants": args.positional.get(3..).unwrap_or_default(),
            });
            admin(&args, "create-group", body).await
        }
        Some("fault") => {
            let num = |name: &str| -> Result<Option<u64>, String> {
                args.opt(name)
                    .map(|v| v.parse::<u64>().map_err(|e| format!("--{name}: {e}")))
                    .transpose()
            };
            let body = json!({
                "kind": p(1)?,
                "phone": args.opt("phone").unwrap_or_default(),
                "device": num("device")?,
                "reason": num("reason")?,
                "ms": num("ms")?,
            });
            admin(&args, "fault", body).await
        }
        _ => Err(USAGE.to_owned()),
    }
}

fn tls_config(cert: &str, key: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{cert}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

async fn serve(args: &Args) -> Result<(), String> {
    let addr: SocketAddr = args
        .opt("addr")
        .unwrap_or(DEFAULT_ADDR)
        .parse()
        .map_err(|e| format!("--addr: {e}"))?;
    let tls = match (args.opt("tls-cert"), args.opt("tls-key")) {
        (Some(c), Some(k)) => Some(tls_config(c, k)?),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    let state_file = args.opt("state").map(std::path::PathBuf::from);
    let saved = match &state_file {
        Some(path) if path.exists() => {
            let json =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(SimState::from_json(&json).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        _ => None,
    };
    let state = match args.opt("root-key") {
        _ if saved.is_some() => saved.unwrap_or_default(),
        Some(h) => {
            let raw = hex::decode(h).map_err(|e| format!("--root-key: {e}"))?;
            let kp = wa_crypto::KeyPair::from_private_slice(&raw)
                .map_err(|e| format!("--root-key: {e}"))?;
            SimState::with_root_key(kp)
        }
        None => SimState::new(),
    };
    let sim = Sim::start(SimConfig {
        addr,
        tls,
        state,
        ..SimConfig::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    for phone in args.all("account") {
        let a = sim
            .try_add_account(phone)
            .await
            .map_err(|e| e.to_string())?;
        println!("account {} lid {}", a.pn, a.lid);
    }
    println!("url {}", sim.ws_url());
    println!("admin {}/admin/", sim.admin_url());
    println!(
        "root-public-key {}",
        hex::encode(sim.root_public_key().as_bytes())
    );
    if let Some(path) = &state_file {
        println!("state {}", path.display());
    }
    let state = sim.state();
    let save = |state: &SimState| -> Result<(), String> {
        let Some(path) = &state_file else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, state.to_json()).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    };
    save(&state)?;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                r.map_err(|e| e.to_string())?;
                break;
            }
            _ = tick.tick() => {
                if let Err(e) = save(&state) {
                    eprintln!("saving state: {e}");
                }
            }
        }
    }
    sim.shutdown().await;
    save(&state)
}

async fn admin(args: &Args, command: &str, body: serde_json::Value) -> Result<(), String> {
    let server = args
        .opt("server")
        .map_or_else(|| format!("http://{DEFAULT_ADDR}"), str::to_owned);
    let authority = server
        .strip_prefix("http://")
        .ok_or("--server must be an http:// URL")?
        .trim_end_matches('/');
    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("{authority}: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("/admin/{command}"))
        .header("host", authority)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    if status.is_success() {
        println!("{text}");
        Ok(())
    } else {
        Err(format!("{status}: {text}"))
    }
}
