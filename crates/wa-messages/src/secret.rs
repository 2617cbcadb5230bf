//! Add-ons encrypted with a message's secret: poll votes, event responses, and encrypted
//! reactions and comments.
//!
//! A message that can collect such add-ons carries a random 32-byte
//! `messageContextInfo.messageSecret`. Everyone who received it derives, for one add-on,
//! an AES-256-GCM key with HKDF-SHA256 (empty salt) over that secret, info = target id ‖
//! target creator ‖ add-on sender ‖ use-case label, and encrypts the add-on's protobuf;
//! poll votes and event responses are bound to additional data target id ‖ NUL ‖ add-on
//! sender, the other uses (reactions, comments, edits) have none.
//!
//! Bots use the same scheme one step removed: a message meant for a bot gives it the
//! *bot message secret*, HKDF-SHA256 over the message secret with the label
//! `"Bot Message"` ([`bot_message_secret`]), and a bot's reply sent as `<enc
//! type="msmsg">` is encrypted under that secret with an empty label, bound to the reply's
//! sender ([`SecretUse::BotReply`]).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use prost::Message as _;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use wa_binary::Jid;
use wa_proto::e2e::{
    EncEventResponseMessage, EventResponseMessage, Message, PollEncValue, PollUpdateMessage,
    PollVoteMessage, event_response_message::EventResponseType,
    secret_encrypted_message::SecretEncType,
};
use wa_types::MessageKey;
use zeroize::Zeroizing;

use crate::Error;
use crate::content::key_to_proto;

/// AES-GCM nonce length of an encrypted add-on.
const IV_LEN: usize = 12;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// What an add-on encrypted with a message secret is; each has its own label in the key
/// derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretUse {
    /// A vote on a poll (`pollUpdateMessage`).
    PollVote,
    /// A response to an event (`encEventResponseMessage`).
    EventResponse,
    /// A reaction encrypted for its target's readers (`encReactionMessage`).
    Reaction,
    /// A comment on a message (`encCommentMessage`).
    Comment,
    /// An edit of an event (`secretEncryptedMessage` of type `EVENT_EDIT`).
    EventEdit,
    /// An edit of a poll, or an option added to it (`secretEncryptedMessage` of type
    /// `POLL_EDIT` or `POLL_ADD_OPTION`: both use the same key).
    PollEdit,
    /// An edit of a message (`secretEncryptedMessage` of type `MESSAGE_EDIT`).
    MessageEdit,
    /// A bot's reply delivered as `<enc type="msmsg">` (a `MessageSecretMessage`): the
    /// context's `message_id` is the reply's id (or the id of the reply it edits),
    /// `creator` the account that invoked the bot, `modifier` the bot, and
    /// `message_secret` the [`bot_message_secret`] of the invoking message. The label is
    /// empty and the reply is bound to its sender as additional data.
    BotReply,
}

impl SecretUse {
    fn label(self) -> &'static [u8] {
        match self {
            Self::PollVote => b"Poll Vote",
            Self::EventResponse => b"Event Response",
            Self::Reaction => b"Enc Reaction",
            Self::Comment => b"Enc Comment",
            Self::EventEdit => b"Event Edit",
            Self::PollEdit => b"Poll Edit",
            Self::MessageEdit => b"Message Edit",
            Self::BotReply => b"",
        }
    }

    /// Whether the ciphertext is bound to the target id and the add-on's sender as
    /// additional data (only votes and event responses are).
    fn binds_sender(self) -> bool {
        matches!(self, Self::PollVote | Self::EventResponse | Self::BotReply)
    }

    /// The use a `secretEncryptedMessage` of type `kind` is encrypted for, if known.
    pub fn of_secret_kind(kind: SecretEncType) -> Option<Self> {
        match kind {
            SecretEncType::EventEdit => Some(Self::EventEdit),
            SecretEncType::PollEdit | SecretEncType::PollAddOption => Some(Self::PollEdit),
            SecretEncType::MessageEdit => Some(Self::MessageEdit),
            _ => None,
        }
    }
}

/// Who and what an add-on is about; the add-on's sender and every reader derive the same
/// key from it.
#[derive(Clone, Copy, Debug)]
pub struct SecretContext<'a> {
    /// The id of the message the add-on belongs to (the poll, the event, ...).
    pub message_id: &'a str,
    /// The account that sent that message (device part ignored).
    pub creator: &'a Jid,
    /// The account sending the add-on: the voter, the responder, ... (device part
    /// ignored).
    pub modifier: &'a Jid,
    /// That message's 32-byte secret (its `messageContextInfo.messageSecret`).
    pub message_secret: &'a [u8],
}

