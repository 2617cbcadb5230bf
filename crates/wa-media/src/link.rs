//! Link previews: the first `https://` URL of a text, and the title, description and
//! thumbnail of the page it names (what Baileys' `getUrlInfo` gets through
//! `link-preview-js`).

use std::time::Duration;

use crate::message::jpeg_thumbnail_of_width;
use crate::{Error, Media, MediaType};

/// Width of a link preview's thumbnail, in pixels (Baileys' `THUMBNAIL_WIDTH_PX`).
pub const LINK_THUMBNAIL_WIDTH: u32 = 192;
/// The most of a page read while looking for its preview tags.
const MAX_PAGE: usize = 1 << 20;
/// The largest preview image fetched, in bytes.
const MAX_LINK_IMAGE: usize = 8 << 20;
/// The longest title or description kept, in characters.
const MAX_FIELD_CHARS: usize = 1024;

/// What a page says about itself, for a link preview.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UrlInfo {
    /// The URL as it appeared in the text.
    pub matched_text: String,
    /// The page's own URL (`og:url`), or the one fetched after redirects.
    pub canonical_url: String,
    /// The page's title (`og:title`, `twitter:title` or `<title>`).
    pub title: String,
    /// Its description (`og:description`, `twitter:description` or `description`).
    pub description: Option<String>,
    /// Its preview image (`og:image` or `twitter:image`), resolved against the page.
    pub image_url: Option<String>,
    /// A JPEG of that image, [`LINK_THUMBNAIL_WIDTH`] pixels wide, when it could be
    /// fetched and decoded.
    pub jpeg_thumbnail: Option<Vec<u8>>,
    /// The image itself, uploaded for a full-size preview
    /// ([`Media::url_info_with_image`] only).
    pub image: Option<LinkImage>,
}

/// A link preview's image uploaded whole (media type `thumbnail-link`), so recipients
/// show it full size: Baileys' `highQualityThumbnail`, which a text message carries in
/// its `thumbnailDirectPath`, `mediaKey`, `thumbnailSha256`, `thumbnailEncSha256`,
/// `thumbnailWidth` and `thumbnailHeight`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkImage {
    /// Where the encrypted image is.
    pub direct_path: String,
    /// Its media key.
    pub media_key: [u8; 32],
    /// When the key was made, Unix seconds.
    pub media_key_timestamp: i64,
    /// SHA-256 of the image.
    pub file_sha256: [u8; 32],
    /// SHA-256 of the encrypted blob.
    pub file_enc_sha256: [u8; 32],
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
}

