//! The SIEM stream (docs/siem.md): every ledger entry as one JSON line,
//! shaped after the Elastic Common Schema ([`ecs_line`]), written by
//! `vigil serve` to a file with size-based rotation (`[siem]`), and printed
//! by `vigil audit follow --jsonl`.
//!
//! Delivery to the file is exactly once across crashes without a separate
//! cursor: on start the shipper reads the last complete line of the current
//! file (or, when it is empty, the newest rotated file's name), cuts a torn
//! last line, and resumes after the index it names. Each batch is written,
//! then fdatasynced.

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use vigil_ledger::Entry;

use crate::control::protocol::EntryView;
use crate::node::audit::Auditor;
use crate::node::home::Home;

/// `[siem]`: where `vigil serve` streams the ledger.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiemConfig {
    /// The JSON Lines file (relative to the home); unset: no stream.
    pub file: Option<PathBuf>,
    /// Size after which the file is rotated (renamed with the index of its
    /// last entry appended).
    pub max_file_bytes: u64,
    /// Rotated files kept; older ones are deleted (0: keep all).
    pub keep_files: usize,
    /// A syslog collector, `host:port`, sent RFC 5424 messages over TCP
    /// (RFC 6587 octet counting); unset: none.
    pub syslog: Option<String>,
    /// Use TLS to the collector (RFC 5425).
    pub syslog_tls: bool,
    /// PEM file of the CA certificates the collector's certificate must
    /// chain to (required with `syslog_tls`).
    pub syslog_ca_file: Option<PathBuf>,
    /// The name the collector's certificate must carry [default: the host
    /// of `syslog`].
    pub syslog_server_name: Option<String>,
}

impl Default for SiemConfig {
    fn default() -> Self {
        Self {
            file: None,
            max_file_bytes: 64 * 1024 * 1024,
            keep_files: 0,
            syslog: None,
            syslog_tls: false,
            syslog_ca_file: None,
            syslog_server_name: None,
        }
    }
}

/// One entry as an ECS-shaped JSON line (no newline).
pub fn ecs_line(e: &EntryView, origin: &str) -> String {
    let details: serde_json::Value =
        serde_json::from_str(&e.details).unwrap_or(serde_json::Value::Null);
    let outcome = match e.decision.as_str() {
        "allow" => "success",
        "deny" => "failure",
        _ => "unknown",
    };
    json!({
        "@timestamp": vigil_ledger::report::rfc3339(e.timestamp_ns),
        "ecs": { "version": "8.11.0" },
        "event": {
            "kind": "event",
            "module": "vigil",
            "dataset": "vigil.ledger",
            "action": e.kind,
            "outcome": outcome,
            "sequence": e.index,
            "hash": e.hash,
        },
        "observer": { "vendor": "vigil", "product": "vigil", "name": origin },
        "user": { "name": e.actor },
        "vigil": {
            "index": e.index,
            "kind": e.kind,
            "actor": e.actor,
            "subject": e.subject,
            "decision": e.decision,
            "details": details,
            "payload": e.payload.as_ref().map(|(commitment, length)| json!({"commitment": commitment, "length": length})),
        },
    })
    .to_string()
}

/// The index a JSON line names (`vigil.index`).
fn line_index(line: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    v.pointer("/vigil/index")?.as_u64()
}

