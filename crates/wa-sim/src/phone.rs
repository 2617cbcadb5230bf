//! The simulated phone's side of linking, sans IO: reading a QR string, building the
//! signed device identity for pair-success, checking the companion's signature, and
//! the primary's half of the pairing-code exchange (PROTOCOL.md §4).

use aes::cipher::{KeyIvInit, StreamCipher};
use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use rand_core::CryptoRngCore;
use wa_crypto::{KeyPair, PublicKey, hkdf_sha256, hmac_sha256};
use wa_proto::adv::{AdvDeviceIdentity, AdvSignedDeviceIdentity, AdvSignedDeviceIdentityHmac};
use zeroize::{Zeroize, Zeroizing};

use crate::Error;
pub(crate) use crate::kdf::pbkdf2_sha256_32;

/// Prefix of the account signature message (E2EE accounts).
const ACCOUNT_SIG_PREFIX: [u8; 2] = [6, 0];
/// Prefix of the device signature message.
const DEVICE_SIG_PREFIX: [u8; 2] = [6, 1];
/// PBKDF2 rounds for the pairing-code key.
pub(crate) const CODE_PBKDF2_ROUNDS: u32 = 2 << 16;
/// The pairing-code alphabet (Crockford-like base32 without 0, I, O, U).
pub(crate) const CODE_ALPHABET: &[u8; 32] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";
/// Length of a wrapped ephemeral key: salt(32) || iv(16) || ciphertext(32).
pub(crate) const WRAPPED_EPHEMERAL_LEN: usize = 80;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// The fields of a QR string a client shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Qr {
    pub(crate) reference: String,
    pub(crate) noise: PublicKey,
    pub(crate) identity: PublicKey,
    pub(crate) adv_secret: Zeroizing<Vec<u8>>,
    pub(crate) platform: String,
}

/// Parses `[https://wa.me/settings/linked_devices#]ref,noise,identity,adv,platform`.
pub(crate) fn parse_qr(qr: &str) -> Result<Qr, Error> {
    let body = qr.trim();
    let body = body.rsplit_once('#').map_or(body, |(_, b)| b);
    let parts: Vec<&str> = body.split(',').collect();
    let [reference, noise, identity, adv, platform] = parts[..] else {
        return Err(Error::BadQr("expected five comma-separated fields"));
    };
    if reference.is_empty() || reference.len() > 256 {
        return Err(Error::BadQr("bad ref"));
    }
    let key = |s: &str, what| {
        let raw = STANDARD.decode(s).map_err(|_| Error::BadQr(what))?;
        PublicKey::from_slice(&raw).map_err(|_| Error::BadQr(what))
    };
    let adv_secret = Zeroizing::new(
        STANDARD
            .decode(adv)
            .map_err(|_| Error::BadQr("adv secret"))?,
    );
    if adv_secret.len() != 32 {
        return Err(Error::BadQr("adv secret is not 32 bytes"));
    }
    Ok(Qr {
        reference: reference.to_owned(),
        noise: key(noise, "noise key")?,
        identity: key(identity, "identity key")?,
        adv_secret,
        platform: platform.to_owned(),
    })
}

/// What the phone sends in `<pair-success><device-identity>` and remembers to check the
/// reply.
pub(crate) struct SignedIdentity {
    /// Encoded `ADVSignedDeviceIdentityHMAC`.
    pub(crate) hmac_container: Vec<u8>,
    /// Encoded `ADVDeviceIdentity` (the details both signatures cover).
    pub(crate) details: Vec<u8>,
}

