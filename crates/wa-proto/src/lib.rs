#![doc = include_str!("../README.md")]

mod generated;
mod unknown;

pub use generated::{
    adv, aea, ai_common, ai_common_deprecated, cert, chat_lock_settings, common, companion_reg,
    device_capabilities, e2e, handshake, history_sync, mms_retry, server_sync, signal,
    status_attributions, sync_action, syncd_snapshot_recovery, user_password, vname_cert, web,
};
pub use unknown::UnknownFields;

/// Adds the message and field name to a decode error, as prost-derive's code does.
fn field_error(
    result: Result<(), prost::DecodeError>,
    message: &'static str,
    field: &'static str,
) -> Result<(), prost::DecodeError> {
    result.map_err(|mut e| {
        e.push(message, field);
        e
    })
}

/// The compiled schemas as a serialized `google.protobuf.FileDescriptorSet`
/// (every file under `proto/`, without source info), for reflection-based tooling.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("generated/descriptor.bin");
