//! Ledger benchmark, printed side by side in one run:
//! - durable appends/s at batch sizes 1, 64 and 1024 with 256-byte entries,
//!   next to a plain file write + fdatasync at the same batch sizes;
//! - durable appends/s of entries carrying a 1 KiB payload, one entry per
//!   call, from 1 thread and from 64 concurrent threads (next to the same
//!   entries without payload);
//! - offline verification of an exported bundle (entries/s) next to plain
//!   SHA-256 over the same bytes;
//! - inclusion proof time at 1,000,000 entries (from the sled store);
//! - bytes on disk per entry: every file and directory under the ledger's
//!   directory (allocated blocks), measured after the ledger is closed.
//!
//! `cargo bench -p vigil-ledger --bench ledger`. `VIGIL_BENCH_ENTRIES`
//! changes the size of the big ledger (default 1,000,000; 5,000 in the quick
//! smoke run that `cargo test --all-targets` makes); `VIGIL_BENCH_BATCH` the
//! batch size it is built with (default 1024).

/// mimalloc: the allocator of every vigil binary and benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use vigil_crypto::SigningKey;
use vigil_ledger::bundle::{export, verify_bundle, ExportOptions};
use vigil_ledger::{Ledger, NewEntry};

const ENTRY_BYTES: usize = 256;

/// An entry whose canonical encoding is exactly 256 bytes.
fn entry(i: u64) -> NewEntry {
    let base = NewEntry::new("tool.call", "agent:bench", "tool:echo", "allow");
    // Fixed fields: 1+8+8+32 + (1+9) + (2+11) + (2+9) + (1+5) + 4 + 1 = 94 bytes
    // plus details `{"i":NNNNNNNNNN,"p":"..."}`.
    let prefix = format!("{{\"i\":\"{i:010}\",\"p\":\"");
    let fill = ENTRY_BYTES - 94 - prefix.len() - 2;
    base.details(serde_json::from_str(&format!("{prefix}{}\"}}", "x".repeat(fill))).expect("json"))
}

/// Allocated bytes of `dir` and everything under it.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = std::fs::symlink_metadata(dir)
        .map(|m| m.blocks() * 512)
        .unwrap_or(0);
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => total += disk_bytes(&p),
                Ok(m) => total += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Rounds of [`bench_appends`]: each round's batches are built before its
/// clock starts.
const ROUNDS: usize = 4;

/// Durable appends/s of the ledger and of a plain appending file write +
/// fdatasync, `batches` batches of `batch` entries each (built before the
/// clock starts). Each ledger batch is followed by one file batch, so that
/// both see the same moments of a busy machine.
fn bench_appends(batch: usize, batches: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).expect("open");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("baseline"))
        .expect("baseline file");
    let buf = vec![0x5au8; ENTRY_BYTES * batch];
    let per_round = batches.div_ceil(ROUNDS);
    let mut i = 0u64;
    let (mut ledger_time, mut file_time) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..ROUNDS {
        let prepared: Vec<Vec<NewEntry>> = (0..per_round)
            .map(|_| {
                (0..batch)
                    .map(|_| {
                        i += 1;
                        entry(i)
                    })
                    .collect()
            })
            .collect();
        for entries in prepared {
            let start = Instant::now();
            ledger.append_batch(entries).expect("append");
            ledger_time += start.elapsed();
            let start = Instant::now();
            f.write_all(&buf).expect("write");
            f.sync_data().expect("fdatasync");
            file_time += start.elapsed();
        }
    }
    let n = (batch * per_round * ROUNDS) as u64;
    assert_eq!(
        ledger
            .entry(0)
            .expect("read")
            .expect("entry")
            .encode()
            .len(),
        ENTRY_BYTES
    );
    (per_sec(n, ledger_time), per_sec(n, file_time))
}

/// p50 latency of one durable single-entry append (the entry built before
/// the clock starts) next to the p50 of one 256-byte appending write +
/// fdatasync, `n` of each, alternating.
fn single_entry_p50(n: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).expect("open");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("baseline"))
        .expect("baseline file");
    let buf = vec![0x5au8; ENTRY_BYTES];
    let mut ledger_times = Vec::with_capacity(n);
    let mut file_times = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let e = entry(i);
        let start = Instant::now();
        ledger.append(e).expect("append");
        ledger_times.push(start.elapsed());
        let start = Instant::now();
        f.write_all(&buf).expect("write");
        f.sync_data().expect("fdatasync");
        file_times.push(start.elapsed());
    }
    ledger_times.sort_unstable();
    file_times.sort_unstable();
    (ledger_times[n / 2], file_times[n / 2])
}

