//! Builder behaviour not covered by the Baileys vectors: link previews, view-once, forwarding,
//! several contacts, poll kinds, timers and secrets.

use rand::SeedableRng;
use rand::rngs::StdRng;
use wa_binary::Jid;
use wa_messages::{
    Contact, Error, LinkPreview, MessageBuilder, MessageContent, MessageKey, Poll, Quote,
};
use wa_proto::e2e::{ContextInfo, ExtendedTextMessage, Message, protocol_message};

fn chat() -> Jid {
    Jid::pn("15550000002")
}

/// The length of the message secret a built message carries.
fn secret_len(m: &Message) -> Option<usize> {
    m.message_context_info
        .as_ref()
        .and_then(|c| c.message_secret.as_ref())
        .map(Vec::len)
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(11)
}

fn poll(options: &[&str], selectable_count: u32, to_announcement_group: bool) -> MessageContent {
    MessageContent::Poll(Poll {
        name: "q".into(),
        options: options.iter().map(|s| (*s).to_owned()).collect(),
        selectable_count,
        to_announcement_group,
    })
}

#[test]
fn link_preview_fields_are_set() {
    let content = MessageContent::Text {
        text: "see https://example.com".into(),
        link_preview: Some(LinkPreview {
            matched_text: "https://example.com".into(),
            title: Some("Example".into()),
            description: Some("An example".into()),
            jpeg_thumbnail: Some(vec![0xFF, 0xD8]),
            image: None,
        }),
    };
    let m = MessageBuilder::new(chat(), content)
        .build(&mut rng())
        .expect("builds");
    let ext = m.extended_text_message.expect("text");
    assert_eq!(ext.matched_text.as_deref(), Some("https://example.com"));
    assert_eq!(ext.title.as_deref(), Some("Example"));
    assert_eq!(ext.description.as_deref(), Some("An example"));
    assert_eq!(ext.jpeg_thumbnail.as_deref(), Some(&[0xFF, 0xD8][..]));
    assert_eq!(ext.preview_type, Some(0));
}

#[test]
fn a_preview_image_uploaded_whole_is_named_for_download() {
    let image = wa_media::LinkImage {
        direct_path: "/v/t62.36244-24/1_2_3.enc".into(),
        media_key: [7; 32],
        media_key_timestamp: 1_800_000_000,
        file_sha256: [1; 32],
        file_enc_sha256: [2; 32],
        width: 400,
        height: 300,
    };
    let content = MessageContent::Text {
        text: "see https://example.com".into(),
        link_preview: Some(LinkPreview {
            matched_text: "https://example.com".into(),
            title: Some("Example".into()),
            description: None,
            jpeg_thumbnail: Some(vec![0xFF, 0xD8]),
            image: Some(image.clone()),
        }),
    };
    let m = MessageBuilder::new(chat(), content)
        .build(&mut rng())
        .expect("builds");
    let ext = m.extended_text_message.as_deref().expect("text");
    assert_eq!(
        ext.thumbnail_direct_path.as_deref(),
        Some(image.direct_path.as_str())
    );
    assert_eq!(ext.media_key.as_deref(), Some(&[7; 32][..]));
    assert_eq!(ext.media_key_timestamp, Some(1_800_000_000));
    assert_eq!(ext.thumbnail_sha256.as_deref(), Some(&[1; 32][..]));
    assert_eq!(ext.thumbnail_enc_sha256.as_deref(), Some(&[2; 32][..]));
    assert_eq!(
        (ext.thumbnail_width, ext.thumbnail_height),
        (Some(400), Some(300))
    );
    // A receiver finds it as a `thumbnail-link` download.
    let d = wa_media::downloadable(&m).expect("downloadable");
    assert_eq!(d.media_type, wa_media::MediaType::ThumbnailLink);
    assert_eq!(d.direct_path.as_deref(), Some(image.direct_path.as_str()));
    assert_eq!(d.file_sha256, Some([1; 32]));
    assert_eq!(d.file_enc_sha256, Some([2; 32]));
}

