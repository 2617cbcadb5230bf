//! Linking by passkey (WebAuthn), without I/O: the request options, the WebAuthn answer
//! as JSON, the handoff proof, the prologue that commits to the companion's ephemeral
//! identity, the key and the confirmation code both sides derive from the ephemeral
//! exchange, and the encrypted pairing request. Randomness is passed in, so every
//! function is deterministic (known-answer tests below).
//!
//! The exchange (the socket drives it, see [`crate::Socket::send_passkey_response`]):
//! 1. `<notification type="passkey_prologue_request">` carries the WebAuthn options; the
//!    companion keeps [`handoff_key`] of its ADV secret (the QR's) for five minutes and
//!    replaces the ADV secret.
//! 2. After WebAuthn: `<passkey_prologue>` with the credential id, the assertion JSON,
//!    the [`prologue`] payload and, while the handoff key is fresh, [`handoff_proof`].
//! 3. `<notification type="crsc_continuation">` carries the primary's ephemeral
//!    identity; the companion reveals its nonce (`<companion_nonce>`), derives
//!    [`pairing_request_key`] and [`confirmation_code`].
//! 4. After the user confirmed the code: `<encrypted_pairing_request>`
//!    ([`encrypt_pairing_request`]); the usual `<pair-success>` follows.

use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use prost::Message;
use sha2::{Digest, Sha256};
use wa_crypto::{KeyPair, PublicKey, hkdf_sha256_into, hmac_sha256};
use wa_proto::companion_reg::{
    CompanionCommitment, CompanionEphemeralIdentity, EncryptedPairingRequest, PairingRequest,
    PrimaryEphemeralIdentity, ProloguePayload,
};
use wa_types::{PasskeyCredential, PasskeyErrorKind, PasskeyRequestOptions};
use zeroize::{Zeroize, Zeroizing};

use crate::pairing::{PairError, pairing_code_from_bytes};

/// HKDF info of the handoff key.
pub const HANDOFF_INFO: &[u8] = b"shortcake-passkey-handoff-v1";
/// HKDF info of the key that encrypts the pairing request.
pub const PAIRING_REQUEST_KEY_INFO: &[u8] = b"Pairing Information Encryption Key";
/// How long after the passkey request the handoff proof is still sent.
pub const HANDOFF_KEY_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Largest request-options JSON accepted.
pub const MAX_REQUEST_OPTIONS_LEN: usize = 64 * 1024;

/// Base64url that takes padded and unpadded input alike (WebAuthn JSON omits padding,
/// some encoders add it).
const B64URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn passkey_error(kind: PasskeyErrorKind, detail: &'static str) -> PairError {
    PairError::Passkey { kind, detail }
}

/// What the authenticator answered (a WebAuthn `PublicKeyCredential` with an
/// `AuthenticatorAssertionResponse`), to pass to
/// [`Socket::send_passkey_response`](crate::Socket::send_passkey_response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAuthnAssertion {
    /// The credential id as base64url text (`PublicKeyCredential.id`).
    pub id: String,
    /// The credential id bytes (`rawId`).
    pub raw_id: Vec<u8>,
    /// The credential type, `public-key`.
    pub kind: String,
    /// `response.clientDataJSON` (the JSON bytes the authenticator signed over).
    pub client_data_json: Vec<u8>,
    /// `response.authenticatorData`.
    pub authenticator_data: Vec<u8>,
    /// `response.signature`.
    pub signature: Vec<u8>,
    /// `response.userHandle`, when the authenticator returned one.
    pub user_handle: Option<Vec<u8>>,
}

impl WebAuthnAssertion {
    /// The JSON the server takes as `<webauthn_assertion>` (the shape of
    /// `PublicKeyCredential.toJSON()`: binary members as unpadded base64url, a missing
    /// user handle as `null`).
    pub fn to_json(&self) -> String {
        let text = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        let bin = |b: &[u8]| format!("\"{}\"", URL_SAFE_NO_PAD.encode(b));
        let user_handle = self
            .user_handle
            .as_deref()
            .map_or_else(|| "null".to_owned(), bin);
        format!(
            "{{\"id\":{},\"rawId\":{},\"type\":{},\"response\":{{\"clientDataJSON\":{},\
             \"authenticatorData\":{},\"signature\":{},\"userHandle\":{}}}}}",
            text(&self.id),
            bin(&self.raw_id),
            text(&self.kind),
            bin(&self.client_data_json),
            bin(&self.authenticator_data),
            bin(&self.signature),
            user_handle,
        )
    }
}

