//! The commit journal: what makes a group commit durable with one write and
//! one `fdatasync`.
//!
//! Each batch is first written to the journal file (`<payloads>/journal`)
//! as one record holding everything needed to apply it again: its encoded
//! entries (index, time and chain already fixed), the entries whose payload
//! it marks for erasure, and its payloads' segment records. Once that record
//! is synced the batch is acknowledged; its payload records and sled batch
//! are then written without syncing. [`crate::ledger`] *settles* now and
//! then (payload segment synced, sled flushed and synced with the next lap
//! number in its state record, then the journal restarts from its
//! beginning) and on every checkpoint; opening a ledger applies again every
//! record of the current lap past sled's state, so a crash or power cut
//! after the journal sync loses nothing.
//!
//! The file is written once with zeros up to [`PREALLOCATED`] bytes when it
//! is created (and synced, with its directory), and never cut: each lap
//! writes its records again from offset 0 over blocks that are already
//! allocated and written, so the `fdatasync` of a record has only data to
//! write, not the file's size. A record bigger than what is left simply
//! extends the file. Records carry their lap number, and the current lap
//! is kept in the settled state (`m/state`), so the records of earlier laps
//! still in the file beyond the current lap's end are never read again.
//!
//! A record is `magic "vjr3" | lap u64 | body length u32 | checksum (16
//! bytes) | body`, and reading stops at the first record that does not
//! check or belongs to another lap (the end of the current lap). A body is
//! `start index u64 | n u32 | n x (length u32 | entry bytes) | m u32 |
//! m x erased index u64 | p u32 | p x (length u32 | payload record)` (all
//! little-endian). The checksum is the first 16 bytes of SHA-256 over the
//! lap (u64) and the body with each entry's bytes replaced by its leaf hash
//! (which the commit computes anyway, so the entries are hashed once, not
//! twice). Records of version 2 (`"vjr2"`, checksum over the lap and the
//! whole body) are still read. Journals written before laps (records
//! `"vjr1" | body length u32 | first 16 bytes of SHA-256(body) | body`, the
//! file cut to nothing at every settle) are still read when the file starts
//! with such a record; the first settle after that overwrites them with
//! zeros. Payload bytes can be in the journal until it is wiped: an erasure
//! settles and overwrites the whole file with zeros first.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::durability::open_rw;
use crate::error::LedgerError;
use crate::hash::{leaf_hash, Hash};

/// First bytes of every journal record written now.
pub const JOURNAL_MAGIC: [u8; 4] = *b"vjr3";

/// First bytes of a version-2 record (checksum over the whole body).
pub const V2_MAGIC: [u8; 4] = *b"vjr2";

/// First bytes of a record written before laps (no lap number).
pub const LEGACY_MAGIC: [u8; 4] = *b"vjr1";

/// Bytes before a record's body: magic, lap, length, checksum.
const HEADER_LEN: usize = 4 + 8 + 4 + 16;

/// Bytes before the body of a [`LEGACY_MAGIC`] record: magic, length,
/// checksum.
const LEGACY_HEADER_LEN: usize = 4 + 4 + 16;

/// The ledger settles once a lap holds this many bytes.
pub const SETTLE_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes of zeros the journal file is created with: a whole lap and room
/// for the batch that passes [`SETTLE_BYTES`].
pub const PREALLOCATED: u64 = SETTLE_BYTES + 1024 * 1024;

/// One batch as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JournalRecord {
    /// Index of the first entry.
    pub start: u64,
    /// The encoded entries, in order.
    pub entries: Vec<Vec<u8>>,
    /// Entries whose payload this batch marks for erasure.
    pub erasing: Vec<u64>,
    /// The payloads' segment records (header, salt, payload).
    pub payloads: Vec<Vec<u8>>,
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

/// Reads `n` bytes at `*at`, advancing it.
fn take<'a>(b: &'a [u8], at: &mut usize, n: usize) -> Option<&'a [u8]> {
    let s = b.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(s)
}

