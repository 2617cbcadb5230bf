use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use moka::sync::Cache;

use crate::{AccountId, Backend, BoxFuture, Error, Op, Role};

type Key = (AccountId, Role, String, String);

fn key(account: &AccountId, role: Role, scope: &str, key: &str) -> Key {
    (account.clone(), role, scope.to_owned(), key.to_owned())
}

/// Limits of a [`CachedBackend`].
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    /// Upper bound on cached bytes (keys plus values, roughly).
    pub max_bytes: u64,
    /// How long an entry may live.
    pub ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            ttl: Duration::from_secs(300),
        }
    }
}

/// A bounded read cache (moka) in front of any backend.
///
/// Single-item reads are cached (absence included); lists always go to the backend. A
/// commit that succeeds writes what it put or deleted through to the cache, so the items
/// a process writes and reads again (Signal sessions, for one) are served from memory
/// after the first read. A commit that fails, or is dropped before it finished, leaves
/// the items it touched uncached (the stored state is then unknown); a whole-scope or
/// expiry delete clears the cache. A bulk read ([`Backend::get_many`]) takes its hits
/// from the cache and fetches the misses in one bulk read: each value obeys the same
/// rules, but together they are not one snapshot when a commit lands while the read runs.
///
/// Invariants, kept per item (items are spread over 1,024 stripes by a hash, and
/// the bookkeeping is per stripe):
/// - while a commit that writes an item is in flight, reads of that item (and of the
///   other items of its stripe) bypass the cache;
/// - a read result is cached only if no commit writing its stripe was in flight when it
///   finished and none began or ended while it ran;
/// - a commit writes through only if no other commit writing the same stripe overlapped
///   it, so the cached value is the one the backend holds last.
///
/// So the cache never shows part of a batch, nor a value older than a commit that
/// returned. Writes that bypass this wrapper (to the inner backend, or from another
/// process) are not seen until their items leave the cache.
#[derive(Debug)]
pub struct CachedBackend<B> {
    inner: B,
    cache: Cache<Key, Option<Bytes>>,
    hasher: RandomState,
    state: Mutex<CacheState>,
}

/// How many stripes the per-item bookkeeping of a [`CachedBackend`] uses.
const STRIPES: usize = 1024;

/// Commits in flight and a change counter, for one stripe of items or for the whole cache.
#[derive(Debug, Default, Clone, Copy)]
struct Flights {
    /// Commits in flight that write here.
    in_flight: u32,
    /// Bumped whenever such a commit begins or ends.
    changes: u64,
}

impl Flights {
    /// Counts a commit in; returns the change counter right after.
    fn begin(&mut self) -> u64 {
        self.in_flight += 1;
        self.changes += 1;
        self.changes
    }

    fn end(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.changes += 1;
    }
}

#[derive(Debug)]
struct CacheState {
    stripes: Vec<Flights>,
    /// Scope or expiry deletes and account deletions: they touch every stripe.
    wide: Flights,
}

/// What a read noted before going to the backend: the counters of its item's stripe
/// and of the whole cache, or `None` when it may not fill the cache at all.
type Seen = Option<(usize, u64, u64)>;

impl CacheState {
    /// Whether reads of stripe `i` may use the cache now.
    fn quiet(&self, i: usize) -> bool {
        self.stripes[i].in_flight == 0 && self.wide.in_flight == 0
    }

    fn seen(&self, i: usize) -> Seen {
        self.quiet(i)
            .then(|| (i, self.stripes[i].changes, self.wide.changes))
    }

    /// Whether a read that noted `seen` may put its result in the cache now.
    fn fillable(&self, seen: Seen) -> bool {
        seen.is_some_and(|(i, stripe, wide)| {
            self.quiet(i) && self.stripes[i].changes == stripe && self.wide.changes == wide
        })
    }
}

/// The items a batch writes, each with its last value in the batch (`None`: deleted), or
/// `Wide` when it deletes a scope or by age.
enum Writes {
    Items(Vec<(Key, Option<Bytes>)>),
    Wide,
}

