//! Every altered part of a patch or snapshot is refused with its own error, and a refused
//! patch leaves the state untouched.

mod common;

use std::collections::HashMap;

use common::*;
use prost::Message as _;
use wa_appstate::{
    Collection, DecodeOptions, Error, HashState, MutationKeys, Operation, OutgoingMutation,
    builders, decode_patch, decode_patch_list, decode_snapshot, encode_patch, snapshot_mac,
    value_mac,
};
use wa_proto::server_sync::{KeyId, SyncdPatch, SyncdSnapshot, SyncdVersion};

const JID: &str = "15551234567@s.whatsapp.net";

/// Baileys' encoded mute patch (version 1 over the empty state).
fn mute_patch() -> (String, SyncdPatch) {
    let v = vectors();
    let p = &v["patches"][0];
    assert_eq!(p["name"], "mute");
    let patch = SyncdPatch::decode(&unhex(&p["syncdPatchProtoHex"])[..]).expect("proto");
    (p["collection"].as_str().expect("name").to_owned(), patch)
}

fn value_blob(p: &mut SyncdPatch, i: usize) -> &mut Vec<u8> {
    p.mutations[i]
        .record
        .as_mut()
        .and_then(|r| r.value.as_mut())
        .and_then(|v| v.blob.as_mut())
        .expect("value blob")
}

fn index_blob(p: &mut SyncdPatch, i: usize) -> &mut Vec<u8> {
    p.mutations[i]
        .record
        .as_mut()
        .and_then(|r| r.index.as_mut())
        .and_then(|v| v.blob.as_mut())
        .expect("index blob")
}

/// Decodes over a fresh state and checks that a failure left it untouched.
fn decode_fresh(
    name: &str,
    patch: &SyncdPatch,
    keys: &HashMap<Vec<u8>, Vec<u8>>,
) -> Result<(), Error> {
    let mut state = HashState::new();
    let r = decode_patch(name, patch, &mut state, keys, &DecodeOptions::default());
    if r.is_err() {
        assert_eq!(
            state,
            HashState::new(),
            "a refused patch must not change the state"
        );
    }
    r.map(|_| ())
}

#[test]
fn untampered_patch_decodes() {
    let (name, patch) = mute_patch();
    decode_fresh(&name, &patch, &keys()).expect("the original decodes");
}

#[test]
fn flipped_value_mac_is_value_mac_error() {
    let (name, mut patch) = mute_patch();
    let blob = value_blob(&mut patch, 0);
    let last = blob.len() - 1;
    blob[last] ^= 0x01;
    assert_eq!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::ValueMac { mutation: 0 })
    );
}

#[test]
fn flipped_ciphertext_is_value_mac_error() {
    // The value MAC covers IV || ciphertext, so the change is caught before decryption.
    let (name, mut patch) = mute_patch();
    value_blob(&mut patch, 0)[20] ^= 0x80;
    assert_eq!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::ValueMac { mutation: 0 })
    );
    let (name, mut patch) = mute_patch();
    value_blob(&mut patch, 0)[3] ^= 0x80; // in the IV
    assert_eq!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::ValueMac { mutation: 0 })
    );
}

#[test]
fn remaced_garbage_ciphertext_is_decrypt_error() {
    // A key holder who re-MACs a damaged ciphertext gets past the value MAC, then fails
    // at the padding.
    let (name, mut patch) = mute_patch();
    let mk = MutationKeys::expand(&[0x7f; 32]);
    let blob = value_blob(&mut patch, 0);
    let n = blob.len() - 32;
    blob[n - 1] ^= 0x55;
    let mac = value_mac(&mk.value_mac, Operation::Set, &KEY_ID, &blob[..n]);
    blob[n..].copy_from_slice(&mac);
    assert_eq!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::Decrypt { mutation: 0 })
    );
}

#[test]
fn flipped_index_is_index_mac_error() {
    let (name, mut patch) = mute_patch();
    index_blob(&mut patch, 0)[0] ^= 0x01;
    assert_eq!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::IndexMac { mutation: 0 })
    );
    let (name, mut patch) = mute_patch();
    index_blob(&mut patch, 0).pop();
    assert_eq!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::IndexMac { mutation: 0 })
    );
}

