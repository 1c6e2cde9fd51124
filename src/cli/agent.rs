//! `vigil agent token`, `vigil agent revoke`, `vigil agent resume` and
//! `vigil agent status`: short-lived tokens this node mints for its agents,
//! and the suspensions of the behavioural watch. On a running node they go
//! through its control socket and take effect at once.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::control::protocol::{Reply, Request};

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Mint a signed, expiring bearer token for an agent of [[agents]],
    /// scoped to some of its tools (recorded as `agent.token-issued`; the
    /// token itself is printed once and never stored)
    Token(TokenArgs),
    /// Revoke tokens before they expire: one (--token-id or --token) or all
    /// of an agent's tokens issued until now (--agent); takes effect at the
    /// next request
    Revoke(RevokeArgs),
    /// Lift the suspension the behavioural watch put on an agent (recorded
    /// as `agent.resumed`)
    Resume(ResumeArgs),
    /// List suspended agents with the rule and evidence
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The agent ([[agents]] name)
    #[arg(long)]
    pub agent: String,
    /// Lifetime: seconds, or a number with s, m, h or d (e.g. 15m)
    #[arg(long, default_value = "15m", value_parser = parse_ttl)]
    pub ttl: u64,
    /// Tools the token covers (comma-separated; default: the agent's whole
    /// allow-list)
    #[arg(long, value_delimiter = ',')]
    pub tools: Vec<String>,
    /// Print JSON: token, token_id, agent, scope, expires_at, entry
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Revoke every token of this agent issued until now
    #[arg(long, conflicts_with_all = ["token_id", "token"])]
    pub agent: Option<String>,
    /// Revoke the token with this id (`jti`)
    #[arg(long, conflicts_with = "token")]
    pub token_id: Option<String>,
    /// Revoke this node token (its id is read from it)
    #[arg(long)]
    pub token: Option<String>,
    /// Why (recorded)
    #[arg(long, default_value = "revoked by the operator")]
    pub reason: String,
    /// Print JSON: entry, summary
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The suspended agent
    pub agent: String,
    /// Why (recorded)
    #[arg(long, default_value = "resumed by the operator")]
    pub reason: String,
    /// Print JSON: entry, summary
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON: agent -> {since, rule, evidence}
    #[arg(long)]
    pub json: bool,
}

/// `900`, `90s`, `15m`, `2h`, `1d` -> seconds.
fn parse_ttl(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 900, 90s, 15m, 2h, 1d)"))?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    };
    n.checked_mul(factor)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("`{text}` is not a positive duration"))
}

pub fn run(home: &crate::node::home::Home, cmd: AgentCommand) -> anyhow::Result<ExitCode> {
    let (request, json) = match cmd {
        AgentCommand::Token(a) => (
            Request::AgentToken {
                agent: a.agent,
                ttl_seconds: a.ttl,
                tools: a.tools,
            },
            a.json,
        ),
        AgentCommand::Revoke(a) => (
            Request::AgentRevoke {
                agent: a.agent,
                token_id: a.token_id,
                token: a.token,
                reason: a.reason,
            },
            a.json,
        ),
        AgentCommand::Resume(a) => (
            Request::AgentResume {
                agent: a.agent,
                reason: a.reason,
            },
            a.json,
        ),
        AgentCommand::Status(a) => (Request::AgentStatus, a.json),
    };
    let reply = super::admin::execute(home, request, &mut |_| {})?;
    match reply {
        Reply::AgentToken {
            token,
            token_id,
            agent,
            scope,
            expires_at,
            entry,
        } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"token": token, "token_id": token_id, "agent": agent,
                        "scope": scope, "expires_at": expires_at, "entry": entry})
                );
            } else {
                eprintln!("token {token_id} for agent `{agent}` ({scope}), expires at {expires_at} (Unix time); recorded as entry {entry}");
                println!("{token}");
            }
        }
        Reply::AgentChanged { entry, summary } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"entry": entry, "summary": summary})
                );
            } else {
                println!("{summary} (entry {entry})");
            }
        }
        Reply::AgentStatus { suspended } => {
            if json {
                println!("{suspended}");
            } else if suspended.as_object().is_none_or(|m| m.is_empty()) {
                println!("no agent is suspended");
            } else if let Some(map) = suspended.as_object() {
                for (agent, s) in map {
                    println!(
                        "{agent}: suspended since {} by rule {} (lift with `vigil agent resume {agent}`)",
                        s["since"], s["rule"]
                    );
                }
            }
        }
        other => bail!("the node answered with {other:?}"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttls_parse_with_units() {
        assert_eq!(parse_ttl("900"), Ok(900));
        assert_eq!(parse_ttl("15m"), Ok(900));
        assert_eq!(parse_ttl("2h"), Ok(7200));
        assert_eq!(parse_ttl("1d"), Ok(86_400));
        assert!(parse_ttl("0").is_err() && parse_ttl("5y").is_err() && parse_ttl("m").is_err());
    }
}