/// Parses the JSON `PublicKeyCredentialRequestOptions` of a passkey request.
///
/// # Errors
/// [`PairError::Passkey`] with [`PasskeyErrorKind::RequestOptions`] when the JSON is too
/// large, not an object, or lacks a base64url `challenge`; a malformed optional member
/// is an error too, so that what the user's authenticator is shown is what was sent.
pub fn parse_request_options(json: &[u8]) -> Result<PasskeyRequestOptions, PairError> {
    let bad = |detail| passkey_error(PasskeyErrorKind::RequestOptions, detail);
    if json.len() > MAX_REQUEST_OPTIONS_LEN {
        return Err(bad("request options too large"));
    }
    let text = std::str::from_utf8(json).map_err(|_| bad("request options are not UTF-8"))?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| bad("request options are not JSON"))?;
    let obj = value
        .as_object()
        .ok_or(bad("request options are not an object"))?;
    let b64 = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| B64URL_LENIENT.decode(s).ok())
            .ok_or(bad("a binary member is not base64url"))
    };
    let opt_str = |key: &str| match obj.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .map(|s| Some(s.to_owned()))
            .ok_or(bad("a text member is not a string")),
    };
    let challenge = b64(obj.get("challenge").ok_or(bad("no challenge"))?)?;
    if challenge.is_empty() {
        return Err(bad("empty challenge"));
    }
    let timeout_ms = match obj.get("timeout") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or(bad("timeout is not a whole number"))?),
    };
    let mut allow_credentials = Vec::new();
    match obj.get("allowCredentials") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Array(list)) => {
            for c in list {
                let c = c.as_object().ok_or(bad("a credential is not an object"))?;
                let id = b64(c.get("id").ok_or(bad("a credential has no id"))?)?;
                let kind = c
                    .get("type")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("public-key")
                    .to_owned();
                let transports = match c.get("transports") {
                    None | Some(serde_json::Value::Null) => Vec::new(),
                    Some(serde_json::Value::Array(t)) => t
                        .iter()
                        .map(|t| t.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .ok_or(bad("a transport is not a string"))?,
                    Some(_) => return Err(bad("transports is not a list")),
                };
                allow_credentials.push(PasskeyCredential {
                    id,
                    kind,
                    transports,
                });
            }
        }
        Some(_) => return Err(bad("allowCredentials is not a list")),
    }
    Ok(PasskeyRequestOptions {
        challenge,
        timeout_ms,
        rp_id: opt_str("rpId")?,
        allow_credentials,
        user_verification: opt_str("userVerification")?,
        json: text.to_owned(),
    })
}

/// The handoff key: HKDF-SHA256 of the ADV secret (the one the QR code showed), zero
/// salt, info [`HANDOFF_INFO`].
pub fn handoff_key(adv_secret: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hkdf_sha256_into(adv_secret, None, HANDOFF_INFO, key.as_mut());
    key
}

/// The handoff proof: HMAC-SHA256 of the prologue payload under the handoff key. It
/// shows the server that the companion answering the passkey is the one whose QR code
/// the primary device scanned.
pub fn handoff_proof(handoff_key: &[u8; 32], prologue_payload: &[u8]) -> [u8; 32] {
    hmac_sha256(handoff_key, prologue_payload)
}

/// The companion's side of the prologue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prologue {
    /// The serialized `CompanionEphemeralIdentity` (ephemeral public key, device type,
    /// companion ref).
    pub ephemeral_identity: Vec<u8>,
    /// The serialized `ProloguePayload`: the identity and the commitment
    /// SHA-256(identity || companion nonce), which binds the nonce revealed later.
    pub payload: Vec<u8>,
}

