//! [`WaSocket`]: one connection with every layer wired.

use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_business::Business;
use wa_calls::{Calls, CallsConfig};
use wa_chats::{AppState, AppStateConfig, Chats, ChatsConfig};
use wa_groups::{Groups, GroupsConfig};
use wa_media::{Media, MediaConfig, MediaKind, MediaOptions};
use wa_messages::{LinkPreview, MessageBuilder, MessageContent, Messenger, MessengerConfig, Quote};
use wa_newsletter::Newsletters;
use wa_proto::e2e::Message;
use wa_socket::{Socket, SocketConfig};
use wa_store::AccountStore;
use wa_types::{Event, MessageKey, WaMessage};
use wa_usync::{Usync, UsyncConfig};

use crate::Error;

/// The settings of every layer. [`WaConfig::new`] gives the defaults for an account store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WaConfig {
    /// The connection: server URL, browser, timeouts, the store, ...
    pub socket: SocketConfig,
    /// Messaging: ack timeout, workers, retention, ...
    pub messages: MessengerConfig,
    /// Group metadata cache.
    pub groups: GroupsConfig,
    /// Device-list cache.
    pub usync: UsyncConfig,
    /// Media hosts and limits.
    pub media: MediaConfig,
    /// Presence, privacy, profile and blocklist.
    pub chats: ChatsConfig,
    /// Call signalling (the offer cache).
    pub calls: CallsConfig,
    /// App-state sync (archive, pin, mute, labels, contacts, ...).
    pub app_state: AppStateConfig,
    /// Fetch a link preview (title, description, thumbnail) for the first `https://` URL
    /// of a text sent, replied or edited without one, waiting at most this long; the text is
    /// sent without a preview when the page gives none in time. `None` (the default)
    /// never fetches, as Baileys without its optional `link-preview-js`.
    pub link_previews: Option<Duration>,
    /// With [`WaConfig::link_previews`], also upload the page's image whole so
    /// recipients show it full size (Baileys' `generateHighQualityLinkPreview`; off by
    /// default, as there).
    pub link_preview_images: bool,
}

impl WaConfig {
    /// Defaults for an account kept in `store`. The socket reads the store through a
    /// bounded cache (`socket.cache`, 16 MiB, entries live 5 minutes; see
    /// [`wa_store::CachedBackend`]): commits write through it, so the Signal sessions
    /// every message rewrites are read from memory, which roughly triples the messages
    /// per second a SQLite-backed account sustains. Set `socket.cache = None` when other
    /// code writes to the same store behind the socket's back.
    pub fn new(store: AccountStore) -> Self {
        let mut socket = SocketConfig::new(store);
        socket.cache = Some(wa_store::CacheConfig::default());
        Self {
            socket,
            messages: MessengerConfig::default(),
            groups: GroupsConfig::default(),
            usync: UsyncConfig::default(),
            media: MediaConfig::default(),
            chats: ChatsConfig::default(),
            calls: CallsConfig::default(),
            app_state: AppStateConfig::default(),
            link_previews: None,
            link_preview_images: false,
        }
    }
}

/// A WhatsApp Web connection with every layer wired: messages, groups, media and user
/// lookups, each reachable through its accessor, and shortcuts for the common calls.
/// Cheap to clone; the connection closes when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct WaSocket {
    socket: Socket,
    usync: Usync,
    groups: Groups,
    messages: Messenger,
    media: Media,
    chats: Chats,
    calls: Calls,
    newsletters: Newsletters,
    business: Business,
    app_state: AppState,
    link_previews: Option<Duration>,
    link_preview_images: bool,
}

