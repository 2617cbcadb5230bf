//! Media the simulated phones send, and their answers to re-upload requests: a phone
//! keeps the plaintext of the media it sent, and when a companion of its account sends
//! `<receipt type="server-error">` for one of those messages (the blob expired), it
//! encrypts it again under the same media key, stores it on the media host and answers
//! with `<notification type="mediaretry">` carrying the encrypted new direct path.

use std::collections::VecDeque;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use cbc::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use prost::Message as _;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use wa_binary::{Jid, Node, Server};
use wa_crypto::{hkdf_sha256, hmac_sha256};
use wa_proto::e2e::{ImageMessage, Message};
use wa_proto::mms_retry::media_retry_notification::ResultType;
use wa_proto::mms_retry::{MediaRetryNotification, ServerErrorReceipt};
use zeroize::Zeroizing;

use crate::Error;
use crate::sim::{Shared, unix_now};

/// HKDF info of image media keys.
pub(crate) const IMAGE_KEYS_INFO: &[u8] = b"WhatsApp Image Keys";
/// HKDF info of the media-retry key.
const MEDIA_RETRY_INFO: &[u8] = b"WhatsApp Media Retry Notification";
/// Most sent media the phones keep (oldest forgotten first).
const MAX_KEPT: usize = 256;
/// Largest media a phone sends.
const MAX_MEDIA: usize = 16 << 20;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

/// One medium a phone sent.
struct Kept {
    phone: String,
    id: String,
    media_key: Zeroizing<[u8; 32]>,
    info: &'static [u8],
    plain: Vec<u8>,
}

/// The media the phones sent, bounded.
#[derive(Default)]
pub(crate) struct PhoneMedia {
    kept: VecDeque<Kept>,
    /// Re-upload requests answered (with a new path or an error).
    pub(crate) answered: u64,
}

/// Encrypts `plain` as WhatsApp media under `media_key` expanded with `info`: returns
/// the blob (`AES-256-CBC(plain) || HMAC[..10]`), `fileSha256` and `fileEncSha256`. The
/// same key and plaintext always give the same blob.
pub(crate) fn encrypt_media(
    media_key: &[u8; 32],
    info: &[u8],
    plain: &[u8],
) -> (Vec<u8>, [u8; 32], [u8; 32]) {
    // invariant: 112 bytes is far below HKDF's output limit, so this cannot fail.
    let Ok(expanded) = hkdf_sha256(media_key, None, info, 112) else {
        return (Vec::new(), [0; 32], [0; 32]);
    };
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&expanded[..16]);
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&expanded[16..48]);
    let ct =
        Aes256CbcEnc::new(key.as_ref().into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain);
    let mut mac_input = Vec::with_capacity(16 + ct.len());
    mac_input.extend_from_slice(&iv);
    mac_input.extend_from_slice(&ct);
    let mac = hmac_sha256(&expanded[48..80], &mac_input);
    let mut blob = ct;
    blob.extend_from_slice(&mac[..10]);
    let file_sha: [u8; 32] = Sha256::digest(plain).into();
    let enc_sha: [u8; 32] = Sha256::digest(&blob).into();
    (blob, file_sha, enc_sha)
}

fn retry_cipher(media_key: &[u8; 32]) -> Option<Aes256Gcm> {
    let k = hkdf_sha256(media_key, None, MEDIA_RETRY_INFO, 32).ok()?;
    Aes256Gcm::new_from_slice(&k).ok()
}

/// The phone sends an image: encrypted, stored on the media host, sent like
/// [`crate::Sim::phone_send`], and kept for re-upload requests.
pub(crate) async fn phone_send_image(
    shared: &Shared,
    phone: &str,
    to: &Jid,
    jpeg: &[u8],
    caption: Option<&str>,
) -> Result<(String, Message), Error> {
    if jpeg.is_empty() || jpeg.len() > MAX_MEDIA {
        return Err(Error::Rejected("image empty or over 16 MiB".into()));
    }
    let mut media_key = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(media_key.as_mut());
    let (blob, file_sha, enc_sha) = encrypt_media(&media_key, IMAGE_KEYS_INFO, jpeg);
    let direct_path = shared.media.store(&blob)?;
    let message = Message {
        image_message: Some(Box::new(ImageMessage {
            url: Some(format!("http://{}{direct_path}", shared.media.hostname())),
            direct_path: Some(direct_path),
            mimetype: Some("image/jpeg".into()),
            caption: caption.map(str::to_owned),
            media_key: Some(media_key.to_vec()),
            file_sha256: Some(file_sha.to_vec()),
            file_enc_sha256: Some(enc_sha.to_vec()),
            file_length: Some(jpeg.len() as u64),
            media_key_timestamp: Some(unix_now() as i64),
            ..Default::default()
        })),
        ..Default::default()
    };
    let id = crate::e2e::phone_send(shared, phone, to, message.clone()).await?;
    keep(shared, phone, &id, media_key, IMAGE_KEYS_INFO, jpeg);
    Ok((id, message))
}

