//! The [`Chats`] handle: presence, chat state, privacy, profile and blocklist requests
//! over a socket, and the incoming presence, chat-state and blocklist stanzas as events.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::AbortHandle;
use wa_binary::{Jid, Node, Server};
use wa_messages::{MessageContent, Messenger};
use wa_socket::{ConnectionState, Event, Filter, Socket};
use wa_store::ContactStore as _;
use wa_types::{
    ChatState, MessageKey, PrivacySetting, PrivacySettings, PrivacyValue, ReceiptType,
    StatusPrivacy,
};

use crate::Error;
use crate::parse::{
    PictureLookup, ProfilePicture, UserStatus, parse_about_notification, parse_blocklist,
    parse_blocklist_notification, parse_chat_state, parse_disappearing_mode, parse_picture_id,
    parse_picture_info, parse_picture_notification, parse_presence, parse_privacy, parse_status,
    parse_status_privacy,
};
use crate::status::{StoredContact, status_audience};

/// Longest push name sent, in bytes.
pub const MAX_PUSH_NAME: usize = 128;
/// Longest status text sent, in bytes (WhatsApp's clients allow 139 characters).
const MAX_STATUS_SEND: usize = 1024;
/// Largest profile picture sent, in bytes.
const MAX_PICTURE: usize = 5 * 1024 * 1024;
/// Longest about emoji sent, in bytes.
pub const MAX_ABOUT_EMOJI: usize = 64;
/// Longest invite code, persona id or existing picture id sent with a picture lookup,
/// in bytes.
const MAX_PICTURE_PARAM: usize = 128;
/// WhatsApp's `UpdateTextStatus` GraphQL mutation (whatsmeow's
/// `mutationUpdateTextStatus`), answered under `xwa2_update_text_status`.
const UPDATE_TEXT_STATUS: wa_socket::mex::MexOperation = wa_socket::mex::MexOperation {
    query_id: "9152604461510864",
    path: "xwa2_update_text_status",
};

/// How to look a profile picture up ([`Chats::profile_picture_info`]; whatsmeow's
/// `GetProfilePictureParams`). Start from `ProfilePictureParams::default()` (the full
/// image of a user or group) and chain the setters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfilePictureParams {
    /// The thumbnail (`type="preview"`) rather than the full image.
    pub preview: bool,
    /// The id of the picture already known (`id=`): when it is still the current one
    /// the answer is [`PictureLookup::Unchanged`].
    pub existing_id: Option<String>,
    /// The target is a community: asked with `xmlns="w:g2"` (`<pictures><picture
    /// parent_group_jid>`), as the server refuses the plain query for communities.
    pub community: bool,
    /// A group shared with the target user (`common_gid=`), which can admit the
    /// lookup when the user's privacy would not.
    pub common_gid: Option<Jid>,
    /// An invite code of the group (`invite=`), to see the picture of a group before
    /// joining it.
    pub invite_code: Option<String>,
    /// The persona of an AI bot (`persona_id=`).
    pub persona_id: Option<String>,
}

impl ProfilePictureParams {
    /// Asks for the thumbnail instead of the full image.
    #[must_use]
    pub fn preview(mut self, preview: bool) -> Self {
        self.preview = preview;
        self
    }

    /// The id of the picture already known.
    #[must_use]
    pub fn existing_id(mut self, id: impl Into<String>) -> Self {
        self.existing_id = Some(id.into());
        self
    }

    /// The target is a community.
    #[must_use]
    pub fn community(mut self, community: bool) -> Self {
        self.community = community;
        self
    }

    /// A group shared with the target user.
    #[must_use]
    pub fn common_gid(mut self, group: Jid) -> Self {
        self.common_gid = Some(group);
        self
    }

    /// An invite code of the target group.
    #[must_use]
    pub fn invite_code(mut self, code: impl Into<String>) -> Self {
        self.invite_code = Some(code.into());
        self
    }

    /// The persona of the target AI bot.
    #[must_use]
    pub fn persona_id(mut self, id: impl Into<String>) -> Self {
        self.persona_id = Some(id.into());
        self
    }
}

/// A new about text ([`Chats::set_about`]; whatsmeow's `SetStatusInput`): the text, an
/// optional emoji shown beside it and an optional lifetime after which it goes away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AboutInput {
    /// The text (at most 1024 bytes).
    pub text: String,
    /// An emoji shown with it (at most [`MAX_ABOUT_EMOJI`] bytes).
    pub emoji: Option<String>,
    /// How long it lasts (whole seconds; `None` or zero: until changed).
    pub duration: Option<std::time::Duration>,
}

impl AboutInput {
    /// The about text `text`, with no emoji, lasting until changed.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    /// Shows `emoji` with it.
    #[must_use]
    pub fn emoji(mut self, emoji: impl Into<String>) -> Self {
        self.emoji = Some(emoji.into());
        self
    }

    /// Makes it go away after `duration`.
    #[must_use]
    pub fn duration(mut self, duration: std::time::Duration) -> Self {
        self.duration = Some(duration);
        self
    }
}