/// Connects and wires every layer, as Baileys' `makeWASocket` does: the socket starts
/// connecting (showing QR codes on [`Event::Connection`] when not linked yet) and keeps
/// reconnecting by itself. Call it inside a Tokio runtime; subscribe to
/// [`WaSocket::events`] right away.
///
/// # Errors
/// [`Error`] when the media HTTP client cannot be built (TLS setup, an unusable proxy).
pub fn make_wa_socket(mut config: WaConfig) -> Result<WaSocket, Error> {
    // Media and link previews go through the socket's proxy unless told otherwise.
    if config.media.proxy.is_none() {
        config.media.proxy.clone_from(&config.socket.proxy);
    }
    let socket = Socket::connect(config.socket);
    let usync = Usync::new(socket.clone(), &config.usync);
    let groups = Groups::new(socket.clone(), &config.groups);
    let media = Media::new(socket.clone(), config.media)?;
    let messages = Messenger::new(socket.clone(), usync.clone(), config.messages)
        .with_groups(groups.clone())
        .with_media(media.clone());
    let chats = Chats::new(socket.clone(), &config.chats);
    let calls = Calls::new(socket.clone(), &config.calls);
    let newsletters = Newsletters::new(socket.clone());
    let business = Business::new(socket.clone());
    let app_state = AppState::new(
        socket.clone(),
        Some(media.clone()),
        Some(messages.clone()),
        config.app_state,
    );
    Ok(WaSocket {
        socket,
        usync,
        groups,
        messages,
        media,
        chats,
        calls,
        newsletters,
        business,
        app_state,
        link_previews: config.link_previews,
        link_preview_images: config.link_preview_images,
    })
}

impl WaSocket {
    /// Every event of every layer (connection, messages, receipts, groups, ...). The first
    /// call sees them from the moment the socket started (so the first QR code is never
    /// missed, see [`Socket::events_from_start`]); later calls from the call on. A reader
    /// that falls behind the bus's capacity skips the oldest events (see
    /// [`Events::lagged`]) instead of stopping.
    pub fn events(&self) -> Events {
        Events {
            rx: self.socket.events_from_start(),
            lagged: 0,
        }
    }

    /// The base socket (raw stanzas, queries, connection state).
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// The messaging layer.
    pub fn messages(&self) -> &Messenger {
        &self.messages
    }

    /// The groups layer.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// The media layer.
    pub fn media(&self) -> &Media {
        &self.media
    }

    /// Presence and typing, privacy settings, profile (name, status, picture), blocklist.
    pub fn chats(&self) -> &Chats {
        &self.chats
    }

    /// Calls: incoming call events ([`Event::Call`]), rejecting calls, call links.
    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    /// Channels (newsletters): create, follow, post, react, fetch.
    pub fn newsletter(&self) -> &Newsletters {
        &self.newsletters
    }

    /// Business profile, catalog, products and orders.
    pub fn business(&self) -> &Business {
        &self.business
    }

    /// App-state sync: archive, pin, mute, star, labels, contacts
    /// ([`AppState::chat_modify`]) and the events other devices' changes become.
    pub fn app_state(&self) -> &AppState {
        &self.app_state
    }

    /// Device lists, contact and LID lookups.
    pub fn usync(&self) -> &Usync {
        &self.usync
    }

    /// Our own account (phone-number JID with our device), once linked.
    pub async fn me(&self) -> Option<Jid> {
        self.socket.me().await
    }

    /// `content` as it is sent: with a link preview ([`Self::with_link_preview`]) and a
    /// group invite's thumbnail ([`Self::with_invite_thumbnail`]) filled in.
    async fn prepared(&self, content: MessageContent) -> MessageContent {
        let content = self.with_link_preview(content).await;
        self.with_invite_thumbnail(content).await
    }

    /// A group invite without a thumbnail gets the group's picture preview, as Baileys
    /// fetches it; without a picture, or when it cannot be fetched within
    /// [`INVITE_THUMBNAIL_TIMEOUT`], the invite goes without.
    async fn with_invite_thumbnail(&self, mut content: MessageContent) -> MessageContent {
        if let MessageContent::GroupInvite {
            group,
            jpeg_thumbnail: thumbnail @ None,
            ..
        } = &mut content
        {
            let fetch = async {
                let picture = self.chats.profile_picture_url(group, true).await.ok()??;
                self.media
                    .fetch(&picture.url, MAX_INVITE_THUMBNAIL)
                    .await
                    .map_err(|e| tracing::debug!("no invite thumbnail for {group}: {e}"))
                    .ok()
            };
            *thumbnail = tokio::time::timeout(INVITE_THUMBNAIL_TIMEOUT, fetch)
                .await
                .ok()
                .flatten();
        }
        content
    }

