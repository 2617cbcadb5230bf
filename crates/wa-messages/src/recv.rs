//! Receiving: decrypt, commit (session state + processed marker), receipt, event.

use std::sync::Arc;

use tracing::{debug, warn};
use wa_binary::{Jid, Node, Server};
use wa_proto::e2e::Message;
use wa_signal::CiphertextType;
use wa_store::{AuthCreds, Batch, ProcessedMessageStore};
use wa_types::{MessageKey, WaMessage};

use crate::messenger::{Inner, Me, Repo, unix_now};
use crate::stanza::{self, RetryKeys, RetryRequest};
use crate::{Error, decode_plaintext};

/// The addressing facts of one incoming `<message>`.
#[derive(Clone, Debug)]
pub(crate) struct Incoming {
    pub(crate) id: String,
    /// The chat: the peer user, or the group.
    pub(crate) chat: Jid,
    /// The sending device.
    pub(crate) sender: Jid,
    pub(crate) from_me: bool,
    pub(crate) sender_alt: Option<Jid>,
    pub(crate) push_name: Option<String>,
    pub(crate) t: u64,
    pub(crate) offline: bool,
    /// For a part of a bot's streamed reply: which part, and the message it edits.
    pub(crate) bot_edit: Option<wa_types::BotEdit>,
}

/// Reads the addressing attributes; `None` when `from`/`id` (or a group's `participant`)
/// is missing or malformed.
pub(crate) fn parse_incoming(node: &Node, me: &Me) -> Option<Incoming> {
    let id = stanza::id_attr(node)?.to_owned();
    let from = stanza::jid_attr(node, "from")?;
    let participant = stanza::jid_attr(node, "participant");
    let (mut chat, sender) = if from.is_group() || from.is_broadcast() {
        (from.clone(), participant?)
    } else {
        (from.to_non_ad(), from.clone())
    };
    let from_me = me.is_me_user(&sender);
    if from_me
        && !chat.is_group()
        && let Some(r) = stanza::jid_attr(node, "recipient")
    {
        chat = r.to_non_ad();
    }
    // A bot answering an inline invocation names the chat it answers in; a streamed
    // reply names the part and the message it edits.
    let mut bot_edit = None;
    if crate::bot::is_bot_sender(&sender) {
        let bot = crate::bot::bot_info(node);
        if !chat.is_group()
            && let Some(target) = bot.target_chat
        {
            chat = target;
        }
        bot_edit = bot.edit;
    }
    let alt_keys: &[&str] = if sender.is_lid() {
        &["participant_pn", "sender_pn"]
    } else {
        &["participant_lid", "sender_lid"]
    };
    let sender_alt = alt_keys.iter().find_map(|k| stanza::jid_attr(node, k));
    let push_name = stanza::str_attr(node, "notify")
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(256).collect());
    let t = node.attr_opt::<u64>("t").ok().flatten().unwrap_or(0);
    let offline = node.get_attr("offline").is_some();
    Some(Incoming {
        id,
        chat,
        sender,
        from_me,
        sender_alt,
        push_name,
        t,
        offline,
        bot_edit,
    })
}

/// Whether the message carries more than a sender-key distribution (which is processed but
/// not reported).
fn has_content(m: &mut Message) -> bool {
    // The two fields are set aside rather than the message cloned (it is several KB).
    let skdm = m.sender_key_distribution_message.take();
    let context = m.message_context_info.take();
    let content = *m != Message::default();
    m.sender_key_distribution_message = skdm;
    m.message_context_info = context;
    content
}

/// Processes one `<message>` stanza end to end. Never panics, and every stanza is
/// answered: a delivery receipt after the commit, a retry receipt when decryption fails,
/// or an ack. A stanza whose commit fails is kept for another try
/// ([`MessengerConfig::store_retries`](crate::MessengerConfig::store_retries)) and
/// answered then.
pub(crate) async fn handle_message(inner: &Arc<Inner>, node: Node) {
    handle_message_try(inner, node, 0).await;
}

/// [`handle_message`] on its try `attempt` at storing the message (0 for the first).
async fn handle_message_try(inner: &Arc<Inner>, node: Node, attempt: usize) {
    let creds = match inner.creds().await {
        Ok(c) => c,
        Err(_) => {
            debug!("message before login; leaving it for redelivery");
            return;
        }
    };
    let Ok(me) = Inner::me(&creds) else { return };
    let Some(info) = parse_incoming(&node, &me) else {
        warn!("message stanza without usable from/id/participant");
        send(inner, &stanza::message_ack(&node, &me.pn, Some(487))).await;
        return;
    };
    let encs = stanza::enc_children(&node);
    let bot_reply = crate::bot::secret_reply(&node, &info.sender);
    if encs.is_empty() && bot_reply.is_none() {
        debug!("message {} has nothing to decrypt; acknowledging", info.id);
        send(inner, &stanza::message_ack(&node, &me.pn, None)).await;
        return;
    }
    let chat_s = info.chat.to_string();
    let sender_s = info.sender.to_string();
    let outcome = {
        let _guard = inner.crypto_lock().await;
        match inner
            .socket
            .store()
            .is_message_processed(&chat_s, &info.id, &sender_s)
            .await
        {
            Ok(true) => Outcome::Duplicate,
            Ok(false) if encs.is_empty() => {
                let payload = bot_reply.unwrap_or_default();
                match crate::bot::open_secret_reply(inner, &me, &info, &node, payload).await {
                    Ok(m) => {
                        let repo = inner.staged_repo(&creds);
                        commit_received(inner, &repo, &info, vec![m], None).await
                    }
                    Err(e) => Outcome::NoSecret(e),
                }
            }
            Ok(false) => match sender_session(inner, &_guard, &me, &info).await {
                Ok(session) => decrypt_and_commit(inner, &creds, &me, &info, &session, &encs).await,
                Err(e) => Outcome::Failed(e),
            },
            Err(e) => Outcome::Failed(e.into()),
        }
    };
    finish(inner, &creds, &me, &node, &info, outcome, attempt, None).await;
}

