//! Helpers shared by the simulator tests.

#![allow(unreachable_pub)]

use std::time::Duration;

use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_groups::GroupUpdate;
use wa_socket::Event;

/// The next group update for `group` satisfying `pred` (20 s at most).
pub async fn next_group_update(
    rx: &mut broadcast::Receiver<Event>,
    group: &Jid,
    mut pred: impl FnMut(&GroupUpdate) -> bool,
) -> GroupUpdate {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(Event::GroupUpdate(u)) if &u.group == group && pred(&u) => return *u,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("group update in time")
}