fn take_u32(b: &[u8], at: &mut usize) -> Option<usize> {
    Some(u32::from_le_bytes(take(b, at, 4)?.try_into().ok()?) as usize)
}

fn take_u64(b: &[u8], at: &mut usize) -> Option<u64> {
    Some(u64::from_le_bytes(take(b, at, 8)?.try_into().ok()?))
}

fn take_list(b: &[u8], at: &mut usize) -> Option<Vec<Vec<u8>>> {
    let n = take_u32(b, at)?;
    let mut out = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let len = take_u32(b, at)?;
        out.push(take(b, at, len)?.to_vec());
    }
    Some(out)
}

/// One record (header and body) of lap `lap` holding the batch of entries
/// from `start`, whose leaf hashes are `leaves`, written into `out`
/// (emptied first: a writer reuses one buffer for every record) straight
/// from the commit's own buffers.
pub fn encode_into<E: AsRef<[u8]>, P: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    lap: u64,
    start: u64,
    entries: &[E],
    leaves: &[Hash],
    erasing: &[u64],
    payloads: &[P],
) {
    let body_len = 8
        + 4
        + entries.iter().map(|e| e.as_ref().len() + 4).sum::<usize>()
        + 4
        + 8 * erasing.len()
        + 4
        + payloads.iter().map(|p| p.as_ref().len() + 4).sum::<usize>();
    out.clear();
    out.reserve(HEADER_LEN + body_len);
    out.extend_from_slice(&JOURNAL_MAGIC);
    out.extend_from_slice(&lap.to_le_bytes());
    put_u32(out, body_len);
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&start.to_le_bytes());
    put_u32(out, entries.len());
    for e in entries {
        put_u32(out, e.as_ref().len());
        out.extend_from_slice(e.as_ref());
    }
    put_u32(out, erasing.len());
    for i in erasing {
        out.extend_from_slice(&i.to_le_bytes());
    }
    let rest = out.len();
    put_u32(out, payloads.len());
    for p in payloads {
        put_u32(out, p.as_ref().len());
        out.extend_from_slice(p.as_ref());
    }
    let mut h = Sha256::new();
    h.update(lap.to_le_bytes());
    h.update(&out[HEADER_LEN..HEADER_LEN + 12]);
    for (e, leaf) in entries.iter().zip(leaves) {
        h.update((e.as_ref().len() as u32).to_le_bytes());
        h.update(leaf);
    }
    h.update(&out[rest - 4 - 8 * erasing.len()..]);
    let digest = h.finalize();
    out[HEADER_LEN - 16..HEADER_LEN].copy_from_slice(&digest[..16]);
}

/// The version-3 checksum of a body read back: the entries' leaf hashes
/// recomputed. `None` when the body's entry list is malformed.
fn checksum_v3(lap: u64, body: &[u8]) -> Option<[u8; 16]> {
    let mut h = Sha256::new();
    h.update(lap.to_le_bytes());
    h.update(body.get(..12)?);
    let mut at = 8;
    let n = take_u32(body, &mut at)?;
    for _ in 0..n {
        let len = take_u32(body, &mut at)?;
        h.update((len as u32).to_le_bytes());
        h.update(leaf_hash(take(body, &mut at, len)?));
    }
    h.update(body.get(at..)?);
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    Some(out)
}