/// Takes a message whose commit failed (the store failed) back for another try after the
/// pause of try `attempt`, without answering it: the store may work again by then, and
/// the message is decrypted again from the stored state. `false` when its tries are used
/// up or too many messages wait already; the sender is then asked for it again. A socket
/// that ends for good meanwhile leaves the message to the server, which delivers it again
/// at the next login.
fn store_later(inner: &Arc<Inner>, node: &Node, attempt: usize) -> bool {
    let Some(&pause) = inner.config.store_retries.get(attempt) else {
        return false;
    };
    let Ok(place) = inner.store_retry_queue.clone().try_acquire_owned() else {
        return false;
    };
    let (inner, node) = (inner.clone(), node.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = inner.socket.stopped() => return,
        }
        let _running = inner.late_work.read().await;
        drop(place);
        // A stop that began while this waited for its turn: the messenger is settling,
        // and the server delivers the message again to whatever runs next.
        if inner.socket.is_stopped() {
            return;
        }
        // Boxed: this future is part of the one handling the message the first time.
        let again: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> =
            Box::pin(handle_message_try(&inner, node, attempt + 1));
        again.await;
    });
    true
}

/// Whether a message that failed with `e` may open once the messages waiting for another
/// try at being stored are stored: a group message without its sender key, whose key
/// can be in one of them (the sender distributes it once, and believes it delivered).
fn waits_for_stored(inner: &Inner, e: &Error) -> bool {
    matches!(e, Error::Signal(wa_signal::Error::NoSenderKey(_)))
        && inner.store_retry_queue.available_permits() < crate::MAX_WAITING_STORE_RETRIES
}

/// Processes stanzas a worker found queued together, in order. Consecutive messages
/// from other users with ciphertexts to decrypt are handled as one run (see
/// [`handle_run`]): one crypto-lock hold and one commit for all of them. Everything else
/// (our own devices' copies, bot replies, malformed stanzas) goes through
/// [`handle_message`] alone, in its place.
pub(crate) async fn handle_messages(inner: &Arc<Inner>, nodes: Vec<Node>) {
    if nodes.len() < 2 {
        for node in nodes {
            handle_message(inner, node).await;
        }
        return;
    }
    let Ok(creds) = inner.creds().await else {
        debug!("messages before login; leaving them for redelivery");
        return;
    };
    let Ok(me) = Inner::me(&creds) else { return };
    let mut run: Vec<(Node, Incoming)> = Vec::new();
    for node in nodes {
        let plain = parse_incoming(&node, &me).filter(|info| {
            !info.from_me
                && !stanza::enc_children(&node).is_empty()
                && crate::bot::secret_reply(&node, &info.sender).is_none()
        });
        match plain {
            Some(info) => run.push((node, info)),
            None => {
                handle_run(inner, &creds, &me, std::mem::take(&mut run)).await;
                handle_message(inner, node).await;
            }
        }
    }
    handle_run(inner, &creds, &me, run).await;
}

