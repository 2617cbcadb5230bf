//! Feeds arbitrary text to the link-preview readers: the URL finder and the page parser.
//! A URL found is an `https://` substring of the text; a preview has a non-empty title,
//! bounded fields and only http(s) image and page URLs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(url) = wa_media::extract_url(&text) {
        assert!(url.starts_with("https://"));
        assert!(text.contains(url));
    }
    let base = if data.first().is_some_and(|b| b & 1 == 0) {
        "https://page.example/dir/index.html"
    } else {
        "not a url"
    };
    if let Some(info) = wa_media::url_info_from_html("m", base, &text) {
        assert!(!info.title.is_empty());
        assert!(info.title.chars().count() <= 1024);
        assert!(info.description.as_ref().is_none_or(|d| d.chars().count() <= 1024));
        for u in info.image_url.iter().chain(std::iter::once(&info.canonical_url)) {
            assert!(u == base || u.starts_with("http://") || u.starts_with("https://"), "{u}");
        }
    }
});
