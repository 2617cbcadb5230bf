//! The 3-byte length framing under the Noise layer, and the connection intro.
//!
//! Every message in both directions is `len (3 bytes, big-endian) || payload`. A websocket
//! message may carry several frames or part of one. The client's first websocket message
//! starts with the intro: optionally `'E' 'D' 00 01 || len (3 bytes) || routing info`,
//! then the header `'W' 'A' 06 03`, then the first frame.

use bytes::{Buf, BufMut, BytesMut};

use crate::Error;

/// `'W' 'A'`, protocol edition 6, binary dictionary version 3: the first bytes the client
/// sends (after the optional routing prefix) and the Noise prologue.
pub const WA_HEADER: [u8; 4] = [b'W', b'A', 6, 3];

/// The magic that introduces the optional routing-info prefix.
pub const ROUTING_MAGIC: [u8; 4] = [b'E', b'D', 0, 1];

/// The largest payload a 3-byte length can describe: 16 MiB - 1.
pub const MAX_FRAME_LEN: usize = (1 << 24) - 1;

/// The largest routing-info prefix the server-side decoder accepts. Routing info learned
/// from `<edge_routing>` is a few dozen bytes; anything near this is hostile.
pub const MAX_ROUTING_INFO_LEN: usize = 4096;

/// Appends `len (3 bytes BE) || payload` to `out`.
///
/// # Errors
/// [`Error::PayloadTooLarge`] when `payload` is longer than [`MAX_FRAME_LEN`].
pub fn encode_frame(payload: &[u8], out: &mut BytesMut) -> Result<(), Error> {
    put_len(payload.len(), out)?;
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends the client's connection intro: the `ED` routing prefix when `routing_info` is
/// given, then [`WA_HEADER`].
///
/// # Errors
/// [`Error::PayloadTooLarge`] when the routing info does not fit a 3-byte length.
pub fn encode_intro(routing_info: Option<&[u8]>, out: &mut BytesMut) -> Result<(), Error> {
    if let Some(ri) = routing_info {
        out.extend_from_slice(&ROUTING_MAGIC);
        put_len(ri.len(), out)?;
        out.extend_from_slice(ri);
    }
    out.extend_from_slice(&WA_HEADER);
    Ok(())
}

pub(crate) fn put_len(len: usize, out: &mut BytesMut) -> Result<(), Error> {
    if len > MAX_FRAME_LEN {
        return Err(Error::PayloadTooLarge(len));
    }
    // The check above keeps len below 2^24, so the top byte of the u32 is zero.
    out.put_slice(&(len as u32).to_be_bytes()[1..]);
    Ok(())
}

fn read_len(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

/// What the client sent before its first frame (server side only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intro {
    /// The routing info from an `ED 00 01` prefix, if there was one.
    pub routing_info: Option<Vec<u8>>,
    /// The 4-byte header (always [`WA_HEADER`]; anything else is rejected).
    pub header: [u8; 4],
}

#[derive(Debug)]
enum State {
    /// Server side, before the intro has been read.
    AwaitIntro,
    /// Reading frames.
    Frames,
    /// An error was returned; nothing more is produced.
    Failed,
}

/// Reassembles frames from websocket messages, sans IO.
///
/// Call order: [`push`](Self::push) the bytes of each websocket message as it arrives,
/// then call [`next_frame`](Self::next_frame) until it returns `Ok(None)`. Each frame is
/// returned as its own `BytesMut` (split off the internal buffer, no further copy), ready
/// for [`Transport::decrypt_in_place`](crate::Transport::decrypt_in_place).
///
/// A length header above the limit is an error as soon as its three bytes have arrived:
/// the frame body is never buffered. After any error the decoder is failed and returns
/// [`Error::DecoderFailed`] forever.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    state: State,
    max_frame_len: usize,
    intro: Option<Intro>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::client()
    }
}

impl FrameDecoder {
    /// A decoder for the client side: the server's bytes are plain frames.
    pub fn client() -> Self {
        Self {
            buf: BytesMut::new(),
            state: State::Frames,
            max_frame_len: MAX_FRAME_LEN,
            intro: None,
        }
    }

    /// A decoder for the server side: the client's bytes start with the intro (optional
    /// `ED` routing prefix, then `WA 06 03`), which is stripped and kept in
    /// [`intro`](Self::intro).
    pub fn server() -> Self {
        Self {
            state: State::AwaitIntro,
            ..Self::client()
        }
    }

