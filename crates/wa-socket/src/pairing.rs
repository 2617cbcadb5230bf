//! Pairing crypto without I/O: the QR string, pairing codes and their key wrapping, the
//! companion-finish key bundle, and the verification of `<pair-success>` with the reply a
//! companion sends. Everything here is deterministic given its inputs (randomness is passed
//! in), so it is tested against recorded vectors.

use aes::cipher::{KeyIvInit, StreamCipher};
use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use rand_core::CryptoRngCore;
use wa_binary::{Jid, Node};
use wa_crypto::{KeyPair, PublicKey, Signature, ct_eq, hkdf_sha256, hmac_sha256_parts};
use wa_proto::adv::{
    AdvDeviceIdentity, AdvEncryptionType, AdvSignedDeviceIdentity, AdvSignedDeviceIdentityHmac,
};
use zeroize::Zeroizing;

/// Start of every QR string.
pub const QR_PREFIX: &str = "https://wa.me/settings/linked_devices#";

/// The 32 characters of a pairing code (no `0`, `I`, `O`, `U`).
pub const PAIRING_CODE_ALPHABET: &[u8; 32] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";

/// PBKDF2 iterations of the pairing-code key.
pub const PAIRING_CODE_PBKDF2_ROUNDS: u32 = 131_072;

const ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [6, 0];
const HOSTED_ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [6, 5];
const DEVICE_SIGNATURE_PREFIX: [u8; 2] = [6, 1];
const KEY_BUNDLE_INFO: &[u8] = b"link_code_pairing_key_bundle_encryption_key";
const ADV_SECRET_INFO: &[u8] = b"adv_secret";

/// Why pairing failed. The variants that the server must hear about map to the protocol's
/// error replies through [`PairError::reply_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PairError {
    /// The HMAC of the device identity does not match our ADV secret.
    #[error("device identity hmac mismatch")]
    HmacMismatch,
    /// The account signature over our identity key does not verify.
    #[error("account signature mismatch")]
    SignatureMismatch,
    /// A protobuf or node in the pairing exchange is malformed.
    #[error("malformed pairing data: {0}")]
    Malformed(&'static str),
    /// The pairing-code wrapping is malformed or the code is wrong.
    #[error("pairing code: {0}")]
    Code(&'static str),
    /// [`SocketConfig::pre_pair`](crate::SocketConfig::pre_pair) refused the pairing.
    #[error("pairing refused by the pre-pair check")]
    Refused,
    /// A step of a passkey link failed.
    #[error("{kind}: {detail}")]
    Passkey {
        /// What went wrong.
        kind: wa_types::PasskeyErrorKind,
        /// Which check failed.
        detail: &'static str,
    },
}

impl PairError {
    /// The `(code, text)` of the `<iq type=error>` this failure is answered with.
    pub fn reply_code(&self) -> (u16, &'static str) {
        match self {
            Self::HmacMismatch => (401, "hmac-mismatch"),
            Self::SignatureMismatch => (401, "signature-mismatch"),
            Self::Malformed(_) | Self::Code(_) | Self::Refused | Self::Passkey { .. } => {
                (500, "internal-error")
            }
        }
    }
}

/// The number WhatsApp uses for a companion web client type, from a browser description
/// `(os, browser)`: Chrome 1, Edge 2, Firefox 3, IE 4, Opera 5, Safari 6; a `Desktop`
/// browser is 8 on Windows (UWP) and 7 elsewhere (Electron); anything else 9.
pub fn companion_platform_id(os: &str, browser: &str) -> u8 {
    if browser == "Desktop" {
        return if os == "Windows" { 8 } else { 7 };
    }
    match browser {
        "Chrome" => 1,
        "Edge" => 2,
        "Firefox" => 3,
        "IE" => 4,
        "Opera" => 5,
        "Safari" => 6,
        _ => 9,
    }
}

/// The string to render as a QR code for one pairing ref.
pub fn qr_string(
    reference: &str,
    noise_pub: &PublicKey,
    identity_pub: &PublicKey,
    adv_secret: &[u8; 32],
    platform_id: u8,
) -> String {
    format!(
        "{QR_PREFIX}{reference},{},{},{},{platform_id}",
        STANDARD.encode(noise_pub.as_bytes()),
        STANDARD.encode(identity_pub.as_bytes()),
        STANDARD.encode(adv_secret),
    )
}

/// Encodes bytes as pairing-code characters, 5 bits each (big-endian bit order, the last
/// group zero-padded). Five bytes give the 8-character code.
pub fn pairing_code_from_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                PAIRING_CODE_ALPHABET[((acc >> bits) & 31) as usize],
            ));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(
            PAIRING_CODE_ALPHABET[((acc << (5 - bits)) & 31) as usize],
        ));
    }
    out
}

