//! The `ClientPayload` the client encrypts into its ClientFinish: a login payload when it
//! already has an identity (user and device), a registration payload when it is a new
//! device about to be paired.

use md5::{Digest, Md5};
use prost::Message;
use wa_crypto::{KEY_TYPE_DJB, PublicKey, Signature};
use wa_proto::companion_reg::{DeviceProps, device_props};
use wa_proto::handshake::ClientPayload;
use wa_proto::handshake::client_payload::{
    ConnectReason, ConnectType, DevicePairingRegistrationData, UserAgent, WebInfo, user_agent,
    web_info,
};

/// The WhatsApp Web version this crate announces unless configured otherwise.
pub const DEFAULT_WA_VERSION: [u32; 3] = [2, 3000, 1_045_649_367];

/// Everything in a `ClientPayload` that is the same for every connection of a client.
///
/// The defaults are those of the WhatsApp Web client on a desktop browser: platform WEB,
/// release channel RELEASE, `mcc`/`mnc` `000`, OS `0.1`, device `Desktop`, locale `en`/`US`,
/// sub-platform WEB_BROWSER, connect type WIFI_UNKNOWN, reason USER_ACTIVATED.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PayloadConfig {
    /// The app version `[primary, secondary, tertiary]`; WhatsApp refuses outdated ones
    /// (`<failure reason="405">`), so keep it configurable.
    pub version: [u32; 3],
    /// `UserAgent.platform`.
    pub platform: user_agent::Platform,
    /// `UserAgent.releaseChannel`.
    pub release_channel: user_agent::ReleaseChannel,
    /// `UserAgent.mcc`.
    pub mcc: String,
    /// `UserAgent.mnc`.
    pub mnc: String,
    /// `UserAgent.osVersion`.
    pub os_version: String,
    /// `UserAgent.manufacturer` (left out when `None`).
    pub manufacturer: Option<String>,
    /// `UserAgent.device`.
    pub device: String,
    /// `UserAgent.osBuildNumber`.
    pub os_build_number: String,
    /// `UserAgent.localeLanguageIso6391`.
    pub locale_language: String,
    /// `UserAgent.localeCountryIso31661Alpha2`.
    pub locale_country: String,
    /// `WebInfo.webSubPlatform`.
    pub web_sub_platform: web_info::WebSubPlatform,
    /// `ClientPayload.pushName` (left out when `None`).
    pub push_name: Option<String>,
    /// `ClientPayload.connectType`.
    pub connect_type: ConnectType,
    /// `ClientPayload.connectReason`.
    pub connect_reason: ConnectReason,
    /// `ClientPayload.lidDbMigrated` on login (left out when `None`).
    pub lid_db_migrated: Option<bool>,
    /// `ClientPayload.lc` on login (left out when `None`).
    pub lc: Option<i32>,
    /// The companion's description, sent encoded in the registration payload.
    pub device_props: DeviceProps,
}

impl Default for PayloadConfig {
    fn default() -> Self {
        Self {
            version: DEFAULT_WA_VERSION,
            platform: user_agent::Platform::Web,
            release_channel: user_agent::ReleaseChannel::Release,
            mcc: "000".into(),
            mnc: "000".into(),
            os_version: "0.1".into(),
            manufacturer: None,
            device: "Desktop".into(),
            os_build_number: "0.1".into(),
            locale_language: "en".into(),
            locale_country: "US".into(),
            web_sub_platform: web_info::WebSubPlatform::WebBrowser,
            push_name: None,
            connect_type: ConnectType::WifiUnknown,
            connect_reason: ConnectReason::UserActivated,
            lid_db_migrated: None,
            lc: None,
            device_props: default_device_props(),
        }
    }
}

