//! End-to-end tests of the simulator over real sockets on 127.0.0.1.

mod common;

use std::time::Duration;

use common::*;
use wa_binary::{Jid, Node};
use wa_sim::{Error, Fault, QrTiming, Sim, SimConfig, StreamErrorKind, Target};

const PHONE: &str = "15551234567";

async fn sim() -> Sim {
    Sim::start(SimConfig::default()).await.expect("start")
}

fn prekey_upload(creds: &Creds, ids: std::ops::Range<u32>) -> Node {
    let key = |id: u32| {
        Node::builder("key")
            .children([
                Node::builder("id")
                    .bytes(id.to_be_bytes()[1..].to_vec())
                    .build(),
                Node::builder("value").bytes(vec![id as u8; 32]).build(),
            ])
            .build()
    };
    iq(
        "up-1",
        "set",
        "encrypt",
        vec![
            Node::builder("registration")
                .bytes(creds.registration_id.to_be_bytes().to_vec())
                .build(),
            Node::builder("type").bytes(vec![5]).build(),
            Node::builder("identity")
                .bytes(creds.identity.public.as_bytes().to_vec())
                .build(),
            Node::builder("list").children(ids.map(key)).build(),
            Node::builder("skey")
                .children([
                    Node::builder("id").bytes(vec![0, 0, 1]).build(),
                    Node::builder("value").bytes(vec![7; 32]).build(),
                    Node::builder("signature").bytes(vec![8; 64]).build(),
                ])
                .build(),
        ],
    )
}

#[tokio::test]
async fn qr_registration_then_login() {
    let sim = sim().await;
    let acct = sim.add_account(PHONE).await;
    assert_eq!(acct.pn, Jid::pn(PHONE));
    let creds = Creds::new();
    let device = register(&sim, PHONE, &creds).await;
    assert_eq!(device.user.as_str(), PHONE);
    assert!(device.device >= 1);
    assert_eq!(sim.devices(PHONE), vec![device.clone()]);
    let linked = sim.linked_devices(PHONE);
    assert_eq!(linked[0].identity, creds.identity.public);
    assert_eq!(linked[0].noise, creds.noise.public);

    let (mut c, seen) = login(&sim, &creds, &device).await;
    let success = &seen[0];
    assert_eq!(success.tag(), "success");
    let lid: Jid = success.attr("lid").unwrap();
    assert_eq!(lid.user, acct.lid.user);
    assert_eq!(lid.device, device.device);
    assert!(attr(success, "t").unwrap().parse::<u64>().unwrap() > 1_600_000_000);
    assert!(
        seen.iter()
            .any(|n| n.tag() == "ib" && n.child("offline_preview").is_some())
    );
    assert!(sim.is_online(&device));

    // Pre-key count, upload, count again.
    let count = |n: &Node| attr(n.child("count").unwrap(), "value").unwrap();
    let r = c
        .query(iq("c1", "get", "encrypt", vec![Node::new("count")]))
        .await;
    assert_eq!(count(&r), "0");
    let r = c.query(prekey_upload(&creds, 1..31)).await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"));
    let r = c
        .query(iq("c2", "get", "encrypt", vec![Node::new("count")]))
        .await;
    assert_eq!(count(&r), "30");
    assert_eq!(sim.prekey_count(&device), Some(30));

    // Ping, active, and an iq the simulator does not implement.
    let r = c
        .query(iq("p1", "get", "w:p", vec![Node::new("ping")]))
        .await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"));
    assert!(!sim.is_active(&device));
    let r = c
        .query(iq("a1", "set", "passive", vec![Node::new("active")]))
        .await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"));
    assert!(sim.is_active(&device));
    let r = c
        .query(iq(
            "u0",
            "get",
            "w:no-such-service",
            vec![Node::new("anything")],
        ))
        .await;
    assert_eq!(attr(&r, "type").as_deref(), Some("error"));
    assert_eq!(
        attr(r.child("error").unwrap(), "code").as_deref(),
        Some("501")
    );
    // A profile-picture query without a target is a bad request.
    let r = c
        .query(iq(
            "u00",
            "get",
            "w:profile:picture",
            vec![Node::new("picture")],
        ))
        .await;
    assert_eq!(
        attr(r.child("error").unwrap(), "code").as_deref(),
        Some("400")
    );
    // A usync query without a <list> is a bad request.
    let r = c
        .query(iq("u1", "get", "usync", vec![Node::new("usync")]))
        .await;
    assert_eq!(attr(&r, "type").as_deref(), Some("error"));
    assert_eq!(
        attr(r.child("error").unwrap(), "code").as_deref(),
        Some("400")
    );
}

