//! Bots: an account whose phone number WhatsApp reserves for bots (`1313555xxxx`,
//! `131655500xx`, as [`Jid::is_bot`] knows them) is a bot here. Messages to it are routed
//! like any 1:1 message and its phone (device 0) decrypts them; a stanza invoking a bot
//! inside another chat carries the bot's copy in a `<bot>` child, delivered here to the
//! bot's phone as a message from the invoker. The bot answers with
//! [`Sim::bot_reply`](crate::Sim::bot_reply): its reply, encrypted under the bot
//! message secret of the invoking message (`<enc type="msmsg">`), goes to the companions
//! of everyone in the chat with `<meta target_id target_sender_jid target_chat_jid>`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use prost::Message as _;
use rand_core::{OsRng, RngCore};
use wa_binary::{Jid, Node, Server};
use wa_proto::e2e::{Message, MessageSecretMessage};

use crate::e2e::PhoneMessage;
use crate::error::Error;
use crate::route::{self, Delivery};
use crate::sim::{Shared, fresh_id, unix_now};

/// Most `<to>` children of a `<bot>` node that are delivered.
const MAX_BOT_TARGETS: usize = 8;

/// Delivers the bot's copies a `<message>` from `sender` carries in `<bot><to jid>`: each
/// to the named bot device (only bots, only existing devices), as a message from the
/// sender with the `<to>`'s `<enc>` (and the stanza's `<device-identity>`).
pub(crate) fn route_bot_copies(shared: &Shared, sender: &Jid, node: &Node, id: &str) {
    let Some(bot) = node.child("bot") else {
        return;
    };
    let identity = node.child("device-identity").cloned();
    let ty = route::short_attr(node, "type").unwrap_or(wa_binary::Str::from_static("text"));
    let targets: Vec<(Jid, Vec<Node>)> = {
        let st = shared.state.lock();
        bot.children_by_tag("to")
            .take(MAX_BOT_TARGETS)
            .filter_map(|t| {
                let jid = t.attr_opt::<Jid>("jid").ok().flatten()?;
                let dev = route::resolve_device(&st, &jid)?;
                dev.to_non_ad()
                    .is_bot()
                    .then(|| (dev, t.children().to_vec()))
            })
            .collect()
    };
    let t = wa_binary::Str::decimal(unix_now().into());
    for (dev, mut children) in targets {
        children.extend(identity.clone());
        let stanza = Delivery {
            from: sender,
            participant: None,
            id,
            t: &t,
            ty: &ty,
            edit: None,
            recipient: None,
            addressing_mode: None,
            notify: None,
        }
        .build(children);
        route::deliver(shared, &dev, stanza);
    }
}

/// The bot message secret of a message the bot received: its `botMessageSecret` (an
/// inline invocation), else derived from its `messageSecret` (a message sent to the bot).
fn bot_secret(message: &Message) -> Option<Vec<u8>> {
    let ctx = message.message_context_info.as_ref()?;
    if let Some(s) = ctx.bot_message_secret.as_ref().filter(|s| !s.is_empty()) {
        return Some(s.clone());
    }
    let secret = ctx.message_secret.as_ref().filter(|s| !s.is_empty())?;
    wa_crypto::hkdf_sha256(secret, None, b"Bot Message", 32)
        .ok()
        .map(|k| k.to_vec())
}

/// Seals `reply` for readers of the invocation: AES-256-GCM under HKDF-SHA256(bot secret,
/// info = reply id ‖ invoker ‖ bot), additional data reply id ‖ NUL ‖ bot.
fn seal(
    bot_secret: &[u8],
    reply_id: &str,
    invoker: &Jid,
    bot: &Jid,
    reply: &Message,
) -> Result<MessageSecretMessage, Error> {
    let (invoker, bot) = (invoker.to_non_ad().to_string(), bot.to_non_ad().to_string());
    let info = [reply_id.as_bytes(), invoker.as_bytes(), bot.as_bytes()].concat();
    let key = wa_crypto::hkdf_sha256(bot_secret, None, &info, 32)
        .map_err(|_| Error::Rejected("bot key derivation".into()))?;
    let aad = [reply_id.as_bytes(), b"\0", bot.as_bytes()].concat();
    let cipher =
        Aes256Gcm::new_from_slice(&key).map_err(|_| Error::Rejected("bot key length".into()))?;
    let mut iv = [0u8; 12];
    OsRng.fill_bytes(&mut iv);
    let payload = cipher
        .encrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: &reply.encode_to_vec(),
                aad: &aad,
            },
        )
        .map_err(|_| Error::Rejected("bot reply encryption".into()))?;
    Ok(MessageSecretMessage {
        enc_iv: Some(iv.to_vec()),
        enc_payload: Some(payload),
        ..Default::default()
    })
}

