//! Group management through wa-sim: every request, the metadata cache, and notifications
//! reaching other members as events.

mod common;

use common::next_group_update;

use std::time::Duration;

use wa_binary::Jid;
use wa_groups::{
    Error, GroupChange, GroupSetting, Groups, GroupsConfig, ParticipantAction, ParticipantRole,
};
use wa_sim::{Sim, SimConfig};

const A: &str = "15550000001";
const B: &str = "15550000002";
const C: &str = "15550000003";
const D: &str = "15550000004";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_lifecycle_through_the_simulator() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = wa_testkit::link(&sim, A).await;
    let (sock_b, _) = wa_testkit::link(&sim, B).await;
    sim.add_account(C).await;
    sim.add_account(D).await;
    let ga = Groups::new(sock_a.clone(), &GroupsConfig::default());
    let gb = Groups::new(sock_b.clone(), &GroupsConfig::default());
    let mut ev_b = sock_b.events();

    // Create: A is super admin, B and C members.
    let meta = ga.create("Team", &[Jid::pn(B), Jid::pn(C)]).await.unwrap();
    let gid = meta.id.clone();
    assert_eq!(meta.subject, "Team");
    let mut members: Vec<_> = meta.participants.iter().map(|p| p.jid.clone()).collect();
    members.sort_by_key(ToString::to_string);
    assert_eq!(members, [Jid::pn(A), Jid::pn(B), Jid::pn(C)]);
    let me = meta
        .participants
        .iter()
        .find(|p| p.jid == Jid::pn(A))
        .unwrap();
    assert_eq!(me.role, ParticipantRole::SuperAdmin);
    let created = next_group_update(&mut ev_b, &gid, |u| {
        matches!(u.changes.first(), Some(GroupChange::Created(_)))
    })
    .await;
    assert_eq!(created.group, gid);

    // B's metadata: fetched once, then served from the cache.
    let mb = gb.metadata(&gid).await.unwrap();
    assert_eq!(mb.subject, "Team");

    // Add D, promote B, remove C: results per member, notifications reach B, whose
    // cached metadata follows them without a new query.
    let r = ga
        .participants_update(&gid, &[Jid::pn(D)], ParticipantAction::Add)
        .await
        .unwrap();
    assert_eq!((r[0].jid.clone(), r[0].status), (Jid::pn(D), 200));
    next_group_update(&mut ev_b, &gid, |u| {
        u.changes == [GroupChange::Added(vec![Jid::pn(D)])]
    })
    .await;
    ga.participants_update(&gid, &[Jid::pn(B)], ParticipantAction::Promote)
        .await
        .unwrap();
    next_group_update(&mut ev_b, &gid, |u| {
        matches!(u.changes.first(), Some(GroupChange::Promoted(_)))
    })
    .await;
    ga.participants_update(&gid, &[Jid::pn(C)], ParticipantAction::Remove)
        .await
        .unwrap();
    let removed = next_group_update(&mut ev_b, &gid, |u| {
        matches!(u.changes.first(), Some(GroupChange::Removed(_)))
    })
    .await;
    assert_eq!(
        removed.actor.as_ref().map(|a| a.user.to_string()),
        Some(A.to_owned())
    );
    let mb = gb.metadata(&gid).await.unwrap();
    let mut members: Vec<_> = mb.participants.iter().map(|p| p.jid.clone()).collect();
    members.sort_by_key(ToString::to_string);
    assert_eq!(members, [Jid::pn(A), Jid::pn(B), Jid::pn(D)]);
    let b_role = mb
        .participants
        .iter()
        .find(|p| p.jid == Jid::pn(B))
        .unwrap()
        .role;
    assert!(b_role.is_admin());
    let mut in_sim = sim.group_members(&gid).unwrap();
    in_sim.sort_by_key(ToString::to_string);
    assert_eq!(in_sim, members);

    // Adding someone already in: a per-member error, not a failed request.
    let r = ga
        .participants_update(&gid, &[Jid::pn(D)], ParticipantAction::Add)
        .await
        .unwrap();
    assert_ne!(r[0].status, 200);

    // Subject, description, settings.
    ga.update_subject(&gid, "Renamed").await.unwrap();
    next_group_update(&mut ev_b, &gid, |u| {
        u.changes == [GroupChange::Subject("Renamed".into())]
    })
    .await;
    ga.update_description(&gid, Some("What we do"))
        .await
        .unwrap();
    next_group_update(&mut ev_b, &gid, |u| {
        matches!(u.changes.first(), Some(GroupChange::Description(Some(d))) if d == "What we do")
    })
    .await;
    ga.setting_update(&gid, GroupSetting::Announcement)
        .await
        .unwrap();
    next_group_update(&mut ev_b, &gid, |u| {
        u.changes == [GroupChange::Announce(true)]
    })
    .await;
    ga.setting_update(&gid, GroupSetting::Locked).await.unwrap();
    next_group_update(&mut ev_b, &gid, |u| {
        u.changes == [GroupChange::Locked(true)]
    })
    .await;
    let fresh = gb.fetch_metadata(&gid).await.unwrap();
    assert_eq!(fresh.subject, "Renamed");
    assert_eq!(fresh.description.as_deref(), Some("What we do"));
    assert!(fresh.announce && fresh.restrict);
    assert_eq!(gb.metadata(&gid).await.unwrap().subject, "Renamed");

    // Invite codes: get, revoke gives a new one, a link joins C back.
    let code = ga.invite_code(&gid).await.unwrap();
    let code2 = ga.revoke_invite(&gid).await.unwrap();
    assert!(!code.is_empty());
    assert_ne!(code, code2);
    let (sock_c, _) = wa_testkit::link(&sim, C).await;
    let gc = Groups::new(sock_c.clone(), &GroupsConfig::default());
    assert!(matches!(
        gc.accept_invite(&code).await,
        Err(Error::Refused { .. })
    ));
    assert_eq!(gc.accept_invite(&code2).await.unwrap(), gid);
    assert!(sim.group_members(&gid).unwrap().contains(&Jid::pn(C)));

    // Everyone's group list; then B leaves and loses access.
    let all = gb.fetch_all_participating().await.unwrap();
    assert!(all.contains_key(&gid));
    gb.leave(&gid).await.unwrap();
    assert!(!sim.group_members(&gid).unwrap().contains(&Jid::pn(B)));
    assert!(matches!(
        gb.fetch_metadata(&gid).await,
        Err(Error::Refused { .. })
    ));

    // Bad requests fail before they are sent.
    assert!(matches!(
        ga.create("  ", &[Jid::pn(B)]).await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        ga.participants_update(&gid, &[], ParticipantAction::Add)
            .await,
        Err(Error::InvalidRequest(_))
    ));
    // A group that does not exist.
    assert!(matches!(
        ga.fetch_metadata(&Jid::group("1-1")).await,
        Err(Error::Refused { .. })
    ));
    sock_a.close().await;
    sock_b.close().await;
    sock_c.close().await;
}

