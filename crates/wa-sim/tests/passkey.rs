//! Passkey linking against the sim with a companion written here from the protocol
//! description: the plain link, and each check the server and the primary make on the
//! companion's steps (a refused step is answered with 401 and registers nothing).

mod common;

use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use prost::Message;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use wa_binary::{Jid, Node};
use wa_crypto::{KeyPair, PublicKey, hkdf_sha256, hmac_sha256};
use wa_proto::companion_reg::{
    CompanionCommitment, CompanionEphemeralIdentity, EncryptedPairingRequest, PairingRequest,
    PrimaryEphemeralIdentity, ProloguePayload,
};
use wa_sim::{Error, PasskeyScan, Sim, SimConfig};

const ALPHABET: &[u8; 32] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";

/// Which step the companion gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    Nothing,
    /// The handoff proof is made from another ADV secret than the QR's.
    Proof,
    /// The assertion's client data signs another challenge.
    Challenge,
    /// The prologue names a ref the server did not hand out.
    Reference,
    /// The revealed nonce is not the committed one.
    Nonce,
    /// The nonce is revealed before the prologue.
    NonceFirst,
}

fn bytes_of<'a>(n: &'a Node, tag: &str) -> &'a [u8] {
    n.child(tag)
        .and_then(|c| c.content_bytes())
        .unwrap_or_else(|| panic!("no {tag}"))
}

fn md(id: &str, ty: &'static str, child: Node) -> Node {
    iq(id, ty, "md", vec![child])
}

fn is_error_401(r: &Node) -> bool {
    attr(r, "type").as_deref() == Some("error")
        && r.child("error").and_then(|e| attr(e, "code")).as_deref() == Some("401")
}

