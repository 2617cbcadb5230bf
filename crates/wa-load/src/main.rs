//! `wa-load`: many accounts in one process against wa-sim.
//!
//! ```text
//! wa-load idle --server http://127.0.0.1:5222 --accounts N --db FILE
//!              [--handshakes 64] [--hold SECS]
//! wa-load run  --accounts N --rate MSGS_PER_SEC --secs S [--db FILE] [--in-flight K]
//!              [--group-every K]
//! ```

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool"
)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wa::{AccountId, Fleet, FleetConfig, SqliteBackend};
use wa_load::{
    Admin, Drive, Error, Traffic, account_of, drive, make_groups, phone_of, rss_kib, settle,
    spawn_receiver, start_and_link,
};

const USAGE: &str = "usage:
  wa-load idle --server http://127.0.0.1:5222 --accounts N --db FILE [--handshakes 64] [--hold SECS]
      links (first run) or logs in (later runs) N accounts of a wa-sim running in another
      process, holds them idle, and reports the process's resident memory per account
  wa-load run --accounts N --rate MSGS_PER_SEC --secs S [--db FILE] [--in-flight K]
              [--group-every K]
      starts wa-sim in this process, links N accounts and sends messages between them;
      with --group-every K, N/4 groups of four are made and one message in K goes to one";

struct Args(Vec<(String, String)>);

impl Args {
    fn parse(raw: impl Iterator<Item = String>) -> Result<(String, Args), Error> {
        let mut raw = raw.peekable();
        let cmd = raw.next().ok_or_else(|| Error::Usage(USAGE.into()))?;
        let mut opts = Vec::new();
        while let Some(a) = raw.next() {
            let name = a
                .strip_prefix("--")
                .ok_or_else(|| Error::Usage(format!("unexpected {a}\n{USAGE}")))?;
            let v = raw
                .next()
                .ok_or_else(|| Error::Usage(format!("--{name} needs a value")))?;
            opts.push((name.to_owned(), v));
        }
        Ok((cmd, Args(opts)))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: Option<T>) -> Result<T, Error> {
        match self.get(name) {
            Some(v) => v
                .parse()
                .map_err(|_| Error::Usage(format!("--{name}: not a number: {v}"))),
            None => default.ok_or_else(|| Error::Usage(format!("--{name} is required\n{USAGE}"))),
        }
    }
}

