//! A community's picture, through every layer: the admin creates a community and sets
//! its picture; the plain lookup is refused, lookups go the community way (`xmlns="w:g2"`,
//! `<pictures>`), a member's
//! lookup finds it (and knows when it is unchanged), an outsider is refused, and the
//! community's invite code lets an outsider see it.

mod common;

use wa::{PictureLookup, ProfilePictureParams};
use wa_sim::{Sim, SimConfig};

const ADMIN: &str = "15550000001";
const OUTSIDER: &str = "15550000002";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_community_picture_is_looked_up_the_community_way() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(ADMIN).await;
    sim.add_account(OUTSIDER).await;
    let admin = common::linked(&sim, ADMIN).await;
    let outsider = common::linked(&sim, OUTSIDER).await;

    let community = Box::pin(admin.groups().create_community("Hikers", Some("trails")))
        .await
        .unwrap()
        .id
        .clone();
    // The plain lookup does not serve a community (whatsmeow: "you may get a 401").
    let plain = admin
        .chats()
        .profile_picture_info(&community, &ProfilePictureParams::default())
        .await;
    assert!(
        matches!(&plain, Err(e) if matches!(e, wa_chats::Error::Refused { code: 401, .. })),
        "{plain:?}"
    );
    let params = ProfilePictureParams::default().community(true);
    assert_eq!(
        admin
            .chats()
            .profile_picture_info(&community, &params)
            .await
            .unwrap(),
        PictureLookup::NotSet
    );
    let jpeg = [&[0xFF, 0xD8, 0xFF, 0xE0][..], b"mountains", &[0xFF, 0xD9]].concat();
    let id = admin
        .chats()
        .set_profile_picture(Some(&community), jpeg)
        .await
        .unwrap()
        .expect("a picture id");

    let PictureLookup::Found(info) = admin
        .chats()
        .profile_picture_info(&community, &params)
        .await
        .unwrap()
    else {
        panic!("the admin sees the community's picture");
    };
    assert_eq!(info.id, id);
    assert!(info.url.ends_with(&format!("{id}.jpg")), "{}", info.url);
    assert_eq!(
        admin
            .chats()
            .profile_picture_info(&community, &params.clone().existing_id(id.clone()))
            .await
            .unwrap(),
        PictureLookup::Unchanged
    );

    // Not a member: refused, unless it names the community's invite code.
    let refused = outsider
        .chats()
        .profile_picture_info(&community, &params)
        .await;
    assert!(
        matches!(&refused, Err(e) if matches!(e, wa_chats::Error::Refused { code: 401, .. })),
        "{refused:?}"
    );
    let code = admin.groups().invite_code(&community).await.unwrap();
    let PictureLookup::Found(seen) = outsider
        .chats()
        .profile_picture_info(&community, &params.clone().invite_code(code))
        .await
        .unwrap()
    else {
        panic!("the invite code shows the picture");
    };
    assert_eq!(seen.id, id);
}