/// The first 16 bytes of SHA-256 over the lap (none in a legacy record)
/// and the body.
fn checksum(lap: Option<u64>, body: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    if let Some(lap) = lap {
        h.update(lap.to_le_bytes());
    }
    h.update(body);
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

impl JournalRecord {
    /// The whole record of lap `lap`: header and body.
    pub fn encode(&self, lap: u64) -> Vec<u8> {
        let leaves: Vec<Hash> = self.entries.iter().map(|e| leaf_hash(e)).collect();
        let mut out = Vec::new();
        encode_into(
            &mut out,
            lap,
            self.start,
            &self.entries,
            &leaves,
            &self.erasing,
            &self.payloads,
        );
        out
    }

    /// The whole record of lap `lap` in version 2 ([`V2_MAGIC`]).
    pub fn encode_v2(&self, lap: u64) -> Vec<u8> {
        let mut out = self.encode(lap);
        out[..4].copy_from_slice(&V2_MAGIC);
        let sum = checksum(Some(lap), &out[HEADER_LEN..]);
        out[HEADER_LEN - 16..HEADER_LEN].copy_from_slice(&sum);
        out
    }

    /// The whole record in the format written before laps ([`LEGACY_MAGIC`]).
    pub fn encode_legacy(&self) -> Vec<u8> {
        let mut out = self.encode(0);
        let body = out.split_off(HEADER_LEN);
        let mut legacy = Vec::with_capacity(LEGACY_HEADER_LEN + body.len());
        legacy.extend_from_slice(&LEGACY_MAGIC);
        put_u32(&mut legacy, body.len());
        legacy.extend_from_slice(&checksum(None, &body));
        legacy.extend_from_slice(&body);
        legacy
    }

    fn decode_body(body: &[u8]) -> Option<Self> {
        let mut at = 0;
        let start = take_u64(body, &mut at)?;
        let entries = take_list(body, &mut at)?;
        let m = take_u32(body, &mut at)?;
        let mut erasing = Vec::with_capacity(m.min(1 << 16));
        for _ in 0..m {
            erasing.push(take_u64(body, &mut at)?);
        }
        let payloads = take_list(body, &mut at)?;
        (at == body.len()).then_some(Self {
            start,
            entries,
            erasing,
            payloads,
        })
    }
}

/// Reads the contiguous records from offset 0 through `get(offset, n)`
/// (the `n` bytes at `offset`, `None` past the end): of lap `lap`, or in
/// the legacy format when `lap` is `None`. Stops at the first record that
/// does not check or is of another lap; returns the records and where
/// they end.
fn scan_with<E>(
    lap: Option<u64>,
    mut get: impl FnMut(u64, usize) -> Result<Option<Vec<u8>>, E>,
) -> Result<(Vec<JournalRecord>, u64), E> {
    let header_len = match lap {
        Some(_) => HEADER_LEN,
        None => LEGACY_HEADER_LEN,
    };
    let mut out = Vec::new();
    let mut at = 0u64;
    loop {
        let Some(header) = get(at, header_len)? else {
            break;
        };
        let v3 = match lap {
            Some(_) if header[..4] == JOURNAL_MAGIC => true,
            Some(_) if header[..4] == V2_MAGIC => false,
            None if header[..4] == LEGACY_MAGIC => false,
            _ => break,
        };
        let len_at = match lap {
            Some(lap) => {
                if header[4..12] != lap.to_le_bytes() {
                    break;
                }
                12
            }
            None => 4,
        };
        let len = u32::from_le_bytes([
            header[len_at],
            header[len_at + 1],
            header[len_at + 2],
            header[len_at + 3],
        ]) as usize;
        let Some(body) = get(at + header_len as u64, len)? else {
            break;
        };
        let sum = match lap {
            Some(lap) if v3 => checksum_v3(lap, &body),
            _ => Some(checksum(lap, &body)),
        };
        if sum.is_none_or(|sum| sum[..] != header[len_at + 4..len_at + 20]) {
            break;
        }
        let Some(record) = JournalRecord::decode_body(&body) else {
            break;
        };
        out.push(record);
        at += (header_len + len) as u64;
    }
    Ok((out, at))
}

fn slice_at(bytes: &[u8], at: u64, n: usize) -> Option<Vec<u8>> {
    let at = usize::try_from(at).ok()?;
    bytes.get(at..at.checked_add(n)?).map(<[u8]>::to_vec)
}

/// The records of lap `lap` at the start of `bytes`, up to the first that
/// does not check or belongs to another lap.
pub fn scan(bytes: &[u8], lap: u64) -> Vec<JournalRecord> {
    let found = scan_with(Some(lap), |at, n| {
        Ok::<_, std::convert::Infallible>(slice_at(bytes, at, n))
    });
    match found {
        Ok((records, _)) => records,
        Err(never) => match never {},
    }
}

/// The legacy ([`LEGACY_MAGIC`]) records at the start of `bytes`, up to
/// the first that does not check.
pub fn scan_legacy(bytes: &[u8]) -> Vec<JournalRecord> {
    let found = scan_with(None, |at, n| {
        Ok::<_, std::convert::Infallible>(slice_at(bytes, at, n))
    });
    match found {
        Ok((records, _)) => records,
        Err(never) => match never {},
    }
}

/// Writes zeros over `range` of `file`.
fn write_zeros(file: &File, path: &Path, range: std::ops::Range<u64>) -> Result<(), LedgerError> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = range.start;
    while at < range.end {
        let n = (range.end - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)
            .map_err(LedgerError::io(path))?;
        at += n as u64;
    }
    Ok(())
}

