//! The admission history: every package version this node ever admitted,
//! with its content hash and publisher, and which version of each name is
//! current (none after `vigil uninstall`). It backs the rollback rule
//! (never lower than the highest version ever admitted, unless the
//! operator pins a downgrade), the same-version rule (an admitted version
//! is never re-admitted with other content) and the confusable-name rule.
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
    /// Higher than every admitted version of the name; `from` is the
    /// current version (or, when none is current, the highest admitted).
    Upgrade { from: String },
    /// Exactly the current version (same version, same hash): nothing
    /// changes.
    AlreadyAdmitted,
    /// The highest version ever admitted, admitted again while it is not
    /// current (after an uninstall or a pinned downgrade); `from` is the
    /// current version, if any.
    Restored { from: Option<String> },
    /// Lower than the highest version ever admitted, pinned by the
    /// operator (`--allow-downgrade`); `from` is the current version (or,
    /// when none is current, the highest admitted).
    Downgrade { from: String },
}

/// Why a version is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionProblem {
    /// Lower than the highest version ever admitted, and not pinned.
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

    /// The highest version of `name` ever admitted (records whose version
    /// does not parse are ignored).
    pub fn highest(&self, name: &str) -> Option<semver::Version> {
        self.admitted
            .iter()
            .filter(|r| r.name == name)
            .filter_map(|r| semver::Version::parse(&r.version).ok())
            .max()
    }

    /// Applies the rollback and same-version rules to `name@version` with
    /// content `hash`, judged against the highest version ever admitted
    /// for the name (not against whichever earlier admission the hash
    /// matches): the same version never with other content; exactly the
    /// current package is a no-op; lower than the highest is a rollback
    /// unless `allow_downgrade`.
    pub fn check_version(
        &self,
        name: &str,
        version: &semver::Version,
        hash: &str,
        allow_downgrade: bool,
    ) -> Result<VersionCheck, VersionProblem> {
        let same_version = self.admitted.iter().find(|r| {
            r.name == name && semver::Version::parse(&r.version).is_ok_and(|v| &v == version)
        });
        if let Some(r) = same_version.filter(|r| r.hash != hash) {
            return Err(VersionProblem::SameVersionOtherContent {
                admitted_hash: r.hash.clone(),
            });
        }
        let current = self.current(name);
        if current.is_some_and(|c| c.hash == hash) {
            return Ok(VersionCheck::AlreadyAdmitted);
        }
        let Some(highest) = self.highest(name) else {
            return Ok(VersionCheck::New);
        };
        let from = || current.map_or_else(|| highest.to_string(), |c| c.version.clone());
        match version.cmp(&highest) {
            std::cmp::Ordering::Less if allow_downgrade => {
                Ok(VersionCheck::Downgrade { from: from() })
            }
            std::cmp::Ordering::Less => Err(VersionProblem::Rollback {
                highest: highest.to_string(),
            }),
            std::cmp::Ordering::Equal => Ok(VersionCheck::Restored {
                from: current.map(|c| c.version.clone()),
            }),
            std::cmp::Ordering::Greater => Ok(VersionCheck::Upgrade { from: from() }),
        }
    }

    /// Records an admission and makes it the current version of its name
    /// (a package admitted before is made current again, with the
    /// findings allowed this time).
    pub fn record(&mut self, record: AdmittedRecord) {
        for r in self.admitted.iter_mut().filter(|r| r.name == record.name) {
            r.current = false;
        }
        if let Some(r) = self
            .admitted
            .iter_mut()
            .find(|r| r.name == record.name && r.hash == record.hash)
        {
            r.current = true;
            r.allowed_findings = record.allowed_findings;
            r.admitted_at = record.admitted_at;
            return;
        }
        self.admitted.push(record);
    }

    /// Makes no version of `name` current (the history keeps every
    /// record); returns the record that was current.
    pub fn withdraw(&mut self, name: &str) -> Option<AdmittedRecord> {
        let r = self
            .admitted
            .iter_mut()
            .find(|r| r.current && r.name == name)?;
        r.current = false;
        Some(r.clone())
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

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).expect("v")
    }

    #[test]
    fn versions() {
        let mut h = AdmissionHistory::default();
        assert_eq!(
            h.check_version("acme/x", &v("1.0.0"), "a", false),
            Ok(VersionCheck::New)
        );
        h.record(rec("1.0.0", "a"));
        h.record(rec("2.0.0", "b"));
        assert_eq!(h.current("acme/x").expect("current").version, "2.0.0");
        assert_eq!(h.current_records().count(), 1);
        assert_eq!(
            h.check_version("acme/x", &v("2.0.0"), "b", false),
            Ok(VersionCheck::AlreadyAdmitted)
        );
        assert!(matches!(
            h.check_version("acme/x", &v("2.0.0"), "c", false),
            Err(VersionProblem::SameVersionOtherContent { .. })
        ));
        assert!(matches!(
            h.check_version("acme/x", &v("1.5.0"), "c", false),
            Err(VersionProblem::Rollback { .. })
        ));
        assert_eq!(
            h.check_version("acme/x", &v("2.0.1"), "c", false),
            Ok(VersionCheck::Upgrade {
                from: "2.0.0".into()
            })
        );
    }

    #[test]
    fn an_older_admitted_package_is_a_rollback_whatever_its_hash_matches() {
        let mut h = AdmissionHistory::default();
        h.record(rec("1.0.0", "a"));
        h.record(rec("9.9.9", "b"));
        assert_eq!(
            h.check_version("acme/x", &v("1.0.0"), "a", false),
            Err(VersionProblem::Rollback {
                highest: "9.9.9".into()
            })
        );
        // Pinned by the operator: a downgrade from the current version.
        assert_eq!(
            h.check_version("acme/x", &v("1.0.0"), "a", true),
            Ok(VersionCheck::Downgrade {
                from: "9.9.9".into()
            })
        );
        // Never the same version with other content, pinned or not.
        assert!(matches!(
            h.check_version("acme/x", &v("1.0.0"), "z", true),
            Err(VersionProblem::SameVersionOtherContent { .. })
        ));
        h.record(rec("1.0.0", "a"));
        assert_eq!(h.current("acme/x").expect("current").version, "1.0.0");
        assert_eq!(
            h.admitted.len(),
            2,
            "the history keeps one record per package"
        );
        // Reinstalling the pinned current version changes nothing.
        assert_eq!(
            h.check_version("acme/x", &v("1.0.0"), "a", false),
            Ok(VersionCheck::AlreadyAdmitted)
        );
        // Back to the highest version.
        assert_eq!(
            h.check_version("acme/x", &v("9.9.9"), "b", false),
            Ok(VersionCheck::Restored {
                from: Some("1.0.0".into())
            })
        );
    }

    #[test]
    fn a_withdrawn_name_still_judges_rollbacks() {
        let mut h = AdmissionHistory::default();
        h.record(rec("1.0.0", "a"));
        h.record(rec("2.0.0", "b"));
        assert_eq!(
            h.withdraw("acme/x").map(|r| r.version),
            Some("2.0.0".into())
        );
        assert!(h.current("acme/x").is_none());
        assert!(h.withdraw("acme/x").is_none());
        assert!(matches!(
            h.check_version("acme/x", &v("1.0.0"), "a", false),
            Err(VersionProblem::Rollback { .. })
        ));
        assert_eq!(
            h.check_version("acme/x", &v("2.0.0"), "b", false),
            Ok(VersionCheck::Restored { from: None })
        );
        assert_eq!(
            h.check_version("acme/x", &v("3.0.0"), "c", false),
            Ok(VersionCheck::Upgrade {
                from: "2.0.0".into()
            })
        );
    }
}
