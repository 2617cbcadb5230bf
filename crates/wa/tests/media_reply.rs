//! Media that quotes and mentions: a reply with an image, and a document mentioning the
//! friend, both downloaded byte for byte by the friend.

mod common;

use wa::MessageBuilder;
use wa::prelude::*;
use wa_sim::{Sim, SimConfig};

const ME: &str = "15550000001";
const FRIEND: &str = "15550000002";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_replies_and_mentions_arrive_whole() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(ME).await;
    sim.add_account(FRIEND).await;
    let me = common::linked(&sim, ME).await;
    let friend = common::linked(&sim, FRIEND).await;
    let mut me_events = me.events();
    let mut friend_events = friend.events();

    let question = friend
        .send_message(&Jid::pn(ME), MessageContent::text("a picture?"))
        .await
        .unwrap();
    let question = common::received(&mut me_events, &question.id).await;

    // A reply with an image quotes the question.
    let picture: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let mut options = MediaOptions::default();
    options.caption = Some("here".into());
    options.mimetype = Some("image/jpeg".into());
    options.thumbnail = Some(vec![0xFF, 0xD8, 0xFF, 0xD9]);
    let key = me
        .reply_media(&question, MediaKind::Image, &picture, &options)
        .await
        .unwrap();
    let got = common::received(&mut friend_events, &key.id).await;
    let image = got.message.image_message.as_ref().expect("an image");
    assert_eq!(image.caption.as_deref(), Some("here"));
    let ctx = image.context_info.as_ref().expect("a quote");
    assert_eq!(ctx.stanza_id.as_deref(), Some(&*question.key.id));
    assert_eq!(
        ctx.quoted_message
            .as_ref()
            .and_then(|q| message_text(q))
            .map(str::to_owned),
        Some("a picture?".to_owned())
    );
    let mut bytes = Vec::new();
    friend.download_media(&got, &mut bytes).await.unwrap();
    assert_eq!(bytes, picture);

    // A document that mentions the friend, built from a prepared medium.
    let doc = b"minutes of the meeting".to_vec();
    let mut doc_options = MediaOptions::default();
    doc_options.file_name = Some("minutes.txt".into());
    doc_options.mimetype = Some("text/plain".into());
    let prepared = me
        .media()
        .prepare_bytes(MediaKind::Document, &doc, &doc_options, None)
        .await
        .unwrap();
    let built = MessageBuilder::new(
        Jid::pn(FRIEND),
        MessageContent::Prepared(Box::new(prepared)),
    )
    .mentions(vec![Jid::pn(FRIEND)])
    .build(&mut rand_core::OsRng)
    .unwrap();
    let key = me.relay(&Jid::pn(FRIEND), built).await.unwrap();
    let got = common::received(&mut friend_events, &key.id).await;
    let document = got.message.document_message.as_ref().expect("a document");
    assert_eq!(document.file_name.as_deref(), Some("minutes.txt"));
    assert_eq!(
        document
            .context_info
            .as_ref()
            .map(|c| c.mentioned_jid.clone()),
        Some(vec![Jid::pn(FRIEND).to_string()])
    );
    let mut bytes = Vec::new();
    friend.download_media(&got, &mut bytes).await.unwrap();
    assert_eq!(bytes, doc);
}
