//! The `ClientPayload` sent in the last Noise handshake message: a login payload for a
//! paired device, a registration payload for a new one.

use md5::{Digest, Md5};
use prost::Message;
use wa_binary::Jid;
use wa_proto::companion_reg::DeviceProps;
use wa_proto::companion_reg::device_props::{
    AppVersion as DeviceAppVersion, HistorySyncConfig, PlatformType,
};
use wa_proto::handshake::ClientPayload;
use wa_proto::handshake::client_payload::user_agent::{AppVersion, Platform, ReleaseChannel};
use wa_proto::handshake::client_payload::web_info::WebSubPlatform;
use wa_proto::handshake::client_payload::{
    ConnectReason, ConnectType, DevicePairingRegistrationData, UserAgent, WebInfo,
};
use wa_store::AuthCreds;

use crate::config::{Browser, HistorySyncOptions};

/// What the payload builders need from the socket configuration.
#[derive(Debug, Clone)]
pub struct PayloadOptions {
    /// Web client version `[primary, secondary, tertiary]`.
    pub version: [u32; 3],
    /// Browser description.
    pub browser: Browser,
    /// Country code of the user agent (`US` by default).
    pub country_code: String,
    /// Request a full history sync and how much to keep.
    pub history: HistorySyncOptions,
    /// Push name to announce, if any.
    pub push_name: Option<String>,
}

fn user_agent(o: &PayloadOptions) -> UserAgent {
    UserAgent {
        platform: Some(Platform::Web as i32),
        app_version: Some(AppVersion {
            primary: Some(o.version[0]),
            secondary: Some(o.version[1]),
            tertiary: Some(o.version[2]),
            ..Default::default()
        }),
        mcc: Some("000".into()),
        mnc: Some("000".into()),
        os_version: Some("0.1".into()),
        device: Some("Desktop".into()),
        os_build_number: Some("0.1".into()),
        release_channel: Some(ReleaseChannel::Release as i32),
        locale_language_iso6391: Some("en".into()),
        locale_country_iso31661_alpha2: Some(o.country_code.clone()),
        ..Default::default()
    }
}

fn web_info(o: &PayloadOptions) -> WebInfo {
    let mut sub = WebSubPlatform::WebBrowser;
    if o.history.full_sync && o.browser.browser == "Desktop" {
        match o.browser.os.as_str() {
            "Mac OS" => sub = WebSubPlatform::Darwin,
            "Windows" => sub = WebSubPlatform::Win32,
            _ => {}
        }
    }
    WebInfo {
        web_sub_platform: Some(sub as i32),
        ..Default::default()
    }
}

fn base(o: &PayloadOptions) -> ClientPayload {
    ClientPayload {
        user_agent: Some(user_agent(o)),
        web_info: Some(web_info(o)),
        push_name: o.push_name.clone(),
        connect_type: Some(ConnectType::WifiUnknown as i32),
        connect_reason: Some(ConnectReason::UserActivated as i32),
        ..Default::default()
    }
}

/// The login payload of a paired device (`jid` is its own device JID).
pub fn login_payload(jid: &Jid, o: &PayloadOptions) -> Option<ClientPayload> {
    let username: u64 = jid.user.as_str().parse().ok()?;
    Some(ClientPayload {
        username: Some(username),
        passive: Some(true),
        pull: Some(true),
        device: Some(u32::from(jid.device)),
        lid_db_migrated: Some(false),
        ..base(o)
    })
}

/// The registration payload of a device about to pair.
pub fn registration_payload(creds: &AuthCreds, o: &PayloadOptions) -> ClientPayload {
    let version = format!("{}.{}.{}", o.version[0], o.version[1], o.version[2]);
    let build_hash = Md5::digest(version.as_bytes()).to_vec();
    let platform_type = PlatformType::from_str_name(&o.browser.browser.to_uppercase())
        .unwrap_or(PlatformType::Chrome);
    let props = DeviceProps {
        os: Some(o.browser.os.clone()),
        version: Some(DeviceAppVersion {
            primary: Some(10),
            secondary: Some(15),
            tertiary: Some(7),
            ..Default::default()
        }),
        platform_type: Some(platform_type as i32),
        require_full_sync: Some(o.history.full_sync),
        history_sync_config: Some(HistorySyncConfig {
            storage_quota_mb: Some(o.history.storage_quota_mb),
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
    };
    let spk = &creds.signed_pre_key;
    ClientPayload {
        passive: Some(false),
        pull: Some(false),
        device_pairing_data: Some(DevicePairingRegistrationData {
            e_regid: Some(creds.registration_id.to_be_bytes().to_vec()),
            e_keytype: Some(vec![wa_crypto::KEY_TYPE_DJB]),
            e_ident: Some(creds.identity_key.public.as_bytes().to_vec()),
            e_skey_id: Some(spk.id.to_be_bytes()[1..].to_vec()),
            e_skey_val: Some(spk.key_pair.public.as_bytes().to_vec()),
            e_skey_sig: Some(spk.signature.as_bytes().to_vec()),
            build_hash: Some(build_hash),
            device_props: Some(props.encode_to_vec()),
            ..Default::default()
        }),
        ..base(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn opts() -> PayloadOptions {
        PayloadOptions {
            version: [2, 3000, 1_015_901_307],
            browser: Browser::new("Mac OS", "Chrome", "14.4.1"),
            country_code: "US".into(),
            history: HistorySyncOptions::default(),
            push_name: None,
        }
    }

    #[test]
    fn login_payload_matches_baileys_recording() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../tests/vectors/noise_handshake.json"))
                .expect("vector json");
        let want = hex::decode(v["clientPayloadHex"].as_str().expect("hex")).expect("hex");
        let jid = Jid::with_device("15551234567", wa_binary::Server::Pn, 5);
        let got = login_payload(&jid, &opts()).expect("numeric user");
        assert_eq!(got.encode_to_vec(), want);
    }

    #[test]
    fn registration_payload_carries_the_keys() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let creds = AuthCreds::generate(&mut rng);
        let p = registration_payload(&creds, &opts());
        assert_eq!(p.passive, Some(false));
        let d = p.device_pairing_data.expect("pairing data");
        assert_eq!(
            d.e_regid.as_deref(),
            Some(&creds.registration_id.to_be_bytes()[..])
        );
        assert_eq!(d.e_skey_id.as_deref(), Some(&[0u8, 0, 1][..]));
        assert_eq!(d.e_keytype.as_deref(), Some(&[5u8][..]));
        assert_eq!(
            d.build_hash.as_deref(),
            Some(&Md5::digest(b"2.3000.1015901307")[..])
        );
        let props = DeviceProps::decode(d.device_props.as_deref().expect("props")).expect("decode");
        assert_eq!(props.os.as_deref(), Some("Mac OS"));
        assert_eq!(props.platform_type, Some(PlatformType::Chrome as i32));
    }
}
