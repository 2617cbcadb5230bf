//! Server-assigned AB props (`<iq xmlns="abt" type="get"><props protocol="1"/>`): the
//! server's switches for protocol behaviour, fetched after each login as WhatsApp Web and
//! Baileys do. Three of them steer privacy tokens; the rest are kept for callers.

use std::collections::BTreeMap;
use std::sync::Arc;

use wa_binary::Node;

use crate::Error;

/// Most props kept from one reply.
pub const MAX_PROPS: usize = 4_096;

/// Longest prop name or value kept, in bytes.
const MAX_PROP_LEN: usize = 1_024;

/// AB prop 10518: attach the contact's privacy token to 1:1 messages.
pub const PROP_PRIVACY_TOKEN_ON_1TO1: &str = "10518";
/// AB prop 9666: attach the privacy token to profile-picture queries.
pub const PROP_PROFILE_PIC_PRIVACY_TOKEN: &str = "9666";
/// AB prop 14303: issue our privacy token to a contact's LID rather than its number.
pub const PROP_LID_TRUSTED_TOKEN_ISSUE_TO_LID: &str = "14303";

/// The server's AB props. Until a reply says otherwise, the switches hold WhatsApp Web's
/// defaults (tokens on 1:1 messages and picture queries, issued to phone numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerProps {
    /// Attach the contact's privacy token to 1:1 messages (prop 10518).
    pub privacy_token_on_1to1: bool,
    /// Attach the contact's privacy token to profile-picture queries (prop 9666).
    pub profile_pic_privacy_token: bool,
    /// Issue our privacy token to the contact's LID instead of its number (prop 14303).
    pub lid_trusted_token_issue_to_lid: bool,
    /// The hash the server gave the set of props, when it did.
    pub hash: Option<String>,
    /// Every prop of the reply, by code or name. Shared, so copies of the props (one
    /// per send that checks a switch) do not copy the map.
    pub props: Arc<BTreeMap<String, String>>,
}

impl Default for ServerProps {
    fn default() -> Self {
        Self {
            privacy_token_on_1to1: true,
            profile_pic_privacy_token: true,
            lid_trusted_token_issue_to_lid: false,
            hash: None,
            props: Arc::default(),
        }
    }
}

impl ServerProps {
    /// A prop's value by code (e.g. `"10518"`) or name.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.props.get(key).map(String::as_str)
    }

    /// The props `props` under `hash`, with the switches they set (WhatsApp Web's
    /// defaults where they say nothing).
    pub fn from_props(hash: Option<String>, props: Arc<BTreeMap<String, String>>) -> Self {
        let mut out = Self {
            hash,
            props,
            ..Self::default()
        };
        out.privacy_token_on_1to1 = out.flag(
            PROP_PRIVACY_TOKEN_ON_1TO1,
            "privacy_token_sending_on_all_1_on_1_messages",
            true,
        );
        out.profile_pic_privacy_token = out.flag(
            PROP_PROFILE_PIC_PRIVACY_TOKEN,
            "profile_scraping_privacy_token_in_photo_iq",
            true,
        );
        out.lid_trusted_token_issue_to_lid = out.flag(
            PROP_LID_TRUSTED_TOKEN_ISSUE_TO_LID,
            "lid_trusted_token_issue_to_lid",
            false,
        );
        out
    }

    /// The switch named by `code` or `name`: `true` for `"true"` or `"1"`, `false` for
    /// anything else, `default` when the server sent neither.
    fn flag(&self, code: &str, name: &str, default: bool) -> bool {
        self.get(code)
            .or_else(|| self.get(name))
            .map_or(default, |v| v == "true" || v == "1")
    }
}

/// The props query; with the hash of the props we hold, so the server may answer with
/// only what changed.
pub(crate) fn props_query(hash: Option<&str>) -> Node {
    crate::socket::server_iq(
        "abt",
        "get",
        Node::builder("props")
            .attr("protocol", "1")
            .attr_opt("hash", hash.map(str::to_owned))
            .build(),
    )
}

/// The props after a reply to a query that sent `sent_hash` while holding `current`: an
/// answer without `<props>`, or one naming no prop under the hash we sent, leaves them
/// as they are; one marked `delta_update` changes the props it names; any other
/// replaces them all.
///
/// # Errors
/// As [`parse_props`].
pub(crate) fn apply_props_reply(
    current: &ServerProps,
    sent_hash: Option<&str>,
    reply: &Node,
) -> Result<ServerProps, Error> {
    let Some(node) = reply.child("props") else {
        return Ok(current.clone());
    };
    let got = parse_props(reply)?;
    let unchanged = sent_hash.is_some()
        && got.props.is_empty()
        && got.hash.as_deref().is_none_or(|h| Some(h) == sent_hash);
    if unchanged {
        return Ok(current.clone());
    }
    if node.attr_opt::<&str>("delta_update").ok().flatten() == Some("true") {
        let mut props = (*current.props).clone();
        props.extend(got.props.iter().map(|(k, v)| (k.clone(), v.clone())));
        if props.len() > MAX_PROPS {
            return Err(Error::UnexpectedResponse("too many props"));
        }
        return Ok(ServerProps::from_props(
            got.hash.or(current.hash.clone()),
            Arc::new(props),
        ));
    }
    Ok(got)
}

