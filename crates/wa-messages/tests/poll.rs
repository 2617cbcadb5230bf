//! Poll vote and event response encryption: round trips, an independent derivation of the key (Baileys'
//! HMAC formulation), and rejection of tampered or mis-addressed votes.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use prost::Message as _;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::Sha256;
use wa_binary::Jid;
use wa_messages::{
    Error, MessageKey, SecretContext, decrypt_event_response, decrypt_poll_vote, encrypt_poll_vote,
    event_response_message, poll_option_hash, poll_vote_message,
};
use wa_proto::e2e::event_response_message::EventResponseType;
use wa_proto::e2e::{EventResponseMessage, PollVoteMessage};

const SECRET: [u8; 32] = [7u8; 32];
const POLL_ID: &str = "3EB0C0FFEE0000000001AB";

fn jid(s: &str) -> Jid {
    s.parse().expect("jid parses")
}

fn vote_for(options: &[&str]) -> PollVoteMessage {
    PollVoteMessage {
        selected_options: options
            .iter()
            .map(|o| poll_option_hash(o).to_vec())
            .collect(),
        ..Default::default()
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

#[test]
fn vote_round_trips() {
    let creator = jid("15550000001@s.whatsapp.net");
    let voter = jid("15550000002@s.whatsapp.net");
    let ctx = SecretContext {
        message_id: POLL_ID,
        creator: &creator,
        modifier: &voter,
        message_secret: &SECRET,
    };
    let vote = vote_for(&["pizza", "sushi"]);
    let enc = encrypt_poll_vote(&ctx, &vote, &mut StdRng::seed_from_u64(1)).expect("encrypts");
    assert_eq!(enc.enc_iv.as_ref().map(Vec::len), Some(12));
    let opened = decrypt_poll_vote(&ctx, &enc).expect("decrypts");
    assert_eq!(opened, vote);
    assert_eq!(
        opened.selected_options[0],
        poll_option_hash("pizza").to_vec()
    );
}

#[test]
fn key_and_aad_follow_the_hmac_formulation() {
    // key0 = HMAC(zeros, secret); key = HMAC(key0, id ‖ creator ‖ voter ‖ "Poll Vote" ‖ 0x01);
    // AAD = id ‖ NUL ‖ voter.
    let creator = jid("15550000001@s.whatsapp.net");
    let voter = jid("15550000002@s.whatsapp.net");
    let ctx = SecretContext {
        message_id: POLL_ID,
        creator: &creator,
        modifier: &voter,
        message_secret: &SECRET,
    };
    let vote = vote_for(&["sushi"]);
    let enc = encrypt_poll_vote(&ctx, &vote, &mut StdRng::seed_from_u64(2)).expect("encrypts");

    let key0 = hmac(&[0u8; 32], &[&SECRET]);
    let key = hmac(
        &key0,
        &[
            POLL_ID.as_bytes(),
            b"15550000001@s.whatsapp.net",
            b"15550000002@s.whatsapp.net",
            b"Poll Vote",
            &[1],
        ],
    );
    let aad = format!("{POLL_ID}\0{}", "15550000002@s.whatsapp.net");
    let cipher = Aes256Gcm::new_from_slice(&key).expect("32-byte key");
    let plain = cipher
        .decrypt(
            Nonce::from_slice(enc.enc_iv.as_deref().expect("iv")),
            Payload {
                msg: enc.enc_payload.as_deref().expect("payload"),
                aad: aad.as_bytes(),
            },
        )
        .expect("independent derivation opens the vote");
    assert_eq!(plain, vote.encode_to_vec());
}

#[test]
fn device_parts_are_ignored() {
    let creator = jid("15550000001:4@s.whatsapp.net");
    let voter = jid("15550000002:9@s.whatsapp.net");
    let enc_ctx = SecretContext {
        message_id: POLL_ID,
        creator: &creator,
        modifier: &voter,
        message_secret: &SECRET,
    };
    let enc = encrypt_poll_vote(&enc_ctx, &vote_for(&["a"]), &mut StdRng::seed_from_u64(3))
        .expect("encrypts");
    let creator_plain = jid("15550000001@s.whatsapp.net");
    let voter_plain = jid("15550000002@s.whatsapp.net");
    let dec_ctx = SecretContext {
        creator: &creator_plain,
        modifier: &voter_plain,
        ..enc_ctx
    };
    assert_eq!(
        decrypt_poll_vote(&dec_ctx, &enc).expect("decrypts"),
        vote_for(&["a"])
    );
}

#[test]
fn tampered_or_misaddressed_votes_fail() {
    let creator = jid("15550000001@s.whatsapp.net");
    let voter = jid("15550000002@s.whatsapp.net");
    let other = jid("15550000003@s.whatsapp.net");
    let ctx = SecretContext {
        message_id: POLL_ID,
        creator: &creator,
        modifier: &voter,
        message_secret: &SECRET,
    };
    let enc = encrypt_poll_vote(&ctx, &vote_for(&["pizza"]), &mut StdRng::seed_from_u64(4))
        .expect("encrypts");

    let mut tampered = enc.clone();
    if let Some(p) = tampered.enc_payload.as_mut() {
        p[0] ^= 1;
    }
    assert!(matches!(
        decrypt_poll_vote(&ctx, &tampered),
        Err(Error::SecretPayloadAuth)
    ));

    let mut bad_iv = enc.clone();
    if let Some(iv) = bad_iv.enc_iv.as_mut() {
        iv[11] ^= 0x80;
    }
    assert!(matches!(
        decrypt_poll_vote(&ctx, &bad_iv),
        Err(Error::SecretPayloadAuth)
    ));

    let wrong_voter = SecretContext {
        modifier: &other,
        ..ctx
    };
    assert!(matches!(
        decrypt_poll_vote(&wrong_voter, &enc),
        Err(Error::SecretPayloadAuth)
    ));
    let wrong_poll = SecretContext {
        message_id: "3EB0000000000000000000",
        ..ctx
    };
    assert!(matches!(
        decrypt_poll_vote(&wrong_poll, &enc),
        Err(Error::SecretPayloadAuth)
    ));
    let other_secret = [8u8; 32];
    let wrong_secret = SecretContext {
        message_secret: &other_secret,
        ..ctx
    };
    assert!(matches!(
        decrypt_poll_vote(&wrong_secret, &enc),
        Err(Error::SecretPayloadAuth)
    ));

    let mut short_iv = enc.clone();
    short_iv.enc_iv = Some(vec![0; 8]);
    assert!(matches!(
        decrypt_poll_vote(&ctx, &short_iv),
        Err(Error::MalformedSecretPayload(_))
    ));
    let mut no_payload = enc.clone();
    no_payload.enc_payload = None;
    assert!(matches!(
        decrypt_poll_vote(&ctx, &no_payload),
        Err(Error::MalformedSecretPayload(_))
    ));
    let mut short_payload = enc;
    short_payload.enc_payload = Some(vec![0; 15]);
    assert!(matches!(
        decrypt_poll_vote(&ctx, &short_payload),
        Err(Error::MalformedSecretPayload(_))
    ));
}

#[test]
fn vote_message_points_at_the_poll_and_opens() {
    let creator = jid("15550000001@s.whatsapp.net");
    let voter = jid("15550000002@s.whatsapp.net");
    let group = jid("120363000000000001@g.us");
    let poll_key = MessageKey::new(group, false, POLL_ID).with_participant(creator.clone());
    let ctx = SecretContext {
        message_id: POLL_ID,
        creator: &creator,
        modifier: &voter,
        message_secret: &SECRET,
    };
    let msg = poll_vote_message(
        &poll_key,
        &ctx,
        &["sushi"],
        1_700_000_000_123,
        &mut StdRng::seed_from_u64(5),
    )
    .expect("builds");
    assert!(
        msg.message_context_info.is_none(),
        "votes carry no message secret of their own"
    );
    let update = msg.poll_update_message.expect("a poll update");
    assert_eq!(update.sender_timestamp_ms, Some(1_700_000_000_123));
    let key = update.poll_creation_message_key.expect("key");
    assert_eq!(key.id(), POLL_ID);
    assert_eq!(key.remote_jid(), "120363000000000001@g.us");
    assert_eq!(key.participant(), "15550000001@s.whatsapp.net");
    assert!(!key.from_me());
    let opened = decrypt_poll_vote(&ctx, &update.vote.expect("vote")).expect("decrypts");
    assert_eq!(opened, vote_for(&["sushi"]));
}

#[test]
fn event_responses_use_their_own_label_and_open_independently() {
    // As Baileys' decryptEventResponse: the poll formulation with "Event Response".
    let creator = jid("15550000001@s.whatsapp.net");
    let responder = jid("15550000002:4@s.whatsapp.net");
    let ctx = SecretContext {
        message_id: POLL_ID,
        creator: &creator,
        modifier: &responder,
        message_secret: &SECRET,
    };
    let key = MessageKey::new(creator.clone(), false, POLL_ID);
    let m = event_response_message(
        &key,
        &ctx,
        EventResponseType::NotGoing,
        Some(3),
        1_700_000_000_000,
        &mut StdRng::seed_from_u64(5),
    )
    .expect("encrypts");
    let enc = m.enc_event_response_message.expect("response");
    assert_eq!(
        enc.event_creation_message_key
            .as_ref()
            .and_then(|k| k.id.as_deref()),
        Some(POLL_ID)
    );
    let key0 = hmac(&[0u8; 32], &[&SECRET]);
    let aes = hmac(
        &key0,
        &[
            POLL_ID.as_bytes(),
            b"15550000001@s.whatsapp.net",
            b"15550000002@s.whatsapp.net",
            b"Event Response",
            &[1],
        ],
    );
    let aad = format!("{POLL_ID}\0{}", "15550000002@s.whatsapp.net");
    let plain = Aes256Gcm::new_from_slice(&aes)
        .expect("32-byte key")
        .decrypt(
            Nonce::from_slice(enc.enc_iv.as_deref().expect("iv")),
            Payload {
                msg: enc.enc_payload.as_deref().expect("payload"),
                aad: aad.as_bytes(),
            },
        )
        .expect("independent derivation opens the response");
    let r = EventResponseMessage::decode(plain.as_slice()).expect("decodes");
    assert_eq!(r.response(), EventResponseType::NotGoing);
    assert_eq!(r.extra_guest_count, Some(3));
    assert_eq!(r.timestamp_ms, Some(1_700_000_000_000));
    assert_eq!(decrypt_event_response(&ctx, &enc).expect("opens"), r);

    // The same bytes do not open as a poll vote: the labels keep the uses apart.
    let as_vote = wa_proto::e2e::PollEncValue {
        enc_payload: enc.enc_payload.clone(),
        enc_iv: enc.enc_iv.clone(),
        ..Default::default()
    };
    assert!(matches!(
        decrypt_poll_vote(&ctx, &as_vote),
        Err(Error::SecretPayloadAuth)
    ));
    // Nor under another responder.
    let other = jid("15550000003@s.whatsapp.net");
    let wrong = SecretContext {
        modifier: &other,
        ..ctx
    };
    assert!(matches!(
        decrypt_event_response(&wrong, &enc),
        Err(Error::SecretPayloadAuth)
    ));
}
