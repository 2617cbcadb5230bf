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
//! | `send` | `{"phone", "to", "text"}` | `{"id"}`: the phone sends a text |
//! | `inbox` | `{"phone"}` | `{"messages": [{"id","from","chat","text"?}]}` |
//! | `create-group` | `{"phone", "subject", "participants": [..]}` | `{"group"}` |
//!
//! `to` and `participants` are phone numbers or JIDs (`id@g.us` for a group).
//!
//! Fault kinds: `drop`, `restart` (515), `replaced`, `device_removed`, `unavailable`
//! (503), aimed at `phone:device`, every device of `phone`, or every connection; the
//! switches `ignore_pings`, `answer_pings`, `refuse_logins` (with `reason`, default 401),
//! `accept_logins`, `delay` (`ms`, 0 turns it off); and `drop_after_deliver` (`phone` and
//! `device`), `duplicate` / `no_duplicate`, `reorder_offline` / `in_order`, and how 1:1
//! senders are named: `sender_pn` (default), `sender_pn_lid`, `sender_lid`; and
//! `strip_receipt_recipient` / `keep_receipt_recipient`.

use serde::Deserialize;
use serde_json::json;

use std::time::Duration;

use wa_binary::{Jid, Server};

use crate::fault::{Fault, SenderAddressing, StreamErrorKind, Target};
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
    #[serde(default)]
    to: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    participants: Vec<String>,
}

/// A phone number or a JID.
fn jid_of(s: &str) -> Result<Jid, crate::Error> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Jid::pn(s.to_owned()));
    }
    s.parse::<Jid>()
        .map_err(|_| crate::Error::Rejected(format!("not a phone number or JID: {s:?}")))
}

fn text_of(m: &crate::Message) -> Option<String> {
    m.conversation.clone().or_else(|| {
        m.extended_text_message
            .as_ref()
            .and_then(|t| t.text.clone())
    })
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
        "drop_after_deliver" => match target {
            Target::Device(jid) => Ok(Fault::DropAfterDeliver(jid)),
            _ => Err("drop_after_deliver needs phone and device".into()),
        },
        "duplicate" => Ok(Fault::DuplicateDelivery(true)),
        "no_duplicate" => Ok(Fault::DuplicateDelivery(false)),
        "reorder_offline" => Ok(Fault::ReorderOffline(true)),
        "in_order" => Ok(Fault::ReorderOffline(false)),
        "sender_pn" => Ok(Fault::SenderAddressing(SenderAddressing::Pn)),
        "sender_pn_lid" => Ok(Fault::SenderAddressing(SenderAddressing::PnWithLid)),
        "sender_lid" => Ok(Fault::SenderAddressing(SenderAddressing::Lid)),
        "strip_receipt_recipient" => Ok(Fault::StripReceiptRecipient(true)),
        "keep_receipt_recipient" => Ok(Fault::StripReceiptRecipient(false)),
        "withhold_offline_marker" => Ok(Fault::WithholdOfflineMarker(true)),
        "send_offline_marker" => Ok(Fault::WithholdOfflineMarker(false)),
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
            to: String::new(),
            text: String::new(),
            subject: String::new(),
            participants: Vec::new(),
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
        "send" => match jid_of(&req.to) {
            Ok(to) => {
                let message = crate::Message {
                    conversation: Some(req.text.clone()),
                    ..Default::default()
                };
                crate::e2e::phone_send(shared, &req.phone, &to, message)
                    .await
                    .map(|id| json!({ "id": id }))
            }
            Err(e) => Err(e),
        },
        "inbox" => Ok(json!({
            "messages": crate::e2e::inbox(shared, &req.phone)
                .iter()
                .map(|m| json!({
                    "id": m.id,
                    "from": m.from.to_string(),
                    "chat": m.chat.to_string(),
                    "text": text_of(&m.message),
                }))
                .collect::<Vec<_>>()
        })),
        "create-group" => req
            .participants
            .iter()
            .map(|p| jid_of(p))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|ps| crate::e2e::phone_create_group(shared, &req.phone, &req.subject, &ps))
            .map(|g| json!({ "group": g.to_string() })),
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
