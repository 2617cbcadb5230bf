use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use rand_core::CryptoRngCore;
use wa_crypto::{KeyPair, PublicKey, Signature};
use zeroize::{Zeroize, Zeroizing};

use crate::{Error, Result, Role};

/// Current version of the stored credentials format.
const CREDS_FORMAT_VERSION: u32 = 1;

/// A signed pre-key: a key pair whose public half the identity key signed.
#[derive(Clone)]
pub struct SignedPreKey {
    /// Its id.
    pub id: u32,
    /// The key pair.
    pub key_pair: KeyPair,
    /// XEdDSA signature by the identity key over `0x05 || public`.
    pub signature: Signature,
    /// Creation time, unix seconds.
    pub timestamp: u64,
}

impl SignedPreKey {
    /// Generates a signed pre-key with `id`, signed by `identity`.
    pub fn generate(
        id: u32,
        identity: &KeyPair,
        timestamp: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Self {
        let key_pair = KeyPair::generate(rng);
        let signature = identity.sign(&key_pair.public.serialize(), rng);
        Self {
            id,
            key_pair,
            signature,
            timestamp,
        }
    }

    /// Whether `identity` signed this pre-key.
    pub fn verify(&self, identity: &PublicKey) -> bool {
        identity.verify(&self.key_pair.public.serialize(), &self.signature)
    }
}

impl fmt::Debug for SignedPreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedPreKey")
            .field("id", &self.id)
            .field("public", &self.key_pair.public)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// Everything a linked device needs to reconnect as itself: its long-term keys, its
/// identity on the account once paired, and the counters of pre-key upload.
///
/// Stored as one item of [`Role::Creds`] in a versioned protobuf encoding; private keys and
/// the ADV secret are zeroized when dropped.
#[derive(Clone)]
#[non_exhaustive]
pub struct AuthCreds {
    /// Static key of the Noise handshake.
    pub noise_key: KeyPair,
    /// Signal identity key of this device.
    pub identity_key: KeyPair,
    /// The current signed pre-key.
    pub signed_pre_key: SignedPreKey,
    /// Signal registration id (14 bits, 1..=16380).
    pub registration_id: u32,
    /// Secret shared with the phone while pairing, used to check the ADV device identity.
    pub adv_secret: Zeroizing<[u8; 32]>,
    /// Ephemeral key pair of pairing-code linking.
    pub pairing_ephemeral_key: KeyPair,
    /// Own device JID once paired.
    pub jid: Option<String>,
    /// Own LID once paired.
    pub lid: Option<String>,
    /// Own push name.
    pub push_name: Option<String>,
    /// Platform reported by the server on pairing.
    pub platform: Option<String>,
    /// The signed device identity (`ADVSignedDeviceIdentity`, encoded) given at pairing.
    pub account: Option<Vec<u8>>,
    /// Next pre-key id to generate.
    pub next_pre_key_id: u32,
    /// First pre-key id not yet uploaded to the server.
    pub first_unuploaded_pre_key_id: u32,
    /// Edge routing info the server sent, replayed on reconnect.
    pub routing_info: Option<Vec<u8>>,
    /// Whether pairing finished.
    pub registered: bool,
    /// A pairing code in use, while linking by code.
    pub pairing_code: Option<String>,
    /// Id of the app-state key used for our own mutations.
    pub my_app_state_key_id: Option<String>,
    /// Last account sync, unix seconds.
    pub last_account_sync_timestamp: Option<u64>,
    /// How many times history and app state were synced.
    pub account_sync_counter: u32,
    /// Hash of the last server props seen.
    pub last_prop_hash: Option<String>,
    /// The server's AB props as last fetched (with [`AuthCreds::last_prop_hash`]), so
    /// they hold from the start of the next connection and a fetch can ask only for
    /// what changed. Shared, so copies of the credentials do not copy them.
    pub server_props: Arc<BTreeMap<String, String>>,
    /// The account's new-chat-thread salt (app state `nct_salt_sync`, or the history
    /// sync's `nctSalt`): the key of the `<cstoken>` sent on 1:1 messages that carry no
    /// privacy token. Secret.
    pub nct_salt: Option<Zeroizing<Vec<u8>>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl AuthCreds {
    /// Fresh credentials for a device about to pair: new Noise, identity and pairing keys,
    /// signed pre-key 1, a random registration id and ADV secret.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let noise_key = KeyPair::generate(rng);
        let identity_key = KeyPair::generate(rng);
        let signed_pre_key = SignedPreKey::generate(1, &identity_key, unix_now(), rng);
        let registration_id = loop {
            // 14 random bits, as libsignal; 0 and the top three values are not used.
            let id = rng.next_u32() & 0x3FFF;
            if (1..=16380).contains(&id) {
                break id;
            }
        };
        let mut adv_secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(adv_secret.as_mut());
        Self {
            noise_key,
            identity_key,
            signed_pre_key,
            registration_id,
            adv_secret,
            pairing_ephemeral_key: KeyPair::generate(rng),
            jid: None,
            lid: None,
            push_name: None,
            platform: None,
            account: None,
            next_pre_key_id: 1,
            first_unuploaded_pre_key_id: 1,
            routing_info: None,
            registered: false,
            pairing_code: None,
            my_app_state_key_id: None,
            last_account_sync_timestamp: None,
            account_sync_counter: 0,
            last_prop_hash: None,
            server_props: Arc::default(),
            nct_salt: None,
        }
    }

