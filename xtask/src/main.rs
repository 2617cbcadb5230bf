//! Project automation, run as `cargo xtask <command>`.
//!
//! - `cargo xtask test`: the whole test suite (what README.md and CI call). The PostgreSQL
//!   store tests use `WA_TEST_POSTGRES_URL` when set; otherwise a throwaway cluster is
//!   started under `target/pg-test/` when the PostgreSQL server binaries are installed;
//!   otherwise they are skipped with a note (under CI, `CI` set, that is a failure).
//! - `cargo xtask proto [--check]`: regenerate `crates/wa-proto/src/generated/` from
//!   `proto/`, or fail if the committed code is stale.
//! - `cargo xtask ci`: formatting, lints, generated-code freshness, then the tests.
//! - `cargo xtask load [--accounts N --rate R --secs S ...]`: the load tool
//!   (`wa-load run`, release build): wa-sim and N linked accounts in one process, messages
//!   between them at a given rate.
//! - `cargo xtask soak [--postgres] [--debug]`: the soak test with faults (`SOAK_ACCOUNTS`,
//!   `SOAK_SECS`, `SOAK_RATE` size it), release build unless `--debug`. Its store is
//!   SQLite; with `--postgres`, a database on the server of `WA_TEST_POSTGRES_URL` or of
//!   a throwaway cluster, as for the tests.

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
        Some("load") => load(&args[1..]),
        Some("soak") => soak(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|proto [--check]|ci|load [ARGS]|soak [--postgres] \
                 [--debug]>"
            );
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

/// `wa-load run` in release mode, with defaults for whatever is not given.
fn load(args: &[String]) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "wa-load", "--", "run"]);
    for (name, default) in [("--accounts", "20"), ("--rate", "1000"), ("--secs", "10")] {
        if !args.iter().any(|a| a == name) {
            cmd.args([name, default]);
        }
    }
    cmd.args(args);
    run(&mut cmd)
}

/// The soak test (ignored in the normal run), in release mode unless `--debug`; on
/// PostgreSQL with `--postgres`.
fn soak(args: &[String]) -> Result<(), String> {
    if let Some(other) = args.iter().find(|a| *a != "--postgres" && *a != "--debug") {
        return Err(format!("soak: unknown argument {other}"));
    }
    let _cluster; // stops the throwaway server when the soak is done
    let mut cmd = cargo();
    cmd.args(["test", "-p", "wa-load", "--test", "soak"]);
    if !args.iter().any(|a| a == "--debug") {
        cmd.arg("--release");
    }
    cmd.args(["--", "--ignored", "--nocapture"]);
    if args.iter().any(|a| a == "--postgres") {
        let (url, cluster) = postgres_server()?;
        let Some(url) = url else {
            return Err("soak --postgres: no PostgreSQL server: install postgresql \
                 (apt-get install postgresql) or set WA_TEST_POSTGRES_URL"
                .into());
        };
        _cluster = cluster;
        cmd.env("SOAK_POSTGRES_URL", url);
    } else {
        cmd.env_remove("SOAK_POSTGRES_URL");
    }
    run(&mut cmd)
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
    // `_cluster` stops the throwaway server when the tests are done.
    let (pg_url, _cluster) = postgres_server()?;
    if pg_url.is_none() {
        if std::env::var_os("CI").is_some() {
            return Err("CI is set but no PostgreSQL server is available: install \
                 postgresql (apt-get install postgresql) or set WA_TEST_POSTGRES_URL"
                .into());
        }
        eprintln!(
            "xtask: PostgreSQL suite skipped: install postgresql (apt-get install \
             postgresql) or set WA_TEST_POSTGRES_URL"
        );
    }
    let with_pg = |cmd: &mut Command| {
        if let Some(url) = &pg_url {
            cmd.env("WA_TEST_POSTGRES_URL", url);
        }
    };
    let mut all = cargo();
    // Every test binary runs even after one fails, so a report names all failures.
    all.args(["test", "--workspace", "--all-targets", "--no-fail-fast"])
        .args(extra);
    with_pg(&mut all);
    run(&mut all)?;
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc"]);
    with_pg(&mut doc);
    run(&mut doc)
}

