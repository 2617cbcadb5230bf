//! Message ids in the web format.

use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};
use wa_binary::Jid;
use wa_messages::{
    SenderPlatform, generate_message_id, is_web_message_id, message_id_from_parts,
    platform_of_message_id,
};

#[test]
fn id_is_prefix_plus_first_nine_hash_bytes() {
    let random = [0xA5u8; 16];
    let id = message_id_from_parts(1_700_000_000, Some("15550000001"), &random);
    let mut input = 1_700_000_000u64.to_be_bytes().to_vec();
    input.extend_from_slice(b"15550000001@c.us");
    input.extend_from_slice(&random);
    let digest = Sha256::digest(&input);
    assert_eq!(id, format!("3EB0{}", hex::encode_upper(&digest[..9])));
    assert!(is_web_message_id(&id));
}

#[test]
fn id_without_user_hashes_time_and_randomness_only() {
    let random = [1u8; 16];
    let id = message_id_from_parts(42, None, &random);
    let mut input = 42u64.to_be_bytes().to_vec();
    input.extend_from_slice(&random);
    assert_eq!(
        id,
        format!("3EB0{}", hex::encode_upper(&Sha256::digest(&input)[..9]))
    );
}

#[test]
fn every_input_changes_the_id() {
    let base = message_id_from_parts(1, Some("1555"), &[0; 16]);
    assert_ne!(base, message_id_from_parts(2, Some("1555"), &[0; 16]));
    assert_ne!(base, message_id_from_parts(1, Some("1556"), &[0; 16]));
    assert_ne!(base, message_id_from_parts(1, Some("1555"), &[1; 16]));
}

#[test]
fn generated_ids_use_the_injected_rng_and_ignore_the_device() {
    let own = Jid::pn("15550000001");
    let own_device: Jid = "15550000001:7@s.whatsapp.net".parse().expect("jid");
    let a = generate_message_id(1_700_000_000, Some(&own), &mut StdRng::seed_from_u64(9));
    let b = generate_message_id(
        1_700_000_000,
        Some(&own_device),
        &mut StdRng::seed_from_u64(9),
    );
    assert_eq!(a, b);
    let c = generate_message_id(1_700_000_000, Some(&own), &mut StdRng::seed_from_u64(10));
    assert_ne!(a, c);
    for id in [&a, &c] {
        assert_eq!(id.len(), 22);
        assert!(id.starts_with("3EB0"));
        assert!(is_web_message_id(id));
    }
}

#[test]
fn format_check_rejects_other_ids() {
    assert!(is_web_message_id("3EB0ABCDEF0123456789AB"));
    assert!(!is_web_message_id("3EB0abcdef0123456789ab"));
    assert!(!is_web_message_id("3EB0ABCDEF0123456789A"));
    assert!(!is_web_message_id("3EB1ABCDEF0123456789AB"));
    assert!(!is_web_message_id("3EB0ABCDEF0123456789AG"));
    assert!(!is_web_message_id("3EB0ABCDEF0123456789ÄB"));
}

#[test]
fn the_sending_platform_is_guessed_from_the_id_shape() {
    use SenderPlatform::*;
    let id = message_id_from_parts(1_700_000_000, Some("15550000001"), &[1; 16]);
    let cases = [
        (id.as_str(), Web),
        ("3A1B2C3D4E5F6A7B8C9D", Ios),
        ("3EB0C0FFEE", Unknown),
        ("ABCDEF0123456789ABCDE", Android),
        ("0123456789ABCDEF0123456789ABCDEF", Android),
        ("3F0000", Desktop),
        ("0123456789ABCDEF01", Desktop),
        // A 3A id of the wrong length is not iOS.
        ("3A12345678901234567890", Unknown),
        ("", Unknown),
        // Characters, not bytes: 18 two-byte characters are a desktop id.
        ("éééééééééééééééééé", Desktop),
    ];
    for (id, want) in cases {
        assert_eq!(platform_of_message_id(id), want, "{id}");
    }
}
