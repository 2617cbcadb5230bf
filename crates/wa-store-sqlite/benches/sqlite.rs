//! Session load + store on SQLite: the per-message store work of decrypting a 1:1
//! message (read the session, write it back), at each durability setting; a read while
//! commits run, with and without reader connections; and reading the sessions of 64
//! devices (a send to many devices) one by one or in one bulk read; and commits from
//! many accounts at once (a fleet on one file), which the group commit shares out.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wa_store::{AccountId, AccountStore, Batch, Role, SessionStore};
use wa_store_sqlite::{SqliteBackend, SqliteConfig, Synchronous};

fn session_load_store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("sqlite/session_load_store");
    group.throughput(Throughput::Elements(1));
    for (name, sync) in [("full", Synchronous::Full), ("normal", Synchronous::Normal)] {
        let mut config = SqliteConfig::new(dir.path().join(format!("{name}.db")));
        config.synchronous = sync;
        let backend = SqliteBackend::open_blocking(&config).unwrap();
        let store = AccountStore::new(Arc::new(backend), AccountId::new("bench").unwrap());
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

/// A session read while another task commits without pause (`synchronous=FULL`): with
/// reader connections beside the writer, and with reads on the writer.
fn get_during_commits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("sqlite/get_during_commits");
    group.throughput(Throughput::Elements(1));
    for readers in [2usize, 0] {
        let mut config = SqliteConfig::new(dir.path().join(format!("r{readers}.db")));
        config.readers = readers;
        let backend = SqliteBackend::open_blocking(&config).unwrap();
        let store = AccountStore::new(Arc::new(backend), AccountId::new("bench").unwrap());
        let session = vec![7u8; 1024];
        rt.block_on(store.put_session("15550001@s.whatsapp.net", 1, &session))
            .unwrap();
        let writer = {
            let store = store.clone();
            let session = session.clone();
            rt.spawn(async move {
                loop {
                    let mut batch = Batch::new();
                    batch.put_session("15550002@s.whatsapp.net", 1, &session);
                    if store.commit(batch).await.is_err() {
                        break;
                    }
                }
            })
        };
        group.bench_function(format!("readers_{readers}"), |b| {
            b.to_async(&rt).iter(|| {
                let store = store.clone();
                async move {
                    black_box(
                        store
                            .get_session("15550001@s.whatsapp.net", 1)
                            .await
                            .unwrap(),
                    )
                }
            });
        });
        writer.abort();
    }
    group.finish();
}

/// The session reads of a send to 64 devices.
fn many_devices(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend =
        SqliteBackend::open_blocking(&SqliteConfig::new(dir.path().join("many.db"))).unwrap();
    let store = AccountStore::new(Arc::new(backend), AccountId::new("bench").unwrap());
    let user = "15550001@s.whatsapp.net";
    rt.block_on(async {
        let mut batch = Batch::new();
        for d in 0..64 {
            batch.put_session(user, d, &[7u8; 1024]);
        }
        store.commit(batch).await.unwrap();
    });
    let devices: Vec<String> = (0..64).map(|d| d.to_string()).collect();
    let mut group = c.benchmark_group("sqlite/64_devices");
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
    group.finish();
}

/// `n` accounts each committing one session write at the same moment (`synchronous=FULL`),
/// as the accounts of a fleet on one file do: time per commit.
fn concurrent_commits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(
        SqliteBackend::open_blocking(&SqliteConfig::new(dir.path().join("fleet.db"))).unwrap(),
    );
    let session = vec![7u8; 1024];
    let mut group = c.benchmark_group("sqlite/concurrent_commits");
    for n in [1usize, 16, 64] {
        let stores: Vec<AccountStore> = (0..n)
            .map(|i| {
                AccountStore::new(backend.clone(), AccountId::new(format!("acct{i}")).unwrap())
            })
            .collect();
        group.throughput(Throughput::Elements(n as u64));
        let mut round = 0u32;
        group.bench_function(format!("accounts_{n}"), |b| {
            b.to_async(&rt).iter(|| {
                round = (round + 1) % 100;
                let tasks: Vec<_> = stores
                    .iter()
                    .map(|store| {
                        let (store, session) = (store.clone(), session.clone());
                        tokio::spawn(async move {
                            let mut batch = Batch::new();
                            batch.put_session("15550001@s.whatsapp.net", round, &session);
                            store.commit(batch).await.unwrap();
                        })
                    })
                    .collect();
                async move {
                    for t in tasks {
                        t.await.unwrap();
                    }
                }
            });
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    session_load_store,
    get_during_commits,
    many_devices,
    concurrent_commits
);
criterion_main!(benches);
