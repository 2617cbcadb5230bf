//! End-to-end usync against wa-sim on 127.0.0.1: device lists of another account (and the
//! cache in front of them), on-WhatsApp checks (LID/phone-number pairs, usernames,
//! disappearing timers, the LID mappings stored), LIDs, profile facts (verified business
//! names, status, picture ids, with the stored privacy tokens sent), and cache
//! invalidation by `<notification type="devices">` when a companion links or is removed.

use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use wa_binary::{Jid, Node, Server};
use wa_sim::{Sim, SimConfig};
use wa_socket::{Event, Socket};
use wa_store::LidMappingStore as _;
use wa_testkit::link;
use wa_types::LidMapping;
use wa_usync::{Usync, UsyncConfig};

const A: &str = "15550000001";
const B: &str = "15550000002";
const C: &str = "15550000003";

fn pn_device(phone: &'static str, device: u16) -> Jid {
    Jid::with_device(phone, Server::Pn, device)
}

/// Polls `get_devices(user)` until it has `n` devices (the cache must have been dropped
/// for that, as its TTL is an hour).
async fn wait_for_devices(usync: &Usync, user: &Jid, n: usize) -> Vec<Jid> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = usync.get_devices(std::slice::from_ref(user)).await.unwrap();
        let devs = got.get(user).cloned().unwrap_or_default();
        if devs.len() == n || Instant::now() > deadline {
            return devs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_of_another_account_are_queried_once_then_cached() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _a1) = link(&sim, A).await;
    let (_sock_b, b1) = link(&sim, B).await;
    let usync = Usync::new(sock_a.clone(), &UsyncConfig::default());
    let b = Jid::pn(B);
    let unknown = Jid::pn("15559999999");

    // A device JID is accepted and reduced to its user.
    let got = usync
        .get_devices(&[pn_device(B, 3), unknown.clone()])
        .await
        .unwrap();
    assert_eq!(got.get(&b), Some(&vec![pn_device(B, 0), b1.clone()]));
    assert!(
        !got.contains_key(&unknown),
        "a user the server reports an error for is left out"
    );
    assert_eq!(usync.queries_sent(), 1);
    assert_eq!(sim.usync_queries(), 1);

    // Cache hit: no second query.
    let again = usync.get_devices(std::slice::from_ref(&b)).await.unwrap();
    assert_eq!(again.get(&b), got.get(&b));
    assert_eq!(usync.queries_sent(), 1);
    assert_eq!(sim.usync_queries(), 1);

    // Clearing the cache makes the next call ask again.
    usync.clear_cache();
    usync.get_devices(std::slice::from_ref(&b)).await.unwrap();
    assert_eq!(sim.usync_queries(), 2);
    sock_a.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_whatsapp_and_lids() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = link(&sim, A).await;
    sim.add_account(B).await;
    let usync = Usync::new(sock_a.clone(), &UsyncConfig::default());

    let res = usync
        .on_whatsapp(&[&format!("+{B}"), "15559999999"])
        .await
        .unwrap();
    assert_eq!(res.len(), 2);
    assert_eq!(res[0].jid, Jid::pn(B));
    assert!(res[0].exists);
    assert_eq!(res[0].query, format!("+{B}"));
    assert_eq!(res[1].jid, Jid::pn("15559999999"));
    assert!(!res[1].exists);

    let lids = usync
        .lid_for(&[Jid::pn(B), Jid::pn("15559999999")])
        .await
        .unwrap();
    let b_info = sim.account(B).unwrap();
    assert_eq!(lids.get(&Jid::pn(B)), Some(&b_info.lid));
    assert_eq!(lids.len(), 1, "no LID for an unknown number: {lids:?}");

    // Usernames: only users that chose one are named.
    assert!(sim.set_username(B, Some("bea.example")));
    assert!(!sim.set_username(B, Some(&"x".repeat(65))));
    let names = usync
        .usernames(&[Jid::pn(B), Jid::pn(A), Jid::pn("15559999999")])
        .await
        .unwrap();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(
        names.get(&Jid::pn(B)).map(String::as_str),
        Some("bea.example")
    );

    // Devices asked by LID come back as LID device JIDs.
    let by_lid = usync
        .get_devices(std::slice::from_ref(&b_info.lid))
        .await
        .unwrap();
    assert_eq!(
        by_lid.get(&b_info.lid),
        Some(&vec![Jid::with_device(
            b_info.lid.user.clone(),
            Server::Lid,
            0
        )])
    );
    sock_a.close().await;
}

