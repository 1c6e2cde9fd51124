//! `vigil audit ...`: append external events, read the tail, sign
//! checkpoints, export bundles, verify (with the same verifier as
//! `vigil-verify`), write single-entry proofs and erase payloads.
//!
//! These commands open the node's ledger themselves; sled allows one process
//! at a time, so they refuse with a clear message while the node runs.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use vigil_crypto::keyfile;
use vigil_ledger::bundle::{export, verify_bundle, ExportOptions};
use vigil_ledger::proof::EntryProof;
use vigil_ledger::verify::{verify_ledger, VerifyError};
use vigil_ledger::Entry;

use super::passphrase;
use crate::node::audit::{AuditEvent, Auditor, EventKind, Verdict};
use crate::node::config::Config;
use crate::node::home::Home;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Record an event from another system; prints its index once durable
    Append(AppendArgs),
    /// Print the last entries
    Tail(TailArgs),
    /// Sign a checkpoint of the ledger now; prints the signed note
    Checkpoint,
    /// Write a bundle (entries, checkpoints, payloads, node public key) to one file
    Export(ExportArgs),
    /// Verify the ledger in place, or a bundle (exit 0 valid, 1 invalid, 2 error)
    Verify(VerifyArgs),
    /// Write a single-entry proof (C2SP tlog-proof) that `vigil-verify --proof` checks
    Prove(ProveArgs),
    /// Erase the payload of an entry and record the erasure
    Erase(EraseArgs),
}

