//! End-to-end tool calls through the whole pipeline (caller, allow-list,
//! schema, rate limit, sandbox, output check, privacy filter, durable
//! ledger entry with its payload) over streamable HTTP (`vigil serve`) and
//! stdio (`vigil mcp`) at 1, 8 and 64 concurrent clients, printed next to
//! calling the sandbox directly, recording one durable audit entry alone and
//! calling the pipeline in-process, all in the same run: calls/s, p50/p99
//! latency, and the ratios to the sandbox. The sandbox plus one durable entry
//! is printed as the floor no pipeline that waits for its entry can beat.
//!
//! Over HTTP each client is its own MCP session; the `http plain
//! keep-alive` row is a hand-written HTTP/1.1 client per session on one
//! kept-alive connection with default socket options (what a script or a
//! simple agent does), compared at 1 client with the best client's p50. Over stdio there is one
//! `vigil mcp` process (the ledger has one writer), so the clients are
//! concurrent requests on that one connection.
//!
//! `cargo bench --bench mcp` runs the full measurement (`VIGIL_BENCH_SECONDS`
//! per point, default 3). Without `--bench` (`cargo test --all-targets`) it
//! is a smoke run: 1 and 8 clients, a fraction of a second per point.

/// mimalloc: the allocator of every vigil binary and benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/mcp_support/mod.rs"]
mod mcp_support;
#[path = "../tests/signed_support/mod.rs"]
mod signed;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_support::raw::{self, RawClient};
use mcp_support::{Node, Served, ALICE_TOKEN};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt as _};
use vigil::mcp::pipeline::QueueOnly;
use vigil::mcp::{Catalog, Pipeline};
use vigil::node::audit::{AuditEvent, Auditor, EventKind, Verdict};
use vigil::node::config::Config;
use vigil::node::home::Home;
use vigil::policy::ApprovalQueue;
use vigil::sandbox::capabilities::{Capabilities, Limits};
use vigil::sandbox::{Sandbox, SandboxConfig};

/// How long and at which concurrency each point runs.
#[derive(Clone)]
struct Plan {
    clients: Vec<usize>,
    per_point: Duration,
    /// The full measurement (`--bench`), judged against the targets.
    full: bool,
}

