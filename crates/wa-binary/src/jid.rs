//! WhatsApp JIDs (`user[_agent][:device]@server`).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, clip};
use crate::str::Str;
use crate::tokens::SINGLE_BYTE;

/// The longest JID user part (and server name) accepted from text or from an attribute.
/// Phone numbers, LIDs, group and channel ids are far shorter. Records are stored under
/// keys made of JIDs, and a longer user part could make a key too long to store, failing
/// the whole batch it was written in. Parsing (`str::parse`) and attribute reads
/// ([`Node::attr`](crate::Node::attr) and [`Value::to_jid`](crate::Value::to_jid)) refuse
/// longer ones; a decoded node keeps what was received, and [`Jid::is_bounded`] tells.
pub const MAX_JID_USER_LEN: usize = 128;

/// The server part of a JID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Server {
    /// `s.whatsapp.net`: phone-number users.
    Pn,
    /// `c.us`: the legacy name of `s.whatsapp.net` (see [`Jid::normalized_user`]).
    LegacyUser,
    /// `g.us`: groups.
    Group,
    /// `broadcast`: broadcast lists and `status@broadcast`.
    Broadcast,
    /// `lid`: LID (hidden) users.
    Lid,
    /// `newsletter`: channels.
    Newsletter,
    /// `bot`: bots.
    Bot,
    /// `hosted`: hosted (business platform) phone-number users.
    Hosted,
    /// `hosted.lid`: hosted LID users.
    HostedLid,
    /// `msgr`: Messenger users (FB_JID on the wire).
    Msgr,
    /// `interop`: interoperability users (INTEROP_JID on the wire).
    Interop,
    /// `call`: call ids.
    Call,
    /// Any other server. Build it with [`Server::from_name`], which never
    /// produces `Other` for an empty name or for the names above.
    Other(Str),
}

impl Server {
    /// The server's name as written after the `@`.
    pub fn as_str(&self) -> &str {
        match self {
            Server::Pn => "s.whatsapp.net",
            Server::LegacyUser => "c.us",
            Server::Group => "g.us",
            Server::Broadcast => "broadcast",
            Server::Lid => "lid",
            Server::Newsletter => "newsletter",
            Server::Bot => "bot",
            Server::Hosted => "hosted",
            Server::HostedLid => "hosted.lid",
            Server::Msgr => "msgr",
            Server::Interop => "interop",
            Server::Call => "call",
            Server::Other(s) => s.as_str(),
        }
    }

    /// The known server with this name, if any.
    pub fn known(name: &[u8]) -> Option<Server> {
        Some(match name {
            b"s.whatsapp.net" => Server::Pn,
            b"c.us" => Server::LegacyUser,
            b"g.us" => Server::Group,
            b"broadcast" => Server::Broadcast,
            b"lid" => Server::Lid,
            b"newsletter" => Server::Newsletter,
            b"bot" => Server::Bot,
            b"hosted" => Server::Hosted,
            b"hosted.lid" => Server::HostedLid,
            b"msgr" => Server::Msgr,
            b"interop" => Server::Interop,
            b"call" => Server::Call,
            _ => return None,
        })
    }

    /// The known server whose name is the single-byte token `t`, if any
    /// (decoder fast path: no string is built or compared).
    #[inline]
    pub(crate) fn from_single_token(t: u8) -> Option<Server> {
        Some(
            match SERVER_BY_TOKEN.get(t as usize).copied().unwrap_or(0) {
                1 => Server::Pn,
                2 => Server::LegacyUser,
                3 => Server::Group,
                4 => Server::Broadcast,
                5 => Server::Lid,
                6 => Server::Newsletter,
                7 => Server::Bot,
                8 => Server::Hosted,
                9 => Server::HostedLid,
                10 => Server::Msgr,
                11 => Server::Interop,
                12 => Server::Call,
                _ => return None,
            },
        )
    }

    /// The server with this name: a known variant, or `Other` (`None` for an
    /// empty name).
    pub fn from_name(name: Str) -> Option<Server> {
        if name.is_empty() {
            return None;
        }
        Some(Server::known(name.as_bytes()).unwrap_or(Server::Other(name)))
    }

