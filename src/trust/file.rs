//! Reading and writing `trust.toml`: TOML with unknown keys refused, written
//! atomically (temporary file, fsync, rename) so a crash never leaves half
//! a trust store.

use std::io::Write as _;
use std::path::Path;

use super::{TrustError, TrustStore, TRUST_STORE_VERSION};

/// Comment written at the top of the file.
const HEADER: &str = "# vigil trust store: publishers and peers this node trusts.\n# Change it with `vigil trust ...`; every change is recorded in the ledger.\n";

/// Parses trust store text.
pub fn decode(text: &str, origin: &str) -> Result<TrustStore, TrustError> {
    let store: TrustStore = toml::from_str(text).map_err(|e| TrustError::Invalid {
        path: origin.to_string(),
        message: e.message().trim().to_string(),
    })?;
    if store.version != TRUST_STORE_VERSION {
        return Err(TrustError::Invalid {
            path: origin.to_string(),
            message: format!(
                "trust store version {} is not supported (this node reads version {TRUST_STORE_VERSION})",
                store.version
            ),
        });
    }
    Ok(store)
}

/// Encodes a trust store as TOML with the header comment.
pub fn encode(store: &TrustStore) -> Result<String, TrustError> {
    let body = toml::to_string(store).map_err(|e| TrustError::Invalid {
        path: "trust store".into(),
        message: e.to_string(),
    })?;
    Ok(format!("{HEADER}{body}"))
}

/// Loads the trust store; a missing file is an empty store.
pub fn load(path: &Path) -> Result<TrustStore, TrustError> {
    match std::fs::read_to_string(path) {
        Ok(text) => decode(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustStore::default()),
        Err(source) => Err(TrustError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes the trust store atomically.
pub fn save(path: &Path, store: &TrustStore) -> Result<(), TrustError> {
    let text = encode(store)?;
    write_atomic(path, text.as_bytes()).map_err(|source| TrustError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Writes `bytes` to `path` through a temporary file in the same
/// directory, fsynced, then renamed over `path`, then the directory fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        // Directory fsync is best effort: some filesystems refuse it.
        let _ = d.sync_all();
    }
    Ok(())
}
