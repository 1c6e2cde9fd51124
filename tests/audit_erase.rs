//! Erasure: after `vigil audit erase`, no file under the node home contains
//! the payload or its salt (raw, hex or base64), the erasure is recorded,
//! and the ledger and an exported bundle still verify.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use base64::Engine as _;
use predicates::prelude::*;
use rand::RngCore as _;
use vigil_ledger::payloads::{scan_segment, RECORD_HEADER_LEN};

fn vigil(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_HOME").arg("--home").arg(home);
    cmd
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn needles(bytes: &[u8]) -> Vec<Vec<u8>> {
    vec![
        bytes.to_vec(),
        hex::encode(bytes).into_bytes(),
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into_bytes(),
    ]
}

#[test]
fn erased_payload_and_salt_are_nowhere_under_the_home() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    vigil(&home).arg("init").assert().success();

    let mut payload = vec![0u8; 48];
    rand::thread_rng().fill_bytes(&mut payload);
    let payload_file = dir.path().join("payload.bin");
    std::fs::write(&payload_file, &payload).expect("write");
    for i in 0..3 {
        vigil(&home)
            .args([
                "audit",
                "append",
                "--actor",
                "tool-runner",
                "--subject",
                &format!("call:{i}"),
            ])
            .arg("--payload-file")
            .arg(&payload_file)
            .assert()
            .success()
            .stdout(format!("{i}\n"));
    }

    // Learn the salt of entry 1's payload from its segment record before
    // erasing (docs/ledger-format.md §6).
    let mut before = Vec::new();
    files_under(&home.join("payloads"), &mut before);
    // Beside the segment only the commit journal (empty once settled) and
    // the entry file (docs/ledger-format.md §6.1).
    before.retain(|p| {
        p.file_name()
            .is_none_or(|n| n != "journal" && n != "entries")
    });
    assert_eq!(before.len(), 1, "one segment for all payloads: {before:?}");
    let out = vigil(&home)
        .args(["audit", "tail", "--json", "-n", "3"])
        .output()
        .expect("tail");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let commitments: Vec<String> = lines
        .iter()
        .map(|l| {
            l["payload"]["commitment"]
                .as_str()
                .expect("commitment")
                .to_string()
        })
        .collect();
    let segment = std::fs::read(&before[0]).expect("payload segment");
    let digest = hex::decode(&commitments[1]).expect("hex commitment");
    let record = scan_segment(&segment)
        .into_iter()
        .find(|r| r.commitment.digest[..] == digest[..])
        .expect("entry 1's payload record");
    let at = record.offset as usize + RECORD_HEADER_LEN;
    let salt = segment[at..at + 32].to_vec();

    // Make entry 1's payload unique so the search can tell it from the
    // identical payloads of entries 0 and 2: erase those too, then check.
    vigil(&home)
        .args(["audit", "erase", "1", "--reason", "GDPR request 17"])
        .assert()
        .success()
        .stdout(predicate::str::contains("recorded as entry 3"));
    for i in [0, 2] {
        vigil(&home)
            .args(["audit", "erase", &i.to_string(), "--reason", "cleanup"])
            .assert()
            .success();
    }

    let mut files = Vec::new();
    files_under(&home, &mut files);
    assert!(!files.is_empty());
    for f in &files {
        let bytes = std::fs::read(f).expect("read");
        for (what, secret) in [("payload", &payload), ("salt", &salt)] {
            for n in needles(secret) {
                assert!(
                    !contains(&bytes, &n),
                    "{} still contains the {what}",
                    f.display()
                );
            }
        }
    }

    // Erasing again is refused; the ledger and a bundle still verify.
    vigil(&home)
        .args(["audit", "erase", "1", "--reason", "again"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("already erased"));
    vigil(&home)
        .args(["audit", "verify"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("3 erasures"));
    let bundle = dir.path().join("out.bundle");
    vigil(&home)
        .args(["audit", "export", "--out"])
        .arg(&bundle)
        .assert()
        .success();
    vigil(&home)
        .args(["audit", "verify", "--bundle"])
        .arg(&bundle)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("6 entries"));
}
