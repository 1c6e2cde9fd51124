//! The auditor: the ONE component of the node that writes security decisions
//! to the audit ledger. Every allow or deny anywhere in the node becomes
//! exactly one [`AuditEvent`] handed to [`Auditor::record`]; nothing else
//! appends to the ledger.
//!
//! # Use
//! ```no_run
//! # use vigil::node::audit::{Auditor, AuditEvent, EventKind, Verdict};
//! # fn demo(auditor: &Auditor) -> Result<(), vigil::node::audit::AuditError> {
//! let index = auditor.record(
//!     AuditEvent::new(EventKind::PackageRefused, "publisher:acme", "pkg:fetch@1.2.0", Verdict::Deny)
//!         .details(serde_json::json!({ "reason": "signature does not verify" })),
//! )?;
//! # let _ = index; Ok(()) }
//! ```
//! `record` returns the entry's index only once the entry is durable (it
//! survives a power cut); it blocks for one group commit, shared with every
//! other thread recording at the same moment. The [`Auditor`] is cheap to
//! clone; give each part of the node a clone. If `record` fails the decision
//! was not recorded: treat that as a refusal of the action.
//!
//! Payloads (tool inputs and outputs) go in [`AuditEvent::payload`]; they are
//! stored beside the ledger under a salted commitment when `[ledger] payloads
//! = "full"` and dropped when `"none"`.
//!
//! Checkpoints are signed with the node key every `checkpoint_every_entries`
//! entries (on the recording thread) and every `checkpoint_every_seconds`
//! seconds when entries were added (on a background thread), and on demand
//! with [`Auditor::checkpoint`].

use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use vigil_crypto::SigningKey;
use vigil_ledger::{Ledger, LedgerError, NewEntry, SignedCheckpoint};

use crate::node::config::{Config, PayloadMode};
use crate::node::home::Home;

/// What kind of decision or event an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A tool call ran.
    ToolCall,
    /// A tool call was refused.
    ToolDenied,
    /// The gatekeeper admitted a package.
    PackageAdmitted,
    /// The gatekeeper refused a package.
    PackageRefused,
    /// The trust store changed.
    TrustChanged,
    /// A link to a peer was opened.
    LinkOpened,
    /// A link was refused.
    LinkRefused,
    /// A tunnel was closed.
    TunnelClosed,
    /// A human approved an action.
    ApprovalGranted,
    /// A human denied an action.
    ApprovalDenied,
    /// An event reported by another system (`vigil audit append`).
    External,
}

impl EventKind {
    /// The `kind` string stored in the entry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ToolCall => "tool.call",
            Self::ToolDenied => "tool.denied",
            Self::PackageAdmitted => "package.admitted",
            Self::PackageRefused => "package.refused",
            Self::TrustChanged => "trust.changed",
            Self::LinkOpened => "link.opened",
            Self::LinkRefused => "link.refused",
            Self::TunnelClosed => "tunnel.closed",
            Self::ApprovalGranted => "approval.granted",
            Self::ApprovalDenied => "approval.denied",
            Self::External => "external",
        }
    }
}

/// The decision an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The action was allowed.
    Allow,
    /// The action was refused.
    Deny,
    /// Nothing was decided; the event is recorded (e.g. a tunnel closed).
    Record,
}

impl Verdict {
    /// The `decision` string stored in the entry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Record => "record",
        }
    }
}

/// One decision or event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    kind: EventKind,
    actor: String,
    subject: String,
    verdict: Verdict,
    details: serde_json::Value,
    payload: Option<Vec<u8>>,
}

impl AuditEvent {
    /// An event with empty details and no payload. `actor` is who acted
    /// (`agent:NAME`, `peer:KEYID`, `operator`), `subject` what it acted on
    /// (`tool:NAME`, `pkg:NAME@VERSION`, ...).
    pub fn new(
        kind: EventKind,
        actor: impl Into<String>,
        subject: impl Into<String>,
        verdict: Verdict,
    ) -> Self {
        Self {
            kind,
            actor: actor.into(),
            subject: subject.into(),
            verdict,
            details: serde_json::Value::Object(Default::default()),
            payload: None,
        }
    }

    /// Sets the details; must be a JSON object (the reason of a refusal,
    /// hashes, capabilities, ...). Keep secrets out: details are never erased.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Attaches a payload (tool input/output), stored erasably beside the ledger.
    pub fn payload(mut self, payload: Vec<u8>) -> Self {
        self.payload = Some(payload);
        self
    }
}

/// Why a decision could not be recorded or a checkpoint signed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The ledger refused or failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Signing needs the node key, which this auditor was opened without.
    #[error("signing a checkpoint needs the node key; this command was run without it")]
    NoKey,
    /// The kind is reserved for entries the ledger writes itself.
    #[error("kind `{0}` is reserved for entries vigil writes itself; choose another kind")]
    Reserved(String),
    /// The node is stopping: its last checkpoint is signed, nothing more is
    /// recorded.
    #[error("the node is stopping and records nothing more (its last checkpoint is signed)")]
    Closed,
}

