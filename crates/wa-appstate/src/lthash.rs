use std::collections::HashMap;

use crate::Error;

/// HKDF info string with which each value MAC is expanded before it enters the LTHash.
pub const LT_HASH_INFO: &[u8] = b"WhatsApp Patch Integrity";

/// Size of the LTHash and of each expanded item, in bytes.
pub const LT_HASH_LEN: usize = 128;

/// Expands one item (a value MAC) to the 128 bytes that are added to or subtracted from
/// the hash: HKDF-SHA256 with no salt and info `WhatsApp Patch Integrity`.
pub fn lt_hash_expand(item: &[u8]) -> [u8; LT_HASH_LEN] {
    let mut out = [0u8; LT_HASH_LEN];
    // 128 bytes is far below HKDF-SHA256's 8160-byte maximum, so this cannot fail.
    let _ = wa_crypto::hkdf_sha256_into(item, None, LT_HASH_INFO, &mut out);
    out
}

/// Adds one item to an LTHash: 64 little-endian u16 lanes, each added modulo 2^16.
pub fn lt_hash_add(hash: &mut [u8; LT_HASH_LEN], item: &[u8]) {
    let e = lt_hash_expand(item);
    for (h, x) in hash.chunks_exact_mut(2).zip(e.chunks_exact(2)) {
        let v = u16::from_le_bytes([h[0], h[1]]).wrapping_add(u16::from_le_bytes([x[0], x[1]]));
        h.copy_from_slice(&v.to_le_bytes());
    }
}

/// Subtracts one item from an LTHash (lane-wise modulo 2^16); the inverse of
/// [`lt_hash_add`].
pub fn lt_hash_subtract(hash: &mut [u8; LT_HASH_LEN], item: &[u8]) {
    let e = lt_hash_expand(item);
    for (h, x) in hash.chunks_exact_mut(2).zip(e.chunks_exact(2)) {
        let v = u16::from_le_bytes([h[0], h[1]]).wrapping_sub(u16::from_le_bytes([x[0], x[1]]));
        h.copy_from_slice(&v.to_le_bytes());
    }
}

/// The operation of a mutation (`SyncdMutation.SyncdOperation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Set (insert or overwrite) the value at an index.
    Set,
    /// Remove the value at an index.
    Remove,
}

impl Operation {
    /// The byte that starts the value-MAC input (SET 1, REMOVE 2).
    pub fn mac_byte(self) -> u8 {
        match self {
            Operation::Set => 1,
            Operation::Remove => 2,
        }
    }

    /// The protobuf enum value.
    pub fn to_proto(self) -> wa_proto::server_sync::syncd_mutation::SyncdOperation {
        match self {
            Operation::Set => wa_proto::server_sync::syncd_mutation::SyncdOperation::Set,
            Operation::Remove => wa_proto::server_sync::syncd_mutation::SyncdOperation::Remove,
        }
    }

    /// Reads the wire value; an absent operation is SET (as in snapshots), an unknown
    /// number is refused.
    pub fn from_wire(value: Option<i32>) -> Result<Self, Error> {
        match value {
            None | Some(0) => Ok(Operation::Set),
            Some(1) => Ok(Operation::Remove),
            Some(_) => Err(Error::Malformed("unknown mutation operation")),
        }
    }
}

const STATE_FORMAT: u8 = 1;
const STATE_HEADER_LEN: usize = 1 + 8 + LT_HASH_LEN + 4;

/// What applying one mutation to a [`HashState`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A SET of an index the state did not hold.
    Inserted,
    /// A SET that replaced an earlier value (its MAC was subtracted).
    Replaced,
    /// A REMOVE of a held index (its MAC was subtracted).
    Removed,
    /// A REMOVE of an index the state does not hold: nothing to subtract. WhatsApp sends
    /// these (e.g. for one's own contact entry), so it is reported rather than refused; the
    /// snapshot MAC still decides whether the resulting hash is the server's.
    RemovedUnknown,
}

