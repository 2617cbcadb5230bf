//! Add-ons on stored message secrets: every message with a `messageSecret` that this
//! device sends or receives has its secret committed with it, so votes on polls and
//! responses to events can be built and opened later without the caller keeping the
//! original message (whatsmeow's message-secret store).

use prost::Message as _;
use rand_core::OsRng;
use tracing::debug;
use wa_binary::Jid;
use wa_proto::common;
use wa_proto::e2e::{
    EncCommentMessage, EncReactionMessage, EventResponseMessage, Message, PollVoteMessage,
    ReactionMessage, event_response_message::EventResponseType, protocol_message,
};
use wa_store::{Batch, MessageSecretStore as _};
use wa_types::{
    AddOnKind, AddOnUpdate, Event, MemberLabelUpdate, MessageKey, PushNameUpdate, WaMessage,
};
use zeroize::Zeroizing;

use crate::messenger::{Inner, Me, Messenger, unix_now};
use crate::{
    Error, SecretContext, SecretUse, event_response_message, generate_message_id, poll_vote_message,
};

/// Stages the secret `message` carries (if any) for the message `id` that `creator` sent
/// in `chat`.
pub(crate) fn stage_secret(
    batch: &mut Batch,
    chat: &Jid,
    id: &str,
    creator: &Jid,
    message: &Message,
    at: i64,
) {
    let secret = message
        .message_context_info
        .as_ref()
        .and_then(|c| c.message_secret.as_deref())
        .and_then(|s| <[u8; 32]>::try_from(s).ok());
    if let Some(secret) = secret {
        let secret = Zeroizing::new(secret);
        batch.put_message_secret(
            &chat.to_non_ad().to_string(),
            id,
            &creator.to_non_ad().to_string(),
            &secret,
            at,
        );
    }
}

/// Who sent the message `target` names, as seen by the sender of an add-on in `chat`
/// (`modifier`): the add-on's sender itself when the key says `fromMe`, else the other
/// party of a one-to-one chat, else the key's participant.
fn target_creator(chat: &Jid, modifier: &Jid, target: &common::MessageKey) -> Result<Jid, Error> {
    if target.from_me == Some(true) {
        return Ok(modifier.to_non_ad());
    }
    let named = if chat.is_group() || chat.is_broadcast() {
        target.participant.as_deref()
    } else {
        target.remote_jid.as_deref()
    };
    named
        .and_then(|s| s.parse::<Jid>().ok())
        .map(|j| j.to_non_ad())
        .ok_or_else(|| Error::Malformed("add-on key without the creator of its message"))
}

/// The user-level forms of `jid`: itself, then its phone number or LID when known.
pub(crate) async fn forms(inner: &Inner, me: &Me, jid: &Jid) -> Vec<Jid> {
    let own = jid.to_non_ad();
    let mut out = vec![own.clone()];
    if me.is_me_user(&own) {
        for j in std::iter::once(&me.pn).chain(me.lid.as_ref()) {
            let j = j.to_non_ad();
            if !out.contains(&j) {
                out.push(j);
            }
        }
    } else if let Some(alt) = crate::recv::alternate_from_store(inner, &own).await {
        out.push(alt.to_non_ad());
    }
    out
}

/// The stored secret of message `id` by `creator` in `chat`, trying the phone-number
/// and LID forms of both; returns the creator in the form it was stored under.
pub(crate) async fn find_secret(
    inner: &Inner,
    me: &Me,
    chat: &Jid,
    id: &str,
    creator: &Jid,
) -> Result<(Jid, Zeroizing<[u8; 32]>), Error> {
    let chats = if chat.is_group() || chat.is_broadcast() {
        vec![chat.to_non_ad()]
    } else {
        forms(inner, me, chat).await
    };
    let creators = forms(inner, me, creator).await;
    let store = inner.socket.store();
    for c in &chats {
        let c = c.to_string();
        for who in &creators {
            if let Some(secret) = store.get_message_secret(&c, id, &who.to_string()).await? {
                return Ok((who.clone(), secret));
            }
        }
    }
    Err(Error::NoMessageSecret(id.to_owned()))
}

