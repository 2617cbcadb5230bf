//! App-state sync keys shared by our primary device (`protocolMessage`
//! `APP_STATE_SYNC_KEY_SHARE`): stored in the same commit as the message, before the
//! receipt, so a lagging event bus cannot lose them.

use prost::Message as _;
use wa_proto::e2e::{Message, protocol_message};
use wa_store::Batch;

/// Most keys taken from one share.
pub(crate) const MAX_SHARED_KEYS: usize = 64;
/// Longest key id or key data accepted, in bytes.
const MAX_KEY_PART: usize = 256;

/// The store key of an app-state sync key id: lower-case hex.
pub(crate) fn key_id_name(id: &[u8]) -> String {
    use std::fmt::Write as _;
    id.iter()
        .fold(String::with_capacity(id.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Adds the keys of an `APP_STATE_SYNC_KEY_SHARE` to `batch` (each stored as its encoded
/// `AppStateSyncKeyData`, under the hex of its id) and returns their ids. Empty when the
/// message is not a key share; keys without id or data, or oversized, are skipped.
pub(crate) fn stage_key_share(message: &Message, batch: &mut Batch) -> Vec<Vec<u8>> {
    let Some(pm) = message.protocol_message.as_deref() else {
        return Vec::new();
    };
    if pm.r#type != Some(protocol_message::Type::AppStateSyncKeyShare as i32) {
        return Vec::new();
    }
    let Some(share) = pm.app_state_sync_key_share.as_ref() else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for key in share.keys.iter().take(MAX_SHARED_KEYS) {
        let Some(id) = key.key_id.as_ref().and_then(|k| k.key_id.as_deref()) else {
            continue;
        };
        let Some(data) = key.key_data.as_ref() else {
            continue;
        };
        let len = data.key_data.as_deref().map_or(0, <[u8]>::len);
        if id.is_empty() || id.len() > MAX_KEY_PART || len == 0 || len > MAX_KEY_PART {
            continue;
        }
        batch.put_app_state_sync_key(&key_id_name(id), &data.encode_to_vec());
        ids.push(id.to_vec());
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_proto::e2e::{
        AppStateSyncKey, AppStateSyncKeyData, AppStateSyncKeyId, AppStateSyncKeyShare,
        ProtocolMessage,
    };

    fn share(keys: Vec<AppStateSyncKey>, ty: protocol_message::Type) -> Message {
        Message {
            protocol_message: Some(Box::new(ProtocolMessage {
                r#type: Some(ty as i32),
                app_state_sync_key_share: Some(AppStateSyncKeyShare {
                    keys,
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn key(id: &[u8], data: &[u8]) -> AppStateSyncKey {
        AppStateSyncKey {
            key_id: Some(AppStateSyncKeyId {
                key_id: Some(id.to_vec()),
                ..Default::default()
            }),
            key_data: Some(Box::new(AppStateSyncKeyData {
                key_data: Some(data.to_vec()),
                timestamp: Some(5),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn shares_are_staged_and_bad_keys_skipped() {
        let m = share(
            vec![key(&[0, 1], &[7; 32]), key(&[], &[1; 32]), key(&[2], &[])],
            protocol_message::Type::AppStateSyncKeyShare,
        );
        let mut b = Batch::new();
        assert_eq!(stage_key_share(&m, &mut b), vec![vec![0, 1]]);
        assert_eq!(b.len(), 1);
        // The same keys under another protocol type are not a share.
        let m = share(vec![key(&[0, 1], &[7; 32])], protocol_message::Type::Revoke);
        let mut b = Batch::new();
        assert!(stage_key_share(&m, &mut b).is_empty());
        assert!(b.is_empty());
        assert_eq!(key_id_name(&[0, 0xab]), "00ab");
    }
}