/// A fresh random 8-character pairing code.
pub fn random_pairing_code(rng: &mut impl CryptoRngCore) -> String {
    let mut b = [0u8; 5];
    rng.fill_bytes(&mut b);
    pairing_code_from_bytes(&b)
}

/// PBKDF2-HMAC-SHA256(code, salt, 131072 rounds) -> 32-byte key.
pub fn pairing_code_key(code: &str, salt: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
        code.as_bytes(),
        salt,
        PAIRING_CODE_PBKDF2_ROUNDS,
        key.as_mut(),
    );
    key
}

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// `salt(32) || iv(16) || AES-256-CTR(pairing_code_key(code, salt), iv, public key)`: how a
/// pairing-code ephemeral public key travels.
pub fn wrap_ephemeral(code: &str, salt: &[u8; 32], iv: &[u8; 16], key: &PublicKey) -> Vec<u8> {
    let k = pairing_code_key(code, salt);
    let mut ct = *key.as_bytes();
    let mut cipher = Aes256Ctr::new(k.as_ref().into(), iv.into());
    cipher.apply_keystream(&mut ct);
    let mut out = Vec::with_capacity(80);
    out.extend_from_slice(salt);
    out.extend_from_slice(iv);
    out.extend_from_slice(&ct);
    out
}

/// Reverses [`wrap_ephemeral`].
///
/// # Errors
/// [`PairError::Code`] when the blob is not 80 bytes.
pub fn unwrap_ephemeral(code: &str, wrapped: &[u8]) -> Result<PublicKey, PairError> {
    if wrapped.len() != 80 {
        return Err(PairError::Code("wrapped ephemeral key is not 80 bytes"));
    }
    let (salt, rest) = wrapped.split_at(32);
    let (iv, ct) = rest.split_at(16);
    let k = pairing_code_key(code, salt);
    let mut pt = [0u8; 32];
    pt.copy_from_slice(ct);
    let mut cipher = Aes256Ctr::new(k.as_ref().into(), iv.into());
    cipher.apply_keystream(&mut pt);
    Ok(PublicKey::from_bytes(pt))
}

/// Randomness of one companion-finish step (pass random bytes; tests pass fixed ones).
#[derive(Debug, Clone)]
pub struct FinishRandom {
    /// 32 random bytes mixed into the bundle and the new ADV secret.
    pub random: [u8; 32],
    /// HKDF salt of the bundle key.
    pub salt: [u8; 32],
    /// AES-GCM nonce of the bundle.
    pub iv: [u8; 12],
}

impl FinishRandom {
    /// Fresh randomness.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut r = Self {
            random: [0; 32],
            salt: [0; 32],
            iv: [0; 12],
        };
        rng.fill_bytes(&mut r.random);
        rng.fill_bytes(&mut r.salt);
        rng.fill_bytes(&mut r.iv);
        r
    }
}

/// Output of the companion-finish step.
pub struct CompanionFinish {
    /// `salt || iv || AES-GCM(bundle key, identity pub || primary identity pub || random)`.
    pub wrapped_key_bundle: Vec<u8>,
    /// The ADV secret that replaces the one generated with the credentials.
    pub adv_secret: Zeroizing<[u8; 32]>,
}

