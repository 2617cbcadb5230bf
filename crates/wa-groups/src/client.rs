//! The [`Groups`] handle: `w:g2` requests over a socket, a metadata cache kept current by
//! `w:gp2` notifications, and those notifications as events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use tokio::task::AbortHandle;
use wa_binary::{Jid, Node};
use wa_socket::{Event, Filter, LazyCache, Socket};
use wa_types::GroupMetadata;

use crate::Error;
use crate::parse::{
    InviteJoin, ParticipantResult, apply_update, parse_group, parse_group_reply,
    parse_invite_join_reply, parse_join_requests_reply, parse_linked_participants_reply,
    parse_notification, parse_participants_reply, parse_requests_action_reply,
    parse_sub_groups_reply,
};
use wa_proto::e2e::GroupInviteMessage;
use wa_types::{
    GroupChange, GroupUpdate, JoinRequest, LinkedGroup, MessageChange, MessageChangeKind,
    MessageKey,
};

/// Cache settings of a [`Groups`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupsConfig {
    /// Most groups whose metadata is cached.
    pub cache_capacity: u64,
    /// How long cached metadata is trusted without a notification.
    pub cache_ttl: Duration,
    /// Asked for a group's metadata when the cache has none, before the server (see
    /// [`MetadataSource`]); `None` asks the server.
    pub metadata_source: Option<MetadataSource>,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        Self {
            cache_capacity: 1_000,
            cache_ttl: Duration::from_secs(60 * 60),
            metadata_source: None,
        }
    }
}

/// The application's own copy of group metadata (Baileys' `cachedGroupMetadata`), e.g.
/// kept in its database across restarts so that the first send to each group after a
/// start does not query the server (WhatsApp limits how often metadata may be asked
/// for). Asked on a cache miss; what it returns is cached like a server answer, and
/// `None` falls back to the server.
///
/// The application keeps it current from [`Event::GroupUpdate`] events. Until the
/// server has been asked again, a group whose cached copy was dropped (a notification
/// that could not be applied to it, [`Groups::invalidate`], a change this device made,
/// the sender finding the member list out of date) is not looked up here, so a stale
/// copy is never taken for one the library knows to be out of date.
#[derive(Clone)]
pub struct MetadataSource(Arc<MetadataFn>);

type MetadataFn = dyn Fn(Jid) -> wa_socket::BoxFuture<Option<GroupMetadata>> + Send + Sync;

impl MetadataSource {
    /// Wraps `f`, which is given the group's JID.
    pub fn new(
        f: impl Fn(Jid) -> wa_socket::BoxFuture<Option<GroupMetadata>> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for MetadataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetadataSource(..)")
    }
}

/// Two sources are equal when they are the same function (clones of one source).
impl PartialEq for MetadataSource {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for MetadataSource {}

/// A change to a group's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantAction {
    /// Add members.
    Add,
    /// Remove members.
    Remove,
    /// Make members admins.
    Promote,
    /// Make admins members.
    Demote,
}

impl ParticipantAction {
    fn tag(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Promote => "promote",
            Self::Demote => "demote",
        }
    }
}

/// A group setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSetting {
    /// Only admins may send messages.
    Announcement,
    /// Everyone may send messages.
    NotAnnouncement,
    /// Only admins may edit the group info.
    Locked,
    /// Everyone may edit the group info.
    Unlocked,
}

impl GroupSetting {
    fn tag(self) -> &'static str {
        match self {
            Self::Announcement => "announcement",
            Self::NotAnnouncement => "not_announcement",
            Self::Locked => "locked",
            Self::Unlocked => "unlocked",
        }
    }
}

/// Settings a group is created with ([`Groups::create_with`]; whatsmeow's
/// `ReqCreateGroup`). Options left at their default are left out of the request, so the
/// server's defaults apply.
///
/// ```
/// use wa_groups::CreateGroupOptions;
///
/// let options = CreateGroupOptions::new()
///     .locked(true)
///     .announce(true)
///     .ephemeral(7 * 24 * 60 * 60)
///     .join_approval(true)
///     .member_add_all(false);
/// assert_eq!(options.ephemeral, Some(604_800));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateGroupOptions {
    /// Only admins may edit the group info (`<locked/>`).
    pub locked: bool,
    /// Only admins may send messages (`<announcement/>`).
    pub announce: bool,
    /// Disappearing messages after this many seconds (`<ephemeral expiration
    /// trigger="1"/>`); `None` or 0 leaves them off.
    pub ephemeral: Option<u32>,
    /// Joining by invite link needs an admin's approval
    /// (`<membership_approval_mode><group_join state="on"/>`).
    pub join_approval: bool,
    /// Who may add members (`<member_add_mode>`): every member (`Some(true)`,
    /// `all_member_add`), only admins (`Some(false)`, `admin_add`), or the server's
    /// default (`None`).
    pub member_add_all: Option<bool>,
}

impl CreateGroupOptions {
    /// The defaults: nothing set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`CreateGroupOptions::locked`].
    #[must_use]
    pub fn locked(mut self, locked: bool) -> Self {
        self.locked = locked;
        self
    }

    /// Sets [`CreateGroupOptions::announce`].
    #[must_use]
    pub fn announce(mut self, announce: bool) -> Self {
        self.announce = announce;
        self
    }

    /// Sets [`CreateGroupOptions::ephemeral`] (0 turns it off).
    #[must_use]
    pub fn ephemeral(mut self, seconds: u32) -> Self {
        self.ephemeral = (seconds > 0).then_some(seconds);
        self
    }

    /// Sets [`CreateGroupOptions::join_approval`].
    #[must_use]
    pub fn join_approval(mut self, on: bool) -> Self {
        self.join_approval = on;
        self
    }

