//! Import of a Baileys auth folder (`useMultiFileAuthState`), so a device linked with
//! Baileys keeps working here without being linked again.
//!
//! Carried over: the credentials (`creds.json`: Noise, identity, signed pre-key and
//! pairing keys, registration id, ADV secret, own JID, LID and push name, the signed
//! device identity, pre-key counters, routing info, sync counters), the one-time pre-keys
//! (`pre-key-<id>.json`), the app-state sync keys (`app-state-sync-key-<id>.json`), the
//! LID mappings (`lid-mapping-<pn>.json`), the Signal sessions (`session-<address>.json`,
//! libsignal-node's record), the peers' identity keys (`identity-key-<address>.json`), the
//! sender keys, ours and the group members' (`sender-key-<group>--<name>--<device>.json`),
//! which devices of each group have our sender key (`sender-key-memory-<group>.json`),
//! and the app-state collection versions with their LTHash and value MACs
//! (`app-state-sync-version-<collection>.json`), so conversations and app-state sync go
//! on where Baileys left them.
//!
//! Not carried over: device lists and privacy tokens (fetched again), and any session,
//! sender-key or app-state file that cannot be read (such a peer heals through a retry
//! receipt, such a collection syncs again from a snapshot). Their file names are reported
//! in [`BaileysImport::skipped`].
//!
//! The files are JSON written with Baileys' `BufferJSON` (bytes as
//! `{"type":"Buffer","data":"<base64>"}`); protobuf objects inside them may hold bytes as
//! plain base64 strings, libsignal-node's session records hold base64 strings, and sender
//! keys are a buffer of JSON text whose bytes are arrays of numbers. All are read.

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
    /// Signal sessions stored (one per peer device).
    pub sessions: usize,
    /// Peer identity keys stored.
    pub identities: usize,
    /// Sender-key records stored (one per group and sending device).
    pub sender_keys: usize,
    /// Groups whose list of devices holding our sender key was stored.
    pub sender_key_memories: usize,
    /// App-state collection versions stored.
    pub app_state_versions: usize,
    /// Files not carried over (unreadable records, kinds this crate does not keep such
    /// as device lists), by name.
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

/// `<name>.<device>`, a Signal address as Baileys names files.
fn address_of(s: &str) -> Option<(&str, u32)> {
    let (name, device) = s.rsplit_once('.')?;
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    Some((name, device.parse().ok().filter(|_| ok)?))
}

fn key32(v: Option<&Value>) -> Option<[u8; 32]> {
    v.and_then(bytes_of).and_then(|b| b.try_into().ok())
}

fn public_of(v: Option<&Value>) -> Option<wa_crypto::PublicKey> {
    v.and_then(bytes_of)
        .and_then(|b| wa_crypto::PublicKey::from_slice(&b).ok())
}

/// A chain index as libsignal-node keeps it (the last one derived, -1 before the first)
/// turned into the next one.
fn next_index(counter: Option<&Value>) -> Option<u32> {
    let c = counter.and_then(i64_of)?;
    u32::try_from(c.checked_add(1)?).ok()
}

/// Skipped message keys kept as `{ "<index>": <seed> }` (sessions) or
/// `[{ iteration, seed }]` (sender keys), oldest first.
fn skipped_keys(v: Option<&Value>) -> Option<wa_signal::SkippedKeys> {
    let mut keys = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(i, seed)| Some((i.parse().ok()?, key32(Some(seed))?)))
            .collect::<Option<Vec<_>>>()?,
        Some(Value::Array(a)) => a
            .iter()
            .map(|k| Some((k.get("iteration").and_then(u32_of)?, key32(k.get("seed"))?)))
            .collect::<Option<Vec<_>>>()?,
        Some(_) => return None,
    };
    keys.sort_by_key(|(i, _)| *i);
    Some(keys)
}

