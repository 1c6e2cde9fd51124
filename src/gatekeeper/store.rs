//! The store of admitted packages under the node home's packages directory:
//! each admitted package file kept verbatim as `<content hash>.vpkg`, and
//! the admission history in `index.toml`. Installing asks the gatekeeper
//! ([`PackageStore::decide`]) and, once the decision is recorded, stores
//! what it admitted ([`PackageStore::store_admitted`]); re-verifying every
//! current package ([`PackageStore::verify_stored`], as the node does at
//! start) refuses a stored copy that changed. Uninstalling
//! ([`PackageStore::withdraw`]) makes no version current and keeps the
//! history.

use std::path::{Path, PathBuf};

use super::history::VersionCheck;
use super::history::{AdmissionHistory, AdmittedRecord, HISTORY_VERSION};
use super::{AdmitOptions, Admitted, Decision, Gatekeeper};
use crate::node::home::Home;
use crate::trust::file::write_atomic;
use crate::trust::TrustStore;

/// File name of the admission history inside the packages directory.
pub const INDEX_FILE: &str = "index.toml";

/// Errors reading or writing the store (not refusals: those are decisions).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A stored package re-verified at start, with its decision.
#[derive(Debug)]
pub struct StoredCheck {
    pub record: AdmittedRecord,
    /// Path of the stored copy.
    pub path: PathBuf,
    pub decision: Decision,
}

/// The packages directory of one node home.
#[derive(Debug)]
pub struct PackageStore {
    dir: PathBuf,
    history: AdmissionHistory,
}

impl PackageStore {
    /// Opens the store of `home`; a missing directory is an empty store.
    pub fn open(home: &Home) -> Result<Self, StoreError> {
        let dir = home.packages_dir();
        let index = dir.join(INDEX_FILE);
        let history = match std::fs::read_to_string(&index) {
            Ok(text) => {
                let h: AdmissionHistory =
                    toml::from_str(&text).map_err(|e| StoreError::Invalid {
                        path: index.clone(),
                        message: e.message().trim().to_string(),
                    })?;
                if h.version != HISTORY_VERSION {
                    return Err(StoreError::Invalid {
                        path: index,
                        message: format!("unsupported index version {}", h.version),
                    });
                }
                h
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AdmissionHistory::default(),
            Err(e) => return Err(io_err(&index)(e)),
        };
        Ok(Self { dir, history })
    }

    /// Every admission this node ever made.
    pub fn history(&self) -> &AdmissionHistory {
        &self.history
    }

    /// Path of the stored copy of the package with content hash `hash`.
    pub fn package_path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}.vpkg"))
    }

    /// Runs the gatekeeper on `bytes` against this store's history. Nothing
    /// is stored: record the decision, then [`PackageStore::store_admitted`].
    pub fn decide(
        &self,
        trust: &TrustStore,
        max_package_bytes: u64,
        bytes: &[u8],
        options: &AdmitOptions<'_>,
    ) -> Decision {
        Gatekeeper {
            trust,
            history: &self.history,
            max_package_bytes,
        }
        .admit(bytes, options)
    }

    /// Stores an admitted package as `<hash>.vpkg`, records the admission
    /// in the history (making it the current version of its name) and
    /// removes the file of the version it supersedes. The new file is
    /// written and the history saved before anything is removed, and the
    /// file of the version that is current afterwards is never removed. A
    /// package already current ([`VersionCheck::AlreadyAdmitted`]) changes
    /// nothing (unless its stored copy is missing or changed, which the
    /// offered bytes then replace). Returns whether anything changed.
    pub fn store_admitted(
        &mut self,
        bytes: &[u8],
        admitted: &Admitted,
        now: u64,
    ) -> Result<bool, StoreError> {
        if admitted.version_check == VersionCheck::AlreadyAdmitted
            && self
                .history
                .current(&admitted.package().name)
                .is_some_and(|r| r.hash == admitted.package().hash)
        {
            // Nothing changes unless the stored copy went missing or was
            // changed on disk: then the verified bytes offered repair it.
            let path = self.package_path(&admitted.package().hash);
            if std::fs::read(&path).is_ok_and(|stored| stored == bytes) {
                return Ok(false);
            }
            write_atomic(&path, bytes).map_err(io_err(&path))?;
            return Ok(true);
        }
        crate::node::home::create_private_dir(&self.dir).map_err(|e| StoreError::Invalid {
            path: self.dir.clone(),
            message: e.to_string(),
        })?;
        let path = self.package_path(&admitted.package().hash);
        write_atomic(&path, bytes).map_err(io_err(&path))?;
        let superseded: Vec<String> = self
            .history
            .current_records()
            .filter(|r| r.name == admitted.package().name && r.hash != admitted.package().hash)
            .map(|r| r.hash.clone())
            .collect();
        self.history.record(AdmittedRecord {
            name: admitted.package().name.clone(),
            version: admitted.package().version.clone(),
            hash: admitted.package().hash.clone(),
            publisher: admitted.package().publisher.clone(),
            admitted_at: now,
            allowed_findings: admitted
                .allowed_findings
                .iter()
                .map(|f| f.id.clone())
                .collect(),
            current: true,
        });
        self.save()?;
        for hash in superseded {
            // The history keeps the superseded version; its file is no
            // longer needed. A leftover file is harmless.
            if hash != admitted.package().hash {
                let _ = std::fs::remove_file(self.package_path(&hash));
            }
        }
        Ok(true)
    }

    /// Makes no version of `name` current (the history keeps every record,
    /// so an older version offered later is still judged a rollback) and
    /// removes its stored file once the history is saved. Record the
    /// removal first. Returns the record that was current.
    pub fn withdraw(&mut self, name: &str) -> Result<Option<AdmittedRecord>, StoreError> {
        let Some(record) = self.history.withdraw(name) else {
            return Ok(None);
        };
        self.save()?;
        // A leftover file is harmless: nothing current names it.
        let _ = std::fs::remove_file(self.package_path(&record.hash));
        Ok(Some(record))
    }

    /// Re-verifies every current stored package (the check at node start).
    pub fn verify_stored(&self, trust: &TrustStore, max_package_bytes: u64) -> Vec<StoredCheck> {
        let gatekeeper = Gatekeeper {
            trust,
            history: &self.history,
            max_package_bytes,
        };
        self.history
            .current_records()
            .map(|record| {
                let path = self.package_path(&record.hash);
                let decision = match std::fs::read(&path) {
                    Ok(bytes) => gatekeeper.recheck(&bytes, record),
                    Err(e) => Decision::Refused(Box::new(super::Refused {
                        package: None,
                        reason: super::Refusal::StoredCopyMissing {
                            label: format!("{}@{}", record.name, record.version),
                            hash: record.hash.clone(),
                            detail: e.to_string(),
                        },
                    })),
                };
                StoredCheck {
                    record: record.clone(),
                    path,
                    decision,
                }
            })
            .collect()
    }

    fn save(&self) -> Result<(), StoreError> {
        let index = self.dir.join(INDEX_FILE);
        let body = toml::to_string(&self.history).map_err(|e| StoreError::Invalid {
            path: index.clone(),
            message: e.to_string(),
        })?;
        let text = format!("# vigil admitted packages: every admission ever made. Written by `vigil install`.\n{body}");
        write_atomic(&index, text.as_bytes()).map_err(io_err(&index))
    }
}
