//! Communities through wa-sim: create one (with its announcement group), link an
//! existing group, create a sub-group, list sub-groups and members, unlink, leave; the
//! other members see each change as an event and in the metadata.

mod common;

use common::next_group_update;

use wa_binary::Jid;
use wa_groups::{
    Error, GroupChange, GroupLinkType, GroupUpdate, Groups, GroupsConfig, ParticipantAction,
};
use wa_sim::{Sim, SimConfig};

const A: &str = "15550000011";
const B: &str = "15550000012";
const C: &str = "15550000013";

fn linked(u: &GroupUpdate, ty: &GroupLinkType, other: &Jid) -> bool {
    matches!(u.changes.as_slice(),
        [GroupChange::Linked { link_type, group }] if link_type == ty && &group.jid == other)
}

fn unlinked(u: &GroupUpdate, ty: &GroupLinkType, other: &Jid) -> bool {
    matches!(u.changes.as_slice(),
        [GroupChange::Unlinked { link_type, group, .. }] if link_type == ty && &group.jid == other)
}

/// The JIDs of a community's groups, as `groups` lists them.
async fn sub_group_ids(groups: &Groups, community: &Jid) -> Vec<Jid> {
    groups
        .sub_groups(community)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.jid)
        .collect()
}

fn sorted(mut v: Vec<Jid>) -> Vec<Jid> {
    v.sort_by_key(ToString::to_string);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_lifecycle_through_the_simulator() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = wa_testkit::link(&sim, A).await;
    let (sock_b, _) = wa_testkit::link(&sim, B).await;
    sim.add_account(C).await;
    let ga = Groups::new(sock_a.clone(), &GroupsConfig::default());
    let gb = Groups::new(sock_b.clone(), &GroupsConfig::default());
    let mut ev_b = sock_b.events();

    // An ordinary group with B, to be linked later.
    let garden = ga.create("Garden", &[Jid::pn(B)]).await.unwrap().id.clone();
    assert!(garden_meta_is_plain(&gb, &garden).await);

    // The community: a parent group, and an announcement group made with it.
    let community = ga
        .create_community("Our street", Some("Everything about the street"))
        .await
        .unwrap();
    let cid = community.id.clone();
    assert!(community.is_community);
    assert_eq!(community.subject, "Our street");
    assert_eq!(
        community.description.as_deref(),
        Some("Everything about the street")
    );
    assert_eq!(community.linked_parent, None);
    let announce = ga
        .community_announcement_group(&cid)
        .await
        .unwrap()
        .expect("an announcement group");
    assert!(announce.is_default_sub_group);
    let am = ga.fetch_metadata(&announce.jid).await.unwrap();
    assert!(am.is_default_sub_group && am.is_community_announcement());
    assert_eq!(am.linked_parent.as_ref(), Some(&cid));
    assert!(!am.is_community);

    // Link the existing group: B hears it in both groups and becomes a community member.
    ga.link_group(&cid, &garden).await.unwrap();
    // (The community's notification comes first, then the group's.)
    next_group_update(&mut ev_b, &cid, |u| {
        linked(u, &GroupLinkType::SubGroup, &garden)
    })
    .await;
    next_group_update(&mut ev_b, &garden, |u| {
        linked(u, &GroupLinkType::ParentGroup, &cid)
    })
    .await;
    // B's cached metadata of the group was dropped by the notification: fresh data.
    let gm = gb.metadata(&garden).await.unwrap();
    assert_eq!(gm.linked_parent.as_ref(), Some(&cid));
    assert!(!gm.is_default_sub_group);
    let cm = gb.fetch_metadata(&cid).await.unwrap();
    assert!(cm.is_community);
    assert!(cm.participants.iter().any(|p| p.jid == Jid::pn(B)));
    // Linking it twice is refused.
    assert!(matches!(
        ga.link_group(&cid, &garden).await,
        Err(Error::Refused { code: 409, .. })
    ));

    // A new group inside the community, with C.
    let events = ga
        .create_sub_group(&cid, "Street party", &[Jid::pn(C)])
        .await
        .unwrap();
    assert_eq!(events.linked_parent.as_ref(), Some(&cid));
    let eid = events.id.clone();
    next_group_update(&mut ev_b, &cid, |u| {
        linked(u, &GroupLinkType::SubGroup, &eid)
    })
    .await;

    // Every group of the community, the announcement group first; every member.
    let subs = gb.sub_groups(&cid).await.unwrap();
    let ids: Vec<Jid> = subs.iter().map(|g| g.jid.clone()).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], announce.jid);
    assert_eq!(
        sorted(ids[1..].to_vec()),
        sorted(vec![garden.clone(), eid.clone()])
    );
    assert_eq!(subs.iter().filter(|g| g.is_default_sub_group).count(), 1);
    // Asked from one of its groups, or from the community itself: the same list.
    let (community, from_sub) = gb.linked_groups(&garden).await.unwrap();
    assert_eq!(community, cid);
    assert_eq!(from_sub, subs);
    assert_eq!(
        gb.linked_groups(&cid).await.unwrap(),
        (cid.clone(), subs.clone())
    );
    let garden_entry = subs.iter().find(|g| g.jid == garden).unwrap();
    assert_eq!(garden_entry.subject, "Garden");
    assert_eq!(garden_entry.size, Some(2));
    assert_eq!(
        sorted(ga.linked_groups_participants(&cid).await.unwrap()),
        sorted(vec![Jid::pn(A), Jid::pn(B), Jid::pn(C)])
    );

    // Removed from the community, C leaves its groups too.
    assert!(sim.group_members(&cid).unwrap().contains(&Jid::pn(C)));
    assert!(sim.group_members(&eid).unwrap().contains(&Jid::pn(C)));
    let removed = ga
        .community_participants_update(&cid, &[Jid::pn(C)], ParticipantAction::Remove)
        .await
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].status, 200, "{removed:?}");
    assert!(!sim.group_members(&cid).unwrap().contains(&Jid::pn(C)));
    assert!(!sim.group_members(&eid).unwrap().contains(&Jid::pn(C)));
    assert!(
        ga.metadata(&eid)
            .await
            .unwrap()
            .participants
            .iter()
            .all(|p| p.jid.user != C)
    );

    // B is no admin of the community: B may not link or unlink.
    let own = gb.create("B's club", &[]).await.unwrap().id.clone();
    assert!(matches!(
        gb.link_group(&cid, &own).await,
        Err(Error::Refused { code: 401, .. })
    ));
    // The announcement group cannot be unlinked; a group not in the community neither.
    assert!(matches!(
        ga.unlink_group(&cid, &announce.jid).await,
        Err(Error::Refused { code: 400, .. })
    ));
    assert!(matches!(
        ga.unlink_group(&cid, &own).await,
        Err(Error::Refused { code: 404, .. })
    ));
    // A sub-group inside something that is not a community.
    assert!(matches!(
        ga.create_sub_group(&garden, "Nope", &[]).await,
        Err(Error::Refused { code: 404, .. })
    ));

    // Unlink: both groups hear it, the group goes on without a parent.
    ga.unlink_group(&cid, &garden).await.unwrap();
    let u = next_group_update(&mut ev_b, &cid, |u| {
        unlinked(u, &GroupLinkType::SubGroup, &garden)
    })
    .await;
    next_group_update(&mut ev_b, &garden, |u| {
        unlinked(u, &GroupLinkType::ParentGroup, &cid)
    })
    .await;
    assert!(matches!(&u.changes[0],
        GroupChange::Unlinked { reason: Some(r), .. } if r == "unlink_group"));
    assert_eq!(gb.metadata(&garden).await.unwrap().linked_parent, None);
    let ids = sub_group_ids(&ga, &cid).await;
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&garden));

    // B leaves the community: out of the parent and the announcement group.
    gb.leave_community(&cid).await.unwrap();
    assert!(!sim.group_members(&cid).unwrap().contains(&Jid::pn(B)));
    assert!(
        !sim.group_members(&announce.jid)
            .unwrap()
            .contains(&Jid::pn(B))
    );
    assert!(matches!(
        gb.sub_groups(&cid).await,
        Err(Error::Refused { code: 403, .. })
    ));
    // The unlinked group still has B.
    assert!(sim.group_members(&garden).unwrap().contains(&Jid::pn(B)));

    assert!(matches!(
        ga.create_community(" ", None).await,
        Err(Error::InvalidRequest(_))
    ));
    sock_a.close().await;
    sock_b.close().await;
}

