//! Accounts, devices and pre-keys: the part of the simulator that survives a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rand_core::OsRng;
use wa_binary::Jid;
use wa_crypto::{KeyPair, PublicKey};

use crate::e2e::PhoneSignal;
use crate::group::Group;

/// Most one-time pre-keys kept per device (uploads beyond are dropped, oldest first).
pub(crate) const MAX_PREKEYS_PER_DEVICE: usize = 2048;
/// Most companion devices per account (device ids 1..=this).
pub(crate) const MAX_DEVICES: u16 = 64;

/// The simulator's durable state, cheap to clone (`Arc`s inside).
///
/// Holds the server's keys (root, intermediate, Noise static), every account with its
/// simulated phone and linked devices, and what the server keeps for them: the
/// delivery queues (stanzas not yet acknowledged), app-state collections and history
/// the phones send. Give the same `SimState` to a new [`Sim::start`](crate::Sim::start)
/// (on the same address), or call [`Sim::restart`](crate::Sim::restart), to restart the
/// server with all of it. The state file ([`to_json`](Self::to_json)) holds the keys,
/// accounts, devices, groups, communities, profiles, channels, business data and app
/// state; the queues live in memory only.
#[derive(Clone)]
pub struct SimState {
    inner: Arc<Mutex<Inner>>,
    pub(crate) held: Arc<Held>,
}

/// What the server holds for its devices between connections (and across a restart in
/// the same process).
#[derive(Default)]
pub(crate) struct Held {
    /// Every companion's delivery queue.
    pub(crate) queues: Mutex<crate::route::Queues>,
    /// History sync: which phones send it, seeds, counters.
    pub(crate) history: Mutex<crate::history::HistoryState>,
    /// Media the phones sent, for re-upload requests.
    pub(crate) phone_media: Mutex<crate::phone_media::PhoneMedia>,
    /// App-state collections per account, and each phone's sync key.
    pub(crate) appstate: Mutex<crate::appstate::AppStateServer>,
    /// The last connection number handed out (so a restarted server never reuses one
    /// the queues remember).
    pub(crate) next_conn: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.lock();
        f.debug_struct("SimState")
            .field("root", &g.keys.root.public)
            .field("accounts", &g.accounts.len())
            .finish()
    }
}

impl Default for SimState {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) struct ServerKeys {
    pub(crate) root: KeyPair,
    pub(crate) intermediate: KeyPair,
    pub(crate) noise_static: KeyPair,
}

pub(crate) struct Inner {
    pub(crate) keys: ServerKeys,
    pub(crate) accounts: BTreeMap<String, Account>,
    pub(crate) next_lid: u64,
    /// Groups by id (the user part of `id@g.us`).
    pub(crate) groups: BTreeMap<String, Group>,
    /// The last group number handed out.
    pub(crate) next_group: u64,
    /// Presence, privacy, status, pictures and blocklists (per-account profiles are
    /// saved in the state file; presence and subscriptions are not).
    pub(crate) chats: crate::chats::ChatsState,
    /// Reach-out timelocks and new-chat caps.
    pub(crate) restrictions: crate::restriction::Restrictions,
    /// Which groups are communities, and their sub-groups (in memory only).
    pub(crate) communities: crate::community::Communities,
    /// Dirty bits flagged per account (in memory only).
    pub(crate) dirty: crate::dirty::DirtyState,
    /// Channels.
    pub(crate) newsletters: crate::newsletter::NewsletterState,
    /// Business profiles, catalogs and orders.
    pub(crate) business: crate::business::BusinessState,
    /// Contact QR codes, business message links, accepted terms-of-service notices
    /// and push settings (in memory only).
    pub(crate) links: crate::links::LinkState,
    /// Bot ids (`<id>@bot`) and the bot account (phone number) each one reaches (in
    /// memory only).
    pub(crate) bot_ids: BTreeMap<String, String>,
}

/// One account: its phone (device 0) and companions.
pub(crate) struct Account {
    pub(crate) phone: String,
    pub(crate) lid_user: String,
    /// The phone's identity key: signs device identities (the account signature key).
    pub(crate) identity: KeyPair,
    pub(crate) created: u64,
    pub(crate) devices: BTreeMap<u16, Device>,
    /// Device ids handed out in pair-success, not yet confirmed.
    pub(crate) reserved: Vec<u16>,
    pub(crate) next_key_index: u32,
    /// The phone's Signal state (in memory only, regenerated on load).
    pub(crate) signal: Arc<PhoneSignal>,
    /// The push name a device of the account last announced (`<presence name>`).
    pub(crate) push_name: Option<String>,
}

/// A linked companion device.
pub(crate) struct Device {
    pub(crate) noise: PublicKey,
    pub(crate) identity: PublicKey,
    pub(crate) key_index: u32,
    pub(crate) platform: String,
    pub(crate) prekeys: PreKeys,
}

