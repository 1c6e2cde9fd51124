//! The serving side: accepts links, admits them ([`crate::link::admit`]),
//! then serves each tunnel stream by connecting to an allowed target and
//! splicing. Every decision goes to the [`LinkObserver`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use quinn::{Endpoint, RecvStream, SendStream};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::error::LinkError;
use crate::link::{
    admit, serving_endpoint, AcceptPaths, Link, LinkConfig, LinkIdentity, CLOSE_DONE, CLOSE_REFUSED,
};
use crate::load::{must_validate, RecentRefusals};
use crate::message::{LinkMessage, TunnelRefusalCode};
use crate::policy::{
    LinkEvent, LinkObserver, LinkRefusal, PeerPolicy, PeerStatus, TunnelRefusal, TunnelStats,
};
use crate::splice::splice;
use crate::target::Target;
use crate::tls::KeyExchange;
use crate::wire::{read_message, write_message};

/// How long the serving node tries to reach a tunnel target.
const TARGET_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a serving node needs to decide about links and tunnels.
#[derive(Clone)]
pub struct ServerContext {
    pub identity: Arc<LinkIdentity>,
    pub policy: Arc<dyn PeerPolicy>,
    pub observer: Arc<dyn LinkObserver>,
    pub config: LinkConfig,
}

/// The links a serving node has open, by peer: the node closes a revoked
/// peer's links through it. Cheap to clone.
#[derive(Clone, Default)]
pub struct OpenLinks {
    links: Arc<Mutex<HashMap<u64, (String, quinn::Connection)>>>,
    next: Arc<AtomicU64>,
}

impl OpenLinks {
    fn add(&self, key_id: &str, connection: quinn::Connection) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.links).insert(id, (key_id.to_string(), connection));
        id
    }

    fn remove(&self, id: u64) {
        lock(&self.links).remove(&id);
    }

    /// How many links are open.
    pub fn count(&self) -> usize {
        lock(&self.links).len()
    }

    /// Closes every open link of the peer with `key_id` (its trust was
    /// withdrawn): the peer learns at once, with `reason`, and its tunnels
    /// stop. Returns how many links were closed.
    pub fn close_peer(&self, key_id: &str, reason: &str) -> u64 {
        let closing: Vec<quinn::Connection> = lock(&self.links)
            .values()
            .filter(|(k, _)| k == key_id)
            .map(|(_, c)| c.clone())
            .collect();
        for connection in &closing {
            connection.close(CLOSE_REFUSED, reason.as_bytes());
        }
        closing.len() as u64
    }
}

/// A running link listener.
pub struct LinkServer {
    endpoint: Endpoint,
    accept: JoinHandle<()>,
    validations: Arc<AtomicU64>,
    open: OpenLinks,
}

impl LinkServer {
    /// Binds `addr` and starts accepting links on the current tokio runtime.
    pub fn start(addr: SocketAddr, context: ServerContext) -> Result<Self, LinkError> {
        Self::start_with_key_exchange(addr, context, KeyExchange::PostQuantum)
    }

    /// Like [`LinkServer::start`] with an explicit key exchange (the bench's
    /// classical baseline; the node always uses the post-quantum group).
    pub fn start_with_key_exchange(
        addr: SocketAddr,
        context: ServerContext,
        kx: KeyExchange,
    ) -> Result<Self, LinkError> {
        let (endpoint, paths) = serving_endpoint(addr, &context.identity, kx, &context.config)?;
        let validations = Arc::new(AtomicU64::new(0));
        let open = OpenLinks::default();
        let accept = tokio::spawn(accept_links(
            endpoint.clone(),
            context,
            paths,
            validations.clone(),
            open.clone(),
        ));
        Ok(Self {
            endpoint,
            accept,
            validations,
            open,
        })
    }

    /// The links open now (to close a revoked peer's).
    pub fn open_links(&self) -> OpenLinks {
        self.open.clone()
    }