/// The first `https://` URL in `text`, matched as Baileys' `URL_REGEX` matches it: a
/// host of letters, digits, dots and dashes ending in a dot and at least two letters,
/// an optional port, an optional path up to the next whitespace; never a URL with
/// credentials (`user:pass@`).
pub fn extract_url(text: &str) -> Option<&str> {
    const SCHEME: &str = "https://";
    let mut from = 0;
    while let Some(pos) = text[from..].find(SCHEME) {
        let start = from + pos;
        let rest = &text[start + SCHEME.len()..];
        from = start + SCHEME.len();
        if has_credentials(rest) {
            continue;
        }
        let run = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
            .count();
        let Some(host) = (1..=run).rev().find(|&end| is_host(&rest[..end])) else {
            continue;
        };
        let mut end = host;
        let b = rest.as_bytes();
        if b.get(end) == Some(&b':') {
            let digits = b[end + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if digits > 0 {
                end += 1 + digits;
            }
        }
        if b.get(end) == Some(&b'/') {
            end += rest[end..]
                .find(char::is_whitespace)
                .unwrap_or(rest.len() - end);
        }
        return Some(&text[start..start + SCHEME.len() + end]);
    }
    None
}

/// `user:pass@` right after the scheme.
fn has_credentials(rest: &str) -> bool {
    let stop = |c: char| c == ':' || c == '@' || c == '/' || c.is_whitespace();
    let user = rest.find(stop).unwrap_or(rest.len());
    if user == 0 || !rest[user..].starts_with(':') {
        return false;
    }
    let after = &rest[user + 1..];
    let pass = after.find(stop).unwrap_or(after.len());
    pass > 0 && after[pass..].starts_with('@')
}

/// `[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}` over the whole of `s`.
fn is_host(s: &str) -> bool {
    let Some(dot) = s.rfind('.') else {
        return false;
    };
    let tld = &s[dot + 1..];
    dot > 0 && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
}

/// The preview tags of an HTML page.
#[derive(Debug, Default)]
struct PageTags {
    og_title: Option<String>,
    twitter_title: Option<String>,
    title: Option<String>,
    og_description: Option<String>,
    twitter_description: Option<String>,
    description: Option<String>,
    og_image: Option<String>,
    twitter_image: Option<String>,
    og_url: Option<String>,
}

/// Reads the `<meta>` tags and the `<title>` of `html` (up to `</head>` when there is
/// one). Malformed markup yields fewer tags, never an error.
fn parse_page(html: &str) -> PageTags {
    let lower = html.to_ascii_lowercase();
    let end = lower.find("</head").unwrap_or(html.len());
    let (html, lower) = (&html[..end], &lower[..end]);
    let mut tags = PageTags::default();
    let mut at = 0;
    while let Some(pos) = lower[at..].find("<meta") {
        let start = at + pos + "<meta".len();
        let Some(close) = lower[start..].find('>') else {
            break;
        };
        let attrs = parse_attrs(&html[start..start + close]);
        at = start + close;
        let name = attrs
            .iter()
            .find(|(k, _)| k == "property" || k == "name")
            .map(|(_, v)| v.to_ascii_lowercase());
        let content = attrs.iter().find(|(k, _)| k == "content").map(|(_, v)| v);
        let (Some(name), Some(content)) = (name, content) else {
            continue;
        };
        let slot = match name.as_str() {
            "og:title" => &mut tags.og_title,
            "twitter:title" => &mut tags.twitter_title,
            "og:description" => &mut tags.og_description,
            "twitter:description" => &mut tags.twitter_description,
            "description" => &mut tags.description,
            "og:image" | "og:image:url" | "og:image:secure_url" => &mut tags.og_image,
            "twitter:image" | "twitter:image:src" => &mut tags.twitter_image,
            "og:url" => &mut tags.og_url,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(clean(content));
        }
    }
    if let Some(pos) = lower.find("<title") {
        let open = lower[pos..].find('>').map(|o| pos + o + 1);
        if let Some(open) = open {
            let close = lower[open..]
                .find("</title")
                .map_or(html.len(), |c| open + c);
            tags.title = Some(clean(&html[open..close]));
        }
    }
    tags
}

/// The attributes of a tag's inside (`name="value"`, `name='value'`, `name=value`),
/// names lowercased, values with their entities decoded.
fn parse_attrs(s: &str) -> Vec<(String, String)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        let name = s[name_start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            if name.is_empty() {
                i += 1;
            }
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let start = i + 1;
                let len = b[start..]
                    .iter()
                    .position(|&c| c == q)
                    .unwrap_or(b.len() - start);
                i = start + len + 1;
                &s[start..start + len]
            }
            _ => {
                let start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                &s[start..i]
            }
        };
        if !name.is_empty() {
            out.push((name, decode_entities(value)));
        }
    }
    out
}

/// Whitespace collapsed, entities decoded, cut to [`MAX_FIELD_CHARS`].
fn clean(s: &str) -> String {
    let decoded = decode_entities(s);
    let mut out = String::new();
    for word in decoded.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.chars().take(MAX_FIELD_CHARS).collect()
}

