//! End-to-end tool calls through the whole pipeline (caller, allow-list,
//! schema, rate limit, sandbox, output check, privacy filter, durable
//! ledger entry) over streamable HTTP (`vigil serve`) and stdio (`vigil
//! mcp`) at 1, 8 and 64 concurrent clients, printed next to calling the
//! sandbox directly in the same run. Prints calls/s and p50/p99 latency.
//!
//! Over HTTP each client is its own MCP session. Over stdio there is one
//! `vigil mcp` process (the ledger has one writer), so the clients are
//! concurrent requests on that one connection.
//!
//! `VIGIL_BENCH_SECONDS` sets the time per point (default 3).

#[path = "../tests/mcp_support/mod.rs"]
mod mcp_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_support::{Node, Served, ALICE_TOKEN};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt as _};
use vigil::sandbox::capabilities::{Capabilities, Limits};
use vigil::sandbox::{Sandbox, SandboxConfig, ToolPackage};

const CONCURRENCY: [usize; 3] = [1, 8, 64];

struct Figures {
    calls: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn from(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        Self {
            calls: latencies.len(),
            elapsed,
            latencies,
        }
    }
    fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
    fn print(&self, label: &str, clients: usize) {
        println!(
            "{label:<16} clients {clients:>3}  {:>8.0} calls/s  p50 {:>8.3} ms  p99 {:>8.3} ms  ({} calls)",
            self.calls as f64 / self.elapsed.as_secs_f64(),
            self.pct(0.50).as_secs_f64() * 1e3,
            self.pct(0.99).as_secs_f64() * 1e3,
            self.calls
        );
    }
}

fn seconds() -> Duration {
    let s = std::env::var("VIGIL_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(s)
}

fn args() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        "text".into(),
        serde_json::Value::String("hello from the bench".into()),
    );
    m
}

/// The echo tool called straight on the sandbox from `clients` threads.
fn direct(clients: usize) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::new(&SandboxConfig::new(dir.path().join("cache"))).expect("sandbox");
    let wasm = std::fs::read(mcp_support::echo_wasm()).expect("echo.wasm");
    let caps = Capabilities::default();
    let tool = Arc::new(
        sandbox
            .load(&ToolPackage {
                program: "echo",
                wasm: &wasm,
                capabilities: &caps,
                limits: Limits::default(),
            })
            .expect("load echo"),
    );
    let value = serde_json::Value::Object(args());
    let _ = tool.call("echo", &value);
    let until = Instant::now() + seconds();
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (tool, value) = (Arc::clone(&tool), value.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    let outcome = tool.call("echo", &value);
                    assert!(outcome.result.is_ok(), "{outcome:?}");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let lat = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    Figures::from(lat, started.elapsed())
}

async fn drive(clients: Vec<rmcp::Peer<RoleClient>>) -> Figures {
    let until = Instant::now() + seconds();
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|peer| {
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    let r = peer
                        .call_tool(CallToolRequestParams::new("echo").with_arguments(args()))
                        .await
                        .expect("call");
                    assert_ne!(r.is_error, Some(true), "{r:?}");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    Figures::from(lat, started.elapsed())
}

async fn http(url: &str, clients: usize) -> Figures {
    let mut running: Vec<RunningService<RoleClient, ()>> = Vec::new();
    for _ in 0..clients {
        let config =
            StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(ALICE_TOKEN);
        let transport = StreamableHttpClientTransport::from_config(config);
        running.push(().serve(transport).await.expect("connect"));
    }
    let peers = running.iter().map(|r| r.peer().clone()).collect();
    let figures = drive(peers).await;
    for r in running {
        let _ = r.cancel().await;
    }
    figures
}

async fn stdio(node: &Node, clients: usize) -> Figures {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("--home")
        .arg(node.home())
        .args(["mcp", "--agent", "local"]);
    let running = ().serve(TokioChildProcess::new(cmd).expect("spawn")).await.expect("connect");
    let peers = (0..clients).map(|_| running.peer().clone()).collect();
    let figures = drive(peers).await;
    let _ = running.cancel().await;
    figures
}

fn main() {
    // `cargo test --benches` runs bench binaries with --bench absent: skip.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let node = Node::new("");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("== MCP tools/call of `echo`, audit durable (one fsync'd ledger entry per call)");
    let mut direct_p50 = Vec::new();
    for c in CONCURRENCY {
        let f = direct(c);
        f.print("sandbox direct", c);
        direct_p50.push(f.pct(0.5));
    }
    let served = Served::start(&node);
    for (i, c) in CONCURRENCY.into_iter().enumerate() {
        let f = runtime.block_on(http(&served.url, c));
        f.print("http pipeline", c);
        println!(
            "{:<16} p50 ratio pipeline/sandbox: {:.2}x",
            "",
            f.pct(0.5).as_secs_f64() / direct_p50[i].as_secs_f64().max(1e-9)
        );
    }
    served.stop();
    for (i, c) in CONCURRENCY.into_iter().enumerate() {
        let f = runtime.block_on(stdio(&node, c));
        f.print("stdio pipeline", c);
        println!(
            "{:<16} p50 ratio pipeline/sandbox: {:.2}x",
            "",
            f.pct(0.5).as_secs_f64() / direct_p50[i].as_secs_f64().max(1e-9)
        );
    }
}
