//! The pairing-code flow end to end: companion_hello, the phone's notification,
//! companion_finish, pair-success under the derived ADV secret.

mod common;
#[path = "../src/kdf.rs"]
mod kdf;

use aes::cipher::{KeyIvInit, StreamCipher};
use aes_gcm::aead::{Aead, KeyInit};
use common::*;
use rand_core::{OsRng, RngCore};
use wa_binary::{Jid, Node};
use wa_crypto::{KeyPair, PublicKey, hkdf_sha256};
use wa_sim::{Error, Sim, SimConfig};

const PHONE: &str = "15557654321";
const ALPHABET: &[u8; 32] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";

fn random_code() -> String {
    let mut b = [0u8; 5];
    OsRng.fill_bytes(&mut b);
    let bits = b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x));
    (0..8)
        .map(|i| ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize] as char)
        .collect()
}

fn ctr(code: &str, salt: &[u8], iv: &[u8], data: &mut [u8]) {
    let key = kdf::pbkdf2_sha256_32(code.as_bytes(), salt, 2 << 16);
    ctr::Ctr128BE::<aes::Aes256>::new((&*key).into(), iv.into()).apply_keystream(data);
}

fn wrap(code: &str, key: &PublicKey) -> Vec<u8> {
    let mut out = vec![0u8; 48];
    OsRng.fill_bytes(&mut out);
    let mut ct = *key.as_bytes();
    ctr(code, &out[..32], &out[32..48], &mut ct);
    out.extend_from_slice(&ct);
    out
}

fn bytes_of<'a>(n: &'a Node, tag: &str) -> &'a [u8] {
    n.child(tag)
        .and_then(|c| c.content_bytes())
        .unwrap_or_else(|| panic!("no {tag}"))
}

