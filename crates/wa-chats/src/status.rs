//! Saved contacts (kept from app-state `contact` mutations) and the audience of a status
//! update derived from the account's status privacy, as WhatsApp's clients derive it.
//!
//! Sans IO: [`StoredContact`] is the store encoding of one contact, [`contact_ops`] turns
//! decoded app-state mutations into store writes, and [`status_audience`] picks the
//! recipients from a privacy reply and the stored contacts. The requests live on
//! [`Chats`](crate::Chats).

use std::collections::HashSet;

use prost::Message as _;
use wa_appstate::{Action, Operation};
use wa_binary::Jid;
use wa_proto::sync_action::ContactAction;
use wa_store::Batch;
use wa_types::{StatusPrivacy, StatusPrivacyKind};

use crate::Error;

/// The first byte of a stored contact in the current encoding.
const CONTACT_FORMAT_V1: u8 = 1;
/// Largest stored contact decoded, in bytes.
const MAX_STORED_CONTACT: usize = 16 * 1024;

/// A contact as kept in the account store (`ContactStore`, keyed by the contact's user
/// JID), from the app-state `contact` mutations of the account's devices.
///
/// Stored as one format byte (1) followed by a `ContactAction` protobuf holding the
/// fields below, so later versions can add fields or change the format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredContact {
    /// The name in the address book; `None` (or empty) for an entry that is not a saved
    /// contact (for example one another device removed).
    pub full_name: Option<String>,
    /// The first name in the address book.
    pub first_name: Option<String>,
    /// The contact's LID, when known.
    pub lid: Option<Jid>,
    /// The contact's phone-number JID, when known.
    pub pn: Option<Jid>,
}

impl StoredContact {
    /// A saved contact named `full_name`.
    pub fn new(full_name: impl Into<String>) -> Self {
        Self {
            full_name: Some(full_name.into()),
            ..Self::default()
        }
    }

    /// Whether this is a saved contact: it has a non-blank full name (as whatsmeow tells
    /// contacts from other entries).
    pub fn is_saved(&self) -> bool {
        self.full_name
            .as_deref()
            .is_some_and(|n| !n.trim().is_empty())
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let action = ContactAction {
            full_name: self.full_name.clone(),
            first_name: self.first_name.clone(),
            lid_jid: self.lid.as_ref().map(ToString::to_string),
            pn_jid: self.pn.as_ref().map(ToString::to_string),
            ..Default::default()
        };
        let mut out = Vec::with_capacity(1 + action.encoded_len());
        out.push(CONTACT_FORMAT_V1);
        out.extend(action.encode_to_vec());
        out
    }

    /// Reads stored bytes.
    ///
    /// # Errors
    /// [`Error::Malformed`] for empty or over-long bytes, an unknown format byte or a
    /// body that is not a `ContactAction`. A LID or phone number that is not a JID is
    /// dropped rather than refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_STORED_CONTACT {
            return Err(Error::Malformed("stored contact too long"));
        }
        let Some((&format, body)) = bytes.split_first() else {
            return Err(Error::Malformed("stored contact is empty"));
        };
        if format != CONTACT_FORMAT_V1 {
            return Err(Error::Malformed("stored contact of unknown format"));
        }
        let action = ContactAction::decode(body)
            .map_err(|_| Error::Malformed("stored contact is not a ContactAction"))?;
        Ok(Self {
            full_name: action.full_name,
            first_name: action.first_name,
            lid: action.lid_jid.and_then(|j| j.parse().ok()),
            pn: action.pn_jid.and_then(|j| j.parse().ok()),
        })
    }
}

/// Whether `jid` can receive a status update: a phone-number or LID user.
fn is_user(jid: &Jid) -> bool {
    jid.is_pn_user() || (jid.is_lid() && !jid.user.is_empty())
}

/// Adds to `batch` the contact writes of decoded app-state mutations, in order: a SET of
/// `["contact", jid]` stores a [`StoredContact`] under the user JID, a REMOVE deletes it.
/// Other mutations, contacts whose JID does not parse as a user or is longer than
/// [`wa_store::MAX_KEY_LEN`], and contacts encoding to more than 16 KiB are skipped.
/// Returns the keys written.
pub fn contact_ops<'a>(
    batch: &mut Batch,
    mutations: impl IntoIterator<Item = (Operation, &'a Action)>,
) -> Vec<String> {
    let mut keys = Vec::new();
    for (op, action) in mutations {
        let Action::Contact {
            jid,
            full_name,
            first_name,
            lid,
            pn,
        } = action
        else {
            continue;
        };
        let Some(user) = jid.parse::<Jid>().ok().filter(is_user) else {
            tracing::debug!("app-state contact with a non-user jid skipped");
            continue;
        };
        let key = user.normalized_user().to_string();
        if key.len() > wa_store::MAX_KEY_LEN {
            // The store would refuse the whole commit, and with it the collection's state.
            tracing::debug!("app-state contact with an over-long jid skipped");
            continue;
        }
        match op {
            Operation::Set => {
                let c = StoredContact {
                    full_name: full_name.clone(),
                    first_name: first_name.clone(),
                    lid: lid.as_deref().and_then(|j| j.parse().ok()),
                    pn: pn.as_deref().and_then(|j| j.parse().ok()),
                };
                let bytes = c.encode();
                if bytes.len() > MAX_STORED_CONTACT {
                    tracing::debug!(%key, "app-state contact too large to keep skipped");
                    continue;
                }
                batch.put_contact(&key, &bytes);
            }
            Operation::Remove => {
                batch.delete_contact(&key);
            }
        }
        keys.push(key);
    }
    keys
}

