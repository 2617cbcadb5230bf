//! Group messaging with sender keys: 50 senders, distribution, rotation, bounds.

mod common;

use common::block_on;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use wa_signal::{
    Error, InMemoryStore, KeyPair, MAX_SENDER_KEY_STATES, ProtocolAddress, SenderKeyName,
    SenderKeyRecord, SenderKeyStore, SignalRepository, generate_identity_key_pair,
};

const GROUP: &str = "120363000000000042@g.us";

struct Member {
    repo: SignalRepository<InMemoryStore, StdRng>,
    addr: ProtocolAddress,
}

fn member(i: usize) -> Member {
    let mut rng = StdRng::seed_from_u64(1000 + i as u64);
    let identity = generate_identity_key_pair(&mut rng);
    Member {
        repo: SignalRepository::new(InMemoryStore::new(identity, i as u32 + 1), rng),
        addr: ProtocolAddress::new(format!("1555000{i:04}"), 0),
    }
}

fn distribute(sender: &Member, to: &[&Member], skdm: &[u8]) {
    for m in to {
        block_on(
            m.repo
                .process_sender_key_distribution(GROUP, &sender.addr, skdm),
        )
        .unwrap();
    }
}

#[test]
fn fifty_senders_with_rotation() {
    let members: Vec<Member> = (0..50).map(member).collect();
    let mut rng = StdRng::seed_from_u64(5);
    let others = |i: usize| -> Vec<&Member> {
        members
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, m)| m)
            .collect()
    };

    // Round 1: everyone sends; the distribution message reaches everyone once.
    let mut old_in_flight = Vec::new();
    for (i, s) in members.iter().enumerate() {
        let out = block_on(s.repo.encrypt_group_message(
            GROUP,
            &s.addr,
            format!("r1 {i}").as_bytes(),
        ))
        .unwrap();
        distribute(s, &others(i), &out.sender_key_distribution_message);
        let mut receivers = others(i);
        receivers.shuffle(&mut rng);
        for r in receivers.iter().take(6) {
            let plain = block_on(
                r.repo
                    .decrypt_group_message(GROUP, &s.addr, &out.ciphertext),
            )
            .unwrap();
            assert_eq!(plain, format!("r1 {i}").into_bytes());
        }
        // A second message that stays in flight across the rotation.
        let late = block_on(s.repo.encrypt_group_message(
            GROUP,
            &s.addr,
            format!("late {i}").as_bytes(),
        ))
        .unwrap();
        old_in_flight.push((i, late.ciphertext));
    }

    // Member 0 leaves: everyone else rotates and redistributes to the remaining members.
    let leaver = &members[0];
    for (i, s) in members.iter().enumerate().skip(1) {
        block_on(s.repo.rotate_sender_key(GROUP, &s.addr)).unwrap();
        let skdm = block_on(s.repo.sender_key_distribution_message(GROUP, &s.addr)).unwrap();
        let remaining: Vec<&Member> = others(i)
            .into_iter()
            .filter(|m| m.addr != leaver.addr)
            .collect();
        distribute(s, &remaining, &skdm);
    }

    // Round 2 on the new keys: the remaining members read it, the leaver cannot.
    for (i, s) in members.iter().enumerate().skip(1) {
        let text = format!("r2 {i}");
        let out = block_on(
            s.repo
                .encrypt_group_message(GROUP, &s.addr, text.as_bytes()),
        )
        .unwrap();
        let mut receivers: Vec<&Member> = others(i)
            .into_iter()
            .filter(|m| m.addr != leaver.addr)
            .collect();
        receivers.shuffle(&mut rng);
        for r in receivers.iter().take(4) {
            let plain = block_on(
                r.repo
                    .decrypt_group_message(GROUP, &s.addr, &out.ciphertext),
            )
            .unwrap();
            assert_eq!(plain, text.as_bytes());
        }
        assert!(matches!(
            block_on(
                leaver
                    .repo
                    .decrypt_group_message(GROUP, &s.addr, &out.ciphertext)
            ),
            Err(Error::NoSenderKey(Some(_)))
        ));
    }

    // Messages sent before the rotation still decrypt (older states are kept), once.
    for (i, ct) in &old_in_flight {
        let r = &members[(i + 1 + rng.gen_range(0..48)) % 50];
        if r.addr == members[*i].addr {
            continue;
        }
        let plain = block_on(r.repo.decrypt_group_message(GROUP, &members[*i].addr, ct)).unwrap();
        assert_eq!(plain, format!("late {i}").into_bytes());
        assert!(matches!(
            block_on(r.repo.decrypt_group_message(GROUP, &members[*i].addr, ct)),
            Err(Error::DuplicateMessage { .. })
        ));
    }
}

