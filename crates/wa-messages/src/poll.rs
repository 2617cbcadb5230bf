use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use prost::Message as _;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use wa_binary::Jid;
use wa_proto::e2e::{Message, PollEncValue, PollUpdateMessage, PollVoteMessage};
use wa_types::MessageKey;

use crate::Error;
use crate::content::key_to_proto;

/// The use-case label mixed into the key derivation for poll votes.
const POLL_VOTE_LABEL: &[u8] = b"Poll Vote";
/// AES-GCM nonce length used for encrypted poll votes.
const IV_LEN: usize = 12;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// Who and what a poll vote is about; both the voter and every reader derive the same key
/// from it.
#[derive(Clone, Copy, Debug)]
pub struct PollVoteContext<'a> {
    /// The id of the poll creation message.
    pub poll_message_id: &'a str,
    /// The account that created the poll (device part ignored).
    pub poll_creator: &'a Jid,
    /// The account casting the vote (device part ignored).
    pub voter: &'a Jid,
    /// The poll's 32-byte message secret (`messageContextInfo.messageSecret` of the poll).
    pub message_secret: &'a [u8],
}

impl PollVoteContext<'_> {
    /// The AES-256-GCM key and additional data for this vote: HKDF-SHA256 with an empty salt
    /// over the message secret, info = poll id ‖ creator ‖ voter ‖ `"Poll Vote"`; AAD =
    /// poll id ‖ NUL ‖ voter.
    fn key_and_aad(&self) -> Result<(zeroize::Zeroizing<Vec<u8>>, Vec<u8>), Error> {
        let creator = self.poll_creator.to_non_ad().to_string();
        let voter = self.voter.to_non_ad().to_string();
        let mut info = Vec::with_capacity(
            self.poll_message_id.len() + creator.len() + voter.len() + POLL_VOTE_LABEL.len(),
        );
        info.extend_from_slice(self.poll_message_id.as_bytes());
        info.extend_from_slice(creator.as_bytes());
        info.extend_from_slice(voter.as_bytes());
        info.extend_from_slice(POLL_VOTE_LABEL);
        let key = wa_crypto::hkdf_sha256(self.message_secret, None, &info, 32)
            .map_err(|_| Error::MalformedPollVote("key derivation failed"))?;
        let mut aad = Vec::with_capacity(self.poll_message_id.len() + 1 + voter.len());
        aad.extend_from_slice(self.poll_message_id.as_bytes());
        aad.push(0);
        aad.extend_from_slice(voter.as_bytes());
        Ok((key, aad))
    }
}

/// SHA-256 of a poll option's name: votes carry these hashes, not the names.
pub fn poll_option_hash(option_name: &str) -> [u8; 32] {
    Sha256::digest(option_name.as_bytes()).into()
}

/// Encrypts a vote (the hashes of the selected options) for the poll in `ctx`, with a fresh
/// random 12-byte iv.
pub fn encrypt_poll_vote(
    ctx: &PollVoteContext<'_>,
    vote: &PollVoteMessage,
    rng: &mut impl CryptoRngCore,
) -> Result<PollEncValue, Error> {
    let (key, aad) = ctx.key_and_aad()?;
    let cipher =
        Aes256Gcm::new_from_slice(&key).map_err(|_| Error::MalformedPollVote("key length"))?;
    let mut iv = [0u8; IV_LEN];
    rng.fill_bytes(&mut iv);
    let plaintext = vote.encode_to_vec();
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| Error::MalformedPollVote("encryption failed"))?;
    Ok(PollEncValue {
        enc_payload: Some(ciphertext),
        enc_iv: Some(iv.to_vec()),
        ..Default::default()
    })
}

/// Decrypts and authenticates an encrypted vote (`pollUpdateMessage.vote`) for the poll in
/// `ctx`, returning the selected options' hashes.
pub fn decrypt_poll_vote(
    ctx: &PollVoteContext<'_>,
    enc: &PollEncValue,
) -> Result<PollVoteMessage, Error> {
    let payload = enc
        .enc_payload
        .as_deref()
        .ok_or(Error::MalformedPollVote("missing encPayload"))?;
    let iv = enc
        .enc_iv
        .as_deref()
        .ok_or(Error::MalformedPollVote("missing encIv"))?;
    if iv.len() != IV_LEN {
        return Err(Error::MalformedPollVote("encIv is not 12 bytes"));
    }
    if payload.len() < TAG_LEN {
        return Err(Error::MalformedPollVote("encPayload shorter than its tag"));
    }
    let (key, aad) = ctx.key_and_aad()?;
    let cipher =
        Aes256Gcm::new_from_slice(&key).map_err(|_| Error::MalformedPollVote("key length"))?;
    let plaintext = zeroize::Zeroizing::new(
        cipher
            .decrypt(
                Nonce::from_slice(iv),
                Payload {
                    msg: payload,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::PollVoteAuth)?,
    );
    Ok(PollVoteMessage::decode(plaintext.as_slice())?)
}

/// A complete vote message: `pollUpdateMessage` pointing at `poll_key`, with the hashes of
/// `selected_options` encrypted for `ctx`, stamped `sender_timestamp_ms`.
pub fn poll_vote_message<S: AsRef<str>>(
    poll_key: &MessageKey,
    ctx: &PollVoteContext<'_>,
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
        poll_update_message: Some(PollUpdateMessage {
            poll_creation_message_key: Some(key_to_proto(poll_key)),
            vote: Some(enc),
            sender_timestamp_ms: Some(sender_timestamp_ms),
            ..Default::default()
        }),
        ..Default::default()
    })
}
