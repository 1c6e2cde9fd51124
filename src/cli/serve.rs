//! `vigil serve`: runs the node until Ctrl-C or SIGTERM: MCP over streamable
//! HTTP on `[mcp] listen` (bearer tokens from `[[agents]]`; `/healthz` and
//! `/metrics` beside it), checkpoints on schedule, the post-quantum link
//! listener on `[links] listen` (peers judged by the trust store, each
//! decision one ledger entry), every `[[tunnels]]`, and the control socket
//! operators' commands reach it through. With `[mcp] enabled = false` it is
//! a link-only node: no MCP port. Stopping closes every link (each end
//! recorded), gives HTTP requests in progress a grace period, and signs a
//! last checkpoint covering every entry. Also holds the node start-up
//! shared with `vigil mcp` ([`start_pipeline`]).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::live::LiveNode;
use super::passphrase;
use super::tunnel::PrintAndRecord;
use crate::gatekeeper::Occasion;
use crate::mcp::{Catalog, Pipeline};
use crate::node::audit::{AuditEvent, Auditor, EventKind, Verdict};
use crate::node::config::Config;
use crate::node::home::Home;
use crate::node::links::{LinkListener, Outstanding};
use crate::node::metrics::Metrics;
use crate::policy::ApprovalQueue;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::trust::SharedTrust;

/// Once stopping: how long the ends of open links and tunnels have to be
/// recorded (the link listener closes them all at once).
const LINKS_STOP_WITHIN: Duration = Duration::from_millis(2500);
/// Once the services stopped: how long tasks still running (a call in the
/// sandbox, a call waiting for approval) get before they are abandoned.
const TASKS_STOP_WITHIN: Duration = Duration::from_millis(500);

/// How long, after that, calls still in the sandbox have to finish.
const CALLS_STOP_WITHIN: Duration = Duration::from_millis(1000);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen for MCP on this address instead of `[mcp] listen`
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// The node's serving parts: the call pipeline, the sandbox its tools
/// run in (kept to load newly admitted tools while the node runs) and the
/// trust store it decides with (checked against the ledger).
pub struct Started {
    pub pipeline: Arc<Pipeline>,
    pub sandbox: Arc<Sandbox>,
    pub trust: Arc<SharedTrust>,
}

/// Opens the ledger (with the node key, for checkpoints), loads the
/// admitted tools into the sandbox and builds the call pipeline. A stored
/// package that no longer verifies is skipped with a refusal entry, and
/// calls left waiting for approval by a node that stopped are answered as
/// refused (`node:restart`), each with an entry.
pub fn start_pipeline(home: &Home, config: &Config) -> anyhow::Result<Started> {
    home.require_initialized()?;
    if super::admin::node_running(home)? {
        bail!(
            "a node is already running on {} (its control socket answers); stop it first, \
             or run commands against it: they reach it through its control socket",
            home.root().display()
        );
    }
    passphrase::settle_rotation(home)?;
    let key = passphrase::node_key(home, config)?;
    let auditor = Auditor::open(home, config, Some(key)).context(
        "opening the audit ledger (is another `vigil serve` or `vigil mcp` running on this home?)",
    )?;
    let sandbox_config = SandboxConfig::new(home.cache_dir().join("wasm"));
    let slots = sandbox_config.max_concurrent_calls as usize;
    let sandbox = Arc::new(Sandbox::new(&sandbox_config).context("starting the sandbox")?);
    let trust = crate::node::trusted::load_checked(home, &auditor)?;
    let (catalog, skipped) =
        Catalog::load(home, config, &sandbox, &trust).context("loading admitted tools")?;
    for check in skipped {
        let source = check.path.display().to_string();
        let record = check.decision.audit_record(Occasion::Startup, &source);
        auditor
            .record(record.event("node"))
            .context("recording a stored package that no longer verifies")?;
        eprintln!("warning: stored package {source} no longer verifies; its tools are not served (see `vigil tools`)");
    }
    let approvals = ApprovalQueue::new(home.approvals_dir()).with_limits(&config.approvals);
    refuse_orphaned_approvals(&approvals, &auditor)?;
    let access = crate::node::access::AgentAccess::load(&home.access_path())
        .context("reading the agents' access state")?;
    let pipeline = Arc::new(
        Pipeline::new(
            catalog,
            config,
            |v| std::env::var(v).ok(),
            approvals,
            auditor,
            slots,
        )
        .with_access(Arc::new(access)),
    );
    Ok(Started {
        pipeline,
        sandbox,
        trust: Arc::new(SharedTrust::new(trust)),
    })
}

