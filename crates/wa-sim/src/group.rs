//! Groups (`w:g2`): not built yet.

use wa_binary::{Jid, Node};

use crate::route::server_ack;
use crate::sim::Shared;

/// Routes a group `<message>`.
pub(crate) fn route_group_message(
    _shared: &Shared,
    _sender: &Jid,
    _node: &Node,
    id: &str,
    to: &Jid,
) -> Node {
    server_ack("message", id, Some(to.clone()), Some(501))
}