async fn garden_meta_is_plain(g: &Groups, group: &Jid) -> bool {
    let m = g.fetch_metadata(group).await.unwrap();
    !m.is_community && m.linked_parent.is_none() && !m.is_default_sub_group
}

/// Communities are in the server's state file: after a restart from it, the community,
/// its announcement group and a linked group are still what they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn communities_survive_a_restart_from_the_state_file() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let store = wa_testkit::memory_store();
    let (sock, _) = wa_testkit::link_with(&sim, A, store.clone()).await;
    let groups = Groups::new(sock.clone(), &GroupsConfig::default());
    let cid = groups
        .create_community("Street", None)
        .await
        .unwrap()
        .id
        .clone();
    let announce = groups.community_announcement_group(&cid).await.unwrap();
    let garden = groups.create("Garden", &[]).await.unwrap().id.clone();
    groups.link_group(&cid, &garden).await.unwrap();
    let json = sim.state().to_json();
    drop(groups);
    sock.close().await;
    sim.shutdown().await;

    let config = SimConfig {
        state: wa_sim::SimState::from_json(&json).unwrap(),
        ..SimConfig::default()
    };
    let sim = Sim::start(config).await.unwrap();
    let sock = wa_socket::Socket::connect(wa_testkit::config(&sim, store));
    let mut ev = sock.events_from_start();
    wa_testkit::next_update(&mut ev, |u| u.state == wa_socket::ConnectionState::Open).await;
    let groups = Groups::new(sock, &GroupsConfig::default());
    assert!(groups.fetch_metadata(&cid).await.unwrap().is_community);
    assert_eq!(
        groups.community_announcement_group(&cid).await.unwrap(),
        announce
    );
    let subs = sub_group_ids(&groups, &cid).await;
    assert!(subs.contains(&garden), "{subs:?}");
    assert_eq!(
        groups.fetch_metadata(&garden).await.unwrap().linked_parent,
        Some(cid)
    );
}