    /// How many connection attempts were asked to prove their address (a
    /// QUIC Retry) because at least half of the setup slots were taken or
    /// many setups were refused lately ([`crate::load`]).
    pub fn address_validations(&self) -> u64 {
        self.validations.load(Ordering::Relaxed)
    }

    /// The address links are accepted on.
    pub fn local_addr(&self) -> Result<SocketAddr, LinkError> {
        self.endpoint
            .local_addr()
            .map_err(|source| LinkError::Endpoint {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })
    }

    /// Closes every link and stops accepting.
    pub async fn shutdown(self) {
        self.accept.abort();
        self.endpoint.close(CLOSE_DONE, b"node shutting down");
        self.endpoint.wait_idle().await;
    }
}

impl Drop for LinkServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_links(
    endpoint: Endpoint,
    context: ServerContext,
    paths: AcceptPaths,
    validations: Arc<AtomicU64>,
    open: OpenLinks,
) {
    let limit = context.config.max_pending_links;
    let pending = Arc::new(Semaphore::new(limit));
    let refusals = Arc::new(Mutex::new(RecentRefusals::new(Instant::now())));
    while let Some(incoming) = endpoint.accept().await {
        // Under load, an attempt first proves that it receives at its
        // address (QUIC Retry, one round trip): attempts from spoofed
        // addresses then cost no state, no key exchange and no record.
        let must_prove = || {
            must_validate(
                pending.available_permits(),
                limit,
                lock(&refusals).count(Instant::now()),
                context.config.refusals_before_validation,
            )
        };
        if !incoming.remote_address_validated() && must_prove() {
            let remote = incoming.remote_address();
            match incoming.retry() {
                Ok(()) => {
                    validations.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%remote, "busy: asked the peer to validate its address");
                }
                Err(e) => e.into_incoming().ignore(),
            }
            continue;
        }
        let Ok(setting_up) = pending.clone().try_acquire_owned() else {
            let remote = incoming.remote_address();
            incoming.refuse();
            report_refusal(&context, &refusals, remote, LinkRefusal::Busy { limit });
            continue;
        };
        let context = context.clone();
        let paths = paths.clone();
        let refusals = refusals.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let admitted = admit(
                incoming,
                &context.identity,
                context.policy.as_ref(),
                context.observer.as_ref(),
                &paths,
            )
            .await;
            drop(setting_up);
            match admitted {
                Ok(link) => {
                    let id = open.add(&link.peer().key_id.to_string(), link.connection().clone());
                    serve_link(link, context).await;
                    open.remove(id);
                }
                Err((remote, refusal)) => report_refusal(&context, &refusals, remote, refusal),
            }
        });
    }
}

/// Counts a refused setup towards the recent refusals, logs it and hands
/// it to the observer.
fn report_refusal(
    context: &ServerContext,
    refusals: &Mutex<RecentRefusals>,
    remote: SocketAddr,
    refusal: LinkRefusal,
) {
    lock(refusals).note(Instant::now());
    tracing::warn!(%remote, %refusal, "link refused");
    context
        .observer
        .record(LinkEvent::LinkRefused { remote, refusal });
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves the tunnel streams of an admitted link (its `link.opened` was
/// recorded by [`admit`]).
async fn serve_link(link: Link, context: ServerContext) {
    tracing::info!(peer = %link.peer().key_id, remote = %link.peer().remote, "link opened");
    loop {
        match link.connection().accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(serve_tunnel(link.clone(), send, recv, context.clone()));
            }
            Err(e) => {
                context.observer.record(LinkEvent::LinkClosed {
                    peer: link.peer().clone(),
                    reason: e.to_string(),
                });
                return;
            }
        }
    }
}

