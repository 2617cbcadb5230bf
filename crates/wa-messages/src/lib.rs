#![doc = include_str!("../README.md")]

mod addon;
mod bot;
mod change;
mod content;
mod error;
mod framing;
mod group;
mod history;
mod id;
mod identity;
mod inbox;
mod keyshare;
mod lid;
mod messenger;
mod peer;
mod placeholder;
mod privacy;
mod receipt;
mod recv;
mod reporting;
mod secret;
mod send;
mod stanza;
mod status;
mod tally;

pub use bot::{DEFAULT_BOT_PERSONA_ID, META_AI_BOT_USER, meta_ai_jid};
pub use content::{
    Contact, DEFAULT_EPHEMERAL_SECS, DEFAULT_PIN_SECS, LinkPreview, Location, MessageBuilder,
    MessageContent, Poll, Quote, ScheduledEvent, key_to_proto,
};
pub use error::Error;
pub use framing::{decode_plaintext, encode_plaintext};
pub use history::HistorySyncFilter;
pub use id::{
    MESSAGE_ID_PREFIX, SenderPlatform, generate_message_id, is_web_message_id,
    message_id_from_parts, platform_of_message_id,
};
pub use messenger::{MAX_WAITING_STORE_RETRIES, Messenger, MessengerConfig, PreRetry};
pub use peer::{MAX_HISTORY_REQUEST, history_request};
pub use placeholder::{MAX_PLACEHOLDER_KEYS, placeholder_request};
pub use reporting::{
    REPORTING_TOKEN_LEN, REPORTING_TOKEN_VERSION, reporting_content, reporting_token,
    should_include_reporting_token,
};
pub use secret::{
    SecretContext, SecretUse, bot_message_secret, decrypt_event_response, decrypt_poll_vote,
    encrypt_poll_vote, event_response_message, poll_option_hash, poll_vote_message,
};
pub use send::{MessagePatch, RelayOptions};
pub use status::MAX_STATUS_RECIPIENTS;
pub use tally::{
    EventResponders, EventTally, MAX_TALLY_VOTERS, PollOptionVotes, PollTally, poll_options,
};
pub use wa_types::{MessageKey, MessageUpdate, MessagesUpsert, ReceiptType, WaMessage};
