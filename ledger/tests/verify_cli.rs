//! The `vigil-verify` binary: exit 0 on valid bundles and proofs, 1 on
//! verification failures (100 random bit flips in a bundle, each detected),
//! 2 on usage errors, I/O errors and malformed bundles, proofs, checkpoints
//! and keys — never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng as _, SeedableRng as _};
use vigil_crypto::{keyfile, SigningKey};
use vigil_ledger::bundle::{export, ExportOptions};
use vigil_ledger::proof::EntryProof;
use vigil_ledger::{Ledger, NewEntry};

const BIN: &str = env!("CARGO_BIN_EXE_vigil-verify");

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bundle: PathBuf,
    proof: PathBuf,
    key: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let key = SigningKey::generate();
    keyfile::write_key_pair(&root.join("node"), &key, None, None).unwrap();
    let l = Ledger::open(&root.join("ledger")).unwrap();
    for i in 0..30u64 {
        let mut e = NewEntry::new("tool.call", "agent:a", format!("tool:{i}"), "allow")
            .details(serde_json::json!({ "i": i }));
        if i % 5 == 0 {
            e = e.payload(vec![i as u8; 40]);
        }
        l.append(e).unwrap();
        if i == 9 || i == 19 {
            l.checkpoint(&key, "cli.example/ledger").unwrap();
        }
    }
    l.erase_payload(5, "operator", "test").unwrap();
    l.checkpoint(&key, "cli.example/ledger").unwrap();
    let bundle = root.join("ledger.bundle");
    let f = std::fs::File::create(&bundle).unwrap();
    export(
        &l,
        key.public_key(),
        f,
        &ExportOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    let proof = root.join("entry.tlog-proof");
    std::fs::write(&proof, EntryProof::build(&l, 12).unwrap().to_text()).unwrap();
    Fixture {
        key: root.join("node.pub"),
        _dir: dir,
        root,
        bundle,
        proof,
    }
}

fn run(args: &[&Path]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "vigil-verify panicked: {stderr}"
    );
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

fn verify_bundle_file(f: &Fixture, bundle: &Path) -> (i32, String, String) {
    run(&[bundle, Path::new("--key"), &f.key])
}

#[test]
fn valid_bundle_and_proof_exit_0() {
    let f = fixture();
    let (code, out, err) = verify_bundle_file(&f, &f.bundle);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("31 entries") && out.contains("3 signed checkpoints"),
        "{out}"
    );
    let (code, out, err) = run(&[Path::new("--proof"), &f.proof, Path::new("--key"), &f.key]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("entry 12"), "{out}");
}

#[test]
fn hundred_random_bit_flips_are_all_detected() {
    let f = fixture();
    let good = std::fs::read(&f.bundle).unwrap();
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let path = f.root.join("flipped.bundle");
    let mut by_code = [0usize; 3];
    for n in 0..100 {
        let mut bad = good.clone();
        let pos = rng.gen_range(0..bad.len());
        let bit = 1u8 << rng.gen_range(0..8);
        bad[pos] ^= bit;
        std::fs::write(&path, &bad).unwrap();
        let (code, out, err) = verify_bundle_file(&f, &path);
        assert!(
            code == 1 || code == 2,
            "flip #{n} (seed {seed}) at byte {pos} bit {bit:#x} went undetected: exit {code}, {out}{err}"
        );
        by_code[code as usize] += 1;
        if code == 1 {
            assert!(err.contains("INVALID"), "{err}");
        }
    }
    println!(
        "seed {seed}: {} failures, {} malformed",
        by_code[1], by_code[2]
    );
}

