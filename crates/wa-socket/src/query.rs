//! Correlating `<iq>` replies with the queries that asked for them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;
use wa_binary::Node;

/// The queries in flight on one connection, keyed by their `id` attribute.
#[derive(Debug)]
pub(crate) struct PendingQueries {
    prefix: String,
    counter: AtomicU64,
    waiting: Mutex<HashMap<String, oneshot::Sender<Node>>>,
}

/// Removes its entry when dropped, so a query that timed out or was cancelled leaves
/// nothing behind.
#[derive(Debug)]
pub(crate) struct Waiter<'a> {
    pending: &'a PendingQueries,
    id: String,
    rx: oneshot::Receiver<Node>,
}

impl PendingQueries {
    /// `seed` makes ids unique across connections (whatsmeow and Baileys use a random
    /// prefix followed by a counter).
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            prefix: format!("{}.{}-", seed >> 32, seed & 0xFFFF_FFFF),
            counter: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh stanza id.
    pub(crate) fn next_id(&self) -> String {
        format!(
            "{}{}",
            self.prefix,
            self.counter.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Starts waiting for the reply to `id`.
    pub(crate) fn wait(&self, id: String) -> Waiter<'_> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id.clone(), tx);
        Waiter {
            pending: self,
            id,
            rx,
        }
    }

    /// Hands an incoming `<iq type=result|error>` to its waiter. Returns the node back
    /// when nobody waits for it.
    pub(crate) fn resolve(&self, node: Node) -> Option<Node> {
        if node.tag() != "iq" {
            return Some(node);
        }
        let kind = node.attr_opt::<&str>("type").ok().flatten();
        if !matches!(kind, Some("result" | "error")) {
            return Some(node);
        }
        let Some(id) = node.attr_opt::<&str>("id").ok().flatten() else {
            return Some(node);
        };
        let tx = self.lock().remove(id);
        match tx {
            Some(tx) => tx.send(node).err(),
            None => Some(node),
        }
    }

    /// Fails every waiting query (the connection is gone).
    pub(crate) fn fail_all(&self) {
        self.lock().clear();
    }

    /// Number of queries in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Node>>> {
        // A poisoned map only means another thread panicked mid-insert; the map itself
        // is still consistent, so keep using it.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Waiter<'_> {
    /// The reply, or `None` when the connection closed first.
    pub(crate) async fn reply(&mut self) -> Option<Node> {
        (&mut self.rx).await.ok()
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(id: &str, kind: &str) -> Node {
        Node::builder("iq")
            .attr("id", id.to_owned())
            .attr("type", kind.to_owned())
            .build()
    }

    #[tokio::test]
    async fn replies_reach_their_query_only() {
        let p = PendingQueries::new(42);
        let (a, b) = (p.next_id(), p.next_id());
        assert_ne!(a, b);
        let mut wa = p.wait(a.clone());
        let mut wb = p.wait(b.clone());
        assert!(p.resolve(reply(&b, "error")).is_none());
        assert!(
            p.resolve(reply("unknown", "result")).is_some(),
            "unclaimed replies come back"
        );
        assert!(
            p.resolve(
                Node::builder("iq")
                    .attr("id", &a)
                    .attr("type", "set")
                    .build()
            )
            .is_some()
        );
        assert!(p.resolve(reply(&a, "result")).is_none());
        assert_eq!(
            wa.reply().await.unwrap().attr::<&str>("type").unwrap(),
            "result"
        );
        assert_eq!(
            wb.reply().await.unwrap().attr::<&str>("type").unwrap(),
            "error"
        );
    }

    #[tokio::test]
    async fn dropped_waiters_leave_nothing_and_close_fails_the_rest() {
        let p = PendingQueries::new(1);
        {
            let _w = p.wait(p.next_id());
            assert_eq!(p.len(), 1);
        }
        assert_eq!(p.len(), 0);
        let mut w = p.wait(p.next_id());
        p.fail_all();
        assert!(w.reply().await.is_none());
    }
}
