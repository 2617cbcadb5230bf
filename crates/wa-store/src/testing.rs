//! The backend conformance suite: one generic test per property every [`Backend`] must
//! have, and [`backend_conformance_tests!`](crate::backend_conformance_tests) to run them
//! all against a backend.
//!
//! Each test works in a fresh random account, so the suite can run against a shared
//! database (PostgreSQL) many times, and in parallel.
//!
//! ```text
//! async fn make() -> Option<Arc<dyn wa_store::Backend>> {
//!     Some(Arc::new(wa_store::MemoryBackend::new()))
//! }
//! wa_store::backend_conformance_tests!(make());
//! ```
//!
//! [`Tapped`] wraps a backend with hooks around every call, for tests that count,
//! record, pause or refuse store calls.

mod tap;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use rand_core::{OsRng, RngCore};

pub use tap::{Read, Tap, Tapped, done};

use crate::{
    AccountId, AccountStore, AppStateStore, AuthCreds, Backend, Batch, ChatSettingStore,
    ContactStore, CredsStore, Error, IdentityStore, InboxStore, LidMappingStore,
    MessageSecretStore, Op, PreKeyStore, PrivacyToken, PrivacyTokenStore, ProcessedMessageStore,
    Role, SenderKeyMemoryStore, SenderKeyStore, SentMessageStore, SessionStore, SignedPreKeyStore,
};

/// A fresh account id no other test uses.
pub fn fresh_account() -> AccountId {
    let n = OsRng.next_u64();
    AccountId::new(format!("conformance-{n:016x}")).expect("short non-empty id") // invariant: fixed-size id
}

fn store(b: &Arc<dyn Backend>) -> AccountStore {
    AccountStore::new(b.clone(), fresh_account())
}

fn b(v: &[u8]) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(v))
}

/// Credentials: absent, saved, loaded equal, overwritten; listed among accounts.
pub async fn creds_round_trip(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    assert!(s.load_creds().await.unwrap().is_none());
    assert!(!backend.accounts().await.unwrap().contains(s.account()));
    let mut creds = AuthCreds::generate(&mut OsRng);
    s.save_creds(&creds).await.unwrap();
    assert_eq!(s.load_creds().await.unwrap().as_ref(), Some(&creds));
    creds.jid = Some("15550001:3@s.whatsapp.net".into());
    creds.next_pre_key_id = 812;
    creds.registered = true;
    creds.nct_salt = Some(zeroize::Zeroizing::new(vec![0x5a; 32]));
    s.save_creds(&creds).await.unwrap();
    let back = s.load_creds().await.unwrap().unwrap();
    assert_eq!(back, creds);
    assert_eq!(back.next_pre_key_id, 812);
    assert_eq!(
        back.nct_salt.as_deref().map(Vec::as_slice),
        Some(&[0x5a; 32][..])
    );
    assert!(backend.accounts().await.unwrap().contains(s.account()));
}

/// Sessions: per (user, device), listing devices, deleting one and all.
pub async fn sessions(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let u = "15550001@s.whatsapp.net";
    assert_eq!(s.get_session(u, 0).await.unwrap(), None);
    s.put_session(u, 0, b"s0").await.unwrap();
    s.put_session(u, 12, b"s12").await.unwrap();
    s.put_session(u, 2, b"s2").await.unwrap();
    s.put_session("other@s.whatsapp.net", 0, b"o")
        .await
        .unwrap();
    assert_eq!(s.get_session(u, 12).await.unwrap(), b(b"s12"));
    assert_eq!(s.session_devices(u).await.unwrap(), vec![0, 2, 12]);
    s.put_session(u, 2, b"s2'").await.unwrap();
    assert_eq!(s.get_session(u, 2).await.unwrap(), b(b"s2'"));
    s.delete_session(u, 2).await.unwrap();
    assert_eq!(s.get_session(u, 2).await.unwrap(), None);
    s.delete_session(u, 2).await.unwrap();
    s.delete_all_sessions(u).await.unwrap();
    assert!(s.session_devices(u).await.unwrap().is_empty());
    assert_eq!(s.get_session(u, 0).await.unwrap(), None);
    assert_eq!(
        s.get_session("other@s.whatsapp.net", 0).await.unwrap(),
        b(b"o")
    );
}

/// Identity keys.
pub async fn identities(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let key = [5u8; 33];
    assert_eq!(s.get_identity("u", 1).await.unwrap(), None);
    s.put_identity("u", 1, &key).await.unwrap();
    assert_eq!(s.get_identity("u", 1).await.unwrap(), b(&key));
    assert_eq!(s.get_identity("u", 2).await.unwrap(), None);
    s.put_identity("u", 1, &[6u8; 33]).await.unwrap();
    assert_eq!(s.get_identity("u", 1).await.unwrap(), b(&[6u8; 33]));
    s.delete_identity("u", 1).await.unwrap();
    assert_eq!(s.get_identity("u", 1).await.unwrap(), None);
}

/// One-time pre-keys: bulk insert, lookup, ordered ids, removal, consume-once.
pub async fn pre_keys(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let values: Vec<(u32, Vec<u8>)> = (1..=30).map(|i| (i * 7, vec![i as u8; 32])).collect();
    let refs: Vec<(u32, &[u8])> = values.iter().map(|(i, v)| (*i, v.as_slice())).collect();
    s.put_pre_keys(&refs).await.unwrap();
    assert_eq!(s.get_pre_key(14).await.unwrap(), b(&[2u8; 32]));
    assert_eq!(s.get_pre_key(15).await.unwrap(), None);
    let ids = s.pre_key_ids().await.unwrap();
    assert_eq!(ids, (1..=30).map(|i| i * 7).collect::<Vec<_>>());
    s.remove_pre_key(14).await.unwrap();
    assert_eq!(s.get_pre_key(14).await.unwrap(), None);
    let mut batch = Batch::new();
    batch.consume_pre_key(21);
    s.commit(batch).await.unwrap();
    assert_eq!(s.get_pre_key(21).await.unwrap(), None);
    let mut again = Batch::new();
    again.consume_pre_key(21);
    assert!(matches!(
        s.commit(again).await,
        Err(Error::Conflict {
            role: Role::PreKey,
            ..
        })
    ));
    assert_eq!(s.pre_key_ids().await.unwrap().len(), 28);
}

