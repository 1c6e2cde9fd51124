//! Single-entry proofs in the C2SP tlog-proof format (c2sp.org/tlog-proof@v1):
//! the entry's canonical bytes as the `extra` line, its index, the RFC 6962
//! inclusion path, a blank line and the signed checkpoint note. Anyone with
//! the node's public key can check one without the rest of the ledger.

use base64::Engine as _;
use vigil_crypto::CompositePublicKey;

use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::entry::{Entry, MAX_ENTRY_LEN};
use crate::error::LedgerError;
use crate::hash::{leaf_hash, Hash};
use crate::ledger::Ledger;
use crate::merkle::verify_inclusion;
use crate::verify::{Failure, Location, VerifyError};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// First line of a proof.
pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A parsed (not yet verified) single-entry proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryProof {
    /// The entry's canonical encoding.
    pub entry: Vec<u8>,
    /// The entry's index.
    pub index: u64,
    /// The inclusion path, leaf sibling first.
    pub path: Vec<Hash>,
    /// The signed checkpoint note.
    pub note: String,
}

impl EntryProof {
    /// Builds the proof of entry `index` against the latest stored
    /// checkpoint that covers it.
    pub fn build(ledger: &Ledger, index: u64) -> Result<Self, LedgerError> {
        let (size, note) = ledger.checkpoint_covering(index)?.ok_or_else(|| {
            LedgerError::NotFound(format!(
                "no signed checkpoint covers entry {index} yet; run `vigil audit checkpoint` first"
            ))
        })?;
        let entry = ledger
            .raw_entries(index..index + 1)
            .next()
            .ok_or_else(|| LedgerError::NotFound(format!("entry {index} does not exist")))??;
        let path = ledger.inclusion_proof(index, size)?;
        Ok(Self {
            entry,
            index,
            path,
            note,
        })
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{PROOF_HEADER}\nextra {}\nindex {}\n",
            B64.encode(&self.entry),
            self.index
        );
        for h in &self.path {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.note);
        s
    }

    /// Parses the text form strictly.
    pub fn parse(text: &str) -> Result<Self, VerifyError> {
        let bad = |m: &str| VerifyError::Malformed(format!("proof: {m}"));
        let (head, note) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(PROOF_HEADER) {
            return Err(bad(&format!("the first line must be `{PROOF_HEADER}`")));
        }
        let extra = lines
            .next()
            .and_then(|l| l.strip_prefix("extra "))
            .ok_or_else(|| bad("the second line must be `extra <base64 entry>`"))?;
        if extra.len() > MAX_ENTRY_LEN * 2 {
            return Err(bad("the entry is too long"));
        }
        let entry = B64
            .decode(extra)
            .map_err(|_| bad("the extra line is not base64"))?;
        let index_text = lines
            .next()
            .and_then(|l| l.strip_prefix("index "))
            .ok_or_else(|| bad("the third line must be `index <N>`"))?;
        let index: u64 = index_text
            .parse()
            .ok()
            .filter(|_| index_text.bytes().all(|b| b.is_ascii_digit()))
            .filter(|_| index_text == "0" || !index_text.starts_with('0'))
            .ok_or_else(|| bad("the index is not a decimal number"))?;
        let mut path = Vec::new();
        for l in lines {
            let h: Hash = B64
                .decode(l)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("an inclusion path line is not a base64 SHA-256 hash"))?;
            path.push(h);
            if path.len() > 64 {
                return Err(bad("the inclusion path is longer than 64 hashes"));
            }
        }
        Ok(Self {
            entry,
            index,
            path,
            note: note.to_string(),
        })
    }

    /// Verifies the proof against the pinned key: the checkpoint signature,
    /// the entry's encoding and index, and the inclusion path to the signed root.
    pub fn verify(&self, key: &CompositePublicKey) -> Result<(Entry, Checkpoint), VerifyError> {
        let cp = SignedCheckpoint::open(&self.note, key)
            .map_err(|e| {
                VerifyError::Failed(Failure {
                    location: Location::Checkpoint(0),
                    reason: e.0,
                })
            })?
            .checkpoint;
        let fail = |reason: String| {
            VerifyError::Failed(Failure {
                location: Location::Entry(self.index),
                reason,
            })
        };
        let entry =
            Entry::decode(&self.entry).map_err(|e| fail(format!("cannot be decoded: {e}")))?;
        if entry.index != self.index {
            return Err(fail(format!(
                "the proof names index {} but the entry says {}",
                self.index, entry.index
            )));
        }
        if !verify_inclusion(
            self.index,
            cp.size,
            &leaf_hash(&self.entry),
            &self.path,
            &cp.root,
        ) {
            return Err(fail(format!(
                "the inclusion path does not lead to the root signed in the checkpoint of size {}",
                cp.size
            )));
        }
        Ok((entry, cp))
    }
}