/// What a device uploaded with `<iq xmlns=encrypt type=set>`.
#[derive(Default)]
pub(crate) struct PreKeys {
    pub(crate) registration_id: Option<u32>,
    pub(crate) identity: Option<Vec<u8>>,
    pub(crate) one_time: std::collections::VecDeque<(u32, Vec<u8>)>,
    pub(crate) signed: Option<(u32, Vec<u8>, Vec<u8>)>,
}

/// Public facts about an account.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountInfo {
    /// The phone number, digits only.
    pub phone: String,
    /// `phone@s.whatsapp.net`.
    pub pn: Jid,
    /// `lid@lid`.
    pub lid: Jid,
    /// The simulated phone's identity key (the account signature key companions store).
    pub identity: PublicKey,
}

impl Account {
    /// A new account whose phone has this identity key.
    pub(crate) fn new(phone: String, lid_user: String, identity: KeyPair, created: u64) -> Self {
        let signal = Arc::new(PhoneSignal::new(&identity));
        Account {
            phone,
            lid_user,
            identity,
            created,
            devices: BTreeMap::new(),
            reserved: Vec::new(),
            next_key_index: 1,
            signal,
            push_name: None,
        }
    }

    pub(crate) fn info(&self) -> AccountInfo {
        AccountInfo {
            phone: self.phone.clone(),
            pn: Jid::pn(self.phone.clone()),
            lid: Jid::lid(self.lid_user.clone()),
            identity: self.identity.public,
        }
    }

    /// Reserves the lowest free companion device id.
    pub(crate) fn reserve_device(&mut self) -> Option<u16> {
        let id = (1..=MAX_DEVICES)
            .find(|d| !self.devices.contains_key(d) && !self.reserved.contains(d))?;
        self.reserved.push(id);
        Some(id)
    }

    pub(crate) fn release(&mut self, id: u16) {
        self.reserved.retain(|d| *d != id);
    }
}

impl Held {
    pub(crate) fn queues_lock(&self) -> MutexGuard<'_, crate::route::Queues> {
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SimState {
    /// Fresh state: a newly generated root key, no accounts.
    pub fn new() -> Self {
        Self::with_root_key(KeyPair::generate(&mut OsRng))
    }

    /// Fresh state whose certificate chains are signed by `root` (so a client can keep
    /// one trusted root across runs).
    pub fn with_root_key(root: KeyPair) -> Self {
        let keys = ServerKeys {
            root,
            intermediate: KeyPair::generate(&mut OsRng),
            noise_static: KeyPair::generate(&mut OsRng),
        };
        Self::from_inner(Inner {
            keys,
            accounts: BTreeMap::new(),
            next_lid: 100_000_000_000_001,
            groups: BTreeMap::new(),
            next_group: 0,
            communities: Default::default(),
            dirty: Default::default(),
            chats: Default::default(),
            restrictions: Default::default(),
            newsletters: Default::default(),
            business: Default::default(),
            links: Default::default(),
            bot_ids: Default::default(),
        })
    }

    /// The root public key clients must trust.
    pub fn root_public_key(&self) -> PublicKey {
        self.lock().keys.root.public
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(Mutex::new(inner)),
            held: Arc::default(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    pub(crate) fn add_account(&mut self, phone: &str, now: u64) -> AccountInfo {
        if let Some(a) = self.accounts.get(phone) {
            return a.info();
        }
        let lid_user = self.next_lid.to_string();
        self.next_lid += 1;
        let acct = Account::new(
            phone.to_owned(),
            lid_user,
            KeyPair::generate(&mut OsRng),
            now,
        );
        let info = acct.info();
        self.accounts.insert(phone.to_owned(), acct);
        info
    }
}

/// A linked companion device, as [`Sim::linked_devices`](crate::Sim::linked_devices) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkedDevice {
    /// `phone:N@s.whatsapp.net`.
    pub jid: Jid,
    /// `lid:N@lid`.
    pub lid: Jid,
    /// The companion's identity key (from its registration payload).
    pub identity: PublicKey,
    /// The companion's Noise static key (it must log in with this one).
    pub noise: PublicKey,
    /// The key index the phone assigned.
    pub key_index: u32,
    /// The platform field of the QR (`"code"` when linked with a pairing code).
    pub platform: String,
}

impl Account {
    pub(crate) fn linked(&self) -> Vec<LinkedDevice> {
        self.devices
            .iter()
            .map(|(id, d)| LinkedDevice {
                jid: Jid::with_device(self.phone.clone(), wa_binary::Server::Pn, *id),
                lid: Jid::with_device(self.lid_user.clone(), wa_binary::Server::Lid, *id),
                identity: d.identity,
                noise: d.noise,
                key_index: d.key_index,
                platform: d.platform.clone(),
            })
            .collect()
    }
}

/// Checks a phone number: 7 to 15 ASCII digits, no leading zero.
pub(crate) fn valid_phone(phone: &str) -> bool {
    (7..=15).contains(&phone.len())
        && phone.bytes().all(|b| b.is_ascii_digit())
        && !phone.starts_with('0')
}
