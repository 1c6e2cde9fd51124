//! Shared set-up of the sandbox integration tests: builds the guest tools
//! once per test binary (tools/build.sh), and makes sandboxes and tools
//! (each tool a signed package admitted by the gatekeeper, since the
//! sandbox loads nothing else).
#![allow(dead_code)]

#[path = "../signed_support/mod.rs"]
pub mod signed;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use vigil::sandbox::capabilities::{Capabilities, FilesystemGrant, Limits};
use vigil::sandbox::{CallOutcome, LoadedTool, Sandbox, SandboxConfig};

/// tools/out, after running tools/build.sh once in this process.
pub fn tools_out() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = std::process::Command::new("bash")
            .arg(root.join("tools/build.sh"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .status()
            .expect("run tools/build.sh");
        assert!(status.success(), "tools/build.sh failed");
        root.join("tools/out")
    })
}

/// The wasm of a built tool (`echo`, `hostile`, `echo-p1`...).
pub fn wasm(name: &str) -> Vec<u8> {
    let path = tools_out().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A sandbox whose compiled-code cache lives in `dir`.
pub fn sandbox(dir: &Path) -> Sandbox {
    Sandbox::new(&SandboxConfig::new(dir.join("compiled"))).expect("sandbox")
}

/// A sandbox with a cache shared by all tests of this binary (compiles once).
pub fn shared_sandbox() -> Sandbox {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    sandbox(
        DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
            .path(),
    )
}

pub fn caps(read: &[&Path], write: &[&Path], network: &[String], env: &[&str]) -> Capabilities {
    let paths = |v: &[&Path]| v.iter().map(|p| p.display().to_string()).collect();
    Capabilities {
        network: network.to_vec(),
        filesystem: FilesystemGrant {
            read: paths(read),
            write: paths(write),
        },
        env: env.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn load(sandbox: &Sandbox, name: &str, caps: &Capabilities, limits: Limits) -> LoadedTool {
    let package = signed::verified(name, &wasm(name), caps, limits);
    sandbox
        .load(&package)
        .unwrap_or_else(|e| panic!("load {name}: {e}"))
}

/// The JSON value of a successful call (panics with the outcome otherwise).
pub fn ok_value(outcome: &CallOutcome) -> &Value {
    match &outcome.result {
        vigil::sandbox::CallResult::Ok { value } => value,
        _ => panic!("call failed: {outcome:#?}"),
    }
}

/// Calls `echo` on `sandbox` and checks it still works.
pub fn echo_still_works(sandbox: &Sandbox) {
    let echo = load(sandbox, "echo", &Capabilities::default(), Limits::default());
    let outcome = echo.call("echo", &serde_json::json!({"still": "serving"}));
    assert_eq!(ok_value(&outcome)["echo"]["still"], "serving");
}

/// A canonical (symlink-free) temp dir: preopens and guest paths must agree.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub fn canonical(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().canonicalize().expect("canonicalize")
}
