//! A scripted WhatsApp-like server on 127.0.0.1 for the socket's state-machine tests:
//! it runs the Noise responder over a plain websocket and hands each connection to the
//! test, which sends and receives nodes by hand.

#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wa_binary::Node;
use wa_crypto::KeyPair;
use wa_noise::{ChainParams, FrameDecoder, Responder, ResponderConfig, Transport};
use wa_proto::handshake::ClientPayload;

pub struct FakeServer {
    pub url: String,
    pub root: KeyPair,
    conns: mpsc::Receiver<ServerConn>,
}

pub struct ServerConn {
    ws: WebSocket<TokioIo<Upgraded>>,
    decoder: FrameDecoder,
    transport: Transport,
    pub payload: ClientPayload,
    pub client_static: wa_crypto::PublicKey,
    /// The client's last pre-key upload, which a `<digest>` query is answered from.
    uploaded: Option<Node>,
}

impl FakeServer {
    pub async fn start() -> FakeServer {
        let mut rng = rand::rngs::OsRng;
        let root = KeyPair::generate(&mut rng);
        let inter = KeyPair::generate(&mut rng);
        let static_key = KeyPair::generate(&mut rng);
        let chain = wa_noise::issue_cert_chain(
            &root,
            &inter,
            &static_key.public,
            &ChainParams::default(),
            &mut rng,
        );
        let config = ResponderConfig {
            static_key,
            cert_chain: chain,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (tx, config) = (tx.clone(), config.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |mut req: Request<Incoming>| {
                        let (tx, config) = (tx.clone(), config.clone());
                        async move {
                            let (resp, fut) = fastwebsockets::upgrade::upgrade(&mut req)
                                .map_err(|e| e.to_string())?;
                            tokio::spawn(async move {
                                let Ok(mut ws) = fut.await else { return };
                                ws.set_auto_close(true);
                                ws.set_auto_pong(true);
                                if let Some(conn) = handshake(ws, config).await {
                                    let _ = tx.send(conn).await;
                                }
                            });
                            Ok::<Response<Empty<Bytes>>, String>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        FakeServer {
            url: format!("ws://{addr}/ws/chat"),
            root,
            conns: rx,
        }
    }

    /// The next connection that finished the Noise handshake.
    pub async fn accept(&mut self) -> ServerConn {
        tokio::time::timeout(Duration::from_secs(20), self.conns.recv())
            .await
            .expect("a client connects in time")
            .expect("server alive")
    }

    /// No connection arrives within `d`.
    pub async fn expect_no_connection(&mut self, d: Duration) {
        assert!(
            tokio::time::timeout(d, self.conns.recv()).await.is_err(),
            "the client reconnected"
        );
    }
}

async fn read_frame(
    ws: &mut WebSocket<TokioIo<Upgraded>>,
    dec: &mut FrameDecoder,
) -> Option<BytesMut> {
    loop {
        if let Some(f) = dec.next_frame().ok()? {
            return Some(f);
        }
        let frame = ws.read_frame().await.ok()?;
        match frame.opcode {
            OpCode::Binary | OpCode::Continuation => dec.push(&frame.payload).ok()?,
            OpCode::Close => return None,
            _ => {}
        }
    }
}

async fn handshake(
    mut ws: WebSocket<TokioIo<Upgraded>>,
    config: ResponderConfig,
) -> Option<ServerConn> {
    let mut dec = FrameDecoder::server();
    let hello = read_frame(&mut ws, &mut dec).await?;
    let responder = Responder::new(config, KeyPair::generate(&mut rand::rngs::OsRng));
    let (out, awaiting) = responder.read_client_hello(&hello).ok()?;
    ws.write_frame(Frame::binary(Payload::Owned(out.to_vec())))
        .await
        .ok()?;
    let finish = read_frame(&mut ws, &mut dec).await?;
    let done = match awaiting.read_client_finish(&finish) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("client finish refused: {e}");
            return None;
        }
    };
    let payload = match ClientPayload::decode(done.payload.as_slice()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("client payload undecodable: {e}");
            return None;
        }
    };
    Some(ServerConn {
        ws,
        decoder: dec,
        transport: done.transport,
        payload,
        client_static: done.client_static,
        uploaded: None,
    })
}

impl ServerConn {
    pub fn is_registration(&self) -> bool {
        self.payload.device_pairing_data.is_some()
    }

