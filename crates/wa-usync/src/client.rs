//! The [`Usync`] handle: usync queries over a socket, with a device-list cache.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::AbortHandle;
use wa_binary::{Jid, Node, Server};
use wa_socket::{Filter, LazyCache, Socket};

use crate::Error;
use crate::query::{DisappearingMode, Protocol, UsyncQuery, UsyncUser, device_jids, parse_reply};
use crate::vname::VerifiedName;

/// Cache settings of a [`Usync`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsyncConfig {
    /// Most users whose device lists are cached.
    pub cache_capacity: u64,
    /// How long a cached device list is trusted.
    pub cache_ttl: Duration,
}

impl Default for UsyncConfig {
    fn default() -> Self {
        Self {
            cache_capacity: 5_000,
            cache_ttl: Duration::from_secs(60 * 60),
        }
    }
}

/// The answer to [`Usync::on_whatsapp`] for one phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OnWhatsApp {
    /// The query as the server echoed it (`+digits`), or as asked when not echoed.
    pub query: String,
    /// The user's phone-number JID (the reply's `pn_jid`, else its `jid`; Baileys'
    /// `jid`). Only when the server names the user by LID alone is this the LID.
    pub jid: Jid,
    /// The user's LID, when the server names one (whatsmeow's `JID` for LID users;
    /// Baileys' `lid`). Stored as the phone number's LID mapping.
    pub lid: Option<Jid>,
    /// The number has a WhatsApp account.
    pub exists: bool,
    /// The account's verified business name, when it is a business with a well-formed
    /// certificate.
    pub verified_name: Option<VerifiedName>,
    /// The username the account chose, if any.
    pub username: Option<String>,
    /// The account's default disappearing-messages timer for new chats, when the server
    /// said (duration 0 = off).
    pub disappearing: Option<DisappearingMode>,
}

impl OnWhatsApp {
    fn from_user(user: UsyncUser) -> Option<Self> {
        let contact = user.contact.as_ref()?;
        let jid = user.phone_number().unwrap_or(&user.jid).to_non_ad();
        Some(Self {
            query: contact
                .query
                .clone()
                .unwrap_or_else(|| format!("+{}", jid.user.as_str())),
            lid: user.lid_jid().map(Jid::to_non_ad),
            exists: contact.exists,
            jid,
            verified_name: user.verified_name,
            username: user.username,
            disappearing: user.disappearing,
        })
    }
}

/// The answer to [`Usync::user_info`] for one user (whatsmeow's `UserInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct UserInfo {
    /// The verified business name, for a business account with a well-formed
    /// certificate.
    pub verified_name: Option<VerifiedName>,
    /// The status text ("about"); `None` when the user has none or hides it from us.
    pub status: Option<String>,
    /// When the status was set (unix seconds), when the server said.
    pub status_set_at: Option<u64>,
    /// The current profile picture's id, when the user has one we may see.
    pub picture_id: Option<String>,
    /// The user's device JIDs (phone first); empty when the server reported none.
    pub devices: Vec<Jid>,
    /// The user's LID, when the server knows one.
    pub lid: Option<Jid>,
    /// The user's phone-number JID, when known: the JID asked about when that is a
    /// phone number, else the reply's `pn_jid`. With [`UserInfo::lid`] it is the pair
    /// stored as a LID mapping.
    pub pn: Option<Jid>,
}

impl UserInfo {
    fn from_user(user: UsyncUser, key: &Jid) -> Self {
        let lid = user.lid_jid().map(Jid::to_non_ad);
        let pn = user.phone_number().map(Jid::to_non_ad);
        let (status, status_set_at) = match user.status {
            Some(s) if !s.hidden && !s.text.is_empty() => (Some(s.text), s.set_at),
            _ => (None, None),
        };
        Self {
            verified_name: user.verified_name,
            status,
            status_set_at,
            picture_id: user.picture_id,
            devices: user
                .devices
                .as_ref()
                .map(|l| device_jids(key, l))
                .unwrap_or_default(),
            lid,
            pn,
        }
    }
}

