//! Runs every public stanza parser of the feature crates over whatever decodes as a node:
//! group, chat, channel, call, business, usync, media-retry and socket-level stanzas and
//! replies. None may panic. Seeds: `STORM_TEMPLATES_DIR=fuzz/corpus/stanza_parsers cargo
//! test -p wa --test stanza_storm` writes the recorded traffic the storm mutates.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wa_binary::{DecodeLimits, Jid, Node, decode_with_limits};

fn every_parser(n: &Node) {
    let someone = Jid::pn("15550000001");

    let update = wa_groups::parse_notification(n);
    if let (Ok(mut meta), Ok(update)) = (wa_groups::parse_group_reply(n), &update) {
        wa_groups::apply_update(&mut meta, update);
    }
    let _ = wa_groups::parse_group(n);
    for action in ["add", "remove", "promote", "demote", "approve", "reject"] {
        let _ = wa_groups::parse_participants_reply(n, action);
        let _ = wa_groups::parse_requests_action_reply(n, action);
    }
    let _ = wa_groups::parse_invite_join_reply(n);
    let _ = wa_groups::parse_join_requests_reply(n);
    let _ = wa_groups::parse_linked_group(n);
    let _ = wa_groups::parse_sub_groups_reply(n);
    let _ = wa_groups::parse_linked_participants_reply(n);

    let _ = wa_chats::parse_presence(n);
    let _ = wa_chats::parse_chat_state(n);
    let _ = wa_chats::parse_privacy(n);
    let _ = wa_chats::parse_status_privacy(n);
    let _ = wa_chats::parse_blocklist(n);
    let _ = wa_chats::parse_blocklist_notification(n);
    let _ = wa_chats::parse_picture_notification(n);
    let _ = wa_chats::parse_picture(n);
    for (existing, community) in [(false, false), (true, false), (false, true)] {
        let _ = wa_chats::parse_picture_info(n, existing, community);
    }
    let _ = wa_chats::parse_about_notification(n);
    let _ = wa_chats::parse_picture_id(n);
    let _ = wa_chats::parse_lid(n, &someone);
    let _ = wa_chats::parse_status(n, &someone);
    let _ = wa_chats::parse_disappearing_mode(n, &someone);
    let _ = wa_chats::parse_bot_profile(n, &someone);
    let _ = wa_chats::parse_bot_list(n);
    let _ = wa_chats::parse_contact_qr_code(n);
    let _ = wa_chats::parse_contact_qr_target(n);
    let _ = wa_chats::parse_business_message_link(n);

    let _ = wa_newsletter::parse_mex_request(n);
    for op in [
        wa_newsletter::ops::CREATE,
        wa_newsletter::ops::METADATA,
        wa_newsletter::ops::SUBSCRIBERS,
        wa_newsletter::ops::ADMIN_COUNT,
    ] {
        if let Ok(v) = wa_newsletter::parse_mex_result(n, op) {
            let _ = wa_newsletter::parse_metadata(&v);
            let _ = wa_newsletter::parse_count(&v, "subscribers_count");
        }
        let _ = wa_socket::mex::parse_result(n, op);
    }
    let _ = wa_newsletter::parse_message(n);
    let _ = wa_newsletter::parse_messages(n);
    let _ = wa_newsletter::parse_post(n);
    let _ = wa_newsletter::parse_messages_reply(n);
    let _ = wa_newsletter::parse_notification(n);

    let _ = wa_calls::call_status(n);
    let _ = wa_calls::parse_call(n);
    let _ = wa_calls::parse_link_create_reply(n);

    let _ = wa_business::parse_profile_reply(n);
    let _ = wa_business::parse_product(n);
    let _ = wa_business::parse_catalog_reply(n);
    let _ = wa_business::parse_collections_reply(n);
    let _ = wa_business::parse_product_edit_reply(n, "product");
    let _ = wa_business::parse_delete_reply(n);
    let _ = wa_business::parse_order_reply(n);

    if let Ok(users) = wa_usync::parse_reply(n) {
        for u in &users {
            if let Some(devices) = &u.devices {
                let _ = wa_usync::device_jids(&u.jid, devices);
            }
        }
    }

    let _ = wa_media::read_media_retry(n, &[7; 32], "3EB0");

    let _ = wa_socket::disconnect_reason(n);
    let _ = wa_socket::parse_props(n);
    let _ = wa_socket::parse_pair_success(n);
    let _ = wa_socket::privacy_token::parse_notification(n);
    let _ = wa_socket::account::parse_notification(n, 1_700_000_000);
    let _ = wa_socket::ack_for(n);
    let _ = wa_socket::message_ack(n, Some(&someone), Some(500));
}

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::DEFAULT.with_max_decompressed_len(1 << 20);
    if let Ok(node) = decode_with_limits(Bytes::copy_from_slice(data), &limits) {
        every_parser(&node);
        // Stanzas usually reach the parsers as a child of what was read.
        for child in node.children() {
            every_parser(child);
        }
    }
});
