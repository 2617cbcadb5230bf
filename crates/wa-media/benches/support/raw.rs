//! The raw baseline both the criterion bench and the `cipher_ratio` example measure the
//! media cipher against: AES-256-CBC plus HMAC-SHA256 over the same bytes, in chunks of
//! `CHUNK`, with no hashing of the plaintext or the encrypted file.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, inout::InOutBuf};
use hmac::Mac;
use wa_media::MediaKeys;

/// Bytes per `update` call, as a streaming caller would pass them.
pub(crate) const CHUNK: usize = 64 << 10;

/// Encrypts `buf` in place and returns the HMAC.
pub(crate) fn raw_encrypt(keys: &MediaKeys, buf: &mut [u8]) -> [u8; 32] {
    let mut c = cbc::Encryptor::<aes::Aes256>::new(&keys.cipher_key.into(), &keys.iv.into());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&keys.mac_key).unwrap();
    mac.update(&keys.iv);
    for chunk in buf.chunks_mut(CHUNK) {
        let (blocks, _) = InOutBuf::from(&mut *chunk).into_chunks();
        c.encrypt_blocks_inout_mut(blocks);
        mac.update(chunk);
    }
    mac.finalize().into_bytes().into()
}

/// Decrypts `buf` in place and returns the HMAC of the ciphertext.
pub(crate) fn raw_decrypt(keys: &MediaKeys, buf: &mut [u8]) -> [u8; 32] {
    let mut c = cbc::Decryptor::<aes::Aes256>::new(&keys.cipher_key.into(), &keys.iv.into());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&keys.mac_key).unwrap();
    mac.update(&keys.iv);
    for chunk in buf.chunks_mut(CHUNK) {
        mac.update(chunk);
        let (blocks, _) = InOutBuf::from(&mut *chunk).into_chunks();
        c.decrypt_blocks_inout_mut(blocks);
    }
    mac.finalize().into_bytes().into()
}
