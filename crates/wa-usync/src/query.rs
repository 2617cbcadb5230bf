//! The usync stanza: building the query and parsing the reply (sans-IO).

use wa_binary::{Jid, Node, Server};

use crate::Error;
use crate::vname::VerifiedName;

/// Most users one query may name and one reply may hold.
pub const MAX_USERS: usize = 10_000;
/// Most devices accepted in one user's device list (device ids are below 100 on the wire).
pub const MAX_DEVICES_PER_USER: usize = 128;
/// Longest accepted contact query text (a phone number with `+` and some slack).
const MAX_CONTACT_LEN: usize = 64;
/// Longest status text ("about") taken from a reply, in bytes; a longer one is dropped.
pub const MAX_STATUS_LEN: usize = 4096;
/// Longest profile-picture id taken from a reply, in bytes; a longer one is dropped.
pub const MAX_PICTURE_ID_LEN: usize = 128;

/// A usync protocol (one child of `<query>`), selecting what the server reports per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// `<devices version="2"/>`: the user's device list and key indexes.
    Devices,
    /// `<contact/>`: whether the user (usually a phone number) is on WhatsApp.
    Contact,
    /// `<lid/>`: the user's LID.
    Lid,
    /// `<username/>`: the username the user chose, if any.
    Username,
    /// `<business><verified_name/></business>`: the verified name of a business account.
    BusinessVerifiedName,
    /// `<status/>`: the user's status text ("about") and when it was set.
    Status,
    /// `<picture/>`: the id of the user's current profile picture.
    Picture,
    /// `<disappearing_mode/>`: the user's default disappearing-messages timer.
    Disappearing,
}

impl Protocol {
    /// The element name in `<query>` and in each reply `<user>`.
    pub fn tag(self) -> &'static str {
        match self {
            Protocol::Devices => "devices",
            Protocol::Contact => "contact",
            Protocol::Lid => "lid",
            Protocol::Username => "username",
            Protocol::BusinessVerifiedName => "business",
            Protocol::Status => "status",
            Protocol::Picture => "picture",
            Protocol::Disappearing => "disappearing_mode",
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        [
            Protocol::Devices,
            Protocol::Contact,
            Protocol::Lid,
            Protocol::Username,
            Protocol::BusinessVerifiedName,
            Protocol::Status,
            Protocol::Picture,
            Protocol::Disappearing,
        ]
        .into_iter()
        .find(|p| p.tag() == tag)
    }

    fn query_node(self, lid_addressing: bool) -> Node {
        match self {
            Protocol::Devices => Node::builder("devices").attr("version", "2").build(),
            Protocol::Contact if lid_addressing => Node::builder("contact")
                .attr("addressing_mode", "lid")
                .build(),
            Protocol::Contact => Node::builder("contact").build(),
            Protocol::Lid => Node::builder("lid").build(),
            Protocol::BusinessVerifiedName => Node::builder("business")
                .children([Node::builder("verified_name").build()])
                .build(),
            Protocol::Username | Protocol::Status | Protocol::Picture | Protocol::Disappearing => {
                Node::builder(self.tag()).build()
            }
        }
    }
}

/// One entry of the query's `<list>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserQuery {
    /// `<user jid="user@server"/>` (the device part is dropped).
    Jid(Jid),
    /// `<user><contact>+phone</contact></user>`: a phone number, with or without `+`.
    Phone(String),
}

/// A usync query: protocols, users, context and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsyncQuery {
    protocols: Vec<Protocol>,
    users: Vec<UserQuery>,
    /// The privacy token sent with each entry of `users` (same index), if any.
    tokens: Vec<Option<Vec<u8>>>,
    context: String,
    mode: String,
    lid_addressing: bool,
}

impl UsyncQuery {
    /// An empty query with `context` (`message` for sending, `interactive` for lookups,
    /// `background` for profile refreshes) and mode `query`.
    pub fn new(context: impl Into<String>) -> Self {
        Self {
            protocols: Vec::new(),
            users: Vec::new(),
            tokens: Vec::new(),
            context: context.into(),
            mode: "query".to_owned(),
            lid_addressing: false,
        }
    }

    /// Asks the server to name each user by its LID when it has one: the query's
    /// `<contact>` protocol carries `addressing_mode="lid"`, and each reply `<user>` then
    /// has `jid` = the LID and `pn_jid` = the phone number (see [`UsyncUser::pn`]).
    /// Without the [`Protocol::Contact`] protocol this changes nothing.
    #[must_use]
    pub fn lid_addressing(mut self) -> Self {
        self.lid_addressing = true;
        self
    }

    /// Sets the mode (`query`, the default, or `full`, which profile lookups use).
    #[must_use]
    pub fn mode(mut self, mode: impl Into<String>) -> Self {
        self.mode = mode.into();
        self
    }

    /// Adds a protocol (once; repeats are ignored).
    #[must_use]
    pub fn protocol(mut self, p: Protocol) -> Self {
        if !self.protocols.contains(&p) {
            self.protocols.push(p);
        }
        self
    }

    /// Adds a user by JID.
    #[must_use]
    pub fn user(mut self, jid: &Jid) -> Self {
        self.users.push(UserQuery::Jid(jid.to_non_ad()));
        self.tokens.push(None);
        self
    }

    /// Adds a user by JID with the privacy token (tctoken) that user issued to us, sent
    /// as the user's `<tctoken>` child so the server lets us see what the user's privacy
    /// settings reserve for trusted contacts (as whatsmeow's `GetUserInfo` does). `None`
    /// is [`UsyncQuery::user`].
    #[must_use]
    pub fn user_with_token(mut self, jid: &Jid, token: Option<Vec<u8>>) -> Self {
        self.users.push(UserQuery::Jid(jid.to_non_ad()));
        self.tokens.push(token.filter(|t| !t.is_empty()));
        self
    }

