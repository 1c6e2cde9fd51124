//! The control protocol, sans I/O: the requests an operator's command sends
//! to the running node, the events the node streams back while it works,
//! the final reply, and the framing (one JSON object per line). Documented
//! in `docs/control.md`; [`PROTOCOL_VERSION`] is in every request.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The version of this protocol; a node refuses requests of another version.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest line either side accepts (a request carries a whole package
/// file, base64-encoded, so this is above 4/3 of the largest package).
pub const MAX_LINE_BYTES: usize = 128 << 20;

/// One request line: the version and the operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Must be [`PROTOCOL_VERSION`].
    pub v: u32,
    /// The operation.
    #[serde(flatten)]
    pub request: Request,
}

/// An event from another system for `vigil audit append`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalEvent {
    pub kind: String,
    pub actor: String,
    pub subject: String,
    pub decision: String,
    /// A JSON object.
    #[serde(default = "empty_object")]
    pub details: Value,
    /// The erasable payload, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_b64: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A change to the trust store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum TrustRequest {
    /// Trust a publisher key (its `.pub` line) for `scopes`.
    AddPublisher {
        key: String,
        name: String,
        scopes: Vec<String>,
    },
    /// Revoke a publisher key.
    RevokePublisher { key_id: String, reason: String },
    /// Trust a peer node key (its `.pub` line) for `targets`.
    AddPeer {
        key: String,
        name: String,
        targets: Vec<String>,
    },
    /// Revoke a peer key; its open links are closed.
    RevokePeer { key_id: String, reason: String },
    /// Trust an operator key (its `.pub` line) to sign approval decisions
    /// as `name`.
    AddOperator { key: String, name: String },
    /// Revoke an operator key.
    RevokeOperator { key_id: String, reason: String },
    /// Rewrite `trust.toml` from the trust changes in the ledger.
    Restore,
}

/// What an operator's command asks the node to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Record events from other systems, in order, in one group commit.
    AuditAppend { events: Vec<ExternalEvent> },
    /// Entries `from..` (at most `limit`); with `wait_ms`, waits that long
    /// for an entry at `from` to exist first (`tail --follow`).
    AuditEntries {
        from: u64,
        limit: u64,
        #[serde(default)]
        wait_ms: u64,
    },
    /// The number of entries.
    AuditSize,
    /// Sign a checkpoint now.
    AuditCheckpoint,
    /// Hand the log over to a new node key (`vigil key rotate`).
    KeyRotate,
    /// Mint a token for `agent` valid `ttl_seconds`, scoped to `tools`
    /// (empty: the agent's whole allow-list, `tools:*`).
    AgentToken {
        agent: String,
        ttl_seconds: u64,
        tools: Vec<String>,
    },
    /// Revoke tokens: one by id (`token_id`, or the id inside `token`), or
    /// every token of `agent` issued until now.
    AgentRevoke {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        reason: String,
    },
    /// Lift the suspension of `agent`.
    AgentResume { agent: String, reason: String },
    /// The suspended agents.
    AgentStatus,
    /// Write a bundle to `out` (an absolute path, written by the node).
    AuditExport {
        out: PathBuf,
        from: u64,
        to: Option<u64>,
        no_payloads: bool,
    },
    /// Verify the ledger in place against `key` (a `.pub` line; default:
    /// the node's own key).
    AuditVerify { key: Option<String> },
    /// A single-entry proof of entry `index`.
    AuditProve { index: u64 },
    /// Erase the payload of entry `index`.
    AuditErase { index: u64, reason: String },
    /// Offer a package to the gatekeeper: its file name, length and bytes
    /// (base64; empty when the file is too large to carry, which the
    /// gatekeeper refuses by its length), the poisoning findings to admit
    /// anyway, and whether a version lower than the highest ever admitted
    /// may be admitted (`--allow-downgrade`).
    Install {
        source: String,
        len: u64,
        package_b64: String,
        allow_findings: Vec<String>,
        #[serde(default)]
        allow_downgrade: bool,
    },
    /// Withdraw the current version of package `name` (its tools stop
    /// being served); the admission history is kept, so an older version
    /// offered later is still a rollback.
    Uninstall { name: String, reason: String },
    /// Change the trust store.
    Trust(TrustRequest),
    /// The trust store.
    TrustList,
    /// The tools of admitted packages (stored packages re-verified).
    Tools,
    /// Run one tool in the sandbox.
    Call {
        tool: String,
        arguments: Value,
        /// The operator's signed request (`vigil call --key`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signed: Option<vigil_ledger::approval::SignedStatement>,
    },
    /// Calls waiting for approval.
    Approvals,
    /// Answer a held call.
    Decide {
        id: String,
        approve: bool,
        reason: String,
        /// The operator's signed statement (`vigil approve --key`);
        /// required for calls in `operator` approval mode.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signed: Option<vigil_ledger::approval::SignedStatement>,
    },
    /// Turn this connection into an MCP session (newline-delimited
    /// JSON-RPC, as on stdio) for `agent`, after an `Ok` reply.
    Mcp { agent: String },
}

