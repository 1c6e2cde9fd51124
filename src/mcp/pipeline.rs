//! The call pipeline: the ONE path every `tools/call` takes, whatever the
//! transport. In order: resolve the caller's agent -> tool admitted ->
//! allowed for this agent -> arguments match the input schema -> rate
//! limits -> human approval for `high` sensitivity (through the client's
//! MCP elicitation when it has it, else the approval queue) -> the sandbox
//! -> output schema (when declared) -> privacy filter -> one ledger entry ->
//! the reply. Every outcome, allowed or refused, is recorded here and only
//! here, as exactly one entry through the [`Auditor`].

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rmcp::{Peer, RoleServer};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::mcp::auth::AuthConfig;
use crate::mcp::catalog::{Catalog, CatalogTool};
use crate::mcp::guard::Guard;
use crate::mcp::in_flight::InFlight;
use crate::node::access::AgentAccess;
use crate::node::audit::{AuditEvent, Auditor, EventKind, Verdict};
use crate::node::config::Config;
use crate::node::metrics::{Metrics, NodeSources, UNKNOWN};
use crate::policy::grant::ToolScope;
use crate::policy::watch::Watch;
use crate::policy::{
    Agents, Answer, ApprovalMode, ApprovalQueue, ApprovalsConfig, Decision, RateLimits, Refusal,
};
use crate::privacy::{text_bytes, PiiKind, PrivacyConfig, Redactions, Redactor};
use crate::sandbox::{CallResult, CapabilityReport};

/// What asking the human at the agent's client gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Asked {
    /// The human answered: approved, or declined / dismissed the request.
    Answered(Decision),
    /// The client could not ask: it has no elicitation, its protocol
    /// version forbids server-to-client requests, or the request failed or
    /// went unanswered. The call then waits in the approval queue.
    Unavailable(String),
}

/// Asks a human about one call through the agent's client.
pub trait Approver: Send + Sync {
    /// Asks; [`Asked::Unavailable`] sends the call to the approval queue.
    fn ask(&self, agent: &str, tool: &str, arguments: &Value)
        -> impl Future<Output = Asked> + Send;
}

/// An approver for clients that cannot ask: every approval goes to the queue.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueOnly;

impl Approver for QueueOnly {
    async fn ask(&self, _: &str, _: &str, _: &Value) -> Asked {
        Asked::Unavailable("the client cannot ask its user".into())
    }
}

/// Who makes a call: an agent (MCP), or the node's operator (`vigil
/// call`), who is not subject to an agent's allow-list and rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An agent of `[[agents]]`, by name.
    Agent(String),
    /// An operator: `operator:NAME` when the call was signed with a
    /// trusted operator key (which also approves a `high` tool), else
    /// `operator:unsigned` (which cannot call a `high` tool).
    Operator { actor: String, signed: bool },
}

impl Caller {
    /// The ledger actor.
    pub fn actor(&self) -> String {
        match self {
            Self::Agent(name) => format!("agent:{name}"),
            Self::Operator { actor, .. } => actor.clone(),
        }
    }

    /// The name in logs and metrics labels.
    fn label(&self) -> &str {
        match self {
            Self::Agent(name) => name,
            Self::Operator { .. } => "operator",
        }
    }
}

/// The answer to one call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallReply {
    /// The (redacted) output, or why the call was refused or failed.
    pub result: Result<Value, Refusal>,
    /// True when the tool declares an output schema (the value is then
    /// returned as `structuredContent` too).
    pub structured: bool,
    /// What the privacy filter replaced.
    pub redactions: Redactions,
    /// Index of the call's ledger entry (None: recording failed).
    pub ledger_index: Option<u64>,
    /// What the tool used and was denied (None: it did not run).
    pub capabilities: Option<CapabilityReport>,
}

