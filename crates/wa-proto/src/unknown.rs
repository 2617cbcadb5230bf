//! Preservation of fields the schema does not know.

use bytes::{Buf, BufMut};
use prost::DecodeError;
use prost::encoding::{DecodeContext, WireType, encode_key, skip_field};

/// Fields of a message that its schema does not define, kept as the raw wire bytes
/// (key and value) in the order they were read, and written back after the known
/// fields when the message is encoded.
///
/// Every generated message has one of these as its `unknown_fields` member, so decoding
/// and re-encoding never drops data: fields added by a newer WhatsApp version, or a known
/// field number arriving with an unexpected wire type, survive a round trip.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct UnknownFields {
    raw: Vec<u8>,
}

impl UnknownFields {
    /// Whether no unknown field was read (or all were cleared).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Length in bytes of the stored fields, as they will be encoded.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// The stored fields as protobuf wire bytes (each one a key followed by its value).
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// Removes every stored field.
    pub fn clear(&mut self) {
        self.raw.clear();
    }

    /// Appends raw protobuf wire bytes to be written out as unknown fields.
    ///
    /// The caller is responsible for `raw` being well-formed fields (keys and values);
    /// they are written verbatim when the containing message is encoded.
    pub fn push_raw(&mut self, raw: &[u8]) {
        self.raw.extend_from_slice(raw);
    }

    /// Reads the value of a field whose key (`tag`, `wire_type`) was just decoded and
    /// stores the field. Used by the generated `prost::Message::merge_field`.
    ///
    /// The value is consumed by `prost::encoding::skip_field`, which checks lengths
    /// against the input and bounds group nesting, so this never reads past the input
    /// and stores at most as many bytes as it consumed (plus the re-encoded key).
    pub fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let start = self.raw.len();
        encode_key(tag, wire_type, &mut self.raw);
        let mut recorder = Recorder {
            inner: buf,
            out: &mut self.raw,
        };
        let result = skip_field(wire_type, tag, &mut recorder, ctx);
        if result.is_err() {
            self.raw.truncate(start);
        }
        result
    }

    /// Writes the stored fields. Used by the generated `prost::Message::encode_raw`.
    pub fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.raw);
    }

    /// Encoded length of the stored fields. Used by `prost::Message::encoded_len`.
    pub fn encoded_len(&self) -> usize {
        self.raw.len()
    }
}

impl core::fmt::Debug for UnknownFields {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "UnknownFields({} bytes)", self.raw.len())
    }
}

/// A `Buf` that copies every byte consumed from `inner` into `out`.
struct Recorder<'a, B: Buf> {
    inner: &'a mut B,
    out: &'a mut Vec<u8>,
}

impl<B: Buf> Buf for Recorder<'_, B> {
    fn remaining(&self) -> usize {
        self.inner.remaining()
    }

    fn chunk(&self) -> &[u8] {
        self.inner.chunk()
    }

    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            let chunk = self.inner.chunk();
            let n = cnt.min(chunk.len());
            if n == 0 {
                // Past the end: let the inner buffer report it as `Buf::advance` does.
                self.inner.advance(cnt);
                return;
            }
            self.out.extend_from_slice(&chunk[..n]);
            self.inner.advance(n);
            cnt -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::encoding::decode_key;

    fn read_all(mut input: &[u8]) -> Result<UnknownFields, DecodeError> {
        let mut u = UnknownFields::default();
        while !input.is_empty() {
            let (tag, wt) = decode_key(&mut input)?;
            u.merge_field(tag, wt, &mut input, DecodeContext::default())?;
        }
        Ok(u)
    }

    #[test]
    fn keeps_every_wire_type_verbatim() {
        let input = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x15, 1, 2, 3, 4, // 2: fixed32
            0x19, 1, 2, 3, 4, 5, 6, 7, 8, // 3: fixed64
            0x22, 3, b'a', b'b', b'c', // 4: length-delimited
            0x2b, 0x08, 0x01, 0x2c, // 5: group holding field 1 = 1
        ];
        let u = read_all(&input).unwrap();
        assert_eq!(u.as_bytes(), &input);
        let mut out = Vec::new();
        u.encode_raw(&mut out);
        assert_eq!(out, input);
        assert_eq!(u.encoded_len(), input.len());
    }

    #[test]
    fn non_canonical_varints_are_kept_as_read() {
        let input = [0x08, 0x80, 0x80, 0x00];
        assert_eq!(read_all(&input).unwrap().as_bytes(), &input);
    }

    #[test]
    fn truncated_and_mismatched_input_is_rejected_without_storing() {
        for bad in [
            &[0x22, 5, 1][..],
            &[0x15, 1, 2],
            &[0x2b, 0x08, 0x01],
            &[0x2b, 0x34],
            &[0x0c],
        ] {
            let mut input = bad;
            let (tag, wt) = decode_key(&mut input).unwrap();
            let mut u = UnknownFields::default();
            assert!(
                u.merge_field(tag, wt, &mut input, DecodeContext::default())
                    .is_err()
            );
            assert!(u.is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn deeply_nested_groups_hit_the_recursion_limit() {
        let mut input = vec![0x0b; 200];
        input.extend(std::iter::repeat_n(0x0c, 200));
        assert!(read_all(&input).is_err());
    }
}