/// Computes the companion-finish key bundle and the new ADV secret after the phone sent its
/// wrapped ephemeral key and identity.
///
/// # Errors
/// [`PairError::Code`] when the phone's ephemeral key cannot be unwrapped.
pub fn companion_finish(
    code: &str,
    pairing_ephemeral: &KeyPair,
    identity: &KeyPair,
    primary_identity: &PublicKey,
    primary_wrapped_ephemeral: &[u8],
    rnd: &FinishRandom,
) -> Result<CompanionFinish, PairError> {
    let primary_ephemeral = unwrap_ephemeral(code, primary_wrapped_ephemeral)?;
    let shared = pairing_ephemeral.dh(&primary_ephemeral);
    let bundle_key = hkdf_sha256(shared.as_bytes(), Some(&rnd.salt), KEY_BUNDLE_INFO, 32)
        .map_err(|_| PairError::Code("hkdf"))?;
    let mut plaintext = Zeroizing::new(Vec::with_capacity(96));
    plaintext.extend_from_slice(identity.public.as_bytes());
    plaintext.extend_from_slice(primary_identity.as_bytes());
    plaintext.extend_from_slice(&rnd.random);
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&bundle_key)
        .map_err(|_| PairError::Code("bundle key length"))?;
    let ct = cipher
        .encrypt((&rnd.iv).into(), plaintext.as_slice())
        .map_err(|_| PairError::Code("bundle encryption"))?;
    let mut wrapped = Vec::with_capacity(32 + 12 + ct.len());
    wrapped.extend_from_slice(&rnd.salt);
    wrapped.extend_from_slice(&rnd.iv);
    wrapped.extend_from_slice(&ct);

    let identity_shared = identity.dh(primary_identity);
    let mut ikm = Zeroizing::new(Vec::with_capacity(96));
    ikm.extend_from_slice(shared.as_bytes());
    ikm.extend_from_slice(identity_shared.as_bytes());
    ikm.extend_from_slice(&rnd.random);
    let adv = hkdf_sha256(&ikm, None, ADV_SECRET_INFO, 32).map_err(|_| PairError::Code("hkdf"))?;
    let mut adv_secret = Zeroizing::new([0u8; 32]);
    adv_secret.copy_from_slice(&adv);
    Ok(CompanionFinish {
        wrapped_key_bundle: wrapped,
        adv_secret,
    })
}

/// The parts of a `<iq><pair-success>` stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairSuccess {
    /// The iq id the reply must echo.
    pub id: String,
    /// The `ADVSignedDeviceIdentityHMAC` bytes.
    pub device_identity: Vec<u8>,
    /// Our new device JID.
    pub jid: Jid,
    /// Our LID, when the server sent one.
    pub lid: Option<Jid>,
    /// The primary device's platform name.
    pub platform: Option<String>,
    /// The business name, for business accounts.
    pub business_name: Option<String>,
}

/// Extracts the pairing result from an `<iq>` carrying `<pair-success>`.
///
/// # Errors
/// [`PairError::Malformed`] when a required part is missing.
pub fn parse_pair_success(iq: &Node) -> Result<PairSuccess, PairError> {
    let id = iq
        .attr_opt::<&str>("id")
        .ok()
        .flatten()
        .ok_or(PairError::Malformed("pair-success iq without id"))?
        .to_owned();
    let ps = iq
        .child("pair-success")
        .ok_or(PairError::Malformed("no pair-success"))?;
    let device_identity = ps
        .child("device-identity")
        .and_then(Node::content_bytes)
        .ok_or(PairError::Malformed("no device-identity"))?
        .to_vec();
    let device = ps
        .child("device")
        .ok_or(PairError::Malformed("no device"))?;
    let jid = device
        .get_attr("jid")
        .and_then(|v| v.to_jid())
        .ok_or(PairError::Malformed("device without jid"))?;
    let lid = device.get_attr("lid").and_then(|v| v.to_jid());
    let platform = ps
        .child("platform")
        .and_then(|p| p.attr_opt::<&str>("name").ok().flatten())
        .map(str::to_owned);
    let business_name = ps
        .child("biz")
        .and_then(|p| p.attr_opt::<&str>("name").ok().flatten())
        .map(str::to_owned);
    Ok(PairSuccess {
        id,
        device_identity,
        jid,
        lid,
        platform,
        business_name,
    })
}

/// A verified, counter-signed device identity.
#[derive(Debug, Clone)]
pub struct VerifiedIdentity {
    /// The full `ADVSignedDeviceIdentity` with our device signature (stored as the account).
    pub account: Vec<u8>,
    /// The same without `accountSignatureKey`: what goes back to the server.
    pub reply_identity: Vec<u8>,
    /// The key index from the details.
    pub key_index: u32,
    /// The account's (primary device's) identity key.
    pub account_signature_key: PublicKey,
}

/// The message the account key signs.
pub fn account_signature_message(details: &[u8], identity: &PublicKey, hosted: bool) -> Vec<u8> {
    let prefix = if hosted {
        HOSTED_ACCOUNT_SIGNATURE_PREFIX
    } else {
        ACCOUNT_SIGNATURE_PREFIX
    };
    [&prefix[..], details, identity.as_bytes()].concat()
}

/// The message our identity key signs as the device signature.
pub fn device_signature_message(
    details: &[u8],
    identity: &PublicKey,
    account_key: &PublicKey,
) -> Vec<u8> {
    [
        &DEVICE_SIGNATURE_PREFIX[..],
        details,
        identity.as_bytes(),
        account_key.as_bytes(),
    ]
    .concat()
}

