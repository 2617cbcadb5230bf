//! Status updates sent to the audience the account's status privacy names, end to end
//! through wa-sim: contacts saved on one companion of A reach another companion through
//! app-state sync and are stored there; that companion asks the server for A's status
//! privacy and posts updates; the simulated phones of B, C and D decrypt exactly the
//! updates meant for them.

use std::time::Duration;

use wa_binary::Jid;
use wa_chats::{
    AppState, AppStateConfig, ChatModification, Chats, ChatsConfig, Collection, ContactName,
    MuteUntil, StatusPrivacyKind,
};
use wa_media::{Media, MediaConfig};
use wa_messages::{MessageContent, Messenger, MessengerConfig};
use wa_sim::{Sim, SimConfig, StatusPrivacyMode};
use wa_socket::Socket;
use wa_store::{AccountStore, ContactStore as _};
use wa_usync::{Usync, UsyncConfig};

const A: &str = "15550000001";
const B: &str = "15550000002";
const C: &str = "15550000003";
const D: &str = "15550000004";

struct Companion {
    socket: Socket,
    store: AccountStore,
    app: AppState,
    chats: Chats,
    messenger: Messenger,
}

/// Links a new companion of `A` with every layer listening before the QR is shown.
async fn link(sim: &Sim) -> Companion {
    let store = wa_testkit::memory_store();
    let socket = Socket::connect(wa_testkit::config(sim, store.clone()));
    let mut ev = socket.events_from_start();
    let usync = Usync::new(socket.clone(), &UsyncConfig::default());
    let messenger = Messenger::new(socket.clone(), usync, MessengerConfig::default());
    let mut mc = MediaConfig::default();
    mc.https = false;
    let media = Media::new(socket.clone(), mc).unwrap();
    let mut config = AppStateConfig::default();
    // The test syncs by itself, so that it knows when a sync is over.
    config.resync_on_notification = false;
    config.sync_on_key_share = false;
    let app = AppState::new(socket.clone(), Some(media), Some(messenger.clone()), config);
    let chats = Chats::new(socket.clone(), &ChatsConfig::default());
    wa_testkit::scan_and_login(sim, A, &mut ev).await;
    Companion {
        socket,
        store,
        app,
        chats,
        messenger,
    }
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..300 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Whether `phone`'s simulated phone decrypted the status `id` from `sender` with `text`.
fn phone_got(sim: &Sim, phone: &str, id: &str, sender: &Jid, text: &str) -> bool {
    sim.phone_inbox(phone).iter().any(|m| {
        m.id == id
            && m.chat == Jid::status_broadcast()
            && m.from == *sender
            && text_of(&m.message) == Some(text)
    })
}

/// The text of a plain or extended text message.
fn text_of(m: &wa_sim::Message) -> Option<&str> {
    m.extended_text_message
        .as_deref()
        .and_then(|e| e.text.as_deref())
        .or(m.conversation.as_deref())
}

fn has_id(sim: &Sim, phone: &str, id: &str) -> bool {
    sim.phone_inbox(phone).iter().any(|m| m.id == id)
}

fn users(v: &[Jid]) -> Vec<String> {
    let mut u: Vec<String> = v.iter().map(|j| j.user.to_string()).collect();
    u.sort();
    u
}

/// Posts `text` to A's privacy audience from `sender`; checks that exactly the phones in
/// `to` decrypt it (A's own phone gets it as ever) and the others in `others` do not.
async fn post_and_check(sim: &Sim, sender: &Companion, text: &str, to: &[&str], others: &[&str]) {
    let key = sender
        .chats
        .send_status_to_audience(&sender.messenger, MessageContent::text(text))
        .await
        .unwrap();
    assert_eq!(key.remote_jid, Jid::status_broadcast());
    let me = sender.socket.auth().await.unwrap().jid.clone().unwrap();
    let me: Jid = me.parse().unwrap();
    wait_until(&format!("{to:?} and A's phone decrypt {text:?}"), || {
        to.iter()
            .chain(&[A])
            .all(|p| phone_got(sim, p, &key.id, &me, text))
    })
    .await;
    // Deliveries to the listed phones are done; give a stray one time to arrive.
    tokio::time::sleep(Duration::from_millis(700)).await;
    for p in others {
        assert!(!has_id(sim, p, &key.id), "{p} must not get {text:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_goes_to_the_audience_of_the_privacy_setting() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    for p in [A, B, C, D] {
        sim.add_account(p).await;
    }
    sim.set_app_state_key_share(true);
    let editor = link(&sim).await;
    let sender = link(&sim).await;
    wa_testkit::wait_for_app_state_key(&editor.store).await;
    wa_testkit::wait_for_app_state_key(&sender.store).await;

    // The address book is edited on one device...
    for (p, name) in [(B, "Bea B"), (C, "Cid C")] {
        editor
            .app
            .chat_modify(
                &Jid::pn(p),
                ChatModification::Contact(Some(ContactName::new(name, None))),
            )
            .await
            .unwrap();
    }
    // ...which keeps its own changes...
    let own = editor.store.contacts().await.unwrap();
    assert_eq!(own.len(), 2, "{own:?}");
    // ...and reaches the other one through app-state sync, which stores it.
    sender
        .app
        .resync(&[Collection::CriticalUnblockLow], false)
        .await
        .unwrap();
    let stored = sender.chats.stored_contacts().await.unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|(j, c)| (j.to_string(), c.full_name.clone().unwrap()))
            .collect::<Vec<_>>(),
        [
            (format!("{B}@s.whatsapp.net"), "Bea B".to_owned()),
            (format!("{C}@s.whatsapp.net"), "Cid C".to_owned())
        ]
    );

    // (a) Never chosen: contacts, so B and C.
    let privacy = sender.chats.status_privacy().await.unwrap();
    assert_eq!(privacy[0].kind, StatusPrivacyKind::Contacts);
    assert!(privacy[0].is_default);
    assert_eq!(
        users(&sender.chats.status_audience().await.unwrap()),
        [B, C]
    );
    post_and_check(&sim, &sender, "to my contacts", &[B, C], &[D]).await;

    // (b) Contacts except C.
    sim.set_status_privacy(A, StatusPrivacyMode::Blacklist, &[Jid::pn(C)])
        .unwrap();
    let privacy = sender.chats.status_privacy().await.unwrap();
    assert_eq!(privacy[0].kind, StatusPrivacyKind::Denylist);
    assert_eq!(privacy[0].list, [Jid::pn(C)]);
    assert!(privacy[1..].iter().all(|p| !p.is_default));
    post_and_check(&sim, &sender, "not for C", &[B], &[C, D]).await;

    // (c) Only D, who is not a contact.
    sim.set_status_privacy(A, StatusPrivacyMode::Whitelist, &[Jid::pn(D)])
        .unwrap();
    post_and_check(&sim, &sender, "only D", &[D], &[B, C]).await;

    // A contact removed on the other device leaves the audience once synced.
    sim.set_status_privacy(A, StatusPrivacyMode::Contacts, &[])
        .unwrap();
    editor
        .app
        .chat_modify(&Jid::pn(B), ChatModification::Contact(None))
        .await
        .unwrap();
    sender
        .app
        .resync(&[Collection::CriticalUnblockLow], false)
        .await
        .unwrap();
    assert_eq!(
        sender
            .store
            .get_contact(&format!("{B}@s.whatsapp.net"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(users(&sender.chats.status_audience().await.unwrap()), [C]);
    post_and_check(&sim, &sender, "B is gone", &[C], &[B, D]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_stored_contacts_are_skipped_and_an_empty_audience_is_refused() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    let me = link(&sim).await;
    me.store
        .put_contact(&format!("{B}@s.whatsapp.net"), b"\x07not a contact")
        .await
        .unwrap();
    me.store.put_contact("not a jid@@", b"").await.unwrap();
    assert!(me.chats.stored_contacts().await.unwrap().is_empty());
    assert!(me.chats.status_audience().await.unwrap().is_empty());
    let err = me
        .chats
        .send_status_to_audience(&me.messenger, MessageContent::text("nobody"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            wa_chats::Error::Messages(wa_messages::Error::NoStatusRecipients)
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_replaces_the_stored_address_book() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.set_app_state_key_share(true);
    let editor = link(&sim).await;
    wa_testkit::wait_for_app_state_key(&editor.store).await;
    editor
        .app
        .chat_modify(
            &Jid::pn(B),
            ChatModification::Contact(Some(ContactName::new("Bea B", None))),
        )
        .await
        .unwrap();
    // And something in another collection.
    editor
        .app
        .chat_modify(&Jid::pn(C), ChatModification::Mute(MuteUntil::Forever))
        .await
        .unwrap();
    let late = link(&sim).await;
    wa_testkit::wait_for_app_state_key(&late.store).await;
    // Left over from before (say, a contact removed while this device was away).
    let stale = format!("{D}@s.whatsapp.net");
    late.store
        .put_contact(&stale, &wa_chats::StoredContact::new("Gone").encode())
        .await
        .unwrap();
    // Nothing stored yet: the first sync is a snapshot, the whole address book.
    late.app
        .resync(&[Collection::CriticalUnblockLow], true)
        .await
        .unwrap();
    let stored = late.chats.stored_contacts().await.unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|(j, _)| j.to_string())
            .collect::<Vec<_>>(),
        [format!("{B}@s.whatsapp.net")]
    );
    // Snapshots of other collections leave contacts alone.
    late.store
        .put_contact(&stale, &wa_chats::StoredContact::new("Kept").encode())
        .await
        .unwrap();
    let mut events = late.socket.events();
    late.app
        .resync(&[Collection::RegularHigh], true)
        .await
        .unwrap();
    let synced = loop {
        match events.try_recv() {
            Ok(wa_socket::Event::AppStateSynced {
                collection,
                snapshot,
                ..
            }) if collection == Collection::RegularHigh.as_str() => break snapshot,
            Ok(_) => {}
            Err(e) => panic!("no AppStateSynced for regular_high: {e}"),
        }
    };
    assert!(synced, "regular_high came as a snapshot");
    assert!(late.store.get_contact(&stale).await.unwrap().is_some());
}