/// Settings of a [`Chats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatsConfig {
    /// Incoming presence, chat-state and notification stanzas queued for each listener
    /// before the socket's reader waits.
    pub queue: usize,
    /// The availability sent each time the connection opens (Baileys'
    /// `markOnlineOnConnect`, which sends `Available` when set and `Unavailable` when
    /// not); `None`, the default, sends nothing, as whatsmeow does. Online, this device
    /// takes the account's notifications from the phone. Like
    /// [`Chats::send_presence`], it waits for a push name: none is sent before one is
    /// known.
    pub presence_on_connect: Option<Presence>,
    /// Whether [`Chats::subscribe_presence`] refuses a contact whose privacy token is
    /// not stored ([`Error::NoPrivacyToken`]) instead of subscribing without one, which
    /// the server may ignore without a word (whatsmeow's
    /// `ErrorOnSubscribePresenceWithoutToken`). Off by default.
    pub presence_requires_token: bool,
}

impl Default for ChatsConfig {
    fn default() -> Self {
        Self {
            queue: 64,
            presence_on_connect: None,
            presence_requires_token: false,
        }
    }
}

/// Most users asked for in one status query ([`Chats::statuses`]).
pub const MAX_STATUS_QUERY: usize = 100;

/// Our own availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Presence {
    /// Online.
    Available,
    /// Offline.
    Unavailable,
}

impl Presence {
    fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Presence, chat state, privacy, profile and blocklist over a [`Socket`]. Cheap to
/// clone; the listener tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct Chats {
    inner: Arc<Inner>,
}

struct Inner {
    socket: Socket,
    /// The push name last set through this handle (else the stored one is used).
    push_name: Mutex<Option<String>>,
    /// The availability last sent (a name change repeats it).
    presence: Mutex<Presence>,
    /// The read-receipts setting last learned (a fetch, a change through this handle or
    /// the server's notice of a change from another device).
    read_receipts: Arc<Mutex<Option<PrivacyValue>>>,
    /// [`ChatsConfig::presence_requires_token`].
    presence_requires_token: bool,
    listeners: Vec<AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for l in &self.listeners {
            l.abort();
        }
    }
}

impl std::fmt::Debug for Chats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chats").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn iq(xmlns: &'static str, kind: &'static str) -> wa_binary::NodeBuilder {
    Node::builder("iq")
        .attr("xmlns", xmlns)
        .attr("type", kind)
        .attr("to", Jid::server_jid())
}