impl SecretContext<'_> {
    /// The AES-256-GCM key and additional data (empty for the uses that have none) for
    /// one add-on of kind `usage`.
    fn key_and_aad(&self, usage: SecretUse) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), Error> {
        let creator = self.creator.to_non_ad().to_string();
        let modifier = self.modifier.to_non_ad().to_string();
        let label = usage.label();
        let mut info = Vec::with_capacity(
            self.message_id.len() + creator.len() + modifier.len() + label.len(),
        );
        info.extend_from_slice(self.message_id.as_bytes());
        info.extend_from_slice(creator.as_bytes());
        info.extend_from_slice(modifier.as_bytes());
        info.extend_from_slice(label);
        let key = wa_crypto::hkdf_sha256(self.message_secret, None, &info, 32)
            .map_err(|_| Error::MalformedSecretPayload("key derivation failed"))?;
        let mut aad = Vec::new();
        if usage.binds_sender() {
            aad.reserve(self.message_id.len() + 1 + modifier.len());
            aad.extend_from_slice(self.message_id.as_bytes());
            aad.push(0);
            aad.extend_from_slice(modifier.as_bytes());
        }
        Ok((key, aad))
    }

    /// Encrypts `plaintext` as an add-on of kind `usage`, with a fresh random iv; returns
    /// the ciphertext (with its tag) and the iv.
    pub fn encrypt(
        &self,
        usage: SecretUse,
        plaintext: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Vec<u8>, [u8; IV_LEN]), Error> {
        let (key, aad) = self.key_and_aad(usage)?;
        let cipher = Aes256Gcm::new_from_slice(&key)
            .map_err(|_| Error::MalformedSecretPayload("key length"))?;
        let mut iv = [0u8; IV_LEN];
        rng.fill_bytes(&mut iv);
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&iv),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::MalformedSecretPayload("encryption failed"))?;
        Ok((ciphertext, iv))
    }

    /// Decrypts and authenticates an add-on of kind `usage` (`payload` with its tag).
    ///
    /// # Errors
    /// [`Error::MalformedSecretPayload`] for a missing or misshapen payload or iv,
    /// [`Error::SecretPayloadAuth`] when it does not authenticate under this context.
    pub fn decrypt(
        &self,
        usage: SecretUse,
        payload: Option<&[u8]>,
        iv: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let payload = payload.ok_or_else(|| Error::MalformedSecretPayload("missing encPayload"))?;
        let iv = iv.ok_or_else(|| Error::MalformedSecretPayload("missing encIv"))?;
        if iv.len() != IV_LEN {
            return Err(Error::MalformedSecretPayload("encIv is not 12 bytes"));
        }
        if payload.len() < TAG_LEN {
            return Err(Error::MalformedSecretPayload(
                "encPayload shorter than its tag",
            ));
        }
        let (key, aad) = self.key_and_aad(usage)?;
        let cipher = Aes256Gcm::new_from_slice(&key)
            .map_err(|_| Error::MalformedSecretPayload("key length"))?;
        cipher
            .decrypt(
                Nonce::from_slice(iv),
                Payload {
                    msg: payload,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::SecretPayloadAuth)
    }
}

/// The secret a bot gets for a message (`messageContextInfo.botMessageSecret`):
/// HKDF-SHA256 over the message's 32-byte `messageSecret`, no salt, info `"Bot Message"`,
/// 32 bytes. A bot's encrypted replies (`msmsg`) are keyed from it ([`SecretUse::BotReply`]).
///
/// # Errors
/// [`Error::MalformedSecretPayload`] when the secret is empty.
pub fn bot_message_secret(message_secret: &[u8]) -> Result<Zeroizing<[u8; 32]>, Error> {
    if message_secret.is_empty() {
        return Err(Error::MalformedSecretPayload("empty message secret"));
    }
    let mut out = Zeroizing::new([0u8; 32]);
    wa_crypto::hkdf_sha256_into(message_secret, None, b"Bot Message", out.as_mut_slice())
        .map_err(|_| Error::MalformedSecretPayload("key derivation failed"))?;
    Ok(out)
}

/// SHA-256 of a poll option's name: votes carry these hashes, not the names.
pub fn poll_option_hash(option_name: &str) -> [u8; 32] {
    Sha256::digest(option_name.as_bytes()).into()
}

