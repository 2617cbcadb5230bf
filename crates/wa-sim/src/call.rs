//! Calls: signalling only (no media). A test places a call from one account's phone to
//! another account's devices; the server relays what the devices answer (reject,
//! accept, terminate) to the other side, records what phones receive, and issues call
//! links. Stanza shapes follow what Baileys' `handleCall` and whatsmeow's `call.go`
//! parse.

use std::collections::{BTreeMap, VecDeque};

use wa_binary::{Jid, Node, Server};

use crate::Error;
use crate::route::{self, user_devices};
use crate::sim::{Shared, Sim, fresh_id, unix_now};

/// Most calls remembered (oldest forgotten first).
const MAX_CALLS: usize = 1024;
/// Most call stanzas remembered per phone.
const MAX_PHONE_LOG: usize = 256;
/// Most call links remembered.
const MAX_LINKS: usize = 4096;

/// A call stanza a simulated phone received: what the other side of a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallNotice {
    /// The call.
    pub call_id: String,
    /// The call element: `reject`, `accept`, `terminate`, ...
    pub kind: String,
    /// Who sent it (the device, as it addressed itself).
    pub from: Jid,
}

#[derive(Debug)]
struct SimCall {
    caller: String,
    callee: String,
    ended: bool,
}

/// The simulator's call state (in memory only).
#[derive(Debug, Default)]
pub(crate) struct CallState {
    calls: BTreeMap<String, SimCall>,
    order: VecDeque<String>,
    phone_log: BTreeMap<String, VecDeque<CallNotice>>,
    links: BTreeMap<String, String>,
    link_order: VecDeque<String>,
}

impl CallState {
    fn remember(&mut self, id: String, call: SimCall) {
        if self.calls.insert(id.clone(), call).is_none() {
            self.order.push_back(id);
            if self.order.len() > MAX_CALLS
                && let Some(old) = self.order.pop_front()
            {
                self.calls.remove(&old);
            }
        }
    }

