//! Account restrictions: the reach-out timelock ([`Sim::set_reachout_timelock`]) and the
//! new-chat message cap ([`Sim::set_new_chat_message_cap`]). Both are answered to the
//! `w:mex` fetches and pushed to the account's companions as
//! `<notification type="mex"><update op_name=..>`. While a timelock holds, the account
//! is restricted as [`Sim::restrict_account`] restricts it. Saved in the state file.
//!
//! [`Sim::set_reachout_timelock`]: crate::Sim::set_reachout_timelock
//! [`Sim::set_new_chat_message_cap`]: crate::Sim::set_new_chat_message_cap
//! [`Sim::restrict_account`]: crate::Sim::restrict_account

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wa_binary::{Jid, Node};

use crate::route;
use crate::sim::Shared;

const TIMELOCK_QUERY: &str = "23983697327930364";
const TIMELOCK_PATH: &str = "xwa2_fetch_account_reachout_timelock";
const CAP_QUERY: &str = "24503548349331633";
const CAP_PATH: &str = "xwa2_message_capping_info";

/// Longest enforcement type kept.
const MAX_ENFORCEMENT: usize = 64;
/// Longest cap object kept, as JSON.
const MAX_CAP_JSON: usize = 4_096;

/// Timelocks and caps per account (phone number). Saved in the state file.
#[derive(Default, Clone, Serialize, Deserialize)]
pub(crate) struct Restrictions {
    /// Phone -> (end in Unix seconds, enforcement type).
    timelocks: BTreeMap<String, (Option<u64>, String)>,
    /// Phone -> the cap as the server reports it.
    caps: BTreeMap<String, Value>,
}

impl Restrictions {
    /// Whether a loaded file stays within what the setters accept.
    pub(crate) fn check(&self) -> Result<(), crate::Error> {
        let ok = self
            .timelocks
            .values()
            .all(|(_, e)| e.len() <= MAX_ENFORCEMENT)
            && self
                .caps
                .values()
                .all(|c| c.is_object() && c.to_string().len() <= MAX_CAP_JSON);
        if ok {
            Ok(())
        } else {
            Err(crate::Error::BadState(
                "restriction beyond the server's bounds",
            ))
        }
    }

    fn timelock_json(&self, phone: &str) -> Value {
        match self.timelocks.get(phone) {
            Some((ends, enforcement)) => json!({
                "is_active": true,
                "time_enforcement_ends": ends.map_or_else(|| "0".to_owned(), |t| t.to_string()),
                "enforcement_type": enforcement,
            }),
            None => json!({ "is_active": false, "enforcement_type": "DEFAULT" }),
        }
    }
}

/// Sets or lifts the timelock of `phone` and tells its companions.
pub(crate) fn set_timelock(shared: &Shared, phone: &str, lock: Option<(Option<u64>, String)>) {
    let lock = lock.map(|(ends, e)| {
        let cut: String = e
            .char_indices()
            .take_while(|(i, c)| i + c.len_utf8() <= MAX_ENFORCEMENT)
            .map(|(_, c)| c)
            .collect();
        (ends, cut)
    });
    let (devices, body) = {
        let mut st = shared.state.lock();
        st.chats.tokens.set_restricted(phone, lock.is_some());
        match lock {
            Some(l) => st.restrictions.timelocks.insert(phone.to_owned(), l),
            None => st.restrictions.timelocks.remove(phone),
        };
        let mut body = st.restrictions.timelock_json(phone);
        if body["time_enforcement_ends"] == "0" {
            // A notification names no end when there is none.
            body.as_object_mut()
                .map(|o| o.remove("time_enforcement_ends"));
        }
        (companions(&st, phone), body)
    };
    notify(
        shared,
        &devices,
        "NotificationUserReachoutTimelockUpdate",
        "xwa2_notify_account_reachout_timelock",
        body,
    );
}

/// Sets the cap of `phone` and tells its companions; `false` (and nothing set) when
/// `cap` is not a JSON object of at most 4 KiB.
pub(crate) fn set_cap(shared: &Shared, phone: &str, cap: Value) -> bool {
    if !cap.is_object() || cap.to_string().len() > MAX_CAP_JSON {
        return false;
    }
    let devices = {
        let mut st = shared.state.lock();
        st.restrictions.caps.insert(phone.to_owned(), cap.clone());
        companions(&st, phone)
    };
    notify(
        shared,
        &devices,
        "MessageCappingInfoNotification",
        "xwa2_notify_new_chat_messages_capping_info_update",
        cap,
    );
    true
}

fn companions(st: &crate::state::Inner, phone: &str) -> Vec<Jid> {
    route::user_devices(st, phone)
        .into_iter()
        .filter(|d| d.device != 0)
        .collect()
}

fn notify(shared: &Shared, devices: &[Jid], op: &'static str, key: &str, value: Value) {
    let node = crate::newsletter::mex_notification(op, key, value);
    for d in devices {
        route::deliver(shared, d, node.clone());
    }
}

/// Answers the restriction fetches among `<iq xmlns="w:mex">` from device `me`; `None`
/// for other query ids.
pub(crate) fn mex(shared: &Shared, me: &Jid, id: &str, node: &Node) -> Option<Node> {
    let query = node.child("query")?.attr_opt::<&str>("query_id").ok()??;
    let phone = me.user.as_str();
    let st = shared.state.lock();
    match query {
        TIMELOCK_QUERY => Some(crate::newsletter::mex_ok(
            id,
            TIMELOCK_PATH,
            st.restrictions.timelock_json(phone),
        )),
        CAP_QUERY => {
            let cap = st.restrictions.caps.get(phone).cloned().unwrap_or_else(|| {
                json!({ "capping_status": "NONE", "ote_status": "NOT_ELIGIBLE",
                        "mv_status": "NOT_ELIGIBLE" })
            });
            Some(crate::newsletter::mex_ok(id, CAP_PATH, cap))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SimState;

    #[test]
    fn restrictions_survive_a_restart_and_damaged_ones_are_refused() {
        let state = SimState::new();
        {
            let mut st = state.lock();
            st.restrictions.timelocks.insert(
                "15550001".into(),
                (Some(1_900_000_000), "BIZ_QUALITY".into()),
            );
            st.restrictions
                .caps
                .insert("15550001".into(), json!({ "total_quota": 5 }));
        }
        let v: Value = serde_json::from_str(&state.to_json()).unwrap();
        let back = SimState::from_json(&v.to_string()).unwrap();
        {
            let st = back.lock();
            assert_eq!(
                st.restrictions.timelock_json("15550001"),
                json!({ "is_active": true, "time_enforcement_ends": "1900000000",
                        "enforcement_type": "BIZ_QUALITY" })
            );
            assert_eq!(
                st.restrictions.timelock_json("15550002")["is_active"],
                false
            );
            assert_eq!(st.restrictions.caps["15550001"]["total_quota"], 5);
        }
        let mut bad = v.clone();
        bad["restrictions"]["timelocks"]["15550001"][1] = json!("X".repeat(65));
        assert!(matches!(
            SimState::from_json(&bad.to_string()),
            Err(crate::Error::BadState(_))
        ));
        let mut bad = v.clone();
        bad["restrictions"]["caps"]["15550001"] = json!("not an object");
        assert!(matches!(
            SimState::from_json(&bad.to_string()),
            Err(crate::Error::BadState(_))
        ));
        let mut old = v;
        old.as_object_mut().unwrap().remove("restrictions");
        let st = SimState::from_json(&old.to_string()).unwrap();
        assert!(st.lock().restrictions.timelocks.is_empty());
    }
}