#[test]
fn value_moved_to_another_index_is_index_mac_error() {
    // Take the encrypted value of "pin" and pair it with mute's index MAC.
    let (name, mut patch) = mute_patch();
    let v = vectors();
    let pin = SyncdPatch::decode(&unhex(&v["patches"][1]["syncdPatchProtoHex"])[..]).expect("pin");
    patch.mutations[0].record.as_mut().expect("record").value = pin.mutations[0]
        .record
        .as_ref()
        .expect("record")
        .value
        .clone();
    assert_eq!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::IndexMac { mutation: 0 })
    );
}

#[test]
fn flipped_snapshot_mac_is_snapshot_mac_error() {
    let (name, mut patch) = mute_patch();
    patch.snapshot_mac.as_mut().expect("snapshot mac")[5] ^= 0x01;
    assert_eq!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::SnapshotMac { version: 1 })
    );
}

#[test]
fn flipped_patch_mac_is_patch_mac_error() {
    let (name, mut patch) = mute_patch();
    patch.patch_mac.as_mut().expect("patch mac")[31] ^= 0x01;
    assert_eq!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::PatchMac { version: 1 })
    );
}

#[test]
fn wrong_collection_or_version_or_base_state_fails_the_snapshot_mac() {
    let (_, patch) = mute_patch();
    assert_eq!(
        decode_fresh("regular_low", &patch, &keys()),
        Err(Error::SnapshotMac { version: 1 })
    );
    let (name, mut patch) = mute_patch();
    patch.version = Some(SyncdVersion {
        version: Some(2),
        ..Default::default()
    });
    assert_eq!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::SnapshotMac { version: 2 })
    );

    // A patch meant for another base state: unmute (for the state after mute) over a
    // state that also holds another index.
    let v = vectors();
    let unmute =
        SyncdPatch::decode(&unhex(&v["patches"][2]["syncdPatchProtoHex"])[..]).expect("unmute");
    assert_eq!(v["patches"][2]["name"], "unmute");
    let mut state = HashState::new();
    let (name, patch) = mute_patch();
    decode_patch(
        &name,
        &patch,
        &mut state,
        &keys(),
        &DecodeOptions::default(),
    )
    .expect("mute");
    state.apply(Operation::Set, &[9; 32], &[9; 32]);
    let before = state.clone();
    assert_eq!(
        decode_patch(
            "regular_high",
            &unmute,
            &mut state,
            &keys(),
            &DecodeOptions::default()
        ),
        Err(Error::SnapshotMac { version: 2 })
    );
    assert_eq!(state, before);

    // Applying the same patch twice is a no-op the second time (SET of the same value
    // subtracts and re-adds it), so the MACs still verify and the state is unchanged.
    let (name, patch) = mute_patch();
    let mut state = HashState::new();
    decode_patch(
        &name,
        &patch,
        &mut state,
        &keys(),
        &DecodeOptions::default(),
    )
    .expect("first");
    let before = state.clone();
    decode_patch(
        &name,
        &patch,
        &mut state,
        &keys(),
        &DecodeOptions::default(),
    )
    .expect("again");
    assert_eq!(state, before);
}

#[test]
fn missing_keys_are_named() {
    let (name, patch) = mute_patch();
    assert_eq!(
        decode_fresh(&name, &patch, &HashMap::new()),
        Err(Error::MissingKey(KEY_ID.to_vec()))
    );
    // Records decode, but the patch-level key (for the snapshot/patch MACs) is unknown.
    let (name, mut patch) = mute_patch();
    patch.key_id = Some(KeyId {
        id: Some(b"other".to_vec()),
        ..Default::default()
    });
    assert_eq!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::MissingKey(b"other".to_vec()))
    );
}

