//! A client that declares elicitation but negotiates the newest MCP protocol
//! version (2026-07-28, which forbids server-to-client requests) still gets
//! its `high` sensitivity call decided: the node cannot ask through
//! elicitation, so the call waits in the operator queue and `vigil approve`
//! answers it. Two ways to get there: a session opened on the newest
//! version (`server/discover`), and a session initialized on 2025-11-25
//! with elicitation whose call names the newest version in its `_meta`
//! (there the client looks able to answer, but rmcp refuses to send the
//! request). Over stdio (`vigil mcp`) and streamable HTTP (`vigil serve`),
//! with the official Rust SDK (rmcp) as the client.

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use std::time::{Duration, Instant};

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

/// Approves the next held call with `vigil approve`, from another thread,
/// like an operator watching `vigil approvals`.
fn operator_approves(node: &Node) -> std::thread::JoinHandle<String> {
    let home = node.home();
    std::thread::spawn(move || {
        let vigil = || {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
            cmd.env_remove("VIGIL_HOME").arg("--home").arg(&home);
            cmd
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let out = vigil().args(["approvals", "--json"]).assert_ok();
            let pending: Vec<serde_json::Value> =
                serde_json::from_slice(&out.stdout).expect("approvals --json");
            if let Some(id) = pending.first().and_then(|p| p["id"].as_str()) {
                vigil()
                    .args(["approve", id, "--reason", "checked by the operator"])
                    .assert_ok();
                return id.to_string();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no call was held for approval within 60 s");
    })
}

/// Calls `vault_read` while the operator approves through the queue, and
/// checks the call succeeded. With `newest_meta` the request's `_meta`
/// names the newest protocol (for a session initialized on 2025-11-25 with
/// elicitation: the node sees a client with elicitation, but rmcp may not
/// send it a request for this call).
async fn approved_through_queue(
    node: &Node,
    running: RunningService<RoleClient, ClientConfig>,
    newest_meta: bool,
    label: &str,
) {
    let operator = operator_approves(node);
    let mut args = serde_json::Map::new();
    args.insert("text".into(), "vault".into());
    let mut options = PeerRequestOptions::no_options();
    if newest_meta {
        let mut meta = RequestMetaObject::new();
        meta.set_protocol_version(ProtocolVersion::V_2026_07_28);
        meta.set_client_capabilities(ClientCapabilities::builder().enable_elicitation().build());
        options = options.with_meta(meta);
    }
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(
        CallToolRequestParams::new("vault_read").with_arguments(args),
    ));
    let response = running
        .send_request_with_option(request, options)
        .await
        .expect("send tools/call")
        .await_response()
        .await
        .expect("tools/call");
    let ServerResult::CallToolResult(result) = response else {
        panic!("{label}: unexpected response {response:?}");
    };
    assert_ne!(
        result.is_error,
        Some(true),
        "{label}: the high call must be approved through the queue, not refused: {result:?}"
    );
    operator.join().expect("operator");
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
fn newest_protocol_falls_back_to_the_operator_queue() {
    let node = Node::new("[mcp]\napproval_timeout_seconds = 60\n[approvals]\nmode = \"client\"\n");
    let rt = mcp_support::runtime();
    rt.block_on(async {
        let running = client().serve_with_lifecycle(stdio(&node), newest()).await;
        let running = running.expect("discover over stdio");
        approved_through_queue(&node, running, false, "stdio, discover").await;
        let running = client().serve(stdio(&node)).await.expect("stdio");
        approved_through_queue(&node, running, true, "stdio, per-request newest").await;
    });
    let served = Served::start(&node);
    rt.block_on(async {
        let running = http(&served.url, Some(newest())).await;
        approved_through_queue(&node, running, false, "http, discover").await;
        let running = http(&served.url, None).await;
        approved_through_queue(&node, running, true, "http, per-request newest").await;
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
        approvals.iter().all(|by| by.starts_with("operator:")),
        "decided by the operator through the queue: {approvals:?}"
    );
}
