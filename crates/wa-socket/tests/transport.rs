//! The websocket transport against local servers and proxies on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use wa_socket::{Error, Proxy, WsConnector, WsUrl};

/// What the echo server saw of the upgrade request.
#[derive(Clone, Default)]
struct Seen {
    origin: Arc<std::sync::Mutex<Option<String>>>,
    path: Arc<std::sync::Mutex<Option<String>>>,
    user_agent: Arc<std::sync::Mutex<Option<String>>>,
    keys: Arc<std::sync::Mutex<usize>>,
}

async fn echo(req: Request<Incoming>, seen: Seen) -> Result<Response<Empty<Bytes>>, String> {
    *seen.origin.lock().unwrap() = req
        .headers()
        .get("origin")
        .map(|v| v.to_str().unwrap().to_owned());
    *seen.path.lock().unwrap() = Some(req.uri().path().to_owned());
    *seen.user_agent.lock().unwrap() = req
        .headers()
        .get("user-agent")
        .map(|v| v.to_str().unwrap().to_owned());
    *seen.keys.lock().unwrap() = req.headers().get_all("sec-websocket-key").iter().count();
    if req.uri().path() != "/ws/chat" {
        return Ok(Response::builder().status(404).body(Empty::new()).unwrap());
    }
    let mut req = req;
    let (resp, fut) = fastwebsockets::upgrade::upgrade(&mut req).map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let mut ws = fut.await.unwrap();
        loop {
            let frame = match ws.read_frame().await {
                Ok(f) => f,
                Err(_) => return,
            };
            match frame.opcode {
                OpCode::Binary if frame.payload.as_ref() == b"fragment-me" => {
                    ws.write_frame(Frame::new(
                        false,
                        OpCode::Binary,
                        None,
                        Payload::Owned(b"abc".to_vec()),
                    ))
                    .await
                    .unwrap();
                    ws.write_frame(Frame::text(Payload::Owned(b"ignored".to_vec())))
                        .await
                        .ok();
                    ws.write_frame(Frame::new(
                        true,
                        OpCode::Continuation,
                        None,
                        Payload::Owned(b"def".to_vec()),
                    ))
                    .await
                    .unwrap();
                }
                OpCode::Binary if frame.payload.as_ref() == b"bye" => {
                    ws.write_frame(Frame::close(1000, b"")).await.unwrap();
                    return;
                }
                OpCode::Binary => {
                    let echo = frame.payload.to_vec();
                    ws.write_frame(Frame::binary(Payload::Owned(echo)))
                        .await
                        .unwrap();
                }
                OpCode::Close => return,
                _ => {}
            }
        }
    });
    Ok(resp)
}

async fn serve_conn<S>(io: S, seen: Seen)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| echo(req, seen.clone()));
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await;
}

async fn echo_server(tls: Option<tokio_rustls::TlsAcceptor>) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let seen = s.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acc) => serve_conn(acc.accept(tcp).await.unwrap(), seen).await,
                    None => serve_conn(tcp, seen).await,
                }
            });
        }
    });
    (addr, seen)
}

async fn roundtrip(connector: &WsConnector, url: &WsUrl) {
    let (mut reader, writer) = connector.connect(url).await.unwrap();
    for msg in [&b"hello"[..], &[0u8; 70_000][..], b"\x00\x01\x02"] {
        writer.send(msg).await.unwrap();
        assert_eq!(reader.recv().await.unwrap().unwrap(), msg);
    }
    writer.send(b"fragment-me").await.unwrap();
    let mut got = reader.recv().await.unwrap().unwrap().to_vec();
    got.extend_from_slice(&reader.recv().await.unwrap().unwrap());
    assert_eq!(
        got, b"abcdef",
        "fragments arrive in order, the interleaved text is skipped"
    );
    writer.send(b"bye").await.unwrap();
    assert_eq!(reader.recv().await.unwrap(), None, "close ends the stream");
}

#[tokio::test]
async fn plain_websocket_echo_with_origin_and_path() {
    let (addr, seen) = echo_server(None).await;
    let url = WsUrl::parse(&format!("ws://127.0.0.1:{}/ws/chat", addr.port())).unwrap();
    roundtrip(&WsConnector::new(), &url).await;
    assert_eq!(
        seen.origin.lock().unwrap().as_deref(),
        Some("https://web.whatsapp.com")
    );
    assert_eq!(seen.path.lock().unwrap().as_deref(), Some("/ws/chat"));
}

