//! Media types and the keys expanded from a media key.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// What a media blob is; decides the key-expansion label and the upload path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaType {
    /// Images.
    Image,
    /// Videos.
    Video,
    /// GIFs (videos played looped).
    Gif,
    /// Round video notes.
    Ptv,
    /// Audio files.
    Audio,
    /// Voice notes.
    Ptt,
    /// Documents.
    Document,
    /// Stickers.
    Sticker,
    /// Profile pictures.
    ProfilePicture,
    /// Product images.
    Product,
    /// Catalog product images.
    ProductCatalogImage,
    /// Business cover photos.
    BizCoverPhoto,
    /// Payment backgrounds.
    PaymentBackground,
    /// Document thumbnails.
    ThumbnailDocument,
    /// Image thumbnails.
    ThumbnailImage,
    /// Video thumbnails.
    ThumbnailVideo,
    /// Link-preview thumbnails.
    ThumbnailLink,
    /// History-sync blobs.
    History,
    /// App-state external blobs (mutations and snapshots).
    AppState,
    /// A whole sticker pack sent in a `stickerPackMessage` (MMS type `sticker-pack`).
    /// The stickers of a pack fetched from the sticker service are [`MediaType::Sticker`].
    StickerPack,
}

impl MediaType {
    /// Every media type.
    pub const ALL: [MediaType; 20] = [
        Self::Image,
        Self::Video,
        Self::Gif,
        Self::Ptv,
        Self::Audio,
        Self::Ptt,
        Self::Document,
        Self::Sticker,
        Self::ProfilePicture,
        Self::Product,
        Self::ProductCatalogImage,
        Self::BizCoverPhoto,
        Self::PaymentBackground,
        Self::ThumbnailDocument,
        Self::ThumbnailImage,
        Self::ThumbnailVideo,
        Self::ThumbnailLink,
        Self::History,
        Self::AppState,
        Self::StickerPack,
    ];

    /// The name Baileys and whatsmeow use (`image`, `ptt`, `md-app-state`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Gif => "gif",
            Self::Ptv => "ptv",
            Self::Audio => "audio",
            Self::Ptt => "ptt",
            Self::Document => "document",
            Self::Sticker => "sticker",
            Self::ProfilePicture => "ppic",
            Self::Product => "product",
            Self::ProductCatalogImage => "product-catalog-image",
            Self::BizCoverPhoto => "biz-cover-photo",
            Self::PaymentBackground => "payment-bg-image",
            Self::ThumbnailDocument => "thumbnail-document",
            Self::ThumbnailImage => "thumbnail-image",
            Self::ThumbnailVideo => "thumbnail-video",
            Self::ThumbnailLink => "thumbnail-link",
            Self::History => "md-msg-hist",
            Self::AppState => "md-app-state",
            Self::StickerPack => "sticker-pack",
        }
    }

    /// Parses [`MediaType::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The HKDF info string of the key expansion (`WhatsApp Image Keys`, ...).
    pub fn hkdf_info(self) -> &'static str {
        match self {
            Self::Image | Self::Sticker | Self::Product | Self::BizCoverPhoto => {
                "WhatsApp Image Keys"
            }
            Self::Video | Self::Gif | Self::Ptv => "WhatsApp Video Keys",
            Self::Audio | Self::Ptt => "WhatsApp Audio Keys",
            Self::Document => "WhatsApp Document Keys",
            // Both have an empty label, hence the double space.
            Self::ProfilePicture | Self::ProductCatalogImage => "WhatsApp  Keys",
            Self::PaymentBackground => "WhatsApp Payment Background Keys",
            Self::ThumbnailDocument => "WhatsApp Document Thumbnail Keys",
            Self::ThumbnailImage => "WhatsApp Image Thumbnail Keys",
            Self::ThumbnailVideo => "WhatsApp Video Thumbnail Keys",
            Self::ThumbnailLink => "WhatsApp Link Thumbnail Keys",
            Self::History => "WhatsApp History Keys",
            Self::AppState => "WhatsApp App State Keys",
            Self::StickerPack => "WhatsApp Sticker Pack Keys",
        }
    }

    /// The upload path on a media host (`/mms/image`, ...); `None` for types that are
    /// not uploaded by clients through the media hosts.
    pub fn upload_path(self) -> Option<&'static str> {
        Some(match self {
            Self::Image | Self::Sticker | Self::ThumbnailLink => "/mms/image",
            Self::Video | Self::Gif | Self::Ptv => "/mms/video",
            Self::Audio | Self::Ptt => "/mms/audio",
            Self::Document => "/mms/document",
            Self::ProductCatalogImage => "/product/image",
            Self::BizCoverPhoto => "/pps/biz-cover-photo",
            Self::History => "/mms/md-msg-hist",
            Self::AppState => "/mms/md-app-state",
            Self::StickerPack => "/mms/sticker-pack",
            _ => return None,
        })
    }
}

/// The keys of one media blob: IV, AES-256 key, HMAC-SHA256 key (and the unused ref key),
/// expanded with HKDF-SHA256 from the 32-byte media key. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MediaKeys {
    /// The CBC IV.
    pub iv: [u8; 16],
    /// The AES-256 key.
    pub cipher_key: [u8; 32],
    /// The HMAC-SHA256 key.
    pub mac_key: [u8; 32],
    /// The reference key (part of the expansion; not used for media).
    pub ref_key: [u8; 32],
}

impl std::fmt::Debug for MediaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaKeys(..)")
    }
}

impl MediaKeys {
    /// Expands `media_key` for `media_type` (112 bytes of HKDF-SHA256, zero salt).
    pub fn expand(media_key: &[u8; 32], media_type: MediaType) -> Self {
        let mut out = zeroize::Zeroizing::new([0u8; 112]);
        // invariant: 112 bytes is far below HKDF-SHA256's 8160-byte limit.
        wa_crypto::hkdf_sha256_into(
            media_key,
            None,
            media_type.hkdf_info().as_bytes(),
            &mut *out,
        )
        .expect("invariant: 112 <= 255 * 32");
        let mut k = Self {
            iv: [0; 16],
            cipher_key: [0; 32],
            mac_key: [0; 32],
            ref_key: [0; 32],
        };
        k.iv.copy_from_slice(&out[..16]);
        k.cipher_key.copy_from_slice(&out[16..48]);
        k.mac_key.copy_from_slice(&out[48..80]);
        k.ref_key.copy_from_slice(&out[80..112]);
        k
    }
}
