//! Contact QR links, business message links, terms-of-service notices and push
//! notification registration (whatsmeow's `user.go`, `newsletter.go`'s
//! `AcceptTOSNotice` and `push.go`).
//!
//! The parsers are sans IO and public; the requests are methods of [`Chats`].

use base64::Engine as _;
use wa_binary::{Jid, Node};

use crate::Chats;
use crate::Error;
use crate::client::iq;

/// Prefix of a contact QR link ([`Chats::contact_qr_link`]).
pub const CONTACT_QR_LINK_PREFIX: &str = "https://wa.me/qr/";
/// The other form of a contact QR link.
const CONTACT_QR_LINK_DIRECT_PREFIX: &str = "https://api.whatsapp.com/qr/";
/// Prefix of a business message link.
pub const BUSINESS_MESSAGE_LINK_PREFIX: &str = "https://wa.me/message/";
/// The other form of a business message link.
const BUSINESS_MESSAGE_LINK_DIRECT_PREFIX: &str = "https://api.whatsapp.com/message/";

/// Longest link code sent or accepted from a reply, in bytes.
pub const MAX_LINK_CODE_LEN: usize = 128;
/// Longest name (push name, verified name, level, kind) accepted from a link reply, in
/// bytes.
pub const MAX_LINK_NAME_LEN: usize = 512;
/// Longest prefilled message accepted from a business message link reply, in bytes.
pub const MAX_LINK_MESSAGE_LEN: usize = 4096;
/// Longest push token, endpoint or terms-of-service id sent, in bytes.
const MAX_PUSH_VALUE: usize = 4096;
/// Longest web-push key (`auth`, `p256dh`) sent, in bytes.
const MAX_PUSH_KEY: usize = 256;
/// Longest terms-of-service notice id or stage sent, in bytes.
const MAX_TOS_VALUE: usize = 64;

/// Who a contact QR link names ([`Chats::resolve_contact_qr_link`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContactQrTarget {
    /// The user.
    pub jid: Jid,
    /// The user's push name, when the server gave one.
    pub push_name: Option<String>,
    /// The kind of link (`contact` for a user's own QR link).
    pub kind: String,
}

/// What a business message link opens ([`Chats::resolve_business_message_link`]): the
/// chat with a business and the text to put in its input box.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusinessMessageLink {
    /// The business.
    pub jid: Jid,
    /// The business's push name, when the server gave one.
    pub push_name: Option<String>,
    /// The message to prefill, if the link carries one.
    pub message: Option<String>,
    /// Whether the business's verified name is signed (`is_signed`).
    pub is_signed: bool,
    /// The business's verified name, if it has one.
    pub verified_name: Option<String>,
    /// The level of that verification (`unknown`, `low`, `high`), when given.
    pub verified_level: Option<String>,
}

/// Where the server sends push notifications of new messages
/// ([`Chats::register_push`]; whatsmeow's `PushConfig` implementations).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushConfig {
    /// Firebase Cloud Messaging: `<config id=token num_acc="1" platform="gcm"/>`.
    Fcm {
        /// The FCM registration token.
        token: String,
    },
    /// Apple Push Notification service: `<config id=token platform="apple" version="2"
    /// reg_push="1" preview="1" pkey ...>`, with the settings WhatsApp's iOS app sends.
    Apns {
        /// The APNs device token.
        token: String,
        /// The VoIP push token, if any (`voip`).
        voip_token: Option<String>,
        /// The key message ids in pushes are encrypted with (`pkey`, sent as unpadded
        /// URL-safe base64).
        msg_id_enc_key: [u8; 32],
    },
    /// Web Push: `<config platform="web" endpoint auth p256dh/>`, the keys in standard
    /// base64 with padding.
    WebPush {
        /// The push service endpoint URL.
        endpoint: String,
        /// The subscription's authentication secret (16 bytes from the browser).
        auth: Vec<u8>,
        /// The subscription's P-256 public key (65 bytes, uncompressed).
        p256dh: Vec<u8>,
    },
}

impl std::fmt::Debug for PushConfig {
    // Tokens and keys address this device's pushes: kept out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fcm { .. } => f.write_str("PushConfig::Fcm"),
            Self::Apns { .. } => f.write_str("PushConfig::Apns"),
            Self::WebPush { endpoint, .. } => f
                .debug_struct("PushConfig::WebPush")
                .field("endpoint", endpoint)
                .finish_non_exhaustive(),
        }
    }
}

