//! Media messages: building image, video, gif, audio, voice-note, document and sticker
//! messages from an upload, and finding the downloadable blob in a received message.

use std::io::Cursor;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use wa_proto::e2e::{
    AudioMessage, DocumentMessage, ImageMessage, Message, StickerMessage, VideoMessage,
};

use crate::transfer::{Downloadable, Media, Progress, Uploaded};
use crate::{Error, MediaType};

/// Width of generated JPEG thumbnails, in pixels (as WhatsApp Web sends them).
pub const THUMBNAIL_WIDTH: u32 = 32;
/// Largest image decoded to make a thumbnail.
const MAX_THUMBNAIL_SOURCE: usize = 64 << 20;

/// What kind of media message to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaKind {
    /// A picture (`imageMessage`).
    Image,
    /// A video (`videoMessage`).
    Video,
    /// A video played as a looping GIF (`videoMessage` with `gifPlayback`).
    Gif,
    /// A round video note (`ptvMessage`).
    Ptv,
    /// An audio file (`audioMessage`).
    Audio,
    /// A voice note (`audioMessage` with `ptt`).
    Voice,
    /// A document (`documentMessage`).
    Document,
    /// A sticker (`stickerMessage`).
    Sticker,
}

impl MediaKind {
    /// The media type its blob is encrypted as.
    pub fn media_type(self) -> MediaType {
        match self {
            Self::Image => MediaType::Image,
            Self::Video => MediaType::Video,
            Self::Gif => MediaType::Gif,
            Self::Ptv => MediaType::Ptv,
            Self::Audio => MediaType::Audio,
            Self::Voice => MediaType::Ptt,
            Self::Document => MediaType::Document,
            Self::Sticker => MediaType::Sticker,
        }
    }

    /// The mimetype used when none is given.
    pub fn default_mimetype(self) -> &'static str {
        match self {
            Self::Image => "image/jpeg",
            Self::Video | Self::Gif | Self::Ptv => "video/mp4",
            Self::Audio => "audio/mpeg",
            Self::Voice => "audio/ogg; codecs=opus",
            Self::Document => "application/octet-stream",
            Self::Sticker => "image/webp",
        }
    }
}

/// Optional fields of a media message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaOptions {
    /// The mimetype (a per-kind default when `None`).
    pub mimetype: Option<String>,
    /// A caption (images, videos, documents).
    pub caption: Option<String>,
    /// The file name (documents).
    pub file_name: Option<String>,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// Duration in seconds (audio, video).
    pub seconds: Option<u32>,
    /// A JPEG thumbnail (generated for images when `None` and the image is in memory).
    pub thumbnail: Option<Vec<u8>>,
    /// Send as view-once (images, videos, voice notes).
    pub view_once: bool,
    /// A voice note's waveform (64 samples).
    pub waveform: Option<Vec<u8>>,
    /// An animated sticker.
    pub animated: bool,
}

/// A small JPEG thumbnail of an image (PNG, JPEG, WebP or GIF), and the image's size.
///
/// # Errors
/// [`Error::InvalidMessage`] when the bytes are not a decodable image or too large.
pub fn jpeg_thumbnail(image_bytes: &[u8]) -> Result<(Vec<u8>, u32, u32), Error> {
    jpeg_thumbnail_of_width(image_bytes, THUMBNAIL_WIDTH)
}

/// [`jpeg_thumbnail`] at `width` pixels.
pub(crate) fn jpeg_thumbnail_of_width(
    image_bytes: &[u8],
    width: u32,
) -> Result<(Vec<u8>, u32, u32), Error> {
    let img = decode_image(image_bytes)?;
    let (w, h) = (img.width(), img.height());
    let thumb = img.thumbnail(width, width.saturating_mul(h.max(1)) / w.max(1));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 50)
        .encode_image(&thumb.to_rgb8())
        .map_err(|_| Error::InvalidMessage("thumbnail encoding failed"))?;
    Ok((out, w, h))
}

