//! Progress bars on every long operation (issue 22 item 3), seen as a user
//! at a terminal sees them: each command runs under a pseudo-terminal
//! (`script` from util-linux) and its screen output must show its bar with
//! the rate as a plain integer per second: bulk import, export, report,
//! bundle verification (`vigil audit verify --bundle`, `vigil-verify`) and
//! verification in place.

use std::path::Path;
use std::process::Command;

mod verify_support;
use verify_support::{ok, vigil, vigil_verify};

/// What a terminal shows while `command` (a shell line) runs.
fn on_a_terminal(command: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env_remove("VIGIL_HOME")
        .output()
        .expect("run script (util-linux)");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{command}: {screen}");
    screen
}

/// The rates a screen shows, as written (`12345/s`).
fn rates(screen: &str) -> Vec<String> {
    screen
        .split('(')
        .skip(1)
        .filter_map(|s| s.split_once("/s,").map(|(rate, _)| rate.to_string()))
        .collect()
}

fn assert_bar(screen: &str, label: &str) {
    assert!(screen.contains(label), "no `{label}` bar in {screen:?}");
    let rates = rates(screen);
    assert!(!rates.is_empty(), "no rate in {screen:?}");
    for r in &rates {
        assert!(
            !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()),
            "the rate `{r}` is not a plain integer"
        );
    }
}

#[test]
fn long_commands_show_bars_with_integer_rates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    ok(vigil(&home).arg("init").output().expect("init"));
    let events = dir.path().join("events.jsonl");
    let line = r#"{"actor":"ci","subject":"job","details":{"n":1}}"#;
    std::fs::write(&events, format!("{line}\n").repeat(30_000)).expect("events");
    let vigil_bin = env!("CARGO_BIN_EXE_vigil");
    let h = home.display();
    let d = dir.path().display();
    let v = |args: &str| format!("{vigil_bin} --home {h} {args}");

    assert_bar(
        &on_a_terminal(&v(&format!("audit append --jsonl {}", events.display()))),
        "importing",
    );
    ok(vigil(&home)
        .args(["audit", "checkpoint"])
        .output()
        .expect("checkpoint"));
    assert_bar(
        &on_a_terminal(&v(&format!("audit export --out {d}/a.bundle"))),
        "exporting",
    );
    assert_bar(
        &on_a_terminal(&v(&format!("audit verify --bundle {d}/a.bundle"))),
        "verifying",
    );
    assert_bar(&on_a_terminal(&v("audit verify")), "verifying");
    assert_bar(
        &on_a_terminal(&v(&format!("audit report --out {d}/r.html"))),
        "verifying",
    );
    assert!(Path::new(&format!("{d}/r.html")).exists());
    let verify = format!(
        "{} {d}/a.bundle --key {h}/node.pub",
        vigil_verify().display()
    );
    assert_bar(&on_a_terminal(&verify), "verifying");
    // Not on a terminal: no bar, only the result.
    let piped = Command::new(vigil_verify())
        .arg(format!("{d}/a.bundle"))
        .arg("--key")
        .arg(home.join("node.pub"))
        .output()
        .expect("vigil-verify");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&piped.stdout),
        String::from_utf8_lossy(&piped.stderr)
    );
    assert!(
        all.starts_with("valid:") && !all.contains("verifying"),
        "{all}"
    );
}
