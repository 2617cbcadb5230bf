//! Verified business names: the `<business><verified_name>` answer of the usync
//! `business` protocol, whose content is a `VerifiedNameCertificate` protobuf.

use prost::Message;
use wa_binary::Node;
use wa_proto::vname_cert::VerifiedNameCertificate;
use wa_proto::vname_cert::verified_name_certificate::Details;

/// Longest certificate accepted, in bytes (real ones are a few hundred).
pub const MAX_CERTIFICATE_LEN: usize = 8 * 1024;
/// Longest verified name accepted, in bytes.
pub const MAX_VERIFIED_NAME_LEN: usize = 512;
/// Longest issuer or verification level accepted, in bytes.
const MAX_SHORT_LEN: usize = 64;

/// A business account's verified name, from its verified-name certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedName {
    /// The name the certificate vouches for.
    pub name: String,
    /// The certificate's serial number, when given.
    pub serial: Option<u64>,
    /// Who issued the certificate (`smb:wa` for the business app), when given.
    pub issuer: Option<String>,
    /// The `verified_level` the server attached (`unknown`, `low`, `high`), when given.
    pub level: Option<String>,
    /// When the certificate was issued (unix seconds), when given.
    pub issued_at: Option<u64>,
    /// The raw `VerifiedNameCertificate` bytes (details and signatures), for callers that
    /// verify or store it.
    pub certificate: Vec<u8>,
}

/// Why a `<verified_name>` was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// No certificate bytes.
    Empty,
    TooLarge,
    BadCertificate,
    BadDetails,
    NoName,
    BadName,
}

impl VerifiedName {
    /// Parses `<verified_name v verified_level serial>CERT</verified_name>`.
    pub(crate) fn from_node(node: &Node) -> Result<Self, Rejected> {
        let raw = match node.content_bytes() {
            None | Some([]) => return Err(Rejected::Empty),
            Some(b) if b.len() > MAX_CERTIFICATE_LEN => return Err(Rejected::TooLarge),
            Some(b) => b,
        };
        let cert = VerifiedNameCertificate::decode(raw).map_err(|_| Rejected::BadCertificate)?;
        let details = Details::decode(cert.details.as_deref().unwrap_or_default())
            .map_err(|_| Rejected::BadDetails)?;
        let name = details.verified_name.ok_or(Rejected::NoName)?;
        if name.is_empty() || name.len() > MAX_VERIFIED_NAME_LEN {
            return Err(Rejected::BadName);
        }
        let serial = details
            .serial
            .or_else(|| node.attr_opt::<u64>("serial").ok().flatten());
        Ok(Self {
            name,
            serial,
            issuer: details.issuer.filter(|s| s.len() <= MAX_SHORT_LEN),
            level: short_attr(node, "verified_level"),
            issued_at: details.issue_time,
            certificate: raw.to_vec(),
        })
    }
}

fn short_attr(node: &Node, key: &str) -> Option<String> {
    node.attr_opt::<&str>(key)
        .ok()
        .flatten()
        .filter(|s| !s.is_empty() && s.len() <= MAX_SHORT_LEN)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(details: Option<Vec<u8>>) -> Vec<u8> {
        VerifiedNameCertificate {
            details,
            signature: Some(vec![7; 64]),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn details(name: Option<&str>) -> Vec<u8> {
        Details {
            serial: Some(42),
            issuer: Some("smb:wa".into()),
            verified_name: name.map(str::to_owned),
            issue_time: Some(1_700_000_000),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn node(bytes: Vec<u8>) -> Node {
        Node::builder("verified_name")
            .attr("v", "1")
            .attr("verified_level", "high")
            .attr("serial", "99")
            .bytes(bytes)
            .build()
    }

    #[test]
    fn reads_the_certificate_details() {
        let raw = cert(Some(details(Some("Acme Shop"))));
        let v = VerifiedName::from_node(&node(raw.clone())).unwrap();
        assert_eq!(v.name, "Acme Shop");
        assert_eq!(v.serial, Some(42), "the certificate's serial wins");
        assert_eq!(v.issuer.as_deref(), Some("smb:wa"));
        assert_eq!(v.level.as_deref(), Some("high"));
        assert_eq!(v.issued_at, Some(1_700_000_000));
        assert_eq!(v.certificate, raw);
    }

    #[test]
    fn rejects_bad_certificates() {
        let cases = [
            (Node::builder("verified_name").build(), Rejected::Empty),
            (node(vec![0xFF; 10]), Rejected::BadCertificate),
            (node(cert(Some(vec![0x0A, 0x80]))), Rejected::BadDetails),
            (node(cert(Some(details(None)))), Rejected::NoName),
            (node(cert(None)), Rejected::NoName),
            (node(cert(Some(details(Some(""))))), Rejected::BadName),
            (
                node(cert(Some(details(Some(
                    &"n".repeat(MAX_VERIFIED_NAME_LEN + 1),
                ))))),
                Rejected::BadName,
            ),
            (node(vec![0; MAX_CERTIFICATE_LEN + 1]), Rejected::TooLarge),
        ];
        for (n, want) in cases {
            assert_eq!(VerifiedName::from_node(&n), Err(want), "{n:?}");
        }
    }
}
