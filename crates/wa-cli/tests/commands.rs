//! `wa send`, `wa groups` and `wa listen` run as processes against an in-process wa-sim,
//! with credentials a linked device left in a SQLite file.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wa_binary::Jid;
use wa_sim::{Sim, SimConfig};
use wa_store::{AccountId, AccountStore};
use wa_store_sqlite::SqliteBackend;

const ME: &str = "15550000001";
const FRIEND: &str = "15550000002";

/// Links a device for `ME` whose credentials stay in `db` (account "default", as the
/// command expects), then closes it.
async fn linked_store(sim: &Sim, db: &Path) {
    let backend = SqliteBackend::open(db).await.unwrap();
    let store = AccountStore::new(Arc::new(backend), AccountId::new("default").unwrap());
    let (socket, _) = wa_testkit::link_with(sim, ME, store).await;
    socket.close().await;
    socket.closed().await;
}

fn wa(sim: &Sim, db: &Path, args: &[&str]) -> Command {
    let root: String = sim
        .root_public_key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut c = Command::new(env!("CARGO_BIN_EXE_wa"));
    c.args(args).arg("--store").arg(db).args([
        "--url",
        &sim.ws_url(),
        "--root",
        &root,
        "--plain-media",
    ]);
    c
}

async fn wait_inbox(sim: &Sim, phone: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = sim.phone_inbox(phone).iter().any(|m| {
            m.message.conversation.as_deref() == Some(text)
                || m.message
                    .extended_text_message
                    .as_ref()
                    .and_then(|e| e.text.as_deref())
                    == Some(text)
                || m.message
                    .document_message
                    .as_ref()
                    .and_then(|d| d.caption.as_deref())
                    == Some(text)
        });
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "{phone} never got {text:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next line of `wa listen` containing `needle`.
async fn wait_line(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, needle: &str) -> String {
    let fut = async {
        while let Some(line) = rx.recv().await {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("wa listen ended before {needle:?}");
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .unwrap_or_else(|_| panic!("no line with {needle:?} in time"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_groups_and_listen_through_the_simulator() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(ME).await;
    sim.add_account(FRIEND).await;
    let dir = std::env::temp_dir().join(format!("wa-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("wa.db");
    linked_store(&sim, &db).await;

    // wa send: a text, then a document with a caption and a progress bar.
    let out = tokio::task::spawn_blocking({
        let mut c = wa(
            &sim,
            &db,
            &["send", &format!("+{FRIEND}"), "hello", "from", "the", "cli"],
        );
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent 3EB0"));
    wait_inbox(&sim, FRIEND, "hello from the cli").await;
    let file = dir.join("notes.txt");
    std::fs::write(&file, vec![b'x'; 200_000]).unwrap();
    let out = tokio::task::spawn_blocking({
        let mut c = wa(
            &sim,
            &db,
            &[
                "send",
                FRIEND,
                "--document",
                file.to_str().unwrap(),
                "--caption",
                "the notes",
            ],
        );
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("100%"));
    wait_inbox(&sim, FRIEND, "the notes").await;

    // wa groups: a group the friend's phone created with us in it.
    let group = sim
        .phone_create_group(FRIEND, "Book club", &[Jid::pn(ME)])
        .unwrap();
    let out = tokio::task::spawn_blocking({
        let mut c = wa(&sim, &db, &["groups"]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listing.contains(&group.to_string()) && listing.contains("Book club"),
        "{listing}"
    );

    // wa listen: a message from the friend's phone shows up as a line.
    let mut child = wa(&sim, &db, &["listen"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    wait_line(&mut rx, "listening").await;
    let msg = wa_proto::e2e::Message {
        conversation: Some("are you there?".into()),
        ..Default::default()
    };
    sim.phone_send(FRIEND, &Jid::pn(ME), msg).await.unwrap();
    let line = wait_line(&mut rx, "are you there?").await;
    assert!(line.contains("<-") && line.contains(FRIEND), "{line}");
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_baileys_takes_over_the_credentials_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("imported.db");
    let folder =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../wa-store/tests/vectors/baileys_auth");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_wa"))
            .arg("import-baileys")
            .arg(&folder)
            .arg("--store")
            .arg(&db)
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("imported 15550001111:7@s.whatsapp.net"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "3 pre-keys, 1 app-state keys, 1 LID mappings, 1 sessions, 0 identity keys, \
             2 sender keys, 1 sender-key memories, 1 app-state versions"
        ),
        "{stdout}"
    );
    let backend = SqliteBackend::open(&db).await.unwrap();
    let store = AccountStore::new(Arc::new(backend), AccountId::new("default").unwrap());
    let creds = wa_store::CredsStore::load_creds(&store)
        .await
        .unwrap()
        .expect("creds");
    assert_eq!(creds.push_name.as_deref(), Some("Ann"));
    // The collection version came over as the app-state layer keeps it: the next patch
    // Baileys would have applied verifies against it (LTHash, snapshot and patch MACs).
    let want: serde_json::Value = serde_json::from_slice(
        &std::fs::read(folder.with_file_name("baileys_auth_expect.json")).unwrap(),
    )
    .unwrap();
    let next = &want["appState"]["nextPatch"];
    let stored = wa_store::AppStateStore::get_app_state_version(&store, "regular_high")
        .await
        .unwrap()
        .expect("version");
    let mut state = wa_appstate::HashState::from_bytes(&stored).unwrap();
    assert_eq!(state.version, 2);
    assert_eq!(state.recompute_hash(), state.hash);
    let patch = <wa_proto::server_sync::SyncdPatch as prost::Message>::decode(
        hex::decode(next["patch"].as_str().unwrap())
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let keys: std::collections::HashMap<Vec<u8>, Vec<u8>> =
        [(vec![0, 0, 0, 0, 0, 1], vec![9; 32])].into();
    let decoded = wa_appstate::decode_patch(
        "regular_high",
        &patch,
        &mut state,
        &keys,
        &wa_appstate::DecodeOptions::default(),
    )
    .unwrap();
    assert_eq!(decoded.version, next["version"].as_u64().unwrap());
    assert_eq!(state.version, 3);
    drop(store);
    // A second import into the same database is refused.
    let again = run();
    assert!(!again.status.success());
}