/// Builds the device identity the phone signs for a new companion.
pub(crate) fn sign_device_identity(
    account: &KeyPair,
    companion_identity: &PublicKey,
    adv_secret: &[u8],
    key_index: u32,
    timestamp: u64,
    rng: &mut impl CryptoRngCore,
) -> SignedIdentity {
    let details = AdvDeviceIdentity {
        raw_id: Some(rng.next_u32()),
        timestamp: Some(timestamp),
        key_index: Some(key_index),
        account_type: Some(0),
        device_type: Some(0),
        ..Default::default()
    }
    .encode_to_vec();
    let mut msg = Vec::with_capacity(2 + details.len() + 32);
    msg.extend_from_slice(&ACCOUNT_SIG_PREFIX);
    msg.extend_from_slice(&details);
    msg.extend_from_slice(companion_identity.as_bytes());
    let account_signature = account.sign(&msg, rng);
    let signed = AdvSignedDeviceIdentity {
        details: Some(details.clone()),
        account_signature_key: Some(account.public.as_bytes().to_vec()),
        account_signature: Some(account_signature.as_bytes().to_vec()),
        device_signature: None,
        ..Default::default()
    }
    .encode_to_vec();
    let hmac = hmac_sha256(adv_secret, &signed);
    let hmac_container = AdvSignedDeviceIdentityHmac {
        details: Some(signed),
        hmac: Some(hmac.to_vec()),
        account_type: Some(0),
        ..Default::default()
    }
    .encode_to_vec();
    SignedIdentity {
        hmac_container,
        details,
    }
}

/// Checks the companion's `<pair-device-sign><device-identity>` payload: the same
/// details, no account signature key, a valid account signature and a device signature
/// by the companion's identity key. Returns the key index the details carry.
pub(crate) fn verify_device_sign(
    reply: &[u8],
    expected_details: &[u8],
    account: &PublicKey,
    companion_identity: &PublicKey,
) -> Result<u32, String> {
    let signed = AdvSignedDeviceIdentity::decode(reply)
        .map_err(|_| "device-identity is not an ADVSignedDeviceIdentity".to_owned())?;
    let details = signed.details.as_deref().unwrap_or_default();
    if details != expected_details {
        return Err("details differ from the ones the phone signed".into());
    }
    if signed.account_signature_key.is_some() {
        return Err("accountSignatureKey must be left out of the reply".into());
    }
    let mut msg = Vec::with_capacity(2 + details.len() + 64);
    msg.extend_from_slice(&ACCOUNT_SIG_PREFIX);
    msg.extend_from_slice(details);
    msg.extend_from_slice(companion_identity.as_bytes());
    let account_sig = signed.account_signature.as_deref().unwrap_or_default();
    if !account.verify_slice(&msg, account_sig) {
        return Err("account signature does not verify".into());
    }
    msg.clear();
    msg.extend_from_slice(&DEVICE_SIG_PREFIX);
    msg.extend_from_slice(details);
    msg.extend_from_slice(companion_identity.as_bytes());
    msg.extend_from_slice(account.as_bytes());
    let device_sig = signed.device_signature.as_deref().unwrap_or_default();
    if !companion_identity.verify_slice(&msg, device_sig) {
        return Err("device signature does not verify".into());
    }
    let parsed = AdvDeviceIdentity::decode(details).map_err(|_| "bad details".to_owned())?;
    Ok(parsed.key_index.unwrap_or_default())
}

/// Normalizes a pairing code as typed (`ABCD-EFGH`, any case) to its 8 characters.
pub(crate) fn normalize_code(code: &str) -> Result<String, Error> {
    let code: String = code
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if code.len() != 8 || !code.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
        return Err(Error::BadPairingCode);
    }
    Ok(code)
}

fn code_key(code: &str, salt: &[u8]) -> Zeroizing<[u8; 32]> {
    pbkdf2_sha256_32(code.as_bytes(), salt, CODE_PBKDF2_ROUNDS)
}

