//! Streaming encryption and verified decryption: any chunking, every tampering.

use proptest::prelude::*;
use wa_media::{
    Decryptor, Encryptor, Error, Expected, MAC_LEN, MediaKeys, MediaType, Opener, RangePlan,
    Verifier, decrypt, decrypt_parallel, encrypt,
};

fn keys() -> MediaKeys {
    MediaKeys::expand(&[42u8; 32], MediaType::Video)
}

fn chunked<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    for &c in cuts {
        let c = c.min(rest.len());
        let (a, b) = rest.split_at(c);
        out.push(a);
        rest = b;
    }
    out.push(rest);
    out
}

proptest! {
    #[test]
    fn any_chunking_gives_the_same_blob(
        plain in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(0usize..300, 0..20),
    ) {
        let k = keys();
        let (blob, info) = encrypt(&k, &plain);
        let mut enc = Encryptor::new(&k);
        let mut out = Vec::new();
        for c in chunked(&plain, &cuts) {
            enc.update(c, &mut out);
        }
        prop_assert_eq!(enc.finish(&mut out), info.clone());
        prop_assert_eq!(&out, &blob);

        let expected = Expected::hashes(Some(info.file_enc_sha256), Some(info.file_sha256));
        let mut dec = Decryptor::new(&k);
        let mut back = Vec::new();
        let mut ver = Verifier::new(&k);
        for c in chunked(&blob, &cuts) {
            dec.update(c, &mut back);
            ver.update(c);
        }
        prop_assert!(ver.finish(&expected).is_ok());
        prop_assert_eq!(dec.finish(&expected, &mut back).unwrap(), plain.len() as u64);
        prop_assert_eq!(&back, &plain);

        let mut opener = Opener::new(&k);
        let mut opened = Vec::new();
        for c in chunked(&blob, &cuts) {
            opener.update(c, &mut opened);
        }
        prop_assert_eq!(opener.finish(&expected, &mut opened).unwrap(), plain.len() as u64);
        prop_assert_eq!(opened, plain);
    }

    #[test]
    fn every_flipped_byte_is_refused(
        plain in proptest::collection::vec(any::<u8>(), 0..300),
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let k = keys();
        let (mut blob, info) = encrypt(&k, &plain);
        let i = pos.index(blob.len());
        blob[i] ^= 1 << bit;
        // The MAC alone catches it, whatever else is expected.
        prop_assert!(decrypt(&k, &blob, &Expected::default()).is_err());
        let expected = Expected::hashes(Some(info.file_enc_sha256), Some(info.file_sha256));
        prop_assert!(decrypt(&k, &blob, &expected).is_err());
    }

    #[test]
    fn any_range_decrypts_to_the_plaintext_slice(
        plain in proptest::collection::vec(any::<u8>(), 1..2000),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
        open in any::<bool>(),
    ) {
        let k = keys();
        let (blob, _) = encrypt(&k, &plain);
        let (mut s, mut e) = (a.index(plain.len()), b.index(plain.len() + 1));
        if s > e { std::mem::swap(&mut s, &mut e); }
        let plan = RangePlan::new(s as u64, (!open).then_some(e as u64));
        let last = plan.fetch_end.map_or(blob.len() - 1, |f| (f as usize).min(blob.len() - 1));
        let got = plan.decrypt(&k, &blob[plan.fetch_start as usize..=last]).unwrap();
        let want = if open { &plain[s..] } else { &plain[s..e] };
        prop_assert_eq!(got, want);
    }
}

