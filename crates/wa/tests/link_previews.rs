//! Link previews on sent text: with `WaConfig::link_previews` set, a page that gives no
//! preview in time leaves the text to go out without one, promptly; a preview the
//! caller gave is sent as given.

mod common;

use std::time::{Duration, Instant};

use wa::LinkPreview;
use wa::prelude::*;
use wa_sim::{Sim, SimConfig};

const ME: &str = "15550000041";
const FRIEND: &str = "15550000042";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_go_out_with_or_without_a_preview() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(ME).await;
    sim.add_account(FRIEND).await;
    let me = common::linked_with(&sim, ME, |c| {
        c.link_previews = Some(Duration::from_millis(400));
    })
    .await;
    let friend = common::linked(&sim, FRIEND).await;
    let mut inbox = friend.events();

    // The page cannot be reached: the text is sent anyway, without a preview.
    let started = Instant::now();
    let text = "look at https://preview.invalid/page now";
    let key = me
        .send_message(&Jid::pn(FRIEND), MessageContent::text(text))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let got = common::received(&mut inbox, &key.id).await;
    let ext = got.message.extended_text_message.as_deref().expect("text");
    assert_eq!(ext.text.as_deref(), Some(text));
    assert_eq!(ext.matched_text, None);

    // A preview given by the caller is sent as it is, not fetched again.
    let given = LinkPreview {
        matched_text: "https://preview.invalid/page".into(),
        title: Some("Given title".into()),
        description: Some("given".into()),
        jpeg_thumbnail: None,
        image: None,
    };
    let key = me
        .send_message(
            &Jid::pn(FRIEND),
            MessageContent::Text {
                text: text.into(),
                link_preview: Some(given),
            },
        )
        .await
        .unwrap();
    let got = common::received(&mut inbox, &key.id).await;
    let ext = got.message.extended_text_message.as_deref().expect("text");
    assert_eq!(
        ext.matched_text.as_deref(),
        Some("https://preview.invalid/page")
    );
    assert_eq!(ext.title.as_deref(), Some("Given title"));

    // An edit's new text is previewed the same way (here: nothing to fetch, sent as is).
    let started = Instant::now();
    let edit = me
        .send_message(
            &Jid::pn(FRIEND),
            MessageContent::Edit {
                key: key.clone(),
                new_content: Box::new(MessageContent::text("now https://preview.invalid/b")),
                timestamp_ms: 1,
            },
        )
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let got = common::received(&mut inbox, &edit.id).await;
    let edited = got
        .message
        .protocol_message
        .as_deref()
        .and_then(|p| p.edited_message.as_deref())
        .and_then(|m| m.extended_text_message.as_deref())
        .expect("edited text");
    assert_eq!(
        edited.text.as_deref(),
        Some("now https://preview.invalid/b")
    );
    assert_eq!(edited.matched_text, None);
}
