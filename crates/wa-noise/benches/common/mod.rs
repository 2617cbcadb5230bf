//! Shared by the transport benchmark and the `transport_ratio` example.

use rand::SeedableRng;
use rand::rngs::StdRng;
use wa_crypto::KeyPair;
use wa_noise::{
    ChainParams, FrameDecoder, Initiator, InitiatorConfig, Responder, ResponderConfig, Transport,
    issue_cert_chain,
};

/// Runs a full in-memory handshake and returns (client, server) transports (key
/// generation and chain issuing included).
pub(crate) fn transports() -> (Transport, Transport) {
    let mut rng = StdRng::seed_from_u64(7);
    let root = KeyPair::generate(&mut rng);
    let inter = KeyPair::generate(&mut rng);
    let server_static = KeyPair::generate(&mut rng);
    let chain = issue_cert_chain(
        &root,
        &inter,
        &server_static.public,
        &ChainParams::default(),
        &mut rng,
    );
    let server = Responder::new(
        ResponderConfig {
            static_key: server_static,
            cert_chain: chain,
        },
        KeyPair::generate(&mut rng),
    );
    let client = Initiator::new(
        InitiatorConfig {
            trusted_root: root.public,
            routing_info: None,
        },
        KeyPair::generate(&mut rng),
        KeyPair::generate(&mut rng),
    );
    let mut sd = FrameDecoder::server();
    let mut cd = FrameDecoder::client();
    let (b, client) = client.client_hello().unwrap();
    sd.push(&b).unwrap();
    let (b, server) = server
        .read_client_hello(&sd.next_frame().unwrap().unwrap())
        .unwrap();
    cd.push(&b).unwrap();
    let client = client
        .read_server_hello(&cd.next_frame().unwrap().unwrap(), 1_700_000_000)
        .unwrap();
    let (b, ct) = client.client_finish(b"payload").unwrap();
    sd.push(&b).unwrap();
    let done = server
        .read_client_finish(&sd.next_frame().unwrap().unwrap())
        .unwrap();
    (ct, done.transport)
}