    /// Encodes the credentials in their stored form (versioned protobuf).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let msg = CredsMsg {
            version: CREDS_FORMAT_VERSION,
            noise_private: self.noise_key.private.as_bytes().to_vec(),
            identity_private: self.identity_key.private.as_bytes().to_vec(),
            signed_pre_key_id: self.signed_pre_key.id,
            signed_pre_key_private: self.signed_pre_key.key_pair.private.as_bytes().to_vec(),
            signed_pre_key_signature: self.signed_pre_key.signature.as_bytes().to_vec(),
            signed_pre_key_timestamp: self.signed_pre_key.timestamp,
            registration_id: self.registration_id,
            adv_secret: self.adv_secret.to_vec(),
            pairing_ephemeral_private: self.pairing_ephemeral_key.private.as_bytes().to_vec(),
            jid: self.jid.clone(),
            lid: self.lid.clone(),
            push_name: self.push_name.clone(),
            platform: self.platform.clone(),
            account: self.account.clone(),
            next_pre_key_id: self.next_pre_key_id,
            first_unuploaded_pre_key_id: self.first_unuploaded_pre_key_id,
            routing_info: self.routing_info.clone(),
            registered: self.registered,
            pairing_code: self.pairing_code.clone(),
            my_app_state_key_id: self.my_app_state_key_id.clone(),
            last_account_sync_timestamp: self.last_account_sync_timestamp,
            account_sync_counter: self.account_sync_counter,
            last_prop_hash: self.last_prop_hash.clone(),
            nct_salt: self.nct_salt.as_ref().map(|s| s.to_vec()),
            server_props: (*self.server_props).clone(),
        };
        Zeroizing::new(msg.encode_to_vec())
    }

    /// Decodes credentials stored by [`AuthCreds::encode`].
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the bytes are not valid credentials of a known version.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let corrupt = |reason: String| Error::Corrupt {
            role: Role::Creds,
            scope: String::new(),
            key: String::new(),
            reason,
        };
        let msg = CredsMsg::decode(bytes).map_err(|e| corrupt(format!("protobuf: {e}")))?;
        if msg.version != CREDS_FORMAT_VERSION {
            return Err(corrupt(format!("unknown creds version {}", msg.version)));
        }
        let pair = |what: &str, b: &[u8]| {
            KeyPair::from_private_slice(b).map_err(|e| corrupt(format!("{what}: {e}")))
        };
        let identity_key = pair("identity key", &msg.identity_private)?;
        let signed_pre_key = SignedPreKey {
            id: msg.signed_pre_key_id,
            key_pair: pair("signed pre-key", &msg.signed_pre_key_private)?,
            signature: Signature::from_slice(&msg.signed_pre_key_signature)
                .map_err(|e| corrupt(format!("signed pre-key signature: {e}")))?,
            timestamp: msg.signed_pre_key_timestamp,
        };
        if !signed_pre_key.verify(&identity_key.public) {
            return Err(corrupt(
                "signed pre-key signature does not verify".to_owned(),
            ));
        }
        let adv: [u8; 32] = msg
            .adv_secret
            .as_slice()
            .try_into()
            .map_err(|_| corrupt(format!("ADV secret of {} bytes", msg.adv_secret.len())))?;
        Ok(Self {
            noise_key: pair("noise key", &msg.noise_private)?,
            identity_key,
            signed_pre_key,
            registration_id: msg.registration_id,
            adv_secret: Zeroizing::new(adv),
            pairing_ephemeral_key: pair("pairing key", &msg.pairing_ephemeral_private)?,
            jid: msg.jid.clone(),
            lid: msg.lid.clone(),
            push_name: msg.push_name.clone(),
            platform: msg.platform.clone(),
            account: msg.account.clone(),
            next_pre_key_id: msg.next_pre_key_id,
            first_unuploaded_pre_key_id: msg.first_unuploaded_pre_key_id,
            routing_info: msg.routing_info.clone(),
            registered: msg.registered,
            pairing_code: msg.pairing_code.clone(),
            my_app_state_key_id: msg.my_app_state_key_id.clone(),
            last_account_sync_timestamp: msg.last_account_sync_timestamp,
            account_sync_counter: msg.account_sync_counter,
            last_prop_hash: msg.last_prop_hash.clone(),
            server_props: Arc::new(msg.server_props.clone()),
            nct_salt: msg.nct_salt.clone().map(Zeroizing::new),
        })
    }
}