/// One entry of a libsignal-node `SessionRecord`'s `_sessions`, with when it was closed
/// (`None` for the open one). `Ok(None)` for a state that cannot send yet (a responder's
/// state before the first message decrypted; libsignal-node does not store those).
fn session_entry(
    creds: &AuthCreds,
    e: &Value,
) -> std::result::Result<Option<(wa_signal::ImportedSession, Option<i64>)>, &'static str> {
    let ratchet = e.get("currentRatchet").ok_or("no current ratchet")?;
    let info = e.get("indexInfo").ok_or("no index info")?;
    let eph = ratchet
        .get("ephemeralKeyPair")
        .ok_or("no ratchet key pair")?;
    let eph_public = public_of(eph.get("pubKey")).ok_or("bad ratchet public key")?;
    let eph_private = eph
        .get("privKey")
        .and_then(bytes_of)
        .map(Zeroizing::new)
        .and_then(|k| wa_crypto::PrivateKey::from_slice(&k).ok())
        .ok_or("bad ratchet private key")?;
    let mut sender = None;
    let mut receivers = Vec::new();
    let chains = match e.get("_chains") {
        Some(Value::Object(o)) => o,
        _ => return Err("no chains"),
    };
    // Insertion order (serde_json's `preserve_order`) is creation order: oldest first.
    for (id, c) in chains {
        let ratchet_key = public_of(Some(&Value::String(id.clone()))).ok_or("bad chain id")?;
        let ck = c.get("chainKey").ok_or("chain without a chain key")?;
        let index = next_index(ck.get("counter")).ok_or("bad chain counter")?;
        let key = match ck.get("key") {
            None | Some(Value::Null) => None,
            k => Some(key32(k).ok_or("bad chain key")?),
        };
        match c.get("chainType").and_then(u32_of) {
            Some(1) if ratchet_key == eph_public => {
                sender = Some((key.ok_or("sending chain without a key")?, index));
            }
            Some(1) => {} // an old sending chain: nothing left to use
            Some(2) => receivers.push(wa_signal::ImportedChain {
                ratchet_key,
                chain_key: key,
                next_index: index,
                skipped: skipped_keys(c.get("messageKeys")).ok_or("bad message keys")?,
            }),
            _ => return Err("unknown chain type"),
        }
    }
    let Some((sender_chain_key, sender_next_index)) = sender else {
        return Ok(None);
    };
    let pending_pre_key = match e.get("pendingPreKey") {
        None | Some(Value::Null) => None,
        Some(p) => Some(wa_signal::ImportedPendingPreKey {
            pre_key_id: p.get("preKeyId").and_then(u32_of),
            signed_pre_key_id: p
                .get("signedKeyId")
                .and_then(u32_of)
                .ok_or("pending pre-key without a signed pre-key id")?,
            base_key: public_of(p.get("baseKey")).ok_or("bad pending base key")?,
        }),
    };
    let closed = info
        .get("closed")
        .and_then(i64_of)
        .ok_or("no closed mark")?;
    let session = wa_signal::ImportedSession {
        local_identity: creds.identity_key.public,
        local_registration_id: creds.registration_id,
        remote_identity: public_of(info.get("remoteIdentityKey"))
            .ok_or("bad remote identity key")?,
        remote_registration_id: e.get("registrationId").and_then(u32_of).unwrap_or(0),
        base_key: public_of(info.get("baseKey")).ok_or("bad base key")?,
        root_key: key32(ratchet.get("rootKey")).ok_or("bad root key")?,
        previous_counter: ratchet.get("previousCounter").and_then(u32_of).unwrap_or(0),
        sender_ratchet: KeyPair {
            public: eph_public,
            private: eph_private,
        },
        sender_chain_key,
        sender_next_index,
        receivers,
        pending_pre_key,
    };
    Ok(Some((session, (closed != -1).then_some(closed))))
}

/// A libsignal-node `SessionRecord` (`{ _sessions: { <base key>: entry }, version }`) as
/// our record: the open entry current, the closed ones previous, newest first.
fn session_record(
    creds: &AuthCreds,
    v: &Value,
) -> std::result::Result<wa_signal::SessionRecord, &'static str> {
    let entries = match v.get("_sessions") {
        Some(Value::Object(o)) => o,
        _ => return Err("no sessions"),
    };
    let mut current = None;
    let mut previous = Vec::new();
    for e in entries.values() {
        match session_entry(creds, e)? {
            Some((s, None)) if current.is_none() => current = Some(s),
            Some((s, closed)) => previous.push((closed.unwrap_or(i64::MAX), s)),
            None => {}
        }
    }
    if current.is_none() && previous.is_empty() {
        return Err("no session that can send");
    }
    previous.sort_by_key(|(closed, _)| std::cmp::Reverse(*closed));
    let previous: Vec<_> = previous.into_iter().map(|(_, s)| s).collect();
    wa_signal::SessionRecord::from_imported(current.as_ref(), &previous)
        .map_err(|_| "ratchet key pair does not match")
}

