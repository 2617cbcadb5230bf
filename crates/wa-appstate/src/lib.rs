#![doc = include_str!("../README.md")]

mod action;
mod build;
mod collection;
mod decode;
mod encode;
mod error;
mod history;
mod keys;
mod lthash;
mod mac;
mod recovery;

pub use action::{AccountSetting, Action, LabelTarget};
pub use collection::Collection;
pub use decode::{
    DecodeOptions, DecodedPatch, Mutation, append_external_mutations, decode_patch,
    decode_patch_list, decode_snapshot,
};
pub use encode::{EncodedPatch, OutgoingMutation, encode_patch};
pub use error::Error;
pub use history::{
    DEFAULT_MAX_INFLATED_LEN, GroupPastParticipants, HistoryChat, HistoryContact, HistoryData,
    HistoryMessage, LidPnMapping, PastParticipant, decode_history_blob, inflate_bounded,
    process_history,
};
pub use keys::{KeyLookup, MUTATION_KEYS_INFO, MutationKeys};
pub use lthash::{
    Applied, HashState, LT_HASH_INFO, LT_HASH_LEN, Operation, lt_hash_add, lt_hash_expand,
    lt_hash_subtract,
};
pub use mac::{index_mac, patch_mac, snapshot_mac, value_mac};
pub use recovery::{apply_recovery, parse_recovery};

/// Typed builders for the chat modifications clients push, producing the index and
/// value WhatsApp expects (as Baileys' `chatModificationToAppPatch` and whatsmeow's
/// `Build*` functions do). The caller supplies the action timestamp in Unix
/// milliseconds, since nothing here reads the clock.
pub mod builders {
    pub use crate::build::{
        MuteUntil, archive, clear_chat, contact, delete_chat, delete_for_me, disable_link_previews,
        label_chat, label_edit, label_message, mark_read, mute, nct_salt, pin, push_name,
        quick_reply, star, status_privacy,
    };
}
