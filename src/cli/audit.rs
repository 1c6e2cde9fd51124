//! `vigil audit ...`: append external events, read the tail, sign
//! checkpoints, export bundles, verify (with the same verifier as
//! `vigil-verify`), write single-entry proofs and erase payloads.
//!
//! With a node running they go through its control socket (its one ledger
//! writer); otherwise they open the home themselves ([`super::admin`]).

use std::fs::File;
use std::io::{BufReader, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use clap::{Args, Subcommand};
use vigil_crypto::keyfile;
use vigil_ledger::verify::VerifyError;

use super::admin::execute;
use crate::control::protocol::{EntryView, Event, ExternalEvent, Reply, Request};
use crate::node::home::Home;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Record an event from another system; prints its index once durable
    Append(AppendArgs),
    /// Print the last entries
    Tail(TailArgs),
    /// Sign a checkpoint of the ledger now (or return the latest when no
    /// entry was added since); prints the signed note
    Checkpoint(CheckpointArgs),
    /// Write a bundle (entries, checkpoints, payloads, node public key) to one file
    Export(ExportArgs),
    /// Verify the ledger in place, or a bundle (exit 0 valid, 1 invalid, 2 error)
    Verify(VerifyArgs),
    /// Write a single-entry proof (C2SP tlog-proof) that `vigil-verify --proof` checks
    Prove(ProveArgs),
    /// Erase the payload of an entry and record the erasure
    Erase(EraseArgs),
    /// Print every entry from an index on, and keep printing new ones, as
    /// ECS-shaped JSON lines for a SIEM (docs/siem.md)
    Follow(FollowArgs),
    /// Write an HTML audit report (docs/report.md) of the ledger, built
    /// from an export that verified against the node key
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct FollowArgs {
    /// One JSON object per line (the only format)
    #[arg(long, required = true)]
    pub jsonl: bool,
    /// First entry [default: the next one recorded]
    #[arg(long)]
    pub from: Option<u64>,
}

/// The entries an export or report covers.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// First entry
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Last entry wanted (inclusive); extended to the next signed checkpoint
    #[arg(long)]
    pub to: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The HTML file to write
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub range: RangeArgs,
    /// The node public key to verify with [default: the home's node.pub]
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AppendArgs {
    /// Entry kind (e.g. `external`)
    #[arg(long, default_value = "external")]
    pub kind: String,
    /// Who acted
    #[arg(long, required_unless_present = "jsonl")]
    pub actor: Option<String>,
    /// What was acted on
    #[arg(long, required_unless_present = "jsonl")]
    pub subject: Option<String>,
    /// The decision recorded (`allow`, `deny`, `record`, ...)
    #[arg(long, default_value = "record")]
    pub decision: String,
    /// Details, a JSON object
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub json: String,
    /// A file whose bytes are stored as the entry's (erasable) payload
    #[arg(long, value_name = "FILE")]
    pub payload_file: Option<PathBuf>,
    /// Import many events: one JSON object per line (`actor`, `subject`,
    /// optional `kind`, `decision`, `details`, `payload_b64`), from FILE or
    /// `-` for stdin; recorded in order, in batches, each batch one group
    /// commit; prints how many were recorded
    #[arg(long, value_name = "FILE", conflicts_with_all = ["actor", "subject", "payload_file"])]
    pub jsonl: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Number of entries
    #[arg(short = 'n', long, default_value_t = 10)]
    pub lines: u64,
    /// Keep printing new entries as they are recorded (until interrupted)
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Also write the signed note to FILE, to hold and later give to
    /// `vigil-verify --since`, which proves a newer export extends it
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print JSON: origin, size, root_hash (base64) and the signed note
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Bundle file to write
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Leave payloads out
    #[arg(long)]
    pub no_payloads: bool,
    /// Print the summary as one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify this bundle instead of the ledger in place
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Pinned public key [default: the home's node.pub]
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Print one JSON object whatever the outcome (docs/ledger-format.md §4;
    /// exit codes unchanged)
    #[arg(long)]
    pub json: bool,
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
    /// Print JSON: index, recorded (the erasure entry), checkpoint_error
    #[arg(long)]
    pub json: bool,
}

/// Runs one `vigil audit` command.
pub fn run(home: &Home, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Append(args) => append(home, args),
        AuditCommand::Tail(args) => tail(home, args),
        AuditCommand::Checkpoint(args) => {
            if let Reply::Checkpoint { note } =
                execute(home, Request::AuditCheckpoint, &mut |_| {})?
            {
                if let Some(out) = &args.out {
                    std::fs::write(out, &note)
                        .with_context(|| format!("writing {}", out.display()))?;
                }
                if args.json {
                    // A checkpoint note: origin, tree size, root hash lines.
                    let mut lines = note.lines();
                    let (origin, size, root) = (lines.next(), lines.next(), lines.next());
                    let size: Option<u64> = size.and_then(|s| s.parse().ok());
                    println!(
                        "{}",
                        serde_json::json!({
                            "origin": origin, "size": size, "root_hash": root, "note": note,
                        })
                    );
                } else {
                    print!("{note}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export(args) => export_cmd(home, args),
        AuditCommand::Report(args) => report_cmd(home, args),
        AuditCommand::Follow(args) => follow_cmd(home, args),
        AuditCommand::Verify(args) => verify(home, args),
        AuditCommand::Prove(args) => prove(home, args),
        AuditCommand::Erase(args) => {
            let request = Request::AuditErase {
                index: args.index,
                reason: args.reason,
            };
            if let Reply::Erased {
                index,
                recorded,
                checkpoint_error,
            } = execute(home, request, &mut |_| {})?
            {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "index": index, "recorded": recorded, "checkpoint_error": checkpoint_error,
                        })
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                println!("erased the payload of entry {index}; recorded as entry {recorded}");
                if let Some(e) = checkpoint_error {
                    eprintln!(
                        "warning: the erasure is recorded, but the checkpoint after it could not be signed ({e}); sign one with `vigil audit checkpoint`"
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn append(home: &Home, args: AppendArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.jsonl {
        return import_jsonl(home, path, &args.kind, &args.decision);
    }
    let details: serde_json::Value =
        serde_json::from_str(&args.json).context("--json is not valid JSON")?;
    if !details.is_object() {
        bail!("--json must be a JSON object, like '{{\"ticket\": 42}}'");
    }
    let payload_b64 = match &args.payload_file {
        Some(p) => Some(
            base64::engine::general_purpose::STANDARD
                .encode(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        ),
        None => None,
    };
    let event = ExternalEvent {
        kind: args.kind,
        actor: args.actor.unwrap_or_default(),
        subject: args.subject.unwrap_or_default(),
        decision: args.decision,
        details,
        payload_b64,
    };
    let request = Request::AuditAppend {
        events: vec![event],
    };
    if let Reply::Appended { indices } = execute(home, request, &mut |_| {})? {
        for i in indices {
            println!("{i}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Events recorded per request (and group commit) of a JSON Lines import.
const IMPORT_BATCH: usize = 5_000;

/// One line of a JSON Lines import; `kind` and `decision` default to the
/// command's `--kind` and `--decision`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    actor: String,
    subject: String,
    kind: Option<String>,
    decision: Option<String>,
    #[serde(default)]
    details: Option<serde_json::Value>,
    payload_b64: Option<String>,
}

/// `vigil audit append --jsonl FILE`: reads every line first (a bad line
/// stops the import before anything is recorded), then records them in
/// batches with a progress bar.
fn import_jsonl(
    home: &Home,
    path: &std::path::Path,
    kind: &str,
    decision: &str,
) -> anyhow::Result<ExitCode> {
    use std::io::BufRead as _;
    let reader: Box<dyn std::io::BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(BufReader::new(
            File::open(path).with_context(|| format!("opening {}", path.display()))?,
        ))
    };
    let mut events = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: ImportLine = serde_json::from_str(&line)
            .with_context(|| format!("line {} is not an event object", n + 1))?;
        let details = parsed
            .details
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        if !details.is_object() {
            bail!("line {}: details must be a JSON object", n + 1);
        }
        events.push(ExternalEvent {
            kind: parsed.kind.unwrap_or_else(|| kind.to_string()),
            actor: parsed.actor,
            subject: parsed.subject,
            decision: parsed.decision.unwrap_or_else(|| decision.to_string()),
            details,
            payload_b64: parsed.payload_b64,
        });
    }
    let total = events.len() as u64;
    let bar = vigil_ledger::progress::bar("importing", "events", total);
    let mut recorded = 0u64;
    let mut first = None;
    let mut rest = events.into_iter().peekable();
    while rest.peek().is_some() {
        let batch: Vec<ExternalEvent> = rest.by_ref().take(IMPORT_BATCH).collect();
        let request = Request::AuditAppend { events: batch };
        let reply = execute(home, request, &mut |_| {});
        let Reply::Appended { indices } = reply.inspect_err(|_| bar.abandon())? else {
            bail!("the node answered `audit-append` with something else");
        };
        first = first.or(indices.first().copied());
        recorded += indices.len() as u64;
        bar.set_position(recorded);
    }
    bar.finish_and_clear();
    match first {
        Some(first) => println!(
            "recorded {recorded} events as entries {first}..{}",
            first + recorded
        ),
        None => println!("recorded 0 events (the input held none)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// How long one `--follow` poll waits on a running node for new entries.
const FOLLOW_WAIT_MS: u64 = 10_000;

fn tail(home: &Home, args: TailArgs) -> anyhow::Result<ExitCode> {
    let Reply::Size { size } = execute(home, Request::AuditSize, &mut |_| {})? else {
        bail!("the node answered `audit-size` with something else");
    };
    let json = args.json;
    let format = move |e: &EntryView| format_entry(e, json);
    let next = print_entries(
        home,
        size.saturating_sub(args.lines),
        args.lines,
        0,
        &format,
    )?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    follow(home, next, &format)
}

/// `vigil audit follow --jsonl`: ECS lines from `--from` (or the next
/// entry) on, until interrupted.
fn follow_cmd(home: &Home, args: FollowArgs) -> anyhow::Result<ExitCode> {
    let config = crate::node::config::Config::load(&home.config_path())?;
    let origin = config.node.name.clone();
    let from = match args.from {
        Some(f) => f,
        None => {
            let Reply::Size { size } = execute(home, Request::AuditSize, &mut |_| {})? else {
                bail!("the node answered `audit-size` with something else");
            };
            size
        }
    };
    follow(home, from, &move |e: &EntryView| {
        crate::node::siem::ecs_line(e, &origin)
    })
}

/// Prints entries from `next` on as they are recorded, until interrupted.
fn follow(
    home: &Home,
    mut next: u64,
    format: &dyn Fn(&EntryView) -> String,
) -> anyhow::Result<ExitCode> {
    loop {
        // A running node holds the request until entries arrive; with no
        // node running, poll the home (opened only for each read).
        let running = super::admin::node_running(home)?;
        let wait = if running { FOLLOW_WAIT_MS } else { 0 };
        match print_entries(home, next, u64::MAX, wait, format) {
            Ok(after) => next = after,
            // The node stopped while we waited: follow the home (or the
            // next node) from where we were.
            Err(e) if is_lost_node(&e) => std::thread::sleep(Duration::from_secs(1)),
            Err(e) => return Err(e),
        }
        if !running {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// True when `e` says the running node went away mid-request.
fn is_lost_node(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<crate::control::ControlError>(),
        Some(crate::control::ControlError::Lost(_))
    )
}

/// Prints entries `from..` (at most `limit`, read in batches); returns the
/// index after the last one printed.
fn print_entries(
    home: &Home,
    mut from: u64,
    mut limit: u64,
    mut wait_ms: u64,
    format: &dyn Fn(&EntryView) -> String,
) -> anyhow::Result<u64> {
    const BATCH: u64 = 10_000;
    loop {
        let batch = limit.min(BATCH);
        if batch == 0 {
            return Ok(from);
        }
        let request = Request::AuditEntries {
            from,
            limit: batch,
            wait_ms,
        };
        let Reply::Entries { entries, .. } = execute(home, request, &mut |_| {})? else {
            bail!("the node answered `audit-entries` with something else");
        };
        let mut out = std::io::stdout().lock();
        for e in &entries {
            writeln!(out, "{}", format(e))?;
        }
        out.flush()?;
        let n = entries.len() as u64;
        from += n;
        limit -= n;
        wait_ms = 0;
        if n < batch {
            return Ok(from);
        }
    }
}

/// One line per entry, as `tail` prints it.
pub fn format_entry(e: &EntryView, json: bool) -> String {
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
            "payload": e.payload.as_ref().map(|(commitment, length)| serde_json::json!({"commitment": commitment, "length": length})),
            "hash": e.hash,
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
    vigil_ledger::report::rfc3339(ns)
}

fn export_cmd(home: &Home, args: ExportArgs) -> anyhow::Result<ExitCode> {
    // The node writes the file: name it absolutely.
    let out = std::path::absolute(&args.out)
        .with_context(|| format!("resolving {}", args.out.display()))?;
    let bar = vigil_ledger::progress::bar("exporting", "entries", 0);
    let request = Request::AuditExport {
        out: out.clone(),
        from: args.range.from,
        to: args.range.to,
        no_payloads: args.no_payloads,
    };
    let reply = execute(home, request, &mut |event| {
        let Event::Progress { done, total } = event;
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    if let Reply::Exported {
        from,
        to,
        checkpoints,
        payloads,
        bytes,
    } = reply?
    {
        if args.json {
            let summary = serde_json::json!({
                "from": from, "to": to, "checkpoints": checkpoints,
                "payloads": payloads, "bytes": bytes, "out": args.out,
            });
            println!("{summary}");
        } else {
            println!(
                "exported entries {from}..{to} ({checkpoints} checkpoints, {payloads} payloads, {bytes} bytes) to {}",
                args.out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil audit report`: exports a bundle (without payloads) beside the
/// home, verifies it against the node key while gathering the evidence,
/// and writes the report only if it is valid.
fn report_cmd(home: &Home, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let key_path = args.key.clone().unwrap_or_else(|| home.node_pub_path());
    let key = keyfile::read_public_key(&key_path)
        .with_context(|| format!("cannot use the key {}", key_path.display()))?;
    let root = std::path::absolute(home.root())?;
    let bundle = root.join(format!(".report-{}.bundle", std::process::id()));
    let bar = vigil_ledger::progress::bar("exporting", "entries", 0);
    let request = Request::AuditExport {
        out: bundle.clone(),
        from: args.range.from,
        to: args.range.to,
        no_payloads: true,
    };
    let exported = execute(home, request, &mut |event| {
        let Event::Progress { done, total } = event;
        bar.set_length(total);
        bar.set_position(done);
    });
    let outcome = exported.and_then(|reply| {
        if let Reply::Exported { from, to, .. } = reply {
            bar.set_length(to - from);
        }
        bar.set_message("verifying");
        bar.set_position(0);
        let file = File::open(&bundle).with_context(|| format!("opening {}", bundle.display()))?;
        let mut evidence = vigil_ledger::report::Evidence::new();
        let verified = vigil_ledger::bundle::verify_bundle_with(
            BufReader::with_capacity(1 << 20, file),
            &key,
            &[],
            None,
            Some(&mut |e| evidence.observe(e)),
            &mut |done, _| bar.set_position(done),
        );
        Ok((verified, evidence))
    });
    bar.finish_and_clear();
    let _ = std::fs::remove_file(&bundle);
    let (verified, evidence) = outcome?;
    let report = match verified {
        Ok(r) => r,
        Err(VerifyError::Failed(f)) => {
            eprintln!("error: the ledger does not verify, so no report was written: INVALID: {f}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => bail!("the export could not be verified, so no report was written: {e}"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    std::fs::write(
        &args.out,
        evidence.render(&report, &vigil_ledger::report::time(now)),
    )
    .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {}: {} entries ({}..{}) of {}, verified",
        args.out.display(),
        report.entries,
        report.from,
        report.to,
        report.origin
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(home: &Home, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let key_path = args.key.unwrap_or_else(|| home.node_pub_path());
    let json = args.json;
    // Nothing could be verified (exit 2).
    let unverified = |message: String| {
        if json {
            println!(
                "{}",
                serde_json::json!({ "valid": false, "error": message })
            );
        } else {
            eprintln!("error: {message}");
        }
        ExitCode::from(2)
    };
    let key = match keyfile::read_public_key(&key_path) {
        Ok(k) => k,
        Err(e) => return Ok(unverified(format!("cannot use the key: {e}"))),
    };
    if let Some(b) = &args.bundle {
        let bar = vigil_ledger::progress::bar("verifying", "entries", 0);
        let outcome = File::open(b)
            .map_err(|e| VerifyError::Malformed(format!("{}: {e}", b.display())))
            .and_then(|f| {
                vigil_ledger::bundle::verify_bundle_progress(
                    BufReader::with_capacity(1 << 20, f),
                    &key,
                    &mut |done, total| {
                        bar.set_length(total);
                        bar.set_position(done);
                    },
                )
            });
        bar.finish_and_clear();
        return Ok(match outcome {
            Ok(report) if json => {
                println!(
                    "{}",
                    serde_json::json!({ "valid": true, "bundle": report.to_json() })
                );
                ExitCode::SUCCESS
            }
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(VerifyError::Failed(f)) => {
                if json {
                    println!("{}", f.to_json());
                } else {
                    eprintln!("INVALID: {f}");
                }
                ExitCode::from(1)
            }
            Err(e) => unverified(e.to_string()),
        });
    }
    let request = Request::AuditVerify {
        key: Some(keyfile::public_key_line(&key, None)),
    };
    let bar = vigil_ledger::progress::bar("verifying", "entries", 0);
    let answered = execute(home, request, &mut |event| {
        let Event::Progress { done, total } = event;
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    match answered {
        Ok(Reply::Verified {
            code,
            text,
            warning,
            json: outcome,
        }) => {
            if json {
                println!("{outcome}");
            } else if code == 0 {
                println!("{text}");
            } else {
                eprintln!("{text}");
            }
            if let Some(warning) = warning.filter(|_| !json) {
                eprintln!("{warning}");
            }
            Ok(ExitCode::from(code))
        }
        Ok(_) => bail!("the node answered `audit-verify` with something else"),
        Err(e) => Ok(unverified(super::error_line(&e))),
    }
}

fn prove(home: &Home, args: ProveArgs) -> anyhow::Result<ExitCode> {
    let request = Request::AuditProve { index: args.index };
    if let Reply::Proof { text } = execute(home, request, &mut |_| {})? {
        std::fs::write(&args.out, text)
            .with_context(|| format!("writing {}", args.out.display()))?;
        println!(
            "wrote the proof of entry {} to {}",
            args.index,
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
