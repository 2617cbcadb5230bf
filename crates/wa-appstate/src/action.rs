use wa_proto::sync_action::notification_activity_setting_action::NotificationActivitySetting;
use wa_proto::sync_action::status_privacy_action::StatusDistributionMode;
use wa_proto::sync_action::{SyncActionMessageRange, SyncActionValue};

/// What a label association points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelTarget {
    /// A whole chat (index `["label_jid", label, chat]`).
    Chat {
        /// The chat JID.
        jid: String,
    },
    /// One message (index `["label_message", label, chat, message id, "0", "0"]`).
    Message {
        /// The chat JID.
        jid: String,
        /// The message id.
        message_id: String,
    },
}

/// An account setting synced through app state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccountSetting {
    /// Archived chats are unarchived when a new message arrives
    /// (`["setting_unarchiveChats"]`, `regular_low`).
    UnarchiveChats(bool),
    /// The app's language, e.g. `en_US` (`["setting_locale"]`, `critical_block`).
    Locale(String),
    /// Times are shown in 24-hour format (`["time_format"]`, `regular_low`).
    TwentyFourHourTime(bool),
    /// Link previews are not generated for sent messages
    /// (`["setting_disableLinkPreviews"]`, `regular`).
    DisableLinkPreviews(bool),
    /// Who sees our status updates (`["status_privacy"]`, `regular_high`): everyone in
    /// our contacts, all but `users`, or only `users`.
    StatusPrivacy {
        /// How the audience is chosen.
        mode: StatusDistributionMode,
        /// The users the mode's list names (JID strings, unparsed).
        users: Vec<String>,
    },
    /// Calls are always relayed through WhatsApp's servers, hiding our IP address
    /// (`["setting_relayAllCalls"]`, `regular`).
    RelayAllCalls(bool),
    /// Which messages notify (`["notificationActivitySetting"]`, `regular`).
    NotificationActivity(NotificationActivitySetting),
    /// Channel recommendations are not personalised
    /// (`["setting_channels_personalised_recommendation_optout"]`, `regular`).
    ChannelRecommendationsOptOut(bool),
}