    /// Sets [`CreateGroupOptions::member_add_all`].
    #[must_use]
    pub fn member_add_all(mut self, all_members: bool) -> Self {
        self.member_add_all = Some(all_members);
        self
    }
}

/// The `<create>` element: `subject` and `key` attributes, then, in whatsmeow's order,
/// the participants, `<member_add_mode>`, `<linked_parent>`, `<locked/>`,
/// `<announcement/>`, `<ephemeral>` and `<membership_approval_mode>` (each only when
/// asked for).
fn create_node(
    subject: &str,
    key: String,
    members: Vec<Node>,
    parent: Option<&Jid>,
    options: &CreateGroupOptions,
) -> Node {
    let mut children = members;
    if let Some(all) = options.member_add_all {
        let mode: &[u8] = if all { b"all_member_add" } else { b"admin_add" };
        children.push(
            Node::builder("member_add_mode")
                .bytes(mode.to_vec())
                .build(),
        );
    }
    if let Some(p) = parent {
        children.push(
            Node::builder("linked_parent")
                .attr("jid", p.clone())
                .build(),
        );
    }
    if options.locked {
        children.push(Node::new("locked"));
    }
    if options.announce {
        children.push(Node::new("announcement"));
    }
    if let Some(seconds) = options.ephemeral.filter(|s| *s > 0) {
        children.push(
            Node::builder("ephemeral")
                .attr("expiration", seconds.to_string())
                .attr("trigger", "1")
                .build(),
        );
    }
    if options.join_approval {
        children.push(
            Node::builder("membership_approval_mode")
                .children([Node::builder("group_join").attr("state", "on").build()])
                .build(),
        );
    }
    Node::builder("create")
        .attr("subject", subject.to_owned())
        .attr("key", key)
        .children(children)
        .build()
}

/// Group management over a [`Socket`]. Cheap to clone; the notification task stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct Groups {
    inner: Arc<Inner>,
}

struct Inner {
    socket: Socket,
    cache: LazyCache<Jid, Arc<GroupMetadata>>,
    source: Option<MetadataSource>,
    /// Groups whose cached copy was dropped as out of date and not fetched from the
    /// server since: the metadata source is not asked for them.
    stale: LazyCache<Jid, ()>,
    listener: AbortHandle,
    dirty_listener: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
        self.dirty_listener.abort();
    }
}

/// Every group we are in (`<participating>` with participants and descriptions), each
/// put in `cache`.
async fn fetch_all(
    socket: &Socket,
    cache: &LazyCache<Jid, Arc<GroupMetadata>>,
) -> Result<HashMap<Jid, Arc<GroupMetadata>>, Error> {
    let node = Node::builder("iq")
        .attr("type", "get")
        .attr("xmlns", "w:g2")
        .attr("to", Jid::group(""))
        .children([Node::builder("participating")
            .children([
                Node::builder("participants").build(),
                Node::builder("description").build(),
            ])
            .build()])
        .build();
    let reply = socket.query(node).await?;
    let mut out = HashMap::new();
    // Communities come as groups with a `<parent>`; a `<communities>` list (as Baileys'
    // community calls read) is taken too.
    let lists = [("groups", "group"), ("communities", "community")];
    for (list, tag) in lists {
        let Some(groups) = reply.child(list) else {
            continue;
        };
        for g in groups.children_by_tag(tag) {
            if out.len() >= crate::MAX_PARTICIPANTS {
                return Err(Error::Malformed("too many groups"));
            }
            let meta = Arc::new(parse_group(g)?);
            cache.insert(meta.id.clone(), meta.clone()).await;
            out.insert(meta.id.clone(), meta);
        }
    }
    let mut all: Vec<_> = out.values().cloned().collect();
    all.sort_by_key(|g| g.id.to_string());
    socket.emit(Event::GroupsRefreshed(all));
    Ok(out)
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups")
            .field("cached", &self.inner.cache.entry_count())
            .finish()
    }
}

/// Notifications queued for the listener before the socket's reader waits.
const NOTIFICATION_QUEUE: usize = 64;
/// Dirty-bit flags queued for the groups listener.
const DIRTY_QUEUE: usize = 4;

/// A message-id-like key for create requests.
fn request_key() -> String {
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("3EB0{:016X}", u64::from_be_bytes(b))
}

