//! The `wa-sim` binary: `serve` prints the URL and root key; the admin commands drive it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wa-sim"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_then_admin_commands() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wa-sim"))
        .args(["serve", "--addr", "127.0.0.1:0", "--account", "15551230000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut url = None;
    let mut root = None;
    let mut admin = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("url ") {
            url = Some(u.to_owned());
        } else if let Some(r) = line.strip_prefix("root-public-key ") {
            root = Some(r.to_owned());
        } else if let Some(a) = line.strip_prefix("admin ") {
            admin = Some(a.trim_end_matches("/admin/").to_owned());
        }
        if url.is_some() && root.is_some() && admin.is_some() {
            break;
        }
    }
    let (url, root, admin) = (url.unwrap(), root.unwrap(), admin.unwrap());
    assert!(
        url.starts_with("ws://127.0.0.1:") && url.ends_with("/ws/chat"),
        "{url}"
    );
    assert_eq!(hex::decode(&root).unwrap().len(), 32);

    let (ok, out, _) = run(&["devices", "15551230000", "--server", &admin]);
    assert!(ok);
    assert!(out.contains("\"devices\":[]"), "{out}");
    let (ok, out, _) = run(&["add-account", "15551239999", "--server", &admin]);
    assert!(ok, "{out}");
    assert!(out.contains("15551239999@s.whatsapp.net"), "{out}");
    // A QR nobody showed is refused.
    let (ok, _, err) = run(&[
        "scan",
        "15551239999",
        "2@x,AA==,AA==,AA==,1",
        "--server",
        &admin,
    ]);
    assert!(!ok);
    assert!(err.contains("422"), "{err}");
    let (ok, _, err) = run(&["pair-code", "15551239999", "ABCD-EFGH", "--server", &admin]);
    assert!(!ok);
    assert!(err.contains("no pending"), "{err}");
    let (ok, out, _) = run(&["fault", "ignore_pings", "--server", &admin]);
    assert!(ok);
    assert!(out.contains("\"connections\":0"), "{out}");
    let (ok, out, _) = run(&[
        "fault",
        "restart",
        "--phone",
        "15551230000",
        "--device",
        "1",
        "--server",
        &admin,
    ]);
    assert!(ok, "{out}");
    let (ok, _, err) = run(&["fault", "explode", "--server", &admin]);
    assert!(!ok);
    assert!(err.contains("unknown fault kind"), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_usage_exits_non_zero() {
    let (ok, _, err) = run(&["frobnicate"]);
    assert!(!ok);
    assert!(err.contains("usage"), "{err}");
}

#[test]
fn serve_keeps_state_in_a_file() {
    let path = std::env::temp_dir().join(format!("wa-sim-state-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let start = |path: &std::path::Path| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wa-sim"))
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--state",
                path.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut root = String::new();
        let mut admin = String::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(r) = line.strip_prefix("root-public-key ") {
                root = r.to_owned();
            } else if let Some(a) = line.strip_prefix("admin ") {
                admin = a.trim_end_matches("/admin/").to_owned();
            } else if line.starts_with("state ") {
                break;
            }
        }
        (child, root, admin)
    };
    let (mut child, root, admin) = start(&path);
    let (ok, _, _) = run(&["add-account", "15557770000", "--server", &admin]);
    assert!(ok);
    // The server saves every 2 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&path)
        .unwrap_or_default()
        .contains("15557770000")
    {
        assert!(std::time::Instant::now() < deadline, "state never saved");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, root2, admin) = start(&path);
    assert_eq!(root, root2, "the root key survives a restart");
    let (ok, out, _) = run(&["devices", "15557770000", "--server", &admin]);
    assert!(ok, "the account survives a restart: {out}");
    let (ok, _, err) = run(&["devices", "15550000001", "--server", &admin]);
    assert!(!ok && err.contains("unknown account"), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_file(&path);
}

#[test]
fn phones_message_each_other_through_the_admin_commands() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wa-sim"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--account",
            "15551110001",
            "--account",
            "15551110002",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut admin = String::new();
    // Kept open until the end: the server goes on printing.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if let Some(a) = line.unwrap().strip_prefix("admin ") {
            admin = a.trim_end_matches("/admin/").to_owned();
            break;
        }
    }
    let (ok, out, err) = run(&[
        "send",
        "15551110001",
        "15551110002",
        "hello",
        "--server",
        &admin,
    ]);
    assert!(ok, "{out} {err}");
    assert!(out.contains("\"id\":\"3EB0"), "{out}");
    let (ok, out, err) = run(&[
        "create-group",
        "15551110001",
        "Pair",
        "15551110002",
        "--server",
        &admin,
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let group = v["group"].as_str().unwrap().to_owned();
    assert!(group.ends_with("@g.us"), "{group}");
    let (ok, _, err) = run(&["send", "15551110001", &group, "to all", "--server", &admin]);
    assert!(ok, "{err}");
    // The other phone decrypts both (the worker runs in the background).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let inbox = loop {
        let (ok, out, _) = run(&["inbox", "15551110002", "--server", &admin]);
        assert!(ok);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        if v["messages"].as_array().is_some_and(|m| m.len() == 2) {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "inbox: {out}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let m = &inbox["messages"];
    assert_eq!(m[0]["text"], "hello");
    assert_eq!(m[0]["chat"], "15551110001@s.whatsapp.net");
    assert_eq!(m[1]["text"], "to all");
    assert_eq!(m[1]["chat"], group.as_str());
    let (ok, _, err) = run(&["send", "15551110001", "not a jid", "x", "--server", &admin]);
    assert!(!ok && err.contains("422"), "{err}");
    let (ok, out, _) = run(&[
        "fault",
        "drop_after_deliver",
        "--phone",
        "15551110002",
        "--device",
        "1",
        "--server",
        &admin,
    ]);
    assert!(ok, "{out}");
    child.kill().unwrap();
    child.wait().unwrap();
    drop(lines);
}
