//! The loopback admin endpoints: `POST /admin/<command>` with a JSON body.
//!
//! | path | body | answer |
//! | --- | --- | --- |
//! | `add-account` | `{"phone"}` | the account (JSON) |
//! | `scan` | `{"phone", "qr"}` | `{"device"}` once linked |
//! | `pair-code` | `{"phone", "code"}` | `{"device"}` once linked |
//! | `devices` | `{"phone"}` | `{"devices": [..]}` |
//! | `fault` | `{"kind", "phone"?, "device"?, "reason"?, "ms"?}` | `{"connections"}` |
//! | `info` | - | `{"root_public_key"}` |
//!
//! Fault kinds: `drop`, `restart` (515), `replaced`, `device_removed`, `unavailable`
//! (503), aimed at `phone:device`, every device of `phone`, or every connection; and the
//! switches `ignore_pings`, `answer_pings`, `refuse_logins` (with `reason`, default 401),
//! `accept_logins`, `delay` (`ms`, 0 turns it off).

use serde::Deserialize;
use serde_json::json;

use std::time::Duration;

use wa_binary::{Jid, Server};

use crate::fault::{Fault, StreamErrorKind, Target};
use crate::sim::{self, Shared};

#[derive(Deserialize)]
struct Req {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    qr: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    kind: String,
    device: Option<u16>,
    reason: Option<u16>,
    ms: Option<u64>,
}

fn fault(req: &Req) -> Result<Fault, String> {
    let target = match (req.phone.is_empty(), req.device) {
        (true, None) => Target::All,
        (false, None) => Target::Account(req.phone.clone()),
        (false, Some(d)) => Target::Device(Jid::with_device(req.phone.clone(), Server::Pn, d)),
        (true, Some(_)) => return Err("device needs phone".into()),
    };
    let stream = |k| Ok(Fault::StreamError(target.clone(), k));
    match req.kind.as_str() {
        "drop" => Ok(Fault::Drop(target.clone())),
        "restart" => stream(StreamErrorKind::Restart),
        "replaced" => stream(StreamErrorKind::Replaced),
        "device_removed" => stream(StreamErrorKind::DeviceRemoved),
        "unavailable" => stream(StreamErrorKind::ServiceUnavailable),
        "ignore_pings" => Ok(Fault::IgnorePings(true)),
        "answer_pings" => Ok(Fault::IgnorePings(false)),
        "refuse_logins" => Ok(Fault::RefuseLogins(Some(req.reason.unwrap_or(401)))),
        "accept_logins" => Ok(Fault::RefuseLogins(None)),
        "delay" => Ok(Fault::DelayFrames(
            req.ms.filter(|ms| *ms > 0).map(Duration::from_millis),
        )),
        other => Err(format!("unknown fault kind {other:?}")),
    }
}

pub(crate) async fn handle(shared: &Shared, path: &str, body: &[u8]) -> (u16, String) {
    let req: Req = if body.is_empty() {
        Req {
            phone: String::new(),
            qr: String::new(),
            code: String::new(),
            kind: String::new(),
            device: None,
            reason: None,
            ms: None,
        }
    } else {
        match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return (400, json!({ "error": e.to_string() }).to_string()),
        }
    };
    let result = match path {
        "add-account" => sim::add_account(shared, &req.phone)
            .map(|a| json!({ "phone": a.phone, "pn": a.pn.to_string(), "lid": a.lid.to_string() })),
        "scan" => sim::scan_qr(shared, &req.phone, &req.qr)
            .await
            .map(|d| json!({ "device": d.to_string() })),
        "pair-code" => sim::enter_pairing_code(shared, &req.phone, &req.code)
            .await
            .map(|d| json!({ "device": d.to_string() })),
        "devices" if !shared.state.lock().accounts.contains_key(&req.phone) => {
            Err(crate::Error::UnknownAccount(req.phone.clone()))
        }
        "devices" => Ok(json!({
            "devices": sim::devices(shared, &req.phone).iter().map(ToString::to_string).collect::<Vec<_>>()
        })),
        "fault" => match fault(&req) {
            Ok(f) => Ok(json!({ "connections": sim::apply_fault(shared, f) })),
            Err(e) => return (400, json!({ "error": e }).to_string()),
        },
        "info" => Ok(json!({
            "root_public_key": hex::encode(shared.state.root_public_key().as_bytes()),
        })),
        _ => return (404, json!({ "error": "unknown admin command" }).to_string()),
    };
    match result {
        Ok(v) => (200, v.to_string()),
        Err(e) => (422, json!({ "error": e.to_string() }).to_string()),
    }
}
