//! A subscriber that comes late still sees the first QR code through
//! `Socket::events_from_start`; other subscribers only see what comes after them.

use std::time::Duration;

use tokio::sync::broadcast::error::TryRecvError;
use wa_sim::{Sim, SimConfig};
use wa_socket::{Event, Socket};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_qr_code_reaches_a_late_subscriber() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let socket = Socket::connect(wa_testkit::config(&sim, wa_testkit::memory_store()));
    // The socket connects and shows its first QR code before anyone listens (the next
    // one would come only after the first expires, a minute later).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut fresh = socket.events();
    let mut late = socket.events_from_start();
    let qr = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Event::Connection(u)) = late.recv().await
                && let Some(qr) = u.qr
            {
                return qr;
            }
        }
    })
    .await
    .expect("the first QR code is still there");
    assert!(
        qr.contains("#2@") && qr.split(',').count() >= 4,
        "a QR string: {qr}"
    );
    assert!(matches!(fresh.try_recv(), Err(TryRecvError::Empty)));
    // The startup subscription is handed out once; the next caller starts from now.
    let mut again = socket.events_from_start();
    assert!(matches!(again.try_recv(), Err(TryRecvError::Empty)));
    socket.close().await;
}