/// See [`Sim::bot_reply`](crate::Sim::bot_reply).
pub(crate) fn bot_reply(
    shared: &Shared,
    bot_phone: &str,
    invocation: &PhoneMessage,
    chat: &Jid,
    reply: &Message,
    part: Option<(&str, &str)>,
) -> Result<String, Error> {
    if !Jid::pn(bot_phone.to_owned()).is_bot() {
        return Err(Error::Rejected("not a bot's phone number".into()));
    }
    // In a chat with the bot's id (`<id>@bot`), the bot answers as that id.
    let bot = if chat.server == Server::Bot {
        if shared
            .state
            .lock()
            .bot_ids
            .get(chat.user.as_str())
            .map(String::as_str)
            != Some(bot_phone)
        {
            return Err(Error::Rejected(format!(
                "{chat} is not the id of {bot_phone}"
            )));
        }
        chat.to_non_ad()
    } else {
        Jid::pn(bot_phone.to_owned())
    };
    let secret = bot_secret(&invocation.message)
        .ok_or_else(|| Error::Rejected("the invocation carries no message secret".into()))?;
    let invoker = invocation.from.to_non_ad();
    let id = format!("BOT{}", fresh_id());
    // A later part of a streamed reply is sealed under the first part's id.
    let sealed_id = part.map_or(id.as_str(), |(_, first)| first);
    let sealed = seal(&secret, sealed_id, &invoker, &bot, reply)?;
    let edit = part.map(|(kind, first)| {
        Node::builder("bot")
            .attr("edit", kind.to_owned())
            .attr("edit_target_id", first.to_owned())
            .build()
    });
    let chat = chat.to_non_ad();
    // (recipient device, the chat as that recipient names it)
    let targets: Vec<(Jid, Option<Jid>)> = {
        let st = shared.state.lock();
        if !st.accounts.contains_key(bot_phone) {
            return Err(Error::UnknownAccount(bot_phone.to_owned()));
        }
        let mut accounts: Vec<(String, Option<Jid>)> = Vec::new();
        if chat.is_group() {
            for m in crate::group::members(&st, &chat).unwrap_or_default() {
                if m != bot_phone {
                    accounts.push((m, Some(chat.clone())));
                }
            }
        } else if chat.same_user(&bot) {
            accounts.push((invoker.user.as_str().to_owned(), None));
        } else {
            let peer = route::resolve_user(&st, &chat)
                .ok_or_else(|| Error::UnknownAccount(chat.user.as_str().to_owned()))?;
            accounts.push((invoker.user.as_str().to_owned(), Some(peer.clone())));
            accounts.push((peer.user.as_str().to_owned(), Some(invoker.clone())));
        }
        accounts
            .into_iter()
            .flat_map(|(phone, named)| {
                route::user_devices(&st, &phone)
                    .into_iter()
                    .filter(|d| d.device != 0)
                    .map(move |d| (d, named.clone()))
            })
            .collect()
    };
    let t = wa_binary::Str::decimal(unix_now().into());
    let enc = Node::builder("enc")
        .attr("v", "2")
        .attr("type", "msmsg")
        .bytes(sealed.encode_to_vec())
        .build();
    for (dev, named) in targets {
        let meta = Node::builder("meta")
            .attr("target_id", invocation.id.clone())
            .attr("target_sender_jid", invoker.clone())
            .attr_opt("target_chat_jid", named)
            .build();
        let stanza = Delivery {
            from: &bot,
            participant: None,
            id: &id,
            t: &t,
            ty: "text",
            edit: None,
            recipient: None,
            addressing_mode: None,
            notify: None,
        }
        .build(
            [enc.clone(), meta]
                .into_iter()
                .chain(edit.clone())
                .collect(),
        );
        route::deliver(shared, &dev, stanza);
    }
    Ok(id)
}
