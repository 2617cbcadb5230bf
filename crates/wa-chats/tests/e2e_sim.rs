//! Presence, chat state, privacy, profile and blocklist between two accounts linked to
//! wa-sim: every request reaches the server, and what one account does shows up on the
//! other as replies or events.

use std::time::Duration;

use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_chats::{ChatState, Chats, ChatsConfig, Error, Presence, PrivacySetting, PrivacyValue};
use wa_sim::{Fault, Sim, SimConfig, Target};
use wa_socket::Event;

const A: &str = "15550000001";
const B: &str = "15550000002";
const C: &str = "15550000003";

/// The next event `pick` maps to `Some`.
async fn next_event<T>(
    rx: &mut broadcast::Receiver<Event>,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Some(t) = pick(e) {
                        return t;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("event in time")
}

/// Waits until no event `pick` accepts arrives for a while.
async fn no_event(rx: &mut broadcast::Receiver<Event>, mut pick: impl FnMut(&Event) -> bool) {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(e) if pick(&e) => return Some(e),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    };
    if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(700), fut).await {
        panic!("unexpected event {e:?}");
    }
}

/// Dropping `_sim` stops the server, so every test keeps it bound.
struct Pair {
    _sim: Sim,
    a: Chats,
    b: Chats,
    ev_a: broadcast::Receiver<Event>,
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
        ev_a: sock_a.events(),
        ev_b: sock_b.events(),
        _sim: sim,
        a,
        b,
        _sockets: (sock_a, sock_b),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_sent_each_time_the_connection_opens_when_configured() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = wa_testkit::link(&sim, A).await;
    let (sock_b, _) = wa_testkit::link(&sim, B).await;
    let mut config = ChatsConfig::default();
    config.presence_on_connect = Some(Presence::Available);
    // Made while the connection is already open, but without a push name: nothing is
    // sent yet.
    let a = Chats::new(sock_a.clone(), &config);
    let b = Chats::new(sock_b.clone(), &ChatsConfig::default());
    let mut ev_a = sock_a.events();
    let mut ev_b = sock_b.events();
    b.subscribe_presence(&Jid::pn(A)).await.unwrap();
    let first = next_event(&mut ev_b, |e| match e {
        Event::PresenceUpdate(u) => Some(u),
        _ => None,
    })
    .await;
    assert!(!first.available);
    a.set_push_name("Alice").await.unwrap();
    no_event(
        &mut ev_b,
        |e| matches!(e, Event::PresenceUpdate(u) if u.available),
    )
    .await;

    // The connection drops and opens again: A goes online by itself.
    assert_eq!(sim.fault(Fault::Drop(Target::Account(A.to_owned()))), 1);
    next_event(&mut ev_a, |e| match e {
        Event::Connection(u) if u.state == wa_socket::ConnectionState::Open => Some(()),
        _ => None,
    })
    .await;
    let online = next_event(&mut ev_b, |e| match e {
        Event::PresenceUpdate(u) if u.available => Some(u),
        _ => None,
    })
    .await;
    assert_eq!(online.jid, Jid::pn(A));

    // A handle without the setting sends nothing at a reconnect.
    drop(a);
    a_offline(&sock_a, &mut ev_b).await;
    let _plain = Chats::new(sock_a.clone(), &ChatsConfig::default());
    assert_eq!(sim.fault(Fault::Drop(Target::Account(A.to_owned()))), 1);
    next_event(&mut ev_a, |e| match e {
        Event::Connection(u) if u.state == wa_socket::ConnectionState::Open => Some(()),
        _ => None,
    })
    .await;
    no_event(
        &mut ev_b,
        |e| matches!(e, Event::PresenceUpdate(u) if u.available),
    )
    .await;
}