fn push_value(v: &str) -> Result<String, Error> {
    if v.is_empty() || v.len() > MAX_PUSH_VALUE {
        return Err(Error::InvalidRequest(
            "push token or endpoint empty or too long",
        ));
    }
    Ok(v.to_owned())
}

impl PushConfig {
    /// The `<config>` element sent for this configuration.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty or over-4096-byte token or endpoint, or an
    /// empty or over-256-byte web-push key.
    pub fn config_node(&self) -> Result<Node, Error> {
        let b = Node::builder("config");
        Ok(match self {
            Self::Fcm { token } => b
                .attr("id", push_value(token)?)
                .attr("num_acc", "1")
                .attr("platform", "gcm")
                .build(),
            Self::Apns {
                token,
                voip_token,
                msg_id_enc_key,
            } => {
                let voip = voip_token.as_deref().map(push_value).transpose()?;
                let pkey = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(msg_id_enc_key);
                b.attr("id", push_value(token)?)
                    .attr("platform", "apple")
                    .attr("version", "2")
                    .attr("reg_push", "1")
                    .attr("preview", "1")
                    .attr("pkey", pkey)
                    .attr("background_location", "1")
                    .attr("call", "Opening.m4r")
                    .attr("default", "note.m4r")
                    .attr("groups", "note.m4r")
                    .attr("lg", "en")
                    .attr("lc", "US")
                    .attr("nse_call", "0")
                    .attr("nse_ver", "2")
                    .attr("nse_read", "0")
                    .attr("voip_payload_type", "2")
                    .attr_opt("voip", voip)
                    .build()
            }
            Self::WebPush {
                endpoint,
                auth,
                p256dh,
            } => {
                let key_ok = |k: &[u8]| !k.is_empty() && k.len() <= MAX_PUSH_KEY;
                if !key_ok(auth) || !key_ok(p256dh) {
                    return Err(Error::InvalidRequest("web push key empty or too long"));
                }
                let b64 = base64::engine::general_purpose::STANDARD;
                b.attr("platform", "web")
                    .attr("endpoint", push_value(endpoint)?)
                    .attr("auth", b64.encode(auth))
                    .attr("p256dh", b64.encode(p256dh))
                    .build()
            }
        })
    }
}

/// Whether `code` can be a link code: 1 to [`MAX_LINK_CODE_LEN`] ASCII letters, digits,
/// `-` or `_`.
fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_LINK_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The code of `code_or_link`: the part after one of `prefixes` (without a query or
/// fragment), or the whole string when none matches.
fn link_code<'a>(code_or_link: &'a str, prefixes: &[&str]) -> Result<&'a str, Error> {
    let s = code_or_link.trim();
    let code = match prefixes.iter().find_map(|p| s.strip_prefix(p)) {
        Some(rest) => {
            let end = rest.find(['?', '#']).unwrap_or(rest.len());
            rest[..end].trim_end_matches('/')
        }
        None => s,
    };
    if valid_code(code) {
        Ok(code)
    } else {
        Err(Error::InvalidRequest("not a link code or link"))
    }
}

/// An optional attribute of at most `max` bytes.
fn bounded_attr(node: &Node, key: &str, max: usize) -> Result<Option<String>, Error> {
    let v = node
        .attr_opt::<String>(key)
        .map_err(|_| Error::Malformed("link reply attribute is not a string"))?;
    match v {
        Some(v) if v.len() > max => Err(Error::Malformed("link reply attribute too long")),
        v => Ok(v),
    }
}

fn qr_child(reply: &Node) -> Result<&Node, Error> {
    reply
        .child("qr")
        .ok_or_else(|| Error::Malformed("link reply without <qr>"))
}

/// The user a link names: a phone-number, LID or hosted user with a user part.
fn qr_jid(qr: &Node) -> Result<Jid, Error> {
    let jid = qr
        .attr::<Jid>("jid")
        .map_err(|_| Error::Malformed("link reply without a JID"))?;
    let user = jid.is_pn_user() || ((jid.is_lid() || jid.is_hosted()) && !jid.user.is_empty());
    if !user {
        return Err(Error::Malformed("link reply names no user"));
    }
    Ok(jid)
}