/// Signed pre-keys.
pub async fn signed_pre_keys(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    assert!(s.signed_pre_keys().await.unwrap().is_empty());
    s.put_signed_pre_key(10, b"ten").await.unwrap();
    s.put_signed_pre_key(2, b"two").await.unwrap();
    assert_eq!(s.get_signed_pre_key(10).await.unwrap(), b(b"ten"));
    let all = s.signed_pre_keys().await.unwrap();
    assert_eq!(
        all,
        vec![
            (2, Bytes::from_static(b"two")),
            (10, Bytes::from_static(b"ten"))
        ]
    );
    s.remove_signed_pre_key(2).await.unwrap();
    assert_eq!(s.signed_pre_keys().await.unwrap().len(), 1);
}

/// Sender keys per (group, sender).
pub async fn sender_keys(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let g = "120363000000000001@g.us";
    s.put_sender_key(g, "111:1@s.whatsapp.net", b"k1")
        .await
        .unwrap();
    s.put_sender_key(g, "222:0@s.whatsapp.net", b"k2")
        .await
        .unwrap();
    s.put_sender_key("other@g.us", "111:1@s.whatsapp.net", b"x")
        .await
        .unwrap();
    assert_eq!(
        s.get_sender_key(g, "111:1@s.whatsapp.net").await.unwrap(),
        b(b"k1")
    );
    s.delete_sender_key(g, "111:1@s.whatsapp.net")
        .await
        .unwrap();
    assert_eq!(
        s.get_sender_key(g, "111:1@s.whatsapp.net").await.unwrap(),
        None
    );
    assert_eq!(
        s.get_sender_key(g, "222:0@s.whatsapp.net").await.unwrap(),
        b(b"k2")
    );
    assert_eq!(
        s.get_sender_key("other@g.us", "111:1@s.whatsapp.net")
            .await
            .unwrap(),
        b(b"x")
    );
}

/// Sender-key memory: which devices got our key, per group; forgetting a group.
pub async fn sender_key_memory(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let g = "120363000000000002@g.us";
    assert!(s.sender_key_devices(g).await.unwrap().is_empty());
    let devices: Vec<String> = vec!["b:1@s.whatsapp.net".into(), "a:0@s.whatsapp.net".into()];
    s.mark_sender_key_sent(g, &devices).await.unwrap();
    s.mark_sender_key_sent(g, &["a:0@s.whatsapp.net".to_owned()])
        .await
        .unwrap();
    s.mark_sender_key_sent("g2@g.us", &["z@s.whatsapp.net".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        s.sender_key_devices(g).await.unwrap(),
        vec![
            "a:0@s.whatsapp.net".to_owned(),
            "b:1@s.whatsapp.net".to_owned()
        ]
    );
    s.forget_sender_key_memory(g).await.unwrap();
    assert!(s.sender_key_devices(g).await.unwrap().is_empty());
    assert_eq!(s.sender_key_devices("g2@g.us").await.unwrap().len(), 1);
}

/// App-state sync keys and collection versions.
pub async fn app_state(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    s.put_app_state_sync_key("AAAAAQ", b"key-1").await.unwrap();
    s.put_app_state_sync_key("AAAAAA", b"key-0").await.unwrap();
    assert_eq!(
        s.get_app_state_sync_key("AAAAAQ").await.unwrap(),
        b(b"key-1")
    );
    let keys: Vec<String> = s
        .app_state_sync_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec!["AAAAAA".to_owned(), "AAAAAQ".to_owned()]);
    for c in ["critical_block", "regular_high", "regular"] {
        s.put_app_state_version(c, c.as_bytes()).await.unwrap();
    }
    assert_eq!(
        s.get_app_state_version("regular_high").await.unwrap(),
        b(b"regular_high")
    );
    s.delete_app_state_version("regular_high").await.unwrap();
    assert_eq!(s.get_app_state_version("regular_high").await.unwrap(), None);
    assert_eq!(
        s.get_app_state_version("regular").await.unwrap(),
        b(b"regular")
    );
}

/// LID <-> PN mappings in both directions.
pub async fn lid_mappings(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    assert_eq!(s.lid_for_pn("15550001").await.unwrap(), None);
    s.put_lid_mapping("15550001", "98765432101234")
        .await
        .unwrap();
    assert_eq!(
        s.lid_for_pn("15550001").await.unwrap().as_deref(),
        Some("98765432101234")
    );
    assert_eq!(
        s.pn_for_lid("98765432101234").await.unwrap().as_deref(),
        Some("15550001")
    );
    assert_eq!(s.pn_for_lid("15550001").await.unwrap(), None);
}

/// Sent-message buffer: keep, look up, delete, prune by age.
pub async fn sent_messages(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let chat = "15550001@s.whatsapp.net";
    s.put_sent_message(chat, "OLD1", b"m1", 1000).await.unwrap();
    s.put_sent_message("g@g.us", "OLD2", b"m2", 1500)
        .await
        .unwrap();
    s.put_sent_message(chat, "NEW", b"m3", 3000).await.unwrap();
    assert_eq!(s.get_sent_message(chat, "OLD1").await.unwrap(), b(b"m1"));
    assert_eq!(s.get_sent_message("g@g.us", "OLD1").await.unwrap(), None);
    s.prune_sent_messages(2000).await.unwrap();
    assert_eq!(s.get_sent_message(chat, "OLD1").await.unwrap(), None);
    assert_eq!(s.get_sent_message("g@g.us", "OLD2").await.unwrap(), None);
    assert_eq!(s.get_sent_message(chat, "NEW").await.unwrap(), b(b"m3"));
    s.delete_sent_message(chat, "NEW").await.unwrap();
    assert_eq!(s.get_sent_message(chat, "NEW").await.unwrap(), None);
}

