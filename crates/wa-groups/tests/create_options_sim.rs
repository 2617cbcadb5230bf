//! Through wa-sim: a group created with its settings up front (whatsmeow's
//! `ReqCreateGroup`), and the preview of a group behind a personal (v4) invite before
//! accepting it (whatsmeow's `GetGroupInfoFromInvite`).

mod common;

use common::next_group_update;

use std::time::Duration;

use wa_binary::{Jid, Node};
use wa_groups::{
    CreateGroupOptions, Error, GroupChange, GroupInviteMessage, Groups, GroupsConfig, InviteJoin,
    MessageKey, ParticipantAction,
};
use wa_sim::{Sim, SimConfig};
use wa_socket::{Filter, Socket};

const A: &str = "15550000001";
const B: &str = "15550000002";
const C: &str = "15550000003";
const D: &str = "15550000004";

const DAY: u32 = 24 * 60 * 60;

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

/// Sends a bare group message from `socket` and returns the error code of the server's
/// ack (`None`: accepted).
async fn group_message_ack(socket: &Socket, group: &Jid) -> Option<String> {
    let mut acks = socket.subscribe(Filter::tag("ack"), 8);
    let id = socket.generate_id();
    let message = Node::builder("message")
        .attr("id", id.clone())
        .attr("to", group.clone())
        .attr("type", "text")
        .children([Node::builder("enc")
            .attr("v", "2")
            .attr("type", "skmsg")
            .bytes(vec![0u8; 16])
            .build()])
        .build();
    socket.send_node(&message).await.unwrap();
    let ack = async {
        loop {
            let ack = acks.recv().await.expect("ack stream open");
            if ack.attr_opt::<&str>("id").ok().flatten() == Some(id.as_str()) {
                return ack;
            }
        }
    };
    let ack = tokio::time::timeout(Duration::from_secs(20), ack)
        .await
        .expect("ack in time");
    ack.attr_opt::<String>("error").ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_every_setting_through_the_simulator() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = wa_testkit::link(&sim, A).await;
    let (sock_b, _) = wa_testkit::link(&sim, B).await;
    let (sock_d, _) = wa_testkit::link(&sim, D).await;
    sim.add_account(C).await;
    let ga = Groups::new(sock_a.clone(), &GroupsConfig::default());
    let gb = Groups::new(sock_b.clone(), &GroupsConfig::default());
    let gd = Groups::new(sock_d.clone(), &GroupsConfig::default());
    let mut ev_b = sock_b.events();

    let options = CreateGroupOptions::new()
        .locked(true)
        .announce(true)
        .ephemeral(7 * DAY)
        .join_approval(true)
        .member_add_all(false);
    let meta = ga
        .create_with("Settings", &[Jid::pn(B)], &options)
        .await
        .unwrap();
    let gid = meta.id.clone();
    // The create answer, B's create notification and a fresh query all show them.
    let shows_all = |m: &wa_groups::GroupMetadata| {
        assert_eq!(m.subject, "Settings");
        assert!(m.restrict, "locked");
        assert!(m.announce, "announce");
        assert_eq!(m.ephemeral, Some(7 * DAY));
        assert!(m.join_approval, "join approval");
        assert!(!m.member_add_all, "admins add");
    };
    shows_all(&meta);
    let created = next_group_update(&mut ev_b, &gid, |u| {
        matches!(u.changes.first(), Some(GroupChange::Created(_)))
    })
    .await;
    let Some(GroupChange::Created(notified)) = created.changes.first() else {
        unreachable!()
    };
    shows_all(notified);
    shows_all(&gb.fetch_metadata(&gid).await.unwrap());
    shows_all(&ga.fetch_metadata(&gid).await.unwrap());
    assert_eq!(members(&sim, &gid), [Jid::pn(A), Jid::pn(B)]);

    // Each setting holds for B, a member but no admin: no renaming (locked), no
    // messages (announcement), no adding (admin_add) ...
    assert_eq!(refused(gb.update_subject(&gid, "Mine").await), 401);
    assert_eq!(
        group_message_ack(&sock_b, &gid).await.as_deref(),
        Some("403")
    );
    assert_eq!(
        refused(
            gb.participants_update(&gid, &[Jid::pn(C)], ParticipantAction::Add)
                .await
        ),
        401
    );
    // ... while the admin may rename.
    ga.update_subject(&gid, "Renamed").await.unwrap();
    // Joining by link leaves a request for the admins (join approval).
    let code = ga.invite_code(&gid).await.unwrap();
    assert_eq!(
        gd.join_by_invite(&code).await.unwrap(),
        InviteJoin::Requested(gid.clone())
    );
    assert_eq!(members(&sim, &gid), [Jid::pn(A), Jid::pn(B)]);
    let who: Vec<Jid> = ga
        .join_requests(&gid)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.jid)
        .collect();
    assert_eq!(who, [Jid::pn(D)]);

    // Every member adds: B may add C.
    let open = ga
        .create_with(
            "Open",
            &[Jid::pn(B)],
            &CreateGroupOptions::new().member_add_all(true),
        )
        .await
        .unwrap();
    assert!(open.member_add_all);
    assert!(gb.fetch_metadata(&open.id).await.unwrap().member_add_all);
    let r = gb
        .participants_update(&open.id, &[Jid::pn(C)], ParticipantAction::Add)
        .await
        .unwrap();
    assert_eq!((r[0].jid.clone(), r[0].status), (Jid::pn(C), 200));

    // Plain `create` keeps the server's defaults: none of the above.
    let plain = ga.create("Plain", &[Jid::pn(B)]).await.unwrap();
    let fresh = gb.fetch_metadata(&plain.id).await.unwrap();
    for m in [&plain, &fresh] {
        assert!(!m.restrict && !m.announce && !m.join_approval && !m.member_add_all);
        assert_eq!(m.ephemeral, None);
    }
    assert_eq!(group_message_ack(&sock_b, &plain.id).await, None);
    gb.update_subject(&plain.id, "Ours").await.unwrap();
    assert!(matches!(
        ga.create_with(" ", &[], &options).await,
        Err(Error::InvalidRequest(_))
    ));
    for s in [sock_a, sock_b, sock_d] {
        s.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_invite_preview_through_the_simulator() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = wa_testkit::link(&sim, A).await;
    let (sock_c, _) = wa_testkit::link(&sim, C).await;
    let (sock_d, _) = wa_testkit::link(&sim, D).await;
    sim.add_account(B).await;
    let ga = Groups::new(sock_a.clone(), &GroupsConfig::default());
    let gc = Groups::new(sock_c.clone(), &GroupsConfig::default());
    let gd = Groups::new(sock_d.clone(), &GroupsConfig::default());
    let gid = ga.create("Club", &[Jid::pn(B)]).await.unwrap().id.clone();
    ga.update_description(&gid, Some("Members only"))
        .await
        .unwrap();

    // Privacy keeps C (and D) out: A gets a personal invite for each.
    sim.restrict_account(A, true);
    let add = |who: &'static str| {
        let (ga, gid) = (ga.clone(), gid.clone());
        async move {
            let r = ga
                .participants_update(&gid, &[Jid::pn(who)], ParticipantAction::Add)
                .await
                .unwrap();
            assert_eq!(r[0].status, 403);
            r[0].add_request.clone().expect("a personal invite")
        }
    };
    let req = add(C).await;
    let inviter = Jid::pn(A);

    // C, not a member, sees the group behind its invite.
    let info = gc
        .invite_v4_info(&gid, &inviter, &req.code, req.expiration)
        .await
        .unwrap();
    assert_eq!(info.id, gid);
    assert_eq!(info.subject, "Club");
    assert_eq!(info.description.as_deref(), Some("Members only"));
    assert_eq!(info.size, 2);
    let mut seen: Vec<Jid> = info.participants.iter().map(|p| p.jid.clone()).collect();
    seen.sort_by_key(ToString::to_string);
    assert_eq!(seen, [Jid::pn(A), Jid::pn(B)]);
    assert!(!members(&sim, &gid).contains(&Jid::pn(C)));
    // C is still no member: the group's own metadata stays closed to it.
    assert_eq!(refused(gc.fetch_metadata(&gid).await), 403);

    // The same from the invite message A sent.
    let invite = GroupInviteMessage {
        group_jid: Some(gid.to_string()),
        invite_code: Some(req.code.clone()),
        invite_expiration: Some(i64::try_from(req.expiration).unwrap()),
        group_name: Some("Club".into()),
        ..Default::default()
    };
    let key = MessageKey::new(inviter.clone(), false, "3EB0AC1E0000000000000002");
    assert_eq!(
        gc.invite_v4_message_info(&key, &invite).await.unwrap().id,
        gid
    );
    let mut own = key.clone();
    own.from_me = true;
    assert!(matches!(
        gc.invite_v4_message_info(&own, &invite).await,
        Err(Error::InvalidRequest(_))
    ));

    // Not ours: a wrong code, the wrong inviter, someone else's invite (406); an
    // invite message past its expiration (410); no such group (404).
    assert_eq!(
        refused(
            gc.invite_v4_info(&gid, &inviter, "WrongCode0000000000000", req.expiration)
                .await
        ),
        406
    );
    assert_eq!(
        refused(
            gc.invite_v4_info(&gid, &Jid::pn(B), &req.code, req.expiration)
                .await
        ),
        406
    );
    assert_eq!(
        refused(
            gd.invite_v4_info(&gid, &inviter, &req.code, req.expiration)
                .await
        ),
        406
    );
    assert_eq!(
        refused(gc.invite_v4_info(&gid, &inviter, &req.code, 1).await),
        410
    );
    let nowhere = Jid::group("120363999999999999");
    assert_eq!(
        refused(
            gc.invite_v4_info(&nowhere, &inviter, &req.code, req.expiration)
                .await
        ),
        404
    );
    // Checked before anything is sent.
    assert!(matches!(
        gc.invite_v4_info(&gid, &inviter, "", req.expiration).await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        gc.invite_v4_info(&Jid::pn(B), &inviter, &req.code, req.expiration)
            .await,
        Err(Error::InvalidRequest(_))
    ));

    // Previewing used nothing up: C accepts, and is in.
    assert_eq!(gc.accept_invite_v4(&inviter, &invite).await.unwrap(), gid);
    assert!(members(&sim, &gid).contains(&Jid::pn(C)));
    assert_eq!(gc.fetch_metadata(&gid).await.unwrap().size, 3);

    // D's invite runs out: previewing it is refused as gone (410), and the expired
    // invite is dropped, so accepting finds none (406).
    let req_d = add(D).await;
    assert!(sim.expire_personal_invites(&gid) >= 1);
    assert_eq!(
        refused(
            gd.invite_v4_info(&gid, &inviter, &req_d.code, req_d.expiration)
                .await
        ),
        410
    );
    let invite_d = GroupInviteMessage {
        invite_code: Some(req_d.code.clone()),
        invite_expiration: Some(i64::try_from(req_d.expiration).unwrap()),
        ..invite.clone()
    };
    assert_eq!(refused(gd.accept_invite_v4(&inviter, &invite_d).await), 406);
    assert!(!members(&sim, &gid).contains(&Jid::pn(D)));
    for s in [sock_a, sock_c, sock_d] {
        s.close().await;
    }
}
