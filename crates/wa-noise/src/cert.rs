//! The server's certificate chain: verification (client side) and issuing (server side).
//!
//! A chain is `CertChain{leaf, intermediate}`; each certificate is `{details, signature}`
//! where `details` is an encoded `Details{serial, issuerSerial, key, notBefore, notAfter}`
//! and the signature is XEdDSA over those raw bytes. The trusted root signs the
//! intermediate (whose issuer serial is 0); the intermediate signs the leaf (whose issuer
//! serial is the intermediate's serial); the leaf's key is the server's Noise static key.

use prost::Message;
use rand_core::CryptoRngCore;
use wa_crypto::{KeyPair, PublicKey, ct_eq};

use crate::error::{CertRole, Error};
use crate::wire;

/// WhatsApp's production root key, which signs the intermediate certificate.
pub const WA_ROOT_PUBLIC_KEY: PublicKey = PublicKey::from_bytes([
    0x14, 0x23, 0x75, 0x57, 0x4d, 0x0a, 0x58, 0x71, 0x66, 0xaa, 0xe7, 0x1e, 0xbe, 0x51, 0x64, 0x37,
    0xc4, 0xa2, 0x8b, 0x73, 0xe3, 0x69, 0x5c, 0x6c, 0xe1, 0xf7, 0xf9, 0x54, 0x5d, 0xa8, 0xee, 0x6b,
]);

/// The issuer serial an intermediate certificate must carry: the root's.
pub const ROOT_SERIAL: u32 = 0;

/// The contents of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertDetails {
    /// This certificate's serial.
    pub serial: u32,
    /// The serial of the certificate that signed it (0 = the root).
    pub issuer_serial: u32,
    /// The key being certified.
    pub key: PublicKey,
    /// Start of validity, unix seconds.
    pub not_before: u64,
    /// End of validity, unix seconds.
    pub not_after: u64,
}

impl CertDetails {
    /// The protobuf encoding that gets signed (every field written, zeros included).
    pub fn encode(&self) -> Vec<u8> {
        wire::Details {
            serial: Some(self.serial),
            issuer_serial: Some(self.issuer_serial),
            key: Some(self.key.as_bytes().to_vec()),
            not_before: Some(self.not_before),
            not_after: Some(self.not_after),
        }
        .encode_to_vec()
    }
}

/// Validity window and serials for [`issue_cert_chain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainParams {
    /// The intermediate's serial (the leaf names it as issuer).
    pub intermediate_serial: u32,
    /// The leaf's serial.
    pub leaf_serial: u32,
    /// Start of validity of both certificates, unix seconds.
    pub not_before: u64,
    /// End of validity of both certificates, unix seconds.
    pub not_after: u64,
}

impl Default for ChainParams {
    /// Serials 1 (intermediate) and 2 (leaf), valid from 0 to the year 2100.
    fn default() -> Self {
        Self {
            intermediate_serial: 1,
            leaf_serial: 2,
            not_before: 0,
            not_after: 4_102_444_800,
        }
    }
}

/// Issues a well-formed chain for a server whose Noise static public key is
/// `server_static`: the root signs the intermediate, the intermediate signs the leaf.
/// Returns the encoded `CertChain`, the plaintext of the ServerHello payload.
pub fn issue_cert_chain(
    root: &KeyPair,
    intermediate: &KeyPair,
    server_static: &PublicKey,
    params: &ChainParams,
    rng: &mut impl CryptoRngCore,
) -> Vec<u8> {
    let inter = CertDetails {
        serial: params.intermediate_serial,
        issuer_serial: ROOT_SERIAL,
        key: intermediate.public,
        not_before: params.not_before,
        not_after: params.not_after,
    };
    let leaf = CertDetails {
        serial: params.leaf_serial,
        issuer_serial: params.intermediate_serial,
        key: *server_static,
        not_before: params.not_before,
        not_after: params.not_after,
    };
    sign_cert_chain(root, intermediate, &inter, &leaf, rng)
}

/// Signs arbitrary details into a chain: `root` signs `intermediate_details`,
/// `intermediate` signs `leaf_details`. Nothing is checked, so this also builds the
/// invalid chains a test server needs.
pub fn sign_cert_chain(
    root: &KeyPair,
    intermediate: &KeyPair,
    intermediate_details: &CertDetails,
    leaf_details: &CertDetails,
    rng: &mut impl CryptoRngCore,
) -> Vec<u8> {
    let inter_raw = intermediate_details.encode();
    let leaf_raw = leaf_details.encode();
    let inter_sig = root.sign(&inter_raw, rng);
    let leaf_sig = intermediate.sign(&leaf_raw, rng);
    wire::CertChain {
        leaf: Some(wire::NoiseCertificate {
            details: Some(leaf_raw),
            signature: Some(leaf_sig.as_bytes().to_vec()),
        }),
        intermediate: Some(wire::NoiseCertificate {
            details: Some(inter_raw),
            signature: Some(inter_sig.as_bytes().to_vec()),
        }),
    }
    .encode_to_vec()
}

