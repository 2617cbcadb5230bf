//! The [`Newsletters`] handle: channel requests over a socket, and channel notifications
//! as events.

use std::sync::Arc;

use rand::RngCore;
use serde_json::{Value, json};
use tokio::task::AbortHandle;
use wa_binary::{Jid, Node};
use wa_socket::{Event, Filter, Socket};
use wa_types::{NewsletterMessage, NewsletterUpdate};

use crate::Error;
use crate::parse::{
    MAX_DESCRIPTION, MAX_NAME, MexOperation, NewsletterMetadata, build_mex_query, build_post,
    build_reaction, build_view_receipt, ops, parse_count, parse_messages_reply, parse_metadata,
    parse_mex_result, parse_notification, parse_post,
};

/// Notifications queued for a listener before the socket's reader waits.
const NOTIFICATION_QUEUE: usize = 64;
/// Most messages one fetch asks for.
pub const MAX_FETCH: u32 = 100;
/// Most channels taken from a subscribed-channels answer.
const MAX_SUBSCRIBED: usize = 10_000;

/// How to look a channel up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKey<'a> {
    /// By its JID (`id@newsletter`).
    Jid(&'a Jid),
    /// By invite code, or a full `https://whatsapp.com/channel/<code>` link.
    Invite(&'a str),
}

/// What a post returned: our message id, and the server id the channel gave it when it
/// could be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The message id we chose.
    pub id: String,
    /// The channel's number for the message (reactions name it).
    pub server_id: Option<u64>,
}

/// Channel (newsletter) operations over a [`Socket`]. Cheap to clone; the notification
/// task stops when the last clone is dropped.
#[derive(Clone)]
pub struct Newsletters {
    inner: Arc<Inner>,
}

struct Inner {
    socket: Socket,
    listeners: [AbortHandle; 3],
}

impl Drop for Inner {
    fn drop(&mut self) {
        for l in &self.listeners {
            l.abort();
        }
    }
}

impl std::fmt::Debug for Newsletters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Newsletters").finish_non_exhaustive()
    }
}

/// A message-id-like key for posts and reactions.
fn message_id() -> String {
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("3EB0{:016X}", u64::from_be_bytes(b))
}

/// Acknowledges each stanza `filter` takes and reports what `parse` reads from it as
/// [`Event::NewsletterUpdate`]s.
fn listen(
    socket: &Socket,
    filter: Filter,
    what: &'static str,
    parse: fn(&Node) -> Result<Vec<NewsletterUpdate>, Error>,
) -> AbortHandle {
    let mut rx = socket.subscribe(filter, NOTIFICATION_QUEUE);
    let task_socket = socket.clone();
    tokio::spawn(async move {
        while let Some(node) = rx.recv().await {
            // Boxed, so the idle listener task stays small.
            let ack = if node.tag() == "message" {
                wa_socket::message_ack(&node, task_socket.me().await.as_ref(), None)
            } else {
                wa_socket::ack_for(&node)
            };
            if let Err(e) = Box::pin(task_socket.send_node(&ack)).await {
                tracing::debug!("{what} ack not sent: {e}");
            }
            match parse(&node) {
                Ok(updates) => {
                    for u in updates {
                        task_socket.emit(Event::NewsletterUpdate(Box::new(u)));
                    }
                }
                Err(e) => tracing::warn!("unparsable {what}: {e}"),
            }
        }
    })
    .abort_handle()
}