async fn serve_tunnel(link: Link, send: SendStream, mut recv: RecvStream, context: ServerContext) {
    let request =
        tokio::time::timeout(context.config.handshake_timeout, read_message(&mut recv)).await;
    let detail = match request {
        Ok(Ok(LinkMessage::OpenTunnel { target })) => {
            return serve_target(link, send, recv, context, target).await;
        }
        Ok(Ok(other)) => format!("expected a tunnel request, got {:?}", other.kind()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no tunnel request in time".to_string(),
    };
    refuse(
        &link,
        &context,
        send,
        None,
        TunnelRefusal::BadRequest { detail },
    )
    .await;
}

/// Serves a well-formed tunnel request: policy, target connection, splice.
async fn serve_target(
    link: Link,
    mut send: SendStream,
    recv: RecvStream,
    context: ServerContext,
    target: Target,
) {
    let key = link.peer_key();
    if !matches!(context.policy.peer_status(key), PeerStatus::Trusted { .. }) {
        return refuse(
            &link,
            &context,
            send,
            Some(target),
            TunnelRefusal::PeerNotTrusted,
        )
        .await;
    }
    if !context.policy.target_allowed(key, &target) {
        return refuse(
            &link,
            &context,
            send,
            Some(target),
            TunnelRefusal::TargetNotAllowed,
        )
        .await;
    }
    let tcp = match connect_target(&target).await {
        Ok(tcp) => tcp,
        Err(detail) => {
            let refusal = TunnelRefusal::TargetUnreachable { detail };
            return refuse(&link, &context, send, Some(target), refusal).await;
        }
    };
    let recorded = context.observer.record_allow(LinkEvent::TunnelOpened {
        peer: link.peer().clone(),
        target: target.clone(),
    });
    if let Err(detail) = recorded.await {
        drop(tcp);
        let refusal = TunnelRefusal::AuditUnavailable { detail };
        return refuse(&link, &context, send, Some(target), refusal).await;
    }
    if write_message(&mut send, &LinkMessage::TunnelAccepted)
        .await
        .is_err()
    {
        // Recorded as opened: close the record too (nothing was carried).
        context.observer.record(LinkEvent::TunnelClosed {
            peer: link.peer().clone(),
            target,
            stats: TunnelStats {
                bytes_to_target: 0,
                bytes_from_target: 0,
                duration: Duration::ZERO,
                clean: false,
            },
        });
        return;
    }
    let stats = splice(tcp, send, recv).await;
    context.observer.record(LinkEvent::TunnelClosed {
        peer: link.peer().clone(),
        target,
        stats: TunnelStats {
            bytes_to_target: stats.quic_to_tcp,
            bytes_from_target: stats.tcp_to_quic,
            duration: stats.duration,
            clean: stats.clean,
        },
    });
}

async fn connect_target(target: &Target) -> Result<TcpStream, String> {
    let attempt = TcpStream::connect((target.host(), target.port()));
    match tokio::time::timeout(TARGET_CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {TARGET_CONNECT_TIMEOUT:?}")),
    }
}

async fn refuse(
    link: &Link,
    context: &ServerContext,
    mut send: SendStream,
    target: Option<Target>,
    refusal: TunnelRefusal,
) {
    let code = match &refusal {
        TunnelRefusal::TargetNotAllowed => TunnelRefusalCode::TargetNotAllowed,
        TunnelRefusal::TargetUnreachable { .. } => TunnelRefusalCode::TargetUnreachable,
        TunnelRefusal::PeerNotTrusted => TunnelRefusalCode::PeerNotTrusted,
        TunnelRefusal::BadRequest { .. } => TunnelRefusalCode::BadRequest,
        TunnelRefusal::AuditUnavailable { .. } => TunnelRefusalCode::AuditUnavailable,
    };
    let message = LinkMessage::TunnelRefused {
        code,
        reason: refusal.to_string(),
    };
    tracing::warn!(peer = %link.peer().key_id, ?target, %refusal, "tunnel refused");
    context.observer.record(LinkEvent::TargetRefused {
        peer: link.peer().clone(),
        target,
        refusal,
    });
    if write_message(&mut send, &message).await.is_ok() {
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
    }
}