/// Encrypts a vote (the hashes of the selected options) for the poll in `ctx` (the poll's
/// id, creator and secret; the voter as modifier), with a fresh random 12-byte iv.
pub fn encrypt_poll_vote(
    ctx: &SecretContext<'_>,
    vote: &PollVoteMessage,
    rng: &mut impl CryptoRngCore,
) -> Result<PollEncValue, Error> {
    let (ciphertext, iv) = ctx.encrypt(SecretUse::PollVote, &vote.encode_to_vec(), rng)?;
    Ok(PollEncValue {
        enc_payload: Some(ciphertext),
        enc_iv: Some(iv.to_vec()),
        ..Default::default()
    })
}

/// Decrypts and authenticates an encrypted vote (`pollUpdateMessage.vote`) for the poll in
/// `ctx`, returning the selected options' hashes.
pub fn decrypt_poll_vote(
    ctx: &SecretContext<'_>,
    enc: &PollEncValue,
) -> Result<PollVoteMessage, Error> {
    let plaintext = ctx.decrypt(
        SecretUse::PollVote,
        enc.enc_payload.as_deref(),
        enc.enc_iv.as_deref(),
    )?;
    Ok(PollVoteMessage::decode(plaintext.as_slice())?)
}

/// A complete vote message: `pollUpdateMessage` pointing at `poll_key`, with the hashes of
/// `selected_options` encrypted for `ctx`, stamped `sender_timestamp_ms`.
pub fn poll_vote_message<S: AsRef<str>>(
    poll_key: &MessageKey,
    ctx: &SecretContext<'_>,
    selected_options: &[S],
    sender_timestamp_ms: i64,
    rng: &mut impl CryptoRngCore,
) -> Result<Message, Error> {
    let vote = PollVoteMessage {
        selected_options: selected_options
            .iter()
            .map(|o| poll_option_hash(o.as_ref()).to_vec())
            .collect(),
        ..Default::default()
    };
    let enc = encrypt_poll_vote(ctx, &vote, rng)?;
    Ok(Message {
        poll_update_message: Some(Box::new(PollUpdateMessage {
            poll_creation_message_key: Some(key_to_proto(poll_key)),
            vote: Some(enc),
            sender_timestamp_ms: Some(sender_timestamp_ms),
            ..Default::default()
        })),
        ..Default::default()
    })
}

/// A complete event response (`encEventResponseMessage`, Baileys' and WhatsApp's answer to
/// an event invitation) pointing at `event_key`, encrypted for `ctx` (the event's id,
/// creator and secret; the responder as modifier). `extra_guests` is how many people come
/// along, where the event allows guests.
pub fn event_response_message(
    event_key: &MessageKey,
    ctx: &SecretContext<'_>,
    response: EventResponseType,
    extra_guests: Option<u32>,
    timestamp_ms: i64,
    rng: &mut impl CryptoRngCore,
) -> Result<Message, Error> {
    let plain = EventResponseMessage {
        response: Some(response as i32),
        timestamp_ms: Some(timestamp_ms),
        extra_guest_count: extra_guests.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
        ..Default::default()
    };
    let (ciphertext, iv) = ctx.encrypt(SecretUse::EventResponse, &plain.encode_to_vec(), rng)?;
    Ok(Message {
        enc_event_response_message: Some(Box::new(EncEventResponseMessage {
            event_creation_message_key: Some(key_to_proto(event_key)),
            enc_payload: Some(ciphertext),
            enc_iv: Some(iv.to_vec()),
            ..Default::default()
        })),
        ..Default::default()
    })
}

