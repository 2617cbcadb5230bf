//! Property tests: whatever is encoded decodes to the same mutations and the same state,
//! and the LTHash always equals the hash recomputed from the index map.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use rand::SeedableRng;
use wa_appstate::{
    Action, Collection, DecodeOptions, HashState, Operation, OutgoingMutation, builders,
    decode_patch, encode_patch, lt_hash_add, lt_hash_subtract,
};
use wa_proto::sync_action::SyncActionValue;

#[derive(Clone, Debug)]
enum Op {
    Mute(u8, Option<i64>),
    Star(u8, bool),
    DeleteChat(u8),
    Remove(u8),
    Custom(u8, String, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, proptest::option::of(any::<i64>())).prop_map(|(c, t)| Op::Mute(c, t)),
        (0u8..6, any::<bool>()).prop_map(|(c, s)| Op::Star(c, s)),
        (0u8..6).prop_map(Op::DeleteChat),
        (0u8..6).prop_map(Op::Remove),
        (0u8..6, "\\PC{0,12}", any::<i64>()).prop_map(|(c, s, t)| Op::Custom(c, s, t)),
    ]
}

fn jid(c: u8) -> String {
    format!("1555000{c}@s.whatsapp.net")
}

fn to_mutation(op: &Op, ts: i64) -> OutgoingMutation {
    match op {
        Op::Mute(c, Some(t)) => builders::mute(&jid(*c), builders::MuteUntil::Until(*t), ts),
        Op::Mute(c, None) => builders::mute(&jid(*c), builders::MuteUntil::Unmuted, ts),
        Op::Star(c, s) => builders::star(&jid(*c), "3EB0ABCDEF", *s, None, *s, ts),
        Op::DeleteChat(c) => builders::delete_chat(&jid(*c), true, None, ts),
        Op::Remove(c) => {
            let mut m = builders::mute(&jid(*c), builders::MuteUntil::Unmuted, ts);
            m.operation = Operation::Remove;
            m
        }
        Op::Custom(c, s, t) => OutgoingMutation {
            collection: Collection::RegularHigh,
            operation: Operation::Set,
            index: vec!["custom \"index\"".into(), s.clone(), jid(*c)],
            value: SyncActionValue {
                timestamp: Some(*t),
                ..Default::default()
            },
            version: 7,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn encode_then_decode_round_trips(
        patches in proptest::collection::vec(proptest::collection::vec(op(), 1..6), 1..5),
        seed in any::<u64>(),
    ) {
        let keys = keys();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut sender = HashState::new();
        let mut receiver = HashState::new();
        // Model: index JSON -> still set.
        let mut live: BTreeMap<Vec<String>, ()> = BTreeMap::new();
        for (n, ops) in patches.iter().enumerate() {
            let muts: Vec<_> = ops.iter().map(|o| to_mutation(o, n as i64)).collect();
            let enc = encode_patch(&muts, &KEY_ID, &[0x7f; 32], &sender, &mut rng).expect("encode");
            let d = decode_patch("regular_high", &enc.patch, &mut receiver, &keys, &DecodeOptions::default())
                .expect("decode");
            prop_assert_eq!(&receiver, &enc.state);
            prop_assert_eq!(d.version, n as u64 + 1);
            prop_assert_eq!(d.mutations.len(), muts.len());
            let mut unknown = Vec::new();
            for ((m, sent), o) in d.mutations.iter().zip(&muts).zip(ops) {
                prop_assert_eq!(m.operation, sent.operation);
                prop_assert_eq!(&m.index, &sent.index);
                prop_assert_eq!(m.value.as_ref(), Some(&sent.value));
                prop_assert_eq!(m.action_version, Some(sent.version));
                match sent.operation {
                    Operation::Set => { live.insert(sent.index.clone(), ()); }
                    Operation::Remove => {
                        if live.remove(&sent.index).is_none() { unknown.push(m.index_mac); }
                    }
                }
                if let Op::Star(c, s) = *o {
                    prop_assert_eq!(m.action(), Action::Star {
                        jid: jid(c), message_id: "3EB0ABCDEF".into(), from_me: s, participant: None, starred: s,
                    });
                }
            }
            prop_assert_eq!(&d.unknown_removes, &unknown);
            prop_assert_eq!(receiver.index_value_map.len(), live.len());
            prop_assert_eq!(receiver.hash, receiver.recompute_hash());
            sender = enc.state;
        }
    }

    #[test]
    fn lthash_subtract_undoes_add_in_any_order(
        items in proptest::collection::vec(proptest::array::uniform32(any::<u8>()), 0..8),
        base in proptest::array::uniform32(any::<u8>()),
    ) {
        let mut start = [0u8; 128];
        start[..32].copy_from_slice(&base);
        let mut h = start;
        for i in &items { lt_hash_add(&mut h, i); }
        let mut rev = items.clone();
        rev.reverse();
        let mut h2 = start;
        for i in &rev { lt_hash_add(&mut h2, i); }
        prop_assert_eq!(h, h2);
        for i in &items { lt_hash_subtract(&mut h, i); }
        prop_assert_eq!(h, start);
    }
}
