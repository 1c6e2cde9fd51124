//! `vigil serve`: runs the node until Ctrl-C or SIGTERM: MCP over streamable
//! HTTP on `[mcp] listen` (bearer tokens from `[[agents]]`; `/healthz` and
//! `/metrics` beside it), checkpoints on schedule, the post-quantum link
//! listener on `[links] listen` (peers judged by the trust store, each
//! decision one ledger entry) and every `[[tunnels]]`. With `[mcp] enabled =
//! false` it is a link-only node: links and tunnels, no MCP port. Stopping
//! closes every link (each end recorded), gives HTTP requests in progress a
//! grace period, and signs a last checkpoint covering every entry. Also
//! holds the node start-up shared with `vigil mcp` ([`start_pipeline`]).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::passphrase;
use crate::mcp::connections::ConnectionLimits;
use crate::mcp::{Catalog, Pipeline};
use crate::node::audit::Auditor;
use crate::node::config::Config;
use crate::node::home::Home;
use crate::node::links::{LinkListener, Outstanding};
use crate::node::metrics::Metrics;
use crate::policy::ApprovalQueue;
use crate::sandbox::{Sandbox, SandboxConfig};

/// Once stopping: how long the ends of open links and tunnels have to be
/// recorded (the link listener closes them all at once).
const LINKS_STOP_WITHIN: Duration = Duration::from_millis(2500);
/// Once the services stopped: how long tasks still running (a call in the
/// sandbox, a call waiting for approval) get before they are abandoned.
const TASKS_STOP_WITHIN: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen for MCP on this address instead of `[mcp] listen`
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// Opens the node's audit ledger with the node key (for checkpoints).
fn open_auditor(home: &Home, config: &Config) -> anyhow::Result<Auditor> {
    home.require_initialized()?;
    let key = passphrase::node_key(home, config)?;
    Auditor::open(home, config, Some(key)).context(
        "opening the audit ledger (is another `vigil serve` or `vigil mcp` running on this home?)",
    )
}

/// Opens the ledger (with the node key, for checkpoints), loads the
/// admitted tools into the sandbox and builds the call pipeline.
pub fn start_pipeline(home: &Home, config: &Config) -> anyhow::Result<Arc<Pipeline>> {
    let auditor = open_auditor(home, config)?;
    let sandbox_config = SandboxConfig::new(home.cache_dir().join("wasm"));
    let slots = sandbox_config.max_concurrent_calls as usize;
    let sandbox = Sandbox::new(&sandbox_config).context("starting the sandbox")?;
    let (catalog, skipped) =
        Catalog::load(home, config, &sandbox).context("loading admitted tools")?;
    for path in skipped {
        eprintln!("warning: stored package {path} no longer verifies; its tools are not served (see `vigil tools`)");
    }
    let approvals = ApprovalQueue::new(home.approvals_dir());
    Ok(Arc::new(Pipeline::new(
        catalog,
        config,
        |v| std::env::var(v).ok(),
        approvals,
        auditor,
        slots,
    )))
}

/// The MCP address to serve on: `--listen` or `[mcp] listen`; `None` for a
/// link-only node (`[mcp] enabled = false`).
fn mcp_address(config: &Config, listen: Option<String>) -> anyhow::Result<Option<SocketAddr>> {
    if !config.mcp.enabled {
        if listen.is_some() {
            bail!("--listen is for MCP, which vigil.toml turns off ([mcp] enabled = false)");
        }
        if config.links.listen.is_none() && config.tunnels.is_empty() {
            bail!("nothing to serve: [mcp] enabled = false, no [links] listen and no [[tunnels]] in vigil.toml");
        }
        return Ok(None);
    }
    let listen = listen.unwrap_or_else(|| config.mcp.listen.clone());
    let addr = listen.parse().map_err(|e| {
        anyhow!("[mcp] listen = {listen:?} is not an address like 127.0.0.1:7878: {e}")
    })?;
    Ok(Some(addr))
}

pub fn run(home: &Home, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&home.config_path())?;
    let mcp = match mcp_address(&config, args.listen)? {
        Some(addr) => Some((addr, start_pipeline(home, &config)?)),
        None => None,
    };
    let auditor = match &mcp {
        Some((_, pipeline)) => pipeline.auditor().clone(),
        None => open_auditor(home, &config)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(serve_until_stopped(home, &config, mcp, &auditor));
    // Tasks still running now are abandoned; whatever they would record
    // after the last checkpoint is refused by the closed auditor.
    runtime.shutdown_timeout(TASKS_STOP_WITHIN);
    let closed = auditor.close().context("signing the last checkpoint");
    served?;
    match closed? {
        None => eprintln!("vigil: stopped; the ledger is empty, so there is no checkpoint to sign"),
        Some(_) => eprintln!("vigil: stopped; ledger checkpoint signed"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts MCP (when `mcp` is set), the link listener and the tunnels, runs
/// them until Ctrl-C or SIGTERM, then stops them: no new connections or
/// links, every link closed and its end recorded, HTTP requests in progress
/// given a grace period.
async fn serve_until_stopped(
    home: &Home,
    config: &Config,
    mcp: Option<(SocketAddr, Arc<Pipeline>)>,
    auditor: &Auditor,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            stop.cancel();
        }
    });
    let (http, metrics) = match &mcp {
        Some((addr, pipeline)) => {
            let http = start_http(*addr, pipeline, config, stop.clone()).await?;
            (Some(http), Some(Arc::clone(pipeline.metrics())))
        }
        None => {
            println!("vigil: MCP is off ([mcp] enabled = false); serving links and tunnels only");
            (None, None)
        }
    };
    let links = start_links(home, config, auditor.clone(), metrics).await?;
    stop.cancelled().await;
    eprintln!("vigil: stopping");
    let deadline = Instant::now() + LINKS_STOP_WITHIN;
    let http_stopped = async {
        if let Some(http) = http {
            let _ = http.await;
        }
    };
    let ((), recorded) = tokio::join!(http_stopped, links.shutdown(deadline));
    if let Err(left) = recorded {
        eprintln!(
            "warning: stopped before the ledger recorded the end of {} links and {} tunnels ({} events pending)",
            left.links, left.tunnels, left.queued
        );
    }
    Ok(())
}

