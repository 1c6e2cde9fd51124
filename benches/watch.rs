//! The behavioural watch on the generated weeks of tests/behaviour_watch.rs
//! (included here): detection delay of each burst and false positives per
//! seed, then the detector's throughput in events (call starts and ends)
//! per second over two weeks of one agent's traffic.

/// mimalloc: the allocator of every vigil binary and benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[allow(dead_code)]
#[path = "../tests/behaviour_watch.rs"]
mod scenario;

use std::time::Instant;

use scenario::{events, feed, new_watch, report, run, two_weeks, SEEDS};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("== behavioural watch: generated weeks of the finance agent");
    let mut false_positives = 0;
    let mut delays = Vec::new();
    for seed in SEEDS.iter().copied().chain([0x5eed_0004, 0x5eed_0005]) {
        let run = run(seed);
        report(&run);
        false_positives += run.false_positive_count();
        for b in &run.bursts {
            delays.push((b.name, b.delay_ms));
        }
    }
    println!("false positives over all seeds: {false_positives}");
    for name in delays
        .iter()
        .map(|d| d.0)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let got: Vec<i64> = delays
            .iter()
            .filter(|d| d.0 == name)
            .filter_map(|d| d.1)
            .collect();
        let missed = delays
            .iter()
            .filter(|d| d.0 == name && d.1.is_none())
            .count();
        let max = got.iter().max().copied().unwrap_or(0);
        let mean = got.iter().sum::<i64>() as f64 / got.len().max(1) as f64;
        println!("{name}: detection delay mean {mean:.0} ms, max {max} ms, missed {missed}");
    }

    let (learning, normal) = two_weeks(SEEDS[0]);
    let mut all = learning;
    all.extend(normal);
    let stream = events(&all);
    let rounds = 5;
    let started = Instant::now();
    for _ in 0..rounds {
        let mut watch = new_watch();
        let (found, _) = feed(&mut watch, &stream, false);
        assert!(found.is_empty());
    }
    let secs = started.elapsed().as_secs_f64();
    let n = stream.len() * rounds;
    println!(
        "throughput: {n} events in {secs:.3} s = {:.2} M events/s ({:.0} ns per event)",
        n as f64 / secs / 1e6,
        secs * 1e9 / n as f64
    );
}
