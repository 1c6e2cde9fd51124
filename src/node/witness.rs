//! Witnessing (C2SP tlog-witness, docs/witness.md), both ways:
//!
//! - [`WitnessService`]: this node witnesses other logs (`[witness]`): it
//!   answers `POST /witness/add-checkpoint` on the MCP listener, cosigns a
//!   checkpoint only if it is consistent with the last one it cosigned for
//!   that log, keeps that state durable in `witness/state.json`, and records
//!   each decision as one ledger entry (`witness.cosigned`,
//!   `witness.refused`).
//! - [`spawn_submitter`]: this node sends each new checkpoint to its
//!   `[[witnesses]]` and stores the cosignatures they return beside its own
//!   signature in the stored checkpoint note, so exported bundles carry them.
//!
//! The decision itself is the sans-I/O [`vigil_ledger::witness`].

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use vigil_crypto::keyfile;
use vigil_ledger::cosignature::{verified_signers, Cosigner, VerifierKey, TYPE_ED25519_NOTE};
use vigil_ledger::witness::{
    add_checkpoint, request_body, LogKey, Outcome, TrustedLog, WitnessState,
};

use crate::node::audit::{AuditEvent, Auditor, EventKind, Verdict};
use crate::node::home::Home;

/// `[witness]`: this node as a witness of other logs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WitnessConfig {
    /// The witness key file (`vigil witness init`), relative to the home
    /// [default: witness.key]. Witnessing is on when `logs` is not empty.
    pub key_file: Option<PathBuf>,
    /// The logs this node witnesses.
    pub logs: Vec<WitnessedLog>,
}

/// One `[[witness.logs]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessedLog {
    /// The log's origin (its checkpoints' first line).
    pub origin: String,
    /// Its keys: a vigil node's `.pub` line or file, or an Ed25519 note
    /// verifier key (`name+id+base64`, type 0x01). Any one signature counts.
    pub keys: Vec<String>,
}

/// One `[[witnesses]]` entry: a witness this node sends its checkpoints to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessTarget {
    /// The witness's submission prefix (`POST <url>/add-checkpoint`).
    pub url: String,
    /// Its verifier keys (C2SP vkeys); cosignatures from other keys are
    /// dropped.
    pub keys: Vec<String>,
}

/// The witness key file of `home` under `config`.
pub fn key_path(home: &Home, config: &WitnessConfig) -> PathBuf {
    home.root().join(
        config
            .key_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("witness.key")),
    )
}

/// Reads the witness keys of `home`.
pub fn load_cosigner(home: &Home, config: &WitnessConfig) -> anyhow::Result<Cosigner> {
    let path = key_path(home, config);
    let text = fs::read_to_string(&path).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (create the witness keys with `vigil witness init --name NAME`)",
            path.display()
        )
    })?;
    Cosigner::from_file(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes new witness keys named `name` (mode 0600); refuses to overwrite.
pub fn init_cosigner(home: &Home, config: &WitnessConfig, name: &str) -> anyhow::Result<Cosigner> {
    let path = key_path(home, config);
    let cosigner = Cosigner::generate(name)?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (witness keys are never overwritten)",
            path.display()
        )
    })?;
    file.write_all(cosigner.to_file().as_bytes())?;
    file.sync_all()?;
    Ok(cosigner)
}

/// Parses a log key from config: a `.pub` file, a composite key line, or
/// an Ed25519 note vkey.
fn log_key(home: &Home, text: &str) -> anyhow::Result<LogKey> {
    let path = home.root().join(text);
    let text = if !text.contains('+') && path.is_file() {
        fs::read_to_string(&path)?
    } else {
        text.to_string()
    };
    let text = text.trim();
    if text.starts_with(vigil_crypto::composite::ALGORITHM) {
        let (key, _) = keyfile::parse_public_key_line(text)?;
        return Ok(LogKey::Composite(Box::new(key)));
    }
    let key = VerifierKey::parse(text)?;
    if key.kind() != TYPE_ED25519_NOTE {
        anyhow::bail!("`{text}` is a cosigner key, not a log's note key (type 0x01)");
    }
    Ok(LogKey::Note(Box::new(key)))
}

/// This node as a witness. See the module documentation.
pub struct WitnessService {
    cosigner: Cosigner,
    logs: Vec<TrustedLog>,
    state: Mutex<WitnessState>,
    state_path: PathBuf,
    auditor: Auditor,
}

