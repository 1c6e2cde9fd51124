//! Links: one QUIC connection between two nodes whose identities are bound
//! to it. [`Dialer::dial`] opens a link from the client side;
//! [`admit`] takes an incoming connection through the TLS handshake, the
//! identity binding and the trust decision on the serving side.
//!
//! The binding runs on the first bidirectional stream (opened by the
//! client) without an extra round trip: at handshake completion the client
//! sends its composite key (`Identity`) and signs; the server, once it has
//! that key, signs its own statement at the same time. Each side sends its
//! `Binding` as soon as it is signed and then verifies the peer's, which is
//! in flight meanwhile. The server then answers `LinkAccepted` or
//! `LinkRefused`. Tunnel streams are opened (client) and served (server)
//! only after both bindings verified and the client's key is trusted.
//!
//! The binding's signing and verification (0.1-0.15 ms each) run inline in
//! the task that sets the link up, as quinn runs the TLS handshake's key
//! exchange and signatures inline in its connection task: handing them to
//! a blocking thread and back cost more, measured on two cores, than the
//! crypto itself. Before each, the task yields once, so that the message it
//! has just written leaves before the CPU work starts.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use vigil_crypto::{CompositePublicKey, SigningKey};

use crate::binding::{BindingStatement, Role, EXPORTER_LABEL, EXPORTER_LEN};
use crate::error::LinkError;
use crate::message::{LinkMessage, LinkRefusalCode};
use crate::mtu::{PathMtuMemory, PendingTrials, BASE_MTU};
use crate::policy::{LinkEvent, LinkObserver, LinkRefusal, PeerInfo, PeerPolicy, PeerStatus};
use crate::target::Target;
use crate::tls::{self, KeyExchange, TransportIdentity};
use crate::udp::SplitGso;
use crate::wire::{read_message, write_message};

/// QUIC application close code: the link was refused.
pub const CLOSE_REFUSED: VarInt = VarInt::from_u32(1);
/// QUIC application close code: the node is shutting down or re-keying.
pub const CLOSE_DONE: VarInt = VarInt::from_u32(0);

/// Timeouts and windows of a link.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Limit for the TLS handshake plus identity binding.
    pub handshake_timeout: Duration,
    /// A link with no traffic (not even keep-alives) for this long is dead.
    pub idle_timeout: Duration,
    /// Keep-alive interval; must be well below `idle_timeout`.
    pub keep_alive: Duration,
    /// Per-stream receive window in bytes.
    pub stream_window: u32,
    /// Per-connection receive window and send window in bytes.
    pub connection_window: u32,
    /// Concurrent tunnels per link.
    pub max_tunnels: u32,
    /// Largest UDP payload path MTU discovery probes for. A first link to a
    /// peer starts at QUIC's safe 1200 bytes and grows only after a probe of
    /// the larger size was acknowledged, so the bound is safe on any path. The default
    /// allows jumbo frames (and uses them on loopback); bigger packets mean
    /// fewer per-packet costs in bulk transfers.
    pub mtu_upper_bound: u16,
    /// Start a link to a peer address an earlier link measured at the size
    /// that link reached ([`PathMtuMemory`]), instead of at 1200 bytes with
    /// a search.
    pub remember_path_mtu: bool,
    /// Links a serving node sets up at once (TLS handshake and identity
    /// binding, each bounded by `handshake_timeout`). Once half are taken,
    /// a new attempt must first prove its address (QUIC Retry,
    /// [`crate::load`]); an attempt beyond the limit is refused before its
    /// handshake, so a flood of attempts costs no key exchange or
    /// signature and no more memory.
    pub max_pending_links: usize,
    /// Refused link setups within the last 5-10 seconds after which every
    /// new attempt must first prove its address (QUIC Retry), so that a
    /// flood of bad or spoofed attempts stops costing handshakes and audit
    /// entries ([`crate::load`]).
    pub refusals_before_validation: u32,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
            stream_window: 4 * 1024 * 1024,
            connection_window: 32 * 1024 * 1024,
            max_tunnels: 256,
            mtu_upper_bound: MAX_UDP_PAYLOAD,
            remember_path_mtu: true,
            max_pending_links: 64,
            refusals_before_validation: 32,
        }
    }
}

