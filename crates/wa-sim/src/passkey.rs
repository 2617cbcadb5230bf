//! Linking by passkey, the server's and the primary's side, sans IO: the WebAuthn
//! request options, the checks of the companion's prologue (credential, assertion,
//! handoff proof, commitment), the primary's ephemeral identity, the key and code the
//! primary derives, and opening the encrypted pairing request.
//!
//! The simulated authenticator check is structural: the credential id must be the
//! account's, and the assertion's `clientDataJSON` must be a `webauthn.get` over the
//! challenge the server issued. The assertion's signature is not verified (the sim keeps
//! no credential public keys); it is recorded for tests ([`PasskeyPrologue`]).

use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;
use sha2::{Digest, Sha256};
use wa_crypto::{KeyPair, PublicKey, ct_eq, hkdf_sha256, hmac_sha256};
use wa_proto::companion_reg::{
    CompanionEphemeralIdentity, EncryptedPairingRequest, PairingRequest, PrimaryEphemeralIdentity,
    ProloguePayload,
};
use zeroize::Zeroizing;

use crate::phone::CODE_ALPHABET;

/// How a test wants the server and the primary to behave in a passkey link
/// ([`Sim::scan_qr_passkey`](crate::Sim::scan_qr_passkey)). The default is the plain
/// link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasskeyScan {
    /// The request notification carries no usable options, so the companion must ask
    /// for them (`<iq xmlns=md type=get><passkey_request_options/>`).
    pub options_by_query: bool,
    /// How the primary's continuation reaches the companion.
    pub continuation: PasskeyContinuation,
}

/// How the server relays the primary's `crsc_continuation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasskeyContinuation {
    /// Once, after the prologue was accepted.
    #[default]
    Relay,
    /// A continuation right after the request, before any prologue (out of order), then
    /// the real one after the prologue.
    EarlyExtra,
    /// First a continuation whose ephemeral key is cut short, then the real one.
    MalformedFirst,
    /// A server in the middle sends its own ephemeral key instead of the primary's: the
    /// two codes differ and the primary cannot open the companion's pairing request.
    SwapKey,
}

/// What the server received in a companion's `<passkey_prologue>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyPrologue {
    /// `<credential_id>`.
    pub credential_id: Vec<u8>,
    /// `<webauthn_assertion>`, as sent.
    pub assertion: String,
    /// A `<pairing_handoff_proof>` was present (and verified).
    pub handoff_proof: bool,
    /// The companion's platform type from its ephemeral identity.
    pub device_type: i32,
}

/// What a test can read of an account's latest passkey link.
#[derive(Debug, Clone)]
pub(crate) struct PasskeySeen {
    pub(crate) prologue: Option<PasskeyPrologue>,
    /// The code the primary shows, once the companion's nonce arrived.
    pub(crate) code: Option<String>,
}

/// The account's (only) passkey credential id: 16 bytes derived from its phone number.
pub(crate) fn credential_id(phone: &str) -> Vec<u8> {
    Sha256::new()
        .chain_update(b"wa-sim passkey credential ")
        .chain_update(phone.as_bytes())
        .finalize()[..16]
        .to_vec()
}

/// The `PublicKeyCredentialRequestOptions` JSON for a challenge and credential.
pub(crate) fn request_options(challenge: &[u8], credential: &[u8]) -> String {
    serde_json::json!({
        "challenge": URL_SAFE_NO_PAD.encode(challenge),
        "timeout": 60_000,
        "rpId": "whatsapp.com",
        "allowCredentials": [{
            "id": URL_SAFE_NO_PAD.encode(credential),
            "type": "public-key",
            "transports": ["internal", "hybrid"],
        }],
        "userVerification": "required",
        "extensions": {},
    })
    .to_string()
}

/// Checks the assertion JSON against the credential id node, the account's credential
/// and the challenge.
pub(crate) fn check_assertion(
    assertion: &[u8],
    credential_id: &[u8],
    credential: &[u8],
    challenge: &[u8],
) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(assertion).map_err(|_| "assertion is not JSON".to_owned())?;
    let b64 = |v: &serde_json::Value, what: &str| {
        v.as_str()
            .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
            .ok_or_else(|| format!("assertion {what} is not base64url"))
    };
    if credential_id != credential {
        return Err("credential id is not the account's passkey".into());
    }
    if b64(&v["rawId"], "rawId")? != credential_id {
        return Err("assertion rawId differs from credential_id".into());
    }
    if v["type"] != "public-key" {
        return Err("assertion type is not public-key".into());
    }
    let response = &v["response"];
    for member in ["authenticatorData", "signature"] {
        b64(&response[member], member)?;
    }
    let client_data = b64(&response["clientDataJSON"], "clientDataJSON")?;
    let client_data: serde_json::Value = serde_json::from_slice(&client_data)
        .map_err(|_| "clientDataJSON is not JSON".to_owned())?;
    if client_data["type"] != "webauthn.get" {
        return Err("clientDataJSON is not a webauthn.get".into());
    }
    if b64(&client_data["challenge"], "challenge")? != challenge {
        return Err("assertion signs another challenge".into());
    }
    Ok(())
}

