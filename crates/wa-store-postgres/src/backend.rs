use std::borrow::Cow;
use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use sha2::{Digest, Sha256};
use tokio_postgres::NoTls;
use wa_store::{AccountId, Backend, BoxFuture, Bytes, Error, Op, Result, Role};

use crate::AccountLease;

/// The numbered migrations, applied in order; entry `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_escape_nul.sql"),
];

/// Advisory lock key serialising migrations between workers.
const MIGRATION_LOCK: i64 = 0x7761_5f73_746f_7265; // "wa_store"

/// How to reach the database.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// A libpq-style URL or key/value string (`postgres://user@host:port/db`).
    pub url: String,
    /// Pooled connections for reads and batches (leases use their own connections).
    pub pool_size: usize,
}

impl PostgresConfig {
    /// Defaults for `url`: a pool of 8 connections.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 8,
        }
    }

    /// The same server and settings, database `db` instead of the URL's own: for tools
    /// that make a database per run or per tenant. `url` may be a `postgres://` URL (its
    /// path is replaced, its query kept) or a key/value string (`dbname` is appended,
    /// and the last one counts).
    pub fn with_database(mut self, db: &str) -> Self {
        self.url = match self.url.split_once("://") {
            None => format!("{} dbname={db}", self.url),
            Some((scheme, rest)) => {
                let (base, query) = rest
                    .split_once('?')
                    .map_or((rest, None), |(b, q)| (b, Some(q)));
                let authority = base.split_once('/').map_or(base, |(a, _)| a);
                match query {
                    Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
                    None => format!("{scheme}://{authority}/{db}"),
                }
            }
        };
        self
    }
}

/// The shared [`Backend`]: many accounts in one PostgreSQL database, reached by many
/// workers on many machines.
///
/// Reads and batches use a connection pool (deadpool). Every batch is one transaction
/// that first takes a transaction-scoped advisory lock on its account, so batches of one
/// account are serialised (preconditions included) while accounts proceed in parallel.
/// [`PostgresBackend::lease`] gives a worker exclusive ownership of an account.
#[derive(Clone)]
pub struct PostgresBackend {
    pool: Pool,
    pg_config: tokio_postgres::Config,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

pub(crate) fn db(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::backend(e)
}

/// A 64-bit advisory-lock key for `account` in the key space named by `purpose`.
pub(crate) fn lock_key(purpose: &str, account: &AccountId) -> i64 {
    let mut h = Sha256::new();
    h.update(purpose.as_bytes());
    h.update([0]);
    h.update(account.as_str().as_bytes());
    let d = h.finalize();
    let mut k = [0u8; 8];
    k.copy_from_slice(&d[..8]);
    i64::from_be_bytes(k)
}

impl PostgresBackend {
    /// Connects with default settings and brings the schema up to date.
    ///
    /// # Errors
    /// [`Error::Backend`] when the database cannot be reached, [`Error::SchemaTooNew`] when
    /// a newer version of this crate migrated it.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(&PostgresConfig::new(url)).await
    }

