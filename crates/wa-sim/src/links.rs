//! Contact QR links, business message links, terms-of-service notices and push
//! settings (`xmlns` `w:qr`, `tos` and `urn:xmpp:whatsapp:push`, as whatsmeow's
//! `user.go`, `AcceptTOSNotice` and `push.go` send them), sans IO over the locked state.
//!
//! Each account has one contact QR code, made on the first request and kept until the
//! account revokes it (a revoke makes a new one at once). Business message links are
//! registered by tests ([`Sim::add_business_message_link`](crate::Sim::add_business_message_link)).
//! Both kinds resolve through the same `<iq xmlns="w:qr" type="get"><qr code/>`; an
//! unknown code is a 404. Everything here is in memory (kept across
//! [`Sim::restart`](crate::Sim::restart), not in the state file).

use std::collections::BTreeMap;

use base64::Engine as _;
use rand_core::{OsRng, RngCore};
use wa_binary::{Jid, Node};

use crate::chats::{error, result};
use crate::sim::Shared;
use crate::state::Inner;

/// Longest link code accepted, in bytes.
const MAX_CODE: usize = 64;
/// Most business message links kept.
const MAX_BUSINESS_LINKS: usize = 10_000;
/// Longest prefilled text or verified name of a business message link, in bytes.
const MAX_LINK_TEXT: usize = 4096;
/// Most terms-of-service notices kept per account (oldest dropped).
const MAX_TOS_PER_ACCOUNT: usize = 64;
/// Longest notice id or stage, in bytes.
const MAX_TOS_VALUE: usize = 64;
/// Most devices with a push configuration (the smallest device JID is dropped beyond).
const MAX_PUSH_DEVICES: usize = 65_536;
/// Most attributes of one push `<config>`.
const MAX_PUSH_ATTRS: usize = 32;
/// Longest attribute name and value of a push `<config>`, in bytes.
const MAX_PUSH_KEY: usize = 64;
const MAX_PUSH_VALUE: usize = 4096;
/// The characters of a generated contact code.
const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A business message link a test registered.
#[derive(Clone, Debug)]
struct BusinessLink {
    phone: String,
    text: String,
    verified_name: Option<String>,
}

/// The links part of the simulator's state.
#[derive(Default)]
pub(crate) struct LinkState {
    /// Each account's current contact code.
    contact_code: BTreeMap<String, String>,
    /// Whose contact code each code is.
    code_owner: BTreeMap<String, String>,
    /// Business message links by code.
    business: BTreeMap<String, BusinessLink>,
    /// Accepted terms-of-service notices (id, stage) per account, oldest first.
    tos: BTreeMap<String, Vec<(String, String)>>,
    /// Each device's push `<config>` attributes.
    push: BTreeMap<String, Vec<(String, String)>>,
}

fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CODE
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl LinkState {
    fn taken(&self, code: &str) -> bool {
        self.code_owner.contains_key(code) || self.business.contains_key(code)
    }

    /// A fresh code no link uses: 13 characters, as WhatsApp's look.
    fn fresh_code(&self) -> String {
        loop {
            let mut raw = [0u8; 12];
            OsRng.fill_bytes(&mut raw);
            let mut code: String = raw
                .iter()
                .map(|b| char::from(CODE_ALPHABET[usize::from(b & 31)]))
                .collect();
            code.push('1');
            if !self.taken(&code) {
                return code;
            }
        }
    }

    /// `phone`'s contact code, made now if it has none; with `revoke`, the current one
    /// is dropped first.
    fn contact_code(&mut self, phone: &str, revoke: bool) -> String {
        if revoke && let Some(old) = self.contact_code.remove(phone) {
            self.code_owner.remove(&old);
        }
        if let Some(code) = self.contact_code.get(phone) {
            return code.clone();
        }
        let code = self.fresh_code();
        self.contact_code.insert(phone.to_owned(), code.clone());
        self.code_owner.insert(code.clone(), phone.to_owned());
        code
    }

    fn accept_tos(&mut self, phone: &str, id: &str, stage: &str) {
        let list = self.tos.entry(phone.to_owned()).or_default();
        let entry = (id.to_owned(), stage.to_owned());
        if list.contains(&entry) {
            return;
        }
        if list.len() >= MAX_TOS_PER_ACCOUNT {
            list.remove(0);
        }
        list.push(entry);
    }

    fn set_push(&mut self, device: &Jid, attrs: Vec<(String, String)>) {
        let key = device.to_string();
        if !self.push.contains_key(&key) && self.push.len() >= MAX_PUSH_DEVICES {
            self.push.pop_first();
        }
        self.push.insert(key, attrs);
    }
}

