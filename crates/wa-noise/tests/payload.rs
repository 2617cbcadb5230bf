//! ClientPayload builders: the Baileys login payload reproduced byte for byte, the
//! registration payload field by field, and both carried through a handshake.

use prost::Message;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use wa_crypto::{KeyPair, PublicKey};
use wa_noise::{
    ChainParams, FrameDecoder, Initiator, InitiatorConfig, PayloadConfig, RegistrationData,
    Responder, ResponderConfig, build_hash, issue_cert_chain, login_payload, registration_payload,
};
use wa_proto::companion_reg::DeviceProps;
use wa_proto::handshake::ClientPayload;
use wa_proto::handshake::client_payload::{ConnectReason, ConnectType, user_agent, web_info};

/// The vector writes 64-bit integers as decimal strings (protobuf JSON), small ones as
/// numbers.
fn int(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .expect("integer")
}

fn vector() -> Value {
    serde_json::from_str(include_str!("vectors/noise_handshake.json")).unwrap()
}

/// The settings Baileys 7.0.0-rc14 used for the vector: its version, and
/// `lidDbMigrated: false`; everything else is the desktop-browser default.
fn baileys_config(v: &Value) -> PayloadConfig {
    let ver = &v["clientPayloadDecoded"]["userAgent"]["appVersion"];
    let mut config = PayloadConfig::default();
    config.version = [
        int(&ver["primary"]) as u32,
        int(&ver["secondary"]) as u32,
        int(&ver["tertiary"]) as u32,
    ];
    config.lid_db_migrated = Some(false);
    config
}

#[test]
fn login_payload_matches_baileys_bytes() {
    let v = vector();
    let d = &v["clientPayloadDecoded"];
    let user = int(&d["username"]);
    let device = int(&d["device"]) as u32;
    let payload = login_payload(user, device, &baileys_config(&v));
    assert_eq!(
        hex::encode(payload.encode_to_vec()),
        v["clientPayloadHex"].as_str().unwrap()
    );
}

#[test]
fn vector_payload_decodes_to_the_recorded_fields() {
    let v = vector();
    let d = &v["clientPayloadDecoded"];
    let raw = hex::decode(v["clientPayloadHex"].as_str().unwrap()).unwrap();
    let p = ClientPayload::decode(raw.as_slice()).unwrap();
    assert_eq!(p.username, Some(int(&d["username"])));
    assert_eq!(p.device.map(u64::from), Some(int(&d["device"])));
    assert_eq!(p.passive, d["passive"].as_bool());
    assert_eq!(p.pull, d["pull"].as_bool());
    let ua = p.user_agent.as_ref().unwrap();
    assert_eq!(ua.platform(), user_agent::Platform::Web);
    assert_eq!(ua.device.as_deref(), d["userAgent"]["device"].as_str());
    assert_eq!(
        p.web_info.as_ref().unwrap().web_sub_platform(),
        web_info::WebSubPlatform::WebBrowser
    );
    assert_eq!(p.connect_type(), ConnectType::WifiUnknown);
    assert_eq!(p.connect_reason(), ConnectReason::UserActivated);
}

#[test]
fn build_hash_is_md5_of_the_dotted_version() {
    // Known answers computed independently (MD5 of the ASCII strings).
    assert_eq!(
        hex::encode(build_hash([2, 3000, 1_015_901_307])),
        "5d4e4496f81e833f9ff45394e5005e6b"
    );
    assert_eq!(
        hex::encode(build_hash([2, 3000, 1_045_649_367])),
        "9fa53af9421567b114e33c9bb1ef7db2"
    );
}

fn registration(rng: &mut StdRng) -> (RegistrationData, KeyPair) {
    let identity = KeyPair::generate(rng);
    let spk = KeyPair::generate(rng);
    let sig = identity.sign(&spk.public.serialize(), rng);
    (
        RegistrationData {
            registration_id: 0x0102_0304,
            identity_key: identity.public,
            signed_pre_key_id: 0x00AB_CDEF,
            signed_pre_key: spk.public,
            signed_pre_key_signature: sig,
        },
        identity,
    )
}

