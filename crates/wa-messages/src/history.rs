//! History sync: the `HISTORY_SYNC_NOTIFICATION` protocol messages the account's phone
//! sends to a newly linked device (PROTOCOL.md §10).
//!
//! A notification from our own account is persisted in the same commit as the message's
//! processed marker, processed in the receive path before the delivery and `hist_sync`
//! receipts leave (inline payload or a verified download, bounded inflate, decode) and
//! forgotten once its [`Event::HistorySync`] or [`Event::HistorySyncFailed`] was emitted.
//! A notification still persisted when the messenger starts (the process stopped in
//! between) is processed again after the next login. One the
//! [`HistorySyncFilter`] refuses is acknowledged all the same and reported as
//! [`Event::HistorySyncSkipped`]; [`Messenger::download_history`] processes it later,
//! when the application wants it (whatsmeow's `ManualHistorySyncDownload`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use prost::Message as _;
use tokio::io::AsyncWrite;
use tracing::{debug, info, warn};
use wa_binary::{Jid, Node};
use wa_media::{Downloadable, Media, MediaConfig, MediaType};
use wa_proto::e2e::{HistorySyncNotification, Message, protocol_message};
use wa_store::{Batch, Role, SentMessageStore as _};
use wa_types::{
    Event, HistoryData, HistorySync, HistorySyncErrorKind, HistorySyncFailure, HistorySyncPhase,
    HistorySyncSkipped, HistorySyncStatus, HistorySyncType,
};

use crate::Error;
use crate::messenger::{Inner, Me};

/// Which history-sync phases were reported ended, and the wait for a stalled recent sync.
#[derive(Debug, Default)]
pub(crate) struct Phases {
    bootstrap_done: bool,
    recent_done: bool,
    paused_timer: Option<tokio::task::AbortHandle>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Store scope (in the sent-message role, whose entries are pruned by age) under which
/// received history-sync notifications wait until they were processed.
pub(crate) const PENDING_SCOPE: &str = "history-sync@pending";

/// Most pending notifications resumed at start-up.
const MAX_RESUMED: usize = 64;

/// Decides, per notification, whether a history-sync chunk is downloaded and processed
/// (Baileys' `shouldSyncHistoryMessage`). Skipped notifications are still acknowledged
/// with the delivery and `hist_sync` receipts. The default syncs every chunk.
#[derive(Clone)]
pub struct HistorySyncFilter(Arc<dyn Fn(&HistorySyncNotification) -> bool + Send + Sync>);

impl HistorySyncFilter {
    /// A filter calling `f` with each notification.
    pub fn new(f: impl Fn(&HistorySyncNotification) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Syncs every chunk.
    pub fn all() -> Self {
        Self::new(|_| true)
    }

    /// Syncs nothing (every notification is only acknowledged).
    pub fn none() -> Self {
        Self::new(|_| false)
    }

    /// Syncs the chunks whose sync type is not in `skip` (for example
    /// `[HistorySyncType::Full]`, as Baileys' default does).
    pub fn skip_types(skip: &[HistorySyncType]) -> Self {
        let skip = skip.to_vec();
        Self::new(move |n| !skip.contains(&n.sync_type()))
    }

    /// Whether this notification should be synced.
    pub fn should_sync(&self, notification: &HistorySyncNotification) -> bool {
        (self.0)(notification)
    }
}

impl Default for HistorySyncFilter {
    fn default() -> Self {
        Self::all()
    }
}

impl std::fmt::Debug for HistorySyncFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HistorySyncFilter(..)")
    }
}

impl crate::Messenger {
    /// Downloads, verifies and processes a history-sync chunk the
    /// [`HistorySyncFilter`] skipped (from its [`Event::HistorySyncSkipped`]), as if it
    /// had been synced when it arrived (whatsmeow's `DownloadHistorySync`): its facts
    /// (LID mappings, privacy tokens, push names, the new-chat salt) are stored, the
    /// blob is deleted from the media servers when so configured, and it is reported as
    /// [`Event::HistorySync`] (or [`Event::HistorySyncFailed`]) as well as returned.
    /// The phone was acknowledged already; the blob stays downloadable for as long as
    /// the media servers keep it.
    ///
    /// # Errors
    /// [`Error::HistorySyncFailed`] when the download, verification or decoding failed
    /// (a blob no longer on the servers: ask the phone with
    /// [`request_history_reupload`](crate::Messenger::request_history_reupload));
    /// [`Error::HistoryBusy`] while the same notification is being processed;
    /// [`Error::NotLoggedIn`].
    pub async fn download_history(
        &self,
        message_id: &str,
        notification: &HistorySyncNotification,
    ) -> Result<Arc<HistorySync>, Error> {
        self.inner
            .sync_history_manually(message_id, notification)
            .await
    }
}