impl LinkConfig {
    /// The QUIC transport parameters for this configuration.
    pub fn transport(&self) -> quinn::TransportConfig {
        self.transport_on_path(None)
    }

    /// The transport parameters for a link to a peer whose path an earlier
    /// link measured at `known` bytes ([`PathMtuMemory`]): the link then
    /// starts at that size, without probing or searching for it.
    pub fn transport_on_path(&self, known: Option<u16>) -> quinn::TransportConfig {
        let mut t = quinn::TransportConfig::default();
        t.max_idle_timeout(quinn::IdleTimeout::try_from(self.idle_timeout).ok());
        t.keep_alive_interval(Some(self.keep_alive));
        t.stream_receive_window(VarInt::from_u32(self.stream_window));
        t.receive_window(VarInt::from_u32(self.connection_window));
        t.send_window(u64::from(self.connection_window));
        t.max_concurrent_bidi_streams(VarInt::from_u32(self.max_tunnels));
        t.max_concurrent_uni_streams(VarInt::from_u32(0));
        let mut search = quinn::MtuDiscoveryConfig::default();
        search.minimum_change(MTU_SEARCH_STEP);
        match known
            .map(|m| m.min(self.mtu_upper_bound))
            .filter(|&m| m > BASE_MTU)
        {
            Some(remembered) => {
                // Starting at the bound leaves nothing to search. If the path
                // no longer carries it, a handshake that does not come
                // through makes both ends forget the size and the dialler
                // try again at 1200 bytes (`Dialer::dial`, `admit`), and
                // after the handshake quinn's black hole detection drops the
                // link to 1200 bytes (and searches again later, up to the
                // bound).
                t.initial_mtu(remembered);
                search.upper_bound(remembered);
                let mut cubic = quinn::congestion::CubicConfig::default();
                cubic.initial_window(initial_window(remembered));
                t.congestion_controller_factory(Arc::new(cubic));
            }
            None => {
                search.upper_bound(self.mtu_upper_bound);
            }
        }
        t.mtu_discovery_config(Some(search));
        t
    }

    /// The transport parameters for a new link to `peer` when `paths`
    /// remembers its path MTU (and remembering is on); `None`: the
    /// endpoint's defaults apply. Dialling and accepting both use it.
    fn transport_to(
        &self,
        paths: &PathMtuMemory,
        peer: std::net::IpAddr,
    ) -> Option<quinn::TransportConfig> {
        if !self.remember_path_mtu {
            return None;
        }
        let known = paths.recall(peer, Instant::now())?;
        Some(self.transport_on_path(Some(known)))
    }
}

/// The congestion window a link starting at `mtu`-byte datagrams opens
/// with: RFC 9002 section 7.2, `min(10 * mtu, max(14720, 2 * mtu))`.
/// quinn's default is computed for 1200-byte datagrams (12,000 bytes);
/// with jumbo datagrams that is one packet, and the binding would wait for
/// a delayed acknowledgement before its second packet could leave.
fn initial_window(mtu: u16) -> u64 {
    let mtu = u64::from(mtu);
    (10 * mtu).min((2 * mtu).max(14_720))
}

/// A node's identity on links: its composite key and an ephemeral Ed25519
/// transport key for TLS.
#[derive(Debug)]
pub struct LinkIdentity {
    key: SigningKey,
    transport: TransportIdentity,
}

impl LinkIdentity {
    /// Wraps the node's composite key and generates a transport key.
    pub fn new(key: SigningKey) -> Result<Self, LinkError> {
        Ok(Self {
            key,
            transport: TransportIdentity::generate()?,
        })
    }

    /// The composite public key peers see.
    pub fn public_key(&self) -> &CompositePublicKey {
        self.key.public_key()
    }

    /// The TLS transport identity.
    pub fn transport(&self) -> &TransportIdentity {
        &self.transport
    }

