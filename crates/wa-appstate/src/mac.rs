use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};
use zeroize::Zeroizing;

use crate::Operation;

type HmacSha512 = Hmac<Sha512>;
type HmacSha256 = Hmac<Sha256>;
type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// The value MAC: the first 32 bytes of HMAC-SHA512(value-MAC key, operation byte ||
/// key id || IV || ciphertext || u64 big-endian (key id length + 1)).
pub fn value_mac(
    value_mac_key: &[u8; 32],
    operation: Operation,
    key_id: &[u8],
    iv_and_ciphertext: &[u8],
) -> [u8; 32] {
    // invariant: HMAC takes keys of any length, so construction cannot fail.
    let mut mac = <HmacSha512 as Mac>::new_from_slice(value_mac_key)
        .unwrap_or_else(|_| unreachable!("invariant: HMAC takes any key length"));
    mac.update(&[operation.mac_byte()]);
    mac.update(key_id);
    mac.update(iv_and_ciphertext);
    mac.update(&(key_id.len() as u64 + 1).to_be_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 32];
    out.copy_from_slice(&full[..32]);
    out
}

/// The index MAC: HMAC-SHA256(index key, index JSON).
pub fn index_mac(index_key: &[u8; 32], index_json: &[u8]) -> [u8; 32] {
    wa_crypto::hmac_sha256(index_key, index_json)
}

/// The snapshot MAC: HMAC-SHA256(snapshot-MAC key, LTHash || u64 BE version || name).
pub fn snapshot_mac(
    snapshot_mac_key: &[u8; 32],
    lt_hash: &[u8; 128],
    version: u64,
    collection: &str,
) -> [u8; 32] {
    wa_crypto::hmac_sha256_parts(
        snapshot_mac_key,
        &[lt_hash, &version.to_be_bytes(), collection.as_bytes()],
    )
}

/// The patch MAC: HMAC-SHA256(patch-MAC key, snapshot MAC || each value MAC in order ||
/// u64 BE version || name).
pub fn patch_mac<'a>(
    patch_mac_key: &[u8; 32],
    snapshot_mac: &[u8],
    value_macs: impl IntoIterator<Item = &'a [u8]>,
    version: u64,
    collection: &str,
) -> [u8; 32] {
    // invariant: HMAC takes keys of any length, so construction cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(patch_mac_key)
        .unwrap_or_else(|_| unreachable!("invariant: HMAC takes any key length"));
    mac.update(snapshot_mac);
    for v in value_macs {
        mac.update(v);
    }
    mac.update(&version.to_be_bytes());
    mac.update(collection.as_bytes());
    mac.finalize().into_bytes().into()
}

/// AES-256-CBC with PKCS#7 padding; returns IV || ciphertext.
pub(crate) fn encrypt_value(key: &[u8; 32], iv: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
    let ct = Aes256CbcEnc::new(key.into(), iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let mut out = Vec::with_capacity(16 + ct.len());
    out.extend_from_slice(iv);
    out.extend_from_slice(&ct);
    out
}

/// Decrypts IV || ciphertext; `None` when the length or the padding is wrong.
pub(crate) fn decrypt_value(key: &[u8; 32], iv_and_ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if iv_and_ct.len() < 32 || !iv_and_ct.len().is_multiple_of(16) {
        return None;
    }
    let (iv, ct) = iv_and_ct.split_at(16);
    let iv: &[u8; 16] = iv.try_into().ok()?;
    Aes256CbcDec::new(key.into(), iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ct)
        .ok()
        .map(Zeroizing::new)
}
