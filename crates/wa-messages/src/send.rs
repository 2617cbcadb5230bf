//! Sending: device fan-out, sessions, per-device encryption, the `<message>` stanza.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rand_core::OsRng;
use tokio::sync::oneshot;
use tracing::{Instrument as _, debug, warn};
use wa_binary::{Jid, Node};
use wa_proto::e2e::{DeviceSentMessage, Message};
use wa_signal::CiphertextType;
use wa_store::{AuthCreds, Batch};
use wa_types::{MessageKey, WaMessage};

use crate::framing::Encoded;
use crate::messenger::{Inner, Me, Messenger, OpenSends, Repo, inject_session, unix_now};
use crate::{Error, MessageBuilder, MessageContent, encode_plaintext, generate_message_id, stanza};

/// Scope under which sent messages are kept (looked up by id alone: a retry receipt from
/// one of our own devices does not name the chat).
pub(crate) const SENT_SCOPE: &str = "";

/// Options of one send ([`Messenger::relay_message_with`],
/// [`Messenger::send_message_with`]): extra content for the `<message>` stanza,
/// attributes (set after the library's own, so they may replace `type` or `edit`; never
/// `id` or `to`) and child nodes (after the library's own), and a bot to invoke inline.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct RelayOptions {
    /// Attributes to set.
    pub attrs: Vec<(String, String)>,
    /// Child nodes to append.
    pub nodes: Vec<Node>,
    /// A bot to invoke inside the chat (whatsmeow's `SendRequestExtra.InlineBotJID`),
    /// e.g. [`meta_ai_jid`](crate::meta_ai_jid): the message must be text; the chat gets
    /// it wrapped as `botInvokeMessage` (with a message secret and `botMetadata`, the
    /// default persona unless the message names one), and the bot's main device a copy
    /// carrying the derived `botMessageSecret` in a `<bot>` child of the same stanza.
    /// The bot answers in the chat; its replies are received as ordinary messages.
    pub inline_bot: Option<Jid>,
}

impl RelayOptions {
    /// Invokes `bot` inside the chat the message is sent to (see
    /// [`RelayOptions::inline_bot`]).
    #[must_use]
    pub fn inline_bot(mut self, bot: Jid) -> Self {
        self.inline_bot = Some(bot);
        self
    }

    /// Adds an attribute.
    #[must_use]
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attrs.push((key.into(), value.into()));
        self
    }

    /// Adds a child node.
    #[must_use]
    pub fn node(mut self, node: Node) -> Self {
        self.nodes.push(node);
        self
    }

    pub(crate) fn apply(&self, stanza: &mut Node) {
        for (k, v) in &self.attrs {
            if k != "id" && k != "to" {
                stanza.attrs.insert(k.clone(), v.clone());
            }
        }
        if !self.nodes.is_empty() {
            match &mut stanza.content {
                wa_binary::Content::Nodes(children) => children.extend(self.nodes.iter().cloned()),
                content => *content = wa_binary::Content::Nodes(self.nodes.clone()),
            }
        }
    }
}

/// A change made to every message on its way out, just before it is encrypted (Baileys'
/// `patchMessageBeforeSending`), set as [`MessengerConfig::patch`](crate::MessengerConfig::patch).
///
/// The function is called with the message and the device a copy is encrypted for, once
/// per recipient device of a send (our own other devices included: what it returns is
/// what they get wrapped as `DeviceSentMessage`), and with `None` for the one sender-key
/// ciphertext every member of a group (or every status recipient) shares. The message
/// carrying our sender key to a device that lacks it is offered too. It returns the
/// message to encrypt instead, or `None` to encrypt the original. A resend answering a
/// retry receipt is patched for the asking device again. What the send reports
/// ([`Event::MessagesUpsert`](wa_types::Event)) and what is kept for retries is the
/// original. Messages between our own devices that the library sends by itself (key
/// shares, history and placeholder requests) are not patched.
#[derive(Clone)]
pub struct MessagePatch(PatchFn);

type PatchFn = std::sync::Arc<dyn Fn(&Message, Option<&Jid>) -> Option<Message> + Send + Sync>;

impl MessagePatch {
    /// Wraps `f`.
    pub fn new(
        f: impl Fn(&Message, Option<&Jid>) -> Option<Message> + Send + Sync + 'static,
    ) -> Self {
        Self(std::sync::Arc::new(f))
    }

    /// The patched message for `recipient`, or `None` when `message` goes out unchanged.
    pub fn apply(&self, message: &Message, recipient: Option<&Jid>) -> Option<Message> {
        (self.0)(message, recipient)
    }
}

