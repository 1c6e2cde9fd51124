//! `vigil approvals`, `vigil approve ID`, `vigil deny ID --reason TEXT`:
//! the operator's side of the approval queue. Calls of `high`-sensitivity
//! tools held by a running `vigil serve`/`vigil mcp` wait in the home's
//! `approvals/` directory; the answer given here resumes (or refuses) the
//! held call. With `--key` the decision is a statement signed with the
//! operator's composite key (who decided is then that key's trusted
//! operator, never `$USER`); the node records it as an `approval.decided`
//! entry that an auditor verifies offline. Calls in `operator` approval
//! mode (the default) accept only signed decisions.

use std::process::ExitCode;

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use vigil_crypto::keyfile;
use vigil_ledger::approval::{SignedStatement, Statement, STATEMENT_VERSION};

use super::admin::execute;
use super::passphrase;
use crate::control::protocol::{Reply, Request};
use crate::node::home::Home;
use crate::policy::{Answer, ApprovalRequest};

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    /// Print the pending approvals as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Id of the held call (from `vigil approvals`)
    pub id: String,
    /// Why (recorded in the ledger)
    #[arg(long, default_value = "")]
    pub reason: String,
    #[command(flatten)]
    pub signer: Signer,
    /// Print JSON: id, decision, tool, agent
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DenyArgs {
    /// Id of the held call (from `vigil approvals`)
    pub id: String,
    /// Why (shown to the agent and recorded in the ledger)
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub signer: Signer,
    /// Print JSON: id, decision, tool, agent
    #[arg(long)]
    pub json: bool,
}

/// The operator key that signs a decision.
#[derive(Debug, Args)]
pub struct Signer {
    /// The operator's secret key (trusted with `vigil trust operator add`);
    /// required for calls in `operator` approval mode
    #[arg(long, value_name = "OPERATOR.key")]
    pub key: Option<PathBuf>,
    /// Env var holding the passphrase of a sealed operator key
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
}

/// Signs the answer to held call `id` (as the node lists it) with the
/// operator's key.
fn sign(
    home: &Home,
    signer: &Signer,
    id: &str,
    answer: Answer,
    reason: &str,
) -> anyhow::Result<Option<SignedStatement>> {
    let Some(path) = &signer.key else {
        return Ok(None);
    };
    let pass = passphrase::from_env(signer.passphrase_env.as_deref())?;
    let key = keyfile::read_secret_key(path, pass.as_deref().map(|p| p.as_slice()))
        .with_context(|| format!("reading the operator key {}", path.display()))?;
    let Reply::Approvals { pending } = execute(home, Request::Approvals, &mut |_| {})? else {
        bail!("the node answered `approvals` with something else");
    };
    let pending: Vec<ApprovalRequest> = serde_json::from_value(pending)?;
    let held = pending
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(|| anyhow!("no pending approval `{id}` (see `vigil approvals`)"))?;
    let statement = Statement {
        v: STATEMENT_VERSION,
        approval_id: id.to_string(),
        agent: held.agent.clone(),
        tool: held.tool.clone(),
        arguments_sha256: crate::mcp::pipeline::digest(&held.arguments),
        answer: match answer {
            Answer::Approve => "approve",
            Answer::Deny => "deny",
        }
        .to_string(),
        reason: reason.to_string(),
        decided_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    Ok(Some(SignedStatement::sign(&statement, &key)?))
}

pub fn list(home: &Home, args: ApprovalsArgs) -> anyhow::Result<ExitCode> {
    let Reply::Approvals { pending } = execute(home, Request::Approvals, &mut |_| {})? else {
        bail!("the node answered `approvals` with something else");
    };
    let pending: Vec<ApprovalRequest> = serde_json::from_value(pending)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&pending)?);
        return Ok(ExitCode::SUCCESS);
    }
    if pending.is_empty() {
        println!("no calls waiting for approval");
    }
    for r in pending {
        println!(
            "{}  agent {}  tool {}  expires at {} (unix)  arguments {}",
            r.id, r.agent, r.tool, r.expires_at, r.arguments
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn decide(
    home: &Home,
    id: &str,
    answer: Answer,
    reason: String,
    signer: &Signer,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let signed = sign(home, signer, id, answer, &reason)?;
    let request = Request::Decide {
        id: id.to_string(),
        approve: answer == Answer::Approve,
        reason,
        signed,
    };
    let Reply::Decided { tool, agent } = execute(home, request, &mut |_| {})? else {
        bail!("the node answered `decide` with something else");
    };
    let verb = if answer == Answer::Approve {
        "approved"
    } else {
        "denied"
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "id": id, "decision": verb, "tool": tool, "agent": agent })
        );
    } else {
        println!("{verb} call {id} of `{tool}` by agent `{agent}`");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn approve(home: &Home, args: ApproveArgs) -> anyhow::Result<ExitCode> {
    decide(
        home,
        &args.id,
        Answer::Approve,
        args.reason,
        &args.signer,
        args.json,
    )
}

pub fn deny(home: &Home, args: DenyArgs) -> anyhow::Result<ExitCode> {
    decide(
        home,
        &args.id,
        Answer::Deny,
        args.reason,
        &args.signer,
        args.json,
    )
}
