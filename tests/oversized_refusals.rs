//! Every refusal is recorded, whatever the size of the request (issue 18,
//! item 3): through a real `vigil serve` and the rmcp client over HTTP, a
//! call naming a 5,000-byte tool and an echo call with 20,000 extra
//! properties are refused with their codes (not `audit-unavailable`), and
//! each leaves one `tool.denied` entry, with the oversized name cut and
//! labelled and the oversized details summarized; the ledger verifies.

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use mcp_support::{AssertOk as _, Node, Served, ALICE_TOKEN};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt as _;

fn text(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

#[test]
fn oversized_requests_are_refused_and_recorded() {
    let node = Node::new("");
    let served = Served::start(&node);
    let rt = mcp_support::runtime();
    let long_tool = "t".repeat(5_000);
    let mut extra = serde_json::Map::new();
    extra.insert("text".into(), "hi".into());
    for i in 0..20_000 {
        extra.insert(format!("extra_property_{i}"), i.into());
    }
    let (name_refusal, args_refusal) = rt.block_on(async {
        let config = StreamableHttpClientTransportConfig::with_uri(served.url.clone())
            .auth_header(ALICE_TOKEN);
        let client =
            ().serve(StreamableHttpClientTransport::from_config(config))
                .await
                .expect("connect");
        let long = rmcp::model::CallToolRequestParams::new(long_tool.clone())
            .with_arguments(serde_json::Map::new());
        let a = client.call_tool(long).await.expect("tools/call");
        let b = client
            .call_tool(mcp_support::call("echo", serde_json::Value::Object(extra)))
            .await
            .expect("tools/call");
        let _ = client.cancel().await;
        (a, b)
    });
    assert_eq!(name_refusal.is_error, Some(true));
    assert!(
        text(&name_refusal).contains("(unknown-tool)"),
        "{}",
        text(&name_refusal)
    );
    assert_eq!(args_refusal.is_error, Some(true));
    assert!(
        text(&args_refusal).contains("(invalid-arguments)"),
        "{}",
        &text(&args_refusal)[..200.min(text(&args_refusal).len())]
    );
    served.stop();

    let out = node
        .vigil()
        .args(["audit", "tail", "-n", "10", "--json"])
        .assert_ok();
    let denied: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "tool.denied")
        .collect();
    assert_eq!(denied.len(), 2, "one entry per refusal: {denied:?}");
    let subject = denied[0]["subject"].as_str().unwrap_or_default();
    assert!(
        subject.starts_with("tool:ttt") && subject.contains("5005 bytes, sha256 "),
        "{subject}"
    );
    assert_eq!(denied[0]["details"]["code"], "unknown-tool");
    assert_eq!(denied[1]["subject"], "tool:echo");
    assert_eq!(denied[1]["details"]["summarized"], true);
    assert_eq!(denied[1]["details"]["code"], "invalid-arguments");
    let verified = node.vigil().args(["audit", "verify"]).assert_ok();
    assert!(String::from_utf8_lossy(&verified.stdout).starts_with("valid:"));
}
