//! Payloads (tool inputs and outputs) stored beside the ledger, never inside
//! sled: sled's log keeps old values, so nothing put there could be erased.
//!
//! This module owns the payload directory and the payload index. Payloads
//! are appended to numbered segment files `seg-<16 hex digits>` by the
//! group-commit leader: every payload of a batch in one write at the
//! segment's committed end, then one `fdatasync`, and only then the batch's
//! sled records (the index `p/<digest>` → segment, offset, length of each
//! payload, and `m/payload-end`, the committed end), so nothing is
//! acknowledged before its payload and index are durable. A record is
//! `header || salt[32] || payload`, the header naming its commitment and
//! length, so a segment can also be read without the index
//! ([`scan_segment`]; format in `docs/ledger-format.md` §6). A new segment
//! is started when a batch would take the current one past
//! [`SEGMENT_LIMIT`]; its directory entry is fsynced before that batch is
//! acknowledged.
//!
//! On open, bytes past the committed end (payloads of a batch that never
//! reached sled, so never acknowledged) and segments after the committed one
//! are overwritten with zeros, synced and cut off; stray `.tmp` files are
//! destroyed the same way. Erasing overwrites the record (header, salt and
//! payload) with zeros in place, fsyncs it and then removes its index key.
//!
//! Ledgers written before segments kept one file per payload, named by the
//! hex of its commitment and holding `salt[32] || payload`; those files are
//! still read and erased (overwritten, fsynced, unlinked), never written.
//! Neither form keeps the payload or its salt in any file after erasure on
//! filesystems that overwrite in place, such as ext4 and xfs; a
//! copy-on-write filesystem or an SSD's remapping may keep old blocks
//! physically, which no file-level erase can reach.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore as _};

use crate::durability::sync_dir;
use crate::entry::{EntryError, PayloadCommitment, SALT_LEN};
use crate::error::LedgerError;
use crate::hash::Hash;
use crate::storage::{payload_key, PAYLOAD_END_KEY};

/// Largest payload stored, in bytes.
pub const MAX_PAYLOAD_LEN: u64 = 64 * 1024 * 1024;

/// A batch that would take the current segment past this many bytes goes
/// into a new segment (a single batch may still make one bigger).
pub const SEGMENT_LIMIT: u64 = 64 * 1024 * 1024;

/// First bytes of every record: "vpr" and the record version, 1.
pub const RECORD_MAGIC: [u8; 4] = *b"vpr\x01";

/// Bytes of a record header: magic, commitment digest, payload length.
pub const RECORD_HEADER_LEN: usize = 4 + 32 + 8;

/// Bytes of a record besides its payload: header and salt.
pub const RECORD_OVERHEAD: u64 = (RECORD_HEADER_LEN + SALT_LEN) as u64;

/// Records written by the leader are coalesced into writes of up to this
/// many bytes; a bigger record is written on its own.
const COALESCE_BYTES: usize = 4 * 1024 * 1024;

/// A payload read back: its salt and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayload {
    /// The salt of the commitment.
    pub salt: [u8; SALT_LEN],
    /// The payload bytes.
    pub data: Vec<u8>,
}

/// The header of a segment record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// The commitment digest of the payload.
    pub digest: Hash,
    /// The payload length in bytes.
    pub length: u64,
}

impl RecordHeader {
    /// `magic || digest || length (u64 BE)`.
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut out = [0u8; RECORD_HEADER_LEN];
        out[..4].copy_from_slice(&RECORD_MAGIC);
        out[4..36].copy_from_slice(&self.digest);
        out[36..].copy_from_slice(&self.length.to_be_bytes());
        out
    }

    /// The header at the start of `b`; `None` when the magic is wrong or
    /// `b` is short.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.get(..4)? != RECORD_MAGIC {
            return None;
        }
        Some(Self {
            digest: b.get(4..36)?.try_into().ok()?,
            length: u64::from_be_bytes(b.get(36..44)?.try_into().ok()?),
        })
    }

    /// Bytes of the whole record.
    pub fn record_len(&self) -> u64 {
        RECORD_OVERHEAD.saturating_add(self.length)
    }
}

