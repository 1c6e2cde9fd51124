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
    List,
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

/// `vigil trust`: a subcommand, and whether to print JSON.
#[derive(Debug, Args)]
pub struct TrustArgs {
    #[command(subcommand)]
    pub command: TrustCommand,
    /// Print JSON: for a change, `{"change": the recorded change,
    /// "closed_links": open links a running node closed}`; for `list`, the
    /// trust store
    #[arg(long, global = true)]
    pub json: bool,
}

/// Reads a `.pub` file: the key and its comment.
fn public_key(
    path: &std::path::Path,
) -> anyhow::Result<(vigil_crypto::CompositePublicKey, Option<String>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    keyfile::parse_public_key_line(&text)
        .with_context(|| format!("{} is not a public key file", path.display()))
}

pub fn run(home: &Home, args: TrustArgs) -> anyhow::Result<ExitCode> {
    // The change, and what the command says once it is made (given how
    // many open links a running node closed).
    let (request, said): (TrustRequest, Box<dyn Fn(u64) -> String>) = match args.command {
        TrustCommand::List => return list(home, args.json),
        TrustCommand::Peer(PeerCommand::Add(a)) => {
            let (key, comment) = public_key(&a.key)?;
            let targets = a
                .allow_target
                .iter()
                .map(|t| {
                    vigil_transport::Target::parse(t)
                        .map(|t| t.to_string())
                        .map_err(|e| anyhow::anyhow!("--allow-target: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let text = format!(
                "trusted peer {} ({}) for targets: {}",
                key.key_id(),
                key.fingerprint(),
                if targets.is_empty() {
                    "none".to_string()
                } else {
                    targets.join(", ")
                }
            );
            let request = TrustRequest::AddPeer {
                key: keyfile::public_key_line(&key, None),
                name: a.name.or(comment).unwrap_or_default(),
                targets,
            };
            (request, Box::new(move |_| text.clone()))
        }
        TrustCommand::Peer(PeerCommand::Revoke(a)) => {
            let text = format!("revoked peer {}: {}", a.key_id, a.reason.trim());
            let request = TrustRequest::RevokePeer {
                key_id: a.key_id,
                reason: a.reason,
            };
            let said = move |closed: u64| match closed {
                0 => text.clone(),
                n => format!("{text}\nclosed {n} open link(s) of the peer"),
            };
            (request, Box::new(said))
        }
        TrustCommand::Publisher(PublisherCommand::Add(a)) => {
            let (key, comment) = public_key(&a.key)?;
            let text = format!(
                "trusted publisher {} ({}) for {}",
                key.key_id(),
                key.fingerprint(),
                a.scope.join(", ")
            );
            let request = TrustRequest::AddPublisher {
                key: keyfile::public_key_line(&key, None),
                name: a.name.or(comment).unwrap_or_default(),
                scopes: a.scope,
            };
            (request, Box::new(move |_| text.clone()))
        }
        TrustCommand::Publisher(PublisherCommand::Revoke(a)) => {
            let text = format!("revoked publisher {}: {}", a.key_id, a.reason.trim());
            let request = TrustRequest::RevokePublisher {
                key_id: a.key_id,
                reason: a.reason,
            };
            (request, Box::new(move |_| text.clone()))
        }
        TrustCommand::Operator(OperatorCommand::Add(a)) => {
            let (key, _) = public_key(&a.key)?;
            let text = format!(
                "trusted operator {} ({}) as operator:{}",
                key.key_id(),
                key.fingerprint(),
                a.name.trim()
            );
            let request = TrustRequest::AddOperator {
                key: keyfile::public_key_line(&key, None),
                name: a.name,
            };
            (request, Box::new(move |_| text.clone()))
        }
        TrustCommand::Operator(OperatorCommand::Revoke(a)) => {
            let text = format!("revoked operator {}: {}", a.key_id, a.reason.trim());
            let request = TrustRequest::RevokeOperator {
                key_id: a.key_id,
                reason: a.reason,
            };
            (request, Box::new(move |_| text.clone()))
        }
        TrustCommand::Restore => {
            let text = format!(
                "rewrote {} from the trust changes in the ledger (recorded)",
                home.trust_path().display()
            );
            (TrustRequest::Restore, Box::new(move |_| text.clone()))
        }
    };
    // Recorded before it takes effect.
    let Reply::TrustChanged {
        change,
        closed_links,
    } = execute(home, Request::Trust(request), &mut |_| {})?
    else {
        bail!("the node answered `trust` with something else");
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "change": change, "closed_links": closed_links })
        );
    } else {
        println!("{}", said(closed_links));
    }
    Ok(ExitCode::SUCCESS)
}

fn list(home: &Home, json: bool) -> anyhow::Result<ExitCode> {
    let Reply::TrustStore { store } = execute(home, Request::TrustList, &mut |_| {})? else {
        bail!("the node answered `trust-list` with something else");
    };
    let store: TrustStore = serde_json::from_value(store)?;
    if json {
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
