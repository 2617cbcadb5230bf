//! Known-answer tests against Baileys 7.0.0-rc14 (tests/vectors/app_state.json).

mod common;

use base64::Engine as _;
use common::*;
use prost::Message as _;
use serde_json::Value;
use wa_appstate::{
    Action, Collection, DecodeOptions, HashState, MutationKeys, Operation, OutgoingMutation,
    builders, decode_patch, encode_patch, index_mac, lt_hash_add, lt_hash_expand, lt_hash_subtract,
    patch_mac, snapshot_mac,
};
use wa_proto::server_sync::SyncdPatch;
use wa_proto::sync_action::{MuteAction, PinAction, SyncActionValue};

#[test]
fn mutation_key_expansion() {
    let v = vectors();
    let k = &v["appStateKey"];
    assert_eq!(unhex(&k["keyId"]), KEY_ID);
    let keys = MutationKeys::expand(&unhex(&k["keyData"]));
    for set in ["mutationKeysIndependent", "mutationKeysBridge"] {
        let e = &k[set];
        assert_eq!(keys.index.to_vec(), unhex(&e["indexKey"]), "{set}");
        assert_eq!(
            keys.value_encryption.to_vec(),
            unhex(&e["valueEncryptionKey"])
        );
        assert_eq!(keys.value_mac.to_vec(), unhex(&e["valueMacKey"]));
        assert_eq!(keys.snapshot_mac.to_vec(), unhex(&e["snapshotMacKey"]));
        assert_eq!(keys.patch_mac.to_vec(), unhex(&e["patchMacKey"]));
    }
}

