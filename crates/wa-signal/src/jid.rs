//! WhatsApp JIDs as Signal addresses, and pre-key bundles read from key-fetch results.

use wa_binary::{Jid, Node};
use wa_crypto::{KEY_TYPE_DJB, PublicKey, Signature};

use crate::Error;
use crate::address::{ProtocolAddress, SignalAddress};
use crate::keys::PreKeyBundle;

/// Note: `Jid` also has an inherent `signal_address()` returning `(name, device)`; method
/// calls on a concrete `Jid` pick that one. The repository's generic methods use this impl.
impl SignalAddress for Jid {
    /// The user (plus `_<domain>` for a non-zero addressing domain) and the device id, as
    /// `wa_binary::Jid::signal_address` spells it.
    fn signal_address(&self) -> ProtocolAddress {
        let (name, device_id) = Jid::signal_address(self);
        ProtocolAddress { name, device_id }
    }
}

fn child_bytes<'a>(node: &'a Node, tag: &str, what: &'static str) -> Result<&'a [u8], Error> {
    node.child(tag)
        .and_then(Node::content_bytes)
        .ok_or_else(|| Error::InvalidMessage(what))
}

/// A big-endian unsigned integer of 1 to `max` bytes.
fn be_uint(bytes: &[u8], max: usize, what: &'static str) -> Result<u32, Error> {
    if bytes.is_empty() || bytes.len() > max {
        return Err(Error::InvalidMessage(what));
    }
    Ok(bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
}

fn key(bytes: &[u8], what: &'static str) -> Result<PublicKey, Error> {
    PublicKey::from_slice(bytes).map_err(|_| Error::InvalidMessage(what))
}

impl PreKeyBundle {
    /// Reads one `<user jid=..>` entry of a key-fetch result (`<iq type="result"><list>
    /// <user>..`): `<registration>` (4 bytes), `<type>` (`05`), `<identity>` (32 bytes),
    /// `<skey>` with `<id>` (3 bytes), `<value>`, `<signature>`, and an optional `<key>` with
    /// `<id>` and `<value>`. Returns the device's JID with the bundle; the signature is
    /// checked later, when the session is built.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] for a missing or malformed part, or a per-user `<error>`.
    pub fn from_user_node(user: &Node) -> Result<(Jid, PreKeyBundle), Error> {
        if user.child("error").is_some() {
            return Err(Error::InvalidMessage(
                "key fetch returned an error for this user",
            ));
        }
        let jid: Jid = user
            .attr("jid")
            .map_err(|_| Error::InvalidMessage("user entry without a jid"))?;
        if let Some(t) = user.child("type").and_then(Node::content_bytes)
            && t != [KEY_TYPE_DJB]
        {
            return Err(Error::InvalidMessage("unknown key type"));
        }
        let skey = user
            .child("skey")
            .ok_or_else(|| Error::InvalidMessage("missing <skey>"))?;
        let pre_key = match user.child("key") {
            Some(k) => Some((
                be_uint(
                    child_bytes(k, "id", "missing pre-key id")?,
                    3,
                    "bad pre-key id",
                )?,
                key(child_bytes(k, "value", "missing pre-key")?, "bad pre-key")?,
            )),
            None => None,
        };
        let bundle = PreKeyBundle {
            registration_id: be_uint(
                child_bytes(user, "registration", "missing <registration>")?,
                4,
                "bad registration id",
            )?,
            device_id: Jid::signal_address(&jid).1,
            pre_key,
            signed_pre_key_id: be_uint(
                child_bytes(skey, "id", "missing signed pre-key id")?,
                3,
                "bad signed pre-key id",
            )?,
            signed_pre_key: key(
                child_bytes(skey, "value", "missing signed pre-key")?,
                "bad signed pre-key",
            )?,
            signed_pre_key_signature: Signature::from_slice(child_bytes(
                skey,
                "signature",
                "missing signed pre-key signature",
            )?)
            .map_err(|_| Error::InvalidMessage("bad signed pre-key signature"))?,
            identity_key: key(
                child_bytes(user, "identity", "missing <identity>")?,
                "bad identity key",
            )?,
        };
        Ok((jid, bundle))
    }
}
