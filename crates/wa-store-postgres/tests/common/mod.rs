//! Where the PostgreSQL tests find their server.

#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::sync::Arc;

use wa_store::{Backend, CacheConfig, CachedBackend};
use wa_store_postgres::{PostgresBackend, PostgresConfig};

/// The server URL from `WA_TEST_POSTGRES_URL`; `None` (with a note on stderr) when unset,
/// except under CI (`CI` set), where a missing server fails the test.
pub fn url() -> Option<String> {
    match std::env::var("WA_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but WA_TEST_POSTGRES_URL is not: the PostgreSQL suite must run in CI \
                 (use `cargo xtask test`, which starts a server)"
            );
            eprintln!(
                "PostgreSQL test skipped: WA_TEST_POSTGRES_URL is not set \
                 (`cargo xtask test` starts a throwaway server when PostgreSQL is installed)"
            );
            None
        }
    }
}

pub async fn connect() -> Option<PostgresBackend> {
    let url = url()?;
    let mut config = PostgresConfig::new(url);
    config.pool_size = 10;
    Some(PostgresBackend::connect_with(&config).await.unwrap())
}

pub async fn backend() -> Option<Arc<dyn Backend>> {
    Some(Arc::new(connect().await?))
}

pub async fn cached_backend() -> Option<Arc<dyn Backend>> {
    Some(Arc::new(CachedBackend::new(
        connect().await?,
        CacheConfig::default(),
    )))
}
