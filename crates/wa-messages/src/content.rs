use rand_core::CryptoRngCore;
use wa_binary::Jid;
use wa_proto::common;
use wa_proto::e2e::{
    AlbumMessage, ButtonsResponseMessage, ContactMessage, ContactsArrayMessage, ContextInfo,
    EventMessage, ExtendedTextMessage, FutureProofMessage, GroupInviteMessage, ListResponseMessage,
    LocationMessage, MemberLabel, Message, MessageAssociation, MessageContextInfo,
    PinInChatMessage, PollCreationMessage, ProductMessage, ProtocolMessage, ReactionMessage,
    RequestPhoneNumberMessage, TemplateButtonReplyMessage, buttons_response_message,
    list_response_message, message_association, pin_in_chat_message, poll_creation_message,
    product_message::ProductSnapshot, protocol_message,
};
use wa_types::MessageKey;

use crate::Error;

/// The disappearing-message timer WhatsApp offers by default: 7 days, in seconds.
pub const DEFAULT_EPHEMERAL_SECS: u32 = 7 * 24 * 60 * 60;

/// How long a message stays pinned unless told otherwise: 24 hours, in seconds (the
/// apps also offer 7 and 30 days).
pub const DEFAULT_PIN_SECS: u32 = 24 * 60 * 60;

/// The most wrapper layers (ephemeral, view-once, ...) unwrapped when normalizing a message.
const MAX_WRAPPERS: usize = 8;

/// Link preview fields shown under a text message that contains a URL.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkPreview {
    /// The URL text as it appears in the message.
    pub matched_text: String,
    /// The page title.
    pub title: Option<String>,
    /// The page description.
    pub description: Option<String>,
    /// A small JPEG thumbnail of the page.
    pub jpeg_thumbnail: Option<Vec<u8>>,
    /// The page's image uploaded whole, shown full size by recipients
    /// ([`wa_media::Media::url_info_with_image`]).
    pub image: Option<wa_media::LinkImage>,
}

impl From<wa_media::UrlInfo> for LinkPreview {
    /// The preview fields of a fetched page ([`wa_media::Media::url_info`]).
    fn from(info: wa_media::UrlInfo) -> Self {
        Self {
            matched_text: info.matched_text,
            title: Some(info.title),
            description: info.description,
            jpeg_thumbnail: info.jpeg_thumbnail,
            image: info.image,
        }
    }
}

/// A point on the map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Location {
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
    /// A place name.
    pub name: Option<String>,
    /// A street address.
    pub address: Option<String>,
}

/// One shared contact card.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contact {
    /// The name shown for the card.
    pub display_name: Option<String>,
    /// The vCard text (`BEGIN:VCARD ... END:VCARD`).
    pub vcard: String,
}

/// A poll to create.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Poll {
    /// The question.
    pub name: String,
    /// The option names, in order.
    pub options: Vec<String>,
    /// How many options a voter may select; 0 means any number.
    pub selectable_count: u32,
    /// Whether the poll goes to a community announcement group (sent as `pollCreationMessageV2`).
    pub to_announcement_group: bool,
}

/// An event for [`MessageContent::Event`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScheduledEvent {
    /// Its name.
    pub name: String,
    /// A description.
    pub description: Option<String>,
    /// When it starts, in seconds since the Unix epoch.
    pub start_time: i64,
    /// When it ends, if said.
    pub end_time: Option<i64>,
    /// Where it takes place.
    pub location: Option<Location>,
    /// A call link to join it by.
    pub join_link: Option<String>,
    /// Whether it was cancelled (an edit of the event sets this).
    pub cancelled: bool,
    /// Whether guests may bring others.
    pub extra_guests_allowed: bool,
}

