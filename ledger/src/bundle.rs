//! Export bundles: one binary file with a header (origin, the node's public
//! key, the entry range, and what is needed to recompute roots for a range
//! that does not start at 0), the signed checkpoints with consistency proofs
//! between consecutive ones, the earlier checkpoints (those at or before the
//! range's start) with a consistency proof from each to the bundle's last
//! checkpoint, then every entry with its payload if exported. The layout is
//! specified in `docs/ledger-format.md` (bundle version 3; version 2, without
//! the key handovers, and version 1, also without the earlier section, are
//! still read):
//!
//! ```text
//! magic    "vigil-ledger-bundle/v3\n"
//! header   origin:str16 | first_key:bytes32 | from:u64 | to:u64 |
//!          prefix_prev:[32] | frontier_count:u8 | frontier:[32]*count |
//!          handover_count:u8 | handover_count * (index:u64 | new_key:bytes32 | signature:bytes32)
//! cps      count:u32 | count * (note:bytes32 | proof_count:u8 | proof:[32]*proof_count)
//! earlier  count:u32 | count * (size:u64 | root:[32] | proof_count:u8 | proof:[32]*proof_count)
//! entries  (to - from) * (entry:bytes32 | tag:u8 [1: salt:[32] | payload:bytes64])
//! ```
//! Nothing may follow the last entry.

use std::io::{self, Read, Write};

use vigil_crypto::CompositePublicKey;

use crate::checkpoint::MAX_NOTE_LEN;
use crate::entry::{Entry, MAX_ENTRY_LEN, SALT_LEN};
use crate::error::LedgerError;
use crate::handover::HandoverRecord;
use crate::hash::Hash;
use crate::ledger::Ledger;
use crate::payloads::MAX_PAYLOAD_LEN;
use crate::verify::{Earlier, Header, Report, Verifier, VerifyError};

/// First bytes of every bundle this crate writes (version 3).
pub const MAGIC: &[u8] = b"vigil-ledger-bundle/v3\n";
/// First bytes of a version-2 bundle (no key handovers), still read.
pub const MAGIC_V2: &[u8] = b"vigil-ledger-bundle/v2\n";
/// First bytes of a version-1 bundle (no earlier-checkpoint section), still read.
pub const MAGIC_V1: &[u8] = b"vigil-ledger-bundle/v1\n";
/// Most checkpoints a bundle may carry.
pub const MAX_CHECKPOINTS: u32 = 10_000_000;

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// First entry (default 0).
    pub from: u64,
    /// One past the last entry wanted (default: the whole ledger). The
    /// export extends it to the first signed checkpoint at or after it, so
    /// that every exported entry is covered by a signature.
    pub to: Option<u64>,
    /// Leave payloads out.
    pub no_payloads: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// First entry exported.
    pub from: u64,
    /// One past the last entry exported.
    pub to: u64,
    /// Checkpoints exported.
    pub checkpoints: u64,
    /// Payloads exported.
    pub payloads: u64,
    /// Bytes written.
    pub bytes: u64,
}

struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Counting<W> {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.inner.write_all(b)?;
        self.bytes += b.len() as u64;
        Ok(())
    }
    fn len_prefixed(&mut self, width: usize, b: &[u8]) -> io::Result<()> {
        self.put(&(b.len() as u64).to_be_bytes()[8 - width..])?;
        self.put(b)
    }
    fn hashes(&mut self, hs: &[Hash]) -> io::Result<()> {
        let n = u8::try_from(hs.len()).map_err(|_| io::Error::other("more than 255 hashes"))?;
        self.put(&[n])?;
        for h in hs {
            self.put(h)?;
        }
        Ok(())
    }
}

