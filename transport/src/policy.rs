//! What the transport asks of the node and tells it: [`PeerPolicy`] answers
//! whether a composite key is trusted and which targets it may reach;
//! [`LinkObserver`] receives every link and tunnel decision, so the node can
//! write exactly one ledger entry per decision; an allow decision takes
//! effect only once the observer reports it recorded. The transport never
//! depends on the node.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use vigil_crypto::{CompositePublicKey, KeyId};

use crate::target::Target;

/// The trust store's answer for a composite key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerStatus {
    /// Trusted, under the operator's name for the peer.
    Trusted { name: String },
    /// Never added to the trust store.
    Unknown,
    /// Added once, revoked since.
    Revoked,
}

/// The node's trust decisions about peers.
pub trait PeerPolicy: Send + Sync + 'static {
    /// Is this composite key trusted as a peer?
    fn peer_status(&self, key: &CompositePublicKey) -> PeerStatus;
    /// May this (trusted) peer open a tunnel to `target`?
    fn target_allowed(&self, key: &CompositePublicKey, target: &Target) -> bool;
}

/// Who is on the other end of a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub key_id: KeyId,
    /// The operator's name for the peer, where the trust store has one.
    pub name: Option<String>,
    pub remote: SocketAddr,
}

/// Why the serving node refused a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkRefusal {
    /// The composite key is not in the trust store.
    UnknownKey { key_id: KeyId },
    /// The composite key has been revoked.
    RevokedKey { key_id: KeyId },
    /// The binding signature did not verify for this connection (a relay,
    /// a forgery, or a key mismatch).
    FailedBinding { detail: String },
    /// The client offered only classical key exchange groups.
    ClassicalOnlyOffer,
    /// The TLS handshake failed for another reason.
    Handshake { detail: String },
    /// The peer broke the link protocol or timed out before binding.
    Protocol { detail: String },
    /// The peer would have been admitted, but the serving node could not
    /// record the decision; nothing is allowed unrecorded.
    AuditUnavailable { detail: String },
    /// The serving node was already setting up its limit of links
    /// ([`crate::LinkConfig::max_pending_links`]); refused before the
    /// TLS handshake.
    Busy { limit: usize },
}

impl std::fmt::Display for LinkRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownKey { key_id } => write!(
                f,
                "peer key {key_id} is not trusted; add it with `vigil trust peer add`"
            ),
            Self::RevokedKey { key_id } => write!(f, "peer key {key_id} has been revoked"),
            Self::FailedBinding { detail } => write!(
                f,
                "identity binding failed ({detail}); the peer may be relaying another connection"
            ),
            Self::ClassicalOnlyOffer => {
                f.write_str("peer offered only classical key exchange; X25519MLKEM768 is required")
            }
            Self::Handshake { detail } => write!(f, "TLS handshake failed: {detail}"),
            Self::Protocol { detail } => write!(f, "link protocol violation: {detail}"),
            Self::AuditUnavailable { detail } => write!(
                f,
                "the serving node could not record the link in its ledger ({detail}); it allows nothing unrecorded"
            ),
            Self::Busy { limit } => write!(
                f,
                "the serving node was already setting up {limit} links; refused before the TLS handshake"
            ),
        }
    }
}

/// Why a tunnel was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunnelRefusal {
    TargetNotAllowed,
    TargetUnreachable {
        detail: String,
    },
    PeerNotTrusted,
    BadRequest {
        detail: String,
    },
    /// The tunnel would have been opened, but the serving node could not
    /// record the decision.
    AuditUnavailable {
        detail: String,
    },
}

impl std::fmt::Display for TunnelRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TargetNotAllowed => f.write_str(
                "target is not allowed for this peer; allow it with `vigil trust peer add --allow-target`",
            ),
            Self::TargetUnreachable { detail } => write!(f, "target could not be reached: {detail}"),
            Self::PeerNotTrusted => f.write_str("peer key is no longer trusted"),
            Self::BadRequest { detail } => write!(f, "malformed tunnel request: {detail}"),
            Self::AuditUnavailable { detail } => write!(
                f,
                "the serving node could not record the tunnel in its ledger ({detail}); it allows nothing unrecorded"
            ),
        }
    }
}

/// Byte counts and duration of a finished tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelStats {
    /// Bytes from the peer to the target.
    pub bytes_to_target: u64,
    /// Bytes from the target to the peer.
    pub bytes_from_target: u64,
    pub duration: Duration,
    /// False when the tunnel ended with a reset or a lost link.
    pub clean: bool,
}

/// A decision or state change worth an audit entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// Both bindings verified and the peer is trusted.
    LinkOpened { peer: PeerInfo },
    /// The serving node refused a link.
    LinkRefused {
        remote: SocketAddr,
        refusal: LinkRefusal,
    },
    /// An open link ended.
    LinkClosed { peer: PeerInfo, reason: String },
    /// The serving node connected a tunnel to its target.
    TunnelOpened { peer: PeerInfo, target: Target },
    /// A tunnel ended.
    TunnelClosed {
        peer: PeerInfo,
        target: Target,
        stats: TunnelStats,
    },
    /// The serving node refused a tunnel.
    TargetRefused {
        peer: PeerInfo,
        target: Option<Target>,
        refusal: TunnelRefusal,
    },
    /// A link this node dialled was refused: the peer said no, or it was
    /// not the peer expected (key or binding); recorded by the dialling node.
    DialRefused {
        remote: SocketAddr,
        /// The key id the dialling node expected.
        expected: KeyId,
        reason: String,
    },
}

/// Resolves once an allow decision is recorded; `Err` says why it could not
/// be, and the decision must then not take effect.
pub type Recorded = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Receives link and tunnel events. Called from async tasks: keep it quick.
pub trait LinkObserver: Send + Sync + 'static {
    /// Records a refusal or a state change; returns at once.
    fn record(&self, event: LinkEvent);

    /// Records an allow decision ([`LinkEvent::LinkOpened`],
    /// [`LinkEvent::TunnelOpened`]) before it takes effect: the serving side
    /// answers the peer only after the returned future resolved `Ok`, and
    /// refuses the link or tunnel when it resolves `Err`. The default hands
    /// the event to [`LinkObserver::record`] and does not wait (for
    /// observers that keep no durable record).
    fn record_allow(&self, event: LinkEvent) -> Recorded {
        self.record(event);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// An observer that drops every event (for tools that audit nothing).
#[derive(Clone, Copy, Debug, Default)]
pub struct IgnoreEvents;

impl LinkObserver for IgnoreEvents {
    fn record(&self, _event: LinkEvent) {}
}