/// What a message says. Turned into a `wa_proto::e2e::Message` by [`MessageBuilder`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum MessageContent {
    /// Text, sent as `extendedTextMessage` (as web clients do), optionally with a link preview.
    Text {
        /// The text.
        text: String,
        /// Preview fields for a URL in the text.
        link_preview: Option<LinkPreview>,
    },
    /// An emoji reaction to another message; an empty emoji removes the reaction.
    Reaction {
        /// The message reacted to.
        key: MessageKey,
        /// The emoji.
        emoji: String,
        /// When the reaction was made, in milliseconds since the Unix epoch.
        sender_timestamp_ms: i64,
    },
    /// A replacement for one of our earlier messages (`protocolMessage` `MESSAGE_EDIT`).
    Edit {
        /// The message being edited.
        key: MessageKey,
        /// The new content (usually [`MessageContent::Text`]).
        new_content: Box<MessageContent>,
        /// When the edit was made, in milliseconds since the Unix epoch.
        timestamp_ms: i64,
    },
    /// Delete for everyone (`protocolMessage` `REVOKE`). A group admin deletes another
    /// member's message the same way (its key has `from_me = false`).
    Revoke {
        /// The message being deleted.
        key: MessageKey,
    },
    /// Pins a message in its chat for everyone, or unpins it (`pinInChatMessage`).
    Pin {
        /// The message pinned or unpinned.
        key: MessageKey,
        /// `true` pins, `false` unpins.
        pin: bool,
        /// How long it stays pinned, in seconds (e.g. [`DEFAULT_PIN_SECS`]); ignored when
        /// unpinning.
        duration_secs: u32,
        /// When it was (un)pinned, in milliseconds since the Unix epoch.
        sender_timestamp_ms: i64,
    },
    /// A poll; its votes are encrypted with the message secret the builder attaches.
    Poll(Poll),
    /// A location.
    Location(Location),
    /// One contact card (`contactMessage`) or several (`contactsArrayMessage`).
    Contacts {
        /// The title shown for several cards.
        display_name: Option<String>,
        /// The cards; at least one.
        contacts: Vec<Contact>,
    },
    /// Turns the chat's disappearing-message timer on (seconds) or off (0)
    /// (`ephemeralMessage{protocolMessage EPHEMERAL_SETTING}`).
    DisappearingTimer {
        /// The timer in seconds, e.g. [`DEFAULT_EPHEMERAL_SECS`]; 0 turns it off.
        expiration_secs: u32,
    },
    /// A copy of an existing message marked as forwarded.
    Forward {
        /// The message to forward (wrappers such as ephemeral or view-once are removed).
        message: Box<Message>,
        /// Whether we sent the original; forwarding our own message does not mark it
        /// forwarded unless `force` is set.
        from_me: bool,
        /// Mark as forwarded even when `from_me`.
        force: bool,
    },
    /// An event (a meeting, a party) in a chat (`eventMessage`; Baileys' `event`). Its
    /// responses are encrypted with the message secret the builder attaches.
    Event(ScheduledEvent),
    /// Shares our phone number with the chat (`protocolMessage` `SHARE_PHONE_NUMBER`), as
    /// when a username contact asks for it.
    SharePhoneNumber,
    /// Asks the chat for its phone number (`requestPhoneNumberMessage`).
    RequestPhoneNumber,
    /// Turns "limit sharing" (no forwarding, saving or exporting of this chat's media and
    /// messages) on or off (`protocolMessage` `LIMIT_SHARING`).
    LimitSharing {
        /// `true` limits sharing, `false` lifts the limit.
        limited: bool,
        /// When it was set, in milliseconds since the Unix epoch.
        timestamp_ms: i64,
    },
    /// Our member label in a group (the tag shown beside our name there; Baileys'
    /// `updateMemberLabel`): a `GROUP_MEMBER_LABEL_CHANGE` protocol message, the label cut
    /// to 30 characters; an empty label removes it.
    MemberLabel {
        /// The label.
        label: String,
        /// When it was set, in seconds since the Unix epoch.
        timestamp_secs: i64,
    },
    /// An invitation to join a group by its invite code (`groupInviteMessage`; Baileys'
    /// `groupInvite`), shown as a card with the group's name and picture.
    GroupInvite {
        /// The group.
        group: Jid,
        /// The invite code (`Groups::invite_code`, or an invite the group sent).
        code: String,
        /// When the invitation expires, in seconds since the Unix epoch (0: never).
        expiration: i64,
        /// The group's name, shown on the card.
        group_name: String,
        /// Text under the card.
        caption: Option<String>,
        /// A small JPEG of the group's picture.
        jpeg_thumbnail: Option<Vec<u8>>,
    },
    /// The answer to a message with buttons: a tap on one of its buttons (Baileys'
    /// `buttonReply`).
    ButtonReply {
        /// The button's id.
        id: String,
        /// The button's text.
        display_text: String,
        /// The button's position (template buttons only).
        index: u32,
        /// `true` answers a template message (`templateButtonReplyMessage`), `false` a
        /// plain buttons message (`buttonsResponseMessage`).
        template: bool,
    },
    /// The answer to a list message: the row picked (`listResponseMessage`, single
    /// select; Baileys' `listReply`).
    ListReply {
        /// The list's title.
        title: String,
        /// The picked row's id.
        row_id: String,
        /// The row's description.
        description: Option<String>,
    },
    /// The head of an album (`albumMessage`): how many images and videos follow. Each item
    /// is then sent with [`MessageBuilder::album_parent`] naming this message's key.
    Album {
        /// Images in the album.
        images: u32,
        /// Videos in the album.
        videos: u32,
    },
    /// A product from a business catalog (`productMessage`; Baileys' `product`). Its
    /// image is an uploaded `imageMessage` (`wa-media`) in `product.product_image`.
    Product {
        /// The product as shown on the card.
        product: Box<ProductSnapshot>,
        /// The business selling it.
        business_owner: Jid,
        /// Text above the card.
        body: Option<String>,
        /// Text under the card.
        footer: Option<String>,
    },
    /// A message composed elsewhere, e.g. a media message `wa-media` prepared (uploaded,
    /// with its keys and hashes); the builder adds the quote, mentions, timer, view-once
    /// wrapper and message secret as for any other content (a secret it already has is
    /// kept).
    Prepared(Box<Message>),
}