impl PartialEq for AuthCreds {
    fn eq(&self, other: &Self) -> bool {
        wa_crypto::ct_eq(&self.encode(), &other.encode())
    }
}

impl fmt::Debug for AuthCreds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCreds")
            .field("noise_key", &self.noise_key.public)
            .field("identity_key", &self.identity_key.public)
            .field("signed_pre_key", &self.signed_pre_key)
            .field("registration_id", &self.registration_id)
            .field("jid", &self.jid)
            .field("lid", &self.lid)
            .field("platform", &self.platform)
            .field("next_pre_key_id", &self.next_pre_key_id)
            .field(
                "first_unuploaded_pre_key_id",
                &self.first_unuploaded_pre_key_id,
            )
            .field("registered", &self.registered)
            .finish_non_exhaustive()
    }
}

/// The stored protobuf form. Fields are only ever added, with new tags, so older
/// databases keep decoding; a change that cannot be read by older code bumps `version`.
#[derive(Clone, PartialEq, Message)]
struct CredsMsg {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(bytes = "vec", tag = "2")]
    noise_private: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    identity_private: Vec<u8>,
    #[prost(uint32, tag = "4")]
    signed_pre_key_id: u32,
    #[prost(bytes = "vec", tag = "5")]
    signed_pre_key_private: Vec<u8>,
    #[prost(bytes = "vec", tag = "6")]
    signed_pre_key_signature: Vec<u8>,
    #[prost(uint64, tag = "7")]
    signed_pre_key_timestamp: u64,
    #[prost(uint32, tag = "8")]
    registration_id: u32,
    #[prost(bytes = "vec", tag = "9")]
    adv_secret: Vec<u8>,
    #[prost(bytes = "vec", tag = "10")]
    pairing_ephemeral_private: Vec<u8>,
    #[prost(string, optional, tag = "11")]
    jid: Option<String>,
    #[prost(string, optional, tag = "12")]
    lid: Option<String>,
    #[prost(string, optional, tag = "13")]
    push_name: Option<String>,
    #[prost(string, optional, tag = "14")]
    platform: Option<String>,
    #[prost(bytes = "vec", optional, tag = "15")]
    account: Option<Vec<u8>>,
    #[prost(uint32, tag = "16")]
    next_pre_key_id: u32,
    #[prost(uint32, tag = "17")]
    first_unuploaded_pre_key_id: u32,
    #[prost(bytes = "vec", optional, tag = "18")]
    routing_info: Option<Vec<u8>>,
    #[prost(bool, tag = "19")]
    registered: bool,
    #[prost(string, optional, tag = "20")]
    pairing_code: Option<String>,
    #[prost(string, optional, tag = "21")]
    my_app_state_key_id: Option<String>,
    #[prost(uint64, optional, tag = "22")]
    last_account_sync_timestamp: Option<u64>,
    #[prost(uint32, tag = "23")]
    account_sync_counter: u32,
    #[prost(string, optional, tag = "24")]
    last_prop_hash: Option<String>,
    #[prost(bytes = "vec", optional, tag = "25")]
    nct_salt: Option<Vec<u8>>,
    #[prost(btree_map = "string, string", tag = "26")]
    server_props: BTreeMap<String, String>,
}

