//! Two workers on one account: the second is refused while the first holds the lease, and
//! gets it once the first releases it, drops it, or its process dies.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wa_store::{AccountId, Error};
use wa_store_postgres::PostgresBackend;

/// Kills the child process if the test fails before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const CHILD_ENV: &str = "WA_STORE_LEASE_CHILD_ACCOUNT";

fn fresh() -> AccountId {
    wa_store::testing::fresh_account()
}

fn assert_locked(r: Result<wa_store_postgres::AccountLease, Error>, account: &AccountId) {
    match r {
        Err(Error::AccountLocked { account: a }) => assert_eq!(a, account.as_str()),
        other => panic!("expected AccountLocked, got {other:?}"),
    }
}

async fn lease_within(
    b: &PostgresBackend,
    account: &AccountId,
    limit: Duration,
) -> wa_store_postgres::AccountLease {
    let start = Instant::now();
    loop {
        match b.lease(account).await {
            Ok(l) => return l,
            Err(Error::AccountLocked { .. }) if start.elapsed() < limit => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("account not released within {limit:?}: {e}"),
        }
    }
}

#[tokio::test]
async fn second_worker_is_refused_until_release() {
    let Some(w1) = common::connect().await else {
        return;
    };
    let w2 = common::connect().await.unwrap();
    let account = fresh();
    let other = fresh();
    let lease = w1.lease(&account).await.unwrap();
    assert!(lease.is_held());
    assert_eq!(lease.account(), &account);
    assert_locked(w2.lease(&account).await, &account);
    // The same worker cannot take it twice either: a lease is one owner.
    assert_locked(w1.lease(&account).await, &account);
    // Other accounts are unaffected.
    let other_lease = w2.lease(&other).await.unwrap();
    lease.release().await.unwrap();
    let l2 = w2.lease(&account).await.unwrap();
    assert_locked(w1.lease(&account).await, &account);
    // Dropping a lease releases it too (the connection closes).
    drop(l2);
    let l3 = lease_within(&w1, &account, Duration::from_secs(5)).await;
    drop(l3);
    drop(other_lease);
}

#[test]
#[ignore = "child process of lease_is_released_when_the_holder_dies"]
fn lease_child() {
    let Ok(account) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let b = common::connect().await.unwrap();
        let _lease = b.lease(&AccountId::new(account).unwrap()).await.unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(out, "leased").unwrap();
        out.flush().unwrap();
        drop(out);
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

#[tokio::test]
async fn lease_is_released_when_the_holder_dies() {
    let Some(b) = common::connect().await else {
        return;
    };
    let account = fresh();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "lease_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, account.as_str())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("child ended before leasing").unwrap();
        // libtest may print "test lease_child ... " on the same line first.
        if line.ends_with("leased") {
            break;
        }
    }
    assert_locked(b.lease(&account).await, &account);
    // SIGKILL: the child never releases; its connection just drops.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let lease = lease_within(&b, &account, Duration::from_secs(10)).await;
    assert!(lease.is_held());
    lease.release().await.unwrap();
}
