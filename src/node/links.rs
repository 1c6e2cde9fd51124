//! Links on the node side: the `[links]` section of `vigil.toml`, the trust
//! store as the transport's [`PeerPolicy`], the audit ledger as its
//! [`LinkObserver`] (each link or tunnel decision becomes one
//! [`LinkAuditEntry`], handed to the node's one ledger writer through a
//! [`LinkAuditSink`]; it also counts links and tunnels in the node's
//! metrics), and the running link listener ([`LinkListener`]), which a
//! stopping node shuts down so that every open link's end is recorded.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use vigil_crypto::{CompositePublicKey, SigningKey};
use vigil_transport::{
    LinkConfig, LinkError, LinkEvent, LinkIdentity, LinkObserver, LinkRefusal, LinkServer,
    PeerInfo, PeerPolicy, PeerStatus, Recorded, ServerContext, Target,
};

use crate::node::audit::{EventKind, Verdict};
use crate::node::metrics::Metrics;
use crate::trust::{SharedTrust, TrustError};

/// `[links]`: accepting links from peer nodes and dialling them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// Address to accept links on (UDP); unset: this node accepts none.
    pub listen: Option<String>,
    /// Seconds after which a tunnel client re-keys by dialling a fresh link.
    pub link_lifetime_seconds: u64,
    /// Links set up at once (handshake and binding); see
    /// [`LinkConfig::max_pending_links`].
    pub max_pending_links: usize,
    /// Refused setups in 5-10 s after which new attempts must prove their
    /// address; see [`LinkConfig::refusals_before_validation`].
    pub refusals_before_validation: u32,
}

impl Default for LinksConfig {
    fn default() -> Self {
        let transport = LinkConfig::default();
        Self {
            listen: None,
            link_lifetime_seconds: 3600,
            max_pending_links: transport.max_pending_links,
            refusals_before_validation: transport.refusals_before_validation,
        }
    }
}

impl LinksConfig {
    /// The link settings of the serving side.
    pub fn serving(&self) -> LinkConfig {
        LinkConfig {
            max_pending_links: self.max_pending_links,
            refusals_before_validation: self.refusals_before_validation,
            ..LinkConfig::default()
        }
    }
}

/// One `[[tunnels]]` table: a TCP tunnel `vigil serve` keeps open to a peer
/// node, as `vigil tunnel` does from the command line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// The peer node's link address (UDP HOST:PORT).
    pub peer: String,
    /// The peer's composite public key: a `.pub` file or its key line.
    pub peer_key: String,
    /// Local TCP address to accept connections on.
    pub listen: String,
    /// Where the peer connects each tunnelled connection (HOST:PORT).
    pub target: String,
    /// Re-key after this many seconds (default: `[links] link_lifetime_seconds`).
    pub link_lifetime_seconds: Option<u64>,
}

/// The node's trust store (checked against the ledger when the node
/// started, replaced by every `vigil trust ...` change) as the policy for
/// peers: a revocation takes effect for the next link or tunnel without a
/// restart, and a hand edit of `trust.toml` has no effect.
#[derive(Debug, Clone)]
pub struct TrustStorePolicy {
    trust: Arc<SharedTrust>,
}

impl TrustStorePolicy {
    pub fn new(trust: Arc<SharedTrust>) -> Self {
        Self { trust }
    }
}

impl PeerPolicy for TrustStorePolicy {
    fn peer_status(&self, key: &CompositePublicKey) -> PeerStatus {
        let store = self.trust.get();
        match store.active_peer(key) {
            Ok(peer) => PeerStatus::Trusted {
                name: peer.name.clone(),
            },
            Err(TrustError::PeerWasRevoked(_)) => PeerStatus::Revoked,
            Err(_) => PeerStatus::Unknown,
        }
    }

    fn target_allowed(&self, key: &CompositePublicKey, target: &Target) -> bool {
        self.trust.get().active_peer(key).is_ok_and(|peer| {
            peer.allowed_targets
                .iter()
                .any(|t| Target::parse(t).is_ok_and(|t| &t == target))
        })
    }
}