/// The PostgreSQL server to test on: `WA_TEST_POSTGRES_URL` when set, else a throwaway
/// cluster (returned, to be dropped when done) when the server binaries are installed,
/// else none.
fn postgres_server() -> Result<(Option<String>, Option<pg::Cluster>), String> {
    if let Some(url) = std::env::var("WA_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return Ok((Some(url), None));
    }
    Ok(match pg::Cluster::start(&root())? {
        Some(c) => (Some(c.url()), Some(c)),
        None => (None, None),
    })
}

/// A throwaway PostgreSQL cluster for the store tests.
mod pg {
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// A running cluster under `target/pg-test/`, stopped and deleted on drop.
    pub(crate) struct Cluster {
        dir: PathBuf,
        bin: PathBuf,
        user: Option<String>,
        port: u16,
    }

    /// The directory holding `initdb` and `pg_ctl`: from `PATH`, else the newest
    /// `/usr/lib/postgresql/<version>/bin` (where Debian puts them).
    fn find_bin() -> Option<PathBuf> {
        if let Some(paths) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&paths) {
                if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                    return Some(dir);
                }
            }
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| {
                let e = e.ok()?;
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((v, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, b)| b)
    }

    fn is_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    }

    fn user_exists(name: &str) -> bool {
        Command::new("id")
            .arg("-u")
            .arg(name)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// initdb refuses to run as root: pick (or create) an unprivileged user.
    fn server_user() -> Result<Option<String>, String> {
        if !is_root() {
            return Ok(None);
        }
        for name in ["postgres", "wa-pgtest"] {
            if user_exists(name) {
                return Ok(Some(name.to_owned()));
            }
        }
        super::run(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "wa-pgtest",
        ]))?;
        Ok(Some("wa-pgtest".to_owned()))
    }

    fn free_port() -> Result<u16, String> {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
        l.local_addr()
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))
    }

    impl Cluster {
        /// Starts a fresh cluster, or `None` when PostgreSQL is not installed.
        pub(crate) fn start(root: &Path) -> Result<Option<Self>, String> {
            let Some(bin) = find_bin() else {
                return Ok(None);
            };
            let user = server_user()?;
            let dir = root.join("target").join("pg-test");
            let data = dir.join("data");
            if data.join("postmaster.pid").exists() {
                // A previous run was interrupted: stop its server before wiping it.
                let mut stop = Command::new(bin.join("pg_ctl"));
                stop.arg("-D").arg(&data).args(["-m", "immediate", "stop"]);
                let _ = as_user(&user, stop).status();
            }
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| format!("create {dir:?}: {e}"))?;
            if let Some(u) = &user {
                super::run(Command::new("chown").arg("-R").arg(u).arg(&dir))?;
            }
            let port = free_port()?;
            let cluster = Self {
                dir: dir.clone(),
                bin: bin.clone(),
                user: user.clone(),
                port,
            };
            let mut initdb = Command::new(bin.join("initdb"));
            initdb.arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]);
            super::run(&mut as_user(&user, initdb))?;
            let mut start = Command::new(bin.join("pg_ctl"));
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .arg("-w")
                .arg("-o")
                .arg(format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 \
                     -c fsync=off",
                    dir.display()
                ))
                .arg("start");
            super::run(&mut as_user(&user, start))?;
            eprintln!(
                "xtask: throwaway PostgreSQL on 127.0.0.1:{port} ({})",
                dir.display()
            );
            Ok(Some(cluster))
        }

        /// The URL the tests connect to.
        pub(crate) fn url(&self) -> String {
            format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
        }
    }

    fn as_user(user: &Option<String>, cmd: Command) -> Command {
        match user {
            None => cmd,
            Some(u) => {
                let mut r = Command::new("runuser");
                r.arg("-u").arg(u).arg("--").arg(cmd.get_program());
                r.args(cmd.get_args());
                r
            }
        }
    }

    impl Drop for Cluster {
        fn drop(&mut self) {
            let mut stop = Command::new(self.bin.join("pg_ctl"));
            stop.arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "fast", "-w", "stop"]);
            let _ = as_user(&self.user, stop).status();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
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
