//! `vigil tools [--json]`: lists the tools of admitted packages. Every
//! stored package is re-verified, as at node start; a stored copy that
//! fails is refused, recorded and reported, and the command then exits
//! non-zero.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use serde::Deserialize;

use super::admin::execute;
use crate::control::protocol::{Reply, Request};
use crate::node::home::Home;

#[derive(Debug, Args)]
pub struct ToolsArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Deserialize)]
struct ToolRow {
    tool: String,
    package: String,
    version: String,
    publisher: String,
    sensitivity: String,
}

pub fn run(home: &Home, args: ToolsArgs) -> anyhow::Result<ExitCode> {
    let Reply::Tools { rows, refused } = execute(home, Request::Tools, &mut |_| {})? else {
        bail!("the node answered `tools` with something else");
    };
    for line in &refused {
        eprintln!("{line}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let rows: Vec<ToolRow> = serde_json::from_value(rows)?;
        if rows.is_empty() {
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
    }
    Ok(if refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