/// Reads the code of our own contact QR link from `<iq><qr code/></iq>`.
///
/// # Errors
/// [`Error::Malformed`] without `<qr>`, or without a code of 1 to
/// [`MAX_LINK_CODE_LEN`] letters, digits, `-` or `_`.
pub fn parse_contact_qr_code(reply: &Node) -> Result<String, Error> {
    let code = bounded_attr(qr_child(reply)?, "code", MAX_LINK_CODE_LEN)?
        .ok_or_else(|| Error::Malformed("contact QR reply without a code"))?;
    if !valid_code(&code) {
        return Err(Error::Malformed(
            "contact QR code has unexpected characters",
        ));
    }
    Ok(code)
}

/// Reads a resolved contact QR link from `<iq><qr jid [notify] type/></iq>`.
///
/// # Errors
/// [`Error::Malformed`] without `<qr>`, a `jid` naming a user, a `type`, or with a name
/// over [`MAX_LINK_NAME_LEN`] bytes.
pub fn parse_contact_qr_target(reply: &Node) -> Result<ContactQrTarget, Error> {
    let qr = qr_child(reply)?;
    let jid = qr_jid(qr)?;
    let push_name = bounded_attr(qr, "notify", MAX_LINK_NAME_LEN)?;
    let kind = bounded_attr(qr, "type", MAX_LINK_NAME_LEN)?
        .ok_or_else(|| Error::Malformed("contact QR reply without a type"))?;
    Ok(ContactQrTarget {
        jid,
        push_name,
        kind,
    })
}

/// Reads a resolved business message link from `<iq><qr jid [notify]>[<message>text
/// </message>][<business is_signed verified_name verified_level/>]</qr></iq>`.
///
/// # Errors
/// [`Error::Malformed`] without `<qr>` or a `jid` naming a user, for a message that is not UTF-8 or over
/// [`MAX_LINK_MESSAGE_LEN`] bytes, a name over [`MAX_LINK_NAME_LEN`] bytes, or an
/// `is_signed` other than `true`/`false`.
pub fn parse_business_message_link(reply: &Node) -> Result<BusinessMessageLink, Error> {
    let qr = qr_child(reply)?;
    let jid = qr_jid(qr)?;
    let push_name = bounded_attr(qr, "notify", MAX_LINK_NAME_LEN)?;
    let message = match qr.child("message").and_then(Node::content_bytes) {
        Some(raw) if raw.len() > MAX_LINK_MESSAGE_LEN => {
            return Err(Error::Malformed("business link message too long"));
        }
        Some(raw) => Some(
            std::str::from_utf8(raw)
                .map_err(|_| Error::Malformed("business link message is not UTF-8"))?
                .to_owned(),
        ),
        None => None,
    };
    let (is_signed, verified_name, verified_level) = match qr.child("business") {
        Some(b) => (
            b.attr_opt::<bool>("is_signed")
                .map_err(|_| Error::Malformed("business is_signed is not a boolean"))?
                .unwrap_or(false),
            bounded_attr(b, "verified_name", MAX_LINK_NAME_LEN)?,
            bounded_attr(b, "verified_level", MAX_LINK_NAME_LEN)?,
        ),
        None => (false, None, None),
    };
    Ok(BusinessMessageLink {
        jid,
        push_name,
        message,
        is_signed,
        verified_name,
        verified_level,
    })
}

fn tos_value(v: &str) -> Result<&str, Error> {
    if v.is_empty() || v.len() > MAX_TOS_VALUE || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidRequest(
            "terms-of-service notice id or stage empty, too long or not printable ASCII",
        ));
    }
    Ok(v)
}

impl Chats {
    /// Our own contact QR link, `https://wa.me/qr/<code>` (whatsmeow's
    /// `GetContactQRLink`): `<iq xmlns="w:qr" type="set"><qr type="contact"
    /// action="get"/>`. With `revoke`, the server first revokes the current link
    /// (`action="revoke"`) and answers a new one; the old one then resolves to
    /// [`Error::ContactQrLinkNotFound`].
    ///
    /// # Errors
    /// Socket and server errors; [`Error::Malformed`] for a reply without a usable code.
    pub async fn contact_qr_link(&self, revoke: bool) -> Result<String, Error> {
        let node = iq("w:qr", "set")
            .children([Node::builder("qr")
                .attr("type", "contact")
                .attr("action", if revoke { "revoke" } else { "get" })
                .build()])
            .build();
        let reply = self.query(node).await?;
        let code = parse_contact_qr_code(&reply)?;
        Ok(format!("{CONTACT_QR_LINK_PREFIX}{code}"))
    }

