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
    status: bool,
    disappearing: bool,
    username: bool,
    bot: bool,
    business: bool,
    picture: bool,
    /// `<contact addressing_mode="lid">`: name accounts by LID, with `pn_jid`.
    lid_addressing: bool,
}

/// The result of an `<iq xmlns="usync" type="get">` from the account `asker` (a phone
/// number), or `None` for a bad request (no `<usync>`, no `<list>`, or too many users).
pub(crate) fn answer(state: &Inner, asker: Option<&str>, id: &str, iq: &Node) -> Option<Node> {
    let usync = iq.child("usync")?;
    let mut asked = Asked::default();
    for q in usync.child("query").map(Node::children).unwrap_or_default() {
        match q.tag() {
            "devices" => asked.devices = true,
            "contact" => {
                asked.contact = true;
                asked.lid_addressing =
                    q.attr_opt::<&str>("addressing_mode").ok().flatten() == Some("lid");
            }
            "lid" => asked.lid = true,
            "status" => asked.status = true,
            "disappearing_mode" => asked.disappearing = true,
            "username" => asked.username = true,
            "bot" => asked.bot = true,
            "business" => asked.business = true,
            "picture" => asked.picture = true,
            _ => {}
        }
    }
    let list = usync.child("list")?;
    if list.children().len() > MAX_USYNC_USERS {
        return None;
    }
    let users: Vec<Node> = list
        .children_by_tag("user")
        .map(|u| answer_user(state, asker, &asked, u))
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

fn answer_user(state: &Inner, asker: Option<&str>, asked: &Asked, user: &Node) -> Node {
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
            let account = account_of(state, &j);
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
    if asked.bot
        && by_jid
            .as_ref()
            .is_some_and(|j| j.server == Server::Bot && j.user.as_str() == crate::chats::BOT_USER)
    {
        children.push(crate::chats::usync_bot_profile());
    }
    if let Some(a) = account {
        if asked.business
            && let Some(b) = crate::business::usync_verified_name(state, a)
        {
            children.push(b);
        }
        if asked.status {
            children.push(crate::chats::usync_status(state, &a.phone));
        }
        if asked.disappearing {
            children.push(crate::chats::usync_disappearing(state, &a.phone));
        }
        if asked.username {
            children.push(crate::chats::usync_username(state, &a.phone));
        }
        if asked.picture {
            children.push(crate::chats::usync_picture(state, &a.phone, asker));
        }
    }
    // With LID addressing an account is named by its LID, its number in `pn_jid`.
    let (jid, pn_jid) = match account {
        Some(a) if asked.lid_addressing => {
            (Jid::lid(a.lid_user.clone()), Some(Jid::pn(a.phone.clone())))
        }
        _ => (jid, None),
    };
    Node::builder("user")
        .attr("jid", jid)
        .attr_opt("pn_jid", pn_jid)
        .children(children)
        .build()
}

/// The account a usync `<user>` names by `jid` (phone number or LID): its phone.
fn named_account<'a>(state: &'a Inner, user: &Node) -> Option<&'a Account> {
    let j = user.attr_opt::<Jid>("jid").ok().flatten()?.to_non_ad();
    account_of(state, &j)
}

/// The account a user JID (phone number or LID, without device) names.
fn account_of<'a>(state: &'a Inner, j: &Jid) -> Option<&'a Account> {
    match j.server {
        Server::Pn => state.accounts.get(j.user.as_str()),
        Server::Lid => state
            .accounts
            .values()
            .find(|a| a.lid_user == j.user.as_str()),
        _ => None,
    }
}

/// Records, for each account a usync query from `asker` (a phone number) names by JID,
/// the `<tctoken>` its `<user>` carried (or that it carried none), for
/// [`Sim::usync_tctoken`](crate::Sim::usync_tctoken).
pub(crate) fn record_tokens(state: &mut Inner, asker: &str, iq: &Node) {
    let Some(list) = iq.child_by_path(&["usync", "list"]) else {
        return;
    };
    let seen: Vec<(String, Option<Vec<u8>>)> = list
        .children_by_tag("user")
        .take(MAX_USYNC_USERS)
        .filter_map(|u| {
            let account = named_account(state, u)?;
            let token = u.child("tctoken").and_then(Node::content_bytes);
            Some((account.phone.clone(), token.map(<[u8]>::to_vec)))
        })
        .collect();
    for (about, token) in seen {
        state
            .chats
            .tokens
            .record_usync_token(asker, &about, token.as_deref());
    }
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
        .attr("t", unix_now())
        .children([change])
        .build()
}

