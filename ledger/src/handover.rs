//! Node key rotation: the handover statement by which a node key passes the
//! log to its successor, the `key.rotated` entry that records it, and the
//! key chain a verifier follows from the key it pinned.
//!
//! The old key signs (context `vigil/key-handover/v1`) the statement
//!
//! ```text
//! vigil key handover v1
//! <origin>
//! <index of the key.rotated entry>
//! <base64 old composite public key>
//! <base64 new composite public key>
//! ```
//!
//! Key `i` of a chain signs the checkpoints of sizes `start_i..=end_i`, where
//! `end_i = h_i + 1` (`h_i` the index of its handover entry) and
//! `start_{i+1} = end_i`: the checkpoint that first covers a handover entry
//! carries both keys' signatures, and the old key is never valid for a
//! larger tree. The format is specified in `docs/ledger-format.md` §1.6.

use base64::Engine as _;
use vigil_crypto::{context, CompositePublicKey, SigningKey};

use crate::entry::{Entry, NewEntry};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The kind of the entry that records a handover.
pub const KIND_KEY_ROTATED: &str = "key.rotated";
/// The decision word of that entry.
pub const DECISION_ROTATE: &str = "rotate";
/// Most handovers a bundle may carry.
pub const MAX_HANDOVERS: usize = 255;
const STATEMENT_HEADER: &str = "vigil key handover v1";

/// One handover: at entry `index` of log `origin`, `old` passed the log
/// to `new`, signed by `old`.
#[derive(Clone)]
pub struct Handover {
    /// The log's origin.
    pub origin: String,
    /// Index of the `key.rotated` entry.
    pub index: u64,
    /// The key handing over.
    pub old: CompositePublicKey,
    /// The key taking over.
    pub new: CompositePublicKey,
    /// The old key's composite signature over [`Handover::statement`].
    pub signature: Vec<u8>,
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover")
            .field("origin", &self.origin)
            .field("index", &self.index)
            .field("old", &self.old.fingerprint())
            .field("new", &self.new.fingerprint())
            .finish()
    }
}

impl PartialEq for Handover {
    fn eq(&self, other: &Self) -> bool {
        self.origin == other.origin
            && self.index == other.index
            && self.old.as_bytes() == other.old.as_bytes()
            && self.new.as_bytes() == other.new.as_bytes()
            && self.signature == other.signature
    }
}

/// Why a handover is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandoverError(pub String);

fn err(msg: impl Into<String>) -> HandoverError {
    HandoverError(msg.into())
}

/// The text the old key signs.
pub fn statement(
    origin: &str,
    index: u64,
    old: &CompositePublicKey,
    new: &CompositePublicKey,
) -> String {
    format!(
        "{STATEMENT_HEADER}\n{origin}\n{index}\n{}\n{}\n",
        B64.encode(old.as_bytes()),
        B64.encode(new.as_bytes())
    )
}

impl Handover {
    /// `old` signs the handover of log `origin` to `new` at entry `index`.
    pub fn sign(
        origin: &str,
        index: u64,
        old: &SigningKey,
        new: &CompositePublicKey,
    ) -> Result<Self, HandoverError> {
        if old.public_key().as_bytes() == new.as_bytes() {
            return Err(err("the new node key is the old one"));
        }
        let text = statement(origin, index, old.public_key(), new);
        let signature = old
            .sign(text.as_bytes(), context::KEY_HANDOVER)
            .map_err(|e| err(format!("signing the handover failed: {e}")))?;
        Ok(Self {
            origin: origin.to_string(),
            index,
            old: old.public_key().clone(),
            new: new.clone(),
            signature: signature.as_bytes().to_vec(),
        })
    }

    /// Checks the old key's signature.
    pub fn verify(&self) -> Result<(), HandoverError> {
        if self.old.as_bytes() == self.new.as_bytes() {
            return Err(err("it hands the log over to the same key"));
        }
        let text = statement(&self.origin, self.index, &self.old, &self.new);
        self.old
            .verify_bytes(text.as_bytes(), context::KEY_HANDOVER, &self.signature)
            .map_err(|e| {
                err(format!(
                    "the handover at entry {} is not signed by the key it hands over ({}): {e}",
                    self.index,
                    self.old.fingerprint()
                ))
            })
    }

    /// The entry recording this handover (its index is assigned on append
    /// and must equal [`Handover::index`]).
    pub fn new_entry(&self, actor: &str) -> NewEntry {
        NewEntry::new(
            KIND_KEY_ROTATED,
            actor,
            format!("key:{}", self.new.fingerprint()),
            DECISION_ROTATE,
        )
        .details(serde_json::json!({
            "origin": self.origin,
            "index": self.index,
            "old_key": B64.encode(self.old.as_bytes()),
            "new_key": B64.encode(self.new.as_bytes()),
            "signature": B64.encode(&self.signature),
        }))
    }

