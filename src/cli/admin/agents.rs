//! The agent operations of [`Admin`]: minting a node token (`vigil agent
//! token`), revoking tokens (`vigil agent revoke`), lifting a suspension
//! (`vigil agent resume`) and listing suspensions (`vigil agent status`).
//! On a running node they act on its live access state, so they take effect
//! at the next request; each change is saved before its ledger entry.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use rand_core::{OsRng, RngCore as _};
use serde_json::json;

use super::Admin;
use crate::control::protocol::Reply;
use crate::mcp::auth::unix_now;
use crate::node::access::AgentAccess;
use crate::node::audit::{AuditEvent, EventKind, Verdict};
use crate::policy::grant::ToolScope;
use crate::policy::node_token::{self, NodeTokenClaims};

impl Admin {
    /// The node's access state: the running node's, else the home's file.
    fn access(&self) -> anyhow::Result<Arc<AgentAccess>> {
        match &self.live {
            Some(live) => Ok(Arc::clone(live.pipeline().guard().access())),
            None => Ok(Arc::new(
                AgentAccess::load(&self.home.access_path()).context("reading agents.json")?,
            )),
        }
    }

    fn agent_known(&self, agent: &str) -> anyhow::Result<&crate::policy::AgentConfig> {
        self.config
            .agents
            .iter()
            .find(|a| a.name == agent)
            .ok_or_else(|| {
                anyhow!("agent `{agent}` is not in [[agents]] of vigil.toml; add it with the tools it may call")
            })
    }

    pub(super) fn agent_token(
        &self,
        agent: &str,
        ttl_seconds: u64,
        tools: &[String],
    ) -> anyhow::Result<Reply> {
        let config = self.agent_known(agent)?;
        let max = self.config.auth.max_node_token_ttl_seconds;
        if ttl_seconds == 0 || ttl_seconds > max {
            bail!("--ttl must be between 1 s and {max} s ([auth] max_node_token_ttl_seconds)");
        }
        if !self.config.auth.node_tokens {
            bail!("this node does not accept its own tokens ([auth] node_tokens = false)");
        }
        for tool in tools {
            if !config.may_call(tool) {
                bail!("agent `{agent}` may not call `{tool}` ([[agents]] tools); a token cannot widen the allow-list");
            }
        }
        let scope = if tools.is_empty() {
            ToolScope::All
        } else {
            ToolScope::Only(tools.iter().cloned().collect())
        };
        let scope = scope.scopes().join(" ");
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let now = unix_now();
        let claims = NodeTokenClaims {
            iss: self.auditor.origin().to_string(),
            sub: agent.to_string(),
            scope: scope.clone(),
            iat: now,
            exp: now + ttl_seconds as i64,
            jti: hex::encode(id),
        };
        let token = node_token::mint(&claims, |message| {
            self.auditor
                .sign(message, vigil_crypto::context::AGENT_TOKEN)
                .map_err(|e| e.to_string())
        })?;
        let entry = self.auditor.record(
            AuditEvent::new(
                EventKind::AgentTokenIssued,
                "operator",
                format!("agent:{agent}"),
                Verdict::Allow,
            )
            .details(json!({
                "token_id": claims.jti,
                "scope": scope,
                "issued_at": claims.iat,
                "expires_at": claims.exp,
            })),
        )?;
        Ok(Reply::AgentToken {
            token,
            token_id: claims.jti,
            agent: agent.to_string(),
            scope,
            expires_at: claims.exp,
            entry,
        })
    }

    pub(super) fn agent_revoke(
        &self,
        agent: Option<&str>,
        token_id: Option<&str>,
        token: Option<&str>,
        reason: &str,
    ) -> anyhow::Result<Reply> {
        let access = self.access()?;
        let now = unix_now();
        let (details, summary) = match (agent, token_id, token) {
            (Some(agent), None, None) => {
                self.agent_known(agent)?;
                access.revoke_agent_tokens(agent, now)?;
                (
                    json!({"agent": agent, "issued_until": now, "reason": reason}),
                    format!("every token of agent `{agent}` issued until now is revoked"),
                )
            }
            (None, Some(id), None) => {
                // The expiry is unknown: keep the revocation for the longest
                // lifetime a token may have here.
                let exp = now + self.config.auth.max_node_token_ttl_seconds as i64;
                access.revoke_token(id, exp, now)?;
                (
                    json!({"token_id": id, "reason": reason}),
                    format!("token {id} is revoked"),
                )
            }
            (None, None, Some(token)) => {
                let key = self
                    .auditor
                    .public_key()
                    .ok_or_else(|| anyhow!("reading a node token needs the node key"))?;
                // An expired token is refused anyway; read its id regardless.
                let claims = node_token::open(token, &key, self.auditor.origin(), 0, i64::MAX / 4)
                    .context("the token is not a valid token of this node")?;
                access.revoke_token(&claims.jti, claims.exp, now)?;
                (
                    json!({"agent": claims.sub, "token_id": claims.jti, "reason": reason}),
                    format!("token {} of agent `{}` is revoked", claims.jti, claims.sub),
                )
            }
            _ => bail!("name exactly one of --agent, --token-id or --token"),
        };
        let subject = details
            .get("agent")
            .and_then(|a| a.as_str())
            .map_or_else(|| "token".to_string(), |a| format!("agent:{a}"));
        let entry = self.auditor.record(
            AuditEvent::new(
                EventKind::AgentTokenRevoked,
                "operator",
                subject,
                Verdict::Deny,
            )
            .details(details),
        )?;
        Ok(Reply::AgentChanged { entry, summary })
    }

    pub(super) fn agent_resume(&self, agent: &str, reason: &str) -> anyhow::Result<Reply> {
        self.agent_known(agent)?;
        let lifted = match &self.live {
            Some(live) => live.pipeline().guard().resume(agent)?,
            None => self.access()?.resume(agent)?,
        };
        let Some(suspension) = lifted else {
            bail!("agent `{agent}` is not suspended (see `vigil agent status`)");
        };
        let entry = self.auditor.record(
            AuditEvent::new(
                EventKind::AgentResumed,
                "operator",
                format!("agent:{agent}"),
                Verdict::Allow,
            )
            .details(json!({
                "agent": agent,
                "reason": reason,
                "suspended_since": suspension.since,
                "rule": suspension.rule,
            })),
        )?;
        Ok(Reply::AgentChanged {
            entry,
            summary: format!(
                "agent `{agent}` may call tools again (suspended since {} for {})",
                suspension.since, suspension.rule
            ),
        })
    }

    pub(super) fn agent_status(&self) -> anyhow::Result<Reply> {
        let suspended: serde_json::Map<String, serde_json::Value> = self
            .access()?
            .suspended()
            .into_iter()
            .map(|(agent, s)| Ok((agent, serde_json::to_value(s)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Reply::AgentStatus {
            suspended: serde_json::Value::Object(suspended),
        })
    }
}
