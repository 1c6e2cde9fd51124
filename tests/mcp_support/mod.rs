//! Shared set-up of the MCP tests and bench: a real node home (`vigil init`)
//! with a trusted publisher, the echo tool packaged, signed and installed
//! under three tool names (`echo`; `vault_read`, sensitivity high;
//! `echo_typed`, with an output schema), and a vigil.toml with agents:
//! `local` (stdio, every tool), `alice` (token, every tool) and `bob`
//! (token, echo only).
#![allow(dead_code)]

pub mod raw;

use std::path::{Path, PathBuf};
use std::process::Command;

pub const ALICE_TOKEN: &str = "alice-test-token-0f3c9a";
pub const BOB_TOKEN: &str = "bob-test-token-77d1e2";

/// The echo tool's wasm, built with tools/build.sh once per process.
pub fn echo_wasm() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let out = root.join("tools/out/echo.wasm");
            let status = Command::new("bash")
                .arg(root.join("tools/build.sh"))
                .env_remove("CARGO_TARGET_DIR")
                .env_remove("RUSTFLAGS")
                .status()
                .expect("run tools/build.sh");
            assert!(status.success(), "tools/build.sh failed");
            out
        })
        .clone()
}

const MANIFEST: &str = r#"[package]
name = "acme/echo"
version = "1.0.0"
description = "Echo tools for the MCP tests."

[[tools]]
name = "echo"
description = "Returns its arguments."
input_schema = { type = "object", properties = { text = { type = "string" } }, required = ["text"], additionalProperties = false }

[[tools]]
name = "vault_read"
description = "Reads the vault (needs a human's approval per call)."
sensitivity = "high"
input_schema = { type = "object", properties = { text = { type = "string" } }, required = ["text"] }

[[tools]]
name = "echo_typed"
description = "Returns its arguments as structured content."
input_schema = { type = "object", properties = { text = { type = "string" } } }
output_schema = { type = "object", properties = { echo = { type = "object" } }, required = ["echo"] }
"#;

/// A node home with the echo package installed and agents configured.
pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    /// `extra_config` is appended to vigil.toml (e.g. `[mcp]` settings).
    pub fn new(extra_config: &str) -> Self {
        let node = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        node.vigil().arg("init").assert_ok();
        node.vigil()
            .args(["key", "generate", "--out"])
            .arg(node.path("acme"))
            .assert_ok();
        node.vigil()
            .args(["trust", "publisher", "add"])
            .arg(node.path("acme.pub"))
            .args(["--scope", "acme/*"])
            .assert_ok();
        let pkg = node.package("echo", MANIFEST, &echo_wasm());
        node.vigil().arg("install").arg(&pkg).assert_ok();
        // Operator `jane`, whose signed decisions answer held calls.
        node.vigil()
            .args(["key", "generate", "--out"])
            .arg(node.path("jane"))
            .assert_ok();
        node.vigil()
            .args(["trust", "operator", "add"])
            .arg(node.path("jane.pub"))
            .args(["--name", "jane"])
            .assert_ok();
        let config = format!(
            "{}\n[[agents]]\nname = \"local\"\ntools = [\"*\"]\ncalls_per_minute = 0\n\n\
             [[agents]]\nname = \"alice\"\ntools = [\"*\"]\ntoken_env = \"VIGIL_TEST_TOKEN_ALICE\"\ncalls_per_minute = 0\n\n\
             [[agents]]\nname = \"bob\"\ntools = [\"echo\"]\ntoken_env = \"VIGIL_TEST_TOKEN_BOB\"\n",
            extra_config
        );
        std::fs::write(node.home().join("vigil.toml"), config).expect("write vigil.toml");
        node
    }

    /// Builds `NAME.vpkg` from `manifest` and `wasm` (as `tool.wasm`),
    /// signed by the trusted publisher `acme`.
    pub fn package(&self, name: &str, manifest: &str, wasm: &Path) -> PathBuf {
        let src = self.path(&format!("{name}.src"));
        std::fs::create_dir_all(&src).expect("src dir");
        std::fs::write(src.join("vigil-tool.toml"), manifest).expect("manifest");
        std::fs::copy(wasm, src.join("tool.wasm")).expect("copy wasm");
        let pkg = self.path(&format!("{name}.vpkg"));
        self.vigil()
            .args(["package", "build"])
            .arg(&src)
            .arg("--key")
            .arg(self.path("acme.key"))
            .arg("--out")
            .arg(&pkg)
            .assert_ok();
        pkg
    }

    /// Every ledger entry (`vigil audit tail --json`), details as JSON.
    pub fn entries(&self) -> Vec<serde_json::Value> {
        let out = self
            .vigil()
            .args(["audit", "tail", "-n", "1000000", "--json"])
            .assert_ok();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("entry JSON"))
            .collect()
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `vigil --home HOME` with the agents' tokens in the environment.
    pub fn vigil(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.env_remove("VIGIL_HOME")
            .env("VIGIL_TEST_TOKEN_ALICE", ALICE_TOKEN)
            .env("VIGIL_TEST_TOKEN_BOB", BOB_TOKEN)
            .arg("--home")
            .arg(self.home());
        cmd
    }
}

/// A multi-threaded tokio runtime for driving clients and the pipeline.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs a command and panics with its output unless it succeeds.
pub trait AssertOk {
    fn assert_ok(&mut self) -> std::process::Output;
}

impl AssertOk for Command {
    fn assert_ok(&mut self) -> std::process::Output {
        let out = self.output().expect("run command");
        assert!(
            out.status.success(),
            "{:?} failed: {}\n{}",
            self,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// A running `vigil serve`, stopped with SIGTERM on drop.
pub struct Served {
    pub child: std::process::Child,
    pub url: String,
}

impl Served {
    pub fn start(node: &Node) -> Self {
        use std::io::BufRead as _;
        let mut child = node
            .vigil()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn vigil serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        Self { child, url }
    }

    /// SIGTERM, then wait: the node signs a last checkpoint and exits.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// The `tools/call` of `tool` with a JSON object of arguments.
pub fn call(
    tool: &'static str,
    arguments: serde_json::Value,
) -> rmcp::model::CallToolRequestParams {
    let arguments = match arguments {
        serde_json::Value::Object(map) => map,
        other => panic!("tool arguments must be a JSON object, not {other}"),
    };
    rmcp::model::CallToolRequestParams::new(tool).with_arguments(arguments)
}

/// Waits (30 s at most) until `vigil approvals` lists a held call; its id.
pub fn first_held_call(node: &Node) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = node.vigil().args(["approvals", "--json"]).assert_ok();
        let pending: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).expect("approvals --json");
        if let Some(id) = pending.first().and_then(|p| p["id"].as_str()) {
            return id.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no call was held for approval within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