/// Decrypts an `encEventResponseMessage` for the event in `ctx`.
pub fn decrypt_event_response(
    ctx: &SecretContext<'_>,
    enc: &EncEventResponseMessage,
) -> Result<EventResponseMessage, Error> {
    let plaintext = ctx.decrypt(
        SecretUse::EventResponse,
        enc.enc_payload.as_deref(),
        enc.enc_iv.as_deref(),
    )?;
    Ok(EventResponseMessage::decode(plaintext.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Ciphertexts computed outside this crate (HKDF-SHA256 and AES-256-GCM of a
    /// standard library) by the scheme whatsmeow uses: for reactions and edits the key's
    /// info names the target and both senders, and there is no additional data.
    #[test]
    fn reactions_and_edits_open_without_additional_data() {
        let secret: Vec<u8> = (0u8..32).collect();
        let creator = Jid::pn("15550000001");
        let modifier = Jid::with_device("15550000002", wa_binary::Server::Pn, 3);
        let ctx = SecretContext {
            message_id: "3EB0AABBCCDD",
            creator: &creator,
            modifier: &modifier,
            message_secret: &secret,
        };
        let iv = [7u8; 12];
        let cases = [
            (
                SecretUse::Reaction,
                "69d5c0ba9ca260a7dc09f40987bc7a077c122f2eedab512290d91448d450",
                &b"reaction bytes"[..],
            ),
            (
                SecretUse::MessageEdit,
                "1bd51d6a7f118ac0701bd0a49b8f29e9f347fe3e07265421096c184badc9",
                &b"edited message"[..],
            ),
        ];
        for (usage, ciphertext, plain) in cases {
            let got = ctx
                .decrypt(usage, Some(&hex(ciphertext)), Some(&iv))
                .unwrap();
            assert_eq!(got.as_slice(), plain, "{usage:?}");
        }
        // Under the label of another use the same ciphertext does not open.
        assert!(matches!(
            ctx.decrypt(SecretUse::Comment, Some(&hex(cases[0].1)), Some(&iv)),
            Err(Error::SecretPayloadAuth)
        ));
    }

    /// Computed outside this crate (Python's `hmac`/`hashlib` HKDF-SHA256 and the
    /// `cryptography` package's AES-256-GCM) from the scheme whatsmeow's `msgsecret.go`
    /// uses: the bot secret is HKDF(message secret, no salt, "Bot Message", 32); a bot
    /// reply's key is HKDF(bot secret, no salt, reply id ‖ invoker ‖ bot, 32) with
    /// additional data reply id ‖ NUL ‖ bot.
    #[test]
    fn bot_message_secret_and_bot_reply_known_answers() {
        let secret: Vec<u8> = (0u8..32).collect();
        let bot_secret = bot_message_secret(&secret).unwrap();
        assert_eq!(
            bot_secret.as_slice(),
            hex("d1cbc04433bd046eb826f6c5bddee57b838b803f6577239a4d67676df1207839")
        );
        let (invoker, bot) = (Jid::pn("15550000001"), Jid::pn("13135550002"));
        let ctx = SecretContext {
            message_id: "BOTREPLY01",
            creator: &invoker,
            modifier: &bot,
            message_secret: bot_secret.as_slice(),
        };
        let (key, aad) = ctx.key_and_aad(SecretUse::BotReply).unwrap();
        assert_eq!(
            key.as_slice(),
            hex("57601fd5cfcd5e3bcad2d7b52ae959d3769e3ce9b08ace3603b44db841a53759")
        );
        assert_eq!(aad, b"BOTREPLY01\x0013135550002@s.whatsapp.net");
        let ciphertext = hex("e96bfb70221eac77d21c3eafe2d5f9b139f02606582431");
        let plain = ctx
            .decrypt(SecretUse::BotReply, Some(&ciphertext), Some(&[7u8; 12]))
            .unwrap();
        let reply = Message::decode(plain.as_slice()).unwrap();
        assert_eq!(reply.conversation.as_deref(), Some("hello"));
        // Keyed from the message secret itself (not the bot secret) it does not open.
        let wrong = SecretContext {
            message_secret: &secret,
            ..ctx
        };
        assert!(matches!(
            wrong.decrypt(SecretUse::BotReply, Some(&ciphertext), Some(&[7u8; 12])),
            Err(Error::SecretPayloadAuth)
        ));
        assert!(bot_message_secret(&[]).is_err());
    }

    #[test]
    fn votes_are_bound_to_their_sender_and_edits_are_not() {
        let secret = [9u8; 32];
        let (creator, voter) = (Jid::pn("15550000001"), Jid::pn("15550000002"));
        let ctx = SecretContext {
            message_id: "ID",
            creator: &creator,
            modifier: &voter,
            message_secret: &secret,
        };
        for usage in [SecretUse::PollVote, SecretUse::EventResponse] {
            let (_, aad) = ctx.key_and_aad(usage).unwrap();
            assert_eq!(aad, b"ID\x0015550000002@s.whatsapp.net");
        }
        for usage in [
            SecretUse::Reaction,
            SecretUse::Comment,
            SecretUse::EventEdit,
            SecretUse::PollEdit,
            SecretUse::MessageEdit,
        ] {
            assert!(ctx.key_and_aad(usage).unwrap().1.is_empty(), "{usage:?}");
        }
        assert_eq!(
            SecretUse::of_secret_kind(SecretEncType::PollAddOption),
            Some(SecretUse::PollEdit)
        );
        assert_eq!(
            SecretUse::of_secret_kind(SecretEncType::MessageSchedule),
            None
        );
    }
}
