//! The `<ack>` a client sends for a stanza it received and will not answer otherwise.

use wa_binary::{Jid, Node};

/// The `<ack>` for `node`: `class` is its tag, `id` and `type` are copied, `to` is its
/// `from`, and `participant` is copied when present. Layers that subscribe to
/// notifications send this for each one they take over from the socket.
pub fn ack_for(node: &Node) -> Node {
    ack_builder(node).build()
}

/// The `<ack class="message">` for the message `node`, as WhatsApp Web sends it: as
/// [`ack_for`], with its `recipient`, our device as `from` (`me`, when known) and, for a
/// refusal, the `error` code (e.g. 500, a message the client could not handle).
pub fn message_ack(node: &Node, me: Option<&Jid>, error: Option<u16>) -> Node {
    ack_builder(node)
        .attr_opt("recipient", node.get_attr("recipient").cloned())
        .attr_opt("error", error.map(|e| e.to_string()))
        .attr_opt("from", me)
        .build()
}

fn ack_builder(node: &Node) -> wa_binary::NodeBuilder {
    let attr = |k: &str| node.get_attr(k).cloned();
    Node::builder("ack")
        .attr("class", node.tag().to_owned())
        .attr_opt("id", attr("id"))
        .attr_opt("type", attr("type"))
        .attr_opt("to", attr("from"))
        .attr_opt("participant", attr("participant"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_mirrors_the_notification() {
        let n = Node::builder("notification")
            .attr("id", "N1")
            .attr("type", "devices")
            .attr("from", Jid::pn("123"))
            .build();
        let a = ack_for(&n);
        assert_eq!(a.tag(), "ack");
        assert_eq!(a.attr::<&str>("class").unwrap(), "notification");
        assert_eq!(a.attr::<&str>("id").unwrap(), "N1");
        assert_eq!(a.attr::<&str>("type").unwrap(), "devices");
        assert_eq!(a.attr::<Jid>("to").unwrap(), Jid::pn("123"));
        assert!(a.get_attr("participant").is_none());
        let g = Node::builder("notification")
            .attr("from", Jid::group("1-2"))
            .attr("participant", Jid::pn("9"))
            .build();
        assert_eq!(
            ack_for(&g).attr::<Jid>("participant").unwrap(),
            Jid::pn("9")
        );
    }

    #[test]
    fn a_message_nack_names_our_device_when_known() {
        let m = Node::builder("message")
            .attr("id", "M1")
            .attr("from", Jid::pn("123"))
            .attr("recipient", Jid::pn("456"))
            .build();
        let me = Jid::with_device("789", wa_binary::Server::Pn, 4);
        let n = message_ack(&m, Some(&me), Some(500));
        assert_eq!(n.attr::<&str>("class").unwrap(), "message");
        assert_eq!(n.attr::<&str>("error").unwrap(), "500");
        assert_eq!(n.attr::<Jid>("recipient").unwrap(), Jid::pn("456"));
        assert_eq!(n.attr::<Jid>("from").unwrap(), me);
        assert!(message_ack(&m, None, Some(500)).get_attr("from").is_none());
        assert!(message_ack(&m, Some(&me), None).get_attr("error").is_none());
    }
}