impl Chats {
    /// Wraps `socket` and subscribes to `<presence>`, `<chatstate>` and `<notification
    /// type="account_sync">` and `type="picture"`: presence and chat states become
    /// [`Event::PresenceUpdate`] and [`Event::ChatStateUpdate`]; account-sync
    /// notifications are acknowledged and their blocklist and privacy changes emitted as
    /// [`Event::BlocklistUpdate`] and [`Event::PrivacyUpdate`]; picture notifications
    /// are acknowledged and each change emitted as [`Event::PictureUpdate`]; status
    /// notifications (`type="status"`, a user's new about text) are acknowledged and
    /// emitted as [`Event::UserAbout`]. Must be called inside a Tokio runtime.
    pub fn new(socket: Socket, config: &ChatsConfig) -> Self {
        let mut presence_rx = socket.subscribe(Filter::tag("presence"), config.queue);
        let mut chatstate_rx = socket.subscribe(Filter::tag("chatstate"), config.queue);
        let mut sync_rx = socket.subscribe(
            Filter::tag("notification").kind("account_sync"),
            config.queue,
        );
        let mut picture_rx =
            socket.subscribe(Filter::tag("notification").kind("picture"), config.queue);
        let mut about_rx =
            socket.subscribe(Filter::tag("notification").kind("status"), config.queue);
        let s = socket.clone();
        let presence = tokio::spawn(async move {
            while let Some(node) = presence_rx.recv().await {
                match parse_presence(&node) {
                    Ok(u) => s.emit(Event::PresenceUpdate(Box::new(u))),
                    Err(e) => tracing::debug!("ignored presence stanza: {e}"),
                }
            }
        })
        .abort_handle();
        let s = socket.clone();
        let chatstate = tokio::spawn(async move {
            while let Some(node) = chatstate_rx.recv().await {
                match parse_chat_state(&node) {
                    Ok(u) => s.emit(Event::ChatStateUpdate(Box::new(u))),
                    Err(e) => tracing::debug!("ignored chatstate stanza: {e}"),
                }
            }
        })
        .abort_handle();
        let s = socket.clone();
        let picture = tokio::spawn(async move {
            while let Some(node) = picture_rx.recv().await {
                if let Err(e) = s.send_node(&wa_socket::ack_for(&node)).await {
                    tracing::debug!("picture notification ack not sent: {e}");
                }
                match parse_picture_notification(&node) {
                    Ok(updates) => {
                        for u in updates {
                            s.emit(Event::PictureUpdate(Box::new(u)));
                        }
                    }
                    Err(e) => tracing::warn!("unparsable picture notification: {e}"),
                }
            }
        })
        .abort_handle();
        let s = socket.clone();
        let about = tokio::spawn(async move {
            while let Some(node) = about_rx.recv().await {
                if let Err(e) = s.send_node(&wa_socket::ack_for(&node)).await {
                    tracing::debug!("status notification ack not sent: {e}");
                }
                match parse_about_notification(&node) {
                    Ok(Some(u)) => s.emit(Event::UserAbout(Box::new(u))),
                    Ok(None) => tracing::debug!("status notification without set"),
                    Err(e) => tracing::warn!("unparsable status notification: {e}"),
                }
            }
        })
        .abort_handle();
        let s = socket.clone();
        let read_receipts: Arc<Mutex<Option<PrivacyValue>>> = Arc::default();
        let learned = read_receipts.clone();
        let sync = tokio::spawn(async move {
            while let Some(node) = sync_rx.recv().await {
                let blocklist = parse_blocklist_notification(&node);
                let privacy = node.child("privacy").map(|_| parse_privacy(&node));
                if let Err(e) = s.send_node(&wa_socket::ack_for(&node)).await {
                    tracing::debug!("account_sync ack not sent: {e}");
                }
                match blocklist {
                    Ok(Some(u)) => s.emit(Event::BlocklistUpdate(u)),
                    Ok(None) => {}
                    Err(e) => tracing::warn!("unparsable blocklist notification: {e}"),
                }
                match privacy {
                    Some(Ok(p)) => {
                        if let Some(v) = p.read_receipts {
                            *learned.lock().unwrap_or_else(PoisonError::into_inner) = Some(v);
                        }
                        s.emit(Event::PrivacyUpdate(p));
                    }
                    Some(Err(e)) => tracing::warn!("unparsable privacy notification: {e}"),
                    None => {}
                }
            }
        })
        .abort_handle();
        let on_connect = config.presence_on_connect;
        let mut state = socket.state_watch();
        // The handle reaches the task once it exists (the task holds it weakly, so
        // dropping the last handle still stops it).
        let (handle_tx, handle_rx) = tokio::sync::oneshot::channel::<std::sync::Weak<Inner>>();
        // Each time the connection opens (the current one too).
        let connect = tokio::spawn(async move {
            let Some(presence) = on_connect else { return };
            let Ok(weak) = handle_rx.await else { return };
            let open = |s: &ConnectionState| *s == ConnectionState::Open;
            loop {
                if state.wait_for(open).await.is_err() {
                    return;
                }
                let Some(inner) = weak.upgrade() else { return };
                let chats = Chats { inner };
                if let Err(e) = chats.send_presence(presence).await {
                    tracing::debug!("presence on connect not sent: {e}");
                }
                drop(chats);
                if state.wait_for(|s| !open(s)).await.is_err() {
                    return;
                }
            }
        })
        .abort_handle();
        let inner = Arc::new(Inner {
            socket,
            push_name: Mutex::new(None),
            presence: Mutex::new(Presence::Unavailable),
            read_receipts,
            presence_requires_token: config.presence_requires_token,
            listeners: vec![presence, chatstate, picture, about, sync, connect],
        });
        let _ = handle_tx.send(Arc::downgrade(&inner));
        Self { inner }
    }

    async fn push_name(&self) -> Option<String> {
        if let Some(n) = lock(&self.inner.push_name).clone() {
            return Some(n);
        }
        self.inner
            .socket
            .auth()
            .await
            .and_then(|c| c.push_name.clone())
    }

    /// `jid`'s stored privacy token, for requests to another user (never to ourselves:
    /// our own requests carry none).
    async fn privacy_token(&self, jid: &Jid) -> Option<Vec<u8>> {
        if self.is_own(jid).await {
            return None;
        }
        self.inner.socket.privacy_token(jid).await
    }

    /// Whether `jid` is our own account (by phone number or LID).
    async fn is_own(&self, jid: &Jid) -> bool {
        let Some(creds) = self.inner.socket.auth().await else {
            return false;
        };
        let own = |j: Option<&str>| {
            j.and_then(|j| j.parse::<Jid>().ok())
                .is_some_and(|j| j.user == jid.user)
        };
        own(creds.jid.as_deref()) || own(creds.lid.as_deref())
    }

    pub(crate) async fn query(&self, node: Node) -> Result<Node, Error> {
        Ok(self.inner.socket.query(node).await?)
    }

    /// Tells the server (and so our contacts) whether we are online, with our push name
    /// (`<presence type name>`). As whatsmeow and Baileys do, it is refused while the
    /// account has no push name (set one, or let app-state sync bring it, first).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] without a push name; socket errors.
    pub async fn send_presence(&self, presence: Presence) -> Result<(), Error> {
        let Some(name) = self.push_name().await else {
            return Err(Error::InvalidRequest(
                "no push name yet: set one or sync app state before sending presence",
            ));
        };
        *lock(&self.inner.presence) = presence;
        if presence == Presence::Available {
            // WhatsApp Web marks the session when it goes online, as Baileys does.
            self.inner.socket.send_unified_session().await?;
        }
        let node = Node::builder("presence")
            .attr("type", presence.as_str())
            .attr("name", name)
            .build();
        Ok(self.inner.socket.send_node(&node).await?)
    }

