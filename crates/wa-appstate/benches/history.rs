//! History-sync chunk processing: bounded inflate, protobuf decode and the split into
//! chats, contacts, messages and mappings, for a chunk of 100 chats x 100 messages
//! (about 1 MB of protobuf, 68 KB compressed).

use std::hint::black_box;
use std::io::Write as _;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message as _;
use wa_appstate::{
    DEFAULT_MAX_INFLATED_LEN, decode_history_blob, inflate_bounded, process_history,
};
use wa_proto::common::MessageKey;
use wa_proto::e2e::Message;
use wa_proto::history_sync::history_sync::HistorySyncType;
use wa_proto::history_sync::{Conversation, HistorySync, HistorySyncMsg};
use wa_proto::web::WebMessageInfo;

const CHATS: usize = 100;
const PER_CHAT: usize = 100;

fn chunk() -> Vec<u8> {
    let conversations = (0..CHATS)
        .map(|c| {
            let id = format!("1555{c:07}@s.whatsapp.net");
            Conversation {
                id: Some(id.clone()),
                name: Some(format!("Contact {c}")),
                messages: (0..PER_CHAT)
                    .map(|m| HistorySyncMsg {
                        message: Some(Box::new(WebMessageInfo {
                            key: Some(MessageKey {
                                remote_jid: Some(id.clone()),
                                from_me: Some(m % 2 == 0),
                                id: Some(format!("3EB0{c:06}{m:012}")),
                                ..Default::default()
                            }),
                            message: Some(Box::new(Message {
                                conversation: Some(format!("message {m} in chat {c}, some text")),
                                ..Default::default()
                            })),
                            message_timestamp: Some(1_700_000_000 + m as u64),
                            ..Default::default()
                        })),
                        msg_order_id: Some(m as u64),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }
        })
        .collect();
    let sync = HistorySync {
        sync_type: Some(HistorySyncType::InitialBootstrap as i32),
        conversations,
        chunk_order: Some(1),
        ..Default::default()
    };
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&sync.encode_to_vec()).unwrap();
    z.finish().unwrap()
}

fn bench(c: &mut Criterion) {
    let blob = chunk();
    let mut g = c.benchmark_group("history");
    g.throughput(Throughput::Elements((CHATS * PER_CHAT) as u64));
    g.bench_function("inflate_decode_process_10k_messages", |b| {
        b.iter(|| {
            let sync = decode_history_blob(black_box(&blob), DEFAULT_MAX_INFLATED_LEN).unwrap();
            black_box(process_history(sync))
        });
    });
    let raw = inflate_bounded(&blob, DEFAULT_MAX_INFLATED_LEN).unwrap();
    g.bench_function("inflate_only", |b| {
        b.iter(|| black_box(inflate_bounded(black_box(&blob), DEFAULT_MAX_INFLATED_LEN).unwrap()));
    });
    g.bench_function("decode_only", |b| {
        b.iter(|| black_box(HistorySync::decode(black_box(&raw[..])).unwrap()));
    });
    let decoded = HistorySync::decode(&raw[..]).unwrap();
    g.bench_function("process_only", |b| {
        b.iter(|| black_box(process_history(black_box(decoded.clone()))));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