impl Plan {
    fn from_args() -> Self {
        if std::env::args().any(|a| a == "--bench") {
            let s = std::env::var("VIGIL_BENCH_SECONDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(3.0);
            Self {
                clients: vec![1, 8, 64],
                per_point: Duration::from_secs_f64(s),
                full: true,
            }
        } else {
            Self {
                clients: vec![1, 8],
                per_point: Duration::from_millis(250),
                full: false,
            }
        }
    }
}

struct Figures {
    calls: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// CPU time of the serving process (`vigil serve` / `vigil mcp`) and of
    /// this process (the clients, or the in-process pipeline) per call.
    cpu_per_call: Option<(Duration, Duration)>,
}

impl Figures {
    fn from(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        Self {
            calls: latencies.len(),
            elapsed,
            latencies,
            cpu_per_call: None,
        }
    }
    fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
    fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// user + system CPU time of a process so far (Linux /proc; zero elsewhere).
fn cpu_time(pid: Option<u32>) -> Duration {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// Measures `run` and adds the CPU time per call of `server` and of this
/// process.
async fn with_cpu(server: Option<u32>, run: impl Future<Output = Figures>) -> Figures {
    let (s0, c0) = (server.map(|p| cpu_time(Some(p))), cpu_time(None));
    let mut f = run.await;
    let (s1, c1) = (server.map(|p| cpu_time(Some(p))), cpu_time(None));
    let calls = f.calls.max(1) as u32;
    let server = match (s0, s1) {
        (Some(a), Some(b)) => b.saturating_sub(a) / calls,
        _ => Duration::ZERO,
    };
    f.cpu_per_call = Some((server, c1.saturating_sub(c0) / calls));
    f
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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
fn direct(clients: usize, per_point: Duration) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::new(&SandboxConfig::new(dir.path().join("cache"))).expect("sandbox");
    let wasm = std::fs::read(mcp_support::echo_wasm()).expect("echo.wasm");
    let package = signed::verified("echo", &wasm, &Capabilities::default(), Limits::default());
    let tool = Arc::new(sandbox.load(&package).expect("load echo"));
    let value = serde_json::Value::Object(args());
    for _ in 0..20 {
        let _ = tool.call("echo", &value);
    }
    on_threads(clients, per_point, move || {
        let outcome = tool.call("echo", &value);
        assert!(outcome.result.is_ok(), "{outcome:?}");
    })
}

/// Runs `call` in a loop on `clients` threads for `per_point`.
fn on_threads(
    clients: usize,
    per_point: Duration,
    call: impl Fn() + Clone + Send + 'static,
) -> Figures {
    each_on_a_thread(vec![call; clients], per_point, |call| call())
}

/// Runs `call` in a loop for `per_point` on one thread per state, each
/// with its own state (a client, a connection).
fn each_on_a_thread<S: Send + 'static>(
    states: Vec<S>,
    per_point: Duration,
    call: fn(&mut S),
) -> Figures {
    let started = Instant::now();
    let until = started + per_point;
    let threads: Vec<_> = states
        .into_iter()
        .map(|mut state| {
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    call(&mut state);
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

/// `clients` plain HTTP/1.1 clients, each one MCP session on one kept-alive
/// TCP connection with default socket options (no TCP_NODELAY or
/// TCP_QUICKACK on the client side), one thread each.
fn plain_http(served: &Served, clients: usize, per_point: Duration) -> Figures {
    let addr = raw::addr(&served.url);
    let value = serde_json::Value::Object(args());
    let states: Vec<(RawClient, serde_json::Value)> = (0..clients)
        .map(|_| {
            let mut client = RawClient::connect(addr, ALICE_TOKEN);
            let init = client.initialize().expect("initialize");
            assert_eq!(init.status, 200, "{}", init.text());
            client.call("echo", &value).expect("warm-up call");
            (client, value.clone())
        })
        .collect();
    each_on_a_thread(states, per_point, |(client, value)| {
        let reply = client.call("echo", value).expect("call");
        assert!(reply["result"]["isError"] != true, "{reply}");
    })
}

/// One durable ledger entry with a payload the size of an echo call's,
/// recorded straight through the node's Auditor from `clients` threads: the
/// part of every call's latency that waits for the disk.
fn audit_alone(clients: usize, per_point: Duration) -> Figures {
    let node = Node::new("");
    let home = Home::at(node.home());
    let config = Config::load(&home.config_path()).expect("config");
    let auditor = Auditor::open(&home, &config, None).expect("auditor");
    let payload = serde_json::json!({
        "arguments": args(),
        "output": { "content": [{ "type": "text", "text": "hello from the bench" }] },
    })
    .to_string()
    .into_bytes();
    on_threads(clients, per_point, move || {
        let event = AuditEvent::new(
            EventKind::ToolCall,
            "agent:bench",
            "tool:echo",
            Verdict::Allow,
        )
        .payload(payload.clone());
        auditor.record(event).expect("durable entry");
    })
}

/// 256 bytes appended to a file and fdatasynced, on the filesystem the
/// nodes' homes are on: what any durable write costs on this disk at least.
fn fdatasync_alone(per_point: Duration) -> Figures {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = std::fs::File::create(dir.path().join("sync")).expect("file");
    let file = Arc::new(std::sync::Mutex::new(file));
    on_threads(1, per_point, move || {
        let mut f = file.lock().expect("file lock");
        f.write_all(&[7u8; 256]).expect("write");
        f.sync_data().expect("fdatasync");
    })
}

/// The node's pipeline in this process (no MCP transport): what the
/// transports add on top of it shows in the difference.
fn in_process(node: &Node) -> Arc<Pipeline> {
    let home = Home::at(node.home());
    let config = Config::load(&home.config_path()).expect("config");
    let sandbox_config = SandboxConfig::new(home.cache_dir().join("wasm"));
    let slots = sandbox_config.max_concurrent_calls as usize;
    let sandbox = Sandbox::new(&sandbox_config).expect("sandbox");
    let trust = vigil::trust::file::load(&home.trust_path()).expect("trust store");
    let (catalog, _) = Catalog::load(&home, &config, &sandbox, &trust).expect("catalog");
    let key = home.node_signing_key(None).expect("node key");
    let auditor = Auditor::open(&home, &config, Some(key)).expect("auditor");
    Arc::new(Pipeline::new(
        catalog,
        &config,
        |_| None,
        ApprovalQueue::new(home.approvals_dir()),
        auditor,
        slots,
    ))
}

/// One client's call, repeated by [`timed`].
type Call = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Runs each caller in its own task, calling in a loop for `per_point`.
async fn timed(callers: Vec<Call>, per_point: Duration) -> Figures {
    let started = Instant::now();
    let until = started + per_point;
    let tasks: Vec<_> = callers
        .into_iter()
        .map(|call| {
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    call().await;
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

async fn drive_pipeline(pipeline: &Arc<Pipeline>, clients: usize, per_point: Duration) -> Figures {
    let callers = (0..clients)
        .map(|_| {
            let pipeline = Arc::clone(pipeline);
            let call: Call = Arc::new(move || {
                let pipeline = Arc::clone(&pipeline);
                Box::pin(async move {
                    let value = serde_json::Value::Object(args());
                    let reply = pipeline.call("local", "echo", value, &QueueOnly).await;
                    assert!(reply.result.is_ok(), "{reply:?}");
                })
            });
            call
        })
        .collect();
    timed(callers, per_point).await
}

async fn drive(clients: Vec<rmcp::Peer<RoleClient>>, per_point: Duration) -> Figures {
    // One warm-up call per client (first use of a session).
    for peer in &clients {
        let _ = peer
            .call_tool(CallToolRequestParams::new("echo").with_arguments(args()))
            .await;
    }
    let callers = clients
        .into_iter()
        .map(|peer| {
            let call: Call = Arc::new(move || {
                let peer = peer.clone();
                Box::pin(async move {
                    let r = peer
                        .call_tool(CallToolRequestParams::new("echo").with_arguments(args()))
                        .await
                        .expect("call");
                    assert_ne!(r.is_error, Some(true), "{r:?}");
                })
            });
            call
        })
        .collect();
    timed(callers, per_point).await
}

async fn http(served: &Served, clients: usize, per_point: Duration) -> Figures {
    let url = &served.url;
    let mut running: Vec<RunningService<RoleClient, ()>> = Vec::new();
    for _ in 0..clients {
        let config =
            StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(ALICE_TOKEN);
        let transport = StreamableHttpClientTransport::from_config(config);
        running.push(().serve(transport).await.expect("connect"));
    }
    let peers = running.iter().map(|r| r.peer().clone()).collect();
    let figures = with_cpu(Some(served.child.id()), drive(peers, per_point)).await;
    for r in running {
        let _ = r.cancel().await;
    }
    figures
}

async fn stdio(node: &Node, clients: usize, per_point: Duration) -> Figures {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_HOME")
        .arg("--home")
        .arg(node.home())
        .args(["mcp", "--agent", "local"]);
    let child = TokioChildProcess::new(cmd).expect("spawn");
    let pid = child.id();
    let running = ().serve(child).await.expect("connect");
    let peers = (0..clients).map(|_| running.peer().clone()).collect();
    let figures = with_cpu(pid, drive(peers, per_point)).await;
    let _ = running.cancel().await;
    figures
}

/// One printed row: a path at a concurrency, with ratios to the sandbox.
struct Row {
    path: &'static str,
    clients: usize,
    figures: Figures,
}

fn print(rows: &[Row]) {
    println!(
        "{:<20} {:>7} {:>9} {:>8} {:>8} {:>11} {:>12} {:>16}",
        "path",
        "clients",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "p50/sandbox",
        "rate/sandbox",
        "CPU/call srv+cli"
    );
    for row in rows {
        let base = rows
            .iter()
            .find(|r| r.path == "sandbox direct" && r.clients == row.clients)
            .map(|r| (r.figures.pct(0.5), r.figures.rate()));
        let (p50_ratio, rate_ratio) = match base {
            Some((p50, rate)) => (
                format!("{:.2}x", ms(row.figures.pct(0.5)) / ms(p50).max(1e-9)),
                format!("{:.2}x", row.figures.rate() / rate.max(1e-9)),
            ),
            None => ("-".into(), "-".into()),
        };
        let cpu = match row.figures.cpu_per_call {
            Some((srv, cli)) => format!("{:.2}+{:.2} ms", ms(srv), ms(cli)),
            None => "-".into(),
        };
        println!(
            "{:<20} {:>7} {:>9.0} {:>8.3} {:>8.3} {:>11} {:>12} {:>16}",
            row.path,
            row.clients,
            row.figures.rate(),
            ms(row.figures.pct(0.5)),
            ms(row.figures.pct(0.99)),
            p50_ratio,
            rate_ratio,
            cpu
        );
    }
}

fn main() {
    let plan = Plan::from_args();
    let node = Node::new("");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    for &c in &plan.clients {
        rows.push(Row {
            path: "sandbox direct",
            clients: c,
            figures: direct(c, plan.per_point),
        });
    }
    rows.push(Row {
        path: "fdatasync alone",
        clients: 1,
        figures: fdatasync_alone(plan.per_point),
    });
    for &c in &plan.clients {
        rows.push(Row {
            path: "audit entry alone",
            clients: c,
            figures: audit_alone(c, plan.per_point),
        });
    }
    {
        let pipeline = in_process(&node);
        for &c in &plan.clients {
            let run = drive_pipeline(&pipeline, c, plan.per_point);
            let figures = runtime.block_on(with_cpu(None, run));
            rows.push(Row {
                path: "pipeline in-process",
                clients: c,
                figures,
            });
        }
    }
    {
        // The same without payload storage: what storing payloads (in the
        // group commit's payload segment, one more fdatasync per batch) costs.
        let bare = Node::new("[ledger]\npayloads = \"none\"\n");
        let pipeline = in_process(&bare);
        for &c in &plan.clients {
            let run = drive_pipeline(&pipeline, c, plan.per_point);
            let figures = runtime.block_on(with_cpu(None, run));
            rows.push(Row {
                path: "  ... payloads none",
                clients: c,
                figures,
            });
        }
    }
    let served = Served::start(&node);
    for &c in &plan.clients {
        rows.push(Row {
            path: "http pipeline",
            clients: c,
            figures: runtime.block_on(http(&served, c, plan.per_point)),
        });
    }
    for &c in &plan.clients {
        rows.push(Row {
            path: "http plain keep-alive",
            clients: c,
            figures: runtime.block_on(with_cpu(Some(served.child.id()), async {
                plain_http(&served, c, plan.per_point)
            })),
        });
    }
    served.stop();
    for &c in &plan.clients {
        rows.push(Row {
            path: "stdio pipeline",
            clients: c,
            figures: runtime.block_on(stdio(&node, c, plan.per_point)),
        });
    }
    rows.sort_by_key(|r| r.clients);
    println!(
        "== MCP tools/call of `echo`, {:.1} s per point, audit durable (each call answered after its ledger entry and payload are fsynced)",
        plan.per_point.as_secs_f64()
    );
    print(&rows);
    if !plan.full {
        println!("(smoke run; `cargo bench --bench mcp` measures and checks the targets)");
        return;
    }
    let http_rate = |c| {
        rows.iter()
            .find(|r| r.path == "http pipeline" && r.clients == c)
            .map(|r| r.figures.rate())
    };
    if let Some(rate) = http_rate(64) {
        println!(
            "target: >= 2000 calls/s at 64 clients over HTTP: {rate:.0} calls/s -> {}",
            if rate >= 2000.0 { "met" } else { "MISSED" }
        );
    }
    let at = |p: &str| {
        rows.iter()
            .find(|r| r.path == p && r.clients == 1)
            .map(|r| r.figures.pct(0.5))
    };
    if let (Some(sync), Some(sandbox)) = (at("fdatasync alone"), at("sandbox direct")) {
        println!(
            "budget of the 2x target: {:.3} ms for everything but the sandbox; one fdatasync of 256 bytes here takes {:.3} ms (p50)",
            ms(sandbox),
            ms(sync)
        );
    }
    if let (Some(audit), Some(sandbox)) = (at("audit entry alone"), at("sandbox direct")) {
        // A call is answered only after its entry is durable, so no pipeline
        // is faster than the sandbox call plus one durable entry.
        let floor = ms(audit) + ms(sandbox);
        println!(
            "floor at 1 client: sandbox p50 {:.3} ms + one durable audit entry p50 {:.3} ms = {floor:.3} ms = {:.2}x the sandbox alone",
            ms(sandbox),
            ms(audit),
            floor / ms(sandbox).max(1e-9)
        );
    }
    let clients_p50 = ["http pipeline", "http plain keep-alive", "stdio pipeline"]
        .into_iter()
        .filter_map(|p| at(p).map(|d| (p, d)));
    if let (Some(plain), Some((best, fastest))) = (
        at("http plain keep-alive"),
        clients_p50.min_by_key(|(_, d)| *d),
    ) {
        let ratio = ms(plain) / ms(fastest).max(1e-9);
        println!(
            "target: plain keep-alive HTTP client p50 <= 1.5x the best client's ({best}) at 1 client: {:.3} ms / {:.3} ms = {ratio:.2}x -> {}",
            ms(plain),
            ms(fastest),
            if ratio <= 1.5 { "met" } else { "MISSED" }
        );
    }
    // The targets of the durable-audit issue, on the plain keep-alive client.
    if let Some(rate) = rows
        .iter()
        .find(|r| r.path == "http plain keep-alive" && r.clients == 64)
        .map(|r| r.figures.rate())
    {
        println!(
            "target: plain keep-alive HTTP at 64 clients >= 5000 calls/s: {rate:.0} calls/s -> {}",
            if rate >= 5000.0 { "met" } else { "MISSED" }
        );
    }
    if let (Some(plain), Some(sandbox), Some(sync)) = (
        at("http plain keep-alive"),
        at("sandbox direct"),
        at("fdatasync alone"),
    ) {
        let budget = ms(sandbox) + ms(sync) + 0.25;
        println!(
            "target: plain keep-alive HTTP p50 at 1 client <= sandbox {:.3} + fdatasync {:.3} + 0.25 = {budget:.3} ms: {:.3} ms -> {}",
            ms(sandbox),
            ms(sync),
            ms(plain),
            if ms(plain) <= budget { "met" } else { "MISSED" }
        );
    }
    for path in ["http pipeline", "stdio pipeline"] {
        if let (Some(pipe), Some(sandbox)) = (at(path), at("sandbox direct")) {
            let ratio = ms(pipe) / ms(sandbox).max(1e-9);
            println!(
                "target: {path} p50 <= 2x the sandbox alone (1 client): {ratio:.2}x -> {}",
                if ratio <= 2.0 { "met" } else { "MISSED" }
            );
        }
    }
}
