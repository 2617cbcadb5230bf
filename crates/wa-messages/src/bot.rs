//! Bots (Meta AI and others): what a message to a bot needs, inline invocation of a bot
//! in another chat, and the bots' replies encrypted with a message secret (`msmsg`).
//!
//! A bot is a JID that [`Jid::is_bot`] accepts: a user on the `bot` server, or one of the
//! phone numbers WhatsApp reserves for bots (`1313555xxxx`, `131655500xx`). A message to a
//! bot carries a `messageContextInfo.messageSecret` and `botMetadata` (the persona;
//! [`DEFAULT_BOT_PERSONA_ID`] when the caller set none) and is otherwise sent like any 1:1
//! message. Invoking a bot inside another chat ([`RelayOptions::inline_bot`]) sends the
//! chat its text wrapped as `botInvokeMessage`, and the bot a second copy, keyed with the
//! bot message secret, in a `<bot>` child of the same stanza.
//!
//! [`RelayOptions::inline_bot`]: crate::RelayOptions::inline_bot

use prost::Message as _;
use rand_core::CryptoRngCore;
use wa_binary::{Jid, Node, Server};
use wa_proto::ai_common::BotMetadata;
use wa_proto::e2e::{
    ExtendedTextMessage, FutureProofMessage, Message, MessageContextInfo, MessageSecretMessage,
};
use zeroize::Zeroizing;

use crate::messenger::{Inner, Me};
use crate::recv::Incoming;
use crate::send::{Target, encrypt_pairwise};
use crate::{Error, SecretContext, SecretUse, bot_message_secret, stanza};

/// The persona a message to a bot names when the caller set no `botMetadata` (Meta AI's
/// default persona, as whatsmeow sends it).
pub const DEFAULT_BOT_PERSONA_ID: &str = "867051314767696$760019659443059";

/// The user part of Meta AI's JID on the `bot` server (`867051314767696@bot`).
pub const META_AI_BOT_USER: &str = "867051314767696";

/// Meta AI's JID, `867051314767696@bot`.
pub fn meta_ai_jid() -> Jid {
    Jid::new(META_AI_BOT_USER, Server::Bot)
}

/// Gives a message meant for a bot what the bot needs: a 32-byte message secret (kept
/// when there is one) and `botMetadata` naming [`DEFAULT_BOT_PERSONA_ID`] (kept when
/// set).
pub(crate) fn prepare(message: &mut Message, rng: &mut impl CryptoRngCore) {
    let ctx = message.message_context_info.get_or_insert_default();
    if ctx.message_secret.as_ref().is_none_or(Vec::is_empty) {
        let mut secret = vec![0u8; 32];
        rng.fill_bytes(&mut secret);
        ctx.message_secret = Some(secret);
    }
    ctx.bot_metadata.get_or_insert_with(|| {
        Box::new(BotMetadata {
            persona_id: Some(DEFAULT_BOT_PERSONA_ID.to_owned()),
            ..Default::default()
        })
    });
}

/// Splits a text message that invokes a bot inside a chat into the copy the chat gets
/// and the copy the bot gets (after [`prepare`]):
///
/// - chat: `botInvokeMessage{message{extendedTextMessage, messageContextInfo{botMetadata}}}`
///   with the original `messageContextInfo` (secret, metadata) beside it;
/// - bot: the same `botInvokeMessage`, with `messageContextInfo{botMetadata,
///   botMessageSecret}` (the secret derived with [`bot_message_secret`]) and no message
///   secret of its own.
///
/// A `conversation` is carried as `extendedTextMessage`.
///
/// # Errors
/// [`Error::InlineBotText`] when the message carries no text.
pub(crate) fn inline_invocation(
    mut message: Message,
    rng: &mut impl CryptoRngCore,
) -> Result<(Message, Message), Error> {
    prepare(&mut message, rng);
    let text = match (
        message.extended_text_message.take(),
        message.conversation.take(),
    ) {
        (Some(t), _) => t,
        (None, Some(c)) => Box::new(ExtendedTextMessage {
            text: Some(c),
            ..Default::default()
        }),
        (None, None) => return Err(Error::InlineBotText),
    };
    let ctx = message.message_context_info.take().unwrap_or_default();
    let secret = ctx.message_secret.as_deref().unwrap_or_default();
    let bot_secret = bot_message_secret(secret)?;
    let invoke = Box::new(FutureProofMessage {
        message: Some(Box::new(Message {
            extended_text_message: Some(text),
            message_context_info: Some(Box::new(MessageContextInfo {
                bot_metadata: ctx.bot_metadata.clone(),
                ..Default::default()
            })),
            ..Default::default()
        })),
        ..Default::default()
    });
    let for_bot = Message {
        bot_invoke_message: Some(invoke.clone()),
        message_context_info: Some(Box::new(MessageContextInfo {
            bot_metadata: ctx.bot_metadata.clone(),
            bot_message_secret: Some(bot_secret.to_vec()),
            ..Default::default()
        })),
        ..Default::default()
    };
    let for_chat = Message {
        bot_invoke_message: Some(invoke),
        message_context_info: Some(ctx),
        ..Default::default()
    };
    Ok((for_chat, for_bot))
}