/// Opens an add-on `addon` carries for the message `target`: finds that message's secret
/// and tries the creator's and the sender's phone-number and LID forms (clients differ in
/// which they derive the key with). Returns the plaintext and the target's creator in its
/// stored form.
async fn open_addon(
    inner: &Inner,
    addon: &WaMessage,
    target: Option<&common::MessageKey>,
    usage: SecretUse,
    payload: Option<&[u8]>,
    iv: Option<&[u8]>,
) -> Result<(Zeroizing<Vec<u8>>, Jid), Error> {
    let target = target.ok_or_else(|| Error::Malformed("add-on without the key of its message"))?;
    let id = target
        .id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::Malformed("add-on key without an id"))?;
    let creds = inner.creds().await?;
    let me = Inner::me(&creds)?;
    let chat = &addon.key.remote_jid;
    let creator = target_creator(chat, &addon.sender, target)?;
    let (stored, secret) = find_secret(inner, &me, chat, id, &creator).await?;
    let creators = forms(inner, &me, &stored).await;
    let mut modifiers = forms(inner, &me, &addon.sender).await;
    if let Some(alt) = addon.sender_alt.as_ref().map(Jid::to_non_ad)
        && !modifiers.contains(&alt)
    {
        modifiers.push(alt);
    }
    for creator in &creators {
        for modifier in &modifiers {
            let ctx = SecretContext {
                message_id: id,
                creator,
                modifier,
                message_secret: secret.as_slice(),
            };
            match ctx.decrypt(usage, payload, iv) {
                Err(Error::SecretPayloadAuth) => continue,
                Ok(plain) => return Ok((plain, stored)),
                Err(e) => return Err(e),
            }
        }
    }
    Err(Error::SecretPayloadAuth)
}

/// The events that follow the report of a received message: its poll vote, event
/// response or reaction, decrypted with the stored secret when encrypted (nothing when
/// that fails: the message itself is still reported), a group member's label change, the
/// sender's changed push name, and the edit or delete for everyone it makes to an
/// earlier message.
pub(crate) async fn follow_ups(inner: &Inner, report: &WaMessage) -> Vec<Event> {
    let mut out = Vec::new();
    match addon_update(inner, report).await {
        Ok(Some(update)) => out.push(Event::AddOn(Box::new(update))),
        Ok(None) => {}
        Err(e) => debug!("add-on {} not opened: {e}", report.key.id),
    }
    if let Some(update) = member_label_update(report) {
        out.push(Event::MemberLabel(Box::new(update)));
    }
    if let Some(update) = push_name_update(inner, report) {
        out.push(Event::ContactPushName(update));
    }
    if let Some(change) = crate::change::message_change(inner, report).await {
        out.push(Event::MessageChanged(Box::new(change)));
    }
    out
}

