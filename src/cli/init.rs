//! `vigil init`: creates the node home.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::passphrase;
use crate::node::home::Home;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Seal the node key with the passphrase held in this env var
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
}

pub fn run(home: &Home, args: InitArgs) -> anyhow::Result<ExitCode> {
    let pass = passphrase::from_env(args.passphrase_env.as_deref())?;
    let report = home
        .init(pass.as_deref().map(|p| p.as_slice()))
        .with_context(|| format!("cannot initialize {}", home.root().display()))?;
    println!("initialized vigil home {}", home.root().display());
    println!("  node key   {}", home.node_key_path().display());
    println!("  key id     {}", report.key_id);
    println!("  fingerprint {}", report.fingerprint);
    println!("  config     {}", home.config_path().display());
    println!("  trust store {} (empty)", home.trust_path().display());
    Ok(ExitCode::SUCCESS)
}
