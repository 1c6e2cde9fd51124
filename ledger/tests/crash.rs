//! Crash test: a child process appends from several threads and prints
//! every acknowledged index; it is SIGKILLed at random moments, 20 times.
//! After each kill every acknowledged entry is present with its payload,
//! the ledger verifies, and the next child continues from the right index.
//!
//! The child is this test binary re-run with `--ignored --exact
//! crash_child` and `VIGIL_CRASH_DIR` set.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};
use vigil_crypto::{keyfile, SigningKey};
use vigil_ledger::verify::verify_ledger;
use vigil_ledger::{Ledger, NewEntry};

const ORIGIN: &str = "crash.example/ledger";

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
    for cycle in 0..20 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("VIGIL_CRASH_DIR", dir.path())
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
        let lines = reader.join().unwrap();

        let ledger = Ledger::open(&dir.path().join("ledger")).unwrap();
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
    println!("seed {seed}: {total_acked} acknowledged entries over 20 SIGKILLs, final size {expected_start}");
}