    /// Asks to be told when `jid` comes online or goes offline (`<presence
    /// type=subscribe to>`, with `jid`'s privacy token when one is stored); the answers
    /// arrive as [`Event::PresenceUpdate`].
    ///
    /// # Errors
    /// Socket errors; [`Error::NoPrivacyToken`] when no token of another user is stored
    /// and [`ChatsConfig::presence_requires_token`] is set.
    pub async fn subscribe_presence(&self, jid: &Jid) -> Result<(), Error> {
        let token = self.privacy_token(jid).await;
        if token.is_none() && self.inner.presence_requires_token && !self.is_own(jid).await {
            return Err(Error::NoPrivacyToken(jid.to_non_ad()));
        }
        let node = Node::builder("presence")
            .attr("type", "subscribe")
            .attr("to", jid.to_non_ad())
            .attr("id", self.inner.socket.generate_id())
            .children(token.map(wa_socket::privacy_token::tctoken_node))
            .build();
        Ok(self.inner.socket.send_node(&node).await?)
    }

    /// Shows `state` (typing, recording, stopped) in the chat with `chat` (a user or a
    /// group): `<chatstate to><composing [media=audio]/>|<paused/></chatstate>`.
    ///
    /// # Errors
    /// Socket errors.
    pub async fn send_chat_state(&self, chat: &Jid, state: ChatState) -> Result<(), Error> {
        let child = match state {
            ChatState::Composing => Node::builder("composing").build(),
            ChatState::Recording => Node::builder("composing").attr("media", "audio").build(),
            ChatState::Paused => Node::builder("paused").build(),
        };
        let node = Node::builder("chatstate")
            .attr("to", chat.to_non_ad())
            .children([child])
            .build();
        Ok(self.inner.socket.send_node(&node).await?)
    }

    /// All privacy settings of the account.
    ///
    /// # Errors
    /// Socket and server errors; [`Error::Malformed`].
    pub async fn privacy_settings(&self) -> Result<PrivacySettings, Error> {
        let reply = self
            .query(
                iq("privacy", "get")
                    .children([Node::builder("privacy").build()])
                    .build(),
            )
            .await?;
        let settings = parse_privacy(&reply)?;
        if let Some(v) = settings.read_receipts {
            *self.read_receipts_cache() = Some(v);
        }
        Ok(settings)
    }

    fn read_receipts_cache(&self) -> std::sync::MutexGuard<'_, Option<PrivacyValue>> {
        self.inner
            .read_receipts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The receipt a message read by the user gets, as Baileys' `readMessages` decides
    /// it: [`ReceiptType::Read`] when the account's read-receipts setting is `all`, else
    /// [`ReceiptType::ReadSelf`] (our own devices learn the message was read, its sender
    /// does not). The setting is fetched once, then kept up to date by
    /// [`Chats::set_privacy`] and the server's notices of changes made on other devices.
    ///
    /// # Errors
    /// Those of [`Chats::privacy_settings`] when the setting is not known yet.
    pub async fn read_receipt_type(&self) -> Result<ReceiptType, Error> {
        let known = *self.read_receipts_cache();
        let value = match known {
            Some(v) => Some(v),
            None => self.privacy_settings().await?.read_receipts,
        };
        Ok(if value == Some(PrivacyValue::All) {
            ReceiptType::Read
        } else {
            ReceiptType::ReadSelf
        })
    }

    /// Changes one privacy setting.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when `setting` does not take `value` (e.g. online =
    /// contacts); socket and server errors.
    pub async fn set_privacy(
        &self,
        setting: PrivacySetting,
        value: PrivacyValue,
    ) -> Result<(), Error> {
        if !setting.accepts(value) {
            return Err(Error::InvalidRequest(
                "this setting does not take this value",
            ));
        }
        let category = Node::builder("category")
            .attr("name", setting.as_str())
            .attr("value", value.as_str())
            .build();
        self.query(
            iq("privacy", "set")
                .children([Node::builder("privacy").children([category]).build()])
                .build(),
        )
        .await?;
        if setting == PrivacySetting::ReadReceipts {
            *self.read_receipts_cache() = Some(value);
        }
        Ok(())
    }

    /// The account's status-privacy lists (who sees our status updates), the one in force
    /// first: `<iq xmlns="status" type="get"><privacy/></iq>`, read by
    /// [`parse_status_privacy`](crate::parse_status_privacy). When the server has none
    /// (no lists, or 404 item-not-found) the account never chose, and the answer is one
    /// default contacts list.
    ///
    /// # Errors
    /// Socket and server errors; [`Error::Malformed`].
    pub async fn status_privacy(&self) -> Result<Vec<StatusPrivacy>, Error> {
        let node = iq("status", "get")
            .children([Node::builder("privacy").build()])
            .build();
        match self.query(node).await {
            Ok(reply) => parse_status_privacy(&reply),
            Err(Error::Refused { code: 404, .. }) => Ok(vec![StatusPrivacy::default_contacts()]),
            Err(e) => Err(e),
        }
    }

