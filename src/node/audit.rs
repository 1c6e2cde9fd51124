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

use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, Instant};

use vigil_crypto::SigningKey;
use vigil_ledger::ledger::Rotation;
use vigil_ledger::{Ledger, LedgerError, NewEntry, SignedCheckpoint};

use crate::node::config::{Config, PayloadMode};
use crate::node::home::Home;

/// What kind of decision or event an entry records: the node's whole
/// vocabulary. Each kind maps to exactly one `kind` string of the ledger
/// (docs/ledger-format.md lists them; a test keeps the two equal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A tool call ran (`tool.call`).
    ToolCall,
    /// A tool call was refused before it ran (`tool.denied`).
    ToolDenied,
    /// The gatekeeper admitted a package (`package.admitted`).
    PackageAdmitted,
    /// The gatekeeper refused a package, at install or at node start
    /// (`package.refused`).
    PackageRefused,
    /// The operator withdrew an admitted package (`vigil uninstall`;
    /// `package.removed`); its admission history is kept.
    PackageRemoved,
    /// The trust store changed (`trust.changed`).
    TrustChanged,
    /// A trust store that disagrees with the ledger was refused
    /// (`trust.refused`), with the differences.
    TrustRefused,
    /// An operator answered a held call (`approval.decided`), with the
    /// signed statement when the decision was signed.
    ApprovalDecided,
    /// An operator decision the node would not accept: unsigned where a
    /// signature is required, a bad signature, an unknown or revoked key,
    /// or a statement about another call (`approval.refused`).
    ApprovalRefused,
    /// A peer's link was accepted, or a dialled link came up (`link.opened`).
    LinkOpened,
    /// A link was refused, by this node or (when dialling) by the peer
    /// (`link.refused`).
    LinkRefused,
    /// A link ended (`link.closed`).
    LinkClosed,
    /// A tunnel to a target was opened (`tunnel.opened`).
    TunnelOpened,
    /// A tunnel was refused (`tunnel.refused`).
    TunnelRefused,
    /// A tunnel ended (`tunnel.closed`).
    TunnelClosed,
    /// A payload was erased (`payload.erased`); written by the ledger itself
    /// ([`Auditor::erase_payload`]), never through [`Auditor::record`].
    PayloadErased,
    /// The node key handed the log over to a new key (`key.rotated`);
    /// written by the ledger itself ([`Auditor::rotate_key`]), never
    /// through [`Auditor::record`].
    KeyRotated,
    /// This node, as a witness, cosigned another log's checkpoint
    /// (`witness.cosigned`).
    WitnessCosigned,
    /// This node, as a witness, refused a checkpoint (`witness.refused`):
    /// unknown log, bad signature, or inconsistent with what it cosigned.
    WitnessRefused,
    /// A bearer token was minted for an agent by this node (`vigil agent
    /// token`; `agent.token-issued`): its id, scopes and expiry, never the
    /// token.
    AgentTokenIssued,
    /// Tokens were revoked (`vigil agent revoke`; `agent.token-revoked`).
    AgentTokenRevoked,
    /// A bearer token was refused at the HTTP edge (`agent.token-refused`):
    /// expired, wrong audience or issuer, bad signature, revoked, unknown.
    AgentTokenRefused,
    /// The behavioural watch saw an agent breach a rule in dry-run mode
    /// (`agent.anomaly`), with the evidence.
    AgentAnomaly,
    /// The behavioural watch suspended an agent (`agent.suspended`), with
    /// the evidence.
    AgentSuspended,
    /// An operator lifted a suspension (`vigil agent resume`; `agent.resumed`).
    AgentResumed,
    /// An event reported by another system (`vigil audit append`), under
    /// its own kind (default `external`), which is never a node kind.
    External(String),
}

impl EventKind {
    /// Every kind the node writes itself, `External` aside.
    pub const NODE_KINDS: [EventKind; 25] = [
        Self::ToolCall,
        Self::ToolDenied,
        Self::PackageAdmitted,
        Self::PackageRefused,
        Self::PackageRemoved,
        Self::TrustChanged,
        Self::TrustRefused,
        Self::ApprovalDecided,
        Self::ApprovalRefused,
        Self::LinkOpened,
        Self::LinkRefused,
        Self::LinkClosed,
        Self::TunnelOpened,
        Self::TunnelRefused,
        Self::TunnelClosed,
        Self::PayloadErased,
        Self::KeyRotated,
        Self::WitnessCosigned,
        Self::WitnessRefused,
        Self::AgentTokenIssued,
        Self::AgentTokenRevoked,
        Self::AgentTokenRefused,
        Self::AgentAnomaly,
        Self::AgentSuspended,
        Self::AgentResumed,
    ];

