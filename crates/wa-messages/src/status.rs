//! Status updates (stories): a message to `status@broadcast` for an explicit list of
//! recipients, sent like a group message whose members are the recipients and ourselves.
//!
//! The server has no member list for `status@broadcast`: the audience of one update is
//! exactly the devices named in its `<participants>`. So every recipient device (and each
//! of our own other devices) gets the sender-key distribution message pairwise in every
//! update, as Baileys and whatsmeow both do, and the `skmsg` is shared by all of them. The
//! sender key itself is kept between updates; it is replaced when a device that had it is
//! not in the new audience, so a dropped recipient cannot read later updates.

use std::collections::HashSet;

use rand_core::OsRng;
use tracing::{Instrument as _, warn};
use wa_binary::{Jid, Node};
use wa_proto::e2e::Message;
use wa_signal::CiphertextType;
use wa_store::{Batch, SenderKeyMemoryStore};
use wa_types::MessageKey;

use crate::group::sender_key_fan_out;
use crate::messenger::{Inner, Messenger, OpenSends, unix_now};
use crate::send::{
    SENT_SCOPE, Target, emit_own, fetch_missing, inject_fetched, resolve_sessions, send_and_wait,
};
use crate::{Error, MessageBuilder, MessageContent, generate_message_id, stanza};

/// Most recipients (users) of one status update. Neither reference client bounds the list;
/// 1024 is the largest group size, and keeps one stanza (a few devices per user) bounded.
pub const MAX_STATUS_RECIPIENTS: usize = 1024;

impl Messenger {
    /// Posts `content` as a status update seen by `recipients` (user JIDs, phone number or
    /// LID), with a fresh message id; returns its key (`status@broadcast`, from us, with us
    /// as participant) once the server acknowledged it.
    ///
    /// Our own other devices get the update too. Duplicates and our own user in
    /// `recipients` are ignored.
    ///
    /// # Errors
    /// As [`Messenger::relay_status`], and [`Error::InvalidPoll`] or [`Error::NoContacts`]
    /// for invalid content.
    pub async fn send_status(
        &self,
        content: MessageContent,
        recipients: &[Jid],
    ) -> Result<MessageKey, Error> {
        let status = Jid::status_broadcast();
        let message = MessageBuilder::new(status, content).build(&mut OsRng)?;
        let creds = self.inner.creds().await?;
        let me = Inner::me(&creds)?;
        let id = generate_message_id(unix_now(), Some(&me.pn), &mut OsRng);
        self.relay_status(message, &id, recipients).await
    }

    /// Sends an already built `message` with the id `id` as a status update seen by
    /// `recipients` (see [`Messenger::send_status`]).
    ///
    /// The stanza is `<message to="status@broadcast" type phash>` with `<participants>`
    /// holding, for every recipient device and our own other devices, a pairwise
    /// `pkmsg`/`msg` carrying our sender-key distribution message for `status@broadcast`;
    /// then one `<enc type="skmsg">` with the update, and `<device-identity>` when any
    /// pairwise ciphertext is a `pkmsg`. Own devices get the same distribution message as
    /// everyone (no `deviceSentMessage` wrapper, as in group sends). A commit that fails
    /// because the store failed is tried again as in [`Messenger::relay_message`].
    ///
    /// # Errors
    /// [`Error::NoStatusRecipients`] for an empty list (or one naming only ourselves),
    /// [`Error::TooManyStatusRecipients`] beyond [`MAX_STATUS_RECIPIENTS`],
    /// [`Error::InvalidStatusRecipient`] for a JID that is not a user (or whose user part
    /// is longer than 128 bytes), [`Error::InvalidSend`] for an id that is empty or longer
    /// than 128 bytes, [`Error::NoDevices`]
    /// when no recipient has a device we could encrypt for, and otherwise as
    /// [`Messenger::relay_message`].
    pub async fn relay_status(
        &self,
        message: Message,
        id: &str,
        recipients: &[Jid],
    ) -> Result<MessageKey, Error> {
        let span = tracing::debug_span!("send_status", id, recipients = recipients.len());
        crate::stanza::check_send(&Jid::status_broadcast(), id)?;
        let message = std::sync::Arc::new(message);
        crate::send::with_store_retries(&span, || {
            relay_status(&self.inner, &message, id, recipients).instrument(span.clone())
        })
        .await
    }
}

