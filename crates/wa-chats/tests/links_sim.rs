//! Contact QR links, business message links, terms-of-service notices and push
//! registration between two accounts linked to wa-sim: every request reaches the server
//! and what one account sets up, the other resolves.

use std::time::Duration;

use wa_binary::{Jid, Node};
use wa_chats::{Chats, ChatsConfig, Error, PushConfig};
use wa_sim::{Sim, SimConfig};

const A: &str = "15550000001";
const B: &str = "15550000002";

/// Dropping `sim` stops the server, so every test keeps it bound.
struct Pair {
    sim: Sim,
    a: Chats,
    b: Chats,
    device_a: Jid,
    device_b: Jid,
    _sockets: (wa_socket::Socket, wa_socket::Socket),
}

async fn pair() -> Pair {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_a, device_a) = wa_testkit::link(&sim, A).await;
    let (sock_b, device_b) = wa_testkit::link(&sim, B).await;
    let a = Chats::new(sock_a.clone(), &ChatsConfig::default());
    let b = Chats::new(sock_b.clone(), &ChatsConfig::default());
    Pair {
        sim,
        a,
        b,
        device_a,
        device_b,
        _sockets: (sock_a, sock_b),
    }
}

/// A sets its push name and waits until the server knows it.
async fn name_a(p: &Pair, name: &str) {
    p.a.set_push_name(name).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while p.sim.push_name(A).as_deref() != Some(name) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "push name never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn attr<'a>(node: &'a Node, key: &str) -> &'a str {
    node.attr::<&str>(key)
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_qr_link_resolves_to_its_account() {
    let p = pair().await;
    name_a(&p, "Alice").await;

    let link = p.a.contact_qr_link(false).await.unwrap();
    let code = link
        .strip_prefix("https://wa.me/qr/")
        .unwrap_or_else(|| panic!("not a contact link: {link}"));
    assert_eq!(p.sim.contact_qr_code(A).as_deref(), Some(code));
    // Stable until revoked.
    assert_eq!(p.a.contact_qr_link(false).await.unwrap(), link);

    let target = p.b.resolve_contact_qr_link(&link).await.unwrap();
    assert_eq!(target.jid, Jid::pn(A));
    assert_eq!(target.push_name.as_deref(), Some("Alice"));
    assert_eq!(target.kind, "contact");
    // The bare code and the other link form name the same account.
    assert_eq!(p.b.resolve_contact_qr_link(code).await.unwrap(), target);
    let direct = format!("https://api.whatsapp.com/qr/{code}?src=share");
    assert_eq!(p.b.resolve_contact_qr_link(&direct).await.unwrap(), target);

    // B's own link is another one, naming B.
    let link_b = p.b.contact_qr_link(false).await.unwrap();
    assert_ne!(link_b, link);
    assert_eq!(
        p.a.resolve_contact_qr_link(&link_b).await.unwrap().jid,
        Jid::pn(B)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_contact_qr_link_no_longer_resolves() {
    let p = pair().await;
    let old = p.a.contact_qr_link(false).await.unwrap();
    let new = p.a.contact_qr_link(true).await.unwrap();
    assert_ne!(new, old);
    assert_eq!(p.a.contact_qr_link(false).await.unwrap(), new);

    let err = p.b.resolve_contact_qr_link(&old).await.unwrap_err();
    assert!(matches!(err, Error::ContactQrLinkNotFound), "{err:?}");
    assert_eq!(
        p.b.resolve_contact_qr_link(&new).await.unwrap().jid,
        Jid::pn(A)
    );
    // No push name announced yet: none in the answer.
    assert_eq!(
        p.b.resolve_contact_qr_link(&new).await.unwrap().push_name,
        None
    );

    let err =
        p.b.resolve_contact_qr_link("NOSUCHCODE1")
            .await
            .unwrap_err();
    assert!(matches!(err, Error::ContactQrLinkNotFound), "{err:?}");
    // Not a code at all: refused before anything is sent.
    let err =
        p.b.resolve_contact_qr_link("https://wa.me/qr/")
            .await
            .unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_message_link_resolves_with_its_text_and_verified_name() {
    let p = pair().await;
    name_a(&p, "Ann's").await;
    p.sim
        .add_business_message_link(
            A,
            "SHOP2TEXT",
            "Hello, I'd like to order",
            Some("Ann's Shop"),
        )
        .unwrap();
    p.sim
        .add_business_message_link(A, "PLAIN1", "", None)
        .unwrap();

    let link =
        p.b.resolve_business_message_link("https://wa.me/message/SHOP2TEXT")
            .await
            .unwrap();
    assert_eq!(link.jid, Jid::pn(A));
    assert_eq!(link.push_name.as_deref(), Some("Ann's"));
    assert_eq!(link.message.as_deref(), Some("Hello, I'd like to order"));
    assert!(link.is_signed);
    assert_eq!(link.verified_name.as_deref(), Some("Ann's Shop"));
    assert_eq!(link.verified_level.as_deref(), Some("unknown"));
    assert_eq!(
        p.b.resolve_business_message_link("https://api.whatsapp.com/message/SHOP2TEXT")
            .await
            .unwrap(),
        link
    );

    let plain = p.b.resolve_business_message_link("PLAIN1").await.unwrap();
    assert_eq!(plain.jid, Jid::pn(A));
    assert_eq!(plain.message, None);
    assert!(!plain.is_signed);
    assert_eq!(plain.verified_name, None);

    let err =
        p.b.resolve_business_message_link("https://wa.me/message/GONE42")
            .await
            .unwrap_err();
    assert!(matches!(err, Error::BusinessMessageLinkNotFound), "{err:?}");
    // A code in use as a contact QR code cannot also name a business link.
    let contact = p.a.contact_qr_link(false).await.unwrap();
    let code = contact.trim_start_matches("https://wa.me/qr/");
    assert!(p.sim.add_business_message_link(A, code, "x", None).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_tos_notice_is_recorded_by_the_server() {
    let p = pair().await;
    assert!(p.sim.tos_notices(A).is_empty());
    p.a.accept_tos_notice("20601218", "5").await.unwrap();
    p.a.accept_tos_notice("20601218", "5").await.unwrap();
    p.a.accept_tos_notice("20900727", "1").await.unwrap();
    assert_eq!(
        p.sim.tos_notices(A),
        [
            ("20601218".to_owned(), "5".to_owned()),
            ("20900727".to_owned(), "1".to_owned())
        ]
    );
    assert!(p.sim.tos_notices(B).is_empty());
    let err = p.a.accept_tos_notice("", "5").await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_push_config_is_what_the_server_returns() {
    let p = pair().await;
    let empty = p.a.push_config().await.unwrap();
    assert_eq!(empty.tag(), "settings");
    assert!(empty.children().is_empty());

    p.a.register_push(&PushConfig::Fcm {
        token: "fcm-token-1".into(),
    })
    .await
    .unwrap();
    let settings = p.a.push_config().await.unwrap();
    let config = settings.child("config").expect("a config");
    assert_eq!(attr(config, "platform"), "gcm");
    assert_eq!(attr(config, "id"), "fcm-token-1");
    assert_eq!(attr(config, "num_acc"), "1");

    // A new registration replaces the old one.
    p.a.register_push(&PushConfig::WebPush {
        endpoint: "https://push.example/sub/1".into(),
        auth: vec![0xFB; 16],
        p256dh: vec![4, 0xFF, 0xFE],
    })
    .await
    .unwrap();
    let settings = p.a.push_config().await.unwrap();
    let configs: Vec<_> = settings.children_by_tag("config").collect();
    assert_eq!(configs.len(), 1);
    assert_eq!(attr(configs[0], "platform"), "web");
    assert_eq!(attr(configs[0], "endpoint"), "https://push.example/sub/1");
    assert_eq!(attr(configs[0], "auth"), "+/v7+/v7+/v7+/v7+/v7+w==");
    assert_eq!(attr(configs[0], "p256dh"), "BP/+");
    let stored = p
        .sim
        .push_config(&p.device_a)
        .expect("stored for A's device");
    assert!(stored.contains(&("platform".to_owned(), "web".to_owned())));

    // Kept per device: B has none.
    assert!(p.sim.push_config(&p.device_b).is_none());
    assert!(p.b.push_config().await.unwrap().children().is_empty());

    // APNs, as whatsmeow registers it.
    p.b.register_push(&PushConfig::Apns {
        token: "apns-token".into(),
        voip_token: Some("voip-token".into()),
        msg_id_enc_key: [7; 32],
    })
    .await
    .unwrap();
    let settings = p.b.push_config().await.unwrap();
    let config = settings.child("config").expect("a config");
    assert_eq!(attr(config, "platform"), "apple");
    assert_eq!(attr(config, "id"), "apns-token");
    assert_eq!(attr(config, "voip"), "voip-token");
    assert_eq!(attr(config, "pkey").len(), 43);
}