/// What the node streams before its reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// Progress of a long operation.
    Progress { done: u64, total: u64 },
}

/// One ledger entry as commands print it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryView {
    pub index: u64,
    pub timestamp_ns: u64,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    pub decision: String,
    /// The canonical JSON text of the details.
    pub details: String,
    /// Hex commitment and length of the payload, if any.
    pub payload: Option<(String, u64)>,
    /// Hex entry hash.
    pub hash: String,
}

impl EntryView {
    /// The ledger entry as commands print it.
    pub fn of(e: &vigil_ledger::Entry) -> Self {
        Self {
            index: e.index,
            timestamp_ns: e.timestamp_ns,
            kind: e.kind.clone(),
            actor: e.actor.clone(),
            subject: e.subject.clone(),
            decision: e.decision.clone(),
            details: e.details.clone(),
            payload: e.payload.map(|c| (hex::encode(c.digest), c.length)),
            hash: hex::encode(e.hash()),
        }
    }
}

/// The final answer to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    /// Done; nothing to report (also the go-ahead of [`Request::Mcp`]).
    Ok,
    /// The request failed; `message` is what the command prints after `error: `.
    Error { message: String },
    /// Indices of appended entries, in request order.
    Appended { indices: Vec<u64> },
    /// Entries and the ledger size when they were read.
    Entries { entries: Vec<EntryView>, size: u64 },
    /// The ledger size.
    Size { size: u64 },
    /// A minted agent token and its `agent.token-issued` entry.
    AgentToken {
        token: String,
        token_id: String,
        agent: String,
        scope: String,
        expires_at: i64,
        entry: u64,
    },
    /// An agent change (revocation, resumption) and its entry.
    AgentChanged { entry: u64, summary: String },
    /// The suspended agents: name -> suspension.
    AgentStatus { suspended: Value },
    /// A signed checkpoint note.
    Checkpoint { note: String },
    /// The node key was rotated: the handover is entry `index`; `old` and
    /// `new` are fingerprints; `checkpoint` is the note covering the
    /// handover, or `checkpoint_error` why it could not be signed;
    /// `retired` is where the old public key is kept.
    KeyRotated {
        index: u64,
        old: String,
        new: String,
        checkpoint: Option<String>,
        checkpoint_error: Option<String>,
        retired: PathBuf,
    },
    /// A bundle was written.
    Exported {
        from: u64,
        to: u64,
        checkpoints: u64,
        payloads: u64,
        bytes: u64,
    },
    /// Verification outcome: `code` 0 valid, 1 invalid, 2 error; `text` is
    /// what the command prints (stdout when valid, else stderr); `warning`,
    /// printed on stderr, names entries no checkpoint covers yet; `json`
    /// the outcome as one JSON object (docs/ledger-format.md §4).
    Verified {
        code: u8,
        text: String,
        warning: Option<String>,
        /// The outcome as `vigil audit verify --json` prints it.
        #[serde(default)]
        json: Value,
    },
    /// A proof, as text.
    Proof { text: String },
    /// An erasure recorded as entry `recorded`; `checkpoint_error` says why
    /// the checkpoint signed after it could not be (the erasure stands).
    Erased {
        index: u64,
        recorded: u64,
        checkpoint_error: Option<String>,
    },
    /// The gatekeeper's decision: whether it admitted, the package
    /// (`name@version`, or the file when unreadable), the admitted tools or
    /// the refusal's reason, and the lines the command prints.
    Installed {
        admitted: bool,
        package: String,
        tools: Vec<String>,
        reason: Option<String>,
        lines: Vec<String>,
    },
    /// A package was withdrawn: `name@version`, the tools no longer
    /// served, and the `package.removed` entry.
    Uninstalled {
        package: String,
        tools: Vec<String>,
        recorded: u64,
    },
    /// A trust change was made (its record, as JSON).
    TrustChanged { change: Value, closed_links: u64 },
    /// The trust store, as JSON.
    TrustStore { store: Value },
    /// Tool rows and the refusals of stored packages.
    Tools { rows: Value, refused: Vec<String> },
    /// A call outcome (JSON of `CallOutcome`) and its ledger entry.
    Called { outcome: Value, index: u64 },
    /// Pending approvals (JSON).
    Approvals { pending: Value },
    /// A held call was answered.
    Decided { tool: String, agent: String },
}

/// Why a line is not a valid message.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("control message is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("control protocol version {0} is not supported (this vigil speaks version {PROTOCOL_VERSION})")]
    Version(u32),
}

/// The request line (with its newline) for `request`.
pub fn encode_request(request: &Request) -> Result<Vec<u8>, FrameError> {
    line(&Envelope {
        v: PROTOCOL_VERSION,
        request: request.clone(),
    })
}