    /// Adds a user by phone number.
    #[must_use]
    pub fn phone(mut self, phone: impl Into<String>) -> Self {
        self.users.push(UserQuery::Phone(phone.into()));
        self.tokens.push(None);
        self
    }

    /// The users named so far.
    pub fn users(&self) -> &[UserQuery] {
        &self.users
    }

    /// The `<iq xmlns="usync" type="get">` stanza (no `id`; the socket adds one) with
    /// session id `sid`.
    ///
    /// # Errors
    /// [`Error::InvalidQuery`] without protocols or users, or with more than
    /// [`MAX_USERS`] users.
    pub fn build(&self, sid: &str) -> Result<Node, Error> {
        if self.protocols.is_empty() {
            return Err(Error::InvalidQuery("no protocol"));
        }
        if self.users.is_empty() {
            return Err(Error::InvalidQuery("no user"));
        }
        if self.users.len() > MAX_USERS {
            return Err(Error::InvalidQuery("too many users"));
        }
        let query = Node::builder("query")
            .children(
                self.protocols
                    .iter()
                    .map(|p| p.query_node(self.lid_addressing)),
            )
            .build();
        let list = Node::builder("list")
            .children(self.users.iter().zip(&self.tokens).map(|(u, token)| {
                match (u, token) {
                    (UserQuery::Jid(j), None) => {
                        Node::builder("user").attr("jid", j.clone()).build()
                    }
                    (UserQuery::Jid(j), Some(t)) => Node::builder("user")
                        .attr("jid", j.clone())
                        .children([Node::builder("tctoken").bytes(t.clone()).build()])
                        .build(),
                    (UserQuery::Phone(p), _) => Node::builder("user")
                        .children([Node::builder("contact").text(plus_phone(p)).build()])
                        .build(),
                }
            }))
            .build();
        let usync = Node::builder("usync")
            .attr("sid", sid.to_owned())
            .attr("mode", self.mode.clone())
            .attr("last", "true")
            .attr("index", "0")
            .attr("context", self.context.clone())
            .children([query, list])
            .build();
        Ok(Node::builder("iq")
            .attr("to", Jid::server_jid())
            .attr("type", "get")
            .attr("xmlns", "usync")
            .children([usync])
            .build())
    }
}

/// `+digits` for a phone number given with or without the `+`.
fn plus_phone(p: &str) -> String {
    let digits = p.trim().trim_start_matches('+');
    format!("+{digits}")
}

/// One device in a user's device list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device id (0 = the phone); at most 255, the most a device JID carries on
    /// the wire.
    pub id: u16,
    /// The key index the account signed for this device (absent for the phone).
    pub key_index: Option<u32>,
    /// A hosted (business platform) device.
    pub is_hosted: bool,
}

/// A user's `<devices>` answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceList {
    /// The devices, in reply order.
    pub devices: Vec<DeviceInfo>,
    /// `<key-index-list ts>`: when the signed key-index list was issued.
    pub key_index_ts: Option<u64>,
}

/// A user's `<contact>` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// `type="in"`: the number is on WhatsApp.
    pub exists: bool,
    /// The query text echoed by the server (e.g. `+15550001`), when present.
    pub query: Option<String>,
}

/// A per-user, per-protocol `<error code text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError {
    /// The protocol the error is about (`None`: the user as a whole).
    pub protocol: Option<Protocol>,
    /// The error code (0 when missing).
    pub code: u16,
    /// The error text.
    pub text: String,
}

/// A user's `<status>` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserStatus {
    /// The status text; empty when the user has none or hides it from us.
    pub text: String,
    /// When it was set (unix seconds), when the server said.
    pub set_at: Option<u64>,
    /// The server withheld the status (`code="401"`: privacy settings or a block).
    pub hidden: bool,
}

/// A user's `<disappearing_mode>` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DisappearingMode {
    /// The default disappearing-messages timer of new chats, seconds (0 = off).
    pub duration: u32,
    /// When it was set (unix seconds), when the server said.
    pub set_at: Option<u64>,
}

/// One `<user>` of a usync reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsyncUser {
    /// The user's JID as the server names it (`jid` attribute; the LID when the query
    /// asked for [LID addressing](UsyncQuery::lid_addressing) and the user has one). A
    /// user named only by `pn_jid` has that here.
    pub jid: Jid,
    /// The user's phone-number JID when the server names it beside `jid` (`pn_jid`, sent
    /// with [LID addressing](UsyncQuery::lid_addressing)).
    pub pn: Option<Jid>,
    /// The device list, when asked for and answered.
    pub devices: Option<DeviceList>,
    /// The contact status, when asked for and answered.
    pub contact: Option<Contact>,
    /// The LID, when asked for and the server knows one.
    pub lid: Option<Jid>,
    /// The username, when asked for and the user has one.
    pub username: Option<String>,
    /// The verified business name, when asked for and the user is a business with a
    /// well-formed certificate (a malformed one is left out, not an error).
    pub verified_name: Option<VerifiedName>,
    /// The status, when asked for and answered (an over-long or non-UTF-8 text is left
    /// out, not an error).
    pub status: Option<UserStatus>,
    /// The current profile picture's id, when asked for and the user has one we may see
    /// (an over-long id is left out, not an error).
    pub picture_id: Option<String>,
    /// The default disappearing-messages timer, when asked for and answered.
    pub disappearing: Option<DisappearingMode>,
    /// Errors the server reported for this user.
    pub errors: Vec<UserError>,
}

