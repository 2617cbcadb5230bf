#![doc = include_str!("../README.md")]

mod cipher;
mod error;
mod keys;
mod link;
mod message;
mod retry;
mod retry_client;
mod sticker;
#[cfg(target_arch = "x86_64")]
mod stitch;
mod transfer;
mod version;

pub use cipher::{
    BLOCK, Decryptor, ENCRYPTION_OVERHEAD, EncryptedInfo, Encryptor, Expected, MAC_LEN, Opener,
    RangePlan, Verifier, decrypt, decrypt_parallel, encrypt,
};
pub use error::Error;
pub use keys::{MediaKeys, MediaType};
pub use link::{
    LINK_THUMBNAIL_WIDTH, LinkImage, UrlInfo, extract_url, link_thumbnail, url_info_from_html,
};
pub use message::{
    MediaKind, MediaOptions, PROFILE_PICTURE_SIDE, RawMedia, THUMBNAIL_WIDTH, channel_media,
    channel_media_message, downloadable, jpeg_thumbnail, media_message, profile_picture,
};
pub use retry::{
    MEDIA_RETRY_INFO, RetryTarget, decrypt_retry_payload, encrypt_retry_payload,
    history_reupload_request, media_retry_key, media_retry_request, read_media_retry,
};
pub use sticker::{
    MAX_PACK_STICKERS, MAX_STICKER_PACK_RESPONSE, StickerPack, StickerPackItem, parse_sticker_pack,
    sticker_pack_url,
};
pub use transfer::{
    DEFAULT_MEDIA_HOST, DEFAULT_STICKER_SERVICE, Downloadable, Media, MediaConfig, MediaConn,
    MediaHost, Progress, RawUploaded, UploadHandle, Uploaded,
};
pub use version::{
    WEB_VERSION_URL, fetch_latest_web_version, fetch_web_version_from, web_version_from_sw_js,
};
