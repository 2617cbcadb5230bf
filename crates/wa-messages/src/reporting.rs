//! Reporting tokens (`<reporting><reporting_token v="2">`).
//!
//! A sent message carries a 16-byte token that binds the parts of its content WhatsApp
//! looks at when the recipient reports the message: HMAC-SHA256 under a key derived from
//! the message secret, over a canonical extract of the encoded `Message` (selected fields,
//! in field-number order, with nested messages reduced the same way). The server cannot
//! compute it (it never sees the secret); a recipient that reports the message hands over
//! the content and secret, and the token shows the content is what the sender sent.
//!
//! Sends from [`Messenger`](crate::Messenger) attach it to 1:1, group and status messages
//! whose `messageContextInfo.messageSecret` is set (the [`MessageBuilder`](crate::MessageBuilder)
//! sets one on everything but reactions and poll votes), unless
//! [`MessengerConfig::reporting_tokens`](crate::MessengerConfig::reporting_tokens) is off.
//! Retry resends and peer messages carry none.

use wa_binary::{Jid, Node};
use wa_proto::e2e::Message;

/// The `v` attribute of `<reporting_token>`: the version of the field table below.
pub const REPORTING_TOKEN_VERSION: &str = "2";
/// Length of a reporting token in bytes.
pub const REPORTING_TOKEN_LEN: usize = 16;
/// The use-case label mixed into the key derivation.
const LABEL: &[u8] = b"Report Token";

/// One entry of the field table: a field kept in the extract. A nested message (wire type
/// 2) with sub-fields, or marked `message`, is reduced to those sub-fields (a marked one
/// without sub-fields keeps nothing of its own); any other kept field is copied whole.
struct Field {
    number: u64,
    message: bool,
    sub: &'static [Field],
}

const fn keep(number: u64) -> Field {
    Field {
        number,
        message: false,
        sub: &[],
    }
}

const fn nested(number: u64, sub: &'static [Field]) -> Field {
    Field {
        number,
        message: false,
        sub,
    }
}

const fn marked(number: u64) -> Field {
    Field {
        number,
        message: true,
        sub: &[],
    }
}

/// `contextInfo` (field 17 of most content messages): only its fields 21 and 22.
const CONTEXT: Field = nested(17, &[keep(21), keep(22)]);
/// The shared shape of the poll creation messages (fields 49, 60 and 64).
const POLL: &[Field] = &[
    keep(2),
    nested(3, &[keep(1), keep(2)]),
    nested(5, &[keep(21), keep(22)]),
    nested(8, &[keep(1), keep(2)]),
];
/// Wrappers whose payload contributes nothing of its own (view-once, ephemeral and the
/// like).
const WRAPPED: &[Field] = &[marked(1)];

/// Field table of `Message`, version 2 (WhatsApp Web's list of reportable content).
static FIELDS: &[Field] = &[
    keep(1),
    nested(3, &[keep(2), keep(3), keep(8), keep(11), CONTEXT, keep(25)]),
    nested(4, &[keep(1), keep(16), CONTEXT]),
    nested(5, &[keep(3), keep(4), keep(5), keep(16), CONTEXT]),
    nested(6, &[keep(1), CONTEXT, keep(30)]),
    nested(7, &[keep(2), keep(7), keep(10), CONTEXT, keep(20)]),
    nested(8, &[keep(2), keep(7), keep(9), CONTEXT, keep(21)]),
    nested(9, &[keep(2), keep(6), keep(7), keep(13), CONTEXT, keep(20)]),
    nested(12, &[keep(1), keep(2), marked(14), keep(15)]),
    nested(18, &[keep(6), keep(16), CONTEXT]),
    nested(26, &[keep(4), keep(5), keep(8), keep(13), CONTEXT]),
    nested(
        28,
        &[
            keep(1),
            keep(2),
            keep(4),
            keep(5),
            keep(6),
            nested(7, &[keep(21), keep(22)]),
        ],
    ),
    nested(37, WRAPPED),
    nested(49, POLL),
    nested(53, WRAPPED),
    nested(55, WRAPPED),
    nested(58, WRAPPED),
    nested(59, WRAPPED),
    nested(60, POLL),
    nested(64, POLL),
    nested(
        66,
        &[keep(2), keep(6), keep(7), keep(13), CONTEXT, keep(20)],
    ),
    nested(74, WRAPPED),
    nested(87, WRAPPED),
    nested(
        88,
        &[
            keep(1),
            nested(2, &[keep(1)]),
            nested(3, &[keep(21), keep(22)]),
        ],
    ),
    nested(92, WRAPPED),
    nested(93, WRAPPED),
    nested(94, WRAPPED),
];