/// Where a payload's record is: the value of its index key `p/<digest>`,
/// `segment:u64 | offset:u64 | payload length:u64` (big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Location {
    segment: u64,
    offset: u64,
    length: u64,
}

impl Location {
    fn encode(&self) -> Vec<u8> {
        encode_u64s(&[self.segment, self.offset, self.length])
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let [segment, offset, length] = decode_u64s(b)?;
        Some(Self {
            segment,
            offset,
            length,
        })
    }

    fn record_len(&self) -> u64 {
        RECORD_OVERHEAD.saturating_add(self.length)
    }
}

/// The committed end of the segments: the value of `m/payload-end`,
/// `segment:u64 | end offset:u64` (big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SegmentEnd {
    segment: u64,
    end: u64,
}

impl SegmentEnd {
    fn encode(&self) -> Vec<u8> {
        encode_u64s(&[self.segment, self.end])
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let [segment, end] = decode_u64s(b)?;
        Some(Self { segment, end })
    }
}

/// `values` as consecutive big-endian u64s.
fn encode_u64s(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// Exactly `N` big-endian u64s, or None for any other length.
fn decode_u64s<const N: usize>(b: &[u8]) -> Option<[u64; N]> {
    if b.len() != N * 8 {
        return None;
    }
    let mut out = [0u64; N];
    for (v, chunk) in out.iter_mut().zip(b.chunks_exact(8)) {
        *v = u64::from_be_bytes(chunk.try_into().ok()?);
    }
    Some(out)
}

/// The file name of segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("seg-{n:016x}")
}

/// The number of a segment file name; `None` for other names.
pub fn segment_number(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// One record found by [`scan_segment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedRecord {
    /// Offset of the record in the segment.
    pub offset: u64,
    /// Its commitment (digest and length), recomputed from salt and payload.
    pub commitment: PayloadCommitment,
}

/// The records of a segment's bytes, found without the index: zero bytes
/// (erased records, never a record's first byte) are skipped, and a record
/// counts only when its salt and payload open the commitment in its header,
/// so a payload that happens to contain a header is not mistaken for one.
/// Bytes that are neither are skipped one at a time.
pub fn scan_segment(bytes: &[u8]) -> Vec<ScannedRecord> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        if bytes[pos] == 0 {
            pos += 1;
            continue;
        }
        let found = RecordHeader::decode(&bytes[pos..]).and_then(|h| {
            let len = usize::try_from(h.record_len()).ok()?;
            let record = bytes.get(pos..pos.checked_add(len)?)?;
            let salt: &[u8; SALT_LEN] = record
                .get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + SALT_LEN)?
                .try_into()
                .ok()?;
            let c = PayloadCommitment::compute(salt, &record[RECORD_HEADER_LEN + SALT_LEN..]);
            (c.digest == h.digest).then_some((c, len))
        });
        match found {
            Some((commitment, len)) => {
                out.push(ScannedRecord {
                    offset: pos as u64,
                    commitment,
                });
                pos += len;
            }
            None => pos += 1,
        }
    }
    out
}

/// A payload ready for the group-commit leader: its commitment and its
/// whole segment record, built by the appender outside the writer lock.
#[derive(Debug)]
pub(crate) struct PreparedPayload {
    pub(crate) commitment: PayloadCommitment,
    record: Vec<u8>,
}

impl PreparedPayload {
    /// The segment record (header, salt, payload), as journaled.
    pub(crate) fn record(&self) -> &[u8] {
        &self.record
    }

    /// A journaled record back as a prepared payload; None when it is not a
    /// well-formed record.
    pub(crate) fn from_record(record: Vec<u8>) -> Option<Self> {
        let header = RecordHeader::decode(&record)?;
        if header.record_len() != record.len() as u64 {
            return None;
        }
        Some(Self {
            commitment: PayloadCommitment {
                digest: header.digest,
                length: header.length,
            },
            record,
        })
    }
}

