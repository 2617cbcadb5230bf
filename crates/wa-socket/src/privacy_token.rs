//! Trusted-contact privacy tokens ("tctokens").
//!
//! When we message a contact, we issue them a token (`<iq xmlns="privacy" type="set">
//! <tokens><token jid t type="trusted_contact"/>`); the server hands it to the contact in
//! a `<notification type="privacy_token">`. The contact's client then attaches the token
//! (`<tctoken>`) to its 1:1 messages, presence subscriptions and picture queries to us,
//! which is how the server knows we accepted the chat. A restricted account that messages
//! a contact without one is refused with error 463.
//!
//! Tokens are valid for a rolling window of four 7-day buckets; we issue a new one at most
//! once per bucket and contact. Records are kept per contact under the contact's LID when
//! it is known ([`storage_jid`]), as WhatsApp Web does.
//!
//! A 1:1 message without the contact's token carries a `<cstoken>` instead when the
//! account's new-chat-thread salt is known ([`cs_token`]): a stable, per-contact value
//! the server can count new chats by without learning more.

use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{debug, warn};
use wa_binary::{Jid, Node, Server};
use wa_store::{
    AccountStore, LidMappingStore, MAX_PRIVACY_TOKEN_LEN, PrivacyToken, PrivacyTokenStore,
};

/// Length of one token bucket in seconds (7 days).
pub const BUCKET_SECS: i64 = 604_800;
/// Number of buckets a token stays valid for (about 28 days).
pub const BUCKETS: i64 = 4;
/// Most `<token>` entries taken from one notification.
const MAX_TOKENS_PER_NOTIFICATION: usize = 64;

/// The current time in unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The oldest token timestamp still valid at `now`: the start of the oldest of the
/// [`BUCKETS`] buckets ending with the current one.
pub fn cutoff(now: i64) -> i64 {
    (now.div_euclid(BUCKET_SECS) - (BUCKETS - 1)) * BUCKET_SECS
}

/// Whether a token issued at `timestamp` is no longer valid at `now` (0 = no token).
pub fn is_expired(timestamp: i64, now: i64) -> bool {
    timestamp <= 0 || timestamp < cutoff(now)
}

/// Whether our token should be issued again at `now`, given when we last issued one
/// (`sender_timestamp`, 0 = never): once per bucket.
pub fn should_issue(sender_timestamp: i64, now: i64) -> bool {
    sender_timestamp <= 0 || now.div_euclid(BUCKET_SECS) > sender_timestamp.div_euclid(BUCKET_SECS)
}

/// Whether privacy tokens apply to `jid`: a regular user (phone number or LID), not a
/// group, channel, broadcast, bot or the service account (user `0`).
pub fn applies_to(jid: &Jid) -> bool {
    matches!(jid.server, Server::Pn | Server::LegacyUser | Server::Lid)
        && jid.user.as_str() != "0"
        && !jid.to_non_ad().is_bot()
}

/// The key a contact's record is stored under: the user's LID JID when `jid` is one or a
/// mapping is stored, else its phone-number user JID. A failed lookup falls back to the
/// phone number (logged).
pub async fn storage_jid(store: &AccountStore, jid: &Jid) -> String {
    let user = jid.to_non_ad();
    record_key(&user, stored_lid(store, &user).await.as_ref())
}

/// The record key of user JID `user` whose other JID is `other` (see [`load_known`]).
fn record_key(user: &Jid, other: Option<&Jid>) -> String {
    if !matches!(user.server, Server::Pn | Server::LegacyUser) {
        return user.to_string();
    }
    match other.filter(|o| o.is_lid()) {
        Some(lid) => lid.to_string(),
        None => Jid::pn(user.user.clone()).to_string(),
    }
}

/// The stored LID of phone-number user `user`; `None` for other JIDs, when none is
/// stored, and when the lookup fails (logged).
async fn stored_lid(store: &AccountStore, user: &Jid) -> Option<Jid> {
    if !matches!(user.server, Server::Pn | Server::LegacyUser) {
        return None;
    }
    match store.lid_for_pn(user.user.as_str()).await {
        Ok(lid) => lid.map(Jid::lid),
        Err(e) => {
            debug!("LID lookup for the privacy token of {user} failed: {e}");
            None
        }
    }
}

