//! Import of an auth folder written by Baileys 7.0.0-rc14 (tests/vectors/NOTE.md).

use std::path::PathBuf;
use std::sync::Arc;

use prost::Message as _;
use serde_json::Value;
use wa_signal::{CiphertextType, ProtocolAddress};
use wa_store::baileys::{import_baileys_auth, read_baileys_auth};
use wa_store::{
    AccountId, AccountStore, AppStateStore as _, CredsStore as _, LidMappingStore as _,
    MemoryBackend, PreKeyStore as _, SenderKeyMemoryStore as _,
};

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/baileys_auth")
}

/// The folder of the peer the fixture's account talked to.
fn peer_folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/baileys_auth_peer")
}

fn expect() -> Value {
    serde_json::from_str(include_str!("vectors/baileys_auth_expect.json")).unwrap()
}

fn store() -> AccountStore {
    AccountStore::new(
        Arc::new(MemoryBackend::new()),
        AccountId::new("imported").unwrap(),
    )
}

fn files() -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(folder())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The `AppStateSyncKeyData` fields the test reads back.
#[derive(Clone, PartialEq, prost::Message)]
struct KeyData {
    #[prost(bytes = "vec", optional, tag = "1")]
    key_data: Option<Vec<u8>>,
    #[prost(int64, optional, tag = "3")]
    timestamp: Option<i64>,
}