/// The vote, event response or reaction `report` carries, opened when encrypted; `None`
/// when it carries none.
async fn addon_update(inner: &Inner, report: &WaMessage) -> Result<Option<AddOnUpdate>, Error> {
    let m = &report.message;
    let (target, kind, sender_timestamp_ms, creator) =
        if let Some(update) = m.poll_update_message.as_ref() {
            let target = update.poll_creation_message_key.as_ref();
            let enc = update.vote.as_ref();
            let (plain, creator) = open_addon(
                inner,
                report,
                target,
                SecretUse::PollVote,
                enc.and_then(|e| e.enc_payload.as_deref()),
                enc.and_then(|e| e.enc_iv.as_deref()),
            )
            .await?;
            let vote = PollVoteMessage::decode(plain.as_slice())?;
            let kind = AddOnKind::PollVote {
                selected_options: vote.selected_options,
            };
            (target, kind, update.sender_timestamp_ms, creator)
        } else if let Some(enc) = m.enc_event_response_message.as_ref() {
            let target = enc.event_creation_message_key.as_ref();
            let (plain, creator) = open_addon(
                inner,
                report,
                target,
                SecretUse::EventResponse,
                enc.enc_payload.as_deref(),
                enc.enc_iv.as_deref(),
            )
            .await?;
            let r = EventResponseMessage::decode(plain.as_slice())?;
            let kind = AddOnKind::EventResponse {
                response: r.response(),
                extra_guests: r.extra_guest_count.and_then(|n| u32::try_from(n).ok()),
            };
            (target, kind, r.timestamp_ms, creator)
        } else if let Some(enc) = m.enc_reaction_message.as_ref() {
            let target = enc.target_message_key.as_ref();
            let (plain, creator) = open_addon(
                inner,
                report,
                target,
                SecretUse::Reaction,
                enc.enc_payload.as_deref(),
                enc.enc_iv.as_deref(),
            )
            .await?;
            let r = ReactionMessage::decode(plain.as_slice())?;
            let kind = AddOnKind::Reaction {
                text: r.text.unwrap_or_default(),
            };
            (target, kind, r.sender_timestamp_ms, creator)
        } else if let Some(r) = m.reaction_message.as_ref() {
            // In the clear: nothing to open, the key alone names the message.
            let target = r.key.as_ref();
            let named = target
                .ok_or_else(|| Error::Malformed("reaction without the key of its message"))?;
            if named
                .id
                .as_deref()
                .is_none_or(|id| id.is_empty() || id.len() > MAX_TARGET_ID)
            {
                return Err(Error::Malformed("reaction key without a usable id"));
            }
            let creator = target_creator(&report.key.remote_jid, &report.sender, named)?;
            let kind = AddOnKind::Reaction {
                text: r.text.clone().unwrap_or_default(),
            };
            (target, kind, r.sender_timestamp_ms, creator)
        } else {
            return Ok(None);
        };
    // open_addon succeeded, so the target key and its id are there.
    let id = target.and_then(|t| t.id.clone()).unwrap_or_default();
    let creds = inner.creds().await?;
    let me = Inner::me(&creds)?;
    let chat = report.key.remote_jid.clone();
    let mut key = MessageKey::new(chat.clone(), me.is_me_user(&creator), id);
    if chat.is_group() || chat.is_broadcast() {
        key = key.with_participant(creator);
    }
    Ok(Some(AddOnUpdate {
        target: key,
        key: report.key.clone(),
        sender: report.sender.to_non_ad(),
        sender_timestamp_ms: sender_timestamp_ms.unwrap_or(0),
        kind,
    }))
}

/// Longest message id a plain reaction may name (web ids are 22 characters, others
/// at most 32).
const MAX_TARGET_ID: usize = 128;

/// Most senders whose last push name is remembered.
const MAX_PUSH_NAMES: usize = 8192;

/// Longest push name reported, in bytes (longer ones are cut at a character boundary).
const MAX_PUSH_NAME: usize = 256;