/// The common named entities and numeric references; anything else is kept as written.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let semi = rest.as_bytes()[..rest.len().min(12)]
            .iter()
            .position(|&b| b == b';');
        let decoded = semi.and_then(|semi| {
            let name = &rest[1..semi];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .map(|h| u32::from_str_radix(h, 16))
                    .or_else(|| name.strip_prefix('#').map(str::parse::<u32>))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            }?;
            Some((c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The preview an HTML page gives of itself, without the thumbnail: what
/// [`Media::url_info`] reads from a page it fetched, for callers that fetch pages their own
/// way. `page_url` is where the page was found (after redirects); relative image and page
/// URLs are resolved against it. `None` when the page names no title. At most 1 MiB of
/// `html` is read.
pub fn url_info_from_html(matched_text: &str, page_url: &str, html: &str) -> Option<UrlInfo> {
    let mut end = html.len().min(MAX_PAGE);
    while !html.is_char_boundary(end) {
        end -= 1;
    }
    let tags = parse_page(&html[..end]);
    let title = tags
        .og_title
        .or(tags.twitter_title)
        .or(tags.title)
        .filter(|t| !t.is_empty())?;
    let base = reqwest::Url::parse(page_url).ok();
    let resolve = |u: &str| match &base {
        Some(b) => b.join(u).ok(),
        None => reqwest::Url::parse(u).ok(),
    };
    let image_url = tags
        .og_image
        .or(tags.twitter_image)
        .and_then(|i| resolve(&i))
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(String::from);
    let canonical_url = tags
        .og_url
        .and_then(|u| resolve(&u))
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map_or_else(|| page_url.to_owned(), String::from);
    Some(UrlInfo {
        matched_text: matched_text.to_owned(),
        canonical_url,
        title,
        description: tags
            .og_description
            .or(tags.twitter_description)
            .or(tags.description)
            .filter(|d| !d.is_empty()),
        image_url,
        jpeg_thumbnail: None,
        image: None,
    })
}

/// A JPEG thumbnail `width` pixels wide of an image (PNG, JPEG, WebP or GIF).
///
/// # Errors
/// [`Error::InvalidMessage`] when the bytes are not a decodable image or too large.
pub fn link_thumbnail(image_bytes: &[u8]) -> Result<Vec<u8>, Error> {
    jpeg_thumbnail_of_width(image_bytes, LINK_THUMBNAIL_WIDTH).map(|(jpeg, _, _)| jpeg)
}

impl Media {
    /// Fetches the page at `url` (following redirects) and reads its preview: title,
    /// description, image and a [`LINK_THUMBNAIL_WIDTH`]-pixel JPEG of the image. At
    /// most 1 MiB of the page and 8 MiB of the image are read (the image is decoded on a
    /// blocking thread); the whole takes at most
    /// `timeout`. `None` when the page is not HTML or names no title (Baileys then sends
    /// no preview). A missing or undecodable image only leaves the thumbnail out.
    ///
    /// # Errors
    /// [`Error::Http`] when the page cannot be fetched (or `timeout` passed),
    /// [`Error::Gone`] for 404 and 410.
    pub async fn url_info(
        &self,
        matched_text: &str,
        timeout: Duration,
    ) -> Result<Option<UrlInfo>, Error> {
        self.url_info_within(matched_text, timeout, false).await
    }

    /// [`Media::url_info`], and the page's image, when it decodes, also uploaded whole
    /// for a full-size preview ([`UrlInfo::image`]; Baileys'
    /// `generateHighQualityLinkPreview`). A failed upload only leaves it out; the
    /// upload counts towards `timeout`.
    ///
    /// # Errors
    /// As [`Media::url_info`].
    pub async fn url_info_with_image(
        &self,
        matched_text: &str,
        timeout: Duration,
    ) -> Result<Option<UrlInfo>, Error> {
        self.url_info_within(matched_text, timeout, true).await
    }

    async fn url_info_within(
        &self,
        matched_text: &str,
        timeout: Duration,
        upload_image: bool,
    ) -> Result<Option<UrlInfo>, Error> {
        let fetch = self.fetch_url_info(matched_text, upload_image);
        tokio::time::timeout(timeout, fetch)
            .await
            .map_err(|_| Error::Http(format!("link preview of {matched_text} timed out")))?
    }

    async fn fetch_url_info(
        &self,
        matched_text: &str,
        upload_image: bool,
    ) -> Result<Option<UrlInfo>, Error> {
        let url = if matched_text.starts_with("https://") || matched_text.starts_with("http://") {
            matched_text.to_owned()
        } else {
            format!("https://{matched_text}")
        };
        let resp = self.get_page(&url).await?;
        let page_url = resp.url().clone();
        let html_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|t| t.to_ascii_lowercase().contains("html"));
        if !html_type {
            return Ok(None);
        }
        let page = read_bounded(resp, MAX_PAGE, true).await?;
        let Some(mut info) = url_info_from_html(
            matched_text,
            page_url.as_str(),
            &String::from_utf8_lossy(&page),
        ) else {
            return Ok(None);
        };
        if let Some(u) = &info.image_url
            && let Ok(resp) = self.get_page(u).await
            && let Ok(bytes) = read_bounded(resp, MAX_LINK_IMAGE, false).await
        {
            // Decoding is CPU work: off the async workers.
            let (thumb, bytes) = tokio::task::spawn_blocking(move || {
                let thumb = jpeg_thumbnail_of_width(&bytes, LINK_THUMBNAIL_WIDTH).ok();
                (thumb, bytes)
            })
            .await
            .unwrap_or((None, Vec::new()));
            if let Some((jpeg, width, height)) = thumb {
                info.jpeg_thumbnail = Some(jpeg);
                if upload_image {
                    info.image = self.upload_link_image(&bytes, width, height).await;
                }
            }
        }
        Ok(Some(info))
    }

    /// Uploads a link preview's image (already decoded once, so it is an image);
    /// `None`, logged, when the upload fails.
    async fn upload_link_image(&self, bytes: &[u8], width: u32, height: u32) -> Option<LinkImage> {
        let up = match self.upload(bytes, MediaType::ThumbnailLink, None).await {
            Ok(up) => up,
            Err(e) => {
                tracing::debug!("link preview image not uploaded: {e}");
                return None;
            }
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Some(LinkImage {
            direct_path: up.direct_path,
            media_key: up.media_key,
            media_key_timestamp: now,
            file_sha256: up.info.file_sha256,
            file_enc_sha256: up.info.file_enc_sha256,
            width,
            height,
        })
    }

    /// GETs `url` (`https://`, or `http://`) and returns its body, read up to `max`
    /// bytes: a profile picture at the URL `Chats::profile_picture_url` gave, for
    /// example.
    ///
    /// # Errors
    /// [`Error::Http`] when it cannot be fetched, [`Error::Gone`] for 404 and 410,
    /// [`Error::TooLarge`] for a body beyond `max`.
    pub async fn fetch(&self, url: &str, max: usize) -> Result<Vec<u8>, Error> {
        let resp = self.get_page(url).await?;
        read_bounded(resp, max, false).await
    }

    async fn get_page(&self, url: &str) -> Result<reqwest::Response, Error> {
        let resp = self
            .inner
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "text/html,image/*;q=0.9,*/*;q=0.8")
            // Sites serve their preview tags to WhatsApp's own fetcher by this name.
            .header(reqwest::header::USER_AGENT, "WhatsApp/2")
            .send()
            .await
            .map_err(|e| Error::Http(e.to_string()))?;
        match resp.status().as_u16() {
            s @ (404 | 410) => Err(Error::Gone(s)),
            _ if !resp.status().is_success() => Err(Error::Http(format!("HTTP {}", resp.status()))),
            _ => Ok(resp),
        }
    }
}

/// The body of `resp`, at most `max` bytes: cut there when `truncate` (a page's head is
/// at its start), else [`Error::TooLarge`].
pub(crate) async fn read_bounded(
    mut resp: reqwest::Response,
    max: usize,
    truncate: bool,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| Error::Http(e.to_string()))? {
        let room = max - out.len();
        if chunk.len() > room {
            if truncate {
                out.extend_from_slice(&chunk[..room]);
                return Ok(out);
            }
            return Err(Error::TooLarge(max as u64));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_found_as_baileys_finds_them() {
        let cases = [
            (
                "see https://example.com/a?b=c now",
                Some("https://example.com/a?b=c"),
            ),
            ("https://example.com", Some("https://example.com")),
            (
                "x https://sub.example.co.uk:8443/p q",
                Some("https://sub.example.co.uk:8443/p"),
            ),
            ("https://example.com?q=1", Some("https://example.com")),
            ("http://example.com only", None),
            ("https://localhost/x", None),
            ("https://user:pw@example.com/x", None),
            (
                "https://user:pw@example.com https://ok.org",
                Some("https://ok.org"),
            ),
            ("https://a.bc.d1/x", Some("https://a.bc")),
            ("https://1.2.3.4/x", None),
            ("no url here", None),
            ("https://", None),
            (
                "ünï https://ëxample.com https://b.io/ü",
                Some("https://b.io/ü"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(extract_url(text), want, "{text}");
        }
    }

    #[test]
    fn preview_tags_are_read_with_their_fallbacks() {
        let html = r#"<!doctype html><html><head>
            <title>  Plain   title </title>
            <meta property="og:title" content="OG &amp; title">
            <meta name='description' content='desc &#8212; &#x41;&quot;'>
            <meta content="/img/p.png" property=og:image />
            <meta property="og:image" content="/second.png">
            <meta name="twitter:title" content="tw">
            </head><body><meta property="og:url" content="https://late.example"></body>"#;
        let t = parse_page(html);
        assert_eq!(t.og_title.as_deref(), Some("OG & title"));
        assert_eq!(t.title.as_deref(), Some("Plain title"));
        assert_eq!(t.twitter_title.as_deref(), Some("tw"));
        assert_eq!(t.description.as_deref(), Some("desc \u{2014} A\""));
        assert_eq!(t.og_image.as_deref(), Some("/img/p.png"), "the first wins");
        assert_eq!(t.og_url, None, "tags after </head> are not read");
    }

    #[test]
    fn pages_fetched_elsewhere_give_the_same_preview() {
        let html = r#"<head><meta property="og:title" content="T">
            <meta property="og:image" content="img/a.png">
            <meta property="og:url" content="javascript:alert(1)"></head>"#;
        let info = url_info_from_html("https://x.example/p", "https://x.example/dir/p", html)
            .expect("a preview");
        assert_eq!(info.title, "T");
        assert_eq!(
            info.image_url.as_deref(),
            Some("https://x.example/dir/img/a.png")
        );
        assert_eq!(
            info.canonical_url, "https://x.example/dir/p",
            "no javascript: URLs"
        );
        assert_eq!(info.jpeg_thumbnail, None);
        // Without a usable page URL only absolute image URLs are kept.
        let info = url_info_from_html("m", "not a url", html).unwrap();
        assert_eq!(info.image_url, None);
        assert_eq!(
            url_info_from_html("m", "https://x.example", "<p>no title</p>"),
            None
        );
        // A page longer than the limit is cut at a character boundary, never inside one.
        let mut long = String::from("<title>ok</title>");
        long.push_str(&"é".repeat(MAX_PAGE));
        assert_eq!(
            url_info_from_html("m", "https://x.example", &long)
                .unwrap()
                .title,
            "ok"
        );
    }

    #[test]
    fn hostile_markup_never_panics() {
        for html in [
            "<meta",
            "<meta property=",
            "<meta property=\"og:title",
            "<title>",
            "<meta content='x' property='og:title'",
            "&#xFFFFFFFF; &#99999999999; &",
            "<title>a",
            "<meta =x property=og:title content=ok>",
            "<META PROPERTY=OG:TITLE CONTENT=up>",
        ] {
            let _ = parse_page(html);
        }
        assert_eq!(
            parse_page("<META PROPERTY=OG:TITLE CONTENT=up>")
                .og_title
                .as_deref(),
            Some("up")
        );
        assert_eq!(
            decode_entities("&#xFFFFFFFF;&bogus;&"),
            "&#xFFFFFFFF;&bogus;&"
        );
        let long = format!("<title>{}</title>", "x".repeat(5000));
        assert_eq!(
            parse_page(&long).title.map(|t| t.len()),
            Some(MAX_FIELD_CHARS)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_or_page_is_handled(s in "(<meta |<title>|property=|content=|og:title|&#x?[0-9a-f]{0,9};?|https://|[a-z.:/@ \"'=<>&;ü-]){0,40}") {
            let tags = parse_page(&s);
            for v in [tags.og_title, tags.title, tags.description].into_iter().flatten() {
                proptest::prop_assert!(v.chars().count() <= MAX_FIELD_CHARS);
            }
            if let Some(u) = extract_url(&s) {
                proptest::prop_assert!(u.starts_with("https://"));
                proptest::prop_assert!(s.contains(u));
            }
        }
    }
}
