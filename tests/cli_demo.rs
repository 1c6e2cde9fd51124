//! `vigil demo` runs end to end on the embedded default and tells its story.

use std::process::Command;

#[test]
fn demo_runs_and_shows_refusals() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .env_remove("VIGIL_HOME")
        .arg("demo")
        .output()
        .expect("run vigil demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("genuine release         -> accepted"),
        "{text}"
    );
    assert!(
        text.contains("tampered release        -> refused"),
        "{text}"
    );
    assert!(text.contains("other use   -> refused"), "{text}");
}

#[test]
fn demo_with_home_refuses_an_existing_home() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("--home")
            .arg(dir.path().join("h"))
            .arg("demo")
            .output()
            .expect("run vigil demo")
    };
    assert!(run().status.success());
    assert!(dir.path().join("h/node.key").exists());
    let second = run();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("never overwrites keys"));
}
