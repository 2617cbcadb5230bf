use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError, WebSocketRead, WebSocketWrite};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::proxy::Proxy;
use crate::Error;

/// Largest websocket frame accepted. The bytes of a fragmented message are handed on
/// fragment by fragment (the Noise frame decoder reassembles across messages anyway), so
/// nothing is accumulated here and this bounds the memory a peer can make us hold.
const MAX_WS_FRAME: usize = 17 * 1024 * 1024;

/// Size of the buffer frames wait in between [`WsWriter::write`] and a flush: a batch of
/// stanzas that fits goes out in one write to the socket (one TLS record over TLS).
const WRITE_BUFFER: usize = 4 * 1024;

/// A parsed `ws://` or `wss://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `true` for `wss://`.
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (default 443 for `wss`, 80 for `ws`).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl WsUrl {
    /// Parses a websocket URL.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for anything but `ws://host[:port][/path]` or the `wss` form.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidUrl(url.to_owned());
        let uri: http::Uri = url.parse().map_err(|_| bad())?;
        let tls = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(bad()),
        };
        let host = uri.host().ok_or_else(bad)?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad());
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        Ok(Self {
            tls,
            host,
            port,
            path,
        })
    }

    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Opens websocket connections: TCP (directly or through a proxy), TLS for `wss://`, and
/// the HTTP upgrade with WhatsApp Web's `Origin` header. Cheap to clone; share one
/// between many sockets so they share the TLS configuration.
#[derive(Clone)]
pub struct WsConnector {
    tls: TlsConnector,
    proxy: Option<Proxy>,
    origin: String,
    /// Extra headers of the upgrade request (whatsmeow's `WebSocketHeaders`).
    headers: Vec<(String, String)>,
    connect_timeout: Duration,
}

/// Headers of the upgrade request that belong to the websocket handshake itself and
/// cannot be set by [`WsConnector::header`].
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "origin",
];

impl std::fmt::Debug for WsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConnector")
            .field("proxy", &self.proxy)
            .field("origin", &self.origin)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for WsConnector {
    fn default() -> Self {
        Self::new()
    }
}

impl WsConnector {
    /// A connector trusting the web PKI roots, with no proxy, origin
    /// `https://web.whatsapp.com` and a 20-second connect timeout.
    /// The TLS configuration is built once per process and shared by every connector, so
    /// thousands of sockets hold one root store.
    pub fn new() -> Self {
        static DEFAULT_TLS: std::sync::OnceLock<Arc<ClientConfig>> = std::sync::OnceLock::new();
        let config = DEFAULT_TLS.get_or_init(|| {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            Arc::new(
                ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        });
        Self::with_tls_config(config.clone())
    }

    /// A connector using the given TLS client configuration (for private roots in tests).
    pub fn with_tls_config(config: Arc<ClientConfig>) -> Self {
        Self {
            tls: TlsConnector::from(config),
            proxy: None,
            origin: "https://web.whatsapp.com".into(),
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(20),
        }
    }

    /// Routes connections through `proxy`.
    #[must_use]
    pub fn proxy(mut self, proxy: Option<Proxy>) -> Self {
        self.proxy = proxy;
        self
    }

    /// Sets the `Origin` header of the upgrade request.
    #[must_use]
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }

    /// Adds a header to the upgrade request (e.g. `User-Agent`; whatsmeow's
    /// `WebSocketHeaders`). The handshake's own headers (`Host`, `Upgrade`,
    /// `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`) and `Origin` (see
    /// [`WsConnector::origin`]) are not replaced: such a name is ignored. A name or value
    /// HTTP does not allow makes [`WsConnector::connect`] fail.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        if !RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            self.headers.push((name, value.into()));
        }
        self
    }

    /// Bounds the whole connect (TCP, proxy, TLS and upgrade).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects and upgrades, returning the two halves of the websocket.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::Io`], [`Error::Proxy`], [`Error::Tls`] or
    /// [`Error::WebSocket`] for a refused upgrade.
    pub async fn connect(&self, url: &WsUrl) -> Result<(WsReader, WsWriter), Error> {
        tokio::time::timeout(self.connect_timeout, self.connect_inner(url))
            .await
            .map_err(|_| Error::Timeout("websocket connect"))?
    }

    async fn connect_inner(&self, url: &WsUrl) -> Result<(WsReader, WsWriter), Error> {
        let tcp = match &self.proxy {
            Some(proxy) => {
                let (host, port) = proxy.addr();
                let mut tcp = TcpStream::connect((host, port)).await?;
                proxy.tunnel(&mut tcp, &url.host, url.port).await?;
                tcp
            }
            None => TcpStream::connect((url.host.as_str(), url.port)).await?,
        };
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Io> = if url.tls {
            let name = ServerName::try_from(url.host.clone())
                .map_err(|_| Error::InvalidUrl(url.host.clone()))?;
            Box::new(self.tls.connect(name, tcp).await.map_err(Error::Tls)?)
        } else {
            Box::new(tcp)
        };

        let mut request = hyper::Request::builder()
            .method("GET")
            .uri(url.path.as_str())
            .header(hyper::header::HOST, url.authority())
            .header(hyper::header::UPGRADE, "websocket")
            .header(hyper::header::CONNECTION, "upgrade")
            .header(
                "Sec-WebSocket-Key",
                fastwebsockets::handshake::generate_key(),
            )
            .header("Sec-WebSocket-Version", "13")
            .header(hyper::header::ORIGIN, self.origin.as_str());
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| Error::InvalidUrl(e.to_string()))?;
        let (ws, _response) = fastwebsockets::handshake::client(&SpawnExecutor, request, stream)
            .await
            .map_err(|e| Error::WebSocket(e.to_string()))?;
        let (mut read, write) = ws.split(|s| {
            let (r, w) = tokio::io::split(s);
            (r, BufWriter::with_capacity(WRITE_BUFFER, w))
        });
        read.set_max_message_size(MAX_WS_FRAME);
        read.set_auto_close(true);
        read.set_auto_pong(true);
        // Pongs and close replies are written through the shared writer (see `recv`).
        let writer = WsWriter {
            inner: Arc::new(Mutex::new(write)),
        };
        Ok((
            WsReader {
                inner: read,
                writer: writer.clone(),
                in_text: false,
            },
            writer,
        ))
    }
}

