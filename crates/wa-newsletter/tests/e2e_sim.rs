//! Channels through wa-sim: an admin creates a channel, another account follows it, the
//! admin posts, the follower receives and fetches the post and reacts, and the admin
//! sees the reaction; plus every other operation and the server's refusals.

use std::time::Duration;

use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_newsletter::{
    Error, MetadataKey, NewsletterChange, NewsletterMessage, NewsletterRole, NewsletterUpdate,
    Newsletters,
};
use wa_sim::{Sim, SimConfig};
use wa_socket::Event;

const A: &str = "15550000011";
const B: &str = "15550000012";

/// The next channel update for `channel` satisfying `pred`.
async fn next_channel_update(
    rx: &mut broadcast::Receiver<Event>,
    channel: &Jid,
    mut pred: impl FnMut(&NewsletterChange) -> bool,
) -> NewsletterUpdate {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(Event::NewsletterUpdate(u)) if &u.id == channel && pred(&u.change) => {
                    return *u;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("channel update in time")
}

/// Links a device of `phone` with a channels layer on it.
async fn channel_user(sim: &Sim, phone: &str) -> (wa_socket::Socket, Jid, Newsletters) {
    let (socket, jid) = wa_testkit::link(sim, phone).await;
    let n = Newsletters::new(socket.clone());
    (socket, jid, n)
}

/// The next post of `channel` reported on `rx`.
async fn next_post(rx: &mut broadcast::Receiver<Event>, channel: &Jid) -> NewsletterMessage {
    let got = next_channel_update(rx, channel, |c| matches!(c, NewsletterChange::Message(_))).await;
    match got.change {
        NewsletterChange::Message(m) => m,
        other => panic!("not a post: {other:?}"),
    }
}

fn graphql_code(e: &Error) -> Option<u16> {
    match e {
        Error::GraphQl { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_lifecycle_through_the_simulator() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _, na) = channel_user(&sim, A).await;
    let (sock_b, _, nb) = channel_user(&sim, B).await;
    let mut ev_a = sock_a.events();
    let mut ev_b = sock_b.events();

    // Create: A owns it, nobody follows yet.
    let meta = na.create("Daily News", Some("every day")).await.unwrap();
    let ch = meta.id.clone();
    assert!(ch.is_newsletter());
    assert_eq!(meta.name, "Daily News");
    assert_eq!(meta.description, "every day");
    assert_eq!(meta.role, Some(NewsletterRole::Owner));
    assert_eq!(meta.subscribers, Some(0));
    let invite = meta.invite.clone().expect("an invite code");

    // B looks it up by JID and by invite code, as a guest.
    let by_jid = nb.metadata(MetadataKey::Jid(&ch)).await.unwrap();
    assert_eq!(by_jid.name, "Daily News");
    assert_eq!(by_jid.role, Some(NewsletterRole::Guest));
    let link = format!("https://whatsapp.com/channel/{invite}");
    let by_code = nb.metadata(MetadataKey::Invite(&link)).await.unwrap();
    assert_eq!(by_code.id, ch);

    // B follows: a join notification, the count goes up, B is a subscriber.
    nb.follow(&ch).await.unwrap();
    let joined = next_channel_update(&mut ev_b, &ch, |c| {
        matches!(c, NewsletterChange::Joined { .. })
    })
    .await;
    assert_eq!(
        joined.change,
        NewsletterChange::Joined {
            role: Some(NewsletterRole::Subscriber)
        }
    );
    assert_eq!(na.subscriber_count(&ch).await.unwrap(), 1);
    assert_eq!(na.admin_count(&ch).await.unwrap(), 1);
    let as_b = nb.metadata(MetadataKey::Jid(&ch)).await.unwrap();
    assert_eq!(
        (as_b.role, as_b.muted),
        (Some(NewsletterRole::Subscriber), Some(false))
    );
    let subscribed = nb.subscribed().await.unwrap();
    assert_eq!(subscribed.iter().map(|m| &m.id).collect::<Vec<_>>(), [&ch]);

    // Mute and unmute, each reported back.
    nb.mute(&ch).await.unwrap();
    next_channel_update(&mut ev_b, &ch, |c| *c == NewsletterChange::Muted(true)).await;
    assert_eq!(
        nb.metadata(MetadataKey::Jid(&ch)).await.unwrap().muted,
        Some(true)
    );
    nb.unmute(&ch).await.unwrap();
    next_channel_update(&mut ev_b, &ch, |c| *c == NewsletterChange::Muted(false)).await;

    // A posts; the server numbers the post and hands it to B as an event.
    let posted = na.send_text(&ch, "first post").await.unwrap();
    let sid = posted.server_id.expect("the post was stored");
    let m = next_post(&mut ev_b, &ch).await;
    assert_eq!(m.server_id, sid);
    assert_eq!(m.id.as_deref(), Some(posted.id.as_str()));
    assert_eq!(
        m.message.as_ref().and_then(|x| x.conversation.as_deref()),
        Some("first post")
    );

    // B fetches the channel's messages.
    let second = na.send_text(&ch, "second post").await.unwrap();
    let fetched = nb.messages(&ch, 10, None).await.unwrap();
    let texts: Vec<_> = fetched
        .iter()
        .map(|m| m.message.as_ref().and_then(|x| x.conversation.clone()))
        .collect();
    assert_eq!(
        texts,
        [
            Some("first post".to_owned()),
            Some("second post".to_owned())
        ]
    );
    let older = nb.messages(&ch, 10, second.server_id).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].server_id, sid);

    // B reacts to the first post; A sees it.
    nb.react(&ch, sid, Some("👍")).await.unwrap();
    let r = next_channel_update(&mut ev_a, &ch, |c| {
        matches!(c, NewsletterChange::Reaction { .. })
    })
    .await;
    assert_eq!(
        r.change,
        NewsletterChange::Reaction {
            server_id: sid,
            code: "👍".to_owned(),
            count: Some(1)
        }
    );
    let updates = na.message_updates(&ch, 10, None, None).await.unwrap();
    let first = updates.iter().find(|m| m.server_id == sid).unwrap();
    assert_eq!(first.reactions, [("👍".to_owned(), 1)]);
    assert!(first.message.is_none(), "updates carry counts only");

    // B views it; A sees the count.
    nb.mark_viewed(&ch, &[sid]).await.unwrap();
    let v = next_channel_update(&mut ev_a, &ch, |c| {
        matches!(c, NewsletterChange::Views { .. })
    })
    .await;
    assert_eq!(
        v.change,
        NewsletterChange::Views {
            server_id: sid,
            count: 1
        }
    );

    // B takes the reaction back.
    nb.react(&ch, sid, None).await.unwrap();
    next_channel_update(&mut ev_a, &ch, |c| {
        matches!(c, NewsletterChange::Reaction { count: Some(0), .. })
    })
    .await;
    let after = na.message_updates(&ch, 10, None, None).await.unwrap();
    assert!(after.iter().all(|m| m.reactions.is_empty()));
    assert_eq!(
        after.iter().find(|m| m.server_id == sid).unwrap().views,
        Some(1)
    );

    // A renames and describes; B is told.
    let renamed = na.update_name(&ch, "Weekly News").await.unwrap();
    assert_eq!(renamed.name, "Weekly News");
    let s = next_channel_update(&mut ev_b, &ch, |c| {
        matches!(c, NewsletterChange::Settings { .. })
    })
    .await;
    assert_eq!(
        s.change,
        NewsletterChange::Settings {
            name: Some("Weekly News".to_owned()),
            description: None
        }
    );
    na.update_description(&ch, "every week").await.unwrap();
    next_channel_update(&mut ev_b, &ch, |c| {
        matches!(c, NewsletterChange::Settings { description: Some(d), .. } if d == "every week")
    })
    .await;
    let with_pic = na.update_picture(&ch, b"\xFF\xD8\xFFjpeg").await.unwrap();
    assert!(with_pic.picture.is_some());
    let without = na.remove_picture(&ch).await.unwrap();
    assert!(without.picture.is_none());
    let seen_by_b = nb.metadata(MetadataKey::Jid(&ch)).await.unwrap();
    assert_eq!(
        (seen_by_b.name.as_str(), seen_by_b.description.as_str()),
        ("Weekly News", "every week")
    );

    // A follower may not manage or post.
    let e = nb.update_name(&ch, "Hijacked").await.unwrap_err();
    assert_eq!(graphql_code(&e), Some(403), "{e}");
    let e = nb.delete(&ch).await.unwrap_err();
    assert_eq!(graphql_code(&e), Some(403), "{e}");
    let refused = nb.send_text(&ch, "not mine").await.unwrap();
    assert_eq!(refused.server_id, None);
    assert_eq!(nb.messages(&ch, 10, None).await.unwrap().len(), 2);

    // Requests that are wrong before they are sent.
    assert!(matches!(
        na.create("  ", None).await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        na.follow(&Jid::pn(B)).await,
        Err(Error::InvalidRequest(_))
    ));

    // B unfollows; A deletes; the channel is gone.
    nb.unfollow(&ch).await.unwrap();
    next_channel_update(&mut ev_b, &ch, |c| *c == NewsletterChange::Left).await;
    assert_eq!(na.subscriber_count(&ch).await.unwrap(), 0);
    assert!(nb.subscribed().await.unwrap().is_empty());
    na.delete(&ch).await.unwrap();
    let e = nb.metadata(MetadataKey::Jid(&ch)).await.unwrap_err();
    assert_eq!(graphql_code(&e), Some(404), "{e}");
    let e = nb.messages(&ch, 10, None).await.unwrap_err();
    assert!(matches!(e, Error::Refused { code: 404, .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_update_subscription_is_answered() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock, _) = wa_testkit::link(&sim, A).await;
    let n = Newsletters::new(sock);
    let ch = n.create("Live", None).await.unwrap().id;
    assert_eq!(n.subscribe_live_updates(&ch).await.unwrap(), Some(300));
    let missing: Jid = "120363999999999999@newsletter".parse().unwrap();
    let e = n.subscribe_live_updates(&missing).await.unwrap_err();
    assert!(matches!(e, Error::Refused { code: 404, .. }), "{e}");
    let e = n.metadata(MetadataKey::Jid(&missing)).await.unwrap_err();
    assert_eq!(graphql_code(&e), Some(404), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_wait_for_an_offline_follower() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = wa_testkit::link(&sim, A).await;
    let store_b = wa_testkit::memory_store();
    let (sock_b, device_b) = wa_testkit::link_with(&sim, B, store_b.clone()).await;
    let na = Newsletters::new(sock_a);
    let ch = na.create("Night owls", None).await.unwrap().id;
    Newsletters::new(sock_b.clone()).follow(&ch).await.unwrap();
    sock_b.close().await;
    sock_b.closed().await;

    // Posted while B is away: queued for B's device.
    let posted = na.send_text(&ch, "while you slept").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim.queued(&device_b) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the post is queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // B comes back with the same credentials and gets it from the offline queue, then
    // acks it (the queue drains).
    let sock_b = wa_socket::Socket::connect(wa_testkit::config(&sim, store_b));
    let mut ev_b = sock_b.events_from_start();
    let _nb = Newsletters::new(sock_b.clone());
    let m = next_post(&mut ev_b, &ch).await;
    assert_eq!(Some(m.server_id), posted.server_id);
    assert_eq!(
        m.message.and_then(|x| x.conversation),
        Some("while you slept".to_owned())
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim.queued(&device_b) != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ack drains the queue"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_refuses_malformed_channel_requests() {
    use wa_binary::Node;
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock, _) = wa_testkit::link(&sim, A).await;
    let mex = |query_id: &str, body: &[u8]| {
        Node::builder("iq")
            .attr("type", "get")
            .attr("xmlns", "w:mex")
            .attr("to", Jid::server_jid())
            .children([Node::builder("query")
                .attr("query_id", query_id.to_owned())
                .bytes(body.to_vec())
                .build()])
            .build()
    };
    // An unknown query id is not a channel operation.
    let e = sock
        .query(mex("1", b"{\"variables\":{}}"))
        .await
        .unwrap_err();
    assert!(matches!(e, wa_socket::Error::Iq { code: 501, .. }), "{e}");
    // A known one with a body that is not JSON, or without variables: GraphQL 400.
    for body in [&b"not json"[..], b"{\"variables\": 3}", b""] {
        let reply = sock
            .query(mex(wa_newsletter::ops::FOLLOW.query_id, body))
            .await
            .unwrap();
        let e = wa_newsletter::parse_mex_result(&reply, wa_newsletter::ops::FOLLOW).unwrap_err();
        assert!(matches!(e, Error::GraphQl { code: 400, .. }), "{e}");
    }
    // A newsletter_id that is not a channel.
    let reply = sock
        .query(mex(
            wa_newsletter::ops::FOLLOW.query_id,
            b"{\"variables\":{\"newsletter_id\":\"15550000011@s.whatsapp.net\"}}",
        ))
        .await
        .unwrap();
    let e = wa_newsletter::parse_mex_result(&reply, wa_newsletter::ops::FOLLOW).unwrap_err();
    assert!(matches!(e, Error::GraphQl { code: 400, .. }), "{e}");
    // A newsletter iq without a request, or for a non-channel.
    let empty = Node::builder("iq")
        .attr("type", "get")
        .attr("xmlns", "newsletter")
        .attr("to", Jid::server_jid())
        .build();
    let e = sock.query(empty).await.unwrap_err();
    assert!(matches!(e, wa_socket::Error::Iq { code: 400, .. }), "{e}");
    let foreign = Node::builder("iq")
        .attr("type", "get")
        .attr("xmlns", "newsletter")
        .attr("to", Jid::server_jid())
        .children([Node::builder("messages")
            .attr("type", "jid")
            .attr("jid", Jid::pn(B))
            .attr("count", "999999999999999999999")
            .build()])
        .build();
    let e = sock.query(foreign).await.unwrap_err();
    assert!(matches!(e, wa_socket::Error::Iq { code: 400, .. }), "{e}");
    // A post to a channel that does not exist is refused in the ack; the connection
    // stays usable.
    let n = Newsletters::new(sock.clone());
    let missing: Jid = "120363999999999998@newsletter".parse().unwrap();
    let posted = n.send_text(&missing, "into the void").await;
    assert!(
        matches!(posted, Err(Error::Refused { code: 404, .. })),
        "{posted:?}"
    );
    assert!(n.create("Still here", None).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_survive_a_restart_from_the_state_file() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock, _) = wa_testkit::link(&sim, A).await;
    let n = Newsletters::new(sock.clone());
    let ch = n.create("Kept", Some("on disk")).await.unwrap().id;
    let posted = n.send_text(&ch, "saved post").await.unwrap();
    sock.close().await;
    let json = sim.state().to_json();
    sim.shutdown().await;

    let config = SimConfig {
        state: wa_sim::SimState::from_json(&json).unwrap(),
        ..SimConfig::default()
    };
    let sim = Sim::start(config).await.unwrap();
    let (sock, _) = wa_testkit::link(&sim, A).await;
    let n = Newsletters::new(sock);
    let meta = n.metadata(MetadataKey::Jid(&ch)).await.unwrap();
    assert_eq!(
        (meta.name.as_str(), meta.description.as_str(), meta.role),
        ("Kept", "on disk", Some(NewsletterRole::Owner))
    );
    let msgs = n.messages(&ch, 10, None).await.unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(Some(msgs[0].server_id), posted.server_id);
    // Server ids keep counting from where they were.
    let next = n.send_text(&ch, "after restart").await.unwrap();
    assert_eq!(next.server_id, posted.server_id.map(|s| s + 1));
}

/// The owner demotes an admin (by number) and hands the channel to another (the new owner
/// then demotes the old one by LID); nobody else may, and only admins qualify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_demotes_admins_and_hands_the_channel_over() {
    const C: &str = "15550000013";
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _, na) = channel_user(&sim, A).await;
    let (_sock_b, _, nb) = channel_user(&sim, B).await;
    let (sock_c, _, nc) = channel_user(&sim, C).await;
    let (mut ev_a, mut ev_c) = (sock_a.events(), sock_c.events());
    let ch = na.create("Handover", None).await.unwrap().id;
    // Admin invites are not simulated: the simulator makes B and C admins directly.
    assert!(sim.newsletter_add_admin(&ch, B));
    assert!(sim.newsletter_add_admin(&ch, C));
    assert!(
        !sim.newsletter_add_admin(&ch, A),
        "the owner is not made an admin"
    );
    assert_eq!(na.admin_count(&ch).await.unwrap(), 3);
    let role = |n: &Newsletters| {
        let ch = ch.clone();
        let n = n.clone();
        async move { n.metadata(MetadataKey::Jid(&ch)).await.unwrap().role }
    };
    assert_eq!(role(&nc).await, Some(NewsletterRole::Admin));

    // Only the owner demotes.
    let (b_jid, c_jid) = (Jid::pn(B), Jid::pn(C));
    let e = nb.demote(&ch, &c_jid).await.unwrap_err();
    assert_eq!(graphql_code(&e), Some(403), "{e}");
    na.demote(&ch, &c_jid).await.unwrap();
    let demoted = next_channel_update(&mut ev_c, &ch, |c| {
        matches!(c, NewsletterChange::Participant { .. })
    })
    .await;
    assert_eq!(
        demoted.change,
        NewsletterChange::Participant {
            user: c_jid.clone(),
            action: "demote".to_owned(),
            role: Some(NewsletterRole::Subscriber),
        }
    );
    assert_eq!(role(&nc).await, Some(NewsletterRole::Subscriber));
    assert_eq!(na.admin_count(&ch).await.unwrap(), 2);
    // C is no longer an admin: neither demoted again nor made owner.
    let e = na.demote(&ch, &c_jid).await.unwrap_err();
    assert_eq!(graphql_code(&e), Some(400), "{e}");
    let e = na.change_owner(&ch, &c_jid).await.unwrap_err();
    assert_eq!(graphql_code(&e), Some(400), "{e}");
    // A non-user JID or a non-channel JID is refused before anything is sent.
    assert!(matches!(
        na.demote(&ch, &ch).await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        na.change_owner(&b_jid, &b_jid).await,
        Err(Error::InvalidRequest(_))
    ));

    // A hands the channel to B and stays on as an admin.
    na.change_owner(&ch, &b_jid).await.unwrap();
    assert_eq!(role(&nb).await, Some(NewsletterRole::Owner));
    assert_eq!(role(&na).await, Some(NewsletterRole::Admin));
    let e = na.delete(&ch).await.unwrap_err();
    assert_eq!(graphql_code(&e), Some(403), "{e}");
    // The new owner demotes the old one, named by LID.
    let a_lid = sim.account(A).unwrap().lid;
    nb.demote(&ch, &a_lid).await.unwrap();
    next_channel_update(
        &mut ev_a,
        &ch,
        |c| matches!(c, NewsletterChange::Participant { action, .. } if action == "demote"),
    )
    .await;
    assert_eq!(role(&na).await, Some(NewsletterRole::Subscriber));
    assert_eq!(nb.admin_count(&ch).await.unwrap(), 1);
    nb.delete(&ch).await.unwrap();
}

/// A follower subscribed to live updates gets posts as `<message from=channel>` stanzas
/// (the server sends it no notification for them): the channels layer takes them from
/// the messaging layer, acknowledges them and reports them like any other post.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_subscribers_get_posts_as_channel_messages() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (_sock_a, _, na) = channel_user(&sim, A).await;
    let (sock_b, jid_b, nb) = channel_user(&sim, B).await;
    let mut ev_b = sock_b.events();
    let ch = na.create("Live posts", None).await.unwrap().id;
    nb.follow(&ch).await.unwrap();
    assert_eq!(nb.subscribe_live_updates(&ch).await.unwrap(), Some(300));
    let posted = na.send_text(&ch, "breaking").await.unwrap();
    let m = next_post(&mut ev_b, &ch).await;
    assert_eq!(Some(m.server_id), posted.server_id);
    assert_eq!(m.id.as_deref(), Some(posted.id.as_str()));
    assert_eq!(
        m.message.as_ref().and_then(|x| x.conversation.as_deref()),
        Some("breaking")
    );
    // Acknowledged: nothing stays queued for B's device.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sim.queued(&jid_b) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "post not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An admin posts an image: it goes up unencrypted, the follower's post names it, and the
/// follower downloads the same bytes; a blob changed on the host is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_posts_go_up_unencrypted_and_come_down_verified() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _, na) = channel_user(&sim, A).await;
    let (sock_b, _, nb) = channel_user(&sim, B).await;
    let mut ev_b = sock_b.events();
    let media = |s: &wa_socket::Socket| {
        let mut c = wa_media::MediaConfig::default();
        c.https = false;
        wa_media::Media::new(s.clone(), c).unwrap()
    };
    let (media_a, media_b) = (media(&sock_a), media(&sock_b));
    let ch = na.create("Pictures", None).await.unwrap().id;
    nb.follow(&ch).await.unwrap();
    let picture: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    let mut opts = wa_media::MediaOptions::default();
    opts.caption = Some("a picture".into());
    let posted = na
        .send_media(
            &ch,
            &media_a,
            wa_media::MediaKind::Image,
            &picture[..],
            &opts,
        )
        .await
        .unwrap();
    let m = next_post(&mut ev_b, &ch).await;
    assert_eq!(Some(m.server_id), posted.server_id);
    let message = m.message.expect("the post's message");
    let image = message.image_message.as_ref().expect("an image");
    assert_eq!(image.caption.as_deref(), Some("a picture"));
    assert!(image.media_key.is_none(), "channel media carries no key");
    let blob = wa_media::channel_media(&message).expect("channel media");
    let mut got = Vec::new();
    media_b.download_raw(&blob, &mut got, None).await.unwrap();
    assert_eq!(got, picture);
    // One flipped byte on the host: refused, nothing handed out.
    assert!(sim.corrupt_media(blob.direct_path.as_deref().unwrap(), 1000));
    let mut bad = Vec::new();
    assert!(matches!(
        media_b.download_raw(&blob, &mut bad, None).await,
        Err(wa_media::Error::HashMismatch)
    ));
    assert!(bad.is_empty());
    // By its path alone (no hash), the same blob is handed out as the host has it.
    let path = blob.direct_path.clone().unwrap();
    let mut unchecked = Vec::new();
    let len = media_b
        .download_raw(
            &wa_media::RawMedia::at(path.clone(), None),
            &mut unchecked,
            None,
        )
        .await
        .unwrap();
    assert_eq!(len, picture.len() as u64);
    let differing = unchecked
        .iter()
        .zip(&picture)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(differing, 1, "the flipped byte comes through unchecked");
    // With the hash given, the path form checks it too.
    let checked = wa_media::RawMedia::at(path.clone(), blob.file_sha256);
    assert!(matches!(
        media_b.download_raw(&checked, &mut Vec::new(), None).await,
        Err(wa_media::Error::HashMismatch)
    ));
    // A path that is not one is refused before anything is fetched.
    assert!(matches!(
        media_b
            .download_raw(
                &wa_media::RawMedia::at("mms/x", None),
                &mut Vec::new(),
                None
            )
            .await,
        Err(wa_media::Error::InvalidMessage(_))
    ));
}
