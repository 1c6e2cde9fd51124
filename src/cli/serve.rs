//! `vigil serve`: runs the node: MCP over streamable HTTP on `[mcp] listen`
//! (bearer tokens from `[[agents]]`), checkpoints on schedule, the
//! post-quantum link listener on `[links] listen` (peers judged by the trust
//! store, each decision one ledger entry) and every `[[tunnels]]`, until
//! Ctrl-C or SIGTERM; a last checkpoint is signed on the way out. Also holds the
//! node start-up shared with `vigil mcp` ([`start_pipeline`]).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::passphrase;
use crate::mcp::{Catalog, Pipeline};
use crate::node::audit::Auditor;
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

/// Opens the ledger (with the node key, for checkpoints), loads the
/// admitted tools into the sandbox and builds the call pipeline.
pub fn start_pipeline(home: &Home, config: &Config) -> anyhow::Result<Arc<Pipeline>> {
    home.require_initialized()?;
    let key = passphrase::node_key(home, config)?;
    let auditor = Auditor::open(home, config, Some(key)).context(
        "opening the audit ledger (is another `vigil serve` or `vigil mcp` running on this home?)",
    )?;
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

pub fn run(home: &Home, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&home.config_path())?;
    let listen = args.listen.unwrap_or_else(|| config.mcp.listen.clone());
    let addr: SocketAddr = listen.parse().map_err(|e| {
        anyhow!("[mcp] listen = {listen:?} is not an address like 127.0.0.1:7878: {e}")
    })?;
    let pipeline = start_pipeline(home, &config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
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
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stop.cancel();
        });
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
    Ok(Links {
        _server: server,
        _tunnels: tunnels,
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
