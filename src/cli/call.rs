//! `vigil call TOOL --args JSON [--json]`: runs one tool of an admitted
//! package through the sandbox, with exactly the package's declared
//! capabilities and limits, and prints the result and the capability report
//! (what the tool used and what it was denied). Stored packages are
//! re-verified first, as at node start; only admitted ones can be called.
//! The call is one `tool.call` ledger entry (actor `operator`), recorded
//! before its result is shown; if it cannot be recorded, nothing is shown.

use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::Args;

use crate::gatekeeper::store::PackageStore;
use crate::gatekeeper::Decision;
use crate::node::config::Config;
use crate::node::home::Home;
use crate::package::format::PackageFile;
use crate::package::manifest::Sensitivity;
use crate::sandbox::{CallOutcome, CallResult, Sandbox, SandboxConfig, ToolPackage};

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
    home.require_initialized()?;
    let arguments: serde_json::Value =
        serde_json::from_str(&args.args).context("--args is not valid JSON")?;
    let config = Config::load(&home.config_path())?;
    let max_bytes = config.packages.max_package_bytes;
    let trust = crate::trust::file::load(&home.trust_path())?;
    let store = PackageStore::open(home)?;
    let (path, admitted) = store
        .verify_stored(&trust, max_bytes)
        .into_iter()
        .find_map(|check| match check.decision {
            Decision::Admitted(a) if a.manifest.tools.iter().any(|t| t.name == args.tool) => {
                Some((check.path, a))
            }
            _ => None,
        })
        .ok_or_else(|| {
            anyhow!(
                "no admitted package provides tool `{}` (see `vigil tools`)",
                args.tool
            )
        })?;
    let spec = admitted.manifest.tools.iter().find(|t| t.name == args.tool);
    if spec.is_some_and(|t| t.sensitivity == Sensitivity::High) {
        return Err(anyhow!(
            "tool `{}` is marked sensitivity = \"high\" and needs a human approval per call, \
             which `vigil call` does not ask for; call it through the node instead",
            args.tool
        ));
    }
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let file = PackageFile::parse(&bytes, max_bytes)
        .map_err(|e| anyhow!("stored package {} is unreadable: {e}", path.display()))?;
    let sandbox = Sandbox::new(&SandboxConfig::new(home.cache_dir().join("wasm")))?;
    let tool = sandbox.load(&ToolPackage {
        program: &admitted.package.name,
        wasm: file.module,
        capabilities: &admitted.manifest.capabilities,
        limits: admitted.manifest.limits,
    })?;
    let outcome = tool.call(&args.tool, &arguments);
    let index = record(home, &config, &admitted.package.name, &arguments, &outcome)?;
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

/// Writes the call's one ledger entry: the capability report and status in
/// the details, arguments and output (privacy-filtered as on the MCP path)
/// as the erasable payload.
fn record(
    home: &Home,
    config: &Config,
    package: &str,
    arguments: &serde_json::Value,
    outcome: &CallOutcome,
) -> anyhow::Result<u64> {
    use crate::node::audit::{AuditEvent, Auditor, EventKind, Verdict};
    // Without the node key the entry is still written; only checkpoints wait.
    let key = super::passphrase::node_key(home, config).ok();
    let auditor = Auditor::open(home, config, key).context(
        "opening the audit ledger (is `vigil serve` running on this home?); \
         the call ran but its result is withheld because it could not be recorded",
    )?;
    let redactor = crate::privacy::Redactor::new();
    let kinds = config.privacy.kinds_for(&outcome.tool);
    let mut stored = serde_json::json!({
        "arguments": arguments,
        "output": match &outcome.result {
            CallResult::Ok { value } => value.clone(),
            _ => serde_json::Value::Null,
        },
    });
    redactor.redact_json(&mut stored, &kinds);
    let details = serde_json::json!({
        "tool": outcome.tool,
        "package": package,
        "via": "vigil call",
        "status": outcome.result.status(),
        "limit": outcome.result.limit(),
        "arguments_sha256": crate::mcp::pipeline::digest(arguments),
        "elapsed_us": outcome.elapsed_us,
        "capabilities": outcome.report,
    });
    let event = AuditEvent::new(
        EventKind::ToolCall,
        "operator",
        format!("tool:{}", outcome.tool),
        Verdict::Allow,
    )
    .details(details)
    .payload(stored.to_string().into_bytes());
    auditor
        .record(event)
        .context("recording the call in the audit ledger; its result is withheld")
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
