//! Chat settings kept from app state (whatsmeow's `ChatSettings` store): whether a chat
//! is archived, pinned or muted, as the account's devices last set it, so an application
//! can ask without keeping its own database of `ChatsUpdate` events.
//!
//! Each setting is stored on its own (`wa_store::Role::ChatSetting`, scope = the setting,
//! key = the chat): archive and pin are synced in `regular_low`, mute in `regular_high`,
//! and the two collections may sync at the same time, so no setting is ever written by
//! reading and rewriting another.

use wa_appstate::{Action, Operation};
use wa_binary::Jid;
use wa_store::Batch;

/// Store scope of the archived flag.
pub(crate) const ARCHIVE: &str = "archive";
/// Store scope of the pinned flag.
pub(crate) const PIN: &str = "pin";
/// Store scope of the mute end.
pub(crate) const MUTE: &str = "mute";

/// A chat's settings as app state last set them ([`AppState::chat_settings`](crate::AppState::chat_settings)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatSettings {
    /// The chat is archived.
    pub archived: bool,
    /// The chat is pinned.
    pub pinned: bool,
    /// The chat is muted until this time (unix milliseconds; -1 for ever); `None` when
    /// it is not muted. See [`ChatSettings::is_muted_at`].
    pub muted_until: Option<i64>,
}

impl ChatSettings {
    /// Whether the chat is muted at `now_ms` (unix milliseconds).
    pub fn is_muted_at(&self, now_ms: i64) -> bool {
        match self.muted_until {
            Some(-1) => true,
            Some(until) => until > now_ms,
            None => false,
        }
    }

    /// Applies one stored setting; `false` when the value does not decode.
    pub(crate) fn apply_stored(&mut self, setting: &str, value: &[u8]) -> bool {
        match (setting, value) {
            (ARCHIVE, b"1") => self.archived = true,
            (PIN, b"1") => self.pinned = true,
            (MUTE, v) => match <[u8; 8]>::try_from(v) {
                Ok(b) => self.muted_until = Some(i64::from_le_bytes(b)),
                Err(_) => return false,
            },
            _ => return false,
        }
        true
    }
}

/// The store key of an app-state chat JID: its non-device form, when it parses and is
/// short enough to store.
fn chat_key(jid: &str) -> Option<String> {
    let key = jid.parse::<Jid>().ok()?.to_non_ad().to_string();
    (!key.is_empty() && key.len() <= wa_store::MAX_KEY_LEN).then_some(key)
}

/// Adds to `batch` the chat-setting writes of decoded app-state mutations, in order: a
/// SET of archive or pin that turns it on stores it, one that turns it off or a REMOVE
/// deletes it; a SET of mute that mutes stores its end (-1 for ever when none is given),
/// an unmute or a REMOVE deletes it. Other mutations, and chats whose JID does not parse
/// or is too long to store, are skipped. Returns how many writes were added.
pub fn chat_setting_ops<'a>(
    batch: &mut Batch,
    mutations: impl IntoIterator<Item = (Operation, &'a Action)>,
) -> usize {
    let mut written = 0;
    for (op, action) in mutations {
        let set = op == Operation::Set;
        let (setting, jid, value) = match action {
            Action::Archive { jid, archived, .. } => {
                (ARCHIVE, jid, (set && *archived).then(|| b"1".to_vec()))
            }
            Action::Pin { jid, pinned } => (PIN, jid, (set && *pinned).then(|| b"1".to_vec())),
            Action::Mute { jid, muted, until } => (
                MUTE,
                jid,
                (set && *muted).then(|| until.unwrap_or(-1).to_le_bytes().to_vec()),
            ),
            _ => continue,
        };
        let Some(key) = chat_key(jid) else {
            tracing::debug!("app-state chat setting with an unusable jid skipped");
            continue;
        };
        match value {
            Some(v) => batch.put_chat_setting(setting, &key, &v),
            None => batch.delete_chat_setting(setting, &key),
        };
        written += 1;
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_become_one_write_per_setting() {
        let group = "120363000000000001@g.us";
        let actions = [
            (
                Operation::Set,
                Action::Archive {
                    jid: group.into(),
                    archived: true,
                    range: None,
                },
            ),
            (
                Operation::Set,
                Action::Mute {
                    jid: "1555:3@s.whatsapp.net".into(),
                    muted: true,
                    until: None,
                },
            ),
            (
                Operation::Set,
                Action::Pin {
                    jid: group.into(),
                    pinned: false,
                },
            ),
            (
                Operation::Remove,
                Action::Archive {
                    jid: "not a jid".into(),
                    archived: true,
                    range: None,
                },
            ),
            (
                Operation::Set,
                Action::Star {
                    jid: group.into(),
                    message_id: "ID".into(),
                    from_me: true,
                    participant: None,
                    starred: true,
                },
            ),
        ];
        let mut batch = Batch::new();
        let n = chat_setting_ops(&mut batch, actions.iter().map(|(o, a)| (*o, a)));
        assert_eq!(n, 3, "the bad jid and the star are skipped");
        let ops = batch.into_ops().unwrap();
        let puts: Vec<(String, String, Vec<u8>)> = ops
            .iter()
            .filter_map(|op| match op {
                wa_store::Op::Put {
                    role,
                    scope,
                    key,
                    value,
                    ..
                } => {
                    let plain = wa_store::open(*role, scope, key, value.clone()).unwrap();
                    Some((scope.clone(), key.clone(), plain.to_vec()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            puts,
            [
                (ARCHIVE.to_owned(), group.to_owned(), b"1".to_vec()),
                (
                    MUTE.to_owned(),
                    "1555@s.whatsapp.net".to_owned(),
                    (-1i64).to_le_bytes().to_vec()
                ),
            ]
        );
        assert_eq!(ops.len(), 3, "the unpin is a delete");
    }

    #[test]
    fn stored_values_decode_or_are_refused() {
        let mut s = ChatSettings::default();
        assert!(s.apply_stored(ARCHIVE, b"1"));
        assert!(s.apply_stored(MUTE, &1_000i64.to_le_bytes()));
        assert!(!s.apply_stored(MUTE, b"junk"));
        assert!(!s.apply_stored("other", b"1"));
        assert!(s.archived && !s.pinned);
        assert!(s.is_muted_at(999) && !s.is_muted_at(1_000));
        s.muted_until = Some(-1);
        assert!(s.is_muted_at(i64::MAX));
    }
}
