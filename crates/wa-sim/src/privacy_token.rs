//! Trusted-contact privacy tokens: a client issues its token to a contact with
//! `<iq xmlns="privacy" type="set"><tokens><token jid t type="trusted_contact"/>`; the
//! server mints the token and hands it to the contact's companions in a
//! `<notification type="privacy_token">` (queued for those offline). Companions of a
//! restricted account ([`Sim::restrict_account`](crate::Sim::restrict_account)) need a
//! valid `<tctoken>` from the other user for 1:1 messages (else error 463), presence
//! subscriptions (else ignored) and profile-picture queries (else 401). The `<cstoken>`
//! a 1:1 message carries instead of a `<tctoken>` is kept per (sender, recipient) account
//! ([`Sim::cstoken`](crate::Sim::cstoken)); the server cannot check it (it is keyed by a
//! salt only the account's devices hold). Saved in the state file ([`TokenFile`]).

use std::collections::{BTreeMap, BTreeSet};

use rand_core::{OsRng, RngCore};
use wa_binary::{Jid, Node};

use crate::route::{self, resolve_user};
use crate::sim::{Shared, fresh_id, unix_now};

/// Length of one token bucket (7 days) and the number of buckets a token is valid for.
const BUCKET_SECS: u64 = 604_800;
const BUCKETS: u64 = 4;
/// Most `<token>` entries taken from one issuing iq.
const MAX_TOKENS_PER_IQ: usize = 64;
/// How far a client's `t` may be from the server's clock before the server's is used.
const MAX_SKEW_SECS: u64 = 86_400;

/// The tokens minted, and the restricted accounts.
#[derive(Default)]
pub(crate) struct TokenState {
    /// (issuer phone, recipient phone) -> (token, issue time).
    tokens: BTreeMap<(String, String), (Vec<u8>, u64)>,
    /// Accounts whose companions need a token to message a user.
    restricted: BTreeSet<String>,
    /// How many tokens were minted.
    issued: u64,
    /// (sender phone, recipient phone) -> the last `<cstoken>` seen.
    cstokens: BTreeMap<(String, String), Vec<u8>>,
    /// (asker phone, account asked about) -> the `<tctoken>` the last usync query naming
    /// that account carried. In memory only (not in the state file).
    usync_tokens: BTreeMap<(String, String), Vec<u8>>,
}

/// Most bytes of a usync `<tctoken>` kept.
const MAX_USYNC_TOKEN: usize = 256;

/// Longest token or cstoken a state file may hold.
const MAX_SAVED_TOKEN: usize = 4096;

/// [`TokenState`] in the state file (tokens in hex).
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct TokenFile {
    /// (issuer phone, recipient phone, token, issue time)
    tokens: Vec<(String, String, String, u64)>,
    restricted: Vec<String>,
    issued: u64,
    /// (sender phone, recipient phone, cstoken)
    cstokens: Vec<(String, String, String)>,
}

impl TokenState {
    pub(crate) fn to_file(&self) -> TokenFile {
        TokenFile {
            tokens: self
                .tokens
                .iter()
                .map(|((i, r), (t, at))| (i.clone(), r.clone(), hex::encode(t), *at))
                .collect(),
            restricted: self.restricted.iter().cloned().collect(),
            issued: self.issued,
            cstokens: self
                .cstokens
                .iter()
                .map(|((s, r), t)| (s.clone(), r.clone(), hex::encode(t)))
                .collect(),
        }
    }

    /// The state a file describes; refuses tokens that are not hex or too long.
    pub(crate) fn from_file(file: TokenFile) -> Result<Self, crate::Error> {
        let token = |h: &str| {
            let t = hex::decode(h).map_err(|_| crate::Error::BadState("token is not hex"))?;
            if t.len() > MAX_SAVED_TOKEN {
                return Err(crate::Error::BadState("token too long"));
            }
            Ok(t)
        };
        let mut st = Self {
            restricted: file.restricted.into_iter().collect(),
            issued: file.issued,
            ..Self::default()
        };
        for (issuer, recipient, t, at) in file.tokens {
            st.tokens.insert((issuer, recipient), (token(&t)?, at));
        }
        for (sender, recipient, t) in file.cstokens {
            st.cstokens.insert((sender, recipient), token(&t)?);
        }
        Ok(st)
    }

    pub(crate) fn set_restricted(&mut self, phone: &str, restricted: bool) {
        if restricted {
            self.restricted.insert(phone.to_owned());
        } else {
            self.restricted.remove(phone);
        }
    }

    pub(crate) fn token(&self, issuer: &str, recipient: &str) -> Option<(Vec<u8>, u64)> {
        self.tokens
            .get(&(issuer.to_owned(), recipient.to_owned()))
            .cloned()
    }

    pub(crate) fn issued(&self) -> u64 {
        self.issued
    }

    /// Keeps the `<cstoken>` of the last 1:1 message from `sender` to `recipient`
    /// (phones), or forgets it when that message carried none; at most 64 bytes are kept.
    pub(crate) fn record_cstoken(&mut self, sender: &str, recipient: &str, token: Option<&[u8]>) {
        if token.is_none() && self.cstokens.is_empty() {
            return;
        }
        let key = (sender.to_owned(), recipient.to_owned());
        match token {
            Some(t) => {
                self.cstokens.insert(key, t[..t.len().min(64)].to_vec());
            }
            None => {
                self.cstokens.remove(&key);
            }
        }
    }

    /// Keeps the `<tctoken>` the last usync query from `asker` carried for the account
    /// `about` (phones), or forgets it when that query carried none; at most
    /// [`MAX_USYNC_TOKEN`] bytes are kept.
    pub(crate) fn record_usync_token(&mut self, asker: &str, about: &str, token: Option<&[u8]>) {
        let key = (asker.to_owned(), about.to_owned());
        match token {
            Some(t) => {
                self.usync_tokens
                    .insert(key, t[..t.len().min(MAX_USYNC_TOKEN)].to_vec());
            }
            None => {
                self.usync_tokens.remove(&key);
            }
        }
    }