/// usync over a [`Socket`]. Cheap to clone; the device-list invalidation task stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct Usync {
    inner: Arc<Inner>,
}

struct Inner {
    socket: Socket,
    cache: LazyCache<Jid, Arc<Vec<Jid>>>,
    queries: AtomicU64,
    /// Bumped on every devices notification; a query's answer is cached only if no
    /// notification arrived while it was in flight (it may predate the change).
    generation: Arc<AtomicU64>,
    listener: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl std::fmt::Debug for Usync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Usync")
            .field("cached", &self.inner.cache.entry_count())
            .field("queries", &self.queries_sent())
            .finish()
    }
}

/// Stanzas queued for the invalidation task before the socket's reader waits.
const NOTIFICATION_QUEUE: usize = 64;

impl Usync {
    /// Wraps `socket` and subscribes to `<notification type="devices">` (which it
    /// acknowledges). Must be called inside a Tokio runtime.
    pub fn new(socket: Socket, config: &UsyncConfig) -> Self {
        let cache: LazyCache<Jid, Arc<Vec<Jid>>> =
            LazyCache::new(config.cache_capacity, config.cache_ttl);
        let mut rx = socket.subscribe(
            Filter::tag("notification").kind("devices"),
            NOTIFICATION_QUEUE,
        );
        let generation = Arc::new(AtomicU64::new(0));
        let (task_socket, task_cache, task_gen) =
            (socket.clone(), cache.clone(), generation.clone());
        let listener = tokio::spawn(async move {
            while let Some(node) = rx.recv().await {
                // Boxed per stanza, so the idle listener task stays small.
                Box::pin(async {
                    task_gen.fetch_add(1, Ordering::SeqCst);
                    if let Some(user) = notification_user(&node) {
                        tracing::debug!(%user, "device list changed; dropping cached devices");
                        task_cache.invalidate(&user).await;
                    }
                    if let Err(e) = task_socket.send_node(&wa_socket::ack_for(&node)).await {
                        tracing::debug!("devices notification ack not sent: {e}");
                    }
                })
                .await;
            }
        })
        .abort_handle();
        Self {
            inner: Arc::new(Inner {
                socket,
                cache,
                queries: AtomicU64::new(0),
                generation,
                listener,
            }),
        }
    }

    /// How many usync queries went to the server (cache hits do not count).
    pub fn queries_sent(&self) -> u64 {
        self.inner.queries.load(Ordering::Relaxed)
    }

    /// Drops every cached device list.
    pub fn clear_cache(&self) {
        self.inner.cache.invalidate_all();
    }

    /// Sends `query` and parses the reply.
    ///
    /// # Errors
    /// Socket errors, and the parse errors of [`parse_reply`](crate::parse_reply).
    pub async fn run(&self, query: &UsyncQuery) -> Result<Vec<UsyncUser>, Error> {
        let sid = self.inner.socket.generate_id();
        let node = query.build(&sid)?;
        self.inner.queries.fetch_add(1, Ordering::Relaxed);
        let reply = self.inner.socket.query(node).await?;
        parse_reply(&reply)
    }

