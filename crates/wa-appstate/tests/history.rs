//! History-sync inflation (bounded) and extraction.

use std::io::Write;

use prost::Message as _;
use wa_appstate::{
    Error, HistoryContact, LidPnMapping, decode_history_blob, inflate_bounded, process_history,
};
use wa_proto::common::MessageKey;
use wa_proto::history_sync::history_sync::HistorySyncType;
use wa_proto::history_sync::{
    Conversation, HistorySync, HistorySyncMsg, PhoneNumberToLidMapping, Pushname,
};
use wa_proto::web::{UserReceipt, WebMessageInfo};

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(data).expect("compress");
    z.finish().expect("finish")
}

fn msg(chat: &str, id: &str, from_me: bool, ts: u64) -> HistorySyncMsg {
    HistorySyncMsg {
        message: Some(Box::new(WebMessageInfo {
            key: Some(MessageKey {
                remote_jid: Some(chat.into()),
                from_me: Some(from_me),
                id: Some(id.into()),
                ..Default::default()
            }),
            message_timestamp: Some(ts),
            ..Default::default()
        })),
        msg_order_id: Some(ts),
        ..Default::default()
    }
}

fn sample() -> HistorySync {
    let pn_chat = Conversation {
        id: Some("15550001111@s.whatsapp.net".into()),
        name: Some("Alice".into()),
        lid_jid: Some("111@lid".into()),
        unread_count: Some(2),
        archived: Some(true),
        messages: vec![
            msg("15550001111@s.whatsapp.net", "B", true, 30),
            msg("15550001111@s.whatsapp.net", "A", false, 20),
            msg("15550001111@s.whatsapp.net", "Z", false, 10),
        ],
        ..Default::default()
    };
    let lid_chat = Conversation {
        id: Some("222@lid".into()),
        display_name: Some("Bob".into()),
        pn_jid: Some("15550002222@s.whatsapp.net".into()),
        ..Default::default()
    };
    let mut receipt_msg = msg("333@lid", "C", true, 5);
    receipt_msg
        .message
        .as_mut()
        .expect("msg")
        .user_receipt
        .push(UserReceipt {
            user_jid: Some("15550003333@s.whatsapp.net".into()),
            ..Default::default()
        });
    let lid_chat_no_pn = Conversation {
        id: Some("333@lid".into()),
        messages: vec![receipt_msg],
        ..Default::default()
    };
    HistorySync {
        sync_type: Some(HistorySyncType::InitialBootstrap as i32),
        chunk_order: Some(1),
        progress: Some(50),
        conversations: vec![pn_chat, lid_chat, lid_chat_no_pn],
        phone_number_to_lid_mappings: vec![PhoneNumberToLidMapping {
            pn_jid: Some("15550004444@s.whatsapp.net".into()),
            lid_jid: Some("444@lid".into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn decodes_chats_contacts_messages_and_mappings() {
    let blob = zlib(&sample().encode_to_vec());
    let h = process_history(decode_history_blob(&blob, 1 << 20).expect("decode"));
    assert_eq!(h.sync_type, Some(HistorySyncType::InitialBootstrap));
    assert_eq!((h.chunk_order, h.progress), (Some(1), Some(50)));

    assert_eq!(h.chats.len(), 3);
    let alice = &h.chats[0];
    assert_eq!(alice.id, "15550001111@s.whatsapp.net");
    assert!(alice.archived);
    assert_eq!(alice.unread_count, Some(2));
    // The newest message not from me (messages arrive newest first).
    assert_eq!(alice.last_message_recv_timestamp, Some(20));
    assert_eq!(alice.lid_jid.as_deref(), Some("111@lid"));

    let ids: Vec<_> = h
        .messages
        .iter()
        .map(|m| m.info.key.as_ref().and_then(|k| k.id.clone()))
        .collect();
    assert_eq!(ids, ["B", "A", "Z", "C"].map(|s| Some(s.to_owned())));
    assert!(
        h.messages[..3]
            .iter()
            .all(|m| m.chat == "15550001111@s.whatsapp.net")
    );
    assert_eq!(h.messages[3].chat, "333@lid");

    assert_eq!(h.contacts[0].name.as_deref(), Some("Alice"));
    assert_eq!(h.contacts[1].name.as_deref(), Some("Bob"));
    assert_eq!(
        h.contacts[1].phone_number.as_deref(),
        Some("15550002222@s.whatsapp.net")
    );

    let m = |lid: &str, pn: &str| LidPnMapping {
        lid: lid.into(),
        pn: pn.into(),
    };
    assert_eq!(
        h.lid_pn_mappings,
        vec![
            m("444@lid", "15550004444@s.whatsapp.net"),
            m("111@lid", "15550001111@s.whatsapp.net"),
            m("222@lid", "15550002222@s.whatsapp.net"),
            m("333@lid", "15550003333@s.whatsapp.net"),
        ]
    );
}

#[test]
fn push_name_sync_gives_contacts_only() {
    let sync = HistorySync {
        sync_type: Some(HistorySyncType::PushName as i32),
        pushnames: vec![
            Pushname {
                id: Some("1@s.whatsapp.net".into()),
                pushname: Some("One".into()),
                ..Default::default()
            },
            Pushname {
                id: None,
                pushname: Some("nobody".into()),
                ..Default::default()
            },
        ],
        conversations: sample().conversations,
        ..Default::default()
    };
    let h = process_history(sync);
    assert!(h.chats.is_empty() && h.messages.is_empty());
    assert_eq!(
        h.contacts,
        vec![HistoryContact {
            id: "1@s.whatsapp.net".into(),
            notify: Some("One".into()),
            ..Default::default()
        }]
    );
}

#[test]
fn bounded_inflate_refuses_a_zip_bomb() {
    // 64 MiB of zeros compresses to about 64 KiB.
    let bomb = zlib(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 128 << 10);
    assert_eq!(
        inflate_bounded(&bomb, 1 << 20),
        Err(Error::TooLarge { limit: 1 << 20 })
    );
    assert_eq!(
        decode_history_blob(&bomb, 1 << 20).err(),
        Some(Error::TooLarge { limit: 1 << 20 })
    );

    // Exactly at the cap is fine; one byte over is not.
    let data = vec![7u8; 4096];
    let z = zlib(&data);
    assert_eq!(inflate_bounded(&z, 4096).expect("at cap"), data);
    assert_eq!(
        inflate_bounded(&z, 4095),
        Err(Error::TooLarge { limit: 4095 })
    );
}

#[test]
fn corrupt_streams_are_errors() {
    let mut z = zlib(b"hello history");
    z[4] ^= 0xff;
    assert!(matches!(
        inflate_bounded(&z, 1 << 20),
        Err(Error::Inflate(_))
    ));
    assert!(matches!(
        inflate_bounded(b"not zlib", 1 << 20),
        Err(Error::Inflate(_))
    ));
    // Inflates fine, but is not a HistorySync.
    assert!(matches!(
        decode_history_blob(&zlib(&[0xff, 0xff, 0xff]), 1 << 20),
        Err(Error::Proto(_))
    ));
}

#[test]
fn past_participants_are_read_for_every_type() {
    use wa_appstate::{GroupPastParticipants, PastParticipant};
    use wa_proto::history_sync::past_participant::LeaveReason;
    use wa_proto::history_sync::{PastParticipant as Past, PastParticipants};
    let sync = HistorySync {
        sync_type: Some(HistorySyncType::PushName as i32),
        past_participants: vec![
            PastParticipants {
                group_jid: Some("120363000000000001@g.us".into()),
                past_participants: vec![
                    Past {
                        user_jid: Some("15550000001@s.whatsapp.net".into()),
                        leave_reason: Some(LeaveReason::Removed as i32),
                        leave_ts: Some(1_700_000_000),
                        ..Default::default()
                    },
                    Past {
                        user_jid: Some("2@lid".into()),
                        leave_reason: Some(LeaveReason::Left as i32),
                        leave_ts: None,
                        ..Default::default()
                    },
                    Past {
                        user_jid: None,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            PastParticipants {
                group_jid: None,
                past_participants: vec![Past::default()],
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let h = process_history(sync);
    assert_eq!(
        h.past_participants,
        vec![GroupPastParticipants {
            group: "120363000000000001@g.us".into(),
            participants: vec![
                PastParticipant {
                    user: "15550000001@s.whatsapp.net".into(),
                    removed: true,
                    left_at: Some(1_700_000_000),
                },
                PastParticipant {
                    user: "2@lid".into(),
                    removed: false,
                    left_at: None,
                },
            ],
        }]
    );
}