    pub(crate) fn usync_token(&self, asker: &str, about: &str) -> Option<Vec<u8>> {
        self.usync_tokens
            .get(&(asker.to_owned(), about.to_owned()))
            .cloned()
    }

    pub(crate) fn cstoken(&self, sender: &str, recipient: &str) -> Option<Vec<u8>> {
        self.cstokens
            .get(&(sender.to_owned(), recipient.to_owned()))
            .cloned()
    }

    /// Whether a 1:1 message from the device `sender` to the user `to` carrying
    /// `tctoken` may pass at `now`: always, unless the sender is a companion of a
    /// restricted account writing to another user; then only with the token `to` issued
    /// to the sender, still valid.
    pub(crate) fn admits(&self, sender: &Jid, to: &Jid, tctoken: Option<&[u8]>, now: u64) -> bool {
        let from = sender.user.as_str();
        if sender.device == 0 || !self.restricted.contains(from) || to.user.as_str() == from {
            return true;
        }
        let cutoff = (now / BUCKET_SECS).saturating_sub(BUCKETS - 1) * BUCKET_SECS;
        match (
            self.tokens
                .get(&(to.user.as_str().to_owned(), from.to_owned())),
            tctoken,
        ) {
            (Some((token, t)), Some(given)) => token.as_slice() == given && *t >= cutoff,
            _ => false,
        }
    }
}

/// Answers `<iq xmlns="privacy" type="set"><tokens>` from the device `me`: mints a token
/// for every named account (other than its own) and tells that account's companions.
pub(crate) fn issue(shared: &Shared, me: &Jid, id: &str, tokens: &Node) -> Node {
    let issuer = me.user.as_str().to_owned();
    let now = unix_now();
    let mut told: Vec<(Vec<Jid>, Node)> = Vec::new();
    // The issuer's LID is named only when the server reveals LIDs to companions (see
    // `SenderAddressing`).
    let reveal_lid = shared.faults().sender_addressing != crate::fault::SenderAddressing::Pn;
    {
        let mut st = shared.state.lock();
        let issuer_lid = st
            .accounts
            .get(&issuer)
            .filter(|_| reveal_lid)
            .map(|a| Jid::lid(a.lid_user.clone()));
        for t in tokens.children_by_tag("token").take(MAX_TOKENS_PER_IQ) {
            if t.attr_opt::<&str>("type").ok().flatten() != Some("trusted_contact") {
                continue;
            }
            let Some(recipient) = t
                .attr_opt::<Jid>("jid")
                .ok()
                .flatten()
                .and_then(|j| resolve_user(&st, &j))
            else {
                continue;
            };
            let phone = recipient.user.as_str().to_owned();
            if phone == issuer {
                continue;
            }
            let at = t
                .attr_opt::<u64>("t")
                .ok()
                .flatten()
                .filter(|t| t.abs_diff(now) <= MAX_SKEW_SECS)
                .unwrap_or(now);
            let mut token = vec![0u8; 24];
            OsRng.fill_bytes(&mut token);
            let chats = &mut st.chats.tokens;
            chats
                .tokens
                .insert((issuer.clone(), phone.clone()), (token.clone(), at));
            chats.issued += 1;
            let notification = Node::builder("notification")
                .attr("from", Jid::pn(issuer.clone()))
                .attr_opt("sender_lid", issuer_lid.clone())
                .attr("type", "privacy_token")
                .attr("id", fresh_id())
                .attr("t", now.to_string())
                .children([Node::builder("tokens")
                    .children([Node::builder("token")
                        .attr("jid", recipient.clone())
                        .attr("t", at.to_string())
                        .attr("type", "trusted_contact")
                        .bytes(token)
                        .build()])
                    .build()])
                .build();
            // The simulated phones send no tokens: only companions are told.
            let devices = route::user_devices(&st, &phone)
                .into_iter()
                .filter(|d| d.device != 0)
                .collect();
            told.push((devices, notification));
        }
    }
    for (devices, notification) in told {
        for d in &devices {
            route::deliver(shared, d, notification.clone());
        }
    }
    Node::builder("iq")
        .attr("from", Jid::server_jid())
        .attr("type", "result")
        .attr("id", id.to_owned())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_companions_need_the_recipients_valid_token() {
        let mut s = TokenState::default();
        let a: Jid = "1555:3@s.whatsapp.net".parse().unwrap();
        let a_phone: Jid = "1555@s.whatsapp.net".parse().unwrap();
        let b: Jid = "1666@s.whatsapp.net".parse().unwrap();
        let now = 3_000 * BUCKET_SECS;
        assert!(s.admits(&a, &b, None, now), "not restricted");
        s.set_restricted("1555", true);
        assert!(!s.admits(&a, &b, None, now));
        assert!(
            s.admits(&a_phone, &b, None, now),
            "phones are not held to it"
        );
        assert!(s.admits(&a, &a_phone, None, now), "own account");
        s.tokens
            .insert(("1666".into(), "1555".into()), (b"tok".to_vec(), now - 10));
        assert!(s.admits(&a, &b, Some(b"tok"), now));
        assert!(!s.admits(&a, &b, Some(b"other"), now));
        assert!(!s.admits(&a, &b, None, now));
        assert!(
            !s.admits(&a, &b, Some(b"tok"), now + 4 * BUCKET_SECS),
            "expired"
        );
        s.set_restricted("1555", false);
        assert!(s.admits(&a, &b, None, now));
    }
}
