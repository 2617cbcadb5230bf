//! How a send reads the store: the sessions and identities of all recipient devices
//! come in bulk reads, not one read per device, and once per send; known LID mappings
//! and the contact's privacy-token record come from the messenger's caches.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{link, memory_store, text_of};
use wa_binary::{Jid, Server};
use wa_messages::MessageContent;
use wa_sim::{Sim, SimConfig};
use wa_store::testing::{Read, Tap, Tapped, done};
use wa_store::{AccountId, AccountStore, BoxFuture, MemoryBackend, Role};
use wa_testkit::next_upsert;

const A: &str = "15550001001";
const B: &str = "15550001002";

/// Counts Signal-state reads: single and bulk.
#[derive(Debug, Default)]
struct Counting {
    single: AtomicUsize,
    bulk_calls: AtomicUsize,
    bulk_keys: AtomicUsize,
    /// Single reads of LID mappings.
    mappings: AtomicUsize,
    /// Single reads of privacy-token records.
    tokens: AtomicUsize,
}

impl Tap for Counting {
    fn before_read(&self, role: Role, read: Read) -> BoxFuture<'_, ()> {
        if role == Role::LidMapping {
            self.mappings.fetch_add(1, Ordering::SeqCst);
        }
        if role == Role::PrivacyToken {
            self.tokens.fetch_add(1, Ordering::SeqCst);
        }
        if matches!(role, Role::Session | Role::Identity) {
            match read {
                Read::One => {
                    self.single.fetch_add(1, Ordering::SeqCst);
                }
                Read::Many(keys) => {
                    self.bulk_calls.fetch_add(1, Ordering::SeqCst);
                    self.bulk_keys.fetch_add(keys, Ordering::SeqCst);
                }
                Read::List => {}
            }
        }
        done()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_reads_every_device_session_in_bulk() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let tapped = Arc::new(Tapped::new(MemoryBackend::new(), Counting::default()));
    let backend = tapped.tap();
    let store = AccountStore::new(tapped.clone(), AccountId::new("a1").unwrap());
    let a1 = link(&sim, A, store).await;
    let _a2 = link(&sim, A, memory_store("a2")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let mut b2 = link(&sim, B, memory_store("b2")).await;
    let b = Jid::pn(B);

    // The first send starts the sessions (bundles fetched); the others find them stored.
    for (i, text) in ["first", "second", "third"].into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        backend.single.store(0, Ordering::SeqCst);
        backend.bulk_calls.store(0, Ordering::SeqCst);
        backend.bulk_keys.store(0, Ordering::SeqCst);
        backend.mappings.store(0, Ordering::SeqCst);
        backend.tokens.store(0, Ordering::SeqCst);
        let key = a1
            .messenger
            .send_message(&b, MessageContent::text(text))
            .await
            .unwrap();
        let (single, calls, keys) = (
            backend.single.load(Ordering::SeqCst),
            backend.bulk_calls.load(Ordering::SeqCst),
            backend.bulk_keys.load(Ordering::SeqCst),
        );
        // Five recipient devices: B's two companions and phone, A's other companion and
        // phone; each bulk read asks for all of them.
        assert!(calls >= 2, "send {i}: {calls} bulk reads");
        assert_eq!(keys % 5, 0, "send {i}: {keys} keys over {calls} bulk reads");
        if i > 0 {
            assert_eq!(
                single, 0,
                "with the sessions stored, a send reads no session or identity alone"
            );
            assert_eq!(
                (calls, keys),
                (2, 10),
                "with the sessions stored, a send reads the sessions and the identities once"
            );
            // B's LID, learned by the first send, comes from the mapping cache.
            let mappings = backend.mappings.load(Ordering::SeqCst);
            assert_eq!(mappings, 0, "send {i}: LID mapping reads");
        }
        // The first send issued our token and recorded that in the contact's record, so
        // the second reads the record again; the third finds it unchanged in memory.
        if i == 2 {
            let tokens = backend.tokens.load(Ordering::SeqCst);
            assert_eq!(tokens, 0, "send {i}: privacy-token record reads");
        }
        for client in [&mut b1, &mut b2] {
            let got = next_upsert(&mut client.events, |m| m.key.id == key.id).await;
            assert_eq!(text_of(&got.message), Some(text));
        }
    }
}

/// A send to devices of which one is new: the send encrypts for the devices it has
/// sessions with, finds the new one without a session, fetches its bundle and encrypts
/// for all again (the first copies dropped). Every device decrypts its copy, the ones
/// that skipped a message key of the dropped copies included, and a later send needs no
/// bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_among_known_ones_gets_the_message() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let a1 = link(&sim, A, memory_store("a1")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let b = Jid::pn(B);
    let key = a1
        .messenger
        .send_message(&b, MessageContent::text("before"))
        .await
        .unwrap();
    let got = next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
    assert_eq!(text_of(&got.message), Some("before"));

    // Our new companion: a1 hears of it by a devices notification.
    let mut a2 = link(&sim, A, memory_store("a2")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let devices = [
        a2.jid.clone(),
        b1.jid.clone(),
        Jid::with_device(A, Server::Pn, 0),
        Jid::with_device(B, Server::Pn, 0),
    ];
    let keys_before: Vec<usize> = devices
        .iter()
        .map(|d| sim.prekey_count(d).unwrap())
        .collect();
    for text in ["after", "again"] {
        let key = a1
            .messenger
            .send_message(&b, MessageContent::text(text))
            .await
            .unwrap();
        let got = next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
        assert_eq!(text_of(&got.message), Some(text), "B's companion");
        let own = next_upsert(&mut a2.events, |m| m.key.id == key.id).await;
        assert_eq!(text_of(&own.message), Some(text), "our new companion");
        assert!(own.key.from_me);
    }
    // One bundle, the new companion's, fetched once: one of its one-time pre-keys used.
    let used: Vec<usize> = devices
        .iter()
        .zip(keys_before)
        .map(|(d, before)| before - sim.prekey_count(d).unwrap())
        .collect();
    assert_eq!(used, [1, 0, 0, 0]);
}
