#![doc = include_str!("../README.md")]

mod client;
mod error;
mod parse;

pub use client::{MAX_FETCH, MetadataKey, Newsletters, Posted};
pub use error::Error;
pub use parse::{
    MAX_DESCRIPTION, MAX_MESSAGES, MAX_NAME, MAX_REACTIONS, MAX_UPDATES, MexOperation,
    NewsletterMetadata, NewsletterPicture, build_mex_error, build_mex_query, build_mex_reply,
    build_post, build_reaction, build_view_receipt, metadata_json, ops, parse_count, parse_message,
    parse_messages, parse_messages_reply, parse_metadata, parse_mex_request, parse_mex_result,
    parse_notification, parse_post,
};
pub use wa_types::{NewsletterChange, NewsletterMessage, NewsletterRole, NewsletterUpdate};
