//! The sticker service (`GET /sticker?lottie=1&cat=sticker_pack_data&id=<pack>&lg=en` on
//! the media host's address) and sticker packs the phones send.
//!
//! A published pack's stickers are encrypted under fresh media keys (image keys, as
//! WhatsApp's sticker blobs are) and stored on the media host like any upload; the
//! service answers with the JSON array WhatsApp's serves: the pack with every sticker's
//! key and hashes in standard base64, its direct path and URL. An unknown id gets `[]`.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use rand_core::{OsRng, RngCore};
use wa_binary::Jid;
use wa_proto::e2e::{Message, StickerPackMessage};
use zeroize::Zeroizing;

use crate::Error;
use crate::phone_media::{IMAGE_KEYS_INFO, encrypt_media};
use crate::sim::{Shared, unix_now};

/// HKDF info of a whole sticker pack's blob.
pub(crate) const STICKER_PACK_KEYS_INFO: &[u8] = b"WhatsApp Sticker Pack Keys";
/// Most packs the service holds.
const MAX_PACKS: usize = 1024;
/// Longest pack id.
const MAX_ID: usize = 128;
/// Most stickers in a published pack.
const MAX_STICKERS: usize = 64;
/// Largest sticker, and largest answer set with [`crate::Sim::set_sticker_service_answer`].
pub(crate) const MAX_BODY: usize = 16 << 20;

/// One sticker of a pack published with [`crate::Sim::publish_sticker_pack`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimSticker {
    /// The sticker's bytes (a WebP image for real packs; any bytes, at most 16 MiB).
    pub bytes: Vec<u8>,
    /// The emojis it stands for.
    pub emojis: Vec<String>,
}

/// The answers of the sticker service, by pack id.
#[derive(Default)]
pub(crate) struct StickerService {
    answers: HashMap<String, Bytes>,
}

impl StickerService {
    /// The answer for pack `id` (`[]` when none is published).
    pub(crate) fn answer(&self, id: &str) -> Bytes {
        self.answers
            .get(id)
            .cloned()
            .unwrap_or_else(|| Bytes::from_static(b"[]"))
    }

    fn set(&mut self, id: &str, body: Bytes) -> Result<(), Error> {
        if id.is_empty() || id.len() > MAX_ID || body.len() > MAX_BODY {
            return Err(Error::Rejected("pack id or answer out of range".into()));
        }
        if self.answers.len() >= MAX_PACKS && !self.answers.contains_key(id) {
            return Err(Error::Rejected("the sticker service is full".into()));
        }
        self.answers.insert(id.to_owned(), body);
        Ok(())
    }
}

/// Encrypts and stores each sticker and publishes the pack under `id`; returns the
/// stickers' direct paths, in order.
pub(crate) fn publish(
    shared: &Shared,
    id: &str,
    name: &str,
    publisher: &str,
    stickers: &[SimSticker],
) -> Result<Vec<String>, Error> {
    if stickers.len() > MAX_STICKERS
        || stickers
            .iter()
            .any(|s| s.bytes.is_empty() || s.bytes.len() > MAX_BODY)
    {
        return Err(Error::Rejected(
            "at most 64 stickers of 1 byte to 16 MiB".into(),
        ));
    }
    let host = shared.media.hostname().to_owned();
    let mut paths = Vec::with_capacity(stickers.len());
    let mut items = Vec::with_capacity(stickers.len());
    let mut total = 0u64;
    for (i, s) in stickers.iter().enumerate() {
        let mut media_key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(media_key.as_mut());
        let (blob, file_sha, enc_sha) = encrypt_media(&media_key, IMAGE_KEYS_INFO, &s.bytes);
        let direct_path = shared.media.store(&blob)?;
        total += s.bytes.len() as u64;
        items.push(serde_json::json!({
            "media-key": STANDARD.encode(*media_key),
            "enc-file-hash": STANDARD.encode(enc_sha),
            "file-hash": STANDARD.encode(file_sha),
            "direct-path": direct_path,
            "url": format!("http://{host}{direct_path}"),
            "file-size": s.bytes.len(),
            "mimetype": "image/webp",
            "height": 512,
            "width": 512,
            "emojis": s.emojis,
            "accessibility-text": "",
            "handle": format!("{id}-{i}"),
            "preview-webp-id": format!("{id}-preview-{i}"),
        }));
        paths.push(direct_path);
    }
    let pack = serde_json::json!([{
        "sticker-pack-id": id,
        "name": name,
        "publisher": publisher,
        "description": "",
        "file-size": total.to_string(),
        "image-data-hash": "",
        "stickers": items,
        "animated": 0,
        "lottie": 0,
        "preview-image-ids": [],
        "tray-image-id": format!("{id}-tray"),
        "tray-image-preview": "",
    }]);
    shared
        .media
        .stickers()
        .set(id, Bytes::from(pack.to_string().into_bytes()))?;
    Ok(paths)
}

/// Makes the service answer pack `id` with `body` as it is.
pub(crate) fn set_answer(shared: &Shared, id: &str, body: Vec<u8>) -> Result<(), Error> {
    shared.media.stickers().set(id, Bytes::from(body))
}

/// The phone sends a sticker pack: `blob` (the pack's contents, at most 16 MiB) is
/// encrypted under a fresh media key with the sticker-pack label, stored on the media
/// host and sent in a `stickerPackMessage`; kept for re-upload requests.
pub(crate) async fn phone_send_sticker_pack(
    shared: &Shared,
    phone: &str,
    to: &Jid,
    pack_id: &str,
    name: &str,
    blob: &[u8],
) -> Result<(String, Message), Error> {
    if blob.is_empty() || blob.len() > MAX_BODY {
        return Err(Error::Rejected("sticker pack empty or over 16 MiB".into()));
    }
    let mut media_key = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(media_key.as_mut());
    let (enc, file_sha, enc_sha) = encrypt_media(&media_key, STICKER_PACK_KEYS_INFO, blob);
    let direct_path = shared.media.store(&enc)?;
    let message = Message {
        sticker_pack_message: Some(Box::new(StickerPackMessage {
            sticker_pack_id: Some(pack_id.to_owned()),
            name: Some(name.to_owned()),
            publisher: Some(phone.to_owned()),
            file_length: Some(blob.len() as u64),
            file_sha256: Some(file_sha.to_vec()),
            file_enc_sha256: Some(enc_sha.to_vec()),
            media_key: Some(media_key.to_vec()),
            direct_path: Some(direct_path),
            media_key_timestamp: Some(unix_now() as i64),
            sticker_pack_size: Some(blob.len() as u64),
            ..Default::default()
        })),
        ..Default::default()
    };
    let id = crate::e2e::phone_send(shared, phone, to, message.clone()).await?;
    crate::phone_media::keep(shared, phone, &id, media_key, STICKER_PACK_KEYS_INFO, blob);
    Ok((id, message))
}

/// `%XX` escapes undone (and `+` left as it is, as in a query value); `None` for a
/// malformed escape or a result that is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("a%26b%3Dc").as_deref(), Some("a&b=c"));
        assert_eq!(percent_decode("plain-id_1").as_deref(), Some("plain-id_1"));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
        assert_eq!(percent_decode("%+1"), None);
    }
}