/// Handles messages from other users as [`handle_message`] does, together: under one
/// hold of the crypto lock, the processed markers are checked, the senders' LID mappings
/// adopted and their session addresses resolved, then every message is decrypted into
/// one staged repository and all are committed at once, before any receipt leaves. A
/// message that fails is answered as it would be alone. If the shared commit fails,
/// nothing of it was written, and its messages are handled again one by one: a message
/// whose writes cannot be stored then fails alone, and a passing fault gets a second try.
async fn handle_run(inner: &Arc<Inner>, creds: &AuthCreds, me: &Me, run: Vec<(Node, Incoming)>) {
    if run.len() < 2 {
        for (node, _) in run {
            handle_message(inner, node).await;
        }
        return;
    }
    let mut outcomes: Vec<Option<Outcome>> = run.iter().map(|_| None).collect();
    // The messages of a shared commit that failed, to be handled again alone.
    let mut alone = vec![false; run.len()];
    {
        let guard = inner.crypto_lock().await;
        let store = inner.socket.store();
        // The processed markers of the whole run in one bulk read.
        let names: Vec<(String, String)> = run
            .iter()
            .map(|(_, info)| (info.chat.to_string(), info.sender.to_string()))
            .collect();
        let asked: Vec<(&str, &str, &str)> = run
            .iter()
            .zip(&names)
            .map(|((_, info), (chat, sender))| (chat.as_str(), info.id.as_str(), sender.as_str()))
            .collect();
        match store.are_messages_processed(&asked).await {
            Ok(processed) => {
                for (out, p) in outcomes.iter_mut().zip(processed) {
                    *out = match p {
                        Ok(true) => Some(Outcome::Duplicate),
                        Ok(false) => None,
                        Err(e) => Some(Outcome::Failed(e.into())),
                    };
                }
            }
            Err(e) => {
                let why = e.to_string();
                for out in &mut outcomes {
                    *out = Some(Outcome::Failed(Error::store_failure(why.clone())));
                }
            }
        }
        // Mappings first, then addresses: an address resolved after every mapping of
        // the run was adopted is the one each message would have had alone.
        for ((_, info), out) in run.iter().zip(outcomes.iter_mut()) {
            if out.is_none()
                && let Err(e) = adopt_stated_mapping(inner, &guard, me, info).await
            {
                *out = Some(Outcome::Failed(e));
            }
        }
        let mut sessions: Vec<Option<Jid>> = Vec::with_capacity(run.len());
        for ((_, info), out) in run.iter().zip(outcomes.iter_mut()) {
            let mut session = None;
            if out.is_none() {
                match inner.session_jid(&guard, me, &info.sender).await {
                    Ok(s) => session = Some(s),
                    Err(e) => *out = Some(Outcome::Failed(e)),
                }
            }
            sessions.push(session);
        }
        let repo = inner.staged_repo(creds);
        // The sessions and identities of the run's senders in two bulk reads, when more
        // than one sender (each sender's are read once anyway).
        crate::send::prefetch(&repo, sessions.iter().flatten()).await;
        let mut extra = Batch::new();
        let mut staged: Vec<(usize, Staged)> = Vec::new();
        // Messages staged so far: a copy delivered again within the run is a duplicate
        // of one (a copy of a message that failed is tried again, as it would be alone).
        let mut done = std::collections::HashSet::new();
        let mut echoes = Vec::new();
        for (i, (((node, info), session), (chat_s, sender_s))) in
            run.iter().zip(&sessions).zip(&names).enumerate()
        {
            let Some(session) = session else { continue };
            let key = (&info.chat, info.id.as_str(), &info.sender);
            if done.contains(&key) {
                echoes.push(i);
                continue;
            }
            let encs = stanza::enc_children(node);
            match decrypt_all(inner, &repo, me, info, session, &encs).await {
                Ok((decrypted, destination)) => {
                    done.insert(key);
                    staged.push((
                        i,
                        stage_received(
                            inner,
                            info,
                            (chat_s, sender_s),
                            decrypted,
                            destination,
                            &mut extra,
                        ),
                    ));
                }
                Err(e) => outcomes[i] = Some(Outcome::Failed(e)),
            }
        }
        if !staged.is_empty() {
            let reported = inner.inbox.take_into(&mut extra);
            match inner.commit_staged(&repo, extra).await {
                Ok(()) => {
                    for (i, s) in staged {
                        outcomes[i] = Some(s.committed(inner));
                    }
                    for i in echoes {
                        outcomes[i] = Some(Outcome::Duplicate);
                    }
                }
                Err(e) => {
                    inner.inbox.reported(reported);
                    // The copies delivered again are handled again with the one they
                    // repeat, after it (as a duplicate once it is stored).
                    let members: Vec<usize> =
                        staged.into_iter().map(|(i, _)| i).chain(echoes).collect();
                    if members.len() > 1 {
                        warn!(
                            "commit of {} received messages failed ({e}); handling them one by one",
                            members.len()
                        );
                        for i in members {
                            alone[i] = true;
                        }
                    } else if let Some(&i) = members.first() {
                        outcomes[i] = Some(Outcome::Failed(e));
                    }
                }
            }
        }
        drop(guard);
    }
    // The run's delivery receipts leave together, one per chat and sender (see
    // `stanza::merge_receipts`), after every message of the run was answered.
    let mut receipts = Vec::new();
    for (((node, info), outcome), alone) in run.into_iter().zip(outcomes).zip(alone) {
        if alone {
            handle_message(inner, node).await;
            continue;
        }
        // Every message got an outcome above; a missing one would be a bug, answered as
        // a failure rather than left unanswered.
        let outcome = outcome.unwrap_or_else(|| {
            Outcome::Failed(Error::store_failure("message left without an outcome"))
        });
        finish(
            inner,
            creds,
            me,
            &node,
            &info,
            outcome,
            0,
            Some(&mut receipts),
        )
        .await;
    }
    for receipt in stanza::merge_receipts(receipts) {
        send(inner, &receipt).await;
    }
}