    /// A text (or an edit's new text) without a preview gets one for its first
    /// `https://` URL when [`WaConfig::link_previews`] is set and the page gives one in
    /// time.
    async fn with_link_preview(&self, mut content: MessageContent) -> MessageContent {
        let Some(timeout) = self.link_previews else {
            return content;
        };
        // A text, or the new text of an edit, as Baileys previews both.
        let slot = match &mut content {
            MessageContent::Text { text, link_preview } => Some((text, link_preview)),
            MessageContent::Edit { new_content, .. } => match new_content.as_mut() {
                MessageContent::Text { text, link_preview } => Some((text, link_preview)),
                _ => None,
            },
            _ => None,
        };
        if let Some((text, preview @ None)) = slot
            && let Some(url) = wa_media::extract_url(text)
        {
            let info = if self.link_preview_images {
                self.media.url_info_with_image(url, timeout).await
            } else {
                self.media.url_info(url, timeout).await
            };
            match info {
                Ok(info) => *preview = info.map(LinkPreview::from),
                Err(e) => tracing::debug!("no link preview for {url}: {e}"),
            }
        }
        content
    }

    /// Sends `content` to a user or a group; returns the message's key once the server
    /// accepted it. To a channel (newsletter) JID it is posted through
    /// [`Newsletters::send`](wa_newsletter::Newsletters::send) instead, unencrypted, as
    /// channels are (admins only).
    ///
    /// # Errors
    /// The messaging layer's errors; the channel layer's for a channel.
    pub async fn send_message(
        &self,
        to: &Jid,
        content: MessageContent,
    ) -> Result<MessageKey, Error> {
        let content = self.prepared(content).await;
        if to.is_newsletter() {
            let built = MessageBuilder::new(to.clone(), content).build(&mut rand_core::OsRng)?;
            return self.relay(to, built).await;
        }
        Ok(self.messages.send_message(to, content).await?)
    }

    /// Posts `content` as a status update (story) seen by `recipients` (user JIDs) and our
    /// own other devices; returns the message's key (`status@broadcast`) once the server
    /// accepted it. See [`Messenger::send_status`].
    ///
    /// # Errors
    /// The messaging layer's errors (an empty list, one beyond
    /// [`wa_messages::MAX_STATUS_RECIPIENTS`] or naming a non-user is refused).
    pub async fn send_status(
        &self,
        content: MessageContent,
        recipients: &[Jid],
    ) -> Result<MessageKey, Error> {
        Ok(self.messages.send_status(content, recipients).await?)
    }

    /// Posts an already built message (e.g. prepared media) as a status update seen by
    /// `recipients`, with a fresh id. See [`Messenger::relay_status`].
    ///
    /// # Errors
    /// The messaging layer's errors.
    pub async fn relay_status(
        &self,
        message: Message,
        recipients: &[Jid],
    ) -> Result<MessageKey, Error> {
        let me = self.me().await.ok_or(wa_messages::Error::NotLoggedIn)?;
        let id = wa_messages::generate_message_id(unix_now(), Some(&me), &mut rand_core::OsRng);
        Ok(self.messages.relay_status(message, &id, recipients).await?)
    }

    /// Posts `content` as a status update to the audience the account's status privacy
    /// names (every saved contact, contacts but a denylist, or exactly an allowlist; see
    /// [`Chats::send_status_to_audience`]) and our own other devices; returns the
    /// message's key once the server accepted it. Contacts are those app-state sync
    /// stored, so sync first ([`AppState::resync`]).
    ///
    /// # Errors
    /// The chats layer's errors (privacy query, store, an audience beyond
    /// [`wa_messages::MAX_STATUS_RECIPIENTS`]) and the messaging layer's (an empty
    /// audience is refused).
    pub async fn send_status_to_audience(
        &self,
        content: MessageContent,
    ) -> Result<MessageKey, Error> {
        Ok(self
            .chats
            .send_status_to_audience(&self.messages, content)
            .await?)
    }

    /// Posts an already built message (e.g. prepared media) as a status update to the
    /// audience the account's status privacy names ([`Chats::status_audience`]), with a
    /// fresh id.
    ///
    /// # Errors
    /// As [`WaSocket::send_status_to_audience`].
    pub async fn relay_status_to_audience(&self, message: Message) -> Result<MessageKey, Error> {
        let audience = self.chats.status_audience().await?;
        self.relay_status(message, &audience).await
    }