impl std::fmt::Debug for MessagePatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessagePatch(..)")
    }
}

/// One encryption target: a device and whether it gets the own-device wrapper.
pub(crate) struct Target {
    /// The device as the stanza names it (`<to jid>`, key fetches).
    pub(crate) device: Jid,
    pub(crate) own: bool,
    /// The JID whose Signal address holds the session (the LID device once the user's
    /// LID is known); set by [`resolve_sessions`].
    pub(crate) session: Jid,
}

impl Target {
    pub(crate) fn new(device: Jid, own: bool) -> Self {
        Self {
            session: device.clone(),
            device,
            own,
        }
    }
}

/// Sets each target's session address (moving PN sessions to LID addresses where a
/// mapping is known). Needs the crypto lock; called once before the bundle fetch and
/// again, under the lock that encrypts, as a mapping may be learned in between. A move
/// writes the store directly, so an open group of sends is committed before it.
pub(crate) async fn resolve_sessions(
    inner: &Inner,
    crypto: &mut crate::messenger::CryptoGuard<'_>,
    me: &Me,
    targets: &mut [Target],
) -> Result<(), Error> {
    let mut plans = Vec::with_capacity(targets.len());
    for t in targets.iter() {
        plans.push(inner.session_plan(me, &t.device).await?);
    }
    if plans.iter().any(|p| p.migrate.is_some()) {
        inner.commit_open_sends(crypto).await;
        for plan in &plans {
            inner.carry_out(plan).await?;
        }
    }
    for (t, plan) in targets.iter_mut().zip(plans) {
        t.session = plan.session;
    }
    Ok(())
}

impl Messenger {
    /// Makes sure there is a Signal session with each of `devices` (device JIDs, e.g. from
    /// a usync device list), as Baileys' `assertSessions`: pre-key bundles are fetched in
    /// one query for those without a session (for all of them with `force`, which
    /// starts fresh sessions in place of the stored ones) and the sessions committed.
    /// Sending does this by itself; this is for warming sessions up ahead, or healing
    /// one the peer lost. Returns how many sessions were started (devices the server
    /// has no bundle for are left out).
    ///
    /// # Errors
    /// [`Error::NotLoggedIn`], [`Error::Socket`] for the key fetch, [`Error::Signal`] or
    /// [`Error::Store`] when the new sessions cannot be committed.
    pub async fn assert_sessions(&self, devices: &[Jid], force: bool) -> Result<usize, Error> {
        let inner = &self.inner;
        let creds = inner.creds().await?;
        let me = Inner::me(&creds)?;
        let mut targets: Vec<Target> = devices
            .iter()
            .map(|d| Target::new(d.clone(), me.is_me_user(d)))
            .collect();
        {
            let mut guard = inner.crypto_lock().await;
            resolve_sessions(inner, &mut guard, &me, &mut targets).await?;
        }
        let fetched = if force {
            let all: Vec<Jid> = targets.iter().map(|t| t.device.clone()).collect();
            inner.fetch_bundles(&all).await?
        } else {
            fetch_missing(inner, &creds, &targets).await?
        };
        if fetched.is_empty() {
            return Ok(0);
        }
        let mut guard = inner.crypto_lock().await;
        resolve_sessions(inner, &mut guard, &me, &mut targets).await?;
        let repo = inner.staged_repo(&creds);
        let mut started = 0;
        for (wire, bundle) in &fetched {
            let Some(t) = targets.iter().find(|t| t.device == *wire) else {
                continue;
            };
            // Unless forced, a session another send started meanwhile stays.
            if !force && repo.has_session(&t.session).await? {
                continue;
            }
            match inject_session(inner, &repo, &t.session, bundle).await {
                Ok(()) => started += 1,
                Err(e) => warn!("cannot start a session with {}: {e}", t.session),
            }
        }
        inner.commit_staged(&repo, Batch::default()).await?;
        drop(guard);
        Ok(started)
    }

    /// Builds `content` for `to`, sends it with a fresh message id, and returns its key once
    /// the server acknowledged it.
    ///
    /// # Errors
    /// As [`Messenger::relay_message`], and [`Error::InvalidPoll`] or [`Error::NoContacts`] for invalid content.
    pub async fn send_message(
        &self,
        to: &Jid,
        content: MessageContent,
    ) -> Result<MessageKey, Error> {
        self.send_message_with(to, content, &RelayOptions::default())
            .await
    }

