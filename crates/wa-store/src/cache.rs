use std::collections::HashMap;
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
/// Single-item reads are cached (absence included); lists always go to the backend. Every
/// commit invalidates what it touched (a whole-scope or expiry delete clears the cache), so
/// a read that starts after a commit returned never sees older data. A bulk read
/// ([`Backend::get_many`]) takes its hits from the cache and fetches the misses in one
/// bulk read: each value obeys the same rule, but together they are not one snapshot
/// when a commit lands while the read runs.
///
/// Invariant: while a commit to an account is in flight, reads of that account bypass the
/// cache; a read result is cached only if no commit to its account was in flight when it
/// finished and none completed while it ran. So the cache never shows part of a batch.
#[derive(Debug)]
pub struct CachedBackend<B> {
    inner: B,
    cache: Cache<Key, Option<Bytes>>,
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// Incremented whenever a commit completes.
    epoch: u64,
    /// Commits in flight, per account.
    in_flight: HashMap<AccountId, u32>,
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
            state: Mutex::new(CacheState::default()),
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

    fn begin(&self, account: &AccountId, ops: Option<&[Op]>) {
        let mut st = self.state();
        *st.in_flight.entry(account.clone()).or_default() += 1;
        self.invalidate(account, ops);
    }

    fn end(&self, account: &AccountId, ops: Option<&[Op]>) {
        let mut st = self.state();
        st.epoch += 1;
        if let Some(n) = st.in_flight.get_mut(account) {
            *n -= 1;
            if *n == 0 {
                st.in_flight.remove(account);
            }
        }
        self.invalidate(account, ops);
    }

    fn invalidate(&self, account: &AccountId, ops: Option<&[Op]>) {
        let Some(ops) = ops else {
            self.cache.invalidate_all();
            return;
        };
        for op in ops {
            match op {
                Op::Put {
                    role, scope, key, ..
                }
                | Op::Delete { role, scope, key } => {
                    self.cache
                        .invalidate(&(account.clone(), *role, scope.clone(), key.clone()));
                }
                Op::DeleteScope { .. } | Op::DeleteBefore { .. } => {
                    self.cache.invalidate_all();
                    return;
                }
                _ => {}
            }
        }
    }
}

/// Marks the end of a commit when dropped.
struct Flight<'a, B: Backend> {
    cache: &'a CachedBackend<B>,
    account: &'a AccountId,
    ops: Option<Vec<Op>>,
}

impl<B: Backend> Drop for Flight<'_, B> {
    fn drop(&mut self) {
        self.cache.end(self.account, self.ops.as_deref());
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
            let seen = {
                let st = self.state();
                if !st.in_flight.contains_key(account)
                    && let Some(v) = self.cache.get(&k)
                {
                    return Ok(v);
                }
                st.epoch
            };
            let v = self.inner.get(account, role, scope, key).await?;
            let st = self.state();
            if st.epoch == seen && !st.in_flight.contains_key(account) {
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
            let seen = {
                let st = self.state();
                if !st.in_flight.contains_key(account) {
                    for (slot, (scope, key)) in out.iter_mut().zip(keys) {
                        let k = self::key(account, role, scope, key);
                        *slot = self.cache.get(&k);
                    }
                }
                st.epoch
            };
            let missing: Vec<(&str, &str)> = out
                .iter()
                .zip(keys)
                .filter(|(slot, _)| slot.is_none())
                .map(|(_, k)| *k)
                .collect();
            if !missing.is_empty() {
                let fetched = self.inner.get_many(account, role, &missing).await?;
                let st = self.state();
                let cacheable = st.epoch == seen && !st.in_flight.contains_key(account);
                let mut fetched = fetched.into_iter();
                for (slot, (scope, key)) in out.iter_mut().zip(keys) {
                    if slot.is_some() {
                        continue;
                    }
                    let v = fetched.next().ok_or_else(|| {
                        Error::backend(std::io::Error::other("get_many answered too few items"))
                    })?;
                    if cacheable {
                        let k = self::key(account, role, scope, key);
                        self.cache.insert(k, v.clone());
                    }
                    *slot = Some(v);
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
            self.begin(account, Some(&ops));
            // Ends the flight and invalidates again whatever the outcome (after a backend
            // error the stored state is unknown), also when this future is dropped.
            let _flight = Flight {
                cache: self,
                account,
                ops: Some(ops.clone()),
            };
            self.inner.commit(account, ops).await
        })
    }

    fn delete_account<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.begin(account, None);
            let _flight = Flight {
                cache: self,
                account,
                ops: None,
            };
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