fn writes(account: &AccountId, ops: &[Op]) -> Writes {
    // Each item once, with its last value: a map, as a batch may write tens of
    // thousands of items (a history sync's mappings).
    let mut out: HashMap<Key, Option<Bytes>> = HashMap::new();
    for op in ops {
        let (role, scope, k, value) = match op {
            Op::Put {
                role,
                scope,
                key,
                value,
                ..
            } => (*role, scope, key, Some(value.clone())),
            Op::Delete { role, scope, key } => (*role, scope, key, None),
            Op::DeleteScope { .. } | Op::DeleteBefore { .. } => return Writes::Wide,
            Op::RequirePresent { .. } | Op::RequireAbsent { .. } => continue,
        };
        out.insert(key(account, role, scope, k), value);
    }
    Writes::Items(out.into_iter().collect())
}

impl<B: Backend> CachedBackend<B> {
    /// Wraps `inner` with a cache bounded by `config`.
    pub fn new(inner: B, config: CacheConfig) -> Self {
        let cache = Cache::builder()
            .max_capacity(config.max_bytes)
            .time_to_live(config.ttl)
            .weigher(|k: &Key, v: &Option<Bytes>| {
                let len = k.0.as_str().len()
                    + k.2.len()
                    + k.3.len()
                    + v.as_ref().map_or(0, Bytes::len)
                    + 32;
                u32::try_from(len).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            inner,
            cache,
            hasher: RandomState::new(),
            state: Mutex::new(CacheState {
                stripes: vec![Flights::default(); STRIPES],
                wide: Flights::default(),
            }),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn state(&self) -> MutexGuard<'_, CacheState> {
        // No code path panics while holding this lock with the counters half updated.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stripe(&self, k: &Key) -> usize {
        // The remainder is below STRIPES, so it fits a usize.
        (self.hasher.hash_one(k) % STRIPES as u64) as usize
    }

    /// Marks the start of a commit (or account deletion, `ops: None`): its items leave
    /// the cache and reads of their stripes bypass it until [`Flight`] ends.
    fn begin(&self, account: &AccountId, ops: Option<&[Op]>) -> Flight<'_, B> {
        let writes = ops.map_or(Writes::Wide, |ops| writes(account, ops));
        let mut st = self.state();
        let mut stripes: Vec<(usize, u64)> = Vec::new();
        match &writes {
            Writes::Wide => {
                self.cache.invalidate_all();
                st.wide.begin();
            }
            Writes::Items(items) => {
                let mut begun = [false; STRIPES];
                for (k, _) in items {
                    self.cache.invalidate(k);
                    let i = self.stripe(k);
                    if !begun[i] {
                        begun[i] = true;
                        stripes.push((i, st.stripes[i].begin()));
                    }
                }
            }
        }
        Flight {
            cache: self,
            writes,
            stripes,
            wide_seen: st.wide.changes,
            ok: false,
        }
    }
}

/// One commit in flight; its end (when dropped) writes through or invalidates.
struct Flight<'a, B: Backend> {
    cache: &'a CachedBackend<B>,
    writes: Writes,
    /// The stripes the commit writes, each with its change counter right after the begin.
    stripes: Vec<(usize, u64)>,
    /// The whole-cache change counter when an item commit began.
    wide_seen: u64,
    /// Whether the backend reported success.
    ok: bool,
}

impl<B: Backend> Drop for Flight<'_, B> {
    fn drop(&mut self) {
        let cache = self.cache;
        let mut st = cache.state();
        match &self.writes {
            Writes::Wide => {
                // A whole-scope change: whatever was cached meanwhile may be stale.
                cache.cache.invalidate_all();
                st.wide.end();
            }
            Writes::Items(items) => {
                // Alone on every stripe it wrote since it began (no other commit began
                // or ended there, no wide one in flight or done meanwhile): the backend
                // holds this batch's values last.
                let alone = self.ok
                    && st.wide.in_flight == 0
                    && st.wide.changes == self.wide_seen
                    && self.stripes.iter().all(|&(i, mine)| {
                        st.stripes[i].in_flight == 1 && st.stripes[i].changes == mine
                    });
                for (k, v) in items {
                    if alone {
                        cache.cache.insert(k.clone(), v.clone());
                    } else {
                        cache.cache.invalidate(k);
                    }
                }
                for &(i, _) in &self.stripes {
                    st.stripes[i].end();
                }
            }
        }
    }
}