    /// Replies to `message` in its chat with `content`, quoting it.
    ///
    /// # Errors
    /// The messaging layer's errors.
    pub async fn reply(
        &self,
        message: &WaMessage,
        content: MessageContent,
    ) -> Result<MessageKey, Error> {
        let me = self.me().await.ok_or(wa_messages::Error::NotLoggedIn)?;
        let chat = message.key.remote_jid.clone();
        let quote = Quote::new(message.key.clone(), (*message.message).clone(), &me);
        let content = self.prepared(content).await;
        let built = MessageBuilder::new(chat.clone(), content)
            .quote(quote)
            .build(&mut rand_core::OsRng)?;
        self.relay(&chat, built).await
    }

    /// Uploads `bytes` as `kind` (an image gets a generated thumbnail) and sends the media
    /// message to `to`; to a channel, the bytes go up unencrypted and are posted as
    /// [`Newsletters::send_media`](wa_newsletter::Newsletters::send_media) does.
    ///
    /// # Errors
    /// The media and messaging layers' errors.
    pub async fn send_media(
        &self,
        to: &Jid,
        kind: MediaKind,
        bytes: &[u8],
        options: &MediaOptions,
    ) -> Result<MessageKey, Error> {
        if to.is_newsletter() {
            let posted = self
                .newsletters
                .send_media(to, &self.media, kind, bytes, options)
                .await?;
            return Ok(MessageKey::new(to.clone(), true, posted.id));
        }
        let message = self.media.prepare_bytes(kind, bytes, options, None).await?;
        self.relay(to, message).await
    }

    /// Uploads `bytes` as `kind` and sends the media message to `message`'s chat, quoting
    /// it (Baileys' `sendMessage(jid, { image, ... }, { quoted })`). For mentions or other
    /// options, build with [`MessageBuilder`](wa_messages::MessageBuilder) over
    /// [`MessageContent::Prepared`] and a message from
    /// [`Media::prepare_bytes`](wa_media::Media::prepare_bytes), then
    /// [`WaSocket::relay`].
    ///
    /// # Errors
    /// The media and messaging layers' errors.
    pub async fn reply_media(
        &self,
        message: &WaMessage,
        kind: MediaKind,
        bytes: &[u8],
        options: &MediaOptions,
    ) -> Result<MessageKey, Error> {
        let media = self.media.prepare_bytes(kind, bytes, options, None).await?;
        self.reply(message, MessageContent::Prepared(Box::new(media)))
            .await
    }

    /// Sends an already built message with a fresh id (to a channel: posted as
    /// [`WaSocket::send_message`] does).
    ///
    /// # Errors
    /// The messaging layer's errors.
    pub async fn relay(&self, to: &Jid, message: Message) -> Result<MessageKey, Error> {
        if to.is_newsletter() {
            let posted = self.newsletters.send(to, &message).await?;
            return Ok(MessageKey::new(to.clone(), true, posted.id));
        }
        let me = self.me().await.ok_or(wa_messages::Error::NotLoggedIn)?;
        let id = wa_messages::generate_message_id(unix_now(), Some(&me), &mut rand_core::OsRng);
        Ok(self.messages.relay_message(to, message, &id).await?)
    }

    /// Downloads, verifies and decrypts the media of a received message into `writer`.
    ///
    /// # Errors
    /// The media layer's errors ([`Error::is_tampered_media`] for an altered blob).
    pub async fn download_media(
        &self,
        message: &WaMessage,
        writer: impl AsyncWrite + Unpin,
    ) -> Result<u64, Error> {
        Ok(self
            .media
            .download_message(&message.message, writer, None)
            .await?)
    }

    /// Asks the account's phone to upload the media of `message` again (after
    /// [`WaSocket::download_media`] failed because the server no longer has it, a
    /// `wa_media::Error::Gone`), as Baileys' `updateMediaMessage` does; on success the
    /// message points at the new upload and can be downloaded again.
    ///
    /// # Errors
    /// The media layer's errors (no media in the message, no answer in time, the phone
    /// could not upload it).
    pub async fn update_media_message(&self, message: &mut WaMessage) -> Result<(), Error> {
        let target = wa_media::RetryTarget {
            id: message.key.id.clone(),
            chat: message.key.remote_jid.clone(),
            from_me: message.key.from_me,
            participant: message.key.participant.clone(),
        };
        Ok(self
            .media
            .update_media_message(&target, std::sync::Arc::make_mut(&mut message.message))
            .await?)
    }

