//! App-state sync between two companion devices of one account, through wa-sim: what
//! one device changes (archive, pin, mute, labels) reaches the other as events; a
//! restarted device fetches only what is new; tampered patches and snapshots are refused
//! and the recovery ladder runs; a device without the sync key requests it.

use std::time::Duration;

use tokio::sync::broadcast;
use wa_appstate::HashState;
use wa_binary::Jid;
use wa_chats::{
    AppState, AppStateConfig, AppStateFailure, AppStateRecoveryStep, ChatModification, Collection,
    ContactName, MuteUntil,
};
use wa_media::{Media, MediaConfig};
use wa_messages::{Messenger, MessengerConfig};
use wa_sim::{AppStateTamper, Sim, SimConfig};
use wa_socket::{ConnectionState, Event, Socket};
use wa_store::{AccountStore, AppStateStore as _, CredsStore as _};
use wa_usync::{Usync, UsyncConfig};

const A: &str = "15550000001";
const PEER: &str = "15550000077";

struct Device {
    socket: Socket,
    app: AppState,
    events: broadcast::Receiver<Event>,
    store: AccountStore,
    _messenger: Messenger,
}

/// Builds the layers over `socket` before anything arrives on it.
fn layers(socket: &Socket, config: AppStateConfig) -> (AppState, Messenger) {
    let usync = Usync::new(socket.clone(), &UsyncConfig::default());
    let messenger = Messenger::new(socket.clone(), usync, MessengerConfig::default());
    let mut mc = MediaConfig::default();
    mc.https = false;
    let media = Media::new(socket.clone(), mc).unwrap();
    let app = AppState::new(socket.clone(), Some(media), Some(messenger.clone()), config);
    (app, messenger)
}

/// Links a new companion of `A` (the layers listen before the QR is shown).
async fn link(sim: &Sim, config: AppStateConfig) -> Device {
    if sim.account(A).is_none() {
        sim.add_account(A).await;
        // As a real phone: the key comes right after linking.
        sim.set_app_state_key_share(true);
    }
    let store = wa_testkit::memory_store();
    let socket = Socket::connect(wa_testkit::config(sim, store.clone()));
    let mut ev = socket.events_from_start();
    let events = socket.events();
    let (app, messenger) = layers(&socket, config);
    wa_testkit::scan_and_login(sim, A, &mut ev).await;
    Device {
        socket,
        app,
        events,
        store,
        _messenger: messenger,
    }
}

/// A simulator with two companions of `A` that both hold the app-state key; the second
/// is configured with `second`.
async fn two_devices(second: AppStateConfig) -> (Sim, Device, Device) {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let one = link(&sim, AppStateConfig::default()).await;
    let two = link(&sim, second).await;
    wa_testkit::wait_for_app_state_key(&one.store).await;
    wa_testkit::wait_for_app_state_key(&two.store).await;
    (sim, one, two)
}

/// Logs in again from `store`.
async fn reconnect(sim: &Sim, store: AccountStore, config: AppStateConfig) -> Device {
    let socket = Socket::connect(wa_testkit::config(sim, store.clone()));
    let mut ev = socket.events_from_start();
    let events = socket.events();
    let (app, messenger) = layers(&socket, config);
    wa_testkit::next_update(&mut ev, |u| u.state == ConnectionState::Open).await;
    Device {
        socket,
        app,
        events,
        store,
        _messenger: messenger,
    }
}

