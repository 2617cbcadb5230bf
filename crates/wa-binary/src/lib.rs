#![doc = include_str!("../README.md")]

mod attrs;
mod decode;
mod encode;
mod error;
mod fmt;
mod jid;
mod node;
mod str;
mod token;
mod tokens;

pub use attrs::Attrs;
pub use decode::{DecodeLimits, decode, decode_node, decode_with_limits};
pub use encode::{encode, encode_compressed, encode_node_into, try_encode};
pub use error::Error;
pub use jid::{Jid, MAX_JID_USER_LEN, Server};
pub use node::{AttrParser, Content, FromAttr, Node, NodeBuilder, Value};
pub use str::Str;

/// Version of the token dictionaries this codec speaks.
pub const DICTIONARY_VERSION: u8 = tokens::DICT_VERSION;
