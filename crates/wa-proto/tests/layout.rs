//! The generated structs stay small in memory: a large sub-message is boxed, so a value
//! costs the fields it sets rather than every field its schema has. `wa.e2e.Message` has
//! well over a hundred optional sub-messages; held inline they made each `Message` about
//! 9 KiB, which every decode zeroed and every move copied.

use std::mem::size_of;

use wa_proto::e2e::{ContextInfo, ExtendedTextMessage, Message, MessageContextInfo};
use wa_proto::web::WebMessageInfo;

/// Generous for 64-bit targets: the types below are 0.4-1.9 KiB with boxing and 2-9 KiB
/// without.
const BOUND: usize = 2 * 1024;

#[test]
fn messages_that_carry_content_are_at_most_two_kib() {
    for (name, size) in [
        ("Message", size_of::<Message>()),
        ("WebMessageInfo", size_of::<WebMessageInfo>()),
        ("ContextInfo", size_of::<ContextInfo>()),
        ("ExtendedTextMessage", size_of::<ExtendedTextMessage>()),
        ("MessageContextInfo", size_of::<MessageContextInfo>()),
    ] {
        assert!(size <= BOUND, "{name} is {size} bytes");
    }
}

#[test]
fn a_large_sub_message_is_boxed() {
    // Built through the box, read through it like an inline field.
    let m = Message {
        message_context_info: Some(Box::new(MessageContextInfo {
            message_secret: Some(vec![7; 32]),
            ..Default::default()
        })),
        ..Default::default()
    };
    let ctx = m.message_context_info.as_deref().expect("set");
    assert_eq!(ctx.message_secret.as_deref(), Some(&[7u8; 32][..]));
    let decoded =
        <Message as prost::Message>::decode(&*prost::Message::encode_to_vec(&m)).expect("decodes");
    assert_eq!(decoded, m);
}
