//! Account restrictions over `w:mex`: the reach-out timelock (no new chats while it
//! holds) and the cap on messages to new chats. Both can be fetched, and the server
//! pushes changes as `<notification type="mex"><update op_name=..>` with a JSON body;
//! the socket acknowledges those and reports them as events.

use serde_json::Value;
use wa_binary::Node;
use wa_types::{Event, NewChatMessageCap, ReachoutTimelock};

use crate::mex::{self, MexOperation, number};
use crate::{Error, Socket};

/// Fetch the reach-out timelock.
pub const REACHOUT_TIMELOCK: MexOperation = MexOperation {
    query_id: "23983697327930364",
    path: "xwa2_fetch_account_reachout_timelock",
};
/// Fetch the new-chat message cap.
pub const MESSAGE_CAPPING_INFO: MexOperation = MexOperation {
    query_id: "24503548349331633",
    path: "xwa2_message_capping_info",
};
/// The notification operation of a timelock change, and the key of its data.
pub const TIMELOCK_NOTIFICATION: (&str, &str) = (
    "NotificationUserReachoutTimelockUpdate",
    "xwa2_notify_account_reachout_timelock",
);
/// The notification operation of a cap change, and the key of its data.
pub const CAP_NOTIFICATION: (&str, &str) = (
    "MessageCappingInfoNotification",
    "xwa2_notify_new_chat_messages_capping_info_update",
);

/// How long an active timelock notified without an end lasts (WhatsApp Web's default).
const DEFAULT_TIMELOCK_SECS: u64 = 60;
/// Longest status or enforcement name kept.
const MAX_NAME: usize = 64;

/// The enforcement types WhatsApp names; a notification naming another is taken as
/// `DEFAULT`.
const ENFORCEMENT_TYPES: &[&str] = &[
    "DEFAULT",
    "BIZ_QUALITY",
    "WEB_COMPANION_ONLY",
    "BIZ_COMMERCE_VIOLATION_ALCOHOL",
    "BIZ_COMMERCE_VIOLATION_ADULT",
    "BIZ_COMMERCE_VIOLATION_ANIMALS",
    "BIZ_COMMERCE_VIOLATION_BODY_PARTS_FLUIDS",
    "BIZ_COMMERCE_VIOLATION_DATING",
    "BIZ_COMMERCE_VIOLATION_DIGITAL_SERVICES_PRODUCTS",
    "BIZ_COMMERCE_VIOLATION_DRUGS",
    "BIZ_COMMERCE_VIOLATION_DRUGS_ONLY_OTC",
    "BIZ_COMMERCE_VIOLATION_GAMBLING",
    "BIZ_COMMERCE_VIOLATION_HEALTHCARE",
    "BIZ_COMMERCE_VIOLATION_REAL_FAKE_CURRENCY",
    "BIZ_COMMERCE_VIOLATION_SUPPLEMENTS",
    "BIZ_COMMERCE_VIOLATION_TOBACCO",
    "BIZ_COMMERCE_VIOLATION_VIOLENT_CONTENT",
    "BIZ_COMMERCE_VIOLATION_WEAPONS",
];

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_u64().is_some_and(|n| n != 0),
        _ => false,
    }
}

fn name(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_NAME)
        .map(str::to_owned)
}

/// A positive time in Unix seconds (`"0"` and `0` mean none).
fn time(v: Option<&Value>) -> Option<u64> {
    v.and_then(number).filter(|&t| t > 0)
}

/// The timelock a fetch answered (`data.xwa2_fetch_account_reachout_timelock`).
pub fn parse_timelock(v: &Value) -> ReachoutTimelock {
    ReachoutTimelock {
        active: truthy(v.get("is_active")),
        ends_at: time(v.get("time_enforcement_ends")),
        enforcement: name(v.get("enforcement_type"))
            .unwrap_or_else(|| ReachoutTimelock::DEFAULT_ENFORCEMENT.to_owned()),
    }
}

/// The timelock a notification (`data.xwa2_notify_account_reachout_timelock`) sets,
/// received at `now` (Unix seconds): an active one without an end lasts a minute; an
/// unknown enforcement type is taken as `DEFAULT`.
pub fn parse_timelock_notification(v: &Value, now: u64) -> ReachoutTimelock {
    if !truthy(v.get("is_active")) {
        return ReachoutTimelock::lifted();
    }
    let enforcement = name(v.get("enforcement_type"))
        .filter(|e| ENFORCEMENT_TYPES.contains(&e.as_str()))
        .unwrap_or_else(|| ReachoutTimelock::DEFAULT_ENFORCEMENT.to_owned());
    ReachoutTimelock {
        active: true,
        ends_at: Some(
            time(v.get("time_enforcement_ends"))
                .unwrap_or(now.saturating_add(DEFAULT_TIMELOCK_SECS)),
        ),
        enforcement,
    }
}

