//! Dirty bits: the server flags an account's data as changed (`<ib><dirty type
//! timestamp>`, sent to its companions when flagged and at each login while set) until a
//! companion answers `<iq xmlns="urn:xmpp:whatsapp:dirty" type="set"><clean type
//! [timestamp]>`. The flags are saved in the state file; the log of clean requests is
//! not.

use std::collections::{BTreeMap, VecDeque};

use wa_binary::Node;

/// Kinds flagged per account at most.
const MAX_KINDS: usize = 8;
/// Clean requests remembered (the newest), for tests.
const MAX_CLEANED: usize = 1024;

/// What is flagged, and the clean requests received.
#[derive(Default)]
pub(crate) struct DirtyState {
    /// Phone number -> kind -> when it was flagged.
    flags: BTreeMap<String, BTreeMap<String, u64>>,
    /// (phone, kind, timestamp) of each clean request, oldest first.
    cleaned: VecDeque<(String, String, Option<u64>)>,
}

/// `<ib><dirty type timestamp/></ib>`.
pub(crate) fn ib(kind: &str, timestamp: u64) -> Node {
    Node::builder("ib")
        .children([Node::builder("dirty")
            .attr("type", kind.to_owned())
            .attr("timestamp", timestamp.to_string())
            .build()])
        .build()
}

impl DirtyState {
    /// The flags as (phone, kind, timestamp), for the state file.
    pub(crate) fn to_file(&self) -> Vec<(String, String, u64)> {
        self.flags
            .iter()
            .flat_map(|(phone, kinds)| {
                kinds
                    .iter()
                    .map(move |(kind, t)| (phone.clone(), kind.clone(), *t))
            })
            .collect()
    }

    /// The flags of a state file; refuses more kinds per account than are ever kept.
    pub(crate) fn from_file(flags: Vec<(String, String, u64)>) -> Result<Self, crate::Error> {
        let mut st = Self::default();
        for (phone, kind, t) in flags {
            if !st.mark(&phone, &kind, t) {
                return Err(crate::Error::BadState(
                    "too many dirty flags for one account",
                ));
            }
        }
        Ok(st)
    }

    /// Flags `kind` for `phone` at `timestamp`; `false` when the account has too many
    /// kinds flagged already.
    pub(crate) fn mark(&mut self, phone: &str, kind: &str, timestamp: u64) -> bool {
        let kinds = self.flags.entry(phone.to_owned()).or_default();
        if !kinds.contains_key(kind) && kinds.len() >= MAX_KINDS {
            return false;
        }
        kinds.insert(kind.to_owned(), timestamp);
        true
    }

    /// The `<ib>` nodes a login of `phone`'s companion gets: one per flagged kind.
    pub(crate) fn login_nodes(&self, phone: &str) -> Vec<Node> {
        self.flags
            .get(phone)
            .map(|k| k.iter().map(|(kind, t)| ib(kind, *t)).collect())
            .unwrap_or_default()
    }

    /// The kinds flagged for `phone`.
    pub(crate) fn flagged(&self, phone: &str) -> Vec<String> {
        self.flags
            .get(phone)
            .map(|k| k.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A clean request: the flag goes when the request names no time or one at or after
    /// the flag's.
    pub(crate) fn clean(&mut self, phone: &str, kind: &str, timestamp: Option<u64>) {
        if let Some(kinds) = self.flags.get_mut(phone)
            && kinds
                .get(kind)
                .is_some_and(|t| timestamp.is_none_or(|c| c >= *t))
        {
            kinds.remove(kind);
        }
        if self.cleaned.len() == MAX_CLEANED {
            self.cleaned.pop_front();
        }
        self.cleaned
            .push_back((phone.to_owned(), kind.to_owned(), timestamp));
    }

    /// The clean requests `phone`'s companions sent, oldest first.
    pub(crate) fn cleaned(&self, phone: &str) -> Vec<(String, Option<u64>)> {
        self.cleaned
            .iter()
            .filter(|(p, _, _)| p == phone)
            .map(|(_, k, t)| (k.clone(), *t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_removes_only_a_flag_it_covers() {
        let mut d = DirtyState::default();
        assert!(d.mark("1", "account_sync", 100));
        assert!(d.mark("1", "groups", 100));
        d.clean("1", "account_sync", Some(99));
        assert_eq!(d.flagged("1"), ["account_sync", "groups"]);
        d.clean("1", "account_sync", Some(100));
        d.clean("1", "groups", None);
        assert!(d.flagged("1").is_empty());
        assert_eq!(d.cleaned("1").len(), 3);
        for k in 0..MAX_KINDS {
            assert!(d.mark("2", &format!("k{k}"), 1));
        }
        assert!(!d.mark("2", "one-too-many", 1));
        assert_eq!(d.login_nodes("2").len(), MAX_KINDS);
    }
}