/// Baileys' `SenderKeyRecord`: a JSON array of states, oldest first.
fn sender_key_record(v: &Value) -> std::result::Result<Vec<u8>, &'static str> {
    let states = v.as_array().ok_or("not a list of states")?;
    let states = states
        .iter()
        .map(|st| {
            let chain = st.get("senderChainKey").ok_or("no chain key")?;
            let signing = st.get("senderSigningKey").ok_or("no signing key")?;
            let private = signing
                .get("private")
                .and_then(bytes_of)
                .map(Zeroizing::new)
                .unwrap_or_default();
            Ok(wa_signal::ImportedSenderKey {
                key_id: st.get("senderKeyId").and_then(u32_of).ok_or("no key id")?,
                iteration: chain
                    .get("iteration")
                    .and_then(u32_of)
                    .ok_or("no iteration")?,
                chain_key: key32(chain.get("seed")).ok_or("bad chain key")?,
                signing_public: public_of(signing.get("public")).ok_or("bad signing key")?,
                signing_private: match private.len() {
                    0 => None,
                    _ => Some(
                        wa_crypto::PrivateKey::from_slice(&private)
                            .map_err(|_| "bad signing private key")?,
                    ),
                },
                skipped: skipped_keys(st.get("senderMessageKeys")).ok_or("bad message keys")?,
            })
        })
        .collect::<std::result::Result<Vec<_>, &'static str>>()?;
    wa_signal::SenderKeyRecord::from_imported(&states)
        .map(|r| r.serialize())
        .map_err(|_| "signing key pair does not match")
}

/// Baileys' `LTHashState` (`{ version, hash, indexValueMap: { <index MAC>: { valueMac } } }`)
/// in the stored form of an app-state collection state (`wa_appstate::HashState`'s
/// `to_bytes`: format byte 1, version as u64 big-endian, the 128-byte hash, the entry
/// count as u32 big-endian, then index MAC and value MAC pairs sorted by index MAC).
fn app_state_version(v: &Value) -> std::result::Result<Vec<u8>, &'static str> {
    let version = v
        .get("version")
        .and_then(i64_of)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or("no version")?;
    let hash = v
        .get("hash")
        .and_then(bytes_of)
        .filter(|h| h.len() == 128)
        .ok_or("no 128-byte hash")?;
    let mut entries = match v.get("indexValueMap") {
        Some(Value::Object(o)) => o
            .iter()
            .map(|(index, value)| {
                let index: [u8; 32] = base64::engine::general_purpose::STANDARD
                    .decode(index)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or("bad index MAC")?;
                let value = key32(value.get("valueMac")).ok_or("bad value MAC")?;
                Ok((index, value))
            })
            .collect::<std::result::Result<Vec<_>, &'static str>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err("bad index map"),
    };
    entries.sort_unstable_by_key(|(index, _)| *index);
    let count = u32::try_from(entries.len()).map_err(|_| "too many entries")?;
    let mut out = Vec::with_capacity(141 + 64 * entries.len());
    out.push(1);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&hash);
    out.extend_from_slice(&count.to_be_bytes());
    for (index, value) in entries {
        out.extend_from_slice(&index);
        out.extend_from_slice(&value);
    }
    Ok(out)
}

