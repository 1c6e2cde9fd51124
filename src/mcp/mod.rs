//! MCP serving: agents meet the node here. [`catalog`] holds the admitted
//! tools ready to run in the sandbox; [`pipeline`] is the ONE call path
//! (identify the caller, allow-list, argument schema, rate limit, human
//! approval, sandbox, output schema, privacy filter, ledger entry) used by
//! both transports; [`server`] is the rmcp handler that exposes it, served
//! over stdio ([`serve_stdio`]) and streamable HTTP ([`http`]); [`call_log`]
//! is the one log line per call.

pub mod call_log;
pub mod catalog;
pub mod connections;
pub mod http;
pub mod pipeline;
pub mod server;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use catalog::{Catalog, CatalogError, CatalogTool};
pub use pipeline::{Approver, Asked, CallReply, Pipeline};
pub use server::{serve_stdio, VigilServer};

/// `[mcp]` settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// Whether `vigil serve` serves MCP over HTTP at all; false: a link-only
    /// node (links and tunnels), no MCP port bound.
    pub enabled: bool,
    /// Address of the streamable HTTP endpoint of `vigil serve`.
    pub listen: String,
    /// Browser origins accepted besides loopback ones.
    pub allowed_origins: Vec<String>,
    /// Agent name of `vigil mcp` (stdio) without `--agent`.
    pub stdio_agent: String,
    /// Seconds a held call waits for `vigil approve`.
    pub approval_timeout_seconds: u64,
    /// Calls per minute per tool (tools not listed: unlimited).
    pub tool_calls_per_minute: BTreeMap<String, u32>,
    /// Whether `GET /metrics` answers peers other than loopback ones.
    pub metrics_allow_remote: bool,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:7878".into(),
            allowed_origins: Vec::new(),
            stdio_agent: "local".into(),
            approval_timeout_seconds: 300,
            tool_calls_per_minute: BTreeMap::new(),
            metrics_allow_remote: false,
        }
    }
}