/// Verifies a decrypted certificate chain, with every check in this order:
///
/// 1. it decodes and has both certificates, each with details and a 64-byte signature;
/// 2. the intermediate's signature over its raw details verifies under `trusted_root`;
/// 3. the intermediate's issuer serial is 0 and its key is 32 bytes;
/// 4. the leaf's signature over its raw details verifies under the intermediate's key;
/// 5. `now` lies within the intermediate's validity;
/// 6. the leaf's issuer serial equals the intermediate's serial;
/// 7. the leaf's key equals `server_static` (the key the server proved in the handshake);
/// 8. `now` lies within the leaf's validity.
///
/// Returns the leaf's details.
///
/// # Errors
/// One variant per failed check, see [`Error`].
pub fn verify_cert_chain(
    chain: &[u8],
    trusted_root: &PublicKey,
    server_static: &PublicKey,
    now: u64,
) -> Result<CertDetails, Error> {
    let chain =
        wire::CertChain::decode(chain).map_err(|_| Error::CertChainMalformed("not a CertChain"))?;
    let (inter_raw, inter_sig) = parts(chain.intermediate.as_ref(), "intermediate")?;
    let (leaf_raw, leaf_sig) = parts(chain.leaf.as_ref(), "leaf")?;

    if !trusted_root.verify_slice(inter_raw, inter_sig) {
        return Err(Error::IntermediateSignatureInvalid);
    }
    let inter = decode_details(inter_raw, "intermediate details")?;
    if inter.issuer_serial != ROOT_SERIAL {
        return Err(Error::IntermediateIssuerSerial(inter.issuer_serial));
    }
    if !inter.key.verify_slice(leaf_raw, leaf_sig) {
        return Err(Error::LeafSignatureInvalid);
    }
    check_validity(&inter, CertRole::Intermediate, now)?;

    let leaf = decode_details(leaf_raw, "leaf details")?;
    if leaf.issuer_serial != inter.serial {
        return Err(Error::LeafIssuerSerial {
            expected: inter.serial,
            found: leaf.issuer_serial,
        });
    }
    if !ct_eq(leaf.key.as_bytes(), server_static.as_bytes()) {
        return Err(Error::LeafKeyMismatch);
    }
    check_validity(&leaf, CertRole::Leaf, now)?;
    Ok(leaf)
}

fn parts<'a>(
    cert: Option<&'a wire::NoiseCertificate>,
    which: &'static str,
) -> Result<(&'a [u8], &'a [u8]), Error> {
    let cert = cert.ok_or(Error::CertChainMalformed(which))?;
    let details = cert
        .details
        .as_deref()
        .ok_or(Error::CertChainMalformed(which))?;
    let sig = cert
        .signature
        .as_deref()
        .filter(|s| s.len() == 64)
        .ok_or(Error::CertChainMalformed("signature length"))?;
    Ok((details, sig))
}

fn decode_details(raw: &[u8], which: &'static str) -> Result<CertDetails, Error> {
    let d = wire::Details::decode(raw).map_err(|_| Error::CertChainMalformed(which))?;
    let key = d
        .key
        .as_deref()
        .filter(|k| k.len() == 32)
        .and_then(|k| PublicKey::from_slice(k).ok())
        .ok_or(Error::CertChainMalformed("certificate key"))?;
    // Absent fields read as zero, as in the reference client: a missing notAfter expires.
    Ok(CertDetails {
        serial: d.serial.unwrap_or(0),
        issuer_serial: d.issuer_serial.unwrap_or(0),
        key,
        not_before: d.not_before.unwrap_or(0),
        not_after: d.not_after.unwrap_or(0),
    })
}

fn check_validity(d: &CertDetails, role: CertRole, now: u64) -> Result<(), Error> {
    if now < d.not_before {
        return Err(Error::CertNotYetValid {
            role,
            not_before: d.not_before,
            now,
        });
    }
    if now > d.not_after {
        return Err(Error::CertExpired {
            role,
            not_after: d.not_after,
            now,
        });
    }
    Ok(())
}
