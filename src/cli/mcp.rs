//! `vigil mcp`: serves MCP over stdin/stdout for an agent host that spawns
//! the node (Claude Desktop and the like). The agent is `--agent` or
//! `[mcp] stdio_agent`; every call goes through the same pipeline as HTTP.
//! An agent missing from `[[agents]]` could call nothing, so `vigil mcp`
//! refuses to start for it (exit code 2) and says how to add it. Nothing
//! but MCP is written to stdout; notices go to stderr.

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
        return Err(unknown_agent(home, &config, &agent).into());
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

/// The refusal to serve an agent that `[[agents]]` does not list.
fn unknown_agent(home: &Home, config: &Config, agent: &str) -> super::ExitError {
    let configured: Vec<&str> = config.agents.iter().map(|a| a.name.as_str()).collect();
    let known = if configured.is_empty() {
        "no agents are configured".to_string()
    } else {
        format!("configured agents: {}", configured.join(", "))
    };
    super::ExitError {
        code: 2,
        message: format!(
            "agent `{agent}` is not in [[agents]] of {} ({known}), so every call would be refused; \
             add an [[agents]] table with name = \"{agent}\" and the tools it may call \
             (vigil init writes a commented example), or pass --agent with a configured name",
            home.config_path().display()
        ),
    }
}