    /// The contacts kept in the account store from app-state sync (saved ones and
    /// entries without a name), by user JID in store order. Rows that do not decode
    /// (a corrupt store, or a format from a newer version) are skipped with a warning.
    ///
    /// # Errors
    /// Store errors.
    pub async fn stored_contacts(&self) -> Result<Vec<(Jid, StoredContact)>, Error> {
        let rows = self.inner.socket.store().contacts().await?;
        let mut out = Vec::with_capacity(rows.len());
        for (key, bytes) in rows {
            let Ok(jid) = key.parse::<Jid>() else {
                tracing::warn!("stored contact with an unreadable key skipped");
                continue;
            };
            match StoredContact::decode(&bytes) {
                Ok(c) => out.push((jid, c)),
                Err(e) => tracing::warn!(%jid, "stored contact skipped: {e}"),
            }
        }
        Ok(out)
    }

    /// The users our status updates go to now: the account's status privacy
    /// ([`Chats::status_privacy`]) applied to the stored contacts
    /// ([`Chats::stored_contacts`]) by [`status_audience`](crate::status_audience).
    ///
    /// # Errors
    /// As [`Chats::status_privacy`]; store errors;
    /// [`Error::TooManyStatusRecipients`].
    pub async fn status_audience(&self) -> Result<Vec<Jid>, Error> {
        let privacy = self.status_privacy().await?;
        let contacts = self.stored_contacts().await?;
        status_audience(&privacy, &contacts)
    }

    /// Posts `content` as a status update to the audience the account's status privacy
    /// names ([`Chats::status_audience`]), through `messenger` (a messenger on the same
    /// socket); our own other devices get it too. Returns the update's key once the
    /// server accepted it. To name the recipients instead, use
    /// [`Messenger::send_status`].
    ///
    /// # Errors
    /// As [`Chats::status_audience`]; [`Error::Messages`] from the send (among them
    /// [`wa_messages::Error::NoStatusRecipients`] when the audience is empty).
    pub async fn send_status_to_audience(
        &self,
        messenger: &Messenger,
        content: MessageContent,
    ) -> Result<MessageKey, Error> {
        let audience = self.status_audience().await?;
        tracing::debug!(
            recipients = audience.len(),
            "status to the privacy audience"
        );
        Ok(messenger.send_status(content, &audience).await?)
    }

    /// Sets the default disappearing-messages timer of new chats (seconds; 0 turns it
    /// off): `<iq xmlns=disappearing_mode type=set><disappearing_mode duration/>`.
    ///
    /// # Errors
    /// Socket and server errors.
    pub async fn set_default_disappearing_mode(&self, seconds: u32) -> Result<(), Error> {
        self.query(
            iq("disappearing_mode", "set")
                .children([Node::builder("disappearing_mode")
                    .attr("duration", seconds.to_string())
                    .build()])
                .build(),
        )
        .await?;
        Ok(())
    }

    fn usync(&self, protocol: &'static str, jid: &Jid) -> Node {
        self.usync_many(protocol, std::slice::from_ref(jid))
    }

    fn usync_many(&self, protocol: &'static str, jids: &[Jid]) -> Node {
        self.usync_query(
            Node::builder(protocol).build(),
            jids.iter()
                .map(|j| Node::builder("user").attr("jid", j.to_non_ad()).build()),
        )
    }

    /// An interactive usync query for `protocol` (its `<query>` element) over `users`
    /// (the `<list>`'s `<user>` elements).
    fn usync_query(&self, protocol: Node, users: impl IntoIterator<Item = Node>) -> Node {
        iq("usync", "get")
            .children([Node::builder("usync")
                .attr("sid", self.inner.socket.generate_id())
                .attr("mode", "query")
                .attr("last", "true")
                .attr("index", "0")
                .attr("context", "interactive")
                .children([
                    Node::builder("query").children([protocol]).build(),
                    Node::builder("list").children(users).build(),
                ])
                .build()])
            .build()
    }

    /// `jid`'s default disappearing-messages timer (seconds, 0 = off), through usync;
    /// `None` when the server does not say.
    ///
    /// # Errors
    /// Socket and server errors; [`Error::Malformed`].
    pub async fn default_disappearing_mode(&self, jid: &Jid) -> Result<Option<u32>, Error> {
        let reply = self.query(self.usync("disappearing_mode", jid)).await?;
        parse_disappearing_mode(&reply, jid)
    }

    /// The default disappearing-messages timers of several users in one usync query per
    /// [`MAX_STATUS_QUERY`](crate::MAX_STATUS_QUERY) users (Baileys'
    /// `fetchDisappearingDuration(...jids)`), in the order asked.
    ///
    /// # Errors
    /// As [`Chats::default_disappearing_mode`]; a user's error answer fails the whole call.
    pub async fn default_disappearing_modes(
        &self,
        jids: &[Jid],
    ) -> Result<Vec<(Jid, Option<u32>)>, Error> {
        let mut out = Vec::with_capacity(jids.len());
        for chunk in jids.chunks(crate::MAX_STATUS_QUERY) {
            let reply = self
                .query(self.usync_many("disappearing_mode", chunk))
                .await?;
            for jid in chunk {
                out.push((jid.clone(), parse_disappearing_mode(&reply, jid)?));
            }
        }
        Ok(out)
    }