#[test]
fn registration_payload_fields() {
    let mut rng = StdRng::seed_from_u64(1);
    let (reg, identity) = registration(&mut rng);
    let mut config = PayloadConfig::default();
    config.version = [2, 3000, 1_015_901_307];
    config.push_name = Some("Desk".into());
    let p = registration_payload(&reg, &config);
    // Through the wire format and back.
    let p = ClientPayload::decode(p.encode_to_vec().as_slice()).unwrap();

    assert_eq!(p.passive, Some(false));
    assert_eq!(p.pull, Some(false));
    assert_eq!(p.username, None);
    assert_eq!(p.device, None);
    assert_eq!(p.push_name.as_deref(), Some("Desk"));
    let ua = p.user_agent.as_ref().unwrap();
    let av = ua.app_version.as_ref().unwrap();
    assert_eq!(
        (av.primary, av.secondary, av.tertiary),
        (Some(2), Some(3000), Some(1_015_901_307))
    );
    assert_eq!(ua.release_channel(), user_agent::ReleaseChannel::Release);

    let dp = p.device_pairing_data.as_ref().unwrap();
    assert_eq!(dp.e_regid.as_deref(), Some(&[1u8, 2, 3, 4][..]));
    assert_eq!(dp.e_keytype.as_deref(), Some(&[5u8][..]));
    assert_eq!(dp.e_ident.as_deref(), Some(&identity.public.as_bytes()[..]));
    assert_eq!(dp.e_skey_id.as_deref(), Some(&[0xABu8, 0xCD, 0xEF][..]));
    assert_eq!(
        dp.e_skey_val.as_deref(),
        Some(&reg.signed_pre_key.as_bytes()[..])
    );
    let sig = dp.e_skey_sig.as_deref().unwrap();
    assert!(
        identity
            .public
            .verify_slice(&reg.signed_pre_key.serialize(), sig)
    );
    assert_eq!(
        hex::encode(dp.build_hash.as_deref().unwrap()),
        "5d4e4496f81e833f9ff45394e5005e6b"
    );
    let props = DeviceProps::decode(dp.device_props.as_deref().unwrap()).unwrap();
    assert_eq!(props, config.device_props);
}

/// Runs a handshake carrying `payload` and returns what the responder decoded.
fn carry(payload: &ClientPayload, rng: &mut StdRng) -> (ClientPayload, PublicKey, PublicKey) {
    let root = KeyPair::generate(rng);
    let inter = KeyPair::generate(rng);
    let server_static = KeyPair::generate(rng);
    let chain = issue_cert_chain(
        &root,
        &inter,
        &server_static.public,
        &ChainParams::default(),
        rng,
    );
    let server = Responder::new(
        ResponderConfig {
            static_key: server_static,
            cert_chain: chain,
        },
        KeyPair::generate(rng),
    );
    let client_static = KeyPair::generate(rng);
    let client = Initiator::new(
        InitiatorConfig {
            trusted_root: root.public,
            routing_info: None,
        },
        client_static.clone(),
        KeyPair::generate(rng),
    );
    let mut at_server = FrameDecoder::server();
    let mut at_client = FrameDecoder::client();
    let (b, client) = client.client_hello().unwrap();
    at_server.push(&b).unwrap();
    let (b, server) = server
        .read_client_hello(&at_server.next_frame().unwrap().unwrap())
        .unwrap();
    at_client.push(&b).unwrap();
    let client = client
        .read_server_hello(&at_client.next_frame().unwrap().unwrap(), 1_700_000_000)
        .unwrap();
    let (b, _) = client.client_finish(&payload.encode_to_vec()).unwrap();
    at_server.push(&b).unwrap();
    let done = server
        .read_client_finish(&at_server.next_frame().unwrap().unwrap())
        .unwrap();
    (
        done.client_payload().unwrap(),
        done.client_static,
        client_static.public,
    )
}

#[test]
fn handshake_carries_login_payload() {
    let mut rng = StdRng::seed_from_u64(2);
    let sent = login_payload(15_551_234_567, 7, &PayloadConfig::default());
    let (got, seen_static, client_static) = carry(&sent, &mut rng);
    assert_eq!(got, sent);
    assert_eq!(got.username, Some(15_551_234_567));
    assert_eq!(seen_static, client_static);
}

#[test]
fn handshake_carries_registration_payload() {
    let mut rng = StdRng::seed_from_u64(3);
    let (reg, _) = registration(&mut rng);
    let sent = registration_payload(&reg, &PayloadConfig::default());
    let (got, seen_static, client_static) = carry(&sent, &mut rng);
    assert_eq!(got, sent);
    assert!(got.device_pairing_data.is_some());
    assert_eq!(seen_static, client_static);
}
