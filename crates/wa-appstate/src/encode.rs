use prost::Message as _;
use rand_core::CryptoRngCore;
use wa_proto::server_sync::{
    KeyId, SyncdIndex, SyncdMutation, SyncdPatch, SyncdRecord, SyncdValue, SyncdVersion,
};
use wa_proto::sync_action::{SyncActionData, SyncActionValue};
use zeroize::Zeroizing;

use crate::mac::{encrypt_value, index_mac, patch_mac, snapshot_mac, value_mac};
use crate::{Collection, Error, HashState, MutationKeys, Operation};

/// One mutation to push: what [`crate::builders`] produce, or anything built by hand.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingMutation {
    /// The collection the index belongs to.
    pub collection: Collection,
    /// SET or REMOVE.
    pub operation: Operation,
    /// The index, written as a JSON array of strings.
    pub index: Vec<String>,
    /// The action value (its `timestamp` included).
    pub value: SyncActionValue,
    /// The action's version (`SyncActionData.version`).
    pub version: i32,
}

/// An encoded patch, ready to be sent in `<collection><patch>` and, once the server
/// accepted it, to become the collection's state.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedPatch {
    /// The collection the patch is for.
    pub collection: Collection,
    /// The patch as a protobuf value.
    pub patch: SyncdPatch,
    /// The serialized patch (the `<patch>` node's content).
    pub bytes: Vec<u8>,
    /// The state after the patch (version + 1). Store it only after the server
    /// accepted the push; until then the old state stays the truth.
    pub state: HashState,
}

/// Encodes mutations of one collection into a `SyncdPatch` on top of `state`, as
/// WhatsApp clients do before pushing a chat modification: each value is
/// `SyncActionData{index JSON, value, empty padding, version}`, AES-256-CBC encrypted
/// under a fresh IV from `rng`, MACed; the LTHash is updated, the version increased, and
/// the snapshot and patch MACs computed with the same key.
///
/// # Errors
/// [`Error::InvalidInput`] when `mutations` is empty or mixes collections;
/// [`Error::Malformed`] when `state` is at the last representable version (a corrupt
/// stored state: no patch can follow it).
pub fn encode_patch(
    mutations: &[OutgoingMutation],
    key_id: &[u8],
    key_data: &[u8],
    state: &HashState,
    rng: &mut impl CryptoRngCore,
) -> Result<EncodedPatch, Error> {
    let first = mutations
        .first()
        .ok_or(Error::InvalidInput("a patch needs at least one mutation"))?;
    let collection = first.collection;
    if mutations.iter().any(|m| m.collection != collection) {
        return Err(Error::InvalidInput(
            "all mutations of a patch must share one collection",
        ));
    }
    let version = state
        .version
        .checked_add(1)
        .ok_or(Error::Malformed("state version has no successor"))?;
    let name = collection.as_str();
    let keys = MutationKeys::expand(key_data);
    let mut new_state = state.clone();
    let mut records = Vec::with_capacity(mutations.len());
    let mut value_macs = Vec::with_capacity(mutations.len());
    for m in mutations {
        let index_json = serde_json::to_vec(&m.index)
            .map_err(|_| Error::InvalidInput("index does not serialize"))?;
        let data = SyncActionData {
            index: Some(index_json.clone()),
            value: Some(Box::new(m.value.clone())),
            padding: Some(Vec::new()),
            version: Some(m.version),
            ..Default::default()
        };
        let plain = Zeroizing::new(data.encode_to_vec());
        let mut iv = [0u8; 16];
        rng.fill_bytes(&mut iv);
        let enc = encrypt_value(&keys.value_encryption, &iv, &plain);
        let vmac = value_mac(&keys.value_mac, m.operation, key_id, &enc);
        let imac = index_mac(&keys.index, &index_json);
        new_state.apply(m.operation, &imac, &vmac);
        let mut blob = enc;
        blob.extend_from_slice(&vmac);
        let mut mutation = SyncdMutation {
            record: Some(Box::new(SyncdRecord {
                index: Some(SyncdIndex {
                    blob: Some(imac.to_vec()),
                    ..Default::default()
                }),
                value: Some(SyncdValue {
                    blob: Some(blob),
                    ..Default::default()
                }),
                key_id: Some(KeyId {
                    id: Some(key_id.to_vec()),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        };
        mutation.set_operation(m.operation.to_proto());
        records.push(mutation);
        value_macs.push(vmac);
    }
    new_state.version = version;
    let smac = snapshot_mac(&keys.snapshot_mac, &new_state.hash, new_state.version, name);
    let pmac = patch_mac(
        &keys.patch_mac,
        &smac,
        value_macs.iter().map(|v| &v[..]),
        new_state.version,
        name,
    );
    let patch = SyncdPatch {
        version: Some(SyncdVersion {
            version: Some(new_state.version),
            ..Default::default()
        }),
        mutations: records,
        snapshot_mac: Some(smac.to_vec()),
        patch_mac: Some(pmac.to_vec()),
        key_id: Some(KeyId {
            id: Some(key_id.to_vec()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let bytes = patch.encode_to_vec();
    Ok(EncodedPatch {
        collection,
        patch,
        bytes,
        state: new_state,
    })
}
