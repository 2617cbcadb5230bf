use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::{AccountId, Backend, BoxFuture, Op, Result, Role};

type Key = (Role, String, String);
type Items = BTreeMap<Key, (Bytes, i64)>;
type Shared = Arc<Mutex<Items>>;

/// A backend in process memory: for tests, and for short-lived sessions that need not
/// survive a restart.
///
/// Each account has its own map under its own lock, so accounts never wait for each
/// other and a prune reads only its own account's items. Within an account a batch is
/// atomic and commits are serialised; a failed precondition undoes the ops already
/// applied before the lock is released.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    accounts: Mutex<HashMap<AccountId, Shared>>,
}

/// Locks a mutex whose data stays consistent even if a holder panicked: a batch is
/// never left half applied (the undo log runs before any early return).
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The items of `account`, if it has any.
    fn items(&self, account: &AccountId) -> Option<Shared> {
        locked(&self.accounts).get(account).cloned()
    }

    /// The items of `account`, created empty when it has none.
    fn items_or_new(&self, account: &AccountId) -> Shared {
        locked(&self.accounts)
            .entry(account.clone())
            .or_default()
            .clone()
    }
}

fn key(role: Role, scope: &str, key: &str) -> Key {
    (role, scope.to_owned(), key.to_owned())
}

fn scope_keys(items: &Items, role: Role, scope: &str) -> Vec<Key> {
    items
        .range(key(role, scope, "")..)
        .take_while(|((r, s, _), _)| *r == role && s == scope)
        .map(|(k, _)| k.clone())
        .collect()
}

fn apply(items: &mut Items, ops: Vec<Op>) -> Result<()> {
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
                let kk = (role, scope, k);
                let old = items.insert(kk.clone(), (value, at));
                undo.push((kk, old));
            }
            Op::Delete {
                role,
                scope,
                key: k,
            } => {
                let kk = (role, scope, k);
                if let Some(old) = items.remove(&kk) {
                    undo.push((kk, Some(old)));
                }
            }
            Op::DeleteScope { role, scope } => {
                for kk in scope_keys(items, role, &scope) {
                    let old = items.remove(&kk);
                    undo.push((kk, old));
                }
            }
            Op::DeleteBefore { role, before } => {
                let doomed: Vec<Key> = items
                    .range(key(role, "", "")..)
                    .take_while(|((r, _, _), _)| *r == role)
                    .filter(|(_, (_, at))| *at < before)
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
                let present = items.contains_key(&key(role, scope, k));
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
        let v = self.items(account).and_then(|items| {
            locked(&items)
                .get(&key(role, scope, k))
                .map(|(v, _)| v.clone())
        });
        Box::pin(async move { Ok(v) })
    }

    fn get_many<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        keys: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Vec<Option<Bytes>>> {
        let out = match self.items(account) {
            Some(items) => {
                let items = locked(&items);
                keys.iter()
                    .map(|(s, k)| items.get(&key(role, s, k)).map(|(v, _)| v.clone()))
                    .collect()
            }
            None => vec![None; keys.len()],
        };
        Box::pin(async move { Ok(out) })
    }

    fn list<'a>(
        &'a self,
        account: &'a AccountId,
        role: Role,
        scope: &'a str,
    ) -> BoxFuture<'a, Vec<(String, Bytes)>> {
        let out = match self.items(account) {
            Some(items) => locked(&items)
                .range(key(role, scope, "")..)
                .take_while(|((r, s, _), _)| *r == role && s == scope)
                .map(|((_, _, k), (v, _))| (k.clone(), v.clone()))
                .collect(),
            None => Vec::new(),
        };
        Box::pin(async move { Ok(out) })
    }

    fn commit<'a>(&'a self, account: &'a AccountId, ops: Vec<Op>) -> BoxFuture<'a, ()> {
        let items = self.items_or_new(account);
        let r = apply(&mut locked(&items), ops);
        Box::pin(async move { r })
    }

    fn delete_account<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, ()> {
        if let Some(items) = locked(&self.accounts).remove(account) {
            // A commit that took this map before the removal lands in it, not in a new
            // account: clear it too.
            locked(&items).clear();
        }
        Box::pin(async { Ok(()) })
    }

    fn accounts(&self) -> BoxFuture<'_, Vec<AccountId>> {
        let all: Vec<(AccountId, Shared)> = locked(&self.accounts)
            .iter()
            .map(|(a, i)| (a.clone(), i.clone()))
            .collect();
        let mut out: Vec<AccountId> = all
            .into_iter()
            .filter(|(_, items)| {
                locked(items)
                    .range(key(Role::Creds, "", "")..)
                    .next()
                    .is_some_and(|((r, _, _), _)| *r == Role::Creds)
            })
            .map(|(a, _)| a)
            .collect();
        out.sort();
        Box::pin(async move { Ok(out) })
    }
}