    /// Signs a binding statement with the composite key.
    pub fn sign(
        &self,
        statement: &BindingStatement<'_>,
    ) -> Result<vigil_crypto::CompositeSignature, LinkError> {
        statement
            .sign(&self.key)
            .map_err(|e| LinkError::Protocol(format!("could not sign binding: {e}")))
    }

    /// The binding statement of one session as this node sees it: we play
    /// `own_role`, the peer presented `peer_certificate` in TLS and is (or
    /// claims to be) `peer_key`; the statement is the one `signer` signs.
    fn statement<'a>(
        &'a self,
        own_role: Role,
        signer: Role,
        exporter: [u8; EXPORTER_LEN],
        peer_certificate: &'a [u8],
        peer_key: &'a CompositePublicKey,
    ) -> BindingStatement<'a> {
        let (own_certificate, own_key) = (self.transport.certificate(), self.public_key());
        let (client_certificate, server_certificate, client_key, server_key) = match own_role {
            Role::Client => (own_certificate, peer_certificate, own_key, peer_key),
            Role::Server => (peer_certificate, own_certificate, peer_key, own_key),
        };
        BindingStatement {
            role: signer,
            exporter,
            client_certificate,
            server_certificate,
            client_key,
            server_key,
        }
    }
}

/// An open link: a QUIC connection whose peer proved its composite identity.
#[derive(Clone, Debug)]
pub struct Link {
    inner: Arc<LinkInner>,
}

#[derive(Debug)]
struct LinkInner {
    connection: Connection,
    peer_key: CompositePublicKey,
    peer: PeerInfo,
    /// Where the path MTU this link reached is remembered when it ends.
    paths: Arc<PathMtuMemory>,
}

impl Drop for LinkInner {
    fn drop(&mut self) {
        remember_path(&self.paths, &self.connection);
    }
}

fn remember_path(paths: &PathMtuMemory, connection: &Connection) {
    paths.remember(
        connection.remote_address().ip(),
        connection.stats().path.current_mtu,
        Instant::now(),
    );
}

impl Link {
    fn new(
        connection: Connection,
        peer_key: CompositePublicKey,
        peer: PeerInfo,
        paths: Arc<PathMtuMemory>,
    ) -> Self {
        Self {
            inner: Arc::new(LinkInner {
                connection,
                peer_key,
                peer,
                paths,
            }),
        }
    }

    /// The QUIC connection.
    pub fn connection(&self) -> &Connection {
        &self.inner.connection
    }

    /// The peer's verified composite key.
    pub fn peer_key(&self) -> &CompositePublicKey {
        &self.inner.peer_key
    }

    /// Who the peer is.
    pub fn peer(&self) -> &PeerInfo {
        &self.inner.peer
    }

    /// Records the path MTU this link reached so far, for the next link to
    /// the same peer address. Done anyway when the last handle to the link
    /// is dropped; the tunnel keeper calls it before re-keying, while the
    /// old link may still carry tunnels for a while.
    pub fn remember_path(&self) {
        remember_path(&self.inner.paths, &self.inner.connection);
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.connection().close_reason().is_some()
    }

    /// Opens a tunnel stream to `target` and waits for the serving node's
    /// answer. On success raw bytes may flow on the returned streams.
    pub async fn open_tunnel(
        &self,
        target: &Target,
    ) -> Result<(SendStream, RecvStream), LinkError> {
        let (mut send, mut recv) = self.connection().open_bi().await?;
        write_message(
            &mut send,
            &LinkMessage::OpenTunnel {
                target: target.clone(),
            },
        )
        .await?;
        match read_message(&mut recv).await? {
            LinkMessage::TunnelAccepted => Ok((send, recv)),
            LinkMessage::TunnelRefused { code, reason } => Err(LinkError::TunnelRefused {
                target: target.clone(),
                code,
                reason,
            }),
            other => Err(LinkError::Protocol(format!(
                "expected a tunnel answer, got {:?}",
                other.kind()
            ))),
        }
    }
}

