//! Feeds arbitrary bytes to the WAM reader: it returns an error or records, never
//! panics, and never reads more records than the bytes can hold (each takes at least
//! its flag and a one-byte key). Strings it returns are as long as the bytes allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wa_socket::wam::{self, WamValue};

fuzz_target!(|data: &[u8]| {
    let mut bytes = b"WAM\x05\x01\x00\x07\x00".to_vec();
    bytes.extend_from_slice(data);
    let Ok(buffer) = wam::decode(&bytes) else {
        return;
    };
    assert_eq!(buffer.sequence, 7);
    assert!(buffer.records.len() <= data.len() / 2);
    let text: usize = buffer
        .records
        .iter()
        .map(|r| match &r.value {
            Some(WamValue::Str(s)) => s.len(),
            _ => 0,
        })
        .sum();
    assert!(text <= data.len());
});