    /// The kind of externally reported events without one of their own.
    pub const EXTERNAL: &'static str = "external";

    /// The `kind` string stored in the entry.
    pub fn as_str(&self) -> &str {
        match self {
            Self::ToolCall => "tool.call",
            Self::ToolDenied => "tool.denied",
            Self::PackageAdmitted => "package.admitted",
            Self::PackageRefused => "package.refused",
            Self::PackageRemoved => "package.removed",
            Self::TrustChanged => "trust.changed",
            Self::TrustRefused => "trust.refused",
            Self::ApprovalDecided => vigil_ledger::approval::KIND_APPROVAL_DECIDED,
            Self::ApprovalRefused => "approval.refused",
            Self::LinkOpened => "link.opened",
            Self::LinkRefused => "link.refused",
            Self::LinkClosed => "link.closed",
            Self::TunnelOpened => "tunnel.opened",
            Self::TunnelRefused => "tunnel.refused",
            Self::TunnelClosed => "tunnel.closed",
            Self::PayloadErased => vigil_ledger::entry::KIND_PAYLOAD_ERASED,
            Self::KeyRotated => vigil_ledger::handover::KIND_KEY_ROTATED,
            Self::WitnessCosigned => "witness.cosigned",
            Self::WitnessRefused => "witness.refused",
            Self::AgentTokenIssued => "agent.token-issued",
            Self::AgentTokenRevoked => "agent.token-revoked",
            Self::AgentTokenRefused => "agent.token-refused",
            Self::AgentAnomaly => "agent.anomaly",
            Self::AgentSuspended => "agent.suspended",
            Self::AgentResumed => "agent.resumed",
            Self::External(kind) => kind,
        }
    }

    /// The families of node kinds: an outside event's kind may not begin
    /// with one, so no node kind added later can ever be taken by an
    /// outside event already on record.
    pub const NODE_FAMILIES: [&'static str; 11] = [
        "tool.",
        "package.",
        "trust.",
        "approval.",
        "link.",
        "tunnel.",
        "payload.",
        "key.",
        "node.",
        "witness.",
        "agent.",
    ];

    /// The details field that marks an entry as reported by another system
    /// (`"_external": true`); node entries never carry it.
    pub const EXTERNAL_MARK: &'static str = "_external";

    /// The kind of an event reported by another system; refused when it
    /// names a kind the node writes, or begins like one (an outside event
    /// must never pass for the node's own decision).
    pub fn external(kind: &str) -> Result<Self, AuditError> {
        if Self::NODE_KINDS.iter().any(|k| k.as_str() == kind)
            || Self::NODE_FAMILIES.iter().any(|f| kind.starts_with(f))
        {
            return Err(AuditError::Reserved(kind.to_string()));
        }
        Ok(Self::External(kind.to_string()))
    }
}

/// The decision an entry records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The action was allowed.
    Allow,
    /// The action was refused.
    Deny,
    /// Nothing was decided; the event is recorded (e.g. a tunnel closed).
    Record,
    /// The decision word of an externally reported event.
    External(String),
}

