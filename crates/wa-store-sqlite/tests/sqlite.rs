//! SQLite-specific behaviour: file permissions, WAL, migrations, reopening, damaged rows.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use wa_store::{AccountId, AccountStore, AuthCreds, CredsStore, Error, SessionStore};
use wa_store_sqlite::{SqliteBackend, SqliteConfig, Synchronous};

fn account(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}

#[tokio::test]
async fn database_files_are_private_and_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wa.db");
    let backend = SqliteBackend::open(&path).await.unwrap();
    let store = AccountStore::new(Arc::new(backend), account("a"));
    store.put_session("u", 1, b"s").await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "database mode {mode:o}");
    let wal = dir.path().join("wa.db-wal");
    assert!(wal.exists(), "no WAL file: not in WAL mode");
    let wal_mode = std::fs::metadata(&wal).unwrap().permissions().mode() & 0o777;
    assert_eq!(wal_mode, 0o600, "WAL mode {wal_mode:o}");
}

#[tokio::test]
async fn reopening_keeps_data_and_does_not_rerun_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wa.db");
    let creds = AuthCreds::generate(&mut rand_core::OsRng);
    {
        let b = SqliteBackend::open(&path).await.unwrap();
        assert_eq!(b.schema_version().await.unwrap(), 1);
        let s = AccountStore::new(Arc::new(b), account("a"));
        s.save_creds(&creds).await.unwrap();
        s.put_session("u", 1, b"kept").await.unwrap();
        let other = AccountStore::new(s.backend().clone(), account("b"));
        other.put_session("u", 1, b"other").await.unwrap();
    }
    let mut config = SqliteConfig::new(&path);
    config.synchronous = Synchronous::Normal;
    let b = SqliteBackend::open_blocking(&config).unwrap();
    assert_eq!(b.schema_version().await.unwrap(), 1);
    let s = AccountStore::new(Arc::new(b), account("a"));
    assert_eq!(s.load_creds().await.unwrap().as_ref(), Some(&creds));
    assert_eq!(s.get_session("u", 1).await.unwrap().unwrap(), &b"kept"[..]);
    let other = AccountStore::new(s.backend().clone(), account("b"));
    assert_eq!(
        other.get_session("u", 1).await.unwrap().unwrap(),
        &b"other"[..]
    );
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wa.db");
    drop(SqliteBackend::open(&path).await.unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("INSERT INTO schema_version (version) VALUES (42)", [])
        .unwrap();
    drop(raw);
    match SqliteBackend::open(&path).await {
        Err(Error::SchemaTooNew {
            found: 42,
            supported: 1,
        }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn row_damaged_on_disk_is_a_typed_error_for_that_row_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wa.db");
    let s = AccountStore::new(
        Arc::new(SqliteBackend::open(&path).await.unwrap()),
        account("a"),
    );
    s.save_creds(&AuthCreds::generate(&mut rand_core::OsRng))
        .await
        .unwrap();
    for d in 0..5 {
        s.put_session("u", d, format!("session {d}").as_bytes())
            .await
            .unwrap();
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    let n = raw
        .execute(
            "UPDATE items SET value = X'01DEADBEEF00' WHERE account = 'a' AND scope = 'u' AND key = '3'",
            [],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(raw);
    assert!(matches!(
        s.get_session("u", 3).await,
        Err(Error::Corrupt { key, .. }) if key == "3"
    ));
    for d in [0, 1, 2, 4] {
        assert_eq!(
            s.get_session("u", d).await.unwrap().unwrap(),
            format!("session {d}").as_bytes()
        );
    }
    assert!(s.load_creds().await.unwrap().is_some());
}

/// A store on `path` with `readers` read-only connections.
fn store_with_readers(path: &std::path::Path, readers: usize) -> AccountStore {
    let mut config = SqliteConfig::new(path);
    config.readers = readers;
    config.busy_timeout = std::time::Duration::from_secs(30);
    let backend = SqliteBackend::open_blocking(&config).unwrap();
    AccountStore::new(Arc::new(backend), account("a"))
}

/// While a commit waits for the write lock (held here by another connection, as a slow
/// fsync or another process would), reads go on through the reader connections; without
/// readers they wait behind the commit. After the commit, reads see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_wait_behind_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    for readers in [2, 0] {
        let path = dir.path().join(format!("r{readers}.db"));
        let store = store_with_readers(&path, readers);
        store.put_session("u", 1, b"before").await.unwrap();
        let blocker = rusqlite::Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let writer = store.clone();
        let commit = tokio::spawn(async move { writer.put_session("u", 2, b"after").await });
        // Give the commit time to take the writer connection and wait on the lock.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        // Without readers the read cannot finish before the lock is released, so a short
        // wait shows it; with readers it must finish, however slow the machine.
        let wait = std::time::Duration::from_secs(if readers > 0 { 20 } else { 1 });
        let read = tokio::time::timeout(wait, store.get_session("u", 1)).await;
        if readers > 0 {
            assert_eq!(read.unwrap().unwrap().unwrap(), &b"before"[..]);
        } else {
            assert!(
                read.is_err(),
                "a read on the writer waited behind the commit"
            );
        }
        assert!(!commit.is_finished());
        blocker.execute_batch("COMMIT").unwrap();
        commit.await.unwrap().unwrap();
        assert_eq!(
            store.get_session("u", 2).await.unwrap().unwrap(),
            &b"after"[..]
        );
    }
}

/// Concurrent writers each read back what they just committed, through the readers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_through_the_readers_see_every_finished_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_readers(&dir.path().join("rw.db"), 3);
    let tasks: Vec<_> = (0..8u32)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..50u32 {
                    let v = format!("{t}:{i}");
                    store.put_session("u", t, v.as_bytes()).await.unwrap();
                    let got = store.get_session("u", t).await.unwrap().unwrap();
                    assert_eq!(got, v.as_bytes());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Concurrent commits are applied in shared transactions (the group commit); each must
/// still stand or fall alone, and preconditions must see the commits before them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_stand_or_fall_alone() {
    use wa_store::{Backend, Bytes, Op, Role};
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(SqliteBackend::open(dir.path().join("wa.db")).await.unwrap());
    let put = |key: String| Op::Put {
        role: Role::Session,
        scope: "s".into(),
        key,
        value: Bytes::from_static(b"v"),
        at: 0,
    };
    let mut tasks = Vec::new();
    for i in 0..400usize {
        let backend = backend.clone();
        tasks.push(tokio::spawn(async move {
            let acct = account(&format!("a{}", i % 4));
            let mut ops = vec![put(format!("k{i}"))];
            if i % 5 == 0 {
                // Refused after its put: the put must be rolled back with it.
                ops.push(Op::RequirePresent {
                    role: Role::Session,
                    scope: "s".into(),
                    key: "missing".into(),
                });
            } else if i % 5 == 1 {
                // A race for one item per account: exactly one may take it.
                ops.push(Op::RequireAbsent {
                    role: Role::Session,
                    scope: "s".into(),
                    key: "claim".into(),
                });
                ops.push(put("claim".into()));
            }
            (i, backend.commit(&acct, ops).await)
        }));
    }
    let mut claims = [0usize; 4];
    let mut stood = std::collections::HashSet::new();
    for t in tasks {
        let (i, result) = t.await.unwrap();
        match (i % 5, result) {
            (0, Err(Error::Conflict { .. })) | (1, Err(Error::Conflict { .. })) => {}
            (1, Ok(())) => {
                claims[i % 4] += 1;
                stood.insert(i);
            }
            (2..=4, Ok(())) => {
                stood.insert(i);
            }
            (_, other) => panic!("commit {i}: {other:?}"),
        }
    }
    assert_eq!(claims, [1; 4], "one claim per account");
    for i in 0..400usize {
        let acct = account(&format!("a{}", i % 4));
        let got = backend
            .get(&acct, Role::Session, "s", &format!("k{i}"))
            .await
            .unwrap();
        assert_eq!(got.is_some(), stood.contains(&i), "k{i}");
    }
}

/// A runtime that shuts down while a commit and the group commit's writer wait for its
/// blocking pool: a commit from another runtime afterwards completes, and the earlier
/// one stands too. (Whether the old runtime still runs the writer or drops it unstarted
/// is up to tokio; the unit test `a_writer_dropped_unstarted_hands_the_role_back` covers
/// the second case.)
#[test]
fn a_writer_dropped_unstarted_does_not_stall_later_commits() {
    use std::time::Duration;
    use wa_store::{Backend, Bytes, Op, Role};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wa.db");
    let backend = Arc::new(SqliteBackend::open_blocking(&SqliteConfig::new(&path)).unwrap());
    let put = |key: &str| {
        vec![Op::Put {
            role: Role::Session,
            scope: "s".into(),
            key: key.into(),
            value: Bytes::from_static(b"v"),
            at: 0,
        }]
    };
    let first = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_time()
        .build()
        .unwrap();
    first.block_on(async {
        // The one blocking thread is busy, so the writer waits in the queue.
        drop(tokio::task::spawn_blocking(|| {
            std::thread::sleep(Duration::from_millis(300));
        }));
        let acct = account("a");
        let commit = backend.commit(&acct, put("early"));
        // Queue the commit and its writer, then give up on it.
        assert!(
            tokio::time::timeout(Duration::from_millis(20), commit)
                .await
                .is_err()
        );
    });
    first.shutdown_timeout(Duration::ZERO);

    let second = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        let acct = account("a");
        tokio::time::timeout(Duration::from_secs(5), backend.commit(&acct, put("late")))
            .await
            .expect("the commit stalled behind a writer that never ran")
            .unwrap();
        // The commit queued before stands too: the new writer applied it as well.
        let got = backend
            .get(&acct, Role::Session, "s", "early")
            .await
            .unwrap();
        assert!(got.is_some());
    });
}
