//! Offline verification, one code path for every source: a streaming
//! [`Verifier`] that is fed a header, the signed checkpoints (with the
//! consistency proofs between consecutive ones), then every entry in order
//! with its payload if present. `vigil-verify` feeds it from a bundle file
//! ([`crate::bundle`]); `vigil audit verify` feeds it straight from the store
//! ([`verify_ledger`]).
//!
//! Checks: header key equals the pinned key; every checkpoint's signature,
//! origin and size; the hash chain (`prev`); indices; timestamps never
//! decreasing; the Merkle root at every checkpoint size recomputed from the
//! entries; consistency proofs between consecutive checkpoints; payloads
//! against commitments; erasure entries; that a signed checkpoint covers
//! the last entry; that the checkpoints form an unbroken chain (each names
//! the one the node signed before it, so none in the range is left out);
//! the consistency proofs from earlier checkpoints to the last one; and,
//! for held checkpoints (`vigil-verify --since`), that the bundle's history
//! extends each of them; and the chain of node keys: each handover signed
//! by the key before it and recorded as its `key.rotated` entry, each
//! checkpoint signed by every key valid at its size
//! ([`crate::handover::KeyChain`]), and the newest one by the pinned key or
//! a key it handed over to.
//!
//! Blame rule for a broken chain: a change to the content of entry `k`
//! breaks only the link `k -> k+1`; a change to entry `k`'s `prev` field
//! breaks both `k-1 -> k` and `k -> k+1`. The verifier looks one entry ahead
//! to tell them apart and names the altered entry.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;

use vigil_crypto::CompositePublicKey;

use crate::checkpoint::{check_origin, Checkpoint, SignedCheckpoint};
use crate::cosignature::{cosigners, VerifierKey};
use crate::entry::{Entry, SALT_LEN};
use crate::handover::{Handover, HandoverRecord, KeyChain, KIND_KEY_ROTATED};
use crate::hash::{empty_root, leaf_hash, Hash};
use crate::ledger::Ledger;
use crate::merkle::{verify_consistency, Frontier};

/// Where verification failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The bundle header.
    Header,
    /// The checkpoint of this tree size.
    Checkpoint(u64),
    /// The entry with this index.
    Entry(u64),
    /// A held checkpoint (`--since`) of this tree size.
    Held(u64),
}

/// The first verification failure: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Where.
    pub location: Location,
    /// Why, in words.
    pub reason: String,
}

impl Failure {
    fn entry(index: u64, reason: impl Into<String>) -> Self {
        Self {
            location: Location::Entry(index),
            reason: reason.into(),
        }
    }
    fn checkpoint(size: u64, reason: impl Into<String>) -> Self {
        Self {
            location: Location::Checkpoint(size),
            reason: reason.into(),
        }
    }
    fn held(cp: &Checkpoint, reason: impl Into<String>) -> Self {
        Self {
            location: Location::Held(cp.size),
            reason: format!(
                "the held checkpoint (origin {}, size {}, root {}) {}",
                cp.origin,
                cp.size,
                b64(&cp.root),
                reason.into()
            ),
        }
    }
    fn header(reason: impl Into<String>) -> Self {
        Self {
            location: Location::Header,
            reason: reason.into(),
        }
    }

    /// The entry index named by the failure, if it names one.
    pub fn index(&self) -> Option<u64> {
        match self.location {
            Location::Entry(i) => Some(i),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Location::Header => write!(f, "bundle header: {}", self.reason),
            Location::Checkpoint(s) => write!(f, "checkpoint of size {s}: {}", self.reason),
            Location::Entry(i) => write!(f, "entry {i}: {}", self.reason),
            Location::Held(s) => write!(f, "held checkpoint of size {s}: {}", self.reason),
        }
    }
}

impl std::error::Error for Failure {}

/// What a successful verification covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The log's origin.
    pub origin: String,
    /// First entry index checked.
    pub from: u64,
    /// One past the last entry index checked.
    pub to: u64,
    /// Entries checked.
    pub entries: u64,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// Payloads checked against their commitments.
    pub payloads_checked: u64,
    /// Entries with a commitment whose payload was not in the input.
    pub payloads_absent: u64,
    /// `payload.erased` entries checked.
    pub erasures: u64,
    /// `approval.decided` entries whose operator signature was verified.
    pub signed_approvals: u64,
    /// Earlier checkpoints (before the range) whose consistency proof to
    /// the last checkpoint was checked.
    pub earlier: u64,
    /// Held checkpoints (`--since`) the bundle was proven consistent with.
    pub held: u64,
    /// Node keys in the chain the verification followed (1 when the log
    /// was never handed over to a new key).
    pub keys: u64,
    /// Witnesses (of those required) with a valid cosignature on the
    /// newest checkpoint, by name.
    pub cosigners: Vec<String>,
    /// Entries after the last signed checkpoint (in-place verification
    /// only: hash-chained and checked, but not yet signed; bundles always
    /// end at a checkpoint).
    pub uncovered: u64,
}