impl Verdict {
    /// The `decision` string stored in the entry.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Record => "record",
            Self::External(word) => word,
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
    /// The node key failed to sign.
    #[error("the node key failed to sign: {0}")]
    Signing(String),
    /// The kind is reserved for entries the node or the ledger writes.
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
    /// The node key in force; replaced by [`Auditor::rotate_key`].
    key: RwLock<Option<Arc<SigningKey>>>,
    origin: String,
    policy: Policy,
    /// Size covered by the last checkpoint and when it was signed.
    last_checkpoint: Mutex<(u64, Instant)>,
    /// The ledger size, announced to waiters after every append.
    size: (Mutex<u64>, Condvar),
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
        // The trust store is checked against these entries at every load.
        ledger.index_kind(EventKind::TrustChanged.as_str())?;
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
        // The count towards the next checkpoint starts at the last signed
        // one, not at this start: a node restarted often still signs on
        // schedule.
        let covered = match ledger.checkpoint_notes() {
            Ok(notes) => notes.last().map_or(0, |(s, _)| *s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the ledger's checkpoints; counting from now");
                size
            }
        };
        let auditor = Self {
            inner: Arc::new(Inner {
                ledger,
                key: RwLock::new(key.map(Arc::new)),
                origin: config.node.name.clone(),
                policy,
                last_checkpoint: Mutex::new((covered, Instant::now())),
                size: (Mutex::new(size), Condvar::new()),
                open: RwLock::new(true),
            }),
        };
        if let (Some(every), true) = (auditor.inner.policy.every, auditor.has_key()) {
            spawn_timer(Arc::downgrade(&auditor.inner), every);
        }
        auditor
    }

    /// Records one decision; returns its index once durable. May also sign a
    /// checkpoint when `checkpoint_every_entries` entries accumulated (a
    /// failed checkpoint is reported on its own: the entry is recorded).
    pub fn record(&self, event: AuditEvent) -> Result<u64, AuditError> {
        let _open = self.still_open()?;
        let entry = self.new_entry(event)?;
        let index = self.inner.ledger.append(entry)?;
        self.appended(index + 1);
        Ok(index)
    }

    /// Records several events in order in one group commit (a JSON Lines
    /// import); returns their indices once durable.
    pub fn record_batch(
        &self,
        events: Vec<AuditEvent>,
    ) -> Result<std::ops::Range<u64>, AuditError> {
        let _open = self.still_open()?;
        let entries = events
            .into_iter()
            .map(|e| self.new_entry(e))
            .collect::<Result<Vec<_>, _>>()?;
        let range = self.inner.ledger.append_batch(entries)?;
        self.appended(range.end);
        Ok(range)
    }

    /// Holds off [`Auditor::close`] while an append is in progress; fails
    /// once the auditor is closed.
    fn still_open(&self) -> Result<RwLockReadGuard<'_, bool>, AuditError> {
        let open = self.inner.open.read().unwrap_or_else(|p| p.into_inner());
        if *open {
            Ok(open)
        } else {
            Err(AuditError::Closed)
        }
    }

    fn new_entry(&self, event: AuditEvent) -> Result<NewEntry, AuditError> {
        if matches!(event.kind, EventKind::PayloadErased | EventKind::KeyRotated) {
            return Err(AuditError::Reserved(event.kind.as_str().to_string()));
        }
        // The node's own decisions always fit an entry (an oversized request
        // must not make its refusal unrecordable); an outside event that
        // does not fit is refused as it is, for its sender to fix.
        let node_event = !matches!(event.kind, EventKind::External(_));
        let (actor, subject, details) = if node_event {
            (
                crate::node::fit::name(event.actor),
                crate::node::fit::name(event.subject),
                crate::node::fit::details(event.details),
            )
        } else {
            (event.actor, event.subject, event.details)
        };
        let mut entry = NewEntry::new(event.kind.as_str(), actor, subject, event.verdict.as_str())
            .details(details);
        if self.inner.policy.payloads == PayloadMode::Full {
            entry.payload = event.payload;
        }
        Ok(entry)
    }

    /// After entries up to `size` are durable: wakes waiters and signs a
    /// checkpoint when one is due. The entries are recorded whatever the
    /// checkpoint does; a failed checkpoint is reported on its own (the
    /// next entry or the timer tries again).
    fn appended(&self, size: u64) {
        self.announce(size);
        let due = {
            let last = lock(&self.inner.last_checkpoint);
            self.inner.policy.every_entries > 0 && size >= last.0 + self.inner.policy.every_entries
        };
        if due && self.has_key() {
            if let Err(e) = self.checkpoint() {
                tracing::error!(error = %e, size, "the entries are recorded, but signing the checkpoint due after them failed");
            }
        }
    }

    fn has_key(&self) -> bool {
        read_key(&self.inner).is_some()
    }

    /// Hands the log over from the node key in force to `new`
    /// ([`Ledger::rotate_key`]): the old key signs the `key.rotated` entry
    /// naming `new`, a checkpoint covering it carries both signatures, and
    /// from then on this auditor signs with `new`. Checkpoints wait
    /// meanwhile. The entry is recorded even when that checkpoint fails
    /// (reported in the result); `new` is in force in either case.
    pub fn rotate_key(&self, new: SigningKey, actor: &str) -> Result<Rotation, AuditError> {
        let _open = self.still_open()?;
        let mut key = self.inner.key.write().unwrap_or_else(|p| p.into_inner());
        let old = key.clone().ok_or(AuditError::NoKey)?;
        let rotation = self
            .inner
            .ledger
            .rotate_key(&old, &new, &self.inner.origin, actor)?;
        *key = Some(Arc::new(new));
        drop(key);
        if let Ok(cp) = &rotation.checkpoint {
            *lock(&self.inner.last_checkpoint) = (cp.checkpoint.size, Instant::now());
        }
        self.announce(rotation.handover.index + 1);
        Ok(rotation)
    }

    /// Tells waiters ([`Auditor::wait_for_growth`]) that entries up to
    /// `size` are durable.
    fn announce(&self, size: u64) {
        let (lock_size, grown) = &self.inner.size;
        let mut s = lock(lock_size);
        *s = (*s).max(size);
        grown.notify_all();
    }

    /// Waits up to `timeout` until the ledger holds more than `size`
    /// entries; returns the size then.
    pub fn wait_for_growth(&self, size: u64, timeout: Duration) -> u64 {
        let (lock_size, grown) = &self.inner.size;
        let guard = lock(lock_size);
        let (guard, _) = grown
            .wait_timeout_while(guard, timeout, |s| *s <= size)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }

    /// The public half of the node key in force, if the node has its key.
    pub fn public_key(&self) -> Option<vigil_crypto::CompositePublicKey> {
        read_key(&self.inner).map(|k| k.public_key().clone())
    }

    /// Signs `message` with the node key in force under `ctx` (one of
    /// [`vigil_crypto::context`]).
    pub fn sign(
        &self,
        message: &[u8],
        ctx: &[u8],
    ) -> Result<vigil_crypto::CompositeSignature, AuditError> {
        let key = read_key(&self.inner).ok_or(AuditError::NoKey)?;
        key.sign(message, ctx)
            .map_err(|e| AuditError::Signing(e.to_string()))
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
        let _open = self.still_open()?;
        let recorded = self.inner.ledger.erase_payload(index, actor, reason)?;
        self.appended(recorded + 1);
        Ok(recorded)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read_key(inner: &Inner) -> Option<Arc<SigningKey>> {
    inner.key.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn checkpoint(inner: &Inner) -> Result<SignedCheckpoint, AuditError> {
    // Held for the signature, so that a rotation waits for it.
    let key = inner.key.read().unwrap_or_else(|p| p.into_inner());
    let key = key.as_ref().ok_or(AuditError::NoKey)?;
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
        let event = || AuditEvent::new(EventKind::ToolCall, "agent:a", "tool:t", Verdict::Allow);
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
    fn the_format_doc_lists_exactly_the_node_kinds() {
        let doc = include_str!("../../docs/ledger-format.md");
        let start = doc
            .find("Kinds written by the node:")
            .expect("the doc lists the node's kinds");
        let end = start + doc[start..].find(". ").expect("end of the list");
        let listed: std::collections::BTreeSet<&str> =
            doc[start..end].split('`').skip(1).step_by(2).collect();
        let ours: std::collections::BTreeSet<&str> =
            EventKind::NODE_KINDS.iter().map(|k| k.as_str()).collect();
        assert_eq!(listed, ours, "docs/ledger-format.md and EventKind disagree");
    }

    #[test]
    fn outside_events_never_carry_a_node_kind() {
        for kind in EventKind::NODE_KINDS {
            assert!(matches!(
                EventKind::external(kind.as_str()),
                Err(AuditError::Reserved(_))
            ));
        }
        assert_eq!(
            EventKind::external("deploy.finished").unwrap().as_str(),
            "deploy.finished"
        );
        // Nor a kind a later node version could write.
        for kind in ["tool.calls", "key.rotated", "approval.x", "node.started"] {
            assert!(
                matches!(EventKind::external(kind), Err(AuditError::Reserved(_))),
                "{kind}"
            );
        }
    }

    #[test]
    fn payloads_none_drops_payloads_and_no_key_signs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let mut c = config(1);
        c.ledger.payloads = PayloadMode::None;
        let a = Auditor::open(&home, &c, None).unwrap();
        a.record(
            AuditEvent::new(
                EventKind::External(EventKind::EXTERNAL.into()),
                "x",
                "y",
                Verdict::Record,
            )
            .payload(vec![1, 2]),
        )
        .unwrap();
        assert!(a.ledger().entry(0).unwrap().unwrap().payload.is_none());
        assert!(matches!(a.checkpoint(), Err(AuditError::NoKey)));
    }
}
