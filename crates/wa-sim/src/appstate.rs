//! App-state sync on the server side (`w:sync:app:state`), and the simulated phone's
//! app-state sync key.
//!
//! The server cannot decrypt app state: it keeps each account's patches per collection
//! as opaque, versioned bytes, and the live records (index MAC -> record) they leave
//! behind. A snapshot is those records with the snapshot MAC and key id of the last
//! patch (that MAC covers exactly the LTHash of the live records at that version), served
//! as an encrypted external blob on the media host, as WhatsApp serves them.

use std::collections::{BTreeMap, VecDeque};

use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use bytes::Bytes;
use prost::Message as _;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use wa_binary::{Jid, Node, Server};
use wa_proto::e2e::{
    AppStateSyncKey, AppStateSyncKeyData, AppStateSyncKeyFingerprint, AppStateSyncKeyId,
    AppStateSyncKeyShare, Message, ProtocolMessage, protocol_message,
};
use wa_proto::server_sync::{
    ExternalBlobReference, KeyId, SyncdPatch, SyncdRecord, SyncdSnapshot, SyncdVersion,
    syncd_mutation::SyncdOperation,
};
use wa_proto::sync_action::SyncActionData;
use wa_proto::syncd_snapshot_recovery::{
    SyncdPlainTextRecord, SyncdSnapshotRecovery, SyncdVersion as RecoveryVersion,
};
use wa_signal::pad_message;

use crate::route;
use crate::sim::{Shared, fresh_id, unix_now};

/// The collections a client may name.
const COLLECTIONS: [&str; 5] = [
    "critical_block",
    "critical_unblock_low",
    "regular_high",
    "regular_low",
    "regular",
];
/// Most patches kept per collection; a client further behind gets a snapshot.
pub(crate) const MAX_PATCHES: usize = 512;
/// Most patches sent in one reply (`has_more_patches` says when more follow).
pub(crate) const PATCHES_PER_REPLY: usize = 50;
/// Most live records per collection; a push beyond is refused.
pub(crate) const MAX_RECORDS: usize = 20_000;
/// Largest pushed patch, in bytes.
pub(crate) const MAX_PATCH_BYTES: usize = 256 * 1024;
/// Most mutations in one pushed patch.
const MAX_MUTATIONS: usize = 1000;
/// HKDF info of app-state external blobs.
const BLOB_INFO: &[u8] = b"WhatsApp App State Keys";

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

/// Ways [`Sim::tamper_app_state`](crate::Sim::tamper_app_state) corrupts stored app state,
/// as a faulty or hostile server would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppStateTamper {
    /// Flip a byte of the value MAC of the first mutation of the patch at this version.
    ValueMac {
        /// The patch version.
        version: u64,
    },
    /// Flip a byte of the patch MAC of the patch at this version.
    PatchMac {
        /// The patch version.
        version: u64,
    },
    /// Flip a byte of the snapshot MAC of every snapshot served from now on (until the
    /// next accepted push).
    SnapshotMac,
}

/// How the simulated phone answers a fatal app-state recovery request
/// ([`Sim::set_app_state_recovery_answer`](crate::Sim::set_app_state_recovery_answer)):
/// honestly, or as a faulty or hostile phone would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryAnswer {
    /// The collection's live records in plaintext, gzip-compressed (the default).
    #[default]
    Honest,
    /// Not answered at all.
    Silent,
    /// Marked compressed, but the bytes are not a compressed stream.
    BadCompression,
    /// A compressed stream that inflates to this many bytes of zeros.
    Oversize(usize),
    /// Compressed bytes that are not a `SyncdSnapshotRecovery`.
    Garbage,
    /// The honest answer for another collection than the one asked for.
    WrongCollection(&'static str),
    /// The honest answer with one byte of its LTHash flipped.
    BadHash,
    /// An answer without a snapshot.
    Empty,
}

/// One collection of one account.
#[derive(Default)]
struct CollectionStore {
    version: u64,
    /// (version, encoded SyncdPatch), oldest first.
    patches: VecDeque<(u64, Vec<u8>)>,
    /// Live records by index MAC.
    records: BTreeMap<Vec<u8>, SyncdRecord>,
    snapshot_mac: Vec<u8>,
    key_id: Vec<u8>,
    tamper_snapshot: bool,
}

/// The phone's app-state sync key.
#[derive(Clone)]
struct PhoneKey {
    id: Vec<u8>,
    data: [u8; 32],
    timestamp: i64,
}

