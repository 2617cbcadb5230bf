#![doc = include_str!("../README.md")]

mod client;
mod error;
mod parse;

pub use client::{
    CreateGroupOptions, GroupSetting, Groups, GroupsConfig, MetadataSource, ParticipantAction,
};
pub use error::Error;
pub use parse::{
    AddRequest, InviteJoin, MAX_PARTICIPANTS, MAX_SUB_GROUPS, ParticipantResult, apply_update,
    parse_group, parse_group_reply, parse_invite_join_reply, parse_join_requests_reply,
    parse_linked_group, parse_linked_participants_reply, parse_notification,
    parse_participants_reply, parse_requests_action_reply, parse_sub_groups_reply,
};
pub use wa_proto::e2e::GroupInviteMessage;
pub use wa_types::{
    AddressingMode, GroupChange, GroupLinkType, GroupMetadata, GroupParticipant, GroupUpdate,
    JoinRequest, LinkedGroup, MessageChange, MessageChangeKind, MessageKey, ParticipantRole,
};
