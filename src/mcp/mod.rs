//! MCP serving: agents meet the node here. [`catalog`] holds the admitted
//! tools ready to run in the sandbox; [`pipeline`] is the ONE call path
//! (identify the caller, allow-list, argument schema, rate limit, human
//! approval, sandbox, output schema, privacy filter, ledger entry) used by
//! both transports; [`server`] is the rmcp handler that exposes it, served
//! over stdio ([`serve_stdio`]) and streamable HTTP ([`http`]); [`call_log`]
//! is the one log line per call. What an HTTP client may hold and send is
//! bounded by [`connections`], [`requests`] and [`sessions`] (counted by
//! [`caps`]), with the limits of [`McpConfig`].

pub mod auth;
pub mod call_log;
pub mod caps;
pub mod catalog;
pub mod connections;
pub mod guard;
pub mod http;
pub mod in_flight;
pub mod inband;
pub mod pipeline;
pub mod requests;
pub mod server;
pub mod sessions;

use std::collections::BTreeMap;
use std::time::Duration;

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
    /// Largest HTTP request body, in bytes.
    pub max_request_body_bytes: usize,
    /// Seconds a client has to send a request's headers (from their first
    /// byte), and again its body.
    pub header_read_timeout_seconds: u64,
    /// Seconds a connection may wait for its next request before it is closed.
    pub idle_timeout_seconds: u64,
    /// HTTP connections open at once.
    pub max_connections: usize,
    /// HTTP connections open at once per agent.
    pub max_connections_per_agent: usize,
    /// MCP sessions open at once.
    pub max_sessions: usize,
    /// MCP sessions open at once per agent.
    pub max_sessions_per_agent: usize,
    /// Seconds after which a session without requests ends.
    pub session_idle_timeout_seconds: u64,
    /// Whether vigil.toml has an `[mcp]` table at all. Without one,
    /// `vigil serve` serves MCP only when `--listen` names an address.
    #[serde(skip)]
    pub configured: bool,
}

impl McpConfig {
    /// The settings of a vigil.toml without an `[mcp]` table: the defaults,
    /// marked as not configured.
    pub fn absent() -> Self {
        Self {
            configured: false,
            ..Self::default()
        }
    }

    /// The limits of the HTTP connections.
    pub fn connection_limits(&self) -> connections::ConnectionLimits {
        connections::ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            max_connections: self.max_connections,
            max_connections_per_agent: self.max_connections_per_agent,
            shutdown_grace: connections::SHUTDOWN_GRACE,
        }
    }
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
            max_request_body_bytes: 4 * 1024 * 1024,
            header_read_timeout_seconds: 30,
            idle_timeout_seconds: 60,
            max_connections: 512,
            max_connections_per_agent: 256,
            max_sessions: 1024,
            max_sessions_per_agent: 256,
            session_idle_timeout_seconds: 300,
            configured: true,
        }
    }
}
