//! The right edge of the stored Merkle tree, with no I/O.
//!
//! Interior nodes (levels >= 1) are stored in tiles of [`TILE_NODES`] hashes,
//! and a tile is written once, when it is complete, and never rewritten
//! (rewriting a growing value on every batch left most of sled's log as
//! garbage). The nodes of the last, incomplete tile of each level live only
//! in [`PartialTiles`], in memory: the writer adds the nodes each batch
//! completes and hands back every tile that fills up, readers take a cheap
//! snapshot for proofs, and [`PartialTiles::rebuild`] recomputes the whole
//! edge when a ledger is opened, from at most `2 * TILE_NODES - 2` entries
//! and two complete tiles per level.

use std::ops::Range;
use std::sync::Arc;

use crate::hash::{node_hash, Hash};
use crate::storage::TILE_NODES;

/// The index of the first node at `level` that is not in a complete tile,
/// in a tree of `size` leaves (`level >= 1`).
pub fn first_partial(size: u64, level: u8) -> u64 {
    let complete = size.checked_shr(u32::from(level)).unwrap_or(0);
    complete - complete % TILE_NODES
}

/// Where [`PartialTiles::rebuild`] reads what is stored.
pub trait EdgeSource {
    /// The storage error.
    type Error;
    /// The leaf hashes of entries `range`, in order (all of them).
    fn leaf_hashes(&self, range: Range<u64>) -> Result<Vec<Hash>, Self::Error>;
    /// The [`TILE_NODES`] hashes of the complete tile `tile` at `level`.
    fn tile(&self, level: u8, tile: u64) -> Result<Vec<Hash>, Self::Error>;
}

/// The nodes of the last, incomplete tile of every level (level `l` at
/// position `l - 1`), for a tree of a known size. Levels are shared between
/// clones until one of them changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialTiles {
    levels: Vec<Arc<Vec<Hash>>>,
}

/// A complete tile handed back by [`PartialTiles::push`], to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteTile {
    /// Level of its nodes (>= 1).
    pub level: u8,
    /// Tile number: it holds nodes `tile * TILE_NODES ..` of its level.
    pub tile: u64,
    /// The node hashes, concatenated.
    pub bytes: Vec<u8>,
}

impl PartialTiles {
    /// The hash of node `index` at `level` (>= 1) when it is in this edge.
    /// The caller knows from the tree size that the node's tile is the
    /// incomplete one ([`first_partial`]).
    pub fn node(&self, level: u8, index: u64) -> Option<Hash> {
        let nodes = self.levels.get(usize::from(level).checked_sub(1)?)?;
        nodes
            .get(usize::try_from(index % TILE_NODES).ok()?)
            .copied()
    }

    /// Records node `index` at `level` (>= 1), which just became complete
    /// (nodes arrive in index order per level). Returns the tile it completed,
    /// if any; that tile leaves the edge. Errors when `index` is not the next
    /// node of its level's tile.
    pub fn push(
        &mut self,
        level: u8,
        index: u64,
        hash: &Hash,
    ) -> Result<Option<CompleteTile>, String> {
        let Some(at) = usize::from(level).checked_sub(1) else {
            return Err("leaves are not kept in Merkle tiles".into());
        };
        while self.levels.len() <= at {
            self.levels.push(Arc::default());
        }
        let nodes = Arc::make_mut(&mut self.levels[at]);
        if nodes.len() as u64 != index % TILE_NODES {
            return Err(format!(
                "the Merkle tile at level {level} holding node {index} has {} nodes, not {}",
                nodes.len(),
                index % TILE_NODES
            ));
        }
        nodes.push(*hash);
        if nodes.len() as u64 == TILE_NODES {
            let bytes = nodes.concat();
            nodes.clear();
            return Ok(Some(CompleteTile {
                level,
                tile: index / TILE_NODES,
                bytes,
            }));
        }
        Ok(None)
    }

