//! Upload and download through the `media_conn` hosts, with constant memory.
//!
//! Upload: the plaintext is encrypted into a temporary file (the upload URL needs the
//! encrypted file's hash first), then streamed to the first host that accepts it.
//! Download: the encrypted blob is streamed into a temporary file while its MAC and hash
//! are checked; only a verified blob is decrypted into the caller's writer.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use rand::RngCore;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Mutex;
use wa_binary::{Jid, Node};
use wa_socket::Socket;

use crate::cipher::{EncryptedInfo, Encryptor, Expected, Opener, RangePlan, Verifier};
use crate::{Error, MediaKeys, MediaType};

/// Size of the buffers files and bodies are streamed through.
const CHUNK: usize = 64 * 1024;

/// One upload host from `media_conn`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaHost {
    /// Host name, possibly with a port.
    pub hostname: String,
}

/// The answer to a `media_conn` query: upload auth and hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaConn {
    /// The upload auth token.
    pub auth: String,
    /// Seconds the answer stays valid.
    pub ttl: u64,
    /// Seconds the auth token stays valid.
    pub auth_ttl: u64,
    /// Upload hosts, in preference order.
    pub hosts: Vec<MediaHost>,
}

/// Most hosts taken from one `media_conn` answer.
const MAX_HOSTS: usize = 32;

impl MediaConn {
    /// Parses the `<iq>` reply holding `<media_conn>`.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] when `media_conn`, `auth` or every host is missing.
    pub fn parse(reply: &Node) -> Result<Self, Error> {
        let mc = reply
            .child("media_conn")
            .ok_or_else(|| Error::InvalidMessage("reply without <media_conn>"))?;
        let auth = mc
            .attr::<&str>("auth")
            .map_err(|_| Error::InvalidMessage("media_conn without auth"))?
            .to_owned();
        let num = |k: &str| mc.attr_opt::<u64>(k).ok().flatten().unwrap_or(0);
        let hosts: Vec<MediaHost> = mc
            .children_by_tag("host")
            .filter_map(|h| h.attr::<&str>("hostname").ok())
            .filter(|h| !h.is_empty())
            .take(MAX_HOSTS)
            .map(|h| MediaHost {
                hostname: h.to_owned(),
            })
            .collect();
        if hosts.is_empty() {
            return Err(Error::InvalidMessage("media_conn without hosts"));
        }
        Ok(Self {
            auth,
            ttl: num("ttl"),
            auth_ttl: num("auth_ttl"),
            hosts,
        })
    }
}

/// Transfer progress: bytes done so far and the total when known.
pub type Progress = Arc<dyn Fn(u64, Option<u64>) + Send + Sync>;

/// Settings of a [`Media`] client.
#[derive(Clone)]
#[non_exhaustive]
pub struct MediaConfig {
    /// Use `https://` for media hosts (the real servers); `false` for plain HTTP (a local
    /// test server).
    pub https: bool,
    /// Hosts tried before the ones `media_conn` names.
    pub extra_upload_hosts: Vec<String>,
    /// Directory for temporary files (the system's when `None`).
    pub temp_dir: Option<PathBuf>,
    /// Largest blob uploaded or downloaded.
    pub max_size: u64,
    /// Timeout of one HTTP request's connection and headers.
    pub connect_timeout: Duration,
    /// How long [`Media::request_reupload`] waits for the phone's answer.
    pub retry_timeout: Duration,
    /// The proxy every HTTP request goes through (uploads, downloads, link previews and
    /// pictures), Baileys' `fetchAgent`; `None` connects directly. The facade passes the
    /// socket's proxy here unless one is set.
    pub proxy: Option<wa_socket::Proxy>,
    /// Scheme and host of the sticker service that
    /// [`Media::fetch_sticker_pack`](crate::Media::fetch_sticker_pack) asks (no trailing
    /// path; `/sticker?...` is appended): [`DEFAULT_STICKER_SERVICE`] by default, a local
    /// server's address in tests.
    pub sticker_service: String,
    /// How many uploads [`Media::prepare_bytes`](crate::Media::prepare_bytes) remembers,
    /// by media type and SHA-256 of the bytes, to send the same bytes again without
    /// uploading them again (Baileys' `mediaCache`); every upload of
    /// [`Media::prepare`](crate::Media::prepare) is remembered too. 0 (the default)
    /// turns this off.
    pub upload_cache: u64,
    /// How long a remembered upload is reused (one hour by default).
    pub upload_cache_ttl: Duration,
}