impl Report {
    /// The report as the JSON object `vigil-verify --json` and
    /// `vigil audit verify --json` print under `bundle` / `ledger`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "origin": self.origin,
            "from": self.from,
            "to": self.to,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "payloads_checked": self.payloads_checked,
            "payloads_absent": self.payloads_absent,
            "erasures": self.erasures,
            "signed_approvals": self.signed_approvals,
            "earlier_checkpoints": self.earlier,
            "held_consistent": self.held,
            "node_keys": self.keys,
            "cosigners": self.cosigners,
            "uncovered": self.uncovered,
        })
    }
}

impl Failure {
    /// The failure as the JSON object the verifiers print with `--json`:
    /// `{"valid": false, "failure": {location, index, reason}, "error"}`,
    /// where `location` is `header`, `checkpoint` or `held` (with the tree
    /// size as `index`) or `entry` (with its index).
    pub fn to_json(&self) -> serde_json::Value {
        let (location, index) = match self.location {
            Location::Header => ("header", None),
            Location::Checkpoint(size) => ("checkpoint", Some(size)),
            Location::Entry(index) => ("entry", Some(index)),
            Location::Held(size) => ("held", Some(size)),
        };
        serde_json::json!({
            "valid": false,
            "failure": { "location": location, "index": index, "reason": self.reason },
            "error": format!("INVALID: {self}"),
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "valid: {} entries ({}..{}) of {}, {} signed checkpoints, {} payloads checked, {} payloads absent, {} erasures, {} signed approvals",
            self.entries,
            self.from,
            self.to,
            self.origin,
            self.checkpoints,
            self.payloads_checked,
            self.payloads_absent,
            self.erasures,
            self.signed_approvals
        )?;
        if self.keys > 1 {
            write!(
                f,
                "; {} node keys, {} handover{} followed",
                self.keys,
                self.keys - 1,
                if self.keys == 2 { "" } else { "s" }
            )?;
        }
        if !self.cosigners.is_empty() {
            write!(
                f,
                "; newest checkpoint cosigned by {} witness{} ({})",
                self.cosigners.len(),
                if self.cosigners.len() == 1 { "" } else { "es" },
                self.cosigners.join(", ")
            )?;
        }
        if self.held > 0 {
            write!(
                f,
                "; consistent with {} held checkpoint{}",
                self.held,
                if self.held == 1 { "" } else { "s" }
            )?;
        }
        Ok(())
    }
}

fn b64(h: &Hash) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(h)
}

/// A checkpoint the node signed at or before the first entry of a bundle,
/// with the RFC 9162 consistency proof from it to the bundle's last
/// checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earlier {
    /// Its tree size.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// Consistency proof from `(size, root)` to the last checkpoint.
    pub proof: Vec<Hash>,
}

/// The header every verification starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The log's origin.
    pub origin: String,
    /// The node's first key, from which the chain of handovers starts
    /// (the only key when the log was never handed over).
    pub public_key: Vec<u8>,
    /// First entry index.
    pub from: u64,
    /// One past the last entry index.
    pub to: u64,
    /// Hash of entry `from - 1` (zeros when `from == 0`).
    pub prefix_prev: Hash,
    /// The frontier of the tree of `from` entries.
    pub frontier: Vec<Hash>,
    /// Every node key handover up to the end of the range, in order.
    pub handovers: Vec<HandoverRecord>,
}