/// Keeps the plaintext of medium `id` that `phone` sent (under `media_key`, expanded
/// with `info`) for re-upload requests; the oldest is forgotten past [`MAX_KEPT`].
pub(crate) fn keep(
    shared: &Shared,
    phone: &str,
    id: &str,
    media_key: Zeroizing<[u8; 32]>,
    info: &'static [u8],
    plain: &[u8],
) {
    let mut pm = shared.phone_media();
    if pm.kept.len() >= MAX_KEPT {
        pm.kept.pop_front();
    }
    pm.kept.push_back(Kept {
        phone: phone.to_owned(),
        id: id.to_owned(),
        media_key,
        info,
        plain: plain.to_vec(),
    });
}

/// Answers a companion's `<receipt type="server-error">` (see the module docs). The
/// notification goes to the asking device only.
pub(crate) fn server_error(shared: &Shared, sender: &Jid, node: &Node) {
    let phone = sender.user.as_str();
    let Some(id) = node.attr_opt::<String>("id").ok().flatten() else {
        return;
    };
    let rmr = node.child("rmr").cloned();
    let kept = {
        let pm = shared.phone_media();
        pm.kept
            .iter()
            .find(|k| k.phone == phone && k.id == id)
            .map(|k| (k.media_key.clone(), k.info, k.plain.clone()))
    };
    let body: Node = match kept {
        None => Node::builder("error")
            .attr("code", (ResultType::NotFound as i32).to_string())
            .build(),
        Some((media_key, info, plain)) => match answer(shared, &id, node, &media_key, info, &plain)
        {
            Ok(encrypt) => encrypt,
            Err(code) => Node::builder("error")
                .attr("code", (code as i32).to_string())
                .build(),
        },
    };
    let mut children: Vec<Node> = rmr.into_iter().collect();
    children.push(body);
    let notification = Node::builder("notification")
        .attr("from", Jid::new(phone.to_owned(), Server::Pn))
        .attr("id", id)
        .attr("type", "mediaretry")
        .attr("t", unix_now())
        .children(children)
        .build();
    shared.phone_media().answered += 1;
    crate::route::deliver(shared, sender, notification);
}

/// Whether `node` (a `<receipt type="server-error">`) carries a `ServerErrorReceipt` for
/// stanza `id`, encrypted under the retry key of `media_key`.
pub(crate) fn names_stanza(media_key: &[u8; 32], id: &str, node: &Node) -> bool {
    check_request(media_key, id, node).is_ok()
}

/// Opens the encrypted request of a `<receipt type="server-error">` and checks it names
/// stanza `id`.
fn check_request(media_key: &[u8; 32], id: &str, node: &Node) -> Result<(), ResultType> {
    let cipher = retry_cipher(media_key).ok_or(ResultType::GeneralError)?;
    let enc = node.child("encrypt").ok_or(ResultType::DecryptionError)?;
    let ct = enc
        .child("enc_p")
        .and_then(Node::content_bytes)
        .ok_or(ResultType::DecryptionError)?;
    let iv = enc
        .child("enc_iv")
        .and_then(Node::content_bytes)
        .ok_or(ResultType::DecryptionError)?;
    if iv.len() != 12 {
        return Err(ResultType::DecryptionError);
    }
    let plain_req = cipher
        .decrypt(
            Nonce::from_slice(iv),
            Payload {
                msg: ct,
                aad: id.as_bytes(),
            },
        )
        .map_err(|_| ResultType::DecryptionError)?;
    let req =
        ServerErrorReceipt::decode(&plain_req[..]).map_err(|_| ResultType::DecryptionError)?;
    if req.stanza_id.as_deref() != Some(id) {
        return Err(ResultType::DecryptionError);
    }
    Ok(())
}

/// Checks the request, uploads the medium again and builds the `<encrypt>` answer.
fn answer(
    shared: &Shared,
    id: &str,
    node: &Node,
    media_key: &[u8; 32],
    info: &'static [u8],
    plain: &[u8],
) -> Result<Node, ResultType> {
    check_request(media_key, id, node)?;
    let cipher = retry_cipher(media_key).ok_or(ResultType::GeneralError)?;
    let (blob, _, _) = encrypt_media(media_key, info, plain);
    let direct_path = shared
        .media
        .store(&blob)
        .map_err(|_| ResultType::GeneralError)?;
    let reply = MediaRetryNotification {
        stanza_id: Some(id.to_owned()),
        direct_path: Some(direct_path),
        result: Some(ResultType::Success as i32),
        ..Default::default()
    };
    let mut iv = [0u8; 12];
    OsRng.fill_bytes(&mut iv);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: &reply.encode_to_vec(),
                aad: id.as_bytes(),
            },
        )
        .map_err(|_| ResultType::GeneralError)?;
    Ok(Node::builder("encrypt")
        .children([
            Node::builder("enc_p").bytes(ct).build(),
            Node::builder("enc_iv").bytes(iv.to_vec()).build(),
        ])
        .build())
}