/// Builds a QUIC client configuration for `identity`.
pub fn client_config(
    identity: &LinkIdentity,
    kx: KeyExchange,
    config: &LinkConfig,
) -> Result<quinn::ClientConfig, LinkError> {
    let crypto = tls::client_crypto(identity.transport(), kx)?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(Arc::new(config.transport()));
    Ok(client)
}

/// Opens a QUIC endpoint that accepts links on `addr`.
pub fn server_endpoint(
    addr: SocketAddr,
    identity: &LinkIdentity,
    kx: KeyExchange,
    config: &LinkConfig,
) -> Result<Endpoint, LinkError> {
    Ok(serving_endpoint(addr, identity, kx, config)?.0)
}

/// Opens a QUIC endpoint that accepts links on `addr`, with what [`admit`]
/// needs to configure each incoming connection.
pub fn serving_endpoint(
    addr: SocketAddr,
    identity: &LinkIdentity,
    kx: KeyExchange,
    config: &LinkConfig,
) -> Result<(Endpoint, AcceptPaths), LinkError> {
    let crypto = tls::server_crypto(identity.transport(), kx)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(config.transport()));
    let endpoint = open_endpoint(addr, Some(server.clone()))?;
    let paths = AcceptPaths {
        base: server,
        config: config.clone(),
        memory: Arc::new(PathMtuMemory::new()),
        trials: Arc::new(PendingTrials::default()),
    };
    Ok((endpoint, paths))
}

/// How a serving endpoint configures each incoming connection: like its
/// base configuration, except that the path MTU search is tailored to
/// peers an earlier link measured ([`PathMtuMemory`]).
#[derive(Clone)]
pub struct AcceptPaths {
    base: quinn::ServerConfig,
    config: LinkConfig,
    memory: Arc<PathMtuMemory>,
    trials: Arc<PendingTrials>,
}

impl AcceptPaths {
    /// The configuration for a connection from `peer` when it starts at a
    /// remembered path MTU, with the mark that it is pending until its
    /// handshake ends; `None`: the endpoint's own configuration applies.
    fn server_config_for(&self, peer: IpAddr) -> Option<(quinn::ServerConfig, Trial<'_>)> {
        let transport = self.config.transport_to(&self.memory, peer)?;
        if !self.trials.begin(peer) {
            // An attempt from there that started at the remembered size is
            // still in its handshake: this may be its dialler trying again
            // at 1200 bytes (`Dialer::dial`).
            self.memory.forget(peer);
            return None;
        }
        let mut tailored = self.base.clone();
        tailored.transport_config(Arc::new(transport));
        let trial = Trial {
            trials: &self.trials,
            peer,
        };
        Some((tailored, trial))
    }
}

/// An attempt that started at a remembered path MTU, until its handshake
/// ends (dropped).
struct Trial<'a> {
    trials: &'a PendingTrials,
    peer: IpAddr,
}

impl Drop for Trial<'_> {
    fn drop(&mut self) {
        self.trials.end(self.peer);
    }
}

/// Opens a client-only QUIC endpoint on `bind` (port 0: an ephemeral port).
pub fn client_endpoint(bind: SocketAddr) -> Result<Endpoint, LinkError> {
    open_endpoint(bind, None)
}

/// UDP socket buffer size asked for (the kernel caps it at its maximum):
/// the default of about 200 KiB drops datagrams under bulk transfers.
pub const UDP_BUFFER: usize = 4 * 1024 * 1024;

/// The largest UDP payload a link endpoint accepts and, by default, probes
/// for: a 9000-byte jumbo frame minus IPv6 and UDP headers. quinn sizes its
/// receive buffers from it, so it is not set higher than links use. (A
/// 64 KiB bound, which loopback would carry, measured no faster in the
/// bench and makes the search after each handshake longer.)
pub const MAX_UDP_PAYLOAD: u16 = 8952;

