//! Fatal app-state recovery from the primary device (whatsmeow's
//! `BuildAppStateRecoveryRequest`, `handleAppStateRecovery` and
//! `BuildFatalAppStateExceptionNotification`): a collection asked of our phone in
//! plaintext, and its answer applied in place of the stored state.

use std::time::Instant;

use tokio::sync::oneshot;
use wa_appstate::Collection;
use wa_proto::e2e::peer_data_operation_request_message::SyncDCollectionFatalRecoveryRequest;
use wa_proto::e2e::{
    AppStateFatalExceptionNotification, Message, PeerDataOperationRequestMessage,
    PeerDataOperationRequestType, ProtocolMessage, protocol_message,
};
use wa_proto::syncd_snapshot_recovery::SyncdSnapshotRecovery;
use wa_socket::Event;
use wa_types::{AppStateFailure, AppStateRecoveryAnswer, AppStateRecoveryStep, AppStateSyncError};

use super::{AppState, DecodedPatch, decoded_events, lock, nct_salt_change, now_ms};
use crate::Error;

/// Most recovery requests waiting for an answer; the oldest is dropped beyond it.
const MAX_PENDING: usize = 16;

/// A recovery request waiting for its answer.
pub(super) struct Pending {
    serial: u64,
    collection: Collection,
    /// The request's message id, once the server accepted it.
    id: Option<String>,
    at: Instant,
    waiter: Option<oneshot::Sender<Result<u64, Error>>>,
}

