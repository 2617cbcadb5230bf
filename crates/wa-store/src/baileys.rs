//! Import of a Baileys auth folder (`useMultiFileAuthState`), so a device linked with
//! Baileys keeps working here without being linked again.
//!
//! Carried over: the credentials (`creds.json`: Noise, identity, signed pre-key and
//! pairing keys, registration id, ADV secret, own JID, LID and push name, the signed
//! device identity, pre-key counters, routing info, sync counters), the one-time pre-keys
//! (`pre-key-<id>.json`), the app-state sync keys (`app-state-sync-key-<id>.json`) and the
//! LID mappings (`lid-mapping-<pn>.json`). Not carried over: Signal sessions and sender
//! keys (libsignal-node's record format; the first message of each peer then fails to
//! decrypt and heals through a retry receipt, and our sends start new sessions), app-state
//! versions (collections are synced again from a snapshot), device lists and privacy
//! tokens (fetched again). Their file names are reported in [`BaileysImport::skipped`].
//!
//! The files are JSON written with Baileys' `BufferJSON` (bytes as
//! `{"type":"Buffer","data":"<base64>"}`); protobuf objects inside them may hold bytes as
//! plain base64 strings instead. Both are read.

use std::path::Path;

use base64::Engine as _;
use prost::Message as _;
use serde_json::Value;
use wa_crypto::{KeyPair, Signature};
use zeroize::Zeroizing;

use crate::{AccountStore, AuthCreds, Batch, CredsStore as _, Error, Result, SignedPreKey};

/// Largest file read from a folder, in bytes.
pub const MAX_BAILEYS_FILE: u64 = 1024 * 1024;
/// Most files read from a folder.
pub const MAX_BAILEYS_FILES: usize = 200_000;

/// What an import carried over.
#[derive(Debug)]
#[non_exhaustive]
pub struct BaileysImport {
    /// The credentials, as stored.
    pub creds: AuthCreds,
    /// One-time pre-keys stored.
    pub pre_keys: usize,
    /// App-state sync keys stored.
    pub app_state_keys: usize,
    /// LID mappings stored.
    pub lid_mappings: usize,
    /// Files not carried over (sessions, sender keys, app-state versions and the like),
    /// by name.
    pub skipped: Vec<String>,
}

/// The signed device identity as stored in our credentials (`ADVSignedDeviceIdentity`).
#[derive(Clone, PartialEq, prost::Message)]
struct SignedDeviceIdentity {
    #[prost(bytes = "vec", optional, tag = "1")]
    details: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    account_signature_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    account_signature: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    device_signature: Option<Vec<u8>>,
}

/// `AppStateSyncKeyData`, the stored form of an app-state sync key.
#[derive(Clone, PartialEq, prost::Message)]
struct SyncKeyData {
    #[prost(bytes = "vec", optional, tag = "1")]
    key_data: Option<Vec<u8>>,
    #[prost(message, optional, tag = "2")]
    fingerprint: Option<SyncKeyFingerprint>,
    #[prost(int64, optional, tag = "3")]
    timestamp: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SyncKeyFingerprint {
    #[prost(uint32, optional, tag = "1")]
    raw_id: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    current_index: Option<u32>,
    #[prost(uint32, repeated, packed = "true", tag = "3")]
    device_indexes: Vec<u32>,
}

fn bad(file: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput(format!("Baileys auth file {file}: {}", reason.into()))
}

/// Bytes written by `BufferJSON` (`{"type":"Buffer","data":"<base64>"}`), as a base64
/// string, or as an object of byte values keyed by index.
fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
    match v {
        Value::String(s) => b64(s),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("Buffer") => {
            match o.get("data")? {
                Value::String(s) => b64(s),
                Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
                    .collect(),
                _ => None,
            }
        }
        _ => None,
    }
}