/// Checkpoint policy and payload mode, from `[ledger]` in `vigil.toml`.
#[derive(Debug, Clone)]
struct Policy {
    every_entries: u64,
    every: Option<Duration>,
    payloads: PayloadMode,
}

struct Inner {
    ledger: Ledger,
    key: Option<SigningKey>,
    origin: String,
    policy: Policy,
    /// Size covered by the last checkpoint and when it was signed.
    last_checkpoint: Mutex<(u64, Instant)>,
    /// False once [`Auditor::close`] ran. Appends hold the read side for
    /// their duration, so closing waits for appends in progress.
    open: RwLock<bool>,
}

/// Records decisions in the node's ledger. See the module documentation.
#[derive(Clone)]
pub struct Auditor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Auditor({:?}, origin {})",
            self.inner.ledger, self.inner.origin
        )
    }
}

impl Auditor {
    /// Opens the ledger of `home` with the `[ledger]` settings of `config`.
    /// `key` is the node's signing key, needed for checkpoints; without it
    /// the auditor records entries but signs nothing. The checkpoint origin
    /// is `[node] name`.
    pub fn open(home: &Home, config: &Config, key: Option<SigningKey>) -> Result<Self, AuditError> {
        let ledger = Ledger::open_at(&home.ledger_dir(), &home.payloads_dir())?;
        Ok(Self::with_ledger(ledger, config, key))
    }

    /// An auditor over an already open ledger.
    pub fn with_ledger(ledger: Ledger, config: &Config, key: Option<SigningKey>) -> Self {
        let c = &config.ledger;
        let policy = Policy {
            every_entries: c.checkpoint_every_entries,
            every: (c.checkpoint_every_seconds > 0)
                .then(|| Duration::from_secs(c.checkpoint_every_seconds)),
            payloads: c.payloads,
        };
        let size = ledger.size();
        let auditor = Self {
            inner: Arc::new(Inner {
                ledger,
                key,
                origin: config.node.name.clone(),
                policy,
                last_checkpoint: Mutex::new((size, Instant::now())),
                open: RwLock::new(true),
            }),
        };
        if let (Some(every), true) = (auditor.inner.policy.every, auditor.inner.key.is_some()) {
            spawn_timer(Arc::downgrade(&auditor.inner), every);
        }
        auditor
    }

    /// Records one decision; returns its index once durable. May also sign a
    /// checkpoint when `checkpoint_every_entries` entries accumulated.
    pub fn record(&self, event: AuditEvent) -> Result<u64, AuditError> {
        let (kind, decision) = (event.kind.as_str(), event.verdict.as_str());
        self.append(kind, decision, event)
    }

    /// Records an event from another system under its own `kind` and
    /// `decision` strings (`vigil audit append`). The ledger checks their
    /// syntax; `payload.erased` is reserved for erasures.
    pub fn record_raw(
        &self,
        kind: &str,
        decision: &str,
        event: AuditEvent,
    ) -> Result<u64, AuditError> {
        if kind == vigil_ledger::entry::KIND_PAYLOAD_ERASED {
            return Err(AuditError::Reserved(kind.to_string()));
        }
        self.append(kind, decision, event)
    }

    fn append(&self, kind: &str, decision: &str, event: AuditEvent) -> Result<u64, AuditError> {
        let open = self.inner.open.read().unwrap_or_else(|p| p.into_inner());
        if !*open {
            return Err(AuditError::Closed);
        }
        let mut entry =
            NewEntry::new(kind, event.actor, event.subject, decision).details(event.details);
        if self.inner.policy.payloads == PayloadMode::Full {
            entry.payload = event.payload;
        }
        let index = self.inner.ledger.append(entry)?;
        let due = {
            let last = lock(&self.inner.last_checkpoint);
            self.inner.policy.every_entries > 0
                && index + 1 >= last.0 + self.inner.policy.every_entries
        };
        if due && self.inner.key.is_some() {
            self.checkpoint()?;
        }
        Ok(index)
    }

    /// Signs a checkpoint of the whole ledger now (or returns the last one
    /// when nothing was added since).
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, AuditError> {
        checkpoint(&self.inner)
    }

    /// Stops recording (every later [`Auditor::record`] fails with
    /// [`AuditError::Closed`]; appends in progress finish first), then signs
    /// the last checkpoint, which therefore covers every entry. Returns
    /// `None` when the ledger is empty (nothing to sign).
    pub fn close(&self) -> Result<Option<SignedCheckpoint>, AuditError> {
        *self.inner.open.write().unwrap_or_else(|p| p.into_inner()) = false;
        if self.inner.ledger.size() == 0 {
            return Ok(None);
        }
        checkpoint(&self.inner).map(Some)
    }