    pub async fn send(&mut self, node: &Node) {
        let plain = wa_binary::encode(node);
        let mut out = BytesMut::new();
        self.transport.encrypt_into(&plain, &mut out).unwrap();
        self.ws
            .write_frame(Frame::binary(Payload::Owned(out.to_vec())))
            .await
            .unwrap();
    }

    /// The next node, or `None` once the client closed.
    pub async fn recv(&mut self) -> Option<Node> {
        let mut frame = read_frame(&mut self.ws, &mut self.decoder).await?;
        self.transport.decrypt_in_place(&mut frame).ok()?;
        Some(wa_binary::decode(frame.freeze()).unwrap())
    }

    /// Receives until a node matches `pred`, answering pings, acks and pre-key queries
    /// on the way (pre-key count 100, so no upload).
    pub async fn recv_until(&mut self, mut pred: impl FnMut(&Node) -> bool) -> Node {
        let fut = async {
            loop {
                let node = self.recv().await.expect("client still connected");
                if pred(&node) {
                    return node;
                }
                self.auto_answer(&node).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), fut)
            .await
            .expect("expected node in time")
    }

    pub async fn auto_answer(&mut self, node: &Node) {
        if node.tag() != "iq" {
            return;
        }
        let id = node.attr::<&str>("id").unwrap().to_owned();
        let mut reply = Node::builder("iq")
            .attr("type", "result")
            .attr("id", id)
            .attr("from", wa_binary::Jid::server_jid());
        let encrypt = node.get_attr("xmlns").and_then(|v| v.as_str()) == Some("encrypt");
        if encrypt && node.child("count").is_some() {
            reply = reply.children([Node::builder("count").attr("value", "100").build()]);
        }
        if encrypt && node.child("list").is_some() {
            self.uploaded = Some(node.clone());
        }
        if encrypt
            && node.child("digest").is_some()
            && let Some(up) = &self.uploaded
        {
            let keep = ["registration", "type", "identity", "skey"];
            let digest = Node::builder("digest")
                .children(
                    up.children()
                        .iter()
                        .filter(|c| keep.contains(&c.tag()))
                        .cloned(),
                )
                .build();
            reply = reply.children([digest]);
        }
        self.send(&reply.build()).await;
    }

    /// Sends `<success>` and serves the client until `pred` (or forever).
    pub async fn success(&mut self) {
        self.send(
            &Node::builder("success")
                .attr("t", "1700000000")
                .attr("lid", "123456789012345:7@lid")
                .build(),
        )
        .await;
    }

    pub async fn stream_error(&mut self, code: &str) {
        self.send(
            &Node::builder("stream:error")
                .attr("code", code.to_owned())
                .build(),
        )
        .await;
    }

    pub async fn conflict(&mut self, kind: &str, code: Option<&str>) {
        let mut b = Node::builder("stream:error");
        if let Some(c) = code {
            b = b.attr("code", c.to_owned());
        }
        self.send(
            &b.children([Node::builder("conflict")
                .attr("type", kind.to_owned())
                .build()])
                .build(),
        )
        .await;
    }

    /// Drops the websocket without a word.
    pub async fn drop_connection(mut self) {
        let _ = self.ws.write_frame(Frame::close(1000, b"")).await;
    }

    /// Keeps the connection open but never answers anything (a dead peer).
    pub async fn go_silent(mut self, d: Duration) -> Option<()> {
        let _ = tokio::time::timeout(d, async { while self.recv().await.is_some() {} }).await;
        Some(())
    }
}
