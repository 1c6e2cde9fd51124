//! `vigil audit ...` through the real binary: append, tail, checkpoint,
//! export, verify (in place and bundles, exit codes 0/1/2), prove.

use std::path::Path;
use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;

fn vigil(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_HOME").arg("--home").arg(home);
    cmd
}

fn init(home: &Path) {
    vigil(home).arg("init").assert().success();
}

fn append(home: &Path, actor: &str, json: &str) -> u64 {
    let out = vigil(home)
        .args([
            "audit",
            "append",
            "--kind",
            "external",
            "--actor",
            actor,
            "--subject",
            "ticket:7",
            "--json",
            json,
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("index")
}

#[test]
fn append_tail_checkpoint_export_verify_prove() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    init(&home);
    for i in 0..5u64 {
        assert_eq!(
            append(&home, &format!("ci:{i}"), &format!("{{\"run\": {i}}}")),
            i
        );
    }
    vigil(&home)
        .args(["audit", "tail", "-n", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ci:3").and(predicate::str::contains("ci:4")))
        .stdout(predicate::str::contains("ci:2").not());
    let out = vigil(&home)
        .args(["audit", "tail", "--json", "-n", "1"])
        .output()
        .expect("tail");
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json line");
    assert_eq!(line["index"], 4);
    assert_eq!(line["details"]["run"], 4);

    vigil(&home)
        .args(["audit", "checkpoint"])
        .assert()
        .success()
        .stdout(predicate::str::contains("vigil-node\n5\n"));

    // In-place verification.
    vigil(&home)
        .args(["audit", "verify"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("5 entries"));

    // Export (a checkpoint is signed on demand for new entries) and verify the bundle.
    append(&home, "ci:5", "{}");
    let bundle = dir.path().join("audit.bundle");
    vigil(&home)
        .args(["audit", "export", "--out"])
        .arg(&bundle)
        .assert()
        .success()
        .stdout(predicate::str::contains("entries 0..6"));
    let key = home.join("node.pub");
    vigil(&home)
        .args(["audit", "verify", "--bundle"])
        .arg(&bundle)
        .arg("--key")
        .arg(&key)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("6 entries"));

    // A flipped byte in an entry: exit 1 naming the entry.
    let mut bytes = std::fs::read(&bundle).expect("bundle");
    let pos = bytes
        .windows(4)
        .rposition(|w| w == b"ci:2")
        .expect("entry 2 in bundle");
    bytes[pos + 3] = b'9';
    let bad = dir.path().join("bad.bundle");
    std::fs::write(&bad, &bytes).expect("write");
    vigil(&home)
        .args(["audit", "verify", "--bundle"])
        .arg(&bad)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("entry 2"));

    // Malformed: exit 2.
    std::fs::write(&bad, b"not a bundle").expect("write");
    vigil(&home)
        .args(["audit", "verify", "--bundle"])
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("malformed"));

    // Single-entry proof.
    let proof = dir.path().join("e3.tlog-proof");
    vigil(&home)
        .args(["audit", "prove", "3", "--out"])
        .arg(&proof)
        .assert()
        .success();
    let text = std::fs::read_to_string(&proof).expect("proof");
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
    assert!(text.contains("\nindex 3\n"), "{text}");
}

#[test]
fn refusals_are_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    vigil(&home)
        .args(["audit", "tail"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("vigil init"));
    init(&home);
    vigil(&home)
        .args([
            "audit",
            "append",
            "--actor",
            "a",
            "--subject",
            "s",
            "--json",
            "[1]",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("JSON object"));
    vigil(&home)
        .args([
            "audit",
            "append",
            "--kind",
            "Bad Kind",
            "--actor",
            "a",
            "--subject",
            "s",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("kind"));
    vigil(&home)
        .args([
            "audit",
            "append",
            "--kind",
            "payload.erased",
            "--actor",
            "a",
            "--subject",
            "s",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("reserved"));
    vigil(&home)
        .args(["audit", "prove", "0", "--out"])
        .arg(dir.path().join("p"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("does not exist"));
}

#[test]
fn outside_events_are_marked_and_cannot_take_a_node_kind() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    init(&home);
    // Every outside event is marked as such; the mark cannot be forged.
    vigil(&home)
        .args([
            "audit",
            "append",
            "--kind",
            "tool.call2",
            "--actor",
            "a",
            "--subject",
            "s",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("reserved"));
    vigil(&home)
        .args([
            "audit",
            "append",
            "--actor",
            "a",
            "--subject",
            "s",
            "--json",
        ])
        .arg(r#"{"_external": false}"#)
        .assert()
        .failure()
        .stderr(predicate::str::contains("_external"));
    vigil(&home)
        .args([
            "audit",
            "append",
            "--actor",
            "a",
            "--subject",
            "s",
            "--json",
        ])
        .arg(r#"{"ticket": 9}"#)
        .assert()
        .success();
    let out = vigil(&home)
        .args(["audit", "tail", "-n", "1", "--json"])
        .output()
        .expect("tail");
    let last: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the last entry as JSON");
    assert_eq!(last["details"]["_external"], true, "{last}");
}
