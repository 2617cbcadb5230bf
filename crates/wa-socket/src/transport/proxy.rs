//! Tunnels through HTTP CONNECT and SOCKS5 proxies (RFC 1928 with RFC 1929 auth).

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Error;

/// Longest proxy response header we accept before giving up (bytes).
const MAX_CONNECT_RESPONSE: usize = 16 * 1024;

/// A proxy to reach the websocket server through.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Proxy {
    /// An HTTP proxy that supports `CONNECT`.
    Http {
        /// Proxy host name or address.
        host: String,
        /// Proxy port.
        port: u16,
        /// Optional basic-auth user and password.
        auth: Option<(String, String)>,
    },
    /// A SOCKS5 proxy; the target host name is resolved by the proxy.
    Socks5 {
        /// Proxy host name or address.
        host: String,
        /// Proxy port.
        port: u16,
        /// Optional user name and password (RFC 1929).
        auth: Option<(String, String)>,
    },
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, host, port, auth) = match self {
            Self::Http { host, port, auth } => ("http", host, port, auth),
            Self::Socks5 { host, port, auth } => ("socks5", host, port, auth),
        };
        write!(
            f,
            "Proxy({kind}://{}{host}:{port})",
            if auth.is_some() { "***@" } else { "" }
        )
    }
}

impl Proxy {
    /// Parses `http://[user:pass@]host:port` or `socks5://[user:pass@]host:port`
    /// (`socks5h://` is accepted as a synonym: names are always resolved by the proxy).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when the string is not of that form.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidUrl(url.to_owned());
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let rest = rest.trim_end_matches('/');
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((a, h)) => {
                let (u, p) = a.split_once(':').unwrap_or((a, ""));
                (Some((u.to_owned(), p.to_owned())), h)
            }
            None => (None, rest),
        };
        let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad());
        }
        match scheme {
            "http" => Ok(Self::Http { host, port, auth }),
            "socks5" | "socks5h" => Ok(Self::Socks5 { host, port, auth }),
            _ => Err(bad()),
        }
    }

    pub(crate) fn addr(&self) -> (&str, u16) {
        match self {
            Self::Http { host, port, .. } | Self::Socks5 { host, port, .. } => (host, *port),
        }
    }

    /// Asks the proxy, over `stream`, for a tunnel to `host:port`.
    pub(crate) async fn tunnel<S>(&self, stream: &mut S, host: &str, port: u16) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match self {
            Self::Http { auth, .. } => http_connect(stream, host, port, auth.as_ref()).await,
            Self::Socks5 { auth, .. } => socks5_connect(stream, host, port, auth.as_ref()).await,
        }
    }
}

async fn http_connect<S>(
    stream: &mut S,
    host: &str,
    port: u16,
    auth: Option<&(String, String)>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((user, pass)) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await?;
    stream.flush().await?;

    // Read byte by byte up to the end of the header so no tunnelled byte is consumed.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_CONNECT_RESPONSE {
            return Err(Error::Proxy("CONNECT response header too long".into()));
        }
        let b = stream.read_u8().await?;
        head.push(b);
    }
    let status_line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let status_line = String::from_utf8_lossy(status_line);
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    if code == "200" {
        Ok(())
    } else {
        Err(Error::Proxy(format!("CONNECT refused: {status_line}")))
    }
}

async fn socks5_connect<S>(
    stream: &mut S,
    host: &str,
    port: u16,
    auth: Option<&(String, String)>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let method = if auth.is_some() { 0x02 } else { 0x00 };
    stream.write_all(&[0x05, 0x01, method]).await?;
    let mut reply = [0u8; 2];
    stream.read_exact(&mut reply).await?;
    if reply[0] != 0x05 {
        return Err(Error::Proxy(format!(
            "not a SOCKS5 proxy (version {})",
            reply[0]
        )));
    }
    match (reply[1], auth) {
        (0x00, _) => {}
        (0x02, Some((user, pass))) => {
            let (u, p) = (user.as_bytes(), pass.as_bytes());
            let (Ok(ul), Ok(pl)) = (u8::try_from(u.len()), u8::try_from(p.len())) else {
                return Err(Error::Proxy(
                    "SOCKS5 user or password longer than 255 bytes".into(),
                ));
            };
            let mut msg = Vec::with_capacity(3 + u.len() + p.len());
            msg.extend_from_slice(&[0x01, ul]);
            msg.extend_from_slice(u);
            msg.push(pl);
            msg.extend_from_slice(p);
            stream.write_all(&msg).await?;
            stream.read_exact(&mut reply).await?;
            if reply[1] != 0x00 {
                return Err(Error::Proxy("SOCKS5 authentication failed".into()));
            }
        }
        (m, _) => {
            return Err(Error::Proxy(format!(
                "SOCKS5 proxy chose unsupported method {m:#x}"
            )));
        }
    }

    let name = host.as_bytes();
    let Ok(name_len) = u8::try_from(name.len()) else {
        return Err(Error::Proxy("host name longer than 255 bytes".into()));
    };
    let mut req = Vec::with_capacity(7 + name.len());
    req.extend_from_slice(&[0x05, 0x01, 0x00, 0x03, name_len]);
    req.extend_from_slice(name);
    req.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&req).await?;

    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    if head[1] != 0x00 {
        return Err(Error::Proxy(format!(
            "SOCKS5 connect failed with reply code {}",
            head[1]
        )));
    }
    let addr_len = match head[3] {
        0x01 => 4,
        0x04 => 16,
        0x03 => usize::from(stream.read_u8().await?),
        t => return Err(Error::Proxy(format!("SOCKS5 reply with address type {t}"))),
    };
    let mut rest = vec![0u8; addr_len + 2];
    stream.read_exact(&mut rest).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proxy_urls() {
        assert_eq!(
            Proxy::parse("http://10.0.0.1:3128").unwrap(),
            Proxy::Http {
                host: "10.0.0.1".into(),
                port: 3128,
                auth: None
            }
        );
        assert_eq!(
            Proxy::parse("socks5://u:p@proxy.local:1080/").unwrap(),
            Proxy::Socks5 {
                host: "proxy.local".into(),
                port: 1080,
                auth: Some(("u".into(), "p".into()))
            }
        );
        assert!(Proxy::parse("ftp://x:1").is_err());
        assert!(Proxy::parse("http://nohost").is_err());
        assert!(Proxy::parse("http://:80").is_err());
        assert!(
            !format!("{:?}", Proxy::parse("socks5://u:secret@h:1").unwrap()).contains("secret")
        );
    }
}