/// HKDF-SHA256(ADV secret of the QR, zero salt, "shortcake-passkey-handoff-v1").
fn handoff_key(qr_adv_secret: &[u8]) -> Zeroizing<Vec<u8>> {
    hkdf_sha256(qr_adv_secret, None, b"shortcake-passkey-handoff-v1", 32)
        .unwrap_or_else(|_| Zeroizing::new(vec![0; 32]))
}

/// Whether `proof` is the HMAC of the prologue under the handoff key of `qr_adv_secret`.
pub(crate) fn handoff_proof_ok(qr_adv_secret: &[u8], prologue: &[u8], proof: &[u8]) -> bool {
    ct_eq(&hmac_sha256(&handoff_key(qr_adv_secret), prologue), proof)
}

/// The companion's ephemeral identity and commitment, from a prologue payload.
pub(crate) struct CompanionPrologue {
    /// The serialized identity (what the commitment covers).
    pub(crate) identity: Vec<u8>,
    pub(crate) ephemeral: PublicKey,
    pub(crate) device_type: i32,
    pub(crate) reference: String,
    pub(crate) commitment: [u8; 32],
}

/// Decodes a `ProloguePayload` and the identity inside.
pub(crate) fn parse_prologue(payload: &[u8]) -> Result<CompanionPrologue, String> {
    let p = ProloguePayload::decode(payload).map_err(|_| "prologue does not decode".to_owned())?;
    let identity = p
        .companion_ephemeral_identity
        .ok_or("prologue without identity")?;
    let commitment = p
        .commitment
        .and_then(|c| c.hash)
        .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
        .ok_or("prologue without a 32-byte commitment")?;
    let ident = CompanionEphemeralIdentity::decode(identity.as_slice())
        .map_err(|_| "ephemeral identity does not decode".to_owned())?;
    let ephemeral = ident
        .public_key
        .as_deref()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .map(PublicKey::from_bytes)
        .ok_or("ephemeral key is not 32 bytes")?;
    Ok(CompanionPrologue {
        identity,
        ephemeral,
        device_type: ident.device_type.ok_or("no device type")?,
        reference: ident.r#ref.ok_or("no ref")?,
        commitment,
    })
}

/// Whether SHA-256(identity || nonce) is the commitment.
pub(crate) fn commitment_ok(prologue: &CompanionPrologue, nonce: &[u8]) -> bool {
    let hash = Sha256::new()
        .chain_update(&prologue.identity)
        .chain_update(nonce)
        .finalize();
    ct_eq(&hash, &prologue.commitment)
}