/// Rotated files of `file`: `(last index, path)`, oldest first.
fn rotated(file: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let n = entry.file_name().to_string_lossy().into_owned();
        if let Some(index) = n.strip_prefix(&prefix).and_then(|s| s.parse::<u64>().ok()) {
            out.push((index, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Where to resume: after the last complete line of `file` (cutting a torn
/// last line), else after the newest rotated file, else at 0.
pub fn resume_point(file: &Path) -> std::io::Result<u64> {
    if let Some(index) = last_line_index(file)? {
        return Ok(index + 1);
    }
    Ok(rotated(file)?.last().map_or(0, |(i, _)| i + 1))
}

fn last_line_index(file: &Path) -> std::io::Result<Option<u64>> {
    let mut f = match fs::OpenOptions::new().read(true).write(true).open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let mut chunk = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(chunk);
        f.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::new();
        std::io::Read::by_ref(&mut f)
            .take(len - start)
            .read_to_end(&mut tail)?;
        // Cut a torn last line (a write the process did not finish).
        let complete = match tail.iter().rposition(|b| *b == b'\n') {
            Some(p) => p + 1,
            None if start == 0 => 0,
            None => {
                chunk *= 4;
                continue;
            }
        };
        if complete < tail.len() {
            f.set_len(start + complete as u64)?;
            f.sync_data()?;
        }
        let body = &tail[..complete];
        let body = body.strip_suffix(b"\n").unwrap_or(body);
        if body.is_empty() {
            return Ok(None);
        }
        match body.iter().rposition(|b| *b == b'\n') {
            Some(p) => return Ok(line_index(&body[p + 1..])),
            None if start == 0 => return Ok(line_index(body)),
            None => chunk *= 4,
        }
    }
}

/// The running stream; [`Shipper::stop`] ships what is left and ends it.
pub struct Shipper {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Shipper {
    /// Starts streaming `auditor`'s ledger to `[siem] file`, or returns
    /// `None` when none is set.
    pub fn start(
        home: &Home,
        config: &SiemConfig,
        auditor: Auditor,
    ) -> anyhow::Result<Option<Self>> {
        if config.file.is_none() && config.syslog.is_none() {
            return Ok(None);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        if let Some(file) = &config.file {
            let file = home.root().join(file);
            if let Some(dir) = file.parent() {
                fs::create_dir_all(dir)?;
            }
            let cursor = resume_point(&file)?;
            let size = auditor.ledger().size();
            if cursor > size {
                anyhow::bail!(
                    "{} already holds entries up to {}, but the ledger has {size}: it belongs to another ledger",
                    file.display(),
                    cursor - 1
                );
            }
            let (flag, config, auditor) = (Arc::clone(&stop), config.clone(), auditor.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("vigil-siem".into())
                    .spawn(move || {
                        if let Err(e) = ship(&file, &config, &auditor, cursor, &flag) {
                            tracing::error!(error = %e, "the SIEM stream stopped");
                            eprintln!("error: the SIEM stream to {} stopped: {e}", file.display());
                        }
                    })?,
            );
        }
        if let Some(sink) = crate::node::syslog::Sink::open(home, config)? {
            let (flag, auditor) = (Arc::clone(&stop), auditor.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("vigil-syslog".into())
                    .spawn(move || sink.run(&auditor, &flag))?,
            );
        }
        Ok(Some(Self { stop, threads }))
    }

    /// Ships the entries recorded so far, then stops.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

const BATCH: u64 = 1000;

fn ship(
    file: &Path,
    config: &SiemConfig,
    auditor: &Auditor,
    mut cursor: u64,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let origin = auditor.origin().to_string();
    let mut out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    let mut written = out.metadata()?.len();
    loop {
        let size = auditor.ledger().size();
        if cursor >= size {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            auditor.wait_for_growth(size, Duration::from_millis(200));
            continue;
        }
        let end = size.min(cursor + BATCH);
        let mut text = String::new();
        for raw in auditor.ledger().raw_entries(cursor..end) {
            let e = Entry::decode(&raw?)?;
            text.push_str(&ecs_line(&EntryView::of(&e), &origin));
            text.push('\n');
            cursor = e.index + 1;
            if written + text.len() as u64 >= config.max_file_bytes {
                deliver(&mut out, &mut text, &mut written)?;
                rotate(file, config, cursor - 1)?;
                out = fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(file)?;
                written = 0;
            }
        }
        deliver(&mut out, &mut text, &mut written)?;
        if cursor < end {
            anyhow::bail!("entry {cursor} is missing from the ledger store");
        }
    }
}

/// Writes and fdatasyncs `text` (then empties it).
fn deliver(out: &mut fs::File, text: &mut String, written: &mut u64) -> std::io::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    out.write_all(text.as_bytes())?;
    out.sync_data()?;
    *written += text.len() as u64;
    text.clear();
    Ok(())
}

/// Renames the full file after the index of its last entry, and deletes
/// the oldest rotated files beyond `keep_files`.
fn rotate(file: &Path, config: &SiemConfig, last: u64) -> std::io::Result<()> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    fs::rename(file, file.with_file_name(format!("{name}.{last:020}")))?;
    if let Some(dir) = file.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    if config.keep_files > 0 {
        let all = rotated(file)?;
        for (_, old) in all.iter().take(all.len().saturating_sub(config.keep_files)) {
            fs::remove_file(old)?;
        }
    }
    Ok(())
}