    /// Changes our push name (the name others see beside our number): saved in the
    /// stored credentials (`CredsUpdated` follows; `AuthCreds::push_name`, as Baileys
    /// keeps `creds.me.name`), remembered by this handle and announced with
    /// `<presence name>` (repeating the availability last sent through this handle,
    /// offline by default). Before the first login there are no credentials to save it
    /// in; it is then only remembered by this handle.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty or over-long name; socket errors (among
    /// them a store error while saving the credentials).
    pub async fn set_push_name(&self, name: &str) -> Result<(), Error> {
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_PUSH_NAME {
            return Err(Error::InvalidRequest("push name empty or too long"));
        }
        *lock(&self.inner.push_name) = Some(name.to_owned());
        let saved = self
            .inner
            .socket
            .update_creds(|c| {
                if c.push_name.as_deref() == Some(name) {
                    return false;
                }
                c.push_name = Some(name.to_owned());
                true
            })
            .await;
        match saved {
            Ok(_) | Err(wa_socket::Error::NotConnected) => {}
            Err(e) => return Err(e.into()),
        }
        let presence = *lock(&self.inner.presence);
        self.send_presence(presence).await
    }

    /// `jid`'s status text, through usync's `status` protocol; `None` when the user has
    /// none (or is unknown).
    ///
    /// # Errors
    /// Socket and server errors; [`Error::Malformed`].
    pub async fn status(&self, jid: &Jid) -> Result<Option<UserStatus>, Error> {
        let reply = self.query(self.usync("status", jid)).await?;
        parse_status(&reply, jid)
    }

    /// The status texts of several users in one usync query per
    /// [`MAX_STATUS_QUERY`](crate::MAX_STATUS_QUERY) users (Baileys' `fetchStatus(...jids)`),
    /// in the order asked.
    ///
    /// # Errors
    /// As [`Chats::status`]; a user's error answer fails the whole call.
    pub async fn statuses(&self, jids: &[Jid]) -> Result<Vec<(Jid, Option<UserStatus>)>, Error> {
        let mut out = Vec::with_capacity(jids.len());
        for chunk in jids.chunks(crate::MAX_STATUS_QUERY) {
            let reply = self.query(self.usync_many("status", chunk)).await?;
            for jid in chunk {
                out.push((jid.clone(), parse_status(&reply, jid)?));
            }
        }
        Ok(out)
    }

    /// Sets our status text: `<iq xmlns=status type=set><status>text</status>`.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a text over 1024 bytes; socket and server errors.
    pub async fn set_status(&self, text: &str) -> Result<(), Error> {
        if text.len() > MAX_STATUS_SEND {
            return Err(Error::InvalidRequest("status text too long"));
        }
        self.query(
            iq("status", "set")
                .children([Node::builder("status")
                    .bytes(text.as_bytes().to_vec())
                    .build()])
                .build(),
        )
        .await?;
        Ok(())
    }

    /// Sets our about text with an emoji and a lifetime, through WhatsApp's
    /// `UpdateTextStatus` `w:mex` mutation (whatsmeow's `SetStatusMessage`):
    /// `{"input": {"text", "emoji": {"content"}, "ephemeral_duration_sec"}}`. Our
    /// contacts are told with `<notification type="status">` ([`Event::UserAbout`]).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a text over 1024 bytes, an empty or over-long
    /// emoji, or a duration over `u32::MAX` seconds; socket errors, among them
    /// `wa_socket::Error::GraphQl` when the server refuses and
    /// `wa_socket::Error::UnexpectedResponse` for an answer without the mutation's
    /// result.
    pub async fn set_about(&self, about: &AboutInput) -> Result<(), Error> {
        let variables = about_variables(about)?;
        let node = wa_socket::mex::build_query(
            &self.inner.socket.generate_id(),
            UPDATE_TEXT_STATUS,
            variables,
        );
        let reply = self.query(node).await?;
        wa_socket::mex::parse_result(&reply, UPDATE_TEXT_STATUS)?;
        Ok(())
    }

    /// Where to download `jid`'s profile picture (a user or a group): the full image, or
    /// the thumbnail with `preview`. `None` when there is none (404). A user's privacy
    /// token rides along when one is stored. The same as [`Chats::profile_picture_info`]
    /// with only `preview` set.
    ///
    /// # Errors
    /// Socket errors; [`Error::Refused`] (e.g. 401 when hidden from us);
    /// [`Error::Malformed`].
    pub async fn profile_picture_url(
        &self,
        jid: &Jid,
        preview: bool,
    ) -> Result<Option<ProfilePicture>, Error> {
        let params = ProfilePictureParams::default().preview(preview);
        Ok(match self.profile_picture_info(jid, &params).await? {
            PictureLookup::Found(info) => Some(info.into()),
            _ => None,
        })
    }

