//! Media re-upload requests (Baileys' `updateMediaMessage`): when the server no longer
//! has a blob, a `<receipt type="server-error">` carrying an encrypted
//! `ServerErrorReceipt` asks the account's phone to upload it again; the phone answers
//! with `<notification type="mediaretry">` carrying an encrypted `MediaRetryNotification`
//! with the new direct path. Both payloads are AES-256-GCM under
//! HKDF(mediaKey, info "WhatsApp Media Retry Notification"), with the message id as the
//! associated data.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use prost::Message as _;
use rand::RngCore;
use wa_binary::{Jid, Node};
use wa_proto::mms_retry::media_retry_notification::ResultType;
use wa_proto::mms_retry::{MediaRetryNotification, ServerErrorReceipt};
use zeroize::Zeroizing;

use crate::Error;

/// HKDF info of the media-retry key.
pub const MEDIA_RETRY_INFO: &str = "WhatsApp Media Retry Notification";

/// Largest encrypted retry payload accepted from the network.
const MAX_RETRY_PAYLOAD: usize = 64 * 1024;

/// The message whose media should be uploaded again, as its key names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryTarget {
    /// The message id.
    pub id: String,
    /// The chat the message is in.
    pub chat: Jid,
    /// Whether this account sent it.
    pub from_me: bool,
    /// The author, in a group.
    pub participant: Option<Jid>,
}

/// The media-retry key for a media key.
pub fn media_retry_key(media_key: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // invariant: 32 bytes is far below HKDF's output limit, so this cannot fail.
    if let Ok(k) = wa_crypto::hkdf_sha256(media_key, None, MEDIA_RETRY_INFO.as_bytes(), 32) {
        out.copy_from_slice(&k);
    }
    out
}

fn cipher(media_key: &[u8; 32]) -> Aes256Gcm {
    let key = media_retry_key(media_key);
    Aes256Gcm::new(key.as_ref().into())
}

/// Encrypts `plain` for a retry exchange about message `id`; returns (ciphertext, iv).
pub fn encrypt_retry_payload(media_key: &[u8; 32], id: &str, plain: &[u8]) -> (Vec<u8>, [u8; 12]) {
    let mut iv = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut iv);
    let ct = cipher(media_key)
        .encrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: plain,
                aad: id.as_bytes(),
            },
        )
        .unwrap_or_default();
    (ct, iv)
}

/// Decrypts a retry payload about message `id`.
///
/// # Errors
/// [`Error::RetryDecrypt`] when the iv is not 12 bytes, the payload is too large, or it
/// does not authenticate.
pub fn decrypt_retry_payload(
    media_key: &[u8; 32],
    id: &str,
    ciphertext: &[u8],
    iv: &[u8],
) -> Result<Vec<u8>, Error> {
    if iv.len() != 12 || ciphertext.len() > MAX_RETRY_PAYLOAD {
        return Err(Error::RetryDecrypt);
    }
    cipher(media_key)
        .decrypt(
            Nonce::from_slice(iv),
            Payload {
                msg: ciphertext,
                aad: id.as_bytes(),
            },
        )
        .map_err(|_| Error::RetryDecrypt)
}

/// The `<receipt type="server-error">` asking the phone (of `own`, our account) to upload
/// the media of `target` again.
pub fn media_retry_request(target: &RetryTarget, media_key: &[u8; 32], own: &Jid) -> Node {
    let receipt = ServerErrorReceipt {
        stanza_id: Some(target.id.clone()),
        ..Default::default()
    };
    let (ct, iv) = encrypt_retry_payload(media_key, &target.id, &receipt.encode_to_vec());
    Node::builder("receipt")
        .attr("id", target.id.clone())
        .attr("to", own.to_non_ad())
        .attr("type", "server-error")
        .children([
            Node::builder("encrypt")
                .children([
                    Node::builder("enc_p").bytes(ct).build(),
                    Node::builder("enc_iv").bytes(iv.to_vec()).build(),
                ])
                .build(),
            Node::builder("rmr")
                .attr("jid", target.chat.clone())
                .attr("from_me", if target.from_me { "true" } else { "false" })
                .attr_opt("participant", target.participant.clone())
                .build(),
        ])
        .build()
}

