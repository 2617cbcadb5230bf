//! Media re-upload through wa-sim: the account's phone sends an image, the blob expires
//! on the media host, the companion's download fails with `Error::Gone(404)`, the
//! re-upload request (`<receipt type="server-error">`) makes the phone upload it again,
//! and the download from the new direct path verifies and matches.

use std::time::Duration;

use wa_binary::Jid;
use wa_media::{Error, Media, MediaConfig, RetryTarget, downloadable};
use wa_messages::{Messenger, MessengerConfig};
use wa_sim::{Sim, SimConfig};
use wa_usync::{Usync, UsyncConfig};

const A: &str = "15550000001";
const B: &str = "15550000002";

fn image_bytes() -> Vec<u8> {
    (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_media_is_uploaded_again_by_the_phone() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let (socket, _) = wa_testkit::link(&sim, A).await;
    let mut events = socket.events();
    let usync = Usync::new(socket.clone(), &UsyncConfig::default());
    let _messenger = Messenger::new(socket.clone(), usync, MessengerConfig::default());
    let mut config = MediaConfig::default();
    config.https = false;
    config.retry_timeout = Duration::from_secs(10);
    let media = Media::new(socket.clone(), config).unwrap();

    let jpeg = image_bytes();
    let (id, _) = sim
        .phone_send_image(A, &Jid::pn(B), &jpeg, Some("from the phone"))
        .await
        .unwrap();
    let received = wa_testkit::next_upsert(&mut events, |m| m.key.id == id).await;
    assert!(received.key.from_me);
    let mut message = std::sync::Arc::unwrap_or_clone(received.message);
    let old = downloadable(&message).expect("an image");
    let old_path = old.direct_path.clone().unwrap();

    // The blob expires: the download fails with the typed 404.
    assert!(sim.delete_media(&old_path));
    let err = media
        .download_message(&message, Vec::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Gone(404)), "{err}");

    // The phone uploads it again; the message now points at the new blob.
    let target = RetryTarget {
        id: id.clone(),
        chat: received.key.remote_jid.clone(),
        from_me: true,
        participant: None,
    };
    media
        .update_media_message(&target, &mut message)
        .await
        .unwrap();
    assert_eq!(sim.media_retries_answered(), 1);
    let new = downloadable(&message).unwrap();
    assert_ne!(new.direct_path.as_deref(), Some(old_path.as_str()));
    assert_eq!(
        new.media_key, old.media_key,
        "same key, so the same hashes verify"
    );
    let mut out = Vec::new();
    let n = media
        .download_message(&message, &mut out, None)
        .await
        .unwrap();
    assert_eq!(n, jpeg.len() as u64);
    assert_eq!(out, jpeg);

    // A message the phone never sent: it answers NOT_FOUND (2).
    let unknown = RetryTarget {
        id: "3EB0000000000000000000".into(),
        ..target
    };
    let err = media
        .request_reupload(&unknown, &old.media_key)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RetryFailed(2)), "{err}");
    assert_eq!(sim.media_retries_answered(), 2);
    socket.close().await;
}
