//! The key layout inside the ledger's sled tree (internal to a node; the
//! formats third parties read are in `docs/ledger-format.md`).
//!
//! sled's cost is per key, so entries and Merkle nodes are grouped; and no
//! stored value is ever rewritten as the ledger grows, because sled 0.34
//! keeps every old version of a value in its log until a log segment is
//! more than half garbage (a growing value rewritten on every batch left
//! the store at about 2.5x the entry bytes):
//! - **entry chunks**: key `e` + index of the chunk's first entry (u64 BE);
//!   value a reference into the entry file ([`crate::entry_file`]: the
//!   chunk's offset, length and entry count), or, in ledgers written before
//!   that file, the chunk itself: `count:u32 | count × (len:u32 | entry
//!   encoding)`. Entries are held in memory after their commit (durable in
//!   the commit journal) and written as chunks of at most
//!   [`CHUNK_ENTRIES`] entries or [`CHUNK_BYTES`] bytes once those held add
//!   up to [`crate::recent::SPILL_BYTES`], and when the ledger settles; each
//!   chunk is written once, whatever the batch size, and sled only stores
//!   its 20-byte reference (a chunk stored in sled's tree node made sled
//!   write it several times over as the node filled, split and was
//!   consolidated).
//! - **node tiles**: key `d` + level (u8) + tile (u64 BE); value the hashes of
//!   the complete subtrees `tile*256 .. tile*256+256` at that level (level >= 1;
//!   level 0 is the hash of the entry itself), 32 bytes each. A tile is
//!   written once, when its 256th node is complete. The nodes of the last,
//!   incomplete tile of each level are kept in memory ([`crate::edge`]) and
//!   recomputed when the ledger is opened. The prefix sorts before the
//!   chunks so that no tile shares a sled leaf with `m/tail`, which every
//!   batch rewrites: sled rewrites a whole leaf every few updates, and 8 KiB
//!   tiles beside the state record multiplied the disk use of one-entry
//!   batches by about 3. (Ledgers written before this layout kept tiles,
//!   complete or not, under `n`; [`LEGACY_TILE_PREFIX`] tiles are moved on
//!   open.)
//! - **checkpoints**: key `c` + tree size (u64 BE); value the signed note.
//! - **payload index**: key `p/` + commitment digest (32 bytes); value
//!   `segment:u64 | offset:u64 | payload length:u64` (BE), where the
//!   payload's record is in its segment file ([`crate::payloads`]). Written
//!   in the batch of the entry that commits to the payload, removed when the
//!   payload is erased.
//! - **metadata**: `m/state` (size, last entry hash, last timestamp,
//!   frontier and the commit journal's current lap, [`crate::journal`];
//!   written when the ledger settles; states written before laps end with
//!   the frontier and mean lap 0), `m/tail` (size, last entry
//!   hash, last timestamp of the entries in chunks; written with every
//!   chunk write; on open the journal must reach it), `m/entries-end` (how
//!   far the entry file is settled, u64 BE),
//!   `m/origin`, and `m/payload-end`
//!   (`segment:u64 | end:u64`,
//!   BE: how far the payload segments are committed; written by every batch
//!   that carries payloads).
//! - **pending erasures**: key `m/erasing/` + index of the entry whose
//!   payload is being erased (u64 BE); empty value. Written in the same
//!   batch as the `payload.erased` entry that records the erasure, removed
//!   once the payload is destroyed; an open finishes any still present, so
//!   a payload is never gone without its erasure on record, and never kept
//!   after its erasure is recorded.
//! - **kind index**: key `k/` + kind + `\0` + entry index (u64 BE); empty
//!   value, for entries of the kinds marked indexed by `m/kind-index/` +
//!   kind (the node indexes `trust.changed`, so its trust store is checked
//!   against the ledger without reading it all). Written in the batch of
//!   the entry itself.

use crate::hash::Hash;

/// Most entries in one chunk.
pub const CHUNK_ENTRIES: usize = 4096;
/// Chunks are closed before they exceed this many bytes.
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// Node hashes per tile.
pub const TILE_NODES: u64 = 256;
/// First byte of tile keys.
pub const TILE_PREFIX: u8 = b'd';
/// First byte of tile keys in ledgers written before tiles moved to
/// [`TILE_PREFIX`].
pub const LEGACY_TILE_PREFIX: u8 = b'n';

/// Key of the chunk whose first entry is `start`.
pub fn chunk_key(start: u64) -> [u8; 9] {
    let mut k = [b'e'; 9];
    k[1..].copy_from_slice(&start.to_be_bytes());
    k
}

