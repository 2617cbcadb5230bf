//! Identity changes the server announces (`<notification type="encrypt"><identity/>`):
//! a contact reinstalled WhatsApp, so its devices have new identity keys. Our sessions and
//! stored identities for that user are dropped (the next send fetches fresh key bundles
//! instead of encrypting to sessions the contact no longer has), the change is reported,
//! and when we had issued the contact our privacy token, it is issued again.

use std::sync::Arc;

use tracing::{debug, info, warn};
use wa_binary::{Jid, Node};
use wa_socket::privacy_token as pt;
use wa_store::{Batch, LidMappingStore as _};
use wa_types::{Event, IdentityChange};

use crate::messenger::Inner;

/// Handles one identity-change notification and acknowledges it (after the sessions are
/// dropped, so an unprocessed notification is delivered again).
pub(crate) async fn handle(inner: &Arc<Inner>, node: Node) {
    let from = node.attr_opt::<Jid>("from").ok().flatten();
    let timestamp = node.attr_opt::<u64>("t").ok().flatten().unwrap_or(0);
    let offline = node.get_attr("offline").is_some();
    let Some(from) = from.filter(|j| j.device == 0 && (j.is_pn_user() || j.is_lid())) else {
        debug!("identity notification not about a primary device; ignored");
        return ack(inner, &node).await;
    };
    let user = from.to_non_ad();
    let Ok(creds) = inner.creds().await else {
        return ack(inner, &node).await;
    };
    match Inner::me(&creds) {
        Ok(me) if !me.is_me_user(&user) => {}
        _ => {
            // Our own primary's identity: the companions are logged out by the server.
            return ack(inner, &node).await;
        }
    }
    if let Err(e) = drop_sessions(inner, &user).await {
        // Not acknowledged: the server delivers it again.
        warn!("identity change of {user}: sessions not dropped: {e}");
        return;
    }
    info!("identity of {user} changed; its sessions were reset");
    ack(inner, &node).await;
    inner.emit(Event::IdentityChange(IdentityChange::new(
        user.clone(),
        timestamp,
        offline,
    )));
    reissue_privacy_token(inner, &user).await;
}

async fn ack(inner: &Inner, node: &Node) {
    if let Err(e) = inner.socket.send_node(&wa_socket::ack_for(node)).await {
        debug!("identity notification ack not sent: {e}");
    }
}

/// Deletes every session and identity of `user` under its phone-number and LID addresses.
async fn drop_sessions(inner: &Inner, user: &Jid) -> Result<(), wa_store::Error> {
    let store = inner.socket.store();
    let other = if user.is_pn_user() {
        store.lid_for_pn(user.user.as_str()).await?.map(Jid::lid)
    } else {
        store.pn_for_lid(user.user.as_str()).await?.map(Jid::pn)
    };
    let mut batch = Batch::new();
    for jid in std::iter::once(user).chain(other.as_ref()) {
        let name = jid.signal_address_name();
        batch
            .delete_all_sessions(&name)
            .delete_all_identities(&name);
    }
    let _crypto = inner.crypto_lock().await;
    store.commit(batch).await
}

/// Issues our privacy token to `user` again, with the time of the last issuance, when we
/// had issued one that is still valid (as WhatsApp Web does after an identity change).
async fn reissue_privacy_token(inner: &Inner, user: &Jid) {
    let store = inner.socket.store();
    let Ok((_, record)) = pt::load(store, user).await else {
        return;
    };
    if record.sender_timestamp <= 0 || pt::is_expired(record.sender_timestamp, pt::now()) {
        return;
    }
    let to = if user.is_lid() {
        match store.pn_for_lid(user.user.as_str()).await {
            Ok(Some(pn)) => Jid::pn(pn),
            _ => user.clone(),
        }
    } else {
        user.clone()
    };
    if let Err(e) = inner
        .socket
        .issue_privacy_tokens(&[to], record.sender_timestamp)
        .await
    {
        debug!("re-issuing our privacy token to {user} failed: {e}");
    }
}

impl crate::Messenger {
    /// Accepts the changed identity of `device` (a device JID, phone number or LID) that
    /// was refused because
    /// [`MessengerConfig::trust_changed_identities`](crate::MessengerConfig::trust_changed_identities)
    /// is off (whatsmeow: clearing the untrusted identity): the identity and session
    /// stored for the device, under its phone-number and LID addresses, are forgotten, so
    /// the next message from it, or the next send to it, starts a session with the new
    /// key.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the store cannot be read or written.
    pub async fn trust_identity(&self, device: &Jid) -> Result<(), crate::Error> {
        let inner = &self.inner;
        let store = inner.socket.store();
        let other = if device.is_lid() {
            store.pn_for_lid(device.user.as_str()).await?.map(Jid::pn)
        } else {
            store.lid_for_pn(device.user.as_str()).await?.map(Jid::lid)
        };
        let mut batch = Batch::new();
        for user in std::iter::once(&device.to_non_ad()).chain(other.as_ref()) {
            let name = user.signal_address_name();
            let id = u32::from(device.device);
            batch.delete_session(&name, id).delete_identity(&name, id);
        }
        let _crypto = inner.crypto_lock().await;
        store.commit(batch).await?;
        info!("the new identity of {device} will be trusted");
        Ok(())
    }
}