#[test]
fn lthash_cases() {
    let v = vectors();
    let l = &v["lthash"];
    assert_eq!(l["info"], "WhatsApp Patch Integrity");
    let a = unhex(&l["items"]["A"]);
    assert_eq!(lt_hash_expand(&a).to_vec(), unhex(&l["expandA"]));
    let cases = l["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 6);
    for c in cases {
        let mut h = arr128(&unhex(&c["base"]));
        for s in c["subtract"].as_array().expect("subtract") {
            lt_hash_subtract(&mut h, &unhex(s));
        }
        for s in c["add"].as_array().expect("add") {
            lt_hash_add(&mut h, &unhex(s));
        }
        assert_eq!(h.to_vec(), unhex(&c["result"]), "case {}", c["name"]);
    }
}

fn state_from(v: &Value, map_from: Option<&Value>) -> HashState {
    let mut s = HashState::new();
    s.version = v["version"].as_u64().expect("version");
    s.hash = arr128(&unhex(&v["hash"]));
    if let Some(map) = map_from.and_then(|m| m["indexValueMap"].as_object()) {
        for (k, val) in map {
            let idx = base64::engine::general_purpose::STANDARD
                .decode(k)
                .expect("b64");
            s.index_value_map.insert(arr32(&idx), arr32(&unhex(val)));
        }
    }
    s
}

/// The mutation Baileys was asked to encode, as an `OutgoingMutation`.
fn outgoing(p: &Value) -> OutgoingMutation {
    let c = &p["create"];
    let sa = &c["syncAction"];
    let mut value = SyncActionValue {
        timestamp: sa["timestamp"].as_i64(),
        ..Default::default()
    };
    if let Some(m) = sa.get("muteAction") {
        value.mute_action = Some(MuteAction {
            muted: m["muted"].as_bool(),
            mute_end_timestamp: m.get("muteEndTimestamp").and_then(Value::as_i64),
            ..Default::default()
        });
    }
    if let Some(m) = sa.get("pinAction") {
        value.pin_action = Some(PinAction {
            pinned: m["pinned"].as_bool(),
            ..Default::default()
        });
    }
    assert_eq!(c["operation"], 0);
    OutgoingMutation {
        collection: Collection::from_name(p["collection"].as_str().expect("collection"))
            .expect("known collection"),
        operation: Operation::Set,
        index: c["index"]
            .as_array()
            .expect("index")
            .iter()
            .map(|s| s.as_str().expect("str").to_owned())
            .collect(),
        value,
        version: c["apiVersion"].as_i64().expect("apiVersion") as i32,
    }
}

/// The patches with their full "before" state (unmute/unpin continue from mute/pin).
fn patches_with_states() -> Vec<(Value, HashState, HashState)> {
    let v = vectors();
    let list = v["patches"].as_array().expect("patches").clone();
    let mut out = Vec::new();
    for p in &list {
        let before = match p["name"].as_str() {
            Some("unmute") => {
                let prev = list.iter().find(|q| q["name"] == "mute").expect("mute");
                state_from(&prev["stateAfter"], Some(&prev["stateAfter"]))
            }
            Some("unpin") => {
                let prev = list.iter().find(|q| q["name"] == "pin").expect("pin");
                state_from(&prev["stateAfter"], Some(&prev["stateAfter"]))
            }
            _ => HashState::new(),
        };
        let declared = state_from(&p["stateBefore"], None);
        assert_eq!(before.version, declared.version);
        assert_eq!(before.hash, declared.hash);
        let after = state_from(&p["stateAfter"], Some(&p["stateAfter"]));
        out.push((p.clone(), before, after));
    }
    assert_eq!(out.len(), 4);
    out
}

#[test]
fn builders_match_what_baileys_encoded() {
    let jid = "15551234567@s.whatsapp.net";
    let ts = 1_700_000_000_000;
    for (p, _, _) in patches_with_states() {
        let built = match p["name"].as_str().expect("name") {
            "mute" => builders::mute(jid, builders::MuteUntil::Until(1_700_003_600_000), ts),
            "unmute" => builders::mute(jid, builders::MuteUntil::Unmuted, ts),
            "pin" => builders::pin(jid, true, ts),
            "unpin" => builders::pin(jid, false, ts),
            other => panic!("unexpected patch {other}"),
        };
        assert_eq!(built, outgoing(&p), "{}", p["name"]);
    }
}

#[test]
fn encode_is_byte_identical_to_baileys() {
    let keys = keys();
    for (p, before, after) in patches_with_states() {
        let blob = unhex(&p["valueBlob"]);
        let iv = blob[..16].to_vec();
        let enc = encode_patch(
            &[outgoing(&p)],
            &KEY_ID,
            &keys[&KEY_ID.to_vec()],
            &before,
            &mut Replay(iv),
        )
        .expect("encode");
        assert_eq!(
            hex::encode(&enc.bytes),
            p["syncdPatchProtoHex"],
            "{}",
            p["name"]
        );
        assert_eq!(enc.state, after, "{}", p["name"]);
        let rec = enc.patch.mutations[0].record.as_ref().expect("record");
        assert_eq!(
            rec.index.as_ref().and_then(|i| i.blob.clone()),
            Some(unhex(&p["indexMac"]))
        );
        assert_eq!(rec.value.as_ref().and_then(|v| v.blob.clone()), Some(blob));
        assert_eq!(enc.patch.snapshot_mac(), unhex(&p["snapshotMac"]));
        assert_eq!(enc.patch.patch_mac(), unhex(&p["patchMac"]));
    }
}

#[test]
fn decode_verifies_every_mac_and_matches_baileys() {
    let keys = keys();
    let mk = MutationKeys::expand(&keys[&KEY_ID.to_vec()]);
    for (p, before, after) in patches_with_states() {
        let name = p["collection"].as_str().expect("collection");
        let patch = SyncdPatch::decode(&unhex(&p["syncdPatchProtoHex"])[..]).expect("proto");
        let mut state = before.clone();
        let d = decode_patch(name, &patch, &mut state, &keys, &DecodeOptions::default())
            .expect("decode");
        assert_eq!(state, after, "{}", p["name"]);
        assert_eq!(d.version, after.version);
        assert!(d.unknown_removes.is_empty());

        // The MACs, recomputed independently from the published values.
        let m = &d.mutations[0];
        let index_json = serde_json::to_vec(&m.index).expect("json");
        assert_eq!(
            index_mac(&mk.index, &index_json).to_vec(),
            unhex(&p["indexMac"])
        );
        assert_eq!(m.index_mac.to_vec(), unhex(&p["indexMac"]));
        let blob = unhex(&p["valueBlob"]);
        assert_eq!(m.value_mac.to_vec(), blob[blob.len() - 32..].to_vec());
        let smac = snapshot_mac(&mk.snapshot_mac, &after.hash, after.version, name);
        assert_eq!(smac.to_vec(), unhex(&p["snapshotMac"]));
        let pmac = patch_mac(
            &mk.patch_mac,
            &smac,
            [&m.value_mac[..]],
            after.version,
            name,
        );
        assert_eq!(pmac.to_vec(), unhex(&p["patchMac"]));

        // What Baileys decoded.
        let expect = &p["decodeRoundtrip"]["mutations"][0];
        let expect_index: Vec<String> =
            serde_json::from_value(expect["index"].clone()).expect("index");
        assert_eq!(d.mutations.len(), 1);
        assert_eq!(m.index, expect_index);
        assert_eq!(m.operation, Operation::Set);
        assert_eq!(m.key_id, KEY_ID);
        assert_eq!(m.patch_version, after.version);
        assert_eq!(
            m.action_version,
            p["create"]["apiVersion"].as_i64().map(|v| v as i32)
        );
        let action = &expect["action"];
        let ts: i64 = action["timestamp"]
            .as_str()
            .expect("ts")
            .parse()
            .expect("int");
        let value = m.value.as_ref().expect("value");
        assert_eq!(value.timestamp, Some(ts));
        let jid = expect_index[1].clone();
        match m.action() {
            Action::Mute {
                jid: j,
                muted,
                until,
            } => {
                let ma = &action["muteAction"];
                assert_eq!(j, jid);
                assert_eq!(Some(muted), ma["muted"].as_bool());
                let end = ma
                    .get("muteEndTimestamp")
                    .map(|e| e.as_str().expect("str").parse::<i64>().expect("int"));
                assert_eq!(until, end);
            }
            Action::Pin { jid: j, pinned } => {
                assert_eq!(j, jid);
                assert_eq!(Some(pinned), action["pinAction"]["pinned"].as_bool());
            }
            other => panic!("unexpected action {other:?}"),
        }
    }
}

#[test]
fn snapshot_of_baileys_records_verifies() {
    // A version-1 snapshot holding only mute's record has the LTHash and version of the
    // state after the mute patch, so its MAC is that patch's snapshot MAC.
    use wa_appstate::decode_snapshot;
    use wa_proto::server_sync::{SyncdSnapshot, SyncdVersion};
    let keys = keys();
    let (p, _, after) = patches_with_states().remove(0);
    assert_eq!(p["name"], "mute");
    let patch = SyncdPatch::decode(&unhex(&p["syncdPatchProtoHex"])[..]).expect("proto");
    let snap = SyncdSnapshot {
        version: Some(SyncdVersion {
            version: Some(1),
            ..Default::default()
        }),
        records: vec![*patch.mutations[0].record.clone().expect("record")],
        mac: Some(unhex(&p["snapshotMac"])),
        key_id: patch.key_id.clone(),
        ..Default::default()
    };
    let (state, d) = decode_snapshot("regular_high", &snap, &keys).expect("snapshot");
    assert_eq!(state, after);
    assert_eq!(d.mutations[0].index, ["mute", "15551234567@s.whatsapp.net"]);
    assert!(decode_snapshot("regular_low", &snap, &keys).is_err());
}
