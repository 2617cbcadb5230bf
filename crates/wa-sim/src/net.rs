//! The simulator's network edge: one listener serving `/ws/chat` websockets (plain or
//! TLS), the loopback admin endpoints under `/admin/`, and the media host (`/mms/`, `/v/`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError, WebSocketRead, WebSocketWrite};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{BufWriter, ReadHalf, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_rustls::TlsAcceptor;

use crate::media::{MediaHost, SimBody, plain};

/// Largest websocket frame the simulator accepts from a client.
const MAX_WS_FRAME: usize = 17 * 1024 * 1024;
/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 64 * 1024;

type Stream = TokioIo<Upgraded>;

/// What the network edge hands to the simulator core.
pub(crate) trait Handler: Send + Sync + 'static {
    /// A client opened a websocket on `/ws/chat`.
    fn websocket(self: Arc<Self>, conn: WsConn) -> impl Future<Output = ()> + Send;
    /// An admin request: path below `/admin/` and body; returns status and body.
    fn admin(
        self: Arc<Self>,
        path: String,
        body: Bytes,
    ) -> impl Future<Output = (u16, String)> + Send;
    /// The media host serving `/mms/` uploads and `/v/` downloads.
    fn media_host(&self) -> &MediaHost;
    /// The JPEG of the profile or group picture at `/pp/<rest>` (`<owner>/<id>.jpg`), if
    /// there is one.
    fn picture(&self, rest: &str) -> Option<Bytes>;
}

/// One client websocket, server side.
pub(crate) struct WsConn {
    pub(crate) reader: WsRead,
    pub(crate) writer: WsWrite,
    pub(crate) peer: SocketAddr,
}

/// Sending half; clones share the socket. Frames go through a buffer that every call
/// flushes before it returns, so a batch of frames costs one write to the socket.
#[derive(Clone)]
pub(crate) struct WsWrite(Arc<Mutex<WebSocketWrite<BufWriter<WriteHalf<Stream>>>>>);

/// Size of the buffer frames are gathered in before a write to the socket.
const WRITE_BUFFER: usize = 64 * 1024;

impl WsWrite {
    /// Writes `frames` as binary messages, in order, and flushes them.
    pub(crate) async fn send_all(&self, frames: &[Bytes]) -> Result<(), WebSocketError> {
        let mut w = self.0.lock().await;
        for data in frames {
            w.write_frame(Frame::binary(Payload::Borrowed(data)))
                .await?;
        }
        w.flush().await
    }

    pub(crate) async fn close(&self) {
        let mut w = self.0.lock().await;
        if w.write_frame(Frame::close(1000, b"")).await.is_ok() {
            let _ = w.flush().await;
        }
    }
}

/// Receiving half.
pub(crate) struct WsRead {
    inner: WebSocketRead<ReadHalf<Stream>>,
    writer: WsWrite,
    in_text: bool,
}

impl WsRead {
    /// The next chunk of binary payload, or `None` when the client is gone.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        loop {
            let writer = self.writer.0.clone();
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
            let frame = self.inner.read_frame(&mut send).await.ok()?;
            match frame.opcode {
                OpCode::Binary => {
                    self.in_text = false;
                    return Some(Bytes::from(frame.payload.to_vec()));
                }
                OpCode::Continuation if !self.in_text => {
                    return Some(Bytes::from(frame.payload.to_vec()));
                }
                OpCode::Text | OpCode::Continuation => self.in_text = !frame.fin,
                OpCode::Close => return None,
                OpCode::Ping | OpCode::Pong => {}
            }
        }
    }
}

/// Serves `listener` until the returned task is aborted.
pub(crate) fn serve<H: Handler>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Arc<H>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let handler = handler.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            serve_http(stream, peer, handler).await;
                        }
                    }
                    None => serve_http(tcp, peer, handler).await,
                }
            });
        }
    })
}

async fn serve_http<S, H>(io: S, peer: SocketAddr, handler: Arc<H>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let svc = service_fn(move |req| route(req, peer, handler.clone()));
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await;
}

async fn route<H: Handler>(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    handler: Arc<H>,
) -> Result<Response<SimBody>, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/ws/chat" && fastwebsockets::upgrade::is_upgrade_request(&req) {
        let Ok((resp, fut)) = fastwebsockets::upgrade::upgrade(&mut req) else {
            return Ok(plain(StatusCode::BAD_REQUEST, "bad websocket upgade"));
        };
        tokio::spawn(async move {
            let Ok(ws) = fut.await else { return };
            let (mut read, write) = ws.split(|s| {
                let (r, w) = tokio::io::split(s);
                (r, BufWriter::with_capacity(WRITE_BUFFER, w))
            });
            read.set_max_message_size(MAX_WS_FRAME);
            let writer = WsWrite(Arc::new(Mutex::new(write)));
            let reader = WsRead {
                inner: read,
                writer: writer.clone(),
                in_text: false,
            };
            handler
                .websocket(WsConn {
                    reader,
                    writer,
                    peer,
                })
                .await;
        });
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, SimBody::empty()));
    }
    if let Some(rest) = path.strip_prefix("/admin/") {
        if !peer.ip().is_loopback() {
            return Ok(plain(
                StatusCode::FORBIDDEN,
                "admin endpoints answer loopback only",
            ));
        }
        let body = match Limited::new(req.into_body(), MAX_ADMIN_BODY)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, "body too large")),
        };
        let (status, text) = handler.admin(rest.to_owned(), body).await;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Ok(plain(status, &text));
    }
    if let Some(rest) = path.strip_prefix("/pp/") {
        if req.method() != hyper::Method::GET {
            return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "GET only"));
        }
        return Ok(match handler.picture(rest) {
            Some(jpeg) => {
                let mut resp = Response::new(SimBody::full(jpeg));
                resp.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("image/jpeg"),
                );
                resp
            }
            None => plain(StatusCode::NOT_FOUND, "no such picture"),
        });
    }
    if let Some(resp) = handler.media_host().handle(req).await {
        return Ok(resp);
    }
    Ok(plain(StatusCode::NOT_FOUND, "not found"))
}
