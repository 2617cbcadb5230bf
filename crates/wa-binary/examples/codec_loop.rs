//! Runs one benchmark workload in a loop, for CPU-time measurements that are
//! less sensitive to a busy machine than wall-clock benchmarks:
//!
//! ```text
//! cargo build --release -p wa-binary --example codec_loop
//! perf stat -e task-clock target/release/examples/codec_loop fanout decode 2000
//! ```
//!
//! Workloads: `fanout`, `usync` (1000 users), `usync:N` (N users),
//! `payload`; operations: `encode`, `decode`, `memcpy`. CPU time per
//! operation = (task-clock(iterations) - task-clock(0)) / iterations.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use bytes::Bytes;
use wa_binary::{decode, encode};

#[path = "../benches/common/mod.rs"]
mod common;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(workload), Some(op), Some(iters)) = (args.first(), args.get(1), args.get(2)) else {
        return usage();
    };
    let Ok(iters) = iters.parse::<u32>() else {
        return usage();
    };
    let node = match workload.split_once(':') {
        None if workload == "fanout" => common::fanout(256),
        None if workload == "usync" => common::usync(1000, 3),
        None if workload == "payload" => common::payload(64 << 10),
        Some(("usync", users)) => match users.parse::<usize>() {
            Ok(users) => common::usync(users, 3),
            Err(_) => return usage(),
        },
        _ => return usage(),
    };
    let frame = Bytes::from(encode(&node));
    let mut dst = vec![0u8; frame.len()];
    let start = Instant::now();
    for _ in 0..iters {
        match op.as_str() {
            "encode" => drop(black_box(encode(black_box(&node)))),
            "decode" => drop(black_box(decode(black_box(frame.clone())))),
            "memcpy" => {
                dst.copy_from_slice(black_box(&frame));
                black_box(&dst);
            }
            _ => return usage(),
        }
    }
    let per_op = start.elapsed().as_secs_f64() / f64::from(iters.max(1));
    let line = format!(
        "{workload} {op}: {} bytes, wall {:.2} us/op\n",
        frame.len(),
        per_op * 1e6
    );
    use std::io::Write;
    let _ = std::io::stderr().write_all(line.as_bytes());
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        b"usage: codec_loop <fanout|usync|usync:N|payload> <encode|decode|memcpy> <iterations>\n",
    );
    ExitCode::from(2)
}
