//! The approval queue: calls of `high`-sensitivity tools wait here for a
//! human when the agent's client cannot ask one through MCP elicitation.
//! The queue is a directory (`approvals/` in the node home) so that
//! `vigil approve` / `vigil deny` in another process answer a call held by
//! `vigil serve` or `vigil mcp`:
//!
//! - `ID.request.json`: the held call (agent, tool, arguments digest, when),
//!   written by the node;
//! - `ID.decision.json`: the answer, created exactly once (`create_new`) by
//!   the operator, or by the node when the hold times out.
//!
//! Both files are written to a temporary name and renamed, so a reader never
//! sees half a file. The node removes both when the held call resumes.
//!
//! A held call costs no thread: it awaits a channel that the node's own
//! [`ApprovalQueue::decide`] (reached through the control socket) fires,
//! or its timeout. How many calls may wait is capped per agent and in
//! total ([`ApprovalsConfig`]); a call past a cap is refused at once.
//! Whether the agent's client may answer (MCP elicitation) or only a
//! signed operator decision counts is the call's [`ApprovalMode`].

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Errors of the queue directory.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no pending approval `{0}` (see `vigil approvals`)")]
    NotPending(String),
    #[error("approval `{0}` was already answered")]
    AlreadyDecided(String),
    #[error("{path}: not a valid approval file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{held} calls of agent `{agent}` already wait for approval (the most allowed, [approvals] max_pending_per_agent)")]
    AgentFull { agent: String, held: usize },
    #[error("{held} calls already wait for approval on this node (the most allowed, [approvals] max_pending)")]
    NodeFull { held: usize },
}

/// Who may answer a held call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// Only a decision signed by a trusted operator key counts.
    #[default]
    Operator,
    /// The agent's client may ask its user (MCP elicitation); otherwise
    /// the call waits for an operator, whose decision may be unsigned.
    Client,
}

/// `[approvals]` in vigil.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// The mode of `high` tools not named below.
    pub mode: ApprovalMode,
    /// Mode by tool name.
    pub tools: BTreeMap<String, ApprovalMode>,
    /// Mode by agent name.
    pub agents: BTreeMap<String, ApprovalMode>,
    /// Calls one agent may have waiting for approval at once.
    pub max_pending_per_agent: usize,
    /// Calls that may wait for approval at once on the node.
    pub max_pending: usize,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            mode: ApprovalMode::Operator,
            tools: BTreeMap::new(),
            agents: BTreeMap::new(),
            max_pending_per_agent: 16,
            max_pending: 256,
        }
    }
}

impl ApprovalsConfig {
    /// The mode of a call of `tool` by `agent`: `operator` if the tool's or
    /// the agent's setting says so (the stricter wins), else `client` if
    /// either says so, else `mode`.
    pub fn mode_for(&self, agent: &str, tool: &str) -> ApprovalMode {
        let named = [self.tools.get(tool), self.agents.get(agent)];
        if named.contains(&Some(&ApprovalMode::Operator)) {
            ApprovalMode::Operator
        } else if named.contains(&Some(&ApprovalMode::Client)) {
            ApprovalMode::Client
        } else {
            self.mode
        }
    }
}

/// A held call, as the operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub id: String,
    pub agent: String,
    pub tool: String,
    /// The call's arguments (as validated against the input schema).
    pub arguments: serde_json::Value,
    /// Unix seconds when the call was held.
    pub requested_at: u64,
    /// Unix seconds when the hold times out.
    pub expires_at: u64,
    /// Who may answer (held calls written before modes were `operator`).
    #[serde(default)]
    pub mode: ApprovalMode,
}

/// Approve or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    Approve,
    Deny,
}

/// The answer to a held call and who gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub answer: Answer,
    /// Who decided: `operator:NAME` (a signed decision by a trusted
    /// operator key), `operator:unsigned` (an unsigned one, for calls in
    /// `client` mode), `agent-user:NAME` (elicitation), `node:timeout` or
    /// `node:restart`.
    pub by: String,
    pub reason: String,
    /// The `approval.decided` entry recording the operator's decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<u64>,
}