/// Reads the record of the contact `jid`: with the key it is to be written back under
/// ([`storage_jid`]) and the record, empty when there is none. A record written under the
/// phone number before the contact's LID became known is found too (and moves to the LID
/// key on the next write); a damaged record reads as empty, so the next write replaces it.
///
/// # Errors
/// Store errors other than a damaged record.
pub async fn load(
    store: &AccountStore,
    jid: &Jid,
) -> Result<(String, PrivacyToken), wa_store::Error> {
    let user = jid.to_non_ad();
    let other = if user.is_lid() {
        store.pn_for_lid(user.user.as_str()).await?.map(Jid::pn)
    } else {
        stored_lid(store, &user).await
    };
    load_known(store, &user, other.as_ref()).await
}

/// [`load`] for a caller that already knows the contact's other JID: `other` is its LID
/// user JID when `jid` is a phone number, its phone-number user JID when `jid` is a LID,
/// `None` when that is not known.
///
/// # Errors
/// Store errors other than a damaged record.
pub async fn load_known(
    store: &AccountStore,
    jid: &Jid,
    other: Option<&Jid>,
) -> Result<(String, PrivacyToken), wa_store::Error> {
    let user = jid.to_non_ad();
    let key = record_key(&user, other);
    let mut keys = vec![key.clone()];
    // A record kept under the phone number from before the LID was known.
    let pn = if user.is_lid() {
        other.filter(|o| o.is_pn_user()).map(Jid::to_string)
    } else {
        matches!(user.server, Server::Pn | Server::LegacyUser)
            .then(|| Jid::pn(user.user.clone()).to_string())
    };
    if let Some(pn) = pn.filter(|pn| *pn != key) {
        keys.push(pn);
    }
    for k in &keys {
        match store.get_privacy_token(k).await {
            Ok(Some(r)) => return Ok((key, r)),
            Ok(None) => {}
            Err(e) if e.is_corrupt() => {
                warn!("privacy token of {k} damaged; treated as absent: {e}");
            }
            Err(e) => return Err(e),
        }
    }
    Ok((key, PrivacyToken::default()))
}

/// The token `jid` issued to us, if one is stored and still valid at `now`. `None` for
/// JIDs tokens do not apply to, and when the record cannot be read (logged).
pub async fn usable_token(store: &AccountStore, jid: &Jid, now: i64) -> Option<Vec<u8>> {
    if !applies_to(jid) {
        return None;
    }
    match load(store, jid).await {
        Ok((_, r)) if !r.token.is_empty() && !is_expired(r.timestamp, now) => Some(r.token),
        Ok(_) => None,
        Err(e) => {
            warn!("privacy token of {jid} unreadable: {e}");
            None
        }
    }
}

/// The `<tctoken>` child carrying `token`.
pub fn tctoken_node(token: Vec<u8>) -> Node {
    Node::builder("tctoken").bytes(token).build()
}

/// The `<cstoken>` value for a message to the user whose LID is `recipient_lid`:
/// HMAC-SHA256 keyed by the account's new-chat-thread salt over the LID user JID
/// (`user@lid`, device part dropped), as whatsmeow derives it. `None` for an empty salt
/// or a JID that is not a LID, or one [`applies_to`] excludes.
pub fn cs_token(salt: &[u8], recipient_lid: &Jid) -> Option<[u8; 32]> {
    let lid = recipient_lid.to_non_ad();
    if salt.is_empty() || lid.server != Server::Lid || !applies_to(&lid) {
        return None;
    }
    Some(wa_crypto::hmac_sha256(salt, lid.to_string().as_bytes()))
}

/// The `<cstoken>` child carrying `token`.
pub fn cstoken_node(token: [u8; 32]) -> Node {
    Node::builder("cstoken").bytes(token.to_vec()).build()
}

/// The `<iq xmlns="privacy" type="set">` issuing our token to each of `jids` (user JIDs)
/// at time `t`.
pub fn issue_iq(jids: &[Jid], t: i64) -> Node {
    let tokens = jids.iter().map(|j| {
        Node::builder("token")
            .attr("jid", j.to_non_ad())
            .attr("t", t.to_string())
            .attr("type", "trusted_contact")
            .build()
    });
    Node::builder("iq")
        .attr("to", Jid::server_jid())
        .attr("type", "set")
        .attr("xmlns", "privacy")
        .children([Node::builder("tokens").children(tokens).build()])
        .build()
}

