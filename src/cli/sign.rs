//! `vigil sign` and `vigil verify`: general-purpose file signatures, like
//! `ssh-keygen -Y`. The namespace's UTF-8 bytes are the composite `ctx`;
//! namespaces starting with `vigil` are reserved for internal uses.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use clap::Args;
use vigil_crypto::context::is_reserved_namespace;
use vigil_crypto::keyfile;

use super::passphrase;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Secret key file (NAME.key)
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Namespace the signature is bound to (e.g. `file`, `release@acme`)
    #[arg(long, value_name = "NS")]
    pub namespace: String,
    /// Env var holding the passphrase of a sealed key
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// File to sign; the signature goes to FILE.sig
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Public key file (NAME.pub)
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Namespace the signature must be bound to
    #[arg(long, value_name = "NS")]
    pub namespace: String,
    /// Signature file written by `vigil sign`
    #[arg(long, value_name = "FILE")]
    pub signature: PathBuf,
    /// The signed file
    pub file: PathBuf,
    /// Print the verdict as JSON on stdout: `valid`, `file`, `key_id`,
    /// `namespace`, and `error` when not valid (exit codes unchanged)
    #[arg(long)]
    pub json: bool,
}

fn check_namespace(ns: &str) -> anyhow::Result<()> {
    if ns.is_empty() {
        bail!("the namespace must not be empty");
    }
    if ns.len() > 255 {
        bail!(
            "the namespace is {} bytes long; at most 255 are allowed",
            ns.len()
        );
    }
    if is_reserved_namespace(ns) {
        bail!("namespace `{ns}` is reserved: namespaces starting with `vigil` are for vigil's internal signatures; choose another");
    }
    Ok(())
}

pub fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    check_namespace(&args.namespace)?;
    let pass = passphrase::from_env(args.passphrase_env.as_deref())?;
    let key = keyfile::read_secret_key(&args.key, pass.as_deref().map(|p| p.as_slice()))?;
    let message = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let signature = key.sign(&message, args.namespace.as_bytes())?;
    let sig_path = keyfile::with_suffix(&args.file, "sig");
    std::fs::write(&sig_path, format!("{}\n", B64.encode(signature.as_bytes())))
        .with_context(|| format!("cannot write {}", sig_path.display()))?;
    println!("signed {} -> {}", args.file.display(), sig_path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    check_namespace(&args.namespace)?;
    let public = keyfile::read_public_key(&args.key)?;
    let message = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let sig_text = std::fs::read_to_string(&args.signature)
        .with_context(|| format!("cannot read {}", args.signature.display()))?;
    let sig = B64
        .decode(sig_text.trim())
        .with_context(|| format!("{} is not a base64 signature", args.signature.display()))?;
    let verdict = public.verify_bytes(&message, args.namespace.as_bytes(), &sig);
    if args.json {
        let mut shown = serde_json::json!({
            "valid": verdict.is_ok(),
            "file": args.file.display().to_string(),
            "key_id": public.key_id().to_string(),
            "namespace": args.namespace,
        });
        if let Err(reason) = &verdict {
            shown["error"] = reason.to_string().into();
        }
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(if verdict.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    match verdict {
        Ok(()) => {
            println!(
                "good signature on {} by key {} in namespace `{}`",
                args.file.display(),
                public.key_id(),
                args.namespace
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            eprintln!(
                "BAD signature on {} (key {}, namespace `{}`): {reason}",
                args.file.display(),
                public.key_id(),
                args.namespace
            );
            Ok(ExitCode::from(1))
        }
    }
}
