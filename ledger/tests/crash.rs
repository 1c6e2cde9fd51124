//! Crash tests: a child process appends (or erases payloads) and prints
//! what was acknowledged; it is SIGKILLed at random moments, many times.
//! After each kill every acknowledged entry is present with its payload,
//! the ledger verifies, and the next child continues from the right index;
//! no payload is gone without its erasure on record, and none is kept once
//! its erasure is.
//!
//! A child is this test binary re-run with `--ignored --exact <child>` and
//! `VIGIL_CRASH_DIR` set.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};
use vigil_crypto::{keyfile, SigningKey};
use vigil_ledger::verify::verify_ledger;
use vigil_ledger::{Ledger, NewEntry};

const ORIGIN: &str = "crash.example/ledger";

/// Runs the child test `name` on `dir` and SIGKILLs it after a random
/// 150-600 ms; returns the complete lines it printed.
fn run_until_killed(name: &str, dir: &Path, rng: &mut rand::rngs::StdRng) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("VIGIL_CRASH_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        // Only complete lines count: a line cut by the kill was not printed.
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if line.ends_with('\n') {
                lines.push(line.trim_end().to_string());
            }
            line.clear();
        }
        lines
    });
    std::thread::sleep(Duration::from_millis(rng.gen_range(150..600)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

/// The child: appends forever from 4 threads, printing `ack N` per
/// acknowledged index, and signs a checkpoint now and then.
#[test]
#[ignore = "run only as the child of crash_test_sigkill_cycles"]
fn crash_child() {
    let Some(dir) = std::env::var_os("VIGIL_CRASH_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let key = keyfile::read_secret_key(&dir.join("node.key"), None).unwrap();
    let ledger = Ledger::open(&dir.join("ledger")).unwrap();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "open {}", ledger.size()).unwrap();
        out.flush().unwrap();
    }
    let key = std::sync::Arc::new(key);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let ledger = ledger.clone();
            let key = key.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let mut e =
                        NewEntry::new("external", format!("thread:{t}"), "crash-test", "record")
                            .details(serde_json::json!({ "i": i }));
                    if i % 10 == 0 {
                        e = e.payload(vec![t as u8; 100]);
                    }
                    let idx = ledger.append(e).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {idx}").unwrap();
                    out.flush().unwrap();
                    if t == 0 && i % 50 == 49 {
                        ledger.checkpoint(&key, ORIGIN).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn crash_test_sigkill_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    keyfile::write_key_pair(&dir.path().join("node"), &key, None, None).unwrap();
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut expected_start = 0u64;
    let mut total_acked = 0usize;
    let mut journaled_at_kill = 0usize;
    for cycle in 0..20 {
        let lines = run_until_killed("crash_child", dir.path(), &mut rng);
        // Batches acknowledged since the child last settled exist only in
        // the commit journal (sled was not flushed): opening applies them.
        let ledger = Ledger::open(&dir.path().join("ledger")).unwrap();
        journaled_at_kill += ledger.journal_batches_applied();
        let size = ledger.size();
        let mut acked = Vec::new();
        for l in &lines {
            if let Some(n) = l.strip_prefix("open ") {
                assert_eq!(
                    n.parse::<u64>().unwrap(),
                    expected_start,
                    "cycle {cycle} (seed {seed}): child reopened at the wrong index"
                );
            } else if let Some(n) = l.strip_prefix("ack ") {
                acked.push(n.parse::<u64>().unwrap());
            }
        }
        for idx in &acked {
            assert!(
                *idx >= expected_start,
                "cycle {cycle}: index {idx} reused (start {expected_start})"
            );
            let e = ledger.entry(*idx).unwrap().unwrap_or_else(|| {
                panic!("cycle {cycle} (seed {seed}): acknowledged entry {idx} is missing")
            });
            assert_eq!(e.index, *idx);
            if let Some(c) = e.payload {
                let p = ledger.payload_of(&e).unwrap().unwrap_or_else(|| {
                    panic!("cycle {cycle} (seed {seed}): the payload of acknowledged entry {idx} is missing")
                });
                assert!(c.opens(&p.salt, &p.data), "cycle {cycle}: payload of {idx}");
            }
        }
        assert!(size >= expected_start);
        if size > 0 {
            ledger.checkpoint(&key, ORIGIN).unwrap();
            let report = verify_ledger(&ledger, key.public_key()).unwrap_or_else(|e| {
                panic!("cycle {cycle} (seed {seed}): ledger does not verify: {e}")
            });
            assert_eq!(report.entries, size);
            assert_eq!(report.payloads_absent, 0, "cycle {cycle} (seed {seed})");
        }
        total_acked += acked.len();
        expected_start = size;
    }
    assert!(
        total_acked > 100,
        "the children acknowledged only {total_acked} entries"
    );
    assert!(
        journaled_at_kill > 0,
        "no kill found batches only in the journal, so its replay was not exercised"
    );
    println!("seed {seed}: {total_acked} acknowledged entries over 20 SIGKILLs, final size {expected_start}; {journaled_at_kill} journaled batches applied again on reopen");
}

/// The erasing child: forever appends two entries with payloads and erases
/// the first one's payload, printing `erased N` once an erasure returned.
#[test]
#[ignore = "run only as the child of crash_test_erasures_sigkill_cycles"]
fn erasure_crash_child() {
    let Some(dir) = std::env::var_os("VIGIL_CRASH_DIR") else {
        return;
    };
    let ledger = Ledger::open(&Path::new(&dir).join("ledger")).unwrap();
    for i in 0u64.. {
        let entry = |n: u64| {
            NewEntry::new("tool.call", "agent:crash", "tool:echo", "allow")
                .payload(format!("payload {i}.{n}").into_bytes())
        };
        let first = ledger.append(entry(0)).unwrap();
        ledger.append(entry(1)).unwrap();
        ledger
            .erase_payload(first, "operator", "crash test")
            .unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(out, "erased {first}").unwrap();
        out.flush().unwrap();
    }
}

/// SIGKILLs the erasing child 15 times; after each kill (and the reopen,
/// which finishes a recorded erasure) a payload is stored exactly when no
/// `payload.erased` entry names its entry, every acknowledged erasure is
/// on record, and the ledger verifies.
#[test]
fn crash_test_erasures_sigkill_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut acknowledged = 0usize;
    let mut recorded = std::collections::BTreeSet::new();
    for cycle in 0..15 {
        let lines = run_until_killed("erasure_crash_child", dir.path(), &mut rng);
        let ledger = Ledger::open(&dir.path().join("ledger")).unwrap();
        recorded.clear();
        let mut with_payload = Vec::new();
        for i in 0..ledger.size() {
            let e = ledger.entry(i).unwrap().unwrap();
            if let Some(k) = e.erased_index() {
                assert!(
                    recorded.insert(k),
                    "cycle {cycle} (seed {seed}): the erasure of entry {k} is recorded twice"
                );
            }
            if e.payload.is_some() {
                with_payload.push(e);
            }
        }
        for e in &with_payload {
            let stored = ledger.payload_of(e).unwrap();
            let erased = recorded.contains(&e.index);
            assert_eq!(
                stored.is_some(),
                !erased,
                "cycle {cycle} (seed {seed}): entry {} has its payload {} and its erasure {}",
                e.index,
                if stored.is_some() { "stored" } else { "gone" },
                if erased { "recorded" } else { "not recorded" },
            );
            if let Some(p) = stored {
                assert!(e.payload.as_ref().unwrap().opens(&p.salt, &p.data));
            }
        }
        for line in &lines {
            if let Some(n) = line.strip_prefix("erased ") {
                let n: u64 = n.parse().unwrap();
                assert!(
                    recorded.contains(&n),
                    "cycle {cycle} (seed {seed}): acknowledged erasure of entry {n} is not on record"
                );
                acknowledged += 1;
            }
        }
        if ledger.size() > 0 {
            ledger.checkpoint(&key, ORIGIN).unwrap();
            let report = verify_ledger(&ledger, key.public_key()).unwrap_or_else(|e| {
                panic!("cycle {cycle} (seed {seed}): ledger does not verify: {e}")
            });
            assert_eq!(report.erasures as usize, recorded.len());
            assert_eq!(report.payloads_absent as usize, recorded.len());
        }
    }
    assert!(
        acknowledged > 30,
        "the children acknowledged only {acknowledged} erasures"
    );
    println!(
        "seed {seed}: {acknowledged} acknowledged erasures over 15 SIGKILLs, {} on record",
        recorded.len()
    );
}

/// Entries of one fixed size, so that every batch of the lap child has a
/// journal record of the same length.
fn lap_entry(i: u64) -> NewEntry {
    NewEntry::new("external", "crash", "lap-test", "record")
        .details(serde_json::json!({ "i": format!("{i:010}"), "fill": "x".repeat(2000) }))
}

/// The lap child: appends batches of 64 equal-sized entries until the
/// journal has passed a whole lap (the ledger settles and starts a new
/// lap from the beginning of the file) and a few batches more, printing
/// `ack END` after each, then `done`, and waits to be killed.
#[test]
#[ignore = "run only as the child of a_killed_ledger_does_not_replay_the_previous_lap"]
fn lap_child() {
    let Some(dir) = std::env::var_os("VIGIL_CRASH_DIR") else {
        return;
    };
    let ledger = Ledger::open(&Path::new(&dir).join("ledger")).unwrap();
    let batch_bytes = 64 * 2100;
    let batches = vigil_ledger::journal::SETTLE_BYTES / batch_bytes + 4;
    let mut i = 0u64;
    for _ in 0..batches {
        let range = ledger
            .append_batch((i..i + 64).map(lap_entry).collect())
            .unwrap();
        i = range.end;
        let mut out = std::io::stdout().lock();
        writeln!(out, "ack {i}").unwrap();
        out.flush().unwrap();
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "done").unwrap();
        out.flush().unwrap();
    }
    std::thread::sleep(Duration::from_secs(600));
}

