//! The protobuf parts of Baileys 7.0.0-rc14's handshake, Signal, app state and pairing
//! vectors (see tests/vectors/NOTE.md) decode with the generated types, with every field
//! known to our schema, re-encode byte for byte, and carry the values the vectors state.

use base64::Engine as _;
use serde_json::Value as Json;
use wa_proto::adv::{AdvDeviceIdentity, AdvSignedDeviceIdentity, AdvSignedDeviceIdentityHmac};
use wa_proto::cert::CertChain;
use wa_proto::cert::cert_chain::noise_certificate::Details;
use wa_proto::e2e::Message;
use wa_proto::handshake::{ClientPayload, HandshakeMessage};
use wa_proto::server_sync::SyncdPatch;
use wa_proto::signal::{
    PreKeySignalMessage, SenderKeyDistributionMessage, SenderKeyMessage, SignalMessage,
};

fn load(name: &str) -> Json {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).expect("JSON")
}

fn hex(v: &Json) -> Vec<u8> {
    let s = v.as_str().expect("hex string");
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn b64(v: &Json) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
}

/// Decodes with `M`, requires no unknown field anywhere and identical re-encoding.
fn exact<M: prost::Message + Default + std::fmt::Debug>(bytes: &[u8], what: &str) -> M {
    let m = M::decode(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    let debug = format!("{m:?}");
    assert_eq!(
        debug.matches("UnknownFields(").count(),
        debug.matches("UnknownFields(0 bytes)").count(),
        "{what}: a field is unknown to our schema: {debug}"
    );
    assert_eq!(m.encode_to_vec(), bytes, "{what}: re-encoding differs");
    m
}

/// Strips the 3-byte big-endian length prefix of a Noise frame.
fn frame_body(frame: &[u8]) -> &[u8] {
    let len = usize::from(frame[0]) << 16 | usize::from(frame[1]) << 8 | usize::from(frame[2]);
    assert_eq!(frame.len(), 3 + len, "frame length");
    &frame[3..]
}

#[test]
fn noise_handshake_messages_client_payload_and_cert_chain() {
    let v = load("noise_handshake.json");
    let keys = &v["keys"];

    let hello = hex(&v["wire"]["clientHello"]);
    assert_eq!(
        &hello[..4],
        hex(&v["header"]).as_slice(),
        "WA header precedes the frame"
    );
    let m: HandshakeMessage = exact(frame_body(&hello[4..]), "client hello");
    let ch = m.client_hello.as_ref().expect("clientHello");
    assert_eq!(
        ch.ephemeral(),
        hex(&keys["clientEphemeral"]["pub"]).as_slice()
    );

    let m: HandshakeMessage = exact(frame_body(&hex(&v["wire"]["serverHello"])), "server hello");
    let sh = m.server_hello.as_ref().expect("serverHello");
    assert_eq!(
        sh.ephemeral(),
        hex(&keys["serverEphemeral"]["pub"]).as_slice()
    );
    // The static key is encrypted (32 bytes + 16-byte tag); the payload is the cert chain.
    assert_eq!(sh.r#static().len(), 48);
    assert!(!sh.payload().is_empty());

    let m: HandshakeMessage = exact(frame_body(&hex(&v["wire"]["clientFinish"])), "finish");
    let cf = m.client_finish.as_ref().expect("clientFinish");
    assert_eq!(cf.r#static().len(), 48);
    assert!(!cf.payload().is_empty());

    let p: ClientPayload = exact(&hex(&v["clientPayloadHex"]), "ClientPayload");
    let want = &v["clientPayloadDecoded"];
    assert_eq!(p.username().to_string(), want["username"].as_str().unwrap());
    assert_eq!(p.passive(), want["passive"].as_bool().unwrap());
    assert_eq!(p.pull(), want["pull"].as_bool().unwrap());
    assert_eq!(u64::from(p.device()), want["device"].as_u64().unwrap());
    assert_eq!(
        p.connect_type().as_str_name(),
        want["connectType"].as_str().unwrap()
    );
    assert_eq!(
        p.connect_reason().as_str_name(),
        want["connectReason"].as_str().unwrap()
    );
    let ua = p.user_agent.as_ref().expect("userAgent");
    assert_eq!(ua.platform().as_str_name(), "WEB");
    assert_eq!(ua.device(), "Desktop");
    assert_eq!(ua.locale_language_iso6391(), "en");
    let ver = ua.app_version.as_ref().expect("appVersion");
    let want_ver = &want["userAgent"]["appVersion"];
    assert_eq!(
        u64::from(ver.primary()),
        want_ver["primary"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(ver.secondary()),
        want_ver["secondary"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(ver.tertiary()),
        want_ver["tertiary"].as_u64().unwrap()
    );
    let web = p.web_info.as_ref().expect("webInfo");
    assert_eq!(web.web_sub_platform().as_str_name(), "WEB_BROWSER");

    let chain: CertChain = exact(&hex(&v["certChainHex"]), "CertChain");
    let leaf = chain.leaf.as_ref().expect("leaf");
    let details: Details = exact(leaf.details(), "leaf details");
    assert_eq!(details.key(), hex(&keys["serverStatic"]["pub"]).as_slice());
    assert_eq!(leaf.signature().len(), 64);
    let inter = chain.intermediate.as_ref().expect("intermediate");
    let details: Details = exact(inter.details(), "intermediate details");
    assert_eq!(details.key(), hex(&keys["intermediate"]["pub"]).as_slice());
}

#[test]
fn signal_ciphertexts_and_sender_keys() {
    let v = load("signal_session.json");
    let conversation = v["conversation"].as_array().unwrap();
    let (mut pkmsg, mut msg) = (0, 0);
    for (i, c) in conversation.iter().enumerate() {
        let what = format!("conversation[{i}]");
        let ct = hex(&c["ciphertextHex"]);
        assert_eq!(ct[0], 0x33, "{what}: version byte");
        let whisper = match c["type"].as_str().unwrap() {
            "pkmsg" => {
                pkmsg += 1;
                let pk: PreKeySignalMessage = exact(&ct[1..], &what);
                assert_eq!(pk.identity_key().len(), 33);
                assert_eq!(pk.base_key().len(), 33);
                assert!(pk.registration_id.is_some() && pk.signed_pre_key_id.is_some());
                pk.message().to_vec()
            }
            "msg" => {
                msg += 1;
                ct
            }
            other => panic!("{what}: unexpected type {other}"),
        };
        // 0x33 || SignalMessage || 8-byte MAC.
        assert_eq!(whisper[0], 0x33);
        let sm: SignalMessage = exact(&whisper[1..whisper.len() - 8], &what);
        assert_eq!(sm.ratchet_key().len(), 33);
        assert!(sm.ciphertext().len() >= 16);

        let mut plain = hex(&c["paddedPlaintextHex"]);
        let pad = usize::from(*plain.last().unwrap());
        plain.truncate(plain.len() - pad);
        let m: Message = exact(&plain, &what);
        assert_eq!(m.conversation(), c["text"].as_str().unwrap());
    }
    assert!(pkmsg > 0 && msg > 0);

    for (i, g) in v["group"].as_array().unwrap().iter().enumerate() {
        let what = format!("group[{i}]");
        let skdm = hex(&g["skdmHex"]);
        let d: SenderKeyDistributionMessage = exact(&skdm[1..], &what);
        assert_eq!(d.chain_key().len(), 32);
        assert_eq!(d.signing_key().len(), 33);
        let skmsg = hex(&g["skmsgHex"]);
        // 0x33 || SenderKeyMessage || 64-byte signature.
        let s: SenderKeyMessage = exact(&skmsg[1..skmsg.len() - 64], &what);
        assert_eq!(s.id(), d.id(), "{what}: same sender key id");
        assert!(s.iteration() >= d.iteration());
        assert!(s.ciphertext().len() >= 16);
    }
}

#[test]
fn app_state_patches() {
    let v = load("app_state.json");
    let patches = v["patches"].as_array().unwrap();
    assert!(!patches.is_empty());
    for p in patches {
        let what = p["name"].as_str().unwrap();
        let patch: SyncdPatch = exact(&hex(&p["syncdPatchProtoHex"]), what);
        assert_eq!(patch.patch_mac(), hex(&p["patchMac"]).as_slice(), "{what}");
        assert_eq!(
            patch.snapshot_mac(),
            hex(&p["snapshotMac"]).as_slice(),
            "{what}"
        );
        assert_eq!(patch.mutations.len(), 1, "{what}");
        let record = patch.mutations[0].record.as_ref().expect("record");
        let index = record.index.as_ref().expect("index");
        assert_eq!(index.blob(), hex(&p["indexMac"]).as_slice(), "{what}");
        let value = record.value.as_ref().expect("value").blob();
        assert_eq!(value, hex(&p["valueBlob"]).as_slice(), "{what}");
        let version = patch.version.as_ref().expect("version").version();
        assert_eq!(
            version,
            p["stateAfter"]["version"].as_u64().unwrap(),
            "{what}"
        );
    }
}

#[test]
fn pairing_device_identities() {
    let v = load("pairing.json");
    let ps = &v["pairSuccess"];
    let stanza_identity = hex(&ps["stanza"]["content"][0]["content"][0]["content"]["hex"]);
    let hmac: AdvSignedDeviceIdentityHmac = exact(&stanza_identity, "pair-success identity");
    assert_eq!(hmac.hmac().len(), 32);
    let signed: AdvSignedDeviceIdentity = exact(hmac.details(), "signed identity");
    assert_eq!(
        signed.account_signature_key(),
        hex(&ps["accountSignatureKey"]["pub"])
    );
    assert_eq!(
        signed.account_signature_key(),
        b64(&ps["credsUpdate"]["account"]["accountSignatureKey"])
    );
    assert_eq!(signed.account_signature().len(), 64);
    let identity: AdvDeviceIdentity = exact(signed.details(), "device identity");
    assert_eq!(
        signed.details(),
        b64(&ps["credsUpdate"]["account"]["details"])
    );
    let key_index = ps["reply"]["content"][0]["content"][0]["attrs"]["key-index"]
        .as_str()
        .unwrap();
    assert_eq!(identity.key_index().to_string(), key_index);
    assert!(identity.timestamp() > 0);

    // The companion's reply signs the identity and drops the account signature key.
    let reply_identity = hex(&ps["reply"]["content"][0]["content"][0]["content"]["hex"]);
    let reply: AdvSignedDeviceIdentity = exact(&reply_identity, "reply identity");
    assert!(reply.account_signature_key.is_none());
    assert_eq!(reply.details(), signed.details());
    assert_eq!(
        reply.device_signature(),
        b64(&ps["credsUpdate"]["account"]["deviceSignature"])
    );
}
