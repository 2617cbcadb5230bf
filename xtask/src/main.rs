//! Project automation, run as `cargo xtask <command>`.
//!
//! - `cargo xtask test`: the whole test suite (what README.md and CI call).
//! - `cargo xtask proto [--check]`: regenerate `crates/wa-proto/src/generated/` from
//!   `proto/`, or fail if the committed code is stale.
//! - `cargo xtask ci`: formatting, lints, generated-code freshness, then the tests.

// A command-line tool: progress and errors go to stderr.
#![allow(clippy::print_stderr)]

mod proto;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("proto") => proto::proto(&root(), &args[1..]),
        Some("ci") => ci(),
        _ => {
            eprintln!("usage: cargo xtask <test|proto [--check]|ci>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Runs a command from the workspace root, failing on a non-zero exit.
fn run(cmd: &mut Command) -> Result<(), String> {
    cmd.current_dir(root());
    eprintln!("$ {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The whole test suite; extra arguments go to `cargo test`.
fn test(extra: &[String]) -> Result<(), String> {
    run(cargo()
        .args(["test", "--workspace", "--all-targets"])
        .args(extra))?;
    run(cargo().args(["test", "--workspace", "--doc"]))
}

/// Everything CI checks, in order, stopping at the first failure.
fn ci() -> Result<(), String> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    proto::proto(&root(), &["--check".to_string()])?;
    test(&[])
}
