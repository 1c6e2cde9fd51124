//! The commit journal: what makes a group commit durable with one write and
//! one `fdatasync`.
//!
//! Each batch is first appended to the journal file (`<payloads>/journal`)
//! as one record holding everything needed to apply it again: its encoded
//! entries (index, time and chain already fixed), the entries whose payload
//! it marks for erasure, and its payloads' segment records. Once that record
//! is synced the batch is acknowledged; its payload records and sled batch
//! are then written without syncing. [`crate::ledger`] *settles* now and
//! then (payload segment synced, sled flushed and synced, then the journal
//! restarts from its beginning) and on every checkpoint; opening a ledger
//! applies again every record past sled's state, so a crash or power cut
//! after the journal sync loses nothing.
//!
//! Records are written in laps from the start of the file (settling cuts
//! the file back to nothing); a record is
//! `magic "vjr1" | body length u32 LE | first 16 bytes of SHA-256(body) |
//! body`, and reading stops at the first record that does not check (the
//! torn end of the lap). A body is
//! `start index u64 | n u32 | n x (length u32 | entry bytes) | m u32 |
//! m x erased index u64 | p u32 | p x (length u32 | payload record)` (all
//! little-endian). Payload bytes can be in the journal until it is wiped:
//! an erasure settles and overwrites the whole file with zeros first.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::LedgerError;

/// First bytes of every journal record.
pub const JOURNAL_MAGIC: [u8; 4] = *b"vjr1";

/// Bytes before a record's body: magic, length, checksum.
const HEADER_LEN: usize = 4 + 4 + 16;

/// The ledger settles once a lap holds this many bytes.
pub const SETTLE_BYTES: u64 = 16 * 1024 * 1024;

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

/// One record (header and body) of the batch of entries from `start`,
/// written straight from the commit's own buffers.
pub fn encode<E: AsRef<[u8]>, P: AsRef<[u8]>>(
    start: u64,
    entries: &[E],
    erasing: &[u64],
    payloads: &[P],
) -> Vec<u8> {
    let body_len = 8
        + 4
        + entries.iter().map(|e| e.as_ref().len() + 4).sum::<usize>()
        + 4
        + 8 * erasing.len()
        + 4
        + payloads.iter().map(|p| p.as_ref().len() + 4).sum::<usize>();
    let mut out = Vec::with_capacity(HEADER_LEN + body_len);
    out.extend_from_slice(&JOURNAL_MAGIC);
    put_u32(&mut out, body_len);
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&start.to_le_bytes());
    put_u32(&mut out, entries.len());
    for e in entries {
        put_u32(&mut out, e.as_ref().len());
        out.extend_from_slice(e.as_ref());
    }
    put_u32(&mut out, erasing.len());
    for i in erasing {
        out.extend_from_slice(&i.to_le_bytes());
    }
    put_u32(&mut out, payloads.len());
    for p in payloads {
        put_u32(&mut out, p.as_ref().len());
        out.extend_from_slice(p.as_ref());
    }
    let digest = Sha256::digest(&out[HEADER_LEN..]);
    out[8..HEADER_LEN].copy_from_slice(&digest[..16]);
    out
}

impl JournalRecord {
    /// The whole record: header and body.
    pub fn encode(&self) -> Vec<u8> {
        encode(self.start, &self.entries, &self.erasing, &self.payloads)
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

/// The records at the start of `bytes`, up to the first that does not
/// check.
pub fn scan(bytes: &[u8]) -> Vec<JournalRecord> {
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        let Some(header) = bytes.get(at..at + HEADER_LEN) else {
            return out;
        };
        if header[..4] != JOURNAL_MAGIC {
            return out;
        }
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let Some(body) = bytes.get(at + HEADER_LEN..at + HEADER_LEN + len) else {
            return out;
        };
        if Sha256::digest(body)[..16] != header[8..24] {
            return out;
        }
        match JournalRecord::decode_body(body) {
            Some(record) => out.push(record),
            None => return out,
        }
        at += HEADER_LEN + len;
    }
}

/// The journal file and where the current lap has got to.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Where the next record goes.
    at: u64,
}

