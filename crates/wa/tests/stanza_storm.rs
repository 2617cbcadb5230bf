//! A hostile server: a fully wired client on SQLite takes thousands of broken stanzas
//! (real traffic recorded from wa-sim, then mutated: attributes dropped or given absurd
//! values, children dropped, duplicated or grafted from other stanzas, payloads replaced
//! or cut) and must come out of it with no panic, still connected, still able to send and
//! receive, and with its account intact.
//!
//! The storm is reproducible: `STORM_SEED=<n>` picks the mutations, `STORM_STANZAS=<n>`
//! how many (2,000 by default). `STORM_TEMPLATES_DIR=<dir>` also writes the stanzas it
//! mutates there, encoded (the seed corpus of the `stanza_parsers` fuzz target).

#![allow(clippy::print_stderr, reason = "the storm reports its seed and size")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wa::prelude::*;
use wa::proto::e2e::Message;
use wa_binary::{Content, Node, Value};
use wa_sim::{Sim, SimConfig};

const ME: &str = "15550000001";
const FRIEND: &str = "15550000002";
const OTHER: &str = "15550000003";

/// xorshift64*: small, seeded, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Attribute values a careless or hostile server could send.
const VALUES: &[&str] = &[
    "",
    "0",
    "-1",
    "1",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999999",
    "abc",
    "true",
    "@",
    "@s.whatsapp.net",
    "15550000001@",
    ":1@s.whatsapp.net",
    "15550000001:99999999999@s.whatsapp.net",
    "15550000001:0@s.whatsapp.net",
    "15550000001@s.whatsapp.net",
    "15550000002:1@s.whatsapp.net",
    "1.2:3@lid",
    "123456789@lid",
    "120363000000000001@g.us",
    "status@broadcast",
    "s.whatsapp.net",
    "0@c.us",
    "1@newsletter",
    "867051314767696@bot",
    "\u{0}",
    "é\u{202e}",
    "3EB0BAD",
];

/// Attribute names handlers read, so that new ones are tried where none was.
const KEYS: &[&str] = &[
    "id",
    "type",
    "from",
    "to",
    "participant",
    "recipient",
    "t",
    "count",
    "notify",
    "xmlns",
    "category",
    "offline",
    "sender_lid",
    "participant_pn",
    "participant_lid",
    "addressing_mode",
    "edit",
    "v",
    "mediatype",
    "phash",
    "jid",
    "lid",
    "reason",
    "call-id",
    "call-creator",
    "code",
    "key-index",
    "hash",
    "name",
    "version",
];

/// A hostile value for an attribute: a string, a JID (the encoder writes those in JID
/// form), a long run of text, or a JID too long to key a store item.
fn value(rng: &mut Rng) -> Value {
    match rng.below(11) {
        0 => Value::Str("x".repeat(1 + rng.below(4000)).into()),
        10 => Value::sniff(format!(
            "{}@s.whatsapp.net",
            "1".repeat(100 + rng.below(900))
        )),
        1 | 2 => Value::sniff(rng.pick(VALUES).to_string()),
        _ => Value::Str(rng.pick(VALUES).to_string().into()),
    }
}

/// The path (child indexes) of every node in `n`, root first.
fn paths(n: &Node, at: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    out.push(at.clone());
    if let Content::Nodes(children) = &n.content {
        for (i, c) in children.iter().enumerate() {
            at.push(i);
            paths(c, at, out);
            at.pop();
        }
    }
}

fn at_path<'a>(mut n: &'a mut Node, path: &[usize]) -> &'a mut Node {
    for &i in path {
        match &mut n.content {
            Content::Nodes(children) => n = &mut children[i],
            _ => unreachable!("paths only go through children"),
        }
    }
    n
}

/// Any node of `donor`, cloned.
fn any_subtree(rng: &mut Rng, donor: &Node) -> Node {
    let mut all = Vec::new();
    paths(donor, &mut Vec::new(), &mut all);
    let path = rng.pick(&all).clone();
    let mut d = donor.clone();
    at_path(&mut d, &path).clone()
}

