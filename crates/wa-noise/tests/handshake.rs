//! Our initiator against our responder, in memory: success, tampering, and each
//! certificate-chain failure with its own error.

use rand::SeedableRng;
use rand::rngs::StdRng;
use wa_crypto::KeyPair;
use wa_noise::{
    CertDetails, CertRole, ChainParams, ClientFinished, Error, FrameDecoder, HandshakeStep,
    Initiator, InitiatorConfig, Responder, ResponderConfig, Transport, issue_cert_chain,
    sign_cert_chain,
};

const NOW: u64 = 1_700_000_000;

struct Keys {
    root: KeyPair,
    intermediate: KeyPair,
    server_static: KeyPair,
    server_ephemeral: KeyPair,
    client_static: KeyPair,
    client_ephemeral: KeyPair,
    rng: StdRng,
}

fn keys(seed: u64) -> Keys {
    let mut rng = StdRng::seed_from_u64(seed);
    Keys {
        root: KeyPair::generate(&mut rng),
        intermediate: KeyPair::generate(&mut rng),
        server_static: KeyPair::generate(&mut rng),
        server_ephemeral: KeyPair::generate(&mut rng),
        client_static: KeyPair::generate(&mut rng),
        client_ephemeral: KeyPair::generate(&mut rng),
        rng,
    }
}

fn good_chain(k: &mut Keys) -> Vec<u8> {
    issue_cert_chain(
        &k.root,
        &k.intermediate,
        &k.server_static.public,
        &ChainParams::default(),
        &mut k.rng,
    )
}

/// The three handshake messages as frame payloads (intro and length headers stripped).
struct Transcript {
    client_hello: Vec<u8>,
    server_hello: Vec<u8>,
    client_finish: Vec<u8>,
}

fn strip(decoder: &mut FrameDecoder, bytes: &[u8]) -> Vec<u8> {
    decoder.push(bytes).unwrap();
    decoder.next_frame().unwrap().unwrap().to_vec()
}

/// Runs the handshake with optional tampering of each message payload, returning the
/// first error (from whichever side detected it) or both transports.
fn run(
    k: &Keys,
    chain: Vec<u8>,
    trusted_root: wa_crypto::PublicKey,
    payload: &[u8],
    tamper: &dyn Fn(HandshakeStep, &mut Vec<u8>),
) -> Result<(Transport, ClientFinished, Transcript), Error> {
    let server = Responder::new(
        ResponderConfig {
            static_key: k.server_static.clone(),
            cert_chain: chain,
        },
        k.server_ephemeral.clone(),
    );
    let client = Initiator::new(
        InitiatorConfig {
            trusted_root,
            routing_info: None,
        },
        k.client_static.clone(),
        k.client_ephemeral.clone(),
    );
    let mut at_server = FrameDecoder::server();
    let mut at_client = FrameDecoder::client();

    let (bytes, client) = client.client_hello()?;
    let mut client_hello = strip(&mut at_server, &bytes);
    tamper(HandshakeStep::ClientHello, &mut client_hello);
    let (bytes, server) = server.read_client_hello(&client_hello)?;

    let mut server_hello = strip(&mut at_client, &bytes);
    tamper(HandshakeStep::ServerHello, &mut server_hello);
    let client = client.read_server_hello(&server_hello, NOW)?;

    let (bytes, client_transport) = client.client_finish(payload)?;
    let mut client_finish = strip(&mut at_server, &bytes);
    tamper(HandshakeStep::ClientFinish, &mut client_finish);
    let done = server.read_client_finish(&client_finish)?;
    Ok((
        client_transport,
        done,
        Transcript {
            client_hello,
            server_hello,
            client_finish,
        },
    ))
}

fn no_tamper(_: HandshakeStep, _: &mut Vec<u8>) {}

fn handshake_error(k: &mut Keys, chain: Vec<u8>) -> Error {
    let root = k.root.public;
    run(k, chain, root, b"payload", &no_tamper)
        .err()
        .expect("handshake must fail")
}

