//! Presence, privacy, status, picture and blocklist iqs sent raw, malformed ones
//! included: a typed error reply each time, and the connection keeps serving.

mod common;

use common::*;
use wa_binary::{Jid, Node};
use wa_sim::{Sim, SimConfig};

const PHONE: &str = "15557654321";
const OTHER: &str = "15557654322";

fn code(r: &Node) -> Option<String> {
    r.child("error").and_then(|e| attr(e, "code"))
}

/// A sim with accounts `PHONE` and `OTHER`, and a companion of `PHONE` logged in.
async fn logged_in() -> (Sim, Client) {
    let sim = Sim::start(SimConfig::default()).await.expect("start");
    sim.add_account(PHONE).await;
    sim.add_account(OTHER).await;
    let creds = Creds::new();
    let device = register(&sim, PHONE, &creds).await;
    let (c, _) = login(&sim, &creds, &device).await;
    (sim, c)
}

#[tokio::test]
async fn malformed_chats_iqs_get_error_replies() {
    let (sim, mut c) = logged_in().await;

    let cases: Vec<(&str, &str, &str, Vec<Node>)> = vec![
        ("p1", "set", "privacy", vec![]),
        (
            "p2",
            "set",
            "privacy",
            vec![
                Node::builder("privacy")
                    .children([Node::builder("category")
                        .attr("name", "online")
                        .attr("value", "contacts")
                        .build()])
                    .build(),
            ],
        ),
        (
            "p3",
            "set",
            "privacy",
            vec![
                Node::builder("privacy")
                    .children([Node::builder("category")
                        .attr("name", "nonsense")
                        .attr("value", "all")
                        .build()])
                    .build(),
            ],
        ),
        (
            "d1",
            "set",
            "disappearing_mode",
            vec![
                Node::builder("disappearing_mode")
                    .attr("duration", "-1")
                    .build(),
            ],
        ),
        (
            "s1",
            "set",
            "status",
            vec![Node::builder("status").bytes(vec![0xFF, 0xFE]).build()],
        ),
        (
            "s2",
            "set",
            "status",
            vec![Node::builder("status").bytes(vec![b'a'; 5000]).build()],
        ),
        (
            "i1",
            "set",
            "w:profile:picture",
            vec![Node::builder("picture").attr("type", "image").build()],
        ),
        (
            "i2",
            "get",
            "w:profile:picture",
            vec![Node::builder("picture").attr("type", "huge").build()],
        ),
        ("b1", "set", "blocklist", vec![]),
        (
            "b2",
            "set",
            "blocklist",
            vec![
                Node::builder("item")
                    .attr("action", "maybe")
                    .attr("jid", Jid::pn(OTHER))
                    .build(),
            ],
        ),
    ];
    for (id, ty, xmlns, children) in cases {
        let r = c.query(iq(id, ty, xmlns, children)).await;
        assert_eq!(attr(&r, "type").as_deref(), Some("error"), "{id}");
        assert_eq!(code(&r).as_deref(), Some("400"), "{id}");
    }
    // Items name a LID, and a block the same account's phone number too: else 400.
    let other_lid = sim.account(OTHER).unwrap().lid;
    let block_item = |jid: Jid, pn: Option<Jid>| {
        Node::builder("item")
            .attr("action", "block")
            .attr("jid", jid)
            .attr_opt("pn_jid", pn)
            .build()
    };
    for (id, item) in [
        ("b5", block_item(Jid::pn(OTHER), None)),
        ("b6", block_item(other_lid.clone(), None)),
        ("b7", block_item(other_lid.clone(), Some(Jid::pn(PHONE)))),
    ] {
        let r = c.query(iq(id, "set", "blocklist", vec![item])).await;
        assert_eq!(code(&r).as_deref(), Some("400"), "{id}");
    }
    // Unknown users: 404.
    let r = c
        .query(iq(
            "b3",
            "set",
            "blocklist",
            vec![block_item(
                Jid::new("999999999", wa_binary::Server::Lid),
                Some(Jid::pn("19999999999")),
            )],
        ))
        .await;
    assert_eq!(code(&r).as_deref(), Some("404"));
    // Someone else's picture cannot be set.
    let r = c
        .query(
            Node::builder("iq")
                .attr("id", "i3")
                .attr("type", "set")
                .attr("xmlns", "w:profile:picture")
                .attr("target", Jid::pn(OTHER))
                .children([Node::builder("picture")
                    .attr("type", "image")
                    .bytes(vec![0xFF, 0xD8])
                    .build()])
                .build(),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("401"));
    assert_eq!(sim.profile_picture(OTHER), None);

    // Stanzas needing no answer, malformed: ignored, and the connection still serves.
    for n in [
        Node::builder("presence").attr("type", "subscribe").build(),
        Node::builder("presence")
            .attr("type", "subscribe")
            .attr("to", "not-a-jid")
            .build(),
        Node::builder("chatstate")
            .attr("to", Jid::pn(OTHER))
            .build(),
        Node::builder("chatstate")
            .attr("to", Jid::pn(OTHER))
            .children([Node::new("dancing")])
            .build(),
        Node::builder("chatstate")
            .attr("to", Jid::group("000-000"))
            .children([Node::new("paused")])
            .build(),
    ] {
        c.send(&n).await;
    }
    let r = c
        .query(iq(
            "b4",
            "set",
            "blocklist",
            vec![
                Node::builder("item")
                    .attr("action", "block")
                    .attr("jid", sim.account(OTHER).unwrap().lid)
                    .attr("pn_jid", Jid::pn(OTHER))
                    .build(),
            ],
        ))
        .await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"));
    assert_eq!(sim.blocklist(PHONE), [Jid::pn(OTHER)]);
}