/// Checks `payload`'s size, draws a fresh random salt and builds the
/// payload's record. Writes nothing.
pub(crate) fn prepare(payload: &[u8]) -> Result<PreparedPayload, LedgerError> {
    if payload.len() as u64 > MAX_PAYLOAD_LEN {
        return Err(LedgerError::Entry(EntryError(format!(
            "payload of {} bytes is larger than the {MAX_PAYLOAD_LEN}-byte limit",
            payload.len()
        ))));
    }
    let mut salt = [0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let commitment = PayloadCommitment::compute(&salt, payload);
    let header = RecordHeader {
        digest: commitment.digest,
        length: commitment.length,
    };
    let mut record = Vec::with_capacity(RECORD_HEADER_LEN + SALT_LEN + payload.len());
    record.extend_from_slice(&header.encode());
    record.extend_from_slice(&salt);
    record.extend_from_slice(payload);
    Ok(PreparedPayload { commitment, record })
}

/// The read side of one ledger's payloads: its directory and the index in
/// its sled tree. Shared by every clone of the ledger.
#[derive(Clone)]
pub struct PayloadStore {
    dir: PathBuf,
    db: sled::Db,
}

impl std::fmt::Debug for PayloadStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PayloadStore({})", self.dir.display())
    }
}

impl PayloadStore {
    /// Opens (creating) the payload directory of the ledger whose sled tree
    /// is `db`, and recovers it: destroys bytes past the committed end,
    /// segments after the committed one and stray `.tmp` files. Returns the
    /// store and its writer, which belongs under the ledger's writer lock.
    pub(crate) fn open(dir: &Path, db: &sled::Db) -> Result<(Self, PayloadWriter), LedgerError> {
        fs::create_dir_all(dir).map_err(LedgerError::io(dir))?;
        let store = Self {
            dir: dir.to_path_buf(),
            db: db.clone(),
        };
        let end = match db.get(PAYLOAD_END_KEY)? {
            Some(v) => Some(SegmentEnd::decode(&v).ok_or_else(|| {
                LedgerError::Damaged("the payload end record (m/payload-end) is malformed".into())
            })?),
            None => None,
        };
        for item in fs::read_dir(dir).map_err(LedgerError::io(dir))? {
            let item = item.map_err(LedgerError::io(dir))?;
            let path = item.path();
            let name = item.file_name();
            let name = name.to_string_lossy();
            if path.extension().is_some_and(|e| e == "tmp") {
                destroy_file(&path)?;
                continue;
            }
            let Some(n) = segment_number(&name) else {
                continue;
            };
            match end {
                Some(e) if n < e.segment => {}
                Some(e) if n == e.segment => cut_back(&path, e.end)?,
                // Written by a batch that never reached sled.
                _ => destroy_file(&path)?,
            }
        }
        sync_dir(dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        let file = match end {
            Some(e) => {
                let path = store.segment_path(e.segment);
                match OpenOptions::new().read(true).write(true).open(&path) {
                    Ok(f) => Some(f),
                    // Recreated by the next batch; the records it held read as damaged.
                    Err(err) if err.kind() == ErrorKind::NotFound => None,
                    Err(err) => return Err(LedgerError::io(&path)(err)),
                }
            }
            None => None,
        };
        let writer = PayloadWriter {
            store: store.clone(),
            end,
            file,
        };
        Ok((store, writer))
    }

    fn segment_path(&self, n: u64) -> PathBuf {
        self.dir.join(segment_name(n))
    }

    fn legacy_path(&self, c: &PayloadCommitment) -> PathBuf {
        self.dir.join(hex::encode(c.digest))
    }

    fn location(&self, c: &PayloadCommitment) -> Result<Option<Location>, LedgerError> {
        match self.db.get(payload_key(&c.digest))? {
            Some(v) => Location::decode(&v).map(Some).ok_or_else(|| {
                LedgerError::Damaged(format!(
                    "the index record of payload {} is malformed",
                    hex::encode(c.digest)
                ))
            }),
            None => Ok(None),
        }
    }

    /// True when the index has a record of the payload committed to by `c`.
    pub(crate) fn indexed(&self, c: &PayloadCommitment) -> Result<bool, LedgerError> {
        Ok(self.location(c)?.is_some())
    }

    /// True when the payload committed to by `c` is stored (its index
    /// record, or its file from before segments, exists).
    pub(crate) fn holds(&self, c: &PayloadCommitment) -> Result<bool, LedgerError> {
        Ok(self.location(c)?.is_some() || self.legacy_path(c).exists())
    }

    /// Reads the payload committed to by `c`, if it is still stored.
    pub fn get(&self, c: &PayloadCommitment) -> Result<Option<StoredPayload>, LedgerError> {
        let Some(loc) = self.location(c)? else {
            return self.get_legacy(c);
        };
        match self.read_record(c, loc) {
            Ok(p) => Ok(Some(p)),
            // An erase may have zeroed the record and removed its index key
            // between the lookup and the read.
            Err(_) if self.location(c)?.is_none() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_record(
        &self,
        c: &PayloadCommitment,
        loc: Location,
    ) -> Result<StoredPayload, LedgerError> {
        let name = hex::encode(c.digest);
        let path = self.segment_path(loc.segment);
        let damaged = |why: String| {
            LedgerError::Damaged(format!(
                "payload {name} ({} at offset {}): {why}",
                path.display(),
                loc.offset
            ))
        };
        // The index, not the entry, gives the length: an entry whose length
        // was altered still gets its payload back, and the verifier then
        // names the entry.
        if loc.length > MAX_PAYLOAD_LEN {
            return Err(damaged(format!(
                "the index gives a length of {} bytes, over the limit",
                loc.length
            )));
        }
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(damaged("the segment file is missing".into()))
            }
            Err(e) => return Err(LedgerError::io(&path)(e)),
        };
        let read = |buf: &mut [u8], at: u64| match f.read_exact_at(buf, at) {
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                Err(damaged("the segment ends inside the record".into()))
            }
            other => other.map_err(LedgerError::io(&path)),
        };
        let mut head = [0u8; RECORD_HEADER_LEN + SALT_LEN];
        read(&mut head, loc.offset)?;
        let expected = RecordHeader {
            digest: c.digest,
            length: loc.length,
        };
        match RecordHeader::decode(&head) {
            Some(h) if h == expected => {}
            Some(_) => {
                return Err(damaged(
                    "the record there is another payload's; the index is wrong".into(),
                ))
            }
            None if head.iter().all(|&b| b == 0) => {
                return Err(damaged(
                    "the record was overwritten with zeros but is still indexed (an erase interrupted by a crash?); erase the payload again".into(),
                ))
            }
            None => return Err(damaged("there is no payload record there".into())),
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&head[RECORD_HEADER_LEN..]);
        let len = usize::try_from(loc.length)
            .map_err(|_| damaged("the payload is too large for this machine".into()))?;
        let mut data = vec![0u8; len];
        read(&mut data, loc.offset + RECORD_OVERHEAD)?;
        Ok(StoredPayload { salt, data })
    }

