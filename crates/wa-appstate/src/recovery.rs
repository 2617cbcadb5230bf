//! Fatal syncd recovery: a collection our primary device sends in plaintext
//! (`SyncdSnapshotRecovery`, in the answer to a `COMPANION_SYNCD_SNAPSHOT_FATAL_RECOVERY`
//! peer request), turned into a state the next patch can be verified against, as
//! whatsmeow's `ParseRecovery` / `ProcessRecovery` do.

use std::io::Read;

use prost::Message as _;
use wa_proto::syncd_snapshot_recovery::SyncdSnapshotRecovery;

use crate::keys::KeyCache;
use crate::mac::index_mac;
use crate::{DecodedPatch, Error, HashState, KeyLookup, LT_HASH_LEN, Mutation, Operation};

/// Decompresses (when `compressed`; gzip as whatsmeow reads it, zlib also accepted) and
/// decodes the `collectionSnapshot` of a recovery answer, refusing more than `max_len`
/// bytes of plaintext ([`Error::TooLarge`]) without ever holding more than `max_len + 1`.
///
/// # Errors
/// [`Error::TooLarge`], [`Error::Inflate`] for a corrupt stream, [`Error::Proto`] when the
/// bytes are not a `SyncdSnapshotRecovery`.
pub fn parse_recovery(
    snapshot: &[u8],
    compressed: bool,
    max_len: usize,
) -> Result<SyncdSnapshotRecovery, Error> {
    let plain;
    let bytes = if compressed {
        let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
        let mut out = Vec::with_capacity(snapshot.len().saturating_mul(4).min(max_len));
        let read = if snapshot.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(snapshot)
                .take(limit)
                .read_to_end(&mut out)
        } else {
            flate2::read::ZlibDecoder::new(snapshot)
                .take(limit)
                .read_to_end(&mut out)
        };
        read.map_err(|e| Error::Inflate(e.to_string()))?;
        plain = out;
        &plain[..]
    } else {
        snapshot
    };
    if bytes.len() > max_len {
        return Err(Error::TooLarge { limit: max_len });
    }
    Ok(SyncdSnapshotRecovery::decode(bytes)?)
}

/// Rebuilds the state of `collection` from a recovery: every record becomes a SET whose
/// index MAC is computed with its key, and whose value MAC is the one the record carries
/// (the ciphertext it authenticates is not part of a recovery, so it cannot be checked).
/// The LTHash of those value MACs must be the collection LTHash the recovery states, and
/// the state takes the recovery's version, so the next patch verifies against it.
///
/// # Errors
/// [`Error::Malformed`] for a recovery of another collection, without version or with a
/// record lacking its key id, value, index or a 32-byte MAC, or an index that is not a
/// JSON array of strings; [`Error::MissingKey`]; [`Error::RecoveryHash`].
pub fn apply_recovery<K: KeyLookup + ?Sized>(
    collection: &str,
    recovery: &SyncdSnapshotRecovery,
    keys: &K,
) -> Result<(HashState, DecodedPatch), Error> {
    if recovery.collection_name.as_deref() != Some(collection) {
        return Err(Error::Malformed("recovery of another collection"));
    }
    let version = recovery
        .version
        .as_ref()
        .and_then(|v| v.version)
        .filter(|v| *v > 0)
        .ok_or(Error::Malformed("recovery without version"))?;
    let stated: [u8; LT_HASH_LEN] = recovery
        .collection_lthash
        .as_deref()
        .and_then(|h| h.try_into().ok())
        .ok_or(Error::Malformed("recovery LTHash is not 128 bytes"))?;
    let mut cache = KeyCache::new(keys);
    let mut state = HashState::new();
    state.version = version;
    let mut mutations = Vec::with_capacity(recovery.mutation_records.len());
    for record in &recovery.mutation_records {
        let key_id = record
            .key_id
            .as_deref()
            .ok_or(Error::Malformed("recovery record without key id"))?;
        let data = record
            .value
            .as_ref()
            .ok_or(Error::Malformed("recovery record without value"))?;
        let index_json = data
            .index
            .as_deref()
            .ok_or(Error::Malformed("recovery record without index"))?;
        let value_mac: [u8; 32] = record
            .mac
            .as_deref()
            .and_then(|m| m.try_into().ok())
            .ok_or(Error::Malformed("recovery record MAC is not 32 bytes"))?;
        let index: Vec<String> = serde_json::from_slice(index_json)
            .map_err(|_| Error::Malformed("index is not a JSON array of strings"))?;
        let k = cache.get(key_id)?;
        let imac = index_mac(&k.index, index_json);
        state.apply(Operation::Set, &imac, &value_mac);
        mutations.push(Mutation {
            operation: Operation::Set,
            index,
            value: data.value.as_deref().cloned(),
            action_version: data.version,
            index_mac: imac,
            value_mac,
            key_id: key_id.to_vec(),
            patch_version: version,
        });
    }
    if !wa_crypto::ct_eq(&state.hash, &stated) {
        return Err(Error::RecoveryHash { version });
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
