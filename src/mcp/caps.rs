//! Caps on what agents hold open at once (HTTP connections, MCP sessions):
//! a limit in total and one per agent, counted by [`Caps`], each unit held
//! by a [`Held`] that gives it back when dropped. Sans-I/O: the HTTP layer
//! ([`super::connections`], [`super::sessions`]) decides what a unit is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A limit that was reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error("the node already holds {limit} {what} (its limit, [mcp] {key})")]
    Total {
        what: &'static str,
        key: &'static str,
        limit: usize,
    },
    #[error("agent `{agent}` already holds {limit} {what} (the per-agent limit, [mcp] {key})")]
    Agent {
        agent: String,
        what: &'static str,
        key: &'static str,
        limit: usize,
    },
}

/// Counts units held, in total and per agent, against two limits.
#[derive(Debug)]
pub struct Caps {
    /// What a unit is, for messages (`connections`, `MCP sessions`).
    what: &'static str,
    total: (usize, &'static str),
    per_agent: (usize, &'static str),
    held: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    agents: HashMap<String, usize>,
}

impl Caps {
    /// Limits of `total` units and `per_agent` units per agent, with the
    /// config keys that set them (for the refusal text).
    pub fn new(
        what: &'static str,
        total: (usize, &'static str),
        per_agent: (usize, &'static str),
    ) -> Self {
        Self {
            what,
            total,
            per_agent,
            held: Mutex::new(Counts::default()),
        }
    }

    /// Takes one unit for `agent`, or says which limit is reached.
    pub fn take(self: &Arc<Self>, agent: &str) -> Result<Held, Full> {
        let mut counts = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.total.0 {
            return Err(Full::Total {
                what: self.what,
                key: self.total.1,
                limit: self.total.0,
            });
        }
        let mine = counts.agents.get(agent).copied().unwrap_or(0);
        if mine >= self.per_agent.0 {
            return Err(Full::Agent {
                agent: agent.to_string(),
                what: self.what,
                key: self.per_agent.1,
                limit: self.per_agent.0,
            });
        }
        counts.total += 1;
        counts.agents.insert(agent.to_string(), mine + 1);
        Ok(Held {
            caps: Arc::clone(self),
            agent: agent.to_string(),
        })
    }

    /// Units held now, in total.
    pub fn total(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    fn give_back(&self, agent: &str) {
        let mut counts = self.held.lock().unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.agents.get_mut(agent) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.agents.remove(agent);
            }
        }
    }
}

/// One unit held by an agent; given back on drop.
#[derive(Debug)]
pub struct Held {
    caps: Arc<Caps>,
    agent: String,
}

impl Held {
    /// The agent holding it.
    pub fn agent(&self) -> &str {
        &self.agent
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.caps.give_back(&self.agent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_agent_and_total_limits_hold_and_dropping_gives_back() {
        let caps = Arc::new(Caps::new(
            "sessions",
            (3, "max_sessions"),
            (2, "max_sessions_per_agent"),
        ));
        let a1 = caps.take("a").expect("first");
        let _a2 = caps.take("a").expect("second");
        let err = caps.take("a").expect_err("per-agent limit");
        assert!(matches!(err, Full::Agent { limit: 2, .. }), "{err}");
        assert!(err.to_string().contains("max_sessions_per_agent"), "{err}");
        let _b1 = caps.take("b").expect("another agent");
        let err = caps.take("c").expect_err("total limit");
        assert!(matches!(err, Full::Total { limit: 3, .. }), "{err}");
        drop(a1);
        assert_eq!(caps.total(), 2);
        let _c1 = caps.take("c").expect("room again");
        assert!(caps.take("a").is_err(), "total is full again");
    }
}