#[tokio::test]
async fn a_baileys_folder_becomes_a_working_account() {
    let store = store();
    let report = import_baileys_auth(&folder(), &store).await.unwrap();
    let want = expect();
    let creds = store.load_creds().await.unwrap().expect("creds stored");
    assert_eq!(creds, report.creds);

    assert_eq!(
        hex::encode(creds.identity_key.public.as_bytes()),
        want["identityPublic"].as_str().unwrap()
    );
    assert!(creds.signed_pre_key.verify(&creds.identity_key.public));
    assert_eq!(
        u64::from(creds.signed_pre_key.id),
        want["signedPreKeyId"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(creds.registration_id),
        want["registrationId"].as_u64().unwrap()
    );
    assert_eq!(creds.jid.as_deref(), Some("15550001111:7@s.whatsapp.net"));
    assert_eq!(creds.lid.as_deref(), Some("100000000000011:7@lid"));
    assert_eq!(creds.push_name.as_deref(), Some("Ann"));
    assert_eq!(creds.platform.as_deref(), Some("android"));
    assert!(creds.registered);
    assert_eq!(creds.routing_info.as_deref(), Some(&[8u8, 5, 8, 12][..]));
    assert_eq!(creds.next_pre_key_id, 4);
    assert_eq!(creds.last_prop_hash.as_deref(), Some("2V77qU"));
    assert_eq!(
        hex::encode(creds.account.as_deref().unwrap()),
        want["accountHex"].as_str().unwrap()
    );
    // Baileys names the key by its id in base64 ("AAAAAAAB"); the store by hex.
    assert_eq!(creds.my_app_state_key_id.as_deref(), Some("000000000001"));

    assert_eq!(report.pre_keys, 3);
    for (id, public) in want["preKeyPublics"].as_object().unwrap() {
        let id: u32 = id.parse().unwrap();
        let stored = store
            .get_pre_key(id)
            .await
            .unwrap()
            .expect("pre-key stored");
        let record = wa_signal::PreKeyRecord::deserialize(&stored).unwrap();
        assert_eq!(record.id, id);
        assert_eq!(
            hex::encode(record.key_pair.public.as_bytes()),
            public.as_str().unwrap()
        );
    }

    assert_eq!(report.app_state_keys, 1);
    let key = store
        .get_app_state_sync_key("000000000001")
        .await
        .unwrap()
        .expect("app-state key stored");
    let key = KeyData::decode(key.as_ref()).unwrap();
    assert_eq!(key.key_data, Some(vec![9u8; 32]));
    assert_eq!(key.timestamp, Some(1_700_000_000_000));

    assert_eq!(report.lid_mappings, 1);
    assert_eq!(
        store.lid_for_pn("15550002222").await.unwrap().as_deref(),
        Some("100000000000022")
    );
    // A session file that is not a session record is reported, not fatal.
    assert_eq!(report.skipped, ["session-15550009999.0.json"]);
    assert_eq!(report.sessions, 1);
    assert_eq!(report.sender_keys, 2);
    assert_eq!(report.sender_key_memories, 1);
    let mut have = store
        .sender_key_devices("120363000000000001@g.us")
        .await
        .unwrap();
    have.sort();
    assert_eq!(
        have,
        ["15550002222@s.whatsapp.net", "15550003333:2@s.whatsapp.net"]
    );
    assert_eq!(report.app_state_versions, 1);

    // A second import into the same account is refused and changes nothing.
    assert!(import_baileys_auth(&folder(), &store).await.is_err());
    assert_eq!(store.load_creds().await.unwrap().as_ref(), Some(&creds));
}

/// `creds.json` edited with `f`, with the other files as they are.
fn with_creds(f: impl FnOnce(&mut Value)) -> Vec<(String, Vec<u8>)> {
    let mut files = files();
    let creds = files.iter_mut().find(|(n, _)| n == "creds.json").unwrap();
    let mut v: Value = serde_json::from_slice(&creds.1).unwrap();
    f(&mut v);
    creds.1 = serde_json::to_vec(&v).unwrap();
    files
}

#[test]
fn inconsistent_or_missing_credentials_are_refused() {
    assert!(read_baileys_auth(&files()).is_ok());
    // A public key that is not the private key's.
    let swapped = with_creds(|v| {
        v["signedIdentityKey"]["public"] = v["noiseKey"]["public"].clone();
    });
    assert!(read_baileys_auth(&swapped).is_err());
    // A signed pre-key the identity key did not sign.
    let unsigned = with_creds(|v| {
        v["signedPreKey"]["signature"] = v["signedPreKey"]["signature"]
            .as_object()
            .map(|_| serde_json::json!({"type": "Buffer", "data": "A".repeat(86) + "=="}))
            .unwrap();
    });
    assert!(read_baileys_auth(&unsigned).is_err());
    // No ADV secret, or registered without `me`.
    assert!(read_baileys_auth(&with_creds(|v| v["advSecretKey"] = Value::Null)).is_err());
    assert!(read_baileys_auth(&with_creds(|v| v["me"] = Value::Null)).is_err());
    // No creds.json at all; garbage in it.
    let without: Vec<_> = files()
        .into_iter()
        .filter(|(n, _)| n != "creds.json")
        .collect();
    assert!(read_baileys_auth(&without).is_err());
    let mut garbage = files();
    garbage
        .iter_mut()
        .find(|(n, _)| n == "creds.json")
        .unwrap()
        .1 = b"{not json".to_vec();
    assert!(read_baileys_auth(&garbage).is_err());
    // A malformed pre-key file.
    let mut bad_pre_key = files();
    bad_pre_key
        .iter_mut()
        .find(|(n, _)| n == "pre-key-1.json")
        .unwrap()
        .1 = b"{}".to_vec();
    assert!(read_baileys_auth(&bad_pre_key).is_err());
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

async fn repository(
    store: &AccountStore,
) -> wa_signal::SignalRepository<wa_store::SignalStoreAdapter, rand::rngs::OsRng> {
    let adapter = wa_store::SignalStoreAdapter::load(store.clone())
        .await
        .unwrap();
    wa_signal::SignalRepository::new(adapter, rand::rngs::OsRng)
}

fn kind(v: &Value) -> CiphertextType {
    match v["type"].as_str().unwrap() {
        "msg" => CiphertextType::Msg,
        "pkmsg" => CiphertextType::Pkmsg,
        other => panic!("{other}"),
    }
}

/// The sessions and sender keys of both sides of a conversation held by Baileys carry on
/// here: messages Baileys encrypted and never delivered decrypt (a skipped key on a chain
/// libsignal-node closed, a skipped sender-key iteration, keys further along the chains),
/// and the two imported accounts then talk to each other, 1:1 and in the group.
#[tokio::test]
async fn imported_sessions_and_sender_keys_carry_on() {
    let want = expect();
    let (ann_store, bob_store) = (store(), store());
    let report = import_baileys_auth(&folder(), &ann_store).await.unwrap();
    assert_eq!(report.sessions, 1);
    let peer = import_baileys_auth(&peer_folder(), &bob_store)
        .await
        .unwrap();
    assert_eq!(
        (peer.sessions, peer.identities, peer.sender_keys),
        (1, 1, 2)
    );
    assert!(peer.skipped.is_empty(), "{:?}", peer.skipped);
    let (ann, bob) = (repository(&ann_store).await, repository(&bob_store).await);
    // Baileys keeps Ann's session with Bob under Bob's LID, Bob's under Ann's number.
    assert_eq!(want["sessionFiles"][0], "session-100000000000022_1.0.json");
    let bob_addr = ProtocolAddress::new("100000000000022_1", 0);
    let ann_addr = ProtocolAddress::new("15550001111", 7);
    let group = want["group"].as_str().unwrap();

    // The session knows Bob's identity; the import stored it.
    let bob_identity = unhex(&want["peerIdentityPublic"]);
    let info = ann.session_info(&bob_addr).await.unwrap().expect("session");
    assert_eq!(
        u64::from(info.registration_id),
        want["peerRegistrationId"].as_u64().unwrap()
    );
    let stored = wa_signal::IdentityKeyStore::get_identity(ann.store(), &bob_addr)
        .await
        .unwrap()
        .expect("identity stored");
    assert_eq!(stored.as_bytes().as_slice(), bob_identity);

    // b2 was skipped on a chain libsignal-node has since closed; b5 is further along the
    // current one.
    for (label, m) in want["toAnn"].as_object().unwrap() {
        let plain = ann
            .decrypt_message(&bob_addr, kind(m), &unhex(&m["ciphertext"]))
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(plain, label.as_bytes());
    }
    // Each only once.
    let b2 = &want["toAnn"]["b2"];
    assert!(
        ann.decrypt_message(&bob_addr, kind(b2), &unhex(&b2["ciphertext"]))
            .await
            .is_err()
    );
    let a3 = &want["toPeer"]["a3"];
    assert_eq!(
        bob.decrypt_message(&ann_addr, kind(a3), &unhex(&a3["ciphertext"]))
            .await
            .unwrap(),
        b"a3"
    );
    // Now both sides encrypt with the imported chains, and ratchet.
    for round in 0..3 {
        let text = format!("from ann {round}");
        let m = ann
            .encrypt_message(&bob_addr, text.as_bytes())
            .await
            .unwrap();
        assert_eq!(m.kind, CiphertextType::Msg);
        let got = bob
            .decrypt_message(&ann_addr, m.kind, &m.ciphertext)
            .await
            .unwrap();
        assert_eq!(got, text.as_bytes());
        let text = format!("from bob {round}");
        let m = bob
            .encrypt_message(&ann_addr, text.as_bytes())
            .await
            .unwrap();
        let got = ann
            .decrypt_message(&bob_addr, m.kind, &m.ciphertext)
            .await
            .unwrap();
        assert_eq!(got, text.as_bytes());
    }

    // Sender keys: Bob's g-b2 was skipped by Ann, g-b4 is further along; Ann's g-a2 is
    // further along Bob's copy of her chain.
    let bob_sender = ProtocolAddress::new("15550002222", 0);
    for (label, m) in want["groupToAnn"].as_object().unwrap() {
        let plain = ann
            .decrypt_group_message(group, &bob_sender, &unhex(m))
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(plain, label.as_bytes());
    }
    let ga2 = unhex(&want["groupToPeer"]["g-a2"]);
    assert_eq!(
        bob.decrypt_group_message(group, &ann_addr, &ga2)
            .await
            .unwrap(),
        b"g-a2"
    );
    // Ann's own sending state came over: members that had her key read her next message
    // without a new distribution message, and the same for Bob.
    for (from, to, sender, text) in [
        (&ann, &bob, &ann_addr, &b"g-a3"[..]),
        (&bob, &ann, &bob_sender, &b"g-b5"[..]),
    ] {
        let m = from
            .encrypt_group_message(group, sender, text)
            .await
            .unwrap();
        let got = to
            .decrypt_group_message(group, sender, &m.ciphertext)
            .await
            .unwrap();
        assert_eq!(got, text);
    }
}

/// The collection version Baileys kept is stored with its LTHash and value MACs, in the
/// form the app-state layer reads (checked against a patch on top of it in wa-cli's
/// tests).
#[tokio::test]
async fn app_state_versions_come_over() {
    let want = expect();
    let store = store();
    import_baileys_auth(&folder(), &store).await.unwrap();
    let a = &want["appState"];
    let stored = store
        .get_app_state_version(a["collection"].as_str().unwrap())
        .await
        .unwrap()
        .expect("version stored");
    assert_eq!(stored[0], 1);
    assert_eq!(
        u64::from_be_bytes(stored[1..9].try_into().unwrap()),
        a["version"].as_u64().unwrap()
    );
    assert_eq!(&stored[9..137], unhex(&a["hash"]).as_slice());
    let map = a["indexValueMap"].as_object().unwrap();
    let count = u32::from_be_bytes(stored[137..141].try_into().unwrap()) as usize;
    assert_eq!(count, map.len());
    assert_eq!(stored.len(), 141 + 64 * count);
    let mut expected: Vec<_> = map
        .iter()
        .map(|(index, value)| [hex::decode(index).unwrap(), unhex(value)].concat())
        .collect();
    expected.sort();
    assert_eq!(stored[141..], expected.concat());
}

#[test]
fn unreadable_sessions_and_sender_keys_are_skipped_not_fatal() {
    let mut files = files();
    for (name, bytes) in &mut files {
        if name.starts_with("session-100") {
            // A ratchet public key that is not the private key's.
            let mut v: Value = serde_json::from_slice(bytes).unwrap();
            let entry = v["_sessions"]
                .as_object_mut()
                .unwrap()
                .values_mut()
                .next()
                .unwrap();
            entry["currentRatchet"]["ephemeralKeyPair"]["pubKey"] =
                entry["indexInfo"]["baseKey"].clone();
            *bytes = serde_json::to_vec(&v).unwrap();
        } else if name.starts_with("sender-key-") {
            bytes.truncate(bytes.len() / 2);
        }
    }
    let (report, _) = read_baileys_auth(&files).unwrap();
    assert_eq!(
        (
            report.sessions,
            report.sender_keys,
            report.sender_key_memories
        ),
        (0, 0, 0)
    );
    assert_eq!(
        report.skipped,
        [
            "sender-key-120363000000000001@g.us--15550001111--7.json",
            "sender-key-120363000000000001@g.us--15550002222--0.json",
            "sender-key-memory-120363000000000001@g.us.json",
            "session-100000000000022_1.0.json",
            "session-15550009999.0.json"
        ]
    );
    assert_eq!(report.pre_keys, 3);
}