/// Checks the recipient list and returns its users (device part dropped, duplicates
/// removed, in the given order).
pub(crate) fn status_recipients(recipients: &[Jid]) -> Result<Vec<Jid>, Error> {
    if recipients.len() > MAX_STATUS_RECIPIENTS {
        return Err(Error::TooManyStatusRecipients {
            count: recipients.len(),
            max: MAX_STATUS_RECIPIENTS,
        });
    }
    let mut seen = HashSet::with_capacity(recipients.len());
    let mut users = Vec::with_capacity(recipients.len());
    for r in recipients {
        if !(r.is_pn_user() || (r.is_lid() && !r.user.is_empty()))
            || r.user.len() > crate::stanza::MAX_JID_USER_LEN
        {
            return Err(Error::InvalidStatusRecipient(r.clone()));
        }
        let user = r.to_non_ad();
        if seen.insert(user.to_string()) {
            users.push(user);
        }
    }
    if users.is_empty() {
        return Err(Error::NoStatusRecipients);
    }
    Ok(users)
}

/// Whether our sender key must be replaced: a device that has it is not in this audience.
pub(crate) fn must_rotate(have: &HashSet<String>, audience: &HashSet<String>) -> bool {
    have.iter().any(|d| !audience.contains(d))
}

/// The status stanza: `<message id to="status@broadcast" type [edit] phash>` with the
/// pairwise `<to>` nodes, the shared `skmsg`, and our device identity when given.
pub(crate) fn status_stanza(
    id: &str,
    message: &Message,
    participants: Vec<Node>,
    skmsg: Vec<u8>,
    device_identity: Option<&[u8]>,
    reporting: Option<Node>,
    phash: String,
) -> Node {
    let mut children = Vec::with_capacity(4);
    if !participants.is_empty() {
        children.push(Node::builder("participants").children(participants).build());
    }
    children.push(stanza::enc_node_for(
        CiphertextType::Skmsg,
        skmsg,
        None,
        Some(message),
    ));
    if let Some(account) = device_identity {
        children.push(crate::stanza::device_identity(account));
    }
    children.extend(reporting);
    Node::builder("message")
        .attr("id", id.to_owned())
        .attr("to", Jid::status_broadcast())
        .attr("type", stanza::message_type(message))
        .attr_opt("edit", stanza::edit_attr(message))
        .attr("phash", phash)
        .children(children)
        .build()
}

