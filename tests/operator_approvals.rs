//! Who approves, proven: through a real `vigil serve` and a real MCP client
//! (rmcp over streamable HTTP), a call of a `high` tool waits for an
//! operator (the default approval mode is `operator`, so the agent's own
//! client cannot approve it). An unsigned decision claiming to be someone
//! (`USER=auditor-jane vigil deny ...`) and a decision signed with a key
//! the node does not trust are refused, each recorded as
//! `approval.refused`, and the call keeps waiting; operator jane's signed
//! approval resumes it, recorded as `approval.decided` with her statement
//! and signature, which `vigil-verify` checks offline from the exported
//! bundle. Held calls are capped per agent: past the cap a call is
//! refused `approval-unavailable` at once, with an entry, while other
//! calls are answered.

#[path = "mcp_support/mod.rs"]
mod mcp_support;
#[path = "verify_support/mod.rs"]
mod verify_support;

use std::time::Duration;

use mcp_support::{AssertOk as _, Node, Served, ALICE_TOKEN};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt as _;
use serde_json::{json, Value};
use verify_support::vigil_verify;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn of_kind<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter().filter(|e| e["kind"] == kind).collect()
}

/// An MCP client of agent alice on `served`.
async fn alice(served: &Served) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", served.url))
            .auth_header(ALICE_TOKEN),
    );
    ().serve(transport).await.expect("MCP client")
}

#[test]
fn only_a_trusted_operators_signed_decision_answers_a_held_call() {
    let node = Node::new("[mcp]\napproval_timeout_seconds = 120\n");
    node.vigil()
        .args(["key", "generate", "--out"])
        .arg(node.path("mallory"))
        .assert_ok();
    let served = Served::start(&node);
    let rt = mcp_support::runtime();
    let client = rt.block_on(alice(&served));
    let peer = client.peer().clone();
    let held_call = rt.spawn(async move {
        peer.call_tool(mcp_support::call("vault_read", json!({"text": "vault"})))
            .await
    });
    let id = mcp_support::first_held_call(&node);

    // Forged identity: an unsigned decision, whatever $USER says.
    let forged = node
        .vigil()
        .env("USER", "auditor-jane")
        .args(["deny", &id, "--reason", "looks wrong"])
        .output()
        .expect("deny");
    assert_eq!(forged.status.code(), Some(1));
    let err = text(&forged.stderr);
    assert!(err.contains("needs a decision signed"), "{err}");
    assert!(err.contains("the call still waits"), "{err}");

    // A well-formed signature by a key the node does not trust.
    let untrusted = node
        .vigil()
        .args(["deny", &id, "--reason", "trust me", "--key"])
        .arg(node.path("mallory.key"))
        .output()
        .expect("deny");
    assert_eq!(untrusted.status.code(), Some(1));
    assert!(
        text(&untrusted.stderr).contains("not a trusted operator"),
        "{}",
        text(&untrusted.stderr)
    );
    // The call still waits for an answer.
    let out = node.vigil().args(["approvals", "--json"]).assert_ok();
    assert!(text(&out.stdout).contains(&id));

    // Operator jane signs her approval; the call resumes.
    let approved = node
        .vigil()
        .args(["approve", &id, "--reason", "ticket 7", "--json", "--key"])
        .arg(node.path("jane.key"))
        .assert_ok();
    let approved: serde_json::Value =
        serde_json::from_slice(&approved.stdout).expect("approve --json prints JSON");
    assert_eq!(approved["id"], id.as_str(), "{approved}");
    assert_eq!(approved["decision"], "approved", "{approved}");
    assert_eq!(approved["tool"], "vault_read", "{approved}");
    let answered = rt.block_on(held_call).expect("join").expect("tools/call");
    assert_ne!(answered.is_error, Some(true), "{answered:?}");
    rt.block_on(async { client.cancel().await.ok() });

    let all = node.entries();
    let refused = of_kind(&all, "approval.refused");
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert!(
        all.iter().all(|e| !e["actor"]
            .as_str()
            .unwrap_or_default()
            .contains("auditor-jane")),
        "nobody is recorded as whoever $USER claims"
    );
    assert_eq!(refused[0]["actor"], "operator:unsigned");
    assert!(refused[1]["actor"]
        .as_str()
        .unwrap_or_default()
        .starts_with("operator:key-"));
    let decided = of_kind(&all, "approval.decided");
    assert_eq!(decided.len(), 1, "{decided:#?}");
    assert_eq!(decided[0]["actor"], "operator:jane");
    assert_eq!(decided[0]["decision"], "allow");
    let details = &decided[0]["details"];
    assert!(details["signature"].is_string(), "{details}");
    let call = of_kind(&all, "tool.call")
        .into_iter()
        .find(|e| e["subject"] == "tool:vault_read")
        .expect("the call's entry");
    let call_details = &call["details"];
    assert_eq!(call_details["approval"]["by"], "operator:jane");
    assert_eq!(call_details["approval"]["entry"], decided[0]["index"]);
    served.stop();

    // An auditor verifies jane's signature from the bundle alone.
    let bundle = node.path("audit.bundle");
    node.vigil()
        .args(["audit", "export", "--out"])
        .arg(&bundle)
        .assert_ok();
    let verified = std::process::Command::new(vigil_verify())
        .arg(&bundle)
        .arg("--key")
        .arg(node.home().join("node.pub"))
        .output()
        .expect("vigil-verify");
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert!(
        text(&verified.stdout).contains("1 signed approvals"),
        "{}",
        text(&verified.stdout)
    );
}

