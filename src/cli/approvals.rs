//! `vigil approvals`, `vigil approve ID`, `vigil deny ID --reason TEXT`:
//! the operator's side of the approval queue. Calls of `high`-sensitivity
//! tools held by a running `vigil serve`/`vigil mcp` wait in the home's
//! `approvals/` directory; the answer written here resumes (or refuses)
//! the held call, and the node records it, with who decided, in the
//! call's ledger entry.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::Args;

use crate::node::home::Home;
use crate::policy::{Answer, ApprovalQueue, Decision};

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
    let pending = ApprovalQueue::new(home.approvals_dir()).pending()?;
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
    let decision = Decision {
        answer,
        by: operator(),
        reason,
    };
    let request = ApprovalQueue::new(home.approvals_dir())
        .decide(id, &decision)
        .map_err(|e| anyhow!("{e}"))?;
    let verb = if answer == Answer::Approve {
        "approved"
    } else {
        "denied"
    };
    println!(
        "{verb} call {id} of `{}` by agent `{}`",
        request.tool, request.agent
    );
    Ok(ExitCode::SUCCESS)
}

pub fn approve(home: &Home, args: ApproveArgs) -> anyhow::Result<ExitCode> {
    decide(home, &args.id, Answer::Approve, args.reason)
}

pub fn deny(home: &Home, args: DenyArgs) -> anyhow::Result<ExitCode> {
    decide(home, &args.id, Answer::Deny, args.reason)
}
