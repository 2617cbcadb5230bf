use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::{AccountId, Backend, BoxFuture, FastHash, Op, Result, Role};

/// The items of one scope, with their `at`. Hashed: a scope written with every message
/// (sent records, processed markers) grows to tens of thousands of keys, and a hashed
/// insert beats a search down an ordered tree of similar keys; the one ordered read,
/// [`Backend::list`], sorts what it returns. Hashed with [`FastHash`], whose weaker
/// resistance to keys chosen to collide suits a backend for tests and short-lived
/// sessions.
type Scope = HashMap<String, (Bytes, i64), FastHash>;
/// One account's items: role, then scope, then key. Nested so a lookup borrows its
/// scope and key instead of building an owned key, and a scope's keys compare among
/// themselves only.
type Items = HashMap<Role, HashMap<String, Scope, FastHash>, FastHash>;
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

fn lookup<'a>(items: &'a Items, role: Role, scope: &str, key: &str) -> Option<&'a (Bytes, i64)> {
    items.get(&role)?.get(scope)?.get(key)
}

/// What a batch changed, to restore if a later precondition fails: each key written or
/// removed, with its value before.
type Undo = Vec<(Role, String, String, Option<(Bytes, i64)>)>;

/// Puts (`Some`) or removes (`None`) one item; an emptied scope is dropped so scopes
/// that come and go (chats, addresses) do not accumulate. Returns the value before.
fn set(
    items: &mut Items,
    role: Role,
    scope: &str,
    key: &str,
    value: Option<(Bytes, i64)>,
) -> Option<(Bytes, i64)> {
    let scopes = items.entry(role).or_default();
    match value {
        Some(v) => match scopes.get_mut(scope) {
            Some(keys) => keys.insert(key.to_owned(), v),
            None => {
                scopes.insert(scope.to_owned(), Scope::from_iter([(key.to_owned(), v)]));
                None
            }
        },
        None => {
            let keys = scopes.get_mut(scope)?;
            let old = keys.remove(key);
            if keys.is_empty() {
                scopes.remove(scope);
            }
            old
        }
    }
}

fn apply(items: &mut Items, ops: Vec<Op>) -> Result<()> {
    // Only a precondition can fail a batch part way, so only a batch with one keeps an
    // undo log (and the copies of keys it takes).
    let mut undo: Option<Undo> = ops.iter().any(|op| !op.writes()).then(Vec::new);
    let mut failure = None;
    for op in ops {
        match op {
            Op::Put {
                role,
                scope,
                key,
                value,
                at,
            } => {
                let Some(undo) = undo.as_mut() else {
                    // Moves the owned scope and key into the map when they are new.
                    let keys = items.entry(role).or_default().entry(scope).or_default();
                    keys.insert(key, (value, at));
                    continue;
                };
                let old = set(items, role, &scope, &key, Some((value, at)));
                undo.push((role, scope, key, old));
            }
            Op::Delete { role, scope, key } => {
                let old = set(items, role, &scope, &key, None);
                if let (Some(undo), Some(old)) = (undo.as_mut(), old) {
                    undo.push((role, scope, key, Some(old)));
                }
            }
            Op::DeleteScope { role, scope } => {
                let removed = items.get_mut(&role).and_then(|s| s.remove(&scope));
                if let (Some(undo), Some(removed)) = (undo.as_mut(), removed) {
                    for (key, old) in removed {
                        undo.push((role, scope.clone(), key, Some(old)));
                    }
                }
            }
            Op::DeleteBefore { role, before } => {
                let Some(scopes) = items.get_mut(&role) else {
                    continue;
                };
                for (scope, keys) in scopes.iter_mut() {
                    let doomed: Vec<String> = keys
                        .iter()
                        .filter(|(_, (_, at))| *at < before)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in doomed {
                        let old = keys.remove(&key);
                        if let Some(undo) = undo.as_mut() {
                            undo.push((role, scope.clone(), key, old));
                        }
                    }
                }
                scopes.retain(|_, keys| !keys.is_empty());
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
                let present = lookup(items, role, scope, key).is_some();
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
            for (role, scope, key, old) in undo.unwrap_or_default().into_iter().rev() {
                set(items, role, &scope, &key, old);
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
            .items(account)
            .and_then(|items| lookup(&locked(&items), role, scope, k).map(|(v, _)| v.clone()));
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
                    .map(|(s, k)| lookup(&items, role, s, k).map(|(v, _)| v.clone()))
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
                .get(&role)
                .and_then(|scopes| scopes.get(scope))
                .map(|keys| {
                    let mut all: Vec<(String, Bytes)> = keys
                        .iter()
                        .map(|(k, (v, _))| (k.clone(), v.clone()))
                        .collect();
                    all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    all
                })
                .unwrap_or_default(),
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
                    .get(&Role::Creds)
                    .is_some_and(|scopes| !scopes.is_empty())
            })
            .map(|(a, _)| a)
            .collect();
        out.sort();
        Box::pin(async move { Ok(out) })
    }
}
