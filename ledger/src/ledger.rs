//! The ledger on disk: entries, Merkle nodes, checkpoints and metadata in one
//! sled tree, payloads beside it, and group-committed durable appends.
//!
//! # Layout
//! `<dir>/sled/` is the sled database; `<dir>/payloads/` holds the payload
//! segment files `seg-<16 hex digits>` ([`crate::payloads`]; ledgers written
//! before segments also have one file per payload there), the commit
//! journal and the entry file of entry chunks ([`crate::entry_file`]). The
//! keys of the single sled tree are described in [`crate::storage`]: entry
//! chunk references,
//! complete tiles of Merkle nodes, checkpoints, the payload index and the
//! state records. Nothing stored is rewritten as the ledger grows: each batch
//! adds the tiles it completed and the index keys of its payloads and
//! kinds; its entries are held in memory ([`crate::recent`]) until those
//! held add up to a quarter MiB or the ledger settles, then written as
//! whole chunks; the nodes of the incomplete tiles at the tree's right edge
//! are kept in memory ([`crate::edge`]) and recomputed on open. What sled
//! lacks after a crash, the commit journal has (below); payload bytes past
//! the recorded end are destroyed on open.
//!
//! # Group commit and durability
//! An appender prepares its entries (checks, canonical JSON, the salted
//! commitment and segment record of its payload; nothing is written) and
//! queues them. When no commit is running it becomes the leader: it takes
//! *every* queued job, takes the writer lock and commits them as one batch
//! with **one write and one `fdatasync`**: the batch (its sealed entries,
//! erasure marks and payload records) is appended to the commit journal
//! ([`crate::journal`]) and synced; that is when it is durable. Then its
//! payload records go to the current payload segment and its sled batch
//! is applied (when it holds anything), neither synced; only after that are the jobs' results
//! filled in and the waiting appenders woken (appenders that queued during
//! a commit wait on a condition variable, not on the writer lock, and one
//! of them leads the next batch). So nobody is acknowledged before the
//! batch is durable, and N concurrent appenders cost one fsync per batch.
//!
//! The state with the Merkle frontier (`m/state`) is written when the
//! ledger *settles*, with the chunks of the entries still held: the
//! payload segment synced, sled
//! flushed and its files synced ([`crate::durability::SledSync`], because
//! sled's own flush ends in `sync_file_range`, which survives a process
//! crash but not a power cut), with the journal's next lap number, then the
//! journal restarts from its beginning with that lap (the file is reused,
//! not cut; [`crate::journal`]). It
//! settles at every checkpoint and other non-append write, when a journal
//! lap passes [`SETTLE_BYTES`], and when the ledger is closed. Opening a
//! ledger applies again every journaled batch of the current lap (sled has
//! what was settled), writes back journaled payload records missing from
//! their segment, and settles. Chunks written since the last settle (the
//! entry file is synced only when the ledger settles) are dropped first and
//! written again from the journal; each chunk write also writes a tail
//! record (`m/tail`: size, last hash, last time, of the entries in chunks),
//! which the journal must reach, or the ledger opens refusing appends.
//!
//! # Erasure
//! An erasure is recorded before the payload is destroyed: the
//! `payload.erased` entry is committed like any append, and its sled batch
//! also holds a pending-erasure key for the erased entry; then the payload
//! is overwritten and the key removed. Opening the ledger finishes every
//! erasure still pending, so a crash at any point leaves either the payload
//! and no erasure entry, or the entry and (after the next open) no payload.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use vigil_crypto::SigningKey;

use crate::checkpoint::{check_origin, Checkpoint, CheckpointError, SignedCheckpoint};
use crate::durability::SledSync;
use crate::edge::{first_partial, EdgeSource, PartialTiles};
use crate::entry::{
    canonical_json, Entry, EntryError, NewEntry, PayloadCommitment, KIND_PAYLOAD_ERASED,
};
use crate::entry_file::{ChunkRef, EntryFile};
use crate::error::LedgerError;
use crate::handover::{Handover, HandoverError, KeyChain, KIND_KEY_ROTATED};
use crate::hash::{leaf_hash, Hash};
use crate::journal::{self, Journal, JournalRecord, SETTLE_BYTES};
use crate::merkle::{self, Frontier, NodeSource};
use crate::payloads::{self, PayloadStore, PayloadWriter, PreparedPayload, StoredPayload};
use crate::recent::{Recent, SPILL_BYTES};
use crate::storage::{
    checkpoint_key, chunk_key, chunk_start, kind_index_entry, kind_index_key, kind_index_prefix,
    kind_marker_key, pending_erasure_index, pending_erasure_key, tile_key, tile_node,
    KIND_MARKER_PREFIX, LEGACY_TILE_PREFIX, PENDING_ERASURE_PREFIX, TILE_NODES, TILE_PREFIX,
};

const STATE_KEY: &[u8] = b"m/state";
/// The end of the entries written as chunks: `size u64 | last hash | last
/// timestamp u64` (big-endian), written with every chunk write (by earlier
/// versions, with every batch); the full state (`m/state`, with the Merkle
/// frontier) only when the ledger settles. On open, chunks past the settled
/// state are dropped and written again from the journal, which must then
/// reach the tail.
const TAIL_KEY: &[u8] = b"m/tail";
/// How far the entry file ([`crate::entry_file`]) is settled: `end u64`
/// (big-endian), written when the ledger settles, after the file is synced.
const ENTRIES_END_KEY: &[u8] = b"m/entries-end";

fn encode_tail(st: &State) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.extend_from_slice(&st.size.to_be_bytes());
    out.extend_from_slice(&st.last_hash);
    out.extend_from_slice(&st.last_ts.to_be_bytes());
    out
}

fn decode_tail(b: &[u8]) -> Option<(u64, Hash, u64)> {
    Some((
        u64::from_be_bytes(b.get(0..8)?.try_into().ok()?),
        b.get(8..40)?.try_into().ok()?,
        u64::from_be_bytes(b.get(40..48)?.try_into().ok()?),
    ))
}
const ORIGIN_KEY: &[u8] = b"m/origin";

/// What the writer knows about the end of the ledger. Only the first four
/// fields are stored (`m/state`, followed by the journal's lap when the
/// ledger settled); `edge` is recomputed on open.
#[derive(Debug, Clone, Default)]
struct State {
    size: u64,
    last_hash: Hash,
    last_ts: u64,
    frontier: Frontier,
    edge: PartialTiles,
}

impl State {
    /// The stored state, with the journal lap that starts once it is
    /// durable: `size u64 | last hash | last timestamp u64 | n u8 | n x
    /// frontier hash | lap u64` (big-endian).
    fn encode(&self, lap: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(57 + 32 * self.frontier.hashes().len());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.last_hash);
        out.extend_from_slice(&self.last_ts.to_be_bytes());
        out.push(self.frontier.hashes().len() as u8);
        for h in self.frontier.hashes() {
            out.extend_from_slice(h);
        }
        out.extend_from_slice(&lap.to_be_bytes());
        out
    }

    /// A stored state and its journal lap (0 in a state written before
    /// laps, which ends with the frontier).
    fn decode(b: &[u8]) -> Option<(Self, u64)> {
        let size = u64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
        let last_hash: Hash = b.get(8..40)?.try_into().ok()?;
        let last_ts = u64::from_be_bytes(b.get(40..48)?.try_into().ok()?);
        let n = *b.get(48)? as usize;
        let rest = b.get(49..)?;
        let (hashes, lap) = if rest.len() == 32 * n {
            (rest, 0)
        } else if rest.len() == 32 * n + 8 {
            let (hashes, lap) = rest.split_at(32 * n);
            (hashes, u64::from_be_bytes(lap.try_into().ok()?))
        } else {
            return None;
        };
        let hashes = hashes
            .chunks(32)
            .map(|c| c.try_into().ok())
            .collect::<Option<Vec<Hash>>>()?;
        Some((
            Self {
                size,
                last_hash,
                last_ts,
                frontier: Frontier::from_parts(size, hashes)?,
                edge: PartialTiles::default(),
            },
            lap,
        ))
    }
}

type JobResult = Result<Range<u64>, String>;

struct Job {
    entries: Vec<Entry>,
    /// The payloads the entries commit to, in entry order.
    payloads: Vec<PreparedPayload>,
    /// For an erasure entry: the entry whose payload it erases, marked
    /// pending in the same batch.
    erasing: Option<u64>,
    slot: Slot,
}

/// Appends waiting to be committed, and whether a leader is committing.
#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    leading: bool,
}

struct Writer {
    state: State,
    sync: SledSync,
    /// Where each batch is made durable first ([`crate::journal`]).
    journal: Journal,
    /// Appends to the payload segments and erases payloads.
    payloads: PayloadWriter,
    /// Where the next chunk goes in the entry file.
    entries_end: u64,
    /// Buffers reused by every commit: the journal record, the chunks.
    /// (Fresh buffers this big cost a page fault per page each time.)
    record_buf: Vec<u8>,
    chunk_buf: Vec<u8>,
    /// Why every append is refused: set when a commit failed half-way (the
    /// in-memory state can no longer be trusted until the ledger is reopened)
    /// or when the tree's edge could not be recomputed on open.
    poisoned: Option<String>,
    /// The kinds whose entries are indexed ([`Ledger::index_kind`]).
    indexed_kinds: Vec<String>,
    /// How many journaled batches opening the ledger applied.
    replayed: usize,
}