/// The next event `pick` maps to `Some`.
async fn next_event<T>(
    rx: &mut broadcast::Receiver<Event>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Some(t) = pick(&e) {
                        return t;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("event in time")
}

/// The next account setting `rx` reports.
async fn next_setting(rx: &mut broadcast::Receiver<Event>) -> wa_types::AccountSetting {
    next_event(rx, |e| match e {
        Event::SettingsUpdate(s) => Some(s.clone()),
        _ => None,
    })
    .await
}

/// Every app-state event until (and with) the `AppStateSynced` or `AppStateSyncError` of
/// `collection`.
async fn sync_events(rx: &mut broadcast::Receiver<Event>, collection: &str) -> Vec<Event> {
    let mut out = Vec::new();
    next_event(rx, |e| {
        let keep = matches!(
            e,
            Event::ChatsUpdate(_)
                | Event::LabelsEdit(_)
                | Event::LabelsAssociation(_)
                | Event::ContactsUpsert(_)
                | Event::AppStateRecovery { .. }
                | Event::AppStateSynced { .. }
                | Event::AppStateSyncError(_)
        );
        if keep {
            out.push(e.clone());
        }
        match e {
            Event::AppStateSynced { collection: c, .. } if c == collection => Some(()),
            Event::AppStateSyncError(err) if err.collection == collection => Some(()),
            _ => None,
        }
    })
    .await;
    out
}

async fn stored_version(store: &AccountStore, c: Collection) -> Option<u64> {
    store
        .get_app_state_version(c.as_str())
        .await
        .unwrap()
        .map(|b| HashState::from_bytes(&b).unwrap().version)
}

fn peer() -> Jid {
    Jid::pn(PEER)
}

fn quiet() -> AppStateConfig {
    let mut c = AppStateConfig::default();
    c.resync_on_notification = false;
    c.sync_on_key_share = false;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_one_device_reach_the_other() {
    let (sim, mut one, mut two) = two_devices(AppStateConfig::default()).await;
    let chat = peer();

    one.app
        .chat_modify(&chat, ChatModification::Archive(true))
        .await
        .unwrap();
    let u = next_event(&mut two.events, |e| match e {
        Event::ChatsUpdate(u) => u.iter().find(|u| u.archived.is_some()).cloned(),
        _ => None,
    })
    .await;
    assert_eq!((u.jid.clone(), u.archived), (chat.clone(), Some(true)));
    // The device that made the change reports it too.
    next_event(&mut one.events, |e| match e {
        Event::ChatsUpdate(u) => u.iter().find(|u| u.archived == Some(true)).map(|_| ()),
        _ => None,
    })
    .await;

    one.app
        .chat_modify(&chat, ChatModification::Pin(true))
        .await
        .unwrap();
    let u = next_event(&mut two.events, |e| match e {
        Event::ChatsUpdate(u) => u.iter().find(|u| u.pinned.is_some()).cloned(),
        _ => None,
    })
    .await;
    assert_eq!((u.jid.clone(), u.pinned), (chat.clone(), Some(true)));

    let until = 1_900_000_000_000;
    one.app
        .chat_modify(&chat, ChatModification::Mute(MuteUntil::Until(until)))
        .await
        .unwrap();
    let u = next_event(&mut two.events, |e| match e {
        Event::ChatsUpdate(u) => u.iter().find(|u| u.mute_end.is_some()).cloned(),
        _ => None,
    })
    .await;
    assert_eq!(u.mute_end, Some(Some(until)));

    one.app
        .chat_modify(
            &chat,
            ChatModification::LabelEdit {
                label_id: "7".into(),
                name: "Work".into(),
                color: 3,
                predefined_id: None,
                deleted: false,
            },
        )
        .await
        .unwrap();
    let l = next_event(&mut two.events, |e| match e {
        Event::LabelsEdit(l) => l.first().cloned(),
        _ => None,
    })
    .await;
    assert_eq!(
        (l.id.as_str(), l.name.as_deref(), l.color, l.deleted),
        ("7", Some("Work"), Some(3), false)
    );
    one.app
        .chat_modify(
            &chat,
            ChatModification::ChatLabel {
                label_id: "7".into(),
                labeled: true,
            },
        )
        .await
        .unwrap();
    let a = next_event(&mut two.events, |e| match e {
        Event::LabelsAssociation(a) => a.first().cloned(),
        _ => None,
    })
    .await;
    assert_eq!(
        (
            a.label_id.as_str(),
            a.chat.clone(),
            a.message_id.clone(),
            a.labeled
        ),
        ("7", chat.clone(), None, true)
    );

    // The second device pushes too, on top of what it synced (no conflict).
    two.app
        .chat_modify(
            &chat,
            ChatModification::Contact(Some(ContactName::new("Peer Person", None))),
        )
        .await
        .unwrap();
    let c = next_event(&mut one.events, |e| match e {
        Event::ContactsUpsert(c) => c.first().cloned(),
        _ => None,
    })
    .await;
    assert_eq!(c.full_name.as_deref(), Some("Peer Person"));

    // A push name set on one device is reported on the other and saved in its creds.
    one.app
        .chat_modify(&chat, ChatModification::PushName("Alice A.".into()))
        .await
        .unwrap();
    let name = next_event(&mut two.events, |e| match e {
        Event::PushNameSetting(n) => Some(n.clone()),
        _ => None,
    })
    .await;
    assert_eq!(name, "Alice A.");
    let saved = two.store.load_creds().await.unwrap().unwrap();
    assert_eq!(saved.push_name.as_deref(), Some("Alice A."));
    assert_eq!(
        two.socket.auth().await.unwrap().push_name.as_deref(),
        Some("Alice A.")
    );

    // Both devices hold the server's versions.
    for c in [
        Collection::RegularLow,
        Collection::RegularHigh,
        Collection::Regular,
    ] {
        let server = sim.app_state_version(A, c.as_str());
        assert!(server > 0);
        assert_eq!(stored_version(&one.store, c).await, Some(server), "{c}");
        for _ in 0..100 {
            if stored_version(&two.store, c).await == Some(server) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(stored_version(&two.store, c).await, Some(server), "{c}");
    }
    drop((one.socket, two.socket));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_device_fetches_only_new_patches() {
    let (sim, one, mut two) = two_devices(quiet()).await;
    let chat = peer();
    one.app
        .chat_modify(&chat, ChatModification::Archive(true))
        .await
        .unwrap();
    two.app
        .resync(&[Collection::RegularLow], false)
        .await
        .unwrap();
    let first = sync_events(&mut two.events, "regular_low").await;
    assert!(
        first.iter().any(
            |e| matches!(e, Event::ChatsUpdate(u) if u.iter().any(|u| u.archived == Some(true)))
        )
    );

    // Device two goes away; device one pins meanwhile.
    two.socket.close().await;
    let store = two.store.clone();
    drop(two);
    one.app
        .chat_modify(&chat, ChatModification::Pin(true))
        .await
        .unwrap();

    let mut two = reconnect(&sim, store, quiet()).await;
    two.app
        .resync(&[Collection::RegularLow], false)
        .await
        .unwrap();
    let events = sync_events(&mut two.events, "regular_low").await;
    // Only the pin arrives (one patch, no snapshot); the archive is not reported again.
    let updates: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ChatsUpdate(u) => Some(u.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(updates.len(), 1, "{events:?}");
    assert_eq!(updates[0].pinned, Some(true));
    assert!(matches!(
        events.last(),
        Some(Event::AppStateSynced {
            version: 2,
            snapshot: false,
            ..
        })
    ));
    assert_eq!(
        stored_version(&two.store, Collection::RegularLow).await,
        Some(2)
    );
    drop(one.socket);
}

/// The server's app state is in its state file: after a restart from the file, a device
/// linked afterwards gets the phone's key and a snapshot holding what was synced before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_state_survives_a_restart_from_the_state_file() {
    let (sim, one, two) = two_devices(quiet()).await;
    let chat = peer();
    one.app
        .chat_modify(&chat, ChatModification::Archive(true))
        .await
        .unwrap();
    let json = sim.state().to_json();
    drop((one, two));
    sim.shutdown().await;

    let config = SimConfig {
        state: wa_sim::SimState::from_json(&json).unwrap(),
        ..SimConfig::default()
    };
    let sim = Sim::start(config).await.unwrap();
    let mut three = link(&sim, quiet()).await;
    wa_testkit::wait_for_app_state_key(&three.store).await;
    three
        .app
        .resync(&[Collection::RegularLow], false)
        .await
        .unwrap();
    let events = sync_events(&mut three.events, "regular_low").await;
    assert!(
        events.iter().any(
            |e| matches!(e, Event::ChatsUpdate(u) if u.iter().any(|u| u.archived == Some(true)))
        ),
        "{events:?}"
    );
    assert!(matches!(
        events.last(),
        Some(Event::AppStateSynced {
            version: 1,
            snapshot: true,
            ..
        })
    ));
}

/// The recovery steps and the outcome in `events`.
fn ladder(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AppStateRecovery { step, .. } => Some(format!("{step:?}")),
            Event::AppStateSynced { snapshot, .. } => Some(format!("synced snapshot={snapshot}")),
            Event::AppStateSyncError(e) => Some(format!("error {:?}", e.kind)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_app_state_is_refused_and_the_ladder_runs() {
    let (sim, one, mut two) = two_devices(quiet()).await;
    let chat = peer();
    let low = Collection::RegularLow;

    one.app
        .chat_modify(&chat, ChatModification::Archive(true))
        .await
        .unwrap();
    two.app.resync(&[low], false).await.unwrap();
    sync_events(&mut two.events, "regular_low").await;

    // A patch whose patch MAC was changed: refused, then a snapshot recovers.
    one.app
        .chat_modify(&chat, ChatModification::Pin(true))
        .await
        .unwrap();
    assert!(sim.tamper_app_state(A, "regular_low", AppStateTamper::PatchMac { version: 2 }));
    two.app.resync(&[low], false).await.unwrap();
    let events = sync_events(&mut two.events, "regular_low").await;
    assert_eq!(
        ladder(&events),
        ["SnapshotResync", "synced snapshot=true"],
        "{events:?}"
    );
    assert!(
        events.iter().any(
            |e| matches!(e, Event::ChatsUpdate(u) if u.iter().any(|u| u.pinned == Some(true)))
        )
    );
    assert_eq!(stored_version(&two.store, low).await, Some(2));

    // A value MAC changed: the same.
    one.app
        .chat_modify(&chat, ChatModification::MarkRead(false))
        .await
        .unwrap();
    assert!(sim.tamper_app_state(A, "regular_low", AppStateTamper::ValueMac { version: 3 }));
    two.app.resync(&[low], false).await.unwrap();
    let events = sync_events(&mut two.events, "regular_low").await;
    assert_eq!(
        ladder(&events),
        ["SnapshotResync", "synced snapshot=true"],
        "{events:?}"
    );
    assert_eq!(stored_version(&two.store, low).await, Some(3));

    // Patch and snapshot both bad: the ladder ends in an error event, and the last
    // verified state stays stored.
    one.app
        .chat_modify(&chat, ChatModification::Pin(false))
        .await
        .unwrap();
    assert!(sim.tamper_app_state(A, "regular_low", AppStateTamper::PatchMac { version: 4 }));
    assert!(sim.tamper_app_state(A, "regular_low", AppStateTamper::SnapshotMac));
    let err = two.app.resync(&[low], false).await.unwrap_err();
    assert!(matches!(
        err,
        wa_chats::Error::AppStateSync {
            kind: AppStateFailure::Verification,
            ..
        }
    ));
    let events = sync_events(&mut two.events, "regular_low").await;
    assert_eq!(
        ladder(&events),
        ["SnapshotResync", "error Verification"],
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::ChatsUpdate(_))),
        "nothing unverified is reported: {events:?}"
    );
    assert_eq!(stored_version(&two.store, low).await, Some(3));

    // A fresh device (no state) gets the tampered snapshot: refused too.
    let mut three = link(&sim, quiet()).await;
    wa_testkit::wait_for_app_state_key(&three.store).await;
    assert!(three.app.resync(&[low], true).await.is_err());
    let events = sync_events(&mut three.events, "regular_low").await;
    assert_eq!(ladder(&events), ["SnapshotResync", "error Verification"]);
    assert_eq!(stored_version(&three.store, low).await, None);
    drop((one.socket, two.socket, three.socket));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_linked_without_the_key_requests_it() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let one = link(&sim, AppStateConfig::default()).await;
    wa_testkit::wait_for_app_state_key(&one.store).await;
    let chat = peer();
    one.app
        .chat_modify(&chat, ChatModification::Archive(true))
        .await
        .unwrap();

    sim.set_app_state_key_share(false);
    let mut two = link(&sim, quiet()).await;
    assert!(two.store.app_state_sync_keys().await.unwrap().is_empty());
    // Nothing can be pushed without a key.
    assert!(matches!(
        two.app
            .chat_modify(&chat, ChatModification::Pin(true))
            .await,
        Err(wa_chats::Error::NoAppStateKey)
    ));
    two.app
        .resync(&[Collection::RegularLow], true)
        .await
        .unwrap();
    let events = sync_events(&mut two.events, "regular_low").await;
    let key_id = sim.app_state_key_id(A);
    assert!(
        matches!(
            events.first(),
            Some(Event::AppStateRecovery {
                step: AppStateRecoveryStep::KeyRequest { key_ids },
                ..
            }) if key_ids == &vec![key_id.clone()]
        ),
        "{events:?}"
    );
    assert!(
        events.iter().any(
            |e| matches!(e, Event::ChatsUpdate(u) if u.iter().any(|u| u.archived == Some(true)))
        )
    );
    assert!(matches!(
        events.last(),
        Some(Event::AppStateSynced { version: 1, .. })
    ));
    let keys = two.store.app_state_sync_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    // Now it can push.
    two.app
        .chat_modify(&chat, ChatModification::Pin(true))
        .await
        .unwrap();
    assert_eq!(sim.app_state_version(A, "regular_low"), 2);
    drop(one.socket);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_push_gets_409_and_is_redone_after_a_resync() {
    let (sim, one, mut two) = two_devices(quiet()).await;
    let chat = peer();
    let low = Collection::RegularLow;
    one.app
        .chat_modify(&chat, ChatModification::Archive(true))
        .await
        .unwrap();
    two.app.resync(&[low], false).await.unwrap();
    sync_events(&mut two.events, "regular_low").await;
    assert_eq!(stored_version(&two.store, low).await, Some(1));

    // Device one pushes version 2; device two, still at 1, pushes on top of 1.
    one.app
        .chat_modify(&chat, ChatModification::Pin(true))
        .await
        .unwrap();
    two.app
        .chat_modify(&chat, ChatModification::MarkRead(false))
        .await
        .unwrap();
    // The server refused the first attempt, device two synced (learning about the pin)
    // and pushed again as version 3.
    let events = sync_events(&mut two.events, "regular_low").await;
    assert!(
        events.iter().any(
            |e| matches!(e, Event::ChatsUpdate(u) if u.iter().any(|u| u.pinned == Some(true)))
        ),
        "{events:?}"
    );
    assert!(matches!(
        events.last(),
        Some(Event::AppStateSynced {
            version: 2,
            snapshot: false,
            ..
        })
    ));
    assert_eq!(sim.app_state_version(A, "regular_low"), 3);
    assert_eq!(stored_version(&two.store, low).await, Some(3));
    // Device one follows through the server_sync notification and verifies the result.
    for _ in 0..100 {
        if stored_version(&one.store, low).await == Some(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored_version(&one.store, low).await, Some(3));
    drop((one.socket, two.socket));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_blocked_on_a_key_syncs_when_the_key_arrives() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let one = link(&sim, AppStateConfig::default()).await;
    wa_testkit::wait_for_app_state_key(&one.store).await;
    let chat = peer();
    one.app
        .chat_modify(&chat, ChatModification::Mute(MuteUntil::Forever))
        .await
        .unwrap();

    // No key share at linking, and key requests go unanswered.
    sim.set_app_state_key_share(false);
    sim.set_app_state_key_requests(false);
    let mut config = AppStateConfig::default();
    config.key_wait = Duration::from_millis(300);
    config.resync_on_notification = false;
    let mut two = link(&sim, config).await;
    let err = two
        .app
        .resync(&[Collection::RegularHigh], true)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        wa_chats::Error::AppStateSync {
            kind: AppStateFailure::MissingKey,
            ..
        }
    ));
    let events = sync_events(&mut two.events, "regular_high").await;
    assert_eq!(
        ladder(&events),
        [
            format!(
                "{:?}",
                AppStateRecoveryStep::KeyRequest {
                    key_ids: vec![sim.app_state_key_id(A)]
                }
            ),
            "error MissingKey".to_owned()
        ]
    );
    assert_eq!(
        stored_version(&two.store, Collection::RegularHigh).await,
        None
    );
    // The phone shares its key later; once stored, the blocked collection syncs.
    assert_eq!(sim.phone_share_app_state_key(A).await, 2);
    let events = sync_events(&mut two.events, "regular_high").await;
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::ChatsUpdate(u) if u.iter().any(|u| u.mute_end == Some(Some(-1)))
        )),
        "{events:?}"
    );
    assert!(matches!(
        events.last(),
        Some(Event::AppStateSynced { version: 1, .. })
    ));
    drop(one.socket);
}

/// Polls the credentials of `device` until its new-chat-thread salt is `want`.
async fn salt_becomes(device: &Device, want: Option<&[u8]>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let creds = device.socket.auth().await.expect("creds loaded");
        if creds.nct_salt.as_deref().map(Vec::as_slice) == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "salt not {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_synced_salt_keys_cstokens_on_messages_without_a_privacy_token() {
    let (sim, one, two) = two_devices(AppStateConfig::default()).await;
    sim.add_account(PEER).await;
    let peer = Jid::pn(PEER);
    let text = |t: &str| wa_messages::MessageContent::text(t);

    // No salt yet: no cstoken.
    two._messenger
        .send_message(&peer, text("one"))
        .await
        .unwrap();
    assert_eq!(sim.cstoken(A, PEER), None);

    // One device writes the salt; the other syncs it into its stored credentials and
    // from then on derives the token from the contact's LID.
    let salt = [7u8; 32];
    one.app
        .push(wa_appstate::builders::nct_salt(
            Some(&salt),
            1_700_000_000_000,
        ))
        .await
        .unwrap();
    salt_becomes(&two, Some(&salt)).await;
    let stored = two.store.load_creds().await.unwrap().expect("creds stored");
    assert_eq!(
        stored.nct_salt.as_deref().map(Vec::as_slice),
        Some(&salt[..])
    );
    two._messenger
        .send_message(&peer, text("two"))
        .await
        .unwrap();
    let lid = sim.account(PEER).expect("peer").lid;
    let want = wa_socket::privacy_token::cs_token(&salt, &lid).expect("a LID");
    assert_eq!(sim.cstoken(A, PEER), Some(want.to_vec()));

    // Removing the salt clears it.
    one.app
        .push(wa_appstate::builders::nct_salt(None, 1_700_000_000_001))
        .await
        .unwrap();
    salt_becomes(&two, None).await;
    two._messenger
        .send_message(&peer, text("three"))
        .await
        .unwrap();
    assert_eq!(sim.cstoken(A, PEER), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_for_me_and_ranged_archives_reach_the_other_device() {
    use wa_chats::LastMessage;
    use wa_messages::MessageKey;

    let (_sim, one, mut two) = two_devices(AppStateConfig::default()).await;
    let chat = peer();

    one.app
        .chat_modify(
            &chat,
            ChatModification::DeleteForMe {
                message_id: "3EB0DELETED".into(),
                from_me: true,
                participant: None,
                delete_media: true,
                message_timestamp: Some(1_700_000_000),
            },
        )
        .await
        .unwrap();
    let d = next_event(&mut two.events, |e| match e {
        Event::MessagesDeleted(d) => d.first().cloned(),
        _ => None,
    })
    .await;
    assert_eq!(d.key, MessageKey::new(chat.clone(), true, "3EB0DELETED"));
    assert!(d.delete_media);
    assert_eq!(d.message_timestamp, Some(1_700_000_000));

    // An archive naming the chat's last message reaches the other device with the range.
    let last = LastMessage::new(
        MessageKey::new(chat.clone(), false, "3EB0LAST"),
        1_700_000_500,
    );
    one.app
        .chat_modify_after(
            &chat,
            ChatModification::Archive(true),
            std::slice::from_ref(&last),
        )
        .await
        .unwrap();
    let u = next_event(&mut two.events, |e| match e {
        Event::ChatsUpdate(u) => u.iter().find(|u| u.archived.is_some()).cloned(),
        _ => None,
    })
    .await;
    assert_eq!((&u.jid, u.archived), (&chat, Some(true)));
    let range = u.message_range.expect("the range");
    assert_eq!(range.last_message_timestamp, Some(1_700_000_500));
    assert_eq!(range.messages, [last]);
    // A quick reply is pushed like any other change (other devices keep it; no event).
    one.app
        .chat_modify(
            &chat,
            ChatModification::QuickReply {
                id: String::new(),
                shortcut: "thx".into(),
                message: "Thanks!".into(),
                keywords: Vec::new(),
                deleted: false,
            },
        )
        .await
        .unwrap();
    // A range on a modification that takes none is refused before anything is pushed.
    let last = LastMessage::new(MessageKey::new(chat.clone(), true, "X"), 1);
    assert!(
        one.app
            .chat_modify_after(&chat, ChatModification::Pin(true), &[last])
            .await
            .is_err()
    );
}

/// A SET mutation built by hand, as a phone would write one this library does not build.
fn phone_mutation(
    collection: Collection,
    index: &[&str],
    fill: impl FnOnce(&mut wa_proto::sync_action::SyncActionValue),
) -> wa_appstate::OutgoingMutation {
    let mut value = wa_proto::sync_action::SyncActionValue {
        timestamp: Some(1_700_000_000_000),
        ..Default::default()
    };
    fill(&mut value);
    wa_appstate::OutgoingMutation {
        collection,
        operation: wa_appstate::Operation::Set,
        index: index.iter().map(|s| (*s).to_owned()).collect(),
        value,
        version: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_locks_and_lid_chats_reach_the_other_device() {
    use wa_proto::sync_action::{LocaleSetting, LockChatAction, PnForLidChatAction};
    use wa_store::LidMappingStore as _;
    use wa_types::AccountSetting;

    let (_sim, one, mut two) = two_devices(AppStateConfig::default()).await;
    let chat = peer();

    one.app
        .chat_modify(&chat, ChatModification::DisableLinkPreviews(true))
        .await
        .unwrap();
    let s = next_setting(&mut two.events).await;
    assert_eq!(s, AccountSetting::DisableLinkPreviews(true));

    // Status privacy: only the listed users, synced to the other device.
    use wa_proto::sync_action::status_privacy_action::StatusDistributionMode;
    one.app
        .chat_modify(
            &chat,
            ChatModification::StatusPrivacy {
                mode: StatusDistributionMode::AllowList,
                users: vec![
                    Jid::pn("15550000077"),
                    Jid::with_device("15550000078", wa_binary::Server::Pn, 3),
                ],
            },
        )
        .await
        .unwrap();
    let s = next_setting(&mut two.events).await;
    assert_eq!(
        s,
        AccountSetting::StatusPrivacy {
            mode: StatusDistributionMode::AllowList,
            users: vec![
                "15550000077@s.whatsapp.net".to_owned(),
                "15550000078@s.whatsapp.net".to_owned()
            ],
        }
    );

    one.app
        .push(phone_mutation(
            Collection::CriticalBlock,
            &["setting_locale"],
            |v| {
                v.locale_setting = Some(LocaleSetting {
                    locale: Some("pt_BR".into()),
                    ..Default::default()
                })
            },
        ))
        .await
        .unwrap();
    let s = next_setting(&mut two.events).await;
    assert_eq!(s, AccountSetting::Locale("pt_BR".into()));

    let chat_s = chat.to_string();
    one.app
        .push(phone_mutation(
            Collection::RegularLow,
            &["lock", &chat_s],
            |v| {
                v.lock_chat_action = Some(LockChatAction {
                    locked: Some(true),
                    ..Default::default()
                })
            },
        ))
        .await
        .unwrap();
    let u = next_event(&mut two.events, |e| match e {
        Event::ChatsUpdate(u) => u.iter().find(|u| u.locked.is_some()).cloned(),
        _ => None,
    })
    .await;
    assert_eq!((u.jid, u.locked), (chat.clone(), Some(true)));

    // The phone number behind a LID chat: stored as a mapping, reported as a contact.
    let lid = "200000000000077@lid";
    let mut watch = two.socket.events();
    one.app
        .push(phone_mutation(
            Collection::Regular,
            &["pnForLidChat", lid],
            |v| {
                v.pn_for_lid_chat_action = Some(PnForLidChatAction {
                    pn_jid: Some(chat_s.clone()),
                    ..Default::default()
                })
            },
        ))
        .await
        .unwrap();
    let c = next_event(&mut two.events, |e| match e {
        Event::ContactsUpsert(c) => c.iter().find(|c| c.pn.is_some()).cloned(),
        _ => None,
    })
    .await;
    assert_eq!(c.lid, Some(lid.parse().unwrap()));
    assert_eq!(c.pn, Some(chat.clone()));
    assert_eq!(
        two.store.lid_for_pn(PEER).await.unwrap().as_deref(),
        Some("200000000000077")
    );
    let learned = wa_types::LidMapping::of_users("200000000000077", PEER);
    next_event(&mut watch, |e| match e {
        Event::LidMappings(m) if m.contains(&learned) => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_settings_are_kept_in_the_store_on_both_devices() {
    let (_sim, mut one, mut two) = two_devices(AppStateConfig::default()).await;
    let chat = peer();
    let group = Jid::group("120363000000000042");
    assert_eq!(
        two.app.chat_settings(&chat).await.unwrap(),
        wa_chats::ChatSettings::default()
    );

    one.app
        .chat_modify(&chat, ChatModification::Archive(true))
        .await
        .unwrap();
    one.app
        .chat_modify(&group, ChatModification::Pin(true))
        .await
        .unwrap();
    let until = 1_900_000_000_000;
    one.app
        .chat_modify(&chat, ChatModification::Mute(MuteUntil::Until(until)))
        .await
        .unwrap();
    // Archive and pin sync in one collection (`regular_low`), mute in another
    // (`regular_high`): the second device may apply them in either order.
    let (mut archived, mut pinned, mut muted) = (false, false, false);
    while !(archived && pinned && muted) {
        let updates = next_event(&mut two.events, |e| match e {
            Event::ChatsUpdate(u) => Some(u.clone()),
            _ => None,
        })
        .await;
        for u in updates {
            archived |= u.archived == Some(true);
            pinned |= u.pinned == Some(true);
            muted |= u.mute_end.is_some();
        }
    }
    for device in [&one, &two] {
        let s = device.app.chat_settings(&chat).await.unwrap();
        assert!(s.archived && !s.pinned);
        assert_eq!(s.muted_until, Some(until));
        assert!(s.is_muted_at(until - 1) && !s.is_muted_at(until));
        assert!(device.app.chat_settings(&group).await.unwrap().pinned);
        let all = device.app.stored_chat_settings().await.unwrap();
        let chats: Vec<&Jid> = all.iter().map(|(j, _)| j).collect();
        assert_eq!(chats, [&group, &chat]);
    }

    // Unarchived and unmuted on the second device: both forget it.
    two.app
        .chat_modify(&chat, ChatModification::Archive(false))
        .await
        .unwrap();
    two.app
        .chat_modify(&chat, ChatModification::Mute(MuteUntil::Unmuted))
        .await
        .unwrap();
    next_event(&mut one.events, |e| match e {
        Event::ChatsUpdate(u) => u.iter().find(|u| u.mute_end == Some(None)).map(|_| ()),
        _ => None,
    })
    .await;
    for device in [&one, &two] {
        assert_eq!(
            device.app.chat_settings(&chat).await.unwrap(),
            wa_chats::ChatSettings::default()
        );
        assert_eq!(device.app.stored_chat_settings().await.unwrap().len(), 1);
    }
}

/// A device whose copy of a collection cannot be synced (patch and snapshot tampered)
/// asks the phone for it: the chat settings arrive as after a snapshot, the recovered
/// version and LTHash are stored, and the next patch from another device verifies
/// against them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_collection_is_recovered_from_the_phone() {
    let (sim, one, mut two) = two_devices(quiet()).await;
    let chat = peer();
    let low = Collection::RegularLow;

    one.app
        .chat_modify(&chat, ChatModification::Archive(true))
        .await
        .unwrap();
    two.app.resync(&[low], false).await.unwrap();
    sync_events(&mut two.events, "regular_low").await;
    one.app
        .chat_modify(&chat, ChatModification::Pin(true))
        .await
        .unwrap();
    assert!(sim.tamper_app_state(A, "regular_low", AppStateTamper::PatchMac { version: 2 }));
    assert!(sim.tamper_app_state(A, "regular_low", AppStateTamper::SnapshotMac));
    assert!(two.app.resync(&[low], false).await.is_err());
    sync_events(&mut two.events, "regular_low").await;
    assert_eq!(stored_version(&two.store, low).await, Some(1));

    let version = Box::pin(two.app.recover(low)).await.unwrap();
    assert_eq!(version, 2);
    let events = sync_events(&mut two.events, "regular_low").await;
    assert_eq!(
        ladder(&events),
        ["PhoneRecovery", "synced snapshot=true"],
        "{events:?}"
    );
    let updates: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ChatsUpdate(u) => Some(u.clone()),
            _ => None,
        })
        .flatten()
        .filter(|u| u.jid == chat)
        .collect();
    assert!(
        updates.iter().any(|u| u.archived == Some(true)),
        "{updates:?}"
    );
    assert!(
        updates.iter().any(|u| u.pinned == Some(true)),
        "{updates:?}"
    );
    assert_eq!(stored_version(&two.store, low).await, Some(2));

    // The next patch (unpinning the same chat: its index's old value MAC is taken out of
    // the LTHash) verifies against the recovered state.
    one.app
        .chat_modify(&chat, ChatModification::Pin(false))
        .await
        .unwrap();
    two.app.resync(&[low], false).await.unwrap();
    let events = sync_events(&mut two.events, "regular_low").await;
    assert_eq!(ladder(&events), ["synced snapshot=false"], "{events:?}");
    assert!(
        events.iter().any(
            |e| matches!(e, Event::ChatsUpdate(u) if u.iter().any(|u| u.pinned == Some(false)))
        ),
        "{events:?}"
    );
    assert_eq!(stored_version(&two.store, low).await, Some(3));
    drop((one.socket, two.socket));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fatal_exception_notification_reaches_the_phone() {
    let (sim, one, two) = two_devices(quiet()).await;
    assert!(matches!(
        two.app.send_fatal_exception(&[]).await,
        Err(wa_chats::Error::InvalidRequest(_))
    ));
    Box::pin(two.app.send_fatal_exception(&[
        Collection::RegularLow,
        Collection::Regular,
        Collection::RegularLow,
    ]))
    .await
    .unwrap();
    let want = vec![vec!["regular_low".to_owned(), "regular".to_owned()]];
    for _ in 0..200 {
        if sim.app_state_fatal_exceptions(A) == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(sim.app_state_fatal_exceptions(A), want);
    drop((one.socket, two.socket));
}

/// Corrupt, oversized, garbage, mismatched, inconsistent, empty and missing answers are
/// typed errors and never touch the stored state; an honest answer then recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_recovery_answers_are_refused_and_change_nothing() {
    let mut config = quiet();
    config.recovery_wait = Duration::from_secs(3);
    config.max_recovery_len = 64 * 1024;
    let (sim, one, mut two) = two_devices(config).await;
    let chat = peer();
    let low = Collection::RegularLow;
    one.app
        .chat_modify(&chat, ChatModification::Archive(true))
        .await
        .unwrap();
    two.app.resync(&[low], false).await.unwrap();
    sync_events(&mut two.events, "regular_low").await;
    let stored = two
        .store
        .get_app_state_version("regular_low")
        .await
        .unwrap();
    assert!(stored.is_some());

    use wa_appstate::Error as As;
    use wa_chats::Error as E;
    use wa_sim::RecoveryAnswer as R;
    type Check = fn(&E) -> bool;
    let cases: [(R, Check); 7] = [
        (R::BadCompression, |e| {
            matches!(e, E::AppState(As::Inflate(_)))
        }),
        (R::Oversize(100_000), |e| {
            matches!(e, E::AppState(As::TooLarge { limit: 65536 }))
        }),
        (R::Garbage, |e| matches!(e, E::AppState(As::Proto(_)))),
        (
            R::WrongCollection("regular_high"),
            |e| matches!(e, E::RecoveryMismatch { asked: Collection::RegularLow, got: Some(g) } if g == "regular_high"),
        ),
        (R::BadHash, |e| {
            matches!(e, E::AppState(As::RecoveryHash { version: 1 }))
        }),
        (R::Empty, |e| matches!(e, E::EmptyRecovery)),
        (R::Silent, |e| matches!(e, E::RecoveryTimeout)),
    ];
    for (how, check) in cases {
        sim.set_app_state_recovery_answer(how);
        let err = Box::pin(two.app.recover(low)).await.unwrap_err();
        assert!(check(&err), "{how:?}: {err:?}");
        if how != R::Silent {
            let events = sync_events(&mut two.events, "regular_low").await;
            assert_eq!(
                ladder(&events),
                ["PhoneRecovery", "error Recovery"],
                "{how:?}: {events:?}"
            );
        }
        assert_eq!(
            two.store
                .get_app_state_version("regular_low")
                .await
                .unwrap(),
            stored,
            "{how:?} changed the stored state"
        );
    }

    sim.set_app_state_recovery_answer(R::Honest);
    assert_eq!(Box::pin(two.app.recover(low)).await.unwrap(), 1);
    drop((one.socket, two.socket));
}