/// One mutation somewhere in `n`.
fn mutate(rng: &mut Rng, n: &mut Node, donors: &[Node], tags: &[String]) {
    let mut all = Vec::new();
    paths(n, &mut Vec::new(), &mut all);
    let path = rng.pick(&all).clone();
    let target = at_path(n, &path);
    let keys: Vec<String> = target.attrs.iter().map(|(k, _)| k.to_string()).collect();
    match rng.below(12) {
        0 if !keys.is_empty() => {
            let k = rng.pick(&keys).clone();
            target.attrs.remove(&k);
        }
        1 | 2 if !keys.is_empty() => {
            let k = rng.pick(&keys).clone();
            target.attrs.insert(k, value(rng));
        }
        3 => {
            let k = *rng.pick(KEYS);
            target.attrs.insert(k, value(rng));
        }
        4 => {
            if let Content::Nodes(children) = &mut target.content
                && !children.is_empty()
            {
                let i = rng.below(children.len());
                children.remove(i);
            }
        }
        5 => {
            if let Content::Nodes(children) = &mut target.content
                && !children.is_empty()
            {
                let i = rng.below(children.len());
                let c = children[i].clone();
                children.insert(i, c);
            }
        }
        6 => {
            let donor = &donors[rng.below(donors.len())];
            let graft = any_subtree(rng, donor);
            match &mut target.content {
                Content::Nodes(children) => children.push(graft),
                c => *c = Content::Nodes(vec![graft]),
            }
        }
        7 => {
            let len = match rng.below(8) {
                0 => 0,
                1 => 64 * 1024 + rng.below(64 * 1024),
                _ => rng.below(300),
            };
            target.content = Content::Bytes(rng.bytes(len).into());
        }
        8 => {
            target.content = match &target.content {
                Content::Bytes(b) if !b.is_empty() => {
                    let mut v: Vec<u8> = b.to_vec();
                    if rng.below(2) == 0 {
                        v.truncate(rng.below(v.len()));
                    } else {
                        let i = rng.below(v.len());
                        v[i] ^= 1 << rng.below(8);
                    }
                    Content::Bytes(v.into())
                }
                _ => Content::Text(rng.pick(VALUES).to_string().into()),
            }
        }
        9 => {
            target.content = match rng.below(3) {
                0 => Content::None,
                1 => Content::Nodes(Vec::new()),
                _ => Content::Text(rng.pick(VALUES).to_string().into()),
            };
        }
        10 => {
            let tag = rng.pick(tags).clone();
            target.tag = tag.into();
        }
        _ => {
            // A deep chain of copies of the same node.
            let mut deep = target.clone();
            for _ in 0..rng.below(24) {
                let mut outer = Node::new(deep.tag.clone());
                outer.attrs = deep.attrs.clone();
                outer.content = Content::Nodes(vec![deep]);
                deep = outer;
            }
            *target = deep;
        }
    }
}

/// Stanzas that end the connection by design (and a `<failure>` or 401 logs out): the
/// socket's own tests cover them; here they would only stop the storm.
fn ends_the_connection(n: &Node) -> bool {
    matches!(
        n.tag(),
        "stream:error" | "failure" | "success" | "xmlstreamend"
    )
}

/// The recorded stanzas' tags and every tag below them.
fn all_tags(nodes: &[Node]) -> Vec<String> {
    fn walk(n: &Node, out: &mut std::collections::BTreeSet<String>) {
        out.insert(n.tag().to_owned());
        for c in n.children() {
            walk(c, out);
        }
    }
    let mut set = std::collections::BTreeSet::new();
    for n in nodes {
        walk(n, &mut set);
    }
    set.retain(|t| !matches!(t.as_str(), "stream:error" | "failure" | "success"));
    set.into_iter().collect()
}