/// Registers business message link `code` for the account `phone` (see
/// [`Sim::add_business_message_link`](crate::Sim::add_business_message_link)).
pub(crate) fn add_business_link(
    st: &mut Inner,
    phone: &str,
    code: &str,
    text: &str,
    verified_name: Option<&str>,
) -> Result<(), crate::Error> {
    if !st.accounts.contains_key(phone) {
        return Err(crate::Error::UnknownAccount(phone.to_owned()));
    }
    if !valid_code(code) {
        return Err(crate::Error::Rejected(
            "a link code is 1 to 64 ASCII letters, digits, '-' or '_'".into(),
        ));
    }
    if text.len() > MAX_LINK_TEXT || verified_name.is_some_and(|n| n.len() > MAX_LINK_TEXT) {
        return Err(crate::Error::Rejected("link text too long".into()));
    }
    let links = &mut st.links;
    if links.code_owner.contains_key(code) {
        return Err(crate::Error::Rejected(
            "the code is a contact QR code".into(),
        ));
    }
    if !links.business.contains_key(code) && links.business.len() >= MAX_BUSINESS_LINKS {
        return Err(crate::Error::Rejected("too many business links".into()));
    }
    links.business.insert(
        code.to_owned(),
        BusinessLink {
            phone: phone.to_owned(),
            text: text.to_owned(),
            verified_name: verified_name.map(str::to_owned),
        },
    );
    Ok(())
}

/// The account's current contact QR code, if it asked for one.
pub(crate) fn contact_code(st: &Inner, phone: &str) -> Option<String> {
    st.links.contact_code.get(phone).cloned()
}

/// The terms-of-service notices (id, stage) the account accepted, oldest first.
pub(crate) fn tos_notices(st: &Inner, phone: &str) -> Vec<(String, String)> {
    st.links.tos.get(phone).cloned().unwrap_or_default()
}

/// The push `<config>` attributes `device` registered.
pub(crate) fn push_config(st: &Inner, device: &Jid) -> Option<Vec<(String, String)>> {
    st.links.push.get(&device.to_string()).cloned()
}

fn str_attr<'a>(node: &'a Node, key: &str, max: usize) -> Option<&'a str> {
    node.attr_opt::<&str>(key)
        .ok()
        .flatten()
        .filter(|v| !v.is_empty() && v.len() <= max)
}

/// The account's answer to `<qr code>`: who the code names, or `None` when it names
/// nobody.
fn resolve(st: &Inner, code: &str) -> Option<Node> {
    let push_name = |phone: &str| st.accounts.get(phone).and_then(|a| a.push_name.clone());
    if let Some(phone) = st.links.code_owner.get(code) {
        st.accounts.get(phone)?;
        return Some(
            Node::builder("qr")
                .attr("jid", Jid::pn(phone.clone()))
                .attr_opt("notify", push_name(phone))
                .attr("type", "contact")
                .build(),
        );
    }
    let link = st.links.business.get(code)?;
    st.accounts.get(&link.phone)?;
    let message = (!link.text.is_empty()).then(|| {
        Node::builder("message")
            .bytes(link.text.as_bytes().to_vec())
            .build()
    });
    let business = Node::builder("business")
        .attr(
            "is_signed",
            if link.verified_name.is_some() {
                "true"
            } else {
                "false"
            },
        )
        .attr_opt("verified_name", link.verified_name.clone())
        .attr("verified_level", "unknown")
        .build();
    Some(
        Node::builder("qr")
            .attr("jid", Jid::pn(link.phone.clone()))
            .attr_opt("notify", push_name(&link.phone))
            .children(message.into_iter().chain([business]))
            .build(),
    )
}

/// The attributes of a push `<config>` if it is complete for its platform: `gcm` and
/// `apple` need `id`; `web` needs `endpoint` and base64 `auth` and `p256dh`.
fn push_attrs(config: &Node) -> Option<Vec<(String, String)>> {
    if config.attrs.len() > MAX_PUSH_ATTRS {
        return None;
    }
    let mut attrs = Vec::with_capacity(config.attrs.len());
    for (k, v) in config.attrs.iter() {
        let v = v.as_str()?;
        if k.len() > MAX_PUSH_KEY || v.len() > MAX_PUSH_VALUE {
            return None;
        }
        attrs.push((k.to_string(), v.to_owned()));
    }
    let has = |k: &str| str_attr(config, k, MAX_PUSH_VALUE).is_some();
    let b64 = |k: &str| {
        str_attr(config, k, MAX_PUSH_VALUE).is_some_and(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .is_ok_and(|b| !b.is_empty())
        })
    };
    let ok = match str_attr(config, "platform", MAX_PUSH_KEY)? {
        "gcm" | "apple" => has("id"),
        "web" => has("endpoint") && b64("auth") && b64("p256dh"),
        _ => false,
    };
    ok.then_some(attrs)
}