/// The serialized `PrimaryEphemeralIdentity` (the key is raw bytes, so that a test can
/// send a malformed one).
pub(crate) fn primary_identity(public: &[u8], nonce: &[u8]) -> Vec<u8> {
    PrimaryEphemeralIdentity {
        public_key: Some(public.to_vec()),
        nonce: Some(nonce.to_vec()),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The key the primary opens the pairing request with: HKDF-SHA256 of X25519(primary
/// ephemeral, companion ephemeral), salt `Companion Pairing <type> with ref <ref>`, info
/// `Pairing Information Encryption Key`.
pub(crate) fn request_key(
    primary: &KeyPair,
    prologue: &CompanionPrologue,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let shared = primary.dh(&prologue.ephemeral);
    if shared.as_bytes().iter().all(|&b| b == 0) {
        return Err("companion ephemeral key is of low order".into());
    }
    let salt = format!(
        "Companion Pairing {} with ref {}",
        prologue.device_type, prologue.reference
    );
    hkdf_sha256(
        shared.as_bytes(),
        Some(salt.as_bytes()),
        b"Pairing Information Encryption Key",
        32,
    )
    .map_err(|e| e.to_string())
}

/// The code the primary shows, `XXXX-XXXX`.
pub(crate) fn code(primary_nonce: &[u8], companion_nonce: &[u8], primary: &PublicKey) -> String {
    let digest = Sha256::new()
        .chain_update(companion_nonce)
        .chain_update(primary.as_bytes())
        .finalize();
    // 40 bits, read 5 at a time from the top.
    let mut bits: u64 = 0;
    for (n, d) in primary_nonce.iter().zip(digest.iter()).take(5) {
        bits = (bits << 8) | u64::from(n ^ d);
    }
    let chars: String = (0..8)
        .map(|i| char::from(CODE_ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize]))
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// What the companion sent inside its encrypted pairing request.
pub(crate) struct OpenedRequest {
    pub(crate) noise: PublicKey,
    pub(crate) identity: PublicKey,
    pub(crate) adv_secret: Zeroizing<Vec<u8>>,
}

/// Decrypts an `EncryptedPairingRequest` with the primary's key.
pub(crate) fn open_request(key: &[u8], sealed: &[u8]) -> Result<OpenedRequest, String> {
    let req = EncryptedPairingRequest::decode(sealed)
        .map_err(|_| "encrypted pairing request does not decode".to_owned())?;
    let iv = req
        .iv
        .filter(|iv| iv.len() == 12)
        .ok_or("pairing request IV is not 12 bytes")?;
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|e| e.to_string())?;
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                iv.as_slice().into(),
                req.encrypted_payload.unwrap_or_default().as_slice(),
            )
            .map_err(|_| "pairing request does not decrypt".to_owned())?,
    );
    let mut inner = PairingRequest::decode(plain.as_slice())
        .map_err(|_| "pairing request does not decode".to_owned())?;
    let key = |k: Option<Vec<u8>>, what: &str| {
        k.and_then(|k| PublicKey::from_slice(&k).ok())
            .ok_or_else(|| format!("pairing request {what} is not a key"))
    };
    let adv_secret = Zeroizing::new(inner.adv_secret.take().unwrap_or_default());
    if adv_secret.len() != 32 {
        return Err("pairing request ADV secret is not 32 bytes".into());
    }
    Ok(OpenedRequest {
        noise: key(inner.companion_public_key.clone(), "noise key")?,
        identity: key(inner.companion_identity_key.clone(), "identity key")?,
        adv_secret,
    })
}

#[cfg(test)]
mod tests {
    //! The same known answers as the client's tests (`wa-socket/src/passkey.rs`), from
    //! `wa-socket/tests/vectors/passkey_kat.py`, checked here from the primary's side.
    use super::*;

    fn hx(s: &str) -> Vec<u8> {
        hex::decode(s).expect("hex")
    }

    const ADV_SECRET: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const COMPANION_NONCE: &str =
        "87cccbcf48253fcdc7390e1416ba98c361926baab71ec3f5e7697f7f44a581bc";
    const PRIMARY_PRIV: &str = "c74429b98fbc1e96c89a666acce97381d0838b60167eab349a6c0c31c48bd1f5";
    const PRIMARY_NONCE: &str = "6828293233e9edd1eb4b22a524d825f5af5cb4f100cb8a4865e6817a0312f2c0";
    const PAYLOAD: &str = "0a340a2065009928ee2eac144ca22d67bc921bf20ab3323eefde4d7ca3d5beae3ecb883d10011a0e324051317732453372345435793612220a2035b811618b5b5d8be0d81febea19d7e2e5502f99b43d91e72ea54e6be7e10251";
    const PROOF: &str = "5c4896ad217aa41a142188ebdf93a0d70aec2150a27ab07bfc34934c6b9e861f";
    const REQUEST_KEY: &str = "ed566ff50124d39b1f76e240bbf633332bc9c43e155cba49fc6bb065664b76e9";
    const NOISE_PUB: &str = "efe2a5c09e6d49d7eb735c9875f77404be5b887bb3f56378038968d4e3ff8198";
    const IDENTITY_PUB: &str = "689f6a627384c7dcb2dcc1487e540223e77bdf9dcd0d8be8a326eda65b0ce9a4";
    const ENCRYPTED: &str = "0a76d70826ae4b2c84d760cf7f7b9947c6252d15f68b67ba70b694aefaf412c720130e31d91f5e09c1a9d6cd33fa21d4e095a0bc29a598d1c254c82064a1162c3511b8b997480cf077c65f067f16fab048062883f385ef84d8d991f615a3172b53b93eb273f7f23fa4e75c40ca7cf0bed6891edae80c7c73120c6465666768696a6b6c6d6e6f";