/// The cap a fetch answered or a notification reported.
pub fn parse_cap(v: &Value) -> NewChatMessageCap {
    NewChatMessageCap {
        total_quota: v.get("total_quota").and_then(number),
        used_quota: v.get("used_quota").and_then(number),
        cycle_start: time(v.get("cycle_start_timestamp")),
        cycle_end: time(v.get("cycle_end_timestamp")),
        server_sent: time(v.get("server_sent_timestamp")),
        capping_status: name(v.get("capping_status")),
        ote_status: name(v.get("ote_status")),
        mv_status: name(v.get("mv_status")),
    }
}

/// The operation name of a `<notification type="mex">` when it is about account
/// restrictions (which the socket handles itself).
pub(crate) fn is_account_notification(node: &Node) -> bool {
    node.child("update")
        .and_then(|u| u.attr_opt::<&str>("op_name").ok().flatten())
        .is_some_and(|op| op == TIMELOCK_NOTIFICATION.0 || op == CAP_NOTIFICATION.0)
}

/// The event a `<notification type="mex">` about account restrictions reports, received
/// at `now`; `None` when it is not one, carries GraphQL errors or lacks its data.
pub fn parse_notification(node: &Node, now: u64) -> Option<Event> {
    let update = node.child("update")?;
    let op = update.attr_opt::<&str>("op_name").ok().flatten()?;
    let v: Value = serde_json::from_slice(update.content_bytes()?).ok()?;
    if v.get("errors")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty())
    {
        return None;
    }
    let data = v.get("data")?;
    if op == TIMELOCK_NOTIFICATION.0 {
        let payload = data
            .get(TIMELOCK_NOTIFICATION.1)
            .filter(|p| p.is_object())?;
        Some(Event::ReachoutTimelock(parse_timelock_notification(
            payload, now,
        )))
    } else if op == CAP_NOTIFICATION.0 {
        let payload = data.get(CAP_NOTIFICATION.1).filter(|p| p.is_object())?;
        Some(Event::NewChatMessageCap(parse_cap(payload)))
    } else {
        None
    }
}

impl Socket {
    async fn mex(&self, op: MexOperation, variables: Value) -> Result<Value, Error> {
        let node = mex::build_query(&self.generate_id(), op, variables);
        let reply = self.query(node).await?;
        mex::parse_result(&reply, op)
    }

    /// The account's reach-out timelock as the server has it now; also reported as
    /// [`Event::ReachoutTimelock`].
    ///
    /// # Errors
    /// Socket errors; [`Error::GraphQl`] when the server refuses;
    /// [`Error::UnexpectedResponse`] for an answer without the timelock.
    pub async fn reachout_timelock(&self) -> Result<ReachoutTimelock, Error> {
        let v = self
            .mex(REACHOUT_TIMELOCK, Value::Object(serde_json::Map::new()))
            .await?;
        if !v.is_object() {
            return Err(Error::UnexpectedResponse(
                "timelock answer is not an object",
            ));
        }
        let lock = parse_timelock(&v);
        self.emit(Event::ReachoutTimelock(lock.clone()));
        Ok(lock)
    }