#[cfg(test)]
mod tests {
    use wa_crypto::KeyPair;

    use super::*;
    use crate::state::{Device, PreKeys, SimState};

    fn query(protocols: &[&'static str], users: Vec<Node>) -> Node {
        Node::builder("iq")
            .attr("type", "get")
            .attr("xmlns", "usync")
            .children([Node::builder("usync")
                .attr("sid", "S1")
                .attr("context", "message")
                .children([
                    Node::builder("query")
                        .children(protocols.iter().map(|p| Node::builder(*p).build()))
                        .build(),
                    Node::builder("list").children(users).build(),
                ])
                .build()])
            .build()
    }

    fn user_jid(j: Jid) -> Node {
        Node::builder("user").attr("jid", j).build()
    }

    #[test]
    fn answers_devices_contact_and_lid() {
        let state = SimState::new();
        let lid = {
            let mut st = state.lock();
            let info = st.add_account("15551234567", 1_700_000_000);
            let key = KeyPair::generate(&mut rand_core::OsRng).public;
            st.accounts.get_mut("15551234567").unwrap().devices.insert(
                2,
                Device {
                    noise: key,
                    identity: key,
                    key_index: 5,
                    platform: "1".into(),
                    prekeys: PreKeys::default(),
                },
            );
            info.lid
        };
        let st = state.lock();
        let q = query(
            &["devices", "contact", "lid"],
            vec![
                user_jid(Jid::with_device("15551234567", Server::Pn, 2)),
                user_jid(lid.clone()),
                Node::builder("user")
                    .children([Node::builder("contact").text("+15550000000").build()])
                    .build(),
                Node::builder("user").build(),
            ],
        );
        let r = answer(&st, None, "ID", &q).unwrap();
        assert_eq!(r.attr::<&str>("id").unwrap(), "ID");
        assert_eq!(r.attr::<&str>("type").unwrap(), "result");
        let usync = r.child("usync").unwrap();
        assert_eq!(usync.attr::<&str>("sid").unwrap(), "S1");
        let users = usync.child("list").unwrap().children();
        assert_eq!(users.len(), 4);

        // By PN (device part dropped): phone and companion 2 with its key index.
        assert_eq!(users[0].attr::<Jid>("jid").unwrap(), Jid::pn("15551234567"));
        let devs = users[0].child_by_path(&["devices", "device-list"]).unwrap();
        let ids: Vec<(String, Option<String>)> = devs
            .children()
            .iter()
            .map(|d| {
                (
                    d.attr::<String>("id").unwrap(),
                    d.attr_opt::<String>("key-index").unwrap(),
                )
            })
            .collect();
        assert_eq!(ids, [("0".into(), None), ("2".into(), Some("5".into()))]);
        assert_eq!(
            users[0]
                .child("contact")
                .unwrap()
                .attr::<&str>("type")
                .unwrap(),
            "in"
        );
        assert_eq!(
            users[0].child("lid").unwrap().attr::<Jid>("val").unwrap(),
            lid
        );

        // By LID: the same account.
        assert_eq!(users[1].attr::<Jid>("jid").unwrap(), lid);
        assert_eq!(
            users[1]
                .child_by_path(&["devices", "device-list"])
                .unwrap()
                .children()
                .len(),
            2
        );

        // An unknown number: out, a per-user devices error, no LID.
        assert_eq!(users[2].attr::<Jid>("jid").unwrap(), Jid::pn("15550000000"));
        let c = users[2].child("contact").unwrap();
        assert_eq!(c.attr::<&str>("type").unwrap(), "out");
        assert_eq!(c.content_bytes().unwrap(), b"+15550000000");
        assert_eq!(
            users[2]
                .child_by_path(&["devices", "error"])
                .unwrap()
                .attr::<&str>("code")
                .unwrap(),
            "404"
        );
        assert!(users[2].child("lid").unwrap().get_attr("val").is_none());

        // Neither jid nor contact: a bad request for that user only.
        assert_eq!(
            users[3]
                .child("error")
                .unwrap()
                .attr::<&str>("code")
                .unwrap(),
            "400"
        );
    }

    #[test]
    fn answers_business_status_and_picture() {
        use prost::Message;
        use wa_proto::vname_cert::VerifiedNameCertificate;
        use wa_proto::vname_cert::verified_name_certificate::Details;

        let state = SimState::new();
        {
            let mut st = state.lock();
            st.add_account("15551230001", 1_700_000_000);
            st.add_account("15551230002", 1_700_000_000);
            let p = st.chats.profiles.entry("15551230001".into()).or_default();
            p.status = Some(("open 9-5".into(), 1_700_000_100));
            p.picture = Some(("PIC1".into(), bytes::Bytes::from_static(b"jpeg")));
        }
        assert!(state.business_set_verified_name("15551230001", Some("Acme")));
        assert!(!state.business_set_verified_name("15559999999", Some("Nobody")));
        assert!(!state.business_set_verified_name("15551230001", Some("")));
        let st = state.lock();
        let q = query(
            &["business", "status", "picture"],
            vec![
                user_jid(Jid::pn("15551230001")),
                user_jid(Jid::pn("15551230002")),
            ],
        );
        let r = answer(&st, Some("15551230002"), "ID", &q).unwrap();
        let users = r.child_by_path(&["usync", "list"]).unwrap().children();

        let vn = users[0]
            .child_by_path(&["business", "verified_name"])
            .unwrap();
        assert_eq!(vn.attr::<&str>("serial").unwrap(), "15551230001");
        let cert = VerifiedNameCertificate::decode(vn.content_bytes().unwrap()).unwrap();
        assert_eq!(cert.signature.as_ref().map(Vec::len), Some(64));
        let d = Details::decode(cert.details.as_deref().unwrap()).unwrap();
        assert_eq!(d.verified_name.as_deref(), Some("Acme"));
        assert_eq!(d.issuer.as_deref(), Some("smb:wa"));
        assert_eq!(d.serial, Some(15_551_230_001));
        let status = users[0].child("status").unwrap();
        assert_eq!(status.content_bytes().unwrap(), b"open 9-5");
        assert_eq!(status.attr::<&str>("t").unwrap(), "1700000100");
        assert_eq!(
            users[0]
                .child("picture")
                .unwrap()
                .attr::<&str>("id")
                .unwrap(),
            "PIC1"
        );

        // An ordinary account: no business answer, no status text, no picture id.
        assert!(users[1].child("business").is_none());
        assert!(users[1].child("status").unwrap().content_bytes().is_none());
        assert!(users[1].child("picture").unwrap().get_attr("id").is_none());
        drop(st);

        // A blocked asker is refused the picture.
        state
            .lock()
            .chats
            .profiles
            .get_mut("15551230001")
            .unwrap()
            .blocked
            .insert("15551230002".into());
        let st = state.lock();
        let r = answer(&st, Some("15551230002"), "ID", &q).unwrap();
        let users = r.child_by_path(&["usync", "list"]).unwrap().children();
        assert!(users[0].child_by_path(&["picture", "error"]).is_some());
    }

    #[test]
    fn lid_addressing_username_disappearing_and_tokens() {
        let state = SimState::new();
        let lid = {
            let mut st = state.lock();
            let lid = st.add_account("15551230001", 1_700_000_000).lid;
            st.add_account("15551230002", 1_700_000_000);
            let p = st.chats.profiles.entry("15551230001".into()).or_default();
            p.username = Some("ada.l".into());
            p.set_disappearing(86_400, 1_700_000_500);
            lid
        };
        let contact = |phone: &str| {
            Node::builder("user")
                .children([Node::builder("contact").text(phone.to_owned()).build()])
                .build()
        };
        let q = |lid_mode: bool| {
            let mut c = Node::builder("contact");
            if lid_mode {
                c = c.attr("addressing_mode", "lid");
            }
            Node::builder("iq")
                .children([Node::builder("usync")
                    .children([
                        Node::builder("query")
                            .children([
                                c.build(),
                                Node::builder("username").build(),
                                Node::builder("disappearing_mode").build(),
                            ])
                            .build(),
                        Node::builder("list")
                            .children([contact("+15551230001"), contact("+15559999999")])
                            .build(),
                    ])
                    .build()])
                .build()
        };
        let st = state.lock();
        let r = answer(&st, None, "1", &q(true)).unwrap();
        let users = r.child_by_path(&["usync", "list"]).unwrap().children();
        assert_eq!(users[0].attr::<Jid>("jid").unwrap(), lid);
        assert_eq!(
            users[0].attr::<Jid>("pn_jid").unwrap(),
            Jid::pn("15551230001")
        );
        assert_eq!(
            users[0].child("username").unwrap().content_bytes(),
            Some(&b"ada.l"[..])
        );
        let d = users[0].child("disappearing_mode").unwrap();
        assert_eq!(d.attr::<&str>("duration").unwrap(), "86400");
        assert_eq!(d.attr::<&str>("t").unwrap(), "1700000500");
        // An unknown number keeps its phone-number jid.
        assert_eq!(users[1].attr::<Jid>("jid").unwrap(), Jid::pn("15559999999"));
        assert!(users[1].get_attr("pn_jid").is_none());
        // Without the mode: the phone number, no pn_jid.
        let r = answer(&st, None, "1", &q(false)).unwrap();
        let users = r.child_by_path(&["usync", "list"]).unwrap().children();
        assert_eq!(users[0].attr::<Jid>("jid").unwrap(), Jid::pn("15551230001"));
        assert!(users[0].get_attr("pn_jid").is_none());
        drop(st);

        // The tctoken each <user> carried is recorded per asker and account.
        let with_token = |j: Jid, t: Option<&[u8]>| {
            let b = Node::builder("user").attr("jid", j);
            match t {
                Some(t) => b
                    .children([Node::builder("tctoken").bytes(t.to_vec()).build()])
                    .build(),
                None => b.build(),
            }
        };
        let mut st = state.lock();
        let iq = query(
            &["status"],
            vec![
                with_token(lid.clone(), Some(&[1, 2, 3])),
                with_token(Jid::pn("15551230002"), None),
                with_token(Jid::pn("15559999999"), Some(&[4])),
            ],
        );
        record_tokens(&mut st, "15551230002", &iq);
        let tokens = &st.chats.tokens;
        assert_eq!(
            tokens.usync_token("15551230002", "15551230001"),
            Some(vec![1, 2, 3])
        );
        assert_eq!(tokens.usync_token("15551230002", "15551230002"), None);
        assert_eq!(tokens.usync_token("15551230002", "15559999999"), None);
        assert_eq!(tokens.usync_token("15551230001", "15551230001"), None);
        // A later query without one forgets it.
        let iq = query(&["status"], vec![with_token(Jid::pn("15551230001"), None)]);
        record_tokens(&mut st, "15551230002", &iq);
        assert_eq!(
            st.chats.tokens.usync_token("15551230002", "15551230001"),
            None
        );
    }

    #[test]
    fn bad_requests() {
        let state = SimState::new();
        let st = state.lock();
        let no_usync = Node::builder("iq").build();
        assert!(answer(&st, None, "1", &no_usync).is_none());
        let too_many = query(
            &["devices"],
            (0..=MAX_USYNC_USERS)
                .map(|i| user_jid(Jid::pn(format!("1555{i:07}"))))
                .collect(),
        );
        assert!(answer(&st, None, "1", &too_many).is_none());
    }

    #[test]
    fn devices_notification_shape() {
        let n = devices_notification("15551234567", true, 3, 7);
        assert_eq!(n.attr::<&str>("type").unwrap(), "devices");
        assert_eq!(n.attr::<Jid>("from").unwrap(), Jid::pn("15551234567"));
        let d = n.child_by_path(&["add", "device"]).unwrap();
        assert_eq!(
            d.attr::<Jid>("jid").unwrap(),
            Jid::with_device("15551234567", Server::Pn, 3)
        );
        assert_eq!(d.attr::<&str>("key-index").unwrap(), "7");
        let r = devices_notification("15551234567", false, 3, 7);
        assert!(r.child("remove").is_some() && r.child("add").is_none());
    }
}
