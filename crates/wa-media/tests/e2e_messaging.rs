//! Media messages between two accounts through wa-sim: every kind is uploaded by A's
//! client, sent end-to-end encrypted, received by B's client and downloaded back
//! byte-identical; a tampered blob is refused on B's side.

use std::time::Duration;

use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_media::{Error, Media, MediaConfig, MediaKind, MediaOptions, MediaType, downloadable};
use wa_messages::{Messenger, MessengerConfig, generate_message_id};
use wa_sim::{Sim, SimConfig};
use wa_socket::{Event, Socket};
use wa_types::WaMessage;
use wa_usync::{Usync, UsyncConfig};

const A: &str = "15550000001";
const B: &str = "15550000002";

struct Side {
    socket: Socket,
    messenger: Messenger,
    media: Media,
    events: broadcast::Receiver<Event>,
}

async fn side(sim: &Sim, phone: &str) -> Side {
    let (socket, _) = wa_testkit::link(sim, phone).await;
    let events = socket.events();
    let usync = Usync::new(socket.clone(), &UsyncConfig::default());
    let messenger = Messenger::new(socket.clone(), usync, MessengerConfig::default());
    let mut config = MediaConfig::default();
    config.https = false;
    let media = Media::new(socket.clone(), config).unwrap();
    Side {
        socket,
        messenger,
        media,
        events,
    }
}

async fn received(rx: &mut broadcast::Receiver<Event>, id: &str) -> WaMessage {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(Event::MessagesUpsert(u)) => {
                    if let Some(m) = u
                        .messages
                        .into_iter()
                        .find(|m| m.key.id == id && !m.key.from_me)
                    {
                        return m;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("message in time")
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(120, 90, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_media_kind_travels_between_two_accounts() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let a = side(&sim, A).await;
    let mut b = side(&sim, B).await;
    let me = a
        .socket
        .auth()
        .await
        .unwrap()
        .jid
        .clone()
        .unwrap()
        .parse::<Jid>()
        .unwrap();
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
    for (i, (kind, t)) in kinds.into_iter().enumerate() {
        let body = if kind == MediaKind::Image {
            png()
        } else {
            pattern(40_000 + i * 1_111, i as u8)
        };
        let mut opts = MediaOptions::default();
        opts.caption = Some(format!("{kind:?}"));
        opts.file_name = Some("report.pdf".into());
        let message = a
            .media
            .prepare_bytes(kind, &body, &opts, None)
            .await
            .unwrap();
        let id = generate_message_id(0, Some(&me), &mut rand::rngs::OsRng);
        a.messenger
            .relay_message(&Jid::pn(B), message, &id)
            .await
            .unwrap();
        let got = received(&mut b.events, &id).await;
        let d = downloadable(&got.message).unwrap_or_else(|| panic!("{kind:?} has media"));
        assert_eq!(d.media_type, t);
        let mut out = Vec::new();
        b.media
            .download_message(&got.message, &mut out, None)
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(out, body, "{kind:?} arrives byte-identical");
    }

    // A blob altered on the server is refused by the receiver.
    let message = a
        .media
        .prepare_bytes(
            MediaKind::Document,
            &pattern(5_000, 1),
            &MediaOptions::default(),
            None,
        )
        .await
        .unwrap();
    let path = message
        .document_message
        .as_ref()
        .unwrap()
        .direct_path
        .clone()
        .unwrap();
    let id = generate_message_id(0, Some(&me), &mut rand::rngs::OsRng);
    a.messenger
        .relay_message(&Jid::pn(B), message, &id)
        .await
        .unwrap();
    let got = received(&mut b.events, &id).await;
    assert!(sim.corrupt_media(&path, 100));
    let mut out = Vec::new();
    let err = b
        .media
        .download_message(&got.message, &mut out, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MacMismatch), "{err}");
    assert!(out.is_empty());
    a.socket.close().await;
    b.socket.close().await;
}
