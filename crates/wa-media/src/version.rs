//! The current WhatsApp Web release, read from the web client's service worker (Baileys'
//! `fetchLatestWaWebVersion`): servers refuse clients they consider outdated, and
//! [`wa_socket::DEFAULT_VERSION`] ages with this crate.

use std::time::Duration;

use crate::{Error, MediaConfig};

/// Where the web client's service worker, which names its release, is served.
pub const WEB_VERSION_URL: &str = "https://web.whatsapp.com/sw.js";

/// Most bytes of the service worker read.
const MAX_SW_JS: usize = 4 << 20;

/// The page is served to browsers only.
const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// The web client version a service worker script names: `[2, 3000, client_revision]`
/// from its `"client_revision":` value (quotes possibly escaped, as inside a JSON
/// string). `None` when it names none.
pub fn web_version_from_sw_js(text: &str) -> Option<[u32; 3]> {
    const KEY: &str = "client_revision";
    let mut from = 0;
    while let Some(pos) = text[from..].find(KEY) {
        let after = from + pos + KEY.len();
        from = after;
        let tail = &text[after..];
        let Some(rest) = tail.strip_prefix("\\\"").or(tail.strip_prefix('"')) else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix(':') else {
            continue;
        };
        let digits: &str = {
            let r = rest.trim_start();
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            &r[..end]
        };
        if let Ok(revision) = digits.parse::<u32>() {
            return Some([2, 3000, revision]);
        }
    }
    None
}

/// Fetches [`WEB_VERSION_URL`] (through `config`'s proxy, within `timeout`) and reads the
/// release it names, for [`wa_socket::SocketConfig::version`].
///
/// # Errors
/// [`Error::Http`] when it cannot be fetched in time or names no release,
/// [`Error::Gone`] for 404 and 410, [`Error::TooLarge`] beyond 4 MiB.
pub async fn fetch_latest_web_version(
    config: &MediaConfig,
    timeout: Duration,
) -> Result<[u32; 3], Error> {
    fetch_web_version_from(WEB_VERSION_URL, config, timeout).await
}

/// [`fetch_latest_web_version`] from another URL (a mirror, or a test server).
///
/// # Errors
/// As [`fetch_latest_web_version`].
pub async fn fetch_web_version_from(
    url: &str,
    config: &MediaConfig,
    timeout: Duration,
) -> Result<[u32; 3], Error> {
    let http = crate::transfer::shared_http_client(config.connect_timeout, config.proxy.as_ref())?;
    let fetch = async {
        let resp = http
            .get(url)
            .header(reqwest::header::USER_AGENT, BROWSER_USER_AGENT)
            .header("sec-fetch-site", "none")
            .send()
            .await
            .map_err(|e| Error::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        if status == 404 || status == 410 {
            return Err(Error::Gone(status));
        }
        if !resp.status().is_success() {
            return Err(Error::Http(format!("{url} answered {status}")));
        }
        let body = crate::link::read_bounded(resp, MAX_SW_JS, false).await?;
        web_version_from_sw_js(&String::from_utf8_lossy(&body))
            .ok_or_else(|| Error::Http(format!("{url} names no client revision")))
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| Error::Http(format!("{url} timed out")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_is_read_plain_or_escaped() {
        assert_eq!(
            web_version_from_sw_js(r#"self.x={"client_revision":1045649367,"y":1}"#),
            Some([2, 3000, 1_045_649_367])
        );
        assert_eq!(
            web_version_from_sw_js(r#"importScripts("a");e='{\"client_revision\": 1012345678}'"#),
            Some([2, 3000, 1_012_345_678])
        );
        // A mention that is not the key, then the key.
        assert_eq!(
            web_version_from_sw_js(r#"client_revision_x "client_revision":7"#),
            Some([2, 3000, 7])
        );
        assert_eq!(web_version_from_sw_js("no revision here"), None);
        assert_eq!(web_version_from_sw_js(r#""client_revision":"abc""#), None);
        assert_eq!(
            web_version_from_sw_js(r#""client_revision":99999999999"#),
            None
        );
    }
}