impl MessageContent {
    /// Plain text.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            text: text.into(),
            link_preview: None,
        }
    }
}

/// A message being replied to.
#[derive(Clone, Debug, PartialEq)]
pub struct Quote {
    /// The quoted message's key.
    pub key: MessageKey,
    /// The quoted message's content.
    pub message: Message,
    /// Who sent the quoted message (no device part).
    pub participant: Jid,
}

impl Quote {
    /// A quote of `message` under `key`; its sender is `own_jid` when `key.from_me`, otherwise
    /// the key's participant, or the chat itself in one-to-one chats.
    pub fn new(key: MessageKey, message: Message, own_jid: &Jid) -> Self {
        let sender = if key.from_me {
            own_jid
        } else {
            key.participant.as_ref().unwrap_or(&key.remote_jid)
        };
        let participant = sender.normalized_user();
        Self {
            key,
            message,
            participant,
        }
    }
}

/// Builds the `Message` protobuf for one [`MessageContent`] in one chat, the way Baileys'
/// `generateWAMessageContent` / `generateWAMessageFromContent` do.
#[derive(Clone, Debug)]
pub struct MessageBuilder {
    chat: Jid,
    content: MessageContent,
    quote: Option<Quote>,
    mentions: Vec<Jid>,
    mention_all: bool,
    ephemeral_expiration: Option<u32>,
    view_once: bool,
    message_secret: Option<[u8; 32]>,
    text_style: Option<(u32, Option<i32>)>,
    album_parent: Option<MessageKey>,
}

impl MessageBuilder {
    /// A builder for `content` sent to `chat`.
    pub fn new(chat: Jid, content: MessageContent) -> Self {
        Self {
            chat,
            content,
            quote: None,
            mentions: Vec::new(),
            mention_all: false,
            ephemeral_expiration: None,
            view_once: false,
            message_secret: None,
            text_style: None,
            album_parent: None,
        }
    }

    /// The background colour (`0xAARRGGBB`) and font (WhatsApp's font index) of a text
    /// status update (`extendedTextMessage.backgroundArgb` / `font`, Baileys'
    /// `backgroundColor` / `font` options); ignored for content other than text.
    #[must_use]
    pub fn text_style(mut self, background_argb: u32, font: Option<i32>) -> Self {
        self.text_style = Some((background_argb, font));
        self
    }

    /// Reply to `quote` (`contextInfo.stanzaId`, `participant`, `quotedMessage`).
    #[must_use]
    pub fn quote(mut self, quote: Quote) -> Self {
        self.quote = Some(quote);
        self
    }

    /// Mention these users (`contextInfo.mentionedJid`).
    #[must_use]
    pub fn mentions(mut self, jids: impl IntoIterator<Item = Jid>) -> Self {
        self.mentions.extend(jids);
        self
    }