    /// [`Messenger::send_message`] with [`RelayOptions`]: extra stanza attributes and
    /// nodes, or a bot invoked inline
    /// (`RelayOptions::default().inline_bot(wa_messages::meta_ai_jid())`).
    ///
    /// # Errors
    /// As [`Messenger::relay_message_with`].
    pub async fn send_message_with(
        &self,
        to: &Jid,
        content: MessageContent,
        options: &RelayOptions,
    ) -> Result<MessageKey, Error> {
        // The message secret and the id come from the thread's CSPRNG (ChaCha12, seeded
        // and reseeded from the operating system), which saves a system call per message.
        let message = MessageBuilder::new(to.clone(), content).build(&mut rand::thread_rng())?;
        let creds = self.inner.creds().await?;
        let me = Inner::me(&creds)?;
        let id = generate_message_id(unix_now(), Some(&me.pn), &mut rand::thread_rng());
        self.relay_message_with(to, message, &id, options).await
    }

    /// Sends an already built `message` with the id `id` to `to`, a user or a group
    /// (status updates go through [`Messenger::relay_status`], which takes the recipients).
    ///
    /// To a user: encrypts it for every device of the user and our own other devices (which
    /// get a `deviceSentMessage` copy). To a group: one sender-key ciphertext, plus our
    /// sender key pairwise for member devices that lack it. Either way the new Signal state
    /// and the message (kept for retry receipts) are committed before the stanza leaves;
    /// then the server's ack is awaited and the message is reported as sent. When that
    /// commit fails because the store failed, nothing was written or sent: the message is
    /// encrypted again from the stored state and tried again after 0.1, 0.4 and 1.6 s
    /// before the error is returned.
    ///
    /// # Errors
    /// [`Error::NotLoggedIn`], [`Error::NoDevices`], [`Error::Usync`], [`Error::Groups`],
    /// [`Error::Signal`], [`Error::Store`], [`Error::Socket`] (`NotConnected` when the
    /// connection closed before the ack), [`Error::AckTimeout`], [`Error::Nack`] (463 when
    /// the recipient's privacy token is required and none is stored: a restricted
    /// account starting a chat; see [`wa_socket::privacy_token`]);
    /// [`Error::NoStatusRecipients`] for `status@broadcast`.
    pub async fn relay_message(
        &self,
        to: &Jid,
        message: Message,
        id: &str,
    ) -> Result<MessageKey, Error> {
        self.relay_message_with(to, message, id, &RelayOptions::default())
            .await
    }

    /// [`Messenger::relay_message`] with extra attributes and child nodes on the
    /// `<message>` stanza (Baileys' `additionalAttributes` / `additionalNodes`, e.g. the
    /// `<biz>` node of interactive messages), or a bot invoked inline
    /// ([`RelayOptions::inline_bot`]).
    ///
    /// A message to a bot ([`Jid::is_bot`]), and one invoking a bot inline, gets a
    /// `messageContextInfo.messageSecret` if it has none and `botMetadata` naming
    /// [`DEFAULT_BOT_PERSONA_ID`](crate::DEFAULT_BOT_PERSONA_ID) if it names no persona.
    ///
    /// # Errors
    /// As [`Messenger::relay_message`]; [`Error::NotABot`] or [`Error::InlineBotText`] for
    /// an inline invocation of something that is not a bot, or of a message without text;
    /// [`Error::InvalidSend`] for an id that is empty or longer than 128 bytes, or a
    /// recipient whose user part is longer than 128 bytes.
    pub async fn relay_message_with(
        &self,
        to: &Jid,
        mut message: Message,
        id: &str,
        options: &RelayOptions,
    ) -> Result<MessageKey, Error> {
        let span = tracing::debug_span!("send", id, to = %to);
        stanza::check_send(to, id)?;
        if to.is_status_broadcast() {
            return Err(Error::NoStatusRecipients);
        }
        if to.is_newsletter() {
            return Err(Error::ChannelRecipient(to.clone()));
        }
        let bot_copy = match &options.inline_bot {
            Some(bot) if !bot.is_bot() => return Err(Error::NotABot(bot.clone())),
            Some(bot) => {
                let (chat, copy) = crate::bot::inline_invocation(message, &mut OsRng)?;
                message = chat;
                Some(Box::new((bot.to_non_ad(), copy)))
            }
            None => {
                if to.is_bot() {
                    crate::bot::prepare(&mut message, &mut OsRng);
                }
                None
            }
        };
        let bot_copy = bot_copy.as_deref();
        // Shared by every try and the event that reports the send: never copied.
        let message = Arc::new(message);
        with_store_retries(&span, || {
            // Boxed: both sends are large futures, and a caller may await this on a small
            // stack.
            let message = message.clone();
            let span = span.clone();
            async move {
                if to.is_group() {
                    Box::pin(crate::group::relay_group(
                        &self.inner,
                        to,
                        message,
                        id,
                        options,
                        bot_copy,
                    ))
                    .instrument(span)
                    .await
                } else {
                    Box::pin(self.relay_direct(to, message, id, options, bot_copy))
                        .instrument(span)
                        .await
                }
            }
        })
        .await
    }

