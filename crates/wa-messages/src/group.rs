//! Group sends: one sender-key ciphertext for everyone, the distribution message pairwise
//! to the devices that do not have our sender key yet.

use std::collections::HashSet;
use std::sync::Arc;

use tracing::warn;
use wa_binary::{Jid, Node};
use wa_proto::e2e::{Message, SenderKeyDistributionMessage};
use wa_signal::CiphertextType;
use wa_store::{Batch, SenderKeyMemoryStore};
use wa_types::MessageKey;

use crate::messenger::{Inner, OpenSends, Repo, unix_now};
use crate::send::{
    SENT_SCOPE, Target, emit_own, encrypt_for, fetch_missing, inject_fetched, resolve_sessions,
    send_and_wait,
};
use crate::{Error, MessagePatch, encode_plaintext, stanza};

/// Most participants read from a group metadata reply.
const MAX_PARTICIPANTS: usize = 5000;

/// The group's participants (user JIDs) and addressing mode, from a `w:g2` metadata query
/// (`<iq type=get xmlns=w:g2 to=G><query request=interactive/></iq>`).
pub(crate) async fn group_participants(
    inner: &Inner,
    group: &Jid,
) -> Result<(Vec<Jid>, String), Error> {
    if let Some(groups) = inner.groups.get() {
        let meta = groups.metadata(group).await?;
        let users = meta
            .participants
            .iter()
            .map(|p| p.jid.to_non_ad())
            .take(MAX_PARTICIPANTS)
            .collect();
        return Ok((users, meta.addressing_mode.as_str().to_owned()));
    }
    let q = Node::builder("iq")
        .attr("to", group.clone())
        .attr("type", "get")
        .attr("xmlns", "w:g2")
        .children([Node::builder("query")
            .attr("request", "interactive")
            .build()])
        .build();
    let reply = inner.socket.query(q).await?;
    let g = reply
        .child("group")
        .ok_or_else(|| Error::Malformed("group metadata without <group>"))?;
    let mode = stanza::str_attr(g, "addressing_mode")
        .unwrap_or("pn")
        .to_owned();
    let participants = g
        .children_by_tag("participant")
        .filter_map(|p| stanza::jid_attr(p, "jid"))
        .map(|j| j.to_non_ad())
        .take(MAX_PARTICIPANTS)
        .collect();
    Ok((participants, mode))
}

pub(crate) async fn relay_group(
    inner: &Inner,
    group: &Jid,
    shared: Arc<Message>,
    id: &str,
    options: &crate::RelayOptions,
    bot_copy: Option<&(Jid, Message)>,
) -> Result<MessageKey, Error> {
    let message: &Message = &shared;
    let creds = inner.creds().await?;
    let me = Inner::me(&creds)?;
    let (mut users, mode) = group_participants(inner, group).await?;
    let me_user = me.pn.to_non_ad();
    if !users.contains(&me_user) {
        users.push(me_user);
    }
    let devices = inner.usync.get_devices(&users).await?;
    let mut all: Vec<Jid> = devices
        .into_values()
        .flatten()
        .filter(|d| !(d.same_user(&me.pn) && d.device == me.pn.device))
        .collect();
    all.sort_by_key(ToString::to_string);
    all.dedup();
    let group_s = group.to_string();
    let store = inner.socket.store();
    let mut have: HashSet<String> = store
        .sender_key_devices(&group_s)
        .await?
        .into_iter()
        .collect();
    let current: HashSet<String> = all.iter().map(ToString::to_string).collect();
    // A device that had our sender key is gone (member removed, device unlinked): a new
    // key, distributed to everyone, so it cannot read what follows.
    let rotate = have.iter().any(|d| !current.contains(d));
    if rotate {
        have.clear();
    }
    let mut targets: Vec<Target> = all
        .iter()
        .filter(|d| !have.contains(&d.to_string()))
        .map(|d| Target::new(d.clone(), false))
        .collect();
    {
        // Without committing an open group of sends: this send joins it below.
        let mut guard = inner.crypto.lock().await;
        resolve_sessions(inner, &mut guard, &me, &mut targets).await?;
    }
    let fetched = fetch_missing(inner, &creds, &targets).await?;
    let now = unix_now();
    let key = MessageKey::new(group.clone(), true, id).with_participant(me.pn.to_non_ad());
    // Encrypted into the open group of sends (see `send::encrypt_pairwise`), and
    // committed with the sends that join it meanwhile before the stanza leaves. The sends
    // of one commit leave in any order, and a member that takes in our sender key after
    // a message further along its chain cannot go back to the earlier one. So a send
    // that hands out our sender key takes the lock as other holders do, committing the
    // open group first: two sends of this chat that distribute never share a commit.
    let distributing = rotate || !targets.is_empty();
    // Encoded once for the sender-key copy, the record and the reporting token.
    let encoded = crate::framing::Encoded::new(message);
    let (participants, any_pkmsg, skmsg, joined, distributed) = {
        let mut guard = if distributing {
            inner.crypto_lock().await
        } else {
            inner.crypto.lock().await
        };
        resolve_sessions(inner, &mut guard, &me, &mut targets).await?;
        let open = guard.get_or_insert_with(|| OpenSends::open(inner, &creds));
        inject_fetched(inner, &open.repo, &targets, &fetched).await;
        let fan = sender_key_fan_out(
            &open.repo,
            group,
            &me.pn,
            &targets,
            &encoded,
            rotate,
            inner.config.patch.as_ref(),
        )
        .await?;
        if fan.delivered.len() < targets.len() {
            warn!(
                "{} devices of {group} got no sender key (no session)",
                targets.len() - fan.delivered.len()
            );
        }
        let mut extra = Batch::new();
        extra.put_sent_message(
            SENT_SCOPE,
            id,
            &encoded.sent_record(&crate::key_to_proto(&key), now),
            now as i64,
        );
        crate::addon::stage_secret(&mut extra, group, id, &me.pn, message, now as i64);
        if rotate {
            extra.forget_sender_key_memory(&group_s);
        }
        if !fan.delivered.is_empty() {
            extra.mark_sender_key_sent(&group_s, &fan.delivered);
        }
        let joined = open.join(extra);
        (fan.nodes, fan.any_pkmsg, fan.skmsg, joined, fan.delivered)
    };
    crate::send::committed(inner, joined).await?;
    let bot = match bot_copy {
        Some((bot, copy)) => match crate::bot::encrypt_copy(inner, &creds, &me, bot, copy).await {
            Ok(b) => Some(b),
            Err(e) => {
                not_distributed(inner, group, &distributed).await;
                return Err(e);
            }
        },
        None => None,
    };
    let any_pkmsg = any_pkmsg || bot.as_ref().is_some_and(|b| b.1);
    let mut children = Vec::new();
    if !participants.is_empty() {
        children.push(Node::builder("participants").children(participants).build());
    }
    children.push(stanza::enc_node_for(
        CiphertextType::Skmsg,
        skmsg,
        None,
        Some(message),
    ));
    if any_pkmsg && let Some(account) = creds.account.as_ref() {
        children.push(crate::stanza::device_identity(account));
    }
    children.extend(stanza::meta_node(message));
    children.extend(bot.map(|b| b.0));
    children.extend(crate::reporting::for_send(
        inner,
        &me,
        mode == "lid",
        &encoded,
        id,
        group,
    ));
    drop(encoded);
    let mut stanza = Node::builder("message")
        .attr("id", id.to_owned())
        .attr("to", group.clone())
        .attr("type", stanza::message_type(message))
        .attr_opt("edit", stanza::edit_attr(message))
        .attr("addressing_mode", mode)
        .attr("phash", stanza::participant_hash(&all))
        .children(children)
        .build();
    options.apply(&mut stanza);
    let ack = match send_and_wait(inner, &stanza, id).await {
        Ok(ack) => ack,
        Err(e) => {
            not_distributed(inner, group, &distributed).await;
            return Err(e);
        }
    };
    if let Some(server) = stanza::str_attr(&ack, "phash") {
        // The server's member devices differ from ours: refresh what we know, so the next
        // send distributes our sender key to the devices we missed.
        warn!("participant hash mismatch for {group} (server {server}); refreshing");
        inner.usync.clear_cache();
        if let Some(groups) = inner.groups.get() {
            groups.invalidate(group).await;
        }
    }
    emit_own(inner, &me, key.clone(), shared, now);
    Ok(key)
}