/// The sticker service WhatsApp clients fetch sticker packs from.
pub const DEFAULT_STICKER_SERVICE: &str = "https://static.whatsapp.net";

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            https: true,
            extra_upload_hosts: Vec::new(),
            temp_dir: None,
            max_size: 4 << 30,
            connect_timeout: Duration::from_secs(20),
            retry_timeout: Duration::from_secs(30),
            proxy: None,
            sticker_service: DEFAULT_STICKER_SERVICE.to_owned(),
            upload_cache: 0,
            upload_cache_ttl: Duration::from_secs(3600),
        }
    }
}

impl std::fmt::Debug for MediaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaConfig")
            .field("https", &self.https)
            .field("max_size", &self.max_size)
            .field("proxy", &self.proxy)
            .field("sticker_service", &self.sticker_service)
            .field("upload_cache", &self.upload_cache)
            .field("upload_cache_ttl", &self.upload_cache_ttl)
            .finish_non_exhaustive()
    }
}

/// What an upload produced: everything a media message needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Uploaded {
    /// The random media key (goes into the message).
    pub media_key: [u8; 32],
    /// The full URL the host returned.
    pub url: String,
    /// The direct path (`/v/t62...`).
    pub direct_path: String,
    /// Lengths and hashes.
    pub info: EncryptedInfo,
}

/// The result of [`Media::upload_raw`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RawUploaded {
    /// The full URL the host returned (may be empty for cover photos).
    pub url: String,
    /// The direct path (may be empty for cover photos).
    pub direct_path: String,
    /// The handle a cover photo upload returns, which the profile update names.
    pub handle: Option<UploadHandle>,
    /// SHA-256 of the bytes (the upload token).
    pub file_sha256: [u8; 32],
    /// How many bytes were uploaded.
    pub file_length: u64,
}

/// What an upload host returns for a business cover photo: its id (`fbid`), the
/// signature the profile update hands back (`meta_hmac`) and the upload time (`ts`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadHandle {
    /// The photo's id.
    pub fbid: String,
    /// The host's signature over the upload.
    pub meta_hmac: String,
    /// The upload time, as the host gave it.
    pub ts: String,
}

/// Where a blob is and how to check it: the fields of a received media message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Downloadable {
    /// The media type (decides the keys).
    pub media_type: MediaType,
    /// The media key.
    pub media_key: [u8; 32],
    /// The direct path, preferred over `url`.
    pub direct_path: Option<String>,
    /// The full URL.
    pub url: Option<String>,
    /// `fileEncSha256`.
    pub file_enc_sha256: Option<[u8; 32]>,
    /// `fileSha256`.
    pub file_sha256: Option<[u8; 32]>,
    /// The largest encrypted blob accepted for this download, when tighter than
    /// [`MediaConfig::max_size`] (which always applies): a longer blob is
    /// [`Error::TooLarge`], and no more than the limit is ever fetched.
    pub max_size: Option<u64>,
}

impl Downloadable {
    /// A blob at `direct_path` with the given key and hashes.
    pub fn new(media_type: MediaType, media_key: [u8; 32], direct_path: impl Into<String>) -> Self {
        Self {
            media_type,
            media_key,
            direct_path: Some(direct_path.into()),
            url: None,
            file_enc_sha256: None,
            file_sha256: None,
            max_size: None,
        }
    }

    /// The same, with the hashes to verify.
    #[must_use]
    pub fn with_hashes(mut self, file_enc_sha256: [u8; 32], file_sha256: [u8; 32]) -> Self {
        self.file_enc_sha256 = Some(file_enc_sha256);
        self.file_sha256 = Some(file_sha256);
        self
    }

    /// The same, accepting at most `max_size` encrypted bytes (see
    /// [`Downloadable::max_size`]).
    #[must_use]
    pub fn with_max_size(mut self, max_size: u64) -> Self {
        self.max_size = Some(max_size);
        self
    }

    /// The same, with a full URL (used when there is no direct path).
    #[must_use]
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }
}

/// The default download host when a message has only a direct path.
pub const DEFAULT_MEDIA_HOST: &str = "mmg.whatsapp.net";

/// Media upload and download over a [`Socket`] (for `media_conn`) and HTTP. Cheap to
/// clone.
#[derive(Clone)]
pub struct Media {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) socket: Socket,
    pub(crate) http: reqwest::Client,
    pub(crate) config: MediaConfig,
    conn: Mutex<Option<(MediaConn, Instant)>>,
    /// Re-upload requests waiting for their `mediaretry` notification, by message id.
    pub(crate) retry_waiters: crate::retry_client::Waiters,
    /// Uploads by media type and plaintext SHA-256, when
    /// [`MediaConfig::upload_cache`] is on.
    pub(crate) uploads: Option<UploadCache>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Uploads by media type and plaintext SHA-256 (see [`MediaConfig::upload_cache`]).
