//! The entry file: entry chunks appended to one file beside sled, which
//! keeps only a small reference to each (`docs/ledger-format.md` §3).
//!
//! Sled stores a value inside its tree node and rewrites the whole node as
//! it changes; chunks of a quarter MiB made sled write each several times
//! over. Here a chunk is written once, at the end of `<payloads>/entries`,
//! and sled's key `e/<start>` holds where it is. The file is not synced
//! when chunks are written (the commit journal holds their entries until
//! the ledger settles); it is synced when the ledger settles, before sled
//! records the file's settled end (`m/entries-end`) with the state. On open,
//! the file is cut back to that end and the references written since the
//! settle are dropped: the journal writes them again.
//!
//! A chunk in the file is `count:u32 | end:u32 × count | entries`, every
//! number big-endian, `end` being where each entry ends within `entries`,
//! so one entry is read with two small reads. Its reference in sled is
//! [`REF_MAGIC`] `| offset:u64 | length:u32 | count:u32` (big-endian).
//! A chunk written before this file (in sled itself) starts with its entry
//! count, whose first byte is zero, so the two cannot be confused.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use crate::durability::{open_rw, sync_dir};
use crate::error::LedgerError;
use crate::storage::{chunk_entry, decode_chunk};

/// First bytes of a chunk reference: "vef" and the format version, 1.
pub const REF_MAGIC: [u8; 4] = *b"vef\x01";

/// Bytes of a chunk reference.
pub const REF_LEN: usize = 4 + 8 + 4 + 4;

/// Name of the entry file in the payload directory.
pub const FILE_NAME: &str = "entries";

/// Where a chunk is in the entry file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    /// Offset of the chunk in the file.
    pub offset: u64,
    /// Its length in bytes.
    pub length: u32,
    /// How many entries it holds.
    pub count: u32,
}

impl ChunkRef {
    /// The reference as sled stores it.
    pub fn encode(&self) -> [u8; REF_LEN] {
        let mut out = [0u8; REF_LEN];
        out[..4].copy_from_slice(&REF_MAGIC);
        out[4..12].copy_from_slice(&self.offset.to_be_bytes());
        out[12..16].copy_from_slice(&self.length.to_be_bytes());
        out[16..20].copy_from_slice(&self.count.to_be_bytes());
        out
    }

    /// A reference, if `value` is one (else it is a chunk stored in sled).
    pub fn decode(value: &[u8]) -> Option<Self> {
        if value.len() != REF_LEN || value[..4] != REF_MAGIC {
            return None;
        }
        let u64_at = |at: usize| value[at..at + 8].try_into().ok().map(u64::from_be_bytes);
        let u32_at = |at: usize| value[at..at + 4].try_into().ok().map(u32::from_be_bytes);
        Some(Self {
            offset: u64_at(4)?,
            length: u32_at(12)?,
            count: u32_at(16)?,
        })
    }

    /// Where the chunk ends in the file.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.length)
    }
}

/// Appends a chunk of `entries` in the file's format to `out`; returns its
/// length.
pub fn encode_file_chunk<E: AsRef<[u8]>>(entries: &[E], out: &mut Vec<u8>) -> usize {
    let before = out.len();
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    let mut end = 0u32;
    for e in entries {
        end += e.as_ref().len() as u32;
        out.extend_from_slice(&end.to_be_bytes());
    }
    for e in entries {
        out.extend_from_slice(e.as_ref());
    }
    out.len() - before
}

/// The entries of a chunk in the file's format; `None` when malformed.
pub fn decode_file_chunk(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let count = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let data = 4usize.checked_add(count.checked_mul(4)?)?;
    let ends = bytes.get(4..data)?;
    let entries = bytes.get(data..)?;
    let mut out = Vec::with_capacity(count.min(crate::storage::CHUNK_ENTRIES));
    let mut start = 0usize;
    for end in ends.chunks_exact(4) {
        let end = u32::from_be_bytes(end.try_into().ok()?) as usize;
        out.push(entries.get(start..end)?);
        start = end;
    }
    (start == entries.len()).then_some(out)
}

/// The entry file of a ledger.
#[derive(Debug)]
pub struct EntryFile {
    path: PathBuf,
    file: File,
}

impl EntryFile {
    /// Opens (creating) the entry file in `dir`.
    pub fn open(dir: &Path) -> Result<Self, LedgerError> {
        let path = dir.join(FILE_NAME);
        let existed = path.exists();
        let file = open_rw(&path)?;
        if !existed {
            sync_dir(dir)?;
        }
        Ok(Self { path, file })
    }

    /// The file's length.
    pub fn len(&self) -> Result<u64, LedgerError> {
        Ok(self
            .file
            .metadata()
            .map_err(LedgerError::io(&self.path))?
            .len())
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> Result<bool, LedgerError> {
        Ok(self.len()? == 0)
    }

    /// Writes `bytes` at `offset` (not synced).
    pub fn write_at(&self, bytes: &[u8], offset: u64) -> Result<(), LedgerError> {
        self.file
            .write_all_at(bytes, offset)
            .map_err(LedgerError::io(&self.path))
    }

    /// Makes what was written durable.
    pub fn sync(&self) -> Result<(), LedgerError> {
        self.file.sync_data().map_err(LedgerError::io(&self.path))
    }

    /// Cuts the file back to `end` (what was written after the last settle)
    /// and syncs it.
    pub fn cut(&self, end: u64) -> Result<(), LedgerError> {
        self.file
            .set_len(end)
            .map_err(LedgerError::io(&self.path))?;
        self.file.sync_all().map_err(LedgerError::io(&self.path))
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, LedgerError> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, offset).map_err(|e| {
            LedgerError::Damaged(format!(
                "{} lacks bytes {offset}..{} ({e})",
                self.path.display(),
                offset + len as u64
            ))
        })?;
        Ok(buf)
    }

