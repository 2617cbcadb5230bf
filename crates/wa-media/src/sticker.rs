//! Sticker packs: the description of a pack as WhatsApp's sticker service gives it
//! (`GET /sticker?lottie=1&cat=sticker_pack_data&id=<pack>&lg=en`, a JSON array of
//! packs), and each sticker in it as an encrypted blob to download.
//!
//! The answer is read up to [`MAX_STICKER_PACK_RESPONSE`] bytes and checked field by
//! field: a wrong type, undecodable base64 or a key or hash that is not 32 bytes is
//! [`Error::InvalidStickerPack`] naming the field, never a panic.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::transfer::{Downloadable, Media, http_err, urlencode};
use crate::{Error, MediaType};

/// Largest sticker-service answer read, in bytes; a larger one is [`Error::TooLarge`].
/// A pack of 30 stickers describes itself in about 20 KiB.
pub const MAX_STICKER_PACK_RESPONSE: usize = 1 << 20;
/// Most stickers taken from one pack (WhatsApp's packs hold at most 30).
pub const MAX_PACK_STICKERS: usize = 256;
/// Longest pack id accepted, in bytes.
const MAX_PACK_ID: usize = 128;
/// How long one fetch of a pack may take, answer included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A sticker pack as the sticker service describes it. Text fields the answer leaves
/// out are empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StickerPack {
    /// The pack's id (`sticker-pack-id`).
    pub id: String,
    /// Its name (`name`).
    pub name: String,
    /// Who made it (`publisher`).
    pub publisher: String,
    /// A description (`description`).
    pub description: String,
    /// The pack's total size in bytes (`file-size`, a decimal string or a number), when
    /// given.
    pub file_size: Option<u64>,
    /// A hash naming the pack's image data (`image-data-hash`, kept as given).
    pub image_data_hash: String,
    /// The stickers, in the service's order (`stickers`).
    pub stickers: Vec<StickerPackItem>,
    /// Whether the stickers are animated (`animated`, `0` or `1`).
    pub animated: bool,
    /// Whether the stickers are Lottie animations (`lottie`, `0` or `1`).
    pub lottie: bool,
    /// Ids of the preview images (`preview-image-ids`).
    pub preview_image_ids: Vec<String>,
    /// Id of the tray icon (`tray-image-id`).
    pub tray_image_id: String,
    /// The tray icon's preview (`tray-image-preview`, kept as given).
    pub tray_image_preview: String,
}

/// One sticker of a [`StickerPack`]: an encrypted blob on the media hosts, downloaded
/// as media type [`MediaType::Sticker`] (the image key label, as for a sticker message)
/// through [`Downloadable::from`]. Byte fields arrive as standard base64.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StickerPackItem {
    /// The blob's media key (`media-key`).
    pub media_key: [u8; 32],
    /// SHA-256 of the encrypted blob (`enc-file-hash`).
    pub file_enc_sha256: [u8; 32],
    /// SHA-256 of the sticker itself (`file-hash`).
    pub file_sha256: [u8; 32],
    /// Where the blob is on the media hosts (`direct-path`).
    pub direct_path: String,
    /// The blob's full URL (`url`), when given.
    pub url: Option<String>,
    /// The sticker's size in bytes (`file-size`), 0 when not given.
    pub file_size: u64,
    /// Its mimetype (`mimetype`, e.g. `image/webp`).
    pub mimetype: String,
    /// Height in pixels (`height`), 0 when not given.
    pub height: u32,
    /// Width in pixels (`width`), 0 when not given.
    pub width: u32,
    /// The emojis it stands for (`emojis`).
    pub emojis: Vec<String>,
    /// A text description for screen readers (`accessibility-text`).
    pub accessibility_text: String,
    /// The sticker's handle (`handle`, kept as given).
    pub handle: String,
    /// Hash of the sticker without its metadata (`sticker-hash-without-meta`), when given.
    pub sticker_hash_without_meta: Option<Vec<u8>>,
    /// Id of its WebP preview (`preview-webp-id`).
    pub preview_webp_id: String,
}

impl std::fmt::Debug for StickerPackItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The media key stays out of logs.
        f.debug_struct("StickerPackItem")
            .field("direct_path", &self.direct_path)
            .field("file_size", &self.file_size)
            .field("mimetype", &self.mimetype)
            .field("emojis", &self.emojis)
            .finish_non_exhaustive()
    }
}

