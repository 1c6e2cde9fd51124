//! Rate limits: a token bucket (GCRA, the `governor` crate) per agent and
//! one per tool. Quotas are calls per minute with a burst of the same size;
//! 0 means unlimited. A refused call names the bucket and when to retry.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::Refusal;

/// The buckets of a node.
#[derive(Default)]
pub struct RateLimits {
    agents: HashMap<String, DefaultDirectRateLimiter>,
    tools: HashMap<String, DefaultDirectRateLimiter>,
    /// Made once: creating a clock calibrates it (CPUID, TSC reads), which
    /// costs more than a whole rate check.
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RateLimits({} agents, {} tools)",
            self.agents.len(),
            self.tools.len()
        )
    }
}

/// One bucket per named quota (calls per minute; 0: no bucket).
fn buckets<'a>(
    quotas: impl IntoIterator<Item = (&'a str, u32)>,
) -> HashMap<String, DefaultDirectRateLimiter> {
    quotas
        .into_iter()
        .filter_map(|(name, n)| {
            let n = NonZeroU32::new(n)?;
            Some((name.to_string(), RateLimiter::direct(Quota::per_minute(n))))
        })
        .collect()
}

impl RateLimits {
    /// Buckets for `agents` and `tools` (name, calls per minute; 0 unlimited).
    pub fn new<'a>(
        agents: impl IntoIterator<Item = (&'a str, u32)>,
        tools: impl IntoIterator<Item = (&'a str, u32)>,
    ) -> Self {
        Self {
            agents: buckets(agents),
            tools: buckets(tools),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one token from the agent's and the tool's bucket, or says which
    /// bucket is empty and when it has a token again.
    pub fn check(&self, agent: &str, tool: &str) -> Result<(), Refusal> {
        let take =
            |limiter: Option<&DefaultDirectRateLimiter>, scope: &dyn Fn() -> String| match limiter
                .map(|l| l.check())
            {
                Some(Err(not_until)) => Err(Refusal::RateLimited {
                    scope: scope(),
                    retry_after: not_until
                        .wait_time_from(self.clock.now())
                        .max(Duration::from_millis(1)),
                }),
                _ => Ok(()),
            };
        take(self.agents.get(agent), &|| format!("agent `{agent}`"))?;
        take(self.tools.get(tool), &|| format!("tool `{tool}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_per_agent_and_per_tool() {
        let limits = RateLimits::new([("a", 2), ("free", 0)], [("slow", 1)]);
        assert!(limits.check("a", "echo").is_ok());
        assert!(limits.check("a", "echo").is_ok());
        let refusal = limits.check("a", "echo").unwrap_err();
        assert!(refusal.to_string().contains("agent `a`"), "{refusal}");
        for _ in 0..100 {
            assert!(limits.check("free", "echo").is_ok());
        }
        assert!(limits.check("free", "slow").is_ok());
        let refusal = limits.check("free", "slow").unwrap_err();
        assert!(
            matches!(&refusal, Refusal::RateLimited { scope, retry_after } if scope == "tool `slow`" && *retry_after > Duration::from_secs(1))
        );
    }
}