/// Everything a call needs, shared by all connections of a node.
pub struct Pipeline {
    /// The admitted tools; replaced whole when packages or trust change
    /// while the node runs (calls in flight keep the tool they started with).
    catalog: RwLock<Arc<Catalog>>,
    /// Connected MCP clients, told when the tool list changes.
    clients: Mutex<Vec<Peer<RoleServer>>>,
    agents: Agents,
    rates: RateLimits,
    approvals: ApprovalQueue,
    approval_timeout: Duration,
    /// Who may answer held calls, by tool and agent.
    approval_modes: ApprovalsConfig,
    auditor: Auditor,
    redactor: Arc<Redactor>,
    privacy: PrivacyConfig,
    /// Calls on blocking threads at once: in the sandbox or waiting for
    /// their ledger entry (twice the sandbox's slots, so that calls waiting
    /// for a group commit do not keep others out of the sandbox).
    call_slots: Arc<tokio::sync::Semaphore>,
    /// Counts every call (in [`Pipeline::call`]); scraped at `/metrics`.
    metrics: Arc<Metrics>,
    /// Suspensions, revocations and the behavioural watch.
    guard: Guard,
    /// `[auth]`: how HTTP callers are authenticated.
    auth: AuthConfig,
    /// `[node] name`.
    node_name: String,
    /// Approvals asked in-band (MCP 2026-07-28 `input_required`).
    inband: crate::mcp::inband::InBand,
    /// Calls in the sandbox, for a stopping node.
    in_flight: Arc<InFlight>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pipeline({} tools, {:?})",
            self.catalog().iter().count(),
            self.auditor
        )
    }
}

/// Hex SHA-256 of the canonical JSON text of `value`.
pub(crate) fn digest(value: &Value) -> String {
    hex::encode(Sha256::digest(value.to_string().as_bytes()))
}

/// A refusal decided before the tool ran (recorded as `tool.denied`).
struct Early {
    refusal: Refusal,
    approval: Option<Decision>,
}

impl From<Refusal> for Early {
    fn from(refusal: Refusal) -> Self {
        Self {
            refusal,
            approval: None,
        }
    }
}

impl Pipeline {
    /// A pipeline over `catalog` with the `[mcp]`, `[privacy]` and
    /// `[[agents]]` settings of `config`; bearer tokens given by env var are
    /// read through `env`. `approvals` is the queue directory;
    /// `sandbox_slots` is how many calls the sandbox runs at once.
    pub fn new(
        catalog: Catalog,
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
        approvals: ApprovalQueue,
        auditor: Auditor,
        sandbox_slots: usize,
    ) -> Self {
        let agents = Agents::new(&config.agents, env);
        let rates = RateLimits::new(
            config
                .agents
                .iter()
                .map(|a| (a.name.as_str(), a.calls_per_minute)),
            config
                .mcp
                .tool_calls_per_minute
                .iter()
                .map(|(t, n)| (t.as_str(), *n)),
        );
        let in_flight = Arc::new(InFlight::default());
        let metrics = Arc::new(Metrics::new(Some(NodeSources {
            auditor: auditor.clone(),
            approvals: approvals.clone(),
            in_flight: Arc::clone(&in_flight),
        })));
        // Config::parse validated every watch, so this does not fail.
        let watch = Watch::new(
            config
                .agents
                .iter()
                .filter_map(|a| a.watch.clone().map(|w| (a.name.clone(), w))),
        )
        .unwrap_or_default();
        let guard = Guard::new(
            Arc::new(AgentAccess::unsaved()),
            watch,
            auditor.clone(),
            Arc::clone(&metrics),
        );
        Self {
            guard,
            auth: config.auth.clone(),
            node_name: config.node.name.clone(),
            inband: crate::mcp::inband::InBand::new(Duration::from_secs(
                config.mcp.approval_timeout_seconds,
            )),
            in_flight,
            catalog: RwLock::new(Arc::new(catalog)),
            clients: Mutex::new(Vec::new()),
            agents,
            rates,
            approvals,
            approval_timeout: Duration::from_secs(config.mcp.approval_timeout_seconds),
            approval_modes: config.approvals.clone(),
            auditor,
            redactor: Arc::new(Redactor::new()),
            privacy: config.privacy.clone(),
            call_slots: Arc::new(tokio::sync::Semaphore::new(sandbox_slots.max(1) * 2)),
            metrics,
        }
    }

    /// Keeps suspensions and revocations in `access` (the node home's
    /// `agents.json`) instead of in memory only.
    pub fn with_access(mut self, access: Arc<AgentAccess>) -> Self {
        self.guard.set_access(access);
        self
    }

    /// Suspensions, revocations and the behavioural watch.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// `[auth]`.
    pub fn auth_config(&self) -> &AuthConfig {
        &self.auth
    }

