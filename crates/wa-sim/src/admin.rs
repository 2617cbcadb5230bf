//! The loopback admin endpoints: `POST /admin/<command>` with a JSON body.
//!
//! | path | body | answer |
//! | --- | --- | --- |
//! | `add-account` | `{"phone"}` | the account (JSON) |
//! | `scan` | `{"phone", "qr"}` | `{"device"}` once linked |
//! | `pair-code` | `{"phone", "code"}` | `{"device"}` once linked |
//! | `devices` | `{"phone"}` | `{"devices": [..]}` |
//! | `info` | - | `{"ws_url", "root_public_key"}` |

use serde::Deserialize;
use serde_json::json;

use crate::sim::{self, Shared};

#[derive(Deserialize)]
struct Req {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    qr: String,
    #[serde(default)]
    code: String,
}

pub(crate) async fn handle(shared: &Shared, path: &str, body: &[u8]) -> (u16, String) {
    let req: Req = if body.is_empty() {
        Req {
            phone: String::new(),
            qr: String::new(),
            code: String::new(),
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
        "devices" => Ok(json!({
            "devices": sim::devices(shared, &req.phone).iter().map(ToString::to_string).collect::<Vec<_>>()
        })),
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