/// Path MTU discovery stops when its binary search step falls below this
/// many bytes: six probes instead of nine between 1200 and
/// [`MAX_UDP_PAYLOAD`] (the probes run while the identity binding is
/// exchanged and compete with it on a busy host). The step must stay small
/// enough for the search to land on a 1500-byte Ethernet path (1441 bytes
/// found of 1472 possible): with a step of 256 or more it gives up there and
/// the link stays at 1200 bytes (`transport/tests/mtu.rs`).
const MTU_SEARCH_STEP: u16 = 128;

fn open_endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> Result<Endpoint, LinkError> {
    let fail = |source| LinkError::Endpoint { addr, source };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(fail)?;
    // Larger buffers are an optimisation; a kernel refusing them is not fatal.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.bind(&addr.into()).map_err(fail)?;
    let runtime = quinn::default_runtime().ok_or_else(|| {
        fail(std::io::Error::other(
            "no tokio runtime is running to drive the QUIC endpoint",
        ))
    })?;
    let mut endpoint = quinn::EndpointConfig::default();
    endpoint
        .max_udp_payload_size(MAX_UDP_PAYLOAD)
        .map_err(|e| fail(std::io::Error::other(e.to_string())))?;
    let socket = runtime.wrap_udp_socket(socket.into()).map_err(fail)?;
    Endpoint::new_with_abstract_socket(endpoint, server, Arc::new(SplitGso::new(socket)), runtime)
        .map_err(fail)
}

/// Dials links from one local endpoint with one identity.
#[derive(Clone)]
pub struct Dialer {
    endpoint: Endpoint,
    identity: Arc<LinkIdentity>,
    client: quinn::ClientConfig,
    config: LinkConfig,
    /// Path MTUs measured by this dialer's earlier links.
    paths: Arc<PathMtuMemory>,
}

impl Dialer {
    /// A dialer offering only X25519MLKEM768.
    pub fn new(
        endpoint: Endpoint,
        identity: Arc<LinkIdentity>,
        config: LinkConfig,
    ) -> Result<Self, LinkError> {
        Self::with_key_exchange(endpoint, identity, config, KeyExchange::PostQuantum)
    }

    /// A dialer with an explicit key exchange choice (tests and bench only
    /// use anything but [`KeyExchange::PostQuantum`]).
    pub fn with_key_exchange(
        endpoint: Endpoint,
        identity: Arc<LinkIdentity>,
        config: LinkConfig,
        kx: KeyExchange,
    ) -> Result<Self, LinkError> {
        let client = client_config(&identity, kx, &config)?;
        Ok(Self {
            endpoint,
            identity,
            client,
            config,
            paths: Arc::new(PathMtuMemory::new()),
        })
    }

    /// The identity this dialer presents.
    pub fn identity(&self) -> &Arc<LinkIdentity> {
        &self.identity
    }

    /// Opens a link to `addr` and requires the peer to prove `expected`.
    ///
    /// To a peer whose path MTU is remembered, the first attempt starts at
    /// that size. If it has not come up after a quarter of the handshake
    /// timeout, or failed without an answer from the peer, the path may no
    /// longer carry the size: it is forgotten and the link is dialled again
    /// from 1200 bytes, within what is left of the timeout.
    pub async fn dial(
        &self,
        addr: SocketAddr,
        expected: &CompositePublicKey,
    ) -> Result<Link, LinkError> {
        let limit = self.config.handshake_timeout;
        let started = Instant::now();
        if let Some(tailored) = self.config.transport_to(&self.paths, addr.ip()) {
            let mut client = self.client.clone();
            client.transport_config(Arc::new(tailored));
            let trial = limit / 4;
            match tokio::time::timeout(trial, self.dial_inner(client, addr, expected)).await {
                Ok(Ok(link)) => return Ok(link),
                Ok(Err(e)) if e.is_answer() => return Err(e),
                Ok(Err(_)) | Err(_) => self.paths.forget(addr.ip()),
            }
        }
        let left = limit.saturating_sub(started.elapsed());
        let client = self.client.clone();
        tokio::time::timeout(left, self.dial_inner(client, addr, expected))
            .await
            .map_err(|_| LinkError::Timeout(limit))?
    }