/// An answer to `add-checkpoint`: status, content type, body.
pub type Answer = (u16, &'static str, String);

impl WitnessService {
    /// The service of `home` under `[witness]`, or `None` when it witnesses
    /// no log.
    pub fn open(
        home: &Home,
        config: &WitnessConfig,
        auditor: Auditor,
    ) -> anyhow::Result<Option<Self>> {
        if config.logs.is_empty() {
            return Ok(None);
        }
        let cosigner = load_cosigner(home, config)?;
        let mut logs = Vec::new();
        for log in &config.logs {
            vigil_ledger::checkpoint::check_origin(&log.origin)
                .map_err(|e| anyhow::anyhow!("[[witness.logs]]: {e}"))?;
            let keys = log
                .keys
                .iter()
                .map(|k| log_key(home, k))
                .collect::<anyhow::Result<Vec<_>>>()
                .map_err(|e| anyhow::anyhow!("[[witness.logs]] origin {}: {e}", log.origin))?;
            if keys.is_empty() {
                anyhow::bail!("[[witness.logs]] origin {}: no keys", log.origin);
            }
            logs.push(TrustedLog {
                origin: log.origin.clone(),
                keys,
            });
        }
        let dir = home.root().join("witness");
        crate::node::home::create_private_dir(&dir)?;
        let state_path = dir.join("state.json");
        let state = match fs::read_to_string(&state_path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", state_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => WitnessState {
                version: 1,
                ..WitnessState::default()
            },
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", state_path.display())),
        };
        Ok(Some(Self {
            cosigner,
            logs,
            state: Mutex::new(state),
            state_path,
            auditor,
        }))
    }

    /// The cosigner name.
    pub fn name(&self) -> &str {
        self.cosigner.name()
    }

    /// Answers one `add-checkpoint` request body (blocking: it writes the
    /// state file and a ledger entry). Requests are decided one at a time,
    /// so the check of the old size and the update are atomic.
    pub fn add_checkpoint(&self, body: &[u8]) -> Answer {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let outcome = add_checkpoint(&state, &self.logs, &self.cosigner, body, now);
        let (event, answer) = match &outcome {
            Outcome::Cosigned {
                checkpoint,
                old,
                latest,
                lines,
            } => (
                AuditEvent::new(
                    EventKind::WitnessCosigned,
                    format!("log:{}", checkpoint.origin),
                    format!("checkpoint:{}", checkpoint.size),
                    Verdict::Allow,
                )
                .details(serde_json::json!({
                    "origin": checkpoint.origin,
                    "size": checkpoint.size,
                    "root": latest.root,
                    "old": old,
                    "witness": self.cosigner.name(),
                })),
                (200, "text/plain; charset=utf-8", lines.concat()),
            ),
            Outcome::Refused {
                checkpoint,
                old,
                refusal,
            } => (
                AuditEvent::new(
                    EventKind::WitnessRefused,
                    checkpoint
                        .as_ref()
                        .map_or("log:unknown".to_string(), |c| format!("log:{}", c.origin)),
                    checkpoint
                        .as_ref()
                        .map_or("checkpoint:unparsed".to_string(), |c| {
                            format!("checkpoint:{}", c.size)
                        }),
                    Verdict::Deny,
                )
                .details(serde_json::json!({
                    "origin": checkpoint.as_ref().map(|c| c.origin.clone()),
                    "size": checkpoint.as_ref().map(|c| c.size),
                    "old": old,
                    "status": refusal.status,
                    "reason": refusal.reason,
                    "witness": self.cosigner.name(),
                })),
                (refusal.status, refusal.content_type, refusal.body.clone()),
            ),
        };
        // Recorded before the cosignature leaves, and before the state moves.
        if let Err(e) = self.auditor.record(event) {
            tracing::error!(error = %e, "cannot record the witness decision; answering 503");
            return (
                503,
                "text/plain; charset=utf-8",
                "the witness cannot record its decision\n".into(),
            );
        }
        if let Outcome::Cosigned {
            checkpoint, latest, ..
        } = &outcome
        {
            let mut next = state.clone();
            next.logs.insert(checkpoint.origin.clone(), latest.clone());
            if let Err(e) = write_state(&self.state_path, &next) {
                tracing::error!(error = %e, "cannot persist the witness state; not cosigning");
                return (
                    503,
                    "text/plain; charset=utf-8",
                    "the witness cannot persist its state\n".into(),
                );
            }
            *state = next;
        }
        answer
    }
}

/// Writes the state durably (temporary file, fsync, rename, directory fsync).
fn write_state(path: &Path, state: &WitnessState) -> std::io::Result<()> {
    crate::trust::file::write_atomic(path, serde_json::to_string_pretty(state)?.as_bytes())
}

/// One witness this node submits to, with what it knows of it.
struct Target {
    url: String,
    keys: Vec<VerifierKey>,
    /// The size the witness last cosigned, as far as this node knows.
    believed: u64,
    /// The size this node last got cosigned (or gave up on).
    done: u64,
    retry_at: Instant,
}

