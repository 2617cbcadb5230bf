//! Crash safety: a child process commits a stream of multi-role batches and reports each
//! acknowledged one; the parent kills it with SIGKILL mid-stream, reopens the file and
//! checks that every acknowledged batch is there and no batch is there in part.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use wa_store::{AccountId, AccountStore, Batch, ContactStore, Role, SessionStore};
use wa_store_sqlite::{SqliteBackend, SqliteConfig};

const CHILD_ENV: &str = "WA_STORE_CRASH_CHILD_DB";

fn value(i: u32) -> Vec<u8> {
    // Large enough that one batch spans several database pages.
    format!("{i:08}").repeat(300).into_bytes()
}

fn open(path: &str) -> AccountStore {
    let backend = SqliteBackend::open_blocking(&SqliteConfig::new(path)).unwrap();
    AccountStore::new(Arc::new(backend), AccountId::new("crash").unwrap())
}

#[test]
#[ignore = "child process of crash_mid_stream_keeps_every_acknowledged_batch"]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    rt.block_on(async {
        let s = open(&path);
        let start = match s.get_contact("last").await.unwrap() {
            Some(v) => std::str::from_utf8(&v).unwrap().parse::<u32>().unwrap() + 1,
            None => 0,
        };
        let mut out = std::io::stdout().lock();
        for i in start.. {
            let v = value(i);
            let mut batch = Batch::new();
            batch
                .put_session("u", i, &v)
                .put_sender_key("g", &format!("{i:08}"), &v)
                .put_contact(&format!("c{i:08}"), &v)
                .put_contact("last", i.to_string().as_bytes());
            s.commit(batch).await.unwrap();
            writeln!(out, "ack {i}").unwrap();
            out.flush().unwrap();
        }
    });
}

async fn check(path: &str, acked: &BTreeSet<u32>) -> u32 {
    let s = open(path);
    let sessions: BTreeSet<u32> = s.session_devices("u").await.unwrap().into_iter().collect();
    let sender_keys: BTreeSet<u32> = s
        .backend()
        .list(s.account(), Role::SenderKey, "g")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k.parse().unwrap())
        .collect();
    let contacts: BTreeSet<u32> = s
        .contacts()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(k, _)| k.strip_prefix('c').map(|n| n.parse().unwrap()))
        .collect();
    assert_eq!(sessions, sender_keys, "a batch landed in part");
    assert_eq!(sessions, contacts, "a batch landed in part");
    for i in acked {
        assert!(sessions.contains(i), "acknowledged batch {i} lost");
    }
    for &i in &sessions {
        assert_eq!(s.get_session("u", i).await.unwrap().unwrap(), value(i));
    }
    let last: u32 = std::str::from_utf8(&s.get_contact("last").await.unwrap().unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        Some(&last),
        sessions.last(),
        "'last' disagrees with the batches"
    );
    // Batches are committed in order, so what is present is a prefix.
    assert_eq!(sessions.len() as u32, last + 1, "hole in the stream");
    last
}

#[tokio::test]
async fn crash_mid_stream_keeps_every_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let path = path.to_str().unwrap().to_owned();
    let exe = std::env::current_exe().unwrap();
    let mut acked = BTreeSet::new();
    for round in 0..3u32 {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let target = 40 + 17 * round as usize;
        let mut this_round = 0;
        while this_round < target {
            let line = lines.next().expect("child ended early").unwrap();
            if let Some(n) = line.strip_prefix("ack ") {
                acked.insert(n.parse::<u32>().unwrap());
                this_round += 1;
            }
        }
        // SIGKILL: no destructor, no flush, no SQLite shutdown.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
        // Acknowledgements already in the pipe count too.
        for line in lines {
            if let Some(n) = line.unwrap().strip_prefix("ack ") {
                acked.insert(n.parse::<u32>().unwrap());
            }
        }
        let last = check(&path, &acked).await;
        assert!(last >= *acked.last().unwrap());
    }
    assert!(acked.len() >= 40 + 57 + 74);
}
