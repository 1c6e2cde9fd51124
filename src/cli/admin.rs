//! The operator's operations on a node home, written once and run where the
//! home is open: inside the running node (`vigil serve`, `vigil mcp`) when a
//! command reaches it over the control socket, or in the command's own
//! process when no node runs. [`execute`] picks the way; the command then
//! prints the same reply either way, so the output and exit codes do not
//! depend on it.
//!
//! Every change (an appended event, an erasure, an admission, a trust
//! change, an answered approval) goes through the one [`Auditor`] of the
//! process that owns the home, and takes effect in the running node at
//! once through its [`Live`] hooks.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};
use vigil_crypto::keyfile;
use vigil_ledger::bundle::{export, ExportOptions};
use vigil_ledger::proof::EntryProof;
use vigil_ledger::verify::{verify_ledger_progress, VerifyError};
use vigil_ledger::Entry;

use crate::control::protocol::{
    EntryView, Event, ExternalEvent, Reply, Request, TrustRequest, MAX_LINE_BYTES,
};
use crate::control::{client, ControlError};
use crate::gatekeeper::history::VersionCheck;
use crate::gatekeeper::record::{self, AuditRecord};
use crate::gatekeeper::store::PackageStore;
use crate::gatekeeper::{AdmitOptions, Decision, Occasion, Refusal, Refused};
use crate::mcp::pipeline::{CallReply, Caller, QueueOnly};
use crate::mcp::{Catalog, Pipeline};
use crate::node::audit::{AuditEvent, Auditor, EventKind, Verdict};
use crate::node::config::Config;
use crate::node::home::Home;
use crate::node::trusted;
use crate::package::format::PackageFile;

use crate::package::FormatError;
use crate::policy::{Answer, ApprovalMode, ApprovalQueue};
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::trust::{file, TrustChange, TrustStore};
use vigil_ledger::approval::SignedStatement;

mod agents;

/// What the running node does when the operator changes its state.
pub trait Live: Send + Sync {
    /// Admitted packages or trusted publishers changed: serve the tools
    /// anew and tell connected MCP clients.
    fn tools_changed(&self) -> anyhow::Result<()>;
    /// A peer was revoked: close its open links; returns how many.
    fn peer_revoked(&self, key_id: &str, reason: &str) -> u64;
    /// The trust store changed (already saved and recorded): decide with
    /// `store` from now on.
    fn trust_changed(&self, store: TrustStore);
    /// The node's approval queue (its held calls wait on it).
    fn approvals(&self) -> ApprovalQueue;
    /// Runs one call through the node's pipeline.
    fn call(&self, caller: &Caller, tool: &str, arguments: Value) -> CallReply;
    /// The node's pipeline (its agents' access state and watch).
    fn pipeline(&self) -> Arc<Pipeline>;
}

/// The operations over one open node home. See the module documentation.
pub struct Admin {
    home: Home,
    config: Config,
    auditor: Auditor,
    live: Option<Arc<dyn Live>>,
    /// One change to the trust or package store at a time.
    changes: Mutex<()>,
}

/// Whether a request needs the node's signing key when the command opens
/// the home itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyUse {
    /// It signs a checkpoint: fail without the key.
    Required,
    /// Checkpoints may fall due: use the key if it loads.
    Optional,
    /// Reads only.
    None,
}

fn key_use(request: &Request) -> KeyUse {
    match request {
        Request::AuditAppend { .. }
        | Request::AuditCheckpoint
        | Request::KeyRotate
        | Request::AgentToken { .. }
        | Request::AuditExport { .. }
        | Request::AuditProve { .. }
        | Request::AuditErase { .. } => KeyUse::Required,
        Request::Install { .. }
        | Request::Uninstall { .. }
        | Request::Trust(_)
        | Request::Tools
        | Request::Call { .. }
        | Request::AgentRevoke { .. }
        | Request::AgentResume { .. } => KeyUse::Optional,
        Request::AuditEntries { .. }
        | Request::AuditSize
        | Request::AuditVerify { .. }
        | Request::TrustList
        | Request::AgentStatus
        | Request::Approvals
        | Request::Decide { .. }
        | Request::Mcp { .. } => KeyUse::None,
    }
}

/// True when a node is serving `home` (its control socket answers).
pub fn node_running(home: &Home) -> anyhow::Result<bool> {
    Ok(client::connect(&home.control_socket())
        .map_err(unreachable_node)?
        .is_some())
}

