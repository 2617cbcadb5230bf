//! The conformance suite on the memory backend, bare and behind the cache, and on a
//! backend that keeps the trait's default bulk read.

use std::sync::Arc;

use wa_store::testing::Tapped;
use wa_store::{Backend, CacheConfig, CachedBackend, MemoryBackend};

async fn plain() -> Option<Arc<dyn Backend>> {
    // Bulk reads answered one read at a time, as the trait's default does.
    Some(Arc::new(Tapped::new(MemoryBackend::new(), ()).one_by_one()))
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