/// Writes a bundle of `ledger` to `out`. `public_key` is the node's
/// current key; the bundle names the first key of the chain that leads to
/// it, with every handover up to the end of the range. `progress(done, total)` is called as entries
/// are written.
pub fn export<W: Write>(
    ledger: &Ledger,
    public_key: &CompositePublicKey,
    out: W,
    opts: &ExportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExportSummary, LedgerError> {
    let size = ledger.size();
    let want_to = opts.to.unwrap_or(size).min(size);
    let from = opts.from;
    if from >= want_to {
        return Err(LedgerError::NotFound(format!(
            "nothing to export: entries {from}..{want_to} are empty (the ledger has {size} entries)"
        )));
    }
    let notes = ledger.checkpoint_notes()?;
    let to = notes
        .iter()
        .map(|(s, _)| *s)
        .find(|s| *s >= want_to && *s <= size)
        .ok_or_else(|| {
            LedgerError::NotFound(format!(
                "no signed checkpoint covers entry {}; sign one first (`vigil audit checkpoint`)",
                want_to - 1
            ))
        })?;
    let origin = ledger
        .origin()?
        .ok_or_else(|| LedgerError::NotFound("the ledger has no checkpoint origin".into()))?;
    let chain = ledger.key_chain(public_key, &origin)?;
    let handovers: Vec<&crate::handover::Handover> =
        chain.handovers().iter().filter(|h| h.index < to).collect();
    let frontier = ledger.frontier(from)?;
    let prefix_prev = match from {
        0 => [0u8; 32],
        f => crate::merkle::NodeSource::node(&LeafOf(ledger), 0, f - 1)?,
    };
    let io = |path: &str| LedgerError::io(path.to_string());
    let mut w = Counting {
        inner: out,
        bytes: 0,
    };
    let mut run = |w: &mut Counting<W>| -> Result<(u64, u64), LedgerError> {
        w.put(MAGIC).map_err(io("bundle"))?;
        w.len_prefixed(2, origin.as_bytes()).map_err(io("bundle"))?;
        w.len_prefixed(4, chain.first().as_bytes())
            .map_err(io("bundle"))?;
        w.put(&from.to_be_bytes()).map_err(io("bundle"))?;
        w.put(&to.to_be_bytes()).map_err(io("bundle"))?;
        w.put(&prefix_prev).map_err(io("bundle"))?;
        w.hashes(frontier.hashes()).map_err(io("bundle"))?;
        w.put(&[handovers.len() as u8]).map_err(io("bundle"))?;
        for h in &handovers {
            w.put(&h.index.to_be_bytes()).map_err(io("bundle"))?;
            w.len_prefixed(4, h.new.as_bytes()).map_err(io("bundle"))?;
            w.len_prefixed(4, &h.signature).map_err(io("bundle"))?;
        }
        let chosen: Vec<&(u64, String)> = notes
            .iter()
            .filter(|(s, _)| *s > from && *s <= to)
            .collect();
        w.put(&(chosen.len() as u32).to_be_bytes())
            .map_err(io("bundle"))?;
        let mut last: Option<u64> = None;
        for (s, note) in &chosen {
            w.len_prefixed(4, note.as_bytes()).map_err(io("bundle"))?;
            let proof = match last {
                Some(m) => ledger.consistency_proof(m, *s).unwrap_or_default(),
                None => Vec::new(),
            };
            w.hashes(&proof).map_err(io("bundle"))?;
            last = Some(*s);
        }
        let earlier = earlier_checkpoints(ledger, &notes, from, to)?;
        w.put(&(earlier.len() as u32).to_be_bytes())
            .map_err(io("bundle"))?;
        for e in &earlier {
            w.put(&e.size.to_be_bytes()).map_err(io("bundle"))?;
            w.put(&e.root).map_err(io("bundle"))?;
            w.hashes(&e.proof).map_err(io("bundle"))?;
        }
        let mut payloads = 0u64;
        let mut done = 0u64;
        let mut first_gap: Option<u64> = None;
        for raw in ledger.raw_entries(from..to) {
            let raw = raw?;
            let position = from + done;
            if first_gap.is_none()
                && raw
                    .get(1..9)
                    .map(|b| b != position.to_be_bytes())
                    .unwrap_or(true)
            {
                first_gap = Some(position);
            }
            w.len_prefixed(4, &raw).map_err(io("bundle"))?;
            let payload = if opts.no_payloads {
                None
            } else {
                match Entry::decode(&raw) {
                    Ok(e) => ledger.payload_of(&e)?,
                    Err(_) => None,
                }
            };
            match payload {
                Some(p) => {
                    w.put(&[1]).map_err(io("bundle"))?;
                    w.put(&p.salt).map_err(io("bundle"))?;
                    w.len_prefixed(8, &p.data).map_err(io("bundle"))?;
                    payloads += 1;
                }
                None => w.put(&[0]).map_err(io("bundle"))?,
            }
            done += 1;
            if done % 4096 == 0 || done == to - from {
                progress(done, to - from);
            }
        }
        if done < to - from {
            // The bundle would be cut short; refuse rather than write a file
            // that only says "truncated".
            let at = first_gap.unwrap_or(from + done);
            return Err(LedgerError::Damaged(format!(
                "entry {at} is missing from the store ({} of {} entries found)",
                done,
                to - from
            )));
        }
        Ok((chosen.len() as u64, payloads))
    };
    let (checkpoints, payloads) = run(&mut w)?;
    w.inner.flush().map_err(io("bundle"))?;
    Ok(ExportSummary {
        from,
        to,
        checkpoints,
        payloads,
        bytes: w.bytes,
    })
}

/// Every checkpoint the node signed at or before entry `from` (sizes
/// `1..=from`), with the consistency proof from it to the tree of `to`
/// entries, so that a verifier holding one of them can check the bundle
/// against it although its entries are not in the bundle.
fn earlier_checkpoints(
    ledger: &Ledger,
    notes: &[(u64, String)],
    from: u64,
    to: u64,
) -> Result<Vec<Earlier>, LedgerError> {
    notes
        .iter()
        .filter(|(s, _)| *s <= from)
        .map(|(size, note)| {
            let body = note.rfind("\n\n").map_or(note.as_str(), |i| &note[..i + 1]);
            let root = crate::checkpoint::Checkpoint::parse_body(body)
                .map_err(|e| {
                    LedgerError::Damaged(format!("the stored checkpoint of size {size}: {e}"))
                })?
                .root;
            Ok(Earlier {
                size: *size,
                root,
                proof: ledger.consistency_proof(*size, to)?,
            })
        })
        .collect()
}

struct LeafOf<'a>(&'a Ledger);