#[derive(Debug, Args)]
pub struct AppendArgs {
    /// Entry kind (e.g. `external`)
    #[arg(long, default_value = "external")]
    pub kind: String,
    /// Who acted
    #[arg(long)]
    pub actor: String,
    /// What was acted on
    #[arg(long)]
    pub subject: String,
    /// The decision recorded (`allow`, `deny`, `record`, ...)
    #[arg(long, default_value = "record")]
    pub decision: String,
    /// Details, a JSON object
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub json: String,
    /// A file whose bytes are stored as the entry's (erasable) payload
    #[arg(long, value_name = "FILE")]
    pub payload_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Number of entries
    #[arg(short = 'n', long, default_value_t = 10)]
    pub lines: u64,
    /// Keep printing new entries (polls; needs the ledger not to be held by a running node)
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Bundle file to write
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// First entry
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Last entry wanted (inclusive); extended to the next signed checkpoint
    #[arg(long)]
    pub to: Option<u64>,
    /// Leave payloads out
    #[arg(long)]
    pub no_payloads: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify this bundle instead of the ledger in place
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Pinned public key [default: the home's node.pub]
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProveArgs {
    /// Entry index
    pub index: u64,
    /// Proof file to write
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct EraseArgs {
    /// Entry whose payload to erase
    pub index: u64,
    /// Why (recorded in the erasure entry)
    #[arg(long)]
    pub reason: String,
}

/// Runs one `vigil audit` command.
pub fn run(home: &Home, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    home.require_initialized()?;
    let config = Config::load(&home.config_path())?;
    match cmd {
        AuditCommand::Append(args) => append(home, &config, args),
        AuditCommand::Tail(args) => tail(home, &config, args),
        AuditCommand::Checkpoint => {
            let auditor = open(home, &config, true)?;
            let signed = auditor.checkpoint()?;
            print!("{}", signed.note);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export(args) => export_cmd(home, &config, args),
        AuditCommand::Verify(args) => verify(home, &config, args),
        AuditCommand::Prove(args) => prove(home, &config, args),
        AuditCommand::Erase(args) => {
            let auditor = open(home, &config, true)?;
            let idx = auditor.erase_payload(args.index, "operator", &args.reason)?;
            auditor.checkpoint()?;
            println!(
                "erased the payload of entry {}; recorded as entry {idx}",
                args.index
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn open(home: &Home, config: &Config, with_key: bool) -> anyhow::Result<Auditor> {
    let key = if with_key {
        Some(passphrase::node_key(home, config)?)
    } else {
        None
    };
    Auditor::open(home, config, key).context("opening the audit ledger")
}

fn append(home: &Home, config: &Config, args: AppendArgs) -> anyhow::Result<ExitCode> {
    let details: serde_json::Value =
        serde_json::from_str(&args.json).context("--json is not valid JSON")?;
    if !details.is_object() {
        bail!("--json must be a JSON object, like '{{\"ticket\": 42}}'");
    }
    let auditor = open(home, config, true)?;
    let mut event = AuditEvent::new(
        EventKind::External,
        args.actor,
        args.subject,
        Verdict::Record,
    )
    .details(details);
    if let Some(p) = &args.payload_file {
        event =
            event.payload(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?);
    }
    // External events may name their own kind and decision; the ledger checks them.
    let index = if args.kind == EventKind::External.as_str() && args.decision == "record" {
        auditor.record(event)?
    } else {
        auditor.record_raw(&args.kind, &args.decision, event)?
    };
    println!("{index}");
    Ok(ExitCode::SUCCESS)
}

fn tail(home: &Home, config: &Config, args: TailArgs) -> anyhow::Result<ExitCode> {
    let mut next = {
        let auditor = open(home, config, false)?;
        let ledger = auditor.ledger();
        let size = ledger.size();
        let start = size.saturating_sub(args.lines);
        print_range(&auditor, start, size, args.json)?;
        size
    };
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let auditor = open(home, config, false)?;
        let size = auditor.ledger().size();
        print_range(&auditor, next, size, args.json)?;
        next = size;
    }
}

fn print_range(auditor: &Auditor, from: u64, to: u64, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for i in from..to {
        let e = auditor
            .ledger()
            .entry(i)?
            .with_context(|| format!("entry {i} is missing; run `vigil audit verify`"))?;
        writeln!(out, "{}", format_entry(&e, json))?;
    }
    Ok(())
}

/// One line per entry, as `tail` prints it.
pub fn format_entry(e: &Entry, json: bool) -> String {
    if json {
        let details: serde_json::Value =
            serde_json::from_str(&e.details).unwrap_or(serde_json::Value::Null);
        serde_json::json!({
            "index": e.index,
            "timestamp_ns": e.timestamp_ns,
            "time": utc_time(e.timestamp_ns),
            "kind": e.kind,
            "actor": e.actor,
            "subject": e.subject,
            "decision": e.decision,
            "details": details,
            "payload": e.payload.map(|c| serde_json::json!({"commitment": hex::encode(c.digest), "length": c.length})),
            "hash": hex::encode(e.hash()),
        })
        .to_string()
    } else {
        format!(
            "{:>8} {} {:<18} {:<7} {} -> {} {}{}",
            e.index,
            utc_time(e.timestamp_ns),
            e.kind,
            e.decision,
            e.actor,
            e.subject,
            e.details,
            if e.payload.is_some() {
                " [payload]"
            } else {
                ""
            }
        )
    }
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` from Unix nanoseconds.
fn utc_time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let nanos = ns % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn export_cmd(home: &Home, config: &Config, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let auditor = open(home, config, true)?;
    let ledger = auditor.ledger();
    // Make sure a signed checkpoint covers the requested end.
    let want_to = args
        .to
        .map_or(ledger.size(), |t| t.saturating_add(1).min(ledger.size()));
    let covered = ledger
        .checkpoint_notes()?
        .iter()
        .any(|(s, _)| *s >= want_to);
    if !covered {
        auditor.checkpoint()?;
    }
    let public = keyfile::read_public_key(&home.node_pub_path())?;
    let file =
        File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "exporting {bar:40} {pos}/{len} entries ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let opts = ExportOptions {
        from: args.from,
        to: Some(want_to),
        no_payloads: args.no_payloads,
    };
    let summary = export(
        ledger,
        &public,
        BufWriter::with_capacity(1 << 20, file),
        &opts,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    println!(
        "exported entries {}..{} ({} checkpoints, {} payloads, {} bytes) to {}",
        summary.from,
        summary.to,
        summary.checkpoints,
        summary.payloads,
        summary.bytes,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(home: &Home, config: &Config, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let key_path = args.key.unwrap_or_else(|| home.node_pub_path());
    let key = match keyfile::read_public_key(&key_path) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: cannot use the key: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let outcome = match &args.bundle {
        Some(b) => File::open(b)
            .map_err(|e| VerifyError::Malformed(format!("{}: {e}", b.display())))
            .and_then(|f| verify_bundle(BufReader::with_capacity(1 << 20, f), &key)),
        None => {
            let auditor = match open(home, config, false) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            verify_ledger(auditor.ledger(), &key)
        }
    };
    Ok(match outcome {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(VerifyError::Failed(f)) => {
            eprintln!("INVALID: {f}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    })
}

fn prove(home: &Home, config: &Config, args: ProveArgs) -> anyhow::Result<ExitCode> {
    let auditor = open(home, config, true)?;
    if args.index >= auditor.ledger().size() {
        bail!(
            "entry {} does not exist (the ledger has {} entries)",
            args.index,
            auditor.ledger().size()
        );
    }
    if auditor.ledger().checkpoint_covering(args.index)?.is_none() {
        auditor.checkpoint()?;
    }
    let proof = EntryProof::build(auditor.ledger(), args.index)?;
    std::fs::write(&args.out, proof.to_text())
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote the proof of entry {} to {}",
        args.index,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