impl Groups {
    /// Wraps `socket` and subscribes to `<notification type="w:gp2">`: each one updates
    /// the cache, is acknowledged, then emitted as [`Event::GroupUpdate`]. Must be called
    /// inside a Tokio runtime.
    pub fn new(socket: Socket, config: &GroupsConfig) -> Self {
        let cache: LazyCache<Jid, Arc<GroupMetadata>> =
            LazyCache::new(config.cache_capacity, config.cache_ttl);
        let stale: LazyCache<Jid, ()> = LazyCache::new(config.cache_capacity, config.cache_ttl);
        let mut rx = socket.subscribe(
            Filter::tag("notification").kind("w:gp2"),
            NOTIFICATION_QUEUE,
        );
        let (task_socket, task_cache, task_stale) = (socket.clone(), cache.clone(), stale.clone());
        let listener = tokio::spawn(async move {
            while let Some(node) = rx.recv().await {
                // Boxed per stanza, so the idle listener task stays small.
                Box::pin(async {
                    let update = parse_notification(&node);
                    if let Ok(update) = &update {
                        // A link changes the other group's parent too.
                        for change in &update.changes {
                            if let GroupChange::Linked { group, .. }
                            | GroupChange::Unlinked { group, .. } = change
                            {
                                task_cache.invalidate(&group.jid).await;
                                task_stale.insert(group.jid.clone(), ()).await;
                            }
                        }
                        let cached = task_cache.get(&update.group).await;
                        match cached {
                            Some(meta) => {
                                let mut meta = (*meta).clone();
                                if apply_update(&mut meta, update) {
                                    task_cache
                                        .insert(update.group.clone(), Arc::new(meta))
                                        .await;
                                } else {
                                    task_cache.invalidate(&update.group).await;
                                    task_stale.insert(update.group.clone(), ()).await;
                                }
                            }
                            None => {
                                if let Some(wa_types::GroupChange::Created(meta)) =
                                    update.changes.first()
                                {
                                    task_cache
                                        .insert(update.group.clone(), Arc::new((**meta).clone()))
                                        .await;
                                } else {
                                    // Not applied to any copy of ours: a source copy may
                                    // not have seen it either.
                                    task_stale.insert(update.group.clone(), ()).await;
                                }
                            }
                        }
                    }
                    if let Err(e) = task_socket.send_node(&wa_socket::ack_for(&node)).await {
                        tracing::debug!("group notification ack not sent: {e}");
                    }
                    match update {
                        Ok(update) => task_socket.emit(Event::GroupUpdate(Box::new(update))),
                        Err(e) => tracing::warn!("unparsable group notification: {e}"),
                    }
                })
                .await;
            }
        })
        .abort_handle();
        // `<ib><dirty type="groups">` (handed on by the socket): the server says our
        // groups changed in ways we may have missed. Every group is fetched again
        // (refreshing the cache), then the flag is cleaned, as Baileys does.
        let mut dirty_rx = socket.subscribe(Filter::tag("ib"), DIRTY_QUEUE);
        let (task_socket, task_cache) = (socket.clone(), cache.clone());
        let dirty_listener = tokio::spawn(async move {
            while let Some(node) = dirty_rx.recv().await {
                let Some(dirty) = node
                    .child("dirty")
                    .filter(|d| d.attr_opt::<&str>("type").ok().flatten() == Some("groups"))
                else {
                    continue;
                };
                let timestamp = dirty.attr_opt::<u64>("timestamp").ok().flatten();
                // In a task of its own: the answers come through the socket's reader,
                // which may be waiting to hand this listener the next flag.
                let (socket, cache) = (task_socket.clone(), task_cache.clone());
                tokio::spawn(async move {
                    match fetch_all(&socket, &cache).await {
                        Ok(_) => {
                            if let Err(e) = socket.clean_dirty_bits("groups", timestamp).await {
                                tracing::debug!("groups dirty bits not cleaned: {e}");
                            }
                        }
                        Err(e) => tracing::warn!("groups not refreshed after dirty bits: {e}"),
                    }
                });
            }
        })
        .abort_handle();
        Self {
            inner: Arc::new(Inner {
                socket,
                cache,
                source: config.metadata_source.clone(),
                stale,
                listener,
                dirty_listener,
            }),
        }
    }

    async fn group_query(&self, to: Jid, kind: &str, content: Node) -> Result<Node, Error> {
        let node = Node::builder("iq")
            .attr("type", kind.to_owned())
            .attr("xmlns", "w:g2")
            .attr("to", to)
            .children([content])
            .build();
        Ok(self.inner.socket.query(node).await?)
    }

    /// The group's metadata, from the cache when present, else from the configured
    /// [`MetadataSource`] (unless the group's copy is known to be out of date), else
    /// from the server.
    ///
    /// # Errors
    /// Socket errors, [`Error::Refused`] (e.g. 404 no such group, 403 not a member),
    /// [`Error::Malformed`].
    pub async fn metadata(&self, group: &Jid) -> Result<Arc<GroupMetadata>, Error> {
        if let Some(m) = self.inner.cache.get(group).await {
            return Ok(m);
        }
        if let Some(source) = &self.inner.source
            && self.inner.stale.get(group).await.is_none()
            && let Some(meta) = (source.0)(group.clone()).await
            && meta.id == *group
        {
            let meta = Arc::new(meta);
            self.inner.cache.insert(meta.id.clone(), meta.clone()).await;
            return Ok(meta);
        }
        self.fetch_metadata(group).await
    }

    /// The group's metadata from the server (refreshing the cache).
    ///
    /// # Errors
    /// As [`Groups::metadata`].
    pub async fn fetch_metadata(&self, group: &Jid) -> Result<Arc<GroupMetadata>, Error> {
        let reply = self
            .group_query(
                group.clone(),
                "get",
                Node::builder("query")
                    .attr("request", "interactive")
                    .build(),
            )
            .await?;
        let meta = Arc::new(parse_group_reply(&reply)?);
        self.inner.cache.insert(meta.id.clone(), meta.clone()).await;
        self.inner.stale.invalidate(group).await;
        Ok(meta)
    }

    /// Drops `group` from the metadata cache; the next [`Groups::metadata`] asks the
    /// server (not the [`MetadataSource`]).
    pub async fn invalidate(&self, group: &Jid) {
        self.inner.cache.invalidate(group).await;
        self.inner.stale.insert(group.clone(), ()).await;
    }

    /// Creates a group with `subject` and `participants` (we become its super admin),
    /// with the server's default settings. Each participant's stored privacy token rides
    /// along (see [`wa_socket::privacy_token`]).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty subject; server and socket errors.
    pub async fn create(
        &self,
        subject: &str,
        participants: &[Jid],
    ) -> Result<Arc<GroupMetadata>, Error> {
        self.create_with(subject, participants, &CreateGroupOptions::default())
            .await
    }

    /// [`Groups::create`] with settings in force from the start (whatsmeow's
    /// `ReqCreateGroup`): locked info, announcement-only, disappearing messages, join
    /// approval, who may add members. The returned metadata is the server's answer, so
    /// it shows the settings the server applied.
    ///
    /// # Errors
    /// As [`Groups::create`].
    pub async fn create_with(
        &self,
        subject: &str,
        participants: &[Jid],
        options: &CreateGroupOptions,
    ) -> Result<Arc<GroupMetadata>, Error> {
        self.create_in(subject, participants, None, options).await
    }