/// The server's app-state data for every account, and each phone's sync key.
pub(crate) struct AppStateServer {
    collections: BTreeMap<(String, &'static str), CollectionStore>,
    phone_keys: BTreeMap<String, PhoneKey>,
    /// Whether the phone shares its key with a newly linked companion.
    pub(crate) share_on_link: bool,
    /// Whether the phone answers key requests from its companions.
    pub(crate) answer_requests: bool,
    /// How the phone answers recovery requests.
    pub(crate) recovery_answer: RecoveryAnswer,
    /// Fatal-exception notifications the phones received: (phone, collections).
    pub(crate) fatal_exceptions: Vec<(String, Vec<String>)>,
}

impl Default for AppStateServer {
    fn default() -> Self {
        Self {
            collections: BTreeMap::new(),
            phone_keys: BTreeMap::new(),
            share_on_link: false,
            answer_requests: true,
            recovery_answer: RecoveryAnswer::Honest,
            fatal_exceptions: Vec::new(),
        }
    }
}

impl AppStateServer {
    /// The phone's key, made on first use (the phone makes it when the account exists;
    /// nobody can tell the difference).
    fn phone_key(&mut self, phone: &str) -> PhoneKey {
        self.phone_keys
            .entry(phone.to_owned())
            .or_insert_with(|| {
                let mut id = vec![0u8; 6];
                OsRng.fill_bytes(&mut id[2..]);
                let mut data = [0u8; 32];
                OsRng.fill_bytes(&mut data);
                PhoneKey {
                    id,
                    data,
                    timestamp: unix_now() as i64 * 1000,
                }
            })
            .clone()
    }

    /// The current version of a collection (0 when empty).
    pub(crate) fn version(&self, phone: &str, collection: &str) -> u64 {
        let Some(name) = known(collection) else {
            return 0;
        };
        self.collections
            .get(&(phone.to_owned(), name))
            .map_or(0, |c| c.version)
    }

    /// The phone's key id (created if needed).
    pub(crate) fn key_id(&mut self, phone: &str) -> Vec<u8> {
        self.phone_key(phone).id
    }