/// How often the submitter looks for a new checkpoint.
const SUBMIT_EVERY: Duration = Duration::from_millis(250);
/// How long after a failed submission it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Starts sending each new checkpoint of `auditor`'s ledger to `targets`,
/// until `stop`. Bad witness keys are an error at once.
pub fn spawn_submitter(
    targets: &[WitnessTarget],
    auditor: Auditor,
    stop: CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if targets.is_empty() {
        return Ok(None);
    }
    let mut parsed = Vec::new();
    for t in targets {
        let keys = t
            .keys
            .iter()
            .map(|k| VerifierKey::parse(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("[[witnesses]] {}: {e}", t.url))?;
        if keys.is_empty() {
            anyhow::bail!("[[witnesses]] {}: no keys", t.url);
        }
        parsed.push(Target {
            url: t.url.trim_end_matches('/').to_string(),
            keys,
            believed: 0,
            done: 0,
            retry_at: Instant::now(),
        });
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<axum::body::Body>();
    Ok(Some(tokio::spawn(async move {
        let mut targets = parsed;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(SUBMIT_EVERY) => {}
            }
            let latest = match auditor.ledger().latest_checkpoint_note() {
                Ok(Some(found)) => found,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the latest checkpoint for the witnesses");
                    continue;
                }
            };
            for target in targets.iter_mut() {
                if target.done >= latest.0 || Instant::now() < target.retry_at {
                    continue;
                }
                if let Err(e) = submit(&client, &auditor, target, &latest).await {
                    tracing::warn!(witness = %target.url, size = latest.0, error = %e, "witness did not cosign");
                    eprintln!(
                        "warning: witness {} did not cosign the checkpoint of size {}: {e}",
                        target.url, latest.0
                    );
                    target.retry_at = Instant::now() + RETRY_AFTER;
                }
            }
        }
    })))
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    axum::body::Body,
>;

/// Sends the checkpoint `(size, note)` to `target` (retrying once with the
/// size a 409 names) and stores the cosignatures.
async fn submit(
    client: &Client,
    auditor: &Auditor,
    target: &mut Target,
    latest: &(u64, String),
) -> anyhow::Result<()> {
    let (size, note) = latest;
    for _ in 0..3 {
        if target.believed > *size {
            anyhow::bail!(
                "the witness cosigned a checkpoint of size {}, larger than this log's {size}: this log's history was cut or forked",
                target.believed
            );
        }
        let proof = if target.believed == 0 {
            Vec::new()
        } else {
            let ledger = auditor.ledger().clone();
            let from = target.believed;
            let to = *size;
            tokio::task::spawn_blocking(move || ledger.consistency_proof(from, to)).await??
        };
        let body = request_body(target.believed, &proof, note);
        let request = hyper::Request::post(format!("{}/add-checkpoint", target.url))
            .body(axum::body::Body::from(body))?;
        let response =
            tokio::time::timeout(Duration::from_secs(10), client.request(request)).await??;
        let status = response.status().as_u16();
        let bytes =
            axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1 << 20).await?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match status {
            200 => {
                let lines = keep_cosignatures(note, &text, &target.keys);
                if lines.is_empty() {
                    anyhow::bail!(
                        "the witness answered with no cosignature by its configured keys"
                    );
                }
                let ledger = auditor.ledger().clone();
                let at = *size;
                tokio::task::spawn_blocking(move || ledger.add_cosignatures(at, &lines)).await??;
                target.believed = *size;
                target.done = *size;
                return Ok(());
            }
            // The witness names the size it last cosigned; try again from it
            // (at this very size, it cosigns again when the roots agree).
            409 => {
                target.believed = text.trim().parse().map_err(|_| {
                    anyhow::anyhow!("HTTP 409 without the witness's size: {}", text.trim())
                })?
            }
            _ => anyhow::bail!("HTTP {status}: {}", text.trim()),
        }
    }
    anyhow::bail!("the witness's size kept moving")
}

/// The signature lines of `answer` that are valid cosignatures on `note` by
/// one of `keys`; others are dropped.
fn keep_cosignatures(note: &str, answer: &str, keys: &[VerifierKey]) -> Vec<String> {
    let mut kept = Vec::new();
    for line in answer.lines().filter(|l| !l.is_empty()) {
        let candidate = format!("{note}{line}\n");
        if let Ok(found) = verified_signers(&candidate, keys) {
            if !found.is_empty() && !note.contains(line) {
                kept.push(format!("{line}\n"));
            }
        }
    }
    kept
}