    /// The AD (device) domain of this server: 1 for `lid`, 128 for `hosted`,
    /// 129 for `hosted.lid`, 0 for everything else.
    pub fn domain(&self) -> u8 {
        match self {
            Server::Lid => 1,
            Server::Hosted => 128,
            Server::HostedLid => 129,
            _ => 0,
        }
    }

    /// `c.us` becomes `s.whatsapp.net`; everything else is unchanged.
    pub fn normalized(&self) -> Server {
        match self {
            Server::LegacyUser => Server::Pn,
            other => other.clone(),
        }
    }
}

/// Names of the known servers, in the numbering of [`SERVER_BY_TOKEN`].
const KNOWN_NAMES: [&str; 12] = [
    "s.whatsapp.net",
    "c.us",
    "g.us",
    "broadcast",
    "lid",
    "newsletter",
    "bot",
    "hosted",
    "hosted.lid",
    "msgr",
    "interop",
    "call",
];

/// For each single-byte token, 1 + its index in [`KNOWN_NAMES`], or 0.
static SERVER_BY_TOKEN: [u8; 256] = server_by_token();

const fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn server_by_token() -> [u8; 256] {
    let mut out = [0u8; 256];
    let mut t = 1;
    while t < SINGLE_BYTE.len() {
        let mut k = 0;
        while k < KNOWN_NAMES.len() {
            if same_bytes(SINGLE_BYTE[t].as_bytes(), KNOWN_NAMES[k].as_bytes()) {
                out[t] = k as u8 + 1;
            }
            k += 1;
        }
        t += 1;
    }
    out
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A WhatsApp address: `user[_agent][:device]@server`, and for interop users
/// `integrator-user:device@interop`.
///
/// Only some combinations exist on the wire (see the crate documentation):
/// a device or agent is carried for `s.whatsapp.net` and `lid` users, a
/// device for `hosted`, `hosted.lid`, `msgr` and `interop` users, and an
/// integrator for `interop` users. Other parts are dropped when encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    /// The user (phone number, LID, group id, `status`, ...). May be empty
    /// (`@s.whatsapp.net` is the server itself).
    pub user: Str,
    /// The server.
    pub server: Server,
    /// The agent (for AD JIDs written `user_agent:device@server`; 0 = none).
    pub agent: u8,
    /// The device (0 = the main device / no device).
    pub device: u16,
    /// The interop integrator (0 = none).
    pub integrator: u16,
}

impl Jid {
    /// `user@server`.
    pub fn new(user: impl Into<Str>, server: Server) -> Self {
        Jid {
            user: user.into(),
            server,
            agent: 0,
            device: 0,
            integrator: 0,
        }
    }

    /// `user:device@server`.
    pub fn with_device(user: impl Into<Str>, server: Server, device: u16) -> Self {
        Jid {
            user: user.into(),
            server,
            agent: 0,
            device,
            integrator: 0,
        }
    }

    /// A phone-number user, `user@s.whatsapp.net`.
    pub fn pn(user: impl Into<Str>) -> Self {
        Jid::new(user, Server::Pn)
    }

    /// A LID user, `user@lid`.
    pub fn lid(user: impl Into<Str>) -> Self {
        Jid::new(user, Server::Lid)
    }

    /// A group, `id@g.us`.
    pub fn group(id: impl Into<Str>) -> Self {
        Jid::new(id, Server::Group)
    }

    /// The server itself, `@s.whatsapp.net`.
    pub fn server_jid() -> Self {
        Jid::new(Str::EMPTY, Server::Pn)
    }

    /// `status@broadcast`.
    pub fn status_broadcast() -> Self {
        Jid::new("status", Server::Broadcast)
    }

    /// The same user without agent and device.
    pub fn to_non_ad(&self) -> Jid {
        Jid {
            user: self.user.clone(),
            server: self.server.clone(),
            agent: 0,
            device: 0,
            integrator: self.integrator,
        }
    }

