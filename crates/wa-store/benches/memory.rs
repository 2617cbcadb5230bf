//! Session load + store on the memory backend, bare and behind the cache: the floor under
//! the SQLite and PostgreSQL figures.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wa_store::{
    AccountId, AccountStore, Backend, Batch, CacheConfig, CachedBackend, MemoryBackend,
    SessionStore,
};

fn session_load_store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("memory/session_load_store");
    group.throughput(Throughput::Elements(1));
    let variants: [(&str, Arc<dyn Backend>); 2] = [
        ("bare", Arc::new(MemoryBackend::new())),
        (
            "cached",
            Arc::new(CachedBackend::new(
                MemoryBackend::new(),
                CacheConfig::default(),
            )),
        ),
    ];
    for (name, backend) in variants {
        let store = AccountStore::new(backend, AccountId::new("bench").unwrap());
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
    }
    group.finish();
}

/// One account's hourly prune (sent messages older than a cut-off, none of them due)
/// while 1,000 accounts of 200 sent messages each share the backend.
fn prune_among_many_accounts(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let stores: Vec<AccountStore> = (0..1000)
        .map(|n| {
            AccountStore::new(
                backend.clone(),
                AccountId::new(format!("acct{n:04}")).unwrap(),
            )
        })
        .collect();
    rt.block_on(async {
        for s in &stores {
            let mut batch = Batch::new();
            for m in 0..200 {
                batch.put_sent_message("chat", &format!("MSG{m:03}"), b"record", 1_000);
            }
            s.commit(batch).await.unwrap();
        }
    });
    let store = stores[500].clone();
    c.bench_function("memory/prune_one_of_1000_accounts", |b| {
        b.to_async(&rt).iter(|| {
            let store = store.clone();
            async move {
                let mut batch = Batch::new();
                batch.prune_sent_messages(black_box(500));
                store.commit(batch).await.unwrap();
            }
        });
    });
}

/// One commit of 20,000 LID mappings (40,000 items, as a history sync or a mapping sync
/// from the phone writes them), bare and behind the cache.
fn big_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("memory/commit_20000_mappings");
    group.sample_size(10);
    group.throughput(Throughput::Elements(40_000));
    let batch = || {
        let mut b = Batch::new();
        for i in 0..20_000 {
            b.put_lid_mapping(&format!("1555{i:07}"), &format!("9{i:07}"));
        }
        b
    };
    type Make = fn() -> Arc<dyn Backend>;
    let variants: [(&str, Make); 2] = [
        ("bare", || Arc::new(MemoryBackend::new())),
        ("cached", || {
            Arc::new(CachedBackend::new(
                MemoryBackend::new(),
                CacheConfig::default(),
            ))
        }),
    ];
    for (name, backend) in variants {
        group.bench_function(name, |b| {
            b.iter_batched(
                || (backend(), batch()),
                |(backend, batch)| {
                    let store = AccountStore::new(backend, AccountId::new("bench").unwrap());
                    rt.block_on(store.commit(batch)).unwrap();
                },
                criterion::BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    session_load_store,
    prune_among_many_accounts,
    big_commit
);
criterion_main!(benches);