    /// A payload stored the pre-segment way, as its own file.
    fn get_legacy(&self, c: &PayloadCommitment) -> Result<Option<StoredPayload>, LedgerError> {
        let path = self.legacy_path(c);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LedgerError::io(&path)(e)),
        };
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(LedgerError::io(&path))?;
        if bytes.len() < SALT_LEN {
            return Err(LedgerError::Damaged(format!(
                "payload file {} is shorter than its salt",
                path.display()
            )));
        }
        let data = bytes.split_off(SALT_LEN);
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes);
        Ok(Some(StoredPayload { salt, data }))
    }
}

/// What a batch appended, to become the committed end once sled has the
/// batch ([`PayloadWriter::committed`]).
#[derive(Debug)]
pub(crate) struct Appended {
    end: SegmentEnd,
    /// The segment's file when the batch opened it (a new segment).
    opened: Option<File>,
}

/// The write side of the payload store: the committed end and the open
/// current segment. Owned by the ledger's writer, so appends (by the
/// group-commit leader) and erasures never run concurrently.
#[derive(Debug)]
pub(crate) struct PayloadWriter {
    store: PayloadStore,
    end: Option<SegmentEnd>,
    file: Option<File>,
}

impl PayloadWriter {
    /// Appends `payloads`' records at the committed end with one write (more
    /// only for records of several MiB), fsyncs the directory when the batch
    /// starts a segment, and adds their index keys and the new end to
    /// `batch`. The records are not synced: they are in the commit journal
    /// ([`crate::journal`]) already, and [`PayloadWriter::sync`] runs when the
    /// ledger settles. The end moves only when [`PayloadWriter::committed`]
    /// is called after sled has the batch.
    pub(crate) fn append(
        &mut self,
        payloads: &[&PreparedPayload],
        batch: &mut sled::Batch,
    ) -> Result<Appended, LedgerError> {
        let total: u64 = payloads.iter().map(|p| p.record.len() as u64).sum();
        let (segment, start) = match self.end {
            Some(e) if e.end == 0 || e.end.saturating_add(total) <= SEGMENT_LIMIT => {
                (e.segment, e.end)
            }
            Some(e) => (e.segment + 1, 0),
            None => (0, 0),
        };
        let path = self.store.segment_path(segment);
        let current = self.end.is_some_and(|e| e.segment == segment);
        let opened = match (&self.file, current) {
            (Some(_), true) => None,
            _ => Some(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(LedgerError::io(&path))?,
            ),
        };
        let file = match (&opened, &self.file) {
            (Some(f), _) | (None, Some(f)) => f,
            (None, None) => {
                return Err(LedgerError::Damaged(
                    "the current payload segment is not open".into(),
                ))
            }
        };
        let mut at = start;
        let mut buf: Vec<u8> = Vec::with_capacity(total.min(COALESCE_BYTES as u64) as usize);
        let mut buf_at = start;
        for p in payloads {
            let loc = Location {
                segment,
                offset: at,
                length: p.commitment.length,
            };
            batch.insert(&payload_key(&p.commitment.digest)[..], &loc.encode()[..]);
            if p.record.len() >= COALESCE_BYTES {
                write_at(file, &path, &buf, buf_at)?;
                buf.clear();
                write_at(file, &path, &p.record, at)?;
                buf_at = at + p.record.len() as u64;
            } else {
                if buf.len() + p.record.len() > COALESCE_BYTES {
                    write_at(file, &path, &buf, buf_at)?;
                    buf.clear();
                    buf_at = at;
                }
                buf.extend_from_slice(&p.record);
            }
            at += p.record.len() as u64;
        }
        write_at(file, &path, &buf, buf_at)?;
        if opened.is_some() {
            // A new segment: the previous one is complete; both made durable.
            if let Some(previous) = &self.file {
                previous.sync_data().map_err(LedgerError::io(
                    self.store.segment_path(segment.saturating_sub(1)),
                ))?;
            }
            file.sync_data().map_err(LedgerError::io(&path))?;
            sync_dir(&self.store.dir)?;
        }
        let end = SegmentEnd { segment, end: at };
        batch.insert(PAYLOAD_END_KEY, &end.encode()[..]);
        Ok(Appended { end, opened })
    }

