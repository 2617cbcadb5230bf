//! Inputs found by the `binary_decode` fuzz target (fuzz/), kept as tests:
//! each must decode (or fail) without panicking, and whatever decodes must
//! re-encode to a frame that decodes to the same node.

use bytes::Bytes;
use wa_binary::{Content, decode, encode};

fn check(input: &[u8]) {
    if let Ok(n) = decode(Bytes::copy_from_slice(input)) {
        let again = decode(Bytes::from(encode(&n))).expect("our encoding decodes");
        assert_eq!(again, n);
    }
}

#[test]
fn every_saved_input_round_trips() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("regressions dir") {
        let path = entry.expect("entry").path();
        check(&std::fs::read(&path).expect("read"));
        n += 1;
    }
    assert!(n >= 1);
}

/// Found after 160k executions: content written as HEX_8 of length 0
/// decoded as empty text, which we re-encode as zero raw bytes (bytes).
#[test]
fn empty_packed_content_is_empty_bytes() {
    let n = decode(Bytes::from_static(b"\x00\xf8\x02\x19\xfb\x00")).expect("decodes");
    assert_eq!(n.content, Content::Bytes(Bytes::new()));
    let n = decode(Bytes::from_static(b"\x00\xf8\x02\x19\xff\x00")).expect("decodes");
    assert_eq!(n.content, Content::Bytes(Bytes::new()));
    check(include_bytes!("regressions/empty-packed-content.bin"));
}

/// Found after 237k executions: content written as NIBBLE_8 with the pad
/// nibble in the middle decoded as text holding a NUL, which is not
/// packable and so re-encoded as raw bytes.
#[test]
fn packed_content_with_nul_is_bytes() {
    // <iq>"1\02"</iq>: nibbles 1, 15 (pad), 2, then the odd-length pad
    let n = decode(Bytes::from_static(b"\x00\xf8\x02\x19\xff\x82\x1f\x2f")).expect("decodes");
    assert_eq!(n.content, Content::Bytes(Bytes::from_static(b"1\x002")));
    check(include_bytes!("regressions/nul-in-packed-content.bin"));
}

/// Packed content longer than the 127 characters the encoder packs is bytes.
#[test]
fn over_long_packed_content_is_bytes() {
    let mut frame = vec![0x00, 0xf8, 0x02, 0x19, 0xff, 0x7f];
    frame.extend(std::iter::repeat_n(0x12, 127));
    let n = decode(Bytes::from(frame)).expect("decodes");
    assert_eq!(n.content_bytes().map(<[u8]>::len), Some(254));
    assert!(matches!(n.content, Content::Bytes(_)));
    check(&encode(&n));
}