/// Parses a request line, checking the version.
pub fn decode_request(line: &[u8]) -> Result<Request, FrameError> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let Version { v } = serde_json::from_slice(line)?;
    if v != PROTOCOL_VERSION {
        return Err(FrameError::Version(v));
    }
    let envelope: Envelope = serde_json::from_slice(line)?;
    Ok(envelope.request)
}

/// A message from the node: an event on the way, or the final reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Event(Event),
    Reply(Reply),
}

/// The line (with its newline) for one message from the node.
pub fn encode_answer(answer: &Answer) -> Result<Vec<u8>, FrameError> {
    line(answer)
}

/// Parses one line from the node.
pub fn decode_answer(line: &[u8]) -> Result<Answer, FrameError> {
    Ok(serde_json::from_slice(line)?)
}

fn line(value: &impl Serialize) -> Result<Vec<u8>, FrameError> {
    let mut out = serde_json::to_vec(value)?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn requests_round_trip_with_their_version() {
        let requests = [
            Request::AuditCheckpoint,
            Request::KeyRotate,
            Request::AuditEntries {
                from: 3,
                limit: 10,
                wait_ms: 500,
            },
            Request::Trust(TrustRequest::RevokePeer {
                key_id: "ab".into(),
                reason: "leaked".into(),
            }),
            Request::Call {
                tool: "echo".into(),
                arguments: serde_json::json!({"text": "hi"}),
                signed: None,
            },
            Request::Decide {
                id: "0a1b".into(),
                approve: true,
                reason: String::new(),
                signed: Some(vigil_ledger::approval::SignedStatement {
                    statement: "{}".into(),
                    signature: "c2ln".into(),
                    key: "vigil-mldsa65-ed25519 AAAA".into(),
                }),
            },
            Request::Uninstall {
                name: "acme/echo".into(),
                reason: "retired".into(),
            },
        ];
        for r in requests {
            let line = encode_request(&r).unwrap();
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(decode_request(&line).unwrap(), r);
        }
    }

    #[test]
    fn an_install_without_allow_downgrade_does_not_allow_one() {
        let line = br#"{"v":1,"op":"install","source":"a.vpkg","len":0,"package_b64":"","allow_findings":[]}"#;
        let Request::Install {
            allow_downgrade, ..
        } = decode_request(line).unwrap()
        else {
            panic!("not an install");
        };
        assert!(!allow_downgrade);
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let err = decode_request(br#"{"v":2,"op":"audit-size"}"#).unwrap_err();
        assert!(matches!(err, FrameError::Version(2)), "{err}");
        assert!(decode_request(b"not json").is_err());
        assert!(decode_request(br#"{"v":1,"op":"no-such-op"}"#).is_err());
    }

    #[test]
    fn answers_tell_events_from_replies() {
        let e = Answer::Event(Event::Progress { done: 1, total: 2 });
        let r = Answer::Reply(Reply::Size { size: 7 });
        for a in [e, r] {
            assert_eq!(decode_answer(&encode_answer(&a).unwrap()).unwrap(), a);
        }
    }

    /// The names serde accepts for `tag`'s variants, read from its error
    /// for an unknown one (so the list is the enum's own, whole).
    fn variants<T: serde::de::DeserializeOwned + std::fmt::Debug>(tag: &str) -> BTreeSet<String> {
        let err = serde_json::from_str::<T>(&format!("{{\"{tag}\":\"no-such-variant\"}}"))
            .expect_err("an unknown variant is refused")
            .to_string();
        let expected = err
            .split_once("expected one of ")
            .map(|(_, rest)| rest.split(" at line ").next().unwrap_or(rest))
            .unwrap_or_else(|| panic!("unexpected serde error {err:?}"));
        expected
            .split(", ")
            .map(|v| v.trim_matches('`').to_string())
            .collect()
    }

    #[test]
    fn the_protocol_doc_lists_exactly_the_operations_and_trust_changes() {
        let doc = include_str!("../../docs/control.md");
        let table = doc
            .split("## Requests and replies")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("the requests table in docs/control.md");
        let rows: Vec<&str> = table
            .lines()
            .filter(|l| l.starts_with("| `") && !l.starts_with("| `op` |"))
            .collect();
        let ops: BTreeSet<String> = rows
            .iter()
            .filter_map(|row| row.split('`').nth(1).map(str::to_string))
            .collect();
        assert_eq!(
            ops,
            variants::<Request>("op"),
            "docs/control.md and Request disagree"
        );
        let trust_row = rows
            .iter()
            .find(|row| row.starts_with("| `trust` |"))
            .expect("the trust row");
        let change = regex::Regex::new(r"`([a-z-]+)` \(").expect("regex");
        let changes: BTreeSet<String> = change
            .captures_iter(trust_row)
            .map(|c| c[1].to_string())
            .collect();
        assert_eq!(
            changes,
            variants::<TrustRequest>("change"),
            "docs/control.md's trust row and TrustRequest disagree"
        );
    }
}