#[test]
fn malformed_inputs_exit_2_with_a_message() {
    let f = fixture();
    let good = std::fs::read(&f.bundle).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", b"hello, I am not a bundle".to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("trailing", [good.clone(), vec![0]].concat()),
        ("header only", good[..40].to_vec()),
    ];
    for (name, bytes) in cases {
        let p = f.root.join(format!("{name}.bundle"));
        std::fs::write(&p, bytes).unwrap();
        let (code, out, err) = verify_bundle_file(&f, &p);
        assert_eq!(code, 2, "{name}: {out}{err}");
        assert!(
            err.contains("malformed") || err.contains("not a vigil"),
            "{name}: {err}"
        );
    }
    // Missing file, bad key files, usage errors.
    let (code, _, _) = verify_bundle_file(&f, &f.root.join("absent.bundle"));
    assert_eq!(code, 2);
    let bad_key = f.root.join("bad.pub");
    std::fs::write(&bad_key, "vigil-mldsa65-ed25519 AAAA\n").unwrap();
    let (code, _, err) = run(&[&f.bundle, Path::new("--key"), &bad_key]);
    assert_eq!(code, 2, "{err}");
    std::fs::write(&bad_key, "ssh-ed25519 AAAA\n").unwrap();
    assert_eq!(run(&[&f.bundle, Path::new("--key"), &bad_key]).0, 2);
    assert_eq!(run(&[]).0, 2, "no arguments");
    assert_eq!(run(&[&f.bundle]).0, 2, "no --key");

    // Malformed proofs and checkpoints inside proofs.
    let proof = std::fs::read_to_string(&f.proof).unwrap();
    let bad_proofs = vec![
        ("not a proof", "hello\n".to_string()),
        (
            "wrong header",
            proof.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v9", 1),
        ),
        ("bad index", proof.replacen("index 12", "index twelve", 1)),
        (
            "bad hash line",
            proof.replacen("\nindex 12\n", "\nindex 12\n!!!!\n", 1),
        ),
        (
            "no checkpoint",
            proof.split("\n\n").next().unwrap().to_string(),
        ),
    ];
    for (name, text) in bad_proofs {
        let p = f.root.join("bad.tlog-proof");
        std::fs::write(&p, text).unwrap();
        let (code, out, err) = run(&[Path::new("--proof"), &p, Path::new("--key"), &f.key]);
        assert!(code == 2 || code == 1, "{name}: {out}{err}");
        assert_ne!(code, 0, "{name}");
    }
    // A checkpoint note mangled inside an otherwise valid proof fails (1).
    let p = f.root.join("forged.tlog-proof");
    std::fs::write(
        &p,
        proof.replacen("cli.example/ledger\n31\n", "cli.example/ledger\n32\n", 1),
    )
    .unwrap();
    let (code, _, err) = run(&[Path::new("--proof"), &p, Path::new("--key"), &f.key]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn proof_for_another_index_fails_with_exit_1() {
    let f = fixture();
    let proof = std::fs::read_to_string(&f.proof).unwrap();
    let p = f.root.join("moved.tlog-proof");
    std::fs::write(&p, proof.replacen("index 12", "index 13", 1)).unwrap();
    let (code, _, err) = run(&[Path::new("--proof"), &p, Path::new("--key"), &f.key]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("entry 13"), "{err}");
}

/// `--json`: one object on stdout for each outcome, exit codes unchanged,
/// nothing on stderr.
#[test]
fn json_output_for_valid_invalid_and_unverifiable_inputs() {
    let f = fixture();
    let json = |args: &[&Path]| {
        let mut all = args.to_vec();
        all.push(Path::new("--json"));
        let (code, out, err) = run(&all);
        assert!(err.is_empty(), "JSON mode writes nothing on stderr: {err}");
        let value: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
        (code, value)
    };
    let (code, v) = json(&[&f.bundle, Path::new("--key"), &f.key]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["valid"], true);
    assert_eq!(v["bundle"]["entries"], 31, "{v}");
    assert_eq!(v["bundle"]["checkpoints"], 3, "{v}");
    assert_eq!(v["bundle"]["origin"], "cli.example/ledger");
    assert_eq!(v["bundle"]["erasures"], 1, "{v}");

    let (code, v) = json(&[Path::new("--proof"), &f.proof, Path::new("--key"), &f.key]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["proof"]["index"], 12, "{v}");
    assert_eq!(v["proof"]["subject"], "tool:12", "{v}");
    assert_eq!(v["checkpoint"]["size"], 31, "{v}");

    // A forged checkpoint inside a proof: a verification failure (1).
    let proof = std::fs::read_to_string(&f.proof).unwrap();
    let forged = f.root.join("forged.tlog-proof");
    std::fs::write(
        &forged,
        proof.replacen("cli.example/ledger\n31\n", "cli.example/ledger\n32\n", 1),
    )
    .unwrap();
    let (code, v) = json(&[Path::new("--proof"), &forged, Path::new("--key"), &f.key]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["valid"], false);
    assert_eq!(v["failure"]["location"], "checkpoint", "{v}");
    assert!(v["failure"]["reason"].is_string(), "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("INVALID")),
        "{v}"
    );

    // Nothing to verify (2): a missing bundle, an unusable key.
    let (code, v) = json(&[&f.root.join("absent.bundle"), Path::new("--key"), &f.key]);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["valid"], false);
    assert!(v["error"].is_string() && v.get("failure").is_none(), "{v}");
    let (code, v) = json(&[&f.bundle, Path::new("--key"), &f.root.join("absent.pub")]);
    assert_eq!(code, 2, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("key")),
        "{v}"
    );
}