/// The `<bot>` child carrying the bot's copy: `<bot><to jid><enc/></to>..</bot>`.
pub(crate) fn bot_node(participants: Vec<Node>) -> Node {
    Node::builder("bot").children(participants).build()
}

/// Encrypts the bot's copy of an inline invocation for the bot's main device (the bot
/// JID itself, as whatsmeow addresses it; a session is started from its bundle when
/// there is none) and commits the session; returns the `<bot>` child and whether its
/// ciphertext is a `pkmsg`.
///
/// # Errors
/// [`Error::NoDevices`] when the bot cannot be encrypted for (no bundle), and the errors
/// of the key fetch and the commit.
pub(crate) async fn encrypt_copy(
    inner: &Inner,
    creds: &wa_store::AuthCreds,
    me: &Me,
    bot: &Jid,
    copy: &Message,
) -> Result<(Node, bool), Error> {
    let mut targets = vec![Target::new(bot.to_non_ad(), false)];
    let (nodes, pkmsg) = encrypt_pairwise(
        inner,
        creds,
        me,
        &mut targets,
        bot,
        &crate::framing::Encoded::new(copy),
        None,
        wa_store::Batch::new(),
    )
    .await?;
    if nodes.is_empty() {
        return Err(Error::NoDevices(bot.clone()));
    }
    Ok((bot_node(nodes), pkmsg))
}

/// How a bot's message relates to the bot's earlier ones: a reply streamed in parts is a
/// first message and edits of it (`<bot edit="inner|last" edit_target_id>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BotInfo {
    /// The id of the message this one edits, for `inner` and `last` parts.
    pub(crate) edit_target: Option<String>,
    /// Which part it is, with the id it edits.
    pub(crate) edit: Option<wa_types::BotEdit>,
    /// `<meta target_id>`: the message that invoked the bot.
    pub(crate) target_id: Option<String>,
    /// `<meta target_sender_jid>`: who sent that message.
    pub(crate) target_sender: Option<Jid>,
    /// `<meta target_chat_jid>`: the chat it was sent in.
    pub(crate) target_chat: Option<Jid>,
}

/// Longest id accepted from a bot's `<bot>` or `<meta>` attributes.
const MAX_ID: usize = 128;

/// Reads the `<bot>` and `<meta>` children of a message from a bot.
pub(crate) fn bot_info(node: &Node) -> BotInfo {
    let id = |n: &Node, k: &str| {
        stanza::str_attr(n, k)
            .filter(|v| !v.is_empty() && v.len() <= MAX_ID)
            .map(str::to_owned)
    };
    let mut info = BotInfo::default();
    if let Some(b) = node.child("bot") {
        let kind = match stanza::str_attr(b, "edit") {
            Some("inner") => Some(wa_types::BotEditKind::Inner),
            Some("last") => Some(wa_types::BotEditKind::Last),
            _ => None,
        };
        if let Some(kind) = kind {
            info.edit_target = id(b, "edit_target_id");
            info.edit = info
                .edit_target
                .clone()
                .map(|target_id| wa_types::BotEdit { kind, target_id });
        }
    }
    if let Some(m) = node.child("meta") {
        info.target_id = id(m, "target_id");
        info.target_sender = stanza::jid_attr(m, "target_sender_jid").map(|j| j.to_non_ad());
        info.target_chat = stanza::jid_attr(m, "target_chat_jid").map(|j| j.to_non_ad());
    }
    info
}

/// Whether `sender` (a device) is a bot.
pub(crate) fn is_bot_sender(sender: &Jid) -> bool {
    sender.to_non_ad().is_bot()
}

