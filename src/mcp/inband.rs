//! Approvals asked in-band, for clients on MCP 2026-07-28, which forbids
//! server-initiated requests: the first `tools/call` of a `high` tool (in
//! `client` approval mode) is answered with `input_required`, carrying an
//! elicitation form and an opaque `requestState`; the client asks its user
//! and calls again with the answer and the state. The state is only a
//! handle: what it stands for (agent, tool, SHA-256 of the arguments) stays
//! here, is used once, and expires with the approval timeout, so a forged,
//! replayed, stale or transplanted state (another agent, tool or argument
//! set) decides nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore as _};

/// Pending in-band approvals kept at most (oldest dropped first).
pub const MAX_PENDING: usize = 10_000;

#[derive(Debug, Clone)]
struct Pending {
    agent: String,
    tool: String,
    arguments_sha256: String,
    asked: Instant,
}

/// Why a `requestState` does not resume a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaleState {
    #[error(
        "the requestState is unknown to this node (forged, already used, or from before a restart)"
    )]
    Unknown,
    #[error("the requestState expired: the approval was asked more than {0} s ago")]
    Expired(u64),
    #[error("the requestState was issued for another call (agent, tool or arguments differ)")]
    OtherCall,
}

/// See the module documentation.
#[derive(Debug)]
pub struct InBand {
    pending: Mutex<HashMap<String, Pending>>,
    ttl: Duration,
}

impl InBand {
    pub fn new(ttl: Duration) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an in-band approval of a call; the state to send.
    pub fn ask(&self, agent: &str, tool: &str, arguments_sha256: &str) -> String {
        let mut bytes = [0u8; 16];
        OsRng.fill_bytes(&mut bytes);
        let state = format!("vigil-approval-{}", hex::encode(bytes));
        let mut pending = self.lock();
        let ttl = self.ttl;
        pending.retain(|_, p| p.asked.elapsed() < ttl);
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.asked)
                .map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
        }
        pending.insert(
            state.clone(),
            Pending {
                agent: agent.to_string(),
                tool: tool.to_string(),
                arguments_sha256: arguments_sha256.to_string(),
                asked: Instant::now(),
            },
        );
        state
    }

    /// Takes the approval `state` stands for (once): Ok when it was asked
    /// for this very call and has not expired.
    pub fn take(
        &self,
        state: &str,
        agent: &str,
        tool: &str,
        arguments_sha256: &str,
    ) -> Result<(), StaleState> {
        let pending = self.lock().remove(state).ok_or(StaleState::Unknown)?;
        if pending.asked.elapsed() >= self.ttl {
            return Err(StaleState::Expired(self.ttl.as_secs()));
        }
        if pending.agent != agent
            || pending.tool != tool
            || pending.arguments_sha256 != arguments_sha256
        {
            return Err(StaleState::OtherCall);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_resumes_its_own_call_once() {
        let inband = InBand::new(Duration::from_secs(60));
        let state = inband.ask("alice", "notes", "abc");
        assert_eq!(inband.take(&state, "alice", "notes", "abc"), Ok(()));
        assert_eq!(
            inband.take(&state, "alice", "notes", "abc"),
            Err(StaleState::Unknown)
        );
        let state = inband.ask("alice", "notes", "abc");
        assert_eq!(
            inband.take(&state, "mallory", "notes", "abc"),
            Err(StaleState::OtherCall)
        );
        let state = inband.ask("alice", "notes", "abc");
        assert_eq!(
            inband.take(&state, "alice", "notes", "other-args"),
            Err(StaleState::OtherCall)
        );
        assert_eq!(
            inband.take("vigil-approval-00", "alice", "notes", "abc"),
            Err(StaleState::Unknown)
        );
        let expired = InBand::new(Duration::ZERO);
        let state = expired.ask("alice", "notes", "abc");
        assert!(expired.take(&state, "alice", "notes", "abc").is_err());
    }
}