    /// Reads the handover a `key.rotated` entry records (`None` for other
    /// kinds). The signature is not checked here.
    pub fn from_entry(e: &Entry) -> Result<Option<Self>, HandoverError> {
        if e.kind != KIND_KEY_ROTATED {
            return Ok(None);
        }
        let v: serde_json::Value = serde_json::from_str(&e.details)
            .map_err(|_| err("a key.rotated entry's details are not JSON"))?;
        let field = |name: &str| {
            v.get(name)
                .and_then(|x| x.as_str())
                .ok_or_else(|| err(format!("a key.rotated entry lacks details.{name}")))
        };
        let key = |name: &str| -> Result<CompositePublicKey, HandoverError> {
            let bytes = B64
                .decode(field(name)?)
                .map_err(|_| err(format!("details.{name} is not base64")))?;
            CompositePublicKey::from_bytes(&bytes)
                .map_err(|e| err(format!("details.{name} is not a composite public key: {e}")))
        };
        let index = v
            .get("index")
            .and_then(|x| x.as_u64())
            .ok_or_else(|| err("a key.rotated entry lacks details.index"))?;
        if index != e.index {
            return Err(err(format!(
                "the key.rotated entry at index {} says it is at index {index}",
                e.index
            )));
        }
        if e.decision != DECISION_ROTATE {
            return Err(err(format!(
                "a key.rotated entry has decision `{}`, not `{DECISION_ROTATE}`",
                e.decision
            )));
        }
        if e.payload.is_some() {
            return Err(err("a key.rotated entry never has a payload"));
        }
        let h = Self {
            origin: field("origin")?.to_string(),
            index,
            old: key("old_key")?,
            new: key("new_key")?,
            signature: B64
                .decode(field("signature")?)
                .map_err(|_| err("details.signature is not base64"))?,
        };
        if e.subject != format!("key:{}", h.new.fingerprint()) {
            return Err(err(format!(
                "the key.rotated entry at index {} has subject `{}`, not the new key's fingerprint",
                e.index, e.subject
            )));
        }
        Ok(Some(h))
    }
}

/// A handover as a bundle header carries it: the old key and the origin
/// are implied by the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverRecord {
    /// Index of the `key.rotated` entry.
    pub index: u64,
    /// The new key's encoding.
    pub new_key: Vec<u8>,
    /// The old key's signature over the statement.
    pub signature: Vec<u8>,
}

impl From<&Handover> for HandoverRecord {
    fn from(h: &Handover) -> Self {
        Self {
            index: h.index,
            new_key: h.new.as_bytes().to_vec(),
            signature: h.signature.clone(),
        }
    }
}

/// The keys of a log in order, from the first to the current, with the
/// handovers between them; built and checked from the handovers alone.
#[derive(Debug, Clone)]
pub struct KeyChain {
    keys: Vec<CompositePublicKey>,
    handovers: Vec<Handover>,
}

impl KeyChain {
    /// A chain of one key.
    pub fn single(first: CompositePublicKey) -> Self {
        Self {
            keys: vec![first],
            handovers: Vec::new(),
        }
    }

    /// Follows `handovers` from `first`: each must be signed by the key
    /// before it, of `origin`, at a growing index.
    pub fn follow(
        first: CompositePublicKey,
        origin: &str,
        handovers: Vec<Handover>,
    ) -> Result<Self, HandoverError> {
        if handovers.len() > MAX_HANDOVERS {
            return Err(err(format!(
                "{} handovers is more than the {MAX_HANDOVERS} allowed",
                handovers.len()
            )));
        }
        let mut chain = Self::single(first);
        for h in handovers {
            if h.origin != origin {
                return Err(err(format!(
                    "the handover at entry {} is of the log `{}`, not `{origin}`",
                    h.index, h.origin
                )));
            }
            chain = chain.extended(h)?;
        }
        Ok(chain)
    }

    /// Follows handover records (as a bundle carries them) from the key
    /// encoded as `first`.
    pub fn from_records(
        first: &[u8],
        origin: &str,
        records: &[HandoverRecord],
    ) -> Result<Self, HandoverError> {
        if records.len() > MAX_HANDOVERS {
            return Err(err(format!(
                "{} handovers is more than the {MAX_HANDOVERS} allowed",
                records.len()
            )));
        }
        let parse = |bytes: &[u8], what: &str| {
            CompositePublicKey::from_bytes(bytes)
                .map_err(|e| err(format!("{what} is not a composite public key: {e}")))
        };
        let first = parse(first, "the first node key")?;
        let mut old = first.clone();
        let mut handovers = Vec::with_capacity(records.len());
        for r in records {
            let new = parse(
                &r.new_key,
                &format!("the key taking over at entry {}", r.index),
            )?;
            handovers.push(Handover {
                origin: origin.to_string(),
                index: r.index,
                old: old.clone(),
                new: new.clone(),
                signature: r.signature.clone(),
            });
            old = new;
        }
        Self::follow(first, origin, handovers)
    }