    async fn relay_direct(
        &self,
        to: &Jid,
        shared: Arc<Message>,
        id: &str,
        options: &RelayOptions,
        bot_copy: Option<&(Jid, Message)>,
    ) -> Result<MessageKey, Error> {
        let message: &Message = &shared;
        let inner = &self.inner;
        let creds = inner.creds().await?;
        let me = Inner::me(&creds)?;
        let chat = to.to_non_ad();
        let me_user = me.pn.to_non_ad();
        let users = if chat.same_user(&me_user) {
            vec![me_user.clone()]
        } else {
            vec![chat.clone(), me_user.clone()]
        };
        let devices = inner.usync.get_devices(&users).await?;
        inner.learn_lid(&chat).await;
        let peer_devices = devices.get(&chat).cloned().unwrap_or_default();
        if peer_devices.is_empty() {
            return Err(Error::NoDevices(chat));
        }
        let to_self = chat.same_user(&me_user);
        let mut targets: Vec<Target> = Vec::new();
        for d in &peer_devices {
            if d.same_user(&me.pn) && d.device == me.pn.device {
                continue;
            }
            targets.push(Target::new(d.clone(), false));
        }
        if !to_self {
            for d in devices.get(&me_user).into_iter().flatten() {
                if d.device != me.pn.device {
                    targets.push(Target::new(d.clone(), true));
                }
            }
        }
        let now = unix_now();
        let key = MessageKey::new(chat.clone(), true, id);
        // Encoded once for the record, the copies and the reporting token.
        let encoded = crate::framing::Encoded::new(message);
        let mut extra = Batch::new();
        extra.put_sent_message(
            SENT_SCOPE,
            id,
            &encoded.sent_record(&crate::key_to_proto(&key), now),
            now as i64,
        );
        crate::addon::stage_secret(&mut extra, &chat, id, &me.pn, message, now as i64);
        let (participants, any_pkmsg) = encrypt_pairwise(
            inner,
            &creds,
            &me,
            &mut targets,
            &chat,
            &encoded,
            inner.config.patch.as_ref(),
            extra,
        )
        .await?;
        if participants.is_empty() {
            return Err(Error::NoDevices(chat));
        }
        let bot = match bot_copy {
            Some((bot, copy)) => {
                Some(crate::bot::encrypt_copy(inner, &creds, &me, bot, copy).await?)
            }
            None => None,
        };
        let any_pkmsg = any_pkmsg || bot.as_ref().is_some_and(|b| b.1);
        let mut children = vec![Node::builder("participants").children(participants).build()];
        if any_pkmsg && let Some(account) = creds.account.as_ref() {
            children.push(crate::stanza::device_identity(account));
        }
        children.extend(stanza::meta_node(message));
        children.extend(bot.map(|b| b.0));
        children.extend(crate::reporting::for_send(
            inner,
            &me,
            chat.is_lid(),
            &encoded,
            id,
            &chat,
        ));
        drop(encoded);
        let now_secs = i64::try_from(now).unwrap_or(i64::MAX);
        let tokens = if to_self {
            None
        } else {
            crate::privacy::for_send(inner, &chat, message, now_secs).await
        };
        // The server's AB props say whether tokens ride on 1:1 messages (prop 10518).
        let attach = inner.socket.server_props().privacy_token_on_1to1;
        if let Some(token) = tokens
            .as_ref()
            .and_then(|t| t.token.clone())
            .filter(|_| attach)
        {
            children.push(wa_socket::privacy_token::tctoken_node(token));
        } else if let Some(cstoken) = tokens
            .as_ref()
            .and_then(|t| t.cstoken(creds.nct_salt.as_deref().map(Vec::as_slice)))
        {
            children.push(cstoken);
        }
        let mut stanza = Node::builder("message")
            .attr("id", id.to_owned())
            .attr("to", chat.clone())
            .attr("type", stanza::message_type(message))
            .attr_opt("edit", stanza::edit_attr(message))
            .children(children)
            .build();
        options.apply(&mut stanza);
        if let Err(e) = send_and_wait(inner, &stanza, id).await {
            if let (Error::Nack(crate::privacy::NACK_NO_TOKEN), Some(tokens)) = (&e, tokens) {
                crate::privacy::issue_after_refusal(inner, &chat, tokens, now_secs);
            }
            return Err(e);
        }
        if let Some(tokens) = tokens {
            crate::privacy::issue_after_send(inner, &chat, tokens, now_secs);
        }
        emit_own(inner, &me, key.clone(), shared, now);
        Ok(key)
    }
}

