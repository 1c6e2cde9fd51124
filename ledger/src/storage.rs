//! The key layout inside the ledger's sled tree (internal to a node; the
//! formats third parties read are in `docs/ledger-format.md`).
//!
//! sled's cost is per key, so entries and Merkle nodes are grouped:
//! - **entry chunks**: key `e` + index of the chunk's first entry (u64 BE);
//!   value `count:u32 | count × (len:u32 | entry encoding)`. A batch is
//!   written as chunks of at most [`CHUNK_ENTRIES`] entries or
//!   [`CHUNK_BYTES`] bytes (so sled keeps them in its log, not as blob files).
//! - **node tiles**: key `n` + level (u8) + tile (u64 BE); value the hashes of
//!   the complete subtrees `tile*256 .. tile*256+len` at that level (level >= 1;
//!   level 0 is the hash of the entry itself), 32 bytes each. Tiles fill up
//!   as the tree grows; a partial tile is rewritten when it gains nodes.
//! - **checkpoints**: key `c` + tree size (u64 BE); value the signed note.
//! - **metadata**: `m/state` (size, last entry hash, last timestamp,
//!   frontier) and `m/origin`.

use crate::hash::Hash;

/// Most entries in one chunk.
pub const CHUNK_ENTRIES: usize = 256;
/// Chunks are closed once they reach this many bytes.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Node hashes per tile.
pub const TILE_NODES: u64 = 256;

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
pub fn encode_chunk(entries: &[Vec<u8>]) -> Vec<u8> {
    let total: usize = entries.iter().map(|e| e.len() + 4).sum();
    let mut out = Vec::with_capacity(4 + total);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
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

/// Key of the tile holding node `index` at `level`.
pub fn tile_key(level: u8, index: u64) -> [u8; 10] {
    let mut k = [b'n'; 10];
    k[1] = level;
    k[2..].copy_from_slice(&(index / TILE_NODES).to_be_bytes());
    k
}

/// The hash of node `index` inside its tile's value.
pub fn tile_node(tile: &[u8], index: u64) -> Option<Hash> {
    let at = (index % TILE_NODES) as usize * 32;
    tile.get(at..at + 32)?.try_into().ok()
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
    }
}