    /// `<participant jid>` nodes; with `tokens`, each carries the user's stored privacy
    /// token as `<privacy>` (WhatsApp asks for it when adding users to a group).
    async fn participant_nodes(&self, participants: &[Jid], tokens: bool) -> Vec<Node> {
        let mut out = Vec::with_capacity(participants.len());
        for j in participants {
            let token = if tokens {
                self.inner.socket.privacy_token(j).await
            } else {
                None
            };
            out.push(
                Node::builder("participant")
                    .attr("jid", j.clone())
                    .children(token.map(|t| Node::builder("privacy").bytes(t).build()))
                    .build(),
            );
        }
        out
    }

    /// Creates a group (inside `parent` when given) and caches its metadata.
    async fn create_in(
        &self,
        subject: &str,
        participants: &[Jid],
        parent: Option<&Jid>,
        options: &CreateGroupOptions,
    ) -> Result<Arc<GroupMetadata>, Error> {
        if subject.trim().is_empty() {
            return Err(Error::InvalidRequest("empty subject"));
        }
        let members = self.participant_nodes(participants, true).await;
        let create = create_node(subject, request_key(), members, parent, options);
        let reply = self.group_query(Jid::group(""), "set", create).await?;
        let meta = Arc::new(parse_group_reply(&reply)?);
        self.inner.cache.insert(meta.id.clone(), meta.clone()).await;
        Ok(meta)
    }

    /// Adds, removes, promotes or demotes members; one result per member (403 when the
    /// user's privacy settings, or a missing privacy token, keep us from adding them).
    /// Users being added carry their stored privacy token.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty list; server and socket errors.
    pub async fn participants_update(
        &self,
        group: &Jid,
        participants: &[Jid],
        action: ParticipantAction,
    ) -> Result<Vec<ParticipantResult>, Error> {
        self.change_participants(group, participants, action, false)
            .await
    }

    /// [`Groups::participants_update`] for a community (Baileys'
    /// `communityParticipantsUpdate`): members removed from the community are removed
    /// from its linked groups too (`linked_groups="true"`).
    ///
    /// # Errors
    /// As [`Groups::participants_update`].
    pub async fn community_participants_update(
        &self,
        community: &Jid,
        participants: &[Jid],
        action: ParticipantAction,
    ) -> Result<Vec<ParticipantResult>, Error> {
        self.change_participants(community, participants, action, true)
            .await
    }

    async fn change_participants(
        &self,
        group: &Jid,
        participants: &[Jid],
        action: ParticipantAction,
        community: bool,
    ) -> Result<Vec<ParticipantResult>, Error> {
        if participants.is_empty() {
            return Err(Error::InvalidRequest("no participants"));
        }
        let members = self
            .participant_nodes(participants, action == ParticipantAction::Add)
            .await;
        let linked = (community && action == ParticipantAction::Remove).then_some("true");
        let node = Node::builder(action.tag())
            .attr_opt("linked_groups", linked)
            .children(members)
            .build();
        let reply = self.group_query(group.clone(), "set", node).await?;
        self.invalidate(group).await;
        if linked.is_some() {
            // Its linked groups lost members too.
            self.inner.cache.invalidate_all();
        }
        parse_participants_reply(&reply, action.tag())
    }

    /// Renames the group.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty subject; server and socket errors.
    pub async fn update_subject(&self, group: &Jid, subject: &str) -> Result<(), Error> {
        if subject.trim().is_empty() {
            return Err(Error::InvalidRequest("empty subject"));
        }
        let node = Node::builder("subject")
            .bytes(subject.as_bytes().to_vec())
            .build();
        self.group_query(group.clone(), "set", node).await?;
        self.invalidate(group).await;
        Ok(())
    }

    /// Sets (or with `None` deletes) the description.
    ///
    /// # Errors
    /// Server and socket errors.
    pub async fn update_description(
        &self,
        group: &Jid,
        description: Option<&str>,
    ) -> Result<(), Error> {
        let prev = self.fetch_metadata(group).await?.description_id.clone();
        let mut b = Node::builder("description").attr_opt("prev", prev);
        b = match description {
            Some(d) => b
                .attr("id", request_key())
                .children([Node::builder("body").bytes(d.as_bytes().to_vec()).build()]),
            None => b.attr("delete", "true"),
        };
        self.group_query(group.clone(), "set", b.build()).await?;
        self.invalidate(group).await;
        Ok(())
    }

    /// Changes who may send messages or edit the group info.
    ///
    /// # Errors
    /// Server and socket errors (401 when we are not an admin).
    pub async fn setting_update(&self, group: &Jid, setting: GroupSetting) -> Result<(), Error> {
        self.group_query(group.clone(), "set", Node::builder(setting.tag()).build())
            .await?;
        self.invalidate(group).await;
        Ok(())
    }

    /// Turns disappearing messages on (`Some(seconds)`) or off (`None`).
    ///
    /// # Errors
    /// Server and socket errors.
    pub async fn toggle_ephemeral(&self, group: &Jid, seconds: Option<u32>) -> Result<(), Error> {
        let node = match seconds {
            Some(s) if s > 0 => Node::builder("ephemeral")
                .attr("expiration", s.to_string())
                .build(),
            _ => Node::builder("not_ephemeral").build(),
        };
        self.group_query(group.clone(), "set", node).await?;
        self.invalidate(group).await;
        Ok(())
    }