fn main() -> ExitCode {
    let (cmd, args) = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cmd.as_str() {
            "idle" => idle(&args).await,
            "run" => run(&args).await,
            _ => Err(Error::Usage(USAGE.into())),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wa-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn accounts(n: usize) -> Vec<(AccountId, String)> {
    (0..n).map(|i| (account_of(i), phone_of(i))).collect()
}

fn progress_printer() -> impl FnMut(usize, usize) {
    let started = Instant::now();
    let mut last = Instant::now();
    move |open, total| {
        if last.elapsed() >= Duration::from_secs(10) || open == total {
            last = Instant::now();
            let (rss, _) = rss_kib();
            eprintln!(
                "{:>6.1}s  {open}/{total} open  rss {} MiB",
                started.elapsed().as_secs_f64(),
                rss / 1024
            );
        }
    }
}

async fn idle(args: &Args) -> Result<(), Error> {
    let admin = Admin::new(args.get("server").unwrap_or("http://127.0.0.1:5222"))?;
    let n: usize = args.num("accounts", None)?;
    let db = args
        .get("db")
        .ok_or_else(|| Error::Usage(format!("--db is required\n{USAGE}")))?;
    let handshakes: usize = args.num("handshakes", Some(64))?;
    let hold: u64 = args.num("hold", Some(70))?;
    let root = admin.root_public_key().await?;
    let ws_url = admin.ws_url();

    let backend = Arc::new(SqliteBackend::open(db).await.map_err(wa::Error::from)?);
    let (base_rss, _) = rss_kib();
    let mut config = FleetConfig::with_configure(move |_, c| {
        c.socket.ws_url = ws_url.clone();
        c.socket.noise_root = root;
        c.socket.initial_pre_keys = 30;
    });
    config.max_handshakes = handshakes;
    let fleet = Fleet::new(backend, config);
    let scanner = admin.clone();
    let started = Instant::now();
    let linked = start_and_link(
        &fleet,
        &accounts(n),
        move |phone, qr| {
            let admin = scanner.clone();
            async move {
                // A new account is created on the first run; later runs find it.
                let _ = admin.post("add-account", &json!({ "phone": phone })).await;
                admin
                    .post("scan", &json!({ "phone": phone, "qr": qr }))
                    .await
                    .map(drop)
            }
        },
        32,
        Duration::from_secs(3600),
        progress_printer(),
    )
    .await?;
    let up = started.elapsed();
    let (open_rss, open_hwm) = rss_kib();
    println!(
        "all {n} accounts open in {:.1}s ({linked} linked by QR now, {} from the store)",
        up.as_secs_f64(),
        n - linked
    );
    println!(
        "rss at open: {open_rss} KiB (peak so far {open_hwm} KiB, before start {base_rss} KiB)"
    );
    let held = Instant::now();
    let mut min_open = n;
    while held.elapsed() < Duration::from_secs(hold) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        min_open = min_open.min(fleet.open_count());
    }
    let (rss, hwm) = rss_kib();
    let per = |kib: u64| kib.saturating_sub(base_rss) as f64 / n.max(1) as f64;
    println!(
        "after {hold}s idle: {} of {n} open (lowest seen {min_open}); rss {rss} KiB, peak {hwm} KiB",
        fleet.open_count()
    );
    println!(
        "per account: {:.1} KiB resident idle, {:.1} KiB at peak (baseline {base_rss} KiB excluded)",
        per(rss),
        per(hwm)
    );
    fleet.shutdown().await;
    Ok(())
}

async fn run(args: &Args) -> Result<(), Error> {
    let n: usize = args.num("accounts", None)?;
    let rate: f64 = args.num("rate", None)?;
    let secs: u64 = args.num("secs", None)?;
    let in_flight: usize = args.num("in-flight", Some(256))?;
    let group_every: u64 = args.num("group-every", Some(0))?;
    if n < 2 {
        return Err(Error::Usage("--accounts must be at least 2".into()));
    }
    let sim = Arc::new(
        wa_sim::Sim::start(wa_sim::SimConfig::default())
            .await
            .map_err(|e| Error::Usage(format!("wa-sim: {e}")))?,
    );
    for i in 0..n {
        sim.add_account(&phone_of(i)).await;
    }
    let backend: Arc<dyn wa::Backend> = match args.get("db") {
        Some(db) => Arc::new(SqliteBackend::open(db).await.map_err(wa::Error::from)?),
        None => Arc::new(wa::MemoryBackend::new()),
    };
    let (ws_url, root) = (sim.ws_url(), sim.root_public_key());
    let mut config = FleetConfig::with_configure(move |_, c| {
        c.socket.ws_url = ws_url.clone();
        c.socket.noise_root = root;
        c.socket.initial_pre_keys = 30;
    });
    config.fleet_event_capacity = 1 << 16;
    // Busy accounts: a bus deep enough that the fleet's forwarder never falls behind.
    config.event_capacity = 1024;
    let fleet = Fleet::new(backend, config);
    let scan_sim = sim.clone();
    let started = Instant::now();
    start_and_link(
        &fleet,
        &accounts(n),
        move |phone, qr| {
            let sim = scan_sim.clone();
            async move {
                sim.scan_qr(&phone, &qr)
                    .await
                    .map(drop)
                    .map_err(|e| Error::Admin {
                        command: "scan".into(),
                        message: e.to_string(),
                    })
            }
        },
        16,
        Duration::from_secs(600),
        progress_printer(),
    )
    .await?;
    println!(
        "{n} accounts linked in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let groups = if group_every > 0 {
        let groups = make_groups(&fleet, n).await?;
        println!("{} groups made", groups.len());
        groups
    } else {
        Vec::new()
    };
    let traffic = Arc::new(Traffic::new());
    let receiver = spawn_receiver(&fleet, traffic.clone());
    let sending = Instant::now();
    let failures = drive(
        &fleet,
        n,
        &Drive {
            rate,
            duration: Duration::from_secs(secs),
            in_flight,
            groups,
            group_every,
        },
        &traffic,
    )
    .await;
    let sent_for = sending.elapsed();
    let left = settle(&traffic, Duration::from_secs(60)).await;
    let all_in = sending.elapsed();
    let r = traffic.report();
    println!(
        "sent {} in {:.1}s ({:.0}/s asked, {:.0}/s achieved), {failures} send errors",
        r.sent,
        sent_for.as_secs_f64(),
        rate,
        r.sent as f64 / sent_for.as_secs_f64()
    );
    println!(
        "delivered {} ({:.0}/s until the last arrived), lost {}, duplicated {}, misrouted {}, outstanding {left}",
        r.delivered,
        r.delivered as f64 / all_in.as_secs_f64(),
        r.lost,
        r.duplicated,
        r.misrouted
    );
    println!("latency p50 {:?}, p99 {:?}", r.p50, r.p99);
    fleet.shutdown().await;
    receiver.abort();
    if r.lost > 0 || r.duplicated > 0 || r.misrouted > 0 {
        return Err(Error::Usage(
            "messages were lost, duplicated or misrouted".into(),
        ));
    }
    Ok(())
}
