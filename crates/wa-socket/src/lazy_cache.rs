//! [`LazyCache`]: a bounded cache that costs nothing until its first insert.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use moka::future::Cache;

/// A bounded, expiring cache (moka) built on its first insert. A moka cache reserves
/// tens of KiB up front; an idle account of a large fleet never fills its device or
/// group caches, so they are made only when something is stored. Lookups and removals
/// before that find nothing. Cheap to clone (clones share the cache).
pub struct LazyCache<K, V> {
    cache: Arc<OnceLock<Cache<K, V>>>,
    capacity: u64,
    ttl: Duration,
}

impl<K, V> Clone for LazyCache<K, V> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            capacity: self.capacity,
            ttl: self.ttl,
        }
    }
}

impl<K, V> std::fmt::Debug for LazyCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyCache")
            .field("entries", &self.entry_count())
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl<K, V> LazyCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache of at most `capacity` entries, each kept for `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            cache: Arc::new(OnceLock::new()),
            capacity,
            ttl,
        }
    }

    /// The cached value of `key`, looked up by any borrowed form of it (e.g. a `&str`
    /// for a `String` key), so a lookup need not build a key.
    pub async fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cache.get()?.get(key).await
    }

    /// Stores `value` under `key` (building the cache on the first call).
    pub async fn insert(&self, key: K, value: V) {
        let cache = self.cache.get_or_init(|| {
            Cache::builder()
                .max_capacity(self.capacity)
                .time_to_live(self.ttl)
                .build()
        });
        cache.insert(key, value).await;
    }

    /// Drops `key`.
    pub async fn invalidate(&self, key: &K) {
        if let Some(c) = self.cache.get() {
            c.invalidate(key).await;
        }
    }

    /// Drops every entry.
    pub fn invalidate_all(&self) {
        if let Some(c) = self.cache.get() {
            c.invalidate_all();
        }
    }

    /// Entries held (approximate, as moka counts them).
    pub fn entry_count(&self) -> u64 {
        self.cache.get().map_or(0, Cache::entry_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_is_built_until_the_first_insert() {
        let c: LazyCache<u32, u32> = LazyCache::new(2, Duration::from_secs(60));
        assert_eq!(c.get(&1).await, None);
        c.invalidate(&1).await;
        c.invalidate_all();
        assert!(
            c.cache.get().is_none(),
            "lookups and removals build nothing"
        );
        c.insert(1, 10).await;
        let shared = c.clone();
        assert_eq!(shared.get(&1).await, Some(10));
        shared.invalidate(&1).await;
        assert_eq!(c.get(&1).await, None);
    }

    #[tokio::test]
    async fn the_bound_holds() {
        let c: LazyCache<u32, u32> = LazyCache::new(3, Duration::from_secs(60));
        for i in 0..50 {
            c.insert(i, i).await;
        }
        if let Some(inner) = c.cache.get() {
            inner.run_pending_tasks().await;
        }
        assert!(c.entry_count() <= 3, "{} entries", c.entry_count());
    }
}