fn unreachable_node(e: ControlError) -> anyhow::Error {
    anyhow!("{e} (only the node's user or root may administer a running node)")
}

/// Runs `request` on the node serving `home`, or on the home itself when no
/// node runs; events (progress) go to `on_event`. An error reply becomes
/// an error with the node's message.
pub fn execute(
    home: &Home,
    request: Request,
    on_event: &mut dyn FnMut(Event),
) -> anyhow::Result<Reply> {
    if let Some(node) = client::connect(&home.control_socket()).map_err(unreachable_node)? {
        return match node.request(&request, on_event)? {
            Reply::Error { message } => Err(anyhow!(message)),
            reply => Ok(reply),
        };
    }
    home.require_initialized()?;
    let config = Config::load(&home.config_path())?;
    super::passphrase::settle_rotation(home)?;
    let key = match key_use(&request) {
        KeyUse::Required => Some(super::passphrase::node_key(home, &config)?),
        KeyUse::Optional => super::passphrase::node_key(home, &config).ok(),
        KeyUse::None => None,
    };
    let auditor = Auditor::open(home, &config, key).context("opening the audit ledger")?;
    let admin = Admin::new(home.clone(), config, auditor, None);
    admin.handle(request, &mut |e| {
        on_event(e);
        true
    })
}

/// The ledger entry as commands print it.
pub fn entry_view(e: &Entry) -> EntryView {
    EntryView::of(e)
}

