use prost::Message as _;
use wa_proto::server_sync::{SyncdMutations, SyncdPatch, SyncdRecord, SyncdSnapshot};
use wa_proto::sync_action::{SyncActionData, SyncActionValue};

use crate::keys::KeyCache;
use crate::lthash::Applied;
use crate::mac::{decrypt_value, index_mac, patch_mac, snapshot_mac, value_mac};
use crate::{Action, Error, HashState, KeyLookup, Operation};

/// Choices of the decoder. MAC verification is not among them: it is always on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeOptions {
    /// Refuse a REMOVE of an index the state does not hold ([`Error::UnknownRemove`])
    /// instead of reporting it in [`DecodedPatch::unknown_removes`]. Off by default,
    /// as in whatsmeow: WhatsApp does send such removes, and the snapshot MAC already
    /// proves that the resulting hash is the server's.
    pub reject_unknown_removes: bool,
}

impl DecodeOptions {
    /// Sets [`DecodeOptions::reject_unknown_removes`].
    pub fn reject_unknown_removes(mut self, yes: bool) -> Self {
        self.reject_unknown_removes = yes;
        self
    }
}

/// One verified, decrypted mutation.
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation {
    /// SET or REMOVE.
    pub operation: Operation,
    /// The index, decoded from its JSON array (e.g. `["mute", "123@s.whatsapp.net"]`).
    pub index: Vec<String>,
    /// The action value (absent when the sender left it out).
    pub value: Option<SyncActionValue>,
    /// The action's own version (`SyncActionData.version`), e.g. 2 for mute.
    pub action_version: Option<i32>,
    /// HMAC-SHA256 of the index JSON: the key of the record in the collection.
    pub index_mac: [u8; 32],
    /// The value MAC, as stored in [`HashState::index_value_map`].
    pub value_mac: [u8; 32],
    /// Id of the sync key that encrypted this record.
    pub key_id: Vec<u8>,
    /// The version of the patch or snapshot that carried the mutation.
    pub patch_version: u64,
}

impl Mutation {
    /// The mutation as a typed action (see [`Action`]).
    pub fn action(&self) -> Action {
        Action::from_parts(&self.index, self.value.as_ref())
    }
}

/// The result of decoding one patch or snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedPatch {
    /// The collection version after this patch or snapshot.
    pub version: u64,
    /// The mutations in wire order.
    pub mutations: Vec<Mutation>,
    /// Index MACs of REMOVEs that named an index the state did not hold.
    pub unknown_removes: Vec<[u8; 32]>,
}

/// Appends the mutations of a downloaded external blob (`SyncdPatch.externalMutations`,
/// a `SyncdMutations` message once the media layer fetched and decrypted it) to the patch,
/// as WhatsApp clients do before decoding it.
///
/// # Errors
/// [`Error::Proto`] when the blob is not a `SyncdMutations`; [`Error::Malformed`] when it
/// holds no mutation.
pub fn append_external_mutations(patch: &mut SyncdPatch, blob: &[u8]) -> Result<(), Error> {
    let list = SyncdMutations::decode(blob)?;
    if list.mutations.is_empty() {
        return Err(Error::Malformed("external mutations blob is empty"));
    }
    patch.mutations.extend(list.mutations);
    Ok(())
}

fn key_id_of(record: &SyncdRecord) -> Result<&[u8], Error> {
    record
        .key_id
        .as_ref()
        .and_then(|k| k.id.as_deref())
        .ok_or(Error::Malformed("record without key id"))
}