#[test]
fn held_calls_are_capped_per_agent_and_the_rest_are_refused_with_an_entry() {
    let node = Node::new(
        "[mcp]\napproval_timeout_seconds = 120\n[approvals]\nmax_pending_per_agent = 3\n",
    );
    let served = Served::start(&node);
    let rt = mcp_support::runtime();
    let client = rt.block_on(alice(&served));
    let mut held = Vec::new();
    for n in 0..3 {
        let peer = client.peer().clone();
        held.push(rt.spawn(async move {
            peer.call_tool(mcp_support::call(
                "vault_read",
                json!({ "text": format!("v{n}") }),
            ))
            .await
        }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = node.vigil().args(["approvals", "--json"]).assert_ok();
        let pending: Vec<Value> = serde_json::from_slice(&out.stdout).expect("approvals");
        if pending.len() == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "3 calls were not held"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The fourth is refused at once, and an unrelated call is answered.
    let (fourth, echo) = rt.block_on(async {
        let fourth = client
            .peer()
            .call_tool(mcp_support::call("vault_read", json!({"text": "v4"})))
            .await
            .expect("tools/call");
        let echo = client
            .peer()
            .call_tool(mcp_support::call("echo", json!({"text": "still served"})))
            .await
            .expect("tools/call");
        (fourth, echo)
    });
    assert_eq!(fourth.is_error, Some(true));
    assert!(
        format!("{fourth:?}").contains("max_pending_per_agent"),
        "{fourth:?}"
    );
    assert_ne!(echo.is_error, Some(true), "{echo:?}");
    let all = node.entries();
    let denied = of_kind(&all, "tool.denied");
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert!(denied[0]["details"]
        .to_string()
        .contains("approval-unavailable"));

    // Answering frees the places.
    let out = node.vigil().args(["approvals", "--json"]).assert_ok();
    let pending: Vec<Value> = serde_json::from_slice(&out.stdout).expect("approvals");
    for p in &pending {
        let id = p["id"].as_str().expect("id");
        node.vigil()
            .args(["deny", id, "--reason", "no", "--key"])
            .arg(node.path("jane.key"))
            .assert_ok();
    }
    for h in held {
        let r = rt.block_on(h).expect("join").expect("tools/call");
        assert_eq!(r.is_error, Some(true));
    }
    rt.block_on(async { client.cancel().await.ok() });
    served.stop();
    node.vigil().args(["audit", "verify"]).assert_ok();
}

/// `vigil call TOOL --args JSON [--key ...]`: its exit success and JSON.
fn operator_call(node: &Node, tool: &str, args: &str, key: Option<&str>) -> (bool, Value) {
    let mut cmd = node.vigil();
    cmd.args(["call", tool, "--json", "--args", args]);
    if let Some(key) = key {
        cmd.arg("--key").arg(node.path(key));
    }
    let out = cmd.output().expect("vigil call");
    let outcome = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), outcome)
}

#[test]
fn vigil_call_goes_through_the_pipeline_as_the_signing_operator() {
    let node = Node::new("");
    for served in [None, Some(Served::start(&node))] {
        let before = node.entries().len();
        // Arguments that break the input schema never run.
        let (ok, outcome) = operator_call(&node, "echo", r#"{"text":42,"extra":1}"#, None);
        assert!(!ok);
        assert_eq!(
            outcome["result"]["status"], "invalid-arguments",
            "{outcome}"
        );
        // Personal data in the output is redacted, as for an agent.
        let (ok, outcome) = operator_call(&node, "echo", r#"{"text":"mail a@b.co"}"#, None);
        assert!(ok, "{outcome}");
        let shown = outcome["result"]["value"].to_string();
        assert!(
            !shown.contains("a@b.co") && shown.contains("[REDACTED:EMAIL]"),
            "{shown}"
        );
        // A `high` tool needs a signed request; jane's is one.
        let (ok, outcome) = operator_call(&node, "vault_read", r#"{"text":"v"}"#, None);
        assert!(!ok);
        assert_eq!(
            outcome["result"]["status"], "approval-unavailable",
            "{outcome}"
        );
        let (ok, outcome) = operator_call(&node, "vault_read", r#"{"text":"v"}"#, Some("jane.key"));
        assert!(ok, "{outcome}");
        // A key the node does not trust is refused, and recorded.
        node.vigil()
            .args(["key", "generate", "--out"])
            .arg(node.path("mallory"))
            .output()
            .expect("key");
        let (ok, _) = operator_call(&node, "echo", r#"{"text":"x"}"#, Some("mallory.key"));
        assert!(!ok);

        let new = node.entries().split_off(before);
        let rows: Vec<(String, String, String)> = new
            .iter()
            .map(|e| {
                let field = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                let status = e["details"]["status"]
                    .as_str()
                    .or(e["details"]["code"].as_str())
                    .unwrap_or_default()
                    .to_string();
                (field("kind"), field("actor"), status)
            })
            .collect();
        assert_eq!(rows.len(), 5, "one entry per call: {rows:#?}");
        assert_eq!(
            rows[0],
            (
                "tool.denied".into(),
                "operator:unsigned".into(),
                "invalid-arguments".into()
            )
        );
        assert_eq!(
            rows[1],
            ("tool.call".into(), "operator:unsigned".into(), "ok".into())
        );
        assert_eq!(
            rows[2],
            (
                "tool.denied".into(),
                "operator:unsigned".into(),
                "approval-unavailable".into()
            )
        );
        assert_eq!(
            rows[3],
            ("tool.call".into(), "operator:jane".into(), "ok".into())
        );
        assert_eq!(rows[4].0, "tool.denied");
        assert_eq!(rows[4].2, "operator-unverified");
        assert!(rows[4].1.starts_with("operator:key-"), "{rows:#?}");
        // The same layout as an agent's call entry.
        assert_eq!(new[1]["details"]["package"], "acme/echo@1.0.0");
        assert_eq!(new[3]["details"]["approval"]["by"], "operator:jane");
        if let Some(served) = served {
            served.stop();
        }
        std::fs::remove_file(node.path("mallory.key")).ok();
        std::fs::remove_file(node.path("mallory.pub")).ok();
    }
}
