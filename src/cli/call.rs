//! `vigil call TOOL --args JSON [--json]`: runs one tool of an admitted
//! package through the sandbox, with exactly the package's declared
//! capabilities and limits, and prints the result and the capability report
//! (what the tool used and what it was denied). A running node runs the
//! tool as it serves it; otherwise stored packages are re-verified first,
//! as at node start, and only admitted ones can be called. The call is one
//! `tool.call` ledger entry (actor `operator`), recorded before its result
//! is shown; if it cannot be recorded, nothing is shown.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use super::admin::execute;
use crate::control::protocol::{Reply, Request};
use crate::node::home::Home;
use crate::sandbox::{CallOutcome, CallResult};

#[derive(Debug, Args)]
pub struct CallArgs {
    /// Name of the tool (as listed by `vigil tools`)
    pub tool: String,
    /// The tool's arguments as one JSON value
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub args: String,
    /// Print the whole call outcome as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(home: &Home, args: CallArgs) -> anyhow::Result<ExitCode> {
    let arguments: serde_json::Value =
        serde_json::from_str(&args.args).context("--args is not valid JSON")?;
    let request = Request::Call {
        tool: args.tool,
        arguments,
    };
    let Reply::Called { outcome, index } = execute(home, request, &mut |_| {})? else {
        bail!("the node answered `call` with something else");
    };
    let outcome: CallOutcome = serde_json::from_value(outcome)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print_human(&outcome)?;
        println!("--- recorded as ledger entry {index}");
    }
    Ok(if outcome.result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_human(outcome: &CallOutcome) -> anyhow::Result<()> {
    match &outcome.result {
        CallResult::Ok { value } => println!("{}", serde_json::to_string_pretty(value)?),
        CallResult::ToolFailed {
            exit_code, message, ..
        } => {
            println!("tool failed (exit code {exit_code}): {message}")
        }
        CallResult::BadOutput { message }
        | CallResult::Crashed { message }
        | CallResult::NotRun { message } => println!("call failed: {message}"),
        CallResult::Stopped { message, .. } => println!("call stopped: {message}"),
    }
    let r = &outcome.report;
    let list = |set: &std::collections::BTreeSet<String>| {
        if set.is_empty() {
            "-".to_string()
        } else {
            set.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    println!("--- capability report ({} us)", outcome.elapsed_us);
    println!("read:    {}", list(&r.paths_read));
    println!("written: {}", list(&r.paths_written));
    println!("hosts:   {}", list(&r.hosts));
    println!("env:     {}", list(&r.env));
    for d in &r.denied {
        println!("denied:  {:?} {}: {}", d.resource, d.target, d.reason);
    }
    if r.denied_dropped > 0 {
        println!("denied:  ... and {} more", r.denied_dropped);
    }
    if !outcome.stderr.is_empty() {
        let cut = if outcome.stderr_truncated {
            " (truncated)"
        } else {
            ""
        };
        println!("--- stderr{cut}\n{}", outcome.stderr.trim_end());
    }
    Ok(())
}