/// The streaming verifier. Feed [`Verifier::checkpoint`] for every
/// checkpoint, then [`Verifier::entry`] for every entry, then call
/// [`Verifier::finish`]. The first error returned is the verdict.
pub struct Verifier<'k> {
    pinned: &'k CompositePublicKey,
    /// The node keys, followed from the header's first key.
    chain: KeyChain,
    /// The pinned key's position in `chain`.
    pinned_at: usize,
    /// The last key (position) that signed the newest checkpoint so far.
    newest_signer: Option<usize>,
    /// The newest checkpoint's note, for its cosignatures.
    newest_note: Option<String>,
    /// The witnesses whose cosignatures count, and how many must cosign
    /// the newest checkpoint.
    witnessing: Option<(Vec<VerifierKey>, usize)>,
    origin: String,
    from: u64,
    to: u64,
    next: u64,
    prev_hash: Hash,
    last_ts: u64,
    frontier: Frontier,
    pending_checkpoints: VecDeque<Checkpoint>,
    last_checkpoint: Option<Checkpoint>,
    /// A checkpoint whose size was just reached, with the recomputed root.
    pending_root: Option<(Checkpoint, Hash)>,
    /// Index `k` whose link from `k-1` was broken, awaiting the next entry.
    pending_break: Option<u64>,
    /// A bad consistency proof, reported only if nothing more specific is found.
    deferred: Option<Failure>,
    committed: HashSet<u64>,
    present: HashSet<u64>,
    entries_started: bool,
    /// A checkpoint with a `vigil-previous` line was seen: all later ones
    /// must carry one too.
    chained: bool,
    /// The previous checkpoint named by the bundle's first one.
    first_previous: Option<(u64, Hash)>,
    /// Earlier checkpoints by size, once their proofs verified (`None`
    /// for inputs without that section).
    earlier: Option<BTreeMap<u64, Hash>>,
    /// Held checkpoints inside the range, checked when their size is reached.
    held_pending: BTreeMap<u64, Vec<Checkpoint>>,
    /// The first held checkpoint found inconsistent, reported after every
    /// check of the bundle itself.
    held_failure: Option<Failure>,
    report: Report,
    /// The last entry checked, whose memory the next one reuses.
    scratch: Option<Entry>,
}

impl<'k> Verifier<'k> {
    /// Starts verification of `header` against the pinned `key`.
    pub fn new(key: &'k CompositePublicKey, header: &Header) -> Result<Self, Failure> {
        check_origin(&header.origin).map_err(|e| Failure::header(e.0))?;
        let chain = KeyChain::from_records(&header.public_key, &header.origin, &header.handovers)
            .map_err(|e| Failure::header(e.0))?;
        let Some(pinned_at) = chain.position(key) else {
            let named = CompositePublicKey::from_bytes(&header.public_key)
                .map(|k| k.fingerprint())
                .unwrap_or_else(|_| "a malformed key".into());
            return Err(Failure::header(if chain.keys().len() == 1 {
                format!(
                    "the bundle names {named} as the node key, but the pinned key is {}",
                    key.fingerprint()
                )
            } else {
                format!(
                    "the pinned key {} is none of the bundle's {} node keys (the first is {named}, the current {})",
                    key.fingerprint(),
                    chain.keys().len(),
                    chain.current().fingerprint()
                )
            }));
        };
        if let Some(h) = chain.handovers().iter().find(|h| h.index >= header.to) {
            return Err(Failure::header(format!(
                "it carries a key handover at entry {}, after the bundle's last entry ({})",
                h.index,
                header.to.wrapping_sub(1)
            )));
        }
        check_origin(&header.origin).map_err(|e| Failure::header(e.0))?;
        if header.from > header.to {
            return Err(Failure::header(format!(
                "range {}..{} is inverted",
                header.from, header.to
            )));
        }
        if header.from == 0 && header.prefix_prev != [0u8; 32] {
            return Err(Failure::header(
                "a bundle starting at entry 0 must have an all-zero prefix hash",
            ));
        }
        let frontier =
            Frontier::from_parts(header.from, header.frontier.clone()).ok_or_else(|| {
                Failure::header(format!(
                    "the frontier has {} hashes but a tree of {} entries needs {}",
                    header.frontier.len(),
                    header.from,
                    header.from.count_ones()
                ))
            })?;
        let keys = chain.keys().len() as u64;
        Ok(Self {
            pinned: key,
            chain,
            pinned_at,
            newest_signer: None,
            newest_note: None,
            witnessing: None,
            origin: header.origin.clone(),
            from: header.from,
            to: header.to,
            next: header.from,
            prev_hash: header.prefix_prev,
            last_ts: 0,
            frontier,
            pending_checkpoints: VecDeque::new(),
            last_checkpoint: None,
            pending_root: None,
            pending_break: None,
            deferred: None,
            committed: HashSet::new(),
            present: HashSet::new(),
            entries_started: false,
            chained: false,
            first_previous: None,
            earlier: None,
            held_pending: BTreeMap::new(),
            held_failure: None,
            scratch: None,
            report: Report {
                origin: header.origin.clone(),
                from: header.from,
                to: header.to,
                keys,
                ..Report::default()
            },
        })
    }