#[test]
fn each_tampering_has_its_own_error() {
    let k = keys();
    let plain = b"the quick brown fox jumps over the lazy dog".repeat(10);
    let (blob, info) = encrypt(&k, &plain);
    let expected = Expected::hashes(Some(info.file_enc_sha256), Some(info.file_sha256));

    let mut ct = blob.clone();
    ct[5] ^= 0x80;
    assert!(matches!(
        decrypt(&k, &ct, &expected),
        Err(Error::MacMismatch)
    ));

    let mut mac = blob.clone();
    let n = mac.len();
    mac[n - 1] ^= 1;
    assert!(matches!(
        decrypt(&k, &mac, &expected),
        Err(Error::MacMismatch)
    ));

    let mut wrong_enc = expected.clone();
    wrong_enc.file_enc_sha256.as_mut().unwrap()[0] ^= 1;
    assert!(matches!(
        decrypt(&k, &blob, &wrong_enc),
        Err(Error::EncHashMismatch)
    ));

    let mut wrong_plain = expected.clone();
    wrong_plain.file_sha256.as_mut().unwrap()[31] ^= 1;
    assert!(matches!(
        decrypt(&k, &blob, &wrong_plain),
        Err(Error::HashMismatch)
    ));

    assert!(matches!(
        decrypt(&k, &blob[..blob.len() - 3], &expected),
        Err(Error::Truncated)
    ));
    assert!(matches!(
        decrypt(&k, &blob[..MAC_LEN], &expected),
        Err(Error::Truncated)
    ));
    assert!(matches!(decrypt(&k, &[], &expected), Err(Error::Truncated)));

    let other = MediaKeys::expand(&[42u8; 32], MediaType::Image);
    assert!(matches!(
        decrypt(&other, &blob, &expected),
        Err(Error::MacMismatch)
    ));
}

#[test]
fn bad_padding_under_a_valid_mac_is_refused() {
    use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
    use hmac::Mac;
    let k = keys();
    // One block whose last byte claims 17 bytes of padding, with a correct MAC.
    let mut block = [0u8; 16];
    block[15] = 17;
    let ct = cbc::Encryptor::<aes::Aes256>::new(&k.cipher_key.into(), &k.iv.into())
        .encrypt_padded_vec_mut::<NoPadding>(&block);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&k.mac_key).unwrap();
    mac.update(&k.iv);
    mac.update(&ct);
    let tag = mac.finalize().into_bytes();
    let mut blob = ct.clone();
    blob.extend_from_slice(&tag[..MAC_LEN]);
    assert!(matches!(
        decrypt(&k, &blob, &Expected::default()),
        Err(Error::BadPadding)
    ));
}

#[test]
fn the_parallel_decrypt_gives_the_verdicts_of_one_pass_on_a_large_blob() {
    let k = keys();
    let plain: Vec<u8> = (0..(3 << 19) + 5).map(|i| (i * 7 + 3) as u8).collect();
    let (blob, info) = encrypt(&k, &plain);
    let expected = Expected::hashes(Some(info.file_enc_sha256), Some(info.file_sha256));
    assert!(decrypt_parallel(&k, &blob, &expected).unwrap() == plain);

    let mut ct = blob.clone();
    ct[1 << 20] ^= 0x10;
    let mut wrong_enc = expected.clone();
    wrong_enc.file_enc_sha256.as_mut().unwrap()[3] ^= 1;
    let mut wrong_plain = expected.clone();
    wrong_plain.file_sha256.as_mut().unwrap()[3] ^= 1;
    // Both hashes wrong: the encrypted-file hash is reported, as one pass reports it.
    let mut both = wrong_enc.clone();
    both.file_sha256 = wrong_plain.file_sha256;
    let cases: [(&[u8], &Expected); 6] = [
        (&ct, &expected),
        (&blob, &wrong_enc),
        (&blob, &wrong_plain),
        (&blob, &both),
        (&blob[..blob.len() - 1], &expected),
        (&blob[..blob.len() - 16], &expected),
    ];
    let want = [
        "MacMismatch",
        "EncHashMismatch",
        "HashMismatch",
        "EncHashMismatch",
        "Truncated",
        "MacMismatch",
    ];
    for ((b, e), want) in cases.into_iter().zip(want) {
        let one = decrypt(&k, b, e).unwrap_err();
        let two = decrypt_parallel(&k, b, e).unwrap_err();
        assert_eq!(format!("{one:?}"), want);
        assert_eq!(format!("{two:?}"), want);
    }
}