/// Any byte stream a websocket can run over.
trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

type Stream = TokioIo<Upgraded>;

struct SpawnExecutor;

impl<F> hyper::rt::Executor<F> for SpawnExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

/// The sending half of a websocket. Cloning shares the one underlying writer.
///
/// Messages go through a small buffer: [`send`](Self::send) writes one and flushes,
/// [`write`](Self::write) leaves it in the buffer for a later [`flush`](Self::flush), so
/// a caller with several messages at hand pays for one write to the socket.
#[derive(Clone)]
pub struct WsWriter {
    inner: Arc<Mutex<WebSocketWrite<BufWriter<WriteHalf<Stream>>>>>,
}

impl std::fmt::Debug for WsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsWriter")
    }
}

impl WsWriter {
    /// Sends one binary message.
    ///
    /// # Errors
    /// [`Error::WebSocket`] when the connection is gone.
    pub async fn send(&self, data: &[u8]) -> Result<(), Error> {
        let mut w = self.inner.lock().await;
        w.write_frame(Frame::binary(Payload::Borrowed(data)))
            .await
            .map_err(ws_err)?;
        w.flush().await.map_err(ws_err)
    }

    /// Queues one binary message behind those already buffered. It reaches the socket
    /// with the next [`flush`](Self::flush) or [`send`](Self::send), or earlier when the
    /// buffer fills.
    ///
    /// # Errors
    /// [`Error::WebSocket`] when the connection is gone.
    pub async fn write(&self, data: &[u8]) -> Result<(), Error> {
        let mut w = self.inner.lock().await;
        w.write_frame(Frame::binary(Payload::Borrowed(data)))
            .await
            .map_err(ws_err)
    }

    /// Writes whatever [`write`](Self::write) left in the buffer to the socket.
    ///
    /// # Errors
    /// [`Error::WebSocket`] when the connection is gone.
    pub async fn flush(&self) -> Result<(), Error> {
        self.inner.lock().await.flush().await.map_err(ws_err)
    }

    /// Sends a close frame (normal closure), after anything still buffered. Errors are
    /// ignored: the peer may be gone.
    pub async fn close(&self) {
        let mut w = self.inner.lock().await;
        if w.write_frame(Frame::close(1000, b"")).await.is_ok() {
            let _ = w.flush().await;
        }
    }
}

/// The receiving half of a websocket: yields the bytes of binary messages in order.
pub struct WsReader {
    inner: WebSocketRead<ReadHalf<Stream>>,
    writer: WsWriter,
    /// Inside a fragmented text message, whose continuations are skipped.
    in_text: bool,
}

impl std::fmt::Debug for WsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsReader")
    }
}

impl WsReader {
    /// The next chunk of binary payload (a whole message, or one fragment of a fragmented
    /// one), or `None` once the peer closed the connection. Pings are answered and text
    /// messages are skipped. Not cancellation-safe: keep one task reading.
    ///
    /// # Errors
    /// [`Error::WebSocket`] on a protocol violation or a broken connection.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let writer = self.writer.inner.clone();
            let mut send = move |frame: Frame<'_>| {
                let owned = Frame::new(
                    true,
                    frame.opcode,
                    None,
                    Payload::Owned(frame.payload.to_vec()),
                );
                let writer = writer.clone();
                Box::pin(async move {
                    let mut w = writer.lock().await;
                    w.write_frame(owned).await?;
                    w.flush().await
                })
                    as Pin<Box<dyn Future<Output = Result<(), WebSocketError>> + Send>>
            };
            let frame = match self.inner.read_frame(&mut send).await {
                Ok(f) => f,
                Err(WebSocketError::ConnectionClosed | WebSocketError::UnexpectedEOF) => {
                    return Ok(None);
                }
                Err(e) => return Err(ws_err(e)),
            };
            match frame.opcode {
                OpCode::Binary => {
                    self.in_text = false;
                    return Ok(Some(Bytes::from(frame.payload.to_vec())));
                }
                OpCode::Continuation if !self.in_text => {
                    return Ok(Some(Bytes::from(frame.payload.to_vec())));
                }
                OpCode::Text => self.in_text = !frame.fin,
                OpCode::Continuation => self.in_text = !frame.fin,
                OpCode::Close => return Ok(None),
                OpCode::Ping | OpCode::Pong => {}
            }
        }
    }
}

fn ws_err(e: WebSocketError) -> Error {
    Error::WebSocket(e.to_string())
}
