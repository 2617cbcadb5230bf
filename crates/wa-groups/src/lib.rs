#![doc = include_str!("../README.md")]

mod client;
mod error;
mod parse;

pub use client::{GroupSetting, Groups, GroupsConfig, ParticipantAction};
pub use error::Error;
pub use parse::{
    MAX_PARTICIPANTS, MAX_SUB_GROUPS, ParticipantResult, apply_update, parse_group,
    parse_group_reply, parse_linked_group, parse_linked_participants_reply, parse_notification,
    parse_participants_reply, parse_sub_groups_reply,
};
pub use wa_types::{
    AddressingMode, GroupChange, GroupLinkType, GroupMetadata, GroupParticipant, GroupUpdate,
    LinkedGroup, ParticipantRole,
};