impl From<&StickerPackItem> for Downloadable {
    /// The sticker's blob: type [`MediaType::Sticker`], its key, direct path, URL and
    /// both hashes, so [`Media::download`] verifies it.
    fn from(item: &StickerPackItem) -> Self {
        let mut d = Downloadable::new(MediaType::Sticker, item.media_key, &*item.direct_path)
            .with_hashes(item.file_enc_sha256, item.file_sha256);
        d.url = item.url.clone();
        d
    }
}

/// The URL of pack `pack_id` on the sticker service at `service` (scheme and host, e.g.
/// [`DEFAULT_STICKER_SERVICE`](crate::DEFAULT_STICKER_SERVICE)). The id is
/// percent-encoded, so it stays one query value whatever it holds (`&`, `#`, `=`, ...).
///
/// # Errors
/// [`Error::InvalidPackId`] for an empty id, one over 128 bytes, or one with a character
/// that is not printable ASCII (space and control characters included).
pub fn sticker_pack_url(service: &str, pack_id: &str) -> Result<String, Error> {
    if pack_id.is_empty()
        || pack_id.len() > MAX_PACK_ID
        || !pack_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Error::InvalidPackId);
    }
    Ok(format!(
        "{}/sticker?lottie=1&cat=sticker_pack_data&id={}&lg=en",
        service.trim_end_matches('/'),
        urlencode(pack_id)
    ))
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::InvalidStickerPack(what.to_string())
}

/// Reads the sticker service's answer: a JSON array of packs, of which the first is
/// returned (as the service answers one id with one pack).
///
/// # Errors
/// [`Error::StickerPackNotFound`] for an empty array; [`Error::InvalidStickerPack`] for
/// anything that is not such an array, a field of the wrong type, base64 that does not
/// decode, a media key or hash that is not 32 bytes, a sticker without a direct path,
/// or more than [`MAX_PACK_STICKERS`] stickers; [`Error::TooLarge`] for more than
/// [`MAX_STICKER_PACK_RESPONSE`] bytes.
pub fn parse_sticker_pack(json: &[u8]) -> Result<StickerPack, Error> {
    if json.len() > MAX_STICKER_PACK_RESPONSE {
        return Err(Error::TooLarge(MAX_STICKER_PACK_RESPONSE as u64));
    }
    // serde_json limits nesting (128 levels), so hostile depth is an error too.
    let v: Value = serde_json::from_slice(json).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Array(packs) = v else {
        return Err(bad("the answer is not an array of packs"));
    };
    let first = packs.first().ok_or_else(|| Error::StickerPackNotFound)?;
    let Value::Object(p) = first else {
        return Err(bad("a pack is not an object"));
    };
    let stickers = match p.get("stickers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() > MAX_PACK_STICKERS => {
            return Err(bad(format!("more than {MAX_PACK_STICKERS} stickers")));
        }
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Value::Object(o) => parse_item(o).map_err(|e| bad(format!("stickers[{i}].{e}"))),
                _ => Err(bad(format!("stickers[{i}] is not an object"))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("stickers is not an array")),
    };
    let pack = StickerPack {
        id: text(p, "sticker-pack-id").map_err(bad)?,
        name: text(p, "name").map_err(bad)?,
        publisher: text(p, "publisher").map_err(bad)?,
        description: text(p, "description").map_err(bad)?,
        file_size: number(p, "file-size").map_err(bad)?,
        image_data_hash: text(p, "image-data-hash").map_err(bad)?,
        stickers,
        animated: flag(p, "animated").map_err(bad)?,
        lottie: flag(p, "lottie").map_err(bad)?,
        preview_image_ids: texts(p, "preview-image-ids").map_err(bad)?,
        tray_image_id: text(p, "tray-image-id").map_err(bad)?,
        tray_image_preview: text(p, "tray-image-preview").map_err(bad)?,
    };
    Ok(pack)
}

