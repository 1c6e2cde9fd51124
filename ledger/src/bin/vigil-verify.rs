//! `vigil-verify`: checks an exported ledger bundle, or a single-entry proof,
//! offline against a pinned node public key.
//!
//! With `--since HELD.note` (repeatable) it also proves the bundle
//! consistent with each checkpoint the auditor kept from earlier, and fails
//! naming the held checkpoint when the log was forked or rewritten since.
//!
//! With `--witness VKEY` (repeatable; a C2SP verifier key, or a file of
//! them one per line) it also requires `--quorum N` of those witnesses
//! (default: all of them) to have cosigned the newest checkpoint.
//!
//! With `--report FILE` it writes an HTML report of a valid bundle
//! (docs/report.md); an invalid bundle gets no report.
//!
//! Exit codes: 0 valid; 1 verification failure (the first failing index and
//! why); 2 usage error, I/O error, malformed input, or a held checkpoint that
//! cannot be compared (another log or key, or newer than the bundle).
//!
//! With `--json`, stdout holds one JSON object whatever the outcome:
//! `{"valid": true, ...}` with what was covered; `{"valid": false,
//! "failure": {"location", "index", "reason"}, "error"}` for a failure (exit
//! 1); `{"valid": false, "error"}` when nothing could be verified (exit 2).

/// mimalloc: the allocator of every vigil binary and benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use serde_json::{json, Value};
use vigil_ledger::bundle::verify_bundle_with;
use vigil_ledger::cosignature::VerifierKey;
use vigil_ledger::proof::EntryProof;
use vigil_ledger::report::Evidence;
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
    /// A signed checkpoint note kept from earlier (`vigil audit checkpoint
    /// --out`): the bundle must extend it (repeatable)
    #[arg(long, value_name = "NOTE", conflicts_with = "proof")]
    since: Vec<PathBuf>,
    /// A witness's verifier key (`name+id+base64`, C2SP signed-note), or a
    /// file of them one per line (repeatable)
    #[arg(long, value_name = "VKEY|FILE", conflicts_with = "proof")]
    witness: Vec<String>,
    /// How many of the `--witness` witnesses must have cosigned the newest
    /// checkpoint [default: all of them]
    #[arg(long, value_name = "N", requires = "witness")]
    quorum: Option<usize>,
    /// Also write an HTML report of the bundle to FILE, only if it is
    /// valid (one self-contained page: summary, charts, controls)
    #[arg(long, value_name = "FILE", conflicts_with = "proof")]
    report: Option<PathBuf>,
    /// Print the outcome as one JSON object on stdout (exit codes unchanged).
    #[arg(long)]
    json: bool,
}

/// The witness keys named by `--witness`, and the quorum.
fn witnessing(args: &Args) -> Result<Option<(Vec<VerifierKey>, usize)>, VerifyError> {
    if args.witness.is_empty() {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for w in &args.witness {
        let text = if std::path::Path::new(w).is_file() {
            std::fs::read_to_string(w)
                .map_err(|e| VerifyError::Malformed(format!("witness key file {w}: {e}")))?
        } else {
            w.clone()
        };
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            keys.push(VerifierKey::parse(line).map_err(|e| VerifyError::Malformed(e.0))?);
        }
    }
    let mut names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    names.sort();
    names.dedup();
    let quorum = args.quorum.unwrap_or(names.len());
    if quorum == 0 || quorum > names.len() {
        return Err(VerifyError::Malformed(format!(
            "--quorum {quorum} must be between 1 and the {} witnesses given",
            names.len()
        )));
    }
    Ok(Some((keys, quorum)))
}