/// The `<receipt type="server-error" category="peer">` asking the phone (of `own`, our
/// account) to upload again the history-sync blob that notification message `id`
/// announced with `media_key` (whatsmeow's `SendHistorySyncServerErrorReceipt`): the same
/// encrypted `ServerErrorReceipt` as [`media_retry_request`], without `<rmr>`. The phone
/// answers with a new history-sync notification.
pub fn history_reupload_request(id: &str, media_key: &[u8; 32], own: &Jid) -> Node {
    let receipt = ServerErrorReceipt {
        stanza_id: Some(id.to_owned()),
        ..Default::default()
    };
    let (ct, iv) = encrypt_retry_payload(media_key, id, &receipt.encode_to_vec());
    Node::builder("receipt")
        .attr("id", id.to_owned())
        .attr("to", own.to_non_ad())
        .attr("type", "server-error")
        .attr("category", "peer")
        .children([Node::builder("encrypt")
            .children([
                Node::builder("enc_p").bytes(ct).build(),
                Node::builder("enc_iv").bytes(iv.to_vec()).build(),
            ])
            .build()])
        .build()
}

/// Reads a `<notification type="mediaretry">` for message `id`: the new direct path.
///
/// # Errors
/// [`Error::RetryFailed`] with the phone's result code (an `<error code>` child or a
/// non-success result), [`Error::RetryDecrypt`], [`Error::InvalidMessage`] when the
/// payload is missing or names another message.
pub fn read_media_retry(node: &Node, media_key: &[u8; 32], id: &str) -> Result<String, Error> {
    if let Some(e) = node.child("error") {
        let code = e.attr_opt::<i32>("code").ok().flatten().unwrap_or(0);
        return Err(Error::RetryFailed(code));
    }
    let enc = node
        .child("encrypt")
        .ok_or_else(|| Error::InvalidMessage("media retry without <encrypt>"))?;
    let ct = enc
        .child("enc_p")
        .and_then(Node::content_bytes)
        .ok_or_else(|| Error::InvalidMessage("media retry without enc_p"))?;
    let iv = enc
        .child("enc_iv")
        .and_then(Node::content_bytes)
        .ok_or_else(|| Error::InvalidMessage("media retry without enc_iv"))?;
    let plain = decrypt_retry_payload(media_key, id, ct, iv)?;
    let n = MediaRetryNotification::decode(&plain[..])
        .map_err(|_| Error::InvalidMessage("undecodable MediaRetryNotification"))?;
    if n.stanza_id.as_deref().is_some_and(|s| s != id) {
        return Err(Error::InvalidMessage("media retry names another message"));
    }
    let result = n.result.unwrap_or(ResultType::GeneralError as i32);
    if result != ResultType::Success as i32 {
        return Err(Error::RetryFailed(result));
    }
    n.direct_path
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::InvalidMessage("media retry without a direct path"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a notification carries, reading it never panics and never succeeds
        /// without the right key.
        #[test]
        fn hostile_notifications_are_refused(
            ct in proptest::collection::vec(any::<u8>(), 0..256),
            iv in proptest::collection::vec(any::<u8>(), 0..20),
            code in proptest::option::of(any::<i32>()),
        ) {
            let mut children = vec![Node::builder("encrypt")
                .children([
                    Node::builder("enc_p").bytes(ct).build(),
                    Node::builder("enc_iv").bytes(iv).build(),
                ])
                .build()];
            if let Some(c) = code {
                children.push(Node::builder("error").attr("code", c.to_string()).build());
            }
            let node = Node::builder("notification").children(children).build();
            prop_assert!(read_media_retry(&node, &[1; 32], "ID").is_err());
        }
    }

    #[test]
    fn a_history_reupload_request_is_a_peer_receipt_without_rmr() {
        let key = [6u8; 32];
        let own = Jid::with_device("1666", wa_binary::Server::Pn, 3);
        let node = history_reupload_request("3EB0BB", &key, &own);
        let attr = |k: &str| node.get_attr(k).map(ToString::to_string);
        assert_eq!(attr("type").as_deref(), Some("server-error"));
        assert_eq!(attr("category").as_deref(), Some("peer"));
        assert_eq!(attr("id").as_deref(), Some("3EB0BB"));
        assert_eq!(attr("to").as_deref(), Some("1666@s.whatsapp.net"));
        assert!(node.child("rmr").is_none());
        let enc = node.child("encrypt").unwrap();
        let ct = enc.child("enc_p").unwrap().content_bytes().unwrap();
        let iv = enc.child("enc_iv").unwrap().content_bytes().unwrap();
        let plain = decrypt_retry_payload(&key, "3EB0BB", ct, iv).unwrap();
        let receipt = ServerErrorReceipt::decode(&plain[..]).unwrap();
        assert_eq!(receipt.stanza_id.as_deref(), Some("3EB0BB"));
        assert!(decrypt_retry_payload(&[7u8; 32], "3EB0BB", ct, iv).is_err());
    }

    #[test]
    fn request_and_reply_round_trip() {
        let key = [5u8; 32];
        let target = RetryTarget {
            id: "3EB0AA".into(),
            chat: Jid::pn("1555"),
            from_me: true,
            participant: None,
        };
        let node = media_retry_request(
            &target,
            &key,
            &Jid::with_device("1666", wa_binary::Server::Pn, 3),
        );
        assert_eq!(
            node.get_attr("type").map(ToString::to_string).as_deref(),
            Some("server-error")
        );
        assert_eq!(
            node.get_attr("to").map(ToString::to_string).as_deref(),
            Some("1666@s.whatsapp.net")
        );
        let enc = node.child("encrypt").unwrap();
        let ct = enc.child("enc_p").unwrap().content_bytes().unwrap();
        let iv = enc.child("enc_iv").unwrap().content_bytes().unwrap();
        let plain = decrypt_retry_payload(&key, "3EB0AA", ct, iv).unwrap();
        assert_eq!(
            ServerErrorReceipt::decode(&plain[..])
                .unwrap()
                .stanza_id
                .as_deref(),
            Some("3EB0AA")
        );
        // Another id (the associated data) or key does not open it.
        assert!(decrypt_retry_payload(&key, "3EB0AB", ct, iv).is_err());
        assert!(decrypt_retry_payload(&[6; 32], "3EB0AA", ct, iv).is_err());

        let reply = |n: &MediaRetryNotification| {
            let (ct, iv) = encrypt_retry_payload(&key, "3EB0AA", &n.encode_to_vec());
            Node::builder("notification")
                .attr("id", "3EB0AA")
                .attr("type", "mediaretry")
                .children([Node::builder("encrypt")
                    .children([
                        Node::builder("enc_p").bytes(ct).build(),
                        Node::builder("enc_iv").bytes(iv.to_vec()).build(),
                    ])
                    .build()])
                .build()
        };
        let ok = MediaRetryNotification {
            stanza_id: Some("3EB0AA".into()),
            direct_path: Some("/v/new".into()),
            result: Some(ResultType::Success as i32),
            ..Default::default()
        };
        assert_eq!(
            read_media_retry(&reply(&ok), &key, "3EB0AA").unwrap(),
            "/v/new"
        );
        let missing = MediaRetryNotification {
            result: Some(ResultType::NotFound as i32),
            ..ok.clone()
        };
        assert!(matches!(
            read_media_retry(&reply(&missing), &key, "3EB0AA"),
            Err(Error::RetryFailed(2))
        ));
        let error = Node::builder("notification")
            .children([Node::builder("error").attr("code", "2").build()])
            .build();
        assert!(matches!(
            read_media_retry(&error, &key, "3EB0AA"),
            Err(Error::RetryFailed(2))
        ));
        let empty = Node::builder("notification").build();
        assert!(read_media_retry(&empty, &key, "3EB0AA").is_err());
    }
}