    /// Opens a checkpoint note of (claimed) `size`, which must carry a valid
    /// signature by every node key valid at that size. Returns the body and
    /// the position of the last of those keys.
    fn open_note(&self, note: &str, size: u64) -> Result<(Checkpoint, usize), String> {
        let signers = self.chain.signers(size);
        let last = *signers.end();
        let mut body = None;
        for i in signers {
            let key = &self.chain.keys()[i];
            let cp = SignedCheckpoint::open(note, key).map_err(|e| {
                if self.chain.keys().len() == 1 {
                    e.0
                } else {
                    format!(
                        "{e} (a checkpoint of size {size} must be signed by node key {}, {})",
                        i + 1,
                        key.fingerprint()
                    )
                }
            })?;
            body = Some(cp.checkpoint);
        }
        let cp = body.ok_or_else(|| "no node key is valid at this size".to_string())?;
        if cp.size != size {
            return Err(format!("its size {} is not the size {size} read", cp.size));
        }
        Ok((cp, last))
    }

    /// Checks one signed checkpoint note and the consistency proof from the
    /// previous checkpoint (empty for the first). Checkpoints come before
    /// entries, by increasing size.
    pub fn checkpoint(&mut self, note: &str, consistency: &[Hash]) -> Result<(), Failure> {
        let claimed = note
            .rfind("\n\n")
            .and_then(|i| Checkpoint::parse_body(&note[..i + 1]).ok())
            .map(|c| c.size)
            .unwrap_or(0);
        if self.entries_started {
            return Err(Failure::checkpoint(
                claimed,
                "checkpoints must come before the entries",
            ));
        }
        let (cp, signer) = self
            .open_note(note, claimed)
            .map_err(|e| Failure::checkpoint(claimed, e))?;
        self.newest_signer = Some(signer);
        self.newest_note = Some(note.to_string());
        if cp.origin != self.origin {
            return Err(Failure::checkpoint(
                cp.size,
                format!(
                    "origin `{}` differs from the bundle's `{}`",
                    cp.origin, self.origin
                ),
            ));
        }
        if let Some(last) = &self.last_checkpoint {
            if cp.size <= last.size {
                return Err(Failure::checkpoint(
                    cp.size,
                    format!(
                        "checkpoints must grow, but it follows the checkpoint of size {}",
                        last.size
                    ),
                ));
            }
            if !verify_consistency(last.size, &last.root, cp.size, &cp.root, consistency)
                && self.deferred.is_none()
            {
                self.deferred = Some(Failure::checkpoint(
                    cp.size,
                    format!(
                        "the consistency proof from the checkpoint of size {} does not verify",
                        last.size
                    ),
                ));
            }
        } else if !consistency.is_empty() && self.deferred.is_none() {
            self.deferred = Some(Failure::checkpoint(
                cp.size,
                "the first checkpoint must not carry a consistency proof",
            ));
        }
        self.check_chain(&cp)?;
        if cp.size <= self.from {
            return Err(Failure::checkpoint(
                cp.size,
                format!(
                    "it covers no entry of the bundle, which starts at entry {}",
                    self.from
                ),
            ));
        }
        if cp.size > self.to {
            return Err(Failure::entry(
                self.to,
                format!(
                    "entries {}..{} are missing: the checkpoint of size {} covers them but the ledger ends at {}",
                    self.to,
                    cp.size - 1,
                    cp.size,
                    self.to
                ),
            ));
        }
        self.last_checkpoint = Some(cp.clone());
        self.pending_checkpoints.push_back(cp);
        self.report.checkpoints += 1;
        Ok(())
    }

    /// Checks that `cp` names the checkpoint before it in the bundle as the
    /// previous one the node signed, so that the bundle leaves none out.
    fn check_chain(&mut self, cp: &Checkpoint) -> Result<(), Failure> {
        match (&self.last_checkpoint, cp.previous) {
            (Some(last), Some(previous)) if previous != (last.size, last.root) => {
                return Err(Failure::checkpoint(
                    cp.size,
                    format!(
                        "it names the checkpoint of size {} as the previous one the node signed, but the bundle's previous checkpoint has size {}{}: the bundle leaves out a checkpoint the node signed, or the node signed two histories",
                        previous.0,
                        last.size,
                        if previous.0 == last.size { " and another root" } else { "" }
                    ),
                ));
            }
            (None, Some((size, root))) => {
                if size > self.from {
                    return Err(Failure::checkpoint(
                        cp.size,
                        format!(
                            "it names the checkpoint of size {size} as the previous one the node signed, which the bundle (from entry {}) leaves out",
                            self.from
                        ),
                    ));
                }
                if size == 0 && root != empty_root() {
                    return Err(Failure::checkpoint(
                        cp.size,
                        "it names a previous checkpoint of size 0 whose root is not the empty tree's",
                    ));
                }
                self.first_previous = Some((size, root));
            }
            (_, None) if self.chained => {
                return Err(Failure::checkpoint(
                    cp.size,
                    "it lacks the `vigil-previous` line that the checkpoints before it carry",
                ));
            }
            _ => {}
        }
        self.chained |= cp.previous.is_some();
        Ok(())
    }