    /// Makes the records appended so far durable (when the ledger settles).
    pub(crate) fn sync(&self) -> Result<(), LedgerError> {
        match (&self.file, self.end) {
            (Some(f), Some(e)) => f
                .sync_data()
                .map_err(LedgerError::io(self.store.segment_path(e.segment))),
            _ => Ok(()),
        }
    }

    /// After a power cut, sled may hold the index of a payload whose record
    /// never reached the disk (records are synced only when the ledger
    /// settles): writes the journaled record again where the index says,
    /// unless it is already there. Returns whether it wrote.
    pub(crate) fn repair(&mut self, p: &PreparedPayload) -> Result<bool, LedgerError> {
        let Some(loc) = self.store.location(&p.commitment)? else {
            return Ok(false);
        };
        if self.store.read_record(&p.commitment, loc).is_ok() {
            return Ok(false);
        }
        let path = self.store.segment_path(loc.segment);
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(LedgerError::io(&path))?;
        write_at(&f, &path, &p.record, loc.offset)?;
        f.sync_data().map_err(LedgerError::io(&path))?;
        Ok(true)
    }

    /// Records that the batch of `appended` is durable in sled.
    pub(crate) fn committed(&mut self, appended: Appended) {
        if let Some(f) = appended.opened {
            self.file = Some(f);
        }
        self.end = Some(appended.end);
    }

