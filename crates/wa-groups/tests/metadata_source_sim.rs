//! Through wa-sim: `GroupsConfig::metadata_source` (Baileys' `cachedGroupMetadata`) is
//! asked on a cache miss before the server, but never for a group the library knows its
//! copy of to be out of date.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::next_group_update;
use wa_binary::Jid;
use wa_groups::{GroupChange, GroupMetadata, Groups, GroupsConfig, MetadataSource};
use wa_sim::{Sim, SimConfig};

const A: &str = "15550000001";
const B: &str = "15550000002";

/// A source that answers (when `answer`) every question with a copy of `group` named
/// "from the source" (for another group that copy must be ignored), counting its calls.
fn source(group: Jid, answer: bool, calls: Arc<AtomicUsize>) -> GroupsConfig {
    let mut config = GroupsConfig::default();
    config.metadata_source = Some(MetadataSource::new(move |_asked: Jid| {
        calls.fetch_add(1, Ordering::SeqCst);
        let group = group.clone();
        Box::pin(async move {
            answer.then(|| {
                let mut meta = GroupMetadata::new(group);
                meta.subject = "from the source".into();
                meta
            })
        })
    }));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_is_asked_on_a_miss_but_not_for_copies_known_to_be_stale() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, _) = wa_testkit::link(&sim, A).await;
    let (sock_b, _) = wa_testkit::link(&sim, B).await;
    let ga = Groups::new(sock_a.clone(), &GroupsConfig::default());
    let g = ga.create("team", &[Jid::pn(B)]).await.unwrap().id.clone();

    // A miss asks the source; its copy is cached like a server answer.
    let calls = Arc::new(AtomicUsize::new(0));
    let gb = Groups::new(sock_b.clone(), &source(g.clone(), true, calls.clone()));
    assert_eq!(gb.metadata(&g).await.unwrap().subject, "from the source");
    assert_eq!(gb.metadata(&g).await.unwrap().subject, "from the source");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Dropped as out of date: the server is asked, not the source.
    gb.invalidate(&g).await;
    assert_eq!(gb.metadata(&g).await.unwrap().subject, "team");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A notification for a group this handle holds no copy of: the source may have
    // missed it too, so the server is asked. (One handle per socket gets the
    // notifications: the earlier one goes first.)
    drop(gb);
    let calls = Arc::new(AtomicUsize::new(0));
    let gb = Groups::new(sock_b.clone(), &source(g.clone(), true, calls.clone()));
    let mut events = sock_b.events();
    ga.update_subject(&g, "renamed").await.unwrap();
    next_group_update(&mut events, &g, |u| {
        u.changes
            .iter()
            .any(|c| matches!(c, GroupChange::Subject(_)))
    })
    .await;
    assert_eq!(gb.metadata(&g).await.unwrap().subject, "renamed");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // A source without a copy, or with a copy of another group: the server answers.
    drop(gb);
    let calls = Arc::new(AtomicUsize::new(0));
    let gb = Groups::new(sock_b.clone(), &source(g.clone(), false, calls.clone()));
    assert_eq!(gb.metadata(&g).await.unwrap().subject, "renamed");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    drop(gb);
    let other = Jid::group("120363999999999999");
    let calls = Arc::new(AtomicUsize::new(0));
    let gb = Groups::new(sock_b.clone(), &source(other, true, calls.clone()));
    assert_eq!(gb.metadata(&g).await.unwrap().subject, "renamed");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