/// The app-state collections WhatsApp syncs.
const COLLECTIONS: [&str; 5] = [
    "critical_block",
    "critical_unblock_low",
    "regular",
    "regular_high",
    "regular_low",
];

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
    let (mut sessions, mut identities, mut sender_keys, mut app_state_versions) = (0, 0, 0, 0);
    let mut sender_key_memories = 0;
    let mut skipped = Vec::new();
    // Records that cannot be read are skipped, not fatal: the peer or collection heals.
    let mut unreadable = |name: &str, why: &str| {
        tracing::warn!(file = name, reason = why, "Baileys auth file not imported");
        skipped.push(name.to_owned());
    };
    let identity_files: std::collections::HashSet<&str> = files
        .iter()
        .filter_map(|(n, _)| n.strip_prefix("identity-key-")?.strip_suffix(".json"))
        .collect();
    for (name, bytes) in files {
        let Some(stem) = name.strip_suffix(".json") else {
            unreadable(name, "not a .json file");
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
                _ => unreadable(name, "not a phone number and LID pair"),
            }
        } else if let Some(address) = stem.strip_prefix("session-") {
            let record = address_of(address).ok_or("bad address").and_then(|a| {
                let v = serde_json::from_slice::<Value>(bytes).map_err(|_| "not JSON")?;
                Ok((a, session_record(&creds, &v)?))
            });
            match record {
                Ok(((user, device), record)) => {
                    batch.put_session(user, device, &record.serialize());
                    sessions += 1;
                    // The peer's identity as the session knows it, unless its own file
                    // names it (libsignal-node saves identities only of sessions the peer
                    // started).
                    if !identity_files.contains(address)
                        && let Some(identity) = record.remote_identity()
                    {
                        batch.put_identity(user, device, identity.as_bytes());
                    }
                }
                Err(why) => unreadable(name, why),
            }
        } else if let Some(address) = stem.strip_prefix("identity-key-") {
            let key = serde_json::from_slice::<Value>(bytes)
                .ok()
                .and_then(|v| public_of(Some(&v)));
            match (address_of(address), key) {
                (Some((user, device)), Some(key)) => {
                    batch.put_identity(user, device, key.as_bytes());
                    identities += 1;
                }
                _ => unreadable(name, "not an address and an identity key"),
            }
        } else if let Some(group) = stem.strip_prefix("sender-key-memory-") {
            // `{ "<device JID>": true }`: the devices our sender key was sent to.
            let devices = serde_json::from_slice::<Value>(bytes).ok().and_then(|v| {
                v.as_object()?
                    .iter()
                    .filter(|(_, has)| has.as_bool() == Some(true))
                    .map(|(jid, _)| {
                        (jid.len() <= crate::MAX_KEY_LEN && jid.contains('@')).then(|| jid.clone())
                    })
                    .collect::<Option<Vec<_>>>()
            });
            match devices {
                Some(devices) if !group.is_empty() && group.contains('@') => {
                    batch.mark_sender_key_sent(group, &devices);
                    sender_key_memories += 1;
                }
                _ => unreadable(name, "not a map of device JIDs"),
            }
        } else if let Some(key_name) = stem.strip_prefix("sender-key-") {
            // `<group>::<name>::<device>`, with `:` written as `-` in file names. Group
            // JIDs may hold `-` themselves, so the name and device are split off the end.
            let mut parts = key_name.rsplitn(3, "--");
            let (device, user, group) = (parts.next(), parts.next(), parts.next());
            let record = match (group, user.zip(device)) {
                (Some(group), Some((user, device))) if !group.is_empty() => {
                    address_of(&format!("{user}.{device}"))
                        .ok_or("bad sender address")
                        .and_then(|_| {
                            // A buffer holding the record's JSON text.
                            let text = serde_json::from_slice::<Value>(bytes)
                                .ok()
                                .and_then(|v| bytes_of(&v))
                                .map(Zeroizing::new)
                                .ok_or("not a buffer")?;
                            let v =
                                serde_json::from_slice::<Value>(&text).map_err(|_| "not JSON")?;
                            Ok((group, format!("{user}::{device}"), sender_key_record(&v)?))
                        })
                }
                _ => Err("bad sender-key name"),
            };
            match record {
                Ok((group, sender, record)) => {
                    batch.put_sender_key(group, &sender, &record);
                    sender_keys += 1;
                }
                Err(why) => unreadable(name, why),
            }
        } else if let Some(collection) = stem.strip_prefix("app-state-sync-version-") {
            let state = COLLECTIONS
                .contains(&collection)
                .then_some(())
                .ok_or("unknown collection")
                .and_then(|()| {
                    let v = serde_json::from_slice::<Value>(bytes).map_err(|_| "not JSON")?;
                    app_state_version(&v)
                });
            match state {
                Ok(state) => {
                    batch.put_app_state_version(collection, &state);
                    app_state_versions += 1;
                }
                Err(why) => unreadable(name, why),
            }
        } else if name != "creds.json" {
            unreadable(name, "not a kind of record carried over");
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
            sessions,
            identities,
            sender_keys,
            sender_key_memories,
            app_state_versions,
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
            || [
                "pre-key-",
                "app-state-sync-key-",
                "app-state-sync-version-",
                "lid-mapping-",
                "session-",
                "identity-key-",
                "sender-key-",
            ]
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