/// The push name `report` carries from another user, when it is not the one last seen
/// for them.
fn push_name_update(inner: &Inner, report: &WaMessage) -> Option<PushNameUpdate> {
    if report.key.from_me {
        return None;
    }
    let name = report.push_name.as_deref().map(str::trim)?;
    if name.is_empty() {
        return None;
    }
    let mut end = name.len().min(MAX_PUSH_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let name = &name[..end];
    let jid = report.sender.to_non_ad();
    {
        let mut seen = inner
            .push_names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.get(&jid).is_some_and(|n| n == name) {
            return None;
        }
        if seen.len() >= MAX_PUSH_NAMES {
            seen.clear();
        }
        seen.insert(jid.clone(), name.to_owned());
    }
    Some(PushNameUpdate {
        jid,
        jid_alt: report.sender_alt.as_ref().map(Jid::to_non_ad),
        push_name: name.to_owned(),
    })
}

/// The label change a group message from a member says, if it is one.
fn member_label_update(report: &WaMessage) -> Option<MemberLabelUpdate> {
    let p = report.message.protocol_message.as_deref()?;
    if p.r#type() != protocol_message::Type::GroupMemberLabelChange
        || !report.key.remote_jid.is_group()
    {
        return None;
    }
    let label = p.member_label.as_ref()?;
    Some(MemberLabelUpdate {
        group: report.key.remote_jid.clone(),
        participant: report.sender.to_non_ad(),
        participant_alt: report.sender_alt.as_ref().map(Jid::to_non_ad),
        label: label.label.clone().unwrap_or_default(),
        timestamp: label
            .label_timestamp
            .unwrap_or_else(|| i64::try_from(report.timestamp).unwrap_or(0)),
    })
}

impl Messenger {
    async fn open_addon(
        &self,
        addon: &WaMessage,
        target: Option<&common::MessageKey>,
        usage: SecretUse,
        payload: Option<&[u8]>,
        iv: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        open_addon(&self.inner, addon, target, usage, payload, iv)
            .await
            .map(|(plain, _)| plain)
    }

    /// Decrypts the vote `vote` carries (a received or sent `pollUpdateMessage`) with the
    /// poll's stored secret: the hashes of the selected options (match them with
    /// [`poll_option_hash`](crate::poll_option_hash)). An empty selection withdraws the
    /// voter's earlier vote.
    ///
    /// # Errors
    /// [`Error::NotAnAddOn`] when it is no poll vote, [`Error::NoMessageSecret`] when
    /// this device never saw the poll (or its secret was pruned, see
    /// [`MessengerConfig::message_secret_ttl`](crate::MessengerConfig::message_secret_ttl)),
    /// [`Error::SecretPayloadAuth`] when the vote does not authenticate.
    pub async fn decrypt_poll_vote(&self, vote: &WaMessage) -> Result<PollVoteMessage, Error> {
        let update = vote
            .message
            .poll_update_message
            .as_ref()
            .ok_or_else(|| Error::NotAnAddOn("a poll vote"))?;
        let enc = update.vote.as_ref();
        let plain = self
            .open_addon(
                vote,
                update.poll_creation_message_key.as_ref(),
                SecretUse::PollVote,
                enc.and_then(|e| e.enc_payload.as_deref()),
                enc.and_then(|e| e.enc_iv.as_deref()),
            )
            .await?;
        Ok(prost::Message::decode(plain.as_slice())?)
    }

    /// Decrypts the response `response` carries (an `encEventResponseMessage`) with the
    /// event's stored secret: going, not going or maybe, and the extra guests.
    ///
    /// # Errors
    /// As [`Messenger::decrypt_poll_vote`], for event responses.
    pub async fn decrypt_event_response(
        &self,
        response: &WaMessage,
    ) -> Result<EventResponseMessage, Error> {
        let enc = response
            .message
            .enc_event_response_message
            .as_ref()
            .ok_or_else(|| Error::NotAnAddOn("an event response"))?;
        let plain = self
            .open_addon(
                response,
                enc.event_creation_message_key.as_ref(),
                SecretUse::EventResponse,
                enc.enc_payload.as_deref(),
                enc.enc_iv.as_deref(),
            )
            .await?;
        Ok(prost::Message::decode(plain.as_slice())?)
    }

    /// Decrypts an encrypted reaction (`encReactionMessage`, used where reactions are
    /// only readable by those who received the message, e.g. on channel-like
    /// announcements) with its target's stored secret.
    ///
    /// # Errors
    /// As [`Messenger::decrypt_poll_vote`], for encrypted reactions.
    pub async fn decrypt_reaction(&self, reaction: &WaMessage) -> Result<ReactionMessage, Error> {
        let enc = reaction
            .message
            .enc_reaction_message
            .as_ref()
            .ok_or_else(|| Error::NotAnAddOn("an encrypted reaction"))?;
        let plain = self
            .open_addon(
                reaction,
                enc.target_message_key.as_ref(),
                SecretUse::Reaction,
                enc.enc_payload.as_deref(),
                enc.enc_iv.as_deref(),
            )
            .await?;
        Ok(prost::Message::decode(plain.as_slice())?)
    }

    /// Decrypts a comment (`encCommentMessage`) on a message with its target's stored
    /// secret; the comment is a whole `Message` (usually text).
    ///
    /// # Errors
    /// As [`Messenger::decrypt_poll_vote`], for comments.
    pub async fn decrypt_comment(&self, comment: &WaMessage) -> Result<Message, Error> {
        let enc = comment
            .message
            .enc_comment_message
            .as_ref()
            .ok_or_else(|| Error::NotAnAddOn("a comment"))?;
        let plain = self
            .open_addon(
                comment,
                enc.target_message_key.as_ref(),
                SecretUse::Comment,
                enc.enc_payload.as_deref(),
                enc.enc_iv.as_deref(),
            )
            .await?;
        Ok(prost::Message::decode(plain.as_slice())?)
    }

    /// The context for an add-on this device sends on the message `target` (as this
    /// device knows its key): the stored secret, the creator in its stored form and our
    /// own user in the same addressing (LID for a LID creator).
    async fn own_addon_context(
        &self,
        target: &MessageKey,
    ) -> Result<(Jid, Jid, Zeroizing<[u8; 32]>), Error> {
        let inner = &self.inner;
        let creds = inner.creds().await?;
        let me = Inner::me(&creds)?;
        let chat = &target.remote_jid;
        let creator = target_creator(chat, &me.pn, &crate::key_to_proto(target))?;
        let (creator, secret) = find_secret(inner, &me, chat, &target.id, &creator).await?;
        let modifier = match &me.lid {
            Some(lid) if creator.is_lid() => lid.to_non_ad(),
            _ => me.pn.to_non_ad(),
        };
        Ok((creator, modifier, secret))
    }

    /// Votes on the poll `poll` (its key as this device knows it: from a received
    /// message, or the key [`Messenger::send_message`] returned) for the options named
    /// `selected` (none withdraws an earlier vote), with the poll's stored secret; sends
    /// the vote to the poll's chat and returns its key.
    ///
    /// # Errors
    /// [`Error::NoMessageSecret`] when this device never saw the poll, and as
    /// [`Messenger::relay_message`].
    pub async fn vote_poll<S: AsRef<str>>(
        &self,
        poll: &MessageKey,
        selected: &[S],
    ) -> Result<MessageKey, Error> {
        let (creator, modifier, secret) = self.own_addon_context(poll).await?;
        let ctx = SecretContext {
            message_id: &poll.id,
            creator: &creator,
            modifier: &modifier,
            message_secret: secret.as_slice(),
        };
        let now_ms = unix_now_ms();
        let message = poll_vote_message(poll, &ctx, selected, now_ms, &mut OsRng)?;
        self.send_addon(&poll.remote_jid, message).await
    }

    /// Answers the event `event` (its key as this device knows it) with `response`
    /// (going, not going, maybe) and how many `extra_guests` come along, encrypted with
    /// the event's stored secret; sends it to the event's chat and returns its key.
    ///
    /// # Errors
    /// As [`Messenger::vote_poll`].
    pub async fn respond_to_event(
        &self,
        event: &MessageKey,
        response: EventResponseType,
        extra_guests: Option<u32>,
    ) -> Result<MessageKey, Error> {
        let (creator, modifier, secret) = self.own_addon_context(event).await?;
        let ctx = SecretContext {
            message_id: &event.id,
            creator: &creator,
            modifier: &modifier,
            message_secret: secret.as_slice(),
        };
        let message = event_response_message(
            event,
            &ctx,
            response,
            extra_guests,
            unix_now_ms(),
            &mut OsRng,
        )?;
        self.send_addon(&event.remote_jid, message).await
    }

    /// Reacts to `target` (its key as this device knows it) with `emoji` (empty takes the
    /// reaction back), encrypted with the target's stored secret as an
    /// `encReactionMessage`: the kind of reaction community announcement groups take,
    /// which only those who received the message can read. Sends it to the target's chat
    /// and returns its key. Plain reactions are [`MessageContent::Reaction`](crate::MessageContent::Reaction).
    ///
    /// # Errors
    /// As [`Messenger::vote_poll`].
    pub async fn react_encrypted(
        &self,
        target: &MessageKey,
        emoji: &str,
    ) -> Result<MessageKey, Error> {
        // The target is named outside the ciphertext only.
        let plain = ReactionMessage {
            text: Some(emoji.to_owned()),
            sender_timestamp_ms: Some(unix_now_ms()),
            ..Default::default()
        };
        let (_, payload, iv) = self
            .seal_addon(target, SecretUse::Reaction, &plain.encode_to_vec())
            .await?;
        let message = Message {
            enc_reaction_message: Some(Box::new(EncReactionMessage {
                target_message_key: Some(crate::key_to_proto(target)),
                enc_payload: Some(payload),
                enc_iv: Some(iv.to_vec()),
                ..Default::default()
            })),
            ..Default::default()
        };
        self.send_addon(&target.remote_jid, message).await
    }

    /// Comments on `target` (its key as this device knows it) with `comment` (a whole
    /// message, usually text), encrypted with the target's stored secret as an
    /// `encCommentMessage` (replies under a community announcement); readers open it with
    /// [`Messenger::decrypt_comment`]. Sends it to the target's chat and returns its key.
    ///
    /// # Errors
    /// As [`Messenger::vote_poll`].
    pub async fn comment(
        &self,
        target: &MessageKey,
        comment: &Message,
    ) -> Result<MessageKey, Error> {
        let (creator, payload, iv) = self
            .seal_addon(target, SecretUse::Comment, &comment.encode_to_vec())
            .await?;
        // The key names the commented message's author, in 1:1 chats too.
        let mut key = crate::key_to_proto(target);
        key.participant = Some(creator.to_non_ad().to_string());
        let message = Message {
            enc_comment_message: Some(Box::new(EncCommentMessage {
                target_message_key: Some(key),
                enc_payload: Some(payload),
                enc_iv: Some(iv.to_vec()),
                ..Default::default()
            })),
            ..Default::default()
        };
        self.send_addon(&target.remote_jid, message).await
    }

    /// Opens a `secretEncryptedMessage` with its target's stored secret: an edit of an
    /// event, a poll or a message, or an option added to a poll, encrypted so that only
    /// those who received the original can read it. Returns the message inside (with the
    /// outer `messageContextInfo` when the inner has none).
    ///
    /// # Errors
    /// [`Error::NotAnAddOn`] for another message or an unknown kind of secret message,
    /// and as [`Messenger::decrypt_poll_vote`].
    pub async fn decrypt_secret_message(&self, message: &WaMessage) -> Result<Message, Error> {
        let enc = message
            .message
            .secret_encrypted_message
            .as_ref()
            .ok_or_else(|| Error::NotAnAddOn("a secret-encrypted message"))?;
        let usage = SecretUse::of_secret_kind(enc.secret_enc_type())
            .ok_or_else(|| Error::NotAnAddOn("a known kind of secret-encrypted message"))?;
        let plain = self
            .open_addon(
                message,
                enc.target_message_key.as_ref(),
                usage,
                enc.enc_payload.as_deref(),
                enc.enc_iv.as_deref(),
            )
            .await?;
        let mut inside = Message::decode(plain.as_slice())?;
        if inside.message_context_info.is_none() {
            inside
                .message_context_info
                .clone_from(&message.message.message_context_info);
        }
        Ok(inside)
    }

    /// Encrypts `plain` as an add-on of kind `usage` on `target` with the target's
    /// stored secret; returns the target's creator (as stored), the ciphertext and the iv.
    async fn seal_addon(
        &self,
        target: &MessageKey,
        usage: SecretUse,
        plain: &[u8],
    ) -> Result<(Jid, Vec<u8>, [u8; 12]), Error> {
        let (creator, modifier, secret) = self.own_addon_context(target).await?;
        let ctx = SecretContext {
            message_id: &target.id,
            creator: &creator,
            modifier: &modifier,
            message_secret: secret.as_slice(),
        };
        let (payload, iv) = ctx.encrypt(usage, plain, &mut OsRng)?;
        Ok((creator, payload, iv))
    }

    async fn send_addon(&self, chat: &Jid, message: Message) -> Result<MessageKey, Error> {
        let creds = self.inner.creds().await?;
        let me = Inner::me(&creds)?;
        let id = generate_message_id(unix_now(), Some(&me.pn), &mut OsRng);
        self.relay_message(chat, message, &id).await
    }
}

fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
