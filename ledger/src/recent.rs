//! The entries committed but not yet written as chunks to the entry file
//! ([`crate::entry_file`]). Each is durable in the commit journal
//! ([`crate::journal`]) from its commit on; the ledger writes the entries
//! held here as whole chunks once they add up to [`SPILL_BYTES`], and when
//! it settles. A batch of one entry then costs sled nothing, and sled's
//! per-key cost is paid once per chunk whatever the batch size. Readers
//! look here first for an index at or past [`Recent::start`]; everything
//! before it is in chunks, since the chunks are written before the entries
//! are let go.

use std::ops::Range;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::entry_file::{encode_file_chunk, ChunkRef, EntryFile};
use crate::error::LedgerError;
use crate::storage::{chunk_key, CHUNK_BYTES, CHUNK_ENTRIES};

/// The held entries are written to sled once they add up to this many
/// bytes (about the size of one batch of 1024 small entries).
pub const SPILL_BYTES: usize = 256 * 1024;

#[derive(Debug, Default)]
struct Unsettled {
    /// Index of the first entry held.
    start: u64,
    /// The entries' encodings, in order.
    entries: Vec<Vec<u8>>,
    /// Their total length.
    bytes: usize,
    /// Merkle tiles those entries completed: `(tile key, tile)`.
    tiles: Vec<([u8; 10], Vec<u8>)>,
}

/// The unsettled entries, shared by the writer and every reader.
#[derive(Debug, Default)]
pub struct Recent {
    held: RwLock<Unsettled>,
}

