//! `vigil uninstall NAME [--reason TEXT]`: withdraws the current version of
//! an admitted package (in the running node, or in this process when none
//! runs). The removal is recorded (`package.removed`) before it takes
//! effect; a running node stops serving the package's tools at once. The
//! admission history is kept, so an older version offered afterwards is
//! still refused as a rollback.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use super::admin::execute;
use crate::control::protocol::{Reply, Request};
use crate::node::home::Home;

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// The package name (`publisher/name`, as `vigil tools` lists it)
    pub name: String,
    /// Why, recorded in the ledger
    #[arg(long, default_value = "uninstalled by the operator")]
    pub reason: String,
    /// Print the result as one JSON object (`package`, `tools`, `recorded`)
    #[arg(long)]
    pub json: bool,
}

pub fn run(home: &Home, args: UninstallArgs) -> anyhow::Result<ExitCode> {
    let request = Request::Uninstall {
        name: args.name,
        reason: args.reason,
    };
    let Reply::Uninstalled {
        package,
        tools,
        recorded,
    } = execute(home, request, &mut |_| {})?
    else {
        bail!("the node answered `uninstall` with something else");
    };
    if args.json {
        let reply = serde_json::json!({
            "package": package,
            "tools": tools,
            "recorded": recorded,
        });
        println!("{reply}");
    } else {
        println!("uninstalled {package} (recorded as entry {recorded})");
        for tool in &tools {
            println!("  tool {tool} withdrawn");
        }
    }
    Ok(ExitCode::SUCCESS)
}
