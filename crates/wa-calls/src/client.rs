//! The [`Calls`] handle: incoming `<call>` stanzas as events, rejecting calls, call links.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use wa_binary::{Jid, Node, Server};
use wa_socket::{Event, Filter, LazyCache, Socket};
use wa_types::{CallEvent, CallStatus};

use crate::Error;
use crate::parse::{parse_call, parse_link_create_reply};

/// Settings of a [`Calls`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallsConfig {
    /// Most call offers remembered (so later stanzas of a call report its video and
    /// group flags).
    pub offer_cache_capacity: u64,
    /// How long an offer is remembered.
    pub offer_ttl: Duration,
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            offer_cache_capacity: 256,
            offer_ttl: Duration::from_secs(5 * 60),
        }
    }
}

/// The media of a call link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallMedia {
    /// A voice call.
    Audio,
    /// A video call.
    Video,
}

impl CallMedia {
    /// The wire value (`audio` / `video`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }
}

/// A call link: its token and the URL to share.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallLink {
    /// The token the server issued.
    pub token: String,
    /// The media the link was made for.
    pub media: CallMedia,
}

impl CallLink {
    /// `https://call.whatsapp.com/<media>/<token>`.
    pub fn url(&self) -> String {
        format!(
            "https://call.whatsapp.com/{}/{}",
            self.media.as_str(),
            self.token
        )
    }
}

/// What an offer said that later stanzas of the call do not repeat.
#[derive(Debug, Clone)]
struct OfferFacts {
    is_video: bool,
    is_group: bool,
    caller_pn: Option<Jid>,
    group_jid: Option<Jid>,
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Node>>>>;

fn lock(p: &Pending) -> MutexGuard<'_, HashMap<String, oneshot::Sender<Node>>> {
    // A poisoned map only means a thread panicked between two map operations; the map
    // itself is consistent.
    p.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Call signalling over a [`Socket`]. Cheap to clone; the listener task stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Calls {
    inner: Arc<Inner>,
}

struct Inner {
    socket: Socket,
    pending: Pending,
    listener: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("pending_requests", &lock(&self.inner.pending).len())
            .finish()
    }
}

/// Call stanzas queued for the listener before the socket's reader waits.
const CALL_QUEUE: usize = 64;

/// Removes a pending request when the caller stops waiting (done, timed out or
/// cancelled).
struct PendingGuard<'a> {
    pending: &'a Pending,
    id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(&self.id);
    }
}

impl Calls {
    /// Wraps `socket` and subscribes to `<call>` stanzas: each one is acknowledged and
    /// emitted as [`Event::Call`] (replies to our own call requests are handed to the
    /// request instead). Must be called inside a Tokio runtime.
    ///
    /// Make one per socket and clone it: the socket gives each stanza to one subscriber,
    /// so a second `Calls` on the same socket would get no stanzas (nor the answers to
    /// its own call-link requests).
    pub fn new(socket: Socket, config: &CallsConfig) -> Self {
        let offers: LazyCache<String, OfferFacts> =
            LazyCache::new(config.offer_cache_capacity, config.offer_ttl);
        let pending: Pending = Arc::default();
        let mut rx = socket.subscribe(Filter::tag("call"), CALL_QUEUE);
        let (task_socket, task_pending) = (socket.clone(), pending.clone());
        let listener = tokio::spawn(async move {
            while let Some(node) = rx.recv().await {
                let waiter = node
                    .attr_opt::<&str>("id")
                    .ok()
                    .flatten()
                    .and_then(|id| lock(&task_pending).remove(id));
                if let Some(tx) = waiter {
                    let _ = tx.send(node);
                    continue;
                }
                Box::pin(on_call(&task_socket, &offers, &node)).await;
            }
        })
        .abort_handle();
        Self {
            inner: Arc::new(Inner {
                socket,
                pending,
                listener,
            }),
        }
    }