/// Binds the MCP address and serves HTTP on a task until `stop`.
async fn start_http(
    addr: SocketAddr,
    pipeline: &Arc<Pipeline>,
    config: &Config,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let bound = listener.local_addr()?;
    let tools = pipeline.tool_names();
    println!(
        "vigil serving MCP on http://{bound}/mcp ({} tools: {})",
        tools.len(),
        tools.join(", ")
    );
    let pipeline = Arc::clone(pipeline);
    let mcp = config.mcp.clone();
    Ok(tokio::spawn(async move {
        crate::mcp::http::serve(listener, pipeline, &mcp, stop, ConnectionLimits::default()).await
    }))
}

/// What `start_links` keeps running; dropping it stops links and tunnels.
struct Links {
    server: Option<LinkListener>,
    tunnels: Vec<vigil_transport::TunnelClient>,
}

impl Links {
    /// Closes the tunnels' links and the link listener's links (peers learn
    /// at once) and waits, at most until `deadline`, until the end of every
    /// link and tunnel of the listener is recorded.
    async fn shutdown(self, deadline: Instant) -> Result<(), Outstanding> {
        let Links { server, tunnels } = self;
        let mut links = Vec::new();
        for tunnel in &tunnels {
            links.extend(tunnel.wait_for_link(Duration::ZERO).await);
        }
        // Stop the tunnels first, so that they do not redial the links
        // closed next.
        drop(tunnels);
        for link in &links {
            link.connection()
                .close(vigil_transport::link::CLOSE_DONE, b"node shutting down");
        }
        let recorded = match server {
            Some(server) => server.shutdown(deadline).await,
            None => Ok(()),
        };
        if !links.is_empty() {
            // Let the close frames leave before the runtime stops.
            tokio::time::sleep_until(deadline.min(Instant::now() + Duration::from_millis(100)))
                .await;
        }
        recorded
    }
}

/// Starts the link listener (`[links] listen`) and the `[[tunnels]]` on the
/// current runtime. Link decisions go to the ledger through `auditor` and
/// are counted in `metrics`.
async fn start_links(
    home: &Home,
    config: &Config,
    auditor: Auditor,
    metrics: Option<Arc<Metrics>>,
) -> anyhow::Result<Links> {
    use super::tunnel::{describe, start_tunnel, PrintEvents, TunnelPlan};
    use crate::node::audit::{AuditEvent, EventKind, Verdict};
    use crate::node::links::{start_listener, LinkAuditEntry, LinkAuditSink};

    let load_key = || passphrase::node_key(home, config);
    let server = match &config.links.listen {
        None => None,
        Some(listen) => {
            let addr: SocketAddr = listen.parse().map_err(|e| {
                anyhow!("[links] listen = {listen:?} is not an address like 0.0.0.0:7879: {e}")
            })?;
            let sink: LinkAuditSink = Box::new(move |e: LinkAuditEntry| {
                // The kind and decision strings are the entry's; the
                // EventKind and Verdict here are placeholders record_raw ignores.
                let event =
                    AuditEvent::new(EventKind::External, e.actor, e.subject, Verdict::Record)
                        .details(e.details);
                auditor
                    .record_raw(e.kind, e.decision, event)
                    .map(|_| ())
                    .map_err(|err| err.to_string())
            });
            let server = start_listener(
                addr,
                load_key()?,
                home.trust_path(),
                sink,
                config.links.serving(),
                metrics,
            )
            .with_context(|| format!("starting the link listener on {addr}"))?;
            println!(
                "vigil accepting post-quantum links on {}",
                server.local_addr()?
            );
            Some(server)
        }
    };
    let mut tunnels = Vec::new();
    if !config.tunnels.is_empty() {
        let identity = Arc::new(vigil_transport::LinkIdentity::new(load_key()?)?);
        for t in &config.tunnels {
            let plan = TunnelPlan::from_config(t, config.links.link_lifetime_seconds)?;
            let tunnel = start_tunnel(Arc::clone(&identity), &plan, Arc::new(PrintEvents))
                .await
                .with_context(|| format!("starting the tunnel to {}", plan.target))?;
            println!("vigil tunnel: {}", describe(&tunnel, &plan));
            tunnels.push(tunnel);
        }
    }
    Ok(Links { server, tunnels })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