/// Unwraps `salt(32) || iv(16) || AES-256-CTR(key, iv, pub)` with the code's key.
pub(crate) fn unwrap_ephemeral(code: &str, wrapped: &[u8]) -> Result<PublicKey, Error> {
    if wrapped.len() != WRAPPED_EPHEMERAL_LEN {
        return Err(Error::PairingRejected(
            "wrapped ephemeral is not 80 bytes".into(),
        ));
    }
    let key = code_key(code, &wrapped[..32]);
    let mut pubkey = [0u8; 32];
    pubkey.copy_from_slice(&wrapped[48..80]);
    let mut cipher = Aes256Ctr::new(key.as_ref().into(), wrapped[32..48].into());
    cipher.apply_keystream(&mut pubkey);
    Ok(PublicKey::from_bytes(pubkey))
}

/// Wraps a public key with the code: `salt || iv || AES-256-CTR(key, iv, pub)`.
pub(crate) fn wrap_ephemeral(
    code: &str,
    public: &PublicKey,
    salt: &[u8; 32],
    iv: &[u8; 16],
) -> Vec<u8> {
    let key = code_key(code, salt);
    let mut ct = *public.as_bytes();
    let mut cipher = Aes256Ctr::new(key.as_ref().into(), iv.into());
    cipher.apply_keystream(&mut ct);
    let mut out = Vec::with_capacity(WRAPPED_EPHEMERAL_LEN);
    out.extend_from_slice(salt);
    out.extend_from_slice(iv);
    out.extend_from_slice(&ct);
    out
}

/// The three keys inside a companion's key bundle.
pub(crate) struct KeyBundle {
    pub(crate) companion_identity: PublicKey,
    pub(crate) primary_identity: PublicKey,
    pub(crate) random: Zeroizing<[u8; 32]>,
}

/// Decrypts `salt(32) || nonce(12) || AES-GCM(key, bundle)` where key = HKDF(shared,
/// salt, "link_code_pairing_key_bundle_encryption_key").
pub(crate) fn open_key_bundle(shared: &[u8; 32], wrapped: &[u8]) -> Result<KeyBundle, String> {
    if wrapped.len() != 32 + 12 + 96 + 16 {
        return Err(format!("wrapped key bundle has {} bytes", wrapped.len()));
    }
    let key = hkdf_sha256(
        shared,
        Some(&wrapped[..32]),
        b"link_code_pairing_key_bundle_encryption_key",
        32,
    )
    .map_err(|e| e.to_string())?;
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&key).map_err(|e| e.to_string())?;
    let mut plain = cipher
        .decrypt(wrapped[32..44].into(), &wrapped[44..])
        .map_err(|_| "key bundle does not decrypt (wrong pairing code?)".to_owned())?;
    let bundle = KeyBundle {
        companion_identity: PublicKey::from_slice(&plain[..32]).map_err(|e| e.to_string())?,
        primary_identity: PublicKey::from_slice(&plain[32..64]).map_err(|e| e.to_string())?,
        random: {
            let mut r = Zeroizing::new([0u8; 32]);
            r.copy_from_slice(&plain[64..96]);
            r
        },
    };
    plain.zeroize();
    Ok(bundle)
}