/// Answers one message after its outcome is known (committed, a duplicate, or failed):
/// receipts, history processing, the event, another try at storing it, or the retry
/// receipt. `attempt` is the try at storing it (0 for the first). With `receipts`, a
/// delivery receipt is added there for the caller to send instead of sent. Runs without
/// the crypto lock.
#[allow(clippy::too_many_arguments)]
async fn finish(
    inner: &Arc<Inner>,
    creds: &AuthCreds,
    me: &Me,
    node: &Node,
    info: &Incoming,
    outcome: Outcome,
    attempt: usize,
    receipts: Option<&mut Vec<Node>>,
) {
    let sender_s = &info.sender;
    match outcome {
        Outcome::Duplicate => {
            debug!(
                "message {} from {} already processed; re-acknowledging",
                info.id, sender_s
            );
            send_or_keep(inner, receipts, delivery_receipt(inner, node, info.from_me)).await;
        }
        Outcome::Done(report) => {
            let message = report.as_ref().map(|r| r.0.message.clone());
            // A history-sync notification from our own phone is processed before the
            // receipts leave (it was persisted with the processed marker).
            let history = message
                .as_deref()
                .and_then(crate::history::notification)
                .filter(|_| info.from_me);
            if let Some(n) = history {
                inner.process_history(me, &info.id, n).await;
            }
            // Messages our phone resends on request are reported as themselves.
            if info.from_me
                && info.sender.device == 0
                && let Some(m) = message.as_deref()
            {
                crate::placeholder::take_answers(inner, m).await;
                // A fatal app-state recovery answer goes to the app-state layer.
                if let Some(answer) = crate::peer::recovery_answer(m) {
                    inner
                        .socket
                        .emit(wa_socket::Event::AppStateRecoveryReceived(answer));
                }
            }
            // The history receipt follows the delivery receipt: neither waits.
            let receipts = receipts.filter(|_| history.is_none());
            send_or_keep(inner, receipts, delivery_receipt(inner, node, info.from_me)).await;
            if history.is_some() {
                send(
                    inner,
                    &crate::history::hist_sync_receipt(&info.id, &info.chat),
                )
                .await;
            }
            if let Some(boxed) = report {
                let (mut report, inbox_key) = *boxed;
                if report.sender_alt.is_none() {
                    report.sender_alt = alternate_from_store(inner, &report.sender).await;
                }
                inner.report_received(report, Some(inbox_key)).await;
            }
        }
        Outcome::NoSecret(e) => {
            // Nothing to retry: the secret is not here (whatsmeow and Baileys nack 495).
            warn!("bot reply {} from {sender_s} not opened: {e}", info.id);
            send(
                inner,
                &stanza::message_ack(node, &me.pn, Some(NACK_MISSING_SECRET)),
            )
            .await;
            emit_undecryptable(inner, info);
        }
        Outcome::Failed(e) if e.is_store_failure() && store_later(inner, node, attempt) => {
            warn!(
                "message {} from {sender_s} not stored ({e}); trying again (try {})",
                info.id,
                attempt + 2
            );
        }
        Outcome::Failed(e) if waits_for_stored(inner, &e) && store_later(inner, node, attempt) => {
            debug!(
                "message {} from {sender_s} waits for messages not stored yet ({e}); \
                 trying again (try {})",
                info.id,
                attempt + 2
            );
        }
        Outcome::Failed(e) => {
            warn!("message {} from {sender_s} failed: {e}", info.id);
            if send_retry(inner, creds, node, info).await == 1 {
                emit_undecryptable(inner, info);
            }
            crate::placeholder::schedule(inner, info);
        }
    }
}

enum Outcome {
    Duplicate,
    /// The message as it is reported (unless it only carried a sender key: a copy of a
    /// message one of our devices sent is reported in the chat it was sent to) with its
    /// inbox key. Boxed: the variants differ a lot in size.
    Done(Option<Box<(WaMessage, String)>>),
    Failed(Error),
    /// A bot's `msmsg` reply that could not be opened (no secret, or it did not
    /// authenticate): nacked, never retried.
    NoSecret(Error),
}

/// The nack code of a message whose message secret is missing.
const NACK_MISSING_SECRET: u16 = 495;

/// The nack code of a message that could not be handled (after its retry receipt).
const NACK_UNHANDLED: u16 = 500;

/// How long a status lasts (seconds): an older one that fails is not retried.
const STATUS_LIFETIME: u64 = 24 * 3600;

/// The JID whose Signal address holds the session with the sender: a mapping the stanza
/// states is adopted first (stored, and the sender's PN sessions moved to the LID
/// addresses), then the LID device is used whenever the sender's LID is known. Called
/// under the crypto lock.
async fn sender_session(
    inner: &Inner,
    crypto: &crate::messenger::CryptoGuard<'_>,
    me: &Me,
    info: &Incoming,
) -> Result<Jid, Error> {
    adopt_stated_mapping(inner, crypto, me, info).await?;
    inner.session_jid(crypto, me, &info.sender).await
}

/// Adopts the LID/phone-number mapping the stanza states for its sender, if any (see
/// [`Inner::adopt_mapping`]). Called under the crypto lock.
async fn adopt_stated_mapping(
    inner: &Inner,
    crypto: &crate::messenger::CryptoGuard<'_>,
    me: &Me,
    info: &Incoming,
) -> Result<(), Error> {
    let Some(alt) = &info.sender_alt else {
        return Ok(());
    };
    let (pn, lid) = if info.sender.is_lid() {
        (alt, &info.sender)
    } else {
        (&info.sender, alt)
    };
    inner.adopt_mapping(crypto, me, pn, lid).await
}