    /// Connects as configured and brings the schema up to date.
    ///
    /// # Errors
    /// As [`PostgresBackend::connect`].
    pub async fn connect_with(config: &PostgresConfig) -> Result<Self> {
        let pg_config = tokio_postgres::Config::from_str(&config.url).map_err(db)?;
        let manager = Manager::from_config(
            pg_config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .build()
            .map_err(db)?;
        let backend = Self { pool, pg_config };
        backend.migrate().await?;
        Ok(backend)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(db)
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS wa_schema_version (version BIGINT NOT NULL)")
            .await
            .map_err(db)?;
        let found: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM wa_schema_version",
                &[],
            )
            .await
            .map_err(db)?
            .try_get(0)
            .map_err(db)?;
        let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        if found > supported {
            return Err(Error::SchemaTooNew { found, supported });
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(found).unwrap_or(0))
        {
            let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
            tracing::info!(version, "applying PostgreSQL migration");
            tx.batch_execute(sql).await.map_err(db)?;
            tx.execute(
                "INSERT INTO wa_schema_version (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    /// The schema version of the database.
    ///
    /// # Errors
    /// [`Error::Backend`] on database failure.
    pub async fn schema_version(&self) -> Result<i64> {
        let client = self.client().await?;
        client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM wa_schema_version",
                &[],
            )
            .await
            .map_err(db)?
            .try_get(0)
            .map_err(db)
    }

    /// Takes exclusive ownership of `account` for this worker, for as long as the returned
    /// lease lives (or until its process dies: the lock belongs to a dedicated database
    /// session, which the server ends when the connection drops).
    ///
    /// # Errors
    /// [`Error::AccountLocked`] when another worker holds the account; [`Error::Backend`]
    /// when the database cannot be reached.
    pub async fn lease(&self, account: &AccountId) -> Result<AccountLease> {
        AccountLease::acquire(&self.pg_config, account).await
    }
}

const PUT: &str = "INSERT INTO wa_items (account, role, scope, key, value, at) \
                   VALUES ($1, $2, $3, $4, $5, $6) \
                   ON CONFLICT (account, role, scope, key) \
                   DO UPDATE SET value = EXCLUDED.value, at = EXCLUDED.at";
const DELETE: &str = "DELETE FROM wa_items \
                      WHERE account = $1 AND role = $2 AND scope = $3 AND key = $4";
const DELETE_SCOPE: &str = "DELETE FROM wa_items WHERE account = $1 AND role = $2 AND scope = $3";
const DELETE_BEFORE: &str = "DELETE FROM wa_items WHERE account = $1 AND role = $2 AND at < $3";
const EXISTS: &str = "SELECT 1 FROM wa_items \
                      WHERE account = $1 AND role = $2 AND scope = $3 AND key = $4";

/// Text as stored. PostgreSQL's `text` cannot hold U+0000, which a Rust string can (a key
/// made from a stanza's id, say), so U+0001 escapes it: U+0000 is stored as U+0001 U+0001
/// and U+0001 as U+0001 U+0002. Any other string is stored as it is. The mapping is
/// reversible and keeps byte order, so `ORDER BY ... COLLATE "C"` still lists in the
/// order of the keys as given.
pub(crate) fn stored(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b <= 1) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\0' => out.push_str("\u{1}\u{1}"),
            '\u{1}' => out.push_str("\u{1}\u{2}"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The text [`stored`] was given. A U+0001 that escapes nothing (a row written by hand)
/// is kept as it is.
pub(crate) fn unstored(s: String) -> String {
    if !s.contains('\u{1}') {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let escaped = match (c, chars.peek()) {
            ('\u{1}', Some('\u{1}')) => Some('\0'),
            ('\u{1}', Some('\u{2}')) => Some('\u{1}'),
            _ => None,
        };
        match escaped {
            Some(e) => {
                chars.next();
                out.push(e);
            }
            None => out.push(c),
        }
    }
    out
}

/// One op's answer: rows affected, or for a precondition whether the item exists.
type Step<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<bool>>> + Send + 'a>>;

/// The statement an op runs, sent without waiting for any answer.
fn step<'a>(
    tx: &'a deadpool_postgres::Transaction<'_>,
    statements: &'a [tokio_postgres::Statement; 5],
    a: &'a str,
    op: &'a Op,
) -> Step<'a> {
    let [put, delete, delete_scope, delete_before, exists] = statements;
    match op {
        Op::Put {
            role,
            scope,
            key,
            value,
            at,
        } => Box::pin(async move {
            let (scope, key) = (stored(scope), stored(key));
            let (scope, key) = (scope.as_ref(), key.as_ref());
            tx.execute(put, &[&a, &role.code(), &scope, &key, &&value[..], at])
                .await
                .map(|_| None)
                .map_err(db)
        }),
        Op::Delete { role, scope, key } => Box::pin(async move {
            let (scope, key) = (stored(scope), stored(key));
            let (scope, key) = (scope.as_ref(), key.as_ref());
            tx.execute(delete, &[&a, &role.code(), &scope, &key])
                .await
                .map(|_| None)
                .map_err(db)
        }),
        Op::DeleteScope { role, scope } => Box::pin(async move {
            let scope = stored(scope);
            let scope = scope.as_ref();
            tx.execute(delete_scope, &[&a, &role.code(), &scope])
                .await
                .map(|_| None)
                .map_err(db)
        }),
        Op::DeleteBefore { role, before } => Box::pin(async move {
            tx.execute(delete_before, &[&a, &role.code(), before])
                .await
                .map(|_| None)
                .map_err(db)
        }),
        Op::RequirePresent { role, scope, key } | Op::RequireAbsent { role, scope, key } => {
            Box::pin(async move {
                let (scope, key) = (stored(scope), stored(key));
                let (scope, key) = (scope.as_ref(), key.as_ref());
                tx.query_opt(exists, &[&a, &role.code(), &scope, &key])
                    .await
                    .map(|row| Some(row.is_some()))
                    .map_err(db)
            })
        }
        other => {
            let e = Error::InvalidInput(format!(
                "operation not supported by this backend: {other:?}"
            ));
            Box::pin(async move { Err(e) })
        }
    }
}

/// Applies `ops` in order inside `tx`, pipelined: every statement is sent before the
/// first answer is awaited (the server runs them in the order sent), so a batch costs one
/// round trip rather than one per op. The answers are then checked in order; the first
/// failure (a database error or an unmet precondition) is returned, and dropping `tx`
/// rolls the whole batch back.
async fn apply(
    tx: &deadpool_postgres::Transaction<'_>,
    account: &AccountId,
    ops: Vec<Op>,
) -> Result<()> {
    let a = stored(account.as_str());
    let a = a.as_ref();
    let statements = [
        tx.prepare_cached(PUT).await.map_err(db)?,
        tx.prepare_cached(DELETE).await.map_err(db)?,
        tx.prepare_cached(DELETE_SCOPE).await.map_err(db)?,
        tx.prepare_cached(DELETE_BEFORE).await.map_err(db)?,
        tx.prepare_cached(EXISTS).await.map_err(db)?,
    ];
    let mut sent = Vec::with_capacity(ops.len());
    for op in &ops {
        let mut f = step(tx, &statements, a, op);
        // The first poll sends the request (tokio-postgres queues it before its first
        // await), in op order.
        let early = std::future::poll_fn(|cx| std::task::Poll::Ready(f.as_mut().poll(cx))).await;
        sent.push((f, early));
    }
    for ((f, early), op) in sent.into_iter().zip(&ops) {
        let answer = match early {
            std::task::Poll::Ready(r) => r?,
            std::task::Poll::Pending => f.await?,
        };
        if let Some(present) = answer
            && present != matches!(op, Op::RequirePresent { .. })
        {
            return Err(op.conflict().unwrap_or_else(|| {
                Error::InvalidInput("precondition op without conflict".into())
            }));
        }
    }
    Ok(())
}

impl Backend for PostgresBackend {
    fn get<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT value FROM wa_items \
                     WHERE account = $1 AND role = $2 AND scope = $3 AND key = $4",
                )
                .await
                .map_err(db)?;
            let (account, scope, key) = (stored(account.as_str()), stored(scope), stored(key));
            let (account, scope, key) = (account.as_ref(), scope.as_ref(), key.as_ref());
            let row = client
                .query_opt(&st, &[&account, &role.code(), &scope, &key])
                .await
                .map_err(db)?;
            row.map(|r| r.try_get::<_, Vec<u8>>(0).map(Bytes::from))
                .transpose()
                .map_err(db)
        })
    }

    fn get_many<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        keys: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Vec<Option<Bytes>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(keys.len());
            if keys.is_empty() {
                return Ok(out);
            }
            let client = self.client().await?;
            // One statement: the requested pairs are numbered, joined with the table, and
            // the answers put back in the order asked.
            let st = client
                .prepare_cached(
                    "SELECT q.i, w.value \
                     FROM UNNEST($3::text[], $4::text[]) WITH ORDINALITY AS q(scope, key, i) \
                     JOIN wa_items w ON w.account = $1 AND w.role = $2 \
                     AND w.scope = q.scope AND w.key = q.key",
                )
                .await
                .map_err(db)?;
            let scopes: Vec<Cow<'_, str>> = keys.iter().map(|(s, _)| stored(s)).collect();
            let names: Vec<Cow<'_, str>> = keys.iter().map(|(_, k)| stored(k)).collect();
            let scopes: Vec<&str> = scopes.iter().map(AsRef::as_ref).collect();
            let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
            let account = stored(account.as_str());
            let account = account.as_ref();
            let rows = client
                .query(&st, &[&account, &role.code(), &scopes, &names])
                .await
                .map_err(db)?;
            out.resize(keys.len(), None);
            for r in rows {
                let i: i64 = r.try_get(0).map_err(db)?;
                let slot = usize::try_from(i)
                    .ok()
                    .and_then(|i| i.checked_sub(1))
                    .filter(|i| *i < keys.len())
                    .ok_or_else(|| {
                        Error::backend(std::io::Error::other("get_many: row number out of range"))
                    })?;
                out[slot] = Some(Bytes::from(r.try_get::<_, Vec<u8>>(1).map_err(db)?));
            }
            Ok(out)
        })
    }

    fn list<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
    ) -> BoxFuture<'a, Vec<(String, Bytes)>> {
        Box::pin(async move {
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT key, value FROM wa_items \
                     WHERE account = $1 AND role = $2 AND scope = $3 ORDER BY key COLLATE \"C\"",
                )
                .await
                .map_err(db)?;
            let (account, scope) = (stored(account.as_str()), stored(scope));
            let (account, scope) = (account.as_ref(), scope.as_ref());
            let rows = client
                .query(&st, &[&account, &role.code(), &scope])
                .await
                .map_err(db)?;
            rows.into_iter()
                .map(|r| {
                    let key = unstored(r.try_get::<_, String>(0).map_err(db)?);
                    let value = r.try_get::<_, Vec<u8>>(1).map_err(db)?;
                    Ok((key, Bytes::from(value)))
                })
                .collect()
        })
    }

    fn commit<'a>(&'a self, account: &'a AccountId, ops: Vec<Op>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&lock_key("commit", account)],
            )
            .await
            .map_err(db)?;
            // On error `tx` is dropped and rolls back.
            apply(&tx, account, ops).await?;
            tx.commit().await.map_err(db)
        })
    }

    fn delete_account<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&lock_key("commit", account)],
            )
            .await
            .map_err(db)?;
            let account = stored(account.as_str());
            let account = account.as_ref();
            tx.execute("DELETE FROM wa_items WHERE account = $1", &[&account])
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)
        })
    }

    fn accounts(&self) -> BoxFuture<'_, Vec<AccountId>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT account FROM wa_items WHERE role = $1 AND scope = '' AND key = '' \
                     ORDER BY account COLLATE \"C\"",
                    &[&Role::Creds.code()],
                )
                .await
                .map_err(db)?;
            rows.into_iter()
                .map(|r| AccountId::new(unstored(r.try_get::<_, String>(0).map_err(db)?)))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &[&str] = &[
        "",
        "a",
        "\u{0}",
        "\u{1}",
        "\u{2}",
        "\u{0}\u{0}",
        "\u{0}\u{1}",
        "\u{1}\u{0}",
        "\u{1}\u{1}",
        "\u{1}\u{2}",
        "\u{1}\u{3}",
        "a\u{0}b",
        "a\u{1}",
        "ab",
        "é\u{0}",
        "\u{7f}",
        "15550000001@s.whatsapp.net",
    ];

    #[test]
    fn with_database_names_the_database_and_keeps_the_rest() {
        let url = |u: &str| PostgresConfig::new(u).with_database("other").url;
        assert_eq!(url("postgres://u@h:5/db"), "postgres://u@h:5/other");
        assert_eq!(url("postgres://u@h:5"), "postgres://u@h:5/other");
        assert_eq!(
            url("postgresql://u:p@h/db?sslmode=disable&x=1"),
            "postgresql://u:p@h/other?sslmode=disable&x=1"
        );
        assert_eq!(url("postgres://h?x=1"), "postgres://h/other?x=1");
        assert_eq!(url("host=h dbname=db"), "host=h dbname=db dbname=other");
        // A key/value string's last `dbname` is the one a connection uses.
        let config: tokio_postgres::Config = url("host=h dbname=db").parse().unwrap();
        assert_eq!(config.get_dbname(), Some("other"));
        let config: tokio_postgres::Config = url("postgres://u@h:5/db?application_name=t")
            .parse()
            .unwrap();
        assert_eq!(config.get_dbname(), Some("other"));
        let mut pooled = PostgresConfig::new("postgres://h/db");
        pooled.pool_size = 3;
        assert_eq!(pooled.with_database("d").pool_size, 3);
    }

    #[test]
    fn stored_text_round_trips_and_has_no_nul() {
        for s in SAMPLES {
            let st = stored(s);
            assert!(!st.contains('\u{0}'), "{s:?}");
            assert_eq!(unstored(st.clone().into_owned()), *s, "{s:?} as {st:?}");
            // Only text with U+0000 or U+0001 is rewritten.
            let plain = !s.contains(['\u{0}', '\u{1}']);
            assert_eq!(matches!(st, Cow::Borrowed(_)), plain, "{s:?}");
        }
    }

    #[test]
    fn stored_text_keeps_byte_order() {
        for a in SAMPLES {
            for b in SAMPLES {
                assert_eq!(
                    stored(a).as_bytes().cmp(stored(b).as_bytes()),
                    a.as_bytes().cmp(b.as_bytes()),
                    "{a:?} against {b:?}"
                );
            }
        }
    }

    #[test]
    fn a_lone_escape_character_reads_as_itself() {
        assert_eq!(unstored("a\u{1}".into()), "a\u{1}");
        assert_eq!(unstored("\u{1}\u{3}".into()), "\u{1}\u{3}");
        assert_eq!(unstored("\u{1}\u{1}\u{1}".into()), "\u{0}\u{1}");
    }
}