/// The history-sync notification a message carries, if any.
pub(crate) fn notification(m: &Message) -> Option<&HistorySyncNotification> {
    let p = m.protocol_message.as_ref()?;
    (p.r#type == Some(protocol_message::Type::HistorySyncNotification as i32))
        .then_some(p.history_sync_notification.as_deref())
        .flatten()
}

/// The encoded notification to persist with the processed marker.
pub(crate) fn persist(batch: &mut Batch, id: &str, n: &HistorySyncNotification, now: i64) {
    batch.put_sent_message(PENDING_SCOPE, id, &n.encode_to_vec(), now);
}

/// `<receipt id to=OWN type="hist_sync"/>`, as Baileys sends after the delivery receipt.
pub(crate) fn hist_sync_receipt(id: &str, own: &Jid) -> Node {
    Node::builder("receipt")
        .attr("id", id.to_owned())
        .attr("to", own.to_non_ad())
        .attr("type", "hist_sync")
        .build()
}

/// A `Vec` sink that refuses to grow past `limit` bytes.
struct Bounded {
    buf: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl AsyncWrite for Bounded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            self.exceeded = true;
            return Poll::Ready(Err(std::io::Error::other("history blob over the limit")));
        }
        self.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

type Failure = (HistorySyncErrorKind, String);

fn media_failure(e: wa_media::Error) -> Failure {
    use wa_media::Error as E;
    let kind = match &e {
        E::MacMismatch | E::EncHashMismatch | E::HashMismatch | E::BadPadding | E::Truncated => {
            HistorySyncErrorKind::Verify
        }
        E::TooLarge(_) => HistorySyncErrorKind::TooLarge,
        _ => HistorySyncErrorKind::Download,
    };
    (kind, e.to_string())
}

fn arr32(b: Option<&Vec<u8>>) -> Option<[u8; 32]> {
    b.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
}

impl Inner {
    /// The media client for history downloads: the one set with
    /// [`Messenger::with_media`](crate::Messenger::with_media), else a default one.
    fn media(&self) -> Result<&Media, wa_media::Error> {
        if let Some(m) = self.media.get() {
            return Ok(m);
        }
        let m = Media::new(self.socket.clone(), MediaConfig::default())?;
        Ok(self.media.get_or_init(|| m))
    }

    /// The compressed chunk: the inline payload, or the verified download.
    async fn history_blob(&self, n: &HistorySyncNotification) -> Result<(Vec<u8>, bool), Failure> {
        let max = self.config.max_history_len;
        if let Some(p) = n
            .initial_hist_bootstrap_inline_payload
            .as_ref()
            .filter(|p| !p.is_empty())
        {
            if p.len() > max {
                return Err((HistorySyncErrorKind::TooLarge, "inline payload".into()));
            }
            return Ok((p.clone(), true));
        }
        let key = arr32(n.media_key.as_ref()).ok_or((
            HistorySyncErrorKind::Download,
            "no 32-byte media key".into(),
        ))?;
        let path = n
            .direct_path
            .as_deref()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| (HistorySyncErrorKind::Download, "no direct path".into()))?;
        if n.file_length.is_some_and(|l| l > max as u64) {
            return Err((
                HistorySyncErrorKind::TooLarge,
                format!("announced length {} over {max}", n.file_length()),
            ));
        }
        // The download itself stops at the bound: a host cannot make us store more.
        let mut d = Downloadable::new(MediaType::History, key, path)
            .with_max_size((max as u64).saturating_add(wa_media::ENCRYPTION_OVERHEAD));
        d.file_enc_sha256 = arr32(n.file_enc_sha256.as_ref());
        d.file_sha256 = arr32(n.file_sha256.as_ref());
        let media = self.media().map_err(media_failure)?;
        // Only a direct path is given: download from the hosts `media_conn` names (as
        // whatsmeow does), falling back to the default host.
        match media.media_conn(false).await {
            Ok(conn) => {
                if let Some(h) = conn.hosts.first() {
                    d = d.with_url(format!("https://{}{path}", h.hostname));
                }
            }
            Err(e) => debug!("no media_conn for the history download: {e}"),
        }
        let mut sink = Bounded {
            buf: Vec::new(),
            limit: max,
            exceeded: false,
        };
        match media.download(&d, &mut sink, None).await {
            Ok(_) => Ok((sink.buf, false)),
            Err(_) if sink.exceeded => Err((
                HistorySyncErrorKind::TooLarge,
                format!("blob over {max} bytes"),
            )),
            Err(e) => Err(media_failure(e)),
        }
    }

    /// Processes one notification from our own phone (see the module docs). Never
    /// panics; failures become [`Event::HistorySyncFailed`].
    pub(crate) async fn process_history(&self, me: &Me, id: &str, n: &HistorySyncNotification) {
        if !self.claim_history(id) {
            return;
        }
        self.process_history_claimed(me, id, n).await;
        let store = self.socket.store();
        if let Err(e) = store.delete_sent_message(PENDING_SCOPE, id).await {
            debug!("could not forget history notification {id}: {e}");
        }
        self.release_history(id);
    }

    async fn process_history_claimed(&self, me: &Me, id: &str, n: &HistorySyncNotification) {
        if !self.config.should_sync_history.should_sync(n) {
            info!(
                "history sync {id} ({}) skipped by the filter",
                n.sync_type().as_str_name()
            );
            self.emit(Event::HistorySyncSkipped(Box::new(HistorySyncSkipped {
                message_id: id.to_owned(),
                notification_type: n.sync_type(),
                notification: n.clone(),
            })));
            return;
        }
        let _ = self.sync_history_chunk(me, id, n).await;
    }

    /// Downloads, decodes, stores and reports one chunk (whatever the filter says).
    async fn sync_history_chunk(
        &self,
        me: &Me,
        id: &str,
        n: &HistorySyncNotification,
    ) -> Result<std::sync::Arc<HistorySync>, HistorySyncFailure> {
        let notification_type = n.sync_type();
        let blob = tokio::time::timeout(self.config.history_timeout, self.history_blob(n))
            .await
            .unwrap_or_else(|_| {
                Err((
                    HistorySyncErrorKind::Download,
                    "download timed out".to_owned(),
                ))
            });
        let decoded = match blob {
            Ok((blob, inline)) => {
                match wa_appstate::decode_history_blob(&blob, self.config.max_history_len) {
                    Ok(sync) => Ok((sync, inline)),
                    Err(wa_appstate::Error::TooLarge { limit }) => Err((
                        HistorySyncErrorKind::TooLarge,
                        format!("inflated over {limit} bytes"),
                    )),
                    Err(e) => Err((HistorySyncErrorKind::Decode, e.to_string())),
                }
            }
            Err(f) => Err(f),
        };
        let progress = n.progress;
        let downloaded = matches!(&decoded, Ok((_, false)));
        let outcome = self
            .report_history(me, id, n, notification_type, decoded)
            .await;
        if downloaded && self.config.delete_history_blobs {
            self.delete_history_blob(n);
        }
        self.note_history_phase(notification_type, progress);
        outcome
    }

    /// A chunk the filter skipped, on the application's request (see
    /// [`Messenger::download_history`]).
    pub(crate) async fn sync_history_manually(
        &self,
        id: &str,
        n: &HistorySyncNotification,
    ) -> Result<std::sync::Arc<HistorySync>, Error> {
        let me = Inner::me(&*self.creds().await?)?;
        if !self.claim_history(id) {
            return Err(Error::HistoryBusy(id.to_owned()));
        }
        let outcome = self.sync_history_chunk(&me, id, n).await;
        self.release_history(id);
        outcome.map_err(|f| Error::HistorySyncFailed(Box::new(f)))
    }

    /// Deletes a processed chunk's blob from the media servers in the background (as
    /// whatsmeow does); a failure is only logged.
    fn delete_history_blob(&self, n: &HistorySyncNotification) {
        let (Some(path), Some(hash)) = (
            n.direct_path.clone().filter(|p| !p.is_empty()),
            arr32(n.file_enc_sha256.as_ref()),
        ) else {
            return;
        };
        let Ok(media) = self.media().cloned() else {
            return;
        };
        let handle = n.enc_handle.clone();
        tokio::spawn(async move {
            if let Err(e) = media
                .delete(MediaType::History, &path, &hash, handle.as_deref())
                .await
            {
                debug!("history blob not deleted: {e}");
            }
        });
    }

    /// Stores what a decoded chunk says and reports it, or reports its failure; returns
    /// what it reported.
    async fn report_history(
        &self,
        me: &Me,
        id: &str,
        n: &HistorySyncNotification,
        notification_type: HistorySyncType,
        decoded: Result<
            (wa_proto::history_sync::HistorySync, bool),
            (HistorySyncErrorKind, String),
        >,
    ) -> Result<std::sync::Arc<HistorySync>, HistorySyncFailure> {
        match decoded {
            Ok((mut sync, inline)) => {
                let salt = sync.nct_salt.take().filter(|s| !s.is_empty());
                self.store_nct_salt(salt).await;
                let data = wa_appstate::process_history(sync);
                self.store_history_facts(me, &data).await;
                info!(
                    "history sync {id}: {} chats, {} contacts, {} messages",
                    data.chats.len(),
                    data.contacts.len(),
                    data.messages.len()
                );
                let sync = std::sync::Arc::new(HistorySync {
                    message_id: id.to_owned(),
                    notification_type,
                    inline,
                    request_id: n
                        .peer_data_request_session_id
                        .clone()
                        .filter(|r| !r.is_empty()),
                    data,
                });
                self.emit(Event::HistorySync(sync.clone()));
                Ok(sync)
            }
            Err((kind, detail)) => {
                warn!("history sync {id} failed ({kind:?}): {detail}");
                let failure = HistorySyncFailure {
                    message_id: id.to_owned(),
                    notification_type,
                    chunk_order: n.chunk_order,
                    kind,
                    detail,
                    media_key: n.media_key.clone().filter(|k| k.len() == 32),
                };
                self.emit(Event::HistorySyncFailed(failure.clone()));
                Err(failure)
            }
        }
    }

    /// Reports the end of a history-sync phase that the chunk of `sync_type` at
    /// `progress` marks (Baileys' `messaging-history.status`): the first bootstrap chunk
    /// completes the bootstrap; a recent chunk at 100 % completes the recent sync, and
    /// any other recent chunk (re)starts the wait after which it is reported paused.
    fn note_history_phase(&self, sync_type: HistorySyncType, progress: Option<u32>) {
        let status = |sync_type, phase, explicit| {
            Event::HistorySyncStatus(HistorySyncStatus {
                sync_type,
                phase,
                explicit,
            })
        };
        let mut phases = lock(&self.history_phases);
        let event = match sync_type {
            HistorySyncType::InitialBootstrap if !phases.bootstrap_done => {
                phases.bootstrap_done = true;
                Some(status(sync_type, HistorySyncPhase::Complete, true))
            }
            HistorySyncType::Recent if !phases.recent_done => {
                if let Some(t) = phases.paused_timer.take() {
                    t.abort();
                }
                if progress == Some(100) {
                    phases.recent_done = true;
                    Some(status(sync_type, HistorySyncPhase::Complete, true))
                } else {
                    let shared = self.history_phases.clone();
                    let socket = self.socket.clone();
                    let wait = self.config.history_paused_after;
                    let timer = tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        let fire = {
                            let mut phases = lock(&shared);
                            phases.paused_timer = None;
                            !std::mem::replace(&mut phases.recent_done, true)
                        };
                        if fire {
                            socket.emit(status(
                                HistorySyncType::Recent,
                                HistorySyncPhase::Paused,
                                false,
                            ));
                        }
                    });
                    phases.paused_timer = Some(timer.abort_handle());
                    None
                }
            }
            _ => None,
        };
        drop(phases);
        if let Some(e) = event {
            self.emit(e);
        }
    }

    /// Forgets which history-sync phases ended (the connection closed; Baileys starts
    /// over with each connection).
    pub(crate) fn reset_history_phases(&self) {
        let mut phases = lock(&self.history_phases);
        if let Some(t) = phases.paused_timer.take() {
            t.abort();
        }
        *phases = Phases::default();
    }

    /// Stores the privacy tokens of the chunk's 1:1 chats (after its LID mappings, so
    /// they land under the contacts' LIDs), unless a newer token is stored.
    async fn store_history_tokens(&self, data: &HistoryData) {
        use wa_socket::privacy_token as pt;
        let store = self.socket.store();
        let mut batch = Batch::new();
        for chat in &data.chats {
            let Ok(jid) = chat.id.parse::<Jid>() else {
                continue;
            };
            let token = chat
                .tc_token
                .as_ref()
                .filter(|(t, _)| t.len() <= wa_store::MAX_PRIVACY_TOKEN_LEN);
            let sender_ts = chat.tc_token_sender_timestamp.unwrap_or(0);
            if !pt::applies_to(&jid) || (token.is_none() && sender_ts == 0) {
                continue;
            }
            let (key, mut record) = match pt::load(store, &jid).await {
                Ok(loaded) => loaded,
                Err(e) => {
                    warn!("privacy token of {jid} unreadable: {e}");
                    continue;
                }
            };
            let secs = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
            if let Some((t, ts)) = token
                && (record.token.is_empty() || secs(*ts) >= record.timestamp)
            {
                record.token.clone_from(t);
                record.timestamp = secs(*ts);
            }
            record.sender_timestamp = record.sender_timestamp.max(secs(sender_ts));
            batch.put_privacy_token(&key, &record);
        }
        if !batch.is_empty()
            && let Err(e) = store.commit(batch).await
        {
            warn!("could not store the privacy tokens of a history sync: {e}");
        }
    }

    /// Saves the new-chat-thread salt a history-sync chunk carries (`nctSalt`, in the
    /// initial bootstrap) in the credentials.
    async fn store_nct_salt(&self, salt: Option<Vec<u8>>) {
        let Some(salt) = salt.map(zeroize::Zeroizing::new) else {
            return;
        };
        let r = self
            .socket
            .update_creds(|c| {
                if c.nct_salt.as_ref() == Some(&salt) {
                    return false;
                }
                c.nct_salt = Some(salt.clone());
                true
            })
            .await;
        if let Err(e) = r {
            warn!("could not save the salt of a history sync: {e}");
        }
    }

    /// Stores the chunk's LID/PN mappings and, when a push name of our own account is in
    /// it, saves it in the credentials.
    async fn store_history_facts(&self, me: &Me, data: &HistoryData) {
        let mut batch = Batch::new();
        let mut stored = Vec::new();
        for m in &data.lid_pn_mappings {
            if let (Ok(lid), Ok(pn)) = (m.lid.parse::<Jid>(), m.pn.parse::<Jid>())
                && lid.is_lid()
                && pn.is_pn_user()
            {
                batch.put_lid_mapping(&pn.user, &lid.user);
                stored.push(wa_types::LidMapping::of_users(&lid.user, &pn.user));
            }
        }
        if !batch.is_empty() {
            match self.socket.store().commit(batch).await {
                Ok(()) => self.socket.emit(wa_socket::Event::LidMappings(stored)),
                Err(e) => warn!("could not store the LID mappings of a history sync: {e}"),
            }
        }
        self.store_history_tokens(data).await;
        let own = data.contacts.iter().find_map(|c| {
            let jid = c.id.parse::<Jid>().ok()?;
            let name = c.notify.as_deref().filter(|n| !n.is_empty())?;
            me.is_me_user(&jid)
                .then(|| name.chars().take(256).collect::<String>())
        });
        if let Some(name) = own {
            let r = self
                .socket
                .update_creds(|c| {
                    let changed = c.push_name.as_deref() != Some(name.as_str());
                    c.push_name = Some(name.clone());
                    changed
                })
                .await;
            if let Err(e) = r {
                warn!("could not save the push name: {e}");
            }
        }
    }

    /// Notifications persisted but not processed (the process stopped in between), once
    /// after the first login.
    pub(crate) async fn resume_history(&self) {
        let Ok(creds) = self.creds().await else {
            return;
        };
        let Ok(me) = Inner::me(&creds) else { return };
        let pending = match self
            .socket
            .store()
            .list_items(Role::SentMessage, PENDING_SCOPE)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                debug!("could not list pending history notifications: {e}");
                return;
            }
        };
        for (id, _) in pending.into_iter().take(MAX_RESUMED) {
            if self.socket.is_stopped() {
                return;
            }
            self.resume_one(&me, &id).await;
        }
    }

    /// One notification the listing found pending. The live path may have taken it
    /// since (the notification arrived again after this login): it is processed only
    /// when no one else holds it and it is still stored, so it is reported once.
    async fn resume_one(&self, me: &Me, id: &str) {
        if !self.claim_history(id) {
            return;
        }
        let store = self.socket.store();
        match store.get_sent_message(PENDING_SCOPE, id).await {
            Ok(Some(bytes)) => match HistorySyncNotification::decode(&bytes[..]) {
                Ok(n) => {
                    info!("resuming history sync {id}");
                    self.process_history_claimed(me, id, &n).await;
                    if let Err(e) = store.delete_sent_message(PENDING_SCOPE, id).await {
                        debug!("could not forget history notification {id}: {e}");
                    }
                }
                Err(e) => {
                    warn!("dropping an unreadable pending history notification {id}: {e}");
                    let _ = store.delete_sent_message(PENDING_SCOPE, id).await;
                }
            },
            Ok(None) => debug!("history notification {id} was processed meanwhile"),
            Err(e) => debug!("could not read pending history notification {id}: {e}"),
        }
        self.release_history(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;
    use wa_proto::e2e::ProtocolMessage;

    #[tokio::test]
    async fn the_sink_refuses_to_grow_past_its_limit() {
        let mut sink = Bounded {
            buf: Vec::new(),
            limit: 10,
            exceeded: false,
        };
        sink.write_all(b"0123456789").await.unwrap();
        assert!(!sink.exceeded);
        assert!(sink.write_all(b"x").await.is_err());
        assert!(sink.exceeded);
        assert_eq!(sink.buf, b"0123456789");
    }

    #[test]
    fn only_history_protocol_messages_are_notifications() {
        let n = HistorySyncNotification {
            chunk_order: Some(3),
            ..Default::default()
        };
        let wrap = |ty: protocol_message::Type| Message {
            protocol_message: Some(Box::new(ProtocolMessage {
                r#type: Some(ty as i32),
                history_sync_notification: Some(Box::new(n.clone())),
                ..Default::default()
            })),
            ..Default::default()
        };
        let m = wrap(protocol_message::Type::HistorySyncNotification);
        assert_eq!(notification(&m).and_then(|n| n.chunk_order), Some(3));
        assert!(notification(&wrap(protocol_message::Type::Revoke)).is_none());
        assert!(notification(&Message::default()).is_none());
    }

    #[test]
    fn the_hist_sync_receipt_names_the_own_user() {
        let own = Jid::with_device("1555", wa_binary::Server::Pn, 7);
        let r = hist_sync_receipt("ID1", &own);
        assert_eq!(r.tag(), "receipt");
        let attr = |k: &str| r.get_attr(k).map(ToString::to_string);
        assert_eq!(attr("id").as_deref(), Some("ID1"));
        assert_eq!(attr("type").as_deref(), Some("hist_sync"));
        assert_eq!(attr("to").as_deref(), Some("1555@s.whatsapp.net"));
    }

    #[test]
    fn filters_decide_by_sync_type() {
        let full = HistorySyncNotification {
            sync_type: Some(HistorySyncType::Full as i32),
            ..Default::default()
        };
        let recent = HistorySyncNotification {
            sync_type: Some(HistorySyncType::Recent as i32),
            ..Default::default()
        };
        let f = HistorySyncFilter::skip_types(&[HistorySyncType::Full]);
        assert!(!f.should_sync(&full));
        assert!(f.should_sync(&recent));
        assert!(HistorySyncFilter::default().should_sync(&full));
        assert!(!HistorySyncFilter::none().should_sync(&recent));
    }

    #[test]
    fn media_errors_are_classified() {
        use wa_media::Error as E;
        assert_eq!(
            media_failure(E::MacMismatch).0,
            HistorySyncErrorKind::Verify
        );
        assert_eq!(
            media_failure(E::HashMismatch).0,
            HistorySyncErrorKind::Verify
        );
        assert_eq!(
            media_failure(E::TooLarge(1)).0,
            HistorySyncErrorKind::TooLarge
        );
        assert_eq!(
            media_failure(E::Gone(404)).0,
            HistorySyncErrorKind::Download
        );
    }
}
