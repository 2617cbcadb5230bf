//! The node tree: [`Node`], [`Value`], [`Attrs`], [`Content`], typed accessors.

use bytes::Bytes;

use crate::attrs::Attrs;
use crate::error::{Error, clip};
use crate::jid::Jid;
use crate::str::Str;

/// An attribute value: a string, or a JID.
///
/// The decoder yields [`Value::Jid`] for the JID encodings (JID_PAIR, AD_JID,
/// FB_JID, INTEROP_JID) and [`Value::Str`] for everything else; the encoder
/// writes each variant in its own form, so a node round-trips exactly. A
/// string that merely looks like a JID stays a string (see [`Value::sniff`]
/// for Baileys' behaviour).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// Text (written as a token, nibble/hex packed, or raw bytes).
    Str(Str),
    /// A JID (written in one of the JID encodings). Held inline: a boxed JID
    /// cost an allocation for every JID attribute decoded, built or cloned,
    /// tens per message, against a value of 56 bytes instead of 24.
    Jid(Jid),
}

impl Value {
    /// Baileys' typing of string attributes: a string containing `@` that
    /// parses as a JID becomes [`Value::Jid`], anything else a string.
    /// Use this when porting code that builds attributes from JID strings.
    pub fn sniff(s: impl Into<Str>) -> Value {
        let s = s.into();
        if s.as_bytes().contains(&b'@')
            && let Ok(j) = s.as_str().parse::<Jid>()
        {
            return Value::Jid(j);
        }
        Value::Str(s)
    }

    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s.as_str()),
            Value::Jid(_) => None,
        }
    }

    /// The JID, if this is a JID value.
    pub fn as_jid(&self) -> Option<&Jid> {
        match self {
            Value::Jid(j) => Some(j),
            Value::Str(_) => None,
        }
    }

    /// A JID: the value itself, or a string parsed as a JID. `None` for one whose user
    /// part or server is longer than [`MAX_JID_USER_LEN`](crate::MAX_JID_USER_LEN).
    pub fn to_jid(&self) -> Option<Jid> {
        match self {
            Value::Jid(j) => Some(Jid::clone(j)).filter(Jid::is_bounded),
            Value::Str(s) => s.parse().ok(),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Jid(j) => std::fmt::Display::fmt(j, f),
        }
    }
}

impl From<Str> for Value {
    fn from(s: Str) -> Self {
        Value::Str(s)
    }
}
impl From<&'static str> for Value {
    fn from(s: &'static str) -> Self {
        Value::Str(Str::from_static(s))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(Str::from(s))
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Str(Str::copy_from(s))
    }
}
impl From<Jid> for Value {
    fn from(j: Jid) -> Self {
        Value::Jid(j)
    }
}
impl From<&Jid> for Value {
    fn from(j: &Jid) -> Self {
        Value::Jid(j.clone())
    }
}
macro_rules! value_from_int {
    ($($t:ty),*) => {$(
        /// The decimal text, with no heap allocation.
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                // Lossless: every type here has at most 64 bits.
                Value::Str(Str::decimal(v as i128))
            }
        }
    )*};
}
value_from_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64);

/// `true` or `false`.
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Str(Str::from_static(if v { "true" } else { "false" }))
    }
}

/// What a node holds after its attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Content {
    /// Nothing (the node is `<tag .../>`).
    #[default]
    None,
    /// Child nodes (possibly an empty list, which differs from `None` on the wire).
    Nodes(Vec<Node>),
    /// Raw bytes (BINARY_8/20/32). Decoded bytes share the frame's buffer.
    Bytes(Bytes),
    /// A string written in token or packed form. Raw text has no distinct
    /// encoding on the wire: text that is not a token or packable is written
    /// as raw bytes and decodes as [`Content::Bytes`].
    Text(Str),
    /// A JID (boxed: JID content is rare, and this keeps every node small).
    Jid(Box<Jid>),
}

/// A node of WhatsApp's binary XML: a tag, attributes and content.
///
/// `Debug` and `Display` print an XML-like form (`{:#}` indents); see the
/// crate documentation.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Node {
    /// The tag (never empty in a valid node).
    pub tag: Str,
    /// The attributes.
    pub attrs: Attrs,
    /// The content.
    pub content: Content,
}

impl Node {
    /// A node with no attributes and no content.
    pub fn new(tag: impl Into<Str>) -> Self {
        Node {
            tag: tag.into(),
            attrs: Attrs::new(),
            content: Content::None,
        }
    }

    /// Starts building a node.
    pub fn builder(tag: impl Into<Str>) -> NodeBuilder {
        NodeBuilder {
            node: Node::new(tag),
        }
    }