    /// The group's invite code (`https://chat.whatsapp.com/<code>`).
    ///
    /// # Errors
    /// Server and socket errors; [`Error::Malformed`] when the reply has no code.
    pub async fn invite_code(&self, group: &Jid) -> Result<String, Error> {
        let reply = self
            .group_query(group.clone(), "get", Node::builder("invite").build())
            .await?;
        invite_code_of(&reply)
    }

    /// Resets the invite link; returns the new code.
    ///
    /// # Errors
    /// As [`Groups::invite_code`].
    pub async fn revoke_invite(&self, group: &Jid) -> Result<String, Error> {
        let reply = self
            .group_query(group.clone(), "set", Node::builder("invite").build())
            .await?;
        invite_code_of(&reply)
    }

    /// Joins a group by invite code; returns the group.
    ///
    /// # Errors
    /// Server and socket errors (e.g. 406 bad code, 410 reset code);
    /// [`Error::JoinRequestPending`] when the group's admins approve new members (use
    /// [`Groups::join_by_invite`] to treat that as an outcome); [`Error::Malformed`].
    pub async fn accept_invite(&self, code: &str) -> Result<Jid, Error> {
        match self.join_by_invite(code).await? {
            InviteJoin::Joined(group) => Ok(group),
            InviteJoin::Requested(group) => Err(Error::JoinRequestPending { group }),
        }
    }

    /// Leaves the group.
    ///
    /// # Errors
    /// Server and socket errors.
    pub async fn leave(&self, group: &Jid) -> Result<(), Error> {
        let node = Node::builder("leave")
            .children([Node::builder("group").attr("id", group.clone()).build()])
            .build();
        self.group_query(Jid::group(""), "set", node).await?;
        self.invalidate(group).await;
        Ok(())
    }

    /// Every group we are in, with participants and descriptions (refreshing the cache;
    /// also reported as [`Event::GroupsRefreshed`]).
    ///
    /// # Errors
    /// Server and socket errors; [`Error::Malformed`].
    pub async fn fetch_all_participating(&self) -> Result<HashMap<Jid, Arc<GroupMetadata>>, Error> {
        fetch_all(&self.inner.socket, &self.inner.cache).await
    }
}

/// The code of an invite link (`https://chat.whatsapp.com/<code>` or the bare code).
fn link_code(code: &str) -> Result<&str, Error> {
    let code = code.trim();
    let code = code
        .strip_prefix("https://chat.whatsapp.com/")
        .unwrap_or(code);
    if code.is_empty() {
        return Err(Error::InvalidRequest("empty invite code"));
    }
    Ok(code)
}

/// Admission: invite links and personal (v4) invites, who may add members, and join
/// approval with its requests (Baileys' `groupGetInviteInfo`, `groupMemberAddMode`,
/// `groupJoinApprovalMode`, `groupRequestParticipantsList`,
/// `groupRequestParticipantsUpdate`, `groupAcceptInviteV4`, `groupRevokeInviteV4`).
impl Groups {
    /// The group behind an invite link (`https://chat.whatsapp.com/<code>` or the bare
    /// code), without joining it. We need not be a member; the answer is not cached.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty code; [`Error::Refused`] with 406 for a code
    /// that was never valid, 410 for one that was reset; [`Error::Malformed`].
    pub async fn invite_info(&self, code: &str) -> Result<GroupMetadata, Error> {
        let node = Node::builder("invite")
            .attr("code", link_code(code)?.to_owned())
            .build();
        let reply = self.group_query(Jid::group(""), "get", node).await?;
        parse_group_reply(&reply)
    }

    /// Follows an invite link: joins the group, or, when its admins approve new
    /// members, leaves a join request for them.
    ///
    /// # Errors
    /// As [`Groups::invite_info`].
    pub async fn join_by_invite(&self, code: &str) -> Result<InviteJoin, Error> {
        let node = Node::builder("invite")
            .attr("code", link_code(code)?.to_owned())
            .build();
        let reply = self.group_query(Jid::group(""), "set", node).await?;
        let outcome = parse_invite_join_reply(&reply)?;
        self.invalidate(outcome.group()).await;
        Ok(outcome)
    }

    /// Lets every member (`true`, `all_member_add`) or only admins (`false`,
    /// `admin_add`) add members. Admins only.
    ///
    /// # Errors
    /// Server and socket errors (401 when we are not an admin).
    pub async fn set_member_add_mode(&self, group: &Jid, all_members: bool) -> Result<(), Error> {
        let mode: &[u8] = if all_members {
            b"all_member_add"
        } else {
            b"admin_add"
        };
        let node = Node::builder("member_add_mode")
            .bytes(mode.to_vec())
            .build();
        self.group_query(group.clone(), "set", node).await?;
        self.invalidate(group).await;
        Ok(())
    }

    /// Turns join approval on or off: while on, following the invite link leaves a
    /// request for the admins (see [`Groups::join_requests`]). Admins only.
    ///
    /// # Errors
    /// Server and socket errors (401 when we are not an admin).
    pub async fn set_join_approval(&self, group: &Jid, on: bool) -> Result<(), Error> {
        let node = Node::builder("membership_approval_mode")
            .children([Node::builder("group_join")
                .attr("state", if on { "on" } else { "off" })
                .build()])
            .build();
        self.group_query(group.clone(), "set", node).await?;
        self.invalidate(group).await;
        Ok(())
    }

    /// The pending requests to join `group`. Admins only.
    ///
    /// # Errors
    /// Server and socket errors; [`Error::Malformed`].
    pub async fn join_requests(&self, group: &Jid) -> Result<Vec<JoinRequest>, Error> {
        let reply = self
            .group_query(
                group.clone(),
                "get",
                Node::new("membership_approval_requests"),
            )
            .await?;
        parse_join_requests_reply(&reply)
    }