    /// The same user without agent and device, with `c.us` normalised to
    /// `s.whatsapp.net` (Baileys' `jidNormalizedUser`).
    pub fn normalized_user(&self) -> Jid {
        Jid {
            user: self.user.clone(),
            server: self.server.normalized(),
            agent: 0,
            device: 0,
            integrator: self.integrator,
        }
    }

    /// Whether this addresses a specific device or agent.
    pub fn is_ad(&self) -> bool {
        self.device != 0 || self.agent != 0
    }

    /// A group (`g.us`).
    pub fn is_group(&self) -> bool {
        self.server == Server::Group
    }

    /// A phone-number user (`s.whatsapp.net` or `c.us`) with a user part.
    pub fn is_pn_user(&self) -> bool {
        matches!(self.server, Server::Pn | Server::LegacyUser) && !self.user.is_empty()
    }

    /// Whether the user part and the server name are at most [`MAX_JID_USER_LEN`]
    /// bytes: always for a parsed JID, not necessarily for a decoded one.
    pub fn is_bounded(&self) -> bool {
        self.user.len() <= MAX_JID_USER_LEN && self.server.as_str().len() <= MAX_JID_USER_LEN
    }

    /// A LID user (`lid`).
    pub fn is_lid(&self) -> bool {
        self.server == Server::Lid
    }

    /// A hosted user (`hosted` or `hosted.lid`).
    pub fn is_hosted(&self) -> bool {
        matches!(self.server, Server::Hosted | Server::HostedLid)
    }

    /// Any broadcast JID, including `status@broadcast`.
    pub fn is_broadcast(&self) -> bool {
        self.server == Server::Broadcast
    }

    /// `status@broadcast`.
    pub fn is_status_broadcast(&self) -> bool {
        self.server == Server::Broadcast && self.user == "status"
    }

    /// A broadcast list other than `status@broadcast`.
    pub fn is_broadcast_list(&self) -> bool {
        self.is_broadcast() && !self.is_status_broadcast()
    }

    /// A channel (`newsletter`).
    pub fn is_newsletter(&self) -> bool {
        self.server == Server::Newsletter
    }

    /// A bot: the `bot` server, or a phone-number bot id (`1313555xxxx`,
    /// `131655500xx`) on the main device.
    pub fn is_bot(&self) -> bool {
        if self.server == Server::Bot {
            return true;
        }
        if !matches!(self.server, Server::Pn | Server::LegacyUser) || self.device != 0 {
            return false;
        }
        let u = self.user.as_bytes();
        let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
        (u.len() == 11 && u.starts_with(b"1313555") && digits(&u[7..]))
            || (u.len() == 11 && u.starts_with(b"131655500") && digits(&u[9..]))
    }

    /// The AD domain used on the wire (AD_JID) and in Signal addresses: the
    /// server's domain for `lid`/`hosted`/`hosted.lid`, the agent otherwise.
    pub fn domain(&self) -> u8 {
        match self.server {
            Server::Lid | Server::Hosted | Server::HostedLid => self.server.domain(),
            _ => self.agent,
        }
    }

    /// The Signal protocol address name: the user, plus `_<domain>` when the
    /// domain is not 0 (`lid` = 1, `hosted` = 128, `hosted.lid` = 129).
    pub fn signal_address_name(&self) -> String {
        match self.domain() {
            0 => self.user.as_str().to_owned(),
            d => {
                // Sized once: `format!` would grow the string as it wrote.
                let mut name = String::with_capacity(self.user.len() + 4);
                let _ = fmt::Write::write_fmt(&mut name, format_args!("{}_{d}", self.user));
                name
            }
        }
    }

    /// The Signal protocol address: (name, device id).
    pub fn signal_address(&self) -> (String, u32) {
        (self.signal_address_name(), u32::from(self.device))
    }

    /// Whether both JIDs name the same user (ignoring agent, device and the
    /// `c.us` spelling).
    pub fn same_user(&self, other: &Jid) -> bool {
        self.user == other.user && self.server.normalized() == other.server.normalized()
    }
}

