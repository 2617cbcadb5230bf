//! wa-signal benchmarks.

fn main() {}
