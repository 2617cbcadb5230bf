//! Privacy tokens on 1:1 sends (see [`wa_socket::privacy_token`]): the contact's token
//! rides along as `<tctoken>`, and ours is issued to the contact once per bucket after a
//! send.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};
use wa_binary::{Jid, Server};
use wa_proto::e2e::Message;
use wa_socket::LazyCache;
use wa_socket::privacy_token as pt;
use wa_store::{PrivacyToken, PrivacyTokenStore, Role};

use crate::messenger::Inner;

/// Most issuances in flight at once; beyond it a send issues nothing (the next send to
/// that contact tries again).
const MAX_ISSUING: usize = 256;

/// Contacts' records kept in memory for sends.
const RECORD_CACHE_CAPACITY: u64 = 16_384;
/// How long a kept record is trusted before the store is asked again.
const RECORD_CACHE_TTL: Duration = Duration::from_secs(3600);

/// A contact's privacy-token record as a send last read it, and what it was read under.
pub(crate) struct KnownRecord {
    /// The contact's other JID (its LID, or its phone number for a LID) the key was
    /// chosen with.
    other: Option<Jid>,
    /// The store's privacy-token generation ([`wa_store::AccountStore::generation`])
    /// taken before the read.
    generation: u64,
    /// The key the record is written back under.
    key: String,
    record: PrivacyToken,
}

/// The records sends read, by contact user JID. An entry is used only while no
/// privacy-token record was written since it was read and the contact's other JID is
/// still the one it was read with, so it never hides a newer token or a new LID.
pub(crate) struct RecordCache(LazyCache<String, Arc<KnownRecord>>);

impl Default for RecordCache {
    fn default() -> Self {
        Self(LazyCache::new(RECORD_CACHE_CAPACITY, RECORD_CACHE_TTL))
    }
}

/// The record of the contact `chat` (a user) with its key, as [`pt::load`] reads it, from
/// the messenger's caches when they still hold: the LID mapping from the mapping cache,
/// the record from [`RecordCache`].
async fn contact_record(
    inner: &Inner,
    chat: &Jid,
) -> Result<(String, PrivacyToken), wa_store::Error> {
    let user = chat.to_non_ad();
    let other = match user.server {
        Server::Lid => inner.pn_for_lid(&user.user).await?.map(Jid::pn),
        Server::Pn | Server::LegacyUser => inner.lid_for_pn(&user.user).await?.map(Jid::lid),
        _ => None,
    };
    let store = inner.socket.store();
    let generation = store.generation(Role::PrivacyToken);
    let name = user.to_string();
    if let Some(known) = inner.privacy_records.0.get(&name).await
        && known.generation == generation
        && known.other == other
    {
        return Ok((known.key.clone(), known.record.clone()));
    }
    let (key, record) = pt::load_known(store, &user, other.as_ref()).await?;
    let known = KnownRecord {
        other,
        generation,
        key: key.clone(),
        record: record.clone(),
    };
    inner.privacy_records.0.insert(name, Arc::new(known)).await;
    Ok((key, record))
}

/// What a 1:1 send does about privacy tokens.
pub(crate) struct SendTokens {
    /// The contact's record key ([`pt::storage_jid`]).
    key: String,
    /// The contact's token to attach, when a valid one is stored.
    pub(crate) token: Option<Vec<u8>>,
    /// Whether to issue ours after the send.
    issue: bool,
}

/// Looks up the contact's record for a send of `message` to `chat` (a user, not
/// ourselves) at `now`. `None` when tokens do not apply to `chat`.
pub(crate) async fn for_send(
    inner: &Inner,
    chat: &Jid,
    message: &Message,
    now: i64,
) -> Option<SendTokens> {
    if !pt::applies_to(chat) {
        return None;
    }
    let (key, record) = match contact_record(inner, chat).await {
        Ok(loaded) => loaded,
        Err(e) => {
            warn!("privacy token of {chat} unreadable: {e}");
            (
                pt::storage_jid(inner.socket.store(), chat).await,
                PrivacyToken::default(),
            )
        }
    };
    let token = (!record.token.is_empty() && !pt::is_expired(record.timestamp, now))
        .then_some(record.token);
    // WhatsApp Web issues after ordinary messages, not after protocol messages (revokes,
    // edits, key shares).
    let issue =
        pt::should_issue(record.sender_timestamp, now) && message.protocol_message.is_none();
    Some(SendTokens { key, token, issue })
}