impl Drop for CredsMsg {
    fn drop(&mut self) {
        self.noise_private.zeroize();
        self.identity_private.zeroize();
        self.signed_pre_key_private.zeroize();
        self.adv_secret.zeroize();
        self.pairing_ephemeral_private.zeroize();
        if let Some(salt) = self.nct_salt.as_mut() {
            salt.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    #[test]
    fn generate_is_well_formed() {
        let c = AuthCreds::generate(&mut rng());
        assert!((1..=16380).contains(&c.registration_id));
        assert_eq!(c.signed_pre_key.id, 1);
        assert!(c.signed_pre_key.verify(&c.identity_key.public));
        assert!(!c.signed_pre_key.verify(&c.noise_key.public));
        assert_ne!(*c.adv_secret, [0u8; 32]);
        assert_ne!(c.noise_key.public, c.identity_key.public);
        assert!(!c.registered);
    }

    #[test]
    fn registration_ids_stay_in_range_and_vary() {
        let mut r = rng();
        let ids: std::collections::BTreeSet<u32> = (0..300)
            .map(|_| AuthCreds::generate(&mut r).registration_id)
            .collect();
        assert!(ids.iter().all(|id| (1..=16380).contains(id)));
        assert!(ids.len() > 250, "registration ids repeat too often");
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut c = AuthCreds::generate(&mut rng());
        c.jid = Some("123:4@s.whatsapp.net".into());
        c.lid = Some("999:4@lid".into());
        c.account = Some(vec![1, 2, 3]);
        c.routing_info = Some(vec![9; 10]);
        c.next_pre_key_id = 31;
        c.first_unuploaded_pre_key_id = 21;
        c.registered = true;
        c.last_account_sync_timestamp = Some(1_700_000_000);
        c.nct_salt = Some(Zeroizing::new(vec![5; 32]));
        c.last_prop_hash = Some("h1".into());
        c.server_props = Arc::new([("10518".to_owned(), "false".to_owned())].into());
        let back = AuthCreds::decode(&c.encode()).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            back.server_props.get("10518").map(String::as_str),
            Some("false")
        );
        assert_eq!(
            back.nct_salt.as_deref().map(Vec::as_slice),
            Some(&[5u8; 32][..])
        );
        assert_eq!(back.jid.as_deref(), Some("123:4@s.whatsapp.net"));
        assert_eq!(back.noise_key.public, c.noise_key.public);
        assert_eq!(*back.adv_secret, *c.adv_secret);
    }

    #[test]
    fn decode_rejects_garbage_and_unknown_versions() {
        assert!(AuthCreds::decode(b"\xff\xff\xff").unwrap_err().is_corrupt());
        let c = AuthCreds::generate(&mut rng());
        let mut msg = CredsMsg::decode(c.encode().as_slice()).unwrap();
        msg.version = 2;
        assert!(
            AuthCreds::decode(&msg.encode_to_vec())
                .unwrap_err()
                .is_corrupt()
        );
        msg.version = 1;
        msg.signed_pre_key_signature[3] ^= 1;
        assert!(
            AuthCreds::decode(&msg.encode_to_vec())
                .unwrap_err()
                .is_corrupt()
        );
        // An empty message decodes as protobuf but has no keys.
        assert!(AuthCreds::decode(&[]).unwrap_err().is_corrupt());
    }

    #[test]
    fn debug_hides_secrets() {
        let c = AuthCreds::generate(&mut rng());
        let s = format!("{c:?}");
        assert!(!s.contains("adv_secret"));
        assert!(!s.contains("private"));
    }
}
