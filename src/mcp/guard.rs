//! The agents' guard in the call path: feeds every call of a watched agent
//! to the behavioural watch ([`crate::policy::watch`], sans I/O) and acts on
//! a breach: in `enforce` mode the agent is suspended (saved in
//! `agents.json` first, then an `agent.suspended` entry with the evidence,
//! an alert in the log and the metrics), in `dry-run` mode an
//! `agent.anomaly` entry only. Operators lift a suspension with `vigil
//! agent resume` (an `agent.resumed` entry).

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::node::access::{AccessError, AgentAccess, Suspension};
use crate::node::audit::{AuditEvent, Auditor, EventKind, Verdict};
use crate::node::metrics::Metrics;
use crate::policy::watch::{Mode, Outcome, Verdict as WatchVerdict, Watch};

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// See the module documentation.
pub struct Guard {
    access: Arc<AgentAccess>,
    watch: Mutex<Watch>,
    auditor: Auditor,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Guard({:?})", self.access)
    }
}

/// The number of records in a tool's output: the length of the output if
/// it is an array, else of its longest top-level array field, else 1.
pub fn records(value: &Value) -> u64 {
    match value {
        Value::Array(items) => items.len() as u64,
        Value::Object(fields) => fields
            .values()
            .filter_map(Value::as_array)
            .map(|a| a.len() as u64)
            .max()
            .unwrap_or(1),
        Value::Null => 0,
        _ => 1,
    }
}

impl Guard {
    pub fn new(
        access: Arc<AgentAccess>,
        watch: Watch,
        auditor: Auditor,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            access,
            watch: Mutex::new(watch),
            auditor,
            metrics,
        }
    }

    /// Uses `access` from now on.
    pub fn set_access(&mut self, access: Arc<AgentAccess>) {
        self.access = access;
    }

    /// The access state (revocations and suspensions).
    pub fn access(&self) -> &Arc<AgentAccess> {
        &self.access
    }

    /// True when `agent` is suspended now.
    pub fn is_suspended(&self, agent: &str) -> bool {
        self.access.is_suspended(agent)
    }

    fn watch(&self) -> std::sync::MutexGuard<'_, Watch> {
        self.watch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A call of `tool` by `agent` starts.
    pub async fn call_started(&self, agent: &str, tool: &str) {
        let verdict = {
            let mut watch = self.watch();
            if !watch.watches(agent) {
                return;
            }
            watch.call_started(agent, tool, now_ms())
        };
        self.act(agent, verdict).await;
    }

    /// A call of `tool` by `agent` ended: refused, or with `output`.
    pub async fn call_finished(&self, agent: &str, tool: &str, output: Result<&Value, ()>) {
        let outcome = match output {
            Ok(value) => Outcome {
                refused: false,
                output_bytes: crate::privacy::text_bytes(value) as u64,
                records: records(value),
            },
            Err(()) => Outcome {
                refused: true,
                output_bytes: 0,
                records: 0,
            },
        };
        let verdict = {
            let mut watch = self.watch();
            if !watch.watches(agent) {
                return;
            }
            watch.call_finished(agent, tool, now_ms(), outcome)
        };
        self.act(agent, verdict).await;
    }

    /// Suspends (enforce) or reports (dry-run) on a breach.
    async fn act(&self, agent: &str, verdict: WatchVerdict) {
        let WatchVerdict::Breach(evidence) = verdict else {
            return;
        };
        let Some(first) = evidence.first() else {
            return;
        };
        let mode = self.watch().mode(agent).unwrap_or_default();
        let rule = first.rule.name().to_string();
        let evidence_json = json!(evidence);
        let details = json!({
            "agent": agent,
            "mode": mode.as_str(),
            "rule": rule,
            "evidence": evidence_json,
        });
        self.metrics.count_anomaly(agent, &rule, mode.as_str());
        match mode {
            Mode::DryRun => {
                tracing::warn!(agent, rule = %rule, "behavioural watch: anomaly (dry run, agent not suspended)");
                self.record(EventKind::AgentAnomaly, agent, Verdict::Record, details)
                    .await;
            }
            Mode::Enforce => {
                let suspension = Suspension {
                    since: now_ms() / 1000,
                    rule: rule.clone(),
                    evidence: evidence_json,
                    entry: None,
                };
                match self.access.suspend(agent, suspension) {
                    Ok(false) => {}
                    Ok(true) => {
                        self.watch().suspend(agent);
                        tracing::error!(
                            agent,
                            rule = %rule,
                            observed = first.observed,
                            limit = first.limit,
                            "ALERT behavioural watch: agent suspended; its calls and tokens are refused until `vigil agent resume {agent}`"
                        );
                        self.record(EventKind::AgentSuspended, agent, Verdict::Deny, details)
                            .await;
                    }
                    Err(e) => tracing::error!(
                        agent,
                        "behavioural watch: the suspension could not be saved: {e}"
                    ),
                }
            }
        }
    }

    async fn record(&self, kind: EventKind, agent: &str, verdict: Verdict, details: Value) {
        let event =
            AuditEvent::new(kind, "node:watch", format!("agent:{agent}"), verdict).details(details);
        let auditor = self.auditor.clone();
        match tokio::task::spawn_blocking(move || auditor.record(event)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("behavioural watch: the entry was not recorded: {e}"),
            Err(e) => tracing::error!("behavioural watch: the entry was not recorded: {e}"),
        }
    }

    /// Lifts `agent`'s suspension (`vigil agent resume`); the suspension
    /// lifted, if there was one. The caller records `agent.resumed`.
    pub fn resume(&self, agent: &str) -> Result<Option<Suspension>, AccessError> {
        let lifted = self.access.resume(agent)?;
        self.watch().resume(agent);
        Ok(lifted)
    }
}

#[cfg(test)]
mod tests {
    use super::records;
    use serde_json::json;

    #[test]
    fn records_count_the_longest_list() {
        assert_eq!(records(&json!([1, 2, 3])), 3);
        assert_eq!(records(&json!({"rows": [1, 2], "more": [1, 2, 3, 4]})), 4);
        assert_eq!(records(&json!({"text": "hi"})), 1);
        assert_eq!(records(&json!(null)), 0);
    }
}