    /// The ledger size the last checkpoint covers and when it was signed
    /// (when the auditor was opened, if it signed none since).
    pub fn last_checkpoint(&self) -> (u64, Instant) {
        *lock(&self.inner.last_checkpoint)
    }

    /// The ledger, for reading (tail, export, verify, proofs). Do not append
    /// to it directly: record through [`Auditor::record`].
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// The checkpoint origin.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// Records the erasure of the payload of entry `index`, then erases it
    /// ([`Ledger::erase_payload`]).
    pub fn erase_payload(&self, index: u64, actor: &str, reason: &str) -> Result<u64, AuditError> {
        let open = self.inner.open.read().unwrap_or_else(|p| p.into_inner());
        if !*open {
            return Err(AuditError::Closed);
        }
        Ok(self.inner.ledger.erase_payload(index, actor, reason)?)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn checkpoint(inner: &Inner) -> Result<SignedCheckpoint, AuditError> {
    let key = inner.key.as_ref().ok_or(AuditError::NoKey)?;
    let signed = inner.ledger.checkpoint(key, &inner.origin)?;
    *lock(&inner.last_checkpoint) = (signed.checkpoint.size, Instant::now());
    Ok(signed)
}

/// Signs a checkpoint every `every` when entries were added; stops when the
/// auditor is dropped.
fn spawn_timer(weak: Weak<Inner>, every: Duration) {
    let tick = every.min(Duration::from_secs(1));
    let spawned = std::thread::Builder::new()
        .name("vigil-checkpoint".into())
        .spawn(move || loop {
            std::thread::sleep(tick);
            let Some(inner) = weak.upgrade() else { return };
            let (size, at) = *lock(&inner.last_checkpoint);
            if at.elapsed() >= every && inner.ledger.size() > size {
                if let Err(e) = checkpoint(&inner) {
                    eprintln!("warning: periodic ledger checkpoint failed: {e}");
                    *lock(&inner.last_checkpoint) = (size, Instant::now());
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("warning: cannot start the periodic checkpoint thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(every_entries: u64) -> Config {
        let mut c = Config::default();
        c.node.name = "test.example/node".into();
        c.ledger.checkpoint_every_entries = every_entries;
        c.ledger.checkpoint_every_seconds = 0;
        c
    }

    #[test]
    fn records_and_checkpoints_every_n_entries() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let key = SigningKey::generate();
        let public = key.public_key().clone();
        let a = Auditor::open(&home, &config(3), Some(key)).unwrap();
        for i in 0..7 {
            let idx = a
                .record(
                    AuditEvent::new(EventKind::ToolCall, "agent:a", "tool:t", Verdict::Allow)
                        .details(serde_json::json!({ "i": i }))
                        .payload(b"input".to_vec()),
                )
                .unwrap();
            assert_eq!(idx, i);
        }
        let notes = a.ledger().checkpoint_notes().unwrap();
        assert_eq!(
            notes.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![3, 6]
        );
        a.checkpoint().unwrap();
        let report = vigil_ledger::verify::verify_ledger(a.ledger(), &public).unwrap();
        assert_eq!((report.entries, report.payloads_checked), (7, 7));
        assert_eq!(a.ledger().entry(0).unwrap().unwrap().kind, "tool.call");
    }

    #[test]
    fn close_signs_a_checkpoint_covering_everything_and_refuses_later_entries() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let key = SigningKey::generate();
        let public = key.public_key().clone();
        let a = Auditor::open(&home, &config(0), Some(key)).unwrap();
        let event = || AuditEvent::new(EventKind::External, "x", "y", Verdict::Record);
        a.record(event()).unwrap();
        a.record(event()).unwrap();
        let signed = a.close().unwrap().expect("a checkpoint");
        assert_eq!(signed.checkpoint.size, 2);
        assert_eq!(a.last_checkpoint().0, 2);
        assert!(matches!(a.record(event()), Err(AuditError::Closed)));
        assert_eq!(a.ledger().size(), 2);
        let report = vigil_ledger::verify::verify_ledger(a.ledger(), &public).unwrap();
        assert_eq!(report.entries, 2);
    }

    #[test]
    fn payloads_none_drops_payloads_and_no_key_signs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let mut c = config(1);
        c.ledger.payloads = PayloadMode::None;
        let a = Auditor::open(&home, &c, None).unwrap();
        a.record(
            AuditEvent::new(EventKind::External, "x", "y", Verdict::Record).payload(vec![1, 2]),
        )
        .unwrap();
        assert!(a.ledger().entry(0).unwrap().unwrap().payload.is_none());
        assert!(matches!(a.checkpoint(), Err(AuditError::NoKey)));
    }
}