/// How many times a send lets the Signal lock go to fetch pre-key bundles: once for the
/// devices with no stored session, once more for those whose stored record turns out
/// unusable when encrypting.
const MAX_BUNDLE_FETCHES: usize = 2;

/// Numbers the groups of sends ([`OpenSends::id`]).
static GROUPS: AtomicU64 = AtomicU64::new(0);

/// Encrypts `message` pairwise for `targets` under the crypto lock: resolves their
/// session addresses, reads their sessions and identities in bulk and encrypts (see
/// [`encrypt_for`], each copy patched by `patch`). When some target has no session, the
/// lock is let go while their bundles are fetched, then taken again to resolve once more,
/// start those sessions and encrypt. The new Signal state and `extra` are committed
/// before this returns, together with those of the sends that queued for the lock
/// meanwhile: each send encrypts into the group's staged repository ([`OpenSends`]) and
/// releases the lock, then takes it once more, and the first of the group to get it back
/// commits the group for all (group commit: one store commit for a burst of sends); the
/// others, finding their group committed, leave a later group to its own members. Any
/// other holder of the lock commits an open group first ([`Inner::crypto_lock`]).
#[allow(clippy::too_many_arguments, reason = "one send's context")]
pub(crate) async fn encrypt_pairwise(
    inner: &Inner,
    creds: &AuthCreds,
    me: &Me,
    targets: &mut [Target],
    chat: &Jid,
    message: &Encoded<'_>,
    patch: Option<&MessagePatch>,
    extra: Batch,
) -> Result<(Vec<Node>, bool), Error> {
    // Usually every target has a session: one hold of the lock resolves, reads and
    // encrypts. Otherwise the lock is let go while the missing bundles are fetched, and
    // the next hold starts those sessions.
    let mut fetched: Vec<(Jid, wa_signal::PreKeyBundle)> = Vec::new();
    // The devices whose bundles were asked for, and how many times the lock was let go
    // for them: devices with no stored record, found before anything is encrypted, and
    // then devices whose stored record cannot encrypt (Signal cannot decode it, or it
    // has no current session), which only the encryption finds.
    let mut asked: Vec<Jid> = Vec::new();
    let mut fetches = 0;
    let (out, joined) = loop {
        // The lock without committing an open group: this send joins it.
        let mut guard = inner.crypto.lock().await;
        resolve_sessions(inner, &mut guard, me, targets).await?;
        let open = guard.get_or_insert_with(|| OpenSends::open(inner, creds));
        prefetch(&open.repo, targets.iter().map(|t| &t.session)).await;
        if !fetched.is_empty() {
            inject_fetched(inner, &open.repo, targets, &fetched).await;
        }
        // Each session is read once (the presence check answers from what the read
        // ahead holds). A send that fails here leaves what it staged to the group
        // (ratchet steps, a session started): harmless, as no message used them.
        let may_fetch = fetches < MAX_BUNDLE_FETCHES;
        // Devices with no stored session are found before anything is encrypted: a send
        // that must fetch bundles for them moves no present session on.
        let absent: Vec<Jid> = if may_fetch {
            absent_sessions(&open.repo, targets)
                .await?
                .into_iter()
                .filter(|d| !asked.contains(d))
                .collect()
        } else {
            Vec::new()
        };
        let mut out = if absent.is_empty() {
            encrypt_each(&open.repo, targets, chat, message, patch, may_fetch).await?
        } else {
            Encrypted {
                nodes: Vec::new(),
                any_pkmsg: false,
                missing: absent,
            }
        };
        let unasked: Vec<Jid> = out
            .missing
            .iter()
            .filter(|d| !asked.contains(d))
            .cloned()
            .collect();
        if may_fetch && !unasked.is_empty() {
            // Copies made for the others (a record that cannot encrypt is found only by
            // encrypting) are dropped. A group nobody joined yet holds nothing else, and
            // goes with them; otherwise it keeps their ratchet steps, which is harmless:
            // no message used those keys, the peers skip them.
            if open.members.is_empty() {
                *guard = None;
            }
            drop(guard);
            debug!("fetching pre-key bundles for {} devices", unasked.len());
            fetched.extend(inner.fetch_bundles(&unasked).await?);
            asked.extend(unasked);
            fetches += 1;
            continue;
        }
        if may_fetch && patch.is_some() && !out.missing.is_empty() {
            // All or none encrypted nothing, and no bundle is left to ask for (the
            // server had none for those devices): the others get the message.
            out = encrypt_each(&open.repo, targets, chat, message, patch, false).await?;
        }
        warn_missing(&out.missing);
        break ((out.nodes, out.any_pkmsg), open.join(extra));
    };
    committed(inner, joined).await?;
    Ok(out)
}

