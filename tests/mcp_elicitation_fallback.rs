//! A client that declares elicitation but negotiates the newest MCP protocol
//! version (2026-07-28, which forbids server-to-client requests) still gets
//! its `high` sensitivity call decided by its user, in-band: the node
//! answers `input_required` with an approval form and an opaque request
//! state, and the client's retry with the answer runs the call (no operator
//! queue, no held request). Two ways to get there: a session opened on the
//! newest version (`server/discover`), and a session initialized on
//! 2025-11-25 with elicitation whose call names the newest version in its
//! `_meta`. Over stdio (`vigil mcp`) and streamable HTTP (`vigil serve`),
//! with the official Rust SDK (rmcp) as the client; the Python SDK's
//! automatic flow is in tests/mcp_python.rs.

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use mcp_support::{AssertOk as _, Node, Served, ALICE_TOKEN};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientCapabilities, ClientConfig, ClientRequest,
    Implementation, ProtocolVersion, RequestMetaObject, ServerResult,
};
use rmcp::service::{PeerRequestOptions, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientLifecycleMode, ClientServiceExt as _, RoleClient, ServiceExt as _};

/// A client declaring form elicitation, on the newest protocol version. Its
/// (default) elicitation handler would decline: if the node asked through
/// elicitation anyway, the call would be denied and the test would fail.
fn client() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::builder().enable_elicitation().build(),
        Implementation::new("vigil-newest-protocol-test", "1.0.0"),
    )
}

fn newest() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::LATEST],
    }
}

/// Calls `vault_read` on the newest protocol: the node answers
/// `input_required` with an approval form and a request state (it may not
/// send the client a request), the test answers the form like the client's
/// user would and calls again with the answer and the state; the call then
/// runs. With `newest_meta` the request's `_meta` names the newest protocol
/// (for a session initialized on 2025-11-25 with elicitation).
async fn approved_in_band(
    running: RunningService<RoleClient, ClientConfig>,
    newest_meta: bool,
    label: &str,
) {
    let mut args = serde_json::Map::new();
    args.insert("text".into(), "vault".into());
    let options = || {
        let mut options = PeerRequestOptions::no_options();
        if newest_meta {
            let mut meta = RequestMetaObject::new();
            meta.set_protocol_version(ProtocolVersion::V_2026_07_28);
            meta.set_client_capabilities(
                ClientCapabilities::builder().enable_elicitation().build(),
            );
            options = options.with_meta(meta);
        }
        options
    };
    let send = |params: CallToolRequestParams| {
        let running = &running;
        let options = options();
        async move {
            running
                .send_request_with_option(
                    ClientRequest::CallToolRequest(CallToolRequest::new(params)),
                    options,
                )
                .await
                .expect("send tools/call")
                .await_response()
                .await
                .expect("tools/call")
        }
    };
    let first = send(CallToolRequestParams::new("vault_read").with_arguments(args.clone())).await;
    let ServerResult::InputRequiredResult(asked) = first else {
        panic!("{label}: expected input_required, got {first:?}");
    };
    let form = asked
        .input_requests
        .as_ref()
        .and_then(|r| r.get("approval"))
        .expect("an approval form");
    assert!(
        serde_json::to_string(form)
            .expect("form JSON")
            .contains("vault_read"),
        "{label}: the form names the tool"
    );
    let state = asked.request_state.clone().expect("a request state");
    let mut answers = std::collections::BTreeMap::new();
    answers.insert(
        "approval".to_string(),
        serde_json::json!({"action": "accept", "content": {"approve": true, "reason": "checked"}}),
    );
    let second = send(
        CallToolRequestParams::new("vault_read")
            .with_arguments(args)
            .with_input_responses(answers)
            .with_request_state(state),
    )
    .await;
    let ServerResult::CallToolResult(result) = second else {
        panic!("{label}: unexpected response {second:?}");
    };
    assert_ne!(
        result.is_error,
        Some(true),
        "{label}: the approved call runs: {result:?}"
    );
    let _ = running.cancel().await;
}

fn stdio(node: &Node) -> TokioChildProcess {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_HOME")
        .arg("--home")
        .arg(node.home())
        .args(["mcp", "--agent", "local"]);
    TokioChildProcess::new(cmd).expect("spawn vigil mcp")
}

/// Opens an MCP session over streamable HTTP as agent `alice`.
async fn http(
    url: &str,
    lifecycle: Option<ClientLifecycleMode>,
) -> RunningService<RoleClient, ClientConfig> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(ALICE_TOKEN);
    let transport = StreamableHttpClientTransport::from_config(config);
    match lifecycle {
        Some(l) => client().serve_with_lifecycle(transport, l).await,
        None => client().serve(transport).await,
    }
    .expect("connect over HTTP")
}

#[test]
fn newest_protocol_approves_in_band() {
    let node = Node::new("[mcp]\napproval_timeout_seconds = 60\n[approvals]\nmode = \"client\"\n");
    let rt = mcp_support::runtime();
    rt.block_on(async {
        let running = client().serve_with_lifecycle(stdio(&node), newest()).await;
        let running = running.expect("discover over stdio");
        approved_in_band(running, false, "stdio, discover").await;
        let running = client().serve(stdio(&node)).await.expect("stdio");
        approved_in_band(running, true, "stdio, per-request newest").await;
    });
    let served = Served::start(&node);
    rt.block_on(async {
        let running = http(&served.url, Some(newest())).await;
        approved_in_band(running, false, "http, discover").await;
        let running = http(&served.url, None).await;
        approved_in_band(running, true, "http, per-request newest").await;
    });
    served.stop();

    let tail = node
        .vigil()
        .args(["audit", "tail", "-n", "1000", "--json"])
        .assert_ok();
    let approvals: Vec<String> = String::from_utf8_lossy(&tail.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "tool.call" && e["subject"] == "tool:vault_read")
        .filter_map(|e| e["details"]["approval"]["by"].as_str().map(String::from))
        .collect();
    assert_eq!(approvals.len(), 4, "{approvals:?}");
    assert!(
        approvals.iter().all(|by| by.starts_with("elicitation:")),
        "decided by the client's user in-band: {approvals:?}"
    );
    // Nothing waited in the operator queue.
    let pending = node.vigil().args(["approvals", "--json"]).assert_ok();
    assert_eq!(String::from_utf8_lossy(&pending.stdout).trim(), "[]");
}
