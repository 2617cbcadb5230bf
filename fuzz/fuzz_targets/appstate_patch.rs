//! wa-appstate on arbitrary input. The first byte picks the entry point:
//! 0: bytes as a `SyncdPatch`, decoded over an empty and a populated state;
//! 1: bytes as a `SyncdSnapshot`;
//! 2: key holder: bytes as a `SyncActionValue` plus index strings, encoded with the
//!    known key and decoded again (reaches decryption, protobuf, JSON and action parsing
//!    behind the MACs), which must round-trip;
//! 3: bytes as a zlib history blob under a 1 MiB cap, then extraction;
//! 4: bytes as a stored `HashState`, which must survive a second round trip.
//! Nothing may panic; a failed decode must leave the state unchanged; a successful one
//! keeps the LTHash equal to the hash recomputed from the index map.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use wa_appstate::{
    Collection, DecodeOptions, Error, HashState, Operation, OutgoingMutation, decode_history_blob,
    decode_patch, decode_snapshot, encode_patch, process_history,
};
use wa_proto::server_sync::{SyncdPatch, SyncdSnapshot};
use wa_proto::sync_action::SyncActionValue;

const KEY_ID: [u8; 6] = [0, 0, 0, 0, 0, 10];

/// Deterministic IVs, so a crash reproduces.
struct Counter(u8);

impl rand_core::RngCore for Counter {
    fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(1);
        u32::from(self.0)
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.next_u32())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core::CryptoRng for Counter {}

fn check_patch(patch: &SyncdPatch, mut state: HashState, keys: &HashMap<Vec<u8>, Vec<u8>>) {
    let before = state.clone();
    match decode_patch(
        "regular_high",
        patch,
        &mut state,
        keys,
        &DecodeOptions::default(),
    ) {
        Ok(d) => {
            assert_eq!(state.hash, state.recompute_hash());
            assert_eq!(d.mutations.len(), patch.mutations.len());
            for m in &d.mutations {
                let _ = m.action();
            }
        }
        Err(_) => assert_eq!(state, before),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = HashMap::from([(KEY_ID.to_vec(), vec![0x7f; 32])]);
    match mode % 5 {
        0 => {
            if let Ok(patch) = SyncdPatch::decode(rest) {
                check_patch(&patch, HashState::new(), &keys);
                let mut populated = HashState::new();
                populated.version = 3;
                for m in &patch.mutations {
                    if let Some(ib) = m
                        .record
                        .as_ref()
                        .and_then(|r| r.index.as_ref())
                        .and_then(|i| i.blob.as_deref())
                        && let Ok(ib) = <[u8; 32]>::try_from(ib)
                    {
                        populated.apply(Operation::Set, &ib, &[0x11; 32]);
                    }
                }
                check_patch(&patch, populated, &keys);
            }
        }
        1 => {
            if let Ok(snap) = SyncdSnapshot::decode(rest)
                && let Ok((state, d)) = decode_snapshot("regular_high", &snap, &keys)
            {
                assert_eq!(state.hash, state.recompute_hash());
                assert_eq!(d.mutations.len(), snap.records.len());
            }
        }
        2 => {
            let cut = usize::from(rest.first().copied().unwrap_or(0)).min(rest.len());
            let (idx, val) = rest.split_at(cut);
            let Ok(value) = SyncActionValue::decode(val) else {
                return;
            };
            let index: Vec<String> = String::from_utf8_lossy(idx)
                .split('\u{1}')
                .map(str::to_owned)
                .collect();
            let op = if val.len() % 2 == 0 {
                Operation::Set
            } else {
                Operation::Remove
            };
            let m = OutgoingMutation {
                collection: Collection::RegularHigh,
                operation: op,
                index: index.clone(),
                value: value.clone(),
                version: 2,
            };
            let enc = encode_patch(
                &[m],
                &KEY_ID,
                &[0x7f; 32],
                &HashState::new(),
                &mut Counter(0),
            )
            .expect("encoding a valid mutation");
            let mut state = HashState::new();
            match decode_patch(
                "regular_high",
                &enc.patch,
                &mut state,
                &keys,
                &DecodeOptions::default(),
            ) {
                Ok(d) => {
                    assert_eq!(state, enc.state);
                    assert_eq!(d.mutations[0].index, index);
                    assert_eq!(d.mutations[0].value.as_ref(), Some(&value));
                    let _ = d.mutations[0].action();
                }
                // Wrapping the value in SyncActionData adds a level of nesting, which can
                // cross prost's recursion limit for a value nested right up to it.
                Err(Error::Proto(_)) => assert_eq!(state, HashState::new()),
                Err(e) => panic!("own patch refused: {e}"),
            }
        }
        4 => {
            if let Ok(state) = HashState::from_bytes(rest) {
                assert_eq!(HashState::from_bytes(&state.to_bytes()), Ok(state));
            }
        }
        _ => {
            if let Ok(sync) = decode_history_blob(rest, 1 << 20) {
                let _ = process_history(sync);
            }
        }
    }
});