/// A says it is offline; `ev_b` (subscribed to A) sees it.
async fn a_offline(sock_a: &wa_socket::Socket, ev_b: &mut broadcast::Receiver<Event>) {
    Chats::new(sock_a.clone(), &ChatsConfig::default())
        .send_presence(Presence::Unavailable)
        .await
        .unwrap();
    next_event(ev_b, |e| match e {
        Event::PresenceUpdate(u) if !u.available => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_typing_reach_the_other_account() {
    let Pair {
        _sim: sim,
        a,
        b,
        mut ev_a,
        mut ev_b,
        _sockets: (sock_a, _sock_b),
    } = pair().await;
    sim.add_account(C).await;

    // B subscribes to A: it is told A's current state (offline, never seen) at once.
    b.subscribe_presence(&Jid::pn(A)).await.unwrap();
    let first = next_event(&mut ev_b, |e| match e {
        Event::PresenceUpdate(u) => Some(u),
        _ => None,
    })
    .await;
    assert_eq!(first.jid, Jid::pn(A));
    assert!(!first.available);
    assert_eq!(first.last_seen, None);

    // A comes online, then goes offline: B sees both, the second with a last-seen time.
    assert!(matches!(
        a.set_push_name("  ").await,
        Err(Error::InvalidRequest(_))
    ));
    a.set_push_name("Alice").await.unwrap();
    // The name change alone does not bring A online.
    no_event(
        &mut ev_b,
        |e| matches!(e, Event::PresenceUpdate(u) if u.available),
    )
    .await;
    assert_eq!(sim.push_name(A).as_deref(), Some("Alice"));
    // And it is kept in the stored credentials, as the socket's own copy.
    assert_eq!(
        sock_a
            .auth()
            .await
            .and_then(|c| c.push_name.clone())
            .as_deref(),
        Some("Alice")
    );
    let stored = wa_store::CredsStore::load_creds(sock_a.store())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.push_name.as_deref(), Some("Alice"));
    // The socket marked the session at login; going online marks it again.
    let at_login = sim.unified_sessions(A).len();
    assert!(at_login >= 1);
    a.send_presence(Presence::Available).await.unwrap();
    let online = next_event(&mut ev_b, |e| match e {
        Event::PresenceUpdate(u) if u.available => Some(u),
        _ => None,
    })
    .await;
    assert_eq!(online.jid, Jid::pn(A));
    let ids = sim.unified_sessions(A);
    assert_eq!(ids.len(), at_login + 1);
    const WEEK_MS: u64 = 7 * 86_400_000;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let want = (now_ms + 3 * 86_400_000) % WEEK_MS;
    let got: u64 = ids.last().unwrap().parse().unwrap();
    assert!(got < WEEK_MS);
    // Within a minute of (server time + 3 days) mod a week, away from the wrap-around.
    let diff = got.abs_diff(want).min(WEEK_MS - got.abs_diff(want));
    assert!(diff < 60_000, "id {got}, expected about {want}");
    a.send_presence(Presence::Unavailable).await.unwrap();
    assert_eq!(
        sim.unified_sessions(A).len(),
        at_login + 1,
        "not when going offline"
    );
    let offline = next_event(&mut ev_b, |e| match e {
        Event::PresenceUpdate(u) if !u.available => Some(u),
        _ => None,
    })
    .await;
    assert_eq!(offline.jid, Jid::pn(A));
    assert!(offline.last_seen.is_some_and(|t| t > 1_600_000_000));

    // Without a push name, presence is refused (as whatsmeow and Baileys refuse it).
    assert!(matches!(
        b.send_presence(Presence::Available).await,
        Err(Error::InvalidRequest(_))
    ));
    // A never subscribed to B, so B's presence does not reach A.
    b.set_push_name("Bob").await.unwrap();
    b.send_presence(Presence::Available).await.unwrap();
    no_event(&mut ev_a, |e| matches!(e, Event::PresenceUpdate(_))).await;

    // Typing: A composes, records, pauses in the chat with B; B sees each in order.
    for state in [
        ChatState::Composing,
        ChatState::Recording,
        ChatState::Paused,
    ] {
        a.send_chat_state(&Jid::pn(B), state).await.unwrap();
        let u = next_event(&mut ev_b, |e| match e {
            Event::ChatStateUpdate(u) => Some(u),
            _ => None,
        })
        .await;
        assert_eq!((u.chat, u.sender, u.state), (Jid::pn(A), Jid::pn(A), state));
    }
    // And the other way round.
    b.send_chat_state(&Jid::pn(A), ChatState::Composing)
        .await
        .unwrap();
    let u = next_event(&mut ev_a, |e| match e {
        Event::ChatStateUpdate(u) => Some(u),
        _ => None,
    })
    .await;
    assert_eq!((u.chat, u.state), (Jid::pn(B), ChatState::Composing));

    // In a group: B's typing reaches A as the group's chat state, B the sender.
    let group = sim
        .phone_create_group(C, "Typists", &[Jid::pn(A), Jid::pn(B)])
        .unwrap();
    b.send_chat_state(&group, ChatState::Recording)
        .await
        .unwrap();
    let u = next_event(&mut ev_a, |e| match e {
        Event::ChatStateUpdate(u) if u.chat.is_group() => Some(u),
        _ => None,
    })
    .await;
    assert_eq!(
        (u.chat, u.sender, u.state),
        (group, Jid::pn(B), ChatState::Recording)
    );

    // A's only connection ends while A is online: B is told A went offline.
    a.send_presence(Presence::Available).await.unwrap();
    next_event(&mut ev_b, |e| match e {
        Event::PresenceUpdate(u) if u.available => Some(()),
        _ => None,
    })
    .await;
    sock_a.close().await;
    let gone = next_event(&mut ev_b, |e| match e {
        Event::PresenceUpdate(u) if !u.available => Some(u),
        _ => None,
    })
    .await;
    assert_eq!(gone.jid, Jid::pn(A));
    assert!(gone.last_seen.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_round_trip() {
    let Pair {
        _sim: sim, a, b, ..
    } = pair().await;
    let before = a.privacy_settings().await.unwrap();
    assert_eq!(before.last_seen, Some(PrivacyValue::All));
    assert_eq!(before.read_receipts, Some(PrivacyValue::All));

    a.set_privacy(PrivacySetting::LastSeen, PrivacyValue::Contacts)
        .await
        .unwrap();
    a.set_privacy(PrivacySetting::Online, PrivacyValue::MatchLastSeen)
        .await
        .unwrap();
    a.set_privacy(PrivacySetting::ReadReceipts, PrivacyValue::None)
        .await
        .unwrap();
    a.set_privacy(PrivacySetting::CallAdd, PrivacyValue::Known)
        .await
        .unwrap();
    let after = a.privacy_settings().await.unwrap();
    assert_eq!(after.last_seen, Some(PrivacyValue::Contacts));
    assert_eq!(after.online, Some(PrivacyValue::MatchLastSeen));
    assert_eq!(after.read_receipts, Some(PrivacyValue::None));
    assert_eq!(after.call_add, Some(PrivacyValue::Known));
    assert_eq!(after.profile_picture, Some(PrivacyValue::All));
    assert_eq!(after.messages, Some(PrivacyValue::All));
    // A second device of A is told about a change made on the first, as an event
    // holding only what changed.
    let (sock_a2, _) = wa_testkit::link(&sim, A).await;
    let _a2 = Chats::new(sock_a2.clone(), &ChatsConfig::default());
    let mut ev_a2 = sock_a2.events();
    a.set_privacy(PrivacySetting::ProfilePicture, PrivacyValue::Contacts)
        .await
        .unwrap();
    let change = next_event(&mut ev_a2, |e| match e {
        Event::PrivacyUpdate(p) => Some(p),
        _ => None,
    })
    .await;
    assert_eq!(change.profile_picture, Some(PrivacyValue::Contacts));
    assert_eq!(change.last_seen, None);
    // Per account: B's settings did not move.
    assert_eq!(
        b.privacy_settings().await.unwrap().last_seen,
        Some(PrivacyValue::All)
    );
    // A value the setting does not take is refused before it is sent.
    assert!(matches!(
        a.set_privacy(PrivacySetting::Online, PrivacyValue::Contacts)
            .await,
        Err(Error::InvalidRequest(_))
    ));

    // Disappearing-mode default: set by A, read by B through usync.
    assert_eq!(
        b.default_disappearing_mode(&Jid::pn(A)).await.unwrap(),
        Some(0)
    );
    a.set_default_disappearing_mode(86_400).await.unwrap();
    assert_eq!(
        b.default_disappearing_mode(&Jid::pn(A)).await.unwrap(),
        Some(86_400)
    );
    // Several users in one query, in the order asked.
    assert_eq!(
        b.default_disappearing_modes(&[Jid::pn(B), Jid::pn(A)])
            .await
            .unwrap(),
        vec![(Jid::pn(B), Some(0)), (Jid::pn(A), Some(86_400))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_text_and_profile_picture_seen_by_the_other_account() {
    let Pair {
        _sim: sim,
        a,
        b,
        _sockets: (_, sock_b),
        ..
    } = pair().await;

    assert_eq!(b.status(&Jid::pn(A)).await.unwrap(), None);
    a.set_status("Hiking 🏔").await.unwrap();
    let s = b.status(&Jid::pn(A)).await.unwrap().expect("a status");
    assert_eq!(s.text, "Hiking 🏔");
    assert!(s.set_at.is_some());
    // The AI bots the server offers.
    let bots = b.bots().await.unwrap();
    assert_eq!(bots.len(), 1);
    assert_eq!(bots[0].jid.to_string(), "867051314767696@bot");
    assert_eq!(bots[0].persona_id.as_deref(), Some("1"));
    // Their profiles, through usync's bot protocol.
    let profiles = b.bot_profiles(&bots).await.unwrap();
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0].0, bots[0].jid);
    let p = profiles[0].1.as_ref().expect("a profile");
    assert_eq!(p.name.as_deref(), Some("Sim AI"));
    assert_eq!(p.persona_id.as_deref(), Some("1"));
    assert!(p.is_default);
    assert_eq!(p.commands_description.as_deref(), Some("What it can do"));
    assert_eq!(
        p.commands,
        vec![
            ("/imagine".to_owned(), Some("Draws a picture".to_owned())),
            ("/help".to_owned(), Some("Lists the commands".to_owned())),
        ]
    );
    assert_eq!(p.prompts, ["💡 Give me an idea", "📚 Tell me a story"]);
    // A user that is no bot has no profile.
    let not_bot = wa_chats::BotInfo::new(Jid::pn(A), None);
    assert_eq!(b.bot_profiles(&[not_bot]).await.unwrap()[0].1, None);
    // Several users at once, in the order asked; B has no status.
    let many = b.statuses(&[Jid::pn(B), Jid::pn(A)]).await.unwrap();
    assert_eq!(many.len(), 2);
    assert_eq!((&many[0].0, &many[0].1), (&Jid::pn(B), &None));
    assert_eq!(many[1].0, Jid::pn(A));
    assert_eq!(
        many[1].1.as_ref().map(|s| s.text.as_str()),
        Some("Hiking 🏔")
    );
    // Hidden from everyone: B gets an empty text.
    a.set_privacy(PrivacySetting::Status, PrivacyValue::None)
        .await
        .unwrap();
    assert_eq!(b.status(&Jid::pn(A)).await.unwrap().unwrap().text, "");

    // No picture yet.
    assert_eq!(
        b.profile_picture_url(&Jid::pn(A), false).await.unwrap(),
        None
    );
    let jpeg = [
        &[0xFF, 0xD8, 0xFF, 0xE0][..],
        b"fake jpeg body",
        &[0xFF, 0xD9],
    ]
    .concat();
    let id = a
        .set_profile_picture(None, jpeg.clone())
        .await
        .unwrap()
        .expect("a picture id");
    assert_eq!(sim.profile_picture(A), Some(jpeg.clone()));
    let pic = b
        .profile_picture_url(&Jid::pn(A), false)
        .await
        .unwrap()
        .expect("a picture");
    assert_eq!(pic.id, id);
    assert!(pic.url.starts_with("http://") && pic.url.contains(&id));
    // The URL serves the picture, until it is replaced.
    let mut config = wa_media::MediaConfig::default();
    config.https = false;
    let media = wa_media::Media::new(sock_b.clone(), config).unwrap();
    assert_eq!(media.fetch(&pic.url, 1 << 20).await.unwrap(), jpeg);
    assert!(matches!(
        media.fetch(&pic.url, 4).await,
        Err(wa_media::Error::TooLarge(4))
    ));
    let preview = b
        .profile_picture_url(&Jid::pn(A), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(preview.kind.as_deref(), Some("preview"));
    // Non-JPEG bytes are refused locally.
    assert!(matches!(
        a.set_profile_picture(None, b"GIF89a".to_vec()).await,
        Err(Error::InvalidRequest(_))
    ));
    // A new picture gets a new id; removing it leaves none.
    let id2 = a.set_profile_picture(None, jpeg).await.unwrap().unwrap();
    assert_ne!(id2, id);
    assert!(matches!(
        media.fetch(&pic.url, 1 << 20).await,
        Err(wa_media::Error::Gone(404))
    ));
    a.remove_profile_picture(None).await.unwrap();
    assert_eq!(sim.profile_picture(A), None);
    assert_eq!(
        b.profile_picture_url(&Jid::pn(A), false).await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_and_unblock() {
    let Pair {
        _sim: sim,
        a,
        b,
        mut ev_a,
        mut ev_b,
        ..
    } = pair().await;
    sim.add_account(C).await;
    // A second device of A hears about blocklist changes made on the first.
    let (sock_a2, _) = wa_testkit::link(&sim, A).await;
    let a2 = Chats::new(sock_a2.clone(), &ChatsConfig::default());
    let mut ev_a2 = sock_a2.events();

    assert!(a.blocklist().await.unwrap().is_empty());
    a.block(&Jid::pn(B)).await.unwrap();
    a.block(&Jid::pn(C)).await.unwrap();
    assert_eq!(a.blocklist().await.unwrap(), [Jid::pn(B), Jid::pn(C)]);
    assert_eq!(a2.blocklist().await.unwrap(), [Jid::pn(B), Jid::pn(C)]);
    assert_eq!(sim.blocklist(A), [Jid::pn(B), Jid::pn(C)]);
    let u = next_event(&mut ev_a2, |e| match e {
        Event::BlocklistUpdate(u) => Some(u),
        _ => None,
    })
    .await;
    assert_eq!(
        u.changes
            .iter()
            .map(|c| (c.jid.clone(), c.blocked))
            .collect::<Vec<_>>(),
        [(Jid::pn(B), true)]
    );

    // A blocked B: B's typing no longer reaches A, nor does A's picture reach B.
    b.send_chat_state(&Jid::pn(A), ChatState::Composing)
        .await
        .unwrap();
    no_event(&mut ev_a, |e| matches!(e, Event::ChatStateUpdate(_))).await;
    a.set_profile_picture(None, vec![0xFF, 0xD8, 0xFF, 0xD9])
        .await
        .unwrap();
    assert!(matches!(
        b.profile_picture_url(&Jid::pn(A), false).await,
        Err(Error::Refused { code: 401, .. })
    ));

    a.unblock(&Jid::pn(B)).await.unwrap();
    assert_eq!(a.blocklist().await.unwrap(), [Jid::pn(C)]);
    // By LID too: C's phone number was learned with its LID when it was blocked.
    let c_lid = sim.account(C).unwrap().lid;
    a.unblock(&c_lid).await.unwrap();
    assert!(a.blocklist().await.unwrap().is_empty());
    a.block(&c_lid).await.unwrap();
    assert_eq!(a.blocklist().await.unwrap(), [Jid::pn(C)]);
    // A LID whose phone number this device never learned cannot be blocked (the server
    // wants both), and a group is not a user.
    assert!(matches!(
        a.block(&Jid::new("999999999", wa_binary::Server::Lid))
            .await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        a.block(&"120363000000000001@g.us".parse().unwrap()).await,
        Err(Error::InvalidRequest(_))
    ));
    let u = next_event(&mut ev_a2, |e| match e {
        Event::BlocklistUpdate(u) if u.changes.iter().any(|c| !c.blocked) => Some(u),
        _ => None,
    })
    .await;
    assert_eq!(u.changes[0].jid, Jid::pn(B));
    // Unblocked: typing flows again, and B itself was never told about the blocklist.
    b.send_chat_state(&Jid::pn(A), ChatState::Paused)
        .await
        .unwrap();
    let u = next_event(&mut ev_a, |e| match e {
        Event::ChatStateUpdate(u) => Some(u),
        _ => None,
    })
    .await;
    assert_eq!((u.sender, u.state), (Jid::pn(B), ChatState::Paused));
    no_event(&mut ev_b, |e| matches!(e, Event::BlocklistUpdate(_))).await;
    drop(sock_a2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picture_changes_are_reported() {
    let Pair {
        _sim: sim,
        a,
        b: _b,
        mut ev_b,
        _sockets,
        ..
    } = pair().await;
    let jpeg = vec![0xFF, 0xD8, 0xFF, 0xD9];
    let g = sim
        .phone_create_group(A, "team", &[Jid::pn(B)])
        .expect("group created");

    // A group's new picture reaches the other members' devices, naming who set it.
    let id = a
        .set_profile_picture(Some(&g), jpeg.clone())
        .await
        .unwrap()
        .expect("a picture id");
    let set = next_event(&mut ev_b, |e| match e {
        Event::PictureUpdate(u) if u.jid == g => Some(u),
        _ => None,
    })
    .await;
    assert!(!set.removed);
    assert_eq!(set.picture_id.as_deref(), Some(id.as_str()));
    assert_eq!(set.author, Some(Jid::pn(A)));
    assert!(set.timestamp > 1_600_000_000);
    a.remove_profile_picture(Some(&g)).await.unwrap();
    let removed = next_event(&mut ev_b, |e| match e {
        Event::PictureUpdate(u) if u.jid == g => Some(u),
        _ => None,
    })
    .await;
    assert!(removed.removed);
    assert_eq!(removed.picture_id, None);

    // Our own new picture reaches our other companion.
    let (sock_a2, _) = wa_testkit::link(&sim, A).await;
    let _a2 = Chats::new(sock_a2.clone(), &ChatsConfig::default());
    let mut ev_a2 = sock_a2.events();
    let own = a.set_profile_picture(None, jpeg).await.unwrap().unwrap();
    let u = next_event(&mut ev_a2, |e| match e {
        Event::PictureUpdate(u) => Some(u),
        _ => None,
    })
    .await;
    assert_eq!(u.jid, Jid::pn(A));
    assert_eq!(u.picture_id.as_deref(), Some(own.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_account_needs_the_privacy_token_for_presence_and_pictures() {
    let Pair {
        _sim: sim,
        a,
        b,
        mut ev_a,
        _sockets: (sock_a, sock_b),
        ..
    } = pair().await;
    let jpeg = [&[0xFF, 0xD8, 0xFF, 0xE0][..], b"body", &[0xFF, 0xD9]].concat();
    let pid = b.set_profile_picture(None, jpeg).await.unwrap().unwrap();
    sim.restrict_account(A, true);
    let bob = Jid::pn(B);

    // Without B's token: the picture query is refused, the subscription ignored, or,
    // when the configuration asks for a token, refused before it is sent.
    assert!(matches!(
        a.profile_picture_url(&bob, false).await,
        Err(Error::Refused { code: 401, .. })
    ));
    a.subscribe_presence(&bob).await.unwrap();
    no_event(&mut ev_a, |e| matches!(e, Event::PresenceUpdate(_))).await;
    let mut strict = ChatsConfig::default();
    strict.presence_requires_token = true;
    let strict = Chats::new(sock_a.clone(), &strict);
    assert!(matches!(
        strict.subscribe_presence(&bob).await,
        Err(Error::NoPrivacyToken(j)) if j == bob
    ));
    // Our own presence needs no token.
    strict.subscribe_presence(&Jid::pn(A)).await.unwrap();
    // Our own picture needs no token.
    assert_eq!(
        a.profile_picture_url(&Jid::pn(A), false).await.unwrap(),
        None
    );

    // B issues its token to A; A's socket stores it and both requests carry it.
    sock_b
        .issue_privacy_tokens(&[Jid::pn(A)], wa_socket::privacy_token::now())
        .await
        .unwrap();
    let (token, _) = sim.privacy_token(B, A).expect("a token minted");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sock_a.privacy_token(&bob).await.as_deref() != Some(token.as_slice()) {
        assert!(std::time::Instant::now() < deadline, "token never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pic = a.profile_picture_url(&bob, false).await.unwrap().unwrap();
    assert_eq!(pic.id, pid);
    // When the server's AB prop 9666 says picture queries go without it, the restricted
    // account's query carries no token and is refused again.
    sim.set_server_prop(wa_socket::PROP_PROFILE_PIC_PRIVACY_TOKEN, Some("0"));
    assert!(
        !sock_a
            .fetch_server_props()
            .await
            .unwrap()
            .profile_pic_privacy_token
    );
    assert!(matches!(
        a.profile_picture_url(&bob, false).await,
        Err(Error::Refused { code: 401, .. })
    ));
    sim.set_server_prop(wa_socket::PROP_PROFILE_PIC_PRIVACY_TOKEN, None);
    sock_a.fetch_server_props().await.unwrap();
    assert!(a.profile_picture_url(&bob, false).await.unwrap().is_some());
    strict.subscribe_presence(&bob).await.unwrap();
    let u = next_event(&mut ev_a, |e| match e {
        Event::PresenceUpdate(u) if u.jid == bob => Some(u),
        _ => None,
    })
    .await;
    assert_eq!(u.jid, bob);
}