    /// Mention everyone in the group (`contextInfo.nonJidMentions = 1`).
    #[must_use]
    pub fn mention_all(mut self) -> Self {
        self.mention_all = true;
        self
    }

    /// The chat has disappearing messages on with this timer: sets `contextInfo.expiration`
    /// (not on protocol messages such as revokes, edits and timer changes).
    #[must_use]
    pub fn ephemeral_expiration(mut self, secs: u32) -> Self {
        self.ephemeral_expiration = Some(secs);
        self
    }

    /// Wrap the content in `viewOnceMessage`.
    #[must_use]
    pub fn view_once(mut self) -> Self {
        self.view_once = true;
        self
    }

    /// Send this (an image or video) as an item of the album whose head
    /// ([`MessageContent::Album`]) has the key `album`
    /// (`messageContextInfo.messageAssociation`, type `MEDIA_ALBUM`).
    #[must_use]
    pub fn album_parent(mut self, album: MessageKey) -> Self {
        self.album_parent = Some(album);
        self
    }

    /// Use this message secret instead of 32 random bytes.
    #[must_use]
    pub fn message_secret(mut self, secret: [u8; 32]) -> Self {
        self.message_secret = Some(secret);
        self
    }

    /// The finished `Message`. Every message except reactions carries a 32-byte
    /// `messageContextInfo.messageSecret` (random from `rng` unless set); for polls it is the
    /// key votes are encrypted with.
    pub fn build(self, rng: &mut impl CryptoRngCore) -> Result<Message, Error> {
        let (edit, base) = match self.content {
            MessageContent::Edit {
                key,
                new_content,
                timestamp_ms,
            } => (Some((key, timestamp_ms)), *new_content),
            other => (None, other),
        };
        let mut m = content_message(base)?;
        if let Some((argb, font)) = self.text_style
            && let Some(ext) = m.extended_text_message.as_deref_mut()
        {
            ext.background_argb = Some(argb);
            ext.font = font;
        }

        if (!self.mentions.is_empty() || self.mention_all)
            && let Some(slot) = context_slot(&mut m)
        {
            let existed = slot.is_some();
            let ci = slot.get_or_insert_default();
            if !self.mentions.is_empty() {
                ci.mentioned_jid = self.mentions.iter().map(Jid::to_string).collect();
            }
            if self.mention_all || !existed {
                ci.non_jid_mentions = Some(u32::from(self.mention_all));
            }
        }
        // Replies and timers go on the content itself; edits carry neither.
        if edit.is_none() {
            if let Some(quote) = self.quote
                && let Some(slot) = context_slot(&mut m)
            {
                let ci = slot.get_or_insert_default();
                ci.participant = Some(quote.participant.to_string());
                ci.stanza_id = Some(quote.key.id.clone());
                ci.quoted_message = Some(Box::new(strip_for_quote(quote.message)));
                if quote.key.remote_jid != self.chat {
                    ci.remote_jid = Some(quote.key.remote_jid.to_string());
                }
            }
            if let Some(exp) = self.ephemeral_expiration.filter(|&e| e > 0)
                && let Some(slot) = context_slot(&mut m)
            {
                slot.get_or_insert_default().expiration = Some(exp);
            }
        }
        if self.view_once {
            m = Message {
                view_once_message: Some(Box::new(FutureProofMessage {
                    message: Some(Box::new(m)),
                    ..Default::default()
                })),
                ..Default::default()
            };
        }
        if let Some((key, timestamp_ms)) = edit {
            m = Message {
                protocol_message: Some(Box::new(ProtocolMessage {
                    key: Some(key_to_proto(&key)),
                    r#type: Some(protocol_message::Type::MessageEdit as i32),
                    edited_message: Some(Box::new(m)),
                    timestamp_ms: Some(timestamp_ms),
                    ..Default::default()
                })),
                ..Default::default()
            };
        }
        if let Some(album) = self.album_parent {
            m.message_context_info
                .get_or_insert_default()
                .message_association = Some(Box::new(MessageAssociation {
                association_type: Some(message_association::AssociationType::MediaAlbum as i32),
                parent_message_key: Some(key_to_proto(&album)),
                ..Default::default()
            }));
        }
        let has_secret = m
            .message_context_info
            .as_ref()
            .is_some_and(|c| c.message_secret.is_some());
        if m.reaction_message.is_none()
            && m.poll_update_message.is_none()
            && (self.message_secret.is_some() || !has_secret)
        {
            let secret = self.message_secret.unwrap_or_else(|| {
                let mut s = [0u8; 32];
                rng.fill_bytes(&mut s);
                s
            });
            m.message_context_info
                .get_or_insert_default()
                .message_secret = Some(secret.to_vec());
        }
        Ok(m)
    }
}