impl<B: Backend> Backend for CachedBackend<B> {
    fn get<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            let k = self::key(account, role, scope, key);
            let i = self.stripe(&k);
            let seen = {
                let st = self.state();
                if st.quiet(i)
                    && let Some(v) = self.cache.get(&k)
                {
                    return Ok(v);
                }
                st.seen(i)
            };
            let v = self.inner.get(account, role, scope, key).await?;
            let st = self.state();
            if st.fillable(seen) {
                self.cache.insert(k, v.clone());
            }
            drop(st);
            Ok(v)
        })
    }

    fn get_many<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        keys: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Vec<Option<Bytes>>> {
        Box::pin(async move {
            let mut out: Vec<Option<Option<Bytes>>> = vec![None; keys.len()];
            // For each item not found in the cache: its key and what the read noted.
            let mut missing: Vec<(usize, Key, Seen)> = Vec::new();
            {
                let st = self.state();
                for (n, (slot, (scope, key))) in out.iter_mut().zip(keys).enumerate() {
                    let k = self::key(account, role, scope, key);
                    let i = self.stripe(&k);
                    if st.quiet(i)
                        && let Some(v) = self.cache.get(&k)
                    {
                        *slot = Some(v);
                    } else {
                        missing.push((n, k, st.seen(i)));
                    }
                }
            }
            if !missing.is_empty() {
                let asked: Vec<(&str, &str)> = missing.iter().map(|(n, _, _)| keys[*n]).collect();
                let fetched = self.inner.get_many(account, role, &asked).await?;
                if fetched.len() != asked.len() {
                    return Err(Error::backend(std::io::Error::other(
                        "get_many answered the wrong number of items",
                    )));
                }
                let st = self.state();
                for ((n, k, seen), v) in missing.into_iter().zip(fetched) {
                    if st.fillable(seen) {
                        self.cache.insert(k, v.clone());
                    }
                    out[n] = Some(v);
                }
                drop(st);
            }
            Ok(out.into_iter().map(Option::flatten).collect())
        })
    }

    fn list<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
    ) -> BoxFuture<'a, Vec<(String, Bytes)>> {
        self.inner.list(account, role, scope)
    }

    fn commit<'a>(&'a self, account: &'a AccountId, ops: Vec<Op>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // Ends the flight when dropped, whatever the outcome, also when this future
            // is dropped: writes through after success, invalidates otherwise.
            let mut flight = self.begin(account, Some(&ops));
            let result = self.inner.commit(account, ops).await;
            flight.ok = result.is_ok();
            result
        })
    }

    fn delete_account<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _flight = self.begin(account, None);
            self.inner.delete_account(account).await
        })
    }

    fn accounts(&self) -> BoxFuture<'_, Vec<AccountId>> {
        self.inner.accounts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Read, Tap, Tapped};
    use crate::{AccountStore, MemoryBackend, SessionStore};
    use std::sync::Arc;

    #[tokio::test]
    async fn bulk_reads_use_and_fill_the_cache() {
        let cached = Arc::new(CachedBackend::new(
            MemoryBackend::new(),
            CacheConfig::default(),
        ));
        let acct = AccountId::new("a").unwrap();
        let store = AccountStore::new(cached.clone(), acct.clone());
        store.put_session("u", 1, b"one").await.unwrap();
        store.put_session("u", 2, b"two").await.unwrap();
        // 1 is cached by a single read, 2 and the absent 3 by the bulk read.
        store.get_session("u", 1).await.unwrap();
        let bulk = |store: AccountStore| async move {
            store
                .get_items(Role::Session, &[("u", "1"), ("u", "2"), ("u", "3")])
                .await
                .unwrap()
                .into_iter()
                .map(|v| v.unwrap().map(|b| b.to_vec()))
                .collect::<Vec<_>>()
        };
        let first = bulk(store.clone()).await;
        assert_eq!(
            first,
            vec![Some(b"one".to_vec()), Some(b"two".to_vec()), None]
        );
        // Writes that bypass the cache are not seen, by bulk or single reads.
        let mut ops = crate::Batch::new();
        ops.put_session("u", 1, b"1'");
        ops.put_session("u", 2, b"2'");
        ops.put_session("u", 3, b"3'");
        cached
            .inner()
            .commit(&acct, ops.into_ops().unwrap())
            .await
            .unwrap();
        assert_eq!(bulk(store.clone()).await, first);
        assert_eq!(store.get_session("u", 3).await.unwrap(), None);
        // A commit through the cache invalidates what it wrote.
        store.put_session("u", 2, b"2''").await.unwrap();
        assert_eq!(
            bulk(store.clone()).await,
            vec![Some(b"one".to_vec()), Some(b"2''".to_vec()), None]
        );
    }

    #[tokio::test]
    async fn writes_through_inner_invalidate_only_via_commit() {
        let cached = Arc::new(CachedBackend::new(
            MemoryBackend::new(),
            CacheConfig::default(),
        ));
        let acct = AccountId::new("a").unwrap();
        let store = AccountStore::new(cached.clone(), acct.clone());
        store.put_session("u", 1, b"one").await.unwrap();
        assert_eq!(
            store.get_session("u", 1).await.unwrap().unwrap(),
            &b"one"[..]
        );
        // A write that bypasses the cache is not seen: proof the read was cached.
        let mut ops = crate::Batch::new();
        ops.put_session("u", 1, b"two");
        cached
            .inner()
            .commit(&acct, ops.into_ops().unwrap())
            .await
            .unwrap();
        assert_eq!(
            store.get_session("u", 1).await.unwrap().unwrap(),
            &b"one"[..]
        );
        // A write through the cache invalidates it.
        store.put_session("u", 1, b"three").await.unwrap();
        assert_eq!(
            store.get_session("u", 1).await.unwrap().unwrap(),
            &b"three"[..]
        );
        store.delete_all_sessions("u").await.unwrap();
        assert_eq!(store.get_session("u", 1).await.unwrap(), None);
    }

    fn put(scope: &str, key: &str, value: &[u8]) -> Op {
        Op::Put {
            role: Role::Session,
            scope: scope.to_owned(),
            key: key.to_owned(),
            value: Bytes::copy_from_slice(value),
            at: 0,
        }
    }

    async fn read(b: &dyn Backend, acct: &AccountId, key: &str) -> Option<Vec<u8>> {
        b.get(acct, Role::Session, "s", key)
            .await
            .unwrap()
            .map(|v| v.to_vec())
    }

    #[tokio::test]
    async fn a_commit_writes_through_and_a_failed_one_does_not() {
        let cached = CachedBackend::new(MemoryBackend::new(), CacheConfig::default());
        let acct = AccountId::new("a").unwrap();
        cached
            .commit(&acct, vec![put("s", "k", b"one")])
            .await
            .unwrap();
        // Served from the cache without a read first: a write behind its back is not seen.
        cached
            .inner()
            .commit(&acct, vec![put("s", "k", b"behind")])
            .await
            .unwrap();
        assert_eq!(read(&cached, &acct, "k").await.unwrap(), b"one");
        // A deletion is written through as a cached absence.
        let del = Op::Delete {
            role: Role::Session,
            scope: "s".into(),
            key: "k".into(),
        };
        cached.commit(&acct, vec![del]).await.unwrap();
        cached
            .inner()
            .commit(&acct, vec![put("s", "k", b"behind")])
            .await
            .unwrap();
        assert_eq!(read(&cached, &acct, "k").await, None);
        // A batch that fails leaves its items to the backend: nothing of it is cached.
        let refused = vec![
            put("s", "k", b"refused"),
            Op::RequireAbsent {
                role: Role::Session,
                scope: "s".into(),
                key: "k".into(),
            },
        ];
        assert!(matches!(
            cached.commit(&acct, refused).await,
            Err(Error::Conflict { .. })
        ));
        assert_eq!(read(&cached, &acct, "k").await.unwrap(), b"behind");
    }

    #[tokio::test]
    async fn a_batch_that_writes_an_item_again_caches_its_last_value() {
        let cached = CachedBackend::new(MemoryBackend::new(), CacheConfig::default());
        let acct = AccountId::new("a").unwrap();
        let k = |i: usize| format!("k{i}");
        let mut ops: Vec<Op> = (0..2000).map(|i| put("s", &k(i), b"first")).collect();
        for i in 0..2000 {
            ops.push(if i % 2 == 0 {
                Op::Delete {
                    role: Role::Session,
                    scope: "s".into(),
                    key: k(i),
                }
            } else {
                put("s", &k(i), b"second")
            });
        }
        ops.push(put("s", &k(0), b"third"));
        cached.commit(&acct, ops).await.unwrap();
        // Changed behind the cache's back: what reads see now comes from the cache.
        let behind = (0..2000).map(|i| put("s", &k(i), b"behind")).collect();
        cached.inner().commit(&acct, behind).await.unwrap();
        assert_eq!(read(&cached, &acct, &k(0)).await.unwrap(), b"third");
        assert_eq!(read(&cached, &acct, &k(1)).await.unwrap(), b"second");
        assert_eq!(read(&cached, &acct, &k(2)).await, None);
        assert_eq!(read(&cached, &acct, &k(1999)).await.unwrap(), b"second");
    }

    /// The memory backend, where every read and every commit of a value starting with
    /// `held` waits at a gate after it reached the backend, so tests can overlap calls
    /// in a chosen order.
    type Gated = Tapped<Gate>;

    #[derive(Debug, Default)]
    struct Gate(tokio::sync::Mutex<()>);

    impl Tap for Gate {
        fn after_read(&self, _: Role, _: Read) -> BoxFuture<'_, ()> {
            Box::pin(async move {
                drop(self.0.lock().await);
                Ok(())
            })
        }
        fn after_commit<'a>(&'a self, ops: &'a [Op]) -> BoxFuture<'a, ()> {
            Box::pin(async move {
                if matches!(ops, [Op::Put { value, .. }, ..] if value.starts_with(b"held")) {
                    drop(self.0.lock().await);
                }
                Ok(())
            })
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn commits_that_end_out_of_order_leave_the_item_to_the_backend() {
        let cached = Arc::new(CachedBackend::new(Gated::default(), CacheConfig::default()));
        let acct = AccountId::new("a").unwrap();
        // The first commit reaches the backend, then waits; the second applies after it
        // and returns first. Written through in the order they ended, the cache would
        // hold the first value while the backend holds the second.
        let held = cached.inner().tap().0.lock().await;
        let first = {
            let (cached, acct) = (cached.clone(), acct.clone());
            tokio::spawn(async move { cached.commit(&acct, vec![put("s", "k", b"held 1")]).await })
        };
        settle().await;
        cached
            .commit(&acct, vec![put("s", "k", b"2")])
            .await
            .unwrap();
        drop(held);
        first.await.unwrap().unwrap();
        assert_eq!(read(cached.inner(), &acct, "k").await.unwrap(), b"2");
        assert_eq!(read(&*cached, &acct, "k").await.unwrap(), b"2");
    }

    #[tokio::test]
    async fn a_read_overtaken_by_a_commit_does_not_fill_the_cache() {
        let cached = Arc::new(CachedBackend::new(Gated::default(), CacheConfig::default()));
        let acct = AccountId::new("a").unwrap();
        cached
            .inner()
            .commit(&acct, vec![put("s", "k", b"old")])
            .await
            .unwrap();
        // The read gets the old value from the backend and waits; meanwhile a commit
        // writes the new one through. The read may return the old value, but must not
        // put it back in the cache.
        let held = cached.inner().tap().0.lock().await;
        let slow = {
            let (cached, acct) = (cached.clone(), acct.clone());
            tokio::spawn(async move { read(&*cached, &acct, "k").await })
        };
        settle().await;
        cached
            .commit(&acct, vec![put("s", "k", b"new")])
            .await
            .unwrap();
        drop(held);
        assert_eq!(slow.await.unwrap().unwrap(), b"old");
        assert_eq!(read(&*cached, &acct, "k").await.unwrap(), b"new");
    }

    /// The memory backend with random pauses around every read and commit, so concurrent
    /// reads and commits interleave in many orders.
    type Jittery = Tapped<Jitter>;

    #[derive(Debug, Default)]
    struct Jitter;

    async fn jitter() -> crate::Result<()> {
        for _ in 0..rand::random::<u8>() % 4 {
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    impl Tap for Jitter {
        fn before_read(&self, _: Role, _: Read) -> BoxFuture<'_, ()> {
            Box::pin(jitter())
        }
        fn after_read(&self, _: Role, _: Read) -> BoxFuture<'_, ()> {
            Box::pin(jitter())
        }
        fn before_commit<'a>(&'a self, _: &'a [Op]) -> BoxFuture<'a, ()> {
            Box::pin(jitter())
        }
        fn after_commit<'a>(&'a self, _: &'a [Op]) -> BoxFuture<'a, ()> {
            Box::pin(jitter())
        }
    }

    /// Each key has one writer committing versions 1, 2, 3, ... (some batches refused,
    /// some with a scope delete elsewhere, some covering a second key of the same writer);
    /// readers check that a read never returns a version older than the writer's last
    /// returned commit, and at the end every cached read equals the backend.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_never_see_a_version_older_than_a_returned_commit() {
        use std::sync::atomic::{AtomicU32, Ordering};
        const KEYS: usize = 8;
        const VERSIONS: u32 = 300;
        let cached = Arc::new(CachedBackend::new(
            Jittery::default(),
            CacheConfig::default(),
        ));
        let acct = AccountId::new("a").unwrap();
        let done: Arc<Vec<AtomicU32>> = Arc::new((0..KEYS).map(|_| AtomicU32::new(0)).collect());
        let version =
            |v: Option<Bytes>| v.map_or(0, |b| u32::from_be_bytes(b[..4].try_into().unwrap()));
        let mut tasks = Vec::new();
        for w in 0..KEYS {
            let (cached, acct, done) = (cached.clone(), acct.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let (k, twin) = (format!("k{w}"), format!("t{w}"));
                for v in 1..=VERSIONS {
                    let bytes = v.to_be_bytes();
                    let mut ops = vec![put("s", &k, &bytes), put("s", &twin, &bytes)];
                    match v % 7 {
                        0 => {
                            // Refused: the version is not applied.
                            ops.push(Op::RequireAbsent {
                                role: Role::Session,
                                scope: "s".into(),
                                key: k.clone(),
                            });
                            assert!(cached.commit(&acct, ops).await.is_err());
                            continue;
                        }
                        3 => ops.push(Op::DeleteScope {
                            role: Role::Session,
                            scope: format!("other{w}"),
                        }),
                        _ => {}
                    }
                    cached.commit(&acct, ops).await.unwrap();
                    done[w].store(v, Ordering::SeqCst);
                }
            }));
        }
        for r in 0..4 {
            let (cached, acct, done) = (cached.clone(), acct.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..2_000usize {
                    let w = (i + r) % KEYS;
                    let k = format!("k{w}");
                    let floor = done[w].load(Ordering::SeqCst);
                    let got = if i % 2 == 0 {
                        version(cached.get(&acct, Role::Session, "s", &k).await.unwrap())
                    } else {
                        let keys = [("s", k.as_str()), ("s", "k0"), ("s", "t1")];
                        version(
                            cached.get_many(&acct, Role::Session, &keys).await.unwrap()[0].clone(),
                        )
                    };
                    assert!(
                        got >= floor,
                        "read {got} after version {floor} of {k} returned"
                    );
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for w in 0..KEYS {
            for k in [format!("k{w}"), format!("t{w}")] {
                let stored = read(cached.inner(), &acct, &k).await;
                assert_eq!(read(&*cached, &acct, &k).await, stored, "{k}");
                assert_eq!(
                    stored.map(|b| u32::from_be_bytes(b[..4].try_into().unwrap())),
                    Some(VERSIONS - u32::from(VERSIONS.is_multiple_of(7)))
                );
            }
        }
    }

    #[tokio::test]
    async fn cache_is_bounded() {
        let cached = CachedBackend::new(
            MemoryBackend::new(),
            CacheConfig {
                max_bytes: 4096,
                ttl: Duration::from_secs(60),
            },
        );
        let cached = Arc::new(cached);
        let store = AccountStore::new(cached.clone(), AccountId::new("a").unwrap());
        for i in 0..200 {
            store.put_session("u", i, &[7u8; 100]).await.unwrap();
            store.get_session("u", i).await.unwrap();
        }
        cached.cache.run_pending_tasks();
        assert!(
            cached.cache.weighted_size() <= 4096,
            "{}",
            cached.cache.weighted_size()
        );
        assert!(cached.cache.entry_count() < 200);
    }
}