/// Runs the companion side against `sim`; the phone is given `phone_code`.
async fn pair_with_code(
    sim: &Sim,
    creds: &mut Creds,
    phone_code: Option<&str>,
) -> Result<Jid, Error> {
    let mut c = Client::connect(
        &sim.ws_url(),
        sim.root_public_key(),
        &creds.noise,
        &creds.registration_payload(),
        None,
    )
    .await
    .unwrap();
    let pd = c.next().await.unwrap();
    c.send(&result_for(&pd)).await;

    let code = random_code();
    let ephemeral = KeyPair::generate(&mut OsRng);
    let hello = iq(
        "hello-1",
        "set",
        "md",
        vec![
            Node::builder("link_code_companion_reg")
                .attr("jid", Jid::pn(PHONE))
                .attr("stage", "companion_hello")
                .attr("should_show_push_notification", "true")
                .children([
                    Node::builder("link_code_pairing_wrapped_companion_ephemeral_pub")
                        .bytes(wrap(&code, &ephemeral.public))
                        .build(),
                    Node::builder("companion_server_auth_key_pub")
                        .bytes(creds.noise.public.as_bytes().to_vec())
                        .build(),
                    Node::builder("companion_platform_id").text("1").build(),
                    Node::builder("companion_platform_display")
                        .text("Chrome (Linux)")
                        .build(),
                    Node::builder("link_code_pairing_nonce")
                        .bytes(vec![0])
                        .build(),
                ])
                .build(),
        ],
    );
    let r = c.query(hello).await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"));
    let reference = bytes_of(
        r.child("link_code_companion_reg").unwrap(),
        "link_code_pairing_ref",
    )
    .to_vec();

    let entered =
        phone_code.map_or_else(|| format!("{}-{}", &code[..4], &code[4..]), str::to_owned);
    let phone = sim.enter_pairing_code(PHONE, &entered);
    let companion = async {
        let n = c.next().await.unwrap();
        assert_eq!(n.tag(), "notification");
        assert_eq!(attr(&n, "type").as_deref(), Some("link_code_companion_reg"));
        let reg = n.child("link_code_companion_reg").unwrap();
        assert_eq!(bytes_of(reg, "link_code_pairing_ref"), &reference[..]);
        let primary_identity =
            PublicKey::from_slice(bytes_of(reg, "primary_identity_pub")).unwrap();
        let wrapped = bytes_of(reg, "link_code_pairing_wrapped_primary_ephemeral_pub");
        let mut primary_eph = [0u8; 32];
        primary_eph.copy_from_slice(&wrapped[48..80]);
        ctr(&code, &wrapped[..32], &wrapped[32..48], &mut primary_eph);
        let shared = ephemeral.dh(&PublicKey::from_bytes(primary_eph));

        let mut salt = [0u8; 32];
        let mut nonce = [0u8; 12];
        let mut random = [0u8; 32];
        for b in [&mut salt[..], &mut nonce[..], &mut random[..]] {
            OsRng.fill_bytes(b);
        }
        let key = hkdf_sha256(
            shared.as_bytes(),
            Some(&salt),
            b"link_code_pairing_key_bundle_encryption_key",
            32,
        )
        .unwrap();
        let mut plain = creds.identity.public.as_bytes().to_vec();
        plain.extend_from_slice(primary_identity.as_bytes());
        plain.extend_from_slice(&random);
        let ct = aes_gcm::Aes256Gcm::new_from_slice(&key)
            .unwrap()
            .encrypt((&nonce).into(), &plain[..])
            .unwrap();
        let mut bundle = salt.to_vec();
        bundle.extend_from_slice(&nonce);
        bundle.extend_from_slice(&ct);
        let id_shared = creds.identity.dh(&primary_identity);
        let mut ikm = shared.as_bytes().to_vec();
        ikm.extend_from_slice(id_shared.as_bytes());
        ikm.extend_from_slice(&random);
        let adv = hkdf_sha256(&ikm, None, b"adv_secret", 32).unwrap();
        creds.adv_secret.copy_from_slice(&adv);

        let finish = iq(
            "finish-1",
            "set",
            "md",
            vec![
                Node::builder("link_code_companion_reg")
                    .attr("jid", Jid::pn(PHONE))
                    .attr("stage", "companion_finish")
                    .children([
                        Node::builder("link_code_pairing_wrapped_key_bundle")
                            .bytes(bundle)
                            .build(),
                        Node::builder("companion_identity_public")
                            .bytes(creds.identity.public.as_bytes().to_vec())
                            .build(),
                        Node::builder("link_code_pairing_ref")
                            .bytes(reference.clone())
                            .build(),
                    ])
                    .build(),
            ],
        );
        let r = c.query(finish).await;
        assert_eq!(attr(&r, "type").as_deref(), Some("result"));
        // pair-success follows when the bundle was good; otherwise nothing.
        match c.next_within(std::time::Duration::from_millis(1500)).await {
            Ok(Some(ps)) if ps.child("pair-success").is_some() => {
                let (reply, jid) = creds
                    .answer_pair_success(&ps)
                    .expect("pair-success under the new ADV secret");
                c.send(&reply).await;
                let end = c.drain().await;
                assert!(
                    end.iter()
                        .any(|n| attr(n, "code").as_deref() == Some("515"))
                );
                Some(jid)
            }
            _ => None,
        }
    };
    let (r, jid) = tokio::join!(phone, companion);
    if let Ok(d) = &r {
        assert_eq!(Some(d), jid.as_ref());
    }
    r
}

#[tokio::test]
async fn pairing_code_links_a_device() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(PHONE).await;
    let mut creds = Creds::new();
    let device = pair_with_code(&sim, &mut creds, None).await.unwrap();
    assert_eq!(sim.devices(PHONE), vec![device.clone()]);
    let (_, seen) = login(&sim, &creds, &device).await;
    assert_eq!(seen[0].tag(), "success");
}

#[tokio::test]
async fn wrong_pairing_code_links_nothing() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(PHONE).await;
    let mut creds = Creds::new();
    let r = pair_with_code(&sim, &mut creds, Some("ZZZZ-ZZZZ")).await;
    assert!(matches!(r, Err(Error::PairingRejected(_))), "{r:?}");
    assert!(sim.devices(PHONE).is_empty());
    // No pending request for another phone; malformed codes are refused up front.
    assert!(matches!(
        sim.enter_pairing_code("15550001111", "ABCD-EFGH").await,
        Err(Error::UnknownAccount(_))
    ));
    assert!(matches!(
        sim.enter_pairing_code(PHONE, "ABC").await,
        Err(Error::BadPairingCode)
    ));
    assert!(matches!(
        sim.enter_pairing_code(PHONE, "ABCD-EFGH").await,
        Err(Error::NoPendingCode(_))
    ));
}
