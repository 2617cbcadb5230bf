//! The server side of the handshake fed arbitrary bytes: the first frame as ClientHello,
//! then (if that was accepted) the rest as ClientFinish. It must fail cleanly, never panic.
//! The same bytes are also given to the certificate-chain verifier.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wa_crypto::KeyPair;
use wa_noise::{FrameDecoder, Responder, ResponderConfig, verify_cert_chain};

fuzz_target!(|data: &[u8]| {
    let server_static = KeyPair::from_private_slice(&[7u8; 32]).unwrap();
    let ephemeral = KeyPair::from_private_slice(&[9u8; 32]).unwrap();
    let config = ResponderConfig {
        static_key: server_static.clone(),
        cert_chain: vec![0x0a, 0x00, 0x12, 0x00],
    };
    // As on a real connection: intro and frames through the server-side decoder.
    let mut decoder = FrameDecoder::server();
    if decoder.push(data).is_ok() {
        if let Ok(Some(hello)) = decoder.next_frame() {
            if let Ok((_, awaiting)) = Responder::new(config.clone(), ephemeral.clone())
                .read_client_hello(&hello)
            {
                if let Ok(Some(finish)) = decoder.next_frame() {
                    let _ = awaiting.read_client_finish(&finish);
                }
            }
        }
    }
    // And raw, without framing.
    let half = data.len() / 2;
    if let Ok((_, awaiting)) = Responder::new(config, ephemeral).read_client_hello(&data[..half]) {
        let _ = awaiting.read_client_finish(&data[half..]);
    }
    let _ = verify_cert_chain(data, &server_static.public, &server_static.public, 0);
});