/// What readers see of the committed ledger: its size, its root and the
/// right edge of its tree. Replaced after every commit.
#[derive(Debug, Clone)]
struct View {
    size: u64,
    root: Hash,
    /// `Err` (why) when the edge could not be recomputed on open.
    edge: Result<PartialTiles, String>,
}

struct Inner {
    dir: PathBuf,
    db: sled::Db,
    /// Reads payloads; writing them belongs to [`Writer::payloads`].
    payloads: PayloadStore,
    /// The entry chunks (written by the writer, at [`Writer::entries_end`]).
    entries: EntryFile,
    queue: Mutex<Queue>,
    /// Signalled under `queue` when a leader has filled in its jobs' results.
    committed: Condvar,
    writer: Mutex<Writer>,
    /// Held through a whole erasure (record, then destroy), so that two
    /// erasures of one payload never both get recorded.
    erasing: Mutex<()>,
    /// Locked only briefly (never while holding it, take `writer`), so
    /// readers do not wait for a commit's fsync.
    view: Mutex<Arc<View>>,
    /// Entries committed but not yet written as chunks.
    recent: Recent,
}

/// A ledger opened from its directory. Cheap to clone; all clones share one
/// writer, so appends from many threads are group-committed together.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ledger({})", self.inner.dir.display())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

type Slot = Arc<Mutex<Option<JobResult>>>;

/// The leader role of a group commit over the jobs whose result slots it
/// holds. Ends when dropped, also if the commit panicked: a job left without
/// a result gets an error, then every waiting appender is woken, so none
/// waits for a leader that is gone.
struct Leading<'a> {
    inner: &'a Inner,
    slots: Vec<Slot>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        for slot in &self.slots {
            lock(slot)
                .get_or_insert_with(|| Err("the commit was interrupted; reopen the ledger".into()));
        }
        lock(&self.inner.queue).leading = false;
        self.inner.committed.notify_all();
    }
}

/// Reads complete-subtree hashes of the committed tree of `view.size`
/// leaves: from the sled tree's complete tiles, or from the in-memory edge.
struct StoredNodes<'a> {
    tree: &'a sled::Tree,
    entries: &'a EntryFile,
    recent: &'a Recent,
    view: Arc<View>,
}

impl NodeSource for StoredNodes<'_> {
    type Error = LedgerError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, LedgerError> {
        if level == 0 {
            let bytes = entry_bytes(self.tree, self.entries, self.recent, index)?
                .ok_or_else(|| LedgerError::Damaged(format!("entry {index} is missing")))?;
            return Ok(leaf_hash(&bytes));
        }
        let missing = || {
            LedgerError::Damaged(format!(
                "Merkle node at level {level}, index {index} is missing"
            ))
        };
        if index < first_partial(self.view.size, level) {
            // Held with the entries that completed it, or written (read in
            // place: no copy of the tile on this proof path).
            let key = tile_key(level, index);
            let node = match self.recent.tile(&key) {
                Some(held) => tile_node(&held, index),
                None => self.tree.get(key)?.and_then(|t| tile_node(&t, index)),
            };
            return node.ok_or_else(missing);
        }
        match &self.view.edge {
            Ok(edge) => edge.node(level, index).ok_or_else(missing),
            Err(why) => Err(LedgerError::Damaged(why.clone())),
        }
    }
}

/// What [`PartialTiles::rebuild`] reads on open.
struct StoredEdge<'a> {
    tree: &'a sled::Tree,
    entries: &'a EntryFile,
}

impl EdgeSource for StoredEdge<'_> {
    type Error = LedgerError;
    fn leaf_hashes(&self, range: Range<u64>) -> Result<Vec<Hash>, LedgerError> {
        let mut out = Vec::with_capacity(usize::try_from(range.end - range.start).unwrap_or(0));
        let mut next = range.start;
        while next < range.end {
            let (start, value) = find_chunk(self.tree, next)?
                .ok_or_else(|| LedgerError::Damaged(format!("entry {next} is missing")))?;
            let entries = self.entries.chunk(&value).map_err(|e| {
                LedgerError::Damaged(format!("the entry chunk starting at {start}: {e}"))
            })?;
            let skip = usize::try_from(next - start).unwrap_or(usize::MAX);
            let before = next;
            for e in entries.iter().skip(skip) {
                if next == range.end {
                    break;
                }
                out.push(leaf_hash(e));
                next += 1;
            }
            if next == before {
                return Err(LedgerError::Damaged(format!("entry {next} is missing")));
            }
        }
        Ok(out)
    }

    fn tile(&self, level: u8, tile: u64) -> Result<Vec<Hash>, LedgerError> {
        let first = tile * TILE_NODES;
        let value = self.tree.get(tile_key(level, first))?;
        let bytes = value
            .as_deref()
            .filter(|v| v.len() as u64 == TILE_NODES * 32)
            .ok_or_else(|| {
                LedgerError::Damaged(format!(
                    "the Merkle tile at level {level} holding nodes {first}.. is missing or short"
                ))
            })?;
        Ok(bytes
            .chunks_exact(32)
            .filter_map(|c| c.try_into().ok())
            .collect())
    }
}

/// Lets a reused buffer go once one batch made it bigger than a few MiB (a
/// bulk import), rather than holding that memory for good.
pub(crate) fn keep_small(buf: &mut Vec<u8>) {
    if buf.capacity() > 4 * 1024 * 1024 {
        *buf = Vec::new();
    }
}

/// How many times [`Ledger::open`] tries sled's file lock, 50 ms apart.
const LOCK_TRIES: u32 = 20;

/// Whether sled failed to open because another handle holds its file lock
/// (sled 0.34 reports that as an `Other` error naming the lock).
fn is_lock_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

/// Moves the complete tiles of a ledger written before tiles moved to
/// [`TILE_PREFIX`] and drops its incomplete ones (the edge is recomputed), in
/// one atomic batch. Returns whether there was anything to move.
fn migrate_legacy_tiles(tree: &sled::Tree) -> Result<bool, LedgerError> {
    let mut batch = sled::Batch::default();
    let mut any = false;
    for item in tree.scan_prefix([LEGACY_TILE_PREFIX]) {
        let (k, v) = item?;
        if k.len() == 10 && v.len() as u64 == TILE_NODES * 32 {
            let mut new_key = k.to_vec();
            new_key[0] = TILE_PREFIX;
            batch.insert(new_key, v);
        }
        batch.remove(k);
        any = true;
    }
    if any {
        tree.apply_batch(batch)?;
    }
    Ok(any)
}

/// The chunk holding entry `index` (or the last one before it): its first
/// index and value.
fn find_chunk(tree: &sled::Tree, index: u64) -> Result<Option<(u64, sled::IVec)>, LedgerError> {
    let Some(item) = tree.range(chunk_key(0)..=chunk_key(index)).next_back() else {
        return Ok(None);
    };
    let (k, v) = item?;
    let start = chunk_start(&k)
        .ok_or_else(|| LedgerError::Damaged("an entry chunk key is malformed".into()))?;
    Ok(Some((start, v)))
}

/// The raw bytes of entry `index`: held since the last settle, or read
/// from its chunk.
fn entry_bytes(
    tree: &sled::Tree,
    entries: &EntryFile,
    recent: &Recent,
    index: u64,
) -> Result<Option<Vec<u8>>, LedgerError> {
    match recent.get(index) {
        Some(bytes) => Ok(Some(bytes)),
        None => find_entry(tree, entries, index),
    }
}

/// The raw bytes of entry `index`, read from its chunk.
fn find_entry(
    tree: &sled::Tree,
    entries: &EntryFile,
    index: u64,
) -> Result<Option<Vec<u8>>, LedgerError> {
    let Some((start, v)) = find_chunk(tree, index)? else {
        return Ok(None);
    };
    let Ok(i) = usize::try_from(index - start) else {
        return Ok(None);
    };
    entries
        .chunk_entry(&v, i)
        .map_err(|e| LedgerError::Damaged(format!("the entry chunk starting at {start}: {e}")))
}

/// Checks an entry to append and prepares its payload's record (written
/// later, by the group-commit leader).
fn prepare(e: NewEntry, payloads: &mut Vec<PreparedPayload>) -> Result<Entry, LedgerError> {
    if !e.details.is_object() {
        return Err(EntryError("details must be a JSON object".into()).into());
    }
    let mut entry = Entry {
        index: 0,
        timestamp_ns: 0,
        prev: [0; 32],
        kind: e.kind,
        actor: e.actor,
        subject: e.subject,
        decision: e.decision,
        details: canonical_json(&e.details),
        payload: None,
    };
    // The details are canonical JSON of an object, written just above.
    entry.check_field_shapes()?;
    if entry.kind == KIND_PAYLOAD_ERASED && e.payload.is_some() {
        return Err(EntryError("a payload.erased entry cannot carry a payload".into()).into());
    }
    if let Some(p) = e.payload {
        let prepared = payloads::prepare(&p)?;
        entry.payload = Some(prepared.commitment);
        payloads.push(prepared);
    }
    Ok(entry)
}

