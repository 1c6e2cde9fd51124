//! Held checkpoints (issue 19 item 1) through the real `vigil` and
//! `vigil-verify` binaries on real sled directories: a checkpoint saved with
//! `vigil audit checkpoint --out` catches an insider who deletes the ledger
//! and writes another history (`vigil-verify --since` exits 1 naming it),
//! while honest continuations, whole or exported `--from` a later entry,
//! pass.

use std::path::Path;
use std::process::{Command, Output};

mod verify_support;
use verify_support::vigil_verify;

fn vigil(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_HOME").arg("--home").arg(home);
    cmd
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn append(home: &Path, actor: &str) {
    ok(vigil(home)
        .args(["audit", "append", "--actor", actor, "--subject", "ticket:1"])
        .output()
        .expect("append"));
}

fn checkpoint(home: &Path, out: Option<&Path>) -> String {
    let mut cmd = vigil(home);
    cmd.args(["audit", "checkpoint"]);
    if let Some(out) = out {
        cmd.arg("--out").arg(out);
    }
    ok(cmd.output().expect("checkpoint"))
}

fn export(home: &Path, out: &Path, from: u64) {
    ok(vigil(home)
        .args(["audit", "export", "--from", &from.to_string(), "--out"])
        .arg(out)
        .output()
        .expect("export"));
}

/// Runs vigil-verify on `bundle` with the home's key and `--since` each held note.
fn verify(home: &Path, bundle: &Path, held: &[&Path], json: bool) -> (i32, String, String) {
    let mut cmd = Command::new(vigil_verify());
    cmd.arg(bundle).arg("--key").arg(home.join("node.pub"));
    for h in held {
        cmd.arg("--since").arg(h);
    }
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run vigil-verify");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn held_checkpoint_catches_a_rewritten_ledger_and_passes_honest_exports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    ok(vigil(&home).arg("init").output().expect("init"));
    assert!(home.join("node.pub").exists(), "the node key is node.pub");
    for i in 0..3 {
        append(&home, &format!("ci:{i}"));
    }
    let held = dir.path().join("held.note");
    let printed = checkpoint(&home, Some(&held));
    let note = std::fs::read_to_string(&held).expect("held note written");
    assert_eq!(note, printed, "--out writes the note it prints");
    assert!(note.starts_with("vigil-node\n3\n"), "{note}");
    let held_root = note.lines().nth(2).expect("root line").to_string();

    // Honest continuation: two more entries, signed, exported whole and
    // from entries after, at and before the held checkpoint's size.
    append(&home, "ci:3");
    append(&home, "ci:4");
    checkpoint(&home, None);
    let second = dir.path().join("second.note");
    std::fs::write(&second, checkpoint(&home, None)).expect("write");
    for from in [0u64, 1, 3, 4] {
        let bundle = dir.path().join(format!("honest-{from}.bundle"));
        export(&home, &bundle, from);
        let (code, out, err) = verify(&home, &bundle, &[&held, &second], false);
        assert_eq!(code, 0, "from {from}: {out}{err}");
        assert!(
            out.contains("consistent with 2 held checkpoints"),
            "from {from}: {out}"
        );
    }

    // A held checkpoint newer than the bundle cannot be compared.
    let early = dir.path().join("early.bundle");
    ok(vigil(&home)
        .args(["audit", "export", "--to", "1", "--out"])
        .arg(&early)
        .output()
        .expect("export"));
    let (code, _, err) = verify(&home, &early, &[&second], false);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("newer than the bundle, which ends at size 3")
            && err.contains("at least size 5"),
        "{err}"
    );

    // The insider: delete the ledger and its payloads, write another history.
    std::fs::remove_dir_all(home.join("ledger")).expect("rm ledger");
    std::fs::remove_dir_all(home.join("payloads")).expect("rm payloads");
    for i in 0..4 {
        append(&home, &format!("forger:{i}"));
    }
    checkpoint(&home, None);
    append(&home, "forger:4");
    append(&home, "forger:5");
    checkpoint(&home, None);
    for from in [0u64, 4] {
        let forged = dir.path().join(format!("forged-{from}.bundle"));
        export(&home, &forged, from);
        // On its own the rewritten ledger verifies: that is the threat.
        let (code, out, err) = verify(&home, &forged, &[], false);
        assert_eq!(code, 0, "{out}{err}");
        let (code, out, err) = verify(&home, &forged, &[&held], false);
        assert_eq!(code, 1, "from {from}: {out}{err}");
        assert!(
            err.contains("INVALID: held checkpoint of size 3")
                && err.contains("origin vigil-node, size 3")
                && err.contains(&held_root),
            "from {from}: {err}"
        );
        let (code, out, _) = verify(&home, &forged, &[&held], true);
        assert_eq!(code, 1);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["valid"], false);
        assert_eq!(v["failure"]["location"], "held");
        assert_eq!(v["failure"]["index"], 3);
    }
}