/// One ledger entry for a link or tunnel decision.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkAuditEntry {
    /// `LinkOpened`, `LinkRefused`, `LinkClosed`, `TunnelOpened`,
    /// `TunnelClosed` or `TunnelRefused`.
    pub kind: EventKind,
    /// Allow, deny or record.
    pub decision: Verdict,
    /// `peer:KEYID`, or `remote:ADDR` when the peer proved no identity.
    pub actor: String,
    /// `link` or `target:HOST:PORT`.
    pub subject: String,
    /// Names, addresses, reasons, byte counts and durations.
    pub details: serde_json::Value,
}

/// Where link entries go: the node's ledger writer (its `Auditor`). Returns
/// once the entry is durable, or why it could not be recorded.
pub type LinkAuditSink = Box<dyn Fn(LinkAuditEntry) -> Result<(), String> + Send>;

/// An event for the recording thread, with where to report the outcome when
/// the transport waits for it (allow decisions).
type Job = (
    LinkEvent,
    Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
);

/// What the recording thread still owes the ledger: events handed to it
/// and not yet recorded, and links and tunnels recorded as opened whose end
/// is not recorded yet.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outstanding {
    pub queued: u64,
    pub links: u64,
    pub tunnels: u64,
}

impl Outstanding {
    fn settled(&self) -> bool {
        *self == Self::default()
    }

    /// Counts the outcome of one recorded event.
    fn recorded(&mut self, event: &LinkEvent, ok: bool) {
        self.queued = self.queued.saturating_sub(1);
        match event {
            LinkEvent::LinkOpened { .. } if ok => self.links += 1,
            LinkEvent::LinkClosed { .. } => self.links = self.links.saturating_sub(1),
            LinkEvent::TunnelOpened { .. } if ok => self.tunnels += 1,
            LinkEvent::TunnelClosed { .. } => self.tunnels = self.tunnels.saturating_sub(1),
            _ => {}
        }
    }
}

/// Watches a [`LedgerObserver`]'s recording thread catch up.
#[derive(Debug, Clone)]
pub struct RecorderProgress(tokio::sync::watch::Receiver<Outstanding>);

impl RecorderProgress {
    /// What is outstanding now.
    pub fn now(&self) -> Outstanding {
        *self.0.borrow()
    }

    /// Waits until every event handed over is recorded and every link and
    /// tunnel recorded as opened has its end recorded, at most until
    /// `deadline`. `Err` says what was still outstanding then.
    pub async fn settled_by(mut self, deadline: tokio::time::Instant) -> Result<(), Outstanding> {
        let waited = tokio::time::timeout_at(deadline, self.0.wait_for(Outstanding::settled))
            .await
            .map(|settled| settled.is_ok());
        // Not settled in time, or the thread is gone (it only ends with the
        // observer, after which nothing more is recorded).
        match (waited, self.now()) {
            (Ok(true), _) => Ok(()),
            (_, now) if now.settled() => Ok(()),
            (_, now) => Err(now),
        }
    }
}

/// Hands link events to a thread that turns each into one
/// [`LinkAuditEntry`] for the sink. Refusals and closings are recorded
/// without the transport waiting; an allow decision (link or tunnel opened)
/// takes effect only after its entry is durable, and is refused when the
/// entry cannot be recorded. Counts links, tunnels and refusals in the
/// node's [`Metrics`] once recorded, and tracks what is still
/// [`Outstanding`] so that a stopping node can wait for every end to be
/// recorded ([`LedgerObserver::progress`]).
pub struct LedgerObserver {
    events: mpsc::Sender<Job>,
    outstanding: Arc<tokio::sync::watch::Sender<Outstanding>>,
}