    fn log(&mut self, phone: &str, notice: CallNotice) {
        let log = self.phone_log.entry(phone.to_owned()).or_default();
        if log.len() >= MAX_PHONE_LOG {
            log.pop_front();
        }
        log.push_back(notice);
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, CallState> {
    shared
        .calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A `<call from id t>` around one call element.
fn call_stanza(from: Jid, element: Node) -> Node {
    Node::builder("call")
        .attr("from", from)
        .attr("id", fresh_id())
        .attr("t", unix_now())
        .children([element])
        .build()
}

fn element(tag: &'static str, call_id: &str, creator: &str) -> wa_binary::NodeBuilder {
    Node::builder(tag)
        .attr("call-id", call_id.to_owned())
        .attr("call-creator", Jid::pn(creator.to_owned()))
}

/// Sends `node` to every device of `phone` but `except`: companions through their
/// delivery queue, the phone into its call log.
fn to_account(shared: &Shared, phone: &str, node: &Node, except: Option<&Jid>) {
    let devices = user_devices(&shared.state.lock(), phone);
    for d in devices.iter().filter(|d| Some(*d) != except) {
        if d.device == 0 {
            let notice = node.children().first().map(|el| CallNotice {
                call_id: el
                    .attr_opt::<&str>("call-id")
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .to_owned(),
                kind: el.tag().to_owned(),
                from: node
                    .attr_opt::<Jid>("from")
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| Jid::pn(phone.to_owned())),
            });
            if let Some(n) = notice {
                lock(shared).log(phone, n);
            }
        } else {
            route::deliver(shared, d, node.clone());
        }
    }
}

fn call_ack(id: &str, to: Option<Jid>, kind: Option<&str>, error: Option<u16>) -> Node {
    Node::builder("ack")
        .attr("class", "call")
        .attr("id", id.to_owned())
        .attr_opt("from", to)
        .attr_opt("type", kind.map(str::to_owned))
        .attr_opt("error", error.map(|e| e.to_string()))
        .build()
}

/// Handles a `<call>` stanza from the logged-in device `me`; returns the server's answer
/// (an ack, or the reply to a call-link request).
pub(crate) fn stanza(shared: &Shared, me: &Jid, node: &Node) -> Option<Node> {
    let id = node
        .attr_opt::<String>("id")
        .ok()
        .flatten()
        .filter(|i| !i.is_empty() && i.len() <= 128)
        .unwrap_or_else(fresh_id);
    let to = node.attr_opt::<Jid>("to").ok().flatten();
    let Some(el) = node.children().first() else {
        return Some(call_ack(&id, to, None, Some(400)));
    };
    let me_user = me.user.as_str().to_owned();
    if to.as_ref().is_some_and(|t| t.server == Server::Call) {
        return Some(link_request(shared, &me_user, &id, el));
    }
    let call_id = el
        .attr_opt::<String>("call-id")
        .ok()
        .flatten()
        .filter(|c| !c.is_empty() && c.len() <= 128);
    let Some(call_id) = call_id else {
        return Some(call_ack(&id, to, Some(el.tag()), Some(400)));
    };
    let parties = {
        let mut st = lock(shared);
        st.calls.get_mut(&call_id).map(|c| {
            let parties = (c.caller.clone(), c.callee.clone(), c.ended);
            if matches!(el.tag(), "reject" | "terminate") {
                c.ended = true;
            }
            parties
        })
    };
    let Some((caller, callee, ended)) = parties else {
        return Some(call_ack(&id, to, Some(el.tag()), Some(404)));
    };
    let me_pn = Jid::pn(me_user.clone());
    match el.tag() {
        "reject" if me_user == callee && !ended => {
            // The caller hears the reject; every device of the callee stops ringing.
            let reject = call_stanza(me_pn, element("reject", &call_id, &caller).build());
            to_account(shared, &caller, &reject, None);
            let terminate = call_stanza(
                Jid::pn(caller.clone()),
                element("terminate", &call_id, &caller).build(),
            );
            to_account(shared, &callee, &terminate, None);
        }
        "accept" if me_user == callee && !ended => {
            let accept = call_stanza(me_pn, element("accept", &call_id, &caller).build());
            to_account(shared, &caller, &accept, None);
            // The other devices of the callee stop ringing.
            let terminate = call_stanza(
                Jid::pn(caller.clone()),
                element("terminate", &call_id, &caller)
                    .attr("reason", "accepted_elsewhere")
                    .build(),
            );
            to_account(shared, &callee, &terminate, Some(me));
        }
        "terminate" if !ended => {
            let other = if me_user == caller { &callee } else { &caller };
            let terminate = call_stanza(me_pn, element("terminate", &call_id, &caller).build());
            to_account(shared, other, &terminate, None);
        }
        _ => {}
    }
    Some(call_ack(&id, to, Some(el.tag()), None))
}

/// `<link_create media>` to `@call`: a fresh token for `me`.
fn link_request(shared: &Shared, me: &str, id: &str, el: &Node) -> Node {
    let reply = |child: Node| {
        Node::builder("call")
            .attr("from", Jid::new("", Server::Call))
            .attr("id", id.to_owned())
            .children([child])
            .build()
    };
    match el.tag() {
        "link_create" => {
            let media = el
                .attr_opt::<&str>("media")
                .ok()
                .flatten()
                .filter(|m| matches!(*m, "audio" | "video"));
            let Some(media) = media else {
                return reply(
                    Node::builder("error")
                        .attr("code", "400")
                        .attr("text", "bad-request")
                        .build(),
                );
            };
            let token = format!("{}{}", fresh_id(), fresh_id());
            let mut st = lock(shared);
            st.links.insert(token.clone(), me.to_owned());
            st.link_order.push_back(token.clone());
            if st.link_order.len() > MAX_LINKS
                && let Some(old) = st.link_order.pop_front()
            {
                st.links.remove(&old);
            }
            reply(
                Node::builder("link_create")
                    .attr("token", token)
                    .attr("media", media.to_owned())
                    .build(),
            )
        }
        _ => reply(
            Node::builder("error")
                .attr("code", "501")
                .attr("text", "feature-not-implemented")
                .build(),
        ),
    }
}

impl Sim {
    /// The phone of account `caller` calls account `callee`: an `<offer>` goes to every
    /// linked device of `callee`. Returns the call id. What the devices answer is
    /// relayed: a reject reaches the caller (see [`Sim::phone_calls`]) and ends the call
    /// on every device of the callee with a `<terminate>`.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`] when either account does not exist.
    pub fn place_call(&self, caller: &str, callee: &str, video: bool) -> Result<String, Error> {
        {
            let st = self.shared.state.lock();
            for p in [caller, callee] {
                if !st.accounts.contains_key(p) {
                    return Err(Error::UnknownAccount(p.to_owned()));
                }
            }
        }
        let call_id = format!("{}{}", fresh_id(), fresh_id());
        let mut media = vec![
            Node::builder("audio")
                .attr("enc", "opus")
                .attr("rate", "16000")
                .build(),
            Node::builder("audio")
                .attr("enc", "opus")
                .attr("rate", "8000")
                .build(),
        ];
        if video {
            media.push(
                Node::builder("video")
                    .attr("enc", "vp8")
                    .attr("dec", "vp8")
                    .build(),
            );
        }
        media.push(Node::builder("net").attr("medium", "3").build());
        let offer = call_stanza(
            Jid::pn(caller.to_owned()),
            element("offer", &call_id, caller)
                .attr("caller_pn", Jid::pn(caller.to_owned()))
                .children(media)
                .build(),
        );
        lock(&self.shared).remember(
            call_id.clone(),
            SimCall {
                caller: caller.to_owned(),
                callee: callee.to_owned(),
                ended: false,
            },
        );
        let devices = user_devices(&self.shared.state.lock(), callee);
        for d in devices.iter().filter(|d| d.device != 0) {
            route::deliver(&self.shared, d, offer.clone());
        }
        Ok(call_id)
    }

    /// The caller gives up on `call_id` (hangs up, or with `reason` `"timeout"` nobody
    /// answered: a missed call): every device of the callee gets a `<terminate>`.
    /// Returns `false` for an unknown or already ended call.
    pub fn end_call(&self, call_id: &str, reason: Option<&str>) -> bool {
        let parties = {
            let mut st = lock(&self.shared);
            match st.calls.get_mut(call_id) {
                Some(c) if !c.ended => {
                    c.ended = true;
                    Some((c.caller.clone(), c.callee.clone()))
                }
                _ => None,
            }
        };
        let Some((caller, callee)) = parties else {
            return false;
        };
        let terminate = call_stanza(
            Jid::pn(caller.clone()),
            element("terminate", call_id, &caller)
                .attr_opt("reason", reason.map(str::to_owned))
                .build(),
        );
        to_account(&self.shared, &callee, &terminate, None);
        true
    }

    /// The call stanzas `phone`'s simulated phone received (rejects, accepts and
    /// terminates of calls it placed), oldest first.
    pub fn phone_calls(&self, phone: &str) -> Vec<CallNotice> {
        lock(&self.shared)
            .phone_log
            .get(phone)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The account that created call link `token`, when the simulator issued it.
    pub fn call_link_owner(&self, token: &str) -> Option<Jid> {
        lock(&self.shared).links.get(token).cloned().map(Jid::pn)
    }
}
