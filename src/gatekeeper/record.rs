//! Decisions as plain ledger records: what kind of event, about what, the
//! decision and a JSON object of details. The node's auditor turns each
//! record into exactly one ledger entry; nothing here writes anything.

use super::history::AdmittedRecord;
use crate::node::audit::{AuditEvent, EventKind, Verdict};

/// One decision or change, ready to be written as one ledger entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// `PackageAdmitted`, `PackageRefused`, `PackageRemoved` or
    /// `TrustChanged`.
    pub kind: EventKind,
    /// What the decision is about (`acme/weather@1.2.0`, a key id, a file).
    pub subject: String,
    /// Allow, deny or record.
    pub decision: Verdict,
    /// A JSON object with the reason and the facts behind it.
    pub details: serde_json::Value,
}

impl AuditRecord {
    /// The event to record, made by `actor` (`operator`, `node`).
    pub fn event(&self, actor: impl Into<String>) -> AuditEvent {
        AuditEvent::new(
            self.kind.clone(),
            actor,
            self.subject.clone(),
            self.decision.clone(),
        )
        .details(self.details.clone())
    }
}

/// The record of withdrawing the current version of a package
/// (`vigil uninstall`): the package, its tools and the operator's reason.
/// Written before the package stops being current.
pub fn removal(record: &AdmittedRecord, tools: &[String], reason: &str) -> AuditRecord {
    AuditRecord {
        kind: EventKind::PackageRemoved,
        subject: format!("{}@{}", record.name, record.version),
        decision: Verdict::Record,
        details: serde_json::json!({
            "name": record.name,
            "version": record.version,
            "hash": record.hash,
            "publisher": record.publisher,
            "tools": tools,
            "reason": reason,
        }),
    }
}