/// One sticker; the error names the field.
fn parse_item(o: &Map<String, Value>) -> Result<StickerPackItem, String> {
    let direct_path = text(o, "direct-path")?;
    if direct_path.is_empty() {
        return Err("direct-path is missing".into());
    }
    let url = Some(text(o, "url")?).filter(|u| !u.is_empty());
    let small = |k: &str| -> Result<u32, String> {
        number(o, k)?
            .unwrap_or(0)
            .try_into()
            .map_err(|_| format!("{k} is out of range"))
    };
    Ok(StickerPackItem {
        media_key: key32(o, "media-key")?,
        file_enc_sha256: key32(o, "enc-file-hash")?,
        file_sha256: key32(o, "file-hash")?,
        direct_path,
        url,
        file_size: number(o, "file-size")?.unwrap_or(0),
        mimetype: text(o, "mimetype")?,
        height: small("height")?,
        width: small("width")?,
        emojis: texts(o, "emojis")?,
        accessibility_text: text(o, "accessibility-text")?,
        handle: text(o, "handle")?,
        sticker_hash_without_meta: bytes(o, "sticker-hash-without-meta")?,
        preview_webp_id: text(o, "preview-webp-id")?,
    })
}

/// A string field; absent or `null` is empty.
fn text(o: &Map<String, Value>, k: &str) -> Result<String, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{k} is not a string")),
    }
}

/// A list of strings; absent or `null` is empty.
fn texts(o: &Map<String, Value>, k: &str) -> Result<Vec<String>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|e| e.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("{k} holds a value that is not a string")),
        Some(_) => Err(format!("{k} is not an array")),
    }
}

/// A non-negative integer given as a number or a decimal string; absent, `null` or
/// `""` is `None`.
fn number(o: &Map<String, Value>, k: &str) -> Result<Option<u64>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{k} is not a non-negative integer")),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("{k} is not a non-negative integer")),
        Some(_) => Err(format!("{k} is not a number")),
    }
}

/// A flag given as `0`/`1` (or `false`/`true`); absent or `null` is `false`.
fn flag(o: &Map<String, Value>, k: &str) -> Result<bool, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(format!("{k} is not 0 or 1")),
        },
        Some(_) => Err(format!("{k} is not 0 or 1")),
    }
}

/// Bytes in standard base64; absent, `null` or `""` is `None`.
fn bytes(o: &Map<String, Value>, k: &str) -> Result<Option<Vec<u8>>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => STANDARD
            .decode(s)
            .map(Some)
            .map_err(|_| format!("{k} is not base64")),
        Some(_) => Err(format!("{k} is not a base64 string")),
    }
}

/// A required 32-byte key or hash in standard base64.
fn key32(o: &Map<String, Value>, k: &str) -> Result<[u8; 32], String> {
    let b = bytes(o, k)?.ok_or_else(|| format!("{k} is missing"))?;
    <[u8; 32]>::try_from(b.as_slice()).map_err(|_| format!("{k} is not 32 bytes"))
}

impl Media {
    /// Fetches the description of sticker pack `pack_id` from the sticker service
    /// ([`MediaConfig::sticker_service`](crate::MediaConfig::sticker_service)), as
    /// whatsmeow's `FetchStickerPack`: at most [`MAX_STICKER_PACK_RESPONSE`] bytes are
    /// read, within 30 seconds. Download a sticker with
    /// `media.download(&Downloadable::from(&pack.stickers[i]), writer, None)`.
    ///
    /// # Errors
    /// [`Error::InvalidPackId`] (nothing is sent), [`Error::Http`] or [`Error::Gone`] when
    /// the service fails or refuses, [`Error::TooLarge`], and the errors of
    /// [`parse_sticker_pack`].
    pub async fn fetch_sticker_pack(&self, pack_id: &str) -> Result<StickerPack, Error> {
        let url = sticker_pack_url(&self.inner.config.sticker_service, pack_id)?;
        let body = tokio::time::timeout(FETCH_TIMEOUT, self.get_small(&url))
            .await
            .map_err(|_| Error::Http("the sticker service did not answer in time".into()))??;
        parse_sticker_pack(&body)
    }