impl UsyncUser {
    /// The user's phone-number JID: `pn_jid`, else `jid` when that is a phone number.
    pub fn phone_number(&self) -> Option<&Jid> {
        self.pn.as_ref().or_else(|| {
            (self.jid.server == Server::Pn && self.jid.is_pn_user()).then_some(&self.jid)
        })
    }

    /// The user's LID: `jid` when that is a LID, else the `<lid val>` answer.
    pub fn lid_jid(&self) -> Option<&Jid> {
        if self.jid.is_lid() {
            Some(&self.jid)
        } else {
            self.lid.as_ref()
        }
    }

    /// The LID/phone-number pair the answer names, as `(pn, lid)`, when it names both.
    pub fn lid_mapping(&self) -> Option<(&Jid, &Jid)> {
        Some((self.phone_number()?, self.lid_jid()?))
    }
}

fn bad<T>(what: &'static str) -> Result<T, Error> {
    Err(Error::Malformed(what))
}

/// Parses a usync reply (`<iq type=result><usync><list><user>..`) into its users.
///
/// # Errors
/// [`Error::Malformed`] when the stanza is not a result, lacks `<usync>`/`<list>`, or a
/// user or device has missing or invalid attributes (a JID whose user part is longer
/// than [`wa_binary::MAX_JID_USER_LEN`] included); [`Error::TooLarge`] beyond
/// [`MAX_USERS`] users or [`MAX_DEVICES_PER_USER`] devices.
pub fn parse_reply(reply: &Node) -> Result<Vec<UsyncUser>, Error> {
    if reply.tag() != "iq" {
        return bad("not an iq");
    }
    if reply.attr_opt::<&str>("type").ok().flatten() != Some("result") {
        return bad("iq type is not result");
    }
    let Some(list) = reply.child_by_path(&["usync", "list"]) else {
        return bad("no usync/list");
    };
    let users = list.children_by_tag("user");
    let mut out = Vec::new();
    for (n, user) in users.enumerate() {
        if n >= MAX_USERS {
            return Err(Error::TooLarge("users"));
        }
        out.push(parse_user(user)?);
    }
    Ok(out)
}

fn node_error(node: &Node, protocol: Option<Protocol>) -> UserError {
    UserError {
        protocol,
        code: node.attr_opt::<u16>("code").ok().flatten().unwrap_or(0),
        text: node
            .attr_opt::<&str>("text")
            .ok()
            .flatten()
            .unwrap_or("")
            .to_owned(),
    }
}

fn parse_user(user: &Node) -> Result<UsyncUser, Error> {
    let pn = match user.attr_opt::<Jid>("pn_jid") {
        Ok(None) => None,
        Ok(Some(j)) if j.is_pn_user() => Some(Jid::pn(j.user)),
        _ => return bad("user pn_jid is not a phone-number JID"),
    };
    let jid = match (user.attr_opt::<Jid>("jid"), &pn) {
        (Ok(Some(j)), _) if is_user_server(&j.server) => j,
        (Ok(Some(_)), _) => return bad("user jid is not a user address"),
        (Ok(None), Some(pn)) => pn.clone(),
        (Ok(None), None) => return bad("user without jid"),
        (Err(_), _) => return bad("user jid is not a JID"),
    };
    // Sessions and device records are stored under keys made of the user part: a JID
    // attribute over `MAX_JID_USER_LEN` was refused above as no JID.
    let mut out = UsyncUser {
        jid,
        pn,
        devices: None,
        contact: None,
        lid: None,
        username: None,
        verified_name: None,
        status: None,
        picture_id: None,
        disappearing: None,
        errors: Vec::new(),
    };
    for child in user.children() {
        if child.tag() == "error" {
            out.errors.push(node_error(child, None));
            continue;
        }
        // Protocols this crate does not know (bot, text_status, ...) are skipped.
        let Some(protocol) = Protocol::from_tag(child.tag()) else {
            continue;
        };
        if let Some(e) = child.child("error") {
            out.errors.push(node_error(e, Some(protocol)));
            continue;
        }
        match protocol {
            Protocol::Devices => out.devices = Some(parse_devices(child)?),
            Protocol::Contact => out.contact = Some(parse_contact(child)?),
            Protocol::Lid => out.lid = parse_lid(child)?,
            Protocol::Username => out.username = parse_username(child, &out.jid),
            Protocol::BusinessVerifiedName => {
                out.verified_name = parse_business(child, &out.jid);
            }
            Protocol::Status => out.status = parse_status(child, &out.jid),
            Protocol::Picture => out.picture_id = parse_picture(child, &out.jid),
            Protocol::Disappearing => out.disappearing = parse_disappearing(child),
        }
    }
    Ok(out)
}

/// The longest username accepted, in bytes; a longer one is dropped.
pub const MAX_USERNAME_LEN: usize = 128;

/// `<username>name</username>`; `None` when empty, over-long or not UTF-8 (logged): one
/// user's bad username must not fail a lookup of many numbers.
fn parse_username(node: &Node, jid: &Jid) -> Option<String> {
    let bytes = node.content_bytes()?;
    if bytes.len() > MAX_USERNAME_LEN {
        tracing::debug!(%jid, len = bytes.len(), "username too long; dropped");
        return None;
    }
    let Ok(name) = std::str::from_utf8(bytes) else {
        tracing::debug!(%jid, "username is not UTF-8; dropped");
        return None;
    };
    (!name.is_empty()).then(|| name.to_owned())
}