/// The journal file and where the current lap has got to.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// The current lap's number, written in each of its records.
    lap: u64,
    /// Where the next record goes.
    at: u64,
    /// Where the legacy records read on open end (0 when there were none):
    /// overwritten with zeros when the next lap starts.
    legacy_end: u64,
}

impl Journal {
    /// Opens (creating and preallocating) the journal in `dir` and returns
    /// it with the records of lap `lap` (the ledger's settled state says
    /// which), or of a legacy journal, for the ledger to apply again. The
    /// lap continues after them.
    pub fn open(dir: &Path, lap: u64) -> Result<(Self, Vec<JournalRecord>), LedgerError> {
        let path = dir.join("journal");
        let file = open_rw(&path)?;
        let len = file.metadata().map_err(LedgerError::io(&path))?.len();
        let get = |at: u64, n: usize| -> std::io::Result<Option<Vec<u8>>> {
            match at.checked_add(n as u64) {
                Some(end) if end <= len => {
                    let mut buf = vec![0u8; n];
                    file.read_exact_at(&mut buf, at)?;
                    Ok(Some(buf))
                }
                _ => Ok(None),
            }
        };
        let legacy = get(0, 4)
            .map_err(LedgerError::io(&path))?
            .is_some_and(|m| m == LEGACY_MAGIC);
        let (records, end) = scan_with(if legacy { None } else { Some(lap) }, get)
            .map_err(LedgerError::io(&path))?;
        if len < PREALLOCATED {
            // Real zeros (not unwritten extents), so that writing a record
            // later overwrites written blocks of a file whose size is synced.
            write_zeros(&file, &path, len..PREALLOCATED)?;
            file.sync_all().map_err(LedgerError::io(&path))?;
        }
        crate::durability::sync_dir(dir)?;
        let (at, legacy_end) = if legacy { (0, end) } else { (end, 0) };
        Ok((
            Self {
                path,
                file,
                lap,
                at,
                legacy_end,
            },
            records,
        ))
    }

    /// Writes one encoded record ([`encode`], of [`Journal::lap`]) at the
    /// end of the current lap with one write and one `fdatasync`; returns
    /// the lap's size.
    pub fn append(&mut self, record: &[u8]) -> Result<u64, LedgerError> {
        self.file
            .write_all_at(record, self.at)
            .map_err(LedgerError::io(&self.path))?;
        self.file.sync_data().map_err(LedgerError::io(&self.path))?;
        self.at += record.len() as u64;
        Ok(self.at)
    }

    /// The current lap's number.
    pub fn lap(&self) -> u64 {
        self.lap
    }

    /// The number the next lap must have: the current one's when nothing
    /// was written in it (nothing of it can be read), else the next.
    pub fn next_lap(&self) -> u64 {
        if self.at > 0 || self.legacy_end > 0 {
            self.lap + 1
        } else {
            self.lap
        }
    }

    /// Bytes in the current lap.
    pub fn lap_bytes(&self) -> u64 {
        self.at
    }

