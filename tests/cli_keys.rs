//! Drives the real `vigil` binary through key generation, display, signing,
//! verification, permission refusal, passphrases and `init`.

use std::path::Path;
use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;

fn vigil() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_HOME");
    cmd
}

fn generate(dir: &Path, name: &str) {
    vigil()
        .args(["key", "generate", "--out"])
        .arg(dir.join(name))
        .assert()
        .success();
}

#[test]
fn generate_writes_private_key_and_pub_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    vigil()
        .args(["key", "generate", "--comment", "ops team", "--out"])
        .arg(dir.path().join("alice"))
        .assert()
        .success()
        .stdout(predicate::str::contains("key id"));
    let key = dir.path().join("alice.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let line = std::fs::read_to_string(dir.path().join("alice.pub")).expect("pub");
    let fields: Vec<&str> = line.trim().splitn(3, ' ').collect();
    assert_eq!(fields[0], "vigil-mldsa65-ed25519");
    use base64::Engine as _;
    let pk = base64::engine::general_purpose::STANDARD
        .decode(fields[1])
        .expect("base64");
    assert_eq!(pk.len(), 1984);
    assert_eq!(fields[2], "ops team");

    // Generating again over the same name is refused.
    vigil()
        .args(["key", "generate", "--out"])
        .arg(dir.path().join("alice"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("already exists"));
}

#[test]
fn show_prints_algorithm_key_id_and_fingerprint_for_both_halves() {
    let dir = tempfile::tempdir().expect("tempdir");
    generate(dir.path(), "k");
    let out_pub = vigil()
        .args(["key", "show"])
        .arg(dir.path().join("k.pub"))
        .output()
        .expect("run");
    assert!(out_pub.status.success());
    let out_key = vigil()
        .args(["key", "show"])
        .arg(dir.path().join("k.key"))
        .output()
        .expect("run");
    assert!(out_key.status.success());
    let text_pub = String::from_utf8_lossy(&out_pub.stdout);
    let text_key = String::from_utf8_lossy(&out_key.stdout);
    for needle in [
        "vigil-mldsa65-ed25519",
        "id-MLDSA65-Ed25519-SHA512",
        "key id",
        "SHA256:",
    ] {
        assert!(text_pub.contains(needle), "{needle} in {text_pub}");
    }
    let id_line = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("key id"))
            .map(str::to_string)
            .expect("key id line")
    };
    assert_eq!(id_line(&text_pub), id_line(&text_key));
}

#[test]
fn sign_and_verify_good_tampered_wrong_namespace_wrong_key_reserved() {
    let dir = tempfile::tempdir().expect("tempdir");
    generate(dir.path(), "alice");
    generate(dir.path(), "mallory");
    let file = dir.path().join("report.txt");
    std::fs::write(&file, b"quarterly numbers\n").expect("write");

    vigil()
        .args(["sign", "--namespace", "file", "--key"])
        .arg(dir.path().join("alice.key"))
        .arg(&file)
        .assert()
        .success();
    let sig = dir.path().join("report.txt.sig");
    let sig_line = std::fs::read_to_string(&sig).expect("sig");
    use base64::Engine as _;
    let sig_bytes = base64::engine::general_purpose::STANDARD
        .decode(sig_line.trim())
        .expect("base64");
    assert_eq!(sig_bytes.len(), 3373);

    let verify = |key: &str, ns: &str| {
        let mut cmd = vigil();
        cmd.args(["verify", "--namespace", ns, "--key"])
            .arg(dir.path().join(key))
            .arg("--signature")
            .arg(&sig)
            .arg(&file);
        cmd
    };
    verify("alice.pub", "file")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("good signature"));
    verify("alice.pub", "other")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("BAD signature"));
    verify("mallory.pub", "file")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("BAD signature"));
    verify("alice.pub", "vigil/package/v1")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("reserved"));

    std::fs::write(&file, b"quarterly numbers!\n").expect("tamper");
    verify("alice.pub", "file")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("BAD signature"));

    vigil()
        .args(["sign", "--namespace", "vigil-checkpoint", "--key"])
        .arg(dir.path().join("alice.key"))
        .arg(&file)
        .assert()
        .failure()
        .stderr(predicate::str::contains("reserved"));
}

#[cfg(unix)]
#[test]
fn group_readable_secret_key_is_refused_with_a_fix() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    generate(dir.path(), "k");
    let key = dir.path().join("k.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").expect("write");
    vigil()
        .args(["sign", "--namespace", "file", "--key"])
        .arg(&key)
        .arg(&file)
        .assert()
        .failure()
        .stderr(predicate::str::contains("chmod 600"));
    vigil()
        .args(["key", "show"])
        .arg(&key)
        .assert()
        .failure()
        .stderr(predicate::str::contains("readable by group or others"));
}

#[test]
fn passphrase_round_trip_via_env_var() {
    let dir = tempfile::tempdir().expect("tempdir");
    vigil()
        .args(["key", "generate", "--passphrase-env", "TEST_PASS", "--out"])
        .arg(dir.path().join("sealed"))
        .env("TEST_PASS", "correct horse battery staple")
        .assert()
        .success();
    let key = dir.path().join("sealed.key");
    let text = std::fs::read_to_string(&key).expect("key");
    assert!(text.starts_with("vigil-secret-key-v1 argon2id"));
    let file = dir.path().join("f");
    std::fs::write(&file, b"payload").expect("write");

    let sign = |pass: Option<&str>| {
        let mut cmd = vigil();
        cmd.args(["sign", "--namespace", "file", "--key"])
            .arg(&key)
            .arg(&file);
        if let Some(p) = pass {
            cmd.args(["--passphrase-env", "TEST_PASS"])
                .env("TEST_PASS", p);
        }
        cmd
    };
    sign(None)
        .assert()
        .failure()
        .stderr(predicate::str::contains("--passphrase-env"));
    sign(Some("wrong"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("wrong passphrase"));
    sign(Some("correct horse battery staple"))
        .assert()
        .success();
    vigil()
        .args(["verify", "--namespace", "file", "--key"])
        .arg(dir.path().join("sealed.pub"))
        .arg("--signature")
        .arg(dir.path().join("f.sig"))
        .arg(&file)
        .assert()
        .code(0);
    // The passphrase env var must be set when named.
    vigil()
        .args([
            "key",
            "generate",
            "--passphrase-env",
            "UNSET_VAR_XYZ",
            "--out",
        ])
        .arg(dir.path().join("other"))
        .env_remove("UNSET_VAR_XYZ")
        .assert()
        .failure()
        .stderr(predicate::str::contains("UNSET_VAR_XYZ is not set"));
}

#[test]
fn init_creates_home_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    vigil()
        .arg("--home")
        .arg(&home)
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains("initialized"));
    for f in ["node.key", "node.pub", "vigil.toml", "trust.toml"] {
        assert!(home.join(f).exists(), "{f} missing");
    }
    let before = std::fs::read(home.join("node.key")).expect("key");
    // Second init (via VIGIL_HOME this time) refuses and leaves the key alone.
    vigil()
        .env("VIGIL_HOME", &home)
        .arg("init")
        .assert()
        .failure()
        .stderr(predicate::str::contains("never overwrites keys"));
    assert_eq!(std::fs::read(home.join("node.key")).expect("key"), before);
}

#[test]
fn help_lists_the_working_commands() {
    let out = vigil().arg("--help").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["init", "key", "sign", "verify"] {
        assert!(text.contains(cmd), "{cmd} missing from --help");
    }
}
