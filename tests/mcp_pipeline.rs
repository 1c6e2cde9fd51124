//! The call pipeline in-process on a real node home (real package store,
//! sandbox, sled ledger): each step's refusal, the approval queue answered
//! from another thread, output schemas, redaction, and exactly one ledger
//! entry per call.

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use std::time::Duration;

use serde_json::json;
use vigil::mcp::pipeline::{Approver, Asked, QueueOnly};
use vigil::mcp::{Catalog, Pipeline};
use vigil::node::audit::Auditor;
use vigil::node::config::Config;
use vigil::node::home::Home;
use vigil::policy::{Answer, ApprovalQueue, Decision, Refusal};
use vigil::sandbox::{Sandbox, SandboxConfig};

fn pipeline(node: &mcp_support::Node) -> Pipeline {
    let home = Home::at(node.home());
    let config = Config::load(&home.config_path()).expect("config");
    let sandbox =
        Sandbox::new(&SandboxConfig::new(home.cache_dir().join("wasm"))).expect("sandbox");
    let trust = vigil::trust::file::load(&home.trust_path()).expect("trust store");
    let (catalog, skipped) = Catalog::load(&home, &config, &sandbox, &trust).expect("catalog");
    assert!(skipped.is_empty(), "{skipped:?}");
    let key = home.node_signing_key(None).expect("node key");
    let auditor = Auditor::open(&home, &config, Some(key)).expect("auditor");
    let env = |v: &str| (v == "VIGIL_TEST_TOKEN_BOB").then(|| mcp_support::BOB_TOKEN.to_string());
    Pipeline::new(
        catalog,
        &config,
        env,
        ApprovalQueue::new(home.approvals_dir()),
        auditor,
        4,
    )
}

use mcp_support::runtime;

