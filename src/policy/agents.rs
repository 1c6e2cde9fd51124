//! Agents: the callers the node knows (`[[agents]]` in vigil.toml), how an
//! HTTP caller is identified by its bearer token, and each agent's tool
//! allow-list.

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `[[agents]]`: one agent that may call tools.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Name recorded in the ledger as `agent:NAME`.
    pub name: String,
    /// Tools this agent may call; `"*"` allows every admitted tool.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Hex SHA-256 of the agent's bearer token (HTTP).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Env var of `vigil serve` holding the agent's bearer token (HTTP).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Calls per minute this agent may make (0: unlimited).
    #[serde(default = "default_calls_per_minute")]
    pub calls_per_minute: u32,
    /// The value of the identity provider's agent claim (`[[auth.issuers]]
    /// agent_claim`, by default `client_id`) that names this agent;
    /// default: the agent's name.
    #[serde(default)]
    pub subject: Option<String>,
    /// `[agents.watch]`: the behavioural watch of this agent (none: not
    /// watched).
    #[serde(default)]
    pub watch: Option<crate::policy::watch::WatchConfig>,
}

fn default_calls_per_minute() -> u32 {
    600
}

/// Who is calling: an agent name, resolved by [`Agents`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub agent: String,
}

impl Caller {
    /// The ledger actor string: `agent:NAME`.
    pub fn actor(&self) -> String {
        format!("agent:{}", self.agent)
    }
}

/// The configured agents with their resolved tokens.
#[derive(Debug, Clone, Default)]
pub struct Agents {
    agents: Vec<AgentConfig>,
    /// SHA-256 of each agent's token, same order as `agents`.
    token_hashes: Vec<Vec<[u8; 32]>>,
}

impl Agents {
    /// Resolves tokens: `token_sha256` from config, `token_env` through `env`.
    pub fn new(agents: &[AgentConfig], env: impl Fn(&str) -> Option<String>) -> Self {
        let token_hashes = agents
            .iter()
            .map(|a| {
                let mut hashes = Vec::new();
                if let Some(h) = a
                    .token_sha256
                    .as_deref()
                    .and_then(|h| hex::decode(h.trim()).ok())
                {
                    if let Ok(h) = <[u8; 32]>::try_from(h.as_slice()) {
                        hashes.push(h);
                    }
                }
                if let Some(token) = a.token_env.as_deref().and_then(&env) {
                    if !token.is_empty() {
                        hashes.push(Sha256::digest(token.as_bytes()).into());
                    }
                }
                hashes
            })
            .collect();
        Self {
            agents: agents.to_vec(),
            token_hashes,
        }
    }

    /// The agent named `name`, if configured.
    pub fn by_name(&self, name: &str) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// The agent whose bearer token is `token`.
    pub fn by_token(&self, token: &str) -> Option<&AgentConfig> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.agents
            .iter()
            .zip(&self.token_hashes)
            .find(|(_, hashes)| hashes.iter().any(|h| constant_time_eq(h, &hash)))
            .map(|(a, _)| a)
    }

    /// The agent an identity provider's token names with `subject`.
    pub fn by_subject(&self, subject: &str) -> Option<&AgentConfig> {
        self.agents
            .iter()
            .find(|a| a.subject.as_deref().unwrap_or(&a.name) == subject)
    }

    /// Every configured agent.
    pub fn all(&self) -> &[AgentConfig] {
        &self.agents
    }
}

impl AgentConfig {
    /// True when the allow-list admits `tool`.
    pub fn may_call(&self, tool: &str) -> bool {
        self.tools.iter().any(|t| t == "*" || t == tool)
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, tools: &[&str]) -> AgentConfig {
        AgentConfig {
            name: name.into(),
            tools: tools.iter().map(|s| s.to_string()).collect(),
            token_sha256: None,
            token_env: Some(format!("TOKEN_{name}")),
            calls_per_minute: 0,
            subject: None,
            watch: None,
        }
    }

    #[test]
    fn tokens_map_to_agents_and_allow_lists_apply() {
        let mut hashed = agent("b", &["*"]);
        hashed.token_env = None;
        hashed.token_sha256 = Some(hex::encode(Sha256::digest(b"tok-b")));
        let agents = Agents::new(&[agent("a", &["echo"]), hashed], |v| {
            (v == "TOKEN_a").then(|| "tok-a".to_string())
        });
        assert_eq!(agents.by_token("tok-a").map(|a| a.name.as_str()), Some("a"));
        assert_eq!(agents.by_token("tok-b").map(|a| a.name.as_str()), Some("b"));
        assert!(agents.by_token("nope").is_none());
        let a = agents.by_name("a").unwrap();
        assert!(a.may_call("echo") && !a.may_call("notes"));
        assert!(agents.by_name("b").unwrap().may_call("anything"));
    }
}