    /// `[node] name`.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Approvals asked in-band (MCP 2026-07-28).
    pub fn inband(&self) -> &crate::mcp::inband::InBand {
        &self.inband
    }

    /// The node's metrics (calls counted here; ledger and approvals read
    /// when scraped).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The agents, to identify callers.
    pub fn agents(&self) -> &Agents {
        &self.agents
    }

    /// The tools `agent` may call (all admitted tools it is allowed and
    /// its token's `scope` covers).
    pub fn tools_for(&self, agent: &str, scope: &ToolScope) -> Vec<Arc<CatalogTool>> {
        match self.agents.by_name(agent) {
            Some(a) => self
                .catalog()
                .iter()
                .filter(|t| a.may_call(&t.spec.name) && scope.allows(&t.spec.name))
                .cloned()
                .collect(),
            None => Vec::new(),
        }
    }

    /// Names of every admitted tool.
    pub fn tool_names(&self) -> Vec<String> {
        self.catalog().iter().map(|t| t.spec.name.clone()).collect()
    }

    /// The admitted tools now.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the admitted tools (a package was installed, or trust in a
    /// publisher changed); calls already admitted finish with their tool.
    pub fn replace_catalog(&self, catalog: Catalog) {
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
    }

    /// Remembers a connected MCP client, to tell it when tools change.
    pub fn add_client(&self, peer: Peer<RoleServer>) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.retain(|p| !p.is_transport_closed());
        clients.push(peer);
    }

    /// Sends `notifications/tools/list_changed` to every connected client;
    /// returns how many were told.
    pub async fn notify_tools_changed(&self) -> usize {
        let peers: Vec<Peer<RoleServer>> = {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            clients.retain(|p| !p.is_transport_closed());
            clients.clone()
        };
        let mut told = 0;
        for peer in peers {
            if peer.notify_tool_list_changed().await.is_ok() {
                told += 1;
            }
        }
        told
    }

    /// How long a call waits for a human's approval.
    pub fn approval_timeout(&self) -> Duration {
        self.approval_timeout
    }

    /// The auditor the pipeline records through.
    pub fn auditor(&self) -> &Auditor {
        &self.auditor
    }

    /// Runs one call of `tool` by `agent` with `arguments` through every
    /// step, records exactly one ledger entry for it and logs it (without
    /// its arguments or output: [`super::call_log`]).
    pub async fn call(
        &self,
        agent: &str,
        tool: &str,
        arguments: Value,
        approver: &impl Approver,
    ) -> CallReply {
        self.call_scoped(agent, &ToolScope::All, tool, arguments, approver)
            .await
    }

    /// [`Pipeline::call`] for an agent whose token covers `scope` only.
    pub async fn call_scoped(
        &self,
        agent: &str,
        scope: &ToolScope,
        tool: &str,
        arguments: Value,
        approver: &impl Approver,
    ) -> CallReply {
        self.call_with(
            &Caller::Agent(agent.to_string()),
            scope,
            tool,
            arguments,
            approver,
        )
        .await
    }

    /// [`Pipeline::call`] for any caller (an operator's `vigil call`).
    pub async fn call_as(
        &self,
        caller: &Caller,
        tool: &str,
        arguments: Value,
        approver: &impl Approver,
    ) -> CallReply {
        self.call_with(caller, &ToolScope::All, tool, arguments, approver)
            .await
    }

    async fn call_with(
        &self,
        caller: &Caller,
        scope: &ToolScope,
        tool: &str,
        arguments: Value,
        approver: &impl Approver,
    ) -> CallReply {
        let started = Instant::now();
        let actor = caller.actor();
        let watched = match caller {
            Caller::Agent(agent) if self.agents.by_name(agent).is_some() => Some(agent.as_str()),
            _ => None,
        };
        if let Some(agent) = watched {
            self.guard.call_started(agent, tool).await;
        }
        let mut reply = match self.admit(caller, scope, tool, &arguments, approver).await {
            Err(early) => {
                let (refusal, ledger_index) =
                    self.record_refusal(&actor, tool, arguments, early).await;
                CallReply {
                    result: Err(refusal),
                    structured: false,
                    redactions: Redactions::default(),
                    ledger_index,
                    capabilities: None,
                }
            }
            Ok((entry, approval)) => self.run(&actor, &entry, arguments, approval).await,
        };
        if let Some(agent) = watched {
            self.guard
                .call_finished(agent, tool, reply.result.as_ref().map_err(|_| ()))
                .await;
            // Suspended while the call ran: the output is withheld (the
            // run itself is on record).
            if reply.result.is_ok() {
                if let Some(suspension) = self.guard.access().suspension(agent) {
                    reply.result = Err(Refusal::AgentSuspended {
                        agent: agent.to_string(),
                        rule: suspension.rule,
                    });
                }
            }
        }
        let label = caller.label();
        super::call_log::log_call(label, tool, &reply);
        // Label values only from names the node knows (see `metrics`).
        let agent = match caller {
            Caller::Agent(name) => self.agents.by_name(name).map_or(UNKNOWN, |_| label),
            Caller::Operator { .. } => label,
        };
        let tool = self.catalog().get(tool).map_or(UNKNOWN, |_| tool);
        self.metrics
            .count_call(agent, tool, &reply.result, started.elapsed());
        reply
    }

    /// The checks before the sandbox; returns the tool and any approval.
    async fn admit(
        &self,
        caller: &Caller,
        scope: &ToolScope,
        tool: &str,
        arguments: &Value,
        approver: &impl Approver,
    ) -> Result<(Arc<CatalogTool>, Option<Decision>), Early> {
        let agent = match caller {
            Caller::Agent(agent) => Some(agent.as_str()),
            Caller::Operator { .. } => None,
        };
        let config = match agent {
            Some(agent) => Some(self.agents.by_name(agent).ok_or_else(|| {
                Refusal::UnknownCaller(format!(
                    "agent `{agent}` is not in [[agents]] of vigil.toml; add it with the tools it may call"
                ))
            })?),
            None => None,
        };
        if let Some(agent) = agent {
            self.refuse_if_suspended(agent)?;
        }
        let entry = self
            .catalog()
            .get(tool)
            .cloned()
            .ok_or_else(|| Refusal::UnknownTool {
                tool: tool.to_string(),
            })?;
        if let (Some(agent), Some(config)) = (agent, config) {
            if !config.may_call(tool) {
                return Err(Refusal::ToolNotAllowed {
                    agent: agent.to_string(),
                    tool: tool.to_string(),
                }
                .into());
            }
            if !scope.allows(tool) {
                return Err(Refusal::OutOfScope {
                    agent: agent.to_string(),
                    tool: tool.to_string(),
                    scopes: scope.scopes(),
                }
                .into());
            }
        }
        let bytes = text_bytes(arguments);
        if bytes > self.privacy.max_scan_bytes {
            return Err(Refusal::TooLargeToScan {
                tool: tool.to_string(),
                what: "arguments",
                bytes,
                limit: self.privacy.max_scan_bytes,
            }
            .into());
        }
        let problems = entry.input.problems(arguments);
        if !problems.is_empty() {
            return Err(Refusal::InvalidArguments {
                tool: tool.to_string(),
                problems,
            }
            .into());
        }
        if let Some(agent) = agent {
            self.rates.check(agent, tool)?;
        }
        if !entry.needs_approval() {
            return Ok((entry, None));
        }
        let decision = match caller {
            Caller::Agent(agent) => self.approve(agent, tool, arguments, approver).await?,
            // The operator's signature on the call is the approval.
            Caller::Operator {
                actor,
                signed: true,
            } => Decision {
                answer: Answer::Approve,
                by: actor.clone(),
                reason: "called by the operator with a signed request".into(),
                entry: None,
            },
            Caller::Operator { signed: false, .. } => {
                return Err(Refusal::ApprovalUnavailable {
                    tool: tool.to_string(),
                    message: "a `high` tool is called by an operator only with a signed \
                              request: `vigil call TOOL --key OPERATOR.key`"
                        .into(),
                }
                .into())
            }
        };
        if decision.answer == Answer::Approve {
            // Suspended while the call waited for its approval.
            if let Caller::Agent(agent) = caller {
                if let Err(refusal) = self.refuse_if_suspended(agent) {
                    return Err(Early {
                        refusal,
                        approval: Some(decision),
                    });
                }
            }
            return Ok((entry, Some(decision)));
        }
        let refusal = if decision.by == "node:timeout" {
            Refusal::ApprovalTimedOut {
                tool: tool.to_string(),
                waited: self.approval_timeout,
            }
        } else {
            Refusal::ApprovalDenied {
                tool: tool.to_string(),
                by: decision.by.clone(),
                reason: decision.reason.clone(),
            }
        };
        Err(Early {
            refusal,
            approval: Some(decision),
        })
    }

    fn refuse_if_suspended(&self, agent: &str) -> Result<(), Refusal> {
        match self.guard.access().suspension(agent) {
            Some(suspension) => Err(Refusal::AgentSuspended {
                agent: agent.to_string(),
                rule: suspension.rule,
            }),
            None => Ok(()),
        }
    }

    /// True when a call of `tool` by `agent` would wait for an approval a
    /// human at the agent's client may give (`client` mode): the tool is
    /// admitted, `high`, and the agent may call it.
    pub fn asks_client(&self, agent: &str, tool: &str) -> bool {
        let Some(entry) = self.catalog().get(tool).cloned() else {
            return false;
        };
        entry.needs_approval()
            && self.agents.by_name(agent).is_some_and(|a| a.may_call(tool))
            && self.approval_modes.mode_for(agent, tool) == ApprovalMode::Client
    }

    /// Asks the client's human (in `client` mode), or holds the call in
    /// the queue for an operator; a held call costs no thread.
    async fn approve(
        &self,
        agent: &str,
        tool: &str,
        arguments: &Value,
        approver: &impl Approver,
    ) -> Result<Decision, Early> {
        let mode = self.approval_modes.mode_for(agent, tool);
        let why = match mode {
            ApprovalMode::Operator => "only a signed operator decision counts".to_string(),
            ApprovalMode::Client => match approver.ask(agent, tool, arguments).await {
                Asked::Answered(decision) => return Ok(decision),
                Asked::Unavailable(why) => why,
            },
        };
        let unavailable = |message: String| {
            Early::from(Refusal::ApprovalUnavailable {
                tool: tool.to_string(),
                message,
            })
        };
        let queue = self.approvals.clone();
        let (owned_agent, owned_tool, owned_args) =
            (agent.to_string(), tool.to_string(), arguments.clone());
        let timeout = self.approval_timeout;
        let mut held = tokio::task::spawn_blocking(move || {
            queue.submit(&owned_agent, &owned_tool, &owned_args, timeout, mode)
        })
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .map_err(|e| unavailable(e.to_string()))?;
        let id = held.request.id.clone();
        let how = match mode {
            ApprovalMode::Operator => format!("`vigil approve {id} --key OPERATOR.key` or `vigil deny {id} --key OPERATOR.key --reason ...`"),
            ApprovalMode::Client => format!("`vigil approve {id}` or `vigil deny {id} --reason ...`"),
        };
        eprintln!(
            "vigil: call of `{tool}` by agent `{agent}` is held for approval {id} ({why}): run {how}"
        );
        let decision = self.approvals.wait(&mut held, timeout).await;
        // The hold ends here (its files removed) whatever the answer.
        drop(held);
        decision.map_err(|e| unavailable(e.to_string()))
    }

    /// The approval queue of this node.
    pub fn approvals(&self) -> &ApprovalQueue {
        &self.approvals
    }

    /// For a stopping node (blocking): waits until every call in the
    /// sandbox has recorded its entry or `deadline` passes, then records a
    /// `tool.denied` entry (code `node-stopping`) for each call still
    /// running, whose own entry will never be written and whose output is
    /// withheld. Returns how many calls were given up.
    pub fn stop_calls(&self, deadline: Instant) -> Result<usize, crate::node::audit::AuditError> {
        let given_up = self.in_flight.give_up_at(deadline);
        for call in &given_up {
            tracing::warn!(
                agent = %call.actor,
                tool = %call.tool,
                "the node stopped while a call ran; recorded as given up"
            );
            let event = AuditEvent::new(
                EventKind::ToolDenied,
                &call.actor,
                format!("tool:{}", call.tool),
                Verdict::Deny,
            )
            .details(json!({
                "tool": call.tool,
                "code": "node-stopping",
                "reason": "the node stopped while the call ran in the sandbox; its output was withheld and it has no other entry",
                "started_ns": call.started_ns,
            }));
            self.auditor.record(event)?;
        }
        Ok(given_up.len())
    }

    /// Sandbox, output schema, privacy filter, then the durable ledger
    /// entry: one job on one blocking thread (holding a call slot), so a call
    /// costs a single hand-off to the blocking pool and back, and a caller
    /// that goes away mid-call does not stop its entry being recorded.
    async fn run(
        &self,
        actor: &str,
        entry: &CatalogTool,
        arguments: Value,
        approval: Option<Decision>,
    ) -> CallReply {
        let tool = entry.spec.name.clone();
        let work = Finish {
            actor: actor.to_string(),
            tool: tool.clone(),
            package: entry.package.clone(),
            output: entry.output.clone(),
            redactor: Arc::clone(&self.redactor),
            kinds: self.privacy.kinds_for(&tool),
            max_scan_bytes: self.privacy.max_scan_bytes,
            arguments,
            approval,
        };
        let loaded = Arc::clone(&entry.loaded);
        let auditor = self.auditor.clone();
        let _slot = self.call_slots.acquire().await;
        let ticket = self.in_flight.start(actor, &tool);
        let job = move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                loaded.call(&work.tool, &work.arguments)
            }))
            .unwrap_or_else(|panic| crashed(&work.tool, &panic_text(panic.as_ref())));
            let tool = work.tool.clone();
            let (mut reply, event) = work.finish(outcome);
            if !ticket.claim() {
                // The node stopped first and recorded that it gave the
                // call up: its output is withheld.
                reply.result = Err(Refusal::AuditUnavailable {
                    tool,
                    message: "the node stopped before the call finished".into(),
                });
                return reply;
            }
            match auditor.record(event) {
                Ok(i) => reply.ledger_index = Some(i),
                Err(e) => {
                    reply.result = Err(Refusal::AuditUnavailable {
                        tool,
                        message: e.to_string(),
                    })
                }
            }
            reply
        };
        match tokio::task::spawn_blocking(job).await {
            Ok(reply) => reply,
            // A panic after the sandbox (output checks, privacy filter,
            // recording; a sandbox panic is caught above): the call's entry
            // may not exist, so the result is withheld.
            Err(e) => CallReply {
                result: Err(Refusal::AuditUnavailable {
                    tool,
                    message: format!("the call's ledger entry was not recorded: {e}"),
                }),
                structured: false,
                redactions: Redactions::default(),
                ledger_index: None,
                capabilities: None,
            },
        }
    }

    /// Records the refusal of a call that did not run: the refusal text
    /// and the stored arguments are redacted and the entry recorded on one
    /// blocking thread (the privacy filter never runs on the async
    /// workers). Arguments over the scan cap are not stored, only their
    /// SHA-256. Returns the refusal the agent gets and the entry's index.
    async fn record_refusal(
        &self,
        actor: &str,
        tool: &str,
        arguments: Value,
        early: Early,
    ) -> (Refusal, Option<u64>) {
        let redactor = Arc::clone(&self.redactor);
        let kinds = self.privacy.kinds_for(tool);
        let limit = self.privacy.max_scan_bytes;
        let auditor = self.auditor.clone();
        let (actor, subject) = (actor.to_string(), format!("tool:{tool}"));
        let name = tool.to_string();
        let job = move || {
            let Early {
                mut refusal,
                approval,
            } = early;
            redact_refusal(&redactor, &mut refusal, &kinds);
            let details = json!({
                "tool": name,
                "code": refusal.code(),
                "reason": refusal.to_string(),
                "arguments_sha256": digest(&arguments),
                "approval": approval,
            });
            let mut args_stored = arguments;
            if text_bytes(&args_stored) > limit {
                args_stored = Value::Null;
            } else {
                redactor.redact_json(&mut args_stored, &kinds);
            }
            let event = AuditEvent::new(EventKind::ToolDenied, actor, subject, Verdict::Deny)
                .details(details)
                .payload(json!({ "arguments": args_stored }).to_string().into_bytes());
            let recorded = auditor.record(event).map_err(|e| e.to_string());
            (refusal, recorded)
        };
        let unrecorded = |message: String| {
            let refusal = Refusal::AuditUnavailable {
                tool: tool.to_string(),
                message,
            };
            (refusal, None)
        };
        match tokio::task::spawn_blocking(job).await {
            Ok((refusal, Ok(index))) => (refusal, Some(index)),
            Ok((_, Err(message))) => unrecorded(message),
            Err(e) => unrecorded(e.to_string()),
        }
    }
}

