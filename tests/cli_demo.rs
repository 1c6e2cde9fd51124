//! `vigil demo` runs end to end with only what is built into the binary and
//! tells its story: each step's visible outcome is checked, and the bundle
//! it exports verifies with the real `vigil-verify` binary.

use std::path::Path;
use std::process::{Command, Output};

mod verify_support;
use verify_support::vigil_verify;

fn demo(home: Option<&Path>, keep: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_HOME");
    if let Some(h) = home {
        cmd.arg("--home").arg(h);
    }
    cmd.arg("demo");
    if let Some(k) = keep {
        cmd.arg("--keep").arg(k);
    }
    cmd.output().expect("run vigil demo")
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

#[test]
fn demo_tells_the_whole_story_and_its_bundle_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keep = dir.path().join("demo");
    let out = demo(None, Some(&keep));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Keys and packages: three admitted, the tampered copy refused.
    assert!(text.contains("node key id"), "{text}");
    for name in ["acme/echo", "acme/crm", "shady/helper"] {
        assert!(text.contains(&format!("-> admitted {name}")), "{text}");
    }
    assert!(
        line_with(&text, "one bit flipped").contains("-> refused"),
        "{text}"
    );

    // The allowed call returns the tool's result.
    assert!(
        text.contains(r#"allowed: {"echo":{"text":"hello from the agent"}}"#),
        "{text}"
    );
    // Bad arguments are refused by the schema check, naming the problem.
    let refused = line_with(&text, "refused (invalid-arguments)");
    assert!(refused.contains("echo"), "{refused}");
    // The customer record reaches the agent with its personal data redacted.
    let record = line_with(&text, r#""id":"C-1042""#);
    for placeholder in ["[REDACTED:EMAIL]", "[REDACTED:PHONE]", "[REDACTED:IBAN]"] {
        assert!(record.contains(placeholder), "{record}");
    }
    assert!(!text.contains("ada.lovelace@example.com"), "{text}");
    assert!(!text.contains("GB82 WEST"), "{text}");
    // The hostile tool is contained: its read is denied and reported, its
    // endless loop is stopped.
    assert!(
        line_with(&text, r#""attack":"read-passwd""#).contains(r#""outcome":"blocked""#),
        "{text}"
    );
    assert!(
        line_with(&text, "denied Path").contains("/etc/passwd"),
        "{text}"
    );
    assert!(text.contains("refused (tool-failed)"), "{text}");
    // Checkpoint, export and offline verification (and a rewrite caught).
    assert!(text.contains("Merkle root"), "{text}");
    assert!(
        line_with(&text, "bundle as exported").contains("-> valid:"),
        "{text}"
    );
    assert!(
        line_with(&text, "one entry rewritten").contains("INVALID"),
        "{text}"
    );

    // The exported bundle verifies with the real vigil-verify binary.
    let verified = Command::new(vigil_verify())
        .arg(keep.join("audit.bundle"))
        .arg("--key")
        .arg(keep.join("node.pub"))
        .output()
        .expect("run vigil-verify");
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "vigil-verify: {report}\n{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(report.starts_with("valid:"), "{report}");
}

#[test]
fn demo_in_a_temporary_home_cleans_up() {
    let out = demo(None, None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("temporary demo home is removed"), "{text}");
}

#[test]
fn demo_with_home_refuses_an_existing_home() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("h");
    let first = demo(Some(&home), None);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(home.join("node.key").exists());
    let second = demo(Some(&home), None);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("never overwrites keys"));
}