impl OpenSends {
    /// A new, empty group of sends.
    pub(crate) fn open(inner: &Inner, creds: &AuthCreds) -> Self {
        Self {
            id: GROUPS.fetch_add(1, Ordering::Relaxed),
            repo: inner.staged_repo(creds),
            extra: Batch::new(),
            members: Vec::new(),
        }
    }

    /// Adds a send that encrypted into the group's repository, with its own writes
    /// `extra`; the send then lets the lock go and waits with [`committed`].
    pub(crate) fn join(&mut self, extra: Batch) -> Joined {
        self.extra.append(extra);
        let (tx, rx) = oneshot::channel();
        self.members.push(tx);
        Joined {
            group: self.id,
            committed: rx,
        }
    }
}

/// A send's place in a group of sends ([`OpenSends::join`]).
pub(crate) struct Joined {
    /// The group's [`OpenSends::id`].
    group: u64,
    /// Told how the group's commit went.
    committed: oneshot::Receiver<Result<(), String>>,
}

/// Waits until the group a send joined is committed, with the lock let go: taking the
/// lock again commits the group, unless an earlier member or another holder of the lock
/// did. Not a later group: the sends that joined it while this one waited for the lock
/// are still coming, and each commit they share is one fewer. Sends that are ready to run
/// get their turn first, so that they queue for the lock (and join) before the commit,
/// rather than start a group of their own after it.
///
/// # Errors
/// [`Error::Store`] when the group's commit failed: nothing of any of its sends was
/// written, and none of them may leave.
pub(crate) async fn committed(inner: &Inner, joined: Joined) -> Result<(), Error> {
    tokio::task::yield_now().await;
    {
        let mut guard = inner.crypto.lock().await;
        if guard.as_ref().is_some_and(|open| open.id == joined.group) {
            inner.commit_open_sends(&mut guard).await;
        }
    }
    match joined.committed.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::store_failure(e)),
        Err(_) => Err(Error::store_failure(
            "the group of sends was dropped before its commit",
        )),
    }
}

/// Fetches pre-key bundles for targets without a session (outside the crypto lock),
/// keyed by the devices as the targets name them.
pub(crate) async fn fetch_missing(
    inner: &Inner,
    creds: &AuthCreds,
    targets: &[Target],
) -> Result<Vec<(Jid, wa_signal::PreKeyBundle)>, Error> {
    let repo = inner.staged_repo(creds);
    prefetch(&repo, targets.iter().map(|t| &t.session)).await;
    let missing = missing_sessions(&repo, targets).await?;
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    debug!("fetching pre-key bundles for {} devices", missing.len());
    inner.fetch_bundles(&missing).await
}

/// The devices, as the targets name them, with no session record stored in `repo`
/// (read from what the adapter holds, without decoding the records).
async fn absent_sessions(repo: &Repo, targets: &[Target]) -> Result<Vec<Jid>, Error> {
    let mut absent = Vec::new();
    for t in targets {
        let address = wa_signal::SignalAddress::signal_address(&t.session);
        if !repo.store().has_session_record(&address).await? {
            absent.push(t.device.clone());
        }
    }
    Ok(absent)
}

/// The devices, as the targets name them, with no session in `repo`.
async fn missing_sessions(repo: &Repo, targets: &[Target]) -> Result<Vec<Jid>, Error> {
    let mut missing = Vec::new();
    for t in targets {
        if !repo.has_session(&t.session).await? {
            missing.push(t.device.clone());
        }
    }
    Ok(missing)
}

