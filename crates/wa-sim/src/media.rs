//! The media host: uploads (`POST /mms/<type>/<token>?auth=..&token=..`), downloads
//! (`GET /v/...`, with `Range`), blobs kept in files under a private temporary directory so
//! large media never sit in memory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response, StatusCode};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWriteExt, ReadBuf};

/// Largest blob the host accepts.
pub(crate) const MAX_BLOB: u64 = 4 << 30;
/// Most blobs held at once.
const MAX_BLOBS: usize = 100_000;
/// Read size when streaming a blob out.
const CHUNK: usize = 64 * 1024;

/// A response body: a fixed buffer or a file region streamed in chunks.
pub(crate) enum SimBody {
    Full(Option<Bytes>),
    File {
        file: tokio::fs::File,
        remaining: u64,
        buf: BytesMut,
    },
}

impl SimBody {
    pub(crate) fn full(b: impl Into<Bytes>) -> Self {
        Self::Full(Some(b.into()))
    }

    pub(crate) fn empty() -> Self {
        Self::Full(None)
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            SimBody::Full(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            SimBody::File {
                file,
                remaining,
                buf,
            } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let want = usize::try_from(*remaining).unwrap_or(CHUNK).min(CHUNK);
                buf.resize(want, 0);
                let mut rb = ReadBuf::new(&mut buf[..]);
                match Pin::new(file).poll_read(cx, &mut rb) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(Ok(())) => {
                        let n = rb.filled().len();
                        if n == 0 {
                            *remaining = 0;
                            return Poll::Ready(Some(
                                Err(std::io::ErrorKind::UnexpectedEof.into()),
                            ));
                        }
                        *remaining -= n as u64;
                        let chunk = buf.split_to(n).freeze();
                        Poll::Ready(Some(Ok(Frame::data(chunk))))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SimBody::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            SimBody::File { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            SimBody::File { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

pub(crate) fn plain(status: StatusCode, text: &str) -> Response<SimBody> {
    let mut resp = Response::new(SimBody::full(text.to_owned()));
    *resp.status_mut() = status;
    resp
}

struct Blob {
    path: PathBuf,
    len: u64,
}

/// Blob storage and the upload auth handed out in `media_conn`.
pub(crate) struct MediaHost {
    dir: PathBuf,
    auth: String,
    hostname: String,
    blobs: Mutex<HashMap<String, Blob>>,
    /// Business cover photos: the `fbid` handed out for an upload -> its blob id.
    covers: Mutex<HashMap<String, String>>,
    /// Blobs clients deleted.
    deleted: Mutex<usize>,
    /// The sticker service's answers (`GET /sticker`).
    stickers: Mutex<crate::sticker::StickerService>,
}

impl Drop for MediaHost {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    hex::encode_upper(b)
}

/// The value of `key` in a URL query, with the escapes clients use for base64 (`=`, `/`,
/// `+`) undone.
fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| {
            v.replace("%3D", "=")
                .replace("%2F", "/")
                .replace("%2B", "+")
        })
}

impl MediaHost {
    /// A host answering as `hostname` (`127.0.0.1:port`), storing blobs under a fresh
    /// directory in `parent`.
    pub(crate) fn new(hostname: String, parent: PathBuf) -> std::io::Result<Self> {
        let dir = parent.join(format!("wa-sim-media-{}", random_hex(8)));
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            auth: random_hex(16),
            hostname,
            blobs: Mutex::new(HashMap::new()),
            covers: Mutex::new(HashMap::new()),
            deleted: Mutex::new(0),
            stickers: Mutex::default(),
        })
    }

    pub(crate) fn stickers(&self) -> std::sync::MutexGuard<'_, crate::sticker::StickerService> {
        self.stickers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn covers(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.covers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The signature a cover-photo upload hands back with its `fbid`, which the profile
    /// update must repeat: derived from the host's secret upload auth.
    fn meta_hmac(&self, fbid: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.auth.as_bytes());
        h.update(b":cover:");
        h.update(fbid.as_bytes());
        URL_SAFE.encode(h.finalize())
    }

    /// Whether `fbid` names an uploaded cover photo and `meta_hmac` is its signature.
    pub(crate) fn check_cover(&self, fbid: &str, meta_hmac: &str) -> bool {
        self.covers().contains_key(fbid) && self.meta_hmac(fbid) == meta_hmac
    }

    /// The bytes of the cover photo `fbid`, if the host holds it.
    pub(crate) fn cover_bytes(&self, fbid: &str) -> Option<Vec<u8>> {
        let id = self.covers().get(fbid)?.clone();
        self.bytes_of(&id)
    }

    /// The bytes of the blob a direct path or URL names, if the host holds it.
    pub(crate) fn blob_bytes(&self, direct_path: &str) -> Option<Vec<u8>> {
        self.bytes_of(Self::id_of(direct_path)?)
    }

    fn bytes_of(&self, id: &str) -> Option<Vec<u8>> {
        let path = self.blobs().get(id)?.path.clone();
        std::fs::read(path).ok()
    }

    pub(crate) fn auth(&self) -> &str {
        &self.auth
    }

    pub(crate) fn hostname(&self) -> &str {
        &self.hostname
    }

    fn blobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Blob>> {
        self.blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn count(&self) -> usize {
        self.blobs().len()
    }

    /// The blob id in a direct path or URL (`.../<id>?...`).
    fn id_of(path: &str) -> Option<&str> {
        let p = path.split('?').next()?;
        let id = p.rsplit('/').next()?;
        (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then_some(id)
    }

    /// Stores `blob` as if it had been uploaded (the simulated phones' uploads, the
    /// server's own app-state snapshots); returns its direct path.
    pub(crate) fn store(&self, blob: &[u8]) -> std::io::Result<String> {
        if self.count() >= MAX_BLOBS || blob.len() as u64 > MAX_BLOB {
            return Err(std::io::Error::other("media host full or blob too large"));
        }
        let id = random_hex(16);
        let path = self.dir.join(&id);
        std::fs::write(&path, blob)?;
        let direct_path = format!(
            "/v/t62.7118-24/{id}?ccb=11-4&oh={}&oe={:X}",
            random_hex(8),
            crate::sim::unix_now() + 30 * 86_400
        );
        self.blobs().insert(
            id,
            Blob {
                path,
                len: blob.len() as u64,
            },
        );
        Ok(direct_path)
    }

    /// Removes a blob (as if it expired). Returns whether it existed.
    pub(crate) fn delete(&self, direct_path: &str) -> bool {
        let Some(id) = Self::id_of(direct_path) else {
            return false;
        };
        self.covers().retain(|_, blob| blob != id);
        let blob = self.blobs().remove(id);
        blob.is_some_and(|b| std::fs::remove_file(b.path).is_ok())
    }

    /// Flips one bit of a stored blob at `offset`. Returns whether it did.
    pub(crate) fn corrupt(&self, direct_path: &str, offset: u64) -> bool {
        use std::io::{Read, Seek, SeekFrom, Write};
        let Some(id) = Self::id_of(direct_path) else {
            return false;
        };
        let path = match self.blobs().get(id) {
            Some(b) if offset < b.len => b.path.clone(),
            _ => return false,
        };
        let Ok(mut f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        else {
            return false;
        };
        let mut byte = [0u8];
        f.seek(SeekFrom::Start(offset)).is_ok()
            && f.read_exact(&mut byte).is_ok()
            && f.seek(SeekFrom::Start(offset)).is_ok()
            && f.write_all(&[byte[0] ^ 1]).is_ok()
    }

    /// Serves `/mms/...` uploads, `/v/...` downloads and the sticker service
    /// (`/sticker`); `None` for other paths.
    pub(crate) async fn handle(&self, req: Request<Incoming>) -> Option<Response<SimBody>> {
        let path = req.uri().path().to_owned();
        if path == "/sticker" {
            if req.method() != hyper::Method::GET {
                return Some(plain(StatusCode::METHOD_NOT_ALLOWED, "GET only"));
            }
            return Some(self.sticker_pack(&req));
        }
        if path.starts_with("/mms/") && req.method() == hyper::Method::DELETE {
            return Some(self.delete_request(&req).await);
        }
        if path.starts_with("/mms/") || path.starts_with("/product/") || path.starts_with("/pps/") {
            if req.method() != hyper::Method::POST {
                return Some(plain(StatusCode::METHOD_NOT_ALLOWED, "POST only"));
            }
            return Some(self.upload(req).await);
        }
        if path.starts_with("/v/") {
            if req.method() != hyper::Method::GET {
                return Some(plain(StatusCode::METHOD_NOT_ALLOWED, "GET only"));
            }
            return Some(self.download(&req).await);
        }
        None
    }

    /// `DELETE /mms/<type>/<token>?token&d_md&auth`: removes the blob at the direct path
    /// `d_md` names (unpadded URL-safe base64) when `token` is the URL-safe base64 of its
    /// SHA-256 (the encrypted file's hash) and the auth is the media auth.
    async fn delete_request(&self, req: &Request<Incoming>) -> Response<SimBody> {
        let query = req.uri().query().unwrap_or("");
        let param = |k: &str| query_param(query, k);
        if param("auth").as_deref() != Some(self.auth.as_str()) {
            return plain(StatusCode::UNAUTHORIZED, "bad auth");
        }
        let Some(token) = param("token") else {
            return plain(StatusCode::BAD_REQUEST, "no token");
        };
        let direct_path = param("d_md")
            .and_then(|d| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(d)
                    .ok()
            })
            .and_then(|d| String::from_utf8(d).ok());
        let Some(direct_path) = direct_path else {
            return plain(StatusCode::BAD_REQUEST, "no d_md");
        };
        let Some(path) =
            Self::id_of(&direct_path).and_then(|id| self.blobs().get(id).map(|b| b.path.clone()))
        else {
            return plain(StatusCode::NOT_FOUND, "no such media");
        };
        let Ok(bytes) = tokio::fs::read(&path).await else {
            return plain(StatusCode::NOT_FOUND, "no such media");
        };
        if URL_SAFE.encode(Sha256::digest(&bytes)) != token {
            return plain(StatusCode::FORBIDDEN, "token is not the blob's hash");
        }
        self.delete(&direct_path);
        *self
            .deleted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        plain(StatusCode::OK, "{}")
    }

    /// How many blobs clients deleted (`DELETE /mms/...`).
    pub(crate) fn deleted(&self) -> usize {
        *self
            .deleted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn upload(&self, req: Request<Incoming>) -> Response<SimBody> {
        let query = req.uri().query().unwrap_or("").to_owned();
        let req_path = req.uri().path().to_owned();
        let param = |k: &str| query_param(&query, k);
        if param("auth").as_deref() != Some(self.auth.as_str()) {
            return plain(StatusCode::UNAUTHORIZED, "bad auth");
        }
        let Some(token) = param("token") else {
            return plain(StatusCode::BAD_REQUEST, "no token");
        };
        if self.count() >= MAX_BLOBS {
            return plain(StatusCode::INSUFFICIENT_STORAGE, "media host full");
        }
        let id = random_hex(16);
        let path = self.dir.join(&id);
        let result = async {
            let mut file = tokio::fs::File::create(&path).await?;
            let mut body = req.into_body();
            let mut hash = Sha256::new();
            let mut len = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(std::io::Error::other)?;
                if let Ok(data) = frame.into_data() {
                    len += data.len() as u64;
                    if len > MAX_BLOB {
                        return Err(std::io::Error::other("too large"));
                    }
                    hash.update(&data);
                    file.write_all(&data).await?;
                }
            }
            file.flush().await?;
            Ok::<_, std::io::Error>((len, hash.finalize()))
        }
        .await;
        let (len, digest) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return plain(StatusCode::BAD_REQUEST, &format!("upload failed: {e}"));
            }
        };
        if URL_SAFE.encode(digest) != token {
            let _ = tokio::fs::remove_file(&path).await;
            return plain(StatusCode::BAD_REQUEST, "token is not the body's hash");
        }
        let direct_path = format!(
            "/v/t62.7118-24/{id}?ccb=11-4&oh={}&oe={:X}",
            random_hex(8),
            crate::sim::unix_now() + 30 * 86_400
        );
        let cover = req_path.starts_with("/pps/biz-cover-photo/");
        let mut body = serde_json::json!({
            "url": format!("http://{}{direct_path}", self.hostname),
            "direct_path": direct_path,
        });
        if cover {
            // A cover photo is named by an id and a signature the profile update repeats.
            let fbid = (u64::from_str_radix(&id[..15], 16).unwrap_or(1) | 1).to_string();
            body["fbid"] = serde_json::json!(fbid.parse::<u64>().unwrap_or(1));
            body["meta_hmac"] = serde_json::json!(self.meta_hmac(&fbid));
            body["ts"] = serde_json::json!(crate::sim::unix_now());
            self.covers().insert(fbid, id.clone());
        }
        self.blobs().insert(id, Blob { path, len });
        let mut resp = Response::new(SimBody::full(body.to_string()));
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        resp
    }

    /// `GET /sticker?lottie=1&cat=sticker_pack_data&id=<pack>&lg=en`: the pack's JSON
    /// array (`[]` for an unknown id); 400 without `cat=sticker_pack_data` or an id.
    fn sticker_pack(&self, req: &Request<Incoming>) -> Response<SimBody> {
        let query = req.uri().query().unwrap_or("");
        let raw = |k: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v)
        };
        if raw("cat") != Some("sticker_pack_data") {
            return plain(StatusCode::BAD_REQUEST, "unknown category");
        }
        let Some(id) = raw("id")
            .and_then(crate::sticker::percent_decode)
            .filter(|id| !id.is_empty())
        else {
            return plain(StatusCode::BAD_REQUEST, "no pack id");
        };
        let body = self.stickers().answer(&id);
        let mut resp = Response::new(SimBody::full(body));
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        resp
    }

