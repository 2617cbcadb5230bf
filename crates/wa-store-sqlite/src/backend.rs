use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;
use wa_store::{AccountId, Backend, BoxFuture, Bytes, Error, Op, Result, Role};

/// The numbered migrations, applied in order; entry `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_init.sql")];

/// How hard SQLite works to make a commit durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// `synchronous=FULL`: the WAL is fsynced at every commit, so an acknowledged batch
    /// survives a crash of the process and a power loss. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: in WAL mode a commit is durable against a crash of the process
    /// (the data is in the OS page cache) but the newest commits may be lost on power
    /// loss or an OS crash. Faster.
    Normal,
}

/// How to open a database.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// The database file; created (mode 0600) when missing.
    pub path: PathBuf,
    /// Durability of commits.
    pub synchronous: Synchronous,
    /// How long to wait for a lock held by another connection before failing.
    pub busy_timeout: Duration,
    /// Read-only connections opened beside the writer: reads run on them, so they do not
    /// wait behind a commit's fsync (WAL readers see every commit that finished before
    /// the read started). 0 runs reads on the writer.
    pub readers: usize,
}

impl SqliteConfig {
    /// Defaults for `path`: `synchronous=FULL`, 5 s busy timeout, 2 readers.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            readers: 2,
        }
    }
}

/// Most reader connections a backend opens.
pub const MAX_READERS: usize = 16;

/// The embedded [`Backend`]: one SQLite file in WAL mode holding any number of accounts.
///
/// One writer connection and a few read-only ones ([`SqliteConfig::readers`]), each
/// guarded by a mutex and used from tokio's blocking pool, so SQLite never blocks the
/// async workers, commits are serialised (`BEGIN IMMEDIATE`) and reads proceed while a
/// commit waits for its fsync.
#[derive(Clone, Debug)]
pub struct SqliteBackend {
    conn: Arc<Mutex<Connection>>,
    readers: Arc<Readers>,
    queue: Arc<Mutex<Queue>>,
}

/// The read-only connections, handed out round-robin (a free one first).
#[derive(Debug)]
struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: std::sync::atomic::AtomicUsize,
}

fn db(e: rusqlite::Error) -> Error {
    Error::backend(e)
}

impl SqliteBackend {
    /// Opens (creating if needed) a database with default settings, off the async workers.
    ///
    /// # Errors
    /// [`Error::Backend`] when the file cannot be created or opened,
    /// [`Error::SchemaTooNew`] when a newer version of this crate wrote it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let config = SqliteConfig::new(path.as_ref());
        tokio::task::spawn_blocking(move || Self::open_blocking(&config))
            .await
            .map_err(Error::backend)?
    }

    /// Opens (creating if needed) a database, blocking the calling thread.
    ///
    /// # Errors
    /// As [`SqliteBackend::open`].
    pub fn open_blocking(config: &SqliteConfig) -> Result<Self> {
        // Create the file ourselves so it is private from the first byte; SQLite gives the
        // -wal and -shm files the permissions of the database file.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&config.path)
            .map_err(Error::backend)?;
        let mut conn = Connection::open(&config.path).map_err(db)?;
        conn.busy_timeout(config.busy_timeout).map_err(db)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::InvalidInput(format!(
                "database refused WAL mode (journal_mode={mode})"
            )));
        }
        let sync = match config.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.execute_batch(&format!("PRAGMA synchronous={sync};"))
            .map_err(db)?;
        migrate(&mut conn)?;
        let mut readers = Vec::new();
        for _ in 0..config.readers.min(MAX_READERS) {
            let r = Connection::open_with_flags(
                &config.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(db)?;
            r.busy_timeout(config.busy_timeout).map_err(db)?;
            readers.push(Mutex::new(r));
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::new(Readers {
                conns: readers,
                next: std::sync::atomic::AtomicUsize::new(0),
            }),
            queue: Arc::new(Mutex::new(Queue::default())),
        })
    }

    /// The schema version of the open database.
    ///
    /// # Errors
    /// [`Error::Backend`] on database failure.
    pub async fn schema_version(&self) -> Result<i64> {
        self.run(|c| current_version(c)).await
    }

    /// Runs `f` on the writer connection in the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&conn)))
            .await
            .map_err(Error::backend)?
    }

    /// Runs the read `f` on a reader connection (the writer when there are none) in the
    /// blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if self.readers.conns.is_empty() {
            return self.run(f).await;
        }
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let n = readers.conns.len();
            let start = readers
                .next
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // A free reader if there is one, else wait for the next in turn.
            let mut guard = (0..n)
                .find_map(|i| readers.conns[(start + i) % n].try_lock().ok())
                .unwrap_or_else(|| lock(&readers.conns[start % n]));
            f(&mut guard)
        })
        .await
        .map_err(Error::backend)?
    }
}

