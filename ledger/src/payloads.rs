//! Payloads (tool inputs and outputs) stored beside the ledger, never inside
//! sled: sled's log keeps old values, so nothing put there could be erased.
//!
//! One file per payload in `<ledger dir>/payloads/`, named by the hex of its
//! commitment, holding `salt[32] || payload`. Writing goes through a
//! temporary file that is fsynced and renamed; the directory is fsynced by
//! the group commit before the entry that commits to the payload is written.
//! Erasing overwrites the file with zeros, fsyncs it, unlinks it and fsyncs
//! the directory, so neither the payload nor its salt stays in any file
//! (on filesystems that overwrite in place, such as ext4 and xfs; a
//! copy-on-write filesystem or an SSD's remapping may keep old blocks
//! physically, which no file-level erase can reach).

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore as _};

use crate::durability::sync_dir;
use crate::entry::{PayloadCommitment, SALT_LEN};
use crate::error::LedgerError;

/// Largest payload stored, in bytes.
pub const MAX_PAYLOAD_LEN: u64 = 64 * 1024 * 1024;

/// The payload directory of one ledger.
#[derive(Debug, Clone)]
pub struct PayloadStore {
    dir: PathBuf,
}

/// A payload read back: its salt and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayload {
    /// The salt of the commitment.
    pub salt: [u8; SALT_LEN],
    /// The payload bytes.
    pub data: Vec<u8>,
}

impl PayloadStore {
    /// Opens (creating) the directory and destroys temporary files left by a
    /// crash in the middle of a write.
    pub fn open(dir: &Path) -> Result<Self, LedgerError> {
        fs::create_dir_all(dir).map_err(LedgerError::io(dir))?;
        let store = Self {
            dir: dir.to_path_buf(),
        };
        for item in fs::read_dir(dir).map_err(LedgerError::io(dir))? {
            let path = item.map_err(LedgerError::io(dir))?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                destroy_file(&path)?;
            }
        }
        sync_dir(dir)?;
        Ok(store)
    }

    fn path(&self, c: &PayloadCommitment) -> PathBuf {
        self.dir.join(hex::encode(c.digest))
    }

    /// Stores `payload` under a fresh random salt and returns its commitment.
    /// The file is durable, its directory entry not yet: call
    /// [`PayloadStore::sync`] before committing the entry.
    pub fn put(&self, payload: &[u8]) -> Result<PayloadCommitment, LedgerError> {
        if payload.len() as u64 > MAX_PAYLOAD_LEN {
            return Err(LedgerError::Entry(crate::entry::EntryError(format!(
                "payload of {} bytes is larger than the {MAX_PAYLOAD_LEN}-byte limit",
                payload.len()
            ))));
        }
        let mut salt = [0u8; SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        let c = PayloadCommitment::compute(&salt, payload);
        let path = self.path(&c);
        let tmp = path.with_extension("tmp");
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(LedgerError::io(&tmp))?;
        f.write_all(&salt)
            .and_then(|_| f.write_all(payload))
            .and_then(|_| f.sync_all())
            .map_err(LedgerError::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(LedgerError::io(&path))?;
        Ok(c)
    }

    /// Makes new payload files' directory entries durable.
    pub fn sync(&self) -> Result<(), LedgerError> {
        sync_dir(&self.dir)
    }

    /// Reads the payload committed to by `c`, if it is still stored.
    pub fn get(&self, c: &PayloadCommitment) -> Result<Option<StoredPayload>, LedgerError> {
        let path = self.path(c);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LedgerError::io(&path)(e)),
        };
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(LedgerError::io(&path))?;
        if bytes.len() < SALT_LEN {
            return Err(LedgerError::Damaged(format!(
                "payload file {} is shorter than its salt",
                path.display()
            )));
        }
        let data = bytes.split_off(SALT_LEN);
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes);
        Ok(Some(StoredPayload { salt, data }))
    }

    /// Destroys the payload committed to by `c`. Returns false when there was
    /// no such file.
    pub fn erase(&self, c: &PayloadCommitment) -> Result<bool, LedgerError> {
        let path = self.path(c);
        if !path.exists() {
            return Ok(false);
        }
        destroy_file(&path)?;
        sync_dir(&self.dir)?;
        Ok(true)
    }
}

/// Overwrites a file with zeros, fsyncs it and unlinks it.
fn destroy_file(path: &Path) -> Result<(), LedgerError> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(LedgerError::io(path))?;
    let len = f.metadata().map_err(LedgerError::io(path))?.len();
    let zeros = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n]).map_err(LedgerError::io(path))?;
        left -= n as u64;
    }
    f.sync_all().map_err(LedgerError::io(path))?;
    drop(f);
    fs::remove_file(path).map_err(LedgerError::io(path))
}
