//! Reporting tokens the server keeps.
//!
//! A client attaches `<reporting><reporting_token v="2">` (16 bytes) to the messages it
//! sends; the server cannot check it (it never sees the message secret) but keeps it, so
//! that a report of the message can be checked against the content the reporter hands
//! over. The simulator keeps the newest tokens, bounded, for tests to compare.

use std::collections::{HashMap, VecDeque};

use wa_binary::{Node, Str};

/// Length of a reporting token.
const TOKEN_LEN: usize = 16;
/// Tokens kept at most; the oldest go first.
const CAPACITY: usize = 65_536;

/// The token of a `<message>` stanza: the bytes of
/// `<reporting><reporting_token v="2">`, if present and 16 bytes long.
pub(crate) fn token_of(message: &Node) -> Option<&[u8]> {
    let token = message.child("reporting")?.child("reporting_token")?;
    let version = token.attr_opt::<&str>("v").ok().flatten();
    token
        .content_bytes()
        .filter(|b| b.len() == TOKEN_LEN && version == Some("2"))
}

/// Tokens by (sender's user, message id). Both fit inline in a `Str`, so keeping a
/// token allocates nothing beyond the maps' own growth.
#[derive(Default)]
pub(crate) struct ReportingTokens {
    tokens: HashMap<(Str, Str), [u8; TOKEN_LEN], crate::route::FastHash>,
    order: VecDeque<(Str, Str)>,
}

impl ReportingTokens {
    /// Keeps the token of message `id` from `sender_user` (a newer one for the same
    /// message replaces it).
    pub(crate) fn record(&mut self, sender_user: &str, id: &str, token: &[u8]) {
        let Ok(token) = <[u8; TOKEN_LEN]>::try_from(token) else {
            return;
        };
        let key = (Str::copy_from(sender_user), Str::copy_from(id));
        if self.tokens.insert(key.clone(), token).is_none() {
            self.order.push_back(key);
            while self.order.len() > CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.tokens.remove(&old);
                }
            }
        }
    }

    /// The token kept for message `id` from `sender_user`.
    pub(crate) fn get(&self, sender_user: &str, id: &str) -> Option<Vec<u8>> {
        self.tokens
            .get(&(Str::copy_from(sender_user), Str::copy_from(id)))
            .map(|t| t.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tokens_are_read() {
        let stanza = |v: &str, len: usize| {
            Node::builder("message")
                .children([Node::builder("reporting")
                    .children([Node::builder("reporting_token")
                        .attr("v", v.to_owned())
                        .bytes(vec![7u8; len])
                        .build()])
                    .build()])
                .build()
        };
        assert_eq!(token_of(&stanza("2", 16)), Some(&[7u8; 16][..]));
        assert_eq!(token_of(&stanza("2", 15)), None);
        assert_eq!(token_of(&stanza("3", 16)), None);
        assert_eq!(token_of(&Node::builder("message").build()), None);
    }

    #[test]
    fn the_oldest_tokens_go_first() {
        let mut t = ReportingTokens::default();
        for i in 0..=CAPACITY {
            t.record("1555", &i.to_string(), &[1u8; 16]);
        }
        assert_eq!(t.get("1555", "0"), None);
        assert_eq!(t.get("1555", "1"), Some(vec![1u8; 16]));
        assert_eq!(t.get("1555", &CAPACITY.to_string()), Some(vec![1u8; 16]));
        t.record("1555", "1", &[2u8; 16]);
        assert_eq!(t.get("1555", "1"), Some(vec![2u8; 16]));
        t.record("1555", "short", &[2u8; 3]);
        assert_eq!(t.get("1555", "short"), None);
    }
}
