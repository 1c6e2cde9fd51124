//! Tokens this node mints for its agents and the behavioural watch, on a
//! running `vigil serve`, through the real binary:
//!
//! - `vigil agent token` mints a scoped, expiring token (recorded, the
//!   token itself never stored); it calls within its scope only, expires,
//!   and `vigil agent revoke` ends it at the next request; a forged token
//!   is refused; each refusal is an `agent.token-refused` entry;
//! - an agent that bursts past its watch rule is suspended within the
//!   window: the breaching call and later ones are refused
//!   `agent-suspended`, its tokens (static and minted) are rejected, an
//!   `agent.suspended` entry carries the evidence, the suspension survives
//!   a restart, and `vigil agent resume` (recorded) lifts it; a dry-run
//!   watch records `agent.anomaly` and suspends nothing.

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use std::time::Duration;

use mcp_support::raw::{self, RawClient};
use mcp_support::{AssertOk as _, Node, Served, ALICE_TOKEN, BOB_TOKEN};
use serde_json::{json, Value};

/// Initializes a session with `token` and calls `tool` with `text`: the
/// HTTP status of the first request and the call's text (`ERROR ...` for a
/// tool error), or the refusal's body.
fn call(url: &str, token: &str, tool: &str, text: &str) -> (u16, String) {
    let a = raw::attempt(url, token, tool, &json!({ "text": text }));
    let Some(reply) = a.reply else {
        return (a.status, a.refusal);
    };
    let text = RawClient::text_of(&reply);
    if reply["result"]["isError"] == json!(true) {
        (200, format!("ERROR {text}"))
    } else {
        (200, text)
    }
}

fn mint(node: &Node, args: &[&str]) -> Value {
    let out = node
        .vigil()
        .args(["agent", "token", "--json"])
        .args(args)
        .assert_ok();
    serde_json::from_slice(&out.stdout).expect("token JSON")
}

fn of_kind(node: &Node, kind: &str) -> Vec<Value> {
    node.entries()
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// A node whose `bob` is watched (6 calls a minute at most) and whose
/// `alice` is watched in dry-run mode (2 a minute).
fn watched_node() -> Node {
    let node = Node::new("[auth]\nleeway_seconds = 1\n");
    let path = node.home().join("vigil.toml");
    let config = std::fs::read_to_string(&path).expect("vigil.toml");
    let config = config.replacen(
        "\n[[agents]]\nname = \"bob\"",
        "[agents.watch]\nmode = \"dry-run\"\nmax_calls_per_window = 2\n\n[[agents]]\nname = \"bob\"",
        1,
    ) + "[agents.watch]\nwindow_secs = 60\nmax_calls_per_window = 6\n";
    std::fs::write(&path, config).expect("write vigil.toml");
    node
}

#[test]
fn minted_tokens_are_scoped_expire_and_are_revoked_live() {
    let node = watched_node();
    let served = Served::start(&node);
    let url = served.url.clone();

    // Scoped to echo: echo calls, echo_typed is out of scope.
    let minted = mint(
        &node,
        &["--agent", "alice", "--ttl", "1h", "--tools", "echo"],
    );
    let token = minted["token"].as_str().expect("token").to_string();
    assert_eq!(minted["scope"], "tools:echo");
    let (status, text) = call(&url, &token, "echo", "scoped");
    assert_eq!(status, 200);
    assert!(
        text.contains("scoped") && !text.starts_with("ERROR"),
        "{text}"
    );
    let (_, text) = call(&url, &token, "echo_typed", "x");
    assert!(
        text.starts_with("ERROR") && text.contains("out-of-scope"),
        "{text}"
    );
    // The issue is recorded, without the token.
    let issued = of_kind(&node, "agent.token-issued");
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["details"]["token_id"], minted["token_id"]);
    let ledger = node
        .entries()
        .iter()
        .map(Value::to_string)
        .collect::<String>();
    assert!(
        !ledger.contains(&token),
        "the token itself is never recorded"
    );

    // A token cannot widen the agent's allow-list.
    let out = node
        .vigil()
        .args(["agent", "token", "--agent", "bob", "--tools", "echo_typed"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not call"));

    // Forged: claims of a longer-lived token under the same signature.
    let (head, signature) = token.rsplit_once('.').expect("signature");
    let claims = head.strip_prefix("vgt1.").expect("prefix");
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut forged_claims: Value =
        serde_json::from_slice(&engine.decode(claims).expect("claims")).expect("claims JSON");
    forged_claims["scope"] = json!("tools:*");
    let forged = format!(
        "vgt1.{}.{signature}",
        engine.encode(forged_claims.to_string())
    );
    assert_eq!(call(&url, &forged, "echo", "x").0, 401);
    let refused = of_kind(&node, "agent.token-refused");
    assert_eq!(
        refused.last().expect("refusal")["details"]["code"],
        "bad-signature"
    );

    // Expiry: a 2 s token after 4 s (1 s leeway).
    let brief = mint(&node, &["--agent", "alice", "--ttl", "2s"]);
    let brief = brief["token"].as_str().expect("token");
    assert_eq!(call(&url, brief, "echo", "x").0, 200);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(call(&url, brief, "echo", "x").0, 401);
    let refused = of_kind(&node, "agent.token-refused");
    assert_eq!(
        refused.last().expect("refusal")["details"]["code"],
        "token-expired"
    );

    // Revocation through the running node: the next request is refused.
    let mut open = RawClient::connect(raw::addr(&url), &token);
    assert_eq!(open.initialize().expect("initialize").status, 200);
    node.vigil()
        .args(["agent", "revoke", "--token", &token, "--reason", "leaked"])
        .assert_ok();
    let reply = open
        .post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}).to_string())
        .expect("post");
    assert_eq!(
        reply.status, 401,
        "an open session's next request is refused"
    );
    assert_eq!(call(&url, &token, "echo", "x").0, 401);
    let refused = of_kind(&node, "agent.token-refused");
    assert_eq!(
        refused.last().expect("refusal")["details"]["code"],
        "token-revoked"
    );
    let revoked = of_kind(&node, "agent.token-revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["details"]["token_id"], minted["token_id"]);
    // Every token of an agent at once.
    let other = mint(&node, &["--agent", "alice"]);
    let other = other["token"].as_str().expect("token");
    assert_eq!(call(&url, other, "echo", "x").0, 200);
    node.vigil()
        .args(["agent", "revoke", "--agent", "alice"])
        .assert_ok();
    assert_eq!(call(&url, other, "echo", "x").0, 401);
    // The static development token is not a minted one: it still works.
    assert_eq!(call(&url, ALICE_TOKEN, "echo", "x").0, 200);

    served.stop();
    // A restart keeps the revocations.
    let served = Served::start(&node);
    assert_eq!(call(&served.url, other, "echo", "x").0, 401);
    served.stop();
    node.vigil().args(["audit", "verify"]).assert_ok();
}

