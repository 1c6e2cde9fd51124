//! The `vigil` command line: clap definitions and dispatch. Each command
//! group lives in its own module; this module only routes. Errors carry
//! context (`anyhow`) and end as one `error: ...` line on stderr, exit code
//! 1, or the code of an [`ExitError`] in the chain.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::node::home::Home;

mod admin;
mod agent;
mod approvals;
mod audit;
mod call;
mod completions;
mod demo;
mod init;
mod install;
mod key;
mod live;
mod log;
mod mcp;
mod package;
mod passphrase;
mod serve;
mod sign;
mod tools;
mod trust;
mod tunnel;
mod uninstall;
mod witness;

/// vigil: signed tools, a capability sandbox and a tamper-evident audit ledger
/// for AI agents.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, long_about = None)]
pub struct Cli {
    /// Node home directory [default: ~/.vigil]
    #[arg(long, global = true, env = "VIGIL_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show vigil at work in a temporary home: keys, signatures, refusals
    Demo(demo::DemoArgs),
    /// The audit ledger: append, tail, checkpoint, export, verify, prove, erase
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Create a node home: node key pair, commented vigil.toml, empty trust store
    Init(init::InitArgs),
    /// Generate and inspect composite (ML-DSA-65 + Ed25519) key pairs
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Agent tokens (mint, revoke) and suspensions (status, resume)
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Sign a file under a namespace (like `ssh-keygen -Y sign`)
    Sign(sign::SignArgs),
    /// Verify a file's signature under a namespace (exit 0 valid, 1 invalid)
    Verify(sign::VerifyArgs),
    /// Build and inspect signed tool packages
    #[command(subcommand)]
    Package(package::PackageCommand),
    /// Manage trusted publishers, peers and operators
    Trust(trust::TrustArgs),
    /// Offer a package to the gatekeeper; store it if admitted
    Install(install::InstallArgs),
    /// Withdraw an admitted package (recorded); its tools stop being served
    Uninstall(uninstall::UninstallArgs),
    /// List the tools of admitted packages (re-verifying stored packages)
    Tools(tools::ToolsArgs),
    /// Run one tool of an admitted package in the sandbox; print the result and capability report
    Call(call::CallArgs),
    /// Serve MCP over stdin/stdout for an agent host that spawns vigil
    Mcp(mcp::McpArgs),
    /// Run the node: MCP over HTTP, post-quantum links and tunnels, checkpoints
    ///
    /// Serves MCP over streamable HTTP on `[mcp] listen` (path /mcp, bearer
    /// tokens from [[agents]]; GET /healthz and GET /metrics beside it),
    /// accepts post-quantum links from the peers in the trust store on
    /// `[links] listen`, and keeps every [[tunnels]] table's tunnel open (a
    /// local TCP address carried over a link to a peer node's target).
    /// `[mcp] enabled = false`, or a vigil.toml without an `[mcp]` table
    /// (and no --listen), makes a link-only node: links and tunnels, no MCP
    /// port. Every decision is one ledger entry.
    ///
    /// While it runs it owns the home: `vigil audit ...`, `install`,
    /// `uninstall`, `trust ...`, `tools`, `call`, `approvals`, `approve`,
    /// `deny`, `key rotate`, `agent token/revoke/resume/status` and a
    /// second `vigil mcp` reach it through its control socket (control.sock
    /// in the home, owner-only; docs/control.md) and take effect at once.
    ///
    /// Ctrl-C or SIGTERM stops it: no new connections or links, every link
    /// closed (each end recorded), requests in progress given 2 s, then a
    /// last signed checkpoint covering every entry; it exits within 5 s.
    Serve(serve::ServeArgs),
    /// List calls waiting for a human's approval
    Approvals(approvals::ApprovalsArgs),
    /// Approve a held call (see `vigil approvals`)
    Approve(approvals::ApproveArgs),
    /// Deny a held call with a reason
    Deny(approvals::DenyArgs),
    /// Carry local TCP connections over a post-quantum link to a peer node
    Tunnel(tunnel::TunnelArgs),
    /// This node's keys as a witness of other logs' checkpoints
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(completions::CompletionsArgs),
}

impl Cli {
    /// The node home selected by `--home`, `VIGIL_HOME` or the default.
    pub fn home(&self) -> Home {
        Home::at(self.home.clone().unwrap_or_else(Home::default_root))
    }
}

/// A failure that ends `vigil` with its own exit code instead of 1 (2: the
/// node's configuration does not let the command start). Commands return it
/// like any other error; [`main`] prints it once and exits with `code`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitError {
    pub code: u8,
    pub message: String,
}

/// Runs the command line of this process.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match log::init().and_then(|()| run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_line(&err));
            err.chain()
                .find_map(|e| e.downcast_ref::<ExitError>())
                .map_or(ExitCode::FAILURE, |e| ExitCode::from(e.code))
        }
    }
}

/// The error and its causes as one line, `outer: cause: cause`, leaving out
/// a cause whose text already ends the line (errors whose message embeds
/// their source would otherwise print it twice).
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = cli.home();
    match cli.command {
        Command::Audit(cmd) => audit::run(&home, cmd),
        Command::Demo(args) => demo::run(cli.home.as_deref(), args),
        Command::Init(args) => init::run(&home, args),
        Command::Key(cmd) => key::run(&home, cmd),
        Command::Agent(cmd) => agent::run(&home, cmd),
        Command::Sign(args) => sign::sign(args),
        Command::Verify(args) => sign::verify(args),
        Command::Package(cmd) => package::run(cmd),
        Command::Trust(args) => trust::run(&home, args),
        Command::Install(args) => install::run(&home, args),
        Command::Uninstall(args) => uninstall::run(&home, args),
        Command::Tools(args) => tools::run(&home, args),
        Command::Call(args) => call::run(&home, args),
        Command::Mcp(args) => mcp::run(&home, args),
        Command::Serve(args) => serve::run(&home, args),
        Command::Approvals(args) => approvals::list(&home, args),
        Command::Approve(args) => approvals::approve(&home, args),
        Command::Deny(args) => approvals::deny(&home, args),
        Command::Tunnel(args) => tunnel::run(&home, args),
        Command::Witness(cmd) => witness::run(&home, cmd),
        Command::Completions(args) => completions::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_embedded_in_its_error_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let err = anyhow::Error::new(crate::node::config::ConfigError::Io {
            path: "home/vigil.toml".into(),
            source: io,
        })
        .context("cannot start");
        assert_eq!(
            format!("{err:#}"),
            "cannot start: home/vigil.toml: No such file: No such file",
            "anyhow repeats the source"
        );
        assert_eq!(
            error_line(&err),
            "cannot start: home/vigil.toml: No such file"
        );
    }

    #[test]
    fn distinct_causes_are_all_shown_and_exit_codes_travel() {
        let err = anyhow::Error::new(ExitError {
            code: 2,
            message: "agent `x` is not in [[agents]]".into(),
        })
        .context("vigil mcp");
        assert_eq!(
            error_line(&err),
            "vigil mcp: agent `x` is not in [[agents]]"
        );
        let code = err.chain().find_map(|e| e.downcast_ref::<ExitError>());
        assert_eq!(code.map(|e| e.code), Some(2));
    }
}
