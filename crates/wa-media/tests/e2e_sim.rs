//! Upload and download through wa-sim's media host on 127.0.0.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wa_media::{Downloadable, Error, Media, MediaConfig, MediaType, Uploaded};
use wa_sim::{Sim, SimConfig};

fn media_config() -> MediaConfig {
    let mut c = MediaConfig::default();
    c.https = false;
    c
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn downloadable(up: &Uploaded, t: MediaType) -> Downloadable {
    Downloadable::new(t, up.media_key, up.direct_path.clone())
        .with_url(up.url.clone())
        .with_hashes(up.info.file_enc_sha256, up.info.file_sha256)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_media_type_round_trips_through_the_host() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (socket, _) = wa_testkit::link(&sim, "15550000001").await;
    let media = Media::new(socket.clone(), media_config()).unwrap();
    let conn = media.media_conn(false).await.unwrap();
    assert_eq!(conn.hosts.len(), 1);
    assert_eq!(conn.hosts[0].hostname, sim.local_addr().to_string());

    let types = [
        MediaType::Image,
        MediaType::Video,
        MediaType::Gif,
        MediaType::Audio,
        MediaType::Ptt,
        MediaType::Document,
        MediaType::Sticker,
    ];
    for (i, t) in types.into_iter().enumerate() {
        // Sizes around block and chunk boundaries.
        for size in [0usize, 15, 16, 17, 65_535, 65_536 + 7, 300_001] {
            let plain = pattern(size, i as u8);
            let up_progress = Arc::new(AtomicU64::new(0));
            let p = up_progress.clone();
            let up = media
                .upload(
                    &plain[..],
                    t,
                    Some(Arc::new(move |done, _| p.store(done, Ordering::Relaxed))),
                )
                .await
                .unwrap_or_else(|e| panic!("upload {t:?} {size}: {e}"));
            assert_eq!(up.info.file_length, size as u64);
            assert_eq!(up_progress.load(Ordering::Relaxed), up.info.enc_length);
            let mut out = Vec::new();
            let n = media
                .download(&downloadable(&up, t), &mut out, None)
                .await
                .unwrap_or_else(|e| panic!("download {t:?} {size}: {e}"));
            assert_eq!(n, size as u64);
            assert_eq!(out, plain, "{t:?} {size}");
        }
    }
    assert_eq!(sim.media_count(), 7 * 7);
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_expired_media_are_refused() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (socket, _) = wa_testkit::link(&sim, "15550000001").await;
    let media = Media::new(socket.clone(), media_config()).unwrap();
    let plain = pattern(10_000, 3);

    // A flipped byte in the ciphertext, in the MAC: refused, and nothing written.
    for offset in [0u64, 5_000, 10_015, 10_018 + 9] {
        let up = media
            .upload(&plain[..], MediaType::Image, None)
            .await
            .unwrap();
        let enc_len = up.info.enc_length;
        let offset = offset.min(enc_len - 1);
        assert!(sim.corrupt_media(&up.direct_path, offset));
        let mut out = Vec::new();
        let err = media
            .download(&downloadable(&up, MediaType::Image), &mut out, None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::MacMismatch), "offset {offset}: {err}");
        assert!(out.is_empty(), "no unverified plaintext handed out");
    }

    // A wrong hash in the message: refused.
    let up = media
        .upload(&plain[..], MediaType::Image, None)
        .await
        .unwrap();
    let mut wrong = downloadable(&up, MediaType::Image);
    wrong.file_enc_sha256.as_mut().unwrap()[0] ^= 1;
    let err = media.download(&wrong, Vec::new(), None).await.unwrap_err();
    assert!(matches!(err, Error::EncHashMismatch), "{err}");
    let mut wrong = downloadable(&up, MediaType::Image);
    wrong.file_sha256.as_mut().unwrap()[0] ^= 1;
    let err = media.download(&wrong, Vec::new(), None).await.unwrap_err();
    assert!(matches!(err, Error::HashMismatch), "{err}");

    // The wrong media type derives other keys: the MAC fails.
    let err = media
        .download(&downloadable(&up, MediaType::Video), Vec::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MacMismatch), "{err}");

    // Expired media: the typed "gone" error, not a panic or empty success.
    assert!(sim.delete_media(&up.direct_path));
    let err = media
        .download(&downloadable(&up, MediaType::Image), Vec::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Gone(404)), "{err}");
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_takes_no_more_than_its_limit() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (socket, _) = wa_testkit::link(&sim, "15550000001").await;
    let media = Media::new(socket.clone(), media_config()).unwrap();
    let plain = pattern(10_000, 4);
    let up = media
        .upload(&plain[..], MediaType::AppState, None)
        .await
        .unwrap();
    let enc_len = up.info.enc_length;
    let d = downloadable(&up, MediaType::AppState);

    // Over the download's own limit: refused, nothing written.
    let mut out = Vec::new();
    let err = media
        .download(&d.clone().with_max_size(enc_len - 1), &mut out, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge(m) if m == enc_len - 1),
        "{err}"
    );
    assert!(out.is_empty());
    let err = media
        .download_range(&d.clone().with_max_size(100), 0, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge(100)), "{err}");

    // At the limit: downloaded.
    let n = media
        .download(&d.clone().with_max_size(enc_len), &mut out, None)
        .await
        .unwrap();
    assert_eq!((n, &out), (plain.len() as u64, &plain));

    // The client's limit still applies to a download that allows more.
    let mut config = media_config();
    config.max_size = 1_000;
    let small = Media::new(socket.clone(), config).unwrap();
    let err = small
        .download(&d.with_max_size(1 << 20), Vec::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge(1_000)), "{err}");
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_downloads_decrypt_the_requested_bytes() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (socket, _) = wa_testkit::link(&sim, "15550000001").await;
    let media = Media::new(socket.clone(), media_config()).unwrap();
    let plain = pattern(5_000, 9);
    let up = media
        .upload(&plain[..], MediaType::Video, None)
        .await
        .unwrap();
    let d = downloadable(&up, MediaType::Video);
    for (s, e) in [
        (100u64, Some(300u64)),
        (0, Some(16)),
        (17, Some(4_999)),
        (4_000, None),
        (0, None),
    ] {
        let got = media.download_range(&d, s, e).await.unwrap();
        let want = match e {
            Some(e) => &plain[s as usize..e as usize],
            None => &plain[s as usize..],
        };
        assert_eq!(got, want, "{s}..{e:?}");
    }
    socket.close().await;
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_messages_of_every_kind_download_back() {
    use wa_media::{MediaKind, MediaOptions, downloadable, jpeg_thumbnail};
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (socket, _) = wa_testkit::link(&sim, "15550000001").await;
    let media = Media::new(socket.clone(), media_config()).unwrap();
    let picture = png(640, 480);
    let kinds = [
        (MediaKind::Image, MediaType::Image),
        (MediaKind::Video, MediaType::Video),
        (MediaKind::Gif, MediaType::Gif),
        (MediaKind::Ptv, MediaType::Ptv),
        (MediaKind::Audio, MediaType::Audio),
        (MediaKind::Voice, MediaType::Ptt),
        (MediaKind::Document, MediaType::Document),
        (MediaKind::Sticker, MediaType::Sticker),
    ];
    for (kind, t) in kinds {
        let body = if kind == MediaKind::Image {
            picture.clone()
        } else {
            pattern(50_000, 1)
        };
        let mut opts = MediaOptions::default();
        opts.caption = Some("look".into());
        opts.file_name = Some("file.bin".into());
        opts.seconds = Some(3);
        opts.view_once = kind == MediaKind::Voice;
        let msg = media.prepare_bytes(kind, &body, &opts, None).await.unwrap();
        let d = downloadable(&msg).unwrap_or_else(|| panic!("{kind:?} is downloadable"));
        assert_eq!(d.media_type, t, "{kind:?}");
        let mut out = Vec::new();
        media.download_message(&msg, &mut out, None).await.unwrap();
        assert_eq!(out, body, "{kind:?}");
        match kind {
            MediaKind::Image => {
                let img = msg.image_message.as_ref().unwrap();
                assert_eq!((img.width, img.height), (Some(640), Some(480)));
                assert_eq!(img.caption.as_deref(), Some("look"));
                assert_eq!(img.mimetype.as_deref(), Some("image/jpeg"));
                let thumb = img.jpeg_thumbnail.as_ref().expect("a generated thumbnail");
                let decoded = image::load_from_memory(thumb).unwrap();
                assert_eq!(decoded.width(), wa_media::THUMBNAIL_WIDTH);
                assert_eq!(decoded.height(), 24);
            }
            MediaKind::Voice => {
                let inner = msg
                    .view_once_message
                    .as_ref()
                    .unwrap()
                    .message
                    .as_ref()
                    .unwrap();
                assert_eq!(inner.audio_message.as_ref().unwrap().ptt, Some(true));
            }
            MediaKind::Gif => {
                assert_eq!(msg.video_message.as_ref().unwrap().gif_playback, Some(true));
            }
            MediaKind::Document => {
                let doc = msg.document_message.as_ref().unwrap();
                assert_eq!(doc.file_name.as_deref(), Some("file.bin"));
                assert_eq!(doc.file_length, Some(50_000));
            }
            _ => {}
        }
    }
    // A message without media, and garbage instead of an image.
    assert!(downloadable(&wa_proto::e2e::Message::default()).is_none());
    assert!(jpeg_thumbnail(b"not an image").is_err());
    socket.close().await;
}