/// What was verified, for the text and the JSON output.
struct Verified {
    text: String,
    json: Value,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let key = match vigil_crypto::keyfile::read_public_key(&args.key) {
        Ok(k) => k,
        Err(e) => return error(args.json, &format!("cannot use the key: {e}")),
    };
    let outcome = match (&args.proof, &args.bundle) {
        (Some(p), _) => std::fs::read(p)
            .map_err(|e| VerifyError::Malformed(format!("{}: {e}", p.display())))
            .and_then(|b| {
                String::from_utf8(b).map_err(|_| VerifyError::Malformed("the proof is not UTF-8 text".into()))
            })
            .and_then(|t| EntryProof::parse(&t))
            .and_then(|proof| proof.verify(&key))
            .map(|(e, cp)| Verified {
                text: format!(
                    "valid: entry {} ({} by {} on {}: {}) is included in the checkpoint of size {} of {}",
                    e.index, e.kind, e.actor, e.subject, e.decision, cp.size, cp.origin
                ),
                json: json!({
                    "valid": true,
                    "proof": {
                        "index": e.index,
                        "kind": e.kind,
                        "actor": e.actor,
                        "subject": e.subject,
                        "decision": e.decision,
                    },
                    "checkpoint": { "origin": cp.origin, "size": cp.size },
                }),
            }),
        (None, Some(b)) => read_held(&args.since)
            .and_then(|held| {
                let witnessing = witnessing(&args)?;
                let f = File::open(b)
                    .map_err(|e| VerifyError::Malformed(format!("{}: {e}", b.display())))?;
                let mut evidence = args.report.as_ref().map(|_| Evidence::new());
                let bar = vigil_ledger::progress::bar("verifying", "entries", 0);
                // Entries are decoded for the report only when one is wanted.
                let wanted = evidence.is_some();
                let mut observe = |e: &vigil_ledger::Entry| {
                    if let Some(ev) = evidence.as_mut() {
                        ev.observe(e);
                    }
                };
                let report = verify_bundle_with(
                    BufReader::with_capacity(1 << 20, f),
                    &key,
                    &held,
                    witnessing,
                    if wanted { Some(&mut observe) } else { None },
                    &mut |done, total| {
                        if done % 4096 == 0 || done == total {
                            bar.set_length(total);
                            bar.set_position(done);
                        }
                    },
                );
                bar.finish_and_clear();
                let report = report?;
                if let (Some(path), Some(ev)) = (&args.report, &evidence) {
                    let html = ev.render(&report, &now_utc());
                    std::fs::write(path, html).map_err(|e| {
                        VerifyError::Malformed(format!("the bundle is valid, but writing the report {} failed: {e}", path.display()))
                    })?;
                }
                Ok(report)
            })
            .map(|r| Verified {
                text: r.to_string(),
                json: json!({ "valid": true, "bundle": r.to_json() }),
            }),
        (None, None) => Err(VerifyError::Malformed("give a BUNDLE or --proof FILE".into())),
    };
    match outcome {
        Ok(verified) if args.json => {
            println!("{}", verified.json);
            ExitCode::SUCCESS
        }
        Ok(verified) => {
            println!("{}", verified.text);
            ExitCode::SUCCESS
        }
        Err(VerifyError::Failed(f)) => {
            if args.json {
                println!("{}", f.to_json());
            } else {
                eprintln!("vigil-verify: INVALID: {f}");
            }
            ExitCode::from(1)
        }
        Err(e) => error(args.json, &e.to_string()),
    }
}

/// The current time for the report's footer.
fn now_utc() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    vigil_ledger::report::time(ns)
}

/// Reads the held checkpoint notes named by `--since`.
fn read_held(paths: &[PathBuf]) -> Result<Vec<String>, VerifyError> {
    paths
        .iter()
        .map(|p| {
            std::fs::read_to_string(p).map_err(|e| {
                VerifyError::Unverifiable(format!("held checkpoint {}: {e}", p.display()))
            })
        })
        .collect()
}

/// Reports that nothing could be verified (exit code 2).
fn error(json: bool, message: &str) -> ExitCode {
    if json {
        println!("{}", json!({ "valid": false, "error": message }));
    } else {
        eprintln!("vigil-verify: {message}");
    }
    ExitCode::from(2)
}