/// The app-state of one collection as the client must remember it: the version, the
/// LTHash, and the value MAC of every live index (index MAC -> value MAC), which is what
/// later mutations of the same index subtract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashState {
    /// The collection version this state is at (0 before the first patch).
    pub version: u64,
    /// The LTHash of the live value MACs.
    pub hash: [u8; LT_HASH_LEN],
    /// Index MAC -> value MAC of every index whose last mutation was a SET.
    pub index_value_map: HashMap<[u8; 32], [u8; 32]>,
}

impl Default for HashState {
    fn default() -> Self {
        Self::new()
    }
}

impl HashState {
    /// The state of a collection never synced: version 0, all-zero hash, no indexes.
    pub fn new() -> Self {
        Self {
            version: 0,
            hash: [0u8; LT_HASH_LEN],
            index_value_map: HashMap::new(),
        }
    }

    /// Applies one mutation to the hash and the index map: SET subtracts the index's
    /// previous value MAC (if any) and adds the new one; REMOVE subtracts the previous
    /// value MAC and forgets the index.
    pub fn apply(
        &mut self,
        operation: Operation,
        index_mac: &[u8; 32],
        value_mac: &[u8; 32],
    ) -> Applied {
        self.apply_logged(operation, index_mac, value_mac).0
    }

    /// As [`HashState::apply`], also returning the previous value MAC for undo.
    pub(crate) fn apply_logged(
        &mut self,
        operation: Operation,
        index_mac: &[u8; 32],
        value_mac: &[u8; 32],
    ) -> (Applied, Option<[u8; 32]>) {
        match operation {
            Operation::Set => {
                let prev = self.index_value_map.insert(*index_mac, *value_mac);
                if let Some(p) = &prev {
                    lt_hash_subtract(&mut self.hash, p);
                }
                lt_hash_add(&mut self.hash, value_mac);
                let applied = if prev.is_some() {
                    Applied::Replaced
                } else {
                    Applied::Inserted
                };
                (applied, prev)
            }
            Operation::Remove => match self.index_value_map.remove(index_mac) {
                Some(p) => {
                    lt_hash_subtract(&mut self.hash, &p);
                    (Applied::Removed, Some(p))
                }
                None => (Applied::RemovedUnknown, None),
            },
        }
    }

