//! [`Tapped`]: a backend that hands every call to the backend it wraps, with hooks around
//! each, so tests can count, record, pause or refuse store calls without implementing
//! [`Backend`] again.

use std::fmt;

use bytes::Bytes;

use crate::{AccountId, Backend, BoxFuture, MemoryBackend, Op, Role};

/// Which read a [`Tap`] hook sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// [`Backend::get`]: one item.
    One,
    /// [`Backend::get_many`]: this many items at once.
    Many(usize),
    /// [`Backend::list`]: every item of a scope.
    List,
}

/// A future that is done at once: what a hook with nothing to wait for returns.
pub fn done<'a>() -> BoxFuture<'a, ()> {
    Box::pin(async { Ok(()) })
}

/// What a [`Tapped`] backend does around the calls it hands on. Every hook defaults to
/// doing nothing; an error from a `before` hook fails the call without reaching the
/// wrapped backend.
pub trait Tap: Send + Sync + fmt::Debug {
    /// Runs before a read of `role` reaches the wrapped backend.
    fn before_read(&self, role: Role, read: Read) -> BoxFuture<'_, ()> {
        let _ = (role, read);
        done()
    }

    /// Runs after the wrapped backend answered a read, before the caller gets the answer.
    fn after_read(&self, role: Role, read: Read) -> BoxFuture<'_, ()> {
        let _ = (role, read);
        done()
    }

    /// Runs before a batch reaches the wrapped backend; an error refuses the batch.
    fn before_commit<'a>(&'a self, ops: &'a [Op]) -> BoxFuture<'a, ()> {
        let _ = ops;
        done()
    }

    /// Runs after the wrapped backend applied or refused a batch, before the caller gets
    /// the result.
    fn after_commit<'a>(&'a self, ops: &'a [Op]) -> BoxFuture<'a, ()> {
        let _ = ops;
        done()
    }
}

/// A shared tap: its owner keeps a handle to look at what it saw.
impl<T: Tap + ?Sized> Tap for std::sync::Arc<T> {
    fn before_read(&self, role: Role, read: Read) -> BoxFuture<'_, ()> {
        (**self).before_read(role, read)
    }
    fn after_read(&self, role: Role, read: Read) -> BoxFuture<'_, ()> {
        (**self).after_read(role, read)
    }
    fn before_commit<'a>(&'a self, ops: &'a [Op]) -> BoxFuture<'a, ()> {
        (**self).before_commit(ops)
    }
    fn after_commit<'a>(&'a self, ops: &'a [Op]) -> BoxFuture<'a, ()> {
        (**self).after_commit(ops)
    }
}

/// No hooks: a [`Tapped`] with `()` only hands calls on (with
/// [`Tapped::one_by_one`], a backend that keeps the trait's default bulk read).
impl Tap for () {}

/// A backend (the memory backend unless named) with a [`Tap`] around every read and
/// commit; deleting an account and listing accounts go straight through.
#[derive(Debug, Default)]
pub struct Tapped<T, B = MemoryBackend> {
    inner: B,
    tap: T,
    one_by_one: bool,
}

impl<T: Tap, B: Backend> Tapped<T, B> {
    /// Wraps `inner`.
    pub fn new(inner: B, tap: T) -> Self {
        Self {
            inner,
            tap,
            one_by_one: false,
        }
    }

    /// Answers [`Backend::get_many`] as the trait's default does, with one
    /// [`Backend::get`] per key, instead of handing it on.
    #[must_use]
    pub fn one_by_one(mut self) -> Self {
        self.one_by_one = true;
        self
    }

    /// The wrapped backend, to read or write past the tap.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The tap, to look at what it saw.
    pub fn tap(&self) -> &T {
        &self.tap
    }
}

