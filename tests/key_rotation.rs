//! Node key rotation (issue 19 item 3) through the real `vigil` and
//! `vigil-verify` binaries on real homes: two rotations on a running
//! `vigil serve` (through its control socket) verify from the first key and
//! from each later one; an old secret key put back into the home cannot
//! sign or export history after its handover; a rotation interrupted after
//! the handover is finished at the next start, one interrupted before it is
//! discarded.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod verify_support;
use verify_support::{ok, text, vigil, vigil_verify, Served};

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run vigil")
}

fn append(home: &Path, actor: &str) {
    ok(run(vigil(home).args([
        "audit",
        "append",
        "--actor",
        actor,
        "--subject",
        "ticket:1",
    ])));
}

fn rotate(home: &Path) -> serde_json::Value {
    let out = ok(run(vigil(home).args(["key", "rotate", "--json"])));
    serde_json::from_str(out.trim()).expect("rotate --json")
}

fn verify(bundle: &Path, key: &Path) -> (i32, String) {
    let out = Command::new(vigil_verify())
        .arg(bundle)
        .arg("--key")
        .arg(key)
        .output()
        .expect("run vigil-verify");
    (out.status.code().unwrap_or(-1), text(&out))
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn two_live_rotations_verify_from_every_key_and_an_old_key_cannot_sign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    ok(run(vigil(&home).arg("init")));
    let first_pub = dir.path().join("first.pub");
    let first_key = dir.path().join("first.key");
    copy(&home.join("node.pub"), &first_pub);
    copy(&home.join("node.key"), &first_key);
    append(&home, "ci:0");

    let serve = Served::start(&home);
    let one = rotate(&home);
    append(&home, "ci:1");
    let two = rotate(&home);
    append(&home, "ci:2");
    assert_ne!(one["new"], two["new"]);
    assert_eq!(one["new"], two["old"]);
    assert!(one["checkpoint"].is_string(), "{one}");
    let note = one["checkpoint"].as_str().unwrap_or_default();
    assert_eq!(
        note.matches("\n\u{2014} ").count(),
        2,
        "two signatures: {note}"
    );
    let bundle = dir.path().join("audit.bundle");
    ok(run(vigil(&home)
        .args(["audit", "export", "--out"])
        .arg(&bundle)));
    let tail = ok(run(
        vigil(&home).args(["audit", "tail", "--json", "-n", "20"])
    ));
    assert_eq!(tail.matches("\"key.rotated\"").count(), 2, "{tail}");
    serve.stop();

    let retired = home.join("retired-keys");
    let keys = [
        first_pub.clone(),
        retired.join("node-2.pub"),
        home.join("node.pub"),
    ];
    assert_eq!(read(&retired.join("node-1.pub")), read(&first_pub));
    assert!(!home.join("node.next.key").exists());
    for key in &keys {
        let (code, out) = verify(&bundle, key);
        assert_eq!(code, 0, "{}: {out}", key.display());
        assert!(out.contains("3 node keys, 2 handovers followed"), "{out}");
    }
    let stranger = dir.path().join("stranger");
    ok(run(vigil(&home)
        .args(["key", "generate", "--out"])
        .arg(&stranger)));
    let (code, out) = verify(&bundle, &stranger.with_extension("pub"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("none of the bundle's 3 node keys"), "{out}");
    ok(run(vigil(&home).args(["audit", "verify"])));

    // An insider puts the first key back and tries to sign history after it.
    copy(&first_key, &home.join("node.key"));
    copy(&first_pub, &home.join("node.pub"));
    let size_before = ok(run(
        vigil(&home).args(["audit", "tail", "--json", "-n", "100"])
    ))
    .lines()
    .count();
    let refused = run(vigil(&home).args(["audit", "checkpoint"]));
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("handed the log over"),
        "{}",
        text(&refused)
    );
    let exported = run(vigil(&home)
        .args(["audit", "export", "--out"])
        .arg(dir.path().join("forged.bundle")));
    assert!(!exported.status.success(), "{}", text(&exported));
    let size_after = ok(run(
        vigil(&home).args(["audit", "tail", "--json", "-n", "100"])
    ))
    .lines()
    .count();
    assert_eq!(size_before, size_after, "the refusals wrote nothing");
}

#[test]
fn an_interrupted_rotation_is_finished_or_discarded_at_the_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    ok(run(vigil(&home).arg("init")));
    append(&home, "ci:0");

    // Interrupted before the handover: a waiting key the ledger never named.
    ok(run(vigil(&home)
        .args(["key", "generate", "--out"])
        .arg(home.join("node.next"))));
    let pub_before = read(&home.join("node.pub"));
    let out = run(vigil(&home).args(["audit", "checkpoint"]));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("discarded a waiting node key"),
        "{}",
        text(&out)
    );
    assert!(!home.join("node.next.pub").exists());
    assert_eq!(read(&home.join("node.pub")), pub_before);

    // Interrupted after the handover: put the home back as it was before
    // the files were swapped.
    let old_key = dir.path().join("old.key");
    copy(&home.join("node.key"), &old_key);
    let rotated = rotate(&home);
    let new_pub = read(&home.join("node.pub"));
    std::fs::rename(home.join("node.key"), home.join("node.next.key")).expect("mv");
    std::fs::rename(home.join("node.pub"), home.join("node.next.pub")).expect("mv");
    copy(
        &home.join("retired-keys/node-1.pub"),
        &home.join("node.pub"),
    );
    copy(&old_key, &home.join("node.key"));
    std::fs::remove_file(home.join("retired-keys/node-1.pub")).expect("rm");

    let serve = Served::start(&home);
    append(&home, "ci:1");
    ok(run(vigil(&home).args(["audit", "checkpoint"])));
    serve.stop();
    assert_eq!(
        read(&home.join("node.pub")),
        new_pub,
        "the swap was finished"
    );
    assert!(!home.join("node.next.key").exists());
    let bundle: PathBuf = dir.path().join("audit.bundle");
    ok(run(vigil(&home)
        .args(["audit", "export", "--out"])
        .arg(&bundle)));
    let (code, out) = verify(&bundle, &home.join("retired-keys/node-1.pub"));
    assert_eq!(code, 0, "{out}");
    assert!(rotated["index"].as_u64().is_some(), "{rotated}");
}