/// Answers the links, terms-of-service and push iqs of the logged-in device `me`;
/// `None` when `xmlns`/`ty` is not one of them.
pub(crate) fn iq(
    shared: &Shared,
    me: &Jid,
    id: &str,
    xmlns: &str,
    ty: &str,
    node: &Node,
) -> Option<Node> {
    let phone = me.user.as_str();
    let reply = match (xmlns, ty) {
        ("w:qr", "set") => {
            let qr = node.child("qr")?;
            let revoke = match (
                str_attr(qr, "type", MAX_CODE),
                str_attr(qr, "action", MAX_CODE),
            ) {
                (Some("contact"), Some("get")) => false,
                (Some("contact"), Some("revoke")) => true,
                _ => return Some(error(id, 400, "bad-request")),
            };
            let code = shared.state.lock().links.contact_code(phone, revoke);
            let qr = Node::builder("qr")
                .attr("type", "contact")
                .attr("code", code)
                .build();
            result(id, vec![qr])
        }
        ("w:qr", "get") => {
            let Some(code) = node
                .child("qr")
                .and_then(|q| str_attr(q, "code", MAX_CODE))
                .filter(|c| valid_code(c))
            else {
                return Some(error(id, 400, "bad-request"));
            };
            match resolve(&shared.state.lock(), code) {
                Some(qr) => result(id, vec![qr]),
                None => error(id, 404, "item-not-found"),
            }
        }
        ("tos", "set") => {
            let notice = node.child("notice");
            let (Some(nid), Some(stage)) = (
                notice.and_then(|n| str_attr(n, "id", MAX_TOS_VALUE)),
                notice.and_then(|n| str_attr(n, "stage", MAX_TOS_VALUE)),
            ) else {
                return Some(error(id, 400, "bad-request"));
            };
            shared.state.lock().links.accept_tos(phone, nid, stage);
            result(id, Vec::new())
        }
        ("urn:xmpp:whatsapp:push", "set") => {
            let Some(attrs) = node.child("config").and_then(push_attrs) else {
                return Some(error(id, 400, "bad-request"));
            };
            shared.state.lock().links.set_push(me, attrs);
            result(id, Vec::new())
        }
        ("urn:xmpp:whatsapp:push", "get") => {
            let stored = push_config(&shared.state.lock(), me);
            let configs = stored.map(|attrs| {
                attrs
                    .into_iter()
                    .fold(Node::builder("config"), |b, (k, v)| b.attr(k, v))
                    .build()
            });
            result(
                id,
                vec![Node::builder("settings").children(configs).build()],
            )
        }
        _ => return None,
    };
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoke_replaces_the_contact_code() {
        let mut links = LinkState::default();
        let first = links.contact_code("15550000001", false);
        assert_eq!(first.len(), 13);
        assert!(valid_code(&first));
        assert_eq!(links.contact_code("15550000001", false), first);
        let other = links.contact_code("15550000002", false);
        assert_ne!(other, first);
        let second = links.contact_code("15550000001", true);
        assert_ne!(second, first);
        assert!(!links.code_owner.contains_key(&first));
        assert_eq!(
            links.code_owner.get(&second).map(String::as_str),
            Some("15550000001")
        );
        assert_eq!(links.code_owner.len(), 2);
    }

    #[test]
    fn tos_notices_are_bounded_and_not_repeated() {
        let mut links = LinkState::default();
        links.accept_tos("1555", "1", "5");
        links.accept_tos("1555", "1", "5");
        assert_eq!(links.tos["1555"].len(), 1);
        for i in 0..MAX_TOS_PER_ACCOUNT + 5 {
            links.accept_tos("1555", &i.to_string(), "1");
        }
        assert_eq!(links.tos["1555"].len(), MAX_TOS_PER_ACCOUNT);
        assert_eq!(links.tos["1555"][0].0, "5");
    }

    #[test]
    fn push_configs_must_be_complete() {
        let config = |attrs: &[(&str, &str)]| {
            attrs
                .iter()
                .fold(Node::builder("config"), |b, (k, v)| {
                    b.attr((*k).to_owned(), (*v).to_owned())
                })
                .build()
        };
        assert!(push_attrs(&config(&[("platform", "gcm"), ("id", "t")])).is_some());
        assert!(push_attrs(&config(&[("platform", "gcm")])).is_none());
        assert!(push_attrs(&config(&[("platform", "pager"), ("id", "t")])).is_none());
        let web = [
            ("platform", "web"),
            ("endpoint", "https://e"),
            ("auth", "AAAA"),
            ("p256dh", "BP/+"),
        ];
        assert!(push_attrs(&config(&web)).is_some());
        let mut bad = web;
        bad[3] = ("p256dh", "not base64!");
        assert!(push_attrs(&config(&bad)).is_none());
    }
}
