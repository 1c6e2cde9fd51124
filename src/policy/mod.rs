//! Call policy: who may call which tool, how often, with which arguments,
//! and which calls wait for a human. The rules are plain code: agents and
//! their allow-lists ([`agents`]), token buckets ([`rate`]), JSON Schema
//! checks of arguments and structured output ([`schema`]); the approval
//! queue ([`approval`]) is a directory of small files so that an operator's
//! `vigil approve` in another process answers a call held by the node.
//! Every refusal is a [`Refusal`] that says what was refused and why.

pub mod agents;
pub mod approval;
pub mod grant;
pub mod node_token;
pub mod rate;
pub mod schema;
pub mod watch;

use std::time::Duration;

pub use agents::{AgentConfig, Agents, Caller};
pub use approval::{
    Answer, ApprovalMode, ApprovalQueue, ApprovalRequest, ApprovalsConfig, Decision, Held,
};
pub use rate::RateLimits;
pub use schema::SchemaCheck;
pub use watch::{Watch, WatchConfig};

/// Why a call was refused. The message is shown to the agent (as an MCP tool
/// error) and recorded in the ledger for the operator.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("no agent is configured for this caller: {0}")]
    UnknownCaller(String),
    #[error("tool `{tool}` is not admitted on this node (see `vigil tools`)")]
    UnknownTool { tool: String },
    #[error("agent `{agent}` may not call tool `{tool}`: add it to the agent's `tools` in vigil.toml to allow it")]
    ToolNotAllowed { agent: String, tool: String },
    #[error("the token of agent `{agent}` does not cover tool `{tool}` (its scopes: {}); ask for a token with scope `tools:{tool}`", if .scopes.is_empty() { "none".to_string() } else { .scopes.join(" ") })]
    OutOfScope {
        agent: String,
        tool: String,
        scopes: Vec<String>,
    },
    #[error("agent `{agent}` is suspended by the behavioural watch ({rule}); an operator lifts it with `vigil agent resume {agent}`")]
    AgentSuspended { agent: String, rule: String },
    #[error("arguments of `{tool}` do not match its input schema: {}", .problems.join("; "))]
    InvalidArguments { tool: String, problems: Vec<String> },
    #[error("rate limit of {scope} reached: retry in {} ms", .retry_after.as_millis())]
    RateLimited {
        scope: String,
        retry_after: Duration,
    },
    #[error("a human denied this call of `{tool}` ({by}): {reason}")]
    ApprovalDenied {
        tool: String,
        by: String,
        reason: String,
    },
    #[error("no human answered the approval request for `{tool}` within {} s; ask the operator to watch `vigil approvals` and retry", .waited.as_secs())]
    ApprovalTimedOut { tool: String, waited: Duration },
    #[error("approval for `{tool}` could not be asked: {message}")]
    ApprovalUnavailable { tool: String, message: String },
    #[error("output of `{tool}` does not match its output schema: {}", .problems.join("; "))]
    InvalidOutput { tool: String, problems: Vec<String> },
    #[error("the {what} of `{tool}` hold {bytes} bytes of text, more than the {limit} the privacy filter scans per call ([privacy] max_scan_bytes); send or return less")]
    TooLargeToScan {
        tool: String,
        /// `arguments` or `output`.
        what: &'static str,
        bytes: usize,
        limit: usize,
    },
    #[error("tool `{tool}` failed: {message}")]
    ToolFailed { tool: String, message: String },
    #[error("the call of `{tool}` could not be recorded in the audit ledger, so it was not run: {message}")]
    AuditUnavailable { tool: String, message: String },
}

impl Refusal {
    /// A short stable code for the ledger (`tool-not-allowed`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownCaller(_) => "unknown-caller",
            Self::UnknownTool { .. } => "unknown-tool",
            Self::ToolNotAllowed { .. } => "tool-not-allowed",
            Self::OutOfScope { .. } => "out-of-scope",
            Self::AgentSuspended { .. } => "agent-suspended",
            Self::InvalidArguments { .. } => "invalid-arguments",
            Self::RateLimited { .. } => "rate-limited",
            Self::ApprovalDenied { .. } => "approval-denied",
            Self::ApprovalTimedOut { .. } => "approval-timed-out",
            Self::ApprovalUnavailable { .. } => "approval-unavailable",
            Self::InvalidOutput { .. } => "invalid-output",
            Self::TooLargeToScan { .. } => "too-large-to-scan",
            Self::ToolFailed { .. } => "tool-failed",
            Self::AuditUnavailable { .. } => "audit-unavailable",
        }
    }
}