    /// Destroys the payload committed to by `c`: overwrites its record with
    /// zeros, fsyncs the segment and removes its index key (the caller makes
    /// sled durable), or destroys its pre-segment file. Returns false when
    /// it is not stored.
    pub(crate) fn erase(&mut self, c: &PayloadCommitment) -> Result<bool, LedgerError> {
        let Some(loc) = self.store.location(c)? else {
            let path = self.store.legacy_path(c);
            if !path.exists() {
                return Ok(false);
            }
            destroy_file(&path)?;
            sync_dir(&self.store.dir)?;
            return Ok(true);
        };
        let path = self.store.segment_path(loc.segment);
        let name = hex::encode(c.digest);
        let f = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(LedgerError::io(&path)(e)),
        };
        if let Some(f) = f {
            let len = f.metadata().map_err(LedgerError::io(&path))?.len();
            let stop = loc.offset.saturating_add(loc.record_len()).min(len);
            if loc.offset < stop {
                // Never zero what is not this payload's record: an index
                // pointing elsewhere would destroy another payload.
                let mut head = [0u8; RECORD_HEADER_LEN];
                let n = usize::try_from(stop - loc.offset)
                    .map_or(RECORD_HEADER_LEN, |n| n.min(RECORD_HEADER_LEN));
                f.read_exact_at(&mut head[..n], loc.offset)
                    .map_err(LedgerError::io(&path))?;
                let ours = RecordHeader::decode(&head)
                    .is_some_and(|h| h.digest == c.digest && h.length == loc.length);
                // All zeros: an earlier erase was cut short before it
                // removed the index key.
                if !ours && head.iter().any(|&b| b != 0) {
                    return Err(LedgerError::Damaged(format!(
                        "the index of payload {name} points at another record ({} at offset {}); refusing to overwrite it",
                        path.display(),
                        loc.offset
                    )));
                }
                zero_range(&f, &path, loc.offset, stop)?;
                f.sync_data().map_err(LedgerError::io(&path))?;
            }
        }
        self.store.db.remove(payload_key(&c.digest))?;
        Ok(true)
    }
}

fn write_at(f: &File, path: &Path, bytes: &[u8], at: u64) -> Result<(), LedgerError> {
    if bytes.is_empty() {
        return Ok(());
    }
    f.write_all_at(bytes, at).map_err(LedgerError::io(path))
}

/// Overwrites `start..stop` of `f` with zeros (not synced).
fn zero_range(f: &File, path: &Path, start: u64, stop: u64) -> Result<(), LedgerError> {
    let zeros = vec![0u8; 64 * 1024];
    let mut at = start;
    while at < stop {
        let n = (stop - at).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], at)
            .map_err(LedgerError::io(path))?;
        at += n as u64;
    }
    Ok(())
}