impl crate::merkle::NodeSource for LeafOf<'_> {
    type Error = LedgerError;
    fn node(&self, _level: u8, index: u64) -> Result<Hash, LedgerError> {
        let mut it = self.0.raw_entries(index..index + 1);
        match it.next() {
            Some(raw) => Ok(crate::hash::leaf_hash(&raw?)),
            None => Err(LedgerError::Damaged(format!("entry {index} is missing"))),
        }
    }
}

/// Reads a bundle piece by piece, refusing anything malformed with a
/// [`VerifyError::Malformed`] that says what and where.
pub struct BundleReader<R> {
    inner: R,
    offset: u64,
    version: u8,
}

impl<R: Read> BundleReader<R> {
    /// Wraps a reader positioned at the start of a bundle.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            offset: 0,
            version: 3,
        }
    }

    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<(), VerifyError> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                VerifyError::Malformed(format!(
                    "the bundle is truncated: {what} at byte {} needs {} bytes",
                    self.offset,
                    buf.len()
                ))
            } else {
                VerifyError::Malformed(format!("reading {what} at byte {}: {e}", self.offset))
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn exact(&mut self, n: usize, what: &str) -> Result<Vec<u8>, VerifyError> {
        let mut buf = vec![0u8; n];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    fn uint(&mut self, width: usize, what: &str) -> Result<u64, VerifyError> {
        let mut buf = [0u8; 8];
        self.fill(&mut buf[8 - width..], what)?;
        Ok(u64::from_be_bytes(buf))
    }

    fn bytes(&mut self, width: usize, max: u64, what: &str) -> Result<Vec<u8>, VerifyError> {
        let at = self.offset;
        let len = self.uint(width, what)?;
        if len > max {
            return Err(VerifyError::Malformed(format!(
                "{what} at byte {at} claims {len} bytes, more than the {max} allowed"
            )));
        }
        self.exact(len as usize, what)
    }

    fn hash(&mut self, what: &str) -> Result<Hash, VerifyError> {
        let mut h = [0u8; 32];
        self.fill(&mut h, what)?;
        Ok(h)
    }

    fn hashes(&mut self, what: &str) -> Result<Vec<Hash>, VerifyError> {
        let n = self.uint(1, what)?;
        (0..n).map(|_| self.hash(what)).collect()
    }

    /// Reads the magic and the header.
    pub fn header(&mut self) -> Result<Header, VerifyError> {
        let magic = self.exact(MAGIC.len(), "magic")?;
        self.version = if magic == MAGIC {
            3
        } else if magic == MAGIC_V2 {
            2
        } else if magic == MAGIC_V1 {
            1
        } else {
            return Err(VerifyError::Malformed(
                "not a vigil ledger bundle (version 1, 2 or 3): the magic bytes differ".into(),
            ));
        };
        let origin = String::from_utf8(self.bytes(2, 255, "origin")?)
            .map_err(|_| VerifyError::Malformed("the origin is not UTF-8".into()))?;
        let public_key = self.bytes(4, 4096, "public key")?;
        let from = self.uint(8, "from")?;
        let to = self.uint(8, "to")?;
        let prefix_prev = self.hash("prefix hash")?;
        let frontier = self.hashes("frontier")?;
        let mut handovers = Vec::new();
        if self.version >= 3 {
            for _ in 0..self.uint(1, "handover count")? {
                let index = self.uint(8, "handover index")?;
                let new_key = self.bytes(4, 4096, "handover key")?;
                let signature = self.bytes(4, 8192, "handover signature")?;
                handovers.push(HandoverRecord {
                    index,
                    new_key,
                    signature,
                });
            }
        }
        Ok(Header {
            origin,
            public_key,
            from,
            to,
            prefix_prev,
            frontier,
            handovers,
        })
    }

    /// Reads the checkpoint section: `(note, consistency proof)` pairs.
    pub fn checkpoints(&mut self) -> Result<Vec<(String, Vec<Hash>)>, VerifyError> {
        let n = self.uint(4, "checkpoint count")?;
        if n > u64::from(MAX_CHECKPOINTS) {
            return Err(VerifyError::Malformed(format!(
                "{n} checkpoints is more than allowed"
            )));
        }
        let mut out = Vec::new();
        for _ in 0..n {
            let note = String::from_utf8(self.bytes(4, MAX_NOTE_LEN as u64, "checkpoint note")?)
                .map_err(|_| VerifyError::Malformed("a checkpoint note is not UTF-8".into()))?;
            let proof = self.hashes("consistency proof")?;
            out.push((note, proof));
        }
        Ok(out)
    }

    /// Reads the earlier-checkpoint section of a version-2 bundle; `None`
    /// for a version-1 bundle, which has none.
    pub fn earlier(&mut self) -> Result<Option<Vec<Earlier>>, VerifyError> {
        if self.version < 2 {
            return Ok(None);
        }
        let n = self.uint(4, "earlier checkpoint count")?;
        if n > u64::from(MAX_CHECKPOINTS) {
            return Err(VerifyError::Malformed(format!(
                "{n} earlier checkpoints is more than allowed"
            )));
        }
        let mut out = Vec::new();
        for _ in 0..n {
            let size = self.uint(8, "earlier checkpoint size")?;
            let root = self.hash("earlier checkpoint root")?;
            let proof = self.hashes("earlier consistency proof")?;
            out.push(Earlier { size, root, proof });
        }
        Ok(Some(out))
    }

    /// Reads one entry record: the entry bytes and the payload if present.
    #[allow(clippy::type_complexity)]
    pub fn entry(&mut self) -> Result<(Vec<u8>, Option<([u8; SALT_LEN], Vec<u8>)>), VerifyError> {
        let raw = self.bytes(4, MAX_ENTRY_LEN as u64, "entry")?;
        let payload = match self.uint(1, "payload tag")? {
            0 => None,
            1 => {
                let mut salt = [0u8; SALT_LEN];
                self.fill(&mut salt, "payload salt")?;
                let data = self.bytes(8, MAX_PAYLOAD_LEN, "payload")?;
                Some((salt, data))
            }
            t => {
                return Err(VerifyError::Malformed(format!(
                    "unknown payload tag {t} at byte {}",
                    self.offset - 1
                )))
            }
        };
        Ok((raw, payload))
    }

    /// Checks that nothing follows the last record.
    pub fn end(&mut self) -> Result<(), VerifyError> {
        let mut b = [0u8; 1];
        match self.inner.read(&mut b) {
            Ok(0) => Ok(()),
            Ok(_) => Err(VerifyError::Malformed(format!(
                "unexpected bytes after the last entry, at byte {}",
                self.offset
            ))),
            Err(e) => Err(VerifyError::Malformed(format!(
                "reading the end of the bundle: {e}"
            ))),
        }
    }
}

/// Verifies a whole bundle against the pinned key.
pub fn verify_bundle<R: Read>(input: R, key: &CompositePublicKey) -> Result<Report, VerifyError> {
    verify_bundle_since(input, key, &[])
}

/// Verifies a whole bundle against the pinned key, and proves it consistent
/// with each of the `held` signed checkpoint notes (checkpoints of the same
/// log that the caller kept from earlier): a held checkpoint the bundle's
/// history does not extend is a [`crate::verify::Location::Held`] failure.
pub fn verify_bundle_since<R: Read>(
    input: R,
    key: &CompositePublicKey,
    held: &[String],
) -> Result<Report, VerifyError> {
    verify_bundle_witnessed(input, key, held, None)
}

/// Like [`verify_bundle_since`], and with `witnessing = Some((keys,
/// quorum))` also requires `quorum` of the witnesses named by `keys` to
/// have cosigned the bundle's newest checkpoint.
pub fn verify_bundle_witnessed<R: Read>(
    input: R,
    key: &CompositePublicKey,
    held: &[String],
    witnessing: Option<(Vec<crate::cosignature::VerifierKey>, usize)>,
) -> Result<Report, VerifyError> {
    verify_bundle_with(input, key, held, witnessing, None, &mut |_, _| {})
}

/// Like [`verify_bundle`], calling `progress(done, total)` as entries are
/// checked (every 4096, and once all are).
pub fn verify_bundle_progress<R: Read>(
    input: R,
    key: &CompositePublicKey,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, VerifyError> {
    verify_bundle_with(input, key, &[], None, None, &mut |done, total| {
        if done % 4096 == 0 || done == total {
            progress(done, total);
        }
    })
}

/// Verifies a bundle with everything optional: held checkpoints, a witness
/// quorum, an `observe`r of each checked entry (for a report; use what it
/// gathered only if the verdict is `Ok`; entries are decoded a second time
/// only for it) and `progress(done, total)` before each entry and at the
/// end.
pub fn verify_bundle_with<R: Read>(
    input: R,
    key: &CompositePublicKey,
    held: &[String],
    witnessing: Option<(Vec<crate::cosignature::VerifierKey>, usize)>,
    mut observe: Option<&mut dyn FnMut(&Entry)>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, VerifyError> {
    let mut r = BundleReader::new(input);
    let header = r.header()?;
    let checkpoints = r.checkpoints()?;
    let earlier = r.earlier()?;
    let mut v = Verifier::new(key, &header)?;
    for (note, proof) in &checkpoints {
        v.checkpoint(note, proof)?;
    }
    if let Some(earlier) = &earlier {
        v.earlier(earlier)?;
    }
    for note in held {
        v.held(note)?;
    }
    if let Some((keys, quorum)) = witnessing {
        v.witnesses(keys, quorum);
    }
    let count = header.to.saturating_sub(header.from);
    for done in 0..count {
        progress(done, count);
        let (raw, payload) = r.entry()?;
        v.entry(&raw, payload.as_ref().map(|(s, d)| (s, d.as_slice())))?;
        if let Some(observe) = observe.as_mut() {
            if let Ok(e) = Entry::decode(&raw) {
                observe(&e);
            }
        }
    }
    r.end()?;
    progress(count, count);
    Ok(v.finish()?)
}