    /// Approves (the users join) or rejects (their requests are dropped) join requests;
    /// one result per user (404 when the user has no pending request). Admins only.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty list; server and socket errors;
    /// [`Error::Malformed`].
    pub async fn update_join_requests(
        &self,
        group: &Jid,
        participants: &[Jid],
        approve: bool,
    ) -> Result<Vec<ParticipantResult>, Error> {
        if participants.is_empty() {
            return Err(Error::InvalidRequest("no participants"));
        }
        let action = if approve { "approve" } else { "reject" };
        let node = Node::builder("membership_requests_action")
            .children([Node::builder(action)
                .children(
                    participants
                        .iter()
                        .map(|j| Node::builder("participant").attr("jid", j.clone()).build()),
                )
                .build()])
            .build();
        let reply = self.group_query(group.clone(), "set", node).await?;
        self.invalidate(group).await;
        parse_requests_action_reply(&reply, action)
    }

    /// Joins a group with a personal invite (a `GroupInviteMessage` sent by `inviter`,
    /// one of its admins, after privacy kept them from adding us; see
    /// [`ParticipantResult::add_request`]). Returns the group. The server tells only the
    /// other members, so the join is reported here as an [`Event::GroupUpdate`]:
    /// `inviter` added us. [`Groups::accept_invite_v4_message`] does the same for an
    /// invite known by its message key and also reports that message as used.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when the invite names no group or has no code; server
    /// and socket errors (e.g. 406 not our invite, 410 expired).
    pub async fn accept_invite_v4(
        &self,
        inviter: &Jid,
        invite: &GroupInviteMessage,
    ) -> Result<Jid, Error> {
        let (group, _) = self.join_with_invite_v4(inviter, invite).await?;
        Ok(group)
    }

    /// [`Groups::accept_invite_v4`] for the invite message `key` names (sent by the chat's
    /// user, or by `key.participant` where the chat is a group). After the join, the
    /// message is reported used, as Baileys marks it expired: an
    /// [`Event::MessageChanged`] for `key` with [`MessageChangeKind::InviteUsed`] carrying
    /// the invite without its code and with expiration 0. Returns the group.
    ///
    /// # Errors
    /// As [`Groups::accept_invite_v4`]; [`Error::InvalidRequest`] for a key of our own
    /// message (an invite we sent is not ours to accept).
    pub async fn accept_invite_v4_message(
        &self,
        key: &MessageKey,
        invite: &GroupInviteMessage,
    ) -> Result<Jid, Error> {
        if key.from_me {
            return Err(Error::InvalidRequest("the invite is our own message"));
        }
        let inviter = key.participant.as_ref().unwrap_or(&key.remote_jid);
        let (group, joined_at) = self.join_with_invite_v4(inviter, invite).await?;
        if let Some(me) = self.inner.socket.me().await {
            let mut used = invite.clone();
            used.invite_code = Some(String::new());
            used.invite_expiration = Some(0);
            let message = wa_proto::e2e::Message {
                group_invite_message: Some(Box::new(used)),
                ..Default::default()
            };
            self.inner
                .socket
                .emit(Event::MessageChanged(Box::new(MessageChange {
                    key: key.clone(),
                    by: me,
                    kind: MessageChangeKind::InviteUsed(Arc::new(message)),
                    timestamp: joined_at,
                })));
        }
        Ok(group)
    }

    /// Sends the `<accept>` of a personal invite and reports our join; the group and
    /// when it was joined (Unix seconds).
    async fn join_with_invite_v4(
        &self,
        inviter: &Jid,
        invite: &GroupInviteMessage,
    ) -> Result<(Jid, u64), Error> {
        let group = invite_v4_group(invite)?;
        let node = Node::builder("accept")
            .attr("code", invite.invite_code().to_owned())
            .attr("expiration", invite.invite_expiration().to_string())
            .attr("admin", inviter.clone())
            .build();
        let reply = self.group_query(group.clone(), "set", node).await?;
        self.invalidate(&group).await;
        let group = reply
            .attr_opt::<Jid>("from")
            .ok()
            .flatten()
            .filter(|j| j.server == wa_binary::Server::Group)
            .unwrap_or(group);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // The server tells the other members, not the device that accepted: report the
        // join here, as the inviter adding us (Baileys adds the same placeholder).
        if let Some(me) = self.inner.socket.me().await.map(|j| j.to_non_ad()) {
            let mut update = GroupUpdate::new(group.clone(), Some(inviter.to_non_ad()), now);
            update.changes.push(GroupChange::Added(vec![me]));
            self.inner.socket.emit(Event::GroupUpdate(Box::new(update)));
        }
        Ok((group, now))
    }

    /// The group a personal invite leads to, before accepting it (whatsmeow's
    /// `GetGroupInfoFromInvite`): `group`, `inviter` (the admin who sent the invite),
    /// `code` and `expiration` (Unix seconds) as the `GroupInviteMessage` carries them.
    /// We need not be a member; the answer is not cached.
    /// [`Groups::invite_v4_message_info`] takes the received invite message instead.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when `group` is not a group or `code` is empty;
    /// [`Error::Refused`] with 406 for an invite that is not ours (wrong code or inviter,
    /// revoked or used up), 410 for an expired one, 404 for no such group;
    /// [`Error::Malformed`].
    pub async fn invite_v4_info(
        &self,
        group: &Jid,
        inviter: &Jid,
        code: &str,
        expiration: u64,
    ) -> Result<GroupMetadata, Error> {
        if group.server != wa_binary::Server::Group || group.user.as_str().is_empty() {
            return Err(Error::InvalidRequest("not a group"));
        }
        if code.is_empty() {
            return Err(Error::InvalidRequest("invite without code"));
        }
        self.query_invite_v4(group, inviter, code, expiration.to_string())
            .await
    }

