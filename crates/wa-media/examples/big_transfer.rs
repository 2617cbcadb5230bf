//! Uploads and downloads one large generated blob through an in-process wa-sim and prints
//! the time taken and the process's peak RSS (VmHWM), to show memory stays constant.
//!
//! `cargo run --release -p wa-media --example big_transfer -- 1024` (size in MiB).

#![allow(clippy::print_stdout)]

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, ReadBuf};
use wa_media::{Downloadable, Media, MediaConfig, MediaType};
use wa_sim::{Sim, SimConfig};

/// Generates `left` bytes of a pattern without holding them.
struct Pattern {
    left: u64,
    at: u64,
}

impl AsyncRead for Pattern {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left) as usize;
        let at = self.at;
        let dst = buf.initialize_unfilled_to(n);
        for (i, b) in dst.iter_mut().enumerate() {
            *b = ((at + i as u64) * 31 + 7) as u8;
        }
        buf.advance(n);
        self.left -= n as u64;
        self.at += n as u64;
        Poll::Ready(Ok(()))
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let size = mib << 20;
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    let (socket, _) = wa_testkit::link(&sim, "15550000001").await;
    let mut config = MediaConfig::default();
    config.https = false;
    let media = Media::new(socket.clone(), config).expect("client");
    let before = peak_rss_kib();

    let t = Instant::now();
    let up = media
        .upload(Pattern { left: size, at: 0 }, MediaType::Document, None)
        .await
        .expect("upload");
    let up_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let d = Downloadable::new(MediaType::Document, up.media_key, up.direct_path.clone())
        .with_url(up.url.clone())
        .with_hashes(up.info.file_enc_sha256, up.info.file_sha256);
    let n = media
        .download(&d, tokio::io::sink(), None)
        .await
        .expect("download verifies");
    let down_s = t.elapsed().as_secs_f64();
    assert_eq!(n, size);
    println!(
        "{mib} MiB: upload {up_s:.1} s ({:.0} MiB/s), download {down_s:.1} s ({:.0} MiB/s); \
         peak RSS before {before} KiB, after {} KiB (client and in-process sim)",
        mib as f64 / up_s,
        mib as f64 / down_s,
        peak_rss_kib()
    );
    socket.close().await;
}