async fn relay_status(
    inner: &Inner,
    message: &std::sync::Arc<Message>,
    id: &str,
    recipients: &[Jid],
) -> Result<MessageKey, Error> {
    let status = Jid::status_broadcast();
    let creds = inner.creds().await?;
    let me = Inner::me(&creds)?;
    let me_user = me.pn.to_non_ad();
    let mut users: Vec<Jid> = status_recipients(recipients)?
        .into_iter()
        .filter(|u| !me.is_me_user(u))
        .collect();
    if users.is_empty() {
        return Err(Error::NoStatusRecipients);
    }
    users.push(me_user.clone());
    let devices = inner.usync.get_devices(&users).await?;
    let mut all: Vec<Jid> = devices
        .into_values()
        .flatten()
        .filter(|d| !(d.same_user(&me.pn) && d.device == me.pn.device))
        .collect();
    all.sort_by_key(ToString::to_string);
    all.dedup();
    if !all.iter().any(|d| !me.is_me_user(d)) {
        return Err(Error::NoDevices(status));
    }
    let status_s = status.to_string();
    let audience: HashSet<String> = all.iter().map(ToString::to_string).collect();
    let mut targets: Vec<Target> = all.iter().map(|d| Target::new(d.clone(), false)).collect();
    {
        // Without committing an open group of sends (the next hold does).
        let mut guard = inner.crypto.lock().await;
        resolve_sessions(inner, &mut guard, &me, &mut targets).await?;
    }
    let fetched = fetch_missing(inner, &creds, &targets).await?;
    let now = unix_now();
    let key = MessageKey::new(status.clone(), true, id).with_participant(me_user);
    // Encoded once for the sender-key copy, the record and the reporting token.
    let encoded = crate::framing::Encoded::new(message);
    let (participants, any_pkmsg, skmsg, joined) = {
        // Commits the open group of sends first, so the holders read below include a
        // concurrent update's.
        let mut guard = inner.crypto_lock().await;
        // A mapping learned while the bundles were fetched moves a session: resolve again.
        resolve_sessions(inner, &mut guard, &me, &mut targets).await?;
        let have: HashSet<String> = inner
            .socket
            .store()
            .sender_key_devices(&status_s)
            .await?
            .into_iter()
            .collect();
        let rotate = must_rotate(&have, &audience);
        // A new group of sends: the sends that take the lock after this one join it.
        let open = guard.get_or_insert_with(|| OpenSends::open(inner, &creds));
        inject_fetched(inner, &open.repo, &targets, &fetched).await;
        let fan = sender_key_fan_out(
            &open.repo,
            &status,
            &me.pn,
            &targets,
            &encoded,
            rotate,
            inner.config.patch.as_ref(),
        )
        .await?;
        let delivered = fan.delivered;
        if delivered.len() < targets.len() {
            warn!(
                "{} devices get no status update (no session)",
                targets.len() - delivered.len()
            );
        }
        if !delivered.iter().any(|d| {
            d.parse::<Jid>()
                .map(|j| !me.is_me_user(&j))
                .unwrap_or(false)
        }) {
            return Err(Error::NoDevices(status));
        }
        let mut extra = Batch::new();
        extra.put_sent_message(
            SENT_SCOPE,
            id,
            &encoded.sent_record(&crate::key_to_proto(&key), now),
            now as i64,
        );
        crate::addon::stage_secret(&mut extra, &status, id, &me.pn, message, now as i64);
        if rotate {
            extra.forget_sender_key_memory(&status_s);
        }
        extra.mark_sender_key_sent(&status_s, &delivered);
        let joined = open.join(extra);
        (fan.nodes, fan.any_pkmsg, fan.skmsg, joined)
    };
    crate::send::committed(inner, joined).await?;
    let identity = creds.account.as_deref().filter(|_| any_pkmsg);
    let phash = stanza::participant_hash(&all);
    let reporting =
        crate::reporting::for_send(inner, &me, false, &encoded, id, &Jid::status_broadcast());
    drop(encoded);
    let stanza = status_stanza(id, message, participants, skmsg, identity, reporting, phash);
    let ack = send_and_wait(inner, &stanza, id).await?;
    if let Some(server) = stanza::str_attr(&ack, "phash") {
        // The server's view of some recipient's devices differs from ours: refresh the
        // device lists so the next update reaches the devices we missed.
        warn!("participant hash mismatch for a status update (server {server}); refreshing");
        inner.usync.clear_cache();
    }
    emit_own(inner, &me, key.clone(), message.clone(), now);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_binary::Server;

    fn text(t: &str) -> Message {
        Message {
            conversation: Some(t.to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn recipient_list_is_checked_and_deduplicated() {
        assert!(matches!(
            status_recipients(&[]),
            Err(Error::NoStatusRecipients)
        ));
        let too_many: Vec<Jid> = (0..=MAX_STATUS_RECIPIENTS)
            .map(|i| Jid::pn(format!("1555{i:07}")))
            .collect();
        assert!(matches!(
            status_recipients(&too_many),
            Err(Error::TooManyStatusRecipients { count, max })
                if count == MAX_STATUS_RECIPIENTS + 1 && max == MAX_STATUS_RECIPIENTS
        ));
        assert_eq!(
            status_recipients(&too_many[..MAX_STATUS_RECIPIENTS])
                .unwrap()
                .len(),
            MAX_STATUS_RECIPIENTS
        );
        let group = Jid::new("1203630001", Server::Group);
        assert!(matches!(
            status_recipients(&[Jid::pn("15550000002"), group.clone()]),
            Err(Error::InvalidStatusRecipient(j)) if j == group
        ));
        assert!(matches!(
            status_recipients(&[Jid::status_broadcast()]),
            Err(Error::InvalidStatusRecipient(_))
        ));
        let users = status_recipients(&[
            Jid::with_device("15550000002", Server::Pn, 3),
            Jid::pn("15550000002"),
            Jid::new("987", Server::Lid),
        ])
        .unwrap();
        assert_eq!(
            users,
            vec![Jid::pn("15550000002"), Jid::new("987", Server::Lid)]
        );
    }

    #[test]
    fn rotation_only_when_a_holder_leaves_the_audience() {
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<HashSet<_>>();
        assert!(!must_rotate(&set(&[]), &set(&["b:1", "c:1"])));
        assert!(!must_rotate(&set(&["b:1"]), &set(&["b:1", "c:1"])));
        assert!(must_rotate(&set(&["b:1", "c:1"]), &set(&["b:1"])));
        assert!(must_rotate(&set(&["b:1", "c:1"]), &set(&["b:1", "d:1"])));
    }

    #[test]
    fn stanza_shape() {
        let b = Jid::with_device("15550000002", Server::Pn, 1);
        let to = Node::builder("to")
            .attr("jid", b.clone())
            .children([stanza::enc_node_for(
                CiphertextType::Pkmsg,
                vec![1, 2],
                None,
                None,
            )])
            .build();
        let node = status_stanza(
            "3EB0ABC",
            &text("hi"),
            vec![to.clone()],
            vec![9, 9, 9],
            Some(&[7, 7]),
            Some(Node::builder("reporting").build()),
            stanza::participant_hash(std::slice::from_ref(&b)),
        );
        assert_eq!(node.tag(), "message");
        assert_eq!(stanza::str_attr(&node, "id"), Some("3EB0ABC"));
        assert_eq!(stanza::jid_attr(&node, "to"), Some(Jid::status_broadcast()));
        assert_eq!(stanza::str_attr(&node, "type"), Some("text"));
        assert!(stanza::str_attr(&node, "phash").is_some_and(|p| p.starts_with("2:")));
        assert!(node.get_attr("addressing_mode").is_none());
        let tags: Vec<&str> = node.children().iter().map(Node::tag).collect();
        assert_eq!(
            tags,
            ["participants", "enc", "device-identity", "reporting"]
        );
        let parts = node.child("participants").unwrap();
        assert_eq!(parts.children().to_vec(), vec![to]);
        let enc = node.child("enc").unwrap();
        assert_eq!(stanza::str_attr(enc, "type"), Some("skmsg"));
        assert_eq!(stanza::str_attr(enc, "v"), Some("2"));
        assert_eq!(enc.content_bytes(), Some(&[9u8, 9, 9][..]));
        assert_eq!(
            node.child("device-identity").unwrap().content_bytes(),
            Some(&[7u8, 7][..])
        );

        // No pkmsg: no device identity; no distribution: no <participants>.
        let bare = status_stanza(
            "X",
            &text("hi"),
            Vec::new(),
            vec![1],
            None,
            None,
            "2:AA".into(),
        );
        let tags: Vec<&str> = bare.children().iter().map(Node::tag).collect();
        assert_eq!(tags, ["enc"]);
    }
}