    /// [`Groups::invite_v4_info`] for the invite message `key` names (sent by the chat's
    /// user, or by `key.participant` where the chat is a group), as
    /// [`Groups::accept_invite_v4_message`] takes it.
    ///
    /// # Errors
    /// As [`Groups::invite_v4_info`]; [`Error::InvalidRequest`] when the invite names no
    /// group or has no code, or for a key of our own message.
    pub async fn invite_v4_message_info(
        &self,
        key: &MessageKey,
        invite: &GroupInviteMessage,
    ) -> Result<GroupMetadata, Error> {
        if key.from_me {
            return Err(Error::InvalidRequest("the invite is our own message"));
        }
        let inviter = key.participant.as_ref().unwrap_or(&key.remote_jid);
        let group = invite_v4_group(invite)?;
        self.query_invite_v4(
            &group,
            inviter,
            invite.invite_code(),
            invite.invite_expiration().to_string(),
        )
        .await
    }

    /// `<query><add_request code expiration admin/></query>` to the group.
    async fn query_invite_v4(
        &self,
        group: &Jid,
        inviter: &Jid,
        code: &str,
        expiration: String,
    ) -> Result<GroupMetadata, Error> {
        let node = Node::builder("query")
            .children([Node::builder("add_request")
                .attr("code", code.to_owned())
                .attr("expiration", expiration)
                .attr("admin", inviter.to_non_ad())
                .build()])
            .build();
        let reply = self.group_query(group.clone(), "get", node).await?;
        parse_group_reply(&reply)
    }

    /// Revokes the personal invite `invited` holds for `group`: it no longer joins them.
    /// Admins only.
    ///
    /// # Errors
    /// Server and socket errors.
    pub async fn revoke_invite_v4(&self, group: &Jid, invited: &Jid) -> Result<(), Error> {
        let node = Node::builder("revoke")
            .children([Node::builder("participant")
                .attr("jid", invited.clone())
                .build()])
            .build();
        self.group_query(group.clone(), "set", node).await?;
        Ok(())
    }
}

/// The group a personal invite names; its code must not be empty.
fn invite_v4_group(invite: &GroupInviteMessage) -> Result<Jid, Error> {
    let group = invite
        .group_jid()
        .parse::<Jid>()
        .ok()
        .filter(|j| j.server == wa_binary::Server::Group)
        .ok_or_else(|| Error::InvalidRequest("invite names no group"))?;
    if invite.invite_code().is_empty() {
        return Err(Error::InvalidRequest("invite without code"));
    }
    Ok(group)
}

fn invite_code_of(reply: &Node) -> Result<String, Error> {
    reply
        .child("invite")
        .and_then(|i| i.attr::<&str>("code").ok())
        .map(str::to_owned)
        .ok_or_else(|| Error::Malformed("invite reply without code"))
}

/// Communities: a parent group, its announcement group and the groups linked into it
/// (wire format of Baileys' `communities.ts` and whatsmeow's `group.go`).
impl Groups {
    /// Creates a community named `subject` with an optional description; the server
    /// creates its announcement group with it. Returns the community's metadata
    /// (`is_community` set).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty subject; server and socket errors;
    /// [`Error::Malformed`].
    pub async fn create_community(
        &self,
        subject: &str,
        description: Option<&str>,
    ) -> Result<Arc<GroupMetadata>, Error> {
        if subject.trim().is_empty() {
            return Err(Error::InvalidRequest("empty subject"));
        }
        let mut children = Vec::new();
        if let Some(d) = description.filter(|d| !d.is_empty()) {
            let mut id = request_key();
            id.truncate(12);
            children.push(
                Node::builder("description")
                    .attr("id", id)
                    .children([Node::builder("body").bytes(d.as_bytes().to_vec()).build()])
                    .build(),
            );
        }
        children.push(
            Node::builder("parent")
                .attr("default_membership_approval_mode", "request_required")
                .build(),
        );
        children.push(Node::new("allow_non_admin_sub_group_creation"));
        children.push(Node::new("create_general_chat"));
        let create = Node::builder("create")
            .attr("subject", subject.to_owned())
            .children(children)
            .build();
        let reply = self.group_query(Jid::group(""), "set", create).await?;
        let id = reply
            .child("group")
            .ok_or_else(|| Error::Malformed("reply without <group>"))
            .and_then(parse_group_id)?;
        self.fetch_metadata(&id).await
    }

    /// Creates a group named `subject` with `participants` inside `community` (we must
    /// be one of its admins).
    ///
    /// # Errors
    /// As [`Groups::create`].
    pub async fn create_sub_group(
        &self,
        community: &Jid,
        subject: &str,
        participants: &[Jid],
    ) -> Result<Arc<GroupMetadata>, Error> {
        let meta = self
            .create_in(
                subject,
                participants,
                Some(community),
                &CreateGroupOptions::default(),
            )
            .await?;
        self.invalidate(community).await;
        Ok(meta)
    }

    /// Links an existing `group` (we must admin it) into `community` as a sub-group.
    ///
    /// # Errors
    /// Server and socket errors (e.g. 401 not an admin, 409 already linked).
    pub async fn link_group(&self, community: &Jid, group: &Jid) -> Result<(), Error> {
        let node = Node::builder("links")
            .children([Node::builder("link")
                .attr("link_type", "sub_group")
                .children([Node::builder("group").attr("jid", group.clone()).build()])
                .build()])
            .build();
        self.group_query(community.clone(), "set", node).await?;
        self.invalidate(community).await;
        self.invalidate(group).await;
        Ok(())
    }