/// Reads the sessions and identities of the devices whose sessions `sessions` name
/// (each once) into the staged `repo` in two bulk reads, instead of a few reads per
/// device; nothing for fewer than two devices. A failure only costs the speed-up: the
/// reads that follow go to the store and report it.
pub(crate) async fn prefetch<'a>(repo: &Repo, sessions: impl IntoIterator<Item = &'a Jid>) {
    let mut addresses: Vec<wa_signal::ProtocolAddress> = Vec::new();
    for session in sessions {
        let address = wa_signal::SignalAddress::signal_address(session);
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    if addresses.len() < 2 {
        return;
    }
    if let Err(e) = repo.store().prefetch(&addresses).await {
        debug!("bulk read of {} sessions failed: {e}", addresses.len());
    }
}

/// Starts sessions from fetched bundles, under the targets' session addresses, unless
/// another send started one meanwhile.
pub(crate) async fn inject_fetched(
    inner: &Inner,
    repo: &Repo,
    targets: &[Target],
    fetched: &[(Jid, wa_signal::PreKeyBundle)],
) {
    for (wire, bundle) in fetched {
        let Some(device) = targets
            .iter()
            .find(|t| t.device == *wire)
            .map(|t| &t.session)
        else {
            continue;
        };
        match repo.has_session(device).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                warn!("session lookup for {device} failed: {e}");
                continue;
            }
        }
        if let Err(e) = inject_session(inner, repo, device, bundle).await {
            warn!("cannot start a session with {device}: {e}");
        }
    }
}

/// Encrypts for every target that has a session (each copy patched by `patch` first);
/// returns the `<to>` nodes and whether any is a `pkmsg`. Targets without a session are
/// skipped (logged).
pub(crate) async fn encrypt_for(
    repo: &Repo,
    targets: &[Target],
    chat: &Jid,
    message: &Message,
    patch: Option<&MessagePatch>,
) -> Result<(Vec<Node>, bool), Error> {
    let out = encrypt_each(repo, targets, chat, &Encoded::new(message), patch, false).await?;
    warn_missing(&out.missing);
    Ok((out.nodes, out.any_pkmsg))
}

/// What [`encrypt_each`] made.
struct Encrypted {
    /// One `<to>` node per target with a session.
    nodes: Vec<Node>,
    /// Whether any of them is a `pkmsg`.
    any_pkmsg: bool,
    /// The devices, as the targets name them, with no session.
    missing: Vec<Jid>,
}

fn warn_missing(missing: &[Jid]) {
    for device in missing {
        warn!("no session with {device}; skipping that device");
    }
}