/// The ADV secret both sides derive at the end of the pairing-code exchange.
pub(crate) fn code_adv_secret(
    ephemeral_shared: &[u8; 32],
    identity_shared: &[u8; 32],
    random: &[u8; 32],
) -> Zeroizing<Vec<u8>> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(96));
    ikm.extend_from_slice(ephemeral_shared);
    ikm.extend_from_slice(identity_shared);
    ikm.extend_from_slice(random);
    // invariant: 32 bytes is far below HKDF's limit of 255 * 32, so this cannot fail.
    hkdf_sha256(&ikm, None, b"adv_secret", 32).unwrap_or_else(|_| Zeroizing::new(vec![0; 32]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_crypto::ct_eq;

    #[test]
    fn qr_round_trip() {
        let qr = "https://wa.me/settings/linked_devices#2@abc,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=,AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=,1";
        let q = parse_qr(qr).unwrap();
        assert_eq!(q.reference, "2@abc");
        assert_eq!(q.identity.as_bytes(), &[1u8; 32]);
        assert_eq!(&q.adv_secret[..], &[2u8; 32]);
        assert_eq!(q.platform, "1");
        assert!(parse_qr("a,b,c").is_err());
        assert!(parse_qr("r,!!,AQ==,AQ==,1").is_err());
    }

    #[test]
    fn codes_normalize() {
        assert_eq!(normalize_code("15jm-bswa").unwrap(), "15JMBSWA");
        assert!(normalize_code("15JM-BSW0").is_err());
        assert!(normalize_code("15JM").is_err());
    }

    #[test]
    fn device_identity_signs_and_verifies() {
        let mut rng = rand_core::OsRng;
        let account = KeyPair::generate(&mut rng);
        let companion = KeyPair::generate(&mut rng);
        let adv = [9u8; 32];
        let s = sign_device_identity(
            &account,
            &companion.public,
            &adv,
            7,
            1_700_000_000,
            &mut rng,
        );
        let container = AdvSignedDeviceIdentityHmac::decode(&s.hmac_container[..]).unwrap();
        let inner = container.details.unwrap();
        assert!(ct_eq(
            &hmac_sha256(&adv, &inner),
            container.hmac.as_deref().unwrap()
        ));
        let mut signed = AdvSignedDeviceIdentity::decode(&inner[..]).unwrap();
        // Companion side: sign and drop the account key.
        let mut msg = vec![6, 1];
        msg.extend_from_slice(&s.details);
        msg.extend_from_slice(companion.public.as_bytes());
        msg.extend_from_slice(account.public.as_bytes());
        signed.device_signature = Some(companion.sign(&msg, &mut rng).as_bytes().to_vec());
        signed.account_signature_key = None;
        let reply = signed.encode_to_vec();
        assert_eq!(
            verify_device_sign(&reply, &s.details, &account.public, &companion.public),
            Ok(7)
        );
        // A reply signed by another key is refused.
        let other = KeyPair::generate(&mut rng);
        assert!(verify_device_sign(&reply, &s.details, &account.public, &other.public).is_err());
        // Keeping the account key is refused.
        signed.account_signature_key = Some(account.public.as_bytes().to_vec());
        let reply = signed.encode_to_vec();
        assert!(
            verify_device_sign(&reply, &s.details, &account.public, &companion.public).is_err()
        );
    }

    fn vectors() -> serde_json::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/pairing.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn hx(v: &serde_json::Value) -> Vec<u8> {
        hex::decode(v.as_str().unwrap()).unwrap()
    }

    fn key(v: &serde_json::Value) -> PublicKey {
        PublicKey::from_slice(&hx(v)).unwrap()
    }

    #[test]
    fn pbkdf2_matches_the_reference_crate_and_baileys() {
        let v = vectors();
        let p = &v["pairingCode"]["pbkdf2"];
        let code = v["pairingCode"]["code"].as_str().unwrap();
        assert_eq!(
            p["iterations"].as_u64(),
            Some(u64::from(CODE_PBKDF2_ROUNDS))
        );
        let got = pbkdf2_sha256_32(code.as_bytes(), &hx(&p["salt"]), CODE_PBKDF2_ROUNDS);
        assert_eq!(got.to_vec(), hx(&p["key"]));
        for (pw, rounds) in [(&b"pw"[..], 1), (&b"password"[..], 2), (&[7u8; 100][..], 5)] {
            let mut want = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(pw, b"salt", rounds, &mut want);
            assert_eq!(*pbkdf2_sha256_32(pw, b"salt", rounds), want, "{rounds}");
        }
    }

    #[test]
    fn pairing_code_wrapping_matches_baileys() {
        let v = vectors();
        let pc = &v["pairingCode"];
        let code = pc["code"].as_str().unwrap();
        let wrapped = hx(&pc["companionHelloWrappedEphemeral"]["hex"]);
        let salt: [u8; 32] = wrapped[..32].try_into().unwrap();
        let iv: [u8; 16] = hx(&pc["companionHelloWrappedEphemeral"]["iv"])
            .try_into()
            .unwrap();
        let companion = key(&v["creds"]["pairingEphemeralPub"]);
        assert_eq!(unwrap_ephemeral(code, &wrapped).unwrap(), companion);
        assert_eq!(wrap_ephemeral(code, &companion, &salt, &iv), wrapped);
        // The primary's wrapped ephemeral uses the same code.
        let cf = &v["companionFinish"];
        let primary = key(&cf["primaryEphemeral"]["pub"]);
        let pw = hx(&cf["primaryWrappedEphemeral"]);
        let (salt, iv): ([u8; 32], [u8; 16]) =
            (pw[..32].try_into().unwrap(), pw[32..48].try_into().unwrap());
        assert_eq!(wrap_ephemeral(code, &primary, &salt, &iv), pw);
        // Alphabet: the code of the vector's bytes uses it.
        assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)));
    }

    #[test]
    fn key_bundle_and_adv_secret_match_baileys() {
        let v = vectors();
        let cf = &v["companionFinish"];
        let primary_eph =
            KeyPair::from_private_slice(&hx(&cf["primaryEphemeral"]["priv"])).unwrap();
        let primary_id = KeyPair::from_private_slice(&hx(&cf["primaryIdentity"]["priv"])).unwrap();
        let companion_eph = key(&v["creds"]["pairingEphemeralPub"]);
        let companion_id = key(&v["creds"]["identityPub"]);
        // The phone computes the same shared secrets from its private halves.
        let shared = primary_eph.dh(&companion_eph);
        assert_eq!(shared.as_bytes().to_vec(), hx(&cf["companionSharedKey"]));
        let id_shared = primary_id.dh(&companion_id);
        assert_eq!(id_shared.as_bytes().to_vec(), hx(&cf["identitySharedKey"]));
        let bundle = open_key_bundle(shared.as_bytes(), &hx(&cf["wrappedKeyBundle"])).unwrap();
        assert_eq!(bundle.companion_identity, companion_id);
        assert_eq!(bundle.primary_identity, primary_id.public);
        assert_eq!(bundle.random.to_vec(), hx(&cf["random"]));
        let adv = code_adv_secret(shared.as_bytes(), id_shared.as_bytes(), &bundle.random);
        assert_eq!(
            STANDARD.encode(&adv[..]),
            cf["advSecretKey"].as_str().unwrap()
        );
        // A bundle opened with another secret fails.
        assert!(open_key_bundle(&[1; 32], &hx(&cf["wrappedKeyBundle"])).is_err());
    }

    #[test]
    fn pair_success_vector_verifies() {
        let v = vectors();
        let ps = &v["pairSuccess"];
        let container = hx(&ps["stanza"]["content"][0]["content"][0]["content"]["hex"]);
        let container = AdvSignedDeviceIdentityHmac::decode(&container[..]).unwrap();
        let inner = container.details.unwrap();
        let adv = STANDARD
            .decode(v["creds"]["advSecretKey"].as_str().unwrap())
            .unwrap();
        assert!(ct_eq(
            &hmac_sha256(&adv, &inner),
            container.hmac.as_deref().unwrap()
        ));
        let signed = AdvSignedDeviceIdentity::decode(&inner[..]).unwrap();
        let details = signed.details.unwrap();
        let account = key(&ps["accountSignatureKey"]["pub"]);
        let companion = key(&v["creds"]["identityPub"]);
        let reply = hx(&ps["reply"]["content"][0]["content"][0]["content"]["hex"]);
        let key_index: u32 = ps["reply"]["content"][0]["content"][0]["attrs"]["key-index"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            verify_device_sign(&reply, &details, &account, &companion),
            Ok(key_index)
        );
        // The same reply does not verify for another companion.
        assert!(verify_device_sign(&reply, &details, &account, &account).is_err());
    }
}