/// Processed-message markers: written in a batch with a session, looked up by chat, id
/// and sender, pruned by age.
pub async fn processed_messages(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let chat = "15550001@s.whatsapp.net";
    let sender = "15550001:2@s.whatsapp.net";
    assert!(!s.is_message_processed(chat, "ID1", sender).await.unwrap());
    let mut batch = Batch::new();
    batch
        .put_session("15550001", 2, b"advanced")
        .mark_message_processed(chat, "ID1", sender, 1000)
        .mark_message_processed(chat, "ID2", sender, 3000);
    s.commit(batch).await.unwrap();
    assert!(s.is_message_processed(chat, "ID1", sender).await.unwrap());
    assert!(
        !s.is_message_processed(chat, "ID1", "15550001:3@s.whatsapp.net")
            .await
            .unwrap()
    );
    assert!(
        !s.is_message_processed("g@g.us", "ID1", sender)
            .await
            .unwrap()
    );
    assert_eq!(s.get_session("15550001", 2).await.unwrap(), b(b"advanced"));
    // Many at once, in the order asked.
    let many = s
        .are_messages_processed(&[
            (chat, "ID2", sender),
            ("g@g.us", "ID1", sender),
            (chat, "ID1", sender),
            (chat, "ID1", "15550001:3@s.whatsapp.net"),
        ])
        .await
        .unwrap();
    let many: Vec<bool> = many.into_iter().map(Result::unwrap).collect();
    assert_eq!(many, [true, false, true, false]);
    // By any sender: the id must match whole, in that chat only.
    assert!(s.is_message_processed_by_anyone(chat, "ID1").await.unwrap());
    assert!(!s.is_message_processed_by_anyone(chat, "ID").await.unwrap());
    assert!(
        !s.is_message_processed_by_anyone("g@g.us", "ID1")
            .await
            .unwrap()
    );
    s.prune_processed_messages(2000).await.unwrap();
    assert!(!s.is_message_processed(chat, "ID1", sender).await.unwrap());
    assert!(s.is_message_processed(chat, "ID2", sender).await.unwrap());
}

/// Contacts and push names.
pub async fn contacts(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    s.put_contact("2@s.whatsapp.net", b"Bob").await.unwrap();
    s.put_contact("1@s.whatsapp.net", b"Alice").await.unwrap();
    s.put_contact("1@s.whatsapp.net", "Álice 🙂".as_bytes())
        .await
        .unwrap();
    assert_eq!(
        s.get_contact("1@s.whatsapp.net").await.unwrap(),
        b("Álice 🙂".as_bytes())
    );
    let all = s.contacts().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].0, "1@s.whatsapp.net");
}

/// Chat settings: absent, stored, replaced, listed by JID per setting, deleted, and kept
/// apart from other settings and from contacts stored under the same JID.
pub async fn chat_settings(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let chat = "120363000000000001@g.us";
    assert_eq!(s.get_chat_setting("archive", chat).await.unwrap(), None);
    let mut batch = Batch::new();
    batch
        .put_chat_setting("archive", chat, b"1")
        .put_chat_setting("archive", "1@s.whatsapp.net", b"0")
        .put_chat_setting("mute", chat, b"forever")
        .put_contact("1@s.whatsapp.net", b"Alice");
    s.commit(batch).await.unwrap();
    let mut batch = Batch::new();
    batch.put_chat_setting("archive", chat, b"0");
    s.commit(batch).await.unwrap();
    assert_eq!(s.get_chat_setting("archive", chat).await.unwrap(), b(b"0"));
    assert_eq!(
        s.get_chat_setting("mute", chat).await.unwrap(),
        b(b"forever")
    );
    let all = s.chat_settings("archive").await.unwrap();
    let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, [chat, "1@s.whatsapp.net"], "in key order");
    let mut batch = Batch::new();
    batch.delete_chat_setting("archive", "1@s.whatsapp.net");
    s.commit(batch).await.unwrap();
    assert_eq!(s.chat_settings("archive").await.unwrap().len(), 1);
    assert_eq!(s.chat_settings("mute").await.unwrap().len(), 1);
    assert_eq!(
        s.get_contact("1@s.whatsapp.net").await.unwrap(),
        b(b"Alice"),
        "the contact under the same JID is untouched"
    );
}

/// Privacy-token records: absent, stored, replaced, pruned by the later of their two
/// timestamps, and a damaged record is a typed error for that contact only.
pub async fn privacy_tokens(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let lid = "100000001@lid";
    assert_eq!(s.get_privacy_token(lid).await.unwrap(), None);
    let issued = PrivacyToken {
        token: vec![1, 2, 3, 0, 255],
        timestamp: 1_000,
        sender_timestamp: 0,
    };
    s.put_privacy_token(lid, &issued).await.unwrap();
    assert_eq!(
        s.get_privacy_token(lid).await.unwrap().as_ref(),
        Some(&issued)
    );
    // Our own issuance recorded later keeps the record alive past its token's time.
    let both = PrivacyToken {
        sender_timestamp: 3_000,
        ..issued.clone()
    };
    s.put_privacy_token(lid, &both).await.unwrap();
    let other = "15550002@s.whatsapp.net";
    let old = PrivacyToken {
        token: b"old".to_vec(),
        timestamp: 500,
        sender_timestamp: 900,
    };
    s.put_privacy_token(other, &old).await.unwrap();
    s.prune_privacy_tokens(2_000).await.unwrap();
    assert_eq!(s.get_privacy_token(other).await.unwrap(), None);
    assert_eq!(
        s.get_privacy_token(lid).await.unwrap().as_ref(),
        Some(&both)
    );
    backend
        .commit(
            s.account(),
            vec![Op::Put {
                role: Role::PrivacyToken,
                scope: String::new(),
                key: other.into(),
                value: crate::seal(b"\x09short"),
                at: 0,
            }],
        )
        .await
        .unwrap();
    assert!(matches!(
        s.get_privacy_token(other).await,
        Err(Error::Corrupt { role: Role::PrivacyToken, ref key, .. }) if key == other
    ));
    assert_eq!(
        s.get_privacy_token(lid).await.unwrap().as_ref(),
        Some(&both)
    );
}

