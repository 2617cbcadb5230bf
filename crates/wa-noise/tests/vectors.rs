//! Known-answer tests: the Baileys 7.0.0-rc14 handshake transcript replayed byte for byte,
//! with our initiator in Baileys' place and our responder in the independent responder's.

use bytes::BytesMut;
use serde_json::Value;
use wa_crypto::KeyPair;
use wa_noise::{
    Error, FrameDecoder, Initiator, InitiatorConfig, Responder, ResponderConfig,
    WA_ROOT_PUBLIC_KEY, verify_cert_chain,
};

/// The vector's fixed clock is 2023-11; its certificates run from 0 to 2100.
const NOW: u64 = 1_700_000_000;

fn vector() -> Value {
    serde_json::from_str(include_str!("vectors/noise_handshake.json")).unwrap()
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).unwrap()
}

fn key(v: &Value, name: &str) -> KeyPair {
    let k = KeyPair::from_private_slice(&hx(&v["keys"][name]["priv"])).unwrap();
    assert_eq!(
        k.public.as_bytes().to_vec(),
        hx(&v["keys"][name]["pub"]),
        "{name}"
    );
    k
}

fn only_frame(decoder: &mut FrameDecoder, bytes: &[u8]) -> BytesMut {
    decoder.push(bytes).unwrap();
    let frame = decoder.next_frame().unwrap().expect("one complete frame");
    assert_eq!(decoder.next_frame().unwrap(), None);
    frame
}

fn config(v: &Value) -> InitiatorConfig {
    InitiatorConfig {
        trusted_root: key(v, "root").public,
        routing_info: None,
    }
}

#[test]
fn initiator_reproduces_client_messages_and_transport() {
    let v = vector();
    let client = Initiator::new(
        config(&v),
        key(&v, "clientNoise"),
        key(&v, "clientEphemeral"),
    );

    let (hello, client) = client.client_hello().unwrap();
    assert_eq!(
        hex::encode(&hello),
        v["wire"]["clientHello"].as_str().unwrap()
    );

    let mut from_server = FrameDecoder::client();
    let server_hello = only_frame(&mut from_server, &hx(&v["wire"]["serverHello"]));
    let client = client.read_server_hello(&server_hello, NOW).unwrap();
    assert_eq!(client.server_static(), &key(&v, "serverStatic").public);
    assert_eq!(client.server_certificate().serial, 2);

    let (finish, mut transport) = client.client_finish(&hx(&v["clientPayloadHex"])).unwrap();
    assert_eq!(
        hex::encode(&finish),
        v["wire"]["clientFinish"].as_str().unwrap()
    );

    for f in v["transport"]["clientToServer"].as_array().unwrap() {
        let frame = transport.encrypt(&hx(&f["plaintextHex"])).unwrap();
        assert_eq!(hex::encode(&frame), f["wireHex"].as_str().unwrap());
    }
    // Both server frames in one websocket message, as the server may send them.
    let mut wire = Vec::new();
    for f in v["transport"]["serverToClient"].as_array().unwrap() {
        wire.extend(hx(&f["wireHex"]));
    }
    from_server.push(&wire).unwrap();
    for f in v["transport"]["serverToClient"].as_array().unwrap() {
        let mut frame = from_server.next_frame().unwrap().unwrap();
        transport.decrypt_in_place(&mut frame).unwrap();
        assert_eq!(hex::encode(&frame), f["plaintextHex"].as_str().unwrap());
    }
    assert_eq!(transport.sent_frames(), 2);
    assert_eq!(transport.received_frames(), 2);
}

#[test]
fn responder_reproduces_server_hello_and_transport() {
    let v = vector();
    let server = Responder::new(
        ResponderConfig {
            static_key: key(&v, "serverStatic"),
            cert_chain: hx(&v["certChainHex"]),
        },
        key(&v, "serverEphemeral"),
    );
    let mut from_client = FrameDecoder::server();
    let hello = only_frame(&mut from_client, &hx(&v["wire"]["clientHello"]));
    assert_eq!(from_client.intro().unwrap().routing_info, None);

    let (server_hello, server) = server.read_client_hello(&hello).unwrap();
    assert_eq!(
        hex::encode(&server_hello),
        v["wire"]["serverHello"].as_str().unwrap()
    );

    let finish = only_frame(&mut from_client, &hx(&v["wire"]["clientFinish"]));
    let done = server.read_client_finish(&finish).unwrap();
    assert_eq!(
        done.client_static.as_bytes().to_vec(),
        hx(&v["serverSawClientStatic"])
    );
    assert_eq!(done.payload, hx(&v["clientPayloadHex"]));

    let mut transport = done.transport;
    for f in v["transport"]["clientToServer"].as_array().unwrap() {
        let frame = only_frame(&mut from_client, &hx(&f["wireHex"]));
        assert_eq!(transport.decrypt(&frame).unwrap(), hx(&f["plaintextHex"]));
    }
    for f in v["transport"]["serverToClient"].as_array().unwrap() {
        let frame = transport.encrypt(&hx(&f["plaintextHex"])).unwrap();
        assert_eq!(hex::encode(&frame), f["wireHex"].as_str().unwrap());
    }
}

#[test]
fn routing_info_prefix_matches_and_is_stripped() {
    let v = vector();
    let ri = hx(&v["routingInfo"]["routingInfoHex"]);
    let config = InitiatorConfig {
        routing_info: Some(ri.clone()),
        ..config(&v)
    };
    let (hello, _) = Initiator::new(config, key(&v, "clientNoise"), key(&v, "clientEphemeral"))
        .client_hello()
        .unwrap();
    assert_eq!(
        hex::encode(&hello),
        v["routingInfo"]["firstFrameHex"].as_str().unwrap()
    );

    let mut from_client = FrameDecoder::server();
    let frame = only_frame(&mut from_client, &hello);
    assert_eq!(from_client.intro().unwrap().routing_info, Some(ri));
    // The routing prefix does not enter the prologue: the responder answers exactly as
    // without it.
    let server = Responder::new(
        ResponderConfig {
            static_key: key(&v, "serverStatic"),
            cert_chain: hx(&v["certChainHex"]),
        },
        key(&v, "serverEphemeral"),
    );
    let (server_hello, _) = server.read_client_hello(&frame).unwrap();
    assert_eq!(
        hex::encode(&server_hello),
        v["wire"]["serverHello"].as_str().unwrap()
    );
}

#[test]
fn vector_chain_verifies_under_its_root_only() {
    let v = vector();
    let chain = hx(&v["certChainHex"]);
    let server_static = key(&v, "serverStatic").public;
    let leaf = verify_cert_chain(&chain, &key(&v, "root").public, &server_static, NOW).unwrap();
    assert_eq!(leaf.key, server_static);
    assert_eq!(leaf.issuer_serial, 1);
    // With the default (production) root the same chain is refused.
    assert_eq!(InitiatorConfig::default().trusted_root, WA_ROOT_PUBLIC_KEY);
    assert_eq!(
        verify_cert_chain(&chain, &WA_ROOT_PUBLIC_KEY, &server_static, NOW),
        Err(Error::IntermediateSignatureInvalid)
    );
}

#[test]
fn production_root_constant_is_the_documented_key() {
    assert_eq!(
        hex::encode(WA_ROOT_PUBLIC_KEY.as_bytes()),
        "142375574d0a587166aae71ebe516437c4a28b73e3695c6ce1f7f9545da8ee6b"
    );
}
