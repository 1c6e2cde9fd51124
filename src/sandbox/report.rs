//! The capability report of one call: what the tool actually used from its
//! grant and what it tried and was denied, so the ledger records actual use
//! and not only the grant. `UseLog` is the recorder the sandbox glue writes
//! into during a call; `CapabilityReport` is what it hands back.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::policy::LookupLog;

/// At most this many distinct denials are kept per call; more are counted.
pub const MAX_DENIALS: usize = 256;

/// What kind of resource a denial was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// A filesystem path.
    Path,
    /// A host name lookup.
    Lookup,
    /// A socket connection to an address.
    Connect,
    /// A wasi:http outgoing request.
    Http,
    /// An environment variable.
    Env,
}

/// One refused attempt.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Denial {
    pub resource: Resource,
    /// The path, host name, address or authority the tool asked for.
    pub target: String,
    /// Why it was refused, in words an operator can act on.
    pub reason: String,
}

/// What a call used and what it was denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityReport {
    /// Guest paths opened for reading.
    pub paths_read: BTreeSet<String>,
    /// Guest paths opened, created or changed for writing.
    pub paths_written: BTreeSet<String>,
    /// Host names looked up, addresses connected to, HTTP authorities called.
    pub hosts: BTreeSet<String>,
    /// Environment variable names handed to the tool (only granted ones).
    pub env: BTreeSet<String>,
    /// Refused attempts, distinct, in the order first seen.
    pub denied: Vec<Denial>,
    /// Denials beyond [`MAX_DENIALS`] that were counted but not kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub denied_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl CapabilityReport {
    /// True when some attempt on `resource` whose target contains `needle`
    /// was denied.
    pub fn was_denied(&self, resource: Resource, needle: &str) -> bool {
        self.denied
            .iter()
            .any(|d| d.resource == resource && d.target.contains(needle))
    }

    fn deny(&mut self, resource: Resource, target: String, reason: String) {
        if self
            .denied
            .iter()
            .any(|d| d.resource == resource && d.target == target)
        {
            return;
        }
        if self.denied.len() >= MAX_DENIALS {
            self.denied_dropped += 1;
            return;
        }
        self.denied.push(Denial {
            resource,
            target,
            reason,
        });
    }
}

#[derive(Debug, Default)]
struct Recorded {
    report: CapabilityReport,
    lookups: LookupLog,
}

/// The shared recorder of one call. Cloning shares it: the socket check
/// hook runs outside the store and records into the same log.
#[derive(Debug, Clone, Default)]
pub struct UseLog {
    inner: Arc<Mutex<Recorded>>,
}

impl UseLog {
    fn with<R>(&self, f: impl FnOnce(&mut Recorded) -> R) -> R {
        // A panic while holding the lock cannot leave the report half-written
        // in a way that matters: keep recording.
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    pub fn read_path(&self, path: &str) {
        self.with(|r| r.report.paths_read.insert(path.to_string()));
    }

    pub fn wrote_path(&self, path: &str) {
        self.with(|r| r.report.paths_written.insert(path.to_string()));
    }

    pub fn used_host(&self, host: &str) {
        self.with(|r| r.report.hosts.insert(host.to_string()));
    }

    pub fn exposed_env<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        self.with(|r| r.report.env.extend(names.into_iter().map(str::to_string)));
    }

    pub fn denied(&self, resource: Resource, target: &str, reason: &str) {
        self.with(|r| {
            r.report
                .deny(resource, target.to_string(), reason.to_string())
        });
    }

    /// Records an address a lookup of the granted `name` returned.
    pub fn looked_up(&self, name: &str, ip: std::net::IpAddr) {
        self.with(|r| r.lookups.record(name, ip));
    }

    /// Runs `f` on the addresses looked up so far.
    pub fn with_lookups<R>(&self, f: impl FnOnce(&LookupLog) -> R) -> R {
        self.with(|r| f(&r.lookups))
    }

    /// The report as recorded so far.
    pub fn report(&self) -> CapabilityReport {
        self.with(|r| r.report.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_are_distinct_and_capped() {
        let log = UseLog::default();
        log.denied(Resource::Path, "/etc/passwd", "outside");
        log.denied(Resource::Path, "/etc/passwd", "outside");
        log.denied(Resource::Lookup, "/etc/passwd", "not granted");
        for i in 0..(MAX_DENIALS + 10) {
            log.denied(Resource::Connect, &format!("10.0.0.{i}:1"), "no");
        }
        let report = log.report();
        assert_eq!(report.denied.len(), MAX_DENIALS);
        assert_eq!(report.denied_dropped, 12);
        assert!(report.was_denied(Resource::Path, "passwd"));
        assert!(report.was_denied(Resource::Lookup, "passwd"));
        assert!(!report.was_denied(Resource::Env, "passwd"));
    }

    #[test]
    fn uses_are_recorded_and_serialized() {
        let log = UseLog::default();
        log.read_path("/data/a");
        log.wrote_path("/notes/b");
        log.used_host("localhost:80");
        log.exposed_env(["LANG"]);
        let json = serde_json::to_value(log.report()).unwrap();
        assert_eq!(json["paths_read"][0], "/data/a");
        assert_eq!(json["paths_written"][0], "/notes/b");
        assert_eq!(json["hosts"][0], "localhost:80");
        assert_eq!(json["env"][0], "LANG");
        assert!(json.get("denied_dropped").is_none());
    }

    #[test]
    fn clones_share_one_log() {
        let log = UseLog::default();
        let hook = log.clone();
        hook.looked_up("localhost", "127.0.0.1".parse().unwrap());
        assert!(log.with_lookups(|l| l.returned("localhost", "127.0.0.1".parse().unwrap())));
    }
}