impl SendTokens {
    /// The `<cstoken>` for a send that carries no privacy token: keyed by the account's
    /// new-chat-thread `salt` over the contact's LID, when both are known.
    pub(crate) fn cstoken(&self, salt: Option<&[u8]>) -> Option<wa_binary::Node> {
        if self.token.is_some() {
            return None;
        }
        let lid = self.key.parse::<Jid>().ok()?;
        pt::cs_token(salt?, &lid).map(pt::cstoken_node)
    }
}

/// Where our token for `chat` is issued, as the server's AB props say (prop 14303, as
/// Baileys' `resolveIssuanceJid`): the contact's LID when tokens go to LIDs, else its
/// phone number, each when the mapping is known, else `chat` itself.
async fn issuance_jid(inner: &Inner, chat: &Jid) -> Jid {
    if inner.socket.server_props().lid_trusted_token_issue_to_lid {
        if chat.is_pn_user()
            && let Ok(Some(lid)) = inner.lid_for_pn(&chat.user).await
        {
            return Jid::new(lid, wa_binary::Server::Lid);
        }
    } else if chat.is_lid()
        && let Ok(Some(pn)) = inner.pn_for_lid(&chat.user).await
    {
        return Jid::pn(pn);
    }
    chat.clone()
}

/// The error of a 1:1 message the server refused for want of the contact's privacy
/// token: the account is restricted (it may not start chats) or the token is missing.
pub(crate) const NACK_NO_TOKEN: u16 = 463;

/// After the server refused a send with [`NACK_NO_TOKEN`]: issues our token to the
/// contact whatever the bucket says, as WhatsApp Web does to repair the chat. The
/// message itself is not sent again: a retry would count as one more reach-out.
pub(crate) fn issue_after_refusal(
    inner: &Arc<Inner>,
    chat: &Jid,
    mut tokens: SendTokens,
    now: i64,
) {
    tokens.issue = true;
    issue_after_send(inner, chat, tokens, now);
}

/// After a send: issues our token to `chat` in the background when `tokens` says so, then
/// records the issuance time, so the next issuance waits for the next bucket.
pub(crate) fn issue_after_send(inner: &Arc<Inner>, chat: &Jid, tokens: SendTokens, now: i64) {
    if !tokens.issue {
        return;
    }
    {
        let mut busy = inner
            .privacy_issuing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if busy.len() >= MAX_ISSUING || !busy.insert(tokens.key.clone()) {
            return;
        }
    }
    let inner = inner.clone();
    let chat = chat.to_non_ad();
    tokio::spawn(async move {
        let key = tokens.key;
        let to = issuance_jid(&inner, &chat).await;
        match inner
            .socket
            .issue_privacy_tokens(std::slice::from_ref(&to), now)
            .await
        {
            Ok(()) => {
                let store = inner.socket.store();
                let (at, mut record) = match pt::load(store, &chat).await {
                    Ok(loaded) => loaded,
                    Err(e) => {
                        warn!("privacy token of {key} unreadable: {e}");
                        (key.clone(), PrivacyToken::default())
                    }
                };
                record.sender_timestamp = record.sender_timestamp.max(now);
                match store.put_privacy_token(&at, &record).await {
                    Ok(()) => debug!("issued our privacy token to {chat}"),
                    Err(e) => warn!("privacy token issuance to {chat} not recorded: {e}"),
                }
            }
            Err(e) => debug!("issuing our privacy token to {chat} failed: {e}"),
        }
        inner
            .privacy_issuing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cstoken_only_without_a_privacy_token_and_with_a_lid_and_salt() {
        let salt = [9u8; 32];
        let lid = Jid::lid("100000000000042");
        let tokens = |key: String, token: Option<Vec<u8>>| SendTokens {
            key,
            token,
            issue: false,
        };
        let want = pt::cs_token(&salt, &lid).map(pt::cstoken_node);
        assert!(want.is_some());
        assert_eq!(tokens(lid.to_string(), None).cstoken(Some(&salt)), want);
        assert_eq!(
            tokens(lid.to_string(), Some(vec![1])).cstoken(Some(&salt)),
            None
        );
        assert_eq!(tokens(lid.to_string(), None).cstoken(None), None);
        // The LID is not known: the record key is the phone number.
        let pn = Jid::pn("15550000002").to_string();
        assert_eq!(tokens(pn, None).cstoken(Some(&salt)), None);
    }
}