    /// Who a contact QR link names (whatsmeow's `ResolveContactQRLink`): takes the code
    /// or the whole link (`https://wa.me/qr/<code>` or `https://api.whatsapp.com/qr/<code>`)
    /// and sends `<iq xmlns="w:qr" type="get"><qr code/>`.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when no code can be read from `code_or_link`;
    /// [`Error::ContactQrLinkNotFound`] when the server does not know the code (404:
    /// never issued, or revoked); socket and other server errors; [`Error::Malformed`].
    pub async fn resolve_contact_qr_link(
        &self,
        code_or_link: &str,
    ) -> Result<ContactQrTarget, Error> {
        let code = link_code(
            code_or_link,
            &[CONTACT_QR_LINK_PREFIX, CONTACT_QR_LINK_DIRECT_PREFIX],
        )?;
        match self.resolve_code(code).await {
            Ok(reply) => parse_contact_qr_target(&reply),
            Err(Error::Refused { code: 404, .. }) => Err(Error::ContactQrLinkNotFound),
            Err(e) => Err(e),
        }
    }

    /// What a business message link opens (whatsmeow's `ResolveBusinessMessageLink`):
    /// takes the code or the whole link (`https://wa.me/message/<code>` or
    /// `https://api.whatsapp.com/message/<code>`) and sends `<iq xmlns="w:qr"
    /// type="get"><qr code/>`.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when no code can be read from `code_or_link`;
    /// [`Error::BusinessMessageLinkNotFound`] when the server does not know the code
    /// (404); socket and other server errors; [`Error::Malformed`].
    pub async fn resolve_business_message_link(
        &self,
        code_or_link: &str,
    ) -> Result<BusinessMessageLink, Error> {
        let code = link_code(
            code_or_link,
            &[
                BUSINESS_MESSAGE_LINK_PREFIX,
                BUSINESS_MESSAGE_LINK_DIRECT_PREFIX,
            ],
        )?;
        match self.resolve_code(code).await {
            Ok(reply) => parse_business_message_link(&reply),
            Err(Error::Refused { code: 404, .. }) => Err(Error::BusinessMessageLinkNotFound),
            Err(e) => Err(e),
        }
    }

    async fn resolve_code(&self, code: &str) -> Result<Node, Error> {
        let node = iq("w:qr", "get")
            .children([Node::builder("qr").attr("code", code.to_owned()).build()])
            .build();
        self.query(node).await
    }

    /// Accepts a terms-of-service notice (whatsmeow's `AcceptTOSNotice`): `<iq
    /// xmlns="tos" type="set"><notice id stage/>`. Creating channels needs
    /// `accept_tos_notice("20601218", "5")` first.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty, over-64-byte or non-printable id or stage;
    /// socket and server errors.
    pub async fn accept_tos_notice(&self, id: &str, stage: &str) -> Result<(), Error> {
        let notice = Node::builder("notice")
            .attr("id", tos_value(id)?.to_owned())
            .attr("stage", tos_value(stage)?.to_owned())
            .build();
        self.query(iq("tos", "set").children([notice]).build())
            .await?;
        Ok(())
    }

    /// The push-notification settings the server holds for this device (whatsmeow's
    /// `GetServerPushNotificationConfig`): `<iq xmlns="urn:xmpp:whatsapp:push"
    /// type="get"><settings/>`; the reply's `<settings>` element (or its first child
    /// when it has none by that name), as given.
    ///
    /// # Errors
    /// Socket and server errors; [`Error::Malformed`] for a reply without a child.
    pub async fn push_config(&self) -> Result<Node, Error> {
        let node = iq("urn:xmpp:whatsapp:push", "get")
            .children([Node::builder("settings").build()])
            .build();
        let reply = self.query(node).await?;
        reply
            .child("settings")
            .or_else(|| reply.children().first())
            .cloned()
            .ok_or_else(|| Error::Malformed("push settings reply without a child"))
    }