    /// Lowers the largest accepted frame payload (default and ceiling: [`MAX_FRAME_LEN`]).
    #[must_use]
    pub fn with_max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max.min(MAX_FRAME_LEN);
        self
    }

    /// The intro the client sent, once it has been read (server side).
    pub fn intro(&self) -> Option<&Intro> {
        self.intro.as_ref()
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the bytes of one websocket message.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`], [`Error::BadIntro`], [`Error::RoutingInfoTooLarge`] when a
    /// header that is now complete is invalid (the buffer is then dropped), or
    /// [`Error::DecoderFailed`] after an earlier error.
    pub fn push(&mut self, data: &[u8]) -> Result<(), Error> {
        if matches!(self.state, State::Failed) {
            return Err(Error::DecoderFailed);
        }
        self.buf.extend_from_slice(data);
        let r = self.check_headers();
        self.fail_on(r)
    }

    /// Pops the next complete frame payload, or `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn next_frame(&mut self) -> Result<Option<BytesMut>, Error> {
        let r = self.next_frame_inner();
        self.fail_on(r)
    }

    fn fail_on<T>(&mut self, r: Result<T, Error>) -> Result<T, Error> {
        if r.is_err() {
            self.state = State::Failed;
            self.buf = BytesMut::new();
        }
        r
    }

    fn next_frame_inner(&mut self) -> Result<Option<BytesMut>, Error> {
        match self.state {
            State::Failed => return Err(Error::DecoderFailed),
            State::AwaitIntro => {
                if !self.read_intro()? {
                    return Ok(None);
                }
            }
            State::Frames => {}
        }
        if self.buf.len() < 3 {
            return Ok(None);
        }
        let len = read_len(&self.buf);
        if len > self.max_frame_len {
            return Err(Error::FrameTooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        if self.buf.len() < 3 + len {
            return Ok(None);
        }
        self.buf.advance(3);
        Ok(Some(self.buf.split_to(len)))
    }

    /// Validates, without consuming, every header that is complete in the buffer, so that
    /// an oversized frame is refused before its body is waited for.
    fn check_headers(&self) -> Result<(), Error> {
        let mut at = match self.state {
            State::AwaitIntro => match intro_len(&self.buf)? {
                Some(n) => n,
                None => return Ok(()),
            },
            _ => 0,
        };
        while self.buf.len() >= at + 3 {
            let len = read_len(&self.buf[at..]);
            if len > self.max_frame_len {
                return Err(Error::FrameTooLarge {
                    len,
                    max: self.max_frame_len,
                });
            }
            at += 3 + len;
        }
        Ok(())
    }

    /// Consumes the intro if it is complete; `Ok(false)` when more bytes are needed.
    fn read_intro(&mut self) -> Result<bool, Error> {
        let Some(total) = intro_len(&self.buf)? else {
            return Ok(false);
        };
        let routing_info = if total > WA_HEADER.len() {
            let ri = self.buf[7..total - WA_HEADER.len()].to_vec();
            Some(ri)
        } else {
            None
        };
        let mut header = [0u8; 4];
        header.copy_from_slice(&self.buf[total - 4..total]);
        self.buf.advance(total);
        self.intro = Some(Intro {
            routing_info,
            header,
        });
        self.state = State::Frames;
        Ok(true)
    }
}

/// The length of the intro at the start of `b`, `Ok(None)` if incomplete (every byte
/// present so far is checked, so a wrong first byte fails at once).
fn intro_len(b: &[u8]) -> Result<Option<usize>, Error> {
    let header_at = if b.first() == Some(&ROUTING_MAGIC[0]) {
        if !prefix_matches(b, &ROUTING_MAGIC) {
            return Err(Error::BadIntro);
        }
        if b.len() < 7 {
            return Ok(None);
        }
        let ri_len = read_len(&b[4..]);
        if ri_len > MAX_ROUTING_INFO_LEN {
            return Err(Error::RoutingInfoTooLarge(ri_len));
        }
        7 + ri_len
    } else {
        0
    };
    let rest = b.get(header_at..).unwrap_or(&[]);
    if !prefix_matches(rest, &WA_HEADER) {
        return Err(Error::BadIntro);
    }
    if rest.len() < WA_HEADER.len() {
        return Ok(None);
    }
    Ok(Some(header_at + WA_HEADER.len()))
}

/// Whether the bytes present agree with `expected` as far as they go.
fn prefix_matches(b: &[u8], expected: &[u8]) -> bool {
    b.iter().zip(expected).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for p in payloads {
            encode_frame(p, &mut out).unwrap();
        }
        out.to_vec()
    }

    fn drain(d: &mut FrameDecoder) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        while let Some(f) = d.next_frame().unwrap() {
            v.push(f.to_vec());
        }
        v
    }

    #[test]
    fn several_frames_in_one_message() {
        let mut d = FrameDecoder::client();
        d.push(&framed(&[b"one", b"", b"three"])).unwrap();
        assert_eq!(
            drain(&mut d),
            vec![b"one".to_vec(), vec![], b"three".to_vec()]
        );
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn one_frame_split_at_every_position() {
        let wire = framed(&[b"hello world", b"x"]);
        for cut in 0..=wire.len() {
            let mut d = FrameDecoder::client();
            d.push(&wire[..cut]).unwrap();
            let mut got = drain(&mut d);
            d.push(&wire[cut..]).unwrap();
            got.extend(drain(&mut d));
            assert_eq!(
                got,
                vec![b"hello world".to_vec(), b"x".to_vec()],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn byte_by_byte() {
        let wire = framed(&[&[0xAB; 300], b"z"]);
        let mut d = FrameDecoder::client();
        let mut got = Vec::new();
        for b in &wire {
            d.push(std::slice::from_ref(b)).unwrap();
            got.extend(drain(&mut d));
        }
        assert_eq!(got, vec![vec![0xAB; 300], b"z".to_vec()]);
    }

    #[test]
    fn oversized_header_is_rejected_before_the_body() {
        let mut d = FrameDecoder::client().with_max_frame_len(1000);
        // Only the 3-byte header of a 1001-byte frame has arrived.
        assert_eq!(
            d.push(&[0x00, 0x03, 0xE9]),
            Err(Error::FrameTooLarge {
                len: 1001,
                max: 1000
            })
        );
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.push(b"more"), Err(Error::DecoderFailed));
        assert_eq!(d.next_frame(), Err(Error::DecoderFailed));
    }

    #[test]
    fn oversized_header_behind_a_complete_frame_is_rejected_on_push() {
        let mut d = FrameDecoder::client().with_max_frame_len(10);
        let mut wire = framed(&[b"ok"]);
        wire.extend_from_slice(&[0, 0, 11]);
        assert!(matches!(
            d.push(&wire),
            Err(Error::FrameTooLarge { len: 11, .. })
        ));
    }

    #[test]
    fn default_limit_accepts_the_largest_3_byte_length_header() {
        let mut d = FrameDecoder::client();
        d.push(&[0xFF, 0xFF, 0xFF]).unwrap();
        assert_eq!(d.next_frame().unwrap(), None);
    }

    #[test]
    fn encode_rejects_payload_above_16_mib() {
        let big = vec![0u8; MAX_FRAME_LEN + 1];
        let mut out = BytesMut::new();
        assert_eq!(
            encode_frame(&big, &mut out),
            Err(Error::PayloadTooLarge(MAX_FRAME_LEN + 1))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn server_strips_plain_intro() {
        let mut wire = WA_HEADER.to_vec();
        wire.extend(framed(&[b"hello"]));
        for cut in 0..=wire.len() {
            let mut d = FrameDecoder::server();
            d.push(&wire[..cut]).unwrap();
            let mut got = drain(&mut d);
            d.push(&wire[cut..]).unwrap();
            got.extend(drain(&mut d));
            assert_eq!(got, vec![b"hello".to_vec()], "cut {cut}");
            let intro = d.intro().unwrap();
            assert_eq!(intro.routing_info, None);
            assert_eq!(intro.header, WA_HEADER);
        }
    }

    #[test]
    fn server_strips_routing_prefix() {
        let mut out = BytesMut::new();
        encode_intro(Some(&[8, 6, 8, 13]), &mut out).unwrap();
        encode_frame(b"hi", &mut out).unwrap();
        assert_eq!(&out[..11], &[b'E', b'D', 0, 1, 0, 0, 4, 8, 6, 8, 13]);
        for cut in 0..=out.len() {
            let mut d = FrameDecoder::server();
            d.push(&out[..cut]).unwrap();
            let mut got = drain(&mut d);
            d.push(&out[cut..]).unwrap();
            got.extend(drain(&mut d));
            assert_eq!(got, vec![b"hi".to_vec()]);
            assert_eq!(
                d.intro().unwrap().routing_info.as_deref(),
                Some(&[8, 6, 8, 13][..])
            );
        }
    }

    #[test]
    fn server_rejects_bad_intro_early() {
        let mut d = FrameDecoder::server();
        assert_eq!(d.push(b"X"), Err(Error::BadIntro));
        let mut d = FrameDecoder::server();
        assert_eq!(d.push(&[b'W', b'A', 5]), Err(Error::BadIntro));
        let mut d = FrameDecoder::server();
        assert_eq!(d.push(&[b'E', b'D', 0, 2]), Err(Error::BadIntro));
        let mut d = FrameDecoder::server();
        assert_eq!(
            d.push(&[b'E', b'D', 0, 1, 0, 0x10, 0x01]),
            Err(Error::RoutingInfoTooLarge(4097))
        );
    }

    #[test]
    fn client_decoder_does_not_expect_an_intro() {
        let mut d = FrameDecoder::client();
        d.push(&framed(&[b"WA"])).unwrap();
        assert_eq!(drain(&mut d), vec![b"WA".to_vec()]);
        assert!(d.intro().is_none());
    }
}