/// Message secrets: found by chat, id and creator only, pruned by time, and a stored
/// value of the wrong length is a typed error.
pub async fn message_secrets(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let (chat, creator) = ("15550002@s.whatsapp.net", "15550002@s.whatsapp.net");
    assert!(
        s.get_message_secret(chat, "P1", creator)
            .await
            .unwrap()
            .is_none()
    );
    let mut batch = Batch::new();
    batch
        .put_message_secret(chat, "P1", creator, &[1; 32], 1_000)
        .put_message_secret(chat, "P2", creator, &[2; 32], 3_000)
        .put_message_secret("g@g.us", "P1", "1@lid", &[3; 32], 3_000);
    s.commit(batch).await.unwrap();
    let get = |chat: &'static str, id: &'static str, creator: &'static str| {
        let s = s.clone();
        async move {
            s.get_message_secret(chat, id, creator)
                .await
                .unwrap()
                .map(|k| *k)
        }
    };
    assert_eq!(get(chat, "P1", creator).await, Some([1; 32]));
    assert_eq!(get(chat, "P2", creator).await, Some([2; 32]));
    assert_eq!(get("g@g.us", "P1", "1@lid").await, Some([3; 32]));
    assert_eq!(get(chat, "P1", "1@lid").await, None);
    assert_eq!(get("g@g.us", "P1", creator).await, None);
    assert_eq!(get(chat, "P", creator).await, None);
    s.prune_message_secrets(2_000).await.unwrap();
    assert_eq!(get(chat, "P1", creator).await, None);
    assert_eq!(get(chat, "P2", creator).await, Some([2; 32]));
    backend
        .commit(
            s.account(),
            vec![Op::Put {
                role: Role::MessageSecret,
                scope: chat.into(),
                key: format!("P3 {creator}"),
                value: crate::seal(&[4; 31]),
                at: 4_000,
            }],
        )
        .await
        .unwrap();
    let err = s.get_message_secret(chat, "P3", creator).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Corrupt {
                role: Role::MessageSecret,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(get(chat, "P2", creator).await, Some([2; 32]));
}

/// Inbox entries: listed in key order, deleted one by one, pruned by time, and a damaged
/// entry is a typed error of its own that hides no other entry.
pub async fn inbox(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    assert!(s.inbox().await.unwrap().is_empty());
    let mut batch = Batch::new();
    batch
        .put_inbox("0002", b"second", 2_000)
        .put_inbox("0001", b"first", 1_000)
        .put_inbox("0003", b"third", 3_000);
    s.commit(batch).await.unwrap();
    let listed = |v: Vec<(String, crate::Result<Bytes>)>| -> Vec<(String, Vec<u8>)> {
        v.into_iter()
            .map(|(k, r)| (k, r.unwrap().to_vec()))
            .collect()
    };
    assert_eq!(
        listed(s.inbox().await.unwrap()),
        vec![
            ("0001".to_owned(), b"first".to_vec()),
            ("0002".to_owned(), b"second".to_vec()),
            ("0003".to_owned(), b"third".to_vec()),
        ]
    );
    let mut batch = Batch::new();
    batch.delete_inbox("0002").prune_inbox(1_500);
    s.commit(batch).await.unwrap();
    assert_eq!(
        listed(s.inbox().await.unwrap()),
        vec![("0003".to_owned(), b"third".to_vec())]
    );
    backend
        .commit(
            s.account(),
            vec![Op::Put {
                role: Role::Inbox,
                scope: String::new(),
                key: "0004".into(),
                value: Bytes::from_static(b"\x01not sealed"),
                at: 4_000,
            }],
        )
        .await
        .unwrap();
    let all = s.inbox().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].0, "0003");
    assert_eq!(all[0].1.as_deref().unwrap(), b"third");
    assert_eq!(all[1].0, "0004");
    assert!(matches!(
        &all[1].1,
        Err(Error::Corrupt { role: Role::Inbox, key, .. }) if key == "0004"
    ));
}

/// Values are opaque bytes: empty, every byte value, large; keys are UTF-8.
pub async fn values_are_binary_safe(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let all: Vec<u8> = (0..=255).collect();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    s.put_session("ü@s.whatsapp.net", 0, &[]).await.unwrap();
    s.put_session("ü@s.whatsapp.net", 1, &all).await.unwrap();
    s.put_session("ü@s.whatsapp.net", 2, &big).await.unwrap();
    assert_eq!(s.get_session("ü@s.whatsapp.net", 0).await.unwrap(), b(&[]));
    assert_eq!(s.get_session("ü@s.whatsapp.net", 1).await.unwrap(), b(&all));
    assert_eq!(s.get_session("ü@s.whatsapp.net", 2).await.unwrap(), b(&big));
}

/// Two accounts with identical keys never see each other; deleting one leaves the other.
pub async fn accounts_are_isolated(backend: Arc<dyn Backend>) {
    let a = store(&backend);
    let b2 = store(&backend);
    a.put_session("u", 1, b"from a").await.unwrap();
    b2.put_session("u", 1, b"from b").await.unwrap();
    a.put_contact("c", b"a").await.unwrap();
    a.save_creds(&AuthCreds::generate(&mut OsRng))
        .await
        .unwrap();
    b2.save_creds(&AuthCreds::generate(&mut OsRng))
        .await
        .unwrap();
    assert_eq!(a.get_session("u", 1).await.unwrap(), b(b"from a"));
    assert_eq!(b2.get_session("u", 1).await.unwrap(), b(b"from b"));
    assert_eq!(b2.get_contact("c").await.unwrap(), None);
    // A prune is the account's own.
    a.put_sent_message("chat", "OLD", b"a's", 100)
        .await
        .unwrap();
    b2.put_sent_message("chat", "OLD", b"b's", 100)
        .await
        .unwrap();
    a.prune_sent_messages(200).await.unwrap();
    assert_eq!(a.get_sent_message("chat", "OLD").await.unwrap(), None);
    assert_eq!(b2.get_sent_message("chat", "OLD").await.unwrap(), b(b"b's"));
    a.delete_account().await.unwrap();
    assert_eq!(a.get_session("u", 1).await.unwrap(), None);
    assert!(a.load_creds().await.unwrap().is_none());
    assert_eq!(a.get_contact("c").await.unwrap(), None);
    assert_eq!(b2.get_session("u", 1).await.unwrap(), b(b"from b"));
    assert!(b2.load_creds().await.unwrap().is_some());
    let accounts = backend.accounts().await.unwrap();
    assert!(!accounts.contains(a.account()));
    assert!(accounts.contains(b2.account()));
}

