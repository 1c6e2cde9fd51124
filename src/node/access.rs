//! Which agents may act right now: tokens revoked before they expire
//! (`vigil agent revoke`) and agents suspended by the behavioural watch
//! until an operator resumes them (`vigil agent resume`). Kept in
//! `agents.json` in the node home (written whole, atomically, before a
//! change is reported), so a restart neither forgets a revocation nor
//! lifts a suspension. Each change is also a ledger entry, recorded by the
//! caller.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Format version of `agents.json`.
pub const ACCESS_FORMAT: u32 = 1;

/// Errors reading or writing `agents.json`.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid agent access file: {message}")]
    Invalid { path: String, message: String },
}

/// Why and since when an agent is suspended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspension {
    /// Unix seconds.
    pub since: i64,
    /// The rule that was breached (or `operator`).
    pub rule: String,
    /// The evidence, as recorded in the `agent.suspended` entry.
    pub evidence: Value,
    /// Index of the `agent.suspended` entry, once recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<u64>,
}

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessState {
    version: u32,
    /// Revoked token ids, with when each would have expired (then pruned).
    #[serde(default)]
    revoked_tokens: BTreeMap<String, i64>,
    /// Tokens of an agent issued before this time (Unix seconds) are revoked.
    #[serde(default)]
    revoked_before: BTreeMap<String, i64>,
    #[serde(default)]
    suspended: BTreeMap<String, Suspension>,
}

/// The access state of one node, shared by its pipeline and its operator
/// commands.
#[derive(Debug)]
pub struct AgentAccess {
    /// None: kept in memory only (a pipeline without a node home).
    path: Option<PathBuf>,
    state: RwLock<AccessState>,
}

impl AgentAccess {
    /// Loads `path` (a missing file is an empty state).
    pub fn load(path: &Path) -> Result<Self, AccessError> {
        let shown = path.display().to_string();
        let state = match std::fs::read(path) {
            Ok(bytes) => {
                let state: AccessState =
                    serde_json::from_slice(&bytes).map_err(|e| AccessError::Invalid {
                        path: shown.clone(),
                        message: e.to_string(),
                    })?;
                if state.version != ACCESS_FORMAT {
                    return Err(AccessError::Invalid {
                        path: shown,
                        message: format!(
                            "format version {} (this vigil reads {ACCESS_FORMAT})",
                            state.version
                        ),
                    });
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AccessState {
                version: ACCESS_FORMAT,
                ..AccessState::default()
            },
            Err(source) => {
                return Err(AccessError::Io {
                    path: shown,
                    source,
                })
            }
        };
        Ok(Self {
            path: Some(path.to_path_buf()),
            state: RwLock::new(state),
        })
    }

    /// An empty state kept in memory only.
    pub fn unsaved() -> Self {
        Self {
            path: None,
            state: RwLock::new(AccessState {
                version: ACCESS_FORMAT,
                ..AccessState::default()
            }),
        }
    }

    /// Applies `change` and saves the file before returning its result; on
    /// a failed save the change is undone.
    fn change<T>(&self, change: impl FnOnce(&mut AccessState) -> T) -> Result<T, AccessError> {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut next = state.clone();
        let result = change(&mut next);
        if let Some(path) = &self.path {
            let bytes = serde_json::to_vec_pretty(&next).map_err(|e| AccessError::Invalid {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            crate::trust::file::write_atomic(path, &bytes).map_err(|source| AccessError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
        *state = next;
        Ok(result)
    }

    /// Revokes the token `jti` (which expires at `exp`); expired
    /// revocations are dropped, as their tokens are refused anyway.
    pub fn revoke_token(&self, jti: &str, exp: i64, now: i64) -> Result<(), AccessError> {
        self.change(|s| {
            s.revoked_tokens.retain(|_, e| *e > now);
            s.revoked_tokens.insert(jti.to_string(), exp);
        })
    }

    /// Revokes every token of `agent` issued at or before `now`.
    pub fn revoke_agent_tokens(&self, agent: &str, now: i64) -> Result<(), AccessError> {
        self.change(|s| {
            s.revoked_before.insert(agent.to_string(), now);
        })
    }

    /// True when a token of `agent` with id `jti`, issued at `iat`, is revoked.
    pub fn is_revoked(&self, agent: &str, jti: Option<&str>, iat: Option<i64>) -> bool {
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        jti.is_some_and(|j| s.revoked_tokens.contains_key(j))
            || s.revoked_before
                .get(agent)
                .is_some_and(|before| iat.is_none_or(|iat| iat <= *before))
    }

    /// Suspends `agent`; false when it already was (the first suspension
    /// is kept).
    pub fn suspend(&self, agent: &str, suspension: Suspension) -> Result<bool, AccessError> {
        self.change(|s| {
            if s.suspended.contains_key(agent) {
                return false;
            }
            s.suspended.insert(agent.to_string(), suspension);
            true
        })
    }

    /// Lifts the suspension of `agent`; the suspension lifted, if any.
    pub fn resume(&self, agent: &str) -> Result<Option<Suspension>, AccessError> {
        self.change(|s| s.suspended.remove(agent))
    }

    /// The suspension of `agent`, if suspended.
    pub fn suspension(&self, agent: &str) -> Option<Suspension> {
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        s.suspended.get(agent).cloned()
    }

    /// True when `agent` is suspended.
    pub fn is_suspended(&self, agent: &str) -> bool {
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        s.suspended.contains_key(agent)
    }

    /// Every suspended agent.
    pub fn suspended(&self) -> Vec<(String, Suspension)> {
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        s.suspended
            .iter()
            .map(|(a, s)| (a.clone(), s.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_and_suspensions_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agents.json");
        let access = AgentAccess::load(&path).unwrap();
        access.revoke_token("t1", 2_000, 1_000).unwrap();
        access.revoke_agent_tokens("finance", 1_500).unwrap();
        let suspension = Suspension {
            since: 1_600,
            rule: "calls-per-window".into(),
            evidence: serde_json::json!({"observed": 11, "limit": 10}),
            entry: Some(7),
        };
        assert!(access.suspend("ops", suspension.clone()).unwrap());
        assert!(!access.suspend("ops", suspension.clone()).unwrap());

        let again = AgentAccess::load(&path).unwrap();
        assert!(again.is_revoked("any", Some("t1"), Some(1_000)));
        assert!(again.is_revoked("finance", Some("t2"), Some(1_500)));
        assert!(!again.is_revoked("finance", Some("t2"), Some(1_501)));
        assert!(again.is_revoked("finance", None, None));
        assert!(!again.is_revoked("ops", Some("t2"), Some(1)));
        assert_eq!(again.suspension("ops"), Some(suspension.clone()));
        assert_eq!(again.resume("ops").unwrap(), Some(suspension));
        assert!(!AgentAccess::load(&path).unwrap().is_suspended("ops"));

        std::fs::write(&path, b"{\"version\": 9}").unwrap();
        assert!(AgentAccess::load(&path).is_err());
    }
}
