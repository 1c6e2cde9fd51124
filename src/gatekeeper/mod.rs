//! The gatekeeper: decides whether a package may ever run. It admits a
//! package only if the file parses within its size limit, the content hash
//! matches, both halves of the composite signature verify, the publisher is
//! trusted, not revoked and scoped for the name, the version is not a
//! rollback or a same-version swap, the name is not confusable with an
//! admitted one, and the tool-poisoning scan finds nothing the operator did
//! not allow. The rules are plain functions over bytes and plain data
//! ([`Gatekeeper::admit`], [`Gatekeeper::recheck`]); the store of admitted
//! packages ([`store`]) is the I/O edge.

pub mod history;
pub mod names;
pub mod poisoning;
pub mod record;
pub mod store;
pub mod verified;

use serde_json::json;
use vigil_crypto::{context, CompositePublicKey};

use crate::package::{self, FormatError, Manifest, ManifestError, PackageFile};
use crate::trust::TrustStore;
use history::{AdmissionHistory, AdmittedRecord, VersionCheck, VersionProblem};
use poisoning::Finding;
use record::AuditRecord;
pub use verified::VerifiedPackage;

use crate::node::audit::{EventKind, Verdict};

/// Who a package is and what it holds, as far as it could be read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PackageSummary {
    pub name: String,
    pub version: String,
    /// Content hash the file claims, 64 hex digits.
    pub hash: String,
    /// Key id of the embedded publisher key ("" when unreadable).
    pub publisher: String,
}

impl PackageSummary {
    /// `name@version`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// Why a package was refused. Each reason says what is wrong and what the
/// operator can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Format(#[from] FormatError),
    #[error("invalid {0}")]
    Manifest(#[from] ManifestError),
    #[error("content hash mismatch: the file claims {claimed} but its manifest and module hash to {computed}; the package was changed after it was signed")]
    HashMismatch { claimed: String, computed: String },
    #[error("the publisher key embedded in the package is invalid: {0}")]
    BadPublisherKey(String),
    #[error("bad signature: the composite signature does not verify under publisher key {key_id} ({detail}); both the ML-DSA-65 and the Ed25519 half must be valid")]
    BadSignature { key_id: String, detail: String },
    #[error("unknown publisher: key {key_id} is not in the trust store; if you trust it, run `vigil trust publisher add KEY.pub --scope 'NAME/*'`")]
    UnknownPublisher { key_id: String },
    #[error("revoked publisher: key {key_id} was revoked ({reason})")]
    RevokedPublisher { key_id: String, reason: String },
    #[error("name outside scope: publisher {key_id} may sign only {scopes}, and `{name}` is not covered")]
    OutOfScope {
        name: String,
        key_id: String,
        scopes: String,
    },
    #[error("invalid package name `{name}`: {problem}")]
    BadName { name: String, problem: String },
    #[error("confusable name: `{name}` is confusable with admitted package `{other}`: {why}")]
    Confusable {
        name: String,
        other: String,
        why: String,
    },
    #[error("rollback refused: {name} {version} is lower than version {highest}, which this node already admitted; to run the older version anyway, install it with --allow-downgrade (recorded)")]
    Rollback {
        name: String,
        version: String,
        highest: String,
    },
    #[error("same version, other content: {name} {version} was admitted with hash {admitted_hash}, this package has hash {hash}; a published version must never change (publish a new version)")]
    SameVersionOtherContent {
        name: String,
        version: String,
        admitted_hash: String,
        hash: String,
    },
    #[error(
        "tool-poisoning scan: {list}; to admit anyway, pass --allow-finding ID for each finding"
    )]
    Poisoned {
        findings: Vec<Finding>,
        list: String,
    },
    #[error("stored copy changed: the stored package {label} should hash to {expected} but hashes to {actual}")]
    StoredCopyChanged {
        label: String,
        expected: String,
        actual: String,
    },
    #[error("stored copy missing: {label} ({hash}) is admitted but its file is gone or unreadable: {detail}")]
    StoredCopyMissing {
        label: String,
        hash: String,
        detail: String,
    },
}

