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

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// Who decided: `operator:USER`, `agent-user:NAME` (elicitation) or
    /// `node:timeout`.
    pub by: String,
    pub reason: String,
}

/// The queue directory.
#[derive(Debug, Clone)]
pub struct ApprovalQueue {
    dir: PathBuf,
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
    /// The queue in `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
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

    /// Holds a call: writes its request and returns it (with its id).
    pub fn submit(
        &self,
        agent: &str,
        tool: &str,
        arguments: &serde_json::Value,
        timeout: Duration,
    ) -> Result<ApprovalRequest, QueueError> {
        let now = now_secs();
        let request = ApprovalRequest {
            id: new_id(),
            agent: agent.to_string(),
            tool: tool.to_string(),
            arguments: arguments.clone(),
            requested_at: now,
            expires_at: now + timeout.as_secs(),
        };
        let bytes = serde_json::to_vec_pretty(&request).map_err(|e| QueueError::Corrupt {
            path: self.dir.clone(),
            message: e.to_string(),
        })?;
        self.write_atomic(&self.request_path(&request.id), &bytes, false)?;
        Ok(request)
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

    /// Waits (blocking, polling) for the answer to `request`; at its expiry
    /// records a timeout decision instead. Removes both files afterwards.
    /// Returns the decision that won.
    pub fn wait(
        &self,
        request: &ApprovalRequest,
        timeout: Duration,
        poll: Duration,
    ) -> Result<Decision, QueueError> {
        let started = Instant::now();
        let decision_path = self.decision_path(&request.id);
        let decision = loop {
            if let Some(d) = Self::read::<Decision>(&decision_path)? {
                break d;
            }
            if started.elapsed() >= timeout {
                let timed_out = Decision {
                    answer: Answer::Deny,
                    by: "node:timeout".into(),
                    reason: format!("no answer within {} s", timeout.as_secs()),
                };
                let bytes = serde_json::to_vec(&timed_out).map_err(|e| QueueError::Corrupt {
                    path: self.dir.clone(),
                    message: e.to_string(),
                })?;
                if self.write_atomic(&decision_path, &bytes, true)? {
                    break timed_out;
                }
                continue; // an operator answered at the last moment
            }
            std::thread::sleep(poll);
        };
        let _ = fs::remove_file(self.request_path(&request.id));
        let _ = fs::remove_file(&decision_path);
        Ok(decision)
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

    #[test]
    fn operator_answer_reaches_the_held_call_once() {
        let (_d, q) = queue();
        let r = q
            .submit(
                "a",
                "wire",
                &serde_json::json!({"x": 1}),
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(q.pending().unwrap(), vec![r.clone()]);
        let yes = Decision {
            answer: Answer::Approve,
            by: "operator:alice".into(),
            reason: String::new(),
        };
        let q2 = q.clone();
        let id = r.id.clone();
        let operator = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            q2.decide(&id, &yes).unwrap();
        });
        let d = q
            .wait(&r, Duration::from_secs(10), Duration::from_millis(5))
            .unwrap();
        operator.join().unwrap();
        assert_eq!(
            (d.answer, d.by.as_str()),
            (Answer::Approve, "operator:alice")
        );
        assert!(q.pending().unwrap().is_empty());
        assert!(matches!(
            q.decide(&r.id, &d),
            Err(QueueError::NotPending(_))
        ));
    }

    #[test]
    fn second_answer_is_refused_and_timeout_denies() {
        let (_d, q) = queue();
        let r = q
            .submit("a", "wire", &serde_json::json!({}), Duration::from_secs(60))
            .unwrap();
        let no = Decision {
            answer: Answer::Deny,
            by: "operator:bob".into(),
            reason: "not today".into(),
        };
        q.decide(&r.id, &no).unwrap();
        assert!(matches!(
            q.decide(&r.id, &no),
            Err(QueueError::AlreadyDecided(_))
        ));
        assert_eq!(
            q.wait(&r, Duration::ZERO, Duration::from_millis(1))
                .unwrap(),
            no
        );

        let r = q
            .submit("a", "wire", &serde_json::json!({}), Duration::from_secs(0))
            .unwrap();
        let d = q
            .wait(&r, Duration::from_millis(20), Duration::from_millis(5))
            .unwrap();
        assert_eq!((d.answer, d.by.as_str()), (Answer::Deny, "node:timeout"));
        assert!(matches!(
            q.decide("../etc", &no),
            Err(QueueError::NotPending(_))
        ));
    }
}
