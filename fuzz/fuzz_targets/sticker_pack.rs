//! Feeds arbitrary bytes to the sticker-service answer parser: never a panic, and a pack
//! it accepts is bounded and its stickers are downloadable as sticker media.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pack) = wa_media::parse_sticker_pack(data) {
        assert!(data.len() <= wa_media::MAX_STICKER_PACK_RESPONSE);
        assert!(pack.stickers.len() <= wa_media::MAX_PACK_STICKERS);
        for s in &pack.stickers {
            assert!(!s.direct_path.is_empty());
            let d = wa_media::Downloadable::from(s);
            assert_eq!(d.media_type, wa_media::MediaType::Sticker);
            assert_eq!(d.media_key, s.media_key);
        }
    }
    if let Ok(id) = std::str::from_utf8(data)
        && let Ok(url) = wa_media::sticker_pack_url("https://static.whatsapp.net", id)
    {
        // The id is one query value: the URL has exactly the four fixed parameters.
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        assert_eq!(query.split('&').count(), 4, "{url}");
        assert!(!url.contains('#') && !url.contains(' '), "{url}");
    }
});
