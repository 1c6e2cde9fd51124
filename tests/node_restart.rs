//! What survives a node that stops or dies, through the real binary: the
//! checkpoint schedule counts from the last signed checkpoint (a node killed
//! every 300 entries still signs every 1000), `vigil audit verify` names an
//! uncovered tail as a warning rather than tampering, calls left waiting for
//! approval are answered as refused (`node:restart`) with an entry when the
//! node starts again, a stored package that no longer verifies is refused
//! with an entry at start, a call still running when the node stops is
//! recorded as given up (one entry, within the 5 s stop), and bulk imports
//! of JSON Lines are all-or-nothing per bad input and never carry a node
//! kind.

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

/// A package of the hostile example tool whose `endless-loop` may run for
/// 60 s, signed by the node's trusted publisher.
fn endless_package(node: &Node) -> std::path::PathBuf {
    let wasm = mcp_support::echo_wasm()
        .parent()
        .expect("tools/out")
        .join("hostile.wasm");
    node.package(
        "endless",
        "[package]\nname = \"acme/endless\"\nversion = \"1.0.0\"\ndescription = \"Spins.\"\n\n\
         [[tools]]\nname = \"endless-loop\"\ndescription = \"Spins until stopped.\"\n\
         input_schema = { type = \"object\" }\n\n[limits]\ntimeout_ms = 60000\n",
        &wasm,
    )
}

/// `vigil_calls_running` from the node's /metrics.
fn calls_running(mcp_url: &str) -> Option<f64> {
    use std::io::Read as _;
    let addr = mcp_url.strip_prefix("http://")?.strip_suffix("/mcp")?;
    let mut tcp = std::net::TcpStream::connect(addr).ok()?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    tcp.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix("vigil_calls_running "))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_call_running_when_the_node_stops_is_recorded_as_given_up() {
    let node = Node::new("");
    let pkg = endless_package(&node);
    node.vigil().arg("install").arg(&pkg).assert_ok();
    let (child, url) = serve(&node);
    let rt = mcp_support::runtime();
    let call_url = url.clone();
    let call = rt.spawn(async move {
        let config =
            StreamableHttpClientTransportConfig::with_uri(call_url).auth_header(ALICE_TOKEN);
        let client =
            ().serve(StreamableHttpClientTransport::from_config(config))
                .await
                .expect("connect");
        client
            .call_tool(mcp_support::call("endless-loop", serde_json::json!({})))
            .await
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while calls_running(&url) != Some(1.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the call never reached the sandbox"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let stopping = std::time::Instant::now();
    sigterm(child);
    let took = stopping.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "the node took {took:?} to stop with a call running"
    );
    call.abort();

    let entries = node.entries();
    let of_call: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["subject"] == "tool:endless-loop")
        .collect();
    assert_eq!(
        of_call.len(),
        1,
        "exactly one entry for the call: {of_call:?}"
    );
    assert_eq!(of_call[0]["kind"], "tool.denied");
    assert_eq!(of_call[0]["actor"], "agent:alice");
    assert_eq!(of_call[0]["details"]["code"], "node-stopping");
    // The last checkpoint, signed after it, covers it.
    let verified = node.vigil().args(["audit", "verify"]).assert_ok();
    assert!(text(&verified.stdout).starts_with("valid:"));
    assert!(
        !text(&verified.stderr).contains("warning"),
        "{}",
        text(&verified.stderr)
    );
}