/// The list in force: the default one, else the first; `None` when there is none.
pub fn status_privacy_in_force(privacy: &[StatusPrivacy]) -> Option<&StatusPrivacy> {
    privacy.iter().find(|p| p.is_default).or(privacy.first())
}

/// The users a status update goes to under `privacy` (a reply of
/// [`Chats::status_privacy`](crate::Chats::status_privacy); the list in force is the
/// default one, and none at all means contacts), given the stored `contacts`:
///
/// - allowlist (`whitelist`): exactly the listed users, contacts or not;
/// - contacts: every saved contact ([`StoredContact::is_saved`]);
/// - denylist (`blacklist`): every saved contact whose JID, LID and phone number are all
///   off the list.
///
/// Users come without device, once each (allowlist in list order, contacts in the given
/// order); JIDs that are not phone-number or LID users are skipped. Our own account is
/// not added here: the status send adds our devices itself.
///
/// # Errors
/// [`Error::TooManyStatusRecipients`] when the audience has more than
/// [`wa_messages::MAX_STATUS_RECIPIENTS`] users (it is never truncated).
pub fn status_audience(
    privacy: &[StatusPrivacy],
    contacts: &[(Jid, StoredContact)],
) -> Result<Vec<Jid>, Error> {
    let in_force = status_privacy_in_force(privacy);
    let kind = in_force.map_or(StatusPrivacyKind::Contacts, |p| p.kind);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut add = |jid: &Jid| {
        let user = jid.normalized_user();
        if is_user(&user) && seen.insert(user.to_string()) {
            out.push(user);
        }
    };
    match kind {
        StatusPrivacyKind::Allowlist => {
            for j in in_force.map(|p| p.list.as_slice()).unwrap_or_default() {
                add(j);
            }
        }
        StatusPrivacyKind::Contacts | StatusPrivacyKind::Denylist => {
            let denied: HashSet<String> = match (kind, in_force) {
                (StatusPrivacyKind::Denylist, Some(p)) => p
                    .list
                    .iter()
                    .map(|j| j.normalized_user().to_string())
                    .collect(),
                _ => HashSet::new(),
            };
            let is_denied = |j: &Jid| denied.contains(&j.normalized_user().to_string());
            for (jid, c) in contacts {
                if !c.is_saved()
                    || is_denied(jid)
                    || c.lid.as_ref().is_some_and(is_denied)
                    || c.pn.as_ref().is_some_and(is_denied)
                {
                    continue;
                }
                add(jid);
            }
        }
        // A kind added later is not guessed at.
        _ => return Err(Error::InvalidRequest("status privacy kind not supported")),
    }
    let max = wa_messages::MAX_STATUS_RECIPIENTS;
    if out.len() > max {
        return Err(Error::TooManyStatusRecipients {
            count: out.len(),
            max,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(n: &str, name: Option<&str>) -> (Jid, StoredContact) {
        let c = StoredContact {
            full_name: name.map(str::to_owned),
            ..StoredContact::default()
        };
        (Jid::pn(n.to_owned()), c)
    }

    fn list(kind: StatusPrivacyKind, users: &[&str], default: bool) -> StatusPrivacy {
        StatusPrivacy::new(
            kind,
            users.iter().map(|u| Jid::pn((*u).to_owned())).collect(),
            default,
        )
    }

    fn users(v: &[Jid]) -> Vec<String> {
        v.iter().map(|j| j.user.to_string()).collect()
    }

    #[test]
    fn stored_contacts_round_trip_and_refuse_junk() {
        let mut c = StoredContact::new("Bea Boe");
        c.first_name = Some("Bea".into());
        c.lid = Some(Jid::lid("77"));
        c.pn = Some(Jid::pn("2"));
        let bytes = c.encode();
        assert_eq!(bytes[0], CONTACT_FORMAT_V1);
        assert_eq!(StoredContact::decode(&bytes).unwrap(), c);
        assert!(c.is_saved());
        assert!(!StoredContact::default().is_saved());
        assert!(!StoredContact::new("  ").is_saved());
        for junk in [
            &[][..],
            &[2, 10, 1, b'x'][..],
            &[1, 0xff, 0xff, 0xff][..],
            &[1, 10, 200][..],
        ] {
            assert!(
                matches!(StoredContact::decode(junk), Err(Error::Malformed(_))),
                "{junk:?}"
            );
        }
        let huge = vec![1u8; MAX_STORED_CONTACT + 1];
        assert!(StoredContact::decode(&huge).is_err());
    }

    #[test]
    fn contacts_mode_takes_every_saved_contact() {
        let contacts = [
            contact("2", Some("B")),
            contact("3", Some("C")),
            contact("4", None),
            contact("5", Some("")),
        ];
        for privacy in [
            vec![],
            vec![StatusPrivacy::default_contacts()],
            vec![list(StatusPrivacyKind::Contacts, &[], true)],
        ] {
            let got = status_audience(&privacy, &contacts).unwrap();
            assert_eq!(users(&got), ["2", "3"]);
        }
    }

    #[test]
    fn denylist_drops_listed_users_by_any_of_their_jids() {
        let mut by_lid = StoredContact::new("L");
        by_lid.lid = Some(Jid::lid("900"));
        let mut by_pn = StoredContact::new("P");
        by_pn.pn = Some(Jid::pn("6"));
        let contacts = [
            contact("2", Some("B")),
            contact("3", Some("C")),
            (Jid::pn("8"), by_lid),
            (Jid::lid("901"), by_pn),
        ];
        let deny = StatusPrivacy::new(
            StatusPrivacyKind::Denylist,
            vec![
                Jid::with_device("3", wa_binary::Server::Pn, 4),
                Jid::lid("900"),
                Jid::pn("6"),
            ],
            true,
        );
        let got = status_audience(&[deny], &contacts).unwrap();
        assert_eq!(users(&got), ["2"]);
    }

    #[test]
    fn allowlist_is_exactly_its_users_and_the_default_list_rules() {
        let contacts = [contact("2", Some("B")), contact("3", Some("C"))];
        let privacy = [
            list(StatusPrivacyKind::Denylist, &["2"], false),
            list(StatusPrivacyKind::Allowlist, &["4", "9", "4"], true),
        ];
        let got = status_audience(&privacy, &contacts).unwrap();
        assert_eq!(users(&got), ["4", "9"]);
        // No default: the first list applies.
        let privacy = [
            list(StatusPrivacyKind::Denylist, &["2"], false),
            list(StatusPrivacyKind::Allowlist, &["4"], false),
        ];
        assert_eq!(users(&status_audience(&privacy, &contacts).unwrap()), ["3"]);
        // Non-users are skipped.
        let odd = StatusPrivacy::new(
            StatusPrivacyKind::Allowlist,
            vec![Jid::status_broadcast(), Jid::pn("5")],
            true,
        );
        assert_eq!(users(&status_audience(&[odd], &[]).unwrap()), ["5"]);
    }

    #[test]
    fn an_audience_beyond_the_limit_is_refused_not_cut() {
        let max = wa_messages::MAX_STATUS_RECIPIENTS;
        let contacts: Vec<_> = (0..=max)
            .map(|i| contact(&format!("1555{i:07}"), Some("x")))
            .collect();
        match status_audience(&[], &contacts) {
            Err(Error::TooManyStatusRecipients { count, max: m }) => {
                assert_eq!((count, m), (max + 1, max));
            }
            other => panic!("expected too many recipients, got {other:?}"),
        }
        assert_eq!(status_audience(&[], &contacts[..max]).unwrap().len(), max);
    }

    #[test]
    fn contact_mutations_become_store_writes_in_order() {
        let set = |jid: &str, name: Option<&str>| Action::Contact {
            jid: jid.into(),
            full_name: name.map(str::to_owned),
            first_name: None,
            lid: Some("55@lid".into()),
            pn: Some("not a jid@@".into()),
        };
        let actions = [
            (Operation::Set, set("2@s.whatsapp.net", Some("B"))),
            (Operation::Remove, set("2@s.whatsapp.net", None)),
            (Operation::Set, set("3:4@s.whatsapp.net", Some("C"))),
            (Operation::Set, set("123@g.us", Some("group"))),
            (
                Operation::Set,
                set(&format!("{}@s.whatsapp.net", "1".repeat(600)), Some("long")),
            ),
            (
                Operation::Set,
                set("4@s.whatsapp.net", Some(&"n".repeat(MAX_STORED_CONTACT))),
            ),
            (Operation::Set, Action::PushName { name: "me".into() }),
        ];
        let mut batch = Batch::new();
        let keys = contact_ops(&mut batch, actions.iter().map(|(o, a)| (*o, a)));
        assert_eq!(
            keys,
            ["2@s.whatsapp.net", "2@s.whatsapp.net", "3@s.whatsapp.net"]
        );
        assert_eq!(batch.len(), 3);
    }
}