fn json_value(value: &impl Serialize) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(value)?)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Admin {
    /// The operations over an open home; `live` is the running node's hooks
    /// (None when a command opened the home itself).
    pub fn new(home: Home, config: Config, auditor: Auditor, live: Option<Arc<dyn Live>>) -> Self {
        Self {
            home,
            config,
            auditor,
            live,
            changes: Mutex::new(()),
        }
    }

    fn lock_changes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one request. `emit` sends progress; it returns false once the
    /// asker has gone away.
    pub fn handle(
        &self,
        request: Request,
        emit: &mut dyn FnMut(Event) -> bool,
    ) -> anyhow::Result<Reply> {
        match request {
            Request::AuditAppend { events } => self.append(events),
            Request::AuditEntries {
                from,
                limit,
                wait_ms,
            } => self.entries(from, limit, wait_ms),
            Request::AuditSize => Ok(Reply::Size {
                size: self.auditor.ledger().size(),
            }),
            Request::AuditCheckpoint => Ok(Reply::Checkpoint {
                note: self.auditor.checkpoint()?.note,
            }),
            Request::KeyRotate => self.rotate_key(),
            Request::AgentToken {
                agent,
                ttl_seconds,
                tools,
            } => self.agent_token(&agent, ttl_seconds, &tools),
            Request::AgentRevoke {
                agent,
                token_id,
                token,
                reason,
            } => self.agent_revoke(
                agent.as_deref(),
                token_id.as_deref(),
                token.as_deref(),
                &reason,
            ),
            Request::AgentResume { agent, reason } => self.agent_resume(&agent, &reason),
            Request::AgentStatus => self.agent_status(),
            Request::AuditExport {
                out,
                from,
                to,
                no_payloads,
            } => self.export(&out, from, to, no_payloads, emit),
            Request::AuditVerify { key } => self.verify(key.as_deref(), emit),
            Request::AuditProve { index } => self.prove(index),
            Request::AuditErase { index, reason } => {
                let recorded = self.auditor.erase_payload(index, "operator", &reason)?;
                // Recorded and durable: a failed checkpoint is reported
                // beside it, not as the erasure's failure.
                let checkpoint_error = self.auditor.checkpoint().err().map(|e| format!("{e:#}"));
                Ok(Reply::Erased {
                    index,
                    recorded,
                    checkpoint_error,
                })
            }
            Request::Install {
                source,
                len,
                package_b64,
                allow_findings,
                allow_downgrade,
            } => {
                let options = AdmitOptions {
                    allowed_findings: &allow_findings,
                    allow_downgrade,
                };
                self.install(&source, len, &package_b64, &options)
            }
            Request::Uninstall { name, reason } => self.uninstall(&name, &reason),
            Request::Trust(change) => self.trust(change),
            Request::TrustList => Ok(Reply::TrustStore {
                store: json_value(&self.trust_store()?)?,
            }),
            Request::Tools => self.tools(),
            Request::Call {
                tool,
                arguments,
                signed,
            } => self.call(&tool, arguments, signed),
            Request::Approvals => Ok(Reply::Approvals {
                pending: json_value(&self.approvals().pending()?)?,
            }),
            Request::Decide {
                id,
                approve,
                reason,
                signed,
            } => self.decide(&id, approve, reason, signed),
            Request::Mcp { .. } => bail!("an MCP session needs a running node (`vigil serve`)"),
        }
    }

    /// The approval queue: the running node's (whose held calls wait on
    /// it), or the home's directory.
    fn approvals(&self) -> ApprovalQueue {
        match &self.live {
            Some(live) => live.approvals(),
            None => ApprovalQueue::new(self.home.approvals_dir()),
        }
    }

    /// Answers held call `id`: a signed decision must come from a trusted
    /// operator key and be about this very call; an unsigned one counts
    /// only for calls in `client` mode. The decision is recorded
    /// (`approval.decided`, with the signed statement) before the call
    /// learns it; a refused one is recorded as `approval.refused`.
    fn decide(
        &self,
        id: &str,
        approve: bool,
        reason: String,
        signed: Option<SignedStatement>,
    ) -> anyhow::Result<Reply> {
        let queue = self.approvals();
        let request = queue.request(id).map_err(|e| anyhow!("{e}"))?;
        let answer = if approve {
            Answer::Approve
        } else {
            Answer::Deny
        };
        let arguments_sha256 = crate::mcp::pipeline::digest(&request.arguments);
        let mut details = json!({
            "approval_id": id,
            "agent": request.agent,
            "tool": request.tool,
            "arguments_sha256": arguments_sha256,
            "answer": answer,
            "reason": reason,
            "mode": request.mode,
        });
        let by = match self.check_decision(
            &request,
            answer,
            &reason,
            signed.as_ref(),
            &arguments_sha256,
        ) {
            Ok((by, key_id)) => {
                if let (Some(signed), Some(map)) = (&signed, details.as_object_mut()) {
                    map.insert("key_id".into(), json!(key_id));
                    map.insert("statement".into(), json!(signed.statement));
                    map.insert("signature".into(), json!(signed.signature));
                    map.insert("key".into(), json!(signed.key));
                }
                by
            }
            Err(refusal) => {
                if let Some(map) = details.as_object_mut() {
                    map.insert("refusal".into(), json!(refusal));
                }
                let actor = signed
                    .as_ref()
                    .and_then(|s| keyfile::parse_public_key_line(&s.key).ok())
                    .map_or_else(
                        || "operator:unsigned".to_string(),
                        |(k, _)| format!("operator:key-{}", k.key_id()),
                    );
                let event = AuditEvent::new(
                    EventKind::ApprovalRefused,
                    actor,
                    format!("tool:{}", request.tool),
                    Verdict::Deny,
                )
                .details(details);
                let index = self
                    .auditor
                    .record(event)
                    .context("recording a refused approval decision")?;
                bail!("{refusal} (refusal recorded as ledger entry {index}); the call still waits");
            }
        };
        let verdict = if approve {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        let event = AuditEvent::new(
            EventKind::ApprovalDecided,
            by.clone(),
            format!("tool:{}", request.tool),
            verdict,
        )
        .details(details);
        let entry = self
            .auditor
            .record(event)
            .context("recording the decision in the audit ledger; it does not take effect")?;
        let decision = crate::policy::Decision {
            answer,
            by,
            reason,
            entry: Some(entry),
        };
        let request = queue.decide(id, &decision).map_err(|e| anyhow!("{e}"))?;
        Ok(Reply::Decided {
            tool: request.tool,
            agent: request.agent,
        })
    }

    /// Who decided (`operator:NAME` or `operator:unsigned`) and the
    /// signing key's id, or why the decision does not count.
    fn check_decision(
        &self,
        request: &crate::policy::ApprovalRequest,
        answer: Answer,
        reason: &str,
        signed: Option<&SignedStatement>,
        arguments_sha256: &str,
    ) -> Result<(String, Option<String>), String> {
        let Some(signed) = signed else {
            return match request.mode {
                ApprovalMode::Client => Ok(("operator:unsigned".into(), None)),
                ApprovalMode::Operator => Err(format!(
                    "the call of `{}` needs a decision signed with a trusted operator key \
                     ([approvals] mode = \"operator\"): run `vigil approve {} --key OPERATOR.key` \
                     (or `vigil deny ... --key`)",
                    request.tool, request.id
                )),
            };
        };
        let (statement, key) = signed.open().map_err(|e| e.to_string())?;
        let expected = (
            request.id.as_str(),
            request.agent.as_str(),
            request.tool.as_str(),
            arguments_sha256,
            if answer == Answer::Approve {
                "approve"
            } else {
                "deny"
            },
            reason,
        );
        let said = (
            statement.approval_id.as_str(),
            statement.agent.as_str(),
            statement.tool.as_str(),
            statement.arguments_sha256.as_str(),
            statement.answer.as_str(),
            statement.reason.as_str(),
        );
        if said != expected {
            return Err("the signed statement is not about this call and answer".into());
        }
        let trust = self.trust_store().map_err(|e| e.to_string())?;
        let operator = trust
            .active_operator(&key)
            .map_err(|e| format!("the decision's key is not a trusted operator: {e}"))?;
        Ok((
            format!("operator:{}", operator.name),
            Some(operator.key_id.clone()),
        ))
    }

    /// Records one gatekeeper or trust decision, before it takes effect.
    fn record(&self, record: &AuditRecord) -> anyhow::Result<u64> {
        self.auditor
            .record(record.event("operator"))
            .context("recording the decision in the audit ledger; it does not take effect")
    }

    fn append(&self, events: Vec<ExternalEvent>) -> anyhow::Result<Reply> {
        let mut batch = Vec::with_capacity(events.len());
        for (n, e) in events.into_iter().enumerate() {
            if !e.details.is_object() {
                bail!(
                    "event {}: details must be a JSON object, like {{\"ticket\": 42}}",
                    n + 1
                );
            }
            let kind = EventKind::external(&e.kind).with_context(|| format!("event {}", n + 1))?;
            let mut details = e.details;
            if let Some(map) = details.as_object_mut() {
                if map.contains_key(EventKind::EXTERNAL_MARK) {
                    bail!(
                        "event {}: details may not carry `{}`: the node sets it to mark events from other systems",
                        n + 1,
                        EventKind::EXTERNAL_MARK
                    );
                }
                map.insert(EventKind::EXTERNAL_MARK.into(), json!(true));
            }
            let mut event =
                AuditEvent::new(kind, e.actor, e.subject, Verdict::External(e.decision))
                    .details(details);
            if let Some(p) = e.payload_b64 {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(p)
                    .with_context(|| format!("event {}: payload is not base64", n + 1))?;
                event = event.payload(bytes);
            }
            batch.push(event);
        }
        let range = self.auditor.record_batch(batch)?;
        Ok(Reply::Appended {
            indices: range.collect(),
        })
    }

    fn entries(&self, from: u64, limit: u64, wait_ms: u64) -> anyhow::Result<Reply> {
        let ledger = self.auditor.ledger();
        // Only a running node waits: a command holding the home itself
        // would keep the node from starting meanwhile.
        if wait_ms > 0 && self.live.is_some() && ledger.size() <= from {
            self.auditor
                .wait_for_growth(from, Duration::from_millis(wait_ms.min(30_000)));
        }
        let size = ledger.size();
        let to = from.saturating_add(limit).min(size);
        let mut entries = Vec::new();
        for i in from..to {
            let e = ledger
                .entry(i)?
                .with_context(|| format!("entry {i} is missing; run `vigil audit verify`"))?;
            entries.push(entry_view(&e));
        }
        Ok(Reply::Entries { entries, size })
    }

    fn export(
        &self,
        out: &Path,
        from: u64,
        to: Option<u64>,
        no_payloads: bool,
        emit: &mut dyn FnMut(Event) -> bool,
    ) -> anyhow::Result<Reply> {
        let ledger = self.auditor.ledger();
        // Make sure a signed checkpoint covers the requested end.
        let want_to = to.map_or(ledger.size(), |t| t.saturating_add(1).min(ledger.size()));
        let covered = ledger
            .checkpoint_notes()?
            .iter()
            .any(|(s, _)| *s >= want_to);
        if !covered {
            self.auditor.checkpoint()?;
        }
        let public = keyfile::read_public_key(&self.home.node_pub_path())?;
        let file =
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        let opts = ExportOptions {
            from,
            to: Some(want_to),
            no_payloads,
        };
        let mut last = std::time::Instant::now();
        let summary = export(
            ledger,
            &public,
            std::io::BufWriter::with_capacity(1 << 20, file),
            &opts,
            &mut |done, total| {
                if done == total || last.elapsed() >= Duration::from_millis(100) {
                    last = std::time::Instant::now();
                    emit(Event::Progress { done, total });
                }
            },
        )?;
        Ok(Reply::Exported {
            from: summary.from,
            to: summary.to,
            checkpoints: summary.checkpoints,
            payloads: summary.payloads,
            bytes: summary.bytes,
        })
    }

    fn verify(
        &self,
        key: Option<&str>,
        emit: &mut dyn FnMut(Event) -> bool,
    ) -> anyhow::Result<Reply> {
        let key = match key {
            Some(line) => keyfile::parse_public_key_line(line).map(|(k, _)| k),
            None => keyfile::read_public_key(&self.home.node_pub_path()),
        };
        let key = match key {
            Ok(k) => k,
            Err(e) => {
                let message = format!("cannot use the key: {e}");
                return Ok(Reply::Verified {
                    code: 2,
                    text: format!("error: {message}"),
                    warning: None,
                    json: serde_json::json!({ "valid": false, "error": message }),
                });
            }
        };
        let mut progress = |done, total| {
            emit(Event::Progress { done, total });
        };
        Ok(
            match verify_ledger_progress(self.auditor.ledger(), &key, &mut progress) {
                Ok(report) => {
                    let warning = (report.uncovered > 0).then(|| {
                    format!(
                        "warning: the last {} entries ({}..{}) are not yet covered by a signed checkpoint \
                         (recorded since the last one; this is not tampering); sign one with `vigil audit checkpoint`",
                        report.uncovered,
                        report.to - report.uncovered,
                        report.to - 1
                    )
                });
                    Reply::Verified {
                        code: 0,
                        json: serde_json::json!({
                            "valid": true,
                            "ledger": report.to_json(),
                            "warning": warning,
                        }),
                        warning,
                        text: report.to_string(),
                    }
                }
                Err(VerifyError::Failed(f)) => Reply::Verified {
                    code: 1,
                    text: format!("INVALID: {f}"),
                    warning: None,
                    json: f.to_json(),
                },
                Err(e) => Reply::Verified {
                    code: 2,
                    text: format!("error: {e}"),
                    warning: None,
                    json: serde_json::json!({ "valid": false, "error": e.to_string() }),
                },
            },
        )
    }

    fn prove(&self, index: u64) -> anyhow::Result<Reply> {
        let ledger = self.auditor.ledger();
        if index >= ledger.size() {
            bail!(
                "entry {index} does not exist (the ledger has {} entries)",
                ledger.size()
            );
        }
        if ledger.checkpoint_covering(index)?.is_none() {
            self.auditor.checkpoint()?;
        }
        Ok(Reply::Proof {
            text: EntryProof::build(ledger, index)?.to_text(),
        })
    }

    fn install(
        &self,
        source: &str,
        len: u64,
        package_b64: &str,
        options: &AdmitOptions<'_>,
    ) -> anyhow::Result<Reply> {
        let _changing = self.lock_changes();
        let max = self.config.packages.max_package_bytes;
        let trust = self.trust_store()?;
        let mut store = PackageStore::open(&self.home)?;
        let carried = !package_b64.is_empty() || len == 0;
        let (decision, bytes) = if len > max || !carried {
            let max = if carried {
                max
            } else {
                max.min(INSTALL_CARRY_BYTES)
            };
            let reason = Refusal::Format(FormatError::TooLarge { len, max });
            let refused = Refused {
                package: None,
                reason,
            };
            (Decision::Refused(Box::new(refused)), Vec::new())
        } else {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(package_b64)
                .context("the package bytes are not base64")?;
            (store.decide(&trust, max, &bytes, options), bytes)
        };
        // Recorded before it is acted on: a decision that cannot be
        // recorded does not take effect.
        self.record(&decision.audit_record(Occasion::Install, source))?;
        if let Decision::Admitted(a) = &decision {
            let changed = store.store_admitted(&bytes, a, now())?;
            if let (true, Some(live)) = (changed, &self.live) {
                live.tools_changed()?;
            }
        }
        Ok(match decision {
            Decision::Admitted(a) => {
                let how = match &a.version_check {
                    VersionCheck::AlreadyAdmitted => {
                        " (already admitted and current; nothing changed)".to_string()
                    }
                    VersionCheck::Downgrade { from } => {
                        format!(" (downgrade from {from}, allowed with --allow-downgrade)")
                    }
                    _ => String::new(),
                };
                let mut lines = vec![format!(
                    "admitted {} {} (hash {}, publisher {}){how}",
                    a.package().name,
                    a.package().version,
                    a.package().hash,
                    a.package().publisher
                )];
                for t in &a.manifest().tools {
                    lines.push(format!("  tool {} [{}]", t.name, t.sensitivity.as_str()));
                }
                for f in &a.allowed_findings {
                    lines.push(format!("  allowed finding {} ({:?})", f.id, f.evidence));
                }
                Reply::Installed {
                    admitted: true,
                    package: a.package().label(),
                    tools: a.manifest().tools.iter().map(|t| t.name.clone()).collect(),
                    reason: None,
                    lines,
                }
            }
            Decision::Refused(r) => Reply::Installed {
                admitted: false,
                package: r
                    .package
                    .as_ref()
                    .map_or_else(|| source.to_string(), |p| p.label()),
                tools: Vec::new(),
                reason: Some(r.reason.to_string()),
                lines: vec![format!("refused {source}: {}", r.reason)],
            },
        })
    }

    /// Withdraws the current version of `name`: recorded first (a removal
    /// that cannot be recorded is not made), then no longer current in the
    /// history (which keeps it), then no longer served.
    /// Rotates the node key (`vigil key rotate`): the new secret key is
    /// sealed with the passphrase of `[node] passphrase_env`, as the old one.
    fn rotate_key(&self) -> anyhow::Result<Reply> {
        let _one_at_a_time = self.lock_changes();
        let pass = super::passphrase::from_env(self.config.node.passphrase_env.as_deref())?;
        let rotated = crate::node::rotation::rotate(
            &self.home,
            &self.auditor,
            pass.as_deref().map(|p| p.as_slice()),
            "operator",
        )?;
        let h = &rotated.rotation.handover;
        let (checkpoint, checkpoint_error) = match &rotated.rotation.checkpoint {
            Ok(cp) => (Some(cp.note.clone()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(Reply::KeyRotated {
            index: h.index,
            old: h.old.fingerprint(),
            new: h.new.fingerprint(),
            checkpoint,
            checkpoint_error,
            retired: rotated.retired,
        })
    }

    fn uninstall(&self, name: &str, reason: &str) -> anyhow::Result<Reply> {
        let _changing = self.lock_changes();
        let mut store = PackageStore::open(&self.home)?;
        let Some(current) = store.history().current(name).cloned() else {
            let hint = if store.history().admitted.iter().any(|r| r.name == name) {
                "it was uninstalled before"
            } else {
                "this node never admitted it"
            };
            bail!("no version of `{name}` is installed ({hint}; see `vigil tools`)");
        };
        // The tools as the stored copy declares them, when it still reads.
        let tools: Vec<String> = std::fs::read(store.package_path(&current.hash))
            .ok()
            .and_then(|bytes| {
                let file = PackageFile::parse(&bytes, u64::MAX).ok()?;
                let manifest = crate::package::Manifest::parse(file.manifest).ok()?;
                Some(manifest.tools.into_iter().map(|t| t.name).collect())
            })
            .unwrap_or_default();
        let recorded = self.record(&record::removal(&current, &tools, reason))?;
        store.withdraw(name)?;
        if let Some(live) = &self.live {
            live.tools_changed()?;
        }
        Ok(Reply::Uninstalled {
            package: format!("{}@{}", current.name, current.version),
            tools,
            recorded,
        })
    }

    /// The trust store, checked against the ledger (a disagreeing
    /// `trust.toml` is refused and the refusal recorded).
    fn trust_store(&self) -> anyhow::Result<TrustStore> {
        Ok(trusted::load_checked(&self.home, &self.auditor)?)
    }

    fn trust(&self, request: TrustRequest) -> anyhow::Result<Reply> {
        let _changing = self.lock_changes();
        let path = self.home.trust_path();
        let (store, change) = if request == TrustRequest::Restore {
            let (store, differences) = trusted::restoration(&self.home, &self.auditor)?;
            if differences.is_empty() {
                bail!("trust.toml already says what the ledger records; nothing to restore");
            }
            (store, TrustChange::StoreRestored { differences })
        } else {
            let mut store = self.trust_store()?;
            let change = apply_trust(&mut store, &request)?;
            (store, change)
        };
        // Recorded before it takes effect: an unrecorded change is not made.
        self.record(&change.audit_record())?;
        file::save(&path, &store)?;
        let mut closed_links = 0;
        if let Some(live) = &self.live {
            live.trust_changed(store);
            match &change {
                TrustChange::PeerRevoked { key_id, reason, .. } => {
                    closed_links = live.peer_revoked(key_id, reason);
                }
                TrustChange::PublisherAdded { .. }
                | TrustChange::PublisherRevoked { .. }
                | TrustChange::StoreRestored { .. } => {
                    live.tools_changed().context(
                        "the change is recorded and saved, but the running node could not reload its tools; restart it",
                    )?;
                }
                TrustChange::PeerAdded { .. }
                | TrustChange::OperatorAdded { .. }
                | TrustChange::OperatorRevoked { .. } => {}
            }
        }
        Ok(Reply::TrustChanged {
            change: json_value(&change)?,
            closed_links,
        })
    }

    fn tools(&self) -> anyhow::Result<Reply> {
        #[derive(Serialize)]
        struct ToolRow<'a> {
            tool: &'a str,
            package: &'a str,
            version: &'a str,
            publisher: &'a str,
            hash: &'a str,
            sensitivity: &'static str,
            description: &'a str,
        }
        let trust = self.trust_store()?;
        let store = PackageStore::open(&self.home)?;
        let checks = store.verify_stored(&trust, self.config.packages.max_package_bytes);
        let mut rows = Vec::new();
        let mut refused = Vec::new();
        for check in &checks {
            match &check.decision {
                Decision::Admitted(a) => {
                    for t in &a.manifest().tools {
                        rows.push(ToolRow {
                            tool: &t.name,
                            package: &a.package().name,
                            version: &a.package().version,
                            publisher: &a.package().publisher,
                            hash: &a.package().hash,
                            sensitivity: t.sensitivity.as_str(),
                            description: &t.description,
                        });
                    }
                }
                Decision::Refused(r) => {
                    self.record(
                        &check
                            .decision
                            .audit_record(Occasion::Startup, &check.path.display().to_string()),
                    )?;
                    refused.push(format!(
                        "refused stored package {}@{} ({}): {}",
                        check.record.name,
                        check.record.version,
                        check.path.display(),
                        r.reason
                    ));
                }
            }
        }
        Ok(Reply::Tools {
            rows: json_value(&rows)?,
            refused,
        })
    }

    /// Runs `vigil call` through the same pipeline as MCP calls: schema,
    /// limits, privacy filter and one entry of the same layout, with the
    /// operator as actor (`operator:NAME` for a call signed with a trusted
    /// operator key, which also approves a `high` tool; else
    /// `operator:unsigned`).
    fn call(
        &self,
        tool: &str,
        arguments: Value,
        signed: Option<SignedStatement>,
    ) -> anyhow::Result<Reply> {
        let caller = match &signed {
            None => Caller::Operator {
                actor: "operator:unsigned".into(),
                signed: false,
            },
            Some(signed) => match self.check_call_signature(tool, &arguments, signed) {
                Ok(name) => Caller::Operator {
                    actor: format!("operator:{name}"),
                    signed: true,
                },
                Err(why) => {
                    let actor = keyfile::parse_public_key_line(&signed.key).map_or_else(
                        |_| "operator:unsigned".to_string(),
                        |(k, _)| format!("operator:key-{}", k.key_id()),
                    );
                    let event = AuditEvent::new(
                        EventKind::ToolDenied,
                        actor,
                        format!("tool:{tool}"),
                        Verdict::Deny,
                    )
                    .details(json!({
                        "tool": tool,
                        "code": "operator-unverified",
                        "reason": why,
                        "arguments_sha256": crate::mcp::pipeline::digest(&arguments),
                    }));
                    let index = self
                        .auditor
                        .record(event)
                        .context("recording a refused operator call")?;
                    bail!("{why} (refusal recorded as ledger entry {index})");
                }
            },
        };
        let reply = match &self.live {
            Some(live) => live.call(&caller, tool, arguments),
            None => {
                let trust = self.trust_store()?;
                let sandbox_config = SandboxConfig::new(self.home.cache_dir().join("wasm"));
                let sandbox = Sandbox::new(&sandbox_config)?;
                let (catalog, _skipped) = Catalog::load(&self.home, &self.config, &sandbox, &trust)
                    .context("loading the admitted tools")?;
                let pipeline = Pipeline::new(
                    catalog,
                    &self.config,
                    |v| std::env::var(v).ok(),
                    ApprovalQueue::new(self.home.approvals_dir()),
                    self.auditor.clone(),
                    1,
                );
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(pipeline.call_as(&caller, tool, arguments, &QueueOnly))
            }
        };
        let index = reply.ledger_index.context(
            "the call could not be recorded in the audit ledger; its result is withheld",
        )?;
        let result = match &reply.result {
            Ok(value) => json!({ "status": "ok", "value": value }),
            Err(refusal) => json!({ "status": refusal.code(), "message": refusal.to_string() }),
        };
        Ok(Reply::Called {
            outcome: json!({
                "tool": tool,
                "result": result,
                "report": reply.capabilities,
                "redactions": reply.redactions,
            }),
            index,
        })
    }

    /// The trusted operator who signed this call request, or why not.
    fn check_call_signature(
        &self,
        tool: &str,
        arguments: &Value,
        signed: &SignedStatement,
    ) -> Result<String, String> {
        let key = signed
            .verify(vigil_crypto::context::OPERATOR_CALL)
            .map_err(|e| format!("the signed call request: {e}"))?;
        let statement: CallStatement = serde_json::from_str(&signed.statement)
            .map_err(|e| format!("the signed call request is not valid: {e}"))?;
        if statement.tool != tool
            || statement.arguments_sha256 != crate::mcp::pipeline::digest(arguments)
        {
            return Err("the signed call request is for another tool or other arguments".into());
        }
        if now().abs_diff(statement.at) > CALL_SIGNATURE_WINDOW_SECS {
            return Err(format!(
                "the signed call request was made at {} (unix), more than {CALL_SIGNATURE_WINDOW_SECS} s from now",
                statement.at
            ));
        }
        let trust = self.trust_store().map_err(|e| e.to_string())?;
        let operator = trust
            .active_operator(&key)
            .map_err(|e| format!("the call's key is not a trusted operator: {e}"))?;
        Ok(operator.name.clone())
    }
}

/// How far from the node's clock a signed `vigil call` may be made.
const CALL_SIGNATURE_WINDOW_SECS: u64 = 300;

/// What an operator signs to call a tool (`vigil call --key`; context
/// `vigil/operator-call/v1`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallStatement {
    pub v: u32,
    pub tool: String,
    /// Hex SHA-256 of the arguments' JSON text.
    pub arguments_sha256: String,
    /// Unix seconds when signed.
    pub at: u64,
}

impl CallStatement {
    /// The statement for calling `tool` with `arguments` now.
    pub fn new(tool: &str, arguments: &Value) -> Self {
        Self {
            v: 1,
            tool: tool.to_string(),
            arguments_sha256: crate::mcp::pipeline::digest(arguments),
            at: now(),
        }
    }
}

/// Applies one requested change to the trust store (nothing is saved).
fn apply_trust(store: &mut TrustStore, request: &TrustRequest) -> anyhow::Result<TrustChange> {
    let key = |line: &str| {
        keyfile::parse_public_key_line(line)
            .map(|(k, _)| k)
            .context("not a public key line")
    };
    Ok(match request {
        TrustRequest::AddPublisher {
            key: k,
            name,
            scopes,
        } => store.add_publisher(&key(k)?, name, scopes, now())?,
        TrustRequest::RevokePublisher { key_id, reason } => {
            store.revoke_publisher(key_id, reason, now())?
        }
        TrustRequest::AddPeer {
            key: k,
            name,
            targets,
        } => store.add_peer(&key(k)?, name, targets, now())?,
        TrustRequest::RevokePeer { key_id, reason } => store.revoke_peer(key_id, reason, now())?,
        TrustRequest::AddOperator { key: k, name } => store.add_operator(&key(k)?, name, now())?,
        TrustRequest::RevokeOperator { key_id, reason } => {
            store.revoke_operator(key_id, reason, now())?
        }
        TrustRequest::Restore => bail!("a restore is not a change to apply"),
    })
}

/// The largest package a control request carries.
const INSTALL_CARRY_BYTES: u64 = (MAX_LINE_BYTES as u64 / 4) * 3 - (1 << 20);

/// Reads a package file for [`Request::Install`]: its bytes as base64
/// unless it is larger than a control message can carry (the gatekeeper
/// then refuses it by its length alone).
pub fn install_request(
    file: &Path,
    allow_findings: Vec<String>,
    allow_downgrade: bool,
) -> anyhow::Result<Request> {
    let source = file.display().to_string();
    let len = std::fs::metadata(file)
        .with_context(|| format!("cannot read {source}"))?
        .len();
    let package_b64 = if len <= INSTALL_CARRY_BYTES {
        let bytes = std::fs::read(file).with_context(|| format!("cannot read {source}"))?;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    } else {
        String::new()
    };
    Ok(Request::Install {
        source,
        len,
        package_b64,
        allow_findings,
        allow_downgrade,
    })
}
