//! `vigil tools [--json]`: lists the tools of admitted packages. It opens
//! the package store as the node does at start, re-verifying every stored
//! package; a stored copy that fails is refused, recorded and reported, and
//! the command then exits non-zero.

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::install::audit;
use crate::gatekeeper::store::PackageStore;
use crate::gatekeeper::{Decision, Occasion};
use crate::node::config::Config;
use crate::node::home::Home;

#[derive(Debug, Args)]
pub struct ToolsArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct ToolRow {
    tool: String,
    package: String,
    version: String,
    publisher: String,
    hash: String,
    sensitivity: &'static str,
    description: String,
}

pub fn run(home: &Home, args: ToolsArgs) -> anyhow::Result<ExitCode> {
    home.require_initialized()?;
    let config = Config::load(&home.config_path())?;
    let trust = crate::trust::file::load(&home.trust_path())?;
    let store = PackageStore::open(home)?;
    let mut rows = Vec::new();
    let mut refused = 0;
    for check in store.verify_stored(&trust, config.packages.max_package_bytes) {
        match &check.decision {
            Decision::Admitted(a) => {
                for t in &a.manifest.tools {
                    rows.push(ToolRow {
                        tool: t.name.clone(),
                        package: a.package.name.clone(),
                        version: a.package.version.clone(),
                        publisher: a.package.publisher.clone(),
                        hash: a.package.hash.clone(),
                        sensitivity: t.sensitivity.as_str(),
                        description: t.description.clone(),
                    });
                }
            }
            Decision::Refused(r) => {
                refused += 1;
                audit(
                    home,
                    &check
                        .decision
                        .audit_record(Occasion::Startup, &check.path.display().to_string()),
                )?;
                eprintln!(
                    "refused stored package {}@{} ({}): {}",
                    check.record.name,
                    check.record.version,
                    check.path.display(),
                    r.reason
                );
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("no tools installed");
    } else {
        println!(
            "{:<20} {:<28} {:<10} {:<32} SENSITIVITY",
            "TOOL", "PACKAGE", "VERSION", "PUBLISHER"
        );
        for r in &rows {
            println!(
                "{:<20} {:<28} {:<10} {:<32} {}",
                r.tool, r.package, r.version, r.publisher, r.sensitivity
            );
        }
    }
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
