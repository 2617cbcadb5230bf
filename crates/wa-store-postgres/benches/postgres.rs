//! PostgreSQL store work (`WA_TEST_POSTGRES_URL`; skipped when unset): session load +
//! store, the per-message store work of decrypting a 1:1 message; and the store work of
//! a send to many devices: reading 64 sessions one by one or in one bulk read, and
//! committing a 64-item batch.

#![allow(clippy::print_stderr)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wa_store::{AccountStore, Batch, CacheConfig, CachedBackend, Role, SessionStore};
use wa_store_postgres::PostgresBackend;

fn session_load_store(c: &mut Criterion) {
    let Ok(url) = std::env::var("WA_TEST_POSTGRES_URL") else {
        eprintln!("PostgreSQL benchmark skipped: WA_TEST_POSTGRES_URL is not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backend = rt.block_on(PostgresBackend::connect(&url)).unwrap();
    let mut group = c.benchmark_group("postgres/session_load_store");
    group.throughput(Throughput::Elements(1));
    let variants: [(&str, Arc<dyn wa_store::Backend>); 2] = [
        ("pooled", Arc::new(backend.clone())),
        (
            "cached",
            Arc::new(CachedBackend::new(backend, CacheConfig::default())),
        ),
    ];
    for (name, backend) in variants {
        let store = AccountStore::new(backend, wa_store::testing::fresh_account());
        let session = vec![7u8; 1024];
        rt.block_on(async {
            for d in 0..100 {
                store
                    .put_session("15550001@s.whatsapp.net", d, &session)
                    .await
                    .unwrap();
            }
        });
        let mut i = 0u32;
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 1) % 100;
                let store = store.clone();
                async move {
                    let s = store
                        .get_session("15550001@s.whatsapp.net", i)
                        .await
                        .unwrap()
                        .unwrap();
                    let mut batch = Batch::new();
                    batch.put_session("15550001@s.whatsapp.net", i, black_box(&s));
                    store.commit(batch).await.unwrap();
                }
            });
        });
        rt.block_on(store.delete_account()).unwrap();
    }
    group.finish();
}

/// The store work of a send to 64 devices: their sessions read, then written back in one
/// batch.
fn many_devices(c: &mut Criterion) {
    let Ok(url) = std::env::var("WA_TEST_POSTGRES_URL") else {
        eprintln!("PostgreSQL benchmark skipped: WA_TEST_POSTGRES_URL is not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backend = rt.block_on(PostgresBackend::connect(&url)).unwrap();
    let store = AccountStore::new(Arc::new(backend), wa_store::testing::fresh_account());
    let user = "15550001@s.whatsapp.net";
    let session = vec![7u8; 1024];
    rt.block_on(async {
        let mut batch = Batch::new();
        for d in 0..64 {
            batch.put_session(user, d, &session);
        }
        store.commit(batch).await.unwrap();
    });
    let devices: Vec<String> = (0..64).map(|d| d.to_string()).collect();
    let mut group = c.benchmark_group("postgres/64_devices");
    group.throughput(Throughput::Elements(64));
    group.bench_function("read_one_by_one", |b| {
        b.to_async(&rt).iter(|| {
            let store = store.clone();
            async move {
                for d in 0..64 {
                    black_box(store.get_session(user, d).await.unwrap());
                }
            }
        });
    });
    group.bench_function("read_bulk", |b| {
        b.to_async(&rt).iter(|| {
            let store = store.clone();
            let keys: Vec<(&str, &str)> = devices.iter().map(|d| (user, &d[..])).collect();
            async move {
                black_box(store.get_items(Role::Session, &keys).await.unwrap());
            }
        });
    });
    group.bench_function("commit_batch", |b| {
        b.to_async(&rt).iter(|| {
            let store = store.clone();
            let session = &session;
            async move {
                let mut batch = Batch::new();
                for d in 0..64 {
                    batch.put_session(user, d, black_box(session));
                }
                store.commit(batch).await.unwrap();
            }
        });
    });
    group.finish();
    rt.block_on(store.delete_account()).unwrap();
}

criterion_group!(benches, session_load_store, many_devices);
criterion_main!(benches);
