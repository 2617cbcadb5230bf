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

/// The message that first carried a sender key can arrive after a resend that carried the
/// same key further along its chain (the receiver could not store the first message, and
/// the sender answered its retry receipt for a later one). The earlier distribution
/// message opens the iterations before the later one: each decrypts once. Before, they
/// were refused as duplicates.
#[test]
fn an_earlier_distribution_arriving_late_opens_the_messages_before_the_later_one() {
    let sender = member(6);
    let receiver = member(7);
    let encrypt = |text: &[u8]| {
        block_on(sender.repo.encrypt_group_message(GROUP, &sender.addr, text)).unwrap()
    };
    let first = encrypt(b"zero");
    let one = encrypt(b"one");
    // The resend's distribution message, taken at iteration 2.
    let later = block_on(
        sender
            .repo
            .sender_key_distribution_message(GROUP, &sender.addr),
    )
    .unwrap();
    let two = encrypt(b"two");
    let decrypt =
        |ct: &[u8]| block_on(receiver.repo.decrypt_group_message(GROUP, &sender.addr, ct));

    distribute(&sender, &[&receiver], &later);
    assert_eq!(decrypt(&two.ciphertext).unwrap(), b"two");
    assert!(matches!(
        decrypt(&first.ciphertext),
        Err(Error::DuplicateMessage { counter: 0 })
    ));
    // The first message's own distribution message comes in.
    distribute(
        &sender,
        &[&receiver],
        &first.sender_key_distribution_message,
    );
    assert_eq!(decrypt(&first.ciphertext).unwrap(), b"zero");
    assert_eq!(decrypt(&one.ciphertext).unwrap(), b"one");
    // Once each, and the state's own position is kept.
    for ct in [&first.ciphertext, &one.ciphertext, &two.ciphertext] {
        assert!(matches!(decrypt(ct), Err(Error::DuplicateMessage { .. })));
    }
    assert_eq!(decrypt(&encrypt(b"three").ciphertext).unwrap(), b"three");
    // Taking the earlier one again opens nothing more.
    distribute(
        &sender,
        &[&receiver],
        &first.sender_key_distribution_message,
    );
    assert!(matches!(
        decrypt(&first.ciphertext),
        Err(Error::DuplicateMessage { counter: 0 })
    ));
}

/// A distribution message with the key id and signing key of a state the receiver holds,
/// earlier in the chain but with a chain key that does not lead to the state's, changes
/// nothing.
#[test]
fn an_earlier_distribution_of_another_chain_is_ignored() {
    let sender = member(8);
    let receiver = member(9);
    let first = block_on(
        sender
            .repo
            .encrypt_group_message(GROUP, &sender.addr, b"zero"),
    )
    .unwrap();
    let later = block_on(
        sender
            .repo
            .sender_key_distribution_message(GROUP, &sender.addr),
    )
    .unwrap();
    distribute(&sender, &[&receiver], &later);
    // The first distribution message with its chain key changed (a byte of the 32-byte
    // chain key, field 3, which follows the key id and iteration).
    let mut forged = first.sender_key_distribution_message.clone();
    let at = forged
        .windows(2)
        .position(|w| w == [0x1a, 0x20])
        .expect("the chain key field")
        + 2;
    forged[at] ^= 1;
    distribute(&sender, &[&receiver], &forged);
    assert!(matches!(
        block_on(
            receiver
                .repo
                .decrypt_group_message(GROUP, &sender.addr, &first.ciphertext)
        ),
        Err(Error::DuplicateMessage { counter: 0 })
    ));
}
