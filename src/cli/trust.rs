//! `vigil trust ...`: changes to and listing of the trust store. Every
//! change is recorded as one ledger entry, then written atomically; a
//! running node applies it at once (a revoked peer's links are closed, a
//! revoked publisher's tools withdrawn). The store is checked against the
//! ledger whenever it is read; `vigil trust restore` rewrites a
//! `trust.toml` that disagrees from the ledger.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use vigil_crypto::keyfile;

use super::admin::execute;
use crate::control::protocol::{Reply, Request, TrustRequest};
use crate::node::home::Home;
use crate::trust::{Revocation, TrustStore};

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Publishers whose packages this node may admit
    #[command(subcommand)]
    Publisher(PublisherCommand),
    /// Peer nodes that may link to this node, and the targets they may reach
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Operators whose signed decisions answer held calls (`vigil approve
    /// --key`, `vigil deny --key`)
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// List trusted publishers, peers and operators
    List(ListArgs),
    /// Rewrite trust.toml from the trust changes recorded in the ledger
    /// (after a hand edit or a crash left it disagreeing; recorded)
    Restore,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Trust an operator's key (a .pub file from `vigil key generate`)
    Add(AddOperatorArgs),
    /// Revoke an operator key; its decisions no longer count
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct AddOperatorArgs {
    /// The operator's public key file (NAME.pub)
    pub key: PathBuf,
    /// The operator's name: decisions are recorded as `operator:NAME`
    #[arg(long)]
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum PublisherCommand {
    /// Trust a publisher key (a .pub file) for the names in its scopes
    Add(AddPublisherArgs),
    /// Revoke a publisher key; its packages are refused from now on
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct AddPublisherArgs {
    /// The publisher's public key file (NAME.pub)
    pub key: PathBuf,
    /// Package names this key may sign: `acme/*` or `acme/weather`. Repeatable.
    #[arg(long, value_name = "PATTERN", required = true)]
    pub scope: Vec<String>,
    /// A label for the publisher [default: the .pub comment]
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// Trust a peer node's key (a .pub file) to link here and reach targets
    Add(AddPeerArgs),
    /// Revoke a peer key; its links and tunnels are refused from now on
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct AddPeerArgs {
    /// The peer node's public key file (its node.pub)
    pub key: PathBuf,
    /// A name for the peer [default: the .pub comment]
    #[arg(long)]
    pub name: Option<String>,
    /// A HOST:PORT the peer may open tunnels to. Repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    pub allow_target: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Key id (32 hex digits, see `vigil trust list`)
    pub key_id: String,
    /// Why the key is revoked (recorded)
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn run(home: &Home, cmd: TrustCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TrustCommand::Peer(PeerCommand::Add(args)) => {
            let text = std::fs::read_to_string(&args.key)
                .with_context(|| format!("cannot read {}", args.key.display()))?;
            let (key, comment) = keyfile::parse_public_key_line(&text)
                .with_context(|| format!("{} is not a public key file", args.key.display()))?;
            let name = args.name.or(comment).unwrap_or_default();
            let targets = args
                .allow_target
                .iter()
                .map(|t| {
                    vigil_transport::Target::parse(t)
                        .map(|t| t.to_string())
                        .map_err(|e| anyhow::anyhow!("--allow-target: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            change(
                home,
                TrustRequest::AddPeer {
                    key: keyfile::public_key_line(&key, None),
                    name,
                    targets: targets.clone(),
                },
            )?;
            println!(
                "trusted peer {} ({}) for targets: {}",
                key.key_id(),
                key.fingerprint(),
                if targets.is_empty() {
                    "none".to_string()
                } else {
                    targets.join(", ")
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Peer(PeerCommand::Revoke(args)) => {
            let closed = change(
                home,
                TrustRequest::RevokePeer {
                    key_id: args.key_id.clone(),
                    reason: args.reason.clone(),
                },
            )?;
            println!("revoked peer {}: {}", args.key_id, args.reason.trim());
            if closed > 0 {
                println!("closed {closed} open link(s) of the peer");
            }
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Publisher(PublisherCommand::Add(args)) => {
            let text = std::fs::read_to_string(&args.key)
                .with_context(|| format!("cannot read {}", args.key.display()))?;
            let (key, comment) = keyfile::parse_public_key_line(&text)
                .with_context(|| format!("{} is not a public key file", args.key.display()))?;
            let name = args.name.or(comment).unwrap_or_default();
            change(
                home,
                TrustRequest::AddPublisher {
                    key: keyfile::public_key_line(&key, None),
                    name,
                    scopes: args.scope.clone(),
                },
            )?;
            println!(
                "trusted publisher {} ({}) for {}",
                key.key_id(),
                key.fingerprint(),
                args.scope.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Publisher(PublisherCommand::Revoke(args)) => {
            change(
                home,
                TrustRequest::RevokePublisher {
                    key_id: args.key_id.clone(),
                    reason: args.reason.clone(),
                },
            )?;
            println!("revoked publisher {}: {}", args.key_id, args.reason.trim());
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Operator(OperatorCommand::Add(args)) => {
            let text = std::fs::read_to_string(&args.key)
                .with_context(|| format!("cannot read {}", args.key.display()))?;
            let (key, _) = keyfile::parse_public_key_line(&text)
                .with_context(|| format!("{} is not a public key file", args.key.display()))?;
            change(
                home,
                TrustRequest::AddOperator {
                    key: keyfile::public_key_line(&key, None),
                    name: args.name.clone(),
                },
            )?;
            println!(
                "trusted operator {} ({}) as operator:{}",
                key.key_id(),
                key.fingerprint(),
                args.name.trim()
            );
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Operator(OperatorCommand::Revoke(args)) => {
            change(
                home,
                TrustRequest::RevokeOperator {
                    key_id: args.key_id.clone(),
                    reason: args.reason.clone(),
                },
            )?;
            println!("revoked operator {}: {}", args.key_id, args.reason.trim());
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Restore => {
            change(home, TrustRequest::Restore)?;
            println!(
                "rewrote {} from the trust changes in the ledger (recorded)",
                home.trust_path().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::List(args) => list(home, args),
    }
}

/// Makes one change to the trust store (recorded before it takes effect);
/// returns how many open links a running node closed for it.
fn change(home: &Home, request: TrustRequest) -> anyhow::Result<u64> {
    match execute(home, Request::Trust(request), &mut |_| {})? {
        Reply::TrustChanged { closed_links, .. } => Ok(closed_links),
        _ => bail!("the node answered `trust` with something else"),
    }
}

fn list(home: &Home, args: ListArgs) -> anyhow::Result<ExitCode> {
    let Reply::TrustStore { store } = execute(home, Request::TrustList, &mut |_| {})? else {
        bail!("the node answered `trust-list` with something else");
    };
    let store: TrustStore = serde_json::from_value(store)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&store)?);
        return Ok(ExitCode::SUCCESS);
    }
    if store.publishers.is_empty() {
        println!("publishers: none");
    } else {
        println!("publishers:");
    }
    for p in &store.publishers {
        let state = state(&p.revoked);
        println!(
            "  {}  {:<16} scopes {}  {state}",
            p.key_id,
            p.name,
            p.scopes.join(", ")
        );
    }
    if store.peers.is_empty() {
        println!("peers: none");
    } else {
        println!("peers:");
    }
    for p in &store.peers {
        let state = state(&p.revoked);
        println!(
            "  {}  {:<16} targets {}  {state}",
            p.key_id,
            p.name,
            p.allowed_targets.join(", ")
        );
    }
    if store.operators.is_empty() {
        println!("operators: none");
    } else {
        println!("operators:");
    }
    for o in &store.operators {
        println!("  {}  {:<16} {}", o.key_id, o.name, state(&o.revoked));
    }
    Ok(ExitCode::SUCCESS)
}

fn state(revoked: &Option<Revocation>) -> String {
    match revoked {
        Some(r) => format!("REVOKED ({})", r.reason),
        None => "trusted".to_string(),
    }
}