/// Reads a props reply: `<props [hash]><prop config_code|name config_value|value/>..`.
/// A reply without `<props>` gives the defaults.
///
/// # Errors
/// [`Error::UnexpectedResponse`] for more than [`MAX_PROPS`] props or an over-long name
/// or value.
pub fn parse_props(reply: &Node) -> Result<ServerProps, Error> {
    let Some(props) = reply.child("props") else {
        return Ok(ServerProps::default());
    };
    if props.children().len() > MAX_PROPS {
        return Err(Error::UnexpectedResponse("too many props"));
    }
    let text = |n: &Node, a: &str| n.attr_opt::<&str>(a).ok().flatten().map(str::to_owned);
    let hash = text(props, "hash").filter(|h| h.len() <= MAX_PROP_LEN);
    let mut map = BTreeMap::new();
    for p in props.children_by_tag("prop") {
        let name = text(p, "config_code").or_else(|| text(p, "name"));
        let value = text(p, "config_value").or_else(|| text(p, "value"));
        let (Some(name), Some(value)) = (name, value) else {
            continue;
        };
        if name.len() > MAX_PROP_LEN || value.len() > MAX_PROP_LEN {
            return Err(Error::UnexpectedResponse("over-long prop"));
        }
        map.insert(name, value);
    }
    Ok(ServerProps::from_props(hash, Arc::new(map)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(code: &str, value: &str) -> Node {
        Node::builder("prop")
            .attr("config_code", code.to_owned())
            .attr("config_value", value.to_owned())
            .build()
    }

    fn reply(children: Vec<Node>) -> Node {
        Node::builder("iq")
            .attr("type", "result")
            .children([Node::builder("props")
                .attr("hash", "abc")
                .children(children)
                .build()])
            .build()
    }

    #[test]
    fn switches_follow_codes_or_names_with_web_defaults() {
        let none = parse_props(&Node::builder("iq").build()).unwrap();
        assert_eq!(none, ServerProps::default());
        assert!(none.privacy_token_on_1to1 && none.profile_pic_privacy_token);
        assert!(!none.lid_trusted_token_issue_to_lid);

        let p = parse_props(&reply(vec![
            prop("10518", "false"),
            prop("9666", "0"),
            prop("14303", "1"),
            prop("123", "x"),
        ]))
        .unwrap();
        assert!(!p.privacy_token_on_1to1);
        assert!(!p.profile_pic_privacy_token);
        assert!(p.lid_trusted_token_issue_to_lid);
        assert_eq!(p.get("123"), Some("x"));
        assert_eq!(p.hash.as_deref(), Some("abc"));

        let named = parse_props(&reply(vec![
            Node::builder("prop")
                .attr("name", "lid_trusted_token_issue_to_lid")
                .attr("value", "true")
                .build(),
        ]))
        .unwrap();
        assert!(named.lid_trusted_token_issue_to_lid);
    }

    #[test]
    fn hostile_replies_are_refused() {
        let many: Vec<Node> = (0..=MAX_PROPS).map(|i| prop(&i.to_string(), "1")).collect();
        assert!(parse_props(&reply(many)).is_err());
        let long = "x".repeat(MAX_PROP_LEN + 1);
        assert!(parse_props(&reply(vec![prop("1", &long)])).is_err());
        // Props without a name or value are skipped.
        let p = parse_props(&reply(vec![Node::builder("prop").build()])).unwrap();
        assert!(p.props.is_empty());
    }
}

#[cfg(test)]
mod reply_tests {
    use super::*;

    fn reply(hash: Option<&str>, delta: bool, props: &[(&str, &str)]) -> Node {
        Node::builder("iq")
            .attr("type", "result")
            .children([Node::builder("props")
                .attr_opt("hash", hash.map(str::to_owned))
                .attr_opt("delta_update", delta.then(|| "true".to_owned()))
                .children(props.iter().map(|(k, v)| {
                    Node::builder("prop")
                        .attr("config_code", (*k).to_owned())
                        .attr("config_value", (*v).to_owned())
                        .build()
                }))
                .build()])
            .build()
    }

    fn held() -> ServerProps {
        ServerProps::from_props(
            Some("h1".into()),
            Arc::new(
                [
                    ("10518".to_owned(), "false".to_owned()),
                    ("7".to_owned(), "x".to_owned()),
                ]
                .into(),
            ),
        )
    }

    #[test]
    fn an_unchanged_answer_keeps_what_we_hold() {
        let current = held();
        assert!(!current.privacy_token_on_1to1);
        for r in [
            reply(Some("h1"), false, &[]),
            reply(None, false, &[]),
            Node::builder("iq").attr("type", "result").build(),
        ] {
            assert_eq!(
                apply_props_reply(&current, Some("h1"), &r).unwrap(),
                current
            );
        }
    }

    #[test]
    fn a_delta_changes_only_what_it_names_and_a_full_answer_replaces() {
        let current = held();
        let delta = reply(Some("h2"), true, &[("10518", "true"), ("8", "y")]);
        let next = apply_props_reply(&current, Some("h1"), &delta).unwrap();
        assert_eq!(next.hash.as_deref(), Some("h2"));
        assert!(next.privacy_token_on_1to1);
        assert_eq!(next.get("7"), Some("x"));
        assert_eq!(next.get("8"), Some("y"));

        let full = reply(Some("h3"), false, &[("9666", "0")]);
        let next = apply_props_reply(&current, Some("h1"), &full).unwrap();
        assert_eq!(next.hash.as_deref(), Some("h3"));
        assert_eq!(next.get("7"), None);
        assert!(next.privacy_token_on_1to1, "back to the default");
        assert!(!next.profile_pic_privacy_token);

        // Without a hash sent, an empty answer is the whole (empty) set.
        let empty = reply(Some("h4"), false, &[]);
        let next = apply_props_reply(&current, None, &empty).unwrap();
        assert!(next.props.is_empty());
    }
}