#[test]
fn secrets_are_random_unless_given_and_absent_on_reactions() {
    let secret_of = |m: &Message| {
        m.message_context_info
            .as_ref()
            .and_then(|c| c.message_secret.clone())
            .expect("secret present")
    };
    let a = MessageBuilder::new(chat(), MessageContent::text("x"))
        .build(&mut StdRng::seed_from_u64(1))
        .expect("builds");
    let b = MessageBuilder::new(chat(), MessageContent::text("x"))
        .build(&mut StdRng::seed_from_u64(2))
        .expect("builds");
    assert_eq!(secret_of(&a).len(), 32);
    assert_ne!(secret_of(&a), secret_of(&b));
    let fixed = MessageBuilder::new(chat(), MessageContent::text("x"))
        .message_secret([3; 32])
        .build(&mut rng())
        .expect("builds");
    assert_eq!(secret_of(&fixed), vec![3; 32]);
    let reaction = MessageBuilder::new(
        chat(),
        MessageContent::Reaction {
            key: MessageKey::new(chat(), false, "3EB0AAAAAAAAAAAAAAAA"),
            emoji: String::new(),
            sender_timestamp_ms: 1,
        },
    )
    .build(&mut rng())
    .expect("builds");
    assert!(reaction.message_context_info.is_none());
    assert_eq!(
        reaction.reaction_message.expect("reaction").text.as_deref(),
        Some("")
    );
}

#[test]
fn view_once_wraps_the_content_and_keeps_its_context_inside() {
    let m = MessageBuilder::new(chat(), MessageContent::text("once"))
        .view_once()
        .ephemeral_expiration(86_400)
        .build(&mut rng())
        .expect("builds");
    assert!(m.extended_text_message.is_none());
    assert!(
        m.message_context_info.is_some(),
        "secret on the outer message"
    );
    let inner = m
        .view_once_message
        .expect("wrapped")
        .message
        .expect("inner");
    let ext = inner.extended_text_message.expect("text inside");
    assert_eq!(ext.context_info.expect("context").expiration, Some(86_400));
}