impl Refusal {
    /// A short stable code for the ledger and `--json` output.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Format(FormatError::TooLarge { .. }) => "too-large",
            Self::Format(FormatError::Truncated { .. }) => "truncated",
            Self::Format(_) => "malformed-package",
            Self::Manifest(_) => "invalid-manifest",
            Self::HashMismatch { .. } => "hash-mismatch",
            Self::BadPublisherKey(_) => "bad-publisher-key",
            Self::BadSignature { .. } => "bad-signature",
            Self::UnknownPublisher { .. } => "unknown-publisher",
            Self::RevokedPublisher { .. } => "revoked-publisher",
            Self::OutOfScope { .. } => "name-outside-scope",
            Self::BadName { .. } => "invalid-name",
            Self::Confusable { .. } => "confusable-name",
            Self::Rollback { .. } => "rollback",
            Self::SameVersionOtherContent { .. } => "same-version-other-content",
            Self::Poisoned { .. } => "tool-poisoning",
            Self::StoredCopyChanged { .. } => "stored-copy-changed",
            Self::StoredCopyMissing { .. } => "stored-copy-missing",
        }
    }
}

/// An admitted package.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The verified bytes, manifest and summary: what the sandbox loads.
    pub verified: VerifiedPackage,
    /// Findings present but allowed by the operator.
    pub allowed_findings: Vec<Finding>,
    /// How the version relates to earlier admissions.
    pub version_check: VersionCheck,
}

impl Admitted {
    /// Who the package is.
    pub fn package(&self) -> &PackageSummary {
        self.verified.summary()
    }

    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        self.verified.manifest()
    }
}

/// A refused package.
#[derive(Debug, Clone)]
pub struct Refused {
    /// What could be read of the package, if anything.
    pub package: Option<PackageSummary>,
    pub reason: Refusal,
}

/// The gatekeeper's answer.
#[derive(Debug, Clone)]
pub enum Decision {
    Admitted(Box<Admitted>),
    Refused(Box<Refused>),
}

/// Where a decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occasion {
    /// `vigil install`.
    Install,
    /// Re-verification of a stored package when the node starts.
    Startup,
    /// Re-verification when a running node loads its tools anew (after an
    /// install, an uninstall or a trust change).
    Reload,
}

impl Decision {
    /// The ledger record of this decision (exactly one per decision).
    /// `source` names the file or stored copy the bytes came from.
    pub fn audit_record(&self, occasion: Occasion, source: &str) -> AuditRecord {
        let occasion = match occasion {
            Occasion::Install => "install",
            Occasion::Startup => "startup",
            Occasion::Reload => "reload",
        };
        match self {
            Self::Admitted(a) => AuditRecord {
                kind: EventKind::PackageAdmitted,
                subject: a.package().label(),
                decision: Verdict::Allow,
                details: admitted_details(a, occasion, source),
            },
            Self::Refused(r) => AuditRecord {
                kind: EventKind::PackageRefused,
                subject: r
                    .package
                    .as_ref()
                    .map_or_else(|| source.to_string(), PackageSummary::label),
                decision: Verdict::Deny,
                details: json!({
                    "occasion": occasion,
                    "source": source,
                    "code": r.reason.code(),
                    "reason": r.reason.to_string(),
                    "package": r.package,
                }),
            },
        }
    }
}

/// The details of a `package.admitted` entry: the package, the findings
/// allowed, the reason and how the version changes (`from`, `to`, and
/// `"downgrade": true` for a pinned downgrade).
fn admitted_details(a: &Admitted, occasion: &str, source: &str) -> serde_json::Value {
    let (reason, from) = match &a.version_check {
        VersionCheck::New => ("all checks passed (new name)".to_string(), None),
        VersionCheck::Upgrade { from } => (
            format!("all checks passed (upgrade from {from})"),
            Some(from.clone()),
        ),
        VersionCheck::AlreadyAdmitted => (
            "all checks passed (already admitted, unchanged)".to_string(),
            Some(a.package().version.clone()),
        ),
        VersionCheck::Restored { from } => (
            "all checks passed (the highest version admitted, made current again)".to_string(),
            from.clone(),
        ),
        VersionCheck::Downgrade { from } => (
            format!("all checks passed (downgrade from {from}, allowed by the operator)"),
            Some(from.clone()),
        ),
    };
    let mut details = json!({
        "occasion": occasion,
        "source": source,
        "name": a.package().name,
        "version": a.package().version,
        "hash": a.package().hash,
        "publisher": a.package().publisher,
        "allowed_findings": a.allowed_findings.iter().map(|f| &f.id).collect::<Vec<_>>(),
        "reason": reason,
        "from": from,
        "to": a.package().version,
    });
    if matches!(a.version_check, VersionCheck::Downgrade { .. }) {
        details["downgrade"] = json!(true);
    }
    details
}

