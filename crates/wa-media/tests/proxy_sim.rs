//! Media through a proxy: uploads and downloads to wa-sim's media host go through an
//! HTTP proxy (with basic auth) or a SOCKS5 proxy (with a user name and password), and
//! reach the host only through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wa_media::{Downloadable, Media, MediaConfig, MediaType};
use wa_sim::{Sim, SimConfig};
use wa_socket::Proxy;

/// Requests (HTTP) or tunnels (SOCKS5) a test proxy let through, and the credentials it
/// was given.
#[derive(Default)]
struct Seen {
    passed: AtomicUsize,
    credentials: std::sync::Mutex<Vec<String>>,
}

/// An HTTP proxy for `http://` targets: it reads the absolute-form request head, notes
/// its `Proxy-Authorization`, connects to the host it names and relays both ways (the
/// sim's server takes absolute-form requests).
async fn http_proxy() -> (u16, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = s2.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let Ok(b) = client.read_u8().await else {
                        return;
                    };
                    head.push(b);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let target = text.split_whitespace().nth(1).unwrap_or("");
                let Some(hostport) = target
                    .strip_prefix("http://")
                    .and_then(|r| r.split('/').next())
                else {
                    return;
                };
                for line in text.lines() {
                    if let Some(v) = line
                        .to_ascii_lowercase()
                        .strip_prefix("proxy-authorization: ")
                    {
                        seen.credentials.lock().unwrap().push(v.to_owned());
                    }
                }
                let Ok(mut upstream) = TcpStream::connect(hostport).await else {
                    return;
                };
                seen.passed.fetch_add(1, Ordering::SeqCst);
                if upstream.write_all(&head).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, seen)
}

/// A SOCKS5 proxy that takes user name and password authentication (RFC 1928/1929) and
/// connects to the address or host name asked for.
async fn socks5_proxy() -> (u16, Arc<Seen>) {
    async fn tunnel(mut c: TcpStream, seen: Arc<Seen>) -> std::io::Result<()> {
        let (ver, n) = (c.read_u8().await?, c.read_u8().await?);
        let mut methods = vec![0u8; usize::from(n)];
        c.read_exact(&mut methods).await?;
        if ver != 5 || !methods.contains(&2) {
            c.write_all(&[5, 0xff]).await?;
            return Ok(());
        }
        c.write_all(&[5, 2]).await?;
        let _auth_ver = c.read_u8().await?;
        let mut user = vec![0u8; usize::from(c.read_u8().await?)];
        c.read_exact(&mut user).await?;
        let mut pass = vec![0u8; usize::from(c.read_u8().await?)];
        c.read_exact(&mut pass).await?;
        seen.credentials.lock().unwrap().push(format!(
            "{}:{}",
            String::from_utf8_lossy(&user),
            String::from_utf8_lossy(&pass)
        ));
        c.write_all(&[1, 0]).await?;
        let mut req = [0u8; 4];
        c.read_exact(&mut req).await?;
        let host = match req[3] {
            1 => {
                let mut a = [0u8; 4];
                c.read_exact(&mut a).await?;
                std::net::Ipv4Addr::from(a).to_string()
            }
            3 => {
                let mut h = vec![0u8; usize::from(c.read_u8().await?)];
                c.read_exact(&mut h).await?;
                String::from_utf8_lossy(&h).into_owned()
            }
            _ => return Ok(()),
        };
        let port = c.read_u16().await?;
        let mut upstream = TcpStream::connect((host.as_str(), port)).await?;
        seen.passed.fetch_add(1, Ordering::SeqCst);
        c.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        tokio::io::copy_bidirectional(&mut c, &mut upstream).await?;
        Ok(())
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((c, _)) = listener.accept().await {
            tokio::spawn(tunnel(c, s2.clone()));
        }
    });
    (port, seen)
}

/// Uploads and downloads a blob through `media`; the content comes back whole.
async fn round_trip(media: &Media) {
    let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let up = media
        .upload(&plain[..], MediaType::Document, None)
        .await
        .expect("upload through the proxy");
    let d = Downloadable::new(MediaType::Document, up.media_key, up.direct_path.clone())
        .with_url(up.url.clone())
        .with_hashes(up.info.file_enc_sha256, up.info.file_sha256);
    let mut out = Vec::new();
    media
        .download(&d, &mut out, None)
        .await
        .expect("download through the proxy");
    assert_eq!(out, plain);
}

fn config(proxy: Proxy) -> MediaConfig {
    let mut c = MediaConfig::default();
    c.https = false;
    // A distinct connect timeout: a client of its own, not one another test built.
    c.connect_timeout = std::time::Duration::from_millis(19_999);
    c.proxy = Some(proxy);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_goes_through_an_http_proxy() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (socket, _) = wa_testkit::link(&sim, "15550000001").await;
    let (port, seen) = http_proxy().await;
    let proxy = Proxy::parse(&format!("http://ann:s3cret@127.0.0.1:{port}")).unwrap();
    let media = Media::new(socket.clone(), config(proxy)).unwrap();
    round_trip(&media).await;
    assert!(seen.passed.load(Ordering::SeqCst) >= 1);
    // "ann:s3cret" in base64 (the head was lower-cased), on every request.
    let creds = seen.credentials.lock().unwrap().clone();
    assert!(!creds.is_empty());
    assert!(
        creds.iter().all(|c| c == "basic yw5uonmzy3jlda=="),
        "{creds:?}"
    );
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_goes_through_a_socks5_proxy() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (socket, _) = wa_testkit::link(&sim, "15550000001").await;
    let (port, seen) = socks5_proxy().await;
    let proxy = Proxy::parse(&format!("socks5://bob:p@ss:w@127.0.0.1:{port}")).unwrap();
    let media = Media::new(socket.clone(), config(proxy)).unwrap();
    round_trip(&media).await;
    assert!(seen.passed.load(Ordering::SeqCst) >= 1);
    let creds = seen.credentials.lock().unwrap().clone();
    assert!(!creds.is_empty());
    // The password as given, though it holds URL delimiters.
    assert!(creds.iter().all(|c| c == "bob:p@ss:w"), "{creds:?}");
    socket.close().await;
}