    /// The state in its stored form, for an opaque-bytes store: a format byte (1), the
    /// version (u64 BE), the 128-byte hash, the entry count (u32 BE), then each index MAC
    /// and value MAC, sorted by index MAC so equal states give equal bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut entries: Vec<_> = self.index_value_map.iter().collect();
        entries.sort_unstable_by_key(|(k, _)| *k);
        let mut out = Vec::with_capacity(STATE_HEADER_LEN + 64 * entries.len());
        out.push(STATE_FORMAT);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.hash);
        // A map larger than u32::MAX entries cannot exist in memory as 64-byte entries
        // on any supported target; saturate rather than wrap if it ever did.
        out.extend_from_slice(
            &u32::try_from(entries.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for (k, v) in entries {
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        out
    }

    /// Reads [`HashState::to_bytes`]' form back. The length must match the entry count
    /// exactly, so nothing is allocated beyond what the input holds.
    ///
    /// # Errors
    /// [`Error::Malformed`] for an unknown format, a wrong length or a repeated index.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < STATE_HEADER_LEN || bytes[0] != STATE_FORMAT {
            return Err(Error::Malformed("stored state: bad format or length"));
        }
        let mut version = [0u8; 8];
        version.copy_from_slice(&bytes[1..9]);
        let mut hash = [0u8; LT_HASH_LEN];
        hash.copy_from_slice(&bytes[9..9 + LT_HASH_LEN]);
        let mut count = [0u8; 4];
        count.copy_from_slice(&bytes[9 + LT_HASH_LEN..STATE_HEADER_LEN]);
        let count = u32::from_be_bytes(count) as usize;
        let body = &bytes[STATE_HEADER_LEN..];
        if body.len() / 64 != count || !body.len().is_multiple_of(64) {
            return Err(Error::Malformed(
                "stored state: entry count does not match length",
            ));
        }
        let mut index_value_map = HashMap::with_capacity(count);
        for e in body.chunks_exact(64) {
            let mut k = [0u8; 32];
            let mut v = [0u8; 32];
            k.copy_from_slice(&e[..32]);
            v.copy_from_slice(&e[32..]);
            if index_value_map.insert(k, v).is_some() {
                return Err(Error::Malformed("stored state: repeated index"));
            }
        }
        Ok(Self {
            version: u64::from_be_bytes(version),
            hash,
            index_value_map,
        })
    }

    /// The LTHash recomputed from scratch over the index map (the sum of every live
    /// value MAC). Equals [`HashState::hash`] for any state built by `apply` from
    /// [`HashState::new`]; useful to check a stored state.
    pub fn recompute_hash(&self) -> [u8; LT_HASH_LEN] {
        let mut h = [0u8; LT_HASH_LEN];
        for v in self.index_value_map.values() {
            lt_hash_add(&mut h, v);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_wire_values() {
        assert_eq!(Operation::from_wire(None), Ok(Operation::Set));
        assert_eq!(Operation::from_wire(Some(0)), Ok(Operation::Set));
        assert_eq!(Operation::from_wire(Some(1)), Ok(Operation::Remove));
        assert!(Operation::from_wire(Some(2)).is_err());
        assert!(Operation::from_wire(Some(-1)).is_err());
        assert_eq!(
            (Operation::Set.mac_byte(), Operation::Remove.mac_byte()),
            (1, 2)
        );
    }

    #[test]
    fn apply_reports_what_it_did() {
        let mut s = HashState::new();
        assert_eq!(
            s.apply(Operation::Set, &[1; 32], &[2; 32]),
            Applied::Inserted
        );
        assert_eq!(
            s.apply(Operation::Set, &[1; 32], &[3; 32]),
            Applied::Replaced
        );
        assert_eq!(s.index_value_map.get(&[1; 32]), Some(&[3; 32]));
        let mut only3 = [0u8; 128];
        lt_hash_add(&mut only3, &[3; 32]);
        assert_eq!(s.hash, only3);
        assert_eq!(
            s.apply(Operation::Remove, &[4; 32], &[0; 32]),
            Applied::RemovedUnknown
        );
        assert_eq!(s.hash, only3);
        assert_eq!(
            s.apply(Operation::Remove, &[1; 32], &[0; 32]),
            Applied::Removed
        );
        assert_eq!(s.hash, [0u8; 128]);
        assert!(s.index_value_map.is_empty());
    }

    #[test]
    fn stored_form_round_trips_and_rejects_damage() {
        let mut s = HashState::new();
        s.version = 77;
        for i in 0..5u8 {
            s.apply(Operation::Set, &[i; 32], &[i ^ 0xaa; 32]);
        }
        let b = s.to_bytes();
        assert_eq!(b.len(), 141 + 5 * 64);
        assert_eq!(HashState::from_bytes(&b), Ok(s.clone()));
        assert_eq!(HashState::new().to_bytes().len(), 141);
        assert_eq!(
            HashState::from_bytes(&HashState::new().to_bytes()),
            Ok(HashState::new())
        );
        assert!(HashState::from_bytes(&b[..b.len() - 1]).is_err());
        assert!(HashState::from_bytes(&b[..100]).is_err());
        let mut wrong_format = b.clone();
        wrong_format[0] = 2;
        assert!(HashState::from_bytes(&wrong_format).is_err());
        let mut huge_count = b.clone();
        huge_count[137..141].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(HashState::from_bytes(&huge_count).is_err());
        let mut repeated = b.clone();
        let first: Vec<u8> = repeated[141..141 + 32].to_vec();
        repeated[141 + 64..141 + 96].copy_from_slice(&first);
        assert!(HashState::from_bytes(&repeated).is_err());
    }

    #[test]
    fn lanes_wrap_around() {
        let e = lt_hash_expand(b"x");
        let mut h = [0u8; 128];
        lt_hash_subtract(&mut h, b"x");
        for (i, lane) in h.chunks_exact(2).enumerate() {
            let x = u16::from_le_bytes([e[2 * i], e[2 * i + 1]]);
            assert_eq!(u16::from_le_bytes([lane[0], lane[1]]), 0u16.wrapping_sub(x));
        }
    }
}