#[test]
fn malformed_inputs_are_refused() {
    let (name, mut patch) = mute_patch();
    patch.mutations[0].operation = Some(7);
    assert!(matches!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::Malformed(_))
    ));

    let (name, mut patch) = mute_patch();
    value_blob(&mut patch, 0).truncate(40);
    assert!(matches!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::Malformed(_))
    ));

    let (name, mut patch) = mute_patch();
    patch.version = None;
    assert!(matches!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::Malformed(_))
    ));

    let (name, mut patch) = mute_patch();
    patch.mutations[0].record.as_mut().expect("record").key_id = None;
    assert!(matches!(
        decode_fresh(&name, &patch, &keys()),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn failure_in_a_later_mutation_rolls_back_earlier_ones() {
    let keys = keys();
    let start = encode_patch(
        &[builders::mute(JID, builders::MuteUntil::Forever, 1)],
        &KEY_ID,
        &[0x7f; 32],
        &HashState::new(),
        &mut rand_core::OsRng,
    )
    .expect("encode");
    let mut state = start.state.clone();
    let mut two = encode_patch(
        &[
            builders::mute(JID, builders::MuteUntil::Unmuted, 2),
            builders::mute("1@s.whatsapp.net", builders::MuteUntil::Forever, 2),
        ],
        &KEY_ID,
        &[0x7f; 32],
        &state,
        &mut rand_core::OsRng,
    )
    .expect("encode")
    .patch;
    two.patch_mac.as_mut().expect("mac")[0] ^= 1;
    assert_eq!(
        decode_patch(
            "regular_high",
            &two,
            &mut state,
            &keys,
            &DecodeOptions::default()
        ),
        Err(Error::PatchMac { version: 2 })
    );
    assert_eq!(state, start.state);
}

#[test]
fn a_state_at_the_last_version_cannot_be_encoded_on() {
    let mute = [builders::mute(JID, builders::MuteUntil::Forever, 1)];
    let mut state = HashState::new();
    state.version = u64::MAX;
    assert!(matches!(
        encode_patch(&mute, &KEY_ID, &[0x7f; 32], &state, &mut rand_core::OsRng),
        Err(Error::Malformed(_))
    ));
    state.version = u64::MAX - 1;
    let next =
        encode_patch(&mute, &KEY_ID, &[0x7f; 32], &state, &mut rand_core::OsRng).expect("encode");
    assert_eq!(next.state.version, u64::MAX);
}

fn remove_of(index: &[&str]) -> OutgoingMutation {
    let mut m = builders::contact(index[1], None, 5);
    m.index = index.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(m.operation, Operation::Remove);
    m
}

#[test]
fn remove_of_unknown_index_is_reported_or_refused() {
    let keys = keys();
    let enc = encode_patch(
        &[remove_of(&["contact", JID])],
        &KEY_ID,
        &[0x7f; 32],
        &HashState::new(),
        &mut rand_core::OsRng,
    )
    .expect("encode");
    let imac = enc.patch.mutations[0]
        .record
        .as_ref()
        .and_then(|r| r.index.as_ref())
        .and_then(|i| i.blob.clone())
        .expect("index");

    let mut state = HashState::new();
    let strict = DecodeOptions::default().reject_unknown_removes(true);
    assert_eq!(
        decode_patch(
            "critical_unblock_low",
            &enc.patch,
            &mut state,
            &keys,
            &strict
        ),
        Err(Error::UnknownRemove { mutation: 0 })
    );
    assert_eq!(state, HashState::new());

    let d = decode_patch(
        "critical_unblock_low",
        &enc.patch,
        &mut state,
        &keys,
        &DecodeOptions::default(),
    )
    .expect("lenient decode");
    assert_eq!(d.unknown_removes, vec![arr32(&imac)]);
    assert_eq!(d.mutations[0].operation, Operation::Remove);
    assert_eq!(state, enc.state);
    assert_eq!(state.hash, [0u8; 128]);
    assert_eq!(state.version, 1);
}

/// A snapshot holding the records of `muts`, MACed as the server does.
fn snapshot_of(muts: &[OutgoingMutation], version: u64) -> (SyncdSnapshot, HashState) {
    let enc = encode_patch(
        muts,
        &KEY_ID,
        &[0x7f; 32],
        &HashState::new(),
        &mut rand_core::OsRng,
    )
    .expect("encode");
    let mk = MutationKeys::expand(&[0x7f; 32]);
    let name = muts[0].collection.as_str();
    let mut state = enc.state.clone();
    state.version = version;
    let snap = SyncdSnapshot {
        version: Some(SyncdVersion {
            version: Some(version),
            ..Default::default()
        }),
        records: enc
            .patch
            .mutations
            .iter()
            .filter_map(|m| m.record.as_deref().cloned())
            .collect(),
        mac: Some(snapshot_mac(&mk.snapshot_mac, &state.hash, version, name).to_vec()),
        key_id: Some(KeyId {
            id: Some(KEY_ID.to_vec()),
            ..Default::default()
        }),
        ..Default::default()
    };
    (snap, state)
}

#[test]
fn snapshot_decodes_and_each_tamper_is_refused() {
    let keys = keys();
    let muts: Vec<_> = (0..5)
        .map(|i| builders::pin(&format!("{i}@s.whatsapp.net"), i % 2 == 0, 7))
        .collect();
    let (snap, expected) = snapshot_of(&muts, 42);
    let (state, d) = decode_snapshot("regular_low", &snap, &keys).expect("snapshot");
    assert_eq!(state, expected);
    assert_eq!(state.hash, state.recompute_hash());
    assert_eq!(d.version, 42);
    assert_eq!(d.mutations.len(), 5);
    assert!(
        d.mutations
            .iter()
            .all(|m| m.operation == Operation::Set && m.patch_version == 42)
    );

    let mut bad = snap.clone();
    bad.mac.as_mut().expect("mac")[0] ^= 1;
    assert_eq!(
        decode_snapshot("regular_low", &bad, &keys),
        Err(Error::SnapshotMac { version: 42 })
    );

    let mut bad = snap.clone();
    let blob = bad.records[3]
        .value
        .as_mut()
        .and_then(|v| v.blob.as_mut())
        .expect("blob");
    blob[17] ^= 1;
    assert_eq!(
        decode_snapshot("regular_low", &bad, &keys),
        Err(Error::ValueMac { mutation: 3 })
    );

    let mut bad = snap.clone();
    bad.records[2]
        .index
        .as_mut()
        .and_then(|i| i.blob.as_mut())
        .expect("index")[9] ^= 1;
    assert_eq!(
        decode_snapshot("regular_low", &bad, &keys),
        Err(Error::IndexMac { mutation: 2 })
    );

    let mut bad = snap.clone();
    bad.records.pop();
    assert_eq!(
        decode_snapshot("regular_low", &bad, &keys),
        Err(Error::SnapshotMac { version: 42 })
    );

    assert_eq!(
        decode_snapshot("regular_low", &snap, &HashMap::new()),
        Err(Error::MissingKey(KEY_ID.to_vec()))
    );
}

#[test]
fn patch_list_is_all_or_nothing() {
    let keys = keys();
    let muts = vec![builders::pin(JID, true, 1)];
    let (snap, snap_state) = snapshot_of(&muts, 10);
    let p1 = encode_patch(
        &[builders::pin(JID, false, 2)],
        &KEY_ID,
        &[0x7f; 32],
        &snap_state,
        &mut rand_core::OsRng,
    )
    .expect("p1");
    let p2 = encode_patch(
        &[builders::pin("2@s.whatsapp.net", true, 3)],
        &KEY_ID,
        &[0x7f; 32],
        &p1.state,
        &mut rand_core::OsRng,
    )
    .expect("p2");

    let mut state = HashState::new();
    let out = decode_patch_list(
        Collection::RegularLow.as_str(),
        Some(&snap),
        &[p1.patch.clone(), p2.patch.clone()],
        &mut state,
        &keys,
        &DecodeOptions::default(),
    )
    .expect("list");
    assert_eq!(out.len(), 3);
    assert_eq!(state, p2.state);
    assert_eq!(state.version, 12);

    let mut bad2 = p2.patch.clone();
    bad2.patch_mac.as_mut().expect("mac")[1] ^= 1;
    let mut state = HashState::new();
    assert_eq!(
        decode_patch_list(
            "regular_low",
            Some(&snap),
            &[p1.patch, bad2],
            &mut state,
            &keys,
            &DecodeOptions::default()
        ),
        Err(Error::PatchMac { version: 12 })
    );
    assert_eq!(state, HashState::new());
}
