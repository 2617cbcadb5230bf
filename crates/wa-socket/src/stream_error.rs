//! Classifying the server's end-of-session stanzas into a [`DisconnectReason`].

use wa_binary::Node;
use wa_types::DisconnectReason;

/// What a `<stream:error>`, `<failure>` or `<xmlstreamend>` node means for the connection,
/// or `None` when the node is none of those.
pub fn disconnect_reason(node: &Node) -> Option<DisconnectReason> {
    match node.tag() {
        "stream:error" => Some(stream_error(node)),
        "failure" => {
            let code = node.attr_opt::<u64>("reason").ok().flatten().unwrap_or(0);
            Some(DisconnectReason::from_code(
                u16::try_from(code).unwrap_or(u16::MAX),
            ))
        }
        "xmlstreamend" => Some(DisconnectReason::ConnectionClosed),
        _ => None,
    }
}

fn stream_error(node: &Node) -> DisconnectReason {
    let code = node.attr_opt::<u64>("code").ok().flatten();
    let conflict = node
        .child("conflict")
        .and_then(|c| c.attr_opt::<&str>("type").ok().flatten());
    match (code, conflict) {
        (_, Some("replaced")) => DisconnectReason::Replaced,
        (_, Some("device_removed")) => DisconnectReason::LoggedOut,
        (Some(c), _) => DisconnectReason::from_code(u16::try_from(c).unwrap_or(u16::MAX)),
        // A stream error with neither a code nor a known conflict: treat as a bad
        // session and let the backoff reconnect.
        (None, _) => DisconnectReason::BadSession,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_err(code: Option<&str>, conflict: Option<&str>) -> Node {
        let mut b = Node::builder("stream:error");
        if let Some(c) = code {
            b = b.attr("code", c.to_owned());
        }
        if let Some(t) = conflict {
            b = b.children([Node::builder("conflict").attr("type", t.to_owned()).build()]);
        }
        b.build()
    }

    #[test]
    fn stream_errors() {
        assert_eq!(
            disconnect_reason(&stream_err(Some("515"), None)),
            Some(DisconnectReason::RestartRequired)
        );
        assert_eq!(
            disconnect_reason(&stream_err(None, Some("replaced"))),
            Some(DisconnectReason::Replaced)
        );
        assert_eq!(
            disconnect_reason(&stream_err(Some("401"), Some("device_removed"))),
            Some(DisconnectReason::LoggedOut)
        );
        assert_eq!(
            disconnect_reason(&stream_err(Some("503"), None)),
            Some(DisconnectReason::ServiceUnavailable)
        );
        assert_eq!(
            disconnect_reason(&stream_err(None, None)),
            Some(DisconnectReason::BadSession)
        );
    }

    #[test]
    fn failures_and_stream_end() {
        let failure = |r: &str| {
            Node::builder("failure")
                .attr("reason", r.to_owned())
                .build()
        };
        assert_eq!(
            disconnect_reason(&failure("401")),
            Some(DisconnectReason::LoggedOut)
        );
        assert_eq!(
            disconnect_reason(&failure("405")),
            Some(DisconnectReason::ClientOutdated)
        );
        assert_eq!(
            disconnect_reason(&failure("70000")),
            Some(DisconnectReason::Other(u16::MAX))
        );
        assert_eq!(
            disconnect_reason(&Node::new("xmlstreamend")),
            Some(DisconnectReason::ConnectionClosed)
        );
        assert_eq!(disconnect_reason(&Node::new("iq")), None);
    }
}