/// Bytes on disk per entry of a ledger of `n` entries appended one at a
/// time, measured after a checkpoint and close, as a ratio to the raw bytes.
fn disk_at_batch_1(n: u64) -> (u64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).expect("open");
    for i in 0..n {
        ledger.append(entry(i)).expect("append");
    }
    ledger
        .checkpoint(&SigningKey::generate(), "bench.example/ledger")
        .expect("checkpoint");
    drop(ledger);
    (disk_bytes(dir.path()), journal_bytes(dir.path()))
}

/// Allocated bytes of the commit journal: a scratch file of fixed size
/// (reused lap after lap), whatever the ledger's size.
fn journal_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(dir.join("payloads/journal"))
        .map(|m| m.blocks() * 512)
        .unwrap_or(0)
}

/// Prints bytes on disk per entry for `n` entries, with and without the
/// fixed-size journal.
fn print_disk(what: &str, n: u64, on_disk: u64, journal: u64, target: &str) {
    let raw = (n * ENTRY_BYTES as u64) as f64;
    let rest = on_disk.saturating_sub(journal);
    println!(
        "== disk {what}: {n} entries: {:.1} bytes/entry ({:.2}x the {ENTRY_BYTES} raw entry bytes{target}); \
         of that the commit journal, a fixed {:.1} MiB scratch file whatever the ledger's size: \
         without it {:.1} bytes/entry ({:.2}x)",
        on_disk as f64 / n as f64,
        on_disk as f64 / raw,
        journal as f64 / (1 << 20) as f64,
        rest as f64 / n as f64,
        rest as f64 / raw,
    );
}

const PAYLOAD_BYTES: usize = 1024;

/// Appends/s of single-entry calls from `threads` threads, `calls` calls in
/// all, each entry carrying a fresh random-looking 1 KiB payload when
/// `payload` is set. Reads a sample of the payloads back after reopening.
fn bench_payload_appends(threads: usize, calls: usize, payload: bool) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).expect("open");
    let per_thread = calls.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let ledger = ledger.clone();
            s.spawn(move || {
                for i in 0..per_thread {
                    let n = (t * per_thread + i) as u64;
                    let mut e = entry(n);
                    if payload {
                        e = e.payload(payload_bytes(n));
                    }
                    ledger.append(e).expect("append");
                }
            });
        }
    });
    let rate = per_sec((per_thread * threads) as u64, start.elapsed());
    drop(ledger);
    if payload {
        let ledger = Ledger::open(dir.path()).expect("reopen");
        for i in (0..ledger.size()).step_by(97) {
            let e = ledger.entry(i).expect("read").expect("entry");
            let p = ledger.payload_of(&e).expect("payload").expect("stored");
            assert_eq!(p.data.len(), PAYLOAD_BYTES);
        }
    }
    rate
}

