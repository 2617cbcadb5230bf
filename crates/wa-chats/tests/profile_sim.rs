//! Profile-picture lookups with parameters (known id, invite code), the rich about
//! text (`w:mex` `UpdateTextStatus`) and the `UserAbout` event, between accounts linked
//! to wa-sim; and the parsers of those replies and notifications on hostile input.

use std::time::Duration;

use sha2::Digest as _;
use tokio::sync::broadcast;
use wa_binary::{Jid, Node};
use wa_chats::{
    AboutInput, Chats, ChatsConfig, Error, MAX_STATUS_LEN, PictureLookup, ProfilePictureParams,
    parse_about_notification, parse_picture_info,
};
use wa_sim::{Sim, SimConfig};
use wa_socket::Event;
use wa_testkit::next_event;

const A: &str = "15550000001";
const B: &str = "15550000002";

/// Dropping `_sim` stops the server, so every test keeps it bound.
struct Pair {
    sim: Sim,
    a: Chats,
    b: Chats,
    ev_b: broadcast::Receiver<Event>,
    _sockets: (wa_socket::Socket, wa_socket::Socket),
}

async fn pair() -> Pair {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = wa_testkit::link(&sim, A).await;
    let (sock_b, _) = wa_testkit::link(&sim, B).await;
    let a = Chats::new(sock_a.clone(), &ChatsConfig::default());
    let b = Chats::new(sock_b.clone(), &ChatsConfig::default());
    Pair {
        ev_b: sock_b.events(),
        sim,
        a,
        b,
        _sockets: (sock_a, sock_b),
    }
}