    async fn download(&self, req: &Request<Incoming>) -> Response<SimBody> {
        let Some(id) = Self::id_of(req.uri().path()) else {
            return plain(StatusCode::NOT_FOUND, "no such media");
        };
        let (path, len) = match self.blobs().get(id) {
            Some(b) => (b.path.clone(), b.len),
            None => return plain(StatusCode::NOT_FOUND, "no such media"),
        };
        let range = req
            .headers()
            .get(hyper::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(parse_range);
        let Some((start, end, partial)) = byte_range(range, len) else {
            return plain(StatusCode::RANGE_NOT_SATISFIABLE, "bad range");
        };
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(_) => return plain(StatusCode::NOT_FOUND, "no such media"),
        };
        if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "seek failed");
        }
        let mut resp = Response::new(SimBody::File {
            file,
            remaining: end - start,
            buf: BytesMut::new(),
        });
        let headers = resp.headers_mut();
        headers.insert(hyper::header::CONTENT_LENGTH, (end - start).into());
        if partial {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = format!("bytes {start}-{}/{len}", end - 1).parse() {
                resp.headers_mut().insert(hyper::header::CONTENT_RANGE, v);
            }
        }
        resp
    }
}

/// The bytes `start..end` of a blob of `len` bytes a request gets, and whether that is a
/// part: the whole blob without a Range header (`range` is `None`), the requested bytes
/// cut to the blob; `None` when the range cannot be satisfied (or did not parse). The
/// bounds are the client's: any u64.
fn byte_range(range: Option<Option<(u64, Option<u64>)>>, len: u64) -> Option<(u64, u64, bool)> {
    match range {
        None => Some((0, len, false)),
        Some(Some((s, e))) if s < len => {
            let e = e.map_or(len, |e| e.saturating_add(1).min(len));
            (e > s).then_some((s, e, true))
        }
        Some(_) => None,
    }
}