    /// The tag.
    pub fn tag(&self) -> &str {
        self.tag.as_str()
    }

    /// The raw value of attribute `key`.
    pub fn get_attr(&self, key: &str) -> Option<&Value> {
        self.attrs.get(key)
    }

    /// Attribute `key` converted to `T`; an error if it is missing or does not
    /// convert.
    ///
    /// ```
    /// # use wa_binary::{Node, Jid};
    /// let n = Node::builder("message").attr("from", Jid::pn("123")).attr("t", 17u32).build();
    /// let from: Jid = n.attr("from")?;
    /// let t: u64 = n.attr("t")?;
    /// assert_eq!((from.user.as_str(), t), ("123", 17));
    /// assert!(n.attr::<u64>("from").is_err());
    /// assert!(n.attr::<&str>("id").is_err());
    /// # Ok::<(), wa_binary::Error>(())
    /// ```
    pub fn attr<'a, T: FromAttr<'a>>(&'a self, key: &str) -> Result<T, Error> {
        match self.attrs.get(key) {
            Some(v) => convert(self, key, v),
            None => Err(Error::MissingAttr {
                tag: self.tag.to_string(),
                key: key.to_owned(),
            }),
        }
    }

    /// Attribute `key` converted to `T` if present; an error only if it is
    /// present and does not convert.
    pub fn attr_opt<'a, T: FromAttr<'a>>(&'a self, key: &str) -> Result<Option<T>, Error> {
        self.attrs
            .get(key)
            .map(|v| convert(self, key, v))
            .transpose()
    }