    /// The account's cap on messages to new chats, and how much of it is used.
    ///
    /// # Errors
    /// Socket errors; [`Error::GraphQl`] when the server refuses;
    /// [`Error::UnexpectedResponse`] for an answer without the cap.
    pub async fn new_chat_message_cap(&self) -> Result<NewChatMessageCap, Error> {
        let v = self
            .mex(
                MESSAGE_CAPPING_INFO,
                serde_json::json!({ "input": { "type": "INDIVIDUAL_NEW_CHAT_MSG" } }),
            )
            .await?;
        if !v.is_object() {
            return Err(Error::UnexpectedResponse("cap answer is not an object"));
        }
        Ok(parse_cap(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notification(op: &str, body: &str) -> Node {
        Node::builder("notification")
            .attr("type", "mex")
            .attr("id", "1")
            .children([Node::builder("update")
                .attr("op_name", op.to_owned())
                .bytes(body.as_bytes().to_vec())
                .build()])
            .build()
    }

    #[test]
    fn an_active_timelock_without_an_end_lasts_a_minute_and_unknown_reasons_are_default() {
        let body = json!({ "data": { TIMELOCK_NOTIFICATION.1: {
            "is_active": true, "enforcement_type": "SOMETHING_NEW" } } });
        let n = notification(TIMELOCK_NOTIFICATION.0, &body.to_string());
        assert!(is_account_notification(&n));
        let Some(Event::ReachoutTimelock(t)) = parse_notification(&n, 1_000) else {
            panic!("no timelock event");
        };
        assert!(t.active);
        assert_eq!(t.ends_at, Some(1_060));
        assert_eq!(t.enforcement, "DEFAULT");
    }

    #[test]
    fn a_timelock_with_an_end_and_a_known_reason_keeps_both() {
        let body = json!({ "data": { TIMELOCK_NOTIFICATION.1: {
            "is_active": true, "time_enforcement_ends": "1900000000",
            "enforcement_type": "BIZ_QUALITY" } } });
        let n = notification(TIMELOCK_NOTIFICATION.0, &body.to_string());
        let Some(Event::ReachoutTimelock(t)) = parse_notification(&n, 1_000) else {
            panic!("no timelock event");
        };
        assert_eq!(t.ends_at, Some(1_900_000_000));
        assert_eq!(t.enforcement, "BIZ_QUALITY");
        let lifted = json!({ "data": { TIMELOCK_NOTIFICATION.1: { "is_active": false,
            "time_enforcement_ends": "1900000000" } } });
        let n = notification(TIMELOCK_NOTIFICATION.0, &lifted.to_string());
        assert_eq!(
            parse_notification(&n, 1_000),
            Some(Event::ReachoutTimelock(ReachoutTimelock::lifted()))
        );
    }

    #[test]
    fn a_fetched_timelock_reads_zero_as_no_end() {
        let t = parse_timelock(&json!({ "is_active": "true", "time_enforcement_ends": "0",
            "enforcement_type": "WEB_COMPANION_ONLY" }));
        assert!(t.active);
        assert_eq!(t.ends_at, None);
        assert_eq!(t.enforcement, "WEB_COMPANION_ONLY");
        assert_eq!(parse_timelock(&json!({})), ReachoutTimelock::lifted());
    }

    #[test]
    fn a_cap_notification_reports_every_field() {
        let body = json!({ "data": { CAP_NOTIFICATION.1: {
            "total_quota": 50, "used_quota": "12", "cycle_start_timestamp": "1700000000",
            "cycle_end_timestamp": 1700604800u64, "server_sent_timestamp": "1700000100",
            "capping_status": "FIRST_WARNING", "ote_status": "ELIGIBLE",
            "mv_status": "NOT_ACTIVE" } } });
        let n = notification(CAP_NOTIFICATION.0, &body.to_string());
        let Some(Event::NewChatMessageCap(c)) = parse_notification(&n, 0) else {
            panic!("no cap event");
        };
        assert_eq!(
            c,
            NewChatMessageCap {
                total_quota: Some(50),
                used_quota: Some(12),
                cycle_start: Some(1_700_000_000),
                cycle_end: Some(1_700_604_800),
                server_sent: Some(1_700_000_100),
                capping_status: Some("FIRST_WARNING".into()),
                ote_status: Some("ELIGIBLE".into()),
                mv_status: Some("NOT_ACTIVE".into()),
            }
        );
    }

    #[test]
    fn hostile_or_foreign_notifications_give_nothing() {
        let long = "X".repeat(MAX_NAME + 1);
        for (op, body) in [
            ("NotificationNewsletterJoin", r#"{"data":{}}"#.to_owned()),
            (TIMELOCK_NOTIFICATION.0, "not json".to_owned()),
            (TIMELOCK_NOTIFICATION.0, r#"{"data":null}"#.to_owned()),
            (
                TIMELOCK_NOTIFICATION.0,
                format!(r#"{{"data":{{"{}":7}}}}"#, TIMELOCK_NOTIFICATION.1),
            ),
            (
                CAP_NOTIFICATION.0,
                r#"{"errors":[{"message":"x"}],"data":{}}"#.to_owned(),
            ),
            (CAP_NOTIFICATION.0, r#"{"data":{"other":{}}}"#.to_owned()),
        ] {
            assert_eq!(
                parse_notification(&notification(op, &body), 0),
                None,
                "{op} {body}"
            );
        }
        assert!(!is_account_notification(&notification(
            "NotificationNewsletterJoin",
            "{}"
        )));
        let c = parse_cap(&json!({ "total_quota": -3, "capping_status": long,
            "used_quota": [1], "cycle_end_timestamp": "soon" }));
        assert_eq!(c, NewChatMessageCap::default());
    }
}
