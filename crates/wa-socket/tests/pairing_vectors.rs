//! Known-answer tests of the pairing crypto against the Baileys 7.0.0-rc14 recording.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use wa_crypto::{KeyPair, PrivateKey, PublicKey, Signature};
use wa_proto::adv::{AdvSignedDeviceIdentity, AdvSignedDeviceIdentityHmac};
use wa_socket::{
    FinishRandom, PairError, companion_finish, companion_platform_id, device_signature_message,
    pair_device_sign_reply, pairing_code_from_bytes, pairing_code_key, parse_pair_success,
    qr_string, unwrap_ephemeral, verify_device_identity, wrap_ephemeral,
};

fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("vectors/pairing.json")).expect("vector json")
}

fn h(v: &serde_json::Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn h32(v: &serde_json::Value) -> [u8; 32] {
    h(v).try_into().expect("32 bytes")
}

fn pair(priv_hex: &serde_json::Value) -> KeyPair {
    KeyPair::from_private(PrivateKey::from_bytes(h32(priv_hex)))
}

fn adv(v: &serde_json::Value) -> [u8; 32] {
    STANDARD
        .decode(v.as_str().expect("b64"))
        .expect("b64")
        .try_into()
        .expect("32 bytes")
}

#[test]
fn qr_strings_for_every_browser() {
    let v = vectors();
    let c = &v["creds"];
    let noise = PublicKey::from_bytes(h32(&c["noiseKeyPub"]));
    let identity = PublicKey::from_bytes(h32(&c["identityPub"]));
    let secret = adv(&c["advSecretKey"]);
    let reference = v["qr"]["ref"].as_str().expect("ref");
    let data = v["qr"]["data"].as_object().expect("qr data");
    assert!(data.len() >= 5);
    for (browser, want) in data {
        let parts: Vec<&str> = browser.split('/').collect();
        let id = companion_platform_id(parts[0], parts[1]);
        let got = qr_string(reference, &noise, &identity, &secret, id);
        assert_eq!(got, want.as_str().expect("qr"), "{browser}");
    }
}

#[test]
fn pairing_code_alphabet() {
    let v = vectors();
    let pc = &v["pairingCode"];
    assert_eq!(pairing_code_from_bytes(&h(&pc["codeBytes"])), pc["code"]);
    for case in pc["crockfordVectors"].as_array().expect("cases") {
        assert_eq!(pairing_code_from_bytes(&h(&case["hex"])), case["code"]);
    }
}

#[test]
fn pairing_code_key_and_wrapping() {
    let v = vectors();
    let pc = &v["pairingCode"];
    let code = pc["code"].as_str().expect("code");
    let salt = h32(&pc["pbkdf2"]["salt"]);
    assert_eq!(
        pairing_code_key(code, &salt).as_slice(),
        h(&pc["pbkdf2"]["key"]).as_slice()
    );
    let eph = PublicKey::from_bytes(h32(&v["creds"]["pairingEphemeralPub"]));
    let iv: [u8; 16] = h(&pc["companionHelloWrappedEphemeral"]["iv"])
        .try_into()
        .expect("iv");
    let wrapped = wrap_ephemeral(code, &salt, &iv, &eph);
    assert_eq!(wrapped, h(&pc["companionHelloWrappedEphemeral"]["hex"]));
    assert_eq!(unwrap_ephemeral(code, &wrapped).expect("unwrap"), eph);
    assert_ne!(unwrap_ephemeral("ZZZZZZZZ", &wrapped).expect("unwrap"), eph);
}

#[test]
fn companion_finish_bundle_and_adv_secret() {
    let v = vectors();
    let c = &v["creds"];
    let f = &v["companionFinish"];
    let code = v["pairingCode"]["code"].as_str().expect("code");
    let rnd = FinishRandom {
        random: h32(&f["random"]),
        salt: h32(&f["linkCodeSalt"]),
        iv: h(&f["encryptIv"]).try_into().expect("iv"),
    };
    let out = companion_finish(
        code,
        &pair(&c["pairingEphemeralPriv"]),
        &pair(&c["identityPriv"]),
        &PublicKey::from_bytes(h32(&f["primaryIdentity"]["pub"])),
        &h(&f["primaryWrappedEphemeral"]),
        &rnd,
    )
    .expect("finish");
    assert_eq!(out.wrapped_key_bundle, h(&f["wrappedKeyBundle"]));
    assert_eq!(*out.adv_secret, adv(&f["advSecretKey"]));
}

fn pair_success_node() -> wa_binary::Node {
    let v = vectors();
    wa_binary::decode(h(&v["pairSuccess"]["stanzaHex"]).into()).expect("stanza decodes")
}

#[test]
fn pair_success_verifies_and_reply_matches_baileys() {
    let v = vectors();
    let identity = pair(&v["creds"]["identityPriv"]);
    let secret = adv(&v["creds"]["advSecretKey"]);
    let ps = parse_pair_success(&pair_success_node()).expect("parse");
    let cu = &v["pairSuccess"]["credsUpdate"];
    assert_eq!(ps.jid.to_string(), cu["me"]["id"]);
    assert_eq!(
        ps.lid.as_ref().map(ToString::to_string).as_deref(),
        cu["me"]["lid"].as_str()
    );
    assert_eq!(ps.platform.as_deref(), cu["platform"].as_str());

    let verified = verify_device_identity(
        &ps.device_identity,
        &secret,
        &identity,
        &mut rand::rngs::OsRng,
    )
    .expect("verifies");
    assert_eq!(
        verified.account_signature_key.as_bytes().as_slice(),
        h(&v["pairSuccess"]["accountSignatureKey"]["pub"]).as_slice()
    );
    assert_eq!(verified.key_index, 3);

    // The device signature is randomized (XEdDSA), so compare the reply byte for byte
    // except for the trailing 64 signature bytes, and check both signatures verify.
    let reply = wa_binary::encode(&pair_device_sign_reply(&ps.id, &verified));
    let want = h(&v["pairSuccess"]["replyHex"]);
    assert_eq!(reply.len(), want.len());
    assert_eq!(reply[..reply.len() - 64], want[..want.len() - 64]);

    let account = AdvSignedDeviceIdentity::decode(verified.account.as_slice()).expect("account");
    let details = account.details.clone().expect("details");
    let msg = device_signature_message(&details, &identity.public, &verified.account_signature_key);
    let ours =
        Signature::from_slice(account.device_signature.as_deref().expect("sig")).expect("sig");
    assert!(identity.public.verify(&msg, &ours));
    let theirs = Signature::from_slice(&want[want.len() - 64..]).expect("sig");
    assert!(
        identity.public.verify(&msg, &theirs),
        "Baileys' signature covers the same message"
    );
    let recorded = STANDARD
        .decode(cu["account"]["details"].as_str().expect("b64"))
        .expect("b64");
    assert_eq!(details, recorded);
}

#[test]
fn tampered_pair_success_is_refused() {
    let v = vectors();
    let identity = pair(&v["creds"]["identityPriv"]);
    let secret = adv(&v["creds"]["advSecretKey"]);
    let ps = parse_pair_success(&pair_success_node()).expect("parse");
    let mut rng = rand::rngs::OsRng;

    // Wrong ADV secret: hmac mismatch.
    let mut bad_secret = secret;
    bad_secret[0] ^= 1;
    assert_eq!(
        verify_device_identity(&ps.device_identity, &bad_secret, &identity, &mut rng).err(),
        Some(PairError::HmacMismatch)
    );

    // Flipped account signature, HMAC recomputed so only the signature is wrong.
    let container = AdvSignedDeviceIdentityHmac::decode(ps.device_identity.as_slice()).expect("c");
    let mut signed =
        AdvSignedDeviceIdentity::decode(container.details.as_deref().expect("d")).expect("s");
    let mut sig = signed.account_signature.clone().expect("sig");
    sig[10] ^= 0x40;
    signed.account_signature = Some(sig);
    let details = signed.encode_to_vec();
    let forged = AdvSignedDeviceIdentityHmac {
        hmac: Some(wa_crypto::hmac_sha256(&secret, &details).to_vec()),
        details: Some(details),
        ..container.clone()
    };
    let err = verify_device_identity(&forged.encode_to_vec(), &secret, &identity, &mut rng).err();
    assert_eq!(err, Some(PairError::SignatureMismatch));
    assert_eq!(err.expect("err").reply_code(), (401, "signature-mismatch"));

    // Someone else's identity key: the account signature does not cover it.
    let other = KeyPair::generate(&mut rng);
    assert_eq!(
        verify_device_identity(&ps.device_identity, &secret, &other, &mut rng).err(),
        Some(PairError::SignatureMismatch)
    );
}
