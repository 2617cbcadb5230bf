//! The [`Usync`] handle: usync queries over a socket, with a device-list cache.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::AbortHandle;
use wa_binary::{Jid, Node, Server};
use wa_socket::{Filter, LazyCache, Socket};

use crate::Error;
use crate::query::{Protocol, UsyncQuery, UsyncUser, device_jids, parse_reply};
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
    /// The user's JID.
    pub jid: Jid,
    /// The number has a WhatsApp account.
    pub exists: bool,
    /// The account's verified business name, when it is a business with a well-formed
    /// certificate.
    pub verified_name: Option<VerifiedName>,
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
}

impl UserInfo {
    fn from_user(user: UsyncUser, key: &Jid) -> Self {
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
            lid: user.lid,
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
    /// are absent from the map. The own device is not excluded.
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
    /// profile picture id, devices and LID. Keyed by the user's non-device JID as the
    /// server names it; users the server does not answer for are absent, and a
    /// protocol the server reports an error for leaves that field empty. The device
    /// lists learnt are cached as [`Usync::get_devices`] caches them.
    ///
    /// # Errors
    /// As [`Usync::run`].
    pub async fn user_info(&self, users: &[Jid]) -> Result<HashMap<Jid, UserInfo>, Error> {
        let query = users.iter().fold(
            UsyncQuery::new("background")
                .mode("full")
                .protocol(Protocol::BusinessVerifiedName)
                .protocol(Protocol::Status)
                .protocol(Protocol::Picture)
                .protocol(Protocol::Devices)
                .protocol(Protocol::Lid),
            |q, j| q.user(j),
        );
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let answered = self.run(&query).await?;
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

    /// Whether each phone number (digits, with or without `+`) is on WhatsApp, with the
    /// verified name of business accounts, in reply order.
    ///
    /// # Errors
    /// As [`Usync::run`].
    pub async fn on_whatsapp(&self, phones: &[&str]) -> Result<Vec<OnWhatsApp>, Error> {
        let query = phones.iter().fold(
            UsyncQuery::new("interactive")
                .protocol(Protocol::Contact)
                .protocol(Protocol::BusinessVerifiedName),
            |q, p| q.phone(*p),
        );
        Ok(self
            .run(&query)
            .await?
            .into_iter()
            .filter_map(|u| {
                let c = u.contact?;
                Some(OnWhatsApp {
                    query: c
                        .query
                        .unwrap_or_else(|| format!("+{}", u.jid.user.as_str())),
                    jid: u.jid,
                    exists: c.exists,
                    verified_name: u.verified_name,
                })
            })
            .collect())
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