/// `<business>`: its `<verified_name>`, if any; a malformed certificate is logged and
/// dropped (one business's bad certificate must not fail a query about many users).
fn parse_business(node: &Node, jid: &Jid) -> Option<VerifiedName> {
    let vn = node.child("verified_name")?;
    match VerifiedName::from_node(vn) {
        Ok(v) => Some(v),
        Err(why) => {
            tracing::debug!(%jid, ?why, "verified name certificate not taken");
            None
        }
    }
}

/// `<status t>text</status>`, or `<status code="401"/>` when hidden; `None` when the
/// user has no status, or the text is over-long or not UTF-8 (logged).
fn parse_status(node: &Node, jid: &Jid) -> Option<UserStatus> {
    let set_at = node.attr_opt::<u64>("t").ok().flatten().filter(|t| *t > 0);
    let hidden = node.attr_opt::<u16>("code").ok().flatten() == Some(401);
    let raw = node.content_bytes().unwrap_or_default();
    if raw.len() > MAX_STATUS_LEN {
        tracing::debug!(%jid, len = raw.len(), "status text too long; dropped");
        return None;
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        tracing::debug!(%jid, "status text is not UTF-8; dropped");
        return None;
    };
    if text.is_empty() && !hidden {
        return None;
    }
    Some(UserStatus {
        text: text.to_owned(),
        set_at,
        hidden,
    })
}

/// `<picture id/>`: the id, when present and not over-long (logged).
fn parse_picture(node: &Node, jid: &Jid) -> Option<String> {
    let id = node.attr_opt::<&str>("id").ok().flatten()?;
    if id.is_empty() || id.len() > MAX_PICTURE_ID_LEN {
        tracing::debug!(%jid, len = id.len(), "picture id empty or too long; dropped");
        return None;
    }
    Some(id.to_owned())
}

/// `<disappearing_mode duration t/>`; `None` for a non-numeric duration.
fn parse_disappearing(node: &Node) -> Option<DisappearingMode> {
    let duration = match node.attr_opt::<u32>("duration") {
        Ok(d) => d.unwrap_or(0),
        Err(_) => return None,
    };
    let set_at = node.attr_opt::<u64>("t").ok().flatten().filter(|t| *t > 0);
    Some(DisappearingMode { duration, set_at })
}

fn is_user_server(s: &Server) -> bool {
    matches!(
        s,
        Server::Pn
            | Server::LegacyUser
            | Server::Lid
            | Server::Hosted
            | Server::HostedLid
            | Server::Bot
    )
}

fn parse_devices(node: &Node) -> Result<DeviceList, Error> {
    let Some(list) = node.child("device-list") else {
        return bad("devices without device-list");
    };
    let mut devices = Vec::new();
    for (n, d) in list.children_by_tag("device").enumerate() {
        if n >= MAX_DEVICES_PER_USER {
            return Err(Error::TooLarge("devices"));
        }
        let id = match d.attr_opt::<u16>("id") {
            Ok(Some(id)) => id,
            Ok(None) => return bad("device without id"),
            Err(_) => return bad("device id is not a number"),
        };
        // Device JIDs carry the device in one byte (AD JID): a larger id could not be
        // addressed, and would be truncated to another device's.
        if id > u16::from(u8::MAX) {
            return bad("device id above 255");
        }
        let key_index = d
            .attr_opt::<u32>("key-index")
            .map_err(|_| Error::Malformed("device key-index is not a number"))?;
        let is_hosted = match d.attr_opt::<&str>("is_hosted") {
            Ok(None) => false,
            Ok(Some("true" | "1")) => true,
            Ok(Some("false" | "0")) => false,
            _ => return bad("device is_hosted is not a boolean"),
        };
        if devices.iter().any(|x: &DeviceInfo| x.id == id) {
            return bad("duplicate device id");
        }
        devices.push(DeviceInfo {
            id,
            key_index,
            is_hosted,
        });
    }
    let key_index_ts = match node.child("key-index-list") {
        Some(k) => k
            .attr_opt::<u64>("ts")
            .map_err(|_| Error::Malformed("key-index-list ts is not a number"))?,
        None => None,
    };
    Ok(DeviceList {
        devices,
        key_index_ts,
    })
}

fn parse_contact(node: &Node) -> Result<Contact, Error> {
    let exists = match node.attr_opt::<&str>("type") {
        Ok(Some("in")) => true,
        Ok(Some("out")) => false,
        _ => return bad("contact type is neither in nor out"),
    };
    let query = match node.content_bytes() {
        None => None,
        Some(b) if b.len() > MAX_CONTACT_LEN => return Err(Error::TooLarge("contact text")),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => Some(s.to_owned()),
            Err(_) => return bad("contact text is not UTF-8"),
        },
    };
    Ok(Contact { exists, query })
}

fn parse_lid(node: &Node) -> Result<Option<Jid>, Error> {
    match node.attr_opt::<Jid>("val") {
        Ok(None) => Ok(None),
        Ok(Some(j)) if j.server == Server::Lid => Ok(Some(j.to_non_ad())),
        _ => bad("lid val is not a LID JID of at most 128 bytes"),
    }
}