/// The phone-number name the sender's sender keys may still be stored under, when
/// `session` is its LID device: the stanza's sender when it named the PN device, else
/// the stored mapping.
async fn sender_pn_alias(
    inner: &Inner,
    me: &Me,
    info: &Incoming,
    session: &Jid,
) -> Result<Option<Jid>, Error> {
    if info.sender != *session && !info.sender.is_lid() {
        return Ok(Some(info.sender.clone()));
    }
    inner.pn_device(me, session).await
}

/// Moves the sender's sender key in `group` from its PN name to `session` (its LID
/// device) if one is stored there and none under `session`; staged in `repo`.
async fn adopt_pn_sender_key(
    inner: &Inner,
    repo: &Repo,
    me: &Me,
    info: &Incoming,
    session: &Jid,
    group: &str,
) -> Result<bool, Error> {
    use wa_signal::SignalAddress;
    let Some(pn) = sender_pn_alias(inner, me, info, session).await? else {
        return Ok(false);
    };
    let from = SignalAddress::signal_address(&pn);
    let to = SignalAddress::signal_address(session);
    Ok(repo.store().move_sender_key(group, &from, &to).await?)
}

/// Decrypts a group member's `skmsg` with the sender key named by its session address; a
/// key still under the member's PN name is moved over first if none is found.
async fn decrypt_skmsg(
    inner: &Inner,
    repo: &Repo,
    me: &Me,
    info: &Incoming,
    session: &Jid,
    bytes: &[u8],
) -> Result<Vec<u8>, Error> {
    let chat_s = info.chat.to_string();
    match repo.decrypt_group_message(&chat_s, session, bytes).await {
        Err(wa_signal::Error::NoSenderKey(k))
            if session.is_lid() || session.server == wa_binary::Server::HostedLid =>
        {
            if adopt_pn_sender_key(inner, repo, me, info, session, &chat_s).await? {
                debug!(
                    "sender key of {} in {chat_s} moved to {session}",
                    info.sender
                );
                Ok(repo.decrypt_group_message(&chat_s, session, bytes).await?)
            } else {
                Err(wa_signal::Error::NoSenderKey(k).into())
            }
        }
        r => Ok(r?),
    }
}

/// Decrypts every `<enc>` with a staged store (pairwise ones and sender keys under the
/// `session` JID's address), then commits the state changes together with the processed
/// marker. Called under the crypto lock.
async fn decrypt_and_commit(
    inner: &Inner,
    creds: &AuthCreds,
    me: &Me,
    info: &Incoming,
    session: &Jid,
    encs: &[(CiphertextType, &[u8])],
) -> Outcome {
    let repo = inner.staged_repo(creds);
    match decrypt_all(inner, &repo, me, info, session, encs).await {
        Ok((decrypted, destination)) => {
            commit_received(inner, &repo, info, decrypted, destination).await
        }
        Err(e) => Outcome::Failed(e),
    }
}

/// Decrypts every ciphertext of one message into the staged `repo` (processing a sender
/// key it distributes); returns the messages and, for a copy of a message one of our
/// devices sent, the chat it was sent to.
async fn decrypt_all(
    inner: &Inner,
    repo: &Repo,
    me: &Me,
    info: &Incoming,
    session: &Jid,
    encs: &[(CiphertextType, &[u8])],
) -> Result<(Vec<Message>, Option<Jid>), Error> {
    let mut decrypted = Vec::with_capacity(encs.len());
    let mut destination: Option<Jid> = None;
    for (kind, bytes) in encs {
        let padded = match kind {
            CiphertextType::Skmsg => decrypt_skmsg(inner, repo, me, info, session, bytes).await,
            _ => decrypt_pairwise(inner, repo, session, *kind, bytes)
                .await
                .map_err(Error::from),
        };
        let mut message = decode_plaintext(&padded?)?;
        if let Some(skdm) = message.sender_key_distribution_message.as_ref()
            && let Some(bytes) = skdm.axolotl_sender_key_distribution_message.as_deref()
        {
            let group = skdm
                .group_id
                .as_deref()
                .filter(|g| !g.is_empty())
                .map_or_else(|| info.chat.to_string(), str::to_owned);
            // Older states of this sender's key (for late messages) come along.
            adopt_pn_sender_key(inner, repo, me, info, session, &group).await?;
            if let Err(e) = repo
                .process_sender_key_distribution(&group, session, bytes)
                .await
            {
                warn!("bad sender key distribution from {}: {e}", info.sender);
            }
        }
        if info.from_me
            && let Some(dsm) = message.device_sent_message.take()
            && let Some(inner_msg) = dsm.message
        {
            destination = dsm
                .destination_jid
                .as_deref()
                .and_then(|d| d.parse::<Jid>().ok())
                .map(|d| d.to_non_ad());
            let ctx = message.message_context_info.take();
            message = *inner_msg;
            if message.message_context_info.is_none() {
                message.message_context_info = ctx;
            }
        }
        decrypted.push(message);
    }
    Ok((decrypted, destination))
}