    async fn dial_inner(
        &self,
        client: quinn::ClientConfig,
        addr: SocketAddr,
        expected: &CompositePublicKey,
    ) -> Result<Link, LinkError> {
        let connecting = self
            .endpoint
            .connect_with(client, addr, tls::SERVER_NAME)
            .map_err(|source| LinkError::Connect { addr, source })?;
        let connection = connecting.await?;
        let result = self.bind_client(&connection, expected).await;
        if result.is_err() {
            connection.close(CLOSE_REFUSED, b"link refused");
        }
        result.map(|peer_key| {
            let peer = PeerInfo {
                key_id: peer_key.key_id(),
                name: None,
                remote: connection.remote_address(),
            };
            Link::new(connection, peer_key, peer, self.paths.clone())
        })
    }

    async fn bind_client(
        &self,
        connection: &Connection,
        expected: &CompositePublicKey,
    ) -> Result<CompositePublicKey, LinkError> {
        let exporter = exporter(connection)?;
        let server_certificate = peer_certificate(connection)?;
        let identity = &self.identity;
        let own = identity.public_key();
        let (mut send, mut recv) = connection.open_bi().await?;
        // The key first, so that the server can start signing its statement.
        write_message(
            &mut send,
            &LinkMessage::Identity {
                role: Role::Client,
                key: Box::new(own.clone()),
            },
        )
        .await?;
        // Let the connection send it before this task signs: the binding's
        // crypto runs inline, as the TLS handshake's does (see module doc).
        tokio::task::yield_now().await;
        let ours = identity.statement(
            Role::Client,
            Role::Client,
            exporter,
            &server_certificate,
            expected,
        );
        let signature = identity.sign(&ours)?;
        write_message(
            &mut send,
            &LinkMessage::Binding {
                role: Role::Client,
                key: Box::new(own.clone()),
                signature,
            },
        )
        .await?;
        let _ = send.finish();
        tokio::task::yield_now().await;
        let (key, signature) = match read_message(&mut recv).await? {
            LinkMessage::Binding {
                role: Role::Server,
                key,
                signature,
            } => (key, signature),
            LinkMessage::LinkRefused { code, reason } => {
                return Err(LinkError::Refused { code, reason })
            }
            other => {
                return Err(LinkError::Protocol(format!(
                    "expected the server's binding, got {:?}",
                    other.kind()
                )))
            }
        };
        if key.as_ref() != expected {
            return Err(LinkError::PeerKeyMismatch {
                presented: key.key_id(),
                expected: expected.key_id(),
            });
        }
        identity
            .statement(
                Role::Client,
                Role::Server,
                exporter,
                &server_certificate,
                expected,
            )
            .verify(&signature)
            .map_err(LinkError::BindingFailed)?;
        // The server's verdict on our binding.
        match read_message(&mut recv).await? {
            LinkMessage::LinkAccepted => Ok(*key),
            LinkMessage::LinkRefused { code, reason } => Err(LinkError::Refused { code, reason }),
            other => Err(LinkError::Protocol(format!(
                "expected the server's answer to our binding, got {:?}",
                other.kind()
            ))),
        }
    }
}

/// The exporter value of a connection (label [`EXPORTER_LABEL`], empty context).
pub fn exporter(connection: &Connection) -> Result<[u8; EXPORTER_LEN], LinkError> {
    let mut out = [0u8; EXPORTER_LEN];
    connection
        .export_keying_material(&mut out, EXPORTER_LABEL, b"")
        .map_err(|e| LinkError::Exporter(format!("{e:?}")))?;
    Ok(out)
}