/// The protobuf form of a [`MessageKey`].
pub fn key_to_proto(key: &MessageKey) -> common::MessageKey {
    common::MessageKey {
        remote_jid: Some(key.remote_jid.to_string()),
        from_me: Some(key.from_me),
        id: Some(key.id.clone()),
        participant: key.participant.as_ref().map(Jid::to_string),
        ..Default::default()
    }
}

fn location_message(loc: Location) -> LocationMessage {
    LocationMessage {
        degrees_latitude: Some(loc.latitude),
        degrees_longitude: Some(loc.longitude),
        name: loc.name,
        address: loc.address,
        ..Default::default()
    }
}

/// The bare content message, before context, wrappers and the message secret.
fn content_message(content: MessageContent) -> Result<Message, Error> {
    let mut m = Message::default();
    match content {
        MessageContent::Text { text, link_preview } => {
            let mut ext = ExtendedTextMessage {
                text: Some(text),
                ..Default::default()
            };
            if let Some(p) = link_preview {
                ext.matched_text = Some(p.matched_text);
                ext.title = p.title;
                ext.description = p.description;
                ext.jpeg_thumbnail = p.jpeg_thumbnail;
                ext.preview_type = Some(0);
                if let Some(img) = p.image {
                    ext.thumbnail_direct_path = Some(img.direct_path);
                    ext.media_key = Some(img.media_key.to_vec());
                    ext.media_key_timestamp = Some(img.media_key_timestamp);
                    ext.thumbnail_sha256 = Some(img.file_sha256.to_vec());
                    ext.thumbnail_enc_sha256 = Some(img.file_enc_sha256.to_vec());
                    ext.thumbnail_width = Some(img.width);
                    ext.thumbnail_height = Some(img.height);
                }
            }
            m.extended_text_message = Some(Box::new(ext));
        }
        MessageContent::Reaction {
            key,
            emoji,
            sender_timestamp_ms,
        } => {
            m.reaction_message = Some(Box::new(ReactionMessage {
                key: Some(key_to_proto(&key)),
                text: Some(emoji),
                sender_timestamp_ms: Some(sender_timestamp_ms),
                ..Default::default()
            }));
        }
        MessageContent::Edit { new_content, .. } => {
            // Nested edits are flattened: only the innermost content is kept.
            return content_message(*new_content);
        }
        MessageContent::Revoke { key } => {
            m.protocol_message = Some(Box::new(ProtocolMessage {
                key: Some(key_to_proto(&key)),
                r#type: Some(protocol_message::Type::Revoke as i32),
                ..Default::default()
            }));
        }
        MessageContent::Pin {
            key,
            pin,
            duration_secs,
            sender_timestamp_ms,
        } => {
            let kind = if pin {
                pin_in_chat_message::Type::PinForAll
            } else {
                pin_in_chat_message::Type::UnpinForAll
            };
            m.pin_in_chat_message = Some(Box::new(PinInChatMessage {
                key: Some(key_to_proto(&key)),
                r#type: Some(kind as i32),
                sender_timestamp_ms: Some(sender_timestamp_ms),
                ..Default::default()
            }));
            m.message_context_info = Some(Box::new(MessageContextInfo {
                message_add_on_duration_in_secs: Some(if pin { duration_secs } else { 0 }),
                ..Default::default()
            }));
        }
        MessageContent::Poll(poll) => {
            if poll.options.is_empty() {
                return Err(Error::InvalidPoll("no options"));
            }
            if usize::try_from(poll.selectable_count).map_or(true, |n| n > poll.options.len()) {
                return Err(Error::InvalidPoll(
                    "selectable count exceeds the option count",
                ));
            }
            let creation = Box::new(PollCreationMessage {
                name: Some(poll.name),
                options: poll
                    .options
                    .into_iter()
                    .map(|name| poll_creation_message::Option {
                        option_name: Some(name),
                        ..Default::default()
                    })
                    .collect(),
                selectable_options_count: Some(poll.selectable_count),
                ..Default::default()
            });
            if poll.to_announcement_group {
                m.poll_creation_message_v2 = Some(creation);
            } else if poll.selectable_count == 1 {
                m.poll_creation_message_v3 = Some(creation);
            } else {
                m.poll_creation_message = Some(creation);
            }
        }
        MessageContent::Location(loc) => {
            m.location_message = Some(Box::new(location_message(loc)));
        }
        MessageContent::Contacts {
            display_name,
            mut contacts,
        } => {
            let to_proto = |c: Contact| ContactMessage {
                display_name: c.display_name,
                vcard: Some(c.vcard),
                ..Default::default()
            };
            match contacts.len() {
                0 => return Err(Error::NoContacts),
                1 => {
                    let c = contacts.remove(0);
                    m.contact_message = Some(Box::new(to_proto(c)));
                }
                _ => {
                    m.contacts_array_message = Some(Box::new(ContactsArrayMessage {
                        display_name,
                        contacts: contacts.into_iter().map(to_proto).collect(),
                        ..Default::default()
                    }));
                }
            }
        }
        MessageContent::DisappearingTimer { expiration_secs } => {
            let inner = Message {
                protocol_message: Some(Box::new(ProtocolMessage {
                    r#type: Some(protocol_message::Type::EphemeralSetting as i32),
                    ephemeral_expiration: Some(expiration_secs),
                    ..Default::default()
                })),
                ..Default::default()
            };
            m.ephemeral_message = Some(Box::new(FutureProofMessage {
                message: Some(Box::new(inner)),
                ..Default::default()
            }));
        }
        MessageContent::Prepared(message) => m = *message,
        MessageContent::Event(event) => {
            if event.name.trim().is_empty() {
                return Err(Error::InvalidEvent("an event needs a name"));
            }
            if event.end_time.is_some_and(|end| end < event.start_time) {
                return Err(Error::InvalidEvent("an event cannot end before it starts"));
            }
            m.event_message = Some(Box::new(EventMessage {
                name: Some(event.name),
                description: event.description,
                start_time: Some(event.start_time),
                end_time: event.end_time,
                location: event.location.map(|loc| Box::new(location_message(loc))),
                join_link: event.join_link,
                is_canceled: Some(event.cancelled),
                extra_guests_allowed: Some(event.extra_guests_allowed),
                is_schedule_call: Some(false),
                ..Default::default()
            }));
        }
        MessageContent::SharePhoneNumber => {
            m.protocol_message = Some(Box::new(ProtocolMessage {
                r#type: Some(protocol_message::Type::SharePhoneNumber as i32),
                ..Default::default()
            }));
        }
        MessageContent::RequestPhoneNumber => {
            m.request_phone_number_message = Some(Box::new(RequestPhoneNumberMessage::default()));
        }
        MessageContent::LimitSharing {
            limited,
            timestamp_ms,
        } => {
            m.protocol_message = Some(Box::new(ProtocolMessage {
                r#type: Some(protocol_message::Type::LimitSharing as i32),
                limit_sharing: Some(common::LimitSharing {
                    sharing_limited: Some(limited),
                    trigger: Some(1),
                    limit_sharing_setting_timestamp: Some(timestamp_ms),
                    initiated_by_me: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }));
        }
        MessageContent::MemberLabel {
            label,
            timestamp_secs,
        } => {
            m.protocol_message = Some(Box::new(ProtocolMessage {
                r#type: Some(protocol_message::Type::GroupMemberLabelChange as i32),
                member_label: Some(MemberLabel {
                    label: Some(label.chars().take(30).collect()),
                    label_timestamp: Some(timestamp_secs),
                    ..Default::default()
                }),
                ..Default::default()
            }));
        }
        MessageContent::GroupInvite {
            group,
            code,
            expiration,
            group_name,
            caption,
            jpeg_thumbnail,
        } => {
            m.group_invite_message = Some(Box::new(GroupInviteMessage {
                group_jid: Some(group.to_string()),
                invite_code: Some(code),
                invite_expiration: Some(expiration),
                group_name: Some(group_name),
                jpeg_thumbnail,
                caption,
                ..Default::default()
            }));
        }
        MessageContent::ButtonReply {
            id,
            display_text,
            index,
            template,
        } => {
            if template {
                m.template_button_reply_message = Some(Box::new(TemplateButtonReplyMessage {
                    selected_id: Some(id),
                    selected_display_text: Some(display_text),
                    selected_index: Some(index),
                    ..Default::default()
                }));
            } else {
                m.buttons_response_message = Some(Box::new(ButtonsResponseMessage {
                    selected_button_id: Some(id),
                    response: Some(buttons_response_message::Response::SelectedDisplayText(
                        display_text,
                    )),
                    r#type: Some(buttons_response_message::Type::DisplayText as i32),
                    ..Default::default()
                }));
            }
        }
        MessageContent::ListReply {
            title,
            row_id,
            description,
        } => {
            m.list_response_message = Some(Box::new(ListResponseMessage {
                title: Some(title),
                list_type: Some(list_response_message::ListType::SingleSelect as i32),
                single_select_reply: Some(list_response_message::SingleSelectReply {
                    selected_row_id: Some(row_id),
                    ..Default::default()
                }),
                description,
                ..Default::default()
            }));
        }
        MessageContent::Album { images, videos } => {
            m.album_message = Some(Box::new(AlbumMessage {
                expected_image_count: Some(images),
                expected_video_count: Some(videos),
                ..Default::default()
            }));
        }
        MessageContent::Product {
            product,
            business_owner,
            body,
            footer,
        } => {
            m.product_message = Some(Box::new(ProductMessage {
                product: Some(product),
                business_owner_jid: Some(business_owner.to_string()),
                body,
                footer,
                ..Default::default()
            }));
        }
        MessageContent::Forward {
            message,
            from_me,
            force,
        } => {
            m = normalize(*message);
            // The copy gets its own message secret.
            m.message_context_info = None;
            if let Some(text) = m.conversation.take() {
                m.extended_text_message = Some(Box::new(ExtendedTextMessage {
                    text: Some(text),
                    ..Default::default()
                }));
            }
            let increment = u32::from(!from_me || force);
            if let Some(slot) = context_slot(&mut m) {
                let score = slot
                    .as_ref()
                    .and_then(|ci| ci.forwarding_score)
                    .unwrap_or(0)
                    .saturating_add(increment);
                let mut ci = ContextInfo::default();
                if score > 0 {
                    ci.forwarding_score = Some(score);
                    ci.is_forwarded = Some(true);
                }
                *slot = Some(Box::new(ci));
            }
        }
    }
    Ok(m)
}

/// Removes wrapper layers (ephemeral, view-once, document-with-caption, edited) around the
/// content, at most [`MAX_WRAPPERS`] deep.
fn normalize(mut m: Message) -> Message {
    for _ in 0..MAX_WRAPPERS {
        let wrapper = m
            .ephemeral_message
            .take()
            .or_else(|| m.view_once_message.take())
            .or_else(|| m.view_once_message_v2.take())
            .or_else(|| m.view_once_message_v2_extension.take())
            .or_else(|| m.document_with_caption_message.take())
            .or_else(|| m.edited_message.take());
        match wrapper.and_then(|w| w.message) {
            Some(inner) => m = *inner,
            None => break,
        }
    }
    m
}

/// The quoted copy of a message: wrappers, message context and the content's own context
/// info removed.
fn strip_for_quote(message: Message) -> Message {
    let mut m = normalize(message);
    m.message_context_info = None;
    m.sender_key_distribution_message = None;
    m.fast_ratchet_key_sender_key_distribution_message = None;
    if let Some(slot) = context_slot(&mut m) {
        *slot = None;
    }
    m
}

/// The `contextInfo` field of the message's content, for the content types that have one.
fn context_slot(m: &mut Message) -> Option<&mut Option<Box<ContextInfo>>> {
    if let Some(x) = m.extended_text_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.image_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.video_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.audio_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.document_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.sticker_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.location_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.live_location_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.contact_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.contacts_array_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.poll_creation_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.poll_creation_message_v2.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.poll_creation_message_v3.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.event_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.request_phone_number_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.group_invite_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.template_button_reply_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.buttons_response_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.list_response_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.album_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.product_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    if let Some(x) = m.ptv_message.as_deref_mut() {
        return Some(&mut x.context_info);
    }
    None
}
