//! The conformance suite on the memory backend, bare and behind the cache.

use std::sync::Arc;

use wa_store::{Backend, CacheConfig, CachedBackend, MemoryBackend};

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
