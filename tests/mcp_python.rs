//! The official MCP Python SDK (pinned in scripts/deps.sh, installed in a
//! venv under target/) against the real `vigil` binary, over stdio
//! (`vigil mcp`) and streamable HTTP (`vigil serve`): tool list, a call, a
//! validation error, redacted output, a tool the caller may not use, and
//! approvals through MCP elicitation and through `vigil approve`/`deny` in
//! another process (tests/mcp_client/client.py). Afterwards the exported
//! ledger verifies with `vigil-verify` and holds one entry per call.

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use mcp_support::{AssertOk as _, Node, Served, ALICE_TOKEN, BOB_TOKEN};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python with the pinned SDK; runs scripts/deps.sh if missing.
fn python() -> PathBuf {
    let python = root().join("target/mcp-venv/bin/python");
    if !python.exists() {
        Command::new("bash")
            .arg(root().join("scripts/deps.sh"))
            .assert_ok();
    }
    assert!(
        python.exists(),
        "scripts/deps.sh did not create {}",
        python.display()
    );
    python
}

/// Runs `script` (under tests/mcp_client) with `args` and the agents'
/// tokens in its environment; its stdout, once it exited 0.
fn run_script(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(root().join("tests/mcp_client").join(script))
        .args(args)
        .env("VIGIL_TEST_TOKEN_ALICE", ALICE_TOKEN)
        .env("VIGIL_TEST_TOKEN_BOB", BOB_TOKEN)
        .output()
        .expect("run python client");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// Runs the client script; returns how many tool calls it made.
fn run_client(node: &Node, args: &[&str]) -> u64 {
    let vigil = env!("CARGO_BIN_EXE_vigil");
    let home = node.home();
    let home = home.to_string_lossy();
    let mut args = args.to_vec();
    args.extend(["--vigil", vigil, "--home", &home]);
    let stdout = run_script("client.py", &args);
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("summary line");
    summary["calls"].as_u64().expect("calls")
}

/// vigil-verify next to the vigil binary (built by `cargo test --workspace`),
/// else built now.
fn vigil_verify() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_vigil")).with_file_name("vigil-verify");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        Command::new(cargo)
            .args(["build", "-p", "vigil-ledger", "--bin", "vigil-verify"])
            .current_dir(root())
            .assert_ok();
    }
    bin
}

#[test]
fn python_sdk_over_stdio_and_http_then_the_ledger_verifies() {
    let node = Node::new("[mcp]\napproval_timeout_seconds = 60\n[approvals]\nmode = \"client\"\n");
    let stdio_calls = run_client(&node, &["stdio"]);

    let served = Served::start(&node);
    let url = served.url.clone();
    let http_calls = run_client(&node, &["http", "--url", &url]);
    served.stop();

    let bundle = node.path("ledger.bundle");
    node.vigil()
        .args(["audit", "export", "--out"])
        .arg(&bundle)
        .assert_ok();
    let verified = Command::new(vigil_verify())
        .arg(&bundle)
        .arg("--key")
        .arg(node.home().join("node.pub"))
        .assert_ok();
    let report = String::from_utf8_lossy(&verified.stdout);

    let entries = node.entries();
    let calls: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| matches!(e["kind"].as_str(), Some("tool.call" | "tool.denied")))
        .collect();
    assert_eq!(
        calls.len() as u64,
        stdio_calls + http_calls,
        "one ledger entry per tool call (verified bundle: {report})"
    );
    let decided_by: Vec<&str> = calls
        .iter()
        .filter_map(|e| e["details"]["approval"]["by"].as_str())
        .collect();
    assert!(
        decided_by.iter().any(|b| b.starts_with("elicitation:")),
        "{decided_by:?}"
    );
    assert!(
        decided_by.iter().any(|b| b.starts_with("operator:")),
        "{decided_by:?}"
    );
    let denied = calls.iter().filter(|e| e["kind"] == "tool.denied").count();
    assert!(denied >= 6, "refusals recorded: {denied}");
}

/// MCP 2026-07-28: the Python SDK's client completes an approval in-band
/// (`input_required` with an elicitation form, then the retry with the
/// answer); a declined one and forged, moved and replayed request states
/// are refused. Each attempt is one ledger entry, decided by the client's
/// user (`elicitation:alice`) or refused by the node (`node:request-state`).
#[test]
fn python_sdk_on_2026_07_28_approves_in_band() {
    let node = Node::new("[mcp]\napproval_timeout_seconds = 60\n[approvals]\nmode = \"client\"\n");
    let served = Served::start(&node);
    let stdout = run_script("inband.py", &["--url", &served.url, "--token", ALICE_TOKEN]);
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("summary line");
    assert_eq!(
        summary["asked"], 2,
        "the user was asked for each in-band approval"
    );
    served.stop();
    let calls: Vec<serde_json::Value> = node
        .entries()
        .into_iter()
        .filter(|e| matches!(e["kind"].as_str(), Some("tool.call" | "tool.denied")))
        .collect();
    let by: Vec<(String, String)> = calls
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_string(),
                e["details"]["approval"]["by"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("tool.call", "elicitation:alice"),
        ("tool.denied", "elicitation:alice"),
        ("tool.denied", "node:request-state"),
        ("tool.denied", "node:request-state"),
        ("tool.denied", "node:request-state"),
    ]
    .iter()
    .map(|(k, b)| (k.to_string(), b.to_string()))
    .collect();
    assert_eq!(by, expected, "one entry per attempt, in order");
    // Nothing went to the operator queue.
    let pending = node.vigil().args(["approvals", "--json"]).assert_ok();
    assert_eq!(String::from_utf8_lossy(&pending.stdout).trim(), "[]");
}
