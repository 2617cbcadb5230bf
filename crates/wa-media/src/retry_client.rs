//! The client side of media re-upload: one `mediaretry` subscription per [`Media`],
//! routing each notification to the request waiting for its message id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::oneshot;
use tracing::debug;
use wa_binary::{Jid, Node};
use wa_proto::e2e::Message;
use wa_socket::Filter;

use crate::retry::{RetryTarget, media_retry_request, read_media_retry};
use crate::transfer::Inner;
use crate::{Error, Media};

/// Most re-upload requests waiting at once.
const MAX_WAITERS: usize = 1024;

/// The waiting requests, and whether the routing task runs.
#[derive(Default)]
pub(crate) struct Waiters {
    map: Mutex<HashMap<String, oneshot::Sender<Node>>>,
    started: std::sync::atomic::AtomicBool,
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Node>>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Removes its waiter when the request ends in any way.
struct Waiting<'a> {
    waiters: &'a Waiters,
    id: String,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.waiters.lock().remove(&self.id);
    }
}

/// Acknowledges every `mediaretry` notification and hands it to its waiter. Holds the
/// media client weakly: it stops at the first notification after the client is gone, or
/// when the socket is.
async fn route(inner: Weak<Inner>, mut rx: wa_socket::Subscription) {
    while let Some(node) = rx.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        if let Err(e) = inner.socket.send_node(&wa_socket::ack_for(&node)).await {
            debug!("could not ack a mediaretry notification: {e}");
        }
        let id = node
            .attr_opt::<&str>("id")
            .ok()
            .flatten()
            .map(str::to_owned);
        let waiter = id.and_then(|id| inner.retry_waiters.lock().remove(&id));
        match waiter {
            Some(tx) => {
                let _ = tx.send(node);
            }
            None => debug!("mediaretry notification nobody waits for"),
        }
    }
}

impl Media {
    fn start_retry_routing(&self) {
        use std::sync::atomic::Ordering;
        if self
            .inner
            .retry_waiters
            .started
            .swap(true, Ordering::AcqRel)
        {
            return;
        }
        let rx = self
            .inner
            .socket
            .subscribe(Filter::tag("notification").kind("mediaretry"), 16);
        tokio::spawn(route(Arc::downgrade(&self.inner), rx));
    }

    /// Asks the account's phone to upload the media of `target` again (after a download
    /// failed with [`Error::Gone`]), as Baileys' `updateMediaMessage` does: sends the
    /// encrypted `<receipt type="server-error">` and waits up to
    /// [`MediaConfig::retry_timeout`](crate::MediaConfig::retry_timeout) for the
    /// `mediaretry` notification. Returns the new direct path.
    ///
    /// # Errors
    /// [`Error::Socket`] (not logged in, send failed), [`Error::RetryTimeout`],
    /// [`Error::RetryFailed`], [`Error::RetryDecrypt`], [`Error::InvalidMessage`].
    pub async fn request_reupload(
        &self,
        target: &RetryTarget,
        media_key: &[u8; 32],
    ) -> Result<String, Error> {
        let own: Jid = self
            .inner
            .socket
            .me()
            .await
            .ok_or_else(|| Error::Socket(wa_socket::Error::NotConnected))?;
        self.start_retry_routing();
        let (tx, rx) = oneshot::channel();
        {
            let mut map = self.inner.retry_waiters.lock();
            if map.len() >= MAX_WAITERS {
                return Err(Error::InvalidMessage("too many re-upload requests waiting"));
            }
            map.insert(target.id.clone(), tx);
        }
        let _waiting = Waiting {
            waiters: &self.inner.retry_waiters,
            id: target.id.clone(),
        };
        let node = media_retry_request(target, media_key, &own);
        self.inner.socket.send_node(&node).await?;
        let reply = match tokio::time::timeout(self.inner.config.retry_timeout, rx).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return Err(Error::RetryTimeout),
        };
        read_media_retry(&reply, media_key, &target.id)
    }

    /// [`Media::request_reupload`] for the media in `message` (image, video, audio,
    /// document, sticker, also inside view-once and ephemeral wrappers): on success the
    /// message's direct path is replaced and its URL pointed at the first host
    /// `media_conn` names (or the default host), so the next
    /// [`Media::download_message`] fetches the new upload.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] when the message has no media; as
    /// [`Media::request_reupload`].
    pub async fn update_media_message(
        &self,
        target: &RetryTarget,
        message: &mut Message,
    ) -> Result<(), Error> {
        let d = crate::downloadable(message)
            .ok_or_else(|| Error::InvalidMessage("no media in message"))?;
        let path = self.request_reupload(target, &d.media_key).await?;
        let host = match self.media_conn(false).await {
            Ok(c) => c.hosts.first().map(|h| h.hostname.clone()),
            Err(e) => {
                debug!("no media_conn for the new URL: {e}");
                None
            }
        }
        .unwrap_or_else(|| crate::DEFAULT_MEDIA_HOST.to_owned());
        let url = format!("https://{host}{path}");
        crate::message::set_direct_path(message, &path, &url);
        Ok(())
    }
}
