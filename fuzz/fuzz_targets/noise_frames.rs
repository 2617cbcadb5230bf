//! Feeds arbitrary bytes, cut into arbitrary websocket messages, to the frame decoder
//! (client or server side, with a small or the default limit). Frames must come out in
//! order, never longer than the limit, never more bytes than went in, and after an error
//! the decoder must stay failed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wa_noise::{Error, FrameDecoder};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut decoder = if mode & 1 == 0 {
        FrameDecoder::client()
    } else {
        FrameDecoder::server()
    };
    let max = if mode & 2 == 0 { 1 << 12 } else { wa_noise::MAX_FRAME_LEN };
    decoder = decoder.with_max_frame_len(max);
    // The next bytes give the cut points: each chunk is 1..=16 * (b + 1) bytes long.
    let (cuts, mut input) = rest.split_at(rest.len().min(8));
    let mut out = 0usize;
    let mut failed = false;
    let mut i = 0;
    while !input.is_empty() {
        let step = (usize::from(cuts.get(i % cuts.len().max(1)).copied().unwrap_or(255)) + 1) * 16;
        let (chunk, tail) = input.split_at(step.min(input.len()));
        input = tail;
        i += 1;
        match decoder.push(chunk) {
            Ok(()) => assert!(!failed),
            Err(Error::DecoderFailed) => {
                assert!(failed);
                continue;
            }
            Err(_) => {
                assert!(!failed);
                failed = true;
                continue;
            }
        }
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= max);
                    out += frame.len() + 3;
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(out <= rest.len());
    }
    if failed {
        assert_eq!(decoder.next_frame(), Err(Error::DecoderFailed));
    }
});
