//! Import of an auth folder written by Baileys 7.0.0-rc14 (tests/vectors/NOTE.md).

use std::path::PathBuf;
use std::sync::Arc;

use prost::Message as _;
use serde_json::Value;
use wa_store::baileys::{import_baileys_auth, read_baileys_auth};
use wa_store::{
    AccountId, AccountStore, AppStateStore as _, CredsStore as _, LidMappingStore as _,
    MemoryBackend, PreKeyStore as _,
};

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/baileys_auth")
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
    assert_eq!(report.skipped, ["session-15550002222.0.json"]);

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