/// Waits until `socket` holds a privacy token from `from`.
async fn holds_token(socket: &wa_socket::Socket, from: &Jid) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while socket.privacy_token(from).await.is_none() {
        assert!(std::time::Instant::now() < deadline, "no token from {from}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_account_adds_only_users_whose_token_it_holds() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = wa_testkit::link(&sim, A).await;
    let (sock_b, _) = wa_testkit::link(&sim, B).await;
    let (sock_c, _) = wa_testkit::link(&sim, C).await;
    let ga = Groups::new(sock_a.clone(), &GroupsConfig::default());
    sim.restrict_account(A, true);
    let now = wa_socket::privacy_token::now();
    sock_b
        .issue_privacy_tokens(&[Jid::pn(A)], now)
        .await
        .unwrap();
    holds_token(&sock_a, &Jid::pn(B)).await;

    // B's token rides along in <privacy>; C has issued none, so C is left out.
    let meta = ga.create("Team", &[Jid::pn(B), Jid::pn(C)]).await.unwrap();
    let mut members: Vec<_> = meta.participants.iter().map(|p| p.jid.clone()).collect();
    members.sort_by_key(ToString::to_string);
    assert_eq!(members, [Jid::pn(A), Jid::pn(B)]);
    let r = ga
        .participants_update(&meta.id, &[Jid::pn(C)], ParticipantAction::Add)
        .await
        .unwrap();
    assert_eq!(r[0].status, 403);

    sock_c
        .issue_privacy_tokens(&[Jid::pn(A)], now)
        .await
        .unwrap();
    holds_token(&sock_a, &Jid::pn(C)).await;
    let r = ga
        .participants_update(&meta.id, &[Jid::pn(C)], ParticipantAction::Add)
        .await
        .unwrap();
    assert_eq!((r[0].jid.clone(), r[0].status), (Jid::pn(C), 200));
}

/// `<ib><dirty type="groups">`: the groups layer fetches every group again, then cleans
/// the flag with the time it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_dirty_bits_refresh_the_groups_and_are_cleaned() {
    const E: &str = "15550000005";
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock, _) = wa_testkit::link(&sim, E).await;
    sim.add_account(C).await;
    let groups = Groups::new(sock.clone(), &GroupsConfig::default());
    let gid = groups
        .create("Dirty", &[Jid::pn(C)])
        .await
        .unwrap()
        .id
        .clone();
    // The flag is cleaned only after the list was fetched again.
    let mut events = sock.events();
    let t = sim.mark_dirty(E, "groups").expect("flagged");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sim.dirty_flags(E).is_empty() {
        assert!(std::time::Instant::now() < deadline, "flag not cleaned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sim.dirty_cleaned(E), [("groups".to_owned(), Some(t))]);
    assert_eq!(groups.metadata(&gid).await.unwrap().subject, "Dirty");
    // The refreshed groups were reported, whole.
    let refreshed = wa_testkit::next_event(&mut events, |e| match e {
        wa_socket::Event::GroupsRefreshed(all) => Some(all),
        _ => None,
    })
    .await;
    let g = refreshed.iter().find(|g| g.id == gid).expect("the group");
    assert_eq!(g.subject, "Dirty");
    assert_eq!(g.participants.len(), 2);
}