    /// Marks received messages read. As in Baileys, the senders see it (blue ticks) only
    /// when the account's read-receipts privacy setting is `all`; otherwise the receipts
    /// are `read-self`, which only our own devices get (see
    /// [`Chats::read_receipt_type`](wa_chats::Chats::read_receipt_type)).
    ///
    /// # Errors
    /// The messaging layer's errors; those of fetching the privacy settings when the
    /// setting is not known yet (then no receipt is sent).
    pub async fn read_messages(&self, keys: &[MessageKey]) -> Result<(), Error> {
        let kind = self.chats.read_receipt_type().await?;
        Ok(self.messages.send_receipts(keys, kind).await?)
    }

    /// Asks the phone for up to `count` messages of `oldest`'s chat older than `oldest`
    /// (whose server timestamp is `oldest_timestamp`, unix seconds), as Baileys'
    /// `fetchMessageHistory`; they arrive as an `ON_DEMAND`
    /// [`Event::HistorySync`](crate::Event::HistorySync). Returns the request's id.
    ///
    /// # Errors
    /// The messaging layer's errors.
    pub async fn fetch_message_history(
        &self,
        count: u32,
        oldest: &MessageKey,
        oldest_timestamp: u64,
    ) -> Result<String, Error> {
        Ok(self
            .messages
            .fetch_message_history(count, oldest, oldest_timestamp)
            .await?)
    }

    /// Closes the connection for good; the credentials stay.
    ///
    /// An orderly stop: it returns once the connection has ended and the messages and
    /// receipts it had already delivered are processed and reported on the event stream
    /// (including messages of the offline backlog that were being held), waiting at most
    /// [`CLOSE_GRACE`] for that. Those events are on the stream [`WaSocket::events`]
    /// reads before `close` returns, so a message the server handed over is never
    /// committed and left unreported.
    pub async fn close(&self) {
        self.socket.close().await;
        let settled = tokio::time::timeout(CLOSE_GRACE, async {
            self.socket.closed().await;
            self.messages.settle().await;
        })
        .await;
        if settled.is_err() {
            tracing::warn!("closing: processing of received messages did not finish in time");
        }
    }

    /// Unlinks this device and clears its credentials.
    ///
    /// # Errors
    /// The server's error to the removal (the socket closes anyway).
    pub async fn logout(&self) -> Result<(), Error> {
        Ok(self.socket.logout().await?)
    }
}

/// Longest [`WaSocket::close`] waits for received messages to be processed and reported.
pub const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long sending a group invite waits for its thumbnail (the group's picture preview)
/// before the invite goes without one.
pub const INVITE_THUMBNAIL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Largest group picture preview taken as an invite's thumbnail.
const MAX_INVITE_THUMBNAIL: usize = 1 << 20;

/// A subscription to a [`WaSocket`]'s events.
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<Event>,
    lagged: u64,
}

impl Events {
    /// The next event; `None` once the socket is gone.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => self.lagged += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is waiting, without waiting; `None` when none is (or the
    /// socket is gone).
    pub fn try_next(&mut self) -> Option<Event> {
        loop {
            match self.rx.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.lagged += n,
                Err(_) => return None,
            }
        }
    }

    /// How many events were skipped because this reader fell behind.
    pub fn lagged(&self) -> u64 {
        self.lagged
    }
}

/// The text of a message: a plain conversation, an extended text (with a link preview or a
/// quote), or the caption of a media message.
pub fn message_text(message: &Message) -> Option<&str> {
    if let Some(t) = message.conversation.as_deref() {
        return Some(t);
    }
    if let Some(t) = message
        .extended_text_message
        .as_ref()
        .and_then(|e| e.text.as_deref())
    {
        return Some(t);
    }
    message
        .image_message
        .as_ref()
        .and_then(|m| m.caption.as_deref())
        .or_else(|| {
            message
                .video_message
                .as_ref()
                .and_then(|m| m.caption.as_deref())
        })
        .or_else(|| {
            message
                .document_message
                .as_ref()
                .and_then(|m| m.caption.as_deref())
        })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