pub(crate) type UploadCache = moka::future::Cache<(MediaType, [u8; 32]), Arc<Uploaded>>;

/// Counts bytes read through it and reports them.
struct Counting<R> {
    inner: R,
    done: u64,
    total: Option<u64>,
    progress: Option<Progress>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.done += n;
            if let Some(p) = &self.progress {
                p(self.done, self.total);
            }
        }
        r
    }
}

pub(crate) fn http_err(e: impl std::fmt::Display) -> Error {
    Error::Http(e.to_string())
}

/// A temporary file removed on drop.
struct TempFile {
    path: PathBuf,
    file: Option<tokio::fs::File>,
}

impl TempFile {
    async fn create(dir: Option<&PathBuf>) -> Result<Self, Error> {
        let dir = dir.cloned().unwrap_or_else(std::env::temp_dir);
        let mut r = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut r);
        let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("wa-media-{name}.tmp"));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(Self {
            path,
            file: Some(file),
        })
    }

    fn file(&mut self) -> &mut tokio::fs::File {
        // invariant: the file is only taken in Drop.
        self.file.as_mut().expect("invariant: open until drop")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        drop(self.file.take());
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The process-wide HTTP client for a connect timeout and proxy (a handful of distinct
/// settings at most, so the list stays short).
pub(crate) fn shared_http_client(
    connect_timeout: Duration,
    proxy: Option<&wa_socket::Proxy>,
) -> Result<reqwest::Client, Error> {
    type Clients = Vec<(Duration, Option<wa_socket::Proxy>, reqwest::Client)>;
    static CLIENTS: std::sync::OnceLock<std::sync::Mutex<Clients>> = std::sync::OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, _, c)) = clients
        .iter()
        .find(|(t, p, _)| *t == connect_timeout && p.as_ref() == proxy)
    {
        return Ok(c.clone());
    }
    let mut builder = reqwest::Client::builder().connect_timeout(connect_timeout);
    if let Some(p) = proxy {
        builder = builder.proxy(http_proxy(p)?);
    }
    let client = builder.build().map_err(http_err)?;
    if clients.len() < 16 {
        clients.push((connect_timeout, proxy.cloned(), client.clone()));
    }
    Ok(client)
}