#[test]
fn a_bursting_agent_is_suspended_until_an_operator_resumes_it() {
    let node = watched_node();
    let served = Served::start(&node);
    let url = served.url.clone();
    let minted = mint(&node, &["--agent", "bob", "--ttl", "1h"]);
    let minted = minted["token"].as_str().expect("token").to_string();

    // Six calls a minute are bob's limit; the seventh breaches it.
    let mut client = RawClient::connect(raw::addr(&url), BOB_TOKEN);
    assert_eq!(client.initialize().expect("initialize").status, 200);
    for i in 0..6 {
        let reply = client
            .call("echo", &json!({"text": format!("n{i}")}))
            .expect("call");
        assert_eq!(
            reply["result"]["isError"],
            json!(false),
            "call {i}: {reply}"
        );
    }
    let reply = client
        .call("echo", &json!({"text": "burst"}))
        .expect("call");
    let text = RawClient::text_of(&reply);
    assert!(text.contains("agent-suspended"), "{text}");

    let suspended = of_kind(&node, "agent.suspended");
    assert_eq!(suspended.len(), 1, "one suspension");
    let evidence = &suspended[0]["details"]["evidence"][0];
    assert_eq!(suspended[0]["subject"], "agent:bob");
    assert_eq!(evidence["rule"], "calls-per-window");
    assert_eq!(evidence["observed"], json!(7.0));
    assert_eq!(evidence["limit"], json!(6.0));
    let denied = of_kind(&node, "tool.denied");
    assert_eq!(
        denied.last().expect("denied")["details"]["code"],
        "agent-suspended"
    );

    // Its tokens are rejected at the door: the static one, a minted one,
    // and requests on the session it had open.
    assert_eq!(call(&url, BOB_TOKEN, "echo", "x").0, 401);
    assert_eq!(call(&url, &minted, "echo", "x").0, 401);
    let reply = client
        .post(&json!({"jsonrpc": "2.0", "id": 99, "method": "tools/list"}).to_string())
        .expect("post");
    assert_eq!(reply.status, 401);
    let refused = of_kind(&node, "agent.token-refused");
    assert_eq!(
        refused.last().expect("refusal")["details"]["code"],
        "agent-suspended"
    );
    // Other agents are untouched.
    assert_eq!(call(&url, ALICE_TOKEN, "echo", "x").0, 200);
    // The alert is in the metrics.
    let metrics = mcp_support::runtime().block_on(async {
        reqwest::get(url.replace("/mcp", "/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    });
    assert!(
        metrics.contains("vigil_agent_anomalies_total{agent=\"bob\",rule=\"calls-per-window\",mode=\"enforce\"} 1"),
        "{metrics}"
    );
    let status = node.vigil().args(["agent", "status", "--json"]).assert_ok();
    let status: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["bob"]["rule"], "calls-per-window");

    // A restart does not lift it.
    served.stop();
    let served = Served::start(&node);
    let url = served.url.clone();
    assert_eq!(call(&url, BOB_TOKEN, "echo", "x").0, 401);

    // The operator lifts it, live; recorded.
    node.vigil()
        .args([
            "agent",
            "resume",
            "bob",
            "--reason",
            "burst explained by the team",
        ])
        .assert_ok();
    let (status, text) = call(&url, BOB_TOKEN, "echo", "back");
    assert_eq!(status, 200);
    assert!(
        text.contains("back") && !text.starts_with("ERROR"),
        "{text}"
    );
    let resumed = of_kind(&node, "agent.resumed");
    assert_eq!(resumed.len(), 1);
    assert_eq!(
        resumed[0]["details"]["reason"],
        "burst explained by the team"
    );
    // Resuming an agent that is not suspended is an error.
    let again = node
        .vigil()
        .args(["agent", "resume", "bob"])
        .output()
        .expect("run");
    assert!(!again.status.success());

    // Dry run: alice breaches her rule of 2 calls a minute; recorded as
    // an anomaly, she is not suspended.
    for i in 0..4 {
        let (status, text) = call(&url, ALICE_TOKEN, "echo", &format!("a{i}"));
        assert_eq!(status, 200);
        assert!(!text.starts_with("ERROR"), "dry run: call {i} runs: {text}");
    }
    let anomalies = of_kind(&node, "agent.anomaly");
    assert!(!anomalies.is_empty(), "dry-run breaches are recorded");
    assert_eq!(anomalies[0]["details"]["mode"], "dry-run");
    assert_eq!(
        of_kind(&node, "agent.suspended").len(),
        1,
        "no new suspension"
    );
    served.stop();
    node.vigil().args(["audit", "verify"]).assert_ok();
}