/// Answers the next held call from another thread, as `operator:test`.
fn operator(
    queue: ApprovalQueue,
    answer: Answer,
    reason: &'static str,
) -> std::thread::JoinHandle<vigil::policy::ApprovalRequest> {
    std::thread::spawn(move || loop {
        if let Some(r) = queue.pending().expect("pending").into_iter().next() {
            let d = Decision {
                answer,
                by: "operator:test".into(),
                reason: reason.into(),
                entry: None,
            };
            queue.decide(&r.id, &d).expect("decide");
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    })
}

#[test]
fn every_step_refuses_with_a_reason_and_records_exactly_one_entry() {
    let node = mcp_support::Node::new(
        "[mcp]\napproval_timeout_seconds = 1\ntool_calls_per_minute = { echo_typed = 2 }\n",
    );
    let p = pipeline(&node);
    let rt = runtime();
    let ledger_size = || p.auditor().ledger().size();
    let expect_one_entry = |agent: &str, tool: &str, args: serde_json::Value| {
        let before = ledger_size();
        let reply = rt.block_on(p.call(agent, tool, args, &QueueOnly));
        assert_eq!(
            ledger_size(),
            before + 1,
            "one entry for {tool} by {agent}: {reply:?}"
        );
        let entry = p
            .auditor()
            .ledger()
            .entry(before)
            .expect("read")
            .expect("entry");
        assert_eq!(entry.actor, format!("agent:{agent}"));
        (reply, entry)
    };

    let (reply, entry) = expect_one_entry("alice", "echo", json!({"text": "mail bob@example.org"}));
    assert_eq!(
        reply.result,
        Ok(json!({"echo": {"text": "mail [REDACTED:EMAIL]"}}))
    );
    assert_eq!(
        (entry.kind.as_str(), entry.decision.as_str()),
        ("tool.call", "allow")
    );
    assert!(entry.details.contains("\"email\":1"), "{}", entry.details);

    let (reply, entry) = expect_one_entry("mallory", "echo", json!({"text": "x"}));
    assert!(matches!(reply.result, Err(Refusal::UnknownCaller(_))));
    assert_eq!(
        (entry.kind.as_str(), entry.decision.as_str()),
        ("tool.denied", "deny")
    );

    let (reply, _) = expect_one_entry("alice", "nope", json!({}));
    assert!(matches!(reply.result, Err(Refusal::UnknownTool { .. })));

    let (reply, entry) = expect_one_entry("bob", "vault_read", json!({"text": "x"}));
    let refusal = reply.result.expect_err("bob may not");
    assert!(refusal.to_string().contains("`tools`"), "{refusal}");
    assert!(entry.details.contains("tool-not-allowed"));

    let (reply, _) = expect_one_entry("alice", "echo", json!({"text": 5, "extra": true}));
    match reply.result {
        Err(Refusal::InvalidArguments { problems, .. }) => {
            assert!(
                problems.iter().any(|p| p.starts_with("/text")),
                "{problems:?}"
            )
        }
        other => panic!("{other:?}"),
    }

    let (reply, _) = expect_one_entry("alice", "echo_typed", json!({"text": "typed"}));
    assert!(reply.structured && reply.result.is_ok(), "{reply:?}");
    let _ = expect_one_entry("alice", "echo_typed", json!({}));
    let (reply, _) = expect_one_entry("alice", "echo_typed", json!({}));
    assert!(
        matches!(reply.result, Err(Refusal::RateLimited { ref scope, .. }) if scope == "tool `echo_typed`"),
        "{reply:?}"
    );

    // Nobody answers: the hold times out after 1 s and the call is refused.
    let (reply, entry) = expect_one_entry("alice", "vault_read", json!({"text": "x"}));
    assert!(
        matches!(reply.result, Err(Refusal::ApprovalTimedOut { .. })),
        "{reply:?}"
    );
    assert!(entry.details.contains("node:timeout"), "{}", entry.details);
}

#[test]
fn a_held_call_resumes_when_the_operator_approves_and_stops_when_denied() {
    let node = mcp_support::Node::new("[mcp]\napproval_timeout_seconds = 30\n");
    let p = pipeline(&node);
    let rt = runtime();
    let queue = p.approvals().clone();
    for (answer, reason) in [(Answer::Approve, "fine"), (Answer::Deny, "not today")] {
        let operator = operator(queue.clone(), answer, reason);
        let before = p.auditor().ledger().size();
        let reply =
            rt.block_on(p.call("alice", "vault_read", json!({"text": "vault"}), &QueueOnly));
        let held = operator.join().expect("operator");
        assert_eq!(
            (held.agent.as_str(), held.tool.as_str()),
            ("alice", "vault_read")
        );
        assert_eq!(p.auditor().ledger().size(), before + 1);
        let entry = p
            .auditor()
            .ledger()
            .entry(before)
            .expect("read")
            .expect("entry");
        assert!(entry.details.contains("operator:test"), "{}", entry.details);
        match answer {
            Answer::Approve => assert_eq!(reply.result, Ok(json!({"echo": {"text": "vault"}}))),
            Answer::Deny => {
                let refusal = reply.result.expect_err("denied");
                assert!(refusal.to_string().contains("not today"), "{refusal}");
            }
        }
        assert!(queue.pending().expect("pending").is_empty());
    }
}

/// An approver standing for a client whose elicitation cannot be used
/// (`Unavailable`) or whose human answers (`Answered`).
struct Client(Asked);

impl Approver for Client {
    async fn ask(&self, _: &str, _: &str, _: &serde_json::Value) -> Asked {
        self.0.clone()
    }
}

#[test]
fn failed_elicitation_falls_back_to_the_queue_but_a_human_no_is_final() {
    let node = mcp_support::Node::new(
        "[mcp]\napproval_timeout_seconds = 30\n[approvals]\nmode = \"client\"\n",
    );
    let p = pipeline(&node);
    let rt = runtime();
    let queue = p.approvals().clone();
    let operator = operator(queue.clone(), Answer::Approve, "fine");
    let failing = Client(Asked::Unavailable(
        "elicitation failed: server-to-client requests are not allowed".into(),
    ));
    let reply = rt.block_on(p.call("alice", "vault_read", json!({"text": "v"}), &failing));
    operator.join().expect("operator");
    assert_eq!(reply.result, Ok(json!({"echo": {"text": "v"}})));
    let index = reply.ledger_index.expect("recorded");
    let entry = p
        .auditor()
        .ledger()
        .entry(index)
        .expect("read")
        .expect("entry");
    assert!(entry.details.contains("operator:test"), "{}", entry.details);

    let declined = Client(Asked::Answered(Decision {
        answer: Answer::Deny,
        by: "elicitation:alice".into(),
        reason: "the user answered decline".into(),
        entry: None,
    }));
    let reply = rt.block_on(p.call("alice", "vault_read", json!({"text": "v"}), &declined));
    let refusal = reply.result.expect_err("declined by the human");
    assert_eq!(refusal.code(), "approval-denied", "{refusal}");
    assert!(queue.pending().expect("pending").is_empty());
}