impl Jid {
    fn write_parts(&self, w: &mut impl fmt::Write) -> fmt::Result {
        if self.server == Server::Interop && self.integrator != 0 {
            write!(w, "{}-", self.integrator)?;
        }
        w.write_str(&self.user)?;
        if self.agent != 0 {
            write!(w, "_{}", self.agent)?;
        }
        if self.device != 0 {
            write!(w, ":{}", self.device)?;
        }
        w.write_char('@')?;
        w.write_str(self.server.as_str())
    }
}

/// A fixed buffer on the stack that refuses what does not fit.
struct StackText<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self
            .len
            .checked_add(s.len())
            .filter(|&e| e <= N)
            .ok_or(fmt::Error)?;
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl fmt::Display for Jid {
    /// Written in one piece when it fits 96 bytes (every real JID does), so
    /// `to_string` allocates once instead of growing its string part by part.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = StackText::<96> {
            bytes: [0; 96],
            len: 0,
        };
        if self.write_parts(&mut text).is_ok()
            && let Ok(whole) = std::str::from_utf8(&text.bytes[..text.len])
        {
            return f.write_str(whole);
        }
        self.write_parts(f)
    }
}

fn bad(input: &str, reason: &'static str) -> Error {
    Error::InvalidJid {
        input: clip(input),
        reason,
    }
}

fn parse_num<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl FromStr for Jid {
    type Err = Error;

    /// Parses `user[_agent][:device]@server` (and `integrator-user:device@interop`).
    /// The server is kept as written (`c.us` stays `c.us`; see
    /// [`Jid::normalized_user`]). An agent is only recognised for user servers
    /// (`s.whatsapp.net`, `c.us`, `lid`, `hosted`, `hosted.lid`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let (user_part, server) = s.split_once('@').ok_or_else(|| bad(s, "no '@'"))?;
        let server =
            Server::from_name(Str::copy_from(server)).ok_or_else(|| bad(s, "empty server"))?;
        let (mut user, device) = match user_part.split_once(':') {
            Some((u, d)) => (
                u,
                parse_num::<u16>(d).ok_or_else(|| bad(s, "invalid device"))?,
            ),
            None => (user_part, 0),
        };
        let mut agent = 0;
        let user_server = matches!(
            server,
            Server::Pn | Server::LegacyUser | Server::Lid | Server::Hosted | Server::HostedLid
        );
        if user_server && let Some((u, a)) = user.split_once('_') {
            agent = parse_num::<u8>(a).ok_or_else(|| bad(s, "invalid agent"))?;
            user = u;
        }
        let mut integrator = 0;
        if server == Server::Interop
            && let Some((i, u)) = user.split_once('-')
        {
            integrator = parse_num::<u16>(i).ok_or_else(|| bad(s, "invalid integrator"))?;
            user = u;
        }
        if user.len() > MAX_JID_USER_LEN {
            return Err(bad(s, "user part too long"));
        }
        if server.as_str().len() > MAX_JID_USER_LEN {
            return Err(bad(s, "server name too long"));
        }
        Ok(Jid {
            user: Str::copy_from(user),
            server,
            agent,
            device,
            integrator,
        })
    }
}

impl TryFrom<&str> for Jid {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self, Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let j: Jid = "15551234567:12@s.whatsapp.net".parse().unwrap();
        assert_eq!(j.user, "15551234567");
        assert_eq!(j.device, 12);
        assert_eq!(j.server, Server::Pn);
        assert_eq!(j.to_string(), "15551234567:12@s.whatsapp.net");
        assert_eq!(j.to_non_ad().to_string(), "15551234567@s.whatsapp.net");

        let j: Jid = "2-4445556666:1@interop".parse().unwrap();
        assert_eq!(
            (j.integrator, j.device, j.user.as_str()),
            (2, 1, "4445556666")
        );
        assert_eq!(j.to_string(), "2-4445556666:1@interop");

        let j: Jid = "abc@example.org".parse().unwrap();
        assert_eq!(j.server, Server::Other(Str::from("example.org")));
        assert_eq!(j.to_string(), "abc@example.org");