    pub(crate) fn tamper(&mut self, phone: &str, collection: &str, how: AppStateTamper) -> bool {
        let Some(name) = known(collection) else {
            return false;
        };
        let Some(c) = self.collections.get_mut(&(phone.to_owned(), name)) else {
            return false;
        };
        match how {
            AppStateTamper::SnapshotMac => {
                c.tamper_snapshot = true;
                true
            }
            AppStateTamper::ValueMac { version } | AppStateTamper::PatchMac { version } => {
                let Some((_, bytes)) = c.patches.iter_mut().find(|(v, _)| *v == version) else {
                    return false;
                };
                let Ok(mut patch) = SyncdPatch::decode(&bytes[..]) else {
                    return false;
                };
                let target = match how {
                    AppStateTamper::ValueMac { .. } => patch
                        .mutations
                        .first_mut()
                        .and_then(|m| m.record.as_mut())
                        .and_then(|r| r.value.as_mut())
                        .and_then(|v| v.blob.as_mut()),
                    _ => patch.patch_mac.as_mut(),
                };
                let Some(last) = target.and_then(|b| b.last_mut()) else {
                    return false;
                };
                *last ^= 0x01;
                *bytes = patch.encode_to_vec();
                true
            }
        }
    }
}

/// The app-state part of the state file: each collection's version, patches, live
/// records and snapshot MAC, and each phone's sync key (bytes in hex).
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct AppStateFile {
    collections: Vec<CollectionFile>,
    /// (phone, key id, key data, timestamp)
    phone_keys: Vec<(String, String, String, i64)>,
    share_on_link: bool,
    answer_requests: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CollectionFile {
    phone: String,
    name: String,
    version: u64,
    /// (version, encoded `SyncdPatch`)
    patches: Vec<(u64, String)>,
    /// Encoded `SyncdRecord`s.
    records: Vec<String>,
    snapshot_mac: String,
    key_id: String,
}

fn unhex(h: &str) -> Result<Vec<u8>, crate::Error> {
    hex::decode(h).map_err(|_| crate::Error::BadState("app-state bytes are not hex"))
}

impl AppStateServer {
    /// The state to save.
    pub(crate) fn to_file(&self) -> AppStateFile {
        AppStateFile {
            collections: self
                .collections
                .iter()
                .map(|((phone, name), c)| CollectionFile {
                    phone: phone.clone(),
                    name: (*name).to_owned(),
                    version: c.version,
                    patches: c
                        .patches
                        .iter()
                        .map(|(v, b)| (*v, hex::encode(b)))
                        .collect(),
                    records: c
                        .records
                        .values()
                        .map(|r| hex::encode(r.encode_to_vec()))
                        .collect(),
                    snapshot_mac: hex::encode(&c.snapshot_mac),
                    key_id: hex::encode(&c.key_id),
                })
                .collect(),
            phone_keys: self
                .phone_keys
                .iter()
                .map(|(phone, k)| {
                    (
                        phone.clone(),
                        hex::encode(&k.id),
                        hex::encode(k.data),
                        k.timestamp,
                    )
                })
                .collect(),
            share_on_link: self.share_on_link,
            answer_requests: self.answer_requests,
        }
    }

    /// The state a saved file describes, checked against the server's bounds.
    ///
    /// # Errors
    /// [`crate::Error::BadState`] for an unknown collection, malformed bytes or a
    /// collection beyond the bounds.
    pub(crate) fn from_file(file: AppStateFile) -> Result<Self, crate::Error> {
        let bad = crate::Error::BadState;
        let mut out = Self {
            share_on_link: file.share_on_link,
            answer_requests: file.answer_requests,
            ..Self::default()
        };
        for c in file.collections {
            let name = known(&c.name).ok_or(bad("unknown app-state collection"))?;
            if c.patches.len() > MAX_PATCHES || c.records.len() > MAX_RECORDS {
                return Err(bad("app-state collection beyond the server's bounds"));
            }
            let mut records = BTreeMap::new();
            for r in &c.records {
                let record = SyncdRecord::decode(&unhex(r)?[..])
                    .map_err(|_| bad("app-state record is not a SyncdRecord"))?;
                let index = record
                    .index
                    .as_ref()
                    .and_then(|i| i.blob.clone())
                    .ok_or(bad("app-state record without an index"))?;
                records.insert(index, record);
            }
            let patches = c
                .patches
                .iter()
                .map(|(v, b)| Ok((*v, unhex(b)?)))
                .collect::<Result<VecDeque<_>, crate::Error>>()?;
            out.collections.insert(
                (c.phone, name),
                CollectionStore {
                    version: c.version,
                    patches,
                    records,
                    snapshot_mac: unhex(&c.snapshot_mac)?,
                    key_id: unhex(&c.key_id)?,
                    tamper_snapshot: false,
                },
            );
        }
        for (phone, id, data, timestamp) in file.phone_keys {
            let data: [u8; 32] = unhex(&data)?
                .try_into()
                .map_err(|_| bad("app-state key is not 32 bytes"))?;
            out.phone_keys.insert(
                phone,
                PhoneKey {
                    id: unhex(&id)?,
                    data,
                    timestamp,
                },
            );
        }
        Ok(out)
    }
}

fn known(name: &str) -> Option<&'static str> {
    COLLECTIONS.iter().copied().find(|c| *c == name)
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, AppStateServer> {
    shared.appstate()
}

fn error_node(code: u16, text: &'static str) -> Node {
    Node::builder("error")
        .attr("code", code.to_string())
        .attr("text", text)
        .build()
}

fn iq_error(id: &str, code: u16, text: &'static str) -> Node {
    Node::builder("iq")
        .attr("id", id.to_owned())
        .attr("type", "error")
        .attr("from", Jid::server_jid())
        .children([error_node(code, text)])
        .build()
}

/// `patch` nodes for the patches after `since`, at most [`PATCHES_PER_REPLY`]; and
/// whether more remain.
fn patches_after(c: &CollectionStore, since: u64) -> (Vec<Node>, bool) {
    let mut after = c.patches.iter().filter(|(v, _)| *v > since);
    let nodes: Vec<Node> = after
        .by_ref()
        .take(PATCHES_PER_REPLY)
        .map(|(_, b)| Node::builder("patch").bytes(Bytes::from(b.clone())).build())
        .collect();
    (nodes, after.next().is_some())
}

/// Whether a fetch from the client's version `since` gets a snapshot: when asked for, on
/// a first sync, when the patches after `since` are no longer all kept, or when `since`
/// is a version the collection never had (`since` is the client's: any u64).
fn serves_snapshot(c: &CollectionStore, since: u64, want_snapshot: bool) -> bool {
    let oldest = c.patches.front().map_or(0, |(v, _)| *v);
    c.version > 0
        && (want_snapshot || since == 0 || since.saturating_add(1) < oldest || since > c.version)
}

/// Encrypts `plain` as a media blob of type "App State": `AES-256-CBC || HMAC[..10]`.
fn encrypt_blob(media_key: &[u8; 32], plain: &[u8]) -> Option<Vec<u8>> {
    let okm = wa_crypto::hkdf_sha256(media_key, None, BLOB_INFO, 112).ok()?;
    let (iv, rest) = okm.split_at(16);
    let (cipher_key, rest) = rest.split_at(32);
    let mac_key = &rest[..32];
    let enc = Aes256CbcEnc::new_from_slices(cipher_key, iv)
        .ok()?
        .encrypt_padded_vec_mut::<Pkcs7>(plain);
    let mac = wa_crypto::hmac_sha256_parts(mac_key, &[iv, &enc]);
    let mut out = enc;
    out.extend_from_slice(&mac[..10]);
    Some(out)
}

/// The snapshot of `c`, uploaded to the media host; the `<snapshot>` node holds its
/// `ExternalBlobReference`.
fn snapshot_node(shared: &Shared, c: &CollectionStore) -> Option<Node> {
    let mut mac = c.snapshot_mac.clone();
    if c.tamper_snapshot
        && let Some(b) = mac.last_mut()
    {
        *b ^= 0x01;
    }
    let snapshot = SyncdSnapshot {
        version: Some(SyncdVersion {
            version: Some(c.version),
            ..Default::default()
        }),
        records: c.records.values().cloned().collect(),
        mac: Some(mac),
        key_id: Some(KeyId {
            id: Some(c.key_id.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec();
    let mut media_key = [0u8; 32];
    OsRng.fill_bytes(&mut media_key);
    let blob = encrypt_blob(&media_key, &snapshot)?;
    let direct_path = shared.media.store(&blob).ok()?;
    let reference = ExternalBlobReference {
        media_key: Some(media_key.to_vec()),
        direct_path: Some(direct_path),
        handle: None,
        file_size_bytes: Some(snapshot.len() as u64),
        file_sha256: Some(Sha256::digest(&snapshot).to_vec()),
        file_enc_sha256: Some(Sha256::digest(&blob).to_vec()),
        ..Default::default()
    };
    Some(
        Node::builder("snapshot")
            .bytes(Bytes::from(reference.encode_to_vec()))
            .build(),
    )
}

/// Validates a pushed patch and applies it to `c` (records, version, MAC, key).
fn apply_push(c: &mut CollectionStore, bytes: &[u8]) -> Result<(), (u16, &'static str)> {
    if bytes.len() > MAX_PATCH_BYTES {
        return Err((413, "patch too large"));
    }
    let mut patch = SyncdPatch::decode(bytes).map_err(|_| (400, "bad-request"))?;
    if patch.mutations.len() > MAX_MUTATIONS || patch.external_mutations.is_some() {
        return Err((400, "bad-request"));
    }
    let next = c.version + 1;
    match patch.version.as_ref().and_then(|v| v.version) {
        Some(v) if v != next => return Err((409, "conflict")),
        _ => {}
    }
    let key_id = patch
        .key_id
        .as_ref()
        .and_then(|k| k.id.clone())
        .filter(|k| !k.is_empty() && k.len() <= 64)
        .ok_or((400, "bad-request"))?;
    let snapshot_mac = patch
        .snapshot_mac
        .clone()
        .filter(|m| m.len() == 32)
        .ok_or((400, "bad-request"))?;
    if patch.patch_mac.as_ref().is_none_or(|m| m.len() != 32) {
        return Err((400, "bad-request"));
    }
    let mut records = c.records.clone();
    for m in &patch.mutations {
        let record = m.record.as_ref().ok_or((400, "bad-request"))?;
        let index = record
            .index
            .as_ref()
            .and_then(|i| i.blob.clone())
            .filter(|i| i.len() == 32)
            .ok_or((400, "bad-request"))?;
        match m.operation() {
            SyncdOperation::Set => {
                records.insert(index, (**record).clone());
            }
            SyncdOperation::Remove => {
                records.remove(&index);
            }
        }
    }
    if records.len() > MAX_RECORDS {
        return Err((507, "too many records"));
    }
    patch.version = Some(SyncdVersion {
        version: Some(next),
        ..Default::default()
    });
    c.records = records;
    c.version = next;
    c.snapshot_mac = snapshot_mac;
    c.key_id = key_id;
    c.tamper_snapshot = false;
    c.patches.push_back((next, patch.encode_to_vec()));
    while c.patches.len() > MAX_PATCHES {
        c.patches.pop_front();
    }
    Ok(())
}

/// Answers `<iq xmlns="w:sync:app:state" type="set"><sync><collection .../>..</sync>` from
/// the logged-in device `me`: fetches (patches since the given version, or a snapshot)
/// and pushes (one `<patch>` on top of the given version; a stale version gets
/// `<collection type="error"><error code="409"/>` with the patches the client missed).
/// Other devices of the account get `<notification type="server_sync">` for every
/// collection a push changed.
pub(crate) fn iq(shared: &Shared, me: &Jid, id: &str, node: &Node) -> Node {
    let Some(sync) = node.child("sync") else {
        return iq_error(id, 400, "bad-request");
    };
    let phone = me.user.as_str().to_owned();
    let mut out = Vec::new();
    let mut changed = Vec::new();
    for cn in sync.children_by_tag("collection").take(COLLECTIONS.len()) {
        let Some(name) = cn.attr_opt::<&str>("name").ok().flatten().and_then(known) else {
            return iq_error(id, 400, "bad-request");
        };
        let since = cn.attr_opt::<u64>("version").ok().flatten().unwrap_or(0);
        let want_snapshot = cn.attr_opt::<&str>("return_snapshot").ok().flatten() == Some("true");
        let mut st = lock(shared);
        let c = st.collections.entry((phone.clone(), name)).or_default();
        if let Some(p) = cn.child("patch") {
            let bytes = p.content_bytes().unwrap_or_default();
            let result = if since != c.version {
                Err((409, "conflict"))
            } else {
                apply_push(c, bytes)
            };
            match result {
                Ok(()) => {
                    out.push(
                        Node::builder("collection")
                            .attr("name", name)
                            .attr("version", c.version.to_string())
                            .build(),
                    );
                    changed.push((name, c.version));
                }
                Err((code, text)) => {
                    let (patches, more) = patches_after(c, since);
                    let mut children = vec![
                        Node::builder("error")
                            .attr("code", code.to_string())
                            .attr("text", text)
                            .build(),
                    ];
                    if code == 409 && !patches.is_empty() {
                        children.push(Node::builder("patches").children(patches).build());
                    }
                    out.push(
                        Node::builder("collection")
                            .attr("name", name)
                            .attr("type", "error")
                            .attr("version", c.version.to_string())
                            .attr("has_more_patches", more.to_string())
                            .children(children)
                            .build(),
                    );
                }
            }
            continue;
        }
        let snapshot = serves_snapshot(c, since, want_snapshot);
        let mut children = Vec::new();
        let mut more = false;
        if snapshot {
            match snapshot_node(shared, c) {
                Some(s) => children.push(s),
                None => {
                    out.push(
                        Node::builder("collection")
                            .attr("name", name)
                            .attr("type", "error")
                            .children([error_node(500, "internal-server-error")])
                            .build(),
                    );
                    continue;
                }
            }
        } else {
            let (patches, m) = patches_after(c, since);
            more = m;
            if !patches.is_empty() {
                children.push(Node::builder("patches").children(patches).build());
            }
        }
        out.push(
            Node::builder("collection")
                .attr("name", name)
                .attr("version", c.version.to_string())
                .attr("has_more_patches", more.to_string())
                .children(children)
                .build(),
        );
    }
    for (name, version) in changed {
        notify_server_sync(shared, me, name, version);
    }
    Node::builder("iq")
        .attr("id", id.to_owned())
        .attr("type", "result")
        .attr("from", Jid::server_jid())
        .children([Node::builder("sync").children(out).build()])
        .build()
}

/// Tells the account's other companions (online now, or when they next log in) that a
/// collection changed.
fn notify_server_sync(shared: &Shared, me: &Jid, name: &str, version: u64) {
    let phone = me.user.as_str().to_owned();
    let notification = Node::builder("notification")
        .attr("from", Jid::pn(phone.clone()))
        .attr("type", "server_sync")
        .attr("id", fresh_id())
        .attr("t", unix_now())
        .children([Node::builder("collection")
            .attr("name", name.to_owned())
            .attr("version", version.to_string())
            .build()])
        .build();
    let devices: Vec<Jid> = {
        let st = shared.state.lock();
        route::user_devices(&st, &phone)
    };
    for d in devices.iter().filter(|d| *d != me && d.device != 0) {
        route::deliver(shared, d, notification.clone());
    }
}

/// The key share the phone sends: its one key, when `wanted` is empty or names it.
fn key_share(key: &PhoneKey, wanted: &[Vec<u8>]) -> Option<Message> {
    if !wanted.is_empty() && !wanted.contains(&key.id) {
        return None;
    }
    let share = AppStateSyncKeyShare {
        keys: vec![AppStateSyncKey {
            key_id: Some(AppStateSyncKeyId {
                key_id: Some(key.id.clone()),
                ..Default::default()
            }),
            key_data: Some(Box::new(AppStateSyncKeyData {
                key_data: Some(key.data.to_vec()),
                fingerprint: Some(AppStateSyncKeyFingerprint {
                    raw_id: Some(u32::from_be_bytes([
                        key.id[2], key.id[3], key.id[4], key.id[5],
                    ])),
                    current_index: Some(0),
                    device_indexes: vec![0],
                    ..Default::default()
                }),
                timestamp: Some(key.timestamp),
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    };
    Some(Message {
        protocol_message: Some(Box::new(ProtocolMessage {
            r#type: Some(protocol_message::Type::AppStateSyncKeyShare as i32),
            app_state_sync_key_share: Some(share),
            ..Default::default()
        })),
        ..Default::default()
    })
}

/// The phone sends `message` to one of its own companions (`category="peer"`).
async fn send_to_own_device(shared: &Shared, phone: &str, device: &Jid, message: &Message) {
    let Some(signal) = crate::e2e::phone_signal(shared, phone) else {
        return;
    };
    let plain = pad_message(&message.encode_to_vec(), &mut OsRng);
    let enc = {
        let _busy = signal.busy.lock().await;
        if !crate::e2e::ensure_session(shared, &signal, device).await {
            tracing::debug!(%device, "no session for the key share");
            return;
        }
        match signal.repo.encrypt_message(device, &plain).await {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(%device, "key share not encrypted: {e}");
                return;
            }
        }
    };
    let me = Jid::with_device(phone.to_owned(), Server::Pn, 0);
    let stanza = Node::builder("message")
        .attr("id", crate::e2e::message_id())
        .attr("to", device.clone())
        .attr("type", "text")
        .attr("category", "peer")
        .children([Node::builder("enc")
            .attr("v", "2")
            .attr("type", enc.kind.as_str())
            .bytes(Bytes::from(enc.ciphertext))
            .build()])
        .build();
    route::route_message(shared, &me, &stanza);
}

/// After a companion linked, before it is told to restart: the phone shares its
/// app-state sync key with it (unless turned off with
/// [`Sim::set_app_state_key_share`](crate::Sim::set_app_state_key_share)), so the share
/// waits in the device's queue and comes with its first login.
pub(crate) async fn after_link(shared: &Shared, phone: &str, device: u16) {
    let key = {
        let mut st = lock(shared);
        if !st.share_on_link {
            return;
        }
        st.phone_key(phone)
    };
    let Some(message) = key_share(&key, &[]) else {
        return;
    };
    let jid = Jid::with_device(phone.to_owned(), Server::Pn, device);
    send_to_own_device(shared, phone, &jid, &message).await;
}

/// The phone shares its key with every linked companion now; returns how many it sent
/// it to.
pub(crate) async fn share_with_companions(shared: &Shared, phone: &str) -> usize {
    let key = lock(shared).phone_key(phone);
    let Some(message) = key_share(&key, &[]) else {
        return 0;
    };
    let devices: Vec<Jid> = {
        let st = shared.state.lock();
        route::user_devices(&st, phone)
            .into_iter()
            .filter(|d| d.device != 0)
            .collect()
    };
    for d in &devices {
        send_to_own_device(shared, phone, d, &message).await;
    }
    devices.len()
}

/// The phone decrypted `message` (stanza id `id`) from `author`: a key request from one
/// of its own companions is answered with the keys it names that the phone holds, a
/// peer-data request with what it asks for.
pub(crate) async fn phone_received(
    shared: &Shared,
    phone: &str,
    author: &Jid,
    id: &str,
    message: &Message,
) {
    if author.user.as_str() != phone || author.device == 0 {
        return;
    }
    let Some(pm) = message.protocol_message.as_deref() else {
        return;
    };
    if pm.r#type == Some(protocol_message::Type::PeerDataOperationRequestMessage as i32) {
        let device = Jid::with_device(phone.to_owned(), Server::Pn, author.device);
        let Some(pdo) = pm.peer_data_operation_request_message.as_ref() else {
            return;
        };
        if let Some(request) = pdo.history_sync_on_demand_request.as_ref() {
            crate::history::on_demand(shared, phone, &device, id, request).await;
        }
        if !pdo.placeholder_message_resend_request.is_empty() {
            let answer = placeholder_answer(shared, phone, id, pdo);
            send_to_own_device(shared, phone, &device, &answer).await;
        }
        if let Some(request) = pdo.syncd_collection_fatal_recovery_request.as_ref()
            && let Some(answer) = recovery_answer(shared, phone, id, request)
        {
            send_to_own_device(shared, phone, &device, &answer).await;
        }
        return;
    }
    if pm.r#type == Some(protocol_message::Type::AppStateFatalExceptionNotification as i32) {
        let names: Vec<String> = pm
            .app_state_fatal_exception_notification
            .iter()
            .flat_map(|n| n.collection_names.iter().take(16).cloned())
            .collect();
        let mut st = lock(shared);
        if st.fatal_exceptions.len() < 1024 {
            st.fatal_exceptions.push((phone.to_owned(), names));
        }
        return;
    }
    if pm.r#type != Some(protocol_message::Type::AppStateSyncKeyRequest as i32) {
        return;
    }
    let wanted: Vec<Vec<u8>> = pm
        .app_state_sync_key_request
        .iter()
        .flat_map(|r| r.key_i_ds.iter().take(64))
        .filter_map(|k| k.key_id.clone())
        .collect();
    if wanted.is_empty() {
        return;
    }
    let key = {
        let mut st = lock(shared);
        if !st.answer_requests {
            return;
        }
        st.phone_key(phone)
    };
    if let Some(share) = key_share(&key, &wanted) {
        let device = Jid::with_device(phone.to_owned(), Server::Pn, author.device);
        send_to_own_device(shared, phone, &device, &share).await;
    }
}

/// The LTHash of `macs` (each value MAC expanded with HKDF-SHA256, info `WhatsApp Patch
/// Integrity`, to 64 little-endian u16 lanes added modulo 2^16).
fn lt_hash<'a>(macs: impl Iterator<Item = &'a [u8]>) -> [u8; 128] {
    let mut hash = [0u8; 128];
    for mac in macs {
        let Ok(e) = wa_crypto::hkdf_sha256(mac, None, b"WhatsApp Patch Integrity", 128) else {
            continue;
        };
        for (h, x) in hash.chunks_exact_mut(2).zip(e.chunks_exact(2)) {
            let v = u16::from_le_bytes([h[0], h[1]]).wrapping_add(u16::from_le_bytes([x[0], x[1]]));
            h.copy_from_slice(&v.to_le_bytes());
        }
    }
    hash
}

/// The phone decrypts one of its live records with its key: the `SyncActionData` and the
/// value MAC. `None` for a record under another key or that does not decrypt.
fn plaintext_record(key: &PhoneKey, record: &SyncdRecord) -> Option<SyncdPlainTextRecord> {
    use aes::cipher::BlockDecryptMut as _;
    let key_id = record.key_id.as_ref()?.id.as_deref()?;
    if key_id != key.id.as_slice() {
        return None;
    }
    let blob = record.value.as_ref()?.blob.as_deref()?;
    if blob.len() < 64 {
        return None;
    }
    let (enc, mac) = blob.split_at(blob.len() - 32);
    let keys = wa_crypto::hkdf_sha256(&key.data, None, b"WhatsApp Mutation Keys", 160).ok()?;
    let (iv, ct) = enc.split_at(16);
    let plain = cbc::Decryptor::<aes::Aes256>::new_from_slices(&keys[32..64], iv)
        .ok()?
        .decrypt_padded_vec_mut::<Pkcs7>(ct)
        .ok()?;
    Some(SyncdPlainTextRecord {
        value: Some(SyncActionData::decode(&plain[..]).ok()?),
        key_id: Some(key_id.to_vec()),
        mac: Some(mac.to_vec()),
        ..Default::default()
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// The phone's answer to a fatal recovery request (`id`) of its companion: the
/// collection's live records in plaintext with its version and LTHash, gzip-compressed,
/// unless [`RecoveryAnswer`] says otherwise. `None` when it does not answer.
fn recovery_answer(
    shared: &Shared,
    phone: &str,
    id: &str,
    request: &wa_proto::e2e::peer_data_operation_request_message::SyncDCollectionFatalRecoveryRequest,
) -> Option<Message> {
    use wa_proto::e2e::peer_data_operation_request_response_message::PeerDataOperationResult;
    use wa_proto::e2e::peer_data_operation_request_response_message::peer_data_operation_result::SyncDSnapshotFatalRecoveryResponse;
    use wa_proto::e2e::{PeerDataOperationRequestResponseMessage, PeerDataOperationRequestType};
    let mut st = lock(shared);
    let mode = st.recovery_answer;
    let asked = request.collection_name.as_deref().and_then(known)?;
    let name = match mode {
        RecoveryAnswer::Silent => return None,
        RecoveryAnswer::WrongCollection(other) => known(other)?,
        _ => asked,
    };
    let key = st.phone_key(phone);
    let (version, records) = st
        .collections
        .get(&(phone.to_owned(), name))
        .map(|c| {
            (
                c.version,
                c.records
                    .values()
                    .filter_map(|r| plaintext_record(&key, r))
                    .collect::<Vec<_>>(),
            )
        })
        .unwrap_or_default();
    drop(st);
    let mut hash = lt_hash(records.iter().filter_map(|r| r.mac.as_deref()));
    if mode == RecoveryAnswer::BadHash {
        hash[0] ^= 1;
    }
    let recovery = SyncdSnapshotRecovery {
        version: Some(RecoveryVersion {
            version: Some(version),
            ..Default::default()
        }),
        collection_name: Some(name.to_owned()),
        mutation_records: records,
        collection_lthash: Some(hash.to_vec()),
        ..Default::default()
    };
    let snapshot = match mode {
        RecoveryAnswer::Empty => None,
        RecoveryAnswer::BadCompression => Some(b"\x1f\x8bnot really gzip".to_vec()),
        RecoveryAnswer::Oversize(n) => Some(gzip(&vec![0u8; n])),
        RecoveryAnswer::Garbage => Some(gzip(&[0xff; 64])),
        _ => Some(gzip(&recovery.encode_to_vec())),
    };
    let result = PeerDataOperationResult {
        syncd_snapshot_fatal_recovery_response: Some(SyncDSnapshotFatalRecoveryResponse {
            collection_snapshot: snapshot,
            is_compressed: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    Some(Message {
        protocol_message: Some(Box::new(ProtocolMessage {
            r#type: Some(protocol_message::Type::PeerDataOperationRequestResponseMessage as i32),
            peer_data_operation_request_response_message: Some(
                PeerDataOperationRequestResponseMessage {
                    peer_data_operation_request_type: Some(
                        PeerDataOperationRequestType::CompanionSyncdSnapshotFatalRecovery as i32,
                    ),
                    stanza_id: Some(id.to_owned()),
                    peer_data_operation_result: vec![result],
                    ..Default::default()
                },
            ),
            ..Default::default()
        })),
        ..Default::default()
    })
}

/// The phone's answer to a placeholder-resend request (naming the request's id): each
/// named message it received and decrypted (looked up by id in its inbox, at most 32), as `WebMessageInfo` bytes;
/// messages it does not have are left out.
fn placeholder_answer(
    shared: &Shared,
    phone: &str,
    request_id: &str,
    pdo: &wa_proto::e2e::PeerDataOperationRequestMessage,
) -> Message {
    use wa_proto::e2e::peer_data_operation_request_response_message::PeerDataOperationResult;
    use wa_proto::e2e::peer_data_operation_request_response_message::peer_data_operation_result::PlaceholderMessageResendResponse;
    use wa_proto::e2e::{PeerDataOperationRequestResponseMessage, PeerDataOperationRequestType};
    let inbox = crate::e2e::inbox(shared, phone);
    let results = pdo
        .placeholder_message_resend_request
        .iter()
        .take(32)
        .filter_map(|r| {
            let id = r.message_key.as_ref()?.id.as_deref()?;
            let m = inbox.iter().rev().find(|m| m.id == id)?;
            let info = wa_proto::web::WebMessageInfo {
                key: Some(wa_proto::common::MessageKey {
                    remote_jid: Some(m.chat.to_string()),
                    from_me: Some(m.from.user.as_str() == phone),
                    id: Some(m.id.clone()),
                    participant: m.chat.is_group().then(|| m.from.to_non_ad().to_string()),
                    ..Default::default()
                }),
                message: Some(Box::new((*m.message).clone())),
                message_timestamp: Some(unix_now()),
                ..Default::default()
            };
            Some(PeerDataOperationResult {
                placeholder_message_resend_response: Some(PlaceholderMessageResendResponse {
                    web_message_info_bytes: Some(info.encode_to_vec()),
                    ..Default::default()
                }),
                ..Default::default()
            })
        })
        .collect();
    Message {
        protocol_message: Some(Box::new(ProtocolMessage {
            r#type: Some(protocol_message::Type::PeerDataOperationRequestResponseMessage as i32),
            peer_data_operation_request_response_message: Some(
                PeerDataOperationRequestResponseMessage {
                    peer_data_operation_request_type: Some(
                        PeerDataOperationRequestType::PlaceholderMessageResend as i32,
                    ),
                    peer_data_operation_result: results,
                    stanza_id: Some(request_id.to_owned()),
                    ..Default::default()
                },
            ),
            ..Default::default()
        })),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_proto::server_sync::{SyncdIndex, SyncdMutation, SyncdValue};

    fn patch(version: Option<u64>, index: u8, op: SyncdOperation) -> Vec<u8> {
        let mut m = SyncdMutation {
            record: Some(Box::new(SyncdRecord {
                index: Some(SyncdIndex {
                    blob: Some(vec![index; 32]),
                    ..Default::default()
                }),
                value: Some(SyncdValue {
                    blob: Some(vec![1; 80]),
                    ..Default::default()
                }),
                key_id: Some(KeyId {
                    id: Some(vec![0, 0, 1]),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        };
        m.set_operation(op);
        SyncdPatch {
            version: version.map(|v| SyncdVersion {
                version: Some(v),
                ..Default::default()
            }),
            mutations: vec![m],
            snapshot_mac: Some(vec![2; 32]),
            patch_mac: Some(vec![3; 32]),
            key_id: Some(KeyId {
                id: Some(vec![0, 0, 1]),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn pushes_apply_in_order_and_bound_history() {
        let mut c = CollectionStore::default();
        apply_push(&mut c, &patch(Some(1), 1, SyncdOperation::Set)).unwrap();
        apply_push(&mut c, &patch(None, 2, SyncdOperation::Set)).unwrap();
        assert_eq!(c.version, 2);
        assert_eq!(c.records.len(), 2);
        apply_push(&mut c, &patch(Some(3), 1, SyncdOperation::Remove)).unwrap();
        assert_eq!(c.records.len(), 1);
        // A patch claiming another version is a conflict and changes nothing.
        assert_eq!(
            apply_push(&mut c, &patch(Some(9), 3, SyncdOperation::Set)),
            Err((409, "conflict"))
        );
        assert_eq!(c.version, 3);
        assert_eq!(apply_push(&mut c, b"\xff\xff"), Err((400, "bad-request")));
        for i in 0..(MAX_PATCHES + 10) {
            apply_push(&mut c, &patch(None, (i % 200) as u8, SyncdOperation::Set)).unwrap();
        }
        assert_eq!(c.patches.len(), MAX_PATCHES);
        let (nodes, more) = patches_after(&c, c.version - 3);
        assert_eq!((nodes.len(), more), (3, false));
        let (nodes, more) = patches_after(&c, 0);
        assert_eq!((nodes.len(), more), (PATCHES_PER_REPLY, true));
    }

    #[test]
    fn fetches_from_any_version_are_answered() {
        let mut c = CollectionStore::default();
        assert!(!serves_snapshot(&c, 0, true), "nothing to snapshot yet");
        for _ in 0..(MAX_PATCHES + 2) {
            apply_push(&mut c, &patch(None, 1, SyncdOperation::Set)).unwrap();
        }
        let oldest = c.patches[0].0;
        assert_eq!(oldest, 3);
        assert!(serves_snapshot(&c, 0, false));
        assert!(serves_snapshot(&c, 1, false), "patch 2 is no longer kept");
        assert!(!serves_snapshot(&c, 2, false));
        assert!(!serves_snapshot(&c, c.version, false));
        assert!(serves_snapshot(&c, c.version, true));
        // Versions the collection never had, up to the largest.
        assert!(serves_snapshot(&c, c.version + 1, false));
        assert!(serves_snapshot(&c, u64::MAX, false));
    }

    #[test]
    fn tampering_flips_the_named_mac() {
        let mut s = AppStateServer::default();
        let c = s
            .collections
            .entry(("1555".into(), "regular_high"))
            .or_default();
        apply_push(c, &patch(None, 1, SyncdOperation::Set)).unwrap();
        let before = SyncdPatch::decode(&c.patches[0].1[..]).unwrap();
        assert!(s.tamper(
            "1555",
            "regular_high",
            AppStateTamper::PatchMac { version: 1 }
        ));
        assert!(s.tamper(
            "1555",
            "regular_high",
            AppStateTamper::ValueMac { version: 1 }
        ));
        assert!(!s.tamper(
            "1555",
            "regular_high",
            AppStateTamper::PatchMac { version: 7 }
        ));
        assert!(!s.tamper("1555", "regular", AppStateTamper::SnapshotMac));
        let c = &s.collections[&("1555".to_owned(), "regular_high")];
        let after = SyncdPatch::decode(&c.patches[0].1[..]).unwrap();
        assert_ne!(before.patch_mac, after.patch_mac);
        assert_ne!(before.mutations, after.mutations);
        assert_eq!(before.snapshot_mac, after.snapshot_mac);
    }
}
