//! The transport phase: one AES-256-GCM key per direction, each with its own counter.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, Tag};
use bytes::{BufMut, BytesMut};

use crate::Error;
use crate::frame::{MAX_FRAME_LEN, put_len};
use crate::symmetric::{cipher, nonce};

/// The AES-GCM tag appended to every frame.
pub const TAG_LEN: usize = 16;

/// The largest plaintext that still fits in one frame with its tag.
pub const MAX_PLAINTEXT_LEN: usize = MAX_FRAME_LEN - TAG_LEN;

/// One direction: a key schedule built once, and the next nonce counter.
struct Direction {
    aead: Aes256Gcm,
    /// The counter for the next frame; `None` once 2^32 frames have used every nonce, or
    /// (receive side) after a frame failed to authenticate.
    next: Option<u32>,
}

impl Direction {
    fn new(key: &[u8; 32]) -> Self {
        Self {
            aead: cipher(key),
            next: Some(0),
        }
    }

    fn take(&mut self) -> Option<u32> {
        let n = self.next?;
        self.next = n.checked_add(1);
        Some(n)
    }
}

/// The transport cipher pair the handshake ends with, sans IO.
///
/// Every frame is `AES-256-GCM(key, nonce = 8 zero bytes || counter (4 bytes BE), aad =
/// "", plaintext) || tag`, with independent counters from 0 for sending and receiving.
/// The AES key schedules are computed once, at the end of the handshake, never per frame.
/// A counter never wraps: after 2^32 frames in one direction, [`Error::CounterExhausted`].
/// After a received frame fails to authenticate, receiving is closed for good
/// ([`Error::TransportClosed`]), because the peer's counter can no longer be trusted.
pub struct Transport {
    send: Direction,
    recv: Direction,
    recv_failed: bool,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("send_counter", &self.send.next)
            .field("recv_counter", &self.recv.next)
            .field("recv_failed", &self.recv_failed)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Builds a transport from the two keys the handshake's split produced.
    pub(crate) fn new(send_key: &[u8; 32], recv_key: &[u8; 32]) -> Self {
        Self {
            send: Direction::new(send_key),
            recv: Direction::new(recv_key),
            recv_failed: false,
        }
    }