impl Journal {
    /// Opens (creating) the journal in `dir` and returns it with the
    /// records of its last lap, for the ledger to apply again.
    pub fn open(dir: &Path) -> Result<(Self, Vec<JournalRecord>), LedgerError> {
        let path = dir.join("journal");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(LedgerError::io(&path))?;
        let len = file.metadata().map_err(LedgerError::io(&path))?.len();
        let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(0)];
        file.read_exact_at(&mut bytes, 0)
            .map_err(LedgerError::io(&path))?;
        let records = scan(&bytes);
        crate::durability::sync_dir(dir)?;
        Ok((Self { path, file, at: 0 }, records))
    }

    /// Appends one encoded record ([`encode`]) to the current lap with one
    /// write and one `fdatasync`; returns the lap's size.
    pub fn append(&mut self, record: &[u8]) -> Result<u64, LedgerError> {
        self.file
            .write_all_at(record, self.at)
            .map_err(LedgerError::io(&self.path))?;
        self.file.sync_data().map_err(LedgerError::io(&self.path))?;
        self.at += record.len() as u64;
        Ok(self.at)
    }

    /// Bytes in the current lap.
    pub fn lap_bytes(&self) -> u64 {
        self.at
    }

    /// Starts a new lap (everything journaled so far is settled): the file
    /// is cut to nothing and synced, so no earlier record is read again and
    /// the journal holds at most one lap on disk.
    pub fn restart(&mut self) -> Result<(), LedgerError> {
        if self.at == 0 {
            return Ok(());
        }
        self.file.set_len(0).map_err(LedgerError::io(&self.path))?;
        self.file.sync_all().map_err(LedgerError::io(&self.path))?;
        self.at = 0;
        Ok(())
    }

    /// Overwrites the whole file with zeros, syncs it and starts a new lap
    /// (before a payload is erased: its bytes may be in any lap).
    pub fn wipe(&mut self) -> Result<(), LedgerError> {
        let len = self
            .file
            .metadata()
            .map_err(LedgerError::io(&self.path))?
            .len();
        let zeros = vec![0u8; 1 << 20];
        let mut at = 0;
        while at < len {
            let n = (len - at).min(zeros.len() as u64) as usize;
            self.file
                .write_all_at(&zeros[..n], at)
                .map_err(LedgerError::io(&self.path))?;
            at += n as u64;
        }
        self.file.sync_data().map_err(LedgerError::io(&self.path))?;
        self.file.set_len(0).map_err(LedgerError::io(&self.path))?;
        self.file.sync_all().map_err(LedgerError::io(&self.path))?;
        self.at = 0;
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
        let mut bytes = record(0).encode();
        bytes.extend(record(2).encode());
        assert_eq!(scan(&bytes), vec![record(0), record(2)]);
        // Torn: the second record cut short.
        let torn = &bytes[..bytes.len() - 3];
        assert_eq!(scan(torn), vec![record(0)]);
        // A changed byte in the second body.
        let mut changed = bytes.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert_eq!(scan(&changed), vec![record(0)]);
        assert!(scan(&[0u8; 64]).is_empty());
    }

    #[test]
    fn laps_restart_and_a_wipe_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, old) = Journal::open(dir.path()).unwrap();
        assert!(old.is_empty());
        j.append(&record(0).encode()).unwrap();
        j.append(&record(2).encode()).unwrap();
        let (_, again) = Journal::open(dir.path()).unwrap();
        assert_eq!(again, vec![record(0), record(2)]);
        j.restart().unwrap();
        // After a restart only the new lap is read.
        j.append(&record(4).encode()).unwrap();
        let (_, lap) = Journal::open(dir.path()).unwrap();
        assert_eq!(lap, vec![record(4)]);
        j.append(&record(6).encode()).unwrap();
        j.wipe().unwrap();
        let bytes = std::fs::read(dir.path().join("journal")).unwrap();
        assert!(bytes.is_empty());
        let (_, none) = Journal::open(dir.path()).unwrap();
        assert!(none.is_empty());
    }
}