fn check_channel(jid: &Jid) -> Result<(), Error> {
    if jid.is_newsletter() {
        Ok(())
    } else {
        Err(Error::InvalidRequest("not a channel JID"))
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.trim().is_empty() {
        Err(Error::InvalidRequest("empty name"))
    } else if name.len() > MAX_NAME {
        Err(Error::InvalidRequest("name too long"))
    } else {
        Ok(())
    }
}

fn check_description(d: &str) -> Result<(), Error> {
    if d.len() > MAX_DESCRIPTION {
        Err(Error::InvalidRequest("description too long"))
    } else {
        Ok(())
    }
}

impl Newsletters {
    /// Wraps `socket` and subscribes to `<notification type="newsletter">`,
    /// `<notification type="mex">` and `<message from="..@newsletter">` (posts for
    /// devices subscribed to live updates): each is acknowledged, then reported as
    /// [`Event::NewsletterUpdate`]s. Must be called inside a Tokio runtime.
    pub fn new(socket: Socket) -> Self {
        let notification = |kind| Filter::tag("notification").kind(kind);
        let listeners = [
            listen(
                &socket,
                notification("newsletter"),
                "newsletter notification",
                parse_notification,
            ),
            listen(
                &socket,
                notification("mex"),
                "mex notification",
                parse_notification,
            ),
            // Posts handed to devices subscribed to a channel's live updates, as
            // `<message from="..@newsletter" server_id id t type><plaintext>`.
            listen(
                &socket,
                Filter::tag("message").from_server(wa_binary::Server::Newsletter),
                "channel message",
                |n| parse_post(n).map(|u| vec![u]),
            ),
        ];
        Self {
            inner: Arc::new(Inner { socket, listeners }),
        }
    }

    async fn mex(&self, op: MexOperation, variables: Value) -> Result<Value, Error> {
        let node = build_mex_query(&self.inner.socket.generate_id(), op, variables);
        let reply = self.inner.socket.query(node).await?;
        parse_mex_result(&reply, op)
    }

    /// Creates a channel we own.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty or overlong name or description; server,
    /// GraphQL and socket errors; [`Error::Malformed`].
    pub async fn create(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<NewsletterMetadata, Error> {
        check_name(name)?;
        if let Some(d) = description {
            check_description(d)?;
        }
        let v = self
            .mex(
                ops::CREATE,
                json!({ "input": { "name": name, "description": description } }),
            )
            .await?;
        parse_metadata(&v)
    }

    /// A channel's metadata, by JID (with our mute state and role) or by invite code.
    ///
    /// # Errors
    /// GraphQL errors (e.g. 404 no such channel), server and socket errors,
    /// [`Error::Malformed`].
    pub async fn metadata(&self, key: MetadataKey<'_>) -> Result<NewsletterMetadata, Error> {
        let (key, kind) = match key {
            MetadataKey::Jid(j) => {
                check_channel(j)?;
                (j.to_string(), "JID")
            }
            MetadataKey::Invite(code) => {
                let code = code
                    .trim()
                    .trim_start_matches("https://")
                    .trim_start_matches("whatsapp.com/channel/");
                if code.is_empty() || code.contains('/') {
                    return Err(Error::InvalidRequest("bad invite code"));
                }
                (code.to_owned(), "INVITE")
            }
        };
        let v = self
            .mex(
                ops::METADATA,
                json!({
                    "fetch_creation_time": true,
                    "fetch_full_image": true,
                    "fetch_viewer_metadata": true,
                    "input": { "key": key, "type": kind },
                }),
            )
            .await?;
        parse_metadata(&v)
    }

    /// Every channel this account follows or administers.
    ///
    /// # Errors
    /// GraphQL, server and socket errors; [`Error::Malformed`].
    pub async fn subscribed(&self) -> Result<Vec<NewsletterMetadata>, Error> {
        let v = self.mex(ops::SUBSCRIBED, json!({})).await?;
        let list = v
            .as_array()
            .ok_or_else(|| Error::Malformed("subscribed answer is not a list"))?;
        list.iter()
            .take(MAX_SUBSCRIBED)
            .map(parse_metadata)
            .collect()
    }

    async fn by_id(&self, op: MexOperation, jid: &Jid) -> Result<Value, Error> {
        check_channel(jid)?;
        self.mex(op, json!({ "newsletter_id": jid.to_string() }))
            .await
    }

    /// Follows (joins) a channel.
    ///
    /// # Errors
    /// GraphQL (e.g. 404), server and socket errors.
    pub async fn follow(&self, jid: &Jid) -> Result<(), Error> {
        self.by_id(ops::FOLLOW, jid).await.map(drop)
    }

    /// Unfollows (leaves) a channel.
    ///
    /// # Errors
    /// As [`Newsletters::follow`].
    pub async fn unfollow(&self, jid: &Jid) -> Result<(), Error> {
        self.by_id(ops::UNFOLLOW, jid).await.map(drop)
    }

    /// Mutes a channel's notifications for this account.
    ///
    /// # Errors
    /// As [`Newsletters::follow`].
    pub async fn mute(&self, jid: &Jid) -> Result<(), Error> {
        self.by_id(ops::MUTE, jid).await.map(drop)
    }

    /// Unmutes a channel.
    ///
    /// # Errors
    /// As [`Newsletters::follow`].
    pub async fn unmute(&self, jid: &Jid) -> Result<(), Error> {
        self.by_id(ops::UNMUTE, jid).await.map(drop)
    }

    /// Deletes a channel (owner only).
    ///
    /// # Errors
    /// GraphQL (e.g. 403 not the owner), server and socket errors.
    pub async fn delete(&self, jid: &Jid) -> Result<(), Error> {
        self.by_id(ops::DELETE, jid).await.map(drop)
    }

    /// Hands the channel to `new_owner`, who must be one of its admins (owner only). The
    /// previous owner stays on as an admin.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a JID that is not a channel's or not a user's;
    /// GraphQL (403 not the owner, 400 not an admin), server and socket errors.
    pub async fn change_owner(&self, jid: &Jid, new_owner: &Jid) -> Result<(), Error> {
        self.on_user(ops::CHANGE_OWNER, jid, new_owner).await
    }

    /// Takes the admin role away from `user` (owner only); they stay a follower.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a JID that is not a channel's or not a user's;
    /// GraphQL (403 not the owner, 400 not an admin), server and socket errors.
    pub async fn demote(&self, jid: &Jid, user: &Jid) -> Result<(), Error> {
        self.on_user(ops::DEMOTE, jid, user).await
    }

    async fn on_user(&self, op: MexOperation, jid: &Jid, user: &Jid) -> Result<(), Error> {
        check_channel(jid)?;
        if !(user.is_pn_user() || user.is_lid()) {
            return Err(Error::InvalidRequest("not a user JID"));
        }
        self.mex(
            op,
            json!({ "newsletter_id": jid.to_string(), "user_id": user.to_non_ad().to_string() }),
        )
        .await
        .map(drop)
    }

    /// How many follow the channel.
    ///
    /// # Errors
    /// GraphQL, server and socket errors; [`Error::Malformed`].
    pub async fn subscriber_count(&self, jid: &Jid) -> Result<u64, Error> {
        let v = self.by_id(ops::SUBSCRIBERS, jid).await?;
        parse_count(&v, "subscribers")
    }

    /// How many admins the channel has (including the owner).
    ///
    /// # Errors
    /// GraphQL, server and socket errors; [`Error::Malformed`].
    pub async fn admin_count(&self, jid: &Jid) -> Result<u64, Error> {
        let v = self.by_id(ops::ADMIN_COUNT, jid).await?;
        parse_count(&v, "admin_count")
    }

    async fn update(&self, jid: &Jid, updates: Value) -> Result<NewsletterMetadata, Error> {
        check_channel(jid)?;
        let v = self
            .mex(
                ops::UPDATE,
                json!({ "newsletter_id": jid.to_string(), "updates": updates }),
            )
            .await?;
        parse_metadata(&v)
    }

    /// Renames the channel (admins only); returns the updated metadata.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`]; GraphQL (403 not an admin), server and socket errors.
    pub async fn update_name(&self, jid: &Jid, name: &str) -> Result<NewsletterMetadata, Error> {
        check_name(name)?;
        self.update(jid, json!({ "name": name, "settings": null }))
            .await
    }

    /// Changes the description (admins only).
    ///
    /// # Errors
    /// As [`Newsletters::update_name`].
    pub async fn update_description(
        &self,
        jid: &Jid,
        description: &str,
    ) -> Result<NewsletterMetadata, Error> {
        check_description(description)?;
        self.update(jid, json!({ "description": description, "settings": null }))
            .await
    }

    /// Sets the picture from JPEG bytes (already sized as the client wants it, e.g. by
    /// [`wa_media::profile_picture`]; an empty slice removes the picture).
    ///
    /// # Errors
    /// As [`Newsletters::update_name`].
    pub async fn update_picture(
        &self,
        jid: &Jid,
        jpeg: &[u8],
    ) -> Result<NewsletterMetadata, Error> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(jpeg);
        self.update(jid, json!({ "picture": b64, "settings": null }))
            .await
    }

    /// Removes the picture.
    ///
    /// # Errors
    /// As [`Newsletters::update_name`].
    pub async fn remove_picture(&self, jid: &Jid) -> Result<NewsletterMetadata, Error> {
        self.update_picture(jid, &[]).await
    }

    /// The newest `count` messages (at most [`MAX_FETCH`]), or those before server id
    /// `before`, oldest first.
    ///
    /// # Errors
    /// Server and socket errors; [`Error::Malformed`].
    pub async fn messages(
        &self,
        jid: &Jid,
        count: u32,
        before: Option<u64>,
    ) -> Result<Vec<NewsletterMessage>, Error> {
        check_channel(jid)?;
        let node = Node::builder("iq")
            .attr("type", "get")
            .attr("xmlns", "newsletter")
            .attr("to", Jid::server_jid())
            .children([Node::builder("messages")
                .attr("type", "jid")
                .attr("jid", jid.clone())
                .attr("count", count.clamp(1, MAX_FETCH).to_string())
                .attr_opt("before", before.map(|b| b.to_string()))
                .build()])
            .build();
        let reply = self.inner.socket.query(node).await?;
        parse_messages_reply(&reply)
    }

    /// Reaction and view counts of messages (without their content): up to `count`
    /// messages, optionally only those changed since unix time `since` or with a server
    /// id after `after`.
    ///
    /// # Errors
    /// As [`Newsletters::messages`].
    pub async fn message_updates(
        &self,
        jid: &Jid,
        count: u32,
        since: Option<u64>,
        after: Option<u64>,
    ) -> Result<Vec<NewsletterMessage>, Error> {
        check_channel(jid)?;
        let node = Node::builder("iq")
            .attr("type", "get")
            .attr("xmlns", "newsletter")
            .attr("to", jid.clone())
            .children([Node::builder("message_updates")
                .attr("count", count.clamp(1, MAX_FETCH).to_string())
                .attr_opt("since", since.map(|s| s.to_string()))
                .attr_opt("after", after.map(|a| a.to_string()))
                .build()])
            .build();
        let reply = self.inner.socket.query(node).await?;
        parse_messages_reply(&reply)
    }

    /// Asks for live reaction and view counts of the channel; returns how many seconds
    /// the subscription lasts, when the server says.
    ///
    /// # Errors
    /// Server and socket errors.
    pub async fn subscribe_live_updates(&self, jid: &Jid) -> Result<Option<u64>, Error> {
        check_channel(jid)?;
        let node = Node::builder("iq")
            .attr("type", "set")
            .attr("xmlns", "newsletter")
            .attr("to", jid.clone())
            .children([Node::builder("live_updates").build()])
            .build();
        let reply = self.inner.socket.query(node).await?;
        Ok(reply
            .child("live_updates")
            .and_then(|l| l.attr_opt::<u64>("duration").ok().flatten()))
    }

    /// Reacts to the message with `server_id` (`None` removes our reaction).
    ///
    /// # Errors
    /// Socket errors (the server's ack is not awaited).
    pub async fn react(&self, jid: &Jid, server_id: u64, code: Option<&str>) -> Result<(), Error> {
        check_channel(jid)?;
        if code.is_some_and(|c| c.is_empty() || c.len() > 32) {
            return Err(Error::InvalidRequest("bad reaction code"));
        }
        let node = build_reaction(jid, &message_id(), server_id, code);
        Ok(self.inner.socket.send_node(&node).await?)
    }

    /// Marks messages as viewed (their view counts go up).
    ///
    /// # Errors
    /// Socket errors.
    pub async fn mark_viewed(&self, jid: &Jid, server_ids: &[u64]) -> Result<(), Error> {
        check_channel(jid)?;
        if server_ids.is_empty() || server_ids.len() > MAX_FETCH as usize {
            return Err(Error::InvalidRequest("1 to 100 server ids"));
        }
        let node = build_view_receipt(jid, &message_id(), server_ids);
        Ok(self.inner.socket.send_node(&node).await?)
    }

    /// Posts `message` to a channel we administer. Channel posts are not end-to-end
    /// encrypted. The server id is read back from the channel's newest messages.
    ///
    /// # Errors
    /// Socket errors; server errors of the read-back.
    pub async fn send(&self, jid: &Jid, message: &wa_proto::e2e::Message) -> Result<Posted, Error> {
        check_channel(jid)?;
        let id = message_id();
        self.inner
            .socket
            .send_node(&build_post(jid, &id, message))
            .await?;
        // The server handles a connection's stanzas in order, so the post is stored
        // before this fetch is answered.
        let recent = self.messages(jid, 20, None).await?;
        let server_id = recent
            .iter()
            .find(|m| m.id.as_deref() == Some(id.as_str()))
            .map(|m| m.server_id);
        Ok(Posted { id, server_id })
    }

    /// Posts a text message.
    ///
    /// # Errors
    /// As [`Newsletters::send`].
    pub async fn send_text(&self, jid: &Jid, text: &str) -> Result<Posted, Error> {
        let message = wa_proto::e2e::Message {
            conversation: Some(text.to_owned()),
            ..Default::default()
        };
        self.send(jid, &message).await
    }

    /// Posts media to a channel (admins only): channels are not end-to-end encrypted, so
    /// the bytes go up unencrypted through `media` and the post names their location and
    /// SHA-256 (as Baileys posts channel media). Followers fetch them with
    /// [`Media::download_raw`](wa_media::Media::download_raw) over
    /// [`channel_media`](wa_media::channel_media) of the post.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a non-channel JID; [`Error::Media`] when the upload
    /// fails; as [`Newsletters::send`].
    pub async fn send_media(
        &self,
        jid: &Jid,
        media: &wa_media::Media,
        kind: wa_media::MediaKind,
        content: impl tokio::io::AsyncRead + Unpin,
        options: &wa_media::MediaOptions,
    ) -> Result<Posted, Error> {
        check_channel(jid)?;
        let up = media.upload_raw(content, kind.media_type(), None).await?;
        let message = wa_media::channel_media_message(kind, &up, options);
        self.send(jid, &message).await
    }
}