    /// Recomputes the edge of a tree of `size` leaves from what is stored:
    /// per level, the nodes after the last complete tile, hashed from their
    /// children (leaves for level 1; a complete tile and/or the edge one
    /// level down above that).
    pub fn rebuild<S: EdgeSource>(size: u64, src: &S) -> Result<Self, S::Error> {
        let mut levels: Vec<Arc<Vec<Hash>>> = Vec::new();
        for level in 1..64u8 {
            let count = size >> level;
            if count == 0 {
                break;
            }
            let first = first_partial(size, level);
            let children = if level == 1 {
                src.leaf_hashes(2 * first..2 * count)?
            } else {
                let below = level - 1;
                let below_first = first_partial(size, below);
                // Children 2*first .. 2*count at level `below`: whole stored
                // tiles up to `below_first`, then that level's edge.
                let mut children = Vec::with_capacity(2 * (count - first) as usize);
                let mut tile = 2 * first / TILE_NODES;
                while tile * TILE_NODES < below_first.min(2 * count) {
                    children.extend(src.tile(below, tile)?);
                    tile += 1;
                }
                if let Some(edge) = levels.last() {
                    children.extend(edge.iter().copied());
                }
                children.truncate(2 * (count - first) as usize);
                children
            };
            let nodes: Vec<Hash> = children
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(Arc::new(nodes));
        }
        Ok(Self { levels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::merkle::{Frontier, MemoryTree, NodeSource as _};
    use std::collections::HashMap;

    /// Complete tiles written so far, and the leaves.
    #[derive(Default)]
    struct Stored {
        leaves: Vec<Hash>,
        tiles: HashMap<(u8, u64), Vec<u8>>,
    }

    impl EdgeSource for Stored {
        type Error = String;
        fn leaf_hashes(&self, range: Range<u64>) -> Result<Vec<Hash>, String> {
            self.leaves
                .get(range.start as usize..range.end as usize)
                .map(<[Hash]>::to_vec)
                .ok_or_else(|| format!("leaves {range:?} missing"))
        }
        fn tile(&self, level: u8, tile: u64) -> Result<Vec<Hash>, String> {
            let t = self
                .tiles
                .get(&(level, tile))
                .ok_or_else(|| format!("tile {level}/{tile} missing"))?;
            Ok(t.chunks(32).map(|c| c.try_into().unwrap()).collect())
        }
    }

    fn node_of(
        size: u64,
        stored: &Stored,
        edge: &PartialTiles,
        level: u8,
        index: u64,
    ) -> Option<Hash> {
        if index < first_partial(size, level) {
            let t = stored.tiles.get(&(level, index / TILE_NODES))?;
            let at = (index % TILE_NODES) as usize * 32;
            t.get(at..at + 32)?.try_into().ok()
        } else {
            edge.node(level, index)
        }
    }

    /// Appends leaves one at a time; after every size of interest, every
    /// complete subtree is found either in a stored tile or in the edge, and
    /// rebuilding from what is stored gives the same edge.
    #[test]
    fn push_and_rebuild_agree_with_the_memory_tree() {
        let mut mem = MemoryTree::new();
        let mut stored = Stored::default();
        let mut frontier = Frontier::new();
        let mut edge = PartialTiles::default();
        let checks = [1u64, 2, 3, 511, 512, 513, 1023, 1024, 1500, 2048, 4097];
        for i in 0..4097u64 {
            let leaf = leaf_hash(&i.to_be_bytes());
            mem.push(leaf);
            stored.leaves.push(leaf);
            let mut done = Vec::new();
            frontier.push_with(leaf, |level, index, h| {
                done.push(edge.push(level, index, h).unwrap());
            });
            for t in done.into_iter().flatten() {
                assert_eq!(t.bytes.len() as u64, TILE_NODES * 32);
                stored.tiles.insert((t.level, t.tile), t.bytes);
            }
            let size = i + 1;
            if !checks.contains(&size) {
                continue;
            }
            for level in 1..13u8 {
                for index in 0..(size >> level) {
                    assert_eq!(
                        node_of(size, &stored, &edge, level, index),
                        Some(mem.node(level, index).unwrap()),
                        "size {size}, level {level}, index {index}"
                    );
                }
            }
            let rebuilt = PartialTiles::rebuild(size, &stored).unwrap();
            for level in 1..13u8 {
                for index in first_partial(size, level)..(size >> level) {
                    assert_eq!(rebuilt.node(level, index), edge.node(level, index));
                }
            }
        }
        // Nothing but complete tiles was ever stored.
        assert!(stored
            .tiles
            .values()
            .all(|t| t.len() as u64 == TILE_NODES * 32));
    }

    #[test]
    fn rebuild_reports_what_is_missing() {
        let stored = Stored::default();
        assert!(PartialTiles::rebuild(0, &stored).unwrap().levels.is_empty());
        let err = PartialTiles::rebuild(10, &stored).unwrap_err();
        assert!(err.contains("leaves"), "{err}");
    }

    #[test]
    fn push_refuses_out_of_order_nodes() {
        let mut edge = PartialTiles::default();
        assert!(edge.push(1, 0, &[0; 32]).unwrap().is_none());
        assert!(edge.push(1, 2, &[0; 32]).is_err());
        assert!(edge.push(0, 0, &[0; 32]).is_err());
    }
}
