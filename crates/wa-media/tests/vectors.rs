//! Baileys' media vectors: key expansion for every type, fixed encryptions, ranged download.

use serde_json::Value;
use wa_media::{Decryptor, Encryptor, Expected, MediaKeys, MediaType, RangePlan, decrypt, encrypt};

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/media_crypto.json")).unwrap()
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

/// The plaintext of a vector: `plaintextHex`, or for `pattern1000` (given only by its hash)
/// the bytes `(31 * i + 7) mod 256`, checked against `plaintextSha256`.
fn plaintext(e: &Value) -> Vec<u8> {
    let plain = match e.get("plaintextHex") {
        Some(h) => hx(h),
        None => {
            let n = e["fileLength"].as_u64().unwrap();
            (0..n).map(|i| ((31 * i + 7) % 256) as u8).collect()
        }
    };
    use sha2::Digest;
    assert_eq!(
        sha2::Sha256::digest(&plain).to_vec(),
        hx(&e["plaintextSha256"])
    );
    plain
}

fn key32(v: &Value) -> [u8; 32] {
    hx(v).try_into().unwrap()
}

#[test]
fn key_expansion_matches_for_every_type() {
    let v = vectors();
    let media_key = key32(&v["mediaKey"]);
    let table = v["mediaKeyExpansion"].as_object().unwrap();
    // Every type but `sticker-pack`, which Baileys does not list (see
    // `sticker_pack_keys_match_an_independent_implementation`).
    assert_eq!(table.len(), MediaType::ALL.len() - 1);
    for (name, e) in table {
        let t = MediaType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"));
        assert_eq!(t.hkdf_info(), e["info"].as_str().unwrap(), "{name}");
        let k = MediaKeys::expand(&media_key, t);
        assert_eq!(k.iv.to_vec(), hx(&e["iv"]), "{name} iv");
        assert_eq!(
            k.cipher_key.to_vec(),
            hx(&e["cipherKey"]),
            "{name} cipher key"
        );
        assert_eq!(k.mac_key.to_vec(), hx(&e["macKey"]), "{name} mac key");
    }
}

/// The `sticker-pack` type against `vectors/sticker_pack_keys.json`, written by a Python
/// script independent of this crate (see `vectors/NOTE.md`).
#[test]
fn sticker_pack_keys_match_an_independent_implementation() {
    let v: Value = serde_json::from_str(include_str!("vectors/sticker_pack_keys.json")).unwrap();
    let t = MediaType::from_name("sticker-pack").unwrap();
    assert_eq!(t, MediaType::StickerPack);
    assert_eq!(t.hkdf_info(), v["info"].as_str().unwrap());
    assert_eq!(t.upload_path(), Some("/mms/sticker-pack"));
    let x = &v["expansion"];
    let k = MediaKeys::expand(&key32(&x["mediaKey"]), t);
    assert_eq!(k.iv.to_vec(), hx(&x["iv"]));
    assert_eq!(k.cipher_key.to_vec(), hx(&x["cipherKey"]));
    assert_eq!(k.mac_key.to_vec(), hx(&x["macKey"]));
    assert_eq!(k.ref_key.to_vec(), hx(&x["refKey"]));

    let e = &v["encrypted"];
    let keys = MediaKeys::expand(&key32(&e["mediaKey"]), t);
    let plain = hx(&e["plaintextHex"]);
    let (blob, info) = encrypt(&keys, &plain);
    assert_eq!(blob, hx(&e["encHex"]));
    assert_eq!(info.file_sha256.to_vec(), hx(&e["fileSha256"]));
    assert_eq!(info.file_enc_sha256.to_vec(), hx(&e["fileEncSha256"]));
    let expected = Expected::hashes(Some(info.file_enc_sha256), Some(info.file_sha256));
    assert_eq!(decrypt(&keys, &blob, &expected).unwrap(), plain);
    // The same key under the sticker (image) label does not open it.
    let image = MediaKeys::expand(&key32(&e["mediaKey"]), MediaType::Sticker);
    assert!(decrypt(&image, &blob, &expected).is_err());
}

#[test]
fn encryptions_match_byte_for_byte() {
    let v = vectors();
    for e in v["encrypted"].as_array().unwrap() {
        let name = format!("{} {}", e["type"], e["plaintext"]);
        let t = MediaType::from_name(e["type"].as_str().unwrap()).unwrap();
        let keys = MediaKeys::expand(&key32(&e["mediaKey"]), t);
        let plain = plaintext(e);
        let (blob, info) = encrypt(&keys, &plain);
        if let Some(enc) = e.get("encHex") {
            assert_eq!(blob, hx(enc), "{name}");
        }
        assert_eq!(blob.len() as u64, e["encLen"].as_u64().unwrap(), "{name}");
        assert_eq!(info.enc_length, blob.len() as u64, "{name}");
        assert_eq!(
            info.file_length,
            e["fileLength"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(info.file_sha256.to_vec(), hx(&e["fileSha256"]), "{name}");
        assert_eq!(
            info.file_enc_sha256.to_vec(),
            hx(&e["fileEncSha256"]),
            "{name}"
        );
        assert_eq!(info.mac.to_vec(), hx(&e["mac"]), "{name}");
        let expected = Expected::hashes(Some(info.file_enc_sha256), Some(info.file_sha256));
        assert_eq!(decrypt(&keys, &blob, &expected).unwrap(), plain, "{name}");

        // The same bytes through the streaming API one byte at a time.
        let mut enc = Encryptor::new(&keys);
        let mut out = Vec::new();
        for b in &plain {
            enc.update(std::slice::from_ref(b), &mut out);
        }
        let streamed = enc.finish(&mut out);
        assert_eq!(out, blob, "{name} streamed");
        assert_eq!(streamed, info);
        let mut dec = Decryptor::new(&keys);
        let mut back = Vec::new();
        for b in &blob {
            dec.update(std::slice::from_ref(b), &mut back);
        }
        assert_eq!(
            dec.finish(&expected, &mut back).unwrap(),
            plain.len() as u64
        );
        assert_eq!(back, plain, "{name} streamed back");
    }
}

#[test]
fn ranged_download_plan_matches() {
    let v = vectors();
    let r = &v["download"]["ranged"];
    let (start, end) = (
        r["startByte"].as_u64().unwrap(),
        r["endByte"].as_u64().unwrap(),
    );
    let plan = RangePlan::new(start, Some(end));
    assert_eq!(
        plan.range_header().as_deref(),
        Some(r["rangeHeaderSent"].as_str().unwrap())
    );
    // Decrypt that range out of the 1000-byte pattern blob.
    let e = v["encrypted"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["plaintext"] == "pattern1000")
        .unwrap();
    let keys = MediaKeys::expand(&key32(&e["mediaKey"]), MediaType::Image);
    let plain = plaintext(e);
    let (blob, info) = encrypt(&keys, &plain);
    assert_eq!(info.file_enc_sha256.to_vec(), hx(&e["fileEncSha256"]));
    let fetched = &blob[plan.fetch_start as usize..=(plan.fetch_end.unwrap() as usize)];
    let got = plan.decrypt(&keys, fetched).unwrap();
    assert_eq!(got.len() as u64, r["gotLen"].as_u64().unwrap());
    assert_eq!(got, &plain[start as usize..end as usize]);
}
