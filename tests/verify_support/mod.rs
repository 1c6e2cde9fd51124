//! The real `vigil-verify` binary for tests of the `vigil` package: it
//! belongs to the vigil-ledger package, which `cargo test` of this package
//! does not build, so it is built (or brought up to date) once per test
//! process.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The path of an up-to-date `vigil-verify` next to the `vigil` binary.
pub fn vigil_verify() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "vigil-ledger", "--bin", "vigil-verify"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo build vigil-verify");
            assert!(status.success(), "building vigil-verify failed");
            Path::new(env!("CARGO_BIN_EXE_vigil")).with_file_name("vigil-verify")
        })
        .clone()
}

/// `vigil --home HOME`, with `VIGIL_HOME` unset.
pub fn vigil(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_HOME").arg("--home").arg(home);
    cmd
}

/// A command's stdout and stderr, as one text.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Its stdout, after asserting it succeeded (else its output is shown).
pub fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running `vigil serve --listen 127.0.0.1:0`, started once its first
/// line (the MCP URL) is out; `url` is that URL's base
/// (`http://127.0.0.1:PORT`). [`Served::stop`] sends SIGTERM and asserts a
/// clean exit; dropping it kills the node. Later output is drained.
pub struct Served {
    pub child: std::process::Child,
    pub url: String,
}

impl Served {
    pub fn start(home: &Path) -> Self {
        use std::io::BufRead as _;
        let mut child = vigil(home)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn vigil serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("vigil serve ended before it was ready")
                .expect("read");
            if let Some(u) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                break u.trim_end_matches("/mcp").to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, url }
    }

    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "vigil serve exited with {status}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number of entries in `home`'s ledger (through the running node if
/// there is one).
pub fn ledger_size(home: &Path) -> u64 {
    ok(vigil(home)
        .args(["audit", "tail", "--json", "-n", "1"])
        .output()
        .expect("tail"))
    .lines()
    .last()
    .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    .and_then(|v| v["index"].as_u64())
    .map_or(0, |i| i + 1)
}

/// Records `lines` (JSON Lines events) in `home` with one
/// `vigil audit append --jsonl` of a file written under `dir` as `TAG.jsonl`.
pub fn import_lines(home: &Path, dir: &Path, tag: &str, lines: &[String]) {
    let file = dir.join(format!("{tag}.jsonl"));
    std::fs::write(&file, lines.join("\n") + "\n").expect("events file");
    ok(vigil(home)
        .args(["audit", "append", "--jsonl"])
        .arg(&file)
        .output()
        .expect("import"));
}