fn lock<T>(conn: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a transaction drops the rusqlite Transaction, which rolls back, so a
    // poisoned connection holds no half-applied batch; the queue is consistent after
    // each of its short critical sections.
    conn.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn current_version(conn: &Connection) -> Result<i64> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )
    .map_err(db)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(db)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let found = current_version(&tx)?;
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if found > supported {
        return Err(Error::SchemaTooNew { found, supported });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tracing::info!(version = i + 1, "applying SQLite migration");
        tx.execute_batch(sql).map_err(db)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            params![i + 1],
        )
        .map_err(db)?;
    }
    tx.commit().map_err(db)
}

/// One item's value (single and bulk reads).
const GET: &str =
    "SELECT value FROM items WHERE account = ?1 AND role = ?2 AND scope = ?3 AND key = ?4";

fn exists(tx: &Connection, account: &str, role: Role, scope: &str, key: &str) -> Result<bool> {
    tx.prepare_cached(
        "SELECT 1 FROM items WHERE account = ?1 AND role = ?2 AND scope = ?3 AND key = ?4",
    )
    .map_err(db)?
    .query_row(params![account, role.code(), scope, key], |_| Ok(()))
    .optional()
    .map(|o| o.is_some())
    .map_err(db)
}

/// Most commits applied in one transaction by the group commit.
const MAX_GROUP: usize = 256;

/// One commit waiting for the writer.
struct Pending {
    account: String,
    ops: Vec<Op>,
    done: oneshot::Sender<Result<()>>,
}

/// Commits waiting for the writer, and whether a writer task is draining them.
#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    draining: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("pending", &self.pending.len())
            .field("draining", &self.draining)
            .finish()
    }
}

/// The writer task's handles. Dropped without having started (its runtime shut down
/// first), it hands the writer role back, so the next commit starts another writer for
/// what is queued instead of waiting for one that never runs.
struct Writer {
    conn: Arc<Mutex<Connection>>,
    queue: Arc<Mutex<Queue>>,
    started: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.started {
            lock(&self.queue).draining = false;
        }
    }
}

/// Takes the queued commits in groups of up to [`MAX_GROUP`] and applies each group in
/// one transaction, until the queue is empty. Runs in the blocking pool; one at a time.
fn drain(conn: &Mutex<Connection>, queue: &Mutex<Queue>) {
    /// Hands the writer role back if applying panics, failing the commits it held (their
    /// senders are dropped), so later commits start a new writer instead of waiting.
    struct Release<'a>(&'a Mutex<Queue>);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                lock(self.0).draining = false;
            }
        }
    }
    let _release = Release(queue);
    loop {
        let group: Vec<Pending> = {
            let mut q = lock(queue);
            if q.pending.is_empty() {
                q.draining = false;
                return;
            }
            let n = q.pending.len().min(MAX_GROUP);
            q.pending.drain(..n).collect()
        };
        let mut conn = lock(conn);
        let (dones, work): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|p| (p.done, (p.account, p.ops)))
            .unzip();
        let results = apply_group(&mut conn, work);
        drop(conn);
        for (done, result) in dones.into_iter().zip(results) {
            // The caller may have stopped waiting; its batch stands regardless.
            let _ = done.send(result);
        }
    }
}