/// The first entry index of a chunk key.
pub fn chunk_start(key: &[u8]) -> Option<u64> {
    match key {
        [b'e', rest @ ..] if rest.len() == 8 => rest.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// Encodes a chunk.
pub fn encode_chunk<E: AsRef<[u8]>>(entries: &[E]) -> Vec<u8> {
    let total: usize = entries.iter().map(|e| e.as_ref().len() + 4).sum();
    let mut out = Vec::with_capacity(4 + total);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        let e = e.as_ref();
        out.extend_from_slice(&(e.len() as u32).to_be_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// Decodes a chunk into its entries' bytes; `None` when malformed.
pub fn decode_chunk(value: &[u8]) -> Option<Vec<&[u8]>> {
    let count = u32::from_be_bytes(value.get(..4)?.try_into().ok()?) as usize;
    let mut out = Vec::with_capacity(count.min(CHUNK_ENTRIES));
    let mut pos = 4usize;
    for _ in 0..count {
        let len = u32::from_be_bytes(value.get(pos..pos + 4)?.try_into().ok()?) as usize;
        pos += 4;
        out.push(value.get(pos..pos.checked_add(len)?)?);
        pos += len;
    }
    (pos == value.len()).then_some(out)
}

/// Entry `i` of a chunk, found by walking the length prefixes (no
/// allocation); `None` when the chunk is shorter or malformed up to there.
pub fn chunk_entry(value: &[u8], i: usize) -> Option<&[u8]> {
    let count = u32::from_be_bytes(value.get(..4)?.try_into().ok()?) as usize;
    if i >= count {
        return None;
    }
    let mut pos = 4usize;
    for _ in 0..i {
        let len = u32::from_be_bytes(value.get(pos..pos + 4)?.try_into().ok()?) as usize;
        pos = pos.checked_add(4 + len)?;
    }
    let len = u32::from_be_bytes(value.get(pos..pos + 4)?.try_into().ok()?) as usize;
    value.get(pos + 4..(pos + 4).checked_add(len)?)
}

/// Key of the tile holding node `index` at `level`.
pub fn tile_key(level: u8, index: u64) -> [u8; 10] {
    let mut k = [TILE_PREFIX; 10];
    k[1] = level;
    k[2..].copy_from_slice(&(index / TILE_NODES).to_be_bytes());
    k
}

/// The hash of node `index` inside its tile's value.
pub fn tile_node(tile: &[u8], index: u64) -> Option<Hash> {
    let at = (index % TILE_NODES) as usize * 32;
    tile.get(at..at + 32)?.try_into().ok()
}

/// First bytes of payload index keys.
pub const PAYLOAD_INDEX_PREFIX: &[u8] = b"p/";
/// Key of the committed end of the payload segments.
pub const PAYLOAD_END_KEY: &[u8] = b"m/payload-end";

/// Key of the index record of the payload whose commitment digest is
/// `digest`.
pub fn payload_key(digest: &Hash) -> [u8; 34] {
    let mut k = [0u8; 34];
    k[..2].copy_from_slice(PAYLOAD_INDEX_PREFIX);
    k[2..].copy_from_slice(digest);
    k
}

/// First bytes of kind index keys: `k/<kind>\0<index:u64 BE>`, one empty
/// value per entry of an indexed kind.
pub const KIND_INDEX_PREFIX: &[u8] = b"k/";
/// First bytes of the markers of indexed kinds: `m/kind-index/<kind>`.
/// A kind with a marker is indexed by every append, in the entries' batch.
pub const KIND_MARKER_PREFIX: &[u8] = b"m/kind-index/";

/// The prefix of the kind index keys of `kind`.
pub fn kind_index_prefix(kind: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(KIND_INDEX_PREFIX.len() + kind.len() + 1);
    k.extend_from_slice(KIND_INDEX_PREFIX);
    k.extend_from_slice(kind.as_bytes());
    k.push(0);
    k
}

/// The kind index key of entry `index` of kind `kind`.
pub fn kind_index_key(kind: &str, index: u64) -> Vec<u8> {
    let mut k = kind_index_prefix(kind);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// The entry index in a kind index key (after its prefix).
pub fn kind_index_entry(prefix_len: usize, key: &[u8]) -> Option<u64> {
    let rest = key.get(prefix_len..)?;
    rest.try_into().ok().map(u64::from_be_bytes)
}

/// The marker key saying `kind` is indexed.
pub fn kind_marker_key(kind: &str) -> Vec<u8> {
    [KIND_MARKER_PREFIX, kind.as_bytes()].concat()
}

/// First bytes of pending erasure keys.
pub const PENDING_ERASURE_PREFIX: &[u8] = b"m/erasing/";

/// Key of the pending erasure of the payload of entry `index`.
pub fn pending_erasure_key(index: u64) -> [u8; 18] {
    let mut k = [0u8; 18];
    k[..10].copy_from_slice(PENDING_ERASURE_PREFIX);
    k[10..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The entry index of a pending erasure key.
pub fn pending_erasure_index(key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(PENDING_ERASURE_PREFIX)?;
    rest.try_into().ok().map(u64::from_be_bytes)
}

/// Key of the checkpoint of `size` entries.
pub fn checkpoint_key(size: u64) -> [u8; 9] {
    let mut k = [b'c'; 9];
    k[1..].copy_from_slice(&size.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_roundtrip_and_reject_garbage() {
        let es = vec![vec![1u8, 2, 3], vec![], vec![9u8; 300]];
        let c = encode_chunk(&es);
        let d = decode_chunk(&c).unwrap();
        assert_eq!(d.iter().map(|e| e.to_vec()).collect::<Vec<_>>(), es);
        assert!(decode_chunk(&c[..c.len() - 1]).is_none());
        assert!(decode_chunk(&[c.clone(), vec![0]].concat()).is_none());
        assert!(decode_chunk(&[0, 0, 0]).is_none());
        assert_eq!(chunk_start(&chunk_key(77)), Some(77));
        for (i, e) in es.iter().enumerate() {
            assert_eq!(chunk_entry(&c, i), Some(&e[..]));
        }
        assert_eq!(chunk_entry(&c, 3), None);
        assert_eq!(chunk_entry(&c[..c.len() - 1], 2), None);
        assert_eq!(chunk_entry(&[0, 0, 0, 9], 0), None);
    }

    #[test]
    fn pending_erasure_keys_roundtrip() {
        let k = pending_erasure_key(0x0102_0304_0506_0708);
        assert_eq!(pending_erasure_index(&k), Some(0x0102_0304_0506_0708));
        assert_eq!(pending_erasure_index(&k[..17]), None);
        assert_eq!(pending_erasure_index(b"m/payload-end"), None);
    }
}
