//! Every wa-signal decoder of network input (pkmsg, msg, skmsg, sender-key distribution
//! message) and of stored records, on arbitrary bytes: no panic, bounded allocation, and
//! whatever parses keeps its exact wire bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wa_signal::{
    PreKeySignalMessage, SenderKeyDistributionMessage, SenderKeyMessage, SenderKeyRecord,
    SessionRecord, SignalMessage,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SignalMessage::decode(data) {
        assert_eq!(m.serialized(), data);
    }
    if let Ok(m) = PreKeySignalMessage::decode(data) {
        assert_eq!(m.serialized(), data);
        let _ = m.message().counter();
    }
    if let Ok(m) = SenderKeyMessage::decode(data) {
        assert_eq!(m.serialized(), data);
    }
    if let Ok(m) = SenderKeyDistributionMessage::decode(data) {
        assert_eq!(m.serialized(), data);
    }
    if let Ok(r) = SessionRecord::deserialize(data) {
        // A record that parses re-serializes to something that parses to the same record.
        let again = SessionRecord::deserialize(&r.serialize()).expect("round trip");
        assert_eq!(again.serialize(), r.serialize());
    }
    if let Ok(r) = SenderKeyRecord::deserialize(data) {
        let again = SenderKeyRecord::deserialize(&r.serialize()).expect("round trip");
        assert_eq!(again.serialize(), r.serialize());
    }
});