/// Applies commits in one transaction, each inside its own savepoint, so one that fails
/// (a precondition, a bad op) rolls back alone; all are durable once the transaction
/// commits, and all fail when it does not. Returns one result per commit, in order.
fn apply_group(conn: &mut Connection, work: Vec<(String, Vec<Op>)>) -> Vec<Result<()>> {
    let n = work.len();
    if n == 1 {
        let (account, ops) = work.into_iter().next().unwrap_or_default();
        return vec![apply(conn, &account, ops)];
    }
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return (0..n).map(|_| Err(group_failed(&e))).collect(),
    };
    let mut results: Vec<Result<()>> = Vec::with_capacity(n);
    for (account, ops) in work {
        if tx.is_autocommit() {
            // SQLite rolled the whole transaction back after an error (out of disk space,
            // an I/O error): nothing of the group stands.
            let e = rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the group's transaction was rolled back".into()),
            );
            results.clear();
            results.resize_with(n, || Err(group_failed(&e)));
            return results;
        }
        let result = match tx.savepoint() {
            Ok(mut sp) => match apply_ops(&sp, &account, ops) {
                Ok(()) => sp.commit().map_err(db),
                Err(e) => {
                    // Undo this commit's ops only.
                    let _ = sp.rollback();
                    Err(e)
                }
            },
            Err(e) => Err(db(e)),
        };
        results.push(result);
    }
    if let Err(e) = tx.commit() {
        return (0..n).map(|_| Err(group_failed(&e))).collect();
    }
    results
}

fn group_failed(e: &rusqlite::Error) -> Error {
    Error::backend(std::io::Error::other(format!("commit failed: {e}")))
}

fn apply(conn: &mut Connection, account: &str, ops: Vec<Op>) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    apply_ops(&tx, account, ops)?;
    tx.commit().map_err(db)
}

/// Applies `ops` on `tx` (a transaction or savepoint); an error leaves them to be rolled
/// back by the caller.
fn apply_ops(tx: &Connection, account: &str, ops: Vec<Op>) -> Result<()> {
    for op in ops {
        match op {
            Op::Put {
                role,
                scope,
                key,
                value,
                at,
            } => {
                tx.prepare_cached(
                    "INSERT INTO items (account, role, scope, key, value, at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (account, role, scope, key) \
                     DO UPDATE SET value = excluded.value, at = excluded.at",
                )
                .map_err(db)?
                .execute(params![account, role.code(), scope, key, &value[..], at])
                .map_err(db)?;
            }
            Op::Delete { role, scope, key } => {
                tx.prepare_cached(
                    "DELETE FROM items WHERE account = ?1 AND role = ?2 AND scope = ?3 AND key = ?4",
                )
                .map_err(db)?
                .execute(params![account, role.code(), scope, key])
                .map_err(db)?;
            }
            Op::DeleteScope { role, scope } => {
                tx.prepare_cached(
                    "DELETE FROM items WHERE account = ?1 AND role = ?2 AND scope = ?3",
                )
                .map_err(db)?
                .execute(params![account, role.code(), scope])
                .map_err(db)?;
            }
            Op::DeleteBefore { role, before } => {
                tx.prepare_cached("DELETE FROM items WHERE account = ?1 AND role = ?2 AND at < ?3")
                    .map_err(db)?
                    .execute(params![account, role.code(), before])
                    .map_err(db)?;
            }
            ref cond @ (Op::RequirePresent {
                role,
                ref scope,
                ref key,
            }
            | Op::RequireAbsent {
                role,
                ref scope,
                ref key,
            }) => {
                let want = matches!(cond, Op::RequirePresent { .. });
                if exists(tx, account, role, scope, key)? != want {
                    // The caller rolls back everything applied so far.
                    return Err(cond.conflict().unwrap_or_else(|| {
                        Error::InvalidInput("precondition op without conflict".into())
                    }));
                }
            }
            other => {
                return Err(Error::InvalidInput(format!(
                    "operation not supported by this backend: {other:?}"
                )));
            }
        }
    }
    Ok(())
}

