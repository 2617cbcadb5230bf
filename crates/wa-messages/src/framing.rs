use prost::Message as _;
use rand_core::CryptoRngCore;
use wa_proto::e2e::Message;

use crate::Error;

/// Serializes `message` and appends WhatsApp's random padding (1 to 16 bytes, each equal to
/// the pad length): the plaintext that goes into a Signal session or sender-key encryption.
pub fn encode_plaintext(message: &Message, rng: &mut impl CryptoRngCore) -> Vec<u8> {
    wa_signal::pad_message(&message.encode_to_vec(), rng)
}

/// Strips the padding from a decrypted plaintext and decodes the `Message` inside.
pub fn decode_plaintext(padded: &[u8]) -> Result<Message, Error> {
    let body = wa_signal::unpad_message(padded).map_err(|_| Error::BadPadding)?;
    Ok(Message::decode(body)?)
}

/// A message encoded once, and the forms a send makes of it (the padded plaintext, the
/// copy for our own devices, the sent-message record, the reporting token's input)
/// without encoding or copying the message again. Each form is byte for byte what
/// encoding the corresponding `Message` or `WebMessageInfo` would give.
pub(crate) struct Encoded<'a> {
    message: &'a Message,
    bytes: Vec<u8>,
}

impl<'a> Encoded<'a> {
    pub(crate) fn new(message: &'a Message) -> Self {
        Self {
            message,
            bytes: message.encode_to_vec(),
        }
    }

    /// The message.
    pub(crate) fn message(&self) -> &'a Message {
        self.message
    }

    /// The message's protobuf encoding.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// [`encode_plaintext`] of the message.
    pub(crate) fn padded(&self, rng: &mut impl CryptoRngCore) -> Vec<u8> {
        wa_signal::pad_message(&self.bytes, rng)
    }

    /// [`encode_plaintext`] of `deviceSentMessage{destinationJid: chat, message}` with
    /// the message's context info, the copy our own other devices get.
    pub(crate) fn device_sent_padded(&self, chat: &str, rng: &mut impl CryptoRngCore) -> Vec<u8> {
        use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
        let field_len = |tag: u32, len: usize| {
            prost::encoding::key_len(tag) + encoded_len_varint(len as u64) + len
        };
        // Field numbers: Message.deviceSentMessage 31, .messageContextInfo 35;
        // DeviceSentMessage.destinationJid 1, .message 2.
        let inner_len = field_len(1, chat.len()) + field_len(2, self.bytes.len());
        let context = self.message.message_context_info.as_ref();
        let mut out = Vec::with_capacity(
            field_len(31, inner_len) + context.map_or(0, |c| field_len(35, c.encoded_len())) + 16,
        );
        encode_key(31, WireType::LengthDelimited, &mut out);
        encode_varint(inner_len as u64, &mut out);
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(chat.len() as u64, &mut out);
        out.extend_from_slice(chat.as_bytes());
        encode_key(2, WireType::LengthDelimited, &mut out);
        encode_varint(self.bytes.len() as u64, &mut out);
        out.extend_from_slice(&self.bytes);
        if let Some(context) = context {
            prost::encoding::message::encode(35, context, &mut out);
        }
        wa_signal::pad_message(&out, rng)
    }

    /// The encoding of `WebMessageInfo{key, message, messageTimestamp: now}`, the record
    /// kept of a sent message.
    pub(crate) fn sent_record(&self, key: &wa_proto::common::MessageKey, now: u64) -> Vec<u8> {
        use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
        let mut out = Vec::with_capacity(
            key.encoded_len()
                + self.bytes.len()
                + 2 * encoded_len_varint(self.bytes.len() as u64)
                + 24,
        );
        // Field numbers: WebMessageInfo.key 1, .message 2, .messageTimestamp 3.
        prost::encoding::message::encode(1, key, &mut out);
        encode_key(2, WireType::LengthDelimited, &mut out);
        encode_varint(self.bytes.len() as u64, &mut out);
        out.extend_from_slice(&self.bytes);
        prost::encoding::uint64::encode(3, &now, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use wa_binary::Jid;
    use wa_proto::common::MessageKey;
    use wa_proto::e2e::{ExtendedTextMessage, MessageContextInfo};
    use wa_proto::web::WebMessageInfo;

    use super::*;

    fn messages() -> Vec<Message> {
        let text = Message {
            conversation: Some("hello".into()),
            ..Default::default()
        };
        let with_context = Message {
            extended_text_message: Some(Box::new(ExtendedTextMessage {
                text: Some("x".repeat(300)),
                ..Default::default()
            })),
            message_context_info: Some(Box::new(MessageContextInfo {
                message_secret: Some(vec![7; 32]),
                ..Default::default()
            })),
            ..Default::default()
        };
        // Fields this schema does not know ride along in the message's bytes.
        let mut unknown = text.clone();
        unknown.merge(&[0xf8, 0xff, 0x03, 0x01][..]).unwrap();
        assert!(unknown.encoded_len() > text.encoded_len());
        vec![Message::default(), text, with_context, unknown]
    }

    #[test]
    fn forms_equal_encoding_the_structures() {
        let key = MessageKey {
            remote_jid: Some("15550000001@s.whatsapp.net".into()),
            from_me: Some(true),
            id: Some("3EB0AABBCCDD".into()),
            ..Default::default()
        };
        for message in messages() {
            let encoded = Encoded::new(&message);
            assert_eq!(encoded.bytes(), message.encode_to_vec());
            assert_eq!(
                encoded.padded(&mut StdRng::seed_from_u64(1)),
                encode_plaintext(&message, &mut StdRng::seed_from_u64(1))
            );
            // A long chat makes the copy's lengths take two varint bytes.
            for chat in [Jid::pn("15550000002"), Jid::pn("9".repeat(200))] {
                let device_sent = crate::send::device_sent(&chat, &message);
                assert_eq!(
                    encoded.device_sent_padded(&chat.to_string(), &mut StdRng::seed_from_u64(2)),
                    encode_plaintext(&device_sent, &mut StdRng::seed_from_u64(2))
                );
            }
            for now in [0, 1_700_000_000, u64::MAX] {
                let record = WebMessageInfo {
                    key: Some(key.clone()),
                    message: Some(Box::new(message.clone())),
                    message_timestamp: Some(now),
                    ..Default::default()
                };
                assert_eq!(encoded.sent_record(&key, now), record.encode_to_vec());
            }
        }
    }
}
