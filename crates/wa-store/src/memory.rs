use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use crate::{AccountId, Backend, BoxFuture, Op, Result, Role};

type Key = (AccountId, Role, String, String);
type Items = BTreeMap<Key, (Bytes, i64)>;

/// A backend in process memory: for tests, and for short-lived sessions that need not
/// survive a restart.
///
/// One lock guards everything, so a batch is atomic and commits are serialised; a failed
/// precondition undoes the ops already applied before the lock is released.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    items: Mutex<Items>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Items> {
        // A panic while holding the lock cannot leave a batch half applied (the undo log
        // runs before any early return), so a poisoned lock's data is still consistent.
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn key(a: &AccountId, role: Role, scope: &str, key: &str) -> Key {
    (a.clone(), role, scope.to_owned(), key.to_owned())
}

fn scope_keys(items: &Items, a: &AccountId, role: Role, scope: &str) -> Vec<Key> {
    items
        .range(key(a, role, scope, "")..)
        .take_while(|((acc, r, s, _), _)| acc == a && *r == role && s == scope)
        .map(|(k, _)| k.clone())
        .collect()
}

fn apply(items: &mut Items, account: &AccountId, ops: Vec<Op>) -> Result<()> {
    let mut undo: Vec<(Key, Option<(Bytes, i64)>)> = Vec::new();
    let mut failure = None;
    for op in ops {
        match op {
            Op::Put {
                role,
                scope,
                key: k,
                value,
                at,
            } => {
                let kk = (account.clone(), role, scope, k);
                let old = items.insert(kk.clone(), (value, at));
                undo.push((kk, old));
            }
            Op::Delete {
                role,
                scope,
                key: k,
            } => {
                let kk = (account.clone(), role, scope, k);
                if let Some(old) = items.remove(&kk) {
                    undo.push((kk, Some(old)));
                }
            }
            Op::DeleteScope { role, scope } => {
                for kk in scope_keys(items, account, role, &scope) {
                    let old = items.remove(&kk);
                    undo.push((kk, old));
                }
            }
            Op::DeleteBefore { role, before } => {
                let doomed: Vec<Key> = items
                    .iter()
                    .filter(|((a, r, _, _), (_, at))| a == account && *r == role && *at < before)
                    .map(|(k, _)| k.clone())
                    .collect();
                for kk in doomed {
                    let old = items.remove(&kk);
                    undo.push((kk, old));
                }
            }
            ref cond @ (Op::RequirePresent {
                role,
                ref scope,
                key: ref k,
            }
            | Op::RequireAbsent {
                role,
                ref scope,
                key: ref k,
            }) => {
                let present = items.contains_key(&key(account, role, scope, k));
                let want = matches!(cond, Op::RequirePresent { .. });
                if present != want {
                    failure = cond.conflict();
                    break;
                }
            }
        }
    }
    match failure {
        None => Ok(()),
        Some(e) => {
            for (kk, old) in undo.into_iter().rev() {
                match old {
                    Some(v) => items.insert(kk, v),
                    None => items.remove(&kk),
                };
            }
            Err(e)
        }
    }
}

impl Backend for MemoryBackend {
    fn get<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
        k: &'a str,
    ) -> BoxFuture<'a, Option<Bytes>> {
        let v = self
            .lock()
            .get(&key(account, role, scope, k))
            .map(|(v, _)| v.clone());
        Box::pin(async move { Ok(v) })
    }

    fn get_many<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        keys: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Vec<Option<Bytes>>> {
        let items = self.lock();
        let out = keys
            .iter()
            .map(|(s, k)| items.get(&key(account, role, s, k)).map(|(v, _)| v.clone()))
            .collect();
        drop(items);
        Box::pin(async move { Ok(out) })
    }

    fn list<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
    ) -> BoxFuture<'a, Vec<(String, Bytes)>> {
        let items = self.lock();
        let out = items
            .range(key(account, role, scope, "")..)
            .take_while(|((a, r, s, _), _)| a == account && *r == role && s == scope)
            .map(|((_, _, _, k), (v, _))| (k.clone(), v.clone()))
            .collect();
        Box::pin(async move { Ok(out) })
    }

    fn commit<'a>(&'a self, account: &'a AccountId, ops: Vec<Op>) -> BoxFuture<'a, ()> {
        let r = apply(&mut self.lock(), account, ops);
        Box::pin(async move { r })
    }

    fn delete_account<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, ()> {
        self.lock().retain(|(a, _, _, _), _| a != account);
        Box::pin(async { Ok(()) })
    }

    fn accounts(&self) -> BoxFuture<'_, Vec<AccountId>> {
        let out = self
            .lock()
            .keys()
            .filter(|(_, r, _, _)| *r == Role::Creds)
            .map(|(a, _, _, _)| a.clone())
            .collect();
        Box::pin(async move { Ok(out) })
    }
}