/// An entry sealed for its batch (index, time and chain fixed), with its
/// encoding and leaf hash.
struct Sealed {
    entry: Entry,
    bytes: Vec<u8>,
    leaf: Hash,
}

/// Adds what sealed entries put in sled at once to `batch` (their kind
/// index keys) and the Merkle tiles they complete to `tiles` (those and
/// the entries themselves wait in [`Recent`] to be written as chunks),
/// advancing `st`. Returns how many keys it added to `batch`. The same for a fresh commit and for a journaled batch applied
/// again.
fn stage(
    st: &mut State,
    indexed_kinds: &[String],
    batch: &mut sled::Batch,
    entries: &[Sealed],
    tiles: &mut Vec<([u8; 10], Vec<u8>)>,
) -> Result<usize, String> {
    let mut added = 0usize;
    let mut tile_error: Option<String> = None;
    for Sealed {
        entry: e,
        bytes: _,
        leaf,
    } in entries
    {
        let leaf = *leaf;
        if e.index != st.size || e.prev != st.last_hash {
            return Err(format!(
                "entry {} does not continue the ledger of {} entries",
                e.index, st.size
            ));
        }
        if indexed_kinds.contains(&e.kind) {
            batch.insert(kind_index_key(&e.kind, e.index), &[][..]);
            added += 1;
        }
        let edge = &mut st.edge;
        st.frontier
            .push_with(leaf, |level, index, h| match edge.push(level, index, h) {
                Ok(Some(tile)) => {
                    tiles.push((tile_key(tile.level, tile.tile * TILE_NODES), tile.bytes))
                }
                Ok(None) => {}
                Err(e) => {
                    tile_error.get_or_insert(e);
                }
            });
        st.size += 1;
        st.last_hash = leaf;
        st.last_ts = e.timestamp_ns;
    }
    if let Some(e) = tile_error {
        return Err(format!(
            "the in-memory Merkle edge is inconsistent ({e}); reopen the ledger and run `vigil audit verify`"
        ));
    }
    Ok(added)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Drop for Inner {
    /// Settles on close, so a closed ledger has an empty journal.
    fn drop(&mut self) {
        let writer = self.writer.get_mut().unwrap_or_else(|p| p.into_inner());
        if writer.poisoned.is_none() {
            let _ = settle(&self.db, &self.entries, &self.recent, writer);
        }
    }
}

/// See [`Ledger::make_durable`]. The state names the journal's next lap,
/// which starts only once that state is durable. A failure once the state
/// is written refuses appends until the ledger is reopened: sled may still
/// write that state out, and batches journaled in the old lap would then
/// not be replayed.
fn settle(
    db: &sled::Db,
    entries: &EntryFile,
    recent: &Recent,
    writer: &mut Writer,
) -> Result<(), LedgerError> {
    writer.payloads.sync()?;
    let lap = writer.journal.next_lap();
    let settled = (|| {
        // The entries since the last settle as whole chunks, synced in the
        // entry file before sled names its end, with the state that covers
        // them.
        let mut batch = sled::Batch::default();
        let (end, file_end) = recent.write_chunks(
            entries,
            writer.entries_end,
            &mut batch,
            &mut writer.chunk_buf,
        )?;
        if end != writer.state.size {
            return Err(LedgerError::Damaged(format!(
                "the unsettled entries end at {end}, the ledger at {}",
                writer.state.size
            )));
        }
        entries.sync()?;
        writer.entries_end = file_end;
        batch.insert(ENTRIES_END_KEY, &file_end.to_be_bytes()[..]);
        batch.insert(STATE_KEY, writer.state.encode(lap));
        batch.insert(TAIL_KEY, encode_tail(&writer.state));
        db.apply_batch(batch)?;
        db.flush()?;
        writer.sync.sync()?;
        recent.written(end);
        writer.journal.restart(lap)
    })();
    if let Err(e) = &settled {
        writer.poisoned.get_or_insert(format!(
            "settling the ledger failed ({e}); reopen the ledger"
        ));
    }
    settled
}

/// Drops the chunk references written since the last settle (the entry
/// file's bytes behind them may not have reached the disk; the journal
/// replay writes them again), with the tail record. Returns why the store
/// is damaged when the journal does not reach the tail sled recorded: then
/// nothing is dropped.
fn drop_unsettled_chunks(
    db: &sled::Db,
    state: &State,
    journaled: &[JournalRecord],
) -> Result<Option<String>, LedgerError> {
    let Some(tail) = db.get(TAIL_KEY)? else {
        return Ok(None);
    };
    let Some((size, _, _)) = decode_tail(&tail) else {
        return Ok(Some("the ledger tail record (m/tail) is malformed".into()));
    };
    if size <= state.size {
        return Ok(None);
    }
    let journal_end = journaled
        .iter()
        .map(|r| r.start + r.entries.len() as u64)
        .max()
        .unwrap_or(0);
    if journal_end < size {
        return Ok(Some(format!(
            "sled holds entries {}..{size} written after the last settle, but the commit journal only reaches {journal_end}",
            state.size
        )));
    }
    let mut batch = sled::Batch::default();
    for key in db.range(chunk_key(state.size)..).keys() {
        let key = key?;
        if chunk_start(&key).is_none() {
            break;
        }
        batch.remove(key);
    }
    batch.insert(TAIL_KEY, encode_tail(state));
    db.apply_batch(batch)?;
    Ok(None)
}

/// Where the last chunk before entry `size` that lives in the entry file
/// ends (0 when none does).
fn last_chunk_end(db: &sled::Db, size: u64) -> Result<u64, LedgerError> {
    for value in db.range(chunk_key(0)..chunk_key(size)).values().rev() {
        if let Some(r) = ChunkRef::decode(&value?) {
            return Ok(r.end());
        }
    }
    Ok(0)
}

impl Ledger {
    /// Opens (creating if needed) the ledger in `dir`: sled in `dir/sled`,
    /// payloads in `dir/payloads`. Fails when another process has it open.
    pub fn open(dir: &Path) -> Result<Self, LedgerError> {
        Self::open_at(&dir.join("sled"), &dir.join("payloads"))
    }

    /// Opens (creating if needed) the ledger whose sled database is in
    /// `sled_dir` and whose payloads are in `payloads_dir`.
    pub fn open_at(sled_dir: &Path, payloads_dir: &Path) -> Result<Self, LedgerError> {
        let dir = sled_dir;
        std::fs::create_dir_all(sled_dir).map_err(LedgerError::io(sled_dir))?;
        let sled_dir = sled_dir.to_path_buf();
        let config = sled::Config::new()
            .path(&sled_dir)
            .cache_capacity(64 * 1024 * 1024)
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput);
        // sled releases its file lock only when its background writers let go
        // of the file, which can be a moment after the previous `Db` in this
        // process was dropped: retry briefly before calling the ledger busy.
        let mut tries = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(io)) if is_lock_error(&io) => {
                    tries += 1;
                    if tries >= LOCK_TRIES {
                        return Err(LedgerError::Io {
                            path: sled_dir.clone(),
                            source: std::io::Error::new(
                                std::io::ErrorKind::WouldBlock,
                                "the ledger is open in another process (is the node running?)",
                            ),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(other) => return Err(LedgerError::Sled(other)),
            }
        };
        let (payloads, payload_writer) = PayloadStore::open(payloads_dir, &db)?;
        let mut sync = SledSync::open(&sled_dir)?;
        if migrate_legacy_tiles(&db)? {
            db.flush()?;
            sync.sync()?;
        }
        let (mut state, lap) = match db.get(STATE_KEY)? {
            Some(b) => State::decode(&b).ok_or_else(|| {
                LedgerError::Damaged("the ledger state record is malformed".into())
            })?,
            None => (State::default(), 0),
        };
        let (journal, journaled) = Journal::open(payloads_dir, lap)?;
        let entries = EntryFile::open(payloads_dir)?;
        // A store where the chunks since the last settle cannot be written
        // again still opens (to be verified and exported) and refuses
        // appends.
        let mut damaged = drop_unsettled_chunks(&db, &state, &journaled)?;
        let entries_end = match db.get(ENTRIES_END_KEY)? {
            Some(v) => <[u8; 8]>::try_from(&v[..])
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    LedgerError::Damaged(
                        "the entry file end record (m/entries-end) is malformed".into(),
                    )
                })?,
            None => 0,
        };
        // Never below the end of the last chunk sled still references,
        // whatever the end record says (a lost record must not make the
        // node cut away settled entries).
        let entries_end = entries_end.max(last_chunk_end(&db, state.size)?);
        let file_len = entries.len()?;
        if file_len > entries_end && damaged.is_none() {
            // Chunks written since the last settle, now dropped; the
            // journal has their entries.
            entries.cut(entries_end)?;
        } else if file_len < entries_end {
            damaged.get_or_insert(format!(
                "the entry file holds {file_len} bytes, {entries_end} were settled"
            ));
        }
        if state.size == 0 && db.scan_prefix(b"e").next().is_some() {
            return Err(LedgerError::Damaged(
                "entries exist but the ledger state record is missing".into(),
            ));
        }
        // A damaged store still opens (so that it can be verified and
        // exported); it only refuses appends and proofs that need the edge.
        let edge = match damaged {
            Some(why) => Err(format!(
                "the ledger store is damaged ({why}); run `vigil audit verify` to find where"
            )),
            None => PartialTiles::rebuild(
                state.size,
                &StoredEdge {
                    tree: &db,
                    entries: &entries,
                },
            )
            .map_err(|e| {
                format!("the ledger store is damaged ({e}); run `vigil audit verify` to find where")
            }),
        };
        if let Ok(edge) = &edge {
            state.edge = edge.clone();
        }
        let view = View {
            size: state.size,
            root: state.frontier.root(),
            edge: edge.clone(),
        };
        let settled_size = state.size;
        let indexed_kinds = db
            .scan_prefix(KIND_MARKER_PREFIX)
            .keys()
            .map(|k| {
                let k = k?;
                String::from_utf8(k[KIND_MARKER_PREFIX.len()..].to_vec())
                    .map_err(|_| LedgerError::Damaged("a kind index marker is not UTF-8".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ledger = Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                db,
                payloads,
                entries,
                queue: Mutex::new(Queue::default()),
                committed: Condvar::new(),
                writer: Mutex::new(Writer {
                    state,
                    sync,
                    journal,
                    payloads: payload_writer,
                    entries_end,
                    record_buf: Vec::new(),
                    chunk_buf: Vec::new(),
                    poisoned: edge.err(),
                    indexed_kinds,
                    replayed: 0,
                }),
                erasing: Mutex::new(()),
                view: Mutex::new(Arc::new(view)),
                recent: Recent::new(settled_size),
            }),
        };
        ledger.replay(journaled)?;
        ledger.finish_pending_erasures();
        Ok(ledger)
    }

    /// Applies again the journaled batches sled does not have (a crash or
    /// power cut came before the ledger settled), writes back payload
    /// records of the batches it has that never reached the disk, then
    /// settles. A journal that does not continue the ledger refuses appends.
    fn replay(&self, records: Vec<JournalRecord>) -> Result<(), LedgerError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut writer = lock(&self.inner.writer);
        if writer.poisoned.is_some() {
            return Ok(());
        }
        let mut applied = 0usize;
        for record in records {
            let size = writer.state.size;
            let end = record.start + record.entries.len() as u64;
            let payloads = record
                .payloads
                .iter()
                .map(|r| PreparedPayload::from_record(r.clone()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    LedgerError::Damaged("a journaled payload record is malformed".into())
                })?;
            if end <= size {
                for p in &payloads {
                    writer.payloads.repair(p)?;
                }
                continue;
            }
            if record.start != size {
                writer.poisoned = Some(format!(
                    "the commit journal holds entries {}..{end} but the ledger has {size}; run `vigil audit verify`",
                    record.start
                ));
                return Ok(());
            }
            let entries = record
                .entries
                .into_iter()
                .map(|bytes| {
                    Entry::decode(&bytes).map(|entry| Sealed {
                        entry,
                        leaf: leaf_hash(&bytes),
                        bytes,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut st = writer.state.clone();
            let mut batch = sled::Batch::default();
            for index in &record.erasing {
                batch.insert(&pending_erasure_key(*index)[..], &[][..]);
            }
            let mut tiles = Vec::new();
            let added = stage(
                &mut st,
                &writer.indexed_kinds,
                &mut batch,
                &entries,
                &mut tiles,
            )
            .map_err(LedgerError::Damaged)?;
            // A payload sled already indexes (its batch reached sled before
            // the crash) is written back where the index says, never
            // appended a second time: a second copy would outlive an
            // erasure of the first.
            let mut payload_refs: Vec<&PreparedPayload> = Vec::with_capacity(payloads.len());
            for p in &payloads {
                if self.inner.payloads.indexed(&p.commitment)? {
                    writer.payloads.repair(p)?;
                } else {
                    payload_refs.push(p);
                }
            }
            let touched = added > 0 || !record.erasing.is_empty();
            let appended = self.apply_staged(&mut writer, &payload_refs, batch, touched)?;
            self.hold(&mut writer, &st, record.start, entries, tiles)?;
            self.publish(&mut writer, st, appended);
            applied += 1;
        }
        writer.replayed = applied;
        self.make_durable(&mut writer)?;
        if applied > 0 {
            eprintln!(
                "vigil-ledger: applied {applied} journaled batch(es) the store did not have yet (the last run stopped before they were settled)"
            );
        }
        Ok(())
    }

    /// Destroys the payloads whose erasure was recorded by a process that
    /// stopped before it destroyed them. One that cannot be destroyed now
    /// refuses appends (with the reason) until a later open succeeds; the
    /// ledger still opens, so that it can be verified and exported.
    fn finish_pending_erasures(&self) {
        let pending: Vec<_> = self
            .inner
            .db
            .scan_prefix(PENDING_ERASURE_PREFIX)
            .keys()
            .collect();
        let mut writer = lock(&self.inner.writer);
        for key in pending {
            let finished = key.map_err(LedgerError::from).and_then(|key| {
                let index = pending_erasure_index(&key).ok_or_else(|| {
                    LedgerError::Damaged("a pending erasure key is malformed".into())
                })?;
                let entry = self.entry(index)?.ok_or_else(|| {
                    LedgerError::Damaged(format!(
                        "an erasure is pending for entry {index}, which does not exist"
                    ))
                })?;
                self.destroy_payload(&mut writer, index, entry.payload.as_ref())
            });
            if let Err(e) = finished {
                writer.poisoned.get_or_insert(format!(
                    "a recorded payload erasure could not be finished ({e}); reopen the ledger to retry"
                ));
                return;
            }
        }
    }

    /// Destroys the payload (`commitment`) of entry `index`, whose erasure
    /// is on record, and clears its pending mark (durably). Nothing to
    /// destroy (already gone) is fine: an earlier attempt got that far.
    fn destroy_payload(
        &self,
        writer: &mut Writer,
        index: u64,
        commitment: Option<&PayloadCommitment>,
    ) -> Result<(), LedgerError> {
        // The payload may also be in the journal: settle, then wipe it.
        self.make_durable(writer)?;
        writer.journal.wipe()?;
        if let Some(commitment) = commitment {
            writer.payloads.erase(commitment)?;
        }
        self.inner.db.remove(pending_erasure_key(index))?;
        self.make_durable(writer)
    }

    /// How many journaled batches opening this ledger applied again (the
    /// store did not have them: the last run stopped before it settled).
    pub fn journal_batches_applied(&self) -> usize {
        lock(&self.inner.writer).replayed
    }

    fn view(&self) -> Arc<View> {
        lock(&self.inner.view).clone()
    }

    /// The sled directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Number of entries (the index the next append gets).
    pub fn size(&self) -> u64 {
        self.view().size
    }

    /// Appends one entry and returns its index once it is durable.
    pub fn append(&self, entry: NewEntry) -> Result<u64, LedgerError> {
        Ok(self.append_batch(vec![entry])?.start)
    }

    /// Appends entries as one contiguous run and returns their indices once
    /// all are durable. Runs from concurrent callers are committed together.
    pub fn append_batch(&self, entries: Vec<NewEntry>) -> Result<Range<u64>, LedgerError> {
        self.commit_job(entries, None)
    }

    /// Queues `entries` (marking the payload of entry `erasing` pending
    /// erasure in the same batch) and returns their indices once durable.
    fn commit_job(
        &self,
        entries: Vec<NewEntry>,
        erasing: Option<u64>,
    ) -> Result<Range<u64>, LedgerError> {
        let mut prepared = Vec::with_capacity(entries.len());
        let mut payloads = Vec::new();
        for e in entries {
            prepared.push(prepare(e, &mut payloads)?);
        }
        let slot = Arc::new(Mutex::new(None));
        let mut queue = lock(&self.inner.queue);
        queue.jobs.push(Job {
            entries: prepared,
            payloads,
            erasing,
            slot: slot.clone(),
        });
        let result = loop {
            if let Some(result) = lock(&slot).take() {
                break result;
            }
            if queue.leading {
                queue = self
                    .inner
                    .committed
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            queue.leading = true;
            let jobs = std::mem::take(&mut queue.jobs);
            drop(queue);
            let lead = Leading {
                inner: &self.inner,
                slots: jobs.iter().map(|j| j.slot.clone()).collect(),
            };
            self.commit(&mut lock(&self.inner.writer), jobs);
            drop(lead);
            queue = lock(&self.inner.queue);
        };
        drop(queue);
        result.map_err(LedgerError::Commit)
    }

    fn commit(&self, writer: &mut Writer, mut jobs: Vec<Job>) {
        let outcome = match &writer.poisoned {
            Some(why) => Err(why.clone()),
            None => self.write_jobs(writer, &mut jobs),
        };
        match outcome {
            Ok(ranges) => {
                for (job, range) in jobs.iter().zip(ranges) {
                    *lock(&job.slot) = Some(Ok(range));
                }
            }
            Err(e) => {
                for job in &jobs {
                    *lock(&job.slot) = Some(Err(e.clone()));
                }
            }
        }
    }

    /// Seals and commits the jobs' entries (taking them out of the jobs)
    /// as one batch.
    fn write_jobs(&self, writer: &mut Writer, jobs: &mut [Job]) -> Result<Vec<Range<u64>>, String> {
        let mut st = writer.state.clone();
        let mut batch = sled::Batch::default();
        let mut ranges = Vec::with_capacity(jobs.len());
        let now = now_ns();
        let start = st.size;
        let mut sealed: Vec<Sealed> =
            Vec::with_capacity(jobs.iter().map(|j| j.entries.len()).sum());
        let mut erasing = Vec::new();
        let (mut next, mut prev, mut last_ts) = (st.size, st.last_hash, st.last_ts);
        for job in jobs.iter_mut() {
            let first = next;
            if let Some(index) = job.erasing {
                batch.insert(&pending_erasure_key(index)[..], &[][..]);
                erasing.push(index);
            }
            for mut e in std::mem::take(&mut job.entries) {
                e.index = next;
                e.timestamp_ns = now.max(last_ts);
                e.prev = prev;
                let bytes = e.encode();
                let leaf = leaf_hash(&bytes);
                prev = leaf;
                last_ts = e.timestamp_ns;
                next += 1;
                sealed.push(Sealed {
                    entry: e,
                    bytes,
                    leaf,
                });
            }
            ranges.push(first..next);
        }
        let mut tiles = Vec::new();
        let added = stage(
            &mut st,
            &writer.indexed_kinds,
            &mut batch,
            &sealed,
            &mut tiles,
        )?;
        let touched = added > 0 || !erasing.is_empty();
        let payloads: Vec<&PreparedPayload> = jobs.iter().flat_map(|j| &j.payloads).collect();
        journal::encode_into(
            &mut writer.record_buf,
            writer.journal.lap(),
            start,
            &sealed.iter().map(|s| &s.bytes).collect::<Vec<_>>(),
            &sealed.iter().map(|s| s.leaf).collect::<Vec<_>>(),
            &erasing,
            &payloads.iter().map(|p| p.record()).collect::<Vec<_>>(),
        );
        let result = (|| -> Result<_, LedgerError> {
            // Durable here: one write and one fdatasync of the journal.
            writer.journal.append(&writer.record_buf)?;
            keep_small(&mut writer.record_buf);
            let appended = self.apply_staged(writer, &payloads, batch, touched)?;
            self.hold(writer, &st, start, sealed, tiles)?;
            Ok(appended)
        })();
        match result {
            Ok(appended) => {
                self.publish(writer, st, appended);
                if writer.journal.lap_bytes() >= SETTLE_BYTES {
                    if let Err(e) = self.make_durable(writer) {
                        // The batch is journaled: it is recorded; only the
                        // next appends are refused.
                        writer.poisoned = Some(format!(
                            "settling the ledger failed ({e}); reopen the ledger"
                        ));
                    }
                }
                Ok(ranges)
            }
            Err(e) => {
                let msg = e.to_string();
                writer.poisoned = Some(format!(
                    "an earlier commit failed ({msg}); reopen the ledger"
                ));
                Err(msg)
            }
        }
    }

    /// Writes a staged batch: its payload records (first: their index goes
    /// into sled with the entries), then its sled batch; neither is synced,
    /// the batch being journaled already.
    fn apply_staged(
        &self,
        writer: &mut Writer,
        payloads: &[&PreparedPayload],
        mut batch: sled::Batch,
        touched: bool,
    ) -> Result<Option<crate::payloads::Appended>, LedgerError> {
        let appended = if payloads.is_empty() {
            None
        } else {
            Some(writer.payloads.append(payloads, &mut batch)?)
        };
        // Most one-entry batches add nothing to sled (their entry waits in
        // `recent`): no sled write at all then.
        if touched || appended.is_some() {
            self.inner.db.apply_batch(batch)?;
        }
        Ok(appended)
    }

    /// Holds a durable batch's entries (from index `first`); once those
    /// held add up to [`SPILL_BYTES`], writes them as chunks to the entry
    /// file at `entries_end` and their references to sled (neither synced:
    /// the journal holds them until the ledger settles).
    fn hold(
        &self,
        writer: &mut Writer,
        st: &State,
        first: u64,
        sealed: Vec<Sealed>,
        tiles: Vec<([u8; 10], Vec<u8>)>,
    ) -> Result<(), LedgerError> {
        let recent = &self.inner.recent;
        if !recent.push(first, sealed.into_iter().map(|s| s.bytes), tiles) {
            return Err(LedgerError::Damaged(format!(
                "a batch from entry {first} does not follow the unwritten entries"
            )));
        }
        if recent.bytes() >= SPILL_BYTES {
            let mut chunks = sled::Batch::default();
            let (end, file_end) = recent.write_chunks(
                &self.inner.entries,
                writer.entries_end,
                &mut chunks,
                &mut writer.chunk_buf,
            )?;
            writer.entries_end = file_end;
            if end != st.size {
                return Err(LedgerError::Damaged(format!(
                    "the unwritten entries end at {end}, the ledger at {}",
                    st.size
                )));
            }
            // With the tail record: opening brings the frontier up to it.
            // (A lone big value per batch also left sled about 10% bigger.)
            chunks.insert(TAIL_KEY, encode_tail(st));
            self.inner.db.apply_batch(chunks)?;
            recent.written(end);
        }
        Ok(())
    }

    /// Makes an applied batch's end the writer's state and what readers see.
    fn publish(&self, writer: &mut Writer, st: State, appended: Option<crate::payloads::Appended>) {
        if let Some(a) = appended {
            writer.payloads.committed(a);
        }
        *lock(&self.inner.view) = Arc::new(View {
            size: st.size,
            root: st.frontier.root(),
            edge: Ok(st.edge.clone()),
        });
        writer.state = st;
    }

    /// Settles the ledger: the payload records synced, sled flushed and its
    /// files synced, then the journal starts a new lap (after checkpoints,
    /// other non-append writes, and whenever a lap grows past
    /// [`SETTLE_BYTES`]).
    fn make_durable(&self, writer: &mut Writer) -> Result<(), LedgerError> {
        settle(
            &self.inner.db,
            &self.inner.entries,
            &self.inner.recent,
            writer,
        )
    }

    /// Indexes the entries of `kind` from now on, in the same atomic batch
    /// as the entries themselves, so that [`Ledger::indices_of_kind`] finds
    /// them without reading the ledger. The first call on a ledger indexes
    /// the entries already there (one pass); the choice is stored, so every
    /// later open keeps indexing the kind.
    pub fn index_kind(&self, kind: &str) -> Result<(), LedgerError> {
        let mut writer = lock(&self.inner.writer);
        if writer.indexed_kinds.iter().any(|k| k == kind) {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (i, raw) in self.raw_entries(0..writer.state.size).enumerate() {
            let e = Entry::decode(&raw?)?;
            if e.kind == kind {
                batch.insert(kind_index_key(kind, i as u64), &[][..]);
            }
        }
        batch.insert(kind_marker_key(kind), &[][..]);
        self.inner.db.apply_batch(batch)?;
        self.make_durable(&mut writer)?;
        writer.indexed_kinds.push(kind.to_string());
        Ok(())
    }

    /// The indices of the entries of `kind`, in order, or `None` when the
    /// kind is not indexed ([`Ledger::index_kind`]).
    pub fn indices_of_kind(&self, kind: &str) -> Result<Option<Vec<u64>>, LedgerError> {
        if !lock(&self.inner.writer)
            .indexed_kinds
            .iter()
            .any(|k| k == kind)
        {
            return Ok(None);
        }
        let size = self.size();
        let prefix = kind_index_prefix(kind);
        let mut out = Vec::new();
        for key in self.inner.db.scan_prefix(&prefix).keys() {
            let key = key?;
            let index = kind_index_entry(prefix.len(), &key).ok_or_else(|| {
                LedgerError::Damaged(format!("a `{kind}` index key is malformed"))
            })?;
            if index < size {
                out.push(index);
            }
        }
        Ok(Some(out))
    }

    /// The entry at `index`, if present.
    pub fn entry(&self, index: u64) -> Result<Option<Entry>, LedgerError> {
        match entry_bytes(
            &self.inner.db,
            &self.inner.entries,
            &self.inner.recent,
            index,
        )? {
            Some(b) => Ok(Some(Entry::decode(&b)?)),
            None => Ok(None),
        }
    }

    /// The raw encodings of the entries stored in `range`, in storage order,
    /// as stored (no checks: the verifier does those).
    pub fn raw_entries(
        &self,
        range: Range<u64>,
    ) -> impl Iterator<Item = Result<Vec<u8>, LedgerError>> + '_ {
        let db = &self.inner.db;
        let file = &self.inner.entries;
        // What is held since the last settle; everything before it is in
        // chunks (a settle writes its chunks before letting go of them).
        let (settled_end, held) = self.inner.recent.range(range.clone());
        let first_chunk = match db.range(chunk_key(0)..=chunk_key(range.start)).next_back() {
            Some(Ok((k, _))) => chunk_start(&k).unwrap_or(range.start),
            _ => range.start,
        };
        let end = range.end.min(settled_end);
        let start = range.start;
        db.range(chunk_key(first_chunk)..chunk_key(end.max(first_chunk)))
            .flat_map(move |item| -> Vec<Result<Vec<u8>, LedgerError>> {
                let (k, v) = match item {
                    Ok(kv) => kv,
                    Err(e) => return vec![Err(e.into())],
                };
                let Some(cstart) = chunk_start(&k) else {
                    return vec![Err(LedgerError::Damaged(
                        "an entry chunk key is malformed".into(),
                    ))];
                };
                let entries = match file.chunk(&v) {
                    Ok(entries) => entries,
                    Err(e) => {
                        return vec![Err(LedgerError::Damaged(format!(
                            "the entry chunk starting at {cstart}: {e}"
                        )))]
                    }
                };
                entries
                    .into_iter()
                    .enumerate()
                    .filter(|(j, _)| {
                        let pos = cstart + *j as u64;
                        pos >= start && pos < end
                    })
                    .map(|(_, e)| Ok(e))
                    .collect()
            })
            .chain(held.into_iter().map(Ok))
    }

    /// The payload of entry `e`, if it has one and it is still stored.
    pub fn payload_of(&self, e: &Entry) -> Result<Option<StoredPayload>, LedgerError> {
        match &e.payload {
            Some(c) => self.inner.payloads.get(c),
            None => Ok(None),
        }
    }

    fn nodes(&self) -> StoredNodes<'_> {
        StoredNodes {
            tree: &self.inner.db,
            entries: &self.inner.entries,
            recent: &self.inner.recent,
            view: self.view(),
        }
    }

    /// The tree head over entries `0..size`.
    pub fn root(&self, size: u64) -> Result<Hash, LedgerError> {
        let nodes = self.nodes();
        let have = nodes.view.size;
        if size == have {
            return Ok(nodes.view.root);
        }
        if size > have {
            return Err(
                merkle::RangeError(format!("the ledger has {have} entries, not {size}")).into(),
            );
        }
        merkle::root(&nodes, size)
    }

    /// Inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        merkle::inclusion_proof(&self.nodes_for(size)?, index, size)
    }

    /// Consistency proof from the tree of `first` entries to that of `second`.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, LedgerError> {
        merkle::consistency_proof(&self.nodes_for(second)?, first, second)
    }

    /// The frontier of the tree of `size` entries (what a bundle starting at
    /// `size` needs to recompute roots).
    pub fn frontier(&self, size: u64) -> Result<Frontier, LedgerError> {
        Frontier::load(&self.nodes_for(size)?, size)
    }

    /// The node source, after checking that the ledger has `size` entries.
    fn nodes_for(&self, size: u64) -> Result<StoredNodes<'_>, LedgerError> {
        let nodes = self.nodes();
        let have = nodes.view.size;
        if size > have {
            return Err(
                merkle::RangeError(format!("the ledger has {have} entries, not {size}")).into(),
            );
        }
        Ok(nodes)
    }

    /// The origin recorded with the first checkpoint, if any.
    pub fn origin(&self) -> Result<Option<String>, LedgerError> {
        Ok(self
            .inner
            .db
            .get(ORIGIN_KEY)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// All stored checkpoint notes as `(size, note)`, by increasing size,
    /// unverified.
    pub fn checkpoint_notes(&self) -> Result<Vec<(u64, String)>, LedgerError> {
        self.inner
            .db
            .scan_prefix(b"c")
            .map(|item| checkpoint_record(item?))
            .collect()
    }

    /// The latest stored checkpoint note as `(size, note)`, unverified.
    pub fn latest_checkpoint_note(&self) -> Result<Option<(u64, String)>, LedgerError> {
        self.inner
            .db
            .scan_prefix(b"c")
            .next_back()
            .map(|item| checkpoint_record(item?))
            .transpose()
    }

    /// Adds witness cosignature lines (each `— name base64\n`, checked by
    /// the caller) to the stored checkpoint note of `size`, durably. Lines
    /// already there are skipped; a note keeps at most
    /// [`crate::checkpoint::MAX_SIGNATURES`] signature lines. Returns how
    /// many were added.
    pub fn add_cosignatures(&self, size: u64, lines: &[String]) -> Result<usize, LedgerError> {
        let mut writer = lock(&self.inner.writer);
        let key = checkpoint_key(size);
        let note = self.inner.db.get(&key[..])?.ok_or_else(|| {
            LedgerError::NotFound(format!("no checkpoint of size {size} is stored"))
        })?;
        let mut note = String::from_utf8(note.to_vec()).map_err(|_| {
            LedgerError::Damaged(format!("the checkpoint note of size {size} is not UTF-8"))
        })?;
        let signatures = |n: &str| {
            n.rsplit_once("\n\n")
                .map_or(0, |(_, sigs)| sigs.lines().count())
        };
        let mut added = 0;
        for line in lines {
            if !line.starts_with("\u{2014} ")
                || !line.ends_with('\n')
                || line[..line.len() - 1].contains('\n')
            {
                return Err(
                    CheckpointError("a cosignature must be one signature line".into()).into(),
                );
            }
            if note.contains(line.as_str()) {
                continue;
            }
            if signatures(&note) >= crate::checkpoint::MAX_SIGNATURES {
                return Err(CheckpointError(format!(
                    "the checkpoint note of size {size} already carries {} signatures",
                    crate::checkpoint::MAX_SIGNATURES
                ))
                .into());
            }
            note.push_str(line);
            added += 1;
        }
        if added > 0 {
            self.inner.db.insert(&key[..], note.as_bytes())?;
            self.make_durable(&mut writer)?;
        }
        Ok(added)
    }

    /// The latest stored checkpoint, verified against `key`'s public half.
    pub fn latest_checkpoint(
        &self,
        key: &vigil_crypto::CompositePublicKey,
    ) -> Result<Option<SignedCheckpoint>, LedgerError> {
        let Some((_, note)) = self.latest_checkpoint_note()? else {
            return Ok(None);
        };
        SignedCheckpoint::open(&note, key).map(Some).map_err(|e| {
            LedgerError::Damaged(format!("the latest stored checkpoint does not verify: {e}"))
        })
    }

    /// Signs a checkpoint of the whole ledger with `key` under `origin`.
    /// Refuses when the ledger is empty, when the origin differs from the one
    /// of earlier checkpoints, and when the new tree is not consistent with
    /// the last signed checkpoint (RFC 9162 consistency proof). Returns the
    /// last checkpoint unchanged when no entry was added since.
    pub fn checkpoint(
        &self,
        key: &SigningKey,
        origin: &str,
    ) -> Result<SignedCheckpoint, LedgerError> {
        check_origin(origin)?;
        let chain = self.key_chain(key.public_key(), origin)?;
        let mut writer = lock(&self.inner.writer);
        self.checkpoint_locked(&mut writer, &[key], &chain, origin)
    }

    /// Signs a checkpoint of the whole ledger with every key of `signers`,
    /// the writer held. The last stored checkpoint must verify with a key
    /// of `chain`.
    fn checkpoint_locked(
        &self,
        writer: &mut Writer,
        signers: &[&SigningKey],
        chain: &KeyChain,
        origin: &str,
    ) -> Result<SignedCheckpoint, LedgerError> {
        let size = writer.state.size;
        let root = writer.state.frontier.root();
        if size == 0 {
            return Err(
                CheckpointError("the ledger is empty; append an entry first".into()).into(),
            );
        }
        if let Some(stored) = self.origin()? {
            if stored != origin {
                return Err(CheckpointError(format!(
                    "this ledger's checkpoints are signed under origin `{stored}`, not `{origin}`"
                ))
                .into());
            }
        }
        let mut previous = (0, crate::hash::empty_root());
        let stored = self.latest_checkpoint_of(chain)?;
        if let Some(last) = stored.clone() {
            let last = last.checkpoint;
            previous = (last.size, last.root);
            if last.size > size {
                return Err(CheckpointError(format!(
                    "the last signed checkpoint covers {} entries but the ledger has only {size}; refusing to sign a shrunken ledger",
                    last.size
                ))
                .into());
            }
            if last.size == size {
                if last.root == root {
                    return stored
                        .ok_or_else(|| LedgerError::NotFound("checkpoint vanished".into()));
                }
                return Err(CheckpointError(format!(
                    "the ledger's root at size {size} differs from the root signed earlier at that size; refusing to sign"
                ))
                .into());
            }
            let proof = merkle::consistency_proof(&self.nodes(), last.size, size)?;
            if !merkle::verify_consistency(last.size, &last.root, size, &root, &proof) {
                return Err(CheckpointError(format!(
                    "the ledger of {size} entries is not consistent with the checkpoint signed at size {}; refusing to sign",
                    last.size
                ))
                .into());
            }
        }
        // Every key valid at this size signs (both at a handover).
        for i in chain.signers(size) {
            let needed = &chain.keys()[i];
            if !signers
                .iter()
                .any(|k| k.public_key().as_bytes() == needed.as_bytes())
            {
                return Err(CheckpointError(format!(
                    "a checkpoint of size {size} must also be signed by node key {} ({}), which is not at hand; the next checkpoint, once an entry follows, needs only the key in force",
                    i + 1,
                    needed.fingerprint()
                ))
                .into());
            }
        }
        let signed = Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            previous: Some(previous),
        }
        .sign_all(signers)?;
        let mut batch = sled::Batch::default();
        batch.insert(&checkpoint_key(size)[..], signed.note.as_bytes());
        batch.insert(ORIGIN_KEY, origin.as_bytes());
        self.inner.db.apply_batch(batch)?;
        self.make_durable(writer)?;
        Ok(signed)
    }

    /// The latest stored checkpoint, verified with a key of `chain`.
    fn latest_checkpoint_of(
        &self,
        chain: &KeyChain,
    ) -> Result<Option<SignedCheckpoint>, LedgerError> {
        let mut last_error = None;
        for key in chain.keys().iter().rev() {
            match self.latest_checkpoint(key) {
                Ok(found) => return Ok(found),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| LedgerError::NotFound("no node key".into())))
    }

    /// The node key handovers recorded in this ledger (`key.rotated`
    /// entries), in order; their signatures are not checked here.
    pub fn handovers(&self) -> Result<Vec<Handover>, LedgerError> {
        let Some(indices) = self.indices_of_kind(KIND_KEY_ROTATED)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(indices.len());
        for i in indices {
            let e = self
                .entry(i)?
                .ok_or_else(|| LedgerError::Damaged(format!("key.rotated entry {i} is missing")))?;
            let h = Handover::from_entry(&e)?.ok_or_else(|| {
                LedgerError::Damaged(format!(
                    "entry {i}, indexed as key.rotated, is a `{}`",
                    e.kind
                ))
            })?;
            out.push(h);
        }
        Ok(out)
    }

    /// The chain of node keys from the first to the current, checked: the
    /// handovers recorded here followed from the first one's old key, or
    /// `current` alone when the log was never handed over. `current` must be
    /// the chain's last key.
    pub fn key_chain(
        &self,
        current: &vigil_crypto::CompositePublicKey,
        origin: &str,
    ) -> Result<KeyChain, LedgerError> {
        let handovers = self.handovers()?;
        let Some(first) = handovers.first().map(|h| h.old.clone()) else {
            return Ok(KeyChain::single(current.clone()));
        };
        let chain = KeyChain::follow(first, origin, handovers)?;
        if chain.current().as_bytes() != current.as_bytes() {
            return Err(HandoverError(format!(
                "the ledger handed the log over to key {}, not to {}: use the node key in force",
                chain.current().fingerprint(),
                current.fingerprint()
            ))
            .into());
        }
        Ok(chain)
    }

    /// Hands the log over from `old` to `new`: appends the `key.rotated`
    /// entry that `old` signs, then a checkpoint covering it signed by both
    /// keys, with no other entry in between. From then on only `new` may
    /// sign checkpoints. The entry is durable once this returns `Ok`, even
    /// when the checkpoint failed (reported in [`Rotation::checkpoint`]):
    /// the caller must switch to `new` in either case.
    pub fn rotate_key(
        &self,
        old: &SigningKey,
        new: &SigningKey,
        origin: &str,
        actor: &str,
    ) -> Result<Rotation, LedgerError> {
        check_origin(origin)?;
        if let Some(stored) = self.origin()? {
            if stored != origin {
                return Err(CheckpointError(format!(
                    "this ledger's checkpoints are signed under origin `{stored}`, not `{origin}`"
                ))
                .into());
            }
        }
        self.index_kind(KIND_KEY_ROTATED)?;
        let chain = self.key_chain(old.public_key(), origin)?;
        if chain.position(new.public_key()).is_some() {
            return Err(
                HandoverError("the new key was already a node key of this log".into()).into(),
            );
        }
        let mut writer = lock(&self.inner.writer);
        let index = writer.state.size;
        let handover = Handover::sign(origin, index, old, new.public_key())?;
        let mut payloads = Vec::new();
        let entry = prepare(handover.new_entry(actor), &mut payloads)?;
        let slot = Arc::new(Mutex::new(None));
        self.commit(
            &mut writer,
            vec![Job {
                entries: vec![entry],
                payloads,
                erasing: None,
                slot: slot.clone(),
            }],
        );
        let range = lock(&slot)
            .take()
            .unwrap_or_else(|| Err("the handover was not committed".into()))
            .map_err(LedgerError::Commit)?;
        debug_assert_eq!(range.start, index);
        let chain = chain.extended(handover.clone())?;
        let checkpoint = self.checkpoint_locked(&mut writer, &[old, new], &chain, origin);
        Ok(Rotation {
            handover,
            checkpoint,
        })
    }

    /// The latest stored checkpoint note covering entry `index`
    /// (size > index), unverified.
    pub fn checkpoint_covering(&self, index: u64) -> Result<Option<(u64, String)>, LedgerError> {
        Ok(self
            .checkpoint_notes()?
            .into_iter()
            .rev()
            .find(|(size, _)| *size > index))
    }

    /// Erases the payload of entry `index`: first appends a `payload.erased`
    /// entry naming it (durably, with the erasure marked pending in the same
    /// batch), then overwrites its record, salt included, with zeros,
    /// fsyncs it and removes its index key durably. Returns the new entry's
    /// index. If the process stops in between, the next open finishes the
    /// erasure. Refused, recording nothing, when the payload is not stored
    /// or while appends are refused.
    pub fn erase_payload(&self, index: u64, actor: &str, reason: &str) -> Result<u64, LedgerError> {
        let _one_at_a_time = lock(&self.inner.erasing);
        let entry = self
            .entry(index)?
            .ok_or_else(|| LedgerError::NotFound(format!("entry {index} does not exist")))?;
        let commitment = entry.payload.ok_or_else(|| {
            LedgerError::NotFound(format!("entry {index} has no payload to erase"))
        })?;
        if self.inner.db.contains_key(pending_erasure_key(index))? {
            // Recorded by an earlier call whose destruction failed.
            self.destroy_payload(&mut lock(&self.inner.writer), index, Some(&commitment))?;
            return Err(LedgerError::NotFound(format!(
                "the erasure of the payload of entry {index} was already recorded; the payload is now destroyed"
            )));
        }
        if !self.inner.payloads.holds(&commitment)? {
            return Err(LedgerError::NotFound(format!(
                "the payload of entry {index} is not stored (already erased?)"
            )));
        }
        let recorded = self
            .commit_job(
                vec![NewEntry::new(
                    KIND_PAYLOAD_ERASED,
                    actor,
                    format!("entry:{index}"),
                    "erase",
                )
                .details(serde_json::json!({ "index": index, "reason": reason }))],
                Some(index),
            )
            .map_err(|e| {
                LedgerError::Commit(format!(
                    "the erasure could not be recorded, so the payload of entry {index} was kept: {e}"
                ))
            })?
            .start;
        let mut writer = lock(&self.inner.writer);
        self.destroy_payload(&mut writer, index, Some(&commitment)).map_err(|e| {
            LedgerError::Commit(format!(
                "the erasure is recorded as entry {recorded}, but the payload of entry {index} could not be destroyed yet ({e}); reopening the ledger finishes it"
            ))
        })?;
        Ok(recorded)
    }
}

/// What [`Ledger::rotate_key`] did.
#[derive(Debug)]
pub struct Rotation {
    /// The handover, durable in the ledger.
    pub handover: Handover,
    /// The checkpoint covering it, signed by both keys, or why it failed.
    pub checkpoint: Result<SignedCheckpoint, LedgerError>,
}

/// A stored checkpoint record as `(size, note)`, unverified.
fn checkpoint_record((k, v): (sled::IVec, sled::IVec)) -> Result<(u64, String), LedgerError> {
    let size = k
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| LedgerError::Damaged("a checkpoint key is malformed".into()))?;
    Ok((size, String::from_utf8_lossy(&v).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_entry(i: u64) -> NewEntry {
        NewEntry::new("external", "test", "journal", "record")
            .details(serde_json::json!({ "i": i }))
    }

    /// A ledger last run by a version before journal laps: its state record
    /// has no lap and its journal holds `vjr1` records. Opening applies the
    /// batch only the journal has, the front of the journal is zeroed, and
    /// the ledger goes on with laps.
    #[test]
    fn a_journal_and_state_from_before_laps_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        ledger
            .append_batch((0..3).map(new_entry).collect())
            .unwrap();
        let last = ledger.entry(2).unwrap().unwrap();
        let last_leaf = leaf_hash(&last.encode());
        drop(ledger);

        // Entry 3, as the previous version journaled it without applying it.
        let mut next = prepare(new_entry(3), &mut Vec::new()).unwrap();
        next.index = 3;
        next.timestamp_ns = last.timestamp_ns + 1;
        next.prev = last_leaf;
        let legacy = JournalRecord {
            start: 3,
            entries: vec![next.encode()],
            erasing: Vec::new(),
            payloads: Vec::new(),
        }
        .encode_legacy();
        let journal_path = dir.path().join("payloads/journal");
        std::fs::write(&journal_path, &legacy).unwrap();
        {
            let db = sled::open(dir.path().join("sled")).unwrap();
            let state = db.get(STATE_KEY).unwrap().unwrap();
            let (_, lap) = State::decode(&state).unwrap();
            assert_eq!(lap, 1);
            // The state as written before laps: no lap at the end.
            db.insert(STATE_KEY, &state[..state.len() - 8]).unwrap();
            db.flush().unwrap();
        }

        let ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(ledger.size(), 4);
        assert_eq!(ledger.journal_batches_applied(), 1);
        assert_eq!(ledger.entry(3).unwrap().unwrap(), next);
        let bytes = std::fs::read(&journal_path).unwrap();
        assert_eq!(bytes.len() as u64, journal::PREALLOCATED);
        assert!(bytes[..legacy.len()].iter().all(|b| *b == 0));
        ledger.append(new_entry(4)).unwrap();
        drop(ledger);
        let ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(ledger.size(), 5);
        assert_eq!(ledger.journal_batches_applied(), 0);
        let key = SigningKey::generate();
        ledger.checkpoint(&key, "test.example/ledger").unwrap();
        let report = crate::verify::verify_ledger(&ledger, key.public_key()).unwrap();
        assert_eq!(report.entries, 5);
    }

    /// Entries are read the same whether they are still held in memory,
    /// spilled to sled's chunks, or settled; and across a reopen.
    #[test]
    fn entries_read_the_same_held_spilled_and_settled() {
        let dir = tempfile::tempdir().unwrap();
        let padding = "x".repeat(400);
        let entry = |i: u64| {
            NewEntry::new("external", "test", "recent", "record")
                .details(serde_json::json!({ "i": i, "pad": padding }))
        };
        let ledger = Ledger::open(dir.path()).unwrap();
        // Enough one-entry batches to spill twice and leave some held.
        let n = 1500u64;
        for i in 0..n {
            ledger.append(entry(i)).unwrap();
        }
        let held_from = ledger.inner.recent.start();
        assert!(held_from > 0 && held_from < n, "spilled up to {held_from}");
        let check = |ledger: &Ledger| {
            let raw: Vec<Vec<u8>> = ledger.raw_entries(0..n).collect::<Result<_, _>>().unwrap();
            assert_eq!(raw.len() as u64, n);
            for (i, bytes) in raw.iter().enumerate() {
                let e = Entry::decode(bytes).unwrap();
                assert_eq!(e.index, i as u64);
                assert_eq!(ledger.entry(i as u64).unwrap().unwrap(), e);
            }
            // Ranges that start in sled and end in memory, or lie in one.
            for range in [held_from - 3..held_from + 3, 5..9, n - 4..n + 10] {
                let got: Vec<u64> = ledger
                    .raw_entries(range.clone())
                    .map(|b| Entry::decode(&b.unwrap()).unwrap().index)
                    .collect();
                let want: Vec<u64> = (range.start..range.end.min(n)).collect();
                assert_eq!(got, want);
            }
            let size = ledger.size();
            let root = ledger.root(size).unwrap();
            for i in [0, held_from - 1, held_from, n - 1] {
                let proof = ledger.inclusion_proof(i, size).unwrap();
                let leaf = leaf_hash(&ledger.entry(i).unwrap().unwrap().encode());
                assert!(crate::merkle::verify_inclusion(
                    i, size, &leaf, &proof, &root
                ));
            }
        };
        check(&ledger);
        drop(ledger);
        let ledger = Ledger::open(dir.path()).unwrap();
        check(&ledger);
        let key = SigningKey::generate();
        ledger.checkpoint(&key, "test.example/ledger").unwrap();
        assert_eq!(
            ledger.inner.recent.start(),
            n,
            "a settle writes what was held"
        );
        check(&ledger);
        let report = crate::verify::verify_ledger(&ledger, key.public_key()).unwrap();
        assert_eq!(report.entries, n);
    }

    /// Stops `ledger` as a crash would: nothing settles on drop (sled is
    /// still flushed when its handle goes, so its chunk references are on
    /// disk, the worst case for the entry file).
    fn crash(ledger: Ledger) {
        lock(&ledger.inner.writer).poisoned = Some("crashed".into());
        ledger.inner.db.flush().unwrap();
        drop(ledger);
    }

    /// Appends `n` entries of about 500 bytes one by one from `first`.
    fn spill(ledger: &Ledger, first: u64, n: u64) {
        let padding = "y".repeat(480);
        for i in first..first + n {
            ledger
                .append(
                    NewEntry::new("external", "test", "cut", "record")
                        .details(serde_json::json!({ "i": i, "pad": padding })),
                )
                .unwrap();
        }
    }

    /// A power cut after chunks were written to the entry file (never
    /// synced before a settle) but with sled's references to them on disk:
    /// the file's unsynced bytes are lost (zeroed here, as a file whose size
    /// reached the disk but not its data). Opening drops those references,
    /// cuts the file back to its settled end and writes the chunks again
    /// from the journal: every acknowledged entry is there and verifies.
    #[test]
    fn entry_file_bytes_lost_in_a_power_cut_are_written_again_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let key = SigningKey::generate();
        spill(&ledger, 0, 700);
        ledger.checkpoint(&key, "test.example/ledger").unwrap();
        let settled = ledger.inner.entries.len().unwrap();
        assert!(settled > 0);
        spill(&ledger, 700, 1300);
        assert!(ledger.inner.recent.start() > 700, "chunks were spilled");
        let written = ledger.inner.entries.len().unwrap();
        assert!(written > settled);
        crash(ledger);

        let path = dir
            .path()
            .join("payloads")
            .join(crate::entry_file::FILE_NAME);
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(
            &f,
            &vec![0u8; (written - settled) as usize],
            settled,
        )
        .unwrap();
        drop(f);

        let ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(ledger.size(), 2000);
        assert!(ledger.journal_batches_applied() > 0);
        let raw: Vec<Vec<u8>> = ledger
            .raw_entries(0..2000)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(raw.len(), 2000);
        spill(&ledger, 2000, 10);
        ledger.checkpoint(&key, "test.example/ledger").unwrap();
        let report = crate::verify::verify_ledger(&ledger, key.public_key()).unwrap();
        assert_eq!(report.entries, 2010);
    }

    /// An insider who deletes the commit journal after a crash cannot make
    /// the ledger quietly forget entries sled recorded since the last
    /// settle: opening refuses appends, naming what the journal lacks, and
    /// the entries the file still has stay readable. An entry file cut
    /// below its settled end is refused the same way.
    #[test]
    fn a_lost_journal_or_a_cut_entry_file_refuses_appends() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        spill(&ledger, 0, 10);
        drop(ledger); // settles
        let ledger = Ledger::open(dir.path()).unwrap();
        spill(&ledger, 10, 1500);
        crash(ledger);
        std::fs::remove_file(dir.path().join("payloads/journal")).unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let err = ledger.append(new_entry(0)).unwrap_err().to_string();
        assert!(err.contains("commit journal only reaches 0"), "{err}");
        drop(ledger);

        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        spill(&ledger, 0, 1500);
        drop(ledger); // settles: the file's end is recorded
        let path = dir
            .path()
            .join("payloads")
            .join(crate::entry_file::FILE_NAME);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 100)
            .unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let err = ledger.append(new_entry(0)).unwrap_err().to_string();
        assert!(err.contains("were settled"), "{err}");
        assert!(ledger.entry(0).unwrap().is_some());
    }

    /// A deleted entry-file end record does not make opening cut away
    /// settled entries: the last chunk sled references bounds the cut.
    #[test]
    fn a_lost_entry_file_end_record_cuts_nothing_settled() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        spill(&ledger, 0, 1500);
        drop(ledger); // settles
        let len = |dir: &Path| {
            std::fs::metadata(dir.join("payloads").join(crate::entry_file::FILE_NAME))
                .unwrap()
                .len()
        };
        let settled = len(dir.path());
        {
            let db = sled::open(dir.path().join("sled")).unwrap();
            db.remove(ENTRIES_END_KEY).unwrap();
            db.flush().unwrap();
        }
        let ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(len(dir.path()), settled);
        assert_eq!(ledger.size(), 1500);
        spill(&ledger, 1500, 5);
        let key = SigningKey::generate();
        ledger.checkpoint(&key, "test.example/ledger").unwrap();
        let report = crate::verify::verify_ledger(&ledger, key.public_key()).unwrap();
        assert_eq!(report.entries, 1505);
    }

    /// Every file under `dir`, read.
    fn files_under(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for item in std::fs::read_dir(dir).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                files_under(&path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }

    fn copies(dir: &Path, needle: &[u8]) -> usize {
        let mut files = Vec::new();
        files_under(&dir.join("payloads"), &mut files);
        files
            .iter()
            .filter(|(p, _)| p.file_name().is_some_and(|n| n != "journal"))
            .map(|(_, b)| b.windows(needle.len()).filter(|w| *w == needle).count())
            .sum()
    }

    /// A crash after sled already indexed the payloads of batches the
    /// journal replays: the replay writes each payload back where the index
    /// says instead of appending a second copy, so erasing it afterwards
    /// leaves no copy behind.
    #[test]
    fn a_replayed_payload_is_stored_once_and_its_erasure_leaves_no_copy() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let secret = |i: u64| format!("secret payload number {i} {}", "s".repeat(40)).into_bytes();
        for i in 0..5 {
            ledger.append(new_entry(i).payload(secret(i))).unwrap();
        }
        crash(ledger);

        let ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(ledger.size(), 5);
        assert!(ledger.journal_batches_applied() > 0);
        for i in 0..5 {
            assert_eq!(copies(dir.path(), &secret(i)), 1, "payload {i}");
            let e = ledger.entry(i).unwrap().unwrap();
            assert_eq!(ledger.payload_of(&e).unwrap().unwrap().data, secret(i));
        }
        ledger.erase_payload(2, "test", "request").unwrap();
        drop(ledger);
        assert_eq!(copies(dir.path(), &secret(2)), 0);
        assert_eq!(copies(dir.path(), &secret(3)), 1);
    }
}