#[test]
fn expiration_is_not_put_on_protocol_messages() {
    let key = MessageKey::new(chat(), true, "3EB0BBBBBBBBBBBBBBBB");
    let revoke = MessageBuilder::new(chat(), MessageContent::Revoke { key: key.clone() })
        .ephemeral_expiration(86_400)
        .build(&mut rng())
        .expect("builds");
    let pm = revoke.protocol_message.expect("protocol");
    assert_eq!(pm.r#type, Some(protocol_message::Type::Revoke as i32));
    let edit = MessageBuilder::new(
        chat(),
        MessageContent::Edit {
            key,
            new_content: Box::new(MessageContent::text("new")),
            timestamp_ms: 5,
        },
    )
    .ephemeral_expiration(86_400)
    .build(&mut rng())
    .expect("builds");
    let pm = edit.protocol_message.expect("protocol");
    assert_eq!(pm.r#type, Some(protocol_message::Type::MessageEdit as i32));
    let inner = pm
        .edited_message
        .expect("edited")
        .extended_text_message
        .expect("text");
    assert!(inner.context_info.is_none());
    assert!(edit.message_context_info.is_some());
}

#[test]
fn forwarding_counts_hops_and_drops_old_context() {
    let original = Message {
        conversation: Some("fwd me".into()),
        ..Default::default()
    };
    let fwd = |message: Message, from_me: bool, force: bool| {
        MessageBuilder::new(
            chat(),
            MessageContent::Forward {
                message: Box::new(message),
                from_me,
                force,
            },
        )
        .build(&mut rng())
        .expect("builds")
    };
    let once = fwd(original.clone(), false, false);
    assert!(once.conversation.is_none());
    let ext = once.extended_text_message.clone().expect("text");
    assert_eq!(ext.text(), "fwd me");
    let ci = ext.context_info.expect("context");
    assert_eq!(
        (ci.forwarding_score, ci.is_forwarded),
        (Some(1), Some(true))
    );

    let twice = fwd(once, false, false);
    let ci = twice
        .extended_text_message
        .expect("text")
        .context_info
        .expect("ctx");
    assert_eq!(ci.forwarding_score, Some(2));

    let own = fwd(original.clone(), true, false);
    let ci = own
        .extended_text_message
        .expect("text")
        .context_info
        .expect("ctx");
    assert_eq!((ci.forwarding_score, ci.is_forwarded), (None, None));
    let forced = fwd(original, true, true);
    let ci = forced
        .extended_text_message
        .expect("text")
        .context_info
        .expect("ctx");
    assert_eq!(ci.forwarding_score, Some(1));

    // Wrappers are removed and a quote in the original is not carried along.
    let wrapped = Message {
        ephemeral_message: Some(Box::new(wa_proto::e2e::FutureProofMessage {
            message: Some(Box::new(Message {
                extended_text_message: Some(Box::new(ExtendedTextMessage {
                    text: Some("inner".into()),
                    context_info: Some(Box::new(ContextInfo {
                        stanza_id: Some("3EB0X".into()),
                        expiration: Some(10),
                        ..Default::default()
                    })),
                    ..Default::default()
                })),
                ..Default::default()
            })),
            ..Default::default()
        })),
        ..Default::default()
    };
    let out = fwd(wrapped, false, false);
    assert!(out.ephemeral_message.is_none());
    let ci = out
        .extended_text_message
        .expect("text")
        .context_info
        .expect("ctx");
    assert_eq!(ci.stanza_id, None);
    assert_eq!(ci.expiration, None);
    assert_eq!(ci.forwarding_score, Some(1));
}

#[test]
fn quotes_of_own_and_other_chat_messages() {
    let own = "15550000001:5@s.whatsapp.net".parse::<Jid>().expect("jid");
    let group: Jid = "120363000000000001@g.us".parse().expect("jid");
    let quoted = Message {
        extended_text_message: Some(Box::new(ExtendedTextMessage {
            text: Some("mine".into()),
            context_info: Some(Box::new(ContextInfo {
                stanza_id: Some("older".into()),
                ..Default::default()
            })),
            ..Default::default()
        })),
        message_context_info: Some(Default::default()),
        ..Default::default()
    };
    let key = MessageKey::new(group.clone(), true, "3EB0CCCCCCCCCCCCCCCC");
    let m = MessageBuilder::new(chat(), MessageContent::text("reply"))
        .quote(Quote::new(key, quoted, &own))
        .build(&mut rng())
        .expect("builds");
    let ci = m
        .extended_text_message
        .expect("text")
        .context_info
        .expect("ctx");
    assert_eq!(
        ci.participant.as_deref(),
        Some("15550000001@s.whatsapp.net")
    );
    assert_eq!(ci.stanza_id.as_deref(), Some("3EB0CCCCCCCCCCCCCCCC"));
    assert_eq!(ci.remote_jid.as_deref(), Some("120363000000000001@g.us"));
    let q = ci.quoted_message.expect("quoted");
    assert!(q.message_context_info.is_none());
    assert!(
        q.extended_text_message
            .expect("text")
            .context_info
            .is_none()
    );

    let dm_key = MessageKey::new(chat(), false, "3EB0DDDDDDDDDDDDDDDD");
    let q = Quote::new(dm_key, Message::default(), &own);
    assert_eq!(q.participant, chat());
}

#[test]
fn mention_all_sets_non_jid_mentions() {
    let m = MessageBuilder::new(chat(), MessageContent::text("@all"))
        .mention_all()
        .build(&mut rng())
        .expect("builds");
    let ci = m
        .extended_text_message
        .expect("text")
        .context_info
        .expect("ctx");
    assert_eq!(ci.non_jid_mentions, Some(1));
    assert!(ci.mentioned_jid.is_empty());
}

#[test]
fn contacts_pick_single_or_array_form() {
    let card = |n: &str| Contact {
        display_name: Some(n.into()),
        vcard: format!("BEGIN:VCARD\nFN:{n}\nEND:VCARD"),
    };
    let one = MessageBuilder::new(
        chat(),
        MessageContent::Contacts {
            display_name: None,
            contacts: vec![card("A")],
        },
    )
    .build(&mut rng())
    .expect("builds");
    assert_eq!(
        one.contact_message.expect("single").display_name.as_deref(),
        Some("A")
    );
    let many = MessageBuilder::new(
        chat(),
        MessageContent::Contacts {
            display_name: Some("2 contacts".into()),
            contacts: vec![card("A"), card("B")],
        },
    )
    .build(&mut rng())
    .expect("builds");
    let arr = many.contacts_array_message.expect("array");
    assert_eq!(arr.display_name.as_deref(), Some("2 contacts"));
    assert_eq!(arr.contacts.len(), 2);
    let none = MessageBuilder::new(
        chat(),
        MessageContent::Contacts {
            display_name: None,
            contacts: vec![],
        },
    )
    .build(&mut rng());
    assert!(matches!(none, Err(Error::NoContacts)));
}

#[test]
fn poll_kind_follows_selectable_count_and_audience() {
    let build = |c| MessageBuilder::new(chat(), c).build(&mut rng());
    let multi = build(poll(&["a", "b"], 0, false)).expect("builds");
    assert_eq!(
        multi
            .poll_creation_message
            .expect("v1")
            .selectable_options_count,
        Some(0)
    );
    let single = build(poll(&["a", "b"], 1, false)).expect("builds");
    assert!(single.poll_creation_message_v3.is_some());
    let announce = build(poll(&["a", "b"], 1, true)).expect("builds");
    assert!(announce.poll_creation_message_v2.is_some());
    assert!(matches!(
        build(poll(&[], 0, false)),
        Err(Error::InvalidPoll(_))
    ));
    assert!(matches!(
        build(poll(&["a"], 2, false)),
        Err(Error::InvalidPoll(_))
    ));
}

#[test]
fn disappearing_timer_off_is_zero() {
    let m = MessageBuilder::new(
        chat(),
        MessageContent::DisappearingTimer { expiration_secs: 0 },
    )
    .build(&mut rng())
    .expect("builds");
    let pm = m
        .ephemeral_message
        .expect("wrapper")
        .message
        .expect("inner")
        .protocol_message
        .expect("protocol");
    assert_eq!(
        pm.r#type,
        Some(protocol_message::Type::EphemeralSetting as i32)
    );
    assert_eq!(pm.ephemeral_expiration, Some(0));
}

#[test]
fn pins_carry_their_kind_time_and_duration() {
    use wa_proto::e2e::pin_in_chat_message::Type;
    let key = MessageKey::new(chat(), false, "3EB0CCCCCCCCCCCCCCCC");
    let pin = MessageBuilder::new(
        chat(),
        MessageContent::Pin {
            key: key.clone(),
            pin: true,
            duration_secs: wa_messages::DEFAULT_PIN_SECS * 7,
            sender_timestamp_ms: 1_700_000_000_123,
        },
    )
    .build(&mut rng())
    .expect("builds");
    let p = pin.pin_in_chat_message.as_ref().expect("pin");
    assert_eq!(p.r#type(), Type::PinForAll);
    assert_eq!(p.sender_timestamp_ms, Some(1_700_000_000_123));
    let k = p.key.as_ref().expect("key");
    assert_eq!(k.id.as_deref(), Some("3EB0CCCCCCCCCCCCCCCC"));
    assert_eq!(k.from_me, Some(false));
    let ctx = pin.message_context_info.as_ref().expect("context info");
    assert_eq!(ctx.message_add_on_duration_in_secs, Some(604_800));
    assert_eq!(ctx.message_secret.as_ref().map(Vec::len), Some(32));

    let unpin = MessageBuilder::new(
        chat(),
        MessageContent::Pin {
            key,
            pin: false,
            duration_secs: 3_600,
            sender_timestamp_ms: 5,
        },
    )
    .build(&mut rng())
    .expect("builds");
    assert_eq!(
        unpin.pin_in_chat_message.as_ref().expect("pin").r#type(),
        Type::UnpinForAll
    );
    assert_eq!(
        unpin
            .message_context_info
            .as_ref()
            .and_then(|c| c.message_add_on_duration_in_secs),
        Some(0)
    );
}

#[test]
fn prepared_messages_get_context_and_keep_their_secret() {
    use wa_proto::e2e::{ImageMessage, MessageContextInfo};
    let image = Message {
        image_message: Some(Box::new(ImageMessage {
            caption: Some("look".into()),
            ..Default::default()
        })),
        ..Default::default()
    };
    let m = MessageBuilder::new(chat(), MessageContent::Prepared(Box::new(image.clone())))
        .mentions(vec![Jid::pn("15550000009")])
        .ephemeral_expiration(86_400)
        .build(&mut rng())
        .expect("builds");
    let img = m.image_message.as_ref().expect("image");
    assert_eq!(img.caption.as_deref(), Some("look"));
    let ctx = img.context_info.as_ref().expect("context");
    assert_eq!(ctx.mentioned_jid, vec!["15550000009@s.whatsapp.net"]);
    assert_eq!(ctx.expiration, Some(86_400));
    assert_eq!(secret_len(&m), Some(32));

    // A secret the prepared message carries (a poll's, say) is kept; one given to the
    // builder wins.
    let mut with_secret = image;
    with_secret.message_context_info = Some(Box::new(MessageContextInfo {
        message_secret: Some(vec![7; 32]),
        ..Default::default()
    }));
    let kept = MessageBuilder::new(
        chat(),
        MessageContent::Prepared(Box::new(with_secret.clone())),
    )
    .build(&mut rng())
    .expect("builds");
    assert_eq!(
        kept.message_context_info.unwrap().message_secret,
        Some(vec![7; 32])
    );
    let replaced = MessageBuilder::new(chat(), MessageContent::Prepared(Box::new(with_secret)))
        .message_secret([9; 32])
        .build(&mut rng())
        .expect("builds");
    assert_eq!(
        replaced.message_context_info.unwrap().message_secret,
        Some(vec![9; 32])
    );
}

#[test]
fn member_labels_are_protocol_messages_cut_to_30_characters() {
    let group: Jid = "120363000000000001@g.us".parse().unwrap();
    let m = MessageBuilder::new(
        group,
        MessageContent::MemberLabel {
            label: "organiser of the summer street party 🎉".into(),
            timestamp_secs: 1_700_000_000,
        },
    )
    .build(&mut rng())
    .expect("builds");
    let pm = m.protocol_message.expect("protocol");
    assert_eq!(
        pm.r#type,
        Some(protocol_message::Type::GroupMemberLabelChange as i32)
    );
    let label = pm.member_label.expect("label");
    assert_eq!(
        label.label.as_deref(),
        Some("organiser of the summer street")
    );
    assert_eq!(label.label.as_deref().map(|l| l.chars().count()), Some(30));
    assert_eq!(label.label_timestamp, Some(1_700_000_000));
}

#[test]
fn text_statuses_carry_their_colour_and_font() {
    let m = MessageBuilder::new(Jid::status_broadcast(), MessageContent::text("sunny"))
        .text_style(0xFF12_34AB, Some(2))
        .build(&mut rng())
        .expect("builds");
    let ext = m.extended_text_message.expect("text");
    assert_eq!(ext.background_argb, Some(0xFF12_34AB));
    assert_eq!(ext.font, Some(2));
    // Other content is left alone.
    let loc = MessageBuilder::new(
        chat(),
        MessageContent::Location(wa_messages::Location {
            latitude: 1.0,
            longitude: 2.0,
            name: None,
            address: None,
        }),
    )
    .text_style(0xFF00_0000, None)
    .build(&mut rng())
    .expect("builds");
    assert!(loc.extended_text_message.is_none());
}

#[test]
fn events_carry_their_details_and_a_secret() {
    let group: Jid = "120363000000000001@g.us".parse().unwrap();
    let event = wa_messages::ScheduledEvent {
        name: "Street party".into(),
        description: Some("Bring a dish".into()),
        start_time: 1_800_000_000,
        end_time: Some(1_800_010_000),
        location: Some(wa_messages::Location {
            latitude: 52.37,
            longitude: 4.89,
            name: Some("The square".into()),
            address: None,
        }),
        join_link: None,
        cancelled: false,
        extra_guests_allowed: true,
    };
    let m = MessageBuilder::new(group.clone(), MessageContent::Event(event.clone()))
        .mentions(vec![Jid::pn("15550000009")])
        .build(&mut rng())
        .expect("builds");
    let e = m.event_message.as_ref().expect("an event");
    assert_eq!(e.name.as_deref(), Some("Street party"));
    assert_eq!(e.description.as_deref(), Some("Bring a dish"));
    assert_eq!(
        (e.start_time, e.end_time),
        (Some(1_800_000_000), Some(1_800_010_000))
    );
    assert_eq!(
        e.location.as_ref().and_then(|l| l.name.as_deref()),
        Some("The square")
    );
    assert_eq!(
        (e.is_canceled, e.extra_guests_allowed),
        (Some(false), Some(true))
    );
    assert_eq!(
        e.context_info.as_ref().map(|c| c.mentioned_jid.len()),
        Some(1)
    );
    assert_eq!(secret_len(&m), Some(32));
    // No name, or an end before the start: refused.
    for bad in [
        wa_messages::ScheduledEvent {
            name: " ".into(),
            ..event.clone()
        },
        wa_messages::ScheduledEvent {
            end_time: Some(1),
            ..event
        },
    ] {
        assert!(matches!(
            MessageBuilder::new(group.clone(), MessageContent::Event(bad)).build(&mut rng()),
            Err(Error::InvalidEvent(_))
        ));
    }
}

#[test]
fn phone_number_sharing_and_limit_sharing() {
    let share = MessageBuilder::new(chat(), MessageContent::SharePhoneNumber)
        .build(&mut rng())
        .expect("builds");
    assert_eq!(
        share.protocol_message.expect("protocol").r#type,
        Some(protocol_message::Type::SharePhoneNumber as i32)
    );
    let ask = MessageBuilder::new(chat(), MessageContent::RequestPhoneNumber)
        .build(&mut rng())
        .expect("builds");
    assert!(ask.request_phone_number_message.is_some());
    let limit = MessageBuilder::new(
        chat(),
        MessageContent::LimitSharing {
            limited: true,
            timestamp_ms: 1_700_000_000_000,
        },
    )
    .build(&mut rng())
    .expect("builds");
    let pm = limit.protocol_message.expect("protocol");
    assert_eq!(pm.r#type, Some(protocol_message::Type::LimitSharing as i32));
    let ls = pm.limit_sharing.expect("limit sharing");
    assert_eq!(ls.sharing_limited, Some(true));
    assert_eq!(ls.trigger, Some(1));
    assert_eq!(ls.limit_sharing_setting_timestamp, Some(1_700_000_000_000));
    assert_eq!(ls.initiated_by_me, Some(true));
}