    /// Registers this device for push notifications of new messages (whatsmeow's
    /// `RegisterForPushNotifications`): `<iq xmlns="urn:xmpp:whatsapp:push"
    /// type="set"><config .../>` as [`PushConfig::config_node`] builds it. Only needed by
    /// clients that are not connected all the time.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] as for [`PushConfig::config_node`]; socket and server
    /// errors.
    pub async fn register_push(&self, config: &PushConfig) -> Result<(), Error> {
        let node = iq("urn:xmpp:whatsapp:push", "set")
            .children([config.config_node()?])
            .build();
        self.query(node).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_from_links_and_checked() {
        let contact = [CONTACT_QR_LINK_PREFIX, CONTACT_QR_LINK_DIRECT_PREFIX];
        assert_eq!(link_code("ABC123", &contact).unwrap(), "ABC123");
        assert_eq!(
            link_code("https://wa.me/qr/ABC123", &contact).unwrap(),
            "ABC123"
        );
        assert_eq!(
            link_code(" https://api.whatsapp.com/qr/ABC123/?x=1#y ", &contact).unwrap(),
            "ABC123"
        );
        for bad in [
            "",
            "https://wa.me/qr/",
            "https://wa.me/message/ABC",
            "AB C",
            "AB/C",
            "ÄBC",
        ] {
            assert!(
                matches!(link_code(bad, &contact), Err(Error::InvalidRequest(_))),
                "{bad:?}"
            );
        }
        let long = "A".repeat(MAX_LINK_CODE_LEN + 1);
        assert!(link_code(&long, &contact).is_err());
        assert!(link_code(&long[1..], &contact).is_ok());
    }

    #[test]
    fn push_configs_are_encoded_as_whatsmeow_sends_them() {
        let fcm = PushConfig::Fcm {
            token: "tok".into(),
        }
        .config_node()
        .unwrap();
        assert_eq!(fcm.attr::<&str>("id").unwrap(), "tok");
        assert_eq!(fcm.attr::<&str>("num_acc").unwrap(), "1");
        assert_eq!(fcm.attr::<&str>("platform").unwrap(), "gcm");

        let web = PushConfig::WebPush {
            endpoint: "https://push.example/x".into(),
            auth: vec![0xFB; 16],
            p256dh: vec![4, 0xFF, 0xFE],
        }
        .config_node()
        .unwrap();
        assert_eq!(web.attr::<&str>("platform").unwrap(), "web");
        assert_eq!(
            web.attr::<&str>("auth").unwrap(),
            "+/v7+/v7+/v7+/v7+/v7+w=="
        );
        assert_eq!(web.attr::<&str>("p256dh").unwrap(), "BP/+");

        let apns = PushConfig::Apns {
            token: "apn".into(),
            voip_token: None,
            msg_id_enc_key: [0xFF; 32],
        }
        .config_node()
        .unwrap();
        assert_eq!(apns.attr::<&str>("platform").unwrap(), "apple");
        let pkey = apns.attr::<&str>("pkey").unwrap();
        assert!(!pkey.contains('=') && pkey.starts_with("__"), "{pkey}");
        assert!(apns.attr_opt::<&str>("voip").unwrap().is_none());

        for bad in [
            PushConfig::Fcm {
                token: String::new(),
            },
            PushConfig::Fcm {
                token: "x".repeat(MAX_PUSH_VALUE + 1),
            },
            PushConfig::WebPush {
                endpoint: "e".into(),
                auth: Vec::new(),
                p256dh: vec![1],
            },
            PushConfig::Apns {
                token: "t".into(),
                voip_token: Some(String::new()),
                msg_id_enc_key: [0; 32],
            },
        ] {
            assert!(
                matches!(bad.config_node(), Err(Error::InvalidRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn push_config_debug_hides_tokens() {
        let s = format!(
            "{:?}",
            PushConfig::Fcm {
                token: "secret-token".into()
            }
        );
        assert!(!s.contains("secret"), "{s}");
    }

    #[test]
    fn tos_values_are_checked() {
        assert!(tos_value("20601218").is_ok());
        for bad in ["", "a b", "\u{e9}", &"1".repeat(65)] {
            assert!(tos_value(bad).is_err(), "{bad:?}");
        }
    }
}