/// Baileys' `mediaCache`: with the upload cache on, the same bytes of the same type go
/// up once and every message names that blob; other bytes, another type, or the cache
/// off mean a new upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_cache_sends_the_same_bytes_once() {
    use wa_media::{MediaKind, MediaOptions, downloadable};
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (socket, _) = wa_testkit::link(&sim, "15550000001").await;
    let mut config = media_config();
    config.upload_cache = 16;
    let media = Media::new(socket.clone(), config).unwrap();
    let body = png(64, 48);
    let mut opts = MediaOptions::default();
    opts.caption = Some("first".into());
    let first = media
        .prepare_bytes(MediaKind::Image, &body, &opts, None)
        .await
        .unwrap();
    assert_eq!(sim.media_count(), 1);
    opts.caption = Some("second".into());
    let done = Arc::new(AtomicU64::new(0));
    let d = done.clone();
    let second = media
        .prepare_bytes(
            MediaKind::Image,
            &body,
            &opts,
            Some(Arc::new(move |n, _| d.store(n, Ordering::Relaxed))),
        )
        .await
        .unwrap();
    assert_eq!(
        sim.media_count(),
        1,
        "the same bytes are not uploaded again"
    );
    assert_eq!(done.load(Ordering::Relaxed), body.len() as u64);
    let (a, b) = (
        first.image_message.as_ref().unwrap(),
        second.image_message.as_ref().unwrap(),
    );
    assert_eq!(a.media_key, b.media_key);
    assert_eq!(a.direct_path, b.direct_path);
    assert_eq!(b.caption.as_deref(), Some("second"));
    assert_eq!(b.width, Some(64));
    let mut out = Vec::new();
    media
        .download_message(&second, &mut out, None)
        .await
        .unwrap();
    assert_eq!(out, body);

    // The same bytes as a document, and other bytes: new uploads.
    let doc = media
        .prepare_bytes(MediaKind::Document, &body, &opts, None)
        .await
        .unwrap();
    assert_eq!(sim.media_count(), 2);
    assert_ne!(
        downloadable(&doc).unwrap().media_key,
        downloadable(&first).unwrap().media_key
    );
    let other = pattern(5_000, 9);
    media
        .prepare_bytes(MediaKind::Document, &other, &opts, None)
        .await
        .unwrap();
    assert_eq!(sim.media_count(), 3);
    // A streamed upload is remembered for later sends of the same bytes.
    let streamed = pattern(7_000, 4);
    media
        .prepare(MediaKind::Video, &streamed[..], &opts, None)
        .await
        .unwrap();
    media
        .prepare_bytes(MediaKind::Video, &streamed, &opts, None)
        .await
        .unwrap();
    assert_eq!(sim.media_count(), 4);

    // Off (the default): every send uploads.
    let plain = Media::new(socket.clone(), media_config()).unwrap();
    for _ in 0..2 {
        plain
            .prepare_bytes(MediaKind::Image, &body, &opts, None)
            .await
            .unwrap();
    }
    assert_eq!(sim.media_count(), 6);
    socket.close().await;
}