/// A desktop-browser companion: OS name `wa-rs`, platform type DESKTOP, no full sync, and
/// the history-sync capabilities the reference clients announce.
pub fn default_device_props() -> DeviceProps {
    DeviceProps {
        os: Some("wa-rs".into()),
        version: Some(device_props::AppVersion {
            primary: Some(0),
            secondary: Some(1),
            tertiary: Some(0),
            ..Default::default()
        }),
        platform_type: Some(device_props::PlatformType::Desktop as i32),
        require_full_sync: Some(false),
        history_sync_config: Some(device_props::HistorySyncConfig {
            storage_quota_mb: Some(10240),
            inline_initial_payload_in_e2_ee_msg: Some(true),
            support_call_log_history: Some(false),
            support_bot_user_agent_chat_history: Some(true),
            support_cag_reactions_and_polls: Some(true),
            support_biz_hosted_msg: Some(true),
            support_recent_sync_chunk_message_count_tuning: Some(true),
            support_hosted_group_msg: Some(true),
            support_fbid_bot_chat_history: Some(true),
            support_message_association: Some(true),
            support_group_history: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `buildHash` of a version: MD5 of its dotted form, e.g. `"2.3000.1015901307"`.
pub fn build_hash(version: [u32; 3]) -> [u8; 16] {
    let text = format!("{}.{}.{}", version[0], version[1], version[2]);
    Md5::digest(text.as_bytes()).into()
}

/// The keys a new device registers with (its Signal identity and signed pre-key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationData {
    /// The Signal registration id (sent as 4 bytes big-endian).
    pub registration_id: u32,
    /// The identity public key.
    pub identity_key: PublicKey,
    /// The signed pre-key's id (sent as 3 bytes big-endian).
    pub signed_pre_key_id: u32,
    /// The signed pre-key's public key.
    pub signed_pre_key: PublicKey,
    /// The identity key's XEdDSA signature over `05 || signed pre-key`.
    pub signed_pre_key_signature: Signature,
}

fn base(config: &PayloadConfig) -> ClientPayload {
    let [primary, secondary, tertiary] = config.version;
    ClientPayload {
        user_agent: Some(Box::new(UserAgent {
            platform: Some(config.platform as i32),
            app_version: Some(user_agent::AppVersion {
                primary: Some(primary),
                secondary: Some(secondary),
                tertiary: Some(tertiary),
                ..Default::default()
            }),
            mcc: Some(config.mcc.clone()),
            mnc: Some(config.mnc.clone()),
            os_version: Some(config.os_version.clone()),
            manufacturer: config.manufacturer.clone(),
            device: Some(config.device.clone()),
            os_build_number: Some(config.os_build_number.clone()),
            release_channel: Some(config.release_channel as i32),
            locale_language_iso6391: Some(config.locale_language.clone()),
            locale_country_iso31661_alpha2: Some(config.locale_country.clone()),
            ..Default::default()
        })),
        web_info: Some(Box::new(WebInfo {
            web_sub_platform: Some(config.web_sub_platform as i32),
            ..Default::default()
        })),
        push_name: config.push_name.clone(),
        connect_type: Some(config.connect_type as i32),
        connect_reason: Some(config.connect_reason as i32),
        ..Default::default()
    }
}

/// The payload of a device that is already paired: its phone number (`user`) and device
/// number, `passive` and `pull` set.
pub fn login_payload(user: u64, device: u32, config: &PayloadConfig) -> ClientPayload {
    ClientPayload {
        username: Some(user),
        device: Some(device),
        passive: Some(true),
        pull: Some(true),
        lid_db_migrated: config.lid_db_migrated,
        lc: config.lc,
        ..base(config)
    }
}

/// The payload of a new device: its registration keys, the build hash of the configured
/// version and the encoded device props; `passive` and `pull` cleared.
pub fn registration_payload(reg: &RegistrationData, config: &PayloadConfig) -> ClientPayload {
    ClientPayload {
        passive: Some(false),
        pull: Some(false),
        device_pairing_data: Some(Box::new(DevicePairingRegistrationData {
            e_regid: Some(reg.registration_id.to_be_bytes().to_vec()),
            e_keytype: Some(vec![KEY_TYPE_DJB]),
            e_ident: Some(reg.identity_key.as_bytes().to_vec()),
            e_skey_id: Some(reg.signed_pre_key_id.to_be_bytes()[1..].to_vec()),
            e_skey_val: Some(reg.signed_pre_key.as_bytes().to_vec()),
            e_skey_sig: Some(reg.signed_pre_key_signature.as_bytes().to_vec()),
            build_hash: Some(build_hash(config.version).to_vec()),
            device_props: Some(config.device_props.encode_to_vec()),
            ..Default::default()
        })),
        ..base(config)
    }
}