    #[test]
    fn the_primary_derives_the_reference_key_code_and_request() {
        let prologue = parse_prologue(&hx(PAYLOAD)).expect("prologue");
        assert_eq!(prologue.device_type, 1);
        assert_eq!(prologue.reference, "2@Q1w2E3r4T5y6");
        assert!(commitment_ok(&prologue, &hx(COMPANION_NONCE)));
        let mut wrong = hx(COMPANION_NONCE);
        wrong[0] ^= 1;
        assert!(!commitment_ok(&prologue, &wrong));

        assert!(handoff_proof_ok(&hx(ADV_SECRET), &hx(PAYLOAD), &hx(PROOF)));
        let mut other_secret = hx(ADV_SECRET);
        other_secret[31] ^= 1;
        assert!(!handoff_proof_ok(&other_secret, &hx(PAYLOAD), &hx(PROOF)));
        assert!(!handoff_proof_ok(&hx(ADV_SECRET), &hx(PAYLOAD), &[0; 32]));

        let primary = KeyPair::from_private_slice(&hx(PRIMARY_PRIV)).expect("key");
        let key = request_key(&primary, &prologue).expect("key");
        assert_eq!(hex::encode(&*key), REQUEST_KEY);
        assert_eq!(
            code(&hx(PRIMARY_NONCE), &hx(COMPANION_NONCE), &primary.public),
            "V9JW-W9FR"
        );
        let opened = open_request(&key, &hx(ENCRYPTED)).expect("opens");
        assert_eq!(hex::encode(opened.noise.as_bytes()), NOISE_PUB);
        assert_eq!(hex::encode(opened.identity.as_bytes()), IDENTITY_PUB);
        assert_eq!(hex::encode(&*opened.adv_secret), ADV_SECRET);
    }

    #[test]
    fn tampered_requests_do_not_open() {
        let prologue = parse_prologue(&hx(PAYLOAD)).expect("prologue");
        let primary = KeyPair::from_private_slice(&hx(PRIMARY_PRIV)).expect("key");
        let key = request_key(&primary, &prologue).expect("key");
        let sealed = hx(ENCRYPTED);
        for i in [3, 40, sealed.len() - 20, sealed.len() - 1] {
            let mut t = sealed.clone();
            t[i] ^= 0x40;
            assert!(open_request(&key, &t).is_err(), "byte {i}");
        }
        assert!(open_request(&key, &[0xff; 7]).is_err());
        assert!(open_request(&[0; 32], &sealed).is_err());
        assert!(parse_prologue(&[0x0a, 0x05, 1]).is_err());
        assert!(parse_prologue(&[]).is_err());
    }

    #[test]
    fn assertions_are_checked_against_credential_and_challenge() {
        let cred = credential_id("15550001111");
        let challenge = [7u8; 32];
        let client_data = |ty: &str, ch: &[u8]| {
            URL_SAFE_NO_PAD.encode(
                serde_json::json!({"type": ty, "challenge": URL_SAFE_NO_PAD.encode(ch),
                    "origin": "https://web.whatsapp.com"})
                .to_string(),
            )
        };
        let assertion = |raw: &[u8], cd: String| {
            serde_json::json!({"id": "x", "rawId": URL_SAFE_NO_PAD.encode(raw), "type": "public-key",
                "response": {"clientDataJSON": cd, "authenticatorData": "AQID",
                "signature": "BAU", "userHandle": null}})
            .to_string()
        };
        let good = assertion(&cred, client_data("webauthn.get", &challenge));
        assert_eq!(
            check_assertion(good.as_bytes(), &cred, &cred, &challenge),
            Ok(())
        );
        let other = credential_id("15550002222");
        assert!(check_assertion(good.as_bytes(), &other, &cred, &challenge).is_err());
        assert!(check_assertion(good.as_bytes(), &cred, &cred, &[8; 32]).is_err());
        let created = assertion(&cred, client_data("webauthn.create", &challenge));
        assert!(check_assertion(created.as_bytes(), &cred, &cred, &challenge).is_err());
        assert!(check_assertion(b"{", &cred, &cred, &challenge).is_err());
        let opts: serde_json::Value =
            serde_json::from_str(&request_options(&challenge, &cred)).expect("json");
        assert_eq!(
            opts["allowCredentials"][0]["id"],
            URL_SAFE_NO_PAD.encode(&cred)
        );
    }
}
