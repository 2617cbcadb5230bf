//! Routing incoming stanzas to the layer that registered for them.

use std::sync::RwLock;

use tokio::sync::mpsc;
use wa_binary::{Jid, Node, Server};

/// Which stanzas a subscriber wants: a tag, and optionally the `type` and `xmlns`
/// attributes and the server of the `from` JID. The most specific matching filter wins;
/// among equals, the first registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    tag: String,
    kind: Option<String>,
    xmlns: Option<String>,
    from_server: Option<Server>,
}

impl Filter {
    /// Every stanza with this tag.
    pub fn tag(tag: impl Into<String>) -> Self {
        Self {
            tag: tag.into(),
            kind: None,
            xmlns: None,
            from_server: None,
        }
    }

    /// Only stanzas whose `from` attribute is a JID on `server` (e.g. the `<message>`s
    /// channels send, from `..@newsletter`).
    #[must_use]
    pub fn from_server(mut self, server: Server) -> Self {
        self.from_server = Some(server);
        self
    }

    /// Only stanzas whose `type` attribute equals `kind`.
    #[must_use]
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Only stanzas whose `xmlns` attribute equals `xmlns`.
    #[must_use]
    pub fn xmlns(mut self, xmlns: impl Into<String>) -> Self {
        self.xmlns = Some(xmlns.into());
        self
    }

    fn matches(&self, node: &Node) -> bool {
        let attr = |k: &str| node.get_attr(k).and_then(|v| v.as_str());
        node.tag() == self.tag
            && self.kind.as_deref().is_none_or(|k| attr("type") == Some(k))
            && self
                .xmlns
                .as_deref()
                .is_none_or(|x| attr("xmlns") == Some(x))
            && self.from_server.as_ref().is_none_or(|s| {
                node.attr_opt::<Jid>("from")
                    .ok()
                    .flatten()
                    .is_some_and(|j| j.server == *s)
            })
    }

    fn specificity(&self) -> usize {
        usize::from(self.kind.is_some())
            + usize::from(self.xmlns.is_some())
            + usize::from(self.from_server.is_some())
    }
}

/// The outcome of offering a stanza to the dispatcher.
#[derive(Debug)]
pub enum Dispatched {
    /// A subscriber took it.
    Delivered,
    /// No subscriber matches; the stanza is handed back.
    Unhandled(Node),
}

/// The stanzas a [`Dispatcher`] routes to one subscriber, in arrival order. Dropping it
/// unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    // Boxed nodes: the queue's first block of slots is allocated up front, and a socket
    // has several subscriptions that sit idle most of the time.
    rx: mpsc::Receiver<Box<Node>>,
}

impl Subscription {
    /// The next stanza; `None` once the dispatcher is gone.
    pub async fn recv(&mut self) -> Option<Node> {
        self.rx.recv().await.map(|n| *n)
    }

    /// The next stanza if one is queued.
    ///
    /// # Errors
    /// [`mpsc::error::TryRecvError`] when the queue is empty or the dispatcher is gone.
    pub fn try_recv(&mut self) -> Result<Node, mpsc::error::TryRecvError> {
        self.rx.try_recv().map(|n| *n)
    }
}

/// Subscriptions by filter, each a bounded queue: a slow subscriber makes the reader wait
/// (back-pressure) rather than the socket buffer without bound.
#[derive(Debug, Default)]
pub struct Dispatcher {
    subs: RwLock<Vec<(Filter, mpsc::Sender<Box<Node>>)>>,
}

