//! `vigil serve`: runs the node: MCP over streamable HTTP on `[mcp] listen`
//! (bearer tokens from `[[agents]]`), checkpoints on schedule, the
//! post-quantum link listener on `[links] listen` (peers judged by the trust
//! store, each decision one ledger entry) and every `[[tunnels]]`, and the
//! control socket operators' commands reach it through, until Ctrl-C or
//! SIGTERM; a last checkpoint is signed on the way out. Also holds the node
//! start-up shared with `vigil mcp` ([`start_pipeline`]).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::live::LiveNode;
use super::passphrase;
use crate::gatekeeper::Occasion;
use crate::mcp::{Catalog, Pipeline};
use crate::node::audit::{AuditEvent, Auditor, EventKind, Verdict};
use crate::node::config::Config;
use crate::node::home::Home;
use crate::policy::ApprovalQueue;
use crate::sandbox::{Sandbox, SandboxConfig};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen on this address instead of `[mcp] listen`
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// The node's serving parts: the call pipeline and the sandbox its tools
/// run in (kept to load newly admitted tools while the node runs).
pub struct Started {
    pub pipeline: Arc<Pipeline>,
    pub sandbox: Arc<Sandbox>,
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
    let key = passphrase::node_key(home, config)?;
    let auditor = Auditor::open(home, config, Some(key)).context(
        "opening the audit ledger (is another `vigil serve` or `vigil mcp` running on this home?)",
    )?;
    let sandbox_config = SandboxConfig::new(home.cache_dir().join("wasm"));
    let slots = sandbox_config.max_concurrent_calls as usize;
    let sandbox = Arc::new(Sandbox::new(&sandbox_config).context("starting the sandbox")?);
    let (catalog, skipped) =
        Catalog::load(home, config, &sandbox).context("loading admitted tools")?;
    for check in skipped {
        let source = check.path.display().to_string();
        let record = check.decision.audit_record(Occasion::Startup, &source);
        auditor
            .record(record.event("node"))
            .context("recording a stored package that no longer verifies")?;
        eprintln!("warning: stored package {source} no longer verifies; its tools are not served (see `vigil tools`)");
    }
    let approvals = ApprovalQueue::new(home.approvals_dir());
    refuse_orphaned_approvals(&approvals, &auditor)?;
    let pipeline = Arc::new(Pipeline::new(
        catalog,
        config,
        |v| std::env::var(v).ok(),
        approvals,
        auditor,
        slots,
    ));
    Ok(Started { pipeline, sandbox })
}

/// Answers every call a stopped node left waiting for approval: nothing
/// waits for it any more, so it is refused (`node:restart`) and recorded,
/// and `vigil approve` no longer lists it.
fn refuse_orphaned_approvals(queue: &ApprovalQueue, auditor: &Auditor) -> anyhow::Result<()> {
    let decision = crate::policy::Decision {
        answer: crate::policy::Answer::Deny,
        by: "node:restart".into(),
        reason: "the node stopped while the call waited for approval".into(),
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

pub fn run(home: &Home, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&home.config_path())?;
    let listen = args.listen.unwrap_or_else(|| config.mcp.listen.clone());
    let addr: SocketAddr = listen.parse().map_err(|e| {
        anyhow!("[mcp] listen = {listen:?} is not an address like 127.0.0.1:7878: {e}")
    })?;
    let Started { pipeline, sandbox } = start_pipeline(home, &config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let live = LiveNode::new(home, &config, Arc::clone(&pipeline), sandbox)?;
        let _control = live.serve_control()?;
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
        let links = start_links(home, &config, pipeline.auditor().clone()).await?;
        if let Some(server) = &links._server {
            live.set_links(server.open_links());
        }
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            if let Err(e) = crate::node::notify::notify_stopping() {
                tracing::warn!(error = %e, "could not tell the service manager the node is stopping");
            }
            stop.cancel();
        });
        // Serving: tell a service manager that waits for it (systemd
        // `Type=notify`).
        if let Err(e) = crate::node::notify::notify_ready() {
            tracing::warn!(error = %e, "could not tell the service manager the node is ready");
        }
        crate::mcp::http::serve(
            listener,
            Arc::clone(&pipeline),
            &config.mcp.allowed_origins,
            cancel,
        )
        .await?;
        drop(links);
        anyhow::Ok(())
    })?;
    if pipeline.auditor().ledger().size() == 0 {
        eprintln!("vigil: stopped; the ledger is empty, so there is no checkpoint to sign");
        return Ok(ExitCode::SUCCESS);
    }
    pipeline
        .auditor()
        .checkpoint()
        .context("signing the last checkpoint")?;
    eprintln!("vigil: stopped; ledger checkpoint signed");
    Ok(ExitCode::SUCCESS)
}

/// What `start_links` keeps running; dropping it stops links and tunnels.
struct Links {
    _server: Option<vigil_transport::LinkServer>,
    _tunnels: Vec<vigil_transport::TunnelClient>,
}

/// Starts the link listener (`[links] listen`) and the `[[tunnels]]` on the
/// current runtime. Link decisions go to the ledger through `auditor`.
async fn start_links(home: &Home, config: &Config, auditor: Auditor) -> anyhow::Result<Links> {
    use super::tunnel::{describe, start_tunnel, PrintAndRecord, TunnelPlan};
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
                home.trust_path(),
                ledger_sink(auditor.clone()),
                config.links.serving(),
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
            let tunnel = start_tunnel(Arc::clone(&identity), &plan, events)
                .await
                .with_context(|| format!("starting the tunnel to {}", plan.target))?;
            println!("vigil tunnel: {}", describe(&tunnel, &plan));
            tunnels.push(tunnel);
        }
    }
    Ok(Links {
        _server: server,
        _tunnels: tunnels,
    })
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
