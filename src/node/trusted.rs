//! The trust store a node may use: `trust.toml` checked against the
//! `trust.changed` entries of its ledger (found through the ledger's kind
//! index). A file that disagrees with the ledger (edited by hand, or left
//! behind by a crash between a recorded change and its save) is refused:
//! the refusal is recorded as a `trust.refused` entry naming every
//! difference, and the caller gets an error that says so and how to repair
//! it (`vigil trust restore` rewrites the file from the ledger).

use vigil_ledger::LedgerError;

use crate::node::audit::{AuditError, AuditEvent, Auditor, EventKind, Verdict};
use crate::node::home::Home;
use crate::trust::{file, ledgered, TrustChange, TrustError, TrustStore};

/// Why no trust store could be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustCheckError {
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("reading the recorded trust changes: {0}")]
    Ledger(#[from] LedgerError),
    #[error("ledger entry {index} is a trust.changed entry this node cannot read: {message}")]
    BadEntry { index: u64, message: String },
    #[error("the ledger does not index its trust changes; reopen it through the node")]
    NotIndexed,
    #[error(
        "{path} disagrees with the trust changes recorded in the ledger, so it is not used \
         (refusal recorded as ledger entry {index}):\n  - {}\nEvery trust change goes through \
         `vigil trust ...`. If the file was edited by hand, undo the edit; \
         `vigil trust restore` rewrites it from the ledger (recorded).",
        differences.join("\n  - ")
    )]
    Disagrees {
        path: String,
        differences: Vec<String>,
        index: u64,
    },
    #[error("{path} disagrees with the ledger and the refusal could not be recorded: {source}")]
    Unrecorded {
        path: String,
        #[source]
        source: AuditError,
    },
}

/// The trust changes recorded in the ledger, in order, with their indices.
pub fn recorded_changes(auditor: &Auditor) -> Result<Vec<(u64, TrustChange)>, TrustCheckError> {
    let ledger = auditor.ledger();
    let indices = ledger
        .indices_of_kind(EventKind::TrustChanged.as_str())?
        .ok_or(TrustCheckError::NotIndexed)?;
    let mut out = Vec::with_capacity(indices.len());
    for index in indices {
        let entry = ledger
            .entry(index)?
            .ok_or_else(|| TrustCheckError::BadEntry {
                index,
                message: "the entry is missing".into(),
            })?;
        let change =
            serde_json::from_str(&entry.details).map_err(|e| TrustCheckError::BadEntry {
                index,
                message: e.to_string(),
            })?;
        out.push((index, change));
    }
    Ok(out)
}

/// The trust store the ledger records.
pub fn recorded(auditor: &Auditor) -> Result<TrustStore, TrustCheckError> {
    let changes = recorded_changes(auditor)?;
    Ok(ledgered::replay(changes.iter().map(|(_, c)| c)))
}

/// Loads `trust.toml` and returns it if it says what the ledger records;
/// otherwise records a `trust.refused` entry and fails naming the
/// differences.
pub fn load_checked(home: &Home, auditor: &Auditor) -> Result<TrustStore, TrustCheckError> {
    let path = home.trust_path();
    let in_file = file::load(&path)?;
    let on_record = recorded(auditor)?;
    let differences = ledgered::differences(&in_file, &on_record);
    if differences.is_empty() {
        return Ok(in_file);
    }
    let path = path.display().to_string();
    let event = AuditEvent::new(EventKind::TrustRefused, "node", "trust.toml", Verdict::Deny)
        .details(serde_json::json!({
            "code": "trust-store-disagrees",
            "path": path,
            "differences": differences,
        }));
    match auditor.record(event) {
        Ok(index) => Err(TrustCheckError::Disagrees {
            path,
            differences,
            index,
        }),
        Err(source) => Err(TrustCheckError::Unrecorded { path, source }),
    }
}

/// What `trust.toml` holds beyond or against the ledger, and the store the
/// ledger records (to be written over the file by `vigil trust restore`).
/// Fails when the ledger's changes predate whole keys and so cannot
/// rebuild the file.
pub fn restoration(
    home: &Home,
    auditor: &Auditor,
) -> Result<(TrustStore, Vec<String>), TrustCheckError> {
    let in_file = file::load(&home.trust_path())?;
    let on_record = recorded(auditor)?;
    let incomplete = on_record
        .publishers
        .iter()
        .map(|p| &p.key)
        .chain(on_record.peers.iter().map(|p| &p.key))
        .chain(on_record.operators.iter().map(|o| &o.key))
        .any(String::is_empty);
    if incomplete {
        return Err(TrustCheckError::BadEntry {
            index: 0,
            message: "some trust changes were recorded before entries carried whole keys, so \
                      the store cannot be rebuilt from the ledger; undo the edit by hand"
                .into(),
        });
    }
    let differences = ledgered::differences(&in_file, &on_record);
    Ok((on_record, differences))
}
