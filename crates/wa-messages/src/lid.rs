//! LID/PN addressing of 1:1 Signal sessions.
//!
//! Every user has a phone-number JID (PN) and a LID; stanzas name a peer device by
//! either. Sessions and identity keys are kept under one address per device: the LID
//! device address (`<lid>_1.<device>`, `<lid>_129.<device>` for hosted devices) once the
//! user's LID is known, else the PN address (`<pn>.<device>`, `<pn>_128.<device>`).
//!
//! When a user's LID becomes known, the sessions and identity keys still stored under
//! their PN addresses are moved to the LID addresses in one store commit (a LID record
//! that already exists wins; the PN one is dropped). The move runs before the first
//! session operation that resolves an address of that user (a decrypt, an encrypt, a
//! retry), whichever source taught the mapping (stanza attributes, usync, history sync),
//! so it needs no hook in every source. It is idempotent; a bounded in-memory set keeps
//! it to one store lookup per user per run.
//!
//! Group sender keys received from others are named by the same address as the sender's
//! session (the LID device once known, as whatsmeow does), whether the group addresses
//! the sender by PN or by LID. One stored under the sender's PN name before the mapping
//! was known moves to the LID name when it is next needed: before a distribution from
//! that sender is taken in, and when an `skmsg` finds no key under the LID name. The move
//! is staged with the decryption and committed with it.

use std::collections::HashSet;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use tracing::debug;
use wa_binary::{Jid, Server};
use wa_socket::LazyCache;
use wa_store::{AccountStore, Batch, IdentityStore, LidMappingStore, Role, SessionStore};

use crate::Error;
use crate::messenger::{Inner, Me};
use wa_types::LidMapping;

/// Users remembered as migrated before the set is cleared (it only saves lookups).
const MAX_MIGRATED: usize = 16_384;
/// Mappings kept in memory (each direction).
const MAPPING_CACHE_CAPACITY: u64 = 16_384;
/// How long a cached mapping is trusted before the store is asked again.
const MAPPING_CACHE_TTL: Duration = Duration::from_secs(3600);

/// The Signal address domain suffix of LID and hosted LID devices.
const LID_DOMAIN: &str = "_1";
const HOSTED_LID_DOMAIN: &str = "_129";
const HOSTED_PN_DOMAIN: &str = "_128";

/// In-memory state of the LID addressing: cached mappings and migrated users.
pub(crate) struct LidState {
    /// PN user -> LID user (found mappings only).
    lids: LazyCache<String, String>,
    /// LID user -> PN user (found mappings only).
    pns: LazyCache<String, String>,
    /// PN users found without a stored LID, with the store's mapping generation
    /// ([`AccountStore::generation`]) taken before the lookup: trusted while it holds.
    no_lid: LazyCache<String, u64>,
    /// LID users found without a stored phone number, the same way.
    no_pn: LazyCache<String, u64>,
    /// PN users whose PN-addressed sessions were moved, or found to be absent, in this run.
    migrated: StdMutex<HashSet<String>>,
}

impl Default for LidState {
    fn default() -> Self {
        Self {
            lids: LazyCache::new(MAPPING_CACHE_CAPACITY, MAPPING_CACHE_TTL),
            pns: LazyCache::new(MAPPING_CACHE_CAPACITY, MAPPING_CACHE_TTL),
            no_lid: LazyCache::new(MAPPING_CACHE_CAPACITY, MAPPING_CACHE_TTL),
            no_pn: LazyCache::new(MAPPING_CACHE_CAPACITY, MAPPING_CACHE_TTL),
            migrated: StdMutex::new(HashSet::new()),
        }
    }
}