/// Whether a message of this content gets a reporting token: everything except reactions
/// (plain or encrypted), encrypted event responses and poll votes.
pub fn should_include_reporting_token(message: &Message) -> bool {
    message.reaction_message.is_none()
        && message.enc_reaction_message.is_none()
        && message.enc_event_response_message.is_none()
        && message.poll_update_message.is_none()
}

/// The canonical extract of an encoded `Message` that a reporting token covers, or `None`
/// when the bytes are not a well-formed protobuf message (truncated, a group wire type,
/// an over-long varint). Never longer than the input.
pub fn reporting_content(plaintext: &[u8]) -> Option<Vec<u8>> {
    extract(plaintext, FIELDS)
}

/// The reporting token of the encoded (unpadded) `plaintext` of message `message_id`,
/// sent by `sender` in `chat` (device parts are ignored), keyed by the message's
/// `message_secret`. `None` when the extract is empty (nothing reportable: no token is
/// sent), the bytes are malformed, or the secret is empty.
///
/// Key: HKDF-SHA256 without salt over the secret, info = id ‖ sender ‖ chat ‖
/// `"Report Token"`, 32 bytes; token: the first 16 bytes of HMAC-SHA256 of the extract.
pub fn reporting_token(
    plaintext: &[u8],
    message_secret: &[u8],
    message_id: &str,
    sender: &Jid,
    chat: &Jid,
) -> Option<[u8; REPORTING_TOKEN_LEN]> {
    if message_secret.is_empty() {
        return None;
    }
    let content = reporting_content(plaintext)?;
    if content.is_empty() {
        return None;
    }
    let sender = sender.to_non_ad().to_string();
    let chat = chat.to_non_ad().to_string();
    let mut info = Vec::with_capacity(message_id.len() + sender.len() + chat.len() + LABEL.len());
    info.extend_from_slice(message_id.as_bytes());
    info.extend_from_slice(sender.as_bytes());
    info.extend_from_slice(chat.as_bytes());
    info.extend_from_slice(LABEL);
    let key = wa_crypto::hkdf_sha256(message_secret, None, &info, 32).ok()?;
    let full = wa_crypto::hmac_sha256(&key, &content);
    let mut token = [0u8; REPORTING_TOKEN_LEN];
    token.copy_from_slice(&full[..REPORTING_TOKEN_LEN]);
    Some(token)
}

/// `<reporting><reporting_token v="2">token</reporting_token></reporting>`.
pub(crate) fn reporting_node(token: [u8; REPORTING_TOKEN_LEN]) -> Node {
    Node::builder("reporting")
        .children([Node::builder("reporting_token")
            .attr("v", REPORTING_TOKEN_VERSION)
            .bytes(token.to_vec())
            .build()])
        .build()
}