    /// Checks the earlier checkpoints (sizes up to the first entry), each
    /// with its consistency proof to the last checkpoint. Called once, after
    /// the checkpoints and before the entries, for inputs that carry them.
    pub fn earlier(&mut self, records: &[Earlier]) -> Result<(), Failure> {
        let mut known = BTreeMap::new();
        let mut last_size = 0;
        for rec in records {
            let fail = |reason: String| Failure::checkpoint(rec.size, reason);
            if rec.size <= last_size || rec.size > self.from {
                return Err(fail(format!(
                    "earlier checkpoints must grow and end at the bundle's first entry ({})",
                    self.from
                )));
            }
            let Some(last) = &self.last_checkpoint else {
                return Err(fail(
                    "the bundle carries earlier checkpoints but no signed checkpoint".into(),
                ));
            };
            if !verify_consistency(rec.size, &rec.root, last.size, &last.root, &rec.proof) {
                return Err(fail(format!(
                    "the consistency proof from this earlier checkpoint to the last checkpoint (size {}) does not verify",
                    last.size
                )));
            }
            known.insert(rec.size, rec.root);
            last_size = rec.size;
        }
        if let (Some((size, root)), Some(first)) = (
            self.first_previous,
            self.pending_checkpoints.front().map(|c| c.size),
        ) {
            let latest = known.iter().next_back().map(|(s, r)| (*s, *r));
            if size > 0 && latest != Some((size, root)) {
                return Err(Failure::checkpoint(
                    first,
                    format!(
                        "it names the checkpoint of size {size} as the previous one the node signed, but the bundle's latest earlier checkpoint is {}",
                        latest.map_or("none".to_string(), |(s, _)| format!("of size {s} (or has another root)"))
                    ),
                ));
            }
            if size == 0 && !known.is_empty() {
                return Err(Failure::checkpoint(
                    first,
                    "it claims to be the node's first checkpoint, but the bundle carries earlier ones",
                ));
            }
        }
        self.report.earlier = known.len() as u64;
        self.earlier = Some(known);
        Ok(())
    }

    /// Takes a held checkpoint note (kept by the caller from earlier) to
    /// prove the input consistent with. Called after the checkpoints (and
    /// earlier checkpoints), before the entries. A note that does not verify,
    /// is of another log, or is newer than the input cannot be compared and
    /// is refused as [`VerifyError::Unverifiable`]; a checkpoint the input's
    /// history does not extend fails verification (at the end, after the
    /// input's own checks), naming it.
    pub fn held(&mut self, note: &str) -> Result<(), VerifyError> {
        let claimed = note
            .rfind("\n\n")
            .and_then(|i| Checkpoint::parse_body(&note[..i + 1]).ok())
            .map(|c| c.size)
            .unwrap_or(0);
        let (cp, _) = self.open_note(note, claimed).map_err(|e| {
            VerifyError::Unverifiable(format!(
                "the held checkpoint does not verify with the node keys the bundle's chain holds from the pinned key: {e}"
            ))
        })?;
        if cp.origin != self.origin {
            return Err(VerifyError::Unverifiable(format!(
                "the held checkpoint is of the log `{}`, the bundle of `{}`",
                cp.origin, self.origin
            )));
        }
        if cp.size > self.to {
            return Err(VerifyError::Unverifiable(format!(
                "the held checkpoint (origin {}, size {}) is newer than the bundle, which ends at size {}: export a bundle that reaches at least size {} to compare them",
                cp.origin, cp.size, self.to, cp.size
            )));
        }
        if self.entries_started {
            return Err(VerifyError::Unverifiable(
                "held checkpoints must be given before the entries".into(),
            ));
        }
        let known = if cp.size == 0 {
            empty_root()
        } else if cp.size == self.from {
            // Checked against the signed roots through the entries.
            self.frontier.root()
        } else if cp.size > self.from {
            self.held_pending.entry(cp.size).or_default().push(cp);
            return Ok(());
        } else {
            let Some(earlier) = &self.earlier else {
                return Err(VerifyError::Unverifiable(format!(
                    "the held checkpoint of size {} comes before the bundle's first entry ({}), and this bundle (format version 1) carries no consistency proofs from earlier checkpoints: export it again",
                    cp.size, self.from
                )));
            };
            match earlier.get(&cp.size) {
                Some(root) => *root,
                None => {
                    self.held_fails(Failure::held(
                        &cp,
                        "is not among the checkpoints the bundle says the node signed: the node's history forks from it",
                    ));
                    return Ok(());
                }
            }
        };
        self.compare_held(&cp, known);
        Ok(())
    }