/// After a send whose commit recorded `devices` as holding our sender key for `group`
/// failed before its stanza surely reached the server: the record is taken back, so the
/// next send distributes the key to them again (a second copy is harmless).
async fn not_distributed(inner: &Inner, group: &Jid, devices: &[String]) {
    if devices.is_empty() {
        return;
    }
    let mut undo = Batch::new();
    undo.unmark_sender_key_sent(&group.to_string(), devices);
    if let Err(e) = inner.socket.store().commit(undo).await {
        warn!("sender-key memory of {group} not corrected: {e}");
    }
}

/// What [`sender_key_fan_out`] produced.
pub(crate) struct FanOut {
    /// The `skmsg` ciphertext of the message.
    pub(crate) skmsg: Vec<u8>,
    /// The `<to>` nodes carrying our sender key pairwise.
    pub(crate) nodes: Vec<Node>,
    /// Whether any of them is a `pkmsg`.
    pub(crate) any_pkmsg: bool,
    /// The devices (as the `<to>` nodes name them) that got the sender key.
    pub(crate) delivered: Vec<String>,
}

/// Encrypts `message` with our sender key for `chat` (a new one when `rotate`) and our
/// sender key distribution pairwise for `targets` (those without a session are skipped),
/// each patched by `patch` first.
/// Called under the crypto lock with a staged repository; nothing is committed.
pub(crate) async fn sender_key_fan_out(
    repo: &Repo,
    chat: &Jid,
    me: &Jid,
    targets: &[Target],
    encoded: &crate::framing::Encoded<'_>,
    rotate: bool,
    patch: Option<&MessagePatch>,
) -> Result<FanOut, Error> {
    let chat_s = chat.to_string();
    if rotate {
        repo.rotate_sender_key(&chat_s, me).await?;
    }
    let padded = match patch.and_then(|p| p.apply(encoded.message(), None)) {
        Some(patched) => encode_plaintext(&patched, &mut rand::thread_rng()),
        None => encoded.padded(&mut rand::thread_rng()),
    };
    let enc = repo.encrypt_group_message(&chat_s, me, &padded).await?;
    let skdm_message = Message {
        sender_key_distribution_message: Some(SenderKeyDistributionMessage {
            group_id: Some(chat_s),
            axolotl_sender_key_distribution_message: Some(enc.sender_key_distribution_message),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (nodes, any_pkmsg) = encrypt_for(repo, targets, chat, &skdm_message, patch).await?;
    let delivered = nodes
        .iter()
        .filter_map(|n| stanza::jid_attr(n, "jid"))
        .map(|j| j.to_string())
        .collect();
    Ok(FanOut {
        skmsg: enc.ciphertext,
        nodes,
        any_pkmsg,
        delivered,
    })
}