/// The `<enc type="msmsg">` payload of a message from a bot, if it carries one.
pub(crate) fn secret_reply<'a>(node: &'a Node, sender: &Jid) -> Option<&'a [u8]> {
    if !is_bot_sender(sender) {
        return None;
    }
    node.children_by_tag("enc")
        .find(|e| stanza::str_attr(e, "type") == Some("msmsg"))
        .and_then(Node::content_bytes)
}

/// Opens a bot's reply sent as `msmsg`: the secret of the invoking message (`<meta
/// target_id>` by `target_sender_jid`, by default ourselves, in the reply's chat) gives
/// the bot secret, under which the reply (its own id, or the id of the part it edits) is
/// decrypted, trying the phone-number and LID forms of the invoker.
///
/// # Errors
/// [`Error::Malformed`] for a reply without a target or an unreadable payload,
/// [`Error::NoMessageSecret`] when the invoking message's secret is not stored,
/// [`Error::SecretPayloadAuth`] when it does not open.
pub(crate) async fn open_secret_reply(
    inner: &Inner,
    me: &Me,
    info: &Incoming,
    node: &Node,
    payload: &[u8],
) -> Result<Message, Error> {
    let bot = bot_info(node);
    let target = bot
        .target_id
        .as_deref()
        .ok_or_else(|| Error::Malformed("bot reply without <meta target_id>"))?;
    let own = if info.sender.server == Server::Bot {
        me.lid.as_ref().unwrap_or(&me.pn)
    } else {
        &me.pn
    };
    let invoker = bot.target_sender.unwrap_or_else(|| own.to_non_ad());
    let sealed = MessageSecretMessage::decode(payload)?;
    let (stored, secret) =
        crate::addon::find_secret(inner, me, &info.chat, target, &invoker).await?;
    let bot_secret: Zeroizing<[u8; 32]> = bot_message_secret(secret.as_slice())?;
    let reply_id = bot.edit_target.as_deref().unwrap_or(&info.id);
    let sender = info.sender.to_non_ad();
    for creator in crate::addon::forms(inner, me, &stored).await {
        let ctx = SecretContext {
            message_id: reply_id,
            creator: &creator,
            modifier: &sender,
            message_secret: bot_secret.as_slice(),
        };
        match ctx.decrypt(
            SecretUse::BotReply,
            sealed.enc_payload.as_deref(),
            sealed.enc_iv.as_deref(),
        ) {
            Ok(plain) => return Ok(Message::decode(plain.as_slice())?),
            Err(Error::SecretPayloadAuth) => {}
            Err(e) => return Err(e),
        }
    }
    Err(Error::SecretPayloadAuth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn ctx(m: &Message) -> &MessageContextInfo {
        m.message_context_info.as_ref().unwrap()
    }

    #[test]
    fn a_message_for_a_bot_gets_a_secret_and_the_default_persona() {
        let mut m = Message {
            conversation: Some("hi".into()),
            ..Default::default()
        };
        prepare(&mut m, &mut OsRng);
        assert_eq!(ctx(&m).message_secret.as_ref().map(Vec::len), Some(32));
        assert_eq!(
            ctx(&m)
                .bot_metadata
                .as_ref()
                .and_then(|b| b.persona_id.as_deref()),
            Some(DEFAULT_BOT_PERSONA_ID)
        );
        // What the caller set is kept.
        let mut m = Message {
            message_context_info: Some(Box::new(MessageContextInfo {
                message_secret: Some(vec![5; 32]),
                bot_metadata: Some(Box::new(BotMetadata {
                    persona_id: Some("mine".into()),
                    ..Default::default()
                })),
                ..Default::default()
            })),
            ..Default::default()
        };
        prepare(&mut m, &mut OsRng);
        assert_eq!(ctx(&m).message_secret.as_deref(), Some(&[5u8; 32][..]));
        assert_eq!(
            ctx(&m).bot_metadata.as_ref().unwrap().persona_id.as_deref(),
            Some("mine")
        );
    }

    #[test]
    fn inline_invocation_wraps_the_text_and_keys_the_bot_copy() {
        let m = Message {
            extended_text_message: Some(Box::new(ExtendedTextMessage {
                text: Some("@Meta AI what is a JID?".into()),
                ..Default::default()
            })),
            message_context_info: Some(Box::new(MessageContextInfo {
                message_secret: Some((0u8..32).collect()),
                ..Default::default()
            })),
            ..Default::default()
        };
        let (chat, bot) = inline_invocation(m, &mut OsRng).unwrap();
        assert!(chat.extended_text_message.is_none());
        let invoked = chat
            .bot_invoke_message
            .as_ref()
            .and_then(|f| f.message.as_deref())
            .unwrap();
        assert_eq!(
            invoked
                .extended_text_message
                .as_ref()
                .and_then(|t| t.text.as_deref()),
            Some("@Meta AI what is a JID?")
        );
        let persona =
            |c: &MessageContextInfo| c.bot_metadata.as_ref().and_then(|b| b.persona_id.clone());
        assert_eq!(
            persona(ctx(invoked)).as_deref(),
            Some(DEFAULT_BOT_PERSONA_ID)
        );
        assert!(ctx(invoked).message_secret.is_none());
        // The chat keeps the secret; the bot gets the derived one instead.
        assert_eq!(
            ctx(&chat).message_secret.as_deref(),
            Some(&(0u8..32).collect::<Vec<_>>()[..])
        );
        assert_eq!(persona(ctx(&chat)).as_deref(), Some(DEFAULT_BOT_PERSONA_ID));
        assert_eq!(bot.bot_invoke_message, chat.bot_invoke_message);
        assert!(ctx(&bot).message_secret.is_none());
        assert_eq!(
            ctx(&bot).bot_message_secret.as_deref(),
            Some(
                bot_message_secret(&(0u8..32).collect::<Vec<_>>())
                    .unwrap()
                    .as_slice()
            )
        );
        assert_eq!(persona(ctx(&bot)).as_deref(), Some(DEFAULT_BOT_PERSONA_ID));

        // A conversation is carried as extended text; other content is refused.
        let (chat, _) = inline_invocation(
            Message {
                conversation: Some("plain".into()),
                ..Default::default()
            },
            &mut OsRng,
        )
        .unwrap();
        let invoked = chat.bot_invoke_message.unwrap().message.unwrap();
        assert_eq!(
            invoked.extended_text_message.unwrap().text.as_deref(),
            Some("plain")
        );
        assert!(matches!(
            inline_invocation(Message::default(), &mut OsRng),
            Err(Error::InlineBotText)
        ));
    }

    #[test]
    fn bot_and_meta_children_are_read_within_bounds() {
        let node = Node::builder("message")
            .children([
                Node::builder("bot")
                    .attr("edit", "inner")
                    .attr("edit_target_id", "FIRST")
                    .build(),
                Node::builder("meta")
                    .attr("target_id", "INVOKE")
                    .attr("target_sender_jid", Jid::with_device("1555", Server::Pn, 3))
                    .attr("target_chat_jid", Jid::group("1203"))
                    .build(),
            ])
            .build();
        let info = bot_info(&node);
        assert_eq!(info.edit_target.as_deref(), Some("FIRST"));
        assert_eq!(
            info.edit,
            Some(wa_types::BotEdit {
                kind: wa_types::BotEditKind::Inner,
                target_id: "FIRST".into()
            })
        );
        assert_eq!(info.target_id.as_deref(), Some("INVOKE"));
        assert_eq!(info.target_sender, Some(Jid::pn("1555")));
        assert_eq!(info.target_chat, Some(Jid::group("1203")));
        // A first part names no edit target; hostile values are dropped.
        let node = Node::builder("message")
            .children([
                Node::builder("bot")
                    .attr("edit", "first")
                    .attr("edit_target_id", "X")
                    .build(),
                Node::builder("meta")
                    .attr("target_id", "x".repeat(10_000))
                    .attr("target_chat_jid", "not a jid")
                    .build(),
            ])
            .build();
        assert_eq!(bot_info(&node), BotInfo::default());
        assert_eq!(
            bot_info(&Node::builder("message").build()),
            BotInfo::default()
        );
    }

    #[test]
    fn only_bots_send_secret_replies() {
        let node = Node::builder("message")
            .children([Node::builder("enc")
                .attr("type", "msmsg")
                .attr("v", "2")
                .bytes(vec![1, 2, 3])
                .build()])
            .build();
        assert_eq!(
            secret_reply(&node, &Jid::pn("13135550002")),
            Some(&[1u8, 2, 3][..])
        );
        assert_eq!(secret_reply(&node, &meta_ai_jid()), Some(&[1u8, 2, 3][..]));
        assert_eq!(secret_reply(&node, &Jid::pn("15550000001")), None);
    }
}