#[tokio::test]
async fn unknown_device_and_wrong_noise_key_get_401() {
    let sim = sim().await;
    sim.add_account(PHONE).await;
    let creds = Creds::new();
    let (_, seen) = login(
        &sim,
        &creds,
        &Jid::with_device(PHONE, wa_binary::Server::Pn, 3),
    )
    .await;
    assert_eq!(seen[0].tag(), "failure");
    assert_eq!(attr(&seen[0], "reason").as_deref(), Some("401"));

    // A registered device id, but another client's Noise key.
    let device = register(&sim, PHONE, &creds).await;
    let impostor = Creds::new();
    let (_, seen) = login(&sim, &impostor, &device).await;
    assert_eq!(attr(&seen[0], "reason").as_deref(), Some("401"));
    // The real one still works.
    let (_, seen) = login(&sim, &creds, &device).await;
    assert_eq!(seen[0].tag(), "success");
}

#[tokio::test]
async fn bad_pair_reply_registers_nothing() {
    let sim = sim().await;
    sim.add_account(PHONE).await;
    let creds = Creds::new();
    let mut c = Client::connect(
        &sim.ws_url(),
        sim.root_public_key(),
        &creds.noise,
        &creds.registration_payload(),
        None,
    )
    .await
    .unwrap();
    let pd = c.next().await.unwrap();
    c.send(&result_for(&pd)).await;
    let qr = creds.qr(&first_ref(&pd));
    let client = async {
        let ps = c.next().await.unwrap();
        // The companion refuses a pair-success for another identity...
        let other = Creds {
            identity: wa_crypto::KeyPair::generate(&mut rand_core::OsRng),
            ..creds.clone()
        };
        assert_eq!(
            other.answer_pair_success(&ps).err().as_deref(),
            Some("signature-mismatch")
        );
        // ...and the phone refuses a reply whose device signature does not verify.
        let (reply, _) = creds.answer_pair_success(&ps).unwrap();
        c.send(&corrupt_device_signature(&reply)).await;
        c.drain().await
    };
    let (r, end) = tokio::join!(sim.scan_qr(PHONE, &qr), client);
    assert!(matches!(r, Err(Error::PairingRejected(_))), "{r:?}");
    assert!(!end.iter().any(|n| n.tag() == "stream:error"));
    assert!(sim.devices(PHONE).is_empty());
}

fn corrupt_device_signature(reply: &Node) -> Node {
    use prost::Message;
    let mut reply = reply.clone();
    let Some(wa_binary::Content::Nodes(sign)) = Some(&mut reply.content) else {
        unreachable!()
    };
    let wa_binary::Content::Nodes(di) = &mut sign[0].content else {
        panic!("no device-identity")
    };
    let raw = di[0].content_bytes().unwrap().to_vec();
    let mut signed = wa_proto::adv::AdvSignedDeviceIdentity::decode(&raw[..]).unwrap();
    if let Some(sig) = signed.device_signature.as_mut() {
        sig[10] ^= 1;
    }
    di[0].content = wa_binary::Content::Bytes(signed.encode_to_vec().into());
    reply
}