/// Verifies and decrypts one record: value MAC, decryption, SyncActionData, index MAC.
fn decode_record<K: KeyLookup + ?Sized>(
    position: usize,
    operation: Operation,
    record: &SyncdRecord,
    keys: &mut KeyCache<'_, K>,
    patch_version: u64,
) -> Result<Mutation, Error> {
    let key_id = key_id_of(record)?;
    let blob = record
        .value
        .as_ref()
        .and_then(|v| v.blob.as_deref())
        .ok_or(Error::Malformed("record without value"))?;
    // IV (16) + at least one cipher block (16) + value MAC (32).
    if blob.len() < 64 {
        return Err(Error::Malformed("record value too short"));
    }
    let (enc, given_value_mac) = blob.split_at(blob.len() - 32);
    let index_blob = record
        .index
        .as_ref()
        .and_then(|i| i.blob.as_deref())
        .ok_or(Error::Malformed("record without index"))?;

    let k = keys.get(key_id)?;
    let expected = value_mac(&k.value_mac, operation, key_id, enc);
    if !wa_crypto::ct_eq(&expected, given_value_mac) {
        return Err(Error::ValueMac { mutation: position });
    }
    let plain =
        decrypt_value(&k.value_encryption, enc).ok_or(Error::Decrypt { mutation: position })?;
    let data = SyncActionData::decode(&plain[..])?;
    let index_json = data
        .index
        .as_deref()
        .ok_or(Error::Malformed("action data without index"))?;
    if !wa_crypto::ct_eq(&index_mac(&k.index, index_json), index_blob) {
        return Err(Error::IndexMac { mutation: position });
    }
    let index: Vec<String> = serde_json::from_slice(index_json)
        .map_err(|_| Error::Malformed("index is not a JSON array of strings"))?;

    let mut imac = [0u8; 32];
    imac.copy_from_slice(index_blob); // length checked by ct_eq above
    let mut vmac = [0u8; 32];
    vmac.copy_from_slice(given_value_mac);
    Ok(Mutation {
        operation,
        index,
        value: data.value.map(|v| *v),
        action_version: data.version,
        index_mac: imac,
        value_mac: vmac,
        key_id: key_id.to_vec(),
        patch_version,
    })
}

/// Undo log for an in-place update of a [`HashState`].
struct Undo {
    version: u64,
    hash: [u8; 128],
    entries: Vec<([u8; 32], Option<[u8; 32]>)>,
}

impl Undo {
    fn start(state: &HashState) -> Self {
        Self {
            version: state.version,
            hash: state.hash,
            entries: Vec::new(),
        }
    }

    fn rollback(self, state: &mut HashState) {
        for (index, prev) in self.entries.into_iter().rev() {
            match prev {
                Some(v) => {
                    state.index_value_map.insert(index, v);
                }
                None => {
                    state.index_value_map.remove(&index);
                }
            }
        }
        state.version = self.version;
        state.hash = self.hash;
    }
}

/// Applies decoded mutations to `state`, recording what to undo.
fn apply_all(
    state: &mut HashState,
    mutations: &[Mutation],
    opts: &DecodeOptions,
    undo: &mut Undo,
) -> Result<Vec<[u8; 32]>, Error> {
    let mut unknown = Vec::new();
    for (i, m) in mutations.iter().enumerate() {
        let (applied, prev) = state.apply_logged(m.operation, &m.index_mac, &m.value_mac);
        if applied == Applied::RemovedUnknown {
            if opts.reject_unknown_removes {
                return Err(Error::UnknownRemove { mutation: i });
            }
            unknown.push(m.index_mac);
        } else {
            undo.entries.push((m.index_mac, prev));
        }
    }
    Ok(unknown)
}

/// Verifies and decodes one patch of `collection` against `state`, and on success moves
/// `state` to the patch's version.
///
/// Order of checks: every record's value MAC (before decrypting it), its decryption and
/// `SyncActionData`, its index MAC; then the LTHash is updated and the snapshot MAC
/// (with the patch's key) and the patch MAC are verified. On any error `state` is left
/// exactly as it was.
///
/// `patch.version` must be set (the socket layer fills it from the collection's version
/// attribute + 1 when the server leaves it out, as WhatsApp clients do); external
/// mutations must already be appended ([`append_external_mutations`]).
///
/// # Errors
/// [`Error::MissingKey`], [`Error::ValueMac`], [`Error::Decrypt`], [`Error::IndexMac`],
/// [`Error::SnapshotMac`], [`Error::PatchMac`], [`Error::UnknownRemove`] (only when
/// asked), [`Error::Malformed`] / [`Error::Proto`] for missing fields or bad protobufs.
pub fn decode_patch<K: KeyLookup + ?Sized>(
    collection: &str,
    patch: &SyncdPatch,
    state: &mut HashState,
    keys: &K,
    opts: &DecodeOptions,
) -> Result<DecodedPatch, Error> {
    let version = patch
        .version
        .as_ref()
        .and_then(|v| v.version)
        .ok_or(Error::Malformed("patch without version"))?;
    let patch_key_id = patch
        .key_id
        .as_ref()
        .and_then(|k| k.id.as_deref())
        .ok_or(Error::Malformed("patch without key id"))?;
    if patch.external_mutations.is_some() && patch.mutations.is_empty() {
        return Err(Error::Malformed(
            "external mutations not appended before decoding",
        ));
    }

    let mut cache = KeyCache::new(keys);
    let mut mutations = Vec::with_capacity(patch.mutations.len());
    for (i, m) in patch.mutations.iter().enumerate() {
        let op = Operation::from_wire(m.operation)?;
        let record = m
            .record
            .as_ref()
            .ok_or(Error::Malformed("mutation without record"))?;
        mutations.push(decode_record(i, op, record, &mut cache, version)?);
    }

    let mut undo = Undo::start(state);
    let result = (|| {
        let unknown = apply_all(state, &mutations, opts, &mut undo)?;
        state.version = version;
        let k = cache.get(patch_key_id)?;
        let smac = snapshot_mac(&k.snapshot_mac, &state.hash, version, collection);
        if !wa_crypto::ct_eq(&smac, patch.snapshot_mac()) {
            return Err(Error::SnapshotMac { version });
        }
        let pmac = patch_mac(
            &k.patch_mac,
            patch.snapshot_mac(),
            mutations.iter().map(|m| &m.value_mac[..]),
            version,
            collection,
        );
        if !wa_crypto::ct_eq(&pmac, patch.patch_mac()) {
            return Err(Error::PatchMac { version });
        }
        Ok(unknown)
    })();
    match result {
        Ok(unknown_removes) => Ok(DecodedPatch {
            version,
            mutations,
            unknown_removes,
        }),
        Err(e) => {
            undo.rollback(state);
            Err(e)
        }
    }
}