impl Recent {
    /// Holds nothing yet; the next entry committed is `start`.
    pub fn new(start: u64) -> Self {
        Self {
            held: RwLock::new(Unsettled {
                start,
                entries: Vec::new(),
                bytes: 0,
                tiles: Vec::new(),
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Unsettled> {
        self.held.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Unsettled> {
        self.held.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the entries of a durable batch, starting at index `first`
    /// (which must follow the entries held). Returns false, adding
    /// nothing, when it does not.
    pub fn push(
        &self,
        first: u64,
        entries: impl IntoIterator<Item = Vec<u8>>,
        tiles: Vec<([u8; 10], Vec<u8>)>,
    ) -> bool {
        let mut held = self.write();
        if held.start + held.entries.len() as u64 != first {
            return false;
        }
        held.tiles.extend(tiles);
        for e in entries {
            held.bytes += e.len();
            held.entries.push(e);
        }
        true
    }

    /// Bytes of the entries held.
    pub fn bytes(&self) -> usize {
        self.read().bytes
    }

    /// Index of the first entry held: every entry before it is in sled.
    pub fn start(&self) -> u64 {
        self.read().start
    }

    /// The encoding of entry `index`, if held.
    pub fn get(&self, index: u64) -> Option<Vec<u8>> {
        let held = self.read();
        let i = usize::try_from(index.checked_sub(held.start)?).ok()?;
        held.entries.get(i).cloned()
    }

    /// A held Merkle tile, by its key ([`crate::storage::tile_key`]).
    pub fn tile(&self, key: &[u8; 10]) -> Option<Vec<u8>> {
        let held = self.read();
        held.tiles
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, t)| t.clone())
    }

    /// Where the held entries start, and those of `range` at or past that.
    pub fn range(&self, range: Range<u64>) -> (u64, Vec<Vec<u8>>) {
        let held = self.read();
        let end = held.start + held.entries.len() as u64;
        let from = range.start.max(held.start);
        let to = range.end.min(end);
        let slice = if from < to {
            let a = usize::try_from(from - held.start).unwrap_or(usize::MAX);
            let b = usize::try_from(to - held.start).unwrap_or(usize::MAX);
            held.entries
                .get(a..b)
                .map(<[_]>::to_vec)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        (held.start, slice)
    }

    /// Writes the held entries to the entry file at `at` as chunks (at
    /// most [`CHUNK_ENTRIES`] entries or [`CHUNK_BYTES`] bytes each, in one
    /// write from `out`, not synced) and adds their references to `batch`,
    /// with the tiles they completed. Returns the index after the last
    /// entry and where the file now ends.
    pub fn write_chunks(
        &self,
        file: &EntryFile,
        at: u64,
        batch: &mut sled::Batch,
        out: &mut Vec<u8>,
    ) -> Result<(u64, u64), LedgerError> {
        let held = self.read();
        for (key, tile) in &held.tiles {
            batch.insert(&key[..], tile.clone());
        }
        out.clear();
        out.reserve(held.bytes + 8 * held.entries.len() + 64);
        let mut put = |start: u64, chunk: &[&[u8]], out: &mut Vec<u8>| {
            let offset = at + out.len() as u64;
            let length = encode_file_chunk(chunk, out) as u32;
            let r = ChunkRef {
                offset,
                length,
                count: chunk.len() as u32,
            };
            batch.insert(&chunk_key(start)[..], &r.encode()[..]);
        };
        let mut chunk: Vec<&[u8]> = Vec::new();
        let mut chunk_start = held.start;
        let mut chunk_bytes = 0usize;
        for (i, bytes) in held.entries.iter().enumerate() {
            if !chunk.is_empty()
                && (chunk.len() >= CHUNK_ENTRIES || chunk_bytes + bytes.len() > CHUNK_BYTES)
            {
                put(chunk_start, &chunk, out);
                chunk.clear();
                chunk_bytes = 0;
                chunk_start = held.start + i as u64;
            }
            chunk_bytes += bytes.len() + 4;
            chunk.push(bytes);
        }
        if !chunk.is_empty() {
            put(chunk_start, &chunk, out);
        }
        file.write_at(out, at)?;
        let written = out.len() as u64;
        crate::ledger::keep_small(out);
        Ok((held.start + held.entries.len() as u64, at + written))
    }

    /// Lets go of the entries before `end`, now in sled (readable there;
    /// durable there once the ledger settles, in the journal until then).
    pub fn written(&self, end: u64) {
        let mut held = self.write();
        let n = usize::try_from(end.saturating_sub(held.start))
            .unwrap_or(usize::MAX)
            .min(held.entries.len());
        let gone: usize = held.entries.drain(..n).map(|e| e.len()).sum();
        held.bytes -= gone;
        held.start += n as u64;
        if held.entries.is_empty() {
            held.tiles.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_held_until_settled_and_written_as_chunks() {
        let recent = Recent::new(10);
        assert!(recent.push(
            10,
            vec![b"a".to_vec(), b"b".to_vec()],
            vec![([7; 10], b"tile".to_vec())]
        ));
        assert!(
            !recent.push(11, vec![b"x".to_vec()], Vec::new()),
            "must follow the held entries"
        );
        assert!(recent.push(12, vec![b"c".to_vec()], Vec::new()));
        assert_eq!(recent.tile(&[7; 10]), Some(b"tile".to_vec()));
        assert_eq!(recent.get(9), None);
        assert_eq!(recent.get(11), Some(b"b".to_vec()));
        assert_eq!(recent.get(13), None);
        assert_eq!(
            recent.range(0..12),
            (10, vec![b"a".to_vec(), b"b".to_vec()])
        );
        assert_eq!(recent.range(11..20).1, vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(recent.bytes(), 3);

        let dir = tempfile::tempdir().expect("tempdir");
        let file = EntryFile::open(dir.path()).expect("entry file");
        let mut batch = sled::Batch::default();
        let (end, file_end) = recent
            .write_chunks(&file, 5, &mut batch, &mut Vec::new())
            .expect("write");
        assert_eq!(end, 13);
        assert_eq!(file_end, file.len().expect("len"));
        let db = sled::Config::new().temporary(true).open().expect("sled");
        db.apply_batch(batch).expect("apply");
        let chunk = db.get(chunk_key(10)).expect("read").expect("one chunk");
        assert_eq!(
            db.get([7u8; 10]).expect("read").as_deref(),
            Some(&b"tile"[..])
        );
        let r = ChunkRef::decode(&chunk).expect("a reference");
        assert_eq!((r.offset, r.end(), r.count), (5, file_end, 3));
        assert_eq!(
            file.chunk(&chunk).expect("chunk"),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );

        recent.written(13);
        assert_eq!(recent.start(), 13);
        assert_eq!(recent.get(12), None);
        assert_eq!(recent.bytes(), 0);
        assert_eq!(recent.tile(&[7; 10]), None);
        assert!(recent.push(13, vec![b"d".to_vec()], Vec::new()));
    }

    #[test]
    fn big_runs_are_cut_into_chunks() {
        let recent = Recent::new(0);
        let n = CHUNK_ENTRIES + 5;
        assert!(recent.push(0, (0..n).map(|i| vec![i as u8; 8]), Vec::new()));
        let dir = tempfile::tempdir().expect("tempdir");
        let file = EntryFile::open(dir.path()).expect("entry file");
        let mut batch = sled::Batch::default();
        recent
            .write_chunks(&file, 0, &mut batch, &mut Vec::new())
            .expect("write");
        let db = sled::Config::new().temporary(true).open().expect("sled");
        db.apply_batch(batch).expect("apply");
        let second = db
            .get(chunk_key(CHUNK_ENTRIES as u64))
            .expect("read")
            .expect("second chunk");
        assert_eq!(file.chunk(&second).expect("chunk").len(), 5);
        assert_eq!(
            file.chunk_entry(&second, 4).expect("read"),
            Some(vec![4; 8])
        );
    }
}
