//! The crate's error type.

/// Everything that can go wrong in this crate.
///
/// Decoding errors (peer misbehaviour: malformed frames) carry the byte offset
/// in the (decompressed) node data where the problem was found. Attribute and
/// child errors are raised by the typed accessors on [`Node`](crate::Node).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The frame is empty (no flags byte).
    #[error("empty frame")]
    EmptyFrame,
    /// The input ended in the middle of a field.
    #[error("truncated input at offset {offset}: {needed} more byte(s) needed")]
    Truncated {
        /// Where the field starts.
        offset: usize,
        /// Bytes missing.
        needed: usize,
    },
    /// A length prefix announces more bytes than the input holds.
    #[error("length {declared} at offset {offset} exceeds the {remaining} remaining byte(s)")]
    LengthExceedsInput {
        /// Where the length prefix is.
        offset: usize,
        /// The announced length.
        declared: usize,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A byte that is not a valid token or type tag in this position.
    #[error("invalid token {tag} at offset {offset}")]
    InvalidToken {
        /// The byte found.
        tag: u8,
        /// Where it is.
        offset: usize,
    },
    /// A list size that is impossible here (a node with 0 items, or more
    /// items than the remaining input can hold).
    #[error("invalid list size {size} at offset {offset}")]
    InvalidListSize {
        /// The size found.
        size: usize,
        /// Where the list header is.
        offset: usize,
    },
    /// A nibble or hex packed string with an invalid digit or length.
    #[error("invalid packed string at offset {offset}")]
    InvalidPacked {
        /// Where the packed string starts.
        offset: usize,
    },
    /// A structurally invalid node (e.g. an empty tag, a JID used as a tag).
    #[error("invalid node at offset {offset}: {reason}")]
    InvalidNode {
        /// What is wrong.
        reason: &'static str,
        /// Where it was found.
        offset: usize,
    },
    /// A JID encoding on the wire is invalid (e.g. missing server, wrong
    /// server for FB_JID / INTEROP_JID).
    #[error("invalid JID encoding at offset {offset}: {reason}")]
    InvalidJidEncoding {
        /// What is wrong.
        reason: &'static str,
        /// Where the JID starts.
        offset: usize,
    },
    /// Nodes are nested deeper than [`DecodeLimits::max_depth`](crate::DecodeLimits).
    #[error("nesting deeper than {max}")]
    TooDeep {
        /// The configured maximum.
        max: usize,
    },
    /// A configured size limit was exceeded.
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The configured maximum.
        limit: usize,
    },
    /// Bytes follow the end of the node.
    #[error("{count} trailing byte(s) after the node")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The zlib-compressed frame body is invalid.
    #[error("invalid zlib data: {message}")]
    Zlib {
        /// The decompressor's message.
        message: String,
    },
    /// A textual JID could not be parsed.
    #[error("invalid JID {input:?}: {reason}")]
    InvalidJid {
        /// The text (truncated to 128 bytes).
        input: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A required attribute is absent.
    #[error("<{tag}> has no attribute {key:?}")]
    MissingAttr {
        /// The node's tag.
        tag: String,
        /// The attribute key.
        key: String,
    },
    /// An attribute is present but does not convert to the requested type.
    #[error("<{tag}> attribute {key}={value:?} is not a valid {expected}")]
    InvalidAttr {
        /// The node's tag.
        tag: String,
        /// The attribute key.
        key: String,
        /// The value found (truncated to 128 bytes).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A required child node is absent.
    #[error("<{tag}> has no child <{child}>")]
    MissingChild {
        /// The parent's tag.
        tag: String,
        /// The child tag looked for.
        child: String,
    },
    /// A node holds something the wire format cannot represent (refused by
    /// [`try_encode`](crate::try_encode)).
    #[error("cannot encode {what}")]
    Unencodable {
        /// What could not be encoded.
        what: &'static str,
    },
    /// Several attribute errors collected by an [`AttrParser`](crate::AttrParser).
    #[error("{} attribute errors, first: {}", .0.len(), .0.first().map(|e| e.to_string()).unwrap_or_default())]
    Attrs(Vec<Error>),
}

/// Truncates text for inclusion in an error message.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 128;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
