//! `vigil.toml`: the node's configuration. This module owns the schema
//! (unknown keys are errors naming the key) and the commented template that
//! `vigil init` writes, which lists every option with its default.

use std::path::Path;

use serde::Deserialize;

/// Errors reading `vigil.toml`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// The whole configuration. Every section is optional; defaults apply.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub ledger: LedgerConfig,
    pub packages: PackagesConfig,
    /// `[mcp]`: serving MCP (see `crate::mcp::McpConfig`); without the
    /// table, `vigil serve` serves MCP only when given `--listen`.
    #[serde(default = "crate::mcp::McpConfig::absent")]
    pub mcp: crate::mcp::McpConfig,
    /// `[privacy]`: redaction of tool output.
    pub privacy: crate::privacy::PrivacyConfig,
    /// `[[agents]]`: who may call which tools.
    pub agents: Vec<crate::policy::AgentConfig>,
    /// `[approvals]`: who may answer calls of `high` tools, and how many
    /// may wait.
    pub approvals: crate::policy::ApprovalsConfig,
    /// `[links]`: post-quantum links to peer nodes.
    pub links: crate::node::links::LinksConfig,
    /// `[[tunnels]]`: TCP tunnels `vigil serve` keeps open to peer nodes.
    pub tunnels: Vec<crate::node::links::TunnelConfig>,
    /// `[witness]`: this node as a witness of other logs.
    pub witness: crate::node::witness::WitnessConfig,
    /// `[[witnesses]]`: witnesses this node sends its checkpoints to.
    pub witnesses: Vec<crate::node::witness::WitnessTarget>,
    /// `[siem]`: the ledger streamed as JSON Lines for a SIEM.
    pub siem: crate::node::siem::SiemConfig,
    /// `[auth]`: tokens from identity providers and from this node.
    pub auth: crate::mcp::auth::AuthConfig,
}

/// `[packages]`: limits of the gatekeeper.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackagesConfig {
    /// Largest package file the gatekeeper reads, in bytes.
    pub max_package_bytes: u64,
}

impl Default for PackagesConfig {
    fn default() -> Self {
        Self {
            max_package_bytes: crate::package::format::DEFAULT_MAX_PACKAGE_BYTES,
        }
    }
}

/// `[ledger]`: checkpoints and payloads of the audit ledger.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// Sign a checkpoint after this many entries (0: never by count).
    pub checkpoint_every_entries: u64,
    /// Sign a checkpoint this many seconds after the last one when entries
    /// were added (0: never by time).
    pub checkpoint_every_seconds: u64,
    /// Whether tool inputs and outputs are stored beside the ledger.
    pub payloads: PayloadMode,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            checkpoint_every_entries: 1000,
            checkpoint_every_seconds: 300,
            payloads: PayloadMode::Full,
        }
    }
}

/// `[ledger] payloads`: `"full"` stores payloads (erasable) under a salted
/// commitment; `"none"` stores no payload at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadMode {
    Full,
    None,
}

/// `[node]`: identity of this node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Name of this node; used as the checkpoint origin.
    pub name: String,
    /// Env var holding the passphrase of a sealed node key.
    pub passphrase_env: Option<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: "vigil-node".to_string(),
            passphrase_env: None,
        }
    }
}

