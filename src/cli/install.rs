//! `vigil install FILE.vpkg [--allow-finding ID]... [--allow-downgrade]`:
//! offers a package to the gatekeeper (in the running node, or in this
//! process when none runs), which records the decision and stores what it
//! admits; a running node serves the new tools at once.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use super::admin::{execute, install_request};
use crate::control::protocol::Reply;
use crate::node::home::Home;

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The package file
    pub file: PathBuf,
    /// Admit despite this finding of the poisoning scan (an id shown by
    /// `vigil package inspect`); recorded in the ledger. Repeatable.
    #[arg(long = "allow-finding", value_name = "ID")]
    pub allow_finding: Vec<String>,
    /// Admit a version lower than the highest this node ever admitted
    /// (otherwise refused as a rollback) and make it current; recorded
    /// with `"downgrade": true` and the versions
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Print the decision as one JSON object (`admitted`, `package`,
    /// `tools`, `reason`) on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(home: &Home, args: InstallArgs) -> anyhow::Result<ExitCode> {
    let request = install_request(&args.file, args.allow_finding, args.allow_downgrade)?;
    let Reply::Installed {
        admitted,
        package,
        tools,
        reason,
        lines,
    } = execute(home, request, &mut |_| {})?
    else {
        bail!("the node answered `install` with something else");
    };
    if args.json {
        let decision = serde_json::json!({
            "admitted": admitted,
            "package": package,
            "tools": tools,
            "reason": reason,
        });
        println!("{decision}");
        return Ok(if admitted {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if admitted {
        for line in lines {
            println!("{line}");
        }
        Ok(ExitCode::SUCCESS)
    } else {
        for line in lines {
            eprintln!("{line}");
        }
        Ok(ExitCode::FAILURE)
    }
}
