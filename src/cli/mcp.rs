//! `vigil mcp`: serves MCP over stdin/stdout for an agent host that spawns
//! the node (Claude Desktop and the like). The agent is `--agent` or
//! `[mcp] stdio_agent`; every call goes through the same pipeline as HTTP.
//! An agent missing from `[[agents]]` could call nothing, so `vigil mcp`
//! refuses to start for it (exit code 2) and says how to add it. Nothing
//! but MCP is written to stdout; notices go to stderr.
//!
//! When a node already runs on the home (`vigil serve`, or another
//! `vigil mcp`), this one does not open the home: it relays its stdio to an
//! MCP session of the running node over the control socket. Otherwise it
//! is the node, with its own control socket, until the host closes stdin.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::Args;

use super::live::LiveNode;
use crate::control::client;
use crate::control::protocol::{Reply, Request};
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
    if let Some(node) = client::connect(&home.control_socket())? {
        return relay(node, agent);
    }
    let started = super::serve::start_pipeline(home, &config)?;
    let pipeline = std::sync::Arc::clone(&started.pipeline);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let live = LiveNode::new(home, &config, started)?;
        let _control = live.serve_control()?;
        crate::mcp::serve_stdio(std::sync::Arc::clone(&pipeline), agent)
            .await
            .context("serving MCP on stdio")
    })?;
    pipeline
        .auditor()
        .checkpoint()
        .context("signing the last checkpoint")?;
    Ok(ExitCode::SUCCESS)
}

/// Carries this process's stdin and stdout to an MCP session of the
/// running node until either side closes.
fn relay(node: client::Client, agent: String) -> anyhow::Result<ExitCode> {
    let (reply, stream) = node.upgrade(&Request::Mcp { agent })?;
    match reply {
        Reply::Ok => {}
        Reply::Error { message } => return Err(anyhow!(message)),
        _ => bail!("the node answered `mcp` with something else"),
    }
    let mut to_node = stream.try_clone().context("relaying to the running node")?;
    let mut from_node = stream;
    let upstream = std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_node.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_node.shutdown(std::net::Shutdown::Write);
    });
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from_node.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                stdout.write_all(&buf[..n])?;
                stdout.flush()?;
            }
        }
    }
    drop(upstream);
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