    /// A parser that collects errors over several attribute reads.
    pub fn attr_parser(&self) -> AttrParser<'_> {
        AttrParser {
            node: self,
            errors: Vec::new(),
        }
    }

    /// The child nodes (empty unless the content is [`Content::Nodes`]).
    pub fn children(&self) -> &[Node] {
        match &self.content {
            Content::Nodes(n) => n,
            _ => &[],
        }
    }

    /// The first child with this tag.
    pub fn child(&self, tag: &str) -> Option<&Node> {
        self.children().iter().find(|c| c.tag == tag)
    }

    /// The first child with this tag, or [`Error::MissingChild`].
    pub fn require_child(&self, tag: &str) -> Result<&Node, Error> {
        self.child(tag).ok_or_else(|| Error::MissingChild {
            tag: self.tag.to_string(),
            child: tag.to_owned(),
        })
    }

    /// All children with this tag, in order.
    pub fn children_by_tag<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children().iter().filter(move |c| c.tag == tag)
    }

    /// Follows a path of child tags (`["usync", "list"]`).
    pub fn child_by_path(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |n, t| n.child(t))
    }

    /// The content bytes, if the content is [`Content::Bytes`].
    pub fn bytes(&self) -> Option<&Bytes> {
        match &self.content {
            Content::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The content as bytes, for [`Content::Bytes`] and [`Content::Text`].
    pub fn content_bytes(&self) -> Option<&[u8]> {
        match &self.content {
            Content::Bytes(b) => Some(b),
            Content::Text(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
}

/// Builds a [`Node`].
///
/// ```
/// # use wa_binary::{Node, Jid, Server};
/// let iq = Node::builder("iq")
///     .attr("id", "1")
///     .attr("to", Jid::server_jid())
///     .children([Node::builder("ping").build()])
///     .build();
/// assert_eq!(iq.child("ping").map(|c| c.tag()), Some("ping"));
/// ```
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    node: Node,
}

impl NodeBuilder {
    /// Sets an attribute.
    pub fn attr(mut self, key: impl Into<Str>, value: impl Into<Value>) -> Self {
        self.node.attrs.insert(key, value);
        self
    }

    /// Sets an attribute when `value` is `Some`.
    pub fn attr_opt(self, key: impl Into<Str>, value: Option<impl Into<Value>>) -> Self {
        match value {
            Some(v) => self.attr(key, v),
            None => self,
        }
    }

    /// Sets the children.
    pub fn children(mut self, children: impl IntoIterator<Item = Node>) -> Self {
        self.node.content = Content::Nodes(children.into_iter().collect());
        self
    }

    /// Sets raw byte content.
    pub fn bytes(mut self, bytes: impl Into<Bytes>) -> Self {
        self.node.content = Content::Bytes(bytes.into());
        self
    }

    /// Sets text content (see [`Content::Text`]).
    pub fn text(mut self, text: impl Into<Str>) -> Self {
        self.node.content = Content::Text(text.into());
        self
    }

    /// Sets the content.
    pub fn content(mut self, content: Content) -> Self {
        self.node.content = content;
        self
    }

    /// The node.
    pub fn build(self) -> Node {
        self.node
    }
}

/// Conversion of an attribute value to a Rust type, for [`Node::attr`].
pub trait FromAttr<'a>: Sized {
    /// Name of the expected type, for error messages.
    const EXPECTED: &'static str;
    /// Converts, or `None` if the value does not fit.
    fn from_attr(value: &'a Value) -> Option<Self>;
}

fn convert<'a, T: FromAttr<'a>>(node: &Node, key: &str, v: &'a Value) -> Result<T, Error> {
    T::from_attr(v).ok_or_else(|| Error::InvalidAttr {
        tag: node.tag.to_string(),
        key: key.to_owned(),
        value: clip(&v.to_string()),
        expected: T::EXPECTED,
    })
}

impl<'a> FromAttr<'a> for &'a Value {
    const EXPECTED: &'static str = "value";
    fn from_attr(v: &'a Value) -> Option<Self> {
        Some(v)
    }
}

impl<'a> FromAttr<'a> for Value {
    const EXPECTED: &'static str = "value";
    fn from_attr(v: &'a Value) -> Option<Self> {
        Some(v.clone())
    }
}

/// Only string values: a JID value is not stored as text (use `String`).
impl<'a> FromAttr<'a> for &'a str {
    const EXPECTED: &'static str = "string";
    fn from_attr(v: &'a Value) -> Option<Self> {
        v.as_str()
    }
}

/// Strings, and JIDs printed as text.
impl<'a> FromAttr<'a> for String {
    const EXPECTED: &'static str = "string";
    fn from_attr(v: &'a Value) -> Option<Self> {
        Some(v.to_string())
    }
}

/// Strings (cheap clone), and JIDs printed as text.
impl<'a> FromAttr<'a> for Str {
    const EXPECTED: &'static str = "string";
    fn from_attr(v: &'a Value) -> Option<Self> {
        match v {
            Value::Str(s) => Some(s.clone()),
            Value::Jid(j) => Some(Str::from(j.to_string())),
        }
    }
}

/// JID values, and strings that parse as JIDs.
impl<'a> FromAttr<'a> for Jid {
    const EXPECTED: &'static str = "JID";
    fn from_attr(v: &'a Value) -> Option<Self> {
        v.to_jid()
    }
}

/// `true`/`false` (also `1`/`0`).
impl<'a> FromAttr<'a> for bool {
    const EXPECTED: &'static str = "boolean";
    fn from_attr(v: &'a Value) -> Option<Self> {
        match v.as_str()? {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }
}

macro_rules! from_attr_int {
    ($($t:ty),*) => {$(
        impl<'a> FromAttr<'a> for $t {
            const EXPECTED: &'static str = stringify!($t);
            fn from_attr(v: &'a Value) -> Option<Self> {
                let s = v.as_str()?;
                let digits = s.strip_prefix('-').unwrap_or(s);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                s.parse().ok()
            }
        }
    )*};
}
from_attr_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64);

/// Reads several attributes of one node, collecting every error instead of
/// stopping at the first.
///
/// ```
/// # use wa_binary::{Node, Jid};
/// let n = Node::builder("receipt").attr("id", "ABC").attr("t", "x").build();
/// let mut p = n.attr_parser();
/// let id: Option<&str> = p.req("id");
/// let t: Option<u64> = p.req("t");
/// let from: Option<Jid> = p.opt("from");
/// assert_eq!((id, t, from), (Some("ABC"), None, None));
/// assert!(p.finish().is_err()); // "t" is not a number
/// ```
#[derive(Debug)]
pub struct AttrParser<'a> {
    node: &'a Node,
    errors: Vec<Error>,
}

impl<'a> AttrParser<'a> {
    /// A required attribute; records an error and returns `None` if it is
    /// missing or invalid.
    pub fn req<T: FromAttr<'a>>(&mut self, key: &str) -> Option<T> {
        match self.node.attr(key) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    /// An optional attribute; records an error only if it is present and invalid.
    pub fn opt<T: FromAttr<'a>>(&mut self, key: &str) -> Option<T> {
        match self.node.attr_opt(key) {
            Ok(v) => v,
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    /// The errors so far.
    pub fn errors(&self) -> &[Error] {
        &self.errors
    }

    /// `Ok` if every read succeeded; otherwise the one error, or
    /// [`Error::Attrs`] with all of them.
    pub fn finish(mut self) -> Result<(), Error> {
        match self.errors.len() {
            0 => Ok(()),
            1 => Err(self.errors.remove(0)),
            _ => Err(Error::Attrs(self.errors)),
        }
    }
}
