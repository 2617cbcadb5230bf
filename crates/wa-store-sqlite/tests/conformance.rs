//! The wa-store conformance suite on SQLite: every test shares one database file (in
//! separate accounts), bare and behind the cache.

use std::sync::{Arc, OnceLock};

use wa_store::{Backend, CacheConfig, CachedBackend};
use wa_store_sqlite::{SqliteBackend, SqliteConfig};

fn shared() -> SqliteBackend {
    static DB: OnceLock<(tempfile::TempDir, SqliteBackend)> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let backend =
            SqliteBackend::open_blocking(&SqliteConfig::new(dir.path().join("wa.db"))).unwrap();
        (dir, backend)
    })
    .1
    .clone()
}

async fn sqlite() -> Option<Arc<dyn Backend>> {
    Some(Arc::new(shared()))
}

async fn cached_sqlite() -> Option<Arc<dyn Backend>> {
    Some(Arc::new(CachedBackend::new(
        shared(),
        CacheConfig::default(),
    )))
}

mod sqlite {
    use super::*;
    wa_store::backend_conformance_tests!(sqlite());
}

mod cached {
    use super::*;
    wa_store::backend_conformance_tests!(cached_sqlite());
}
