//! The RFC 6962 / RFC 9162 Merkle tree math, with no I/O: tree heads,
//! inclusion and consistency proofs and their verification, and the
//! [`Frontier`] (the roots of the complete subtrees of a growing tree) that
//! appenders and verifiers keep in memory.
//!
//! Proofs are produced from a [`NodeSource`], which hands out the hash of any
//! *complete* subtree (level `l`, index `i` covers leaves `[i*2^l, (i+1)*2^l)`).
//! Every range the RFC recursion visits is either such a complete subtree or a
//! right edge made of at most `log2(n)` of them, so a proof costs O(log n)
//! node reads.

use crate::hash::{empty_root, node_hash, Hash};

/// Where proof generation reads complete-subtree hashes from.
pub trait NodeSource {
    /// The error of the underlying storage.
    type Error: From<RangeError>;
    /// The hash of the complete subtree at `level` and `index`. Level 0 is the
    /// leaf hash of entry `index`.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// A proof or root was asked for outside the tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RangeError(pub String);

/// The largest power of two strictly smaller than `n` (`n >= 2`).
pub fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// `MTH(D[start:end])` for a range the RFC recursion can visit (`start` is a
/// multiple of the largest power of two not above `end - start`).
pub fn subtree_hash<S: NodeSource>(src: &S, start: u64, end: u64) -> Result<Hash, S::Error> {
    let n = end
        .checked_sub(start)
        .filter(|n| *n > 0)
        .ok_or_else(|| RangeError(format!("empty or inverted leaf range {start}..{end}")))?;
    if n.is_power_of_two() && start % n == 0 {
        let level = n.trailing_zeros();
        return src.node(level as u8, start >> level);
    }
    let k = split_point(n);
    let left = subtree_hash(src, start, start + k)?;
    let right = subtree_hash(src, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The tree head `MTH(D[0:size])`.
pub fn root<S: NodeSource>(src: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    subtree_hash(src, 0, size)
}

/// The inclusion proof `PATH(index, D[0:size])` of RFC 9162 §2.1.3.1, from the
/// leaf's sibling up to the root's child.
pub fn inclusion_proof<S: NodeSource>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, S::Error> {
    if index >= size {
        return Err(RangeError(format!("entry {index} is not in a tree of {size} entries")).into());
    }
    let mut out = Vec::new();
    path(src, index, 0, size, &mut out)?;
    Ok(out)
}

fn path<S: NodeSource>(
    src: &S,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < start + k {
        path(src, m, start, start + k, out)?;
        out.push(subtree_hash(src, start + k, end)?);
    } else {
        path(src, m, start + k, end, out)?;
        out.push(subtree_hash(src, start, start + k)?);
    }
    Ok(())
}

/// The consistency proof `PROOF(first, D[0:second])` of RFC 9162 §2.1.4.1.
/// Empty when `first == second` or `first == 0`.
pub fn consistency_proof<S: NodeSource>(
    src: &S,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, S::Error> {
    if first > second {
        return Err(RangeError(format!(
            "cannot prove a tree of {first} entries consistent with a smaller one of {second}"
        ))
        .into());
    }
    let mut out = Vec::new();
    if first == 0 || first == second {
        return Ok(out);
    }
    subproof(src, first, 0, second, true, &mut out)?;
    Ok(out)
}

fn subproof<S: NodeSource>(
    src: &S,
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = end - start;
    if m == n {
        if !complete {
            out.push(subtree_hash(src, start, end)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(src, m, start, start + k, complete, out)?;
        out.push(subtree_hash(src, start + k, end)?);
    } else {
        subproof(src, m - k, start + k, end, false, out)?;
        out.push(subtree_hash(src, start, start + k)?);
    }
    Ok(())
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2). Never panics.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2). A tree is consistent
/// with itself only with an empty proof and equal roots; the empty tree is
/// consistent with every tree with an empty proof. Never panics.
pub fn verify_consistency(
    first: u64,
    first_root: &Hash,
    second: u64,
    second_root: &Hash,
    proof: &[Hash],
) -> bool {
    if first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    if first == 0 {
        return proof.is_empty() && *first_root == empty_root();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((first_c, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first_c, *first_c);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *first_root && sr == *second_root && snode == 0
}

/// The roots of the complete subtrees of a tree of `size` leaves, largest
/// (leftmost) first: one per set bit of `size`. Enough to append and to
/// compute the tree head without reading anything else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a frontier from its parts; `None` when the number of hashes
    /// does not match the number of set bits of `size`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Self> {
        (hashes.len() == size.count_ones() as usize).then_some(Self { size, hashes })
    }

    /// Reads the frontier of a tree of `size` leaves from a node source
    /// (one read per set bit of `size`).
    pub fn load<S: NodeSource>(src: &S, size: u64) -> Result<Self, S::Error> {
        let mut hashes = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1u64 << level) != 0 {
                hashes.push(src.node(level as u8, start >> level)?);
                start += 1u64 << level;
            }
        }
        Ok(Self { size, hashes })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The complete-subtree roots, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends a leaf hash; `created` is told about every interior node
    /// (level >= 1) that became complete, as `(level, index, hash)`.
    pub fn push_with(&mut self, leaf: Hash, mut created: impl FnMut(u8, u64, &Hash)) {
        let index = self.size;
        let mut h = leaf;
        let mut level = 0u8;
        let mut s = self.size;
        while s & 1 == 1 {
            let Some(left) = self.hashes.pop() else { break };
            h = node_hash(&left, &h);
            level += 1;
            s >>= 1;
            created(level, index >> level, &h);
        }
        self.hashes.push(h);
        self.size += 1;
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_with(leaf, |_, _, _| {});
    }

    /// The tree head of the current size.
    pub fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, h| node_hash(h, &acc))
    }
}

/// A whole tree in memory: every complete subtree at every level. Used by
/// tests and benches, and as the reference for the stored tree.
#[derive(Debug, Default, Clone)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let levels = &mut self.levels;
        self.frontier.push_with(leaf, |level, _index, h| {
            let level = level as usize;
            if levels.len() <= level {
                levels.push(Vec::new());
            }
            levels[level].push(*h);
        });
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The current tree head.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }
}

impl NodeSource for MemoryTree {
    type Error = RangeError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, RangeError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.levels.get(level as usize)?.get(i))
            .copied()
            .ok_or_else(|| {
                RangeError(format!(
                    "no complete subtree at level {level}, index {index}"
                ))
            })
    }
}

#[cfg(test)]
mod tests;
