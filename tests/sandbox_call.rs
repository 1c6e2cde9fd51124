//! `vigil call` runs a tool of an admitted package through the sandbox with
//! the package's declared capabilities and prints the capability report.

mod sandbox_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use sandbox_support::wasm;

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
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
        node
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn vigil(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.env_remove("VIGIL_HOME")
            .arg("--home")
            .arg(self.path("home"));
        cmd
    }

    /// Builds, signs and installs a package of `tool_wasm` with `extra` manifest text.
    fn install(&self, package: &str, tool: &str, tool_wasm: &str, extra: &str) {
        let src = self.path(&format!("{tool}.src"));
        std::fs::create_dir_all(&src).unwrap();
        let manifest = format!(
            "[package]\nname = \"acme/{package}\"\nversion = \"1.0.0\"\ndescription = \"A test tool.\"\n\n\
             [[tools]]\nname = \"{tool}\"\ndescription = \"Test tool {tool}.\"\n\
             input_schema = {{ type = \"object\" }}\n\n{extra}"
        );
        std::fs::write(src.join("vigil-tool.toml"), manifest).unwrap();
        std::fs::write(src.join("tool.wasm"), wasm(tool_wasm)).unwrap();
        let out = self.path(&format!("{tool}.vpkg"));
        self.vigil()
            .args(["package", "build"])
            .arg(&src)
            .arg("--key")
            .arg(self.path("acme.key"))
            .arg("--out")
            .arg(&out)
            .assert_ok();
        self.vigil().arg("install").arg(&out).assert_ok();
    }

    /// The newest ledger entry, read back with `vigil audit tail --json`.
    fn last_entry(&self) -> serde_json::Value {
        let out = self
            .vigil()
            .args(["audit", "tail", "-n", "1", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn call_json(&self, tool: &str, args: &str) -> (bool, serde_json::Value) {
        let out = self
            .vigil()
            .args(["call", tool, "--args", args, "--json"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.success(), value)
    }
}

trait AssertOk {
    fn assert_ok(&mut self);
}

impl AssertOk for Command {
    fn assert_ok(&mut self) {
        let out = self.output().expect("run vigil");
        assert!(
            out.status.success(),
            "{:?}: {}{}",
            self,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn call_runs_an_admitted_tool_with_its_declared_grant() {
    let node = Node::new();
    node.install("echo", "echo", "echo", "");
    let (ok, outcome) = node.call_json("echo", r#"{"text": "hi"}"#);
    assert!(ok, "{outcome}");
    assert_eq!(outcome["result"]["status"], "ok");
    assert_eq!(outcome["result"]["value"]["echo"]["text"], "hi");
    let entry = node.last_entry();
    assert_eq!(entry["kind"], "tool.call", "{entry}");
    assert_eq!(entry["details"]["status"], "ok", "{entry}");
    assert_eq!(entry["details"]["package"], "acme/echo@1.0.0", "{entry}");
    assert_eq!(outcome["ledger_index"], entry["index"], "{outcome}");

    let docs = node.dir.path().canonicalize().unwrap().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("a.txt"), "three little words").unwrap();
    let grant = format!("[capabilities.filesystem]\nread = [\"{}\"]\n", s(&docs));
    node.install("wordcount", "wordcount", "wordcount", &grant);
    let (ok, outcome) = node.call_json("wordcount", &format!(r#"{{"dir": "{}"}}"#, s(&docs)));
    assert!(ok, "{outcome}");
    assert_eq!(outcome["result"]["value"]["words"], 3);
    let read = outcome["report"]["paths_read"]
        .as_array()
        .expect("paths_read");
    assert!(
        read.contains(&serde_json::json!(s(&docs.join("a.txt")))),
        "{read:?}"
    );
}

#[test]
fn call_reports_what_the_tool_was_denied() {
    let node = Node::new();
    node.install("hostile", "read-passwd", "hostile", "");
    let (ok, outcome) = node.call_json("read-passwd", "{}");
    assert!(ok, "{outcome}");
    assert_eq!(outcome["result"]["value"]["outcome"], "blocked");
    assert_eq!(outcome["report"]["denied"][0]["target"], "/etc/passwd");
    // The call is one ledger entry, with the denial in its capability report.
    let entry = node.last_entry();
    assert_eq!(entry["kind"], "tool.call", "{entry}");
    assert_eq!(entry["actor"], "operator:unsigned", "{entry}");
    assert_eq!(entry["subject"], "tool:read-passwd", "{entry}");
    assert_eq!(
        entry["details"]["capabilities"]["denied"][0]["target"], "/etc/passwd",
        "{entry}"
    );

    let out = node
        .vigil()
        .args(["call", "no-such-tool"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not admitted on this node"));
}