/// Commits what was received (the state changes staged in `repo`, the processed marker,
/// the inbox entry of the last message with content, and what it carries for this
/// device: history, LID mappings, key shares). Called under the crypto lock.
async fn commit_received(
    inner: &Inner,
    repo: &Repo,
    info: &Incoming,
    decrypted: Vec<Message>,
    destination: Option<Jid>,
) -> Outcome {
    let mut extra = Batch::new();
    let (chat_s, sender_s) = (info.chat.to_string(), info.sender.to_string());
    let staged = stage_received(
        inner,
        info,
        (&chat_s, &sender_s),
        decrypted,
        destination,
        &mut extra,
    );
    let reported = inner.inbox.take_into(&mut extra);
    match inner.commit_staged(repo, extra).await {
        Ok(()) => staged.committed(inner),
        Err(e) => {
            inner.inbox.reported(reported);
            Outcome::Failed(e)
        }
    }
}

/// What one received message adds to a commit, and what it announces once committed.
struct Staged {
    /// The message as it is reported, with its inbox key (see [`Outcome::Done`]).
    report: Option<Box<(WaMessage, String)>>,
    shared_keys: Vec<Vec<u8>>,
    synced_mappings: Vec<wa_types::LidMapping>,
}

impl Staged {
    /// Once committed: emits the events of the message's app-state keys and LID
    /// mappings, and gives its outcome.
    fn committed(self, inner: &Inner) -> Outcome {
        if !self.shared_keys.is_empty() {
            inner
                .socket
                .emit(wa_socket::Event::AppStateSyncKeysReceived(self.shared_keys));
        }
        if !self.synced_mappings.is_empty() {
            inner
                .socket
                .emit(wa_socket::Event::LidMappings(self.synced_mappings));
        }
        Outcome::Done(self.report)
    }
}

/// Stages what a decrypted message leaves in the store into `extra`: its processed
/// marker, its inbox entry and secret, and what our own devices share (history
/// notifications, LID mappings, app-state keys).
fn stage_received(
    inner: &Inner,
    info: &Incoming,
    (chat_s, sender_s): (&str, &str),
    decrypted: Vec<Message>,
    destination: Option<Jid>,
    extra: &mut Batch,
) -> Staged {
    let mut content: Option<Arc<Message>> = None;
    for mut message in decrypted {
        if has_content(&mut message) {
            content = Some(Arc::new(message));
        }
    }
    let now = unix_now();
    extra.mark_message_processed(chat_s, &info.id, sender_s, now as i64);
    // The message is kept until it was reported, and deletions of reported ones ride along.
    let report = content.as_ref().map(|m| {
        let mut shown = info.clone();
        if let Some(d) = destination.filter(|_| !info.chat.is_group()) {
            shown.chat = d;
        }
        let report = report_of(&shown, m.clone());
        crate::addon::stage_secret(
            extra,
            &report.key.remote_jid,
            &info.id,
            &info.sender,
            m,
            now as i64,
        );
        let key = crate::inbox::stage(&inner.inbox, extra, &report, now as i64);
        Box::new((report, key))
    });
    if info.from_me
        && let Some(n) = content.as_deref().and_then(crate::history::notification)
    {
        crate::history::persist(extra, &info.id, n, now as i64);
    }
    // LID mappings synced by our phone, likewise only from our own devices.
    let synced_mappings = match content.as_deref() {
        Some(m) if info.from_me => crate::lid::stage_mapping_sync(m, extra),
        _ => Vec::new(),
    };
    if !synced_mappings.is_empty() {
        debug!("{} LID mappings synced by our phone", synced_mappings.len());
    }
    // App-state sync keys are only taken from our own devices.
    let shared_keys = match (&content, info.from_me) {
        (Some(m), true) => crate::keyshare::stage_key_share(m, extra),
        _ => Vec::new(),
    };
    Staged {
        report,
        shared_keys,
        synced_mappings,
    }
}

/// Decrypts a `pkmsg`/`msg`; a `pkmsg` under a changed identity (the peer reinstalled) is
/// accepted with the new identity, unless changed identities are not trusted
/// ([`MessengerConfig::trust_changed_identities`](crate::MessengerConfig::trust_changed_identities)).
async fn decrypt_pairwise(
    inner: &Inner,
    repo: &Repo,
    sender: &Jid,
    kind: CiphertextType,
    bytes: &[u8],
) -> Result<Vec<u8>, wa_signal::Error> {
    use wa_signal::IdentityKeyStore as _;
    match repo.decrypt_message(sender, kind, bytes).await {
        Err(wa_signal::Error::UntrustedIdentity(addr))
            if !inner.config.trust_changed_identities =>
        {
            inner.refused_identity(&addr);
            Err(wa_signal::Error::UntrustedIdentity(addr))
        }
        Err(wa_signal::Error::UntrustedIdentity(addr)) if kind == CiphertextType::Pkmsg => {
            let msg = wa_signal::PreKeySignalMessage::decode(bytes)?;
            warn!("identity of {addr} changed; accepting the new key");
            repo.store()
                .save_identity(&addr, msg.identity_key())
                .await?;
            repo.decrypt_message(sender, kind, bytes).await
        }
        r => r,
    }
}

