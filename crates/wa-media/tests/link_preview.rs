//! Link previews fetched from a small HTTP server on 127.0.0.1: title, description,
//! image and a 192-pixel thumbnail; redirects followed; pages without a title, non-HTML
//! answers, errors and slow servers give no preview or a typed error.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wa_media::{Error, LINK_THUMBNAIL_WIDTH, Media, MediaConfig, extract_url};
use wa_sim::{Sim, SimConfig};

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Serves the test pages; returns the base URL.
async fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let image = png(400, 300);
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let image = image.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let page = |body: &str| {
                    (
                        200,
                        "text/html; charset=utf-8",
                        body.as_bytes().to_vec(),
                        None,
                    )
                };
                let (status, ctype, body, location): (u16, &str, Vec<u8>, Option<&str>) = match path
                    .as_str()
                {
                    "/page" => page(
                        r#"<html><head><title>fallback</title>
                        <meta property="og:title" content="A &amp; B">
                        <meta property="og:description" content="All about it">
                        <meta property="og:image" content="/img.png">
                        </head><body>hi</body></html>"#,
                    ),
                    "/moved" => (302, "text/plain", Vec::new(), Some("/page")),
                    "/img.png" => (200, "image/png", image, None),
                    "/titleonly" => page("<html><head><title>Just a title</title></head></html>"),
                    "/badimage" => page(
                        r#"<head><meta name="twitter:title" content="tw"><meta property="og:image" content="/garbage"></head>"#,
                    ),
                    "/garbage" => (200, "image/png", b"not an image".to_vec(), None),
                    "/notitle" => {
                        page("<html><head><meta name=description content=x></head></html>")
                    }
                    "/plain" => (200, "text/plain", b"<title>no</title>".to_vec(), None),
                    "/sw.js" => (
                        200,
                        "application/javascript",
                        br#"self.__swData=JSON.parse('{\"client_revision\":1045649367}');"#
                            .to_vec(),
                        None,
                    ),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        page("<title>late</title>")
                    }
                    _ => (404, "text/plain", Vec::new(), None),
                };
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                if let Some(l) = location {
                    head.push_str(&format!("location: {l}\r\n"));
                }
                head.push_str("\r\n");
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&body).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previews_are_read_from_the_page() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account("15550000031").await;
    let (socket, _) = wa_testkit::link(&sim, "15550000031").await;
    let media = Media::new(socket, MediaConfig::default()).unwrap();
    let base = serve().await;
    let t = Duration::from_secs(3);

    let info = media
        .url_info(&format!("{base}/moved"), t)
        .await
        .unwrap()
        .expect("a preview");
    assert_eq!(info.matched_text, format!("{base}/moved"));
    assert_eq!(
        info.canonical_url,
        format!("{base}/page"),
        "after the redirect"
    );
    assert_eq!(info.title, "A & B");
    assert_eq!(info.description.as_deref(), Some("All about it"));
    assert_eq!(
        info.image_url.as_deref(),
        Some(format!("{base}/img.png").as_str())
    );
    let thumb = info.jpeg_thumbnail.expect("a thumbnail");
    let decoded = image::load_from_memory(&thumb).unwrap();
    assert_eq!(decoded.width(), LINK_THUMBNAIL_WIDTH);
    assert_eq!(decoded.height(), 144, "the image's 4:3 kept");
    assert_eq!(&thumb[..2], &[0xFF, 0xD8], "JPEG");

    let info = media
        .url_info(&format!("{base}/titleonly"), t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.title, "Just a title");
    assert_eq!(
        (info.description, info.image_url, info.jpeg_thumbnail),
        (None, None, None)
    );

    let info = media
        .url_info(&format!("{base}/badimage"), t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.title, "tw");
    assert!(info.image_url.is_some());
    assert_eq!(
        info.jpeg_thumbnail, None,
        "an undecodable image only loses the thumbnail"
    );

    assert_eq!(
        media.url_info(&format!("{base}/notitle"), t).await.unwrap(),
        None
    );
    assert_eq!(
        media.url_info(&format!("{base}/plain"), t).await.unwrap(),
        None
    );
    assert!(matches!(
        media.url_info(&format!("{base}/missing"), t).await,
        Err(Error::Gone(404))
    ));
    let started = std::time::Instant::now();
    assert!(matches!(
        media
            .url_info(&format!("{base}/slow"), Duration::from_millis(300))
            .await,
        Err(Error::Http(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        extract_url(&format!("read {base}/page")),
        None,
        "only https is previewed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_image_is_uploaded_whole_on_request() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (socket, _) = wa_testkit::link(&sim, "15550000032").await;
    let mut config = MediaConfig::default();
    config.https = false;
    let media = Media::new(socket, config).unwrap();
    let base = serve().await;
    let t = Duration::from_secs(5);

    // Plain previews upload nothing.
    let before = sim.media_count();
    let plain = media
        .url_info(&format!("{base}/page"), t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(plain.image, None);
    assert_eq!(sim.media_count(), before);

    let info = media
        .url_info_with_image(&format!("{base}/page"), t)
        .await
        .unwrap()
        .expect("a preview");
    assert!(info.jpeg_thumbnail.is_some(), "the small thumbnail too");
    let image = info.image.expect("the image, uploaded");
    assert_eq!((image.width, image.height), (400, 300));
    assert_eq!(sim.media_count(), before + 1);
    // A recipient downloads it from the fields a text message carries, whole.
    let text = wa_proto::e2e::Message {
        extended_text_message: Some(Box::new(wa_proto::e2e::ExtendedTextMessage {
            text: Some(format!("see {base}/page")),
            thumbnail_direct_path: Some(image.direct_path.clone()),
            media_key: Some(image.media_key.to_vec()),
            thumbnail_sha256: Some(image.file_sha256.to_vec()),
            thumbnail_enc_sha256: Some(image.file_enc_sha256.to_vec()),
            ..Default::default()
        })),
        ..Default::default()
    };
    let d = wa_media::downloadable(&text)
        .expect("downloadable")
        // The simulator's media host stands for the default one.
        .with_url(format!("http://{}{}", sim.local_addr(), image.direct_path));
    let mut out = Vec::new();
    media.download(&d, &mut out, None).await.unwrap();
    assert_eq!(out, png(400, 300));

    // An image that does not decode is not uploaded.
    let info = media
        .url_info_with_image(&format!("{base}/badimage"), t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.image, None);
    assert_eq!(sim.media_count(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_version_is_read_from_the_service_worker() {
    let base = serve().await;
    let config = MediaConfig::default();
    let t = Duration::from_secs(3);
    assert_eq!(
        wa_media::fetch_web_version_from(&format!("{base}/sw.js"), &config, t)
            .await
            .unwrap(),
        [2, 3000, 1_045_649_367]
    );
    assert!(matches!(
        wa_media::fetch_web_version_from(&format!("{base}/missing"), &config, t).await,
        Err(Error::Gone(404))
    ));
    assert!(matches!(
        wa_media::fetch_web_version_from(&format!("{base}/titleonly"), &config, t).await,
        Err(Error::Http(_))
    ));
}