/// `bytes=a-b` / `bytes=a-` -> (a, Some(b) / None).
fn parse_range(v: &str) -> Option<(u64, Option<u64>)> {
    let r = v.strip_prefix("bytes=")?;
    let (a, b) = r.split_once('-')?;
    let a = a.trim().parse().ok()?;
    let b = b.trim();
    let b = if b.is_empty() {
        None
    } else {
        Some(b.parse().ok()?)
    };
    Some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("bytes=80-304"), Some((80, Some(304))));
        assert_eq!(parse_range("bytes=16-"), Some((16, None)));
        assert_eq!(parse_range("bytes=x-1"), None);
        assert_eq!(parse_range("items=1-2"), None);
    }

    #[test]
    fn ranges_are_cut_to_the_blob() {
        assert_eq!(byte_range(None, 100), Some((0, 100, false)));
        assert_eq!(
            byte_range(Some(Some((10, Some(19)))), 100),
            Some((10, 20, true))
        );
        assert_eq!(
            byte_range(Some(Some((10, None))), 100),
            Some((10, 100, true))
        );
        assert_eq!(
            byte_range(Some(Some((10, Some(500)))), 100),
            Some((10, 100, true))
        );
        assert_eq!(
            byte_range(Some(Some((10, Some(u64::MAX)))), 100),
            Some((10, 100, true))
        );
        // Empty, reversed, past the end, or unparsed.
        assert_eq!(byte_range(Some(Some((10, Some(5)))), 100), None);
        assert_eq!(byte_range(Some(Some((100, None))), 100), None);
        assert_eq!(
            byte_range(Some(Some((u64::MAX, Some(u64::MAX)))), 100),
            None
        );
        assert_eq!(byte_range(Some(None), 100), None);
    }

    #[test]
    fn ids_come_from_the_last_path_segment() {
        assert_eq!(
            MediaHost::id_of("/v/t62.7118-24/ABC123?ccb=1"),
            Some("ABC123")
        );
        assert_eq!(MediaHost::id_of("/v/t62/../x.y?"), None);
        assert_eq!(MediaHost::id_of("/v/t62/.."), None);
        assert_eq!(MediaHost::id_of("/v/"), None);
    }
}