fn found(l: PictureLookup) -> wa_chats::ProfilePictureInfo {
    match l {
        PictureLookup::Found(p) => p,
        other => panic!("expected a picture, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picture_info_with_the_known_id_is_unchanged_until_the_owner_changes_it() {
    let Pair { sim, a, b, .. } = pair().await;
    let params = ProfilePictureParams::default();
    assert_eq!(
        b.profile_picture_info(&Jid::pn(A), &params).await.unwrap(),
        PictureLookup::NotSet
    );
    let jpeg = vec![0xFF, 0xD8, 0xFF, 0xD9];
    let id1 = a
        .set_profile_picture(None, jpeg.clone())
        .await
        .unwrap()
        .expect("a picture id");

    let info = found(b.profile_picture_info(&Jid::pn(A), &params).await.unwrap());
    assert_eq!(info.id, id1);
    assert_eq!(info.kind.as_deref(), Some("image"));
    assert_eq!(
        info.direct_path.as_deref(),
        Some(format!("/pp/{A}/{id1}.jpg").as_str())
    );
    assert_eq!(
        info.hash.as_deref(),
        Some(sha2::Sha256::digest(&jpeg).as_slice())
    );
    // The old call gives the same picture.
    let url = b.profile_picture_url(&Jid::pn(A), false).await.unwrap();
    assert_eq!(url.map(|p| p.url), Some(info.url.clone()));

    // Naming the current id: unchanged, for the full image and the thumbnail.
    let known = ProfilePictureParams::default().existing_id(id1.clone());
    assert_eq!(
        b.profile_picture_info(&Jid::pn(A), &known).await.unwrap(),
        PictureLookup::Unchanged
    );
    let preview = known.clone().preview(true);
    assert_eq!(
        b.profile_picture_info(&Jid::pn(A), &preview).await.unwrap(),
        PictureLookup::Unchanged
    );

    // A new picture: the same question now gets it.
    let jpeg2 = vec![0xFF, 0xD8, 0x00, 0xFF, 0xD9];
    let id2 = a.set_profile_picture(None, jpeg2).await.unwrap().unwrap();
    assert_ne!(id1, id2);
    let info = found(b.profile_picture_info(&Jid::pn(A), &known).await.unwrap());
    assert_eq!(info.id, id2);
    assert_eq!(sim.profile_picture(A).map(|p| p.len()), Some(5));

    // Parameters the client refuses before sending.
    assert!(matches!(
        b.profile_picture_info(
            &Jid::pn(A),
            &ProfilePictureParams::default().existing_id("")
        )
        .await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        b.profile_picture_info(
            &Jid::pn(A),
            &ProfilePictureParams::default().common_gid(Jid::pn(B))
        )
        .await,
        Err(Error::InvalidRequest(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_picture_with_an_invite_code_for_a_non_member() {
    let Pair { sim, a, b, .. } = pair().await;
    let g = sim
        .phone_create_group(A, "closed", &[])
        .expect("group created");
    let jpeg = vec![0xFF, 0xD8, 0xFF, 0xD9];
    let id = a
        .set_profile_picture(Some(&g), jpeg)
        .await
        .unwrap()
        .expect("a picture id");
    // A member sees it.
    let mine = found(
        a.profile_picture_info(&g, &ProfilePictureParams::default())
            .await
            .unwrap(),
    );
    assert_eq!(mine.id, id);

    // A non-member is refused, also with a wrong code.
    let refused = |r: Result<PictureLookup, Error>| {
        assert!(
            matches!(r, Err(Error::Refused { code: 401, .. })),
            "expected 401, got {r:?}"
        );
    };
    refused(
        b.profile_picture_info(&g, &ProfilePictureParams::default())
            .await,
    );
    refused(
        b.profile_picture_info(
            &g,
            &ProfilePictureParams::default().invite_code("WRONGCODE"),
        )
        .await,
    );

    // With the group's invite code, the picture.
    let code = sim.group_invite_code(&g).expect("an invite code");
    let invited = ProfilePictureParams::default().invite_code(code.clone());
    let info = found(b.profile_picture_info(&g, &invited).await.unwrap());
    assert_eq!(info.id, id);
    assert!(info.url.ends_with(&format!("{id}.jpg")), "{}", info.url);
    assert_eq!(
        b.profile_picture_info(&g, &invited.existing_id(id))
            .await
            .unwrap(),
        PictureLookup::Unchanged
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn about_with_emoji_and_duration_reaches_status_lookups_and_user_about_events() {
    let Pair {
        sim,
        a,
        b,
        mut ev_b,
        ..
    } = pair().await;
    let about = AboutInput::new("Out hiking")
        .emoji("🏔")
        .duration(Duration::from_secs(3600));
    a.set_about(&about).await.unwrap();
    let (text, emoji, expires) = sim.about(A).expect("an about text");
    assert_eq!(text, "Out hiking");
    assert_eq!(emoji.as_deref(), Some("🏔"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expires = expires.expect("an expiry");
    assert!(expires > now + 3000 && expires <= now + 3601, "{expires}");

    let seen = b.status(&Jid::pn(A)).await.unwrap().expect("a status");
    assert_eq!(seen.text, "Out hiking");
    let u = next_event(&mut ev_b, |e| match e {
        Event::UserAbout(u) => Some(u),
        _ => None,
    })
    .await;
    assert_eq!(u.jid, Jid::pn(A));
    assert_eq!(u.status, "Out hiking");
    assert!(u.timestamp > 1_600_000_000);

    // The plain status call is told the same way, and clears emoji and expiry.
    a.set_status("Back home").await.unwrap();
    let u = next_event(&mut ev_b, |e| match e {
        Event::UserAbout(u) => Some(u),
        _ => None,
    })
    .await;
    assert_eq!(u.status, "Back home");
    assert_eq!(sim.about(A), Some(("Back home".into(), None, None)));

    // A short-lived text goes away.
    a.set_about(&AboutInput::new("brb").duration(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(b.status(&Jid::pn(A)).await.unwrap().unwrap().text, "brb");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(b.status(&Jid::pn(A)).await.unwrap(), None);

    // Refused before sending.
    for bad in [
        AboutInput::new("x".repeat(1025)),
        AboutInput::new("x").emoji(""),
        AboutInput::new("x").emoji("🏔".repeat(20)),
        AboutInput::new("x").duration(Duration::from_secs(u64::from(u32::MAX) + 1)),
    ] {
        assert!(matches!(
            a.set_about(&bad).await,
            Err(Error::InvalidRequest(_))
        ));
    }
}

// The parsers on hostile input.

fn reply(children: Vec<Node>) -> Node {
    Node::builder("iq")
        .attr("type", "result")
        .children(children)
        .build()
}

fn picture() -> wa_binary::NodeBuilder {
    Node::builder("picture")
        .attr("id", "123")
        .attr("url", "https://pps.example/x.jpg")
}

#[test]
fn picture_info_replies() {
    // No picture: unchanged after an id, else none.
    assert_eq!(
        parse_picture_info(&reply(vec![]), true, false).unwrap(),
        PictureLookup::Unchanged
    );
    assert_eq!(
        parse_picture_info(&reply(vec![]), false, false).unwrap(),
        PictureLookup::NotSet
    );
    // Status 304 and 204.
    let status = |s: &str| {
        reply(vec![
            Node::builder("picture")
                .attr("status", s.to_owned())
                .build(),
        ])
    };
    assert_eq!(
        parse_picture_info(&status("304"), true, false).unwrap(),
        PictureLookup::Unchanged
    );
    assert_eq!(
        parse_picture_info(&status("204"), false, false).unwrap(),
        PictureLookup::NotSet
    );
    assert!(matches!(
        parse_picture_info(&status("abc"), false, false),
        Err(Error::Malformed(_))
    ));
    assert!(matches!(
        parse_picture_info(&status(&"9".repeat(100)), false, false),
        Err(Error::Malformed(_))
    ));
    // Every attribute.
    let full = reply(vec![
        picture()
            .attr("type", "preview")
            .attr("direct_path", "/pp/x")
            .attr("hash", "AAEC")
            .build(),
    ]);
    let info = found(parse_picture_info(&full, false, false).unwrap());
    assert_eq!(info.id, "123");
    assert_eq!(info.kind.as_deref(), Some("preview"));
    assert_eq!(info.direct_path.as_deref(), Some("/pp/x"));
    assert_eq!(info.hash.as_deref(), Some(&[0u8, 1, 2][..]));
    // A hash that is not base64 is left out; an over-long one refused.
    let junk = reply(vec![picture().attr("hash", "!!not base64!!").build()]);
    assert_eq!(
        found(parse_picture_info(&junk, false, false).unwrap()).hash,
        None
    );
    let long = reply(vec![picture().attr("hash", "A".repeat(10_000)).build()]);
    assert!(matches!(
        parse_picture_info(&long, false, false),
        Err(Error::Malformed(_))
    ));
    // Over-long id or URL, a missing id, attributes that are not strings.
    for bad in [
        picture().attr("id", "9".repeat(129)).build(),
        picture().attr("url", "u".repeat(5000)).build(),
        Node::builder("picture").attr("url", "https://x").build(),
        picture().attr("type", Jid::pn("1")).build(),
    ] {
        assert!(
            matches!(
                parse_picture_info(&reply(vec![bad.clone()]), false, false),
                Err(Error::Malformed(_))
            ),
            "{bad:?}"
        );
    }
    // No URL: no picture.
    let no_url = reply(vec![Node::builder("picture").attr("id", "1").build()]);
    assert_eq!(
        parse_picture_info(&no_url, false, false).unwrap(),
        PictureLookup::NotSet
    );
    // Communities: wrapped in <pictures>, which must be there.
    let wrapped = reply(vec![
        Node::builder("pictures")
            .children([picture().build()])
            .build(),
    ]);
    assert_eq!(
        found(parse_picture_info(&wrapped, false, true).unwrap()).id,
        "123"
    );
    assert!(matches!(
        parse_picture_info(&reply(vec![picture().build()]), false, true),
        Err(Error::Malformed(_))
    ));
    assert_eq!(
        parse_picture_info(&reply(vec![Node::new("pictures")]), true, true).unwrap(),
        PictureLookup::Unchanged
    );
}

fn status_notification(from: Option<Jid>, t: Option<&str>, set: Option<Node>) -> Node {
    Node::builder("notification")
        .attr("type", "status")
        .attr_opt("from", from)
        .attr_opt("t", t.map(str::to_owned))
        .children(set)
        .build()
}

fn set(text: &[u8]) -> Node {
    Node::builder("set").bytes(text.to_vec()).build()
}

#[test]
fn about_notifications() {
    let device = Jid::with_device("1555", wa_binary::Server::Pn, 4);
    let u = parse_about_notification(&status_notification(
        Some(device),
        Some("1700000000"),
        Some(set("Hiking 🏔".as_bytes())),
    ))
    .unwrap()
    .expect("an update");
    assert_eq!(u.jid, Jid::pn("1555"));
    assert_eq!(u.status, "Hiking 🏔");
    assert_eq!(u.timestamp, 1_700_000_000);
    // No time: 0; an empty set: a cleared text.
    let u = parse_about_notification(&status_notification(
        Some(Jid::pn("1555")),
        None,
        Some(Node::new("set")),
    ))
    .unwrap()
    .unwrap();
    assert_eq!((u.status.as_str(), u.timestamp), ("", 0));
    // No <set>: nothing to report.
    assert_eq!(
        parse_about_notification(&status_notification(Some(Jid::pn("1555")), None, None)).unwrap(),
        None
    );
    // Hostile: no from, a group, a bad time, non-UTF-8, too long, elements in <set>.
    let malformed = |n: Node| {
        let r = parse_about_notification(&n);
        assert!(matches!(r, Err(Error::Malformed(_))), "{n:?}: {r:?}");
    };
    malformed(status_notification(None, None, Some(set(b"x"))));
    malformed(status_notification(
        Some("123-456@g.us".parse().unwrap()),
        None,
        Some(set(b"x")),
    ));
    malformed(status_notification(
        Some(Jid::pn("1")),
        Some("soon"),
        Some(set(b"x")),
    ));
    malformed(status_notification(
        Some(Jid::pn("1")),
        None,
        Some(set(&[0xFF, 0xFE])),
    ));
    malformed(status_notification(
        Some(Jid::pn("1")),
        None,
        Some(set(&vec![b'a'; MAX_STATUS_LEN + 1])),
    ));
    malformed(status_notification(
        Some(Jid::pn("1")),
        None,
        Some(Node::builder("set").children([Node::new("x")]).build()),
    ));
}
