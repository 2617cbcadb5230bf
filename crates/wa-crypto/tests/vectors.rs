//! Known-answer tests against keys and signatures produced by an independent implementation.

use serde::Deserialize;
use wa_crypto::{KeyPair, PublicKey};

#[derive(Deserialize)]
struct Vectors {
    signatures: Vec<Sig>,
    keypairs: Vec<Pair>,
}

#[derive(Deserialize)]
struct Sig {
    what: String,
    key: String,
    message: String,
    signature: String,
}

#[derive(Deserialize)]
struct Pair {
    #[serde(rename = "priv")]
    private: String,
    #[serde(rename = "pub")]
    public: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("vectors/xeddsa.json")).unwrap()
}

#[test]
fn signatures_from_independent_implementation_verify() {
    let v = vectors();
    assert!(v.signatures.len() >= 4);
    for s in &v.signatures {
        let key = PublicKey::from_slice(&hex::decode(&s.key).unwrap()).unwrap();
        let msg = hex::decode(&s.message).unwrap();
        let sig = hex::decode(&s.signature).unwrap();
        assert!(key.verify_slice(&msg, &sig), "{}", s.what);
        let mut wrong = msg.clone();
        wrong[3] ^= 1;
        assert!(!key.verify_slice(&wrong, &sig), "{} (tampered)", s.what);
    }
}

#[test]
fn public_keys_derive_from_unclamped_private_draws() {
    for p in vectors().keypairs {
        let pair = KeyPair::from_private_slice(&hex::decode(&p.private).unwrap()).unwrap();
        assert_eq!(hex::encode(pair.public.as_bytes()), p.public);
    }
}

#[test]
fn our_signatures_with_vector_keys_verify() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for p in vectors().keypairs {
        let pair = KeyPair::from_private_slice(&hex::decode(&p.private).unwrap()).unwrap();
        let sig = pair.sign(p.public.as_bytes(), &mut rng);
        assert!(pair.public.verify(p.public.as_bytes(), &sig));
    }
}