impl<T: Tap, B: Backend> Backend for Tapped<T, B> {
    fn get<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            self.tap.before_read(role, Read::One).await?;
            let value = self.inner.get(account, role, scope, key).await;
            self.tap.after_read(role, Read::One).await?;
            value
        })
    }

    fn get_many<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        keys: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Vec<Option<Bytes>>> {
        if self.one_by_one {
            return crate::backend::get_one_by_one(self, account, role, keys);
        }
        Box::pin(async move {
            let read = Read::Many(keys.len());
            self.tap.before_read(role, read).await?;
            let values = self.inner.get_many(account, role, keys).await;
            self.tap.after_read(role, read).await?;
            values
        })
    }

    fn list<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
    ) -> BoxFuture<'a, Vec<(String, Bytes)>> {
        Box::pin(async move {
            self.tap.before_read(role, Read::List).await?;
            let items = self.inner.list(account, role, scope).await;
            self.tap.after_read(role, Read::List).await?;
            items
        })
    }

    fn commit<'a>(&'a self, account: &'a AccountId, ops: Vec<Op>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.tap.before_commit(&ops).await?;
            let seen = ops.clone();
            let result = self.inner.commit(account, ops).await;
            self.tap.after_commit(&seen).await?;
            result
        })
    }

    fn delete_account<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, ()> {
        self.inner.delete_account(account)
    }

    fn accounts(&self) -> BoxFuture<'_, Vec<AccountId>> {
        self.inner.accounts()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records every hook call, and refuses batches of more than one op.
    #[derive(Debug, Default)]
    struct Log(Mutex<Vec<String>>);

    impl Log {
        fn push(&self, s: String) {
            self.0.lock().unwrap().push(s);
        }
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }

    impl Tap for Log {
        fn before_read(&self, role: Role, read: Read) -> BoxFuture<'_, ()> {
            self.push(format!("before {role:?} {read:?}"));
            done()
        }
        fn after_read(&self, role: Role, read: Read) -> BoxFuture<'_, ()> {
            self.push(format!("after {role:?} {read:?}"));
            done()
        }
        fn before_commit<'a>(&'a self, ops: &'a [Op]) -> BoxFuture<'a, ()> {
            self.push(format!("before commit {}", ops.len()));
            if ops.len() > 1 {
                return Box::pin(async {
                    Err(crate::Error::backend(std::io::Error::other("refused")))
                });
            }
            done()
        }
        fn after_commit<'a>(&'a self, ops: &'a [Op]) -> BoxFuture<'a, ()> {
            self.push(format!("after commit {}", ops.len()));
            done()
        }
    }

    fn put(key: &str) -> Op {
        Op::Put {
            role: Role::Session,
            scope: "s".into(),
            key: key.into(),
            value: Bytes::from_static(b"v"),
            at: 0,
        }
    }

    #[tokio::test]
    async fn hooks_run_around_each_call_and_a_refusal_stops_the_batch() {
        let tapped = Tapped::new(MemoryBackend::new(), Log::default());
        let acct = AccountId::new("a").unwrap();
        tapped.commit(&acct, vec![put("k")]).await.unwrap();
        assert_eq!(tapped.tap().take(), ["before commit 1", "after commit 1"]);
        assert!(
            tapped
                .commit(&acct, vec![put("x"), put("y")])
                .await
                .is_err()
        );
        assert_eq!(tapped.tap().take(), ["before commit 2"]);
        assert!(
            tapped
                .inner()
                .get(&acct, Role::Session, "s", "x")
                .await
                .unwrap()
                .is_none()
        );
        let v = tapped.get(&acct, Role::Session, "s", "k").await.unwrap();
        assert_eq!(v.as_deref(), Some(&b"v"[..]));
        let keys = [("s", "k"), ("s", "x")];
        let many = tapped.get_many(&acct, Role::Session, &keys).await.unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(
            tapped.list(&acct, Role::Session, "s").await.unwrap().len(),
            1
        );
        assert_eq!(
            tapped.tap().take(),
            [
                "before Session One",
                "after Session One",
                "before Session Many(2)",
                "after Session Many(2)",
                "before Session List",
                "after Session List",
            ]
        );
        // One by one, a bulk read is single reads.
        let tapped = tapped.one_by_one();
        tapped.get_many(&acct, Role::Session, &keys).await.unwrap();
        assert_eq!(
            tapped.tap().take(),
            [
                "before Session One",
                "after Session One",
                "before Session One",
                "after Session One",
            ]
        );
    }
}