/// A decoded mutation as a typed chat action, for the chats layer to turn into events.
/// JIDs are the strings of the index, unparsed. Whether the mutation was a SET or a
/// REMOVE is on [`crate::Mutation::operation`] (a removed contact is a `Contact` whose
/// mutation is a REMOVE).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// `["archive", jid]` with `archiveChatAction`.
    Archive {
        /// The chat.
        jid: String,
        /// Archived (true) or unarchived.
        archived: bool,
        /// The messages it covers, when named.
        range: Option<SyncActionMessageRange>,
    },
    /// `["pin_v1", jid]` with `pinAction`.
    Pin {
        /// The chat.
        jid: String,
        /// Pinned (true) or unpinned.
        pinned: bool,
    },
    /// `["mute", jid]` with `muteAction`.
    Mute {
        /// The chat.
        jid: String,
        /// Muted (true) or unmuted.
        muted: bool,
        /// End of the mute in Unix milliseconds; -1 means forever.
        until: Option<i64>,
    },
    /// `["star", chat, message id, from me "1"/"0", participant or "0"]` with `starAction`.
    Star {
        /// The chat.
        jid: String,
        /// The message id.
        message_id: String,
        /// Whether the message was sent by this account.
        from_me: bool,
        /// The sender in a group, when given (not `"0"`).
        participant: Option<String>,
        /// Starred (true) or unstarred.
        starred: bool,
    },
    /// `["markChatAsRead", jid]` with `markChatAsReadAction`.
    MarkRead {
        /// The chat.
        jid: String,
        /// Read (true) or marked unread.
        read: bool,
        /// The messages it covers, when named.
        range: Option<SyncActionMessageRange>,
    },
    /// `["deleteChat", jid, ...]`.
    DeleteChat {
        /// The chat.
        jid: String,
        /// The messages it covers, when named.
        range: Option<SyncActionMessageRange>,
    },
    /// `["clearChat", jid, ...]`.
    ClearChat {
        /// The chat.
        jid: String,
        /// The messages it covers, when named.
        range: Option<SyncActionMessageRange>,
    },
    /// `["label_edit", label id]` with `labelEditAction`.
    LabelEdit {
        /// The label id.
        label_id: String,
        /// Its name.
        name: Option<String>,
        /// Its colour index.
        color: Option<i32>,
        /// The predefined label it derives from.
        predefined_id: Option<i32>,
        /// Whether the label was deleted.
        deleted: bool,
    },
    /// `["label_jid", ...]` or `["label_message", ...]` with `labelAssociationAction`.
    LabelAssociation {
        /// The label id.
        label_id: String,
        /// The chat or message labelled.
        target: LabelTarget,
        /// Added (true) or removed.
        labeled: bool,
    },
    /// `["contact", jid]` (with `contactAction` on a SET).
    Contact {
        /// The contact's JID.
        jid: String,
        /// Full name from the address book.
        full_name: Option<String>,
        /// First name from the address book.
        first_name: Option<String>,
        /// The contact's LID, when given.
        lid: Option<String>,
        /// The contact's phone-number JID, when given.
        pn: Option<String>,
    },
    /// `["setting_pushName"]` with `pushNameSetting`.
    PushName {
        /// This account's new push name.
        name: String,
    },
    /// `["deleteMessageForMe", jid, message id, from me "1"/"0", participant or "0"]`
    /// (with `deleteMessageForMeAction`, optional).
    DeleteForMe {
        /// The chat.
        jid: String,
        /// The message id.
        message_id: String,
        /// Whether we sent it.
        from_me: bool,
        /// Its sender in a group, when named.
        participant: Option<String>,
        /// Whether its media was deleted too.
        delete_media: bool,
        /// The message's own timestamp, when given.
        message_timestamp: Option<i64>,
    },
    /// `["lock", jid]` with `lockChatAction`: the chat was locked or unlocked.
    Lock {
        /// The chat.
        jid: String,
        /// Locked (`true`) or unlocked.
        locked: bool,
    },
    /// `["pnForLidChat", lid jid]` with `pnForLidChatAction`: the phone number behind a
    /// LID chat.
    PnForLidChat {
        /// The chat's LID JID.
        lid: String,
        /// The user's phone-number JID.
        pn: String,
    },
    /// `["lid_contact", lid jid]` with `lidContactAction`: an address-book contact known
    /// by its LID.
    LidContact {
        /// The contact's LID JID.
        lid: String,
        /// Full name.
        full_name: Option<String>,
        /// First name.
        first_name: Option<String>,
        /// Username.
        username: Option<String>,
    },
    /// An account setting: `["setting_unarchiveChats"]`, `["setting_locale"]`,
    /// `["time_format"]`, `["setting_disableLinkPreviews"]`, `["status_privacy"]`,
    /// `["setting_relayAllCalls"]`, `["notificationActivitySetting"]` or
    /// `["setting_channels_personalised_recommendation_optout"]`.
    Setting(AccountSetting),
    /// `["nct_salt_sync"]`: the account's new-chat-thread salt (`nctSaltSyncAction`);
    /// `None` when the mutation carries none (a REMOVE clears the stored salt).
    NctSalt {
        /// The salt.
        salt: Option<Vec<u8>>,
    },
    /// Anything else (or a known index without its value), kept whole.
    Other {
        /// The index.
        index: Vec<String>,
        /// The value (boxed: `SyncActionValue` is large).
        value: Option<Box<SyncActionValue>>,
    },
}

impl Action {
    /// Interprets an index and value (as Baileys' `processSyncAction` and whatsmeow's
    /// dispatch do).
    pub fn from_parts(index: &[String], value: Option<&SyncActionValue>) -> Action {
        Self::typed(index, value).unwrap_or_else(|| Action::Other {
            index: index.to_vec(),
            value: value.map(|v| Box::new(v.clone())),
        })
    }