#[tokio::test]
async fn extra_headers_go_with_the_upgrade_but_never_replace_the_handshake() {
    let (addr, seen) = echo_server(None).await;
    let url = WsUrl::parse(&format!("ws://127.0.0.1:{}/ws/chat", addr.port())).unwrap();
    let connector = WsConnector::new()
        .header("User-Agent", "wa-rs test")
        .header("Sec-WebSocket-Key", "chosen")
        .header("Origin", "https://elsewhere.example");
    roundtrip(&connector, &url).await;
    assert_eq!(
        seen.user_agent.lock().unwrap().as_deref(),
        Some("wa-rs test")
    );
    assert_eq!(
        *seen.keys.lock().unwrap(),
        1,
        "one handshake key, the generated one"
    );
    assert_eq!(
        seen.origin.lock().unwrap().as_deref(),
        Some("https://web.whatsapp.com")
    );
    // A header HTTP does not allow fails the connect, typed.
    let bad = WsConnector::new().header("Bad Name", "x");
    assert!(matches!(bad.connect(&url).await, Err(Error::InvalidUrl(_))));
}

#[tokio::test]
async fn refused_upgrade_is_a_websocket_error() {
    let (addr, _) = echo_server(None).await;
    let url = WsUrl::parse(&format!("ws://127.0.0.1:{}/elsewhere", addr.port())).unwrap();
    let err = WsConnector::new().connect(&url).await.unwrap_err();
    assert!(matches!(err, Error::WebSocket(_)), "{err:?}");
}

#[tokio::test]
async fn silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(listener.accept().await.unwrap());
        }
    });
    let url = WsUrl::parse(&format!("ws://127.0.0.1:{port}/ws/chat")).unwrap();
    let connector = WsConnector::new().connect_timeout(Duration::from_millis(200));
    let err = connector.connect(&url).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
}

#[tokio::test]
async fn secure_websocket_with_private_root() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.signing_key.serialize_der(),
    ));
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let (addr, _) = echo_server(Some(tokio_rustls::TlsAcceptor::from(Arc::new(server)))).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let url = WsUrl::parse(&format!("wss://localhost:{}/ws/chat", addr.port())).unwrap();
    roundtrip(&WsConnector::with_tls_config(Arc::new(client)), &url).await;

    // The default connector trusts only the web PKI, so the private root is refused.
    let err = WsConnector::new().connect(&url).await.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
}

/// A one-connection-at-a-time HTTP CONNECT proxy that requires `user:pass`.
async fn http_proxy() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    head.push(client.read_u8().await.unwrap());
                }
                let head = String::from_utf8(head).unwrap();
                let target = head.split_whitespace().nth(1).unwrap().to_owned();
                // base64("user:pass")
                if !head.contains("Proxy-Authorization: Basic dXNlcjpwYXNz") {
                    client
                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                        .await
                        .ok();
                    return;
                }
                let mut upstream = TcpStream::connect(target).await.unwrap();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    port
}

