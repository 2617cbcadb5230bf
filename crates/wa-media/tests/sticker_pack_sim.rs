//! Sticker packs through wa-sim: a pack published on the simulated sticker service is
//! fetched, each sticker downloads and verifies, a tampered sticker is refused, hostile
//! answers are typed errors; and a sticker pack a phone sends downloads as the
//! `sticker-pack` media type (and comes back after its blob expired).

use std::time::Duration;

use wa_binary::Jid;
use wa_media::{
    DEFAULT_STICKER_SERVICE, Downloadable, Error, MAX_STICKER_PACK_RESPONSE, Media, MediaConfig,
    MediaType, RetryTarget, downloadable,
};
use wa_sim::{Sim, SimConfig, SimSticker};

const A: &str = "15550000001";
const B: &str = "15550000002";

fn config(sim: &Sim) -> MediaConfig {
    let mut c = MediaConfig::default();
    assert_eq!(c.sticker_service, DEFAULT_STICKER_SERVICE);
    c.https = false;
    c.sticker_service = format!("http://{}", sim.local_addr());
    c.retry_timeout = Duration::from_secs(10);
    c
}

fn sticker(n: usize, seed: u8, emoji: &str) -> SimSticker {
    SimSticker {
        bytes: (0..n)
            .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
            .collect(),
        emojis: vec![emoji.to_owned()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_pack_is_fetched_and_each_sticker_verifies() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    let (socket, _) = wa_testkit::link(&sim, A).await;
    let media = Media::new(socket.clone(), config(&sim)).unwrap();

    // An id with characters that would change the URL unless encoded.
    let id = "cuppy&lg=fr#1";
    let stickers = [
        sticker(9_000, 1, "☕"),
        sticker(30_000, 2, "😊"),
        sticker(17, 3, "🎉"),
    ];
    let paths = sim
        .publish_sticker_pack(id, "Cuppy", "WhatsApp", &stickers)
        .unwrap();

    let pack = media.fetch_sticker_pack(id).await.unwrap();
    assert_eq!(pack.id, id);
    assert_eq!(
        (pack.name.as_str(), pack.publisher.as_str()),
        ("Cuppy", "WhatsApp")
    );
    assert_eq!(pack.file_size, Some(39_017));
    assert_eq!(pack.stickers.len(), 3);
    for ((item, want), path) in pack.stickers.iter().zip(&stickers).zip(&paths) {
        assert_eq!(&item.direct_path, path);
        assert_eq!(item.emojis, want.emojis);
        assert_eq!(item.file_size, want.bytes.len() as u64);
        assert_eq!(item.mimetype, "image/webp");
        let d = Downloadable::from(item);
        assert_eq!(d.media_type, MediaType::Sticker);
        let mut out = Vec::new();
        let n = media.download(&d, &mut out, None).await.unwrap();
        assert_eq!(n, want.bytes.len() as u64);
        assert_eq!(out, want.bytes);
    }

    // One bit of a stored sticker flipped: refused, nothing written.
    assert!(sim.corrupt_media(&paths[1], 100));
    let mut out = Vec::new();
    let err = media
        .download(&Downloadable::from(&pack.stickers[1]), &mut out, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::MacMismatch | Error::EncHashMismatch),
        "{err}"
    );
    assert!(out.is_empty());
    // A sticker whose hash in the pack was altered is refused too.
    let mut altered = Downloadable::from(&pack.stickers[0]);
    altered.file_sha256 = Some([0; 32]);
    let err = media
        .download(&altered, Vec::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::HashMismatch), "{err}");

    // Unknown pack, and ids refused before any request.
    let err = media.fetch_sticker_pack("no-such-pack").await.unwrap_err();
    assert!(matches!(err, Error::StickerPackNotFound), "{err}");
    for bad in ["", "a b", "x\r\nHost: evil", "caf\u{e9}"] {
        let err = media.fetch_sticker_pack(bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidPackId), "{bad:?}: {err}");
    }
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sticker_service_answers_are_typed_errors() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    let (socket, _) = wa_testkit::link(&sim, A).await;
    let media = Media::new(socket.clone(), config(&sim)).unwrap();

    let good_key = "Rz9pEr5Jt19P4OlgR9tLt2t/KSyLaqX/OI5zJVW9h6I=";
    let item = |key: &str| {
        format!(
            r#"[{{"sticker-pack-id":"p","stickers":[{{"media-key":"{key}","enc-file-hash":"{good_key}","file-hash":"{good_key}","direct-path":"/v/x"}}]}}]"#
        )
    };
    // The well-formed answer parses, so each refusal below is the altered part's.
    sim.set_sticker_service_answer("ok", item(good_key).into_bytes())
        .unwrap();
    assert_eq!(
        media.fetch_sticker_pack("ok").await.unwrap().stickers.len(),
        1
    );

    let invalid: [(&str, Vec<u8>); 6] = [
        ("not-json", b"{not json".to_vec()),
        ("object", br#"{"sticker-pack-id":"p"}"#.to_vec()),
        ("bad-base64", item("Rz9p!!").into_bytes()),
        ("short-key", item("AAAA").into_bytes()),
        (
            "deep",
            format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)).into_bytes(),
        ),
        ("wrong-type", br#"[{"name":["x"]}]"#.to_vec()),
    ];
    for (id, body) in invalid {
        sim.set_sticker_service_answer(id, body).unwrap();
        let err = media.fetch_sticker_pack(id).await.unwrap_err();
        assert!(matches!(err, Error::InvalidStickerPack(_)), "{id}: {err}");
    }
    sim.set_sticker_service_answer("empty", b"[]".to_vec())
        .unwrap();
    let err = media.fetch_sticker_pack("empty").await.unwrap_err();
    assert!(matches!(err, Error::StickerPackNotFound), "{err}");
    // An answer over the limit is refused without reading it all.
    let mut huge = b"[".to_vec();
    huge.resize(MAX_STICKER_PACK_RESPONSE + 10, b' ');
    huge.push(b']');
    sim.set_sticker_service_answer("huge", huge).unwrap();
    let err = media.fetch_sticker_pack("huge").await.unwrap_err();
    assert!(matches!(err, Error::TooLarge(_)), "{err}");
    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticker_pack_message_downloads_as_a_sticker_pack() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let (socket, _) = wa_testkit::link(&sim, A).await;
    let mut events = socket.events();
    let usync = wa_usync::Usync::new(socket.clone(), &wa_usync::UsyncConfig::default());
    let _messenger = wa_messages::Messenger::new(
        socket.clone(),
        usync,
        wa_messages::MessengerConfig::default(),
    );
    let media = Media::new(socket.clone(), config(&sim)).unwrap();

    let blob: Vec<u8> = (0..70_000u32).map(|i| (i * 11 % 253) as u8).collect();
    let (id, _) = sim
        .phone_send_sticker_pack(A, &Jid::pn(B), "pack-7", "Seven", &blob)
        .await
        .unwrap();
    let received = wa_testkit::next_upsert(&mut events, |m| m.key.id == id).await;
    let mut message = std::sync::Arc::unwrap_or_clone(received.message);
    let pack = message
        .sticker_pack_message
        .as_deref()
        .expect("a sticker pack");
    assert_eq!(pack.sticker_pack_id.as_deref(), Some("pack-7"));
    let d = downloadable(&message).expect("downloadable");
    assert_eq!(d.media_type, MediaType::StickerPack);
    let mut out = Vec::new();
    let n = media
        .download_message(&message, &mut out, None)
        .await
        .unwrap();
    assert_eq!(n, blob.len() as u64);
    assert_eq!(out, blob);

    // Under another label (e.g. a sticker's image keys) the blob does not verify.
    let mut as_sticker = d.clone();
    as_sticker.media_type = MediaType::Sticker;
    let err = media
        .download(&as_sticker, Vec::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MacMismatch), "{err}");

    // The blob expires; the phone uploads it again and the message follows it.
    let old_path = d.direct_path.clone().unwrap();
    assert!(sim.delete_media(&old_path));
    let err = media
        .download_message(&message, Vec::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Gone(404)), "{err}");
    let target = RetryTarget {
        id,
        chat: received.key.remote_jid.clone(),
        from_me: true,
        participant: None,
    };
    media
        .update_media_message(&target, &mut message)
        .await
        .unwrap();
    let moved = downloadable(&message).unwrap();
    assert_ne!(moved.direct_path.as_deref(), Some(old_path.as_str()));
    let mut out = Vec::new();
    media
        .download_message(&message, &mut out, None)
        .await
        .unwrap();
    assert_eq!(out, blob);
    socket.close().await;
}
