//! `vigil install FILE.vpkg [--allow-finding ID]...`: offers a package to
//! the gatekeeper, stores it when admitted, and records the decision.
//! Also the one place the CLI hands decisions to the ledger ([`audit`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::gatekeeper::record::AuditRecord;
use crate::gatekeeper::store::PackageStore;
use crate::gatekeeper::{Decision, Occasion, Refusal, Refused};
use crate::node::audit::{AuditEvent, Auditor, EventKind, Verdict};
use crate::node::config::Config;
use crate::node::home::Home;
use crate::package::FormatError;

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The package file
    pub file: PathBuf,
    /// Admit despite this finding of the poisoning scan (an id shown by
    /// `vigil package inspect`); recorded in the ledger. Repeatable.
    #[arg(long = "allow-finding", value_name = "ID")]
    pub allow_finding: Vec<String>,
}

/// Seconds since the Unix epoch.
pub(super) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Records one decision as one ledger entry through the node's auditor,
/// before the decision takes effect. The auditor signs checkpoints when the
/// node key can be loaded (a sealed key needs `[node] passphrase_env`).
pub(super) fn audit(home: &Home, record: &AuditRecord) -> anyhow::Result<()> {
    let config = Config::load(&home.config_path())?;
    let key = super::passphrase::node_key(home, &config).ok();
    let auditor = Auditor::open(home, &config, key).context(
        "opening the audit ledger (is `vigil serve` running on this home?); the decision was not recorded, so it does not take effect",
    )?;
    let kind = match record.kind {
        "package.admitted" => EventKind::PackageAdmitted,
        "package.refused" => EventKind::PackageRefused,
        _ => EventKind::TrustChanged,
    };
    let verdict = match record.decision {
        "allow" => Verdict::Allow,
        "deny" => Verdict::Deny,
        _ => Verdict::Record,
    };
    auditor
        .record(
            AuditEvent::new(kind, "operator", record.subject.clone(), verdict)
                .details(record.details.clone()),
        )
        .context("recording the decision in the audit ledger")?;
    Ok(())
}

pub fn run(home: &Home, args: InstallArgs) -> anyhow::Result<ExitCode> {
    home.require_initialized()?;
    let config = Config::load(&home.config_path())?;
    let max = config.packages.max_package_bytes;
    let trust = crate::trust::file::load(&home.trust_path())?;
    let mut store = PackageStore::open(home)?;
    let source = args.file.display().to_string();
    let len = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {source}"))?
        .len();
    let (decision, bytes) = if len > max {
        let reason = Refusal::Format(FormatError::TooLarge { len, max });
        let refused = Refused {
            package: None,
            reason,
        };
        (Decision::Refused(Box::new(refused)), Vec::new())
    } else {
        let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {source}"))?;
        (
            store.decide(&trust, max, &bytes, &args.allow_finding),
            bytes,
        )
    };
    // Recorded before it is acted on: a decision that cannot be recorded
    // does not take effect.
    audit(home, &decision.audit_record(Occasion::Install, &source))?;
    if let Decision::Admitted(a) = &decision {
        store.store_admitted(&bytes, a, now())?;
    }
    match decision {
        Decision::Admitted(a) => {
            println!(
                "admitted {} {} (hash {}, publisher {})",
                a.package.name, a.package.version, a.package.hash, a.package.publisher
            );
            for t in &a.manifest.tools {
                println!("  tool {} [{}]", t.name, t.sensitivity.as_str());
            }
            for f in &a.allowed_findings {
                println!("  allowed finding {} ({:?})", f.id, f.evidence);
            }
            Ok(ExitCode::SUCCESS)
        }
        Decision::Refused(r) => {
            eprintln!("refused {source}: {}", r.reason);
            Ok(ExitCode::FAILURE)
        }
    }
}
