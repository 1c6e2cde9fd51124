//! `vigil witness init` and `vigil witness show`: the keys with which this
//! node cosigns other logs' checkpoints (docs/witness.md).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::node::config::Config;
use crate::node::home::Home;
use crate::node::witness;

#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Create this node's witness keys (Ed25519 cosignature/v1 and
    /// ML-DSA-44 subtree/v1) under a cosigner name, and print their
    /// verifier keys for the logs' [[witnesses]] and for auditors
    Init(InitArgs),
    /// Print this node's witness verifier keys
    Show,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The cosigner name, a schema-less URL such as witness.example/w1
    #[arg(long)]
    pub name: String,
}

pub fn run(home: &Home, cmd: WitnessCommand) -> anyhow::Result<ExitCode> {
    home.require_initialized()?;
    let config = Config::load(&home.config_path())?;
    let cosigner = match cmd {
        WitnessCommand::Init(args) => {
            let c = witness::init_cosigner(home, &config.witness, &args.name)?;
            eprintln!(
                "wrote {}; give these verifier keys to the logs you witness and to their auditors:",
                witness::key_path(home, &config.witness).display()
            );
            c
        }
        WitnessCommand::Show => witness::load_cosigner(home, &config.witness)?,
    };
    for key in cosigner.verifier_keys() {
        println!("{}", key.to_vkey());
    }
    Ok(ExitCode::SUCCESS)
}