/// The queue directory, and the calls of this process waiting on it.
#[derive(Debug, Clone)]
pub struct ApprovalQueue {
    dir: PathBuf,
    waiting: Arc<Mutex<Waiting>>,
    per_agent: usize,
    total: usize,
}

/// The held calls of this process.
#[derive(Debug, Default)]
struct Waiting {
    answers: HashMap<String, tokio::sync::oneshot::Sender<Decision>>,
    per_agent: HashMap<String, usize>,
    total: usize,
}

/// One held call of this process. Dropping it (the call ended, or its
/// caller went away) forgets the hold.
#[derive(Debug)]
pub struct Held {
    pub request: ApprovalRequest,
    answer: tokio::sync::oneshot::Receiver<Decision>,
    queue: ApprovalQueue,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut waiting = lock(&self.queue.waiting);
        waiting.answers.remove(&self.request.id);
        waiting.total = waiting.total.saturating_sub(1);
        if let Some(n) = waiting.per_agent.get_mut(&self.request.agent) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                waiting.per_agent.remove(&self.request.agent);
            }
        }
        drop(waiting);
        self.queue.forget(&self.request.id);
    }
}

fn lock(m: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QueueError + '_ {
    move |source| QueueError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh id: 12 hex digits from time, process and a counter.
fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            .to_le_bytes(),
    );
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hex::encode(&h.finalize()[..6])
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl ApprovalQueue {
    /// The queue in `dir` (created on first use), with the default caps.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let defaults = ApprovalsConfig::default();
        Self {
            dir: dir.into(),
            waiting: Arc::default(),
            per_agent: defaults.max_pending_per_agent,
            total: defaults.max_pending,
        }
    }

    /// The same queue with the caps of `config`.
    pub fn with_limits(mut self, config: &ApprovalsConfig) -> Self {
        self.per_agent = config.max_pending_per_agent;
        self.total = config.max_pending;
        self
    }

    /// How many calls of this process wait for approval.
    pub fn waiting(&self) -> usize {
        lock(&self.waiting).total
    }

    fn request_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.request.json"))
    }
    fn decision_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.decision.json"))
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8], exclusive: bool) -> Result<bool, QueueError> {
        crate::node::home::create_private_dir(&self.dir).map_err(|e| QueueError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let tmp = self.dir.join(format!(".{}.tmp", new_id()));
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        if exclusive {
            // hard_link fails if `path` exists: exactly one decision wins.
            let linked = fs::hard_link(&tmp, path);
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(QueueError::Io {
                    path: path.to_path_buf(),
                    source: e,
                }),
            }
        } else {
            fs::rename(&tmp, path).map_err(io(path))?;
            Ok(true)
        }
    }

    fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, QueueError> {
        match fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| QueueError::Corrupt {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(QueueError::Io {
                path: path.to_path_buf(),
                source: e,
            }),
        }
    }

    /// Holds a call: writes its request (blocking file I/O) and returns
    /// the hold, unless the agent or the node has as many calls waiting as
    /// allowed.
    pub fn submit(
        &self,
        agent: &str,
        tool: &str,
        arguments: &serde_json::Value,
        timeout: Duration,
        mode: ApprovalMode,
    ) -> Result<Held, QueueError> {
        let now = now_secs();
        let request = ApprovalRequest {
            id: new_id(),
            agent: agent.to_string(),
            tool: tool.to_string(),
            arguments: arguments.clone(),
            requested_at: now,
            expires_at: now + timeout.as_secs(),
            mode,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut waiting = lock(&self.waiting);
            let held = waiting.per_agent.get(agent).copied().unwrap_or(0);
            if held >= self.per_agent {
                return Err(QueueError::AgentFull {
                    agent: agent.to_string(),
                    held,
                });
            }
            if waiting.total >= self.total {
                return Err(QueueError::NodeFull {
                    held: waiting.total,
                });
            }
            *waiting.per_agent.entry(agent.to_string()).or_default() += 1;
            waiting.total += 1;
            waiting.answers.insert(request.id.clone(), tx);
        }
        // From here the hold undoes itself when dropped, also on error.
        let held = Held {
            request,
            answer: rx,
            queue: self.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&held.request).map_err(|e| QueueError::Corrupt {
            path: self.dir.clone(),
            message: e.to_string(),
        })?;
        self.write_atomic(&self.request_path(&held.request.id), &bytes, false)?;
        Ok(held)
    }

    /// The pending held call `id`.
    pub fn request(&self, id: &str) -> Result<ApprovalRequest, QueueError> {
        if !valid_id(id) {
            return Err(QueueError::NotPending(id.to_string()));
        }
        if self.decision_path(id).exists() {
            return Err(QueueError::AlreadyDecided(id.to_string()));
        }
        Self::read::<ApprovalRequest>(&self.request_path(id))?
            .ok_or_else(|| QueueError::NotPending(id.to_string()))
    }

    /// The held calls not answered yet, oldest first.
    pub fn pending(&self) -> Result<Vec<ApprovalRequest>, QueueError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(QueueError::Io {
                    path: self.dir.clone(),
                    source: e,
                })
            }
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(id) = name.strip_suffix(".request.json") else {
                continue;
            };
            if self.decision_path(id).exists() {
                continue;
            }
            if let Some(r) = Self::read::<ApprovalRequest>(&entry.path())? {
                out.push(r);
            }
        }
        out.sort_by(|a, b| (a.requested_at, &a.id).cmp(&(b.requested_at, &b.id)));
        Ok(out)
    }

    /// Answers held call `id` (operator side). Fails if it is not pending.
    pub fn decide(&self, id: &str, decision: &Decision) -> Result<ApprovalRequest, QueueError> {
        if !valid_id(id) {
            return Err(QueueError::NotPending(id.to_string()));
        }
        let request = Self::read::<ApprovalRequest>(&self.request_path(id))?
            .ok_or_else(|| QueueError::NotPending(id.to_string()))?;
        let bytes = serde_json::to_vec_pretty(decision).map_err(|e| QueueError::Corrupt {
            path: self.dir.clone(),
            message: e.to_string(),
        })?;
        if self.write_atomic(&self.decision_path(id), &bytes, true)? {
            if let Some(waiter) = lock(&self.waiting).answers.remove(id) {
                let _ = waiter.send(decision.clone());
            }
            Ok(request)
        } else {
            Err(QueueError::AlreadyDecided(id.to_string()))
        }
    }

    /// Removes held call `id` and any answer to it (nothing waits for it).
    pub fn forget(&self, id: &str) {
        if valid_id(id) {
            let _ = fs::remove_file(self.request_path(id));
            let _ = fs::remove_file(self.decision_path(id));
        }
    }

    /// Waits (without a thread) for the answer to `held`; at its expiry
    /// records a timeout decision instead. Returns the decision that won;
    /// dropping `held` afterwards removes the files.
    pub async fn wait(&self, held: &mut Held, timeout: Duration) -> Result<Decision, QueueError> {
        if let Ok(Ok(decision)) = tokio::time::timeout(timeout, &mut held.answer).await {
            return Ok(decision);
        }
        let timed_out = Decision {
            answer: Answer::Deny,
            by: "node:timeout".into(),
            reason: format!("no answer within {} s", timeout.as_secs()),
            entry: None,
        };
        let queue = self.clone();
        let id = held.request.id.clone();
        let decision = timed_out.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec(&decision).map_err(|e| QueueError::Corrupt {
                path: queue.dir.clone(),
                message: e.to_string(),
            })?;
            let path = queue.decision_path(&id);
            if queue.write_atomic(&path, &bytes, true)? {
                return Ok(decision);
            }
            // An operator answered at the last moment: that answer wins.
            Self::read::<Decision>(&path)?.ok_or_else(|| QueueError::NotPending(id.clone()))
        })
        .await
        .map_err(|e| QueueError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> (tempfile::TempDir, ApprovalQueue) {
        let dir = tempfile::tempdir().unwrap();
        let q = ApprovalQueue::new(dir.path().join("approvals"));
        (dir, q)
    }

    fn decision(answer: Answer, by: &str) -> Decision {
        Decision {
            answer,
            by: by.into(),
            reason: String::new(),
            entry: None,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn operator_answer_reaches_the_held_call_once() {
        let (_d, q) = queue();
        let json = serde_json::json!({"x": 1});
        let minute = Duration::from_secs(60);
        let mut held = q
            .submit("a", "wire", &json, minute, ApprovalMode::Operator)
            .unwrap();
        assert_eq!(q.pending().unwrap(), vec![held.request.clone()]);
        let yes = decision(Answer::Approve, "operator:alice");
        q.decide(&held.request.id, &yes).unwrap();
        assert!(matches!(
            q.decide(&held.request.id, &yes),
            Err(QueueError::AlreadyDecided(_))
        ));
        let d = runtime().block_on(q.wait(&mut held, minute)).unwrap();
        assert_eq!(d, yes);
        let id = held.request.id.clone();
        drop(held);
        assert!(q.pending().unwrap().is_empty());
        assert_eq!(q.waiting(), 0);
        assert!(matches!(
            q.decide(&id, &yes),
            Err(QueueError::NotPending(_))
        ));
        assert!(matches!(
            q.decide("../etc", &yes),
            Err(QueueError::NotPending(_))
        ));
    }

    #[test]
    fn an_unanswered_hold_times_out_as_denied() {
        let (_d, q) = queue();
        let mut held = q
            .submit(
                "a",
                "wire",
                &serde_json::json!({}),
                Duration::ZERO,
                ApprovalMode::Client,
            )
            .unwrap();
        let d = runtime()
            .block_on(q.wait(&mut held, Duration::from_millis(20)))
            .unwrap();
        assert_eq!((d.answer, d.by.as_str()), (Answer::Deny, "node:timeout"));
    }

    #[test]
    fn holds_are_capped_per_agent_and_in_total() {
        let (_d, q) = queue();
        let q = q.with_limits(&ApprovalsConfig {
            max_pending_per_agent: 2,
            max_pending: 3,
            ..ApprovalsConfig::default()
        });
        let hold = |agent: &str| {
            q.submit(
                agent,
                "wire",
                &serde_json::json!({}),
                Duration::from_secs(60),
                ApprovalMode::Operator,
            )
        };
        let a1 = hold("a").unwrap();
        let _a2 = hold("a").unwrap();
        assert!(matches!(
            hold("a"),
            Err(QueueError::AgentFull { held: 2, .. })
        ));
        let _b1 = hold("b").unwrap();
        assert!(matches!(hold("c"), Err(QueueError::NodeFull { held: 3 })));
        // A hold that ends frees its place.
        drop(a1);
        hold("c").unwrap();
    }

    #[test]
    fn the_stricter_mode_wins() {
        let mut config = ApprovalsConfig::default();
        assert_eq!(config.mode_for("a", "t"), ApprovalMode::Operator);
        config.mode = ApprovalMode::Client;
        assert_eq!(config.mode_for("a", "t"), ApprovalMode::Client);
        config.tools.insert("t".into(), ApprovalMode::Operator);
        config.agents.insert("a".into(), ApprovalMode::Client);
        assert_eq!(config.mode_for("a", "t"), ApprovalMode::Operator);
        config.mode = ApprovalMode::Operator;
        config.tools.clear();
        assert_eq!(config.mode_for("a", "t"), ApprovalMode::Client);
    }
}