fn u32_of(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn i64_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn str_of(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A key pair `{ private, public }` whose public half must match the private one.
fn key_pair(file: &str, v: &Value, what: &str) -> Result<KeyPair> {
    let private = v
        .get("private")
        .and_then(bytes_of)
        .map(Zeroizing::new)
        .ok_or_else(|| bad(file, format!("{what} without a private key")))?;
    let pair =
        KeyPair::from_private_slice(&private).map_err(|e| bad(file, format!("{what}: {e}")))?;
    if let Some(public) = v.get("public").and_then(bytes_of)
        && wa_crypto::PublicKey::from_slice(&public).ok() != Some(pair.public)
    {
        return Err(bad(
            file,
            format!("{what}: public key does not match the private key"),
        ));
    }
    Ok(pair)
}

/// Hex of an app-state key id given in base64, as the app-state store names keys.
fn key_id_hex(b64: &str) -> Option<String> {
    use std::fmt::Write as _;
    let id = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some(id.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// Reads `creds.json`.
fn creds_from(file: &str, v: &Value) -> Result<AuthCreds> {
    let identity_key = key_pair(
        file,
        v.get("signedIdentityKey").unwrap_or(&Value::Null),
        "identity key",
    )?;
    let spk = v
        .get("signedPreKey")
        .ok_or_else(|| bad(file, "no signed pre-key"))?;
    let signed_pre_key = SignedPreKey {
        id: spk
            .get("keyId")
            .and_then(u32_of)
            .ok_or_else(|| bad(file, "signed pre-key without an id"))?,
        key_pair: key_pair(
            file,
            spk.get("keyPair").unwrap_or(&Value::Null),
            "signed pre-key",
        )?,
        signature: spk
            .get("signature")
            .and_then(bytes_of)
            .and_then(|s| Signature::from_slice(&s).ok())
            .ok_or_else(|| bad(file, "signed pre-key without a 64-byte signature"))?,
        timestamp: 0,
    };
    if !signed_pre_key.verify(&identity_key.public) {
        return Err(bad(
            file,
            "the identity key did not sign the signed pre-key",
        ));
    }
    let adv: [u8; 32] = v
        .get("advSecretKey")
        .and_then(bytes_of)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad(file, "no 32-byte ADV secret"))?;
    let account = v.get("account").filter(|a| a.is_object()).map(|a| {
        SignedDeviceIdentity {
            details: a.get("details").and_then(bytes_of),
            account_signature_key: a.get("accountSignatureKey").and_then(bytes_of),
            account_signature: a.get("accountSignature").and_then(bytes_of),
            device_signature: a.get("deviceSignature").and_then(bytes_of),
        }
        .encode_to_vec()
    });
    let me = v.get("me");
    let mut creds = AuthCreds::generate(&mut rand_core::OsRng);
    creds.noise_key = key_pair(file, v.get("noiseKey").unwrap_or(&Value::Null), "noise key")?;
    creds.identity_key = identity_key;
    creds.signed_pre_key = signed_pre_key;
    creds.registration_id = v
        .get("registrationId")
        .and_then(u32_of)
        .ok_or_else(|| bad(file, "no registration id"))?;
    creds.adv_secret = Zeroizing::new(adv);
    if let Some(p) = v.get("pairingEphemeralKeyPair") {
        creds.pairing_ephemeral_key = key_pair(file, p, "pairing key")?;
    }
    creds.jid = str_of(me.and_then(|m| m.get("id")));
    creds.lid = str_of(me.and_then(|m| m.get("lid")));
    creds.push_name = str_of(me.and_then(|m| m.get("name")));
    creds.platform = str_of(v.get("platform"));
    creds.account = account;
    creds.next_pre_key_id = v.get("nextPreKeyId").and_then(u32_of).unwrap_or(1);
    creds.first_unuploaded_pre_key_id = v
        .get("firstUnuploadedPreKeyId")
        .and_then(u32_of)
        .unwrap_or(creds.next_pre_key_id);
    creds.routing_info = v.get("routingInfo").and_then(bytes_of);
    creds.registered = v
        .get("registered")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    creds.pairing_code = str_of(v.get("pairingCode"));
    creds.my_app_state_key_id = str_of(v.get("myAppStateKeyId")).and_then(|id| key_id_hex(&id));
    creds.last_account_sync_timestamp = v
        .get("lastAccountSyncTimestamp")
        .and_then(i64_of)
        .and_then(|t| u64::try_from(t).ok());
    creds.account_sync_counter = v.get("accountSyncCounter").and_then(u32_of).unwrap_or(0);
    creds.last_prop_hash = str_of(v.get("lastPropHash"));
    if creds.registered && creds.jid.is_none() {
        return Err(bad(file, "registered without `me.id`"));
    }
    Ok(creds)
}

/// Reads the files of a Baileys auth folder (name and contents) into credentials and one
/// batch holding them, the pre-keys, app-state sync keys and LID mappings. Nothing is
/// written.
///
/// # Errors
/// [`Error::InvalidInput`] when `creds.json` is missing or not valid credentials (keys
/// that do not match, a signed pre-key the identity key did not sign), or a pre-key or
/// app-state key file is malformed.
pub fn read_baileys_auth(files: &[(String, Vec<u8>)]) -> Result<(BaileysImport, Batch)> {
    let json = |name: &str, bytes: &[u8]| {
        serde_json::from_slice::<Value>(bytes).map_err(|e| bad(name, format!("not JSON: {e}")))
    };
    let (name, bytes) = files
        .iter()
        .find(|(n, _)| n == "creds.json")
        .ok_or_else(|| Error::InvalidInput("no creds.json in the Baileys auth folder".into()))?;
    let creds = creds_from(name, &json(name, bytes)?)?;
    let mut batch = Batch::new();
    let (mut pre_keys, mut app_state_keys, mut lid_mappings) = (0, 0, 0);
    let mut skipped = Vec::new();
    for (name, bytes) in files {
        let Some(stem) = name.strip_suffix(".json") else {
            skipped.push(name.clone());
            continue;
        };
        if let Some(id) = stem.strip_prefix("pre-key-") {
            let id: u32 = id
                .parse()
                .map_err(|_| bad(name, "pre-key id is not a number"))?;
            let pair = key_pair(name, &json(name, bytes)?, "pre-key")?;
            let record = wa_signal::PreKeyRecord { id, key_pair: pair };
            batch.put_pre_key(id, &record.serialize());
            pre_keys += 1;
        } else if let Some(id) = stem.strip_prefix("app-state-sync-key-") {
            // File names have `/` written as `__`.
            let id = key_id_hex(&id.replace("__", "/"))
                .ok_or_else(|| bad(name, "app-state key id is not base64"))?;
            let v = json(name, bytes)?;
            let fp = v.get("fingerprint");
            let data = SyncKeyData {
                key_data: Some(
                    v.get("keyData")
                        .and_then(bytes_of)
                        .ok_or_else(|| bad(name, "no key data"))?,
                ),
                fingerprint: fp.map(|f| SyncKeyFingerprint {
                    raw_id: f.get("rawId").and_then(u32_of),
                    current_index: f.get("currentIndex").and_then(u32_of),
                    device_indexes: f
                        .get("deviceIndexes")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(u32_of).collect())
                        .unwrap_or_default(),
                }),
                timestamp: v.get("timestamp").and_then(i64_of),
            };
            batch.put_app_state_sync_key(&id, &data.encode_to_vec());
            app_state_keys += 1;
        } else if let Some(user) = stem.strip_prefix("lid-mapping-") {
            if user.ends_with("_reverse") {
                continue; // the forward file names the same pair
            }
            let lid = serde_json::from_slice::<Value>(bytes)
                .ok()
                .and_then(|v| str_of(Some(&v)))
                .filter(|l| l.bytes().all(|b| b.is_ascii_digit()));
            match lid {
                Some(lid) if user.bytes().all(|b| b.is_ascii_digit()) => {
                    batch.put_lid_mapping(user, &lid);
                    lid_mappings += 1;
                }
                _ => skipped.push(name.clone()),
            }
        } else if name != "creds.json" {
            skipped.push(name.clone());
        }
    }
    batch.save_creds(&creds);
    skipped.sort();
    Ok((
        BaileysImport {
            creds,
            pre_keys,
            app_state_keys,
            lid_mappings,
            skipped,
        },
        batch,
    ))
}

/// Imports the Baileys auth folder `dir` into `store` in one commit (see the module
/// documentation for what is carried over). Refuses a store that already holds
/// credentials.
///
/// # Errors
/// [`Error::InvalidInput`] for a store that has credentials, a folder with more than
/// [`MAX_BAILEYS_FILES`] files or a file over [`MAX_BAILEYS_FILE`] bytes, and as
/// [`read_baileys_auth`]; [`Error::Backend`] when the folder cannot be read; store
/// errors.
pub async fn import_baileys_auth(dir: &Path, store: &AccountStore) -> Result<BaileysImport> {
    if store.load_creds().await?.is_some() {
        return Err(Error::InvalidInput(
            "the account already has credentials; import into an empty one".into(),
        ));
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::backend)? {
        let entry = entry.map_err(Error::backend)?;
        if !entry.file_type().map_err(Error::backend)?.is_file() {
            continue;
        }
        if files.len() >= MAX_BAILEYS_FILES {
            return Err(Error::InvalidInput(format!(
                "more than {MAX_BAILEYS_FILES} files in the Baileys auth folder"
            )));
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let len = entry.metadata().map_err(Error::backend)?.len();
        if len > MAX_BAILEYS_FILE {
            return Err(bad(&name, format!("{len} bytes, over {MAX_BAILEYS_FILE}")));
        }
        // Only the kinds carried over are read; the rest are listed by name.
        let wanted = name == "creds.json"
            || ["pre-key-", "app-state-sync-key-", "lid-mapping-"]
                .iter()
                .any(|p| name.starts_with(p));
        let bytes = if wanted {
            std::fs::read(entry.path()).map_err(Error::backend)?
        } else {
            Vec::new()
        };
        files.push((name, bytes));
    }
    let (report, batch) = read_baileys_auth(&files)?;
    store.commit(batch).await?;
    Ok(report)
}
