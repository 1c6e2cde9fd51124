//! Making what sled wrote survive a power cut.
//!
//! sled 0.34's `flush()` writes its log buffers with `pwrite` and then calls
//! `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)` on Linux. That starts
//! and waits for write-back of the data pages, but it flushes neither the
//! drive's volatile write cache nor the file's metadata (its size grows as the
//! log grows), so a power cut can still lose acknowledged data. sled also
//! writes values too big for its log as separate files under `blobs/` without
//! any sync. So after every `flush()` the ledger calls [`SledSync::sync`],
//! which `fdatasync`s sled's `db` file (data, size and a cache flush), fsyncs
//! every blob file it has not synced before, and fsyncs the `blobs/`
//! directory. The ledger directory and sled's directory are fsynced once when
//! opened so the files' directory entries are durable too. Only then is an
//! append acknowledged.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::LedgerError;

/// fsyncs a directory so that entries created or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LedgerError::io(dir))
}

/// Opens `path` for reading and writing, creating it empty if missing
/// (never truncating it).
pub fn open_rw(path: &Path) -> Result<File, LedgerError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(LedgerError::io(path))
}

/// The files of one sled database that must be synced after each flush.
#[derive(Debug)]
pub struct SledSync {
    dir: PathBuf,
    db_file: File,
    synced_blobs: HashSet<std::ffi::OsString>,
}

impl SledSync {
    /// Opens sled's `db` file in `sled_dir` (after sled created it) and makes
    /// the directory entries durable.
    pub fn open(sled_dir: &Path) -> Result<Self, LedgerError> {
        let db_path = sled_dir.join("db");
        let db_file = File::open(&db_path).map_err(LedgerError::io(&db_path))?;
        sync_dir(sled_dir)?;
        if let Some(parent) = sled_dir.parent() {
            sync_dir(parent)?;
        }
        let mut me = Self {
            dir: sled_dir.to_path_buf(),
            db_file,
            synced_blobs: HashSet::new(),
        };
        me.sync()?;
        Ok(me)
    }

    /// Makes everything sled has written so far durable. Call after
    /// `Db::flush()` returned.
    pub fn sync(&mut self) -> Result<(), LedgerError> {
        self.db_file
            .sync_data()
            .map_err(LedgerError::io(self.dir.join("db")))?;
        let blobs = self.dir.join("blobs");
        let Ok(list) = std::fs::read_dir(&blobs) else {
            return Ok(());
        };
        let mut new_blob = false;
        // Only the names present now are remembered: sled deletes superseded
        // blobs, and their names are never reused (they are log positions).
        let mut present = HashSet::with_capacity(self.synced_blobs.len() + 4);
        for item in list {
            let item = item.map_err(LedgerError::io(&blobs))?;
            let name = item.file_name();
            if self.synced_blobs.contains(&name) {
                present.insert(name);
                continue;
            }
            let path = item.path();
            match File::open(&path) {
                Ok(f) => f.sync_all().map_err(LedgerError::io(&path))?,
                // sled removes blobs it no longer needs; a vanished one needs no sync.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(LedgerError::io(&path)(e)),
            }
            present.insert(name);
            new_blob = true;
        }
        self.synced_blobs = present;
        if new_blob {
            sync_dir(&blobs)?;
        }
        Ok(())
    }
}
