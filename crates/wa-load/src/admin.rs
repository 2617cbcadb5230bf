//! A client of wa-sim's loopback admin endpoints (`POST /admin/<command>`).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::Error;

/// The admin endpoint of a wa-sim running in another process.
#[derive(Debug, Clone)]
pub struct Admin {
    authority: String,
}

impl Admin {
    /// `server` is the simulator's base URL, `http://HOST:PORT`.
    ///
    /// # Errors
    /// [`Error::Usage`] for anything but an `http://` URL.
    pub fn new(server: &str) -> Result<Self, Error> {
        let authority = server
            .strip_prefix("http://")
            .ok_or_else(|| Error::Usage(format!("{server}: an http:// URL is needed")))?
            .trim_end_matches('/')
            .to_owned();
        Ok(Self { authority })
    }

    /// The websocket URL clients connect to.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.authority)
    }

    /// The simulator's Noise root public key (32 bytes).
    ///
    /// # Errors
    /// [`Error::Admin`] when the answer lacks a valid key.
    pub async fn root_public_key(&self) -> Result<wa_crypto::PublicKey, Error> {
        let info = self.post("info", &serde_json::json!({})).await?;
        let bad = |message: String| Error::Admin {
            command: "info".into(),
            message,
        };
        let hex_key = info["root_public_key"]
            .as_str()
            .ok_or_else(|| bad("no root_public_key".into()))?;
        let raw = hex::decode(hex_key).map_err(|e| bad(e.to_string()))?;
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| bad("the key is not 32 bytes".into()))?;
        Ok(wa_crypto::PublicKey::from(raw))
    }

    /// Posts `body` to `/admin/<command>` and returns the JSON answer.
    ///
    /// # Errors
    /// [`Error::Admin`] for a connection failure or a non-success status.
    pub async fn post(&self, command: &str, body: &Value) -> Result<Value, Error> {
        let err = |message: String| Error::Admin {
            command: command.to_owned(),
            message,
        };
        let tcp = tokio::net::TcpStream::connect(self.authority.as_str())
            .await
            .map_err(|e| err(e.to_string()))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| err(e.to_string()))?;
        let conn = tokio::spawn(conn);
        let req = hyper::Request::post(format!("/admin/{command}"))
            .header("host", self.authority.as_str())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| err(e.to_string()))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| err(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| err(e.to_string()))?
            .to_bytes();
        conn.abort();
        if !status.is_success() {
            return Err(err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))
    }
}