/// Destroys the bytes of the segment at `path` past `end` (zeros, sync,
/// truncate, sync): they belong to a batch that never reached sled.
fn cut_back(path: &Path, end: u64) -> Result<(), LedgerError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(LedgerError::io(path))?;
    let len = f.metadata().map_err(LedgerError::io(path))?.len();
    if len <= end {
        return Ok(());
    }
    zero_range(&f, path, end, len)?;
    f.sync_data().map_err(LedgerError::io(path))?;
    f.set_len(end).map_err(LedgerError::io(path))?;
    f.sync_all().map_err(LedgerError::io(path))
}

/// Overwrites a file with zeros, fsyncs it and unlinks it.
fn destroy_file(path: &Path) -> Result<(), LedgerError> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(LedgerError::io(path))?;
    let len = f.metadata().map_err(LedgerError::io(path))?.len();
    let zeros = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n]).map_err(LedgerError::io(path))?;
        left -= n as u64;
    }
    f.sync_all().map_err(LedgerError::io(path))?;
    drop(f);
    fs::remove_file(path).map_err(LedgerError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_locations_and_names_roundtrip() {
        let h = RecordHeader {
            digest: [7; 32],
            length: 1234,
        };
        let b = h.encode();
        assert_eq!(&b[..4], b"vpr\x01");
        assert_eq!(RecordHeader::decode(&b), Some(h));
        assert_eq!(RecordHeader::decode(&b[..43]), None);
        let mut bad = b;
        bad[3] = 2;
        assert_eq!(RecordHeader::decode(&bad), None);
        assert_eq!(h.record_len(), 44 + 32 + 1234);

        let loc = Location {
            segment: 3,
            offset: 99,
            length: 5,
        };
        assert_eq!(Location::decode(&loc.encode()), Some(loc));
        assert_eq!(Location::decode(&loc.encode()[..23]), None);
        let end = SegmentEnd { segment: 1, end: 2 };
        assert_eq!(SegmentEnd::decode(&end.encode()), Some(end));
        assert_eq!(SegmentEnd::decode(&[0; 15]), None);

        assert_eq!(segment_name(0x2a), "seg-000000000000002a");
        assert_eq!(segment_number("seg-000000000000002a"), Some(0x2a));
        assert_eq!(segment_number("seg-2a"), None);
        assert_eq!(segment_number("seg-000000000000002a.tmp"), None);
        assert_eq!(segment_number(&"a".repeat(64)), None);
    }

    #[test]
    fn scan_finds_records_and_skips_zeros_and_fakes() {
        let a = prepare(b"first payload").unwrap();
        let b = prepare(&[0u8; 100]).unwrap();
        // A payload that contains a well-formed header of a record that is
        // not there must not be taken for a record.
        let fake = RecordHeader {
            digest: [9; 32],
            length: 3,
        }
        .encode();
        let c = prepare(&[&fake[..], b"xyz-and-more"].concat()).unwrap();
        let mut seg = Vec::new();
        seg.extend_from_slice(&a.record);
        let erased_at = seg.len();
        seg.extend(std::iter::repeat_n(0u8, 500));
        seg.extend_from_slice(&b.record);
        seg.extend_from_slice(&c.record);
        seg.extend_from_slice(b"\x01\x02 trailing garbage");
        let found = scan_segment(&seg);
        assert_eq!(
            found,
            vec![
                ScannedRecord {
                    offset: 0,
                    commitment: a.commitment
                },
                ScannedRecord {
                    offset: (erased_at + 500) as u64,
                    commitment: b.commitment
                },
                ScannedRecord {
                    offset: (erased_at + 500 + b.record.len()) as u64,
                    commitment: c.commitment
                },
            ]
        );
        // A record whose payload was altered does not open its header.
        let mut altered = a.record.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(scan_segment(&altered).is_empty());
    }

    #[test]
    fn oversized_payload_is_refused() {
        // Checked before anything is allocated for the record.
        let big = vec![0u8; MAX_PAYLOAD_LEN as usize + 1];
        assert!(prepare(&big).is_err());
    }
}