/// One token read from a `privacy_token` notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedToken {
    /// The contact who issued it (the notification's `sender_lid`, else its `from`).
    pub from: Jid,
    /// The contact's phone-number JID, when the notification named both it and the LID.
    pub pn: Option<Jid>,
    /// The token.
    pub token: Vec<u8>,
    /// When it was issued (unix seconds).
    pub timestamp: i64,
}

/// The trusted-contact tokens of a `<notification type="privacy_token">`. Entries of
/// another type, without bytes, with an over-long token or without a timestamp are
/// skipped; at most 64 are read. Empty when the sender is missing or not a user.
pub fn parse_notification(node: &Node) -> Vec<ReceivedToken> {
    let jid = |k: &str| {
        node.attr_opt::<Jid>(k)
            .ok()
            .flatten()
            .map(|j| j.to_non_ad())
    };
    let lid = jid("sender_lid").filter(Jid::is_lid);
    let from_attr = jid("from");
    let pn = from_attr
        .clone()
        .filter(|j| lid.is_some() && j.is_pn_user());
    let (Some(from), Some(tokens)) = (lid.or(from_attr), node.child("tokens")) else {
        return Vec::new();
    };
    if !applies_to(&from) {
        return Vec::new();
    }
    tokens
        .children_by_tag("token")
        .take(MAX_TOKENS_PER_NOTIFICATION)
        .filter(|t| t.attr_opt::<&str>("type").ok().flatten() == Some("trusted_contact"))
        .filter_map(|t| {
            let token = t
                .bytes()
                .filter(|b| !b.is_empty() && b.len() <= MAX_PRIVACY_TOKEN_LEN)?;
            let timestamp = t.attr_opt::<i64>("t").ok().flatten().filter(|&t| t > 0)?;
            Some(ReceivedToken {
                from: from.clone(),
                pn: pn.clone(),
                token: token.to_vec(),
                timestamp,
            })
        })
        .collect()
}

