//! Pure parsing of `<call>` stanzas.

use wa_binary::{Jid, Node, Server};
use wa_types::{CallEvent, CallStatus};

use crate::Error;

/// Longest call id accepted (real ids are 32 hex digits).
pub const MAX_CALL_ID: usize = 128;
/// Longest call-link token accepted.
pub const MAX_LINK_TOKEN: usize = 256;

fn opt_jid(node: &Node, key: &str) -> Option<Jid> {
    node.attr_opt::<Jid>(key).ok().flatten()
}

fn opt_str<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.attr_opt::<&str>(key).ok().flatten()
}

/// The status a call element reports (Baileys' `getCallStatusFromNode`).
pub fn call_status(info: &Node) -> CallStatus {
    match info.tag() {
        "offer" | "offer_notice" => CallStatus::Offer,
        "terminate" if opt_str(info, "reason") == Some("timeout") => CallStatus::Timeout,
        "terminate" => CallStatus::Terminate,
        "preaccept" => CallStatus::PreAccept,
        "accept" => CallStatus::Accept,
        "reject" => CallStatus::Reject,
        "transport" => CallStatus::Transport,
        "relaylatency" => CallStatus::RelayLatency,
        other => CallStatus::Other(other.to_owned()),
    }
}

/// Parses a `<call from t [offline]>` stanza with one call element (`<offer>`,
/// `<offer_notice>`, `<accept>`, `<reject>`, `<terminate>`, `<relaylatency>`, ...) into a
/// [`CallEvent`]. Video and group flags come from the offer; later stanzas of a call
/// carry them only when the caller remembered the offer (see [`crate::Calls`]).
///
/// # Errors
/// [`Error::Malformed`] when the stanza is not a `<call>`, has no `from` or no call
/// element, or the element has no usable `call-id`.
pub fn parse_call(node: &Node) -> Result<CallEvent, Error> {
    if node.tag() != "call" {
        return Err(Error::Malformed("not a <call>"));
    }
    let chat = node
        .attr::<Jid>("from")
        .map_err(|_| Error::Malformed("call without from"))?;
    let info = node
        .children()
        .first()
        .ok_or_else(|| Error::Malformed("call without a call element"))?;
    let id = opt_str(info, "call-id")
        .filter(|id| !id.is_empty() && id.len() <= MAX_CALL_ID)
        .ok_or_else(|| Error::Malformed("call element without a usable call-id"))?;
    let from = opt_jid(info, "from")
        .or_else(|| opt_jid(info, "call-creator"))
        .unwrap_or_else(|| chat.clone());
    let status = call_status(info);
    let mut ev = CallEvent::new(id.to_owned(), from, chat, status);
    ev.timestamp = node.attr_opt::<u64>("t").ok().flatten().unwrap_or(0);
    ev.offline = node.get_attr("offline").is_some();
    ev.caller_pn = opt_jid(info, "caller_pn");
    ev.group_jid = opt_jid(info, "group-jid").filter(|g| g.server == Server::Group);
    ev.is_group = opt_str(info, "type") == Some("group") || ev.group_jid.is_some();
    if ev.status == CallStatus::Offer {
        ev.is_video = info.child("video").is_some() || opt_str(info, "media") == Some("video");
    }
    if matches!(ev.status, CallStatus::Terminate | CallStatus::Timeout) {
        ev.reason = opt_str(info, "reason").map(str::to_owned);
    }
    if ev.status == CallStatus::RelayLatency {
        ev.latency_ms = ["latency", "latency_ms", "latency-ms"]
            .iter()
            .find_map(|k| info.attr_opt::<u32>(k).ok().flatten());
    }
    Ok(ev)
}

/// Parses the answer to a `<link_create>` request: the new link's token (the link is
/// `https://call.whatsapp.com/<media>/<token>`).
///
/// # Errors
/// [`Error::Refused`] for an `<error code text>` answer; [`Error::Malformed`] when there
/// is no `<link_create token>`, or the token is empty or too long.
pub fn parse_link_create_reply(reply: &Node) -> Result<String, Error> {
    if let Some(err) = reply.child("error") {
        return Err(Error::Refused {
            code: err.attr_opt::<u16>("code").ok().flatten().unwrap_or(0),
            text: opt_str(err, "text").unwrap_or_default().to_owned(),
        });
    }
    reply
        .child("link_create")
        .and_then(|l| opt_str(l, "token"))
        .filter(|t| !t.is_empty() && t.len() <= MAX_LINK_TOKEN)
        .map(str::to_owned)
        .ok_or_else(|| Error::Malformed("link reply without a usable token"))
}