/// Runs the companion's side of a passkey link; returns the phone's result and
/// whether the companion's steps were all accepted.
async fn passkey_link(sim: &Sim, phone: &str, tamper: Tamper) -> (Result<Jid, Error>, bool) {
    let mut creds = Creds::new();
    let (mut c, qr) = awaiting_scan(sim, &creds).await;
    let scan = sim.scan_qr_passkey(phone, &qr, PasskeyScan::default());
    let companion = async {
        let request = c.next().await.expect("passkey request");
        assert_eq!(
            attr(&request, "type").as_deref(),
            Some("passkey_prologue_request")
        );
        let options: serde_json::Value =
            serde_json::from_slice(bytes_of(&request, "passkey_request_options"))
                .expect("options JSON");
        let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.decode(v.as_str().unwrap()).unwrap();
        let mut challenge = b64(&options["challenge"]);
        let credential = b64(&options["allowCredentials"][0]["id"]);

        let ephemeral = KeyPair::generate(&mut OsRng);
        let mut nonce = [0u8; 32];
        OsRng.fill_bytes(&mut nonce);
        if tamper == Tamper::NonceFirst {
            let r = c
                .query(md(
                    "n-1",
                    "set",
                    Node::builder("companion_nonce")
                        .bytes(nonce.to_vec())
                        .build(),
                ))
                .await;
            return is_error_401(&r).then_some(false);
        }
        let r = c
            .query(md("r-1", "get", Node::builder("ref").build()))
            .await;
        let mut reference = String::from_utf8(bytes_of(&r, "ref").to_vec()).expect("text ref");
        if tamper == Tamper::Reference {
            reference.push('x');
        }
        let identity = CompanionEphemeralIdentity {
            public_key: Some(ephemeral.public.as_bytes().to_vec()),
            device_type: Some(1),
            r#ref: Some(reference.clone()),
            ..Default::default()
        }
        .encode_to_vec();
        let commitment = Sha256::new()
            .chain_update(&identity)
            .chain_update(nonce)
            .finalize()
            .to_vec();
        let payload = ProloguePayload {
            companion_ephemeral_identity: Some(identity),
            commitment: Some(CompanionCommitment {
                hash: Some(commitment),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec();
        let mut shown_secret = creds.adv_secret;
        if tamper == Tamper::Proof {
            shown_secret[0] ^= 1;
        }
        let handoff =
            hkdf_sha256(&shown_secret, None, b"shortcake-passkey-handoff-v1", 32).expect("hkdf");
        let proof = hmac_sha256(&handoff, &payload);
        if tamper == Tamper::Challenge {
            challenge[0] ^= 1;
        }
        let client_data = serde_json::json!({
            "type": "webauthn.get",
            "challenge": URL_SAFE_NO_PAD.encode(&challenge),
            "origin": "https://web.whatsapp.com",
        })
        .to_string();
        let assertion = serde_json::json!({
            "id": URL_SAFE_NO_PAD.encode(&credential),
            "rawId": URL_SAFE_NO_PAD.encode(&credential),
            "type": "public-key",
            "response": {
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data),
                "authenticatorData": URL_SAFE_NO_PAD.encode([5u8; 37]),
                "signature": URL_SAFE_NO_PAD.encode([6u8; 70]),
                "userHandle": null,
            },
        })
        .to_string();
        let prologue = Node::builder("passkey_prologue")
            .children([
                Node::builder("credential_id")
                    .bytes(credential.clone())
                    .build(),
                Node::builder("webauthn_assertion")
                    .bytes(assertion.into_bytes())
                    .build(),
                Node::builder("prologue_payload").bytes(payload).build(),
                Node::builder("pairing_handoff_proof")
                    .bytes(proof.to_vec())
                    .build(),
            ])
            .build();
        let r = c.query(md("p-1", "set", prologue)).await;
        if attr(&r, "type").as_deref() != Some("result") {
            return is_error_401(&r).then_some(false);
        }
        let cont = c.next().await.expect("continuation");
        assert_eq!(attr(&cont, "type").as_deref(), Some("crsc_continuation"));
        let primary =
            PrimaryEphemeralIdentity::decode(bytes_of(&cont, "primary_ephemeral_identity"))
                .expect("primary identity");
        let primary_pub = PublicKey::from_slice(primary.public_key()).expect("32-byte key");
        let primary_nonce = primary.nonce().to_vec();

        let mut revealed = nonce;
        if tamper == Tamper::Nonce {
            revealed[31] ^= 1;
        }
        let r = c
            .query(md(
                "n-1",
                "set",
                Node::builder("companion_nonce")
                    .bytes(revealed.to_vec())
                    .build(),
            ))
            .await;
        if attr(&r, "type").as_deref() != Some("result") {
            return is_error_401(&r).then_some(false);
        }
        // The code this companion shows is the one the phone shows.
        let digest = Sha256::new()
            .chain_update(nonce)
            .chain_update(primary_pub.as_bytes())
            .finalize();
        let bits = (0..5).fold(0u64, |acc, i| {
            (acc << 8) | u64::from(primary_nonce[i] ^ digest[i])
        });
        let code: String = (0..8)
            .map(|i| ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize] as char)
            .collect();
        assert_eq!(
            sim.passkey_code(phone),
            Some(format!("{}-{}", &code[..4], &code[4..]))
        );

        let shared = ephemeral.dh(&primary_pub);
        let salt = format!("Companion Pairing 1 with ref {reference}");
        let key = hkdf_sha256(
            shared.as_bytes(),
            Some(salt.as_bytes()),
            b"Pairing Information Encryption Key",
            32,
        )
        .expect("hkdf");
        OsRng.fill_bytes(&mut creds.adv_secret);
        let request = PairingRequest {
            companion_public_key: Some(creds.noise.public.as_bytes().to_vec()),
            companion_identity_key: Some(creds.identity.public.as_bytes().to_vec()),
            adv_secret: Some(creds.adv_secret.to_vec()),
            ..Default::default()
        }
        .encode_to_vec();
        let iv = [9u8; 12];
        let sealed = aes_gcm::Aes256Gcm::new_from_slice(&key)
            .unwrap()
            .encrypt((&iv).into(), request.as_slice())
            .unwrap();
        let wrapped = EncryptedPairingRequest {
            encrypted_payload: Some(sealed),
            iv: Some(iv.to_vec()),
            ..Default::default()
        }
        .encode_to_vec();
        let r = c
            .query(md(
                "e-1",
                "set",
                Node::builder("encrypted_pairing_request")
                    .bytes(wrapped)
                    .build(),
            ))
            .await;
        assert_eq!(attr(&r, "type").as_deref(), Some("result"));
        let ps = c.next().await.expect("pair-success");
        let (reply, _) = creds
            .answer_pair_success(&ps)
            .expect("pair-success under the ADV secret of the pairing request");
        c.send(&reply).await;
        let end = c.drain().await;
        assert!(
            end.iter()
                .any(|n| attr(n, "code").as_deref() == Some("515"))
        );
        Some(true)
    };
    let (linked, accepted) = tokio::join!(scan, companion);
    (
        linked,
        accepted.expect("a refused step is answered with 401"),
    )
}

#[tokio::test]
async fn a_companion_links_by_passkey() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let phone = "15557650001";
    sim.add_account(phone).await;
    let (linked, accepted) = passkey_link(&sim, phone, Tamper::Nothing).await;
    assert!(accepted);
    let jid = linked.expect("linked");
    assert_eq!(jid.user.as_str(), phone);
    assert!(sim.devices(phone).contains(&jid));
    let seen = sim.passkey_prologue(phone).expect("prologue recorded");
    assert!(seen.handoff_proof);
    assert_eq!(seen.device_type, 1);
}

#[tokio::test]
async fn each_passkey_check_refuses_a_wrong_step() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    for (i, tamper) in [
        Tamper::Proof,
        Tamper::Challenge,
        Tamper::Reference,
        Tamper::Nonce,
        Tamper::NonceFirst,
    ]
    .into_iter()
    .enumerate()
    {
        let phone = format!("1555765010{i}");
        sim.add_account(&phone).await;
        let (linked, accepted) = passkey_link(&sim, &phone, tamper).await;
        assert!(!accepted, "{tamper:?} accepted");
        assert!(
            matches!(linked, Err(Error::PairingRejected(_))),
            "{tamper:?}: {linked:?}"
        );
        assert!(
            sim.devices(&phone).iter().all(|d| d.device == 0),
            "{tamper:?} registered a device"
        );
    }
}