    fn compare_held(&mut self, cp: &Checkpoint, root: Hash) {
        if cp.root == root {
            self.report.held += 1;
        } else {
            self.held_fails(Failure::held(
                cp,
                format!(
                    "is not extended by the bundle, whose tree of {} entries has root {}: the log was forked or rewritten after the held checkpoint",
                    cp.size,
                    b64(&root)
                ),
            ));
        }
    }

    fn held_fails(&mut self, f: Failure) {
        self.held_failure.get_or_insert(f);
    }

    /// Requires `quorum` of the witnesses named by `keys` (C2SP vkeys) to
    /// have cosigned the newest checkpoint (checked at the end).
    pub fn witnesses(&mut self, keys: Vec<VerifierKey>, quorum: usize) {
        self.witnessing = Some((keys, quorum));
    }

    /// Checks the next entry (its canonical bytes) and its payload
    /// (`salt`, `data`) if the input carries one.
    pub fn entry(
        &mut self,
        bytes: &[u8],
        payload: Option<(&[u8; SALT_LEN], &[u8])>,
    ) -> Result<(), Failure> {
        self.entries_started = true;
        let expected = self.next;
        if expected >= self.to {
            return Err(Failure::entry(
                expected,
                format!(
                    "there are more entries than the {} announced",
                    self.to - self.from
                ),
            ));
        }
        let e = match self.scratch.take() {
            Some(mut e) => Entry::decode_into(bytes, &mut e).map(|()| e),
            None => Entry::decode(bytes),
        }
        .map_err(|err| Failure::entry(expected, format!("cannot be decoded: {err}")))?;
        if e.index != expected {
            return Err(if e.index > expected {
                Failure::entry(
                    expected,
                    format!(
                        "entry {expected} is missing (entry {} is in its place)",
                        e.index
                    ),
                )
            } else {
                Failure::entry(
                    expected,
                    format!(
                        "position {expected} holds entry {}: entries were reordered or duplicated",
                        e.index
                    ),
                )
            });
        }
        self.check_handover(&e)?;
        let leaf = leaf_hash(bytes);
        let link_ok = e.prev == self.prev_hash;
        if let Some(k) = self.pending_break.take() {
            return Err(if link_ok {
                Failure::entry(
                    k - 1,
                    format!("entry {} was altered: its hash does not match the `prev` recorded in entry {k}", k - 1),
                )
            } else {
                Failure::entry(
                    k,
                    format!(
                        "entry {k} was altered: its `prev` does not match entry {} and its hash does not match the `prev` of entry {}",
                        k - 1,
                        k + 1
                    ),
                )
            });
        }
        if !link_ok {
            if expected == self.from {
                return Err(Failure::entry(
                    expected,
                    if expected == 0 {
                        "entry 0 must have an all-zero `prev`".to_string()
                    } else {
                        "its `prev` does not match the bundle's prefix hash".to_string()
                    },
                ));
            }
            self.pending_break = Some(expected);
        }
        if let Some((cp, root)) = self.pending_root.take() {
            if self.pending_break.is_none() && cp.root != root {
                return Err(root_mismatch(&cp));
            }
        }
        if e.timestamp_ns < self.last_ts {
            return Err(Failure::entry(
                expected,
                "its timestamp is earlier than the previous entry's",
            ));
        }
        self.check_payload(&e, payload)?;
        self.frontier.push(leaf);
        self.prev_hash = leaf;
        self.last_ts = e.timestamp_ns;
        self.scratch = Some(e);
        self.next += 1;
        self.report.entries += 1;
        let held = if self.held_pending.is_empty() {
            None
        } else {
            self.held_pending.remove(&self.next)
        };
        if let Some(held) = held {
            let root = self.frontier.root();
            for cp in held {
                self.compare_held(&cp, root);
            }
        }
        if self
            .pending_checkpoints
            .front()
            .is_some_and(|c| c.size == self.next)
        {
            if let Some(cp) = self.pending_checkpoints.pop_front() {
                self.pending_root = Some((cp, self.frontier.root()));
            }
        }
        Ok(())
    }

    /// A `key.rotated` entry must be the handover the header's chain holds
    /// at its index, and every handover in the range must be such an entry.
    fn check_handover(&self, e: &Entry) -> Result<(), Failure> {
        let expected = self.chain.at(e.index);
        if e.kind != KIND_KEY_ROTATED {
            return match expected {
                Some(_) => Err(Failure::entry(
                    e.index,
                    format!(
                        "the bundle's key chain has a handover at entry {}, but that entry is a `{}`",
                        e.index, e.kind
                    ),
                )),
                None => Ok(()),
            };
        }
        let found = Handover::from_entry(e)
            .map_err(|err| Failure::entry(e.index, err.0))?
            .ok_or_else(|| Failure::entry(e.index, "not a key.rotated entry"))?;
        match expected {
            Some(h) if *h == found => Ok(()),
            Some(_) => Err(Failure::entry(
                e.index,
                "this key.rotated entry differs from the handover the bundle's key chain holds at its index",
            )),
            None => Err(Failure::entry(
                e.index,
                format!(
                    "a key.rotated entry (to key {}) that the bundle's key chain leaves out",
                    found.new.fingerprint()
                ),
            )),
        }
    }