/// Stanzas the recorded run does not produce, written by hand from the protocol.
fn extra_templates(me: &Jid) -> Vec<Node> {
    let server = Jid::new("", wa::Server::Pn);
    let friend = Jid::pn(FRIEND);
    vec![
        Node::builder("iq")
            .attr("id", "ping-1")
            .attr("type", "get")
            .attr("xmlns", "urn:xmpp:ping")
            .attr("from", &server)
            .build(),
        Node::builder("ib")
            .attr("from", &server)
            .children([Node::builder("offline_preview")
                .attr("count", "5")
                .attr("message", "3")
                .attr("receipt", "1")
                .attr("notification", "1")
                .attr("call", "0")
                .build()])
            .build(),
        Node::builder("ib")
            .attr("from", &server)
            .children([Node::builder("offline").attr("count", "0").build()])
            .build(),
        Node::builder("ib")
            .attr("from", &server)
            .children([Node::builder("edge_routing")
                .children([Node::builder("routing_info")
                    .bytes(vec![8, 1, 16, 2])
                    .build()])
                .build()])
            .build(),
        Node::builder("notification")
            .attr("id", "N1")
            .attr("type", "encrypt")
            .attr("from", &server)
            .attr("t", "1700000000")
            .children([Node::builder("count").attr("value", "3").build()])
            .build(),
        Node::builder("notification")
            .attr("id", "N2")
            .attr("type", "server_sync")
            .attr("from", me)
            .attr("t", "1700000000")
            .children([Node::builder("collection")
                .attr("name", "regular_high")
                .attr("version", "7")
                .build()])
            .build(),
        Node::builder("notification")
            .attr("id", "N3")
            .attr("type", "picture")
            .attr("from", &friend)
            .attr("t", "1700000000")
            .children([Node::builder("set")
                .attr("jid", &friend)
                .attr("id", "12345")
                .build()])
            .build(),
        Node::builder("notification")
            .attr("id", "N4")
            .attr("type", "devices")
            .attr("from", &friend)
            .attr("t", "1700000000")
            .children([Node::builder("add")
                .children([
                    Node::builder("device")
                        .attr("jid", Jid::with_device(FRIEND, wa::Server::Pn, 7))
                        .attr("key-index", "2")
                        .build(),
                    Node::builder("key-index-list")
                        .attr("ts", "1700000000")
                        .bytes(vec![0x0a, 0x02, 0x08, 0x01])
                        .build(),
                ])
                .build()])
            .build(),
        Node::builder("notification")
            .attr("id", "N5")
            .attr("type", "privacy_token")
            .attr("from", &friend)
            .attr("t", "1700000000")
            .children([Node::builder("tokens")
                .children([Node::builder("token")
                    .attr("jid", me.to_non_ad())
                    .attr("t", "1700000000")
                    .attr("type", "trusted_contact")
                    .bytes(vec![1, 2, 3])
                    .build()])
                .build()])
            .build(),
        Node::builder("call")
            .attr("id", "C1")
            .attr("from", &friend)
            .attr("t", "1700000000")
            .children([Node::builder("offer")
                .attr("call-id", "ABCDEF")
                .attr("call-creator", &friend)
                .children([Node::builder("audio").attr("enc", "opus").build()])
                .build()])
            .build(),
        Node::builder("receipt")
            .attr("id", "3EB0AAAAAAAAAAAAAAAA")
            .attr("from", Jid::with_device(FRIEND, wa::Server::Pn, 1))
            .attr("type", "retry")
            .attr("t", "1700000000")
            .children([
                Node::builder("retry")
                    .attr("count", "2")
                    .attr("id", "3EB0AAAAAAAAAAAAAAAA")
                    .attr("t", "1700000000")
                    .attr("v", "1")
                    .build(),
                Node::builder("registration")
                    .bytes(vec![0, 0, 0, 1])
                    .build(),
                Node::builder("keys")
                    .children([
                        Node::builder("type").bytes(vec![5]).build(),
                        Node::builder("identity").bytes(vec![7; 32]).build(),
                        Node::builder("key")
                            .children([
                                Node::builder("id").bytes(vec![0, 0, 1]).build(),
                                Node::builder("value").bytes(vec![9; 32]).build(),
                            ])
                            .build(),
                        Node::builder("skey")
                            .children([
                                Node::builder("id").bytes(vec![0, 0, 1]).build(),
                                Node::builder("value").bytes(vec![9; 32]).build(),
                                Node::builder("signature").bytes(vec![3; 64]).build(),
                            ])
                            .build(),
                    ])
                    .build(),
            ])
            .build(),
        Node::builder("presence")
            .attr("from", &friend)
            .attr("type", "unavailable")
            .attr("last", "deny")
            .build(),
        Node::builder("chatstate")
            .attr("from", &friend)
            .children([Node::builder("composing").attr("media", "audio").build()])
            .build(),
    ]
}

