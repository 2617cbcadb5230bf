//! usync answers (PROTOCOL.md §6) and `<notification type="devices">` (sans-IO).

use wa_binary::{Jid, Node, Server};

use crate::sim::{fresh_id, unix_now};
use crate::state::{Account, Inner};

/// Most users answered in one query (more is a bad request).
pub(crate) const MAX_USYNC_USERS: usize = 1000;

/// The usync protocols the simulator answers.
#[derive(Default)]
struct Asked {
    devices: bool,
    contact: bool,
    lid: bool,
}

/// The result of an `<iq xmlns="usync" type="get">`, or `None` for a bad request
/// (no `<usync>`, no `<list>`, or too many users).
pub(crate) fn answer(state: &Inner, id: &str, iq: &Node) -> Option<Node> {
    let usync = iq.child("usync")?;
    let mut asked = Asked::default();
    for q in usync.child("query").map(Node::children).unwrap_or_default() {
        match q.tag() {
            "devices" => asked.devices = true,
            "contact" => asked.contact = true,
            "lid" => asked.lid = true,
            _ => {}
        }
    }
    let list = usync.child("list")?;
    if list.children().len() > MAX_USYNC_USERS {
        return None;
    }
    let users: Vec<Node> = list
        .children_by_tag("user")
        .map(|u| answer_user(state, &asked, u))
        .collect();
    let mut reply_usync = Node::builder("usync");
    for key in ["sid", "mode", "context", "index", "last"] {
        if let Some(v) = usync.get_attr(key) {
            reply_usync = reply_usync.attr(key, v.clone());
        }
    }
    Some(
        Node::builder("iq")
            .attr("from", Jid::server_jid())
            .attr("type", "result")
            .attr("id", id.to_owned())
            .children([reply_usync
                .children([Node::builder("list").children(users).build()])
                .build()])
            .build(),
    )
}

fn error(code: u16, text: &'static str) -> Node {
    Node::builder("error")
        .attr("code", code.to_string())
        .attr("text", text)
        .build()
}

fn answer_user(state: &Inner, asked: &Asked, user: &Node) -> Node {
    // Who is asked about: a JID (PN or LID), or a phone number in <contact>.
    let by_jid = user.attr_opt::<Jid>("jid").ok().flatten();
    let contact_text = user
        .child("contact")
        .and_then(Node::content_bytes)
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::to_owned);
    let (jid, account) = match (&by_jid, &contact_text) {
        (Some(j), _) => {
            let j = j.to_non_ad();
            let account = match j.server {
                Server::Pn => state.accounts.get(j.user.as_str()),
                Server::Lid => state
                    .accounts
                    .values()
                    .find(|a| a.lid_user == j.user.as_str()),
                _ => None,
            };
            (j, account)
        }
        (None, Some(text)) => {
            let digits: String = text.trim().trim_start_matches('+').to_owned();
            let valid = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            let account = valid.then(|| state.accounts.get(&digits)).flatten();
            (Jid::pn(digits), account)
        }
        (None, None) => {
            return Node::builder("user")
                .children([error(400, "bad-request")])
                .build();
        }
    };
    let mut children = Vec::new();
    if asked.devices {
        children.push(match account {
            Some(a) => devices_node(a),
            None => Node::builder("devices")
                .children([error(404, "item-not-found")])
                .build(),
        });
    }
    if asked.contact {
        let ty = if account.is_some() { "in" } else { "out" };
        let c = Node::builder("contact").attr("type", ty);
        children.push(match &contact_text {
            Some(t) => c.text(t.clone()).build(),
            None => c.build(),
        });
    }
    if asked.lid {
        children.push(
            Node::builder("lid")
                .attr_opt("val", account.map(|a| Jid::lid(a.lid_user.clone())))
                .build(),
        );
    }
    Node::builder("user")
        .attr("jid", jid)
        .children(children)
        .build()
}

/// `<devices><device-list>` (the phone, device 0, then each companion with its key
/// index) `<key-index-list ts>`.
fn devices_node(a: &Account) -> Node {
    let phone = Node::builder("device").attr("id", "0").build();
    let companions = a.devices.iter().map(|(id, d)| {
        Node::builder("device")
            .attr("id", id.to_string())
            .attr("key-index", d.key_index.to_string())
            .build()
    });
    Node::builder("devices")
        .children([
            Node::builder("device-list")
                .children(std::iter::once(phone).chain(companions))
                .build(),
            Node::builder("key-index-list")
                .attr("ts", a.created.to_string())
                .build(),
        ])
        .build()
}

/// `<notification from=phone type=devices><add|remove><device jid key-index/>
/// <key-index-list ts/></add|remove></notification>`.
pub(crate) fn devices_notification(phone: &str, added: bool, device: u16, key_index: u32) -> Node {
    let change = Node::builder(if added { "add" } else { "remove" })
        .children([
            Node::builder("device")
                .attr(
                    "jid",
                    Jid::with_device(phone.to_owned(), Server::Pn, device),
                )
                .attr("key-index", key_index.to_string())
                .build(),
            Node::builder("key-index-list")
                .attr("ts", unix_now().to_string())
                .build(),
        ])
        .build();
    Node::builder("notification")
        .attr("from", Jid::pn(phone.to_owned()))
        .attr("type", "devices")
        .attr("id", fresh_id())
        .attr("t", unix_now().to_string())
        .children([change])
        .build()
}
