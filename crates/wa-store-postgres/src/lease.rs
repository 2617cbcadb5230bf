use tokio_postgres::NoTls;
use wa_store::{AccountId, Error, Result};

use crate::backend::{db, lock_key};

/// Exclusive ownership of one account by one worker, held as a session-level PostgreSQL
/// advisory lock on a connection of its own.
///
/// While a lease lives, [`PostgresBackend::lease`](crate::PostgresBackend::lease) for the
/// same account fails with [`Error::AccountLocked`] in every other worker. Dropping the
/// lease closes its connection, which releases the lock; if the process dies, the server
/// notices the closed connection and releases it too. [`AccountLease::release`] releases
/// explicitly and waits for the server to confirm.
#[derive(Debug)]
pub struct AccountLease {
    account: AccountId,
    client: tokio_postgres::Client,
    key: i64,
}

impl AccountLease {
    pub(crate) async fn acquire(
        config: &tokio_postgres::Config,
        account: &AccountId,
    ) -> Result<Self> {
        let (client, connection) = config.connect(NoTls).await.map_err(db)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "account lease connection ended with an error");
            }
        });
        let key = lock_key("lease", account);
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(db)?
            .try_get(0)
            .map_err(db)?;
        if !got {
            return Err(Error::AccountLocked {
                account: account.as_str().to_owned(),
            });
        }
        tracing::debug!(account = %account, "account leased");
        Ok(Self {
            account: account.clone(),
            client,
            key,
        })
    }

    /// The leased account.
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// Whether the lease's connection is still open (if it closed, the lock is gone and
    /// the worker must stop driving the account).
    pub fn is_held(&self) -> bool {
        !self.client.is_closed()
    }

    /// Releases the account and waits for the server to confirm.
    ///
    /// # Errors
    /// [`Error::Backend`] when the connection already failed (the lock is then released
    /// by the server anyway).
    pub async fn release(self) -> Result<()> {
        self.client
            .query_one("SELECT pg_advisory_unlock($1)", &[&self.key])
            .await
            .map_err(db)?;
        tracing::debug!(account = %self.account, "account released");
        Ok(())
    }
}