/// An upload host that takes the upload and answers `200` with a usable location padded
/// to well over the reply limit, announcing the length or not.
async fn oversized_reply_host(announce_length: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Read the whole request (headers, then the body its length announces) so
                // that the client sees the reply, not a reset.
                let mut req = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                let body_start = loop {
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&req[..body_start]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut got = req.len() - body_start;
                while got < length {
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got += n;
                }
                let mut body =
                    br#"{"url":"http://evil.invalid/v/evil","direct_path":"/v/evil"}"#.to_vec();
                body.resize(body.len() + 1024 * 1024, b' ');
                let mut head =
                    String::from("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n");
                if announce_length {
                    head.push_str(&format!("content-length: {}\r\n", body.len()));
                }
                head.push_str("connection: close\r\n\r\n");
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&body).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_upload_reply_is_not_read() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (socket, _) = wa_testkit::link(&sim, "15550000001").await;
    let plain = pattern(1_000, 5);
    for announce_length in [true, false] {
        let mut config = media_config();
        config.extra_upload_hosts = vec![oversized_reply_host(announce_length).await];
        let media = Media::new(socket.clone(), config).unwrap();
        // The first host's reply is refused unread; the blob goes to the next host.
        let up = media
            .upload(&plain[..], MediaType::Document, None)
            .await
            .unwrap();
        assert_ne!(
            up.direct_path, "/v/evil",
            "length announced: {announce_length}"
        );
        let mut out = Vec::new();
        media
            .download(&downloadable(&up, MediaType::Document), &mut out, None)
            .await
            .unwrap();
        assert_eq!(out, plain);
    }
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_is_deleted_only_with_its_hash() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (socket, _) = wa_testkit::link(&sim, "15550000001").await;
    let media = Media::new(socket.clone(), media_config()).unwrap();
    let data = pattern(10_000, 3);
    let up = media
        .upload(&data[..], MediaType::Document, None)
        .await
        .unwrap();
    let blobs = sim.media_count();

    // The wrong hash is refused and the blob stays.
    let wrong = [0u8; 32];
    assert!(matches!(
        media
            .delete(MediaType::Document, &up.direct_path, &wrong, None)
            .await,
        Err(Error::Http(_))
    ));
    assert_eq!(sim.media_count(), blobs);
    // With its hash it is gone; deleting it again is not an error.
    media
        .delete(
            MediaType::Document,
            &up.direct_path,
            &up.info.file_enc_sha256,
            None,
        )
        .await
        .unwrap();
    assert_eq!(sim.media_count(), blobs - 1);
    assert_eq!(sim.media_deleted(), 1);
    assert!(matches!(
        media
            .download(
                &downloadable(&up, MediaType::Document),
                &mut Vec::new(),
                None
            )
            .await,
        Err(Error::Gone(404))
    ));
    media
        .delete(
            MediaType::Document,
            &up.direct_path,
            &up.info.file_enc_sha256,
            None,
        )
        .await
        .unwrap();
    // Not on the media hosts, or no path: refused before any request.
    assert!(matches!(
        media.delete(MediaType::Document, "", &wrong, None).await,
        Err(Error::InvalidMessage(_))
    ));
}