/// Builds the prologue for an ephemeral key, the companion's platform type (the
/// `DeviceProps.platformType` of its registration), the companion ref the server gave and
/// a fresh 32-byte nonce.
pub fn prologue(
    ephemeral: &PublicKey,
    device_type: i32,
    reference: &str,
    companion_nonce: &[u8; 32],
) -> Prologue {
    let ephemeral_identity = CompanionEphemeralIdentity {
        public_key: Some(ephemeral.as_bytes().to_vec()),
        device_type: Some(device_type),
        r#ref: Some(reference.to_owned()),
        ..Default::default()
    }
    .encode_to_vec();
    let hash = Sha256::new()
        .chain_update(&ephemeral_identity)
        .chain_update(companion_nonce)
        .finalize()
        .to_vec();
    let payload = ProloguePayload {
        companion_ephemeral_identity: Some(ephemeral_identity.clone()),
        commitment: Some(CompanionCommitment {
            hash: Some(hash),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec();
    Prologue {
        ephemeral_identity,
        payload,
    }
}

/// The primary device's ephemeral identity from a continuation: its public key and
/// nonce.
///
/// # Errors
/// [`PairError::Passkey`] with [`PasskeyErrorKind::MalformedContinuation`] when the
/// protobuf does not decode or the key or nonce is not 32 bytes.
pub fn parse_primary_ephemeral_identity(bytes: &[u8]) -> Result<(PublicKey, [u8; 32]), PairError> {
    let bad = |detail| passkey_error(PasskeyErrorKind::MalformedContinuation, detail);
    let id = PrimaryEphemeralIdentity::decode(bytes)
        .map_err(|_| bad("primary ephemeral identity does not decode"))?;
    let key = id
        .public_key
        .as_deref()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or(bad("primary ephemeral key is not 32 bytes"))?;
    let nonce = id
        .nonce
        .as_deref()
        .and_then(|n| <[u8; 32]>::try_from(n).ok())
        .ok_or(bad("primary nonce is not 32 bytes"))?;
    Ok((PublicKey::from_bytes(key), nonce))
}

/// The key of the pairing request: HKDF-SHA256 of X25519(companion ephemeral, primary
/// ephemeral), salt `Companion Pairing <device type> with ref <ref>`, info
/// [`PAIRING_REQUEST_KEY_INFO`].
///
/// # Errors
/// [`PairError::Passkey`] with [`PasskeyErrorKind::MalformedContinuation`] when the
/// primary's key is of low order (the shared secret is all zeros).
pub fn pairing_request_key(
    ephemeral: &KeyPair,
    primary: &PublicKey,
    device_type: i32,
    reference: &str,
) -> Result<Zeroizing<[u8; 32]>, PairError> {
    let shared = ephemeral.dh(primary);
    if shared.as_bytes().iter().all(|&b| b == 0) {
        return Err(passkey_error(
            PasskeyErrorKind::MalformedContinuation,
            "primary ephemeral key gives no shared secret",
        ));
    }
    let salt = format!("Companion Pairing {device_type} with ref {reference}");
    let mut key = Zeroizing::new([0u8; 32]);
    let _ = hkdf_sha256_into(
        shared.as_bytes(),
        Some(salt.as_bytes()),
        PAIRING_REQUEST_KEY_INFO,
        key.as_mut(),
    );
    Ok(key)
}

/// The code both devices show, `XXXX-XXXX`: the first five bytes of the primary's nonce
/// XOR SHA-256(companion nonce || primary ephemeral key), in the pairing-code alphabet.
/// A server that swapped either ephemeral key cannot make the two codes agree.
pub fn confirmation_code(
    primary_nonce: &[u8; 32],
    companion_nonce: &[u8; 32],
    primary: &PublicKey,
) -> String {
    let digest = Sha256::new()
        .chain_update(companion_nonce)
        .chain_update(primary.as_bytes())
        .finalize();
    let mut bytes = [0u8; 5];
    for ((out, n), d) in bytes.iter_mut().zip(primary_nonce).zip(digest.iter()) {
        *out = n ^ d;
    }
    let code = pairing_code_from_bytes(&bytes);
    let (a, b) = code.split_at(4);
    format!("{a}-{b}")
}

/// Compares a code as a user may type it (any case, with or without the dash and
/// spaces) with the one computed.
pub fn same_code(typed: &str, code: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    wa_crypto::ct_eq(norm(typed).as_bytes(), norm(code).as_bytes())
}

/// The serialized `EncryptedPairingRequest`: AES-256-GCM under `key` with `iv` of the
/// `PairingRequest` (our Noise and identity public keys and the new ADV secret).
///
/// # Errors
/// Never in practice ([`PairError::Malformed`] if the cipher refused its input).
pub fn encrypt_pairing_request(
    key: &[u8; 32],
    iv: &[u8; 12],
    noise: &PublicKey,
    identity: &PublicKey,
    adv_secret: &[u8; 32],
) -> Result<Vec<u8>, PairError> {
    let mut request = PairingRequest {
        companion_public_key: Some(noise.as_bytes().to_vec()),
        companion_identity_key: Some(identity.as_bytes().to_vec()),
        adv_secret: Some(adv_secret.to_vec()),
        ..Default::default()
    };
    let plain = Zeroizing::new(request.encode_to_vec());
    if let Some(secret) = request.adv_secret.as_mut() {
        secret.zeroize();
    }
    let cipher = aes_gcm::Aes256Gcm::new(key.into());
    let sealed = cipher
        .encrypt(iv.into(), plain.as_slice())
        .map_err(|_| PairError::Malformed("pairing request encryption"))?;
    Ok(EncryptedPairingRequest {
        encrypted_payload: Some(sealed),
        iv: Some(iv.to_vec()),
        ..Default::default()
    }
    .encode_to_vec())
}

#[cfg(test)]
mod tests {
    //! Known answers computed independently by `tests/vectors/passkey_kat.py` (Python's
    //! hashlib and hmac, the `cryptography` package's X25519, HKDF and AES-GCM, protobuf
    //! written by hand), from the inputs below.
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let v = hex::decode(s).expect("hex");
        <[u8; 32]>::try_from(v.as_slice()).expect("32 bytes")
    }

    const ADV_SECRET: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const HANDOFF_KEY: &str = "bf71b722a793d4f9d2c8e46ad45266621b5d4c5273cca92d93068648346c10a5";
    const COMPANION_PRIV: &str = "4cb7b4fafe94894699f3582774d3934591c3cb85860965f24fa4efcea8b68466";
    const PRIMARY_PRIV: &str = "c74429b98fbc1e96c89a666acce97381d0838b60167eab349a6c0c31c48bd1f5";
    const COMPANION_NONCE: &str =
        "87cccbcf48253fcdc7390e1416ba98c361926baab71ec3f5e7697f7f44a581bc";
    const PRIMARY_NONCE: &str = "6828293233e9edd1eb4b22a524d825f5af5cb4f100cb8a4865e6817a0312f2c0";
    const REF: &str = "2@Q1w2E3r4T5y6";
    const DEVICE_TYPE: i32 = 1;
    const IDENT: &str = "0a2065009928ee2eac144ca22d67bc921bf20ab3323eefde4d7ca3d5beae3ecb883d10011a0e3240513177324533723454357936";
    const PAYLOAD: &str = "0a340a2065009928ee2eac144ca22d67bc921bf20ab3323eefde4d7ca3d5beae3ecb883d10011a0e324051317732453372345435793612220a2035b811618b5b5d8be0d81febea19d7e2e5502f99b43d91e72ea54e6be7e10251";
    const PROOF: &str = "5c4896ad217aa41a142188ebdf93a0d70aec2150a27ab07bfc34934c6b9e861f";
    const REQUEST_KEY: &str = "ed566ff50124d39b1f76e240bbf633332bc9c43e155cba49fc6bb065664b76e9";
    const CODE: &str = "V9JW-W9FR";
    const IV: &str = "6465666768696a6b6c6d6e6f";
    const NOISE_PUB: &str = "efe2a5c09e6d49d7eb735c9875f77404be5b887bb3f56378038968d4e3ff8198";
    const IDENTITY_PUB: &str = "689f6a627384c7dcb2dcc1487e540223e77bdf9dcd0d8be8a326eda65b0ce9a4";
    const ENCRYPTED: &str = "0a76d70826ae4b2c84d760cf7f7b9947c6252d15f68b67ba70b694aefaf412c720130e31d91f5e09c1a9d6cd33fa21d4e095a0bc29a598d1c254c82064a1162c3511b8b997480cf077c65f067f16fab048062883f385ef84d8d991f615a3172b53b93eb273f7f23fa4e75c40ca7cf0bed6891edae80c7c73120c6465666768696a6b6c6d6e6f";

    #[test]
    fn handoff_key_and_proof_match_the_reference() {
        let key = handoff_key(&hex32(ADV_SECRET));
        assert_eq!(hex::encode(*key), HANDOFF_KEY);
        let companion = KeyPair::from_private_slice(&hex32(COMPANION_PRIV)).expect("key");
        let p = prologue(&companion.public, DEVICE_TYPE, REF, &hex32(COMPANION_NONCE));
        assert_eq!(hex::encode(&p.ephemeral_identity), IDENT);
        assert_eq!(hex::encode(&p.payload), PAYLOAD);
        assert_eq!(hex::encode(handoff_proof(&key, &p.payload)), PROOF);
    }

    #[test]
    fn request_key_and_code_match_the_reference() {
        let companion = KeyPair::from_private_slice(&hex32(COMPANION_PRIV)).expect("key");
        let primary = KeyPair::from_private_slice(&hex32(PRIMARY_PRIV)).expect("key");
        let key = pairing_request_key(&companion, &primary.public, DEVICE_TYPE, REF).expect("key");
        assert_eq!(hex::encode(*key), REQUEST_KEY);
        let code = confirmation_code(
            &hex32(PRIMARY_NONCE),
            &hex32(COMPANION_NONCE),
            &primary.public,
        );
        assert_eq!(code, CODE);
        let iv: [u8; 12] = hex::decode(IV).expect("hex").try_into().expect("12");
        let sealed = encrypt_pairing_request(
            &key,
            &iv,
            &PublicKey::from_bytes(hex32(NOISE_PUB)),
            &PublicKey::from_bytes(hex32(IDENTITY_PUB)),
            &hex32(ADV_SECRET),
        )
        .expect("sealed");
        assert_eq!(hex::encode(sealed), ENCRYPTED);
    }

    #[test]
    fn a_low_order_primary_key_is_refused() {
        let companion = KeyPair::from_private_slice(&hex32(COMPANION_PRIV)).expect("key");
        let err = pairing_request_key(&companion, &PublicKey::from_bytes([0; 32]), 1, REF)
            .expect_err("zero key");
        assert!(matches!(
            err,
            PairError::Passkey {
                kind: PasskeyErrorKind::MalformedContinuation,
                ..
            }
        ));
    }

    #[test]
    fn primary_identity_lengths_are_checked() {
        let good = PrimaryEphemeralIdentity {
            public_key: Some(vec![9; 32]),
            nonce: Some(vec![7; 32]),
            ..Default::default()
        };
        let (k, n) = parse_primary_ephemeral_identity(&good.encode_to_vec()).expect("well-formed");
        assert_eq!((k.as_bytes(), n), (&[9; 32], [7; 32]));
        for bad in [
            PrimaryEphemeralIdentity {
                public_key: Some(vec![9; 31]),
                ..good.clone()
            },
            PrimaryEphemeralIdentity {
                nonce: Some(vec![7; 33]),
                ..good.clone()
            },
            PrimaryEphemeralIdentity {
                nonce: None,
                ..good.clone()
            },
        ] {
            assert!(parse_primary_ephemeral_identity(&bad.encode_to_vec()).is_err());
        }
        assert!(parse_primary_ephemeral_identity(&[0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn request_options_parse_and_refuse_garbage() {
        let json = br#"{"challenge":"AAECAw","timeout":60000,"rpId":"whatsapp.com",
            "allowCredentials":[{"id":"qrvM3Q==","type":"public-key","transports":["internal"]}],
            "userVerification":"required","extensions":{}}"#;
        let o = parse_request_options(json).expect("parses");
        assert_eq!(o.challenge, [0, 1, 2, 3]);
        assert_eq!(o.timeout_ms, Some(60_000));
        assert_eq!(o.rp_id.as_deref(), Some("whatsapp.com"));
        assert_eq!(o.allow_credentials.len(), 1);
        assert_eq!(o.allow_credentials[0].id, [0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(o.allow_credentials[0].transports, ["internal"]);
        assert_eq!(o.user_verification.as_deref(), Some("required"));
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"challenge":""}"#,
            br#"{"challenge":"***"}"#,
            br#"{"challenge":"AAEC","timeout":-1}"#,
            br#"{"challenge":"AAEC","allowCredentials":{}}"#,
            br#"{"challenge":"AAEC","allowCredentials":[{"type":"public-key"}]}"#,
            b"\xff\xfe",
        ] {
            assert!(
                matches!(
                    parse_request_options(bad),
                    Err(PairError::Passkey {
                        kind: PasskeyErrorKind::RequestOptions,
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn assertion_json_has_the_webauthn_shape() {
        let a = WebAuthnAssertion {
            id: "qrvM3Q".into(),
            raw_id: vec![0xaa, 0xbb, 0xcc, 0xdd],
            kind: "public-key".into(),
            client_data_json: b"{}".to_vec(),
            authenticator_data: vec![1, 2, 3],
            signature: vec![0xff],
            user_handle: None,
        };
        assert_eq!(
            a.to_json(),
            r#"{"id":"qrvM3Q","rawId":"qrvM3Q","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AQID","signature":"_w","userHandle":null}}"#
        );
        let v: serde_json::Value = serde_json::from_str(
            &WebAuthnAssertion {
                id: "a\"b".into(),
                user_handle: Some(vec![1]),
                ..a
            }
            .to_json(),
        )
        .expect("valid JSON");
        assert_eq!(v["id"], "a\"b");
        assert_eq!(v["response"]["userHandle"], "AQ");
    }

    #[test]
    fn typed_codes_compare_loosely() {
        assert!(same_code("abcd-efgh", "ABCD-EFGH"));
        assert!(same_code("ABCDEFGH", "ABCD-EFGH"));
        assert!(!same_code("ABCD-EFGJ", "ABCD-EFGH"));
        assert!(!same_code("", "ABCD-EFGH"));
    }
}
