//! wa-media on arbitrary input. The first byte picks the entry point:
//! 0: the bytes as a downloaded blob (ciphertext + 10-byte MAC), fed to the streaming
//!    decryptor and verifier in chunks whose sizes come from the second byte, checked
//!    against expected hashes; a tampered or truncated blob must be refused, never
//!    decrypted, the two streaming paths must agree with the one-shot `decrypt`, and an
//!    `Opener` must give what the decryptor gives for a blob the verifier accepted;
//! 1: a genuine blob (the bytes encrypted with a fixed key) with one byte flipped at a
//!    position from the input: always refused;
//! 2: the bytes as a `mediaretry` notification (a binary node), read with a fixed key.
//! Nothing may panic.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wa_media::{
    Decryptor, Expected, MediaKeys, MediaType, Opener, Verifier, decrypt, encrypt,
    read_media_retry,
};

const MEDIA_KEY: [u8; 32] = [7; 32];

fn streamed(keys: &MediaKeys, blob: &[u8], chunk: usize, expected: &Expected) -> Option<Vec<u8>> {
    let mut dec = Decryptor::new(keys);
    let mut ver = Verifier::new(keys);
    let mut opener = Opener::new(keys);
    let mut out = Vec::new();
    let mut opened = Vec::new();
    for part in blob.chunks(chunk.max(1)) {
        dec.update(part, &mut out);
        ver.update(part);
        opener.update(part, &mut opened);
    }
    let verified = ver.finish(expected).is_ok();
    let decrypted = dec.finish(expected, &mut out).ok().map(|_| out);
    let opened = opener.finish(expected, &mut opened).ok().map(|_| opened);
    assert_eq!(verified, decrypted.is_some(), "verifier and decryptor disagree");
    if verified {
        assert_eq!(opened, decrypted, "opener and decryptor disagree on a verified blob");
    }
    decrypted
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = MediaKeys::expand(&MEDIA_KEY, MediaType::Image);
    match mode % 3 {
        0 => {
            let Some((&chunk, blob)) = rest.split_first() else {
                return;
            };
            let expected = Expected::hashes(None, None);
            let one_shot = decrypt(&keys, blob, &expected).ok();
            let stream = streamed(&keys, blob, usize::from(chunk), &expected);
            assert_eq!(one_shot, stream, "one-shot and streaming decrypt disagree");
        }
        1 => {
            let Some((&at, plain)) = rest.split_first() else {
                return;
            };
            let (mut blob, info) = encrypt(&keys, plain);
            let expected = Expected::hashes(Some(info.file_enc_sha256), Some(info.file_sha256));
            assert_eq!(
                decrypt(&keys, &blob, &expected).ok().as_deref(),
                Some(plain),
                "a genuine blob decrypts"
            );
            let i = usize::from(at) % blob.len();
            blob[i] ^= 0x01;
            assert!(decrypt(&keys, &blob, &expected).is_err(), "a flipped byte is refused");
            assert!(streamed(&keys, &blob, 7, &expected).is_none());
        }
        _ => {
            if let Ok(node) = wa_binary::decode(Bytes::copy_from_slice(rest)) {
                let _ = read_media_retry(&node, &MEDIA_KEY, "3EB0ABCDEF");
            }
        }
    }
});