    /// Looks `jid`'s profile picture up (a user, a group or, with
    /// [`ProfilePictureParams::community`], a community), as whatsmeow's
    /// `GetProfilePictureInfo` does: `<iq xmlns="w:profile:picture" type="get" target>
    /// <picture query="url" type [id] [invite] [common_gid] [persona_id]>` (with the
    /// user's privacy token when the server wants one and one is stored), or for a
    /// community `<iq xmlns="w:g2" type="get" to=community><pictures><picture query="url"
    /// type parent_group_jid [id] [invite]>`. A 404 is [`PictureLookup::NotSet`]; see
    /// [`parse_picture_info`](crate::parse_picture_info) for the rest.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty or over-long id, invite code or persona id,
    /// or a `common_gid` that is not a group; socket errors; [`Error::Refused`] (e.g. 401
    /// when hidden from us or an invite code that does not hold); [`Error::Malformed`].
    pub async fn profile_picture_info(
        &self,
        jid: &Jid,
        params: &ProfilePictureParams,
    ) -> Result<PictureLookup, Error> {
        let check = |v: &Option<String>, what: &'static str| match v {
            Some(s) if s.is_empty() || s.len() > MAX_PICTURE_PARAM => {
                Err(Error::InvalidRequest(what))
            }
            _ => Ok(()),
        };
        check(&params.existing_id, "picture id empty or too long")?;
        check(&params.invite_code, "invite code empty or too long")?;
        check(&params.persona_id, "persona id empty or too long")?;
        if params.common_gid.as_ref().is_some_and(|g| !g.is_group()) {
            return Err(Error::InvalidRequest("common_gid is not a group"));
        }
        let kind = if params.preview { "preview" } else { "image" };
        let picture = Node::builder("picture")
            .attr("query", "url")
            .attr("type", kind)
            .attr_opt("id", params.existing_id.clone())
            .attr_opt("invite", params.invite_code.clone());
        let node = if params.community {
            Node::builder("iq")
                .attr("xmlns", "w:g2")
                .attr("type", "get")
                .attr("to", jid.to_non_ad())
                .children([Node::builder("pictures")
                    .children([picture.attr("parent_group_jid", jid.to_non_ad()).build()])
                    .build()])
                .build()
        } else {
            // The server's AB props say whether picture queries carry it (prop 9666).
            let token = if self.inner.socket.server_props().profile_pic_privacy_token {
                self.privacy_token(jid).await
            } else {
                None
            };
            iq("w:profile:picture", "get")
                .attr("target", jid.to_non_ad())
                .children([picture
                    .attr_opt("common_gid", params.common_gid.as_ref().map(Jid::to_non_ad))
                    .attr_opt("persona_id", params.persona_id.clone())
                    .children(token.map(wa_socket::privacy_token::tctoken_node))
                    .build()])
                .build()
        };
        match self.query(node).await {
            Ok(reply) => parse_picture_info(&reply, params.existing_id.is_some(), params.community),
            Err(Error::Refused { code: 404, .. }) => Ok(PictureLookup::NotSet),
            Err(e) => Err(e),
        }
    }

    /// Sets the profile picture of our account (`target` `None`) or of a group we
    /// administer, from JPEG bytes (sent as given; make them from any image with
    /// [`wa_media::profile_picture`], as Baileys does); returns the new picture id when
    /// the server gives one.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for empty, non-JPEG or over-5-MiB bytes; socket and
    /// server errors.
    pub async fn set_profile_picture(
        &self,
        target: Option<&Jid>,
        jpeg: Vec<u8>,
    ) -> Result<Option<String>, Error> {
        if jpeg.len() > MAX_PICTURE {
            return Err(Error::InvalidRequest("picture too large"));
        }
        if !jpeg.starts_with(&[0xFF, 0xD8]) {
            return Err(Error::InvalidRequest("picture is not a JPEG"));
        }
        let node = iq("w:profile:picture", "set")
            .attr_opt("target", target.map(Jid::to_non_ad))
            .children([Node::builder("picture")
                .attr("type", "image")
                .bytes(jpeg)
                .build()])
            .build();
        let reply = self.query(node).await?;
        parse_picture_id(&reply)
    }

    /// Removes the profile picture of our account (`target` `None`) or of a group.
    ///
    /// # Errors
    /// Socket and server errors.
    pub async fn remove_profile_picture(&self, target: Option<&Jid>) -> Result<(), Error> {
        let node = iq("w:profile:picture", "set")
            .attr_opt("target", target.map(Jid::to_non_ad))
            .build();
        self.query(node).await?;
        Ok(())
    }

    /// The AI bots the server offers (Baileys' `getBotListV2`: `<iq xmlns="bot"
    /// type="get"><bot v="2"/>`).
    ///
    /// # Errors
    /// Socket and server errors; [`Error::Malformed`].
    pub async fn bots(&self) -> Result<Vec<crate::BotInfo>, Error> {
        let reply = self
            .query(
                iq("bot", "get")
                    .children([Node::builder("bot").attr("v", "2").build()])
                    .build(),
            )
            .await?;
        crate::parse::parse_bot_list(&reply)
    }

    /// The profiles of `bots` (from [`Chats::bots`]): name, description, commands and
    /// prompts, in one usync query per [`MAX_STATUS_QUERY`](crate::MAX_STATUS_QUERY)
    /// bots, in the order asked (`None` for a bot the server has no profile of).
    ///
    /// # Errors
    /// Socket and server errors; [`Error::Malformed`].
    pub async fn bot_profiles(
        &self,
        bots: &[crate::BotInfo],
    ) -> Result<Vec<(Jid, Option<crate::BotProfile>)>, Error> {
        let mut out = Vec::with_capacity(bots.len());
        for chunk in bots.chunks(crate::MAX_STATUS_QUERY) {
            let users = chunk.iter().map(|b| {
                Node::builder("user")
                    .attr("jid", b.jid.to_non_ad())
                    .children([Node::builder("bot")
                        .children([Node::builder("profile")
                            .attr_opt("persona_id", b.persona_id.clone())
                            .build()])
                        .build()])
                    .build()
            });
            let protocol = Node::builder("bot")
                .children([Node::builder("profile").attr("v", "1").build()])
                .build();
            let query = self.usync_query(protocol, users);
            let reply = self.query(query).await?;
            for b in chunk {
                out.push((
                    b.jid.clone(),
                    crate::parse::parse_bot_profile(&reply, &b.jid)?,
                ));
            }
        }
        Ok(out)
    }

    /// The users we blocked.
    ///
    /// # Errors
    /// Socket and server errors; [`Error::Malformed`].
    pub async fn blocklist(&self) -> Result<Vec<Jid>, Error> {
        let reply = self.query(iq("blocklist", "get").build()).await?;
        parse_blocklist(&reply)
    }

    /// Blocks `jid` (a phone number or a LID), as Baileys does: the item names the
    /// user's LID, with its phone number in `pn_jid`. Mappings come from the store, a
    /// missing LID is asked of the server (usync) and stored.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when the user's LID, or the phone number of a LID, is
    /// not known; socket and server errors.
    pub async fn block(&self, jid: &Jid) -> Result<(), Error> {
        self.update_block(jid, true).await
    }

    /// Unblocks `jid` (named by its LID, as for [`Chats::block`]).
    ///
    /// # Errors
    /// As for [`Chats::block`].
    pub async fn unblock(&self, jid: &Jid) -> Result<(), Error> {
        self.update_block(jid, false).await
    }

    /// The LID of the phone-number user `pn`: stored, else asked with usync (and stored).
    async fn lid_of(&self, pn: &Jid) -> Result<Option<Jid>, Error> {
        use wa_store::LidMappingStore as _;
        let store = self.inner.socket.store();
        let lid_server = if pn.server == Server::Hosted {
            Server::HostedLid
        } else {
            Server::Lid
        };
        if let Some(lid) = store
            .lid_for_pn(&pn.user)
            .await
            .map_err(wa_socket::Error::from)?
        {
            return Ok(Some(Jid::new(lid, lid_server)));
        }
        let reply = self.query(self.usync("lid", pn)).await?;
        let Some(lid) = crate::parse::parse_lid(&reply, pn)? else {
            return Ok(None);
        };
        match store.put_lid_mapping(&pn.user, &lid.user).await {
            Ok(()) => {
                self.inner
                    .socket
                    .emit(Event::LidMappings(vec![wa_types::LidMapping::of_users(
                        &lid.user, &pn.user,
                    )]))
            }
            Err(e) => tracing::debug!("could not store the LID of {pn}: {e}"),
        }
        Ok(Some(lid))
    }

    async fn update_block(&self, jid: &Jid, block: bool) -> Result<(), Error> {
        use wa_store::LidMappingStore as _;
        let jid = jid.to_non_ad();
        let (lid, pn) = match jid.server {
            Server::Lid | Server::HostedLid => {
                let pn = if block {
                    let pn_server = if jid.server == Server::HostedLid {
                        Server::Hosted
                    } else {
                        Server::Pn
                    };
                    let pn = self
                        .inner
                        .socket
                        .store()
                        .pn_for_lid(&jid.user)
                        .await
                        .map_err(wa_socket::Error::from)?
                        .ok_or_else(|| {
                            Error::InvalidRequest("the phone number of this LID is not known")
                        })?;
                    Some(Jid::new(pn, pn_server))
                } else {
                    None
                };
                (jid, pn)
            }
            Server::Pn | Server::Hosted => {
                let lid = self
                    .lid_of(&jid)
                    .await?
                    .ok_or_else(|| Error::InvalidRequest("no LID is known for this user"))?;
                (lid, block.then_some(jid))
            }
            _ => return Err(Error::InvalidRequest("only users can be blocked")),
        };
        let item = Node::builder("item")
            .attr("action", if block { "block" } else { "unblock" })
            .attr("jid", lid)
            .attr_opt("pn_jid", pn)
            .build();
        self.query(iq("blocklist", "set").children([item]).build())
            .await?;
        Ok(())
    }
}

/// The `variables` of the `UpdateTextStatus` mutation for `about`, checked.
fn about_variables(about: &AboutInput) -> Result<serde_json::Value, Error> {
    if about.text.len() > MAX_STATUS_SEND {
        return Err(Error::InvalidRequest("about text too long"));
    }
    let seconds = match about.duration {
        None => 0,
        Some(d) => u32::try_from(d.as_secs())
            .map_err(|_| Error::InvalidRequest("about duration too long"))?,
    };
    let mut input = serde_json::json!({
        "text": about.text,
        "ephemeral_duration_sec": seconds,
    });
    if let Some(emoji) = &about.emoji {
        if emoji.is_empty() || emoji.len() > MAX_ABOUT_EMOJI {
            return Err(Error::InvalidRequest("about emoji empty or too long"));
        }
        input["emoji"] = serde_json::json!({ "content": emoji });
    }
    Ok(serde_json::json!({ "input": input }))
}