    /// The entries of the chunk stored as `value` under its key: read from
    /// this file, or decoded from `value` itself (a chunk written to sled).
    pub fn chunk(&self, value: &[u8]) -> Result<Vec<Vec<u8>>, LedgerError> {
        let malformed = || LedgerError::Damaged("an entry chunk is malformed".into());
        match ChunkRef::decode(value) {
            Some(r) => {
                let bytes = self.read(r.offset, r.length as usize)?;
                let entries = decode_file_chunk(&bytes).ok_or_else(malformed)?;
                if entries.len() != r.count as usize {
                    return Err(malformed());
                }
                Ok(entries.into_iter().map(<[u8]>::to_vec).collect())
            }
            None => Ok(decode_chunk(value)
                .ok_or_else(malformed)?
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect()),
        }
    }

    /// Entry `i` of the chunk stored as `value` (`None` when the chunk is
    /// shorter), reading only that entry and its bounds from the file.
    pub fn chunk_entry(&self, value: &[u8], i: usize) -> Result<Option<Vec<u8>>, LedgerError> {
        let Some(r) = ChunkRef::decode(value) else {
            if let Some(e) = chunk_entry(value, i) {
                return Ok(Some(e.to_vec()));
            }
            // Not there: tell a short chunk from a malformed one.
            let entries = decode_chunk(value)
                .ok_or_else(|| LedgerError::Damaged("an entry chunk is malformed".into()))?;
            return Ok(entries.get(i).map(|e| e.to_vec()));
        };
        if i >= r.count as usize {
            return Ok(None);
        }
        let data = 4 + 4 * u64::from(r.count);
        // The end of the entry before (0 for the first) and of this one.
        let (start, end) = if i == 0 {
            let b = self.read(r.offset + 4, 4)?;
            (0, u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        } else {
            let b = self.read(r.offset + 4 * i as u64, 8)?;
            (
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            )
        };
        if start > end || data + u64::from(end) > u64::from(r.length) {
            return Err(LedgerError::Damaged(
                "an entry chunk's entry bounds are malformed".into(),
            ));
        }
        self.read(r.offset + data + u64::from(start), (end - start) as usize)
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_and_references_roundtrip() {
        let entries = [b"alpha".to_vec(), Vec::new(), b"gamma ray".to_vec()];
        let mut out = b"junk".to_vec();
        let len = encode_file_chunk(&entries, &mut out);
        assert_eq!(len, out.len() - 4);
        let chunk = &out[4..];
        let decoded = decode_file_chunk(chunk).expect("chunk");
        assert_eq!(decoded, vec![&b"alpha"[..], b"", b"gamma ray"]);
        assert!(decode_file_chunk(&chunk[..chunk.len() - 1]).is_none());
        assert!(decode_file_chunk(&[chunk, &[0]].concat()).is_none());
        assert!(decode_file_chunk(&[0, 0]).is_none());

        let r = ChunkRef {
            offset: 1 << 40,
            length: 77,
            count: 3,
        };
        assert_eq!(ChunkRef::decode(&r.encode()), Some(r));
        assert_eq!(r.end(), (1 << 40) + 77);
        // A chunk stored in sled starts with its count: never a reference.
        let inline = crate::storage::encode_chunk(&entries);
        assert_eq!(ChunkRef::decode(&inline), None);
    }

    #[test]
    fn entries_are_read_whole_or_one_by_one_from_either_form() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = EntryFile::open(dir.path()).expect("open");
        let entries = [b"one".to_vec(), b"".to_vec(), b"three!".to_vec()];
        let mut bytes = vec![0xee; 10];
        let length = encode_file_chunk(&entries, &mut bytes) as u32;
        file.write_at(&bytes, 0).expect("write");
        let r = ChunkRef {
            offset: 10,
            length,
            count: 3,
        }
        .encode();
        assert_eq!(file.chunk(&r).expect("chunk"), entries.to_vec());
        let inline = crate::storage::encode_chunk(&entries);
        assert_eq!(file.chunk(&inline).expect("inline"), entries.to_vec());
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(file.chunk_entry(&r, i).expect("read"), Some(e.clone()));
            assert_eq!(file.chunk_entry(&inline, i).expect("read"), Some(e.clone()));
        }
        assert_eq!(file.chunk_entry(&r, 3).expect("read"), None);
        assert_eq!(file.chunk_entry(&inline, 3).expect("read"), None);

        // Cut back (a settle's end): the reference now names missing bytes.
        file.cut(12).expect("cut");
        assert_eq!(file.len().expect("len"), 12);
        assert!(matches!(file.chunk(&r), Err(LedgerError::Damaged(_))));
        assert!(matches!(
            file.chunk_entry(&r, 2),
            Err(LedgerError::Damaged(_))
        ));
    }
}
