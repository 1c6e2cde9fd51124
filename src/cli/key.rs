//! `vigil key generate`, `vigil key show` and `vigil key rotate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use vigil_crypto::composite::{ALGORITHM, SCHEME};
use vigil_crypto::{keyfile, CompositePublicKey, SigningKey};

use super::passphrase;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write NAME.key (secret, mode 0600) and NAME.pub
    Generate(GenerateArgs),
    /// Print algorithm, key id and fingerprint of a .pub or .key file
    Show(ShowArgs),
    /// Replace the node key: the old key signs a handover to a new one
    /// (a `key.rotated` ledger entry and a checkpoint signed by both), after
    /// which only the new key signs. Works on a running node. The old public
    /// key is kept under retired-keys/; auditors who pinned it keep
    /// verifying, since bundles carry the chain of handovers.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Print JSON: index, old, new, checkpoint, checkpoint_error, retired
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Path stem of the key pair; `.key` and `.pub` are appended
    #[arg(long, value_name = "NAME")]
    pub out: PathBuf,
    /// Comment stored at the end of the .pub line
    #[arg(long)]
    pub comment: Option<String>,
    /// Seal the secret key with the passphrase held in this env var
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A .pub or .key file
    pub file: PathBuf,
    /// Env var holding the passphrase, for a sealed .key file
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// Print JSON: file, kind, algorithm, scheme, key_id, fingerprint, comment
    #[arg(long)]
    pub json: bool,
}

pub fn run(home: &crate::node::home::Home, cmd: KeyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCommand::Generate(args) => generate(args),
        KeyCommand::Show(args) => show(args),
        KeyCommand::Rotate(args) => rotate(home, args),
    }
}

fn rotate(home: &crate::node::home::Home, args: RotateArgs) -> anyhow::Result<ExitCode> {
    use crate::control::protocol::{Reply, Request};
    let reply = super::admin::execute(home, Request::KeyRotate, &mut |_| {})?;
    let Reply::KeyRotated {
        index,
        old,
        new,
        checkpoint,
        checkpoint_error,
        retired,
    } = reply
    else {
        anyhow::bail!("the node answered a key rotation with {reply:?}");
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "index": index, "old": old, "new": new, "checkpoint": checkpoint,
                "checkpoint_error": checkpoint_error, "retired": retired,
            })
        );
    } else {
        println!("rotated the node key: entry {index} hands the log over");
        println!(
            "  old key  {old} (public key kept as {})",
            retired.display()
        );
        println!("  new key  {new} ({})", home.node_pub_path().display());
        if checkpoint.is_some() {
            println!("  the checkpoint covering the handover is signed by both keys");
        }
        println!("auditors who pinned an earlier key keep verifying: bundles carry the chain of handovers");
    }
    if let Some(e) = checkpoint_error {
        eprintln!(
            "warning: the handover is recorded, but the checkpoint covering it could not be signed ({e}); the next checkpoint, signed by the new key, covers it"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let pass = passphrase::from_env(args.passphrase_env.as_deref())?;
    let key = SigningKey::generate();
    let (key_path, pub_path) = keyfile::write_key_pair(
        &args.out,
        &key,
        args.comment.as_deref(),
        pass.as_deref().map(|p| p.as_slice()),
    )
    .context("cannot write the key pair")?;
    println!("secret key  {}", key_path.display());
    println!("public key  {}", pub_path.display());
    print_public(key.public_key(), None);
    Ok(ExitCode::SUCCESS)
}

fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let (public, comment, kind) = if text.starts_with(ALGORITHM) {
        let (key, comment) = keyfile::parse_public_key_line(&text)
            .with_context(|| format!("{} is not a valid public key file", args.file.display()))?;
        (key, comment, "public")
    } else {
        let pass = passphrase::from_env(args.passphrase_env.as_deref())?;
        let key = keyfile::read_secret_key(&args.file, pass.as_deref().map(|p| p.as_slice()))?;
        (key.public_key().clone(), None, "secret")
    };
    if args.json {
        let shown = serde_json::json!({
            "file": args.file.display().to_string(),
            "kind": kind,
            "algorithm": ALGORITHM,
            "scheme": SCHEME,
            "key_id": public.key_id().to_string(),
            "fingerprint": public.fingerprint(),
            "comment": comment,
        });
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("file        {} ({kind} key)", args.file.display());
    print_public(&public, comment.as_deref());
    Ok(ExitCode::SUCCESS)
}

fn print_public(key: &CompositePublicKey, comment: Option<&str>) {
    println!("algorithm   {ALGORITHM} ({SCHEME})");
    println!("key id      {}", key.key_id());
    println!("fingerprint {}", key.fingerprint());
    if let Some(c) = comment {
        println!("comment     {c}");
    }
}