impl LedgerObserver {
    /// Starts the recording thread; it ends when the observer is dropped.
    pub fn start(sink: LinkAuditSink, metrics: Option<Arc<Metrics>>) -> Self {
        let (events, rx) = mpsc::channel::<Job>();
        let outstanding = Arc::new(tokio::sync::watch::Sender::new(Outstanding::default()));
        let progress = Arc::clone(&outstanding);
        std::thread::spawn(move || {
            for (event, done) in rx {
                let entry = ledger_entry(&event);
                let kind = entry.kind.as_str().to_string();
                let outcome = sink(entry);
                if let Some(metrics) = &metrics {
                    count(metrics, &event, outcome.is_ok());
                }
                progress.send_modify(|o| o.recorded(&event, outcome.is_ok()));
                match done {
                    Some(done) => {
                        let _ = done.send(outcome);
                    }
                    None => {
                        if let Err(e) = outcome {
                            eprintln!("error: a {kind} decision could not be recorded: {e}");
                        }
                    }
                }
            }
        });
        Self {
            events,
            outstanding,
        }
    }

    /// A handle to wait for the recording thread to catch up.
    pub fn progress(&self) -> RecorderProgress {
        RecorderProgress(self.outstanding.subscribe())
    }

    /// Queues `job` for the recording thread; false when it has stopped.
    fn hand_over(&self, job: Job) -> bool {
        self.outstanding.send_modify(|o| o.queued += 1);
        let handed = self.events.send(job).is_ok();
        if !handed {
            self.outstanding
                .send_modify(|o| o.queued = o.queued.saturating_sub(1));
        }
        handed
    }
}

/// Counts one recorded (`ok`) or unrecordable link event in `metrics`.
fn count(metrics: &Metrics, event: &LinkEvent, ok: bool) {
    match event {
        LinkEvent::LinkOpened { .. } if ok => metrics.link_opened(),
        LinkEvent::LinkClosed { .. } => metrics.link_closed(),
        LinkEvent::LinkRefused { refusal, .. } => metrics.link_refused(refusal_name(refusal)),
        LinkEvent::TunnelOpened { .. } if ok => metrics.tunnel_opened(),
        LinkEvent::TunnelClosed { stats, .. } => {
            metrics.tunnel_closed(stats.bytes_to_target, stats.bytes_from_target)
        }
        _ => {}
    }
}

impl LinkObserver for LedgerObserver {
    fn record(&self, event: LinkEvent) {
        // The receiver lives as long as the thread, which outlives senders.
        self.hand_over((event, None));
    }

    fn record_allow(&self, event: LinkEvent) -> Recorded {
        let (done, outcome) = tokio::sync::oneshot::channel();
        if !self.hand_over((event, Some(done))) {
            return Box::pin(std::future::ready(Err(
                "the ledger recorder has stopped".to_string()
            )));
        }
        Box::pin(async move {
            outcome
                .await
                .unwrap_or_else(|_| Err("the ledger recorder has stopped".to_string()))
        })
    }
}

fn peer_actor(peer: &PeerInfo) -> String {
    format!("peer:{}", peer.key_id)
}

fn entry(
    kind: EventKind,
    decision: Verdict,
    actor: String,
    subject: String,
    details: serde_json::Value,
) -> LinkAuditEntry {
    LinkAuditEntry {
        kind,
        decision,
        actor,
        subject,
        details,
    }
}