    fn typed(index: &[String], value: Option<&SyncActionValue>) -> Option<Action> {
        let kind = index.first()?.as_str();
        let arg = |i: usize| index.get(i).cloned();
        Some(match kind {
            "archive" => {
                let a = value?.archive_chat_action.as_ref()?;
                Action::Archive {
                    jid: arg(1)?,
                    archived: a.archived?,
                    range: a.message_range.clone(),
                }
            }
            "pin_v1" => Action::Pin {
                jid: arg(1)?,
                pinned: value?.pin_action.as_ref()?.pinned?,
            },
            "mute" => {
                let m = value?.mute_action.as_ref()?;
                Action::Mute {
                    jid: arg(1)?,
                    muted: m.muted?,
                    until: m.mute_end_timestamp,
                }
            }
            "star" => Action::Star {
                jid: arg(1)?,
                message_id: arg(2)?,
                from_me: arg(3)? == "1",
                participant: arg(4).filter(|p| p != "0"),
                starred: value?.star_action.as_ref()?.starred?,
            },
            "markChatAsRead" => {
                let a = value?.mark_chat_as_read_action.as_ref()?;
                Action::MarkRead {
                    jid: arg(1)?,
                    read: a.read?,
                    range: a.message_range.clone(),
                }
            }
            "deleteChat" => Action::DeleteChat {
                jid: arg(1)?,
                range: value
                    .and_then(|v| v.delete_chat_action.as_ref())
                    .and_then(|a| a.message_range.clone()),
            },
            "clearChat" => Action::ClearChat {
                jid: arg(1)?,
                range: value
                    .and_then(|v| v.clear_chat_action.as_ref())
                    .and_then(|a| a.message_range.clone()),
            },
            "label_edit" => {
                let l = value?.label_edit_action.as_ref()?;
                Action::LabelEdit {
                    label_id: arg(1)?,
                    name: l.name.clone(),
                    color: l.color,
                    predefined_id: l.predefined_id,
                    deleted: l.deleted.unwrap_or(false),
                }
            }
            "label_jid" | "label_message" => {
                let labeled = value?.label_association_action.as_ref()?.labeled?;
                let target = if kind == "label_jid" {
                    LabelTarget::Chat { jid: arg(2)? }
                } else {
                    LabelTarget::Message {
                        jid: arg(2)?,
                        message_id: arg(3)?,
                    }
                };
                Action::LabelAssociation {
                    label_id: arg(1)?,
                    target,
                    labeled,
                }
            }
            "contact" => {
                let c = value.and_then(|v| v.contact_action.as_ref());
                Action::Contact {
                    jid: arg(1)?,
                    full_name: c.and_then(|c| c.full_name.clone()),
                    first_name: c.and_then(|c| c.first_name.clone()),
                    lid: c.and_then(|c| c.lid_jid.clone()),
                    pn: c.and_then(|c| c.pn_jid.clone()),
                }
            }
            "setting_pushName" => Action::PushName {
                name: value?.push_name_setting.as_ref()?.name.clone()?,
            },
            "deleteMessageForMe" => {
                let d = value.and_then(|v| v.delete_message_for_me_action.as_ref());
                Action::DeleteForMe {
                    jid: arg(1)?,
                    message_id: arg(2)?,
                    from_me: arg(3)? == "1",
                    participant: arg(4).filter(|p| p != "0"),
                    delete_media: d.and_then(|d| d.delete_media).unwrap_or(false),
                    message_timestamp: d.and_then(|d| d.message_timestamp),
                }
            }
            "lock" => Action::Lock {
                jid: arg(1)?,
                locked: value?.lock_chat_action.as_ref()?.locked?,
            },
            "pnForLidChat" => Action::PnForLidChat {
                lid: arg(1)?,
                pn: value?.pn_for_lid_chat_action.as_ref()?.pn_jid.clone()?,
            },
            "lid_contact" => {
                let c = value?.lid_contact_action.as_ref()?;
                Action::LidContact {
                    lid: arg(1)?,
                    full_name: c.full_name.clone(),
                    first_name: c.first_name.clone(),
                    username: c.username.clone(),
                }
            }
            "setting_unarchiveChats" => Action::Setting(AccountSetting::UnarchiveChats(
                value?.unarchive_chats_setting.as_ref()?.unarchive_chats?,
            )),
            "setting_locale" => Action::Setting(AccountSetting::Locale(
                value?.locale_setting.as_ref()?.locale.clone()?,
            )),
            "time_format" => Action::Setting(AccountSetting::TwentyFourHourTime(
                value?
                    .time_format_action
                    .as_ref()?
                    .is_twenty_four_hour_format_enabled?,
            )),
            "setting_disableLinkPreviews" => Action::Setting(AccountSetting::DisableLinkPreviews(
                value?
                    .privacy_setting_disable_link_previews_action
                    .as_ref()?
                    .is_previews_disabled?,
            )),
            "status_privacy" => {
                let p = value?.status_privacy.as_ref()?;
                Action::Setting(AccountSetting::StatusPrivacy {
                    mode: StatusDistributionMode::try_from(p.mode?).ok()?,
                    users: p.user_jid.clone(),
                })
            }
            "setting_relayAllCalls" => Action::Setting(AccountSetting::RelayAllCalls(
                value?
                    .privacy_setting_relay_all_calls
                    .as_ref()?
                    .is_enabled?,
            )),
            "notificationActivitySetting" => {
                let n = value?.notification_activity_setting_action.as_ref()?;
                Action::Setting(AccountSetting::NotificationActivity(
                    NotificationActivitySetting::try_from(n.notification_activity_setting?).ok()?,
                ))
            }
            "setting_channels_personalised_recommendation_optout" => {
                Action::Setting(AccountSetting::ChannelRecommendationsOptOut(
                    value?
                        .privacy_setting_channels_personalised_recommendation_action
                        .as_ref()?
                        .is_user_opted_out?,
                ))
            }
            "nct_salt_sync" if index.len() == 1 => Action::NctSalt {
                salt: value
                    .and_then(|v| v.nct_salt_sync_action.as_ref())
                    .and_then(|a| a.salt.clone())
                    .filter(|s| !s.is_empty()),
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders;

    fn action_of(m: &crate::OutgoingMutation) -> Action {
        Action::from_parts(&m.index, Some(&m.value))
    }

    #[test]
    fn message_ranges_read_back_with_their_actions() {
        let j = "1@s.whatsapp.net";
        let range = SyncActionMessageRange {
            last_message_timestamp: Some(1_700_000_000),
            ..Default::default()
        };
        let back = |m: crate::OutgoingMutation| match action_of(&m) {
            Action::Archive { range, .. }
            | Action::MarkRead { range, .. }
            | Action::DeleteChat { range, .. }
            | Action::ClearChat { range, .. } => range,
            other => panic!("{other:?}"),
        };
        for m in [
            builders::archive(j, true, Some(range.clone()), 1),
            builders::mark_read(j, true, Some(range.clone()), 1),
            builders::delete_chat(j, false, Some(range.clone()), 1),
            builders::clear_chat(j, false, Some(range.clone()), 1),
        ] {
            assert_eq!(back(m), Some(range.clone()));
        }
    }

    #[test]
    fn builders_read_back_as_their_actions() {
        let j = "1@s.whatsapp.net";
        assert_eq!(
            action_of(&builders::archive(j, true, None, 1)),
            Action::Archive {
                jid: j.into(),
                archived: true,
                range: None
            }
        );
        assert_eq!(
            action_of(&builders::mute(j, builders::MuteUntil::Forever, 1)),
            Action::Mute {
                jid: j.into(),
                muted: true,
                until: Some(-1)
            }
        );
        assert_eq!(
            action_of(&builders::mark_read(j, false, None, 1)),
            Action::MarkRead {
                jid: j.into(),
                read: false,
                range: None
            }
        );
        assert_eq!(
            action_of(&builders::star(
                j,
                "ID",
                false,
                Some("2@s.whatsapp.net"),
                true,
                1
            )),
            Action::Star {
                jid: j.into(),
                message_id: "ID".into(),
                from_me: false,
                participant: Some("2@s.whatsapp.net".into()),
                starred: true
            }
        );
        assert_eq!(
            action_of(&builders::delete_chat(j, false, None, 1)),
            Action::DeleteChat {
                jid: j.into(),
                range: None
            }
        );
        assert_eq!(
            action_of(&builders::clear_chat(j, true, None, 1)),
            Action::ClearChat {
                jid: j.into(),
                range: None
            }
        );
        assert_eq!(
            action_of(&builders::label_edit("5", "Work", 3, Some(2), false, 1)),
            Action::LabelEdit {
                label_id: "5".into(),
                name: Some("Work".into()),
                color: Some(3),
                predefined_id: Some(2),
                deleted: false
            }
        );
        assert_eq!(
            action_of(&builders::label_chat("5", j, true, 1)),
            Action::LabelAssociation {
                label_id: "5".into(),
                target: LabelTarget::Chat { jid: j.into() },
                labeled: true
            }
        );
        assert_eq!(
            action_of(&builders::label_message("5", j, "M", false, 1)),
            Action::LabelAssociation {
                label_id: "5".into(),
                target: LabelTarget::Message {
                    jid: j.into(),
                    message_id: "M".into()
                },
                labeled: false
            }
        );
        let c = wa_proto::sync_action::ContactAction {
            full_name: Some("Ann Lee".into()),
            first_name: Some("Ann".into()),
            lid_jid: Some("9@lid".into()),
            ..Default::default()
        };
        assert_eq!(
            action_of(&builders::contact(j, Some(c), 1)),
            Action::Contact {
                jid: j.into(),
                full_name: Some("Ann Lee".into()),
                first_name: Some("Ann".into()),
                lid: Some("9@lid".into()),
                pn: None
            }
        );
        assert_eq!(
            action_of(&builders::push_name("Me", 1)),
            Action::PushName { name: "Me".into() }
        );
        assert_eq!(
            action_of(&builders::delete_for_me(
                j,
                "M1",
                false,
                Some("2@s.whatsapp.net"),
                true,
                Some(1_700_000_000),
                1
            )),
            Action::DeleteForMe {
                jid: j.into(),
                message_id: "M1".into(),
                from_me: false,
                participant: Some("2@s.whatsapp.net".into()),
                delete_media: true,
                message_timestamp: Some(1_700_000_000),
            }
        );
        assert_eq!(
            action_of(&builders::nct_salt(Some(&[3; 32]), 1)),
            Action::NctSalt {
                salt: Some(vec![3; 32])
            }
        );
        let removed = builders::nct_salt(None, 1);
        assert_eq!(removed.operation, crate::Operation::Remove);
        assert_eq!(removed.index, ["nct_salt_sync"]);
        assert_eq!(removed.collection, crate::Collection::RegularHigh);
        assert_eq!(action_of(&removed), Action::NctSalt { salt: None });
        // A longer index is not this action.
        let odd = ["nct_salt_sync".to_owned(), "x".to_owned()];
        assert!(matches!(
            Action::from_parts(&odd, Some(&removed.value)),
            Action::Other { .. }
        ));
    }

    #[test]
    fn settings_locks_and_lid_facts_are_read() {
        use wa_proto::sync_action::{
            LidContactAction, LocaleSetting, LockChatAction, NotificationActivitySettingAction,
            PnForLidChatAction, PrivacySettingChannelsPersonalisedRecommendationAction,
            PrivacySettingRelayAllCalls, StatusPrivacyAction, TimeFormatAction,
            UnarchiveChatsSetting,
        };
        let index = |parts: &[&str]| parts.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
        let read = |parts: &[&str], fill: &dyn Fn(&mut SyncActionValue)| {
            let mut v = SyncActionValue::default();
            fill(&mut v);
            Action::from_parts(&index(parts), Some(&v))
        };
        let chat = "1@s.whatsapp.net";
        assert_eq!(
            read(&["lock", chat], &|v| v.lock_chat_action =
                Some(LockChatAction {
                    locked: Some(true),
                    ..Default::default()
                })),
            Action::Lock {
                jid: chat.into(),
                locked: true
            }
        );
        assert_eq!(
            read(&["pnForLidChat", "9@lid"], &|v| v.pn_for_lid_chat_action =
                Some(PnForLidChatAction {
                    pn_jid: Some(chat.into()),
                    ..Default::default()
                })),
            Action::PnForLidChat {
                lid: "9@lid".into(),
                pn: chat.into()
            }
        );
        assert_eq!(
            read(&["lid_contact", "9@lid"], &|v| v.lid_contact_action =
                Some(LidContactAction {
                    full_name: Some("Ann Lee".into()),
                    username: Some("ann".into()),
                    ..Default::default()
                })),
            Action::LidContact {
                lid: "9@lid".into(),
                full_name: Some("Ann Lee".into()),
                first_name: None,
                username: Some("ann".into())
            }
        );
        assert_eq!(
            read(&["setting_unarchiveChats"], &|v| v
                .unarchive_chats_setting =
                Some(UnarchiveChatsSetting {
                    unarchive_chats: Some(false),
                    ..Default::default()
                })),
            Action::Setting(AccountSetting::UnarchiveChats(false))
        );
        assert_eq!(
            read(&["setting_locale"], &|v| v.locale_setting =
                Some(LocaleSetting {
                    locale: Some("de_DE".into()),
                    ..Default::default()
                })),
            Action::Setting(AccountSetting::Locale("de_DE".into()))
        );
        assert_eq!(
            read(&["time_format"], &|v| v.time_format_action =
                Some(TimeFormatAction {
                    is_twenty_four_hour_format_enabled: Some(true),
                    ..Default::default()
                })),
            Action::Setting(AccountSetting::TwentyFourHourTime(true))
        );
        assert_eq!(
            action_of(&builders::disable_link_previews(true, 1)),
            Action::Setting(AccountSetting::DisableLinkPreviews(true))
        );
        let status = |mode: Option<i32>| {
            read(&["status_privacy"], &|v| {
                v.status_privacy = Some(StatusPrivacyAction {
                    mode,
                    user_jid: vec!["1@s.whatsapp.net".into()],
                    ..Default::default()
                })
            })
        };
        assert_eq!(
            status(Some(StatusDistributionMode::DenyList as i32)),
            Action::Setting(AccountSetting::StatusPrivacy {
                mode: StatusDistributionMode::DenyList,
                users: vec!["1@s.whatsapp.net".into()],
            })
        );
        // A mode this schema does not know is not taken for the default one.
        assert!(matches!(status(Some(99)), Action::Other { .. }));
        assert!(matches!(status(None), Action::Other { .. }));
        assert_eq!(
            read(&["setting_relayAllCalls"], &|v| v
                .privacy_setting_relay_all_calls =
                Some(PrivacySettingRelayAllCalls {
                    is_enabled: Some(true),
                    ..Default::default()
                })),
            Action::Setting(AccountSetting::RelayAllCalls(true))
        );
        assert_eq!(
            read(&["notificationActivitySetting"], &|v| v
                .notification_activity_setting_action =
                Some(NotificationActivitySettingAction {
                    notification_activity_setting: Some(
                        NotificationActivitySetting::Highlights as i32
                    ),
                    ..Default::default()
                })),
            Action::Setting(AccountSetting::NotificationActivity(
                NotificationActivitySetting::Highlights
            ))
        );
        assert_eq!(
            read(
                &["setting_channels_personalised_recommendation_optout"],
                &|v| v.privacy_setting_channels_personalised_recommendation_action =
                    Some(PrivacySettingChannelsPersonalisedRecommendationAction {
                        is_user_opted_out: Some(true),
                        ..Default::default()
                    })
            ),
            Action::Setting(AccountSetting::ChannelRecommendationsOptOut(true))
        );
        // Without their value they are kept whole.
        assert!(matches!(
            Action::from_parts(&index(&["lock", chat]), None),
            Action::Other { .. }
        ));
    }

    #[test]
    fn builder_indexes_and_collections() {
        let j = "1@s.whatsapp.net";
        let m = builders::clear_chat(j, false, None, 9);
        assert_eq!(m.index, ["clearChat", j, "1", "0"]);
        assert_eq!(
            (m.collection, m.version),
            (crate::Collection::RegularHigh, 6)
        );
        assert_eq!(m.value.timestamp, Some(9));
        let m = builders::contact(j, None, 9);
        assert_eq!(m.operation, crate::Operation::Remove);
        assert_eq!(m.collection, crate::Collection::CriticalUnblockLow);
        let m = builders::push_name("x", 9);
        assert_eq!(
            (m.collection, m.version),
            (crate::Collection::CriticalBlock, 1)
        );
        let m = builders::label_message("L", j, "M", true, 9);
        assert_eq!(m.index, ["label_message", "L", j, "M", "0", "0"]);
        assert_eq!(m.collection, crate::Collection::Regular);
        let m = builders::delete_chat(j, true, None, 9);
        assert_eq!(m.index, ["deleteChat", j, "1"]);
    }

    #[test]
    fn known_index_without_its_value_is_other() {
        let index = vec!["pin_v1".to_owned(), "1@s.whatsapp.net".to_owned()];
        let value = SyncActionValue::default();
        assert_eq!(
            Action::from_parts(&index, Some(&value)),
            Action::Other {
                index: index.clone(),
                value: Some(Box::new(value))
            }
        );
        assert_eq!(
            Action::from_parts(&[], None),
            Action::Other {
                index: vec![],
                value: None
            }
        );
        let short = vec!["archive".to_owned()];
        assert!(matches!(
            Action::from_parts(&short, None),
            Action::Other { .. }
        ));
    }
}