impl Backend for SqliteBackend {
    fn get<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Option<Bytes>> {
        let (a, s, k) = (
            account.as_str().to_owned(),
            scope.to_owned(),
            key.to_owned(),
        );
        Box::pin(self.read(move |c| {
            c.prepare_cached(GET)
                .map_err(db)?
                .query_row(params![a, role.code(), s, k], |r| r.get::<_, Vec<u8>>(0))
                .optional()
                .map(|v| v.map(Bytes::from))
                .map_err(db)
        }))
    }

    fn get_many<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        keys: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Vec<Option<Bytes>>> {
        let a = account.as_str().to_owned();
        let keys: Vec<(String, String)> = keys
            .iter()
            .map(|(s, k)| ((*s).to_owned(), (*k).to_owned()))
            .collect();
        // One trip to the blocking pool, and one read transaction so that every value
        // comes from the same state of the database.
        Box::pin(self.read(move |c| {
            let tx = c.transaction().map_err(db)?;
            let mut out = Vec::with_capacity(keys.len());
            {
                let mut st = tx.prepare_cached(GET).map_err(db)?;
                for (s, k) in &keys {
                    out.push(
                        st.query_row(params![a, role.code(), s, k], |r| r.get::<_, Vec<u8>>(0))
                            .optional()
                            .map_err(db)?
                            .map(Bytes::from),
                    );
                }
            }
            tx.finish().map_err(db)?;
            Ok(out)
        }))
    }

    fn list<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
    ) -> BoxFuture<'a, Vec<(String, Bytes)>> {
        let (a, s) = (account.as_str().to_owned(), scope.to_owned());
        Box::pin(self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT key, value FROM items WHERE account = ?1 AND role = ?2 AND scope = ?3 \
                     ORDER BY key",
                )
                .map_err(db)?;
            let rows = st
                .query_map(params![a, role.code(), s], |r| {
                    Ok((r.get::<_, String>(0)?, Bytes::from(r.get::<_, Vec<u8>>(1)?)))
                })
                .map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        }))
    }

    fn commit<'a>(&'a self, account: &'a AccountId, ops: Vec<Op>) -> BoxFuture<'a, ()> {
        let (done, result) = oneshot::channel();
        let pending = Pending {
            account: account.as_str().to_owned(),
            ops,
            done,
        };
        Box::pin(async move {
            let start = {
                let mut q = lock(&self.queue);
                q.pending.push(pending);
                !std::mem::replace(&mut q.draining, true)
            };
            if start {
                let mut writer = Writer {
                    conn: self.conn.clone(),
                    queue: self.queue.clone(),
                    started: false,
                };
                // Not awaited: the writer answers each commit through its channel.
                drop(tokio::task::spawn_blocking(move || {
                    writer.started = true;
                    drain(&writer.conn, &writer.queue);
                }));
            }
            result.await.map_err(|_| {
                Error::backend(std::io::Error::other(
                    "the writer stopped before the commit was applied",
                ))
            })?
        })
    }

    fn delete_account<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, ()> {
        let a = account.as_str().to_owned();
        Box::pin(self.run(move |c| {
            c.execute("DELETE FROM items WHERE account = ?1", params![a])
                .map(drop)
                .map_err(db)
        }))
    }

    fn accounts(&self) -> BoxFuture<'_, Vec<AccountId>> {
        Box::pin(self.read(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT DISTINCT account FROM items WHERE role = ?1 ORDER BY account",
                )
                .map_err(db)?;
            let ids = st
                .query_map(params![Role::Creds.code()], |r| r.get::<_, String>(0))
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)?;
            ids.into_iter().map(AccountId::new).collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_dropped_unstarted_hands_the_role_back() {
        let conn = Arc::new(Mutex::new(Connection::open_in_memory().unwrap()));
        let queue = Arc::new(Mutex::new(Queue {
            pending: Vec::new(),
            draining: true,
        }));
        // Dropped after it started: the writer itself clears the flag when done.
        drop(Writer {
            conn: conn.clone(),
            queue: queue.clone(),
            started: true,
        });
        assert!(lock(&queue).draining);
        // Dropped unstarted (its runtime shut down first): the role is handed back.
        drop(Writer {
            conn,
            queue: queue.clone(),
            started: false,
        });
        assert!(!lock(&queue).draining);
    }
}