/// The token node for a send of the `encoded` message with id `message_id` by us in `chat` (named
/// by our LID when the chat is LID-addressed, `lid_chat`), when sends carry tokens, the
/// message has a secret and its content is reportable.
pub(crate) fn for_send(
    inner: &crate::messenger::Inner,
    me: &crate::messenger::Me,
    lid_chat: bool,
    encoded: &crate::framing::Encoded<'_>,
    message_id: &str,
    chat: &Jid,
) -> Option<Node> {
    let message = encoded.message();
    if !inner.config.reporting_tokens || !should_include_reporting_token(message) {
        return None;
    }
    let sender = match &me.lid {
        Some(lid) if lid_chat => lid,
        _ => &me.pn,
    };
    let secret = message
        .message_context_info
        .as_ref()
        .and_then(|c| c.message_secret.as_deref())?;
    reporting_token(encoded.bytes(), secret, message_id, sender, chat).map(reporting_node)
}

/// Reads a varint at `*pos` (at most 10 bytes), advancing `*pos`.
fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *data.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The extract of one message level under `table`. Recursion follows the table, so its
/// depth is bounded by the table's (three levels).
fn extract(data: &[u8], table: &[Field]) -> Option<Vec<u8>> {
    let mut kept: Vec<(u64, std::ops::Range<usize>, Option<Vec<u8>>)> = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let start = pos;
        let tag = varint(data, &mut pos)?;
        let number = tag >> 3;
        let field = table.iter().find(|f| f.number == number);
        let end = match tag & 7 {
            0 => {
                varint(data, &mut pos)?;
                pos
            }
            1 => pos.checked_add(8)?,
            5 => pos.checked_add(4)?,
            2 => {
                let len = usize::try_from(varint(data, &mut pos)?).ok()?;
                let value_end = pos.checked_add(len)?;
                if value_end > data.len() {
                    return None;
                }
                if let Some(f) = field
                    && (f.message || !f.sub.is_empty())
                {
                    let sub = extract(&data[pos..value_end], f.sub)?;
                    if !sub.is_empty() {
                        let mut bytes = Vec::with_capacity(sub.len() + 12);
                        put_varint(&mut bytes, tag);
                        put_varint(&mut bytes, sub.len() as u64);
                        bytes.extend_from_slice(&sub);
                        kept.push((number, 0..0, Some(bytes)));
                    }
                    pos = value_end;
                    continue;
                }
                value_end
            }
            _ => return None,
        };
        if end > data.len() {
            return None;
        }
        if field.is_some() {
            kept.push((number, start..end, None));
        }
        pos = end;
    }
    // Stable: repeated fields keep their order.
    kept.sort_by_key(|(number, _, _)| *number);
    let mut out = Vec::with_capacity(data.len());
    for (_, range, owned) in kept {
        match owned {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => out.extend_from_slice(&data[range]),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlisted_fields_are_dropped_and_kept_ones_sorted() {
        // field 35 (messageContextInfo, not listed) then field 1 (conversation).
        let data = [0x9a, 0x02, 0x02, 0x10, 0x02, 0x0a, 0x02, b'h', b'i'];
        assert_eq!(
            reporting_content(&data).unwrap(),
            vec![0x0a, 0x02, b'h', b'i']
        );
        // field 3 keeps only sub-field 2 of its sub-message; re-encoded with the new length.
        let data = [
            0x1a, 0x06, 0x12, 0x01, b'x', 0x0a, 0x01, b'y', 0x0a, 0x01, b'z',
        ];
        assert_eq!(
            reporting_content(&data).unwrap(),
            vec![0x0a, 0x01, b'z', 0x1a, 0x03, 0x12, 0x01, b'x']
        );
    }

    #[test]
    fn malformed_input_is_refused() {
        for bad in [
            &[0x0a][..],         // tag without length
            &[0x0a, 0x05, b'a'], // length past the end
            &[0x0b],             // start group wire type
            &[0x08],             // varint missing
            &[0x09, 1, 2, 3],    // fixed64 cut short
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ] {
            assert_eq!(reporting_content(bad), None, "{bad:x?}");
        }
        assert_eq!(reporting_content(&[]), Some(Vec::new()));
    }
}
