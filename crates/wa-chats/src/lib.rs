#![doc = include_str!("../README.md")]

mod appstate;
mod client;
mod error;
mod links;
mod parse;
mod settings;
mod status;

pub use appstate::{
    AppState, AppStateConfig, ChatModification, ContactName, MAX_EXTERNAL_BLOB, MuteUntil,
    fatal_exception_notification, modification_mutation, modification_mutation_after,
    mutation_events, recovery_request,
};
pub use client::{
    AboutInput, Chats, ChatsConfig, MAX_ABOUT_EMOJI, MAX_PUSH_NAME, MAX_STATUS_QUERY, Presence,
    ProfilePictureParams,
};
pub use error::Error;
pub use links::{
    BUSINESS_MESSAGE_LINK_PREFIX, BusinessMessageLink, CONTACT_QR_LINK_PREFIX, ContactQrTarget,
    MAX_LINK_CODE_LEN, MAX_LINK_MESSAGE_LEN, MAX_LINK_NAME_LEN, PushConfig,
    parse_business_message_link, parse_contact_qr_code, parse_contact_qr_target,
};
pub use parse::{
    BotInfo, BotProfile, MAX_BLOCKLIST, MAX_BOT_ITEMS, MAX_BOTS, MAX_PICTURE_CHANGES,
    MAX_PICTURE_HASH_LEN, MAX_PICTURE_ID_LEN, MAX_PRIVACY_CATEGORIES, MAX_STATUS_LEN,
    MAX_STATUS_PRIVACY_LISTS, MAX_STATUS_PRIVACY_USERS, MAX_URL_LEN, PictureLookup, ProfilePicture,
    ProfilePictureInfo, UserStatus, parse_about_notification, parse_blocklist,
    parse_blocklist_notification, parse_bot_list, parse_bot_profile, parse_chat_state,
    parse_disappearing_mode, parse_lid, parse_picture, parse_picture_id, parse_picture_info,
    parse_picture_notification, parse_presence, parse_privacy, parse_status, parse_status_privacy,
};
pub use settings::{ChatSettings, chat_setting_ops};
pub use status::{StoredContact, contact_ops, status_audience, status_privacy_in_force};
pub use wa_appstate::Collection;
pub use wa_types::{
    AppStateFailure, AppStateRecoveryStep, AppStateSyncError, BlocklistChange, BlocklistUpdate,
    ChatState, ChatStateUpdate, ChatUpdate, ContactUpdate, Label, LabelAssociation,
    MessageDeletion, PictureUpdate, PresenceUpdate, PrivacySetting, PrivacySettings, PrivacyValue,
    StarUpdate, StatusPrivacy, StatusPrivacyKind, UserAbout,
};
/// A chat's last message, naming what a chat modification covers (defined in
/// `wa-types`, where incoming changes report it too).
pub use wa_types::{LastMessage, MessageRange};