impl Config {
    /// Parses configuration text; unknown keys are errors with their name.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: origin.to_string(),
            message: e.message().to_string(),
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: origin.to_string(),
            message,
        };
        for agent in &config.agents {
            if let Some(watch) = &agent.watch {
                watch
                    .validate()
                    .map_err(|e| invalid(format!("[[agents]] {}: watch: {e}", agent.name)))?;
            }
        }
        Ok(config)
    }

    /// Reads `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            // No file: every table absent, as in an empty one.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Self::parse("", &path.display().to_string())
            }
            Err(source) => Err(ConfigError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

/// The `vigil.toml` that `vigil init` writes: every option, commented out,
/// at its default.
pub const TEMPLATE: &str = r#"# vigil node configuration. Every option is shown commented out at its
# default; uncomment to change. Unknown keys are refused.

# TCP tunnels `vigil serve` keeps open over post-quantum links (none by
# default), as `vigil tunnel` does: local connections to `listen` reach
# `target` through the peer node, if its trust store allows that target for
# this node. `peer_key` is the peer's .pub file or key line. Same as writing
# one [[tunnels]] table per tunnel.
# tunnels = [{ peer = "node-a.example:7879", peer_key = "/etc/vigil/node-a.pub", listen = "127.0.0.1:5433", target = "db.internal:5432" }]

[node]
# Name of this node; used as the origin line of signed ledger checkpoints.
# name = "vigil-node"
# Env var holding the passphrase of the node key, if `vigil init` sealed it.
# passphrase_env = "VIGIL_PASSPHRASE"

[ledger]
# Sign a ledger checkpoint after this many entries (0: never by count).
# checkpoint_every_entries = 1000
# ...and this many seconds after the last one if entries were added (0: never).
# checkpoint_every_seconds = 300
# "full": store tool inputs/outputs beside the ledger (erasable with
# `vigil audit erase`); "none": store no payloads.
# payloads = "full"

[packages]
# Largest package file (.vpkg) the gatekeeper accepts, in bytes (64 MiB).
# max_package_bytes = 67108864

[mcp]
# Whether `vigil serve` serves MCP; false makes a link-only node that serves
# [links] and [[tunnels]] and binds no MCP port.
# enabled = true
# Address of `vigil serve`'s MCP streamable HTTP endpoint (path /mcp; also
# GET /healthz, and GET /metrics in the Prometheus text format).
# listen = "127.0.0.1:7878"
# Origins (besides http(s)://localhost and 127.0.0.1 on any port) whose
# browser requests are accepted; others are refused as the MCP spec requires.
# allowed_origins = []
# Agent name of `vigil mcp` (stdio) when no --agent is given.
# stdio_agent = "local"
# Seconds a call of a `high`-sensitivity tool waits for `vigil approve`.
# approval_timeout_seconds = 300
# Calls per minute per tool, over all agents (tools not listed: unlimited).
# tool_calls_per_minute = { fetch = 120 }
# Whether GET /metrics answers clients other than loopback ones (it needs no
# token; /healthz answers everyone).
# metrics_allow_remote = false
# Largest HTTP request body, in bytes (4 MiB); a larger Content-Length is
# answered 413 before the body is read.
# max_request_body_bytes = 4194304
# Seconds a client has to send a request's headers (from their first
# byte), and again its body.
# header_read_timeout_seconds = 30
# Seconds a keep-alive connection may wait for its next request.
# idle_timeout_seconds = 60
# HTTP connections open at once; at the limit the longest idle one is
# closed to make room (if none is idle, the new one is closed).
# max_connections = 512
# HTTP connections open at once per agent (past it: 429, closed).
# max_connections_per_agent = 256
# MCP sessions open at once (past it: 503), and per agent (past it: 429).
# max_sessions = 1024
# max_sessions_per_agent = 256
# Seconds after which an MCP session without requests ends.
# session_idle_timeout_seconds = 300

[approvals]
# Who answers calls of `high`-sensitivity tools: "operator" (only a decision
# signed with a trusted operator key counts: `vigil trust operator add`,
# then `vigil approve ID --key OPERATOR.key`) or "client" (the agent's MCP
# client may ask its user through elicitation; otherwise an operator
# answers, signed or not).
# mode = "operator"
# Per tool and per agent; when both are named, "operator" wins.
# tools = { vault_read = "client" }
# agents = { alice = "client" }
# Calls that may wait for an answer at once, per agent and on the node;
# further calls are refused (approval-unavailable) and recorded.
# max_pending_per_agent = 16
# max_pending = 256

[privacy]
# Redact personal data and secrets in tool output (placeholders such as
# [REDACTED:EMAIL]) before it reaches an agent or the payload store.
# enabled = true
# Kinds redacted: email, phone, credit_card, iban, ssn, ipv4, ipv6,
# aws_access_key, github_token, gitlab_token, slack_token, private_key, jwt,
# secret (high-entropy values assigned to key/secret/token/password names).
# kinds = ["email", "phone", "credit_card", "iban", "ssn", "ipv4", "ipv6", "aws_access_key", "github_token", "gitlab_token", "slack_token", "private_key", "jwt", "secret"]
# Per-tool overrides: `enabled` and/or `kinds` by tool name.
# tools = { fetch = { kinds = ["email", "secret"] }, wordcount = { enabled = false } }
# Most bytes of text (strings and keys) scanned in a call's arguments, and
# again in its output (4 MiB); a call with more is refused
# `too-large-to-scan` and recorded without them.
# max_scan_bytes = 4194304

[links]
# UDP address to accept post-quantum links from peer nodes on (unset: none).
# listen = "0.0.0.0:7879"
# Seconds after which a tunnel (`vigil tunnel`, [[tunnels]]) re-keys by
# dialling a fresh link.
# link_lifetime_seconds = 3600
# Links set up at once (TLS handshake and identity binding). Once half are
# taken, new attempts must prove their address first (a QUIC Retry);
# attempts beyond the limit are refused before their handshake.
# max_pending_links = 64
# Refused setups within 5-10 seconds after which every new attempt must
# prove its address first (a flood of bad or spoofed attempts).
# refusals_before_validation = 32

[siem]
# Stream every ledger entry, as one ECS-shaped JSON line (docs/siem.md), to
# this file (relative to the home) while `vigil serve` runs; it resumes
# after the last line written, so nothing is lost or repeated.
# file = "siem/events.jsonl"
# Rotate the file past this size (renamed events.jsonl.<last index>).
# max_file_bytes = 67108864
# Rotated files kept (0: all).
# keep_files = 0
# And/or send each entry to a syslog collector as an RFC 5424 message
# (facility log audit) over TCP, or TLS with the collector's certificate
# checked against syslog_ca_file; at least once (siem/syslog.cursor).
# syslog = "siem.example:6514"
# syslog_tls = true
# syslog_ca_file = "siem-ca.pem"
# syslog_server_name = "siem.example"

# Witnessing (C2SP tlog-witness, docs/witness.md). As a witness of other
# logs, `vigil serve` answers POST /witness/add-checkpoint on [mcp] listen
# with its keys from `vigil witness init --name NAME` (witness.key), for the
# logs listed here: each a vigil node's .pub line or file, or an Ed25519
# note verifier key.
[witness]
# key_file = "witness.key"
# [[witness.logs]]
# origin = "bank.example/node-a"
# keys = ["node-a.pub"]
#
# Witnesses this node sends each new checkpoint to, with their verifier
# keys (`vigil witness show` on the witness); their cosignatures are kept in
# the checkpoint notes, so exported bundles carry them.
# [[witnesses]]
# url = "http://witness.example:7878/witness"
# keys = ["witness.example/w1+5a1e4c7b+BA..."]

# Who an HTTP caller is. Static [[agents]] tokens are for development; in
# production agents present short-lived tokens: JWT access tokens from the
# organisation's identity provider ([[auth.issuers]]: signature checked
# with the issuer's JWKS, `iss`, `aud` naming `resource`, `exp`/`nbf` within
# `leeway_seconds`, `tools:NAME` / `tools:*` scopes; the `agent_claim`
# names the agent), or tokens this node mints with `vigil agent token`
# (`vigil agent revoke` ends them at once). The node publishes RFC 9728
# metadata at /.well-known/oauth-protected-resource/mcp. `resource` is the
# URL agents use for /mcp (default: http://LISTEN/mcp). See docs/agents.md.
[auth]
# resource = "https://vigil.example/mcp"
# static_tokens = true
# node_tokens = true
# max_node_token_ttl_seconds = 86400
# leeway_seconds = 30
# refusals_recorded_per_second = 20
# [[auth.issuers]]
# issuer = "https://idp.example"
# jwks_uri = "https://idp.example/jwks"
# agent_claim = "client_id"
# algorithms = ["RS256", "PS256", "ES256", "EdDSA"]
# jwks_cache_seconds = 300
# jwks_min_refetch_seconds = 10

# Agents that may call tools: one [[agents]] table each (none by default:
# every call is refused, and `vigil mcp` does not start). `tools` lists the
# tools the agent may call ("*": all admitted tools). `vigil mcp --agent
# NAME` (or [mcp] stdio_agent) names the agent of a stdio connection; an
# HTTP caller of `vigil serve` is identified by its bearer token, given as
# the hex SHA-256 of the token (`token_sha256`: `printf %s TOKEN | sha256sum`)
# or as an env var of `vigil serve` holding it (`token_env`).
# `calls_per_minute` is the agent's token bucket (0: unlimited). `subject`
# is the value of the identity provider's agent claim that names the agent
# (default: its name). `watch` is its behavioural watch (none: unwatched):
# rules per sliding window, allowed local hours, first use of a tool, the
# refusal rate and a learned baseline; a breach suspends the agent until
# `vigil agent resume NAME` (mode "dry-run": only recorded). All its keys
# are in docs/agents.md.
# [[agents]]
# name = "local"
# tools = ["*"]
# token_env = "VIGIL_TOKEN_LOCAL"
# calls_per_minute = 600
#
# [[agents]]
# name = "support-bot"
# tools = ["lookup", "echo"]
# token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
# calls_per_minute = 60
# subject = "support-bot"
# watch = { mode = "enforce", window_secs = 60, max_calls_per_window = 120, allowed_hours = "07-20", time_zone = "Europe/Berlin" }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_and_uncommented_template_parses() {
        Config::parse(TEMPLATE, "template").expect("template parses");
        let uncommented: String = TEMPLATE
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = ") || r.starts_with("[["))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config =
            Config::parse(&uncommented, "uncommented").expect("every documented option parses");
        let agents: Vec<&str> = config.agents.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(agents, ["local", "support-bot"], "the [[agents]] example");
        assert_eq!(config.agents[1].tools, ["lookup", "echo"]);
        assert_eq!(config.agents[1].calls_per_minute, 60);
        assert!(config.agents[1].watch.is_some(), "the watch example");
        assert_eq!(config.auth.issuers.len(), 1, "the [[auth.issuers]] example");
    }

    #[test]
    fn link_limits_default_to_the_transport_defaults_and_are_read() {
        let links = Config::parse("", "t")
            .expect("empty config")
            .links
            .serving();
        let transport = vigil_transport::LinkConfig::default();
        assert_eq!(links.max_pending_links, transport.max_pending_links);
        assert_eq!(
            links.refusals_before_validation,
            transport.refusals_before_validation
        );
        let set = Config::parse(
            "[links]\nmax_pending_links = 8\nrefusals_before_validation = 3\n",
            "t",
        )
        .expect("limits parse")
        .links
        .serving();
        assert_eq!(set.max_pending_links, 8);
        assert_eq!(set.refusals_before_validation, 3);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[node]\nnmae = \"x\"\n", "t").expect_err("unknown key");
        assert!(err.to_string().contains("nmae"), "{err}");
        let err = Config::parse("[nodes]\n", "t").expect_err("unknown section");
        assert!(err.to_string().contains("nodes"), "{err}");
    }
}
