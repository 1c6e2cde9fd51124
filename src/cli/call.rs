//! `vigil call TOOL --args JSON [--key OPERATOR.key] [--json]`: the operator
//! calls one tool of an admitted package through the same pipeline as an
//! MCP call (input schema, limits, the sandbox with exactly the package's
//! declared capabilities, output schema, privacy filter, one ledger entry
//! of the same layout), and sees the (redacted) result and the capability
//! report. The actor is `operator:NAME` when the request is signed with a
//! trusted operator key (`--key`; which also approves a `high` tool), else
//! `operator:unsigned`. A running node runs the call itself; otherwise
//! stored packages are re-verified first, as at node start. The entry is
//! recorded before the result is shown; if it cannot be, nothing is shown.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::Value;
use vigil_crypto::keyfile;
use vigil_ledger::approval::SignedStatement;

use super::admin::{execute, CallStatement};
use super::passphrase;
use crate::control::protocol::{Reply, Request};
use crate::node::home::Home;
use crate::sandbox::CapabilityReport;

#[derive(Debug, Args)]
pub struct CallArgs {
    /// Name of the tool (as listed by `vigil tools`)
    pub tool: String,
    /// The tool's arguments as one JSON value
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub args: String,
    /// Sign the call with this operator key (trusted with `vigil trust
    /// operator add`): recorded as `operator:NAME`, and needed for `high`
    /// tools
    #[arg(long, value_name = "OPERATOR.key")]
    pub key: Option<PathBuf>,
    /// Env var holding the passphrase of a sealed operator key
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// Print the whole call outcome as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(home: &Home, args: CallArgs) -> anyhow::Result<ExitCode> {
    let arguments: Value = serde_json::from_str(&args.args).context("--args is not valid JSON")?;
    let signed = match &args.key {
        None => None,
        Some(path) => {
            let pass = passphrase::from_env(args.passphrase_env.as_deref())?;
            let key = keyfile::read_secret_key(path, pass.as_deref().map(|p| p.as_slice()))
                .with_context(|| format!("reading the operator key {}", path.display()))?;
            let statement = CallStatement::new(&args.tool, &arguments);
            Some(SignedStatement::sign_json(
                &statement,
                &key,
                vigil_crypto::context::OPERATOR_CALL,
            )?)
        }
    };
    let request = Request::Call {
        tool: args.tool,
        arguments,
        signed,
    };
    let Reply::Called { outcome, index } = execute(home, request, &mut |_| {})? else {
        bail!("the node answered `call` with something else");
    };
    let ok = outcome["result"]["status"] == "ok";
    if args.json {
        let mut outcome = outcome;
        if let Some(fields) = outcome.as_object_mut() {
            fields.insert("ledger_index".into(), index.into());
        }
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print_human(&outcome)?;
        println!("--- recorded as ledger entry {index}");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_human(outcome: &Value) -> anyhow::Result<()> {
    let result = &outcome["result"];
    match result["status"].as_str() {
        Some("ok") => println!("{}", serde_json::to_string_pretty(&result["value"])?),
        Some(code) => eprintln!(
            "refused ({code}): {}",
            result["message"].as_str().unwrap_or_default()
        ),
        None => bail!("the node's answer has no call status"),
    }
    if let Some(redactions) = outcome["redactions"].as_object().filter(|r| !r.is_empty()) {
        let list: Vec<String> = redactions
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect();
        println!("--- redacted: {}", list.join(", "));
    }
    let Some(report) = outcome.get("report").filter(|r| !r.is_null()) else {
        return Ok(());
    };
    let r: CapabilityReport = serde_json::from_value(report.clone())?;
    let list = |set: &std::collections::BTreeSet<String>| {
        if set.is_empty() {
            "-".to_string()
        } else {
            set.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    println!("--- capability report");
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
    Ok(())
}