/// One batch writes several roles ("session updated + pre-key consumed + message kept +
/// creds saved") and all of it is visible afterwards.
pub async fn batch_spans_roles(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    s.put_pre_keys(&[(5, b"pk5"), (6, b"pk6")]).await.unwrap();
    let mut creds = AuthCreds::generate(&mut OsRng);
    creds.next_pre_key_id = 7;
    let mut batch = Batch::new();
    batch
        .put_session("u", 3, b"sess")
        .put_identity("u", 3, b"ident")
        .consume_pre_key(5)
        .put_sent_message("u", "ID1", b"msg", 100)
        .put_lid_mapping("pn", "lid")
        .mark_sender_key_sent("g@g.us", &["u:3@s.whatsapp.net"])
        .save_creds(&creds);
    s.commit(batch).await.unwrap();
    assert_eq!(s.get_session("u", 3).await.unwrap(), b(b"sess"));
    assert_eq!(s.get_identity("u", 3).await.unwrap(), b(b"ident"));
    assert_eq!(s.get_pre_key(5).await.unwrap(), None);
    assert_eq!(s.get_pre_key(6).await.unwrap(), b(b"pk6"));
    assert_eq!(s.get_sent_message("u", "ID1").await.unwrap(), b(b"msg"));
    assert_eq!(s.lid_for_pn("pn").await.unwrap().as_deref(), Some("lid"));
    assert_eq!(s.sender_key_devices("g@g.us").await.unwrap().len(), 1);
    assert_eq!(s.load_creds().await.unwrap().unwrap().next_pre_key_id, 7);
    // An empty batch is a no-op.
    s.commit(Batch::new()).await.unwrap();
}

