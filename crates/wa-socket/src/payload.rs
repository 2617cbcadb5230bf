//! The `ClientPayload` sent in the last Noise handshake message: a login payload for a
//! paired device, a registration payload for a new one. The payloads themselves are built
//! by `wa-noise`; this module maps the socket's configuration and stored credentials onto
//! its [`wa_noise::PayloadConfig`] and [`wa_noise::RegistrationData`].

use wa_binary::Jid;
use wa_noise::{PayloadConfig, RegistrationData, default_device_props};
use wa_proto::companion_reg::device_props::{AppVersion as DeviceAppVersion, PlatformType};
use wa_proto::handshake::ClientPayload;
use wa_proto::handshake::client_payload::web_info::WebSubPlatform;
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

fn config(o: &PayloadOptions) -> PayloadConfig {
    // A desktop app asking for full history presents itself as the desktop client of its
    // OS, as the reference clients do; anything else is a browser.
    let mut web_sub_platform = WebSubPlatform::WebBrowser;
    if o.history.full_sync && o.browser.browser == "Desktop" {
        match o.browser.os.as_str() {
            "Mac OS" => web_sub_platform = WebSubPlatform::Darwin,
            "Windows" => web_sub_platform = WebSubPlatform::Win32,
            _ => {}
        }
    }
    let mut props = default_device_props();
    props.os = Some(o.browser.os.clone());
    props.version = Some(DeviceAppVersion {
        primary: Some(10),
        secondary: Some(15),
        tertiary: Some(7),
        ..Default::default()
    });
    props.platform_type = Some(platform_type(o));
    props.require_full_sync = Some(o.history.full_sync);
    if let Some(h) = props.history_sync_config.as_mut() {
        h.storage_quota_mb = Some(o.history.storage_quota_mb);
    }
    let mut config = PayloadConfig::default();
    config.version = o.version;
    config.locale_country = o.country_code.clone();
    config.web_sub_platform = web_sub_platform;
    config.push_name = o.push_name.clone();
    config.lid_db_migrated = Some(false);
    config.device_props = props;
    config
}

/// The `DeviceProps.platformType` this companion registers with: the browser's name when
/// it is one WhatsApp knows (`Chrome`, `Firefox`, `Safari`, `Edge`, `Desktop`, ...),
/// else Chrome. A passkey link binds its keys to this number.
pub(crate) fn platform_type(o: &PayloadOptions) -> i32 {
    PlatformType::from_str_name(&o.browser.browser.to_uppercase()).unwrap_or(PlatformType::Chrome)
        as i32
}

/// The login payload of a paired device (`jid` is its own device JID); `None` when the
/// JID's user is not a phone number.
pub fn login_payload(jid: &Jid, o: &PayloadOptions) -> Option<ClientPayload> {
    let username: u64 = jid.user.as_str().parse().ok()?;
    Some(wa_noise::login_payload(
        username,
        u32::from(jid.device),
        &config(o),
    ))
}

/// The registration payload of a device about to pair.
pub fn registration_payload(creds: &AuthCreds, o: &PayloadOptions) -> ClientPayload {
    let spk = &creds.signed_pre_key;
    let reg = RegistrationData {
        registration_id: creds.registration_id,
        identity_key: creds.identity_key.public,
        signed_pre_key_id: spk.id,
        signed_pre_key: spk.key_pair.public,
        signed_pre_key_signature: spk.signature,
    };
    wa_noise::registration_payload(&reg, &config(o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};
    use prost::Message;
    use rand::SeedableRng;
    use wa_proto::companion_reg::DeviceProps;

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
