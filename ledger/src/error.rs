//! The typed errors of the ledger store. Each says what was refused or what
//! failed, in words an operator can act on.

use std::path::PathBuf;

use crate::checkpoint::CheckpointError;
use crate::entry::EntryError;
use crate::handover::HandoverError;
use crate::merkle::RangeError;

/// Everything that can go wrong while using a ledger on disk.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// sled reported an error.
    #[error("ledger database: {0}")]
    Sled(#[from] sled::Error),
    /// An entry to append breaks a rule, or stored bytes are not an entry.
    #[error("entry refused: {0}")]
    Entry(#[from] EntryError),
    /// A checkpoint was refused or is malformed.
    #[error("checkpoint refused: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A key handover was refused or is malformed.
    #[error("key handover refused: {0}")]
    Handover(#[from] HandoverError),
    /// A proof or root was asked for outside the ledger.
    #[error("{0}")]
    Range(#[from] RangeError),
    /// Stored data is missing or inconsistent; run `vigil audit verify`.
    #[error("ledger store is damaged: {0}; run `vigil audit verify` to locate the damage")]
    Damaged(String),
    /// A group commit failed; nothing of that batch was acknowledged.
    #[error("append was not made durable: {0}")]
    Commit(String),
    /// Something asked for does not exist.
    #[error("{0}")]
    NotFound(String),
}

impl LedgerError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LedgerError {
        let path = path.into();
        move |source| LedgerError::Io { path, source }
    }
}
