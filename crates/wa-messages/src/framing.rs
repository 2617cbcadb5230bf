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
