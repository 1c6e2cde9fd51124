//! Decisions as plain ledger records: what kind of event, about what, the
//! decision and a JSON object of details. The node's auditor turns each
//! record into exactly one ledger entry; nothing here writes anything.

use serde::Serialize;

/// One decision or change, ready to be written as one ledger entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// `package.admitted`, `package.refused`, `trust.publisher.added`, ...
    pub kind: &'static str,
    /// What the decision is about (`acme/weather@1.2.0`, a key id, a file).
    pub subject: String,
    /// `allow`, `deny` or `record`.
    pub decision: &'static str,
    /// A JSON object with the reason and the facts behind it.
    pub details: serde_json::Value,
}