/// The sender's other address (LID for a phone number, phone number for a LID), from the
/// mappings learned earlier (stanza attributes, usync).
pub(crate) async fn alternate_from_store(inner: &Inner, sender: &Jid) -> Option<Jid> {
    let (user, server) = if sender.is_pn_user() {
        (inner.lid_for_pn(&sender.user).await.ok()??, Server::Lid)
    } else if sender.is_lid() {
        (inner.pn_for_lid(&sender.user).await.ok()??, Server::Pn)
    } else {
        return None;
    };
    Some(Jid::with_device(user, server, sender.device))
}

/// The key an incoming message is reported under.
fn key_of(info: &Incoming) -> MessageKey {
    let key = MessageKey::new(info.chat.clone(), info.from_me, info.id.clone());
    if info.chat.is_group() || info.chat.is_broadcast() {
        key.with_participant(info.sender.to_non_ad())
    } else {
        key
    }
}

/// Reports a message whose first decryption failed.
fn emit_undecryptable(inner: &Inner, info: &Incoming) {
    let mut u = wa_types::UndecryptableMessage::new(key_of(info), info.sender.clone(), info.t);
    u.sender_alt.clone_from(&info.sender_alt);
    u.push_name.clone_from(&info.push_name);
    u.offline = info.offline;
    inner.emit(wa_types::Event::UndecryptableMessage(Box::new(u)));
}

/// The event that reports a received message.
pub(crate) fn report_of(info: &Incoming, message: Arc<Message>) -> WaMessage {
    WaMessage {
        key: key_of(info),
        sender: info.sender.clone(),
        sender_alt: info.sender_alt.clone(),
        push_name: info.push_name.clone(),
        timestamp: info.t,
        message,
        offline: info.offline,
        request_id: None,
        bot_edit: info.bot_edit.clone(),
    }
}

/// Asks the sender to encrypt again (with our keys from the second attempt), or, past the
/// retry limit, acknowledges the stanza so it is not redelivered forever; a stanza that
/// got a retry receipt is nacked as unhandled after it. Returns which
/// failure of this message it was (1 for the first).
async fn send_retry(inner: &Inner, creds: &AuthCreds, node: &Node, info: &Incoming) -> u32 {
    let count = inner.bump_retry(&format!("{} {} {}", info.chat, info.id, info.sender));
    let ack = |error| match Inner::me(creds) {
        Ok(me) => stanza::message_ack(node, &me.pn, error),
        Err(_) => stanza::ack_for(node, "message", error),
    };
    if count > inner.config.max_retries {
        warn!("giving up on message {} after {count} retries", info.id);
        send(inner, &ack(None)).await;
        return count;
    }
    // A status lives a day: one older than that is not asked for again (Baileys).
    if info.chat.is_status_broadcast() && unix_now().saturating_sub(info.t) > STATUS_LIFETIME {
        debug!("status {} is expired; not asking for it again", info.id);
        send(inner, &ack(None)).await;
        return count;
    }
    let pre_key = if count >= 2 {
        match inner.socket.generate_pre_key().await {
            Ok(k) => Some(k),
            Err(e) => {
                warn!("no pre-key for the retry receipt: {e}");
                None
            }
        }
    } else {
        None
    };
    let spk = &creds.signed_pre_key;
    let keys = pre_key.as_ref().map(|k| RetryKeys {
        identity: creds.identity_key.public.as_bytes(),
        pre_key: (k.id, k.key_pair.public.as_bytes()),
        signed_pre_key: (
            spk.id,
            spk.key_pair.public.as_bytes(),
            spk.signature.as_bytes(),
        ),
        device_identity: creds.account.as_deref(),
    });
    let receipt = stanza::retry_receipt(
        node,
        &RetryRequest {
            count,
            registration_id: creds.registration_id,
            keys,
            t: info.t,
        },
    );
    {
        // One retry receipt at a time, `retry_receipt_interval` apart.
        let mut last = inner.last_retry_receipt.lock().await;
        let interval = inner.config.retry_receipt_interval;
        if let Some(at) = *last
            && !interval.is_zero()
        {
            tokio::time::sleep_until(at + interval).await;
        }
        send(inner, &receipt).await;
        *last = Some(tokio::time::Instant::now());
    }
    // The stanza itself is done with: the sender answers the retry receipt with a new
    // one. WhatsApp Web nacks it as unhandled (500), which keeps the server from
    // delivering it again at every login.
    send(inner, &ack(Some(NACK_UNHANDLED))).await;
    count
}

/// The delivery receipt for `node`, inactive while we are offline when so configured.
fn delivery_receipt(inner: &Inner, node: &Node, from_me: bool) -> Node {
    let active = !inner.config.inactive_receipts_when_offline || inner.socket.is_online();
    stanza::delivery_receipt(node, from_me, active)
}

async fn send(inner: &Inner, node: &Node) {
    if let Err(e) = inner.socket.send_node(node).await {
        debug!("could not send <{}>: {e}", node.tag());
    }
}

