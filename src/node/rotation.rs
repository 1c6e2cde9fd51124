//! Node key rotation on disk (`vigil key rotate`): the new key pair is
//! written beside the old one as `node.next.key` / `node.next.pub`, the
//! ledger hands the log over ([`Auditor::rotate_key`]), then the files swap:
//! the old public key is kept as `retired-keys/node-<n>.pub` (for auditors
//! who pinned it), the old secret key is deleted, and `node.next.*` become
//! `node.key` / `node.pub`.
//!
//! If the process stops in between, [`settle`] (run when the node or a
//! command opens the home) finishes the swap when the ledger names the
//! waiting key as the one in force, and discards the waiting key when the
//! handover was never recorded.

use std::fs;
use std::path::{Path, PathBuf};

use vigil_crypto::{keyfile, CompositePublicKey, SigningKey};
use vigil_ledger::ledger::Rotation;

use crate::node::audit::{AuditError, Auditor};
use crate::node::home::Home;

/// Why a rotation failed.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// A key file could not be written, read or moved.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A directory of the home could not be made.
    #[error(transparent)]
    Home(#[from] crate::node::home::HomeError),
    /// A key file is malformed or cannot be sealed.
    #[error(transparent)]
    Crypto(#[from] vigil_crypto::CryptoError),
    /// The ledger refused the handover (nothing was recorded).
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The handover is recorded but the key files could not be swapped.
    #[error("the handover to key {new} is recorded as entry {index}, but the key files could not be swapped ({why}); the next start of the node finishes it")]
    Swap {
        /// The new key's fingerprint.
        new: String,
        /// The handover entry.
        index: u64,
        /// What failed.
        why: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RotationError + '_ {
    move |source| RotationError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// The ledger's record of it.
    pub rotation: Rotation,
    /// Where the old public key was kept.
    pub retired: PathBuf,
}

fn next_stem(home: &Home) -> PathBuf {
    home.root().join("node.next")
}

/// The directory of retired node public keys.
pub fn retired_dir(home: &Home) -> PathBuf {
    home.root().join("retired-keys")
}

/// Rotates the node key of `home`, whose ledger `auditor` holds (with the
/// key in force). The new secret key is sealed with `passphrase` when one
/// is given, as the old one was.
pub fn rotate(
    home: &Home,
    auditor: &Auditor,
    passphrase: Option<&[u8]>,
    actor: &str,
) -> Result<Rotated, RotationError> {
    let stem = next_stem(home);
    // A leftover from a rotation that never reached the ledger.
    remove_next(home)?;
    let new = SigningKey::generate();
    keyfile::write_key_pair(&stem, &new, Some("vigil node"), passphrase)?;
    let new_public = new.public_key().clone();
    let rotation = match auditor.rotate_key(new, actor) {
        Ok(r) => r,
        Err(e) => {
            remove_next(home)?;
            return Err(e.into());
        }
    };
    let retired = swap(home).map_err(|e| RotationError::Swap {
        new: new_public.fingerprint(),
        index: rotation.handover.index,
        why: e.to_string(),
    })?;
    Ok(Rotated { rotation, retired })
}

fn remove_next(home: &Home) -> Result<(), RotationError> {
    for suffix in ["key", "pub"] {
        let p = keyfile::with_suffix(&next_stem(home), suffix);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&p)(e)),
        }
    }
    Ok(())
}

/// Moves `node.next.*` into place, keeping the old public key under
/// `retired-keys/` and deleting the old secret key.
fn swap(home: &Home) -> Result<PathBuf, RotationError> {
    let dir = retired_dir(home);
    crate::node::home::create_private_dir(&dir)?;
    let count = fs::read_dir(&dir).map_err(io(&dir))?.count();
    let retired = dir.join(format!("node-{}.pub", count + 1));
    let old_pub = home.node_pub_path();
    fs::copy(&old_pub, &retired).map_err(io(&retired))?;
    sync_file(&retired)?;
    let next = next_stem(home);
    let (next_key, next_pub) = (
        keyfile::with_suffix(&next, "key"),
        keyfile::with_suffix(&next, "pub"),
    );
    // Renaming over the old files replaces them atomically. (A swap
    // interrupted after the first rename is finished by the second.)
    if next_key.exists() {
        fs::rename(&next_key, home.node_key_path()).map_err(io(&next_key))?;
    }
    fs::rename(&next_pub, &old_pub).map_err(io(&next_pub))?;
    // Directories are synced by opening them, as files are.
    sync_file(home.root())?;
    sync_file(&dir)?;
    Ok(retired)
}

fn sync_file(p: &Path) -> Result<(), RotationError> {
    fs::File::open(p).and_then(|f| f.sync_all()).map_err(io(p))
}

/// Finishes or discards a rotation that stopped half-way: with a waiting
/// `node.next.pub`, the swap is finished when `current` (the key the
/// ledger names as in force) is the waiting key, and the waiting key is
/// removed otherwise. Returns what it did, for the log.
pub fn settle(home: &Home, current: &CompositePublicKey) -> Result<Option<String>, RotationError> {
    let next_pub = keyfile::with_suffix(&next_stem(home), "pub");
    let text = match fs::read_to_string(&next_pub) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&next_pub)(e)),
    };
    let waiting = keyfile::parse_public_key_line(&text).map(|(k, _)| k);
    match waiting {
        Ok(k) if k.as_bytes() == current.as_bytes() => {
            let retired = swap(home)?;
            Ok(Some(format!(
                "finished an interrupted key rotation: {} is the node key, the old public key is kept as {}",
                k.fingerprint(),
                retired.display()
            )))
        }
        _ => {
            remove_next(home)?;
            Ok(Some(
                "discarded a waiting node key whose handover the ledger never recorded".into(),
            ))
        }
    }
}
