//! `vigil approvals`, `vigil approve ID`, `vigil deny ID --reason TEXT`:
//! the operator's side of the approval queue. Calls of `high`-sensitivity
//! tools held by a running `vigil serve`/`vigil mcp` wait in the home's
//! `approvals/` directory; the answer written here resumes (or refuses)
//! the held call, and the node records it, with who decided, in the
//! call's ledger entry.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use super::admin::execute;
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
}

#[derive(Debug, Args)]
pub struct DenyArgs {
    /// Id of the held call (from `vigil approvals`)
    pub id: String,
    /// Why (shown to the agent and recorded in the ledger)
    #[arg(long)]
    pub reason: String,
}

fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("operator:{user}")
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

fn decide(home: &Home, id: &str, answer: Answer, reason: String) -> anyhow::Result<ExitCode> {
    let request = Request::Decide {
        id: id.to_string(),
        approve: answer == Answer::Approve,
        reason,
        by: operator(),
    };
    let Reply::Decided { tool, agent } = execute(home, request, &mut |_| {})? else {
        bail!("the node answered `decide` with something else");
    };
    let verb = if answer == Answer::Approve {
        "approved"
    } else {
        "denied"
    };
    println!("{verb} call {id} of `{tool}` by agent `{agent}`");
    Ok(ExitCode::SUCCESS)
}

pub fn approve(home: &Home, args: ApproveArgs) -> anyhow::Result<ExitCode> {
    decide(home, &args.id, Answer::Approve, args.reason)
}

pub fn deny(home: &Home, args: DenyArgs) -> anyhow::Result<ExitCode> {
    decide(home, &args.id, Answer::Deny, args.reason)
}
