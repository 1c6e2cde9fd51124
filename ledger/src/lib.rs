//! vigil-ledger: the audit ledger that nobody can quietly rewrite.
//!
//! Entries ([`entry`]) are hash-chained and form an RFC 6962 Merkle tree
//! ([`merkle`]); they live in a sled store with group-committed, power-cut
//! durable appends ([`ledger`], [`durability`]); payloads live beside it and
//! can be erased ([`payloads`]); the node signs C2SP checkpoints
//! ([`checkpoint`]) and hand the log over to a new key on rotation
//! ([`handover`]); exports are single-file bundles ([`bundle`]) that
//! `vigil-verify` checks offline ([`verify`]), and single entries can be
//! proven with C2SP tlog-proofs ([`proof`]). The formats are specified in
//! `docs/ledger-format.md`.
//!
//! This crate depends on vigil-crypto and nothing of the node, so an auditor
//! can build `vigil-verify` on its own.

pub mod approval;
pub mod bundle;
pub mod checkpoint;
pub mod cosignature;
pub mod durability;
pub mod edge;
pub mod entry;
pub mod entry_file;
pub mod error;
pub mod handover;
pub mod hash;
pub mod journal;
pub mod ledger;
pub mod merkle;
pub mod payloads;
pub mod progress;
pub mod proof;
pub mod recent;
pub mod report;
pub mod storage;
pub mod verify;
pub mod witness;

pub use checkpoint::{Checkpoint, SignedCheckpoint};
pub use entry::{Entry, NewEntry, PayloadCommitment};
pub use error::LedgerError;
pub use hash::Hash;
pub use ledger::Ledger;
pub use verify::{Failure, Report};
