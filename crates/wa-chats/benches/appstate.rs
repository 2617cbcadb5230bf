//! The chats layer's own app-state work: turning 100 decoded actions into events, and
//! turning a modification into its mutation. (The crypto is benchmarked in wa-appstate.)

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wa_appstate::{Action, LabelTarget, Operation};
use wa_binary::Jid;
use wa_chats::{ChatModification, MuteUntil, modification_mutation, mutation_events};

fn bench(c: &mut Criterion) {
    let actions: Vec<(Operation, Action, Option<i64>)> = (0..100)
        .map(|i| {
            let jid = format!("1555000{i:04}@s.whatsapp.net");
            let action = match i % 4 {
                0 => Action::Archive {
                    jid,
                    archived: true,
                    range: None,
                },
                1 => Action::Mute {
                    jid,
                    muted: true,
                    until: Some(1_900_000_000_000),
                },
                2 => Action::Pin { jid, pinned: true },
                _ => Action::LabelAssociation {
                    label_id: "3".into(),
                    target: LabelTarget::Chat { jid },
                    labeled: true,
                },
            };
            (Operation::Set, action, Some(1_700_000_000_000))
        })
        .collect();
    c.bench_function("mutation_events_100_actions", |b| {
        b.iter(|| mutation_events(black_box(&actions)))
    });
    let jid = Jid::pn("15550001234");
    let m = ChatModification::Mute(MuteUntil::Until(1_900_000_000_000));
    c.bench_function("modification_mutation_mute", |b| {
        b.iter(|| modification_mutation(black_box(&jid), black_box(&m), 1_700_000_000_000))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