impl Dispatcher {
    /// Registers interest in the stanzas `filter` matches; `capacity` bounds the queue.
    pub fn subscribe(&self, filter: Filter, capacity: usize) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.subs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((filter, tx));
        Subscription { rx }
    }

    /// Delivers `node` to the best matching live subscriber, waiting for queue space.
    /// Subscribers whose receiver was dropped are forgotten.
    pub async fn dispatch(&self, node: Node) -> Dispatched {
        let target = {
            let subs = self
                .subs
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            subs.iter()
                .filter(|(f, tx)| !tx.is_closed() && f.matches(&node))
                .fold(
                    None::<(&Filter, &mpsc::Sender<Box<Node>>)>,
                    |best, (f, tx)| match best {
                        Some((b, _)) if b.specificity() >= f.specificity() => best,
                        _ => Some((f, tx)),
                    },
                )
                .map(|(_, tx)| tx.clone())
        };
        match target {
            Some(tx) => match tx.send(Box::new(node)).await {
                Ok(()) => Dispatched::Delivered,
                Err(mpsc::error::SendError(node)) => {
                    self.prune();
                    Box::pin(self.dispatch(*node)).await
                }
            },
            None => Dispatched::Unhandled(node),
        }
    }

    fn prune(&self) {
        self.subs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(_, tx)| !tx.is_closed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(tag: &str, kind: &str, xmlns: &str) -> Node {
        Node::builder(tag.to_owned())
            .attr("type", kind.to_owned())
            .attr("xmlns", xmlns.to_owned())
            .build()
    }

    #[tokio::test]
    async fn most_specific_subscriber_wins() {
        let d = Dispatcher::default();
        let mut any = d.subscribe(Filter::tag("notification"), 4);
        let mut enc = d.subscribe(Filter::tag("notification").kind("encrypt"), 4);
        let mut both = d.subscribe(Filter::tag("iq").kind("set").xmlns("md"), 4);

        assert!(matches!(
            d.dispatch(node("notification", "encrypt", "x")).await,
            Dispatched::Delivered
        ));
        assert!(matches!(
            d.dispatch(node("notification", "devices", "x")).await,
            Dispatched::Delivered
        ));
        assert!(matches!(
            d.dispatch(node("iq", "set", "md")).await,
            Dispatched::Delivered
        ));
        assert!(matches!(
            d.dispatch(node("iq", "set", "other")).await,
            Dispatched::Unhandled(_)
        ));
        assert!(matches!(
            d.dispatch(Node::new("receipt")).await,
            Dispatched::Unhandled(_)
        ));

        assert_eq!(
            enc.recv().await.unwrap().attr::<&str>("type").unwrap(),
            "encrypt"
        );
        assert_eq!(
            any.recv().await.unwrap().attr::<&str>("type").unwrap(),
            "devices"
        );
        assert_eq!(
            both.recv().await.unwrap().attr::<&str>("xmlns").unwrap(),
            "md"
        );
        assert!(any.try_recv().is_err() && enc.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_from_server_filter_takes_only_stanzas_from_that_server() {
        let d = Dispatcher::default();
        let mut all = d.subscribe(Filter::tag("message"), 4);
        let mut channels = d.subscribe(Filter::tag("message").from_server(Server::Newsletter), 4);
        let from = |jid: &str| {
            Node::builder("message")
                .attr("from", jid.parse::<Jid>().unwrap())
                .build()
        };
        for n in [
            from("120363000000000001@newsletter"),
            from("15550000001@s.whatsapp.net"),
            Node::builder("message")
                .attr("from", "not a jid @@")
                .build(),
            Node::new("message"),
        ] {
            assert!(matches!(d.dispatch(n).await, Dispatched::Delivered));
        }
        assert!(
            channels
                .recv()
                .await
                .unwrap()
                .attr::<Jid>("from")
                .unwrap()
                .is_newsletter()
        );
        assert!(channels.try_recv().is_err());
        for _ in 0..3 {
            all.recv().await.unwrap();
        }
    }

    #[tokio::test]
    async fn dropped_subscribers_fall_back() {
        let d = Dispatcher::default();
        let mut general = d.subscribe(Filter::tag("message"), 1);
        let specific = d.subscribe(Filter::tag("message").kind("text"), 1);
        drop(specific);
        assert!(matches!(
            d.dispatch(node("message", "text", "")).await,
            Dispatched::Delivered
        ));
        assert!(general.recv().await.is_some());
    }

    #[tokio::test]
    async fn full_queue_applies_back_pressure() {
        let d = std::sync::Arc::new(Dispatcher::default());
        let mut rx = d.subscribe(Filter::tag("a"), 1);
        d.dispatch(Node::new("a")).await;
        let d2 = d.clone();
        let second = tokio::spawn(async move { d2.dispatch(Node::new("a")).await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            !second.is_finished(),
            "the second stanza waits for queue space"
        );
        rx.recv().await.unwrap();
        second.await.unwrap();
        assert!(rx.recv().await.is_some());
    }
}
