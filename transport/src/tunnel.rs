//! The client side of tunnels: a local TCP listener whose every accepted
//! connection becomes one QUIC stream on the one link to the peer. A keeper
//! task holds that link: it redials with exponential backoff when the link
//! drops, and re-keys by dialling a fresh link once the current one has
//! lived for the configured lifetime (tunnels already open finish on the old
//! link, which closes when its last stream ends).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vigil_crypto::CompositePublicKey;

use crate::error::LinkError;
use crate::link::{Dialer, Link};
use crate::policy::{LinkEvent, LinkObserver};
use crate::splice::splice;
use crate::target::Target;

/// How the keeper redials and re-keys.
#[derive(Clone, Debug)]
pub struct ReconnectPolicy {
    /// First wait after a failed dial.
    pub initial_backoff: Duration,
    /// Longest wait between dials.
    pub max_backoff: Duration,
    /// Re-key by dialling a fresh link after this long (`None`: never).
    pub link_lifetime: Option<Duration>,
    /// How long a new TCP connection waits for a link before it is reset.
    pub wait_for_link: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            link_lifetime: Some(Duration::from_secs(3600)),
            wait_for_link: Duration::from_secs(10),
        }
    }
}

/// One tunnel: where to listen locally, which peer to use, which target the
/// peer should connect to.
#[derive(Clone, Debug)]
pub struct TunnelSpec {
    pub listen: SocketAddr,
    pub peer_addr: SocketAddr,
    pub peer_key: CompositePublicKey,
    pub target: Target,
    pub reconnect: ReconnectPolicy,
}

/// The keeper's view of the link: the current one (if any) and how many
/// links have been established so far.
#[derive(Clone, Default)]
struct LinkSlot {
    link: Option<Link>,
    established: u64,
}

/// A running tunnel client. Dropping it stops listening and dialling.
pub struct TunnelClient {
    local_addr: SocketAddr,
    slot: watch::Receiver<LinkSlot>,
    tasks: Vec<JoinHandle<()>>,
}

impl TunnelClient {
    /// Binds the local listener and starts the link keeper.
    pub async fn start(
        dialer: Dialer,
        spec: TunnelSpec,
        observer: Arc<dyn LinkObserver>,
    ) -> Result<Self, LinkError> {
        let listener =
            TcpListener::bind(spec.listen)
                .await
                .map_err(|source| LinkError::Listen {
                    addr: spec.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| LinkError::Listen {
            addr: spec.listen,
            source,
        })?;
        let (tx, rx) = watch::channel(LinkSlot::default());
        let keeper = tokio::spawn(keep_link(dialer, spec.clone(), tx, observer));
        let acceptor = tokio::spawn(accept_tcp(listener, rx.clone(), spec));
        Ok(Self {
            local_addr,
            slot: rx,
            tasks: vec![keeper, acceptor],
        })
    }

    /// The local TCP address (useful when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many links have been established (the first one, redials after
    /// drops, and re-keys).
    pub fn links_established(&self) -> u64 {
        self.slot.borrow().established
    }

    /// Waits until a link is up, at most `limit`.
    pub async fn wait_for_link(&self, limit: Duration) -> Option<Link> {
        current_link(self.slot.clone(), limit).await
    }
}

impl Drop for TunnelClient {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn keep_link(
    dialer: Dialer,
    spec: TunnelSpec,
    slot: watch::Sender<LinkSlot>,
    observer: Arc<dyn LinkObserver>,
) {
    let policy = &spec.reconnect;
    let mut backoff = policy.initial_backoff;
    loop {
        let link = match dialer.dial(spec.peer_addr, &spec.peer_key).await {
            Ok(link) => link,
            Err(e) => {
                tracing::warn!(peer = %spec.peer_addr, error = %e, retry_in = ?backoff, "link could not be opened");
                if matches!(
                    e,
                    LinkError::Refused { .. }
                        | LinkError::PeerKeyMismatch { .. }
                        | LinkError::BindingFailed(_)
                ) {
                    observer.record(LinkEvent::DialRefused {
                        remote: spec.peer_addr,
                        expected: spec.peer_key.key_id(),
                        reason: e.to_string(),
                    });
                }
                slot.send_modify(|s| s.link = None);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(policy.max_backoff);
                continue;
            }
        };
        backoff = policy.initial_backoff;
        tracing::info!(peer = %link.peer().key_id, remote = %spec.peer_addr, "link opened");
        observer.record(LinkEvent::LinkOpened {
            peer: link.peer().clone(),
        });
        slot.send_modify(|s| {
            s.link = Some(link.clone());
            s.established += 1;
        });
        let lifetime = async {
            match policy.link_lifetime {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let reason = tokio::select! {
            e = link.connection().closed() => e.to_string(),
            () = lifetime => "re-keying: link lifetime reached".to_string(),
        };
        tracing::info!(peer = %link.peer().key_id, %reason, "link ended");
        // The next link to this peer starts from what this one measured,
        // even while its tunnels keep it open after a re-key.
        link.remember_path();
        observer.record(LinkEvent::LinkClosed {
            peer: link.peer().clone(),
            reason,
        });
        // On re-key the old link stays in use by its open tunnels and closes
        // itself when the last of them (and this handle) is gone.
        if link.is_closed() {
            slot.send_modify(|s| s.link = None);
        }
    }
}

async fn accept_tcp(listener: TcpListener, slot: watch::Receiver<LinkSlot>, spec: TunnelSpec) {
    loop {
        let (tcp, from) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "could not accept a tunnel connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = slot.clone();
        let target = spec.target.clone();
        let wait = spec.reconnect.wait_for_link;
        tokio::spawn(async move {
            if let Err(e) = forward(tcp, slot, &target, wait).await {
                tracing::warn!(%from, %target, error = %e, "tunnel connection failed");
            }
        });
    }
}

async fn forward(
    tcp: TcpStream,
    slot: watch::Receiver<LinkSlot>,
    target: &Target,
    wait: Duration,
) -> Result<(), LinkError> {
    let _ = tcp.set_nodelay(true);
    let Some(link) = current_link(slot, wait).await else {
        let _ = tcp.set_zero_linger();
        return Err(LinkError::Timeout(wait));
    };
    match link.open_tunnel(target).await {
        Ok((send, recv)) => {
            let stats = splice(tcp, send, recv).await;
            tracing::debug!(?stats, "tunnel closed");
            Ok(())
        }
        Err(e) => {
            let _ = tcp.set_zero_linger();
            Err(e)
        }
    }
}

async fn current_link(mut slot: watch::Receiver<LinkSlot>, limit: Duration) -> Option<Link> {
    let found = tokio::time::timeout(
        limit,
        slot.wait_for(|s| s.link.as_ref().is_some_and(|l| !l.is_closed())),
    )
    .await;
    match found {
        Ok(Ok(s)) => s.link.clone(),
        _ => None,
    }
}