/// Verifies and decodes a full snapshot of `collection`, returning the state it
/// defines (a snapshot replaces whatever state the client had) and its records as SET
/// mutations.
///
/// Every record's value and index MACs are checked, then the snapshot MAC over the
/// LTHash of all records, the version and the name, with the snapshot's key.
///
/// # Errors
/// As [`decode_patch`], without [`Error::PatchMac`].
pub fn decode_snapshot<K: KeyLookup + ?Sized>(
    collection: &str,
    snapshot: &SyncdSnapshot,
    keys: &K,
) -> Result<(HashState, DecodedPatch), Error> {
    let version = snapshot
        .version
        .as_ref()
        .and_then(|v| v.version)
        .ok_or(Error::Malformed("snapshot without version"))?;
    let key_id = snapshot
        .key_id
        .as_ref()
        .and_then(|k| k.id.as_deref())
        .ok_or(Error::Malformed("snapshot without key id"))?;

    let mut cache = KeyCache::new(keys);
    let mut state = HashState::new();
    state.version = version;
    let mut mutations = Vec::with_capacity(snapshot.records.len());
    for (i, record) in snapshot.records.iter().enumerate() {
        let m = decode_record(i, Operation::Set, record, &mut cache, version)?;
        state.apply(Operation::Set, &m.index_mac, &m.value_mac);
        mutations.push(m);
    }
    let k = cache.get(key_id)?;
    let mac = snapshot_mac(&k.snapshot_mac, &state.hash, version, collection);
    let given = snapshot.mac.as_deref().unwrap_or(&[]);
    if !wa_crypto::ct_eq(&mac, given) {
        return Err(Error::SnapshotMac { version });
    }
    Ok((
        state,
        DecodedPatch {
            version,
            mutations,
            unknown_removes: Vec::new(),
        },
    ))
}

/// Decodes what one sync round returned for a collection: an optional snapshot, then the
/// patches in order (whatsmeow's `DecodePatches`). All or nothing: `state` is replaced
/// only when the snapshot and every patch verified.
///
/// # Errors
/// The first error of [`decode_snapshot`] or [`decode_patch`].
pub fn decode_patch_list<K: KeyLookup + ?Sized>(
    collection: &str,
    snapshot: Option<&SyncdSnapshot>,
    patches: &[SyncdPatch],
    state: &mut HashState,
    keys: &K,
    opts: &DecodeOptions,
) -> Result<Vec<DecodedPatch>, Error> {
    let mut out = Vec::with_capacity(patches.len() + 1);
    let mut work = match snapshot {
        Some(s) => {
            let (st, decoded) = decode_snapshot(collection, s, keys)?;
            out.push(decoded);
            st
        }
        None => state.clone(),
    };
    for p in patches {
        out.push(decode_patch(collection, p, &mut work, keys, opts)?);
    }
    *state = work;
    Ok(out)
}