/// `proxy` for the HTTP client: HTTP (`CONNECT` for `https://`, absolute requests for
/// `http://`) with basic auth, or SOCKS5 resolving host names at the proxy.
fn http_proxy(proxy: &wa_socket::Proxy) -> Result<reqwest::Proxy, Error> {
    let bad = || Error::Http(format!("unusable proxy {proxy:?}"));
    let (scheme, host, port, auth) = match proxy {
        wa_socket::Proxy::Http { host, port, auth } => ("http", host, port, auth),
        wa_socket::Proxy::Socks5 { host, port, auth } => ("socks5h", host, port, auth),
        _ => return Err(bad()),
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let mut url = reqwest::Url::parse(&format!("{scheme}://{host}:{port}")).map_err(|_| bad())?;
    if let Some((user, pass)) = auth {
        url.set_username(user).map_err(|()| bad())?;
        url.set_password(Some(pass)).map_err(|()| bad())?;
    }
    reqwest::Proxy::all(url).map_err(http_err)
}

impl Media {
    /// A media client using `socket` for `media_conn` queries. The HTTP client (its
    /// connection pool and TLS roots) is shared by every `Media` of the process with the
    /// same connect timeout and proxy, so many accounts cost one client.
    ///
    /// # Errors
    /// [`Error::Http`] when the HTTP client cannot be built (TLS setup, a proxy address
    /// that is no URL host).
    pub fn new(socket: Socket, config: MediaConfig) -> Result<Self, Error> {
        let http = shared_http_client(config.connect_timeout, config.proxy.as_ref())?;
        let uploads = (config.upload_cache > 0).then(|| {
            moka::future::Cache::builder()
                .max_capacity(config.upload_cache)
                .time_to_live(config.upload_cache_ttl)
                .build()
        });
        Ok(Self {
            inner: Arc::new(Inner {
                socket,
                http,
                config,
                conn: Mutex::new(None),
                retry_waiters: Default::default(),
                uploads,
            }),
        })
    }

    /// The upload hosts and auth, from the cache while its TTL lasts.
    ///
    /// # Errors
    /// Socket errors; [`Error::InvalidMessage`] for a malformed answer.
    pub async fn media_conn(&self, force: bool) -> Result<MediaConn, Error> {
        let mut cached = self.inner.conn.lock().await;
        if let Some((c, at)) = cached.as_ref()
            && !force
            && at.elapsed() < Duration::from_secs(c.ttl)
        {
            return Ok(c.clone());
        }
        let q = Node::builder("iq")
            .attr("to", Jid::server_jid())
            .attr("type", "set")
            .attr("xmlns", "w:m")
            .children([Node::builder("media_conn").build()])
            .build();
        let reply = self.inner.socket.query(q).await?;
        let c = MediaConn::parse(&reply)?;
        *cached = Some((c.clone(), Instant::now()));
        Ok(c)
    }

    fn scheme(&self) -> &'static str {
        if self.inner.config.https {
            "https"
        } else {
            "http"
        }
    }

    /// Encrypts `reader` with a fresh media key and uploads it. Memory stays constant:
    /// the ciphertext goes through a temporary file.
    ///
    /// # Errors
    /// IO errors reading `reader`, [`Error::TooLarge`], [`Error::UploadFailed`] when every
    /// host refused, socket errors for `media_conn`.
    pub async fn upload(
        &self,
        mut reader: impl AsyncRead + Unpin,
        media_type: MediaType,
        progress: Option<Progress>,
    ) -> Result<Uploaded, Error> {
        let path = media_type
            .upload_path()
            .ok_or_else(|| Error::InvalidMessage("media type cannot be uploaded"))?;
        let mut media_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut media_key);
        let keys = MediaKeys::expand(&media_key, media_type);
        let mut tmp = TempFile::create(self.inner.config.temp_dir.as_ref()).await?;
        let info = {
            let mut enc = Encryptor::new(&keys);
            let mut inbuf = vec![0u8; CHUNK];
            let mut out = Vec::with_capacity(CHUNK + 32);
            let file = tmp.file();
            let mut w = tokio::io::BufWriter::with_capacity(CHUNK, file);
            loop {
                let n = reader.read(&mut inbuf).await?;
                if n == 0 {
                    break;
                }
                out.clear();
                enc.update(&inbuf[..n], &mut out);
                w.write_all(&out).await?;
            }
            out.clear();
            let info = enc.finish(&mut out);
            w.write_all(&out).await?;
            w.flush().await?;
            info
        };
        if info.enc_length > self.inner.config.max_size {
            return Err(Error::TooLarge(self.inner.config.max_size));
        }
        let token = URL_SAFE.encode(info.file_enc_sha256);
        let reply = self
            .post_to_hosts(path, &token, &mut tmp, info.enc_length, progress)
            .await?;
        let (url, direct_path) = reply.urls;
        if url.is_empty() && direct_path.is_empty() {
            return Err(Error::UploadFailed(
                "the host named no location for the blob".into(),
            ));
        }
        Ok(Uploaded {
            media_key,
            url,
            direct_path,
            info,
        })
    }

    /// Uploads `reader` as it is, unencrypted, as WhatsApp takes business cover photos
    /// ([`MediaType::BizCoverPhoto`]), catalog images
    /// ([`MediaType::ProductCatalogImage`]) and the media of channel posts (channels are
    /// not end-to-end encrypted; image, video, audio, document and sticker types); the
    /// token is the SHA-256 of the bytes. Memory stays constant: the bytes go through a
    /// temporary file. Never use it for media sent to a chat: those must go through
    /// [`Media::upload`].
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] for a type that is not uploaded raw, IO errors reading
    /// `reader`, [`Error::TooLarge`], [`Error::UploadFailed`] when every host refused,
    /// socket errors for `media_conn`.
    pub async fn upload_raw(
        &self,
        mut reader: impl AsyncRead + Unpin,
        media_type: MediaType,
        progress: Option<Progress>,
    ) -> Result<RawUploaded, Error> {
        if !matches!(
            media_type,
            MediaType::BizCoverPhoto
                | MediaType::ProductCatalogImage
                | MediaType::Image
                | MediaType::Video
                | MediaType::Gif
                | MediaType::Ptv
                | MediaType::Audio
                | MediaType::Ptt
                | MediaType::Document
                | MediaType::Sticker
        ) {
            return Err(Error::InvalidMessage("media type is not uploaded raw"));
        }
        let path = media_type
            .upload_path()
            .ok_or_else(|| Error::InvalidMessage("media type cannot be uploaded"))?;
        let mut tmp = TempFile::create(self.inner.config.temp_dir.as_ref()).await?;
        let (file_sha256, file_length) = {
            let mut hash = Sha256::new();
            let mut len = 0u64;
            let mut buf = vec![0u8; CHUNK];
            let mut w = tokio::io::BufWriter::with_capacity(CHUNK, tmp.file());
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                len += n as u64;
                if len > self.inner.config.max_size {
                    return Err(Error::TooLarge(self.inner.config.max_size));
                }
                hash.update(&buf[..n]);
                w.write_all(&buf[..n]).await?;
            }
            w.flush().await?;
            (<[u8; 32]>::from(hash.finalize()), len)
        };
        let token = URL_SAFE.encode(file_sha256);
        let reply = self
            .post_to_hosts(path, &token, &mut tmp, file_length, progress)
            .await?;
        let (url, direct_path) = reply.urls;
        Ok(RawUploaded {
            url,
            direct_path,
            handle: reply.handle,
            file_sha256,
            file_length,
        })
    }

    /// Deletes a blob from the media servers (whatsmeow's `DeleteMedia`; done after a
    /// history-sync chunk was processed, see `wa-messages`): `DELETE
    /// /mms/<type>/<token>` on the first host `media_conn` names, with the encrypted
    /// file's SHA-256 as the token, the direct path (without its query) and the media
    /// auth, plus `enc_handle` when the blob has one. A blob already gone counts as
    /// deleted.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] for a type that is not uploaded through the media hosts
    /// or an empty direct path, [`Error::Http`] when the host refuses, socket errors for
    /// `media_conn`.
    pub async fn delete(
        &self,
        media_type: MediaType,
        direct_path: &str,
        file_enc_sha256: &[u8; 32],
        enc_handle: Option<&str>,
    ) -> Result<(), Error> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let path = media_type
            .upload_path()
            .ok_or_else(|| Error::InvalidMessage("media type is not on the media hosts"))?;
        let bare = direct_path.split('?').next().unwrap_or_default();
        if bare.is_empty() {
            return Err(Error::InvalidMessage("empty direct path"));
        }
        let conn = self.media_conn(false).await?;
        let host = conn
            .hosts
            .first()
            .map(|h| h.hostname.clone())
            .ok_or_else(|| Error::InvalidMessage("media_conn without hosts"))?;
        let token = URL_SAFE.encode(file_enc_sha256);
        let mut url = format!(
            "{}://{host}{path}/{token}?token={}&d_md={}&auth={}",
            self.scheme(),
            urlencode(&token),
            URL_SAFE_NO_PAD.encode(bare),
            urlencode(&conn.auth),
        );
        if let Some(h) = enc_handle.filter(|h| !h.is_empty()) {
            url.push_str("&e_handle=");
            url.push_str(&urlencode(h));
        }
        let resp = self
            .inner
            .http
            .delete(&url)
            .header("Origin", "https://web.whatsapp.com")
            .header("Referer", "https://web.whatsapp.com/")
            .send()
            .await
            .map_err(http_err)?;
        match resp.status().as_u16() {
            200..=299 | 404 | 410 => Ok(()),
            status => Err(Error::Http(format!("media delete: HTTP {status}"))),
        }
    }

    /// POSTs the temporary file to each upload host in turn (refreshing the auth once
    /// when all refused) until one answers with where the blob is. A host whose reply is
    /// not a usable JSON object of at most [`MAX_UPLOAD_REPLY`] bytes counts as refusing.
    async fn post_to_hosts(
        &self,
        path: &str,
        token: &str,
        tmp: &mut TempFile,
        length: u64,
        progress: Option<Progress>,
    ) -> Result<UploadReply, Error> {
        let mut conn = self.media_conn(false).await?;
        let mut last_err = String::from("no hosts");
        for attempt in 0..2 {
            let hosts: Vec<String> = self
                .inner
                .config
                .extra_upload_hosts
                .iter()
                .cloned()
                .chain(conn.hosts.iter().map(|h| h.hostname.clone()))
                .collect();
            for host in hosts {
                let url = format!(
                    "{}://{host}{path}/{token}?auth={}&token={token}",
                    self.scheme(),
                    urlencode(&conn.auth),
                );
                let file = tmp.file();
                file.rewind().await?;
                let body_reader = Counting {
                    inner: file.try_clone().await?,
                    done: 0,
                    total: Some(length),
                    progress: progress.clone(),
                };
                let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                    body_reader,
                    CHUNK,
                ));
                let resp = self
                    .inner
                    .http
                    .post(&url)
                    .header("Content-Type", "application/octet-stream")
                    .header("Origin", "https://web.whatsapp.com")
                    .header("Content-Length", length)
                    .body(body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => match read_reply(r).await? {
                        Some(text) => match parse_upload_reply(&text) {
                            Some(reply) => return Ok(reply),
                            None => last_err = format!("{host}: unexpected reply {text:.200}"),
                        },
                        None => {
                            last_err =
                                format!("{host}: reply larger than {MAX_UPLOAD_REPLY} bytes");
                        }
                    },
                    Ok(r) => last_err = format!("{host}: HTTP {}", r.status()),
                    Err(e) => last_err = format!("{host}: {e}"),
                }
                tracing::warn!("media upload failed: {last_err}");
            }
            if attempt == 0 {
                // The auth may have expired: refresh it once and try every host again.
                conn = self.media_conn(true).await?;
            }
        }
        Err(Error::UploadFailed(last_err))
    }

    async fn download_url(&self, d: &Downloadable) -> Result<String, Error> {
        self.url_of(d.url.as_deref(), d.direct_path.as_deref())
            .await
    }

    /// Where a blob is fetched from: its direct path on the host of its URL, or on the
    /// first `media_conn` host when it has no URL (as whatsmeow does; the default host
    /// when `media_conn` cannot be had), or the URL itself without a path.
    async fn url_of(&self, url: Option<&str>, direct_path: Option<&str>) -> Result<String, Error> {
        let host = if url.is_none_or(str::is_empty) && direct_path.is_some_and(|p| !p.is_empty()) {
            self.media_conn(false)
                .await
                .ok()
                .and_then(|c| c.hosts.into_iter().next())
                .map(|h| h.hostname)
        } else {
            None
        };
        blob_url(self.scheme(), url, direct_path, host.as_deref())
    }

    pub(crate) async fn get(
        &self,
        url: &str,
        range: Option<String>,
    ) -> Result<reqwest::Response, Error> {
        let mut req = self
            .inner
            .http
            .get(url)
            .header("Origin", "https://web.whatsapp.com");
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        let resp = req.send().await.map_err(http_err)?;
        let status = resp.status().as_u16();
        if matches!(status, 404 | 410) {
            return Err(Error::Gone(status));
        }
        if !resp.status().is_success() {
            return Err(Error::Http(format!("HTTP {}", resp.status())));
        }
        Ok(resp)
    }

    /// Downloads, verifies and decrypts a blob into `writer`; returns the plaintext length.
    /// Nothing is written until the MAC and the encrypted hash have been verified, and the
    /// plaintext hash is checked at the end. Memory stays constant.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] without a location or with a direct path that is not a
    /// path, [`Error::Http`], [`Error::TooLarge`], the verification errors of
    /// [`Decryptor`](crate::Decryptor), IO errors writing.
    pub async fn download(
        &self,
        d: &Downloadable,
        mut writer: impl AsyncWrite + Unpin,
        progress: Option<Progress>,
    ) -> Result<u64, Error> {
        let keys = MediaKeys::expand(&d.media_key, d.media_type);
        let expected = Expected::hashes(d.file_enc_sha256, d.file_sha256);
        let url = self.download_url(d).await?;
        let mut verifier = Verifier::new(&keys);
        let max = self.max_size_of(d);
        let (mut tmp, _) = self
            .fetch_to_temp(&url, max, progress, |chunk| verifier.update(chunk))
            .await?;
        verifier.finish(&expected)?;
        let file = tmp.file();
        file.rewind().await?;
        // Verified above: the second pass only decrypts and hashes the plaintext.
        let mut dec = Opener::new(&keys);
        let mut inbuf = vec![0u8; CHUNK];
        let mut out = Vec::with_capacity(CHUNK + 32);
        loop {
            let n = file.read(&mut inbuf).await?;
            if n == 0 {
                break;
            }
            out.clear();
            dec.update(&inbuf[..n], &mut out);
            writer.write_all(&out).await?;
        }
        out.clear();
        let len = dec.finish(&expected, &mut out)?;
        writer.write_all(&out).await?;
        writer.flush().await?;
        Ok(len)
    }

    /// Downloads an unencrypted blob (the media of a channel post, see
    /// [`channel_media`](crate::channel_media), or a blob at a direct path, see
    /// [`RawMedia::at`](crate::RawMedia::at)) into `writer` and checks it against its
    /// SHA-256 when it has one; returns its length. Nothing is written until the
    /// whole blob is in and its hash matched. Memory stays constant.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] without a location or with a direct path that is not a
    /// path, [`Error::Http`], [`Error::Gone`],
    /// [`Error::TooLarge`], [`Error::HashMismatch`], IO errors writing.
    pub async fn download_raw(
        &self,
        blob: &crate::RawMedia,
        mut writer: impl AsyncWrite + Unpin,
        progress: Option<Progress>,
    ) -> Result<u64, Error> {
        let url = self
            .url_of(blob.url.as_deref(), blob.direct_path.as_deref())
            .await?;
        let mut hash = Sha256::new();
        let max = self.inner.config.max_size;
        let (mut tmp, len) = self
            .fetch_to_temp(&url, max, progress, |chunk| hash.update(chunk))
            .await?;
        if let Some(expected) = &blob.file_sha256
            && !wa_crypto::ct_eq(&hash.finalize(), expected)
        {
            return Err(Error::HashMismatch);
        }
        let file = tmp.file();
        file.rewind().await?;
        tokio::io::copy(file, &mut writer).await?;
        writer.flush().await?;
        Ok(len)
    }

    /// The most encrypted bytes fetched for `d`: its own limit within the configured one.
    fn max_size_of(&self, d: &Downloadable) -> u64 {
        let max = self.inner.config.max_size;
        d.max_size.map_or(max, |m| m.min(max))
    }

    /// GETs `url` into a temporary file (at most `max` bytes of it), handing each chunk
    /// to `inspect` on the way; returns the file and its length.
    async fn fetch_to_temp(
        &self,
        url: &str,
        max: u64,
        progress: Option<Progress>,
        mut inspect: impl FnMut(&[u8]),
    ) -> Result<(TempFile, u64), Error> {
        let mut resp = self.get(url, None).await?;
        let total = resp.content_length();
        if total.is_some_and(|t| t > max) {
            return Err(Error::TooLarge(max));
        }
        let mut tmp = TempFile::create(self.inner.config.temp_dir.as_ref()).await?;
        let mut done = 0u64;
        {
            let mut w = tokio::io::BufWriter::with_capacity(CHUNK, tmp.file());
            while let Some(chunk) = resp.chunk().await.map_err(http_err)? {
                done += chunk.len() as u64;
                if done > max {
                    return Err(Error::TooLarge(max));
                }
                inspect(&chunk);
                w.write_all(&chunk).await?;
                if let Some(p) = &progress {
                    p(done, total);
                }
            }
            w.flush().await?;
        }
        Ok((tmp, done))
    }

    /// Downloads and decrypts plaintext bytes `start..end` (`end = None`: to the end) with
    /// an HTTP range request, as Baileys does. The bytes cannot be authenticated (the MAC
    /// covers the whole blob); use [`Media::download`] when that matters.
    ///
    /// # Errors
    /// [`Error::Http`], [`Error::TooLarge`], [`Error::Truncated`], [`Error::BadPadding`].
    pub async fn download_range(
        &self,
        d: &Downloadable,
        start: u64,
        end: Option<u64>,
    ) -> Result<Vec<u8>, Error> {
        let keys = MediaKeys::expand(&d.media_key, d.media_type);
        let plan = RangePlan::new(start, end);
        let url = self.download_url(d).await?;
        let mut resp = self.get(&url, plan.range_header()).await?;
        let max = self.max_size_of(d);
        let cap = plan.fetch_end.map_or(max, |e| {
            e.saturating_sub(plan.fetch_start)
                .saturating_add(1)
                .min(max)
        });
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http_err)? {
            if (body.len() + chunk.len()) as u64 > cap {
                return Err(Error::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        plan.decrypt(&keys, &body)
    }
}

/// Largest upload host reply read: the reply is a small JSON object (a URL, a direct path,
/// a cover photo handle).
const MAX_UPLOAD_REPLY: usize = 256 * 1024;

/// Reads an upload host's reply body, at most [`MAX_UPLOAD_REPLY`] bytes of it: `None`
/// when the host announces or sends more (nothing beyond the limit is read).
async fn read_reply(mut r: reqwest::Response) -> Result<Option<String>, Error> {
    if r.content_length()
        .is_some_and(|l| l > MAX_UPLOAD_REPLY as u64)
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(http_err)? {
        if body.len() + chunk.len() > MAX_UPLOAD_REPLY {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(String::from_utf8_lossy(&body).into_owned()))
}

/// What an upload host answered: where the blob is and, for a business cover photo, the
/// handle that names it in the profile.
struct UploadReply {
    urls: (String, String),
    handle: Option<UploadHandle>,
}

fn parse_upload_reply(text: &str) -> Option<UploadReply> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let str_of = |k: &str| v.get(k).and_then(|u| u.as_str()).unwrap_or_default();
    let (url, dp) = (str_of("url"), str_of("direct_path"));
    // The host gives `fbid` and `ts` as numbers or strings.
    let text_of = |k: &str| match v.get(k)? {
        serde_json::Value::String(s) if !s.is_empty() && s.len() <= 64 => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let handle = match (text_of("fbid"), text_of("meta_hmac"), text_of("ts")) {
        (Some(fbid), Some(meta_hmac), Some(ts)) => Some(UploadHandle {
            fbid,
            meta_hmac,
            ts,
        }),
        _ => None,
    };
    (!url.is_empty() || !dp.is_empty() || handle.is_some()).then(|| UploadReply {
        urls: (url.to_owned(), dp.to_owned()),
        handle,
    })
}

/// The URL to fetch a blob from: its direct path on the host its URL names (the
/// default host otherwise), or the URL itself. The direct path comes from the peer's
/// message and is appended to the host, so it must be a path (`/...`): anything else
/// (`@evil.example/x` would make the text before it userinfo and move the host, `//x`
/// reads as a network path) is refused.
/// `host` is used for a direct path when `url` names none (the default host without).
fn blob_url(
    scheme: &str,
    url: Option<&str>,
    direct_path: Option<&str>,
    host: Option<&str>,
) -> Result<String, Error> {
    match (direct_path, url) {
        (Some(p), _) if !p.is_empty() => {
            if !p.starts_with('/') || p.starts_with("//") {
                return Err(Error::InvalidMessage(
                    "direct path does not start with one /",
                ));
            }
            let host = url.and_then(host_of).or(host).unwrap_or(DEFAULT_MEDIA_HOST);
            Ok(format!("{scheme}://{host}{p}"))
        }
        (_, Some(u)) if !u.is_empty() => Ok(u.to_owned()),
        _ => Err(Error::InvalidMessage("no direct path or url")),
    }
}

fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', '?']).next()?;
    (!host.is_empty()).then_some(host)
}

pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT_MEDIA_HOST, Error, blob_url, parse_upload_reply};

    #[test]
    fn direct_paths_must_be_paths_on_the_named_host() {
        let full = "https://mmg.whatsapp.net/v/t62/x?ccb=1";
        let url = Some(full);
        assert_eq!(
            blob_url("https", url, Some("/v/t62/abc"), Some("other.host")).unwrap(),
            "https://mmg.whatsapp.net/v/t62/abc"
        );
        assert_eq!(
            blob_url("http", None, Some("/v/t62/abc"), None).unwrap(),
            format!("http://{DEFAULT_MEDIA_HOST}/v/t62/abc")
        );
        // Without a URL, on the media_conn host when one is known.
        assert_eq!(
            blob_url("https", None, Some("/v/t62/abc"), Some("mmg-1.example")).unwrap(),
            "https://mmg-1.example/v/t62/abc"
        );
        // Without a direct path the URL is used as it is.
        assert_eq!(blob_url("https", url, None, None).unwrap(), full);
        assert_eq!(blob_url("https", url, Some(""), None).unwrap(), full);
        // A direct path that would change the host (userinfo, a network path, a port or
        // a host suffix) is refused.
        for p in [
            "@evil.example/x",
            "//evil.example/x",
            ".evil.example/x",
            ":8080/x",
            "evil/x",
        ] {
            for u in [url, None] {
                assert!(
                    matches!(
                        blob_url("https", u, Some(p), Some("h")),
                        Err(Error::InvalidMessage(_))
                    ),
                    "{p} {u:?}"
                );
            }
        }
        assert!(blob_url("https", None, None, Some("h")).is_err());
    }

    #[test]
    fn upload_replies_give_a_location_and_a_cover_photo_handle() {
        let r = parse_upload_reply(r#"{"url":"https://h/v/x","direct_path":"/v/x"}"#).unwrap();
        assert_eq!(r.urls, ("https://h/v/x".to_owned(), "/v/x".to_owned()));
        assert!(r.handle.is_none());
        // `fbid` and `ts` come as numbers or strings.
        for body in [
            r#"{"direct_path":"/v/y","fbid":123456,"meta_hmac":"AbC","ts":1700000000}"#,
            r#"{"fbid":"123456","meta_hmac":"AbC","ts":"1700000000"}"#,
        ] {
            let h = parse_upload_reply(body).unwrap().handle.unwrap();
            assert_eq!(
                (h.fbid.as_str(), h.meta_hmac.as_str(), h.ts.as_str()),
                ("123456", "AbC", "1700000000")
            );
        }
        // Nothing usable, a partial handle, or not JSON.
        for body in [
            "{}",
            r#"{"fbid":1,"ts":2}"#,
            r#"{"fbid":"","meta_hmac":"x","ts":1}"#,
            "<html>",
        ] {
            assert!(parse_upload_reply(body).is_none(), "{body}");
        }
    }
}