    /// Encrypts `plaintext` and appends the whole frame (`len || ciphertext || tag`) to
    /// `out`, ready to be sent. One copy of the plaintext, encrypted in place in `out`.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] above [`MAX_PLAINTEXT_LEN`] (nothing is appended and no
    /// counter is used); [`Error::CounterExhausted`].
    pub fn encrypt_into(&mut self, plaintext: &[u8], out: &mut BytesMut) -> Result<(), Error> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(Error::PayloadTooLarge(plaintext.len()));
        }
        let n = self.send.take().ok_or(Error::CounterExhausted)?;
        out.reserve(3 + plaintext.len() + TAG_LEN);
        put_len(plaintext.len() + TAG_LEN, out)?;
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .send
            .aead
            .encrypt_in_place_detached(&nonce(n), &[], &mut out[start..])
            // The length was bounded above, far below AES-GCM's 64 GiB limit.
            .map_err(|_| Error::PayloadTooLarge(plaintext.len()))?;
        out.put_slice(&tag);
        Ok(())
    }

    /// Encrypts `plaintext` into a new buffer holding the whole frame.
    ///
    /// # Errors
    /// As [`encrypt_into`](Self::encrypt_into).
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<BytesMut, Error> {
        let mut out = BytesMut::with_capacity(3 + plaintext.len() + TAG_LEN);
        self.encrypt_into(plaintext, &mut out)?;
        Ok(out)
    }

    /// Decrypts one frame payload (as [`FrameDecoder`](crate::FrameDecoder) returns it,
    /// without the length header) in place; on success `frame` holds the plaintext.
    ///
    /// # Errors
    /// [`Error::TransportFrameTooShort`], [`Error::TransportDecrypt`] (receiving is then
    /// closed), [`Error::TransportClosed`], [`Error::CounterExhausted`].
    pub fn decrypt_in_place(&mut self, frame: &mut BytesMut) -> Result<(), Error> {
        let body_len = self.open(frame)?;
        frame.truncate(body_len);
        Ok(())
    }

    /// Decrypts one frame payload into a new vector.
    ///
    /// # Errors
    /// As [`decrypt_in_place`](Self::decrypt_in_place).
    pub fn decrypt(&mut self, frame: &[u8]) -> Result<Vec<u8>, Error> {
        let mut buf = frame.to_vec();
        let body_len = self.open(&mut buf)?;
        buf.truncate(body_len);
        Ok(buf)
    }

    /// Decrypts one frame payload held in any mutable slice, in place; returns the
    /// plaintext length (the plaintext is `frame[..len]`, the tag bytes are left behind).
    ///
    /// # Errors
    /// As [`decrypt_in_place`](Self::decrypt_in_place).
    pub fn decrypt_slice_in_place(&mut self, frame: &mut [u8]) -> Result<usize, Error> {
        self.open(frame)
    }

    /// Authenticates and decrypts `frame` in place, returning the plaintext length.
    fn open(&mut self, frame: &mut [u8]) -> Result<usize, Error> {
        if self.recv_failed {
            return Err(Error::TransportClosed);
        }
        let Some(body_len) = frame.len().checked_sub(TAG_LEN) else {
            self.recv_failed = true;
            return Err(Error::TransportFrameTooShort(frame.len()));
        };
        let n = self.recv.take().ok_or(Error::CounterExhausted)?;
        let (body, tag) = frame.split_at_mut(body_len);
        let tag = Tag::from_slice(tag);
        if self
            .recv
            .aead
            .decrypt_in_place_detached(&nonce(n), &[], body, tag)
            .is_err()
        {
            self.recv_failed = true;
            return Err(Error::TransportDecrypt);
        }
        Ok(body_len)
    }

    /// How many frames have been sent so far.
    pub fn sent_frames(&self) -> u64 {
        self.send.next.map_or(1 << 32, u64::from)
    }

    /// How many frames have been received so far.
    pub fn received_frames(&self) -> u64 {
        self.recv.next.map_or(1 << 32, u64::from)
    }

    #[cfg(test)]
    fn set_counters(&mut self, send: u32, recv: u32) {
        self.send.next = Some(send);
        self.recv.next = Some(recv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Transport, Transport) {
        let k1 = [1u8; 32];
        let k2 = [2u8; 32];
        (Transport::new(&k1, &k2), Transport::new(&k2, &k1))
    }

    /// Strips the 3-byte length header after checking it.
    fn body(frame: &[u8]) -> &[u8] {
        let len =
            (usize::from(frame[0]) << 16) | (usize::from(frame[1]) << 8) | usize::from(frame[2]);
        assert_eq!(len, frame.len() - 3);
        &frame[3..]
    }

    #[test]
    fn round_trip_both_directions_with_independent_counters() {
        let (mut a, mut b) = pair();
        for i in 0..5u8 {
            let f = a.encrypt(&[i; 40]).unwrap();
            assert_eq!(b.decrypt(body(&f)).unwrap(), vec![i; 40]);
        }
        let f = b.encrypt(b"back").unwrap();
        assert_eq!(a.decrypt(body(&f)).unwrap(), b"back");
        assert_eq!((a.sent_frames(), a.received_frames()), (5, 1));
        assert_eq!((b.sent_frames(), b.received_frames()), (1, 5));
    }

    #[test]
    fn in_place_matches_copying_api() {
        let (mut a, mut b) = pair();
        let (mut a2, mut b2) = pair();
        let f1 = a.encrypt(b"same").unwrap();
        let f2 = a2.encrypt(b"same").unwrap();
        assert_eq!(f1, f2);
        let mut frame = BytesMut::from(body(&f1));
        b.decrypt_in_place(&mut frame).unwrap();
        assert_eq!(&frame[..], b"same");
        assert_eq!(b2.decrypt(body(&f2)).unwrap(), b"same");
    }

    #[test]
    fn out_of_order_frame_fails_and_closes_receiving() {
        let (mut a, mut b) = pair();
        let _skipped = a.encrypt(b"first").unwrap();
        let second = a.encrypt(b"second").unwrap();
        assert_eq!(b.decrypt(body(&second)), Err(Error::TransportDecrypt));
        let third = a.encrypt(b"third").unwrap();
        assert_eq!(b.decrypt(body(&third)), Err(Error::TransportClosed));
    }

    #[test]
    fn tampered_frame_fails() {
        let (mut a, mut b) = pair();
        let f = a.encrypt(b"payload").unwrap();
        let mut t = body(&f).to_vec();
        t[2] ^= 1;
        assert_eq!(b.decrypt(&t), Err(Error::TransportDecrypt));
    }

    #[test]
    fn short_frame_is_rejected() {
        let (_, mut b) = pair();
        assert_eq!(
            b.decrypt(&[0u8; 15]),
            Err(Error::TransportFrameTooShort(15))
        );
    }

    #[test]
    fn counter_never_wraps() {
        let (mut a, mut b) = pair();
        a.set_counters(u32::MAX, 0);
        b.set_counters(0, u32::MAX);
        let last = a.encrypt(b"last").unwrap();
        assert_eq!(a.sent_frames(), 1 << 32);
        assert_eq!(a.encrypt(b"one more"), Err(Error::CounterExhausted));
        assert_eq!(b.decrypt(body(&last)).unwrap(), b"last");
        assert_eq!(b.decrypt(body(&last)), Err(Error::CounterExhausted));
    }

    #[test]
    fn oversized_plaintext_uses_no_counter() {
        let (mut a, _) = pair();
        let big = vec![0u8; MAX_PLAINTEXT_LEN + 1];
        let mut out = BytesMut::new();
        assert_eq!(
            a.encrypt_into(&big, &mut out),
            Err(Error::PayloadTooLarge(MAX_PLAINTEXT_LEN + 1))
        );
        assert!(out.is_empty());
        assert_eq!(a.sent_frames(), 0);
    }
}
