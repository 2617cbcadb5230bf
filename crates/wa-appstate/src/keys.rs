use std::collections::HashMap;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::Error;

/// HKDF info string of the mutation-key expansion.
pub const MUTATION_KEYS_INFO: &[u8] = b"WhatsApp Mutation Keys";

/// The five 32-byte keys expanded from one app-state sync key (HKDF-SHA256, no salt,
/// info `WhatsApp Mutation Keys`, 160 bytes, split in this order). Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MutationKeys {
    /// HMAC-SHA256 key of the index MAC.
    pub index: [u8; 32],
    /// AES-256-CBC key of the values.
    pub value_encryption: [u8; 32],
    /// HMAC-SHA512 key of the value MAC.
    pub value_mac: [u8; 32],
    /// HMAC-SHA256 key of the snapshot MAC.
    pub snapshot_mac: [u8; 32],
    /// HMAC-SHA256 key of the patch MAC.
    pub patch_mac: [u8; 32],
}

impl MutationKeys {
    /// Expands the key data of an app-state sync key (`AppStateSyncKeyData.keyData`).
    pub fn expand(key_data: &[u8]) -> Self {
        let mut okm = Zeroizing::new([0u8; 160]);
        // 160 bytes is far below HKDF-SHA256's 8160-byte maximum, so this cannot fail.
        let _ = wa_crypto::hkdf_sha256_into(key_data, None, MUTATION_KEYS_INFO, &mut okm[..]);
        let part = |i: usize| {
            let mut k = [0u8; 32];
            k.copy_from_slice(&okm[i * 32..(i + 1) * 32]);
            k
        };
        Self {
            index: part(0),
            value_encryption: part(1),
            value_mac: part(2),
            snapshot_mac: part(3),
            patch_mac: part(4),
        }
    }
}

impl std::fmt::Debug for MutationKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MutationKeys(..)")
    }
}

/// Where the decoder finds app-state sync keys: key id -> key data. Keys live in the
/// store; the sync layer implements this over whatever it loaded (a map of the keys the
/// primary device shared is enough).
pub trait KeyLookup {
    /// The key data for `key_id`, or `None` when the key is unknown.
    fn key_data(&self, key_id: &[u8]) -> Option<Zeroizing<Vec<u8>>>;
}

impl KeyLookup for HashMap<Vec<u8>, Vec<u8>> {
    fn key_data(&self, key_id: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.get(key_id).map(|k| Zeroizing::new(k.clone()))
    }
}

impl<F> KeyLookup for F
where
    F: Fn(&[u8]) -> Option<Zeroizing<Vec<u8>>>,
{
    fn key_data(&self, key_id: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self(key_id)
    }
}

/// Expanded keys by key id, filled on first use during one decode.
pub(crate) struct KeyCache<'a, K: ?Sized> {
    lookup: &'a K,
    expanded: HashMap<Vec<u8>, MutationKeys>,
}

impl<'a, K: KeyLookup + ?Sized> KeyCache<'a, K> {
    pub(crate) fn new(lookup: &'a K) -> Self {
        Self {
            lookup,
            expanded: HashMap::new(),
        }
    }

    pub(crate) fn get(&mut self, key_id: &[u8]) -> Result<&MutationKeys, Error> {
        if !self.expanded.contains_key(key_id) {
            let data = self
                .lookup
                .key_data(key_id)
                .ok_or_else(|| Error::MissingKey(key_id.to_vec()))?;
            self.expanded
                .insert(key_id.to_vec(), MutationKeys::expand(&data));
        }
        self.expanded
            .get(key_id)
            .ok_or_else(|| Error::MissingKey(key_id.to_vec()))
    }
}
