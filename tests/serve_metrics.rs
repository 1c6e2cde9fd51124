//! `GET /healthz` and `GET /metrics` of the real `vigil serve`: both answer
//! without a token (from loopback), `/mcp` still needs one, the metrics
//! text parses with a Prometheus text parser (every line recognised), and
//! calls made over MCP streamable HTTP with the official Rust SDK (rmcp)
//! are counted by agent, tool and outcome code.

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mcp_support::{Node, Served, ALICE_TOKEN, BOB_TOKEN};
use prometheus_parse::{LineInfo, Scrape, Value};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt as _;

/// One HTTP/1.1 request on a fresh connection; returns status and body.
fn request(addr: SocketAddr, head: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(tcp, "{head}Connection: close\r\n\r\n").expect("send");
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).expect("read reply");
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {reply:?}"));
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"))
}

/// The scraped metrics: every line must be a comment or a sample the
/// parser recognises.
fn scrape(addr: SocketAddr) -> Scrape {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    for line in body.lines() {
        let recognised = match LineInfo::parse(line) {
            LineInfo::Doc { .. } | LineInfo::Type { .. } | LineInfo::Empty => true,
            LineInfo::Sample { value, .. } => value.parse::<f64>().is_ok(),
            LineInfo::Ignored => false,
        };
        assert!(
            recognised,
            "line not in the Prometheus text format: {line:?}"
        );
    }
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("parse metrics")
}

/// The value of the sample `metric` whose labels include `labels`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{metric}: unexpected {other:?}"),
        })
}

fn calls(scrape: &Scrape, agent: &str, tool: &str, code: &str) -> f64 {
    value(
        scrape,
        "vigil_tool_calls_total",
        &[("agent", agent), ("tool", tool), ("code", code)],
    )
    .unwrap_or(0.0)
}

#[test]
fn calls_over_http_are_counted_and_health_and_metrics_need_no_token() {
    let node = Node::new("");
    let served = Served::start(&node);
    let addr: SocketAddr = served
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .parse()
        .expect("address in the URL");

    let (status, body) = get(addr, "/healthz");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("healthz JSON");
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["ledger_entries"].is_u64(), "{health}");

    // /mcp still wants a token.
    let (status, _) = request(
        addr,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n",
    );
    assert_eq!(status, 401);

    let before = scrape(addr);
    assert_eq!(calls(&before, "alice", "echo", "ok"), 0.0);
    for gauge in [
        "vigil_approvals_pending",
        "vigil_links_open",
        "vigil_tunnels_open",
    ] {
        assert_eq!(value(&before, gauge, &[]), Some(0.0), "{gauge}");
    }

    let rt = mcp_support::runtime();
    rt.block_on(async {
        let connect = |token: &str| {
            let config = StreamableHttpClientTransportConfig::with_uri(served.url.clone())
                .auth_header(token);
            ().serve(StreamableHttpClientTransport::from_config(config))
        };
        let alice = connect(ALICE_TOKEN).await.expect("alice connects");
        let args = |v: serde_json::Value| v.as_object().cloned().expect("object");
        for text in ["one", "two"] {
            let r = alice
                .call_tool(
                    CallToolRequestParams::new("echo")
                        .with_arguments(args(serde_json::json!({ "text": text }))),
                )
                .await
                .expect("echo");
            assert_ne!(r.is_error, Some(true), "{r:?}");
        }
        let r = alice
            .call_tool(
                CallToolRequestParams::new("echo")
                    .with_arguments(args(serde_json::json!({ "wrong": 1 }))),
            )
            .await
            .expect("refused call still answers");
        assert_eq!(r.is_error, Some(true), "{r:?}");
        let _ = alice
            .call_tool(CallToolRequestParams::new("no-such-tool-8f1e"))
            .await;
        let _ = alice.cancel().await;

        let bob = connect(BOB_TOKEN).await.expect("bob connects");
        let r = bob
            .call_tool(
                CallToolRequestParams::new("echo_typed")
                    .with_arguments(args(serde_json::json!({ "text": "x" }))),
            )
            .await
            .expect("refused call still answers");
        assert_eq!(r.is_error, Some(true), "{r:?}");
        let _ = bob.cancel().await;
    });

    let after = scrape(addr);
    assert_eq!(calls(&after, "alice", "echo", "ok"), 2.0);
    assert_eq!(calls(&after, "alice", "echo", "invalid-arguments"), 1.0);
    assert_eq!(calls(&after, "bob", "echo_typed", "tool-not-allowed"), 1.0);
    // A tool name the node does not know is not a label value.
    assert_eq!(calls(&after, "alice", "unknown", "unknown-tool"), 1.0);
    assert!(
        after
            .samples
            .iter()
            .all(|s| s.labels.get("tool") != Some("no-such-tool-8f1e")),
        "a caller's made-up tool name became a label"
    );
    assert_eq!(
        value(&after, "vigil_tool_call_duration_seconds_count", &[]),
        Some(5.0)
    );
    let (_, body) = get(addr, "/healthz");
    let health: serde_json::Value = serde_json::from_str(&body).expect("healthz JSON");
    let entries = health["ledger_entries"].as_f64().expect("ledger_entries");
    assert!(entries >= 5.0, "each call is one ledger entry: {health}");
    assert_eq!(value(&after, "vigil_ledger_entries", &[]), Some(entries));
    assert!(value(&after, "vigil_ledger_checkpoint_age_seconds", &[]).is_some());

    // A loopback request naming another host (DNS rebinding) is refused.
    let (status, _) = request(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: metrics.example:80\r\n",
    );
    assert_eq!(status, 403);
    served.stop();
}