    /// Starts lap `lap` ([`Journal::next_lap`]) from the beginning of the
    /// file, once everything journaled so far is settled and `lap` is in
    /// the settled state: records of earlier laps stay in the file but are
    /// never read again. Legacy records read on open are overwritten with
    /// zeros (they carry no lap).
    pub fn restart(&mut self, lap: u64) -> Result<(), LedgerError> {
        if self.legacy_end > 0 {
            write_zeros(&self.file, &self.path, 0..self.legacy_end)?;
            self.file.sync_data().map_err(LedgerError::io(&self.path))?;
            self.legacy_end = 0;
        }
        self.lap = lap;
        self.at = 0;
        Ok(())
    }

    /// Overwrites the whole file with zeros and syncs it (before a payload
    /// is erased: its bytes may be in any lap). Call right after settling:
    /// the current lap must be empty.
    pub fn wipe(&mut self) -> Result<(), LedgerError> {
        debug_assert_eq!(self.at, 0, "wipe a journal only right after settling");
        let len = self
            .file
            .metadata()
            .map_err(LedgerError::io(&self.path))?
            .len();
        write_zeros(&self.file, &self.path, 0..len)?;
        self.file.sync_data().map_err(LedgerError::io(&self.path))?;
        self.at = 0;
        self.legacy_end = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(start: u64) -> JournalRecord {
        JournalRecord {
            start,
            entries: vec![b"entry-a".to_vec(), b"entry-b".to_vec()],
            erasing: vec![3],
            payloads: vec![b"payload-record".to_vec()],
        }
    }

    #[test]
    fn records_roundtrip_and_a_torn_or_changed_one_ends_the_scan() {
        let mut bytes = record(0).encode(7);
        bytes.extend(record(2).encode(7));
        assert_eq!(scan(&bytes, 7), vec![record(0), record(2)]);
        // Another lap: nothing.
        assert!(scan(&bytes, 6).is_empty());
        // Torn: the second record cut short.
        let torn = &bytes[..bytes.len() - 3];
        assert_eq!(scan(torn, 7), vec![record(0)]);
        // A changed byte in the second body.
        let mut changed = bytes.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert_eq!(scan(&changed, 7), vec![record(0)]);
        // A changed lap in the second header (the checksum covers it).
        let mut relapped = bytes.clone();
        let second = record(0).encode(7).len();
        relapped[second + 4] ^= 1;
        assert_eq!(scan(&relapped, 7), vec![record(0)]);
        assert!(scan(&[0u8; 64], 0).is_empty());
        // Legacy records read only as such.
        let mut legacy = record(0).encode_legacy();
        legacy.extend(record(2).encode_legacy());
        assert_eq!(scan_legacy(&legacy), vec![record(0), record(2)]);
        assert!(scan(&legacy, 0).is_empty());
        assert!(scan_legacy(&bytes).is_empty());
    }

    /// Version 3 checks each entry through its leaf hash: a changed byte
    /// inside an entry ends the scan as anywhere else. Version-2 records
    /// (checksum over the whole body) are still read, also mixed with
    /// version 3 in one lap, and a version-2 checksum under a version-3
    /// magic (or the reverse) does not check.
    #[test]
    fn version_3_checks_entries_through_their_leaf_hash_and_version_2_is_read() {
        let mut bytes = record(0).encode(7);
        let first = bytes.len();
        bytes.extend(record(2).encode(7));
        assert_eq!(&bytes[..4], b"vjr3");
        let mut changed = bytes.clone();
        // Inside the second record's first entry ("entry-a").
        changed[first + HEADER_LEN + 8 + 4 + 4 + 2] ^= 1;
        assert_eq!(scan(&changed, 7), vec![record(0)]);

        let mut mixed = record(0).encode_v2(7);
        mixed.extend(record(2).encode(7));
        mixed.extend(record(4).encode_v2(7));
        assert_eq!(scan(&mixed, 7), vec![record(0), record(2), record(4)]);
        let mut v2_as_v3 = record(0).encode_v2(7);
        v2_as_v3[..4].copy_from_slice(&JOURNAL_MAGIC);
        assert!(scan(&v2_as_v3, 7).is_empty());
        let mut v3_as_v2 = record(0).encode(7);
        v3_as_v2[..4].copy_from_slice(&V2_MAGIC);
        assert!(scan(&v3_as_v2, 7).is_empty());
    }

    #[test]
    fn the_file_is_preallocated_and_laps_reuse_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut j, old) = Journal::open(dir.path(), 0).unwrap();
        assert!(old.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), PREALLOCATED);
        j.append(&record(0).encode(0)).unwrap();
        j.append(&record(2).encode(0)).unwrap();
        let (reopened, again) = Journal::open(dir.path(), 0).unwrap();
        assert_eq!(again, vec![record(0), record(2)]);
        // The lap continues after what was read.
        assert_eq!(reopened.lap_bytes(), j.lap_bytes());
        assert_eq!(j.next_lap(), 1);
        j.restart(1).unwrap();
        assert_eq!(j.next_lap(), 1);
        // No truncation: the file keeps its size.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), PREALLOCATED);
        // A record of the same size as lap 0's first: lap 0's second record
        // follows it in the file but is not read.
        j.append(&record(4).encode(1)).unwrap();
        let (_, lap) = Journal::open(dir.path(), 1).unwrap();
        assert_eq!(lap, vec![record(4)]);
        // Nor is anything read for lap 0 any more.
        let (_, stale) = Journal::open(dir.path(), 0).unwrap();
        assert!(stale.is_empty());
    }

    #[test]
    fn a_stale_record_of_an_older_lap_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path(), 3).unwrap();
        for start in [0, 2, 4] {
            j.append(&record(start).encode(3)).unwrap();
        }
        j.restart(j.next_lap()).unwrap();
        assert_eq!(j.lap(), 4);
        j.append(&record(6).encode(4)).unwrap();
        let (_, records) = Journal::open(dir.path(), 4).unwrap();
        assert_eq!(records, vec![record(6)]);
    }

    #[test]
    fn a_torn_record_ends_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut j, _) = Journal::open(dir.path(), 0).unwrap();
        j.append(&record(0).encode(0)).unwrap();
        let at = j.lap_bytes();
        j.append(&record(2).encode(0)).unwrap();
        j.append(&record(4).encode(0)).unwrap();
        // The second record's body half written: neither it nor the third
        // is read.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0u8; 8], at + HEADER_LEN as u64 + 4)
            .unwrap();
        let (reopened, records) = Journal::open(dir.path(), 0).unwrap();
        assert_eq!(records, vec![record(0)]);
        assert_eq!(reopened.lap_bytes(), at);
    }

    #[test]
    fn a_wipe_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut j, _) = Journal::open(dir.path(), 0).unwrap();
        j.append(&record(0).encode(0)).unwrap();
        j.append(&record(2).encode(0)).unwrap();
        j.restart(j.next_lap()).unwrap();
        j.wipe().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, PREALLOCATED);
        assert!(bytes.iter().all(|b| *b == 0));
        for lap in 0..3 {
            let (_, none) = Journal::open(dir.path(), lap).unwrap();
            assert!(none.is_empty());
        }
    }

    #[test]
    fn a_legacy_journal_is_read_then_zeroed_at_the_next_lap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut legacy = record(0).encode_legacy();
        legacy.extend(record(2).encode_legacy());
        std::fs::write(&path, &legacy).unwrap();
        let (mut j, records) = Journal::open(dir.path(), 0).unwrap();
        assert_eq!(records, vec![record(0), record(2)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), PREALLOCATED);
        assert_eq!(j.next_lap(), 1);
        j.restart(1).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes[..legacy.len()].iter().all(|b| *b == 0));
        let (_, none) = Journal::open(dir.path(), 1).unwrap();
        assert!(none.is_empty());
    }
}
