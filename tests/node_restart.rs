//! What survives a node that stops or dies, through the real binary: the
//! checkpoint schedule counts from the last signed checkpoint (a node killed
//! every 300 entries still signs every 1000), `vigil audit verify` names an
//! uncovered tail as a warning rather than tampering, calls left waiting for
//! approval are answered as refused (`node:restart`) with an entry when the
//! node starts again, a stored package that no longer verifies is refused
//! with an entry at start, and bulk imports of JSON Lines are all-or-nothing
//! per bad input and never carry a node kind.

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Output, Stdio};

use mcp_support::{AssertOk as _, Node, ALICE_TOKEN};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt as _;

/// Starts `vigil serve` and returns it with its MCP URL once it serves.
fn serve(node: &Node) -> (Child, String) {
    let mut child = node
        .vigil()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn vigil serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = lines.next().expect("a first line").expect("read");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(String::from)
        .unwrap_or_else(|| panic!("no URL in {line:?}"));
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn kill9(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn sigterm(mut child: Child) -> Output {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    assert!(status.success(), "vigil serve exited with {status}");
    Output {
        status,
        stdout: Vec::new(),
        stderr: Vec::new(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn jsonl(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| {
            format!("{{\"actor\":\"ci\",\"subject\":\"{tag}:{i}\",\"details\":{{\"i\":{i}}}}}\n")
        })
        .collect()
}

/// Pipes `input` into `vigil audit append --jsonl -`.
fn import(node: &Node, input: &str) -> Output {
    let mut child = node
        .vigil()
        .args(["audit", "append", "--jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn import");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("import")
}

#[test]
fn a_node_killed_every_300_entries_still_signs_every_1000() {
    let node =
        Node::new("[ledger]\ncheckpoint_every_entries = 1000\ncheckpoint_every_seconds = 0\n");
    let before = node.entries().len();
    for cycle in 0..5 {
        let (child, _) = serve(&node);
        let out = import(&node, &jsonl(300, &format!("cycle{cycle}")));
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("recorded 300 events"));
        kill9(child);
    }
    let total = before + 1500;
    assert_eq!(node.entries().len(), total);
    // With the schedule counting from the last checkpoint, one was signed
    // when the ledger first held 1000 entries (during the fourth run): only
    // what came after it is uncovered, and that is a warning.
    let verified = node.vigil().args(["audit", "verify"]).assert_ok();
    let (out, err) = (text(&verified.stdout), text(&verified.stderr));
    assert!(out.starts_with("valid:"), "{out}");
    assert!(out.contains("1 signed checkpoints"), "{out}");
    let uncovered = total - 1000.max(before + 1200);
    assert!(
        err.contains(&format!("the last {uncovered} entries"))
            && err.contains("vigil audit checkpoint"),
        "{err}"
    );
    // A clean stop signs the rest.
    let (child, _) = serve(&node);
    sigterm(child);
    let verified = node.vigil().args(["audit", "verify"]).assert_ok();
    assert!(text(&verified.stdout).contains("2 signed checkpoints"));
    assert!(
        !text(&verified.stderr).contains("warning"),
        "{}",
        text(&verified.stderr)
    );
}

#[test]
fn held_approvals_of_a_dead_node_are_refused_on_restart() {
    let node = Node::new("[mcp]\napproval_timeout_seconds = 120\n");
    let (child, url) = serve(&node);
    let rt = mcp_support::runtime();
    let call = rt.spawn(async move {
        let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(ALICE_TOKEN);
        let client =
            ().serve(StreamableHttpClientTransport::from_config(config))
                .await
                .expect("connect");
        client
            .call_tool(mcp_support::call(
                "vault_read",
                serde_json::json!({"text": "x"}),
            ))
            .await
    });
    let id = mcp_support::first_held_call(&node);
    kill9(child);
    // The client's call has no answer coming: the node died holding it.
    call.abort();
    // The node is gone; the held call's file is still there.
    let out = node.vigil().args(["approvals", "--json"]).assert_ok();
    assert!(text(&out.stdout).contains(&id));

    let (child, _) = serve(&node);
    let out = node.vigil().args(["approvals", "--json"]).assert_ok();
    assert!(!text(&out.stdout).contains(&id), "{}", text(&out.stdout));
    let approve = node
        .vigil()
        .args(["approve", &id])
        .output()
        .expect("approve");
    assert!(
        !approve.status.success(),
        "an answered call cannot be approved"
    );
    assert!(text(&approve.stderr).contains("no pending approval"));
    sigterm(child);
    let refused: Vec<serde_json::Value> = node
        .entries()
        .into_iter()
        .filter(|e| e["kind"] == "tool.denied" && e["details"]["approval_id"] == id.as_str())
        .collect();
    assert_eq!(refused.len(), 1, "one refusal entry for the held call");
    assert_eq!(refused[0]["details"]["approval"]["by"], "node:restart");
}

#[test]
fn a_stored_package_that_no_longer_verifies_is_refused_with_an_entry_at_start() {
    let node = Node::new("");
    let stored: Vec<_> = std::fs::read_dir(node.home().join("packages"))
        .expect("packages")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "vpkg"))
        .collect();
    assert_eq!(stored.len(), 1);
    let mut bytes = std::fs::read(&stored[0]).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&stored[0], bytes).expect("tamper");

    let (child, _) = serve(&node);
    let tools = node
        .vigil()
        .args(["tools", "--json"])
        .output()
        .expect("tools");
    assert_eq!(text(&tools.stdout).trim(), "[]", "nothing is served");
    sigterm(child);
    let startup: Vec<serde_json::Value> = node
        .entries()
        .into_iter()
        .filter(|e| {
            e["kind"] == "package.refused"
                && e["actor"] == "node"
                && e["details"]["occasion"] == "startup"
        })
        .collect();
    assert_eq!(startup.len(), 1, "the node's start recorded the refusal");
}

#[test]
fn bulk_import_is_checked_before_anything_is_recorded() {
    let node = Node::new("");
    let before = node.entries().len();
    let out = import(&node, &jsonl(12_000, "bulk"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("recorded 12000 events"),
        "{}",
        text(&out.stdout)
    );
    let all = node.entries();
    assert_eq!(all.len(), before + 12_000);
    assert_eq!(all[before + 11_999]["subject"], "bulk:11999");
    assert_eq!(all[before]["kind"], "external");

    // A malformed line: nothing is recorded.
    let bad = format!("{}not json\n", jsonl(10, "bad"));
    let out = import(&node, &bad);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("line 11"),
        "{}",
        text(&out.stderr)
    );
    // An outside event may not pass for the node's own decision.
    let forged = "{\"actor\":\"agent:x\",\"subject\":\"tool:echo\",\"kind\":\"tool.call\",\"decision\":\"allow\"}\n";
    let out = import(&node, forged);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("reserved"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(node.entries().len(), before + 12_000);
}