/// Encrypts for every target that has a session (each copy patched by `patch` first),
/// and names those without one. With `all_or_none` and a patch, nothing is encrypted
/// when a session is missing, so that the send, trying again once they exist, patches
/// each device's copy once.
async fn encrypt_each(
    repo: &Repo,
    targets: &[Target],
    chat: &Jid,
    encoded: &Encoded<'_>,
    patch: Option<&MessagePatch>,
    all_or_none: bool,
) -> Result<Encrypted, Error> {
    if all_or_none && patch.is_some() {
        let missing = missing_sessions(repo, targets).await?;
        if !missing.is_empty() {
            return Ok(Encrypted {
                nodes: Vec::new(),
                any_pkmsg: false,
                missing,
            });
        }
    }
    let message = encoded.message();
    let plain = encoded.padded(&mut rand::thread_rng());
    let own_plain = if targets.iter().any(|t| t.own) {
        encoded.device_sent_padded(&chat.to_string(), &mut rand::thread_rng())
    } else {
        Vec::new()
    };
    let mut out = Encrypted {
        nodes: Vec::with_capacity(targets.len()),
        any_pkmsg: false,
        missing: Vec::new(),
    };
    for t in targets {
        // Boxed: a `Message` is kilobytes, and this is held across the await below.
        let patched = patch
            .and_then(|p| p.apply(message, Some(&t.device)))
            .map(Box::new);
        let patched_plain = patched.as_ref().map(|m| {
            if t.own {
                encode_plaintext(&device_sent(chat, m), &mut rand::thread_rng())
            } else {
                encode_plaintext(m, &mut rand::thread_rng())
            }
        });
        let pt = match &patched_plain {
            Some(p) => p,
            None if t.own => &own_plain,
            None => &plain,
        };
        match repo.encrypt_message(&t.session, pt).await {
            Ok(enc) => {
                out.any_pkmsg |= enc.kind == CiphertextType::Pkmsg;
                out.nodes.push(
                    Node::builder("to")
                        .attr("jid", t.device.clone())
                        .children([stanza::enc_node_for(
                            enc.kind,
                            enc.ciphertext,
                            None,
                            Some(patched.as_deref().unwrap_or(message)),
                        )])
                        .build(),
                );
            }
            Err(wa_signal::Error::NoSession(_)) => out.missing.push(t.device.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The copy our own other devices get: `deviceSentMessage{destinationJid, message}`.
pub(crate) fn device_sent(chat: &Jid, message: &Message) -> Message {
    Message {
        device_sent_message: Some(Box::new(DeviceSentMessage {
            destination_jid: Some(chat.to_string()),
            message: Some(Box::new(message.clone())),
            ..Default::default()
        })),
        message_context_info: message.message_context_info.clone(),
        ..Default::default()
    }
}

/// Runs a send (`attempt`) and, while it fails because the store failed, runs it again
/// after each pause of [`SHORT_STORE_RETRIES`](crate::messenger::SHORT_STORE_RETRIES);
/// then returns what the last try gave. A send whose store access failed left nothing:
/// its Signal state and records are committed before its stanza leaves, so a failed
/// commit wrote nothing and sent nothing, and the next try encrypts again from the
/// stored state.
pub(crate) async fn with_store_retries<T, F, Fut>(
    span: &tracing::Span,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut pauses = crate::messenger::SHORT_STORE_RETRIES.iter();
    loop {
        match (attempt().await, pauses.next()) {
            (Err(e), Some(&pause)) if e.is_store_failure() => {
                debug!(parent: span, "send not stored ({e}); again in {pause:?}");
                tokio::time::sleep(pause).await;
            }
            (sent, _) => return sent,
        }
    }
}

/// Sends a stanza and waits for its `<ack class="message">`, which it returns.
pub(crate) async fn send_and_wait(inner: &Inner, stanza: &Node, id: &str) -> Result<Node, Error> {
    let mut state = inner.socket.state_watch();
    let waiter = inner.wait_ack(id);
    inner.socket.send_node(stanza).await?;
    // The ack of a connection that closes never comes: fail at once rather than at the
    // timeout (the server may still have taken the message; a resend with the same id is
    // safe, receivers deduplicate).
    let ack = tokio::select! {
        r = waiter.wait(inner.config.ack_timeout) => r?,
        _ = state.wait_for(|s| *s == wa_types::ConnectionState::Closed) => {
            return Err(Error::Socket(wa_socket::Error::NotConnected));
        }
    };
    if let Some(code) = ack.attr_opt::<u64>("error").ok().flatten() {
        return Err(Error::Nack(u16::try_from(code).unwrap_or(u16::MAX)));
    }
    Ok(ack)
}

pub(crate) fn emit_own(inner: &Inner, me: &Me, key: MessageKey, message: Arc<Message>, now: u64) {
    if !inner.config.emit_own_messages {
        return;
    }
    inner.emit_message(
        WaMessage {
            key,
            sender: me.pn.clone(),
            sender_alt: me.lid.clone(),
            push_name: None,
            timestamp: now,
            message,
            offline: false,
            request_id: None,
            bot_edit: None,
        },
        None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_options_add_attributes_and_nodes_but_keep_id_and_to() {
        let to = Jid::pn("15550000002");
        let mut stanza = Node::builder("message")
            .attr("id", "ID1")
            .attr("to", to.clone())
            .attr("type", "text")
            .children([Node::builder("participants").build()])
            .build();
        let options = RelayOptions::default()
            .attr("type", "media")
            .attr("id", "EVIL")
            .attr("to", "1@s.whatsapp.net")
            .attr("device_fanout", "false")
            .node(Node::builder("biz").attr("native_flow_name", "x").build());
        options.apply(&mut stanza);
        assert_eq!(stanza::str_attr(&stanza, "id"), Some("ID1"));
        assert_eq!(stanza::jid_attr(&stanza, "to"), Some(to));
        assert_eq!(stanza::str_attr(&stanza, "type"), Some("media"));
        assert_eq!(stanza::str_attr(&stanza, "device_fanout"), Some("false"));
        let tags: Vec<&str> = stanza.children().iter().map(|c| c.tag.as_ref()).collect();
        assert_eq!(tags, ["participants", "biz"]);

        // A stanza without children gets the nodes as its children.
        let mut bare = Node::builder("message").attr("id", "ID2").build();
        RelayOptions::default()
            .node(Node::builder("biz").build())
            .apply(&mut bare);
        assert_eq!(bare.children().len(), 1);
    }
}