/// The LID mappings `events` reports within 500 ms.
async fn mappings_reported(events: &mut broadcast::Receiver<Event>) -> Vec<LidMapping> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(ev) = tokio::time::timeout_at(deadline, events.recv()).await {
        if let Ok(Event::LidMappings(m)) = ev {
            out.extend(m);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_whatsapp_names_the_lid_pair_username_and_timer_and_stores_the_mapping() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = link(&sim, A).await;
    sim.add_account(B).await;
    sim.add_account(C).await;
    let b_lid = sim.account(B).unwrap().lid;
    let c_lid = sim.account(C).unwrap().lid;
    assert!(sim.set_username(B, Some("bea.bakes")));
    let before = unix_now();
    assert!(sim.set_disappearing_mode(B, 604_800));
    assert!(!sim.set_disappearing_mode("15559999999", 60));
    let usync = Usync::new(sock_a.clone(), &UsyncConfig::default());
    let store = sock_a.store();
    assert_eq!(store.lid_for_pn(B).await.unwrap(), None);
    let mut events = sock_a.events();

    let res = usync
        .on_whatsapp(&[&format!("+{B}"), C, "15559999999"])
        .await
        .unwrap();
    assert_eq!(res.len(), 3);
    let b = &res[0];
    assert_eq!((&b.jid, b.lid.as_ref()), (&Jid::pn(B), Some(&b_lid)));
    assert!(b.exists);
    assert_eq!(b.query, format!("+{B}"));
    assert_eq!(b.username.as_deref(), Some("bea.bakes"));
    let timer = b.disappearing.expect("B's timer");
    assert_eq!(timer.duration, 604_800);
    let set_at = timer.set_at.expect("when the timer was set");
    assert!(set_at >= before && set_at <= unix_now(), "{set_at}");

    let c = &res[1];
    assert_eq!((&c.jid, c.lid.as_ref()), (&Jid::pn(C), Some(&c_lid)));
    assert_eq!(c.username, None);
    assert_eq!(
        c.disappearing.map(|d| (d.duration, d.set_at)),
        Some((0, None))
    );

    let unknown = &res[2];
    assert_eq!(unknown.jid, Jid::pn("15559999999"));
    assert!(!unknown.exists);
    assert_eq!(unknown.lid, None);

    // Both pairs are stored, in both directions, and announced.
    assert_eq!(
        store.lid_for_pn(B).await.unwrap().as_deref(),
        Some(b_lid.user.as_str())
    );
    assert_eq!(
        store
            .pn_for_lid(c_lid.user.as_str())
            .await
            .unwrap()
            .as_deref(),
        Some(C)
    );
    assert_eq!(store.lid_for_pn("15559999999").await.unwrap(), None);
    let mut reported = mappings_reported(&mut events).await;
    reported.sort_by(|x, y| x.pn.user.cmp(&y.pn.user));
    assert_eq!(
        reported,
        [
            LidMapping::of_users(b_lid.user.as_str(), B),
            LidMapping::of_users(c_lid.user.as_str(), C)
        ]
    );

    // Asking again learns nothing new: no second announcement.
    usync.on_whatsapp(&[B]).await.unwrap();
    assert!(mappings_reported(&mut events).await.is_empty());
    sock_a.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_sends_stored_privacy_tokens_and_stores_mappings() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = link(&sim, A).await;
    let (sock_b, _) = link(&sim, B).await;
    sim.add_account(C).await;
    let c_lid = sim.account(C).unwrap().lid;
    let usync = Usync::new(sock_a.clone(), &UsyncConfig::default());

    // Before any token: the query names B without one.
    usync.user_info(&[Jid::pn(B)]).await.unwrap();
    assert_eq!(sim.usync_tctoken(A, B), None);

    // B issues its token to A; once A's socket stored it, user_info carries it for B
    // and none for C, who issued none.
    sock_b
        .issue_privacy_tokens(&[Jid::pn(A)], wa_socket::privacy_token::now())
        .await
        .unwrap();
    let (token, _) = sim.privacy_token(B, A).expect("a token minted");
    let deadline = Instant::now() + Duration::from_secs(20);
    while sock_a.privacy_token(&Jid::pn(B)).await.as_deref() != Some(token.as_slice()) {
        assert!(Instant::now() < deadline, "token never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let info = usync
        .user_info(&[pn_device(B, 2), Jid::pn(C)])
        .await
        .unwrap();
    assert_eq!(sim.usync_tctoken(A, B), Some(token));
    assert_eq!(sim.usync_tctoken(A, C), None);

    // The LID/phone-number pair of each user, and C's stored as a mapping.
    let ci = info.get(&Jid::pn(C)).expect("C answered");
    assert_eq!(
        (ci.pn.as_ref(), ci.lid.as_ref()),
        (Some(&Jid::pn(C)), Some(&c_lid))
    );
    let bi = info.get(&Jid::pn(B)).expect("B answered");
    assert_eq!(bi.pn, Some(Jid::pn(B)));
    assert_eq!(bi.lid, Some(sim.account(B).unwrap().lid));
    assert_eq!(
        sock_a.store().lid_for_pn(C).await.unwrap().as_deref(),
        Some(c_lid.user.as_str())
    );
    sock_a.close().await;
    sock_b.close().await;
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An `<iq to=s.whatsapp.net>` of `xmlns`/`type` with `children`, as the account's own
/// client sends it.
async fn own_iq(sock: &Socket, xmlns: &str, ty: &str, children: Vec<Node>) -> Node {
    sock.query(
        Node::builder("iq")
            .attr("to", Jid::server_jid())
            .attr("xmlns", xmlns.to_owned())
            .attr("type", ty.to_owned())
            .children(children)
            .build(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_and_verified_names() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = link(&sim, A).await;
    let (sock_b, b1) = link(&sim, B).await;
    sim.add_account(C).await;
    let usync = Usync::new(sock_a.clone(), &UsyncConfig::default());
    let (b, c, unknown) = (Jid::pn(B), Jid::pn(C), Jid::pn("15559999999"));

    // B sets its about text and picture from its own device, and is a business.
    let before = unix_now();
    own_iq(
        &sock_b,
        "status",
        "set",
        vec![
            Node::builder("status")
                .bytes(b"Fresh bread daily".to_vec())
                .build(),
        ],
    )
    .await;
    let reply = own_iq(
        &sock_b,
        "w:profile:picture",
        "set",
        vec![
            Node::builder("picture")
                .attr("type", "image")
                .bytes(vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3])
                .build(),
        ],
    )
    .await;
    let picture_id = reply
        .child("picture")
        .unwrap()
        .attr::<String>("id")
        .unwrap();
    assert!(
        sim.state()
            .business_set_verified_name(B, Some("Bea's Bakery"))
    );

    let info = usync
        .user_info(&[pn_device(B, 1), c.clone(), unknown.clone()])
        .await
        .unwrap();
    assert_eq!(usync.queries_sent(), 1, "one query for everything");
    let bi = info.get(&b).expect("B answered");
    let vn = bi.verified_name.as_ref().expect("B is a verified business");
    assert_eq!(vn.name, "Bea's Bakery");
    assert_eq!(vn.issuer.as_deref(), Some("smb:wa"));
    assert_eq!(vn.serial, Some(B.parse().unwrap()));
    assert!(!vn.certificate.is_empty());
    assert_eq!(bi.status.as_deref(), Some("Fresh bread daily"));
    let set_at = bi.status_set_at.expect("status time");
    assert!(set_at >= before && set_at <= unix_now(), "{set_at}");
    assert_eq!(bi.picture_id.as_deref(), Some(picture_id.as_str()));
    assert_eq!(bi.devices, [pn_device(B, 0), b1.clone()]);
    assert_eq!(bi.lid, Some(sim.account(B).unwrap().lid));

    let ci = info.get(&c).expect("C answered");
    assert_eq!(
        ci.verified_name, None,
        "an ordinary account has no verified name"
    );
    assert_eq!((ci.status.as_deref(), ci.status_set_at), (None, None));
    assert_eq!(ci.picture_id, None);
    assert_eq!(ci.devices, [pn_device(C, 0)]);
    assert_eq!(ci.lid, Some(sim.account(C).unwrap().lid));

    let ui = info
        .get(&unknown)
        .expect("the server answers for unknown numbers too");
    assert!(ui.devices.is_empty() && ui.lid.is_none() && ui.verified_name.is_none());

    // The device lists learnt are cached: no second query for them.
    let devs = usync.get_devices(&[b.clone(), c.clone()]).await.unwrap();
    assert_eq!(devs.get(&b), Some(&bi.devices));
    assert_eq!(usync.queries_sent(), 1);

    // on_whatsapp names the business too.
    let res = usync.on_whatsapp(&[B, C]).await.unwrap();
    assert_eq!(res.len(), 2);
    assert_eq!(
        res[0].verified_name.as_ref().map(|v| v.name.as_str()),
        Some("Bea's Bakery")
    );
    assert_eq!(res[1].verified_name, None);
    sock_a.close().await;
    sock_b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_notification_invalidates_the_cache() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a1, a1) = link(&sim, A).await;
    let usync = Usync::new(sock_a1.clone(), &UsyncConfig::default());
    let a = Jid::pn(A);

    let first = wait_for_devices(&usync, &a, 2).await;
    assert_eq!(first, [pn_device(A, 0), a1.clone()]);
    assert_eq!(sim.usync_queries(), 1);

    // A second companion links: A1 is told, drops its cached list, and asks again.
    let (sock_a2, a2) = link(&sim, A).await;
    let second = wait_for_devices(&usync, &a, 3).await;
    assert_eq!(second, [pn_device(A, 0), a1.clone(), a2.clone()]);
    assert!(sim.usync_queries() >= 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.notification_acks() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sim.notification_acks() >= 1, "the notification was acked");

    // The server removes A2: the list shrinks again.
    assert!(sim.remove_device(&a2));
    let third = wait_for_devices(&usync, &a, 2).await;
    assert_eq!(third, [pn_device(A, 0), a1.clone()]);
    sock_a2.close().await;

    // A third companion links and then logs out (remove-companion-device): both changes
    // reach A1.
    let (sock_a3, a3) = link(&sim, A).await;
    let fourth = wait_for_devices(&usync, &a, 3).await;
    assert_eq!(fourth, [pn_device(A, 0), a1.clone(), a3]);
    sock_a3.logout().await.unwrap();
    let fifth = wait_for_devices(&usync, &a, 2).await;
    assert_eq!(fifth, [pn_device(A, 0), a1]);
    sock_a1.close().await;
}
