//! Saving and loading [`SimState`] as JSON (private keys included: test data only).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use wa_crypto::{KeyPair, PublicKey};
use zeroize::Zeroizing;

use crate::Error;
use crate::chats::Profile;
use crate::group::{Description, Group, Role};
use crate::state::{Account, Device, Inner, PreKeys, ServerKeys, SimState};

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    root: String,
    intermediate: String,
    noise_static: String,
    next_lid: u64,
    accounts: Vec<AccountFile>,
    #[serde(default)]
    next_group: u64,
    #[serde(default)]
    groups: Vec<GroupFile>,
    #[serde(default)]
    profiles: Vec<ProfileFile>,
    #[serde(default)]
    newsletters: crate::newsletter::NewsletterState,
    #[serde(default)]
    business: crate::business::BusinessState,
    #[serde(default)]
    communities: crate::community::Communities,
    /// `None` in files written before app state was saved.
    #[serde(default)]
    app_state: Option<crate::appstate::AppStateFile>,
    /// Privacy tokens minted, restricted accounts and the last cstokens.
    #[serde(default)]
    privacy_tokens: crate::privacy_token::TokenFile,
    /// Dirty flags still set: (phone, kind, timestamp).
    #[serde(default)]
    dirty: Vec<(String, String, u64)>,
    /// Reach-out timelocks and new-chat caps.
    #[serde(default)]
    restrictions: crate::restriction::Restrictions,
}

/// What an account set about itself (`chats.rs`).
#[derive(Serialize, Deserialize)]
struct ProfileFile {
    phone: String,
    privacy: BTreeMap<String, String>,
    blocked: Vec<String>,
    /// (text, set at)
    status: Option<(String, u64)>,
    /// (id, JPEG bytes in hex)
    picture: Option<(String, String)>,
    disappearing: u32,
    /// When the disappearing timer was set (0 = never, or an older file).
    #[serde(default)]
    disappearing_at: u64,
    /// (list in force, blacklist, whitelist)
    #[serde(default)]
    status_privacy: Option<(String, Vec<String>, Vec<String>)>,
    #[serde(default)]
    username: Option<String>,
    /// The about emoji and expiry (`w:mex` `UpdateTextStatus`).
    #[serde(default)]
    about_emoji: Option<String>,
    #[serde(default)]
    about_expires: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct GroupFile {
    id: String,
    creator: String,
    creation: u64,
    subject: String,
    subject_owner: String,
    subject_time: u64,
    /// (id, body, set by, time)
    description: Option<(String, String, String, u64)>,
    announce: bool,
    locked: bool,
    ephemeral: u32,
    invite: String,
    /// (phone, "member" | "admin" | "superadmin")
    participants: Vec<(String, String)>,
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Member => "member",
        Role::Admin => "admin",
        Role::SuperAdmin => "superadmin",
    }
}

fn role(name: &str) -> Result<Role, Error> {
    match name {
        "member" => Ok(Role::Member),
        "admin" => Ok(Role::Admin),
        "superadmin" => Ok(Role::SuperAdmin),
        _ => Err(Error::BadState("unknown group role")),
    }
}

#[derive(Serialize, Deserialize)]
struct AccountFile {
    phone: String,
    lid: String,
    identity: String,
    created: u64,
    next_key_index: u32,
    devices: Vec<DeviceFile>,
}

#[derive(Serialize, Deserialize)]
struct DeviceFile {
    id: u16,
    noise: String,
    identity: String,
    key_index: u32,
    platform: String,
    registration_id: Option<u32>,
    prekey_identity: Option<String>,
    one_time: Vec<(u32, String)>,
    signed: Option<(u32, String, String)>,
}

fn private_hex(k: &KeyPair) -> String {
    hex::encode(k.private.as_bytes())
}

fn key_pair(h: &str) -> Result<KeyPair, Error> {
    let raw = Zeroizing::new(hex::decode(h).map_err(|_| Error::BadState("key is not hex"))?);
    KeyPair::from_private_slice(&raw).map_err(|_| Error::BadState("private key is not 32 bytes"))
}

fn public(h: &str) -> Result<PublicKey, Error> {
    let raw = hex::decode(h).map_err(|_| Error::BadState("key is not hex"))?;
    PublicKey::from_slice(&raw).map_err(|_| Error::BadState("public key is not 32 bytes"))
}