/// The ledger entry for one link event.
pub fn ledger_entry(event: &LinkEvent) -> LinkAuditEntry {
    match event {
        LinkEvent::LinkOpened { peer } => entry(
            EventKind::LinkOpened,
            Verdict::Allow,
            peer_actor(peer),
            "link".into(),
            json!({ "name": peer.name, "remote": peer.remote.to_string() }),
        ),
        LinkEvent::LinkRefused { remote, refusal } => {
            let actor = match refusal {
                LinkRefusal::UnknownKey { key_id } | LinkRefusal::RevokedKey { key_id } => {
                    format!("peer:{key_id}")
                }
                _ => format!("remote:{remote}"),
            };
            entry(
                EventKind::LinkRefused,
                Verdict::Deny,
                actor,
                "link".into(),
                json!({ "remote": remote.to_string(), "refusal": refusal_name(refusal),
                        "reason": refusal.to_string() }),
            )
        }
        LinkEvent::LinkClosed { peer, reason } => entry(
            EventKind::LinkClosed,
            Verdict::Record,
            peer_actor(peer),
            "link".into(),
            json!({ "name": peer.name, "remote": peer.remote.to_string(), "reason": reason }),
        ),
        LinkEvent::TunnelOpened { peer, target } => entry(
            EventKind::TunnelOpened,
            Verdict::Allow,
            peer_actor(peer),
            format!("target:{target}"),
            json!({ "name": peer.name, "remote": peer.remote.to_string() }),
        ),
        LinkEvent::TunnelClosed {
            peer,
            target,
            stats,
        } => entry(
            EventKind::TunnelClosed,
            Verdict::Record,
            peer_actor(peer),
            format!("target:{target}"),
            json!({
                "name": peer.name,
                "bytes_to_target": stats.bytes_to_target,
                "bytes_from_target": stats.bytes_from_target,
                "duration_ms": u64::try_from(stats.duration.as_millis()).unwrap_or(u64::MAX),
                "clean": stats.clean,
            }),
        ),
        LinkEvent::DialRefused {
            remote,
            expected,
            reason,
        } => entry(
            EventKind::LinkRefused,
            Verdict::Deny,
            format!("peer:{expected}"),
            "link".into(),
            json!({ "remote": remote.to_string(), "side": "dialler", "reason": reason }),
        ),
        LinkEvent::TargetRefused {
            peer,
            target,
            refusal,
        } => entry(
            EventKind::TunnelRefused,
            Verdict::Deny,
            peer_actor(peer),
            target
                .as_ref()
                .map_or_else(|| "target:?".to_string(), |t| format!("target:{t}")),
            json!({ "name": peer.name, "reason": refusal.to_string() }),
        ),
    }
}

fn refusal_name(refusal: &LinkRefusal) -> &'static str {
    use LinkRefusal as R;
    match refusal {
        R::UnknownKey { .. } => "unknown-key",
        R::RevokedKey { .. } => "revoked-key",
        R::FailedBinding { .. } => "failed-binding",
        R::ClassicalOnlyOffer => "classical-only-offer",
        R::Handshake { .. } => "handshake",
        R::Protocol { .. } => "protocol",
        R::AuditUnavailable { .. } => "audit-unavailable",
        R::Busy { .. } => "busy",
    }
}

/// A running link listener and the recorder of its decisions.
pub struct LinkListener {
    server: LinkServer,
    progress: RecorderProgress,
}

impl LinkListener {
    /// The address links are accepted on.
    pub fn local_addr(&self) -> Result<SocketAddr, LinkError> {
        self.server.local_addr()
    }

    /// The links open now (to close a revoked peer's).
    pub fn open_links(&self) -> vigil_transport::OpenLinks {
        self.server.open_links()
    }

    /// Stops accepting and closes every link (peers learn at once: the QUIC
    /// endpoint sends each a close), then waits until the end of every link
    /// and tunnel is recorded in the ledger, at most until `deadline`.
    /// `Err` says what was still unrecorded then.
    pub async fn shutdown(self, deadline: tokio::time::Instant) -> Result<(), Outstanding> {
        // The endpoint is closed at once; waiting for it to go idle is
        // bounded by the same deadline.
        let _ = tokio::time::timeout_at(deadline, self.server.shutdown()).await;
        self.progress.settled_by(deadline).await
    }
}

/// Starts accepting links on `addr` (on the current tokio runtime) with
/// `config`: peers are judged by the node's trust store `trust`,
/// decisions go to `sink` and are counted in `metrics`.
pub fn start_listener(
    addr: SocketAddr,
    key: SigningKey,
    trust: Arc<SharedTrust>,
    sink: LinkAuditSink,
    config: LinkConfig,
    metrics: Option<Arc<Metrics>>,
) -> Result<LinkListener, LinkError> {
    let observer = LedgerObserver::start(sink, metrics);
    let progress = observer.progress();
    let context = ServerContext {
        identity: Arc::new(LinkIdentity::new(key)?),
        policy: Arc::new(TrustStorePolicy::new(trust)),
        observer: Arc::new(observer),
        config,
    };
    let server = LinkServer::start(addr, context)?;
    Ok(LinkListener { server, progress })
}