/// What the operator allows for one admission.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdmitOptions<'a> {
    /// Finding ids of the poisoning scan admitted anyway (`--allow-finding`).
    pub allowed_findings: &'a [String],
    /// Admit a version lower than the highest ever admitted
    /// (`--allow-downgrade`).
    pub allow_downgrade: bool,
}

/// The admission rules over a trust store and an admission history.
#[derive(Debug, Clone, Copy)]
pub struct Gatekeeper<'a> {
    pub trust: &'a TrustStore,
    pub history: &'a AdmissionHistory,
    /// Largest package file accepted, in bytes.
    pub max_package_bytes: u64,
}

/// A package whose bytes are intact and whose signature verifies.
struct Verified<'a> {
    file: PackageFile<'a>,
    manifest: Manifest,
    summary: PackageSummary,
}

fn refused(package: Option<PackageSummary>, reason: Refusal) -> Decision {
    Decision::Refused(Box::new(Refused { package, reason }))
}

impl Gatekeeper<'_> {
    /// Decides on a package offered by `vigil install`, with what the
    /// operator allows in `options`.
    pub fn admit(&self, bytes: &[u8], options: &AdmitOptions<'_>) -> Decision {
        let v = match self.verify_intact(bytes) {
            Ok(v) => v,
            Err(d) => return d,
        };
        let summary = v.summary.clone();
        let refuse = |reason| refused(Some(summary.clone()), reason);
        if let Err(reason) = self.check_publisher(&v) {
            return refuse(reason);
        }
        let name = &v.manifest.package.name;
        if let Some((other, why)) =
            names::find_confusable(name, &summary.publisher, self.history.names())
        {
            return refuse(Refusal::Confusable {
                name: poisoning::printable(name),
                other,
                why: why.to_string(),
            });
        }
        if let Err(problem) = names::check_syntax(name) {
            return refuse(Refusal::BadName {
                name: poisoning::printable(name),
                problem,
            });
        }
        let Some(version) = v.manifest.semver() else {
            return refuse(Refusal::Manifest(ManifestError::Invalid(
                "package.version is not a semantic version".into(),
            )));
        };
        let version_check =
            match self
                .history
                .check_version(name, &version, &summary.hash, options.allow_downgrade)
            {
                Ok(c) => c,
                Err(VersionProblem::Rollback { highest }) => {
                    return refuse(Refusal::Rollback {
                        name: name.clone(),
                        version: version.to_string(),
                        highest,
                    })
                }
                Err(VersionProblem::SameVersionOtherContent { admitted_hash }) => {
                    return refuse(Refusal::SameVersionOtherContent {
                        name: name.clone(),
                        version: version.to_string(),
                        admitted_hash,
                        hash: summary.hash.clone(),
                    })
                }
            };
        match check_findings(&v.manifest, options.allowed_findings) {
            Ok(allowed) => Decision::Admitted(Box::new(Admitted {
                verified: VerifiedPackage::new(v.summary, v.manifest, v.file.module),
                allowed_findings: allowed,
                version_check,
            })),
            Err(reason) => refuse(reason),
        }
    }

    /// Re-verifies a stored package at node start against its admission
    /// record: the bytes must still hash to the recorded hash, the signature
    /// must verify, the publisher must still be trusted, unrevoked and in
    /// scope, and the scan may find only what the operator allowed.
    pub fn recheck(&self, bytes: &[u8], record: &AdmittedRecord) -> Decision {
        let label = format!("{}@{}", record.name, record.version);
        let changed = |actual: String| {
            refused(
                None,
                Refusal::StoredCopyChanged {
                    label: label.clone(),
                    expected: record.hash.clone(),
                    actual,
                },
            )
        };
        let v = match self.verify_intact(bytes) {
            Ok(v) => v,
            Err(Decision::Refused(r)) => {
                let actual = PackageFile::parse(bytes, u64::MAX)
                    .map(|f| hex::encode(f.computed_hash()))
                    .unwrap_or_else(|e| format!("nothing: {e}"));
                return match r.reason {
                    Refusal::Format(_) | Refusal::Manifest(_) | Refusal::HashMismatch { .. } => {
                        changed(actual)
                    }
                    _ => Decision::Refused(r),
                };
            }
            Err(d) => return d,
        };
        if v.summary.hash != record.hash
            || v.manifest.package.name != record.name
            || v.manifest.package.version != record.version
        {
            return changed(v.summary.hash);
        }
        let summary = v.summary.clone();
        if let Err(reason) = self.check_publisher(&v) {
            return refused(Some(summary), reason);
        }
        if let Err(problem) = names::check_syntax(&v.manifest.package.name) {
            return refused(
                Some(summary),
                Refusal::BadName {
                    name: poisoning::printable(&v.manifest.package.name),
                    problem,
                },
            );
        }
        match check_findings(&v.manifest, &record.allowed_findings) {
            Ok(allowed) => Decision::Admitted(Box::new(Admitted {
                verified: VerifiedPackage::new(v.summary, v.manifest, v.file.module),
                allowed_findings: allowed,
                version_check: VersionCheck::AlreadyAdmitted,
            })),
            Err(reason) => refused(Some(summary), reason),
        }
    }

    /// Size, format, manifest, content hash and both signature halves
    /// under the embedded key.
    fn verify_intact<'b>(&self, bytes: &'b [u8]) -> Result<Verified<'b>, Decision> {
        let file = PackageFile::parse(bytes, self.max_package_bytes)
            .map_err(|e| refused(None, e.into()))?;
        let key = CompositePublicKey::from_bytes(file.public_key);
        let publisher = key
            .as_ref()
            .map(|k| k.key_id().to_string())
            .unwrap_or_default();
        let manifest = Manifest::parse(file.manifest).map_err(|e| refused(None, e.into()))?;
        let summary = PackageSummary {
            name: manifest.package.name.clone(),
            version: manifest.package.version.clone(),
            hash: hex::encode(file.content_hash),
            publisher,
        };
        let computed = file.computed_hash();
        if computed != file.content_hash {
            return Err(refused(
                Some(summary),
                Refusal::HashMismatch {
                    claimed: hex::encode(file.content_hash),
                    computed: hex::encode(computed),
                },
            ));
        }
        let key = key.map_err(|e| {
            refused(
                Some(summary.clone()),
                Refusal::BadPublisherKey(e.to_string()),
            )
        })?;
        let statement = package::statement_of(&file, &manifest);
        if let Err(e) = key.verify_bytes(&statement, context::PACKAGE, file.signature) {
            return Err(refused(
                Some(summary.clone()),
                Refusal::BadSignature {
                    key_id: summary.publisher.clone(),
                    detail: e.to_string(),
                },
            ));
        }
        Ok(Verified {
            file,
            manifest,
            summary,
        })
    }

    /// The publisher key must be in the trust store (the whole key, not
    /// only its id), not revoked, and one of its scopes must cover the name.
    fn check_publisher(&self, v: &Verified<'_>) -> Result<(), Refusal> {
        let key_id = v.summary.publisher.clone();
        let trusted = vigil_crypto::KeyId::parse(&key_id)
            .and_then(|id| self.trust.publisher(&id))
            .filter(|p| {
                p.public_key()
                    .is_some_and(|k| k.as_bytes() == v.file.public_key)
            });
        let Some(publisher) = trusted else {
            return Err(Refusal::UnknownPublisher { key_id });
        };
        if let Some(r) = &publisher.revoked {
            return Err(Refusal::RevokedPublisher {
                key_id,
                reason: r.reason.clone(),
            });
        }
        let name = &v.manifest.package.name;
        if publisher.scope_for(name).is_none() {
            return Err(Refusal::OutOfScope {
                name: poisoning::printable(name),
                key_id,
                scopes: publisher
                    .scopes
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(())
    }
}

/// Runs the poisoning scan; refuses unless every finding is allowed.
/// Returns the allowed findings.
pub fn check_findings(manifest: &Manifest, allowed: &[String]) -> Result<Vec<Finding>, Refusal> {
    let (ok, blocking): (Vec<Finding>, Vec<Finding>) = poisoning::scan(manifest)
        .into_iter()
        .partition(|f| allowed.iter().any(|a| a == &f.id));
    if blocking.is_empty() {
        return Ok(ok);
    }
    let list = blocking
        .iter()
        .map(|f| format!("{} ({:?})", f.id, f.evidence))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Refusal::Poisoned {
        findings: blocking,
        list,
    })
}