/// Answers every call a stopped node left waiting for approval: nothing
/// waits for it any more, so it is refused (`node:restart`) and recorded,
/// and `vigil approve` no longer lists it.
fn refuse_orphaned_approvals(queue: &ApprovalQueue, auditor: &Auditor) -> anyhow::Result<()> {
    let decision = crate::policy::Decision {
        answer: crate::policy::Answer::Deny,
        by: "node:restart".into(),
        reason: "the node stopped while the call waited for approval".into(),
        entry: None,
    };
    for held in queue.pending()? {
        auditor
            .record(
                AuditEvent::new(
                    EventKind::ToolDenied,
                    format!("agent:{}", held.agent),
                    format!("tool:{}", held.tool),
                    Verdict::Deny,
                )
                .details(serde_json::json!({
                    "tool": held.tool,
                    "code": "approval-unavailable",
                    "reason": decision.reason,
                    "arguments_sha256": crate::mcp::pipeline::digest(&held.arguments),
                    "approval": decision,
                    "approval_id": held.id,
                })),
            )
            .context("recording a held call the node can no longer resume")?;
        queue.forget(&held.id);
    }
    Ok(())
}

/// The MCP address to serve on: `--listen` or `[mcp] listen`; `None` for a
/// link-only node (`[mcp] enabled = false`, or no `[mcp]` table and no
/// `--listen`).
fn mcp_address(config: &Config, listen: Option<String>) -> anyhow::Result<Option<SocketAddr>> {
    let links_or_tunnels = config.links.listen.is_some() || !config.tunnels.is_empty();
    if !config.mcp.enabled {
        if listen.is_some() {
            bail!("--listen is for MCP, which vigil.toml turns off ([mcp] enabled = false)");
        }
        if !links_or_tunnels {
            bail!("nothing to serve: [mcp] enabled = false, no [links] listen and no [[tunnels]] in vigil.toml");
        }
        return Ok(None);
    }
    if !config.mcp.configured && listen.is_none() {
        if !links_or_tunnels {
            bail!("nothing to serve: vigil.toml has no [mcp] table, no [links] listen and no [[tunnels]]; add `[mcp]` (MCP on 127.0.0.1:7878) or pass --listen ADDRESS");
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
    let mcp = mcp_address(&config, args.listen)?;
    let started = start_pipeline(home, &config)?;
    let auditor = started.pipeline.auditor().clone();
    let pipeline = Arc::clone(&started.pipeline);
    let siem = crate::node::siem::Shipper::start(home, &config.siem, auditor.clone())
        .context("starting the [siem] stream")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(serve_until_stopped(home, &config, mcp, started));
    // Tasks still running now are abandoned; whatever they would record
    // after the last checkpoint is refused by the closed auditor.
    runtime.shutdown_timeout(TASKS_STOP_WITHIN);
    // Calls still in the sandbox get a moment to record their entries; the
    // rest are recorded as given up, so none that ran is left unrecorded.
    match pipeline.stop_calls(std::time::Instant::now() + CALLS_STOP_WITHIN) {
        Ok(0) => {}
        Ok(n) => eprintln!("vigil: gave up {n} call(s) still running; each is recorded (tool.denied, node-stopping)"),
        Err(e) => eprintln!("vigil: could not record the calls still running: {e}"),
    }
    let closed = auditor.close().context("signing the last checkpoint");
    if let Some(siem) = siem {
        siem.stop();
    }
    served?;
    match closed? {
        None => eprintln!("vigil: stopped; the ledger is empty, so there is no checkpoint to sign"),
        Some(_) => eprintln!("vigil: stopped; ledger checkpoint signed"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts the control socket, MCP over HTTP (when `mcp` is set), the link
/// listener and the tunnels, runs them until Ctrl-C or SIGTERM, then stops
/// them: no new connections or links, every link closed and its end
/// recorded, HTTP requests in progress given a grace period.
async fn serve_until_stopped(
    home: &Home,
    config: &Config,
    mcp: Option<SocketAddr>,
    started: Started,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let signals = StopSignals::listen()?;
    tokio::spawn({
        let stop = stop.clone();
        async move {
            signals.recv().await;
            if let Err(e) = crate::node::notify::notify_stopping() {
                tracing::warn!(error = %e, "could not tell the service manager the node is stopping");
            }
            stop.cancel();
        }
    });
    let pipeline = Arc::clone(&started.pipeline);
    let trust = Arc::clone(&started.trust);
    let live = LiveNode::new(home, config, started)?;
    let control = live.serve_control()?;
    let witness = crate::node::witness::WitnessService::open(
        home,
        &config.witness,
        pipeline.auditor().clone(),
    )?
    .map(Arc::new);
    if let Some(w) = &witness {
        println!(
            "vigil: witnessing {} logs as {}",
            config.witness.logs.len(),
            w.name()
        );
        if mcp.is_none() {
            bail!(
                "[witness] needs the MCP listener ([mcp] enabled = true): witnesses answer on it"
            );
        }
    }
    let _submitter = crate::node::witness::spawn_submitter(
        &config.witnesses,
        pipeline.auditor().clone(),
        stop.clone(),
    )?;
    let http = match mcp {
        Some(addr) => Some(start_http(addr, &pipeline, config, stop.clone(), witness).await?),
        None => {
            println!("vigil: MCP is off ([mcp] enabled = false, or no [mcp] table); serving links and tunnels only");
            None
        }
    };
    let metrics = Arc::clone(pipeline.metrics());
    let links = start_links(home, config, pipeline.auditor().clone(), trust, metrics).await?;
    if let Some(server) = &links.server {
        live.set_links(server.open_links());
    }
    // Serving: tell a service manager that waits for it (systemd
    // `Type=notify`).
    if let Err(e) = crate::node::notify::notify_ready() {
        tracing::warn!(error = %e, "could not tell the service manager the node is ready");
    }
    stop.cancelled().await;
    eprintln!("vigil: stopping");
    drop(control);
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
    witness: Option<Arc<crate::node::witness::WitnessService>>,
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
        let limits = mcp.connection_limits();
        crate::mcp::http::serve(listener, pipeline, &mcp, stop, limits, witness).await
    }))
}

/// What `start_links` keeps running; dropping it stops links and tunnels.
struct Links {
    server: Option<LinkListener>,
    /// Each tunnel with the observer recording its links (the dialling side).
    tunnels: Vec<(vigil_transport::TunnelClient, Arc<PrintAndRecord>)>,
}

impl Links {
    /// Closes the tunnels' links and the link listener's links (peers learn
    /// at once) and waits, at most until `deadline`, until the end of every
    /// link and tunnel is recorded.
    async fn shutdown(self, deadline: Instant) -> Result<(), Outstanding> {
        let Links { server, tunnels } = self;
        let mut recorders = Vec::new();
        let mut closed = Vec::new();
        for (tunnel, events) in tunnels {
            let link = tunnel.wait_for_link(Duration::ZERO).await;
            // Stop the tunnel first, so that it neither redials the link
            // closed next nor records its end a second time.
            drop(tunnel);
            if let Some(link) = link {
                link.connection()
                    .close(vigil_transport::link::CLOSE_DONE, b"node shutting down");
                vigil_transport::LinkObserver::record(
                    events.as_ref(),
                    vigil_transport::LinkEvent::LinkClosed {
                        peer: link.peer().clone(),
                        reason: "node shutting down".into(),
                    },
                );
                closed.push(link);
            }
            recorders.push(events.progress());
        }
        let mut recorded = match server {
            Some(server) => server.shutdown(deadline).await,
            None => Ok(()),
        };
        for progress in recorders {
            if let Err(left) = progress.settled_by(deadline).await {
                let so_far = recorded.err().unwrap_or_default();
                recorded = Err(Outstanding {
                    queued: so_far.queued + left.queued,
                    links: so_far.links + left.links,
                    tunnels: so_far.tunnels + left.tunnels,
                });
            }
        }
        if !closed.is_empty() {
            // Let the close frames leave before the runtime stops.
            tokio::time::sleep_until(deadline.min(Instant::now() + Duration::from_millis(100)))
                .await;
        }
        recorded
    }
}

/// Starts the link listener (`[links] listen`) and the `[[tunnels]]` on the
/// current runtime. Link decisions go to the ledger through `auditor`; the
/// listener's are counted in `metrics`.
async fn start_links(
    home: &Home,
    config: &Config,
    auditor: Auditor,
    trust: Arc<SharedTrust>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Links> {
    use super::tunnel::{describe, start_tunnel, TunnelPlan};
    use crate::node::links::start_listener;

    let load_key = || passphrase::node_key(home, config);
    let server = match &config.links.listen {
        None => None,
        Some(listen) => {
            let addr: SocketAddr = listen.parse().map_err(|e| {
                anyhow!("[links] listen = {listen:?} is not an address like 0.0.0.0:7879: {e}")
            })?;
            let server = start_listener(
                addr,
                load_key()?,
                trust,
                ledger_sink(auditor.clone()),
                config.links.serving(),
                Some(metrics),
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
            // The dialling side records its links (opened, closed, refused by
            // the peer) in this node's ledger, and prints them.
            let events = Arc::new(PrintAndRecord::new(ledger_sink(auditor.clone())));
            let observer: Arc<dyn vigil_transport::LinkObserver> = events.clone();
            let tunnel = start_tunnel(Arc::clone(&identity), &plan, observer)
                .await
                .with_context(|| format!("starting the tunnel to {}", plan.target))?;
            println!("vigil tunnel: {}", describe(&tunnel, &plan));
            tunnels.push((tunnel, events));
        }
    }
    Ok(Links { server, tunnels })
}

/// Link entries go to the node's one ledger writer.
fn ledger_sink(auditor: Auditor) -> crate::node::links::LinkAuditSink {
    Box::new(move |e: crate::node::links::LinkAuditEntry| {
        let event = AuditEvent::new(e.kind, e.actor, e.subject, e.decision).details(e.details);
        auditor
            .record(event)
            .map(|_| ())
            .map_err(|err| err.to_string())
    })
}

/// Ctrl-C and SIGTERM, listened for from creation on: a signal that
/// arrives after the node announced itself is never the default (fatal)
/// action, however soon it comes.
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
                int: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