#[test]
fn completes_and_transports_both_ways() {
    let mut k = keys(1);
    let chain = good_chain(&mut k);
    let payload = b"an encoded ClientPayload".to_vec();
    let (mut client, done, _) = run(&k, chain, k.root.public, &payload, &no_tamper).unwrap();
    assert_eq!(done.payload, payload);
    assert_eq!(done.client_static, k.client_static.public);
    let mut server = done.transport;

    let mut at_server = FrameDecoder::client();
    let mut at_client = FrameDecoder::client();
    for i in 0..20u8 {
        let msg = vec![i; usize::from(i) * 100];
        at_server.push(&client.encrypt(&msg).unwrap()).unwrap();
        let mut f = at_server.next_frame().unwrap().unwrap();
        server.decrypt_in_place(&mut f).unwrap();
        assert_eq!(f[..], msg[..]);

        at_client.push(&server.encrypt(&msg).unwrap()).unwrap();
        let mut f = at_client.next_frame().unwrap().unwrap();
        client.decrypt_in_place(&mut f).unwrap();
        assert_eq!(f[..], msg[..]);
    }
}

#[test]
fn tampering_any_byte_of_any_message_fails() {
    let mut k = keys(2);
    let chain = good_chain(&mut k);
    let (_, _, t) = run(&k, chain.clone(), k.root.public, b"payload", &no_tamper).unwrap();
    let messages = [
        (HandshakeStep::ClientHello, t.client_hello.len()),
        (HandshakeStep::ServerHello, t.server_hello.len()),
        (HandshakeStep::ClientFinish, t.client_finish.len()),
    ];
    for (step, len) in messages {
        for pos in 0..len {
            for mask in [0x01u8, 0x80] {
                let tamper = |s: HandshakeStep, m: &mut Vec<u8>| {
                    if s == step {
                        m[pos] ^= mask;
                    }
                };
                let err = run(&k, chain.clone(), k.root.public, b"payload", &tamper)
                    .err()
                    .unwrap_or_else(|| panic!("{step:?} byte {pos} ^ {mask:#x} went unnoticed"));
                // Whoever reads the tampered message (or, for the ClientHello, the client
                // reading the reply built on it) must refuse it as peer misbehaviour.
                let detector = match step {
                    HandshakeStep::ClientHello => {
                        [HandshakeStep::ClientHello, HandshakeStep::ServerHello]
                    }
                    s => [s, s],
                };
                assert!(
                    matches!(
                        &err,
                        Error::MalformedHandshake(s) | Error::MissingField { step: s, .. }
                            | Error::HandshakeDecrypt { step: s, .. }
                            | Error::LowOrderKey(s) if detector.contains(s)
                    ),
                    "{step:?} byte {pos} ^ {mask:#x}: unexpected {err:?}"
                );
            }
        }
    }
}

#[test]
fn wrong_root_key() {
    let mut k = keys(3);
    let chain = good_chain(&mut k);
    let other_root = KeyPair::generate(&mut k.rng).public;
    let err = run(&k, chain, other_root, b"p", &no_tamper).err().unwrap();
    assert_eq!(err, Error::IntermediateSignatureInvalid);
}

fn details(k: &Keys) -> (CertDetails, CertDetails) {
    let inter = CertDetails {
        serial: 1,
        issuer_serial: 0,
        key: k.intermediate.public,
        not_before: 0,
        not_after: NOW + 3600,
    };
    let leaf = CertDetails {
        serial: 2,
        issuer_serial: 1,
        key: k.server_static.public,
        not_before: 0,
        not_after: NOW + 3600,
    };
    (inter, leaf)
}

fn signed(k: &mut Keys, inter: &CertDetails, leaf: &CertDetails) -> Vec<u8> {
    sign_cert_chain(&k.root, &k.intermediate, inter, leaf, &mut k.rng)
}

