#![doc = include_str!("../README.md")]

mod error;
mod fleet;
mod socket;

pub use error::Error;
pub use fleet::{Configure, Fleet, FleetConfig, FleetEvent};
pub use socket::{
    CLOSE_GRACE, Events, INVITE_THUMBNAIL_TIMEOUT, WaConfig, WaSocket, make_wa_socket, message_text,
};

pub use wa_binary::{Jid, Node, Server};
pub use wa_business::{
    Business, BusinessHours, BusinessProfile, Catalog, Collection, DayHours, OrderDetails,
    OrderProduct, Product, ProductCreate, ProductUpdate, ProfileUpdate,
};
pub use wa_calls::{CallLink, CallMedia, Calls, CallsConfig};
pub use wa_chats::{
    AboutInput, AppState, AppStateConfig, BotInfo, BusinessMessageLink, ChatModification,
    ChatSettings, Chats, ChatsConfig, Collection as AppStateCollection, ContactName,
    ContactQrTarget, LastMessage, MuteUntil, PictureLookup, Presence, ProfilePicture,
    ProfilePictureInfo, ProfilePictureParams, PushConfig, StatusPrivacy, StatusPrivacyKind,
    StoredContact, UserStatus,
};
pub use wa_groups::{
    AddRequest, CreateGroupOptions, GroupInviteMessage, GroupSetting, Groups, GroupsConfig,
    InviteJoin, ParticipantAction, ParticipantResult,
};
pub use wa_media::{
    Downloadable, LinkImage, Media, MediaConfig, MediaKind, MediaOptions, MediaType,
    PROFILE_PICTURE_SIDE, Progress as MediaProgress, Uploaded, downloadable,
    fetch_latest_web_version, profile_picture,
};
pub use wa_messages::{
    Contact, DEFAULT_EPHEMERAL_SECS, DEFAULT_PIN_SECS, EventResponders, EventTally, LinkPreview,
    Location, MAX_STATUS_RECIPIENTS, MessageBuilder, MessageContent, MessagePatch, Messenger,
    MessengerConfig, Poll, PollOptionVotes, PollTally, Quote, ScheduledEvent, generate_message_id,
    poll_option_hash,
};
pub use wa_newsletter::{
    MetadataKey as NewsletterKey, NewsletterChange, NewsletterMessage, NewsletterMetadata,
    NewsletterUpdate, Newsletters,
};
/// The protobuf types (the end-to-end `Message` and the rest).
pub use wa_proto as proto;
/// An answer to an event ([`Messenger::respond_to_event`]).
pub use wa_proto::e2e::event_response_message::EventResponseType;
pub use wa_socket::{Backoff, Browser, Filter, Socket, SocketConfig, WebAuthnAssertion};
pub use wa_store::{AccountId, AccountStore, Backend, MemoryBackend};
#[cfg(feature = "postgres")]
pub use wa_store_postgres as postgres;
#[cfg(feature = "sqlite")]
pub use wa_store_sqlite::SqliteBackend;
pub use wa_types::{
    AccountSetting, AddOnKind, AddOnUpdate, CallEvent, CallStatus, GroupLinkType, IdentityChange,
    JoinRequest, LinkedGroup, MemberLabelUpdate, MessageChange, MessageChangeKind, MessageDeletion,
    PushNameUpdate, UndecryptableMessage,
};
pub use wa_types::{
    AddressingMode, ConnectionState, ConnectionUpdate, DisconnectReason, Event, GroupChange,
    GroupMetadata, GroupParticipant, GroupUpdate, MessageKey, MessageUpdate, MessagesUpsert,
    ParticipantRole, ReceiptType, WaMessage,
};
pub use wa_types::{
    AppStateFailure, AppStateRecoveryStep, AppStateSyncError, BlocklistChange, BlocklistUpdate,
    ChatState, ChatStateUpdate, ChatUpdate, ContactUpdate, DirtyBits, GroupPastParticipants,
    HistoryChat, HistoryContact, HistoryData, HistoryMessage, HistorySync, HistorySyncErrorKind,
    HistorySyncFailure, HistorySyncPhase, HistorySyncStatus, HistorySyncType, Label,
    LabelAssociation, LidMapping, LidPnMapping, MessageRange, NewChatMessageCap, NewsletterRole,
    PastParticipant, PictureUpdate, PresenceUpdate, PrivacySetting, PrivacySettings, PrivacyValue,
    ReachoutTimelock, StarUpdate, UserAbout,
};
pub use wa_types::{
    PasskeyConfirmation, PasskeyCredential, PasskeyErrorKind, PasskeyFailure, PasskeyRequestOptions,
};
pub use wa_usync::{
    DeviceInfo, DeviceList, DisappearingMode, OnWhatsApp, Protocol as UsyncProtocol, UserInfo,
    UserQuery, UserStatus as UsyncUserStatus, Usync, UsyncConfig, UsyncQuery, UsyncUser,
    VerifiedName,
};

/// The names most programs need: `use wa::prelude::*;`.
pub mod prelude {
    pub use crate::{Business, NewsletterChange, NewsletterUpdate, Newsletters};
    pub use crate::{CallEvent, CallStatus, Calls};
    pub use crate::{
        ConnectionState, Event, Jid, MediaKind, MediaOptions, MessageContent, MessageKey, WaConfig,
        WaMessage, WaSocket, make_wa_socket, message_text,
    };
}

/// An account store in a SQLite file (created if missing), for the account named
/// `account`.
///
/// # Errors
/// The store's error when the file cannot be opened or migrated.
#[cfg(feature = "sqlite")]
pub async fn sqlite_store(
    path: impl AsRef<std::path::Path>,
    account: &str,
) -> Result<AccountStore, Error> {
    let backend = SqliteBackend::open(path).await?;
    Ok(AccountStore::new(
        std::sync::Arc::new(backend),
        AccountId::new(account)?,
    ))
}

/// An account store in memory (lost when the process ends; for tests and experiments).
///
/// # Errors
/// When `account` is not a valid account id.
pub fn memory_store(account: &str) -> Result<AccountStore, Error> {
    Ok(AccountStore::new(
        std::sync::Arc::new(MemoryBackend::new()),
        AccountId::new(account)?,
    ))
}