    /// Removes `group` from `community`; the group goes on as an ordinary group.
    ///
    /// # Errors
    /// Server and socket errors (e.g. 404 not linked).
    pub async fn unlink_group(&self, community: &Jid, group: &Jid) -> Result<(), Error> {
        let node = Node::builder("unlink")
            .attr("unlink_type", "sub_group")
            .children([Node::builder("group").attr("jid", group.clone()).build()])
            .build();
        self.group_query(community.clone(), "set", node).await?;
        self.invalidate(community).await;
        self.invalidate(group).await;
        Ok(())
    }

    /// The groups of `community`, the announcement group among them.
    ///
    /// # Errors
    /// Server and socket errors; [`Error::Malformed`].
    pub async fn sub_groups(&self, community: &Jid) -> Result<Vec<LinkedGroup>, Error> {
        let reply = self
            .group_query(community.clone(), "get", Node::new("sub_groups"))
            .await?;
        parse_sub_groups_reply(&reply)
    }

    /// The community `group` belongs to (or `group` itself, when it is a community) and
    /// that community's groups, as Baileys' `communityFetchLinkedGroups`: a group's
    /// metadata names its community.
    ///
    /// # Errors
    /// As [`Groups::metadata`] and [`Groups::sub_groups`].
    pub async fn linked_groups(&self, group: &Jid) -> Result<(Jid, Vec<LinkedGroup>), Error> {
        let meta = self.metadata(group).await?;
        let community = meta.linked_parent.clone().unwrap_or_else(|| group.clone());
        let groups = self.sub_groups(&community).await?;
        Ok((community, groups))
    }

    /// The community's announcement group (its default sub-group), when it has one.
    ///
    /// # Errors
    /// As [`Groups::sub_groups`].
    pub async fn community_announcement_group(
        &self,
        community: &Jid,
    ) -> Result<Option<LinkedGroup>, Error> {
        Ok(self
            .sub_groups(community)
            .await?
            .into_iter()
            .find(|g| g.is_default_sub_group))
    }

    /// Every member of every group of `community`.
    ///
    /// # Errors
    /// Server and socket errors; [`Error::Malformed`].
    pub async fn linked_groups_participants(&self, community: &Jid) -> Result<Vec<Jid>, Error> {
        let reply = self
            .group_query(
                community.clone(),
                "get",
                Node::new("linked_groups_participants"),
            )
            .await?;
        parse_linked_participants_reply(&reply)
    }

    /// Leaves `community` and every group of it.
    ///
    /// # Errors
    /// Server and socket errors.
    pub async fn leave_community(&self, community: &Jid) -> Result<(), Error> {
        let node = Node::builder("leave")
            .children([Node::builder("community")
                .attr("id", community.clone())
                .build()])
            .build();
        self.group_query(Jid::group(""), "set", node).await?;
        self.invalidate(community).await;
        Ok(())
    }
}

fn parse_group_id(group: &Node) -> Result<Jid, Error> {
    crate::parse::parse_linked_group(group).map(|g| g.jid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user: &'static str) -> Node {
        Node::builder("participant")
            .attr("jid", Jid::pn(user))
            .build()
    }

    fn tags(node: &Node) -> Vec<&str> {
        node.children().iter().map(Node::tag).collect()
    }

    #[test]
    fn default_create_carries_only_subject_key_and_members() {
        let n = create_node(
            "Team",
            "3EB0AA".into(),
            vec![member("15550000002")],
            None,
            &CreateGroupOptions::default(),
        );
        assert_eq!(n.tag(), "create");
        assert_eq!(n.attr::<&str>("subject").unwrap(), "Team");
        assert_eq!(n.attr::<&str>("key").unwrap(), "3EB0AA");
        assert_eq!(tags(&n), ["participant"]);
        // Zero seconds and an explicit "off" leave the elements out too.
        let off = CreateGroupOptions::new()
            .ephemeral(0)
            .locked(false)
            .join_approval(false);
        assert_eq!(off, CreateGroupOptions::default());
        let n = create_node("Team", "k".into(), Vec::new(), None, &off);
        assert!(n.children().is_empty());
    }

    #[test]
    fn every_option_becomes_its_element_in_whatsmeow_order() {
        let options = CreateGroupOptions::new()
            .locked(true)
            .announce(true)
            .ephemeral(86_400)
            .join_approval(true)
            .member_add_all(false);
        let parent = Jid::group("120363000000000001");
        let n = create_node(
            "Team",
            "k".into(),
            vec![member("15550000002"), member("15550000003")],
            Some(&parent),
            &options,
        );
        assert_eq!(
            tags(&n),
            [
                "participant",
                "participant",
                "member_add_mode",
                "linked_parent",
                "locked",
                "announcement",
                "ephemeral",
                "membership_approval_mode",
            ]
        );
        let mode = n.child("member_add_mode").unwrap();
        assert_eq!(mode.content_bytes(), Some(&b"admin_add"[..]));
        assert_eq!(
            n.child("linked_parent")
                .unwrap()
                .attr::<Jid>("jid")
                .unwrap(),
            parent
        );
        let eph = n.child("ephemeral").unwrap();
        assert_eq!(eph.attr::<&str>("expiration").unwrap(), "86400");
        assert_eq!(eph.attr::<&str>("trigger").unwrap(), "1");
        let join = n
            .child("membership_approval_mode")
            .and_then(|m| m.child("group_join"))
            .unwrap();
        assert_eq!(join.attr::<&str>("state").unwrap(), "on");
        assert!(n.child("locked").unwrap().children().is_empty());

        let all = create_node(
            "Team",
            "k".into(),
            Vec::new(),
            None,
            &CreateGroupOptions::new().member_add_all(true),
        );
        assert_eq!(tags(&all), ["member_add_mode"]);
        assert_eq!(
            all.child("member_add_mode").unwrap().content_bytes(),
            Some(&b"all_member_add"[..])
        );
    }
}