fn bytes(h: &str) -> Result<Vec<u8>, Error> {
    hex::decode(h).map_err(|_| Error::BadState("bytes are not hex"))
}

impl SimState {
    /// The whole state as JSON, private keys included (for test servers only).
    pub fn to_json(&self) -> String {
        // Taken (and released) before the main lock: never hold both.
        let app_state = self
            .held
            .appstate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .to_file();
        let st = self.lock();
        let file = File {
            version: 1,
            root: private_hex(&st.keys.root),
            intermediate: private_hex(&st.keys.intermediate),
            noise_static: private_hex(&st.keys.noise_static),
            next_lid: st.next_lid,
            next_group: st.next_group,
            groups: st
                .groups
                .values()
                .map(|g| GroupFile {
                    id: g.id.clone(),
                    creator: g.creator.clone(),
                    creation: g.creation,
                    subject: g.subject.clone(),
                    subject_owner: g.subject_owner.clone(),
                    subject_time: g.subject_time,
                    description: g
                        .description
                        .as_ref()
                        .map(|d| (d.id.clone(), d.body.clone(), d.by.clone(), d.t)),
                    announce: g.announce,
                    locked: g.locked,
                    ephemeral: g.ephemeral,
                    invite: g.invite.clone(),
                    participants: g
                        .participants
                        .iter()
                        .map(|(p, r)| (p.clone(), role_name(*r).to_owned()))
                        .collect(),
                })
                .collect(),
            profiles: st
                .chats
                .profiles
                .iter()
                .map(|(phone, p)| ProfileFile {
                    phone: phone.clone(),
                    privacy: p.privacy.clone(),
                    blocked: p.blocked.iter().cloned().collect(),
                    status: p.status.clone(),
                    picture: p
                        .picture
                        .as_ref()
                        .map(|(id, b)| (id.clone(), hex::encode(b))),
                    disappearing: p.disappearing,
                    disappearing_at: p.disappearing_at,
                    status_privacy: Some((
                        p.status_privacy.mode.as_str().to_owned(),
                        p.status_privacy.blacklist.clone(),
                        p.status_privacy.whitelist.clone(),
                    )),
                    username: p.username.clone(),
                    about_emoji: p.about_emoji.clone(),
                    about_expires: p.about_expires,
                })
                .collect(),
            newsletters: st.newsletters.clone(),
            business: st.business.clone(),
            communities: st.communities.clone(),
            app_state: Some(app_state),
            privacy_tokens: st.chats.tokens.to_file(),
            dirty: st.dirty.to_file(),
            restrictions: st.restrictions.clone(),
            accounts: st
                .accounts
                .values()
                .map(|a| AccountFile {
                    phone: a.phone.clone(),
                    lid: a.lid_user.clone(),
                    identity: private_hex(&a.identity),
                    created: a.created,
                    next_key_index: a.next_key_index,
                    devices: a
                        .devices
                        .iter()
                        .map(|(id, d)| DeviceFile {
                            id: *id,
                            noise: hex::encode(d.noise.as_bytes()),
                            identity: hex::encode(d.identity.as_bytes()),
                            key_index: d.key_index,
                            platform: d.platform.clone(),
                            registration_id: d.prekeys.registration_id,
                            prekey_identity: d.prekeys.identity.as_ref().map(hex::encode),
                            one_time: d
                                .prekeys
                                .one_time
                                .iter()
                                .map(|(i, v)| (*i, hex::encode(v)))
                                .collect(),
                            signed: d
                                .prekeys
                                .signed
                                .as_ref()
                                .map(|(i, v, s)| (*i, hex::encode(v), hex::encode(s))),
                        })
                        .collect(),
                })
                .collect(),
        };
        // invariant: the file holds only strings, integers and lists, which always serialize.
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// Reads state written by [`to_json`](Self::to_json).
    ///
    /// # Errors
    /// [`Error::BadState`] when the JSON or a key in it is malformed.
    pub fn from_json(json: &str) -> Result<SimState, Error> {
        let file: File =
            serde_json::from_str(json).map_err(|_| Error::BadState("not a state file"))?;
        if file.version != 1 {
            return Err(Error::BadState("unknown state file version"));
        }
        let mut accounts = BTreeMap::new();
        for a in file.accounts {
            let mut devices = BTreeMap::new();
            for d in a.devices {
                let one_time = d
                    .one_time
                    .iter()
                    .map(|(i, v)| Ok((*i, bytes(v)?)))
                    .collect::<Result<VecDeque<_>, Error>>()?;
                let signed = match &d.signed {
                    Some((i, v, s)) => Some((*i, bytes(v)?, bytes(s)?)),
                    None => None,
                };
                devices.insert(
                    d.id,
                    Device {
                        noise: public(&d.noise)?,
                        identity: public(&d.identity)?,
                        key_index: d.key_index,
                        platform: d.platform,
                        prekeys: PreKeys {
                            registration_id: d.registration_id,
                            identity: d.prekey_identity.as_deref().map(bytes).transpose()?,
                            one_time,
                            signed,
                        },
                    },
                );
            }
            let mut account =
                Account::new(a.phone.clone(), a.lid, key_pair(&a.identity)?, a.created);
            account.devices = devices;
            account.next_key_index = a.next_key_index;
            accounts.insert(a.phone, account);
        }
        let mut groups = BTreeMap::new();
        for g in file.groups {
            let participants = g
                .participants
                .iter()
                .map(|(p, r)| Ok((p.clone(), role(r)?)))
                .collect::<Result<Vec<_>, Error>>()?;
            groups.insert(
                g.id.clone(),
                Group {
                    id: g.id,
                    creator: g.creator,
                    creation: g.creation,
                    subject: g.subject,
                    subject_owner: g.subject_owner,
                    subject_time: g.subject_time,
                    description: g.description.map(|(id, body, by, t)| Description {
                        id,
                        body,
                        by,
                        t,
                    }),
                    announce: g.announce,
                    locked: g.locked,
                    ephemeral: g.ephemeral,
                    invite: g.invite,
                    participants,
                    admission: Default::default(),
                },
            );
        }
        let mut chats = crate::chats::ChatsState::default();
        for p in file.profiles {
            let profile = Profile {
                privacy: p.privacy,
                blocked: p.blocked.into_iter().collect(),
                status: p.status,
                picture: match p.picture {
                    Some((id, h)) => Some((id, bytes::Bytes::from(bytes(&h)?))),
                    None => None,
                },
                disappearing: p.disappearing,
                disappearing_at: p.disappearing_at,
                status_privacy: match p.status_privacy {
                    Some((mode, blacklist, whitelist)) => crate::chats::StatusPrivacyLists {
                        mode: crate::chats::StatusPrivacyMode::from_wire(&mode)
                            .ok_or(Error::BadState("unknown status privacy mode"))?,
                        blacklist,
                        whitelist,
                    },
                    None => Default::default(),
                },
                username: p.username,
                about_emoji: p.about_emoji,
                about_expires: p.about_expires,
            };
            crate::chats::check_profile(&profile)?;
            chats.profiles.insert(p.phone, profile);
        }
        chats.tokens = crate::privacy_token::TokenState::from_file(file.privacy_tokens)?;
        let inner = Inner {
            keys: ServerKeys {
                root: key_pair(&file.root)?,
                intermediate: key_pair(&file.intermediate)?,
                noise_static: key_pair(&file.noise_static)?,
            },
            accounts,
            next_lid: file.next_lid,
            groups,
            next_group: file.next_group,
            communities: {
                file.communities.check()?;
                file.communities
            },
            dirty: crate::dirty::DirtyState::from_file(file.dirty)?,
            chats,
            restrictions: {
                file.restrictions.check()?;
                file.restrictions
            },
            newsletters: {
                file.newsletters.check()?;
                file.newsletters
            },
            business: {
                file.business.check()?;
                file.business
            }, // Links, notices and push settings are not in the state file.
            links: Default::default(),
            bot_ids: Default::default(),
        };
        let state = SimState::from_inner(inner);
        if let Some(app_state) = file.app_state {
            *state
                .held
                .appstate
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                crate::appstate::AppStateServer::from_file(app_state)?;
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_keys_accounts_and_devices() {
        let state = SimState::new();
        let noise = KeyPair::generate(&mut rand_core::OsRng).public;
        {
            let mut st = state.lock();
            st.add_account("15551234567", 1_700_000_000);
            let a = st.accounts.get_mut("15551234567").unwrap();
            let mut prekeys = PreKeys {
                registration_id: Some(77),
                identity: Some(vec![1; 32]),
                signed: Some((1, vec![2; 32], vec![3; 64])),
                ..PreKeys::default()
            };
            prekeys.one_time.push_back((5, vec![4; 32]));
            a.devices.insert(
                3,
                Device {
                    noise,
                    identity: noise,
                    key_index: 2,
                    platform: "1".into(),
                    prekeys,
                },
            );
        }
        {
            let mut st = state.lock();
            st.next_group = 1;
            st.groups.insert(
                "120363000000000001".into(),
                Group {
                    id: "120363000000000001".into(),
                    creator: "15551234567".into(),
                    creation: 1,
                    subject: "S".into(),
                    subject_owner: "15551234567".into(),
                    subject_time: 2,
                    description: Some(Description {
                        id: "D".into(),
                        body: "B".into(),
                        by: "15551234567".into(),
                        t: 3,
                    }),
                    announce: true,
                    locked: false,
                    ephemeral: 86400,
                    invite: "code".into(),
                    participants: vec![("15551234567".into(), Role::SuperAdmin)],
                    admission: Default::default(),
                },
            );
        }
        {
            let mut st = state.lock();
            let p = st.chats.profiles.entry("15551234567".into()).or_default();
            p.privacy.insert("last".into(), "none".into());
            p.blocked.insert("15550000009".into());
            p.status = Some(("away".into(), 5));
            p.picture = Some(("P1".into(), bytes::Bytes::from_static(&[0xFF, 0xD8])));
            p.set_disappearing(604_800, 1_700_000_123);
            p.status_privacy.mode = crate::chats::StatusPrivacyMode::Whitelist;
            p.status_privacy.whitelist = vec!["15550000008@s.whatsapp.net".into()];
            p.username = Some("the.user".into());
        }
        let json = state.to_json();
        let back = SimState::from_json(&json).unwrap();
        {
            let st = back.lock();
            let p = &st.chats.profiles["15551234567"];
            assert_eq!(p.privacy["last"], "none");
            assert!(p.blocked.contains("15550000009"));
            assert_eq!(p.status, Some(("away".into(), 5)));
            assert_eq!(p.picture.as_ref().unwrap().1.as_ref(), &[0xFF, 0xD8]);
            assert_eq!(
                (p.disappearing, p.disappearing_at),
                (604_800, 1_700_000_123)
            );
            assert_eq!(
                p.status_privacy.mode,
                crate::chats::StatusPrivacyMode::Whitelist
            );
            assert_eq!(p.status_privacy.whitelist, ["15550000008@s.whatsapp.net"]);
            assert_eq!(p.username.as_deref(), Some("the.user"));
        }
        assert!(
            SimState::from_json(&json.replace("\"away\"", &format!("\"{}\"", "x".repeat(2000))))
                .is_err()
        );
        assert_eq!(back.lock().groups["120363000000000001"].ephemeral, 86400);
        assert_eq!(back.lock().next_group, 1);
        assert_eq!(back.root_public_key(), state.root_public_key());
        assert_eq!(back.to_json(), json);
        let st = back.lock();
        let a = &st.accounts["15551234567"];
        assert_eq!(a.devices[&3].noise, noise);
        assert_eq!(
            a.devices[&3].prekeys.one_time,
            VecDeque::from([(5, vec![4; 32])])
        );
        assert!(SimState::from_json("{}").is_err());
        assert!(SimState::from_json(&json.replace("\"whitelist\"", "\"sometimes\"")).is_err());
        assert!(SimState::from_json(&json.replace("\"version\": 1", "\"version\": 9")).is_err());
    }
}

#[cfg(test)]
mod app_state_file_tests {
    use super::*;

    /// A saved state with its `app_state` section replaced by `section`.
    fn with_app_state(section: serde_json::Value) -> String {
        let mut v: serde_json::Value = serde_json::from_str(&SimState::new().to_json()).unwrap();
        v["app_state"] = section;
        v.to_string()
    }

    #[test]
    fn damaged_app_state_and_communities_are_refused_not_loaded() {
        // A file from before app state was saved still loads.
        let mut v: serde_json::Value = serde_json::from_str(&SimState::new().to_json()).unwrap();
        v.as_object_mut().unwrap().remove("app_state");
        v.as_object_mut().unwrap().remove("communities");
        assert!(SimState::from_json(&v.to_string()).is_ok());
        let collection = |name: &str, record: &str| {
            serde_json::json!({
                "collections": [{
                    "phone": "15551234567", "name": name, "version": 1,
                    "patches": [], "records": [record], "snapshot_mac": "", "key_id": "",
                }],
                "phone_keys": [], "share_on_link": false, "answer_requests": true,
            })
        };
        for bad in [
            collection("no_such_collection", ""),
            collection("regular", "zz"),
            // A record without an index.
            collection("regular", ""),
            serde_json::json!({
                "collections": [], "share_on_link": false, "answer_requests": true,
                "phone_keys": [["15551234567", "00", "0102", 1]],
            }),
        ] {
            assert!(
                matches!(
                    SimState::from_json(&with_app_state(bad.clone())),
                    Err(Error::BadState(_))
                ),
                "{bad}"
            );
        }
        // A sub-group of a community that does not exist.
        let mut v: serde_json::Value = serde_json::from_str(&SimState::new().to_json()).unwrap();
        v["communities"] = serde_json::json!({
            "parents": [], "parent_of": { "1": "2" }, "announce_of": {},
        });
        assert!(matches!(
            SimState::from_json(&v.to_string()),
            Err(Error::BadState(_))
        ));
    }
}

#[cfg(test)]
mod token_and_dirty_file_tests {
    use super::*;

    #[test]
    fn privacy_tokens_and_dirty_flags_survive_a_restart() {
        let state = SimState::new();
        {
            let mut st = state.lock();
            st.chats.tokens.set_restricted("15550001", true);
            st.chats
                .tokens
                .record_cstoken("15550001", "15550002", Some(&[9u8; 20]));
            assert!(st.dirty.mark("15550001", "account_sync", 1_700_000_000));
            assert!(st.dirty.mark("15550002", "groups", 1_700_000_001));
        }
        let mut v: serde_json::Value = serde_json::from_str(&state.to_json()).unwrap();
        // A token as the server minted it, added to the saved file.
        v["privacy_tokens"]["tokens"] =
            serde_json::json!([["15550002", "15550001", "0a0b", 1_700_000_000u64]]);
        let back = SimState::from_json(&v.to_string()).unwrap();
        let st = back.lock();
        assert_eq!(
            st.chats.tokens.token("15550002", "15550001"),
            Some((vec![0x0a, 0x0b], 1_700_000_000))
        );
        assert_eq!(
            st.chats.tokens.cstoken("15550001", "15550002"),
            Some(vec![9u8; 20])
        );
        let a = wa_binary::Jid::with_device("15550001", wa_binary::Server::Pn, 3);
        let b = wa_binary::Jid::pn("15550002");
        assert!(
            !st.chats.tokens.admits(&a, &b, None, 1_700_000_100),
            "the account is still restricted"
        );
        assert!(
            st.chats
                .tokens
                .admits(&a, &b, Some(&[0x0a, 0x0b]), 1_700_000_100)
        );
        assert_eq!(st.dirty.flagged("15550001"), ["account_sync"]);
        assert_eq!(st.dirty.flagged("15550002"), ["groups"]);
        assert_eq!(st.dirty.login_nodes("15550002").len(), 1);
        drop(st);

        // Damaged sections are refused, not half loaded.
        let mut bad = v.clone();
        bad["privacy_tokens"]["cstokens"] = serde_json::json!([["1", "2", "not hex"]]);
        assert!(matches!(
            SimState::from_json(&bad.to_string()),
            Err(Error::BadState(_))
        ));
        let mut bad = v.clone();
        bad["privacy_tokens"]["tokens"] = serde_json::json!([["1", "2", "00".repeat(5000), 1]]);
        assert!(matches!(
            SimState::from_json(&bad.to_string()),
            Err(Error::BadState(_))
        ));
        let mut bad = v;
        bad["dirty"] = serde_json::Value::Array(
            (0..20)
                .map(|k| serde_json::json!(["1", format!("kind{k}"), 1]))
                .collect(),
        );
        assert!(matches!(
            SimState::from_json(&bad.to_string()),
            Err(Error::BadState(_))
        ));
        // Files written before these sections load with none.
        let mut old: serde_json::Value = serde_json::from_str(&SimState::new().to_json()).unwrap();
        old.as_object_mut().unwrap().remove("privacy_tokens");
        old.as_object_mut().unwrap().remove("dirty");
        assert!(SimState::from_json(&old.to_string()).is_ok());
    }
}