    fn check_payload(
        &mut self,
        e: &Entry,
        payload: Option<(&[u8; SALT_LEN], &[u8])>,
    ) -> Result<(), Failure> {
        let i = e.index;
        match (&e.payload, payload) {
            (None, Some(_)) => {
                return Err(Failure::entry(
                    i,
                    "a payload is attached but the entry commits to none",
                ));
            }
            (Some(c), Some((salt, data))) => {
                if !c.opens(salt, data) {
                    return Err(Failure::entry(
                        i,
                        "its payload does not match the entry's commitment",
                    ));
                }
                self.present.insert(i);
                self.report.payloads_checked += 1;
            }
            (Some(_), None) => self.report.payloads_absent += 1,
            (None, None) => {}
        }
        if e.payload.is_some() {
            self.committed.insert(i);
        }
        if crate::approval::check_entry(e).map_err(|reason| Failure::entry(i, reason))? {
            self.report.signed_approvals += 1;
        }
        if e.kind == crate::entry::KIND_PAYLOAD_ERASED {
            let k = e.erased_index().ok_or_else(|| {
                Failure::entry(
                    i,
                    "a payload.erased entry must name the erased entry as details.index",
                )
            })?;
            if e.payload.is_some() {
                return Err(Failure::entry(
                    i,
                    "a payload.erased entry never has a payload, but this one commits to one",
                ));
            }
            if e.subject != format!("entry:{k}") {
                return Err(Failure::entry(
                    i,
                    format!(
                        "it records the erasure of entry {k} (details.index), but its subject is `{}`, not `entry:{k}`",
                        e.subject
                    ),
                ));
            }
            if k >= i {
                return Err(Failure::entry(
                    i,
                    format!("it records the erasure of entry {k}, which comes after it"),
                ));
            }
            if k >= self.from {
                if !self.committed.contains(&k) {
                    return Err(Failure::entry(
                        i,
                        format!("it records the erasure of entry {k}, which has no payload"),
                    ));
                }
                if self.present.contains(&k) {
                    return Err(Failure::entry(
                        i,
                        format!("it records the erasure of entry {k}, but that payload is still present"),
                    ));
                }
            }
            self.report.erasures += 1;
        }
        Ok(())
    }

    /// Ends verification: every announced entry seen, every checkpoint
    /// reached, the last entry covered by a signed checkpoint.
    pub fn finish(self) -> Result<Report, Failure> {
        self.end(false)
    }

    /// Like [`Verifier::finish`], but entries after the last signed
    /// checkpoint are allowed and counted in [`Report::uncovered`]: a live
    /// ledger's tail that no checkpoint covers yet is not tampering.
    pub fn finish_allowing_tail(self) -> Result<Report, Failure> {
        self.end(true)
    }

