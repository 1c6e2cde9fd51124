//! `vigil-verify`: checks an exported ledger bundle, or a single-entry proof,
//! offline against a pinned node public key.
//!
//! Exit codes: 0 valid; 1 verification failure (the first failing index and
//! why); 2 usage error, I/O error or malformed input.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vigil_ledger::bundle::verify_bundle;
use vigil_ledger::proof::EntryProof;
use vigil_ledger::verify::VerifyError;

/// Verify a vigil ledger bundle or single-entry proof offline.
#[derive(Parser, Debug)]
#[command(name = "vigil-verify", version)]
struct Args {
    /// The bundle written by `vigil audit export`.
    #[arg(required_unless_present = "proof", conflicts_with = "proof")]
    bundle: Option<PathBuf>,
    /// A single-entry proof written by `vigil audit prove`, instead of a bundle.
    #[arg(long)]
    proof: Option<PathBuf>,
    /// The node's public key file (`NODE.pub`), obtained independently.
    #[arg(long)]
    key: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let key = match vigil_crypto::keyfile::read_public_key(&args.key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("vigil-verify: cannot use the key: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match (&args.proof, &args.bundle) {
        (Some(p), _) => std::fs::read(p)
            .map_err(|e| VerifyError::Malformed(format!("{}: {e}", p.display())))
            .and_then(|b| {
                String::from_utf8(b).map_err(|_| VerifyError::Malformed("the proof is not UTF-8 text".into()))
            })
            .and_then(|t| EntryProof::parse(&t))
            .and_then(|proof| proof.verify(&key))
            .map(|(e, cp)| {
                format!(
                    "valid: entry {} ({} by {} on {}: {}) is included in the checkpoint of size {} of {}",
                    e.index, e.kind, e.actor, e.subject, e.decision, cp.size, cp.origin
                )
            }),
        (None, Some(b)) => File::open(b)
            .map_err(|e| VerifyError::Malformed(format!("{}: {e}", b.display())))
            .and_then(|f| verify_bundle(BufReader::with_capacity(1 << 20, f), &key))
            .map(|r| r.to_string()),
        (None, None) => Err(VerifyError::Malformed("give a BUNDLE or --proof FILE".into())),
    };
    match outcome {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(VerifyError::Failed(f)) => {
            eprintln!("vigil-verify: INVALID: {f}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("vigil-verify: {e}");
            ExitCode::from(2)
        }
    }
}