/// The device JIDs of a user's device list: `user:id@server`, hosted devices on the
/// hosted server (`hosted` for phone-number users, `hosted.lid` for LIDs).
pub fn device_jids(user: &Jid, list: &DeviceList) -> Vec<Jid> {
    list.devices
        .iter()
        .map(|d| {
            let server = match (d.is_hosted, &user.server) {
                (true, Server::Lid) => Server::HostedLid,
                (true, _) => Server::Hosted,
                (false, s) => s.clone(),
            };
            Jid::with_device(user.user.clone(), server, d.id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(users: Vec<Node>) -> Node {
        Node::builder("iq")
            .attr("type", "result")
            .attr("id", "1")
            .children([Node::builder("usync")
                .children([Node::builder("list").children(users).build()])
                .build()])
            .build()
    }

    fn user(jid: &str, children: Vec<Node>) -> Node {
        Node::builder("user")
            .attr("jid", jid.to_owned())
            .children(children)
            .build()
    }

    fn device(id: &str, key_index: Option<&str>) -> Node {
        Node::builder("device")
            .attr("id", id.to_owned())
            .attr_opt("key-index", key_index.map(str::to_owned))
            .build()
    }

    fn devices(list: Vec<Node>) -> Node {
        Node::builder("devices")
            .children([
                Node::builder("device-list").children(list).build(),
                Node::builder("key-index-list").attr("ts", "1700").build(),
            ])
            .build()
    }

    #[test]
    fn builds_devices_and_contact_query() {
        let a: Jid = "111:3@s.whatsapp.net".parse().unwrap();
        let node = UsyncQuery::new("message")
            .protocol(Protocol::Devices)
            .protocol(Protocol::Lid)
            .protocol(Protocol::Devices)
            .user(&a)
            .phone("222")
            .build("sid1")
            .unwrap();
        assert_eq!(node.attr::<&str>("xmlns").unwrap(), "usync");
        assert_eq!(node.attr::<&str>("type").unwrap(), "get");
        assert_eq!(node.attr::<Jid>("to").unwrap(), Jid::server_jid());
        let usync = node.child("usync").unwrap();
        assert_eq!(usync.attr::<&str>("sid").unwrap(), "sid1");
        assert_eq!(usync.attr::<&str>("context").unwrap(), "message");
        assert_eq!(usync.attr::<&str>("mode").unwrap(), "query");
        assert_eq!(usync.attr::<&str>("last").unwrap(), "true");
        assert_eq!(usync.attr::<&str>("index").unwrap(), "0");
        let q: Vec<&str> = usync
            .child("query")
            .unwrap()
            .children()
            .iter()
            .map(Node::tag)
            .collect();
        assert_eq!(q, ["devices", "lid"]);
        let dev = usync.child_by_path(&["query", "devices"]).unwrap();
        assert_eq!(dev.attr::<&str>("version").unwrap(), "2");
        let list = usync.child("list").unwrap().children();
        assert_eq!(list.len(), 2);
        // The device part is dropped.
        assert_eq!(list[0].attr::<Jid>("jid").unwrap(), Jid::pn("111"));
        assert_eq!(
            list[1].child("contact").unwrap().content_bytes().unwrap(),
            b"+222"
        );
    }

    #[test]
    fn parses_usernames() {
        let named = |v: &[u8]| Node::builder("username").bytes(v.to_vec()).build();
        let users = parse_reply(&reply(vec![
            user("1@s.whatsapp.net", vec![named(b"ada.l")]),
            user("2@s.whatsapp.net", vec![Node::builder("username").build()]),
            user("3@s.whatsapp.net", vec![named(b"")]),
        ]))
        .unwrap();
        let names: Vec<Option<&str>> = users.iter().map(|u| u.username.as_deref()).collect();
        assert_eq!(names, [Some("ada.l"), None, None]);
        // An over-long or non-UTF-8 username is dropped; the other users still parse.
        let users = parse_reply(&reply(vec![
            user(
                "1@s.whatsapp.net",
                vec![named(&[b'x'; MAX_USERNAME_LEN + 1])],
            ),
            user("2@s.whatsapp.net", vec![named(&[0xFF, 0xFE])]),
            user("3@s.whatsapp.net", vec![named(&[b'y'; MAX_USERNAME_LEN])]),
        ]))
        .unwrap();
        let lens: Vec<Option<usize>> = users
            .iter()
            .map(|u| u.username.as_ref().map(String::len))
            .collect();
        assert_eq!(lens, [None, None, Some(MAX_USERNAME_LEN)]);
        let q = UsyncQuery::new("interactive")
            .protocol(Protocol::Username)
            .user(&Jid::pn("1"))
            .build("s")
            .unwrap();
        assert!(q.child_by_path(&["usync", "query", "username"]).is_some());
    }

    #[test]
    fn lid_addressing_marks_the_contact_protocol() {
        let plain = UsyncQuery::new("interactive")
            .protocol(Protocol::Contact)
            .phone("1")
            .build("s")
            .unwrap();
        let contact = plain.child_by_path(&["usync", "query", "contact"]).unwrap();
        assert!(contact.get_attr("addressing_mode").is_none());

        let q = UsyncQuery::new("interactive")
            .lid_addressing()
            .protocol(Protocol::Contact)
            .protocol(Protocol::BusinessVerifiedName)
            .protocol(Protocol::Disappearing)
            .protocol(Protocol::Username)
            .phone("1")
            .build("s")
            .unwrap();
        let query = q.child_by_path(&["usync", "query"]).unwrap();
        let tags: Vec<&str> = query.children().iter().map(Node::tag).collect();
        assert_eq!(
            tags,
            ["contact", "business", "disappearing_mode", "username"]
        );
        let contact = query.child("contact").unwrap();
        assert_eq!(contact.attr::<&str>("addressing_mode").unwrap(), "lid");
        // Only <contact> carries the mode.
        assert!(
            query.children()[1..]
                .iter()
                .all(|n| n.get_attr("addressing_mode").is_none())
        );
    }

    #[test]
    fn users_carry_their_privacy_tokens() {
        let q = UsyncQuery::new("background")
            .mode("full")
            .protocol(Protocol::Status)
            .user_with_token(&Jid::with_device("1", Server::Pn, 2), Some(vec![7, 8, 9]))
            .user_with_token(&Jid::pn("2"), None)
            .user_with_token(&Jid::pn("3"), Some(Vec::new()))
            .user(&Jid::lid("4"))
            .build("s")
            .unwrap();
        let list = q.child_by_path(&["usync", "list"]).unwrap().children();
        assert_eq!(list.len(), 4);
        assert_eq!(list[0].attr::<Jid>("jid").unwrap(), Jid::pn("1"));
        let t = list[0].child("tctoken").unwrap();
        assert_eq!(t.content_bytes(), Some(&[7u8, 8, 9][..]));
        assert_eq!(list[0].children().len(), 1);
        // No token, or an empty one: a bare <user jid/>.
        for u in &list[1..] {
            assert!(u.children().is_empty(), "{u:?}");
        }
    }

    #[test]
    fn parses_lid_addressed_users() {
        let users = parse_reply(&reply(vec![
            Node::builder("user")
                .attr("jid", "900@lid")
                .attr("pn_jid", "111@s.whatsapp.net")
                .children([Node::builder("contact")
                    .attr("type", "in")
                    .text("+111")
                    .build()])
                .build(),
            // Named only by pn_jid (no LID), and by a legacy c.us pn_jid.
            Node::builder("user")
                .attr("pn_jid", "222@s.whatsapp.net")
                .children([Node::builder("contact").attr("type", "out").build()])
                .build(),
            Node::builder("user")
                .attr("jid", "901@lid")
                .attr("pn_jid", "333@c.us")
                .build(),
            // A phone-number user with a <lid> answer, and a user with neither pair half.
            user(
                "444@s.whatsapp.net",
                vec![Node::builder("lid").attr("val", "902@lid").build()],
            ),
            user("903@lid", vec![]),
        ]))
        .unwrap();
        let a = &users[0];
        assert_eq!(a.jid, Jid::lid("900"));
        assert_eq!(a.pn, Some(Jid::pn("111")));
        assert_eq!(a.lid_mapping(), Some((&Jid::pn("111"), &Jid::lid("900"))));
        let b = &users[1];
        assert_eq!(
            (&b.jid, b.pn.as_ref()),
            (&Jid::pn("222"), Some(&Jid::pn("222")))
        );
        assert_eq!(b.lid_jid(), None);
        assert_eq!(b.lid_mapping(), None);
        assert_eq!(users[2].phone_number(), Some(&Jid::pn("333")));
        assert_eq!(
            users[3].lid_mapping(),
            Some((&Jid::pn("444"), &Jid::lid("902")))
        );
        assert_eq!(users[4].lid_jid(), Some(&Jid::lid("903")));
        assert_eq!(users[4].phone_number(), None);
        assert_eq!(users[4].lid_mapping(), None);
    }

    #[test]
    fn bad_pn_jids_are_malformed() {
        for pn in [
            "5@lid",
            "1-2@g.us",
            "a@b@c@",
            "s.whatsapp.net",
            "@s.whatsapp.net",
        ] {
            let r = parse_reply(&reply(vec![
                Node::builder("user")
                    .attr("jid", "900@lid")
                    .attr("pn_jid", pn)
                    .build(),
            ]));
            assert!(matches!(r, Err(Error::Malformed(_))), "{pn}: {r:?}");
        }
    }

    #[test]
    fn rejects_empty_queries() {
        assert!(matches!(
            UsyncQuery::new("message").user(&Jid::pn("1")).build("s"),
            Err(Error::InvalidQuery(_))
        ));
        assert!(matches!(
            UsyncQuery::new("message")
                .protocol(Protocol::Devices)
                .build("s"),
            Err(Error::InvalidQuery(_))
        ));
    }

    #[test]
    fn parses_devices_contact_lid_and_errors() {
        let hosted = Node::builder("device")
            .attr("id", "99")
            .attr("key-index", "4")
            .attr("is_hosted", "true")
            .build();
        let r = reply(vec![
            user(
                "111@s.whatsapp.net",
                vec![
                    devices(vec![device("0", None), device("2", Some("3")), hosted]),
                    Node::builder("contact")
                        .attr("type", "in")
                        .text("+111")
                        .build(),
                    Node::builder("lid").attr("val", "900@lid").build(),
                    Node::builder("status").build(),
                ],
            ),
            user(
                "222@s.whatsapp.net",
                vec![
                    Node::builder("devices")
                        .children([Node::builder("error")
                            .attr("code", "404")
                            .attr("text", "not-found")
                            .build()])
                        .build(),
                    Node::builder("contact").attr("type", "out").build(),
                ],
            ),
        ]);
        let users = parse_reply(&r).unwrap();
        assert_eq!(users.len(), 2);
        let a = &users[0];
        assert_eq!(a.jid, Jid::pn("111"));
        let list = a.devices.as_ref().unwrap();
        assert_eq!(list.key_index_ts, Some(1700));
        assert_eq!(
            list.devices[1],
            DeviceInfo {
                id: 2,
                key_index: Some(3),
                is_hosted: false
            }
        );
        assert!(list.devices[2].is_hosted);
        let jids = device_jids(&a.jid, list);
        assert_eq!(
            jids,
            [
                Jid::with_device("111", Server::Pn, 0),
                Jid::with_device("111", Server::Pn, 2),
                Jid::with_device("111", Server::Hosted, 99),
            ]
        );
        assert_eq!(
            a.contact,
            Some(Contact {
                exists: true,
                query: Some("+111".into())
            })
        );
        assert_eq!(a.lid, Some(Jid::lid("900")));
        assert!(a.errors.is_empty());
        let b = &users[1];
        assert_eq!(b.devices, None);
        assert_eq!(b.contact.as_ref().map(|c| c.exists), Some(false));
        assert_eq!(
            b.errors,
            [UserError {
                protocol: Some(Protocol::Devices),
                code: 404,
                text: "not-found".into()
            }]
        );
    }

    #[test]
    fn device_ids_up_to_255_are_taken() {
        let r = reply(vec![user(
            "1@s.whatsapp.net",
            vec![devices(vec![device("0", None), device("255", Some("3"))])],
        )]);
        let users = parse_reply(&r).unwrap();
        let ids: Vec<u16> = users[0]
            .devices
            .as_ref()
            .unwrap()
            .devices
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, [0, 255]);
    }

    #[test]
    fn malformed_replies_are_errors() {
        let cases: Vec<(&str, Node)> = vec![
            ("not iq", Node::builder("message").build()),
            (
                "iq error",
                Node::builder("iq").attr("type", "error").build(),
            ),
            (
                "no list",
                Node::builder("iq")
                    .attr("type", "result")
                    .children([Node::builder("usync").build()])
                    .build(),
            ),
            (
                "user without jid",
                reply(vec![Node::builder("user").build()]),
            ),
            ("bad jid", reply(vec![user("a@b@c@", vec![])])),
            ("group jid", reply(vec![user("1-2@g.us", vec![])])),
            (
                "jid too long to key a session",
                reply(vec![user(
                    &format!("{}@s.whatsapp.net", "1".repeat(129)),
                    vec![],
                )]),
            ),
            (
                "pn_jid too long",
                reply(vec![
                    Node::builder("user")
                        .attr("jid", "900@lid")
                        .attr("pn_jid", format!("{}@s.whatsapp.net", "1".repeat(129)))
                        .build(),
                ]),
            ),
            (
                "lid too long",
                reply(vec![user(
                    "1@s.whatsapp.net",
                    vec![
                        Node::builder("lid")
                            .attr("val", format!("{}@lid", "9".repeat(129)))
                            .build(),
                    ],
                )]),
            ),
            (
                "no device-list",
                reply(vec![user(
                    "1@s.whatsapp.net",
                    vec![Node::builder("devices").build()],
                )]),
            ),
            (
                "device id missing",
                reply(vec![user(
                    "1@s.whatsapp.net",
                    vec![devices(vec![Node::builder("device").build()])],
                )]),
            ),
            (
                "device id not a number",
                reply(vec![user(
                    "1@s.whatsapp.net",
                    vec![devices(vec![device("x", None)])],
                )]),
            ),
            (
                "device id overflow",
                reply(vec![user(
                    "1@s.whatsapp.net",
                    vec![devices(vec![device("70000", None)])],
                )]),
            ),
            (
                "device id above 255",
                reply(vec![user(
                    "1@s.whatsapp.net",
                    vec![devices(vec![device("0", None), device("256", Some("1"))])],
                )]),
            ),
            (
                "bad key-index",
                reply(vec![user(
                    "1@s.whatsapp.net",
                    vec![devices(vec![device("1", Some("-1"))])],
                )]),
            ),
            (
                "duplicate device",
                reply(vec![user(
                    "1@s.whatsapp.net",
                    vec![devices(vec![device("1", None), device("1", None)])],
                )]),
            ),
            (
                "bad contact type",
                reply(vec![user(
                    "1@s.whatsapp.net",
                    vec![Node::builder("contact").attr("type", "maybe").build()],
                )]),
            ),
            (
                "lid not a lid",
                reply(vec![user(
                    "1@s.whatsapp.net",
                    vec![Node::builder("lid").attr("val", "5@s.whatsapp.net").build()],
                )]),
            ),
        ];
        for (name, node) in cases {
            let r = parse_reply(&node);
            assert!(matches!(r, Err(Error::Malformed(_))), "{name}: {r:?}");
        }
    }

    #[test]
    fn bounds_are_enforced() {
        let many: Vec<Node> = (0..=MAX_DEVICES_PER_USER)
            .map(|i| device(&i.to_string(), None))
            .collect();
        let r = parse_reply(&reply(vec![user("1@s.whatsapp.net", vec![devices(many)])]));
        assert!(matches!(r, Err(Error::TooLarge("devices"))), "{r:?}");
        let long = "9".repeat(MAX_CONTACT_LEN + 1);
        let r = parse_reply(&reply(vec![user(
            "1@s.whatsapp.net",
            vec![
                Node::builder("contact")
                    .attr("type", "in")
                    .text(long)
                    .build(),
            ],
        )]));
        assert!(matches!(r, Err(Error::TooLarge(_))), "{r:?}");
        let users: Vec<Node> = (0..=MAX_USERS)
            .map(|i| user(&format!("{i}@s.whatsapp.net"), vec![]))
            .collect();
        assert!(matches!(
            parse_reply(&reply(users)),
            Err(Error::TooLarge("users"))
        ));
    }

    fn certificate(name: &str) -> Vec<u8> {
        use prost::Message;
        use wa_proto::vname_cert::{VerifiedNameCertificate, verified_name_certificate::Details};
        VerifiedNameCertificate {
            details: Some(
                Details {
                    serial: Some(7),
                    issuer: Some("smb:wa".into()),
                    verified_name: Some(name.into()),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            signature: Some(vec![1; 64]),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn business(cert: Vec<u8>) -> Node {
        Node::builder("business")
            .children([Node::builder("verified_name")
                .attr("verified_level", "unknown")
                .bytes(cert)
                .build()])
            .build()
    }

    #[test]
    fn builds_profile_protocols_and_mode() {
        let q = UsyncQuery::new("background")
            .mode("full")
            .protocol(Protocol::BusinessVerifiedName)
            .protocol(Protocol::Status)
            .protocol(Protocol::Picture)
            .protocol(Protocol::Disappearing)
            .user(&Jid::pn("1"))
            .build("s")
            .unwrap();
        let usync = q.child("usync").unwrap();
        assert_eq!(usync.attr::<&str>("mode").unwrap(), "full");
        assert_eq!(usync.attr::<&str>("context").unwrap(), "background");
        let tags: Vec<&str> = usync
            .child("query")
            .unwrap()
            .children()
            .iter()
            .map(Node::tag)
            .collect();
        assert_eq!(tags, ["business", "status", "picture", "disappearing_mode"]);
        assert!(
            usync
                .child_by_path(&["query", "business", "verified_name"])
                .is_some()
        );
    }

    #[test]
    fn parses_business_status_picture_and_disappearing() {
        let users = parse_reply(&reply(vec![
            user(
                "1@s.whatsapp.net",
                vec![
                    business(certificate("Acme")),
                    Node::builder("status")
                        .attr("t", "1700000000")
                        .text("at work")
                        .build(),
                    Node::builder("picture").attr("id", "1234").build(),
                    Node::builder("disappearing_mode")
                        .attr("duration", "86400")
                        .attr("t", "1700000001")
                        .build(),
                ],
            ),
            user(
                "2@s.whatsapp.net",
                vec![
                    Node::builder("business").build(),
                    Node::builder("status").attr("code", "401").build(),
                    Node::builder("picture")
                        .children([Node::builder("error")
                            .attr("code", "401")
                            .attr("text", "not-authorized")
                            .build()])
                        .build(),
                    Node::builder("disappearing_mode").build(),
                ],
            ),
        ]))
        .unwrap();
        let a = &users[0];
        let v = a.verified_name.as_ref().unwrap();
        assert_eq!(
            (v.name.as_str(), v.serial, v.issuer.as_deref()),
            ("Acme", Some(7), Some("smb:wa"))
        );
        assert_eq!(v.level.as_deref(), Some("unknown"));
        let st = a.status.as_ref().unwrap();
        assert_eq!(
            (st.text.as_str(), st.set_at, st.hidden),
            ("at work", Some(1_700_000_000), false)
        );
        assert_eq!(a.picture_id.as_deref(), Some("1234"));
        let d = a.disappearing.unwrap();
        assert_eq!((d.duration, d.set_at), (86_400, Some(1_700_000_001)));

        let b = &users[1];
        assert!(b.verified_name.is_none());
        assert!(b.status.as_ref().unwrap().hidden);
        assert!(b.picture_id.is_none());
        assert_eq!(b.errors[0].protocol, Some(Protocol::Picture));
        assert_eq!(b.errors[0].code, 401);
        assert_eq!(b.disappearing.map(|d| d.duration), Some(0));
    }

    /// Hostile profile answers leave their field empty instead of failing the reply.
    #[test]
    fn hostile_profile_answers_are_dropped_not_fatal() {
        let hostile = vec![
            // Not a protobuf, an empty certificate, a missing <verified_name>, and a
            // certificate far beyond the bound.
            business(vec![0xFF, 0xFF, 0xFF]),
            business(Vec::new()),
            business(vec![0x0A; crate::MAX_CERTIFICATE_LEN + 1]),
            Node::builder("business")
                .children([Node::builder("verified_name").build()])
                .build(),
            // Oversized and non-UTF-8 status text, a bad timestamp.
            Node::builder("status")
                .attr("t", "yesterday")
                .text("x".repeat(MAX_STATUS_LEN + 1))
                .build(),
            Node::builder("status").bytes(vec![0xC3, 0x28]).build(),
            // Oversized and missing picture ids.
            Node::builder("picture")
                .attr("id", "9".repeat(MAX_PICTURE_ID_LEN + 1))
                .build(),
            Node::builder("picture").build(),
            Node::builder("disappearing_mode")
                .attr("duration", "-5")
                .build(),
        ];
        for child in hostile {
            let r = parse_reply(&reply(vec![user("1@s.whatsapp.net", vec![child.clone()])]));
            let u = r.unwrap_or_else(|e| panic!("{child:?}: {e:?}"));
            let u = &u[0];
            assert!(
                u.verified_name.is_none()
                    && u.status.is_none()
                    && u.picture_id.is_none()
                    && u.disappearing.is_none(),
                "{child:?}: {u:?}"
            );
        }
        // A bad timestamp alone only loses the time.
        let u = parse_reply(&reply(vec![user(
            "1@s.whatsapp.net",
            vec![Node::builder("status").attr("t", "x").text("hi").build()],
        )]))
        .unwrap();
        let st = u[0].status.as_ref().unwrap();
        assert_eq!((st.text.as_str(), st.set_at), ("hi", None));
    }

    #[test]
    fn empty_list_is_no_users() {
        assert!(parse_reply(&reply(vec![])).unwrap().is_empty());
    }
}
