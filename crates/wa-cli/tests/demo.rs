//! `wa demo` runs the whole stack against the in-process simulator and finishes.

use std::process::Command;

#[test]
fn demo_links_restarts_and_logs_in() {
    let out = Command::new(env!("CARGO_BIN_EXE_wa"))
        .arg("demo")
        .output()
        .expect("wa runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wa demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps = [
        "listening on ws://127.0.0.1:",
        "QR code ready",
        "scanned the QR code: linked device 15550000001:",
        "closed: restart required (515), reconnecting",
        "open: logged in for the first time",
        "uploaded 812 pre-keys",
        "starting again from the stored credentials",
        "open: logged in",
        "online: true",
        "done",
    ];
    let mut rest = stdout.as_ref();
    for step in steps {
        let at = rest
            .find(step)
            .unwrap_or_else(|| panic!("missing {step:?} in order:\n{stdout}"));
        rest = &rest[at + step.len()..];
    }
}

#[test]
fn unknown_command_prints_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_wa"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wa demo"));
}
