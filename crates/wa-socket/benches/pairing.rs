//! Pairing crypto and payload building costs.

use std::hint::black_box;

use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use prost::Message;
use wa_crypto::{KeyPair, PrivateKey};
use wa_socket::{
    Browser, HistorySyncOptions, PayloadOptions, login_payload, pairing_code_key,
    parse_pair_success, registration_payload, verify_device_identity,
};

fn bench(c: &mut Criterion) {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../tests/vectors/pairing.json")).unwrap();
    let h = |x: &serde_json::Value| hex::decode(x.as_str().unwrap()).unwrap();
    let identity = KeyPair::from_private(PrivateKey::from_bytes(
        h(&v["creds"]["identityPriv"]).try_into().unwrap(),
    ));
    let adv: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(v["creds"]["advSecretKey"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let stanza = wa_binary::decode(h(&v["pairSuccess"]["stanzaHex"]).into()).unwrap();
    let ps = parse_pair_success(&stanza).unwrap();
    let mut rng = rand::rngs::OsRng;
    c.bench_function("pair_success_verify_and_sign", |b| {
        b.iter(|| {
            verify_device_identity(black_box(&ps.device_identity), &adv, &identity, &mut rng)
                .unwrap()
        });
    });
    c.bench_function("pairing_code_pbkdf2", |b| {
        b.iter(|| pairing_code_key(black_box("15JMBSWA"), &[0x11; 32]));
    });
    let opts = PayloadOptions {
        version: [2, 3000, 1_015_901_307],
        browser: Browser::default(),
        country_code: "US".into(),
        history: HistorySyncOptions::default(),
        push_name: None,
    };
    let creds = wa_store::AuthCreds::generate(&mut rng);
    c.bench_function("registration_payload_encode", |b| {
        b.iter(|| registration_payload(black_box(&creds), &opts).encode_to_vec());
    });
    let jid: wa_binary::Jid = "15551234567:5@s.whatsapp.net".parse().unwrap();
    c.bench_function("login_payload_encode", |b| {
        b.iter(|| {
            login_payload(black_box(&jid), &opts)
                .unwrap()
                .encode_to_vec()
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
