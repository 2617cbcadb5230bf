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