impl LidState {
    fn migrated(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // Only inserts and lookups on a set; a panic cannot leave it torn.
        self.migrated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn is_migrated(&self, pn: &str) -> bool {
        self.migrated().contains(pn)
    }

    fn mark_migrated(&self, pn: &str) {
        let mut set = self.migrated();
        if set.len() >= MAX_MIGRATED {
            set.clear();
        }
        set.insert(pn.to_owned());
    }

    /// Remembers a mapping learned from any source.
    pub(crate) async fn remember(&self, pn: &str, lid: &str) {
        self.lids.insert(pn.to_owned(), lid.to_owned()).await;
        self.pns.insert(lid.to_owned(), pn.to_owned()).await;
    }
}

/// Which half of a mapping a lookup asks for.
#[derive(Clone, Copy)]
enum Way {
    /// The LID of a phone number.
    LidOfPn,
    /// The phone number of a LID.
    PnOfLid,
}

/// Whether a device JID is addressed by phone number (plain or hosted).
fn is_pn_device(jid: &Jid) -> bool {
    jid.is_pn_user() || (jid.server == Server::Hosted && !jid.user.is_empty())
}

/// The LID device JID of a PN device whose user is LID user `lid`.
fn lid_device(pn_device: &Jid, lid: &str) -> Jid {
    let server = if pn_device.server == Server::Hosted {
        Server::HostedLid
    } else {
        Server::Lid
    };
    Jid::with_device(lid.to_owned(), server, pn_device.device)
}

/// Stages into `batch` the move of every session and identity key stored under user
/// `pn`'s PN addresses to user `lid`'s LID addresses. A session already under the LID
/// address is kept and the PN one dropped; a moved session brings its identity key along,
/// otherwise a PN identity key only fills a missing LID one. Returns how many sessions
/// move. Reads only; nothing is written until `batch` is committed.
pub(crate) async fn stage_migration(
    store: &AccountStore,
    pn: &str,
    lid: &str,
    batch: &mut Batch,
) -> Result<usize, wa_store::Error> {
    let mut moved = 0;
    let pairs = [
        (pn.to_owned(), format!("{lid}{LID_DOMAIN}")),
        (
            format!("{pn}{HOSTED_PN_DOMAIN}"),
            format!("{lid}{HOSTED_LID_DOMAIN}"),
        ),
    ];
    for (from, to) in &pairs {
        let mut devices = store.session_devices(from).await?;
        let identities = store.list_items(Role::Identity, from).await?;
        devices.extend(identities.iter().filter_map(|(k, _)| k.parse::<u32>().ok()));
        devices.sort_unstable();
        devices.dedup();
        for d in devices {
            let mut session_moved = false;
            if let Some(session) = store.get_session(from, d).await? {
                if store.get_session(to, d).await?.is_none() {
                    batch.put_session(to, d, &session);
                    session_moved = true;
                    moved += 1;
                }
                batch.delete_session(from, d);
            }
            if let Some(identity) = store.get_identity(from, d).await? {
                if session_moved || store.get_identity(to, d).await?.is_none() {
                    batch.put_identity(to, d, &identity);
                }
                batch.delete_identity(from, d);
            }
        }
    }
    Ok(moved)
}

/// Most mappings taken from one `LID_MIGRATION_MAPPING_SYNC` message.
pub(crate) const MAX_SYNCED_MAPPINGS: usize = 50_000;

/// `LIDMigrationMappingSyncPayload` (the bytes inside `LIDMigrationMappingSyncMessage`;
/// not among the generated messages).
#[derive(Clone, PartialEq, prost::Message)]
struct MappingSyncPayload {
    #[prost(message, repeated, tag = "1")]
    pn_to_lid_mappings: Vec<MigrationMapping>,
}

/// `LIDMigrationMapping`: a phone number and its LID user numbers.
#[derive(Clone, PartialEq, prost::Message)]
struct MigrationMapping {
    #[prost(uint64, tag = "1")]
    pn: u64,
    #[prost(uint64, tag = "2")]
    assigned_lid: u64,
    #[prost(uint64, optional, tag = "3")]
    latest_lid: Option<u64>,
}

/// Adds the mappings of a `LID_MIGRATION_MAPPING_SYNC` protocol message (sent by our
/// phone) to `batch`, the latest LID of each phone number preferred over the assigned
/// one; returns them. None when the message is not one, or its payload does not
/// decode. Sessions move at their next use (see [`Inner::session_jid`]).
pub(crate) fn stage_mapping_sync(
    message: &wa_proto::e2e::Message,
    batch: &mut Batch,
) -> Vec<LidMapping> {
    use prost::Message as _;
    use wa_proto::e2e::protocol_message::Type;
    let Some(pm) = message.protocol_message.as_deref() else {
        return Vec::new();
    };
    if pm.r#type != Some(Type::LidMigrationMappingSync as i32) {
        return Vec::new();
    }
    let Some(bytes) = pm
        .lid_migration_mapping_sync_message
        .as_ref()
        .and_then(|m| m.encoded_mapping_payload.as_deref())
    else {
        return Vec::new();
    };
    let payload = match MappingSyncPayload::decode(bytes) {
        Ok(p) => p,
        Err(e) => {
            debug!("undecodable LID mapping sync payload: {e}");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for m in payload.pn_to_lid_mappings.iter().take(MAX_SYNCED_MAPPINGS) {
        let lid = m.latest_lid.filter(|l| *l != 0).unwrap_or(m.assigned_lid);
        if m.pn == 0 || lid == 0 {
            continue;
        }
        let (pn, lid) = (m.pn.to_string(), lid.to_string());
        batch.put_lid_mapping(&pn, &lid);
        out.push(LidMapping::of_users(&lid, &pn));
    }
    out
}

impl Inner {
    /// The LID user of PN user `pn`: ours from the credentials when they name it, else a
    /// cached or stored mapping.
    async fn lid_of(&self, me: &Me, pn: &Jid) -> Result<Option<String>, Error> {
        if pn.user == me.pn.user
            && let Some(l) = &me.lid
        {
            return Ok(Some(l.user.to_string()));
        }
        Ok(self.lid_for_pn(&pn.user).await?)
    }

    /// The PN user of LID user `lid`: ours from the credentials, else a cached or stored
    /// mapping.
    async fn pn_of(&self, me: &Me, lid: &Jid) -> Result<Option<String>, Error> {
        if me.lid.as_ref().is_some_and(|l| l.user == lid.user) {
            return Ok(Some(me.pn.user.to_string()));
        }
        Ok(self.pn_for_lid(&lid.user).await?)
    }

    /// The LID user of PN user `pn` from the mapping cache, else from the store (and
    /// cached, found or not).
    ///
    /// # Errors
    /// The store's, when the lookup fails.
    pub(crate) async fn lid_for_pn(&self, pn: &str) -> Result<Option<String>, wa_store::Error> {
        self.mapping(Way::LidOfPn, pn).await
    }

    /// The PN user of LID user `lid` from the mapping cache, else from the store (and
    /// cached, found or not).
    ///
    /// # Errors
    /// The store's, when the lookup fails.
    pub(crate) async fn pn_for_lid(&self, lid: &str) -> Result<Option<String>, wa_store::Error> {
        self.mapping(Way::PnOfLid, lid).await
    }

    /// The other half of `user`'s mapping: a found one from the cache; an absent one
    /// from the cache while no mapping was written since it was found absent; else from
    /// the store.
    async fn mapping(&self, way: Way, user: &str) -> Result<Option<String>, wa_store::Error> {
        let (found, absent) = match way {
            Way::LidOfPn => (&self.lid.lids, &self.lid.no_lid),
            Way::PnOfLid => (&self.lid.pns, &self.lid.no_pn),
        };
        if let Some(other) = found.get(user).await {
            return Ok(Some(other));
        }
        let store = self.socket.store();
        let generation = store.generation(Role::LidMapping);
        if absent.get(user).await == Some(generation) {
            return Ok(None);
        }
        let user = user.to_owned();
        let other = match way {
            Way::LidOfPn => store.lid_for_pn(&user).await?,
            Way::PnOfLid => store.pn_for_lid(&user).await?,
        };
        match (&other, way) {
            (Some(lid), Way::LidOfPn) => self.lid.remember(&user, lid).await,
            (Some(pn), Way::PnOfLid) => self.lid.remember(pn, &user).await,
            (None, _) => absent.insert(user, generation).await,
        }
        Ok(other)
    }

    /// The phone-number device of LID device `device` (plain or hosted), when its user's
    /// phone number is known: the other name its sender keys may have been stored under.
    ///
    /// # Errors
    /// [`Error::Store`] when the mapping lookup fails.
    pub(crate) async fn pn_device(&self, me: &Me, device: &Jid) -> Result<Option<Jid>, Error> {
        let server = match device.server {
            Server::Lid => Server::Pn,
            Server::HostedLid => Server::Hosted,
            _ => return Ok(None),
        };
        Ok(self
            .pn_of(me, device)
            .await?
            .map(|pn| Jid::with_device(pn, server, device.device)))
    }

    /// Moves user `pn`'s PN-addressed sessions to LID user `lid` unless done in this run
    /// already. Runs under the crypto lock.
    async fn ensure_migrated(&self, pn: &str, lid: &str) -> Result<(), Error> {
        if self.lid.is_migrated(pn) {
            return Ok(());
        }
        let store = self.socket.store();
        let mut batch = Batch::new();
        let moved = stage_migration(store, pn, lid, &mut batch).await?;
        if !batch.is_empty() {
            store.commit(batch).await?;
            debug!("moved {moved} sessions of {pn} to LID {lid}");
        }
        self.lid.mark_migrated(pn);
        Ok(())
    }

    /// The JID whose Signal address holds our session with peer device `device`: its LID
    /// device when the user's LID is known (named by `device` itself, our credentials or
    /// a stored mapping), else `device`. Sessions of that user still under PN addresses
    /// are moved to the LID addresses first. Needs the crypto lock (`_crypto`), as it may
    /// rewrite sessions.
    ///
    /// # Errors
    /// [`Error::Store`] when a mapping lookup or the migration commit fails.
    pub(crate) async fn session_jid(
        &self,
        _crypto: &crate::messenger::CryptoGuard<'_>,
        me: &Me,
        device: &Jid,
    ) -> Result<Jid, Error> {
        let plan = self.session_plan(me, device).await?;
        self.carry_out(&plan).await?;
        Ok(plan.session)
    }

    /// What [`Inner::session_jid`] would do for `device`, without doing it: the session
    /// address and the migration it needs first, if any. Reads only.
    ///
    /// # Errors
    /// [`Error::Store`] when a mapping lookup fails.
    pub(crate) async fn session_plan(&self, me: &Me, device: &Jid) -> Result<SessionPlan, Error> {
        let unmigrated = |pn: &str, lid: &str| {
            (!self.lid.is_migrated(pn)).then(|| (pn.to_owned(), lid.to_owned()))
        };
        if matches!(device.server, Server::Lid | Server::HostedLid) {
            let migrate = match self.pn_of(me, device).await? {
                Some(pn) => unmigrated(&pn, device.user.as_str()),
                None => None,
            };
            return Ok(SessionPlan {
                session: device.clone(),
                migrate,
            });
        }
        if !is_pn_device(device) {
            return Ok(SessionPlan {
                session: device.clone(),
                migrate: None,
            });
        }
        Ok(match self.lid_of(me, device).await? {
            Some(lid) => SessionPlan {
                session: lid_device(device, &lid),
                migrate: unmigrated(device.user.as_str(), &lid),
            },
            None => SessionPlan {
                session: device.clone(),
                migrate: None,
            },
        })
    }

    /// Moves the sessions `plan` names to their LID addresses (nothing when it names no
    /// migration). Needs the crypto lock, with no group of sends open.
    ///
    /// # Errors
    /// [`Error::Store`] when the migration commit fails.
    pub(crate) async fn carry_out(&self, plan: &SessionPlan) -> Result<(), Error> {
        match &plan.migrate {
            Some((pn, lid)) => self.ensure_migrated(pn, lid).await,
            None => Ok(()),
        }
    }

    /// Adopts a mapping a stanza states (`sender_lid`, `participant_pn`, ...): stores it,
    /// unless already known, and moves the user's PN sessions to the LID addresses, in
    /// one commit. Needs the crypto lock.
    ///
    /// # Errors
    /// [`Error::Store`] when the lookups or the commit fail.
    pub(crate) async fn adopt_mapping(
        &self,
        _crypto: &crate::messenger::CryptoGuard<'_>,
        me: &Me,
        pn: &Jid,
        lid: &Jid,
    ) -> Result<(), Error> {
        // Our own LID comes from the credentials when they name it.
        if !pn.is_pn_user() || !lid.is_lid() || (pn.user == me.pn.user && me.lid.is_some()) {
            return Ok(());
        }
        let known = self.lid_of(me, pn).await?;
        if known.as_deref() == Some(lid.user.as_str()) && self.lid.is_migrated(pn.user.as_str()) {
            return Ok(());
        }
        let store = self.socket.store();
        let mut batch = Batch::new();
        if known.as_deref() != Some(lid.user.as_str()) {
            batch.put_lid_mapping(&pn.user, &lid.user);
        }
        let moved = stage_migration(store, &pn.user, &lid.user, &mut batch).await?;
        let new = known.as_deref() != Some(lid.user.as_str());
        store.commit(batch).await?;
        if new {
            self.socket
                .emit(wa_socket::Event::LidMappings(vec![LidMapping::of_users(
                    &lid.user, &pn.user,
                )]));
        }
        if moved > 0 {
            debug!("moved {moved} sessions of {pn} to LID {lid}");
        }
        self.lid.remember(&pn.user, &lid.user).await;
        self.lid.mark_migrated(&pn.user);
        Ok(())
    }
}

/// Where the session with one peer device lives, and the move of that user's sessions
/// from PN to LID addresses it needs first ([`Inner::session_plan`]).
#[derive(Debug)]
pub(crate) struct SessionPlan {
    /// The JID whose Signal address holds the session.
    pub(crate) session: Jid,
    /// The PN user and LID user whose sessions are still to be moved.
    pub(crate) migrate: Option<(String, String)>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use wa_store::{AccountId, MemoryBackend};

    fn store() -> AccountStore {
        AccountStore::new(Arc::new(MemoryBackend::new()), AccountId::new("t").unwrap())
    }

    async fn migrate(store: &AccountStore, pn: &str, lid: &str) -> usize {
        let mut b = Batch::new();
        let n = stage_migration(store, pn, lid, &mut b).await.unwrap();
        store.commit(b).await.unwrap();
        n
    }

    #[tokio::test]
    async fn pn_sessions_and_identities_move_to_lid_addresses() {
        let s = store();
        s.put_session("1555", 0, b"phone").await.unwrap();
        s.put_session("1555", 7, b"companion").await.unwrap();
        s.put_identity("1555", 0, b"id0").await.unwrap();
        s.put_identity("1555", 7, b"id7").await.unwrap();
        s.put_session("1555_128", 99, b"hosted").await.unwrap();
        // Another user is left alone.
        s.put_session("1666", 0, b"other").await.unwrap();

        assert_eq!(migrate(&s, "1555", "42").await, 3);
        assert_eq!(
            s.get_session("42_1", 0).await.unwrap().as_deref(),
            Some(&b"phone"[..])
        );
        assert_eq!(
            s.get_session("42_1", 7).await.unwrap().as_deref(),
            Some(&b"companion"[..])
        );
        assert_eq!(
            s.get_identity("42_1", 7).await.unwrap().as_deref(),
            Some(&b"id7"[..])
        );
        assert_eq!(
            s.get_session("42_129", 99).await.unwrap().as_deref(),
            Some(&b"hosted"[..])
        );
        assert!(s.session_devices("1555").await.unwrap().is_empty());
        assert!(s.session_devices("1555_128").await.unwrap().is_empty());
        assert!(s.get_identity("1555", 0).await.unwrap().is_none());
        assert!(s.get_session("1666", 0).await.unwrap().is_some());

        // Again: nothing left to move, nothing changes.
        let mut b = Batch::new();
        assert_eq!(stage_migration(&s, "1555", "42", &mut b).await.unwrap(), 0);
        assert!(b.is_empty());
        assert_eq!(
            s.get_session("42_1", 7).await.unwrap().as_deref(),
            Some(&b"companion"[..])
        );
    }

    #[tokio::test]
    async fn an_existing_lid_session_wins() {
        let s = store();
        s.put_session("1555", 3, b"old pn").await.unwrap();
        s.put_identity("1555", 3, b"pn id").await.unwrap();
        s.put_session("42_1", 3, b"lid").await.unwrap();
        s.put_identity("42_1", 3, b"lid id").await.unwrap();
        assert_eq!(migrate(&s, "1555", "42").await, 0);
        assert_eq!(
            s.get_session("42_1", 3).await.unwrap().as_deref(),
            Some(&b"lid"[..])
        );
        assert_eq!(
            s.get_identity("42_1", 3).await.unwrap().as_deref(),
            Some(&b"lid id"[..])
        );
        assert!(s.get_session("1555", 3).await.unwrap().is_none());
        assert!(s.get_identity("1555", 3).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_moved_session_brings_its_identity() {
        let s = store();
        s.put_session("1555", 2, b"pn").await.unwrap();
        s.put_identity("1555", 2, b"new id").await.unwrap();
        // A stale LID identity without a session is replaced by the moved session's.
        s.put_identity("42_1", 2, b"stale").await.unwrap();
        assert_eq!(migrate(&s, "1555", "42").await, 1);
        assert_eq!(
            s.get_identity("42_1", 2).await.unwrap().as_deref(),
            Some(&b"new id"[..])
        );
    }

    fn mapping_sync(payload: Vec<u8>) -> wa_proto::e2e::Message {
        use wa_proto::e2e::{LidMigrationMappingSyncMessage, ProtocolMessage, protocol_message};
        wa_proto::e2e::Message {
            protocol_message: Some(Box::new(ProtocolMessage {
                r#type: Some(protocol_message::Type::LidMigrationMappingSync as i32),
                lid_migration_mapping_sync_message: Some(LidMigrationMappingSyncMessage {
                    encoded_mapping_payload: Some(payload),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn mapping_sync_messages_store_the_latest_lid() {
        use prost::Message as _;
        let payload = MappingSyncPayload {
            pn_to_lid_mappings: vec![
                MigrationMapping {
                    pn: 1555,
                    assigned_lid: 40,
                    latest_lid: Some(42),
                },
                MigrationMapping {
                    pn: 1666,
                    assigned_lid: 43,
                    latest_lid: None,
                },
                // Unusable entries are skipped.
                MigrationMapping {
                    pn: 0,
                    assigned_lid: 44,
                    latest_lid: None,
                },
            ],
        }
        .encode_to_vec();
        let s = store();
        let mut b = Batch::new();
        assert_eq!(
            stage_mapping_sync(&mapping_sync(payload), &mut b),
            [
                LidMapping::of_users("42", "1555"),
                LidMapping::of_users("43", "1666")
            ]
        );
        s.commit(b).await.unwrap();
        assert_eq!(s.lid_for_pn("1555").await.unwrap().as_deref(), Some("42"));
        assert_eq!(s.pn_for_lid("43").await.unwrap().as_deref(), Some("1666"));
        assert_eq!(s.pn_for_lid("44").await.unwrap(), None);

        // Not a mapping sync, or garbage inside: nothing.
        let mut b = Batch::new();
        assert_eq!(
            stage_mapping_sync(&mapping_sync(vec![0x0a, 0xff, 0xff]), &mut b),
            []
        );
        assert_eq!(
            stage_mapping_sync(&wa_proto::e2e::Message::default(), &mut b),
            []
        );
        assert!(b.is_empty());
    }

    #[test]
    fn lid_device_keeps_the_device_and_hosted_domain() {
        let pn = Jid::with_device("1555", Server::Pn, 4);
        assert_eq!(
            lid_device(&pn, "42"),
            Jid::with_device("42", Server::Lid, 4)
        );
        let hosted = Jid::with_device("1555", Server::Hosted, 99);
        let l = lid_device(&hosted, "42");
        assert_eq!(l.server, Server::HostedLid);
        assert_eq!(l.signal_address(), ("42_129".to_owned(), 99));
        assert_eq!(
            lid_device(&pn, "42").signal_address(),
            ("42_1".to_owned(), 4)
        );
        assert!(is_pn_device(&pn) && is_pn_device(&hosted));
        assert!(!is_pn_device(&Jid::lid("42")) && !is_pn_device(&Jid::group("1-2")));
    }
}