    /// The device JIDs of each user (keyed by the user's non-device JID), from the cache
    /// or one usync query for the missing ones. Users the server reports an error for
    /// are absent from the map. The own device is not excluded. A bot ([`Jid::is_bot`])
    /// has no device list: the server answers nothing for it, so it is its own only
    /// device and is not asked about.
    ///
    /// # Errors
    /// As [`Usync::run`].
    pub async fn get_devices(&self, users: &[Jid]) -> Result<HashMap<Jid, Vec<Jid>>, Error> {
        let mut out = HashMap::with_capacity(users.len());
        let mut missing: Vec<Jid> = Vec::new();
        let mut seen: HashSet<Jid> = HashSet::with_capacity(users.len());
        for u in users {
            let key = u.to_non_ad();
            if !seen.insert(key.clone()) {
                continue;
            }
            if key.is_bot() {
                out.insert(key.clone(), vec![key]);
                continue;
            }
            match self.inner.cache.get(&key).await {
                Some(devs) => {
                    out.insert(key, devs.as_ref().clone());
                }
                None => missing.push(key),
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let query = missing.iter().fold(
            UsyncQuery::new("message").protocol(Protocol::Devices),
            |q, j| q.user(j),
        );
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let users = self.run(&query).await?;
        let lists: Vec<(Jid, Vec<Jid>)> = users
            .iter()
            .filter_map(|user| {
                let key = user.jid.to_non_ad();
                let devs = device_jids(&key, user.devices.as_ref()?);
                Some((key, devs))
            })
            .collect();
        self.cache_device_lists(generation, &lists).await;
        out.extend(lists);
        Ok(out)
    }

    /// Caches device lists a query answered, if no devices notification arrived since
    /// `generation` was read before sending it (the lists may predate the change).
    async fn cache_device_lists(&self, generation: u64, lists: &[(Jid, Vec<Jid>)]) {
        if self.inner.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        for (key, devs) in lists {
            self.inner
                .cache
                .insert(key.clone(), Arc::new(devs.clone()))
                .await;
        }
        // A notification handled between the check above and the inserts: drop what was
        // just inserted rather than keep a list that may predate it.
        if self.inner.generation.load(Ordering::SeqCst) != generation {
            for (key, _) in lists {
                self.inner.cache.invalidate(key).await;
            }
        }
    }

    /// Profile facts of each user in one query (whatsmeow's `GetUserInfo`, mode `full`,
    /// context `background`): verified business name, status text and when it was set,
    /// profile picture id, devices, LID and phone number. Each user goes with the
    /// privacy token it issued to us, when a valid one is stored
    /// ([`Socket::privacy_token`]), so privacy settings that favour trusted contacts
    /// apply. Keyed by the user's non-device JID as the server names it; users the
    /// server does not answer for are absent, and a protocol the server reports an
    /// error for leaves that field empty. The device lists learnt are cached as
    /// [`Usync::get_devices`] caches them, and the LID/phone-number pairs learnt are
    /// stored (see [`Usync::on_whatsapp`]).
    ///
    /// # Errors
    /// As [`Usync::run`].
    pub async fn user_info(&self, users: &[Jid]) -> Result<HashMap<Jid, UserInfo>, Error> {
        let mut query = UsyncQuery::new("background")
            .mode("full")
            .protocol(Protocol::BusinessVerifiedName)
            .protocol(Protocol::Status)
            .protocol(Protocol::Picture)
            .protocol(Protocol::Devices)
            .protocol(Protocol::Lid);
        for jid in users {
            let token = self.inner.socket.privacy_token(&jid.to_non_ad()).await;
            query = query.user_with_token(jid, token);
        }
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let answered = self.run(&query).await?;
        self.store_lid_mappings(&answered).await;
        let mut lists = Vec::new();
        let mut out = HashMap::with_capacity(answered.len());
        for user in answered {
            let key = user.jid.to_non_ad();
            if let Some(list) = &user.devices {
                lists.push((key.clone(), device_jids(&key, list)));
            }
            let info = UserInfo::from_user(user, &key);
            out.insert(key, info);
        }
        self.cache_device_lists(generation, &lists).await;
        Ok(out)
    }

    /// Whether each phone number (digits, with or without `+`) is on WhatsApp, in reply
    /// order (whatsmeow's `IsOnWhatsApp`): the query asks for LID addressing, so each
    /// answer carries the account's phone-number JID and LID, with the verified name of
    /// business accounts, the username and the default disappearing-messages timer.
    ///
    /// The LID/phone-number pairs learnt are stored as LID mappings in one commit
    /// (those already known are left alone) and announced with `Event::LidMappings`;
    /// a failure to store them is logged, not returned, since the answer stands.
    ///
    /// # Errors
    /// As [`Usync::run`].
    pub async fn on_whatsapp(&self, phones: &[&str]) -> Result<Vec<OnWhatsApp>, Error> {
        let query = phones.iter().fold(
            UsyncQuery::new("interactive")
                .lid_addressing()
                .protocol(Protocol::Contact)
                .protocol(Protocol::BusinessVerifiedName)
                .protocol(Protocol::Disappearing)
                .protocol(Protocol::Username),
            |q, p| q.phone(*p),
        );
        let users = self.run(&query).await?;
        self.store_lid_mappings(&users).await;
        Ok(users
            .into_iter()
            .filter_map(OnWhatsApp::from_user)
            .collect())
    }

    /// Stores the LID/phone-number pairs `users` name that the account store does not
    /// already hold, in one commit, then emits them as `Event::LidMappings`. Failures
    /// are logged: the mappings will be learnt again.
    async fn store_lid_mappings(&self, users: &[UsyncUser]) {
        use wa_store::LidMappingStore as _;
        let store = self.inner.socket.store();
        let mut batch = wa_store::Batch::new();
        let mut learnt: Vec<wa_types::LidMapping> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for user in users {
            let Some((pn, lid)) = user.lid_mapping() else {
                continue;
            };
            let (pn, lid) = (pn.user.as_str(), lid.user.as_str());
            if !seen.insert(pn) {
                continue;
            }
            match store.lid_for_pn(pn).await {
                Ok(Some(known)) if known == lid => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("LID mapping lookup of {pn} failed: {e}");
                    continue;
                }
            }
            batch.put_lid_mapping(pn, lid);
            learnt.push(wa_types::LidMapping::of_users(lid, pn));
        }
        if learnt.is_empty() {
            return;
        }
        match store.commit(batch).await {
            Ok(()) => {
                tracing::debug!(count = learnt.len(), "LID mappings learnt from usync");
                self.inner
                    .socket
                    .emit(wa_socket::Event::LidMappings(learnt));
            }
            Err(e) => tracing::warn!("LID mappings from usync not stored: {e}"),
        }
    }

    /// The LID of each user the server knows one for (keyed by the user's non-device
    /// JID).
    ///
    /// # Errors
    /// As [`Usync::run`].
    pub async fn lid_for(&self, users: &[Jid]) -> Result<HashMap<Jid, Jid>, Error> {
        self.per_user(users, Protocol::Lid, |u| u.lid).await
    }

    /// Runs an interactive query of `protocol` for `users` and keeps what `pick` takes
    /// from each answer, keyed by the user's non-device JID.
    async fn per_user<T>(
        &self,
        users: &[Jid],
        protocol: Protocol,
        pick: impl Fn(UsyncUser) -> Option<T>,
    ) -> Result<HashMap<Jid, T>, Error> {
        let query = users
            .iter()
            .fold(UsyncQuery::new("interactive").protocol(protocol), |q, j| {
                q.user(j)
            });
        Ok(self
            .run(&query)
            .await?
            .into_iter()
            .filter_map(|u| {
                let jid = u.jid.to_non_ad();
                pick(u).map(|v| (jid, v))
            })
            .collect())
    }

    /// The username of each user that has one (keyed by the user's non-device JID);
    /// users without one are left out.
    ///
    /// # Errors
    /// As [`Usync::run`].
    pub async fn usernames(&self, users: &[Jid]) -> Result<HashMap<Jid, String>, Error> {
        self.per_user(users, Protocol::Username, |u| u.username)
            .await
    }
}

/// The user a devices notification is about: its `from`, without a device part.
fn notification_user(node: &Node) -> Option<Jid> {
    let from = node.attr_opt::<Jid>("from").ok().flatten()?;
    matches!(from.server, Server::Pn | Server::Lid).then(|| from.to_non_ad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_user_drops_the_device() {
        let n = Node::builder("notification")
            .attr("from", Jid::with_device("123", Server::Pn, 4))
            .build();
        assert_eq!(notification_user(&n), Some(Jid::pn("123")));
        let g = Node::builder("notification")
            .attr("from", Jid::group("1-2"))
            .build();
        assert_eq!(notification_user(&g), None);
        assert_eq!(
            notification_user(&Node::builder("notification").build()),
            None
        );
    }
}
