//! `vigil serve`: runs the node: MCP over streamable HTTP on `[mcp] listen`
//! (bearer tokens from `[[agents]]`), checkpoints on schedule, until Ctrl-C
//! or SIGTERM; a last checkpoint is signed on the way out. Also holds the
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
    let pass = passphrase::from_env(config.node.passphrase_env.as_deref())?;
    let key = home.node_signing_key(pass.as_deref().map(|p| p.as_slice()))?;
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
        anyhow::Ok(())
    })?;
    pipeline
        .auditor()
        .checkpoint()
        .context("signing the last checkpoint")?;
    eprintln!("vigil: stopped; ledger checkpoint signed");
    Ok(ExitCode::SUCCESS)
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