/// What follows the sandbox for one call: output check, privacy filter and
/// the ledger event to record.
struct Finish {
    /// The ledger actor (`agent:NAME`, `operator:NAME`).
    actor: String,
    tool: String,
    package: String,
    output: Option<Arc<crate::policy::SchemaCheck>>,
    redactor: Arc<Redactor>,
    kinds: BTreeSet<PiiKind>,
    max_scan_bytes: usize,
    arguments: Value,
    approval: Option<Decision>,
}

impl Finish {
    /// The reply (not yet recorded) and its ledger event.
    fn finish(self, outcome: crate::sandbox::CallOutcome) -> (CallReply, AuditEvent) {
        let Self {
            actor,
            tool,
            package,
            output,
            redactor,
            kinds,
            max_scan_bytes,
            arguments,
            approval,
        } = self;
        let mut redactions = Redactions::default();
        let mut result = match outcome.result {
            CallResult::Ok { value } => match &output {
                Some(check) => {
                    let problems = check.problems(&value);
                    if problems.is_empty() {
                        Ok(value)
                    } else {
                        Err(Refusal::InvalidOutput {
                            tool: tool.clone(),
                            problems,
                        })
                    }
                }
                None => Ok(value),
            }
            .and_then(|value| match text_bytes(&value) {
                bytes if bytes > max_scan_bytes => Err(Refusal::TooLargeToScan {
                    tool: tool.clone(),
                    what: "output",
                    bytes,
                    limit: max_scan_bytes,
                }),
                _ => Ok(value),
            }),
            CallResult::ToolFailed {
                exit_code, message, ..
            } => Err(Refusal::ToolFailed {
                tool: tool.clone(),
                message: format!("exit code {exit_code}: {message}"),
            }),
            CallResult::BadOutput { message }
            | CallResult::Crashed { message }
            | CallResult::NotRun { message }
            | CallResult::Stopped { message, .. } => Err(Refusal::ToolFailed {
                tool: tool.clone(),
                message,
            }),
        };
        match &mut result {
            Ok(value) => redactions = redactor.redact_json(value, &kinds),
            // Refusal messages may quote tool output: filter them too.
            Err(r) => redact_refusal(&redactor, r, &kinds),
        }
        let mut args_stored = arguments.clone();
        redactor.redact_json(&mut args_stored, &kinds);
        let status = match &result {
            Ok(_) => "ok".to_string(),
            Err(r) => r.code().to_string(),
        };
        let details = json!({
            "tool": tool,
            "package": package,
            "status": status,
            "error": result.as_ref().err().map(|r| r.to_string()),
            "arguments_sha256": digest(&arguments),
            "redactions": redactions,
            "approval": approval,
            "elapsed_us": outcome.elapsed_us,
            "capabilities": outcome.report,
        });
        let payload = json!({ "arguments": args_stored, "output": result.as_ref().ok() });
        let event = AuditEvent::new(
            EventKind::ToolCall,
            actor,
            format!("tool:{tool}"),
            Verdict::Allow,
        )
        .details(details)
        .payload(payload.to_string().into_bytes());
        let reply = CallReply {
            result,
            structured: output.is_some(),
            redactions,
            ledger_index: None,
            capabilities: Some(outcome.report),
        };
        (reply, event)
    }
}

/// The outcome of a call whose sandbox run panicked.
fn crashed(tool: &str, message: &str) -> crate::sandbox::CallOutcome {
    crate::sandbox::CallOutcome {
        tool: tool.to_string(),
        result: CallResult::Crashed {
            message: format!("the sandbox failed: {message}"),
        },
        report: Default::default(),
        stderr: String::new(),
        stderr_truncated: false,
        elapsed_us: 0,
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

fn redact_refusal(redactor: &Redactor, refusal: &mut Refusal, kinds: &BTreeSet<PiiKind>) {
    let fix = |s: &mut String| *s = redactor.redact_text(s, kinds).0;
    match refusal {
        Refusal::ToolFailed { message, .. } => fix(message),
        Refusal::InvalidOutput { problems, .. } | Refusal::InvalidArguments { problems, .. } => {
            problems.iter_mut().for_each(fix)
        }
        _ => {}
    }
}