    /// Rejects an incoming call (`call_id` and the caller from its [`CallEvent`]); the
    /// caller and our other devices then get a terminate.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] before login or for an empty call id; socket errors.
    pub async fn reject_call(&self, call_id: &str, call_from: &Jid) -> Result<(), Error> {
        if call_id.is_empty() || call_id.len() > crate::MAX_CALL_ID {
            return Err(Error::InvalidRequest("bad call id"));
        }
        let me = self.own_jid().await?;
        let caller = call_from.to_non_ad();
        let node = Node::builder("call")
            .attr("id", self.inner.socket.generate_id())
            .attr("from", me)
            .attr("to", caller.clone())
            .children([Node::builder("reject")
                .attr("call-id", call_id.to_owned())
                .attr("call-creator", caller)
                .attr("count", "0")
                .build()])
            .build();
        self.inner.socket.send_node(&node).await?;
        Ok(())
    }

    /// Creates a call link for an audio or video call, optionally for a scheduled event
    /// starting at `start_time` (unix seconds).
    ///
    /// # Errors
    /// [`Error::Timeout`] when no answer comes within the socket's query timeout;
    /// [`Error::Refused`]; [`Error::Malformed`]; socket errors.
    pub async fn create_call_link(
        &self,
        media: CallMedia,
        start_time: Option<u64>,
    ) -> Result<CallLink, Error> {
        let id = self.inner.socket.generate_id();
        let mut link = Node::builder("link_create").attr("media", media.as_str());
        if let Some(t) = start_time {
            link = link.children([Node::builder("event")
                .attr("start_time", t.to_string())
                .build()]);
        }
        let node = Node::builder("call")
            .attr("id", id.clone())
            .attr("to", Jid::new("", Server::Call))
            .children([link.build()])
            .build();
        let reply = self.request(id, &node).await?;
        Ok(CallLink {
            token: parse_link_create_reply(&reply)?,
            media,
        })
    }

    async fn request(&self, id: String, node: &Node) -> Result<Node, Error> {
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(id.clone(), tx);
        let _guard = PendingGuard {
            pending: &self.inner.pending,
            id,
        };
        self.inner.socket.send_node(node).await?;
        let timeout = self.inner.socket.config().query_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(Error::Socket(wa_socket::Error::NotConnected)),
            Err(_) => Err(Error::Timeout),
        }
    }

    async fn own_jid(&self) -> Result<Jid, Error> {
        self.inner
            .socket
            .me()
            .await
            .map(|j| j.to_non_ad())
            .ok_or_else(|| Error::InvalidRequest("not logged in"))
    }
}

/// Acknowledges one incoming call stanza and emits it as an event.
async fn on_call(socket: &Socket, offers: &LazyCache<String, OfferFacts>, node: &Node) {
    if let Err(e) = socket.send_node(&wa_socket::ack_for(node)).await {
        tracing::debug!("call ack not sent: {e}");
    }
    let mut ev: CallEvent = match parse_call(node) {
        Ok(ev) => ev,
        Err(e) => {
            tracing::warn!("unparsable call stanza: {e}");
            return;
        }
    };
    if ev.status == CallStatus::Offer {
        offers
            .insert(
                ev.id.clone(),
                OfferFacts {
                    is_video: ev.is_video,
                    is_group: ev.is_group,
                    caller_pn: ev.caller_pn.clone(),
                    group_jid: ev.group_jid.clone(),
                },
            )
            .await;
    } else if let Some(facts) = offers.get(&ev.id).await {
        ev.is_video = facts.is_video;
        ev.is_group |= facts.is_group;
        if ev.caller_pn.is_none() {
            ev.caller_pn = facts.caller_pn;
        }
        if ev.group_jid.is_none() {
            ev.group_jid = facts.group_jid;
        }
    }
    if matches!(
        ev.status,
        CallStatus::Reject | CallStatus::Accept | CallStatus::Terminate | CallStatus::Timeout
    ) {
        offers.invalidate(&ev.id).await;
    }
    socket.emit(Event::Call(Box::new(ev)));
}