    fn end(mut self, allow_tail: bool) -> Result<Report, Failure> {
        if let Some(k) = self.pending_break.take() {
            return Err(Failure::entry(
                k - 1,
                format!(
                    "entry {} was altered (or the `prev` of entry {k}, the last one): its hash does not match the `prev` recorded in entry {k}",
                    k - 1
                ),
            ));
        }
        if let Some((cp, root)) = self.pending_root.take() {
            if cp.root != root {
                return Err(root_mismatch(&cp));
            }
        }
        if self.next < self.to {
            return Err(Failure::entry(
                self.next,
                format!(
                    "entry {} is missing: the input ends after entry {} but announces entries up to {}",
                    self.next,
                    self.next.wrapping_sub(1),
                    self.to - 1
                ),
            ));
        }
        if let Some(cp) = self.pending_checkpoints.front() {
            return Err(Failure::checkpoint(
                cp.size,
                "its size was never reached by the entries",
            ));
        }
        if self.to > self.from {
            let covered = self.last_checkpoint.as_ref().map_or(self.from, |c| c.size);
            if covered < self.to && allow_tail {
                self.report.uncovered = self.to - covered;
            } else if covered < self.to {
                return Err(Failure::entry(
                    covered,
                    format!(
                        "entries {covered}..{} are not covered by any signed checkpoint",
                        self.to - 1
                    ),
                ));
            }
        }
        if let Some(signer) = self.newest_signer {
            if signer < self.pinned_at {
                return Err(Failure::checkpoint(
                    self.last_checkpoint.as_ref().map_or(0, |c| c.size),
                    format!(
                        "the newest checkpoint is signed by node key {} ({}), which the pinned key {} replaced later: no checkpoint here is signed by the pinned key or a successor",
                        signer + 1,
                        self.chain.keys()[signer].fingerprint(),
                        self.pinned.fingerprint()
                    ),
                ));
            }
        }
        if self.report.checkpoints == 0 && !allow_tail {
            return Err(Failure::header(
                "the bundle carries no signed checkpoint, so nothing in it is signed",
            ));
        }
        if let Some(f) = self.deferred.take() {
            return Err(f);
        }
        if let Some(f) = self.held_failure.take() {
            return Err(f);
        }
        if let Some((keys, quorum)) = self.witnessing.take() {
            let size = self.last_checkpoint.as_ref().map_or(0, |c| c.size);
            let note = self.newest_note.take().unwrap_or_default();
            let names = cosigners(&note, &keys).map_err(|e| Failure::checkpoint(size, e.0))?;
            if names.len() < quorum {
                return Err(Failure::checkpoint(
                    size,
                    format!(
                        "the newest checkpoint is cosigned by {} of the required witnesses{}, but the quorum is {quorum}",
                        names.len(),
                        if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) }
                    ),
                ));
            }
            self.report.cosigners = names;
        }
        Ok(self.report)
    }
}

fn root_mismatch(cp: &Checkpoint) -> Failure {
    Failure::entry(
        cp.size - 1,
        format!(
            "the Merkle root over entries 0..{} does not match the signed checkpoint of size {}: an entry up to {} was altered and the chain rewritten after it",
            cp.size - 1,
            cp.size,
            cp.size - 1
        ),
    )
}

/// Why a ledger or bundle could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The data was read but does not verify.
    #[error("verification failed at {0}")]
    Failed(Failure),
    /// The input is not a well-formed bundle or proof.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// The input could not be read.
    #[error("{0}")]
    Ledger(#[from] crate::LedgerError),
    /// A held checkpoint cannot be compared with the input (it does not
    /// verify, is of another log, or is newer than the input).
    #[error("{0}")]
    Unverifiable(String),
}

impl From<Failure> for VerifyError {
    fn from(f: Failure) -> Self {
        Self::Failed(f)
    }
}

/// Verifies a ledger in place, with the same [`Verifier`] as bundles, against
/// the pinned public key. Payloads are read from the payload store.
pub fn verify_ledger(ledger: &Ledger, key: &CompositePublicKey) -> Result<Report, VerifyError> {
    verify_ledger_progress(ledger, key, &mut |_, _| {})
}

/// Like [`verify_ledger`], calling `progress(done, total)` every 4096
/// entries and at the end.
pub fn verify_ledger_progress(
    ledger: &Ledger,
    key: &CompositePublicKey,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, VerifyError> {
    let size = ledger.size();
    let notes = ledger.checkpoint_notes()?;
    // A ledger with no checkpoint yet has no signed origin: its entries
    // are all the uncovered tail.
    let origin = ledger
        .origin()?
        .unwrap_or_else(|| "vigil.invalid/unsigned".to_string());
    let handovers = ledger.handovers()?;
    let first = handovers
        .first()
        .map_or(key.as_bytes(), |h| h.old.as_bytes())
        .to_vec();
    let header = Header {
        origin,
        public_key: first,
        from: 0,
        to: size,
        prefix_prev: [0; 32],
        frontier: Vec::new(),
        handovers: handovers.iter().map(HandoverRecord::from).collect(),
    };
    let mut v = Verifier::new(key, &header)?;
    let mut last_size = None;
    for (cp_size, note) in &notes {
        // A damaged store may not yield a proof; the verifier then names
        // the damage more precisely from the entries.
        let proof = match last_size {
            Some(m) => ledger.consistency_proof(m, *cp_size).unwrap_or_default(),
            None => Vec::new(),
        };
        v.checkpoint(note, &proof)?;
        last_size = Some(*cp_size);
    }
    for (done, raw) in ledger.raw_entries(0..size).enumerate() {
        if done % 4096 == 0 {
            progress(done as u64, size);
        }
        let raw = raw?;
        let payload = match Entry::decode(&raw) {
            Ok(e) => ledger.payload_of(&e).ok().flatten(),
            Err(_) => None,
        };
        v.entry(&raw, payload.as_ref().map(|p| (&p.salt, p.data.as_slice())))?;
    }
    progress(size, size);
    Ok(v.finish_allowing_tail()?)
}