#[test]
fn hand_built_valid_chain_is_accepted() {
    // The baseline for the failure tests below: the same details, unmodified, pass.
    let mut k = keys(4);
    let (inter, leaf) = details(&k);
    let chain = signed(&mut k, &inter, &leaf);
    let root = k.root.public;
    assert!(run(&k, chain, root, b"p", &no_tamper).is_ok());
}

#[test]
fn leaf_signed_by_another_key() {
    let mut k = keys(5);
    let (inter, leaf) = details(&k);
    let impostor = KeyPair::generate(&mut k.rng);
    let chain = sign_cert_chain(&k.root, &impostor, &inter, &leaf, &mut k.rng);
    assert_eq!(handshake_error(&mut k, chain), Error::LeafSignatureInvalid);
}

#[test]
fn wrong_leaf_issuer_serial() {
    let mut k = keys(6);
    let (inter, mut leaf) = details(&k);
    leaf.issuer_serial = 7;
    let chain = signed(&mut k, &inter, &leaf);
    assert_eq!(
        handshake_error(&mut k, chain),
        Error::LeafIssuerSerial {
            expected: 1,
            found: 7
        }
    );
}

#[test]
fn intermediate_issuer_serial_not_zero() {
    let mut k = keys(7);
    let (mut inter, leaf) = details(&k);
    inter.issuer_serial = 3;
    let chain = signed(&mut k, &inter, &leaf);
    assert_eq!(
        handshake_error(&mut k, chain),
        Error::IntermediateIssuerSerial(3)
    );
}

#[test]
fn expired_leaf_certificate() {
    let mut k = keys(8);
    let (inter, mut leaf) = details(&k);
    leaf.not_after = NOW - 1;
    let chain = signed(&mut k, &inter, &leaf);
    assert_eq!(
        handshake_error(&mut k, chain),
        Error::CertExpired {
            role: CertRole::Leaf,
            not_after: NOW - 1,
            now: NOW
        }
    );
}

#[test]
fn expired_intermediate_certificate() {
    let mut k = keys(9);
    let (mut inter, leaf) = details(&k);
    inter.not_after = NOW - 1;
    let chain = signed(&mut k, &inter, &leaf);
    assert!(matches!(
        handshake_error(&mut k, chain),
        Error::CertExpired {
            role: CertRole::Intermediate,
            ..
        }
    ));
}

#[test]
fn not_yet_valid_certificate() {
    let mut k = keys(10);
    let (inter, mut leaf) = details(&k);
    leaf.not_before = NOW + 1;
    let chain = signed(&mut k, &inter, &leaf);
    assert_eq!(
        handshake_error(&mut k, chain),
        Error::CertNotYetValid {
            role: CertRole::Leaf,
            not_before: NOW + 1,
            now: NOW
        }
    );
}

#[test]
fn leaf_key_differs_from_server_static() {
    let mut k = keys(11);
    let (inter, mut leaf) = details(&k);
    leaf.key = KeyPair::generate(&mut k.rng).public;
    let chain = signed(&mut k, &inter, &leaf);
    assert_eq!(handshake_error(&mut k, chain), Error::LeafKeyMismatch);
}

#[test]
fn malformed_chain() {
    let mut k = keys(12);
    assert!(matches!(
        handshake_error(&mut k, b"\xff\xff not a chain".to_vec()),
        Error::CertChainMalformed(_)
    ));
    assert!(matches!(
        handshake_error(&mut k, Vec::new()),
        Error::CertChainMalformed(_)
    ));
}

#[test]
fn empty_and_large_payloads() {
    let mut k = keys(13);
    let chain = good_chain(&mut k);
    let root = k.root.public;
    for payload in [Vec::new(), vec![0xA5; 200_000]] {
        let (_, done, _) = run(&k, chain.clone(), root, &payload, &no_tamper).unwrap();
        assert_eq!(done.payload, payload);
    }
}