/// A batch whose precondition fails after several writes leaves nothing behind, including
/// overwrites and deletes it made before the failure.
pub async fn failed_batch_rolls_back(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    s.put_session("u", 1, b"before").await.unwrap();
    s.put_contact("c", b"kept").await.unwrap();
    s.mark_sender_key_sent("g@g.us", &["d1".to_owned(), "d2".to_owned()])
        .await
        .unwrap();
    s.put_pre_keys(&[(9, b"pk9")]).await.unwrap();
    let mut batch = Batch::new();
    batch
        .put_session("u", 1, b"after")
        .put_session("u", 2, b"new")
        .delete_contact("c")
        .forget_sender_key_memory("g@g.us")
        .consume_pre_key(9)
        .consume_pre_key(404)
        .put_contact("late", b"never");
    let err = s.commit(batch).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Conflict {
                role: Role::PreKey,
                expected: "present",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(s.get_session("u", 1).await.unwrap(), b(b"before"));
    assert_eq!(s.get_session("u", 2).await.unwrap(), None);
    assert_eq!(s.get_contact("c").await.unwrap(), b(b"kept"));
    assert_eq!(s.get_contact("late").await.unwrap(), None);
    assert_eq!(s.sender_key_devices("g@g.us").await.unwrap().len(), 2);
    assert_eq!(s.get_pre_key(9).await.unwrap(), b(b"pk9"));
    // require_absent fails the same way.
    let mut b2 = Batch::new();
    b2.put_session("u", 7, b"x")
        .require_absent(Role::Session, "u", "1");
    assert!(matches!(
        s.commit(b2).await,
        Err(Error::Conflict {
            expected: "absent",
            ..
        })
    ));
    assert_eq!(s.get_session("u", 7).await.unwrap(), None);
    // A prune by age and a cleared scope come back whole too, across scopes.
    s.put_sent_message("a@s.whatsapp.net", "OLD", b"m1", 1000)
        .await
        .unwrap();
    s.put_sent_message("g@g.us", "OLD", b"m2", 1000)
        .await
        .unwrap();
    let mut b4 = Batch::new();
    b4.prune_sent_messages(2000)
        .put_sent_message("g@g.us", "NEW", b"m3", 3000)
        .put_session("u", 1, b"after")
        .delete_session("u", 1)
        .put_session("u", 3, b"three")
        .delete_all_sessions("u")
        .consume_pre_key(404);
    assert!(matches!(s.commit(b4).await, Err(Error::Conflict { .. })));
    let sent = |chat: &'static str, id: &'static str| {
        let s = s.clone();
        async move { s.get_sent_message(chat, id).await.unwrap() }
    };
    assert_eq!(sent("a@s.whatsapp.net", "OLD").await, b(b"m1"));
    assert_eq!(sent("g@g.us", "OLD").await, b(b"m2"));
    assert_eq!(sent("g@g.us", "NEW").await, None);
    assert_eq!(s.get_session("u", 1).await.unwrap(), b(b"before"));
    assert_eq!(s.get_session("u", 3).await.unwrap(), None);
    // Over-long keys are refused before reaching the backend.
    let mut b3 = Batch::new();
    b3.put_contact(&"x".repeat(crate::MAX_KEY_LEN + 1), b"");
    assert!(matches!(s.commit(b3).await, Err(Error::InvalidInput(_))));
}

/// Eight tasks hammer one account with multi-role batches and reads; every batch is seen
/// whole by every reader and everything written is there at the end.
pub async fn concurrent_writers(backend: Arc<dyn Backend>) {
    const TASKS: u32 = 8;
    const ROUNDS: u32 = 40;
    let s = store(&backend);
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            for r in 0..ROUNDS {
                let v = format!("{t}-{r}");
                let mut batch = Batch::new();
                batch
                    .put_session("shared", t, v.as_bytes())
                    .put_sender_key("g@g.us", &format!("t{t}"), v.as_bytes())
                    .put_contact(&format!("c{t}-{r}"), v.as_bytes());
                s.commit(batch).await.unwrap();
                // Read another task's pair: both halves must come from the same batch.
                let other = (t + 1) % TASKS;
                let a = s.get_session("shared", other).await.unwrap();
                let b = s
                    .get_sender_key("g@g.us", &format!("t{other}"))
                    .await
                    .unwrap();
                if let (Some(a), Some(b)) = (&a, &b) {
                    // Both items always carry the same round, and `b` was read after
                    // `a`, so it can be newer but never older.
                    let ord = |x: &Bytes| -> u32 {
                        std::str::from_utf8(x)
                            .unwrap()
                            .split('-')
                            .nth(1)
                            .unwrap()
                            .parse()
                            .unwrap()
                    };
                    assert!(ord(b) >= ord(a), "torn read: {a:?} then {b:?}");
                }
                let mine = s.get_session("shared", t).await.unwrap();
                assert_eq!(mine.as_deref(), Some(v.as_bytes()));
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(
        s.session_devices("shared").await.unwrap().len(),
        TASKS as usize
    );
    let contacts = s.contacts().await.unwrap();
    assert_eq!(contacts.len(), (TASKS * ROUNDS) as usize);
    for t in 0..TASKS {
        let last = format!("{t}-{}", ROUNDS - 1);
        assert_eq!(
            s.get_session("shared", t).await.unwrap(),
            b(last.as_bytes())
        );
        assert_eq!(
            s.get_sender_key("g@g.us", &format!("t{t}")).await.unwrap(),
            b(last.as_bytes())
        );
    }
}

/// Eight tasks race to consume the same pre-keys: each pre-key is consumed exactly once,
/// and the session written with it exists exactly for the winner.
pub async fn pre_key_consumed_once(backend: Arc<dyn Backend>) {
    const TASKS: u32 = 8;
    const KEYS: u32 = 25;
    let s = store(&backend);
    let values: Vec<(u32, Vec<u8>)> = (0..KEYS).map(|i| (i, vec![1; 8])).collect();
    let refs: Vec<(u32, &[u8])> = values.iter().map(|(i, v)| (*i, v.as_slice())).collect();
    s.put_pre_keys(&refs).await.unwrap();
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for k in 0..KEYS {
                let mut batch = Batch::new();
                batch
                    .consume_pre_key(k)
                    .put_session(&format!("winner-of-{k}"), t, b"s");
                match s.commit(batch).await {
                    Ok(()) => won.push(k),
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
            won
        }));
    }
    let mut winners: BTreeMap<u32, u32> = BTreeMap::new();
    for h in handles {
        for k in h.await.unwrap() {
            *winners.entry(k).or_default() += 1;
        }
    }
    assert_eq!(winners.len(), KEYS as usize);
    assert!(winners.values().all(|&n| n == 1), "{winners:?}");
    for k in 0..KEYS {
        assert_eq!(
            s.session_devices(&format!("winner-of-{k}"))
                .await
                .unwrap()
                .len(),
            1
        );
    }
    assert!(s.pre_key_ids().await.unwrap().is_empty());
}