    /// This chain with one more handover, which must be signed by the
    /// current key, at a later index, to a key not used before (only the
    /// new handover is checked).
    pub fn extended(mut self, h: Handover) -> Result<Self, HandoverError> {
        let current = self.current();
        if h.old.as_bytes() != current.as_bytes() {
            return Err(err(format!(
                "the handover at entry {} is from key {}, but the key in force then is {}",
                h.index,
                h.old.fingerprint(),
                current.fingerprint()
            )));
        }
        if self.handovers.last().is_some_and(|l| h.index <= l.index) {
            return Err(err(format!(
                "the handover at entry {} does not come after the one before it",
                h.index
            )));
        }
        if self.position(&h.new).is_some() {
            return Err(err(format!(
                "the handover at entry {} returns to a key used before",
                h.index
            )));
        }
        h.verify()?;
        self.keys.push(h.new.clone());
        self.handovers.push(h);
        Ok(self)
    }

    /// Every key, first to current.
    pub fn keys(&self) -> &[CompositePublicKey] {
        &self.keys
    }

    /// The handovers, in order.
    pub fn handovers(&self) -> &[Handover] {
        &self.handovers
    }

    /// The first key.
    pub fn first(&self) -> &CompositePublicKey {
        &self.keys[0]
    }

    /// The current key.
    pub fn current(&self) -> &CompositePublicKey {
        &self.keys[self.keys.len() - 1]
    }

    /// The position of `key` in the chain.
    pub fn position(&self, key: &CompositePublicKey) -> Option<usize> {
        self.keys
            .iter()
            .position(|k| k.as_bytes() == key.as_bytes())
    }

    /// The positions of the keys that must sign a checkpoint of `size`
    /// (two where `size` is the one that first covers a handover entry).
    pub fn signers(&self, size: u64) -> std::ops::RangeInclusive<usize> {
        // Key i is valid for sizes start_i..=end_i.
        let first = self
            .handovers
            .iter()
            .position(|h| size <= h.index + 1)
            .unwrap_or(self.handovers.len());
        let last = self
            .handovers
            .iter()
            .position(|h| size < h.index + 1)
            .unwrap_or(self.handovers.len());
        first..=last
    }

    /// The handover recorded at entry `index`, if any.
    pub fn at(&self, index: u64) -> Option<&Handover> {
        self.handovers.iter().find(|h| h.index == index)
    }

    /// Each key's validity as `(key, first size, last size)` (`None`: still
    /// in force), for reports and documentation.
    pub fn validity(&self) -> Vec<(&CompositePublicKey, u64, Option<u64>)> {
        let mut start = 1;
        let mut out = Vec::with_capacity(self.keys.len());
        for (i, k) in self.keys.iter().enumerate() {
            let end = self.handovers.get(i).map(|h| h.index + 1);
            out.push((k, start, end));
            if let Some(e) = end {
                start = e;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_of_two_handovers_and_signers() {
        let (a, b, c) = (
            SigningKey::generate(),
            SigningKey::generate(),
            SigningKey::generate(),
        );
        let h1 = Handover::sign("o", 4, &a, b.public_key()).unwrap();
        let h2 = Handover::sign("o", 9, &b, c.public_key()).unwrap();
        let chain = KeyChain::follow(a.public_key().clone(), "o", vec![h1, h2]).unwrap();
        assert_eq!(chain.keys().len(), 3);
        assert_eq!(chain.signers(3), 0..=0);
        assert_eq!(chain.signers(5), 0..=1);
        assert_eq!(chain.signers(6), 1..=1);
        assert_eq!(chain.signers(10), 1..=2);
        assert_eq!(chain.signers(11), 2..=2);
        assert_eq!(chain.position(c.public_key()), Some(2));
    }

    #[test]
    fn broken_chains_are_refused() {
        let (a, b, c) = (
            SigningKey::generate(),
            SigningKey::generate(),
            SigningKey::generate(),
        );
        // Signed by a key that is not in force.
        let wrong = Handover::sign("o", 4, &c, b.public_key()).unwrap();
        assert!(KeyChain::follow(a.public_key().clone(), "o", vec![wrong]).is_err());
        // A forged signature.
        let mut forged = Handover::sign("o", 4, &a, b.public_key()).unwrap();
        forged.index = 5;
        assert!(KeyChain::follow(a.public_key().clone(), "o", vec![forged]).is_err());
        // Another log.
        let other = Handover::sign("p", 4, &a, b.public_key()).unwrap();
        assert!(KeyChain::follow(a.public_key().clone(), "o", vec![other]).is_err());
        // Back to an earlier key.
        let h1 = Handover::sign("o", 4, &a, b.public_key()).unwrap();
        let back = Handover::sign("o", 6, &b, a.public_key()).unwrap();
        assert!(KeyChain::follow(a.public_key().clone(), "o", vec![h1, back]).is_err());
    }
}