/// Stores a received token, unless the stored one is newer; keeps our own issuance time.
/// A LID/phone-number pair the notification named is stored first (unless a mapping of
/// that phone number is already known), so lookups by either find the record; that new
/// mapping is returned.
///
/// # Errors
/// Store errors. A damaged stored record is replaced.
pub async fn store_received(
    store: &AccountStore,
    received: &ReceivedToken,
) -> Result<Option<wa_types::LidMapping>, wa_store::Error> {
    let mut mapped = None;
    if let Some(pn) = &received.pn
        && received.from.is_lid()
        && store.lid_for_pn(pn.user.as_str()).await?.is_none()
    {
        store
            .put_lid_mapping(pn.user.as_str(), received.from.user.as_str())
            .await?;
        mapped = Some(wa_types::LidMapping::of_users(
            received.from.user.as_str(),
            pn.user.as_str(),
        ));
    }
    let (key, existing) = load(store, &received.from).await?;
    if !existing.token.is_empty() && existing.timestamp > received.timestamp {
        return Ok(mapped);
    }
    let record = PrivacyToken {
        token: received.token.clone(),
        timestamp: received.timestamp,
        sender_timestamp: existing.sender_timestamp,
    };
    store.put_privacy_token(&key, &record).await?;
    Ok(mapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_store() -> AccountStore {
        AccountStore::new(
            std::sync::Arc::new(wa_store::MemoryBackend::new()),
            wa_store::AccountId::new("a").unwrap(),
        )
    }

    const WEEK: i64 = BUCKET_SECS;

    #[test]
    fn cs_tokens_key_the_lid_user_with_the_salt() {
        let salt: Vec<u8> = (0..32).collect();
        // HMAC-SHA256(salt, "100000000000042@lid"), computed with Python's hmac module.
        let want = "37bfcd1af7cc470598c0503ba62906bf3ba8144ecace567ecf372c90f2d70619";
        let lid = Jid::lid("100000000000042");
        assert_eq!(
            cs_token(&salt, &lid).map(hex::encode).as_deref(),
            Some(want)
        );
        let device = Jid::with_device("100000000000042", Server::Lid, 3);
        assert_eq!(cs_token(&salt, &device), cs_token(&salt, &lid));
        assert_eq!(cs_token(&salt, &Jid::pn("15550000002")), None);
        assert_eq!(cs_token(&[], &lid), None);
        assert_eq!(cstoken_node([1; 32]).content_bytes(), Some(&[1u8; 32][..]));
    }

    #[test]
    fn buckets() {
        let now = 2_900 * WEEK + 100;
        assert_eq!(cutoff(now), 2_897 * WEEK);
        assert!(!is_expired(2_897 * WEEK, now));
        assert!(is_expired(2_897 * WEEK - 1, now));
        assert!(is_expired(0, now));
        assert!(should_issue(0, now));
        assert!(!should_issue(2_900 * WEEK, now));
        assert!(should_issue(2_900 * WEEK - 1, now));
    }

    #[test]
    fn who_tokens_apply_to() {
        assert!(applies_to(&"15550001@s.whatsapp.net".parse().unwrap()));
        assert!(applies_to(&"15550001:3@s.whatsapp.net".parse().unwrap()));
        assert!(applies_to(&"100000001@lid".parse().unwrap()));
        assert!(!applies_to(&"0@s.whatsapp.net".parse().unwrap()));
        assert!(!applies_to(&"123-456@g.us".parse().unwrap()));
        assert!(!applies_to(&"status@broadcast".parse().unwrap()));
        assert!(!applies_to(&"13135550002@s.whatsapp.net".parse().unwrap()));
    }

    fn token(t: &str, ty: &str, bytes: &[u8]) -> Node {
        Node::builder("token")
            .attr("jid", "15550001@s.whatsapp.net")
            .attr("t", t.to_owned())
            .attr("type", ty.to_owned())
            .bytes(bytes.to_vec())
            .build()
    }

    #[test]
    fn notification_parsing_skips_what_is_not_a_token() {
        let n = Node::builder("notification")
            .attr("from", "15550002@s.whatsapp.net")
            .attr("sender_lid", "100000002@lid")
            .attr("type", "privacy_token")
            .children([Node::builder("tokens")
                .children([
                    token("1700000000", "trusted_contact", b"tok"),
                    token("1700000000", "other", b"x"),
                    token("nope", "trusted_contact", b"x"),
                    token("1700000000", "trusted_contact", b""),
                    token(
                        "1700000000",
                        "trusted_contact",
                        &[1; MAX_PRIVACY_TOKEN_LEN + 1],
                    ),
                ])
                .build()])
            .build();
        let got = parse_notification(&n);
        assert_eq!(
            got,
            vec![ReceivedToken {
                from: "100000002@lid".parse().unwrap(),
                pn: Some("15550002@s.whatsapp.net".parse().unwrap()),
                token: b"tok".to_vec(),
                timestamp: 1_700_000_000,
            }]
        );
        let from_group = Node::builder("notification")
            .attr("from", "123-456@g.us")
            .children([Node::builder("tokens")
                .children([token("1700000000", "trusted_contact", b"tok")])
                .build()])
            .build();
        assert!(parse_notification(&from_group).is_empty());
        assert!(parse_notification(&Node::builder("notification").build()).is_empty());
    }

    #[tokio::test]
    async fn stored_under_the_lid_and_newest_wins() {
        let store = memory_store();
        store
            .put_lid_mapping("15550002", "100000002")
            .await
            .unwrap();
        let pn: Jid = "15550002:4@s.whatsapp.net".parse().unwrap();
        assert_eq!(storage_jid(&store, &pn).await, "100000002@lid");
        let now = 2_900 * BUCKET_SECS;
        let r = |tok: &[u8], t: i64| ReceivedToken {
            from: pn.to_non_ad(),
            pn: None,
            token: tok.to_vec(),
            timestamp: t,
        };
        store_received(&store, &r(b"new", now - 10)).await.unwrap();
        store_received(&store, &r(b"older", now - 20))
            .await
            .unwrap();
        assert_eq!(usable_token(&store, &pn, now).await, Some(b"new".to_vec()));
        let lid: Jid = "100000002@lid".parse().unwrap();
        assert_eq!(usable_token(&store, &lid, now).await, Some(b"new".to_vec()));
        // Expired four buckets later.
        assert_eq!(usable_token(&store, &pn, now + 4 * BUCKET_SECS).await, None);
        // Our issuance time survives a new token.
        let key = storage_jid(&store, &pn).await;
        let mut rec = store.get_privacy_token(&key).await.unwrap().unwrap();
        rec.sender_timestamp = now;
        store.put_privacy_token(&key, &rec).await.unwrap();
        store_received(&store, &r(b"newest", now)).await.unwrap();
        let rec = store.get_privacy_token(&key).await.unwrap().unwrap();
        assert_eq!(
            (rec.token.as_slice(), rec.sender_timestamp),
            (&b"newest"[..], now)
        );
    }

    #[tokio::test]
    async fn a_notification_naming_both_ids_teaches_the_mapping() {
        let store = memory_store();
        let received = ReceivedToken {
            from: "100000003@lid".parse().unwrap(),
            pn: Some("15550003@s.whatsapp.net".parse().unwrap()),
            token: b"tok".to_vec(),
            timestamp: now(),
        };
        assert_eq!(
            store_received(&store, &received).await.unwrap(),
            Some(wa_types::LidMapping::of_users("100000003", "15550003"))
        );
        assert_eq!(
            store.lid_for_pn("15550003").await.unwrap().as_deref(),
            Some("100000003")
        );
        // Known now: not reported again.
        assert_eq!(store_received(&store, &received).await.unwrap(), None);
        let pn: Jid = "15550003@s.whatsapp.net".parse().unwrap();
        assert_eq!(
            usable_token(&store, &pn, now()).await,
            Some(b"tok".to_vec())
        );
    }

    #[tokio::test]
    async fn a_record_kept_under_the_phone_number_is_found_once_the_lid_is_known() {
        let store = memory_store();
        let pn: Jid = "15550004@s.whatsapp.net".parse().unwrap();
        let received = ReceivedToken {
            from: pn.clone(),
            pn: None,
            token: b"early".to_vec(),
            timestamp: now(),
        };
        store_received(&store, &received).await.unwrap();
        store
            .put_lid_mapping("15550004", "100000004")
            .await
            .unwrap();
        let lid: Jid = "100000004@lid".parse().unwrap();
        for j in [&pn, &lid] {
            assert_eq!(
                usable_token(&store, j, now()).await,
                Some(b"early".to_vec()),
                "{j}"
            );
            assert_eq!(load(&store, j).await.unwrap().0, "100000004@lid");
        }
    }

    #[tokio::test]
    async fn a_caller_that_knows_the_other_jid_reads_no_mapping() {
        // No mapping stored: what the caller states is all `load_known` goes by.
        let store = memory_store();
        let pn: Jid = "15550005:2@s.whatsapp.net".parse().unwrap();
        let lid: Jid = "100000005@lid".parse().unwrap();
        let early = PrivacyToken {
            token: b"early".to_vec(),
            timestamp: 5,
            sender_timestamp: 0,
        };
        store
            .put_privacy_token("15550005@s.whatsapp.net", &early)
            .await
            .unwrap();
        // Under the phone number until the LID is named; found there either way.
        let unknown = load_known(&store, &pn, None).await.unwrap();
        assert_eq!(
            unknown,
            ("15550005@s.whatsapp.net".to_owned(), early.clone())
        );
        let by_pn = load_known(&store, &pn, Some(&lid)).await.unwrap();
        assert_eq!(by_pn, ("100000005@lid".to_owned(), early.clone()));
        let by_lid = load_known(&store, &lid, Some(&pn.to_non_ad()))
            .await
            .unwrap();
        assert_eq!(by_lid, ("100000005@lid".to_owned(), early.clone()));
        // A LID without its phone number named: only the LID key is read.
        assert_eq!(
            load_known(&store, &lid, None).await.unwrap(),
            ("100000005@lid".to_owned(), PrivacyToken::default())
        );
        // A record under the LID wins over the phone number's.
        let newer = PrivacyToken {
            token: b"newer".to_vec(),
            ..early
        };
        store
            .put_privacy_token("100000005@lid", &newer)
            .await
            .unwrap();
        assert_eq!(load_known(&store, &pn, Some(&lid)).await.unwrap().1, newer);
        // Nothing was learned along the way: the store still has no mapping.
        assert_eq!(storage_jid(&store, &pn).await, "15550005@s.whatsapp.net");
    }
}