/// A damaged item (written raw, bypassing the envelope) gives a typed error for that item
/// only; the rest of the account, creds included, still loads. Damaged creds do the same.
pub async fn corrupt_item_is_typed_and_isolated(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let creds = AuthCreds::generate(&mut OsRng);
    s.save_creds(&creds).await.unwrap();
    s.put_session("u", 1, b"good").await.unwrap();
    s.put_contact("x", b"good contact").await.unwrap();
    let raw = |role, scope: &str, key: &str, value: &'static [u8]| Op::Put {
        role,
        scope: scope.into(),
        key: key.into(),
        value: Bytes::from_static(value),
        at: 0,
    };
    backend
        .commit(
            s.account(),
            vec![raw(
                Role::Session,
                "u",
                "2",
                b"\x01garbage that fails the checksum",
            )],
        )
        .await
        .unwrap();
    let err = s.get_session("u", 2).await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { role: Role::Session, scope, key, .. } if scope == "u" && key == "2"),
        "{err:?}"
    );
    assert_eq!(s.get_session("u", 1).await.unwrap(), b(b"good"));
    assert_eq!(s.session_devices("u").await.unwrap(), vec![1, 2]);
    assert_eq!(s.load_creds().await.unwrap().as_ref(), Some(&creds));
    // Damaged creds: a valid envelope around bytes that are not credentials.
    backend
        .commit(
            s.account(),
            vec![Op::Put {
                role: Role::Creds,
                scope: String::new(),
                key: String::new(),
                value: crate::seal(b"\x08\x07not creds"),
                at: 0,
            }],
        )
        .await
        .unwrap();
    assert!(matches!(
        s.load_creds().await,
        Err(Error::Corrupt {
            role: Role::Creds,
            ..
        })
    ));
    assert_eq!(s.get_contact("x").await.unwrap(), b(b"good contact"));
    // The damaged item can be replaced.
    s.put_session("u", 2, b"repaired").await.unwrap();
    assert_eq!(s.get_session("u", 2).await.unwrap(), b(b"repaired"));
    s.save_creds(&creds).await.unwrap();
    assert!(s.load_creds().await.unwrap().is_some());
    // A damaged LID mapping (a failed checksum, or a sealed value no user part can be)
    // reads as unknown, so it is learned again; the next write replaces it.
    backend
        .commit(
            s.account(),
            vec![
                raw(Role::LidMapping, "pn", "111", b"\x01not sealed"),
                Op::Put {
                    role: Role::LidMapping,
                    scope: "lid".into(),
                    key: "222".into(),
                    value: crate::seal(b"\xff\x00@:"),
                    at: 0,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(s.lid_for_pn("111").await.unwrap(), None);
    assert_eq!(s.pn_for_lid("222").await.unwrap(), None);
    s.put_lid_mapping("111", "222").await.unwrap();
    assert_eq!(s.lid_for_pn("111").await.unwrap().as_deref(), Some("222"));
    assert_eq!(s.pn_for_lid("222").await.unwrap().as_deref(), Some("111"));
}

/// Deleting a whole scope and the whole account is exact: neighbours are untouched.
pub async fn scope_boundaries(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    // Scopes that are prefixes of each other must not leak into one another.
    s.put_session("u", 1, b"1").await.unwrap();
    s.put_session("u1", 1, b"2").await.unwrap();
    s.put_session("u%", 1, b"3").await.unwrap();
    s.put_session("", 1, b"4").await.unwrap();
    s.put_identity("u", 1, b"5").await.unwrap();
    s.delete_all_sessions("u").await.unwrap();
    let left: BTreeSet<Option<Bytes>> = [
        s.get_session("u1", 1).await.unwrap(),
        s.get_session("u%", 1).await.unwrap(),
        s.get_session("", 1).await.unwrap(),
        s.get_identity("u", 1).await.unwrap(),
    ]
    .into_iter()
    .collect();
    assert_eq!(left.len(), 4);
    assert!(!left.contains(&None));
    assert_eq!(s.session_devices("u%").await.unwrap(), vec![1]);
    assert_eq!(s.get_session("u", 1).await.unwrap(), None);
}

/// Bulk reads answer exactly what single reads answer: in the order asked, absent items
/// as `None`, repeated keys repeated, nothing of another role, scope or account, a
/// damaged item as its own error; and they see the latest commit.
pub async fn get_many_matches_single_reads(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let other = store(&backend);
    let u = "15550001@s.whatsapp.net";
    let big: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    s.put_session(u, 0, b"s0").await.unwrap();
    s.put_session(u, 3, &big).await.unwrap();
    s.put_session("u%", 1, b"percent").await.unwrap();
    s.put_identity(u, 1, b"identity, not a session")
        .await
        .unwrap();
    other.put_session(u, 1, b"other account").await.unwrap();
    assert!(s.get_items(Role::Session, &[]).await.unwrap().is_empty());
    let keys = [
        (u, "3"),
        (u, "1"),
        ("u%", "1"),
        ("u", "1"),
        (u, "0"),
        (u, "3"),
        ("", ""),
    ];
    let want = [b(&big), None, b(b"percent"), None, b(b"s0"), b(&big), None];
    let got: Vec<Option<Bytes>> = s
        .get_items(Role::Session, &keys)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, want);
    for ((scope, key), w) in keys.iter().zip(&want) {
        let device: u32 = key.parse().unwrap_or(u32::MAX);
        if device != u32::MAX {
            assert_eq!(&s.get_session(scope, device).await.unwrap(), w);
        }
    }
    // Many keys in one call, most of them absent.
    let many: Vec<String> = (0..1500).map(|d| d.to_string()).collect();
    let many_keys: Vec<(&str, &str)> = many.iter().map(|k| (u, &k[..])).collect();
    let got = s.get_items(Role::Session, &many_keys).await.unwrap();
    assert_eq!(got.len(), 1500);
    let present: Vec<usize> = got
        .iter()
        .enumerate()
        .filter(|(_, v)| matches!(v, Ok(Some(_))))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(present, vec![0, 3]);
    // A commit is seen by the next bulk read.
    s.put_session(u, 1, b"s1").await.unwrap();
    s.delete_session(u, 0).await.unwrap();
    let got: Vec<Option<Bytes>> = s
        .get_items(Role::Session, &[(u, "0"), (u, "1")])
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, vec![None, b(b"s1")]);
    // A damaged item fails alone.
    backend
        .commit(
            s.account(),
            vec![Op::Put {
                role: Role::Session,
                scope: u.into(),
                key: "7".into(),
                value: Bytes::from_static(b"\x01not an envelope"),
                at: 0,
            }],
        )
        .await
        .unwrap();
    let got = s
        .get_items(Role::Session, &[(u, "1"), (u, "7"), (u, "3")])
        .await
        .unwrap();
    assert_eq!(got[0].as_ref().unwrap(), &b(b"s1"));
    assert!(
        matches!(&got[1], Err(Error::Corrupt { role: Role::Session, key, .. }) if key == "7"),
        "{:?}",
        got[1]
    );
    assert_eq!(got[2].as_ref().unwrap(), &b(&big));
}

/// A batch applies its ops in order: a later write of the same item wins, a delete after
/// a put removes it, a scope delete removes what the batch put before it, and a
/// precondition sees the batch's earlier ops.
pub async fn ops_apply_in_order(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let put = |scope: &str, key: &str, value: &'static [u8]| Op::Put {
        role: Role::Contact,
        scope: scope.into(),
        key: key.into(),
        value: crate::seal(value),
        at: 0,
    };
    let del = |key: &str| Op::Delete {
        role: Role::Contact,
        scope: String::new(),
        key: key.into(),
    };
    let require = |present: bool, key: &str| {
        let (role, scope, key) = (Role::Contact, String::new(), key.to_owned());
        if present {
            Op::RequirePresent { role, scope, key }
        } else {
            Op::RequireAbsent { role, scope, key }
        }
    };
    let mut ops = Vec::new();
    for i in 0..40u8 {
        // Many ops, so a backend that sends them ahead still has to keep their order.
        ops.push(put("", "a", if i % 2 == 0 { b"even" } else { b"odd" }));
    }
    ops.extend([
        put("", "b", b"b"),
        del("b"),
        require(false, "b"),
        del("c"),
        put("", "c", b"c"),
        require(true, "c"),
        put("scoped", "d", b"d"),
        Op::DeleteScope {
            role: Role::Contact,
            scope: "scoped".into(),
        },
        put("scoped", "e", b"e"),
    ]);
    backend.commit(s.account(), ops).await.unwrap();
    assert_eq!(s.get_contact("a").await.unwrap(), b(b"odd"));
    assert_eq!(s.get_contact("b").await.unwrap(), None);
    assert_eq!(s.get_contact("c").await.unwrap(), b(b"c"));
    assert_eq!(
        s.get_item(Role::Contact, "scoped", "d").await.unwrap(),
        None
    );
    assert_eq!(
        s.get_item(Role::Contact, "scoped", "e").await.unwrap(),
        b(b"e")
    );
    // A precondition that fails after earlier writes of the batch undoes them.
    let err = backend
        .commit(
            s.account(),
            vec![
                put("", "f", b"f"),
                del("c"),
                require(true, "c"),
                put("", "g", b"g"),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { key, expected: "present", .. } if key == "c"),
        "{err:?}"
    );
    assert_eq!(s.get_contact("f").await.unwrap(), None);
    assert_eq!(s.get_contact("c").await.unwrap(), b(b"c"));
    assert_eq!(s.get_contact("g").await.unwrap(), None);
}

