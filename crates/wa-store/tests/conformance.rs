//! The conformance suite on the memory backend, bare and behind the cache, and on a
//! backend that keeps the trait's default bulk read.

use std::sync::Arc;

use wa_store::{
    AccountId, Backend, BoxFuture, Bytes, CacheConfig, CachedBackend, MemoryBackend, Op, Role,
};

/// The memory backend with only the required methods, so `get_many` is the default.
#[derive(Debug)]
struct Plain(MemoryBackend);

impl Backend for Plain {
    fn get<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Option<Bytes>> {
        self.0.get(account, role, scope, key)
    }
    fn list<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
    ) -> BoxFuture<'a, Vec<(String, Bytes)>> {
        self.0.list(account, role, scope)
    }
    fn commit<'a>(&'a self, account: &'a AccountId, ops: Vec<Op>) -> BoxFuture<'a, ()> {
        self.0.commit(account, ops)
    }
    fn delete_account<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, ()> {
        self.0.delete_account(account)
    }
    fn accounts(&self) -> BoxFuture<'_, Vec<AccountId>> {
        self.0.accounts()
    }
}

async fn plain() -> Option<Arc<dyn Backend>> {
    Some(Arc::new(Plain(MemoryBackend::new())))
}

async fn memory() -> Option<Arc<dyn Backend>> {
    Some(Arc::new(MemoryBackend::new()))
}

async fn cached_memory() -> Option<Arc<dyn Backend>> {
    Some(Arc::new(CachedBackend::new(
        MemoryBackend::new(),
        CacheConfig::default(),
    )))
}

mod memory {
    use super::*;
    wa_store::backend_conformance_tests!(memory());
}

mod cached {
    use super::*;
    wa_store::backend_conformance_tests!(cached_memory());
}

mod default_bulk_read {
    use super::*;
    wa_store::backend_conformance_tests!(plain());
}