#[test]
fn sender_key_states_are_bounded() {
    let sender = member(1);
    let receiver = member(2);
    let mut first_messages = Vec::new();
    for round in 0..MAX_SENDER_KEY_STATES + 2 {
        if round > 0 {
            block_on(sender.repo.rotate_sender_key(GROUP, &sender.addr)).unwrap();
        }
        let out = block_on(sender.repo.encrypt_group_message(GROUP, &sender.addr, b"m")).unwrap();
        distribute(&sender, &[&receiver], &out.sender_key_distribution_message);
        first_messages.push(out.ciphertext);
    }
    let name = SenderKeyName::new(GROUP, sender.addr.clone());
    let stored = block_on(receiver.repo.store().load_sender_key(&name))
        .unwrap()
        .unwrap();
    assert_eq!(
        SenderKeyRecord::deserialize(&stored).unwrap().state_count(),
        MAX_SENDER_KEY_STATES
    );
    // The two oldest keys were dropped; the newest five still work.
    for (i, ct) in first_messages.iter().enumerate() {
        let r = block_on(receiver.repo.decrypt_group_message(GROUP, &sender.addr, ct));
        if i < 2 {
            assert!(matches!(r, Err(Error::NoSenderKey(Some(_)))), "state {i}");
        } else {
            assert_eq!(r.unwrap(), b"m", "state {i}");
        }
    }
}

#[test]
fn group_reordering_forged_signatures_and_forward_bound() {
    let sender = member(3);
    let receiver = member(4);
    let mut msgs = Vec::new();
    let mut skdm = None;
    for i in 0..40u32 {
        let out = block_on(sender.repo.encrypt_group_message(
            GROUP,
            &sender.addr,
            &i.to_be_bytes(),
        ))
        .unwrap();
        skdm.get_or_insert(out.sender_key_distribution_message);
        msgs.push((i, out.ciphertext));
    }
    distribute(&sender, &[&receiver], &skdm.unwrap());
    let mut rng = StdRng::seed_from_u64(9);
    msgs.shuffle(&mut rng);
    for (i, ct) in &msgs {
        // A forged signature is refused and changes nothing.
        let mut forged = ct.clone();
        let n = forged.len();
        forged[n - 10] ^= 0x40;
        assert!(matches!(
            block_on(
                receiver
                    .repo
                    .decrypt_group_message(GROUP, &sender.addr, &forged)
            ),
            Err(Error::InvalidSignature)
        ));
        let plain = block_on(receiver.repo.decrypt_group_message(GROUP, &sender.addr, ct)).unwrap();
        assert_eq!(plain, i.to_be_bytes());
    }

    // A signed message whose iteration jumps more than the bound ahead is refused.
    let mut rng = StdRng::seed_from_u64(10);
    let signing = KeyPair::generate(&mut rng);
    let id = 77;
    let far_sender = member(5);
    let name = SenderKeyName::new(GROUP, far_sender.addr.clone());
    let mut start = SenderKeyRecord::new();
    start.add_own_state(id, 0, [7; 32], signing.clone());
    block_on(
        far_sender
            .repo
            .store()
            .store_sender_key(&name, start.serialize()),
    )
    .unwrap();
    let skdm = block_on(
        far_sender
            .repo
            .sender_key_distribution_message(GROUP, &far_sender.addr),
    )
    .unwrap();
    distribute(&far_sender, &[&receiver], &skdm);
    let mut jumped = SenderKeyRecord::new();
    jumped.add_own_state(id, wa_signal::MAX_SKIPPED_KEYS as u32 + 1, [8; 32], signing);
    block_on(
        far_sender
            .repo
            .store()
            .store_sender_key(&name, jumped.serialize()),
    )
    .unwrap();
    let out = block_on(
        far_sender
            .repo
            .encrypt_group_message(GROUP, &far_sender.addr, b"far"),
    )
    .unwrap();
    assert!(matches!(
        block_on(
            receiver
                .repo
                .decrypt_group_message(GROUP, &far_sender.addr, &out.ciphertext)
        ),
        Err(Error::TooFarInFuture { current: 0, .. })
    ));
}