/// Verifies the device identity of a pair-success (HMAC under the ADV secret, then the
/// account signature over our identity key) and adds our device signature.
///
/// # Errors
/// [`PairError::HmacMismatch`], [`PairError::SignatureMismatch`], or
/// [`PairError::Malformed`] for undecodable protobufs.
pub fn verify_device_identity(
    device_identity_hmac: &[u8],
    adv_secret: &[u8; 32],
    identity: &KeyPair,
    rng: &mut impl CryptoRngCore,
) -> Result<VerifiedIdentity, PairError> {
    let container = AdvSignedDeviceIdentityHmac::decode(device_identity_hmac)
        .map_err(|_| PairError::Malformed("device identity container"))?;
    let details = container
        .details
        .as_deref()
        .ok_or(PairError::Malformed("container without details"))?;
    let mac = container.hmac.as_deref().unwrap_or_default();
    let hosted_container = container.account_type == Some(AdvEncryptionType::Hosted as i32);
    let expected = if hosted_container {
        hmac_sha256_parts(adv_secret, &[&HOSTED_ACCOUNT_SIGNATURE_PREFIX, details])
    } else {
        hmac_sha256_parts(adv_secret, &[details])
    };
    if !ct_eq(&expected, mac) {
        return Err(PairError::HmacMismatch);
    }
    let mut signed = AdvSignedDeviceIdentity::decode(details)
        .map_err(|_| PairError::Malformed("signed device identity"))?;
    let inner_bytes = signed
        .details
        .clone()
        .ok_or(PairError::Malformed("identity without details"))?;
    let inner = AdvDeviceIdentity::decode(inner_bytes.as_slice())
        .map_err(|_| PairError::Malformed("device identity details"))?;
    let account_key = signed
        .account_signature_key
        .as_deref()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .map(PublicKey::from_bytes)
        .ok_or(PairError::SignatureMismatch)?;
    let account_sig = signed
        .account_signature
        .as_deref()
        .and_then(|s| Signature::from_slice(s).ok())
        .ok_or(PairError::SignatureMismatch)?;
    let hosted = inner.device_type == Some(AdvEncryptionType::Hosted as i32);
    let msg = account_signature_message(&inner_bytes, &identity.public, hosted);
    if !account_key.verify(&msg, &account_sig) {
        return Err(PairError::SignatureMismatch);
    }
    let dmsg = device_signature_message(&inner_bytes, &identity.public, &account_key);
    signed.device_signature = Some(identity.sign(&dmsg, rng).as_bytes().to_vec());
    let account = signed.encode_to_vec();
    signed.account_signature_key = None;
    let reply_identity = signed.encode_to_vec();
    Ok(VerifiedIdentity {
        account,
        reply_identity,
        key_index: inner.key_index.unwrap_or(0),
        account_signature_key: account_key,
    })
}

/// The `<iq type=result><pair-device-sign>` reply to a verified pair-success.
pub fn pair_device_sign_reply(id: &str, verified: &VerifiedIdentity) -> Node {
    Node::builder("iq")
        .attr("to", Jid::server_jid())
        .attr("type", "result")
        .attr("id", id.to_owned())
        .children([Node::builder("pair-device-sign")
            .children([Node::builder("device-identity")
                .attr("key-index", verified.key_index.to_string())
                .bytes(verified.reply_identity.clone())
                .build()])
            .build()])
        .build()
}

/// The `<iq type=error>` that refuses a pair-success.
pub fn pair_error_reply(id: &str, err: &PairError) -> Node {
    let (code, text) = err.reply_code();
    Node::builder("iq")
        .attr("to", Jid::server_jid())
        .attr("type", "error")
        .attr("id", id.to_owned())
        .children([Node::builder("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes() {
        assert_eq!(PairError::HmacMismatch.reply_code(), (401, "hmac-mismatch"));
        assert_eq!(
            PairError::SignatureMismatch.reply_code(),
            (401, "signature-mismatch")
        );
        let n = pair_error_reply("x", &PairError::HmacMismatch);
        let e = n.child("error").expect("error child");
        assert_eq!(e.attr::<&str>("code").expect("code"), "401");
        assert_eq!(e.attr::<&str>("text").expect("text"), "hmac-mismatch");
    }

    #[test]
    fn unwrap_rejects_bad_length() {
        assert!(unwrap_ephemeral("ABCDEFGH", &[0u8; 79]).is_err());
    }
}