        let j: Jid = "a_b@newsletter".parse().unwrap();
        assert_eq!(j.user, "a_b");
    }

    #[test]
    fn parse_errors() {
        for s in [
            "no-at-sign",
            "x@",
            "x:y@s.whatsapp.net",
            "x:70000@s.whatsapp.net",
            "x_a@lid",
        ] {
            assert!(
                matches!(s.parse::<Jid>(), Err(Error::InvalidJid { .. })),
                "{s}"
            );
        }
    }

    #[test]
    fn overlong_user_parts_and_servers_are_refused() {
        let at_limit = "1".repeat(MAX_JID_USER_LEN);
        let over = "1".repeat(MAX_JID_USER_LEN + 1);
        for ok in [
            format!("{at_limit}@s.whatsapp.net"),
            format!("{at_limit}_1:2@lid"),
            format!("7-{at_limit}:3@interop"),
            format!("x@{}", "e".repeat(MAX_JID_USER_LEN)),
        ] {
            let jid: Jid = ok.parse().unwrap();
            assert!(jid.is_bounded(), "{ok}");
        }
        for refused in [
            format!("{over}@s.whatsapp.net"),
            format!("{over}_1:2@lid"),
            format!("7-{over}:3@interop"),
            format!("{over}@g.us"),
            format!("x@{}", "e".repeat(MAX_JID_USER_LEN + 1)),
        ] {
            assert!(
                matches!(refused.parse::<Jid>(), Err(Error::InvalidJid { .. })),
                "{refused}"
            );
        }
        // Built in code (or decoded), a JID is not checked; `is_bounded` tells.
        assert!(!Jid::lid(over).is_bounded());
    }

    #[test]
    fn text_of_any_length_is_whole() {
        // Short JIDs are written from the stack buffer, long ones part by part.
        for user in ["1".to_owned(), "1".repeat(80), "1".repeat(MAX_JID_USER_LEN)] {
            for text in [
                format!("{user}@s.whatsapp.net"),
                format!("{user}_1:2@lid"),
                format!("7-{user}:3@interop"),
            ] {
                let jid: Jid = text.parse().unwrap();
                assert_eq!(jid.to_string(), text);
                assert_eq!(format!("<{jid}>"), format!("<{text}>"));
            }
        }
    }

    #[test]
    fn signal_address_names() {
        let j: Jid = "123:3@lid".parse().unwrap();
        assert_eq!(j.signal_address(), ("123_1".to_owned(), 3));
        let j: Jid = "123:99@hosted".parse().unwrap();
        assert_eq!(j.signal_address(), ("123_128".to_owned(), 99));
        let j: Jid = "123:99@hosted.lid".parse().unwrap();
        assert_eq!(j.signal_address(), ("123_129".to_owned(), 99));
        let j: Jid = "123:4@s.whatsapp.net".parse().unwrap();
        assert_eq!(j.signal_address(), ("123".to_owned(), 4));
    }

    #[test]
    fn server_tokens_match_server_names() {
        let mut found = 0;
        for t in 0..=255u8 {
            let by_token = Server::from_single_token(t);
            let by_name = crate::token::single(t).and_then(|s| Server::known(s.as_bytes()));
            assert_eq!(by_token, by_name, "{t}");
            found += usize::from(by_token.is_some());
        }
        // s.whatsapp.net, g.us, broadcast, lid, msgr, call and more are tokens.
        assert!(found >= 6, "{found}");
        for name in KNOWN_NAMES {
            assert_eq!(
                Server::known(name.as_bytes()).map(|s| s.as_str().to_owned()),
                Some(name.to_owned())
            );
        }
    }

    #[test]
    fn predicates() {
        assert!(Jid::status_broadcast().is_status_broadcast());
        assert!(!Jid::status_broadcast().is_broadcast_list());
        assert!(Jid::new("1234", Server::Broadcast).is_broadcast_list());
        assert!(Jid::group("1203").is_group());
        assert!(Jid::pn("13135550002").is_bot());
        assert!(!Jid::pn("15551234567").is_bot());
        assert!(Jid::new("1", Server::Bot).is_bot());
        let legacy: Jid = "16505361212@c.us".parse().unwrap();
        assert!(legacy.same_user(&Jid::pn("16505361212")));
        assert_eq!(
            legacy.normalized_user().to_string(),
            "16505361212@s.whatsapp.net"
        );
    }
}