/// Adds `receipt` to `kept` when given, else sends it.
async fn send_or_keep(inner: &Inner, kept: Option<&mut Vec<Node>>, receipt: Node) {
    match kept {
        Some(kept) => kept.push(receipt),
        None => send(inner, &receipt).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Me {
        Me {
            pn: Jid::with_device("1555", Server::Pn, 3),
            lid: Some(Jid::with_device("9999", Server::Lid, 3)),
        }
    }

    #[test]
    fn peer_message_addressing() {
        let node = Node::builder("message")
            .attr("id", "ID1")
            .attr("from", Jid::with_device("1666", Server::Pn, 2))
            .attr("t", "1700000000")
            .attr("notify", "Bob")
            .attr("offline", "1")
            .attr("participant_lid", Jid::with_device("4444", Server::Lid, 2))
            .build();
        let i = parse_incoming(&node, &me()).unwrap();
        assert_eq!(i.chat, Jid::pn("1666"));
        assert_eq!(i.sender, Jid::with_device("1666", Server::Pn, 2));
        assert!(!i.from_me && i.offline);
        assert_eq!(i.t, 1_700_000_000);
        assert_eq!(i.push_name.as_deref(), Some("Bob"));
        assert_eq!(i.sender_alt, Some(Jid::with_device("4444", Server::Lid, 2)));
    }

    #[test]
    fn own_device_copy_uses_recipient_as_chat() {
        let node = Node::builder("message")
            .attr("id", "ID2")
            .attr("from", Jid::with_device("1555", Server::Pn, 1))
            .attr("recipient", Jid::pn("1666"))
            .build();
        let i = parse_incoming(&node, &me()).unwrap();
        assert!(i.from_me);
        assert_eq!(i.chat, Jid::pn("1666"));
    }

    #[test]
    fn a_bot_names_the_chat_it_answers_in_and_nobody_else_can() {
        let answer = |from: Jid| {
            Node::builder("message")
                .attr("id", "R1")
                .attr("from", from)
                .children([Node::builder("meta")
                    .attr("target_id", "INVOKE")
                    .attr("target_chat_jid", Jid::group("120363"))
                    .build()])
                .build()
        };
        let bot = Jid::pn("13135550002");
        let i = parse_incoming(&answer(bot.clone()), &me()).unwrap();
        assert_eq!(i.chat, Jid::group("120363"));
        assert_eq!(i.sender, bot);
        let i = parse_incoming(&answer(crate::meta_ai_jid()), &me()).unwrap();
        assert_eq!(i.chat, Jid::group("120363"));
        // Anyone else's message stays in the chat with its sender.
        let i = parse_incoming(&answer(Jid::pn("1666")), &me()).unwrap();
        assert_eq!(i.chat, Jid::pn("1666"));
    }

    #[test]
    fn hostile_attributes_are_refused_without_panicking() {
        let cases = [
            Node::builder("message").build(),
            Node::builder("message").attr("id", "X").build(),
            Node::builder("message")
                .attr("id", "X")
                .attr("from", "not a jid")
                .build(),
            Node::builder("message")
                .attr("id", "x".repeat(10_000))
                .attr("from", Jid::pn("1"))
                .build(),
            // A group message must name its participant.
            Node::builder("message")
                .attr("id", "X")
                .attr("from", Jid::group("120363"))
                .build(),
            // JIDs too long to key a store item, as a string and as a JID value.
            Node::builder("message")
                .attr("id", "X")
                .attr("from", format!("{}@s.whatsapp.net", "1".repeat(600)))
                .build(),
            Node::builder("message")
                .attr("id", "X")
                .attr("from", Jid::group("120363"))
                .attr("participant", Jid::lid("2".repeat(129)))
                .build(),
        ];
        for n in &cases {
            assert!(parse_incoming(n, &me()).is_none(), "{n}");
        }
        let odd = Node::builder("message")
            .attr("id", "X")
            .attr("from", Jid::pn("1"))
            .attr("t", "-5")
            .attr("notify", "n".repeat(100_000))
            .build();
        let i = parse_incoming(&odd, &me()).unwrap();
        assert_eq!(i.t, 0);
        let longest = Node::builder("message")
            .attr("id", "X")
            .attr("from", Jid::group("120363"))
            .attr("participant", Jid::lid("2".repeat(128)))
            .build();
        assert_eq!(
            parse_incoming(&longest, &me()).unwrap().sender.user.len(),
            128
        );
        assert_eq!(i.push_name.unwrap().chars().count(), 256);
    }

    #[test]
    fn sender_key_only_messages_have_no_content() {
        let mut m = Message {
            sender_key_distribution_message: Some(Default::default()),
            message_context_info: Some(Default::default()),
            ..Default::default()
        };
        assert!(!has_content(&mut m));
        assert!(m.sender_key_distribution_message.is_some(), "put back");
        assert!(m.message_context_info.is_some(), "put back");
        let mut m = Message {
            conversation: Some("hi".into()),
            ..m
        };
        assert!(has_content(&mut m));
        assert!(m.sender_key_distribution_message.is_some());
    }
}