/// Decodes an image of at most [`MAX_THUMBNAIL_SOURCE`] bytes and 16,384 pixels a side,
/// allocating at most 256 MiB.
fn decode_image(image_bytes: &[u8]) -> Result<image::DynamicImage, Error> {
    if image_bytes.len() > MAX_THUMBNAIL_SOURCE {
        return Err(Error::InvalidMessage("image too large to process"));
    }
    let mut reader = image::ImageReader::new(Cursor::new(image_bytes))
        .with_guessed_format()
        .map_err(|_| Error::InvalidMessage("unreadable image"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|_| Error::InvalidMessage("undecodable image"))
}

/// The side of a profile picture, in pixels, as Baileys makes them.
pub const PROFILE_PICTURE_SIDE: u32 = 640;

/// A profile (or group, or channel) picture from any decodable image, as Baileys'
/// `generateProfilePicture` makes one: the largest centred square, scaled to `side`
/// pixels a side (e.g. [`PROFILE_PICTURE_SIDE`]), as a JPEG of quality 50.
///
/// # Errors
/// [`Error::InvalidMessage`] when the bytes are not a decodable image, are too large, or
/// `side` is 0.
pub fn profile_picture(image_bytes: &[u8], side: u32) -> Result<Vec<u8>, Error> {
    if side == 0 || side > 4_096 {
        return Err(Error::InvalidMessage("picture side out of range"));
    }
    let img = decode_image(image_bytes)?;
    let (w, h) = (img.width(), img.height());
    let min = w.min(h);
    let square = img.crop_imm((w - min) / 2, (h - min) / 2, min, min);
    let scaled = square.resize_exact(side, side, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 50)
        .encode_image(&scaled.to_rgb8())
        .map_err(|_| Error::InvalidMessage("picture encoding failed"))?;
    Ok(out)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn wrap_view_once(inner: Message) -> Message {
    Message {
        view_once_message: Some(Box::new(wa_proto::e2e::FutureProofMessage {
            message: Some(Box::new(inner)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Builds the media message for an uploaded blob.
pub fn media_message(kind: MediaKind, up: &Uploaded, opts: &MediaOptions) -> Message {
    build(
        kind,
        Blob {
            url: &up.url,
            direct_path: &up.direct_path,
            media_key: Some(&up.media_key),
            file_sha256: &up.info.file_sha256,
            file_enc_sha256: Some(&up.info.file_enc_sha256),
            file_length: up.info.file_length,
        },
        opts,
    )
}

/// The message of a channel post carrying media uploaded unencrypted
/// ([`Media::upload_raw`] with `kind.media_type()`): location, plaintext hash and length,
/// no media key. View-once does not apply to channels and is ignored.
pub fn channel_media_message(
    kind: MediaKind,
    up: &crate::RawUploaded,
    opts: &MediaOptions,
) -> Message {
    let mut opts = opts.clone();
    opts.view_once = false;
    build(
        kind,
        Blob {
            url: &up.url,
            direct_path: &up.direct_path,
            media_key: None,
            file_sha256: &up.file_sha256,
            file_enc_sha256: None,
            file_length: up.file_length,
        },
        &opts,
    )
}

/// Where a blob is and what checks it, as a media message names it.
struct Blob<'a> {
    url: &'a str,
    direct_path: &'a str,
    media_key: Option<&'a [u8; 32]>,
    file_sha256: &'a [u8; 32],
    file_enc_sha256: Option<&'a [u8; 32]>,
    file_length: u64,
}

fn build(kind: MediaKind, blob: Blob<'_>, opts: &MediaOptions) -> Message {
    let mimetype = Some(
        opts.mimetype
            .clone()
            .unwrap_or_else(|| kind.default_mimetype().to_owned()),
    );
    let url = Some(blob.url.to_owned());
    let direct_path = Some(blob.direct_path.to_owned());
    let media_key = blob.media_key.map(|k| k.to_vec());
    let file_sha256 = Some(blob.file_sha256.to_vec());
    let file_enc_sha256 = blob.file_enc_sha256.map(|h| h.to_vec());
    let file_length = Some(blob.file_length);
    let media_key_timestamp = media_key.as_ref().map(|_| unix_now());
    let view_once = opts.view_once.then_some(true);
    let mut m = Message::default();
    match kind {
        MediaKind::Image => {
            m.image_message = Some(Box::new(ImageMessage {
                url,
                mimetype,
                caption: opts.caption.clone(),
                file_sha256,
                file_length,
                height: opts.height,
                width: opts.width,
                media_key,
                file_enc_sha256,
                direct_path,
                media_key_timestamp,
                jpeg_thumbnail: opts.thumbnail.clone(),
                view_once,
                ..Default::default()
            }));
        }
        MediaKind::Video | MediaKind::Gif | MediaKind::Ptv => {
            let v = Box::new(VideoMessage {
                url,
                mimetype,
                file_sha256,
                file_length,
                seconds: opts.seconds,
                media_key,
                caption: opts.caption.clone(),
                gif_playback: (kind == MediaKind::Gif).then_some(true),
                height: opts.height,
                width: opts.width,
                file_enc_sha256,
                direct_path,
                media_key_timestamp,
                jpeg_thumbnail: opts.thumbnail.clone(),
                view_once,
                ..Default::default()
            });
            if kind == MediaKind::Ptv {
                m.ptv_message = Some(v);
            } else {
                m.video_message = Some(v);
            }
        }
        MediaKind::Audio | MediaKind::Voice => {
            m.audio_message = Some(Box::new(AudioMessage {
                url,
                mimetype,
                file_sha256,
                file_length,
                seconds: opts.seconds,
                ptt: Some(kind == MediaKind::Voice),
                media_key,
                file_enc_sha256,
                direct_path,
                media_key_timestamp,
                waveform: opts.waveform.clone(),
                view_once,
                ..Default::default()
            }));
        }
        MediaKind::Document => {
            m.document_message = Some(Box::new(DocumentMessage {
                url,
                mimetype,
                title: opts.file_name.clone(),
                file_sha256,
                file_length,
                media_key,
                file_name: opts.file_name.clone(),
                file_enc_sha256,
                direct_path,
                media_key_timestamp,
                jpeg_thumbnail: opts.thumbnail.clone(),
                caption: opts.caption.clone(),
                ..Default::default()
            }));
        }
        MediaKind::Sticker => {
            m.sticker_message = Some(Box::new(StickerMessage {
                url,
                file_sha256,
                file_enc_sha256,
                media_key,
                mimetype,
                height: opts.height,
                width: opts.width,
                direct_path,
                file_length,
                media_key_timestamp,
                is_animated: Some(opts.animated),
                ..Default::default()
            }));
        }
    }
    // View-once travels in a wrapper too, as WhatsApp clients send it.
    if opts.view_once && matches!(kind, MediaKind::Image | MediaKind::Video | MediaKind::Voice) {
        m = wrap_view_once(m);
    }
    m
}

fn arr32(v: Option<&Vec<u8>>) -> Option<[u8; 32]> {
    v.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
}

/// The message inside the wrappers WhatsApp puts around content (view-once, ephemeral,
/// document-with-caption, ...), at most a few levels deep.
fn unwrap_content(mut m: &Message) -> &Message {
    for _ in 0..4 {
        let inner = m
            .view_once_message
            .as_ref()
            .or(m.view_once_message_v2.as_ref())
            .or(m.ephemeral_message.as_ref())
            .or(m.document_with_caption_message.as_ref())
            .and_then(|f| f.message.as_deref());
        match inner {
            Some(i) => m = i,
            None => break,
        }
    }
    m
}

/// Points the media of `message` at a new direct path and URL (after a re-upload); looks
/// inside the same wrappers as [`downloadable`], at most a few levels deep.
pub(crate) fn set_direct_path(message: &mut Message, path: &str, url: &str) {
    set_direct_path_in(message, path, url, 4);
}

fn set_direct_path_in(m: &mut Message, path: &str, url: &str, depth: u8) {
    if depth > 0 {
        let wrappers = [
            &mut m.view_once_message,
            &mut m.view_once_message_v2,
            &mut m.ephemeral_message,
            &mut m.document_with_caption_message,
        ];
        for w in wrappers {
            if let Some(inner) = w.as_mut().and_then(|f| f.message.as_deref_mut()) {
                set_direct_path_in(inner, path, url, depth - 1);
                return;
            }
        }
    }
    macro_rules! set {
        ($field:expr) => {
            if let Some(x) = $field.as_mut() {
                x.direct_path = Some(path.to_owned());
                x.url = Some(url.to_owned());
                return;
            }
        };
    }
    set!(m.image_message);
    set!(m.video_message);
    set!(m.ptv_message);
    set!(m.audio_message);
    set!(m.document_message);
    set!(m.sticker_message);
    // A sticker pack names its blob by direct path only.
    if let Some(x) = m.sticker_pack_message.as_mut() {
        x.direct_path = Some(path.to_owned());
    }
}

/// Finds the downloadable blob of a media message (image, video, ptv, audio, document,
/// sticker, a whole sticker pack as type [`MediaType::StickerPack`], or a text's
/// full-size link preview image), looking inside view-once,
/// ephemeral and document-with-caption wrappers.
/// `None` when the message has no media or its media key is not 32 bytes.
pub fn downloadable(message: &Message) -> Option<Downloadable> {
    let m = unwrap_content(message);
    macro_rules! pick {
        ($field:expr, $ty:expr) => {
            if let Some(x) = $field.as_ref() {
                let key = arr32(x.media_key.as_ref())?;
                let mut d = Downloadable::new($ty, key, x.direct_path.clone().unwrap_or_default());
                if d.direct_path.as_deref() == Some("") {
                    d.direct_path = None;
                }
                d.url = x.url.clone();
                d.file_enc_sha256 = arr32(x.file_enc_sha256.as_ref());
                d.file_sha256 = arr32(x.file_sha256.as_ref());
                return Some(d);
            }
        };
    }
    pick!(m.image_message, MediaType::Image);
    if let Some(v) = m.video_message.as_ref() {
        let t = if v.gif_playback == Some(true) {
            MediaType::Gif
        } else {
            MediaType::Video
        };
        pick!(m.video_message, t);
    }
    pick!(m.ptv_message, MediaType::Ptv);
    if let Some(a) = m.audio_message.as_ref() {
        let t = if a.ptt == Some(true) {
            MediaType::Ptt
        } else {
            MediaType::Audio
        };
        pick!(m.audio_message, t);
    }
    pick!(m.document_message, MediaType::Document);
    pick!(m.sticker_message, MediaType::Sticker);
    // A sticker pack: one blob holding the whole pack, named by direct path only.
    if let Some(p) = m.sticker_pack_message.as_ref() {
        let key = arr32(p.media_key.as_ref())?;
        let path = p.direct_path.clone().filter(|p| !p.is_empty())?;
        let mut d = Downloadable::new(MediaType::StickerPack, key, path);
        d.file_enc_sha256 = arr32(p.file_enc_sha256.as_ref());
        d.file_sha256 = arr32(p.file_sha256.as_ref());
        return Some(d);
    }
    // A text whose link preview image was uploaded whole.
    if let Some(t) = m.extended_text_message.as_ref()
        && let Some(path) = t.thumbnail_direct_path.as_ref().filter(|p| !p.is_empty())
    {
        let key = arr32(t.media_key.as_ref())?;
        let mut d = Downloadable::new(MediaType::ThumbnailLink, key, path.clone());
        d.file_enc_sha256 = arr32(t.thumbnail_enc_sha256.as_ref());
        d.file_sha256 = arr32(t.thumbnail_sha256.as_ref());
        return Some(d);
    }
    None
}

/// Where an unencrypted blob is and the hash that checks it: the media of a channel post
/// ([`channel_media`]), or any blob by its direct path ([`RawMedia::at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RawMedia {
    /// The full URL, when given.
    pub url: Option<String>,
    /// The direct path, preferred over `url`.
    pub direct_path: Option<String>,
    /// SHA-256 of the bytes; `None` downloads them unchecked.
    pub file_sha256: Option<[u8; 32]>,
}

impl RawMedia {
    /// The unencrypted blob at `direct_path` (starting with one `/`) on the media host,
    /// checked against `file_sha256` when given. Without a hash the bytes are handed
    /// out as the host sends them (whatsmeow's `DownloadMediaWithOnlyPath`), so only
    /// do that for blobs whose integrity something else vouches for.
    pub fn at(direct_path: impl Into<String>, file_sha256: Option<[u8; 32]>) -> Self {
        Self {
            url: None,
            direct_path: Some(direct_path.into()),
            file_sha256,
        }
    }
}

/// The unencrypted media of a channel post's message (image, video, audio, document or
/// sticker with a location and a plaintext hash), `None` when it has none.
pub fn channel_media(message: &Message) -> Option<RawMedia> {
    let m = unwrap_content(message);
    macro_rules! pick {
        ($field:expr) => {
            if let Some(x) = $field.as_ref() {
                return Some(RawMedia {
                    url: x.url.clone().filter(|u| !u.is_empty()),
                    direct_path: x.direct_path.clone().filter(|p| !p.is_empty()),
                    file_sha256: Some(arr32(x.file_sha256.as_ref())?),
                });
            }
        };
    }
    pick!(m.image_message);
    pick!(m.video_message);
    pick!(m.ptv_message);
    pick!(m.audio_message);
    pick!(m.document_message);
    pick!(m.sticker_message);
    None
}

impl Media {
    /// Uploads `reader` as `kind` and returns the media message to send (with
    /// [`MediaOptions`] applied; no thumbnail is generated from a stream).
    ///
    /// # Errors
    /// As [`Media::upload`].
    pub async fn prepare(
        &self,
        kind: MediaKind,
        reader: impl AsyncRead + Unpin,
        opts: &MediaOptions,
        progress: Option<Progress>,
    ) -> Result<Message, Error> {
        let up = self.upload(reader, kind.media_type(), progress).await?;
        let message = media_message(kind, &up, opts);
        if let Some(cache) = &self.inner.uploads {
            cache
                .insert((kind.media_type(), up.info.file_sha256), Arc::new(up))
                .await;
        }
        Ok(message)
    }

    /// [`Media::prepare`] for media in memory: for images (and image documents) without a
    /// thumbnail one is generated, and missing dimensions are filled in. With
    /// [`MediaConfig::upload_cache`](crate::MediaConfig::upload_cache) on, bytes of the
    /// same type uploaded a short while ago are not uploaded again: the message names
    /// the earlier blob (its key, path and hashes), as a forwarded message does.
    ///
    /// # Errors
    /// As [`Media::upload`].
    pub async fn prepare_bytes(
        &self,
        kind: MediaKind,
        bytes: &[u8],
        opts: &MediaOptions,
        progress: Option<Progress>,
    ) -> Result<Message, Error> {
        let mut opts = opts.clone();
        if matches!(kind, MediaKind::Image | MediaKind::Sticker) && opts.thumbnail.is_none() {
            match jpeg_thumbnail(bytes) {
                Ok((thumb, w, h)) => {
                    if kind == MediaKind::Image {
                        opts.thumbnail = Some(thumb);
                    }
                    opts.width.get_or_insert(w);
                    opts.height.get_or_insert(h);
                }
                Err(e) => tracing::debug!("no thumbnail: {e}"),
            }
        }
        if let Some(cache) = &self.inner.uploads {
            let hash: [u8; 32] = Sha256::digest(bytes).into();
            if let Some(up) = cache.get(&(kind.media_type(), hash)).await {
                tracing::debug!(
                    "{:?} of {} bytes uploaded before; reused",
                    kind,
                    bytes.len()
                );
                if let Some(p) = &progress {
                    let len = bytes.len() as u64;
                    p(len, Some(len));
                }
                return Ok(media_message(kind, &up, &opts));
            }
        }
        self.prepare(kind, bytes, &opts, progress).await
    }

    /// Downloads, verifies and decrypts the media of a received message into `writer`.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] when the message has no media; otherwise as
    /// [`Media::download`].
    pub async fn download_message(
        &self,
        message: &Message,
        writer: impl AsyncWrite + Unpin,
        progress: Option<Progress>,
    ) -> Result<u64, Error> {
        let d =
            downloadable(message).ok_or_else(|| Error::InvalidMessage("no media in message"))?;
        self.download(&d, writer, progress).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        // Left half red, right half blue.
        let img = image::RgbImage::from_fn(w, h, |x, _| {
            if x < w / 2 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn profile_pictures_are_centred_squares_of_the_asked_side() {
        let jpeg = profile_picture(&png(300, 100), PROFILE_PICTURE_SIDE).unwrap();
        let img = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)
            .unwrap()
            .to_rgb8();
        assert_eq!(img.dimensions(), (640, 640));
        // The centred 100x100 square of a half-red, half-blue image: red on the left,
        // blue on the right (JPEG is lossy, so compare the dominant channel).
        let left = img.get_pixel(100, 320);
        let right = img.get_pixel(540, 320);
        assert!(left[0] > 200 && left[2] < 60, "{left:?}");
        assert!(right[2] > 200 && right[0] < 60, "{right:?}");
        let small = profile_picture(&png(40, 90), 96).unwrap();
        let img = image::load_from_memory(&small).unwrap();
        assert_eq!((img.width(), img.height()), (96, 96));
        assert!(profile_picture(b"not an image", 640).is_err());
        assert!(profile_picture(&png(10, 10), 0).is_err());
    }

    #[test]
    fn sticker_pack_messages_download_as_sticker_packs() {
        let pack = wa_proto::e2e::StickerPackMessage {
            sticker_pack_id: Some("pack-1".into()),
            media_key: Some(vec![3; 32]),
            file_sha256: Some(vec![4; 32]),
            file_enc_sha256: Some(vec![5; 32]),
            direct_path: Some("/v/t62.15575-24/pack".into()),
            ..Default::default()
        };
        let m = Message {
            sticker_pack_message: Some(Box::new(pack.clone())),
            ..Default::default()
        };
        let d = downloadable(&m).unwrap();
        assert_eq!(d.media_type, MediaType::StickerPack);
        assert_eq!(d.media_key, [3; 32]);
        assert_eq!(
            (d.file_sha256, d.file_enc_sha256),
            (Some([4; 32]), Some([5; 32]))
        );
        assert_eq!(d.direct_path.as_deref(), Some("/v/t62.15575-24/pack"));
        assert_eq!(d.url, None);
        // Inside a wrapper too, and a re-upload moves it.
        let mut wrapped = wrap_view_once(m);
        assert_eq!(downloadable(&wrapped), Some(d));
        set_direct_path(&mut wrapped, "/v/new", "http://h/v/new");
        assert_eq!(
            downloadable(&wrapped).unwrap().direct_path.as_deref(),
            Some("/v/new")
        );
        // Without a 32-byte key or a direct path there is nothing to download.
        for broken in [
            wa_proto::e2e::StickerPackMessage {
                media_key: Some(vec![3; 31]),
                ..pack.clone()
            },
            wa_proto::e2e::StickerPackMessage {
                direct_path: Some(String::new()),
                ..pack.clone()
            },
        ] {
            let m = Message {
                sticker_pack_message: Some(Box::new(broken)),
                ..Default::default()
            };
            assert!(downloadable(&m).is_none());
        }
    }

    #[test]
    fn channel_media_messages_name_the_blob_without_keys() {
        let up = crate::RawUploaded {
            url: "https://mmg.whatsapp.net/v/x".into(),
            direct_path: "/v/x".into(),
            handle: None,
            file_sha256: [7; 32],
            file_length: 42,
        };
        let opts = MediaOptions {
            view_once: true,
            ..Default::default()
        };
        for kind in [
            MediaKind::Image,
            MediaKind::Video,
            MediaKind::Gif,
            MediaKind::Ptv,
            MediaKind::Audio,
            MediaKind::Voice,
            MediaKind::Document,
            MediaKind::Sticker,
        ] {
            let m = channel_media_message(kind, &up, &opts);
            assert!(m.view_once_message_v2.is_none(), "{kind:?}: no view-once");
            let blob = channel_media(&m).unwrap_or_else(|| panic!("{kind:?}"));
            assert_eq!(blob.file_sha256, Some([7; 32]));
            assert_eq!(blob.direct_path.as_deref(), Some("/v/x"));
            assert!(downloadable(&m).is_none(), "{kind:?}: no media key");
        }
        assert!(channel_media(&Message::default()).is_none());
    }
}