/// A scope lists in byte order of its keys, whatever order they were written in, with
/// nothing of a neighbouring scope or another role. Keys are any string: control
/// characters, U+0000 included, are stored, read and listed like any other.
pub async fn list_is_in_key_order(backend: Arc<dyn Backend>) {
    let s = store(&backend);
    let account = s.account().clone();
    // Written in a scrambled order; byte order puts "B" before "a", "a" before "a\u{0}",
    // "\u{0}" before "\u{1}" before "\u{1}\u{2}", and "é" (0xC3 0xA9) after "z".
    let keys = [
        "m",
        "a",
        "é",
        "B",
        "z",
        "a\u{0}",
        "10",
        "\u{1}\u{2}",
        "9",
        "\u{1}",
        "a0",
        "\u{0}",
        "a\u{1}",
    ];
    let mut ops: Vec<Op> = keys
        .iter()
        .map(|k| Op::Put {
            role: Role::Contact,
            scope: "chat".into(),
            key: (*k).into(),
            value: crate::seal(k.as_bytes()),
            at: 0,
        })
        .collect();
    ops.push(Op::Put {
        role: Role::Contact,
        scope: "chat2".into(),
        key: "0".into(),
        value: crate::seal(b"other scope"),
        at: 0,
    });
    ops.push(Op::Put {
        role: Role::ChatSetting,
        scope: "chat".into(),
        key: "0".into(),
        value: crate::seal(b"other role"),
        at: 0,
    });
    backend.commit(&account, ops).await.unwrap();
    let listed = s.list_items(Role::Contact, "chat").await.unwrap();
    let mut want: Vec<&str> = keys.to_vec();
    want.sort_unstable();
    let got: Vec<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(got, want);
    for (k, v) in &listed {
        assert_eq!(v.as_ref(), k.as_bytes());
    }
    // Read one by one and in bulk, then removed, through those same keys.
    for k in keys {
        let got = backend
            .get(&account, Role::Contact, "chat", k)
            .await
            .unwrap();
        assert_eq!(
            got.map(|v| crate::open(Role::Contact, "chat", k, v).unwrap()),
            b(k.as_bytes())
        );
    }
    let asked: Vec<(&str, &str)> = keys.iter().map(|k| ("chat", *k)).collect();
    let many = backend
        .get_many(&account, Role::Contact, &asked)
        .await
        .unwrap();
    assert!(many.iter().all(Option::is_some));
    backend
        .commit(
            &account,
            vec![
                Op::Delete {
                    role: Role::Contact,
                    scope: "chat".into(),
                    key: "\u{0}".into(),
                },
                Op::RequireAbsent {
                    role: Role::Contact,
                    scope: "chat".into(),
                    key: "\u{0}".into(),
                },
                Op::RequirePresent {
                    role: Role::Contact,
                    scope: "chat".into(),
                    key: "\u{1}".into(),
                },
            ],
        )
        .await
        .unwrap();
    let left = s.list_items(Role::Contact, "chat").await.unwrap();
    assert_eq!(left.len(), keys.len() - 1);
    assert!(left.iter().all(|(k, _)| k != "\u{0}"));
    // A scope with U+0000 in it is a scope of its own.
    s.put_session("u\u{0}", 1, b"nul").await.unwrap();
    assert_eq!(s.get_session("u\u{0}", 1).await.unwrap(), b(b"nul"));
    assert_eq!(s.get_session("u", 1).await.unwrap(), None);
    assert_eq!(s.session_devices("u\u{0}").await.unwrap(), vec![1]);
}

/// Runs the whole conformance suite against a backend, one `#[tokio::test]` per property.
///
/// The argument is an expression evaluating to a future of
/// `Option<Arc<dyn wa_store::Backend>>`; `None` skips (the factory should say why). The
/// calling crate needs `tokio` with the `macros` and `rt-multi-thread` features as a
/// dev-dependency.
#[macro_export]
macro_rules! backend_conformance_tests {
    ($make:expr) => {
        $crate::backend_conformance_tests!(@each $make;
            creds_round_trip, sessions, identities, pre_keys, signed_pre_keys, sender_keys,
            sender_key_memory, app_state, lid_mappings, sent_messages, processed_messages, contacts,
            chat_settings, privacy_tokens, inbox, message_secrets, values_are_binary_safe, accounts_are_isolated, batch_spans_roles,
            failed_batch_rolls_back, concurrent_writers, pre_key_consumed_once,
            corrupt_item_is_typed_and_isolated, scope_boundaries, get_many_matches_single_reads,
            ops_apply_in_order, list_is_in_key_order,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let backend: ::std::option::Option<::std::sync::Arc<dyn $crate::Backend>> =
                    $make.await;
                if let ::std::option::Option::Some(backend) = backend {
                    $crate::testing::$name(backend).await;
                }
            }
        )*
    };
}