/// The `(type, default, users)` of each `<list>` of a status-privacy reply.
fn status_lists(r: &Node) -> Vec<(String, bool, Vec<String>)> {
    r.child("privacy")
        .expect("a privacy element")
        .children_by_tag("list")
        .map(|l| {
            (
                attr(l, "type").unwrap_or_default(),
                attr(l, "default").as_deref() == Some("true"),
                l.children_by_tag("user")
                    .filter_map(|u| attr(u, "jid"))
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn status_privacy_is_contacts_until_set() {
    let (sim, mut c) = logged_in().await;
    let get = |id: &'static str| iq(id, "get", "status", vec![Node::new("privacy")]);
    let other = Jid::pn(OTHER).to_string();

    let r = c.query(get("sp1")).await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"));
    assert_eq!(
        status_lists(&r),
        [
            ("contacts".into(), true, vec![]),
            ("blacklist".into(), false, vec![]),
            ("whitelist".into(), false, vec![]),
        ]
    );

    sim.set_status_privacy(
        PHONE,
        wa_sim::StatusPrivacyMode::Blacklist,
        &[Jid::with_device(OTHER, wa_binary::Server::Pn, 3)],
    )
    .unwrap();
    let r = c.query(get("sp2")).await;
    assert_eq!(
        status_lists(&r),
        [
            ("contacts".into(), false, vec![]),
            ("blacklist".into(), true, vec![other.clone()]),
            ("whitelist".into(), false, vec![]),
        ]
    );
    // Back to contacts: the blacklist is kept for later.
    sim.set_status_privacy(PHONE, wa_sim::StatusPrivacyMode::Contacts, &[Jid::pn("1")])
        .unwrap();
    let r = c.query(get("sp3")).await;
    assert_eq!(status_lists(&r)[0], ("contacts".into(), true, vec![]));
    assert_eq!(
        status_lists(&r)[1],
        ("blacklist".into(), false, vec![other])
    );

    // Another status get is not this one.
    let r = c.query(iq("sp4", "get", "status", vec![])).await;
    assert_eq!(code(&r).as_deref(), Some("501"));
    assert!(matches!(
        sim.set_status_privacy("19999999999", wa_sim::StatusPrivacyMode::Whitelist, &[]),
        Err(wa_sim::Error::UnknownAccount(_))
    ));
}