/// After a lap of the journal is settled and a few more batches are
/// journaled in the next lap, a SIGKILL leaves the new lap's records at
/// the start of the file followed by valid records of the previous lap
/// (the file is reused, not cut). Reopening reads only the new lap: the
/// ledger has exactly the acknowledged entries and verifies.
#[test]
fn a_killed_ledger_does_not_replay_the_previous_lap() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "lap_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("VIGIL_CRASH_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = 0u64;
    let mut done = false;
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        if let Some(n) = line.trim_end().strip_prefix("ack ") {
            acked = n.parse().unwrap();
        } else if line.trim_end() == "done" {
            done = true;
            break;
        }
        line.clear();
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(done, "the child stopped before it was done");

    // The new lap at the start of the file, then a valid record of the
    // previous lap right where it ends.
    let journal = std::fs::read(dir.path().join("ledger/payloads/journal")).unwrap();
    assert_eq!(&journal[..4], &vigil_ledger::journal::JOURNAL_MAGIC);
    let lap = u64::from_le_bytes(journal[4..12].try_into().unwrap());
    assert!(lap >= 1, "the ledger never settled a lap");
    let current = vigil_ledger::journal::scan(&journal, lap);
    assert!(
        current.len() >= 3,
        "{} records in the new lap",
        current.len()
    );
    let end: usize = current.iter().map(|r| r.encode(lap).len()).sum();
    let stale = vigil_ledger::journal::scan(&journal[end..], lap - 1);
    assert!(
        !stale.is_empty(),
        "no record of the previous lap follows the new lap"
    );

    let ledger = Ledger::open(&dir.path().join("ledger")).unwrap();
    assert_eq!(ledger.size(), acked);
    // Only batches of the new lap can have been applied (sled may already
    // hold some of them: their big chunks went straight to files).
    assert!(ledger.journal_batches_applied() <= current.len());
    let key = SigningKey::generate();
    ledger.checkpoint(&key, ORIGIN).unwrap();
    let report = verify_ledger(&ledger, key.public_key()).unwrap();
    assert_eq!(report.entries, acked);
}
