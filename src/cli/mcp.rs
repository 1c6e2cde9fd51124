//! `vigil mcp`: serves MCP over stdin/stdout for an agent host that spawns
//! the node (Claude Desktop and the like). The agent is `--agent` or
//! `[mcp] stdio_agent`; every call goes through the same pipeline as HTTP.
//! Nothing but MCP is written to stdout; notices go to stderr.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::node::config::Config;
use crate::node::home::Home;

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Agent name of this connection (default: `[mcp] stdio_agent`)
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
}

pub fn run(home: &Home, args: McpArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&home.config_path())?;
    let agent = args.agent.unwrap_or_else(|| config.mcp.stdio_agent.clone());
    if !config.agents.iter().any(|a| a.name == agent) {
        eprintln!("warning: agent `{agent}` is not in [[agents]] of vigil.toml; every call will be refused");
    }
    let pipeline = super::serve::start_pipeline(home, &config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(crate::mcp::serve_stdio(
            std::sync::Arc::clone(&pipeline),
            agent,
        ))
        .context("serving MCP on stdio")?;
    pipeline
        .auditor()
        .checkpoint()
        .context("signing the last checkpoint")?;
    Ok(ExitCode::SUCCESS)
}