/// The DER certificate the peer presented in the TLS handshake.
pub fn peer_certificate(connection: &Connection) -> Result<Vec<u8>, LinkError> {
    connection
        .peer_identity()
        .and_then(|any| {
            any.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .and_then(|chain| chain.first().map(|c| c.as_ref().to_vec()))
        .ok_or_else(|| LinkError::Protocol("the peer presented no TLS certificate".into()))
}

/// Takes an incoming connection through TLS, the identity binding and the
/// trust decision. An admitted link is recorded through `observer`
/// ([`LinkObserver::record_allow`]) before the peer is told it is accepted.
/// On refusal the peer is told why and the connection is closed; the caller
/// records the returned refusal.
pub async fn admit(
    incoming: quinn::Incoming,
    identity: &Arc<LinkIdentity>,
    policy: &dyn PeerPolicy,
    observer: &dyn LinkObserver,
    paths: &AcceptPaths,
) -> Result<Link, (SocketAddr, LinkRefusal)> {
    let remote = incoming.remote_address();
    let limit = paths.config.handshake_timeout;
    let (tailored, trial) = paths.server_config_for(remote.ip()).unzip();
    let remembered = trial.is_some();
    let accepting = async {
        match tailored {
            Some(tailored) => incoming.accept_with(Arc::new(tailored))?.await,
            None => incoming.accept()?.await,
        }
    };
    // An attempt that started at the remembered size and failed without
    // the peer's side of the exchange coming through (no handshake, no
    // binding): the path may no longer carry the size, and the next attempt
    // starts at 1200 bytes, as on the dialling side. A refusal the client
    // was answered with says nothing against the path.
    let forget = || {
        if remembered {
            paths.memory.forget(remote.ip());
        }
    };
    let handshake = match tokio::time::timeout(limit, accepting).await {
        Err(_) => Err(LinkRefusal::Handshake {
            detail: format!("no TLS handshake within {limit:?}"),
        }),
        Ok(Err(e)) => Err(classify_handshake_error(&e)),
        Ok(Ok(c)) => Ok(c),
    };
    drop(trial);
    let connection = match handshake {
        Ok(c) => c,
        Err(refusal) => {
            forget();
            return Err((remote, refusal));
        }
    };
    let outcome = tokio::time::timeout(
        limit,
        bind_server(&connection, identity, policy, observer, &paths.memory),
    )
    .await;
    let (refusal, answer) = match outcome {
        Ok(Ok(link)) => return Ok(link),
        Ok(Err(pair)) => pair,
        Err(_) => (
            LinkRefusal::Protocol {
                detail: format!("no identity binding within {limit:?}"),
            },
            None,
        ),
    };
    if answer.is_none() {
        forget();
    }
    if let Some((mut send, code)) = answer {
        let message = LinkMessage::LinkRefused {
            code,
            reason: refusal.to_string(),
        };
        if write_message(&mut send, &message).await.is_ok() && send.finish().is_ok() {
            // Let the refusal reach the peer before the connection closes.
            let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
        }
    }
    connection.close(CLOSE_REFUSED, b"link refused");
    Err((remote, refusal))
}

type Refused = (LinkRefusal, Option<(SendStream, LinkRefusalCode)>);

async fn bind_server(
    connection: &Connection,
    identity: &Arc<LinkIdentity>,
    policy: &dyn PeerPolicy,
    observer: &dyn LinkObserver,
    paths: &Arc<PathMtuMemory>,
) -> Result<Link, Refused> {
    let protocol = |detail: String| (LinkRefusal::Protocol { detail }, None);
    let (mut send, mut recv) = connection
        .accept_bi()
        .await
        .map_err(|e| protocol(format!("no binding stream: {e}")))?;
    let refuse = |refusal: LinkRefusal, code, send| (refusal, Some((send, code)));
    let violation = |detail: String, send| {
        refuse(
            LinkRefusal::Protocol { detail },
            LinkRefusalCode::ProtocolViolation,
            send,
        )
    };
    let fail = |detail: String, send| {
        refuse(
            LinkRefusal::FailedBinding { detail },
            LinkRefusalCode::FailedBinding,
            send,
        )
    };
    let client_key = match read_message(&mut recv).await {
        Ok(LinkMessage::Identity {
            role: Role::Client,
            key,
        }) => key,
        Ok(other) => {
            let detail = format!("expected the client's identity, got {:?}", other.kind());
            return Err(violation(detail, send));
        }
        Err(e) => return Err(violation(e.to_string(), send)),
    };
    let exporter = match exporter(connection) {
        Ok(e) => e,
        Err(e) => return Err(fail(e.to_string(), send)),
    };
    let client_certificate = match peer_certificate(connection) {
        Ok(c) => c,
        Err(e) => return Err(fail(e.to_string(), send)),
    };
    // Our statement covers the key the client announced. It is signed and
    // sent before the client's binding is read: the client verifies it while
    // we verify theirs. Nothing but the binding messages flows before the
    // client's binding verified and its key is trusted.
    let ours = identity.statement(
        Role::Server,
        Role::Server,
        exporter,
        &client_certificate,
        &client_key,
    );
    let signature = match identity.sign(&ours) {
        Ok(s) => s,
        Err(e) => return Err(fail(e.to_string(), send)),
    };
    let reply = LinkMessage::Binding {
        role: Role::Server,
        key: Box::new(identity.public_key().clone()),
        signature,
    };
    if let Err(e) = write_message(&mut send, &reply).await {
        return Err(fail(format!("could not send our binding: {e}"), send));
    }
    // Let the connection send it before this task verifies (inline).
    tokio::task::yield_now().await;
    let signature = match read_message(&mut recv).await {
        Ok(LinkMessage::Binding {
            role: Role::Client,
            key,
            signature,
        }) if key == client_key => signature,
        Ok(LinkMessage::Binding {
            role: Role::Client, ..
        }) => {
            let detail = "the client's binding carries another key than its identity";
            return Err(violation(detail.into(), send));
        }
        Ok(other) => {
            let detail = format!("expected the client's binding, got {:?}", other.kind());
            return Err(violation(detail, send));
        }
        Err(e) => return Err(violation(e.to_string(), send)),
    };
    let theirs = identity.statement(
        Role::Server,
        Role::Client,
        exporter,
        &client_certificate,
        &client_key,
    );
    if let Err(e) = theirs.verify(&signature) {
        return Err(fail(e.to_string(), send));
    }
    let key_id = client_key.key_id();
    let name = match policy.peer_status(&client_key) {
        PeerStatus::Trusted { name } => name,
        PeerStatus::Unknown => {
            return Err(refuse(
                LinkRefusal::UnknownKey { key_id },
                LinkRefusalCode::UnknownKey,
                send,
            ))
        }
        PeerStatus::Revoked => {
            return Err(refuse(
                LinkRefusal::RevokedKey { key_id },
                LinkRefusalCode::RevokedKey,
                send,
            ))
        }
    };
    let peer = PeerInfo {
        key_id: client_key.key_id(),
        name: Some(name),
        remote: connection.remote_address(),
    };
    let recorded = observer.record_allow(LinkEvent::LinkOpened { peer: peer.clone() });
    if let Err(detail) = recorded.await {
        return Err(refuse(
            LinkRefusal::AuditUnavailable { detail },
            LinkRefusalCode::AuditUnavailable,
            send,
        ));
    }
    if let Err(e) = write_message(&mut send, &LinkMessage::LinkAccepted).await {
        return Err(protocol(format!("could not accept the link: {e}")));
    }
    let _ = send.finish();
    Ok(Link::new(
        connection.clone(),
        *client_key,
        peer,
        paths.clone(),
    ))
}

/// Names a failed TLS handshake: a client without X25519MLKEM768 makes
/// rustls fail with "NoKxGroupsInCommon".
pub fn classify_handshake_error(error: &quinn::ConnectionError) -> LinkRefusal {
    let detail = error.to_string();
    if detail.contains("NoKxGroupsInCommon") {
        LinkRefusal::ClassicalOnlyOffer
    } else {
        LinkRefusal::Handshake { detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_window_follows_rfc_9002_for_the_starting_size() {
        // 10 datagrams while that stays within max(14720, 2 datagrams).
        assert_eq!(initial_window(1200), 12_000);
        assert_eq!(initial_window(1472), 14_720);
        // Larger datagrams: 14720 bytes, but never less than two of them.
        assert_eq!(initial_window(5000), 14_720);
        assert_eq!(initial_window(8952), 17_904);
    }
}
