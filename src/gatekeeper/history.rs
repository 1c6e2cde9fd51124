//! The admission history: every package version this node ever admitted,
//! with its content hash and publisher, and which version of each name is
//! current. It backs the rollback rule (never lower than the highest
//! version ever admitted), the same-version rule (an admitted version is
//! never re-admitted with other content) and the confusable-name rule.
//! Stored as `index.toml` in the packages directory by `store`.

use serde::{Deserialize, Serialize};

/// Format version of `index.toml`.
pub const HISTORY_VERSION: u32 = 1;

/// Every admission ever made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionHistory {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admitted: Vec<AdmittedRecord>,
}

impl Default for AdmissionHistory {
    fn default() -> Self {
        Self {
            version: HISTORY_VERSION,
            admitted: Vec::new(),
        }
    }
}

/// One admitted package version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmittedRecord {
    pub name: String,
    pub version: String,
    /// Content hash, 64 hex digits; the stored file is `<hash>.vpkg`.
    pub hash: String,
    /// Publisher key id.
    pub publisher: String,
    /// Unix seconds.
    pub admitted_at: u64,
    /// Findings the operator allowed with `--allow-finding`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_findings: Vec<String>,
    /// True for the version of this name the node runs.
    pub current: bool,
}

/// How a candidate relates to what was admitted before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionCheck {
    /// A name never admitted before.
    New,
    /// Higher than every admitted version of the name.
    Upgrade { from: String },
    /// Exactly a package already admitted (same version, same hash).
    AlreadyAdmitted,
}

/// Why a version is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionProblem {
    /// Lower than the highest version ever admitted.
    Rollback { highest: String },
    /// The same version was admitted with another content hash.
    SameVersionOtherContent { admitted_hash: String },
}

impl AdmissionHistory {
    /// The record of the current version of `name`.
    pub fn current(&self, name: &str) -> Option<&AdmittedRecord> {
        self.admitted.iter().find(|r| r.current && r.name == name)
    }

    /// Every current record.
    pub fn current_records(&self) -> impl Iterator<Item = &AdmittedRecord> {
        self.admitted.iter().filter(|r| r.current)
    }

    /// `(name, publisher)` of every name ever admitted.
    pub fn names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.admitted
            .iter()
            .map(|r| (r.name.as_str(), r.publisher.as_str()))
    }

    /// Applies the rollback and same-version rules to `name@version` with
    /// content `hash`.
    pub fn check_version(
        &self,
        name: &str,
        version: &semver::Version,
        hash: &str,
    ) -> Result<VersionCheck, VersionProblem> {
        let mut highest: Option<semver::Version> = None;
        for r in self.admitted.iter().filter(|r| r.name == name) {
            let Ok(v) = semver::Version::parse(&r.version) else {
                continue;
            };
            if &v == version {
                return if r.hash == hash {
                    Ok(VersionCheck::AlreadyAdmitted)
                } else {
                    Err(VersionProblem::SameVersionOtherContent {
                        admitted_hash: r.hash.clone(),
                    })
                };
            }
            if highest.as_ref().is_none_or(|h| &v > h) {
                highest = Some(v);
            }
        }
        match highest {
            None => Ok(VersionCheck::New),
            Some(h) if &h > version => Err(VersionProblem::Rollback {
                highest: h.to_string(),
            }),
            Some(h) => Ok(VersionCheck::Upgrade {
                from: h.to_string(),
            }),
        }
    }

    /// Records an admission and makes it the current version of its name.
    pub fn record(&mut self, record: AdmittedRecord) {
        if self
            .admitted
            .iter()
            .any(|r| r.name == record.name && r.hash == record.hash)
        {
            return;
        }
        for r in self.admitted.iter_mut().filter(|r| r.name == record.name) {
            r.current = false;
        }
        self.admitted.push(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(version: &str, hash: &str) -> AdmittedRecord {
        AdmittedRecord {
            name: "acme/x".into(),
            version: version.into(),
            hash: hash.into(),
            publisher: "k".into(),
            admitted_at: 0,
            allowed_findings: vec![],
            current: true,
        }
    }

    #[test]
    fn versions() {
        let mut h = AdmissionHistory::default();
        let v = |s| semver::Version::parse(s).expect("v");
        assert_eq!(
            h.check_version("acme/x", &v("1.0.0"), "a"),
            Ok(VersionCheck::New)
        );
        h.record(rec("1.0.0", "a"));
        h.record(rec("2.0.0", "b"));
        assert_eq!(h.current("acme/x").expect("current").version, "2.0.0");
        assert_eq!(h.current_records().count(), 1);
        assert_eq!(
            h.check_version("acme/x", &v("2.0.0"), "b"),
            Ok(VersionCheck::AlreadyAdmitted)
        );
        assert!(matches!(
            h.check_version("acme/x", &v("2.0.0"), "c"),
            Err(VersionProblem::SameVersionOtherContent { .. })
        ));
        assert!(matches!(
            h.check_version("acme/x", &v("1.5.0"), "c"),
            Err(VersionProblem::Rollback { .. })
        ));
        assert!(matches!(
            h.check_version("acme/x", &v("2.0.1"), "c"),
            Ok(VersionCheck::Upgrade { .. })
        ));
    }
}