/// The peer message asking our phone for `collection` in plaintext
/// (`PEER_DATA_OPERATION_REQUEST_MESSAGE` of type
/// `COMPANION_SYNCD_SNAPSHOT_FATAL_RECOVERY`; `timestamp` in unix seconds, as whatsmeow
/// fills it).
pub fn recovery_request(collection: Collection, timestamp: i64) -> Message {
    Message {
        protocol_message: Some(Box::new(ProtocolMessage {
            r#type: Some(protocol_message::Type::PeerDataOperationRequestMessage as i32),
            peer_data_operation_request_message: Some(Box::new(PeerDataOperationRequestMessage {
                peer_data_operation_request_type: Some(
                    PeerDataOperationRequestType::CompanionSyncdSnapshotFatalRecovery as i32,
                ),
                syncd_collection_fatal_recovery_request: Some(
                    SyncDCollectionFatalRecoveryRequest {
                        collection_name: Some(collection.as_str().to_owned()),
                        timestamp: Some(timestamp),
                        ..Default::default()
                    },
                ),
                ..Default::default()
            })),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The peer message telling our phone that `collections` are fatally broken here
/// (`APP_STATE_FATAL_EXCEPTION_NOTIFICATION`; `timestamp_ms` in unix milliseconds).
pub fn fatal_exception_notification(collections: &[Collection], timestamp_ms: i64) -> Message {
    Message {
        protocol_message: Some(Box::new(ProtocolMessage {
            r#type: Some(protocol_message::Type::AppStateFatalExceptionNotification as i32),
            app_state_fatal_exception_notification: Some(AppStateFatalExceptionNotification {
                collection_names: collections.iter().map(|c| c.as_str().to_owned()).collect(),
                timestamp: Some(timestamp_ms),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

impl AppState {
    /// Asks our primary device for `collection` in plaintext (whatsmeow's
    /// `BuildAppStateRecoveryRequest`), the last resort when the collection cannot be
    /// synced from the server. Reports [`AppStateRecoveryStep::PhoneRecovery`] and returns
    /// the request's message id once the server accepted it. The answer is applied when it
    /// arrives: the collection's events as after a snapshot, then
    /// [`Event::AppStateSynced`]; an unusable answer is [`Event::AppStateSyncError`] with
    /// [`AppStateFailure::Recovery`] and leaves the stored state alone. [`AppState::recover`]
    /// also waits for it.
    ///
    /// # Errors
    /// [`Error::NoMessenger`]; [`Error::Messages`] when the request could not be sent.
    pub async fn request_recovery(&self, collection: Collection) -> Result<String, Error> {
        self.send_recovery_request(collection, None).await
    }

    /// As [`AppState::request_recovery`], then waits (at most
    /// [`AppStateConfig::recovery_wait`](super::AppStateConfig::recovery_wait)) for the answer
    /// to be applied; returns the collection's new version.
    ///
    /// # Errors
    /// As [`AppState::request_recovery`]; [`Error::RecoveryTimeout`]; for an unusable
    /// answer [`Error::EmptyRecovery`], [`Error::RecoveryMismatch`],
    /// [`Error::AppState`] (`TooLarge`, `Inflate`, `Proto`, `Malformed`, `MissingKey`,
    /// `RecoveryHash`) or a store error, with the stored state unchanged.
    pub async fn recover(&self, collection: Collection) -> Result<u64, Error> {
        let (tx, rx) = oneshot::channel();
        let serial = self.next_serial();
        Box::pin(self.send_with(collection, serial, Some(tx))).await?;
        match tokio::time::timeout(self.inner.config.recovery_wait, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::RecoveryTimeout),
            Err(_) => {
                lock(&self.inner.recoveries).retain(|p| p.serial != serial);
                Err(Error::RecoveryTimeout)
            }
        }
    }

    /// Tells our primary device that `collections` are fatally broken on this device
    /// (whatsmeow's `BuildFatalAppStateExceptionNotification`). WhatsApp's phones answer
    /// by resetting those collections, which logs out every linked device. Returns the
    /// message id once the server accepted it.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for no collections; [`Error::NoMessenger`];
    /// [`Error::Messages`].
    pub async fn send_fatal_exception(&self, collections: &[Collection]) -> Result<String, Error> {
        if collections.is_empty() {
            return Err(Error::InvalidRequest("no collections"));
        }
        let messenger = self
            .inner
            .messenger
            .as_ref()
            .ok_or_else(|| Error::NoMessenger)?;
        let mut list: Vec<Collection> = Vec::new();
        for c in collections {
            if !list.contains(c) {
                list.push(*c);
            }
        }
        let message = fatal_exception_notification(&list, now_ms());
        Ok(Box::pin(messenger.send_peer_message(message)).await?)
    }

    fn next_serial(&self) -> u64 {
        self.inner
            .recovery_serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    async fn send_recovery_request(
        &self,
        collection: Collection,
        waiter: Option<oneshot::Sender<Result<u64, Error>>>,
    ) -> Result<String, Error> {
        let serial = self.next_serial();
        Box::pin(self.send_with(collection, serial, waiter)).await
    }

    async fn send_with(
        &self,
        collection: Collection,
        serial: u64,
        waiter: Option<oneshot::Sender<Result<u64, Error>>>,
    ) -> Result<String, Error> {
        let messenger = self
            .inner
            .messenger
            .as_ref()
            .ok_or_else(|| Error::NoMessenger)?;
        {
            // Registered before sending: the answer may come before the ack.
            let mut pending = lock(&self.inner.recoveries);
            let expiry = self.inner.config.recovery_wait.saturating_mul(2);
            pending.retain(|p| p.at.elapsed() < expiry);
            while pending.len() >= MAX_PENDING {
                pending.remove(0);
            }
            pending.push(Pending {
                serial,
                collection,
                id: None,
                at: Instant::now(),
                waiter,
            });
        }
        self.emit(Event::AppStateRecovery {
            collection: collection.as_str().to_owned(),
            step: AppStateRecoveryStep::PhoneRecovery,
        });
        let message = recovery_request(collection, now_ms() / 1000);
        match Box::pin(messenger.send_peer_message(message)).await {
            Ok(id) => {
                if let Some(p) = lock(&self.inner.recoveries)
                    .iter_mut()
                    .find(|p| p.serial == serial)
                {
                    p.id = Some(id.clone());
                }
                Ok(id)
            }
            Err(e) => {
                lock(&self.inner.recoveries).retain(|p| p.serial != serial);
                Err(e.into())
            }
        }
    }

    /// Applies our phone's answer to the request it answers (by request id, else by the
    /// collection it names, else the oldest waiting request). Answers nobody asked for
    /// are ignored.
    pub(super) async fn take_recovery(&self, answer: AppStateRecoveryAnswer) {
        let parsed: Result<SyncdSnapshotRecovery, Error> = match &answer.snapshot {
            None => Err(Error::EmptyRecovery),
            Some(bytes) => wa_appstate::parse_recovery(
                bytes,
                answer.compressed,
                self.inner.config.max_recovery_len,
            )
            .map_err(Error::from),
        };
        let name = parsed.as_ref().ok().and_then(|r| r.collection_name.clone());
        let entry = {
            let mut pending = lock(&self.inner.recoveries);
            let by_id = answer
                .request_id
                .as_deref()
                .and_then(|id| pending.iter().position(|p| p.id.as_deref() == Some(id)));
            let by_name = || {
                name.as_deref()
                    .and_then(|n| pending.iter().position(|p| p.collection.as_str() == n))
            };
            let at = by_id
                .or_else(by_name)
                .or_else(|| (!pending.is_empty()).then_some(0));
            at.map(|i| pending.remove(i))
        };
        let Some(entry) = entry else {
            tracing::debug!("app-state recovery answer nobody asked for; ignored");
            return;
        };
        let c = entry.collection;
        let result = match parsed {
            Ok(r) => {
                let _busy = self.inner.busy.lock().await;
                Box::pin(self.apply_recovery(c, &r)).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::warn!(collection = %c, "app-state recovery answer unusable: {e}");
            self.emit(Event::AppStateSyncError(AppStateSyncError::new(
                c.as_str(),
                AppStateFailure::Recovery,
                e.to_string(),
            )));
        }
        if let Some(w) = entry.waiter {
            let _ = w.send(result);
        }
    }

    /// Rebuilds `c` from a recovery (index MACs with our keys, the LTHash checked against
    /// the one stated) and stores it as a snapshot would be, then reports its actions.
    /// Called with `busy` held.
    async fn apply_recovery(&self, c: Collection, r: &SyncdSnapshotRecovery) -> Result<u64, Error> {
        if r.collection_name.as_deref() != Some(c.as_str()) {
            return Err(Error::RecoveryMismatch {
                asked: c,
                got: r.collection_name.clone(),
            });
        }
        let keys = self.load_keys().await?;
        let (state, decoded) = wa_appstate::apply_recovery(c.as_str(), r, &keys)?;
        let decoded: [DecodedPatch; 1] = [decoded];
        let salt = nct_salt_change(
            decoded[0]
                .mutations
                .iter()
                .map(|m| (m.operation, m.action())),
        );
        self.save_nct_salt(salt).await?;
        self.store_synced(c, &state, &decoded, true).await?;
        lock(&self.inner.blocked).remove(&c);
        for e in decoded_events(&decoded) {
            self.apply_and_emit(e).await;
        }
        self.emit(Event::AppStateSynced {
            collection: c.as_str().to_owned(),
            version: state.version,
            snapshot: true,
        });
        Ok(state.version)
    }
}
