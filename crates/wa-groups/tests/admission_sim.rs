//! Admission through wa-sim: invite-link info, who may add members, join approval and
//! its requests, and personal (v4) invites.

mod common;

use common::next_group_update;

use wa_binary::Jid;
use wa_groups::{
    Error, GroupChange, GroupInviteMessage, Groups, GroupsConfig, InviteJoin, MessageChangeKind,
    MessageKey, ParticipantAction,
};
use wa_sim::{Sim, SimConfig};
use wa_socket::Event;

const A: &str = "15550000001";
const B: &str = "15550000002";
const C: &str = "15550000003";
const D: &str = "15550000004";

fn refused(r: Result<impl std::fmt::Debug, Error>) -> u16 {
    match r {
        Err(Error::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn members(sim: &Sim, group: &Jid) -> Vec<Jid> {
    let mut m = sim.group_members(group).unwrap();
    m.sort_by_key(ToString::to_string);
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_info_and_member_add_mode_through_the_simulator() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = wa_testkit::link(&sim, A).await;
    let (sock_b, _) = wa_testkit::link(&sim, B).await;
    let (sock_c, _) = wa_testkit::link(&sim, C).await;
    sim.add_account(D).await;
    let ga = Groups::new(sock_a.clone(), &GroupsConfig::default());
    let gb = Groups::new(sock_b.clone(), &GroupsConfig::default());
    let gc = Groups::new(sock_c.clone(), &GroupsConfig::default());
    let mut ev_b = sock_b.events();
    let gid = ga.create("Club", &[Jid::pn(B)]).await.unwrap().id.clone();

    // Invite info: C, not a member, sees the group behind the link without joining.
    let code = ga.invite_code(&gid).await.unwrap();
    let info = gc.invite_info(&code).await.unwrap();
    assert_eq!(info.id, gid);
    assert_eq!(info.subject, "Club");
    assert_eq!(info.size, 2);
    assert!(info.participants.iter().any(|p| p.jid == Jid::pn(A)));
    let link = format!("https://chat.whatsapp.com/{code}");
    assert_eq!(gc.invite_info(&link).await.unwrap().id, gid);
    assert_eq!(members(&sim, &gid), [Jid::pn(A), Jid::pn(B)]);
    // Never valid: 406; reset: 410 gone.
    assert_eq!(refused(gc.invite_info("NotACode123").await), 406);
    let code2 = ga.revoke_invite(&gid).await.unwrap();
    assert_eq!(refused(gc.invite_info(&code).await), 410);
    assert_eq!(gc.invite_info(&code2).await.unwrap().id, gid);
    assert!(matches!(
        gc.invite_info("  ").await,
        Err(Error::InvalidRequest(_))
    ));

    // Member add mode: admins only by default, so B (a member) cannot add.
    let mb = gb.metadata(&gid).await.unwrap();
    assert!(!mb.member_add_all);
    let add = |g: &Groups, who: &'static str| {
        let (g, gid) = (g.clone(), gid.clone());
        async move {
            g.participants_update(&gid, &[Jid::pn(who)], ParticipantAction::Add)
                .await
        }
    };
    assert_eq!(refused(add(&gb, D).await), 401);
    // Only admins change the mode.
    assert_eq!(refused(gb.set_member_add_mode(&gid, true).await), 401);
    ga.set_member_add_mode(&gid, true).await.unwrap();
    let u = next_group_update(&mut ev_b, &gid, |u| {
        u.changes
            .iter()
            .any(|c| matches!(c, GroupChange::MemberAddMode(_)))
    })
    .await;
    assert_eq!(u.changes, [GroupChange::MemberAddMode(true)]);
    // B's cached metadata followed the notification; the server agrees.
    assert!(gb.metadata(&gid).await.unwrap().member_add_all);
    assert!(ga.fetch_metadata(&gid).await.unwrap().member_add_all);
    let r = add(&gb, D).await.unwrap();
    assert_eq!((r[0].jid.clone(), r[0].status), (Jid::pn(D), 200));
    assert!(members(&sim, &gid).contains(&Jid::pn(D)));
    // Back to admins only: B's add of C is refused again.
    ga.set_member_add_mode(&gid, false).await.unwrap();
    next_group_update(&mut ev_b, &gid, |u| {
        u.changes == [GroupChange::MemberAddMode(false)]
    })
    .await;
    assert!(!gb.metadata(&gid).await.unwrap().member_add_all);
    assert_eq!(refused(add(&gb, C).await), 401);
    assert!(!members(&sim, &gid).contains(&Jid::pn(C)));
    sock_a.close().await;
    sock_b.close().await;
    sock_c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_approval_and_requests_through_the_simulator() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = wa_testkit::link(&sim, A).await;
    let (sock_b, _) = wa_testkit::link(&sim, B).await;
    let (sock_c, _) = wa_testkit::link(&sim, C).await;
    let (sock_d, _) = wa_testkit::link(&sim, D).await;
    let ga = Groups::new(sock_a.clone(), &GroupsConfig::default());
    let gb = Groups::new(sock_b.clone(), &GroupsConfig::default());
    let gc = Groups::new(sock_c.clone(), &GroupsConfig::default());
    let gd = Groups::new(sock_d.clone(), &GroupsConfig::default());
    let mut ev_b = sock_b.events();
    let mut ev_c = sock_c.events();
    let gid = ga.create("Club", &[Jid::pn(B)]).await.unwrap().id.clone();
    let code = ga.invite_code(&gid).await.unwrap();

    // Only admins turn approval on; B, a member, hears of it and sees it in metadata.
    assert!(!gb.metadata(&gid).await.unwrap().join_approval);
    assert_eq!(refused(gb.set_join_approval(&gid, true).await), 401);
    ga.set_join_approval(&gid, true).await.unwrap();
    next_group_update(&mut ev_b, &gid, |u| {
        u.changes == [GroupChange::JoinApproval(true)]
    })
    .await;
    assert!(gb.metadata(&gid).await.unwrap().join_approval);
    assert!(gb.fetch_metadata(&gid).await.unwrap().join_approval);
    assert!(gc.invite_info(&code).await.unwrap().join_approval);
    // B becomes an admin, so it hears about requests.
    ga.participants_update(&gid, &[Jid::pn(B)], ParticipantAction::Promote)
        .await
        .unwrap();

    // Following the link now leaves a request instead of joining.
    assert_eq!(
        gc.join_by_invite(&code).await.unwrap(),
        InviteJoin::Requested(gid.clone())
    );
    let u = next_group_update(&mut ev_b, &gid, |u| {
        u.changes
            .iter()
            .any(|c| matches!(c, GroupChange::JoinRequested { .. }))
    })
    .await;
    assert_eq!(
        u.changes,
        [GroupChange::JoinRequested {
            participants: vec![Jid::pn(C)],
            method: Some("invite_link".into()),
        }]
    );
    assert!(matches!(
        gd.accept_invite(&code).await,
        Err(Error::JoinRequestPending { group }) if group == gid
    ));
    // Asking twice keeps one request.
    gc.join_by_invite(&code).await.unwrap();
    assert_eq!(members(&sim, &gid), [Jid::pn(A), Jid::pn(B)]);

    let reqs = ga.join_requests(&gid).await.unwrap();
    let who: Vec<Jid> = reqs.iter().map(|r| r.jid.clone()).collect();
    assert_eq!(who, [Jid::pn(C), Jid::pn(D)]);
    assert!(reqs.iter().all(|r| r.requested_at > 0));
    assert!(
        reqs.iter()
            .all(|r| r.method.as_deref() == Some("invite_link"))
    );
    // Members who are not admins do not see them.
    assert_eq!(refused(gc.join_requests(&gid).await), 403);

    // Approve C (and someone who never asked): C joins, announced like an add.
    let r = ga
        .update_join_requests(&gid, &[Jid::pn(C), Jid::pn("15559999999")], true)
        .await
        .unwrap();
    let got: Vec<(Jid, u16)> = r.iter().map(|p| (p.jid.clone(), p.status)).collect();
    assert_eq!(got, [(Jid::pn(C), 200), (Jid::pn("15559999999"), 404)]);
    next_group_update(&mut ev_b, &gid, |u| {
        u.changes == [GroupChange::Added(vec![Jid::pn(C)])]
    })
    .await;
    next_group_update(&mut ev_c, &gid, |u| {
        u.changes == [GroupChange::Added(vec![Jid::pn(C)])]
    })
    .await;
    assert_eq!(members(&sim, &gid), [Jid::pn(A), Jid::pn(B), Jid::pn(C)]);
    // C is a member but no admin: the request list is closed to it.
    assert_eq!(refused(gc.join_requests(&gid).await), 401);

    // Reject D: the request is gone, the admins hear it, D stays out.
    let r = ga
        .update_join_requests(&gid, &[Jid::pn(D)], false)
        .await
        .unwrap();
    assert_eq!((r[0].jid.clone(), r[0].status), (Jid::pn(D), 200));
    let u = next_group_update(&mut ev_b, &gid, |u| {
        u.changes
            .iter()
            .any(|c| matches!(c, GroupChange::JoinRequestsRevoked(_)))
    })
    .await;
    assert_eq!(
        u.changes,
        [GroupChange::JoinRequestsRevoked(vec![Jid::pn(D)])]
    );
    assert!(ga.join_requests(&gid).await.unwrap().is_empty());
    assert!(!members(&sim, &gid).contains(&Jid::pn(D)));
    // A second answer to the same request finds none.
    let r = ga
        .update_join_requests(&gid, &[Jid::pn(D)], true)
        .await
        .unwrap();
    assert_eq!(r[0].status, 404);
    assert!(matches!(
        ga.update_join_requests(&gid, &[], true).await,
        Err(Error::InvalidRequest(_))
    ));

    // Approval off: the link joins directly again.
    ga.set_join_approval(&gid, false).await.unwrap();
    next_group_update(&mut ev_b, &gid, |u| {
        u.changes == [GroupChange::JoinApproval(false)]
    })
    .await;
    assert!(!gb.metadata(&gid).await.unwrap().join_approval);
    assert_eq!(gd.accept_invite(&code).await.unwrap(), gid);
    assert!(members(&sim, &gid).contains(&Jid::pn(D)));
    for s in [sock_a, sock_b, sock_c, sock_d] {
        s.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_invites_through_the_simulator() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = wa_testkit::link(&sim, A).await;
    let (sock_b, _) = wa_testkit::link(&sim, B).await;
    let (sock_c, _) = wa_testkit::link(&sim, C).await;
    let (sock_d, _) = wa_testkit::link(&sim, D).await;
    let ga = Groups::new(sock_a.clone(), &GroupsConfig::default());
    let gc = Groups::new(sock_c.clone(), &GroupsConfig::default());
    let gd = Groups::new(sock_d.clone(), &GroupsConfig::default());
    // B's handle turns its notifications into events.
    let _gb = Groups::new(sock_b.clone(), &GroupsConfig::default());
    let mut ev_b = sock_b.events();
    let meta = ga.create("Club", &[Jid::pn(B)]).await.unwrap();
    let gid = meta.id.clone();

    // A restricted account holding no token from C cannot add C: the answer carries a
    // personal invite instead.
    sim.restrict_account(A, true);
    let only_c = [Jid::pn(C)];
    let add_c = || ga.participants_update(&gid, &only_c, ParticipantAction::Add);
    let r = add_c().await.unwrap();
    assert_eq!(r[0].status, 403);
    let req = r[0].add_request.clone().expect("a personal invite");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(req.expiration > now);
    let invite = |code: &str, expiration: u64| GroupInviteMessage {
        group_jid: Some(gid.to_string()),
        invite_code: Some(code.to_owned()),
        invite_expiration: Some(i64::try_from(expiration).unwrap()),
        group_name: Some(meta.subject.clone()),
        ..Default::default()
    };
    let first = invite(&req.code, req.expiration);

    // Only the invitee, naming the admin who invited, may use it.
    assert_eq!(refused(gd.accept_invite_v4(&Jid::pn(A), &first).await), 406);
    assert_eq!(refused(gc.accept_invite_v4(&Jid::pn(B), &first).await), 406);
    // Revoked: it no longer works.
    ga.revoke_invite_v4(&gid, &Jid::pn(C)).await.unwrap();
    assert_eq!(refused(gc.accept_invite_v4(&Jid::pn(A), &first).await), 406);
    assert!(!members(&sim, &gid).contains(&Jid::pn(C)));

    // A new invite joins C; the members hear of it from the server, and C's client,
    // which the server does not tell, reports the join itself: A's invite added C.
    let req = add_c().await.unwrap()[0].add_request.clone().unwrap();
    let second = invite(&req.code, req.expiration);
    let mut ev_c = sock_c.events();
    // C accepts the invite message A sent: its key names the inviter.
    let key = MessageKey::new(Jid::pn(A), false, "3EB0AC1E0000000000000001");
    let mut own = key.clone();
    own.from_me = true;
    assert!(matches!(
        gc.accept_invite_v4_message(&own, &second).await,
        Err(Error::InvalidRequest(_))
    ));
    assert_eq!(
        gc.accept_invite_v4_message(&key, &second).await.unwrap(),
        gid
    );
    let u = next_group_update(&mut ev_b, &gid, |u| {
        u.changes == [GroupChange::Added(vec![Jid::pn(C)])]
    })
    .await;
    assert_eq!(u.actor.map(|a| a.user.to_string()), Some(C.to_owned()));
    let u = next_group_update(&mut ev_c, &gid, |u| {
        u.changes == [GroupChange::Added(vec![Jid::pn(C)])]
    })
    .await;
    assert_eq!(u.actor, Some(Jid::pn(A)));
    // ... and reports the invite message used up.
    let change = wa_testkit::next_event(&mut ev_c, |e| match e {
        Event::MessageChanged(c) => Some(c),
        _ => None,
    })
    .await;
    assert_eq!(change.key, key);
    assert_eq!(change.by.user.to_string(), C);
    let MessageChangeKind::InviteUsed(used) = &change.kind else {
        panic!("not a used invite: {:?}", change.kind);
    };
    let used = used.group_invite_message.as_deref().expect("the invite");
    assert_eq!((used.invite_code(), used.invite_expiration()), ("", 0));
    assert_eq!(used.group_jid(), gid.to_string());
    assert_eq!(used.group_name(), meta.subject);
    assert!(members(&sim, &gid).contains(&Jid::pn(C)));
    assert!(gc.metadata(&gid).await.is_ok());
    // Used up.
    assert_eq!(
        refused(gd.accept_invite_v4(&Jid::pn(A), &second).await),
        406
    );

    // Invites that name no group or carry no code fail before they are sent.
    let mut no_group = second.clone();
    no_group.group_jid = Some(Jid::pn(A).to_string());
    assert!(matches!(
        gc.accept_invite_v4(&Jid::pn(A), &no_group).await,
        Err(Error::InvalidRequest(_))
    ));
    let mut no_code = second;
    no_code.invite_code = None;
    assert!(matches!(
        gc.accept_invite_v4(&Jid::pn(A), &no_code).await,
        Err(Error::InvalidRequest(_))
    ));
    for s in [sock_a, sock_b, sock_c, sock_d] {
        s.close().await;
    }
}