#[tokio::test]
async fn refs_rotate_and_expire() {
    let sim = Sim::start(SimConfig {
        qr: QrTiming {
            first_ref: Duration::from_millis(300),
            later_ref: Duration::from_millis(100),
            refs: 3,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.add_account(PHONE).await;
    let creds = Creds::new();
    let mut c = Client::connect(
        &sim.ws_url(),
        sim.root_public_key(),
        &creds.noise,
        &creds.registration_payload(),
        None,
    )
    .await
    .unwrap();
    let pd = c.next().await.unwrap();
    let refs = refs(&pd);
    assert_eq!(refs.len(), 3);
    assert_eq!(
        refs.iter().collect::<std::collections::HashSet<_>>().len(),
        3
    );
    c.send(&result_for(&pd)).await;
    // The QR of another client (same ref, other keys) is refused.
    let other = Creds::new();
    assert!(matches!(
        sim.scan_qr(PHONE, &other.qr(&refs[0])).await,
        Err(Error::QrKeyMismatch)
    ));
    assert!(matches!(
        sim.scan_qr(PHONE, "garbage").await,
        Err(Error::BadQr(_))
    ));
    assert!(matches!(
        sim.scan_qr("15550000000", &creds.qr(&refs[0])).await,
        Err(Error::UnknownAccount(_))
    ));
    // After all refs expired the server closes the connection.
    let end = c.drain().await;
    assert!(end.is_empty());
    assert!(matches!(
        sim.scan_qr(PHONE, &creds.qr(&refs[2])).await,
        Err(Error::UnknownRef)
    ));
}

#[tokio::test]
async fn login_after_restart_on_same_port() {
    let sim = sim().await;
    sim.add_account(PHONE).await;
    let creds = Creds::new();
    let device = register(&sim, PHONE, &creds).await;
    let (mut c, _) = login(&sim, &creds, &device).await;
    let (addr, state, root) = (sim.local_addr(), sim.state(), sim.root_public_key());
    sim.shutdown().await;
    assert!(c.next().await.is_none(), "shutdown closes connections");
    let sim = Sim::start(SimConfig {
        addr,
        state,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(sim.root_public_key(), root);
    assert_eq!(sim.devices(PHONE), vec![device.clone()]);
    let (_, seen) = login(&sim, &creds, &device).await;
    assert_eq!(seen[0].tag(), "success");
}

#[tokio::test]
async fn routing_prefix_is_accepted() {
    let sim = sim().await;
    sim.add_account(PHONE).await;
    let creds = Creds::new();
    let device = register(&sim, PHONE, &creds).await;
    let mut c = Client::connect(
        &sim.ws_url(),
        sim.root_public_key(),
        &creds.noise,
        &login_payload(PHONE, device.device),
        Some(b"\x08\x02\x10\x05".to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(c.next().await.unwrap().tag(), "success");
}

#[tokio::test]
async fn wrong_root_key_fails_the_handshake() {
    let sim = sim().await;
    let creds = Creds::new();
    let r = Client::connect(
        &sim.ws_url(),
        wa_sim::PublicKey::from_bytes([9; 32]),
        &creds.noise,
        &creds.registration_payload(),
        None,
    )
    .await;
    assert!(r.is_err());
}

#[tokio::test]
async fn garbage_frame_closes_the_connection() {
    let sim = sim().await;
    sim.add_account(PHONE).await;
    let creds = Creds::new();
    let device = register(&sim, PHONE, &creds).await;
    let (mut c, _) = login(&sim, &creds, &device).await;
    c.send_raw(&[
        0, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
    ])
    .await;
    assert!(c.drain().await.is_empty());
    // The server is still up.
    let (_, seen) = login(&sim, &creds, &device).await;
    assert_eq!(seen[0].tag(), "success");
}

#[tokio::test]
async fn second_login_replaces_the_first() {
    let sim = sim().await;
    sim.add_account(PHONE).await;
    let creds = Creds::new();
    let device = register(&sim, PHONE, &creds).await;
    let (mut first, _) = login(&sim, &creds, &device).await;
    let (_second, _) = login(&sim, &creds, &device).await;
    let end = first.drain().await;
    let err = end
        .iter()
        .find(|n| n.tag() == "stream:error")
        .expect("stream error");
    assert_eq!(
        attr(err.child("conflict").unwrap(), "type").as_deref(),
        Some("replaced")
    );
}

async fn linked() -> (Sim, Creds, Jid) {
    let sim = sim().await;
    sim.add_account(PHONE).await;
    let creds = Creds::new();
    let device = register(&sim, PHONE, &creds).await;
    (sim, creds, device)
}

#[tokio::test]
async fn fault_stream_errors() {
    let (sim, creds, device) = linked().await;
    for kind in [
        StreamErrorKind::Restart,
        StreamErrorKind::ServiceUnavailable,
        StreamErrorKind::Replaced,
        StreamErrorKind::DeviceRemoved,
    ] {
        let (mut c, _) = login(&sim, &creds, &device).await;
        assert_eq!(
            sim.fault(Fault::StreamError(Target::Device(device.clone()), kind)),
            1
        );
        let end = c.drain().await;
        let err = end
            .iter()
            .find(|n| n.tag() == "stream:error")
            .expect("stream error");
        let code = attr(err, "code");
        let conflict = err.child("conflict").and_then(|c| attr(c, "type"));
        match kind {
            StreamErrorKind::Restart => assert_eq!(code.as_deref(), Some("515")),
            StreamErrorKind::ServiceUnavailable => assert_eq!(code.as_deref(), Some("503")),
            StreamErrorKind::Replaced => assert_eq!(conflict.as_deref(), Some("replaced")),
            StreamErrorKind::DeviceRemoved => {
                assert_eq!(code.as_deref(), Some("401"));
                assert_eq!(conflict.as_deref(), Some("device_removed"));
            }
            _ => unreachable!(),
        }
    }
    // device_removed unlinked the device: the next login fails.
    assert!(sim.devices(PHONE).is_empty());
    let (_, seen) = login(&sim, &creds, &device).await;
    assert_eq!(attr(&seen[0], "reason").as_deref(), Some("401"));
}

#[tokio::test]
async fn fault_drop_connection() {
    let (sim, creds, device) = linked().await;
    let (mut c, _) = login(&sim, &creds, &device).await;
    assert_eq!(sim.fault(Fault::Drop(Target::Account(PHONE.into()))), 1);
    assert!(c.drain().await.is_empty());
    assert_eq!(sim.fault(Fault::Drop(Target::Device(device.clone()))), 0);
}

#[tokio::test]
async fn fault_ignore_pings() {
    let (sim, creds, device) = linked().await;
    let (mut c, _) = login(&sim, &creds, &device).await;
    sim.fault(Fault::IgnorePings(true));
    assert!(sim.faults().ignore_pings);
    c.send(&iq("p1", "get", "w:p", vec![Node::new("ping")]))
        .await;
    assert!(
        c.next_within(Duration::from_millis(300)).await.is_err(),
        "ping answered"
    );
    sim.fault(Fault::IgnorePings(false));
    let r = c
        .query(iq("p2", "get", "w:p", vec![Node::new("ping")]))
        .await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"));
}

#[tokio::test]
async fn fault_refuse_logins() {
    let (sim, creds, device) = linked().await;
    sim.fault(Fault::RefuseLogins(Some(403)));
    let (_, seen) = login(&sim, &creds, &device).await;
    assert_eq!(seen[0].tag(), "failure");
    assert_eq!(attr(&seen[0], "reason").as_deref(), Some("403"));
    sim.fault(Fault::RefuseLogins(None));
    let (_, seen) = login(&sim, &creds, &device).await;
    assert_eq!(seen[0].tag(), "success");
}

#[tokio::test]
async fn fault_delay_frames() {
    let (sim, creds, device) = linked().await;
    let (mut c, _) = login(&sim, &creds, &device).await;
    sim.fault(Fault::DelayFrames(Some(Duration::from_millis(600))));
    c.send(&iq("p1", "get", "w:p", vec![Node::new("ping")]))
        .await;
    assert!(
        c.next_within(Duration::from_millis(200)).await.is_err(),
        "reply was not delayed"
    );
    let r = c.next().await.unwrap();
    assert_eq!(attr(&r, "id").as_deref(), Some("p1"));
    sim.fault(Fault::DelayFrames(None));
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let sim = Sim::start(SimConfig {
        idle_timeout: Some(Duration::from_millis(300)),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.add_account(PHONE).await;
    let creds = Creds::new();
    let device = register(&sim, PHONE, &creds).await;
    let (mut c, _) = login(&sim, &creds, &device).await;
    assert!(c.next().await.is_none());
}

#[tokio::test]
async fn prekey_bundles_digest_rotate_and_edge_routing() {
    let (sim, creds, device) = linked().await;
    let (mut a, seen) = login(&sim, &creds, &device).await;
    let routing = seen
        .iter()
        .find_map(|n| n.child_by_path(&["edge_routing", "routing_info"]))
        .expect("edge_routing sent after success");
    assert!(!routing.content_bytes().unwrap().is_empty());
    let r = a.query(prekey_upload(&creds, 5..8)).await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"));

    let r = a
        .query(iq("d1", "get", "encrypt", vec![Node::new("digest")]))
        .await;
    let digest = r.child("digest").expect("digest");
    assert_eq!(
        digest.child("identity").unwrap().content_bytes().unwrap(),
        creds.identity.public.as_bytes()
    );
    assert_eq!(digest.child("list").unwrap().children().len(), 3);

    // Another account's device fetches the bundle: one one-time key is handed out.
    const OTHER: &str = "15559990000";
    sim.add_account(OTHER).await;
    let other = Creds::new();
    let other_dev = register(&sim, OTHER, &other).await;
    let (mut b, _) = login(&sim, &other, &other_dev).await;
    let missing = Jid::with_device(OTHER, wa_binary::Server::Pn, 42);
    let fetch = iq(
        "k1",
        "get",
        "encrypt",
        vec![
            Node::builder("key")
                .children([
                    Node::builder("user").attr("jid", device.clone()).build(),
                    Node::builder("user").attr("jid", missing).build(),
                ])
                .build(),
        ],
    );
    let r = b.query(fetch).await;
    let users = r.child("list").unwrap().children();
    assert_eq!(users.len(), 2);
    let bundle = &users[0];
    assert_eq!(
        bundle
            .child_by_path(&["key", "id"])
            .unwrap()
            .content_bytes(),
        Some(&[0, 0, 5][..])
    );
    assert_eq!(
        bundle
            .child_by_path(&["skey", "value"])
            .unwrap()
            .content_bytes(),
        Some(&[7u8; 32][..])
    );
    assert!(users[1].child("error").is_some());
    assert_eq!(sim.prekey_count(&device), Some(2));

    // Rotating the signed pre-key replaces it.
    let rotate = iq(
        "r1",
        "set",
        "encrypt",
        vec![
            Node::builder("rotate")
                .children([Node::builder("skey")
                    .children([
                        Node::builder("id").bytes(vec![0, 0, 2]).build(),
                        Node::builder("value").bytes(vec![9; 32]).build(),
                        Node::builder("signature").bytes(vec![1; 64]).build(),
                    ])
                    .build()])
                .build(),
        ],
    );
    assert_eq!(
        attr(&a.query(rotate).await, "type").as_deref(),
        Some("result")
    );
    let r = a
        .query(iq("d2", "get", "encrypt", vec![Node::new("digest")]))
        .await;
    assert_eq!(
        r.child_by_path(&["digest", "skey", "id"])
            .unwrap()
            .content_bytes(),
        Some(&[0, 0, 2][..])
    );
}

async fn admin_post(sim: &Sim, command: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    use http_body_util::{BodyExt, Full};
    let addr = sim.local_addr();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("/admin/{command}"))
        .header("host", addr.to_string())
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn admin_endpoints_link_a_device() {
    let sim = sim().await;
    let (status, acct) =
        admin_post(&sim, "add-account", serde_json::json!({ "phone": PHONE })).await;
    assert_eq!(status, 200);
    assert_eq!(acct["pn"], format!("{PHONE}@s.whatsapp.net"));
    let (status, _) = admin_post(&sim, "add-account", serde_json::json!({ "phone": "0123" })).await;
    assert_eq!(status, 422);
    let (_, info) = admin_post(&sim, "info", serde_json::json!({})).await;
    assert_eq!(
        info["root_public_key"],
        hex::encode(sim.root_public_key().as_bytes())
    );

    // Scan through the admin endpoint while the client registers.
    let creds = Creds::new();
    let mut c = Client::connect(
        &sim.ws_url(),
        sim.root_public_key(),
        &creds.noise,
        &creds.registration_payload(),
        None,
    )
    .await
    .unwrap();
    let pd = c.next().await.unwrap();
    c.send(&result_for(&pd)).await;
    let qr = creds.qr(&first_ref(&pd));
    let client = async {
        let ps = c.next().await.unwrap();
        let (reply, jid) = creds.answer_pair_success(&ps).unwrap();
        c.send(&reply).await;
        c.drain().await;
        jid
    };
    let ((status, scanned), jid) = tokio::join!(
        admin_post(
            &sim,
            "scan",
            serde_json::json!({ "phone": PHONE, "qr": qr })
        ),
        client
    );
    assert_eq!(status, 200, "{scanned}");
    assert_eq!(scanned["device"], jid.to_string());
    let (_, devices) = admin_post(&sim, "devices", serde_json::json!({ "phone": PHONE })).await;
    assert_eq!(devices["devices"], serde_json::json!([jid.to_string()]));
    let (status, _) = admin_post(&sim, "nope", serde_json::json!({})).await;
    assert_eq!(status, 404);

    // Faults through the admin endpoint reach the logged-in device.
    let (mut c, _) = login(&sim, &creds, &jid).await;
    let body = serde_json::json!({ "kind": "unavailable", "phone": PHONE, "device": jid.device });
    let (status, hit) = admin_post(&sim, "fault", body).await;
    assert_eq!((status, hit["connections"].as_u64()), (200, Some(1)));
    let end = c.drain().await;
    assert!(
        end.iter()
            .any(|n| n.tag() == "stream:error" && attr(n, "code").as_deref() == Some("503"))
    );
    let (status, _) = admin_post(
        &sim,
        "fault",
        serde_json::json!({ "kind": "refuse_logins", "reason": 402 }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sim.faults().refuse_logins, Some(402));
    let (status, _) = admin_post(&sim, "fault", serde_json::json!({ "kind": "sender_lid" })).await;
    assert_eq!(status, 200);
    assert_eq!(
        sim.faults().sender_addressing,
        wa_sim::SenderAddressing::Lid
    );
}

#[tokio::test]
async fn malformed_handshakes_do_not_hurt_the_server() {
    use fastwebsockets::{Frame, Payload};
    let sim = sim().await;
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &b"WA\x05\x03\x00\x00\x01\x00"[..],
        &b"WA\x06\x03\x00\x00\x05\x01\x02\x03\x04\x05"[..],
        &b"ED\x00\x01\xff\xff\xffWA\x06\x03"[..],
        &b"WA\x06\x03\xff\xff\xff"[..],
    ] {
        let mut ws = common::raw_ws(&sim.ws_url()).await;
        ws.write_frame(Frame::binary(Payload::Owned(junk.to_vec())))
            .await
            .unwrap();
        // The server closes (or keeps waiting for more of a frame until the timeout);
        // either way it must keep serving others.
        let _ = tokio::time::timeout(Duration::from_millis(200), ws.read_frame()).await;
    }
    // A ClientPayload that is neither a login nor a registration is closed.
    let creds = Creds::new();
    let mut c = Client::connect(
        &sim.ws_url(),
        sim.root_public_key(),
        &creds.noise,
        &Default::default(),
        None,
    )
    .await
    .unwrap();
    assert!(c.drain().await.is_empty());
    // And the server still works.
    sim.add_account(PHONE).await;
    let device = register(&sim, PHONE, &creds).await;
    let (_, seen) = login(&sim, &creds, &device).await;
    assert_eq!(seen[0].tag(), "success");
}

#[tokio::test]
async fn silent_companion_times_out_and_registers_nothing() {
    let sim = Sim::start(SimConfig {
        pair_timeout: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.add_account(PHONE).await;
    let creds = Creds::new();
    let mut c = Client::connect(
        &sim.ws_url(),
        sim.root_public_key(),
        &creds.noise,
        &creds.registration_payload(),
        None,
    )
    .await
    .unwrap();
    let pd = c.next().await.unwrap();
    c.send(&result_for(&pd)).await;
    let qr = creds.qr(&first_ref(&pd));
    let client = async {
        let ps = c.next().await.unwrap();
        assert!(ps.child("pair-success").is_some());
        // Never answer: the server closes the connection.
        c.drain().await
    };
    let (r, end) = tokio::join!(sim.scan_qr(PHONE, &qr), client);
    assert!(
        matches!(r, Err(Error::Timeout | Error::ConnectionGone)),
        "{r:?}"
    );
    assert!(end.is_empty());
    assert!(sim.devices(PHONE).is_empty());
    // The reserved device id was released: the next link gets device 1 again.
    let device = register(&sim, PHONE, &creds).await;
    assert_eq!(device.device, 1);
}

#[tokio::test]
async fn state_saved_as_json_restarts_elsewhere() {
    let (sim, creds, device) = linked().await;
    let json = sim.state().to_json();
    sim.shutdown().await;
    let state = wa_sim::SimState::from_json(&json).unwrap();
    let sim = Sim::start(SimConfig {
        state,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (_, seen) = login(&sim, &creds, &device).await;
    assert_eq!(seen[0].tag(), "success");
}

#[tokio::test]
async fn logout_unlinks_the_device() {
    let (sim, creds, device) = linked().await;
    let (mut c, seen) = login(&sim, &creds, &device).await;
    // Named by its LID, as some clients do (the PN form works the same).
    let lid: Jid = seen[0].attr("lid").unwrap();
    let logout = iq(
        "lo-1",
        "set",
        "md",
        vec![
            Node::builder("remove-companion-device")
                .attr("jid", lid)
                .attr("reason", "user_initiated")
                .build(),
        ],
    );
    let r = c.query(logout).await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"));
    let end = c.drain().await;
    let err = end
        .iter()
        .find(|n| n.tag() == "stream:error")
        .expect("stream error");
    assert_eq!(
        attr(err.child("conflict").unwrap(), "type").as_deref(),
        Some("device_removed")
    );
    assert!(sim.devices(PHONE).is_empty());
    let (_, seen) = login(&sim, &creds, &device).await;
    assert_eq!(attr(&seen[0], "reason").as_deref(), Some("401"));
}
