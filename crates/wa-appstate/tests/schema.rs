//! Every builder writes the collection, index name and action version that WhatsApp
//! Web's app-state schema table gives for its action (WhatsApp Web 2.3000.1043028647).
//! `label_message` is not in that table; its version (3) is the one Baileys writes.

use wa_appstate::builders::{
    MuteUntil, archive, clear_chat, contact, delete_chat, delete_for_me, disable_link_previews,
    label_chat, label_edit, label_message, mark_read, mute, nct_salt, pin, push_name, quick_reply,
    star, status_privacy,
};
use wa_appstate::{Operation, OutgoingMutation};

const CHAT: &str = "15550001@s.whatsapp.net";

#[test]
fn builders_match_the_web_schema() {
    let t = 1_700_000_000_000;
    // (mutation, collection, index name, version)
    let table: Vec<(OutgoingMutation, &str, &str, i32)> = vec![
        (mute(CHAT, MuteUntil::Forever, t), "regular_high", "mute", 2),
        (pin(CHAT, true, t), "regular_low", "pin_v1", 5),
        (archive(CHAT, true, None, t), "regular_low", "archive", 3),
        (
            mark_read(CHAT, true, None, t),
            "regular_low",
            "markChatAsRead",
            3,
        ),
        (
            star(CHAT, "ID", true, None, true, t),
            "regular_high",
            "star",
            2,
        ),
        (
            delete_chat(CHAT, true, None, t),
            "regular_high",
            "deleteChat",
            6,
        ),
        (
            clear_chat(CHAT, true, None, t),
            "regular_high",
            "clearChat",
            6,
        ),
        (
            label_edit("1", "L", 0, None, false, t),
            "regular",
            "label_edit",
            3,
        ),
        (label_chat("1", CHAT, true, t), "regular", "label_jid", 3),
        (
            label_message("1", CHAT, "ID", true, t),
            "regular",
            "label_message",
            3,
        ),
        (contact(CHAT, None, t), "critical_unblock_low", "contact", 2),
        (push_name("Ann", t), "critical_block", "setting_pushName", 1),
        (
            nct_salt(Some(&[1; 32]), t),
            "regular_high",
            "nct_salt_sync",
            1,
        ),
        (
            delete_for_me(CHAT, "ID", true, None, false, None, t),
            "regular_high",
            "deleteMessageForMe",
            3,
        ),
        (
            disable_link_previews(true, t),
            "regular",
            "setting_disableLinkPreviews",
            8,
        ),
        (
            status_privacy(
                wa_proto::sync_action::status_privacy_action::StatusDistributionMode::Contacts,
                &[],
                t,
            ),
            "regular_high",
            "status_privacy",
            7,
        ),
        (
            quick_reply("1", "hi", "hello", &[], false, t),
            "regular",
            "quick_reply",
            2,
        ),
    ];
    for (m, collection, name, version) in table {
        assert_eq!(m.collection.as_str(), collection, "{name}");
        assert_eq!(m.index.first().map(String::as_str), Some(name));
        assert_eq!(m.version, version, "{name}");
    }
    assert_eq!(nct_salt(None, t).operation, Operation::Remove);
    assert_eq!(nct_salt(Some(&[1; 32]), t).operation, Operation::Set);
}
