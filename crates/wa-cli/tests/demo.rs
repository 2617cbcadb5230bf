//! `wa demo` runs the whole stack against the in-process simulator: two accounts talk one
//! to one, in a group and with a picture, and one restarts from SQLite.

use std::process::Command;

#[test]
fn demo_runs_a_conversation_between_two_accounts() {
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
        "+15550000001 scanned the QR code: 15550000001:",
        "closed: restart required (515), reconnecting",
        "open: logged in for the first time",
        "bob     open: logged in for the first time",
        "-> bob: \"Hi Bob! Lunch today?\"",
        "bob     <- 15550000001:",
        "alice   delivered to 15550000002",
        "alice   read by 15550000002:",
        "<- bob: \"Sure, 12:30 at the usual place\" (replying to 3EB0",
        "<- alice reacted",
        "Alice's phone decrypted 2 of those messages too",
        "created group \"Lunch club\"",
        "\"Welcome to the lunch club!\"",
        "Carol's phone decrypted the group message",
        "<- carol in the group: \"Count me in! (from Carol's phone)\"",
        "-> group: poll \"What time?\"",
        "bob     -> group: votes \"12:30\"",
        "alice   <- 15550000002@s.whatsapp.net voted [\"12:30\"] on poll 3EB0",
        "-> bob: picture (",
        "<- picture \"Today's menu\": downloaded",
        "MAC and hashes verified",
        "starting again from the stored credentials",
        "alice   open: logged in",
        "bob     <- alice: \"Back online, see you at 12:30\"",
        "alice   <- bob: \"See you!\"",
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
