//! The stored form of a contact's trusted-contact privacy token.

use crate::{Error, Result, Role};

/// Longest token accepted (tokens seen on the wire are a few dozen bytes).
pub const MAX_PRIVACY_TOKEN_LEN: usize = 4096;

const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 8 + 8;

/// What is kept per contact for WhatsApp's trusted-contact ("tctoken") privacy tokens:
/// the token the contact issued to us, which 1:1 messages, presence subscriptions and
/// picture queries to that contact carry, and when we last issued ours to the contact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrivacyToken {
    /// The token the contact issued to us; empty when we have none (only the time of our
    /// own issuance is known).
    pub token: Vec<u8>,
    /// When the contact issued `token` (unix seconds; 0 when there is none).
    pub timestamp: i64,
    /// When we last issued our token to the contact (unix seconds; 0 when never).
    pub sender_timestamp: i64,
}

impl PrivacyToken {
    /// The time used to prune the record: the later of the two timestamps.
    pub fn last_used(&self) -> i64 {
        self.timestamp.max(self.sender_timestamp)
    }

    /// The stored bytes: a version byte, both timestamps (big-endian), then the token.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.token.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.sender_timestamp.to_be_bytes());
        out.extend_from_slice(&self.token);
        out
    }

    /// Parses [`PrivacyToken::encode`]'s bytes; `key` names the item in the error.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a short record, an unknown version or an over-long token.
    pub fn decode(key: &str, bytes: &[u8]) -> Result<Self> {
        let corrupt = |reason: &str| Error::Corrupt {
            role: Role::PrivacyToken,
            scope: String::new(),
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        if bytes.len() < HEADER_LEN {
            return Err(corrupt("record shorter than its header"));
        }
        if bytes[0] != FORMAT_VERSION {
            return Err(corrupt("unknown privacy-token record version"));
        }
        let token = &bytes[HEADER_LEN..];
        if token.len() > MAX_PRIVACY_TOKEN_LEN {
            return Err(corrupt("token longer than the limit"));
        }
        let int = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(b)
        };
        Ok(Self {
            token: token.to_vec(),
            timestamp: int(1),
            sender_timestamp: int(9),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let t = PrivacyToken {
            token: vec![0, 1, 2, 255],
            timestamp: 1_764_000_000,
            sender_timestamp: -1,
        };
        let bytes = t.encode();
        assert_eq!(PrivacyToken::decode("k", &bytes).unwrap(), t);
        assert_eq!(t.last_used(), 1_764_000_000);
        let empty = PrivacyToken::default();
        assert_eq!(PrivacyToken::decode("k", &empty.encode()).unwrap(), empty);
        assert!(
            PrivacyToken::decode("k", &bytes[..5])
                .unwrap_err()
                .is_corrupt()
        );
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(PrivacyToken::decode("k", &v2).unwrap_err().is_corrupt());
        let mut long = bytes[..HEADER_LEN].to_vec();
        long.resize(HEADER_LEN + MAX_PRIVACY_TOKEN_LEN + 1, 7);
        assert!(PrivacyToken::decode("k", &long).unwrap_err().is_corrupt());
    }
}
