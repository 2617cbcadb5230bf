//! Decodes arbitrary frames. Whatever decodes must re-encode to a frame that
//! decodes to the same node (plain and zlib-compressed).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wa_binary::{DecodeLimits, decode_with_limits, encode, encode_compressed};

fuzz_target!(|data: &[u8]| {
    // Keep decompression small so the fuzzer spends its time on the parser.
    let limits = DecodeLimits::DEFAULT.with_max_decompressed_len(1 << 20);
    if let Ok(node) = decode_with_limits(Bytes::copy_from_slice(data), &limits) {
        let again = decode_with_limits(Bytes::from(encode(&node)), &limits)
            .expect("our own encoding must decode");
        assert_eq!(again, node);
        let z = decode_with_limits(Bytes::from(encode_compressed(&node)), &limits)
            .expect("our own compressed encoding must decode");
        assert_eq!(z, node);
        // The text form must not panic either.
        let _ = format!("{node:#}");
    }
});