fn payload_bytes(n: u64) -> Vec<u8> {
    let mut x = n.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    (0..PAYLOAD_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("ledger: bench");
        return;
    }
    // `cargo test --all-targets` runs this binary without `--bench`: keep
    // that a quick smoke run so CI stays fast; `cargo bench` measures fully.
    let quick = !std::env::args().any(|a| a == "--bench");
    let big: u64 = std::env::var("VIGIL_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 5_000 } else { 1_000_000 });
    let rounds = if quick { 5 } else { 1 };

    println!("== durable appends, {ENTRY_BYTES}-byte entries (vigil ledger vs plain file write+fdatasync)");
    println!(
        "{:>8} {:>16} {:>16} {:>8}",
        "batch", "ledger/s", "file/s", "ratio"
    );
    // Quick mode: a twentieth of the batches.
    let scale = if quick { 20 } else { 1 };
    for (batch, batches) in [(1usize, 3000usize), (64, 400), (1024, 240)] {
        let (l, f) = bench_appends(batch, (batches / scale).max(ROUNDS));
        println!("{batch:>8} {l:>16.0} {f:>16.0} {:>8.2}", l / f);
    }

    let (ledger_p50, fsync_p50) = single_entry_p50(if quick { 50 } else { 3000 });
    println!(
        "\n== one durable entry, p50: {:.3} ms; one {ENTRY_BYTES}-byte write + fdatasync, p50: {:.3} ms; ratio {:.2} (target <= 1.5)",
        ledger_p50.as_secs_f64() * 1e3,
        fsync_p50.as_secs_f64() * 1e3,
        ledger_p50.as_secs_f64() / fsync_p50.as_secs_f64()
    );
    let small: u64 = if quick { 500 } else { 200_000 };
    let (on_disk, journal) = disk_at_batch_1(small);
    print_disk(
        "at batch 1 (appended one at a time)",
        small,
        on_disk,
        journal,
        "; target <= 1.5",
    );

    println!("\n== durable single-entry appends/s with a {PAYLOAD_BYTES}-byte payload per entry");
    println!(
        "{:>8} {:>16} {:>16} {:>8}",
        "threads", "with payload/s", "without/s", "ratio"
    );
    for (threads, calls) in [(1usize, 300usize), (64, 6400)] {
        let calls = (calls / rounds).max(threads * 2);
        let with = bench_payload_appends(threads, calls, true);
        let without = bench_payload_appends(threads, calls, false);
        println!(
            "{threads:>8} {with:>16.0} {without:>16.0} {:>8.2}",
            with / without
        );
    }

    let big_batch: u64 = std::env::var("VIGIL_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|b| *b > 0)
        .unwrap_or(1024);
    println!("\n== building a ledger of {big} entries (batches of {big_batch})");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate();
    let ledger = Ledger::open(dir.path()).expect("open");
    let start = Instant::now();
    let mut i = 0u64;
    while i < big {
        let n = (big - i).min(big_batch);
        ledger
            .append_batch((i..i + n).map(entry).collect())
            .expect("append");
        i += n;
    }
    ledger
        .checkpoint(&key, "bench.example/ledger")
        .expect("checkpoint");
    println!(
        "built in {:.1} s ({:.0} entries/s)",
        start.elapsed().as_secs_f64(),
        per_sec(big, start.elapsed())
    );

    // Close the ledger (sled flushes and drops its files) before measuring,
    // then reopen it for the proofs and the export.
    drop(ledger);
    println!();
    print_disk(
        "after close (batch 1024)",
        big,
        disk_bytes(dir.path()),
        journal_bytes(dir.path()),
        "; target <= 1.5",
    );
    let start = Instant::now();
    let ledger = Ledger::open(dir.path()).expect("reopen");
    assert_eq!(ledger.size(), big);
    println!("reopened in {:.1} ms", start.elapsed().as_secs_f64() * 1e3);

    println!("\n== inclusion proofs at {big} entries (from the sled store)");
    let samples = 2000u64;
    let mut rng_state = 0x9e3779b97f4a7c15u64;
    let start = Instant::now();
    for _ in 0..samples {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        let idx = rng_state % big;
        let p = ledger.inclusion_proof(idx, big).expect("proof");
        assert!(!p.is_empty());
    }
    let per = start.elapsed() / samples as u32;
    println!(
        "{samples} random proofs: {:.1} µs per proof",
        per.as_secs_f64() * 1e6
    );

    println!(
        "\n== offline verification of an exported bundle vs plain SHA-256 over the same bytes"
    );
    let mut bundle = Vec::with_capacity((big as usize) * (ENTRY_BYTES + 8));
    let start = Instant::now();
    export(
        &ledger,
        key.public_key(),
        &mut bundle,
        &ExportOptions::default(),
        &mut |_, _| {},
    )
    .expect("export");
    println!(
        "export: {:.2} s, {} bytes",
        start.elapsed().as_secs_f64(),
        bundle.len()
    );
    let start = Instant::now();
    let report = verify_bundle(&bundle[..], key.public_key()).expect("verify");
    let verify = start.elapsed();
    let start = Instant::now();
    let digest = Sha256::digest(&bundle);
    let sha = start.elapsed();
    std::hint::black_box(digest);
    println!("{:>14} {:>16} {:>16}", "", "entries/s", "MB/s");
    println!(
        "{:>14} {:>16.0} {:>16.1}",
        "vigil-verify",
        per_sec(report.entries, verify),
        bundle.len() as f64 / verify.as_secs_f64() / 1e6
    );
    println!(
        "{:>14} {:>16.0} {:>16.1}",
        "plain SHA-256",
        per_sec(report.entries, sha),
        bundle.len() as f64 / sha.as_secs_f64() / 1e6
    );
    println!(
        "ratio (verify / SHA-256): {:.2}",
        sha.as_secs_f64() / verify.as_secs_f64()
    );
}
