//! `w:mex`, WhatsApp's GraphQL over XMPP: an `<iq xmlns="w:mex" type="get">` whose
//! `<query query_id>` child holds `{"variables": {..}}` as JSON, answered by a `<result>`
//! child holding `{"data": {"<path>": ..}}` or `{"errors": [..]}`. Channels, account
//! restrictions and other newer features are operations over it.

use serde_json::{Value, json};
use wa_binary::{Jid, Node};

use crate::Error;

/// A `w:mex` operation: its query id and the field of `data` that holds its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MexOperation {
    /// The `query_id` attribute.
    pub query_id: &'static str,
    /// The key under `data` in the answer.
    pub path: &'static str,
}

/// The `<iq xmlns="w:mex">` with the id `id` for `op` with `variables`.
pub fn build_query(id: &str, op: MexOperation, variables: Value) -> Node {
    let body = json!({ "variables": variables }).to_string();
    Node::builder("iq")
        .attr("id", id.to_owned())
        .attr("type", "get")
        .attr("xmlns", "w:mex")
        .attr("to", Jid::server_jid())
        .children([Node::builder("query")
            .attr("query_id", op.query_id)
            .bytes(body.into_bytes())
            .build()])
        .build()
}

/// The `data.<path>` value of a `w:mex` reply.
///
/// # Errors
/// [`Error::GraphQl`] for an answer with errors, [`Error::UnexpectedResponse`] when the
/// result, its JSON or the path is missing.
pub fn parse_result(reply: &Node, op: MexOperation) -> Result<Value, Error> {
    let result = reply
        .child("result")
        .ok_or_else(|| Error::UnexpectedResponse("mex reply without result"))?;
    let body = result
        .content_bytes()
        .ok_or_else(|| Error::UnexpectedResponse("mex result without body"))?;
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|_| Error::UnexpectedResponse("mex result is not JSON"))?;
    if let Some(errors) = v.get("errors").and_then(Value::as_array)
        && let Some(first) = errors.first()
    {
        let code = first
            .pointer("/extensions/error_code")
            .and_then(number)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(400);
        let message = first
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("unknown error")
            .chars()
            .take(256)
            .collect();
        return Err(Error::GraphQl { code, message });
    }
    match v.get_mut("data").and_then(|d| d.get_mut(op.path)) {
        Some(x) => Ok(x.take()),
        None => Err(Error::UnexpectedResponse(
            "mex result without the operation's data",
        )),
    }
}

/// A number that may be sent as a JSON number or as a decimal string.
pub fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}