/// Everyday traffic for `me`: messages from a friend's phone and from our own phone,
/// receipts, a group made by a friend and one made by us, a picture, an archived chat,
/// a channel, a call, presence, a dirty bit.
async fn everyday_traffic(sim: &Sim, sock: &WaSocket, events: &mut wa::Events) -> Jid {
    let me = Jid::pn(ME);
    let friend = Jid::pn(FRIEND);
    let id = sim
        .phone_send(FRIEND, &me, common::text("hi"))
        .await
        .unwrap();
    common::received(events, &id).await;
    let reaction = Message {
        reaction_message: Some(Box::new(wa::proto::e2e::ReactionMessage {
            key: Some(wa::proto::common::MessageKey {
                remote_jid: Some(me.to_string()),
                from_me: Some(false),
                id: Some(id.clone()),
                ..Default::default()
            }),
            text: Some("👍".into()),
            sender_timestamp_ms: Some(1_700_000_000_000),
            ..Default::default()
        })),
        ..Default::default()
    };
    let rid = sim.phone_send(FRIEND, &me, reaction).await.unwrap();
    common::received(events, &rid).await;
    let own = sim
        .phone_send(ME, &friend, common::text("from my phone"))
        .await
        .unwrap();
    common::received(events, &own).await;
    let key = sock
        .send_message(&friend, MessageContent::text("hello friend"))
        .await
        .unwrap();
    common::wait_for(events, Duration::from_secs(20), |e| match e {
        Event::MessagesUpdate(u) => u.iter().find(|u| u.key.id == key.id).map(|_| ()),
        _ => None,
    })
    .await
    .expect("a receipt for our message");
    if let Some(m) = sim.phone_inbox(FRIEND).into_iter().find(|m| m.id == key.id) {
        sim.phone_mark_read(FRIEND, &m).unwrap();
    }
    let theirs = sim
        .phone_create_group(FRIEND, "friends", &[me.clone(), Jid::pn(OTHER)])
        .unwrap();
    let gid = sim
        .phone_send(FRIEND, &theirs, common::text("hello group"))
        .await
        .unwrap();
    common::received(events, &gid).await;
    let ours = sock
        .groups()
        .create("ours", std::slice::from_ref(&friend))
        .await
        .unwrap()
        .id
        .clone();
    sock.groups()
        .update_subject(&ours, "ours, renamed")
        .await
        .unwrap();
    sock.groups()
        .participants_update(&ours, &[Jid::pn(OTHER)], wa::ParticipantAction::Add)
        .await
        .unwrap();
    let key = sock
        .send_message(&ours, MessageContent::text("to our group"))
        .await
        .unwrap();
    let _ = common::wait_for(events, Duration::from_secs(10), |e| match e {
        Event::MessagesUpdate(u) => u.iter().find(|u| u.key.id == key.id).map(|_| ()),
        _ => None,
    })
    .await;
    let jpeg = [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[7; 3000], &[0xFF, 0xD9]].concat();
    let (image, _) = sim
        .phone_send_image(FRIEND, &me, &jpeg, Some("a picture"))
        .await
        .unwrap();
    let got = common::received(events, &image).await;
    let mut plain = Vec::new();
    sock.download_media(&got, &mut plain).await.unwrap();
    assert_eq!(plain, jpeg);
    // The phone shares the app-state key right after linking; it may still be on its way.
    let mut archived = sock
        .app_state()
        .chat_modify(&friend, wa::ChatModification::Archive(true))
        .await;
    for _ in 0..100 {
        if !matches!(archived, Err(wa_chats::Error::NoAppStateKey)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        archived = sock
            .app_state()
            .chat_modify(&friend, wa::ChatModification::Archive(true))
            .await;
    }
    archived.unwrap();
    sock.newsletter()
        .create("storm news", Some("a channel"))
        .await
        .unwrap();
    let call = sim.place_call(FRIEND, ME, false).unwrap();
    sim.end_call(&call, Some("timeout"));
    sock.chats().subscribe_presence(&friend).await.unwrap();
    sim.mark_dirty(ME, "account_sync");
    ours
}

#[test]
fn a_storm_of_broken_stanzas_leaves_the_client_working() {
    let panics = common::count_panics();
    common::run_with_big_stacks(move || storm(panics));
}

async fn storm(panics: &'static AtomicUsize) {
    let seed: u64 = std::env::var("STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x005E_ED0F_570A);
    let stanzas: usize = std::env::var("STORM_STANZAS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    for p in [ME, FRIEND, OTHER] {
        sim.add_account(p).await;
    }
    let db = common::TempDb::new("storm");
    let store = wa::sqlite_store(&db.0, "me").await.unwrap();
    sim.set_history_sync(ME, true);
    sim.set_app_state_key_share(true);
    sim.record_stanzas(ME);
    let sock = common::linked_with(&sim, ME, |c| c.socket.store = store).await;
    let me = sock.me().await.expect("linked");
    let mut events = sock.events();

    let ours = Box::pin(everyday_traffic(&sim, &sock, &mut events)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut templates: Vec<Node> = sim
        .take_recorded_stanzas()
        .into_iter()
        .filter(|n| !ends_the_connection(n))
        .collect();
    let recorded = templates.len();
    assert!(recorded >= 30, "recorded {recorded} stanzas");
    templates.extend(extra_templates(&me));
    let tags = all_tags(&templates);
    // The seed corpus of the `stanza_parsers` fuzz target: every template, encoded.
    if let Ok(dir) = std::env::var("STORM_TEMPLATES_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, t) in templates.iter().enumerate() {
            let path = std::path::Path::new(&dir).join(format!("{i:04}-{}", t.tag()));
            std::fs::write(path, wa_binary::encode(t)).unwrap();
        }
    }

    // The client goes on with its own work during the storm: sends and queries, which
    // may fail (a broken answer can take a query's place) but must not hurt anything.
    let busy = {
        let sock = sock.clone();
        let ours = ours.clone();
        tokio::spawn(async move {
            // Aborted when the storm is over.
            for _ in 0..100_000 {
                let _ = sock
                    .send_message(&Jid::pn(FRIEND), MessageContent::text("during the storm"))
                    .await;
                let _ = sock.groups().fetch_metadata(&ours).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let acks_before = sim.notification_acks();
    let mut rng = Rng(seed | 1);
    let mut sent = 0;
    for i in 0..stanzas {
        let mut n = rng.pick(&templates).clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut n, &templates, &tags);
        }
        if ends_the_connection(&n) || n.tag().is_empty() {
            continue;
        }
        sent += sim.send_raw(&me, n).await.min(1);
        if i % 100 == 99 {
            // Let the client keep up, and find its connection again if it dropped one.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    busy.abort();
    assert!(
        sent > stanzas / 2,
        "only {sent} of {stanzas} stanzas reached the client"
    );
    let acked = sim.notification_acks() - acks_before;
    eprintln!(
        "seed {seed}: {sent} broken stanzas from {recorded} recorded and {} written \
         templates; {acked} notifications acknowledged",
        templates.len() - recorded
    );
    assert!(
        acked > 0,
        "the client acknowledged none of the broken notifications"
    );

    // Still connected (or connected again), with the same account.
    common::until_open(
        &sock,
        Duration::from_secs(60),
        "the socket is open after the storm",
    )
    .await;
    assert_eq!(
        sock.me().await.as_ref(),
        Some(&me),
        "the account is still linked"
    );

    // Still receives and sends.
    let mut events = sock.events();
    let id = sim
        .phone_send(FRIEND, &Jid::pn(ME), common::text("after the storm"))
        .await
        .unwrap();
    let got = common::received(&mut events, &id).await;
    assert_eq!(message_text(&got.message), Some("after the storm"));
    let key = sock
        .send_message(&Jid::pn(FRIEND), MessageContent::text("still here"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !sim.phone_inbox(FRIEND).iter().any(|m| m.id == key.id) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the friend's phone gets our message");
    // Queries still get their answers.
    let meta = sock.groups().fetch_metadata(&ours).await.unwrap();
    assert_eq!(meta.subject, "ours, renamed");

    assert_eq!(
        panics.load(Ordering::SeqCst),
        0,
        "no panic anywhere (seed {seed}, {sent} stanzas, {recorded} recorded templates)"
    );
    sock.close().await;
    drop(sock);

    // What is on disk is the same account, and opens cleanly.
    let reopened = wa::sqlite_store(&db.0, "me").await.unwrap();
    let creds = wa_store::CredsStore::load_creds(&reopened)
        .await
        .unwrap()
        .expect("the credentials are still stored");
    assert_eq!(creds.jid.as_deref(), Some(me.to_string().as_str()));
    assert!(creds.registered);
    drop(reopened);
}