/// A SOCKS5 proxy (domain-name targets, user/password auth).
async fn socks5_proxy() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut c, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut hdr = [0u8; 2];
                c.read_exact(&mut hdr).await.unwrap();
                let mut methods = vec![0u8; usize::from(hdr[1])];
                c.read_exact(&mut methods).await.unwrap();
                assert!(methods.contains(&2));
                c.write_all(&[5, 2]).await.unwrap();
                let ver = c.read_u8().await.unwrap();
                assert_eq!(ver, 1);
                let mut user = vec![0u8; usize::from(c.read_u8().await.unwrap())];
                c.read_exact(&mut user).await.unwrap();
                let mut pass = vec![0u8; usize::from(c.read_u8().await.unwrap())];
                c.read_exact(&mut pass).await.unwrap();
                let ok = user == b"user" && pass == b"pass";
                c.write_all(&[1, if ok { 0 } else { 1 }]).await.unwrap();
                if !ok {
                    return;
                }
                let mut req = [0u8; 4];
                c.read_exact(&mut req).await.unwrap();
                assert_eq!(req, [5, 1, 0, 3]);
                let mut name = vec![0u8; usize::from(c.read_u8().await.unwrap())];
                c.read_exact(&mut name).await.unwrap();
                let port = c.read_u16().await.unwrap();
                let host = String::from_utf8(name).unwrap();
                let mut upstream = TcpStream::connect((host.as_str(), port)).await.unwrap();
                c.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut c, &mut upstream).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn through_http_connect_proxy() {
    let (addr, _) = echo_server(None).await;
    let url = WsUrl::parse(&format!("ws://127.0.0.1:{}/ws/chat", addr.port())).unwrap();
    let port = http_proxy().await;
    let ok = Proxy::parse(&format!("http://user:pass@127.0.0.1:{port}")).unwrap();
    roundtrip(&WsConnector::new().proxy(Some(ok)), &url).await;

    let wrong = Proxy::parse(&format!("http://user:nope@127.0.0.1:{port}")).unwrap();
    let err = WsConnector::new()
        .proxy(Some(wrong))
        .connect(&url)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Proxy(ref m) if m.contains("407")),
        "{err:?}"
    );
}

#[tokio::test]
async fn through_socks5_proxy() {
    let (addr, _) = echo_server(None).await;
    let url = WsUrl::parse(&format!("ws://localhost:{}/ws/chat", addr.port())).unwrap();
    let port = socks5_proxy().await;
    let ok = Proxy::parse(&format!("socks5://user:pass@127.0.0.1:{port}")).unwrap();
    roundtrip(&WsConnector::new().proxy(Some(ok)), &url).await;

    let wrong = Proxy::parse(&format!("socks5://user:bad@127.0.0.1:{port}")).unwrap();
    let err = WsConnector::new()
        .proxy(Some(wrong))
        .connect(&url)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Proxy(_)), "{err:?}");
}

#[test]
fn parses_websocket_urls() {
    let u = WsUrl::parse("wss://web.whatsapp.com/ws/chat").unwrap();
    assert_eq!(
        (u.tls, u.host.as_str(), u.port, u.path.as_str()),
        (true, "web.whatsapp.com", 443, "/ws/chat")
    );
    let u = WsUrl::parse("ws://127.0.0.1:8080/ws/chat?x=1").unwrap();
    assert_eq!(
        (u.tls, u.port, u.path.as_str()),
        (false, 8080, "/ws/chat?x=1")
    );
    let u = WsUrl::parse("ws://[::1]:9/").unwrap();
    assert_eq!(u.host, "::1");
    for bad in ["http://x/", "wss://", "not a url", "ws:///path"] {
        assert!(WsUrl::parse(bad).is_err(), "{bad}");
    }
}

/// `write` leaves messages in the writer's buffer until `flush` (or a `send`); a message
/// larger than the buffer goes out at once, behind those buffered before it.
#[tokio::test]
async fn written_messages_wait_for_a_flush_and_keep_their_order() {
    let (addr, _) = echo_server(None).await;
    let url = WsUrl::parse(&format!("ws://127.0.0.1:{}/ws/chat", addr.port())).unwrap();
    let (mut reader, writer) = WsConnector::new().connect(&url).await.unwrap();

    writer.write(b"one").await.unwrap();
    writer.write(b"two").await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), reader.recv())
            .await
            .is_err(),
        "nothing reaches the server before the flush"
    );
    writer.flush().await.unwrap();
    for want in [&b"one"[..], b"two"] {
        assert_eq!(reader.recv().await.unwrap().unwrap(), want);
    }

    let big = vec![7u8; 20_000];
    writer.write(b"three").await.unwrap();
    writer.write(&big).await.unwrap();
    for want in [&b"three"[..], &big] {
        let got = tokio::time::timeout(Duration::from_secs(5), reader.recv())
            .await
            .expect("a message larger than the buffer is written without a flush")
            .unwrap()
            .unwrap();
        assert_eq!(got, want);
    }

    writer.write(b"four").await.unwrap();
    writer.send(b"five").await.unwrap();
    for want in [&b"four"[..], b"five"] {
        assert_eq!(reader.recv().await.unwrap().unwrap(), want);
    }
}