    /// GETs `url`, reading at most [`MAX_STICKER_PACK_RESPONSE`] bytes of the body.
    async fn get_small(&self, url: &str) -> Result<Vec<u8>, Error> {
        const MAX: usize = MAX_STICKER_PACK_RESPONSE;
        let mut resp = self.get(url, None).await?;
        if resp.content_length().is_some_and(|l| l > MAX as u64) {
            return Err(Error::TooLarge(MAX as u64));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http_err)? {
            if body.len() + chunk.len() > MAX {
                return Err(Error::TooLarge(MAX as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    /// A pack as the sticker service answers it (every field whatsmeow's
    /// `types.StickerPack` names; values made up, keys and hashes are SHA-256 of labels).
    const SAMPLE: &str = r#"[{
        "sticker-pack-id": "4f9a6c1e-2b7d-4e55-9a01-0c1d2e3f4a5b",
        "name": "Cuppy",
        "publisher": "WhatsApp",
        "description": "A cup of coffee with feelings",
        "file-size": "123456",
        "image-data-hash": "ZGF0YS1oYXNo",
        "animated": 1,
        "lottie": 0,
        "preview-image-ids": ["1111", "2222"],
        "tray-image-id": "tray-3333",
        "tray-image-preview": "https://static.whatsapp.net/sticker?img=tray-3333",
        "stickers": [
            {
                "media-key": "Rz9pEr5Jt19P4OlgR9tLt2t/KSyLaqX/OI5zJVW9h6I=",
                "enc-file-hash": "km1Y4cwxxw3pzBytlOAKEaRg2b5YAU3Ux+X0VE78C80=",
                "file-hash": "tf52+8b+p7s1VBeQ3BRTJ6iATSSPJTgERAdu3gohegU=",
                "direct-path": "/v/t62.15575-24/11111_22222_n.enc?ccb=11-4&oh=01_AQ&oe=6700AAAA",
                "url": "https://mmg.whatsapp.net/v/t62.15575-24/11111_22222_n.enc?ccb=11-4",
                "file-size": 20480,
                "mimetype": "image/webp",
                "height": 512,
                "width": 512,
                "emojis": ["☕", "😊"],
                "accessibility-text": "A happy cup",
                "handle": "h-1",
                "sticker-hash-without-meta": "AAAAAAAAAAAAAAAAAAAAAA==",
                "preview-webp-id": "p-1"
            },
            {
                "media-key": "hIONmxnOV+7Cbbj4/Rv/65t4S/RwcPLe5Io72/9SLTM=",
                "enc-file-hash": "DrjVskC6gFDe/umgseF4wUfhypE8YBwqVMEVtUz32ew=",
                "file-hash": "2ET+TnfDAjymrw8+kNC67p6V/p5X7d0iYKf/rjRMXjo=",
                "direct-path": "/v/t62.15575-24/33333_44444_n.enc?ccb=11-4",
                "mimetype": "image/webp",
                "emojis": []
            }
        ]
    }]"#;

    fn sha(label: &str) -> [u8; 32] {
        Sha256::digest(label.as_bytes()).into()
    }

    /// `SAMPLE` with one text replaced.
    fn with(from: &str, to: &str) -> String {
        assert!(SAMPLE.contains(from), "{from}");
        SAMPLE.replacen(from, to, 1)
    }

    #[test]
    fn a_real_shaped_answer_gives_every_field() {
        let p = parse_sticker_pack(SAMPLE.as_bytes()).unwrap();
        assert_eq!(p.id, "4f9a6c1e-2b7d-4e55-9a01-0c1d2e3f4a5b");
        assert_eq!(
            (p.name.as_str(), p.publisher.as_str()),
            ("Cuppy", "WhatsApp")
        );
        assert_eq!(p.description, "A cup of coffee with feelings");
        assert_eq!(p.file_size, Some(123_456));
        assert_eq!(p.image_data_hash, "ZGF0YS1oYXNo");
        assert!(p.animated && !p.lottie);
        assert_eq!(p.preview_image_ids, ["1111", "2222"]);
        assert_eq!(p.tray_image_id, "tray-3333");
        assert!(p.tray_image_preview.ends_with("img=tray-3333"));
        assert_eq!(p.stickers.len(), 2);

        let s = &p.stickers[0];
        assert_eq!(s.media_key, sha("mk1"));
        assert_eq!(s.file_enc_sha256, sha("enc1"));
        assert_eq!(s.file_sha256, sha("fh1"));
        assert!(
            s.direct_path
                .starts_with("/v/t62.15575-24/11111_22222_n.enc?")
        );
        assert!(
            s.url
                .as_deref()
                .unwrap()
                .starts_with("https://mmg.whatsapp.net/")
        );
        assert_eq!((s.file_size, s.width, s.height), (20_480, 512, 512));
        assert_eq!(s.mimetype, "image/webp");
        assert_eq!(s.emojis, ["☕", "😊"]);
        assert_eq!(s.accessibility_text, "A happy cup");
        assert_eq!(s.handle, "h-1");
        assert_eq!(s.sticker_hash_without_meta.as_deref(), Some(&[0u8; 16][..]));
        assert_eq!(s.preview_webp_id, "p-1");
        // The key stays out of Debug output.
        assert!(!format!("{s:?}").contains("media_key"));

        // Optional fields left out are empty.
        let t = &p.stickers[1];
        assert_eq!(t.media_key, sha("mk2"));
        assert_eq!((t.url.as_ref(), t.file_size, t.width), (None, 0, 0));
        assert!(t.emojis.is_empty() && t.sticker_hash_without_meta.is_none());

        // Each sticker downloads as an image-keyed sticker blob with both hashes.
        let d = Downloadable::from(s);
        assert_eq!(d.media_type, MediaType::Sticker);
        assert_eq!(d.media_type.hkdf_info(), "WhatsApp Image Keys");
        assert_eq!(d.media_key, sha("mk1"));
        assert_eq!(d.direct_path.as_deref(), Some(s.direct_path.as_str()));
        assert_eq!(d.url, s.url);
        assert_eq!(
            (d.file_enc_sha256, d.file_sha256),
            (Some(sha("enc1")), Some(sha("fh1")))
        );
        assert_eq!(Downloadable::from(t).url, None);
    }

    #[test]
    fn the_first_of_several_packs_is_taken_and_numbers_may_be_strings() {
        let two = format!(
            "[{}, {{\"name\": \"second\"}}]",
            &SAMPLE[1..SAMPLE.len() - 1]
        );
        assert_eq!(parse_sticker_pack(two.as_bytes()).unwrap().name, "Cuppy");
        let p = parse_sticker_pack(
            with(r#""file-size": "123456""#, r#""file-size": 123456"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(p.file_size, Some(123_456));
        let p =
            parse_sticker_pack(with(r#""height": 512"#, r#""height": "512""#).as_bytes()).unwrap();
        assert_eq!(p.stickers[0].height, 512);
        let p = parse_sticker_pack(br#"[{"name":"bare"}]"#).unwrap();
        assert_eq!(
            (p.name.as_str(), p.stickers.len(), p.file_size),
            ("bare", 0, None)
        );
    }

    #[test]
    fn hostile_answers_are_typed_errors() {
        let invalid = |body: &[u8]| match parse_sticker_pack(body) {
            Err(Error::InvalidStickerPack(why)) => why,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
        };
        // Not JSON, truncated, not an array, an array of something else.
        for body in [
            &b""[..],
            b"<html>",
            &SAMPLE.as_bytes()[..SAMPLE.len() / 2],
            b"{\"sticker-pack-id\":\"x\"}",
            b"\"pack\"",
            b"[1]",
            b"[null]",
            b"[[]]",
            b"\xff\xfe[",
        ] {
            invalid(body);
        }
        // Deep nesting is refused by the parser's depth limit, not the stack.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        invalid(deep.as_bytes());
        let deep_obj = format!(
            "[{{\"name\":\"x\",\"extra\":{}1{}}}]",
            "{\"a\":".repeat(50_000),
            "}".repeat(50_000)
        );
        invalid(deep_obj.as_bytes());

        // Wrong base64, wrong length, missing keys; the error names the field.
        let cases = [
            (
                "Rz9pEr5Jt19P4OlgR9tLt2t/KSyLaqX/OI5zJVW9h6I=",
                "Rz9p!!!not base64",
                "stickers[0].media-key is not base64",
            ),
            (
                "Rz9pEr5Jt19P4OlgR9tLt2t/KSyLaqX/OI5zJVW9h6I=",
                "Rz9pEr5Jt19P4OlgR9tLt2t_KSyLaqX_OI5zJVW9h6I=",
                "stickers[0].media-key is not base64",
            ),
            (
                "Rz9pEr5Jt19P4OlgR9tLt2t/KSyLaqX/OI5zJVW9h6I=",
                "AAAA",
                "stickers[0].media-key is not 32 bytes",
            ),
            (
                "Rz9pEr5Jt19P4OlgR9tLt2t/KSyLaqX/OI5zJVW9h6I=",
                "",
                "stickers[0].media-key is missing",
            ),
            (
                "km1Y4cwxxw3pzBytlOAKEaRg2b5YAU3Ux+X0VE78C80=",
                "km1Y4",
                "stickers[0].enc-file-hash is not base64",
            ),
            (
                "2ET+TnfDAjymrw8+kNC67p6V/p5X7d0iYKf/rjRMXjo=",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "stickers[1].file-hash is not 32 bytes",
            ),
            (
                "/v/t62.15575-24/33333_44444_n.enc?ccb=11-4",
                "",
                "stickers[1].direct-path is missing",
            ),
            (
                "AAAAAAAAAAAAAAAAAAAAAA==",
                "%%%",
                "stickers[0].sticker-hash-without-meta is not base64",
            ),
        ];
        for (from, to, why) in cases {
            assert_eq!(invalid(with(from, to).as_bytes()), why, "{to}");
        }
        // Fields of the wrong type or out of range.
        let cases = [
            (r#""name": "Cuppy""#, r#""name": 7"#, "name is not a string"),
            (
                r#""file-size": "123456""#,
                r#""file-size": "-1""#,
                "file-size is not a non-negative integer",
            ),
            (
                r#""file-size": "123456""#,
                r#""file-size": 1e400"#,
                "not JSON",
            ),
            (
                r#""file-size": "123456""#,
                r#""file-size": 1.5"#,
                "file-size is not a non-negative integer",
            ),
            (
                r#""animated": 1"#,
                r#""animated": 2"#,
                "animated is not 0 or 1",
            ),
            (
                r#""animated": 1"#,
                r#""animated": "yes""#,
                "animated is not 0 or 1",
            ),
            (
                r#""height": 512"#,
                r#""height": 99999999999"#,
                "stickers[0].height is out of range",
            ),
            (
                r#"["1111", "2222"]"#,
                r#"["1111", 2222]"#,
                "preview-image-ids holds a value that is not a string",
            ),
            (
                r#""emojis": []"#,
                r#""emojis": "☕""#,
                "stickers[1].emojis is not an array",
            ),
            (
                r#""media-key": "Rz9p"#,
                r#""media-key": 5, "x": "Rz9p"#,
                "stickers[0].media-key is not a base64 string",
            ),
        ];
        for (from, to, why) in cases {
            let got = invalid(with(from, to).as_bytes());
            assert!(got.starts_with(why), "{to}: {got}");
        }
        let not_objects = r#"[{"stickers": [1]}]"#;
        assert_eq!(
            invalid(not_objects.as_bytes()),
            "stickers[0] is not an object"
        );
        assert_eq!(
            invalid(br#"[{"stickers": {}}]"#),
            "stickers is not an array"
        );
        let many = format!(
            "[{{\"stickers\": [{}{{}}]}}]",
            "{},".repeat(MAX_PACK_STICKERS)
        );
        assert!(invalid(many.as_bytes()).starts_with("more than"));

        // An empty array is "not found"; an oversized answer is too large.
        assert!(matches!(
            parse_sticker_pack(b"[]"),
            Err(Error::StickerPackNotFound)
        ));
        assert!(matches!(
            parse_sticker_pack(b" [ ] "),
            Err(Error::StickerPackNotFound)
        ));
        let huge = vec![b' '; MAX_STICKER_PACK_RESPONSE + 1];
        assert!(matches!(parse_sticker_pack(&huge), Err(Error::TooLarge(_))));
    }

    #[test]
    fn pack_ids_stay_one_query_value() {
        let base = "https://static.whatsapp.net";
        assert_eq!(
            sticker_pack_url(base, "4f9a6c1e-2b7d").unwrap(),
            "https://static.whatsapp.net/sticker?lottie=1&cat=sticker_pack_data&id=4f9a6c1e-2b7d&lg=en"
        );
        assert_eq!(
            sticker_pack_url("http://127.0.0.1:5000/", "a.b_c~d").unwrap(),
            "http://127.0.0.1:5000/sticker?lottie=1&cat=sticker_pack_data&id=a.b_c~d&lg=en"
        );
        // Characters that would add a parameter, end the query or escape are encoded.
        assert!(
            sticker_pack_url(base, "x&lg=fr#frag/../%2F?+")
                .unwrap()
                .ends_with("&id=x%26lg%3Dfr%23frag%2F..%2F%252F%3F%2B&lg=en")
        );
        // Ids that cannot be pack ids are refused before any request.
        let long = "a".repeat(129);
        for id in [
            "",
            "a b",
            "a\r\nHost: evil",
            "a\0",
            "caf\u{e9}",
            "\u{202e}x",
            &long,
        ] {
            assert!(
                matches!(sticker_pack_url(base, id), Err(Error::InvalidPackId)),
                "{id:?}"
            );
        }
        assert!(sticker_pack_url(base, &"a".repeat(128)).is_ok());
    }
}
