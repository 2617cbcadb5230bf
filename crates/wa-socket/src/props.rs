//! Server-assigned AB props (`<iq xmlns="abt" type="get"><props protocol="1"/>`): the
//! server's switches for protocol behaviour, fetched after each login as WhatsApp Web and
//! Baileys do. Three of them steer privacy tokens; the rest are kept for callers.

use std::collections::BTreeMap;

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
    /// Every prop of the reply, by code or name.
    pub props: BTreeMap<String, String>,
}

impl Default for ServerProps {
    fn default() -> Self {
        Self {
            privacy_token_on_1to1: true,
            profile_pic_privacy_token: true,
            lid_trusted_token_issue_to_lid: false,
            hash: None,
            props: BTreeMap::new(),
        }
    }
}

impl ServerProps {
    /// A prop's value by code (e.g. `"10518"`) or name.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.props.get(key).map(String::as_str)
    }

    /// The switch named by `code` or `name`: `true` for `"true"` or `"1"`, `false` for
    /// anything else, `default` when the server sent neither.
    fn flag(&self, code: &str, name: &str, default: bool) -> bool {
        self.get(code)
            .or_else(|| self.get(name))
            .map_or(default, |v| v == "true" || v == "1")
    }
}

/// The props query.
pub(crate) fn props_query() -> Node {
    crate::socket::server_iq(
        "abt",
        "get",
        Node::builder("props").attr("protocol", "1").build(),
    )
}

/// Reads a props reply: `<props [hash]><prop config_code|name config_value|value/>..`.
/// A reply without `<props>` gives the defaults.
///
/// # Errors
/// [`Error::UnexpectedResponse`] for more than [`MAX_PROPS`] props or an over-long name
/// or value.
pub fn parse_props(reply: &Node) -> Result<ServerProps, Error> {
    let mut out = ServerProps::default();
    let Some(props) = reply.child("props") else {
        return Ok(out);
    };
    if props.children().len() > MAX_PROPS {
        return Err(Error::UnexpectedResponse("too many props"));
    }
    let text = |n: &Node, a: &str| n.attr_opt::<&str>(a).ok().flatten().map(str::to_owned);
    out.hash = text(props, "hash").filter(|h| h.len() <= MAX_PROP_LEN);
    for p in props.children_by_tag("prop") {
        let name = text(p, "config_code").or_else(|| text(p, "name"));
        let value = text(p, "config_value").or_else(|| text(p, "value"));
        let (Some(name), Some(value)) = (name, value) else {
            continue;
        };
        if name.len() > MAX_PROP_LEN || value.len() > MAX_PROP_LEN {
            return Err(Error::UnexpectedResponse("over-long prop"));
        }
        out.props.insert(name, value);
    }
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
    Ok(out)
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
