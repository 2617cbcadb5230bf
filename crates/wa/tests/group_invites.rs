//! Group invites sent through the facade: an invite without a thumbnail gets the
//! group's picture preview, as Baileys fetches it; without a picture it goes without,
//! and a thumbnail the caller gave is kept.

mod common;

use wa::prelude::*;
use wa_sim::{Sim, SimConfig};

const ADMIN: &str = "15550000051";
const FRIEND: &str = "15550000052";
const GUEST: &str = "15550000053";

fn invite(group: &Jid, code: &str, thumbnail: Option<Vec<u8>>) -> MessageContent {
    MessageContent::GroupInvite {
        group: group.clone(),
        code: code.to_owned(),
        expiration: 0,
        group_name: "Club".into(),
        caption: Some("join us".into()),
        jpeg_thumbnail: thumbnail,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_carry_the_group_picture() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    for p in [ADMIN, FRIEND, GUEST] {
        sim.add_account(p).await;
    }
    let admin = common::linked(&sim, ADMIN).await;
    let guest = common::linked(&sim, GUEST).await;
    let mut inbox = guest.events();
    let group = admin
        .groups()
        .create("Club", &[Jid::pn(FRIEND)])
        .await
        .unwrap()
        .id
        .clone();
    let code = admin.groups().invite_code(&group).await.unwrap();
    let thumbnail_of = |m: &WaMessage| {
        m.message
            .group_invite_message
            .as_deref()
            .expect("an invite")
            .jpeg_thumbnail
            .clone()
    };

    // No picture yet: the invite goes without a thumbnail.
    let key = admin
        .send_message(&Jid::pn(GUEST), invite(&group, &code, None))
        .await
        .unwrap();
    let got = common::received(&mut inbox, &key.id).await;
    assert_eq!(thumbnail_of(&got), None);

    // With a picture, its preview is fetched and sent along.
    let jpeg = [
        &[0xFF, 0xD8, 0xFF, 0xE0][..],
        b"club picture",
        &[0xFF, 0xD9],
    ]
    .concat();
    admin
        .chats()
        .set_profile_picture(Some(&group), jpeg.clone())
        .await
        .unwrap();
    let key = admin
        .send_message(&Jid::pn(GUEST), invite(&group, &code, None))
        .await
        .unwrap();
    let got = common::received(&mut inbox, &key.id).await;
    assert_eq!(thumbnail_of(&got), Some(jpeg));
    let card = got.message.group_invite_message.as_deref().unwrap();
    assert_eq!(card.invite_code.as_deref(), Some(code.as_str()));
    assert_eq!(card.caption.as_deref(), Some("join us"));

    // A thumbnail the caller gave is kept as given.
    let given = vec![0xFF, 0xD8, 0xFF, 0xD9];
    let key = admin
        .send_message(&Jid::pn(GUEST), invite(&group, &code, Some(given.clone())))
        .await
        .unwrap();
    let got = common::received(&mut inbox, &key.id).await;
    assert_eq!(thumbnail_of(&got), Some(given));
}
