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
